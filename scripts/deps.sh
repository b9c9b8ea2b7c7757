#!/usr/bin/env bash
# Installs the Debian 12 packages ordo builds, tests and runs with, when any
# is missing. Needs root (or sudo) only when something must be installed.
set -euo pipefail

pkgs=(
  gcc clang clang-format meson ninja-build pkg-config make python3
  libdpdk-dev dpdk liburing-dev libcriterion-dev libsodium-dev libxxhash-dev
  libisal-dev libinih-dev libclang-rt-14-dev iproute2 procps ethtool iputils-ping gnuplot-nox
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
