"""`feedhandler stats`: print the counters of a shared-memory segment."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .base import EXIT_INPUT, EXIT_OK, fail
from .output import print_stats

NAME = "stats"

#: Book counters shown under "book exceptions" when not zero.
BOOK_EXCEPTIONS = (
    "unknown_ref",
    "add_replaced",
    "exec_clamped",
    "cancel_clamped",
    "zero_rejected",
    "bad_side",
    "locate_range",
    "order_full",
    "level_full",
)


def register(sub: Any) -> argparse.ArgumentParser:
    s = sub.add_parser(
        NAME,
        help="print the counters of a shared-memory segment",
        description="Print the counters a replay publishes in /dev/shm/NAME: packets, messages "
        "per type, errors by reason, gaps, book counters.",
    )
    s.add_argument("--shm", required=True, metavar="NAME", help="segment name under /dev/shm")
    s.add_argument("--json", action="store_true", help="as JSON")
    s.set_defaults(func=command)
    return s


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
            st = seg.counters()
        except ShmError as exc:
            return fail(NAME, exc, EXIT_INPUT)
        if args.json:
            print(json.dumps(st, indent=2, sort_keys=True))
            return EXIT_OK
        print(
            "segment /dev/shm/%s: %s, writer pid %d, depth %d, %d slots, ring %d events (head %d)"
            % (args.shm, seg.state, seg.writer_pid, seg.depth, seg.n_slots - 1, seg.ring_capacity, seg.ring_head)
        )
    print_stats(st)
    b = st["book"]
    print(
        "book: %s live orders (peak %s); adds %s, executes %s, cancels %s, deletes %s, replaces %s, trades %s"
        % tuple(
            format(b[k], ",")
            for k in ("orders_live", "orders_peak", "adds", "executes", "cancels", "deletes", "replaces", "trades")
        )
    )
    rej = {k: v for k, v in b.items() if k in BOOK_EXCEPTIONS and v}
    print("book exceptions: %s" % (", ".join("%s %s" % (k, format(v, ",")) for k, v in rej.items()) or "none"))
    return EXIT_OK
