"""The generator's IEX days (feedhandler gen --protocol iex-tops|iex-deep|iex-deepplus).

Everything is parsed here with struct, from the byte layouts of the IEX-TP v1,
TOPS 1.6, DEEP 1.0 and DEEP+ 1.0 specifications (all little-endian), not through
the feed handler: the segment headers and their chains (sequence, stream offset,
block sums), every message's length, the summary's counts, End of Messages, DEEP's
event flags, and -- since the three feeds of one seed are one market -- DEEP's
price levels and TOPS's quotes against the books rebuilt from DEEP+'s orders.
"""

from __future__ import annotations

import collections
import hashlib
import json
import struct
import subprocess
import sys

import pytest

from feedhandler.gen import generate

MIDNIGHT_NS = 1795582800000000000
NS = 10**9

PROTO_ID = {"iex-tops": 0x8003, "iex-deep": 0x8004, "iex-deepplus": 0x8005}
GROUPS = {
    "iex-tops": ("233.215.21.3", "233.215.21.131", 10377),
    "iex-deep": ("233.215.21.4", "233.215.21.132", 10378),
    "iex-deepplus": ("233.215.21.8", "233.215.21.138", 10378),
}
ADMIN = {"S": 10, "D": 31, "H": 22, "I": 18, "O": 18, "P": 19}
LENGTHS = {
    "iex-tops": dict(ADMIN, Q=42, T=38, X=26, B=38, A=80),
    "iex-deep": dict(ADMIN, E=18, T=38, X=26, B=38, A=80, **{"8": 30, "5": 30}),
    "iex-deepplus": dict(ADMIN, E=18, a=38, M=38, R=26, L=46, T=38, B=38, C=18),
}
FEEDS = tuple(PROTO_ID)
ORDER_TYPES = set("aMRLC")


# ------------------------------------------------------------------ parsers


def read_frames(path, max_payload=1358):
    """[(capture ns, dst group, udp dport, ip id, udp payload)], checking the frame basics."""
    data = open(path, "rb").read()
    magic, vmaj, vmin, _, _, snap, link = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, vmaj, vmin, snap, link) == (0xA1B23C4D, 2, 4, 65535, 1)
    pos, out, last = 24, [], 0
    while pos < len(data):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", data, pos)
        f = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        assert incl == orig == len(f) and incl <= 42 + max_payload
        ts = sec * NS + nsec
        assert ts >= last
        last = ts
        assert f[12:14] == b"\x08\x00" and f[14] == 0x45 and f[23] == 17
        ipid = struct.unpack_from("!H", f, 18)[0]
        dst = "%d.%d.%d.%d" % tuple(f[30:34])
        dport, ulen = struct.unpack_from("!HH", f, 36)
        payload = f[42:]
        assert ulen == 8 + len(payload)
        out.append((ts, dst, dport, ipid, payload))
    return out


Segment = collections.namedtuple("Segment", "version reserved proto channel session plen count offset seq send msgs")


def segment(payload):
    """One IEX-TP segment: its header and its messages, every block checked."""
    assert len(payload) >= 40
    h = struct.unpack_from("<BBHIIHHqqq", payload, 0)
    plen, count = h[5], h[6]
    assert plen == len(payload) - 40, "payload length is not the datagram less the header"
    msgs, p = [], 40
    for _ in range(count):
        assert p + 2 <= len(payload), "count overruns the payload"
        (n,) = struct.unpack_from("<H", payload, p)
        assert n >= 1 and p + 2 + n <= len(payload), "message overruns the payload"
        msgs.append(payload[p + 2 : p + 2 + n])
        p += 2 + n
    assert p == len(payload), "bytes after the counted blocks"
    return Segment(*h, msgs)


def ts_of(m):
    return struct.unpack_from("<q", m, 2)[0]


def sym_of(m):
    return m[10:18].rstrip(b" ").decode()


