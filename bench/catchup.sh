#!/usr/bin/env bash
# Catch-up time of an empty replica (issue 6): a local cluster (3 sequencers
# with fsync, 3 replicas with --data, on loopback) is loaded with ACCOUNTS
# accounts (ordo bench --op create); then replica 13 is stopped, its data
# directory wiped and formatted again, and started: the sequencers no longer
# hold epoch 1, so it must fetch a checkpoint from another replica (state
# transfer) and then follow the stream. Reported: the time from its start to
# the moment its STATUS shows the same position and digest as a peer's, and
# the state transfer's own figures from its log.
#
# Usage: bench/catchup.sh [ACCOUNTS] [BUILD_DIR]   (from the repository root;
# default 10000000 accounts; a release build is faster: make bench builds
# build-release). Needs ~6 GiB of memory at 10 M accounts. Stops what it
# starts.
set -u
accounts=${1:-10000000}
O=${2:-build}/cmd/ordo
[ -x "$O" ] || { echo "catchup: $O not built (make build)" >&2; exit 2; }
work=$(mktemp -d /tmp/ordo-catchup-XXXXXX)
ini=$work/catchup.ini
# demo.ini's layout on its own addresses, with room for the accounts
sed -e "s/^accounts_max = .*/accounts_max = $((accounts + accounts / 2 + 1024))/" \
    -e 's/^transfers_max = .*/transfers_max = 1048576/' \
    -e 's/127\.0\.1\./127.0.5./; s/127\.0\.2\./127.0.6./' nic-config/demo.ini > "$ini"
if $O status --cluster "$ini" 2>/dev/null | awk '$2 ~ /^(leader|follower|replica)$/' | grep -q .; then
  echo "catchup: a cluster already answers on $ini's addresses; stop it first" >&2
  exit 2
fi
$O demo --serve --cluster "$ini" > "$work/demo.log" 2>&1 &
demo=$!
cleanup() {
  kill -TERM $demo 2>/dev/null
  wait $demo 2>/dev/null
  pkill -TERM -f "ordo (sequencer|replica) --cluster $ini" 2>/dev/null
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "cluster running" "$work/demo.log" && break; sleep 0.2; done
grep -q "cluster running" "$work/demo.log" || { echo "catchup: the cluster did not start" >&2; cat "$work/demo.log" >&2; exit 1; }
logs=$(sed -n 's/.*logs=\([^ ]*\).*/\1/p' "$work/demo.log" | head -1)
echo "catchup: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); cluster $ini, logs $logs"

# Load: create the accounts, as fast as the cluster takes them.
t0=$(date +%s)
$O bench --cluster "$ini" --op create --closed --clients 16 --window 256 --batch 16 \
  --warmup 0 --duration 3600 --json "$work/load.json" > "$work/load.txt" 2>&1 &
bench=$!
while :; do
  pos=$($O status --cluster "$ini" --node 11 2>/dev/null | awk '$1=="11"{print $6}')
  case "$pos" in *[!0-9]* | "") pos=0 ;; esac
  [ "$pos" -ge "$accounts" ] && break
  kill -0 $bench 2>/dev/null || { echo "catchup: the load stopped early" >&2; cat "$work/load.txt" >&2; exit 1; }
  sleep 1
done
kill -TERM $bench 2>/dev/null; wait $bench 2>/dev/null
echo "catchup: $pos positions applied (CREATE_ACCOUNT) in $(( $(date +%s) - t0 )) s"

status_of() { $O status --cluster "$ini" --node "$1" 2>/dev/null | awk -v n="$1" '$1==n{print $6, $8}'; }
for _ in $(seq 1 100); do
  a=$(status_of 11); b=$(status_of 12); c=$(status_of 13)
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && break
  sleep 0.2
done

# Replica 13: stop, wipe, format again, start empty.
pid=$(pgrep -f "ordo replica --cluster $ini --node 13( |$)")
args=$(tr '\0' ' ' < /proc/"$pid"/cmdline | cut -d' ' -f2-)
kill -TERM "$pid"
# until it has exited (a zombie of ordo demo's counts as exited)
while [ -e /proc/"$pid" ] && ! awk '{exit $3 == "Z" ? 0 : 1}' /proc/"$pid"/stat 2>/dev/null; do sleep 0.1; done
rm -rf "$logs/data-13"
$O format --cluster "$ini" --node 13 --data "$logs/data-13" > /dev/null
want=$(status_of 11)
echo "catchup: replica 11 holds position/digest $want; starting replica 13 empty"
t0=$(date +%s%N)
# shellcheck disable=SC2086
setsid $O $args > "$work/r13.log" 2>&1 < /dev/null &
while :; do
  c=$(status_of 13); a=$(status_of 11)
  [ -n "$c" ] && [ "$c" = "$a" ] && break
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -gt 600 ] && { echo "catchup: not caught up after 600 s" >&2; cat "$work/r13.log" >&2; exit 1; }
  sleep 0.05
done
t1=$(date +%s%N)
echo "catchup: replica 13 caught up (same position and digest as replica 11: $c) $(( (t1 - t0) / 1000000 )) ms after it started"
grep -E "recovered|state transfer" "$work/r13.log" | sed 's/^/  /'
pkill -TERM -f "ordo replica --cluster $ini --node 13( |$)"
