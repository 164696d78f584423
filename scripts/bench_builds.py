#!/usr/bin/env python3
"""Replay speed of this build beside another build, same days, same run.

    python scripts/bench_builds.py --base /path/to/old/feedhandler DAY [DAY ...]
        [--modes book,publish] [--runs 5] [--cpu 1]

BASE is another build's `feedhandler` command (an executable: e.g. a previous
checkout's .venv/bin/feedhandler, or a wrapper script running `python -P -m
feedhandler` with PYTHONPATH set to that checkout).  Each DAY (pcap, pcapng or
BinaryFILE) is replayed in each mode by both builds, alternating run by run
(so drift of the machine hits both alike), pinned to one core; feedhandler's own
--stats-json msgs_per_s; medians and every run printed.  For instruction counts
instead of seconds (deterministic on a shared machine), run the same command
lines under `valgrind --tool=callgrind` and compare fh_lane_replay_file's inclusive
count (docs/performance.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("days", nargs="+", metavar="DAY")
    ap.add_argument("--base", required=True, help="the other build's feedhandler command")
    ap.add_argument("--modes", default="book,publish")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=1)
    a = ap.parse_args(argv)
    builds = (("base", [a.base]), ("new", benchlib.fh()))
    res = {}
    for day in a.days:
        benchlib.warm(day)
        for mode in a.modes.split(","):
            for _ in range(a.runs):
                for name, cmd in builds:
                    fd, js = tempfile.mkstemp(suffix=".json")
                    os.close(fd)
                    subprocess.run(["taskset", "-c", str(a.cpu)] + cmd + ["replay", "-q", day, "--mode", mode,
                                                                         "--stats-json", js],
                                   check=True, stdout=subprocess.DEVNULL)
                    with open(js) as f:
                        res.setdefault((day, mode, name), []).append(json.load(f)["msgs_per_s"] / 1e6)
                    os.unlink(js)
    for day in a.days:
        for mode in a.modes.split(","):
            b, n = res[(day, mode, "base")], res[(day, mode, "new")]
            print("%-36s %-8s base %6.2f  new %6.2f M msgs/s  (new/base %.3f)  runs: base %s; new %s" % (
                os.path.basename(day), mode, statistics.median(b), statistics.median(n),
                statistics.median(n) / statistics.median(b), " ".join("%.2f" % x for x in b),
                " ".join("%.2f" % x for x in n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
