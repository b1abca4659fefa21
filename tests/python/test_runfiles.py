"""parasol-analysis on real run files, written by make_run_file (C++) through RunFile,
run_solver and solve_and_write at 1 and 2 ranks: a converged run, a run stopped by -max_it,
a killed run (FILE.partial) and a checkpoint. Every number is checked against the closed
form of gradient descent on make_run_file's quadratic, computed here independently."""

import os
import subprocess
import tempfile
import unittest
import zlib

import h5py
import numpy as np

from helpers import ToolAssertions, parse_csv, read_png, run_tool

MAKE_RUN_FILE = os.environ.get("PARASOL_MAKE_RUN_FILE")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
SIZE = 12
TOL = 1e-2
SEED = 5
LIPSCHITZ = 5.0
FIELDS = ["grad_norm", "distance", "step_size"]


def closed_form(iterations):
    """History rows (objective, grad_norm, distance, step_size) for k = 1..iterations:
    x_i^k - b_i = -(1 - a_i/L)^k b_i with a_i = 1 + (i mod 5), b_i = 1 + i/10."""
    i = np.arange(SIZE)
    a = 1.0 + (i % 5)
    b = 1.0 + 0.1 * i
    rows = {"objective": [], "grad_norm": [], "distance": [], "step_size": []}
    for k in range(1, iterations + 1):
        error = -((1.0 - a / LIPSCHITZ) ** k) * b
        rows["objective"].append(0.5 * np.sum(a * error ** 2))
        rows["grad_norm"].append(np.sqrt(np.sum((a * error) ** 2)))
        rows["distance"].append(np.sqrt(np.sum(error ** 2)))
        rows["step_size"].append(1.0 / LIPSCHITZ)
    return {name: np.array(values) for name, values in rows.items()}


def converged_iteration():
    """First k with grad_norm <= TOL (the solver's stopping test)."""
    grad = closed_form(200)["grad_norm"]
    return int(np.argmax(grad <= TOL)) + 1


def make(directory, ranks, name, *options, expect_rc=0):
    command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", MAKE_RUN_FILE, "-n", str(SIZE),
               "-tol", repr(TOL), "-seed", str(SEED), "-output", name] + list(options)
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120)
    if result.returncode != expect_rc:
        raise RuntimeError("%s exited %d (expected %d)\n%s\n%s" % (
            " ".join(command), result.returncode, expect_rc, result.stdout, result.stderr))
    return os.path.join(directory, name)


