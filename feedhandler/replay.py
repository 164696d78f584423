"""Replay of captures (pcap, pcapng; plain, gzip or zstd) and NASDAQ BinaryFILEs through the C pipeline.

    from feedhandler.replay import Replay, ReplayConfig

    cfg = ReplayConfig(mode="book", max_orders=1 << 20)
    with Replay(cfg) as r:                    # or Replay(mode="book", max_orders=1 << 20)
        r.run_file("day.pcap")                # "-" reads standard input
        r.dump_books("books.csv")
    print(r.stats())                          # the counters as they were when it closed

Leaving the ``with`` block finishes the replay (holes still open are given up and
counted, final counters published, a named segment marked finished -- or stopped
after :meth:`Replay.stop`; the segment itself stays in /dev/shm for readers) and
frees its memory.

:class:`ReplayConfig` (every setting, checked) lives in :mod:`feedhandler.config`,
which needs no C core; it is re-exported here.
"""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from .config import MODE_NAMES, PROTOCOL_IDS, Channel, ReplayConfig, venues_of
from .core import lib, merge_stats, stats_to_dict
from .endpoints import Endpoint, EndpointError, ipv4_to_int
from .errors import ERR_LEN, ReplayConfigError, ReplayError, ShmNameError, c_error, c_message
from .progress import run_with_progress

if TYPE_CHECKING:  # pragma: no cover
    from .shm import Segment

__all__ = [
    "Replay",
    "ReplayConfig",
    "ReplayConfigError",
    "ReplayError",
    "ReplayResult",
    "InputResult",
    "replay",
    "STDIN",
    "MODES",
    "FORMAT_NAMES",
]

FORMAT_NAMES = {
    lib.FH_FMT_UNKNOWN: "unknown",
    lib.FH_FMT_PCAP_US: "pcap (us)",
    lib.FH_FMT_PCAP_NS: "pcap (ns)",
    lib.FH_FMT_PCAPNG: "pcapng",
    lib.FH_FMT_BINFILE: "BinaryFILE",
}

#: ``ReplayConfig.mode`` -> the C core's pipeline mode.
MODES = {name: getattr(lib, "FH_MODE_" + name.upper()) for name in MODE_NAMES}

#: The input path that means standard input (passed to the C core as is).
STDIN = "-"


@dataclass
class InputResult:
    """What became of one input: its detected format, and whether it decoded to its end."""

    path: str
    format: str
    gzip: bool
    ok: bool  # decoded to its end
    error: Optional[str]  # why not, or where it was found corrupt
    partial: bool = False  # decoded up to a corrupt/truncated point
    compression: Optional[str] = None  # "gzip" or "zstd" when the input was compressed (streamed)


@dataclass
class ReplayResult:
    """The counters of a whole :func:`replay`, and each input's :class:`InputResult`."""

    stats: dict
    inputs: List[InputResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.inputs)


_COMPRESSION = {1: "gzip", 2: "zstd"}


