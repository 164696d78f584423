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
writes those books back out as ITCH messages (csrc/tools/glimpse.c,
``fh_glimpse_build``).  ``GlimpseServer`` serves one snapshot to any number
of clients; ``fetch_snapshot`` is the client.  Everything the network says is
hostile: every packet is framed and length-checked by the C core (csrc/soup.c)
before it is read, every ITCH message of a snapshot is checked against the
ITCH 5.0 length table, and a snapshot that is wrong in any way is refused
whole (:class:`SnapshotError`, with a short ``reason`` to count by).

The package, by concern (every name is importable from ``feedhandler.glimpse``):

* :mod:`.snapshot`: :class:`Snapshot` and the protocol constants the others share;
* :mod:`.builder`: :func:`build_snapshot`, :func:`describe_snapshot` (needs a capture
  and the C core's books);
* :mod:`.client`: :func:`fetch_snapshot` (what recovery, :mod:`feedhandler.recovery`, calls);
* :mod:`.server`: :class:`GlimpseServer`, :func:`stats_json`, :func:`write_stats_json`.
"""

from __future__ import annotations

from ..errors import SnapshotError  # re-exported: feedhandler.glimpse.SnapshotError
from .builder import build_snapshot, describe_snapshot
from .client import DEFAULT_MAX_INSTRUMENTS, DEFAULT_MAX_ORDERS, fetch_snapshot  # noqa: F401
from .server import (  # noqa: F401
    ACCEPT_BACKOFF_S,
    IDLE_TIMEOUT_S,
    LOGIN_TIMEOUT_S,
    MAX_CLIENTS,
    REJECT_KEYS,
    GlimpseServer,
    stats_json,
    write_stats_json,
)
from .snapshot import END_OF_SNAPSHOT, EOS_LEN, HEARTBEAT_S, REASONS, Snapshot  # noqa: F401

__all__ = [
    "Snapshot",
    "SnapshotError",
    "build_snapshot",
    "fetch_snapshot",
    "GlimpseServer",
    "describe_snapshot",
    "END_OF_SNAPSHOT",
    "REASONS",
]
