"""The GLIMPSE server: :class:`GlimpseServer` serves one :class:`Snapshot` over
SoupBinTCP 4.0 to any number of clients, as NASDAQ's GLIMPSE does, and
:func:`stats_json` / :func:`write_stats_json` report its counters."""

from __future__ import annotations

import errno
import hmac
import json
import select
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .. import soup
from ..background import in_background
from ..errors import SnapshotError
from .snapshot import END_OF_SNAPSHOT, HEARTBEAT_S, Snapshot

__all__ = [
    "GlimpseServer",
    "stats_json",
    "write_stats_json",
    "REJECT_KEYS",
    "IDLE_TIMEOUT_S",
    "LOGIN_TIMEOUT_S",
    "MAX_CLIENTS",
    "ACCEPT_BACKOFF_S",
]

IDLE_TIMEOUT_S = 15.0  # SoupBinTCP: a side drops a peer it has not heard for 15 s
LOGIN_TIMEOUT_S = 5.0  # server: a connection must have logged in by then (bytes do not extend it)
MAX_CLIENTS = 64  # server: connections at once; the next ones are accepted, closed and counted
ACCEPT_BACKOFF_S = (0.01, 0.5)  # server: first and longest pause after accept() fails for lack of fds/memory
_SEND_CHUNK = 1 << 16

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
        out += mv[off + 2 : off + 2 + n]
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

    def __init__(
        self,
        snapshot: Snapshot,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = "",
        password: str = "",
        heartbeat_s: float = HEARTBEAT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        send_timeout_s: float = 5.0,
        send_buffer: int = 0,
        poll_s: float = 0.1,
        log: Optional[Callable[[str], None]] = None,
        max_clients: int = MAX_CLIENTS,
        login_timeout_s: float = LOGIN_TIMEOUT_S,
    ):
        if len(user) > 6 or len(password) > 10 or len(snapshot.session) > 10:
            raise ValueError("username <= 6, password <= 10, session <= 10 characters")
        if not (user + password).isascii():
            raise ValueError("username and password must be ASCII")
        if max_clients < 1 or not login_timeout_s > 0:
            raise ValueError("max_clients >= 1 and login_timeout_s > 0, got %r and %r" % (max_clients, login_timeout_s))
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
        self._accept = soup.packet(soup.LOGIN_ACCEPTED, snapshot.session.encode("latin-1").rjust(10) + b"1".rjust(20))
        self._eos = soup.packet(soup.SEQUENCED, END_OF_SNAPSHOT + str(snapshot.sequence).encode().rjust(20))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._clients: Dict[int, socket.socket] = {}
        self._stats = {
            "connections": 0,
            "active": 0,
            "logins_accepted": 0,
            "logins_rejected": {k: 0 for k in REJECT_KEYS.values()},
            "malformed_logins": 0,
            "snapshots_served": 0,
            "messages_sent": 0,
            "bytes_sent": 0,
            "slow_clients_dropped": 0,
            "client_timeouts": 0,
            "logouts": 0,
            "disconnects": 0,
            "client_protocol_errors": 0,
            "refused_connections": 0,
            "accept_errors": 0,
            "login_timeouts": 0,
        }
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
                    self._say_sometimes(n, "accept failed (%s): pausing %.2f s" % (exc.strerror or exc, backoff))
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
                    self._stats["active"] += 1  # here, not in the thread: the cap holds at once
                    self._clients[id(conn)] = conn
            if full:
                _close_quietly(conn)
                self._say_sometimes(n, "refused %s:%d: %d connections already" % (peer[0], peer[1], self.max_clients))
                continue
            t = threading.Thread(target=self._client, args=(conn, peer), name="glimpse-client", daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            try:
                t.start()
            except RuntimeError:  # no thread to be had: as good as refused
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
                n = conn.send(mv[off : off + _SEND_CHUNK])
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
        soup.numeric(payload[26:46])  # requested sequence: must be a Numeric, value unused
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
        self._say(peer, "snapshot served: %d messages, sequence %d" % (self.snapshot.messages, self.snapshot.sequence))
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
            if pkts:  # whole packets, not stray bytes, show the client is alive
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
    d["snapshot"] = {
        "session": s.session,
        "sequence": s.sequence,
        "messages": s.messages,
        "instruments": s.instruments,
        "orders": s.orders,
        "bytes": len(s.blocks),
        "missing": s.missing,
    }
    return d


def write_stats_json(server: GlimpseServer, path: str) -> None:
    with open(path, "w") as f:
        json.dump(stats_json(server), f, indent=2, sort_keys=True)
        f.write("\n")
