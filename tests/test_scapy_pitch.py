"""The Cboe PITCH scapy layers (feedhandler/scapy_pitch.py) against the wire format.

The layouts below are written out from docs/pitch-spec-notes.md, independent of
the layers, and packed with struct: a wrong field order, width or byte order in
the layers fails here.  No C core involved (there is no PITCH decoder yet).
"""

import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Padding, Raw  # noqa: E402

from feedhandler import (
    scapy_layers as sl,  # noqa: E402
    scapy_pitch as sp,  # noqa: E402
)
from feedhandler.scapy_pitch import (  # noqa: E402
    PITCH_CLASSES,
    PITCH_LENGTHS,
    PitchAddOrderExpanded,
    PitchAddOrderLong,
    PitchAddOrderShort,
    PitchDeleteOrder,
    PitchMessage,
    PitchModifyOrderShort,
    PitchOrderExecutedAtPriceSize,
    PitchTime,
    PitchTradeLong,
    PitchUnitHeader,
    PitchUnknown,
    bind_pitch_port,
    pitch_datagram,
    pitch_price,
)

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "docs" / "pitch-spec-notes.md"

# Fields after Length/Type, in wire order: 'c' Alpha(1), 'B' u8 bit field, 'H' u16 LE,
# 'I' u32 LE, 'Q' u64 LE, 'sN' space-padded text of N bytes.
_T = ("time_offset", "I")
_O = ("order_id", "Q")
WIRE = {
    0x20: [("time_seconds", "I")],
    0x97: [_T],
    0x21: [_T, _O, ("side_indicator", "c"), ("quantity", "I"), ("symbol", "s6"), ("price", "Q"), ("add_flags", "B")],
    0x22: [_T, _O, ("side_indicator", "c"), ("quantity", "H"), ("symbol", "s6"), ("price", "H"), ("add_flags", "B")],
    0x2F: [
        _T,
        _O,
        ("side_indicator", "c"),
        ("quantity", "I"),
        ("symbol", "s8"),
        ("price", "Q"),
        ("add_flags", "B"),
        ("participant_id", "s4"),
        ("customer_indicator", "c"),
    ],
    0x23: [_T, _O, ("executed_quantity", "I"), ("execution_id", "Q")],
    0x24: [_T, _O, ("executed_quantity", "I"), ("remaining_quantity", "I"), ("execution_id", "Q"), ("price", "Q")],
    0x25: [_T, _O, ("canceled_quantity", "I")],
    0x26: [_T, _O, ("canceled_quantity", "H")],
    0x27: [_T, _O, ("quantity", "I"), ("price", "Q"), ("modify_flags", "B")],
    0x28: [_T, _O, ("quantity", "H"), ("price", "H"), ("modify_flags", "B")],
    0x29: [_T, _O],
    0x2A: [_T, _O, ("side_indicator", "c"), ("quantity", "I"), ("symbol", "s6"), ("price", "Q"), ("execution_id", "Q")],
    0x2B: [_T, _O, ("side_indicator", "c"), ("quantity", "H"), ("symbol", "s6"), ("price", "H"), ("execution_id", "Q")],
    0x30: [_T, _O, ("side_indicator", "c"), ("quantity", "I"), ("symbol", "s8"), ("price", "Q"), ("execution_id", "Q")],
    0x2C: [_T, ("execution_id", "Q")],
    0x2D: [_T],
    0x31: [
        _T,
        ("symbol", "s8"),
        ("trading_status", "c"),
        ("reg_sho_action", "c"),
        ("reserved1", "c"),
        ("reserved2", "c"),
    ],
    0x95: [
        _T,
        ("symbol", "s8"),
        ("auction_type", "c"),
        ("reference_price", "Q"),
        ("buy_shares", "I"),
        ("sell_shares", "I"),
        ("indicative_price", "Q"),
        ("auction_only_price", "Q"),
    ],
    0x96: [_T, ("symbol", "s8"), ("auction_type", "c"), ("price", "Q"), ("shares", "I")],
}
TYPES = sorted(WIRE)


