#!/usr/bin/env python3
"""Order-book throughput at the scale of a real trading day, beside itch-book 0.2.1.

Days of 1 M / 3 M / 10 M / 40 M messages x 500 / 8 000 instruments
(`feedhandler gen --messages N --symbols S --seed 11`), generated once and cached
under --dir as PREFIX.{bin,pcap,json}; the NASDAQ BinaryFILE (PREFIX.bin) is the
input, warmed into the page cache before the day is measured.  Per day, these
contenders run one after the other and again, run by run (round robin, so drift of
the machine hits all alike), every process pinned to one core (`taskset -c CPU`;
this script itself moves to the other cores so its sampling does not share it):

  fh book            feedhandler replay -q DAY.bin --mode book
  fh publish         feedhandler replay -q DAY.bin --depth 10   (the default mode:
                     books + top 10 levels per side published into shared memory)
  baseline book /    the same two with --baseline-fh PATH (another feedhandler
  baseline publish   executable, e.g. a previous build's .venv/bin/feedhandler);
                     publish is asked for with --mode publish where that CLI has it
  itch-book nodepth  itch_book._core.Session(tables=[], depth=0, symbols=[]) fed the
                     whole file = parse + full L3 book, no output (bench_book.py's
                     pinned worker)
  itch-book depth10  Session(depth=10) fed in 1 MiB chunks, take_depth() every 100k
                     rows (bench_book.py's worker: its fastest setting)

Throughput is each tool's own figure: feedhandler's --stats-json msgs_per_s (the
decode loop; the file is mapped before the clock starts), the itch-book worker's
messages / time around feed() (the file already mapped, see below).  Medians of
--runs.  Every run must have decoded every message of the day (feedhandler's
`messages` and no errors; itch-book's stats: messages, no pending/malformed/unknown),
else the contender is reported FAILED and the script exits 1.

Memory: while each child runs, its /proc/PID/status is sampled every ~20 ms and the
peak of RssAnon + RssShmem reported: what the process holds itself, the mapped
input file (RssFile) excluded; for both tools this includes the Python interpreter
and its imports (tens of MiB).  The itch-book worker reads the whole file into an
anonymous numpy buffer before its clock starts, as in bench_book.py
(--itch-book-input read, the default), so the file size is subtracted from its peak.
--itch-book-input mmap maps the file instead (mmap MAP_SHARED|MAP_POPULATE,
read-only, wrapped by numpy without a copy, before the clock starts: file-backed,
as feedhandler maps its input; nothing subtracted).  mmap is not the default
because an A/B on the 1 M and 3 M x 500 days (5 alternating runs each, on a shared
2-core machine with a compile running beside it) could not show that it leaves
itch-book's speed unchanged: run-to-run spread was +-40%, nodepth medians were even
(8.2 vs 7.6 and 8.2 vs 9.0 M msgs/s, read vs mmap), depth10 medians lower with mmap
(1.9 vs 1.4 and 1.9 vs 1.6; numpy's large buffers get transparent huge pages, the
page cache mapping does not), so the measured speed stays bench_book.py's.
Also shown: feedhandler's own `memory` from --stats-json
(book_bytes; shm_bytes = the shared memory reserved) and the peak RSS (wait4, mapped
file included).

Day statistics from PREFIX.json: live_orders_at_end, and book_stats (peak_live_orders,
levels_per_side_mean, levels_per_side_p99, top5_share, old_cancel_share,
top300_message_share) when the generator writes it ("n/a" otherwise); feedhandler's
book.orders_peak counter from --stats-json.

How busy the machine was: before each day the script waits (--wait-quiet) for the
machine to go idle and records the cores busy; during every run it records the CPU
time all other processes used (from /proc/stat, minus the measured child's own).

Targets (evaluated only when their day was measured):
  40 M x 8 000:  fh book >= 2.0x itch-book nodepth, fh publish >= 1.7x itch-book
                 nodepth, fh peak memory (RssAnon + RssShmem, book or publish) < 1 GB
  3 M x 500:     fh book >= 1.5x itch-book nodepth, fh publish >= 1.2x itch-book nodepth

Output: a table per day (M msgs/s, ns/message, ratios, peak memory), the targets,
--json with everything, --png: ns/message against day size (log x), one colour per
contender, one line style per instrument count (needs matplotlib).  Without
itch-book importable, the feedhandler contenders still run and the report says why
itch-book was skipped.

    python scripts/bench_scale.py                        # all 8 days, 3 runs (long)
    python scripts/bench_scale.py --quick                # 1 M x 500, 1 run (smoke test)
    python scripts/bench_scale.py --messages 3e6,40e6 --symbols 500,8000 --runs 3 \\
        --cpu 1 --json /tmp/fh-scale/scale.json --baseline-fh /path/to/old/.venv/bin/feedhandler
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

import bench_book as bb
import benchlib
from benchlib import BenchError, MemSampler, mib

SEED = 11
DEFAULT_MESSAGES = "1e6,3e6,10e6,40e6"
DEFAULT_SYMBOLS = "500,8000"
QUICK = ("1e6", "500", 1)
MEMORY_LIMIT = 1e9  # "< 1 GB": decimal gigabyte, the stricter reading
TARGETS = [
    # (messages, symbols, contender, reference, ratio)
    (40_000_000, 8000, "fh book", "itch-book nodepth", 2.0),
    (40_000_000, 8000, "fh publish", "itch-book nodepth", 1.7),
    (3_000_000, 500, "fh book", "itch-book nodepth", 1.5),
    (3_000_000, 500, "fh publish", "itch-book nodepth", 1.2),
]
MEMORY_TARGET_DAY = (40_000_000, 8000)
BOOK_STATS_KEYS = (
    "peak_live_orders",
    "levels_per_side_mean",
    "levels_per_side_p99",
    "top5_share",
    "old_cancel_share",
    "top300_message_share",
)
FULL_COUNTERS = ("order_full", "level_full", "unknown_ref", "locate_range")
ORDER = ("fh book", "fh publish", "baseline book", "baseline publish", "itch-book nodepth", "itch-book depth10")


# ----------------------------------------------------------------- helpers


def parse_counts(text, what):
    """A comma-separated --messages or --symbols list (40e6,3_000_000,...): distinct counts."""
    try:
        out = [benchlib.count(x.strip()) for x in text.split(",") if x.strip()]
    except argparse.ArgumentTypeError as e:
        raise SystemExit("--%s: %s" % (what, e))
    if not out:
        raise SystemExit("--%s: nothing to measure" % what)
    return list(dict.fromkeys(out))


def label_n(n):
    if n >= 1_000_000:
        return ("%dM" % (n // 1_000_000)) if n % 1_000_000 == 0 else "%.1fM" % (n / 1e6)
    return ("%dk" % (n // 1000)) if n % 1000 == 0 else str(n)


def day_label(n, s):
    return "%s x %s" % (label_n(n), format(s, ","))


def fmt_stat(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "%.4g" % v
    if isinstance(v, int):
        return format(v, ",")
    return str(v)


class Progress:
    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.width = 0

    def __call__(self, text):
        if self.tty:
            sys.stderr.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self):
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def get_day(directory, n, s):
    prefix = os.path.join(directory, "scale-%d-%d-%d" % (n, s, SEED))
    summary = benchlib.day(prefix, ["--messages", n, "--symbols", s, "--seed", SEED], need=(".bin",))
    if summary.get("messages") != n:
        raise SystemExit(
            "%s.json says %s messages, expected %d: delete the cached day" % (prefix, summary.get("messages"), n)
        )
    return prefix, summary


def fh_contenders(name, cmd, timeout):
    """(label, argv extra) for a feedhandler executable: book and publish top 10."""
    caps = bb.replay_caps(cmd, timeout)
    out, notes = [], []
    if "book" in caps["modes"]:
        out.append((name + " book", ["--mode", "book"]))
    else:
        notes.append("%s: replay has no --mode book: '%s book' skipped" % (" ".join(cmd), name))
    pub = ["--depth", "10"] if caps["depth"] else []
    if name != "fh" and "publish" in caps["modes"]:
        pub = ["--mode", "publish"] + pub  # an older build's default may differ
    if caps["modes"] and "publish" not in caps["modes"]:
        notes.append("%s: replay has no publish mode: '%s publish' skipped" % (" ".join(cmd), name))
    else:
        out.append((name + " publish", pub))
    return out, caps, notes


def summarize(runs):
    rates = [r["msgs_per_s"] for r in runs]
    m = statistics.median(rates)
    mems = [r["peak_mem_bytes"] for r in runs if r.get("peak_mem_bytes") is not None]
    return {
        "msgs_per_s_runs": rates,
        "median_msgs_per_s": m,
        "best_msgs_per_s": max(rates),
        "ns_per_message": 1e9 / m if m else None,
        "median_elapsed_s": statistics.median([r["elapsed_s"] for r in runs]),
        "median_wall_s": statistics.median([r["wall_s"] for r in runs]),
        "peak_mem_bytes": max(mems) if mems else None,
        "peak_rss_bytes": max((r.get("peak_rss_bytes") or 0 for r in runs), default=None) or None,
        "other_busy_cores_runs": [r.get("other_busy_cores") for r in runs],
    }


# ----------------------------------------------------------------- report


def print_day(d):
    s = d["summary"]
    print()
    print(
        "== %s instruments: %s, %.1f MB, %d run(s), medians" % (d["label"], d["file"], d["file_bytes"] / 1e6, d["runs"])
    )
    bs = s.get("book_stats") if isinstance(s.get("book_stats"), dict) else {}
    print(
        "   live orders at end %s; book_stats: %s"
        % (
            fmt_stat(s.get("live_orders_at_end")),
            ", ".join("%s %s" % (k, fmt_stat(bs.get(k))) for k in BOOK_STATS_KEYS),
        )
    )
    peaks = [
        "%s %s" % (name, fmt_stat(((c.get("book") or {}).get("orders_peak"))))
        for name, c in d["contenders"].items()
        if name.startswith(("fh", "baseline")) and c.get("book")
    ]
    if peaks:
        print("   book.orders_peak (feedhandler --stats-json): " + ", ".join(peaks))
    for name, c in d["contenders"].items():
        bad = {k: v for k, v in (c.get("book") or {}).items() if k in FULL_COUNTERS and v}
        if bad:
            print(
                "   WARNING: %s book counters %s: its books are not the day's (capacity: --max-orders/"
                "--max-levels)" % (name, ", ".join("%s %s" % kv for kv in sorted(bad.items())))
            )
    ib = d["contenders"].get("itch-book nodepth", {})
    if ib.get("stats"):
        st = ib["stats"]
        print(
            "   itch-book: live_orders %s, missing_ref %s, dup_ref %s"
            % tuple(fmt_stat(st.get(k)) for k in ("live_orders", "missing_ref", "dup_ref"))
        )
    busy = d.get("busy_cores_before")
    during = [x for c in d["contenders"].values() for x in (c.get("other_busy_cores_runs") or []) if x is not None]
    print(
        "   machine: %s cores busy with other work before the day; during the runs %s"
        % (
            "%.2f" % busy if busy is not None else "?",
            "mean %.2f, max %.2f cores" % (statistics.mean(during), max(during)) if during else "?",
        )
    )
    print(
        "   %-18s %9s %8s %10s %10s %13s  %s"
        % ("contender", "M msgs/s", "ns/msg", "vs ib nd", "vs ib d10", "peak mem", "feedhandler memory (stats-json)")
    )
    nd = (d["contenders"].get("itch-book nodepth") or {}).get("median_msgs_per_s")
    d10 = (d["contenders"].get("itch-book depth10") or {}).get("median_msgs_per_s")
    for name in ORDER:
        c = d["contenders"].get(name)
        if c is None:
            continue
        if c.get("error"):
            print("   %-18s FAILED: %s" % (name, c["error"]))
            continue
        r = c["median_msgs_per_s"]
        vs_nd = "%.2fx" % (r / nd) if nd and not name.startswith("itch-book") else "-"
        vs_d10 = "%.2fx" % (r / d10) if d10 and name.endswith("publish") else "-"
        mem = c.get("memory") or {}
        memtxt = ("book %s, shm %s" % (mib(mem.get("book_bytes")), mib(mem.get("shm_bytes")))) if mem else ""
        print(
            "   %-18s %9.2f %8.1f %10s %10s %13s  %s"
            % (name, r / 1e6, c["ns_per_message"], vs_nd, vs_d10, mib(c.get("peak_mem_bytes")), memtxt)
        )


def evaluate_targets(days):
    by_day = {(d["messages"], d["symbols"]): d for d in days}
    out = []
    for n, s, who, ref, ratio in TARGETS:
        t = {
            "day": day_label(n, s),
            "messages": n,
            "symbols": s,
            "contender": who,
            "reference": ref,
            "target_ratio": ratio,
            "measured": False,
            "ratio": None,
            "ok": None,
        }
        d = by_day.get((n, s))
        if d:
            a = (d["contenders"].get(who) or {}).get("median_msgs_per_s")
            b = (d["contenders"].get(ref) or {}).get("median_msgs_per_s")
            if a and b:
                t.update(measured=True, ratio=a / b, ok=a / b >= ratio)
            else:
                t["why"] = "%s or %s not measured on that day" % (who, ref)
        else:
            t["why"] = "day not in this run"
        out.append(t)
    n, s = MEMORY_TARGET_DAY
    t = {
        "day": day_label(n, s),
        "messages": n,
        "symbols": s,
        "contender": "fh book / fh publish",
        "what": "peak RssAnon + RssShmem",
        "limit_bytes": MEMORY_LIMIT,
        "measured": False,
        "peak_bytes": None,
        "ok": None,
    }
    d = by_day.get((n, s))
    if d:
        peaks = [(d["contenders"].get(w) or {}).get("peak_mem_bytes") for w in ("fh book", "fh publish")]
        peaks = [p for p in peaks if p is not None]
        if peaks:
            t.update(measured=True, peak_bytes=max(peaks), ok=max(peaks) < MEMORY_LIMIT)
        else:
            t["why"] = "fh memory not measured on that day"
    else:
        t["why"] = "day not in this run"
    out.append(t)
    return out


def print_targets(targets):
    print()
    print("targets:")
    for t in targets:
        if "target_ratio" in t:
            what = "%-10s %-10s / %-17s >= %.1fx" % (t["day"], t["contender"], t["reference"], t["target_ratio"])
            if t["measured"]:
                print("   %s: %.2fx  %s" % (what, t["ratio"], "met" if t["ok"] else "MISSED"))
            else:
                print("   %s: not evaluated (%s)" % (what, t["why"]))
        else:
            what = "%-10s fh peak memory (book, publish) < %.0f GB" % (t["day"], t["limit_bytes"] / 1e9)
            if t["measured"]:
                print("   %-57s: %s  %s" % (what, mib(t["peak_bytes"]), "met" if t["ok"] else "MISSED"))
            else:
                print("   %-57s: not evaluated (%s)" % (what, t["why"]))


def plot(days, path, cpu):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (%s -m pip install matplotlib): no PNG written" % sys.executable
    symbols = sorted({d["symbols"] for d in days})
    styles = ["-", "--", ":", "-."]
    colours = {name: "C%d" % i for i, name in enumerate(ORDER)}
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)

    fig, ax = plt.subplots(figsize=(11, 5.5))
    for name in ORDER:
        for i, s in enumerate(symbols):
            pts = sorted(
                (d["messages"], d["contenders"][name]["ns_per_message"])
                for d in days
                if d["symbols"] == s and (d["contenders"].get(name) or {}).get("ns_per_message")
            )
            if not pts:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                styles[i % len(styles)],
                marker="o",
                color=colours[name],
                label="%s, %s instruments" % (name, format(s, ",")),
            )
    ax.set_xscale("log")
    sizes = sorted({d["messages"] for d in days})
    ax.set_xticks(sizes)
    ax.set_xticklabels([label_n(n) for n in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("messages in the day")
    ax.set_ylabel("ns / message (median, one core)")
    ax.set_ylim(bottom=0)
    ax.set_title("Order book throughput by day size (%s)" % cpu, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# ----------------------------------------------------------------- main


def main():
    ap = benchlib.arguments(__doc__, dir="fh-scale", cpu=1, json="write everything measured here")
    ap.add_argument(
        "--messages",
        default=None,
        metavar="LIST",
        help="day sizes in messages, comma separated (default %s; --quick: 1e6)" % DEFAULT_MESSAGES,
    )
    ap.add_argument(
        "--symbols",
        default=None,
        metavar="LIST",
        help="instrument counts, comma separated (default %s; --quick: 500)" % DEFAULT_SYMBOLS,
    )
    ap.add_argument(
        "--runs", type=int, default=None, help="runs per contender and day, medians (default 3; --quick: 1)"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 M x 500, 1 run (explicit --messages/--symbols/--runs still win)",
    )
    ap.add_argument("--png", metavar="OUT", help="plot (default: next to --json, else in --dir)")
    ap.add_argument("--no-png", action="store_true", help="no plot")
    ap.add_argument(
        "--baseline-fh",
        metavar="PATH",
        help="another feedhandler executable, measured in the same runs ('baseline book/publish')",
    )
    ap.add_argument("--skip-itch-book", action="store_true", help="feedhandler contenders only")
    ap.add_argument(
        "--itch-book-modes",
        default="nodepth,depth10",
        metavar="LIST",
        help="which itch-book contenders run, comma separated (default nodepth,depth10; "
        "bench_summary.py runs nodepth only)",
    )
    ap.add_argument(
        "--itch-book-input",
        choices=["read", "mmap"],
        default="read",
        help="how the itch-book worker gets the file: read into a numpy buffer as bench_book.py "
        "does (default; the file size is then subtracted from its peak memory) or mapped",
    )
    ap.add_argument("--timeout", type=int, default=900, help="seconds per subprocess before it is killed")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=30,
        metavar="S",
        help="before each day, wait up to S seconds for the machine to go idle (default 30)",
    )
    args = ap.parse_args()

    messages = parse_counts(args.messages or (QUICK[0] if args.quick else DEFAULT_MESSAGES), "messages")
    symbols = parse_counts(args.symbols or (QUICK[1] if args.quick else DEFAULT_SYMBOLS), "symbols")
    runs = args.runs if args.runs is not None else (QUICK[2] if args.quick else 3)
    ib_modes = [m.strip() for m in args.itch_book_modes.split(",") if m.strip()]
    if not ib_modes or any(m not in ("nodepth", "depth10") for m in ib_modes):
        raise SystemExit("--itch-book-modes: a comma-separated list of nodepth, depth10")
    if runs < 1:
        raise SystemExit("--runs must be >= 1")
    progress = Progress()

    # Pinning: children on --cpu, this process (sampling, polling) on the others.
    cpu = args.cpu if args.cpu is not None and args.cpu >= 0 else None
    notes = []
    if cpu is not None:
        allowed = os.sched_getaffinity(0)
        if not shutil.which("taskset"):
            notes.append("taskset not found: nothing pinned")
            cpu = None
        elif cpu not in allowed:
            notes.append("core %d is not available here (allowed %s): nothing pinned" % (cpu, sorted(allowed)))
            cpu = None
        elif len(allowed) > 1:
            os.sched_setaffinity(0, allowed - {cpu})

    contenders = []  # (label, kind, how)
    caps = {}
    fhc, caps["fh"], n = fh_contenders("fh", benchlib.fh(), args.timeout)
    notes += n
    contenders += [(lbl, "fh", (benchlib.fh(), extra)) for lbl, extra in fhc]
    if args.baseline_fh:
        if not (os.path.isfile(args.baseline_fh) and os.access(args.baseline_fh, os.X_OK)):
            raise SystemExit("--baseline-fh %s: not an executable file" % args.baseline_fh)
        bc, caps["baseline"], n = fh_contenders("baseline", [os.path.abspath(args.baseline_fh)], args.timeout)
        notes += n
        contenders += [(lbl, "fh", ([os.path.abspath(args.baseline_fh)], extra)) for lbl, extra in bc]
    ib_skipped = "--skip-itch-book" if args.skip_itch_book else bb.itch_book_available()
    ib_version = None
    if ib_skipped:
        notes.append("itch-book skipped: %s" % ib_skipped)
    else:
        contenders += [("itch-book " + m, "ib", m) for m in ("nodepth", "depth10") if m in ib_modes]
        try:
            import importlib.metadata as md

            ib_version = md.version("itch-book")
        except Exception:
            ib_version = "?"
    for line in notes:
        print("note: " + line, file=sys.stderr)

    from feedhandler import __version__ as fh_version

    host = benchlib.machine()
    results = {
        "args": vars(args),
        "messages": messages,
        "symbols": symbols,
        "runs": runs,
        "seed": SEED,
        "machine": {
            "cpu": host["cpu"],
            "cores": host["cores"],
            "pinned_cpu": cpu,
            "platform": host["platform"],
            "python": host["python"],
            "loadavg_start": os.getloadavg(),
        },
        "feedhandler": {"version": fh_version, "command": benchlib.fh(), "cli": caps.get("fh")},
        "baseline": {"command": args.baseline_fh, "cli": caps.get("baseline")} if args.baseline_fh else None,
        "itch_book": {
            "version": ib_version,
            "skipped": ib_skipped or None,
            "input": None if ib_skipped else args.itch_book_input,
        },
        "notes": notes,
        "days": [],
    }

    grid = [(n, s) for n in sorted(messages) for s in sorted(symbols)]
    failed = False
    for di, (n, s) in enumerate(grid):
        tag = "[day %d/%d %s]" % (di + 1, len(grid), day_label(n, s))
        prefix, summary = get_day(args.dir, n, s)
        path = prefix + ".bin"
        fsize = os.path.getsize(path)
        date = summary.get("trading_date", "2026-11-25")
        progress("%s warming %s into the page cache ..." % (tag, path))
        benchlib.warm(path)
        progress("%s waiting up to %gs for the machine to go quiet ..." % (tag, args.wait_quiet))
        busy = benchlib.wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else benchlib.busy_cores()
        raw = {lbl: [] for lbl, _, _ in contenders}
        errors = {}
        for k in range(runs):
            for lbl, kind, how in contenders:
                if lbl in errors:
                    continue
                progress("%s %s run %d/%d" % (tag, lbl, k + 1, runs))
                sampler = MemSampler()
                try:
                    if kind == "fh":
                        r = bb.fh_replay(how[0], path, how[1], cpu, args.timeout, n, on_start=sampler)
                        if lbl.endswith("publish") and r.get("mode") not in (None, "publish"):
                            raise BenchError("%s ran mode %s, not publish" % (lbl, r.get("mode")))
                    else:
                        r = bb.itch_book_run(
                            how, path, date, cpu, args.timeout, n, source=args.itch_book_input, on_start=sampler
                        )
                except BenchError as e:
                    errors[lbl] = str(e)
                    progress.done()
                    print("error: %s %s: %s" % (tag, lbl, e), file=sys.stderr)
                    continue
                r.update(sampler.result())
                if kind == "ib" and args.itch_book_input == "read" and r["peak_mem_bytes"] is not None:
                    r["peak_mem_bytes"] = max(0, r["peak_mem_bytes"] - fsize)
                raw[lbl].append(r)
        progress.done()
        d = {
            "label": day_label(n, s),
            "messages": n,
            "symbols": s,
            "file": path,
            "file_bytes": fsize,
            "runs": runs,
            "busy_cores_before": busy,
            "loadavg_after": os.getloadavg(),
            "summary": {k: v for k, v in summary.items() if k not in ("symbols", "channels")},
            "contenders": {},
        }
        for lbl, _, _ in contenders:
            if lbl in errors:
                d["contenders"][lbl] = {"error": errors[lbl], "runs": raw[lbl]}
                failed = True
                continue
            c = summarize(raw[lbl])
            last = raw[lbl][-1]
            for key in ("book", "memory", "mode", "stats", "depth_rows", "version", "source"):
                if key in last:
                    c[key] = last[key]
            c["runs"] = raw[lbl]
            d["contenders"][lbl] = c
        results["days"].append(d)
        if di == 0:
            m = results["machine"]
            print(
                "machine: %s, %d cores, measured processes pinned to core %s; feedhandler %s%s"
                % (
                    m["cpu"],
                    m["cores"],
                    cpu if cpu is not None else "none (not pinned)",
                    fh_version,
                    ", itch-book %s (input: %s)" % (ib_version, args.itch_book_input)
                    if not ib_skipped
                    else "; itch-book skipped: %s" % ib_skipped,
                )
            )
            if args.baseline_fh:
                print("baseline: %s" % args.baseline_fh)
        print_day(d)
        sys.stdout.flush()

    results["targets"] = evaluate_targets(results["days"])
    results["machine"]["loadavg_end"] = os.getloadavg()
    print_targets(results["targets"])

    if not args.no_png:
        png = args.png or (
            os.path.splitext(args.json)[0] + ".png" if args.json else os.path.join(args.dir, "bench_scale.png")
        )
        why = plot(results["days"], png, results["machine"]["cpu"])
        if why:
            print("note: " + why, file=sys.stderr)
        else:
            results["png"] = png
            print("plot: %s" % png)
    if args.json:
        benchlib.write_json(args.json, results)
        print("json: %s" % args.json)
    if failed:
        print("FAILED: some contender did not decode every message or did not run (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
