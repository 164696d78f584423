"""`feedhandler book`: print an instrument's book from shared memory."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .base import EXIT_INPUT, EXIT_OK, fail
from .output import ladder

NAME = "book"


def register(sub: Any) -> argparse.ArgumentParser:
    b = sub.add_parser(
        NAME,
        help="print an instrument's book from shared memory",
        description="Print the top-of-book ladder of one instrument (by symbol or stock locate) "
        "from a segment published with `replay --shm NAME`; refreshes on a terminal.",
    )
    b.add_argument("symbol", metavar="SYMBOL", help="symbol (e.g. AAPL) or stock locate")
    b.add_argument("--shm", required=True, metavar="NAME", help="segment name under /dev/shm")
    b.add_argument(
        "--venue",
        metavar="MIC",
        default=None,
        help="the venue's book (XNAS, BATS, ...) when the symbol trades on several venues",
    )
    b.add_argument(
        "--bbo",
        action="store_true",
        help="print the consolidated best bid and offer across venues (with each side's venue) "
        "instead of one venue's ladder",
    )
    b.add_argument("--once", action="store_true", help="print once and exit (the default when not a terminal)")
    b.add_argument("--interval", type=float, default=0.5, metavar="S", help="refresh interval (default 0.5 s)")
    b.set_defaults(func=command)
    return b


def command(args: argparse.Namespace) -> int:
    from ..errors import ShmError
    from ..shm import attach

    try:
        seg = attach(args.shm)
    except ShmError as exc:
        return fail(NAME, exc, EXIT_INPUT)
    except OSError as exc:  # not a segment at all (a directory, a device)
        return fail(NAME, "cannot map /dev/shm/%s: %s" % (args.shm, exc.strerror or exc), EXIT_INPUT)
    with seg:
        try:
            key = int(args.symbol) if args.symbol.isdigit() else args.symbol
            if args.bbo:
                print(format_bbo(seg.bbo(args.symbol)))
                return EXIT_OK
            snap = seg.book(key, venue=args.venue)
        except (ShmError, KeyError) as exc:
            return fail(NAME, exc.args[0] if exc.args else exc, EXIT_INPUT)
        try:
            while True:
                out = ladder(snap, seg.depth)
                if args.once or not sys.stdout.isatty():
                    if seg.state == "dead":
                        # A frozen ladder must not pass for a live one.
                        out += (
                            "\nDEAD: the writer (pid %d) of segment %s is gone; this book is frozen where "
                            "it stopped" % (seg.writer_pid, args.shm)
                        )
                    print(out)
                    return EXIT_OK
                sys.stdout.write(
                    "\x1b[H\x1b[2J" + out + "\n(segment %s, writer %s; Ctrl-C to quit)\n" % (seg.state, seg.writer_pid)
                )
                sys.stdout.flush()
                time.sleep(args.interval)
                snap = seg.book(key, venue=args.venue)
        except KeyboardInterrupt:
            return EXIT_OK


def format_bbo(b: dict) -> str:
    """The consolidated BBO as text: prices as exact decimals (Price(4) / 10000)."""
    from ..shm import format_price

    def px(p):
        return format_price(p) if p else "-"

    lines = [
        "%s consolidated  bid %s x %d (%s)   ask %s x %d (%s)"
        % (
            b["symbol"],
            px(b["bid_price"]),
            b["bid_shares"],
            b["bid_venue"] or "-",
            px(b["ask_price"]),
            b["ask_shares"],
            b["ask_venue"] or "-",
        )
    ]
    for v, (bp, bs, ap, as_) in b["venues"].items():
        lines.append("  %-6s bid %12s x %-8d ask %12s x %d" % (v, px(bp), bs, px(ap), as_))
    return "\n".join(lines)
