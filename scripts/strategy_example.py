#!/usr/bin/env python3
"""A small strategy that follows a running replay (or DPDK run) from another process.

The pattern to copy: attach to the segment by name, take events in batches with
``seg.follow()`` (numpy arrays, never one Python call per event), keep
per-instrument state in arrays indexed by instrument id, take consistent book
copies only when a decision needs depth, and handle what a real feed does to
you: being lapped (you fell behind and lost events: ``follow`` yields a
``Lapped`` marker, and state built from events must be rebuilt) and stale books
(a gap upstream: never trade on them).

Signal: the top-of-book imbalance (bid size - ask size) / (bid size + ask size)
of each BBO event, in [-1, 1] (0 while a side is empty).  When an instrument's
opinion changes to BUY (imbalance above +THRESHOLD) or SELL (below -THRESHOLD),
the strategy confirms it with the top-5 depth imbalance of a copy of the
book taken then (it must have the same sign) and prints a signal line.  On a
live feed the copy is the book as the decision is made; processing a
finished segment's history (--from-start after the replay ended), it is the
final book.

    feedhandler replay pcaps/sample.pcap --shm demo &
    python scripts/strategy_example.py --shm demo --from-start
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from feedhandler.shm import EV_BBO, EV_STALE, EV_TRADE, FLAG_STALE, Lapped, ShmError, attach, format_price


def imbalance(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """(bid - ask) / (bid + ask), 0 where a side is empty.  Quantities are int64:
    the subtraction never wraps."""
    bid = np.asarray(bid, dtype=np.int64)
    ask = np.asarray(ask, dtype=np.int64)
    both = (bid > 0) & (ask > 0)
    tot = np.where(both, bid + ask, 1)
    return np.where(both, (bid - ask) / tot, 0.0)


def depth_imbalance(book, levels: int = 5) -> float:
    """Imbalance of the shares on the top `levels` levels of each side."""
    return float(imbalance(book.bids[1][:levels].sum(), book.asks[1][:levels].sum()))


def opinion_changes(loc: np.ndarray, sig: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Which events change their instrument's opinion, taking the events of a
    batch in order per instrument (an instrument may have several in one
    batch); updates `side` (last opinion per instrument) to the batch's end."""
    order = np.argsort(loc, kind="stable")  # per instrument, in event order
    l, s = loc[order], sig[order]
    first = np.ones(len(l), dtype=bool)
    first[1:] = l[1:] != l[:-1]
    prev = np.empty_like(s)
    prev[1:] = s[:-1]
    prev[first] = side[l[first]]
    last = np.ones(len(l), dtype=bool)
    last[:-1] = l[1:] != l[:-1]
    side[l[last]] = s[last]
    changed = np.empty(len(l), dtype=bool)
    changed[order] = s != prev
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shm", required=True, help="segment name (replay --shm NAME)")
    ap.add_argument("--threshold", type=float, default=0.6, help="|imbalance| that makes a signal (default 0.6)")
    ap.add_argument("--from-start", action="store_true", help="process the events already in the ring too")
    ap.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop after this many seconds (default: when the writer finishes and every event is read)",
    )
    ap.add_argument("--wait", type=float, default=30, help="seconds to wait for the segment to appear")
    ap.add_argument("--max-signals", type=int, default=20, help="signal lines to print (all are counted)")
    args = ap.parse_args(argv)
    if not 0 < args.threshold < 1:
        ap.error("--threshold must be between 0 and 1")

    try:
        seg = attach(args.shm, wait=args.wait)  # started before the replay: wait for it
    except ShmError as exc:
        print("strategy: %s" % exc, file=sys.stderr)
        return 1
    seg.seek("oldest" if args.from_start else "now")
    side = np.zeros(seg.n_slots, dtype=np.int8)  # last opinion per instrument: -1, 0, +1
    stale = np.zeros(seg.n_slots, dtype=bool)  # per instrument, as of the events read
    n_events = n_signals = n_trades = 0
    t0 = time.monotonic()
    try:
        for batch in seg.follow(heartbeat=0.2 if args.duration else None):
            if args.duration and time.monotonic() - t0 > args.duration:
                break
            if isinstance(batch, Lapped):
                # We fell behind: events were lost, per-instrument opinions may be wrong.
                print("strategy: lapped, %d events lost; starting opinions afresh" % batch.lost, file=sys.stderr)
                side[:] = 0
                stale[:] = (seg.copy_books()["flags"] & FLAG_STALE) != 0
                continue
            n_events += len(batch)
            n_trades += int((batch["type"] == EV_TRADE).sum())
            is_bbo = batch["type"] == EV_BBO
            bbo_at = np.nonzero(is_bbo)[0]
            bbo = batch[bbo_at]
            imb = imbalance(bbo["qty1"], bbo["qty2"])
            sig = np.where(imb > args.threshold, 1, np.where(imb < -args.threshold, -1, 0)).astype(np.int8)
            cand = np.nonzero(opinion_changes(bbo["locate"], sig, side) & (sig != 0))[0]
            # STALE events (rare) apply in order with the candidates (few).
            stale_at = np.nonzero(batch["type"] == EV_STALE)[0]
            k = 0
            for i in cand:
                while k < len(stale_at) and stale_at[k] < bbo_at[i]:
                    e = batch[stale_at[k]]
                    stale[e["locate"]] = e["aux"] != 0  # 1 stale, 0 recovered (a snapshot rebuilt it)
                    k += 1
                loc = int(bbo["locate"][i])
                if stale[loc]:
                    continue
                book = seg.book(loc)  # a consistent copy of its top-N, seqlock in C
                deep = depth_imbalance(book)
                if np.sign(deep) != sig[i]:
                    continue
                n_signals += 1
                if n_signals <= args.max_signals:
                    print(
                        "%s %-6s %s  tob %+.2f  depth5 %+.2f  bid %s x %d  ask %s x %d"
                        % (
                            _hms(int(bbo["exch_ts"][i])),
                            book.symbol or loc,
                            "BUY " if sig[i] > 0 else "SELL",
                            imb[i],
                            deep,
                            format_price(bbo["price1"][i]),
                            bbo["qty1"][i],
                            format_price(bbo["price2"][i]),
                            bbo["qty2"][i],
                        )
                    )
            for j in stale_at[k:]:
                stale[batch["locate"][j]] = batch["aux"][j] != 0
    except ShmError as exc:  # WriterDied: the replay was killed; its books are frozen
        print("strategy: %s" % exc, file=sys.stderr)
        return 1
    dt = time.monotonic() - t0
    print(
        "strategy: %d events (%d trades) in %.2f s, %d signals, %d stale instruments"
        % (n_events, n_trades, dt, n_signals, int(stale.sum()))
    )
    return 0


def _hms(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return "%02d:%02d:%02d.%06d" % (s // 3600, s // 60 % 60, s % 60, frac // 1000)


if __name__ == "__main__":
    sys.exit(main())
