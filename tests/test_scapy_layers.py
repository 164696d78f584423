"""The scapy layers against the ITCH 5.0 / MoldUDP64 wire format, without the C core.

The wire layouts below are written out from the NASDAQ specifications, independent
of feedhandler/scapy_layers.py, so a wrong field order or width there fails here.
"""

import random
import struct

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from feedhandler import scapy_layers as sl  # noqa: E402
from feedhandler.scapy_layers import (  # noqa: E402
    AddOrder,
    ItchMessage,
    MoldBlock,
    MoldUDP64,
    OrderDelete,
    SystemEvent,
    bind_port,
)

# Body fields in wire order: 'c' Alpha(1) code, 'I' u32, 'Q' u64, 'sN' Alpha(N).
_ADD = [("order_reference_number", "Q"), ("buy_sell_indicator", "c"), ("shares", "I"), ("stock", "s8"), ("price", "I")]
WIRE = {
    "S": [("event_code", "c")],
    "R": [
        ("stock", "s8"),
        ("market_category", "c"),
        ("financial_status_indicator", "c"),
        ("round_lot_size", "I"),
        ("round_lots_only", "c"),
        ("issue_classification", "c"),
        ("issue_sub_type", "s2"),
        ("authenticity", "c"),
        ("short_sale_threshold_indicator", "c"),
        ("ipo_flag", "c"),
        ("luld_reference_price_tier", "c"),
        ("etp_flag", "c"),
        ("etp_leverage_factor", "I"),
        ("inverse_indicator", "c"),
    ],
    "H": [("stock", "s8"), ("trading_state", "c"), ("reserved", "c"), ("reason", "s4")],
    "Y": [("stock", "s8"), ("reg_sho_action", "c")],
    "L": [
        ("mpid", "s4"),
        ("stock", "s8"),
        ("primary_market_maker", "c"),
        ("market_maker_mode", "c"),
        ("market_participant_state", "c"),
    ],
    "V": [("level_1", "Q"), ("level_2", "Q"), ("level_3", "Q")],
    "W": [("breached_level", "c")],
    "K": [
        ("stock", "s8"),
        ("ipo_quotation_release_time", "I"),
        ("ipo_quotation_release_qualifier", "c"),
        ("ipo_price", "I"),
    ],
    "J": [
        ("stock", "s8"),
        ("auction_collar_reference_price", "I"),
        ("upper_auction_collar_price", "I"),
        ("lower_auction_collar_price", "I"),
        ("auction_collar_extension", "I"),
    ],
    "h": [("stock", "s8"), ("market_code", "c"), ("operational_halt_action", "c")],
    "A": _ADD,
    "F": _ADD + [("attribution", "s4")],
    "E": [("order_reference_number", "Q"), ("executed_shares", "I"), ("match_number", "Q")],
    "C": [
        ("order_reference_number", "Q"),
        ("executed_shares", "I"),
        ("match_number", "Q"),
        ("printable", "c"),
        ("execution_price", "I"),
    ],
    "X": [("order_reference_number", "Q"), ("cancelled_shares", "I")],
    "D": [("order_reference_number", "Q")],
    "U": [
        ("original_order_reference_number", "Q"),
        ("new_order_reference_number", "Q"),
        ("shares", "I"),
        ("price", "I"),
    ],
    "P": [
        ("order_reference_number", "Q"),
        ("buy_sell_indicator", "c"),
        ("shares", "I"),
        ("stock", "s8"),
        ("price", "I"),
        ("match_number", "Q"),
    ],
    "Q": [("shares", "Q"), ("stock", "s8"), ("cross_price", "I"), ("match_number", "Q"), ("cross_type", "c")],
    "B": [("match_number", "Q")],
    "I": [
        ("paired_shares", "Q"),
        ("imbalance_shares", "Q"),
        ("imbalance_direction", "c"),
        ("stock", "s8"),
        ("far_price", "I"),
        ("near_price", "I"),
        ("current_reference_price", "I"),
        ("cross_type", "c"),
        ("price_variation_indicator", "c"),
    ],
    "N": [("stock", "s8"), ("interest_flag", "c")],
    "O": [
        ("stock", "s8"),
        ("open_eligibility_status", "c"),
        ("minimum_allowable_price", "I"),
        ("maximum_allowable_price", "I"),
        ("near_execution_price", "I"),
        ("near_execution_time", "Q"),
        ("lower_price_range_collar", "I"),
        ("upper_price_range_collar", "I"),
    ],
}
SPEC_LEN = {
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
TYPES = list(SPEC_LEN)


def _rand_value(rng, code):
    if code == "c":
        return chr(rng.randrange(0x21, 0x7F))
    if code == "I":
        return rng.getrandbits(32)
    if code == "Q":
        return rng.getrandbits(64)
    n = int(code[1:])
    return bytes(rng.randrange(0x41, 0x5B) for _ in range(rng.randint(1, n))).ljust(n, b" ")


def _hand_pack(letter, hdr, body):
    out = letter.encode() + struct.pack(">HH", hdr["stock_locate"], hdr["tracking_number"])
    out += struct.pack(">Q", hdr["timestamp"])[2:]
    for name, code in WIRE[letter]:
        v = body[name]
        if code == "c":
            out += v.encode("latin-1")
        elif code in ("I", "Q"):
            out += struct.pack(">" + code, v)
        else:
            out += v
    return out


def _random_msg(rng, letter):
    hdr = {
        "stock_locate": rng.getrandbits(16),
        "tracking_number": rng.getrandbits(16),
        "timestamp": rng.getrandbits(48),
    }
    body = {name: _rand_value(rng, code) for name, code in WIRE[letter]}
    return hdr, body


def test_every_type_is_registered():
    assert set(sl.ITCH_CLASSES) == set(SPEC_LEN)
    assert sl.ITCH_LENGTHS == SPEC_LEN


@pytest.mark.parametrize("letter", TYPES)
def test_field_names_and_order(letter):
    cls = sl.ITCH_CLASSES[letter]
    names = [f.name for f in cls.fields_desc]
    assert names[:4] == ["message_type", "stock_locate", "tracking_number", "timestamp"]
    assert names[4:] == [n for n, _ in WIRE[letter]]


@pytest.mark.parametrize("letter", TYPES)
def test_default_message_length(letter):
    msg = sl.ITCH_CLASSES[letter]()
    raw = bytes(msg)
    assert len(raw) == SPEC_LEN[letter]
    assert raw[:1] == letter.encode()
    assert msg.message_type == letter


@pytest.mark.parametrize("letter", TYPES)
def test_bytes_match_hand_packed_wire_format(letter):
    rng = random.Random(1000 + ord(letter))
    for _ in range(5):
        hdr, body = _random_msg(rng, letter)
        msg = sl.ITCH_CLASSES[letter](**hdr, **body)
        want = _hand_pack(letter, hdr, body)
        assert len(want) == SPEC_LEN[letter]
        assert bytes(msg) == want
        # and back: the generic class picks the type from the first byte
        back = ItchMessage(want)
        assert type(back) is sl.ITCH_CLASSES[letter]
        for k, v in {**hdr, **body}.items():
            assert back.getfieldval(k) == v, k
        assert Raw not in back


def test_extreme_header_values():
    msg = AddOrder(
        stock_locate=0xFFFF,
        tracking_number=0xFFFF,
        timestamp=(1 << 48) - 1,
        order_reference_number=(1 << 64) - 1,
        shares=0xFFFFFFFF,
        price=0xFFFFFFFF,
    )
    raw = bytes(msg)
    assert raw[1:11] == b"\xff" * 10
    assert raw[11:19] == b"\xff" * 8
    back = AddOrder(raw)
    assert back.timestamp == (1 << 48) - 1
    assert back.order_reference_number == (1 << 64) - 1
    with pytest.raises(ValueError):
        bytes(AddOrder(timestamp=1 << 48))


def test_alpha_fields_space_padded():
    msg = sl.AddOrderMPID(stock="AAPL", attribution=b"GS")
    assert msg.stock == b"AAPL    "
    raw = bytes(msg)
    assert raw[24:32] == b"AAPL    "
    assert raw[36:40] == b"GS  "
    assert bytes(AddOrder())[24:32] == b" " * 8  # unset stock: spaces, not NULs
    assert bytes(sl.StockDirectory(issue_sub_type="Z"))[27:29] == b"Z "
    assert bytes(SystemEvent())[11:12] == b" "


def test_char_fields_accept_str_int_bytes():
    assert bytes(AddOrder(buy_sell_indicator="S"))[19:20] == b"S"
    assert bytes(AddOrder(buy_sell_indicator=ord("B")))[19:20] == b"B"
    assert bytes(AddOrder(buy_sell_indicator=b"B"))[19:20] == b"B"
    assert AddOrder(bytes(AddOrder(buy_sell_indicator="S"))).buy_sell_indicator == "S"
    with pytest.raises(ValueError):
        AddOrder(buy_sell_indicator="BS")


def _frame(mold, vlan=False):
    eth = Ether(src="02:00:00:00:00:01", dst="01:00:5e:36:0c:6f")
    if vlan:
        eth = eth / Dot1Q(vlan=100)
    return eth / IP(src="10.0.0.1", dst="233.54.12.111") / UDP(sport=40000, dport=26477) / mold


def test_mold_header_layout():
    mold = MoldUDP64(
        session="SESSION001",
        sequence=0x0102030405060708,
        blocks=[SystemEvent(event_code="O"), OrderDelete(order_reference_number=9)],
    )
    raw = bytes(mold)
    assert raw[:10] == b"SESSION001"
    assert raw[10:18] == bytes(range(1, 9))
    assert raw[18:20] == b"\x00\x02"
    assert raw[20:22] == b"\x00\x0c" and raw[22:23] == b"S"
    assert raw[34:36] == b"\x00\x13" and raw[36:37] == b"D"
    assert len(raw) == 20 + 2 + 12 + 2 + 19
    assert bytes(MoldUDP64(session="AB"))[:10] == b"AB        "


def test_dissect_frame_into_blocks():
    rng = random.Random(7)
    msgs = []
    for letter in TYPES:
        hdr, body = _random_msg(rng, letter)
        msgs.append((letter, {**hdr, **body}))
    pkt = _frame(MoldUDP64(session="S1", sequence=42, blocks=[sl.ITCH_CLASSES[t](**v) for t, v in msgs]), vlan=True)
    back = Ether(bytes(pkt))
    mold = back[MoldUDP64]
    assert mold.session == b"S1        "
    assert mold.sequence == 42
    assert mold.count == len(TYPES)
    assert len(mold.blocks) == len(TYPES)
    for blk, (letter, values) in zip(mold.blocks, msgs):
        assert isinstance(blk, MoldBlock)
        assert blk.length == SPEC_LEN[letter]
        msg = blk.payload
        assert type(msg) is sl.ITCH_CLASSES[letter]
        assert msg.message_type == letter
        for k, v in values.items():
            assert msg.getfieldval(k) == v, (letter, k)
        assert Raw not in blk
    assert Raw not in mold and sl.conf.padding_layer not in mold


def test_blocks_accept_moldblocks_and_bare_messages():
    a = MoldUDP64(blocks=[MoldBlock() / SystemEvent(event_code="Q"), SystemEvent(event_code="Q")])
    raw = bytes(a)
    assert raw[20:34] == raw[34:48]
    assert all(isinstance(b, MoldBlock) for b in a.blocks)


def test_heartbeat():
    pkt = _frame(MoldUDP64(session="S1", sequence=100))
    raw = bytes(pkt)
    assert len(raw) == 14 + 20 + 8 + 20
    mold = Ether(raw)[MoldUDP64]
    assert mold.count == 0 and mold.blocks == [] and mold.sequence == 100
    assert len(bytes(mold)) == 20


def test_end_of_session():
    pkt = _frame(MoldUDP64(session="S1", sequence=5000, count=sl.MOLD_END_OF_SESSION))
    raw = bytes(pkt)
    assert raw[-2:] == b"\xff\xff"
    mold = Ether(raw)[MoldUDP64]
    assert mold.count == 0xFFFF and mold.blocks == []


def test_explicit_wrong_count_is_kept():
    mold = MoldUDP64(count=3, blocks=[SystemEvent()])
    raw = bytes(mold)
    assert raw[18:20] == b"\x00\x03"
    back = MoldUDP64(raw)
    assert back.count == 3 and len(back.blocks) == 1
    # fewer counted than present: the rest is left over, not a block
    back = MoldUDP64(bytes(MoldUDP64(count=1, blocks=[SystemEvent(), SystemEvent()])))
    assert len(back.blocks) == 1
    assert bytes(back.payload) == bytes(MoldBlock() / SystemEvent())


def test_malformed_blocks():
    # a block whose length runs past the datagram
    lying = MoldBlock(length=200) / OrderDelete(order_reference_number=1)
    raw = bytes(MoldUDP64(blocks=[lying]))
    assert raw[20:22] == b"\x00\xc8" and len(raw) == 20 + 2 + 19
    back = MoldUDP64(raw)
    assert back.blocks[0].length == 200
    # a raw element is written as is: here a block cut inside its length field
    raw = bytes(MoldUDP64(count=2, blocks=[SystemEvent(), Raw(b"\x00")]))
    assert raw[-1:] == b"\x00" and len(raw) == 20 + 14 + 1
    # a zero-length block
    raw = bytes(MoldUDP64(blocks=[MoldBlock(), SystemEvent()]))
    assert raw[20:22] == b"\x00\x00"
    back = MoldUDP64(raw)
    assert back.blocks[0].length == 0 and isinstance(back.blocks[1].payload, SystemEvent)


def test_unknown_type_and_short_block_dissect_as_raw():
    raw = bytes(MoldUDP64(blocks=[MoldBlock() / Raw(b"Zhello"), MoldBlock() / Raw(b"A\x00\x01"), SystemEvent()]))
    back = MoldUDP64(raw)
    assert len(back.blocks) == 3
    assert isinstance(back.blocks[0].payload, Raw) and back.blocks[0].length == 6
    assert back.blocks[0].payload.load == b"Zhello"
    assert back.blocks[1].length == 3 and not isinstance(back.blocks[1].payload, AddOrder)
    assert isinstance(back.blocks[2].payload, SystemEvent)
    assert isinstance(ItchMessage(b"Zxyz"), Raw)


def test_bind_port():
    pkt = Ether() / IP() / UDP(sport=1234, dport=31999) / MoldUDP64(blocks=[SystemEvent()])
    assert MoldUDP64 not in Ether(bytes(pkt))
    bind_port(31999)
    assert isinstance(Ether(bytes(pkt))[MoldUDP64].blocks[0].payload, SystemEvent)
    # scapy's default UDP source port 53 does not turn it into DNS
    pkt = Ether() / IP() / UDP() / MoldUDP64(blocks=[SystemEvent()])
    assert pkt[UDP].dport == 26477
    assert MoldUDP64 in Ether(bytes(pkt))
