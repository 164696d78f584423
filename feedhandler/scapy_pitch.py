"""Scapy layers for Cboe US Equities Multicast PITCH (BZX / BYX / EDGX / EDGA).

For crafting test input and inspecting captures by hand, like
:mod:`feedhandler.scapy_layers` (whose optional-extra rule applies: without
scapy, importing this module raises the same ImportError).  Every layer and
helper here is also reachable as ``feedhandler.scapy_layers.<name>``.

The wire layouts are those of ``docs/pitch-spec-notes.md`` (sections 2-4):

* a datagram is one **Sequenced Unit Header** (8 bytes: ``length`` u16 LE, the
  whole block including the header; ``count`` u8; ``unit`` u8; ``sequence``
  u32 LE, the sequence of the first message) followed by ``count`` messages
  (``count`` 0 is a heartbeat).  The notes' "Hdr Length/Count/Unit/Sequence";
* every message starts with ``length`` (u8, counts itself and the type byte)
  and ``message_type`` (u8); then the fields in wire order, unaligned;
* field names are the notes' in snake_case (``time_offset``, ``order_id``,
  ``side_indicator``, ...), except Time's ``time_seconds`` (scapy owns ``time``);
* integers are unsigned **little-endian**; prices are the raw integers: long
  prices 8 bytes with 4 implied decimals, short prices 2 bytes with 2 implied
  decimals (``pitch_price`` converts either to ITCH ``Price(4)`` units);
* symbols are ``bytes`` of 6 or 8, left-justified and space padded
  (``symbol="AAPL"`` is ``b"AAPL  "``); one-byte codes (``side_indicator``,
  ``trading_status``, ...) are 1-char ``str``; flag bytes are ints.

``length`` and ``count`` are filled in when left ``None``; set them to craft
malformed input.  Dissection advances by each message's own length byte: an
unknown type, or a message too short for its type, becomes a ``PitchUnknown``
(raw ``load``) of that length; bytes past a known message's fields (a longer
future version) stay in a trailing ``Padding`` and are written back as is.

Example::

    from scapy.all import Ether, IP, UDP
    from feedhandler.scapy_pitch import (PitchUnitHeader, PitchTime,
        PitchAddOrderLong, bind_pitch_port, pitch_datagram)

    payload = pitch_datagram(unit=3, sequence=1000, messages=[
        PitchTime(time_seconds=34200),
        PitchAddOrderLong(time_offset=500, order_id=1, side_indicator="B",
                          quantity=100, symbol="AAPL", price=1500000, add_flags=1),
    ])
    bind_pitch_port(30001)          # dissect UDP to port 30001 as PITCH
    pkt = Ether() / IP(dst="224.0.62.2") / UDP(dport=30001) / payload
    Ether(bytes(pkt))[PitchUnitHeader].messages[1].price   # 1500000
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, Type, Union

from .scapy_layers import AlphaField, CharField  # raises the optional-extra ImportError without scapy

from scapy.config import conf
from scapy.fields import (
    ByteField,
    ConditionalField,
    FieldLenField,
    LEIntField,
    LELongField,
    LEShortField,
    PacketListField,
    StrLenField,
    XByteField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_bottom_up, bind_top_down

__all__ = [
    "PITCH_LENGTHS",
    "PITCH_CLASSES",
    "PITCH_HEADER_LEN",
    "pitch_price",
    "pitch_datagram",
    "bind_pitch_port",
    "PitchUnitHeader",
    "PitchMessage",
    "PitchUnknown",
    "PitchTime",
    "PitchUnitClear",
    "PitchAddOrderLong",
    "PitchAddOrderShort",
    "PitchAddOrderExpanded",
    "PitchOrderExecuted",
    "PitchOrderExecutedAtPriceSize",
    "PitchReduceSizeLong",
    "PitchReduceSizeShort",
    "PitchModifyOrderLong",
    "PitchModifyOrderShort",
    "PitchDeleteOrder",
    "PitchTradeLong",
    "PitchTradeShort",
    "PitchTradeExpanded",
    "PitchTradeBreak",
    "PitchEndOfSession",
    "PitchTradingStatus",
    "PitchAuctionUpdate",
    "PitchAuctionSummary",
]

PITCH_HEADER_LEN = 8

# Total message length (the value of the Length byte, which counts the Length
# and Type bytes) per type: docs/pitch-spec-notes.md section 4.
PITCH_LENGTHS: Dict[int, int] = {
    0x20: 6,  # Time
    0x97: 6,  # Unit Clear
    0x21: 34,  # Add Order Long
    0x22: 26,  # Add Order Short
    # Add Order Expanded: 41 in the current spec (v2.41.64 / v2.41.82, with the
    # Customer Indicator byte); 40 in the older BATS-era spec, without it.  The
    # layer dissects both (customer_indicator is only present when length >= 41).
    0x2F: 41,
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

PITCH_CLASSES: Dict[int, Type["PitchMessage"]] = {}


def pitch_price(pkt_field_value: int, short: bool = False) -> int:
    """A raw PITCH price in ITCH ``Price(4)`` units (4 implied decimals): long
    prices already are; short prices (2 implied decimals) are multiplied by 100."""
    v = int(pkt_field_value)
    return v * 100 if short else v


# ------------------------------------------------------------------ messages


class PitchMessage(Packet):
    """Base of the PITCH message classes.  ``PitchMessage(raw)`` returns the class
    named by the type byte (``PitchUnknown`` for an unknown type)."""

    name = "PITCH"
    fields_desc = [ByteField("length", None), XByteField("message_type", 0)]
    type_code = None  # type: int

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if cls is PitchMessage and _pkt:
            if len(_pkt) < 2:
                return PitchUnknown
            return PITCH_CLASSES.get(_pkt[1], PitchUnknown)
        return cls

    def post_build(self, p, pay):
        if self.length is None:
            n = len(p) + len(pay)
            if n > 255:
                raise ValueError("%s: %d bytes do not fit the 1-byte length" % (self.name, n))
            p = bytes([n]) + p[1:]
        return p + pay

    def extract_padding(self, s):
        # No payload layer: bytes past the fields (a longer message) are padding.
        return b"", s

    def mysummary(self):
        return "PITCH 0x%02X %s" % (self.message_type, self.name)


class PitchUnknown(PitchMessage):
    """A message of a type these layers do not know (or too short for its type):
    length, type, and the rest of its ``length`` bytes raw."""

    name = "PITCH Unknown"
    fields_desc = [
        ByteField("length", None),
        XByteField("message_type", 0),
        StrLenField("load", b"", length_from=lambda p: max(0, (p.length if p.length is not None else 2) - 2)),
    ]


def _pitch(code, clsname, title, body):
    cls = type(
        clsname,
        (PitchMessage,),
        {
            "name": "PITCH %s" % title,
            "fields_desc": [ByteField("length", None), XByteField("message_type", code)] + body,
            "type_code": code,
            "__doc__": "Cboe PITCH 0x%02X %s, %d bytes." % (code, title, PITCH_LENGTHS[code]),
            "__module__": __name__,
        },
    )
    PITCH_CLASSES[code] = cls
    return cls


def _to():
    return LEIntField("time_offset", 0)


def _oid():
    return LELongField("order_id", 0)


def _side():
    return CharField("side_indicator", "B")


def _sym(n):
    return AlphaField("symbol", b"", n)


def _long_price(name="price"):
    return LELongField(name, 0)


def _short_price(name="price"):
    return LEShortField(name, 0)


# The notes' "Time" field is ``time_seconds``: scapy's Packet.time (capture timestamp) owns ``time``.
PitchTime = _pitch(0x20, "PitchTime", "Time", [LEIntField("time_seconds", 0)])
PitchUnitClear = _pitch(0x97, "PitchUnitClear", "Unit Clear", [_to()])
PitchAddOrderLong = _pitch(
    0x21,
    "PitchAddOrderLong",
    "Add Order Long",
    [
        _to(),
        _oid(),
        _side(),
        LEIntField("quantity", 0),
        _sym(6),
        _long_price(),
        XByteField("add_flags", 1),
    ],
)
PitchAddOrderShort = _pitch(
    0x22,
    "PitchAddOrderShort",
    "Add Order Short",
    [
        _to(),
        _oid(),
        _side(),
        LEShortField("quantity", 0),
        _sym(6),
        _short_price(),
        XByteField("add_flags", 1),
    ],
)
PitchAddOrderExpanded = _pitch(
    0x2F,
    "PitchAddOrderExpanded",
    "Add Order Expanded",
    [
        _to(),
        _oid(),
        _side(),
        LEIntField("quantity", 0),
        _sym(8),
        _long_price(),
        XByteField("add_flags", 1),
        AlphaField("participant_id", b"", 4),
        # absent in the older 40-byte layout: build with length=40 to leave it out
        ConditionalField(CharField("customer_indicator", " "), lambda p: p.length is None or p.length >= 41),
    ],
)
PitchOrderExecuted = _pitch(
    0x23,
    "PitchOrderExecuted",
    "Order Executed",
    [
        _to(),
        _oid(),
        LEIntField("executed_quantity", 0),
        LELongField("execution_id", 0),
    ],
)
PitchOrderExecutedAtPriceSize = _pitch(
    0x24,
    "PitchOrderExecutedAtPriceSize",
    "Order Executed at Price/Size",
    [
        _to(),
        _oid(),
        LEIntField("executed_quantity", 0),
        LEIntField("remaining_quantity", 0),
        LELongField("execution_id", 0),
        _long_price(),
    ],
)
PitchReduceSizeLong = _pitch(
    0x25,
    "PitchReduceSizeLong",
    "Reduce Size Long",
    [
        _to(),
        _oid(),
        LEIntField("canceled_quantity", 0),
    ],
)
PitchReduceSizeShort = _pitch(
    0x26,
    "PitchReduceSizeShort",
    "Reduce Size Short",
    [
        _to(),
        _oid(),
        LEShortField("canceled_quantity", 0),
    ],
)
PitchModifyOrderLong = _pitch(
    0x27,
    "PitchModifyOrderLong",
    "Modify Order Long",
    [
        _to(),
        _oid(),
        LEIntField("quantity", 0),
        _long_price(),
        XByteField("modify_flags", 1),
    ],
)
PitchModifyOrderShort = _pitch(
    0x28,
    "PitchModifyOrderShort",
    "Modify Order Short",
    [
        _to(),
        _oid(),
        LEShortField("quantity", 0),
        _short_price(),
        XByteField("modify_flags", 1),
    ],
)
PitchDeleteOrder = _pitch(0x29, "PitchDeleteOrder", "Delete Order", [_to(), _oid()])
PitchTradeLong = _pitch(
    0x2A,
    "PitchTradeLong",
    "Trade Long",
    [
        _to(),
        _oid(),
        _side(),
        LEIntField("quantity", 0),
        _sym(6),
        _long_price(),
        LELongField("execution_id", 0),
    ],
)
PitchTradeShort = _pitch(
    0x2B,
    "PitchTradeShort",
    "Trade Short",
    [
        _to(),
        _oid(),
        _side(),
        LEShortField("quantity", 0),
        _sym(6),
        _short_price(),
        LELongField("execution_id", 0),
    ],
)
PitchTradeExpanded = _pitch(
    0x30,
    "PitchTradeExpanded",
    "Trade Expanded",
    [
        _to(),
        _oid(),
        _side(),
        LEIntField("quantity", 0),
        _sym(8),
        _long_price(),
        LELongField("execution_id", 0),
    ],
)
PitchTradeBreak = _pitch(
    0x2C,
    "PitchTradeBreak",
    "Trade Break",
    [
        _to(),
        LELongField("execution_id", 0),
    ],
)
PitchEndOfSession = _pitch(0x2D, "PitchEndOfSession", "End of Session", [_to()])
PitchTradingStatus = _pitch(
    0x31,
    "PitchTradingStatus",
    "Trading Status",
    [
        _to(),
        _sym(8),
        CharField("trading_status", "T"),
        CharField("reg_sho_action", "0"),
        CharField("reserved1", " "),
        CharField("reserved2", " "),
    ],
)
PitchAuctionUpdate = _pitch(
    0x95,
    "PitchAuctionUpdate",
    "Auction Update",
    [
        _to(),
        _sym(8),
        CharField("auction_type", "O"),
        _long_price("reference_price"),
        LEIntField("buy_shares", 0),
        LEIntField("sell_shares", 0),
        _long_price("indicative_price"),
        _long_price("auction_only_price"),
    ],
)
PitchAuctionSummary = _pitch(
    0x96,
    "PitchAuctionSummary",
    "Auction Summary",
    [
        _to(),
        _sym(8),
        CharField("auction_type", "O"),
        _long_price(),
        LEIntField("shares", 0),
    ],
)


def _min_length(code):
    # Add Order Expanded: the older 40-byte layout (no Customer Indicator) is accepted too.
    return 40 if code == 0x2F else PITCH_LENGTHS[code]


def _dissect_message(chunk: bytes) -> PitchMessage:
    """One message from exactly its ``length`` bytes (fewer if the datagram is truncated).
    A lone byte (not even a type) is kept as ``Raw``."""
    if len(chunk) < 2:
        return conf.raw_layer(load=chunk)
    if (
        len(chunk) >= 2
        and chunk[1] in PITCH_CLASSES
        and len(chunk) >= _min_length(chunk[1])
        and chunk[0] >= _min_length(chunk[1])
    ):
        try:
            return PITCH_CLASSES[chunk[1]](chunk)
        except Exception:
            if conf.debug_dissector:
                raise
    return PitchUnknown(chunk)


# ------------------------------------------------------------------ unit header


class _MessageListField(PacketListField):
    """The messages after a Sequenced Unit Header: up to ``count`` of them, each
    sized by its own length byte.  Messages given as ``bytes`` are dissected."""

    def any2i(self, pkt, x):
        if isinstance(x, (bytes, bytearray)):
            x = _dissect_message(bytes(x))
        elif isinstance(x, list):
            x = [_dissect_message(bytes(i)) if isinstance(i, (bytes, bytearray)) else i for i in x]
        return super().any2i(pkt, x)

    def getfield(self, pkt, s):
        n = pkt.count if pkt.count is not None else 255
        out = []
        while s and len(out) < n:
            ln = s[0]
            if ln < 2:  # cannot advance by it: the rest is one unknown message
                ln = len(s)
            chunk, s = s[:ln], s[ln:]
            out.append(_dissect_message(chunk))
        return s, out


class PitchUnitHeader(Packet):
    """Sequenced Unit Header (8 bytes, little-endian) and its ``messages``.
    ``length`` (whole block, header included) and ``count`` are computed when None."""

    name = "PITCH Sequenced Unit Header"
    fields_desc = [
        LEShortField("length", None),
        FieldLenField("count", None, count_of="messages", fmt="B"),
        ByteField("unit", 0),
        LEIntField("sequence", 0),
        _MessageListField("messages", [], PitchMessage),
    ]

    def post_build(self, p, pay):
        if self.length is None:
            p = struct.pack("<H", len(p) + len(pay)) + p[2:]
        return p + pay

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf("PITCH unit=%unit% seq=%sequence% count=%count%")


def pitch_datagram(unit: int, sequence: int, messages: Iterable[Union[PitchMessage, bytes]]) -> bytes:
    """The UDP payload: a Sequenced Unit Header (length and count computed) and
    ``messages`` (layers or raw message bytes).  No messages: a heartbeat."""
    return bytes(PitchUnitHeader(unit=unit, sequence=sequence, messages=list(messages)))


def bind_pitch_port(port: int) -> None:
    """Dissect UDP datagrams to destination ``port`` as PITCH (tried before scapy's
    own UDP bindings); ``UDP()/PitchUnitHeader()`` then defaults to that port."""
    bind_bottom_up(UDP, PitchUnitHeader, dport=port)
    mine = [g for g in UDP.payload_guess if g[1] is PitchUnitHeader]
    UDP.payload_guess[:] = mine + [g for g in UDP.payload_guess if g[1] is not PitchUnitHeader]
    bind_top_down(UDP, PitchUnitHeader, dport=port)
