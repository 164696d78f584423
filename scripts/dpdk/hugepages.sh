#!/usr/bin/env bash
# Reserve 2 MiB hugepages for DPDK and mount hugetlbfs (as root).
#   scripts/dpdk/hugepages.sh [PAGES] [--node N] [--dry-run]
# PAGES defaults to 1024 (2 GiB).  Persist across reboots with the kernel
# command line instead: default_hugepagesz=2M hugepagesz=2M hugepages=1024
set -euo pipefail
pages=1024 node="" dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --node) node=$2; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) pages=$1; shift ;;
    esac
done
case "$pages" in ''|*[!0-9]*) echo "hugepages: PAGES must be a number, got '$pages'" >&2; exit 2 ;; esac
if [ -n "$node" ]; then
    target=/sys/devices/system/node/node$node/hugepages/hugepages-2048kB/nr_hugepages
else
    target=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
fi
run() { if [ $dry = 1 ]; then echo "+ $*"; else "$@"; fi; }
[ $dry = 1 ] || [ "$(id -u)" = 0 ] || { echo "hugepages: run as root" >&2; exit 1; }
[ -e "$target" ] || [ $dry = 1 ] || { echo "hugepages: $target missing (no 2 MiB hugepage support?)" >&2; exit 1; }
run sh -c "echo $pages > $target"
run mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages 2>/dev/null; then run mount -t hugetlbfs nodev /dev/hugepages; fi
[ $dry = 1 ] || echo "hugepages: $(cat "$target") x 2 MiB reserved ($target), hugetlbfs on /dev/hugepages"
