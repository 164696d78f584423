"""`feedhandler gen`: generate a synthetic ITCH 5.0 (pcap + BinaryFILE), Cboe PITCH (pcap) or IEX TOPS / DEEP /
DEEP+ (pcap) trading day."""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import argtypes
from .base import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .output import human

NAME = "gen"


def register(sub: Any) -> argparse.ArgumentParser:
    g = sub.add_parser(
        NAME,
        help="generate a synthetic ITCH 5.0 (pcap + BinaryFILE), Cboe PITCH or IEX (pcap) trading day",
        description="Write a synthetic but realistic NASDAQ TotalView-ITCH 5.0 trading day: "
        "PREFIX.pcap (nanosecond pcap, MoldUDP64 over UDP/IPv4 multicast, one group per "
        "channel and line), PREFIX.bin (NASDAQ BinaryFILE of the same messages) and "
        "PREFIX.json (what was generated: counts per type, packets, loss). "
        "With --protocol pitch, the same order flow as a Cboe US Equities Multicast PITCH "
        "(depth of book) day instead: PREFIX.pcap (Sequenced Unit Headers over UDP "
        "multicast, port 30001; symbols split into --units contiguous alphabetical units "
        "of at most 384 symbols, unit u on group (u-1) mod --channels of each line: "
        "A 224.0.62.(2+group), B 233.19.3.(2+group)) and PREFIX.json; no BinaryFILE. "
        "With --protocol iex-tops, iex-deep or iex-deepplus, the same order flow as an IEX "
        "TOPS 1.6, DEEP 1.0 or DEEP+ 1.0 feed over IEX-TP v1: PREFIX.pcap (one segment per "
        "datagram, one channel; DEEP 233.215.21.4 / 233.215.21.132 port 10378, DEEP+ "
        "233.215.21.8 / .138 port 10378, TOPS 233.215.21.3 / .131 port 10377; line B cuts "
        "segments differently) and PREFIX.json; the three feeds of one seed are the same "
        "market. --sessions splits the day into several IEX-TP sessions. "
        "Deterministic for a seed.",
    )
    g.add_argument(
        "--protocol",
        choices=["itch", "pitch", "iex-tops", "iex-deep", "iex-deepplus"],
        default="itch",
        help="itch: NASDAQ ITCH 5.0 over MoldUDP64 (default); pitch: Cboe Multicast PITCH "
        "(Time messages per unit and second, Short/Long/Expanded message forms, "
        "Modify keeps the order id); iex-tops: IEX TOPS 1.6 (Quote Update on every change "
        "of the top of book, trades); iex-deep: IEX DEEP 1.0 (Price Level Updates with "
        "event flags, trades); iex-deepplus: IEX DEEP+ 1.0 (order by order); all three "
        "over IEX-TP v1, with the administrative messages",
    )
    g.add_argument(
        "--sessions",
        type=argtypes.positive,
        default=None,
        metavar="N",
        help="IEX only: IEX-TP sessions in the day, 1..16 (default 1); each ends with its "
        "books cleared and End of Messages, the next starts with a new session id at "
        "sequence 1",
    )
    g.add_argument(
        "--units",
        type=argtypes.positive,
        default=None,
        metavar="N",
        help="PITCH only: matching-engine units, 1..32 (default 32); at most 384 symbols per unit",
    )
    g.add_argument("--out", required=True, metavar="PREFIX", help="output path prefix")
    g.add_argument(
        "--messages",
        type=argtypes.positive,
        default=1_000_000,
        metavar="N",
        help="messages in the day, all channels (default 1000000; PITCH: not counting the "
        "Time messages each unit adds; IEX: the model's messages, which each feed writes "
        "as it does: DEEP+ about one each, TOPS fewer)",
    )
    g.add_argument("--symbols", type=argtypes.positive, default=100, metavar="N", help="instruments (default 100)")
    g.add_argument(
        "--channels",
        type=argtypes.positive,
        default=1,
        metavar="N",
        help="channels (multicast groups); ITCH: instruments are partitioned across them; "
        "PITCH: groups per line, units are spread over them, at most --units; IEX: 1 "
        "(default 1)",
    )
    g.add_argument("--seed", type=argtypes.nonneg, default=1, metavar="N", help="random seed (default 1)")
    g.add_argument(
        "--lines",
        choices=["a", "ab"],
        default="a",
        help="'ab' also writes the B line: same packets on another group (default a)",
    )
    g.add_argument(
        "--loss-a",
        type=argtypes.probability,
        default=0.0,
        metavar="P",
        help="probability a packet is lost on line A (default 0)",
    )
    g.add_argument(
        "--loss-b",
        type=argtypes.probability,
        default=0.0,
        metavar="P",
        help="probability a packet is lost on line B (default 0)",
    )
    g.add_argument(
        "--batch-ns",
        type=argtypes.nonneg,
        default=0,
        metavar="NS",
        help="packetiser flush window in ns (default 20000; 2000 with --rate)",
    )
    g.add_argument(
        "--max-payload",
        type=argtypes.nonneg,
        default=0,
        metavar="BYTES",
        help="largest UDP payload per datagram (default 1358: frames up to 1400 bytes)",
    )
    g.add_argument(
        "--heartbeat-ms",
        type=argtypes.nonneg,
        default=0,
        metavar="MS",
        help="heartbeat after this much idle time per channel (PITCH: per unit) (default 1000, the "
        "usual exchange setting; larger values make small day files smaller)",
    )
    g.add_argument(
        "--rate",
        type=argtypes.nonneg,
        default=0,
        metavar="MSGS_PER_S",
        help="steady message rate: the whole day (schedule and order flow, in order) is "
        "compressed into MESSAGES / MSGS_PER_S seconds with a flat rate and no idle "
        "hours, for latency benchmarks replayed with --speed realtime; the default "
        "batching window is then 2 us (a few messages per packet at 1 M/s). "
        "1000..100000000, or 0 (default) for the normal 04:00-20:00 day",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=command)
    return g


