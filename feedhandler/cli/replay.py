"""`feedhandler replay`: decode captures or BinaryFILEs through the C pipeline."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, List

from . import argtypes
from .base import EXIT_INPUT, EXIT_OK, EXIT_USAGE, StopSignals, fail
from .options import add_pipeline_options, load_channels, replay_config
from .output import finish_outputs, open_command_outputs, print_stats

NAME = "replay"


def register(sub: Any) -> argparse.ArgumentParser:
    r = sub.add_parser(
        NAME,
        help="decode captures or BinaryFILEs through the C pipeline",
        description="Decode every message of one or more inputs through the C pipeline "
        "(Ethernet/VLAN/IPv4/UDP -> MoldUDP64 -> ITCH 5.0, Cboe PITCH units, or IEX-TP -> "
        "IEX TOPS, DEEP or DEEP+: each UDP destination's protocol told from its first clean "
        "datagram, or named by --config) and print packets, messages "
        "per type, errors by reason, elapsed decode time and messages/s. The format of "
        "each INPUT is detected from its first bytes: pcap (us or ns, either byte order), "
        "pcapng, gzip or zstd (of any of these: streamed with bounded memory), else NASDAQ "
        "BinaryFILE. An INPUT of - is standard input (one lane). Every output file is "
        "opened before the work starts, and each is written whatever becomes of the others. "
        "SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the replay before its next packet (a paced "
        "one stops waiting): counters and outputs hold what was done, and a --shm segment "
        "is marked stopped. Exit status: 0 ok, 1 an input was unreadable/corrupt/truncated "
        "or an output failed to write (counters still printed), or the --shm name is held by a "
        "live writer or is not this user's segment (nothing replayed), 2 usage or an output that "
        "cannot be opened (nothing replayed), 128 + the signal's number when stopped by one "
        "(SIGHUP 129, SIGINT 130, SIGTERM 143).",
    )
    r.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="capture or BinaryFILE path(s), decoded in order; - reads standard input",
    )
    add_pipeline_options(r)
    r.add_argument(
        "--speed",
        type=argtypes.speed,
        default=0.0,
        metavar="max|realtime|FACTOR",
        help="pacing: max = as fast as possible (default); realtime = the capture's own "
        "inter-packet gaps (BinaryFILE: its ITCH timestamps), busy-waiting on the TSC; "
        "FACTOR = that many times faster (e.g. 10, 0.5)",
    )
    r.add_argument(
        "--rerequest",
        metavar="HOST:PORT",
        help="MoldUDP64 re-request server (e.g. `feedhandler rewind-server`) for streams whose "
        "channel names none: holes both lines missed are re-requested before they count "
        "as gaps; recovered messages are counted in `recovered`. HOST is an IPv4 address",
    )
    r.add_argument(
        "--rerequest-timeout-ms",
        type=argtypes.positive,
        default=0,
        metavar="MS",
        help="wait per re-request try (3 tries; default 20)",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=command)
    return r


def command(args: argparse.Namespace) -> int:
    from ..endpoints import parse_endpoint
    from ..errors import ConfigError, ReplayError, ShmNameError
    from ..replay import InputResult, Replay

    try:
        channels = load_channels(args.config, args.cores, announce=True)
        rerequest = parse_endpoint(args.rerequest, "--rerequest") if args.rerequest else None
    except ConfigError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    try:
        r = Replay(
            replay_config(
                args,
                channels=channels,
                speed=args.speed,
                rerequest=rerequest,
                rerequest_timeout_ms=args.rerequest_timeout_ms,
            )
        )
    except ShmNameError as exc:  # --shm taken by a live writer, or not ours: refused, nothing replayed
        return fail(NAME, exc, EXIT_INPUT)
    except ReplayError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    with r, StopSignals(on_stop=r.stop) as sig:
        if args.dump_books and args.mode == "decode":
            r.stop()  # nothing replayed: the segment says stopped
            return fail(NAME, "--dump-books needs books (not --mode decode)", EXIT_USAGE)
        # Every output opened before the work: a path that cannot be written
        # fails now, not after the replay; the others are still written
        # (with what was done: nothing), so none is left empty.
        files, problems = open_command_outputs(NAME, args, "replayed")
        results: List[InputResult] = []
        rc = EXIT_OK
        if problems:
            rc = EXIT_USAGE
            sig.work_done()
            r.stop()
        else:
            if args.shm:
                print("publishing to /dev/shm/%s (depth %d)" % (args.shm, args.depth), file=sys.stderr)
            try:
                for path in args.inputs:  # "-" (standard input) goes to the C core as is
                    if sig.signum is not None:
                        break
                    res = r.run_file(path, progress=None if not args.quiet else False)
                    results.append(res)
                    if sig.signum is not None and res.ok:  # cut short: not an input read to its end
                        res.ok, res.partial, res.error = False, True, "stopped by %s" % sig.name
                        break
                    if not res.ok:
                        fail(NAME, res.error, EXIT_INPUT)
                        rc = EXIT_INPUT
            except KeyboardInterrupt:  # no handler installed (not the main thread)
                sig.signum = sig.signum or signal.SIGINT
            sig.work_done()
            if sig.signum is not None:
                rc = sig.status
                fail(NAME, "interrupted (%s); counters so far:" % sig.name, rc)
        r.finish()
        stats = r.stats()
        if not problems:
            print_stats(stats, inputs=results)
        stats_doc = dict(stats)
        stats_doc["mode"] = args.mode
        stats_doc["inputs"] = [
            {
                "path": i.path,
                "format": i.format,
                "gzip": i.gzip,
                "compression": i.compression,
                "ok": i.ok,
                "error": i.error,
            }
            for i in results
        ]
        stats_doc["stopped_by"] = sig.name or None
        return finish_outputs(NAME, files, problems, r, stats, stats_doc, rc, args.depth, args.speed)