@unittest.skipUnless(MAKE_RUN_FILE, "PARASOL_MAKE_RUN_FILE (built make_run_file) not set")
class RealRunFiles(ToolAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="parasol-runfiles-")
        d = cls.tmp.name
        cls.K = converged_iteration()
        cls.one = make(d, 1, "one.h5", "-max_it", "200")
        cls.two = make(d, 2, "two.h5", "-max_it", "200", "-checkpoint", "ck.h5",
                       "-checkpoint_every", "10")
        cls.checkpoint = os.path.join(d, "ck.h5")
        cls.short = make(d, 1, "short.h5", "-max_it", "7", "-checkpoint", "short-ck.h5")
        # continued from the short run's final checkpoint: the whole history, 1..K
        cls.restarted = make(d, 1, "restarted.h5", "-max_it", "200", "-restart",
                             "short-ck.h5")
        # SIGKILL during iteration 6: 5 rows flushed, never finalized or renamed
        make(d, 1, "killed.h5", "-max_it", "200", "-crash_at", "6",
             "-history_flush_interval", "0", expect_rc=137)
        cls.killed = os.path.join(d, "killed.h5.partial")
        cls.expected = closed_form(cls.K)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def assertClose(self, actual, expected, what, rtol=1e-9):
        """The default tolerance allows for the cancellation in x - b once x is near b
        (relative error ~ eps |b| / |x - b|); a wrong formula is off by far more."""
        np.testing.assert_allclose(np.asarray(actual, dtype=float), expected, rtol=rtol,
                                   atol=0.0, err_msg=what)

    def test_outputs_exist(self):
        self.assertGreater(self.K, 10)
        for path in (self.one, self.two, self.short, self.killed, self.checkpoint):
            self.assertTrue(os.path.exists(path), path)
        self.assertFalse(os.path.exists(self.path("killed.h5")))
        self.assertFalse(os.path.exists(self.one + ".partial"))

    def test_summary_matches_closed_form(self):
        result = run_tool("summary", "--csv", self.one, self.two, self.short, self.killed,
                          self.checkpoint)
        self.assertOk(result)
        rows = {os.path.basename(r["file"]): r for r in parse_csv(result.stdout)}
        self.assertEqual(list(rows), ["one.h5", "two.h5", "short.h5", "killed.h5.partial",
                                      "ck.h5"])
        expect = {  # file: (status, nranks, iterations)
            "one.h5": ("converged", "1", self.K), "two.h5": ("converged", "2", self.K),
            "short.h5": ("max_iterations", "1", 7), "killed.h5.partial": ("running", "1", 5),
            "ck.h5": ("checkpoint", "2", self.K)}
        for name, (status, nranks, iterations) in expect.items():
            with self.subTest(file=name):
                row = rows[name]
                self.assertEqual((row["solver"], row["method"]), ("toy", "gd"))
                self.assertEqual((row["status"], row["nranks"]), (status, nranks))
                self.assertEqual(int(row["iterations"]), iterations)
                self.assertGreater(float(row["wall_time"]), 0.0)
                for field in ["objective"] + FIELDS:
                    self.assertClose(float(row[field]), self.expected[field][iterations - 1],
                                     field)
                self.assertEqual(list(row)[-4:], ["objective"] + FIELDS)
        self.assertEqual(rows["one.h5"]["seed"], str(SEED))

    def test_summary_equals_file_content(self):
        """CSV values are the file's values to the last bit."""
        result = run_tool("summary", "--csv", self.two)
        self.assertOk(result)
        row = parse_csv(result.stdout)[0]
        with h5py.File(self.two, "r") as f:
            self.assertEqual(float(row["wall_time"]), float(f.attrs["wall_time"]))
            self.assertEqual(int(row["iterations"]), int(f.attrs["iterations"]))
            for field in ["objective"] + FIELDS:
                self.assertEqual(float(row[field]), float(f["history"][field][-1]), field)

    def test_history_all_rows_and_ranks_agree(self):
        tables = {}
        for path in (self.one, self.two):
            result = run_tool("history", "--csv", path)
            self.assertOk(result)
            rows = parse_csv(result.stdout)
            self.assertEqual(list(rows[0]), ["iteration", "wall_time", "objective"] + FIELDS)
            self.assertEqual([int(r["iteration"]) for r in rows], list(range(1, self.K + 1)))
            times = np.array([float(r["wall_time"]) for r in rows])
            self.assertTrue(np.all(np.diff(times) >= 0) and times[0] >= 0)
            for field in ["objective"] + FIELDS:
                self.assertClose([float(r[field]) for r in rows], self.expected[field],
                                 "%s %s" % (path, field))
            tables[path] = rows
        # 1 and 2 ranks: the same history up to the reduction order
        for field in ["objective"] + FIELDS:
            self.assertClose([float(r[field]) for r in tables[self.two]],
                             [float(r[field]) for r in tables[self.one]], field, rtol=1e-12)

    def test_history_of_restarted_run(self):
        result = run_tool("history", "--csv", self.restarted)
        self.assertOk(result)
        rows = parse_csv(result.stdout)
        self.assertEqual([int(r["iteration"]) for r in rows], list(range(1, self.K + 1)))
        for field in ["objective"] + FIELDS:
            self.assertClose([float(r[field]) for r in rows], self.expected[field], field)
        result = run_tool("summary", "--csv", self.short, self.restarted)
        self.assertOk(result)
        short, restarted = parse_csv(result.stdout)
        self.assertEqual((short["status"], int(short["iterations"])), ("max_iterations", 7))
        self.assertEqual((restarted["status"], int(restarted["iterations"])),
                         ("converged", self.K))
        # wall time continues from the checkpoint's
        self.assertGreater(float(restarted["wall_time"]), float(rows[6]["wall_time"]))

    def test_history_of_killed_run(self):
        result = run_tool("history", "--csv", "--fields", "iteration,objective", self.killed)
        self.assertOk(result)
        rows = parse_csv(result.stdout)
        self.assertEqual([int(r["iteration"]) for r in rows], [1, 2, 3, 4, 5])
        self.assertClose([float(r["objective"]) for r in rows], self.expected["objective"][:5],
                         "objective")

    def test_show_inputs_and_options(self):
        result = run_tool("show", self.two, self.checkpoint)
        self.assertOk(result)
        b = 1.0 + 0.1 * np.arange(SIZE)
        crc = zlib.crc32(b.astype("<f8").tobytes())
        self.assertIn("input data: (built-in quadratic targets b), shape %d, crc32 %d"
                      % (SIZE, crc), result.stdout)
        self.assertIn("    -checkpoint_every 10", result.stdout)
        self.assertIn("/solution/x %d float64" % SIZE, result.stdout)
        self.assertIn("ck.h5: parasol checkpoint", result.stdout)
        self.assertIn("/state/x %d float64" % SIZE, result.stdout)

    def test_plot_runs_overlaid(self):
        out = self.path("overlay.png")
        result = run_tool("plot", self.one, self.two, self.short, self.killed, "--fields",
                          "objective,grad_norm,distance", "--log-y", "-o", out)
        self.assertOk(result)
        self.assertEqual(result.stderr, "")
        image = read_png(out)
        self.assertEqual(image.shape[:2], (850, 700))  # 3 fields: (2.5 * 3 + 1) x 7 in
        self.assertGreater(float(np.std(image[..., :3])), 0.01)
        out = self.path("time.png")
        self.assertOk(run_tool("plot", self.one, self.checkpoint, "--x", "wall_time",
                               "--dpi", "80", "-o", out))
        self.assertEqual(read_png(out).shape[:2], (280, 560))  # 3.5 x 7 in at 80 dpi

    def test_fields_of_distributed_matrix(self):
        """/solution/W (6 bars of 4x4, rows written by different ranks): each tile shows its
        bar, white for a positive bar, black for a negative one, on mid grey."""
        for path in (self.one, self.two):
            out = self.path(os.path.basename(path) + "-W.png")
            result = run_tool("fields", path, "--dataset", "/solution/W", "--zoom", "1",
                              "--pad", "1", "--grid-columns", "6", "-o", out)
            self.assertOk(result)
            image = read_png(out)[..., 0]
            self.assertEqual(image.shape, (4 + 2, 6 * 4 + 7))
            for h in range(6):
                tile = image[1:5, 1 + 5 * h:5 + 5 * h]
                bar = np.zeros((4, 4), dtype=bool)
                if h < 4:
                    bar[h, :] = True
                else:
                    bar[:, h - 4] = True
                level = 1.0 if h % 2 == 0 else 0.0
                with self.subTest(file=os.path.basename(path), tile=h):
                    np.testing.assert_allclose(tile[bar], level, atol=0.01)
                    np.testing.assert_allclose(tile[~bar], 0.5, atol=0.01)

    def test_fields_rejects_a_vector(self):
        self.assertFailsWith(run_tool("fields", self.one, "--dataset", "/solution/x", "-o",
                                      self.path("x.png")), "2-D")


if __name__ == "__main__":
    unittest.main()
