#!/usr/bin/python3
"""End-to-end checks of parasol-relu -method adversarial and -predict -attack.

- The robust program trained at 1, 2 and 3 ranks gives the same objective, which matches
  CVXOPT's solution of the same program (written from the run file's gates as an LP plus
  second-order cones, independently of the ADMM) to 1e-4 relative.
- -predict -attack worst_case / pgd: the perturbations lie in the l_inf ball, the worst-case
  output is what the convex model (clean patterns) gives at x + delta, PGD's output is the
  network's at x + delta and never beats clean accuracy; results agree across rank counts.
- Checkpoint/restart continues exactly.
- Bad input: -epsilon with another method, no/negative/NaN -epsilon, another loss, -attack
  without -epsilon, are rejected with a clear message and exit code 1.
Needs h5py and numpy; the CVXOPT comparison is skipped (and said so) without python3-cvxopt.
"""
import os
import tempfile

# relu_script first: it limits the BLAS threads of numpy and CVXOPT.
from relu_script import (check, check_across_ranks, check_rejected, converged_runs, finish, run,
                         write)
import h5py
import numpy as np


def make_data(n, d, seed):
    """One strong feature (y + 0.5 N(0, 1)) and d - 1 weak ones (0.3 y + N(0, 1))."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    X = np.empty((n, d))
    X[:, 0] = y + 0.5 * rng.standard_normal(n)
    X[:, 1:] = 0.3 * y[:, None] + rng.standard_normal((n, d - 1))
    return X, y


def with_bias(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])


def robust_objective(X, y, gates, V, W, beta, eps):
    """X with its bias column last (not perturbed, so not in the l1 norms)."""
    D = (X @ gates.T >= 0).astype(float)
    Z = D @ (V - W)
    margin = y * np.sum(X * Z, axis=1)
    loss = np.maximum(0.0, 1.0 - margin + eps * np.abs(Z[:, :-1]).sum(axis=1)).sum()
    return loss + beta * (np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())


def cvxopt_robust(X, y, gates, beta, eps):
    """The robust program as a cone LP (X with its bias column last; the l1 norms, i.e. a_j
    and b_k, cover the other columns):
    min beta sum t_j + sum xi_k
    s.t. ||u_j||_2 <= t_j;  |u_j| <= a_j;  E_kj x_k^T u_j >= eps 1^T a_j;
         z_k = sum_j SD_kj u_j, |z_k| <= b_k;  xi_k >= 0, xi_k >= 1 - y_k x_k^T z_k + eps 1^T b_k."""
    from cvxopt import matrix, solvers, spmatrix
    n, d = X.shape
    raw = d - 1
    P = gates.shape[0]
    K = 2 * P
    bits = (X @ gates.T >= 0).astype(float)
    SD = np.hstack([bits, -bits])
    E = np.hstack([2 * bits - 1, 2 * bits - 1])
    iu, it, ia, ib, ix = 0, K * d, K * d + K, K * d + K + K * raw, K * d + K + K * raw + n * raw
    nx = ix + n
    rows, cols, vals, h = [], [], [], []
    r = 0

    def add(entries, rhs):
        nonlocal r
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        h.append(rhs)
        r += 1
    for j in range(K):
        for k in range(n):  # -E_kj x_k^T u_j + eps sum_a a_ja <= 0
            add([(iu + j * d + a, -E[k, j] * X[k, a]) for a in range(d)] +
                [(ia + j * raw + a, eps) for a in range(raw)], 0.0)
        for a in range(raw):
            add([(iu + j * d + a, 1.0), (ia + j * raw + a, -1.0)], 0.0)
            add([(iu + j * d + a, -1.0), (ia + j * raw + a, -1.0)], 0.0)
    for k in range(n):
        active = [j for j in range(K) if SD[k, j] != 0]
        for a in range(raw):  # +-z_ka - b_ka <= 0
            for s in (1.0, -1.0):
                add([(iu + j * d + a, s * SD[k, j]) for j in active] + [(ib + k * raw + a, -1.0)], 0.0)
        add([(ix + k, -1.0)], 0.0)
        entries = [(ix + k, -1.0)] + [(ib + k * raw + a, eps) for a in range(raw)]
        for j in active:
            entries += [(iu + j * d + a, -y[k] * SD[k, j] * X[k, a]) for a in range(d)]
        add(entries, -1.0)
    lin = r
    dims_q = []
    for j in range(K):  # -(t_j, u_j) in SOC
        add([(it + j, -1.0)], 0.0)
        for a in range(d):
            add([(iu + j * d + a, -1.0)], 0.0)
        dims_q.append(d + 1)
    G = spmatrix(vals, rows, cols, (r, nx))
    c = np.zeros(nx)
    c[it:it + K] = beta
    c[ix:] = 1.0
    solvers.options.update({"show_progress": False, "abstol": 1e-8, "reltol": 1e-8, "feastol": 1e-8,
                            "maxiters": 200})
    sol = solvers.conelp(matrix(c), G, matrix(h), {"l": lin, "q": dims_q, "s": []})
    x = np.array(sol["x"]).ravel()
    U = x[:K * d].reshape(K, d)
    return robust_objective(X, y, gates, U[:P], U[P:], beta, eps), sol["status"]


def main():
    tmp = tempfile.mkdtemp(prefix="relu-adversarial-")
    os.chdir(tmp)
    # CVXOPT's dense KKT solves limit the size: n = 120, d = 5 (+ bias), P = 8 (+ the linear
    # pattern) is about 1,000 LP/SOC variables, some 10 s; n = 200, d = 10, P = 16 took 300 s.
    X, y = make_data(120, 5, 5)
    Xt, yt = make_data(300, 5, 6)
    write("train.h5", X, y)
    write("test.h5", Xt, yt)
    Xb, Xtb = with_bias(X), with_bias(Xt)
    beta, eps = 0.5, 0.1
    common = ["-data", "train.h5", "-test", "test.h5", "-P", "8", "-bias", "-beta", str(beta), "-seed", "4",
              "-method", "adversarial", "-loss", "hinge", "-epsilon", str(eps),
              "-tol", "1e-6", "-record_every", "1000", "-max_it", "100"]

    objectives, gates_seen = [], []
    for ranks, f in converged_runs(common, "adversarial training"):
        gates, V, W = f["solution/gates"][()], f["solution/v"][()], f["solution/w"][()]
        check("robust_train_accuracy" in f["history"], "history has robust_train_accuracy")
        stored = f["solution"].attrs["objective"]
        obj = robust_objective(Xb, y, gates, V, W, beta, eps)
        check(abs(obj - stored) <= 1e-8 * abs(obj), f"{ranks} rank(s): /solution objective {stored:.10g} "
                                                    f"is the robust objective of (v, w) {obj:.10g}")
        objectives.append(obj)
        gates_seen.append(gates)
    check_across_ranks(objectives, gates_seen, lambda gates: cvxopt_robust(Xb, y, gates, beta, eps))

    # Attacks through -predict, at 1 and 3 ranks (same results).
    if os.path.exists("run1.h5"):
        with h5py.File("run1.h5", "r") as f:
            gates, V, W = f["solution/gates"][()], f["solution/v"][()], f["solution/w"][()]
            W1, w2 = f["solution/W1"][()], f["solution/w2"][()]
        attack_eps = 2 * eps
        seen = {}
        for attack in ("worst_case", "pgd"):
            for ranks in (1, 3):
                out = f"{attack}{ranks}.h5"
                p = run(["-predict", "-network", "run1.h5", "-data", "test.h5", "-attack", attack,
                         "-epsilon", str(attack_eps), "-output", out], ranks)
                check(p.returncode == 0, f"-predict -attack {attack} at {ranks} rank(s) exits 0")
                if p.returncode != 0:
                    continue
                with h5py.File(out, "r") as f:
                    seen[(attack, ranks)] = (f["perturbation"][()], f["adversarial_predictions"][()],
                                             f.attrs["robust_accuracy"], f.attrs["accuracy"])
        for attack in ("worst_case", "pgd"):
            if (attack, 1) in seen and (attack, 3) in seen:
                a, b = seen[(attack, 1)], seen[(attack, 3)]
                check(np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-12, atol=1e-12),
                      f"{attack}: same perturbations at 1 and 3 ranks")
        if ("worst_case", 1) in seen:
            delta, out, robust, clean = seen[("worst_case", 1)]
            check(np.max(np.abs(delta)) <= attack_eps * (1 + 1e-12), "worst case: ||delta||_inf <= epsilon")
            D = (Xtb @ gates.T >= 0).astype(float)
            Z = D @ (V - W)
            fixed = np.sum(with_bias(Xt + delta) * Z, axis=1)  # clean patterns at x + delta
            closed = np.sum(Xtb * Z, axis=1) - attack_eps * yt * np.abs(Z[:, :-1]).sum(axis=1)
            check(np.allclose(out, fixed, rtol=1e-10, atol=1e-10) and np.allclose(out, closed, rtol=1e-10, atol=1e-10),
                  "worst case: output is the convex model at x + delta, = margin - eps ||z||_1")
            check(robust <= clean, f"worst case: robust accuracy {robust:.3f} <= clean {clean:.3f}")
        if ("pgd", 1) in seen:
            delta, out, robust, clean = seen[("pgd", 1)]
            check(np.max(np.abs(delta)) <= attack_eps * (1 + 1e-12), "pgd: ||delta||_inf <= epsilon")
            network = np.maximum(with_bias(Xt + delta) @ W1.T, 0) @ w2
            check(np.allclose(out, network, rtol=1e-10, atol=1e-10), "pgd: output is the network at x + delta")
            check(robust <= clean, f"pgd: robust accuracy {robust:.3f} <= clean {clean:.3f}")

    # Checkpoint/restart: 3 + 3 rows equal 6 rows straight.
    short = ["-data", "train.h5", "-P", "8", "-bias", "-beta", str(beta), "-record_every", "7", "-tol", "1e-12",
             "-method", "adversarial", "-loss", "hinge", "-epsilon", str(eps)]
    run(short + ["-max_it", "6", "-output", "straight.h5"], 2)
    run(short + ["-max_it", "3", "-checkpoint", "ck.h5", "-output", "first.h5"], 2)
    p = run(short + ["-max_it", "6", "-restart", "ck.h5", "-output", "resumed.h5"], 2)
    check(p.returncode == 0, "restart exits 0")
    if p.returncode == 0:
        with h5py.File("straight.h5", "r") as a, h5py.File("resumed.h5", "r") as b:
            same = np.array_equal(a["solution/v"][()], b["solution/v"][()]) and \
                np.array_equal(a["history/objective"][()], b["history/objective"][()])
            check(same, "restart from a checkpoint continues exactly")

    # Bad input.
    cases = [
        (["-data", "train.h5", "-epsilon", "0.1"], "-epsilon", "-epsilon with -method admm"),
        (["-data", "train.h5", "-method", "adversarial", "-loss", "hinge"], "-epsilon", "adversarial without -epsilon"),
        (["-data", "train.h5", "-method", "adversarial", "-loss", "hinge", "-epsilon", "-0.1"], "-epsilon",
         "a negative -epsilon"),
        (["-data", "train.h5", "-method", "adversarial", "-loss", "hinge", "-epsilon", "nan"], "-epsilon",
         "a NaN -epsilon"),
        (["-data", "train.h5", "-method", "adversarial", "-epsilon", "0.1"], "-loss hinge",
         "adversarial with the squared loss"),
        (["-predict", "-network", "run1.h5", "-data", "test.h5", "-attack", "pgd"], "-epsilon",
         "-attack without -epsilon"),
        (["-data", "train.h5", "-attack", "pgd"], "-attack", "-attack while training"),
    ]
    check_rejected(cases)
    finish()


if __name__ == "__main__":
    main()
