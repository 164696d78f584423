"""Gap recovery by MoldUDP64 re-request: messages lost on both lines come back
from a re-request server (feedhandler's rewind server), books end identical to
a lossless day; without an answer the gap is counted and flagged."""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import frames as F
from feedhandler.replay import Replay
from feedhandler.rewind import RewindServer

SMALL = dict(max_orders=1 << 16, max_levels=1 << 17, max_instruments=64, ring_events=1 << 14)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    d = tmp_path_factory.mktemp("rr")
    full, lossy = str(d / "full"), str(d / "lossy")
    common = ["--messages", "60000", "--symbols", "20", "--channels", "2", "--seed", "13"]
    for prefix, extra in ((full, []), (lossy, ["--lines", "ab", "--loss-a", "0.1", "--loss-b", "0.1"])):
        subprocess.run(
            [sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix] + common + extra,
            check=True,
            timeout=120,
        )
    return full, lossy


def lost_on_both(path):
    """Messages no line carried, counted from the capture independently."""
    seen, total = {}, {}
    for _, fr in F.parse_pcap(open(path, "rb").read()):
        ihl = (fr[14] & 15) * 4
        p = fr[14 + ihl + 8 :]
        sess, (seq, count) = p[:10], struct.unpack(">QH", p[10:20])
        if count == 0xFFFF or count == 0:
            total[sess] = max(total.get(sess, 0), seq - 1)
            continue
        seen.setdefault(sess, set()).update(range(seq, seq + count))
        total[sess] = max(total.get(sess, 0), seq + count - 1)
    return sum(total[s] - len(seen.get(s, ())) for s in total)


@pytest.fixture
def server(days):
    with RewindServer(days[0] + ".pcap", "127.0.0.1", 0).in_background() as srv:
        yield srv


def books(path, tmp_path, tag, **kw):
    r = Replay(mode="book", **dict(SMALL, **kw))
    res = r.run_file(path, progress=False)
    assert res.ok, res.error
    r.finish()
    out = tmp_path / (tag + ".csv")
    r.dump_books(str(out), 10)
    return r.stats(), out.read_text()


# The server answers from a Python thread in this process: under the sanitizer
# pass on a loaded 2-CPU machine a reply can take longer than the 20 ms
# default (or any short wait), and a late reply is a (correctly counted) gap,
# not a recovery.  These tests' server answers every request, and the client
# stops waiting as soon as the reply fills the hole: a wait only a lost reply
# (a bug) would reach costs nothing.
SERVER_WAIT = dict(rerequest_timeout_ms=30000)


def test_loss_on_both_lines_recovered_from_server(days, server, tmp_path):
    full, lossy = days
    missing = lost_on_both(lossy + ".pcap")
    assert missing > 0
    st_full, csv_full = books(full + ".pcap", tmp_path, "full")
    st, csv = books(lossy + ".pcap", tmp_path, "rec", rerequest=server.address, **SERVER_WAIT)
    assert st["gaps"] == 0 and st["recovered"] == missing
    assert csv == csv_full
    assert st["by_type"] == st_full["by_type"] and st["checksum"] == st_full["checksum"]
    assert server.stats["requests"] > 0


def test_recovery_on_two_lanes(days, server, tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    _, csv_full = books(days[0] + ".pcap", tmp_path, "full")
    st, csv = books(days[1] + ".pcap", tmp_path, "rec2", rerequest=server.address, cores=[0, 1], **SERVER_WAIT)
    assert st["gaps"] == 0 and csv == csv_full


def test_without_server_gaps_are_counted(days, tmp_path):
    st, _ = books(days[1] + ".pcap", tmp_path, "nosrv")
    assert st["gaps"] == lost_on_both(days[1] + ".pcap") and st["recovered"] == 0


def test_dead_server_times_out_and_counts(days, tmp_path):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # a port nobody answers on
    port = s.getsockname()[1]
    try:
        t0 = time.monotonic()
        st, _ = books(days[1] + ".pcap", tmp_path, "dead", rerequest=("127.0.0.1", port), rerequest_timeout_ms=2)
        assert time.monotonic() - t0 < 60
    finally:
        s.close()
    assert st["gaps"] == lost_on_both(days[1] + ".pcap") and st["recovered"] == 0
    assert st["errors"]["rerequest_timeout"] > 0


@pytest.mark.slow
def test_replies_for_another_session_are_ignored(days, tmp_path):
    """A server that answers with the wrong session: nothing applied, counted."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    stop = threading.Event()

    def liar():
        while not stop.is_set():
            try:
                req, addr = s.recvfrom(100)
            except socket.timeout:
                continue
            seq = struct.unpack(">Q", req[10:18])[0]
            s.sendto(b"WRONGSESS!" + struct.pack(">QH", seq, 1) + F.block(F.msg_D(ref=1)), addr)

    t = threading.Thread(target=liar, daemon=True)
    t.start()
    try:
        st, _ = books(days[1] + ".pcap", tmp_path, "liar", rerequest=s.getsockname()[:2], rerequest_timeout_ms=5)
    finally:
        stop.set()
        t.join(5)
        s.close()
    assert st["recovered"] == 0 and st["gaps"] > 0
    assert st["errors"]["rerequest_foreign_reply"] > 0


def test_config_channel_rerequest(days, server, tmp_path):
    from feedhandler.config import load

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "".join(
            '[[channel]]\nname = "c%d"\nline_a = "233.54.12.%d:26477"\nline_b = "233.49.196.%d:26477"\n'
            'rerequest = "%s:%d"\ncore = 0\n\n' % (c, 111 + c, 111 + c, server.address[0], server.address[1])
            for c in range(2)
        )
    )
    _, csv_full = books(days[0] + ".pcap", tmp_path, "full")
    st, csv = books(days[1] + ".pcap", tmp_path, "cfg", channels=load(str(cfg)), **SERVER_WAIT)
    assert st["gaps"] == 0 and st["recovered"] > 0 and csv == csv_full


def test_independent_loss_never_both_needs_no_recovery(tmp_path):
    """Seeded independent loss on each line, never the same packet on both:
    arbitration alone gives the lossless books, zero gaps, copies counted."""
    import random

    prefix = str(tmp_path / "ab")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            prefix,
            "--messages",
            "60000",
            "--symbols",
            "20",
            "--channels",
            "2",
            "--seed",
            "17",
            "--lines",
            "ab",
        ],
        check=True,
        timeout=120,
    )
    recs = F.parse_pcap(open(prefix + ".pcap", "rb").read())
    rnd = random.Random(5)
    kept, dropped = [], 0
    # Pair each packet's A and B copies by (session, sequence, count) and drop at most one of them.
    fate = {}
    for ts, fr in recs:
        ihl = (fr[14] & 15) * 4
        key = fr[14 + ihl + 8 : 14 + ihl + 8 + 20]
        group_b = fr[14 + 16] == 233 and fr[14 + 17] == 49
        if key not in fate:
            fate[key] = rnd.choice(["none", "none", "a", "b"])  # ~25% each line, never both
        if (fate[key] == "a" and not group_b) or (fate[key] == "b" and group_b):
            dropped += 1
            continue
        kept.append((ts, fr))
    lossy = tmp_path / "lossy.pcap"
    lossy.write_bytes(F.pcap_bytes(kept))
    assert dropped > 1000
    _, csv_full = books(prefix + ".bin", tmp_path, "full")
    st, csv = books(str(lossy), tmp_path, "arb")
    assert st["gaps"] == 0 and st["recovered"] == 0 and st["duplicates"] > 0
    assert csv == csv_full
