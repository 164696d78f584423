"""The generator's Cboe Multicast PITCH days (feedhandler gen --protocol pitch).

Every datagram of the small days is dissected with feedhandler.scapy_pitch (the
layers written from docs/pitch-spec-notes.md, independent of the C code); the
larger all-types day is walked with struct (scapy would take minutes on it).
"""

from __future__ import annotations

import collections
import hashlib
import json
import platform
import struct
import subprocess
import sys

import pytest

pytest.importorskip("scapy")

from feedhandler.gen import generate  # noqa: E402
from feedhandler.scapy_pitch import PITCH_LENGTHS, PitchUnitHeader  # noqa: E402

MIDNIGHT_NS = 1795582800000000000
PORT = 30001
NS = 10**9
ORDER_TYPES = {0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29}
ADD_TYPES = {0x21, 0x22, 0x2F}


# ------------------------------------------------------------------ parsers


def read_frames(path):
    """[(capture ns, dst group, udp dport, ip id, udp payload)], checking the frame basics."""
    data = open(path, "rb").read()
    magic, vmaj, vmin, _, _, snap, link = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, vmaj, vmin, snap, link) == (0xA1B23C4D, 2, 4, 65535, 1)
    pos, out, last = 24, [], 0
    while pos < len(data):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", data, pos)
        f = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        assert incl == orig == len(f) and incl <= 1400
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


def walk(payload):
    """(length, count, unit, sequence, [(type, message bytes)]) by struct."""
    length, count, unit, seq = struct.unpack_from("<HBBI", payload, 0)
    msgs, p = [], 8
    while p < len(payload):
        n = payload[p]
        msgs.append((payload[p + 1], payload[p : p + n]))
        p += n
    return length, count, unit, seq, msgs


def dissect(payload):
    """The same by scapy: the header and its message layers."""
    h = PitchUnitHeader(payload)
    return h.length, h.count, h.unit, h.sequence, list(h.messages)


def group_of(unit, channels, line="a"):
    k = (unit - 1) % channels
    return ("224.0.62.%d" if line == "a" else "233.19.3.%d") % (2 + k)


def sym(b):
    return bytes(b).rstrip(b" ").decode()


# ----------------------------------------------------------------- fixtures

SMALL = dict(messages=6_000, symbols=24, units=4, channels=2, seed=7, heartbeat_ms=20_000)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("pitch") / "small")
    summary = generate(prefix, protocol="pitch", lines="ab", progress=False, **SMALL)
    frames = read_frames(prefix + ".pcap")
    return prefix, summary, frames


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    # ~200k messages, the default 32 units; long heartbeats keep the file small
    prefix = str(tmp_path_factory.mktemp("pitch") / "big")
    summary = generate(
        prefix, protocol="pitch", messages=200_000, symbols=100, seed=1, heartbeat_ms=600_000, progress=False
    )
    return prefix, summary, read_frames(prefix + ".pcap")


# -------------------------------------------------------------------- tests


def test_summary(small):
    prefix, s, frames = small
    assert s["protocol"] == "pitch" and s["unit_count"] == 4 and s["channel_count"] == 2
    assert s["messages_without_time"] == SMALL["messages"]
    assert s["messages"] == SMALL["messages"] + s["time_messages"] == sum(s["by_type"].values())
    assert s["udp_port"] == PORT and s["seed"] == 7 and s["elapsed_s"] > 0
    assert set(s["files"]) == {"pcap", "json"}
    import os

    assert not os.path.exists(prefix + ".bin")
    assert all(k == "0x%02x" % int(k, 16) for k in s["by_type"])
    assert s["end_of_session"] == 4 and s["by_type"]["0x2d"] == 4


def test_every_datagram_dissects(small):
    """Header length, count, per-message lengths; scapy agrees with the struct walk."""
    _, s, frames = small
    counts = collections.Counter()
    for _, dst, dport, _, payload in frames:
        assert dport == PORT
        length, count, unit, seq, msgs = dissect(payload)
        assert length == len(payload) and count == len(msgs) <= 255
        assert 1 <= unit <= 4 and dst == group_of(unit, 2, "a" if dst.startswith("224.") else "b")
        w = walk(payload)
        assert w[:4] == (length, count, unit, seq) and len(w[4]) == len(msgs)
        for m, (t, raw) in zip(msgs, w[4]):
            assert type(m).__name__ != "PitchUnknown", m
            assert m.message_type == t and m.length == PITCH_LENGTHS[t] == len(raw)
            assert bytes(m) == raw
            if dst.startswith("224."):
                counts["0x%02x" % t] += 1
    assert dict(counts) == s["by_type"]


