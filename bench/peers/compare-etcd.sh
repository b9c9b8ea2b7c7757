#!/usr/bin/env bash
# ordo beside etcd in one run (issue 3's benchmark), now a thin wrapper of
# bench/compare: the demo cluster (a 3-node sequencer group with durability =
# fsync, 3 replicas) and a 3-member etcd cluster, one after the other on this
# host, each driven by 4 clients with 64-byte payloads: closed loop (window 64
# each), then open loop at RATE/s. bench/compare runs the other peers too.
# Usage: bench/peers/compare-etcd.sh [BUILD_DIR] [DURATION_S] [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bench/compare --build "${1:-build}" --duration "${2:-8}" --rate "${3:-2000}" --only ordo,etcd
