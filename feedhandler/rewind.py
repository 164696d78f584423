"""A MoldUDP64 re-request ("rewind") server that answers from a capture.

``index_capture(path)`` reads a pcap / pcapng capture (gzip of either too) and
indexes every MoldUDP64 message of every UDP datagram in it by (session,
sequence number).  The parse is vectorised with numpy over all frames at once
(one Python step per capture record, one numpy step per block position), and
the index is compact: the kept messages are copied, as their MoldUDP64 wire
blocks (u16 big-endian length + message), into one byte array in (session,
sequence) order, with one u64 sequence number and one i64 offset per message;
no Python object per message.  The capture itself is released afterwards.

``RewindServer`` answers MoldUDP64 re-requests from that index the way an
exchange's re-request server does: a request is a 20-byte UDP datagram
(Session, Alpha(10); Sequence Number, u64 BE, the first message wanted;
Requested Message Count, u16 BE); the reply is a normal downstream packet
(session, sequence number of its first message, message count, then the
length-prefixed messages) holding as many of the requested messages as fit in
``max_datagram`` bytes of UDP payload, sent to the requester's address only.
A request that cannot be answered is ignored and counted by reason.

Like the C core, every byte of the capture and of a request is treated as
hostile: each length is checked before the bytes it covers are read, and a
malformed frame or packet costs a counter, never a crash.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import mmap
import os
import socket
import struct
import threading
import time
import zlib
from array import array
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .core import ffi, lib

MOLD_HEADER = 20                  # session (10) + sequence number (8) + message count (2)
REQUEST_LEN = 20                  # session (10) + sequence number (8) + requested count (2)
DEFAULT_MAX_DATAGRAM = 1400
MAX_UDP_PAYLOAD = 65507           # IPv4: 65535 - 20 (IP) - 8 (UDP)
IGNORE_REASONS = ("malformed", "unknown_session", "zero_count", "out_of_range", "missing", "too_large")

# ITCH 5.0 wire lengths, type byte included: only to recognise a BinaryFILE and
# say so clearly (the server itself never looks inside the messages it serves).
# The C core's table (csrc/itch_spec.h, the one the decoder uses), not a copy.
_ITCH_LENGTHS = {bytes([t]): int(lib.fh_itch_msg_len(t)) for t in range(256) if lib.fh_itch_msg_len(t)}

_PCAP_MAGICS = {0xA1B2C3D4: False, 0xA1B23C4D: True}   # value read little-endian -> nanosecond
_LINKTYPE_ETHERNET = 1
_MAX_RECORD = 1 << 18             # a record longer than this is corrupt, not a frame


class RewindError(Exception):
    """The input cannot be served (unreadable, not a capture, no MoldUDP64 messages)."""


# --------------------------------------------------------------------- index

class SessionIndex:
    """The messages of one MoldUDP64 session, in sequence order.

    ``seqs`` (u64, sorted, unique) and ``offsets`` (i64, ``len(seqs) + 1``):
    message ``i`` (sequence ``seqs[i]``) is ``blob[offsets[i] + 2:offsets[i + 1]]``
    of the index's byte array, preceded by its u16 big-endian length, so that
    ``blob[offsets[i]:offsets[i + k]]`` is ready-made MoldUDP64 message blocks."""

    __slots__ = ("session", "seqs", "offsets", "_blob")

    def __init__(self, session: bytes, seqs: np.ndarray, offsets: np.ndarray, blob: np.ndarray):
        self.session = session
        self.seqs = seqs
        self.offsets = offsets
        self._blob = blob

    @property
    def first(self) -> int:
        return int(self.seqs[0])

    @property
    def last(self) -> int:
        return int(self.seqs[-1])

    @property
    def count(self) -> int:
        return len(self.seqs)

    @property
    def missing(self) -> int:
        """Sequence numbers between first and last that no line of the capture carried."""
        return self.last - self.first + 1 - self.count

    def find(self, seq: int) -> int:
        """Position of sequence ``seq``, or -1 when the capture does not hold it."""
        if seq < 1 or seq > self.last:
            return -1
        i = int(np.searchsorted(self.seqs, np.uint64(seq)))
        return i if i < len(self.seqs) and int(self.seqs[i]) == seq else -1

    def message(self, i: int) -> bytes:
        return self._blob[int(self.offsets[i]) + 2:int(self.offsets[i + 1])].tobytes()

    def get(self, seq: int) -> Optional[bytes]:
        i = self.find(seq)
        return None if i < 0 else self.message(i)

    def blocks(self, i: int, k: int) -> bytes:
        """Messages ``i .. i+k-1`` as MoldUDP64 blocks (length-prefixed)."""
        return self._blob[int(self.offsets[i]):int(self.offsets[i + k])].tobytes()

    def summary(self) -> dict:
        return {"session": self.session.decode("latin-1"), "first": self.first, "last": self.last,
                "messages": self.count, "missing": self.missing}


class CaptureIndex:
    """Every MoldUDP64 message of a capture by (session, sequence number)."""

    def __init__(self, path: str, fmt: str, gzipped: bool):
        self.path = path
        self.format = fmt
        self.gzip = gzipped
        self.sessions: Dict[bytes, SessionIndex] = {}
        self.blob = np.zeros(0, np.uint8)
        self.frames = 0               # capture records that held a frame
        self.datagrams = 0            # UDP datagrams carrying a MoldUDP64 header
        self.mold_packets = 0         # ... of which data packets (count 1..0xFFFE)
        self.heartbeats = 0
        self.end_of_session = 0
        self.blocks = 0               # message blocks read, every line (duplicates included)
        self.duplicates = 0           # the same (session, sequence) again: the B copy, a retransmission
        self.duplicate_mismatch = 0   # ... whose length differs from the copy kept (first seen is kept)
        self.skipped: Dict[str, int] = {}
        self.truncated: Optional[str] = None   # where the capture was found cut short / corrupt
        self.elapsed_s = 0.0

    @property
    def messages(self) -> int:
        return sum(s.count for s in self.sessions.values())

    @property
    def message_bytes(self) -> int:
        return int(self.blob.nbytes)

    def session(self, name) -> SessionIndex:
        if isinstance(name, str):
            name = name.encode("latin-1")
        return self.sessions[name]

    def summary(self) -> dict:
        return {"path": self.path, "format": self.format, "gzip": self.gzip, "frames": self.frames,
                "datagrams": self.datagrams, "mold_packets": self.mold_packets,
                "heartbeats": self.heartbeats, "end_of_session": self.end_of_session,
                "blocks": self.blocks, "duplicates": self.duplicates,
                "duplicate_mismatch": self.duplicate_mismatch, "messages": self.messages,
                "message_bytes": self.message_bytes, "skipped": dict(sorted(self.skipped.items())),
                "truncated": self.truncated, "elapsed_s": self.elapsed_s,
                "sessions": [s.summary() for s in self.sessions.values()]}

    def _skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + int(n)


def _load(path: str):
    """(bytes-like of the whole capture, gzipped, closer)."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise RewindError("cannot open %s: %s" % (path, exc.strerror or exc)) from None
    with f:
        head = f.read(2)
        if head == b"\x1f\x8b":
            f.seek(0)
            try:
                with gzip.GzipFile(fileobj=f) as g:
                    data = g.read()
            except (OSError, EOFError, zlib.error) as exc:
                raise RewindError("%s: corrupt gzip: %s" % (path, exc)) from None
            return data, True, lambda: None
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise RewindError("cannot read %s: %s" % (path, exc)) from None
        if size == 0:
            raise RewindError("%s is empty" % path)
        try:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):          # a pipe or special file: read it
            f.seek(0)
            return f.read(), False, lambda: None

        def close():
            try:
                m.close()
            except BufferError:                # a view still exists; the GC frees it
                pass
        return m, False, close


