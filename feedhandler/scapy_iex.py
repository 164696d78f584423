"""Scapy layers for IEX market data: the IEX-TP v1 transport and the TOPS 1.6,
DEEP 1.0 and DEEP+ 1.0 messages it carries.

For crafting test input and inspecting captures by hand, like
:mod:`feedhandler.scapy_pitch` (whose optional-extra rule applies: without
scapy, importing this module raises the same ImportError).  Every layer and
helper here is also reachable as ``feedhandler.scapy_layers.<name>``.

The wire layouts are those of the IEX research notes (IEX-TP section 1,
messages sections 3-5); **every binary field is little-endian** (the opposite
of MoldUDP64 and ITCH):

* a UDP datagram is one **segment**: a 40-byte header (``version`` u8, always
  1; ``reserved`` u8; ``message_protocol_id`` u16, 0x8003 TOPS, 0x8004 DEEP,
  0x8005 DEEP+; ``channel_id`` u32; ``session_id`` u32; ``payload_length``
  u16, the bytes after the header, length prefixes included;
  ``message_count`` u16; ``stream_offset``, ``first_message_sequence_number``
  and ``send_time`` signed 8-byte) followed by ``message_count`` blocks, each
  a u16 Message Length (not counting itself) and that many bytes of message.
  A segment with no messages is a heartbeat;
* a message layer is the message data only (type byte first), so
  ``len(bytes(layer))`` is the spec's message length; the segment's message
  list writes and reads the 2-byte length prefixes;
* one type byte means one layout in all three feeds ('T' Trade Report is
  DEEP+'s Trade too), so one class per type serves every feed; which types a
  feed carries is ``IEX_FEED_TYPES``;
* prices (4 implied decimals), timestamps (ns since the Unix epoch, UTC),
  order ids and trade ids are **signed** 8-byte integers; sizes and round
  lots are unsigned 4-byte; symbols are 8 bytes, left-justified, space padded
  (``symbol="ZIEXT"`` is ``b"ZIEXT   "``); one-byte codes (``side``,
  ``trading_status``, ...) are 1-char ``str``; flag bytes are ints; the Short
  Sale Price Test status and the auction Extension Number are binary bytes.

``payload_length`` and ``message_count`` are filled in when left ``None``;
set them to craft malformed input.  Dissection advances by each block's
Message Length: an unknown type, or a message shorter than its type's length,
becomes an ``IexUnknown`` (raw ``load``, type byte included) of that length;
bytes past a known message's fields (IEX may grow messages at the end) stay in
a trailing ``Padding`` and are written back as they are.  A length of 0, or a
block cut short by the end of the datagram, ends the list (the rest is
``Padding``).

Example::

    from scapy.all import Ether, IP, UDP
    from feedhandler.scapy_iex import (IexSegmentHeader, IexAddOrder,
        IexSystemEvent, bind_iex_port, iex_segment)

    payload = iex_segment(0x8005, session=1, seq=1, messages=[
        IexSystemEvent(system_event="O", timestamp=1471980724912754610),
        IexAddOrder(side="8", timestamp=1471980724912754610, symbol="ZIEXT",
                    order_id=429974, size=100, price=990500),
    ])
    bind_iex_port(10378)            # dissect UDP to port 10378 as IEX-TP
    pkt = Ether() / IP(dst="233.215.21.8") / UDP(dport=10378) / payload
    Ether(bytes(pkt))[IexSegmentHeader].messages[1].price   # 990500
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, Type, Union

from .scapy_layers import AlphaField, CharField  # raises the optional-extra ImportError without scapy

from scapy.fields import (
    ByteField,
    FieldLenField,
    LEIntField,
    LEShortField,
    LESignedLongField,
    PacketListField,
    StrField,
    XByteField,
    XLEShortField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_bottom_up, bind_top_down

__all__ = [
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
]

IEX_HEADER_LEN = 40

# Message Protocol IDs of the feeds (notes section 1.3).
IEX_TOPS = 0x8003
IEX_DEEP = 0x8004
IEX_DEEP_PLUS = 0x8005

# Message data length (the block's Message Length, type byte included) per type
# byte: notes sections 3-5.
IEX_LENGTHS: Dict[int, int] = {
    ord("S"): 10,  # System Event
    ord("D"): 31,  # Security Directory
    ord("H"): 22,  # Trading Status
    ord("I"): 18,  # Retail Liquidity Indicator
    ord("O"): 18,  # Operational Halt Status
    ord("P"): 19,  # Short Sale Price Test Status
    ord("E"): 18,  # Security Event
    ord("Q"): 42,  # Quote Update (TOPS)
    ord("T"): 38,  # Trade Report (TOPS, DEEP) / Trade (DEEP+)
    ord("X"): 26,  # Official Price (TOPS, DEEP)
    ord("B"): 38,  # Trade Break
    ord("A"): 80,  # Auction Information (TOPS, DEEP)
    ord("8"): 30,  # Price Level Update, buy side (DEEP)
    ord("5"): 30,  # Price Level Update, sell side (DEEP)
    ord("a"): 38,  # Add Order (DEEP+)
    ord("M"): 38,  # Order Modify (DEEP+)
    ord("R"): 26,  # Order Delete (DEEP+)
    ord("L"): 46,  # Order Executed (DEEP+)
    ord("C"): 18,  # Clear Book (DEEP+)
}

# The types each feed carries ('E' in TOPS and 'I' in DEEP are accepted: some
# versions of the specs list them).
IEX_FEED_TYPES: Dict[int, frozenset] = {
    IEX_TOPS: frozenset(map(ord, "SDHIOPQTXBAE")),
    IEX_DEEP: frozenset(map(ord, "SDHIOPE85TXBA")),
    IEX_DEEP_PLUS: frozenset(map(ord, "SDHIOPEaMRLTBC")),
}

IEX_CLASSES: Dict[int, Type["IexMessage"]] = {}


# ------------------------------------------------------------------ messages


class IexMessage(Packet):
    """Base of the IEX message classes.  ``IexMessage(raw)`` returns the class
    named by the type byte (``IexUnknown`` for an unknown type or a message
    shorter than its type's length)."""

    name = "IEX"
    fields_desc = [XByteField("message_type", 0)]
    type_code = None  # type: int

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if cls is IexMessage and _pkt:
            t = _pkt[0]
            if t in IEX_CLASSES and len(_pkt) >= IEX_LENGTHS[t]:
                return IEX_CLASSES[t]
            return IexUnknown
        return cls

    def extract_padding(self, s):
        # No payload layer: bytes past the fields (a longer message) are padding.
        return b"", s

    def mysummary(self):
        return "IEX %r %s" % (chr(self.message_type), self.name)


class IexUnknown(IexMessage):
    """A message of a type these layers do not know (or too short for its
    type): the type byte and the rest of its bytes raw."""

    name = "IEX Unknown"
    fields_desc = [XByteField("message_type", 0), StrField("load", b"")]


def _iex(code, clsname, title, body):
    c = ord(code)
    cls = type(
        clsname,
        (IexMessage,),
        {
            "name": "IEX %s" % title,
            "fields_desc": [XByteField("message_type", c)] + body,
            "type_code": c,
            "__doc__": "IEX %r (0x%02X) %s, %d bytes." % (code, c, title, IEX_LENGTHS[c]),
            "__module__": __name__,
        },
    )
    IEX_CLASSES[c] = cls
    return cls


def _ts():
    return LESignedLongField("timestamp", 0)


def _sym():
    return AlphaField("symbol", b"", 8)


def _price(name="price"):
    return LESignedLongField(name, 0)


IexSystemEvent = _iex("S", "IexSystemEvent", "System Event", [CharField("system_event", "O"), _ts()])
IexSecurityDirectory = _iex(
    "D",
    "IexSecurityDirectory",
    "Security Directory",
    [
        XByteField("flags", 0),
        _ts(),
        _sym(),
        LEIntField("round_lot_size", 100),
        _price("adjusted_poc_price"),
        ByteField("luld_tier", 0),
    ],
)
IexTradingStatus = _iex(
    "H",
    "IexTradingStatus",
    "Trading Status",
    [CharField("trading_status", "T"), _ts(), _sym(), AlphaField("reason", b"", 4)],
)
IexRetailLiquidityIndicator = _iex(
    "I",
    "IexRetailLiquidityIndicator",
    "Retail Liquidity Indicator",
    [CharField("retail_liquidity_indicator", " "), _ts(), _sym()],
)
IexOperationalHaltStatus = _iex(
    "O",
    "IexOperationalHaltStatus",
    "Operational Halt Status",
    [CharField("operational_halt_status", "N"), _ts(), _sym()],
)
IexShortSalePriceTestStatus = _iex(
    "P",
    "IexShortSalePriceTestStatus",
    "Short Sale Price Test Status",
    # the status is binary: 0 not in effect, 1 in effect
    [ByteField("short_sale_price_test_status", 0), _ts(), _sym(), CharField("detail", " ")],
)
IexSecurityEvent = _iex("E", "IexSecurityEvent", "Security Event", [CharField("security_event", "O"), _ts(), _sym()])
IexQuoteUpdate = _iex(
    "Q",
    "IexQuoteUpdate",
    "Quote Update",
    [
        XByteField("flags", 0),
        _ts(),
        _sym(),
        LEIntField("bid_size", 0),
        _price("bid_price"),
        _price("ask_price"),
        LEIntField("ask_size", 0),
    ],
)


def _trade_body():
    return [
        XByteField("sale_condition_flags", 0),
        _ts(),
        _sym(),
        LEIntField("size", 0),
        _price(),
        LESignedLongField("trade_id", 0),
    ]


IexTradeReport = _iex("T", "IexTradeReport", "Trade Report", _trade_body())
IexTradeBreak = _iex("B", "IexTradeBreak", "Trade Break", _trade_body())
IexOfficialPrice = _iex(
    "X", "IexOfficialPrice", "Official Price", [CharField("price_type", "Q"), _ts(), _sym(), _price("official_price")]
)
IexAuctionInformation = _iex(
    "A",
    "IexAuctionInformation",
    "Auction Information",
    [
        CharField("auction_type", "O"),
        _ts(),
        _sym(),
        LEIntField("paired_shares", 0),
        _price("reference_price"),
        _price("indicative_clearing_price"),
        LEIntField("imbalance_shares", 0),
        CharField("imbalance_side", "N"),
        ByteField("extension_number", 0),
        LEIntField("scheduled_auction_time", 0),  # seconds since the epoch
        _price("auction_book_clearing_price"),
        _price("collar_reference_price"),
        _price("lower_auction_collar"),
        _price("upper_auction_collar"),
    ],
)


def _plu_body():
    # event_flags bit 0x01: the last update of the book's event
    return [XByteField("event_flags", 1), _ts(), _sym(), LEIntField("size", 0), _price()]


IexPriceLevelUpdateBuy = _iex("8", "IexPriceLevelUpdateBuy", "Price Level Update (buy)", _plu_body())
IexPriceLevelUpdateSell = _iex("5", "IexPriceLevelUpdateSell", "Price Level Update (sell)", _plu_body())
IexAddOrder = _iex(
    "a",
    "IexAddOrder",
    "Add Order",
    # side '8' buy, '5' sell
    [CharField("side", "8"), _ts(), _sym(), LESignedLongField("order_id", 0), LEIntField("size", 0), _price()],
)
IexOrderModify = _iex(
    "M",
    "IexOrderModify",
    "Order Modify",
    # modify_flags bit 0x01: 1 keeps the order's priority; size is the new total displayed size
    [XByteField("modify_flags", 0), _ts(), _sym(), LESignedLongField("order_id", 0), LEIntField("size", 0), _price()],
)
IexOrderDelete = _iex(
    "R", "IexOrderDelete", "Order Delete", [XByteField("reserved", 0), _ts(), _sym(), LESignedLongField("order_id", 0)]
)
IexOrderExecuted = _iex(
    "L",
    "IexOrderExecuted",
    "Order Executed",
    [
        XByteField("sale_condition_flags", 0),
        _ts(),
        _sym(),
        LESignedLongField("order_id", 0),
        LEIntField("size", 0),  # the shares executed
        _price(),
        LESignedLongField("trade_id", 0),
    ],
)
IexClearBook = _iex("C", "IexClearBook", "Clear Book", [XByteField("reserved", 0), _ts(), _sym()])


def _dissect_message(chunk: bytes) -> IexMessage:
    """One message from exactly its Message Length bytes."""
    return IexMessage(chunk)


# ------------------------------------------------------------------ segment header


class _BlockListField(PacketListField):
    """The message blocks after the segment header: up to ``message_count`` of
    them, each a u16 LE Message Length and that many bytes.  Messages given as
    ``bytes`` are message data (type byte first) and are dissected."""

    def any2i(self, pkt, x):
        if isinstance(x, (bytes, bytearray)):
            x = _dissect_message(bytes(x))
        elif isinstance(x, list):
            x = [_dissect_message(bytes(i)) if isinstance(i, (bytes, bytearray)) else i for i in x]
        return super().any2i(pkt, x)

    def addfield(self, pkt, s, val):
        for m in val or []:
            b = bytes(m)
            if len(b) > 0xFFFF:
                raise ValueError("%s: %d bytes do not fit the 2-byte Message Length" % (m.name, len(b)))
            s += struct.pack("<H", len(b)) + b
        return s

    def getfield(self, pkt, s):
        n = pkt.message_count if pkt.message_count is not None else 0xFFFF
        out = []
        while len(out) < n and len(s) >= 2:
            (ln,) = struct.unpack_from("<H", s)
            if ln == 0 or ln > len(s) - 2:  # cannot be a whole message: the rest is padding
                break
            out.append(_dissect_message(s[2 : 2 + ln]))
            s = s[2 + ln :]
        return s, out


class IexSegmentHeader(Packet):
    """IEX-TP segment header (40 bytes, little-endian) and its ``messages``.
    ``payload_length`` (the bytes after the header) and ``message_count`` are
    computed when None."""

    name = "IEX-TP Segment"
    fields_desc = [
        ByteField("version", 1),
        XByteField("reserved", 0),
        XLEShortField("message_protocol_id", IEX_DEEP),
        LEIntField("channel_id", 1),
        LEIntField("session_id", 1),
        LEShortField("payload_length", None),
        FieldLenField("message_count", None, count_of="messages", fmt="<H"),
        LESignedLongField("stream_offset", 0),
        LESignedLongField("first_message_sequence_number", 0),
        LESignedLongField("send_time", 0),
        _BlockListField("messages", [], IexMessage),
    ]

    def post_build(self, p, pay):
        if self.payload_length is None:
            p = p[:12] + struct.pack("<H", len(p) - IEX_HEADER_LEN + len(pay)) + p[14:]
        return p + pay

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf(
            "IEX-TP proto=%message_protocol_id% session=%session_id% "
            "seq=%first_message_sequence_number% count=%message_count%"
        )


def iex_segment(
    protocol: int,
    session: int,
    seq: int,
    messages: Iterable[Union[IexMessage, bytes]],
    offset: int = 0,
    send_time: int = 0,
    channel: int = 1,
) -> bytes:
    """The UDP payload: an IEX-TP segment header (Payload Length and Message
    Count computed) and ``messages`` (layers, or raw message data that gets
    its length prefix).  ``seq`` is the wire First Message Sequence Number,
    ``offset`` the Stream Offset.  No messages: a heartbeat (``seq`` then is
    the next message's sequence number)."""
    return bytes(
        IexSegmentHeader(
            message_protocol_id=protocol,
            channel_id=channel,
            session_id=session,
            stream_offset=offset,
            first_message_sequence_number=seq,
            send_time=send_time,
            messages=list(messages),
        )
    )


def bind_iex_port(port: int) -> None:
    """Dissect UDP datagrams to destination ``port`` as IEX-TP (tried before
    scapy's own UDP bindings); ``UDP()/IexSegmentHeader()`` then defaults to
    that port."""
    bind_bottom_up(UDP, IexSegmentHeader, dport=port)
    mine = [g for g in UDP.payload_guess if g[1] is IexSegmentHeader]
    UDP.payload_guess[:] = mine + [g for g in UDP.payload_guess if g[1] is not IexSegmentHeader]
    bind_top_down(UDP, IexSegmentHeader, dport=port)
