"""`feedhandler glimpse-server`: serve a GLIMPSE 5.0 snapshot of a capture over SoupBinTCP 4.0."""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from typing import Any, Optional, Tuple

from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .serving import listen_address, serve_until_signal, warn, warn_if_wildcard

NAME = "glimpse-server"
ENV_USER = "FEEDHANDLER_GLIMPSE_SERVER_USER"
ENV_PASSWORD = "FEEDHANDLER_GLIMPSE_SERVER_PASSWORD"


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text)
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError("must be > 0 and <= 86400 seconds, got %s" % text)
    return v


def _max_clients(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text)
    if not 1 <= v <= 100000:
        raise argparse.ArgumentTypeError("must be 1..100000, got %s" % text)
    return v


def read_credentials_file(path: str) -> Tuple[str, str]:
    """(user, password) from the first line of `path`, ``USER:PASSWORD``
    (split at the first colon).  OSError / ValueError say what is wrong."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        data = f.read(4096)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(NAME, "%s can be read by other users (mode %03o); chmod 600 it" % (path, mode & 0o777))
    try:
        line = data.decode("ascii").splitlines()[0] if data.strip() else ""
    except UnicodeDecodeError:
        raise ValueError("%s is not ASCII text" % path) from None
    if ":" not in line:
        raise ValueError("%s: the first line must be USER:PASSWORD" % path)
    user, password = line.split(":", 1)
    return user, password


def credentials(args: argparse.Namespace) -> Tuple[str, str]:
    """(user, password): --credentials-file, else --user / --password, else the
    environment; ValueError / OSError say what is wrong."""
    if args.credentials_file is not None:
        if args.user is not None or args.password is not None:
            raise ValueError("--credentials-file replaces --user and --password: give one or the other")
        user, password = read_credentials_file(args.credentials_file)
    else:
        user = args.user if args.user is not None else os.environ.get(ENV_USER, "")
        password = args.password if args.password is not None else os.environ.get(ENV_PASSWORD, "")
        if args.password is not None:
            warn(
                NAME,
                "--password is visible to every user of this machine (ps, /proc); "
                "use --credentials-file or %s" % ENV_PASSWORD,
            )
    if len(user) > 6 or len(password) > 10:
        raise ValueError("the username is at most 6 and the password at most 10 characters")
    if not (user + password).isascii() or not (user + password).isprintable():
        raise ValueError("the username and password must be printable ASCII")
    return user, password


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
        NAME,
        help="serve a GLIMPSE 5.0 snapshot of a capture over SoupBinTCP 4.0",
        description="GLIMPSE 5.0 is NASDAQ's snapshot service for TotalView-ITCH: a client logs in over "
        "SoupBinTCP 4.0 (TCP), receives the state of every book as ITCH 5.0 messages (stock "
        "directory, trading action, Reg SHO, LULD collar, then every live order as an Add Order, "
        "one per sequenced data packet), then End of Snapshot with the MoldUDP64 sequence number "
        "at which the live feed continues the snapshot. This command indexes a pcap/pcapng "
        "capture (gzip or zstd too), replays one session's messages before --at (or --at-time; "
        "default: all of them) into books, builds the snapshot from the books, prints what it "
        "holds and serves it to up to --max-clients clients at once (one thread each) until "
        "SIGINT/SIGTERM, then prints the counters. Wrong credentials get Login Rejected; malformed "
        "logins, clients not logged in within --login-timeout, slow and idle clients are dropped "
        "and counted; connections past --max-clients are closed at once and counted; when accept() "
        "fails (out of file descriptors) the server pauses (up to 0.5 s) rather than spin. "
        "Credentials come from --credentials-file, or " + ENV_USER + " / " + ENV_PASSWORD + " in "
        "the environment, or --user / --password (which ps shows to every user); none means any "
        "client that can connect gets the snapshot (warned, as is a wildcard --listen). "
        "Exit status: 0 ok, 1 the input cannot be served, 2 usage.",
    )
    w.add_argument("input", metavar="INPUT", help="pcap or pcapng capture (gzip or zstd too); not a BinaryFILE")
    w.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="TCP address to serve on (port 0: any free port, printed at start-up)",
    )
    at = w.add_mutually_exclusive_group()
    at.add_argument(
        "--at", type=int, metavar="SEQ", help="snapshot before MoldUDP64 sequence SEQ (the live feed continues at SEQ)"
    )
    at.add_argument(
        "--at-time",
        metavar="HH:MM:SS[.fff]",
        help="snapshot before the first message with an ITCH timestamp at or after this time",
    )
    w.add_argument("--session", metavar="S", help="MoldUDP64 session to snapshot (needed when the capture has several)")
    w.add_argument(
        "--user",
        metavar="U",
        help="username clients must log in with (<= 6 characters; default $%s, else none)" % ENV_USER,
    )
    w.add_argument(
        "--password",
        metavar="P",
        help="password clients must log in with (<= 10 characters; default $%s, else none); "
        "visible in ps: prefer --credentials-file or the environment" % ENV_PASSWORD,
    )
    w.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="read USER:PASSWORD from the first line of FILE (keep it mode 600) instead of --user / --password",
    )
    w.add_argument(
        "--max-clients",
        type=_max_clients,
        default=64,
        metavar="N",
        help="connections served at once (default 64); more are closed at once and counted",
    )
    w.add_argument(
        "--login-timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="a connection must have logged in this long after it was accepted, however many "
        "bytes it sends meanwhile (default 5)",
    )
    w.add_argument(
        "--stats-json",
        metavar="FILE",
        help="on exit, write the counters (connections, logins, snapshots served, drops) and "
        "what the snapshot held as JSON",
    )
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
    try:
        user, password = credentials(args)
    except (OSError, ValueError) as exc:
        return fail(NAME, "credentials: %s" % exc, EXIT_USAGE)
    try:
        snap = build_snapshot(args.input, at_seq=args.at, at_time_ns=at_time, session=args.session)
        print(describe_snapshot(snap), flush=True)
        log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        server = GlimpseServer(
            snap,
            host,
            port,
            user=user,
            password=password,
            log=log,
            max_clients=args.max_clients,
            login_timeout_s=args.login_timeout,
        )
    except SnapshotError as exc:
        return fail(NAME, exc, EXIT_INPUT)
    except MemoryError:
        return fail(NAME, "%s does not fit in memory" % args.input, EXIT_INPUT)
    except KeyboardInterrupt:
        return fail(NAME, "interrupted while building the snapshot", EXIT_INTERRUPTED)

    if not user and not password:
        warn(NAME, "no credentials: any client that can connect gets the snapshot")
    warn_if_wildcard(NAME, server.address, "anyone who can reach this machine can ask for the snapshot")
    serve_until_signal(
        server,
        "listening on tcp %s:%d (session %r, sequence %d); Ctrl-C to stop"
        % (server.address[0], server.address[1], snap.session, snap.sequence),
    )
    st = server.stats()
    print(
        "stopped: connections %s, logins accepted %s, snapshots served %s, messages sent %s, bytes sent %s"
        % tuple(
            format(st[k], ",")
            for k in ("connections", "logins_accepted", "snapshots_served", "messages_sent", "bytes_sent")
        )
    )
    print(
        "dropped: logins rejected %s, malformed logins %s, slow clients %s, client timeouts %s"
        % (
            ", ".join("%s %s" % (k, format(v, ",")) for k, v in st["logins_rejected"].items()),
            format(st["malformed_logins"], ","),
            format(st["slow_clients_dropped"], ","),
            format(st["client_timeouts"], ","),
        )
    )
    print(
        "limits: refused connections %s (max clients %d), accept errors %s, login timeouts %s"
        % (
            format(st["refused_connections"], ","),
            server.max_clients,
            format(st["accept_errors"], ","),
            format(st["login_timeouts"], ","),
        )
    )
    if args.stats_json:
        try:
            write_stats_json(server, args.stats_json)
        except OSError as exc:
            return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
    return EXIT_OK
