#!/usr/bin/env bash
# The testpmd comparison of issue 5: how much of the raw DPDK packet rate of
# the local virtual topology ordo turns into ordered requests. One run measures,
# on the same veth + bridge path (nic-config/netns.sh):
#  1. dpdk-testpmd forwarding: testpmd in node namespace ordo-n1 on a DPDK vdev
#     bound to its veth, --forward-mode=macswap (one packet in, one out, like
#     SUBMIT -> ORDERED), fed by a second testpmd in txonly mode in ordo-n2
#     sending UDP through the bridge to the first; packets/s forwarded, from the
#     forwarding testpmd's port stats, at the datagram size of a one-request
#     SUBMIT (136 B) and again at the mean SUBMIT size ordo's client sent;
#  2. ordo's ordered requests/s end to end: 3 sequencers and 3 replicas on
#     DPDK (tests/integration/e2e-dpdk.ini without its joiner, started by
#     `ordo demo --serve` like tests/integration/dpdk-netns.sh does), driven by
#     `ordo bench` from the ordo-client namespace, closed loop, plain and with
#     --batch, first on kernel UDP, then on DPDK (--transport dpdk, the same
#     PMD on the namespace's eth0, address 10.77.0.249, huge pages); the
#     namespace's counters (Udp OutDatagrams for kernel UDP, eth0 tx packets
#     for DPDK) give the SUBMIT datagrams it sent, so requests per datagram
#     is measured, not assumed;
#  3. the ratio: ordered/s / (testpmd packets/s x requests per datagram), with
#     testpmd at the same datagram size. The issue's target is >= 50%.
# The ports are net_af_xdp; where AF_XDP cannot run, net_af_packet (said so).
# Needs root (namespaces, veth, XDP) and dpdk-testpmd (Debian: dpdk-dev; the
# script installs it with apt-get when missing). Shares namespaces and
# 10.77.0.x with tests/integration/dpdk-netns.sh: never run the two at once
# (the script refuses to start while a process runs in one of them).
#
# Usage: bench/dpdk-path.sh ORDO_EXE
# Environment: CLIENTS (4) WINDOW (64) BATCH (16) DURATION (10 s per bench)
#   LCORES (1: each node's one loop; 2: plus a receive worker lcore per node,
#   docs/OPERATIONS.md §4; more needs a PMD with that many queues)
#   TP_SECONDS (10 s measured per testpmd run) PMD (net_af_xdp|net_af_packet)
#   KEEP=1 keeps the work directory (logs) in /tmp/ordo-dpdk-path-*.
set -uo pipefail
ordo=${1:-}
[ -n "$ordo" ] && [ -x "$ordo" ] || { sed -n '25,28p' "$0" >&2; exit 2; }
ordo=$(cd "$(dirname "$ordo")" && pwd)/$(basename "$ordo")
clients=${CLIENTS:-4}
window=${WINDOW:-64}
batch=${BATCH:-16}
duration=${DURATION:-10}
tp_seconds=${TP_SECONDS:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
netns="$root/nic-config/netns.sh"
nodes_ns="ordo-n1 ordo-n2 ordo-n3 ordo-n11 ordo-n12 ordo-n13"

die() { echo "dpdk-path: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, XDP)"
for tool in ip ethtool awk; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs it)"
done
if ! command -v dpdk-testpmd >/dev/null; then
  echo "dpdk-path: installing dpdk-dev (Debian ships dpdk-testpmd in it)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dpdk-dev >/dev/null ||
    die "apt-get install dpdk-dev failed"
fi
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found after installing dpdk-dev"

# Not while dpdk-netns.sh (or another run of this script) uses the topology.
for ns in $nodes_ns ordo-n4 ordo-client; do
  if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
    die "processes run in namespace $ns (tests/integration/dpdk-netns.sh or another run?); stop them first"
  fi
done

work=$(mktemp -d /tmp/ordo-dpdk-path-XXXXXX)
ini="$work/cluster.ini"
# e2e-dpdk.ini without node 4 (a joiner the demo would start, not a member):
# 3 sequencers and 3 replicas.
awk '/^\[node 4\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
  "$root/tests/integration/e2e-dpdk.ini" >"$work/cluster.ini"
# LCORES=L: every node runs L lcores (dpdk_lcores; L - 1 receive workers,
# one RX queue each), all floating over the host's CPUs
lcores=${LCORES:-1}
if [ "$lcores" -gt 1 ]; then
  sed -i -e "s/^dpdk_eal = .*/& --lcores=(0-$((lcores - 1)))@(0-$(($(nproc) - 1)))/" \
    -e "/^\[node /a dpdk_lcores = $lcores\ndpdk_queues = $((lcores - 1))" "$ini"
fi

pids=()      # every process this script started, by id
demo_pid=
demo_logs=
stop_pid() { # PID [SECONDS]: SIGINT, then SIGKILL after the grace period
  local p=$1 t=${2:-10}
  kill -0 "$p" 2>/dev/null || return 0
  kill -INT "$p" 2>/dev/null
  for _ in $(seq 1 $((t * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do stop_pid "$p" 5; done
  [ -n "$demo_pid" ] && stop_pid "$demo_pid" 15
  # anything still inside the namespaces this script built (nodes whose demo
  # was killed): by id, then the namespaces go
  for ns in $nodes_ns ordo-client; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  "$netns" down "$ini" >/dev/null 2>&1
  [ -n "$demo_logs" ] && [ "${KEEP:-0}" != 1 ] && rm -rf "$demo_logs"
  if [ "${KEEP:-0}" = 1 ]; then echo "dpdk-path: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "dpdk-path: interrupted" >&2; exit 130' INT TERM

"$netns" down "$ini" >/dev/null 2>&1 # a run that was killed
"$netns" up "$ini" >/dev/null || die "nic-config/netns.sh up failed"

cores=$(nproc)
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "dpdk-path: $(date -u +%Y-%m-%dT%H:%M:%SZ), $cores cores ($model), kernel $(uname -r)," \
  "DPDK $(dpkg-query -W -f='${Version}' dpdk-dev 2>/dev/null || echo '?')"
# the machine is shared: say how busy it was (compilers, linkers running)
busy() {
  echo "$(ps -eo comm= | grep -cE '^(cc1|cc1plus|ld|ld\.bfd|ld\.gold|mold|ninja|make)$')" \
    "build processes, $(ps -eo comm= | grep -cx ordo) ordo processes"
}
echo "dpdk-path: load average at start $(cut -d' ' -f1-3 /proc/loadavg);" \
  "running: $(busy)"
[ "$cores" -ge 2 ] || die "needs 2 cores (one per testpmd)"

# Huge pages for testpmd (--in-memory); --no-huge where none can be had.
free_mb=$(awk '/HugePages_Free/ { f = $2 } /Hugepagesize/ { s = $2 } END { print int(f * s / 1024) }' /proc/meminfo)
if [ "${free_mb:-0}" -lt 512 ]; then
  "$root/nic-config/hugepages.sh" 2G >/dev/null 2>&1 || true
  free_mb=$(awk '/HugePages_Free/ { f = $2 } /Hugepagesize/ { s = $2 } END { print int(f * s / 1024) }' /proc/meminfo)
fi
if [ "${free_mb:-0}" -ge 512 ]; then
  eal_mem="--in-memory"
  mem_note="2 MiB huge pages, --in-memory"
else
  eal_mem="--no-huge -m 512 --no-shconf"
  mem_note="--no-huge (no free huge pages)"
fi

mac_of() { ip -n "$1" link show ordo0 | awk '/link\/ether/ { print $2 }'; }
dut_mac=$(mac_of ordo-n1)

# tp_start NAME NS CPU TESTPMD-ARGS...: a testpmd on NS's veth, both its
# lcores (main, which only prints stats, and the forwarding one) on CPU.
tp_pid=
tp_start() {
  local name=$1 ns=$2 cpu=$3
  shift 3
  # shellcheck disable=SC2086
  # stdbuf: the stats lines reach the log as they are printed (line offsets
  # are taken as time marks below)
  ip netns exec "$ns" stdbuf -oL dpdk-testpmd --lcores "0@$cpu,1@$cpu" $eal_mem --no-pci \
    --file-prefix "ordo-tp-$name" --log-level=error --vdev "${pmd}0,iface=ordo0" -- \
    --nb-cores=1 --total-num-mbufs=16384 --stats-period 1 "$@" \
    </dev/null >"$work/tp-$name.log" 2>&1 &
  tp_pid=$!
  pids+=("$tp_pid")
  for _ in $(seq 1 100); do
    grep -q "packet forwarding - ports=" "$work/tp-$name.log" && return 0
    kill -0 "$tp_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Rx and Tx packets/s of a testpmd log between two line offsets: from the
# cumulative RX-/TX-packets of its stats blocks (one about every 1-2 s: the
# main lcore shares its cpu with the forwarding one), each block's interval
# recovered from its "since last show" pps; the first block is the baseline.
tp_rates() {
  sed -n "$(($2 + 1)),$3p" "$1" | tr -d '\033' | awk '
    /RX-packets:/ { rxc = $2 } /TX-packets:/ { txc = $2 } /Rx-pps:/ { rp = $2 }
    /Tx-pps:/ {
      tp = $2
      if (seen) {
        drx = rxc - prx; dtx = txc - ptx
        dt = tp > 0 ? dtx / tp : (rp > 0 ? drx / rp : 0)
        if (dt > 0) { srx += drx; stx += dtx; st += dt; n++ }
      }
      prx = rxc; ptx = txc; seen = 1
    }
    END { if (st > 0) printf "%.0f %.0f %d %.1f\n", srx / st, stx / st, n, st; else print "0 0 0 0" }'
}
lines() { wc -l <"$1"; }

# run_testpmd UDP_PAYLOAD: sets tp_fwd (forwarded pps), tp_rx, tp_offered
run_testpmd() {
  local dg=$1 frame=$(($1 + 42)) dut src a b
  tp_fwd=0 tp_rx=0 tp_offered=0
  tp_start "dut-$dg" ordo-n1 1 --forward-mode=macswap || {
    echo "dpdk-path: testpmd on $pmd did not start (see $work/tp-dut-$dg.log)"
    return 1
  }
  dut=$tp_pid
  tp_start "src-$dg" ordo-n2 0 --forward-mode=txonly --eth-peer="0,$dut_mac" \
    --txpkts="$frame" --tx-ip=10.77.0.2,10.77.0.1 --tx-udp=7400,7400 || {
    echo "dpdk-path: the txonly testpmd did not start (see $work/tp-src-$dg.log)"
    stop_pid "$dut" 5
    return 1
  }
  src=$tp_pid
  sleep 3 # the source ramps up; the bridge learns both MACs
  a=$(lines "$work/tp-dut-$dg.log")
  local sa
  sa=$(lines "$work/tp-src-$dg.log")
  sleep "$tp_seconds"
  b=$(lines "$work/tp-dut-$dg.log")
  read -r tp_rx tp_fwd n secs < <(tp_rates "$work/tp-dut-$dg.log" "$a" "$b")
  read -r _ tp_offered _ _ < <(tp_rates "$work/tp-src-$dg.log" "$sa" "$(lines "$work/tp-src-$dg.log")")
  stop_pid "$src" 5
  stop_pid "$dut" 5
  tr -d '\033' <"$work/tp-dut-$dg.log" |
    awk '/Forward statistics for port 0/ { f = 1 } f && /RX-packets|TX-packets/ { print "dpdk-path:   forwarding testpmd, totals:" $0 } f && /TX-packets/ { exit }'
  echo "dpdk-path: testpmd $dg B datagrams ($frame B frames): offered $tp_offered pps," \
    "received $tp_rx pps, forwarded $tp_fwd pps (testpmd port stats, $n intervals, $secs s)"
  [ "${tp_fwd:-0}" -gt 0 ]
}

pmd=${PMD:-net_af_xdp}
sed -i "s/net_af_xdp0/${pmd}0/g" "$ini"
echo "dpdk-path: topology: 6 node namespaces + ordo-client on ordo-br0 (veth, MTU 1500); $mem_note"
echo "dpdk-path: [1] dpdk-testpmd macswap in ordo-n1 (lcores 0,1 on cpu 1) <- txonly testpmd in ordo-n2 (cpu 0)"
if ! run_testpmd 136; then
  if [ "$pmd" = net_af_xdp ]; then
    reason=$(grep -m1 -iE "fail|error|cannot" "$work/tp-dut-136.log" || echo "see the log")
    echo "dpdk-path: net_af_xdp did not run here ($reason); using net_af_packet"
    pmd=net_af_packet
    sed -i "s/net_af_xdp0/${pmd}0/g" "$ini"
    run_testpmd 136 || die "testpmd did not forward on $pmd either (logs in $work)"
  else
    die "testpmd did not forward on $pmd (logs in $work)"
  fi
fi
tp_small=$tp_fwd

# ---- 2. ordo on the same path
echo "dpdk-path: [2] ordo: 3 sequencers + 3 replicas on $pmd (each in its namespace, dpdk_lcores $lcores), ordo bench from ordo-client"
ip netns exec ordo-client "$ordo" demo --cluster "$ini" --serve >"$work/demo.log" 2>&1 </dev/null &
demo_pid=$!
for _ in $(seq 1 150); do
  grep -q "cluster running" "$work/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.1
done
demo_logs=$(sed -n 's/.* logs=\([^ ]*\) .*/\1/p' "$work/demo.log" | head -1)
grep -q "cluster running" "$work/demo.log" || { KEEP=1; die "the cluster did not start (logs in $work, $demo_logs)"; }
sleep 2 # elections and the first heartbeats settle

# client namespace counters: UDP datagrams sent, eth0 bytes and packets sent
client_counters() {
  ip netns exec ordo-client sh -c 'awk "/^Udp:/ { n++; if (n == 2) printf \"%s \", \$5 }" /proc/net/snmp;
    cat /sys/class/net/eth0/statistics/tx_bytes /sys/class/net/eth0/statistics/tx_packets' | tr '\n' ' '
}
# run_bench NAME BATCH [dpdk]: sets ordo_rps, ordo_dg_rate, ordo_rpd, ordo_dg_size
run_bench() {
  local name=$1 b=$2 tr=${3:-udp} c1 c2 t1 t2 extra=()
  [ "$tr" = dpdk ] && extra=(--transport dpdk --addr 10.77.0.249 --dpdk-vdev "${pmd}1,iface=eth0")
  ip netns exec ordo-client "$ordo" bench --cluster "$ini" --closed --clients "$clients" \
    --window "$window" --batch "$b" --duration "$duration" --warmup 1 "${extra[@]}" \
    --json "$work/bench-$name.json" >"$work/bench-$name.txt" 2>&1 </dev/null &
  local bp=$!
  pids+=("$bp")
  sleep 2 # the warm-up second and one more
  c1=$(client_counters)
  t1=$(date +%s.%N)
  sleep $((duration - 2))
  c2=$(client_counters)
  t2=$(date +%s.%N)
  wait "$bp"
  local rc=$?
  grep -E "^(bench: [0-9]+ clients|throughput|ORDERED|statuses|client:|transport:|cpu:)" "$work/bench-$name.txt" |
    sed 's/^/dpdk-path:   /'
  [ $rc -eq 0 ] || { echo "dpdk-path: ordo bench ($name) exited $rc"; return 1; }
  ordo_rps=$(awk '/^throughput:/ { print $2 }' "$work/bench-$name.txt")
  read -r ordo_dg_rate ordo_dg_size < <(awk -v a="$c1" -v b="$c2" -v t1="$t1" -v t2="$t2" -v tr="$tr" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    dg = y[1] - x[1]; bytes = y[2] - x[2]; pk = y[3] - x[3];
    if (tr == "dpdk") dg = pk;                 # the kernel UDP counters do not see it
    size = pk ? bytes / pk - 42 : 0;           # eth 14 + IPv4 20 + UDP 8
    printf "%.0f %d\n", dg / (t2 - t1), int((size + 7) / 8) * 8 }')
  ordo_rpd=$(awk -v r="$ordo_rps" -v d="$ordo_dg_rate" 'BEGIN { printf "%.2f", d ? r / d : 0 }')
  echo "dpdk-path: ordo ($name): $ordo_rps ordered/s; client sent $ordo_dg_rate SUBMIT datagrams/s" \
    "of ~$ordo_dg_size B, $ordo_rpd requests per datagram"
}
run_bench plain 1 || { KEEP=1; die "ordo bench failed (logs in $work)"; }
rps_plain=$ordo_rps rpd_plain=$ordo_rpd size_plain=$ordo_dg_size dgr_plain=$ordo_dg_rate
run_bench batch "$batch" || { KEEP=1; die "ordo bench --batch failed (logs in $work)"; }
rps_batch=$ordo_rps rpd_batch=$ordo_rpd size_batch=$ordo_dg_size dgr_batch=$ordo_dg_rate
run_bench dpdk-plain 1 dpdk || { KEEP=1; die "ordo bench --transport dpdk failed (logs in $work)"; }
rps_dplain=$ordo_rps rpd_dplain=$ordo_rpd size_dplain=$ordo_dg_size dgr_dplain=$ordo_dg_rate
run_bench dpdk-batch "$batch" dpdk || { KEEP=1; die "ordo bench --transport dpdk --batch failed (logs in $work)"; }
rps_dbatch=$ordo_rps rpd_dbatch=$ordo_rpd size_dbatch=$ordo_dg_size dgr_dbatch=$ordo_dg_rate
stop_pid "$demo_pid" 15
demo_pid=

# ---- 1b. testpmd again at the datagram sizes ordo's client actually sent
echo "dpdk-path: [1b] testpmd at the mean SUBMIT sizes measured in [2]"
declare -A tp_at=([136]=$tp_small)
for s in "$size_plain" "$size_batch" "$size_dplain" "$size_dbatch"; do
  [ "$s" -ge 136 ] && [ "$s" -le 1472 ] || s=136
  [ -n "${tp_at[$s]:-}" ] && continue
  run_testpmd "$s" || die "testpmd at $s B failed (logs in $work)"
  tp_at[$s]=$tp_fwd
done
pps_plain=${tp_at[$size_plain]:-$tp_small}
pps_batch=${tp_at[$size_batch]:-$tp_small}
pps_dplain=${tp_at[$size_dplain]:-$tp_small}
pps_dbatch=${tp_at[$size_dbatch]:-$tp_small}

# ---- 3. the ratios
ratio() { awk -v r="$1" -v p="$2" -v k="$3" 'BEGIN { printf "%.1f", (p * k) ? 100 * r / (p * k) : 0 }'; }
r_plain=$(ratio "$rps_plain" "$pps_plain" "$rpd_plain")
r_batch=$(ratio "$rps_batch" "$pps_batch" "$rpd_batch")
r1_plain=$(ratio "$rps_plain" "$tp_small" 1)
r1_batch=$(ratio "$rps_batch" "$tp_small" 1)
r_dplain=$(ratio "$rps_dplain" "$pps_dplain" "$rpd_dplain")
r_dbatch=$(ratio "$rps_dbatch" "$pps_dbatch" "$rpd_dbatch")
r1_dplain=$(ratio "$rps_dplain" "$tp_small" 1)
r1_dbatch=$(ratio "$rps_dbatch" "$tp_small" 1)
verdict() { awk -v r="$1" 'BEGIN { print (r >= 50 ? "meets" : "misses") }'; }
echo "dpdk-path: [3] results ($pmd, $cores cores, one run; load average now $(cut -d' ' -f1-3 /proc/loadavg)," \
  "running: $(busy))"
printf 'dpdk-path:   %-28s %12s %14s %8s %12s %8s\n' run "ordered/s" "SUBMIT dg/s" "req/dg" "testpmd pps" ratio
printf 'dpdk-path:   %-28s %12s %14s %8s %12s %7s%%  (%s the 50%% target)\n' \
  "plain (batch 1, ~${size_plain} B dg)" "$rps_plain" "$dgr_plain" "$rpd_plain" \
  "$pps_plain@$size_plain" "$r_plain" "$(verdict "$r_plain")"
printf 'dpdk-path:   %-28s %12s %14s %8s %12s %7s%%  (%s the 50%% target)\n' \
  "batch $batch (~${size_batch} B dg)" "$rps_batch" "$dgr_batch" "$rpd_batch" \
  "$pps_batch@$size_batch" "$r_batch" "$(verdict "$r_batch")"
printf 'dpdk-path:   %-28s %12s %14s %8s %12s %7s%%  (%s the 50%% target)\n' \
  "DPDK client, plain (~${size_dplain} B)" "$rps_dplain" "$dgr_dplain" "$rpd_dplain" \
  "$pps_dplain@$size_dplain" "$r_dplain" "$(verdict "$r_dplain")"
printf 'dpdk-path:   %-28s %12s %14s %8s %12s %7s%%  (%s the 50%% target)\n' \
  "DPDK client, batch $batch (~${size_dbatch} B)" "$rps_dbatch" "$dgr_dbatch" "$rpd_dbatch" \
  "$pps_dbatch@$size_dbatch" "$r_dbatch" "$(verdict "$r_dbatch")"
echo "dpdk-path:   ratio = ordered/s / (testpmd forwarded pps at the same datagram size x requests per datagram)"
echo "dpdk-path:   against one request per 136 B datagram ($tp_small pps): plain $r1_plain%, batch $batch $r1_batch%;" \
  "DPDK client: plain $r1_dplain%, batch $batch $r1_dbatch%"
echo "RESULT pmd=$pmd cores=$cores lcores=$lcores tp_pps_136=$tp_small plain_rps=$rps_plain plain_rpd=$rpd_plain" \
  "plain_dg=$size_plain plain_tp_pps=$pps_plain plain_ratio=$r_plain batch=$batch batch_rps=$rps_batch" \
  "batch_rpd=$rpd_batch batch_dg=$size_batch batch_tp_pps=$pps_batch batch_ratio=$r_batch" \
  "dpdk_plain_rps=$rps_dplain dpdk_plain_rpd=$rpd_dplain dpdk_plain_ratio=$r_dplain" \
  "dpdk_batch_rps=$rps_dbatch dpdk_batch_rpd=$rpd_dbatch dpdk_batch_ratio=$r_dbatch"
exit 0
