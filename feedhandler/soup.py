"""SoupBinTCP 4.0 (NASDAQ's sequenced session over TCP, the transport of GLIMPSE
5.0 snapshots): framing a TCP byte stream into logical packets, the login
request, the fixed fields, GLIMPSE's End of Snapshot.  The parsing is the C
core's (csrc/soup.c): Python keeps the bytes and asks C for whole packets."""

from __future__ import annotations

from typing import List, Tuple

from .core import ffi, lib
from .errors import SoupError  # noqa: F401  (re-exported: feedhandler.soup.SoupError)

LOGIN_ACCEPTED, LOGIN_REJECTED, SEQUENCED, UNSEQUENCED = b"A", b"J", b"S", b"U"
SERVER_HEARTBEAT, END_OF_SESSION, DEBUG = b"H", b"Z", b"+"
LOGIN_REQUEST, CLIENT_HEARTBEAT, LOGOUT = b"L", b"R", b"O"
REJECT_REASONS = {b"A": "not authorized (bad username or password)", b"S": "session not available"}


class Framer:
    """Whole packets out of a TCP byte stream, however it was segmented.

    ``feed(data)`` returns the packets completed so far as (type byte, payload)
    and keeps any partial packet for the next call; a corrupt stream (length 0,
    a type this direction does not send, a fixed-size packet of the wrong size)
    raises :class:`SoupError`."""

    def __init__(self, from_server: bool = True):
        self.from_server = from_server
        self._buf = bytearray()
        self._pkt = ffi.new("fh_soup_pkt_t *")
        self.packets = 0

    def feed(self, data: bytes) -> List[Tuple[bytes, bytes]]:
        self._buf += data
        out = []
        off = 0
        view = bytes(self._buf)
        base = ffi.from_buffer(view)  # C frames in place: no copy per packet
        side = 1 if self.from_server else 0
        while True:
            rc = lib.fh_soup_frame(base + off, len(view) - off, side, self._pkt)
            if rc == lib.FH_SOUP_NEED_MORE:
                break
            if rc < 0:
                what = "length" if rc == lib.FH_SOUP_BAD_LENGTH else "packet type %r" % view[off + 2 : off + 3]
                raise SoupError("corrupt SoupBinTCP stream after %d packets: bad %s" % (self.packets, what))
            out.append((bytes([self._pkt.type]), view[off + 3 : off + rc]))
            self.packets += 1
            off += rc
        del self._buf[:off]
        return out

    def take_pending(self) -> bytes:
        """The bytes of a partial packet, handed over (the framer forgets them)."""
        out = bytes(self._buf)
        del self._buf[:]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a partial packet held for the next feed()."""
        return len(self._buf)


def packet(type_: bytes, payload: bytes = b"") -> bytes:
    """One logical packet: length, type, payload."""
    if len(payload) + 1 > 0xFFFF:
        raise SoupError("SoupBinTCP payload of %d bytes: at most 65534" % len(payload))
    return (len(payload) + 1).to_bytes(2, "big") + type_ + payload


def login_request(user: str = "", password: str = "", session: str = "", sequence: int = 0) -> bytes:
    """The 49-byte login request (username <= 6, password <= 10, session <= 10
    characters; sequence 0 = from the newest message)."""
    out = ffi.new("uint8_t[49]")
    if (
        not 0 <= sequence < 1 << 64
        or lib.fh_soup_login_request(out, user.encode(), password.encode(), session.encode(), sequence) != 49
    ):
        raise SoupError(
            "login request fields too long: username <= 6, password <= 10, session <= 10 characters, sequence < 2^64"
        )
    return bytes(ffi.buffer(out, 49))


def numeric(field: bytes) -> int:
    """A Numeric field: ASCII digits left-padded with spaces."""
    v = ffi.new("uint64_t *")
    if lib.fh_soup_numeric(field, len(field), v) != 0:
        raise SoupError("not a SoupBinTCP numeric field: %r" % field)
    return int(v[0])


def login_accepted(payload: bytes) -> Tuple[str, int]:
    """(session, next sequence number) of a Login Accepted packet's payload."""
    if len(payload) != 30:
        raise SoupError("login accepted payload of %d bytes, not 30" % len(payload))
    return payload[:10].decode("ascii", "replace").strip(), numeric(payload[10:30])


def end_of_snapshot(msg: bytes) -> int:
    """GLIMPSE 5.0 End of Snapshot ('G' + Numeric(20)): the MoldUDP64 sequence at
    which the live feed continues the snapshot."""
    v = ffi.new("uint64_t *")
    if lib.fh_glimpse_end_of_snapshot(msg, len(msg), v) != 0:
        raise SoupError("not a GLIMPSE End of Snapshot message: %r" % msg[:24])
    return int(v[0])
