"""The reader: :class:`Segment`, a mapped segment's books, events and counters.

Every consistent copy (a slot under its sequence lock, the event rings, the
counters) is made in C; a reader never takes a lock the writer waits on.
:func:`feedhandler.shm.attach` maps one by name; ``Replay.segment()`` hands out
a replay's own."""

from __future__ import annotations

import asyncio
import mmap
import os
import sys
import time
import warnings
import weakref
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..core import errbuf, ffi, lib, merge_stats, stats_to_dict
from ..errors import ShmError, WriterDied, c_error
from .frames import _slots_frame, to_pandas
from .layout import EVENT_DTYPE, FLAG_DIRECTORY, STATES, book_dtype, slot_dtype
from .records import BookCopy, Lapped
from .units import text_of

__all__ = ["Segment", "MAX_SPINS"]

MAX_SPINS = 100_000

# follow() treats the stream as busy, and polls again at once instead of
# sleeping, until it has seen both this long and this many polls in a row
# without an event.  A sleep costs far more than its argument (time.sleep(50e-6)
# returns after ~60-110 us on Linux: the timer slack), so sleeping through the
# few-microsecond gaps of a busy feed would add that to the latency of the next
# event.  Counting polls as well keeps a reader the OS took off its core for a
# while from calling the stream idle: it has not looked.
_SPIN_S = 250e-6
_SPIN_POLLS = 100


def _busy(rc: int, what: str) -> str:
    if rc == -1:
        return "%s left mid-update: the writer died while updating it" % what
    return "%s kept changing faster than it could be copied; try again" % what


def _reusable(pool: List[np.ndarray], n: int, dtype: np.dtype, keep: int) -> np.ndarray:
    """An array of `n` records for a reader to fill, from `pool` (at most
    `keep` buffers) when one is free.  What a reader returns is a view of such
    a buffer, so a buffer is reused only once nothing outside the pool refers
    to it (no array returned from it, and no view of one, is alive): a loop
    that drops each result before asking for the next reads into the same warm
    memory instead of faulting in fresh pages every call (4.7 MB per 65536
    events, 46 MB per copy of 65536 slots), and results a caller keeps are
    never overwritten."""
    for buf in pool:
        # References: the pool's list, this loop's variable, getrefcount's argument.
        if len(buf) >= n and sys.getrefcount(buf) == 3:
            return buf[:n]
    buf = np.empty(n, dtype=dtype)
    if len(pool) >= keep:
        pool.pop(0)
    pool.append(buf)
    return buf[:n]


