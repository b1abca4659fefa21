#!/bin/sh
# Benchmark parasol-alsketch against IPOPT (serial, C++ TNLP) and PETSc TAO ALMM on the same
# problems: iterations, function evaluations, time, peak memory; ratios by compare.py.
#   bench/alsketch/run.sh BUILD_DIR INSTALL_PREFIX [OUTDIR]
# BUILD_DIR holds drivers/parasol-alsketch; INSTALL_PREFIX a `cmake --install` of parasol.
# Environment: RANKS (2), POISSON_N ("64 128 512"), TOL (1e-6).
set -eu
build=$1; prefix=$2; out=${3:-alsketch-bench}
here=$(cd "$(dirname "$0")" && pwd)
ranks=${RANKS:-2}; tol=${TOL:-1e-6}
mkdir -p "$out"
cmake -S "$here" -B "$out/peers-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/peers-build" -j2 >/dev/null
mpi="mpiexec --oversubscribe -n $ranks"
log="$out/results.txt"; : > "$log"
run_case() {  # problem N sketch
  /usr/bin/time -f "peak_rss=%M KB" $mpi "$build/drivers/parasol-alsketch" -problem "$1" -N "$2" \
    -alsketch_sketch "$3" -tol "$tol" -output "$out/$1-$2-$3.h5" 2>&1 | tr '\n' ' ' | sed "s/^/alsketch problem=$1 N=$2 sketch=$3 ranks=$ranks /" >> "$log"
  echo >> "$log"
  # IPOPT on one process: its sequential MUMPS and PETSc's parallel MUMPS share symbol names,
  # so with more than one rank IPOPT's factorization would run on MPI_COMM_WORLD and hang.
  timeout 1200 "$out/peers-build/alsketch_peers" -problem "$1" -N "$2" -tol "$tol" -peers ipopt >> "$log" 2>&1 || true
  timeout 1200 $mpi "$out/peers-build/alsketch_peers" -problem "$1" -N "$2" -tol "$tol" -peers tao >> "$log" 2>&1 || true
}
for p in hs6 hs7 hs39 hs40 hs42 hs50 orthregb; do run_case $p 10 gaussian; done
for N in ${POISSON_N:-64 128 512}; do run_case poisson $N ksp; done
/usr/bin/python3 "$here/compare.py" "$log" "$out"
