"""Replay of captures (pcap, pcapng, gzip) and NASDAQ BinaryFILEs through the C pipeline."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from .core import errbuf, errstr, ffi, lib, stats_to_dict
from .progress import run_with_progress

FORMAT_NAMES = {
    lib.FH_FMT_UNKNOWN: "unknown",
    lib.FH_FMT_PCAP_US: "pcap (us)",
    lib.FH_FMT_PCAP_NS: "pcap (ns)",
    lib.FH_FMT_PCAPNG: "pcapng",
    lib.FH_FMT_BINFILE: "BinaryFILE",
}

MODES = {"publish": lib.FH_MODE_PUBLISH, "book": lib.FH_MODE_BOOK, "decode": lib.FH_MODE_DECODE}


class ReplayError(Exception):
    """An input could not be replayed (unreadable, empty, corrupt, unknown format)."""


@dataclass
class InputResult:
    path: str
    format: str
    gzip: bool
    ok: bool                 # decoded to its end
    error: Optional[str]     # why not, or where it was found corrupt
    partial: bool = False    # decoded up to a corrupt/truncated point


@dataclass
class ReplayResult:
    stats: dict
    inputs: List[InputResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.inputs)


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


class Replay:
    """One replay context: inputs decoded in order into per-instrument books,
    published (mode 'publish') to shared memory, counters accumulated.

    ``shm``: segment name under /dev/shm (None: private memory, readable only
    through :meth:`segment`).  Capacities are preallocated here, never later."""

    def __init__(self, mode: str = "publish", shm: Optional[str] = None, depth: int = 10,
                 max_orders: int = 0, max_instruments: int = 0, max_levels: int = 0, ring_events: int = 0,
                 max_streams: int = 0, shm_mode: int = 0o600, gap_window_us: int = 0, gap_buffer: int = 0):
        if mode not in MODES:
            raise ReplayError("mode must be one of %s" % ", ".join(MODES))
        self._name = ffi.new("char[]", shm.encode()) if shm else ffi.NULL
        cfg = ffi.new("fh_replay_cfg_t *", {
            "max_streams": max_streams, "mode": MODES[mode], "max_orders": max_orders,
            "max_instruments": max_instruments, "max_levels": max_levels, "depth": depth,
            "ring_events": ring_events, "shm_mode": shm_mode, "gap_window_us": gap_window_us,
            "gap_buffer": gap_buffer, "shm_name": self._name})
        err = errbuf()
        ptr = lib.fh_replay_new(cfg, err, len(err))
        if ptr == ffi.NULL:
            raise ReplayError(errstr(err))
        self._r = ffi.gc(ptr, lib.fh_replay_free)
        self.mode = mode
        self.depth = depth
        self.shm_name = shm

    def run_file(self, path: str, progress: Optional[bool] = None) -> InputResult:
        err = errbuf()
        fmt = ffi.new("int *")
        path_b = os.fsencode(path)

        def work():
            return lib.fh_replay_file(self._r, path_b, fmt, err, len(err))

        rc = run_with_progress(work, self.progress, os.path.basename(path)[:8] or "replay",
                               enabled=progress, on_interrupt=self.stop)
        return InputResult(path=path, format=FORMAT_NAMES.get(fmt[0], "unknown"), gzip=_is_gzip(path),
                           ok=rc == 0, error=errstr(err) if rc != 0 else None, partial=rc == 1)

    def run_buffer(self, data: bytes) -> InputResult:
        err = errbuf()
        fmt = ffi.new("int *")
        rc = lib.fh_replay_buffer(self._r, data, len(data), fmt, err, len(err))
        return InputResult(path="<buffer>", format=FORMAT_NAMES.get(fmt[0], "unknown"), gzip=False,
                           ok=rc == 0, error=errstr(err) if rc != 0 else None, partial=rc == 1)

    def stop(self) -> None:
        lib.fh_replay_stop(self._r)

    def finish(self) -> None:
        """All inputs done: holes still waiting for the other line are given up
        (counted as gaps), final counters to shared memory, segment marked finished."""
        lib.fh_replay_finish(self._r)

    def progress(self):
        done = ffi.new("uint64_t *")
        total = ffi.new("uint64_t *")
        lib.fh_replay_progress(self._r, done, total)
        return int(done[0]), int(total[0])

    def stats(self) -> dict:
        st = ffi.new("fh_stats_t *")
        lib.fh_replay_stats(self._r, st)
        d = stats_to_dict(st)
        d["memory"] = self.memory()
        return d

    def memory(self) -> dict:
        book = ffi.new("uint64_t *")
        shm = ffi.new("uint64_t *")
        lib.fh_replay_memory(self._r, book, shm)
        return {"book_bytes": int(book[0]), "shm_bytes": int(shm[0])}

    def flags(self, locate: int) -> int:
        """Book flags of an instrument (feedhandler.shm.FLAG_*)."""
        return int(lib.fh_replay_instrument_flags(self._r, locate))

    def dump_books(self, path: str, depth: Optional[int] = None) -> None:
        """Write the --dump-books CSV (locate,symbol,side,level,price,shares,orders)."""
        err = errbuf()
        if lib.fh_replay_dump_books(self._r, os.fsencode(path), depth or self.depth, err, len(err)) != 0:
            raise ReplayError(errstr(err))

    def segment(self):
        """This replay's shared memory, read in-process like any other reader."""
        from .shm import Segment
        if self.mode != "publish":
            raise ReplayError("mode %r publishes nothing" % self.mode)
        size = ffi.new("uint64_t *")
        base = lib.fh_replay_shm(self._r, size)
        return Segment(ffi.buffer(base, size[0]), int(size[0]), owner=self, name=self.shm_name)


def replay(paths: Sequence[str], progress: Optional[bool] = None, **kw) -> ReplayResult:
    """Decode every input in order into one set of books and counters."""
    r = Replay(**kw)
    results = [r.run_file(p, progress=progress) for p in paths]
    r.finish()
    return ReplayResult(stats=r.stats(), inputs=results)
