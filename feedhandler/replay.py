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
    """One replay context: inputs decoded in order, counters accumulated."""

    def __init__(self, max_streams: int = 0):
        cfg = ffi.new("fh_replay_cfg_t *", {"max_streams": max_streams})
        err = errbuf()
        ptr = lib.fh_replay_new(cfg, err, len(err))
        if ptr == ffi.NULL:
            raise ReplayError(errstr(err))
        self._r = ffi.gc(ptr, lib.fh_replay_free)

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

    def progress(self):
        done = ffi.new("uint64_t *")
        total = ffi.new("uint64_t *")
        lib.fh_replay_progress(self._r, done, total)
        return int(done[0]), int(total[0])

    def stats(self) -> dict:
        st = ffi.new("fh_stats_t *")
        lib.fh_replay_stats(self._r, st)
        return stats_to_dict(st)


def replay(paths: Sequence[str], progress: Optional[bool] = None, max_streams: int = 0) -> ReplayResult:
    """Decode every input in order into one set of counters."""
    r = Replay(max_streams=max_streams)
    results = []
    for p in paths:
        res = r.run_file(p, progress=progress)
        results.append(res)
    return ReplayResult(stats=r.stats(), inputs=results)
