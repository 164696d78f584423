"""The IEX scapy layers (feedhandler/scapy_iex.py) against the wire format.

The layouts below are written out from the IEX research notes (IEX-TP section
1, TOPS / DEEP / DEEP+ sections 3-5), independent of the layers, and packed
with struct: a wrong field order, width, signedness or byte order in the
layers fails here.  The notes' worked values (section 5) and their IEX-TP
example (section 1.5) are decoded byte for byte.
"""

import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Padding  # noqa: E402

from feedhandler import (
    scapy_iex as si,  # noqa: E402
    scapy_layers as sl,  # noqa: E402
)
from feedhandler.scapy_iex import (  # noqa: E402
    IEX_CLASSES,
    IEX_DEEP,
    IEX_DEEP_PLUS,
    IEX_FEED_TYPES,
    IEX_LENGTHS,
    IEX_TOPS,
    IexAddOrder,
    IexMessage,
    IexOrderExecuted,
    IexQuoteUpdate,
    IexSegmentHeader,
    IexSystemEvent,
    IexTradeReport,
    IexUnknown,
    bind_iex_port,
    iex_segment,
)

ROOT = Path(__file__).resolve().parents[1]

# Fields after the type byte, in wire order: 'c' one ASCII byte, 'B' u8, 'I' u32 LE,
# 'q' i64 LE (prices, timestamps, order and trade ids), 'sN' space-padded text.
_TS = ("timestamp", "q")
_SYM = ("symbol", "s8")
_TRADE = [("sale_condition_flags", "B"), _TS, _SYM, ("size", "I"), ("price", "q"), ("trade_id", "q")]
_PLU = [("event_flags", "B"), _TS, _SYM, ("size", "I"), ("price", "q")]
WIRE = {
    "S": [("system_event", "c"), _TS],
    "D": [("flags", "B"), _TS, _SYM, ("round_lot_size", "I"), ("adjusted_poc_price", "q"), ("luld_tier", "B")],
    "H": [("trading_status", "c"), _TS, _SYM, ("reason", "s4")],
    "I": [("retail_liquidity_indicator", "c"), _TS, _SYM],
    "O": [("operational_halt_status", "c"), _TS, _SYM],
    "P": [("short_sale_price_test_status", "B"), _TS, _SYM, ("detail", "c")],
    "E": [("security_event", "c"), _TS, _SYM],
    "Q": [("flags", "B"), _TS, _SYM, ("bid_size", "I"), ("bid_price", "q"), ("ask_price", "q"), ("ask_size", "I")],
    "T": _TRADE,
    "X": [("price_type", "c"), _TS, _SYM, ("official_price", "q")],
    "B": _TRADE,
    "A": [
        ("auction_type", "c"),
        _TS,
        _SYM,
        ("paired_shares", "I"),
        ("reference_price", "q"),
        ("indicative_clearing_price", "q"),
        ("imbalance_shares", "I"),
        ("imbalance_side", "c"),
        ("extension_number", "B"),
        ("scheduled_auction_time", "I"),
        ("auction_book_clearing_price", "q"),
        ("collar_reference_price", "q"),
        ("lower_auction_collar", "q"),
        ("upper_auction_collar", "q"),
    ],
    "8": _PLU,
    "5": _PLU,
    "a": [("side", "c"), _TS, _SYM, ("order_id", "q"), ("size", "I"), ("price", "q")],
    "M": [("modify_flags", "B"), _TS, _SYM, ("order_id", "q"), ("size", "I"), ("price", "q")],
    "R": [("reserved", "B"), _TS, _SYM, ("order_id", "q")],
    "L": [
        ("sale_condition_flags", "B"),
        _TS,
        _SYM,
        ("order_id", "q"),
        ("size", "I"),
        ("price", "q"),
        ("trade_id", "q"),
    ],
    "C": [("reserved", "B"), _TS, _SYM],
}
# The spec lengths (notes sections 3-5 tables), written out on their own.
SPEC_LENGTHS = {
    "S": 10,
    "D": 31,
    "H": 22,
    "I": 18,
    "O": 18,
    "P": 19,
    "E": 18,
    "Q": 42,
    "T": 38,
    "X": 26,
    "B": 38,
    "A": 80,
    "8": 30,
    "5": 30,
    "a": 38,
    "M": 38,
    "R": 26,
    "L": 46,
    "C": 18,
}
TYPES = sorted(WIRE)


def _fmt(code):
    return code[1:] + "s" if code.startswith("s") else code


