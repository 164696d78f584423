"""Read books, events and counters that a replay (or engine) publishes in shared memory.

    from feedhandler.shm import attach
    seg = attach("books")                 # /dev/shm/books, read-only, from any process
    snap = seg.book("AAPL")               # consistent top-N snapshot (the seqlock loop runs in C)
    snap.bids, snap.asks                  # (price, shares, orders) int64 numpy arrays, best first
    everything = seg.snapshot_all()       # one structured array, a consistent copy of every slot
    df = seg.snapshot_all(df=True)        # the same as a pandas DataFrame (pandas installed)
    for batch in seg.follow(): ...        # event batches as they come (Lapped markers, ends when finished/stopped)
    ev = seg.events()                     # or poll: new events since the last call
    seg.close()                           # or: with attach("books") as seg: ...

Units: every price is an integer in ITCH Price(4) units (dollars x 10,000;
:func:`price_float` / :func:`format_price` for display), every price and
quantity a reader gets is a signed 64-bit integer (numpy ``int64``), so that
arithmetic on them never wraps; ``*_ts`` are u64 nanoseconds (``exch_ts``/
``last_trade_ts``: since midnight, exchange time; ``rx_ts``/``publish_ts``:
since the epoch).  The segment itself keeps the compact unsigned layout of
csrc/fh_api.h (:func:`slot_dtype`, ``SHM_EVENT_DTYPE``); the C readers widen
while they copy (:func:`book_dtype`, ``EVENT_DTYPE``).  tests/test_layout.py
asserts every offset of both against the C structs.  docs/python.md is the guide.
"""
from __future__ import annotations

import asyncio
import mmap
import os
import stat
import sys
import time
import weakref
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .core import errbuf, ffi, lib, merge_stats, stats_to_dict
from .errors import ShmError, WriterDied, c_error

__all__ = ["attach", "Segment", "Snapshot", "ShmError", "WriterDied", "Lapped", "slot_dtype", "book_dtype",
           "EVENT_DTYPE", "SHM_EVENT_DTYPE", "EVENT_NAMES", "STATES", "PRICE_SCALE", "price_float", "format_price",
           "text_of", "to_pandas",
           "FLAG_STALE", "FLAG_DROPPED", "FLAG_OP_HALT", "FLAG_DIRECTORY", "FLAG_SILENT",
           "EV_BBO", "EV_TRADE", "EV_STATE", "EV_STALE", "EV_SYSTEM", "EV_SILENT", "EV_SNAPSHOT", "EV_CBBO",
           "SNAPSHOT_START", "SNAPSHOT_DONE", "SNAPSHOT_FAILED", "SNAPSHOT_PHASES"]

SLOT_FIXED = lib.FH_SHM_SLOT_FIXED
MAX_SPINS = 100_000

#: Fixed part of an instrument slot (fh_shm_slot_t); level arrays follow.
SLOT_FIELDS = [
    ("seq", "<u8", 0), ("exch_ts", "<u8", 8), ("rx_ts", "<u8", 16), ("publish_ts", "<u8", 24),
    ("updates", "<u8", 32), ("last_trade_shares", "<u8", 40), ("last_trade_match", "<u8", 48),
    ("last_trade_ts", "<u8", 56), ("noii_paired_shares", "<u8", 64), ("noii_imbalance_shares", "<u8", 72),
    ("last_trade_price", "<u4", 80), ("round_lot_size", "<u4", 84), ("n_bid", "<u4", 88), ("n_ask", "<u4", 92),
    ("luld_reference_price", "<u4", 96), ("luld_upper_price", "<u4", 100), ("luld_lower_price", "<u4", 104),
    ("noii_near_price", "<u4", 108), ("noii_far_price", "<u4", 112), ("noii_reference_price", "<u4", 116),
    ("locate", "<u2", 120), ("symbol", "S8", 122), ("trading_state", "u1", 130), ("reg_sho_action", "u1", 131),
    ("market_category", "u1", 132), ("noii_imbalance_direction", "u1", 133), ("flags", "u1", 134),
    ("venue", "u1", 135),
]

#: An event as the segment's rings hold it (fh_shm_event_t, 64 bytes).
SHM_EVENT_DTYPE = np.dtype({
    "names": ["seq", "exch_ts", "rx_ts", "publish_ts", "locate", "type", "aux", "price1", "price2", "lane",
              "qty1", "qty2"],
    "formats": ["<u8", "<u8", "<u8", "<u8", "<u2", "u1", "u1", "<u4", "<u4", "<u4", "<u8", "<u8"],
    "offsets": [0, 8, 16, 24, 32, 34, 35, 36, 40, 44, 48, 56],
    "itemsize": lib.FH_SHM_EVENT_SIZE,
})

