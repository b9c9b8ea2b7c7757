#!/usr/bin/env bash
# Hands a NIC to DPDK (vfio-pci) or back to its kernel driver, around
# dpdk-devbind.py. Usage:
#   nic-config/bind.sh --status                 NICs and their drivers
#   nic-config/bind.sh [--dry-run] PCI...       bind to vfio-pci (e.g. 0000:3b:00.0)
#   nic-config/bind.sh [--dry-run] --to DRIVER PCI...   bind back (e.g. --to ice)
# The NIC must be down and carry no address the host needs (never the one
# you are logged in through). vfio-pci needs the IOMMU on (intel_iommu=on or
# amd_iommu=on on the kernel command line); the script says so if it is off.
# Then name the port in the cluster file: dpdk_port = 0000:3b:00.0.
set -euo pipefail
command -v dpdk-devbind.py >/dev/null || {
  echo "bind: dpdk-devbind.py not found; apt-get install dpdk" >&2
  exit 2
}
dry=0
driver=vfio-pci
devs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --status) exec dpdk-devbind.py --status-dev net ;;
    --dry-run) dry=1 ;;
    --to) driver=${2:?--to needs a driver}; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) devs+=("$1") ;;
  esac
  shift
done
[ ${#devs[@]} -gt 0 ] || { echo "bind: name at least one PCI address (see --status)" >&2; exit 2; }
run() { if [ $dry -eq 1 ]; then echo "would run: $*"; else "$@"; fi; }
if [ "$driver" = vfio-pci ]; then
  if ! compgen -G '/sys/kernel/iommu_groups/*' >/dev/null; then
    echo "bind: the IOMMU is off; add intel_iommu=on (or amd_iommu=on) iommu=pt to the" \
      "kernel command line and reboot, or use vfio-pci's no-IOMMU mode at your own risk" >&2
    [ $dry -eq 1 ] || exit 1
  fi
  run modprobe vfio-pci
fi
for d in "${devs[@]}"; do
  if ! dpdk-devbind.py --status-dev net | grep -q "^$d "; then
    echo "bind: $d is not a network device here (see --status)" >&2
    exit 1
  fi
  if dpdk-devbind.py --status-dev net | grep "^$d " | grep -q '\*Active\*'; then
    echo "bind: $d is in use by the host (it has a route); bring it down first" >&2
    [ $dry -eq 1 ] || exit 1
  fi
  run dpdk-devbind.py --bind="$driver" "$d"
done
[ $dry -eq 1 ] || dpdk-devbind.py --status-dev net