def _rand_value(rng, code):
    if code == "c":
        return chr(rng.randrange(0x21, 0x7F))
    if code == "B":
        return rng.getrandbits(8)
    if code == "I":
        return rng.getrandbits(32)
    if code == "q":
        return rng.getrandbits(64) - (1 << 63)
    n = int(code[1:])
    return "".join(chr(rng.randrange(0x41, 0x5B)) for _ in range(rng.randrange(1, n + 1))).encode()


def _rand_fields(rng, t):
    return {name: _rand_value(rng, code) for name, code in WIRE[t]}


def _hand_pack(t, fields):
    """The message data of type t, packed with struct from WIRE (not the layers)."""
    vals = []
    for name, code in WIRE[t]:
        v = fields[name]
        if code == "c":
            v = v.encode("latin-1")
        elif code.startswith("s"):
            v = v.ljust(int(code[1:]), b" ")
        vals.append(v)
    return struct.pack("<c" + "".join(_fmt(c) for _, c in WIRE[t]), t.encode(), *vals)


def _expected(code, v):
    return v.ljust(int(code[1:]), b" ") if code.startswith("s") else v


def _hand_header(proto, channel, session, plen, count, offset, seq, send):
    return struct.pack("<BBHIIHHqqq", 1, 0, proto, channel, session, plen, count, offset, seq, send)


# ------------------------------------------------------------------ tables


def test_lengths_are_the_spec_lengths():
    assert {chr(k): v for k, v in IEX_LENGTHS.items()} == SPEC_LENGTHS
    assert set(IEX_CLASSES) == set(IEX_LENGTHS) == {ord(t) for t in WIRE}
    for t in TYPES:
        assert struct.calcsize("<c" + "".join(_fmt(c) for _, c in WIRE[t])) == SPEC_LENGTHS[t], t
        assert len(bytes(IEX_CLASSES[ord(t)]())) == SPEC_LENGTHS[t], t


def test_feed_type_sets():
    assert IEX_FEED_TYPES[IEX_TOPS] == set(map(ord, "SDHIOPQTXBAE"))
    assert IEX_FEED_TYPES[IEX_DEEP] == set(map(ord, "SDHIOPE85TXBA"))
    assert IEX_FEED_TYPES[IEX_DEEP_PLUS] == set(map(ord, "SDHIOPEaMRLTBC"))
    assert (IEX_TOPS, IEX_DEEP, IEX_DEEP_PLUS) == (0x8003, 0x8004, 0x8005)


@pytest.mark.parametrize("t", TYPES)
def test_layout_matches_the_independent_table(t):
    cls = IEX_CLASSES[ord(t)]
    assert [f.name for f in cls.fields_desc] == ["message_type"] + [n for n, _ in WIRE[t]]
    assert cls.type_code == ord(t) and cls().message_type == ord(t)


def test_reexported_from_scapy_layers():
    for name in si.__all__:
        assert getattr(sl, name) is getattr(si, name), name
        assert name in sl.__all__
    with pytest.raises(AttributeError):
        sl.NoSuchIexThing  # noqa: B018


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("t", TYPES)
def test_every_type_builds_to_its_length_and_dissects_back(t):
    rng = random.Random(ord(t))
    for _ in range(20):
        fields = _rand_fields(rng, t)
        raw = bytes(IEX_CLASSES[ord(t)](**fields))
        assert len(raw) == SPEC_LENGTHS[t] and raw[0] == ord(t)
        assert raw == _hand_pack(t, fields)
        back = IexMessage(raw)
        assert type(back) is IEX_CLASSES[ord(t)]
        for name, code in WIRE[t]:
            assert getattr(back, name) == _expected(code, fields[name]), name
        assert bytes(back) == raw and Padding not in back
        # and inside a segment, behind its 2-byte length
        seg = IexSegmentHeader(iex_segment(IEX_DEEP, 7, 100, [raw]))
        assert seg.message_count == 1 and type(seg.messages[0]) is IEX_CLASSES[ord(t)]
        assert bytes(seg.messages[0]) == raw