#: An event as :meth:`Segment.events` returns it (fh_read_event_t): prices and
#: quantities int64, the rest as in the ring.
EVENT_DTYPE = np.dtype({
    "names": ["seq", "exch_ts", "rx_ts", "publish_ts", "price1", "price2", "qty1", "qty2", "locate", "type", "aux",
              "lane"],
    "formats": ["<u8", "<u8", "<u8", "<u8", "<i8", "<i8", "<i8", "<i8", "<u2", "u1", "u1", "<u4"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 66, 67, 68],
    "itemsize": 72,
})

EV_BBO, EV_TRADE, EV_STATE, EV_STALE, EV_SYSTEM, EV_SILENT = (
    lib.FH_EV_BBO, lib.FH_EV_TRADE, lib.FH_EV_STATE, lib.FH_EV_STALE, lib.FH_EV_SYSTEM, lib.FH_EV_SILENT)
EV_SNAPSHOT = lib.FH_EV_SNAPSHOT
#: The consolidated BBO of the event's instrument's symbol moved (a symbol
#: quoted on several venues): price1/qty1 best bid, price2/qty2 best ask,
#: aux = bid venue | ask venue << 4 (0xF: none); venue names: Segment.venues().
EV_CBBO = lib.FH_EV_CBBO
EVENT_NAMES = {EV_BBO: "bbo", EV_TRADE: "trade", EV_STATE: "state", EV_STALE: "stale", EV_SYSTEM: "system",
               EV_SILENT: "silent", EV_SNAPSHOT: "snapshot", EV_CBBO: "cbbo"}
#: EV_SNAPSHOT's aux (locate 0): a stream asked for a snapshot (qty1 = its next
#: sequence), applied one (qty1 = the snapshot's sequence, qty2 = messages), or
#: went on without one (qty1 = its next sequence; its instruments stay STALE).
SNAPSHOT_START, SNAPSHOT_DONE, SNAPSHOT_FAILED = 0, 1, 2
SNAPSHOT_PHASES = {SNAPSHOT_START: "snapshot_start", SNAPSHOT_DONE: "snapshot_done", SNAPSHOT_FAILED: "snapshot_failed"}
FLAG_STALE, FLAG_DROPPED, FLAG_OP_HALT, FLAG_DIRECTORY, FLAG_SILENT = (
    lib.FH_SLOT_STALE, lib.FH_SLOT_DROPPED, lib.FH_SLOT_OP_HALT, lib.FH_SLOT_DIRECTORY, lib.FH_SLOT_SILENT)
#: The header's state (csrc/fh_api.h enum fh_shm_state; tests/test_layout.py
#: checks the values).  "stopped": the writer was asked to stop part-way
#: (SIGINT, SIGTERM, SIGHUP, Replay.stop): its books and counters are
#: consistent but hold only what it applied before it stopped.
STATES = {0: "starting", 1: "running", 2: "finished", 3: "stopped"}


def _record_dtype(fixed: List[Tuple[str, str, int]], levels: Tuple[Tuple[str, str, int], ...],
                  depth: int) -> np.dtype:
    """A slot record: the `fixed` fields, then for bid and ask each of `levels`
    (name, format, width) as a [depth] array, the whole rounded up to 64 bytes."""
    names, formats, offsets = [], [], []
    for n, f, o in fixed:
        names.append(n); formats.append(f); offsets.append(o)
    off = SLOT_FIXED
    for side in ("bid", "ask"):
        for n, f, w in levels:
            names.append("%s_%s" % (side, n))
            formats.append((f, (depth,)))
            offsets.append(off)
            off += w * depth
    size = (off + 63) & ~63
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def slot_dtype(depth: int) -> np.dtype:
    """The numpy dtype of one slot as the segment stores it (fh_shm_slot_t and
    its level arrays: unsigned, compact).  Readers get :func:`book_dtype`."""
    return _record_dtype(SLOT_FIELDS, (("price", "<u4", 4), ("orders", "<u4", 4), ("shares", "<u8", 8)), depth)


