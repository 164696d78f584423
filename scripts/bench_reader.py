#!/usr/bin/env python3
"""What reading costs a Python strategy, this build beside a previous one, in one run.

One replay publishes a generated day into a segment (both builds read the same
segment: the layout is shared).  Then, alternating builds, a pinned child
process (bench_book.py's reader worker) measures on it:

  book_ns          one consistent top-N snapshot, seg.book(locate)
  book_out_ns      the same into a reused buffer (seg.book(locate, out=buf))
  snapshot_all_ms  every slot, seg.copy_books() (seg.snapshot_all() in older builds)
  events_cold_per_s  draining the ring from the oldest event, seg.events(65536):
                   the first drain, in a fresh process
  events_per_s     the same, best of 3 warm drains after it
  imbalance_per_s  the warm drains, plus the example strategy's per-event arithmetic
                   (BBO imbalance): with unsigned quantities it needs an
                   astype(int64) per batch to be right, which the baseline pays

    python scripts/bench_reader.py --baseline /tmp/wt-base      # a checkout with its core built
    python scripts/bench_reader.py --messages 3e6 --symbols 2000 --runs 5

Medians of --runs and the best run; a ratio is this build against the baseline
(above 1: this build is faster).  On a shared VM a Python call's cost is often
bimodal from one process to the next (book() 4 or 7 us): compare the best runs
too, and measure the C calls alone where it matters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

METRICS = [
    ("book_ns", "ns", False),
    ("book_out_ns", "ns", False),
    ("snapshot_all_ms", "ms", False),
    ("events_cold_per_s", "M/s", True),
    ("events_per_s", "M/s", True),
    ("imbalance_per_s", "M/s", True),
]


def child(build, name, locate, cpu):
    """One pinned run of bench_book.py's reader worker (`python -P`: not this
    checkout's feedhandler by the script's folder), with this checkout's
    feedhandler or (a tree build: PYTHONPATH) the baseline's."""
    argv = benchlib.pinned(
        [
            sys.executable,
            "-P",
            os.path.join(HERE, "bench_book.py"),
            "--_reader-worker",
            name,
            str(locate),
            "20000",
            "65536",
        ],
        cpu,
    )
    p = subprocess.run(argv, capture_output=True, text=True, env=build.env(), cwd=build.cwd, timeout=900)
    if p.returncode != 0:
        raise SystemExit("reader (%s) failed: %s" % (build.spec or "this build", p.stderr[-2000:]))
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["events_cold_per_s"], res["events_per_s"] = res["events_per_s"], res.pop("events_warm_per_s")
    return res


def main() -> int:
    ap = benchlib.arguments(
        __doc__,
        messages=3_000_000,
        symbols=2000,
        runs=5,
        dir="fh-reader-bench",
        cpu=(0, "core to pin the readers to (-1: no pinning)"),
    )
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="a checkout whose feedhandler/ has its core built "
        "(git worktree add DIR REV; python cffi_build/build_core.py)",
    )
    ap.add_argument("--locate", type=int, default=1)
    args = ap.parse_args()
    if args.baseline and not os.path.isdir(args.baseline):
        raise SystemExit("--baseline %s: not a directory (a checkout with its core built)" % args.baseline)

    prefix = os.path.join(args.dir, "day-%d-%d" % (args.messages, args.symbols))
    benchlib.day(prefix, ["--messages", args.messages, "--symbols", args.symbols, "--seed", 7], need=(".pcap",))
    name = "fh-reader-bench-%d" % os.getpid()
    builds = [("this build", benchlib.Build())] + (
        [("baseline", benchlib.Build(args.baseline))] if args.baseline else []
    )
    runs = {b: [] for b, _ in builds}
    try:
        subprocess.run(
            benchlib.fh("replay", "-q", prefix + ".pcap", "--shm", name, "--mode", "publish"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for i in range(args.runs):
            for label, build in builds if i % 2 == 0 else builds[::-1]:
                runs[label].append(child(build, name, args.locate, args.cpu))
                print("run %d %-10s %s" % (i + 1, label, json.dumps(runs[label][-1])), file=sys.stderr)
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    med = {b: {m: benchlib.median(runs[b], m) for m, _, _ in METRICS} for b in runs}
    best = {b: {m: (max if higher else min)(r[m] for r in runs[b]) for m, _, higher in METRICS} for b in runs}
    print(
        "%d events in the ring; %d runs each, pinned to CPU %d: median (best)"
        % (runs["this build"][0]["events"], args.runs, args.cpu)
    )
    print(
        "%-16s %24s %24s %16s"
        % ("", "this build", "baseline" if args.baseline else "", "ratio (best)" if args.baseline else "")
    )
    for m, unit, higher in METRICS:
        scale = 1e-6 if unit == "M/s" else 1
        a, ab = med["this build"][m], best["this build"][m]
        line = "%-16s %10.2f (%8.2f) %-3s" % (m, a * scale, ab * scale, unit)
        if args.baseline:
            b, bb = med["baseline"][m], best["baseline"][m]
            r = (lambda x, y: x / y) if higher else (lambda x, y: y / x)
            line += " %10.2f (%8.2f) %-3s %6.2f (%5.2f)" % (b * scale, bb * scale, unit, r(a, b), r(ab, bb))
        print(line)
    benchlib.write_json(args.json, {"runs": runs, "medians": med, "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
