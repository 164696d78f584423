#!/usr/bin/env python3
"""Do two builds of the C core give the same books and counters?

Replays each INPUT with this checkout's build and with another tree's build
(--base DIR: a checkout or copy whose feedhandler/ holds its own compiled
_core, e.g. `git worktree add /tmp/old OLD_COMMIT` then its setup), with one
lane and with two (--cores 0,1), in publish and book mode, and compares byte
for byte:
  - the --dump-books CSV (every level of every book, --depth 10),
  - every counter of --stats-json except timings and reserved memory.

BinaryFILE inputs in publish mode: a build that publishes once per window of
records (conflated) and one that published after every record differ in how
many times they published (book.publishes, book.events) by design; those two
are reported, not compared, with --allow-binfile-conflation.

    python scripts/compare_builds.py --base /tmp/fh-base DAY.bin DAY.pcap [--allow-binfile-conflation]

Exit status 0 when every comparison is identical, 1 otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

UNFIXED = {"elapsed_s", "msgs_per_s", "memory", "inputs"}
CONFLATED = ("publishes", "events")


def run(tree, path, cores, mode, tmp):
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    dump, stats = os.path.join(tmp, "d.csv"), os.path.join(tmp, "s.json")
    path = os.path.abspath(path)
    argv = [sys.executable, "-m", "feedhandler", "replay", "-q", path, "--mode", mode, "--depth", "10",
            "--silence-ms", "120000", "--dump-books", dump, "--stats-json", stats]
    if cores:
        argv += ["--cores", cores]
    # cwd elsewhere: `python -m` puts the working directory first on sys.path.
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, timeout=3600, cwd=tmp)
    with open(dump, "rb") as f:
        csv = f.read()
    with open(stats) as f:
        st = {k: v for k, v in json.load(f).items() if k not in UNFIXED}
    return hashlib.sha256(csv).hexdigest(), csv.count(b"\n") - 1, st


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--base", required=True, help="tree whose feedhandler/ package (with its _core) is the other build")
    ap.add_argument("--lanes", default="1,2", help="lane counts to run: 1 = one lane, 2 = --cores 0,1 (default 1,2)")
    ap.add_argument("--modes", default="publish,book")
    ap.add_argument("--allow-binfile-conflation", action="store_true")
    a = ap.parse_args()
    lane_sets = [None if n == "1" else ",".join(str(i) for i in range(int(n))) for n in a.lanes.split(",")]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in a.inputs:
            binfile = not path.endswith((".pcap", ".pcapng", ".pcap.gz"))
            for cores in lane_sets:
                for mode in a.modes.split(","):
                    new = run(None, path, cores, mode, tmp)
                    old = run(a.base, path, cores, mode, tmp)
                    sn, so = dict(new[2]), dict(old[2])
                    note = ""
                    if binfile and mode == "publish" and a.allow_binfile_conflation:
                        bn, bo = dict(sn["book"]), dict(so["book"])
                        note = " (publishes %d vs %d, events %d vs %d: conflated per window)" % (
                            bn["publishes"], bo["publishes"], bn["events"], bo["events"])
                        for k in CONFLATED:
                            bn.pop(k), bo.pop(k)
                        sn["book"], so["book"] = bn, bo
                    same = new[0] == old[0] and new[1] == old[1] and sn == so
                    bad += not same
                    print("%-9s %-40s lanes=%-4s %-8s dump %s (%d rows) counters %s%s" % (
                        "SAME" if same else "DIFFERENT", os.path.basename(path), cores or "1", mode,
                        "=" if new[0] == old[0] else "!=", new[1], "=" if sn == so else "!=", note))
                    if sn != so:
                        for k in sorted(set(sn) | set(so)):
                            if sn.get(k) != so.get(k):
                                print("    %s: %s != %s" % (k, json.dumps(sn.get(k))[:200], json.dumps(so.get(k))[:200]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
