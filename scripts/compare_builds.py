#!/usr/bin/env python3
"""Two builds of feedhandler side by side: the same books, the same speed?

    python scripts/compare_builds.py [identity] --base BUILD DAY [DAY ...]
    python scripts/compare_builds.py speed      --base BUILD DAY [DAY ...] [--runs 5] [--cpu 1]
    python scripts/compare_builds.py callgrind  --base BUILD DAY [DAY ...]
    python scripts/compare_builds.py flags      DAY [DAY ...] NAME=FLAGS [NAME=FLAGS ...] [--runs 5]

identity (the default: `compare_builds.py --base DIR DAY...` is this)
    Replays each DAY with both builds, with one lane and with two (--cores 0,1),
    in publish and book mode, and compares byte for byte:
      - the --dump-books CSV (every level of every book, --depth 10),
      - every counter of --stats-json except timings and reserved memory (the
        book's publishes and events among them),
      - in publish mode, every event left in the segment's rings (read back
        with feedhandler.shm, lane by lane, oldest first), with the writer's
        clock fields zeroed (publish_ts; rx_ts too for a BinaryFILE, which has
        no capture clock).
    BinaryFILE inputs in publish mode: a build that publishes once per window of
    records (conflated) and one that published after every record differ in how
    many times they published (book.publishes, book.events) by design; those two
    are reported, not compared, with --allow-binfile-conflation.  Exit status 0
    when every comparison is identical, 1 otherwise.

speed
    Replay msgs/s (feedhandler's own --stats-json figure) of each DAY in each
    mode, the builds alternating run by run (so drift of the machine hits both
    alike), pinned to one core; medians and every run.  Timings on a shared
    machine move by +-15% from run to run: compare medians of several runs.

callgrind
    Instructions inside the replay walk, deterministic where seconds are not:
      valgrind --tool=callgrind --toggle-collect=fh_lane_replay_file
               --toggle-collect=fh_replay_file python -P -m feedhandler replay -q DAY --mode M
    (fh_lane_replay_file is called fh_replay_file in builds before the lane was renamed: the
    counts are the walk's, whichever name the build has), one lane, once per
    build, DAY and mode; the change against --base.  Needs valgrind; a
    sanitized (ASan) build cannot run under it.

flags
    Builds of this checkout's C core that differ in compiler flags (tuning
    constants such as -DFH_PF_ORDER=16, or -march=native; NAME="" for the plain
    build), each built once into --build-dir/fh-variant-NAME (a copy of csrc/,
    cffi_build/ and feedhandler/ with FEEDHANDLER_CFLAGS=FLAGS) and rebuilt only
    when its flags or the sources change; then measured as `speed` does (or
    --measure callgrind / identity), the first variant as the reference:
      python scripts/compare_builds.py flags DAY.bin base="" pf16="-DFH_PF_ORDER=16" --modes book

BUILD (--base, --new) is one of
    DIR   a tree whose feedhandler/ holds its own compiled core (a checkout:
          `git worktree add /tmp/old REV`, then `python cffi_build/build_core.py`
          there; or a copy): run as `python -P -m feedhandler` with DIR first on
          PYTHONPATH, from the temp folder
    EXE   a feedhandler executable (another checkout's .venv/bin/feedhandler, or
          a wrapper script), run as it is
--new defaults to this interpreter's feedhandler (this checkout).  --json OUT
keeps every comparison or run.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from benchlib import BenchError, Build  # noqa: E402

COMMANDS = ("identity", "speed", "callgrind", "flags")
UNFIXED = {"elapsed_s", "msgs_per_s", "memory", "inputs"}
CONFLATED = ("publishes", "events")
ENTRY_POINTS = ("fh_lane_replay_file", "fh_replay_file")  # the walk, after and before the lane was renamed
VARIANT = re.compile(r"^([A-Za-z0-9_.+-]+)=(.*)$", re.S)


def is_binfile(path):
    return not path.endswith((".pcap", ".pcapng", ".pcap.gz"))


# ----------------------------------------------------------------- identity


#: Event fields a replay does not fix: when the writer published (its clock).
#: A BinaryFILE has no capture clock, so its events' rx_ts is the writer's too.
EVENT_CLOCKS = ("publish_ts",)
EVENT_CLOCKS_BINFILE = ("publish_ts", "rx_ts")


def events_digest(name, binfile):
    """(sha256, count, lapped) of every event left in segment `name`'s rings,
    lane by lane, oldest first, with the writer's clock fields zeroed; the
    segment is removed after."""
    from feedhandler.shm import attach

    h = hashlib.sha256()
    n = lapped = 0
    try:
        with attach(name) as seg:
            seg.seek("oldest")
            while True:
                ev = seg.events()
                if not len(ev):
                    break
                ev = ev.copy()
                for f in EVENT_CLOCKS_BINFILE if binfile else EVENT_CLOCKS:
                    ev[f] = 0
                h.update(ev.tobytes())
                n += len(ev)
            lapped = seg.lapped
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    return h.hexdigest(), n, lapped


def identity_run(build, path, cores, mode, tmp):
    """(sha256 of the dump, its rows, the fixed counters, the events' digest)
    of one replay; the events' digest is None outside publish mode."""
    dump = os.path.join(tmp, "d.csv")
    extra = ["--cores", cores] if cores else []
    shm = None
    if mode == "publish":
        shm = "fh-compare-%d-%s" % (os.getpid(), os.path.basename(tmp))
        extra += ["--shm", shm]
    st = benchlib.replay(
        os.path.abspath(path),
        "--mode",
        mode,
        "--depth",
        10,
        "--silence-ms",
        120000,
        "--dump-books",
        dump,
        *extra,
        build=build,
        timeout=3600,
        quiet_stderr=True,
    )
    with open(dump, "rb") as f:
        csv = f.read()
    events = events_digest(shm, is_binfile(path)) if shm else None
    return (
        hashlib.sha256(csv).hexdigest(),
        csv.count(b"\n") - 1,
        {k: v for k, v in st.items() if k not in UNFIXED},
        events,
    )


def identity(builds, a):
    """Every build against the first, byte for byte; (exit status, the comparisons)."""
    lane_sets = [None if n == "1" else ",".join(str(i) for i in range(int(n))) for n in a.lanes.split(",")]
    ref, others = builds[0], builds[1:]
    out = []
    with tempfile.TemporaryDirectory(prefix="fh-compare-") as tmp:
        for path in a.days:
            for cores in lane_sets:
                for mode in a.modes.split(","):
                    # the other build first, the reference after (the order compare_builds always ran them)
                    runs = {b.label: identity_run(b, path, cores, mode, tmp) for b in others + [ref]}
                    old = runs[ref.label]
                    for b in others:
                        out.append(
                            identity_compare(path, cores, mode, b, runs[b.label], ref, old, a.allow_binfile_conflation)
                        )
    return (1 if any(not c["same"] for c in out) else 0), out


def identity_compare(path, cores, mode, build, new, ref, old, allow_conflation):
    sn, so = dict(new[2]), dict(old[2])
    note = ""
    if is_binfile(path) and mode == "publish" and allow_conflation:
        bn, bo = dict(sn["book"]), dict(so["book"])
        note = " (publishes %d vs %d, events %d vs %d: conflated per window)" % (
            bn["publishes"],
            bo["publishes"],
            bn["events"],
            bo["events"],
        )
        for k in CONFLATED:
            bn.pop(k), bo.pop(k)
        sn["book"], so["book"] = bn, bo
    # A conflating build writes fewer events by design: their ring is not compared either.
    events_compared = new[3] is not None and not note
    events_same = not events_compared or new[3] == old[3]
    same = new[0] == old[0] and new[1] == old[1] and sn == so and events_same
    pair = "" if build.label == "new" and ref.label == "base" else " %s/%s" % (build.label, ref.label)
    print(
        "%-9s %-40s lanes=%-4s %-8s dump %s (%d rows) counters %s%s%s%s"
        % (
            "SAME" if same else "DIFFERENT",
            os.path.basename(path),
            cores or "1",
            mode,
            "=" if new[0] == old[0] else "!=",
            new[1],
            "=" if sn == so else "!=",
            (" events %s (%d, lapped %d)" % ("=" if events_same else "!=", new[3][1], new[3][2]))
            if events_compared
            else "",
            note,
            pair,
        ),
        flush=True,
    )
    diffs = {}
    if sn != so:
        for k in sorted(set(sn) | set(so)):
            if sn.get(k) != so.get(k):
                diffs[k] = [sn.get(k), so.get(k)]
                print("    %s: %s != %s" % (k, json.dumps(sn.get(k))[:200], json.dumps(so.get(k))[:200]))
    return {
        "input": path,
        "lanes": cores or "1",
        "mode": mode,
        "build": build.label,
        "reference": ref.label,
        "same": same,
        "dump_same": new[0] == old[0],
        "rows": new[1],
        "reference_rows": old[1],
        "counters_same": sn == so,
        "events_same": events_same if events_compared else None,
        "events": new[3][1] if events_compared else None,
        "differences": diffs,
        "note": note.strip() or None,
    }


# ----------------------------------------------------------------- speed


def speed(builds, a):
    """Alternating pinned runs of every build on every day and mode; (0, results)."""
    names = [b.label for b in builds]
    res = []
    benchlib.warm(*a.days)
    for day in a.days:
        for mode in a.modes.split(","):
            rates = {n: [] for n in names}
            messages = {n: set() for n in names}
            for _ in range(a.runs):
                for b in builds:
                    st = benchlib.replay(day, "--mode", mode, build=b, cpu=a.cpu, quiet_stderr=True)
                    rates[b.label].append(st["msgs_per_s"] / 1e6)
                    messages[b.label].add(st["messages"])
            med = {n: benchlib.median(rates[n]) for n in names}
            ref = names[0]
            print(
                "%-36s %-8s %s M msgs/s  (%s)  runs: %s"
                % (
                    os.path.basename(day),
                    mode,
                    "  ".join("%s %6.2f" % (n, med[n]) for n in names),
                    ", ".join("%s/%s %.3f" % (n, ref, med[n] / med[ref]) for n in names[1:]),
                    "; ".join("%s %s" % (n, " ".join("%.2f" % x for x in rates[n])) for n in names),
                ),
                flush=True,
            )
            if len({m for n in names for m in messages[n]}) > 1:
                print(
                    "    warning: the builds decoded different numbers of messages: %s"
                    % (", ".join("%s %s" % (n, sorted(messages[n])) for n in names)),
                    file=sys.stderr,
                )
            res.append(
                {
                    "input": day,
                    "mode": mode,
                    "cpu": a.cpu,
                    "runs_m_msgs_per_s": rates,
                    "median_m_msgs_per_s": med,
                    "ratio": {n: med[n] / med[ref] for n in names[1:]},
                    "reference": ref,
                    "messages": {n: sorted(messages[n]) for n in names},
                }
            )
    return 0, res


# ----------------------------------------------------------------- callgrind


def callgrind_ready():
    """None when callgrind can run here, else why not."""
    if not shutil.which("valgrind"):
        return "valgrind is not installed (apt install valgrind)"
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return "valgrind cannot run a sanitized (AddressSanitizer) build: LD_PRELOAD has libasan"
    return None


def callgrind_count(build, day, mode, tmp):
    """(instructions inside the walk, messages) of one replay under callgrind."""
    for f in glob.glob(os.path.join(tmp, "cg.*")):
        os.unlink(f)
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "cg.%p")]
    argv += ["--toggle-collect=" + e for e in ENTRY_POINTS]
    if not build.python:
        argv.append("--trace-children=yes")  # a wrapper script runs python under it
    st, _, _ = benchlib.stats_json_run(
        argv + build.argv("replay", "-q", os.path.abspath(day), "--mode", mode),
        timeout=3600,
        quiet_stderr=True,
        env=build.env(),
        cwd=build.cwd,
    )
    total = 0
    for f in glob.glob(os.path.join(tmp, "cg.*")):
        with open(f) as fh:
            for line in fh:
                if line.startswith(("totals:", "summary:")):
                    total += int(line.split()[1])
                    break
    if not total:
        raise BenchError(
            "callgrind counted nothing inside %s: is %s a feedhandler build?"
            % (" or ".join(ENTRY_POINTS), build.spec or "this build")
        )
    return total, st["messages"]