def _notes_lengths():
    """{type: total} from the summary table (section 4) of the notes; the first
    number where a row gives two (Add Order Expanded: '41 (40 in older spec)')."""
    text = NOTES.read_text(encoding="utf-8")
    sec = text.split("## 4. Summary table", 1)[1].split("\n## ", 1)[0]
    return {int(t, 16): int(n) for t, n in re.findall(r"^\|\s*0x([0-9A-Fa-f]{2})\s*\|[^|]*\|\s*(\d+)", sec, re.M)}


def _notes_section_lengths():
    """{type: total} from the '### 3.x Name — 0xNN — total **N**' headings."""
    text = NOTES.read_text(encoding="utf-8")
    return {
        int(t, 16): int(n)
        for t, n in re.findall(r"^### 3\.\d+ .*?0x([0-9A-Fa-f]{2}) — total \*\*(\d+)\*\*", text, re.M)
    }


def _fmt(code):
    return {"c": "c", "B": "B", "H": "H", "I": "I", "Q": "Q"}.get(code) or code[1:] + "s"


def _rand_value(rng, code):
    if code == "c":
        return chr(rng.randrange(0x21, 0x7F))
    if code == "B":
        return rng.getrandbits(8)
    if code == "H":
        return rng.getrandbits(16)
    if code == "I":
        return rng.getrandbits(32)
    if code == "Q":
        return rng.getrandbits(64)
    n = int(code[1:])
    return "".join(chr(rng.randrange(0x41, 0x5B)) for _ in range(rng.randrange(1, n + 1))).encode()


def _rand_fields(rng, t):
    return {name: _rand_value(rng, code) for name, code in WIRE[t]}


def _hand_pack(t, fields):
    """The wire bytes of message type t, packed with struct from WIRE (not the layers)."""
    fmt = "<BB" + "".join(_fmt(c) for _, c in WIRE[t])
    vals = []
    for name, code in WIRE[t]:
        v = fields[name]
        if code == "c":
            v = v.encode("latin-1")
        elif code.startswith("s"):
            v = v.ljust(int(code[1:]), b" ")
        vals.append(v)
    return struct.pack(fmt, struct.calcsize(fmt), t, *vals)


def _expected(code, v):
    return v.ljust(int(code[1:]), b" ") if code.startswith("s") else v


# ------------------------------------------------------------------ tables


def test_lengths_match_the_notes():
    assert PITCH_LENGTHS == _notes_lengths()
    assert PITCH_LENGTHS == _notes_section_lengths()
    assert len(PITCH_LENGTHS) == 20 and set(PITCH_CLASSES) == set(PITCH_LENGTHS) == set(WIRE)


@pytest.mark.parametrize("t", TYPES, ids=lambda t: "0x%02X" % t)
def test_layout_matches_the_independent_table(t):
    cls = PITCH_CLASSES[t]
    assert [f.name for f in cls.fields_desc] == ["length", "message_type"] + [n for n, _ in WIRE[t]]
    assert struct.calcsize("<BB" + "".join(_fmt(c) for _, c in WIRE[t])) == PITCH_LENGTHS[t]
    assert cls.type_code == t and cls().message_type == t


def test_reexported_from_scapy_layers():
    for name in sp.__all__:
        assert getattr(sl, name) is getattr(sp, name)
        assert name in sl.__all__
    with pytest.raises(AttributeError):
        sl.NoSuchPitchThing  # noqa: B018


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("t", TYPES, ids=lambda t: "0x%02X" % t)
def test_every_type_builds_to_its_length_and_dissects_back(t):
    rng = random.Random(t)
    for _ in range(20):
        fields = _rand_fields(rng, t)
        pkt = PITCH_CLASSES[t](**fields)
        raw = bytes(pkt)
        assert len(raw) == PITCH_LENGTHS[t] == raw[0] and raw[1] == t
        assert raw == _hand_pack(t, fields)
        back = PitchMessage(raw)
        assert type(back) is PITCH_CLASSES[t]
        assert back.length == PITCH_LENGTHS[t] and back.message_type == t
        for name, code in WIRE[t]:
            assert getattr(back, name) == _expected(code, fields[name]), name
        assert bytes(back) == raw
        assert Padding not in back


