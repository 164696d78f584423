"""GLIMPSE 5.0 snapshots over SoupBinTCP 4.0: the builder, the server, the client.

GLIMPSE is NASDAQ's point-to-point snapshot service for TotalView-ITCH: a
client that joins late (or lost too much to recover by re-request) logs in
over SoupBinTCP, receives the state of every book as ordinary ITCH 5.0
messages (stock directory, trading state, Reg SHO, LULD collar, then every
live order as an Add Order), one per sequenced data packet, and then the End
of Snapshot message ('G' + Sequence Number, Numeric(20)): the MoldUDP64
sequence number at which the live feed continues the snapshot.  It applies
the snapshot to empty books and continues with the live feed from there.

``build_snapshot(capture, at_seq=...)`` makes a snapshot from a capture:
the capture is indexed (:func:`feedhandler.rewind.index_capture`), the
session's messages before ``at_seq`` are replayed into books, and the C core
writes those books back out as ITCH messages (csrc/glimpse.c,
``fh_glimpse_build``).  ``GlimpseServer`` serves one snapshot to any number
of clients; ``fetch_snapshot`` is the client.  Everything the network says is
hostile: every packet is framed and length-checked by the C core (csrc/soup.c)
before it is read, every ITCH message of a snapshot is checked against the
ITCH 5.0 length table, and a snapshot that is wrong in any way is refused
whole (:class:`SnapshotError`, with a short ``reason`` to count by).
"""
from __future__ import annotations

import dataclasses
import errno
import hmac
import json
import os
import select
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import soup
from .background import in_background
from .core import ffi, lib
from .errors import SnapshotError  # noqa: F401  (re-exported: feedhandler.glimpse.SnapshotError)

__all__ = ["Snapshot", "SnapshotError", "build_snapshot", "fetch_snapshot", "GlimpseServer", "describe_snapshot",
           "END_OF_SNAPSHOT", "REASONS"]

END_OF_SNAPSHOT = b"G"
# A lane's capacities when none are given (csrc/pipeline.c): the size bound of
# a snapshot fetched without one (fetch_snapshot's max_bytes=None).
DEFAULT_MAX_ORDERS = 2 << 20
DEFAULT_MAX_INSTRUMENTS = 65535
EOS_LEN = 21                       # 'G' + Numeric(20)
HEARTBEAT_S = 1.0                  # SoupBinTCP: a side sends a heartbeat after 1 s without sending
IDLE_TIMEOUT_S = 15.0              # ... and drops a peer it has not heard for 15 s
LOGIN_TIMEOUT_S = 5.0              # server: a connection must have logged in by then (bytes do not extend it)
MAX_CLIENTS = 64                   # server: connections at once; the next ones are accepted, closed and counted
ACCEPT_BACKOFF_S = (0.01, 0.5)     # server: first and longest pause after accept() fails for lack of fds/memory
_SEND_CHUNK = 1 << 16

#: SnapshotError.reason values (counters are keyed by them).
REASONS = ("input", "connect", "rejected", "timeout", "closed", "corrupt", "too_long", "bad_message", "no_end")


@dataclasses.dataclass
class Snapshot:
    """A GLIMPSE snapshot: ``blocks`` holds its ITCH 5.0 messages, each after its
    u16 big-endian length (MoldUDP64 block / BinaryFILE framing), without the End
    of Snapshot message; ``sequence`` is End of Snapshot's sequence number (the
    first message the live feed must supply); ``messages`` how many messages
    ``blocks`` holds; ``session`` the MoldUDP64 / SoupBinTCP session name."""

    blocks: bytes
    sequence: int
    messages: int
    session: str
    instruments: int = 0           # Stock Directory messages
    orders: int = 0                # Add Order messages (live orders)
    #: messages of the session before ``sequence`` the capture did not hold (its
    #: own gaps): the snapshot is then incomplete.  Not sent over the wire.
    missing: int = dataclasses.field(default=0, compare=False)
    #: ITCH timestamp (ns since midnight) its messages carry.
    timestamp_ns: int = dataclasses.field(default=0, compare=False)

    def messages_list(self) -> List[bytes]:
        """The messages, one bytes each (tests, tools; not for a full day)."""
        out, b, off = [], self.blocks, 0
        while off + 2 <= len(b):
            n = int.from_bytes(b[off:off + 2], "big")
            out.append(b[off + 2:off + 2 + n])
            off += 2 + n
        return out


