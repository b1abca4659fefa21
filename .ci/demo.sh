#!/usr/bin/env bash
# Builds parasol and runs its main job on built-in defaults, then says where the output
# is. The README's demo command:
#     sudo .ci/install-deps.sh && .ci/demo.sh
# Extra arguments go to the driver (for example `-max_it 20 -monitor`). Environment:
#   DEMO_DRIVER      driver to run (default parasol-sparsecode)
#   DEMO_RANKS       MPI ranks (default 2)
#   DEMO_OUTPUT_DIR  where the run file goes (default <build>/demo)
#   PARASOL_BUILD_DIR  build folder (default <repo>/build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${PARASOL_BUILD_DIR:-$root/build}
driver=${DEMO_DRIVER:-parasol-sparsecode}
ranks=${DEMO_RANKS:-2}
outdir=${DEMO_OUTPUT_DIR:-$build/demo}
exec </dev/null

"$here/build.sh"
exe=$build/drivers/$driver
if [[ ! -x $exe ]]; then
  built=("$build"/drivers/parasol-*)
  echo "demo.sh: $exe was not built; drivers built: ${built[*]##*/}" >&2
  exit 1
fi

mkdir -p "$outdir"
output=$outdir/$driver.h5
mpi_flags=(--oversubscribe)
if [[ $(id -u) -eq 0 ]]; then
  # Open MPI refuses to run as root unless told twice (containers run as root).
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
echo "demo.sh: mpirun -n $ranks $exe -output $output $*"
cd "$outdir"
mpirun -n "$ranks" "${mpi_flags[@]}" "$exe" -output "$output" "$@"

echo
echo "demo.sh: the run file is $output"
if [[ -d $root/python/parasol_analysis ]]; then
  echo "demo.sh: summary (PYTHONPATH=$root/python /usr/bin/python3 -m parasol_analysis summary $output):"
  PYTHONPATH=$root/python /usr/bin/python3 -m parasol_analysis summary "$output" || true
fi
