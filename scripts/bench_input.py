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

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def run_once(path, mode, cpu, extra):
    """One pinned replay: its wall time, rate, messages, peak RssAnon + RssShmem
    (sampled every 20 ms) and peak RSS (wait4)."""
    mem = benchlib.MemSampler()
    st, wall, maxrss = benchlib.stats_json_run(
        benchlib.fh("replay", "-q", path, "--mode", mode, *extra),
        timeout=24 * 3600,
        quiet_stderr=True,
        cpu=cpu,
        on_start=mem,
    )
    return {
        "wall_s": wall,
        "msgs_per_s": st["msgs_per_s"],
        "messages": st["messages"],
        "peak_anon": mem.peak,
        "maxrss": maxrss,
    }


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
    ap = benchlib.arguments(
        __doc__, epilog=True, runs=3, cpu=1, dir=("/tmp/fh-input", "where the default day is generated and cached")
    )
    ap.add_argument("--day", help="input (default: a generated 100 M-message, 8 000-instrument BinaryFILE)")
    ap.add_argument("--mode", default="book", choices=["book", "publish", "decode"])
    ap.add_argument("replay_args", nargs="*", help="more `feedhandler replay` options (after --)")
    a = ap.parse_args(argv)
    day = a.day
    if not day:
        prefix = os.path.join(a.dir, "day-100000000-8000-11")
        benchlib.day(prefix, ["--messages", 100000000, "--symbols", 8000, "--seed", 11], need=(".bin",))
        day = prefix + ".bin"
    inputs = {
        "plain (mapped)": day,
        "gzip -1": make(day, day + ".gz", "gzip"),
        "zstd -1": make(day, day + ".zst", "zstd") if build_reads_zstd() else None,
    }
    inputs = {k: v for k, v in inputs.items() if v}
    size = os.path.getsize(day)
    benchlib.warm(*inputs.values())
    res = {k: [] for k in inputs}
    for _ in range(a.runs):
        for k, p in inputs.items():
            res[k].append(run_once(p, a.mode, a.cpu, a.replay_args))
    rows = []
    base = None
    print("input %s: %.2f GB uncompressed, mode %s, %d runs (medians)" % (day, size / 1e9, a.mode, a.runs))
    print(
        "%-16s %10s %12s %12s %12s %10s %11s"
        % ("container", "file GB", "msgs/s", "input MB/s", "RssAnon MiB", "maxrss MiB", "wall s")
    )
    for k, runs in res.items():
        med = {f: benchlib.median(runs, f) for f in ("wall_s", "msgs_per_s", "peak_anon", "maxrss")}
        row = {
            "container": k,
            "file_bytes": os.path.getsize(inputs[k]),
            "uncompressed_bytes": size,
            "input_mb_per_s": size / med["wall_s"] / 1e6,
            **med,
            "runs": runs,
        }
        rows.append(row)
        if base is None:
            base = row
        print(
            "%-16s %10.2f %12.0f %12.0f %12.1f %10.1f %11.2f"
            % (
                k,
                row["file_bytes"] / 1e9,
                med["msgs_per_s"],
                row["input_mb_per_s"],
                med["peak_anon"] / 2**20,
                med["maxrss"] / 2**20,
                med["wall_s"],
            )
        )
    ok = all(r["peak_anon"] < 2 * base["peak_anon"] for r in rows[1:])
    print(
        "target: streamed peak RssAnon < 2x the plain replay's (%.1f MiB): %s"
        % (2 * base["peak_anon"] / 2**20, "met" if ok else "MISSED")
    )
    benchlib.write_json(a.json, {"day": day, "mode": a.mode, "rows": rows, "target_met": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
