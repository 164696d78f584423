"""`feedhandler send`: the frames of a capture onto a DPDK port at a controlled rate."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional, Tuple

from . import argtypes
from .base import EXIT_INPUT, EXIT_OK, EXIT_USAGE, StopSignals, fail
from .output import open_outputs, write_json

NAME = "send"


def _speed(s: str) -> float:
    """0 or max (no pacing), realtime (1) or a factor."""
    return 0.0 if s.strip() in ("0", "0.0") else argtypes.speed(s)


def _rate(s: str) -> float:
    try:
        v = float(s.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not a rate in messages/s: %r" % s)
    if not 0 < v <= 1e9:
        raise argparse.ArgumentTypeError("the rate must be above 0 and at most 1e9 msgs/s, got %s" % s)
    return v


def _burst(s: str) -> Tuple[float, float, float]:
    from ..send import parse_burst

    try:
        return parse_burst(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _between(what: str, unit: str, lo: float, hi: float) -> Any:
    """An argparse type: a number of `unit` in lo..hi, else a message naming `what`."""

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "not a number of %s: %r" % ({"us": "microseconds", "s": "seconds"}[unit], s)
            )
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(
                "the %s must be %s..%s %s, got %s" % (what, format(lo, ",g"), format(hi, ",.0f"), unit, s)
            )
        return v

    return parse


_wait = _between("wait", "us", 1, 60e6)
_linger = _between("linger", "s", 0, 86400)
_lag = _between("lag", "us", 0, 60e6)


def register(sub: Any) -> argparse.ArgumentParser:
    d = sub.add_parser(
        NAME,
        help="send the frames of a capture onto a DPDK port at a controlled rate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Send the frames of a capture (pcap or pcapng; plain, gzip or zstd) onto a DPDK
port, paced on the TSC by a C loop on the EAL's first lcore: to test a receiver
(`feedhandler run`) with real packets at a known rate. The capture is loaded
into memory before the send starts.

Pacing: --speed scales the capture's own clock (1, the default: as captured;
0 or max: as fast as the port takes the frames); --rate re-times the frames so
that their messages (a MoldUDP64 datagram's message count, a PITCH unit's, an
IEX-TP segment's; 1 for any other frame; heartbeats 0) go out evenly at that many per second. --burst
FACTOR:MS:EVERY_S multiplies the rate by FACTOR for the first MS milliseconds
of every EVERY_S seconds (a microburst). --loop N sends the capture N times
back to back: sequence numbers are NOT rewritten, so a receiver counts every
repeat as duplicates -- the loop is for load, not for new messages.

Lines: --a-groups and --b-groups name the multicast groups of line A and line
B (e.g. a `feedhandler gen --lines ab` day: A 233.54.12.111, B 233.49.196.111);
--loss-a / --loss-b drop each frame of that line with a probability (seeded by
--seed: the same arguments drop the same frames), --lag-b sends line B later.

Every IPv4 frame carries a 16-byte TX stamp trailer after its IP datagram (off
with --no-stamp): "FHTS", a u32 frame counter and the u64 TSC read just before
its burst was handed to the port, all little-endian, then zero padding to 60
bytes; receivers read the IP total length and ignore it. Stops on Ctrl-C,
SIGTERM or SIGHUP after the burst in hand (exit 128 + the signal's number).
Before the first frame it waits for the port's link (--link-wait: a memif
server's link comes up when its client connects).
Exit status: 0 sent, 1 the send loop failed, the link stayed down or
--stats-json could not be written, 2 usage: a bad option, a capture that cannot be read, bad EAL
arguments or a port that cannot be started (nothing sent).""",
    )
    d.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng capture (plain, gzip or zstd)")
    d.add_argument("--dpdk", required=True, metavar="EAL_ARGS", help="DPDK EAL arguments, as one string")
    d.add_argument("--port", type=argtypes.nonneg, default=0, help="DPDK port id (default 0)")
    d.add_argument("--mbufs", type=argtypes.positive, default=8191, help="mbuf pool size (default 8191)")
    pace = d.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X",
        help="scale the capture's clock: 1 = as captured (default), 2 = twice as fast, 0 or max = no pacing",
    )
    pace.add_argument(
        "--rate", type=_rate, metavar="MSGS_PER_S", help="re-time the frames: their messages go out evenly at this rate"
    )
    d.add_argument(
        "--burst",
        type=_burst,
        metavar="FACTOR:MS:EVERY_S",
        help="a microburst: FACTOR times the rate for MS milliseconds every EVERY_S seconds (e.g. 10:5:1)",
    )
    d.add_argument(
        "--loop",
        type=argtypes.positive,
        default=1,
        metavar="N",
        help="send the capture N times (sequence numbers are not rewritten: repeats are duplicates)",
    )
    d.add_argument("--a-groups", metavar="GROUP[,GROUP]", help="line A's multicast groups (for --loss-a)")
    d.add_argument("--b-groups", metavar="GROUP[,GROUP]", help="line B's multicast groups (for --loss-b, --lag-b)")
    d.add_argument("--loss-a", type=argtypes.probability, default=0.0, metavar="P", help="drop line A frames at P")
    d.add_argument("--loss-b", type=argtypes.probability, default=0.0, metavar="P", help="drop line B frames at P")
    d.add_argument("--lag-b", type=_lag, default=0.0, metavar="US", help="send line B frames US microseconds later")
    d.add_argument("--seed", type=argtypes.nonneg, default=1, metavar="S", help="seed of the loss draws (default 1)")
    d.add_argument(
        "--linger",
        type=_linger,
        default=0.0,
        metavar="SECONDS",
        help="after the last frame, keep the port up this long (a stop signal ends it early, exit 0) before "
        "closing it: stop the receiver first. DPDK 22.11's memif driver can crash a peer that is polling "
        "while the other side disconnects",
    )
    d.add_argument(
        "--tx-wait-us",
        type=_wait,
        default=200.0,
        metavar="US",
        help="how long a burst the port does not take (its ring full) is offered again before its frames count "
        "as TX drops (default 200); a long wait makes the sender wait for a slow receiver instead (back-pressure, "
        "e.g. over memif), so that nothing is lost on the way",
    )
    d.add_argument(
        "--link-wait",
        type=_linger,
        default=10.0,
        metavar="SECONDS",
        help="before sending, wait up to this long for the port's link to come up (a memif server's comes up "
        "when its client connects); still down then: nothing is sent, exit 1 (default 10; 0: send at once)",
    )
    d.add_argument("--stats-json", metavar="FILE", help="write the counters as JSON")
    d.add_argument("--no-stamp", action="store_true", help="send the frames as captured, without the TX trailer")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    d.set_defaults(func=command)
    return d


