#!/usr/bin/env python3
"""IEX DEEP+, DEEP and TOPS beside NASDAQ ITCH on days of the same shape, in the same run.

`feedhandler gen` makes all four days from the same order-flow model (same
--messages, --symbols, --seed): PREFIX-itch.pcap (MoldUDP64) and
PREFIX-iex-deepplus.pcap, PREFIX-iex-deep.pcap, PREFIX-iex-tops.pcap (IEX-TP
v1, one segment per datagram), cached under --dir.  All are pcaps, so input
parsing is the same work.  For each mode (decode-only, book, publish) the four
replays run one after the other, run by run (round robin: drift of the machine
hits all alike), pinned to one core, and the medians of --runs are compared.

Rates: feedhandler's own decode-loop figure (--stats-json elapsed_s).  Each
feed writes the model's messages its own way, so the message counts differ:

  DEEP+   about one message per ITCH message, but no Time messages (ITCH has
          none either), a partial cancel is an Order Modify, an execution an
          Order Executed, and Security Events take the place of ITCH's
          directory and NOII messages.  Rate = messages decoded / decode time
          (the target's ratio: DEEP+ / ITCH, per message decoded); beside it,
          per model message (the same day: ITCH's time / DEEP+'s time).
  DEEP    Price Level Updates (PLUs, '8' and '5') instead of orders: about one
          per order-flow message, several for a sweep.  Two PLU rates:
            PLU/s (equal share)  the decode loop's time divided equally among
                                 every message decoded, so a PLU's share is
                                 1 / (messages/s): PLU/s = messages / time
                                 (the target's figure);
            PLU/s (all time)     PLUs / the whole decode loop's time: every
                                 other message's time charged to the PLUs, a
                                 lower bound.
  TOPS    for information: one Quote Update per change of the top of book.

Memory (DEEP+ day of --mem-messages, compressed once with gzip (level 6, as
`gzip -k`) beside it): the replay from PREFIX.pcap.gz (streamed through
zlib) and from the plain PREFIX.pcap (mapped), alternating for --mem-runs,
pinned: peak RSS (ru_maxrss from wait4 on the child, the mapped file's pages
included), peak RssAnon + RssShmem (sampled every 20 ms: what the process holds
itself), msgs/s and uncompressed input MB/s.

Targets:
  1. DEEP+ book and publish rates (per message decoded) within 15% of ITCH's;
  2. DEEP PLU/s (equal share) at least ITCH's messages/s, book and publish;
  3. peak RSS of the .pcap.gz replay no higher than the plain .pcap replay's.
Exit status 1 when one is missed (the JSON is written all the same).

  python scripts/bench_iex.py --messages 10e6 --symbols 8000 --runs 7 --mem-messages 64e6

(64e6: a 3.3 GB DEEP+ pcap, a 1.0 GB .pcap.gz; the default 1e6 is a quick run.)
"""

import os
import subprocess
import sys

import benchlib
from benchlib import BenchError

FEEDS = ("itch", "iex-deepplus", "iex-deep", "iex-tops")
PLU_TYPES = ("iex_8", "iex_5")


def replay_rate(path, mode, cpu, day_messages, label, on_start=None):
    """One pinned replay of a day: (its counters, wall s, peak RSS bytes), after
    checking it decoded the whole day without an error."""
    try:
        st, wall, rss = benchlib.stats_json_run(
            benchlib.fh("replay", "-q", path, "--mode", mode),
            timeout=3600,
            quiet_stderr=True,
            cpu=cpu,
            on_start=on_start,
        )
    except BenchError as e:
        raise SystemExit("%s %s: replay failed: %s" % (label, mode, e))
    if st["errors"]:
        raise SystemExit("%s %s: errors %s" % (label, mode, st["errors"]))
    if st["messages"] != day_messages:
        raise SystemExit("%s %s: %d messages decoded, the day has %d" % (label, mode, st["messages"], day_messages))
    return st, wall, rss


