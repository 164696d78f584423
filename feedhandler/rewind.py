"""A MoldUDP64 re-request ("rewind") server that answers from a capture.

``index_capture(path)`` indexes every MoldUDP64 message of every UDP datagram
of a capture by (session, sequence number).  The capture is read by the C core
(csrc/index.c) with the replay's own input layer and parsing rules -- pcap,
pcapng, gzip, zstd, pipes and standard input; Ethernet/VLAN/IPv4/UDP; the
MoldUDP64 header and block walk -- and the replay's counters.  The index is
compact and lives in C memory, seen from Python as numpy arrays with no
Python object per message: per session, the kept messages as their MoldUDP64
wire blocks (u16 big-endian length + message) in sequence order in one byte
array, with one u64 sequence number and one i64 offset per message.

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

import ipaddress
import json
import os
import socket
import struct
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .background import in_background
from .core import ffi, lib, stats_to_dict
from .errors import RewindError  # noqa: F401  (re-exported: feedhandler.rewind.RewindError)

MOLD_HEADER = 20                  # session (10) + sequence number (8) + message count (2)
REQUEST_LEN = 20                  # session (10) + sequence number (8) + requested count (2)
DEFAULT_MAX_DATAGRAM = 1400
MAX_UDP_PAYLOAD = 65507           # IPv4: 65535 - 20 (IP) - 8 (UDP)
IGNORE_REASONS = ("malformed", "unknown_session", "zero_count", "out_of_range", "missing", "too_large",
                  "not_allowed", "rate_limited")
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")     # loopback: a test server answers this machine only
MAX_TRACKED_CLIENTS = 4096        # rate-limit buckets kept at once (each an allowed address)

# --------------------------------------------------------------------- index

class SessionIndex:
    """The messages of one MoldUDP64 session, in sequence order.

    ``seqs`` (u64, sorted, unique) and ``offsets`` (i64, ``len(seqs) + 1``,
    from 0): message ``i`` (sequence ``seqs[i]``) is
    ``blob[offsets[i] + 2:offsets[i + 1]]`` of the session's byte array,
    preceded by its u16 big-endian length, so that
    ``blob[offsets[i]:offsets[i + k]]`` is ready-made MoldUDP64 message blocks.
    The arrays are read-only views of the C index's memory."""

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
        if seq < self.first or seq > self.last:
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
        self.compression: Optional[str] = "gzip" if gzipped else None   # "gzip", "zstd" or None
        self.sessions: Dict[bytes, SessionIndex] = {}
        self.message_bytes = 0        # bytes of the kept messages' blocks
        self.frames = 0               # capture records that held a frame
        self.datagrams = 0            # UDP datagrams carrying a MoldUDP64 header
        self.mold_packets = 0         # ... of which data packets (count 1..0xFFFE)
        self.heartbeats = 0
        self.end_of_session = 0
        self.blocks = 0               # message blocks read, every line (duplicates included)
        self.duplicates = 0           # the same (session, sequence) again: the B copy, a retransmission
        self.duplicate_mismatch = 0   # ... whose length differs from the copy kept (first seen is kept)
        self.skipped: Dict[str, int] = {}      # the replay's nonzero error counters (fh_err_name)
        self.truncated: Optional[str] = None   # where the capture was found cut short / corrupt
        self.elapsed_s = 0.0
        self.counters: dict = {}      # the walk's counters, as Replay.stats() has them (core.stats_to_dict)

    @property
    def messages(self) -> int:
        return sum(s.count for s in self.sessions.values())

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


_FORMATS = {int(lib.FH_FMT_PCAP_US): "pcap (us)", int(lib.FH_FMT_PCAP_NS): "pcap (ns)",
            int(lib.FH_FMT_PCAPNG): "pcapng", int(lib.FH_FMT_BINFILE): "NASDAQ BinaryFILE"}


