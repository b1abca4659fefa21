# Shared by slurm-up.sh and slurm-down.sh (sourced, not run): where the single-node
# cluster keeps its configuration, state, logs and pid files, and small helpers.
#
# Everything lives under PARASOL_SLURM_DIR (default /var/tmp/parasol-slurm), so the
# cluster never touches /etc/slurm or the system's munge daemon:
#   etc/slurm.conf            generated from `hostname -s`, `nproc` and `slurmd -C`
#   munge/                    munge key, socket, pid, log and seed of our own munged
#   state/slurmctld, state/slurmd   StateSaveLocation and SlurmdSpoolDir
#   log/                      slurmctld.log, slurmd.log
#   run/                      slurmctld.pid, slurmd.pid
# Client commands (sinfo, sbatch, ...) find the cluster through SLURM_CONF.

PARASOL_SLURM_DIR=${PARASOL_SLURM_DIR:-/var/tmp/parasol-slurm}
SLURM_DIR=$PARASOL_SLURM_DIR
SLURM_CONF_FILE=$SLURM_DIR/etc/slurm.conf
MUNGE_DIR=$SLURM_DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket.2
MUNGE_PID=$MUNGE_DIR/munged.pid
SLURMCTLD_PID=$SLURM_DIR/run/slurmctld.pid
SLURMD_PID=$SLURM_DIR/run/slurmd.pid
# up/down serialize on this lock so two callers never start or stop daemons at once.
SLURM_LOCK=$SLURM_DIR.lock

slurm_log() { echo "[slurm] $*" >&2; }

# Prints the pid stored in file $1 if that process is alive and is the daemon the file is
# named after (a stale pid file may name an unrelated process after a restart); fails
# otherwise.
slurm_live_pid() {
  local pid name
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  name=$(basename "$1" .pid)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null || echo "$name") == "$name" ]] || return 1
  echo "$pid"
}

# Terminates the daemon whose pid is in file $1 (TERM, then KILL after $2 seconds).
slurm_stop_pid_file() {
  local file=$1 grace=${2:-15} pid deadline
  pid=$(slurm_live_pid "$file") || { rm -f "$file"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      slurm_log "pid $pid ($file) ignored SIGTERM for ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$file"
}

# Runs as root: re-executes the calling script under sudo when needed.
slurm_require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      exec sudo --preserve-env=PARASOL_SLURM_DIR,PARASOL_SLURM_CPUS "$@"
    fi
    slurm_log "the SLURM daemons must run as root (no sudo found)"
    exit 1
  fi
}