def callgrind(builds, a):
    why = callgrind_ready()
    if why:
        print("compare_builds.py callgrind: %s" % why, file=sys.stderr)
        return 2, []
    names = [b.label for b in builds]
    ref = names[0]
    res = []
    with tempfile.TemporaryDirectory(prefix="fh-callgrind-") as tmp:
        for day in a.days:
            for mode in a.modes.split(","):
                counts, msgs = {}, {}
                for b in builds:
                    counts[b.label], msgs[b.label] = callgrind_count(b, day, mode, tmp)
                print(
                    "%-36s %-8s %s instructions  (%s)  per message: %s"
                    % (
                        os.path.basename(day),
                        mode,
                        "  ".join("%s %.2f M" % (n, counts[n] / 1e6) for n in names),
                        ", ".join(
                            "%s %+.2f%%" % (n, 100.0 * (counts[n] - counts[ref]) / counts[ref]) for n in names[1:]
                        ),
                        " ".join("%s %.1f" % (n, counts[n] / msgs[n]) if msgs[n] else "%s -" % n for n in names),
                    ),
                    flush=True,
                )
                res.append(
                    {
                        "input": day,
                        "mode": mode,
                        "instructions": counts,
                        "messages": msgs,
                        "reference": ref,
                        "change": {n: (counts[n] - counts[ref]) / counts[ref] for n in names[1:]},
                    }
                )
    return 0, res


