"""parasol-analysis on h5py-written files: string flavours, partial and killed runs, missing
fields, checkpoints, and every way a file can be unusable. (Real C++-written run files are
covered by test_runfiles.py.)"""

import os
import tempfile
import unittest

import h5py
import numpy as np

import synthetic
from helpers import ToolAssertions, parse_csv, read_png, run_process, run_tool, run_wrapper


class SyntheticFiles(ToolAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="parasol-analysis-")
        d = cls.tmp.name
        cls.bytes_run = os.path.join(d, "bytes.h5")
        cls.str_run = os.path.join(d, "str.h5")
        cls.killed = os.path.join(d, "killed.h5.partial")
        cls.checkpoint = os.path.join(d, "ck.h5")
        # 6 tiles of 4x4, tile k has a single +1 at pixel k (row-major)
        cls.W = np.zeros((6, 16))
        for k in range(6):
            cls.W[k, k] = 1.0
        synthetic.write_run(cls.bytes_run, synthetic.toy_history(5), fixed_length=True,
                            solution={"W": cls.W, "v": np.arange(5.0), "Wn": np.ones((3, 10))})
        synthetic.write_run(cls.str_run, synthetic.toy_history(3, extra=()), method="other",
                            fixed_length=False, columns_attr=False, nranks=3, seed=11)
        history = synthetic.toy_history(4)
        history["grad_norm"] = history["grad_norm"][:3]  # killed between two appends
        synthetic.write_run(cls.killed, history, status="running",
                            omit=("iterations", "wall_time", "message"))
        synthetic.write_checkpoint(cls.checkpoint, synthetic.toy_history(3), iteration=3)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    # -- summary -------------------------------------------------------------------------

    def test_summary_csv_bytes_and_str_attributes(self):
        result = run_tool("summary", "--csv", self.bytes_run, self.str_run)
        self.assertOk(result)
        rows = parse_csv(result.stdout)
        self.assertEqual([r["file"] for r in rows], [self.bytes_run, self.str_run])
        first, second = rows
        self.assertEqual((first["solver"], first["method"], first["status"]),
                         ("toy", "gd", "converged"))
        self.assertEqual((second["method"], second["nranks"], second["seed"]), ("other", "3", "11"))
        self.assertEqual(first["iterations"], "5")
        self.assertEqual(float(first["wall_time"]), 0.5 + 0.01)
        self.assertEqual(float(first["objective"]), 2.0 ** -5)
        self.assertEqual(float(first["grad_norm"]), 3.0 ** -5)  # full precision in CSV
        self.assertEqual(second["grad_norm"], "")  # that run has no such field
        self.assertEqual(float(second["objective"]), 2.0 ** -3)

    def test_summary_text_table(self):
        result = run_tool("summary", self.bytes_run, self.str_run)
        self.assertOk(result)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["file", "solver", "method", "status", "nranks", "seed",
                                            "iterations", "wall_time", "objective", "grad_norm"])
        self.assertEqual(lines[1].split()[-2:], ["0.03125", "0.00411523"])
        self.assertEqual(lines[2].split()[-1], "-")

    def test_summary_chosen_fields(self):
        result = run_tool("summary", "--csv", "--fields", "grad_norm", self.bytes_run)
        self.assertOk(result)
        header = result.stdout.splitlines()[0].split(",")
        self.assertEqual(header[-1], "grad_norm")
        self.assertNotIn("objective", header)

    def test_summary_unknown_field_is_an_error(self):
        result = run_tool("summary", "--fields", "grad_nrom", self.bytes_run)
        self.assertFailsWith(result, "grad_nrom", "available: iteration, wall_time, objective")

    def test_summary_killed_run(self):
        result = run_tool("summary", "--csv", self.killed)
        self.assertOk(result)
        row = parse_csv(result.stdout)[0]
        self.assertEqual(row["status"], "running")
        # 4 rows of iteration/objective but 3 of grad_norm: the 3 complete rows are used
        self.assertEqual(row["iterations"], "3")
        self.assertEqual(float(row["objective"]), 2.0 ** -3)
        self.assertEqual(float(row["wall_time"]), 0.1 * 3)
        self.assertIn("different lengths", result.stderr)

    def test_summary_checkpoint(self):
        result = run_tool("summary", "--csv", self.checkpoint)
        self.assertOk(result)
        row = parse_csv(result.stdout)[0]
        self.assertEqual((row["solver"], row["status"], row["iterations"], row["nranks"]),
                         ("toy", "checkpoint", "3", "2"))

    def test_summary_reports_bad_files_and_keeps_good_ones(self):
        result = run_tool("summary", "--csv", self.bytes_run, self.path("missing.h5"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("missing.h5: no such file", result.stderr)
        self.assertEqual(len(parse_csv(result.stdout)), 1)

    # -- history -------------------------------------------------------------------------

    def test_history_csv_exact(self):
        result = run_tool("history", "--csv", self.bytes_run)
        self.assertOk(result)
        rows = parse_csv(result.stdout)
        self.assertEqual(list(rows[0]), ["iteration", "wall_time", "objective", "grad_norm"])
        expected = synthetic.toy_history(5)
        for column, values in expected.items():
            self.assertEqual([float(r[column]) for r in rows], values, column)
        self.assertEqual(rows[0]["iteration"], "1")  # counters print as integers

    def test_history_column_order_without_columns_attribute(self):
        with h5py.File(self.str_run, "r") as f:
            self.assertNotIn("columns", f["history"].attrs)
        result = run_tool("history", "--csv", "--fields", "objective,iteration", self.str_run)
        self.assertOk(result)
        self.assertEqual(result.stdout.splitlines()[0], "objective,iteration")
        self.assertEqual(result.stdout.splitlines()[3], "0.125,3")

    def test_history_unknown_field(self):
        self.assertFailsWith(run_tool("history", "--fields", "nope", self.bytes_run), "nope")

    # -- show ----------------------------------------------------------------------------

    def test_show(self):
        result = run_tool("show", self.bytes_run)
        self.assertOk(result)
        self.assertIn("  status: converged", result.stdout)
        self.assertIn("    -max_it 10", result.stdout)  # multi-line options text
        self.assertIn("/solution/W 6x16 float64", result.stdout)

    # -- plot ----------------------------------------------------------------------------

    def test_plot_size_and_decodes(self):
        out = self.path("two.png")
        result = run_tool("plot", self.bytes_run, self.str_run, self.killed, "--fields",
                          "objective,grad_norm", "--log-y", "-o", out)
        self.assertOk(result)
        image = read_png(out)
        self.assertEqual(image.shape[:2], (600, 700))  # (2.5 * 2 + 1) x 7 inches at 100 dpi
        self.assertGreater(float(np.std(image[..., :3])), 0.01)  # not a blank canvas
        self.assertIn("str.h5: no history field 'grad_norm'", result.stderr)

    def test_plot_wall_time_custom_size(self):
        out = self.path("time.png")
        result = run_tool("plot", self.bytes_run, "--x", "wall_time", "--width", "4",
                          "--height", "3", "--dpi", "50", "--title", "t", "-o", out)
        self.assertOk(result)
        self.assertEqual(read_png(out).shape[:2], (150, 200))

    def test_plot_log_of_nonpositive_values_warns(self):
        path = self.path("negative.h5")
        history = synthetic.toy_history(4)
        history["objective"] = [1.0, 0.0, -1.0, 2.0]
        synthetic.write_run(path, history)
        out = self.path("negative.png")
        result = run_tool("plot", path, "--log-y", "-o", out)
        self.assertOk(result)
        self.assertIn("values <= 0", result.stderr)
        read_png(out)

    def test_plot_errors(self):
        out = self.path("never.png")
        self.assertFailsWith(run_tool("plot", self.bytes_run, "--fields", "nope", "-o", out),
                             "nope")
        self.assertFailsWith(run_tool("plot", self.bytes_run, "--labels", "a,b", "-o", out),
                             "--labels")
        self.assertFailsWith(run_tool("plot", self.bytes_run, "-o",
                                      self.path("no/such/dir/p.png")), "cannot write")
        self.assertFalse(os.path.exists(out))
        # argparse errors: exit 2 with usage
        result = run_tool("plot", self.bytes_run, "--x", "time", "-o", out)
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid choice", result.stderr)

    # -- fields --------------------------------------------------------------------------

    def test_fields_mosaic_pixels(self):
        out = self.path("fields.png")
        result = run_tool("fields", self.bytes_run, "--dataset", "/solution/W", "-o", out)
        self.assertOk(result)
        image = read_png(out)
        # 6 tiles of 4x4 on a 3x2 grid, 8x zoom (tiles >= 32 px), 2 px padding
        self.assertEqual(image.shape[:2], (2 * 32 + 3 * 2, 3 * 32 + 4 * 2))
        for k in range(6):
            row, col = divmod(k, 3)
            top, left = 2 + row * 34, 2 + col * 34
            tile = image[top:top + 32, left:left + 32, 0]
            bright = np.argwhere(tile > 0.99)
            # the +1 entry is white, zeros are mid grey, at pixel k of the 4x4 tile
            self.assertEqual(bright.min(axis=0).tolist(), [8 * (k // 4), 8 * (k % 4)])
            self.assertEqual(bright.max(axis=0).tolist(), [8 * (k // 4) + 7, 8 * (k % 4) + 7])
            self.assertEqual(len(bright), 64)
            self.assertAlmostEqual(float(tile[31 - 8 * (k // 4), 31 - 8 * (k % 4)]), 0.5,
                                   delta=0.01)

    def test_fields_shape_columns_and_options(self):
        out = self.path("cols.png")
        # W is 6x16: its 16 columns as 2x3 tiles, 4 per grid row, zoom 1, no padding
        result = run_tool("fields", self.bytes_run, "--dataset", "solution/W", "--columns",
                          "--shape", "2x3", "--grid-columns", "4", "--zoom", "1", "--pad", "0",
                          "-o", out)
        self.assertOk(result)
        self.assertEqual(read_png(out).shape[:2], (4 * 2, 4 * 3))
        result = run_tool("fields", self.bytes_run, "--dataset", "/solution/W", "--max-tiles",
                          "2", "--zoom", "1", "--pad", "1", "-o", out)
        self.assertOk(result)
        self.assertEqual(read_png(out).shape[:2], (4 + 2, 2 * 4 + 3))

    def test_fields_errors(self):
        out = self.path("bad.png")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/Wn",
                                      "-o", out), "not a square", "--shape")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/W",
                                      "--shape", "3x5", "-o", out), "3x5", "16")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/W",
                                      "--shape", "huge", "-o", out), "HEIGHTxWIDTH")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/v",
                                      "-o", out), "2-D")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/X",
                                      "-o", out), "no dataset /solution/X", "/solution/W")
        self.assertFailsWith(run_tool("fields", self.bytes_run, "--dataset", "/solution/W",
                                      "--cmap", "nocmap", "-o", out), "nocmap")
        self.assertFalse(os.path.exists(out))

    # -- unusable files ------------------------------------------------------------------

    def test_not_parasol_files(self):
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("not hdf5\n")
        foreign = self.path("foreign.h5")
        with h5py.File(foreign, "w") as f:
            f["x"] = np.arange(3.0)
        truncated = self.path("truncated.h5")
        with open(self.bytes_run, "rb") as f:
            data = f.read()
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 3])
        bad_history = self.path("bad-history.h5")
        synthetic.write_run(bad_history, synthetic.toy_history(2))
        with h5py.File(bad_history, "a") as f:
            f["history/matrix"] = np.zeros((2, 2))
        for command in (["summary"], ["history"], ["show"], ["plot", "-o", self.path("x.png")]):
            for path, message in ((text, "not a readable HDF5 file"),
                                  (foreign, "not a parasol run file"),
                                  (truncated, "truncated.h5"),
                                  (bad_history, "/history/matrix has shape (2, 2)"),
                                  (self.tmp.name, "is a directory"),
                                  (self.path("absent.h5"), "no such file")):
                with self.subTest(command=command[0], path=os.path.basename(path)):
                    self.assertFailsWith(run_tool(*command, path), message)
        self.assertFailsWith(run_tool("fields", foreign, "--dataset", "/x", "-o",
                                      self.path("x.png")), "not a parasol run file")
        # and as a real process: exit status 1, message on stderr
        result = run_process("summary", text)
        self.assertEqual(result.returncode, 1)
        self.assertFailsWith(result, "notes.txt: not a readable HDF5 file")

    def test_usage_errors_exit_2(self):
        self.assertEqual(run_process().returncode, 2)
        self.assertEqual(run_tool("summary").returncode, 2)
        self.assertEqual(run_tool("frobnicate", self.bytes_run).returncode, 2)

    def test_wrapper_script(self):
        result = run_wrapper("summary", "--csv", self.bytes_run)
        self.assertOk(result)
        self.assertEqual(parse_csv(result.stdout)[0]["status"], "converged")


if __name__ == "__main__":
    unittest.main()
