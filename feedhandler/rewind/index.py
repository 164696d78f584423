"""The capture index: every MoldUDP64 message of a capture by (session,
sequence number), read by the C core (csrc/tools/index.c) with the replay's own
input layer, parsing rules and counters.  The rewind server answers from it;
the GLIMPSE builder (:func:`feedhandler.glimpse.build_snapshot`) replays from it."""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from ..core import ffi, lib, stats_to_dict
from ..errors import RewindError

__all__ = ["SessionIndex", "CaptureIndex", "index_capture", "describe_index"]


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
        return self._blob[int(self.offsets[i]) + 2 : int(self.offsets[i + 1])].tobytes()

    def get(self, seq: int) -> Optional[bytes]:
        i = self.find(seq)
        return None if i < 0 else self.message(i)

    def blocks(self, i: int, k: int) -> bytes:
        """Messages ``i .. i+k-1`` as MoldUDP64 blocks (length-prefixed)."""
        return self._blob[int(self.offsets[i]) : int(self.offsets[i + k])].tobytes()

    def summary(self) -> dict:
        return {
            "session": self.session.decode("latin-1"),
            "first": self.first,
            "last": self.last,
            "messages": self.count,
            "missing": self.missing,
        }


class CaptureIndex:
    """Every MoldUDP64 message of a capture by (session, sequence number)."""

    def __init__(self, path: str, fmt: str, gzipped: bool):
        self.path = path
        self.format = fmt
        self.gzip = gzipped
        self.compression: Optional[str] = "gzip" if gzipped else None  # "gzip", "zstd" or None
        self.sessions: Dict[bytes, SessionIndex] = {}
        self.message_bytes = 0  # bytes of the kept messages' blocks
        self.frames = 0  # capture records that held a frame
        self.datagrams = 0  # UDP datagrams carrying a MoldUDP64 header
        self.mold_packets = 0  # ... of which data packets (count 1..0xFFFE)
        self.heartbeats = 0
        self.end_of_session = 0
        self.blocks = 0  # message blocks read, every line (duplicates included)
        self.duplicates = 0  # the same (session, sequence) again: the B copy, a retransmission
        self.duplicate_mismatch = 0  # ... whose length differs from the copy kept (first seen is kept)
        self.skipped: Dict[str, int] = {}  # the replay's nonzero error counters (fh_err_name)
        self.truncated: Optional[str] = None  # where the capture was found cut short / corrupt
        self.elapsed_s = 0.0
        self.counters: dict = {}  # the walk's counters, as Replay.stats() has them (core.stats_to_dict)

    @property
    def messages(self) -> int:
        return sum(s.count for s in self.sessions.values())

    def session(self, name) -> SessionIndex:
        if isinstance(name, str):
            name = name.encode("latin-1")
        return self.sessions[name]

    def summary(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "gzip": self.gzip,
            "frames": self.frames,
            "datagrams": self.datagrams,
            "mold_packets": self.mold_packets,
            "heartbeats": self.heartbeats,
            "end_of_session": self.end_of_session,
            "blocks": self.blocks,
            "duplicates": self.duplicates,
            "duplicate_mismatch": self.duplicate_mismatch,
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "skipped": dict(sorted(self.skipped.items())),
            "truncated": self.truncated,
            "elapsed_s": self.elapsed_s,
            "sessions": [s.summary() for s in self.sessions.values()],
        }


_FORMATS = {
    int(lib.FH_FMT_PCAP_US): "pcap (us)",
    int(lib.FH_FMT_PCAP_NS): "pcap (ns)",
    int(lib.FH_FMT_PCAPNG): "pcapng",
    int(lib.FH_FMT_BINFILE): "NASDAQ BinaryFILE",
}


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
    t = threading.Thread(
        target=lambda: out.append(lib.fh_index_file(cix, path.encode(), fmt, err, len(err))),
        name="rewind-index",
        daemon=True,
    )
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
    it (csrc/tools/index.c: the same input layer, walkers, frame parse, MoldUDP64
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
            raise RewindError(
                "%s is a NASDAQ BinaryFILE: it has no MoldUDP64 sessions or sequence numbers "
                "to serve; give the rewind server a pcap or pcapng capture of the feed" % path
            )
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
        idx.truncated = msg[len(prefix) :] if msg.startswith(prefix) else msg
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
        idx.sessions[sname] = SessionIndex(
            sname, _view(cix, seqs[0], count, np.uint64), o, _view(cix, blob[0], int(o[-1]), np.uint8)
        )
    idx.message_bytes = sum(int(s.offsets[-1]) for s in idx.sessions.values())
    del cix
    _trim_heap()
    idx.elapsed_s = time.perf_counter() - start
    if not idx.sessions:
        why = " (%s)" % idx.truncated if idx.truncated else ""
        raise RewindError("%s: no MoldUDP64 messages found in %d frame(s)%s" % (path, idx.frames, why))
    return idx


def describe_index(idx: CaptureIndex) -> List[str]:
    """Human-readable lines of what an index holds."""
    mps = idx.blocks / idx.elapsed_s if idx.elapsed_s > 0 else 0.0
    lines = [
        "indexed %s [%s%s]: %s messages (%s bytes) in %d session(s) from %s frames, %.3f s (%s blocks/s)"
        % (
            idx.path,
            idx.format,
            ", " + idx.compression if idx.compression else "",
            format(idx.messages, ","),
            format(idx.message_bytes, ","),
            len(idx.sessions),
            format(idx.frames, ","),
            idx.elapsed_s,
            format(int(mps), ","),
        )
    ]
    for s in idx.sessions.values():
        lines.append(
            "  session %-12r seq %d..%d  %s messages%s"
            % (
                s.session.decode("latin-1"),
                s.first,
                s.last,
                format(s.count, ","),
                ", %s missing (lost on every line)" % format(s.missing, ",") if s.missing else "",
            )
        )
    lines.append(
        "  mold packets %s, heartbeats %s, end of session %s, duplicate copies %s%s"
        % (
            format(idx.mold_packets, ","),
            format(idx.heartbeats, ","),
            format(idx.end_of_session, ","),
            format(idx.duplicates, ","),
            " (%d differing in length; first kept)" % idx.duplicate_mismatch if idx.duplicate_mismatch else "",
        )
    )
    if idx.skipped:
        lines.append("  skipped: " + ", ".join("%s %s" % (k, format(v, ",")) for k, v in sorted(idx.skipped.items())))
    if idx.truncated:
        lines.append("  WARNING: capture damaged (%s); indexed what came before" % idx.truncated)
    return lines
