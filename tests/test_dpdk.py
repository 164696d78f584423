"""DPDK receive, tested without a NIC: the pcap PMD replays a capture into the
same pipeline, which must give the books and counters of replay mode.  Every
DPDK run is its own process (the EAL initialises once per process)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import live

pytestmark = pytest.mark.slow  # an EAL per test, in its own process: not in --quick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
NO_DPDK, CAPS = live.NO_DPDK, live.CAPS


def eal(tag, vdev):
    return "-l 0 --no-huge --no-pci -m 512 --file-prefix fhtest-%s-%d --log-level=error --vdev=%s" % (
        tag,
        os.getpid(),
        vdev,
    )


def fh(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=timeout)


def both(tmp_path, pcap, tag, extra=(), caps=None):
    """(replay stats, run stats, replay dump, run dump) of one capture; caps:
    the capacity options (default CAPS)."""
    caps = CAPS if caps is None else caps
    a = fh(
        "replay",
        "-q",
        pcap,
        "--mode",
        "book",
        "--dump-books",
        str(tmp_path / "r.csv"),
        "--stats-json",
        str(tmp_path / "r.json"),
        *caps,
        *extra,
    )
    assert a.returncode == 0, a.stderr
    b = fh(
        "run",
        "--dpdk",
        eal(tag, "net_pcap0,rx_pcap=" + pcap),
        "--mode",
        "book",
        "--dump-books",
        str(tmp_path / "d.csv"),
        "--stats-json",
        str(tmp_path / "d.json"),
        *caps,
        *extra,
    )
    assert b.returncode == 0, b.stderr
    assert "net_pcap" in b.stderr  # what was set up is printed
    ra, rb = (json.loads((tmp_path / n).read_text()) for n in ("r.json", "d.json"))
    return ra, rb, (tmp_path / "r.csv").read_text(), (tmp_path / "d.csv").read_text()


@NO_DPDK
def test_pcap_pmd_same_books_and_counters_as_replay(tmp_path):
    ra, rb, ca, cb = both(tmp_path, SAMPLE, "sample")
    assert ca == cb and ca.count("\n") > 20
    for k in (
        "messages",
        "by_type",
        "gaps",
        "duplicates",
        "errors",
        "checksum",
        "packets",
        "heartbeats",
        "end_of_session",
        "book",
    ):
        assert ra[k] == rb[k], k
    assert rb["dpdk"]["ipackets"] == ra["packets"] and rb["dpdk"]["imissed"] == 0


@NO_DPDK
@pytest.mark.parametrize("fixture", ["sample_iex_deepplus", "sample_iex_deep", "sample_iex_tops"])
def test_pcap_pmd_iex_same_books_and_counters_as_replay(tmp_path, fixture):
    """IEX-TP through a DPDK port: the live receiver builds the replay's books
    (DEEP+ over A/B lines and two sessions, DEEP with gaps, TOPS).  IEX ids
    start at 28672, so the instrument capacity stays at its default."""
    pcap = os.path.join(ROOT, "pcaps", fixture + ".pcap")
    caps = ["--max-orders", "65536", "--max-levels", "131072", "--silence-ms", "1200000"]
    ra, rb, ca, cb = both(tmp_path, pcap, fixture.replace("_", "-"), caps=caps)
    assert ca == cb and ca.count("\n") > 10
    for k in ("messages", "by_type", "gaps", "duplicates", "errors", "checksum", "packets", "heartbeats", "book"):
        assert ra[k] == rb[k], k
    assert rb["iex_packets"] == ra["iex_packets"] == ra["packets"]
    assert rb["session_changes"] == ra["session_changes"]


@NO_DPDK
def test_pcap_pmd_lossy_ab_day(tmp_path):
    prefix = str(tmp_path / "ab")
    g = fh(
        "gen",
        "-q",
        "--out",
        prefix,
        "--messages",
        "60000",
        "--symbols",
        "30",
        "--channels",
        "2",
        "--seed",
        "3",
        "--lines",
        "ab",
        "--loss-a",
        "0.05",
        "--loss-b",
        "0.05",
    )
    assert g.returncode == 0, g.stderr
    ra, rb, ca, cb = both(tmp_path, prefix + ".pcap", "ab")
    assert ca == cb
    for k in ("messages", "gaps", "duplicates"):
        assert ra[k] == rb[k], k
    # Hole windows run on receive time, here the wall clock: how the two
    # channels interleave differs, so the all-channel orders_peak may too.
    del ra["book"]["orders_peak"], rb["book"]["orders_peak"]
    assert ra["book"] == rb["book"]
    assert ra["gaps"] > 0 and ra["duplicates"] > 0


@NO_DPDK
def test_duration_stops_an_endless_source(tmp_path):
    # infinite_rx keeps the whole capture in mbufs: the pool must hold it (8324 frames).
    p = fh(
        "run",
        "--dpdk",
        eal("dur", "net_pcap0,rx_pcap=%s,infinite_rx=1" % SAMPLE),
        "--mode",
        "decode",
        "--duration",
        "1",
        "--no-eos-stop",
        "--mbufs",
        "16383",
        "--stats-json",
        str(tmp_path / "s.json"),
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    st = json.loads((tmp_path / "s.json").read_text())
    # Looped over the capture more than once; the repeats are duplicates, not messages.
    assert st["packets"] > 8324 and st["messages"] == 40000 and st["duplicates"] > 0


@NO_DPDK
def test_bad_eal_arguments():
    p = fh("run", "--dpdk", "--bogus-arg x -l 0 --no-huge --file-prefix fhtest-bad", timeout=60)
    assert p.returncode == 1 and "EAL init failed" in p.stderr and "Traceback" not in p.stderr


@NO_DPDK
def test_missing_device():
    p = fh("run", "--dpdk", eal("nodev", "net_pcap0,rx_pcap=/nonexistent.pcap"), timeout=60)
    assert p.returncode == 1 and "no DPDK port" in p.stderr and "Traceback" not in p.stderr


@NO_DPDK
def test_port_that_cannot_be_configured():
    p = fh("run", "--dpdk", eal("cfg", "net_pcap0,rx_pcap=" + SAMPLE), "--mbufs", "100000000", timeout=60)
    assert p.returncode == 1 and "mbufs" in p.stderr and "Traceback" not in p.stderr


@NO_DPDK
def test_affinity_restored_and_segment_published(tmp_path):
    code = """
