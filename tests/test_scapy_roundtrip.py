"""Packets crafted with feedhandler.scapy_layers, decoded by the C core.

Every ITCH 5.0 type goes through Ether/IP/UDP/MoldUDP64 -> bytes -> fh_decode_frame
(and the bare message through fh_itch_decode), and must come back with exactly the
field values that went in.  The layers' field names and widths are also checked
against the C structs in csrc/fh_api.h, so the two sides cannot drift apart.
"""

import random
import re
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("scapy")

from scapy.fields import IntField, LongField  # noqa: E402
from scapy.layers.inet import IP, UDP, IPOption_EOL, IPOption_NOP, IPOption_Router_Alert  # noqa: E402
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from feedhandler import scapy_layers as sl  # noqa: E402
from feedhandler.core import (  # noqa: E402
    ERR_NAMES,
    decode_frame,
    decode_message,
    errbuf,
    errstr,
    ffi,
    lib,
    stats_to_dict,
)
from feedhandler.scapy_layers import (  # noqa: E402
    AlphaField,
    CharField,
    MoldBlock,
    MoldUDP64,
    SystemEvent,
)

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "fh_api.h"
TYPES = list(sl.ITCH_LENGTHS)
HDR_NAMES = ("message_type", "stock_locate", "tracking_number", "timestamp")


