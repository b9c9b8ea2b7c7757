#!/usr/bin/env bash
# The Raft issue's failover test on the DPDK dataplane (issue 5): every node
# of tests/integration/e2e-dpdk.ini in its own network namespace on a DPDK
# port over a veth into one bridge (nic-config/netns.sh), the test's
# kernel-UDP clients in a namespace of their own. Before it, a DPDK node is
# started alone and pinged from that namespace.
#
# The ports are net_af_xdp; where AF_XDP cannot run here the test uses
# net_af_packet and says so. Needs root (namespaces, veth, XDP).
# Usage: dpdk-netns.sh ORDO_EXE E2E_TEST_EXE [REQUESTS]
set -uo pipefail
ordo=${1:?ordo binary}
e2e=${2:?e2e_test binary}
requests=${3:-200000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
netns="$root/nic-config/netns.sh"
ini_src="$here/e2e-dpdk.ini"
work=$(mktemp -d /tmp/ordo-dpdk-XXXXXX)
ini="$work/e2e-dpdk.ini"
cp "$ini_src" "$ini"

fail() { echo "not ok - $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, veth, XDP)"
for tool in ip ethtool ping; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/deps.sh installs it)"
done

cleanup() {
  pkill -f "ordo sequencer --cluster $work" 2>/dev/null
  "$netns" down "$ini" >/dev/null 2>&1
  [ "${keep:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
"$netns" down "$ini" >/dev/null 2>&1 # a run that was killed
"$netns" up "$ini" >/dev/null || fail "nic-config/netns.sh up"
echo "ok - topology up: 7 node namespaces and ordo-client on ordo-br0"

# One node alone: does its port open, and does ping reach it?
probe() {
  rm -rf "$work/probe"
  "$ordo" format --cluster "$ini" --node 1 --data "$work/probe" >/dev/null 2>&1 || return 1
  ip netns exec ordo-n1 "$ordo" sequencer --cluster "$ini" --node 1 --data "$work/probe" \
    >"$work/probe.log" 2>&1 &
  local pid=$! up=1
  for _ in $(seq 1 50); do
    grep -q "serving on" "$work/probe.log" && { up=0; break; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  local pinged=1
  [ $up -eq 0 ] && ip netns exec ordo-client ping -c 3 -i 0.2 -W 1 10.77.0.1 >"$work/ping.txt" 2>&1 &&
    pinged=0
  kill -INT $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ $up -eq 0 ] && [ $pinged -eq 0 ]
}

pmd=net_af_xdp
if ! probe; then
  reason=$(grep -m1 -iE "fail|error|cannot" "$work/probe.log" || echo "see $work/probe.log")
  echo "# net_af_xdp did not come up here ($reason); using net_af_packet"
  sed -i 's/net_af_xdp0/net_af_packet0/g' "$ini"
  pmd=net_af_packet
  probe || { keep=1; fail "a DPDK node on $pmd did not answer ping (logs in $work)"; }
fi
echo "ok - a DPDK node on $pmd answers ping from the ordo-client namespace:" \
  "$(tail -1 "$work/ping.txt")"

echo "# the failover test, every node on $pmd in its own namespace, clients in ordo-client"
ip netns exec ordo-client "$e2e" "$ordo" "$ini" "$requests" failover
rc=$?
[ $rc -eq 0 ] || keep=1
exit $rc
