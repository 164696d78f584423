"""Replay of captures (pcap, pcapng, gzip) and NASDAQ BinaryFILEs through the C pipeline."""
from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from .core import lib, merge_stats, stats_to_dict
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
    """One replay: inputs decoded in order into per-instrument books, published
    (mode 'publish') to shared memory, counters accumulated.

    ``shm``: segment name under /dev/shm (None: private memory, readable only
    through :meth:`segment`).  Capacities are preallocated here, never later.
    ``cores``: CPUs to run on, one pinned thread (lane) each; every lane walks
    the input and takes its share of it as NIC steering would (MoldUDP64
    streams by order of first appearance, BinaryFILE messages by stock locate),
    so books and counters are the same whatever the number of cores.  None:
    one lane on the calling thread's CPUs.
    ``channels``: from :func:`feedhandler.config.load`: datagrams go to the
    lane of their channel's core (others are skipped, counted
    ``unconfigured_group``); without, every (UDP port, MoldUDP64 session) is a
    channel and every group carrying it one of its lines.
    ``rerequest``: (host, port) of a MoldUDP64 re-request server for streams
    whose channel names none: a hole still open when its gap window ends is
    re-requested (replay paused meanwhile; ``rerequest_timeout_ms`` per try,
    default 20, 3 tries) before it counts as a gap; recovered messages are
    counted in ``recovered``.
    ``silence_ms``: a stream with no packet (not even a heartbeat) for this
    long, in receive time, is flagged silent with its instruments (default
    3000); end of session ends that watch.
    ``speed``: 0 = as fast as possible; 1 = paced to the capture's clock
    (BinaryFILE: its ITCH timestamps); 2.0 = twice as fast, 0.5 = half.
    ``gap_window_us``: how long (in receive/capture time) a hole in a stream
    waits for the other line's copy before it is counted as a gap (default
    1000); ``gap_buffer``: packets that can be held behind holes (default 4096)."""

    def __init__(self, mode: str = "publish", shm: Optional[str] = None, depth: int = 10,
                 max_orders: int = 0, max_instruments: int = 0, max_levels: int = 0, ring_events: int = 0,
                 max_streams: int = 0, shm_mode: int = 0o600, gap_window_us: int = 0, gap_buffer: int = 0,
                 cores: Optional[Sequence[int]] = None, speed: float = 0.0, channels=None,
                 rerequest: Optional[Tuple[str, int]] = None, rerequest_timeout_ms: int = 0,
                 silence_ms: int = 0, backend=None, latency: int = 0):
        # backend: the CFFI module to run on (feedhandler._core, or feedhandler._dpdk
        # for kernel-bypass receive: the same pipeline linked with DPDK).
        if backend is None:
            from . import _core as backend  # type: ignore[attr-defined]
        ffi, lib = backend.ffi, backend.lib
        self._ffi, self._lib = ffi, lib
        if mode not in MODES:
            raise ReplayError("mode must be one of %s" % ", ".join(MODES))
        if channels:
            from .config import cores_of
            cores = cores_of(channels, cores)
        self.cores = list(cores) if cores else None
        self.channels = list(channels) if channels else []
        n_lanes = len(self.cores) if self.cores else 1
        if self.cores:
            bad = [c for c in self.cores if c < 0 or c >= (os.cpu_count() or 1)]
            if bad:
                raise ReplayError("cores %s do not exist (this machine has CPUs 0..%d)"
                                  % (",".join(map(str, bad)), (os.cpu_count() or 1) - 1))
            if len(set(self.cores)) != len(self.cores):
                raise ReplayError("a core is listed twice in %s" % self.cores)
        self._name = ffi.new("char[]", shm.encode()) if shm else ffi.NULL
        cfg = ffi.new("fh_replay_cfg_t *", {
            "max_streams": max_streams, "mode": MODES[mode], "max_orders": max_orders,
            "max_instruments": max_instruments, "max_levels": max_levels, "depth": depth,
            "ring_events": ring_events, "shm_mode": shm_mode, "gap_window_us": gap_window_us,
            "gap_buffer": gap_buffer, "lanes": n_lanes, "silence_ms": silence_ms, "speed": float(speed), "shm_name": self._name})
        err = ffi.new("char[512]")
        ptr = lib.fh_replay_new(cfg, err, len(err))
        if ptr == ffi.NULL:
            raise ReplayError(ffi.string(err).decode(errors="replace"))
        self._lanes = [ffi.gc(ptr, lib.fh_replay_free)]
        for lane in range(1, n_lanes):
            p = lib.fh_replay_new_lane(self._lanes[0], lane, err, len(err))
            if p == ffi.NULL:
                raise ReplayError(ffi.string(err).decode(errors="replace"))
            self._lanes.append(ffi.gc(p, lib.fh_replay_free))
        self._r = self._lanes[0]
        # latency: 0/False off; True or 1 stamps every packet; N every Nth.
        if isinstance(latency, bool):
            latency = int(latency)
        if not isinstance(latency, int) or latency < 0 or latency >= 2 ** 32:
            raise ReplayError("latency must be 0 (off), 1 (every packet) or N (every Nth packet)")
        if latency:
            for r in self._lanes:
                if lib.fh_replay_enable_latency(r, latency, err, len(err)) != 0:
                    raise ReplayError(ffi.string(err).decode(errors="replace"))
        self.latency_on = bool(latency)
        self.latency_every = latency
        for r in self._lanes:
            rr_ip, rr_port = (_ip(rerequest[0]), rerequest[1]) if rerequest else (0, 0)
            if lib.fh_replay_set_rerequest(r, rr_ip, rr_port, rerequest_timeout_ms, err, len(err)) != 0:
                raise ReplayError(ffi.string(err).decode(errors="replace"))
        for ch in self.channels:
            lane = self.cores.index(ch.core) if self.cores else 0
            rr_ip, rr_port = (_ip(ch.rerequest[0]), ch.rerequest[1]) if ch.rerequest else (0, 0)
            for host, port in ch.lines():
                for r in self._lanes:
                    if lib.fh_replay_add_line(r, _ip(host), port, lane, rr_ip, rr_port) != 0:
                        raise ReplayError("too many channel lines (at most 64), or no socket for re-requests")
        self.mode = mode
        self.depth = depth
        self.shm_name = shm

    def _pin(self, lane: int) -> None:
        if self.cores and self._lib.fh_pin_thread(self.cores[lane]) != 0:
            raise ReplayError("cannot pin a thread to CPU %d: %s" % (self.cores[lane], os.strerror(self._ffi.errno)))

    def run_file(self, path: str, progress: Optional[bool] = None) -> InputResult:
        path_b = os.fsencode(path)
        n = len(self._lanes)
        errs = [self._ffi.new("char[512]") for _ in range(n)]
        fmts = [self._ffi.new("int *") for _ in range(n)]
        rcs = [None] * n

        def lane_work(i):
            self._pin(i)
            rcs[i] = self._lib.fh_replay_file(self._lanes[i], path_b, fmts[i], errs[i], len(errs[i]))

        def work():
            if n == 1:
                lane_work(0)
                return
            threads = [threading.Thread(target=lane_work, args=(i,), name="feedhandler-lane%d" % i)
                       for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        run_with_progress(work, self.progress, os.path.basename(path)[:8] or "replay",
                          enabled=progress, on_interrupt=self.stop)
        rc = next((x for x in rcs if x), 0) if None not in rcs else -1
        return InputResult(path=path, format=FORMAT_NAMES.get(fmts[0][0], "unknown"), gzip=_is_gzip(path),
                           ok=rc == 0, error=self._ffi.string(errs[0]).decode(errors="replace") if rc != 0 else None, partial=rc == 1)

    def run_buffer(self, data: bytes) -> InputResult:
        """Decode an in-memory input (lanes one after the other, on this thread)."""
        err = self._ffi.new("char[512]")
        fmt = self._ffi.new("int *")
        rc = 0
        for lane in self._lanes:
            rc = self._lib.fh_replay_buffer(lane, data, len(data), fmt, err, len(err))
        return InputResult(path="<buffer>", format=FORMAT_NAMES.get(fmt[0], "unknown"), gzip=False,
                           ok=rc == 0, error=self._ffi.string(err).decode(errors="replace") if rc != 0 else None, partial=rc == 1)

    def stop(self) -> None:
        for lane in self._lanes:
            self._lib.fh_replay_stop(lane)

    def finish(self) -> None:
        """All inputs done: holes still waiting for the other line are given up
        (counted as gaps), final counters to shared memory, segment marked finished."""
        for lane in reversed(self._lanes):
            self._lib.fh_replay_finish(lane)

    def progress(self):
        done = self._ffi.new("uint64_t *")
        total = self._ffi.new("uint64_t *")
        self._lib.fh_replay_progress(self._r, done, total)
        return int(done[0]), int(total[0])

    def lane_stats(self) -> List[dict]:
        out = []
        for lane in self._lanes:
            st = self._ffi.new("fh_stats_t *")
            self._lib.fh_replay_stats(lane, st)
            out.append(stats_to_dict(st))
        return out

    def stats(self) -> dict:
        d = merge_stats(self.lane_stats())
        d["memory"] = self.memory()
        d["lanes"] = len(self._lanes)
        return d

    def memory(self) -> dict:
        book = self._ffi.new("uint64_t *")
        shm = self._ffi.new("uint64_t *")
        total_book = 0
        for lane in self._lanes:
            self._lib.fh_replay_memory(lane, book, shm)
            total_book += int(book[0])
        self._lib.fh_replay_memory(self._r, book, shm)
        return {"book_bytes": total_book, "shm_bytes": int(shm[0])}

    def flags(self, locate: int) -> int:
        """Book flags of an instrument (feedhandler.shm.FLAG_*)."""
        f = 0
        for lane in self._lanes:
            f |= int(self._lib.fh_replay_instrument_flags(lane, locate))
        return f

    def dump_books(self, path: str, depth: Optional[int] = None) -> None:
        """Write the --dump-books CSV (locate,symbol,side,level,price,shares,orders)."""
        err = self._ffi.new("char[512]")
        depth = depth or self.depth
        if len(self._lanes) == 1:
            if self._lib.fh_replay_dump_books(self._r, os.fsencode(path), depth, err, len(err)) != 0:
                raise ReplayError(self._ffi.string(err).decode(errors="replace"))
            return
        # Each instrument lives on one lane: merge the lanes' rows by locate.
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, lane in enumerate(self._lanes):
                part = os.path.join(tmp, "lane%d.csv" % i)
                if self._lib.fh_replay_dump_books(lane, os.fsencode(part), depth, err, len(err)) != 0:
                    raise ReplayError(self._ffi.string(err).decode(errors="replace"))
                with open(part) as f:
                    header = f.readline()
                    rows.extend(f.readlines())
        rows.sort(key=lambda line: int(line.split(",", 1)[0]))     # stable: lane order kept within a locate
        try:
            with open(path, "w") as f:
                f.write(header)
                f.writelines(rows)
        except OSError as exc:
            raise ReplayError("cannot write %s: %s" % (path, exc.strerror))

    def segment(self):
        """This replay's shared memory, read in-process like any other reader."""
        from .shm import Segment
        if self.mode != "publish":
            raise ReplayError("mode %r publishes nothing" % self.mode)
        size = self._ffi.new("uint64_t *")
        base = self._lib.fh_replay_shm(self._r, size)
        return Segment(self._ffi.buffer(base, size[0]), int(size[0]), owner=self, name=self.shm_name)


def _ip(host: str) -> int:
    import socket
    try:
        return int.from_bytes(socket.inet_aton(socket.gethostbyname(host)), "big")
    except OSError:
        raise ReplayError("cannot resolve %r to an IPv4 address" % host)


def replay(paths: Sequence[str], progress: Optional[bool] = None, **kw) -> ReplayResult:
    """Decode every input in order into one set of books and counters."""
    r = Replay(**kw)
    results = [r.run_file(p, progress=progress) for p in paths]
    r.finish()
    return ReplayResult(stats=r.stats(), inputs=results)
