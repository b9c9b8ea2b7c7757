#!/usr/bin/env bash
# The etcd side of ordo's comparison: a 3-member etcd cluster (Debian's
# etcd-server, WAL fsync on, as shipped) on this host, loaded by
# bench/peers/etcd/load.js with 64-byte writes, closed loop then open loop.
# Installs etcd-server and the npm client when missing. Prints each run's
# summary and JSON line. Usage: bench/peers/etcd.sh [DURATION_S] [RATE]
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-8}
rate=${2:-2000}
command -v etcd >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq etcd-server etcd-client >/dev/null; }
[ -d etcd/node_modules/etcd3 ] || (cd etcd && npm install --no-audit --no-fund --loglevel=error >/dev/null)
dir=$(mktemp -d /tmp/ordo-etcd-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
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
for i in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
cpus=$(IFS=,; echo "${pids[*]}")
echo "== etcd $(etcd --version | head -1 | cut -d' ' -f3), 3 members on 127.0.9.1-3, $(nproc) cores"
node etcd/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$duration" --warmup 2 --size 64 --cpu-pids "$cpus"
node etcd/load.js --endpoints "$eps" --rate "$rate" --clients 4 --duration "$duration" --warmup 2 --size 64 --cpu-pids "$cpus"
