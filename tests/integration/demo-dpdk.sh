#!/usr/bin/env bash
# `ordo demo` on the DPDK path (issue 5): without --cluster, as root, it
# builds the virtual topology of nic-config/virtual.ini, runs every node on
# a net_af_xdp port in its own namespace, says transport=dpdk on its first
# line, ends with agree=yes, and removes the topology. Needs root.
# Usage: demo-dpdk.sh ORDO_EXE   (run from anywhere; it works in the source root)
set -uo pipefail
ordo=${1:?ordo binary}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
fail() { echo "not ok - $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, XDP)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 300 "$ordo" demo --transport dpdk --seconds 2 >"$out" 2>&1
rc=$?
first=$(head -1 "$out")
last=$(tail -1 "$out")
case "$first" in
  "demo: transport=dpdk cluster=nic-config/virtual.ini "*) echo "ok - first line: $first" ;;
  *) cat "$out"; fail "the demo did not run on DPDK (first line: $first)" ;;
esac
case "$last" in
  "demo: ordered="*" agree=yes digest="*) echo "ok - last line: $last" ;;
  *) cat "$out"; fail "the demo did not end with agree=yes (last line: $last)" ;;
esac
[ $rc -eq 0 ] || fail "ordo demo exited $rc"
if ip netns list | grep -q '^ordo-v'; then
  fail "the virtual topology was left behind: $(ip netns list | tr '\n' ' ')"
fi
echo "ok - the virtual topology was removed"