class Day:
    """A generated day: its summary, frames, line A's segments and messages."""

    def __init__(self, prefix, summary, feed, max_payload=1358):
        self.prefix, self.s, self.feed = prefix, summary, feed
        self.frames = read_frames(prefix + ".pcap", max_payload)
        a, b, port = GROUPS[feed]
        assert {f[1] for f in self.frames} <= {a, b} and {f[2] for f in self.frames} == {port}
        self.a = [f for f in self.frames if f[1] == a]
        self.b = [f for f in self.frames if f[1] == b]
        self.seg_a = [segment(f[4]) for f in self.a]
        self.seg_b = [segment(f[4]) for f in self.b]
        # line A's messages: (session, sequence, message)
        self.msgs = [(g.session, g.seq + k, m) for g in self.seg_a for k, m in enumerate(g.msgs)]


SMALL = dict(messages=30_000, symbols=24, seed=7, heartbeat_ms=20_000)


def make(tmp_path_factory, feed, name="day", **kw):
    args = dict(SMALL, lines="ab")
    args.update(kw)
    prefix = str(tmp_path_factory.mktemp("iex") / name)
    s = generate(prefix, protocol=feed, progress=False, **args)
    return Day(prefix, s, feed, args.get("max_payload") or 1358)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """The three feeds of one seed (the same market)."""
    return {feed: make(tmp_path_factory, feed) for feed in FEEDS}


@pytest.fixture(scope="module")
def sessions_day(tmp_path_factory):
    return make(tmp_path_factory, "iex-deepplus", "sess", sessions=3)


# ------------------------------------------------------------ transport


@pytest.mark.parametrize("feed", FEEDS)
def test_summary(days, feed):
    d = days[feed]
    s = d.s
    assert s["protocol"] == feed and s["model_messages"] == SMALL["messages"]
    assert s["messages"] == sum(s["by_type"].values()) == len(d.msgs)
    assert all(k.startswith("iex_") and len(k) == 5 for k in s["by_type"])
    assert set(s["by_type"]) <= {"iex_" + t for t in LENGTHS[feed]}
    assert s["udp_port"] == GROUPS[feed][2] and s["channel_count"] == 1
    assert s["iex"]["protocol_id"] == PROTO_ID[feed] and s["iex"]["sessions"] == 1
    assert set(s["files"]) == {"pcap", "json"}
    import os

    assert not os.path.exists(d.prefix + ".bin")
    assert s["packets"]["a"] == len(d.a) and s["packets"]["b"] == len(d.b)
    assert s["heartbeats"] == sum(1 for g in d.seg_a if g.count == 0) > 0
    assert s["data_packets"] == sum(1 for g in d.seg_a if g.count) and s["end_of_session"] == 1


def _check_chain(segs, feed):
    """Header fields, and the sequence and stream-offset chains per session."""
    nxt = {}
    for g in segs:
        assert (g.version, g.reserved, g.proto, g.channel) == (1, 0, PROTO_ID[feed], 1)
        assert g.session != 0 and g.seq >= 1 and g.offset >= 0
        assert MIDNIGHT_NS <= g.send < MIDNIGHT_NS + 86400 * NS
        if g.count == 0:
            assert g.plen == 0 and not g.msgs
        seq, off = nxt.get(g.session, (1, 0))
        assert (g.seq, g.offset) == (seq, off), "sequence or stream offset chain broken"
        nxt[g.session] = (g.seq + g.count, g.offset + g.plen)
    return nxt


@pytest.mark.parametrize("feed", FEEDS)
def test_segment_headers_and_chains(days, feed):
    d = days[feed]
    nxt = _check_chain(d.seg_a, feed)
    assert _check_chain(d.seg_b, feed) == nxt
    (sess,) = d.s["sessions"]
    assert nxt == {sess["session_id"]: (sess["next_sequence"], sess["stream_bytes"])}
    # a segment is sent after its messages were stamped, and captured after it was sent
    for (cap, *_), g in zip(d.a, d.seg_a):
        assert cap >= g.send
        for m in g.msgs:
            assert ts_of(m) <= g.send


