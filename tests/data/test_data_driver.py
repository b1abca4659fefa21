"""parasol-data end to end: conversion of the real Fashion-MNIST test set checked with h5py
against an independent decoding in numpy, derived sets identical at 1 and 3 ranks, and bad
input failing with the file's name and no output left behind.

Run by ctest (PARASOL_BIN, MPIEXEC set); needs /usr/bin/python3 with h5py and numpy.
"""
import gzip
import os
import shutil
import subprocess
import tempfile
import unittest
import zlib

import h5py
import numpy as np

BIN = os.environ.get("PARASOL_BIN", "build/drivers")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
FASHION = "/usr/share/datasets/fashion-mnist"


def run(ranks, *args, check=True):
    """parasol-data under mpiexec, or as a singleton for ranks=0 (a failing mpiexec job
    takes seconds to wind down, a singleton does not)."""
    cmd = [os.path.join(BIN, "parasol-data")] + [str(a) for a in args]
    if ranks > 0:
        cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe"] + cmd
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def idx_numpy(path):
    """Independent IDX decoding: magic, big-endian dims, unsigned bytes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


class DataDriver(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="parasol-data-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    @unittest.skipUnless(os.path.isdir(FASHION), "dataset-fashion-mnist not installed")
    def test_fashion_mnist_test_set(self):
        images = os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")
        labels = os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")
        out = self.path("t10k.h5")
        run(2, "convert", "-input", images, "-labels", labels, "-output", out, "-scale")
        expected_X = idx_numpy(images).reshape(10000, 784) / 255.0
        expected_y = idx_numpy(labels).astype(np.float64)
        with h5py.File(out, "r") as f:
            X = f["X"][...]
            self.assertEqual(X.shape, (10000, 784))
            self.assertEqual(X.dtype, np.float64)
            np.testing.assert_array_equal(X, expected_X)
            np.testing.assert_array_equal(f["y"][...], expected_y)
            self.assertEqual(int(f.attrs["X_crc32"]), zlib.crc32(X.tobytes()))
            self.assertIn("convert", f.attrs["description"].decode()
                          if isinstance(f.attrs["description"], bytes) else f.attrs["description"])
        self.assertFalse(os.path.exists(out + ".partial"))

        # Classes 0 (T-shirt) vs 6 (shirt): +1 / -1, input order kept.
        pair = self.path("t10k-0-6.h5")
        run(3, "subset", "-input", out, "-classes", "0,6", "-output", pair)
        keep = (expected_y == 0) | (expected_y == 6)
        with h5py.File(pair, "r") as f:
            np.testing.assert_array_equal(f["X"][...], expected_X[keep])
            np.testing.assert_array_equal(f["y"][...], np.where(expected_y[keep] == 0, 1.0, -1.0))
        self.assertEqual(keep.sum(), 2000)

    def test_derived_sets_do_not_depend_on_rank_count(self):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(101, 16)) * np.arange(1, 17)
        y = rng.integers(0, 4, size=101)
        csv = self.path("in.csv")
        with open(csv, "w") as f:
            f.write("label," + ",".join(f"f{k}" for k in range(16)) + "\n")
            for label, row in zip(y, X):
                f.write(f"{label}," + ",".join(repr(v) for v in row) + "\n")
        src = self.path("in.h5")
        run(2, "convert", "-input", csv, "-label_column", 0, "-output", src)
        with h5py.File(src, "r") as f:
            np.testing.assert_array_equal(f["X"][...], X)
            np.testing.assert_array_equal(f["y"][...], y)

        outputs = {}
        for ranks in (1, 3):
            p = lambda name: self.path(f"{name}-{ranks}.h5")
            run(ranks, "split", "-input", src, "-train", p("train"), "-validation", p("val"),
                "-test", p("test"), "-fractions", "0.6,0.2,0.2", "-seed", 7)
            run(ranks, "corrupt", "-input", p("train"), "-rate", 0.25, "-seed", 3,
                "-num_classes", 4, "-output", p("noisy"))
            run(ranks, "standardize", "-input", p("noisy"), "-output", p("std"))
            run(ranks, "standardize", "-input", p("test"), "-using", p("std"), "-output", p("tstd"))
            run(ranks, "bars", "-N", 50, "-seed", 2, "-signs", "random", "-output", p("bars"))
            run(ranks, "patches", "-input", p("bars"), "-size", 3, "-count", 40, "-center",
                "-output", p("patches"))
            outputs[ranks] = {}
            for name in ("train", "val", "test", "noisy", "std", "tstd", "bars", "patches"):
                with h5py.File(p(name), "r") as f:
                    outputs[ranks][name] = {k: f[k][...] for k in f.keys()}
        for name, one in outputs[1].items():
            three = outputs[3][name]
            self.assertEqual(sorted(one), sorted(three), name)
            for key in one:
                np.testing.assert_allclose(three[key], one[key], rtol=1e-12, atol=1e-12,
                                           err_msg=f"{name}/{key}")
        o = outputs[1]
        self.assertEqual([len(o[k]["y"]) for k in ("train", "val", "test")], [61, 20, 20])
        all_rows = np.concatenate([o[k]["X"] for k in ("train", "val", "test")])
        np.testing.assert_array_equal(np.sort(all_rows[:, 0]), np.sort(X[:, 0]))
        np.testing.assert_array_equal(o["noisy"]["y_true"], o["train"]["y"])
        np.testing.assert_allclose(o["std"]["X"].mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(o["std"]["X"].std(axis=0), 1, atol=1e-12)
        self.assertEqual(o["bars"]["X"].shape, (50, 25))
        self.assertEqual(o["bars"]["W_true"].shape, (10, 25))
        self.assertEqual(o["patches"]["X"].shape, (40, 9))

    def test_bad_input_fails_naming_the_file_and_leaves_nothing(self):
        good = bytes([0, 0, 8, 3]) + (4).to_bytes(4, "big") + (5).to_bytes(4, "big") * 2 \
            + bytes(range(100))
        cut = self.path("cut.idx.gz")
        with open(cut, "wb") as f:
            f.write(gzip.compress(good + bytes(4000))[:60])
        magic = self.path("magic.idx")
        with open(magic, "wb") as f:
            f.write(bytes([0, 1, 8, 3]) + good[4:])
        cases = [(cut, "truncated gzip"), (magic, "")]
        for bad, problem in cases:
            out = self.path("out.h5")
            r = run(2, "convert", "-input", bad, "-format", "idx", "-output", out, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(bad, r.stderr)
            self.assertIn(problem, r.stderr)
            self.assertEqual(r.stderr.count("parasol-data: error"), 1)  # rank 0 reports once
            self.assertFalse(os.path.exists(out))
            self.assertFalse(os.path.exists(out + ".partial"))
        r = run(0, "convert", "-input", magic, "-output", self.path("o.h5"), check=False)
        self.assertIn("wrong magic number", r.stderr)

        not_h5 = self.path("text.h5")
        with open(not_h5, "w") as f:
            f.write("hello\n")
        r = run(2, "subset", "-input", not_h5, "-classes", "0,1", "-output", self.path("s.h5"),
                check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(not_h5 + ": not an HDF5 file", r.stderr)

        for args, message in [(["frobnicate"], "unknown subcommand"),
                              ([], "missing subcommand"),
                              (["split", "-input", not_h5, "-train", "a", "-test", "b",
                                "-fractions", "0.7,0.7"], "add up to 1"),
                              (["subset", "-input", not_h5, "-output", "x", "-labels", "pm1",
                                "-classes", "1,2,3"], "exactly two"),
                              (["bars", "-H", 7, "-output", "x"], "even")]:
            r = run(0, *args, check=False)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(message, r.stderr, args)

    def test_help_lists_subcommand_options(self):
        r = run(1, "split", "-help")
        self.assertEqual(r.returncode, 0)
        for option in ("-fractions", "-train", "-validation", "-seed"):
            self.assertIn(option, r.stdout)
        r = run(1, "-help")
        self.assertIn("subcommands", r.stdout)


if __name__ == "__main__":
    unittest.main()