# ------------------------------------------------------------------ builder

def _parse_session(name: str) -> bytes:
    return name.encode("latin-1").rjust(10)[:10] if len(name) <= 10 else b""


def _pick_session(idx, session: Optional[str]):
    names = sorted(idx.sessions)
    shown = ", ".join(repr(n.decode("latin-1").strip()) for n in names)
    if session is not None:
        for n in names:
            if n == session.encode("latin-1") or n.decode("latin-1").strip() == session.strip():
                return idx.sessions[n]
        raise SnapshotError("%s holds no session %r (it holds %s)" % (idx.path, session, shown), "input")
    if len(names) != 1:
        raise SnapshotError("%s holds %d sessions (%s): pick one with session=" % (idx.path, len(names), shown),
                            "input")
    return idx.sessions[names[0]]


def _timestamps(s) -> np.ndarray:
    """ITCH timestamps (bytes 5..11 of each message, 6-byte BE ns since
    midnight); 0 for a message too short to hold one."""
    blob = s._blob
    offs = s.offsets
    n = len(s.seqs)
    if n == 0:
        return np.zeros(0, np.uint64)
    start = offs[:-1] + 2
    ok = (offs[1:] - start) >= 11
    ts = np.zeros(n, np.uint64)
    pos = start[ok] + 5
    acc = np.zeros(int(ok.sum()), np.uint64)
    for k in range(6):
        acc = (acc << np.uint64(8)) | blob[pos + k].astype(np.uint64)
    ts[ok] = acc
    return ts


def _build_c(rp, ts_ns: int, hint: int) -> Tuple[bytes, int]:
    length = ffi.new("size_t *")
    msgs = ffi.new("uint64_t *")
    cap = max(4096, hint)
    for _ in range(3):
        buf = ffi.new("uint8_t[]", cap)
        rc = lib.fh_glimpse_build(rp, ts_ns, buf, cap, length, msgs)
        if rc == 0:
            return bytes(ffi.buffer(buf, length[0])), int(msgs[0])
        if rc == -1:
            cap = int(length[0])
            continue
        if rc == -3:
            raise MemoryError("out of memory building the snapshot")
        raise SnapshotError("the replay has no books to snapshot", "input")
    raise SnapshotError("snapshot size kept changing", "input")


def build_snapshot(path: str, at_seq: Optional[int] = None, at_time_ns: Optional[int] = None,
                   session: Optional[str] = None, max_orders: int = 0, max_instruments: int = 65535,
                   progress: bool = False) -> Snapshot:
    """The GLIMPSE snapshot of a capture's session just before sequence ``at_seq``.

    The capture (pcap / pcapng, plain, gzip or zstd) is indexed; ``session``
    picks the MoldUDP64 session (needed only when there are several).  The
    snapshot holds the books after every message with sequence < ``at``, where
    ``at`` is ``at_seq``, or the sequence of the first message whose ITCH
    timestamp is >= ``at_time_ns``, or (neither) one past the last message.
    ``Snapshot.sequence`` is ``at``: the message the live feed continues with.
    Sequence numbers before ``at`` the capture does not hold (its own gaps, or a
    capture that starts mid-day) are counted in ``Snapshot.missing``: the books
    are built anyway, from what there is.  Raises :class:`SnapshotError`
    (reason "input") when the input cannot be used."""
    from .replay import Replay
    from .rewind import RewindError, index_capture
    if at_seq is not None and at_time_ns is not None:
        raise ValueError("give at_seq or at_time_ns, not both")
    if at_seq is not None and not 1 <= at_seq < 1 << 64:
        raise ValueError("at_seq must be 1..2^64-1, got %r" % (at_seq,))
    if at_time_ns is not None and not 0 <= at_time_ns < 1 << 48:
        raise ValueError("at_time_ns must be 0..2^48-1 ns since midnight, got %r" % (at_time_ns,))
    try:
        idx = index_capture(os.fspath(path))
    except RewindError as exc:
        raise SnapshotError(str(exc), "input") from None
    s = _pick_session(idx, session)
    seqs = s.seqs
    ts = None
    if at_seq is not None:
        at = at_seq
    elif at_time_ns is not None:
        ts = _timestamps(s)
        later = np.flatnonzero(ts >= np.uint64(at_time_ns))
        at = int(seqs[later[0]]) if len(later) else s.last + 1
    else:
        at = s.last + 1
    i = int(np.searchsorted(seqs, np.uint64(at), side="left"))     # messages with seq < at
    # seq 0 never starts a MoldUDP64 session; messages there are not "missing" ones.
    held = i - int(np.searchsorted(seqs, np.uint64(1), side="left"))
    missing = max(0, at - 1 - held)
    blocks = s.blocks(0, i) if i else b""
    if ts is None and i:
        ts = _timestamps(s)
    last_ts = int(ts[i - 1]) if i else 0
    with Replay(mode="book", max_orders=max_orders, max_instruments=max_instruments) as rp:
        if blocks:
            res = rp.run_buffer(blocks)
            if not res.ok and not res.partial:
                raise SnapshotError("replaying the session's messages failed: %s" % res.error, "input")
        rp.finish()
        st = rp.stats()
        lane = rp.handles[0]
        out, n = _build_c(lane, last_ts, 64 * (int(st["book"]["orders_live"]) + 1) + 128 * 1024)
        instruments = sum(1 for loc in range(1, max_instruments + 1) if rp.flags(loc) & 8)
        orders = int(st["book"]["orders_live"])
    return Snapshot(blocks=out, sequence=at, messages=n, session=s.session.decode("latin-1").strip(),
                    instruments=instruments, orders=orders, missing=missing, timestamp_ns=last_ts)