def _line(frames, prefix):
    return [f for f in frames if f[1].startswith(prefix)]


def test_sequences_heartbeats_and_time(small):
    _, s, frames = small
    nxt = collections.defaultdict(lambda: 1)
    tbase, last_ts = {}, {}
    hb = 0
    for cap, _, _, _, payload in _line(frames, "224."):
        length, count, unit, seq, msgs = dissect(payload)
        assert seq == nxt[unit], (unit, seq, nxt[unit])
        if count == 0:
            hb += 1
            continue
        nxt[unit] += count
        for m in msgs:
            if m.message_type == 0x20:
                assert unit not in tbase or m.time_seconds * NS >= tbase[unit]
                tbase[unit] = m.time_seconds * NS
                continue
            assert unit in tbase, "a message before the unit's first Time"
            assert m.time_offset < NS
            ts = tbase[unit] + m.time_offset
            assert ts >= last_ts.get(unit, 0)
            last_ts[unit] = ts
            assert cap >= MIDNIGHT_NS + ts
    assert hb == s["heartbeats"] > 0
    assert [u["next_sequence"] for u in s["units"]] == [nxt[u] for u in range(1, 5)]


def _replay(frames_a, units_of=None):
    """Play the order messages of line A through a book keyed by order id and
    check every reference; returns the counters of what was seen."""
    live = {}  # id -> [unit, qty, price]
    seen_ids, execs = set(), set()
    adds = []
    stats = collections.Counter()
    tbase = {}
    for _, _, _, _, payload in frames_a:
        _, _, unit, _, msgs = walk(payload)
        for t, m in msgs:
            if t == 0x20:
                tbase[unit] = struct.unpack_from("<I", m, 2)[0] * NS
                continue
            ts = tbase[unit] + struct.unpack_from("<I", m, 2)[0]
            if t in ADD_TYPES:
                oid = struct.unpack_from("<Q", m, 6)[0]
                if t == 0x22:
                    qty, symb, px = (
                        struct.unpack_from("<H", m, 15)[0],
                        m[17:23],
                        struct.unpack_from("<H", m, 23)[0] * 100,
                    )
                elif t == 0x21:
                    qty, symb, px = struct.unpack_from("<I", m, 15)[0], m[19:25], struct.unpack_from("<Q", m, 25)[0]
                else:
                    qty, symb, px = struct.unpack_from("<I", m, 15)[0], m[19:27], struct.unpack_from("<Q", m, 27)[0]
                assert oid > 2**40 and oid not in seen_ids
                assert chr(m[14]) in "BS" and qty > 0 and 0 < px < 2**32
                seen_ids.add(oid)
                live[oid] = [unit, qty, px]
                adds.append((ts, oid))
                name = sym(symb)
                short_ok = qty <= 65535 and px % 100 == 0 and px <= 6553500 and len(name) <= 6
                if t == 0x22:
                    assert short_ok
                elif t == 0x21:
                    assert not short_ok and len(name) <= 6
                else:
                    stats["expanded_add"] += 1
                    assert len(name) > 6 or m[36:40] != b"    "
                if units_of is not None:
                    assert units_of[name] == unit
                continue
            if t in ORDER_TYPES:
                oid = struct.unpack_from("<Q", m, 6)[0]
                assert oid in live, "0x%02x names a dead order" % t
                o = live[oid]
                assert o[0] == unit, "order of another unit"
                if t == 0x23:
                    x, e = struct.unpack_from("<IQ", m, 14)
                    assert 0 < x <= o[1]
                    o[1] -= x
                    execs.add(e)
                elif t == 0x24:
                    x, rem, e, px = struct.unpack_from("<IIQQ", m, 14)
                    assert 0 < x <= o[1] and rem == o[1] - x and px < 2**32
                    o[1] = rem
                    execs.add(e)
                elif t in (0x25, 0x26):
                    x = struct.unpack_from("<I" if t == 0x25 else "<H", m, 14)[0]
                    assert 0 < x < o[1]
                    o[1] -= x
                elif t in (0x27, 0x28):
                    if t == 0x27:
                        qty, px, fl = struct.unpack_from("<IQB", m, 14)
                    else:
                        qty, px, fl = struct.unpack_from("<HHB", m, 14)
                        px *= 100
                    keep = px == o[2] and qty <= o[1]
                    assert fl & 1 and bool(fl & 2) == keep
                    assert px < 2**32 and qty > 0
                    o[1], o[2] = qty, px
                    stats["keep" if keep else "lose"] += 1
                elif t == 0x29:
                    o[1] = 0
                if o[1] == 0:
                    del live[oid]
                continue
            if t in (0x2A, 0x2B, 0x30):
                e = struct.unpack_from("<Q", m, len(m) - 8)[0]
                assert e not in execs
                execs.add(e)
            elif t == 0x2C:
                assert struct.unpack_from("<Q", m, 6)[0] in execs, "trade break of an unknown execution"
    # order ids increase with time across the venue (a later id is never stamped earlier)
    adds.sort(key=lambda a: a[1])
    times = [a[0] for a in adds]
    assert times == sorted(times)
    return stats


