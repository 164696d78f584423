#!/usr/bin/env python3
"""Latency report: tables, a percentile plot and HdrHistogram percentile files.

    python scripts/latency_report.py RUN.json [RUN2.json ...] [--png plot.png] [--hgrm PREFIX]
    python scripts/latency_report.py --run pcaps/sample.pcap [--speed 100000] [--cores 0] ...

Each input is a `feedhandler replay|run --latency-json` file; with --run, the
replay is run first (extra arguments after the input go to `feedhandler replay`).
Prints, per stage, count and p50/p90/p99/p99.9/p99.99/max in ns side by side
for every run, with each run's achieved rate and messages per packet; with two
or more runs, every later run also gets a row of changes against the first
(the baseline: +12% is slower), so two runs compare at a glance; --png writes a percentile plot
(log latency against 1/(1-percentile), one curve per stage and run; needs
matplotlib: pip install 'feedhandler[report]'); --hgrm writes one
HdrHistogram-compatible percentile text file per run and stage
(PREFIX.RUN.STAGE.hgrm), for HdrHistogram's plotter and other tools.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import benchlib

COLS = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"), ("p99_99", "p99.99"), ("max", "max")]


def load(path):
    with open(path) as f:
        d = json.load(f)
    if "stages" not in d or "rate" not in d:
        sys.exit("latency_report: %s is not a --latency-json file" % path)
    return d


def run_replay(inp, extra):
    out = benchlib.tmpfile(prefix="latency-")
    subprocess.run(
        benchlib.fh("replay", "-q", inp, "--latency-json", out, *extra), check=True, stdout=subprocess.DEVNULL
    )
    return out


def change(new, base):
    """Relative change of a latency against the baseline run, as text."""
    if base == new:
        return "0%"
    if base <= 0:
        return "n/a"
    return "%+.1f%%" % (100.0 * (new - base) / base)


def stages_of(runs):
    """Stages in the order of the first run, then any only later runs have."""
    out = []
    for d in runs.values():
        out += [s for s in d["stages"] if s not in out]
    return out


def table(runs):
    names = list(runs)
    for name in names:
        r = runs[name]["rate"]
        m = runs[name].get("machine", {})
        clock = "TSC %.3f GHz" % (m["tsc_hz"] / 1e9) if m.get("tsc_hz") else "clock_gettime (no invariant TSC)"
        print(
            "%s: %.3f M msgs/s, %.3f M packets/s over %.3f s; %s, cores %s, %s, speed %s"
            % (
                name,
                r["msgs_per_s"] / 1e6,
                r["packets_per_s"] / 1e6,
                r["elapsed_s"],
                m.get("cpu", "?"),
                m.get("cores_used", "?"),
                clock,
                runs[name].get("speed", "?"),
            )
        )
        mpp = runs[name].get("messages_per_packet")
        if mpp and mpp["count"]:
            print(
                "%s  messages per packet: mean %.2f, p50 %d, p90 %d, p99 %d, max %d (%d packets)"
                % (" " * len(name), mpp["mean"], mpp["p50"], mpp["p90"], mpp["p99"], mpp["max"], mpp["count"])
            )
    base = names[0]
    for st in stages_of(runs):
        print("\n%-18s %-14s %10s" % (st, "run", "count") + "".join("%12s" % c for _, c in COLS) + "  (ns)")
        for name in names:
            s = runs[name]["stages"].get(st)
            if s is None:
                print("%-18s %-14s %10s" % ("", name[:14], "-"))
                continue
            print("%-18s %-14s %10d" % ("", name[:14], s["count"]) + "".join("%12d" % s[k] for k, _ in COLS))
            b = runs[base]["stages"].get(st)
            if name != base and b is not None:
                print(
                    "%-18s %-14s %10s" % ("", "  vs " + base[:10], "")
                    + "".join("%12s" % change(s[k], b[k]) for k, _ in COLS)
                )


def hgrm(runs, prefix):
    written = []
    for name, d in runs.items():
        for st, s in d["stages"].items():
            path = "%s.%s.%s.hgrm" % (prefix, name, st)
            with open(path, "w") as f:
                f.write("%12s %14s %10s %14s\n\n" % ("Value", "Percentile", "TotalCount", "1/(1-Percentile)"))
                for pct, value, seen in s.get("distribution", []):
                    frac = pct / 100.0
                    inv = "inf" if frac >= 1 else "%.2f" % (1 / (1 - frac))
                    f.write("%12.3f %2.12f %10d %14s\n" % (value / 1000.0, frac, seen, inv))
                f.write("#[Mean    = %12.3f, StdDeviation   = %12.3f]\n" % (s["mean"] / 1000.0, 0.0))
                f.write("#[Max     = %12.3f, Total count    = %12d]\n" % (s["max"] / 1000.0, s["count"]))
                f.write("#[Buckets = %12d, SubBuckets     = %12d]\n" % (26, 2048))
            written.append(path)
    return written


def plot(runs, path, only=None):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("latency_report: --png needs matplotlib (pip install 'feedhandler[report]')")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, d in runs.items():
        for st, s in d["stages"].items():
            if only and st not in only:
                continue
            dist = [p for p in s.get("distribution", []) if p[0] < 100]
            if not dist:
                continue
            xs = [1 / (1 - p[0] / 100.0) for p in dist]
            ys = [max(p[1], 1) for p in dist]
            ax.plot(xs, ys, label="%s: %s" % (name, st))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ns)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("feedhandler latency by percentile")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="--latency-json files")
    ap.add_argument(
        "--run",
        metavar="INPUT",
        help="run `feedhandler replay INPUT --latency-json` first; every argument after INPUT goes to the replay",
    )
    ap.add_argument("--png", help="write a percentile plot here")
    ap.add_argument("--hgrm", metavar="PREFIX", help="write HdrHistogram percentile files PREFIX.RUN.STAGE.hgrm")
    ap.add_argument(
        "--stages",
        metavar="LIST",
        help="comma-separated stages to plot (default: all), e.g. rx_to_published,processing",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--run" in argv:
        i = argv.index("--run")
        argv, extra = argv[: i + 2], argv[i + 2 :]
    args = ap.parse_args(argv)
    files = list(args.inputs)
    if args.run:
        files.append(run_replay(args.run, extra))
    if not files:
        ap.error("give --latency-json files, or --run INPUT")
    runs = {}
    for i, f in enumerate(files):
        name = os.path.splitext(os.path.basename(f))[0] or "run%d" % i
        runs[name if name not in runs else "%s-%d" % (name, i)] = load(f)
    table(runs)
    if args.hgrm:
        for p in hgrm(runs, args.hgrm):
            print("wrote %s" % p)
    if args.png:
        only = [x for x in args.stages.split(",") if x] if args.stages else None
        known = stages_of(runs)
        bad = [x for x in (only or []) if x not in known]
        if bad:
            ap.error("--stages: unknown stage(s) %s; the runs have %s" % (", ".join(bad), ", ".join(known)))
        print("wrote %s" % plot(runs, args.png, only))


if __name__ == "__main__":
    main()
