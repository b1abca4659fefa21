#!/usr/bin/env bash
# Configures (optimized build) and builds parasol in build/ (or PARASOL_BUILD_DIR).
# Shared by .ci/test.sh and .ci/demo.sh; extra arguments go to the CMake configure step.
# Environment: PARASOL_BUILD_DIR (default <repo>/build), PARASOL_BUILD_JOBS (default nproc).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PARASOL_BUILD_DIR:-$root/build}
jobs=${PARASOL_BUILD_JOBS:-$(nproc)}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "$jobs"
