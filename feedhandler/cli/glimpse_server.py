"""`feedhandler glimpse-server`: serve a GLIMPSE 5.0 snapshot of a capture over SoupBinTCP 4.0."""
from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Optional

from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .serving import listen_address, serve_until_signal

NAME = "glimpse-server"

_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def parse_time_of_day(text: str) -> Optional[int]:
    """HH:MM:SS[.fff...] -> ns since midnight, or None when it is not one."""
    m = _TIME.match(text)
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59 or s > 59:
        return None
    frac = (m.group(4) or "").ljust(9, "0")
    return ((h * 60 + mi) * 60 + s) * 1_000_000_000 + int(frac)


def register(sub: Any) -> argparse.ArgumentParser:
    w = sub.add_parser(
        NAME, help="serve a GLIMPSE 5.0 snapshot of a capture over SoupBinTCP 4.0",
        description="GLIMPSE 5.0 is NASDAQ's snapshot service for TotalView-ITCH: a client logs in over "
                    "SoupBinTCP 4.0 (TCP), receives the state of every book as ITCH 5.0 messages (stock "
                    "directory, trading action, Reg SHO, LULD collar, then every live order as an Add Order, "
                    "one per sequenced data packet), then End of Snapshot with the MoldUDP64 sequence number "
                    "at which the live feed continues the snapshot. This command indexes a pcap/pcapng "
                    "capture (gzip or zstd too), replays one session's messages before --at (or --at-time; "
                    "default: all of them) into books, builds the snapshot from the books, prints what it "
                    "holds and serves it to any number of clients (one thread each) until SIGINT/SIGTERM, "
                    "then prints the counters. Wrong credentials get Login Rejected, malformed logins, slow "
                    "and idle clients are dropped and counted. "
                    "Exit status: 0 ok, 1 the input cannot be served, 2 usage.")
    w.add_argument("input", metavar="INPUT", help="pcap or pcapng capture (gzip or zstd too); not a BinaryFILE")
    w.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="TCP address to serve on (port 0: any free port, printed at start-up)")
    at = w.add_mutually_exclusive_group()
    at.add_argument("--at", type=int, metavar="SEQ",
                    help="snapshot before MoldUDP64 sequence SEQ (the live feed continues at SEQ)")
    at.add_argument("--at-time", metavar="HH:MM:SS[.fff]",
                    help="snapshot before the first message with an ITCH timestamp at or after this time")
    w.add_argument("--session", metavar="S", help="MoldUDP64 session to snapshot (needed when the capture has several)")
    w.add_argument("--user", default="", metavar="U", help="username clients must log in with (<= 6 characters)")
    w.add_argument("--password", default="", metavar="P", help="password clients must log in with (<= 10 characters)")
    w.add_argument("--stats-json", metavar="FILE",
                   help="on exit, write the counters (connections, logins, snapshots served, drops) and "
                        "what the snapshot held as JSON")
    w.add_argument("-q", "--quiet", action="store_true", help="no line per client event on stderr")
    w.set_defaults(func=command)
    return w


def command(args: argparse.Namespace) -> int:
    from ..glimpse import GlimpseServer, SnapshotError, build_snapshot, describe_snapshot, write_stats_json

    listen, status = listen_address(NAME, args.listen)
    if listen is None:
        return status
    host, port = listen
    at_time = None
    if args.at_time is not None:
        at_time = parse_time_of_day(args.at_time)
        if at_time is None:
            return fail(NAME, "--at-time needs HH:MM:SS[.fff], got %r" % args.at_time, EXIT_USAGE)
    if args.at is not None and not 1 <= args.at < 1 << 64:
        return fail(NAME, "--at must be a sequence number >= 1, got %d" % args.at, EXIT_USAGE)
    if len(args.user) > 6 or len(args.password) > 10:
        return fail(NAME, "--user is at most 6 and --password at most 10 characters", EXIT_USAGE)
    try:
        snap = build_snapshot(args.input, at_seq=args.at, at_time_ns=at_time, session=args.session)
        print(describe_snapshot(snap), flush=True)
        log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        server = GlimpseServer(snap, host, port, user=args.user, password=args.password, log=log)
    except SnapshotError as exc:
        return fail(NAME, exc, EXIT_INPUT)
    except MemoryError:
        return fail(NAME, "%s does not fit in memory" % args.input, EXIT_INPUT)
    except KeyboardInterrupt:
        return fail(NAME, "interrupted while building the snapshot", EXIT_INTERRUPTED)

    serve_until_signal(server, "listening on tcp %s:%d (session %r, sequence %d); Ctrl-C to stop" % (
        server.address[0], server.address[1], snap.session, snap.sequence))
    st = server.stats()
    print("stopped: connections %s, logins accepted %s, snapshots served %s, messages sent %s, bytes sent %s" % tuple(
        format(st[k], ",") for k in ("connections", "logins_accepted", "snapshots_served", "messages_sent",
                                     "bytes_sent")))
    print("dropped: logins rejected %s, malformed logins %s, slow clients %s, client timeouts %s" % (
        ", ".join("%s %s" % (k, format(v, ",")) for k, v in st["logins_rejected"].items()),
        format(st["malformed_logins"], ","), format(st["slow_clients_dropped"], ","),
        format(st["client_timeouts"], ",")))
    if args.stats_json:
        try:
            write_stats_json(server, args.stats_json)
        except OSError as exc:
            return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
    return EXIT_OK
