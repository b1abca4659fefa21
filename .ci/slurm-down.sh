#!/usr/bin/env bash
# Stops the single-node SLURM cluster started by .ci/slurm-up.sh: cancels every job still
# queued or running, waits briefly for them to end, then stops slurmd, slurmctld and our
# munged. Idempotent (nothing running is fine). Configuration, state and logs stay in
# PARASOL_SLURM_DIR for inspection; `--purge` removes that directory as well.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/slurm-common.sh"
slurm_require_root "$0" "$@"

purge=0
[[ ${1:-} == --purge ]] && purge=1

[[ -d $SLURM_DIR ]] || exit 0
exec 9>"$SLURM_LOCK"
flock -w 120 9 || { slurm_log "timed out waiting for $SLURM_LOCK"; exit 1; }

export SLURM_CONF=$SLURM_CONF_FILE
if slurm_live_pid "$SLURMCTLD_PID" >/dev/null && [[ -f $SLURM_CONF_FILE ]]; then
  jobs=$(squeue -h -o '%A' 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    slurm_log "cancelling jobs: ${jobs//$'\n'/ }"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while [[ -n $(squeue -h -t running,completing -o '%A' 2>/dev/null || true) ]] && ((SECONDS < deadline)); do
      sleep 0.5
    done
  fi
fi

slurm_stop_pid_file "$SLURMD_PID"
slurm_stop_pid_file "$SLURMCTLD_PID"
slurm_stop_pid_file "$MUNGE_PID"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
slurm_log "stopped"
if ((purge)); then
  rm -rf "$SLURM_DIR"
  slurm_log "removed $SLURM_DIR"
fi
