"""Option groups: the pipeline options `replay` and `run` share, and the one place
that turns them into a :class:`~feedhandler.config.ReplayConfig`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from . import argtypes

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Channel, ReplayConfig

__all__ = ["add_pipeline_options", "replay_config", "load_channels", "PIPELINE_FIELDS"]

#: Pipeline options whose value goes to the ReplayConfig field of the same name.
PIPELINE_FIELDS = (
    "mode",
    "shm",
    "depth",
    "max_orders",
    "max_instruments",
    "max_levels",
    "ring_events",
    "gap_window_us",
    "gap_buffer",
    "silence_ms",
    "cores",
    "snapshot",
    "snapshot_user",
    "snapshot_password",
    "snapshot_timeout_ms",
)


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    """The pipeline options `replay` and `run` share (each is a ReplayConfig field,
    see :func:`replay_config`)."""
    p.add_argument(
        "--latency-sample",
        type=argtypes.positive,
        default=1,
        metavar="N",
        help="with --latency-json, stamp every Nth packet only (default 1: every packet). A "
        "stamped packet costs one TSC read (its start is the end of the packet before) and a "
        "few histogram updates; docs/latency.md has the measured cost",
    )
    p.add_argument(
        "--latency-stages",
        type=argtypes.positive,
        default=8,
        metavar="N",
        help="with --latency-json, split the processing into decode, book and publish on every "
        "Nth stamped packet (default 8; 1: every one, at two more TSC reads a packet); the "
        "other stages cover every stamped packet",
    )
    p.add_argument(
        "--latency-json",
        metavar="FILE",
        help="stamp every packet with the TSC and write per-stage latency (rx->start, decode, "
        "book, publish, processing, rx->published; ns: count, min, p50, p90, p99, p99.9, "
        "p99.99, max, per core, and the percentile distribution), the messages-per-packet "
        "distribution, the achieved rate and the machine (CPU, cores, TSC Hz, invariant TSC). "
        "DPDK: rx is the burst's TSC stamp. With --speed, latency counts from when each packet was due, so a replay that falls "
        "behind shows it. Read it with scripts/latency_report.py",
    )
    p.add_argument(
        "--stats-json",
        metavar="FILE",
        help="write counters as JSON: packets, messages, by_type, gaps, recovered, "
        "duplicates, errors, elapsed_s, msgs_per_s (and more)",
    )
    p.add_argument(
        "--shm",
        metavar="NAME",
        help="publish books, events and counters to /dev/shm/NAME (mode 0600) for readers in "
        "other processes (feedhandler.shm.attach, `feedhandler book`, `feedhandler stats`); "
        "the segment stays after the replay ends, marked finished (stopped when "
        "interrupted by SIGINT, SIGTERM or SIGHUP)",
    )
    p.add_argument(
        "--depth",
        type=argtypes.depth,
        default=10,
        metavar="N",
        help="price levels per side published and dumped (1..64, default 10)",
    )
    p.add_argument(
        "--dump-books",
        metavar="FILE.csv",
        help="write the final books: locate,symbol,side,level,price,shares,orders "
        "(top --depth levels per side, rows by locate, B before S, level)",
    )
    p.add_argument(
        "--mode",
        choices=["publish", "book", "decode"],
        default="publish",
        help="pipeline stages: publish = decode + books + shared memory (default); "
        "book = no publishing; decode = decode only (for benchmarks)",
    )
    p.add_argument(
        "--max-orders",
        type=argtypes.positive,
        default=0,
        metavar="N",
        help="live-order capacity, preallocated (default 2097152); the order window indexed by "
        "reference holds 8x this many 16-byte entries (at most 2^24: 256 MiB), faulted in at "
        "start-up, per core",
    )
    p.add_argument(
        "--max-instruments",
        type=argtypes.positive,
        default=0,
        metavar="N",
        help="instrument capacity = highest stock locate accepted (default and max 65535: every locate)",
    )
    p.add_argument(
        "--max-levels",
        type=argtypes.positive,
        default=0,
        metavar="N",
        help="price-level capacity over all instruments and sides (default 4194304)",
    )
    p.add_argument(
        "--ring-events",
        type=argtypes.pow2,
        default=0,
        metavar="N",
        help="event ring capacity, a power of two (default 1048576)",
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="channel config: [[channel]] tables with name, line_a, line_b (optional), rerequest "
        "(optional), snapshot (optional GLIMPSE server), core; datagrams to other groups are skipped and counted. Without it "
        "every (UDP port, MoldUDP64 session) is a channel and every group carrying it a line",
    )
    p.add_argument(
        "--cores",
        type=argtypes.cpulist,
        default=None,
        metavar="LIST",
        help="CPUs to run on, e.g. 0,1 or 2-5: one pinned thread each (run: one RX queue each, "
        "steered by the device); replay shares MoldUDP64 streams (channels) out between them "
        "as NIC steering would (BinaryFILE messages by stock locate); books and counters are "
        "the same whatever the count (default: one thread)",
    )
    p.add_argument(
        "--silence-ms",
        type=argtypes.positive,
        default=0,
        metavar="MS",
        help="a stream with no packet, not even a heartbeat, for this long (receive time) is "
        "flagged SILENT in shared memory with its instruments, until it speaks again "
        "(default 3000; MoldUDP64 heartbeats come every second)",
    )
    p.add_argument(
        "--gap-window-us",
        type=argtypes.positive,
        default=0,
        metavar="US",
        help="A/B arbitration: how long (receive time) a hole in a stream waits for the other "
        "line's copy before its messages count as gaps (default 1000)",
    )
    p.add_argument(
        "--gap-buffer",
        type=argtypes.positive,
        default=0,
        metavar="N",
        help="packets that can be held behind holes, all streams (default 4096); when full, "
        "the oldest hole is given up early and counted (gap_buffer_full)",
    )
    p.add_argument(
        "--snapshot",
        metavar="HOST:PORT",
        default=None,
        help="GLIMPSE 5.0 snapshot server (SoupBinTCP 4.0, e.g. `feedhandler glimpse-server`) for "
        "streams whose channel names none: each stream starts from a snapshot (late join: "
        "its packets are held, nothing is published before the snapshot is applied; held "
        "packets below the snapshot's sequence are dropped as contained), and a gap neither "
        "line nor the re-request server fills is repaired from a new snapshot (instruments "
        "flagged STALE until then). Counters: snapshots, snapshot_messages, "
        "snapshot_failures, snapshot_buffered, snapshot_contained, snapshot_recover_ns",
    )
    p.add_argument(
        "--snapshot-user",
        default="",
        metavar="USER",
        help="SoupBinTCP login username, up to 6 characters (default empty)",
    )
    p.add_argument(
        "--snapshot-password",
        default="",
        metavar="PASSWORD",
        help="SoupBinTCP login password, up to 10 characters (default empty)",
    )
    p.add_argument(
        "--snapshot-timeout-ms",
        type=argtypes.positive,
        default=0,
        metavar="MS",
        help="one deadline per snapshot recovery (a late join or a hole): connect, login, up to "
        "3 tries and the receiving all fit in it, and server heartbeats extend nothing; past it "
        "the stream goes on without a snapshot, counted in snapshot_failures, its gap counted "
        "and its instruments flagged STALE (default 5000). A snapshot may be at most "
        "--max-orders x 42 + --max-instruments x 1024 + 64 KiB bytes; a longer one is refused "
        "(docs/recovery.md)",
    )


def replay_config(args: argparse.Namespace, **fields: Any) -> "ReplayConfig":
    """The ReplayConfig of the pipeline options in ``args`` (see :func:`add_pipeline_options`),
    with the command's own ``fields`` (channels, speed, rerequest, ...).  Raises
    ReplayConfigError (a ReplayError) for a value the config refuses."""
    from ..config import ReplayConfig

    options = {name: getattr(args, name) for name in PIPELINE_FIELDS}
    options["latency"] = args.latency_sample if args.latency_json else 0
    options["latency_stages"] = args.latency_stages
    options.update(fields)
    return ReplayConfig(**options)


def load_channels(
    path: Optional[str], cores: Optional[Sequence[int]] = None, announce: bool = False
) -> "Optional[List[Channel]]":
    """The channels of ``--config FILE`` (None without one); ``announce`` prints each
    on stderr.  Raises ConfigError."""
    if not path:
        return None
    from ..config import load

    channels = load(path, cores)
    if announce:
        for ch in channels:
            print(
                "channel %-12s core %d  line A %s:%d%s"
                % (ch.name, ch.core, ch.line_a[0], ch.line_a[1], "  line B %s:%d" % ch.line_b if ch.line_b else ""),
                file=sys.stderr,
            )
            if ch.rerequest:
                print("channel %-12s re-request server %s:%d" % ((ch.name,) + ch.rerequest), file=sys.stderr)
            if ch.snapshot:
                print("channel %-12s snapshot server %s:%d" % ((ch.name,) + ch.snapshot), file=sys.stderr)
    return channels
