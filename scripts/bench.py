#!/usr/bin/env python3
"""The whole benchmark suite in one command: a table and one JSON.

Runs, each on its generated day (cached under --dir) and each as its own script
so they can also be run alone:
  bench_decode.py   decode-only msgs/s per core (pcap and BinaryFILE), and both cores at once
  bench_book.py     decode+book and decode+book+publish msgs/s on one core, against itch-book 0.2.1
                    when installed (pip install itch-book==0.2.1), plus the Python reader:
                    one consistent book copy, copy_books(), events/s in batches
  bench_engine.py   1 vs 2 cores on a 2-channel day, and the cost of A/B arbitration
  bench_dpdk.py     DPDK pcap PMD vs replay (when DPDK is built), dpdk-testpmd rxonly beside it
  bench_latency.py  rx -> published per stage on a steady 1 M msgs/s day replayed paced on one
                    pinned core, messages per packet, publish -> Python reader, and what
                    measuring costs

    python scripts/bench.py [--messages 10000000] [--quick] [--json OUT]

--quick uses 2 M-message days and one run each (a smoke run, not numbers to quote).
The full run takes about 20 minutes on a 2-vCPU VM (generated days are cached
under /tmp/fh-bench, so a second run saves the generation).  Run it on an
otherwise idle machine: the scripts pin cores and compare runs of one session.
"""

from __future__ import annotations

import os
import tempfile
import time

import benchlib
from benchlib import run_script


def run(script, args, out):
    print("== %s %s" % (script, " ".join(args)), flush=True)
    rc, doc = run_script(script, args, out)
    return doc if rc == 0 else None


def main():
    ap = benchlib.arguments(__doc__, messages=10_000_000, json="write everything here")
    ap.add_argument("--quick", action="store_true", help="2 M-message days, one run each (a smoke run)")
    args = ap.parse_args()
    n = 2_000_000 if args.quick else args.messages
    runs = ["--runs", "1"] if args.quick else ["--runs", "3"]
    tmp = tempfile.mkdtemp(prefix="fh-bench-")
    t_start = time.monotonic()
    res = {}
    res["decode"] = run("bench_decode.py", ["--messages", str(n)] + runs, os.path.join(tmp, "decode.json"))
    res["book"] = run("bench_book.py", ["--messages", str(n)] + runs, os.path.join(tmp, "book.json"))
    res["engine"] = run("bench_engine.py", ["--messages", str(n)] + runs, os.path.join(tmp, "engine.json"))
    try:
        from feedhandler.dpdk import available

        dp = available()
    except Exception:
        dp = False
    res["dpdk"] = (
        run("bench_dpdk.py", ["--messages", str(min(n, 5_000_000))] + runs, os.path.join(tmp, "dpdk.json"))
        if dp
        else None
    )
    res["latency"] = run(
        "bench_latency.py", ["--messages", str(min(n, 5_000_000))] + runs, os.path.join(tmp, "latency.json")
    )
    res["wall_s"] = time.monotonic() - t_start
    print("\n== summary (M msgs/s unless stated; %.0f s in all)" % res["wall_s"])
    d = res.get("decode") or {}
    for fmt, r in (d.get("inputs") or {}).items():
        print(
            "decode-only %-5s          1 core %7.2f   %d cores at once %7.2f"
            % (fmt, r["median_msgs_per_s"] / 1e6, r["parallel_cores"], r["parallel_aggregate_msgs_per_s"] / 1e6)
        )
    b = res.get("book") or {}
    for k, v in sorted(b.items()):
        if isinstance(v, dict) and "median_msgs_per_s" in v:
            print("%-34s %7.2f" % (k, v["median_msgs_per_s"] / 1e6))
    for k, t in sorted((b.get("targets") or {}).items()):
        if t.get("ratio"):
            print(
                "%-34s %7.2fx  (itch-book %.2f M msgs/s on the same BinaryFILE, same run)"
                % (t["label"][:34], t["ratio"], t["itch_book_msgs_per_s"] / 1e6)
            )
        else:
            print("%-34s     n/a  (itch-book not installed: pip install itch-book==0.2.1)" % t["label"][:34])
    py = b.get("python") or {}
    if "book_ns" in py:
        print(
            "Python: book() %.0f ns, snapshot_all %.2f ms, events %.1f M/s"
            % (py["book_ns"], py.get("snapshot_all_ms") or 0, (py.get("events_per_s") or 0) / 1e6)
        )
    e = res.get("engine") or {}
    if e:
        print(
            "2 cores / 1 core (line A)           %7.2fx;  A+B costs %.1f%% on one core"
            % (e["scaling"], 100 * e["ab_cost"])
        )
    p = res.get("dpdk") or {}
    if p:
        print(
            "DPDK pcap PMD / replay              %7.2f  (testpmd rxonly %s M pps)"
            % (p["ratio"], "%.1f" % (p["testpmd_rx_pps"] / 1e6) if p.get("testpmd_rx_pps") else "n/a")
        )
    lat = res.get("latency") or {}
    if lat:
        st = lat["latency"]["stages"]["rx_to_published"]
        mpp = lat["latency"]["messages_per_packet"]
        print(
            "rx->published at %.2f M msgs/s paced   p50 %d ns, p99 %d ns, p99.9 %d ns (%.1f msgs/packet)"
            % (lat["latency"]["rate"]["msgs_per_s"] / 1e6, st["p50"], st["p99"], st["p99_9"], mpp["mean"])
        )
        if lat.get("reader"):
            print(
                "publish -> Python reader              p50 %d ns, p99 %d ns"
                % (lat["reader"]["p50"], lat["reader"]["p99"])
            )
        print("latency measurement overhead          %.1f%%" % (100 * lat["overhead"]["fraction"]))
    if args.json:
        benchlib.write_json(args.json, res)
        print("wrote %s" % args.json)


if __name__ == "__main__":
    main()
