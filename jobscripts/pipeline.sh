#!/bin/bash
# parasol: a three-stage pipeline submitted to SLURM with dependencies:
#   1. data preparation   parasol-data bars (synthetic bars images)       1 task
#   2. solves             one run.sbatch job per model in PIPELINE_MODELS   PIPELINE_RANKS tasks
#   3. report             parasol_analysis summary table and history plot  1 task
# Each stage starts only when every job of the stage before it succeeded
# (--dependency=afterok); if one fails, the later stages never run (squeue shows them
# pending with reason DependencyNeverSatisfied; scancel them).
#
#   jobscripts/pipeline.sh [WORKDIR]       (run it where sbatch works, not via sbatch)
#
# WORKDIR (default ./parasol-pipeline-DATE) receives bars.h5, one run file per model
# (solve-MODEL.h5), report.txt, report.png, the job logs, and jobs.txt ("stage job-id"
# lines). Edit the three stage functions below to make it yours.
# Environment:
#   PARASOL_BIN       folder holding the parasol-* drivers (default: on PATH)
#   PIPELINE_MODELS   sparse-coding models, one solve each (default "bsc mca")
#   PIPELINE_N        data points (default 2000); PIPELINE_MAX_IT (default 50)
#   PIPELINE_RANKS    ranks per solve (default 2)
#   PARASOL_LAUNCHER, PARASOL_SRUN_MPI as in run.sbatch
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${1:-$PWD/parasol-pipeline-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
read -r -a models <<<"${PIPELINE_MODELS:-bsc mca}"
n=${PIPELINE_N:-2000}
max_it=${PIPELINE_MAX_IT:-50}
ranks=${PIPELINE_RANKS:-2}

# Every job runs in WORKDIR and writes its log there.
submit() { sbatch --parsable --chdir="$work" "$@"; }

# 1. Data preparation: prints the job id.
prepare() {
  submit --job-name=parasol-prep --ntasks=1 --output="$work/prep-%j.out" \
    "$here/run.sbatch" parasol-data bars -N "$n" -seed 1 -output "$work/bars.h5"
}

# 2. One solve per model, each after $1 succeeded: prints the job ids, one a line.
solve() {
  local after=$1 model
  for model in "${models[@]}"; do
    submit --job-name="parasol-$model" --ntasks="$ranks" --dependency="afterok:$after" \
      --output="$work/solve-$model-%j.out" \
      "$here/run.sbatch" parasol-sparsecode -data "$work/bars.h5" -model "$model" \
      -max_it "$max_it" -seed 1 -output "$work/solve-$model.h5"
  done
}

# 3. The report, after all of $1 (colon-separated job ids) succeeded: prints the job id.
report() {
  local after=$1 command
  printf -v command 'cd %q && export PYTHONPATH=%q MPLBACKEND=Agg && %s' \
    "$work" "$repo/python" \
    "/usr/bin/python3 -m parasol_analysis summary solve-*.h5 > report.txt && /usr/bin/python3 -m parasol_analysis plot solve-*.h5 -o report.png"
  submit --job-name=parasol-report --ntasks=1 --dependency="afterok:$after" \
    --output="$work/report-%j.out" --wrap="$command"
}

prep_job=$(prepare)
solve_out=$(solve "$prep_job")
mapfile -t solve_jobs <<<"$solve_out"
report_job=$(report "$(IFS=:; echo "${solve_jobs[*]}")")

{
  echo "prep $prep_job"
  for job in "${solve_jobs[@]}"; do echo "solve $job"; done
  echo "report $report_job"
} | tee "$work/jobs.txt"
echo "pipeline submitted; results in $work (report.txt, report.png when the report job ends)"
