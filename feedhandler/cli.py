"""The `feedhandler` command line (docs/architecture.md gives the contract)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

EXIT_OK = 0
EXIT_INPUT = 1      # an input was unreadable, corrupt or truncated
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return "%.2f %s" % (n / div, unit)
    return "%.0f" % n


def print_stats(stats: dict, out=sys.stdout, inputs=None) -> None:
    w = out.write
    if inputs:
        for i in inputs:
            status = "ok" if i.ok else ("PARTIAL" if i.partial else "FAILED")
            w("input     %s  [%s%s]  %s\n" % (i.path, i.format, ", gzip" if i.gzip else "", status))
    w("packets       %14s\n" % format(stats["packets"], ","))
    w("mold packets  %14s   heartbeats %s, end of session %s, streams %s\n" % (
        format(stats["mold_packets"], ","), format(stats["heartbeats"], ","),
        format(stats["end_of_session"], ","), stats["streams"]))
    if "pkt_applied" in stats:
        from .core import ledger
        lg = ledger(stats)
        w("  where they went: %s applied, %s duplicate, %s heartbeat, %s end of session, %s rejected, %s held%s\n" % (
            format(lg["pkt_applied"], ","), format(lg["pkt_duplicate"], ","), format(lg["heartbeats"], ","),
            format(lg["end_of_session"], ","), format(lg["pkt_rejected"], ","), format(lg["pkt_held"], ","),
            "" if lg["unaccounted"] == 0 else "  (UNACCOUNTED %d: please report)" % lg["unaccounted"]))
    w("messages      %14s\n" % format(stats["messages"], ","))
    total = stats["messages"] or 1
    for t, n in sorted(stats["by_type"].items(), key=lambda kv: (-kv[1], kv[0])):
        w("    %s %16s  %6.2f%%\n" % (t, format(n, ","), 100.0 * n / total))
    w("gaps %s, recovered %s, duplicates %s, session changes %s, silences %s\n" % (
        format(stats["gaps"], ","), format(stats["recovered"], ","), format(stats["duplicates"], ","),
        format(stats.get("session_changes", 0), ","), format(stats.get("silences", 0), ",")))
    if stats.get("nic_imissed") or stats.get("nic_ierrors") or stats.get("nic_rx_nombuf"):
        w("NIC drops: imissed %s, ierrors %s, rx_nombuf %s\n" % (
            format(stats["nic_imissed"], ","), format(stats["nic_ierrors"], ","), format(stats["nic_rx_nombuf"], ",")))
    if stats["errors"]:
        w("errors (skipped, by reason):\n")
        for k, v in sorted(stats["errors"].items()):
            w("    %-24s %12s\n" % (k, format(v, ",")))
    else:
        w("errors        none\n")
    w("elapsed       %.6f s decode, %s msgs/s\n" % (stats["elapsed_s"], _human(stats["msgs_per_s"])))


def _write_latency(args, replay, stats) -> None:
    """--latency-json: the document, and a short summary on stdout."""
    from .latency import collect
    doc = collect(replay, stats)
    doc["speed"] = getattr(args, "speed", 0.0) or "max"
    with open(args.latency_json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    for name in ("decode", "book", "publish", "rx_to_published"):
        t = doc["stages"][name]
        print("latency %-16s p50 %7d ns  p99 %7d ns  p99.9 %8d ns  max %9d ns  (%d packets)" % (
            name.replace("_to_", "->"), t["p50"], t["p99"], t["p99_9"], t["max"], t["count"]))
    m = doc["messages_per_packet"]
    print("messages/packet  mean %.2f  p50 %d  p99 %d  max %d" % (m["mean"], m["p50"], m["p99"], m["max"]))


def cmd_replay(args) -> int:
    from .config import ConfigError, load
    from .replay import Replay, ReplayError

    channels = None
    if args.config:
        try:
            channels = load(args.config, args.cores)
        except ConfigError as exc:
            print("feedhandler replay: %s" % exc, file=sys.stderr)
            return EXIT_USAGE
        for ch in channels:
            print("channel %-12s core %d  line A %s:%d%s" % (
                ch.name, ch.core, ch.line_a[0], ch.line_a[1],
                "  line B %s:%d" % ch.line_b if ch.line_b else ""), file=sys.stderr)
            if ch.rerequest:
                print("channel %-12s re-request server %s:%d" % ((ch.name,) + ch.rerequest), file=sys.stderr)
    rerequest = None
    if args.rerequest:
        from .config import parse_endpoint
        try:
            rerequest = parse_endpoint(args.rerequest, "--rerequest")
        except ConfigError as exc:
            print("feedhandler replay: %s" % exc, file=sys.stderr)
            return EXIT_USAGE
    try:
        r = Replay(mode=args.mode, shm=args.shm, depth=args.depth, max_orders=args.max_orders,
                   max_instruments=args.max_instruments, max_levels=args.max_levels,
                   ring_events=args.ring_events, gap_window_us=args.gap_window_us, gap_buffer=args.gap_buffer,
                   cores=args.cores, speed=args.speed, channels=channels, rerequest=rerequest,
                   rerequest_timeout_ms=args.rerequest_timeout_ms, silence_ms=args.silence_ms,
                   latency=args.latency_sample if args.latency_json else 0)
    except ReplayError as exc:
        print("feedhandler replay: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    if args.dump_books and args.mode == "decode":
        print("feedhandler replay: --dump-books needs books (not --mode decode)", file=sys.stderr)
        return EXIT_USAGE
    if args.shm:
        print("publishing to /dev/shm/%s (depth %d)" % (args.shm, args.depth), file=sys.stderr)
    results = []
    rc = EXIT_OK
    try:
        for path in args.inputs:
            res = r.run_file(path, progress=None if not args.quiet else False)
            results.append(res)
            if not res.ok:
                print("feedhandler replay: %s" % res.error, file=sys.stderr)
                rc = EXIT_INPUT
    except KeyboardInterrupt:
        print("feedhandler replay: interrupted; counters so far:", file=sys.stderr)
        rc = EXIT_INTERRUPTED
    r.finish()
    stats = r.stats()
    print_stats(stats, inputs=results)
    if args.dump_books:
        try:
            r.dump_books(args.dump_books, args.depth)
        except ReplayError as exc:
            print("feedhandler replay: %s" % exc, file=sys.stderr)
            return EXIT_INPUT
    if args.latency_json:
        _write_latency(args, r, stats)
    if args.stats_json:
        stats_out = dict(stats)
        stats_out["mode"] = args.mode
        stats_out["inputs"] = [{"path": i.path, "format": i.format, "gzip": i.gzip, "ok": i.ok,
                                "error": i.error} for i in results]
        try:
            with open(args.stats_json, "w") as f:
                json.dump(stats_out, f, indent=2, sort_keys=True)
                f.write("\n")
        except OSError as exc:
            print("feedhandler replay: cannot write --stats-json: %s" % exc, file=sys.stderr)
            return EXIT_INPUT
    return rc


def cmd_run(args) -> int:
    """Kernel-bypass receive: the replay pipeline fed by a DPDK port."""
    from .config import ConfigError, load
    from .dpdk import DpdkError, DpdkRun, backend
    from .replay import ReplayError

    try:
        backend()
    except DpdkError as exc:
        print("feedhandler run: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    channels = None
    if args.config:
        try:
            channels = load(args.config)
        except ConfigError as exc:
            print("feedhandler run: %s" % exc, file=sys.stderr)
            return EXIT_USAGE
    try:
        run = DpdkRun(args.dpdk, port=args.port, cores=args.cores, mbufs=args.mbufs, mode=args.mode, shm=args.shm, depth=args.depth,
                      max_orders=args.max_orders, max_instruments=args.max_instruments, max_levels=args.max_levels,
                      ring_events=args.ring_events, gap_window_us=args.gap_window_us, gap_buffer=args.gap_buffer,
                      silence_ms=args.silence_ms, channels=channels, latency=args.latency_sample if args.latency_json else 0)
    except (DpdkError, ReplayError) as exc:
        print("feedhandler run: %s" % exc, file=sys.stderr)
        return EXIT_INPUT
    print("dpdk: %s" % run.chosen, file=sys.stderr)
    rc = EXIT_OK
    try:
        run.run(duration_s=args.duration, stop_on_eos=not args.no_eos_stop)
    except KeyboardInterrupt:
        print("feedhandler run: interrupted; counters so far:", file=sys.stderr)
        rc = EXIT_INTERRUPTED
    except DpdkError as exc:
        print("feedhandler run: %s" % exc, file=sys.stderr)
        rc = EXIT_INPUT
    stats = run.stats()
    print_stats(stats)
    d = stats["dpdk"]
    print("dpdk port: ipackets %s, imissed %s, ierrors %s, rx_nombuf %s; %s bursts in %s polls" % tuple(
        format(d[k], ",") for k in ("ipackets", "imissed", "ierrors", "rx_nombuf", "bursts", "polls")))
    if args.dump_books:
        run.replay.dump_books(args.dump_books, args.depth)
    if args.latency_json:
        _write_latency(args, run.replay, stats)
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(stats, f, indent=2, sort_keys=True)
            f.write("\n")
    run.close()
    return rc


def _ladder(snap, depth: int) -> str:
    from .shm import FLAG_DROPPED, FLAG_OP_HALT, FLAG_STALE
    bp, bs, bo = snap.bids
    ap, as_, ao = snap.asks
    flags = [n for bit, n in ((FLAG_STALE, "STALE"), (FLAG_DROPPED, "INCOMPLETE"), (FLAG_OP_HALT, "OP-HALT"))
             if int(snap.flags) & bit]
    state = chr(int(snap.trading_state)) if int(snap.trading_state) else "?"
    lines = ["%s (locate %d)  state %s  %s  last trade %s x %d  exch ts %s" % (
        snap.symbol or "?", int(snap.locate), state, " ".join(flags) or "",
        _px(int(snap.last_trade_price)), int(snap.last_trade_shares), _hms(int(snap.exch_ts)))]
    lines.append("%8s %10s %12s | %-12s %-10s %-8s" % ("orders", "shares", "bid", "ask", "shares", "orders"))
    for i in range(max(len(bp), len(ap), 1)):
        left = "%8d %10d %12s" % (bo[i], bs[i], _px(int(bp[i]))) if i < len(bp) else " " * 32
        right = "%-12s %-10d %-8d" % (_px(int(ap[i])), as_[i], ao[i]) if i < len(ap) else ""
        lines.append("%s | %s" % (left, right))
    return "\n".join(lines)


def _px(p: int) -> str:
    return "%d.%04d" % divmod(p, 10000)


def _hms(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return "%02d:%02d:%02d.%09d" % (s // 3600, s // 60 % 60, s % 60, frac)


def cmd_book(args) -> int:
    import time
    from .shm import ShmError, attach

    try:
        seg = attach(args.shm)
        key = int(args.symbol) if args.symbol.isdigit() else args.symbol
        snap = seg.book(key)
    except (ShmError, KeyError) as exc:
        print("feedhandler book: %s" % (exc.args[0] if exc.args else exc), file=sys.stderr)
        return EXIT_INPUT
    try:
        while True:
            out = _ladder(snap, seg.depth)
            if args.once or not sys.stdout.isatty():
                print(out)
                return EXIT_OK
            sys.stdout.write("\x1b[H\x1b[2J" + out + "\n(segment %s, writer %s; Ctrl-C to quit)\n" % (
                seg.state, seg.writer_pid))
            sys.stdout.flush()
            time.sleep(args.interval)
            snap = seg.book(key)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_stats(args) -> int:
    from .shm import ShmError, attach

    try:
        seg = attach(args.shm)
        st = seg.counters()
    except ShmError as exc:
        print("feedhandler stats: %s" % exc, file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return EXIT_OK
    print("segment /dev/shm/%s: %s, writer pid %d, depth %d, %d slots, ring %d events (head %d)" % (
        args.shm, seg.state, seg.writer_pid, seg.depth, seg.n_slots - 1, seg.ring_capacity, seg.ring_head))
    print_stats(st)
    b = st["book"]
    print("book: %s live orders (peak %s); adds %s, executes %s, cancels %s, deletes %s, replaces %s, trades %s" % tuple(
        format(b[k], ",") for k in ("orders_live", "orders_peak", "adds", "executes", "cancels", "deletes",
                                    "replaces", "trades")))
    rej = {k: v for k, v in b.items() if k in ("unknown_ref", "add_replaced", "exec_clamped", "cancel_clamped",
                                               "zero_rejected", "bad_side", "locate_range", "order_full",
                                               "level_full") and v}
    print("book exceptions: %s" % (", ".join("%s %s" % (k, format(v, ",")) for k, v in rej.items()) or "none"))
    return EXIT_OK


def cmd_gen(args) -> int:
    from .gen import generate

    try:
        summary = generate(args.out, messages=args.messages, symbols=args.symbols, channels=args.channels,
                           seed=args.seed, lines=args.lines, loss_a=args.loss_a, loss_b=args.loss_b,
                           batch_ns=args.batch_ns, max_payload=args.max_payload,
                           heartbeat_ms=args.heartbeat_ms, rate=args.rate,
                           progress=None if not args.quiet else False)
    except (ValueError, OSError) as exc:
        print("feedhandler gen: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("feedhandler gen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("wrote %s.pcap, %s.bin, %s.json" % (args.out, args.out, args.out))
    print("messages %s in %s packets (line A), %d channel(s), %d symbols, seed %d" % (
        format(summary.get("messages", 0), ","), format(summary.get("packets", {}).get("a", 0), ","),
        args.channels, args.symbols, args.seed))
    if "elapsed_s" in summary and summary["elapsed_s"]:
        print("generated at %s msgs/s" % _human(summary["messages"] / summary["elapsed_s"]))
    return EXIT_OK


def cmd_rewind_server(args) -> int:
    import signal
    from .rewind import RewindError, RewindServer, describe_index, index_capture, write_stats_json

    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        print("feedhandler rewind-server: --listen needs HOST:PORT, got %r" % args.listen, file=sys.stderr)
        return EXIT_USAGE
    if not 23 <= args.max_datagram <= 65507:
        print("feedhandler rewind-server: --max-datagram must be 23..65507 bytes, got %d" % args.max_datagram,
              file=sys.stderr)
        return EXIT_USAGE
    try:
        idx = index_capture(args.input)
        for line in describe_index(idx):
            print(line)
        log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        server = RewindServer(None, host, int(port), max_datagram=args.max_datagram, index=idx, log=log)
    except RewindError as exc:
        print("feedhandler rewind-server: %s" % exc, file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print("feedhandler rewind-server: %s does not fit in memory" % args.input, file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("feedhandler rewind-server: interrupted while indexing", file=sys.stderr)
        return EXIT_INTERRUPTED

    def on_signal(signum, frame):
        server.stop()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    print("listening on udp %s:%d (max datagram %d bytes); Ctrl-C to stop" % (
        server.address[0], server.address[1], server.max_datagram), flush=True)
    try:
        server.serve_forever()
    finally:
        server.close()
        for s, h in old.items():
            signal.signal(s, h)
    st = server.stats
    print("stopped: requests %s, replies %s, messages sent %s, bytes sent %s" % tuple(
        format(st[k], ",") for k in ("requests", "replies", "messages_sent", "bytes_sent")))
    print("ignored: %s" % ", ".join("%s %s" % (k, format(v, ",")) for k, v in st["ignored"].items()))
    if args.stats_json:
        try:
            write_stats_json(server, args.stats_json)
        except OSError as exc:
            print("feedhandler rewind-server: cannot write --stats-json: %s" % exc, file=sys.stderr)
            return EXIT_INPUT
    return EXIT_OK


def _probability(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % s)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError("a probability in [0, 1) is needed, got %s" % s)
    return v


def _positive(s: str) -> int:
    try:
        v = int(s.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % s)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be positive, got %s" % s)
    return v


def _speed(s: str) -> float:
    if s == "max":
        return 0.0
    if s == "realtime":
        return 1.0
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("speed is max, realtime or a positive factor, not %r" % s)
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError("speed factor must be positive, got %s" % s)
    return v


def _cpulist(s: str):
    cpus = []
    try:
        for part in s.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                cpus.extend(range(lo, hi + 1))
            else:
                cpus.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError("not a CPU list (e.g. 0,1 or 2-5): %r" % s)
    ncpu = os.cpu_count() or 1
    bad = [c for c in cpus if c < 0 or c >= ncpu]
    if bad:
        raise argparse.ArgumentTypeError("CPU %s does not exist: this machine has CPUs 0-%d"
                                         % (",".join(map(str, bad)), ncpu - 1))
    if len(set(cpus)) != len(cpus):
        raise argparse.ArgumentTypeError("a CPU is listed twice: %r" % s)
    if len(cpus) > 32:
        raise argparse.ArgumentTypeError("at most 32 cores")
    return cpus


def _depth(s: str) -> int:
    v = _positive(s)
    if v > 64:
        raise argparse.ArgumentTypeError("depth must be 1..64, got %s" % s)
    return v


def _pow2(s: str) -> int:
    v = _positive(s)
    if v < 2 or v & (v - 1):
        raise argparse.ArgumentTypeError("must be a power of two >= 2, got %s" % s)
    return v


def _nonneg(s: str) -> int:
    try:
        v = int(s.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % s)
    if v < 0:
        raise argparse.ArgumentTypeError("must not be negative, got %s" % s)
    return v


def _pipeline_options(p) -> None:
    """Options of the pipeline that replay and run share."""
    p.add_argument("--latency-sample", type=_positive, default=1, metavar="N",
                   help="with --latency-json, stamp every Nth packet only (default 1: every packet). Each "
                        "stamped packet costs 4 TSC reads and a few histogram updates (~60 ns on the "
                        "reference VM, ~14%% of full-speed throughput at 5 messages per packet); N=8 costs ~2%%")
    p.add_argument("--latency-json", metavar="FILE",
                   help="stamp every packet with the TSC and write per-stage latency (rx->start, decode, "
                        "book, publish, processing, rx->published; ns: count, min, p50, p90, p99, p99.9, "
                        "p99.99, max, per core, and the percentile distribution), the messages-per-packet "
                        "distribution, the achieved rate and the machine (CPU, cores, TSC Hz, invariant TSC). "
                        "DPDK: rx is the burst's TSC stamp. With --speed, latency counts from when each packet was due, so a replay that falls "
                        "behind shows it. Read it with scripts/latency_report.py")
    p.add_argument("--stats-json", metavar="FILE",
                   help="write counters as JSON: packets, messages, by_type, gaps, recovered, "
                        "duplicates, errors, elapsed_s, msgs_per_s (and more)")
    p.add_argument("--shm", metavar="NAME",
                   help="publish books, events and counters to /dev/shm/NAME (mode 0600) for readers in "
                        "other processes (feedhandler.shm.attach, `feedhandler book`, `feedhandler stats`); "
                        "the segment stays after the replay ends, marked finished")
    p.add_argument("--depth", type=_depth, default=10, metavar="N",
                   help="price levels per side published and dumped (1..64, default 10)")
    p.add_argument("--dump-books", metavar="FILE.csv",
                   help="write the final books: locate,symbol,side,level,price,shares,orders "
                        "(top --depth levels per side, rows by locate, B before S, level)")
    p.add_argument("--mode", choices=["publish", "book", "decode"], default="publish",
                   help="pipeline stages: publish = decode + books + shared memory (default); "
                        "book = no publishing; decode = decode only (for benchmarks)")
    p.add_argument("--max-orders", type=_positive, default=0, metavar="N",
                   help="live-order capacity, preallocated (default 2097152); the order window indexed by "
                        "reference holds 8x this many 16-byte entries (at most 2^24: 256 MiB), faulted in at "
                        "start-up, per core")
    p.add_argument("--max-instruments", type=_positive, default=0, metavar="N",
                   help="instrument capacity = highest stock locate accepted (default 10000, max 65535)")
    p.add_argument("--max-levels", type=_positive, default=0, metavar="N",
                   help="price-level capacity over all instruments and sides (default 4194304)")
    p.add_argument("--ring-events", type=_pow2, default=0, metavar="N",
                   help="event ring capacity, a power of two (default 1048576)")
    p.add_argument("--config", metavar="FILE.toml",
                   help="channel config: [[channel]] tables with name, line_a, line_b (optional), rerequest "
                        "(optional), core; datagrams to other groups are skipped and counted. Without it "
                        "every (UDP port, MoldUDP64 session) is a channel and every group carrying it a line")
    p.add_argument("--cores", type=_cpulist, default=None, metavar="LIST",
                   help="CPUs to run on, e.g. 0,1 or 2-5: one pinned thread each (run: one RX queue each, "
                        "steered by the device); replay shares MoldUDP64 streams (channels) out between them "
                        "as NIC steering would (BinaryFILE messages by stock locate); books and counters are "
                        "the same whatever the count (default: one thread)")
    p.add_argument("--silence-ms", type=_positive, default=0, metavar="MS",
                   help="a stream with no packet, not even a heartbeat, for this long (receive time) is "
                        "flagged SILENT in shared memory with its instruments, until it speaks again "
                        "(default 3000; MoldUDP64 heartbeats come every second)")
    p.add_argument("--gap-window-us", type=_positive, default=0, metavar="US",
                   help="A/B arbitration: how long (receive time) a hole in a stream waits for the other "
                        "line's copy before its messages count as gaps (default 1000)")
    p.add_argument("--gap-buffer", type=_positive, default=0, metavar="N",
                   help="packets that can be held behind holes, all streams (default 4096); when full, "
                        "the oldest hole is given up early and counted (gap_buffer_full)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feedhandler",
        description="Low-latency NASDAQ TotalView-ITCH 5.0 / MoldUDP64 feed handler with a C core.",
        epilog="Run `feedhandler COMMAND --help` for each command's options.")
    from . import __version__
    p.add_argument("--version", action="version", version="feedhandler " + __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser(
        "replay", help="decode captures or BinaryFILEs through the C pipeline",
        description="Decode every ITCH 5.0 message of one or more inputs through the C pipeline "
                    "(Ethernet/VLAN/IPv4/UDP -> MoldUDP64 -> ITCH 5.0) and print packets, messages "
                    "per type, errors by reason, elapsed decode time and messages/s. The format of "
                    "each INPUT is detected from its first bytes: pcap (us or ns, either byte order), "
                    "pcapng, gzip (of any of these), else NASDAQ BinaryFILE. Exit status: 0 ok, "
                    "1 an input was unreadable/corrupt/truncated (counters still printed), 2 usage, "
                    "130 interrupted.")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="capture or BinaryFILE path(s), decoded in order")
    _pipeline_options(r)
    r.add_argument("--speed", type=_speed, default=0.0, metavar="max|realtime|FACTOR",
                   help="pacing: max = as fast as possible (default); realtime = the capture's own "
                        "inter-packet gaps (BinaryFILE: its ITCH timestamps), busy-waiting on the TSC; "
                        "FACTOR = that many times faster (e.g. 10, 0.5)")
    r.add_argument("--rerequest", metavar="HOST:PORT",
                   help="MoldUDP64 re-request server (e.g. `feedhandler rewind-server`) for streams whose "
                        "channel names none: holes both lines missed are re-requested before they count "
                        "as gaps; recovered messages are counted in `recovered`")
    r.add_argument("--rerequest-timeout-ms", type=_positive, default=0, metavar="MS",
                   help="wait per re-request try (3 tries; default 20)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_replay)

    d = sub.add_parser(
        "run", help="receive a feed through DPDK (kernel bypass) into the same pipeline",
        description="Receive exchange multicast in user space through DPDK: the EAL arguments are passed "
                    "through (e.g. \"-l 0 --no-huge --no-pci -m 512 --file-prefix fh "
                    "--vdev=net_pcap0,rx_pcap=day.pcap\" on a laptop, or \"-l 2 -a 0000:3b:00.0\" with a NIC "
                    "bound to vfio-pci, see scripts/dpdk/README.md). The burst loop is C and feeds the "
                    "replay pipeline (sessions, books, shared memory). Stops on Ctrl-C, after --duration, or "
                    "when every stream has ended its session.")
    d.add_argument("--dpdk", required=True, metavar="EAL_ARGS", help="DPDK EAL arguments, as one string")
    d.add_argument("--port", type=_nonneg, default=0, help="DPDK port id (default 0)")
    d.add_argument("--mbufs", type=_positive, default=8191, help="mbuf pool size (default 8191; fits -m 512)")
    d.add_argument("--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long (default: no limit)")
    d.add_argument("--no-eos-stop", action="store_true", help="keep running after every stream's end of session")
    _pipeline_options(d)
    d.set_defaults(func=cmd_run)

    b = sub.add_parser("book", help="print an instrument's book from shared memory",
                       description="Print the top-of-book ladder of one instrument (by symbol or stock locate) "
                                   "from a segment published with `replay --shm NAME`; refreshes on a terminal.")
    b.add_argument("symbol", metavar="SYMBOL", help="symbol (e.g. AAPL) or stock locate")
    b.add_argument("--shm", required=True, metavar="NAME", help="segment name under /dev/shm")
    b.add_argument("--once", action="store_true", help="print once and exit (the default when not a terminal)")
    b.add_argument("--interval", type=float, default=0.5, metavar="S", help="refresh interval (default 0.5 s)")
    b.set_defaults(func=cmd_book)

    s = sub.add_parser("stats", help="print the counters of a shared-memory segment",
                       description="Print the counters a replay publishes in /dev/shm/NAME: packets, messages "
                                   "per type, errors by reason, gaps, book counters.")
    s.add_argument("--shm", required=True, metavar="NAME", help="segment name under /dev/shm")
    s.add_argument("--json", action="store_true", help="as JSON")
    s.set_defaults(func=cmd_stats)

    g = sub.add_parser(
        "gen", help="generate a synthetic ITCH 5.0 trading day (pcap + BinaryFILE)",
        description="Write a synthetic but realistic NASDAQ TotalView-ITCH 5.0 trading day: "
                    "PREFIX.pcap (nanosecond pcap, MoldUDP64 over UDP/IPv4 multicast, one group per "
                    "channel and line), PREFIX.bin (NASDAQ BinaryFILE of the same messages) and "
                    "PREFIX.json (what was generated: counts per type, packets, loss). "
                    "Deterministic for a seed.")
    g.add_argument("--out", required=True, metavar="PREFIX", help="output path prefix")
    g.add_argument("--messages", type=_positive, default=1_000_000, metavar="N",
                   help="ITCH messages in the day, all channels (default 1000000)")
    g.add_argument("--symbols", type=_positive, default=100, metavar="N", help="instruments (default 100)")
    g.add_argument("--channels", type=_positive, default=1, metavar="N",
                   help="channels (multicast groups); instruments are partitioned across them (default 1)")
    g.add_argument("--seed", type=_nonneg, default=1, metavar="N", help="random seed (default 1)")
    g.add_argument("--lines", choices=["a", "ab"], default="a",
                   help="'ab' also writes the B line: same packets on another group (default a)")
    g.add_argument("--loss-a", type=_probability, default=0.0, metavar="P",
                   help="probability a packet is lost on line A (default 0)")
    g.add_argument("--loss-b", type=_probability, default=0.0, metavar="P",
                   help="probability a packet is lost on line B (default 0)")
    g.add_argument("--batch-ns", type=_nonneg, default=0, metavar="NS",
                   help="packetiser flush window in ns (default 20000; 2000 with --rate)")
    g.add_argument("--max-payload", type=_nonneg, default=0, metavar="BYTES",
                   help="largest UDP payload per datagram (default 1358: frames up to 1400 bytes)")
    g.add_argument("--heartbeat-ms", type=_nonneg, default=0, metavar="MS",
                   help="MoldUDP64 heartbeat after this much idle time per channel (default 1000, the "
                        "usual exchange setting; larger values make small day files smaller)")
    g.add_argument("--rate", type=_nonneg, default=0, metavar="MSGS_PER_S",
                   help="steady message rate: the whole day (schedule and order flow, in order) is "
                        "compressed into MESSAGES / MSGS_PER_S seconds with a flat rate and no idle "
                        "hours, for latency benchmarks replayed with --speed realtime; the default "
                        "batching window is then 2 us (a few messages per packet at 1 M/s). "
                        "1000..100000000, or 0 (default) for the normal 04:00-20:00 day")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_gen)

    w = sub.add_parser(
        "rewind-server", help="answer MoldUDP64 re-requests from a capture",
        description="Index every MoldUDP64 message of a pcap/pcapng capture (or gzip of either) by "
                    "(session, sequence number), A/B copies once, and answer MoldUDP64 re-requests "
                    "(20-byte UDP datagrams: session, first sequence number, message count) like an "
                    "exchange's re-request server: each reply is a MoldUDP64 packet of as many of the "
                    "requested messages as fit in --max-datagram bytes, sent to the requester only. "
                    "Malformed requests, unknown sessions, zero counts and sequences the capture does not "
                    "hold are ignored and counted. SIGINT/SIGTERM stop it and print the counters. "
                    "Exit status: 0 ok, 1 the input cannot be served, 2 usage.")
    w.add_argument("input", metavar="INPUT", help="pcap or pcapng capture (gzip too); not a BinaryFILE")
    w.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="UDP address to answer on (port 0: any free port, printed at start-up)")
    w.add_argument("--max-datagram", type=_positive, default=1400, metavar="BYTES",
                   help="largest UDP payload of a reply (23..65507, default 1400)")
    w.add_argument("--stats-json", metavar="FILE",
                   help="on exit, write the counters (requests, replies, messages_sent, bytes_sent, "
                        "ignored by reason) and what was indexed as JSON")
    w.add_argument("-q", "--quiet", action="store_true", help="no line per request on stderr")
    w.set_defaults(func=cmd_rewind_server)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `feedhandler replay ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
