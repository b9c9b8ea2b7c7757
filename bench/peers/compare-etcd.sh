#!/usr/bin/env bash
# ordo beside etcd in one run (issue 3's benchmark): the demo cluster (a
# 3-node sequencer group with durability = fsync, 3 replicas) and a 3-member
# etcd cluster, one after the other on this host, each driven by 4 clients
# with 64-byte payloads: closed loop (window 64 each), then open loop at
# RATE/s. Usage: bench/peers/compare-etcd.sh [BUILD_DIR] [DURATION_S] [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
duration=${2:-8}
rate=${3:-2000}
O=$build/cmd/ordo
[ -x "$O" ] || { echo "compare: $O not built (make build)" >&2; exit 2; }
echo "== $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
$O demo --serve > /tmp/ordo-compare-demo.log 2>&1 &
demo=$!
trap 'kill -INT $demo 2>/dev/null; wait $demo 2>/dev/null || true' EXIT
for i in $(seq 1 50); do $O status 2>/dev/null | awk '$2=="leader"' | grep -q . && break; sleep 0.2; done
echo "== ordo: 3-node sequencer group (fsync), 3 replicas"
$O bench --duration "$duration" --warmup 2 --closed --clients 4 --window 64 --size 64 | tail -9
$O bench --duration "$duration" --warmup 2 --rate "$rate" --clients 4 --size 64 | tail -9
kill -INT $demo; wait $demo 2>/dev/null || true
trap - EXIT
bench/peers/etcd.sh "$duration" "$rate"