import os, sys
from feedhandler.dpdk import DpdkRun
from feedhandler.shm import attach
before = os.sched_getaffinity(0)
run = DpdkRun(sys.argv[1], max_orders=65536, max_levels=131072, max_instruments=128, shm=sys.argv[2])
assert os.sched_getaffinity(0) == before, (os.sched_getaffinity(0), before)
run.run()
seg = attach(sys.argv[2])
assert seg.book("AAPL").symbol == "AAPL" and seg.counters()["messages"] == 40000
run.close()
print("ok")
"""
    name = "fhtest-dpdk-%d" % os.getpid()
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, eal("aff", "net_pcap0,rx_pcap=" + SAMPLE), name],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr
    finally:
        if os.path.exists("/dev/shm/" + name):
            os.unlink("/dev/shm/" + name)


def test_run_without_dpdk_says_so(monkeypatch):
    import builtins

    from feedhandler import dpdk

    real = builtins.__import__

    def no_dpdk(name, *a, **k):
        if name.endswith("_dpdk") or (a and a[2] and "_dpdk" in a[2]):
            raise ImportError("simulated")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dpdk)
    with pytest.raises(dpdk.DpdkError, match="no DPDK support"):
        dpdk.backend()


SENDER = """
import socket, struct, sys, time
iface, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
e = "<" if struct.unpack("<I", data[:4])[0] in (0xa1b2c3d4, 0xa1b23c4d) else ">"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
off = n = 0
off = 24
while off + 16 <= len(data):                 # bounded: one pass over the capture
    cap = struct.unpack(e + "I", data[off + 8:off + 12])[0]
    s.send(data[off + 16:off + 16 + cap])
    off += 16 + cap
    n += 1
    if n % 20 == 0:
        time.sleep(0.001)                    # a paced sender: the test is about correctness, not rate