def test_add_order_long_hand_packed():
    raw = struct.pack("<BBIQcI6sQB", 34, 0x21, 123456789, 0x1122334455667788, b"S", 250000, b"AAPL  ", 1_234_500, 0x01)
    pkt = PitchAddOrderLong(
        time_offset=123456789,
        order_id=0x1122334455667788,
        side_indicator="S",
        quantity=250000,
        symbol="AAPL",
        price=1_234_500,
        add_flags=1,
    )
    assert bytes(pkt) == raw
    back = PitchMessage(raw)
    assert isinstance(back, PitchAddOrderLong)
    assert (back.order_id, back.side_indicator, back.quantity, back.symbol, back.price) == (
        0x1122334455667788,
        "S",
        250000,
        b"AAPL  ",
        1_234_500,
    )
    assert raw[6:14] == bytes.fromhex("8877665544332211")  # little-endian order id at offset 6
    assert raw[25:33] == (1_234_500).to_bytes(8, "little")


def test_modify_order_short_hand_packed():
    raw = struct.pack("<BBIQHHB", 19, 0x28, 999, 42, 65535, 10250, 0x03)
    pkt = PitchModifyOrderShort(time_offset=999, order_id=42, quantity=65535, price=10250, modify_flags=0x03)
    assert bytes(pkt) == raw
    back = PitchMessage(raw)
    assert isinstance(back, PitchModifyOrderShort)
    assert (back.quantity, back.price, back.modify_flags) == (65535, 10250, 3)
    assert pitch_price(back.price, short=True) == 1_025_000  # $102.50 in Price(4)
    assert raw[16:18] == bytes([0x0A, 0x28])  # 10250 = 0x280A, little-endian at offset 16


def test_order_executed_at_price_size_hand_packed():
    raw = struct.pack("<BBIQIIQQ", 38, 0x24, 7, 0xDEADBEEF01, 40, 60, 0x0102030405060708, 1_500_100)
    pkt = PitchOrderExecutedAtPriceSize(
        time_offset=7,
        order_id=0xDEADBEEF01,
        executed_quantity=40,
        remaining_quantity=60,
        execution_id=0x0102030405060708,
        price=1_500_100,
    )
    assert bytes(pkt) == raw
    back = PitchMessage(raw)
    assert isinstance(back, PitchOrderExecutedAtPriceSize)
    assert (back.executed_quantity, back.remaining_quantity, back.execution_id, back.price) == (
        40,
        60,
        0x0102030405060708,
        1_500_100,
    )
    assert raw[18:22] == (60).to_bytes(4, "little")  # remaining quantity before execution id


def test_symbols_are_space_padded_and_widths_differ():
    assert bytes(PitchTradeLong(symbol="IBM"))[19:25] == b"IBM   "
    assert bytes(PitchAddOrderExpanded(symbol="BRK.B"))[19:27] == b"BRK.B   "
    assert bytes(PitchAddOrderShort(symbol=b"ZVZZT"))[17:23] == b"ZVZZT "


def test_pitch_price():
    assert pitch_price(1_234_500) == 1_234_500
    assert pitch_price(10250, short=True) == 1_025_000
    assert pitch_price(65535, short=True) == 6_553_500
    assert isinstance(pitch_price(1), int)


def test_add_order_expanded_old_40_byte_layout():
    new = bytes(PitchAddOrderExpanded(order_id=9, symbol="GOOGL", participant_id="RTAL", customer_indicator="R"))
    assert len(new) == 41 and new[40:41] == b"R"
    old = bytes(PitchAddOrderExpanded(length=40, order_id=9, symbol="GOOGL", participant_id="RTAL"))
    assert len(old) == 40 and old[0] == 40 and old == new[:40].replace(b"\x29", b"\x28", 1)
    back = PitchMessage(old)
    assert isinstance(back, PitchAddOrderExpanded) and back.participant_id == b"RTAL"
    assert back.customer_indicator is None and bytes(back) == old


