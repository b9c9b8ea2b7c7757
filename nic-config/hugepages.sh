#!/usr/bin/env bash
# Reserves huge pages for DPDK nodes (dpdk-hugepages.py from Debian's dpdk
# package) and mounts hugetlbfs. Usage:
#   nic-config/hugepages.sh [SIZE]     reserve SIZE (default 2G) of 2 MiB pages
#   nic-config/hugepages.sh --show     what is reserved and mounted
#   nic-config/hugepages.sh --clear    give them back
# Each DPDK node's memory is its mempool (mbufs x ~(max_datagram + 300)
# bytes: 8191 x 9.3 KiB = 76 MiB at max_datagram 8972) plus the EAL's own
# (~100 MiB); 2 GiB holds a 3 + 3 node cluster with room. Nodes started with
# --no-huge in dpdk_eal (tests, laptops) need none.
set -euo pipefail
command -v dpdk-hugepages.py >/dev/null || {
  echo "hugepages: dpdk-hugepages.py not found; apt-get install dpdk" >&2
  exit 2
}
case "${1:-2G}" in
  --show) exec dpdk-hugepages.py --show ;;
  --clear) dpdk-hugepages.py --unmount || true; exec dpdk-hugepages.py --clear ;;
  -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
  *) dpdk-hugepages.py --pagesize 2M --setup "${1:-2G}"; dpdk-hugepages.py --show ;;
esac