print(n)
"""


def _veth_receive(tmp_path, name, vdev, driver, while_running=None):
    """A generated A/B day sent (paced, tests/test_dpdk.py's SENDER) from another
    network namespace onto a veth, received by `feedhandler run` through the
    DPDK driver `vdev` (IFACE: the host end) until the sender is done and its
    last frames are through: (the day, the handler's stats and books, a
    replay's stats and books)."""
    day = live.ab_day(str(tmp_path / "ab"))
    with live.veth_pair(name) as (ns, v0, v1):
        rx = subprocess.Popen(
            [
                sys.executable, "-m", "feedhandler", "run", "--dpdk", eal(name, vdev.replace("IFACE", v0)),
                "--mode", "book", "--silence-ms", "120000",
                # Not at end of session: line A's end would stop it before line
                # B's last copies arrive.  SIGTERM once the sender is done; the
                # duration is a safety net.
                "--no-eos-stop", "--duration", "90",
                "--dump-books", str(tmp_path / "d.csv"), "--stats-json", str(tmp_path / "d.json"), *CAPS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            line, before = _port_line(rx)
            assert driver in line, before + rx.stderr.read()
            if while_running:
                while_running(v0)
            sent = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, v1, day],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert sent.returncode == 0, sent.stderr
            time.sleep(0.5)  # the last frames through the kernel and the receiver's ring
            rx.terminate()
            out, err = rx.communicate(timeout=120)
        finally:
            if rx.poll() is None:
                rx.kill()
                rx.communicate()
        assert rx.returncode == 143, err  # stopped by the SIGTERM, outputs written
        after = live.sh("ip", "link", "show", "dev", v0).stdout
    r = fh(
        "replay", "-q", day, "--mode", "book", "--silence-ms", "120000",
        "--dump-books", str(tmp_path / "r.csv"), "--stats-json", str(tmp_path / "r.json"), *CAPS,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got, want = (json.loads((tmp_path / n).read_text()) for n in ("d.json", "r.json"))
    return got, (tmp_path / "d.csv").read_text(), want, (tmp_path / "r.csv").read_text(), after


@NO_DPDK
@pytest.mark.skipif(not live.can_netns(), reason="needs root and iproute2 (ip netns) for a veth pair")
def test_af_packet_veth_from_another_namespace(tmp_path):
    """Real packets: a sender in another network namespace writes a generated
    A/B capture onto a veth; DPDK's af_packet PMD receives it on the peer (a
    deep ring and a paced sender: a busy CI box must not drop frames)."""
    b, books, a, ref, _ = _veth_receive(tmp_path, "fhv", "net_af_packet0,iface=IFACE,framecnt=4096", "net_af_packet")
    assert books == ref
    assert a["messages"] == b["messages"] and a["duplicates"] == b["duplicates"] and b["gaps"] == 0
    assert b["dpdk"]["imissed"] == 0


@NO_DPDK
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for 2 queues on 2 cores")
def test_pcap_pmd_two_queues_two_cores(tmp_path):
    """Two RX queues (the pcap PMD takes one capture per queue: here one per
    channel, as NIC steering would split them), one pinned polling thread each:
    the same books and counters as replaying the whole capture on one core."""
    import frames as F

    recs = F.parse_pcap(open(SAMPLE, "rb").read())
    per = {}
    for ts, fr in recs:
        per.setdefault(fr[14 + 19], []).append((ts, fr))  # last byte of the destination group
    assert len(per) == 2
    files = []
    for i, (_, rs) in enumerate(sorted(per.items())):
        p = tmp_path / ("ch%d.pcap" % i)
        p.write_bytes(F.pcap_bytes(rs))
        files.append(str(p))
    vdev = "net_pcap0," + ",".join("rx_pcap=" + f for f in files)
    b = fh(
        "run",
        "--dpdk",
        eal("2q", vdev).replace("-l 0 ", "-l 0,1 "),
        "--cores",
        "0,1",
        "--mode",
        "book",
        "--dump-books",
        str(tmp_path / "d.csv"),
        "--stats-json",
        str(tmp_path / "d.json"),
        *CAPS,
    )
    assert b.returncode == 0, b.stderr
    assert "2 RX queue(s)" in b.stderr
    a = fh(
        "replay",
        "-q",
        SAMPLE,
        "--mode",
        "book",
        "--dump-books",
        str(tmp_path / "r.csv"),
        "--stats-json",
        str(tmp_path / "r.json"),
        *CAPS,
    )
    assert a.returncode == 0, a.stderr
    assert (tmp_path / "d.csv").read_text() == (tmp_path / "r.csv").read_text()
    ra, rb = (json.loads((tmp_path / n).read_text()) for n in ("r.json", "d.json"))
    for k in ("messages", "by_type", "gaps", "duplicates", "checksum", "packets"):
        assert ra[k] == rb[k], k
    assert rb["lanes"] == 2 and rb["dpdk"]["queues"] == 2


@pytest.mark.parametrize(
    "script,args",
    [
        ("hugepages.sh", ["512", "--dry-run"]),
        ("bind_nic.sh", ["0000:3b:00.0", "--dry-run"]),
        ("live_setup.sh", ["--hugepages", "512", "--veth", "fhdry0", "--netns", "fhdryns", "--dry-run"]),
    ],
)
def test_host_scripts_dry_run(script, args):
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "dpdk", script)] + args, capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 0 and p.stdout.startswith("+ "), p.stderr


def test_host_script_rejects_bad_input():
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "dpdk", "bind_nic.sh"), "eth0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2 and "PCI address" in p.stderr
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "dpdk", "hugepages.sh"), "lots", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2


