"""The MoldUDP64 re-request ("rewind") server: its index against an independent
parse of the capture (tests/frames.py), its replies over loopback UDP, the
requests it must ignore, and the CLI."""

import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys

import pytest

import frames as F
from feedhandler.core import decode_message
from feedhandler.rewind import RewindError, index_capture
from procutil import read_line_until, reap, rewind_serving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
SAMPLE = os.path.join(PCAPS, "sample.pcap")
SAMPLE_AB = os.path.join(PCAPS, "sample_ab.pcap")
NO_REPLY_S = 0.15


# ------------------------------------------------------------ reference parse


def reference(data: bytes, keep_lines=None):
    """{session: {seq: message}} from every UDP datagram of a pcap, parsed with
    struct (plain Ethernet/IPv4/UDP frames, as the generator writes)."""
    out = {}
    for _, f in F.parse_pcap(data):
        if keep_lines is not None and f[30:34] not in keep_lines:
            continue
        ihl = (f[14] & 15) * 4
        p = f[14 + ihl + 8 :]
        session, seq, count = struct.unpack(">10sQH", p[:20])
        if count in (0, 0xFFFF):
            continue
        msgs = out.setdefault(session, {})
        for i, m in enumerate(F.mold_messages(f)):
            msgs.setdefault(seq + i, m)
    return out


def parse_reply(d: bytes):
    session, seq, count = struct.unpack(">10sQH", d[:20])
    off, msgs = 20, []
    for _ in range(count):
        n = struct.unpack(">H", d[off : off + 2])[0]
        msgs.append(d[off + 2 : off + 2 + n])
        assert len(msgs[-1]) == n
        off += 2 + n
    assert off == len(d), "trailing bytes in reply"
    return session, seq, msgs


