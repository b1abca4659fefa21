#!/usr/bin/env python3
"""End-to-end test of jobscripts/ on a real single-node SLURM cluster.

Submits every job script with small bars-demo problems and checks what they leave behind:

* run.sbatch: one run file, status and history as the driver reports them;
* sweep.sbatch: an array job with one run file per params line, carrying that line's
  options;
* scaling.sbatch (launched with mpirun, the others with srun): one run file per rank count,
  the same iterates at 1 and 2 ranks, and the scaling table;
* preemptible.sbatch: signalled with SIGUSR1 mid-run (as --signal=B:USR1@T would), it
  checkpoints, requeues itself, resumes and ends with the same result as the uninterrupted
  run.sbatch run of the same problem;
* pipeline.sh: data preparation -> two solves -> report, each stage after the previous one
  (--dependency=afterok), with the report made from both solves.

The cluster is the one .ci/test.sh started; when none is up this test starts it with
.ci/slurm-up.sh and stops it afterwards. Waiting is bounded: on timeout the jobs are
cancelled and the test fails with their logs. Exit 77 (skipped) when SLURM is not installed.
"""
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

SOURCE = os.environ.get("PARASOL_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PARASOL_BIN", os.path.join(SOURCE, "build", "drivers"))
JOBSCRIPTS = os.path.join(SOURCE, "jobscripts")
SLURM_DIR = os.environ.get("PARASOL_SLURM_DIR", "/var/tmp/parasol-slurm")
WORK = os.path.abspath("slurm-work")
# Whole-test budget for the jobs themselves (the ctest TIMEOUT is larger).
JOB_BUDGET_S = float(os.environ.get("PARASOL_SLURM_TEST_BUDGET", "200"))
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED"}

# The problem every solve uses: the bars demo, small enough for seconds on 2 busy cores.
# The preemptible run and its reference need enough iterations to be caught mid-run.
SMALL = ["-demo_N", "200", "-max_it", "6", "-seed", "2"]
# Long enough (about 10 s on an idle 2-core host) that the signal, sent after the first
# iteration, always finds the job still running; -tol tiny so it stops at -max_it.
RESTART_PROBLEM = ["-demo_N", "1000", "-max_it", "300", "-tol", "1e-300", "-seed", "3",
                   "-monitor"]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def log(message):
    print("[slurm-test %6.1fs] %s" % (time.monotonic() - T0, message), flush=True)


def run(command, check_status=True, **kwargs):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, **kwargs)
    if check_status and result.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(command), result.returncode,
                                                     result.stdout))
    return result


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def sbatch(*args, env=None):
    out = run(["sbatch", "--parsable", "--chdir=" + WORK] + list(args), env=env).stdout
    return out.strip().split(";")[0]


def job_records(job):
    """scontrol's one-line records for a job (an array job gives one per task)."""
    result = run(["scontrol", "show", "job", "-o", job], check_status=False)
    if result.returncode != 0:
        return []
    records = []
    for line in result.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobState" in fields:
            records.append(fields)
    return records


def cluster_is_up():
    if shutil.which("sinfo") is None:
        return False
    # Our own cluster (.ci/slurm-up.sh) is down when its slurmctld is not running: say so
    # at once instead of letting sinfo retry for 10 s.
    if os.environ["SLURM_CONF"].startswith(SLURM_DIR + "/"):
        try:
            with open(os.path.join(SLURM_DIR, "run", "slurmctld.pid")) as f:
                os.kill(int(f.read().strip()), 0)
        except (OSError, ValueError):
            return False
    result = run(["sinfo", "-h", "-o", "%T"], check_status=False)
    return result.returncode == 0 and re.search(r"idle|mixed|alloc", result.stdout) is not None


