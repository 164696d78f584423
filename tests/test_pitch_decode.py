"""The Cboe US Equities Multicast PITCH reference decoder (csrc/pitch_spec.h,
csrc/pitch.c's length table, csrc/probe/pitch_decode.c; a test hook in
feedhandler._probe, not the pipeline's path): every one of the 20 messages built by
hand from the layouts in docs/pitch-spec-notes.md with struct.pack('<...'),
decoded through lib.fh_pitch_decode with every field of fh_pitch_msg_t
checked; lengths off by one rejected; whole Sequenced Units walked.

The oracle is SPEC and the builders below, typed in from the notes (section 3
field tables, section 4 summary), not read from the code under test."""

import random
import struct

import pytest

# The decoder is a test hook; the probe's FFI includes the core's (FH_DECODE_*, FH_ERR__COUNT).
from feedhandler._probe import ffi, lib

# docs/pitch-spec-notes.md section 4: type -> total length (Length byte value).
# Add Order Expanded: 41 in the current spec (40 in the older BATS-era one).
SPEC = {
    0x20: 6,  # Time
    0x97: 6,  # Unit Clear
    0x21: 34,  # Add Order Long
    0x22: 26,  # Add Order Short
    0x2F: 41,  # Add Order Expanded
    0x23: 26,  # Order Executed
    0x24: 38,  # Order Executed at Price/Size
    0x25: 18,  # Reduce Size Long
    0x26: 16,  # Reduce Size Short
    0x27: 27,  # Modify Order Long
    0x28: 19,  # Modify Order Short
    0x29: 14,  # Delete Order
    0x2A: 41,  # Trade Long
    0x2B: 33,  # Trade Short
    0x30: 43,  # Trade Expanded
    0x2C: 14,  # Trade Break
    0x2D: 6,  # End of Session
    0x31: 18,  # Trading Status
    0x95: 47,  # Auction Update
    0x96: 27,  # Auction Summary
}

BIG = 0x0123_4567_89AB_CDEF  # ids above 2^32
TOFF = 987_654_321  # a Time Offset (ns)


def msg(t, fmt, *fields):
    """Length, Type, then the fields little-endian; Length counts itself and Type."""
    body = struct.pack("<" + fmt, *fields)
    return struct.pack("<BB", 2 + len(body), t) + body


# One builder per type, fields in wire order (the notes' tables).
def time_(seconds):
    return msg(0x20, "I", seconds)


def unit_clear(toff):
    return msg(0x97, "I", toff)


def add_long(toff, oid, side, qty, sym, price, flags):
    return msg(0x21, "IQcI6sQB", toff, oid, side, qty, sym, price, flags)


def add_short(toff, oid, side, qty, sym, price, flags):
    return msg(0x22, "IQcH6sHB", toff, oid, side, qty, sym, price, flags)


def add_expanded(toff, oid, side, qty, sym, price, flags, pid, cust):
    return msg(0x2F, "IQcI8sQB4sc", toff, oid, side, qty, sym, price, flags, pid, cust)


def executed(toff, oid, qty, xid):
    return msg(0x23, "IQIQ", toff, oid, qty, xid)


def executed_price(toff, oid, qty, rem, xid, price):
    return msg(0x24, "IQIIQQ", toff, oid, qty, rem, xid, price)


def reduce_long(toff, oid, qty):
    return msg(0x25, "IQI", toff, oid, qty)


def reduce_short(toff, oid, qty):
    return msg(0x26, "IQH", toff, oid, qty)


def modify_long(toff, oid, qty, price, flags):
    return msg(0x27, "IQIQB", toff, oid, qty, price, flags)


def modify_short(toff, oid, qty, price, flags):
    return msg(0x28, "IQHHB", toff, oid, qty, price, flags)


def delete(toff, oid):
    return msg(0x29, "IQ", toff, oid)


def trade_long(toff, oid, side, qty, sym, price, xid):
    return msg(0x2A, "IQcI6sQQ", toff, oid, side, qty, sym, price, xid)


