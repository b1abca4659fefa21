"""Checkpoint, restart, SIGUSR1 and killed runs, end to end through the real drivers.

For each driver with a quick built-in problem (DEMO_ARGS), at 1, 2 and 3 ranks: SIGUSR1 sent to
mpiexec mid-run writes a checkpoint and ends the run as `interrupted` with exit code 75; the
restart from that checkpoint ends with the same solution as an uninterrupted run (1e-12
relative) and carries the whole history; a run killed with
SIGKILL leaves the earlier complete output untouched and keeps its history in FILE.partial;
a checkpoint written at 2 ranks continues at 3 and at 1 ranks, for every driver.
"""
import os
import signal
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "build/drivers")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")

# Problems on built-in defaults that take a few seconds for MAX_IT iterations (long enough to
# be signalled mid-run); -tol tiny so that runs end at -max_it.
MAX_IT = 40
DEMO_ARGS = {
    "parasol-sparsecode": ["-demo_N", "1000", "-tol", "1e-300"],
}

# Quick problems of every family for the restart on another rank count (-tol tiny: the runs
# end at -max_it). The first run stops early through a smaller -max_it, so sparsecode's
# annealing schedules are given in iterations rather than in fractions of -max_it.
RESTART_ARGS = {
    "parasol-sparsecode": ["-demo_N", "600", "-tol", "1e-300", "-anneal_T", "0:2,8:1",
                           "-anneal_ncut", "0:0,8:1"],
    "parasol-relu": ["-tol", "1e-300"],
    "parasol-bilevel": ["-problem", "toy", "-method", "lvhba", "-tol", "1e-300"],
    "parasol-alsketch": ["-problem", "hs47", "-alsketch_sketch", "ksp", "-tol", "1e-300"],
}


def available():
    found = {d: a for d, a in DEMO_ARGS.items() if os.path.exists(os.path.join(BIN, d))}
    if not found:
        raise unittest.SkipTest(f"no driver with a demo in {BIN}")
    return found


def command(driver, ranks, args):
    return [MPIEXEC, "-n", str(ranks), "--oversubscribe", os.path.join(BIN, driver)] + args


def run(driver, ranks, args, timeout=300):
    p = subprocess.run(command(driver, ranks, args), capture_output=True, text=True,
                       timeout=timeout)
    return p


def attr(f, name):
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def solution(path):
    with h5py.File(path, "r") as f:
        return {name: np.array(f["solution"][name]) for name in f["solution"]
                if isinstance(f["solution"][name], h5py.Dataset)}


