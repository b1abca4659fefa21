"""parasol-bilevel end to end (run by ctest with PARASOL_BIN and MPIEXEC set; needs
/usr/bin/python3 with h5py and numpy).

A random quadratic bilevel instance is made here with numpy and its optimum computed here in
closed form (independently of the library): the driver must reach it at 1 and 2 ranks.
Malformed quadratic files are rejected with a clear message on every rank; a run restarted
from a checkpoint ends where an uninterrupted run ends; -help lists the methods and problems.
"""
import os
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "build/drivers")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
DRIVER = os.path.join(BIN, "parasol-bilevel")


def run(args, ranks=1, timeout=240):
    cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe", DRIVER] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def random_quadratic(seed, nx, ny):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((ny, ny))
    q = {
        "A": np.eye(ny) + G.T @ G / (2 * ny),
        "B": np.eye(nx) * 0.3,
        "C": 0.5 * rng.standard_normal((nx, ny)) / np.sqrt(ny),
        "a": rng.standard_normal(ny),
        "b": rng.standard_normal(nx),
        "F": np.eye(ny) * 1.2,
        "H": np.eye(nx) * 0.7,
        "K": 0.2 * rng.standard_normal((nx, ny)) / np.sqrt(ny),
        "f": rng.standard_normal(ny),
        "h": rng.standard_normal(nx),
    }
    return q


def closed_form(q):
    """x* of min_x upper(x, z*(x)), z*(x) = -A^{-1}(C'x + a)."""
    Ainv = np.linalg.inv(q["A"])
    M = -Ainv @ q["C"].T
    m = -Ainv @ q["a"]
    Q = M.T @ q["F"] @ M + q["H"] + q["K"] @ M + M.T @ q["K"].T
    r = M.T @ q["F"] @ m + q["K"] @ m + M.T @ q["f"] + q["h"]
    return -np.linalg.solve(Q, r)


def write(path, q):
    with h5py.File(path, "w") as f:
        for name, value in q.items():
            f[name] = value


PENALTY = ["-method", "penalty", "-penalty_sigma", "1e-6", "-penalty_lr_x", "0.3",
           "-penalty_lr_y", "0.3", "-penalty_lr_z", "0.3", "-penalty_inner", "300",
           "-penalty_inner_tol", "1e-12"]
BOREP = ["-method", "borep", "-borep_lr_x", "0.1", "-borep_lr_y", "0.3", "-borep_nu", "0.3",
         "-borep_beta", "0.5", "-borep_decay", "0.995", "-borep_interval", "1",
         "-borep_lower_steps", "5"]