def _compression(path: str) -> int:
    """0 plain, 1 gzip, 2 zstd: the C input layer's reading of the first bytes
    (standard input and special files: not looked at, 0)."""
    if path == "-":
        return 0
    try:
        with open(path, "rb") as f:
            if not os.path.isfile(path):
                return 0
            head = f.read(4)
    except OSError:
        return 0
    return int(lib.fh_input_compression(head, len(head)))


def _view(owner, ptr, n: int, dtype) -> np.ndarray:
    """A read-only numpy view of n items at ptr that keeps ``owner`` (the C
    index) alive as long as the view lives."""
    if n == 0:
        return np.zeros(0, dtype)
    keep = ffi.gc(ptr, lambda _p, _owner=owner: None)
    a = np.frombuffer(ffi.buffer(keep, n * np.dtype(dtype).itemsize), dtype)
    a.flags.writeable = False
    return a


def _run_index(cix, path: str, fmt, err):
    """fh_index_file on a thread (the GIL is released), so Ctrl-C stops the
    walk instead of waiting for it."""
    out = []
    t = threading.Thread(target=lambda: out.append(lib.fh_index_file(cix, path.encode(), fmt, err, len(err))),
                         name="rewind-index", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.1)
    except KeyboardInterrupt:
        lib.fh_index_stop(cix)
        t.join()
        raise
    return out[0]


def _trim_heap() -> None:
    # The walk's temporaries are freed by now; hand their pages back to the OS
    # so a long-running server holds about the index, not the peak (glibc only).
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def index_capture(path: str) -> CaptureIndex:
    """Index every MoldUDP64 message of a capture: pcap or pcapng, plain,
    gzip or zstd, a pipe or standard input ("-").

    The capture is read by the C core exactly as ``feedhandler replay`` reads
    it (csrc/index.c: the same input layer, walkers, frame parse, MoldUDP64
    block walk and counters); ``skipped`` holds the nonzero counters of what
    was not indexed, under the replay's names.  Raises :class:`RewindError`
    when the input cannot be read, is not a capture (a NASDAQ BinaryFILE has
    no sessions or sequence numbers), or holds no MoldUDP64 message.  A
    capture that is cut short or corrupt part-way is indexed up to the damage
    (``CaptureIndex.truncated`` says where)."""
    path = os.fspath(path)
    start = time.perf_counter()
    err = ffi.new("char[512]")
    raw = lib.fh_index_new(err, len(err))
    if raw == ffi.NULL:
        raise MemoryError(ffi.string(err).decode(errors="replace"))
    cix = ffi.gc(raw, lib.fh_index_free)
    fmt = ffi.new("int *")
    comp = _compression(path)
    rc = _run_index(cix, path, fmt, err)
    msg = ffi.string(err).decode(errors="replace")
    if rc == -2:
        raise KeyboardInterrupt
    if rc < 0:
        if fmt[0] == lib.FH_FMT_BINFILE:
            raise RewindError("%s is a NASDAQ BinaryFILE: it has no MoldUDP64 sessions or sequence numbers "
                              "to serve; give the rewind server a pcap or pcapng capture of the feed" % path)
        if "out of memory" in msg:
            raise MemoryError(msg)
        if "unrecognised format" in msg:
            raise RewindError("%s: unknown format (not a pcap or pcapng capture, plain, gzip or zstd)" % path)
        raise RewindError(msg)
    idx = CaptureIndex(path, _FORMATS.get(int(fmt[0]), "unknown"), comp == 1)
    idx.compression = {1: "gzip", 2: "zstd"}.get(comp)
    st = ffi.new("fh_stats_t *")
    lib.fh_index_stats(cix, st)
    counts = ffi.new("uint64_t[3]")
    lib.fh_index_counts(cix, counts, counts + 1, counts + 2)
    idx.counters = stats_to_dict(st)
    idx.frames = int(st.packets)
    idx.datagrams = int(st.mold_packets)
    idx.heartbeats = int(st.heartbeats)
    idx.end_of_session = int(st.end_of_session)
    idx.mold_packets = idx.datagrams - idx.heartbeats - idx.end_of_session
    idx.blocks, idx.duplicates, idx.duplicate_mismatch = (int(c) for c in counts)
    for e in range(lib.FH_ERR__COUNT):
        if st.errors[e]:
            idx.skipped[ffi.string(lib.fh_err_name(e)).decode()] = int(st.errors[e])
    if rc == 1:
        prefix = path + ": "
        idx.truncated = msg[len(prefix):] if msg.startswith(prefix) else msg
    name = ffi.new("uint8_t[10]")
    n = ffi.new("uint64_t *")
    seqs = ffi.new("uint64_t **")
    offs = ffi.new("int64_t **")
    blob = ffi.new("uint8_t **")
    for k in range(lib.fh_index_sessions(cix)):
        lib.fh_index_session(cix, k, name, n, seqs, offs, blob)
        count = int(n[0])
        o = _view(cix, offs[0], count + 1, np.int64)
        sname = ffi.buffer(name)[:]
        idx.sessions[sname] = SessionIndex(sname, _view(cix, seqs[0], count, np.uint64), o,
                                           _view(cix, blob[0], int(o[-1]), np.uint8))
    idx.message_bytes = sum(int(s.offsets[-1]) for s in idx.sessions.values())
    del cix
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


