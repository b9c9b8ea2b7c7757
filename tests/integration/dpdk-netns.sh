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

# Two queue pairs (dpdk_queues = 2) and three lcores (dpdk_lcores = 3): node
# 1 alone on net_af_packet with qpairs=2, whose PACKET_FANOUT hash spreads
# flows over the two RX queues (net_af_xdp cannot: DPDK 22.11 wants combined
# channels, which a veth lacks). Each RX queue is polled by a worker lcore,
# which checks the datagrams (receipt rules 1-4) and hands them to the main
# lcore. 20 STATUS queries, each from a new source port, must all be
# answered, and both RX queues and both workers must have carried some
# (DPDK telemetry: per-queue counts, /ordo/port's worker_handed).
mq_probe() {
  local mq="$work/mq.ini"
  awk '/^\[node 1\]/ { n1 = 1 } /^\[/ && !/^\[node 1\]/ { n1 = 0 }
       n1 && /^dpdk_port/ { print "dpdk_port = net_af_packet0"; next }
       n1 && /^dpdk_vdev/ { print "dpdk_vdev = net_af_packet0,iface=ordo0,qpairs=2";
                            print "dpdk_queues = 2"; print "dpdk_lcores = 3"; next }
       { print }' "$ini" >"$mq"
  rm -rf "$work/mqdata"
  "$ordo" format --cluster "$mq" --node 1 --data "$work/mqdata" >/dev/null 2>&1 || return 1
  # the cluster file's EAL arguments, with three lcores sharing both CPUs
  local eal
  eal=$(sed -n 's/^dpdk_eal *= *//p' "$mq")
  # shellcheck disable=SC2086 # the EAL arguments are words
  ip netns exec ordo-n1 "$ordo" sequencer --cluster "$mq" --node 1 --data "$work/mqdata" \
    -- $eal '--lcores=(0-2)@(0-1)' >"$work/mq.log" 2>&1 &
  local pid=$! answered=0
  for _ in $(seq 1 50); do grep -q "serving on" "$work/mq.log" && break; sleep 0.1; done
  for _ in $(seq 1 20); do
    ip netns exec ordo-client "$ordo" status --cluster "$mq" --node 1 2>/dev/null |
      grep -qE '^1 +(follower|candidate|leader|pre)' && answered=$((answered + 1))
  done
  mq_q=$(echo "/ethdev/stats,0" | timeout 5 dpdk-telemetry.py -f ordo-n1 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; q=list(json.loads(sys.stdin.read()).values())[0]["q_ipackets"]; print(q[0], q[1])' 2>/dev/null)
  mq_w=$(echo "/ordo/port" | timeout 5 dpdk-telemetry.py -f ordo-n1 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; p=list(json.loads(sys.stdin.read()).values())[0]; w=p["worker_handed"]; print(p["lcores"], w[0], w[1])' 2>/dev/null)
  kill -INT $pid 2>/dev/null
  wait $pid 2>/dev/null
  mq_answered=$answered
  set -- $mq_q $mq_w
  [ "$answered" -eq 20 ] && [ "${1:-0}" -gt 0 ] && [ "${2:-0}" -gt 0 ] &&
    [ "${3:-0}" -eq 3 ] && [ "${4:-0}" -gt 0 ] && [ "${5:-0}" -gt 0 ]
}
if ! command -v dpdk-telemetry.py >/dev/null; then
  echo "# dpdk-telemetry.py not found (package dpdk): two-queue probe skipped"
elif mq_probe; then
  echo "ok - a node with dpdk_queues = 2, dpdk_lcores = 3 (net_af_packet, qpairs=2) answered" \
    "20 of 20 status queries from 20 source ports; its RX queues carried" \
    "$(echo $mq_q | tr ' ' '/') packets, its worker lcores handed over" \
    "$(echo $mq_w | cut -d' ' -f2- | tr ' ' '/')"
else
  keep=1
  fail "two-queue probe: $mq_answered of 20 answered, RX queues '$mq_q'," \
    "lcores and worker hand-overs '$mq_w' (logs in $work)"
fi

# The idle cluster: 3 sequencers and 3 replicas (and the joiner, not
# counted) polling their ports must stay under 10% of one core in total.
ip netns exec ordo-client "$ordo" demo --cluster "$ini" --serve >"$work/demo.log" 2>&1 &
demo=$!
for _ in $(seq 1 100); do grep -q "cluster running" "$work/demo.log" && break; sleep 0.1; done
grep -q "cluster running" "$work/demo.log" || { keep=1; fail "the idle cluster did not start (logs in $work)"; }
sleep 3 # elections and the first heartbeats settle
pids=$(for n in 1 2 3 11 12 13; do pgrep -f "ordo (sequencer|replica) --cluster $ini --node $n( |$)"; done)
ticks() { for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
hz=$(getconf CLK_TCK)
t1=$(ticks)
sleep 10
t2=$(ticks)

# DPDK telemetry: each node's runtime directory (--file-prefix ordo-nN) has
# its socket; /ethdev/stats comes from DPDK, /ordo/port from ordo.
tel() { # NODE COMMAND KEY: the value of KEY in COMMAND's answer, or nothing
  echo "$2" | timeout 5 dpdk-telemetry.py -f "ordo-n$1" 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; print(list(json.loads(sys.stdin.read()).values())[0][sys.argv[1]])' "$3" 2>/dev/null
}
if command -v dpdk-telemetry.py >/dev/null; then
  rx=$(tel 1 /ordo/port rx_datagrams)
  ip11=$(tel 11 /ethdev/stats,0 ipackets)
  if [ "${rx:-0}" -gt 0 ] && [ "${ip11:-0}" -gt 0 ]; then
    echo "ok - DPDK telemetry: sequencer 1 /ordo/port rx_datagrams=$rx," \
      "replica 11 /ethdev/stats,0 ipackets=$ip11 (dpdk-telemetry.py -f ordo-nN)"
  else
    kill -INT $demo
    keep=1
    fail "DPDK telemetry did not answer (/ordo/port rx_datagrams='$rx', /ethdev/stats ipackets='$ip11')"
  fi
else
  echo "# dpdk-telemetry.py not found (package dpdk): telemetry not checked"
fi

# The bench client on DPDK: `ordo bench --transport dpdk` from ordo-client,
# its clients sharing one port with an address of its own. Its EAL runs
# without huge pages on purpose: 4 KB pages are where net_af_xdp's UMEM
# missed most of a default mempool, and this client, whose threads cycle
# every mbuf of the pool, stopped receiving after a few hundred datagrams
# until net_af_xdp pools gave each mbuf one page (dataplane/dpdk.c,
# pool_af_xdp).
ip netns exec ordo-client "$ordo" bench --cluster "$ini" --duration 3 --warmup 1 --closed \
  --clients 4 --window 64 --transport dpdk --addr 10.77.0.249 \
  --dpdk-vdev "${pmd}0,iface=eth0" --json "$work/bench.json" \
  -- --no-huge -m 512 --no-pci --log-level=error >"$work/bench.out" 2>&1
brc=$?
bench_ok=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
r = j["results"]
ok = (j["config"]["transport"] == "dpdk" and r["ordered"] > 0 and r["unanswered"] == 0
      and r["status"]["invalid"] == 0 and r["status"]["session_unknown"] == 0)
print("%d %d %.0f" % (ok, r["ordered"], r["ordered_per_s"]))' "$work/bench.json" 2>/dev/null)
if [ $brc -eq 0 ] && [ "${bench_ok%% *}" = 1 ]; then
  set -- $bench_ok
  echo "ok - ordo bench --transport dpdk ($pmd, 4 clients on one port): $2 requests" \
    "ordered in 3 s ($3/s), every one answered"
else
  kill -INT $demo
  keep=1
  tail -5 "$work/bench.out"
  fail "ordo bench --transport dpdk (exit $brc, '$bench_ok'; see $work/bench.out)"
fi

kill -INT $demo
wait $demo 2>/dev/null
pct=$(awk -v a="$t1" -v b="$t2" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) * 100 / hz / 10}')
n=$(echo "$pids" | wc -w)
if [ "$n" -eq 6 ] && awk -v p="$pct" 'BEGIN {exit !(p < 10)}'; then
  echo "ok - the idle cluster (3 sequencers, 3 replicas on $pmd) used $pct% of one core over 10 s"
else
  keep=1
  fail "the idle cluster used $pct% of one core over 10 s ($n of 6 node processes found)"
fi

echo "# the failover test, every node on $pmd in its own namespace, clients in ordo-client"
ORDO_KEEP_LOGS=1 ip netns exec ordo-client "$e2e" "$ordo" "$ini" "$requests" failover |
  tee "$work/e2e.out"
rc=${PIPESTATUS[0]}
logs=$(sed -n 's/^# logs in \([^;]*\);.*/\1/p' "$work/e2e.out")
# The stream went by multicast: each replica counted EPOCH_DATA on the group.
mc_ok=1
for n in 11 12 13; do
  m=$(sed -n 's/.*ordo replica '"$n"': applied .* multicast=\([0-9]*\).*/\1/p' "$logs/node-$n.log" |
    tail -1)
  if [ "${m:-0}" -gt 0 ]; then
    echo "ok - replica $n received $m EPOCH_DATA datagrams on multicast_group"
  else
    echo "not ok - replica $n received no EPOCH_DATA on multicast_group (see $logs)"
    mc_ok=0
  fi
done
if [ $rc -eq 0 ] && [ $mc_ok -eq 1 ]; then
  rm -rf "$logs"
  exit 0
fi
keep=1
exit 1