def test_longer_message_keeps_its_extra_bytes():
    raw = bytes(PitchTime(time_seconds=1)) + b"\x01\x02\x03\x04"  # 10-byte Time (epoch appended)
    raw = bytes([10]) + raw[1:]
    d = pitch_datagram(1, 5, [raw, PitchDeleteOrder(order_id=3)])
    hdr = PitchUnitHeader(d)
    assert hdr.count == 2 and len(hdr.messages) == 2
    assert isinstance(hdr.messages[0], PitchTime) and hdr.messages[0].time_seconds == 1
    assert isinstance(hdr.messages[1], PitchDeleteOrder) and hdr.messages[1].order_id == 3
    assert bytes(hdr) == d


# ------------------------------------------------------------------ unit header


def test_header_is_little_endian():
    d = pitch_datagram(unit=0xAB, sequence=0x01020304, messages=[PitchTime(time_seconds=0x0A0B0C0D)])
    assert d[:8] == bytes([14, 0, 1, 0xAB, 0x04, 0x03, 0x02, 0x01])
    assert d[8:] == bytes([6, 0x20, 0x0D, 0x0C, 0x0B, 0x0A])
    assert d[:8] == struct.pack("<HBBI", 14, 1, 0xAB, 0x01020304)
    big = bytes(PitchUnitHeader(unit=1, sequence=1, messages=[PitchAddOrderLong()] * 8))
    assert big[:2] == (8 + 8 * 34).to_bytes(2, "little") == bytes([0x18, 0x01])


def test_unit_with_several_messages():
    rng = random.Random(14)
    fields = [(t, _rand_fields(rng, t)) for t in TYPES]
    d = pitch_datagram(unit=7, sequence=123456, messages=[PITCH_CLASSES[t](**f) for t, f in fields])
    total = 8 + sum(PITCH_LENGTHS[t] for t in TYPES)
    assert len(d) == total
    assert d == struct.pack("<HBBI", total, 20, 7, 123456) + b"".join(_hand_pack(t, f) for t, f in fields)
    hdr = PitchUnitHeader(d)
    assert (hdr.length, hdr.count, hdr.unit, hdr.sequence) == (total, 20, 7, 123456)
    assert [type(m) for m in hdr.messages] == [PITCH_CLASSES[t] for t in TYPES]
    for m, (t, f) in zip(hdr.messages, fields):
        for name, code in WIRE[t]:
            assert getattr(m, name) == _expected(code, f[name])
    assert bytes(hdr) == d and Padding not in hdr


def test_heartbeat():
    d = pitch_datagram(unit=2, sequence=1001, messages=[])
    assert d == struct.pack("<HBBI", 8, 0, 2, 1001)
    hdr = PitchUnitHeader(d)
    assert (hdr.length, hdr.count, hdr.messages) == (8, 0, [])


def test_explicit_length_and_count_are_kept():
    d = bytes(PitchUnitHeader(length=999, count=5, unit=1, sequence=1, messages=[PitchTime()]))
    assert d[:4] == bytes([0xE7, 0x03, 5, 1])


def test_unknown_type_is_skipped_by_its_length():
    unknown = bytes([7, 0xEE, 1, 2, 3, 4, 5])
    d = pitch_datagram(1, 1, [PitchTime(time_seconds=5), unknown, PitchDeleteOrder(order_id=77)])
    hdr = PitchUnitHeader(d)
    assert hdr.count == 3
    m = hdr.messages
    assert isinstance(m[1], PitchUnknown) and (m[1].length, m[1].message_type, m[1].load) == (
        7,
        0xEE,
        b"\x01\x02\x03\x04\x05",
    )
    assert isinstance(m[2], PitchDeleteOrder) and m[2].order_id == 77
    assert isinstance(PitchMessage(unknown), PitchUnknown)
    assert bytes(PitchUnknown(message_type=0x98, load=b"x" * 13)) == bytes([15, 0x98]) + b"x" * 13
    assert bytes(hdr) == d


