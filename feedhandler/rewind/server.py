"""The re-request server: :class:`RewindServer` answers MoldUDP64 re-requests
from a :class:`~feedhandler.rewind.index.CaptureIndex`, only for the networks
an :class:`AllowList` lets in and within a :class:`RateLimiter`'s budget;
:func:`stats_json` / :func:`write_stats_json` report its counters."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ..background import in_background
from ..core import ffi, lib
from ..errors import RewindError
from .index import CaptureIndex, index_capture

__all__ = [
    "RewindServer",
    "AllowList",
    "RateLimiter",
    "parse_request",
    "stats_json",
    "write_stats_json",
    "MOLD_HEADER",
    "REQUEST_LEN",
    "DEFAULT_MAX_DATAGRAM",
    "MAX_UDP_PAYLOAD",
    "IGNORE_REASONS",
    "DEFAULT_ALLOW",
    "MAX_TRACKED_CLIENTS",
]

MOLD_HEADER = 20  # session (10) + sequence number (8) + message count (2)
REQUEST_LEN = 20  # session (10) + sequence number (8) + requested count (2)
DEFAULT_MAX_DATAGRAM = 1400
MAX_UDP_PAYLOAD = 65507  # IPv4: 65535 - 20 (IP) - 8 (UDP)
IGNORE_REASONS = (
    "malformed",
    "unknown_session",
    "zero_count",
    "out_of_range",
    "missing",
    "too_large",
    "not_allowed",
    "rate_limited",
)
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")  # loopback: a test server answers this machine only
MAX_TRACKED_CLIENTS = 4096  # rate-limit buckets kept at once (each an allowed address)

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

    def __init__(
        self,
        rate: float,
        burst: float,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not rate > 0 or not burst > 0 or max_clients < 1:
            raise ValueError("rate > 0, burst > 0 and max_clients >= 1, got %r, %r, %r" % (rate, burst, max_clients))
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: Dict[str, List[float]] = {}  # host -> [tokens, time of last update]
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

    def __init__(
        self,
        path: Optional[str],
        host: str = "127.0.0.1",
        port: int = 0,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        index: Optional[CaptureIndex] = None,
        poll_s: float = 0.1,
        log: Optional[Callable[[str], None]] = None,
        allow: Iterable[str] = DEFAULT_ALLOW,
        rate_limit: Optional[float] = None,
        burst: Optional[float] = None,
    ):
        if not isinstance(max_datagram, int) or not MOLD_HEADER + 3 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(
                "max_datagram must be %d..%d bytes, got %r" % (MOLD_HEADER + 3, MAX_UDP_PAYLOAD, max_datagram)
            )
        self.allow = allow if isinstance(allow, AllowList) else AllowList(allow)
        if burst is not None and rate_limit is None:
            raise ValueError("burst without rate_limit")
        if rate_limit is not None:
            burst = float(max(rate_limit, max_datagram) if burst is None else burst)
            if burst < max_datagram:
                raise ValueError(
                    "burst (%r bytes) below max_datagram (%d): a full reply could never go" % (burst, max_datagram)
                )
        self.limiter = RateLimiter(rate_limit, burst) if rate_limit is not None else None
        self.index = index if index is not None else index_capture(path)
        self.max_datagram = max_datagram
        self.poll_s = poll_s
        self.log = log
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = {
            "requests": 0,
            "replies": 0,
            "messages_sent": 0,
            "bytes_sent": 0,
            "send_errors": 0,
            "ignored": {r: 0 for r in IGNORE_REASONS},
        }
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
            self.log(
                "%s:%d ignored (%s)%s"
                % (
                    addr[0],
                    addr[1],
                    reason,
                    detail or (" (%d so far)" % n if reason in ("not_allowed", "rate_limited") else ""),
                )
            )

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
            return None, "missing", 0  # lost on every line of the capture
        offs = s.offsets
        w = min(count, len(s.seqs) - i)
        # Stop before the first hole: seqs are unique and sorted, so the run
        # i..i+w-1 is contiguous exactly when its ends are w-1 apart.
        if int(s.seqs[i + w - 1]) - seq != w - 1:
            gaps = np.flatnonzero(s.seqs[i : i + w] != np.uint64(seq) + np.arange(w, dtype=np.uint64))
            w = int(gaps[0])
        room = self.max_datagram - MOLD_HEADER
        k = int(np.searchsorted(offs[i : i + w + 1] - offs[i], room, side="right")) - 1
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
            self._sock.sendto(reply, addr)  # only ever to the requester
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
            self.log(
                "%s:%d %s seq %d count %d -> %d message(s), %d bytes"
                % (addr[0], addr[1], session.decode("latin-1"), seq, count, k, len(reply))
            )
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
                continue  # e.g. ICMP port unreachable from an earlier reply (ECONNREFUSED)
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
