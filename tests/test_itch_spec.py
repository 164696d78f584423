"""The one ITCH 5.0 message length table (csrc/itch_spec.h), checked against the
specification: what Python reads from the C core (fh_itch_msg_len, and the
copies built from it), what the decoder accepts, and what the generator writes.

The oracle is SPEC below, typed in from NASDAQ TotalView-ITCH 5.0 (section 1.x
message formats, "Total" length of each message, type byte included), not read
from any of the code under test."""

import struct

import pytest

from feedhandler import core, rewind
from feedhandler.core import ERR_NAMES, decode_frame, ffi, lib
from frames import frame, mold

# NASDAQ TotalView-ITCH 5.0 specification, message lengths in bytes.
SPEC = {
    "S": 12,  # 1.1   System Event
    "R": 39,  # 1.2.1 Stock Directory
    "H": 25,  # 1.2.2 Stock Trading Action
    "Y": 20,  # 1.2.3 Reg SHO Short Sale Price Test Restricted Indicator
    "L": 26,  # 1.2.4 Market Participant Position
    "V": 35,  # 1.2.5.1 MWCB Decline Level
    "W": 12,  # 1.2.5.2 MWCB Status
    "K": 28,  # 1.2.6 IPO Quoting Period Update
    "J": 35,  # 1.2.7 LULD Auction Collar
    "h": 21,  # 1.2.8 Operational Halt
    "A": 36,  # 1.3.1 Add Order - No MPID Attribution
    "F": 40,  # 1.3.2 Add Order with MPID Attribution
    "E": 31,  # 1.4.1 Order Executed
    "C": 36,  # 1.4.2 Order Executed With Price
    "X": 23,  # 1.4.3 Order Cancel
    "D": 19,  # 1.4.4 Order Delete
    "U": 35,  # 1.4.5 Order Replace
    "P": 44,  # 1.5.1 Trade (Non-Cross)
    "Q": 40,  # 1.5.2 Cross Trade
    "B": 19,  # 1.5.3 Broken Trade
    "I": 50,  # 1.6 Net Order Imbalance Indicator (NOII)
    "N": 20,  # 1.7 Retail Price Improvement Indicator (RPII)
    "O": 48,  # 1.8 Direct Listing with Capital Raise Price Discovery
}
TYPES = sorted(SPEC)


def message(t: str, n: int) -> bytes:
    """n bytes: type byte t, then a recognisable pattern (the decoder checks lengths, not values)."""
    return t.encode() + bytes((i * 7 + 1) & 0xFF for i in range(1, n))


def test_core_table_is_the_spec():
    got = {chr(b): int(lib.fh_itch_msg_len(b)) for b in range(256) if lib.fh_itch_msg_len(b)}
    assert got == SPEC
    assert all(lib.fh_itch_msg_len(b) == 0 for b in range(256) if chr(b) not in SPEC)


def test_python_tables_come_from_the_core():
    assert core.MSG_LENGTHS == SPEC
    # The rewind server holds no table at all now: the C input layer recognises a BinaryFILE for it.
    assert not hasattr(rewind, "_ITCH_LENGTHS")


@pytest.mark.parametrize("t", TYPES)
def test_decoder_takes_exactly_the_spec_length(t):
    n = SPEC[t]
    m = ffi.new("fh_book_op_t *")
    assert lib.fh_itch_decode(message(t, n), n, m) == lib.FH_DECODE_OK and chr(m.type) == t
    # One byte short and one byte long: rejected, whatever the bytes.  The short
    # buffer is exactly that size, so ASan (scripts/test.sh) sees any read past it.
    short = message(t, n - 1)
    assert lib.fh_itch_decode(short, len(short), m) == lib.FH_DECODE_BAD_LENGTH
    long_ = message(t, n + 1)
    assert lib.fh_itch_decode(long_, len(long_), m) == lib.FH_DECODE_BAD_LENGTH
    with pytest.raises(ValueError, match="expected %d" % n):
        core.decode_message(short)


@pytest.mark.parametrize("t", TYPES)
def test_frame_path_counts_a_block_off_by_one_as_bad_length(t):
    """The hot path (MoldUDP64 blocks in a frame) checks the same lengths."""
    n = SPEC[t]
    msgs, st = decode_frame(frame(mold([message(t, n)])))
    assert [x["type"] for x in msgs] == [t] and st["errors"] == {}
    for bad in (n - 1, n + 1):
        msgs, st = decode_frame(frame(mold([message(t, bad)])))
        assert msgs == [] and st["errors"] == {ERR_NAMES[lib.FH_ERR_ITCH_BAD_LENGTH]: 1}


def test_other_type_bytes_are_unknown():
    m = ffi.new("fh_book_op_t *")
    for b in range(256):
        if chr(b) in SPEC:
            continue
        data = bytes([b]) + bytes(49)
        assert lib.fh_itch_decode(data, len(data), m) == lib.FH_DECODE_UNKNOWN_TYPE, b


def test_generator_writes_the_spec_lengths(tmp_path):
    """The generator (its own extension) writes every record at the spec length."""
    from feedhandler.gen import generate

    s = generate(str(tmp_path / "d"), messages=20_000, symbols=20, seed=11, progress=False)
    data = (tmp_path / "d.bin").read_bytes()
    seen, off = {}, 0
    while off < len(data):
        (n,) = struct.unpack_from(">H", data, off)
        t = chr(data[off + 2])
        assert n == SPEC[t], (t, n)
        seen[t] = seen.get(t, 0) + 1
        off += 2 + n
    assert off == len(data) and sum(seen.values()) == s["messages"] == 20_000
    assert set(seen) == set(SPEC)  # a full day has every type