def test_orders_reference_live_orders(small):
    _, s, frames = small
    units_of = {}
    for u in s["units"]:
        lo, hi = u["symbols"] or (1, 0)
        for i in range(lo, hi + 1):
            units_of[s["symbols"][str(i)]] = u["unit"]
    # contiguous alphabetical ranges, unit 1 + i * units / symbols
    names = [s["symbols"][str(i)] for i in range(1, s["symbol_count"] + 1)]
    assert names == sorted(names, key=lambda n: n.ljust(8).encode())
    for i, n in enumerate(names):
        assert units_of[n] == 1 + i * 4 // len(names)
    st = _replay(_line(frames, "224."), units_of)
    assert st["keep"] > 0 and st["lose"] > 0


def test_line_b_carries_the_same_datagrams(small):
    _, s, frames = small
    a, b = _line(frames, "224."), _line(frames, "233.")
    assert len(a) == len(b) == s["packets"]["a"] == s["packets"]["b"]
    assert [f[4] for f in a] == [f[4] for f in b]
    for fa, fb in zip(a, b):
        unit = fa[4][3]
        assert fa[1] == group_of(unit, 2, "a") and fb[1] == group_of(unit, 2, "b")


def test_deterministic(small, tmp_path):
    prefix, _, _ = small
    again = str(tmp_path / "again")
    generate(again, protocol="pitch", lines="ab", progress=False, **SMALL)
    for ext in (".pcap", ".json"):
        assert (
            hashlib.sha256(open(prefix + ext, "rb").read()).hexdigest()
            == hashlib.sha256(open(again + ext, "rb").read()).hexdigest()
        )
    other = str(tmp_path / "other")
    generate(other, protocol="pitch", lines="ab", progress=False, **dict(SMALL, seed=8))
    assert open(prefix + ".pcap", "rb").read() != open(other + ".pcap", "rb").read()


def test_loss_counts_match_the_pcap(small, tmp_path):
    prefix = str(tmp_path / "lossy")
    s = generate(prefix, protocol="pitch", lines="ab", loss_a=0.05, loss_b=0.10, progress=False, **SMALL)
    frames = read_frames(prefix + ".pcap")
    a, b = _line(frames, "224."), _line(frames, "233.")
    assert len(a) == s["packets"]["a"] and len(b) == s["packets"]["b"]
    sent = s["packets_sent"]["a"]
    assert sent == s["packets_sent"]["b"] < 65536  # IP ids do not wrap
    assert s["packets_lost"]["a"] == sent - len(a) > 0
    assert s["packets_lost"]["b"] == sent - len(b) > 0
    ids_a, ids_b = {f[3] for f in a}, {f[3] for f in b}
    both = sum(1 for k in range(1, sent + 1) if k not in ids_a and k not in ids_b)
    assert s["packets_lost"]["both"] == both > 0
    # loss never changes the messages: the lossless day's datagrams, less the lost ones
    clean = [f[4] for f in _line(small[2], "224.")]
    assert len(clean) == sent
    for f in a:
        assert f[4] == clean[f[3] - 1]


