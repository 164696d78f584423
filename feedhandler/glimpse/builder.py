"""The GLIMPSE snapshot of a capture: :func:`build_snapshot` indexes the
capture (:func:`feedhandler.rewind.index_capture`), replays the session's
messages before the wanted sequence into books, and has the C core write those
books back out as ITCH 5.0 messages (csrc/tools/glimpse.c, ``fh_glimpse_build``)."""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

from ..core import ffi, lib
from ..errors import RewindError, SnapshotError
from .snapshot import Snapshot

__all__ = ["build_snapshot", "describe_snapshot"]


def _pick_session(idx, session: Optional[str]):
    names = sorted(idx.sessions)
    shown = ", ".join(repr(n.decode("latin-1").strip()) for n in names)
    if session is not None:
        for n in names:
            if n == session.encode("latin-1") or n.decode("latin-1").strip() == session.strip():
                return idx.sessions[n]
        raise SnapshotError("%s holds no session %r (it holds %s)" % (idx.path, session, shown), "input")
    if len(names) != 1:
        raise SnapshotError(
            "%s holds %d sessions (%s): pick one with session=" % (idx.path, len(names), shown), "input"
        )
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


def build_snapshot(
    path: str,
    at_seq: Optional[int] = None,
    at_time_ns: Optional[int] = None,
    session: Optional[str] = None,
    max_orders: int = 0,
    max_instruments: int = 65535,
    progress: bool = False,
) -> Snapshot:
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
    from ..replay import Replay
    from ..rewind import index_capture

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
    i = int(np.searchsorted(seqs, np.uint64(at), side="left"))  # messages with seq < at
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
    return Snapshot(
        blocks=out,
        sequence=at,
        messages=n,
        session=s.session.decode("latin-1").strip(),
        instruments=instruments,
        orders=orders,
        missing=missing,
        timestamp_ns=last_ts,
    )


def describe_snapshot(snap: Snapshot) -> str:
    miss = ", %s missing from the capture (incomplete)" % format(snap.missing, ",") if snap.missing else ""
    return "snapshot of session %r before sequence %d: %s instruments, %s live orders, %s messages (%s bytes)%s" % (
        snap.session,
        snap.sequence,
        format(snap.instruments, ","),
        format(snap.orders, ","),
        format(snap.messages, ","),
        format(len(snap.blocks), ","),
        miss,
    )
