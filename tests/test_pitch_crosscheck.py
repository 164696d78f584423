"""PITCH messages crafted with the scapy layers (feedhandler.scapy_pitch) decode in
the C reference decoder (csrc/probe/pitch_decode.c, feedhandler._probe) to the same fields: two implementations of the
layouts, written apart, checked against each other."""

import random

import pytest

pytest.importorskip("scapy")

from feedhandler import scapy_pitch as S  # noqa: E402
from feedhandler._probe import ffi, lib  # noqa: E402  (its FFI includes the core's: FH_DECODE_OK)


def decode(raw):
    m = ffi.new("fh_pitch_msg_t *")
    assert lib.fh_pitch_decode(raw, len(raw), m) == lib.FH_DECODE_OK, raw.hex()
    return m


def sym(m):
    return ffi.string(ffi.cast("char *", m.symbol), 8).decode().rstrip()


@pytest.mark.parametrize("seed", range(20))
def test_orders_and_trades_agree(seed):
    rnd = random.Random(seed)
    oid, qty, sid = rnd.randrange(1 << 63), rnd.randrange(1, 1 << 31), rnd.choice("BS")
    long_px, short_px = rnd.randrange(1 << 63), rnd.randrange(1 << 16)
    symbol6, symbol8 = "".join(rnd.choice("ABCXYZ") for _ in range(4)), "ABCDEFGH"[: rnd.randrange(1, 9)]
    cases = [
        (
            S.PitchAddOrderLong(
                time_offset=7,
                order_id=oid,
                side_indicator=sid,
                quantity=qty,
                symbol=symbol6,
                price=long_px,
                add_flags=1,
            ),
            dict(order_id=oid, qty=qty, price=long_px, sym=symbol6),
        ),
        (
            S.PitchAddOrderShort(
                time_offset=7,
                order_id=oid,
                side_indicator=sid,
                quantity=qty & 0xFFFF,
                symbol=symbol6,
                price=short_px,
                add_flags=1,
            ),
            dict(order_id=oid, qty=qty & 0xFFFF, price=short_px * 100, sym=symbol6),
        ),
        (
            S.PitchAddOrderExpanded(
                time_offset=7,
                order_id=oid,
                side_indicator=sid,
                quantity=qty,
                symbol=symbol8,
                price=long_px,
                add_flags=1,
            ),
            dict(order_id=oid, qty=qty, price=long_px, sym=symbol8),
        ),
        (
            S.PitchModifyOrderLong(time_offset=7, order_id=oid, quantity=qty, price=long_px, modify_flags=3),
            dict(order_id=oid, qty=qty, price=long_px),
        ),
        (
            S.PitchModifyOrderShort(time_offset=7, order_id=oid, quantity=qty & 0xFFFF, price=short_px, modify_flags=1),
            dict(order_id=oid, qty=qty & 0xFFFF, price=short_px * 100),
        ),
        (S.PitchOrderExecuted(time_offset=7, order_id=oid, executed_quantity=qty), dict(order_id=oid, qty=qty)),
        (S.PitchReduceSizeLong(time_offset=7, order_id=oid, canceled_quantity=qty), dict(order_id=oid, qty=qty)),
        (S.PitchDeleteOrder(time_offset=7, order_id=oid), dict(order_id=oid)),
        (
            S.PitchTradeLong(
                time_offset=7, order_id=oid, side_indicator=sid, quantity=qty, symbol=symbol6, price=long_px
            ),
            dict(order_id=oid, qty=qty, price=long_px, sym=symbol6),
        ),
    ]
    for pkt, want in cases:
        raw = bytes(pkt)
        assert len(raw) == S.PITCH_LENGTHS[raw[1]]
        m = decode(raw)
        assert m.type == raw[1] and m.time_offset_ns == 7
        for k, v in want.items():
            got = sym(m) if k == "sym" else int(getattr(m, k))
            assert got == v, (type(pkt).__name__, k, got, v)


def test_every_type_the_scapy_layer_builds_decodes():
    for t, cls in S.PITCH_CLASSES.items():
        raw = bytes(cls())
        assert len(raw) == S.PITCH_LENGTHS[t] == lib.fh_pitch_msg_len(t), hex(t)
        assert decode(raw).type == t


def test_a_unit_from_scapy_walks_in_c():
    msgs = [
        S.PitchTime(time_seconds=34200),
        S.PitchDeleteOrder(time_offset=1, order_id=9),
        S.PitchTradeBreak(time_offset=2, execution_id=5),
    ]
    payload = S.pitch_datagram(unit=3, sequence=1000, messages=msgs)
    hdr = ffi.new("fh_pitch_unit_t *")
    out = ffi.new("fh_pitch_msg_t[8]")
    errors = ffi.new("uint64_t[%d]" % lib.FH_PITCH_ERR__COUNT)
    n = lib.fh_pitch_walk_unit(payload, len(payload), hdr, out, 8, errors)
    assert n == 3 and (hdr.unit, hdr.sequence, hdr.count, hdr.length) == (3, 1000, 3, len(payload))
    assert [out[i].type for i in range(3)] == [0x20, 0x29, 0x2C] and out[0].seconds == 34200
    assert list(errors) == [0] * lib.FH_PITCH_ERR__COUNT