@pytest.mark.parametrize("t", TYPES, ids=lambda t: "0x%02X" % t)
def test_truncated_message_does_not_crash(t):
    full = bytes(PITCH_CLASSES[t](**_rand_fields(random.Random(t), t)))
    good = bytes(PitchDeleteOrder(order_id=1))
    d = pitch_datagram(1, 1, [good, full])
    for cut in range(8, len(d)):
        hdr = PitchUnitHeader(d[:cut])  # datagram cut short
        assert len(hdr.messages) <= 2
        if cut >= 8 + len(good):
            assert isinstance(hdr.messages[0], PitchDeleteOrder)
        if len(hdr.messages) == 2:  # the cut one: raw, never a half-read layer
            assert isinstance(hdr.messages[1], PitchUnknown if cut - 8 - len(good) >= 2 else Raw)
    for ln in range(0, len(full)):  # length byte too small for the type
        if t == 0x2F and ln >= 40:
            continue
        lying = bytes([ln]) + full[1:]
        hdr = PitchUnitHeader(pitch_datagram(1, 1, [lying]))
        assert hdr.messages and all(isinstance(x, PitchUnknown) for x in hdr.messages)
    hdr = PitchUnitHeader(pitch_datagram(1, 1, [full])[:8])  # header only
    assert hdr.count == 1 and hdr.messages == []


def test_count_larger_than_the_messages_present():
    d = bytes(PitchUnitHeader(count=9, messages=[PitchTime(time_seconds=1)]))
    hdr = PitchUnitHeader(d)
    assert hdr.count == 9 and len(hdr.messages) == 1 and isinstance(hdr.messages[0], PitchTime)


def test_count_smaller_leaves_the_rest_as_padding():
    d = bytes(PitchUnitHeader(count=1, messages=[PitchTime(time_seconds=1), PitchTime(time_seconds=2)]))
    hdr = PitchUnitHeader(d)
    assert len(hdr.messages) == 1 and hdr[Padding].load == bytes(PitchTime(time_seconds=2))
    assert bytes(hdr) == d


def test_random_garbage_never_raises():
    rng = random.Random(2024)
    for _ in range(500):
        PitchUnitHeader(bytes(rng.getrandbits(8) for _ in range(rng.randrange(8, 120))))


def test_short_datagram_under_udp_becomes_raw():
    bind_pitch_port(30002)
    for n in range(8):
        back = Ether(bytes(Ether() / IP() / UDP(dport=30002) / (b"\x08\x00\x00\x01\x01\x00\x00"[:n] or b"")))
        assert PitchUnitHeader not in back


# ------------------------------------------------------------------ UDP binding


def test_bind_pitch_port_dissects_udp():
    bind_pitch_port(30001)
    payload = pitch_datagram(
        3,
        1000,
        [PitchTime(time_seconds=34200), PitchAddOrderLong(order_id=1, quantity=100, symbol="AAPL", price=1_500_000)],
    )
    pkt = Ether() / IP(dst="224.0.62.2") / UDP(sport=53, dport=30001) / payload
    back = Ether(bytes(pkt))
    assert PitchUnitHeader in back
    hdr = back[PitchUnitHeader]
    assert hdr.unit == 3 and hdr.messages[1].price == 1_500_000
    crafted = Ether(bytes(Ether() / IP() / UDP() / PitchUnitHeader(messages=[PitchTime()])))
    assert crafted[UDP].dport == 30001 and PitchUnitHeader in crafted
    assert sl.MoldUDP64 in Ether(bytes(Ether() / IP() / UDP(dport=sl.MOLD_PORT) / sl.MoldUDP64()))


def test_needs_scapy_like_scapy_layers():
    code = (
        "import sys; sys.modules['scapy'] = None\n"
        "try:\n    import feedhandler.scapy_pitch\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "ERR" in p.stdout and "pip install feedhandler[scapy]" in p.stdout, p.stdout
