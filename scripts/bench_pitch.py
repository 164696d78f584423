#!/usr/bin/env python3
"""Cboe PITCH beside NASDAQ ITCH on days of the same shape, in the same run.

`feedhandler gen` makes both days from the same order-flow model (same --messages,
--symbols, --seed): PREFIX-itch.pcap (MoldUDP64) and PREFIX-pitch.pcap (PITCH
sequenced units, 32 units), cached under --dir.  Both are pcaps, so input parsing
is the same work.  For each mode (decode-only, book, publish) the two replays run
one after the other, run by run (round robin: drift of the machine hits both
alike), pinned to one core, and the medians of --runs are compared.

Rates: feedhandler's own decode-loop figure (--stats-json elapsed_s).  The PITCH
day also carries Time messages (one per unit per second with traffic) that ITCH
folds into every message's timestamp, so the PITCH rate is given two ways:
every message decoded, and the day's order-flow messages only (Time left out:
the same messages as the ITCH day).  The ratio uses the second, stricter one.

Target (issue 14): PITCH decode and book rates within 15% of ITCH's.

  python scripts/bench_pitch.py --messages 40e6 --symbols 8000 --runs 3
"""

import os
import sys

import benchlib
from benchlib import BenchError


def main():
    ap = benchlib.arguments(
        __doc__, messages=10_000_000, symbols=8000, seed=11, runs=3, dir="fh-pitch-bench", cpu=(os.cpu_count() or 1) - 1
    )
    ap.add_argument("--modes", default="decode,book,publish")
    a = ap.parse_args()
    n = a.messages
    base = os.path.join(a.dir, "day-%d-%d-%d" % (n, a.symbols, a.seed))
    days = {}
    for proto in ("itch", "pitch"):
        summary = benchlib.day(
            base + "-" + proto,
            ["--protocol", proto, "--messages", n, "--symbols", a.symbols, "--seed", a.seed],
            need=(".pcap",),
        )
        days[proto] = (base + "-" + proto + ".pcap", summary)
        benchlib.warm(days[proto][0])
    time_msgs = int(days["pitch"][1].get("time_messages", 0))
    results = {}
    for mode in a.modes.split(","):
        rates = {"itch": [], "pitch": [], "pitch_flow": []}
        for run in range(a.runs):
            for proto in ("itch", "pitch"):
                try:
                    st = benchlib.replay(days[proto][0], "--mode", mode, cpu=a.cpu, quiet_stderr=True)
                except BenchError as e:
                    raise SystemExit("replay failed: %s" % e)
                if st["errors"]:
                    raise SystemExit("%s %s: errors %s" % (proto, mode, st["errors"]))
                el = st["elapsed_s"]
                rates[proto].append(st["messages"] / el)
                if proto == "pitch":
                    rates["pitch_flow"].append((st["messages"] - time_msgs) / el)
            print(
                "  %-8s run %d: itch %.2f M/s, pitch %.2f M/s (%.2f M/s without Time)"
                % (mode, run + 1, rates["itch"][-1] / 1e6, rates["pitch"][-1] / 1e6, rates["pitch_flow"][-1] / 1e6),
                flush=True,
            )
        med = {k: benchlib.median(v) for k, v in rates.items()}
        med["ratio"] = med["pitch_flow"] / med["itch"]
        results[mode] = {"median": med, "runs": rates}
    print(
        "\n%d messages x %d symbols, seed %d, medians of %d runs, pinned to CPU %d (M msgs/s)"
        % (n, a.symbols, a.seed, a.runs, a.cpu)
    )
    print("| mode | ITCH | PITCH (all) | PITCH (without Time) | PITCH / ITCH |")
    print("|---|---|---|---|---|")
    ok = True
    for mode, r in results.items():
        m = r["median"]
        print(
            "| %s | %.2f | %.2f | %.2f | %.2f |"
            % (mode, m["itch"] / 1e6, m["pitch"] / 1e6, m["pitch_flow"] / 1e6, m["ratio"])
        )
        if mode in ("decode", "book") and m["ratio"] < 0.85:
            ok = False
    print("target: PITCH decode and book within 15%% of ITCH: %s" % ("met" if ok else "NOT met"))
    benchlib.write_json(a.json, {"messages": n, "symbols": a.symbols, "seed": a.seed, "results": results})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