def test_spec_worked_values():
    """Notes section 5: the DEEP+ spec's example bytes."""
    ts = bytes.fromhex("b28fa5a0ab866d14")
    price = bytes.fromhex("241d0f0000000000")
    oid = bytes.fromhex("968f060000000000")
    trade = bytes.fromhex("968f020000000000")
    sym = bytes.fromhex("5a49455854202020")
    raw = b"L\x00" + ts + sym + oid + struct.pack("<I", 100) + price + trade
    m = IexMessage(raw)
    assert isinstance(m, IexOrderExecuted)
    assert m.timestamp == 1471980724912754610
    assert m.price == 990500
    assert m.order_id == 429974
    assert m.trade_id == 167830
    assert m.symbol == b"ZIEXT   " and m.symbol.rstrip() == b"ZIEXT"
    built = IexAddOrder(
        side="8", timestamp=1471980724912754610, symbol="ZIEXT", order_id=429974, size=100, price=990500
    )
    assert bytes(built)[2:10] == ts and bytes(built)[10:18] == sym
    assert bytes(built)[18:26] == oid and bytes(built)[30:38] == price


def test_iex_tp_worked_example():
    """Notes section 1.5: the IEX-TP example segment (protocol 0xFFFF, two
    one- and two-byte test messages)."""
    data = bytes.fromhex(
        "0100FFFF0100000000008742070002008CA6210000000000CAC3000000000000EC45C22096866D140100690200BEEF"
    )
    seg = IexSegmentHeader(data)
    assert seg.version == 1 and seg.reserved == 0
    assert seg.message_protocol_id == 0xFFFF and seg.channel_id == 1
    assert seg.session_id == 0x42870000
    assert seg.payload_length == 7 and seg.message_count == 2
    assert seg.stream_offset == 2_205_324
    assert seg.first_message_sequence_number == 50_122
    assert seg.send_time == 1471980632572839404
    assert [bytes(m) for m in seg.messages] == [b"\x69", b"\xbe\xef"]
    assert all(isinstance(m, IexUnknown) for m in seg.messages)
    assert seg.messages[1].message_type == 0xBE and seg.messages[1].load == b"\xef"
    assert bytes(seg) == data
    again = iex_segment(
        0xFFFF, 0x42870000, 50_122, [b"\x69", b"\xbe\xef"], offset=2_205_324, send_time=1471980632572839404
    )
    assert again == data


def test_prices_and_ids_are_signed():
    raw = bytes(IexQuoteUpdate(symbol="NEG", bid_price=-1, ask_price=(1 << 63) - 1, bid_size=5, ask_size=6))
    assert raw[22:30] == b"\xff" * 8 and raw[30:38] == b"\xff" * 7 + b"\x7f"
    back = IexMessage(raw)
    assert (back.bid_price, back.ask_price, back.bid_size, back.ask_size) == (-1, (1 << 63) - 1, 5, 6)
    assert IexMessage(bytes(IexTradeReport(trade_id=-5))).trade_id == -5


def test_quote_update_field_order():
    raw = bytes(IexQuoteUpdate(symbol="AAPL", bid_size=0x11, bid_price=0x22, ask_price=0x33, ask_size=0x44))
    assert raw[18:22] == b"\x11\0\0\0" and raw[22] == 0x22 and raw[30] == 0x33 and raw[38:42] == b"\x44\0\0\0"


def test_longer_message_keeps_its_extra_bytes():
    raw = bytes(IexTradeReport(symbol="X", size=9, price=5)) + b"\x01\x02\x03"
    d = iex_segment(IEX_TOPS, 1, 1, [raw, IexSystemEvent(system_event="C")])
    assert struct.unpack_from("<H", d, 40)[0] == 41
    seg = IexSegmentHeader(d)
    assert len(seg.messages) == 2
    m = seg.messages[0]
    assert isinstance(m, IexTradeReport) and m.size == 9 and m[Padding].load == b"\x01\x02\x03"
    assert isinstance(seg.messages[1], IexSystemEvent) and seg.messages[1].system_event == "C"
    assert bytes(seg) == d


def test_short_or_unknown_message_is_unknown():
    short = bytes(IexTradeReport(symbol="X"))[:37]
    unknown = b"\x7e\x01\x02"
    seg = IexSegmentHeader(iex_segment(IEX_DEEP, 1, 1, [short, unknown, IexSystemEvent()]))
    assert [type(m) for m in seg.messages] == [IexUnknown, IexUnknown, IexSystemEvent]
    assert bytes(seg.messages[0]) == short and seg.messages[1].load == b"\x01\x02"


# ------------------------------------------------------------------ segment header


def test_header_is_little_endian():
    d = iex_segment(IEX_DEEP_PLUS, 0x01020304, 0x1122334455, [IexSystemEvent()], offset=0x0A0B, send_time=7)
    assert d[:40] == _hand_header(0x8005, 1, 0x01020304, 12, 1, 0x0A0B, 0x1122334455, 7)
    assert d[2:4] == b"\x05\x80" and d[8:12] == b"\x04\x03\x02\x01"
    assert d[40:42] == b"\x0a\x00" and d[42] == ord("S")