def test_sample_config_parses():
    from feedhandler.config import ConfigError, load

    path = os.path.join(ROOT, "scripts", "dpdk", "channels.toml")
    try:
        chans = load(path)
        assert [c.core for c in chans] == [2, 3]
    except ConfigError as exc:  # a machine with fewer than 4 CPUs
        assert "core 2 does not exist" in str(exc)


@NO_DPDK
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for 2 queues on 2 cores")
def test_config_names_the_queues_and_cores(tmp_path):
    """With a channel config the queues are the cores it names; rte_flow rules
    are tried per group (the pcap PMD has none: the fallback is printed)."""
    import frames as F

    per = {}
    for ts, fr in F.parse_pcap(open(SAMPLE, "rb").read()):
        per.setdefault(fr[14 + 19], []).append((ts, fr))
    files = []
    for i, (_, rs) in enumerate(sorted(per.items())):
        p = tmp_path / ("ch%d.pcap" % i)
        p.write_bytes(F.pcap_bytes(rs))
        files.append(str(p))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "".join(
            '[[channel]]\nname = "c%d"\nline_a = "233.54.12.%d:26477"\ncore = %d\n\n' % (i, 111 + i, i)
            for i in range(2)
        )
    )
    vdev = "net_pcap0," + ",".join("rx_pcap=" + f for f in files)
    b = fh(
        "run",
        "--dpdk",
        eal("cfgq", vdev).replace("-l 0 ", "-l 0,1 "),
        "--config",
        str(cfg),
        "--mode",
        "book",
        "--dump-books",
        str(tmp_path / "d.csv"),
        *CAPS,
    )
    assert b.returncode == 0, b.stderr
    assert "2 RX queue(s)" in b.stderr and "rte_flow" in b.stderr
    a = fh("replay", "-q", SAMPLE, "--mode", "book", "--dump-books", str(tmp_path / "r.csv"), *CAPS)
    assert a.returncode == 0
    assert (tmp_path / "d.csv").read_text() == (tmp_path / "r.csv").read_text()


