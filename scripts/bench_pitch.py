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
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchlib import ROOT, day, fh, warm


def fh_argv(*args):
    """The feedhandler command line for args (benchlib.fh() + args)."""
    return fh() + [str(a) for a in args]


def gen(out, protocol, messages, symbols, seed):
    if os.path.exists(out + ".json") and not os.path.exists(out + ".pcap"):
        os.unlink(out + ".json")                        # half a cached day: make it again
    return day(out, ["--protocol", protocol, "--messages", str(messages), "--symbols", str(symbols),
                     "--seed", str(seed)])


def replay(pcap, mode, cpu, tmp):
    sj = os.path.join(tmp, "s.json")
    cmd = ["taskset", "-c", str(cpu)] + fh_argv("replay", "-q", pcap, "--mode", mode, "--stats-json", sj)
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("replay failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    return json.load(open(sj))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=float, default=10e6)
    ap.add_argument("--symbols", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="decode,book,publish")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "fh-pitch-bench"))
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1)
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    n = int(a.messages)
    base = os.path.join(a.dir, "day-%d-%d-%d" % (n, a.symbols, a.seed))
    days = {}
    for proto in ("itch", "pitch"):
        summary = gen(base + "-" + proto, proto, n, a.symbols, a.seed)
        days[proto] = (base + "-" + proto + ".pcap", summary)
        warm(days[proto][0])
    time_msgs = int(days["pitch"][1].get("time_messages", 0))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes.split(","):
            rates = {"itch": [], "pitch": [], "pitch_flow": []}
            for run in range(a.runs):
                for proto in ("itch", "pitch"):
                    st = replay(days[proto][0], mode, a.cpu, tmp)
                    if st["errors"]:
                        raise SystemExit("%s %s: errors %s" % (proto, mode, st["errors"]))
                    el = st["elapsed_s"]
                    rates[proto].append(st["messages"] / el)
                    if proto == "pitch":
                        rates["pitch_flow"].append((st["messages"] - time_msgs) / el)
                print("  %-8s run %d: itch %.2f M/s, pitch %.2f M/s (%.2f M/s without Time)" % (
                    mode, run + 1, rates["itch"][-1] / 1e6, rates["pitch"][-1] / 1e6,
                    rates["pitch_flow"][-1] / 1e6), flush=True)
            med = {k: statistics.median(v) for k, v in rates.items()}
            med["ratio"] = med["pitch_flow"] / med["itch"]
            results[mode] = {"median": med, "runs": rates}
    print("\n%d messages x %d symbols, seed %d, medians of %d runs, pinned to CPU %d (M msgs/s)" % (
        n, a.symbols, a.seed, a.runs, a.cpu))
    print("| mode | ITCH | PITCH (all) | PITCH (without Time) | PITCH / ITCH |")
    print("|---|---|---|---|---|")
    ok = True
    for mode, r in results.items():
        m = r["median"]
        print("| %s | %.2f | %.2f | %.2f | %.2f |" % (mode, m["itch"] / 1e6, m["pitch"] / 1e6,
                                                   m["pitch_flow"] / 1e6, m["ratio"]))
        if mode in ("decode", "book") and m["ratio"] < 0.85:
            ok = False
    print("target: PITCH decode and book within 15%% of ITCH: %s" % ("met" if ok else "NOT met"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"messages": n, "symbols": a.symbols, "seed": a.seed, "results": results}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
