"""An independent pure-Python reference for MoldUDP64 / ITCH 5.0 captures with
A/B lines: arbitration, holes, gaps and duplicates, driving tests/refbook.py.

Reads the capture with tests/pitchref.py's struct-only pcap reader (no C core,
no scapy, no generator code) and applies the rules docs/robustness.md ("A/B
arbitration, holes and gaps") states:

- a stream is (UDP destination port, MoldUDP64 session); every group carrying
  it is one of its lines.  A stream whose first packet says sequence N > 1
  waits for 1..N-1 like a hole (the other line may bring them) but what does
  not come was sent before the capture began: never a gap;
- the first copy of each sequence number wins, whichever line brings it: a
  data packet wholly at or before the next expected sequence is a duplicate
  packet (``pkt_duplicate``; its messages count in ``duplicates``) -- unless
  part of it was given up as a gap before it came: then it is late
  (``pkt_late``, its messages in ``late``), never applied; one that overlaps
  the next expected sequence applies only its new messages (the others count
  in ``duplicates``), and counts as applied (``pkt_applied``);
- a data packet past the next expected sequence is held; a heartbeat (count
  0) or End of Session (count 0xFFFF) announces the next sequence the stream
  will send.  Held packets are applied in sequence order as soon as what is
  missing before them fills;
- every missing sequence number has its own window, from the receive time of
  the first packet or announcement past it: once that is ``window_ns`` old,
  the missing messages up to it count in ``gaps``, the packets held up to it
  are applied, and the stream is gapped: every instrument it carries (before
  or after the gap) is STALE.  Younger missing numbers keep waiting.  At the
  end of the capture everything missing is given up;
- messages applied are counted (``messages``, ``by_type``) and fed to the
  reference book; a message that is not an ITCH 5.0 type of its exact length
  is counted in ``bad_messages`` and skipped.

Not modelled (a capture that needs them raises NotImplementedError, so a
comparison never passes by accident): re-requests, snapshots, a full gap
buffer, session changes, non-MoldUDP64 datagrams, frames that are not UDP.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Dict, Iterable, List, Set, Tuple

from pitchref import read_pcap, udp_of
from refbook import ITCH_LEN, RefBook

HEARTBEAT, END_OF_SESSION = 0, 0xFFFF

# Message types that carry no instrument (stock locate 0 by design).
NO_INSTRUMENT = frozenset("SVW")


class _Stream:
    def __init__(self, first_seq: int):
        self.next = 1 if first_seq > 1 else first_seq
        self.start_end = first_seq if first_seq > 1 else 0  # below it: before the capture, never a gap
        self.held: Dict[int, List[Tuple[int, List[bytes], int]]] = {}  # seq -> [(count, messages, rx time)]
        self.announced: List[Tuple[int, int]] = []  # (rx time, "next sequence") of heartbeats / End of Session
        self.lost: List[Tuple[int, int]] = []  # [lo, hi) given up as gaps
        self.gapped = False
        self.locates: Set[int] = set()


class MoldRef:
    def __init__(self, window_ns: int = 1_000_000, **book_kw):
        self.window_ns = window_ns
        self.book = RefBook(**book_kw)
        self.streams: Dict[Tuple[int, bytes], _Stream] = {}
        self.lines: Dict[Tuple[int, bytes], Set[int]] = {}
        self.now = 0
        self.packets = self.mold_packets = self.heartbeats = self.end_of_session = 0
        self.pkt_applied = self.pkt_duplicate = self.pkt_late = 0
        self.messages = self.duplicates = self.late = self.gaps = self.bad_messages = 0
        self.by_type: Counter = Counter()
        self.first_ts = self.last_ts = 0

    # ------------------------------------------------------------ applying

    def _apply(self, s: _Stream, seq: int, msgs: List[bytes]) -> None:
        """A data packet at or before s.next: its new messages applied."""
        skip = s.next - seq
        assert skip >= 0
        if skip >= len(msgs):
            if any(seq < hi and seq + len(msgs) > lo for lo, hi in s.lost):
                self.pkt_late += 1
                self.late += len(msgs)
            else:
                self.pkt_duplicate += 1
                self.duplicates += len(msgs)
            return
        self.pkt_applied += 1
        self.duplicates += skip
        for m in msgs[skip:]:
            t = chr(m[0]) if m else ""
            if ITCH_LEN.get(t) != len(m):
                self.bad_messages += 1
                continue
            self.messages += 1
            self.by_type[t] += 1
            locate = (m[1] << 8) | m[2]
            if t not in NO_INSTRUMENT and locate:
                s.locates.add(locate)
            self.book.apply(m)
        s.next = seq + len(msgs)

    def _drain(self, s: _Stream) -> None:
        while s.held:
            seq = min(s.held)
            if seq > s.next:
                break
            for _count, msgs, _t in s.held.pop(seq):
                self._apply(s, seq, msgs)

    def _lose(self, s: _Stream, end: int) -> None:
        """[s.next, end) will not come."""
        if end <= s.next:
            return
        if s.next < s.start_end:  # sent before the capture began
            end = min(end, s.start_end)
        else:
            self.gaps += end - s.next
            s.gapped = True
            s.lost.append((s.next, end))
        s.next = end
        self._drain(s)

    def _give_up(self, s: _Stream, everything: bool = False) -> None:
        """Give up every missing number whose window has passed (or all)."""
        s.announced = [(t, v) for t, v in s.announced if v > s.next]
        evidence = [(seq, t) for seq, copies in s.held.items() for _c, _m, t in copies]
        evidence += [(v, t) for t, v in s.announced]
        due = [end for end, t in evidence if end > s.next and (everything or self.now - t > self.window_ns)]
        if not due:
            return
        upto = max(due)
        while s.next < upto:
            ahead = [seq for seq in s.held if seq > s.next]
            self._lose(s, min(ahead + [upto]))

    def _expire(self) -> None:
        for s in self.streams.values():
            self._give_up(s)

    # ------------------------------------------------------------ input

    def frame(self, ts: int, f: bytes) -> None:
        self.packets += 1
        if self.packets == 1:
            self.first_ts = ts
        self.last_ts = ts
        if ts < self.now:
            raise NotImplementedError("a capture clock that steps back")
        self.now = ts
        self._expire()
        u = udp_of(f)
        if u is None:
            raise NotImplementedError("a frame that is not IPv4/UDP")
        dst, port, p = u
        if len(p) < 20:
            raise NotImplementedError("a datagram shorter than a MoldUDP64 header")
        session, seq, count = struct.unpack_from(">10sQH", p)
        self.mold_packets += 1
        key = (port, session)
        lines = self.lines.setdefault(port, set())
        lines.add(dst)
        s = self.streams.get(key)
        if s is None:
            s = self.streams[key] = _Stream(seq)
        if count in (HEARTBEAT, END_OF_SESSION):
            if len(p) != 20:
                raise NotImplementedError("a heartbeat with trailing bytes")
            if count == HEARTBEAT:
                self.heartbeats += 1
            else:
                self.end_of_session += 1
            s.announced.append((self.now, seq))
        else:
            msgs, off = [], 20
            for _ in range(count):
                if off + 2 > len(p):
                    raise NotImplementedError("a MoldUDP64 packet whose blocks overrun it")
                n = struct.unpack_from(">H", p, off)[0]
                if off + 2 + n > len(p):
                    raise NotImplementedError("a MoldUDP64 packet whose blocks overrun it")
                msgs.append(p[off + 2 : off + 2 + n])
                off += 2 + n
            if off != len(p):
                raise NotImplementedError("a MoldUDP64 packet with trailing bytes")
            if seq <= s.next:
                self._apply(s, seq, msgs)  # in sequence, a copy, or what fills the hole
            else:
                s.held.setdefault(seq, []).append((count, msgs, self.now))
            self._drain(s)

    def finish(self) -> "MoldRef":
        for s in self.streams.values():
            self._give_up(s, everything=True)
        return self

    def feed_records(self, records: Iterable[Tuple[int, bytes]]) -> "MoldRef":
        for ts, f in records:
            self.frame(ts, f)
        return self

    def feed_pcap(self, data: bytes) -> "MoldRef":
        return self.feed_records(read_pcap(data)).finish()

    # ------------------------------------------------------------ views

    def stale_locates(self) -> Set[int]:
        out: Set[int] = set()
        for s in self.streams.values():
            if s.gapped:
                out |= s.locates
        return out

    def stats(self) -> dict:
        """The counters as feedhandler's stats dict names them."""
        return dict(
            packets=self.packets,
            mold_packets=self.mold_packets,
            heartbeats=self.heartbeats,
            end_of_session=self.end_of_session,
            streams=len(self.streams),
            messages=self.messages,
            by_type=dict(self.by_type),
            duplicates=self.duplicates,
            gaps=self.gaps,
            pkt_applied=self.pkt_applied,
            pkt_duplicate=self.pkt_duplicate,
            pkt_held=0,
            pkt_rejected=0,
            pkt_late=self.pkt_late,
            late=self.late,
            recovered=0,
            first_ts_ns=self.first_ts,
            last_ts_ns=self.last_ts,
        )