def trade_short(toff, oid, side, qty, sym, price, xid):
    return msg(0x2B, "IQcH6sHQ", toff, oid, side, qty, sym, price, xid)


def trade_expanded(toff, oid, side, qty, sym, price, xid):
    return msg(0x30, "IQcI8sQQ", toff, oid, side, qty, sym, price, xid)


def trade_break(toff, xid):
    return msg(0x2C, "IQ", toff, xid)


def end_of_session(toff):
    return msg(0x2D, "I", toff)


def trading_status(toff, sym, status, regsho, r1, r2):
    return msg(0x31, "I8scccc", toff, sym, status, regsho, r1, r2)


def auction_update(toff, sym, atype, ref, buy, sell, ind, ao):
    return msg(0x95, "I8scQIIQQ", toff, sym, atype, ref, buy, sell, ind, ao)


def auction_summary(toff, sym, atype, price, shares):
    return msg(0x96, "I8scQI", toff, sym, atype, price, shares)


ZERO = dict(
    type=0,
    side=0,
    flags=0,
    status=0,
    reg_sho_action=0,
    auction_type=0,
    customer_indicator=0,
    time_offset_ns=0,
    seconds=0,
    order_id=0,
    exec_id=0,
    qty=0,
    remaining=0,
    price=0,
    indicative_price=0,
    auction_only_price=0,
    sell_qty=0,
    participant_id=b"\0" * 4,
    symbol=b" " * 8,
    reserved=[0, 0],
)