def test_all_types_on_a_200k_day(big):
    _, s, frames = big
    assert set(s["by_type"]) == {"0x%02x" % t for t in PITCH_LENGTHS if t != 0x97}
    counts = collections.Counter()
    nxt = collections.defaultdict(lambda: 1)
    for _, dst, _, _, payload in frames:
        length, count, unit, seq, msgs = walk(payload)
        assert length == len(payload) and count == len(msgs)
        assert seq == nxt[unit] and dst == group_of(unit, 1)
        nxt[unit] += count
        for t, m in msgs:
            assert len(m) == PITCH_LENGTHS[t]
            counts["0x%02x" % t] += 1
    assert dict(counts) == s["by_type"]
    _replay(frames)


def test_long_symbols_use_expanded_messages(big):
    _, s, frames = big
    longs = {n for n in s["symbols"].values() if len(n) > 6}
    assert longs
    expanded = set()
    for _, _, _, _, payload in frames:
        for t, m in walk(payload)[4]:
            if t in (0x2F, 0x30):
                expanded.add(sym(m[19:27]))
            elif t in (0x21, 0x22, 0x2A, 0x2B):
                assert len(sym(m[17:23] if t in (0x22, 0x2B) else m[19:25])) <= 6
    assert longs <= expanded


def test_itch_unchanged(tmp_path):
    """ITCH output of the same options as before PITCH existed (sha256 recorded on
    x86-64 before the change) and its JSON carries no PITCH keys."""
    prefix = str(tmp_path / "itch")
    s = generate(prefix, messages=30_000, symbols=20, seed=5, rate=100_000, progress=False)
    assert s["protocol"] == "itch" and set(s["files"]) == {"pcap", "bin", "json"}
    raw = json.load(open(prefix + ".json"))
    assert "protocol" not in raw and "unit_count" not in raw
    assert raw["messages"] == 30_000 and all(len(k) == 1 for k in raw["by_type"])
    if platform.machine() in ("x86_64", "AMD64"):
        sha = lambda ext: hashlib.sha256(open(prefix + ext, "rb").read()).hexdigest()  # noqa: E731
        assert sha(".pcap") == "3cd8d1155ae383038b49e98386db035d478160b20766bc77d78ea423728297b8"
        assert sha(".bin") == "bc0a962ef16427e202172bdd7350a62889ae412232e63eb9f07d13f693d66445"
        assert sha(".json") == "d56a35b061c21601154051fda7a7c779d5b3f24bf65f6de3619b00c71b31ba49"


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(units=33), "units must be 1..32"),
        (dict(units=1, symbols=385), "raise --units"),
        (dict(units=2, channels=3), "channels"),
        (dict(units=4, protocol="itch"), "units is for protocol 'pitch' only"),
    ],
)
def test_bad_pitch_arguments(tmp_path, kwargs, needle):
    args = dict(messages=20_000, symbols=10, protocol="pitch", progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        generate(str(tmp_path / "bad"), **args)
    assert not (tmp_path / "bad.json").exists()


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", "gen", "-q", *argv], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--protocol", "pitch", "--units", "0"], "must be positive"),
        (["--protocol", "pitch", "--units", "33"], "units must be 1..32"),
        (["--protocol", "pitch", "--units", "1", "--symbols", "400"], "raise --units"),
        (["--units", "4"], "--units is for --protocol pitch only"),
    ],
)
def test_cli_errors(tmp_path, extra, needle):
    p = _cli("--out", str(tmp_path / "x"), "--messages", "20000", "--symbols", "10", *extra)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_pitch_day(tmp_path):
    prefix = str(tmp_path / "c")
    p = _cli(
        "--protocol",
        "pitch",
        "--out",
        prefix,
        "--messages",
        "20000",
        "--symbols",
        "40",
        "--units",
        "8",
        "--channels",
        "4",
        "--heartbeat-ms",
        "60000",
    )
    assert p.returncode == 0, p.stderr
    assert ".pcap" in p.stdout and ".bin" not in p.stdout and "unit" in p.stdout
    s = json.load(open(prefix + ".json"))
    assert s["protocol"] == "pitch" and s["unit_count"] == 8 and s["channel_count"] == 4
    assert [u["line_a"] for u in s["units"]] == ["224.0.62.%d:30001" % (2 + (u % 4)) for u in range(8)]
    h = _cli("--help")
    assert "pitch" in h.stdout and "--units" in h.stdout


