#!/usr/bin/env bash
# Failover time of the demo cluster: SIGKILL the sequencer group's leader,
# time until a fresh `ordo submit` gets ORDERED OK (process start included),
# restart the killed node with its own command line, repeat.
# Usage: bench/failover.sh [ROUNDS] [BUILD_DIR]   (from the repository root;
# stops the demo cluster it starts).
set -u
rounds=${1:-5}
O=${2:-build}/cmd/ordo
cluster=nic-config/demo.ini
[ -x "$O" ] || { echo "failover: $O not built (make build)" >&2; exit 2; }
if $O status --cluster $cluster >/dev/null 2>&1; then
  echo "failover: a cluster already answers on $cluster's addresses; stop it first" >&2
  exit 2
fi
$O demo --serve --cluster $cluster > /tmp/ordo-failover-demo.log 2>&1 &
demo=$!
trap 'kill -INT $demo 2>/dev/null; wait $demo 2>/dev/null; pkill -TERM -f "ordo sequencer --cluster $cluster" 2>/dev/null' EXIT
for i in $(seq 1 50); do
  $O status --cluster $cluster 2>/dev/null | awk '$2=="leader"' | grep -q . && break
  sleep 0.2
done
echo "failover: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), election_ms default"
for round in $(seq 1 "$rounds"); do
  leader=$($O status --cluster $cluster | awk '$2=="leader"{print $1}')
  pid=$(pgrep -f "ordo sequencer --cluster $cluster --node $leader ")
  args=$(tr '\0' ' ' < /proc/"$pid"/cmdline | cut -d' ' -f2-)
  t0=$(date +%s%N)
  kill -KILL "$pid"
  for i in $(seq 1 20); do timeout 3 $O submit --cluster $cluster opaque x >/dev/null 2>&1 && break; done
  t1=$(date +%s%N)
  echo "round $round: SIGKILL leader $leader -> first ORDERED after $(( (t1 - t0) / 1000000 )) ms"
  # shellcheck disable=SC2086
  setsid $O $args >> /tmp/ordo-failover-restarted.log 2>&1 < /dev/null &
  sleep 2
done
