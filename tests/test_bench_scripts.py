"""The benchmark scripts are run by hand (numbers, not assertions), so a broken
import or option would only show when someone measures: each must at least
load and explain itself."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow           # benchmark scripts end to end, seconds each: not in --quick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["bench.py", "bench_book.py", "bench_decode.py", "bench_dpdk.py", "bench_engine.py", "bench_gen.py",
           "bench_latency.py", "bench_scale.py", "latency_report.py", "reader_latency.py", "bench_input.py",
           "bench_builds.py", "bench_snapshot.py", "bench_reader.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_loads_and_has_help(script):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout


def test_bench_scale_quick_on_a_tiny_day(tmp_path):
    """bench_scale.py end to end on a 200k-message day, one run: every contender
    decodes the whole day; without itch-book the feedhandler rows still come and
    the report says why itch-book was skipped."""
    out = tmp_path / "scale.json"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_scale.py"), "--quick",
                        "--messages", "2e5", "--symbols", "50", "--runs", "1", "--wait-quiet", "0",
                        "--dir", str(tmp_path), "--json", str(out), "--no-png"],
                       capture_output=True, text=True, timeout=120)
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


def test_bench_input_on_a_small_day(tmp_path):
    """bench_input.py end to end: plain, gzip (and zstd where installed) replays of
    one day, a table and the memory target."""
    js = tmp_path / "in.json"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_input.py"), "--day",
                        _golden_day(tmp_path), "--runs", "1", "--cpu", "0", "--json", str(js)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json.loads(js.read_text())["rows"]
    assert rows[0]["container"] == "plain (mapped)" and any(r["container"] == "gzip -1" for r in rows)
    assert len({r["runs"][0]["messages"] for r in rows}) == 1           # every container: the same messages


def test_bench_builds_against_itself(tmp_path):
    fh = os.path.join(os.path.dirname(sys.executable), "feedhandler")
    if not os.path.exists(fh):
        pytest.skip("no feedhandler executable beside this interpreter")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_builds.py"), "--base", fh,
                        _golden_day(tmp_path), "--runs", "1", "--modes", "book", "--cpu", "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "new/base" in p.stdout


def test_bench_snapshot_quick(tmp_path):
    """bench_snapshot.py --quick end to end (20 000 orders, 200 instruments, one run):
    per mode one snapshot applied whole (R + H per instrument + every order) after a
    late join, the live deletes and adds on top, and the plain BinaryFILE replay of
    the same messages beside it.  Numbers only: no timing is asserted."""
    out = tmp_path / "snap.json"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_snapshot.py"), "--quick",
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
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


def test_bench_reader_against_itself(tmp_path):
    """The reader benchmark on a tiny day, this checkout as its own baseline."""
    out = str(tmp_path / "reader.json")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_reader.py"), "--messages", "20000",
                        "--symbols", "20", "--runs", "1", "--cpu", "-1", "--dir", str(tmp_path), "--baseline", ROOT,
                        "--json", out], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "events_per_s" in p.stdout and "ratio" in p.stdout
    res = json.load(open(out))
    for build in ("this build", "baseline"):
        r = res["runs"][build][0]
        assert r["events"] > 1000 and r["book_ns"] > 0 and r["imbalance_per_s"] > 0


def test_bench_summary_quick_dry_run(tmp_path):
    """bench_summary.py --quick --dry-run end to end on tiny days: it prints the
    README paragraph and the docs/performance.md table, with a row for every
    figure the script defines, each carrying the commit it was measured on, and
    writes neither file."""
    import re
    scripts = os.path.join(ROOT, "scripts")
    sys.path.insert(0, scripts)
    try:
        import bench_summary
    finally:
        sys.path.remove(scripts)
    docs = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "performance.md")]
    before = [open(f).read() for f in docs]

    def head():
        # Outside a git checkout (scripts/test.sh's sanitized copy) the script says "unknown".
        h = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return re.escape(h.stdout.strip()) if h.returncode == 0 and h.stdout.strip() else "unknown"
    head_before = head()
    p = subprocess.run([sys.executable, os.path.join(scripts, "bench_summary.py"), "--quick", "--dry-run",
                        "--dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr[-4000:]
    assert [open(f).read() for f in docs] == before
    md = p.stdout
    assert md.count(bench_summary.BEGIN) == 2 and md.count(bench_summary.END) == 2
    table = md[md.rindex(bench_summary.BEGIN):md.rindex(bench_summary.END)]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")][1:]          # the header left out
    assert len(rows) == len(bench_summary.FIGURES)
    commit = "(%s|%s)" % (head_before, head())           # HEAD, before or after the run
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
        assert "itch-book skipped" in p.stderr              # bench_scale.py's own note, passed on
