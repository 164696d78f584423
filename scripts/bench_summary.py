#!/usr/bin/env python3
"""The headline figures, measured on the current commit, written where people read them.

One command runs the benchmark scripts beside it, each as its own process with
its own --json (nothing is measured here; each script is documented in
scripts/README.md), and rewrites two marked blocks from what they measured:

  README.md              the performance paragraph, between
                         <!-- bench-summary:begin --> and <!-- bench-summary:end -->
  docs/performance.md    the summary table at the top (columns: machine, date,
                         commit, figure, value, peer, ratio), between the same
                         markers; the rows it replaces move to the top of the
                         table under "History" (<!-- bench-summary-history:begin -->
                         ... <!-- bench-summary-history:end -->), newest first

Nothing outside the markers is touched.  The figures and where they come from:

  bench_scale.py    a full-size day (40 M messages, 8 000 instruments, BinaryFILE):
                    --mode book and the default mode (top 10 published), beside
                    itch-book 0.2.1's books (Session(depth=0)), alternating run by
                    run, each process pinned to one core; peak memory
                    (RssAnon + RssShmem); with --baseline-fh, a previous build too
  bench_pitch.py    Cboe PITCH against an ITCH day of the same shape (10 M x 8 000,
                    pcap), book and publish modes, alternating run by run
  bench_decode.py   decode only, pcap and BinaryFILE, one pinned core
  bench_latency.py  rx -> published p50 and p99 at a steady 1 M msgs/s paced on one
                    pinned core, and publish -> Python reader p50 (a busy-polling
                    reader on the other core)

Every figure carries the commit (git rev-parse --short HEAD, "+dirty" when a
tracked file differs), the date (UTC) and the machine (CPU model, cores) it was
measured on.  Peers are measured in the same run, alternating, medians of --runs.
On a shared VM differences under 5% mean nothing; the output says so.

Without itch-book importable (pip install itch-book==0.2.1) the feedhandler
figures are still measured, and the peer column says itch-book was not installed
(bench_scale.py prints why it skipped it).

    python scripts/bench_summary.py                      # full run (~5-10 min), rewrites both files
    python scripts/bench_summary.py --dry-run            # same run, prints the markdown, writes nothing
    python scripts/bench_summary.py --quick --dry-run    # smoke run on tiny days (~1 min): a test, not figures
    python scripts/bench_summary.py --quick              # writes the markdown to --output only, never the docs
    python scripts/bench_summary.py --json R.json        # also keep everything measured
    python scripts/bench_summary.py --from-json R.json   # render again from a kept run, measuring nothing

Run it on a machine as quiet as you can get: other work on the cores makes every
figure lower and noisier (the output records how busy the machine was).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import sys
import tempfile
import time

import benchlib
from benchlib import ROOT, git_commit, machine, run_script

README = os.path.join(ROOT, "README.md")
PERFORMANCE = os.path.join(ROOT, "docs", "performance.md")
BEGIN, END = "<!-- bench-summary:begin -->", "<!-- bench-summary:end -->"
HIST_BEGIN, HIST_END = "<!-- bench-summary-history:begin -->", "<!-- bench-summary-history:end -->"
COLUMNS = ("machine", "date", "commit", "figure", "value", "peer", "ratio")
NOISE = "differences under 5% mean nothing"

# Inputs and repeats: the full run (~5-10 min on a 2-vCPU VM with the days cached,
# a few minutes more the first time, to generate them) and the smoke run.
FULL = {
    "scale": (40_000_000, 8000),
    "pitch": (10_000_000, 8000),
    "decode": (10_000_000, 1000),
    "latency": 5_000_000,
    "runs": 5,
    "wait_quiet": 30,
    "jitter_s": 3,
}
QUICK = {
    "scale": (200_000, 50),
    "pitch": (200_000, 50),
    "decode": (200_000, 50),
    "latency": 200_000,
    "runs": 1,
    "wait_quiet": 0,
    "jitter_s": 0,
}

# Every row of the table, in order: (key, figure).  {scale} {pitch} {decode} are the days.
FIGURES = [
    ("book", "Replay, books only (`--mode book`), {scale} BinaryFILE, one core"),
    ("publish", "Replay, books + top 10 levels published (default mode), {scale} BinaryFILE, one core"),
    ("memory", "Peak memory of that replay (RssAnon + RssShmem: books, segment, interpreter)"),
    ("pitch_book", "Cboe PITCH replay, books only, {pitch} pcap, one core (Time messages not counted)"),
    ("pitch_publish", "Cboe PITCH replay, books + top 10 published, {pitch} pcap, one core"),
    ("decode_pcap", "Decode only (`--mode decode`), {decode} pcap, one core"),
    ("decode_bin", "Decode only, the same day as BinaryFILE, one core"),
    ("rx_p50", "rx -> published p50, a steady 1 M msgs/s paced, one pinned core"),
    ("rx_p99", "rx -> published p99, same run"),
    ("reader_p50", "publish -> Python reader p50, same run (busy-polling reader on the other core)"),
]
BASELINE_FIGURES = [
    ("prev_book", "Replay, books only, against the previous build, {scale} BinaryFILE"),
    ("prev_publish", "Replay, default mode, against the previous build, {scale} BinaryFILE"),
]


# ----------------------------------------------------------------- measuring


def day_text(n, s):
    n_txt = ("%g M" % (n / 1e6)) if n >= 1_000_000 else ("%g k" % (n / 1e3))
    return "%s x %s" % (n_txt, format(s, ",").replace(",", " "))


def measure(args, sizes, workdir):
    """Run the four scripts one after the other; everything they wrote, with their
    exit status, command and wall time."""
    runs = str(args.runs if args.runs is not None else sizes["runs"])

    def cache(name):
        return ["--dir", os.path.join(args.dir, name)] if args.dir else []

    n, s = sizes["scale"]
    scale = [
        "--messages",
        str(n),
        "--symbols",
        str(s),
        "--runs",
        runs,
        "--itch-book-modes",
        "nodepth",
        "--wait-quiet",
        str(sizes["wait_quiet"]),
        "--no-png",
    ] + cache("scale")
    if args.baseline_fh:
        scale += ["--baseline-fh", args.baseline_fh]
    n, s = sizes["pitch"]
    pitch = ["--messages", str(n), "--symbols", str(s), "--runs", runs, "--modes", "book,publish"] + cache("pitch")
    n, s = sizes["decode"]
    decode = ["--messages", str(n), "--symbols", str(s), "--runs", runs] + cache("decode")
    latency = ["--messages", str(sizes["latency"]), "--runs", runs, "--jitter-s", str(sizes["jitter_s"])] + cache(
        "latency"
    )
    steps = [
        ("scale", "bench_scale.py", scale),
        ("pitch", "bench_pitch.py", pitch),
        ("decode", "bench_decode.py", decode),
        ("latency", "bench_latency.py", latency),
    ]
    out = {}
    for key, script, argv in steps:
        print("== %s %s" % (script, " ".join(argv)), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        # The scripts' own reports go to stderr: stdout is this script's markdown.
        rc, doc = run_script(script, argv, os.path.join(workdir, key + ".json"), stdout=sys.stderr)
        out[key] = {"script": script, "args": argv, "rc": rc, "wall_s": time.monotonic() - t0, "result": doc}
        print("== %s: exit %d, %.0f s" % (script, rc, out[key]["wall_s"]), file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------- figures


def mps(x):
    return "%.2f M msgs/s" % (x / 1e6)


def ns_text(v):
    if v < 1000:
        return "%d ns" % v
    if v < 1_000_000:
        return "%.2f us" % (v / 1e3)
    return "%.2f ms" % (v / 1e6)


def figures(run):
    """{key: (value, peer, ratio)} as text, and notes for the caption."""
    b = run["benches"]
    rows, notes = {}, []

    def failed(key):
        st = b.get(key) or {}
        return "not measured: %s failed (exit %s)" % (st.get("script", key), st.get("rc"))

    sc = (b.get("scale") or {}).get("result")
    if sc and sc.get("days"):
        d = sc["days"][0]
        c = d["contenders"]
        ib = c.get("itch-book nodepth") or {}
        skipped = (sc.get("itch_book") or {}).get("skipped")
        ib_ver = (sc.get("itch_book") or {}).get("version") or "0.2.1"
        if skipped:
            notes.append("itch-book was not measured (%s): no peer for the replay rows." % skipped)
        for key, name in (("book", "fh book"), ("publish", "fh publish")):
            f = c.get(name) or {}
            if not f.get("median_msgs_per_s"):
                rows[key] = ("not measured: %s" % (f.get("error") or "no result"), "-", "-")
                continue
            v = f["median_msgs_per_s"]
            if skipped:
                rows[key] = (mps(v), "itch-book: not installed (pip install itch-book==0.2.1)", "n/a")
            elif ib.get("median_msgs_per_s"):
                p = ib["median_msgs_per_s"]
                rows[key] = (mps(v), "itch-book %s books (no depth output): %s" % (ib_ver, mps(p)), "%.2fx" % (v / p))
            else:
                rows[key] = (mps(v), "itch-book failed: %s" % (ib.get("error") or "no result"), "n/a")
        for key, name in (("prev_book", "book"), ("prev_publish", "publish")):
            f, p = c.get("fh " + name) or {}, c.get("baseline " + name) or {}
            if f.get("median_msgs_per_s") and p.get("median_msgs_per_s"):
                rows[key] = (
                    mps(f["median_msgs_per_s"]),
                    "previous build (%s): %s"
                    % (run.get("baseline_commit") or run.get("baseline_fh"), mps(p["median_msgs_per_s"])),
                    "%.2fx" % (f["median_msgs_per_s"] / p["median_msgs_per_s"]),
                )
        peaks = [(c.get(k) or {}).get("peak_mem_bytes") for k in ("fh book", "fh publish")]
        peaks = [p for p in peaks if p]
        rows["memory"] = ("%.0f MiB" % (max(peaks) / 2**20), "-", "-") if peaks else (failed("scale"), "-", "-")
        busy = [x for v in c.values() for x in (v.get("other_busy_cores_runs") or []) if x is not None]
        if busy:
            run["busy_cores"] = statistics.mean(busy)
        run["scale_day"] = day_text(d["messages"], d["symbols"])
        peak_orders = ((d.get("summary") or {}).get("book_stats") or {}).get("peak_live_orders")
        if peak_orders:
            run["peak_live_orders"] = peak_orders
    else:
        for key in ("book", "publish", "memory"):
            rows[key] = (failed("scale"), "-", "-")

    pi = (b.get("pitch") or {}).get("result")
    for key, mode in (("pitch_book", "book"), ("pitch_publish", "publish")):
        m = ((pi or {}).get("results") or {}).get(mode, {}).get("median")
        if m:
            rows[key] = (mps(m["pitch_flow"]), "ITCH day of the same shape: %s" % mps(m["itch"]), "%.2fx" % m["ratio"])
        else:
            rows[key] = (failed("pitch"), "-", "-")
    if pi:
        run["pitch_day"] = day_text(pi["messages"], pi["symbols"])

    de = (b.get("decode") or {}).get("result")
    for key, fmt in (("decode_pcap", "pcap"), ("decode_bin", "bin")):
        r = ((de or {}).get("inputs") or {}).get(fmt)
        rows[key] = (mps(r["median_msgs_per_s"]), "-", "-") if r else (failed("decode"), "-", "-")
    if de:
        argv = b["decode"]["args"]
        run["decode_day"] = day_text(de["messages"], int(argv[argv.index("--symbols") + 1]))

    la = (b.get("latency") or {}).get("result")
    if la:
        st = la["latency"]["stages"]["rx_to_published"]
        rows["rx_p50"] = (ns_text(st["p50"]), "-", "-")
        rows["rx_p99"] = (ns_text(st["p99"]), "-", "-")
        rows["reader_p50"] = (
            (ns_text(la["reader"]["p50"]), "-", "-") if la.get("reader") else ("not measured: no reader core", "-", "-")
        )
        run["latency_rate"] = la["latency"]["rate"]["msgs_per_s"]
        if la.get("jitter"):
            run["latency_core_lost"] = la["jitter"]["lost_fraction"]
    else:
        for key in ("rx_p50", "rx_p99", "reader_p50"):
            rows[key] = (failed("latency"), "-", "-")
    return rows, notes


def table_rows(run, rows):
    fill = {
        "scale": run.get("scale_day", "?"),
        "pitch": run.get("pitch_day", "?"),
        "decode": run.get("decode_day", "?"),
    }
    out = []
    for key, label in FIGURES + (BASELINE_FIGURES if run.get("baseline_fh") else []):
        value, peer, ratio = rows.get(key, ("not measured", "-", "-"))
        cells = (run["machine"]["text"], run["date"], "`%s`" % run["commit"], label.format(**fill), value, peer, ratio)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


def caption(run, notes):
    b = run["benches"]
    cmds = "; ".join("`python scripts/%s %s`" % (v["script"], " ".join(v["args"])) for v in b.values())
    busy = run.get("busy_cores")
    lost = run.get("latency_core_lost")
    text = (
        "Measured by `python scripts/bench_summary.py%s` on %s UTC in %.0f s: %s, each "
        "contender alternating with its peer run by run, each measured process pinned to one core. "
        "The machine is a shared VM%s%s: %s, and only a value beside its peer in the same row compares. "
        "Ratio: value / peer (above 1: feedhandler or PITCH faster). The runs: %s."
        % (
            " --quick" if run["quick"] else "",
            run["started"],
            run["wall_s"],
            medians(run["runs"]),
            " (other work kept %.2f cores busy on average during the replays)" % busy if busy is not None else "",
            "; while latency was measured, a thread spinning on the pipeline's core lost %.1f%% of its time "
            "to other work (bench_latency.py's jitter probe)" % (100 * lost)
            if lost is not None
            else "",
            NOISE,
            cmds,
        )
    )
    if run["quick"]:
        text = "**Smoke run (--quick): tiny days, one run each; not figures to quote.** " + text
    return [text] + notes


def render_table(run):
    rows, notes = figures(run)
    lines = [BEGIN, "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += table_rows(run, rows)
    lines += [""] + [wrap(c) for c in caption(run, notes)] + [END]
    return "\n".join(lines)


def render_paragraph(run):
    rows, notes = figures(run)
    v = {k: r[0] for k, r in rows.items()}
    ratio = {k: r[2] for k, r in rows.items()}

    def beside(key, what):
        return (", **%s** %s" % (ratio[key], what)) if ratio.get(key) not in (None, "-", "n/a") else ""

    peak = (
        ", %s live orders at the peak" % format(run["peak_live_orders"], ",").replace(",", " ")
        if run.get("peak_live_orders")
        else ""
    )
    busy = run.get("busy_cores")
    ib_missing = any("not installed" in r[1] for r in rows.values())
    text = (
        "Commit `{commit}`, measured {date} on {machine}{busy} by "
        "`python scripts/bench_summary.py{quick_flag}`{quick}. On a generated {full}day ({scale}{peak}) read as "
        "BinaryFILE on one core: books only "
        "**{book}**{book_r}; books with the top 10 levels of every instrument published to shared memory "
        "**{publish}**{publish_r}; {memory} held at the peak.{ib} Cboe PITCH on a day of the same shape "
        "({pitch}, pcap): books {pitch_book}{pitch_book_r}. Decode only: {decode_pcap} per core from a pcap, "
        "{decode_bin} from a BinaryFILE. Latency at a steady 1 M msgs/s, paced on one pinned core: rx -> "
        "published p50 {rx_p50}, p99 {rx_p99} (the tail is the VM taking the core away{lost}); publish -> Python "
        "reader p50 {reader_p50}. {medians}, each beside its peer in the same run, alternating run by run; "
        "on this VM {noise}. Every figure with its command, and the older ones: [docs/performance.md](docs/performance.md) "
        "and [docs/latency.md](docs/latency.md)."
    ).format(
        commit=run["commit"],
        date=run["date"],
        machine=run["machine"]["text"],
        busy=(" (other work kept %.2f cores busy during the replays)" % busy) if busy is not None else "",
        quick_flag=" --quick" if run["quick"] else "",
        full="" if run["quick"] else "full-size ",
        quick=" (a smoke run on tiny days: not figures to quote)" if run["quick"] else "",
        scale=run.get("scale_day", "?"),
        peak=peak,
        book=v["book"],
        book_r=beside("book", "itch-book 0.2.1's books in the same run"),
        publish=v["publish"],
        publish_r=beside("publish", "itch-book's books alone"),
        memory=v["memory"],
        ib=(
            " itch-book was not installed on this machine, so no ratio to it (pip install itch-book==0.2.1)."
            if ib_missing
            else ""
        ),
        pitch=run.get("pitch_day", "?"),
        pitch_book=v["pitch_book"],
        pitch_book_r=beside("pitch_book", "the ITCH day's rate"),
        lost=(
            "; in this run a thread spinning on that core lost %.1f%% of its time to other work"
            % (100 * run["latency_core_lost"])
            if run.get("latency_core_lost") is not None
            else ""
        ),
        decode_pcap=v["decode_pcap"],
        decode_bin=v["decode_bin"],
        rx_p50=v["rx_p50"],
        rx_p99=v["rx_p99"],
        reader_p50=v["reader_p50"],
        medians=medians(run["runs"]).capitalize(),
        noise=NOISE,
    )
    return "\n".join([BEGIN, wrap(text), END])


def medians(runs):
    return "medians of %d runs" % runs if runs > 1 else "one run each"


def wrap(text, width=92):
    """Lines of at most `width` characters, never breaking inside **bold**."""
    out, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width and line.count("**") % 2 == 0:
            out.append(line)
            line = word
        else:
            line = (line + " " + word) if line else word
    return "\n".join(out + [line])


# ----------------------------------------------------------------- rewriting


def block(text, begin, end, path):
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise SystemExit("%s has no %s ... %s block: nothing to rewrite" % (path, begin, end))
    return i, j + len(end)


def table_body(lines):
    """The data rows of the markdown table in `lines` (header and separator left out)."""
    rows = [ln for ln in lines if ln.startswith("|")]
    return [r for r in rows[2:]] if len(rows) >= 2 and re.match(r"^\|(\s*-+\s*\|)+$", rows[1]) else []


def rewrite_performance(text, table, path):
    i, j = block(text, BEGIN, END, path)
    old_rows = table_body(text[i:j].splitlines())
    text = text[:i] + table + text[j:]
    hi, hj = block(text, HIST_BEGIN, HIST_END, path)
    hist = text[hi:hj].splitlines()
    body = table_body(hist)
    head = [ln for ln in hist if ln.startswith("|")][:2] or [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    new = [HIST_BEGIN] + head + old_rows + body + [HIST_END]
    return text[:hi] + "\n".join(new) + text[hj:]


def rewrite_readme(text, paragraph, path):
    i, j = block(text, BEGIN, END, path)
    return text[:i] + paragraph + text[j:]


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------- main


def main():
    ap = benchlib.arguments(__doc__, json="keep everything measured here")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny days, one run each; writes --output only, never README.md or docs/",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the markdown, write no file")
    ap.add_argument(
        "--output",
        metavar="FILE",
        help="write the markdown (paragraph and table) here instead of rewriting README.md and "
        "docs/performance.md (--quick default: bench-summary-quick.md in the temp folder)",
    )
    ap.add_argument(
        "--runs", type=int, default=None, help="runs per contender, medians (default %d; --quick 1)" % FULL["runs"]
    )
    ap.add_argument(
        "--dir",
        metavar="DIR",
        help="cache the generated days under DIR/<bench> (default: each script's own cache in the temp folder)",
    )
    ap.add_argument(
        "--baseline-fh",
        metavar="PATH",
        help="a previous build's feedhandler executable: measured beside this one (bench_scale.py)",
    )
    ap.add_argument("--from-json", metavar="IN", help="render a kept run again instead of measuring")
    args = ap.parse_args()
    if args.runs is not None and args.runs < 1:
        raise SystemExit("--runs must be >= 1")

    if args.from_json:
        with open(args.from_json) as f:
            run = json.load(f)
    else:
        sizes = QUICK if args.quick else FULL
        started = datetime.datetime.now(datetime.timezone.utc)
        run = {
            "commit": git_commit(),
            "date": started.strftime("%Y-%m-%d"),
            "started": started.strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "quick": args.quick,
            "runs": args.runs if args.runs is not None else sizes["runs"],
            "baseline_fh": args.baseline_fh,
        }
        if args.baseline_fh:
            run["baseline_commit"] = git_commit(os.path.dirname(os.path.realpath(args.baseline_fh)))
            if run["baseline_commit"] == "unknown":
                run["baseline_commit"] = args.baseline_fh
        print(
            "bench_summary: commit %s, %s, %s"
            % (run["commit"], run["machine"]["text"], "quick" if args.quick else "full run"),
            file=sys.stderr,
        )
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fh-summary-") as work:
            run["benches"] = measure(args, sizes, work)
        run["wall_s"] = time.monotonic() - t0
        benchlib.write_json(args.json, run)

    paragraph, table = render_paragraph(run), render_table(run)
    failed = [v["script"] for v in run["benches"].values() if v["result"] is None]
    markdown = "README.md, the performance paragraph:\n\n%s\n\ndocs/performance.md, the summary table:\n\n%s\n" % (
        paragraph,
        table,
    )
    print(
        "bench_summary: %.0f s in all (%s)"
        % (run["wall_s"], ", ".join("%s %.0f s" % (v["script"], v["wall_s"]) for v in run["benches"].values())),
        file=sys.stderr,
    )
    if args.dry_run:
        sys.stdout.write(markdown)
    elif args.output or run["quick"]:
        out = args.output or os.path.join(tempfile.gettempdir(), "bench-summary-quick.md")
        write(out, markdown)
        print("bench_summary: wrote %s" % out, file=sys.stderr)
    elif failed:
        sys.stdout.write(markdown)
        print(
            "bench_summary: %s produced nothing: README.md and docs/performance.md left as they were"
            % ", ".join(failed),
            file=sys.stderr,
        )
    else:
        with open(README) as f:
            readme = rewrite_readme(f.read(), paragraph, README)
        with open(PERFORMANCE) as f:
            perf = rewrite_performance(f.read(), table, PERFORMANCE)
        write(README, readme)
        write(PERFORMANCE, perf)
        print(
            "bench_summary: rewrote README.md (performance paragraph) and docs/performance.md (summary table; "
            "the rows it replaced are now the first under History)",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
