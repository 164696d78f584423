"""`feedhandler run`: receive a feed through DPDK (kernel bypass) into the replay pipeline."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from . import argtypes
from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .options import add_pipeline_options, load_channels, replay_config
from .output import print_stats, write_json, write_latency

NAME = "run"


def register(sub: Any) -> argparse.ArgumentParser:
    d = sub.add_parser(
        NAME, help="receive a feed through DPDK (kernel bypass) into the same pipeline",
        description="Receive exchange multicast in user space through DPDK: the EAL arguments are passed "
                    "through (e.g. \"-l 0 --no-huge --no-pci -m 512 --file-prefix fh "
                    "--vdev=net_pcap0,rx_pcap=day.pcap\" on a laptop, or \"-l 2 -a 0000:3b:00.0\" with a NIC "
                    "bound to vfio-pci, see scripts/dpdk/README.md). The burst loop is C and feeds the "
                    "replay pipeline (sessions, books, shared memory). Stops on Ctrl-C, after --duration, or "
                    "when every stream has ended its session.")
    d.add_argument("--dpdk", required=True, metavar="EAL_ARGS", help="DPDK EAL arguments, as one string")
    d.add_argument("--port", type=argtypes.nonneg, default=0, help="DPDK port id (default 0)")
    d.add_argument("--mbufs", type=argtypes.positive, default=8191, help="mbuf pool size (default 8191; fits -m 512)")
    d.add_argument("--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long (default: no limit)")
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
    with run:
        print("dpdk: %s" % run.chosen, file=sys.stderr)
        rc = EXIT_OK
        try:
            run.run(duration_s=args.duration, stop_on_eos=not args.no_eos_stop)
        except KeyboardInterrupt:
            fail(NAME, "interrupted; counters so far:", EXIT_INTERRUPTED)
            rc = EXIT_INTERRUPTED
        except DpdkError as exc:
            rc = fail(NAME, exc, EXIT_INPUT)
        stats = run.stats()
        print_stats(stats)
        d = stats["dpdk"]
        print("dpdk port: ipackets %s, imissed %s, ierrors %s, rx_nombuf %s; %s bursts in %s polls" % tuple(
            format(d[k], ",") for k in ("ipackets", "imissed", "ierrors", "rx_nombuf", "bursts", "polls")))
        assert run.replay is not None
        if args.dump_books:
            try:
                run.replay.dump_books(args.dump_books, args.depth)
            except ReplayError as exc:
                return fail(NAME, exc, EXIT_INPUT)
        if args.latency_json:
            write_latency(args.latency_json, run.replay, stats)
        if args.stats_json:
            try:
                write_json(args.stats_json, stats)
            except OSError as exc:
                return fail(NAME, "cannot write --stats-json: %s" % exc, EXIT_INPUT)
        return rc