@pytest.mark.parametrize("feed", FEEDS)
def test_line_b_same_messages_cut_differently(days, feed):
    d = days[feed]
    b = [(g.session, g.seq + k, m) for g in d.seg_b for k, m in enumerate(g.msgs)]
    assert b == d.msgs
    cuts_a = {(g.seq, g.count) for g in d.seg_a if g.count}
    cuts_b = {(g.seq, g.count) for g in d.seg_b if g.count}
    assert cuts_b != cuts_a and cuts_b - cuts_a
    assert len(d.b) > len(d.a)


@pytest.mark.parametrize("feed", FEEDS)
def test_message_lengths_and_counts(days, feed):
    d = days[feed]
    counts = collections.Counter()
    for _, _, m in d.msgs:
        t = chr(m[0])
        assert t in LENGTHS[feed], "type %r is not of %s" % (t, feed)
        assert len(m) == LENGTHS[feed][t], (t, len(m))
        counts["iex_" + t] += 1
        if t != "S":
            assert sym_of(m) in d.s["symbols"].values()
        assert MIDNIGHT_NS < ts_of(m) < MIDNIGHT_NS + 86400 * NS
    assert dict(counts) == d.s["by_type"]
    want = {
        "iex-tops": "SDHIOPQTXBA",
        "iex-deep": "SDHIOPE85TXBA",
        "iex-deepplus": "SDHIOPEaMRLTBC",
    }[feed]
    assert set(want) == {k[4:] for k in counts}


def _system_events(msgs):
    by = collections.defaultdict(list)
    for sess, _, m in msgs:
        by[sess].append(m)
    return by


@pytest.mark.parametrize("feed", FEEDS)
def test_end_of_messages_is_last(days, feed):
    d = days[feed]
    for sess, ms in _system_events(d.msgs).items():
        assert ms[0][:2] == b"SO" and ms[-1][:2] == b"SC"
        codes = [chr(m[1]) for m in ms if m[0] == ord("S")]
        assert codes == list("OSRMEC")
    # nothing at all after End of Messages, not even a heartbeat
    last = max(i for i, g in enumerate(d.seg_a) if g.count)
    assert d.seg_a[last].msgs[-1][:2] == b"SC" and last == len(d.seg_a) - 1


def test_deterministic(days, tmp_path):
    d = days["iex-deep"]
    again = str(tmp_path / "again")
    generate(again, protocol="iex-deep", lines="ab", progress=False, **SMALL)
    for ext in (".pcap", ".json"):
        assert (
            hashlib.sha256(open(d.prefix + ext, "rb").read()).hexdigest()
            == hashlib.sha256(open(again + ext, "rb").read()).hexdigest()
        )
    other = str(tmp_path / "other")
    generate(other, protocol="iex-deep", lines="ab", progress=False, **dict(SMALL, seed=8))
    assert open(d.prefix + ".pcap", "rb").read() != open(other + ".pcap", "rb").read()


# ------------------------------------------------------------ the books


