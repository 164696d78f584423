"""An independent pure-Python reference for IEX captures (IEX-TP v1 carrying
TOPS 1.6, DEEP 1.0 or DEEP+ 1.0).

Reads a classic pcap with struct (no C core, no scapy), frames every UDP
datagram of an IEX-TP destination as a segment and its message blocks,
arbitrates A/B lines per stream (UDP port, stream key) by message sequence,
assigns instrument ids as the pipeline does, and drives tests/refbook.py
(RefBook): DEEP+ through its order operations, DEEP and TOPS by setting its
price levels directly.

The rules, written from the IEX research notes (sections 1-5) and the IEX
contract of the pipeline (what the C core does with them):

- a UDP destination (group, port) is IEX-TP when its first cleanly-framed
  datagram frames as a segment: length >= 40, version 1, protocol 0x8003 /
  0x8004 / 0x8005, Payload Length == length - 40, Message Count blocks
  (u16 LE length >= 1, then the message) filling the payload exactly.  This is
  tried before PITCH and MoldUDP64; a destination that frames as one of those
  first is not IEX and is ignored here; a datagram that frames as none does
  not decide (and is not counted);
- on an IEX destination, rejected before any stream (not in iex_packets):
  payload < 40 bytes -> iex_truncated; version != 1, Payload Length !=
  length - 40, channel id 0, session id 0, a Stream Offset / First Message
  Sequence Number / Send Time negative as int64, or Message Count 0 with a
  Payload Length not 0 -> iex_header; then a protocol id not one of the three
  -> iex_protocol.  Every other IEX-TP datagram counts in iex_packets;
- stream = (UDP port, key), key = channel id, session id, protocol id: a new
  session id on a port is a new stream; the internal sequence is the wire
  First Message Sequence Number + 1 and the messages of a segment are
  seq .. seq + count - 1; a stream starts at the sequence of its first
  datagram;
- Message Count 0 is a heartbeat (counted in heartbeats, no sequence
  consumed): its sequence is the stream's next, so what is before it and
  never arrived is a gap;
- a segment at or before the next expected sequence is applied from the
  first message not yet applied (the others are duplicates); one past a hole
  waits (a copy of a waiting segment starting at the same sequence and no
  longer is a duplicate); what is still missing at the end of input is a gap
  and the waiting segments are applied in sequence order.  The arbitration is
  per message, so A and B may cut the same messages into different segments;
- walking the blocks: no room for the 2-byte length -> iex_count_overrun; a
  length 0 or past the payload -> iex_msg_overrun (both end the walk; the
  messages before are applied and only those consume sequence numbers);
  bytes left after Message Count blocks -> iex_trailing_bytes;
- a type not of the stream's feed (IEX_FEED_TYPES) -> iex_unknown_type; a
  known type whose length is shorter than its spec length -> iex_bad_length
  (both skipped by their length, sequence consumed, not in messages /
  by_type); a longer one is accepted and the extra bytes ignored.  Every
  accepted message counts in messages and by_type["iex_" + type character];
- prices are signed 8-byte; < 0 or > 2^32-1 -> iex_price_range (once per
  message) and the message is not applied (its symbol still gets its id: the
  message is accepted, unlike PITCH), except: an Order Modify to such a
  price deletes the order and an Order Executed at such a price takes its
  shares off as a cancel.  The prices checked: Quote Update bid and ask,
  Price Level Update, Trade Report /
  Trade, Official Price, Add / Modify / Executed, and of Auction
  Information the three that become the imbalance (reference, indicative
  clearing, auction book clearing) -- the collar prices are not checked;
- instrument id = 16384 + block * 12288 + rank, block = venue_rank + 0 for
  DEEP+, + 1 for DEEP, + 2 for TOPS (each feed has its own instruments;
  venue_rank: the venue's first id block, 1 without a config, where BATS is
  0 and IEXG joins after it), rank = 0.. per feed in order of
  a symbol's first appearance (8 bytes as on the wire) in an accepted message
  of any type but 'S' (System Event) and the order operations 'M', 'R', 'L'
  (they find their order, and its instrument, by the order id: their symbol
  is not looked up), in the order the messages are applied (sequence order
  on one stream), before any other check of the message; rank >= 12288 ->
  iex_id_range and the message is not applied.  A new id gets its directory
  entry (RefBook 'R', the symbol) before the message's operation;
- DEEP+ ('a' side '8' buy / '5' sell, anything else is the book's bad_side):
  Add -> add; Order Modify -> replace keeping the order id (ITCH U with old =
  new id: size is the new total, price the new price, side from the order;
  size 0 or price 0 -> zero_rejected and the order stays removed); Order
  Delete -> delete; Order Executed -> execute at the message's price
  (printable, match number = Trade ID); Trade -> trade (no book change);
  Trade Break -> break; Clear Book -> every live order of the symbol removed
  (iex_clears, no book counter);
- DEEP Price Level Update '8' / '5': the level at that price is set to the
  size (orders 0), size 0 removes it (a level that is not there:
  book unknown_ref).  A price of 0 or out of range -> iex_price_range and no
  level changes.  Event Flags bit 0x01 clear opens (or continues) the
  symbol's event, set closes it, whatever the price: publishing only, the
  dump shows the books as applied (``open_events`` lists the symbols still
  open);
- TOPS Quote Update: the instrument's book becomes one level per side, bid
  (bid price, bid size), ask (ask price, ask size); a side whose size or price
  is 0 is empty;
- Trade Report -> trade, Trade Break -> break (RefBook P / B: trades, breaks;
  a break's price is not used, so not checked);
  Security Directory, Trading Status, Operational Halt, Short Sale Price
  Test, Security Event, Retail Liquidity Indicator, Official Price and
  Auction Information give the symbol its id and change no level;
- System Event (code 'C' ends the stream in a live run; a replay goes on):
  nothing here.

Not modelled: time.  Holes wait to the end of input here, where the session
layer gives them up after its gap window, and a stream first seen past its
start waits that window for the other line.  With one stream per venue this
changes nothing (ranks follow that stream's sequence); with several streams in
a venue (TOPS and DEEP, a new session) the order in which their symbols are
first applied -- so their ids -- can differ from the pipeline's when a wait
crosses another stream's packets.  Mixing DEEP levels and DEEP+ orders on one
instrument is not modelled either (RefBook keeps order counts per level).
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Optional, Tuple

from pitchref import mold_looks_like, pitch_looks_like, read_pcap, udp_of
from refbook import RefBook

TOPS, DEEP, DEEP_PLUS = 0x8003, 0x8004, 0x8005
PROTOCOLS = (TOPS, DEEP, DEEP_PLUS)
HDR = 40

# Message data lengths (the block's Message Length), notes sections 3-5.
IEX_LEN = {
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
FEED_TYPES = {
    TOPS: frozenset("SDHIOPQTXBAE"),
    DEEP: frozenset("SDHIOPE85TXBA"),
    DEEP_PLUS: frozenset("SDHIOPEaMRLTBC"),
}

ID_BASE = 16384
VENUE_IDS = 12288
U32 = 0xFFFFFFFF
I63 = 1 << 63
MAX_INSTRUMENTS = 65535

ERRORS = (
    "iex_truncated",
    "iex_header",
    "iex_protocol",
    "iex_count_overrun",
    "iex_msg_overrun",
    "iex_trailing_bytes",
    "iex_unknown_type",
    "iex_bad_length",
    "iex_price_range",
    "iex_id_range",
)

_SEG = struct.Struct("<BBHIIHHqqq")  # the 40-byte segment header


def iex_looks_like(p: bytes) -> bool:
    """The datagram frames cleanly as an IEX-TP segment (the detection test)."""
    if len(p) < HDR or p[0] != 1:
        return False
    proto, _ch, _sess, plen, count = struct.unpack_from("<HIIHH", p, 2)
    if proto not in PROTOCOLS or plen != len(p) - HDR:
        return False
    off = HDR
    for _ in range(count):
        if off + 2 > len(p):
            return False
        n = struct.unpack_from("<H", p, off)[0]
        if n < 1:
            return False
        off += 2 + n
        if off > len(p):
            return False
    return off == len(p)


# ------------------------------------------------------------------ ITCH bytes for RefBook

_TS = b"\0" * 6


def _itch(t: str, locate: int, body: bytes) -> bytes:
    return t.encode() + struct.pack(">HH", locate, 0) + _TS + body


def dump_symbol(sym: bytes) -> bytes:
    """The symbol as the dump writes it: trailing spaces and NULs off, bytes
    that would break the CSV (or are not printable) replaced by '?'."""
    s = sym.rstrip(b" \0")
    return bytes(c if 32 < c < 127 and c not in b',"' else 0x3F for c in s)


class IexRef:
    """Feed it pcap bytes (``feed_pcap``), read ``dump_csv``, ``stats``, ``book``."""

    def __init__(self, venue_rank: int = 1, venue_name: str = "IEXG", ports: Optional[Iterable[int]] = None):
        """ports: only these UDP ports' datagrams (one venue's channels), else
        all.  venue_rank 1 is a run without a config: its PITCH venue BATS is
        always rank 0 and IEXG joins after it."""
        self.ports = set(ports) if ports is not None else None
        self.venue_rank = venue_rank
        self.venue_name = venue_name
        self.book = RefBook(max_instruments=MAX_INSTRUMENTS)
        self.protos: Dict[Tuple[int, int], str] = {}  # (ip, port) -> "iex" / "pitch" / "mold"
        self.next_seq: Dict[tuple, int] = {}  # stream -> next sequence to apply
        self.held: Dict[tuple, Dict[int, bytes]] = {}  # stream -> seq -> payload
        self.hb_next: Dict[tuple, int] = {}  # stream -> highest heartbeat sequence
        self.ranks: Dict[int, Dict[bytes, int]] = {}  # protocol id -> symbol (8 bytes) -> id
        self.open_events = set()  # DEEP ids with an event not yet closed
        self.errors = {k: 0 for k in ERRORS}
        self.by_type: Dict[str, int] = {}
        self.messages = 0
        self.duplicates = 0
        self.heartbeats = 0
        self.gaps = 0
        self.iex_packets = 0
        self.iex_clears = 0
        self.packets = 0
        self.pkt_rejected = 0
        self.system_events: List[str] = []
        self.gapped_streams = set()
        self.ids_of_stream: Dict[tuple, set] = {}

    # ------------------------------------------------------------ ids

    def instrument(self, sym: bytes, proto: int = DEEP_PLUS) -> int:
        """The id of an 8-byte symbol of feed `proto`; 0 (counted) if the feed's ids are spent."""
        ranks = self.ranks.setdefault(proto, {})
        if sym in ranks:
            return ranks[sym]
        if len(ranks) >= VENUE_IDS:
            self.errors["iex_id_range"] += 1
            return 0
        i = ID_BASE + (self.venue_rank + DEEP_PLUS - proto) * VENUE_IDS + len(ranks)
        ranks[sym] = i
        self.book.apply(_itch("R", i, dump_symbol(sym).ljust(8, b" ") + b" " * 20))
        return i

    def _prices_ok(self, *prices: int) -> bool:
        if all(0 <= p <= U32 for p in prices):
            return True
        self.errors["iex_price_range"] += 1
        return False

    def _set_level(self, loc: int, side: str, price: int, size: int) -> None:
        book = self.book.levels.setdefault((loc, side), {})
        if price in book:
            self.book.n_levels -= 1
            del book[price]
        elif not size:
            self.book.counters["unknown_ref"] += 1  # removing a level that is not there
        if size:
            book[price] = [size, 0]
            self.book.n_levels += 1

    def _set_side(self, loc: int, side: str, price: int, size: int) -> None:
        book = self.book.levels.setdefault((loc, side), {})
        self.book.n_levels -= len(book)
        book.clear()
        if size and price:
            book[price] = [size, 0]
            self.book.n_levels += 1

    # ------------------------------------------------------------ one message

    def message(self, stream, proto: int, m: bytes) -> None:
        t = chr(m[0])
        if t not in FEED_TYPES[proto]:
            self.errors["iex_unknown_type"] += 1
            return
        if len(m) < IEX_LEN[t]:
            self.errors["iex_bad_length"] += 1
            return
        self.messages += 1
        key = "iex_" + t
        self.by_type[key] = self.by_type.get(key, 0) + 1
        if t == "S":
            self.system_events.append(chr(m[1]))
            return
        b = self.book
        seen = self.ids_of_stream.setdefault(stream, set())
        sym = m[10:18]

        def i64(off):
            return struct.unpack_from("<q", m, off)[0]

        def u32(off):
            return struct.unpack_from("<I", m, off)[0]

        def remember(o):
            if o in b.orders:
                seen.add(b.orders[o][0])

        # Every accepted message but 'S' and the order operations gives its
        # symbol an id, whatever follows.
        loc = 0
        if t not in "MRL":
            loc = self.instrument(sym, proto)
            if not loc:
                return  # iex_id_range: not applied
            seen.add(loc)
        oid = struct.unpack_from("<Q", m, 18)[0] if t in "aMRL" else 0  # the raw 8 bytes: the book's key

        if t == "a":
            size, price = u32(26), i64(30)
            if not self._prices_ok(price):
                return
            side = {0x38: b"B", 0x35: b"S"}.get(m[1], b"?")
            b.apply(_itch("A", loc, struct.pack(">QcI8sI", oid, side, size, sym, price)))
        elif t == "M":
            size, price = u32(26), i64(30)
            remember(oid)
            if not self._prices_ok(price):
                b.apply(_itch("D", 0, struct.pack(">Q", oid)))
                return
            b.apply(_itch("U", 0, struct.pack(">QQII", oid, oid, size, price)))
        elif t == "R":
            remember(oid)
            b.apply(_itch("D", 0, struct.pack(">Q", oid)))
        elif t == "L":
            size, price, trade = u32(26), i64(30), struct.unpack_from("<Q", m, 38)[0]
            remember(oid)
            if not self._prices_ok(price):
                b.apply(_itch("X", 0, struct.pack(">QI", oid, size)))
                return
            b.apply(_itch("C", 0, struct.pack(">QIQcI", oid, size, trade, b"Y", price)))
        elif t == "C":
            self.iex_clears += 1
            for o in [o for o, v in b.orders.items() if v[0] == loc]:
                b._remove(o)
        elif t in "85":
            size, price = u32(18), i64(22)
            if m[1] & 0x01:
                self.open_events.discard(loc)
            else:
                self.open_events.add(loc)
            if price == 0:
                self.errors["iex_price_range"] += 1
            elif self._prices_ok(price):
                self._set_level(loc, "B" if t == "8" else "S", price, size)
        elif t == "Q":
            bid_size, bid, ask, ask_size = u32(18), i64(22), i64(30), u32(38)
            if not self._prices_ok(bid, ask):
                return
            self._set_side(loc, "B", bid, bid_size)
            self._set_side(loc, "S", ask, ask_size)
        elif t == "T":
            size, price = u32(18), i64(22)
            if self._prices_ok(price):
                b.apply(_itch("P", loc, struct.pack(">QcI8sIQ", 0, b"B", size, sym, price, 0)))
        elif t == "B":
            b.apply(_itch("B", 0, struct.pack(">Q", 0)))
        elif t == "X":
            self._prices_ok(i64(18))
        elif t == "A":
            self._prices_ok(i64(22), i64(30), i64(48))
        # D H I O P E: the symbol's id, no level

    # ------------------------------------------------------------ one segment

    def walk(self, stream, proto: int, p: bytes, count: int, skip: int) -> int:
        """Apply the blocks of p from the skip-th on; the number of whole blocks."""
        off, i = HDR, 0
        while i < count:
            if off + 2 > len(p):
                self.errors["iex_count_overrun"] += 1
                return i
            ml = struct.unpack_from("<H", p, off)[0]
            if ml == 0 or ml > len(p) - off - 2:
                self.errors["iex_msg_overrun"] += 1
                return i
            if i < skip:
                self.duplicates += 1
            else:
                self.message(stream, proto, p[off + 2 : off + 2 + ml])
            off += 2 + ml
            i += 1
        if off != len(p):
            self.errors["iex_trailing_bytes"] += 1
        return i

    @staticmethod
    def _seq_count(p: bytes) -> Tuple[int, int]:
        return struct.unpack_from("<q", p, 24)[0] + 1, struct.unpack_from("<H", p, 14)[0]

    def _apply(self, stream, p: bytes) -> None:
        seq, count = self._seq_count(p)
        nxt = self.next_seq[stream]
        skip = 0
        if seq < nxt:
            if nxt - seq >= count:
                self.duplicates += count
                return
            skip = nxt - seq
        whole = self.walk(stream, stream[3], p, count, skip)
        if seq + whole > nxt:
            self.next_seq[stream] = seq + whole

    def _drain(self, stream) -> None:
        held = self.held.get(stream, {})
        while held:
            s = min(held)
            if s > self.next_seq[stream]:
                return
            self._apply(stream, held.pop(s))

    def datagram(self, dst: int, port: int, p: bytes) -> None:
        if self.ports is not None and port not in self.ports:
            return
        key = (dst, port)
        proto = self.protos.get(key)
        if proto is None:
            if iex_looks_like(p):
                proto = self.protos[key] = "iex"
            elif pitch_looks_like(p):
                proto = self.protos[key] = "pitch"
            elif mold_looks_like(p):
                proto = self.protos[key] = "mold"
            else:
                return  # does not decide
        if proto != "iex":
            return
        self.packets += 1
        if len(p) < HDR:
            self.errors["iex_truncated"] += 1
            self.pkt_rejected += 1
            return
        ver, _rsv, msg_proto, channel, session, plen, count, offset, wseq, send = _SEG.unpack_from(p)
        if (
            ver != 1
            or plen != len(p) - HDR
            or channel == 0
            or session == 0
            or offset < 0
            or wseq < 0
            or send < 0
            or (count == 0 and plen != 0)
        ):
            self.errors["iex_header"] += 1
            self.pkt_rejected += 1
            return
        if msg_proto not in PROTOCOLS:
            self.errors["iex_protocol"] += 1
            self.pkt_rejected += 1
            return
        self.iex_packets += 1
        seq = wseq + 1
        stream = (port, channel, session, msg_proto)  # the port, then the 10-byte key's fields
        if stream not in self.next_seq:
            self.next_seq[stream] = seq
        if count == 0:
            self.heartbeats += 1
            self.hb_next[stream] = max(seq, self.hb_next.get(stream, 0))
            return
        if seq > self.next_seq[stream]:
            held = self.held.setdefault(stream, {})
            if seq in held and self._seq_count(held[seq])[1] >= count:
                self.duplicates += count  # the other line's copy of a segment already waiting
            else:
                held[seq] = p
            return
        self._apply(stream, p)
        self._drain(stream)

    def finish(self) -> "IexRef":
        """What is still held behind a hole: the hole is a gap (the stream's
        books stale), the rest applied in sequence order; a heartbeat past the
        last message applied is a gap too."""
        for stream, held in self.held.items():
            while held:
                s = min(held)
                if s > self.next_seq[stream]:
                    self.gaps += s - self.next_seq[stream]
                    self.gapped_streams.add(stream)
                    self.next_seq[stream] = s
                self._drain(stream)
        for stream, nxt in self.hb_next.items():
            if nxt > self.next_seq[stream]:
                self.gaps += nxt - self.next_seq[stream]
                self.gapped_streams.add(stream)
                self.next_seq[stream] = nxt
        return self

    # ------------------------------------------------------------ inputs

    def feed_records(self, records: Iterable[Tuple[int, bytes]]) -> "IexRef":
        for _ts, f in records:
            u = udp_of(f)
            if u is not None:
                self.datagram(*u)
        return self

    def feed_pcap(self, data: bytes) -> "IexRef":
        return self.feed_records(read_pcap(data)).finish()

    # ------------------------------------------------------------ views

    def dump_csv(self, depth: int = 10, venue: bool = False) -> str:
        """The --dump-books CSV (with the venue column when the run holds more
        than one venue)."""
        text = self.book.dump_csv(depth)
        if not venue:
            return text
        lines = text.splitlines()
        return "\n".join([lines[0] + ",venue"] + [ln + "," + self.venue_name for ln in lines[1:]]) + "\n"

    def stale_ids(self) -> set:
        """Ids of the instruments of streams that lost messages for good."""
        out = set()
        for s in self.gapped_streams:
            out |= self.ids_of_stream.get(s, set())
        return out

    def stats(self) -> dict:
        return dict(
            messages=self.messages,
            by_type=dict(self.by_type),
            duplicates=self.duplicates,
            heartbeats=self.heartbeats,
            gaps=self.gaps,
            iex_packets=self.iex_packets,
            iex_clears=self.iex_clears,
            errors=dict(self.errors),
            book=self.book.book_counters(),
        )
