#!/usr/bin/env bash
# The installed package works for an outside project: `cmake --install` of this build
# into a fresh prefix P, every driver the build made is in P/bin and runs from there
# (-help), and the consumer project (find_package(parasol), parasol::parasol) configures,
# builds against P only and runs under mpiexec -n 2 with the expected output.
# Environment (set by ctest): PARASOL_BINARY_DIR, PARASOL_BIN, MPIEXEC.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${PARASOL_BINARY_DIR:?PARASOL_BINARY_DIR must name the build folder}
drivers=${PARASOL_BIN:-$build/drivers}
mpiexec=${MPIEXEC:-mpiexec}
work=$PWD/install-work
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log"; fail "cmake --install failed"; }
[[ -f $prefix/lib/cmake/parasol/parasolConfig.cmake || -f $prefix/lib64/cmake/parasol/parasolConfig.cmake ]] ||
  fail "no parasolConfig.cmake under $prefix/lib*/cmake/parasol"
[[ -f $prefix/include/parasol/parasol.hpp ]] || fail "umbrella header not installed"

echo "== drivers in $prefix/bin"
built=0
for exe in "$drivers"/parasol-*; do
  [[ -f $exe && -x $exe ]] || continue
  name=$(basename "$exe")
  built=$((built + 1))
  [[ -x $prefix/bin/$name ]] || fail "$name was built but not installed to $prefix/bin"
  # From the prefix, not the build tree: catches missing runtime paths.
  timeout 60 "$prefix/bin/$name" -help >"$work/$name-help.txt" 2>&1 ||
    { tail -20 "$work/$name-help.txt"; fail "$prefix/bin/$name -help failed"; }
  echo "   $name: installed, -help works"
done
((built > 0)) || fail "no parasol-* drivers found in $drivers"
[[ -x $prefix/bin/parasol-data ]] || fail "parasol-data not installed"

echo "== consumer project against $prefix"
# Only the prefix: the build tree must not be needed (no package registry either).
cmake -S "$here/consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  >"$work/consumer-configure.log" 2>&1 ||
  { cat "$work/consumer-configure.log"; fail "consumer project did not configure"; }
cmake --build "$work/consumer" >"$work/consumer-build.log" 2>&1 ||
  { cat "$work/consumer-build.log"; fail "consumer project did not build"; }
grep -q "parasol_DIR:PATH=$prefix" "$work/consumer/CMakeCache.txt" ||
  fail "find_package(parasol) did not use $prefix: $(grep parasol_DIR "$work/consumer/CMakeCache.txt")"

# Nothing of the source or build tree may leak into the consumer's compile or link lines.
source_dir=${PARASOL_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
for leak in "$build/include" "$build/libparasol" "$source_dir/include" "$source_dir/src"; do
  ! grep -qF "$leak" "$work/consumer/CMakeFiles/app.dir/flags.make" "$work/consumer/CMakeFiles/app.dir/link.txt" ||
    fail "the consumer's compile/link lines refer to $leak"
done

output=$(timeout 120 "$mpiexec" -n 2 --oversubscribe "$work/consumer/app" 2>&1) ||
  { echo "$output"; fail "consumer app failed under $mpiexec -n 2"; }
echo "$output"
version=$(sed -n 's/^#define PARASOL_VERSION "\(.*\)"$/\1/p' "$prefix/include/parasol/version.hpp")
[[ -n $version ]] || fail "no PARASOL_VERSION in the installed version.hpp"
grep -qx "parasol $version (header $version): 10 rows in all" <<<"$output" ||
  fail "consumer did not print version $version and 10 rows"
for line in "rank 0 of 2: rows [0, 5)" "rank 1 of 2: rows [5, 10)"; do
  grep -qxF "$line" <<<"$output" || fail "consumer did not print '$line' (block partition of 10 rows)"
done
echo "install check passed (parasol $version, $built drivers)"
