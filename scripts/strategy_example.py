#!/usr/bin/env python3
"""A small strategy that follows a running replay from another process.

The pattern to copy: attach to the segment by name, poll events in batches
(numpy structured arrays, never one Python call per event), keep per-symbol
state, take consistent book snapshots when a decision needs depth, and handle
the two things a real feed does to you: being lapped (you fell behind: your
state is incomplete, resnapshot) and stale books (a gap upstream: do not trade
on them).

Signal: top-of-book imbalance (bid size - ask size) / (bid size + ask size) from
BBO events; when it crosses +-THRESHOLD the strategy confirms it with the top-5
depth imbalance from a snapshot and prints a signal line.

    feedhandler replay pcaps/sample.pcap --shm demo &
    python scripts/strategy_example.py --shm demo --from-start
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from feedhandler.shm import EV_BBO, EV_STALE, EV_SYSTEM, EV_TRADE, ShmError, attach


def wait_for(name: str, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attach(name)
        except ShmError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def depth_imbalance(snap, levels: int = 5) -> float:
    b = snap.bids[1][:levels].sum()
    a = snap.asks[1][:levels].sum()
    return float(b - a) / float(b + a) if a + b else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shm", required=True, help="segment name (replay --shm NAME)")
    ap.add_argument("--threshold", type=float, default=0.6, help="|imbalance| that makes a signal (default 0.6)")
    ap.add_argument("--from-start", action="store_true", help="process the events already in the ring too")
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: when the "
                                                             "writer finishes and the ring is drained)")
    ap.add_argument("--wait", type=float, default=30, help="seconds to wait for the segment to appear")
    ap.add_argument("--max-signals", type=int, default=20, help="signal lines to print (all are counted)")
    args = ap.parse_args(argv)

    try:
        seg = wait_for(args.shm, args.wait)
    except ShmError as exc:
        print("strategy: %s" % exc, file=sys.stderr)
        return 1
    seg.seek("oldest" if args.from_start else "now")
    symbols = seg.symbols()
    side = np.zeros(seg.n_slots, dtype=np.int8)          # last signal per instrument: -1, 0, +1
    stale = np.zeros(seg.n_slots, dtype=bool)
    n_events = n_signals = n_trades = 0
    t0 = time.monotonic()
    idle_since = None
    while True:
        ev = seg.events(4096)
        if len(ev) == 0:
            if args.duration and time.monotonic() - t0 > args.duration:
                break
            if seg.state == "finished":
                break
            idle_since = idle_since or time.monotonic()
            time.sleep(0.0005 if time.monotonic() - idle_since < 0.1 else 0.01)
            continue
        idle_since = None
        n_events += len(ev)
        if seg.lapped:
            # We fell behind and lost events: our per-symbol state may be wrong.
            print("strategy: lapped, %d events lost; resnapshotting" % seg.lapped, file=sys.stderr)
            side[:] = 0
            seg.lapped = 0
        st_ev = ev[ev["type"] == EV_STALE]
        stale[st_ev["locate"]] = st_ev["aux"] != 0          # 1 stale, 0 recovered (a snapshot rebuilt it)
        n_trades += int((ev["type"] == EV_TRADE).sum())
        if (ev["type"] == EV_SYSTEM).any() and len(symbols) < 1:
            symbols = seg.symbols()
        bbo = ev[ev["type"] == EV_BBO]
        if not len(bbo):
            continue
        bq = bbo["qty1"].astype(np.float64)
        aq = bbo["qty2"].astype(np.float64)
        tot = bq + aq
        imb = np.divide(bq - aq, tot, out=np.zeros_like(tot), where=tot > 0)
        sig = np.where(imb > args.threshold, 1, np.where(imb < -args.threshold, -1, 0)).astype(np.int8)
        for i in np.nonzero(sig != side[bbo["locate"]])[0]:      # only changes of opinion
            loc = int(bbo["locate"][i])
            s = int(sig[i])
            side[loc] = s
            if s == 0 or stale[loc]:
                continue
            snap = seg.book(loc)                                  # consistent top-N, seqlock in C
            deep = depth_imbalance(snap)
            if np.sign(deep) != s:
                continue
            n_signals += 1
            if n_signals <= args.max_signals:
                name = symbols.get(loc) or snap.symbol or str(loc)
                print("%s %-6s %s  tob %+.2f  depth5 %+.2f  bid %d.%04d x %d  ask %d.%04d x %d" % (
                    _hms(int(bbo["exch_ts"][i])), name, "BUY " if s > 0 else "SELL", imb[i], deep,
                    *divmod(int(bbo["price1"][i]), 10000), int(bq[i]), *divmod(int(bbo["price2"][i]), 10000),
                    int(aq[i])))
    dt = time.monotonic() - t0
    print("strategy: %d events (%d trades) in %.2f s, %d signals, %d stale instruments" % (
        n_events, n_trades, dt, n_signals, int(stale.sum())))
    return 0


def _hms(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return "%02d:%02d:%02d.%06d" % (s // 3600, s // 60 % 60, s % 60, frac // 1000)


if __name__ == "__main__":
    sys.exit(main())
