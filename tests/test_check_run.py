"""scripts/check_run.py, the guard that keeps a test run from going green with
an area untested: a missing promised component names itself; a skip is allowed
only where tests/expected_skips.toml ties it to a component missing here; a
pass below its floor fails; every rule in the allowlist is well formed."""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import check_run  # noqa: E402


def junit(tmp_path, cases, name="j.xml"):
    """A junit file of (classname, name, skip message or None or "FAIL")."""
    rows = []
    for cls, nm, sk in cases:
        if sk is None:
            rows.append('<testcase classname="%s" name="%s" time="0.1"/>' % (cls, nm))
        elif sk == "FAIL":
            rows.append('<testcase classname="%s" name="%s"><failure message="x"/></testcase>' % (cls, nm))
        else:
            rows.append(
                '<testcase classname="%s" name="%s"><skipped type="pytest.skip" message="%s">'
                "x</skipped></testcase>" % (cls, nm, sk)
            )
    p = tmp_path / name
    p.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest">%s</testsuite></testsuites>' % "".join(rows)
    )
    return str(p)


def with_components(monkeypatch, **over):
    real = check_run.survey()
    comps = {k: over.get(k, v) for k, v in real.items()}
    monkeypatch.setattr(check_run, "survey", lambda: comps)


def run_junit(monkeypatch, tmp_path, cases, floor=0, **comps):
    with_components(monkeypatch, **comps)
    cfg = tmp_path / "allowed.toml"
    text = open(check_run.ALLOWED).read().replace("optimised = ", "optimised = %d # " % floor, 1)
    cfg.write_text(text)
    monkeypatch.setattr(check_run, "ALLOWED", str(cfg))
    return check_run.cmd_junit("optimised", [junit(tmp_path, cases)], floor=True)


DPDK_SKIP = ("tests.test_dpdk", "test_pcap_pmd", "no DPDK support in this install (feedhandler._dpdk not built)")


def test_test_ids_from_junit_names():
    import xml.etree.ElementTree as ET

    case = ET.fromstring('<testcase classname="tests.test_input" name="test_x[zst]"/>')
    assert check_run._test_id(case) == "tests/test_input.py::test_x[zst]"
    case = ET.fromstring('<testcase classname="tests.test_api.TestThing" name="test_y"/>')
    assert check_run._test_id(case) == "tests/test_api.py::TestThing::test_y"


def test_a_skip_nobody_listed_fails(monkeypatch, tmp_path, capsys):
    rc = run_junit(
        monkeypatch,
        tmp_path,
        [("tests.test_books", "test_a", None), ("tests.test_books", "test_b", "could not import 'pandas'")],
    )
    assert rc == 1
    assert "tests/test_books.py::test_b" in capsys.readouterr().err


def test_a_listed_skip_passes_only_where_its_component_is_missing_and_not_promised(monkeypatch, tmp_path, capsys):
    cases = [("tests.test_books", "test_a", None), DPDK_SKIP]
    assert run_junit(monkeypatch, tmp_path, cases, dpdk=(False, False)) == 0
    # The component is here: the skip hides a broken check.
    assert run_junit(monkeypatch, tmp_path, cases, dpdk=(True, True)) == 1
    assert run_junit(monkeypatch, tmp_path, cases, dpdk=(True, False)) == 1
    # Missing where the platform promises it (Debian 12 as root).
    assert run_junit(monkeypatch, tmp_path, cases, dpdk=(False, True)) == 1
    assert "test_pcap_pmd" in capsys.readouterr().err


def test_a_listed_reason_in_the_wrong_file_or_with_another_reason_fails(monkeypatch, tmp_path):
    other_file = ("tests.test_books", "test_x", DPDK_SKIP[2])
    assert run_junit(monkeypatch, tmp_path, [other_file], dpdk=(False, False)) == 1
    other_reason = ("tests.test_dpdk", "test_pcap_pmd", "flaky today")
    assert run_junit(monkeypatch, tmp_path, [other_reason], dpdk=(False, False)) == 1


def test_a_pass_below_its_floor_fails(monkeypatch, tmp_path, capsys):
    cases = [("tests.test_books", "test_%d" % i, None) for i in range(5)]
    assert run_junit(monkeypatch, tmp_path, cases, floor=5) == 0
    assert run_junit(monkeypatch, tmp_path, cases, floor=6) == 1
    assert "below the floor" in capsys.readouterr().err