def _deepplus_books(msgs):
    """Replay DEEP+ orders, checking every reference; yields (symbol, ts, levels,
    top) after each event (a run of order messages of one symbol and time)."""
    live = {}  # id -> [symbol, side, price, size]
    books = collections.defaultdict(lambda: ({}, {}))  # symbol -> (bids, asks): price -> size
    seen, trades = set(), {}
    out = []
    run = None

    def levels(sy):
        return tuple(tuple(sorted(side.items())) for side in books[sy])

    def top(sy):
        bids, asks = books[sy]
        bp = max(bids) if bids else 0
        ap = min(asks) if asks else 0
        return (bids.get(bp, 0), bp, ap, asks.get(ap, 0))

    def change(sy, side, px, dq):
        lv = books[sy][side]
        lv[px] = lv.get(px, 0) + dq
        assert lv[px] >= 0
        if lv[px] == 0:
            del lv[px]

    def close():
        if run is not None:
            sy = run[0]
            out.append((sy, run[1], levels(sy), top(sy)))
            bids, asks = books[sy]
            if bids and asks:
                assert max(bids) < min(asks), "crossed book after an event"

    for sess, seq, m in msgs:
        t = chr(m[0])
        if t not in ORDER_TYPES:
            if t in "TB":
                sy, (qty, px, tid) = sym_of(m), struct.unpack_from("<Iqq", m, 18)
                if t == "T":
                    assert tid not in trades
                    trades[tid] = (sy, qty, px)
                else:
                    assert trades.get(tid) == (sy, qty, px), "trade break of an unknown trade"
            continue
        sy, ts = sym_of(m), ts_of(m)
        if run != (sy, ts):
            close()
            run = (sy, ts)
        if t == "a":
            oid, qty, px = struct.unpack_from("<qIq", m, 18)
            assert oid not in seen and m[1] in b"85" and qty > 0 and 0 < px < 2**32
            seen.add(oid)
            side = 0 if m[1] == ord("8") else 1
            live[oid] = [sy, side, px, qty]
            change(sy, side, px, qty)
        elif t == "C":
            for oid in [k for k, o in live.items() if o[0] == sy]:
                del live[oid]
            books[sy] = ({}, {})
        else:
            (oid,) = struct.unpack_from("<q", m, 18)
            assert oid in live, "%s names a dead order" % t
            o = live[oid]
            assert o[0] == sy
            if t == "R":
                change(sy, o[1], o[2], -o[3])
                del live[oid]
            elif t == "M":
                qty, px = struct.unpack_from("<Iq", m, 26)
                assert qty > 0 and 0 < px < 2**32 and m[1] in (0, 1)
                if m[1] == 1:
                    assert px == o[2] and qty <= o[3], "priority kept on a price change or a larger size"
                change(sy, o[1], o[2], -o[3])
                o[2], o[3] = px, qty
                change(sy, o[1], px, qty)
            elif t == "L":
                qty, px, tid = struct.unpack_from("<Iqq", m, 26)
                assert 0 < qty <= o[3] and tid not in trades
                trades[tid] = (sy, qty, px)
                change(sy, o[1], o[2], -qty)
                o[3] -= qty
                if o[3] == 0:
                    del live[oid]
    close()
    return out, live


def _runs(seq):
    """Consecutive duplicates dropped."""
    out = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


def test_deepplus_orders_reference_live_orders(days):
    d = days["iex-deepplus"]
    events, live = _deepplus_books(d.msgs)
    assert events and d.s["live_orders_at_end"] == len(live)
    # partial cancels are Modifies to a smaller size keeping priority
    mods = [m for _, _, m in d.msgs if m[0] == ord("M")]
    assert any(m[1] == 1 for m in mods) and any(m[1] == 0 for m in mods)
    assert d.s["iex"]["sweeps"] > 0 and d.s["iex"]["clear_books"] >= 2


def test_deep_events_and_levels(days):
    d = days["iex-deep"]
    books = collections.defaultdict(lambda: ({}, {}))
    open_ev = {}
    multi = closed = 0
    for _, _, m in d.msgs:
        if m[0] not in (ord("8"), ord("5")):
            if m[0] == ord("E"):
                assert sym_of(m) not in open_ev, "security event inside an open event"
            continue
        sy, fl = sym_of(m), m[1]
        size, px = struct.unpack_from("<Iq", m, 18)
        assert fl in (0, 1) and 0 < px < 2**32
        side = books[sy][0 if m[0] == ord("8") else 1]
        if size == 0:
            assert px in side, "a level removed that was not there"
            del side[px]
        else:
            side[px] = size
        n = open_ev.pop(sy, 0) + 1
        if fl == 0:
            open_ev[sy] = n
            continue
        closed += 1
        multi += n > 1
        bids, asks = books[sy]
        if bids and asks:
            assert max(bids) < min(asks), "crossed book at the end of an event"
    assert not open_ev, "events left open: %s" % sorted(open_ev)
    assert multi == d.s["iex"]["multi_level_events"] > 0 and closed


