# Sourced by bench/peers/{etcd,nats,zookeeper}.sh and bench/compare: what
# they share. apt_install installs from Debian; run starts a child in the
# background and waits for it, so that a signal to the script is handled at
# once (bash runs traps only between foreground commands); peer_traps, once
# the peer script has made its temp dir ($dir) and as it starts servers
# (their pids in the pids array), stops them on exit, waiting up to 10 s
# before SIGKILL, and removes the dir.

apt_install() { # PACKAGE...: install from Debian, refreshing the lists once if needed
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" > /dev/null 2>&1 || { apt-get update -qq > /dev/null && apt-get install -y -qq "$@" > /dev/null; }
}

child=""
run() { local rc=0; "$@" & child=$!; wait "$child" || rc=$?; child=""; return "$rc"; }

pids=()
peer_cleanup() {
  local p i
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
peer_traps() {
  trap peer_cleanup EXIT
  trap 'exit 130' INT TERM
}