def describe_snapshot(snap: Snapshot) -> str:
    miss = ", %s missing from the capture (incomplete)" % format(snap.missing, ",") if snap.missing else ""
    return ("snapshot of session %r before sequence %d: %s instruments, %s live orders, %s messages (%s bytes)%s"
            % (snap.session, snap.sequence, format(snap.instruments, ","), format(snap.orders, ","),
               format(snap.messages, ","), format(len(snap.blocks), ","), miss))


# ------------------------------------------------------------------- client

def fetch_snapshot(host: str, port: int, user: str = "", password: str = "", session: str = "",
                   timeout: float = 5.0, deadline: float = 60.0, max_bytes: Optional[int] = None,
                   recv_size: int = 1 << 20) -> Snapshot:
    """Log in to a GLIMPSE server and receive one snapshot.

    Sends a SoupBinTCP login request (requested sequence 1), expects Login
    Accepted, then sequenced data (each one ITCH 5.0 message, length-checked
    against the ITCH 5.0 table) up to End of Snapshot; then logs out.  Server
    heartbeats and debug packets are ignored, unsequenced data is counted and
    ignored; a client heartbeat goes out after 1 s without sending.

    Bounds (docs/recovery.md): ``deadline`` s in all, connect included;
    ``timeout`` s at most without progress, and only snapshot data is progress
    (Login Accepted, a message, End of Snapshot): server heartbeats keep the
    session alive but extend nothing; at most ``max_bytes`` of messages (None:
    what a lane with the default capacities takes, fh_snapshot_max_bytes).
    Raises :class:`SnapshotError`: "connect" (no connection), "rejected"
    (Login Rejected: the message says why), "timeout" (no snapshot data for
    ``timeout`` s), "closed" (the connection ended first), "corrupt" (a framing
    or protocol error), "bad_message" (not an ITCH 5.0 message), "no_end" (End
    of Session before End of Snapshot), "too_long" (past ``deadline`` s in all
    or ``max_bytes`` of snapshot: a snapshot that never ends)."""
    t0 = time.monotonic()
    end = t0 + deadline
    if max_bytes is None:
        max_bytes = int(lib.fh_snapshot_max_bytes(DEFAULT_MAX_ORDERS, DEFAULT_MAX_INSTRUMENTS))
    try:
        login = soup.login_request(user, password, session, 1)
    except soup.SoupError as exc:
        raise ValueError(str(exc)) from None
    try:
        sock = socket.create_connection((host, port), timeout=max(0.001, min(timeout, deadline)))
    except socket.timeout:
        raise SnapshotError("no connection to %s:%d within %.1f s" % (host, port, timeout), "timeout") from None
    except OSError as exc:
        raise SnapshotError("cannot connect to %s:%d: %s" % (host, port, exc.strerror or exc), "connect") from None
    try:
        return _fetch(sock, login, host, port, timeout, end, deadline, max_bytes, recv_size)
    finally:
        sock.close()


