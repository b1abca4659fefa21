#!/usr/bin/env bash
# Installs the Debian 12 packages parasol needs (listed in .ci/packages.txt), without
# recommends and without questions. Run as root (README: `sudo .ci/install-deps.sh`).
# Fast and offline when everything is already installed: apt is only called for what is
# missing.
#   --bench   also install the benchmark-only packages of .ci/packages-bench.txt
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

lists=("$here/packages.txt")
for arg in "$@"; do
  case $arg in
    --bench) lists+=("$here/packages-bench.txt") ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (valid: --bench)" >&2; exit 2 ;;
  esac
done

# The package names, without comments and blank lines.
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "${lists[@]}" | grep -v '^$')

missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages are installed"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root: sudo $0 $*" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Keep the packages' maintainer scripts from starting system daemons (munge, slurmctld,
# slurmd): .ci/slurm-up.sh runs its own, configured for this project. Only when no
# policy is in place already, and removed again afterwards.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

echo "install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" </dev/null
echo "install-deps: done"