def test_deep_event_straddles_segments(tmp_path_factory):
    """Small segments: events of several updates get split over two datagrams,
    and the flags still close every event."""
    d = make(tmp_path_factory, "iex-deep", "straddle", max_payload=160, lines="a")
    straddles, first_seg = 0, {}
    for i, g in enumerate(d.seg_a):
        for m in g.msgs:
            if m[0] not in (ord("8"), ord("5")):
                continue
            sy = sym_of(m)
            start = first_seg.setdefault(sy, i)
            if m[1] & 1:
                straddles += start != i
                del first_seg[sy]
    assert not first_seg
    assert straddles == d.s["iex"]["straddling_events"] > 0


def test_deep_levels_match_deepplus_orders(days):
    """DEEP's levels at the end of each event are DEEP+'s orders summed by price."""
    plus, _ = _deepplus_books(days["iex-deepplus"].msgs)
    want = collections.defaultdict(list)
    for sy, _, lv, _ in plus:
        want[sy].append(lv)
    got = collections.defaultdict(list)
    books = collections.defaultdict(lambda: ({}, {}))
    for _, _, m in days["iex-deep"].msgs:
        if m[0] not in (ord("8"), ord("5")):
            continue
        sy = sym_of(m)
        size, px = struct.unpack_from("<Iq", m, 18)
        side = books[sy][0 if m[0] == ord("8") else 1]
        if size:
            side[px] = size
        else:
            side.pop(px)
        if m[1] & 1:
            got[sy].append(tuple(tuple(sorted(x.items())) for x in books[sy]))
    assert set(got) == set(want)
    for sy in want:
        assert _runs(got[sy]) == _runs(want[sy]), sy


def test_tops_quotes_match_the_recomputed_top(days):
    """Every Quote Update is the top of book after an event that changed it."""
    plus, _ = _deepplus_books(days["iex-deepplus"].msgs)
    want = collections.defaultdict(lambda: [(0, 0, 0, 0)])
    for sy, ts, _, top in plus:
        if top != want[sy][-1]:
            want[sy].append(top)
    got = collections.defaultdict(lambda: [(0, 0, 0, 0)])
    nq = 0
    for _, _, m in days["iex-tops"].msgs:
        if m[0] != ord("Q"):
            continue
        bs, bp, ap, az = struct.unpack_from("<IqqI", m, 18)
        assert (bs == 0) == (bp == 0) and (az == 0) == (ap == 0)
        assert not (bp and ap) or bp < ap
        assert m[1] & 0x3F == 0
        q = (bs, bp, ap, az)
        assert q != got[sym_of(m)][-1], "a Quote Update that changes nothing"
        got[sym_of(m)].append(q)
        nq += 1
    assert nq and dict(got) == dict(want)


def _trades(msgs):
    return [
        (
            chr(m[0]) if m[0] == ord("B") else "T",
            sym_of(m),
            *struct.unpack_from("<Iqq", m, 18 if m[0] != ord("L") else 26),
        )
        for _, _, m in msgs
        if m[0] in (ord("T"), ord("B"), ord("L"))
    ]


