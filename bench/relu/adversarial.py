#!/usr/bin/python3
"""Standard vs adversarial training of parasol-relu: clean and robust test accuracy (the
exact worst case of the convex model and PGD on the recovered network) at a few l_inf radii.

    bench/relu/adversarial.py BUILD_DIR [--ranks 2] [--iterations 3000] [--data fmnist]

--data synthetic (default): one strong feature (y + 0.5 N(0,1)) and 19 weak ones
(0.3 y + N(0,1)), 600 training and 1,000 test points, radii 0.1 0.2 0.3.
--data fmnist: Fashion-MNIST T-shirt (+1) vs shirt (-1), the first 2,000 training and 1,000
test images of the two classes, pixels in [0, 1] averaged over 4x4 blocks (d = 49), radii
0.02 0.05 0.1 (needs dataset-fashion-mnist).
P = 16, -bias, beta 0.1, hinge loss. Both models run the same number of ADMM iterations
(-max_it iterations / 100 rows of 100).
"""
import gzip
import argparse
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

# The synthetic data of the adversarial script test (one strong feature, d - 1 weak ones).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "relu"))
from adversarial_test import make_data  # noqa: E402


def fmnist(images, labels, count):
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read()[8:], dtype=np.uint8)
    with gzip.open(images) as f:
        X = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 28, 28) / 255.0
    keep = np.flatnonzero((y == 0) | (y == 6))[:count]
    X = X[keep].reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49)
    return X, np.where(y[keep] == 0, 1.0, -1.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--data", choices=("synthetic", "fmnist"), default="synthetic")
    args = parser.parse_args()
    relu = os.path.abspath(os.path.join(args.build, "drivers", "parasol-relu"))
    os.chdir(tempfile.mkdtemp(prefix="relu-adversarial-bench-"))
    src = "/usr/share/datasets/fashion-mnist/"
    radii = (0.1, 0.2, 0.3) if args.data == "synthetic" else (0.02, 0.05, 0.1)
    for name, n, seed in (("train.h5", 600, 1), ("test.h5", 1000, 2)):
        if args.data == "synthetic":
            X, y = make_data(n, 20, seed)
        elif name == "train.h5":
            X, y = fmnist(src + "train-images-idx3-ubyte.gz", src + "train-labels-idx1-ubyte.gz", 2000)
        else:
            X, y = fmnist(src + "t10k-images-idx3-ubyte.gz", src + "t10k-labels-idx1-ubyte.gz", 1000)
        with h5py.File(name, "w") as f:
            f["X"] = X
            f["y"] = y

    def run(extra, ranks=args.ranks):
        cmd = ["mpiexec", "-n", str(ranks), "--oversubscribe", relu] + extra
        start = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return out, time.time() - start

    common = ["-data", "train.h5", "-P", "16", "-bias", "-beta", "0.1", "-loss", "hinge", "-tol", "1e-6",
              "-record_every", "100", "-max_it", str(args.iterations // 100)]
    print(f"load: {os.getloadavg()[0]:.1f}")
    _, seconds = run(common + ["-output", "standard.h5"])
    models = [("standard", "standard.h5", 0.0, seconds)]
    for eps in radii:
        _, seconds = run(common + ["-method", "adversarial", "-epsilon", str(eps), "-output", f"adv{eps}.h5"])
        models.append((f"adversarial eps {eps}", f"adv{eps}.h5", eps, seconds))
    print(f"{'model':24s} {'train s':>8s} {'clean':>6s} " +
          " ".join(f"{'wc ' + str(e):>8s} {'pgd ' + str(e):>8s}" for e in radii))
    for name, path, _, seconds in models:
        row = []
        clean = None
        for eps in radii:
            for attack in ("worst_case", "pgd"):
                run(["-predict", "-network", path, "-data", "test.h5", "-attack", attack, "-epsilon", str(eps),
                     "-output", "attack.h5"])
                with h5py.File("attack.h5", "r") as f:
                    row.append(f.attrs["robust_accuracy"])
                    clean = f.attrs["accuracy"]
        print(f"{name:24s} {seconds:8.1f} {clean:6.3f} " + " ".join(f"{a:8.3f}" for a in row))
    print(f"load: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
