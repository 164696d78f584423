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

import concurrent.futures
import os

import benchlib


def replay_stats(path, pin=None):
    return benchlib.replay(path, "--mode", "decode", cpu=pin)


def main():
    ap = benchlib.arguments(__doc__, messages=10_000_000, symbols=1000, runs=5, seed=7, dir="fh-bench")
    args = ap.parse_args()

    prefix = os.path.join(args.dir, "day-%d-%d-%d" % (args.messages, args.symbols, args.seed))
    gen = benchlib.day(
        prefix, ["--messages", args.messages, "--symbols", args.symbols, "--seed", args.seed], need=(".pcap", ".bin")
    )
    results = {"messages": gen["messages"], "cpu": benchlib.machine()["cpu"], "inputs": {}}
    for ext in (".pcap", ".bin"):
        path = prefix + ext
        benchlib.warm(path)
        rates = []
        for _ in range(args.runs):
            st = replay_stats(path, pin=0)
            assert st["messages"] == gen["messages"], (st["messages"], gen["messages"])
            assert not st["errors"], st["errors"]
            rates.append(st["msgs_per_s"])
        size = os.path.getsize(path)
        res = {
            "bytes": size,
            "packets": st["packets"],
            "runs": rates,
            "median_msgs_per_s": benchlib.median(rates),
            "best_msgs_per_s": max(rates),
            "median_GB_per_s": size / (st["messages"] / benchlib.median(rates)) / 1e9,
        }
        # One replay per core at once: the machine's aggregate decode rate.
        ncpu = len(os.sched_getaffinity(0))
        procs_rates = []
        with concurrent.futures.ThreadPoolExecutor(ncpu) as ex:
            for st2 in ex.map(lambda c: replay_stats(path, pin=c), range(ncpu)):
                procs_rates.append(st2["msgs_per_s"])
        res["parallel_cores"] = ncpu
        res["parallel_per_core_msgs_per_s"] = procs_rates
        res["parallel_aggregate_msgs_per_s"] = sum(procs_rates)
        results["inputs"][ext[1:]] = res
        print(
            "%-5s %6.1f MB, %9d packets: median %6.1f M msgs/s/core (best %6.1f, %.2f GB/s); "
            "%d cores at once: %6.1f M msgs/s aggregate"
            % (
                ext[1:],
                size / 1e6,
                st["packets"],
                res["median_msgs_per_s"] / 1e6,
                res["best_msgs_per_s"] / 1e6,
                res["median_GB_per_s"],
                ncpu,
                res["parallel_aggregate_msgs_per_s"] / 1e6,
            )
        )
    benchlib.write_json(args.json, results)


if __name__ == "__main__":
    main()