class AllowList:
    """The client networks a server answers (CIDR strings; a bare address is a
    /32 or /128).  An IPv4-mapped IPv6 source (a dual-stack socket) is checked
    as the IPv4 address it carries.  ValueError for a network that is not one."""

    def __init__(self, networks: Iterable[str] = DEFAULT_ALLOW):
        nets = []
        for n in [networks] if isinstance(networks, str) else networks:
            try:
                nets.append(ipaddress.ip_network(str(n).strip(), strict=False))
            except ValueError:
                raise ValueError("not a network (CIDR such as 10.0.0.0/8 or ::1/128): %r" % n) from None
        if not nets:
            raise ValueError("an empty allow-list answers nobody")
        self.networks = tuple(nets)

    def allows(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks if n.version == ip.version)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)


class RateLimiter:
    """A token bucket per client address, in reply bytes: each address may be
    sent ``rate`` bytes per second on average and ``burst`` bytes at once.
    This bounds what a spoofed source can make the server send its victim,
    whatever the 69x a 20-byte request can ask for.  At most ``max_clients``
    buckets are kept (a bucket that has refilled is the same as none and is
    dropped when room is needed); a new address that finds no room is refused."""

    def __init__(self, rate: float, burst: float, max_clients: int = MAX_TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        if not rate > 0 or not burst > 0 or max_clients < 1:
            raise ValueError("rate > 0, burst > 0 and max_clients >= 1, got %r, %r, %r" % (rate, burst,
                                                                                       max_clients))
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: Dict[str, List[float]] = {}     # host -> [tokens, time of last update]
        self._no_purge_until = float("-inf")

    def take(self, host: str, n: int) -> bool:
        """True (and n bytes spent) when host may be sent n bytes now."""
        now = self._clock()
        b = self._buckets.get(host)
        if b is None:
            if len(self._buckets) >= self.max_clients and not self._purge(now):
                return False
            b = self._buckets[host] = [self.burst, now]
        else:
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        if b[0] < n:
            return False
        b[0] -= n
        return True

    def _purge(self, now: float) -> bool:
        """Drop the buckets that have refilled; whether room was made.  A
        fruitless scan is not repeated for a while (a flood of new addresses
        must not make every request cost a scan)."""
        if now < self._no_purge_until:
            return False
        full = self.burst / self.rate
        for host in [h for h, (tokens, t) in self._buckets.items() if now - t >= full]:
            del self._buckets[host]
        if len(self._buckets) < self.max_clients:
            return True
        self._no_purge_until = now + min(1.0, full)
        return False


class RewindServer:
    """Answers MoldUDP64 re-requests for the messages of a capture.

    ``RewindServer(path, host, port, max_datagram=1400)`` indexes ``path`` (or
    takes a ready :class:`CaptureIndex` as ``index=``) and binds a UDP socket;
    ``serve_forever()`` answers requests one by one until ``stop()`` (from any
    thread or a signal handler; it returns within ``poll_s``).  ``address`` is
    the bound (host, port); ``stats`` a snapshot of the counters.

    Only sources in ``allow`` (CIDR networks; loopback by default) are
    answered, the rest ignored and counted (``not_allowed``) before their
    request is parsed.  ``rate_limit`` (reply bytes per second per client
    address, ``burst`` bytes at once, one second's worth by default; None: no
    limit) drops and counts (``rate_limited``) what would exceed it."""

    def __init__(self, path: Optional[str], host: str = "127.0.0.1", port: int = 0,
                 max_datagram: int = DEFAULT_MAX_DATAGRAM, index: Optional[CaptureIndex] = None,
                 poll_s: float = 0.1, log: Optional[Callable[[str], None]] = None,
                 allow: Iterable[str] = DEFAULT_ALLOW, rate_limit: Optional[float] = None,
                 burst: Optional[float] = None):
        if not isinstance(max_datagram, int) or not MOLD_HEADER + 3 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError("max_datagram must be %d..%d bytes, got %r" % (MOLD_HEADER + 3, MAX_UDP_PAYLOAD,
                                                                           max_datagram))
        self.allow = allow if isinstance(allow, AllowList) else AllowList(allow)
        if burst is not None and rate_limit is None:
            raise ValueError("burst without rate_limit")
        if rate_limit is not None:
            burst = float(max(rate_limit, max_datagram) if burst is None else burst)
            if burst < max_datagram:
                raise ValueError("burst (%r bytes) below max_datagram (%d): a full reply could never go" % (
                    burst, max_datagram))
        self.limiter = RateLimiter(rate_limit, burst) if rate_limit is not None else None
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
            n = self._stats["ignored"][reason]
        # What a flood can cause is logged at its 1st, 2nd, 4th, 8th... time only.
        if self.log and (reason not in ("not_allowed", "rate_limited") or n & (n - 1) == 0):
            self.log("%s:%d ignored (%s)%s" % (addr[0], addr[1], reason, detail or (
                " (%d so far)" % n if reason in ("not_allowed", "rate_limited") else "")))

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
        if not self.allow.allows(addr[0]):
            self._ignore("not_allowed", addr)
            return None
        reply, reason, k = self.reply_for(request)
        if reply is None:
            self._ignore(reason, addr)
            return None
        if self.limiter is not None and not self.limiter.take(addr[0], len(reply)):
            self._ignore("rate_limited", addr)
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

    def in_background(self, join_s: float = 10.0):
        """Serve from a daemon thread for the duration of a ``with`` block
        (tests, embedding): stopped and joined on the way out; RuntimeError
        if it has not stopped within join_s."""
        return in_background(self, "rewind-server", join_s)


def describe_index(idx: CaptureIndex) -> List[str]:
    """Human-readable lines of what an index holds."""
    mps = idx.blocks / idx.elapsed_s if idx.elapsed_s > 0 else 0.0
    lines = ["indexed %s [%s%s]: %s messages (%s bytes) in %d session(s) from %s frames, %.3f s (%s blocks/s)" % (
        idx.path, idx.format, ", " + idx.compression if idx.compression else "", format(idx.messages, ","),
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
    d["allow"] = [str(n) for n in server.allow.networks]
    lim = server.limiter
    d["rate_limit"] = None if lim is None else {"bytes_per_s": lim.rate, "burst_bytes": lim.burst}
    d["index"] = server.index.summary()
    return d


def write_stats_json(server: RewindServer, path: str) -> None:
    with open(path, "w") as f:
        json.dump(stats_json(server), f, indent=2, sort_keys=True)
        f.write("\n")