def test_segment_with_every_type():
    rng = random.Random(99)
    fields = [(t, _rand_fields(rng, t)) for t in TYPES]
    d = iex_segment(IEX_DEEP, 3, 500, [IEX_CLASSES[ord(t)](**f) for t, f in fields], offset=1000, send_time=5)
    body = b"".join(struct.pack("<H", SPEC_LENGTHS[t]) + _hand_pack(t, f) for t, f in fields)
    assert d == _hand_header(0x8004, 1, 3, len(body), len(TYPES), 1000, 500, 5) + body
    seg = IexSegmentHeader(d)
    assert [type(m) for m in seg.messages] == [IEX_CLASSES[ord(t)] for t in TYPES]
    for m, (t, f) in zip(seg.messages, fields):
        for name, code in WIRE[t]:
            assert getattr(m, name) == _expected(code, f[name])
    assert bytes(seg) == d and Padding not in seg


def test_heartbeat():
    d = iex_segment(IEX_TOPS, 9, 41, [], offset=3000, send_time=12)
    assert d == _hand_header(0x8003, 1, 9, 0, 0, 3000, 41, 12)
    seg = IexSegmentHeader(d)
    assert (seg.payload_length, seg.message_count, seg.messages) == (0, 0, [])


def test_explicit_length_and_count_are_kept():
    d = bytes(IexSegmentHeader(payload_length=999, message_count=5, messages=[IexSystemEvent()]))
    assert struct.unpack_from("<HH", d, 12) == (999, 5)


def test_zero_length_or_cut_block_ends_the_list():
    good = IexSystemEvent(system_event="O")
    d = iex_segment(IEX_DEEP, 1, 1, [good]) + b"\x00\x00" + b"S" * 10
    seg = IexSegmentHeader(d[:12] + struct.pack("<HH", len(d) - 40, 3) + d[16:])
    assert len(seg.messages) == 1 and seg[Padding].load == b"\x00\x00" + b"S" * 10
    cut = iex_segment(IEX_DEEP, 1, 1, [good, IexTradeReport()])[:-5]
    seg = IexSegmentHeader(cut)
    assert len(seg.messages) == 1 and isinstance(seg.messages[0], IexSystemEvent)


def test_count_smaller_leaves_the_rest_as_padding():
    d = bytes(IexSegmentHeader(message_count=1, messages=[IexSystemEvent(), IexSystemEvent(system_event="C")]))
    seg = IexSegmentHeader(d)
    assert len(seg.messages) == 1 and seg[Padding].load == b"\x0a\x00" + bytes(IexSystemEvent(system_event="C"))
    assert bytes(seg) == d


def test_random_garbage_never_raises():
    rng = random.Random(2025)
    for _ in range(500):
        IexSegmentHeader(bytes(rng.getrandbits(8) for _ in range(rng.randrange(40, 160))))


# ------------------------------------------------------------------ UDP binding and the docstring


def test_bind_iex_port_dissects_udp():
    bind_iex_port(10378)
    payload = iex_segment(IEX_TOPS, 5, 0, [IexQuoteUpdate(symbol="ZIEXT", bid_size=100, bid_price=990500)])
    back = Ether(bytes(Ether() / IP(dst="233.215.21.3") / UDP(sport=53, dport=10378) / payload))
    assert IexSegmentHeader in back
    seg = back[IexSegmentHeader]
    assert seg.message_protocol_id == 0x8003 and seg.messages[0].bid_price == 990500
    crafted = Ether(bytes(Ether() / IP() / UDP() / IexSegmentHeader(messages=[IexSystemEvent()])))
    assert crafted[UDP].dport == 10378 and IexSegmentHeader in crafted


def test_docstring_example_runs():
    example = textwrap.dedent(si.__doc__.split("Example::", 1)[1])
    lines = example.strip().splitlines()
    ns = {}
    exec(compile("\n".join(lines[:-1]), "scapy_iex docstring", "exec"), ns)
    last = lines[-1].split("#")
    assert eval(last[0], ns) == int(last[1]) == 990500


def test_needs_scapy_like_scapy_layers():
    code = (
        "import sys; sys.modules['scapy'] = None\n"
        "try:\n    import feedhandler.scapy_iex\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "ERR" in p.stdout and "pip install feedhandler[scapy]" in p.stdout, p.stdout
