#!/usr/bin/python3
"""Benchmarks of parasol-bilevel (docs/bilevel.md, "Measurements").

  hypercleaning: for each method, wall time until the test accuracy first reaches --target
                 on Fashion-MNIST hyper-cleaning (50% corrupted labels), the final test
                 accuracy and the share of corrupted / clean samples with weight < 1/2.
  multiblock:    BSVRBv1/v2 on a8a (or w8a, --dataset) with m = 100 blocks, I = 10, B = 32 at
                 1 and --ranks ranks: loop time of a fixed number of iterations (runs at 1
                 and --ranks ranks back to back, --repeat times, medians), the speed-up,
                 and whether x is identical; --profile adds each rank's time per phase
                 (-bsvrb_profile: sampling, block work, waiting for the busiest rank, the
                 exchange, the replicated update, the full evaluations); --contention
                 runs --ranks independent 1-rank copies at once: their slowdown against one
                 copy alone (no communication involved) bounds the speed-up the host allows.

usage: bench.py [--bin build/drivers] [--part hypercleaning|multiblock|all] [--ranks 2]
                [--iterations N] [--target 0.82] [--dataset a8a|w8a] [--profile]
                [--methods bsvrb1,bsvrb2] [--repeat N] [--contention]
                [--libsvm /work/shared/data/libsvm]
Needs /usr/bin/python3 with h5py and numpy. Writes results as JSON to --json (default
bench-bilevel.json) and a table to stdout.
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

# Settings per method on hyper-cleaning (minibatches of 1,000 training/validation rows).
HYPERCLEANING = {
    "borep": ["-borep_lr_x", "3", "-borep_lr_y", "0.05", "-borep_nu", "0.02",
              "-borep_interval", "1", "-borep_lower_steps", "1", "-borep_init_steps", "1000",
              "-borep_beta", "0.9"],
    "lvhba": ["-lvhba_alpha", "0.05", "-lvhba_alpha_x", "1000", "-lvhba_eta", "0.05",
              "-lvhba_gamma1", "1", "-lvhba_c0", "0.5", "-lvhba_p", "0.3"],
    "penalty": ["-penalty_variant", "single", "-penalty_sigma", "0.5", "-penalty_lr_x", "500",
                "-penalty_lr_y", "0.05", "-penalty_lr_z", "0.05", "-penalty_momentum", "0.5"],
}


def run(binary, args, ranks, env=None, stderr_lines=None):
    cmd = [os.environ.get("MPIEXEC", "mpiexec"), "-n", str(ranks), "--oversubscribe",
           binary] + args
    start = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    if stderr_lines is not None:
        stderr_lines.extend(p.stderr.splitlines())
    return time.time() - start


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def history(path):
    with h5py.File(path, "r") as f:
        h = {name: f["history"][name][...] for name in f["history"]}
        x = f["solution/x"][...]
    return h, x


def bench_hypercleaning(args, out):
    results = {}
    for method, settings in HYPERCLEANING.items():
        path = os.path.join(out, f"hc-{method}.h5")
        run(args.bin_bilevel, ["-problem", "hypercleaning", "-method", method, "-batch", "1000",
                               "-max_it", str(args.iterations), "-eval_every", "50",
                               "-seed", "1", "-output", path] + settings, args.ranks)
        h, _ = history(path)
        acc = h["test_accuracy"]
        reached = np.nonzero(acc >= args.target)[0]
        results[method] = {
            "iterations": int(h["iteration"][-1]),
            "wall_time": float(h["wall_time"][-1]),
            "time_to_target": float(h["wall_time"][reached[0]]) if len(reached) else None,
            "best_test_accuracy": float(acc.max()),
            "final_test_accuracy": float(acc[-1]),
            "final_val_accuracy": float(h["val_accuracy"][-1]),
            "corrupted_below_half": float(h["corrupted_below_half"][-1]),
            "clean_below_half": float(h["clean_below_half"][-1]),
        }
        r = results[method]
        print(f"hypercleaning {method:8s} {r['iterations']:6d} it {r['wall_time']:8.1f} s  "
              f"to {args.target:.3f}: {r['time_to_target']}  test {r['final_test_accuracy']:.4f} "
              f"(best {r['best_test_accuracy']:.4f})  corrupted<1/2 {r['corrupted_below_half']:.3f} "
              f"clean<1/2 {r['clean_below_half']:.3f}", flush=True)
    return results


# LIBSVM files and their feature counts.
DATASETS = {"a8a": 123, "w8a": 300}


def multiblock_args(args, data, method, path):
    return ["-problem", "multiblock", "-data", data, "-method", method, "-batch", "32",
            "-bsvrb_blocks", "10", "-max_it", str(args.iterations), "-eval_every",
            str(args.iterations), "-seed", "1", "-output", path]


def loop_seconds(h):
    # Loop time only (loading the data excluded): wall_time of the last row minus the first
    # (the last row includes one full evaluation of the 100 blocks).
    return float(h["wall_time"][-1] - h["wall_time"][0])


def contention(args, data, method):
    """--ranks independent 1-rank runs at the same time against one run alone: how much one
    rank slows down when the other cores do the same work (memory bandwidth, shared cache, the
    host's scheduling). No communication is involved, so --ranks / slowdown bounds the
    --ranks-rank speed-up. The copies run unbound (mpiexec binds every lone rank to core 0)."""
    mpiexec = os.environ.get("MPIEXEC", "mpiexec")
    paths = [os.path.join(os.path.dirname(data), f"mb-{method}-copy{i}.h5")
             for i in range(args.ranks)]

    def copies(count):
        jobs = [subprocess.Popen([mpiexec, "--bind-to", "none", "-n", "1", args.bin_bilevel]
                                 + multiblock_args(args, data, method, path),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for path in paths[:count]]
        for job in jobs:
            if job.wait() != 0:
                sys.exit(f"{method}: 1-rank copy failed\n{job.stderr.read()}")
        return [loop_seconds(history(path)[0]) for path in paths[:count]]

    alone, concurrent = [], []
    for repetition in range(args.repeat):
        alone += copies(1)
        concurrent += copies(args.ranks)
    slowdown = float(np.median(concurrent)) / float(np.median(alone))
    print(f"multiblock {method} ({args.dataset}) CONTENTION: {args.ranks} independent 1-rank "
          f"runs at once take {slowdown:.2f}x one run alone (medians of {len(concurrent)} and "
          f"{len(alone)}): without any communication the {args.ranks}-rank speed-up is at most "
          f"{args.ranks / slowdown:.2f}x on this host", flush=True)
    return {"alone_seconds": alone, "concurrent_seconds": concurrent, "slowdown": slowdown,
            "speedup_bound": args.ranks / slowdown}


def bench_multiblock(args, out):
    data = os.path.join(out, f"{args.dataset}.h5")
    run(args.bin_data, ["convert", "-input",
                        os.path.join(args.libsvm, f"{args.dataset}_training.txt"),
                        "-format", "libsvm", "-features", str(DATASETS[args.dataset]),
                        "-output", data], 1)
    results = {}
    for method in args.methods.split(","):
        times, xs = {1: [], args.ranks: []}, {}
        # 1 and --ranks ranks back to back, --repeat times; the median of each is reported.
        for repetition in range(args.repeat):
            for ranks in (1, args.ranks):
                path = os.path.join(out, f"mb-{method}-{ranks}.h5")
                before = load()
                profile = []
                run(args.bin_bilevel, multiblock_args(args, data, method, path)
                    + (["-bsvrb_profile"] if args.profile else []), ranks,
                    stderr_lines=profile)
                h, x = history(path)
                seconds = loop_seconds(h)
                times[ranks].append(seconds)
                if repetition == 0:
                    xs[ranks] = x
                elif not np.array_equal(x, xs[ranks]):
                    sys.exit(f"{method}: x differs between repetitions at {ranks} ranks")
                print(f"  {method} {args.dataset} at {ranks} rank(s): {seconds:.3f} s "
                      f"({before} before, {load()} after)", flush=True)
                for line in sorted(l for l in profile if l.startswith("bsvrb profile")):
                    print("    " + line, flush=True)
        one, many = float(np.median(times[1])), float(np.median(times[args.ranks]))
        results[method] = {
            "dataset": args.dataset, "iterations": args.iterations, "repeat": args.repeat,
            "seconds_1": one, f"seconds_{args.ranks}": many,
            "all_seconds_1": times[1], f"all_seconds_{args.ranks}": times[args.ranks],
            "speedup": one / many,
            # each back-to-back pair's own ratio: how much the host moved during the run
            "pair_speedups": [a / b for a, b in zip(times[1], times[args.ranks])],
            "identical_x": bool(np.array_equal(xs[1], xs[args.ranks])),
        }
        r = results[method]
        quartiles = np.percentile(r["pair_speedups"], [25, 75])
        print(f"multiblock {method} ({args.dataset}, {args.iterations} it, median of "
              f"{args.repeat}): 1 rank {one:.3f} s, {args.ranks} ranks {many:.3f} s, "
              f"SPEED-UP {r['speedup']:.2f}x (goal 1.8x at 2 ranks; pairs' quartiles "
              f"{quartiles[0]:.2f}-{quartiles[1]:.2f}x), identical x: {r['identical_x']}",
              flush=True)
        if args.contention:
            r["contention"] = contention(args, data, method)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/drivers")
    parser.add_argument("--part", default="all", choices=["hypercleaning", "multiblock", "all"])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--target", type=float, default=0.82)
    parser.add_argument("--dataset", default="a8a", choices=sorted(DATASETS))
    parser.add_argument("--libsvm", default="/work/shared/data/libsvm")
    parser.add_argument("--methods", default="bsvrb1,bsvrb2",
                        help="multiblock: comma-separated methods")
    parser.add_argument("--repeat", type=int, default=1,
                        help="multiblock: runs at 1 and --ranks ranks, back to back; medians")
    parser.add_argument("--profile", action="store_true",
                        help="multiblock: print each rank's seconds per phase")
    parser.add_argument("--contention", action="store_true",
                        help="multiblock: also --ranks independent 1-rank runs at once (the "
                             "host's bound on the speed-up)")
    parser.add_argument("--json", default="bench-bilevel.json")
    args = parser.parse_args()
    args.bin_bilevel = os.path.join(args.bin, "parasol-bilevel")
    args.bin_data = os.path.join(args.bin, "parasol-data")
    results = {}
    with tempfile.TemporaryDirectory() as out:
        if args.part in ("hypercleaning", "all"):
            results["hypercleaning"] = bench_hypercleaning(args, out)
        if args.part in ("multiblock", "all"):
            results["multiblock"] = bench_multiblock(args, out)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