def _looks_like_binfile(data) -> bool:
    if len(data) < 3:
        return False
    n = (data[0] << 8) | data[1]
    return _ITCH_LENGTHS.get(bytes(data[2:3])) == n and len(data) >= 2 + n


def _pcap_records(data, idx: CaptureIndex) -> Tuple[np.ndarray, np.ndarray]:
    magic_le = struct.unpack_from("<I", data, 0)[0]
    if magic_le in _PCAP_MAGICS:
        e, ns = "<", _PCAP_MAGICS[magic_le]
    else:
        e, ns = ">", _PCAP_MAGICS[struct.unpack_from(">I", data, 0)[0]]
    idx.format = "pcap (ns)" if ns else "pcap (us)"
    n = len(data)
    if n < 24:
        idx.truncated = "file header cut short"
        idx._skip("capture_truncated")
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
    rec = struct.Struct(e + "8xII")
    offs, lens = array("q"), array("q")
    off, snapped = 24, 0
    unpack, o_app, l_app = rec.unpack_from, offs.append, lens.append
    while off + 16 <= n:
        cap, orig = unpack(data, off)
        if cap > _MAX_RECORD:
            idx.truncated = "record at byte %d has an impossible length %d" % (off, cap)
            idx._skip("capture_bad_record")
            break
        if off + 16 + cap > n:
            idx.truncated = "last record (byte %d) cut short" % off
            idx._skip("capture_truncated")
            break
        o_app(off + 16)
        l_app(cap)
        if cap < orig:
            snapped += 1
        off += 16 + cap
    else:
        if off != n:
            idx.truncated = "last record header (byte %d) cut short" % off
            idx._skip("capture_truncated")
    idx._skip("capture_snapped", snapped)
    fo = np.frombuffer(offs, np.int64) if len(offs) else np.zeros(0, np.int64)
    fl = np.frombuffer(lens, np.int64) if len(lens) else np.zeros(0, np.int64)
    if linktype != _LINKTYPE_ETHERNET:
        idx._skip("capture_link_type", len(fo))
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return fo, fl


