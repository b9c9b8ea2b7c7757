#!/usr/bin/env bash
# The NATS side of ordo's comparison: 3 nats-server processes (Debian's
# nats-server 2.9.10) in one JetStream cluster on this host, on 127.0.9.21-23
# (clients 4222, routes 6222, monitoring 8222), each with file storage in its
# own temp dir. Loaded by bench/peers/nats/load.js: acked JetStream publishes of
# 64-byte payloads to one stream with 3 replicas on file storage, closed loop
# (4 clients x 64 outstanding) then open loop at RATE/s.
#
# Durability, honestly: a publish is acknowledged once the stream's Raft group
# has stored it on a majority of the 3 servers, but JetStream does not fsync
# per message. Its file store writes each message to the OS and syncs its
# blocks in the background, every 2 minutes by default (the sync_interval
# option of nats-server 2.10 and later, where sync_interval: always fsyncs
# every write; 2.9.10 has neither option). So what is acknowledged survives
# the crash of a minority of servers, or of all the processes (the page cache
# keeps it), but a power loss of a majority of machines can lose up to about
# 2 minutes of acknowledged messages. ordo (durability = fsync), etcd and
# ZooKeeper fsync on a majority before they answer; this peer does less work
# per request than they do. Count the fsyncs yourself with
#   strace -f -c -e trace=fsync,fdatasync -p PID
#
# Installs nats-server and the npm client when missing; prints each run's
# summary and JSON line; stops the servers and removes the temp dir on exit.
# Like zookeeper.sh, an unreported closed-loop run of PRIME_S seconds
# (default 10; 0 for none) comes first.
# Usage: bench/peers/nats.sh [DURATION_S] [RATE] [WARMUP_S]
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-8}
rate=${2:-2000}
warmup=${3:-2}
prime=${PRIME_S:-10}
. lib/common.sh
{ command -v node && command -v npm; } > /dev/null || apt_install nodejs npm
command -v nats-server > /dev/null || apt_install nats-server
command -v curl > /dev/null || apt_install curl
[ -d nats/node_modules/nats ] || (cd nats && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
version=$(nats-server --version | sed 's/.*v//')

dir=$(mktemp -d /tmp/ordo-nats-XXXXXX)
peer_traps

for i in 1 2 3; do
  mkdir -p "$dir/n$i"
  routes=""
  for j in 1 2 3; do [ $j = $i ] || routes="$routes${routes:+, }\"nats-route://127.0.9.2$j:6222\""; done
  cat > "$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.9.2$i:4222
http: 127.0.9.2$i:8222
max_payload: 1MB
jetstream {
  store_dir: "$dir/n$i"
  max_memory_store: 256MB
  max_file_store: 16GB
}
cluster {
  name: ordo-bench
  listen: 127.0.9.2$i:6222
  routes: [$routes]
}
EOF
  nats-server -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
  pids+=($!)
done

# Healthy: every server's /healthz says ok (JetStream enabled and current) and
# the JetStream meta group has a leader.
healthy=no
for _ in $(seq 1 150); do
  ok=0
  for i in 1 2 3; do
    curl -sf -m 1 "http://127.0.9.2$i:8222/healthz" 2>/dev/null | grep -q '"ok"' && ok=$((ok + 1))
  done
  if [ $ok = 3 ] && curl -sf -m 1 "http://127.0.9.21:8222/jsz" 2>/dev/null | grep -q '"leader"'; then
    healthy=yes
    break
  fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
  sleep 0.2
done
if [ $healthy != yes ]; then
  echo "nats: the cluster did not come up; server logs:" >&2
  tail -n 20 "$dir"/n*.log >&2
  exit 1
fi
cpus=$(IFS=,; echo "${pids[*]}")
eps=127.0.9.21:4222,127.0.9.22:4222,127.0.9.23:4222
echo "== nats-server $version, 3 servers on 127.0.9.21-23, JetStream stream R3 on file storage (no per-message fsync), $(nproc) cores"
export NATS_VERSION=$version
if [ "$prime" != 0 ]; then
  run node nats/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$prime" --warmup 0 --size 64 > /dev/null
fi
run node nats/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
run node nats/load.js --endpoints "$eps" --rate "$rate" --clients 4 --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
