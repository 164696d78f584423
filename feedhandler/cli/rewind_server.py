"""`feedhandler rewind-server`: answer MoldUDP64 re-requests from a capture."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import argtypes
from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .serving import listen_address, serve_until_signal, warn_if_wildcard

NAME = "rewind-server"
DEFAULT_RATE = 10_000_000  # reply bytes/s per client address: 80 Mbit/s, far above any replay's need


def register(sub: Any) -> argparse.ArgumentParser:
    w = sub.add_parser(
        NAME,
        help="answer MoldUDP64 re-requests from a capture",
        description="Index every MoldUDP64 message of a pcap/pcapng capture (or gzip / zstd of either, or - for stdin) by "
        "(session, sequence number), A/B copies once, and answer MoldUDP64 re-requests "
        "(20-byte UDP datagrams: session, first sequence number, message count) like an "
        "exchange's re-request server: each reply is a MoldUDP64 packet of as many of the "
        "requested messages as fit in --max-datagram bytes, sent to the requester only. "
        "Malformed requests, unknown sessions, zero counts and sequences the capture does not "
        "hold are ignored and counted. Only sources in --allow are answered (loopback by default; "
        "others ignored and counted as not_allowed), and each client address gets at most "
        "--rate-limit reply bytes per second (--burst at once; the rest ignored and counted as "
        "rate_limited): a 20-byte request can ask for a 1,400-byte reply, so an open server is an "
        "amplifier for spoofed sources. SIGINT/SIGTERM stop it and print the counters. "
        "Exit status: 0 ok, 1 the input cannot be served, 2 usage.",
    )
    w.add_argument(
        "input",
        metavar="INPUT",
        help="pcap or pcapng capture (gzip or zstd too, - for standard input); not a BinaryFILE",
    )
    w.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="UDP address to answer on (port 0: any free port, printed at start-up)",
    )
    w.add_argument(
        "--max-datagram",
        type=argtypes.positive,
        default=1400,
        metavar="BYTES",
        help="largest UDP payload of a reply (23..65507, default 1400)",
    )
    w.add_argument(
        "--allow",
        action="append",
        metavar="CIDR",
        help="answer requests from this network only (repeatable; e.g. 10.0.0.0/8, 0.0.0.0/0 for "
        "any IPv4 source; default 127.0.0.0/8 and ::1/128)",
    )
    w.add_argument(
        "--rate-limit",
        type=argtypes.nonneg,
        default=DEFAULT_RATE,
        metavar="BYTES/S",
        help="reply bytes per second per client address (default %d; 0: no limit)" % DEFAULT_RATE,
    )
    w.add_argument(
        "--burst",
        type=argtypes.positive,
        metavar="BYTES",
        help="reply bytes a client address may get at once (>= --max-datagram; default one second of --rate-limit)",
    )
    w.add_argument(
        "--stats-json",
        metavar="FILE",
        help="on exit, write the counters (requests, replies, messages_sent, bytes_sent, "
        "ignored by reason) and what was indexed as JSON",
    )
    w.add_argument("-q", "--quiet", action="store_true", help="no line per request on stderr")
    w.set_defaults(func=command)
    return w


def command(args: argparse.Namespace) -> int:
    from ..rewind import (
        DEFAULT_ALLOW,
        AllowList,
        RewindError,
        RewindServer,
        describe_index,
        index_capture,
        write_stats_json,
    )

    listen, status = listen_address(NAME, args.listen)
    if listen is None:
        return status
    host, port = listen
    if not 23 <= args.max_datagram <= 65507:
        return fail(NAME, "--max-datagram must be 23..65507 bytes, got %d" % args.max_datagram, EXIT_USAGE)
    try:
        allow = AllowList(args.allow or DEFAULT_ALLOW)
    except ValueError as exc:
        return fail(NAME, "--allow: %s" % exc, EXIT_USAGE)
    rate = args.rate_limit or None
    if args.burst is not None and (rate is None or args.burst < args.max_datagram):
        return fail(
            NAME, "--burst needs a --rate-limit and at least --max-datagram (%d) bytes" % args.max_datagram, EXIT_USAGE
        )
    try:
        idx = index_capture(args.input)
        for line in describe_index(idx):
            print(line)
        log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        server = RewindServer(
            None,
            host,
            port,
            max_datagram=args.max_datagram,
            index=idx,
            log=log,
            allow=allow,
            rate_limit=rate,
            burst=args.burst,
        )
    except RewindError as exc:
        return fail(NAME, exc, EXIT_INPUT)
    except MemoryError:
        return fail(NAME, "%s does not fit in memory" % args.input, EXIT_INPUT)
    except KeyboardInterrupt:
        return fail(NAME, "interrupted while indexing", EXIT_INTERRUPTED)

    warn_if_wildcard(NAME, server.address, "clients in --allow (%s) on any network can reach it" % allow)
    lim = server.limiter
    print(
        "answering %s; rate limit %s"
        % (
            allow,
            "none"
            if lim is None
            else "%s bytes/s, burst %s bytes per client" % (format(int(lim.rate), ","), format(int(lim.burst), ",")),
        )
    )
    serve_until_signal(
        server,
        "listening on udp %s:%d (max datagram %d bytes); Ctrl-C to stop"
        % (server.address[0], server.address[1], server.max_datagram),
    )
    st = server.stats
    print(
        "stopped: requests %s, replies %s, messages sent %s, bytes sent %s"
        % tuple(format(st[k], ",") for k in ("requests", "replies", "messages_sent", "bytes_sent"))
    )
    print("ignored: %s" % ", ".join("%s %s" % (k, format(v, ",")) for k, v in st["ignored"].items()))
    if args.stats_json:
        try:
            write_stats_json(server, args.stats_json)
        except OSError as exc:
            return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
    return EXIT_OK