# (wire bytes, the fields expected besides ZERO's) for each of the 20 types.
CASES = {
    "time": (time_(34_200), dict(type=0x20, seconds=34_200)),
    "unit_clear": (unit_clear(TOFF), dict(type=0x97, time_offset_ns=TOFF)),
    "add_long": (
        add_long(TOFF, BIG, b"B", 4_000_000, b"AAPL  ", 12_345_678, 0x01),
        dict(
            type=0x21,
            time_offset_ns=TOFF,
            order_id=BIG,
            side=ord("B"),
            qty=4_000_000,
            symbol=b"AAPL    ",
            price=12_345_678,
            flags=0x01,
        ),
    ),  # 1234.5678
    "add_short": (
        add_short(TOFF, BIG + 1, b"S", 65_535, b"F     ", 1234, 0x01),
        dict(
            type=0x22,
            time_offset_ns=TOFF,
            order_id=BIG + 1,
            side=ord("S"),
            qty=65_535,
            symbol=b"F       ",
            price=123_400,
            flags=0x01,
        ),
    ),  # 12.34 -> 4 decimals
    "add_expanded": (
        add_expanded(TOFF, BIG + 2, b"B", 300, b"BRK.B   ", (1 << 40) + 7, 0x01, b"RTAL", b"R"),
        dict(
            type=0x2F,
            time_offset_ns=TOFF,
            order_id=BIG + 2,
            side=ord("B"),
            qty=300,
            symbol=b"BRK.B   ",
            price=(1 << 40) + 7,
            flags=0x01,
            participant_id=b"RTAL",
            customer_indicator=ord("R"),
        ),
    ),
    "executed": (
        executed(TOFF, BIG + 3, 100, BIG + 100),
        dict(type=0x23, time_offset_ns=TOFF, order_id=BIG + 3, qty=100, exec_id=BIG + 100),
    ),
    "executed_price": (
        executed_price(TOFF, BIG + 4, 50, 25, BIG + 101, 99_990_000),
        dict(
            type=0x24, time_offset_ns=TOFF, order_id=BIG + 4, qty=50, remaining=25, exec_id=BIG + 101, price=99_990_000
        ),
    ),
    "reduce_long": (
        reduce_long(TOFF, BIG + 5, 70_000),
        dict(type=0x25, time_offset_ns=TOFF, order_id=BIG + 5, qty=70_000),
    ),
    "reduce_short": (
        reduce_short(TOFF, BIG + 6, 65_000),
        dict(type=0x26, time_offset_ns=TOFF, order_id=BIG + 6, qty=65_000),
    ),
    "modify_long": (
        modify_long(TOFF, BIG + 7, 1_000_000, 2**33 + 5, 0x03),
        dict(type=0x27, time_offset_ns=TOFF, order_id=BIG + 7, qty=1_000_000, price=2**33 + 5, flags=0x03),
    ),
    "modify_short": (
        modify_short(TOFF, BIG + 8, 200, 65_535, 0x01),
        dict(type=0x28, time_offset_ns=TOFF, order_id=BIG + 8, qty=200, price=6_553_500, flags=0x01),
    ),
    "delete": (delete(TOFF, BIG + 9), dict(type=0x29, time_offset_ns=TOFF, order_id=BIG + 9)),
    "trade_long": (
        trade_long(TOFF, BIG + 10, b"B", 500, b"MSFT  ", 4_123_456_789_012, BIG + 102),
        dict(
            type=0x2A,
            time_offset_ns=TOFF,
            order_id=BIG + 10,
            side=ord("B"),
            qty=500,
            symbol=b"MSFT    ",
            price=4_123_456_789_012,
            exec_id=BIG + 102,
        ),
    ),
    "trade_short": (
        trade_short(TOFF, BIG + 11, b"B", 10, b"IBM   ", 10_250, BIG + 103),
        dict(
            type=0x2B,
            time_offset_ns=TOFF,
            order_id=BIG + 11,
            side=ord("B"),
            qty=10,
            symbol=b"IBM     ",
            price=1_025_000,
            exec_id=BIG + 103,
        ),
    ),  # 102.50
    "trade_expanded": (
        trade_expanded(TOFF, BIG + 12, b"B", 7, b"ABCDEFGH", 12_345_678, BIG + 104),
        dict(
            type=0x30,
            time_offset_ns=TOFF,
            order_id=BIG + 12,
            side=ord("B"),
            qty=7,
            symbol=b"ABCDEFGH",
            price=12_345_678,
            exec_id=BIG + 104,
        ),
    ),
    "trade_break": (trade_break(TOFF, BIG + 105), dict(type=0x2C, time_offset_ns=TOFF, exec_id=BIG + 105)),
    "end_of_session": (end_of_session(TOFF), dict(type=0x2D, time_offset_ns=TOFF)),
    "trading_status": (
        trading_status(TOFF, b"SPY     ", b"H", b"1", b"X", b"Y"),
        dict(
            type=0x31,
            time_offset_ns=TOFF,
            symbol=b"SPY     ",
            status=ord("H"),
            reg_sho_action=ord("1"),
            reserved=[ord("X"), ord("Y")],
        ),
    ),
    "auction_update": (
        auction_update(TOFF, b"QQQ     ", b"O", 3_500_000, 1_000, 2_000, 3_510_000, 3_490_000),
        dict(
            type=0x95,
            time_offset_ns=TOFF,
            symbol=b"QQQ     ",
            auction_type=ord("O"),
            price=3_500_000,
            qty=1_000,
            sell_qty=2_000,
            indicative_price=3_510_000,
            auction_only_price=3_490_000,
        ),
    ),
    "auction_summary": (
        auction_summary(TOFF, b"QQQ     ", b"C", 3_505_000, 123_456),
        dict(type=0x96, time_offset_ns=TOFF, symbol=b"QQQ     ", auction_type=ord("C"), price=3_505_000, qty=123_456),
    ),
}


def fields(m):
    out = {}
    for name, _ in ffi.typeof("fh_pitch_msg_t").fields:
        if name.startswith("_"):
            continue
        v = getattr(m, name)
        if name in ("symbol", "participant_id"):
            v = ffi.unpack(v, len(v))
        elif name == "reserved":
            v = list(v)
        out[name] = v
    return out


def decode(data):
    m = ffi.new("fh_pitch_msg_t *")
    buf = ffi.new("uint8_t[]", data) if data else b""  # exact size: ASan sees an overread
    return lib.fh_pitch_decode(buf, len(data), m), m