class BilevelDriver(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_help_lists_methods_and_problems(self):
        p = run(["-help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ["lvhba", "penalty", "borep", "bsvrb1", "bsvrb2", "toy", "quadratic",
                     "hypercleaning", "l2reg", "multiblock"]:
            self.assertIn(name, p.stdout)

    def test_quadratic_reaches_closed_form_at_one_and_two_ranks(self):
        q = random_quadratic(7, 4, 6)
        data = os.path.join(self.dir, "q.h5")
        write(data, q)
        x_star = closed_form(q)
        for ranks in (1, 2):
            for method, steps in ((PENALTY, "300"), (BOREP, "4000")):
                out = os.path.join(self.dir, f"run{ranks}{method[1]}.h5")
                p = run(["-problem", "quadratic", "-data", data, "-max_it", steps, "-output", out]
                        + method, ranks=ranks)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                with h5py.File(out, "r") as f:
                    x = f["solution/x"][...]
                    self.assertEqual(f.attrs["method"].decode(), method[1])
                    self.assertIn("x_error", f["history"])
                    self.assertIn("lower_objective", f["history"])
                    self.assertIn("stationarity", f["history"])
                err = np.linalg.norm(x - x_star) / np.linalg.norm(x_star)
                self.assertLess(err, 1e-4, f"{method[1]} at {ranks} ranks: {x} vs {x_star}")

    def test_bad_quadratic_input_is_rejected_clearly(self):
        q = random_quadratic(8, 3, 4)
        q["A"][1, 1] = -3.0
        bad = os.path.join(self.dir, "not_pd.h5")
        write(bad, q)
        p = run(["-problem", "quadratic", "-data", bad, "-method", "penalty", "-output",
                 os.path.join(self.dir, "x.h5")], ranks=3)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not positive definite", p.stderr)
        self.assertIn(bad, p.stderr)
        self.assertEqual(p.stderr.count("error:"), 1, p.stderr)

        q = random_quadratic(8, 3, 4)
        q["K"] = np.ones((3, 5))
        bad = os.path.join(self.dir, "mismatch.h5")
        write(bad, q)
        p = run(["-problem", "quadratic", "-data", bad, "-output",
                 os.path.join(self.dir, "y.h5")], ranks=2)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("matrix K is 3x5, expected 3x4", p.stderr)

        q = random_quadratic(8, 3, 4)
        del q["h"]
        bad = os.path.join(self.dir, "missing.h5")
        write(bad, q)
        p = run(["-problem", "quadratic", "-data", bad, "-output",
                 os.path.join(self.dir, "z.h5")], ranks=2)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("/h is missing", p.stderr)

    def test_restart_from_checkpoint_continues_the_same_run(self):
        q = random_quadratic(9, 4, 6)
        data = os.path.join(self.dir, "q.h5")
        write(data, q)
        common = ["-problem", "quadratic", "-data", data] + BOREP
        full = os.path.join(self.dir, "full.h5")
        p = run(common + ["-max_it", "60", "-output", full], ranks=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        ckpt = os.path.join(self.dir, "state.h5")
        first = os.path.join(self.dir, "first.h5")
        p = run(common + ["-max_it", "30", "-checkpoint", ckpt, "-checkpoint_every", "10",
                          "-output", first], ranks=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        second = os.path.join(self.dir, "second.h5")
        p = run(common + ["-max_it", "60", "-restart", ckpt, "-output", second], ranks=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        with h5py.File(full, "r") as a, h5py.File(second, "r") as b:
            np.testing.assert_array_equal(a["solution/x"][...], b["solution/x"][...])
            np.testing.assert_array_equal(a["solution/y"][...], b["solution/y"][...])

    def test_multiblock_bsvrb2_any_rank_count_and_restart(self):
        # A small multiblock task (7 blocks, 3 sampled per iteration, minibatches of 8 of 160
        # training rows): the same x at 1, 2 and 3 ranks, and a run checkpointed at 3 ranks
        # and restarted at 2 ends where the uninterrupted run ends (x, y, stationarity): the
        # lazily updated x/z and the block states survive a change of rank count.
        rng = np.random.default_rng(4)
        X = rng.standard_normal((200, 6))
        y = np.where(X @ rng.standard_normal(6) + 0.5 * rng.standard_normal(200) > 0, 1.0, -1.0)
        data = os.path.join(self.dir, "mb.h5")
        with h5py.File(data, "w") as f:
            f["X"] = X
            f["y"] = y
        common = ["-problem", "multiblock", "-data", data, "-method", "bsvrb2", "-blocks", "7",
                  "-bsvrb_blocks", "3", "-batch", "8", "-bsvrb_lr_x", "0.5", "-lambda", "0.01",
                  "-seed", "5", "-eval_every", "10"]
        results = {}
        for ranks in (1, 2, 3):
            out = os.path.join(self.dir, f"mb{ranks}.h5")
            p = run(common + ["-max_it", "40", "-output", out], ranks=ranks)
            self.assertEqual(p.returncode, 0, p.stderr)
            with h5py.File(out, "r") as f:
                results[ranks] = (f["solution/x"][...], f["solution/y"][...],
                                  f["history/stationarity"][...])
        self.assertGreater(np.abs(results[1][0]).max(), 0.0)
        for ranks in (2, 3):
            for a, b in zip(results[1], results[ranks]):
                np.testing.assert_array_equal(a, b)
        ckpt = os.path.join(self.dir, "mb-state.h5")
        p = run(common + ["-max_it", "20", "-checkpoint", ckpt, "-checkpoint_every", "20",
                          "-output", os.path.join(self.dir, "mb-first.h5")], ranks=3)
        self.assertEqual(p.returncode, 0, p.stderr)
        second = os.path.join(self.dir, "mb-second.h5")
        p = run(common + ["-max_it", "40", "-restart", ckpt, "-output", second], ranks=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        with h5py.File(second, "r") as f:
            np.testing.assert_array_equal(f["solution/x"][...], results[1][0])
            np.testing.assert_array_equal(f["solution/y"][...], results[1][1])
            np.testing.assert_array_equal(f["history/stationarity"][20:], results[1][2][20:])

    def test_toy_lvhba_run_file(self):
        out = os.path.join(self.dir, "toy.h5")
        p = run(["-problem", "toy", "-method", "lvhba", "-max_it", "50", "-output", out], ranks=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["status"].decode(), "max_iterations")
            self.assertEqual(f["solution/x"].shape, (100,))
            self.assertEqual(f["solution/y"].shape, (200,))
            self.assertEqual(len(f["history/x_error"]), 50)

    def test_coupled_constraints_need_lvhba(self):
        p = run(["-problem", "toy", "-method", "borep", "-output",
                 os.path.join(self.dir, "t.h5")], ranks=2)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("lvhba", p.stderr)


if __name__ == "__main__":
    unittest.main()
