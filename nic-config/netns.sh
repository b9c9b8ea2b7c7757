#!/usr/bin/env bash
# The local virtual topology for a DPDK cluster: one network namespace per
# node of a cluster file (its `netns` key), a veth pair from each into one
# Linux bridge (multicast snooping off), and the host on the bridge, so
# kernel-UDP clients on the host, or in the client namespace, reach the DPDK
# nodes. Inside a node's namespace the veth end is named by the node's
# dpdk_vdev (iface=NAME) and carries no address: the DPDK port owns it.
#
#   nic-config/netns.sh up   CLUSTER [--host-addr A.B.C.D/NN] [--bridge NAME]
#   nic-config/netns.sh down CLUSTER [--bridge NAME]
#   nic-config/netns.sh show CLUSTER
#
# --host-addr: the host's address on the bridge (default: .254 of the first
# node's /24). A client namespace `ordo-client` gets .250 of it. The MTU is
# the cluster's max_datagram + 28. Checksum offload is turned off on the
# bridge and the veths: the kernel would hand the DPDK ports UDP frames with
# a checksum left to a NIC that is not there.
set -euo pipefail
cmd=${1:-}
file=${2:-}
[ -n "$cmd" ] && [ -f "$file" ] || { sed -n '10,14p' "$0" >&2; exit 2; }
shift 2
bridge=ordo-br0
host_addr=
while [ $# -gt 0 ]; do
  case "$1" in
    --host-addr) host_addr=${2:?}; shift ;;
    --bridge) bridge=${2:?}; shift ;;
    *) echo "netns: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v ip >/dev/null || { echo "netns: ip (iproute2) not found" >&2; exit 2; }

# "ID NETNS ADDR IFACE" for every node with a netns; the cluster's max_datagram.
nodes=$(awk '
  function flush() { if (id != "" && ns != "") print id, ns, addr, (ifc == "" ? "ordo0" : ifc) }
  /^[ \t]*\[node[ \t]+[0-9]+[ \t]*\]/ { flush(); gsub(/[^0-9]/, "", $0); id = $0; ns = ""; addr = ""; ifc = ""; next }
  /^[ \t]*\[/ { flush(); id = ""; next }
  id != "" && /^[ \t]*netns[ \t]*=/ { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t;#].*$/, ""); ns = $0 }
  id != "" && /^[ \t]*addr[ \t]*=/ { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t;#].*$/, ""); addr = $0 }
  id != "" && /^[ \t]*dpdk_vdev[ \t]*=/ { if (match($0, /iface=[^,; \t]+/)) ifc = substr($0, RSTART + 6, RLENGTH - 6) }
  END { flush() }' "$file")
maxdg=$(awk -F= '/^[ \t]*max_datagram[ \t]*=/ { gsub(/[ \t]/, "", $2); print $2 }' "$file")
mtu=$(( ${maxdg:-1472} + 28 ))
[ -n "$nodes" ] || { echo "netns: no [node N] in $file has a netns key" >&2; exit 1; }
first_addr=$(echo "$nodes" | awk 'NR == 1 { print $3 }')
net24=${first_addr%.*}
[ -n "$host_addr" ] || host_addr=$net24.254/24
client_addr=$net24.250/24

off() { ethtool -K "$@" tx off >/dev/null 2>&1 || true; }

case "$cmd" in
up)
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge mcast_snooping 0
    ip link set "$bridge" mtu "$mtu"
    ip addr add "$host_addr" dev "$bridge"
  fi
  ip link set "$bridge" up
  off "$bridge"
  while read -r id ns addr ifc; do
    hv=ordo-h$id
    ip netns add "$ns" 2>/dev/null || true
    if ! ip link show "$hv" >/dev/null 2>&1; then
      ip link add "$hv" mtu "$mtu" type veth peer name "$ifc" mtu "$mtu" netns "$ns"
    fi
    ip link set "$hv" master "$bridge" up
    off "$hv"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$ifc" up
    ip netns exec "$ns" ethtool -K "$ifc" tx off rx off >/dev/null 2>&1 || true
    echo "netns: node $id in $ns: $ifc ($addr, owned by its DPDK port) <-> $hv on $bridge"
  done <<<"$nodes"
  ns=ordo-client
  ip netns add "$ns" 2>/dev/null || true
  if ! ip link show ordo-hc >/dev/null 2>&1; then
    ip link add ordo-hc mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$ns"
    ip -n "$ns" addr add "$client_addr" dev eth0
  fi
  ip link set ordo-hc master "$bridge" up
  off ordo-hc
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null 2>&1 || true
  echo "netns: host $host_addr and client namespace $ns ($client_addr) on $bridge, MTU $mtu"
  ;;
down)
  while read -r id ns addr ifc; do
    ip link del "ordo-h$id" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done <<<"$nodes"
  ip link del ordo-hc 2>/dev/null || true
  ip netns del ordo-client 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  ;;
show)
  echo "$nodes" | while read -r id ns addr ifc; do echo "node $id: netns $ns, $ifc, $addr"; done
  ip -br addr show "$bridge" 2>/dev/null || echo "netns: $bridge is down"
  ;;
*)
  echo "netns: unknown command $cmd (up, down, show)" >&2
  exit 2
  ;;
esac
