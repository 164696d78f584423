#!/usr/bin/env bash
# Host set-up for receiving live on one host (as root): hugepages, a veth pair
# with its far end in a network namespace, the memif socket directory, and the
# EAL arguments to give `feedhandler run --dpdk` for each driver.
#   scripts/dpdk/live_setup.sh [--hugepages N] [--veth NAME [--peer PEER] [--netns NS]]
#                              [--memif-dir DIR] [--down] [--dry-run]
#   --hugepages N   set the 2 MiB hugepage pool to N pages and mount hugetlbfs on
#                   /dev/hugepages (0 gives the pages back); fails if the kernel gives fewer
#   --veth NAME     create the veth pair NAME <-> PEER (default PEER: NAMEp), both up,
#                   IPv6 off on both; PEER goes into namespace NS (default fhtx)
#   --memif-dir DIR where memif sockets live (default /run/feedhandler)
#   --down          remove the veth pair, the namespace once empty, and DIR once empty
#   --dry-run       print the commands instead of running them
# Safe to run twice: what is already in place is left as it is.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "live_setup: $1" >&2; exit "${2:-2}"; }

pages="" veth="" peer="" netns="" memif_dir=/run/feedhandler down=0 dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --hugepages|--veth|--peer|--netns|--memif-dir)
            [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
            case "$1" in
                --hugepages) pages=$2 ;;
                --veth) veth=$2 ;;
                --peer) peer=$2 ;;
                --netns) netns=$2 ;;
                --memif-dir) memif_dir=$2 ;;
            esac
            shift 2 ;;
        --down) down=1; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

