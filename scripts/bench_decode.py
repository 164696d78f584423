#!/usr/bin/env python3
"""Decode-only throughput benchmark: frames -> MoldUDP64 -> ITCH 5.0 fields, no book.

Generates (once, cached) a realistic day of at least 10 M messages with
`feedhandler gen`, warms the page cache, then runs `feedhandler replay` from the
CLI several times and reports messages/s as the C core measures it (start of
decode to end; mapping and page-faulting the file happen before).  Also runs one
replay per core at the same time (pinned with taskset) for the machine's
aggregate.

    python scripts/bench_decode.py [--messages 10000000] [--runs 5] [--dir /tmp/fh-bench]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile

from benchlib import day, fh, stats_json, warm
from feedhandler.latency import cpu_model


def replay_stats(cmd, path, pin=None):
    argv = cmd + ["replay", "-q", "--mode", "decode", path]
    if pin is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(pin)] + argv
    return stats_json(argv)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000_000)
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "fh-bench"))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    cmd = fh()
    os.makedirs(args.dir, exist_ok=True)
    prefix = os.path.join(args.dir, "day-%d-%d-%d" % (args.messages, args.symbols, args.seed))
    gen = day(prefix, ["--messages", str(args.messages), "--symbols", str(args.symbols), "--seed", str(args.seed)])
    results = {"messages": gen["messages"], "cpu": cpu_model(), "inputs": {}}
    for ext in (".pcap", ".bin"):
        path = prefix + ext
        warm(path)
        rates = []
        for _ in range(args.runs):
            st = replay_stats(cmd, path, pin=0)
            assert st["messages"] == gen["messages"], (st["messages"], gen["messages"])
            assert not st["errors"], st["errors"]
            rates.append(st["msgs_per_s"])
        size = os.path.getsize(path)
        res = {"bytes": size, "packets": st["packets"], "runs": rates, "median_msgs_per_s": statistics.median(rates),
               "best_msgs_per_s": max(rates), "median_GB_per_s": size / (st["messages"] / statistics.median(rates)) / 1e9}
        # One replay per core at once: the machine's aggregate decode rate.
        ncpu = len(os.sched_getaffinity(0))
        procs_rates = []
        with __import__("concurrent.futures").futures.ThreadPoolExecutor(ncpu) as ex:
            for st2 in ex.map(lambda c: replay_stats(cmd, path, pin=c), range(ncpu)):
                procs_rates.append(st2["msgs_per_s"])
        res["parallel_cores"] = ncpu
        res["parallel_per_core_msgs_per_s"] = procs_rates
        res["parallel_aggregate_msgs_per_s"] = sum(procs_rates)
        results["inputs"][ext[1:]] = res
        print("%-5s %6.1f MB, %9d packets: median %6.1f M msgs/s/core (best %6.1f, %.2f GB/s); "
              "%d cores at once: %6.1f M msgs/s aggregate" % (
                  ext[1:], size / 1e6, st["packets"], res["median_msgs_per_s"] / 1e6, res["best_msgs_per_s"] / 1e6,
                  res["median_GB_per_s"], ncpu, res["parallel_aggregate_msgs_per_s"] / 1e6))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