def read_run(path):
    with h5py.File(path, "r") as f:
        attrs = {k: (text(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
        history = {k: f["history"][k][()] for k in f["history"]}
        solution = {}
        if "solution" in f:
            f["solution"].visititems(
                lambda name, obj: solution.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset) else None)
    return attrs, history, solution


def check_run_file(path, label, nranks=None, status=("converged", "max_iterations")):
    if not check(os.path.exists(path), "%s: run file %s missing" % (label, path)):
        return None
    attrs, history, solution = read_run(path)
    check(attrs.get("status") in status,
          "%s: status %r, expected one of %s" % (label, attrs.get("status"), status))
    its = int(attrs.get("iterations", -1))
    lengths = {k: len(v) for k, v in history.items()}
    check(set(lengths.values()) == {its},
          "%s: /history lengths %s differ from iterations=%d" % (label, lengths, its))
    check(its >= 1, "%s: no iterations recorded" % label)
    if nranks is not None:
        check(int(attrs.get("nranks", -1)) == nranks,
              "%s: nranks %s, expected %d" % (label, attrs.get("nranks"), nranks))
    check(len(solution) > 0, "%s: empty /solution" % label)
    return attrs, history, solution


def max_rel_diff(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    scale = np.maximum(np.abs(a), np.abs(b))
    scale[scale == 0] = 1.0
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def same_results(label, first, second, tolerance):
    """The same iterates: every /history field but wall_time, and every /solution array."""
    (a_attrs, a_hist, a_sol), (b_attrs, b_hist, b_sol) = first, second
    check(a_attrs["iterations"] == b_attrs["iterations"] and a_attrs["status"] == b_attrs["status"],
          "%s: ended differently: %s/%s vs %s/%s" % (label, a_attrs["status"], a_attrs["iterations"],
                                                    b_attrs["status"], b_attrs["iterations"]))
    for key in sorted(set(a_hist) | set(b_hist)):
        if key == "wall_time":
            continue
        diff = max_rel_diff(a_hist.get(key, []), b_hist.get(key, [np.nan]))
        check(diff <= tolerance, "%s: /history/%s differs (max rel %.3g)" % (label, key, diff))
    check(sorted(a_sol) == sorted(b_sol), "%s: /solution holds %s vs %s" % (label, sorted(a_sol),
                                                                          sorted(b_sol)))
    for key in set(a_sol) & set(b_sol):
        diff = max_rel_diff(a_sol[key], b_sol[key])
        check(diff <= tolerance, "%s: /solution/%s differs (max rel %.3g)" % (label, key, diff))


def main():
    for name in ("parasol-sparsecode", "parasol-data"):
        if not os.access(os.path.join(BIN, name), os.X_OK):
            print("error: %s not built in %s" % (name, BIN))
            return 1

    if os.path.isdir(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    env = dict(os.environ, PARASOL_BIN=BIN, PARASOL_OUTPUT_DIR=WORK)
    os.environ.update(env)
    jobs = {}  # label -> job id

    # The preemptible run first: its requeue waits ~10 s, while the others run.
    jobs["preemptible"] = sbatch("--output=" + WORK + "/preemptible-%j.out",
                                 os.path.join(JOBSCRIPTS, "preemptible.sbatch"),
                                 "parasol-sparsecode", *RESTART_PROBLEM)
    jobs["reference"] = sbatch("--ntasks=2", "--output=" + WORK + "/reference-%j.out",
                               os.path.join(JOBSCRIPTS, "run.sbatch"), "parasol-sparsecode",
                               *(RESTART_PROBLEM + ["-output", WORK + "/reference.h5"]))
    pipeline = run([os.path.join(JOBSCRIPTS, "pipeline.sh"), WORK + "/pipeline"],
                   env=dict(env, PIPELINE_N="200", PIPELINE_MAX_IT="5", PIPELINE_RANKS="1",
                            PIPELINE_MODELS="bsc mca")).stdout
    stages = re.findall(r"^(prep|solve|report) (\d+)$", pipeline, re.M)
    check([s for s, _ in stages] == ["prep", "solve", "solve", "report"],
          "pipeline.sh printed stages %s:\n%s" % (stages, pipeline))
    for i, (stage, job) in enumerate(stages):
        jobs["pipeline-%d-%s" % (i, stage)] = job
    params = os.path.join(WORK, "params.txt")
    with open(params, "w") as f:
        f.write("# one run per line\n-seed 1\n\n-seed 2\n-model mca -seed 4\n")
    sweep_lines = [("bsc", 1), ("bsc", 2), ("mca", 4)]
    jobs["sweep"] = sbatch("--array=1-3", "--output=" + WORK + "/sweep-%A_%a.out",
                           os.path.join(JOBSCRIPTS, "sweep.sbatch"), params,
                           "parasol-sparsecode", *SMALL)
    jobs["scaling"] = sbatch("--ntasks=2", "--output=" + WORK + "/scaling-%j.out",
                             "--export=ALL,PARASOL_LAUNCHER=mpirun,PARASOL_RANKS=1 2",
                             os.path.join(JOBSCRIPTS, "scaling.sbatch"), "parasol-sparsecode",
                             *SMALL)
    log("submitted " + ", ".join("%s=%s" % kv for kv in jobs.items()))

    # Wait for everything, signalling the preemptible run once it is iterating.
    deadline = time.monotonic() + JOB_BUDGET_S
    preempt_log = os.path.join(WORK, "preemptible-%s.out" % jobs["preemptible"])
    signalled = False
    states = {}
    while True:
        states = {label: [r["JobState"] for r in job_records(job)] for label, job in jobs.items()}
        if not signalled and os.path.exists(preempt_log):
            with open(preempt_log) as f:
                if re.search(r"^\s*1\s+objective", f.read(), re.M):
                    run(["scancel", "--signal=USR1", "--batch", jobs["preemptible"]])
                    signalled = True
                    log("sent SIGUSR1 to the preemptible job's batch shell")
        if all(s and all(x in FINAL_STATES for x in s) for s in states.values()):
            break
        if time.monotonic() > deadline:
            log("timed out after %.0f s; cancelling: %s" % (JOB_BUDGET_S, states))
            run(["scancel"] + list(jobs.values()), check_status=False)
            check(False, "jobs did not finish within %.0f s: %s" % (JOB_BUDGET_S, states))
            break
        time.sleep(0.5)
    log("final states: %s" % states)
    for label, s in states.items():
        check(s and all(x == "COMPLETED" for x in s), "%s job ended %s" % (label, s))

    # run.sbatch: the reference run.
    reference = check_run_file(WORK + "/reference.h5", "run.sbatch", nranks=2)

    # preemptible.sbatch: interrupted, requeued, resumed, same result as the reference.
    check(signalled, "the preemptible job never printed its first iteration")
    with open(preempt_log) as f:
        preempt_text = f.read()
    check("status interrupted" in preempt_text and "requeueing job" in preempt_text
          and "resuming from" in preempt_text and "restarted from" in preempt_text,
          "preemptible job log does not show checkpoint, requeue and restart:\n" + preempt_text)
    record = job_records(jobs["preemptible"])
    check(record and record[0].get("Restarts") == "1",
          "preemptible job restarted %s times, expected 1" % (record and record[0].get("Restarts")))
    preempted_path = "%s/parasol-sparsecode-%s.h5" % (WORK, jobs["preemptible"])
    preempted = check_run_file(preempted_path, "preemptible.sbatch", nranks=2)
    check(os.path.exists("%s/parasol-sparsecode-%s.ckpt.h5" % (WORK, jobs["preemptible"])),
          "preemptible job left no checkpoint")
    if reference and preempted:
        options = preempted[0].get("options", "")
        check("-restart" in options, "the finished preemptible run was not a restart: " + options)
        same_results("preempted vs uninterrupted", reference, preempted, 1e-12)

    # sweep.sbatch: one file per task, each with its line's options.
    for task, (method, seed) in enumerate(sweep_lines, start=1):
        path = "%s/sweep-%s_%d.h5" % (WORK, jobs["sweep"], task)
        result = check_run_file(path, "sweep task %d" % task, nranks=1)
        if result:
            check(result[0]["method"] == method and int(result[0]["seed"]) == seed,
                  "sweep task %d ran %s seed %s, expected %s seed %d" % (
                      task, result[0]["method"], result[0]["seed"], method, seed))
    outputs = [n for n in os.listdir(WORK) if re.match(r"sweep-%s_\d+\.h5$" % jobs["sweep"], n)]
    check(len(outputs) == 3, "sweep made %d run files, expected 3: %s" % (len(outputs), outputs))

    # scaling.sbatch (mpirun): one file per rank count, same iterates, and the table.
    prefix = "%s/scaling-%s" % (WORK, jobs["scaling"])
    one = check_run_file(prefix + "-np1.h5", "scaling 1 rank", nranks=1)
    two = check_run_file(prefix + "-np2.h5", "scaling 2 ranks", nranks=2)
    if one and two:
        same_results("scaling 1 vs 2 ranks", one, two, 1e-9)
    if check(os.path.exists(prefix + ".csv"), "scaling table %s.csv missing" % prefix):
        with open(prefix + ".csv") as f:
            rows = f.read().split()
        check(rows[0] == "ranks,wall_time,iterations,speedup,efficiency" and
              [r.split(",")[0] for r in rows[1:]] == ["1", "2"],
              "scaling table is %s" % rows)

    # pipeline.sh: prep -> solves -> report, in that order, the report made from both solves.
    times = {}
    for label, job in jobs.items():
        if label.startswith("pipeline-"):
            record = job_records(job)
            if record:
                times[label] = (record[0]["StartTime"], record[0]["EndTime"])
    pipeline_dir = WORK + "/pipeline"
    labels = sorted(times)
    if check(len(labels) == 4, "pipeline jobs not all known to scontrol: %s" % times):
        prep, solve1, solve2, report = (times[label] for label in labels)
        # ISO times of one day compare as strings; a later stage never starts before the
        # earlier one ended (whole seconds, so equal is allowed).
        check(prep[1] <= solve1[0] and prep[1] <= solve2[0],
              "a solve started before data preparation ended: %s" % times)
        check(max(solve1[1], solve2[1]) <= report[0],
              "the report started before both solves ended: %s" % times)
    check(os.path.exists(pipeline_dir + "/bars.h5"), "pipeline made no bars.h5")
    for model in ("bsc", "mca"):
        check_run_file("%s/solve-%s.h5" % (pipeline_dir, model), "pipeline solve " + model,
                       nranks=1)
    report_path = pipeline_dir + "/report.txt"
    if check(os.path.exists(report_path), "pipeline made no report.txt"):
        with open(report_path) as f:
            report_text = f.read()
        check("solve-bsc.h5" in report_text and "solve-mca.h5" in report_text,
              "report.txt does not list both solves:\n" + report_text)
    check(os.path.exists(pipeline_dir + "/report.png"), "pipeline made no report.png")

    if failures:
        for label, job in jobs.items():
            for name in sorted(os.listdir(WORK)):
                if name.endswith(".out") and job in name:
                    with open(os.path.join(WORK, name)) as f:
                        print("---- %s (%s) ----\n%s" % (name, label, f.read()[-3000:]))
        print("%d check(s) failed" % len(failures))
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    T0 = time.monotonic()
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        print("SLURM is not installed (sudo .ci/install-deps.sh); skipping")
        sys.exit(77)
    os.environ.setdefault("SLURM_CONF", os.path.join(SLURM_DIR, "etc", "slurm.conf"))
    # One SLURM test at a time on this machine (several build folders may run the suite).
    lock = open(SLURM_DIR + "-test.lock", "w")
    lock_deadline = time.monotonic() + 300
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() > lock_deadline:
                print("error: another SLURM test held %s for 300 s" % lock.name)
                sys.exit(1)
            time.sleep(1)
    started_here = False
    status = 1
    try:
        if not cluster_is_up():
            log("no SLURM cluster answers; starting one with .ci/slurm-up.sh")
            up = run([os.path.join(SOURCE, ".ci", "slurm-up.sh")], check_status=False)
            started_here = True
            if up.returncode != 0:
                print(up.stdout)
                print("error: could not start the SLURM cluster")
                sys.exit(1)
        status = main()
    finally:
        if started_here:
            run([os.path.join(SOURCE, ".ci", "slurm-down.sh")], check_status=False)
            log("stopped the cluster this test started")
    sys.exit(status)
