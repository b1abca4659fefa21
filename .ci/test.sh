#!/usr/bin/env bash
# Builds parasol (optimized, in build/) and runs the whole test suite with CTest, with a
# single-node SLURM cluster up for the job-script tests. The README's test command:
#     sudo .ci/install-deps.sh && .ci/test.sh
# Extra arguments go to ctest (for example `-L slurm` or `-R core`). Tests labelled `long`
# (seed sweeps, full data sets; about 4 of the suite's ~7 minutes on 2 idle cores) are
# included; PARASOL_TEST_QUICK=1 leaves them out.
# The cluster is started here (unless it was already up) and stopped again on every exit,
# failure included. Environment:
#   PARASOL_BUILD_DIR   build folder (default <repo>/build)
#   PARASOL_CTEST_JOBS  tests run at once (default 2: see the measurement in docs/jobs.md)
#   PARASOL_NO_SLURM=1  do not start a cluster (the SLURM test then starts its own)
#   PARASOL_TEST_QUICK=1 leave out the tests labelled `long`
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${PARASOL_BUILD_DIR:-$root/build}
exec </dev/null
start=$SECONDS

"$here/build.sh"
echo "test.sh: built in $((SECONDS - start)) s"

source "$here/slurm-common.sh"
export SLURM_CONF=$SLURM_CONF_FILE
if [[ ${PARASOL_NO_SLURM:-0} != 1 ]]; then
  if slurm_live_pid "$SLURMCTLD_PID" >/dev/null && slurm_live_pid "$SLURMD_PID" >/dev/null; then
    echo "test.sh: using the SLURM cluster that is already up"
  else
    # Stopped on every exit, also when a test fails or ctest is interrupted.
    trap '"$here/slurm-down.sh" || true' EXIT
    trap 'exit 130' INT TERM
    "$here/slurm-up.sh" >/dev/null
  fi
fi

cd "$build"
status=0
select=()
[[ ${PARASOL_TEST_QUICK:-0} != 1 ]] || select=(-LE long)
ctest --output-on-failure -j "${PARASOL_CTEST_JOBS:-2}" "${select[@]}" "$@" || status=$?
echo "test.sh: finished in $((SECONDS - start)) s (ctest exit status $status)"
exit "$status"
