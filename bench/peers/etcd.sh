#!/usr/bin/env bash
# The etcd side of ordo's comparison: a 3-member etcd cluster (Debian's
# etcd-server 3.4, WAL fsync on, as shipped) on this host, on 127.0.9.1-3
# (clients 2379, peers 2380), each member's data in a temp dir. Loaded by
# bench/peers/etcd/load.js with Puts of 64-byte values, closed loop (4 clients
# x 64 outstanding) then open loop at RATE/s. An unreported closed-loop run of
# PRIME_S seconds (default 10; 0 for none) comes first, as for every system of
# bench/compare. Installs etcd-server and the npm client when missing; prints
# each run's summary and JSON line; stops the cluster and removes the temp dir
# on exit.
# Usage: bench/peers/etcd.sh [DURATION_S] [RATE] [WARMUP_S]
# (CLIENTS and WINDOW in the environment set the closed loop's concurrency.)
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-8}
rate=${2:-2000}
warmup=${3:-2}
prime=${PRIME_S:-10}
# closed-loop concurrency (CLIENTS x WINDOW outstanding), 4 x 64 unless set
clients=${CLIENTS:-4}
window=${WINDOW:-64}
. lib/common.sh
{ command -v node && command -v npm; } > /dev/null || apt_install nodejs npm
{ command -v etcd && command -v etcdctl; } > /dev/null || apt_install etcd-server etcd-client
[ -d etcd/node_modules/etcd3 ] || (cd etcd && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
version=$(etcd --version | awk '/^etcd Version/ {print $3}')

dir=$(mktemp -d /tmp/ordo-etcd-XXXXXX)
peer_traps

cluster="e1=http://127.0.9.1:2380,e2=http://127.0.9.2:2380,e3=http://127.0.9.3:2380"
for i in 1 2 3; do
  etcd --name e$i --data-dir "$dir/e$i" \
    --listen-peer-urls http://127.0.9.$i:2380 --initial-advertise-peer-urls http://127.0.9.$i:2380 \
    --listen-client-urls http://127.0.9.$i:2379 --advertise-client-urls http://127.0.9.$i:2379 \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token ordo-bench \
    --log-level error > "$dir/e$i.log" 2>&1 &
  pids+=($!)
done
eps=127.0.9.1:2379,127.0.9.2:2379,127.0.9.3:2379
healthy=no
for _ in $(seq 1 150); do
  if ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout=1s endpoint health >/dev/null 2>&1; then
    healthy=yes
    break
  fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
  sleep 0.2
done
if [ $healthy != yes ]; then
  echo "etcd: the cluster did not come up; member logs:" >&2
  tail -n 20 "$dir"/e*.log >&2
  exit 1
fi
cpus=$(IFS=,; echo "${pids[*]}")
echo "== etcd $version, 3 members on 127.0.9.1-3, WAL fsync on, $(nproc) cores"
export ETCD_VERSION=$version
if [ "$prime" != 0 ]; then
  run node etcd/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$prime" --warmup 0 --size 64 > /dev/null
fi
run node etcd/load.js --endpoints "$eps" --closed --clients "$clients" --window "$window" --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
run node etcd/load.js --endpoints "$eps" --rate "$rate" --clients 4 --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
