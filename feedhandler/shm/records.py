"""What a reader hands out besides arrays: :class:`BookCopy`, one consistent
copy of an instrument's book (:meth:`Segment.book`), and :class:`Lapped`, the
marker :meth:`Segment.follow` yields when the writer lapped the reader."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .layout import FLAG_STALE
from .units import format_price, text_of

__all__ = ["BookCopy", "Lapped"]


class BookCopy:
    """One consistent copy of an instrument's book (its slot in the segment), as
    :meth:`Segment.book` returns it: ``rec`` is the record (:func:`book_dtype`),
    and every field of it is an attribute (``copy.last_trade_price``,
    ``copy.exch_ts``...).  It was called ``Snapshot``: that name stays, for one
    release, as a deprecated alias (a snapshot is now only an exchange's, GLIMPSE's)."""

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

        def side(s):
            return "%s x %d" % (format_price(s[0][0]), s[1][0]) if len(s[0]) else "-"

        return "<BookCopy %s locate=%d bid %s ask %s%s>" % (
            self.symbol,
            self.rec["locate"],
            side(b),
            side(a),
            " STALE" if self.stale else "",
        )


class Lapped:
    """What :meth:`Segment.follow` yields when the writer lapped this reader:
    ``lost`` events (since the previous marker) were overwritten before they
    were read, ``total`` is every event lost so far (``Segment.lapped``).  A
    strategy whose state comes from events copies the books again
    (:meth:`Segment.book`, :meth:`Segment.copy_books`) and goes on."""

    __slots__ = ("lost", "total")

    def __init__(self, lost: int, total: int) -> None:
        self.lost = lost
        self.total = total

    def __repr__(self) -> str:
        return "<Lapped lost=%d total=%d>" % (self.lost, self.total)