def test_core_table_is_the_spec():
    got = {b: int(lib.fh_pitch_msg_len(b)) for b in range(256) if lib.fh_pitch_msg_len(b)}
    assert got == SPEC


def test_every_type_has_a_case():
    assert sorted(c[0][1] for c in CASES.values()) == sorted(SPEC)
    for name, (data, _) in CASES.items():
        assert len(data) == SPEC[data[1]] == data[0], name  # the builders match the notes


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_every_field(name):
    data, want = CASES[name]
    rc, m = decode(data)
    assert rc == lib.FH_DECODE_OK
    assert fields(m) == {**ZERO, **want}


def test_prices_are_four_decimals_in_64_bits():
    _, m = decode(CASES["add_long"][0])
    assert m.price == 12_345_678  # 1234.5678 as sent
    _, m = decode(CASES["add_short"][0])
    assert m.price == 123_400  # 12.34 x 100
    big = 2**32 + 12_345  # above a u32: exact, not truncated
    _, m = decode(add_long(0, 1, b"B", 1, b"X     ", big, 1))
    assert m.price == big
    _, m = decode(trade_expanded(0, 1, b"B", 1, b"X       ", 2**63 + 1, 2))
    assert m.price == 2**63 + 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_off_by_one_rejected(name):
    data = CASES[name][0]
    n = len(data)
    # One byte short / long, with the Length byte saying so (exact-size buffers, so
    # ASan sees any read past the end) ...
    short = bytes([n - 1]) + data[1 : n - 1]
    long_ = bytes([n + 1]) + data[1:] + b"\0"
    assert decode(short)[0] == lib.FH_DECODE_BAD_LENGTH
    assert decode(long_)[0] == lib.FH_DECODE_BAD_LENGTH
    # ... or with the Length byte still the type's length: the buffer length decides too.
    assert decode(data[:-1])[0] == lib.FH_DECODE_BAD_LENGTH
    assert decode(data + b"\0")[0] == lib.FH_DECODE_BAD_LENGTH
    # A Length byte that disagrees with an exact-size buffer.
    assert decode(bytes([n + 1]) + data[1:])[0] == lib.FH_DECODE_BAD_LENGTH


def test_unknown_types_rejected():
    for t in range(256):
        if t in SPEC:
            continue
        data = bytes([20, t]) + bytes(18)
        assert decode(data)[0] == lib.FH_DECODE_UNKNOWN_TYPE, hex(t)
    assert decode(b"")[0] == lib.FH_DECODE_EMPTY
    assert decode(b"\x01")[0] == lib.FH_DECODE_BAD_LENGTH  # no room for a type byte


# ------------------------------------------------------------------ units


def unit(msgs, count=None, unit_no=3, seq=1000, length=None):
    body = b"".join(msgs)
    n = 8 + len(body)
    return (
        struct.pack("<HBBI", n if length is None else length, len(msgs) if count is None else count, unit_no, seq)
        + body
    )


ERR = {
    name: getattr(lib, "FH_PITCH_ERR_" + name)
    for name in (
        "TRUNCATED",
        "HDR_LENGTH",
        "COUNT_OVERRUN",
        "ZERO_LENGTH",
        "MSG_OVERRUN",
        "UNKNOWN_TYPE",
        "BAD_LENGTH",
        "TRAILING",
        "OUT_FULL",
    )
}


def walk(data, cap=16):
    hdr = ffi.new("fh_pitch_unit_t *")
    out = ffi.new("fh_pitch_msg_t[]", max(cap, 1))
    errors = ffi.new("uint64_t[]", lib.FH_PITCH_ERR__COUNT)
    buf = ffi.new("uint8_t[]", data) if data else b""
    n = lib.fh_pitch_walk_unit(buf, len(data), hdr, out, cap, errors)
    counted = {name: errors[i] for name, i in ERR.items() if errors[i]}
    return [fields(out[i]) for i in range(n)], hdr, counted


def test_error_enum_is_its_own():
    assert sorted(ERR.values()) == list(range(lib.FH_PITCH_ERR__COUNT))
    assert lib.FH_ERR__COUNT == 53  # the pipeline counts PITCH (and IEX) errors in its own enum (fh_err)


