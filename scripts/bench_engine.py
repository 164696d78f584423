#!/usr/bin/env python3
"""Engine benchmark: scaling from 1 to 2 cores, and the cost of A/B arbitration.

Generates (once, cached under --dir) a 2-channel day as line A only and as
lines A+B (same messages, every packet twice), then replays each from the CLI
with `--cores 0` and `--cores 0,1`, in the chosen mode, and reports messages/s
as the C core measures it (its decode loops; with two cores the slower lane's
time).  Targets (the engine issue): >= 1.8x from 1 to 2 cores; A+B costing no
more than 10% of single-core throughput against A only.

    python scripts/bench_engine.py [--messages 10000000] [--mode publish] [--runs 3]
"""

from __future__ import annotations

import os
import sys

import benchlib


def main():
    ap = benchlib.arguments(__doc__, messages=10_000_000, symbols=2000, runs=3, dir="fh-bench")
    ap.add_argument("--mode", choices=["decode", "book", "publish"], default="publish")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs")
    days = {}
    for lines in ("a", "ab"):
        prefix = os.path.join(args.dir, "engine-%d-%d-%s" % (args.messages, args.symbols, lines))
        benchlib.day(
            prefix,
            ["--messages", args.messages, "--symbols", args.symbols, "--channels", 2, "--seed", 9, "--lines", lines],
            need=(".pcap",),
        )
        days[lines] = prefix + ".pcap"
        benchlib.warm(days[lines])
    results = {}
    for lines, path in days.items():
        for cores in ("0", "0,1"):
            rates, st = [], None
            for _ in range(args.runs):
                st = benchlib.replay(path, "--cores", cores, "--mode", args.mode)
                rates.append(st["msgs_per_s"])
            results["%s/%s" % (lines, cores)] = {
                "median_msgs_per_s": benchlib.median(rates),
                "runs": rates,
                "messages": st["messages"],
                "duplicates": st["duplicates"],
                "gaps": st["gaps"],
                "packets": st["packets"],
            }
    a1 = results["a/0"]["median_msgs_per_s"]
    a2 = results["a/0,1"]["median_msgs_per_s"]
    ab1 = results["ab/0"]["median_msgs_per_s"]
    ab2 = results["ab/0,1"]["median_msgs_per_s"]
    print(
        "2-channel day, %d messages, %d instruments, mode %s, medians of %d (C-measured msgs/s)"
        % (args.messages, args.symbols, args.mode, args.runs)
    )
    print("%-28s %12s %12s %8s" % ("", "1 core", "2 cores", "scaling"))
    print("%-28s %10.2f M %10.2f M %7.2fx" % ("line A", a1 / 1e6, a2 / 1e6, a2 / a1))
    print("%-28s %10.2f M %10.2f M %7.2fx" % ("lines A+B (every packet x2)", ab1 / 1e6, ab2 / 1e6, ab2 / ab1))
    print(
        "scaling target 1.8x: %s; A+B vs A on one core: %.1f%% slower (target <= 10%%: %s)"
        % ("ok" if a2 / a1 >= 1.8 else "MISSED", 100 * (1 - ab1 / a1), "ok" if ab1 >= 0.9 * a1 else "MISSED")
    )
    results["scaling"] = a2 / a1
    results["ab_cost"] = 1 - ab1 / a1
    benchlib.write_json(args.json, results)


if __name__ == "__main__":
    main()