def _fetch(sock, login, host, port, timeout, end, deadline, max_bytes, recv_size) -> Snapshot:
    where = "%s:%d" % (host, port)
    # Sends block for at most `timeout`: a server that stops reading is a dead one.
    sock.settimeout(timeout)

    def send(data: bytes) -> None:
        try:
            sock.sendall(data)
        except socket.timeout:
            raise SnapshotError("%s stopped reading (send blocked %.1f s)" % (where, timeout), "timeout") from None
        except OSError as exc:
            raise SnapshotError("%s: connection lost: %s" % (where, exc.strerror or exc), "closed") from None

    send(login)
    # last_rx: the last progress -- snapshot data, not any byte (a server that
    # sends only heartbeats is stuck, however alive it looks).
    last_sent = last_rx = time.monotonic()
    framer = soup.Framer(from_server=True)
    # The data phase goes to C in bulk (fh_glimpse_collect): received bytes in
    # `pending`, checked messages appended to `out` (grown as needed).
    pending = bytearray()
    out = bytearray(max(1, min(1 << 20, max_bytes)))
    acc = ffi.new("fh_glimpse_acc_t *")
    sess_name: Optional[str] = None
    while True:
        now = time.monotonic()
        msgs = int(acc.messages)
        if now >= end:
            raise SnapshotError("a snapshot that never ends: no End of Snapshot from %s within %.1f s "
                                "(%d messages so far)" % (where, deadline, msgs), "too_long")
        if now - last_rx >= timeout:
            raise SnapshotError("%s sent no snapshot data for %.1f s (heartbeats do not count; %d messages so far)"
                                % (where, timeout, msgs), "timeout")
        if sess_name is not None and now - last_sent >= HEARTBEAT_S:
            send(soup.packet(soup.CLIENT_HEARTBEAT))
            last_sent = now
        wait = min(end, last_rx + timeout) - now
        if sess_name is not None:
            wait = min(wait, last_sent + HEARTBEAT_S - now)
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, wait))
        except (OSError, ValueError) as exc:
            raise SnapshotError("%s: connection lost: %s" % (where, exc), "closed") from None
        if not ready:
            continue
        try:
            data = sock.recv(recv_size)
        except socket.timeout:
            continue
        except OSError as exc:
            raise SnapshotError("%s: connection lost after %d messages: %s" % (where, msgs, exc.strerror or exc),
                                "closed") from None
        if not data:
            what = "before End of Snapshot" if sess_name is not None else "before accepting the login"
            left = len(pending) if sess_name is not None else framer.pending
            part = " (%d bytes of a packet pending)" % left if left else ""
            raise SnapshotError("%s closed the connection %s, after %d messages%s" % (where, what, msgs, part),
                                "closed")
        if sess_name is None:
            try:
                pkts = framer.feed(data)
            except soup.SoupError as exc:
                raise SnapshotError("%s: %s" % (where, exc), "corrupt") from None
            for i, (typ, payload) in enumerate(pkts):
                if typ in (soup.SERVER_HEARTBEAT, soup.DEBUG):
                    continue
                if typ == soup.END_OF_SESSION:
                    raise SnapshotError("%s ended the session before End of Snapshot (0 messages)" % where, "no_end")
                if typ == soup.LOGIN_REJECTED:
                    why = soup.REJECT_REASONS.get(payload, "reason %r" % payload)
                    raise SnapshotError("%s rejected the login: %s" % (where, why), "rejected")
                if typ != soup.LOGIN_ACCEPTED:
                    raise SnapshotError("%s sent %r before accepting the login" % (where, typ), "corrupt")
                try:
                    sess_name, _ = soup.login_accepted(payload)
                except soup.SoupError as exc:
                    raise SnapshotError("%s: %s" % (where, exc), "corrupt") from None
                last_rx = time.monotonic()
                # What came after the login in this read goes to the data phase.
                pending += b"".join(soup.packet(t, p) for t, p in pkts[i + 1:])
                pending += framer.take_pending()
                break
            if sess_name is None:
                continue
        else:
            pending += data
        done = _collect(pending, out, acc, max_bytes, where)
        if int(acc.messages) != msgs:
            last_rx = time.monotonic()
        if done:
            del out[int(acc.used):]
            try:
                sock.sendall(soup.packet(soup.LOGOUT))
            except OSError:
                pass            # the snapshot is whole; a server gone by now changes nothing
            return Snapshot(blocks=bytes(out), sequence=int(acc.sequence), messages=int(acc.messages),
                            session=sess_name, instruments=int(acc.instruments), orders=int(acc.orders),
                            timestamp_ns=int(acc.last_ts))


