"""Scapy layers for MoldUDP64 and every NASDAQ TotalView-ITCH 5.0 message.

For crafting test input and inspecting captures by hand; the feed handler itself
never decodes in Python.  Needs scapy, an optional extra: ``pip install
feedhandler[scapy]`` (importing this module without it raises an ImportError
that says so).  Field names are those of the C structs in
``csrc/fh_api.h`` (and of the dicts ``feedhandler.core`` returns), so a value
read here can be compared with the C decoder's field by field.

Conventions:

* every ITCH class starts with the common header ``message_type`` (1 char),
  ``stock_locate``, ``tracking_number`` and ``timestamp`` (6-byte big-endian
  integer, ns since midnight); then the body fields in wire order;
* integers are big-endian and unsigned; prices are the raw ITCH integers;
* Alpha fields (``stock``, ``mpid``, ``reason``, ``attribution``,
  ``issue_sub_type``, the MoldUDP64 ``session``) are ``bytes`` of their fixed
  length, left-justified and space padded: ``stock="AAPL"`` is ``b"AAPL    "``;
* one-byte code fields (``buy_sell_indicator``, ``event_code``, ...) are 1-char
  ``str``: ``buy_sell_indicator="B"``.

A MoldUDP64 datagram holds a list of ``MoldBlock`` (u16 length + one message).
``MoldUDP64(blocks=[...])`` accepts ITCH messages directly (each is wrapped in a
``MoldBlock`` whose length is computed); ``count`` defaults to the number of
blocks.  For malformed input set ``MoldBlock(length=...)`` or ``count=...``
explicitly, or put a ``Raw`` in ``blocks``: it is written as is, with no length
prefix.  ``count=0xFFFF`` marks the end of a session.

Example::

    from scapy.all import Ether, IP, UDP, wrpcap
    from feedhandler.scapy_layers import MoldUDP64, AddOrder, OrderExecuted

    pkt = (Ether() / IP(dst="233.54.12.111") / UDP(sport=40000, dport=26477)
           / MoldUDP64(session="SESSION001", sequence=1, blocks=[
               AddOrder(stock_locate=1, timestamp=34200000000000,
                        order_reference_number=1, buy_sell_indicator="B",
                        shares=100, stock="AAPL", price=1500000),
               OrderExecuted(stock_locate=1, timestamp=34200000001000,
                             order_reference_number=1, executed_shares=40,
                             match_number=7),
           ]))
    wrpcap("two.pcap", [pkt])
    Ether(bytes(pkt))[MoldUDP64].blocks[0][AddOrder].price   # 1500000

MoldUDP64 is bound to UDP destination port 26477; ``bind_port(port)`` binds
another one.
"""

from __future__ import annotations

import struct
from typing import Dict, Type

try:
    import scapy  # noqa: F401  (scapy is the optional extra feedhandler[scapy])
except ImportError as exc:
    raise ImportError(
        "feedhandler.scapy_layers needs scapy, an optional dependency: pip install feedhandler[scapy] "
        "(or pip install 'scapy>=2.5'). The feed handler itself and every command run without it. "
        "[%s]" % exc,
        name="scapy",
    ) from exc

