"""`feedhandler rewind-server`: answer MoldUDP64 re-requests from a capture."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from . import argtypes
from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .serving import listen_address, serve_until_signal

NAME = "rewind-server"


def register(sub: Any) -> argparse.ArgumentParser:
    w = sub.add_parser(
        NAME, help="answer MoldUDP64 re-requests from a capture",
        description="Index every MoldUDP64 message of a pcap/pcapng capture (or gzip / zstd of either, or - for stdin) by "
                    "(session, sequence number), A/B copies once, and answer MoldUDP64 re-requests "
                    "(20-byte UDP datagrams: session, first sequence number, message count) like an "
                    "exchange's re-request server: each reply is a MoldUDP64 packet of as many of the "
                    "requested messages as fit in --max-datagram bytes, sent to the requester only. "
                    "Malformed requests, unknown sessions, zero counts and sequences the capture does not "
                    "hold are ignored and counted. SIGINT/SIGTERM stop it and print the counters. "
                    "Exit status: 0 ok, 1 the input cannot be served, 2 usage.")
    w.add_argument("input", metavar="INPUT", help="pcap or pcapng capture (gzip or zstd too, - for standard input); not a BinaryFILE")
    w.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="UDP address to answer on (port 0: any free port, printed at start-up)")
    w.add_argument("--max-datagram", type=argtypes.positive, default=1400, metavar="BYTES",
                   help="largest UDP payload of a reply (23..65507, default 1400)")
    w.add_argument("--stats-json", metavar="FILE",
                   help="on exit, write the counters (requests, replies, messages_sent, bytes_sent, "
                        "ignored by reason) and what was indexed as JSON")
    w.add_argument("-q", "--quiet", action="store_true", help="no line per request on stderr")
    w.set_defaults(func=command)
    return w


def command(args: argparse.Namespace) -> int:
    from ..rewind import RewindError, RewindServer, describe_index, index_capture, write_stats_json

    listen, status = listen_address(NAME, args.listen)
    if listen is None:
        return status
    host, port = listen
    if not 23 <= args.max_datagram <= 65507:
        return fail(NAME, "--max-datagram must be 23..65507 bytes, got %d" % args.max_datagram, EXIT_USAGE)
    try:
        idx = index_capture(args.input)
        for line in describe_index(idx):
            print(line)
        log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        server = RewindServer(None, host, port, max_datagram=args.max_datagram, index=idx, log=log)
    except RewindError as exc:
        return fail(NAME, exc, EXIT_INPUT)
    except MemoryError:
        return fail(NAME, "%s does not fit in memory" % args.input, EXIT_INPUT)
    except KeyboardInterrupt:
        return fail(NAME, "interrupted while indexing", EXIT_INTERRUPTED)

    serve_until_signal(server, "listening on udp %s:%d (max datagram %d bytes); Ctrl-C to stop" % (
        server.address[0], server.address[1], server.max_datagram))
    st = server.stats
    print("stopped: requests %s, replies %s, messages sent %s, bytes sent %s" % tuple(
        format(st[k], ",") for k in ("requests", "replies", "messages_sent", "bytes_sent")))
    print("ignored: %s" % ", ".join("%s %s" % (k, format(v, ",")) for k, v in st["ignored"].items()))
    if args.stats_json:
        try:
            write_stats_json(server, args.stats_json)
        except OSError as exc:
            return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
    return EXIT_OK