def _pcapng_records(data, idx: CaptureIndex) -> Tuple[np.ndarray, np.ndarray]:
    idx.format = "pcapng"
    n = len(data)
    offs, lens = array("q"), array("q")
    off, e, links = 0, "<", []
    snapped = bad_link = 0
    while off + 12 <= n:
        btype_le = struct.unpack_from("<I", data, off)[0]
        if btype_le == 0x0A0D0D0A:             # section header: its own byte order
            if off + 28 > n:
                idx.truncated = "section header at byte %d cut short" % off
                idx._skip("capture_truncated")
                break
            bom = struct.unpack_from("<I", data, off + 8)[0]
            if bom == 0x1A2B3C4D:
                e = "<"
            elif bom == 0x4D3C2B1A:
                e = ">"
            else:
                idx.truncated = "bad byte-order magic at byte %d" % off
                idx._skip("capture_bad_record")
                break
            links = []
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or blen % 4 or blen > _MAX_RECORD + 64:
            idx.truncated = "block at byte %d has an impossible length %d" % (off, blen)
            idx._skip("capture_bad_record")
            break
        if off + blen > n:
            idx.truncated = "last block (byte %d) cut short" % off
            idx._skip("capture_truncated")
            break
        if btype == 1:                         # interface description
            links.append(struct.unpack_from(e + "H", data, off + 8)[0] if blen >= 16 else -1)
        elif btype == 6:                       # enhanced packet
            if blen < 32:
                idx._skip("capture_bad_record")
            else:
                ifid, cap, orig = struct.unpack_from(e + "I8xII", data, off + 8)
                if cap > blen - 32:
                    idx._skip("capture_bad_record")
                elif ifid >= len(links) or links[ifid] != _LINKTYPE_ETHERNET:
                    bad_link += 1
                else:
                    offs.append(off + 28)
                    lens.append(cap)
                    snapped += cap < orig
        elif btype == 3:                       # simple packet: interface 0, length from the block
            if blen < 16:
                idx._skip("capture_bad_record")
            else:
                orig = struct.unpack_from(e + "I", data, off + 8)[0]
                cap = min(orig, blen - 16)
                if not links or links[0] != _LINKTYPE_ETHERNET:
                    bad_link += 1
                else:
                    offs.append(off + 12)
                    lens.append(cap)
                    snapped += cap < orig
        off += blen
    else:
        if off != n:
            idx.truncated = "last block header (byte %d) cut short" % off
            idx._skip("capture_truncated")
    idx._skip("capture_snapped", snapped)
    idx._skip("capture_link_type", bad_link)
    fo = np.frombuffer(offs, np.int64) if len(offs) else np.zeros(0, np.int64)
    fl = np.frombuffer(lens, np.int64) if len(lens) else np.zeros(0, np.int64)
    return fo, fl


