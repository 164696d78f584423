#!/usr/bin/env bash
# Bind a NIC to vfio-pci for DPDK (as root), or give it back to its kernel driver.
#   scripts/dpdk/bind_nic.sh PCI_ADDRESS            e.g. 0000:3b:00.0
#   scripts/dpdk/bind_nic.sh --unbind PCI_ADDRESS DRIVER   e.g. ... ice
#   add --dry-run to print what would be done
# The interface goes down for the kernel: never bind the NIC you are logged in through.
# Needs the IOMMU on (intel_iommu=on iommu=pt on the kernel command line) or
# vfio's no-IOMMU mode.  Uses dpdk-devbind.py when installed (apt install dpdk).
set -euo pipefail
dry=0 unbind=0 args=()
for a in "$@"; do
    case "$a" in
        --dry-run) dry=1 ;;
        --unbind) unbind=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) args+=("$a") ;;
    esac
done
[ ${#args[@]} -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
pci=${args[0]}
[[ "$pci" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] || { echo "bind_nic: '$pci' is not a PCI address like 0000:3b:00.0" >&2; exit 2; }
run() { if [ $dry = 1 ]; then echo "+ $*"; else "$@"; fi; }
[ $dry = 1 ] || [ "$(id -u)" = 0 ] || { echo "bind_nic: run as root" >&2; exit 1; }
[ $dry = 1 ] || [ -e "/sys/bus/pci/devices/$pci" ] || { echo "bind_nic: no PCI device $pci" >&2; exit 1; }
driver=vfio-pci
if [ $unbind = 1 ]; then
    [ ${#args[@]} -ge 2 ] || { echo "bind_nic: --unbind needs the kernel driver to give it back to" >&2; exit 2; }
    driver=${args[1]}
else
    run modprobe vfio-pci
fi
if command -v dpdk-devbind.py >/dev/null 2>&1; then
    run dpdk-devbind.py --bind="$driver" "$pci"
else
    dev=/sys/bus/pci/devices/$pci
    run sh -c "[ ! -e $dev/driver ] || echo $pci > $dev/driver/unbind"
    run sh -c "echo $driver > $dev/driver_override"
    run sh -c "echo $pci > /sys/bus/pci/drivers_probe"
    run sh -c "echo > $dev/driver_override"
fi
[ $dry = 1 ] || echo "bind_nic: $pci -> $(basename "$(readlink -f /sys/bus/pci/devices/$pci/driver)")"
