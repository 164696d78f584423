#!/usr/bin/env python3
"""Decode + order-book throughput, single core, against itch-book 0.2.1 in the same run.

Generates (once, cached under --dir) a synthetic day with `feedhandler gen`, warms
the page cache, then measures on the same NASDAQ BinaryFILE, every process pinned
to one core (`taskset -c CPU`):

  feedhandler   `feedhandler replay -q DAY.bin --mode decode|book|publish [--depth 10]
                --stats-json F` from the CLI.  msgs/s is the C core's own figure
                (decode loop only: the file is mapped with MAP_POPULATE before the
                clock starts); the command's wall time is reported next to it.
  itch-book     `itch_book._core.Session` (the C++23 session the package's own
                `Feed.batches` drives) in a pinned subprocess, the whole file already
                in RAM (numpy buffer read before the clock starts):
                  no-depth: Session(tables=[], depth=0).feed(whole buffer)
                            = parse + full L3 book apply, no table output
                  depth-10: Session(tables=[], depth=10) fed in 1 MiB chunks,
                            take_depth() whenever >= 100k rows are pending, reserve()
                            as Feed.batches does = parse + apply + a 63-column top-10
                            row on every change within either side's top 10 levels;
                            the timing includes take_depth (handing the columns to
                            numpy) but not Feed's Python post-processing (float
                            prices, UTC ts).  Its fastest setting found here.
                Also, for reference (not used in the ratios): the public API,
                `itch_book.open(path, date=...).batches(tables=(), / ("depth",),
                depth=10)` with its defaults, which includes reading the file on its
                reader thread (same core) and the numpy post-processing.
                Every variant checks that every message of the file was decoded.
  Python reader (when `feedhandler.shm` exists and replay has --shm): one replay
                into a named segment, then attach() and time one consistent top-10
                snapshot of one instrument (r.book(locate)), r.copy_books() (r.snapshot_all()
                in older builds), and
                draining the event ring with r.events(max=65536) from seek("oldest")
                until empty (only events returned are counted).

Contenders are interleaved run by run, medians reported; before measuring the script
waits (--wait-quiet) for the machine to go idle and records how busy it was.

Targets (the issue): feedhandler book >= 1.5x itch-book no-depth and >= 22 M msgs/s;
feedhandler publish top-10 >= 1.5x itch-book depth-10 and >= 15 M msgs/s.

    python scripts/bench_book.py [--messages 10000000] [--symbols 2000] [--runs 3]
                                 [--dir /tmp/fh-bench] [--json OUT]
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

# This file also runs as `python -P bench_book.py --_reader-worker` (bench_reader.py,
# a baseline's feedhandler first on PYTHONPATH), where the script's folder is not on
# sys.path: it is added here, last, so nothing in it can stand in for the build's
# feedhandler (benchlib imports no feedhandler at import time).
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.append(HERE)
import benchlib  # noqa: E402
from benchlib import BenchError, mib, pinned, run_child  # noqa: E402

TARGET_RATIO = 1.5
TARGET_BOOK = 22e6
TARGET_PUBLISH = 15e6
ITCH_BOOK_VERSION = "0.2.1"
# Depth-10 session driving: 1 MiB chunks, drained every 100k rows, reserved the way
# Feed.batches reserves.  Feed's own defaults (8 MiB, 1 M rows) were ~20% slower on
# the 10 M day here (3.1 vs 3.7 M msgs/s: a 1 M-row, 63-column table no longer fits
# any cache), so the faster setting is the one compared against.
ITCH_BOOK_CHUNK = 1 << 20
ITCH_BOOK_ROWS = 100_000
SMALLEST_FRAME = 21  # itch_book.SMALLEST_FRAME: reserve() sizing as Feed does


# ----------------------------------------------------------------- helpers


def mps(x):
    return "%7.2f M/s" % (x / 1e6) if x else "      -    "


# ----------------------------------------------------------------- feedhandler


def replay_caps(cmd, timeout):
    """Which pipeline stages the installed CLI can run: parsed from `replay --help`."""
    rc, out, err, _, _ = run_child(cmd + ["replay", "--help"], timeout)
    text = out + err
    caps = {"modes": [], "depth": "--depth" in text, "shm": "--shm" in text, "help_rc": rc}
    m = re.search(r"--mode\s+\{([^}]*)\}", text)
    if m:
        caps["modes"] = [s.strip() for s in m.group(1).split(",")]
    elif "--mode" in text:
        caps["modes"] = [mo for mo in ("decode", "book", "publish") if mo in text]
    return caps


def fh_replay(cmd, path, extra, cpu, timeout, want_messages, on_start=None):
    """One pinned `CMD replay -q PATH EXTRA` checked to have decoded every message
    without errors: its rate, times, peak RSS, book and memory counters."""
    st, wall, rss = benchlib.stats_json_run(
        cmd + ["replay", "-q", path] + extra, timeout, quiet_stderr=True, cpu=cpu, on_start=on_start
    )
    if st.get("messages") != want_messages:
        raise BenchError(
            "feedhandler %s decoded %s messages, the file has %d" % (extra, st.get("messages"), want_messages)
        )
    if st.get("errors"):
        raise BenchError("feedhandler %s reported errors: %s" % (extra, st["errors"]))
    return {
        "msgs_per_s": st["msgs_per_s"],
        "elapsed_s": st["elapsed_s"],
        "wall_s": wall,
        "peak_rss_bytes": rss,
        "book": st.get("book"),
        "memory": st.get("memory"),
        "messages": st["messages"],
        "mode": st.get("mode"),
    }


# ----------------------------------------------------------------- itch-book


def itch_book_available():
    """None when usable, else the reason."""
    code = (
        "import itch_book, itch_book._core as c; print(itch_book.__version__); "
        "c.Session(tables=[], depth=0, symbols=[])"
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "importing itch_book timed out"
    if r.returncode != 0:
        return "itch-book is not importable by %s (%s); install it with: %s -m pip install itch-book==%s" % (
            sys.executable,
            r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "rc %d" % r.returncode,
            sys.executable,
            ITCH_BOOK_VERSION,
        )
    ver = r.stdout.strip()
    if ver != ITCH_BOOK_VERSION:
        print(
            "warning: itch-book %s installed, the issue compares against %s "
            "(pip install itch-book==%s)" % (ver, ITCH_BOOK_VERSION, ITCH_BOOK_VERSION),
            file=sys.stderr,
        )
    return None


def _rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def itch_book_worker(mode, path, date, source="read"):
    """Runs inside the pinned subprocess; prints one JSON line.  source (the modes
    other than feed-*): "read" = the whole file read into an anonymous numpy buffer
    (this script), "mmap" = the file mapped read-only with MAP_POPULATE and wrapped
    by numpy without a copy (bench_scale.py: the input is then file-backed memory,
    not counted as the worker's own, as feedhandler maps its input)."""
    import itch_book
    import numpy as np
    from itch_book._core import Session

    if mode.startswith("feed-"):
        import datetime

        rss0 = _rss_now()
        rows = 0
        t0 = time.perf_counter()
        with itch_book.open(path, date=datetime.date.fromisoformat(date)) as feed:
            tables = ("depth",) if mode == "feed-depth10" else ()
            for b in feed.batches(tables=tables, depth=10):
                if tables:
                    rows += len(b.depth["seq"])
        t1 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        st = feed.stats
        el = t1 - t0
        print(
            json.dumps(
                {
                    "version": itch_book.__version__,
                    "mode": mode,
                    "elapsed_s": el,
                    "msgs_per_s": st["messages"] / el,
                    "messages": st["messages"],
                    "depth_rows": rows,
                    "struct_bytes_est": max(0, peak - rss0),
                    "peak_rss_bytes": peak,
                    "stats": st,
                }
            )
        )
        return

    if source == "mmap":
        import mmap

        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ)
        buf = np.frombuffer(mm, dtype=np.uint8)  # read-only view, pages mapped outside the clock
    elif source == "read":
        buf = np.fromfile(path, dtype=np.uint8)  # whole file in RAM, outside the clock
        buf.setflags(write=False)
    else:
        raise SystemExit("unknown source " + source)
    rss0 = _rss_now()
    rows = 0
    if mode == "nodepth":
        s = Session(tables=[], depth=0, symbols=[])
        t0 = time.perf_counter()
        s.feed(buf)
        t1 = time.perf_counter()
    elif mode == "depth10":
        s = Session(tables=[], depth=10, symbols=[])
        s.reserve(ITCH_BOOK_ROWS + ITCH_BOOK_CHUNK // SMALLEST_FRAME)
        n = len(buf)
        t0 = time.perf_counter()
        for off in range(0, n, ITCH_BOOK_CHUNK):
            s.feed(buf[off : off + ITCH_BOOK_CHUNK])
            if s.rows() >= ITCH_BOOK_ROWS:
                rows += len(s.take_depth()["seq"])
        rows += len(s.take_depth()["seq"])
        t1 = time.perf_counter()
    else:
        raise SystemExit("unknown mode " + mode)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    st = s.stats()
    el = t1 - t0
    print(
        json.dumps(
            {
                "version": itch_book.__version__,
                "mode": mode,
                "elapsed_s": el,
                "msgs_per_s": st["messages"] / el,
                "messages": st["messages"],
                "depth_rows": rows,
                "struct_bytes_est": max(0, peak - rss0),
                "peak_rss_bytes": peak,
                "stats": st,
                "source": source,
            }
        )
    )


def itch_book_run(mode, path, date, cpu, timeout, want_messages, source="read", on_start=None):
    argv = pinned(
        [sys.executable, os.path.abspath(__file__), "--_itch-book-worker", mode, path, date]
        + ([source] if source != "read" else []),
        cpu,
    )
    rc, out, err, wall, _ = run_child(argv, timeout, on_start=on_start)
    if rc != 0:
        raise BenchError("itch-book %s exited %d: %s" % (mode, rc, err.strip()[-800:]))
    res = json.loads(out.strip().splitlines()[-1])
    st = res["stats"]
    if st["messages"] != want_messages or st.get("pending_bytes") or st.get("malformed") or st.get("unknown"):
        raise BenchError(
            "itch-book %s decoded %d messages of %d (pending %s, malformed %s, unknown %s)"
            % (mode, st["messages"], want_messages, st.get("pending_bytes"), st.get("malformed"), st.get("unknown"))
        )
    res["wall_s"] = wall
    return res


# ----------------------------------------------------------------- Python reader


def reader_available(timeout):
    try:
        r = subprocess.run(
            [sys.executable, "-c", "import feedhandler.shm as m; m.attach"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "importing feedhandler.shm timed out"
    if r.returncode != 0:
        return "feedhandler.shm not importable yet (%s)" % (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def _best_call(fn, calls):
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - t0) / calls


def _drain_rate(r, batch, imbalance):
    """Events per second drained from the oldest event, best of 3 drains (the
    memory warm); with `imbalance`, doing the example strategy's per-batch
    work on them as well: the top-of-book imbalance of every BBO event.
    Unsigned quantities (builds before int64 readers) need widening first, or
    b - a wraps; that is part of the cost then."""
    import numpy as np

    from feedhandler.shm import EV_BBO

    best = 0.0
    for _ in range(3):
        r.seek("oldest")
        n = 0
        t0 = time.perf_counter_ns()
        while True:
            b = r.events(max=batch)
            if not len(b):
                break
            n += len(b)
            if imbalance:
                bbo = b[b["type"] == EV_BBO]
                q1, q2 = bbo["qty1"], bbo["qty2"]
                if q1.dtype.kind == "u":
                    q1, q2 = q1.astype(np.int64), q2.astype(np.int64)
                tot = q1 + q2
                imb = (q1 - q2) / np.where(tot > 0, tot, 1)
                assert (np.abs(imb) <= 1).all()
        el = (time.perf_counter_ns() - t0) / 1e9
        best = max(best, n / el if el > 0 else 0.0)
    return best


def reader_worker(name, locate, calls, batch):
    """Runs in a pinned subprocess against a finished named segment; prints one JSON line."""
    from feedhandler.shm import attach

    out = {"segment": name, "locate": locate}
    r = attach(name)
    try:
        # one consistent top-10 snapshot of one instrument
        snap = r.book(locate)
        out["book_repr"] = repr(snap)[:300]
        for _ in range(min(1000, calls)):  # warm
            r.book(locate)
        out["book_ns"] = min(_best_call(lambda: r.book(locate), calls) for _ in range(3))
        out["book_calls"] = calls
        if hasattr(r, "new_buffer"):  # into one reused buffer
            buf = r.new_buffer()
            out["book_out_ns"] = min(_best_call(lambda: r.book(locate, out=buf), calls) for _ in range(3))
        # every slot at once: copy_books(), called snapshot_all() in builds before the
        # shm package's rename (the key stays snapshot_all_ms: bench.py and bench_reader.py read it)
        copy_all = getattr(r, "copy_books", None) or getattr(r, "snapshot_all", None)
        if copy_all:
            copy_all()
            reps = 20
            out["snapshot_all_ms"] = min(_best_call(copy_all, reps) for _ in range(3)) / 1e6
        # events: from the oldest still in the ring until empty, in batches of `batch`
        if hasattr(r, "events"):
            if hasattr(r, "seek"):
                r.seek("oldest")  # cursor per reader; default start is event 0
            lapped0 = getattr(r, "lapped", 0)
            total = 0
            batches = 0
            t0 = time.perf_counter_ns()
            while True:
                b = r.events(max=batch)
                n = len(b)
                if n == 0:
                    break
                total += n
                batches += 1
            el = (time.perf_counter_ns() - t0) / 1e9
            out["events"] = total
            out["event_batches"] = batches
            out["events_s"] = el
            out["events_per_s"] = total / el if el > 0 else None
            out["lapped"] = getattr(r, "lapped", 0) - lapped0
            out["ring_capacity"] = getattr(r, "ring_capacity", None)
            out["ring_head"] = getattr(r, "ring_head", None)
            if hasattr(r, "seek"):  # the same again, warm, and with a strategy's work
                out["events_warm_per_s"] = _drain_rate(r, batch, False)
                out["imbalance_per_s"] = _drain_rate(r, batch, True)
    finally:
        close = getattr(r, "close", None)
        if close:
            close()
    print(json.dumps(out))


def python_side(cmd, path, caps, cpu, timeout, want_messages, locate, calls, batch):
    why = reader_available(timeout)
    if why:
        return {"skipped": why}
    if not caps["shm"]:
        return {"skipped": "feedhandler replay has no --shm yet"}
    name = "fh-bench-%d" % os.getpid()
    res = {}
    try:
        extra = ["--shm", name] + (["--depth", "10"] if caps["depth"] else [])
        if "publish" in caps["modes"]:
            extra = ["--mode", "publish"] + extra
        res["replay"] = fh_replay(cmd, path, extra, cpu, timeout, want_messages)
        argv = pinned(
            [sys.executable, os.path.abspath(__file__), "--_reader-worker", name, str(locate), str(calls), str(batch)],
            cpu,
        )
        rc, out, err, wall, _ = run_child(argv, timeout)
        if rc != 0:
            return dict(res, error="reader exited %d: %s" % (rc, err.strip()[-800:]))
        res.update(json.loads(out.strip().splitlines()[-1]))
    except BenchError as e:
        res["error"] = str(e)
    finally:
        for p in ("/dev/shm/" + name, "/dev/shm/" + name.lstrip("/")):
            try:
                os.unlink(p)
            except OSError:
                pass
    return res


# ----------------------------------------------------------------- main


def main():
    ap = benchlib.arguments(__doc__, messages=10_000_000, symbols=2000, runs=3, seed=7, dir="fh-bench", cpu=0)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per subprocess before it is killed")
    ap.add_argument("--locate", type=int, default=1, help="instrument for the Python snapshot timing")
    ap.add_argument("--snapshot-calls", type=int, default=100_000)
    ap.add_argument("--event-batch", type=int, default=65536)
    ap.add_argument("--skip-itch-book", action="store_true")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--no-feed-api", action="store_true", help="skip the itch-book public-API reference rows")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        metavar="S",
        help="before measuring, wait up to S seconds for the machine to go idle (default 60)",
    )
    args = ap.parse_args()

    ib_missing = None if args.skip_itch_book else itch_book_available()
    if ib_missing:
        print("error: " + ib_missing, file=sys.stderr)
        return 2

    cmd = benchlib.fh()
    os.makedirs(args.dir, exist_ok=True)
    prefix = os.path.join(args.dir, "book-%d-%d-%d" % (args.messages, args.symbols, args.seed))
    day = benchlib.day(
        prefix, ["--messages", args.messages, "--symbols", args.symbols, "--seed", args.seed], need=(".bin",)
    )
    path = prefix + ".bin"
    n = day["messages"]
    date = day.get("trading_date", "2026-11-25")
    benchlib.warm(path)

    caps = replay_caps(cmd, args.timeout)
    busy_before = benchlib.wait_quiet(args.wait_quiet)
    if busy_before is not None and busy_before > 0.3:
        print(
            "warning: %.1f cores busy with other work before the run: numbers will be noisy" % busy_before,
            file=sys.stderr,
        )
    cpu = args.cpu if args.cpu >= 0 else None
    results = {
        "messages": n,
        "symbols": day.get("symbol_count"),
        "seed": args.seed,
        "file": path,
        "file_bytes": os.path.getsize(path),
        "cpu": benchlib.machine()["cpu"],
        "pinned_cpu": cpu if shutil.which("taskset") else None,
        "runs": args.runs,
        "cli": caps,
        "feedhandler": {},
        "itch_book": {},
        "targets": {},
    }
    print(
        "day: %s, %d messages, %s instruments, %.1f MB; CPU %s; pinned to core %s"
        % (path, n, day.get("symbol_count"), os.path.getsize(path) / 1e6, results["cpu"], results["pinned_cpu"])
    )

    # feedhandler, from the CLI
    if caps["modes"]:
        fh_modes = [
            ("decode", ["--mode", "decode"]),
            ("book", ["--mode", "book"]),
            ("publish", ["--mode", "publish"] + (["--depth", "10"] if caps["depth"] else [])),
        ]
        fh_modes = [(m, a) for m, a in fh_modes if m in caps["modes"]]
        missing = [m for m in ("decode", "book", "publish") if m not in caps["modes"]]
        if missing:
            print("feedhandler replay has no --mode %s yet: skipped" % "/".join(missing), file=sys.stderr)
    else:
        print("feedhandler replay has no --mode yet: measuring decode only (book/publish skipped)", file=sys.stderr)
        fh_modes = [("decode", [])]

    def interleaved():
        # Alternate the contenders run by run so drift (thermal, neighbours) hits all alike.
        for i in range(args.runs):
            for m, a in fh_modes:
                yield ("fh", m, a)
            if not args.skip_itch_book:
                for m in ("nodepth", "depth10") + (() if args.no_feed_api else ("feed-nodepth", "feed-depth10")):
                    yield ("ib", m, None)

    raw = {}
    for who, m, a in interleaved():
        key = (who, m)
        try:
            if who == "fh":
                r = fh_replay(cmd, path, a, cpu, args.timeout, n)
            else:
                r = itch_book_run(m, path, date, cpu, args.timeout, n)
        except BenchError as e:
            print("error: %s" % e, file=sys.stderr)
            raw.setdefault(key, {"error": str(e), "runs": []})
            continue
        raw.setdefault(key, {"runs": []})["runs"].append(r)

    for (who, m), v in raw.items():
        runs = v["runs"]
        summary = {"error": v.get("error")} if v.get("error") else {}
        if runs:
            rates = [r["msgs_per_s"] for r in runs]
            summary.update(
                {
                    "msgs_per_s_runs": rates,
                    "median_msgs_per_s": benchlib.median(rates),
                    "best_msgs_per_s": max(rates),
                    "median_elapsed_s": benchlib.median([r["elapsed_s"] for r in runs]),
                    "median_wall_s": benchlib.median([r["wall_s"] for r in runs]),
                    "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                }
            )
            last = runs[-1]
            if who == "fh":
                summary["book"] = last.get("book")
                summary["memory"] = last.get("memory")
            else:
                summary["struct_bytes_est"] = benchlib.median([r["struct_bytes_est"] for r in runs])
                summary["depth_rows"] = last["depth_rows"]
                summary["stats"] = last["stats"]
                summary["version"] = last["version"]
        results["feedhandler" if who == "fh" else "itch_book"][m] = summary

    fh = results["feedhandler"]
    ib = results["itch_book"]
    results["busy_cores_before"] = busy_before
    results["loadavg_after"] = os.getloadavg()

    def rate(d, k):
        return (d.get(k) or {}).get("median_msgs_per_s")

    checks = [
        ("book", "nodepth", TARGET_BOOK, "feedhandler book / itch-book no depth"),
        ("publish", "depth10", TARGET_PUBLISH, "feedhandler publish top-10 / itch-book depth 10"),
    ]
    for fk, ik, absolute, label in checks:
        f, i = rate(fh, fk), rate(ib, ik)
        t = {
            "label": label,
            "feedhandler_msgs_per_s": f,
            "itch_book_msgs_per_s": i,
            "ratio": (f / i) if f and i else None,
            "target_ratio": TARGET_RATIO,
            "target_msgs_per_s": absolute,
        }
        t["ratio_ok"] = t["ratio"] >= TARGET_RATIO if t["ratio"] else None
        t["absolute_ok"] = f >= absolute if f else None
        results["targets"][fk] = t

    # ---- report
    print()
    print(
        "machine: %s cores busy with other work before, load average after %.2f %.2f %.2f"
        % (("%.2f" % busy_before if busy_before is not None else "?",) + tuple(results["loadavg_after"]))
    )
    print("%-38s %12s %12s %10s %10s  %s" % ("single core, same file", "median", "best", "loop s", "wall s", "memory"))
    for m in ("decode", "book", "publish"):
        d = fh.get(m)
        if not d:
            print("%-38s %12s" % ("feedhandler --mode " + m, "not available"))
            continue
        if "median_msgs_per_s" not in d:
            print("%-38s error: %s" % ("feedhandler --mode " + m, d.get("error")))
            continue
        mem = d.get("memory") or {}
        memtxt = "book %s, shm %s" % (mib(mem.get("book_bytes")), mib(mem.get("shm_bytes"))) if mem else ""
        memtxt += (", " if memtxt else "") + "peak RSS %s (incl. mapped file)" % mib(d["peak_rss_bytes"])
        label = (
            ("feedhandler --mode " + m + (" --depth 10" if m == "publish" else ""))
            if caps["modes"]
            else "feedhandler replay (decode only)"
        )
        print(
            "%-38s %12s %12s %10.3f %10.3f  %s"
            % (
                label,
                mps(d["median_msgs_per_s"]),
                mps(d["best_msgs_per_s"]),
                d["median_elapsed_s"],
                d["median_wall_s"],
                memtxt,
            )
        )
    for m, label in (
        ("nodepth", "itch-book %s parse+apply" % ITCH_BOOK_VERSION),
        ("depth10", "itch-book %s + depth 10" % ITCH_BOOK_VERSION),
        ("feed-nodepth", "  (ref) itch_book.open().batches()"),
        ("feed-depth10", "  (ref) ... batches(('depth',), 10)"),
    ):
        d = ib.get(m)
        if not d:
            continue
        if "median_msgs_per_s" not in d:
            print("%-38s error: %s" % (label, d.get("error")))
            continue
        print(
            "%-38s %12s %12s %10.3f %10.3f  ~%s (peak RSS growth while feeding)%s"
            % (
                label,
                mps(d["median_msgs_per_s"]),
                mps(d["best_msgs_per_s"]),
                d["median_elapsed_s"],
                d["median_wall_s"],
                mib(d["struct_bytes_est"]),
                ", %d depth rows" % d["depth_rows"] if m.endswith("depth10") else "",
            )
        )
    print()
    for k, t in results["targets"].items():
        if t["ratio"]:
            print(
                "%-50s %5.2fx (target %.1fx: %s)   %s (target %.0f M/s: %s)"
                % (
                    t["label"],
                    t["ratio"],
                    TARGET_RATIO,
                    "ok" if t["ratio_ok"] else "MISSED",
                    mps(t["feedhandler_msgs_per_s"]).strip(),
                    t["target_msgs_per_s"] / 1e6,
                    "ok" if t["absolute_ok"] else "MISSED",
                )
            )
        elif t["feedhandler_msgs_per_s"]:
            print(
                "%-50s   -    %s (target %.0f M/s: %s)"
                % (
                    t["label"],
                    mps(t["feedhandler_msgs_per_s"]).strip(),
                    t["target_msgs_per_s"] / 1e6,
                    "ok" if t["absolute_ok"] else "MISSED",
                )
            )
        else:
            print("%-50s   not measured" % t["label"])
    for m in ("book", "publish"):
        b = (fh.get(m) or {}).get("book")
        if b:
            keys = (
                "orders_peak",
                "orders_live",
                "unknown_ref",
                "add_replaced",
                "exec_clamped",
                "cancel_clamped",
                "zero_rejected",
                "order_full",
                "level_full",
                "publishes",
                "events",
            )
            print("feedhandler %-8s book: %s" % (m, ", ".join("%s %s" % (k, b[k]) for k in keys if k in b)))
    st = (ib.get("nodepth") or {}).get("stats")
    if st:
        print(
            "itch-book book: live_orders %s, missing_ref %s, dup_ref %s, clamped %s, rejected %s, crossed_books %s"
            % tuple(
                st.get(k) for k in ("live_orders", "missing_ref", "dup_ref", "clamped", "rejected", "crossed_books")
            )
        )

    # Python reader
    if not args.skip_python:
        py = python_side(cmd, path, caps, cpu, args.timeout, n, args.locate, args.snapshot_calls, args.event_batch)
        results["python"] = py
        print()
        if "skipped" in py:
            print("Python reader: skipped (%s)" % py["skipped"])
        else:
            if py.get("replay"):
                print("replay into a named segment (--shm): %s" % mps(py["replay"]["msgs_per_s"]).strip())
            if "book_ns" in py:
                print(
                    "r.book(%d): %.0f ns per consistent top-10 snapshot (%d calls)"
                    % (py["locate"], py["book_ns"], py["book_calls"])
                )
            if "snapshot_all_ms" in py:
                print("r.snapshot_all(): %.3f ms" % py["snapshot_all_ms"])
            if py.get("events") is not None:
                print(
                    "r.events(max=%d): %d events in %d batches, %.1f M events/s"
                    % (args.event_batch, py["events"], py["event_batches"], (py["events_per_s"] or 0) / 1e6)
                )
            if py.get("error"):
                print("Python reader error: %s" % py["error"])

    benchlib.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--_itch-book-worker":
        itch_book_worker(*sys.argv[2:6])
    elif len(sys.argv) >= 2 and sys.argv[1] == "--_reader-worker":
        reader_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