#: The fixed part of a reader's slot record (fh_read_slot_t): every price and
#: quantity int64; timestamps, the sequence and match numbers u64.
BOOK_FIELDS = [
    ("seq", "<u8", 0), ("exch_ts", "<u8", 8), ("rx_ts", "<u8", 16), ("publish_ts", "<u8", 24),
    ("updates", "<i8", 32), ("last_trade_shares", "<i8", 40), ("last_trade_match", "<u8", 48),
    ("last_trade_ts", "<u8", 56), ("noii_paired_shares", "<i8", 64), ("noii_imbalance_shares", "<i8", 72),
    ("last_trade_price", "<i8", 80), ("round_lot_size", "<i8", 88), ("n_bid", "<i8", 96), ("n_ask", "<i8", 104),
    ("luld_reference_price", "<i8", 112), ("luld_upper_price", "<i8", 120), ("luld_lower_price", "<i8", 128),
    ("noii_near_price", "<i8", 136), ("noii_far_price", "<i8", 144), ("noii_reference_price", "<i8", 152),
    ("locate", "<u2", 160), ("symbol", "S8", 162), ("trading_state", "u1", 170), ("reg_sho_action", "u1", 171),
    ("market_category", "u1", 172), ("noii_imbalance_direction", "u1", 173), ("flags", "u1", 174),
    ("venue", "u1", 175),
]


def book_dtype(depth: int) -> np.dtype:
    """The numpy dtype of one slot as a reader gets it (:meth:`Segment.book`,
    :meth:`Segment.snapshot_all`): the fixed part (BOOK_FIELDS), then
    ``bid_price``, ``bid_orders``, ``bid_shares``, ``ask_price``, ``ask_orders``,
    ``ask_shares``, each ``int64[depth]``, best level first, zero past
    ``n_bid``/``n_ask``."""
    return _record_dtype(BOOK_FIELDS, (("price", "<i8", 8), ("orders", "<i8", 8), ("shares", "<i8", 8)), depth)


PRICE_SCALE = 10_000
"""Price(4): an integer price is dollars x 10,000."""


def price_float(price: Any) -> Any:
    """Price(4) integers (a scalar or an array) as float dollars, for display
    and plotting: ``price_float(1234500) == 123.45``.  Compute with the integers
    (exact); convert at the edge."""
    if isinstance(price, np.ndarray):
        return price.astype(np.float64) / PRICE_SCALE
    return int(price) / PRICE_SCALE


def format_price(price: int) -> str:
    """One Price(4) integer as an exact decimal string: ``format_price(1234500) == "123.4500"``."""
    p = int(price)
    sign = "-" if p < 0 else ""
    whole, frac = divmod(abs(p), PRICE_SCALE)
    return "%s%d.%04d" % (sign, whole, frac)


#: Bytes shown as themselves in a symbol or venue name: printable ASCII except
#: the backslash (escaped, so that an escape is never ambiguous).
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {0x5C}


def text_of(raw: bytes) -> str:
    """Symbol or venue bytes from the segment as safe text: trailing spaces and
    NULs dropped, every other byte outside printable ASCII (and the backslash)
    written as ``\\xNN``, so that a hostile feed's control bytes (an ESC
    sequence in a stock directory) never reach a terminal raw."""
    raw = bytes(raw).rstrip(b" \0")
    if all(b in _PRINTABLE for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if b in _PRINTABLE else "\\x%02x" % b for b in raw)


def _busy(rc: int, what: str) -> str:
    if rc == -1:
        return "%s left mid-update: the writer died while updating it" % what
    return "%s kept changing faster than it could be copied; try again" % what


class Snapshot:
    """One consistent copy of an instrument's slot."""

    __slots__ = ("rec",)

    def __init__(self, rec: np.ndarray) -> None:
        self.rec = rec

    def __getattr__(self, name: str) -> Any:
        try:
            return self.rec[name]
        except (KeyError, ValueError):
            raise AttributeError(name)

    @property
    def symbol(self) -> str:
        return text_of(self.rec["symbol"])

    @property
    def bids(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prices, shares, orders) of the bid levels, best first."""
        n = int(self.rec["n_bid"])
        return self.rec["bid_price"][:n], self.rec["bid_shares"][:n], self.rec["bid_orders"][:n]

    @property
    def asks(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prices, shares, orders) of the ask levels, best first."""
        n = int(self.rec["n_ask"])
        return self.rec["ask_price"][:n], self.rec["ask_shares"][:n], self.rec["ask_orders"][:n]

    @property
    def stale(self) -> bool:
        return bool(self.rec["flags"] & FLAG_STALE)

    def __repr__(self) -> str:
        b, a = self.bids, self.asks
        side = lambda s: "%s x %d" % (format_price(s[0][0]), s[1][0]) if len(s[0]) else "-"
        return "<Snapshot %s locate=%d bid %s ask %s%s>" % (
            self.symbol, self.rec["locate"], side(b), side(a), " STALE" if self.stale else "")