class CheckpointRestart(unittest.TestCase):
    def assert_same_solution(self, expected_path, actual_path, tolerance, driver):
        """Every /solution dataset equal to `tolerance` relative to its largest entry."""
        a, b = solution(expected_path), solution(actual_path)
        self.assertTrue(a, "no /solution datasets")
        self.assertEqual(sorted(a), sorted(b))
        for name in a:
            scale = max(1.0, float(np.max(np.abs(a[name])))) if a[name].size else 1.0
            np.testing.assert_allclose(b[name], a[name], rtol=0, atol=tolerance * scale,
                                       err_msg=f"{driver} /solution/{name}")

    def interrupt_after(self, driver, ranks, args, lines_wanted):
        """Starts a run, sends SIGUSR1 to mpiexec after a few monitor lines, waits for it."""
        p = subprocess.Popen(command(driver, ranks, args + ["-monitor"]), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = 0
        while lines < lines_wanted:
            line = p.stdout.readline()
            self.assertTrue(line, "driver ended before it was signalled")
            lines += "objective" in line
        p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=300)
        return p.returncode, err

    def test_interrupted_and_restarted_run_matches_uninterrupted_at_1_2_3_ranks(self):
        for driver, args in available().items():
            for ranks in (1, 2, 3):
                with self.subTest(driver=driver, ranks=ranks), tempfile.TemporaryDirectory() as d:
                    common = args + ["-max_it", str(MAX_IT)]
                    full = run(driver, ranks, common + ["-output", f"{d}/full.h5"])
                    self.assertEqual(full.returncode, 0, full.stderr)
                    code, err = self.interrupt_after(
                        driver, ranks, common + ["-checkpoint", f"{d}/ck.h5",
                                                 "-output", f"{d}/part.h5"], 3)
                    self.assertEqual(code, 75, err)  # interrupted: run again with -restart
                    with h5py.File(f"{d}/part.h5") as f:
                        self.assertEqual(attr(f, "status"), "interrupted")
                        done = int(attr(f, "iterations"))
                    with h5py.File(f"{d}/ck.h5") as f:
                        self.assertEqual(int(f.attrs["iteration"]), done)
                    self.assertLess(done, MAX_IT)
                    resumed = run(driver, ranks, common + ["-restart", f"{d}/ck.h5",
                                                           "-output", f"{d}/resumed.h5"])
                    self.assertEqual(resumed.returncode, 0, resumed.stderr)
                    self.assert_same_solution(f"{d}/full.h5", f"{d}/resumed.h5", 1e-12, driver)
                    with h5py.File(f"{d}/full.h5") as f, h5py.File(f"{d}/resumed.h5") as g:
                        n = len(f["history/iteration"])
                        self.assertEqual(list(g["history/iteration"]), list(range(1, n + 1)))
                        np.testing.assert_allclose(g["history/objective"], f["history/objective"],
                                                   rtol=1e-12)

    def test_restart_on_another_rank_count(self):
        """A checkpoint written at 2 ranks continues at 3 and at 1 (a requeued job on another
        node count) and ends where an uninterrupted 1-rank run ends, up to the rounding that a
        change of rank count brings (1e-8 relative)."""
        for driver, args in RESTART_ARGS.items():
            if not os.path.exists(os.path.join(BIN, driver)):
                continue
            with tempfile.TemporaryDirectory() as d:
                full = run(driver, 1, args + ["-max_it", "12", "-output", f"{d}/full.h5"])
                self.assertEqual(full.returncode, 0, full.stderr)
                first = run(driver, 2, args + ["-max_it", "5", "-checkpoint", f"{d}/ck.h5",
                                               "-output", f"{d}/first.h5"])
                self.assertEqual(first.returncode, 0, first.stderr)
                for ranks in (3, 1):
                    with self.subTest(driver=driver, ranks=ranks):
                        out = f"{d}/resumed{ranks}.h5"
                        resumed = run(driver, ranks, args + ["-max_it", "12", "-restart",
                                                             f"{d}/ck.h5", "-output", out])
                        self.assertEqual(resumed.returncode, 0, resumed.stderr)
                        with h5py.File(out) as f:
                            self.assertEqual(int(attr(f, "nranks")), ranks)
                            self.assertEqual(list(f["history/iteration"]), list(range(1, 13)))
                        self.assert_same_solution(f"{d}/full.h5", out, 1e-8, driver)

    def test_killed_run_keeps_history_and_earlier_output(self):
        for driver, args in available().items():
            with self.subTest(driver=driver), tempfile.TemporaryDirectory() as d:
                out = f"{d}/run.h5"
                good = run(driver, 1, args + ["-max_it", "3", "-output", out])
                self.assertEqual(good.returncode, 0, good.stderr)
                p = subprocess.Popen(command(driver, 2, args + [
                    "-max_it", "1000000", "-monitor", "-output", out]),
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    start_new_session=True)
                lines = 0
                while lines < 3:
                    line = p.stdout.readline()
                    self.assertTrue(line, "driver ended early")
                    lines += "objective" in line
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=60)
                time.sleep(0.5)
                with h5py.File(out) as f:  # the earlier complete file, untouched
                    self.assertEqual(attr(f, "status"), "max_iterations")
                    self.assertEqual(len(f["history/objective"]), 3)
                with h5py.File(out + ".partial") as f:  # the killed run's history so far
                    self.assertEqual(attr(f, "status"), "running")
                    # Rows are flushed at least once a second; the first one at once.
                    rows = len(f["history/objective"])
                    self.assertGreaterEqual(rows, 1)
                    self.assertEqual(list(f["history/iteration"]), list(range(1, rows + 1)))


if __name__ == "__main__":
    unittest.main()
