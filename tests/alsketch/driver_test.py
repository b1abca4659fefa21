#!/usr/bin/env python3
"""End-to-end tests of parasol-alsketch: run file contents, -help, bad input, checkpoint/restart."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BIN = os.path.join(os.environ["PARASOL_BIN"], "parasol-alsketch")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
failures = []


def run(ranks, *args):
    cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe", BIN, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as tmp:
    # hs40 with every solver at 1, 2, 3 ranks: converged, f* = -0.25, same x everywhere.
    xs = {}
    for sketch in ("gaussian", "kaczmarz", "ksp"):
        for ranks in (1, 2, 3):
            out = os.path.join(tmp, f"hs40_{sketch}_{ranks}.h5")
            p = run(ranks, "-problem", "hs40", "-alsketch_sketch", sketch, "-tol", "1e-8",
                    "-output", out)
            check(p.returncode == 0, f"hs40 {sketch} np{ranks} exits 0 ({p.stderr.strip()[-200:]})")
            if p.returncode != 0:
                continue
            with h5py.File(out, "r") as f:
                status = f.attrs["status"]
                status = status.decode() if isinstance(status, bytes) else status
                check(status == "converged", f"hs40 {sketch} np{ranks} status {status}")
                h = f["history"]
                for field in ("objective", "kkt_residual", "constraint_violation", "step_length",
                              "eta1", "eta2", "sketch_iterations"):
                    check(field in h, f"history has {field}")
                check(h["kkt_residual"][-1] <= 1e-8, "final KKT residual <= 1e-8")
                check(abs(h["objective"][-1] + 0.25) <= 1e-6, "objective -0.25")
                x = f["solution/x"][()]
                lam = f["solution/lambda"][()]
                check(x.shape == (4,) and lam.shape == (3,), "solution shapes")
                xs[(sketch, ranks)] = x
    for (sketch, ranks), x in xs.items():
        ref = xs.get((sketch, 1))
        if ref is not None:
            check(np.allclose(x, ref, rtol=0, atol=1e-10), f"{sketch} np{ranks} x equals np1")

    # -help lists the problems and the sketches from the registries.
    p = run(1, "-help")
    text = p.stdout + p.stderr
    check(p.returncode == 0, "-help exits 0")
    for word in ("hs40", "orthregb", "logreg", "poisson", "gaussian", "kaczmarz", "block", "ksp"):
        check(word in text, f"-help mentions {word}")

    # Bad input: unknown problem / sketch, misspelled option: error message and exit 1.
    for args, needle in ((["-problem", "hs999"], "hs999"),
                         (["-alsketch_sketch", "fourier"], "fourier"),
                         (["-alsketch_etaa1", "2"], "alsketch_etaa1"),
                         (["-problem", "logreg"], "-data")):
        p = run(2, *args, "-output", os.path.join(tmp, "bad.h5"))
        check(p.returncode == 1 and "parasol-alsketch: error:" in p.stderr and needle in p.stderr,
              f"{' '.join(args)} fails with a message ({p.stderr.strip()[-200:]})")

    # ksp with an iterative Krylov method through the -alsketch_ksp_ prefix.
    out = os.path.join(tmp, "minres.h5")
    p = run(2, "-problem", "poisson", "-N", "6", "-alsketch_sketch", "ksp", "-alsketch_ksp_type",
            "gmres", "-alsketch_pc_type", "none", "-output", out)
    check(p.returncode == 0, f"poisson ksp gmres exits 0 ({p.stderr.strip()[-300:]})")

    # Sub-solver options are read when the KSP is set up (before the unknown-option check):
    # MUMPS controls, fieldsplit and GAMG level options are accepted; misspelled ones are not.
    for args in (["-alsketch_ksp_preset", "mumps", "-alsketch_mat_mumps_icntl_14", "300",
                  "-alsketch_mat_mumps_cntl_1", "1e-8", "-alsketch_dense_limit", "10"],
                 ["-alsketch_ksp_preset", "mumps", "-alsketch_mat_mumps_icntl_7", "2"],
                 ["-alsketch_ksp_preset", "fieldsplit", "-alsketch_poisson_schur_pc", "amg",
                  "-alsketch_poisson_schur_pc_hypre_boomeramg_strong_threshold", "0.3"],
                 ["-alsketch_ksp_preset", "fieldsplit", "-alsketch_problem_schur", "false",
                  "-alsketch_fieldsplit_1_pc_gamg_threshold",
                  "0.01", "-alsketch_fieldsplit_1_mg_levels_ksp_max_it", "3",
                  "-alsketch_fieldsplit_0_pc_type", "jacobi",
                  "-alsketch_pc_fieldsplit_schur_precondition", "selfp"]):
        p = run(2, "-problem", "poisson", "-N", "24", "-alsketch_sketch", "ksp", "-tol", "1e-6",
                *args, "-output", os.path.join(tmp, "subopts.h5"))
        check(p.returncode == 0, f"sub-solver options {' '.join(args)} accepted ({p.stderr.strip()[-300:]})")
    for args, needle in ((["-alsketch_ksp_preset", "fieldsplit", "-alsketch_problem_schur",
                           "false", "-alsketch_fieldsplit_1_pc_gamg_treshold", "0.01"],
                          "gamg_treshold"),
                         (["-alsketch_ksp_preset", "mumps", "-alsketch_mat_mumps_icntl_144", "1"],
                          "icntl_144"),
                         (["-alsketch_ksp_preset", "fieldsplit_schur"], "fieldsplit_schur")):
        p = run(2, "-problem", "poisson", "-N", "24", "-alsketch_sketch", "ksp", *args,
                "-output", os.path.join(tmp, "bad.h5"))
        check(p.returncode == 1 and "parasol-alsketch: error:" in p.stderr and needle in p.stderr,
              f"{' '.join(args)} rejected ({p.stderr.strip()[-200:]})")
    # A grid smaller than the rank count: named, on every rank, not PETSc's DMDA error.
    p = run(3, "-problem", "poisson", "-N", "2", "-output", os.path.join(tmp, "bad.h5"))
    check(p.returncode == 1 and "-N >= the number of ranks" in p.stderr,
          f"poisson -N 2 on 3 ranks rejected ({p.stderr.strip()[-200:]})")

    # Checkpoint at iteration 3, restart: the same run as one straight run (the warm start's
    # previous direction is saved in the checkpoint, so its history matches too).
    for extra in ([], ["-alsketch_warm_start", "-alsketch_accelerate"]):
        tag = "warm" if extra else "plain"
        straight = os.path.join(tmp, f"straight_{tag}.h5")
        p = run(2, "-problem", "hs6", *extra, "-output", straight)
        ck = os.path.join(tmp, f"ck_{tag}.h5")
        first = os.path.join(tmp, f"first_{tag}.h5")
        p1 = run(2, "-problem", "hs6", *extra, "-max_it", "3", "-checkpoint", ck,
                 "-checkpoint_every", "1", "-output", first)
        resumed = os.path.join(tmp, f"resumed_{tag}.h5")
        p2 = run(2, "-problem", "hs6", *extra, "-restart", ck, "-output", resumed)
        check(p.returncode == 0 and p1.returncode == 0 and p2.returncode == 0,
              f"{tag} checkpoint/restart runs exit 0 ({p1.stderr.strip()[-200:]} {p2.stderr.strip()[-200:]})")
        if p2.returncode == 0 and p.returncode == 0:
            with h5py.File(straight, "r") as a, h5py.File(resumed, "r") as b:
                check(np.allclose(a["solution/x"][()], b["solution/x"][()], atol=1e-10),
                      f"{tag} restarted run reaches the same x")
                ha, hb = a["history/kkt_residual"][()], b["history/kkt_residual"][()]
                check(len(ha) == len(hb) and np.allclose(ha, hb, rtol=1e-9, atol=0),
                      f"{tag} restarted run has the same history ({ha} vs {hb})")

    # The memory yardstick (2 ranks, poisson N = 512, 39 MB of problem data): ~0 when the
    # solver does nothing (-max_it 0; the problem's construction peaks before the baseline and
    # is not counted), and the schur preset with the fft Schur preconditioner within 2x the
    # problem's data (issue 4's target; 1.3x measured). Only where the peak could be reset.
    for args, limit, what in ((["-alsketch_sketch", "gaussian", "-max_it", "0"], 0.3,
                               "-max_it 0"),
                              (["-alsketch_sketch", "ksp", "-alsketch_ksp_preset", "schur",
                                "-tol", "1e-6"], 2.0, "schur + fft")):
        out = os.path.join(tmp, "memory.h5")
        p = run(2, "-problem", "poisson", "-N", "512", *args, "-output", out)
        check(p.returncode == 0 and "alsketch memory:" in p.stdout,
              f"poisson N=512 {what} runs ({p.stderr.strip()[-200:]})")
        if "alsketch memory:" not in p.stdout:
            continue
        with h5py.File(out, "r") as f:
            method = f.attrs["memory_method"]
            method = method.decode() if isinstance(method, bytes) else method
            data = f.attrs["memory_problem_data_bytes"]
            solver = f.attrs["memory_solver_peak_bytes"]
        check(method in p.stdout, f"the memory line names its method ({method})")
        if "clear_refs" in method:
            check(solver <= limit * data,
                  f"poisson N=512 {what}: solver memory {solver / 2**20:.1f} MB <= "
                  f"{limit} x data {data / 2**20:.1f} MB")

print("FAILED:" if failures else "all passed", *failures, sep="\n  ")
sys.exit(1 if failures else 0)
