#!/bin/sh
# Benchmark parasol-alsketch against IPOPT (serial, C++ TNLP) and PETSc TAO ALMM on the same
# problems: iterations, function evaluations, time, peak memory; ratios by compare.py.
#   bench/alsketch/run.sh BUILD_DIR INSTALL_PREFIX [OUTDIR]
# BUILD_DIR holds drivers/parasol-alsketch; INSTALL_PREFIX a `cmake --install` of parasol.
# Environment: RANKS (2), POISSON_N ("64 128 512"), TOL (1e-6), KSP_PRESET (auto; the main
# alsketch row), LEAN_PRESETS ("schur schur:amg fieldsplit": extra poisson rows alsketch_sc,
# alsketch_sc_amg, alsketch_fs; PRESET:amg uses -alsketch_poisson_schur_pc amg, else fft),
# TAO_TIME_LIMIT (600 s per TAO run), HS ("hs6 hs7 hs39 hs40 hs42 hs50 orthregb").
set -eu
build=$1; prefix=$2; out=${3:-alsketch-bench}
here=$(cd "$(dirname "$0")" && pwd)
ranks=${RANKS:-2}; tol=${TOL:-1e-6}
mkdir -p "$out"
cmake -S "$here" -B "$out/peers-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/peers-build" -j2 >/dev/null
mpi="mpiexec --oversubscribe -n $ranks"
log="$out/results.txt"; : > "$log"
tao_limit=${TAO_TIME_LIMIT:-600}
run_case() {  # problem N sketch [TAO options]
  problem=$1 N=$2 sketch=$3; shift 3
  # alsketch prints its setup time (KKT factorization before the first iteration), the solve
  # time, and its memory (problem data; resident memory above the post-setup baseline).
  /usr/bin/time -f "peak_rss=%M KB" $mpi "$build/drivers/parasol-alsketch" -problem "$problem" -N "$N" \
    -alsketch_sketch "$sketch" -alsketch_ksp_preset "${KSP_PRESET:-auto}" -tol "$tol" \
    -output "$out/$problem-$N-$sketch.h5" 2>&1 | tr '\n' ' ' | sed "s/^/alsketch problem=$problem N=$N sketch=$sketch ranks=$ranks /" >> "$log"
  echo >> "$log"
  # IPOPT on one process: its sequential MUMPS and PETSc's parallel MUMPS share symbol names,
  # so with more than one rank IPOPT's factorization would run on MPI_COMM_WORLD and hang.
  timeout 1200 "$out/peers-build/alsketch_peers" -problem "$problem" -N "$N" -tol "$tol" -peers ipopt >> "$log" 2>&1 || true
  timeout $((tao_limit + 300)) $mpi "$out/peers-build/alsketch_peers" -problem "$problem" -N "$N" -tol "$tol" \
    -peers tao -time_limit "$tao_limit" "$@" 2>&1 | grep "^tao" >> "$log" || true
}
for p in ${HS:-hs6 hs7 hs39 hs40 hs42 hs50 orthregb}; do
  # TAO ALMM's default PHR formulation fails at the start of orthregb (peers.cpp says why).
  if [ "$p" = orthregb ]; then run_case $p 10 gaussian -tao_almm_type classic; else run_case $p 10 gaussian; fi
done
for N in ${POISSON_N:-64 128 512}; do
  run_case poisson $N ksp -tao_almm_subsolver_tao_type bncg
  # The memory-lean presets too: schur (CG on the matrix-free Schur complement, rows
  # alsketch_sc*) and fieldsplit (MINRES + fieldsplit, rows alsketch_fs*), both with poisson's
  # Schur preconditioner: fft (exact, default) or amg (two BoomerAMG cycles; suffix _amg).
  for lean in ${LEAN_PRESETS:-schur schur:amg fieldsplit}; do
    preset=${lean%%:*}; pc=fft; [ "$preset" != "$lean" ] && pc=${lean#*:}
    tag=alsketch_fs; [ "$preset" = schur ] && tag=alsketch_sc
    suffix=""; [ "$pc" != fft ] && suffix="_$pc"
    /usr/bin/time -f "peak_rss=%M KB" $mpi "$build/drivers/parasol-alsketch" -problem poisson -N "$N" \
      -alsketch_sketch ksp -alsketch_ksp_preset "$preset" -alsketch_poisson_schur_pc "$pc" -tol "$tol" \
      -output "$out/poisson-$N-ksp_$preset$suffix.h5" 2>&1 | tr '\n' ' ' | sed "s/^/$tag$suffix problem=poisson N=$N sketch=ksp ranks=$ranks /" >> "$log"
    echo >> "$log"
  done
done
/usr/bin/python3 "$here/compare.py" "$log" "$out"
