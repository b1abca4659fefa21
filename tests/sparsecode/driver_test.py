#!/usr/bin/python3
"""End-to-end tests of parasol-sparsecode: the bars demo, inference on new data (-infer),
and bad input rejected with a clear message and exit code 1 on every rank."""

import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "")
DRIVER = os.path.join(BIN, "parasol-sparsecode")
DATA = os.path.join(BIN, "parasol-data")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")


def run(ranks, program, *args):
    command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", program] + [str(a) for a in args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240)


class Driver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="parasol-sparsecode-driver-")
        cls.dir = cls.tmp.name

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertFails(self, result, *fragments):
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertIn("parasol-sparsecode: error:", result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)
        # printed once (rank 0), not once per rank
        self.assertEqual(result.stderr.count("parasol-sparsecode: error:"), 1, result.stderr)

    def test_bars_demo_recovers_the_bars(self):
        out = self.path("demo.h5")
        result = run(2, DRIVER, "-max_it", 60, "-seed", 2, "-anneal_T", "0:3,0.6:1",
                     "-snapshot_every", 20, "-output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("recovered", result.stdout)
        with h5py.File(out, "r") as f:
            self.assertEqual(f["solution/W"].shape, (10, 25))
            self.assertLess(f["demo"].attrs["match_error"], 1.0)
            columns = f["history"].attrs["columns"].decode().split(",")
            for field in ("objective", "pi", "sigma", "temperature", "N_use"):
                self.assertIn(field, columns)
            self.assertAlmostEqual(float(f["history/temperature"][0]), 3.0 - 2.0 / 36, places=9)
            self.assertEqual(float(f["history/temperature"][-1]), 1.0)
            last = int(f["history/iteration"][-1])  # the run may converge before -max_it
            expected = list(range(20, last + 1, 20))
            self.assertEqual(list(f["snapshots/iteration"][...]), expected)
            self.assertEqual(f["snapshots/W"].shape, (len(expected), 10, 25))
            if last % 20 == 0:
                self.assertTrue(np.array_equal(f["snapshots/W"][-1], f["solution/W"][...]))
            sigma = float(np.ravel(f["solution/sigma"][...])[0])
            self.assertLess(abs(sigma - 2.0), 0.2)

    def test_inference_on_new_data(self):
        train, test, out = self.path("train.h5"), self.path("test.h5"), self.path("infer.h5")
        for name, seed, count in ((train, 4, 600), (test, 5, 50)):
            result = run(1, DATA, "bars", "-N", count, "-seed", seed, "-output", name)
            self.assertEqual(result.returncode, 0, result.stderr)
        result = run(3, DRIVER, "-data", train, "-infer", test, "-infer_topk", 4, "-max_it", 40,
                     "-anneal_T", "0:3,0.6:1", "-output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        with h5py.File(out, "r") as f, h5py.File(test, "r") as t:
            Y = t["X"][...]
            states = f["inference/states"][...]
            probabilities = f["inference/probabilities"][...]
            marginals = f["inference/marginals"][...]
            W = f["solution/W"][...]
            self.assertEqual(states.shape, (50, 4 * 10))
            self.assertEqual(probabilities.shape, (50, 4))
            self.assertEqual(marginals.shape, (50, 10))
            self.assertTrue(np.all(np.diff(probabilities, axis=1) <= 0))
            self.assertTrue(np.all(probabilities.sum(axis=1) <= 1 + 1e-12))
            self.assertTrue(np.all((marginals >= 0) & (marginals <= 1 + 1e-12)))
            # The MAP state reconstructs the point far better than the mean does.
            map_states = states[:, :10]
            residual = np.mean((Y - map_states @ W) ** 2)
            baseline = np.mean((Y - Y.mean(axis=0)) ** 2)
            self.assertLess(residual, 0.3 * baseline)

    def test_truncation_sizes_are_validated(self):
        self.assertFails(run(2, DRIVER, "-H", 10, "-Hprime", 12, "-output", self.path("x.h5")),
                         "-Hprime")
        self.assertFails(run(2, DRIVER, "-Hprime", 6, "-gamma", 7, "-output", self.path("x.h5")),
                         "-gamma")
        self.assertFalse(os.path.exists(self.path("x.h5")))

    def test_nan_in_the_data_is_rejected(self):
        bad = self.path("nan.h5")
        X = np.ones((20, 25))
        X[7, 3] = np.nan
        with h5py.File(bad, "w") as f:
            f["X"] = X
        result = run(2, DRIVER, "-data", bad, "-output", self.path("nan_run.h5"))
        self.assertFails(result, bad)

    def test_restart_with_another_data_dimension_is_rejected(self):
        checkpoint, other = self.path("ckpt.h5"), self.path("other.h5")
        result = run(1, DRIVER, "-max_it", 3, "-checkpoint", checkpoint,
                     "-output", self.path("first.h5"))
        self.assertEqual(result.returncode, 0, result.stderr)
        result = run(1, DATA, "bars", "-H", 8, "-N", 50, "-output", other)  # D = 16
        self.assertEqual(result.returncode, 0, result.stderr)
        result = run(1, DRIVER, "-data", other, "-restart", checkpoint, "-max_it", 6,
                     "-output", self.path("second.h5"))
        self.assertFails(result, "D = 25", "D = 16")


if __name__ == "__main__":
    unittest.main(verbosity=2)
