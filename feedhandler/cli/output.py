"""How the commands print: counters, ladders, prices, times, JSON files.

The formats here are the CLI's contract (docs/architecture.md; tests compare
them line by line): change them only together with the docs and tests.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, TextIO, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    from ..replay import InputResult, Replay
    from ..shm import BookCopy

__all__ = [
    "human",
    "book_drops",
    "print_stats",
    "write_json",
    "open_outputs",
    "close_output",
    "finish_outputs",
    "write_latency",
    "ladder",
    "hms",
]


def human(n: float) -> str:
    """A rate with a k/M/G suffix: ``1.50 M``."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return "%.2f %s" % (n / div, unit)
    return "%.0f" % n


#: Book counters of messages the books dropped (not applied at all), shown among
#: the errors as ``book.NAME``; the clamps and replacements (add_replaced,
#: exec_clamped, cancel_clamped) are applied, so they are not drops.
BOOK_DROPS = ("unknown_ref", "zero_rejected", "bad_side", "locate_range", "order_full", "level_full")


def book_drops(stats: dict) -> dict:
    """``book.NAME`` -> count for every non-zero :data:`BOOK_DROPS` counter of ``stats``."""
    book = stats.get("book") or {}
    return {"book." + k: int(book[k]) for k in BOOK_DROPS if book.get(k)}


def print_stats(stats: dict, out: Optional[TextIO] = None, inputs: Optional[Iterable["InputResult"]] = None) -> None:
    """The counters block of `replay`, `run` and `stats` (inputs first, when given)."""
    w = (out or sys.stdout).write
    if inputs:
        for i in inputs:
            status = "ok" if i.ok else ("PARTIAL" if i.partial else "FAILED")
            w("input     %s  [%s%s]  %s\n" % (i.path, i.format, ", " + i.compression if i.compression else "", status))
    w("packets       %14s\n" % format(stats["packets"], ","))
    w(
        "mold packets  %14s   heartbeats %s, end of session %s, streams %s\n"
        % (
            format(stats["mold_packets"], ","),
            format(stats["heartbeats"], ","),
            format(stats["end_of_session"], ","),
            stats["streams"],
        )
    )
    if stats.get("pitch_packets"):
        w(
            "pitch units   %14s   (Cboe PITCH sequenced units; unit clears %s)\n"
            % (format(stats["pitch_packets"], ","), format(stats.get("unit_clears", 0), ","))
        )
    if stats.get("iex_packets"):
        w(
            "iex segments  %14s   (IEX-TP segments, heartbeats included; clear book %s)\n"
            % (format(stats["iex_packets"], ","), format(stats.get("iex_clears", 0), ","))
        )
    if "pkt_applied" in stats:
        from ..core import ledger

        lg = ledger(stats)
        w(
            "  where they went: %s applied, %s duplicate, %s heartbeat, %s end of session, %s rejected, %s held%s"
            % (
                format(lg["pkt_applied"], ","),
                format(lg["pkt_duplicate"], ","),
                format(lg["heartbeats"], ","),
                format(lg["end_of_session"], ","),
                format(lg["pkt_rejected"], ","),
                format(lg["pkt_held"], ","),
                ""
                if not lg["pkt_late"]
                else ", %s late (after their range was given up)" % format(lg["pkt_late"], ","),
            )
            + ("" if lg["unaccounted"] == 0 else "  (UNACCOUNTED %d: please report)" % lg["unaccounted"])
            + "\n"
        )
    w("messages      %14s\n" % format(stats["messages"], ","))
    total = stats["messages"] or 1
    for t, n in sorted(stats["by_type"].items(), key=lambda kv: (-kv[1], kv[0])):
        w("    %-4s %14s  %6.2f%%\n" % (t, format(n, ","), 100.0 * n / total))
    w(
        "gaps %s, recovered %s, duplicates %s, session changes %s, silences %s\n"
        % (
            format(stats["gaps"], ","),
            format(stats["recovered"], ","),
            format(stats["duplicates"], ","),
            format(stats.get("session_changes", 0), ","),
            format(stats.get("silences", 0), ","),
        )
    )
    if stats.get("snapshots") or stats.get("snapshot_failures"):
        w(
            "snapshots %s applied (%s messages, last in %.1f ms), %s failed%s; %s packets held for them, %s of "
            "those contained\n"
            % (
                format(stats["snapshots"], ","),
                format(stats["snapshot_messages"], ","),
                stats["snapshot_recover_ns"] / 1e6,
                format(stats["snapshot_failures"], ","),
                ""
                if not stats.get("snapshot_fetch_errors")
                else " (fetch: %s)" % ", ".join("%s %d" % kv for kv in sorted(stats["snapshot_fetch_errors"].items())),
                format(stats["snapshot_buffered"], ","),
                format(stats["snapshot_contained"], ","),
            )
        )
    if stats.get("nic_imissed") or stats.get("nic_ierrors") or stats.get("nic_rx_nombuf"):
        w(
            "NIC drops: imissed %s, ierrors %s, rx_nombuf %s\n"
            % (
                format(stats["nic_imissed"], ","),
                format(stats["nic_ierrors"], ","),
                format(stats["nic_rx_nombuf"], ","),
            )
        )
    dropped = book_drops(stats)
    if stats["errors"] or dropped:
        w("errors (skipped, by reason):\n")
        for k, v in sorted(stats["errors"].items()) + sorted(dropped.items()):
            w("    %-24s %12s\n" % (k, format(v, ",")))
    else:
        w("errors        none\n")
    w("elapsed       %.6f s decode, %s msgs/s\n" % (stats["elapsed_s"], human(stats["msgs_per_s"])))