def test_allowed_skips_count_towards_the_floor_others_do_not(monkeypatch, tmp_path):
    cases = [("tests.test_books", "test_a", None), DPDK_SKIP]
    assert run_junit(monkeypatch, tmp_path, cases, floor=2, dpdk=(False, False)) == 0
    assert run_junit(monkeypatch, tmp_path, cases, floor=3, dpdk=(False, False)) == 1


def test_a_failure_fails(monkeypatch, tmp_path):
    assert run_junit(monkeypatch, tmp_path, [("tests.test_books", "test_a", "FAIL")]) == 1


def test_every_rule_is_well_formed():
    with open(check_run.ALLOWED, "rb") as f:
        cfg = check_run._toml.load(f)
    assert set(cfg["floor"]) == {"optimised", "sanitized", "quick"}
    assert cfg["floor"]["quick"] <= cfg["floor"]["optimised"]
    for r in cfg["skip"]:
        assert set(r) == {"test", "reason", "needs"}, r
        assert r["needs"] in check_run.COMPONENTS, r
        assert r["test"].startswith("tests/test_") and "::" in r["test"], r
        assert os.path.exists(os.path.join(ROOT, r["test"].split("::")[0])), r
        assert len(r["reason"]) >= 8, r


def expect(env):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "check_run.py"), "expect"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ, FEEDHANDLER_PROMISED="1", **env),
    )


def test_a_build_without_dpdk_fails_naming_it(tmp_path):
    """As if the core had been built without DPDK: feedhandler._dpdk cannot
    be imported (a sitecustomize blocks it)."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['feedhandler._dpdk'] = None\n")
    p = expect({"PYTHONPATH": str(tmp_path)})
    assert p.returncode == 1, p.stdout + p.stderr
    assert "MISSING dpdk" in p.stderr and "libdpdk-dev" in p.stderr


def test_clang_hidden_from_path_fails_naming_it(tmp_path):
    """Every program of the PATH but clang-14, through a folder of links."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for n in os.listdir(d):
            if n.startswith("clang") or (bin_ / n).exists():
                continue
            (bin_ / n).symlink_to(os.path.join(d, n))
    assert shutil.which("clang-14", path=str(bin_)) is None
    p = expect({"PATH": str(bin_)})
    assert p.returncode == 1, p.stdout + p.stderr
    assert "MISSING fuzz" in p.stderr and "clang-14" in p.stderr
    assert "MISSING dpdk" not in p.stderr


def test_this_machine_has_what_its_platform_promises():
    env = {k: v for k, v in os.environ.items() if k != "FEEDHANDLER_PROMISED"}
    p = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "check_run.py"), "expect"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert p.returncode == 0, p.stderr


def _junit(path, times):
    """A junit file with one test per (file, seconds)."""
    cases = "".join(
        '<testcase classname="tests.%s" name="t%d" time="%s"/>' % (f[len("tests/") : -3], i, t)
        for i, (f, t) in enumerate(times.items())
    )
    path.write_text('<testsuites><testsuite name="pytest">%s</testsuite></testsuites>' % cases)
    return str(path)


def test_split_suite_balances_by_recorded_sanitized_times(tmp_path):
    """The sanitized halves: a file the optimised run found quick but an
    earlier sanitized run found slow (ASan slows it 25x) is weighed by the
    recorded time, so it gets a half to itself; --record writes those times."""
    opt = {"tests/test_a.py": 3.0, "tests/test_b.py": 20.0, "tests/test_c.py": 20.0, "tests/test_d.py": 1.0}
    san = {"tests/test_a.py": 78.0, "tests/test_b.py": 40.0, "tests/test_c.py": 38.0}
    weights = tmp_path / "w.json"
    script = os.path.join(ROOT, "scripts", "split_suite.py")
    p = subprocess.run(
        [sys.executable, script, "--record", str(weights), _junit(tmp_path / "s.xml", san)], capture_output=True
    )
    assert p.returncode == 0 and json.loads(weights.read_text())["tests/test_a.py"] == 78.0
    files = sorted(opt)

    def halves(*extra):
        out = subprocess.run(
            [sys.executable, script, *extra, _junit(tmp_path / "o.xml", opt), *files], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return sorted(line.split() for line in out.stdout.splitlines())

    # By optimised time alone the slow file shares a half with one of the 20 s files.
    assert ["tests/test_a.py", "tests/test_b.py"] in halves() or ["tests/test_a.py", "tests/test_c.py"] in halves()
    # By the recorded times it runs beside the quick file only (test_d: 1 s x the
    # median slowdown, 2x).
    assert halves("--recorded", str(weights)) == [
        ["tests/test_a.py", "tests/test_d.py"],
        ["tests/test_b.py", "tests/test_c.py"],
    ]
