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
    b = sub.add_parser(NAME, help="print an instrument's book from shared memory",
                       description="Print the top-of-book ladder of one instrument (by symbol or stock locate) "
                                   "from a segment published with `replay --shm NAME`; refreshes on a terminal.")
    b.add_argument("symbol", metavar="SYMBOL", help="symbol (e.g. AAPL) or stock locate")
    b.add_argument("--shm", required=True, metavar="NAME", help="segment name under /dev/shm")
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
    with seg:
        try:
            key = int(args.symbol) if args.symbol.isdigit() else args.symbol
            snap = seg.book(key)
        except (ShmError, KeyError) as exc:
            return fail(NAME, exc.args[0] if exc.args else exc, EXIT_INPUT)
        try:
            while True:
                out = ladder(snap, seg.depth)
                if args.once or not sys.stdout.isatty():
                    print(out)
                    return EXIT_OK
                sys.stdout.write("\x1b[H\x1b[2J" + out + "\n(segment %s, writer %s; Ctrl-C to quit)\n" % (
                    seg.state, seg.writer_pid))
                sys.stdout.flush()
                time.sleep(args.interval)
                snap = seg.book(key)
        except KeyboardInterrupt:
            return EXIT_OK
