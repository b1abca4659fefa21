"""Shared pieces of the parasol-relu script tests (driver_test.py, adversarial_test.py):
running the driver under mpiexec, writing data files, recording checks, the bad-input
checks and the final verdict. Import it before numpy/cvxopt: it limits their BLAS threads.
"""
import os

# CVXOPT's and numpy's BLAS threads spin against the MPI ranks on a small shared host.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import subprocess
import sys

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "build/drivers")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
RELU = os.path.join(BIN, "parasol-relu")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(args, ranks=1, expect=0):
    cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe", RELU] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if p.returncode != expect:
        print(" ".join(cmd))
        print(p.stdout[-3000:], p.stderr[-3000:])
    return p


def write(path, X, y):
    with h5py.File(path, "w") as f:
        f["X"] = X
        f["y"] = y


def check_rejected(cases):
    """Each case (args, needle, what) must fail at 2 ranks with exit code 1, a
    'parasol-relu: error:' message containing needle, and no output file."""
    for args, needle, what in cases:
        p = run(args + ["-output", "bad.h5"], 2, expect=1)
        message = p.stderr + p.stdout
        check(p.returncode == 1 and "parasol-relu: error:" in message and needle in message,
              f"rejects {what}: {message.strip().splitlines()[-1] if message.strip() else ''}")
    check(not os.path.exists("bad.h5"), "no output file from a rejected run")


def finish():
    """Exit 1 when a check failed."""
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


def check_converged(f, ranks):
    """The run file f (open h5py.File) says status converged."""
    status = f.attrs["status"]
    status = status.decode() if isinstance(status, bytes) else status
    check(status == "converged", f"{ranks} rank(s): status {status}")


def converged_runs(common, what):
    """Trains with the arguments `common` at 1, 2 and 3 ranks (run1.h5, run2.h5, run3.h5),
    checking each exits 0 and converges; yields (ranks, f) with f the open run file."""
    for ranks in (1, 2, 3):
        p = run(common + ["-output", f"run{ranks}.h5"], ranks)
        check(p.returncode == 0, f"{what} at {ranks} rank(s) exits 0")
        if p.returncode != 0:
            continue
        with h5py.File(f"run{ranks}.h5", "r") as f:
            check_converged(f, ranks)
            yield ranks, f


def check_across_ranks(objectives, gates_seen, reference):
    """Runs at 1, 2, 3 ranks: the same gates, objectives within 1e-5 relative, and each within
    1e-4 of reference(gates) -> (objective, solver status), an independent CVXOPT solve
    (skipped, and said so, without python3-cvxopt)."""
    if len(objectives) != 3:
        return
    check(all(np.array_equal(g, gates_seen[0]) for g in gates_seen), "same gates at 1, 2, 3 ranks")
    spread = (max(objectives) - min(objectives)) / abs(objectives[0])
    check(spread <= 1e-5, f"objective agrees across rank counts (relative spread {spread:.2e})")
    try:
        import cvxopt  # noqa: F401
    except ImportError:
        print("skip CVXOPT comparison: python3-cvxopt is not installed")
        return
    value, status = reference(gates_seen[0])
    for ranks, obj in zip((1, 2, 3), objectives):
        rel = abs(obj - value) / abs(value)
        check(rel <= 1e-4, f"{ranks} rank(s): ADMM {obj:.8g} vs CVXOPT {value:.8g} ({status}), "
                           f"relative {rel:.1e}")