def test_feeds_print_the_same_trades(days):
    plus = _trades(days["iex-deepplus"].msgs)
    assert plus == _trades(days["iex-deep"].msgs) == _trades(days["iex-tops"].msgs)
    assert any(t[0] == "B" for t in plus)
    ids = [t[4] for t in plus if t[0] == "T"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# ------------------------------------------------------------ sessions, loss, options


def test_several_sessions(sessions_day):
    d = sessions_day
    ids = [x["session_id"] for x in d.s["sessions"]]
    assert len(ids) == 3 == d.s["iex"]["sessions"] == d.s["end_of_session"] and len(set(ids)) == 3
    assert all(i != 0 for i in ids)
    # the sessions follow each other in the file, each from sequence 1 and offset 0
    order = _runs([g.session for g in d.seg_a])
    assert order == ids
    nxt = _check_chain(d.seg_a, "iex-deepplus")
    assert nxt == {x["session_id"]: (x["next_sequence"], x["stream_bytes"]) for x in d.s["sessions"]}
    for sess in ids:
        first = next(g for g in d.seg_a if g.session == sess)
        assert (first.seq, first.offset) == (1, 0)
    by = _system_events(d.msgs)
    for sess in ids:
        ms = by[sess]
        assert ms[0][:2] == b"SO" and ms[-1][:2] == b"SC"
        assert [x["messages"] for x in d.s["sessions"] if x["session_id"] == sess] == [len(ms)]
        # each session names its orders only: its books are empty when it ends
        _, live = _deepplus_books([x for x in d.msgs if x[0] == sess])
        if sess != ids[-1]:
            assert not live
        # every symbol's trading status is spun at the session's start
        assert {sym_of(m) for m in ms if m[0] == ord("H")} == set(d.s["symbols"].values())
    assert sum(x["messages"] for x in d.s["sessions"]) == d.s["messages"]


def test_loss_counts_match_the_pcap(tmp_path_factory):
    d = make(tmp_path_factory, "iex-tops", "lossy", loss_a=0.05, loss_b=0.10)
    s = d.s
    assert len(d.a) == s["packets"]["a"] and len(d.b) == s["packets"]["b"]
    assert s["packets_lost"]["a"] == s["packets_sent"]["a"] - len(d.a) > 0
    assert s["packets_lost"]["b"] == s["packets_sent"]["b"] - len(d.b) > 0
    # loss never changes the messages: every message received on A or B is the lossless day's
    clean = {(x[0], x[1]): x[2] for x in make(tmp_path_factory, "iex-tops", "clean").msgs}
    got = {}
    for g in d.seg_a + d.seg_b:
        for k, m in enumerate(g.msgs):
            assert clean[(g.session, g.seq + k)] == m
            got[(g.session, g.seq + k)] = m
    assert 0 < len(got) < len(clean)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(sessions=17), "sessions must be 1..16"),
        (dict(channels=2), "one channel"),
        (dict(max_payload=121), "at least 122"),
        (dict(sessions=2, protocol="itch"), "sessions is for the IEX protocols only"),
        (dict(protocol="iex"), "protocol must be one of"),
    ],
)
def test_bad_iex_arguments(tmp_path, kwargs, needle):
    args = dict(messages=20_000, symbols=10, protocol="iex-deep", progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        generate(str(tmp_path / "bad"), **args)
    assert not (tmp_path / "bad.json").exists()


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", "gen", "-q", *argv], capture_output=True, text=True, timeout=120
    )


def test_cli_iex_day(tmp_path):
    prefix = str(tmp_path / "c")
    p = _cli("--protocol", "iex-deepplus", "--out", prefix, "--messages", "20000", "--symbols", "12", "--sessions", "2")
    assert p.returncode == 0, p.stderr
    assert ".pcap" in p.stdout and ".bin" not in p.stdout and "2 session(s)" in p.stdout
    s = json.load(open(prefix + ".json"))
    assert s["protocol"] == "iex-deepplus" and len(s["sessions"]) == 2
    assert s["channels"][0]["line_a"] == "233.215.21.8:10378"
    bad = _cli("--out", str(tmp_path / "x"), "--messages", "20000", "--sessions", "2")
    assert bad.returncode == 2 and "--sessions is for --protocol iex" in bad.stderr
    h = _cli("--help")
    assert "iex-deepplus" in h.stdout and "--sessions" in h.stdout
