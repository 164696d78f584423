"""The benchmark scripts are run by hand (numbers, not assertions), so a broken
import or option would only show when someone measures: each must at least
load and explain itself, the ones with a quick form run end to end on tiny
days, and what they share stays in scripts/benchlib.py (a helper defined again
in a script fails here)."""

import ast
import collections
import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS_DIR = os.path.join(ROOT, "scripts")
SCRIPTS = [
    "bench.py",
    "bench_book.py",
    "bench_decode.py",
    "bench_dpdk.py",
    "bench_engine.py",
    "bench_gen.py",
    "bench_latency.py",
    "bench_scale.py",
    "latency_report.py",
    "reader_latency.py",
    "bench_input.py",
    "compare_builds.py",
    "bench_snapshot.py",
    "bench_reader.py",
    "bench_pitch.py",
    "bench_iex.py",
    "bench_summary.py",
]
COMPARE = os.path.join(SCRIPTS_DIR, "compare_builds.py")


def script(name):
    return os.path.join(SCRIPTS_DIR, name)


def benchmark_scripts():
    """Every script that measures or compares builds: they share benchlib."""
    return sorted(
        [p for p in glob.glob(script("bench*.py")) if not p.endswith("benchlib.py")]
        + [COMPARE, script("latency_report.py")]
    )


