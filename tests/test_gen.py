"""The synthetic trading-day generator (csrc/gen/, feedhandler/gen.py).

Every check parses the outputs here in Python, independently of the C code: the
BinaryFILE walk re-plays the order book references, the pcap walk re-checks
every header and checksum.  Days are small (tens of thousands of messages; the
flat-rate day 200 000, 0.2 s at 1 M msgs/s).
"""

from __future__ import annotations

import bisect
import collections
import json
import struct
import subprocess
import sys

import pytest

from feedhandler.gen import generate

ITCH_LEN = {
    "S": 12,
    "R": 39,
    "H": 25,
    "Y": 20,
    "L": 26,
    "V": 35,
    "W": 12,
    "K": 28,
    "J": 35,
    "h": 21,
    "A": 36,
    "F": 40,
    "E": 31,
    "C": 36,
    "X": 23,
    "D": 19,
    "U": 35,
    "P": 44,
    "Q": 40,
    "B": 19,
    "I": 50,
    "N": 20,
    "O": 48,
}
ADMIN = "SRHYLVWKJhNO"
MIDNIGHT_NS = 1795582800000000000  # 2026-11-25 00:00 America/New_York


# ------------------------------------------------------------------ parsers


def read_bin(path):
    """[(type, locate, tracking, ts, message bytes)] from a BinaryFILE."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        m = data[pos + 2 : pos + 2 + n]
        assert len(m) == n, "truncated record"
        t = chr(m[0])
        assert ITCH_LEN[t] == n, "type %s has length %d" % (t, n)
        loc, trk = struct.unpack_from(">HH", m, 1)
        ts = int.from_bytes(m[5:11], "big")
        out.append((t, loc, trk, ts, m))
        pos += 2 + n
    return out


def inet_sum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def read_pcap(path, max_payload=1358):
    """Validate every record; return [(ts_ns, group, session, seq, count, [messages], payload)]."""
    data = open(path, "rb").read()
    magic, vmaj, vmin, _, _, snap, link = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, vmaj, vmin, snap, link) == (0xA1B23C4D, 2, 4, 65535, 1)
    pos, out, last_ts = 24, [], 0
    while pos < len(data):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig and nsec < 10**9
        f = data[pos + 16 : pos + 16 + incl]
        assert len(f) == incl
        pos += 16 + incl
        ts = sec * 10**9 + nsec
        assert ts >= last_ts, "capture time runs back"
        last_ts = ts
        assert f[12:14] == b"\x08\x00"
        ip = f[14:34]
        assert ip[0] == 0x45 and ip[9] == 17 and ip[8] > 0
        assert struct.unpack_from("!H", ip, 6)[0] == 0, "DF/MF/offset must be clear"
        assert inet_sum(ip) == 0xFFFF, "IPv4 header checksum"
        total = struct.unpack_from("!H", ip, 2)[0]
        assert total == len(f) - 14
        dst = ip[16:20]
        assert f[0:3] == b"\x01\x00\x5e" and f[3] == dst[1] & 0x7F and f[4:6] == dst[2:4]
        udp = f[34:42]
        sport, dport, ulen, ucs = struct.unpack("!HHHH", udp)
        assert dport == 26477 and ulen == len(f) - 34 and ucs != 0
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, ulen)
        assert inet_sum(pseudo + f[34:]) == 0xFFFF, "UDP checksum"
        payload = f[42:]
        assert len(payload) <= max_payload
        session = payload[:10].decode("ascii")
        seq, count = struct.unpack_from("!QH", payload, 10)
        msgs, p = [], 20
        if count != 0xFFFF:
            for _ in range(count):
                (n,) = struct.unpack_from("!H", payload, p)
                msgs.append(payload[p + 2 : p + 2 + n])
                assert len(msgs[-1]) == n and ITCH_LEN[chr(payload[p + 2])] == n
                p += 2 + n
        assert p == len(payload), "Mold count does not match the blocks"
        group = "%d.%d.%d.%d" % tuple(dst)
        out.append((ts, group, session, seq, count, msgs, payload))
    return out


# ----------------------------------------------------------------- fixtures

DAY = dict(messages=60_000, symbols=60, channels=3, seed=11)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("gen") / "day")
    summary = generate(prefix, progress=False, **DAY)
    return prefix, summary, read_bin(prefix + ".bin"), read_pcap(prefix + ".pcap")


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("gen") / "lossy")
    summary = generate(prefix, lines="ab", loss_a=0.05, loss_b=0.10, progress=False, **DAY)
    return prefix, summary, read_pcap(prefix + ".pcap")


# -------------------------------------------------------------------- tests


@pytest.mark.slow
def test_deterministic(day, tmp_path):
    prefix, summary, _, _ = day
    again = str(tmp_path / "again")
    generate(again, progress=False, **DAY)
    for ext in (".pcap", ".bin", ".json"):
        assert open(prefix + ext, "rb").read() == open(again + ext, "rb").read(), ext
    other = str(tmp_path / "other")
    generate(other, progress=False, **dict(DAY, seed=12))
    assert open(prefix + ".bin", "rb").read() != open(other + ".bin", "rb").read()
    assert open(prefix + ".pcap", "rb").read() != open(other + ".pcap", "rb").read()


def test_exact_count_and_summary(day):
    _, s, msgs, _ = day
    assert len(msgs) == DAY["messages"] == s["messages"]
    by_type = collections.Counter(m[0] for m in msgs)
    assert dict(by_type) == s["by_type"]
    assert s["seed"] == DAY["seed"] and s["trading_date"] == "2026-11-25"
    assert s["symbol_count"] == DAY["symbols"] and len(s["symbols"]) == DAY["symbols"]
    names = list(s["symbols"].values())
    assert len(set(names)) == len(names)
    assert all(1 <= len(n) <= 5 and n.isalpha() and n.isupper() for n in names)
    assert s["messages_per_packet"]["mean"] > 1.5
    # the normal day: no rate, the 20 us window; first/last ITCH times as in the file
    assert s["rate"] == 0 and s["batch_ns"] == 20_000
    assert (s["first_ts"], s["last_ts"]) == (msgs[0][3], msgs[-1][3])


def test_message_mix(day):
    _, s, msgs, _ = day
    n = len(msgs)
    pct = {t: 100.0 * c / n for t, c in collections.Counter(m[0] for m in msgs).items()}
    for t, want, tol in (
        ("A", 44, 2.5),
        ("D", 43, 2.5),
        ("U", 7.4, 1.0),
        ("E", 2.2, 0.6),
        ("X", 1.3, 0.4),
        ("I", 1.0, 0.3),
    ):
        assert abs(pct[t] - want) <= tol, (t, pct[t])
    for t in "CFPQB" + ADMIN:
        assert pct.get(t, 0) > 0, "type %s missing" % t


def test_day_structure(day):
    _, s, msgs, _ = day
    ts = [m[3] for m in msgs]
    assert ts == sorted(ts), "BinaryFILE not in timestamp order"
    nch = DAY["channels"]
    events = collections.defaultdict(list)
    for t, loc, trk, when, m in msgs:
        if t == "S":
            assert loc == 0
            events[trk].append((chr(m[11]), when))
        if t in "VW":
            assert loc == 0
    assert set(events) == set(range(1, nch + 1))
    for trk, ev in events.items():
        assert [e for e, _ in ev] == list("OSQMEC")
        hours = [w / 3.6e12 for _, w in ev]
        assert 3 <= hours[0] < 4 and 4 <= hours[1] < 4.01 and 9.5 <= hours[2] < 9.51
        assert 16 <= hours[3] < 16.01 and 20 <= hours[4] < 20.01 and 20.08 < hours[5] < 20.1
    # order flow between 04:00 and 20:00, most of it in the regular session
    flow = [m[3] for m in msgs if m[0] in "AFDUEXC"]
    assert min(flow) >= 4 * 3.6e12 and max(flow) < 20 * 3.6e12
    rth = sum(1 for w in flow if 9.5 * 3.6e12 <= w < 16 * 3.6e12)
    assert rth / len(flow) > 0.7
    # every instrument has a directory entry before any order
    first_r = {}
    for t, loc, _, when, _ in msgs:
        if t == "R":
            first_r[loc] = when
    assert sorted(first_r) == list(range(1, DAY["symbols"] + 1))


def test_references_live_and_consistent(day):
    """Walk the BinaryFILE as a book would: every reference is to a live order of
    the same instrument, never over-executed; refs and match numbers increase."""
    _, s, msgs, _ = day
    _check_references(s, msgs)


def _check_references(s, msgs):
    live = {}  # ref -> [locate, shares]
    last_ref = 0
    last_match = 0
    matches = set()
    loc_channel = {}
    for i, ch in enumerate(s["channels"]):
        lo, hi = ch["locates"]
        for loc in range(lo, hi + 1):
            loc_channel[loc] = i + 1

    def on_grid(price):
        assert price > 0 and (price < 10000 or price % 100 == 0), "off the tick grid: %d" % price

    def new_match(mn):
        nonlocal last_match
        assert mn > last_match
        last_match = mn
        matches.add(mn)

    for t, loc, trk, _, m in msgs:
        if loc:
            assert loc_channel[loc] == trk, "message on the wrong channel"
        if t in "AF":
            ref, side, shares = struct.unpack_from(">QcI", m, 11)
            price = struct.unpack_from(">I", m, 32)[0]
            assert ref > last_ref and ref not in live and side in (b"B", b"S")
            assert shares > 0
            on_grid(price)
            assert m[24:32].decode().rstrip() == s["symbols"][str(loc)]
            last_ref = ref
            live[ref] = [loc, shares]
        elif t == "D":
            (ref,) = struct.unpack_from(">Q", m, 11)
            assert live[ref][0] == loc
            del live[ref]
        elif t in "EC":
            ref, x, mn = struct.unpack_from(">QIQ", m, 11)
            o = live[ref]
            assert o[0] == loc and 0 < x <= o[1]
            new_match(mn)
            if t == "C":
                assert m[31:32] in (b"Y", b"N")
                on_grid(struct.unpack_from(">I", m, 32)[0])
            o[1] -= x
            if o[1] == 0:
                del live[ref]
        elif t == "X":
            ref, x = struct.unpack_from(">QI", m, 11)
            o = live[ref]
            assert o[0] == loc and 0 < x <= o[1]
            o[1] -= x
            if o[1] == 0:
                del live[ref]
        elif t == "U":
            old, new, shares, price = struct.unpack_from(">QQII", m, 11)
            assert live[old][0] == loc
            assert new > last_ref and new not in live and shares > 0
            on_grid(price)
            last_ref = new
            del live[old]
            live[new] = [loc, shares]
        elif t == "P":
            on_grid(struct.unpack_from(">I", m, 32)[0])
            new_match(struct.unpack_from(">Q", m, 36)[0])
        elif t == "Q":
            on_grid(struct.unpack_from(">I", m, 27)[0])
            new_match(struct.unpack_from(">Q", m, 31)[0])
        elif t == "I":
            far, near, ref_price = struct.unpack_from(">III", m, 36)
            for p in (near, ref_price) + ((far,) if far else ()):
                on_grid(p)
        elif t == "J":
            for p in struct.unpack_from(">III", m, 19):
                on_grid(p)
        elif t == "B":
            (mn,) = struct.unpack_from(">Q", m, 11)
            assert mn in matches
    assert s["last_order_reference"] == last_ref
    assert s["live_orders_at_end"] == len(live)


def test_channels_partition_locates(day):
    _, s, _, _ = day
    chans = s["channels"]
    assert len(chans) == DAY["channels"]
    seen = []
    for i, ch in enumerate(chans):
        lo, hi = ch["locates"]
        seen += range(lo, hi + 1)
        assert ch["line_a"] == "233.54.12.%d:26477" % (111 + i)
        assert ch["line_b"] == "233.49.196.%d:26477" % (111 + i)
        assert len(ch["session"]) == 10 and ch["session"].isascii()
    assert sorted(seen) == list(range(1, DAY["symbols"] + 1))
    assert len({ch["session"] for ch in chans}) == len(chans)


def test_pcap_structure(day):
    _, s, _, pkts = day
    chans = {"233.54.12.%d" % (111 + i): ch for i, ch in enumerate(s["channels"])}
    assert {p[1] for p in pkts} == set(chans)
    assert len(pkts) == s["packets"]["a"]
    per = collections.defaultdict(list)
    for p in pkts:
        per[p[1]].append(p)
    total_hb = 0
    for group, ps in per.items():
        ch = chans[group]
        assert {p[2] for p in ps} == {ch["session"]}
        expect = 1
        eos = 0
        for ts, _, _, seq, count, msgs, _ in ps:
            assert eos == 0, "packet after end of session"
            assert seq == expect, "sequence gap on a lossless line"
            if count == 0xFFFF:
                eos += 1
            elif count == 0:
                total_hb += 1
            else:
                expect += count
                last_its = int.from_bytes(msgs[-1][5:11], "big")
                assert ts >= MIDNIGHT_NS + last_its, "captured before it was stamped"
                assert ts - (MIDNIGHT_NS + last_its) < 10**9
        assert eos == 1 and ps[-1][4] == 0xFFFF
        assert expect == ch["next_sequence"] == ch["messages"] + 1
    assert total_hb == s["heartbeats"] > 0
    # heartbeats fill idle seconds: none closer than 1 s to the channel's previous packet
    for ps in per.values():
        prev = None
        for ts, _, _, _, count, _, _ in ps:
            if count == 0 and prev is not None:
                assert ts - prev >= 10**9 - 10**6
            prev = ts


def test_bin_equals_pcap_line_a(day):
    _, s, msgs, pkts = day
    _check_bin_equals_pcap(s, msgs, pkts)


def _check_bin_equals_pcap(s, msgs, pkts):
    by_chan_bin = collections.defaultdict(list)
    for _, _, trk, _, m in msgs:
        by_chan_bin[trk].append(m)
    by_chan_pcap = collections.defaultdict(list)
    for i, ch in enumerate(s["channels"]):
        group = "233.54.12.%d" % (111 + i)
        for p in pkts:
            if p[1] == group and p[4] != 0xFFFF:
                by_chan_pcap[i + 1].extend(p[5])
    assert set(by_chan_bin) == set(by_chan_pcap)
    for c in by_chan_bin:
        assert by_chan_bin[c] == by_chan_pcap[c]


def test_small_payload_and_batch(tmp_path):
    prefix = str(tmp_path / "small")
    s = generate(
        prefix, messages=20_000, symbols=10, channels=1, seed=3, max_payload=200, batch_ns=5_000_000, progress=False
    )
    pkts = read_pcap(prefix + ".pcap", max_payload=200)
    assert s["max_payload"] == 200 and s["batch_ns"] == 5_000_000
    assert sum(p[4] for p in pkts if p[4] != 0xFFFF) == 20_000
    assert max(len(p[6]) for p in pkts) <= 200


@pytest.mark.slow
def test_lines_ab_with_loss(day, lossy):
    prefix, s, pkts = lossy
    assert s["lines"] == "ab"
    # loss never changes the messages
    assert open(prefix + ".bin", "rb").read() == open(day[0] + ".bin", "rb").read()
    a = [p for p in pkts if p[1].startswith("233.54.12.")]
    b = [p for p in pkts if p[1].startswith("233.49.196.")]
    assert len(a) == s["packets"]["a"] and len(b) == s["packets"]["b"]
    sent = s["packets_sent"]["a"]
    assert s["packets_sent"]["b"] == sent == day[1]["packets"]["a"]
    assert s["packets_lost"]["a"] + len(a) == sent and s["packets_lost"]["b"] + len(b) == sent
    assert abs(s["packets_lost"]["a"] / sent - 0.05) < 0.01
    assert abs(s["packets_lost"]["b"] / sent - 0.10) < 0.015
    # same data packet, same sequence and payload on both lines
    pa = {(p[2], p[3]): p for p in a if 0 < p[4] < 0xFFFF}
    pb = {(p[2], p[3]): p for p in b if 0 < p[4] < 0xFFFF}
    common = set(pa) & set(pb)
    assert len(common) > 0.8 * s["data_packets"]
    for k in common:
        assert pa[k][6] == pb[k][6]
        assert pb[k][0] > pa[k][0], "line B is later"
    # line A plus line B covers more of the day than either alone
    assert len(set(pa) | set(pb)) > max(len(pa), len(pb))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(symbols=0),
        dict(symbols=65536),
        dict(channels=0),
        dict(channels=65, symbols=100),
        dict(channels=5, symbols=4),
        dict(lines="c"),
        dict(loss_a=1.0),
        dict(loss_b=-0.1),
        dict(loss_a=float("nan")),
        dict(messages=10),
        dict(max_payload=10),
        dict(max_payload=100000),
        dict(messages=-1),
        dict(seed=1.5),
        dict(rate=999),
        dict(rate=100_000_001),
        dict(rate=-1),
        dict(rate=1.5),
        dict(rate=True),
        dict(messages=60_000_000, rate=1000),  # 60 000 s: longer than the day it compresses
    ],
)
def test_bad_arguments(tmp_path, kwargs):
    args = dict(messages=20_000, symbols=10, channels=1, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError):
        generate(str(tmp_path / "bad"), **args)
    assert not (tmp_path / "bad.json").exists()


def test_unwritable_output(tmp_path):
    with pytest.raises(OSError, match="cannot write"):
        generate(str(tmp_path / "no" / "such" / "dir" / "x"), messages=20_000, symbols=10, progress=False)


def test_decoder_agrees(day, lossy):
    """The C decoder counts the same messages in the lossless pcap, the BinaryFILE
    and the A+B pcap whose losses the other line covers."""
    replay = pytest.importorskip("feedhandler.replay").replay
    prefix, s, _, _ = day
    from_pcap = replay([prefix + ".pcap"], progress=False).stats
    from_bin = replay([prefix + ".bin"], progress=False).stats
    assert from_pcap["by_type"] == from_bin["by_type"] == s["by_type"]
    assert from_pcap["gaps"] == 0 and from_pcap["end_of_session"] == DAY["channels"]
    both = replay([lossy[0] + ".pcap"], progress=False).stats
    assert both["messages"] + both["gaps"] == DAY["messages"]


# ------------------------------------------------------------- book never crossed


def _check_uncrossed(path):
    """Replay a BinaryFILE through a minimal book of our own (price -> order count
    per instrument and side) and assert, after every message, that no book is
    crossed or locked (best bid < best ask whenever both sides hold orders), and
    that every execution (E, C) takes the best price of its side, oldest first."""
    data = open(path, "rb").read()
    orders = {}  # ref -> [locate, side (0 bid, 1 ask), price, shares]
    levels = collections.defaultdict(dict)  # (locate, side) -> {price: [refs, oldest first]}
    checked = 0

    def remove(ref):
        loc, side, price, _ = orders.pop(ref)
        lv = levels[(loc, side)]
        lv[price].remove(ref)
        if not lv[price]:
            del lv[price]

    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        m = data[pos + 2 : pos + 2 + n]
        pos += 2 + n
        t = chr(m[0])
        if t in "AF":
            ref, side, shares = struct.unpack_from(">QcI", m, 11)
            price = struct.unpack_from(">I", m, 32)[0]
            loc = struct.unpack_from(">H", m, 1)[0]
            s = side == b"S"
            orders[ref] = [loc, s, price, shares]
            levels[(loc, s)].setdefault(price, []).append(ref)
        elif t == "D":
            (ref,) = struct.unpack_from(">Q", m, 11)
            loc = orders[ref][0]
            remove(ref)
        elif t in "ECX":
            ref, x = struct.unpack_from(">QI", m, 11)
            o = orders[ref]
            loc = o[0]
            if t != "X":
                lv = levels[(loc, o[1])]
                best = min(lv) if o[1] else max(lv)
                assert o[2] == best, "%s at %d, not at the best price %d" % (t, o[2], best)
                assert lv[best][0] == ref, "%s not on the oldest order at the best price" % t
            o[3] -= x
            assert o[3] >= 0
            if o[3] == 0:
                remove(ref)
        elif t == "U":
            old, new, shares, price = struct.unpack_from(">QQII", m, 11)
            loc, s = orders[old][0], orders[old][1]
            remove(old)
            orders[new] = [loc, s, price, shares]
            levels[(loc, s)].setdefault(price, []).append(new)
        else:
            continue
        bids, asks = levels[(loc, False)], levels[(loc, True)]
        if bids and asks:
            bb, ba = max(bids), min(asks)
            assert bb < ba, "locate %d crossed or locked after message %d (%s): bid %d >= ask %d" % (
                loc,
                checked,
                t,
                bb,
                ba,
            )
        checked += 1
    return checked


@pytest.mark.parametrize("seed,symbols,channels", [(31, 5, 1), (32, 50, 3), (33, 50, 1), (34, 5, 3)])
def test_books_never_crossed(tmp_path, seed, symbols, channels):
    """The day's books are never crossed or locked, for any instrument, after
    any message: adds and replaces are passive, executions hit the best level."""
    prefix = str(tmp_path / "day")
    s = generate(prefix, messages=100_000, symbols=symbols, channels=channels, seed=seed, progress=False)
    assert _check_uncrossed(prefix + ".bin") > 0.9 * s["messages"]


# ------------------------------------------------------------- flat-rate days

RATE = 1_000_000
RATE_DAY = dict(messages=200_000, symbols=50, channels=2, seed=21, rate=RATE)


@pytest.fixture(scope="module")
def rate_day(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("gen") / "rate")
    summary = generate(prefix, progress=False, **RATE_DAY)
    return prefix, summary, read_bin(prefix + ".bin"), read_pcap(prefix + ".pcap")


def test_rate_day_is_paced(rate_day):
    """A replay paced to the capture sees the asked rate throughout: the capture
    lasts messages / rate, no 20 ms window runs far above or below the rate, no
    packet waits long for the one before, and packets carry a few messages each."""
    _, s, msgs, pkts = rate_day
    want = RATE_DAY["messages"] / RATE * 1e9  # 0.2 s
    assert s["rate"] == RATE and s["batch_ns"] == 2000  # the rate mode's own window
    ts = [p[0] for p in pkts]
    assert abs((ts[-1] - ts[0]) - want) <= 0.15 * want, (ts[-1] - ts[0]) / 1e9
    assert abs((msgs[-1][3] - msgs[0][3]) - want) <= 0.15 * want
    assert (s["first_ts"], s["last_ts"]) == (msgs[0][3], msgs[-1][3])
    assert s["first_capture_ns"] == ts[0] and s["last_capture_ns"] == ts[-1]
    gap = max(b - a for a, b in zip(ts, ts[1:]))
    assert gap <= 5_000_000, "a %.1f ms wait in the capture" % (gap / 1e6)
    assert s["heartbeats"] == 0  # never a second idle
    # messages per sliding 20 ms window of capture time: flat, neither bursts of
    # several times the rate nor lulls (the normal day's U shape, compressed,
    # peaks near 3x and sinks to ~1% of the rate before the open)
    at = [p[0] for p in pkts for _ in range(p[4] if p[4] != 0xFFFF else 0)]
    window = 20_000_000
    per_window = RATE * window / 1e9
    counts = [bisect.bisect_left(at, t + window) - i for i, t in enumerate(at) if t + window <= at[-1]]
    assert max(counts) <= 2 * per_window, max(counts)
    assert min(counts) >= per_window / 2, min(counts)
    data = [p for p in pkts if 0 < p[4] < 0xFFFF]
    mean = sum(p[4] for p in data) / len(data)
    assert 1.5 <= mean <= 10, mean
    assert abs(s["messages_per_packet"]["mean"] - mean) < 1e-3


def test_rate_day_is_a_valid_day(rate_day):
    """Everything the normal day guarantees still holds when compressed: counts,
    every type, time order, live references, books never crossed, pcap = file."""
    prefix, s, msgs, pkts = rate_day
    assert len(msgs) == RATE_DAY["messages"] == s["messages"]
    by_type = collections.Counter(m[0] for m in msgs)
    assert dict(by_type) == s["by_type"]
    for t in "AFDUEXCPQBI" + ADMIN:
        assert by_type[t] > 0, "type %s missing" % t
    assert [m[3] for m in msgs] == sorted(m[3] for m in msgs), "BinaryFILE not in timestamp order"
    _check_references(s, msgs)
    _check_bin_equals_pcap(s, msgs, pkts)
    assert _check_uncrossed(prefix + ".bin") > 0.9 * s["messages"]
    # the books keep the normal day's clock (ages, the close wave) at the same
    # share of the flow: deep levels, old cancels, live orders peak before the end
    bs = s["book_stats"]
    assert set(bs) == BOOK_STATS and bs["levels_per_side_p99"] >= 20 and bs["old_cancel_share"] > 0.02
    assert s["live_orders_at_end"] < 0.6 * bs["peak_live_orders"]
    per = collections.defaultdict(list)
    for p in pkts:
        per[p[1]].append(p)
    for i, ch in enumerate(s["channels"]):
        ps = per["233.54.12.%d" % (111 + i)]
        assert sum(p[4] for p in ps[:-1]) == ch["messages"] and ps[-1][4] == 0xFFFF


def test_rate_day_keeps_the_schedule(rate_day):
    """The schedule is compressed with the flow: start of day and the directory
    before the first order, the crosses where 09:30 and 16:00 fall in the window,
    end of system hours and end of messages after the last order."""
    _, s, msgs, _ = rate_day
    flow = [m[3] for m in msgs if m[0] in "AFDUEXCP"]
    t0, t1 = min(flow), max(flow)
    span = t1 - t0
    first_order = next(i for i, m in enumerate(msgs) if m[0] in "AFDUEXCP")
    last_order = max(i for i, m in enumerate(msgs) if m[0] in "AFDUEXCP")
    assert {m[1] for m in msgs[:first_order] if m[0] == "R"} == set(range(1, RATE_DAY["symbols"] + 1))
    for trk in range(1, RATE_DAY["channels"] + 1):
        ev = [(chr(m[4][11]), i, m[3]) for i, m in enumerate(msgs) if m[0] == "S" and m[2] == trk]
        assert [e for e, _, _ in ev] == list("OSQMEC")
        assert ev[0][1] < first_order and ev[4][1] > last_order
        # 09:30 and 16:00 are 5.5 h and 12 h into the normal day's 16 hours of flow
        for (_, _, when), frac in ((ev[2], 5.5 / 16), (ev[3], 12 / 16)):
            assert abs((when - t0) / span - frac) < 0.01, ((when - t0) / span, frac)
    assert msgs[-1][0] == "S" and chr(msgs[-1][4][11]) == "C"
    # no idle stretch before the first order or after the last: the start-of-day
    # block and end of day sit at the window's edges, not an hour before or
    # five minutes after in proportion
    assert msgs[0][3] >= t0 - span // 1000 and msgs[-1][3] <= t1 + span // 1000


def test_rate_above_burst_capacity_stays_flat(tmp_path):
    """At 20 M msgs/s bursts' own spacing (~360 ns a message) would not fit between
    their start times; it shrinks, so the day still lasts messages / rate and
    the flow is not piled up at the window's end."""
    prefix = str(tmp_path / "fast")
    generate(prefix, messages=100_000, symbols=20, seed=4, rate=20_000_000, progress=False)
    ts = [m[3] for m in read_bin(prefix + ".bin")]
    t0, t1 = ts[0], ts[-1]
    assert abs((t1 - t0) - 5_000_000) <= 0.15 * 5_000_000
    tenths = collections.Counter(min(9, (t - t0) * 10 // (t1 - t0)) for t in ts)
    assert all(0.08 * len(ts) <= tenths[k] <= 0.12 * len(ts) for k in range(10)), sorted(tenths.items())


def test_rate_explicit_batch_wins(tmp_path):
    prefix = str(tmp_path / "batch")
    s = generate(prefix, messages=50_000, symbols=20, seed=5, rate=RATE, batch_ns=20_000, progress=False)
    assert s["rate"] == RATE and s["batch_ns"] == 20_000
    small = generate(str(tmp_path / "small"), messages=50_000, symbols=20, seed=5, rate=RATE, progress=False)
    assert small["batch_ns"] == 2000
    assert s["messages_per_packet"]["mean"] > 2 * small["messages_per_packet"]["mean"]
    # the packetiser window changes packets only, never the messages
    assert open(prefix + ".bin", "rb").read() == open(str(tmp_path / "small.bin"), "rb").read()


@pytest.mark.parametrize(
    "rate,needle",
    [
        ("999", "rate must be 0 (the normal day) or 1000..100000000"),
        ("100000001", "rate must be 0 (the normal day) or 1000..100000000"),
        ("-5", "must not be negative"),
        ("fast", "not an integer"),
    ],
)
def test_cli_rate_errors(tmp_path, rate, needle):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            str(tmp_path / "x"),
            "--messages",
            "20000",
            "--symbols",
            "10",
            "--rate",
            rate,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_rate_day(tmp_path):
    prefix = str(tmp_path / "r")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            prefix,
            "--messages",
            "20000",
            "--symbols",
            "10",
            "--rate",
            "500000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    s = json.load(open(prefix + ".json"))
    assert s["rate"] == 500_000 and s["batch_ns"] == 2000
    assert abs((s["last_ts"] - s["first_ts"]) - 40_000_000) < 0.15 * 40_000_000


# ------------------------------------------------------ what a book has to do

HOUR = 3600 * 10**9
BOOK_STATS = {
    "peak_live_orders",
    "levels_per_side_mean",
    "levels_per_side_p99",
    "top5_share",
    "old_cancel_share",
    "top300_message_share",
}


def _tick(price):
    return 100 if price >= 10000 else 1


def _book_walk(msgs, sample_every):
    """Replay the order flow through our own per-side sorted price levels and
    measure, independently of the C code, what PREFIX.json's book_stats says:
    live orders at their peak, where each D X E C U's order sat (levels from the
    best of its side), how old the order each D X U names is, levels per
    non-empty side after every `sample_every` flow messages, flow per
    instrument.  Also every order's life (add to removal) and how far from its
    side's best it was placed."""
    orders = {}  # ref -> [locate, side, price, shares, index in lives]
    prices = collections.defaultdict(list)  # (locate, side) -> sorted distinct prices
    count = collections.Counter()  # (locate, side, price) -> orders
    lives = []  # [added ts, ticks worse than its side's best or None, removed ts]
    live = peak = touched = top5 = cancels = old = old_before_close = nflow = 0
    samples = []
    old_deep = [0, 0]  # old deep orders cancelled from 15:45 on, before
    flow = collections.Counter()
    max_levels = 0
    ts = 0

    def insert(ref, loc, side, price, shares):
        nonlocal live, peak, max_levels
        p = prices[(loc, side)]
        away = None
        if p:
            best = p[-1] if side == 0 else p[0]
            away = (best - price if side == 0 else price - best) // _tick(best)
        if count[(loc, side, price)] == 0:
            bisect.insort(p, price)
            max_levels = max(max_levels, len(p))
        count[(loc, side, price)] += 1
        orders[ref] = [loc, side, price, shares, len(lives)]
        lives.append([ts, away, None])
        live += 1
        peak = max(peak, live)

    def remove(ref):
        nonlocal live
        loc, side, price, _, k = orders.pop(ref)
        count[(loc, side, price)] -= 1
        if count[(loc, side, price)] == 0:
            p = prices[(loc, side)]
            del p[bisect.bisect_left(p, price)]
        lives[k][2] = ts
        live -= 1

    for t, loc, _, ts, m in msgs:
        if t not in "AFDUEXCP":
            continue
        flow[loc] += 1
        if t in "AF":
            ref, side, shares = struct.unpack_from(">QcI", m, 11)
            insert(ref, loc, int(side == b"S"), struct.unpack_from(">I", m, 32)[0], shares)
        elif t != "P":
            ref = struct.unpack_from(">Q", m, 11)[0]
            o = orders[ref]
            p = prices[(o[0], o[1])]
            rank = len(p) - bisect.bisect_right(p, o[2]) if o[1] == 0 else bisect.bisect_left(p, o[2])
            touched += 1
            top5 += rank < 5
            if t in "DXU":
                cancels += 1
                if ts - lives[o[4]][0] > HOUR:
                    old += 1
                    before_close = ts < 15 * HOUR + 45 * 60 * 10**9
                    old_before_close += before_close
                    if (lives[o[4]][1] or 0) >= 10:
                        old_deep[before_close] += 1
            if t == "D":
                remove(ref)
            elif t in "ECX":
                o[3] -= struct.unpack_from(">I", m, 19)[0]
                if o[3] == 0:
                    remove(ref)
            else:
                new, shares, price = struct.unpack_from(">QII", m, 19)
                remove(ref)
                insert(new, loc, o[1], price, shares)
        nflow += 1
        if nflow % sample_every == 0:
            samples += [len(p) for p in prices.values() if p]
    samples.sort()
    counts = sorted(flow.values(), reverse=True)
    return dict(
        peak=peak,
        live_end=live,
        top5=top5 / touched,
        old=old / cancels,
        old_n=old,
        old_before_close=old_before_close,
        old_deep=old_deep,
        cancels=cancels,
        levels_mean=sum(samples) / len(samples),
        levels_p99=samples[len(samples) - len(samples) // 100 - 1],
        top300=sum(counts[:300]) / sum(counts),
        flow=flow,
        lives=lives,
        end=ts,
        max_levels=max_levels,
    )


def _level_every(s):
    """The generator's sampling interval for levels per side (gen.h)."""
    return max(256, min(65536, s["flow_messages"] // 256))


@pytest.fixture(scope="module")
def walked(day):
    _, s, msgs, _ = day
    return _book_walk(msgs, _level_every(s))


def test_book_stats_match_the_file(day, walked):
    """book_stats in PREFIX.json is what the day's books did, to the message."""
    _, s, _, _ = day
    bs, w = s["book_stats"], walked
    assert set(bs) == BOOK_STATS
    assert bs["peak_live_orders"] == w["peak"]
    assert s["live_orders_at_end"] == w["live_end"]
    assert bs["levels_per_side_p99"] == w["levels_p99"]
    assert abs(bs["levels_per_side_mean"] - w["levels_mean"]) < 1e-4
    assert abs(bs["top5_share"] - w["top5"]) < 1e-6
    assert abs(bs["old_cancel_share"] - w["old"]) < 1e-6
    assert bs["top300_message_share"] == 1.0 == w["top300"]  # 60 instruments: all of them
    # plausible: books several levels deep, most of the flow at the touch
    assert 1 <= bs["levels_per_side_mean"] <= bs["levels_per_side_p99"] <= w["max_levels"]
    assert 0.8 < bs["top5_share"] < 0.99


def test_deep_resting_orders(walked):
    """A share of adds rests well away from the touch (tens to hundreds of
    ticks), and most of those rest for hours: the books get deep levels and the
    live orders are not only young ones."""
    w = walked
    placed = [lv for lv in w["lives"] if lv[1] is not None]
    deep = [lv for lv in placed if lv[1] >= 10]
    assert len(deep) >= 0.02 * len(placed), (len(deep), len(placed))
    assert sum(1 for lv in placed if lv[1] >= 100) >= 0.005 * len(placed)
    # placed before noon: most still there two hours later (or at the end of the day)
    early = [lv for lv in deep if lv[0] < 12 * HOUR]
    rested = [lv for lv in early if (lv[2] if lv[2] is not None else w["end"]) - lv[0] >= 2 * HOUR]
    assert len(rested) >= 0.6 * len(early), (len(rested), len(early))
    assert w["max_levels"] >= 25


def test_old_orders_get_cancelled(day, walked):
    """Cancels (D, X, U) name old orders too, not only young ones near the
    touch: deep orders an hour old and more are cancelled through the day (a
    live order of the instrument drawn uniformly) and in a wave into the close,
    when day orders are pulled, so live orders peak before the end."""
    _, s, _, _ = day
    w = walked
    assert w["old"] >= 0.06
    close, during = w["old_deep"]
    # without the uniform picks of the day these are ~30 (deep orders the price
    # came to), without the close wave under 10
    assert during >= 45, w["old_deep"]
    assert close >= 100, w["old_deep"]
    assert s["live_orders_at_end"] < 0.85 * s["book_stats"]["peak_live_orders"]


def test_zipf_concentration(tmp_path):
    """Activity is Zipf-like over instruments, 1 / (rank + 8)^1.25: on 2 000
    instruments the 300 most active carry ~80% of the order flow and the
    busiest (AAPL) ~4.6%."""
    prefix = str(tmp_path / "zipf")
    s = generate(prefix, messages=200_000, symbols=2000, channels=2, seed=5, progress=False)
    msgs = read_bin(prefix + ".bin")
    w = _book_walk(msgs, _level_every(s))
    assert abs(s["book_stats"]["top300_message_share"] - w["top300"]) < 1e-6
    weights = [1 / (r + 8) ** 1.25 for r in range(2000)]
    want = sum(weights[:300]) / sum(weights)
    assert abs(w["top300"] - want) < 0.02, (w["top300"], want)
    loc, n = w["flow"].most_common(1)[0]
    assert s["symbols"][str(loc)] == "AAPL"
    assert abs(n / sum(w["flow"].values()) - weights[0] / sum(weights)) < 0.01
    assert s["book_stats"]["peak_live_orders"] == w["peak"] and s["pool_full_events"] == 0