def gzipped(path):
    """PATH.gz beside PATH (gzip's default level, the file `gzip -k` makes),
    made once: written to PATH.gz.part and renamed, so an interrupted run
    leaves no truncated .gz to reuse."""
    gz = path + ".gz"
    if os.path.exists(gz) and os.path.getmtime(gz) >= os.path.getmtime(path):
        return gz
    print("compressing %s ..." % path, file=sys.stderr)
    with open(gz + ".part", "wb") as out:
        subprocess.run(["gzip", "-c", path], stdout=out, check=True)
    os.replace(gz + ".part", gz)
    return gz


def speed(a, days):
    """Parts 1-3: every mode, the four days round robin for --runs."""
    results = {}
    for mode in a.modes.split(","):
        keys = (
            "itch",
            "deepplus",
            "deepplus_model",
            "deep",
            "deep_plu_share",
            "deep_plu_all_time",
            "tops",
            "tops_model",
        )
        rates = {k: [] for k in keys}
        for run in range(a.runs):
            for feed in FEEDS:
                path, summary = days[feed]
                st, _, _ = replay_rate(path, mode, a.cpu, summary["messages"], feed)
                el = st["elapsed_s"]
                msgs = st["messages"]
                if feed == "itch":
                    rates["itch"].append(msgs / el)
                elif feed == "iex-deepplus":
                    rates["deepplus"].append(msgs / el)
                    rates["deepplus_model"].append(summary["model_messages"] / el)
                elif feed == "iex-deep":
                    plus = sum(st["by_type"].get(t, 0) for t in PLU_TYPES)
                    rates["deep"].append(msgs / el)
                    rates["deep_plu_share"].append(msgs / el)
                    rates["deep_plu_all_time"].append(plus / el)
                else:
                    rates["tops"].append(msgs / el)
                    rates["tops_model"].append(summary["model_messages"] / el)
            print(
                "  %-8s run %d: itch %.2f, deep+ %.2f, deep %.2f (PLU all time %.2f), tops %.2f M msgs/s"
                % (
                    mode,
                    run + 1,
                    rates["itch"][-1] / 1e6,
                    rates["deepplus"][-1] / 1e6,
                    rates["deep"][-1] / 1e6,
                    rates["deep_plu_all_time"][-1] / 1e6,
                    rates["tops"][-1] / 1e6,
                ),
                flush=True,
            )
        med = {k: benchlib.median(v) for k, v in rates.items()}
        ratio = {
            "deepplus_per_message": med["deepplus"] / med["itch"],
            "deepplus_per_model_message": med["deepplus_model"] / med["itch"],
            "deep_plu_share": med["deep_plu_share"] / med["itch"],
            "deep_plu_all_time": med["deep_plu_all_time"] / med["itch"],
            "tops_per_message": med["tops"] / med["itch"],
        }
        # The same ratios run by run (each feed beside ITCH in the same round), their
        # medians: less swayed by the machine's drift between rounds.
        paired = {
            "deepplus_per_message": benchlib.median(x / y for x, y in zip(rates["deepplus"], rates["itch"])),
            "deep_plu_share": benchlib.median(x / y for x, y in zip(rates["deep_plu_share"], rates["itch"])),
        }
        results[mode] = {"median": med, "ratio": ratio, "ratio_paired": paired, "runs": rates}
    return results