def test_walk_a_unit_with_an_unknown_type_and_a_truncated_last_message():
    rpi = msg(0x98, "I8sc", TOFF, b"SPY     ", b"B")  # Retail Price Improvement: not decoded here
    truncated = CASES["add_long"][0][:10]  # its Length byte still says 34
    msgs = [CASES["add_long"][0], rpi, CASES["modify_short"][0], time_(34_201), truncated]
    got, hdr, errs = walk(unit(msgs, seq=77))
    assert (hdr.length, hdr.count, hdr.unit, hdr.sequence) == (8 + sum(map(len, msgs)), 5, 3, 77)
    assert [m["type"] for m in got] == [0x21, 0x28, 0x20]
    assert got[0] == {**ZERO, **CASES["add_long"][1]} and got[1] == {**ZERO, **CASES["modify_short"][1]}
    assert got[2]["seconds"] == 34_201
    assert errs == {"UNKNOWN_TYPE": 1, "MSG_OVERRUN": 1}


def test_walk_every_type_in_one_unit():
    msgs = [d for d, _ in CASES.values()]
    got, hdr, errs = walk(unit(msgs), cap=32)
    assert errs == {} and hdr.count == 20
    assert got == [{**ZERO, **w} for _, w in CASES.values()]


def test_walk_skips_a_known_type_with_a_wrong_length():
    bad_delete = bytes([15]) + CASES["delete"][0][1:] + b"\0"
    got, _, errs = walk(unit([bad_delete, CASES["executed"][0]]))
    assert [m["type"] for m in got] == [0x23] and errs == {"BAD_LENGTH": 1}


def test_header_length_mismatch_counted():
    msgs = [CASES["delete"][0]]
    data = unit(msgs)
    for wrong in (len(data) + 5, len(data) - 1, 0):
        got, hdr, errs = walk(unit(msgs, length=wrong))
        assert hdr.length == wrong
        assert errs == {"HDR_LENGTH": 1} and [m["type"] for m in got] == [0x29]


def test_heartbeat_and_short_payloads():
    got, hdr, errs = walk(unit([], seq=5001, unit_no=9))
    assert got == [] and errs == {} and (hdr.length, hdr.count, hdr.unit, hdr.sequence) == (8, 0, 9, 5001)
    for n in range(8):
        got, hdr, errs = walk(bytes([8, 0, 1, 0, 1, 0, 0, 0])[:n])
        assert got == [] and errs == {"TRUNCATED": 1} and hdr.count == 0


def test_count_overrun_zero_length_trailing_and_full_output():
    d = CASES["delete"][0]
    got, _, errs = walk(unit([d, d], count=3))
    assert len(got) == 2 and errs == {"COUNT_OVERRUN": 1}
    got, _, errs = walk(unit([d, b"\x00" + bytes(13), d]))
    assert len(got) == 1 and errs == {"ZERO_LENGTH": 1}
    got, _, errs = walk(unit([d, b"\x01" + bytes(13)]))
    assert len(got) == 1 and errs == {"ZERO_LENGTH": 1}
    got, _, errs = walk(unit([d, d], count=1))
    assert len(got) == 1 and errs == {"TRAILING": 1}
    got, _, errs = walk(unit([d, d, d]), cap=1)
    assert len(got) == 1 and errs == {"OUT_FULL": 2}


def test_walk_hostile_units_stay_in_bounds():
    """Random datagrams (exact-size buffers: ASan builds see any overread)."""
    rnd = random.Random(14)
    good = [d for d, _ in CASES.values()]
    for _ in range(3000):
        msgs = [rnd.choice(good) for _ in range(rnd.randrange(0, 6))]
        data = bytearray(unit(msgs, count=rnd.randrange(0, 8)))
        for _ in range(rnd.randrange(0, 4)):
            if data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        data = bytes(data[: rnd.randrange(len(data) + 1)])
        got, _, _ = walk(data)
        assert len(got) <= max(len(data) - 8, 0) // 6
