#!/usr/bin/python3
"""BSC on 20,000 8x8 patches of Fashion-MNIST images (H = 32) at 2 ranks: once annealing has
ended the truncated log-likelihood must not decrease from one iteration to the next, and the
learned fields are drawn to a PNG by parasol-analysis. Labelled `long` (about 30 s)."""

import os
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "")
DRIVER = os.path.join(BIN, "parasol-sparsecode")
DATA = os.path.join(BIN, "parasol-data")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
SOURCE = os.environ.get("PARASOL_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ANALYSIS = os.path.join(SOURCE, "python", "parasol-analysis")
MAX_IT, ANNEAL_END = 50, 0.4


def run(ranks, program, *args):
    command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", program] + [str(a) for a in args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError("%s failed (%d)\n%s\n%s" % (" ".join(command), result.returncode,
                                                         result.stdout, result.stderr))
    return result


@unittest.skipUnless(os.path.exists(IMAGES) and os.path.exists(DATA), "no Fashion-MNIST or parasol-data")
class FashionPatches(unittest.TestCase):
    def test_likelihood_increases_after_annealing_and_fields_are_drawn(self):
        with tempfile.TemporaryDirectory(prefix="parasol-sparsecode-fashion-") as tmp:
            images, patches = os.path.join(tmp, "images.h5"), os.path.join(tmp, "patches.h5")
            out, png = os.path.join(tmp, "run.h5"), os.path.join(tmp, "fields.png")
            run(1, DATA, "convert", "-input", IMAGES, "-scale", "-output", images)
            run(2, DATA, "patches", "-input", images, "-size", 8, "-count", 20000, "-seed", 1,
                "-center", "-output", patches)
            run(2, DRIVER, "-model", "bsc", "-data", patches, "-H", 32, "-Hprime", 6, "-gamma", 3,
                "-max_it", MAX_IT, "-anneal_T", "0:2,%s:1" % ANNEAL_END, "-anneal_ncut", 0,
                "-tol", 1e-300, "-seed", 1, "-output", out)
            with h5py.File(out, "r") as f:
                it = f["history/iteration"][...]
                L = f["history/objective"][...]
                T = f["history/temperature"][...]
                self.assertEqual(f["solution/W"].shape, (32, 64))
                self.assertIn("crc32", f["input/data"].attrs)  # the input is recorded
            settled = int(np.ceil(ANNEAL_END * MAX_IT))
            self.assertTrue(np.all(T[it >= settled] == 1.0))
            after = L[it >= settled]
            steps = np.diff(after)
            self.assertGreater(len(steps), 20)
            self.assertTrue(np.all(steps >= -1e-9 * np.abs(after[1:])),
                            "log-likelihood decreased after annealing: %s" % steps)
            self.assertGreater(after[-1], L[0])
            result = subprocess.run([ANALYSIS, "fields", out, "--dataset", "/solution/W",
                                     "--shape", "8x8", "-o", png],
                                    capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stderr)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