class Segment:
    """A mapped segment.  Use :func:`attach` (by name, read-only) or
    ``Replay.segment()`` (the replay's own, in-process).

    A context manager: leaving ``with attach(name) as seg:`` calls :meth:`close`,
    which unmaps it from this process (the segment itself stays in /dev/shm).
    After close every read raises :class:`ShmError`."""

    def __init__(self, buf: Any, size: int, owner: Any = None, name: Optional[str] = None) -> None:
        self._fd: Optional[int] = None  # attach()'s descriptor: asks the writer's lock (writer_alive)
        self._fd_close: Any = None
        self._buf = buf  # keeps the mapping alive
        self._owner = owner  # keeps an in-process replay alive
        self.name = name
        self._base = ffi.from_buffer("uint8_t[]", buf) if not isinstance(buf, ffi.CData) else buf
        err = errbuf()
        if lib.fh_shm_check(self._base, size, err, len(err)) != 0:
            if not isinstance(buf, ffi.CData):
                ffi.release(self._base)  # so that attach() can unmap it
            raise c_error(ShmError, ffi, err)
        self._hdr = ffi.cast("fh_shm_header_t *", self._base)
        self.depth = int(self._hdr.depth)
        self.n_slots = int(self._hdr.n_slots)
        self.slot_size = int(self._hdr.slot_size)
        self.ring_capacity = int(self._hdr.ring_capacity)
        layout = slot_dtype(self.depth).itemsize
        if layout != self.slot_size:
            raise ShmError("slot size %d does not match this reader's layout (%d)" % (self.slot_size, layout))
        #: What book() and copy_books() return (book_dtype(depth)).
        self.dtype = book_dtype(self.depth)
        if self.dtype.itemsize != lib.fh_read_slot_size(self.depth):
            raise ShmError(
                "reader record size %d does not match the C core's (%d)"
                % (self.dtype.itemsize, lib.fh_read_slot_size(self.depth))
            )
        self.n_lanes = int(self._hdr.n_lanes)
        self._cursors = [ffi.new("uint64_t *", 0) for _ in range(self.n_lanes)]
        # Each lane's ring head, read on every poll (_available): one pointer per
        # lane instead of walking the header struct each time.
        self._heads = [ffi.addressof(self._hdr.ring_head[i], "head") for i in range(self.n_lanes)]
        self._no_events = np.empty(0, dtype=EVENT_DTYPE)  # events() hands out views of it
        self._lost = ffi.new("uint64_t *", 0)
        self.lapped = 0
        self._by_symbol: Dict[str, List[Tuple[int, int]]] = {}
        self._pool: List[np.ndarray] = []  # event buffers events() may reuse (_reusable)
        self._slots_pool: List[np.ndarray] = []  # copy_books()'s

    # -------------------------------------------------------------- header
    @property
    def state(self) -> str:
        """starting, running, finished, stopped -- or dead: the header says
        starting or running but its writer process is gone (killed; the books
        are frozen wherever it stopped and must not be traded on).  finished:
        every input was replayed to its end; stopped: the writer was asked to
        stop part-way (a signal), its books and counters are consistent but
        hold only what it applied until then."""
        st = STATES.get(int(self._header().state), "unknown")
        if st in ("starting", "running") and self.writer_alive is False:
            return "dead"
        return st

    @property
    def writer_alive(self) -> Optional[bool]:
        """True/False whether the writer lives and holds its segment; None when
        this process cannot tell.

        An attached segment asks the lock its writer holds from creation until
        it closes the segment (the lock that keeps its name taken): held, alive;
        free, gone (killed, even if not yet reaped) or done.  The lock is tested,
        never taken, so this never gets in a writer's way, and it answers across
        PID namespaces.  Without it (``Replay.segment()``, no OFD locks) the
        writer's pid and start time in /proc decide (None: no /proc, or another
        PID namespace)."""
        base = self._mapped()
        if self._fd is not None:
            held = lib.fh_shm_writer_locked(self._fd)
            if held >= 0:
                return bool(held)
        rc = lib.fh_shm_writer_alive(base)
        return None if rc < 0 else bool(rc)

    def _hold_fd(self, fd: int) -> None:
        """Keep attach()'s descriptor (read-only) for writer_alive; closed by close() or with the object."""
        self._fd = fd
        self._fd_close = weakref.finalize(self, os.close, fd)

    def clock_ns(self) -> int:
        """Now, in ns since the epoch, on the writer's clock (its TSC
        calibration, published in the header): subtract a ``publish_ts`` to get
        publish -> seen with no error between two clocks' calibrations."""
        return int(lib.fh_shm_clock_ns(self._mapped()))

    @property
    def writer_pid(self) -> int:
        return int(self._header().writer_pid)

    @property
    def created_ns(self) -> int:
        return int(self._header().created_ns)

    @property
    def ring_head(self) -> int:
        """Events written so far, all lanes together."""
        return sum(int(self._header().ring_head[i].head) for i in range(self.n_lanes))

    @property
    def system_event(self) -> str:
        c = int(self._header().system_event)
        return chr(c) if c else ""

    # --------------------------------------------------------------- slots
    def venues(self) -> List[str]:
        """The venue names, by index (a slot's ``venue``): index 0 is the ITCH
        venue (XNAS unless configured), then the PITCH venues."""
        h = self._header()
        n = min(int(h.n_venues), 8)
        return [text_of(ffi.string(h.venue_names[i], 8)) for i in range(n)]

    def _locate(self, key: Union[int, str], venue: Optional[str] = None) -> int:
        if isinstance(key, (int, np.integer)):
            loc = int(key)
        else:
            cands = self._candidates(key)
            if venue is not None:
                names = self.venues()
                picked = [l for v, l in cands if v < len(names) and names[v] == venue]
                if not picked:
                    raise KeyError(
                        "no instrument %r on venue %r (it is on %s)"
                        % (key, venue, ", ".join(names[v] if v < len(names) else str(v) for v, _ in cands))
                    )
                loc = picked[0]
            elif len(cands) > 1:
                names = self.venues()
                raise KeyError(
                    "%r is on several venues (%s): pass venue="
                    % (key, ", ".join(names[v] if v < len(names) else str(v) for v, _ in cands))
                )
            else:
                loc = cands[0][1]
        if not 0 < loc < self.n_slots:
            raise KeyError("locate %d out of range 1..%d" % (loc, self.n_slots - 1))
        return loc

    def _candidates(self, symbol: str) -> List[Tuple[int, int]]:
        """(venue, locate) of every instrument named `symbol` (the index is
        rebuilt once when the symbol is not in it yet)."""
        cands = self._by_symbol.get(symbol)
        if cands is None:
            self._by_symbol = self._symbol_index()
            cands = self._by_symbol.get(symbol)
            if cands is None:
                raise KeyError("no instrument %r in this segment" % (symbol,))
        return cands

    def _symbol_index(self) -> Dict[str, List[Tuple[int, int]]]:
        a = self.copy_books()
        named = np.nonzero(a["flags"] & FLAG_DIRECTORY)[0]
        out: Dict[str, List[Tuple[int, int]]] = {}
        for i in named:
            sym = text_of(a["symbol"][i])
            out.setdefault(sym, []).append((int(a["venue"][i]), int(i)))
        return out

    def book(self, key: Union[int, str], out: Optional[np.ndarray] = None, venue: Optional[str] = None) -> BookCopy:
        """A consistent copy of one instrument's book (:class:`BookCopy`), by symbol or instrument id
        (ITCH stock locate).  A symbol held on several venues needs ``venue``
        ("XNAS", "BATS", ...: see :meth:`venues`).

        ``out`` (from :meth:`new_buffer`) is reused instead of allocating: the
        copy then changes with the next call that reuses it (about 1.5 us
        per copy instead of 2.3 us on the 2-vCPU VM of docs/performance.md,
        most of it Python's call overhead)."""
        loc = self._locate(key, venue)
        if out is None:
            out = self.new_buffer()
        elif out.dtype != self.dtype or out.size != 1:
            raise ValueError("out must come from new_buffer()")
        base = self._base
        if base is None:
            raise self._closed_error()
        rc = lib.fh_shm_read_book(base, loc, ffi.from_buffer("uint8_t[]", out), MAX_SPINS)
        if rc != 0:
            raise ShmError(_busy(rc, "slot %d" % loc))
        return BookCopy(out)

    def bbo(self, symbol: str) -> dict:
        """The consolidated best bid and offer of ``symbol`` across venues:
        ``bid_price``, ``bid_shares``, ``bid_venue``, ``ask_price``, ``ask_shares``,
        ``ask_venue`` (prices Price(4); 0 and "" for an empty side) and ``venues``
        (venue -> (bid price, bid shares, ask price, ask shares)).  The best price
        wins; at equal prices the larger size, then the lower venue index.

        A run holding several venues maintains it in C as its books change (the
        segment's consolidated table, also reported as ``EV_CBBO`` events); each
        venue's part is read consistently.  A single-venue run has no table: the
        BBO is then that venue's top of book."""
        names = self.venues()
        if int(self._header().cbbo_on):
            out = ffi.new("fh_cbbo_t *")
            sym = symbol.encode("ascii")[:8].ljust(8, b" ")
            rc = lib.fh_shm_read_cbbo(self._mapped(), sym, out, MAX_SPINS)
            if rc < 0:
                raise ShmError(_busy(rc, "consolidated BBO of %r" % symbol))
            if rc == 1:
                raise KeyError("no consolidated BBO for %r in this segment" % (symbol,))

            def name(v):
                return names[v] if 0 <= v < len(names) else ("" if v < 0 else str(v))

            per = {
                name(v): (
                    int(out.v_bid_price[v]),
                    int(out.v_bid_shares[v]),
                    int(out.v_ask_price[v]),
                    int(out.v_ask_shares[v]),
                )
                for v in range(5)
                if out.venues >> v & 1
            }
            return {
                "symbol": symbol,
                "bid_price": int(out.bid_price),
                "bid_shares": int(out.bid_shares),
                "bid_venue": name(out.bid_venue),
                "ask_price": int(out.ask_price),
                "ask_shares": int(out.ask_shares),
                "ask_venue": name(out.ask_venue),
                "venues": per,
            }
        snap = self.book(symbol)
        v = int(snap.rec["venue"])
        vname = names[v] if v < len(names) else str(v)
        (bp, bs, _), (ap, as_, _) = snap.bids, snap.asks
        b = (int(bp[0]), int(bs[0])) if len(bp) else (0, 0)
        a = (int(ap[0]), int(as_[0])) if len(ap) else (0, 0)
        return {
            "symbol": symbol,
            "bid_price": b[0],
            "bid_shares": b[1],
            "bid_venue": vname if b[0] else "",
            "ask_price": a[0],
            "ask_shares": a[1],
            "ask_venue": vname if a[0] else "",
            "venues": {vname: (b[0], b[1], a[0], a[1])},
        }

    def new_buffer(self) -> np.ndarray:
        """A reusable output buffer for :meth:`book`."""
        # Over a bytearray: numpy allocates a 0-d record of a dtype with
        # subarrays about 3x slower itself (np.empty((), dtype)).
        return np.ndarray((), dtype=self.dtype, buffer=bytearray(self.dtype.itemsize))

    def copy_books(self, df: bool = False, prices: str = "int") -> Any:
        """A consistent copy of every book (each slot copied under its
        sequence lock) as one structured array (:func:`book_dtype`); index =
        instrument id (ITCH stock locate).

        ``df=True`` returns a pandas DataFrame instead (pandas must be
        installed): one row per instrument that has a symbol or has been
        updated, indexed by ``locate``, with ``symbol``, ``venue`` (name),
        top of book (``bid_price``, ``bid_shares``, ``bid_orders``, ``ask_*``),
        level counts, last trade, trading state, ``stale``, ``updates`` and
        ``exch_time`` (datetime64[ns], exchange-local wall clock) and
        ``rx_time`` (datetime64[ns], UTC).  Prices are Price(4) int64, or float
        dollars with ``prices="float"``."""
        base = self._mapped()
        out = _reusable(self._slots_pool, self.n_slots, self.dtype, 2)
        n = lib.fh_shm_read_books(base, 0, self.n_slots, ffi.from_buffer("uint8_t[]", out), MAX_SPINS)
        if n != self.n_slots:
            rc = lib.fh_shm_read_book(base, n, ffi.from_buffer("uint8_t[]", out[n : n + 1]), MAX_SPINS)
            raise ShmError(_busy(rc, "slot %d" % n))
        if df:
            return _slots_frame(out, self.venues(), prices)
        return out

    def snapshot_all(self, df: bool = False, prices: str = "int") -> Any:
        """Deprecated name of :meth:`copy_books` (kept for one release)."""
        warnings.warn(
            "Segment.snapshot_all() is deprecated: it is Segment.copy_books() now (the old name goes "
            "in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.copy_books(df=df, prices=prices)

    def symbols(self, reverse: bool = False) -> dict:
        """locate -> symbol for every instrument the stock directory named
        (symbol -> locate with reverse=True)."""
        a = self.copy_books()
        named = np.nonzero(a["flags"] & FLAG_DIRECTORY)[0]
        pairs = {int(i): text_of(a["symbol"][i]) for i in named}
        return {v: k for k, v in pairs.items()} if reverse else pairs

    # -------------------------------------------------------------- events
    def seek(self, position: str = "now") -> None:
        """Start following events from now ('now') or the oldest still in the ring ('oldest');
        any other word raises ValueError (it would otherwise pick one silently)."""
        if position not in ("now", "oldest"):
            raise ValueError("seek position must be 'now' or 'oldest', not %r" % (position,))
        for i, cur in enumerate(self._cursors):
            head = int(self._header().ring_head[i].head)
            cur[0] = head if position == "now" else max(0, head - self.ring_capacity)

    def events(self, max: int = 65536) -> np.ndarray:
        """Events since the last call (at most `max`, :data:`EVENT_DTYPE`),
        oldest first within each lane (a writer thread: one per core; an
        instrument's events all come from one lane, in order).  If a writer
        lapped this reader, `lapped` grows by the number lost and reading
        resumes at the oldest event still in that ring.  :meth:`follow` is the
        loop around it."""
        base = self._mapped()
        want = min(int(max), self._available())
        if want <= 0:
            # A view of one empty array: a busy poller's empty polls are most of
            # its calls, and a new structured array costs ~0.6 us.
            return self._no_events[:0]
        out = self._event_buffer(want)
        n = 0
        for lane, cur in enumerate(self._cursors):
            if n == want:
                break
            got = lib.fh_shm_read_events(
                base, lane, cur, ffi.from_buffer("fh_read_event_t[]", out[n:] if n else out), want - n, self._lost
            )
            self.lapped += int(self._lost[0])
            n += got
        return out if n == want else out[:n]

    def _event_buffer(self, want: int) -> np.ndarray:
        """An array of at least `want` events to read into (see _reusable):
        three, as ``for batch in seg.follow()`` keeps the previous batch while
        the next one is read."""
        if want < 4096:
            return np.empty(want, dtype=EVENT_DTYPE)
        return _reusable(self._pool, want, EVENT_DTYPE, 3)

    def _available(self) -> int:
        """Events readable now, all lanes (at most a ring's worth per lane)."""
        self._mapped()  # the head pointers point into the mapping
        cap = self.ring_capacity
        n = 0
        for head, cur in zip(self._heads, self._cursors):
            ahead = head[0] - cur[0]
            if ahead > 0:
                n += ahead if ahead < cap else cap
        return n

    # ------------------------------------------------------------- follow
    def follow(
        self, batch: int = 65536, idle: float = 0.001, heartbeat: Optional[float] = None
    ) -> Iterator[Union[np.ndarray, "Lapped"]]:
        """Iterate over event batches as the writer publishes them, from this
        reader's cursor (:meth:`seek` first: ``"now"`` or ``"oldest"``).

        Yields a non-empty :data:`EVENT_DTYPE` array per poll (at most `batch`
        events), or:

        * a :class:`Lapped` marker, just before the first batch after the writer
          overwrote events this reader had not read (``lost`` of them): state
          built from events is incomplete, rebuild it from :meth:`book` /
          :meth:`copy_books`;
        * an empty array when `heartbeat` seconds pass without events (only
          with `heartbeat` set), so that a loop can check a clock or stop.

        While events keep coming it polls again at once, never sleeping: only
        once the stream has gone quiet (no event for 250 us and 100 polls in a
        row) does it sleep, backing off from 50 us to `idle` seconds.  It ends once the writer has finished or stopped (asked to stop
        part-way: :attr:`state` then says ``"stopped"``, so a caller can tell
        an interrupted run from a complete one) and every event is read; it raises
        :class:`WriterDied` once the events left are read if the writer process
        died mid-run (a replay killed: its books are frozen, do not trade on
        them).  Breaking out of the loop is always fine."""
        for kind, value in self._follow_steps(batch, idle, heartbeat):
            if kind == "batch":
                yield value
            elif kind == "sleep":
                time.sleep(value)

    async def follow_async(
        self, batch: int = 65536, idle: float = 0.001, heartbeat: Optional[float] = None
    ) -> AsyncIterator[Union[np.ndarray, "Lapped"]]:
        """:meth:`follow` for asyncio: ``async for batch in seg.follow_async():``.

        No thread: each poll is a short non-blocking call.  While the stream is
        busy it yields to the event loop between polls (``asyncio.sleep(0)``)
        instead of sleeping; once it has gone quiet it awaits ``asyncio.sleep``
        (backing off to `idle`), so the event loop runs other tasks meanwhile;
        after every batch it yields to the loop once, so a busy feed does not
        starve them either."""
        for kind, value in self._follow_steps(batch, idle, heartbeat):
            if kind == "batch":
                yield value
                await asyncio.sleep(0)
            elif kind == "sleep":
                await asyncio.sleep(value)
            else:  # "poll": busy, poll again as soon as the other tasks had their turn
                await asyncio.sleep(0)

    def _follow_steps(self, batch: int, idle: float, heartbeat: Optional[float]) -> Iterator[Tuple[str, Any]]:
        """The follow loop as steps: ("batch", array), ("sleep", seconds), or
        ("poll", None): nothing new yet but the stream is busy, poll again
        without sleeping (follow_async lets other tasks run first)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not idle > 0:
            raise ValueError("idle must be a positive number of seconds")
        delay = min(50e-6, idle)
        last_event = last_seen = time.monotonic()  # last batch or heartbeat; last event
        empty_polls = 0  # in a row, since the last event
        next_check = 0.0
        while True:
            before = self.lapped
            ev = self.events(batch)
            if len(ev):
                if self.lapped > before:
                    yield "batch", Lapped(self.lapped - before, self.lapped)
                yield "batch", ev
                delay = min(50e-6, idle)
                last_event = last_seen = time.monotonic()
                empty_polls = 0
                continue
            empty_polls += 1
            if self.lapped > before:  # lost events and nothing left after them
                yield "batch", Lapped(self.lapped - before, self.lapped)
            now = time.monotonic()
            st = STATES.get(int(self._header().state), "unknown")
            if st in ("finished", "stopped"):  # over: no event will come after those left
                if not self._available():
                    return
                continue
            if now >= next_check:  # the liveness check reads /proc: a few times a second
                next_check = now + 0.25
                if self.writer_alive is False and not self._available():
                    raise WriterDied(
                        "the writer of segment %r (pid %d) died while %s: its books are frozen "
                        "where it stopped" % (self.name or "(in-process)", self.writer_pid, st)
                    )
            if heartbeat is not None and now - last_event >= heartbeat:
                last_event = now
                yield "batch", np.empty(0, dtype=EVENT_DTYPE)
                continue
            if empty_polls < _SPIN_POLLS or now - last_seen < _SPIN_S:
                yield "poll", None  # busy: the next event is likely microseconds away
                continue
            yield "sleep", delay
            delay = min(delay * 2, idle)

    def to_pandas(self, events: np.ndarray, prices: str = "int", date: Optional[str] = None) -> Any:
        """:func:`to_pandas` with this segment's symbols and venues."""
        return to_pandas(events, self, prices=prices, date=date)

    @property
    def cursor(self) -> int:
        return sum(int(c[0]) for c in self._cursors)

    # ------------------------------------------------------------ counters
    def counters(self) -> dict:
        """The writer's counters, all lanes added up (see core.merge_stats)."""
        base = self._mapped()
        parts = []
        for lane in range(self.n_lanes):
            st = ffi.new("fh_stats_t *")
            rc = lib.fh_shm_read_counters(base, lane, st, MAX_SPINS)
            if rc != 0:
                raise ShmError(_busy(rc, "counters"))
            parts.append(stats_to_dict(st))
        d = merge_stats(parts)
        d["counters_updated_ns"] = int(self._header().counters_updated_ns)
        d["lanes"] = self.n_lanes
        return d

    def close(self) -> None:
        """Unmap the segment (an attached one; a replay's own stays its replay's).
        Every later read raises ShmError; calling it again does nothing."""
        if self._base is None:
            return
        base, self._base, self._hdr = self._base, None, None
        if self._fd_close is not None:
            self._fd, fin, self._fd_close = None, self._fd_close, None
            fin()
        if isinstance(self._buf, mmap.mmap):
            ffi.release(base)  # the buffer export, so that the mapping can go
            try:
                self._buf.close()
            except BufferError:  # numpy views still alive: the OS unmaps at exit
                pass
        self._owner = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._base is None

    def __enter__(self) -> "Segment":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _closed_error(self) -> ShmError:
        return ShmError("segment %r is closed" % (self.name or "(in-process)",))

    def _mapped(self) -> Any:
        """The mapping's base pointer, or ShmError once closed (never a NULL to C)."""
        if self._base is None:
            raise self._closed_error()
        return self._base

    def _header(self) -> Any:
        if self._hdr is None:
            raise self._closed_error()
        return self._hdr

    def __repr__(self) -> str:
        if self._base is None:
            return "<Segment %r closed>" % (self.name,)
        return "<Segment %r %s depth=%d slots=%d lanes=%d>" % (
            self.name,
            self.state,
            self.depth,
            self.n_slots - 1,
            self.n_lanes,
        )
