"""A MoldUDP64 re-request ("rewind") server that answers from a capture.

``index_capture(path)`` indexes every MoldUDP64 message of every UDP datagram
of a capture by (session, sequence number).  The capture is read by the C core
(csrc/tools/index.c) with the replay's own input layer and parsing rules -- pcap,
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

The package, by concern (every name is importable from ``feedhandler.rewind``):

* :mod:`.index`: :func:`index_capture`, :class:`CaptureIndex`, :class:`SessionIndex`,
  :func:`describe_index`;
* :mod:`.server`: :class:`RewindServer`, :class:`AllowList`, :class:`RateLimiter`,
  :func:`parse_request`, :func:`stats_json`, :func:`write_stats_json`.
"""

from __future__ import annotations

from ..errors import RewindError  # re-exported: feedhandler.rewind.RewindError
from . import index, server
from .index import *  # noqa: F403  (the index's names: __all__ below)
from .server import *  # noqa: F403  (the server's names)

__all__ = ["RewindError", *index.__all__, *server.__all__]