def command(args: argparse.Namespace) -> int:
    from ..gen import generate

    if args.units is not None and args.protocol != "pitch":
        return fail(NAME, "--units is for --protocol pitch only", EXIT_USAGE)
    iex = args.protocol.startswith("iex-")
    if args.sessions is not None and not iex:
        return fail(NAME, "--sessions is for --protocol iex-tops, iex-deep or iex-deepplus only", EXIT_USAGE)
    if os.path.basename(args.out) in ("", ".", ".."):
        # PREFIX + ".pcap" would be a hidden file (".pcap") in that directory.
        return fail(
            NAME,
            "--out is a file name prefix, not a directory: %r would write hidden files "
            "(.pcap, .json); give a prefix such as %s" % (args.out, os.path.join(args.out or ".", "day")),
            EXIT_USAGE,
        )
    try:
        summary = generate(
            args.out,
            messages=args.messages,
            symbols=args.symbols,
            channels=args.channels,
            seed=args.seed,
            lines=args.lines,
            loss_a=args.loss_a,
            loss_b=args.loss_b,
            batch_ns=args.batch_ns,
            max_payload=args.max_payload,
            heartbeat_ms=args.heartbeat_ms,
            rate=args.rate,
            progress=None if not args.quiet else False,
            protocol=args.protocol,
            units=args.units or 0,
            sessions=args.sessions or 0,
        )
    except (ValueError, OSError) as exc:
        return fail(NAME, exc, EXIT_USAGE)
    except KeyboardInterrupt:
        return fail(NAME, "interrupted", EXIT_INTERRUPTED)
    if args.protocol == "pitch":
        print("wrote %s.pcap, %s.json" % (args.out, args.out))
        print(
            "PITCH messages %s (%s Time) in %s packets (line A), %d unit(s) on %d group(s), "
            "%d symbols, seed %d"
            % (
                format(summary.get("messages", 0), ","),
                format(summary.get("time_messages", 0), ","),
                format(summary.get("packets", {}).get("a", 0), ","),
                summary.get("unit_count", 0),
                args.channels,
                args.symbols,
                args.seed,
            )
        )
        if "elapsed_s" in summary and summary["elapsed_s"]:
            print("generated at %s msgs/s" % human(summary["messages"] / summary["elapsed_s"]))
        return EXIT_OK
    if iex:
        print("wrote %s.pcap, %s.json" % (args.out, args.out))
        print(
            "%s messages %s (model %s) in %s packets (line A), %d session(s), %d symbols, seed %d"
            % (
                args.protocol.upper().replace("IEX-DEEPPLUS", "IEX-DEEP+"),
                format(summary.get("messages", 0), ","),
                format(summary.get("model_messages", 0), ","),
                format(summary.get("packets", {}).get("a", 0), ","),
                summary.get("iex", {}).get("sessions", 1),
                args.symbols,
                args.seed,
            )
        )
        if "elapsed_s" in summary and summary["elapsed_s"]:
            print("generated at %s msgs/s" % human(summary["messages"] / summary["elapsed_s"]))
        return EXIT_OK
    print("wrote %s.pcap, %s.bin, %s.json" % (args.out, args.out, args.out))
    print(
        "messages %s in %s packets (line A), %d channel(s), %d symbols, seed %d"
        % (
            format(summary.get("messages", 0), ","),
            format(summary.get("packets", {}).get("a", 0), ","),
            args.channels,
            args.symbols,
            args.seed,
        )
    )
    if "elapsed_s" in summary and summary["elapsed_s"]:
        print("generated at %s msgs/s" % human(summary["messages"] / summary["elapsed_s"]))
    return EXIT_OK
