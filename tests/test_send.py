"""`feedhandler send`, the DPDK transmitter: its schedule (pure Python), its
output through the pcap PMD (the frames, the TX stamp trailer, the pacing), and
a sender and a receiver over a veth pair between two network namespaces, whose
books must be replay's.  Every DPDK run is its own process (the EAL initialises
once per process), with its own --file-prefix."""

import gzip
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import frames as F
import live
from feedhandler.send import build_schedule, load_capture, parse_burst

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
NO_DPDK, CAPS = live.NO_DPDK, live.CAPS
# A generated A/B day (tests/test_dpdk.py's veth day): line A 233.54.12.111/112, line B 233.49.196.111/112.
A_GROUPS = "233.54.12.111,233.54.12.112"
B_GROUPS = "233.49.196.111,233.49.196.112"


def eal(tag, vdev, lcore=0):
    return "-l %d --no-huge --no-pci -m 512 --file-prefix fhsend-%s-%d --log-level=error --vdev=%s" % (
        lcore,
        tag,
        os.getpid(),
        vdev,
    )


def fh(*args, timeout=120, prefix=()):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    return live.ab_day(str(tmp_path_factory.mktemp("sendday") / "ab"))


def books(tmp_path, tag, *cmd):
    """`feedhandler CMD... --mode book` with its books dumped and its counters
    written: (the books CSV, the counters)."""
    csv, st = tmp_path / ("%s.csv" % tag), tmp_path / ("%s.json" % tag)
    r = fh(*cmd, "--mode", "book", "--silence-ms", "120000", "--dump-books", str(csv), "--stats-json", str(st), *CAPS)
    assert r.returncode == 0, r.stderr
    return csv.read_text(), json.loads(st.read_text())


def replay(tmp_path, pcap, tag):
    return books(tmp_path, tag, "replay", "-q", pcap)


