#!/usr/bin/env bash
# The ZooKeeper side of ordo's comparison: a 3-member ensemble of Debian's
# zookeeper (3.8.0) on this host, on 127.0.9.11-13 (client port 2181, quorum
# 2888, election 3888), each member with its own dataDir in a temp dir and
# forceSync=yes (the default: the transaction log is fsync'd before a member
# acknowledges a proposal). Loaded by bench/peers/zookeeper/load.js: creates of
# PERSISTENT_SEQUENTIAL znodes with 64-byte data under one parent, closed loop
# (4 clients x 64 outstanding) then open loop at RATE/s. Installs zookeeper and
# the npm client when missing; prints each run's summary and JSON line; stops
# the ensemble and removes the temp dir on exit.
# The JVM compiles ZooKeeper's hot paths during the first seconds under load
# (throughput roughly doubles between a cold run and one 20 s in), so an
# unreported closed-loop run of PRIME_S seconds (default 10; 0 for none) comes
# first, and the two measured runs see warm members.
# Usage: bench/peers/zookeeper.sh [DURATION_S] [RATE] [WARMUP_S]
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-8}
rate=${2:-2000}
warmup=${3:-2}
prime=${PRIME_S:-10}
zkjar=/usr/share/java/zookeeper.jar
. lib/common.sh
{ command -v node && command -v npm; } > /dev/null || apt_install nodejs npm
{ [ -f $zkjar ] && [ -f /usr/share/java/slf4j-simple.jar ] && command -v java; } > /dev/null ||
  apt_install zookeeper libslf4j-java
[ -d zookeeper/node_modules/node-zookeeper-client ] || (cd zookeeper && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
version=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null | cut -d- -f1)

dir=$(mktemp -d /tmp/ordo-zookeeper-XXXXXX)
peer_traps

# slf4j-simple at "warn" sends ZooKeeper's warnings and errors to the member's log.
cp="$zkjar:/usr/share/java/slf4j-simple.jar"
for i in 1 2 3; do
  mkdir -p "$dir/zk$i"
  echo $i > "$dir/zk$i/myid"
  cat > "$dir/zk$i/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/zk$i
clientPort=2181
clientPortAddress=127.0.9.1$i
maxClientCnxns=0
forceSync=yes
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
server.1=127.0.9.11:2888:3888
server.2=127.0.9.12:2888:3888
server.3=127.0.9.13:2888:3888
EOF
  java -Xms1g -Xmx1g -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$cp" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk$i/zoo.cfg" > "$dir/zk$i.log" 2>&1 &
  pids+=($!)
done

# Healthy: every member answers "srvr" as the leader or a follower.
mode() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/2181; echo srvr >&3; cat <&3" 2>/dev/null | awk '/^Mode:/ {print $2}'; }
healthy=no
for _ in $(seq 1 150); do
  ok=0
  for i in 1 2 3; do case $(mode 127.0.9.1$i) in leader|follower) ok=$((ok + 1)) ;; esac; done
  [ $ok = 3 ] && { healthy=yes; break; }
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
  sleep 0.2
done
if [ $healthy != yes ]; then
  echo "zookeeper: the ensemble did not come up; member logs:" >&2
  tail -n 20 "$dir"/zk*.log >&2
  exit 1
fi
leader=$(for i in 1 2 3; do [ "$(mode 127.0.9.1$i)" = leader ] && echo 127.0.9.1$i; done)
cpus=$(IFS=,; echo "${pids[*]}")
eps=127.0.9.11:2181,127.0.9.12:2181,127.0.9.13:2181
echo "== zookeeper $version, 3 members on 127.0.9.11-13 (leader $leader), forceSync=yes, $(nproc) cores"
export ZK_VERSION=$version
if [ "$prime" != 0 ]; then
  run node zookeeper/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$prime" --warmup 0 --size 64 > /dev/null
fi
run node zookeeper/load.js --endpoints "$eps" --closed --clients 4 --window 64 --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
run node zookeeper/load.js --endpoints "$eps" --rate "$rate" --clients 4 --duration "$duration" --warmup "$warmup" --size 64 --cpu-pids "$cpus"