# ----------------------------------------------------------------- flags


def source_signature(flags):
    """What a variant build depends on: its flags and every source it copies."""
    h = hashlib.sha1(flags.encode() + b"\0")
    files = []
    for pattern in ("csrc/**/*.[ch]", "cffi_build/*.py", "feedhandler/**/*.py"):
        files += glob.glob(os.path.join(benchlib.ROOT, pattern), recursive=True)
    for f in sorted(files):
        h.update(os.path.relpath(f, benchlib.ROOT).encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def build_variant(name, flags, where):
    """A tree with this checkout's core built with FEEDHANDLER_CFLAGS=flags,
    reused while its flags and sources are unchanged."""
    d = os.path.join(where, "fh-variant-" + name)
    sig = source_signature(flags)
    try:
        with open(os.path.join(d, ".sig")) as f:
            if f.read() == sig:
                return d
    except OSError:
        pass
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ignore = shutil.ignore_patterns("__pycache__", "_core*.so", "*.o")
    for sub in ("csrc", "cffi_build", "feedhandler"):
        shutil.copytree(os.path.join(benchlib.ROOT, sub), os.path.join(d, sub), ignore=ignore)
    print("building %s (%s) in %s ..." % (name, flags or "no extra flags", d), file=sys.stderr, flush=True)
    # Not under a sanitizer's preload (the compiler need not run under it).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["FEEDHANDLER_CFLAGS"] = flags
    with open(os.path.join(d, "build.log"), "w") as log:
        rc = subprocess.run(
            [sys.executable, os.path.join("cffi_build", "build_core.py")],
            cwd=d,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc != 0:
        with open(os.path.join(d, "build.log")) as log:
            sys.stderr.write(log.read()[-4000:])
        raise SystemExit("compare_builds.py flags: building %s (%s) failed: %s/build.log" % (name, flags, d))
    with open(os.path.join(d, ".sig"), "w") as f:
        f.write(sig)
    return d


def split_flags_args(items):
    """DAY and NAME=FLAGS arguments, in any order: (days, [(name, flags)])."""
    days, variants = [], []
    for x in items:
        m = VARIANT.match(x)
        if m and not os.path.exists(x):
            variants.append((m.group(1), m.group(2)))
        else:
            days.append(x)
    return days, variants


# ----------------------------------------------------------------- main


def parser():
    ap = benchlib.arguments(__doc__, epilog=True, json=None)
    sub = ap.add_subparsers(dest="command", metavar="{%s}" % ",".join(COMMANDS))

    def common(p, modes, build=True):
        if build:
            p.add_argument(
                "--base",
                required=True,
                metavar="BUILD",
                help="the other build: a tree DIR with its feedhandler/ built, or a feedhandler executable",
            )
            p.add_argument("--new", metavar="BUILD", help="the build compared with it (default: this interpreter's)")
        p.add_argument("--modes", default=modes, help="replay modes, comma separated (default %s)" % modes)
        p.add_argument("--json", metavar="OUT", default=None, help="write every comparison or run here")

    p = sub.add_parser("identity", help="byte-identical books and counters at 1 and 2 lanes (the default)")
    p.add_argument("days", nargs="+", metavar="DAY")
    common(p, "publish,book")
    p.add_argument("--lanes", default="1,2", help="lane counts to run: 1 = one lane, 2 = --cores 0,1 (default 1,2)")
    p.add_argument(
        "--allow-binfile-conflation",
        action="store_true",
        help="BinaryFILE publish mode: report book.publishes and book.events, do not compare them",
    )

    p = sub.add_parser("speed", help="replay msgs/s, the builds alternating run by run, pinned")
    p.add_argument("days", nargs="+", metavar="DAY")
    common(p, "book,publish")
    p.add_argument("--runs", type=int, default=5, help="runs per build, day and mode; medians (default 5)")
    p.add_argument("--cpu", type=int, default=1, help="core to pin the replays to (-1: no pinning; default 1)")

    p = sub.add_parser("callgrind", help="instructions inside the replay walk under valgrind's callgrind")
    p.add_argument("days", nargs="+", metavar="DAY")
    common(p, "book,publish")

    p = sub.add_parser("flags", help="builds of this checkout's core differing in compiler flags")
    p.add_argument(
        "items",
        nargs="+",
        metavar="DAY|NAME=FLAGS",
        help='inputs and variants, e.g. DAY.bin base="" pf16="-DFH_PF_ORDER=16"',
    )
    common(p, "book", build=False)
    p.add_argument(
        "--measure",
        choices=["speed", "callgrind", "identity"],
        default="speed",
        help="what to compare the variants on (default speed)",
    )
    p.add_argument("--runs", type=int, default=5, help="speed: runs per variant; medians (default 5)")
    p.add_argument("--cpu", type=int, default=1, help="speed: core to pin the replays to (default 1)")
    p.add_argument("--lanes", default="1,2", help="identity: lane counts (default 1,2)")
    p.add_argument("--allow-binfile-conflation", action="store_true", help="identity: as identity's")
    p.add_argument(
        "--build-dir",
        default=tempfile.gettempdir(),
        help="where the variants are built and kept (default %(default)s/fh-variant-NAME)",
    )
    return ap


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS + ("-h", "--help"):
        argv.insert(0, "identity")  # compare_builds.py --base DIR DAY... as ever
    ap = parser()
    a = ap.parse_args(argv)
    if not a.command:
        ap.print_help()
        return 2
    if a.command == "flags":
        a.days, variants = split_flags_args(a.items)
        if not a.days or len(variants) < 1:
            ap.error("flags: give at least one DAY and one NAME=FLAGS")
        if len({n for n, _ in variants}) != len(variants):
            ap.error("flags: variant names must differ")
        if a.measure == "identity" and len(variants) < 2:
            ap.error("flags --measure identity: give two variants or more (the first is the reference)")
        builds = [Build(build_variant(n, f, a.build_dir), label=n) for n, f in variants]
        measure = a.measure
    else:
        builds = [Build(a.base, label="base"), Build(a.new, label="new")]
        measure = a.command
    missing = [d for d in a.days if not os.path.isfile(d)]
    if missing:
        ap.error("no such input: %s" % ", ".join(missing))
    rc, results = {"identity": identity, "speed": speed, "callgrind": callgrind}[measure](builds, a)
    benchlib.write_json(
        a.json,
        {
            "command": a.command,
            "measure": measure,
            "builds": {b.label: b.spec for b in builds},
            "results": results,
            "commit": benchlib.git_commit(),
            "machine": benchlib.machine(),
        },
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
