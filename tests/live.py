"""What the tests of the live path share: a generated A/B day, and a veth pair
with one end in a network namespace (real packets from another "host"; needs
root and iproute2)."""

import contextlib
import os
import subprocess
import sys

import pytest

from feedhandler.dpdk import available

#: A DPDK test skips only where this install has no DPDK (tests/expected_skips.toml).
NO_DPDK = pytest.mark.skipif(
    not available(),
    reason="no DPDK support in this install (feedhandler._dpdk not "
    "built: libdpdk-dev / pkg-config libdpdk missing at build time)",
)
#: Capacities that fit a small day in `-m 512`.
CAPS = ["--max-orders", "65536", "--max-levels", "131072", "--max-instruments", "128", "--ring-events", "65536"]


def can_netns():
    return os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0


def ab_day(prefix):
    """A generated A/B day of 30 000 messages on 2 channels (line A
    233.54.12.111/112, line B 233.49.196.111/112): PREFIX.pcap."""
    g = subprocess.run(
        [
            sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix, "--messages", "30000",
            "--symbols", "20", "--channels", "2", "--seed", "4", "--lines", "ab", "--heartbeat-ms", "60000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert g.returncode == 0, g.stderr
    return prefix + ".pcap"


def sh(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def veth_pair(name):
    """(namespace, host end, namespace end) of a new veth pair, both ends up and
    without IPv6 (the kernel's own neighbour discovery would join the test's
    frames); removed after.  `name`: a few letters, unique per test."""
    tag = "%d" % (os.getpid() % 100000)
    ns, v0, v1 = name + "ns" + tag, name + "0" + tag, name + "1" + tag
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", v0, "type", "veth", "peer", "name", v1)
        sh("ip", "link", "set", v1, "netns", ns)
        quiet = "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 2>/dev/null || true"
        subprocess.run(["sh", "-c", quiet % v0], timeout=30)
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", quiet % v1], timeout=30)
        sh("ip", "link", "set", v0, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", v1, "up")
        yield ns, v0, v1
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", v0], capture_output=True)