def _summary(st: dict) -> str:
    inj = st["injected_loss"]
    return (
        "sent %s frames, %s messages, %s bytes in %.3f s: %s msgs/s, %s frames/s; tx dropped %s, no mbuf %s, "
        "late %s (max %.1f us), injected loss A %s B %s; port %s (%s)"
        % (
            format(st["frames"], ","),
            format(st["messages"], ","),
            format(st["bytes"], ","),
            st["elapsed_s"],
            format(int(st["msgs_per_s"]), ","),
            format(int(st["frames_per_s"]), ","),
            format(st["tx_dropped"], ","),
            format(st["nombuf"], ","),
            format(st["late"], ","),
            st["max_late_us"],
            format(inj["a"], ","),
            format(inj["b"], ","),
            st["port"]["id"],
            st["port"]["driver"],
        )
    )


def command(args: argparse.Namespace) -> int:
    """Load, schedule, start the port, send; counters printed and written."""
    from ..dpdk import backend
    from ..errors import ConfigError, DpdkError
    from ..send import CaptureError, Sender, build_schedule, load_capture, parse_groups

    try:
        backend()
    except DpdkError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    try:
        a_groups = parse_groups(args.a_groups, "--a-groups")
        b_groups = parse_groups(args.b_groups, "--b-groups")
    except ConfigError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    files, problems = open_outputs({"--stats-json": args.stats_json})
    if problems:
        for msg in problems.values():
            fail(NAME, msg + " (nothing sent)", EXIT_USAGE)
        return EXIT_USAGE
    try:
        cap = load_capture(args.capture)
        plan = build_schedule(
            cap,
            speed=1.0 if args.speed is None else args.speed,
            rate=args.rate,
            burst=args.burst,
            loops=args.loop,
            loss_a=args.loss_a,
            loss_b=args.loss_b,
            a_groups=a_groups,
            b_groups=b_groups,
            lag_b_us=args.lag_b,
            seed=args.seed,
        )
    except (CaptureError, ValueError) as exc:
        return fail(NAME, exc, EXIT_USAGE)
    data_room = int(cap.length.max()) + 16 + 60
    try:
        tx = Sender(args.dpdk, port=args.port, mbufs=args.mbufs, data_room=data_room)
    except DpdkError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    rc = EXIT_OK
    st: Optional[dict] = None
    printed = False
    with tx, StopSignals(on_stop=tx.stop) as sig:
        print(
            "send: %s (%s%s): %s frames, %s messages; dpdk %s"
            % (
                args.capture,
                cap.format,
                ", " + cap.compression if cap.compression else "",
                format(cap.frames, ","),
                format(cap.messages, ","),
                tx.chosen,
            ),
            file=sys.stderr,
        )
        up = not args.link_wait or tx.wait_link(args.link_wait, stopped=lambda: sig.signum is not None)
        if not up and sig.signum is None:
            rc = fail(
                NAME,
                "port %d: the link is still down after %g s (a memif server: has its client started?); "
                "nothing sent" % (args.port, args.link_wait),
                EXIT_INPUT,
            )
        elif up:
            try:
                st = tx.send(
                    cap, plan, stamp=not args.no_stamp, progress=False if args.quiet else None, wait_us=args.tx_wait_us
                )
            except DpdkError as exc:
                rc = fail(NAME, exc, EXIT_INPUT)
        if args.linger and st is not None and sig.signum is None:
            # Sent: the port stays up (its peer is not disconnected) until the
            # linger ends or a stop signal comes, which ends it as planned.
            print(_summary(st), flush=True)
            printed = True
            end = time.monotonic() + args.linger
            while time.monotonic() < end and sig.signum is None:
                time.sleep(0.02)
            sig.signum = None
        sig.work_done()
        if sig.signum is not None:
            rc = sig.status
            fail(NAME, "interrupted (%s); counters so far:" % sig.name, rc)
    if st is not None:
        if not printed:
            print(_summary(st))
        st["capture"] = {
            "path": args.capture,
            "format": cap.format,
            "compression": cap.compression,
            "frames": cap.frames,
            "messages": cap.messages,
        }
        st["stopped_by"] = sig.name or None
        st["exit_status"] = rc
    f = files.get("--stats-json")
    if f is not None:
        try:
            write_json(f, st if st is not None else {"exit_status": rc})
            f.close()
        except OSError as exc:
            rc = rc or fail(NAME, "--stats-json: %s" % exc, EXIT_INPUT)
    return rc