def write_json(path: Union[str, TextIO], doc: Any, sort_keys: bool = True) -> None:
    """``doc`` as indented JSON with a final newline, to a path or an open text
    file (left open; raises OSError)."""
    if not isinstance(path, str):
        json.dump(doc, path, indent=2, sort_keys=sort_keys)
        path.write("\n")
        path.flush()
        return
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=sort_keys)
        f.write("\n")


def open_outputs(paths: Dict[str, Optional[str]]) -> Tuple[Dict[str, TextIO], Dict[str, str]]:
    """Open every output file named (option -> path; None: not asked for)
    before any work, so that a path that cannot be written fails at once
    rather than after a long replay.  Returns (option -> open file, option ->
    why it cannot be opened)."""
    files: Dict[str, TextIO] = {}
    errors: Dict[str, str] = {}
    for option, path in paths.items():
        if not path:
            continue
        try:
            files[option] = open(path, "w")
        except OSError as exc:
            errors[option] = "cannot write %s %s: %s" % (option, path, exc.strerror or exc)
    return files, errors


def open_command_outputs(name: str, args: Any, nothing: str) -> Tuple[Dict[str, TextIO], Dict[str, str]]:
    """`replay`'s and `run`'s outputs (--dump-books, --latency-json,
    --stats-json) opened before the work (open_outputs); each one that cannot
    be is reported at once ("... (nothing NOTHING)")."""
    from .base import EXIT_USAGE, fail

    files, problems = open_outputs(
        {"--dump-books": args.dump_books, "--latency-json": args.latency_json, "--stats-json": args.stats_json}
    )
    for msg in problems.values():
        fail(name, msg + " (nothing %s)" % nothing, EXIT_USAGE)
    return files, problems


def close_output(option: str, f: TextIO, write: Optional[Callable[[TextIO], None]]) -> Optional[str]:
    """``write(f)`` then close it (``write`` None: only close); why it failed, or None.
    Each output is finished on its own: one failing leaves the others alone."""
    from ..errors import ReplayError

    try:
        try:
            if write is not None:
                write(f)
        finally:
            f.close()
    except (OSError, ReplayError) as exc:  # a full disk, an I/O error: reported, never a traceback
        return "cannot write %s %s: %s" % (option, getattr(f, "name", "?"), exc)
    return None


