#!/usr/bin/env python3
"""Summarize bench/alsketch/run.sh: per problem, parasol-alsketch vs IPOPT vs TAO ALMM
(iterations, function evaluations, time, memory) and the ratios peer / alsketch."""
import glob
import os
import re
import sys

import h5py

log, out = sys.argv[1], sys.argv[2]
rows = {}
for line in open(log):
    kv = dict(re.findall(r"(\w+)=([^\s]+)", line))
    if not kv.get("problem"):
        continue
    key = (kv["problem"], kv.get("N", ""))
    solver = line.split()[0]
    rows.setdefault(key, {})[solver] = kv
    if solver.startswith("alsketch"):
        # Solve time plus the KKT setup done before the first iteration (ksp).
        t = re.search(r"iterations in ([0-9.]+) s", line)
        setup = re.search(r"setup before the first iteration ([0-9.]+) s", line)
        kv["time"] = str(float(t.group(1)) + (float(setup.group(1)) if setup else 0.0)) if t else "nan"
        mem = re.search(r"problem data ([0-9.]+) MB, solver peak above setup ([0-9.]+) MB", line)
        if mem:
            kv["data_MB"], kv["extra_MB"] = mem.group(1), mem.group(2)
for path in glob.glob(os.path.join(out, "*.h5")):
    name = os.path.basename(path)[:-3].split("-")
    with h5py.File(path, "r") as f:
        # ksp_<preset>[_amg]: the lean presets' rows (run.sh)
        lean = re.match(r"ksp_(schur|fieldsplit)(_amg)?$", name[2])
        solver = ("alsketch_" + ("sc" if lean.group(1) == "schur" else "fs") + (lean.group(2) or "")
                  if lean else "alsketch")
        r = rows.setdefault((name[0], name[1]), {}).setdefault(solver, {})
        r["iterations"] = str(len(f["history/objective"]))
        r["kkt"] = "%.2e" % f["history/kkt_residual"][-1]
        r["objective"] = "%.10g" % f["history/objective"][-1]
        if "function_evaluations" in f["solution"].attrs:
            r["f_evals"] = str(int(f["solution"].attrs["function_evaluations"]))
print("%-10s %5s %-15s %6s %7s %9s %8s %12s %8s %s" % ("problem", "N", "solver", "iters", "f_evals",
                                                      "time_s", "mem_MB", "objective", "t/t_al",
                                                      "status / memory"))
# A peer that stopped with an error has no row (see results.txt for its message).
for (p, N), solvers in sorted(rows.items()):
    base = float(solvers.get("alsketch", {}).get("time", "nan").rstrip("s") or "nan")
    for s in ("alsketch", "alsketch_sc", "alsketch_sc_amg", "alsketch_fs", "alsketch_fs_amg",
              "ipopt", "tao"):
        r = solvers.get(s)
        if not r:
            continue
        t = float(r.get("time", "nan"))
        mem = r.get("peak_rss", "?")  # alsketch: KB of mpiexec (time -f %M); peers: MB
        mem = str(int(mem) // 1024) if s.startswith("alsketch") and mem.isdigit() else mem
        note = r.get("status", "")
        if s.startswith("alsketch") and "extra_MB" in r:
            data, extra = float(r["data_MB"]), float(r["extra_MB"])
            note = "data %s MB, solver %s MB above setup" % (r["data_MB"], r["extra_MB"])
            if data >= 0.1:
                note += " (%.1fx)" % (extra / data)
        if s == "tao":
            note += " %s/%s" % (r.get("almm", "?"), r.get("subsolver", "?"))
        print("%-10s %5s %-15s %6s %7s %9.3f %8s %12s %8.2f %s" % (
            p, N, s, r.get("iterations", "?"), r.get("f_evals", "-"), t, mem,
            "%.6g" % float(r.get("objective", "nan")), t / base if base > 0 else float("nan"), note))