class _Alive:
    """Parallel arrays over the frames (or packets) still in play; ``keep``
    drops the rest and counts them under a reason."""

    def __init__(self, idx: CaptureIndex, **arrays):
        self._idx = idx
        self.__dict__.update(arrays)
        self._names = list(arrays)

    def keep(self, mask: np.ndarray, reason: Optional[str]) -> None:
        if mask.all():
            return
        if reason:
            self._idx._skip(reason, int(np.count_nonzero(~mask)))
        for k in self._names:
            setattr(self, k, getattr(self, k)[mask])

    def add(self, **arrays):
        self.__dict__.update(arrays)
        self._names += [k for k in arrays if k not in self._names]

    def __len__(self):
        return len(getattr(self, self._names[0]))


def _be16(buf: np.ndarray, o: np.ndarray) -> np.ndarray:
    return (buf[o].astype(np.int64) << 8) | buf[o + 1]


def _be64(buf: np.ndarray, o: np.ndarray) -> np.ndarray:
    b = buf[o[:, None] + np.arange(8)]
    return np.ascontiguousarray(b).view(">u8").ravel().astype(np.uint64)


def _index_frames(buf: np.ndarray, fo: np.ndarray, fl: np.ndarray, idx: CaptureIndex) -> None:
    idx.frames = len(fo)
    f = _Alive(idx, fo=fo, fl=fl)
    # Ethernet, up to two VLAN tags (802.1Q, 802.1ad QinQ, 0x9100).
    f.keep(f.fl >= 14, "eth_truncated")
    f.add(l2=np.full(len(f), 14, np.int64), et=_be16(buf, f.fo + 12))
    for _ in range(2):
        tagged = (f.et == 0x8100) | (f.et == 0x88A8) | (f.et == 0x9100)
        f.keep(~tagged | (f.fl >= f.l2 + 4), "vlan_truncated")
        tagged = (f.et == 0x8100) | (f.et == 0x88A8) | (f.et == 0x9100)
        if tagged.any():
            f.et = np.where(tagged, _be16(buf, f.fo + np.where(tagged, f.l2 + 2, 0)), f.et)
            f.l2 = f.l2 + 4 * tagged
    f.keep(~((f.et == 0x8100) | (f.et == 0x88A8) | (f.et == 0x9100)), "vlan_truncated")
    f.keep(f.et != 0x0806, "arp")
    f.keep(f.et != 0x86DD, "ipv6")
    f.keep(f.et == 0x0800, "ethertype_other")
    # IPv4 (options fine, fragments not), UDP.
    f.add(ip=f.fo + f.l2, avail=f.fl - f.l2)
    f.keep(f.avail >= 20, "ip_truncated")
    f.keep((buf[f.ip] >> 4) == 4, "ip_bad_version")
    f.add(ihl=(buf[f.ip] & 15).astype(np.int64) * 4)
    f.keep((f.ihl >= 20) & (f.ihl <= f.avail), "ip_bad_header_length")
    f.add(tot=_be16(buf, f.ip + 2))
    f.keep((f.tot >= f.ihl) & (f.tot <= f.avail), "ip_bad_total_length")
    f.keep((_be16(buf, f.ip + 6) & 0x3FFF) == 0, "ip_fragment")
    f.keep(buf[f.ip + 9] == 17, "ip_not_udp")
    f.keep(f.tot - f.ihl >= 8, "udp_truncated")
    f.add(udp=f.ip + f.ihl)
    f.add(ulen=_be16(buf, f.udp + 4))
    f.keep((f.ulen >= 8) & (f.ulen <= f.tot - f.ihl), "udp_bad_length")
    # MoldUDP64 header.
    f.keep(f.ulen - 8 >= MOLD_HEADER, "mold_truncated")
    pay = f.udp + 8
    end = f.udp + f.ulen
    del f
    idx.datagrams = len(pay)
    if not len(pay):
        return
    cnt = _be16(buf, pay + 18)
    idx.heartbeats = int(np.count_nonzero(cnt == 0))
    idx.end_of_session = int(np.count_nonzero(cnt == 0xFFFF))
    data = (cnt != 0) & (cnt != 0xFFFF)
    idx._skip("mold_trailing_bytes", int(np.count_nonzero(~data & (end != pay + MOLD_HEADER))))
    p = _Alive(idx, pay=pay[data], end=end[data], cnt=cnt[data])
    idx.mold_packets = len(p)
    if not len(p):
        return
    p.add(seq=_be64(buf, p.pay + 10))
    # Sequence numbers start at 1; refuse ones that would wrap.
    p.keep((p.seq >= 1) & (p.seq < np.uint64(1 << 62)), "mold_bad_sequence")
    if not len(p):
        return
    # Runs of packets of one session are far fewer than packets: name each
    # run in Python, then spread the session ids over the packets.
    sess = buf[p.pay[:, None] + np.arange(10)]
    starts = np.flatnonzero(np.concatenate(([True], (sess[1:] != sess[:-1]).any(axis=1))))
    run_names = [sess[i].tobytes() for i in starts]
    names = sorted(set(run_names))
    ids = {name: k for k, name in enumerate(names)}
    run_sid = np.array([ids[name] for name in run_names], np.int64)
    sid = np.repeat(run_sid, np.diff(np.append(starts, len(sess))))
    del sess

    # Walk the blocks of every packet at once: step j reads block j of each
    # packet that still has one.
    m_pkt, m_j, m_off, m_len = [], [], [], []
    pk = np.arange(len(p), dtype=np.int64)
    pos = p.pay + MOLD_HEADER
    end, rem = p.end, p.cnt
    j = 0
    while len(pk):
        short = pos + 2 > end
        if short.any():
            idx._skip("mold_count_overrun", int(np.count_nonzero(short)))
            ok = ~short
            pk, pos, end, rem = pk[ok], pos[ok], end[ok], rem[ok]
        ln = _be16(buf, pos)
        over = pos + 2 + ln > end
        if over.any():
            idx._skip("mold_block_overrun", int(np.count_nonzero(over)))
            ok = ~over
            pk, pos, end, rem, ln = pk[ok], pos[ok], end[ok], rem[ok], ln[ok]
        nz = ln > 0
        idx._skip("mold_zero_length_block", int(np.count_nonzero(~nz)))   # its sequence number is a hole
        m_pkt.append(pk[nz])
        m_j.append(np.full(int(np.count_nonzero(nz)), j, np.int32))
        m_off.append(pos[nz])
        m_len.append(ln[nz] + 2)
        pos = pos + 2 + ln
        rem = rem - 1
        done = rem == 0
        if done.any():
            idx._skip("mold_trailing_bytes", int(np.count_nonzero(pos[done] != end[done])))
            ok = ~done
            pk, pos, end, rem = pk[ok], pos[ok], end[ok], rem[ok]
        j += 1
    m_pkt = np.concatenate(m_pkt)
    m_seq = p.seq[m_pkt] + np.concatenate(m_j).astype(np.uint64)
    m_sid = sid[m_pkt]
    m_off = np.concatenate(m_off)
    m_len = np.concatenate(m_len)
    del m_j, sid
    idx.blocks = len(m_pkt)
    if not len(m_pkt):
        return
    # Sort by (session, sequence, capture order) and keep the first copy of each.
    order = np.lexsort((m_pkt, m_seq, m_sid))
    del m_pkt
    m_sid, m_seq, m_off, m_len = m_sid[order], m_seq[order], m_off[order], m_len[order]
    del order
    first = np.ones(len(m_sid), bool)
    first[1:] = (m_sid[1:] != m_sid[:-1]) | (m_seq[1:] != m_seq[:-1])
    idx.duplicates = int(len(first) - np.count_nonzero(first))
    if idx.duplicates:
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
        idx.duplicate_mismatch = int(np.count_nonzero(~first & (m_len != m_len[group_start])))
        del group_start
        k_sid, k_seq, k_off, k_len = m_sid[first], m_seq[first], m_off[first], m_len[first]
    else:
        k_sid, k_seq, k_off, k_len = m_sid, m_seq, m_off, m_len
    del m_sid, m_seq, m_off, m_len, first
    n = len(k_sid)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(k_len, out=offsets[1:])
    blob = np.empty(int(offsets[-1]), np.uint8)
    # Kept blocks mostly lie back to back in the capture (the blocks of one
    # packet): copy each such run with one slice assignment.
    brk = np.flatnonzero(k_off[1:] != k_off[:-1] + k_len[:-1]) + 1
    del k_len
    run_a = np.concatenate(([0], brk))
    run_b = np.concatenate((brk, [n]))
    del brk
    for s0, d0, d1 in zip(k_off[run_a].tolist(), offsets[run_a].tolist(), offsets[run_b].tolist()):
        blob[d0:d1] = buf[s0:s0 + d1 - d0]
    del k_off, run_a, run_b
    idx.blob = blob
    bounds = np.searchsorted(k_sid, np.arange(len(names) + 1))
    for s in range(len(names)):
        a, b = int(bounds[s]), int(bounds[s + 1])
        if a == b:
            continue
        name = names[s]
        idx.sessions[name] = SessionIndex(name, k_seq[a:b], offsets[a:b + 1], blob)


