#!/usr/bin/python3
"""Benchmarks of parasol-sparsecode (see docs/sparsecode.md for measured numbers).

  1. BSC vs scikit-learn MiniBatchDictionaryLearning on the same 20,000 centred 8x8
     Fashion-MNIST patches with the same number of atoms (32), in the same run: time per
     EM iteration / per pass over the data, and the fit (BSC's truncated log-likelihood per
     point; reconstruction MSE of both, BSC from its MAP states via -infer).
  2. ET speed-up over exact EM at H = 16 (8x8 bars): seconds per iteration with H' = 8,
     gamma = 4 against H' = gamma = H (all 2^16 states).
  3. EM iterations per second at 1 and 2 ranks for N = 100,000 bars points.

usage: bench.py --bin BUILD_DIR [--work DIR] [--quick]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def run(ranks, program, *args):
    command = ["mpiexec", "-n", str(ranks), "--oversubscribe", program] + [str(a) for a in args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("%s failed:\n%s%s" % (" ".join(command), result.stdout, result.stderr))
    return result


def history(path):
    with h5py.File(path, "r") as f:
        return {k: f["history"][k][...] for k in f["history"].keys()}


def seconds_per_iteration(h, skip=1):
    """Median time of one iteration from the run file's wall_time column."""
    return float(np.median(np.diff(h["wall_time"])[skip:]))


def bench_sklearn_vs_bsc(bindir, work, quick):
    images, patches = os.path.join(work, "images.h5"), os.path.join(work, "patches.h5")
    count = 5000 if quick else 20000
    run(1, os.path.join(bindir, "parasol-data"), "convert", "-input", IMAGES, "-scale",
        "-output", images)
    run(1, os.path.join(bindir, "parasol-data"), "patches", "-input", images, "-size", 8,
        "-count", count, "-seed", 1, "-center", "-output", patches)
    out = os.path.join(work, "bsc.h5")
    max_it = 20 if quick else 50
    run(1, os.path.join(bindir, "parasol-sparsecode"), "-model", "bsc", "-data", patches,
        "-H", 32, "-Hprime", 6, "-gamma", 3, "-max_it", max_it, "-anneal_T", "0:2,0.4:1",
        "-anneal_ncut", 0, "-tol", 1e-300, "-infer", patches, "-infer_topk", 1, "-output", out)
    h = history(out)
    with h5py.File(out, "r") as f, h5py.File(patches, "r") as p:
        X = p["X"][...]
        W = f["solution/W"][...]
        S = f["inference/states"][...][:, :32]
    bsc = {"seconds_per_iteration": seconds_per_iteration(h), "iterations": int(len(h["objective"])),
           "log_likelihood_per_point": float(h["objective"][-1]),
           "reconstruction_mse": float(np.mean((X - S @ W) ** 2)),
           "mean_active_units": float(np.mean(np.sum(S != 0, axis=1)))}

    from sklearn.decomposition import MiniBatchDictionaryLearning
    epochs = 2 if quick else 5
    model = MiniBatchDictionaryLearning(n_components=32, batch_size=256, alpha=0.1,
                                        max_iter=epochs, tol=0, max_no_improvement=None,
                                        random_state=0,
                                        transform_algorithm="omp",
                                        transform_n_nonzero_coefs=2)
    start = time.perf_counter()
    model.fit(X)
    fit_time = time.perf_counter() - start
    codes = model.transform(X)
    recon = codes @ model.components_
    lasso = 0.5 * np.sum((X - recon) ** 2, axis=1).mean() + 0.1 * np.abs(codes).sum(axis=1).mean()
    sk = {"seconds_per_epoch": fit_time / epochs, "epochs": epochs,
          "reconstruction_mse": float(np.mean((X - recon) ** 2)),
          "objective_per_point": float(lasso),
          "mean_active_units": float(np.mean(np.sum(codes != 0, axis=1)))}
    # A like-for-like fit measure for both: the Gaussian log-likelihood per point of the data
    # around each method's reconstruction with the noise variance set to its MSE (code
    # priors left out; BSC's own truncated log-likelihood above includes its prior).
    D = X.shape[1]
    for r in (bsc, sk):
        r["gaussian_reconstruction_loglik_per_point"] = float(
            -0.5 * D * np.log(2 * np.pi * np.e * r["reconstruction_mse"]))
    return {"N": int(len(X)), "D": int(D), "atoms": 32, "bsc": bsc, "sklearn": sk}


def bench_et_speedup(bindir, work, quick):
    data = os.path.join(work, "bars16.h5")
    N = 200 if quick else 500
    run(1, os.path.join(bindir, "parasol-data"), "bars", "-H", 16, "-N", N, "-seed", 1,
        "-output", data)
    result = {"N": N, "H": 16}
    for name, hp, gamma, its in (("et", 8, 4, 6), ("exact", 16, 16, 3)):
        out = os.path.join(work, "speed_%s.h5" % name)
        run(1, os.path.join(bindir, "parasol-sparsecode"), "-data", data, "-H", 16, "-Hprime", hp,
            "-gamma", gamma, "-max_it", its, "-anneal_T", 1, "-anneal_ncut", 0, "-tol", 1e-300,
            "-output", out)
        result[name] = seconds_per_iteration(history(out), skip=0)
    result["speedup"] = result["exact"] / result["et"]
    return result


def bench_scaling(bindir, work, quick):
    data = os.path.join(work, "bars100k.h5")
    N = 20000 if quick else 100000
    run(1, os.path.join(bindir, "parasol-data"), "bars", "-H", 10, "-N", N, "-seed", 1,
        "-output", data)
    result = {"N": N}
    for ranks in (1, 2):
        out = os.path.join(work, "scale_%d.h5" % ranks)
        run(ranks, os.path.join(bindir, "parasol-sparsecode"), "-data", data, "-H", 10,
            "-Hprime", 8, "-gamma", 5, "-max_it", 6, "-anneal_T", 1, "-tol", 1e-300,
            "-output", out)
        result["iterations_per_second_%d" % ranks] = 1.0 / seconds_per_iteration(history(out))
    result["speedup_2_ranks"] = result["iterations_per_second_2"] / result["iterations_per_second_1"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="folder with parasol-sparsecode, parasol-data")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    parser.add_argument("--only", choices=("sklearn", "speedup", "scaling"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    with tempfile.TemporaryDirectory(prefix="parasol-sparsecode-bench-") as tmp:
        work = args.work or tmp
        os.makedirs(work, exist_ok=True)
        results = {}
        if args.only in (None, "sklearn"):
            results["sklearn_vs_bsc"] = bench_sklearn_vs_bsc(args.bin, work, args.quick)
        if args.only in (None, "speedup"):
            results["et_speedup_H16"] = bench_et_speedup(args.bin, work, args.quick)
        if args.only in (None, "scaling"):
            results["scaling"] = bench_scaling(args.bin, work, args.quick)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
