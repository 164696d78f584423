"""pandas DataFrames of what a reader copies: :func:`to_pandas` (events) and
the book frame of ``Segment.copy_books(df=True)``.  DataFrames are for looking,
not for the hot loop; pandas is an optional extra, imported on first use
(``pip install 'feedhandler[pandas]'``), and everything else works without it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from .layout import EVENT_DTYPE, EVENT_NAMES, FLAG_DIRECTORY, FLAG_STALE
from .units import price_float, text_of

if TYPE_CHECKING:  # pragma: no cover
    from .segment import Segment

__all__ = ["to_pandas"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "DataFrames need pandas, which is not installed: pip install 'feedhandler[pandas]' "
            "(or pip install pandas).  Everything else (book(), copy_books(), events(), "
            "follow()) works on numpy alone."
        ) from None
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
    day = 86_400 * 10**9
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
        "n_bid": r["n_bid"],
        "n_ask": r["n_ask"],
        "last_trade_price": px(r["last_trade_price"]),
        "last_trade_shares": r["last_trade_shares"],
        "trading_state": [chr(c) if c else "" for c in r["trading_state"].tolist()],
        "stale": (r["flags"] & FLAG_STALE).astype(bool),
        "updates": r["updates"],
        "exch_time": _times(pd, r["exch_ts"], date),
        "rx_time": _times(pd, r["rx_ts"]),
    }
    return pd.DataFrame(cols, index=pd.Index(keep, name="locate"))


def to_pandas(
    events: np.ndarray, segment: Optional["Segment"] = None, prices: str = "int", date: Optional[str] = None
) -> Any:
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
        slots = segment.copy_books()
        venues = segment.venues()
        sym = np.array([text_of(x) for x in slots["symbol"]], dtype=object)
        loc = ev["locate"].astype(np.int64)
        loc = np.where(loc < len(slots), loc, 0)
        cols["symbol"] = sym[loc]
        vn = np.array(_venue_names(venues, slots["venue"]), dtype=object)
        cols["venue"] = pd.Categorical(np.where(loc > 0, vn[loc], ""), categories=list(dict.fromkeys(venues + [""])))
    else:
        cols["symbol"] = np.full(len(ev), "", dtype=object)
        cols["venue"] = np.full(len(ev), "", dtype=object)
    cols.update(
        {
            "aux": ev["aux"],
            "price1": px(ev["price1"]),
            "price2": px(ev["price2"]),
            "qty1": ev["qty1"],
            "qty2": ev["qty2"],
            "lane": ev["lane"],
            "seq": ev["seq"],
        }
    )
    return pd.DataFrame(cols)