def _c_structs():
    """{letter: [(c_type, name, array_len or None)]} from the fh_itch_X_t typedefs."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    out = {}
    for body, letter in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*fh_itch_(\w)_t\s*;", text, re.S):
        fields = []
        for decl in body.split(";"):
            m = re.match(r"\s*(\w+)\s+(\w+)\s*(?:\[(\d+)\])?\s*$", decl)
            if m:
                fields.append((m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None))
        out[letter] = fields
    out["F"] = out["A"]  # F decodes into the A body, attribution included
    return out


C_STRUCTS = _c_structs()


def _body_fields(letter):
    return sl.ITCH_CLASSES[letter].fields_desc[len(HDR_NAMES) :]


def _c_body_names(letter):
    names = {n for _, n, _ in C_STRUCTS[letter] if not n.startswith("_")}
    if letter == "A":
        names.discard("attribution")
    return names


# ---------------------------------------------------------------- values


def _value(rng, fld, mode):
    if isinstance(fld, CharField):
        return {"zero": " ", "max": "~"}.get(mode) or chr(rng.randrange(0x21, 0x7F))
    if isinstance(fld, AlphaField):
        n = fld.sz
        if mode == "zero":
            return b" " * n
        if mode == "max":
            return b"Z" * n
        if mode == "binary":  # anything on the wire comes back as is
            return bytes(rng.randrange(256) for _ in range(n))
        word = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.") for _ in range(rng.randint(1, n)))
        return word.ljust(n, b" ")
    bits = 64 if isinstance(fld, LongField) else 32
    assert isinstance(fld, (IntField, LongField)), fld
    if mode == "zero":
        return 0
    if mode == "max":
        return (1 << bits) - 1
    return rng.getrandbits(bits)


def _values(rng, letter, mode="random"):
    """(scapy kwargs, expected decoder dict) for one message."""
    if mode == "zero":
        hdr = {"stock_locate": 0, "tracking_number": 0, "timestamp": 0}
    elif mode == "max":
        hdr = {"stock_locate": 0xFFFF, "tracking_number": 0xFFFF, "timestamp": (1 << 48) - 1}
    else:
        hdr = {
            "stock_locate": rng.getrandbits(16),
            "tracking_number": rng.getrandbits(16),
            "timestamp": rng.getrandbits(48),
        }
    body = {f.name: _value(rng, f, mode) for f in _body_fields(letter)}
    kwargs = {**hdr, **body}
    return kwargs, {"type": letter, **kwargs}


def _msg(letter, kwargs):
    return sl.ITCH_CLASSES[letter](**kwargs)


def _frame(blocks, l2=None, ip_options=None, **mold):
    eth = Ether(src="02:00:00:00:00:01", dst="01:00:5e:36:0c:6f")
    for tag in l2 or ():
        eth = eth / tag
    ip = IP(src="10.0.0.1", dst="233.54.12.111", options=ip_options or [])
    mold.setdefault("session", "SESSION001")
    mold.setdefault("sequence", 1)
    return eth / ip / UDP(sport=40000, dport=26477) / MoldUDP64(blocks=blocks, **mold)


def _decode(pkt):
    msgs, stats = decode_frame(bytes(pkt))
    return list(msgs), stats


def _err(enum_value):
    return ERR_NAMES[enum_value]


# ---------------------------------------------------------------- layer vs C header


@pytest.mark.parametrize("letter", TYPES)
def test_layer_fields_match_c_struct(letter):
    c_fields = {n: (t, a) for t, n, a in C_STRUCTS[letter] if not n.startswith("_")}
    layer = _body_fields(letter)
    assert {f.name for f in layer} == _c_body_names(letter)
    for f in layer:
        ctype, arr = c_fields[f.name]
        if isinstance(f, AlphaField):
            assert (ctype, arr) == ("char", f.sz), f.name
        elif isinstance(f, CharField):
            assert (ctype, arr) == ("uint8_t", None), f.name
        elif isinstance(f, LongField):
            assert (ctype, arr) == ("uint64_t", None), f.name
        else:
            assert isinstance(f, IntField) and (ctype, arr) == ("uint32_t", None), f.name


@pytest.mark.parametrize("letter", TYPES)
def test_message_length_matches_spec_and_core(letter):
    rng = random.Random(ord(letter))
    assert len(bytes(_msg(letter, _values(rng, letter)[0]))) == sl.ITCH_LENGTHS[letter]
    assert lib.fh_itch_msg_len(ord(letter)) == sl.ITCH_LENGTHS[letter]


# ---------------------------------------------------------------- one type at a time


@pytest.mark.parametrize("letter", TYPES)
def test_roundtrip_each_type(letter):
    rng = random.Random(0x17C4 * 31 + ord(letter))
    cases = [_values(rng, letter, m) for m in ("zero", "max", "binary")]
    cases += [_values(rng, letter) for _ in range(12)]
    for kwargs, want in cases:
        msg = _msg(letter, kwargs)
        assert decode_message(bytes(msg)) == want
        msgs, stats = _decode(_frame([msg], sequence=rng.getrandbits(64)))
        assert msgs == [want]
        assert stats["messages"] == 1
        assert stats["by_type"] == {letter: 1}
        assert stats["errors"] == {}


@pytest.mark.parametrize("letter", TYPES)
def test_decode_message_rejects_wrong_length(letter):
    raw = bytes(_msg(letter, _values(random.Random(5), letter)[0]))
    for bad in (raw[:-1], raw + b"\x00", raw[:1]):
        with pytest.raises(ValueError):
            decode_message(bad)


def test_decode_message_rejects_unknown_type():
    raw = bytearray(bytes(SystemEvent(event_code="O")))
    for t in b"Zaz0\x00\xff":
        raw[0] = t
        with pytest.raises(ValueError):
            decode_message(bytes(raw))


def test_code_fields_any_byte():
    """A one-byte code field is the character of the byte on the wire (latin-1)."""
    for b in (0x00, 0x01, 0x7F, 0x80, 0xFF):
        kwargs = {
            "order_reference_number": 1,
            "buy_sell_indicator": chr(b),
            "shares": 1,
            "stock": b"X       ",
            "price": 1,
            "stock_locate": 1,
            "tracking_number": 2,
            "timestamp": 3,
        }
        msgs, _ = _decode(_frame([sl.AddOrder(**kwargs)]))
        assert msgs == [{"type": "A", **kwargs}]


# ---------------------------------------------------------------- whole datagrams


def _all_types(seed):
    rng = random.Random(seed)
    pairs = [_values(rng, t) for t in TYPES]
    return [_msg(t, kw) for t, (kw, _) in zip(TYPES, pairs)], [w for _, w in pairs]


def _check_all(pkt, want):
    msgs, stats = _decode(pkt)
    assert msgs == want
    assert stats["messages"] == len(want)
    assert stats["by_type"] == {t: 1 for t in TYPES}
    assert stats["errors"] == {}


def test_all_types_in_one_datagram():
    blocks, want = _all_types(1)
    pkt = _frame(blocks, sequence=(1 << 64) - 1 - 22)
    assert Ether(bytes(pkt))[MoldUDP64].count == 23
    _check_all(pkt, want)
    # and in reverse order, to catch state carried from one block to the next
    _check_all(_frame(blocks[::-1]), want[::-1])


@pytest.mark.parametrize(
    "tags",
    [
        [Dot1Q(vlan=100)],
        [Dot1Q(vlan=4095, prio=7)],
        [Dot1AD(vlan=200), Dot1Q(vlan=300)],  # 802.1ad QinQ: 0x88A8 then 0x8100
        [Dot1Q(vlan=10), Dot1Q(vlan=20)],  # double 0x8100 tagging
    ],
    ids=["vlan", "vlan-max", "qinq-88a8", "qinq-8100"],
)
def test_vlan_frames(tags):
    blocks, want = _all_types(2)
    _check_all(_frame(blocks, l2=tags), want)


def test_three_vlan_tags_rejected():
    blocks, _ = _all_types(5)
    msgs, stats = _decode(_frame(blocks, l2=[Dot1AD(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3)]))
    assert msgs == []
    assert stats["errors"] == {_err(lib.FH_ERR_VLAN_TRUNCATED): 1}


@pytest.mark.parametrize(
    "options",
    [
        [IPOption_Router_Alert()],  # ihl 6
        [IPOption_NOP()] * 39 + [IPOption_EOL()],  # ihl 15, the maximum
    ],
    ids=["ihl6", "ihl15"],
)
def test_ipv4_options(options):
    blocks, want = _all_types(3)
    pkt = _frame(blocks, ip_options=options)
    ihl = Ether(bytes(pkt))[IP].ihl
    assert ihl > 5
    _check_all(pkt, want)


def test_vlan_and_ip_options():
    blocks, want = _all_types(4)
    _check_all(_frame(blocks, l2=[Dot1AD(vlan=1), Dot1Q(vlan=2)], ip_options=[IPOption_Router_Alert()]), want)


def test_ethernet_trailer_ignored():
    kwargs, want = _values(random.Random(9), "D")
    raw = bytes(_frame([_msg("D", kwargs)])) + b"\x00" * 12
    msgs, stats = decode_frame(raw)
    assert list(msgs) == [want] and stats["errors"] == {}


# ---------------------------------------------------------------- mold edge cases


def test_heartbeat_and_end_of_session():
    for count in (None, sl.MOLD_END_OF_SESSION):
        msgs, stats = _decode(_frame([], count=count))
        assert msgs == [] and stats["messages"] == 0
        assert stats["errors"] == {}


def _three(seed):
    rng = random.Random(seed)
    pairs = [_values(rng, t) for t in "ADE"]
    return [_msg(t, kw) for t, (kw, _) in zip("ADE", pairs)], [w for _, w in pairs]


def test_count_overrun():
    blocks, want = _three(11)
    msgs, stats = _decode(_frame(blocks, count=5))
    assert stats["errors"] == {_err(lib.FH_ERR_MOLD_COUNT_OVERRUN): 1}
    assert msgs == want[: len(msgs)]


def test_block_overrun():
    blocks, want = _three(12)
    blocks[2] = MoldBlock(length=200) / blocks[2]
    msgs, stats = _decode(_frame(blocks))
    assert stats["errors"] == {_err(lib.FH_ERR_MOLD_BLOCK_OVERRUN): 1}
    assert msgs == want[: len(msgs)] and len(msgs) <= 2


def test_trailing_bytes():
    blocks, want = _three(13)
    msgs, stats = _decode(_frame(blocks, count=2))
    assert stats["errors"] == {_err(lib.FH_ERR_MOLD_TRAILING): 1}
    assert msgs == want[:2]


def test_truncated_block_header():
    blocks, want = _three(14)
    msgs, stats = _decode(_frame(blocks + [Raw(b"\x00")], count=4))
    assert set(stats["errors"]) <= {_err(lib.FH_ERR_MOLD_BLOCK_OVERRUN), _err(lib.FH_ERR_MOLD_COUNT_OVERRUN)}
    assert stats["errors"]
    assert msgs == want[: len(msgs)]


def test_zero_length_block_skipped():
    blocks, want = _three(15)
    msgs, stats = _decode(_frame([blocks[0], MoldBlock(), blocks[1], blocks[2]]))
    assert stats["errors"] == {_err(lib.FH_ERR_MOLD_ZERO_BLOCK): 1}
    assert msgs == want


def test_unknown_type_skipped_by_length():
    blocks, want = _three(16)
    msgs, stats = _decode(_frame([blocks[0], MoldBlock() / Raw(b"Z" + bytes(30)), blocks[1], blocks[2]]))
    assert stats["errors"] == {_err(lib.FH_ERR_ITCH_UNKNOWN_TYPE): 1}
    assert msgs == want
    assert stats["by_type"] == {"A": 1, "D": 1, "E": 1}


def test_bad_length_skipped():
    blocks, want = _three(17)
    long_a = MoldBlock() / Raw(bytes(blocks[0]) + b"\x00")
    short_d = MoldBlock() / Raw(bytes(blocks[1])[:-1])
    msgs, stats = _decode(_frame([long_a, short_d, blocks[2]]))
    assert stats["errors"] == {_err(lib.FH_ERR_ITCH_BAD_LENGTH): 2}
    assert msgs == want[2:]


# ---------------------------------------------------------------- through a pcap file


@pytest.mark.slow
def test_docstring_example_pcap_replays(tmp_path):
    """The module docstring's example, written with wrpcap and replayed by the C core."""
    from scapy.utils import wrpcap

    ns = {}
    example = textwrap.dedent(sl.__doc__.split("Example::", 1)[1].split("\nMoldUDP64 is bound")[0])
    assert "wrpcap(" in example
    exec(example.replace('"two.pcap"', repr(str(tmp_path / "two.pcap"))), ns)
    blocks, _ = _all_types(6)
    wrpcap(
        str(tmp_path / "all.pcap"),
        [_frame(blocks, sequence=3), _frame([], sequence=26), _frame([], sequence=26, count=0xFFFF)],
    )
    for name, messages, by_type in (("two.pcap", 2, {"A": 1, "E": 1}), ("all.pcap", 23, {t: 1 for t in TYPES})):
        err = errbuf()
        r = ffi.gc(lib.fh_lane_new(ffi.new("fh_lane_cfg_t *"), err, len(err)), lib.fh_lane_free)
        assert r != ffi.NULL, errstr(err)
        rc = lib.fh_lane_replay_file(r, str(tmp_path / name).encode(), ffi.NULL, err, len(err))
        assert rc == 0, errstr(err)
        st = ffi.new("fh_stats_t *")
        lib.fh_lane_stats(r, st)
        stats = stats_to_dict(st)
        assert stats["messages"] == messages and stats["by_type"] == by_type
        assert stats["errors"] == {}