def _collect(pending: bytearray, out: bytearray, acc: Any, max_bytes: int, where: str) -> bool:
    """The data phase on what has been received: whole packets out of
    `pending` into `out` (C).  True at End of Snapshot; raises SnapshotError."""
    while True:
        before = int(acc.messages)
        taken = lib.fh_glimpse_collect(ffi.from_buffer(pending), len(pending), ffi.from_buffer(out), len(out), acc)
        del pending[:taken]
        st = acc.status
        if st == lib.FH_GLIMPSE_NEED_MORE:
            return False
        if st == lib.FH_GLIMPSE_END:
            return True
        if st == lib.FH_GLIMPSE_FULL:
            if len(out) >= max_bytes:
                raise SnapshotError("a snapshot that never ends: more than %d bytes from %s" % (max_bytes, where),
                                    "too_long")
            out.extend(bytes(min(len(out), max_bytes - len(out))))
            continue
        if st == lib.FH_GLIMPSE_OTHER:
            typ = bytes(pending[2:3])
            if typ == soup.END_OF_SESSION:
                raise SnapshotError("%s ended the session before End of Snapshot (%d messages)"
                                    % (where, int(acc.messages)), "no_end")
            raise SnapshotError("%s sent %r after the login" % (where, typ), "corrupt")
        if st == lib.FH_GLIMPSE_BAD_MESSAGE:
            n = int.from_bytes(pending[:2], "big") - 1 if len(pending) >= 2 else 0
            typ = bytes(pending[3:4])
            if typ == END_OF_SNAPSHOT:
                raise SnapshotError("%s: not a GLIMPSE End of Snapshot message: %r" % (where, bytes(pending[3:27])),
                                    "bad_message")
            raise SnapshotError("%s sent a message that is not ITCH 5.0 (type %r, %d bytes) as message %d of "
                                "the snapshot" % (where, typ, n, int(acc.messages) + 1), "bad_message")
        try:
            framer = soup.Framer(from_server=True)
            framer.feed(bytes(pending))
        except soup.SoupError as exc:
            raise SnapshotError("%s: %s" % (where, exc), "corrupt") from None
        raise SnapshotError("%s: corrupt SoupBinTCP stream after %d messages" % (where, before), "corrupt")


# ------------------------------------------------------------------- server

REJECT_KEYS = {b"A": "not_authorized", b"S": "session_not_available"}


def _soup_wire(blocks: bytes) -> bytes:
    """Length-prefixed messages -> one SoupBinTCP sequenced data packet each."""
    out = bytearray()
    mv = memoryview(blocks)
    off = 0
    total = len(blocks)
    while off + 2 <= total:
        n = (mv[off] << 8) | mv[off + 1]
        if off + 2 + n > total or n + 1 > 0xFFFF:
            raise ValueError("snapshot blocks run past their end at byte %d" % off)
        out += (n + 1).to_bytes(2, "big")
        out += b"S"
        out += mv[off + 2:off + 2 + n]
        off += 2 + n
    if off != total:
        raise ValueError("snapshot blocks: %d trailing bytes" % (total - off))
    return bytes(out)


class _Drop(Exception):
    """End this client's connection (counted already)."""


def _readable(conn: socket.socket, timeout_s: float) -> bool:
    """poll(), not select(): a server with many clients has descriptors past FD_SETSIZE."""
    p = select.poll()
    p.register(conn, select.POLLIN)
    return bool(p.poll(int(timeout_s * 1000 + 0.999)))


def _close_quietly(conn: socket.socket) -> None:
    try:
        conn.close()
    except OSError:
        pass