@pytest.fixture(scope="module")
def gen_capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("rewind")
    prefix = str(d / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "--out",
            prefix,
            "--messages",
            "20000",
            "--symbols",
            "10",
            "--channels",
            "2",
            "--seed",
            "3",
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with open(prefix + ".pcap", "rb") as f:
        data = f.read()
    return prefix, data, reference(data)


@pytest.fixture(scope="module")
def sample_ref():
    with open(SAMPLE, "rb") as f:
        return reference(f.read())


def serving(path, **kw):
    return rewind_serving(path, join_s=5, **kw)


# A reply is waited for up to REPLY_S: only a lost one takes that long, however
# busy the machine.  NO_REPLY_S is how long a request that must get no answer
# is given to show one (a late answer there can only hide a bug, not fail).
REPLY_S = 30.0


def ask(cli, srv, session, seq, count, timeout=REPLY_S):
    cli.sendto(struct.pack(">10sQH", session, seq, count), srv.address)
    return recv(cli, timeout)


def recv(cli, timeout):
    cli.settimeout(timeout)
    try:
        d, addr = cli.recvfrom(65536)
    except socket.timeout:
        return None
    return d


def check_reply(d, ref, session, seq, count, max_datagram=1400):
    """The reply holds messages seq.. of the capture, as many as fit."""
    assert d is not None, "no reply to %r seq %d count %d" % (session, seq, count)
    assert len(d) <= max_datagram
    s, first, msgs = parse_reply(d)
    assert (s, first) == (session, seq)
    assert 1 <= len(msgs) <= count
    for i, m in enumerate(msgs):
        assert m == ref[session][seq + i], "seq %d differs" % (seq + i)
    k = len(msgs)
    nxt = seq + k
    if k < count and nxt in ref[session]:  # stopped early: the next one must not have fitted
        assert len(d) + 2 + len(ref[session][nxt]) > max_datagram
    return msgs


# --------------------------------------------------------------------- index


def test_index_matches_independent_parse(sample_ref):
    idx = index_capture(SAMPLE)
    assert set(idx.sessions) == set(sample_ref) and len(idx.sessions) == 2
    assert idx.messages == 40000 and idx.duplicates == 0 and idx.skipped == {}
    for name, ref in sample_ref.items():
        s = idx.sessions[name]
        assert (s.first, s.last, s.count, s.missing) == (1, max(ref), len(ref), 0)
        assert s.blocks(0, s.count) == b"".join(F.block(ref[q]) for q in sorted(ref))
        assert s.get(1) == ref[1] and s.get(s.last) == ref[s.last] and s.get(s.last + 1) is None


@pytest.mark.parametrize("variant", ["pcap_us_swapped", "pcapng", "pcapng_simple", "gzip_pcapng"])
def test_capture_formats(variant, tmp_path, sample_ref):
    with open(SAMPLE, "rb") as f:
        recs = F.parse_pcap(f.read())[:3000]
    if variant == "pcap_us_swapped":
        data = F.pcap_bytes(recs, ns=False, swap=True)
    elif variant == "pcapng":
        data = F.pcapng_bytes(recs, interfaces=2, swap=True)
    elif variant == "pcapng_simple":
        data = F.pcapng_bytes(recs, interfaces=1, simple=True)
    else:
        data = F.gz(F.pcapng_bytes(recs))
    p = tmp_path / "cap"
    p.write_bytes(data)
    idx = index_capture(str(p))
    want = reference(F.pcap_bytes(recs))
    assert idx.gzip == (variant == "gzip_pcapng")
    for name, ref in want.items():
        s = idx.sessions[name]
        assert s.count == len(ref) and s.blocks(0, s.count) == b"".join(F.block(ref[q]) for q in sorted(ref))


def test_malformed_frames_skipped_and_counted(tmp_path):
    good = [F.msg_A(ref=i) for i in range(1, 4)]
    recs = [
        (1, F.frame(F.mold(good[:2], seq=1))),
        (2, F.frame(b"\x00" * 5)[:10]),  # eth_truncated
        (3, F.frame(F.mold(good[2:], seq=3), vlans=[100])),  # fine, VLAN-tagged
        (4, F.frame(F.mold([F.msg_D()], seq=9), proto=6)),  # ip_not_udp
        (5, F.frame(F.mold([F.msg_D()], seq=9), flags_frag=0x2000)),  # ip_fragment
        (6, F.frame(b"short")),  # mold_truncated
        (7, F.frame(F.mold([F.msg_D(ref=7)], seq=4, count=3))),  # count overrun: first block kept
        (8, F.frame(F.mold(seq=5, count=1, raw_blocks=b"\x00\x30abc"))),  # block overrun
        (9, F.frame(F.mold([], seq=5, count=0))),  # heartbeat
        (10, F.frame(F.mold([F.msg_D(ref=10)], seq=0))),  # sequence 0: a message, as in replay
        (11, F.frame(F.mold([F.msg_D(ref=11)], seq=1, session=b"OTHERSESS1"), ethertype=0x86DD)),
        (12, F.frame(F.mold([F.msg_D(ref=12)], seq=2**64 - 1))),  # its last number would wrap 2^64
    ]
    p = tmp_path / "bad.pcap"
    p.write_bytes(F.pcap_bytes(recs))
    idx = index_capture(str(p))
    s = idx.sessions[F.SESSION]
    # The C rules (the replay's): only a sequence that would wrap 2^64 is
    # refused (mold_seq_implausible); sequence 0 is a number like any other.
    assert s.seqs.tolist() == [0, 1, 2, 3, 4]
    assert [s.get(q) for q in (0, 1, 2, 3, 4)] == [F.msg_D(ref=10)] + good + [F.msg_D(ref=7)]
    for reason in (
        "eth_truncated",
        "ip_not_udp",
        "ip_fragment",
        "mold_truncated",
        "mold_count_overrun",
        "mold_block_overrun",
        "mold_seq_implausible",
        "ipv6",
    ):
        assert idx.skipped.get(reason) == 1, (reason, idx.skipped)
    assert idx.heartbeats == 1 and set(idx.sessions) == {F.SESSION}


def test_ab_duplicates_indexed_once(tmp_path, gen_capture):
    prefix = str(tmp_path / "ab")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "--out",
            prefix,
            "--messages",
            "20000",
            "--symbols",
            "10",
            "--channels",
            "2",
            "--seed",
            "3",
            "--lines",
            "ab",
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ab = index_capture(prefix + ".pcap")
    a = index_capture(gen_capture[0] + ".pcap")
    assert ab.duplicates == ab.messages == a.messages == 20000 and ab.duplicate_mismatch == 0
    for name, s in a.sessions.items():
        t = ab.sessions[name]
        assert t.seqs.tolist() == s.seqs.tolist() and t.blocks(0, t.count) == s.blocks(0, s.count)


def test_lossy_ab_serves_every_message_on_either_line():
    with open(SAMPLE_AB, "rb") as f:
        data = f.read()
    both = reference(data)
    line_a = reference(data, keep_lines={F.ip_aton(F.GROUP_A)})
    ((session, ref),) = both.items()
    assert len(ref) == 11959 and len(line_a[session]) < len(ref)  # B filled what A lost
    holes = sorted(set(range(1, 12001)) - set(ref))
    assert len(holes) == 41
    got = {}
    with serving(SAMPLE_AB, max_datagram=65000) as (srv, cli):
        seq, steps = 1, 0
        while seq <= 12000:
            steps += 1
            assert steps < 1000
            if seq in holes:
                seq += 1
                continue
            msgs = check_reply(ask(cli, srv, session, seq, 65535), both, session, seq, 65535, 65000)
            got.update((seq + i, m) for i, m in enumerate(msgs))
            seq += len(msgs)
        assert got == ref
        for h in holes[:3]:  # a hole itself cannot be served
            assert ask(cli, srv, session, h, 5, NO_REPLY_S) is None
        assert srv.stats["ignored"]["missing"] == 3


# --------------------------------------------------------------------- server


def test_replies_are_the_capture_messages(gen_capture):
    prefix, _, ref = gen_capture
    sessions = sorted(ref)
    assert len(sessions) == 2
    with serving(prefix + ".pcap") as (srv, cli):
        sent = 0
        for session in sessions:
            last = max(ref[session])
            for seq, count in ((1, 1), (1, 65535), (2, 3), (last // 2, 40), (last // 3, 7), (last, 1)):
                msgs = check_reply(ask(cli, srv, session, seq, count), ref, session, seq, count)
                sent += len(msgs)
                for m in msgs:  # real ITCH 5.0, whole and exact
                    assert decode_message(m)["type"] == chr(m[0])
        st = srv.stats
        assert st["requests"] == st["replies"] == 12 and st["messages_sent"] == sent
        assert sum(st["ignored"].values()) == 0


def test_max_datagram_respected_and_session_recoverable(gen_capture):
    prefix, _, ref = gen_capture
    session = sorted(ref)[0]
    with serving(prefix + ".pcap", max_datagram=200) as (srv, cli):
        seq, got, steps = 1, [], 0
        while seq <= 1500:
            steps += 1
            assert steps < 1500
            d = ask(cli, srv, session, seq, 1000)
            msgs = check_reply(d, ref, session, seq, 1000, max_datagram=200)
            got += msgs
            seq += len(msgs)
        assert got == [ref[session][q] for q in range(1, seq)]
        assert srv.stats["bytes_sent"] <= 200 * srv.stats["replies"]


def test_too_large_message_ignored():
    with open(SAMPLE, "rb") as f:
        ref = reference(f.read())
    session = sorted(ref)[0]
    big = next(q for q, m in sorted(ref[session].items()) if len(m) > 28)  # 2 + len > 50 - 20
    small = next(q for q, m in sorted(ref[session].items()) if len(m) <= 28)
    with serving(SAMPLE, max_datagram=50) as (srv, cli):
        assert ask(cli, srv, session, big, 3, NO_REPLY_S) is None
        msgs = check_reply(ask(cli, srv, session, small, 3), ref, session, small, 3, 50)
        assert len(msgs) == 1
        assert srv.stats["ignored"]["too_large"] == 1


def test_request_past_end_answered_partially(sample_ref):
    session = sorted(sample_ref)[1]
    last = max(sample_ref[session])
    with serving(SAMPLE) as (srv, cli):
        msgs = check_reply(ask(cli, srv, session, last - 2, 10), sample_ref, session, last - 2, 10)
        assert len(msgs) == 3


def test_bad_requests_ignored_and_counted(sample_ref):
    session = sorted(sample_ref)[0]
    last = max(sample_ref[session])
    good = struct.pack(">10sQH", session, 5, 2)
    bad = {
        "malformed": [b"", good[:19], good + b"\0", b"x" * 1000],
        "unknown_session": [struct.pack(">10sQH", b"NOSUCHSESS", 5, 2)],
        "zero_count": [struct.pack(">10sQH", session, 5, 0)],
        "out_of_range": [
            struct.pack(">10sQH", session, 0, 5),
            struct.pack(">10sQH", session, last + 1, 5),
            struct.pack(">10sQH", session, 2**64 - 1, 5),
        ],
    }
    with serving(SAMPLE) as (srv, cli):
        for reqs in bad.values():
            for r in reqs:
                cli.sendto(r, srv.address)
        # Requests are served in order: a reply to any bad request would arrive first.
        cli.sendto(good, srv.address)
        d = recv(cli, REPLY_S)
        check_reply(d, sample_ref, session, 5, 2)
        assert recv(cli, NO_REPLY_S) is None
        st = srv.stats
        assert st["requests"] == 10 and st["replies"] == 1 and st["messages_sent"] == 2
        assert {k: v for k, v in st["ignored"].items() if v} == {k: len(v) for k, v in bad.items()}


def test_reply_goes_to_requester_only(sample_ref):
    session = sorted(sample_ref)[0]
    with serving(SAMPLE) as (srv, cli):
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            other.bind(("127.0.0.1", 0))
            d = ask(other, srv, session, 1, 1)
            check_reply(d, sample_ref, session, 1, 1)
            assert recv(cli, NO_REPLY_S) is None
        finally:
            other.close()


# ------------------------------------------------------------------------ CLI


def cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=60, **kw
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly(sig, tmp_path, sample_ref):
    stats = tmp_path / "stats.json"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "rewind-server",
            SAMPLE,
            "--listen",
            "127.0.0.1:0",
            "--stats-json",
            str(stats),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line, seen, rest = read_line_until(p, "listening on")
        assert any("40,000 messages" in s for s in seen)
        port = int(line.split()[3].rsplit(":", 1)[1])
        session = sorted(sample_ref)[0]
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            c.sendto(struct.pack(">10sQH", session, 10, 4), ("127.0.0.1", port))
            check_reply(recv(c, REPLY_S), sample_ref, session, 10, 4)
            c.sendto(b"junk", ("127.0.0.1", port))
            c.sendto(struct.pack(">10sQH", session, 14, 4), ("127.0.0.1", port))  # served after the junk
            check_reply(recv(c, REPLY_S), sample_ref, session, 14, 4)
        finally:
            c.close()
        p.send_signal(sig)
        err = p.stderr.read() if p.wait(timeout=60) is not None else ""
        out = "".join(iter(lambda: rest.get(timeout=30), None))
    finally:
        reap(p)
    assert p.returncode == 0, (out, err)
    assert "Traceback" not in err and "ignored (malformed)" in err
    assert "requests 3, replies 2, messages sent 8" in out
    st = json.loads(stats.read_text())
    assert (st["requests"], st["replies"], st["messages_sent"]) == (3, 2, 8)
    assert st["ignored"]["malformed"] == 1 and st["index"]["messages"] == 40000
    assert st["bytes_sent"] == 2 * 20 + sum(2 + len(sample_ref[session][q]) for q in range(10, 18))


def test_cli_help():
    r = cli("rewind-server", "--help")
    assert r.returncode == 0 and "--listen" in r.stdout and "--max-datagram" in r.stdout
    assert "rewind-server" in cli("--help").stdout


def test_cli_rejects_binaryfile_and_garbage(tmp_path):
    binf = tmp_path / "day.bin"
    with gzip.open(os.path.join(PCAPS, "sample.bin.gz"), "rb") as f:
        binf.write_bytes(f.read())
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for path, words in (
        (binf, "BinaryFILE"),
        (os.path.join(PCAPS, "sample.bin.gz"), "BinaryFILE"),
        (garbage, "unknown format"),
        (empty, "empty"),
        (tmp_path / "nope", "cannot open"),
    ):
        r = cli("rewind-server", str(path), "--listen", "127.0.0.1:0")
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, (path, r.stderr)
        with pytest.raises(RewindError):
            index_capture(str(path))
    r = cli("rewind-server", SAMPLE, "--listen", "nohostport")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = cli("rewind-server", SAMPLE, "--listen", "127.0.0.1:0", "--max-datagram", "10")
    assert r.returncode == 2 and "max-datagram" in r.stderr


def test_capture_without_mold_messages_rejected(tmp_path):
    p = tmp_path / "hb.pcap"
    p.write_bytes(F.pcap_bytes([(1, F.frame(F.mold([], seq=1, count=0)))]))
    with pytest.raises(RewindError, match="no MoldUDP64 messages"):
        index_capture(str(p))
