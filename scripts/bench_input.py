#!/usr/bin/env python3
"""Streaming input: memory and speed of a replay from .gz and .zst beside the
same replay from the mapped plain file.

For an input DAY (a generated BinaryFILE or pcap; default: generate
`feedhandler gen --messages 100000000 --symbols 8000 --seed 11`, ~3 GB of
BinaryFILE), the script makes DAY.gz (gzip -1) and DAY.zst (zstd -1) once
(cached beside it), then replays each --runs times, round robin, pinned to one
core (taskset -c --cpu), and reports per container:

  peak RssAnon + RssShmem   what the process holds itself (sampled every 20 ms
                            from /proc/PID/status; the mapped plain file is
                            RssFile and not counted)
  peak RSS                  ru_maxrss (wait4): everything, the plain file's
                            mapped pages included
  msgs/s                    feedhandler's own figure (--stats-json msgs_per_s)
  input MB/s                uncompressed bytes / wall time of the replay: the
                            decompression throughput, beside the plain file's

and checks the issue's target: the streamed replays' peak RssAnon stays under
2x the plain replay's (book memory, no growth with the file's size).

    python scripts/bench_input.py [--day PATH] [--mode book] [--runs 3] [--cpu 1]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def peak_status(pid, box, stop):
    while not stop.is_set():
        try:
            with open("/proc/%d/status" % pid) as f:
                kb = {}
                for line in f:
                    if line.startswith(("RssAnon:", "RssShmem:")):
                        k, v = line.split(":", 1)
                        kb[k] = int(v.split()[0]) * 1024
            if "RssAnon" in kb:
                box["peak"] = max(box.get("peak", 0), kb["RssAnon"] + kb.get("RssShmem", 0))
        except OSError:
            pass
        stop.wait(0.02)


def run_once(path, mode, cpu, extra):
    fd, js = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = ["taskset", "-c", str(cpu)] + benchlib.fh() + ["replay", "-q", path, "--mode", mode,
                                                        "--stats-json", js] + extra
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    box, stop = {}, threading.Event()
    th = threading.Thread(target=peak_status, args=(p.pid, box, stop), daemon=True)
    th.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    stop.set()
    th.join()
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed: %s" % (" ".join(cmd), err[-2000:]))
    with open(js) as f:
        st = json.load(f)
    os.unlink(js)
    return {"wall_s": wall, "msgs_per_s": st["msgs_per_s"], "messages": st["messages"],
            "peak_anon": box.get("peak"), "maxrss": ru.ru_maxrss * 1024}


def build_reads_zstd():
    """Whether the build this interpreter runs was compiled with libzstd."""
    try:
        from feedhandler.core import build_features
    except ImportError:
        return True
    if not build_features()["zstd"]:
        print("this build has no zstd support: the zstd row is left out", file=sys.stderr)
        return False
    return True


def make(src, dst, tool):
    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        return dst
    exe = shutil.which(tool)
    if not exe:
        return None
    print("making %s ..." % dst, file=sys.stderr)
    with open(dst + ".part", "wb") as out:
        subprocess.run([exe, "-1", "-c", src], stdout=out, check=True)
    os.replace(dst + ".part", dst)
    return dst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--day", help="input (default: a generated 100 M-message, 8 000-instrument BinaryFILE)")
    ap.add_argument("--dir", default="/tmp/fh-input", help="where the default day is generated and cached")
    ap.add_argument("--mode", default="book", choices=["book", "publish", "decode"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("replay_args", nargs="*", help="more `feedhandler replay` options (after --)")
    a = ap.parse_args(argv)
    day = a.day
    if not day:
        prefix = os.path.join(a.dir, "day-100000000-8000-11")
        benchlib.day(prefix, ["--messages", "100000000", "--symbols", "8000", "--seed", "11"])
        day = prefix + ".bin"
    inputs = {"plain (mapped)": day, "gzip -1": make(day, day + ".gz", "gzip"),
              "zstd -1": make(day, day + ".zst", "zstd") if build_reads_zstd() else None}
    inputs = {k: v for k, v in inputs.items() if v}
    size = os.path.getsize(day)
    for p in inputs.values():
        benchlib.warm(p)
    res = {k: [] for k in inputs}
    for _ in range(a.runs):
        for k, p in inputs.items():
            res[k].append(run_once(p, a.mode, a.cpu, a.replay_args))
    rows = []
    base = None
    print("input %s: %.2f GB uncompressed, mode %s, %d runs (medians)" % (day, size / 1e9, a.mode, a.runs))
    print("%-16s %10s %12s %12s %12s %10s %11s" % ("container", "file GB", "msgs/s", "input MB/s",
                                                  "RssAnon MiB", "maxrss MiB", "wall s"))
    for k, runs in res.items():
        med = {f: statistics.median(r[f] for r in runs) for f in ("wall_s", "msgs_per_s", "peak_anon", "maxrss")}
        row = {"container": k, "file_bytes": os.path.getsize(inputs[k]), "uncompressed_bytes": size,
               "input_mb_per_s": size / med["wall_s"] / 1e6, **med, "runs": runs}
        rows.append(row)
        if base is None:
            base = row
        print("%-16s %10.2f %12.0f %12.0f %12.1f %10.1f %11.2f" % (
            k, row["file_bytes"] / 1e9, med["msgs_per_s"], row["input_mb_per_s"], med["peak_anon"] / 2**20,
            med["maxrss"] / 2**20, med["wall_s"]))
    ok = all(r["peak_anon"] < 2 * base["peak_anon"] for r in rows[1:])
    print("target: streamed peak RssAnon < 2x the plain replay's (%.1f MiB): %s" % (
        2 * base["peak_anon"] / 2**20, "met" if ok else "MISSED"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"day": day, "mode": a.mode, "rows": rows, "target_met": ok}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