def memory(a):
    """Part 4: a DEEP+ day replayed from its .pcap.gz and its .pcap, alternating."""
    prefix = os.path.join(a.dir, "mem-%d-%d-%d-iex-deepplus" % (a.mem_messages, a.symbols, a.seed))
    summary = benchlib.day(
        prefix,
        ["--protocol", "iex-deepplus", "--messages", a.mem_messages, "--symbols", a.symbols, "--seed", a.seed],
        need=(".pcap",),
    )
    plain = prefix + ".pcap"
    inputs = {"pcap.gz": gzipped(plain), "pcap": plain}
    benchlib.warm(*inputs.values())
    size = os.path.getsize(plain)
    runs = {k: [] for k in inputs}
    for run in range(a.mem_runs):
        for k, path in inputs.items():
            mem = benchlib.MemSampler()
            st, wall, rss = replay_rate(path, a.mem_mode, a.cpu, summary["messages"], "memory " + k, on_start=mem)
            runs[k].append(
                {
                    "wall_s": wall,
                    "elapsed_s": st["elapsed_s"],
                    "msgs_per_s": st["messages"] / st["elapsed_s"],
                    "input_mb_per_s": size / wall / 1e6,
                    "maxrss": rss,
                    "peak_anon": mem.peak,
                    "other_busy_cores": mem.other_cores,
                }
            )
            r = runs[k][-1]
            print(
                "  memory   run %d: %-7s %.2f M msgs/s, peak RSS %s, RssAnon+Shmem %s"
                % (run + 1, k, r["msgs_per_s"] / 1e6, benchlib.mib(r["maxrss"]), benchlib.mib(r["peak_anon"])),
                flush=True,
            )
    fields = ("wall_s", "msgs_per_s", "input_mb_per_s", "maxrss", "peak_anon")
    rows = {
        k: dict(
            {f: benchlib.median(v, f) for f in fields}, file_bytes=os.path.getsize(inputs[k]), path=inputs[k], runs=v
        )
        for k, v in runs.items()
    }
    return {
        "messages": summary["messages"],
        "model_messages": summary["model_messages"],
        "mode": a.mem_mode,
        "uncompressed_bytes": size,
        "gz_bytes": os.path.getsize(inputs["pcap.gz"]),
        "rows": rows,
        "target_met": rows["pcap.gz"]["maxrss"] <= rows["pcap"]["maxrss"],
    }