from scapy.compat import bytes_encode
from scapy.config import conf
from scapy.fields import (
    Field,
    FieldLenField,
    IntField,
    LongField,
    PacketListField,
    ShortField,
    StrFixedLenField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw, bind_bottom_up, bind_top_down

__all__ = [
    "MOLD_PORT",
    "MOLD_END_OF_SESSION",
    "ITCH_CLASSES",
    "ITCH_LENGTHS",
    "bind_port",
    "AlphaField",
    "CharField",
    "UInt48Field",
    "MoldUDP64",
    "MoldBlock",
    "ItchMessage",
    "SystemEvent",
    "StockDirectory",
    "StockTradingAction",
    "RegSHORestriction",
    "MarketParticipantPosition",
    "MWCBDeclineLevel",
    "MWCBStatus",
    "IPOQuotingPeriodUpdate",
    "LULDAuctionCollar",
    "OperationalHalt",
    "AddOrder",
    "AddOrderMPID",
    "OrderExecuted",
    "OrderExecutedWithPrice",
    "OrderCancel",
    "OrderDelete",
    "OrderReplace",
    "Trade",
    "CrossTrade",
    "BrokenTrade",
    "NOII",
    "RPII",
    "DLCRPriceDiscovery",
    "SoupBinTCP",
    "SoupLoginRequest",
    "SoupLoginAccepted",
    "SoupLoginRejected",
    "NumericField",
    "SoupAlphaLeftField",
    "EndOfSnapshot",
]

MOLD_PORT = 26477
MOLD_END_OF_SESSION = 0xFFFF


# ------------------------------------------------------------------ fields


class AlphaField(StrFixedLenField):
    """ITCH Alpha: fixed length, left-justified, space padded (never NUL padded)."""

    def __init__(self, name, default, length):
        self.sz = length
        super().__init__(name, default, length=length)
        self.default = self._pad(default)  # Field.__init__ padded it before sz was set

    def _pad(self, x):
        if x is None:
            return None
        if isinstance(x, int):  # a scapy RandBin/volatile resolved to int is a user error
            raise TypeError("%s: Alpha field wants str or bytes" % self.name)
        return bytes_encode(x).ljust(self.sz, b" ")

    def any2i(self, pkt, x):
        return self._pad(x)

    def addfield(self, pkt, s, val):
        v = self._pad(self.i2m(pkt, val)) or b""
        return s + v[: self.sz].ljust(self.sz, b" ")

    def i2repr(self, pkt, v):
        return repr(v)


class CharField(Field):
    """One-byte Alpha code held as a 1-char ``str`` (``"B"``); ints 0..255 and
    1-byte ``bytes`` are accepted too.  Characters map to bytes as latin-1."""

    def __init__(self, name, default):
        super().__init__(name, self._norm(default), "B")

    @staticmethod
    def _norm(x):
        if x is None or isinstance(x, str):
            return x
        if isinstance(x, int):
            return chr(x)
        if isinstance(x, (bytes, bytearray)):
            return bytes(x).decode("latin-1")
        return x  # scapy volatiles etc.

    def any2i(self, pkt, x):
        x = self._norm(x)
        if isinstance(x, str) and len(x) != 1:
            raise ValueError("%s: one character expected, got %r" % (self.name, x))
        return x

    def i2m(self, pkt, x):
        x = self._norm(x)
        if x is None:
            return 0x20  # a space, as an unset Alpha is on the wire
        if isinstance(x, str):
            return ord(x)
        return int(x)

    def m2i(self, pkt, x):
        return chr(x)

    def i2repr(self, pkt, x):
        return repr(x)


class UInt48Field(Field):
    """Unsigned 48-bit big-endian integer (the ITCH timestamp)."""

    def __init__(self, name, default):
        super().__init__(name, default, "!Q")
        self.sz = 6

    def addfield(self, pkt, s, val):
        v = self.i2m(pkt, val)
        if v is None:
            v = 0
        if not 0 <= v < (1 << 48):
            raise ValueError("%s: %r does not fit in 48 bits" % (self.name, v))
        return s + struct.pack("!Q", v)[2:]

    def getfield(self, pkt, s):
        return s[6:], self.m2i(pkt, struct.unpack("!Q", b"\0\0" + s[:6])[0])


# ------------------------------------------------------------------ ITCH 5.0

ITCH_CLASSES: Dict[str, Type["ItchMessage"]] = {}
# The one ITCH 5.0 length table (csrc/itch_spec.h), read from the C core: the
# layers' own sizes are checked against it by tests/test_scapy_roundtrip.py.
from .core import lib as _lib  # noqa: E402

ITCH_LENGTHS = {chr(t): int(_lib.fh_itch_msg_len(t)) for t in range(256) if _lib.fh_itch_msg_len(t)}


def _header(letter):
    return [
        CharField("message_type", letter),
        ShortField("stock_locate", 0),
        ShortField("tracking_number", 0),
        UInt48Field("timestamp", 0),
    ]


class ItchMessage(Packet):
    """Base of the ITCH classes.  ``ItchMessage(raw)`` returns the class named by
    the first byte (``Raw`` for an unknown type)."""

    name = "ITCH"
    fields_desc = _header(" ")
    letter = None  # type: str

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if cls is ItchMessage and _pkt:
            return ITCH_CLASSES.get(chr(_pkt[0]), Raw)
        return cls

    def mysummary(self):
        return "ITCH %s" % self.letter


def _itch(letter, clsname, title, body):
    cls = type(
        clsname,
        (ItchMessage,),
        {
            "name": "ITCH %s %s" % (letter, title),
            "fields_desc": _header(letter) + body,
            "letter": letter,
            "__doc__": "ITCH 5.0 '%s' %s, %d bytes." % (letter, title, ITCH_LENGTHS[letter]),
            "__module__": __name__,
        },
    )
    ITCH_CLASSES[letter] = cls
    return cls


def _c(name):
    return CharField(name, " ")


def _stock():
    return AlphaField("stock", b"", 8)


SystemEvent = _itch("S", "SystemEvent", "System Event", [_c("event_code")])
StockDirectory = _itch(
    "R",
    "StockDirectory",
    "Stock Directory",
    [
        _stock(),
        _c("market_category"),
        _c("financial_status_indicator"),
        IntField("round_lot_size", 0),
        _c("round_lots_only"),
        _c("issue_classification"),
        AlphaField("issue_sub_type", b"", 2),
        _c("authenticity"),
        _c("short_sale_threshold_indicator"),
        _c("ipo_flag"),
        _c("luld_reference_price_tier"),
        _c("etp_flag"),
        IntField("etp_leverage_factor", 0),
        _c("inverse_indicator"),
    ],
)
StockTradingAction = _itch(
    "H",
    "StockTradingAction",
    "Stock Trading Action",
    [
        _stock(),
        _c("trading_state"),
        _c("reserved"),
        AlphaField("reason", b"", 4),
    ],
)
RegSHORestriction = _itch(
    "Y",
    "RegSHORestriction",
    "Reg SHO Short Sale Price Test Restricted Indicator",
    [
        _stock(),
        _c("reg_sho_action"),
    ],
)
MarketParticipantPosition = _itch(
    "L",
    "MarketParticipantPosition",
    "Market Participant Position",
    [
        AlphaField("mpid", b"", 4),
        _stock(),
        _c("primary_market_maker"),
        _c("market_maker_mode"),
        _c("market_participant_state"),
    ],
)
MWCBDeclineLevel = _itch(
    "V",
    "MWCBDeclineLevel",
    "MWCB Decline Level",
    [
        LongField("level_1", 0),
        LongField("level_2", 0),
        LongField("level_3", 0),
    ],
)
MWCBStatus = _itch("W", "MWCBStatus", "MWCB Status", [_c("breached_level")])
IPOQuotingPeriodUpdate = _itch(
    "K",
    "IPOQuotingPeriodUpdate",
    "IPO Quoting Period Update",
    [
        _stock(),
        IntField("ipo_quotation_release_time", 0),
        _c("ipo_quotation_release_qualifier"),
        IntField("ipo_price", 0),
    ],
)
LULDAuctionCollar = _itch(
    "J",
    "LULDAuctionCollar",
    "LULD Auction Collar",
    [
        _stock(),
        IntField("auction_collar_reference_price", 0),
        IntField("upper_auction_collar_price", 0),
        IntField("lower_auction_collar_price", 0),
        IntField("auction_collar_extension", 0),
    ],
)
OperationalHalt = _itch(
    "h",
    "OperationalHalt",
    "Operational Halt",
    [
        _stock(),
        _c("market_code"),
        _c("operational_halt_action"),
    ],
)
_add_body = [
    LongField("order_reference_number", 0),
    _c("buy_sell_indicator"),
    IntField("shares", 0),
    _stock(),
    IntField("price", 0),
]
AddOrder = _itch("A", "AddOrder", "Add Order", list(_add_body))
AddOrderMPID = _itch(
    "F",
    "AddOrderMPID",
    "Add Order with MPID Attribution",
    list(_add_body)
    + [
        AlphaField("attribution", b"", 4),
    ],
)
OrderExecuted = _itch(
    "E",
    "OrderExecuted",
    "Order Executed",
    [
        LongField("order_reference_number", 0),
        IntField("executed_shares", 0),
        LongField("match_number", 0),
    ],
)
OrderExecutedWithPrice = _itch(
    "C",
    "OrderExecutedWithPrice",
    "Order Executed With Price",
    [
        LongField("order_reference_number", 0),
        IntField("executed_shares", 0),
        LongField("match_number", 0),
        _c("printable"),
        IntField("execution_price", 0),
    ],
)
OrderCancel = _itch(
    "X",
    "OrderCancel",
    "Order Cancel",
    [
        LongField("order_reference_number", 0),
        IntField("cancelled_shares", 0),
    ],
)
OrderDelete = _itch(
    "D",
    "OrderDelete",
    "Order Delete",
    [
        LongField("order_reference_number", 0),
    ],
)
OrderReplace = _itch(
    "U",
    "OrderReplace",
    "Order Replace",
    [
        LongField("original_order_reference_number", 0),
        LongField("new_order_reference_number", 0),
        IntField("shares", 0),
        IntField("price", 0),
    ],
)
Trade = _itch(
    "P",
    "Trade",
    "Trade (Non-Cross)",
    [
        LongField("order_reference_number", 0),
        _c("buy_sell_indicator"),
        IntField("shares", 0),
        _stock(),
        IntField("price", 0),
        LongField("match_number", 0),
    ],
)
CrossTrade = _itch(
    "Q",
    "CrossTrade",
    "Cross Trade",
    [
        LongField("shares", 0),
        _stock(),
        IntField("cross_price", 0),
        LongField("match_number", 0),
        _c("cross_type"),
    ],
)
BrokenTrade = _itch("B", "BrokenTrade", "Broken Trade", [LongField("match_number", 0)])
NOII = _itch(
    "I",
    "NOII",
    "Net Order Imbalance Indicator",
    [
        LongField("paired_shares", 0),
        LongField("imbalance_shares", 0),
        _c("imbalance_direction"),
        _stock(),
        IntField("far_price", 0),
        IntField("near_price", 0),
        IntField("current_reference_price", 0),
        _c("cross_type"),
        _c("price_variation_indicator"),
    ],
)
RPII = _itch(
    "N",
    "RPII",
    "Retail Price Improvement Indicator",
    [
        _stock(),
        _c("interest_flag"),
    ],
)
DLCRPriceDiscovery = _itch(
    "O",
    "DLCRPriceDiscovery",
    "DLCR Price Discovery",
    [
        _stock(),
        _c("open_eligibility_status"),
        IntField("minimum_allowable_price", 0),
        IntField("maximum_allowable_price", 0),
        IntField("near_execution_price", 0),
        LongField("near_execution_time", 0),
        IntField("lower_price_range_collar", 0),
        IntField("upper_price_range_collar", 0),
    ],
)


# ------------------------------------------------------------------ MoldUDP64


class MoldBlock(Packet):
    """One MoldUDP64 message block: u16 length, then the message as payload.
    ``length`` is the payload's length unless set explicitly (which may lie)."""

    name = "MoldUDP64 block"
    fields_desc = [ShortField("length", None)]

    def post_build(self, p, pay):
        if self.length is None:
            p = struct.pack("!H", len(pay)) + p[2:]
        return p + pay

    def extract_padding(self, s):
        n = self.length or 0
        return s[:n], s[n:]

    def guess_payload_class(self, payload):
        if not payload:
            return conf.padding_layer
        return ITCH_CLASSES.get(chr(payload[0]), Raw)

    def mysummary(self):
        return self.sprintf("MoldBlock len=%length%")


class _BlockListField(PacketListField):
    """Blocks of a MoldUDP64 datagram; ITCH messages given bare are wrapped."""

    @staticmethod
    def _wrap(x):
        if isinstance(x, ItchMessage):
            return MoldBlock() / x
        return x

    def any2i(self, pkt, x):
        if isinstance(x, list):
            x = [self._wrap(i) for i in x]
        else:
            x = self._wrap(x)
        return super().any2i(pkt, x)


def _block_count(pkt):
    # End of session (0xFFFF) carries no blocks.
    return 0 if pkt.count == MOLD_END_OF_SESSION else pkt.count


class MoldUDP64(Packet):
    """MoldUDP64 downstream packet: 20-byte header, then ``count`` blocks."""

    name = "MoldUDP64"
    fields_desc = [
        AlphaField("session", b"", 10),
        LongField("sequence", 0),
        FieldLenField("count", None, count_of="blocks", fmt="!H"),
        _BlockListField("blocks", [], MoldBlock, count_from=_block_count),
    ]

    def mysummary(self):
        return self.sprintf("MoldUDP64 session=%session% seq=%sequence% count=%count%")


def bind_port(port: int) -> None:
    """Dissect UDP datagrams to destination ``port`` as MoldUDP64.

    The binding is tried before scapy's own UDP bindings, so a datagram from
    scapy's default source port 53 to ``port`` is MoldUDP64, not DNS.  Crafting
    ``UDP()/MoldUDP64()`` keeps the default destination port 26477."""
    bind_bottom_up(UDP, MoldUDP64, dport=port)
    mine = [g for g in UDP.payload_guess if g[1] is MoldUDP64]
    UDP.payload_guess[:] = mine + [g for g in UDP.payload_guess if g[1] is not MoldUDP64]


bind_top_down(UDP, MoldUDP64, dport=MOLD_PORT)
bind_port(MOLD_PORT)


# ------------------------------------------------------- SoupBinTCP 4.0


class NumericField(StrFixedLenField):
    """SoupBinTCP Numeric: an unsigned integer as ASCII digits, left-padded with spaces."""

    def __init__(self, name, default, length):
        super().__init__(name, default, length=length)

    def i2m(self, pkt, x):
        return str(int(x or 0)).rjust(self.length_from(pkt)).encode()

    def m2i(self, pkt, x):
        t = x.strip()
        return int(t) if t else 0

    def addfield(self, pkt, s, val):
        v = self.i2m(pkt, val)
        if len(v) > self.length_from(pkt):
            raise ValueError("%s: %r does not fit %d digits" % (self.name, val, self.length_from(pkt)))
        return s + v

    def i2repr(self, pkt, x):
        return repr(x)


class SoupAlphaLeftField(AlphaField):
    """An Alpha field padded on the left (SoupBinTCP's session names)."""

    def _pad(self, x):
        if x is None:
            return None
        return bytes_encode(x).rjust(self.sz, b" ")


class SoupBinTCP(Packet):
    """A SoupBinTCP 4.0 logical packet: u16 length (type + payload), type, payload.
    The type picks the payload layer: ``SoupBinTCP(type="L")/SoupLoginRequest(...)``;
    sequenced data (``"S"``) carries one ITCH/GLIMPSE message, e.g. ``EndOfSnapshot``."""

    name = "SoupBinTCP"
    fields_desc = [ShortField("length", None), CharField("type", "S")]

    def post_build(self, p, pay):
        if self.length is None:
            p = struct.pack("!H", len(p) - 2 + len(pay)) + p[2:]
        return p + pay

    def extract_padding(self, s):
        n = max(0, (self.length or 1) - 1)
        return s[:n], s[n:]

    def guess_payload_class(self, payload):
        return _SOUP_PAYLOADS.get(self.type, Raw)


class SoupLoginRequest(Packet):
    name = "SoupBinTCP Login Request"
    fields_desc = [
        AlphaField("username", b"", 6),
        AlphaField("password", b"", 10),
        SoupAlphaLeftField("requested_session", b"", 10),
        NumericField("requested_sequence", 0, 20),
    ]


class SoupLoginAccepted(Packet):
    name = "SoupBinTCP Login Accepted"
    fields_desc = [SoupAlphaLeftField("session", b"", 10), NumericField("sequence", 1, 20)]


class SoupLoginRejected(Packet):
    name = "SoupBinTCP Login Rejected"
    fields_desc = [CharField("reason", "A")]  # 'A' not authorized, 'S' session not available


class EndOfSnapshot(Packet):
    """GLIMPSE 5.0 End of Snapshot: the MoldUDP64 sequence at which the live feed
    continues the snapshot."""

    name = "GLIMPSE End of Snapshot"
    fields_desc = [CharField("message_type", "G"), NumericField("sequence", 0, 20)]


def _soup_data(payload):
    if payload[:1] == b"G" and len(payload) == 21:
        return EndOfSnapshot
    cls = ITCH_CLASSES.get(payload[:1].decode("latin-1"))
    return cls if cls is not None else Raw


class _SoupData(Packet):
    """Sequenced data: dispatches to the GLIMPSE/ITCH message it carries."""

    name = "SoupBinTCP data"

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        return _soup_data(_pkt or b"")


_SOUP_PAYLOADS = {"L": SoupLoginRequest, "A": SoupLoginAccepted, "J": SoupLoginRejected, "S": _SoupData, "U": _SoupData}


# ------------------------------------------------------- Cboe PITCH (feedhandler.scapy_pitch)
# Re-exported lazily: scapy_pitch builds on the fields above, so importing it
# from here at import time would be circular.  ``scapy_layers.PitchTime`` (or
# ``from feedhandler.scapy_layers import *``) loads it on first use.
_PITCH_NAMES = frozenset(
    (
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
    )
)
__all__ += sorted(_PITCH_NAMES)

# IEX-TP and TOPS / DEEP / DEEP+ (feedhandler.scapy_iex), re-exported lazily
# for the same reason.
_IEX_NAMES = frozenset(
    (
        "IEX_HEADER_LEN",
        "IEX_TOPS",
        "IEX_DEEP",
        "IEX_DEEP_PLUS",
        "IEX_LENGTHS",
        "IEX_CLASSES",
        "IEX_FEED_TYPES",
        "iex_segment",
        "bind_iex_port",
        "IexSegmentHeader",
        "IexMessage",
        "IexUnknown",
        "IexSystemEvent",
        "IexSecurityDirectory",
        "IexTradingStatus",
        "IexRetailLiquidityIndicator",
        "IexOperationalHaltStatus",
        "IexShortSalePriceTestStatus",
        "IexSecurityEvent",
        "IexQuoteUpdate",
        "IexTradeReport",
        "IexOfficialPrice",
        "IexTradeBreak",
        "IexAuctionInformation",
        "IexPriceLevelUpdateBuy",
        "IexPriceLevelUpdateSell",
        "IexAddOrder",
        "IexOrderModify",
        "IexOrderDelete",
        "IexOrderExecuted",
        "IexClearBook",
    )
)
__all__ += sorted(_IEX_NAMES)


def __getattr__(name):
    if name in _PITCH_NAMES:
        from . import scapy_pitch

        return getattr(scapy_pitch, name)
    if name in _IEX_NAMES:
        from . import scapy_iex

        return getattr(scapy_iex, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