def _defs(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


# ----------------------------------------------------------------- benchlib holds what they share (fast)


def test_no_script_defines_what_benchlib_provides():
    """A script with its own warm(), fh(), median(), BenchError ... beside
    benchlib's is the duplication the shared library is there to end.
    bench_book.py is no exception: it runs as `python -P bench_book.py
    --_reader-worker` too, and adds its own folder to sys.path for benchlib
    (test_bench_book_worker_imports_benchlib_and_the_builds_feedhandler)."""
    provided = {n.name for n in _defs(script("benchlib.py")) if n.col_offset == 0}
    assert {"warm", "fh", "day", "replay", "median", "pinned", "run_child", "machine"} <= provided
    found = []
    for path in sorted(glob.glob(script("*.py"))):
        if os.path.basename(path) == "benchlib.py":
            continue
        found += ["%s:%d %s" % (os.path.basename(path), n.lineno, n.name) for n in _defs(path) if n.name in provided]
    assert not found, "defined again outside scripts/benchlib.py (use benchlib's): " + ", ".join(found)


def test_no_helper_copied_between_scripts():
    """The same function body in two places (whatever its name) belongs in benchlib."""
    seen = collections.defaultdict(list)
    for path in benchmark_scripts() + [script("benchlib.py")]:
        for n in _defs(path):
            if isinstance(n, ast.ClassDef):
                continue
            body = ast.dump(ast.Module(body=n.body, type_ignores=[])) + ast.dump(n.args)
            seen[body].append("%s:%d %s" % (os.path.basename(path), n.lineno, n.name))
    copies = [v for v in seen.values() if len(v) > 1]
    assert not copies, "the same function twice: %s" % copies


@pytest.mark.parametrize("path", benchmark_scripts(), ids=os.path.basename)
def test_every_benchmark_uses_benchlib(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "benchlib" in mods, "%s does not import benchlib" % os.path.basename(path)


def test_bench_book_worker_imports_benchlib_and_the_builds_feedhandler(tmp_path):
    """Why bench_book.py needs no warm() of its own: run as bench_reader.py runs
    its worker (`python -P`, a baseline first on PYTHONPATH, from elsewhere), it
    imports benchlib from its own folder and still the baseline's feedhandler,
    never this checkout's (here a stand-in baseline that says so and exits)."""
    fake = tmp_path / "baseline" / "feedhandler"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import benchlib, sys\nprint('baseline feedhandler, benchlib from', benchlib.__file__)\nsys.exit(7)\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path / "baseline")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    p = subprocess.run(
        [sys.executable, "-P", script("bench_book.py"), "--_reader-worker", "x", "1", "1", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=60,
    )
    assert p.returncode == 7, p.stdout + p.stderr
    assert "baseline feedhandler, benchlib from %s" % script("benchlib.py") in p.stdout


def test_compare_builds_flags_arguments():
    sys.path.insert(0, SCRIPTS_DIR)
    try:
        import compare_builds
    finally:
        sys.path.remove(SCRIPTS_DIR)
    days, variants = compare_builds.split_flags_args(
        [__file__, "base=", "pf16=-DFH_PF_ORDER=16", "nat=-march=native -DX=1", "day.bin"]
    )
    assert days == [__file__, "day.bin"]
    assert variants == [("base", ""), ("pf16", "-DFH_PF_ORDER=16"), ("nat", "-march=native -DX=1")]


# ----------------------------------------------------------------- each script loads


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_loads_and_has_help(name):
    p = subprocess.run([sys.executable, script(name), "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout


@pytest.mark.parametrize("command", ["identity", "speed", "callgrind", "flags"])
def test_compare_builds_subcommand_help(command):
    p = subprocess.run([sys.executable, COMPARE, command, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: compare_builds.py " + command)


# ----------------------------------------------------------------- end to end on tiny days (over 2 s: slow)


@pytest.fixture(scope="module")
def tiny_day(tmp_path_factory):
    """A 2-channel day of 20 000 messages: PREFIX.pcap and PREFIX.bin."""
    prefix = str(tmp_path_factory.mktemp("tiny") / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            prefix,
            "--messages",
            "20000",
            "--symbols",
            "20",
            "--channels",
            "2",
            "--seed",
            "3",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=str(tmp_path_factory.getbasetemp()),
        timeout=120,
    )
    return prefix


def _compare(args, timeout=600):
    return subprocess.run(
        [sys.executable, COMPARE] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout
    )


def _feedhandler_exe():
    fh = os.path.join(os.path.dirname(sys.executable), "feedhandler")
    if not os.path.exists(fh):
        pytest.skip("no feedhandler executable beside this interpreter")
    return fh


@pytest.mark.slow
def test_compare_builds_identity_against_itself(tiny_day, tmp_path):
    """The documented form, `compare_builds.py --base DIR DAY...` (identity), this
    checkout against itself: every dump and counter the same, one lane and two,
    publish and book, pcap and BinaryFILE."""
    out = tmp_path / "id.json"
    p = _compare(["--base", ROOT, tiny_day + ".pcap", tiny_day + ".bin", "--json", out])
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(("SAME", "DIFFERENT"))]
    assert len(lines) == 2 * 2 * 2 and all(ln.startswith("SAME") for ln in lines), p.stdout
    res = json.loads(out.read_text())
    assert res["command"] == "identity" and res["builds"] == {"base": ROOT, "new": None}
    cmp = res["results"]
    assert sorted({(c["lanes"], c["mode"]) for c in cmp}) == [
        ("0,1", "book"),
        ("0,1", "publish"),
        ("1", "book"),
        ("1", "publish"),
    ]
    assert all(c["same"] and c["rows"] > 0 and c["rows"] == c["reference_rows"] for c in cmp)
    # Publish mode compares the events left in the segment too; book mode has none.
    assert all(c["events_same"] and c["events"] > 0 for c in cmp if c["mode"] == "publish")
    assert all(c["events_same"] is None for c in cmp if c["mode"] == "book")


def test_compare_builds_identity_tells_an_event_difference(tiny_day, tmp_path):
    """Events are compared, not only books and counters: a build whose rings
    keep fewer events (a wrapper with a 1 024-event ring, which this day laps)
    is reported DIFFERENT on its events."""
    wrapper = tmp_path / "small-ring"
    wrapper.write_text('#!/bin/sh\nexec "%s" "$@" --ring-events 1024\n' % _feedhandler_exe())
    wrapper.chmod(0o755)
    p = _compare(["identity", "--base", wrapper, tiny_day + ".pcap", "--lanes", "1", "--modes", "publish"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.startswith("DIFFERENT ") and "events !=" in p.stdout, p.stdout


def test_compare_builds_identity_tells_a_difference(tiny_day, tmp_path):
    """A build whose books differ (here: a wrapper that dumps 5 levels, not 10) is
    reported DIFFERENT, exit status 1; an executable is a build too."""
    wrapper = tmp_path / "shallow"
    wrapper.write_text('#!/bin/sh\nexec "%s" "$@" --depth 5\n' % _feedhandler_exe())
    wrapper.chmod(0o755)
    p = _compare(["identity", "--base", wrapper, tiny_day + ".bin", "--lanes", "1", "--modes", "book"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.startswith("DIFFERENT ") and "dump !=" in p.stdout


def test_compare_builds_speed_one_run(tiny_day, tmp_path):
    """speed: the two builds (another build's executable, this interpreter's)
    alternating, one run each on a tiny day; the ratio printed and kept."""
    out = tmp_path / "speed.json"
    p = _compare(
        [
            "speed",
            "--base",
            _feedhandler_exe(),
            tiny_day + ".bin",
            "--runs",
            "1",
            "--modes",
            "book",
            "--cpu",
            "0",
            "--json",
            out,
        ]
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "new/base" in p.stdout and "M msgs/s" in p.stdout
    (r,) = json.loads(out.read_text())["results"]
    assert r["mode"] == "book" and r["messages"] == {"base": [20000], "new": [20000]}
    assert len(r["runs_m_msgs_per_s"]["base"]) == len(r["runs_m_msgs_per_s"]["new"]) == 1
    assert r["ratio"]["new"] > 0


@pytest.mark.slow
def test_compare_builds_callgrind(tiny_day, tmp_path):
    """callgrind: instructions inside the walk, this checkout against itself:
    the same count (deterministic).  Where valgrind cannot run (not installed,
    or the sanitized pass, whose ASan runtime it cannot host) the subcommand
    says why and exits 2."""
    sys.path.insert(0, SCRIPTS_DIR)
    try:
        import compare_builds
    finally:
        sys.path.remove(SCRIPTS_DIR)
    why = compare_builds.callgrind_ready()
    out = tmp_path / "cg.json"
    p = _compare(["callgrind", "--base", ROOT, tiny_day + ".bin", "--modes", "book", "--json", out], timeout=900)
    if why:
        assert p.returncode == 2 and why in p.stderr, p.stdout + p.stderr
        return
    assert p.returncode == 0, p.stdout + p.stderr
    assert "instructions" in p.stdout
    (r,) = json.loads(out.read_text())["results"]
    assert r["instructions"]["base"] > 20000 * 50 and r["messages"] == {"base": 20000, "new": 20000}
    assert abs(r["change"]["new"]) < 0.001, r


@pytest.mark.slow
def test_compare_builds_flags(tiny_day, tmp_path):
    """flags: a variant of this checkout's core built with FEEDHANDLER_CFLAGS
    (here none), timed; asked again, the build is reused, not made again."""
    args = ["flags", tiny_day + ".bin", "plain=", "--runs", "1", "--cpu", "0", "--build-dir", tmp_path]
    p = _compare(args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "building plain" in p.stderr and "plain " in p.stdout
    assert os.path.exists(tmp_path / "fh-variant-plain" / ".sig")
    p = _compare(args + ["--json", tmp_path / "flags.json"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "building" not in p.stderr
    res = json.loads((tmp_path / "flags.json").read_text())
    assert res["builds"] == {"plain": str(tmp_path / "fh-variant-plain")}
    assert res["results"][0]["messages"] == {"plain": [20000]}


@pytest.mark.slow
def test_bench_scale_quick_on_a_tiny_day(tmp_path):
    """bench_scale.py end to end on a 200k-message day, one run: every contender
    decodes the whole day; without itch-book the feedhandler rows still come and
    the report says why itch-book was skipped."""
    out = tmp_path / "scale.json"
    p = subprocess.run(
        [
            sys.executable,
            script("bench_scale.py"),
            "--quick",
            "--messages",
            "2e5",
            "--symbols",
            "50",
            "--runs",
            "1",
            "--wait-quiet",
            "0",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
            "--no-png",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    (day,) = res["days"]
    assert (day["messages"], day["symbols"]) == (200000, 50)
    for name in ("fh book", "fh publish"):
        c = day["contenders"][name]
        assert c["median_msgs_per_s"] > 0 and c["runs"][0]["messages"] == 200000
        assert c["memory"]["book_bytes"] > 0
        assert name + " " in p.stdout
    assert day["contenders"]["fh publish"]["memory"]["shm_bytes"] > 0
    if res["itch_book"]["skipped"]:
        assert "itch-book skipped" in p.stderr
    else:
        assert day["contenders"]["itch-book nodepth"]["stats"]["messages"] == 200000
        assert "itch-book depth10" in day["contenders"]
    assert [t["measured"] for t in res["targets"]] == [False] * len(res["targets"])
    assert "live orders at end" in p.stdout


def _golden_day(tmp_path):
    import gzip

    day = tmp_path / "day.bin"
    day.write_bytes(gzip.decompress(open(os.path.join(ROOT, "tests", "data", "golden_day.bin.gz"), "rb").read()))
    return str(day)


@pytest.mark.slow
def test_bench_input_on_a_small_day(tmp_path):
    """bench_input.py end to end: plain, gzip (and zstd where installed) replays of
    one day, a table and the memory target."""
    js = tmp_path / "in.json"
    p = subprocess.run(
        [
            sys.executable,
            script("bench_input.py"),
            "--day",
            _golden_day(tmp_path),
            "--runs",
            "1",
            "--cpu",
            "0",
            "--json",
            str(js),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json.loads(js.read_text())["rows"]
    assert rows[0]["container"] == "plain (mapped)" and any(r["container"] == "gzip -1" for r in rows)
    assert len({r["runs"][0]["messages"] for r in rows}) == 1  # every container: the same messages
    assert all(r["peak_anon"] > 0 and r["maxrss"] > 0 for r in rows)


@pytest.mark.slow
def test_bench_snapshot_quick(tmp_path):
    """bench_snapshot.py --quick end to end (20 000 orders, 200 instruments, one run):
    per mode one snapshot applied whole (R + H per instrument + every order) after a
    late join, the live deletes and adds on top, and the plain BinaryFILE replay of
    the same messages beside it.  Numbers only: no timing is asserted."""
    out = tmp_path / "snap.json"
    p = subprocess.run(
        [sys.executable, script("bench_snapshot.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    snap, live = res["snapshot"], res["live"]
    orders, symbols = snap["orders"], snap["instruments"]
    assert (orders, symbols) == (20000, 200) and snap["messages"] == orders + 2 * symbols
    assert live["deletes"] > 0 and live["adds"] > 0
    want = orders - live["deletes"] + live["adds"]
    assert res["expected_orders_live"] == want
    assert sorted(res["modes"]) == ["book", "publish"]
    for mode, m in res["modes"].items():
        assert m["snapshot_messages"] == orders + 2 * symbols, mode
        assert m["apply_msgs_per_s"] > 0 and m["fetch_s"] > 0 and m["recover_ns"] > 0
        assert m["orders_live"] == want
        assert len(m["runs"]) == 1
        base = res["baseline"]["BinaryFILE " + mode]
        assert base["messages"] == orders + 2 * symbols and base["orders_live"] == orders
        assert base["msgs_per_s"] > 0
        assert "snapshot " + mode in p.stdout and "BinaryFILE " + mode in p.stdout
    assert res["server"]["snapshots_served"] == 2
    if res["itch_book"]["skipped"]:
        assert "itch-book skipped" in p.stderr
    else:
        assert res["baseline"]["itch-book nodepth"]["messages"] == orders + 2 * symbols
    assert res["machine"]["cpu"] and p.stdout.startswith("cpu: ")


@pytest.mark.slow
def test_bench_reader_against_itself(tmp_path):
    """The reader benchmark on a tiny day, this checkout as its own baseline."""
    out = str(tmp_path / "reader.json")
    p = subprocess.run(
        [
            sys.executable,
            script("bench_reader.py"),
            "--messages",
            "20000",
            "--symbols",
            "20",
            "--runs",
            "1",
            "--cpu",
            "-1",
            "--dir",
            str(tmp_path),
            "--baseline",
            ROOT,
            "--json",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "events_per_s" in p.stdout and "ratio" in p.stdout
    res = json.load(open(out))
    for build in ("this build", "baseline"):
        r = res["runs"][build][0]
        assert r["events"] > 1000 and r["book_ns"] > 0 and r["imbalance_per_s"] > 0


@pytest.mark.slow
def test_bench_summary_quick_dry_run(tmp_path):
    """bench_summary.py --quick --dry-run end to end on tiny days: it prints the
    README paragraph and the docs/performance.md table, with a row for every
    figure the script defines, each carrying the commit it was measured on, and
    writes neither file."""
    import re

    sys.path.insert(0, SCRIPTS_DIR)
    try:
        import bench_summary
    finally:
        sys.path.remove(SCRIPTS_DIR)
    docs = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "performance.md")]
    before = [open(f).read() for f in docs]

    def head():
        # Outside a git checkout (scripts/test.sh's sanitized copy) the script says "unknown".
        h = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return re.escape(h.stdout.strip()) if h.returncode == 0 and h.stdout.strip() else "unknown"

    head_before = head()
    p = subprocess.run(
        [sys.executable, script("bench_summary.py"), "--quick", "--dry-run", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr[-4000:]
    assert [open(f).read() for f in docs] == before
    md = p.stdout
    assert md.count(bench_summary.BEGIN) == 2 and md.count(bench_summary.END) == 2
    table = md[md.rindex(bench_summary.BEGIN) : md.rindex(bench_summary.END)]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")][1:]  # the header left out
    assert len(rows) == len(bench_summary.FIGURES)
    commit = "(%s|%s)" % (head_before, head())  # HEAD, before or after the run
    for row, (_, label) in zip(rows, bench_summary.FIGURES):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 7, row
        machine, date, com, figure, value = cells[:5]
        assert machine and re.match(r"\d{4}-\d{2}-\d{2}$", date), row
        assert re.match(r"`%s(\+dirty)?`$" % commit, com), row
        assert figure.startswith(label.split("{")[0]), (figure, label)
        assert value and "failed" not in value, row
    assert re.search(r"Commit `%s(\+dirty)?`" % commit, md)
    assert "differences under 5% mean nothing" in md
    if "not installed" in md:
        assert "itch-book skipped" in p.stderr  # bench_scale.py's own note, passed on


@pytest.mark.slow
def test_bench_iex_on_tiny_days(tmp_path):
    """bench_iex.py end to end on tiny days (20 000 model messages, one run):
    ITCH, DEEP+, DEEP and TOPS each decoded whole in every mode, the DEEP PLU
    rates beside ITCH's, and the DEEP+ day replayed from its .pcap.gz and its
    .pcap with peak RSS.  Tiny days measure start-up, not decoding, so the
    exit status (a target missed) and the figures are not asserted."""
    out = tmp_path / "iex.json"
    p = subprocess.run(
        [
            sys.executable,
            script("bench_iex.py"),
            "--messages",
            "20000",
            "--symbols",
            "20",
            "--runs",
            "1",
            "--mem-messages",
            "20000",
            "--cpu",
            "-1",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode in (0, 1), p.stdout + p.stderr
    res = json.loads(out.read_text())
    assert (res["messages"], res["symbols"], res["runs"]) == (20000, 20, 1)
    days = res["days"]
    assert sorted(days) == ["iex-deep", "iex-deepplus", "iex-tops", "itch"]
    assert days["itch"]["messages"] == 20000
    assert all(d["model_messages"] == 20000 and d["messages"] > 0 for d in days.values())
    assert days["iex-deep"]["by_type"]["iex_8"] > 0 and "iex_a" in days["iex-deepplus"]["by_type"]
    assert sorted(res["results"]) == ["book", "decode", "publish"]
    for mode, r in res["results"].items():
        for k in ("itch", "deepplus", "deepplus_model", "deep_plu_share", "deep_plu_all_time", "tops"):
            assert len(r["runs"][k]) == 1 and r["median"][k] > 0, (mode, k)
        # Every other message's time charged to the PLUs can only lower their rate.
        assert r["median"]["deep_plu_all_time"] < r["median"]["deep_plu_share"]
        assert r["ratio"]["deepplus_per_message"] == r["median"]["deepplus"] / r["median"]["itch"]
        assert r["ratio_paired"]["deep_plu_share"] == r["median"]["deep_plu_share"] / r["median"]["itch"]  # one run
    mem = res["memory"]
    assert mem["model_messages"] == 20000 and 0 < mem["gz_bytes"] < mem["uncompressed_bytes"]
    for k in ("pcap.gz", "pcap"):
        row = mem["rows"][k]
        assert row["maxrss"] > 0 and row["peak_anon"] > 0 and row["msgs_per_s"] > 0, k
    assert mem["rows"]["pcap.gz"]["path"].endswith(".pcap.gz")
    assert len(res["targets"]) == 5 and all(isinstance(t["met"], bool) for t in res["targets"])
    assert p.returncode == (0 if all(t["met"] for t in res["targets"]) else 1)
    assert "DEEP+ / ITCH" in p.stdout and "peak RSS" in p.stdout