def _trim_heap() -> None:
    # The parse's temporaries are freed by now; hand their pages back to the OS
    # so a long-running server holds about the index, not the peak (glibc only).
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def index_capture(path: str) -> CaptureIndex:
    """Index every MoldUDP64 message of a pcap/pcapng capture (plain or gzip).

    Raises :class:`RewindError` when the input cannot be read, is not a capture
    (a NASDAQ BinaryFILE has no sessions or sequence numbers), or holds no
    MoldUDP64 message.  A capture that is cut short or corrupt part-way is
    indexed up to the damage (``CaptureIndex.truncated`` says where)."""
    path = os.fspath(path)
    start = time.perf_counter()
    data, gzipped, close = _load(path)
    try:
        idx = CaptureIndex(path, "unknown", gzipped)
        if len(data) < 4:
            raise RewindError("%s is %s" % (path, "empty" if not len(data) else "too short to be a capture"))
        magic_le = struct.unpack_from("<I", data, 0)[0]
        magic_be = struct.unpack_from(">I", data, 0)[0]
        if magic_le in _PCAP_MAGICS or magic_be in _PCAP_MAGICS:
            fo, fl = _pcap_records(data, idx)
        elif magic_le == 0x0A0D0D0A:
            fo, fl = _pcapng_records(data, idx)
        elif _looks_like_binfile(data):
            raise RewindError("%s is a NASDAQ BinaryFILE: it has no MoldUDP64 sessions or sequence numbers "
                              "to serve; give the rewind server a pcap or pcapng capture of the feed" % path)
        else:
            raise RewindError("%s: unknown format (not a pcap, pcapng or gzip of either)" % path)
        buf = np.frombuffer(data, np.uint8)
        try:
            _index_frames(buf, fo, fl, idx)
        finally:
            del buf
    finally:
        data = None
        close()
    _trim_heap()
    idx.elapsed_s = time.perf_counter() - start
    if not idx.sessions:
        why = " (%s)" % idx.truncated if idx.truncated else ""
        raise RewindError("%s: no MoldUDP64 messages found in %d frame(s)%s" % (path, idx.frames, why))
    return idx


