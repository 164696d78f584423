"""The GLIMPSE client: :func:`fetch_snapshot` logs in to a GLIMPSE server over
SoupBinTCP 4.0 and receives one snapshot.  Everything the server says is
hostile: every packet is framed and length-checked by the C core (csrc/soup.c,
``fh_glimpse_collect``) before it is read, every message is checked against
the ITCH 5.0 length table, and a snapshot that is wrong in any way is refused
whole (:class:`~feedhandler.errors.SnapshotError`, with a short ``reason``)."""

from __future__ import annotations

import select
import socket
import time
from typing import Any, Optional

from .. import soup
from ..core import ffi, lib
from ..errors import SnapshotError
from .snapshot import END_OF_SNAPSHOT, HEARTBEAT_S, Snapshot

__all__ = ["fetch_snapshot", "DEFAULT_MAX_ORDERS", "DEFAULT_MAX_INSTRUMENTS"]

# A lane's capacities when none are given (csrc/pipeline.c): the size bound of
# a snapshot fetched without one (fetch_snapshot's max_bytes=None).
DEFAULT_MAX_ORDERS = 2 << 20
DEFAULT_MAX_INSTRUMENTS = 65535


def fetch_snapshot(
    host: str,
    port: int,
    user: str = "",
    password: str = "",
    session: str = "",
    timeout: float = 5.0,
    deadline: float = 60.0,
    max_bytes: Optional[int] = None,
    recv_size: int = 1 << 20,
) -> Snapshot:
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
            raise SnapshotError(
                "a snapshot that never ends: no End of Snapshot from %s within %.1f s "
                "(%d messages so far)" % (where, deadline, msgs),
                "too_long",
            )
        if now - last_rx >= timeout:
            raise SnapshotError(
                "%s sent no snapshot data for %.1f s (heartbeats do not count; %d messages so far)"
                % (where, timeout, msgs),
                "timeout",
            )
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
            raise SnapshotError(
                "%s: connection lost after %d messages: %s" % (where, msgs, exc.strerror or exc), "closed"
            ) from None
        if not data:
            what = "before End of Snapshot" if sess_name is not None else "before accepting the login"
            left = len(pending) if sess_name is not None else framer.pending
            part = " (%d bytes of a packet pending)" % left if left else ""
            raise SnapshotError(
                "%s closed the connection %s, after %d messages%s" % (where, what, msgs, part), "closed"
            )
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
                pending += b"".join(soup.packet(t, p) for t, p in pkts[i + 1 :])
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
            del out[int(acc.used) :]
            try:
                sock.sendall(soup.packet(soup.LOGOUT))
            except OSError:
                pass  # the snapshot is whole; a server gone by now changes nothing
            return Snapshot(
                blocks=bytes(out),
                sequence=int(acc.sequence),
                messages=int(acc.messages),
                session=sess_name,
                instruments=int(acc.instruments),
                orders=int(acc.orders),
                timestamp_ns=int(acc.last_ts),
            )


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
                raise SnapshotError(
                    "a snapshot that never ends: more than %d bytes from %s" % (max_bytes, where), "too_long"
                )
            out.extend(bytes(min(len(out), max_bytes - len(out))))
            continue
        if st == lib.FH_GLIMPSE_OTHER:
            typ = bytes(pending[2:3])
            if typ == soup.END_OF_SESSION:
                raise SnapshotError(
                    "%s ended the session before End of Snapshot (%d messages)" % (where, int(acc.messages)), "no_end"
                )
            raise SnapshotError("%s sent %r after the login" % (where, typ), "corrupt")
        if st == lib.FH_GLIMPSE_BAD_MESSAGE:
            n = int.from_bytes(pending[:2], "big") - 1 if len(pending) >= 2 else 0
            typ = bytes(pending[3:4])
            if typ == END_OF_SNAPSHOT:
                raise SnapshotError(
                    "%s: not a GLIMPSE End of Snapshot message: %r" % (where, bytes(pending[3:27])), "bad_message"
                )
            raise SnapshotError(
                "%s sent a message that is not ITCH 5.0 (type %r, %d bytes) as message %d of "
                "the snapshot" % (where, typ, n, int(acc.messages) + 1),
                "bad_message",
            )
        try:
            framer = soup.Framer(from_server=True)
            framer.feed(bytes(pending))
        except soup.SoupError as exc:
            raise SnapshotError("%s: %s" % (where, exc), "corrupt") from None
        raise SnapshotError("%s: corrupt SoupBinTCP stream after %d messages" % (where, before), "corrupt")