def send_to_pcap(tmp_path, pcap, tag, *extra):
    """`feedhandler send` into the pcap PMD's tx_pcap file; (its counters, the file)."""
    out = str(tmp_path / ("%s.out.pcap" % tag))
    p = fh(
        "send",
        pcap,
        "--dpdk",
        eal(tag, "net_pcap0,tx_pcap=" + out),
        "--stats-json",
        str(tmp_path / ("%s.send.json" % tag)),
        *extra,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "sent " in p.stdout and "net_pcap" in p.stdout  # the one-line summary
    return json.loads((tmp_path / ("%s.send.json" % tag)).read_text()), out


def frames(cap):
    return [bytes(cap.blob[int(o) : int(o) + int(n)]) for o, n in zip(cap.off, cap.length)]


# ------------------------------------------------------------ the schedule (no DPDK)


def test_rate_spaces_messages_evenly(day):
    cap = load_capture(day)
    plan = build_schedule(cap, rate=100_000)
    assert plan.paced and len(plan.order) == cap.frames
    assert np.all(np.diff(plan.due_ns.astype(np.int64)) >= 0)
    # Frame i is due when its first message is: messages before it / rate.
    before = np.cumsum(cap.msgs.astype(np.int64)) - cap.msgs
    assert np.array_equal(plan.due_ns, np.round(before[plan.order] * 1e4).astype(np.uint64))
    assert abs(int(plan.due_ns[-1]) / 1e9 - cap.messages / 100_000) < 0.01


def test_messages_per_frame_of_each_protocol(tmp_path):
    """--rate paces messages: a frame counts its MoldUDP64 datagram's, PITCH
    unit's or IEX-TP segment's messages (heartbeats 0), any other frame 1."""
    iex = F.iex_segment(F.IEX_DEEPPLUS, 7, 0, [F.iex_add(i, "8", 1, 100) for i in range(3)])
    iex_hb = F.iex_segment(F.IEX_DEEPPLUS, 7, 3, [])
    mold = F.mold([F.msg_A(ref=1), F.msg_A(ref=2)], seq=1)
    pitch = struct.pack("<HBBI", 8 + 6 + 6, 2, 1, 1) + bytes([6, 0x20, 0, 0, 0, 0]) * 2
    p = tmp_path / "mixed.pcap"
    p.write_bytes(F.pcap_bytes([(i, F.frame(x)) for i, x in enumerate([iex, iex_hb, mold, pitch, b"xyz"])]))
    assert list(load_capture(str(p)).msgs) == [3, 0, 2, 2, 1]


def test_speed_keeps_the_captures_clock_and_zero_does_not_pace(day):
    cap = load_capture(day)
    plan = build_schedule(cap, speed=2.0)
    rel = (cap.ts_ns - cap.ts_ns[0]).astype(np.float64) / 2
    assert np.allclose(plan.due_ns.astype(np.float64), rel[plan.order], atol=1)
    flat = build_schedule(cap, speed=0)
    assert not flat.paced and not flat.due_ns.any() and list(flat.order) == list(range(cap.frames))


def test_burst_runs_the_rate_faster_for_its_window():
    # 10x for 100 ms every second: the first 100 ms carry 1 s of nominal time.
    class Cap:
        frames = 3000
        msgs = np.ones(3000, dtype=np.uint32)
        dst = np.zeros(3000, dtype=np.uint32)

    plan = build_schedule(Cap, rate=1000, burst=parse_burst("10:100:1"))
    due = plan.due_ns.astype(np.int64)
    assert np.sum(due < 100_000_000) == 1000  # 10,000 msgs/s in the burst
    assert np.sum((due >= 100_000_000) & (due < 1_000_000_000)) == 900  # then 1,000 msgs/s
    assert np.sum(due < 1_100_000_000) == 2900  # the next period's burst


def test_loss_and_lag_by_line(day):
    cap = load_capture(day)
    a = [int.from_bytes(bytes(map(int, g.split("."))), "big") for g in A_GROUPS.split(",")]
    b = [int.from_bytes(bytes(map(int, g.split("."))), "big") for g in B_GROUPS.split(",")]
    plan = build_schedule(cap, rate=100_000, loss_a=0.1, a_groups=a, b_groups=b, lag_b_us=500, seed=7)
    on_a = np.isin(cap.dst, a)
    assert 0.05 * on_a.sum() < plan.injected["a"] < 0.15 * on_a.sum() and plan.injected["b"] == 0
    assert len(plan.order) == cap.frames - plan.injected["a"]
    assert np.isin(cap.dst[plan.order], b).sum() == np.isin(cap.dst, b).sum()  # no B frame lost
    again = build_schedule(cap, rate=100_000, loss_a=0.1, a_groups=a, b_groups=b, lag_b_us=500, seed=7)
    assert np.array_equal(plan.order, again.order)  # seeded: the same frames dropped
    other = build_schedule(cap, rate=100_000, loss_a=0.1, a_groups=a, b_groups=b, lag_b_us=500, seed=8)
    assert not np.array_equal(plan.order, other.order)
    # B frames are 500 us later than their own slot, and the schedule stays in time order.
    base = build_schedule(cap, rate=100_000)
    due_of = dict(zip(base.order.tolist(), base.due_ns.tolist()))
    for f, d in list(zip(plan.order.tolist(), plan.due_ns.tolist()))[:2000]:
        assert d == due_of[f] + (500_000 if cap.dst[f] in b else 0)
    assert np.all(np.diff(plan.due_ns.astype(np.int64)) >= 0)


def test_loop_repeats_the_capture(day):
    cap = load_capture(day)
    plan = build_schedule(cap, rate=1_000_000, loops=3)
    assert len(plan.order) == 3 * cap.frames and np.all(np.diff(plan.due_ns.astype(np.int64)) >= 0)
    assert np.array_equal(plan.order[: cap.frames], plan.order[cap.frames : 2 * cap.frames])


def test_loader_reads_pcap_pcapng_gzip_and_zstd_alike(tmp_path):
    plain = load_capture(SAMPLE)
    assert plain.format == "pcap" and plain.frames == 8324 and plain.messages == 40000  # MoldUDP64 counts
    (tmp_path / "s.pcap.gz").write_bytes(gzip.compress(open(SAMPLE, "rb").read()))
    got = load_capture(str(tmp_path / "s.pcap.gz"))
    assert got.compression == "gzip" and frames(got) == frames(plain) and np.array_equal(got.ts_ns, plain.ts_ns)
    recs = [(int(t), f) for t, f in zip(plain.ts_ns[:60], frames(plain)[:60])]
    variants = {
        "us_swapped.pcap": F.pcap_bytes(recs, ns=False, swap=True),
        "two_ifs.pcapng": F.pcapng_bytes(recs),  # ns and us interfaces, round-robin
        "swapped.pcapng": F.pcapng_bytes(recs, swap=True),
        "simple.pcapng": F.pcapng_bytes(recs, interfaces=1, simple=True),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        c = load_capture(str(tmp_path / name))
        assert frames(c) == [f for _, f in recs], name
        if "simple" not in name:  # simple packet blocks carry no time
            assert np.all(np.abs(c.ts_ns.astype(np.int64) - plain.ts_ns[:60].astype(np.int64)) < 1000), name
    if subprocess.run(["zstd", "--version"], capture_output=True).returncode == 0:
        subprocess.run(["zstd", "-q", "-o", str(tmp_path / "s.pcap.zst"), SAMPLE], check=True)
        z = load_capture(str(tmp_path / "s.pcap.zst"))
        assert z.compression == "zstd" and frames(z) == frames(plain)


# ------------------------------------------------------------ bad input


def test_unreadable_capture_exits_2(tmp_path):
    p = fh("send", str(tmp_path / "nope.pcap"), "--dpdk", "-l 0")
    assert p.returncode == 2 and "cannot read the capture" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "junk.pcap").write_bytes(b"not a capture at all")
    p = fh("send", str(tmp_path / "junk.pcap"), "--dpdk", "-l 0")
    assert p.returncode == 2 and "not a pcap or pcapng capture" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("burst", ["10", "10:5", "x:5:1", "10:0:1", "10:2000:1"])
def test_bad_burst_exits_2(burst):
    p = fh("send", SAMPLE, "--dpdk", "-l 0", "--rate", "1000", "--burst", burst)
    assert p.returncode == 2 and "--burst" in p.stderr and "Traceback" not in p.stderr


def test_loss_without_groups_exits_2():
    p = fh("send", SAMPLE, "--dpdk", "-l 0", "--loss-a", "0.1")
    assert p.returncode == 2 and "--a-groups" in p.stderr and "Traceback" not in p.stderr


@NO_DPDK
@pytest.mark.slow
def test_bad_eal_arguments_exit_2():
    p = fh("send", SAMPLE, "--dpdk", "--bogus-arg x -l 0 --no-huge --file-prefix fhsend-bad", timeout=60)
    assert p.returncode == 2 and "EAL init failed" in p.stderr and "Traceback" not in p.stderr


@NO_DPDK
@pytest.mark.slow
def test_a_link_that_stays_down_sends_nothing_and_exits_1(tmp_path):
    """A memif server's link comes up only when a client connects: with none,
    the sender waits --link-wait and sends nothing, rather than counting every
    frame as a TX drop (what it did before waiting for the link)."""
    memif = "net_memif0,role=server,socket=%s,socket-abstract=no" % (tmp_path / "lonely.sock")
    stats = tmp_path / "s.json"
    p = fh("send", SAMPLE, "--dpdk", eal("down", memif), "--link-wait", "1", "--stats-json", str(stats), timeout=60)
    assert p.returncode == 1, p.stderr
    assert "link is still down after 1 s" in p.stderr and "nothing sent" in p.stderr
    assert "Traceback" not in p.stderr and json.loads(stats.read_text()) == {"exit_status": 1}


# ------------------------------------------------------------ through the pcap PMD


@NO_DPDK
@pytest.mark.slow
def test_trailer_format_and_frames(tmp_path, day):
    """Every frame goes out in schedule order, as captured up to the end of its
    IP datagram, then "FHTS", the frame counter and the TSC (little-endian),
    zero-padded to 60 bytes; --no-stamp sends the captured bytes unchanged."""
    cap = load_capture(day)
    st, out = send_to_pcap(tmp_path, day, "fmt", "--rate", "400000")
    sent = load_capture(out)
    assert st["frames"] == cap.frames == sent.frames and st["tx_dropped"] == 0 and st["nombuf"] == 0
    assert st["messages"] == cap.messages and st["port"]["driver"] == "net_pcap"
    assert st["pacing"]["mode"] == "rate" and st["stamp"]["frames_stampable"] == cap.frames
    tscs = []
    for i, (orig, f) in enumerate(zip(frames(cap), frames(sent))):
        end = int(cap.ip_end[i])
        assert f[:end] == orig[:end]
        magic, counter, tsc = struct.unpack_from("<IIQ", f, end)
        assert f[end : end + 4] == b"FHTS" and magic == 0x53544846 and counter == i
        assert len(f) == max(60, end + 16) and not any(f[end + 16 :])
        tscs.append(tsc)
    assert tscs == sorted(tscs) and tscs[0] > 0
    assert st["bytes"] == sum(max(60, int(e) + 16) for e in cap.ip_end)
    st2, out2 = send_to_pcap(tmp_path, day, "raw", "--rate", "400000", "--no-stamp")
    assert frames(load_capture(out2)) == frames(cap) and st2["stamp"]["enabled"] is False


@NO_DPDK
@pytest.mark.slow
def test_trailer_does_not_change_books_or_counters(tmp_path, day):
    """The receiver (`feedhandler run`) reads the stamped and the unstamped
    output alike: the books and counters of replay of the capture."""
    ref_csv, ref = replay(tmp_path, day, "ref")
    _, stamped = send_to_pcap(tmp_path, day, "st", "--speed", "0")
    _, bare = send_to_pcap(tmp_path, day, "ns", "--speed", "0", "--no-stamp")
    for tag, pcap in (("st", stamped), ("ns", bare)):
        got_csv, got = books(tmp_path, "rx" + tag, "run", "--dpdk", eal("rx" + tag, "net_pcap0,rx_pcap=" + pcap))
        assert got_csv == ref_csv, tag
        for k in ("messages", "by_type", "gaps", "duplicates", "errors", "packets", "heartbeats", "end_of_session"):
            assert got[k] == ref[k], (tag, k)


@NO_DPDK
@pytest.mark.slow
def test_pacing_rate_speed_burst_and_loop(tmp_path, day):
    cap = load_capture(day)
    st, _ = send_to_pcap(tmp_path, day, "rate", "--rate", "200000")
    want = (cap.messages - int(cap.msgs[-1])) / 200_000  # the last frame is due when its first message is
    assert want * 0.95 < st["elapsed_s"] < want * 1.5, st["elapsed_s"]
    assert 150_000 < st["msgs_per_s"] < 210_000
    fast, _ = send_to_pcap(tmp_path, day, "max", "--speed", "max", "--loop", "2")
    assert fast["frames"] == 2 * cap.frames and fast["messages"] == 2 * cap.messages
    assert fast["pacing"]["mode"] == "max" and fast["late"] == 0
    # 10x for 50 ms of every 100 ms: one nominal second per 0.55 s... the send takes about want / 5.5.
    b, _ = send_to_pcap(tmp_path, day, "burst", "--rate", "200000", "--burst", "10:50:0.1")
    assert b["elapsed_s"] < want / 3 and b["pacing"]["burst"] == {"factor": 10.0, "ms": 50.0, "every_s": 0.1}


@NO_DPDK
@pytest.mark.slow
def test_sigterm_stops_the_send(tmp_path, day):
    out = str(tmp_path / "sig.pcap")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "send",
            day,
            "--dpdk",
            eal("sig", "net_pcap0,tx_pcap=" + out),
            "--rate",
            "2000",  # 30 s of sending
            "--stats-json",
            str(tmp_path / "sig.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stderr.readline()
        assert "net_pcap" in line, line + p.stderr.read()
        time.sleep(0.5)
        p.terminate()
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    st = json.loads((tmp_path / "sig.json").read_text())
    assert st["stopped"] and st["stopped_by"] == "SIGTERM" and 0 < st["frames"] < st["planned"]


# ------------------------------------------------------------ over a veth pair


# Sender and receiver both busy-poll, each pinned: on one core they starve each other.
TWO_CPUS = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="needs 2 CPUs: the sender and the receiver each poll a core"
)


def over_veth(tmp_path, pcap, tag, *send_args):
    """`feedhandler run` on one end of a veth pair, `feedhandler send` in a
    network namespace on the other: (the receiver's stats, its books, the sender's stats)."""
    with live.veth_pair("fhs" + tag) as (ns, v0, v1):
        rx = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "feedhandler",
                "run",
                "--dpdk",
                eal("rx" + tag, "net_af_packet0,iface=%s,framecnt=4096" % v0),
                "--mode",
                "book",
                "--silence-ms",
                "120000",
                # Not at end of session: line A's end would stop it before line
                # B's last copies arrive.  SIGTERM once the sender is done; the
                # duration is a safety net.
                "--no-eos-stop",
                "--duration",
                "60",
                "--dump-books",
                str(tmp_path / "rx.csv"),
                "--stats-json",
                str(tmp_path / "rx.json"),
                *CAPS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = rx.stderr.readline()  # "dpdk: port 0 (net_af_packet ...)": receiving
            assert "net_af_packet" in line, line + rx.stderr.read()
            sent = fh(
                "send",
                pcap,
                "--dpdk",
                eal("tx" + tag, "net_af_packet0,iface=%s" % v1, lcore=1),  # the receiver polls on CPU 0
                "--stats-json",
                str(tmp_path / "tx.json"),
                *send_args,
                prefix=("ip", "netns", "exec", ns),
                timeout=60,
            )
            assert sent.returncode == 0, sent.stderr
            time.sleep(0.5)  # the last frames through the kernel and the receiver's ring
            rx.terminate()
            _, err = rx.communicate(timeout=90)
        finally:
            if rx.poll() is None:
                rx.kill()
        assert rx.returncode == 143, err  # stopped by the SIGTERM, outputs written
    rx_stats = json.loads((tmp_path / "rx.json").read_text())
    tx_stats = json.loads((tmp_path / "tx.json").read_text())
    return rx_stats, (tmp_path / "rx.csv").read_text(), tx_stats


@NO_DPDK
@pytest.mark.slow
@pytest.mark.skipif(not live.can_netns(), reason="needs root and iproute2 (ip netns) for a veth pair")
@TWO_CPUS
def test_send_and_run_over_veth_same_books_as_replay(tmp_path, day):
    ref_csv, ref = replay(tmp_path, day, "ref")
    got, books, tx = over_veth(tmp_path, day, "p", "--rate", "200000")
    assert tx["frames"] == ref["packets"] and tx["tx_dropped"] == 0 and tx["port"]["driver"] == "net_af_packet"
    # A frame lost on the way shows as a counted drop or gap, never as a wrong book:
    # what went missing is accounted for first, then nothing may have gone missing.
    lost = tx["frames"] - (got["packets"] - got["pkt_rejected"])
    assert lost == 0 or got["dpdk"]["imissed"] > 0 or got["gaps"] > 0 or got["duplicates"] < ref["duplicates"]
    assert lost == 0 and got["gaps"] == 0 and got["dpdk"]["imissed"] == 0, (
        "the receiver lost %d frames at 200,000 msgs/s (imissed %d, gaps %d)"
        % (lost, got["dpdk"]["imissed"], got["gaps"])
    )
    assert books == ref_csv
    for k in ("messages", "by_type", "gaps", "duplicates", "errors", "packets", "heartbeats", "end_of_session"):
        assert got[k] == ref[k], k


@NO_DPDK
@pytest.mark.slow
@pytest.mark.skipif(not live.can_netns(), reason="needs root and iproute2 (ip netns) for a veth pair")
@TWO_CPUS
def test_loss_on_line_a_is_arbitrated_over_veth(tmp_path, day):
    ref_csv, ref = replay(tmp_path, day, "ref")
    got, books, tx = over_veth(
        tmp_path, day, "l", "--rate", "200000", "--loss-a", "0.05", "--a-groups", A_GROUPS, "--seed", "3"
    )
    assert tx["injected_loss"]["a"] > 100 and tx["injected_loss"]["b"] == 0
    assert tx["frames"] == ref["packets"] - tx["injected_loss"]["a"]
    assert got["dpdk"]["ipackets"] == tx["frames"] and got["dpdk"]["imissed"] == 0
    # Line B fills every hole: the same messages and books, no gap; fewer duplicates.
    assert got["gaps"] == 0 and got["messages"] == ref["messages"] and books == ref_csv
    assert got["duplicates"] < ref["duplicates"]


# ------------------------------------------------------------ over memif
# Two DPDK processes on one host, over shared memory: the handler the memif
# server, the sender its client (copy mode needs no hugepages).


def shm_events(name):
    """Every event of segment `name`, lane by lane, oldest first, with the
    clock fields a live run cannot share with a replay zeroed (publish_ts: the
    writer's clock; rx_ts: the receive time, not the capture's); the segment
    is removed after."""
    from feedhandler.shm import attach

    out = []
    try:
        with attach(name) as seg:
            seg.seek("oldest")
            while True:
                ev = seg.events()
                if not len(ev):
                    break
                ev = ev.copy()
                ev["publish_ts"] = 0
                ev["rx_ts"] = 0
                out.append(ev)
            flags = {int(r["locate"]): int(r["flags"]) for r in seg.copy_books()}
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    return (np.concatenate(out) if out else np.empty(0)), flags


def replay_published(tmp_path, pcap, tag):
    """A replay of pcap publishing into a segment: (books, counters, events, flags)."""
    name = "fhsend-%s-%d" % (tag, os.getpid())
    r = fh(
        "replay", "-q", pcap, "--silence-ms", "120000", "--shm", name,
        "--dump-books", str(tmp_path / ("%s.csv" % tag)), "--stats-json", str(tmp_path / ("%s.json" % tag)), *CAPS,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ev, flags = shm_events(name)
    return (tmp_path / ("%s.csv" % tag)).read_text(), json.loads((tmp_path / ("%s.json" % tag)).read_text()), ev, flags


def over_memif(tmp_path, pcap, tag, *send_args):
    """`feedhandler run` as memif server publishing into a segment, `feedhandler
    send` as its client: (the receiver's stats, books, events, flags, the sender's stats)."""
    sock = str(tmp_path / ("memif-%s.sock" % tag))
    name = "fhsend-m%s-%d" % (tag, os.getpid())
    memif = "net_memif0,role=%s,socket=" + sock + ",socket-abstract=no"
    rx = subprocess.Popen(
        [
            sys.executable, "-m", "feedhandler", "run", "--dpdk", eal("mrx" + tag, memif % "server"),
            "--silence-ms", "120000", "--no-eos-stop", "--duration", "60", "--shm", name,
            "--dump-books", str(tmp_path / "rx.csv"), "--stats-json", str(tmp_path / "rx.json"), *CAPS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = rx.stderr.readline()  # "dpdk: port 0 (net_memif ...)": receiving, the socket listening
        assert "net_memif" in line, line + rx.stderr.read()
        # The sender keeps its port up after the last frame (--linger) until the
        # receiver has stopped: DPDK 22.11's memif driver can crash a receiver
        # polling while its peer disconnects.
        tx = subprocess.Popen(
            [
                sys.executable, "-m", "feedhandler", "send", pcap, "--dpdk", eal("mtx" + tag, memif % "client", lcore=1),
                "--stats-json", str(tmp_path / "tx.json"), "-q", "--linger", "60", *send_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            summary = tx.stdout.readline()  # "sent N frames ...": the send is over, lingering
            assert summary.startswith("sent "), summary + tx.stderr.read()
            time.sleep(0.5)  # the last frames through the receiver's ring
            rx.terminate()
            _, err = rx.communicate(timeout=90)
            tx.terminate()  # ends the linger: exit 0
            _, tx_err = tx.communicate(timeout=60)
        finally:
            if tx.poll() is None:
                tx.kill()
        assert tx.returncode == 0, tx_err
    finally:
        if rx.poll() is None:
            rx.kill()
    assert rx.returncode == 143, err
    ev, flags = shm_events(name)
    got = json.loads((tmp_path / "rx.json").read_text())
    return got, (tmp_path / "rx.csv").read_text(), ev, flags, json.loads((tmp_path / "tx.json").read_text())


@NO_DPDK
@pytest.mark.slow
@TWO_CPUS
def test_send_over_memif_same_books_counters_and_events_as_replay(tmp_path, day):
    ref_csv, ref, ref_ev, _ = replay_published(tmp_path, day, "ref")
    # The sender waits for the receiver rather than drop (memif's ring is
    # back-pressure): the same books however busy this machine is.
    got, books, ev, _, tx = over_memif(tmp_path, day, "same", "--rate", "200000", "--tx-wait-us", "5000000")
    assert tx["port"]["driver"] == "net_memif" and tx["tx_dropped"] == 0 and tx["frames"] == ref["packets"]
    assert got["packets"] == tx["frames"] and got["gaps"] == 0
    assert books == ref_csv
    for k in ("messages", "by_type", "gaps", "duplicates", "errors", "packets", "heartbeats", "end_of_session", "book"):
        assert got[k] == ref[k], k
    assert len(ev) == len(ref_ev) > 0 and ev.tobytes() == ref_ev.tobytes()


@NO_DPDK
@pytest.mark.slow
@TWO_CPUS
def test_loss_on_line_a_is_arbitrated_over_memif(tmp_path, day):
    ref_csv, ref, _, _ = replay_published(tmp_path, day, "ref")
    got, books, _, _, tx = over_memif(
        tmp_path, day, "la", "--rate", "200000", "--loss-a", "0.05", "--a-groups", A_GROUPS, "--seed", "3",
        "--tx-wait-us", "5000000",
    )  # fmt: skip
    assert tx["injected_loss"]["a"] > 100 and tx["frames"] == ref["packets"] - tx["injected_loss"]["a"]
    assert got["packets"] == tx["frames"]
    assert got["gaps"] == 0 and got["messages"] == ref["messages"] and books == ref_csv


@NO_DPDK
@pytest.mark.slow
@TWO_CPUS
def test_loss_the_handler_cannot_recover_is_counted_and_flagged_never_a_good_wrong_book(tmp_path, day):
    """A sender as fast as the port takes frames, with both lines losing frames
    (so some messages are gone for good, whatever this machine's speed adds):
    every frame the sender put out is received or counted as a TX drop, the
    loss shows as gaps, and every instrument whose book differs from the
    replay's is flagged STALE -- a wrong book is never presented as good."""
    ref_csv, ref, _, _ = replay_published(tmp_path, day, "ref")
    got, books, _, flags, tx = over_memif(
        tmp_path, day, "lost", "--speed", "0", "--seed", "5",
        "--loss-a", "0.05", "--a-groups", A_GROUPS, "--loss-b", "0.05", "--b-groups", B_GROUPS,
    )  # fmt: skip
    # Every frame of the capture is sent, dropped on purpose, or counted as not
    # sent (the port's ring full, no mbuf); every frame sent is received.
    lost_on_purpose = tx["injected_loss"]["a"] + tx["injected_loss"]["b"]
    assert tx["frames"] + tx["tx_dropped"] + tx["nombuf"] + lost_on_purpose == ref["packets"]
    assert got["packets"] == tx["frames"]
    assert got["gaps"] > 0

    def by_locate(csv_text):
        rows = {}
        for line in csv_text.splitlines()[1:]:
            rows.setdefault(int(line.split(",", 1)[0]), []).append(line)
        return rows

    want, have = by_locate(ref_csv), by_locate(books)
    differ = {k for k in set(want) | set(have) if want.get(k) != have.get(k)}
    assert differ, "both lines lost 5%: some book must differ from the replay's"
    from feedhandler.shm import FLAG_STALE

    assert [k for k in sorted(differ) if not flags.get(k, 0) & FLAG_STALE] == []


@NO_DPDK
@pytest.mark.slow
@TWO_CPUS
def test_bench_live_smoke_over_memif(tmp_path):
    """scripts/bench_live.py end to end on a small day over memif: the sustained
    ladder's accounting and the latency runs' wire stages from the stamps.  Whether
    a rate was loss-free depends on this machine's load, so it is reported, not
    asserted."""
    out = tmp_path / "live.json"
    p = subprocess.run(
        [
            sys.executable, os.path.join(ROOT, "scripts", "bench_live.py"), "--quick", "--drivers", "memif",
            "--jitter-s", "0", "--dir", str(tmp_path), "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(out.read_text())
    m = d["drivers"]["memif"]
    assert m["skipped"] is None and m["sustained"], p.stdout
    for r in m["sustained"]:
        # Every frame the sender put out is received or counted lost; a rate is
        # loss-free only with nothing dropped anywhere.
        assert r["sent_frames"] == r["received_packets"] + r["frames_lost"]
        clean = not (r["frames_lost"] or r["tx_dropped"] or r["imissed"] or r["rx_nombuf"] or r["gaps"])
        assert r["lossless"] == clean
    assert d["replay_msgs_per_s"] > 0 and d["pcap_pmd_msgs_per_s"] > 0
    # Throughput with back-pressure: the sender waits for the handler, so over
    # memif every frame of the one pass arrives, whatever the machine's load.
    (t,) = m["throughput"]
    assert t["loop"] == 1 and t["sent_frames"] == t["received_packets"] > 0 and t["tx_dropped"] == 0
    assert t["messages_lost"] == 0
    assert m["throughput_lossless"] and m["throughput_msgs_per_s"] > 0 and "processing" not in t["latency"]
    lat = m["latency"][0]
    assert lat["rx_clock"] == "tsc_at_burst" and lat["latency"]["wire_to_published"]["p50"] > 0
