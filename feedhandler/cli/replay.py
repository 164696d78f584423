"""`feedhandler replay`: decode captures or BinaryFILEs through the C pipeline."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List

from . import argtypes
from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .options import add_pipeline_options, load_channels, replay_config
from .output import print_stats, write_json, write_latency

NAME = "replay"


def register(sub: Any) -> argparse.ArgumentParser:
    r = sub.add_parser(
        NAME, help="decode captures or BinaryFILEs through the C pipeline",
        description="Decode every ITCH 5.0 message of one or more inputs through the C pipeline "
                    "(Ethernet/VLAN/IPv4/UDP -> MoldUDP64 -> ITCH 5.0) and print packets, messages "
                    "per type, errors by reason, elapsed decode time and messages/s. The format of "
                    "each INPUT is detected from its first bytes: pcap (us or ns, either byte order), "
                    "pcapng, gzip or zstd (of any of these: streamed with bounded memory), else NASDAQ "
                    "BinaryFILE. An INPUT of - is standard input (one lane). Exit status: 0 ok, "
                    "1 an input was unreadable/corrupt/truncated (counters still printed), 2 usage, "
                    "130 interrupted.")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="capture or BinaryFILE path(s), decoded in order; - reads standard input")
    add_pipeline_options(r)
    r.add_argument("--speed", type=argtypes.speed, default=0.0, metavar="max|realtime|FACTOR",
                   help="pacing: max = as fast as possible (default); realtime = the capture's own "
                        "inter-packet gaps (BinaryFILE: its ITCH timestamps), busy-waiting on the TSC; "
                        "FACTOR = that many times faster (e.g. 10, 0.5)")
    r.add_argument("--rerequest", metavar="HOST:PORT",
                   help="MoldUDP64 re-request server (e.g. `feedhandler rewind-server`) for streams whose "
                        "channel names none: holes both lines missed are re-requested before they count "
                        "as gaps; recovered messages are counted in `recovered`. HOST is an IPv4 address")
    r.add_argument("--rerequest-timeout-ms", type=argtypes.positive, default=0, metavar="MS",
                   help="wait per re-request try (3 tries; default 20)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=command)
    return r


def command(args: argparse.Namespace) -> int:
    from ..endpoints import parse_endpoint
    from ..errors import ConfigError, ReplayError
    from ..replay import InputResult, Replay

    try:
        channels = load_channels(args.config, args.cores, announce=True)
        rerequest = parse_endpoint(args.rerequest, "--rerequest") if args.rerequest else None
    except ConfigError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    try:
        r = Replay(replay_config(args, channels=channels, speed=args.speed, rerequest=rerequest,
                                 rerequest_timeout_ms=args.rerequest_timeout_ms))
    except ReplayError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    with r:
        if args.dump_books and args.mode == "decode":
            return fail(NAME, "--dump-books needs books (not --mode decode)", EXIT_USAGE)
        if args.shm:
            print("publishing to /dev/shm/%s (depth %d)" % (args.shm, args.depth), file=sys.stderr)
        results: List[InputResult] = []
        rc = EXIT_OK
        try:
            for path in args.inputs:                 # "-" (standard input) goes to the C core as is
                res = r.run_file(path, progress=None if not args.quiet else False)
                results.append(res)
                if not res.ok:
                    fail(NAME, res.error, EXIT_INPUT)
                    rc = EXIT_INPUT
        except KeyboardInterrupt:
            fail(NAME, "interrupted; counters so far:", EXIT_INTERRUPTED)
            rc = EXIT_INTERRUPTED
        r.finish()
        stats = r.stats()
        print_stats(stats, inputs=results)
        if args.dump_books:
            try:
                r.dump_books(args.dump_books, args.depth)
            except ReplayError as exc:
                return fail(NAME, exc, EXIT_INPUT)
        if args.latency_json:
            write_latency(args.latency_json, r, stats, args.speed)
        if args.stats_json:
            stats_out = dict(stats)
            stats_out["mode"] = args.mode
            stats_out["inputs"] = [{"path": i.path, "format": i.format, "gzip": i.gzip,
                                    "compression": i.compression, "ok": i.ok,
                                    "error": i.error} for i in results]
            try:
                write_json(args.stats_json, stats_out)
            except OSError as exc:
                return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
        return rc