# ------------------------------------------------------------------ replay
class Replay:
    """One replay: inputs decoded in order into per-instrument books, published
    (mode 'publish') to shared memory, counters accumulated.

    ``Replay(config)`` takes a :class:`ReplayConfig`; ``Replay(**kwargs)`` builds one
    from its fields (``Replay(mode="book", shm="books")``), and ``Replay(config,
    **kwargs)`` changes some fields of ``config``.  See :class:`ReplayConfig` for
    every setting.

    Lanes: with several ``cores`` each lane (a pinned thread) walks the input and
    takes its share of it as NIC steering would (MoldUDP64 streams by order of
    first appearance, BinaryFILE messages by stock locate), so books and counters
    are the same whatever the number of cores.

    A context manager: leaving ``with Replay(...) as r:`` calls :meth:`close`, which
    finishes the replay and frees its memory.  After it, :meth:`stats`,
    :meth:`lane_stats` and :meth:`memory` return what they were at close; anything
    else raises :class:`ReplayError`."""

    def __init__(self, config: Optional[ReplayConfig] = None, **options: Any) -> None:
        from . import _core  # type: ignore[attr-defined]

        self._setup(self._config_of(config, options), _core)

    @classmethod
    def on_backend(cls, backend: Any, config: ReplayConfig, live: bool = False) -> "Replay":
        """A replay running on another build of the same C pipeline: ``backend`` is
        its CFFI module (``feedhandler._dpdk``, the pipeline linked with DPDK).  For
        :class:`feedhandler.dpdk.DpdkRun`; applications use ``Replay(config)``.
        ``live``: the input does not wait (a NIC): a stream waiting for a snapshot
        keeps receiving and holds its packets instead of pausing the walk."""
        self = cls.__new__(cls)
        self._snapshot_blocking = not live
        self._setup(config, backend)
        return self

    @staticmethod
    def _config_of(config: Any, options: Dict[str, Any]) -> ReplayConfig:
        if config is None:
            return ReplayConfig.from_kwargs(**options)
        if not isinstance(config, ReplayConfig):
            raise TypeError(
                "Replay() takes a ReplayConfig or keyword arguments (e.g. mode=%r), not %r"
                % (config if isinstance(config, str) else "publish", type(config).__name__)
            )
        return config.replace(**options) if options else config

    def _setup(self, config: ReplayConfig, backend: Any) -> None:
        ffi, lib_ = backend.ffi, backend.lib
        self._ffi, self._lib = ffi, lib_
        self._lanes: List[Any] = []
        self._r: Any = None
        self._closed = False
        self._final: Optional[Tuple[List[dict], dict]] = None
        self._segments: "weakref.WeakSet[Segment]" = weakref.WeakSet()
        self.config = config
        self.mode = config.mode
        self.depth = config.depth
        self.shm_name = config.shm
        self.cores: Optional[List[int]] = config.lane_cores
        self.channels: List[Channel] = list(config.channels)
        self.latency_on = bool(config.latency)
        self.latency_every = config.latency
        self.latency_stages_every = config.latency_stages
        try:
            self._create()
        except BaseException:
            self._release()  # a half-made replay frees its memory (and segment name) now
            raise

    def _create(self) -> None:
        ffi, lib_, config = self._ffi, self._lib, self.config
        n_lanes = config.lanes
        self._name = ffi.new("char[]", config.shm.encode()) if config.shm else ffi.NULL
        cfg = ffi.new(
            "fh_lane_cfg_t *",
            {
                "max_streams": config.max_streams,
                "mode": MODES[config.mode],
                "max_orders": config.max_orders,
                "max_instruments": config.max_instruments,
                "max_levels": config.max_levels,
                "depth": config.depth,
                "ring_events": config.ring_events,
                "shm_mode": config.shm_mode,
                "gap_window_us": config.gap_window_us,
                "gap_buffer": config.gap_buffer,
                "lanes": n_lanes,
                "silence_ms": config.silence_ms,
                "speed": config.speed,
                "shm_name": self._name,
            },
        )
        err = ffi.new("char[]", ERR_LEN)
        ptr = lib_.fh_lane_new(cfg, err, len(err))
        if ptr == ffi.NULL:
            # The C core starts every refusal of the name itself with the
            # object's path (csrc/shm.h, fh_shm_create).
            refused = config.shm and c_message(ffi, err).startswith("/dev/shm/%s " % config.shm)
            raise c_error(ShmNameError if refused else ReplayError, ffi, err)
        self._lanes.append(ffi.gc(ptr, lib_.fh_lane_free))
        self._r = self._lanes[0]
        for lane in range(1, n_lanes):
            p = lib_.fh_lane_new_peer(self._lanes[0], lane, err, len(err))
            if p == ffi.NULL:
                raise c_error(ReplayError, ffi, err)
            self._lanes.append(ffi.gc(p, lib_.fh_lane_free))
        if config.latency:
            for r in self._lanes:
                if lib_.fh_lane_enable_latency(r, config.latency, config.latency_stages, err, len(err)) != 0:
                    raise c_error(ReplayError, ffi, err)
        rr_ip, rr_port = self._server(config.rerequest)
        for r in self._lanes:
            if lib_.fh_lane_set_rerequest(r, rr_ip, rr_port, config.rerequest_timeout_ms, err, len(err)) != 0:
                raise c_error(ReplayError, ffi, err)
        if self.channels:
            venues = venues_of(self.channels)
            for r in self._lanes:
                for i, (vname, vproto) in enumerate(venues):
                    if lib_.fh_lane_set_venue(r, i, vname.encode(), PROTOCOL_IDS[vproto]) != 0:
                        raise ReplayError("venue %r: at most 8 venues, 4 of them PITCH or IEX" % vname)
            venue_index = {v: i for i, v in enumerate(venues)}
        # A run holding several venues keeps their consolidated BBO: from the
        # start when the config names several (2); without a config once
        # streams of a second venue appear (1), so one venue costs nothing.
        consolidate = 1 if not self.channels else (2 if len({ch.venue_name() for ch in self.channels}) > 1 else 0)
        for r in self._lanes:
            if lib_.fh_lane_set_consolidate(r, consolidate, err, len(err)) != 0:
                raise c_error(ReplayError, ffi, err)
        n_added = 0
        for ch in self.channels:
            lane = self.cores.index(ch.core) if self.cores else 0
            ch_ip, ch_port = self._server(ch.rerequest)
            vi = venue_index[(ch.venue_name(), ch.protocol)]
            for host, port in ch.lines():
                group = self._ip(host, "channel %r line" % ch.name)
                for r in self._lanes:
                    if lib_.fh_lane_add_line(r, group, port, lane, ch_ip, ch_port) != 0:
                        raise ReplayError("too many channel lines (at most 64), or no socket for re-requests")
                    if lib_.fh_lane_set_line_proto(r, n_added, PROTOCOL_IDS[ch.protocol], vi) != 0:
                        raise ReplayError("channel %r: bad protocol/venue" % ch.name)
                    if ch.snapshot and lib_.fh_lane_line_snapshot(r, group, port) != 0:
                        raise ReplayError("channel %r: no line %s:%d for its snapshot server" % (ch.name, host, port))
                n_added += 1
        self._recovery = None
        if config.snapshot or any(ch.snapshot for ch in self.channels):
            for r in self._lanes:
                if (
                    lib_.fh_lane_set_snapshot(
                        r,
                        int(config.snapshot is not None),
                        int(self._snapshot_blocking),
                        config.snapshot_timeout_ms,
                        err,
                        len(err),
                    )
                    != 0
                ):
                    raise c_error(ReplayError, ffi, err)
            by_line = {}
            for ch in self.channels:
                for host, port in ch.lines():
                    by_line[(self._ip(host, "channel %r line" % ch.name), port)] = ch.snapshot or config.snapshot
            from .recovery import RecoveryService

            # One deadline per recovery (the lane's, fh_lane_snapshot_deadline_ns): the
            # service retries within it; the size bound is the lane's (its capacities).
            total = (config.snapshot_timeout_ms or 5000) / 1000.0
            self._recovery = RecoveryService(
                ffi,
                lib_,
                self._lanes,
                lambda group, port: by_line.get((group, port), config.snapshot),
                user=config.snapshot_user,
                password=config.snapshot_password,
                timeout=min(5.0, total),
                deadline=total,
            )

    @staticmethod
    def _ip(host: str, what: str) -> int:
        try:
            return ipv4_to_int(host, what, resolve=True)
        except EndpointError as exc:
            raise ReplayConfigError(str(exc)) from None

    def _server(self, endpoint: Optional[Endpoint]) -> Tuple[int, int]:
        if not endpoint:
            return 0, 0
        return self._ip(endpoint[0], "rerequest"), endpoint[1]

    # ----------------------------------------------------------- lifecycle
    def __enter__(self) -> "Replay":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Finish (see :meth:`finish`) and free the pipeline's memory; the counters are
        kept for :meth:`stats`.  A named segment stays in /dev/shm, marked finished
        (stopped after :meth:`stop`), for readers in other processes; segments from :meth:`segment` are closed.  Calling
        it again does nothing."""
        if self._closed:
            return
        try:
            self.finish()
            self._final = (self.lane_stats(), self.memory())
        finally:
            for seg in list(self._segments):
                seg.close()
            self._closed = True
            self._release()

    #: A file replay waits for a snapshot in place (deterministic); live sources do not.
    _snapshot_blocking = True

    def _release(self) -> None:
        # The recovery thread posts into the lanes: stopped before they are freed.
        if getattr(self, "_recovery", None) is not None:
            self._recovery.stop()
        # Extra lanes first: they view lane 0's segment.
        for lane in reversed(self._lanes):
            self._ffi.release(lane)
        self._lanes = []
        self._r = None

    def _live(self) -> List[Any]:
        if self._closed:
            raise ReplayError("this Replay is closed")
        return self._lanes

    # ------------------------------------------------------- C-level access
    @property
    def ffi(self) -> Any:
        """The CFFI ``ffi`` of the C build this replay runs on (``feedhandler._core``,
        or ``feedhandler._dpdk`` under DpdkRun), for code calling the C API on
        :attr:`handles` (feedhandler.latency, feedhandler.dpdk)."""
        return self._ffi

    @property
    def lib(self) -> Any:
        """The CFFI ``lib`` matching :attr:`ffi`."""
        return self._lib

    @property
    def handles(self) -> Tuple[Any, ...]:
        """The C ``fh_lane_t *`` of every lane, lane 0 first (valid until :meth:`close`)."""
        return tuple(self._live())

    def pin_lane(self, lane: int) -> None:
        """Pin the calling thread to lane ``lane``'s CPU (nothing without ``cores``)."""
        if self.cores and self._lib.fh_pin_thread(self.cores[lane]) != 0:
            raise ReplayError("cannot pin a thread to CPU %d: %s" % (self.cores[lane], os.strerror(self._ffi.errno)))

    # --------------------------------------------------------------- inputs
    def run_file(self, path: str, progress: Optional[bool] = None) -> InputResult:
        """Decode one input (pcap, pcapng, gzip of either, or BinaryFILE; ``"-"`` is
        standard input).  ``progress``: a bar on stderr (None: when it is a terminal)."""
        lanes = self._live()
        path_b = os.fsencode(path)
        n = len(lanes)
        errs = [self._ffi.new("char[]", ERR_LEN) for _ in range(n)]
        fmts = [self._ffi.new("int *") for _ in range(n)]
        rcs: List[Optional[int]] = [None] * n

        def lane_work(i: int) -> None:
            self.pin_lane(i)
            rcs[i] = self._lib.fh_lane_replay_file(lanes[i], path_b, fmts[i], errs[i], len(errs[i]))

        def work() -> None:
            if n == 1:
                lane_work(0)
                return
            threads = [threading.Thread(target=lane_work, args=(i,), name="feedhandler-lane%d" % i) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        label = "stdin" if path == STDIN else (os.path.basename(path)[:8] or "replay")
        run_with_progress(work, self.progress, label, enabled=progress, on_interrupt=self.stop)
        rc = next((x for x in rcs if x), 0) if None not in rcs else -1
        # The C side saw the first bytes (also of standard input, which Python must not read).
        comp = _COMPRESSION.get(int(self._lib.fh_lane_input_compression(self._live()[0])))
        return InputResult(
            path=path,
            format=FORMAT_NAMES.get(fmts[0][0], "unknown"),
            gzip=comp == "gzip",
            ok=rc == 0,
            error=c_message(self._ffi, errs[0]) if rc != 0 else None,
            partial=rc == 1,
            compression=comp,
        )

    def run_buffer(self, data: bytes) -> InputResult:
        """Decode an in-memory input (lanes one after the other, on this thread)."""
        err = self._ffi.new("char[]", ERR_LEN)
        fmt = self._ffi.new("int *")
        rc = 0
        for lane in self._live():
            rc = self._lib.fh_lane_buffer(lane, data, len(data), fmt, err, len(err))
        return InputResult(
            path="<buffer>",
            format=FORMAT_NAMES.get(fmt[0], "unknown"),
            gzip=False,
            ok=rc == 0,
            error=c_message(self._ffi, err) if rc != 0 else None,
            partial=rc == 1,
        )

    def stop(self) -> None:
        """Ask every lane to stop before its next frame or record (a paced lane
        stops waiting for it); safe from another thread and from a signal
        handler.  It stays asked: later inputs stop at once, and finishing
        marks the segment ``stopped`` (not ``finished``)."""
        for lane in self._lanes:
            self._lib.fh_lane_stop(lane)

    def finish(self) -> None:
        """All inputs done: holes still waiting for the other line are given up
        (counted as gaps), final counters to shared memory, segment marked finished
        (stopped after :meth:`stop`).  Nothing to do once closed."""
        for lane in reversed(self._lanes):
            self._lib.fh_lane_finish(lane)

    # ------------------------------------------------------------- results
    def progress(self) -> Tuple[int, int]:
        """(bytes done, bytes in total) of the input being read (total 0: unknown)."""
        done = self._ffi.new("uint64_t *")
        total = self._ffi.new("uint64_t *")
        self._lib.fh_lane_progress(self._live()[0], done, total)
        return int(done[0]), int(total[0])

    def lane_stats(self) -> List[dict]:
        """The counters of each lane (see :func:`feedhandler.core.stats_to_dict`)."""
        if self._closed:
            assert self._final is not None
            return [dict(d) for d in self._final[0]]
        out = []
        for lane in self._lanes:
            st = self._ffi.new("fh_stats_t *")
            self._lib.fh_lane_stats(lane, st)
            out.append(stats_to_dict(st))
        return out

    def stats(self) -> dict:
        """The counters of all lanes together, with ``memory`` and ``lanes``."""
        d = merge_stats(self.lane_stats())
        d["memory"] = self.memory()
        d["lanes"] = self.config.lanes
        if getattr(self, "_recovery", None) is not None:
            d["snapshot_fetch_errors"] = dict(self._recovery.errors)
        return d

    @property
    def snapshot_log(self) -> List[Dict[str, Any]]:
        """Every snapshot fetched or tried: stream port and session, next sequence,
        server, attempts, ok, reason of a failure, snapshot sequence, messages, seconds."""
        return list(self._recovery.log) if getattr(self, "_recovery", None) is not None else []

    def memory(self) -> Dict[str, int]:
        """Bytes preallocated: ``book_bytes`` (all lanes) and ``shm_bytes``."""
        if self._closed:
            assert self._final is not None
            return dict(self._final[1])
        book = self._ffi.new("uint64_t *")
        shm = self._ffi.new("uint64_t *")
        total_book = 0
        for lane in self._lanes:
            self._lib.fh_lane_memory(lane, book, shm)
            total_book += int(book[0])
        self._lib.fh_lane_memory(self._r, book, shm)
        return {"book_bytes": total_book, "shm_bytes": int(shm[0])}

    def flags(self, locate: int) -> int:
        """Book flags of an instrument (feedhandler.shm.FLAG_*)."""
        f = 0
        for lane in self._live():
            f |= int(self._lib.fh_lane_instrument_flags(lane, locate))
        return f

    def tsc_hz(self) -> int:
        """The TSC frequency the replay calibrated (0: it stamps with clock_gettime)."""
        return int(self._lib.fh_lane_tsc_hz(self._live()[0]))

    def venues(self) -> List[str]:
        """The run's venue names by index (0: the ITCH venue, then PITCH venues)."""
        r = self._live()[0]
        return [
            self._ffi.string(self._lib.fh_lane_venue_name(r, i)).decode() for i in range(self._lib.fh_lane_n_venues(r))
        ]

    def venues_held(self) -> List[str]:
        """The venues whose instruments the books hold (received any message)."""
        mask = 0
        for lane in self._live():
            mask |= int(self._lib.fh_lane_venues_held(lane))
        names = self.venues()
        return [names[i] for i in range(len(names)) if mask >> i & 1]

    def dump_books(self, path: Union[str, "os.PathLike[str]", IO[Any]], depth: Optional[int] = None) -> None:
        """Write the --dump-books CSV (locate,symbol,side,level,price,shares,orders;
        then venue when the books hold more than one venue).  ``path`` may also be
        a file already open for writing (anything with ``fileno()``, e.g. opened
        before the replay so that a bad path fails first): written from its
        position and left open."""
        lanes = self._live()
        err = self._ffi.new("char[]", ERR_LEN)
        depth = depth or self.depth
        with_venue = int(len(self.venues_held()) > 1)
        fd: Optional[int] = None
        if hasattr(path, "fileno"):
            path.flush()  # type: ignore[union-attr]
            fd = path.fileno()  # type: ignore[union-attr]
        if len(lanes) == 1:
            if fd is not None:
                rc = self._lib.fh_lane_dump_books_fd(lanes[0], fd, depth, with_venue, err, len(err))
            else:
                rc = self._lib.fh_lane_dump_books(lanes[0], os.fsencode(path), depth, with_venue, err, len(err))
            if rc != 0:
                raise c_error(ReplayError, self._ffi, err)
            return
        # Each instrument lives on one lane: merge the lanes' rows by locate.
        rows: List[str] = []
        header = ""
        with tempfile.TemporaryDirectory() as tmp:
            for i, lane in enumerate(lanes):
                part = os.path.join(tmp, "lane%d.csv" % i)
                if self._lib.fh_lane_dump_books(lane, os.fsencode(part), depth, with_venue, err, len(err)) != 0:
                    raise c_error(ReplayError, self._ffi, err)
                with open(part) as f:
                    header = f.readline()
                    rows.extend(f.readlines())
        rows.sort(key=lambda line: int(line.split(",", 1)[0]))  # stable: lane order kept within a locate
        try:
            with open(fd, "w", closefd=False) if fd is not None else open(path, "w") as f:  # type: ignore[arg-type]
                f.write(header)
                f.writelines(rows)
        except OSError as exc:
            raise ReplayError("cannot write %s: %s" % ("the books file" if fd is not None else path, exc.strerror))

    def segment(self) -> "Segment":
        """This replay's shared memory, read in-process like any other reader.  The
        segment keeps the replay alive; closing the replay closes it."""
        from .shm import Segment

        lanes = self._live()
        if self.mode != "publish":
            raise ReplayError("mode %r publishes nothing" % self.mode)
        size = self._ffi.new("uint64_t *")
        base = self._lib.fh_lane_shm(lanes[0], size)
        seg = Segment(self._ffi.buffer(base, size[0]), int(size[0]), owner=self, name=self.shm_name)
        self._segments.add(seg)
        return seg

    def __repr__(self) -> str:
        return "<Replay mode=%s shm=%r lanes=%d%s>" % (
            self.mode,
            self.shm_name,
            self.config.lanes,
            " closed" if self._closed else "",
        )


def replay(
    paths: Sequence[str], progress: Optional[bool] = None, config: Optional[ReplayConfig] = None, **options: Any
) -> ReplayResult:
    """Decode every input in order into one set of books and counters; the replay is
    finished and closed before this returns.  ``config`` / ``options`` as for
    :class:`Replay`."""
    with Replay(config, **options) as r:
        results = [r.run_file(p, progress=progress) for p in paths]
    return ReplayResult(stats=r.stats(), inputs=results)
