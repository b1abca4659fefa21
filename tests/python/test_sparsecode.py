"""parasol-analysis on a run file of a real driver: parasol-sparsecode's bars demo at 2 ranks.
The tool's tables are compared with the file read directly by h5py, and the `fields` mosaic
with an independent rendering of /solution/W and of the true bars /demo/true_W."""

import os
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

from helpers import ToolAssertions, parse_csv, read_png, run_tool

BIN = os.environ.get("PARASOL_BIN", "")
DRIVER = os.path.join(BIN, "parasol-sparsecode")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
H, SIDE = 10, 5  # the bars demo: H = 10 latents, 5x5 images


@unittest.skipUnless(os.path.exists(DRIVER), "parasol-sparsecode not built (PARASOL_BIN)")
class SparsecodeRunFile(ToolAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="parasol-sparsecode-analysis-")
        cls.run_file = os.path.join(cls.tmp.name, "bars.h5")
        command = [MPIEXEC, "-n", "2", "--oversubscribe", DRIVER, "-H", str(H), "-demo_N", "200",
                   "-max_it", "20", "-seed", "3", "-output", cls.run_file]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError("%s exited %d\n%s\n%s" % (" ".join(command), result.returncode,
                                                         result.stdout, result.stderr))
        with h5py.File(cls.run_file, "r") as f:
            cls.columns = f["history"].attrs["columns"].decode().split(",")
            cls.history = {c: f["history"][c][...] for c in cls.columns}
            cls.attrs = dict(f.attrs)
            cls.W = f["solution/W"][...]
            cls.true_W = f["demo/true_W"][...]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_summary_matches_file(self):
        result = run_tool("summary", "--csv", self.run_file)
        self.assertOk(result)
        row = parse_csv(result.stdout)[0]
        self.assertEqual((row["solver"], row["method"], row["nranks"], row["seed"]),
                         ("sparsecode", "bsc", "2", "3"))
        self.assertEqual(row["status"], self.attrs["status"].decode())
        self.assertIn(row["status"], ("converged", "max_iterations"))
        self.assertEqual(int(row["iterations"]), len(self.history["iteration"]))
        self.assertEqual(float(row["wall_time"]), float(self.attrs["wall_time"]))
        # the solver's own fields, in the file's column order, each its last value
        self.assertEqual(list(row)[8:], ["objective"] + self.columns[3:])
        for column in ["objective"] + self.columns[3:]:
            self.assertEqual(float(row[column]), float(self.history[column][-1]), column)

    def test_history_matches_file(self):
        result = run_tool("history", "--csv", self.run_file)
        self.assertOk(result)
        rows = parse_csv(result.stdout)
        self.assertEqual(list(rows[0]), self.columns)
        for column in self.columns:
            np.testing.assert_array_equal([float(r[column]) for r in rows], self.history[column])

    def test_show_lists_solution_attributes(self):
        result = run_tool("show", self.run_file)
        self.assertOk(result)
        line = [l for l in result.stdout.splitlines() if l.startswith("  attributes of /solution:")]
        self.assertEqual(len(line), 1, result.stdout)
        self.assertIn("model=bsc", line[0])
        self.assertIn("H=%d" % H, line[0])
        self.assertIn("/solution/W %dx%d float64" % (H, SIDE * SIDE), result.stdout)

    def test_plot(self):
        out = os.path.join(self.tmp.name, "history.png")
        fields = ",".join(["objective"] + self.columns[3:5])
        result = run_tool("plot", self.run_file, "--fields", fields, "--x", "wall_time", "-o", out)
        self.assertOk(result)
        self.assertEqual(read_png(out).shape[:2], (850, 700))

    def render(self, matrix, name):
        out = os.path.join(self.tmp.name, name)
        result = run_tool("fields", self.run_file, "--dataset", "/" + name.replace("-", "/"),
                          "--grid-columns", str(H), "--zoom", "1", "--pad", "1",
                          "-o", out + ".png")
        self.assertOk(result)
        image = read_png(out + ".png")[..., 0]
        self.assertEqual(image.shape, (SIDE + 2, H * (SIDE + 1) + 1))
        return [image[1:1 + SIDE, 1 + h * (SIDE + 1):1 + h * (SIDE + 1) + SIDE] for h in range(H)]

    def test_fields_of_learned_dictionary(self):
        """Each tile is row h of W as a 5x5 image, scaled by its own max |w|: grey level
        0.5 + 0.5 w / max|w| through the 256-entry grey colour map."""
        tiles = self.render(self.W, "solution-W")
        for h, tile in enumerate(tiles):
            field = self.W[h].reshape(SIDE, SIDE)
            unit = 0.5 + 0.5 * field / np.max(np.abs(field))
            expected = np.minimum(np.floor(unit * 256), 255) / 255
            # one colour-map step of slack where unit * 256 rounds across an integer
            np.testing.assert_allclose(tile, expected, atol=1 / 255 + 1e-6, err_msg="tile %d" % h)

    def test_fields_of_true_bars(self):
        """The generating bars: every tile is one full row or column at the top level."""
        tiles = self.render(self.true_W, "demo-true_W")
        shapes = set()
        for tile in tiles:
            bright = tile > 0.99
            rows, cols = np.nonzero(bright)
            self.assertEqual(len(rows), SIDE)
            if len(set(rows)) == 1:
                shapes.add(("row", rows[0]))
            else:
                self.assertEqual(len(set(cols)), 1)
                shapes.add(("col", cols[0]))
            np.testing.assert_allclose(tile[~bright], 0.5, atol=0.01)
        self.assertEqual(len(shapes), H)  # all 5 horizontal and 5 vertical bars


if __name__ == "__main__":
    unittest.main()