def main():
    ap = benchlib.arguments(
        __doc__, messages=10_000_000, symbols=8000, seed=11, runs=3, dir="fh-iex-bench", cpu=(os.cpu_count() or 1) - 1
    )
    ap.add_argument("--modes", default="decode,book,publish")
    ap.add_argument(
        "--mem-messages",
        type=benchlib.count,
        default=1_000_000,
        metavar="N",
        help="model messages of the DEEP+ day replayed from .pcap.gz and .pcap (default %(default)s: a "
        "17 MB .gz; 64e6 makes a .gz of about 1 GB)",
    )
    ap.add_argument("--mem-runs", type=int, default=None, metavar="N", help="memory runs per input (default --runs)")
    ap.add_argument("--mem-mode", default="book", choices=["decode", "book", "publish"])
    ap.add_argument("--no-memory", action="store_true", help="leave the memory part out")
    a = ap.parse_args()
    if a.mem_runs is None:
        a.mem_runs = a.runs
    n = a.messages
    base = os.path.join(a.dir, "day-%d-%d-%d" % (n, a.symbols, a.seed))
    days = {}
    for feed in FEEDS:
        summary = benchlib.day(
            base + "-" + feed,
            ["--protocol", feed, "--messages", n, "--symbols", a.symbols, "--seed", a.seed],
            need=(".pcap",),
        )
        summary.setdefault("model_messages", summary["messages"])
        days[feed] = (base + "-" + feed + ".pcap", summary)
        benchlib.warm(days[feed][0])
    busy = benchlib.busy_cores()
    results = speed(a, days)
    mem = None if a.no_memory else memory(a)

    print(
        "\n%d model messages x %d symbols, seed %d, medians of %d runs, pinned to CPU %d (M msgs/s; "
        "other work kept %s cores busy before the runs)"
        % (n, a.symbols, a.seed, a.runs, a.cpu, "%.2f" % busy if busy is not None else "?")
    )
    print(
        "messages decoded: ITCH %d, DEEP+ %d, DEEP %d (%d PLUs), TOPS %d"
        % (
            days["itch"][1]["messages"],
            days["iex-deepplus"][1]["messages"],
            days["iex-deep"][1]["messages"],
            sum(days["iex-deep"][1]["by_type"].get(t, 0) for t in PLU_TYPES),
            days["iex-tops"][1]["messages"],
        )
    )
    print(
        "| mode | ITCH | DEEP+ | DEEP+ / ITCH | DEEP+ per model msg / ITCH | DEEP PLU/s (equal share) "
        "| / ITCH | DEEP PLU/s (all time) | / ITCH | TOPS | TOPS / ITCH |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    targets = []
    for mode, r in results.items():
        m, q = r["median"], r["ratio"]
        print(
            "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |"
            % (
                mode,
                m["itch"] / 1e6,
                m["deepplus"] / 1e6,
                q["deepplus_per_message"],
                q["deepplus_per_model_message"],
                m["deep_plu_share"] / 1e6,
                q["deep_plu_share"],
                m["deep_plu_all_time"] / 1e6,
                q["deep_plu_all_time"],
                m["tops"] / 1e6,
                q["tops_per_message"],
            )
        )
        if mode in ("book", "publish"):
            targets.append(
                {
                    "target": "DEEP+ %s within 15%% of ITCH (per message decoded)" % mode,
                    "ratio": q["deepplus_per_message"],
                    "met": q["deepplus_per_message"] >= 0.85,
                }
            )
            targets.append(
                {
                    "target": "DEEP PLU/s (equal share) %s at least ITCH msgs/s" % mode,
                    "ratio": q["deep_plu_share"],
                    "met": q["deep_plu_share"] >= 1.0,
                }
            )
    print(
        "run by run (medians of each round's ratio): "
        + ", ".join(
            "%s DEEP+ / ITCH %.2f, DEEP PLU / ITCH %.2f"
            % (mode, r["ratio_paired"]["deepplus_per_message"], r["ratio_paired"]["deep_plu_share"])
            for mode, r in results.items()
        )
    )
    if mem:
        print(
            "\nmemory: DEEP+ day of %d messages, %s mode, %.2f GB pcap, %.2f GB pcap.gz, medians of %d runs"
            % (mem["messages"], mem["mode"], mem["uncompressed_bytes"] / 1e9, mem["gz_bytes"] / 1e9, a.mem_runs)
        )
        print("| input | file GB | M msgs/s | input MB/s | wall s | peak RSS | peak RssAnon + RssShmem |")
        print("|---|---|---|---|---|---|---|")
        for k, row in mem["rows"].items():
            print(
                "| %s | %.2f | %.2f | %.0f | %.2f | %s | %s |"
                % (
                    k,
                    row["file_bytes"] / 1e9,
                    row["msgs_per_s"] / 1e6,
                    row["input_mb_per_s"],
                    row["wall_s"],
                    benchlib.mib(row["maxrss"]),
                    benchlib.mib(row["peak_anon"]),
                )
            )
        gz, pl = mem["rows"]["pcap.gz"]["maxrss"], mem["rows"]["pcap"]["maxrss"]
        targets.append(
            {
                "target": "peak RSS of the .pcap.gz replay <= the .pcap replay's",
                "ratio": gz / pl,
                "met": mem["target_met"],
            }
        )
    print()
    for t in targets:
        print("target: %s: %.2f, %s" % (t["target"], t["ratio"], "met" if t["met"] else "NOT met"))
    benchlib.write_json(
        a.json,
        {
            "messages": n,
            "symbols": a.symbols,
            "seed": a.seed,
            "runs": a.runs,
            "cpu": a.cpu,
            "machine": benchlib.machine(),
            "commit": benchlib.git_commit(),
            "other_busy_cores": busy,
            "days": {
                feed: {
                    "path": path,
                    "messages": s["messages"],
                    "model_messages": s["model_messages"],
                    "by_type": s["by_type"],
                }
                for feed, (path, s) in days.items()
            },
            "results": results,
            "memory": mem,
            "targets": targets,
        },
    )
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