# -------------------------------------------------------------------- server

_HDR = struct.Struct(">QH")


def parse_request(request: bytes) -> Optional[Tuple[bytes, int, int]]:
    """(session, sequence number, requested count) of a re-request datagram,
    or None when it is not one (not exactly REQUEST_LEN bytes).  The parse is
    the C core's (fh_mold_parse_request), with the rest of the wire parsing."""
    request = bytes(request)
    session = ffi.new("uint8_t[10]")
    seq = ffi.new("uint64_t *")
    count = ffi.new("uint32_t *")
    if lib.fh_mold_parse_request(request, len(request), session, seq, count) != 0:
        return None
    return ffi.buffer(session)[:], int(seq[0]), int(count[0])


class RewindServer:
    """Answers MoldUDP64 re-requests for the messages of a capture.

    ``RewindServer(path, host, port, max_datagram=1400)`` indexes ``path`` (or
    takes a ready :class:`CaptureIndex` as ``index=``) and binds a UDP socket;
    ``serve_forever()`` answers requests one by one until ``stop()`` (from any
    thread or a signal handler; it returns within ``poll_s``).  ``address`` is
    the bound (host, port); ``stats`` a snapshot of the counters."""

    def __init__(self, path: Optional[str], host: str = "127.0.0.1", port: int = 0,
                 max_datagram: int = DEFAULT_MAX_DATAGRAM, index: Optional[CaptureIndex] = None,
                 poll_s: float = 0.1, log: Optional[Callable[[str], None]] = None):
        if not isinstance(max_datagram, int) or not MOLD_HEADER + 3 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError("max_datagram must be %d..%d bytes, got %r" % (MOLD_HEADER + 3, MAX_UDP_PAYLOAD,
                                                                           max_datagram))
        self.index = index if index is not None else index_capture(path)
        self.max_datagram = max_datagram
        self.poll_s = poll_s
        self.log = log
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "replies": 0, "messages_sent": 0, "bytes_sent": 0, "send_errors": 0,
                       "ignored": {r: 0 for r in IGNORE_REASONS}}
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        except (socket.gaierror, UnicodeError) as exc:
            raise RewindError("cannot resolve %s: %s" % (host, exc)) from None
        family, _, _, _, sockaddr = infos[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind(sockaddr)
        except OSError as exc:
            self._sock.close()
            raise RewindError("cannot listen on %s:%s: %s" % (host, port, exc.strerror or exc)) from None
        self._sock.settimeout(poll_s)
        self.address: Tuple[str, int] = self._sock.getsockname()[:2]

    # The counters, as one consistent copy.
    @property
    def stats(self) -> dict:
        with self._lock:
            d = dict(self._stats)
            d["ignored"] = dict(self._stats["ignored"])
        return d

    def _ignore(self, reason: str, addr, detail: str = "") -> None:
        with self._lock:
            self._stats["ignored"][reason] += 1
        if self.log:
            self.log("%s:%d ignored (%s)%s" % (addr[0], addr[1], reason, detail))

    def reply_for(self, request: bytes) -> Tuple[Optional[bytes], str, int]:
        """(reply datagram or None, ignore reason or "", messages in it): no I/O, no counting."""
        parsed = parse_request(request)
        if parsed is None:
            return None, "malformed", 0
        session, seq, count = parsed
        s = self.index.sessions.get(session)
        if s is None:
            return None, "unknown_session", 0
        if count == 0:
            return None, "zero_count", 0
        if seq < s.first or seq > s.last:
            return None, "out_of_range", 0
        i = s.find(seq)
        if i < 0:
            return None, "missing", 0      # lost on every line of the capture
        offs = s.offsets
        w = min(count, len(s.seqs) - i)
        # Stop before the first hole: seqs are unique and sorted, so the run
        # i..i+w-1 is contiguous exactly when its ends are w-1 apart.
        if int(s.seqs[i + w - 1]) - seq != w - 1:
            gaps = np.flatnonzero(s.seqs[i:i + w] != np.uint64(seq) + np.arange(w, dtype=np.uint64))
            w = int(gaps[0])
        room = self.max_datagram - MOLD_HEADER
        k = int(np.searchsorted(offs[i:i + w + 1] - offs[i], room, side="right")) - 1
        if k < 1:
            return None, "too_large", 0
        return session + _HDR.pack(seq, k) + s.blocks(i, k), "", k

    def handle(self, request: bytes, addr) -> Optional[bytes]:
        with self._lock:
            self._stats["requests"] += 1
        reply, reason, k = self.reply_for(request)
        if reply is None:
            self._ignore(reason, addr)
            return None
        # Counted before it leaves, so a client that has the reply never sees
        # counters without it (and taken back if the send fails).
        with self._lock:
            self._stats["replies"] += 1
            self._stats["messages_sent"] += k
            self._stats["bytes_sent"] += len(reply)
        try:
            self._sock.sendto(reply, addr)     # only ever to the requester
        except OSError as exc:
            with self._lock:
                self._stats["replies"] -= 1
                self._stats["messages_sent"] -= k
                self._stats["bytes_sent"] -= len(reply)
                self._stats["send_errors"] += 1
            if self.log:
                self.log("%s:%d reply failed: %s" % (addr[0], addr[1], exc))
            return None
        if self.log:
            session, seq, count = parse_request(request)
            self.log("%s:%d %s seq %d count %d -> %d message(s), %d bytes" % (
                addr[0], addr[1], session.decode("latin-1"), seq, count, k, len(reply)))
        return reply

    def serve_forever(self) -> None:
        """Answer requests one at a time until :meth:`stop`."""
        sock = self._sock
        while not self._stop.is_set():
            try:
                request, addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set() or sock.fileno() < 0:
                    break
                continue        # e.g. ICMP port unreachable from an earlier reply (ECONNREFUSED)
            self.handle(request, addr)

    def stop(self) -> None:
        """Ask serve_forever to return (within poll_s); safe from threads and signal handlers."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def in_background(self, join_s: float = 10.0):
        """Serve from a daemon thread for the duration of a ``with`` block
        (tests, embedding): stopped and joined on the way out; RuntimeError
        if it has not stopped within join_s."""
        t = threading.Thread(target=self.serve_forever, name="rewind-server", daemon=True)
        t.start()
        try:
            yield self
        finally:
            self.stop()
            t.join(join_s)
        if t.is_alive():
            raise RuntimeError("rewind server did not stop within %.1f s" % join_s)


def describe_index(idx: CaptureIndex) -> List[str]:
    """Human-readable lines of what an index holds."""
    mps = idx.blocks / idx.elapsed_s if idx.elapsed_s > 0 else 0.0
    lines = ["indexed %s [%s%s]: %s messages (%s bytes) in %d session(s) from %s frames, %.3f s (%s blocks/s)" % (
        idx.path, idx.format, ", gzip" if idx.gzip else "", format(idx.messages, ","),
        format(idx.message_bytes, ","), len(idx.sessions), format(idx.frames, ","), idx.elapsed_s,
        format(int(mps), ","))]
    for s in idx.sessions.values():
        lines.append("  session %-12r seq %d..%d  %s messages%s" % (
            s.session.decode("latin-1"), s.first, s.last, format(s.count, ","),
            ", %s missing (lost on every line)" % format(s.missing, ",") if s.missing else ""))
    lines.append("  mold packets %s, heartbeats %s, end of session %s, duplicate copies %s%s" % (
        format(idx.mold_packets, ","), format(idx.heartbeats, ","), format(idx.end_of_session, ","),
        format(idx.duplicates, ","),
        " (%d differing in length; first kept)" % idx.duplicate_mismatch if idx.duplicate_mismatch else ""))
    if idx.skipped:
        lines.append("  skipped: " + ", ".join("%s %s" % (k, format(v, ",")) for k, v in sorted(idx.skipped.items())))
    if idx.truncated:
        lines.append("  WARNING: capture damaged (%s); indexed what came before" % idx.truncated)
    return lines


def stats_json(server: RewindServer) -> dict:
    d = server.stats
    d["listen"] = "%s:%d" % server.address
    d["max_datagram"] = server.max_datagram
    d["index"] = server.index.summary()
    return d


def write_stats_json(server: RewindServer, path: str) -> None:
    with open(path, "w") as f:
        json.dump(stats_json(server), f, indent=2, sort_keys=True)
        f.write("\n")
