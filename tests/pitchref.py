"""An independent pure-Python reference for Cboe Multicast PITCH captures.

Reads a classic pcap with struct (no C core, no scapy), frames every UDP
datagram of a PITCH destination as a Sequenced Unit Header and its messages,
arbitrates A/B lines per stream (UDP port, unit) by sequence, assigns
instrument ids as the pipeline does, and drives the level logic of
tests/refbook.py (RefBook) with the book operations each PITCH message means.

The rules, written from docs/pitch-spec-notes.md and the brief of the PITCH
pipeline (csrc/pipeline.h "Cboe PITCH" describes the same contract):

- a UDP destination (group, port) is PITCH when its first cleanly-framed
  datagram frames as a sequenced unit (Hdr Length == payload length, Hdr Count
  messages fill it exactly); one that frames as MoldUDP64 first is ITCH and is
  ignored here; a datagram that frames as neither does not decide;
- payload < 8 bytes: pitch_truncated; Hdr Length != payload length:
  pitch_hdr_length (both rejected before any stream exists);
- count 0: heartbeat (pitch_trailing_bytes when longer than 8 bytes); its
  sequence is the unit's next: what is before it and never arrived is a gap;
- sequence 0 with messages: pitch_unsequenced; sequence + count - 1 > 2^32-1:
  pitch_seq_wrap (both rejected);
- stream = (UDP port, unit); a packet at or before the next expected sequence
  is applied from the first message not yet applied (the others are
  duplicates); a packet past a hole waits; what is still missing at the end is
  a gap and the held packets are applied in sequence order;
- walking the messages: no room for Length+Type -> pitch_count_overrun; a
  Length < 2 or past the end -> pitch_msg_overrun (both end the walk; the
  messages before are applied and only those consume sequence numbers);
  bytes left after Count messages -> pitch_trailing_bytes; an unknown type
  -> pitch_unknown_type, a known type whose Length is not its length ->
  pitch_bad_length (both skipped by Length, sequence consumed, not counted in
  messages / by_type);
- instrument id = 16384 + venue_rank * 12288 + (unit - 1) * 384 + rank, rank =
  order of the symbol's first appearance on its unit in an Add, Trade, Trading
  Status, Auction Update or Summary (a message whose price is out of range does
  not give an id); unit outside 1..32 or rank >= 384 -> pitch_id_range;
- book ops: Add -> add (long price as sent, short price * 100; > 2^32-1 ->
  pitch_price_range and nothing); Executed / Executed at Price -> execute
  (at Price with a price > 2^32-1: pitch_price_range, the shares cancelled);
  Reduce -> cancel; Modify -> replace with the same id (price > 2^32-1:
  pitch_price_range, the order deleted); Delete -> delete; Unit Clear ->
  every order of the unit's instruments removed; the rest changes no level.
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Optional, Tuple

from refbook import RefBook

# Wire lengths (Length byte, which counts Length and Type), spec notes section 4.
PITCH_LEN = {
    0x20: 6,
    0x97: 6,
    0x21: 34,
    0x22: 26,
    0x2F: 41,
    0x23: 26,
    0x24: 38,
    0x25: 18,
    0x26: 16,
    0x27: 27,
    0x28: 19,
    0x29: 14,
    0x2A: 41,
    0x2B: 33,
    0x30: 43,
    0x2C: 14,
    0x2D: 6,
    0x31: 18,
    0x95: 47,
    0x96: 27,
}
BOOK_TYPES = (0x21, 0x22, 0x2F, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x97)

ID_BASE = 16384
VENUE_IDS = 32 * 384
UNIT_IDS = 384
U32 = 0xFFFFFFFF
MAX_INSTRUMENTS = 65535

ERRORS = (
    "pitch_truncated",
    "pitch_hdr_length",
    "pitch_count_overrun",
    "pitch_msg_overrun",
    "pitch_trailing_bytes",
    "pitch_unknown_type",
    "pitch_bad_length",
    "pitch_unsequenced",
    "pitch_seq_wrap",
    "pitch_price_range",
    "pitch_id_range",
)


# ------------------------------------------------------------------ capture


def read_pcap(data: bytes) -> List[Tuple[int, bytes]]:
    """[(capture ns, frame)] of a classic pcap (either byte order, us or ns)."""
    magic_le = struct.unpack("<I", data[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        e = ">"
    magic = struct.unpack(e + "I", data[:4])[0]
    ns = magic == 0xA1B23C4D
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, cap, _orig = struct.unpack(e + "IIII", data[off : off + 16])
        out.append((sec * 1_000_000_000 + (frac if ns else frac * 1000), data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return out


def udp_of(frame: bytes) -> Optional[Tuple[int, int, bytes]]:
    """(destination IPv4 as int, destination port, UDP payload) of an Ethernet
    frame (802.1Q / QinQ tags skipped), or None when it is not IPv4/UDP."""
    off = 12
    et = struct.unpack_from(">H", frame, off)[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = struct.unpack_from(">H", frame, off)[0]
    off += 2
    if et != 0x0800 or len(frame) < off + 20:
        return None
    vihl, _tos, total, _id, _ff, _ttl, proto = struct.unpack_from(">BBHHHBB", frame, off)
    if proto != 17:
        return None
    ihl = (vihl & 0xF) * 4
    dst = struct.unpack_from(">I", frame, off + 16)[0]
    u = off + ihl
    _sp, dport, ulen, _ck = struct.unpack_from(">HHHH", frame, u)
    payload = frame[u + 8 : u + ulen]
    return dst, dport, payload


def pitch_looks_like(p: bytes) -> bool:
    if len(p) < 8 or struct.unpack_from("<H", p)[0] != len(p):
        return False
    off = 8
    for _ in range(p[2]):
        if off + 2 > len(p) or p[off] < 2 or p[off] > len(p) - off:
            return False
        off += p[off]
    return off == len(p)


def mold_looks_like(p: bytes) -> bool:
    """A MoldUDP64 packet whose message blocks fill it exactly (or a heartbeat /
    end of session)."""
    if len(p) < 20:
        return False
    count = struct.unpack_from(">H", p, 18)[0]
    if count in (0, 0xFFFF):
        return len(p) == 20
    off = 20
    for _ in range(count):
        if off + 2 > len(p):
            return False
        n = struct.unpack_from(">H", p, off)[0]
        off += 2 + n
        if off > len(p):
            return False
    return off == len(p)


# ------------------------------------------------------------------ ITCH bytes for RefBook

_TS = b"\0" * 6


def _itch(t: str, locate: int, body: bytes) -> bytes:
    return t.encode() + struct.pack(">HH", locate, 0) + _TS + body


class PitchRef:
    """Feed it pcap bytes (``feed_pcap``), read ``dump_csv``, ``stats``, ``book``."""

    def __init__(self, venue_rank: int = 0, venue_name: str = "BATS", ports: Optional[Iterable[int]] = None):
        """ports: only these UDP ports' datagrams (one venue's channels), else all."""
        self.ports = set(ports) if ports is not None else None
        self.hb_next: Dict[Tuple[int, int], int] = {}  # stream -> highest heartbeat sequence
        self.venue_rank = venue_rank
        self.venue_name = venue_name
        self.book = RefBook(max_instruments=MAX_INSTRUMENTS)
        self.protos: Dict[Tuple[int, int], str] = {}  # (ip, port) -> "pitch" / "mold"
        self.next_seq: Dict[Tuple[int, int], int] = {}  # stream -> next sequence to apply
        self.held: Dict[Tuple[int, int], Dict[int, bytes]] = {}  # stream -> seq -> payload
        self.stream_units: Dict[Tuple[int, int], int] = {}
        self.ranks: Dict[int, Dict[bytes, int]] = {}  # unit -> symbol (8 bytes) -> id
        self.errors = {k: 0 for k in ERRORS}
        self.by_type: Dict[str, int] = {}
        self.messages = 0
        self.duplicates = 0
        self.heartbeats = 0
        self.gaps = 0
        self.pitch_packets = 0
        self.packets = 0
        self.pkt_rejected = 0
        self.unit_clears = 0
        self.gapped_units = set()  # streams that lost messages for good
        self.ids_of_stream: Dict[Tuple[int, int], set] = {}

    # ------------------------------------------------------------ ids

    def instrument(self, unit: int, sym: bytes) -> int:
        """The id of an 8-byte space-padded symbol on `unit`; 0 (counted) if none."""
        m = self.ranks.setdefault(unit, {})
        if sym in m:
            return m[sym]
        if not 1 <= unit <= 32 or len(m) >= UNIT_IDS:
            self.errors["pitch_id_range"] += 1
            return 0
        i = ID_BASE + self.venue_rank * VENUE_IDS + (unit - 1) * UNIT_IDS + len(m)
        m[sym] = i
        self.book.apply(_itch("R", i, sym.ljust(8, b" ") + b" " * 20))  # 39 bytes: the symbol is what counts
        return i

    def _price_ok(self, price: int) -> bool:
        if price <= U32:
            return True
        self.errors["pitch_price_range"] += 1
        return False

    # ------------------------------------------------------------ one message

    def message(self, stream, m: bytes) -> None:
        t = m[1]
        want = PITCH_LEN.get(t)
        if want is None:
            self.errors["pitch_unknown_type"] += 1
            return
        if len(m) != want:
            self.errors["pitch_bad_length"] += 1
            return
        self.messages += 1
        key = "0x%02x" % t
        self.by_type[key] = self.by_type.get(key, 0) + 1
        unit = self.stream_units[stream]
        b = self.book
        seen = self.ids_of_stream.setdefault(stream, set())

        def add(qty, sym, price):
            if not self._price_ok(price):
                return
            loc = self.instrument(unit, sym.ljust(8, b" "))
            if not loc:
                return
            oid = struct.unpack_from("<Q", m, 6)[0]
            seen.add(loc)
            b.apply(_itch("A", loc, struct.pack(">QcI8sI", oid, m[14:15], qty, sym.ljust(8, b" "), price)))

        def trade(price, sym):
            if not self._price_ok(price):
                return
            loc = self.instrument(unit, sym.ljust(8, b" "))
            if loc:
                seen.add(loc)

        def oid():
            return struct.unpack_from("<Q", m, 6)[0]

        def remember(o):
            if o in b.orders:
                seen.add(b.orders[o][0])

        if t == 0x21:
            add(struct.unpack_from("<I", m, 15)[0], m[19:25], struct.unpack_from("<Q", m, 25)[0])
        elif t == 0x22:
            add(struct.unpack_from("<H", m, 15)[0], m[17:23], struct.unpack_from("<H", m, 23)[0] * 100)
        elif t == 0x2F:
            add(struct.unpack_from("<I", m, 15)[0], m[19:27], struct.unpack_from("<Q", m, 27)[0])
        elif t == 0x23:
            remember(oid())
            b.apply(_itch("E", 0, struct.pack(">QIQ", oid(), struct.unpack_from("<I", m, 14)[0], 0)))
        elif t == 0x24:
            remember(oid())
            ex = struct.unpack_from("<I", m, 14)[0]
            price = struct.unpack_from("<Q", m, 30)[0]
            if price > U32:
                self.errors["pitch_price_range"] += 1
                b.apply(_itch("X", 0, struct.pack(">QI", oid(), ex)))
            else:
                b.apply(_itch("C", 0, struct.pack(">QIQcI", oid(), ex, 0, b"Y", price)))
        elif t in (0x25, 0x26):
            remember(oid())
            q = struct.unpack_from("<I" if t == 0x25 else "<H", m, 14)[0]
            b.apply(_itch("X", 0, struct.pack(">QI", oid(), q)))
        elif t in (0x27, 0x28):
            remember(oid())
            if t == 0x27:
                q, price = struct.unpack_from("<IQ", m, 14)
            else:
                q, p2 = struct.unpack_from("<HH", m, 14)
                price = p2 * 100
            if price > U32:
                self.errors["pitch_price_range"] += 1
                b.apply(_itch("D", 0, struct.pack(">Q", oid())))
            else:
                b.apply(_itch("U", 0, struct.pack(">QQII", oid(), oid(), q, price)))
        elif t == 0x29:
            remember(oid())
            b.apply(_itch("D", 0, struct.pack(">Q", oid())))
        elif t == 0x2A:
            trade(struct.unpack_from("<Q", m, 25)[0], m[19:25])
        elif t == 0x2B:
            trade(struct.unpack_from("<H", m, 23)[0] * 100, m[17:23])
        elif t == 0x30:
            trade(struct.unpack_from("<Q", m, 27)[0], m[19:27])
        elif t == 0x31:
            loc = self.instrument(unit, m[6:14])
            if loc:
                seen.add(loc)
        elif t == 0x95:
            (ref,) = struct.unpack_from("<Q", m, 15)
            ind, only = struct.unpack_from("<QQ", m, 31)
            trade(max(ref, ind, only), m[6:14])
        elif t == 0x96:
            trade(struct.unpack_from("<Q", m, 15)[0], m[6:14])
        elif t == 0x97:
            self.unit_clears += 1
            mine = set(self.ranks.get(unit, {}).values())
            for o in [o for o, v in b.orders.items() if v[0] in mine]:
                b._remove(o)
        # 0x20 Time, 0x2C Trade Break, 0x2D End of Session: no level changes

    # ------------------------------------------------------------ one datagram

    def walk(self, stream, p: bytes, count: int, skip: int) -> int:
        off, i = 8, 0
        while i < count:
            if off + 2 > len(p):
                self.errors["pitch_count_overrun"] += 1
                return i
            ml = p[off]
            if ml < 2 or ml > len(p) - off:
                self.errors["pitch_msg_overrun"] += 1
                return i
            if i < skip:
                self.duplicates += 1
            else:
                self.message(stream, p[off : off + ml])
            off += ml
            i += 1
        if off != len(p):
            self.errors["pitch_trailing_bytes"] += 1
        return i

    def _apply(self, stream, p: bytes, seq: int, count: int) -> None:
        nxt = self.next_seq[stream]
        skip = 0
        if seq < nxt:
            if nxt - seq >= count:
                self.duplicates += count
                return
            skip = nxt - seq
        whole = self.walk(stream, p, count, skip)
        if seq + whole > nxt:
            self.next_seq[stream] = seq + whole

    def _drain(self, stream) -> None:
        held = self.held.get(stream, {})
        while held:
            s = min(held)
            if s > self.next_seq[stream]:
                return
            p = held.pop(s)
            self._apply(stream, p, s, p[2])

    def datagram(self, dst: int, port: int, p: bytes) -> None:
        if self.ports is not None and port not in self.ports:
            return
        key = (dst, port)
        proto = self.protos.get(key)
        if proto is None:
            if pitch_looks_like(p):
                proto = self.protos[key] = "pitch"
            elif mold_looks_like(p):
                proto = self.protos[key] = "mold"
            else:
                proto = "mold"
        if proto != "pitch":
            return
        self.packets += 1
        if len(p) < 8:
            self.errors["pitch_truncated"] += 1
            self.pkt_rejected += 1
            return
        if struct.unpack_from("<H", p)[0] != len(p):
            self.errors["pitch_hdr_length"] += 1
            self.pkt_rejected += 1
            return
        self.pitch_packets += 1
        count, unit = p[2], p[3]
        seq = struct.unpack_from("<I", p, 4)[0]
        stream = (port, unit)
        if stream not in self.next_seq:
            self.next_seq[stream] = seq
            self.stream_units[stream] = unit
        if count == 0:
            self.heartbeats += 1
            if len(p) != 8:
                self.errors["pitch_trailing_bytes"] += 1
            if seq:  # the next sequence: what is before it and unseen is missing
                self.hb_next[stream] = max(seq, self.hb_next.get(stream, 0))
            return
        if seq == 0:
            self.errors["pitch_unsequenced"] += 1
            self.pkt_rejected += 1
            return
        if seq + count - 1 > U32:
            self.errors["pitch_seq_wrap"] += 1
            self.pkt_rejected += 1
            return
        if seq > self.next_seq[stream]:
            held = self.held.setdefault(stream, {})
            if seq in held and held[seq][2] >= count:
                self.duplicates += count  # the other line's copy of a packet already waiting
            else:
                held[seq] = p
            return
        self._apply(stream, p, seq, count)
        self._drain(stream)

    def finish(self) -> "PitchRef":
        """What is still held behind a hole: the hole is a gap (the stream's
        books stale), the rest applied in sequence order."""
        for stream, held in self.held.items():
            while held:
                s = min(held)
                if s > self.next_seq[stream]:
                    self.gaps += s - self.next_seq[stream]
                    self.gapped_units.add(stream)
                    self.next_seq[stream] = s
                self._drain(stream)
        for stream, nxt in self.hb_next.items():
            if nxt > self.next_seq[stream]:
                self.gaps += nxt - self.next_seq[stream]
                self.gapped_units.add(stream)
                self.next_seq[stream] = nxt
        return self

    # ------------------------------------------------------------ inputs

    def feed_records(self, records: Iterable[Tuple[int, bytes]]) -> "PitchRef":
        for _ts, f in records:
            u = udp_of(f)
            if u is not None:
                self.datagram(*u)
        return self

    def feed_pcap(self, data: bytes) -> "PitchRef":
        return self.feed_records(read_pcap(data)).finish()

    # ------------------------------------------------------------ views

    def dump_csv(self, depth: int = 10, venue: bool = False) -> str:
        text = self.book.dump_csv(depth)
        if not venue:
            return text
        lines = text.splitlines()
        return "\n".join([lines[0] + ",venue"] + [ln + "," + self.venue_name for ln in lines[1:]]) + "\n"

    def stale_ids(self) -> set:
        """Ids of the instruments of streams that lost messages for good."""
        out = set()
        for s in self.gapped_units:
            out |= self.ids_of_stream.get(s, set())
        return out

    def stats(self) -> dict:
        return dict(
            messages=self.messages,
            by_type=dict(self.by_type),
            duplicates=self.duplicates,
            heartbeats=self.heartbeats,
            gaps=self.gaps,
            pitch_packets=self.pitch_packets,
            errors={k: v for k, v in self.errors.items()},
        )