@NO_DPDK
def test_run_latency_json_stamps_every_packet_from_its_burst(tmp_path):
    out = tmp_path / "lat.json"
    p = fh("run", "--dpdk", eal("lat", "net_pcap0,rx_pcap=" + SAMPLE), "--latency-json", str(out), *CAPS)
    assert p.returncode == 0, p.stderr
    assert "latency rx->published" in p.stdout
    d = json.loads(out.read_text())
    s = d["stages"]
    # Every packet of the sample that carries messages (7079 of 8324), stamped
    # from the TSC at its burst's return (decode, book and publish split every
    # 8th).  A burst's later packets wait for the earlier ones, so rx->start is
    # not all zero; a burst's first packet starts when it was received, so it
    # is zero for some.
    for name in ("rx_to_start", "decode", "book", "publish", "processing", "rx_to_published"):
        assert s[name]["count"] == (7079 // 8 if name in ("decode", "book", "publish") else 7079), name
    assert s["rx_to_start"]["max"] > 0 and s["rx_to_published"]["p50"] >= s["processing"]["p50"]
    assert s["rx_to_start"]["min"] == 0
    assert d["messages_per_packet"]["count"] == 7079 and round(d["messages_per_packet"]["mean"] * 7079) == 40000


@NO_DPDK
def test_run_reports_wire_stages_and_its_rx_clock(tmp_path):
    """Frames carrying a sender's transmit stamp (feedhandler send's trailer),
    received through a poll-mode driver: the report has wire -> rx and wire ->
    published for every packet that applied messages, and says the receive
    times are the TSC at each burst."""
    from test_wire_stamp import APPLYING, stamped

    out = tmp_path / "lat.json"
    p = fh("run", "--dpdk", eal("wire", "net_pcap0,rx_pcap=" + stamped(tmp_path)), "--latency-json", str(out), *CAPS)
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["rx_clock"] == "tsc_at_burst"
    assert d["stages"]["wire_to_rx"]["count"] == d["stages"]["wire_to_published"]["count"] == APPLYING


def _runtime_dir(prefix):
    """Where the EAL keeps a file prefix's runtime files (its eal_filesystem rule)."""
    base = "/var/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    return os.path.join(base, "dpdk", prefix)


@NO_DPDK
def test_run_and_send_remove_their_eal_runtime_files():
    """The EAL leaves its runtime directory (config and memory-map files, ~6.5 MB a
    process with --no-huge) behind; where /run is a tmpfs each run would keep that
    much RAM.  run and send remove their own once the EAL is down."""
    tag = "rtdir-%d" % os.getpid()
    p = fh("run", "--dpdk", eal(tag, "net_pcap0,rx_pcap=" + SAMPLE))
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(_runtime_dir("fhtest-%s-%d" % (tag, os.getpid())))
    s = fh("send", SAMPLE, "--speed", "0", "-q", "--dpdk", eal(tag + "s", "net_null0"))
    assert s.returncode == 0, s.stderr
    assert not os.path.exists(_runtime_dir("fhtest-%ss-%d" % (tag, os.getpid())))


# ----------------------------------------------------------- AF_XDP and memif


def _port_line(proc):
    """The handler's stderr up to its start-up line: libbpf and libxdp print
    their own lines before it (they ignore --log-level)."""
    seen = []
    for _ in range(100):  # bounded: a handler that never starts ends in EOF
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("dpdk: port"):
            return line, "".join(seen)
    return "", "".join(seen)


@NO_DPDK
@pytest.mark.skipif(not live.can_netns(), reason="needs root and iproute2 (ip netns) for a veth pair")
def test_af_xdp_veth_from_another_namespace(tmp_path):
    """AF_XDP on a veth (native XDP, copy mode: veth has no zero-copy): a capture
    sent from another network namespace gives the books of replaying it, nothing
    lost; the PMD's XDP program is attached while it runs and gone after."""

    def attached(iface):  # the PMD attached its XDP program to the interface (native or generic)
        assert "xdp" in live.sh("ip", "link", "show", "dev", iface).stdout

    b, books, a, ref, after = _veth_receive(
        tmp_path, "fhx", "net_af_xdp0,iface=IFACE,start_queue=0,queue_count=1", "net_af_xdp", attached
    )
    # Closing the port took the XDP program off: the kernel has the interface back.
    assert " xdp" not in after.split("link/")[0]
    # AF_XDP's ring-full drops reach neither imissed nor ierrors (the PMD reads only
    # the socket's rx_dropped): a lost frame shows as a gap or a missing duplicate.
    lost = "gaps %d, duplicates %d of %d, ipackets %d" % (
        b["gaps"],
        b["duplicates"],
        a["duplicates"],
        b["dpdk"]["ipackets"],
    )
    assert books == ref, lost
    assert a["messages"] == b["messages"] and a["duplicates"] == b["duplicates"] and b["gaps"] == 0, lost
    assert b["dpdk"]["imissed"] == 0 and b["dpdk"]["ipackets"] >= a["packets"]


@NO_DPDK
def test_memif_server_waits_and_a_client_connects(tmp_path):
    """The handler as memif server needs no hugepages (copy mode shares memfd
    regions): its socket is there while it runs, `feedhandler send` as memif
    client connects and delivers every frame, and the socket is gone when the
    server stops.  The server stops first, while the sender lingers without
    polling: DPDK 22.11's memif driver can crash a side that is polling while
    its peer disconnects (docs/dpdk.md)."""
    sock = str(tmp_path / "memif.sock")
    vdev = "net_memif0,role=%s,socket=" + sock + ",socket-abstract=no"

    # The PMD says "Connected." at debug level, once the two ends have agreed on
    # their regions and rings; a global --log-level=error would filter it out.
    def memif_eal(tag, role, lcore):
        args = eal(tag, vdev % role).replace("--log-level=error", "--log-level=pmd.net.memif:debug")
        return args.replace("-l 0 ", "-l %d " % lcore)

    server = subprocess.Popen(
        [
            sys.executable, "-m", "feedhandler", "run", "--dpdk", memif_eal("mifs", "server", 0),
            "--mode", "decode", "--duration", "8", "--no-eos-stop", "--stats-json", str(tmp_path / "s.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line, before = _port_line(server)
        assert "net_memif" in line, before + server.stderr.read()
        assert os.path.exists(sock), before  # listening, waiting for a client
        client = subprocess.Popen(
            [
                sys.executable, "-m", "feedhandler", "send", SAMPLE, "--rate", "400000", "--tx-wait-us", "5000000",
                "--linger", "60", "-q", "--stats-json", str(tmp_path / "c.json"),
                "--dpdk", memif_eal("mifc", "client", 1 if (os.cpu_count() or 1) > 1 else 0),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            sent = client.stdout.readline()  # "sent N frames ...": done, lingering
            assert sent.startswith("sent "), sent + client.stderr.read()
            out, err = server.communicate(timeout=60)  # stops at its --duration, the client still up
            client.terminate()  # ends the linger: exit 0
            _, client_err = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
                client.communicate()
        assert client.returncode == 0, client_err
        assert "memif_connect(): Connected." in client_err, client_err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert "memif_connect(): Connected." in err, err
    assert not os.path.exists(sock)
    st, tx = (json.loads((tmp_path / n).read_text()) for n in ("s.json", "c.json"))
    assert tx["frames"] == 8324 and st["packets"] == tx["frames"] and st["dpdk"]["ierrors"] == 0


def test_live_setup_refuses_bad_input():
    script = os.path.join(ROOT, "scripts", "dpdk", "live_setup.sh")
    for args, says in (
        (["--hugepages", "lots"], "must be a number"),
        (["--veth", "name;rm"], "not an interface name"),
        (["--veth", "averyveryverylongname"], "not an interface name"),
        (["--netns", "tx"], "go with --veth"),
        (["--memif-dir", "relative"], "absolute path"),
        (["--frobnicate"], "unknown argument"),
    ):
        p = subprocess.run(["bash", script, *args, "--dry-run"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and says in p.stderr, (args, p.stderr)
    # Never an interface that is not a veth: the loopback is refused.
    if shutil.which("ip"):
        p = subprocess.run(["bash", script, "--veth", "lo", "--dry-run"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "not a veth" in p.stderr, p.stderr
    p = subprocess.run(["bash", script, "--dry-run"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "net_af_xdp0,iface=IFACE" in p.stdout and "role=server" in p.stdout, p.stderr