def finish_outputs(
    command: str,
    files: Dict[str, TextIO],
    problems: Dict[str, str],
    replay: "Replay",
    stats: dict,
    stats_doc: dict,
    rc: int,
    depth: int,
    speed: float = 0.0,
) -> int:
    """Write and close every output :func:`open_outputs` opened, each whatever
    becomes of the others: the books, the latency document, then ``stats_doc``
    as --stats-json with ``output_errors`` (option -> message, those of
    ``problems`` too) and ``exit_status``.  A failure here is reported and
    makes the status 1 unless it is already non-zero; returns the status."""
    from .base import EXIT_INPUT, fail

    errors = dict(problems)
    writers = (
        ("--dump-books", lambda f: replay.dump_books(f, depth)),
        ("--latency-json", lambda f: write_latency(f, replay, stats, speed)),
    )
    for option, write in writers:
        if option in files:
            err = close_output(option, files[option], write)
            if err:
                errors[option] = err
                fail(command, err, EXIT_INPUT)
                rc = rc or EXIT_INPUT
    if "--stats-json" in files:
        doc = dict(stats_doc)
        doc["output_errors"] = errors
        doc["exit_status"] = rc
        err = close_output("--stats-json", files["--stats-json"], lambda f: write_json(f, doc))
        if err:
            fail(command, err, EXIT_INPUT)
            rc = rc or EXIT_INPUT
    return rc


def write_latency(path: Union[str, TextIO], replay: "Replay", stats: dict, speed: float = 0.0) -> None:
    """--latency-json: the document, and a short summary on stdout."""
    from ..latency import collect

    doc = collect(replay, stats)
    doc["speed"] = speed or "max"
    write_json(path, doc, sort_keys=False)
    for name in ("decode", "book", "publish", "rx_to_published"):
        t = doc["stages"][name]
        print(
            "latency %-16s p50 %7d ns  p99 %7d ns  p99.9 %8d ns  max %9d ns  (%d packets)"
            % (name.replace("_to_", "->"), t["p50"], t["p99"], t["p99_9"], t["max"], t["count"])
        )
    m = doc["messages_per_packet"]
    print("messages/packet  mean %.2f  p50 %d  p99 %d  max %d" % (m["mean"], m["p50"], m["p99"], m["max"]))


def hms(ns: int) -> str:
    """Nanoseconds since midnight as ``HH:MM:SS.nnnnnnnnn``."""
    s, frac = divmod(ns, 1_000_000_000)
    return "%02d:%02d:%02d.%09d" % (s // 3600, s // 60 % 60, s % 60, frac)


def ladder(snap: "BookCopy", depth: int) -> str:
    """The `book` command's view of one instrument: header line, then bids | asks."""
    from ..shm import FLAG_DROPPED, FLAG_OP_HALT, FLAG_STALE, format_price as px

    bp, bs, bo = snap.bids
    ap, as_, ao = snap.asks
    flags = [
        n
        for bit, n in ((FLAG_STALE, "STALE"), (FLAG_DROPPED, "INCOMPLETE"), (FLAG_OP_HALT, "OP-HALT"))
        if int(snap.flags) & bit
    ]
    state = chr(int(snap.trading_state)) if int(snap.trading_state) else "?"
    lines = [
        "%s (locate %d)  state %s  %s  last trade %s x %d  exch ts %s"
        % (
            snap.symbol or "?",
            int(snap.locate),
            state,
            " ".join(flags) or "",
            px(int(snap.last_trade_price)),
            int(snap.last_trade_shares),
            hms(int(snap.exch_ts)),
        )
    ]
    lines.append("%8s %10s %12s | %-12s %-10s %-8s" % ("orders", "shares", "bid", "ask", "shares", "orders"))
    for i in range(max(len(bp), len(ap), 1)):
        left = "%8d %10d %12s" % (bo[i], bs[i], px(int(bp[i]))) if i < len(bp) else " " * 32
        right = "%-12s %-10d %-8d" % (px(int(ap[i])), as_[i], ao[i]) if i < len(ap) else ""
        lines.append("%s | %s" % (left, right))
    return "\n".join(lines)