def _reusable(pool: List[np.ndarray], n: int, dtype: np.dtype, keep: int) -> np.ndarray:
    """An array of `n` records for a reader to fill, from `pool` (at most
    `keep` buffers) when one is free.  What a reader returns is a view of such
    a buffer, so a buffer is reused only once nothing outside the pool refers
    to it (no array returned from it, and no view of one, is alive): a loop
    that drops each result before asking for the next reads into the same warm
    memory instead of faulting in fresh pages every call (4.7 MB per 65536
    events, 46 MB per snapshot of 65536 slots), and results a caller keeps are
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


class Lapped:
    """What :meth:`Segment.follow` yields when the writer lapped this reader:
    ``lost`` events (since the previous marker) were overwritten before they
    were read, ``total`` is every event lost so far (``Segment.lapped``).  A
    strategy whose state comes from events resnapshots (:meth:`Segment.book`,
    :meth:`Segment.snapshot_all`) and goes on."""

    __slots__ = ("lost", "total")

    def __init__(self, lost: int, total: int) -> None:
        self.lost = lost
        self.total = total

    def __repr__(self) -> str:
        return "<Lapped lost=%d total=%d>" % (self.lost, self.total)


class Segment:
    """A mapped segment.  Use :func:`attach` (by name, read-only) or
    ``Replay.segment()`` (the replay's own, in-process).

    A context manager: leaving ``with attach(name) as seg:`` calls :meth:`close`,
    which unmaps it from this process (the segment itself stays in /dev/shm).
    After close every read raises :class:`ShmError`."""

    def __init__(self, buf: Any, size: int, owner: Any = None, name: Optional[str] = None) -> None:
        self._fd: Optional[int] = None      # attach()'s descriptor: asks the writer's lock (writer_alive)
        self._fd_close: Any = None
        self._buf = buf                     # keeps the mapping alive
        self._owner = owner                 # keeps an in-process replay alive
        self.name = name
        self._base = ffi.from_buffer("uint8_t[]", buf) if not isinstance(buf, ffi.CData) else buf
        err = errbuf()
        if lib.fh_shm_check(self._base, size, err, len(err)) != 0:
            if not isinstance(buf, ffi.CData):
                ffi.release(self._base)     # so that attach() can unmap it
            raise c_error(ShmError, ffi, err)
        self._hdr = ffi.cast("fh_shm_header_t *", self._base)
        self.depth = int(self._hdr.depth)
        self.n_slots = int(self._hdr.n_slots)
        self.slot_size = int(self._hdr.slot_size)
        self.ring_capacity = int(self._hdr.ring_capacity)
        layout = slot_dtype(self.depth).itemsize
        if layout != self.slot_size:
            raise ShmError("slot size %d does not match this reader's layout (%d)" % (self.slot_size, layout))
        #: What book() and snapshot_all() return (book_dtype(depth)).
        self.dtype = book_dtype(self.depth)
        if self.dtype.itemsize != lib.fh_read_slot_size(self.depth):
            raise ShmError("reader record size %d does not match the C core's (%d)" % (
                self.dtype.itemsize, lib.fh_read_slot_size(self.depth)))
        self.n_lanes = int(self._hdr.n_lanes)
        self._cursors = [ffi.new("uint64_t *", 0) for _ in range(self.n_lanes)]
        self._lost = ffi.new("uint64_t *", 0)
        self.lapped = 0
        self._by_symbol: Dict[str, List[Tuple[int, int]]] = {}
        self._pool: List[np.ndarray] = []     # event buffers events() may reuse (_reusable)
        self._slots_pool: List[np.ndarray] = []   # snapshot_all()'s

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
                    raise KeyError("no instrument %r on venue %r (it is on %s)" % (
                        key, venue, ", ".join(names[v] if v < len(names) else str(v) for v, _ in cands)))
                loc = picked[0]
            elif len(cands) > 1:
                names = self.venues()
                raise KeyError("%r is on several venues (%s): pass venue=" % (
                    key, ", ".join(names[v] if v < len(names) else str(v) for v, _ in cands)))
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
        a = self.snapshot_all()
        named = np.nonzero(a["flags"] & FLAG_DIRECTORY)[0]
        out: Dict[str, List[Tuple[int, int]]] = {}
        for i in named:
            sym = text_of(a["symbol"][i])
            out.setdefault(sym, []).append((int(a["venue"][i]), int(i)))
        return out

    def book(self, key: Union[int, str], out: Optional[np.ndarray] = None, venue: Optional[str] = None) -> Snapshot:
        """Consistent snapshot of one instrument, by symbol or instrument id
        (ITCH stock locate).  A symbol held on several venues needs ``venue``
        ("XNAS", "BATS", ...: see :meth:`venues`).

        ``out`` (from :meth:`new_buffer`) is reused instead of allocating: the
        snapshot then changes with the next call that reuses it (about 1.5 us
        per snapshot instead of 2.3 us on the 2-vCPU VM of docs/performance.md,
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
        return Snapshot(out)

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
            name = lambda v: names[v] if 0 <= v < len(names) else ("" if v < 0 else str(v))
            per = {name(v): (int(out.v_bid_price[v]), int(out.v_bid_shares[v]), int(out.v_ask_price[v]),
                             int(out.v_ask_shares[v])) for v in range(5) if out.venues >> v & 1}
            return {"symbol": symbol, "bid_price": int(out.bid_price), "bid_shares": int(out.bid_shares),
                    "bid_venue": name(out.bid_venue), "ask_price": int(out.ask_price),
                    "ask_shares": int(out.ask_shares), "ask_venue": name(out.ask_venue), "venues": per}
        snap = self.book(symbol)
        v = int(snap.rec["venue"])
        vname = names[v] if v < len(names) else str(v)
        (bp, bs, _), (ap, as_, _) = snap.bids, snap.asks
        b = (int(bp[0]), int(bs[0])) if len(bp) else (0, 0)
        a = (int(ap[0]), int(as_[0])) if len(ap) else (0, 0)
        return {"symbol": symbol, "bid_price": b[0], "bid_shares": b[1], "bid_venue": vname if b[0] else "",
                "ask_price": a[0], "ask_shares": a[1], "ask_venue": vname if a[0] else "",
                "venues": {vname: (b[0], b[1], a[0], a[1])}}

    def new_buffer(self) -> np.ndarray:
        """A reusable output buffer for :meth:`book`."""
        # Over a bytearray: numpy allocates a 0-d record of a dtype with
        # subarrays about 3x slower itself (np.empty((), dtype)).
        return np.ndarray((), dtype=self.dtype, buffer=bytearray(self.dtype.itemsize))

    def snapshot_all(self, df: bool = False, prices: str = "int") -> Any:
        """Consistent copies of every slot (each one consistent) as one
        structured array (:meth:`book_dtype`); index = instrument id (ITCH
        stock locate).

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
            rc = lib.fh_shm_read_book(base, n, ffi.from_buffer("uint8_t[]", out[n:n + 1]), MAX_SPINS)
            raise ShmError(_busy(rc, "slot %d" % n))
        if df:
            return _slots_frame(out, self.venues(), prices)
        return out

    def symbols(self, reverse: bool = False) -> dict:
        """locate -> symbol for every instrument the stock directory named
        (symbol -> locate with reverse=True)."""
        a = self.snapshot_all()
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
            return np.empty(0, dtype=EVENT_DTYPE)
        out = self._event_buffer(want)
        n = 0
        for lane, cur in enumerate(self._cursors):
            if n == want:
                break
            got = lib.fh_shm_read_events(base, lane, cur, ffi.from_buffer("fh_read_event_t[]", out[n:]),
                                         want - n, self._lost)
            self.lapped += int(self._lost[0])
            n += got
        return out[:n]

    def _event_buffer(self, want: int) -> np.ndarray:
        """An array of at least `want` events to read into (see _reusable):
        three, as ``for batch in seg.follow()`` keeps the previous batch while
        the next one is read."""
        if want < 4096:
            return np.empty(want, dtype=EVENT_DTYPE)
        return _reusable(self._pool, want, EVENT_DTYPE, 3)

    def _available(self) -> int:
        """Events readable now, all lanes (at most a ring's worth per lane)."""
        h = self._header()
        n = 0
        for i, cur in enumerate(self._cursors):
            ahead = int(h.ring_head[i].head) - int(cur[0])
            if ahead > 0:
                n += ahead if ahead < self.ring_capacity else self.ring_capacity
        return n

    # ------------------------------------------------------------- follow
    def follow(self, batch: int = 65536, idle: float = 0.001,
               heartbeat: Optional[float] = None) -> Iterator[Union[np.ndarray, "Lapped"]]:
        """Iterate over event batches as the writer publishes them, from this
        reader's cursor (:meth:`seek` first: ``"now"`` or ``"oldest"``).

        Yields a non-empty :data:`EVENT_DTYPE` array per poll (at most `batch`
        events), or:

        * a :class:`Lapped` marker, just before the first batch after the writer
          overwrote events this reader had not read (``lost`` of them): state
          built from events is incomplete, rebuild it from :meth:`book` /
          :meth:`snapshot_all`;
        * an empty array when `heartbeat` seconds pass without events (only
          with `heartbeat` set), so that a loop can check a clock or stop.

        When nothing is new it sleeps, backing off from 50 us to `idle` seconds.
        It ends once the writer has finished or stopped (asked to stop
        part-way: :attr:`state` then says ``"stopped"``, so a caller can tell
        an interrupted run from a complete one) and every event is read; it raises
        :class:`WriterDied` once the events left are read if the writer process
        died mid-run (a replay killed: its books are frozen, do not trade on
        them).  Breaking out of the loop is always fine."""
        for kind, value in self._follow_steps(batch, idle, heartbeat):
            if kind == "sleep":
                time.sleep(value)
            else:
                yield value

    async def follow_async(self, batch: int = 65536, idle: float = 0.001,
                           heartbeat: Optional[float] = None) -> AsyncIterator[Union[np.ndarray, "Lapped"]]:
        """:meth:`follow` for asyncio: ``async for batch in seg.follow_async():``.

        No thread: each poll is a short non-blocking call, and when nothing is
        new it awaits ``asyncio.sleep`` (backing off to `idle`), so the event
        loop runs other tasks meanwhile; after every batch it yields to the
        loop once, so a busy feed does not starve them either."""
        for kind, value in self._follow_steps(batch, idle, heartbeat):
            if kind == "sleep":
                await asyncio.sleep(value)
            else:
                yield value
                await asyncio.sleep(0)

    def _follow_steps(self, batch: int, idle: float, heartbeat: Optional[float]) -> Iterator[Tuple[str, Any]]:
        """The follow loop as steps: ("batch", array), ("sleep", seconds)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not idle > 0:
            raise ValueError("idle must be a positive number of seconds")
        delay = min(50e-6, idle)
        last_event = time.monotonic()
        next_check = 0.0
        while True:
            before = self.lapped
            ev = self.events(batch)
            if len(ev):
                if self.lapped > before:
                    yield "batch", Lapped(self.lapped - before, self.lapped)
                yield "batch", ev
                delay = min(50e-6, idle)
                last_event = time.monotonic()
                continue
            if self.lapped > before:            # lost events and nothing left after them
                yield "batch", Lapped(self.lapped - before, self.lapped)
            now = time.monotonic()
            st = STATES.get(int(self._header().state), "unknown")
            if st in ("finished", "stopped"):   # over: no event will come after those left
                if not self._available():
                    return
                continue
            if now >= next_check:               # the liveness check reads /proc: a few times a second
                next_check = now + 0.25
                if self.writer_alive is False and not self._available():
                    raise WriterDied("the writer of segment %r (pid %d) died while %s: its books are frozen "
                                     "where it stopped" % (self.name or "(in-process)", self.writer_pid, st))
            if heartbeat is not None and now - last_event >= heartbeat:
                last_event = now
                yield "batch", np.empty(0, dtype=EVENT_DTYPE)
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
            ffi.release(base)            # the buffer export, so that the mapping can go
            try:
                self._buf.close()
            except BufferError:   # numpy views still alive: the OS unmaps at exit
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
        return "<Segment %r %s depth=%d slots=%d lanes=%d>" % (self.name, self.state, self.depth, self.n_slots - 1,
                                                               self.n_lanes)


# ------------------------------------------------------------------ pandas
def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas, which is not installed: pip install 'feedhandler[pandas]' "
                          "(or pip install pandas).  Everything else (book(), snapshot_all(), events(), "
                          "follow()) works on numpy alone.") from None
    return pandas


def _price_columns(prices: str) -> Any:
    """How a DataFrame's price columns are made: as they are (``"int"``,
    Price(4)) or as float dollars (``"float"``, :func:`price_float`)."""
    if prices == "int":
        return lambda x: x
    if prices == "float":
        return price_float
    raise ValueError("prices must be 'int' (Price(4) integers) or 'float' (dollars), not %r" % (prices,))


def _trade_date_ns(exch_ts: np.ndarray, rx_ts: np.ndarray) -> int:
    """Midnight of the trading day, in ns since the epoch (UTC midnight of that
    date): rx_ts - exch_ts is the epoch time of the exchange's midnight, which
    for US venues falls on the trading date (04:00 or 05:00 UTC).  0 when no
    record has both clocks."""
    ok = (exch_ts > 0) & (rx_ts > exch_ts)
    if not ok.any():
        return 0
    day = 86_400 * 10 ** 9
    mid = np.median((rx_ts[ok] - exch_ts[ok]).astype(np.int64) // day)
    return int(mid) * day


def _times(pd: Any, ns: np.ndarray, base: int = 0) -> Any:
    """ns (0 = unknown) as datetime64[ns], NaT where unknown."""
    v = ns.astype(np.int64)
    t = (v + base).astype("datetime64[ns]")
    t[v == 0] = np.datetime64("NaT")
    return pd.Series(t).values


def _venue_names(venues: List[str], idx: np.ndarray) -> List[str]:
    return [venues[v] if v < len(venues) else str(v) for v in idx.tolist()]


def _slots_frame(a: np.ndarray, venues: List[str], prices: str) -> Any:
    pd = _pandas()
    px = _price_columns(prices)
    keep = np.nonzero((a["flags"] & FLAG_DIRECTORY).astype(bool) | (a["updates"] > 0))[0]
    keep = keep[keep > 0]
    r = a[keep]
    has_bid, has_ask = r["n_bid"] > 0, r["n_ask"] > 0
    date = _trade_date_ns(r["exch_ts"], r["rx_ts"])
    cols = {
        "symbol": [text_of(x) for x in r["symbol"]],
        "venue": pd.Categorical(_venue_names(venues, r["venue"]), categories=list(dict.fromkeys(venues))),
        "bid_price": px(np.where(has_bid, r["bid_price"][:, 0], 0)),
        "bid_shares": np.where(has_bid, r["bid_shares"][:, 0], 0),
        "bid_orders": np.where(has_bid, r["bid_orders"][:, 0], 0),
        "ask_price": px(np.where(has_ask, r["ask_price"][:, 0], 0)),
        "ask_shares": np.where(has_ask, r["ask_shares"][:, 0], 0),
        "ask_orders": np.where(has_ask, r["ask_orders"][:, 0], 0),
        "n_bid": r["n_bid"], "n_ask": r["n_ask"],
        "last_trade_price": px(r["last_trade_price"]), "last_trade_shares": r["last_trade_shares"],
        "trading_state": [chr(c) if c else "" for c in r["trading_state"].tolist()],
        "stale": (r["flags"] & FLAG_STALE).astype(bool),
        "updates": r["updates"],
        "exch_time": _times(pd, r["exch_ts"], date),
        "rx_time": _times(pd, r["rx_ts"]),
    }
    return pd.DataFrame(cols, index=pd.Index(keep, name="locate"))


def to_pandas(events: np.ndarray, segment: Optional["Segment"] = None, prices: str = "int",
              date: Optional[str] = None) -> Any:
    """Events (from :meth:`Segment.events` / :meth:`Segment.follow`) as a pandas
    DataFrame, one row per event, in the array's order:

    ``exch_time`` (datetime64[ns]: the trading date + ``exch_ts``, exchange-local
    wall clock), ``rx_time`` and ``publish_time`` (datetime64[ns], UTC), ``type``
    (categorical: bbo, trade, ...), ``locate``, ``symbol`` and ``venue`` (with
    `segment`; empty without), ``aux``, ``price1``, ``price2`` (Price(4) int64,
    or float dollars with ``prices="float"``), ``qty1``, ``qty2``, ``lane``,
    ``seq``.  The trading date comes from the receive clock (see
    docs/python.md); pass ``date="YYYY-MM-DD"`` to set it.  Needs pandas
    (``pip install 'feedhandler[pandas]'``)."""
    pd = _pandas()
    px = _price_columns(prices)
    ev = np.asarray(events)
    if ev.dtype != EVENT_DTYPE:
        raise TypeError("to_pandas takes events from Segment.events() / follow() (EVENT_DTYPE), not %s" % (ev.dtype,))
    if date is not None:
        base = int(np.datetime64(date, "D").astype("datetime64[ns]").astype(np.int64))
    else:
        base = _trade_date_ns(ev["exch_ts"], ev["rx_ts"])
    names = [EVENT_NAMES.get(t, str(t)) for t in sorted(EVENT_NAMES)]
    cols: Dict[str, Any] = {
        "exch_time": _times(pd, ev["exch_ts"], base),
        "rx_time": _times(pd, ev["rx_ts"]),
        "publish_time": _times(pd, ev["publish_ts"]),
        "type": pd.Categorical([EVENT_NAMES.get(t, str(t)) for t in ev["type"].tolist()], categories=names),
        "locate": ev["locate"],
    }
    if segment is not None:
        slots = segment.snapshot_all()
        venues = segment.venues()
        sym = np.array([text_of(x) for x in slots["symbol"]], dtype=object)
        loc = ev["locate"].astype(np.int64)
        loc = np.where(loc < len(slots), loc, 0)
        cols["symbol"] = sym[loc]
        vn = np.array(_venue_names(venues, slots["venue"]), dtype=object)
        cols["venue"] = pd.Categorical(np.where(loc > 0, vn[loc], ""),
                                       categories=list(dict.fromkeys(venues + [""])))
    else:
        cols["symbol"] = np.full(len(ev), "", dtype=object)
        cols["venue"] = np.full(len(ev), "", dtype=object)
    cols.update({"aux": ev["aux"], "price1": px(ev["price1"]), "price2": px(ev["price2"]), "qty1": ev["qty1"],
                 "qty2": ev["qty2"], "lane": ev["lane"], "seq": ev["seq"]})
    return pd.DataFrame(cols)


def attach(name: str, wait: float = 0, owner: Union[int, str, None] = None) -> Segment:
    """Map /dev/shm/NAME read-only and check its layout.  ``with attach(name) as seg:``
    unmaps it on exit.

    ``wait=S`` waits up to S seconds for the segment to appear (a strategy
    started before its feed handler), retrying every 50 ms; then the last
    error is raised.

    Anyone can put something at a name in /dev/shm, so what is there is
    checked before it is read: it is opened without following a symbolic link
    and without blocking (a FIFO at the name cannot hang the reader), and must
    be a regular file owned by this user -- or by ``owner`` (a uid or user
    name: the account a feed handler publishing for other users runs as, its
    ``shm_mode`` letting them read) -- whose header is a feedhandler
    segment's.  Anything else raises :class:`ShmError` naming it.  Nothing
    here ever blocks on, locks or changes the writer's segment."""
    if not name or "/" in name or name in (".", ".."):
        raise ShmError("bad segment name %r" % (name,))
    uid = _owner_uid(owner)
    deadline = time.monotonic() + wait
    while True:
        try:
            return _attach(name, uid)
        except ShmError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _owner_uid(owner: Union[int, str, None]) -> int:
    if owner is None:
        return os.geteuid()
    if isinstance(owner, int) and not isinstance(owner, bool) and owner >= 0:
        return owner
    if isinstance(owner, str):
        import pwd
        try:
            return pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise ShmError("owner %r: no such user" % (owner,)) from None
    raise ShmError("owner must be a uid (int >= 0) or a user name, not %r" % (owner,))


def _user(uid: int) -> str:
    import pwd
    try:
        return "uid %d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return "uid %d" % uid


def _kind(mode: int) -> str:
    """What a non-regular file at a segment's name is, for a message."""
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


def _attach(name: str, uid: int) -> Segment:
    path = os.path.join("/dev/shm", name)
    try:
        # O_NOFOLLOW: a symbolic link is refused, never followed; O_NONBLOCK: a
        # FIFO (or a device) at the name cannot hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ShmError("no shared-memory segment %r (is a replay running with --shm %s?)" % (name, name))
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise ShmError("%s is %s, not a feedhandler segment: not attached" % (path, _kind(mode)))
        raise ShmError("cannot open %s: %s" % (path, exc.strerror))
    mm = None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ShmError("%s is %s, not a feedhandler segment: not attached" % (path, _kind(st.st_mode)))
        if st.st_uid != uid:
            raise ShmError("%s is owned by %s, not by %s: not attached (anyone can put a file in /dev/shm; "
                           "attach(name, owner=...) trusts another user's segments)"
                           % (path, _user(st.st_uid), "this user, " + _user(uid) if uid == os.geteuid()
                              else _user(uid)))
        size = st.st_size
        if size == 0:
            raise ShmError("segment %r is empty (still being created?)" % name)
        # The header checked before anything is mapped: a foreign file (a
        # 100 GB sparse one) is refused without mapping it.
        head = os.pread(fd, lib.FH_SHM_HEADER_SIZE, 0)
        err = errbuf()
        hbuf = ffi.from_buffer("uint8_t[]", head)
        if lib.fh_shm_check(hbuf, size if len(head) == lib.FH_SHM_HEADER_SIZE else len(head), err, len(err)) != 0:
            raise ShmError("%s: %s" % (path, ffi.string(err).decode(errors="replace")))
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED)
        seg = Segment(mm, size, name=name)
    except BaseException:
        os.close(fd)
        if mm is not None:
            try:
                mm.close()
            except BufferError:       # the failed Segment's buffer export: the OS unmaps at exit
                pass
        raise
    seg._hold_fd(fd)
    return seg