# Input checks, before anything is touched.
if [ -n "$pages" ]; then
    case "$pages" in *[!0-9]*) die "--hugepages must be a number of 2 MiB pages, got '$pages'" ;; esac
    [ "${#pages}" -le 7 ] || die "--hugepages $pages is more than this script will reserve"
    pages=$((10#$pages))
fi
# Interface names are at most 15 characters (IFNAMSIZ); keep them to plain characters.
ifname_ok() { [[ "$1" =~ ^[A-Za-z0-9_.-]{1,15}$ ]]; }
if [ -n "$veth" ]; then
    [ -n "$peer" ] || peer=${veth}p
    [ -n "$netns" ] || netns=fhtx
    ifname_ok "$veth" || die "--veth '$veth' is not an interface name (1 to 15 of A-Z a-z 0-9 _ . -)"
    ifname_ok "$peer" || die "the peer '$peer' is not an interface name (1 to 15 of A-Z a-z 0-9 _ . -; give --peer)"
    [ "$veth" != "$peer" ] || die "--veth and --peer must differ"
    [[ "$netns" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "--netns '$netns' is not a namespace name (A-Z a-z 0-9 _ . -)"
else
    [ -z "$peer" ] && [ -z "$netns" ] || die "--peer and --netns go with --veth NAME"
fi
[[ "$memif_dir" = /* ]] || die "--memif-dir must be an absolute path, got '$memif_dir'"
[[ "$memif_dir" =~ ^[A-Za-z0-9_./-]+$ ]] || die "--memif-dir '$memif_dir' has characters this script will not quote"
# A memif socket path must fit a sockaddr_un (108 bytes with its NUL).
[ "${#memif_dir}" -le 90 ] || die "--memif-dir is too long for a unix socket path"

[ $dry = 1 ] || [ "$(id -u)" = 0 ] || die "run as root (or give --dry-run)" 1
command -v ip >/dev/null 2>&1 || [ -z "$veth" ] || die "iproute2 (ip) is needed for --veth" 1

run() { if [ $dry = 1 ]; then echo "+ $*"; else "$@"; fi; }

# Whether a link NAME exists here, and whether it is a veth (its kind leads a
# line of `ip -d -o link`'s details, which -o joins with backslashes).
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
is_veth() { ip -d -o link show dev "$1" 2>/dev/null | grep -qE '\\ +veth '; }
netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

hugepages() {
    local target=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    [ -e "$target" ] || [ $dry = 1 ] || die "$target missing (no 2 MiB hugepage support in this kernel)" 1
    local now
    now=$(cat "$target" 2>/dev/null || echo 0)
    if [ "$now" != "$pages" ]; then
        run sh -c "echo $pages > $target"
    fi
    if [ "$pages" -gt 0 ]; then
        [ -d /dev/hugepages ] || run mkdir -p /dev/hugepages
        mountpoint -q /dev/hugepages 2>/dev/null || run mount -t hugetlbfs nodev /dev/hugepages
    fi
    [ $dry = 1 ] && return 0
    local got
    got=$(cat "$target")
    [ "$got" -ge "$pages" ] || die "asked for $pages hugepages, the kernel gave $got (memory too fragmented: reserve them at boot, hugepages=$pages)" 1
    echo "live_setup: $got x 2 MiB hugepages (was $now), hugetlbfs on /dev/hugepages"
    # The memif lines below ask for -m 512 and -m 256: 384 pages for both ends.
    [ "$got" = 0 ] || [ "$got" -ge 384 ] || echo "live_setup: note: $got pages are fewer than the 384 the memif lines below need: lower their -m"
    # DPDK processes that ran without --in-memory or --huge-unlink leave their
    # page files behind, and those pages stay taken until the files go.
    local left
    left=$(find /dev/hugepages -maxdepth 1 -name '*map_*' 2>/dev/null | wc -l)
    [ "$left" = 0 ] || echo "live_setup: note: $left page file(s) left in /dev/hugepages by exited DPDK processes hold pages; remove them (rm /dev/hugepages/*map_*) when no DPDK process runs"
}

veth_up() {
    if link_exists "$veth" && ! is_veth "$veth"; then
        die "$veth exists and is not a veth: choose another name" 1
    fi
    netns_exists "$netns" || run ip netns add "$netns"
    if ! link_exists "$veth"; then
        run ip link add "$veth" type veth peer name "$peer"
        run ip link set "$peer" netns "$netns"
    elif ! ip netns exec "$netns" ip link show dev "$peer" >/dev/null 2>&1; then
        die "$veth exists but its peer is not $peer in namespace $netns: remove it (--down) or name another" 1
    fi
    # IPv6 off: no router solicitations or MLD reports reach the receiver.
    run sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1"
    run ip netns exec "$netns" sysctl -qw "net.ipv6.conf.$peer.disable_ipv6=1"
    run ip link set "$veth" up
    run ip netns exec "$netns" ip link set "$peer" up
    [ $dry = 1 ] || echo "live_setup: veth $veth (here) <-> $peer (namespace $netns), up"
}

veth_down() {
    if link_exists "$veth"; then
        is_veth "$veth" || die "$veth is not a veth: not removing it" 1
        run ip link del "$veth"       # takes the peer with it, wherever it is
    fi
    if netns_exists "$netns"; then
        # Only a namespace with nothing left but its loopback goes.
        local others
        others=$(ip netns exec "$netns" ip -o link show 2>/dev/null | awk -F': ' '$2 != "lo" && $2 !~ /^'"$peer"'@/ {print $2}' || true)
        if [ -z "$others" ]; then
            run ip netns del "$netns"
        else
            echo "live_setup: namespace $netns still has interfaces ($others): left in place" >&2
        fi
    fi
    [ $dry = 1 ] || echo "live_setup: veth $veth and namespace $netns are gone"
}

if [ $down = 1 ]; then
    [ -z "$veth" ] || veth_down
    if [ -d "$memif_dir" ]; then
        if [ -z "$(ls -A "$memif_dir")" ]; then
            run rmdir "$memif_dir"
        else
            echo "live_setup: $memif_dir is not empty (a memif server running?): left in place" >&2
        fi
    fi
    [ -z "$pages" ] || hugepages
    exit 0
fi

[ -z "$pages" ] || hugepages
[ -z "$veth" ] || veth_up
[ -d "$memif_dir" ] || run mkdir -p -m 0755 "$memif_dir"

# The EAL arguments for each driver.  Every DPDK process on one host needs its
# own --file-prefix; memif's two ends need the same socket.
iface=${veth:-IFACE}
sock=$memif_dir/memif.sock
if [ -n "$pages" ] && [ "$pages" -gt 0 ]; then
    # Hugepages, and nothing left in /dev/hugepages when a process exits.
    mem="--in-memory -m 512"
    mem_tx="--in-memory -m 256"
else
    mem="--no-huge -m 512"
    mem_tx="--no-huge -m 256"
fi
cat <<EOF

EAL arguments for feedhandler run --dpdk "..." (one --file-prefix per process):
  af_packet     -l 0 --no-huge --no-pci -m 512 --file-prefix fh --vdev=net_af_packet0,iface=$iface,framecnt=4096
  AF_XDP        -l 0 --no-huge --no-pci -m 512 --file-prefix fh --vdev=net_af_xdp0,iface=$iface,start_queue=0,queue_count=1
  memif server  -l 0 $mem --no-pci --file-prefix fh --vdev=net_memif0,role=server,socket=$sock,socket-abstract=no
  memif client  -l 1 $mem_tx --no-pci --file-prefix fhsend --vdev=net_memif0,role=client,socket=$sock,socket-abstract=no
EOF
if [ -n "$veth" ]; then
    echo "Send from the namespace: ip netns exec $netns <sender> $peer"
fi