class GlimpseServer:
    """Serves one :class:`Snapshot` over SoupBinTCP 4.0, as NASDAQ's GLIMPSE does.

    A client logs in (username / password must match ``user`` / ``password``,
    else Login Rejected 'A'; the requested session must be blank or the
    snapshot's, else 'S'), gets Login Accepted (session, sequence 1), every
    message of the snapshot as sequenced data, End of Snapshot, then server
    heartbeats (after ``heartbeat_s`` without sending) until it logs out or
    sends no whole packet for ``idle_timeout_s``.  One thread per client; a client whose
    reads stall a send for ``send_timeout_s`` is dropped without holding up
    the others.  A first packet that is not a 49-byte login request drops the
    connection.  Everything is counted (:meth:`stats`).

    Limits (docs/robustness.md, "The servers"): at most ``max_clients``
    connections at once (the next ones are accepted, closed at once and
    counted in ``refused_connections``); a connection that has not logged in
    ``login_timeout_s`` after it was accepted is dropped (``login_timeouts``),
    however many bytes it trickles; when accept() fails (out of file
    descriptors, say) the error is counted (``accept_errors``) and the accept
    loop pauses, doubling from 10 ms to 0.5 s, instead of spinning; credentials
    are compared in constant time."""

    def __init__(self, snapshot: Snapshot, host: str = "127.0.0.1", port: int = 0, user: str = "",
                 password: str = "", heartbeat_s: float = HEARTBEAT_S, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 send_timeout_s: float = 5.0, send_buffer: int = 0, poll_s: float = 0.1,
                 log: Optional[Callable[[str], None]] = None, max_clients: int = MAX_CLIENTS,
                 login_timeout_s: float = LOGIN_TIMEOUT_S):
        if len(user) > 6 or len(password) > 10 or len(snapshot.session) > 10:
            raise ValueError("username <= 6, password <= 10, session <= 10 characters")
        if not (user + password).isascii():
            raise ValueError("username and password must be ASCII")
        if max_clients < 1 or not login_timeout_s > 0:
            raise ValueError("max_clients >= 1 and login_timeout_s > 0, got %r and %r" % (max_clients,
                                                                                      login_timeout_s))
        self.snapshot = snapshot
        self.user = user
        self.password = password
        # The fields as they arrive, space-padded: compared whole, in constant time.
        self._user_field = user.encode("ascii").ljust(6)
        self._password_field = password.encode("ascii").ljust(10)
        self.max_clients = max_clients
        self.login_timeout_s = login_timeout_s
        self.heartbeat_s = heartbeat_s
        self.idle_timeout_s = idle_timeout_s
        self.send_timeout_s = send_timeout_s
        self.send_buffer = send_buffer
        self.poll_s = poll_s
        self.log = log
        self._wire = _soup_wire(snapshot.blocks)
        self._accept = soup.packet(soup.LOGIN_ACCEPTED, snapshot.session.encode("latin-1").rjust(10)
                                   + b"1".rjust(20))
        self._eos = soup.packet(soup.SEQUENCED, END_OF_SNAPSHOT + str(snapshot.sequence).encode().rjust(20))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._clients: Dict[int, socket.socket] = {}
        self._stats = {"connections": 0, "active": 0, "logins_accepted": 0,
                       "logins_rejected": {k: 0 for k in REJECT_KEYS.values()}, "malformed_logins": 0,
                       "snapshots_served": 0, "messages_sent": 0, "bytes_sent": 0, "slow_clients_dropped": 0,
                       "client_timeouts": 0, "logouts": 0, "disconnects": 0, "client_protocol_errors": 0,
                       "refused_connections": 0, "accept_errors": 0, "login_timeouts": 0}
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise SnapshotError("cannot resolve %s: %s" % (host, exc), "input") from None
        family, _, _, _, sockaddr = infos[0]
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(sockaddr)
            self._sock.listen(64)
        except OSError as exc:
            self._sock.close()
            raise SnapshotError("cannot listen on %s:%s: %s" % (host, port, exc.strerror or exc), "input") from None
        self._sock.settimeout(poll_s)
        self.address: Tuple[str, int] = self._sock.getsockname()[:2]

    # ------------------------------------------------------------ counters
    def stats(self) -> dict:
        with self._lock:
            d = dict(self._stats)
            d["logins_rejected"] = dict(self._stats["logins_rejected"])
        return d

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _say(self, peer, text: str) -> None:
        if self.log:
            self.log("%s:%d %s" % (peer[0], peer[1], text))

    # ------------------------------------------------------------- serving
    def serve_forever(self) -> None:
        """Accept clients (a thread each, at most max_clients) until :meth:`stop`."""
        backoff = 0.0
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set() or self._sock.fileno() < 0:
                    break
                n = self._count_new("accept_errors")
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The connection stays queued, so the socket stays readable:
                    # retrying at once would spin a core and starve the clients
                    # whose threads are about to free descriptors.
                    backoff = min(ACCEPT_BACKOFF_S[1], backoff * 2) if backoff else ACCEPT_BACKOFF_S[0]
                    self._say_sometimes(n, "accept failed (%s): pausing %.2f s" % (
                        exc.strerror or exc, backoff))
                    self._stop.wait(backoff)
                continue
            backoff = 0.0
            self._count("connections")
            with self._lock:
                full = self._stats["active"] >= self.max_clients
                if full:
                    self._stats["refused_connections"] += 1
                    n = self._stats["refused_connections"]
                else:
                    self._stats["active"] += 1       # here, not in the thread: the cap holds at once
                    self._clients[id(conn)] = conn
            if full:
                _close_quietly(conn)
                self._say_sometimes(n, "refused %s:%d: %d connections already" % (
                    peer[0], peer[1], self.max_clients))
                continue
            t = threading.Thread(target=self._client, args=(conn, peer), name="glimpse-client", daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            try:
                t.start()
            except RuntimeError:                      # no thread to be had: as good as refused
                with self._lock:
                    self._threads.remove(t)
                    self._stats["active"] -= 1
                    self._clients.pop(id(conn), None)
                    self._stats["refused_connections"] += 1
                _close_quietly(conn)

    def _count_new(self, key: str) -> int:
        with self._lock:
            self._stats[key] += 1
            return self._stats[key]

    def _say_sometimes(self, n: int, text: str) -> None:
        """Log the 1st, 2nd, 4th, 8th... occurrence: a flood cannot flood the log."""
        if self.log and n & (n - 1) == 0:
            self.log("%s (%d so far)" % (text, n))

    def _send(self, conn, data: bytes) -> None:
        """All of data, or _Drop when the client stops reading for send_timeout_s
        (or the server is stopping).  Bytes are counted as they leave."""
        mv = memoryview(data)
        off = 0
        while off < len(mv):
            if self._stop.is_set():
                raise _Drop("server stopping")
            try:
                n = conn.send(mv[off:off + _SEND_CHUNK])
            except socket.timeout:
                self._count("slow_clients_dropped")
                raise _Drop("stopped reading: a send blocked %.1f s" % self.send_timeout_s) from None
            except OSError as exc:
                self._count("disconnects")
                raise _Drop("gone: %s" % (exc.strerror or exc)) from None
            off += n
            self._count("bytes_sent", n)

    def _recv_login(self, conn, peer) -> Optional[bytes]:
        """The login request's payload, or None (dropped and counted).  The
        deadline runs from the accept and bytes do not extend it: a client that
        trickles its login a byte at a time holds a thread login_timeout_s at most."""
        framer = soup.Framer(from_server=False)
        deadline = time.monotonic() + self.login_timeout_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self._count("login_timeouts")
                self._say(peer, "dropped: no login within %.1f s" % self.login_timeout_s)
                return None
            ready = _readable(conn, min(self.poll_s, left))
            if not ready:
                continue
            data = conn.recv(4096)
            if not data:
                self._count("disconnects")
                return None
            try:
                pkts = framer.feed(data)
            except soup.SoupError as exc:
                self._count("malformed_logins")
                self._say(peer, "dropped: malformed login (%s)" % exc)
                return None
            if pkts:
                typ, payload = pkts[0]
                if typ != soup.LOGIN_REQUEST:
                    self._count("malformed_logins")
                    self._say(peer, "dropped: first packet %r, not a login request" % typ)
                    return None
                return payload
            if framer.pending > 49:
                # Cannot be a 49-byte login request any more: no need to wait for the rest.
                self._count("malformed_logins")
                self._say(peer, "dropped: malformed login (%d bytes and counting)" % framer.pending)
                return None
        return None

    def _check_login(self, payload: bytes) -> Optional[bytes]:
        """None: accepted; else the reject reason byte.  Raises ValueError when malformed."""
        soup.numeric(payload[26:46])          # requested sequence: must be a Numeric, value unused
        # Fixed-width fields compared whole with compare_digest, both always:
        # how long a reject takes says nothing about how much of either matched.
        user_ok = hmac.compare_digest(payload[0:6], self._user_field)
        password_ok = hmac.compare_digest(payload[6:16], self._password_field)
        session = payload[16:26].decode("latin-1").strip(" ")
        if not (user_ok & password_ok):
            return b"A"
        if session and session != self.snapshot.session.strip():
            return b"S"
        return None

    def _client(self, conn: socket.socket, peer) -> None:
        # serve_forever counted it in "active" and _clients already.
        try:
            if self.send_buffer:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self.send_timeout_s)
            self._serve_client(conn, peer)
        except _Drop as exc:
            self._say(peer, "dropped: %s" % exc)
        except OSError as exc:
            self._count("disconnects")
            self._say(peer, "connection error: %s" % exc)
        finally:
            with self._lock:
                self._stats["active"] -= 1
                self._clients.pop(id(conn), None)
            try:
                conn.close()
            except OSError:
                pass

    def _serve_client(self, conn: socket.socket, peer) -> None:
        payload = self._recv_login(conn, peer)
        if payload is None:
            return
        try:
            reject = self._check_login(payload)
        except soup.SoupError:
            self._count("malformed_logins")
            self._say(peer, "dropped: login request with a bad requested sequence")
            return
        if reject is not None:
            with self._lock:
                self._stats["logins_rejected"][REJECT_KEYS[reject]] += 1
            self._say(peer, "login rejected (%s)" % REJECT_KEYS[reject])
            self._send(conn, soup.packet(soup.LOGIN_REJECTED, reject))
            return
        self._count("logins_accepted")
        self._send(conn, self._accept)
        self._send(conn, self._wire)
        self._send(conn, self._eos)
        with self._lock:
            self._stats["snapshots_served"] += 1
            self._stats["messages_sent"] += self.snapshot.messages
        self._say(peer, "snapshot served: %d messages, sequence %d" % (self.snapshot.messages,
                                                                        self.snapshot.sequence))
        self._after_snapshot(conn, peer)

    def _after_snapshot(self, conn: socket.socket, peer) -> None:
        """Heartbeats until the client logs out or goes quiet."""
        framer = soup.Framer(from_server=False)
        last_rx = last_tx = time.monotonic()
        heartbeat = soup.packet(soup.SERVER_HEARTBEAT)
        while True:
            if self._stop.is_set():
                try:
                    conn.send(soup.packet(soup.END_OF_SESSION))
                except OSError:
                    pass
                return
            now = time.monotonic()
            if now - last_rx >= self.idle_timeout_s:
                self._count("client_timeouts")
                self._say(peer, "dropped: nothing heard for %.1f s" % self.idle_timeout_s)
                return
            if now - last_tx >= self.heartbeat_s:
                self._send(conn, heartbeat)
                last_tx = now
            wait = min(self.poll_s, last_tx + self.heartbeat_s - now, last_rx + self.idle_timeout_s - now)
            ready = _readable(conn, max(0.0, wait))
            if not ready:
                continue
            data = conn.recv(4096)
            if not data:
                self._count("disconnects")
                return
            try:
                pkts = framer.feed(data)
            except soup.SoupError as exc:
                self._count("client_protocol_errors")
                self._say(peer, "dropped: %s" % exc)
                return
            if pkts:                 # whole packets, not stray bytes, show the client is alive
                last_rx = time.monotonic()
            for typ, _ in pkts:
                if typ == soup.LOGOUT:
                    self._count("logouts")
                    return
                if typ == soup.LOGIN_REQUEST:
                    self._count("client_protocol_errors")
                    self._say(peer, "dropped: a second login request")
                    return
                # client heartbeats, debug, unsequenced: nothing to do

    # ------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask serve_forever (and every client) to finish; safe from threads and signal handlers."""
        self._stop.set()

    def close(self, join_s: float = 5.0) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            threads = list(self._threads)
        end = time.monotonic() + join_s
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))

    def __enter__(self) -> "GlimpseServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def in_background(self, join_s: float = 10.0):
        """Serve from a daemon thread for the duration of a ``with`` block:
        stopped and joined on the way out, its client threads too;
        RuntimeError if it has not stopped within join_s."""
        def clients():
            with self._lock:
                return list(self._threads)
        return in_background(self, "glimpse-server", join_s, clients)


def stats_json(server: GlimpseServer) -> dict:
    d = server.stats()
    d["listen"] = "%s:%d" % server.address
    s = server.snapshot
    d["snapshot"] = {"session": s.session, "sequence": s.sequence, "messages": s.messages,
                     "instruments": s.instruments, "orders": s.orders, "bytes": len(s.blocks),
                     "missing": s.missing}
    return d


def write_stats_json(server: GlimpseServer, path: str) -> None:
    with open(path, "w") as f:
        json.dump(stats_json(server), f, indent=2, sort_keys=True)
        f.write("\n")
