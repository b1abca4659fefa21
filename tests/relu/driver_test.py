#!/usr/bin/python3
"""End-to-end checks of parasol-relu.

- The same sampled convex program trained at 1, 2 and 3 ranks gives the same gates and the
  same objective, and that objective matches CVXOPT's solution of the program written from
  the run file's gates (an SOCP, solved independently) to 1e-4 relative.
- The recovered network (W1, w2) reproduces the convex model on every training point;
  `-predict` writes the network's outputs for a new data file.
- Checkpoint/restart continues exactly.
- Bad input is rejected with a clear message and exit code 1.
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
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    teacher = rng.standard_normal((3, d))
    f = np.maximum(X @ teacher.T, 0) @ np.array([1.0, -1.0, 0.5]) - 0.3
    y = np.where(f > 0, 1.0, -1.0)
    flip = rng.random(n) < 0.1
    y[flip] = -y[flip]
    return X, y


def convex_objective(X, y, gates, V, W, beta):
    D = (X @ gates.T >= 0).astype(float)
    pred = np.sum(D * (X @ (V - W).T), axis=1)
    return 0.5 * np.sum((pred - y) ** 2) + beta * (np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum())


def cvxopt_objective(X, y, gates, beta):
    """min 1/2||sum_i D_i X (v_i - w_i) - y||^2 + beta sum ||v_i|| + ||w_i||, cone constraints."""
    from cvxopt import matrix, solvers
    n, d = X.shape
    P = gates.shape[0]
    D = (X @ gates.T >= 0).astype(float)
    K = 2 * P
    nu = K * d
    nx = nu + K + 1  # u, t, r
    F = np.zeros((n, nu))
    rows = []
    for j in range(K):
        i, sign = j % P, (1.0 if j < P else -1.0)
        F[:, j * d:(j + 1) * d] = sign * D[:, [i]] * X
        block = np.zeros((n, nx))
        block[:, j * d:(j + 1) * d] = -((2 * D[:, [i]] - 1) * X)  # -(2D-I) X u_j <= 0
        rows.append(block)
    G_lin = np.vstack(rows)
    h_lin = np.zeros(G_lin.shape[0])
    G_soc, h_soc, dims_q = [], [], []
    for j in range(K):  # ||u_j|| <= t_j
        g = np.zeros((d + 1, nx))
        g[0, nu + j] = -1.0
        g[1:, j * d:(j + 1) * d] = -np.eye(d)
        G_soc.append(g)
        h_soc.append(np.zeros(d + 1))
        dims_q.append(d + 1)
    # ||(2(Fu - y), 2r - 1)|| <= 2r + 1  <=>  1/2||Fu - y||^2 <= r
    g = np.zeros((n + 2, nx))
    g[0, nx - 1] = -2.0
    g[1:n + 1, :nu] = -2.0 * F
    g[n + 1, nx - 1] = -2.0
    hq = np.concatenate([[1.0], -2.0 * y, [-1.0]])
    G_soc.append(g)
    h_soc.append(hq)
    dims_q.append(n + 2)
    G = np.vstack([G_lin] + G_soc)
    h = np.concatenate([h_lin] + h_soc)
    c = np.zeros(nx)
    c[nu:nu + K] = beta
    c[nx - 1] = 1.0
    solvers.options.update({"show_progress": False, "abstol": 1e-7, "reltol": 1e-7, "feastol": 1e-7,
                            "maxiters": 200})
    sol = solvers.conelp(matrix(c), matrix(G), matrix(h), {"l": G_lin.shape[0], "q": dims_q, "s": []})
    x = np.array(sol["x"]).ravel()
    U = x[:nu].reshape(K, d)
    return convex_objective(X, y, gates, U[:P], U[P:], beta), sol["status"]


def main():
    tmp = tempfile.mkdtemp(prefix="relu-driver-")
    os.chdir(tmp)
    X, y = make_data(200, 10, 5)
    Xt, yt = make_data(100, 10, 6)
    write("train.h5", X, y)
    write("test.h5", Xt, yt)
    beta = 0.5
    common = ["-data", "train.h5", "-test", "test.h5", "-P", "16", "-beta", str(beta), "-seed", "4",
              "-tol", "1e-6", "-record_every", "200", "-max_it", "100"]

    objectives, gates_seen = [], []
    for ranks, f in converged_runs(common, "training"):
        gates, V, W = f["solution/gates"][()], f["solution/v"][()], f["solution/w"][()]
        W1, w2 = f["solution/W1"][()], f["solution/w2"][()]
        check("test_accuracy" in f["history"], "history has test_accuracy")
        obj = convex_objective(X, y, gates, V, W, beta)
        objectives.append(obj)
        gates_seen.append(gates)
        # The recovered network against the convex model on every training point.
        model = np.sum((X @ gates.T >= 0) * (X @ (V - W).T), axis=1)
        network = np.maximum(X @ W1.T, 0) @ w2
        gap = np.max(np.abs(model - network))
        check(gap <= 1e-5 * max(1.0, np.max(np.abs(model))),
              f"{ranks} rank(s): network equals convex model on training points (max gap {gap:.2e})")
        check(np.all((model > 0) == (network > 0)), f"{ranks} rank(s): same classes on training points")
    check_across_ranks(objectives, gates_seen, lambda gates: cvxopt_objective(X, y, gates, beta))

    # -predict on a new file: the network's outputs.
    if os.path.exists("run2.h5"):
        p = run(["-predict", "-network", "run2.h5", "-data", "test.h5", "-output", "pred.h5"], 2)
        check(p.returncode == 0, "-predict exits 0")
        with h5py.File("run2.h5", "r") as f:
            W1, w2 = f["solution/W1"][()], f["solution/w2"][()]
        with h5py.File("pred.h5", "r") as f:
            pred = f["predictions"][()]
            classes = f["classes"][()]
        expected = np.maximum(Xt @ W1.T, 0) @ w2
        check(np.allclose(pred, expected, rtol=1e-12, atol=1e-12), "-predict writes the network's outputs")
        check(np.array_equal(classes, np.where(expected > 0, 1.0, -1.0)), "-predict writes the classes")

    # A beta so large that every group is zero: a network without neurons, still predicting.
    p = run(["-data", "train.h5", "-P", "4", "-beta", "1e6", "-max_it", "2", "-output", "empty.h5"], 2)
    check(p.returncode == 0, "a run whose network has no neurons exits 0")
    p = run(["-predict", "-network", "empty.h5", "-data", "test.h5", "-output", "pred0.h5"], 1)
    if p.returncode == 0:
        with h5py.File("pred0.h5", "r") as f:
            check(np.all(f["predictions"][()] == 0), "the empty network predicts 0")
    else:
        check(False, "-predict with an empty network exits 0")

    # Checkpoint/restart: 3 + 3 rows equal 6 rows straight (squared loss; ADMM-RBCD, whose
    # block order is keyed by the ADMM iteration; hinge with -validation_fraction, whose best
    # iterate so far is solver state).
    write("train01.h5", X, (y + 1) / 2)
    for tag, extra in (("", ["-data", "train.h5"]),
                       ("rbcd-", ["-data", "train01.h5", "-loss", "bce", "-bce_solver", "rbcd"]),
                       ("val-", ["-data", "train.h5", "-loss", "hinge", "-validation_fraction", "0.3",
                                 "-validation_patience", "1000"])):
        short = extra + ["-P", "8", "-beta", str(beta), "-record_every", "7", "-tol", "1e-12"]
        run(short + ["-max_it", "6", "-output", f"{tag}straight.h5"], 2)
        run(short + ["-max_it", "3", "-checkpoint", f"{tag}ck.h5", "-output", f"{tag}first.h5"], 2)
        p = run(short + ["-max_it", "6", "-restart", f"{tag}ck.h5", "-output", f"{tag}resumed.h5"], 2)
        check(p.returncode == 0, f"{tag}restart exits 0")
        if p.returncode == 0:
            with h5py.File(f"{tag}straight.h5", "r") as a, h5py.File(f"{tag}resumed.h5", "r") as b:
                same = np.array_equal(a["solution/v"][()], b["solution/v"][()]) and \
                    np.array_equal(a["history/objective"][()], b["history/objective"][()])
                check(same, f"{tag}restart from a checkpoint continues exactly")

    # Bad input.
    write("labels01.h5", X, (y + 1) / 2)
    write("wide.h5", np.hstack([Xt, Xt[:, :1]]), yt)
    cases = [
        (["-data", "labels01.h5"], "label", "squared loss with 0/1 labels"),
        (["-data", "train.h5", "-loss", "bce"], "label", "bce with +-1 labels"),
        (["-data", "train.h5", "-test", "wide.h5"], "features", "test set of another dimension"),
        (["-data", "train.h5", "-P", "0"], "-P", "P = 0"),
        (["-data", "train.h5", "-validation_fraction", "1"], "-validation_fraction", "validation fraction 1"),
        (["-data", "train.h5", "-loss", "hinge", "-bce_solver", "rbcd"], "-bce_solver",
         "ADMM-RBCD with a loss other than bce"),
    ]
    check_rejected(cases)
    finish()


if __name__ == "__main__":
    main()
