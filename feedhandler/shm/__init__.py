"""Read books, events and counters that a replay (or engine) publishes in shared memory.

    from feedhandler.shm import attach
    seg = attach("books")                 # /dev/shm/books, read-only, from any process
    copy = seg.book("AAPL")               # a consistent copy of its top-N book (the seqlock loop runs in C)
    copy.bids, copy.asks                  # (price, shares, orders) int64 numpy arrays, best first
    everything = seg.copy_books()         # one structured array, a consistent copy of every slot
    df = seg.copy_books(df=True)          # the same as a pandas DataFrame (pandas installed)
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

The package, by concern (every name is importable from ``feedhandler.shm``):

* :mod:`.layout`: dtypes, field tables, event types, slot flags, header states;
* :mod:`.units`: Price(4) and symbol bytes for display (``format_price``, ``text_of``);
* :mod:`.records`: :class:`BookCopy` (what ``book()`` returns) and :class:`Lapped`;
* :mod:`.segment`: :class:`Segment`, the reader;
* :mod:`.access`: :func:`attach` and the checks of what is at /dev/shm/NAME;
* :mod:`.frames`: pandas DataFrames (:func:`to_pandas`; pandas is optional).

Words: a *book copy* is a consistent copy of a book from the segment
(:class:`BookCopy`, :meth:`Segment.copy_books`); a *snapshot* is only ever an
exchange's (GLIMPSE, :mod:`feedhandler.glimpse`: the ``EV_SNAPSHOT`` events
and ``SNAPSHOT_*`` phases are its recovery's).  The old names ``Snapshot`` and
``Segment.snapshot_all()`` still work, with a ``DeprecationWarning``, for one
release.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import ShmError, WriterDied
from .access import attach
from .frames import to_pandas
from .layout import (  # noqa: F401  (public before the split, not in __all__)
    BOOK_FIELDS,
    EV_BBO,
    EV_CBBO,
    EV_SILENT,
    EV_SNAPSHOT,
    EV_STALE,
    EV_STATE,
    EV_SYSTEM,
    EV_TRADE,
    EVENT_DTYPE,
    EVENT_NAMES,
    FLAG_DIRECTORY,
    FLAG_DROPPED,
    FLAG_OP_HALT,
    FLAG_SILENT,
    FLAG_STALE,
    SHM_EVENT_DTYPE,
    SLOT_FIELDS,
    SLOT_FIXED,
    SNAPSHOT_DONE,
    SNAPSHOT_FAILED,
    SNAPSHOT_PHASES,
    SNAPSHOT_START,
    STATES,
    book_dtype,
    slot_dtype,
)
from .records import BookCopy, Lapped
from .segment import MAX_SPINS, Segment  # noqa: F401  (MAX_SPINS: as above)
from .units import PRICE_SCALE, format_price, price_float, text_of

__all__ = [
    "attach",
    "Segment",
    "BookCopy",
    "ShmError",
    "WriterDied",
    "Lapped",
    "slot_dtype",
    "book_dtype",
    "EVENT_DTYPE",
    "SHM_EVENT_DTYPE",
    "EVENT_NAMES",
    "STATES",
    "PRICE_SCALE",
    "price_float",
    "format_price",
    "text_of",
    "to_pandas",
    "FLAG_STALE",
    "FLAG_DROPPED",
    "FLAG_OP_HALT",
    "FLAG_DIRECTORY",
    "FLAG_SILENT",
    "EV_BBO",
    "EV_TRADE",
    "EV_STATE",
    "EV_STALE",
    "EV_SYSTEM",
    "EV_SILENT",
    "EV_SNAPSHOT",
    "EV_CBBO",
    "SNAPSHOT_START",
    "SNAPSHOT_DONE",
    "SNAPSHOT_FAILED",
    "SNAPSHOT_PHASES",
]

#: Old name -> new name: the old one works for one release, with a DeprecationWarning.
DEPRECATED = {"Snapshot": "BookCopy"}


def __getattr__(name: str) -> Any:
    new = DEPRECATED.get(name)
    if new is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    warnings.warn(
        "feedhandler.shm.%s is deprecated: it is feedhandler.shm.%s now (the old name goes in the next "
        "release)" % (name, new),
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