def _payloads(path):
    data, pos, out = open(path, "rb").read(), 24, []
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos + 16 + 42 : pos + 16 + incl])
        pos += 16 + incl
    return out


@pytest.mark.parametrize("max_payload,rate,batch_ns", [(8972, 10_000_000, 4_000_000_000), (72, 0, 0)])
def test_payload_limits_and_count_byte(tmp_path, max_payload, rate, batch_ns):
    """Datagrams never exceed --max-payload nor 255 messages (Hdr Count is one byte)."""
    prefix = str(tmp_path / "p")
    s = generate(
        prefix,
        protocol="pitch",
        messages=100_000 if rate else 20_000,
        symbols=8,
        units=1,
        max_payload=max_payload,
        batch_ns=batch_ns,
        rate=rate,
        heartbeat_ms=600_000,
        progress=False,
    )
    nxt, counts = 1, collections.Counter()
    for p in _payloads(prefix + ".pcap"):
        length, count, unit, seq, msgs = walk(p)
        assert length == len(p) <= max_payload and count == len(msgs) <= 255 and unit == 1
        assert seq == nxt
        nxt += count
        counts.update("0x%02x" % t for t, _ in msgs)
    assert dict(counts) == s["by_type"]
    if rate:
        assert s["messages_per_packet"]["max"] == 255


def test_rate_day(tmp_path):
    prefix = str(tmp_path / "r")
    s = generate(prefix, protocol="pitch", messages=50_000, symbols=40, units=8, rate=500_000, progress=False)
    assert s["rate"] == 500_000 and s["batch_ns"] == 2000
    assert abs((s["last_ts"] - s["first_ts"]) - 100_000_000) < 0.15 * 100_000_000
    _replay([(0, "", 0, 0, p) for p in _payloads(prefix + ".pcap")])


def test_core_pitch_decoder_agrees(small):
    """The feed handler's PITCH reference decoder (csrc/probe/pitch_decode.c, a
    test hook) accepts every message and reads the same order ids, quantities,
    prices and symbols as scapy."""
    probe = pytest.importorskip("feedhandler._probe")
    ffi, lib = probe.ffi, probe.lib
    out = ffi.new("fh_pitch_msg_t *")
    n = 0
    for _, dst, _, _, payload in _line(small[2], "224."):
        for m in dissect(payload)[4]:
            raw = bytes(m)
            assert lib.fh_pitch_decode(raw, len(raw), out) == lib.FH_DECODE_OK, raw.hex()
            assert out.type == m.message_type
            if hasattr(m, "order_id"):
                assert out.order_id == m.order_id
            if hasattr(m, "symbol"):
                assert ffi.string(ffi.cast("char *", out.symbol), 8).decode().rstrip() == sym(m.symbol)
            if hasattr(m, "price") and m.message_type in (0x21, 0x2F, 0x27, 0x2A, 0x30, 0x24):
                assert out.price == m.price
            if m.message_type in (0x22, 0x28, 0x2B):
                assert out.price == m.price * 100
            n += 1
    assert n == small[1]["messages"]


def test_units_without_symbols(tmp_path):
    """Fewer symbols than units: the empty units send only their End of Session."""
    prefix = str(tmp_path / "few")
    s = generate(prefix, protocol="pitch", messages=5_000, symbols=5, heartbeat_ms=600_000, progress=False)
    busy = [u["unit"] for u in s["units"] if u["symbols"]]
    assert busy == [1 + i * 32 // 5 for i in range(5)] and s["end_of_session"] == 32
    assert all(u["messages"] == 2 and u["next_sequence"] == 3 for u in s["units"] if not u["symbols"])
    _replay(read_frames(prefix + ".pcap"))
