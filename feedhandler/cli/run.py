"""`feedhandler run`: receive a feed through DPDK (kernel bypass) into the replay pipeline."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from . import argtypes
from .base import EXIT_INPUT, EXIT_OK, EXIT_USAGE, StopSignals, fail
from .options import add_pipeline_options, load_channels, replay_config
from .output import finish_outputs, open_command_outputs, print_stats

NAME = "run"


def register(sub: Any) -> argparse.ArgumentParser:
    d = sub.add_parser(
        NAME,
        help="receive a feed through DPDK (kernel bypass) into the same pipeline",
        description="Receive exchange multicast in user space through DPDK: the EAL arguments are passed "
        'through (e.g. "-l 0 --no-huge --no-pci -m 512 --file-prefix fh '
        '--vdev=net_pcap0,rx_pcap=day.pcap" on a laptop, or "-l 2 -a 0000:3b:00.0" with a NIC '
        "bound to vfio-pci, see scripts/dpdk/README.md). The burst loop is C and feeds the "
        "replay pipeline (sessions, books, shared memory). Stops on Ctrl-C, SIGTERM or SIGHUP (after "
        "the burst in hand; outputs written, a --shm segment marked stopped, exit 128 + the "
        "signal's number: 130, 143, 129), after --duration, or when every stream has ended its "
        "session. Every output file is opened before the port starts (exit 2 when one cannot "
        "be), and each is written whatever becomes of the others.",
    )
    d.add_argument("--dpdk", required=True, metavar="EAL_ARGS", help="DPDK EAL arguments, as one string")
    d.add_argument("--port", type=argtypes.nonneg, default=0, help="DPDK port id (default 0)")
    d.add_argument("--mbufs", type=argtypes.positive, default=8191, help="mbuf pool size (default 8191; fits -m 512)")
    d.add_argument(
        "--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long (default: no limit)"
    )
    d.add_argument("--no-eos-stop", action="store_true", help="keep running after every stream's end of session")
    add_pipeline_options(d)
    d.set_defaults(func=command)
    return d


def command(args: argparse.Namespace) -> int:
    """Kernel-bypass receive: the replay pipeline fed by a DPDK port."""
    from ..dpdk import DpdkRun, backend
    from ..errors import ConfigError, DpdkError, ReplayError

    try:
        backend()
    except DpdkError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    try:
        channels = load_channels(args.config)
    except ConfigError as exc:
        return fail(NAME, exc, EXIT_USAGE)
    try:
        run = DpdkRun(args.dpdk, port=args.port, mbufs=args.mbufs, config=replay_config(args, channels=channels))
    except (DpdkError, ReplayError) as exc:
        return fail(NAME, exc, EXIT_INPUT)
    with run, StopSignals() as sig:
        print("dpdk: %s" % run.chosen, file=sys.stderr)
        assert run.replay is not None
        sig.on_stop(run.replay.stop)
        files, problems = open_command_outputs(NAME, args, "received")
        rc = EXIT_OK
        if problems:
            rc = EXIT_USAGE
            sig.work_done()
            run.replay.stop()
            run.replay.finish()
        else:
            try:
                run.run(duration_s=args.duration, stop_on_eos=not args.no_eos_stop)
            except KeyboardInterrupt:  # no handler installed (not the main thread)
                sig.signum = sig.signum or signal.SIGINT
            except DpdkError as exc:
                rc = fail(NAME, exc, EXIT_INPUT)
            sig.work_done()
            if sig.signum is not None:
                rc = sig.status
                fail(NAME, "interrupted (%s); counters so far:" % sig.name, rc)
        stats = run.stats()
        if not problems:
            print_stats(stats)
            d = stats["dpdk"]
            print(
                "dpdk port: ipackets %s, imissed %s, ierrors %s, rx_nombuf %s; %s bursts in %s polls"
                % tuple(format(d[k], ",") for k in ("ipackets", "imissed", "ierrors", "rx_nombuf", "bursts", "polls"))
            )
        stats_doc = dict(stats)
        stats_doc["stopped_by"] = sig.name or None
        return finish_outputs(NAME, files, problems, run.replay, stats, stats_doc, rc, args.depth)
