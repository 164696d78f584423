"""Lint and formatting stay wired in: scripts/test.sh runs scripts/lint.sh before
any test (in --quick runs too), set-up installs ruff and clang-format at exact
versions, and lint.sh fails on an unformatted file and --fix formats it."""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("ruff", "clang-format")


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _code_lines(path):
    """The shell script's lines without comments (a commented-out step does not run)."""
    return [re.sub(r"(^|\s)#.*", "", line).strip() for line in _read(*path).splitlines()]


def _pins():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        test_extra = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    return {name: [r for r in test_extra if re.match(r"%s\s*[=<>!~]" % re.escape(name), r)] for name in TOOLS}


def test_test_sh_runs_lint_before_any_test_in_every_mode():
    lines = _code_lines(("scripts", "test.sh"))
    lint = [i for i, line in enumerate(lines) if line == "bash scripts/lint.sh"]
    assert lint, "scripts/test.sh must run `bash scripts/lint.sh` (a plain step: a finding fails the run)"
    quick = next(i for i, line in enumerate(lines) if line.startswith('if [ "$QUICK" = 1 ]'))
    first_pytest = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert lint[0] < quick and lint[0] < first_pytest, (
        "scripts/test.sh runs lint.sh after the tests start or only outside --quick: it belongs right after set-up"
    )


def test_setup_installs_the_pinned_tools():
    pins = _pins()
    for name in TOOLS:
        assert len(pins[name]) == 1 and re.fullmatch(r"%s==[0-9][\w.]*" % re.escape(name), pins[name][0]), (
            "pyproject.toml's test extra must pin %s to one exact version (%s==X), so every machine formats "
            "alike; it has %r" % (name, name, pins[name])
        )
    setup = "\n".join(_code_lines(("scripts", "setup.sh")))
    assert 'pip install -q -e ".[test]"' in setup, "scripts/setup.sh no longer installs the test extra (the pins)"
    assert re.search(r'grep -oE .\\?"\(ruff\|clang-format\)==', setup), (
        "scripts/setup.sh no longer puts the pinned ruff and clang-format back into a venv that lacks them"
    )


def test_lint_sh_fails_on_unformatted_files_and_fix_formats_them(tmp_path):
    # A small checkout of its own: the tree's real pins and ruff settings, a plain
    # clang-format style (lint.sh's behaviour is under test, not the C style).
    venv = os.path.dirname(os.path.dirname(sys.executable))
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "scripts", "lint.sh"), tree / "scripts" / "lint.sh")
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tree / "pyproject.toml")
    (tree / ".clang-format").write_text("BasedOnStyle: LLVM\nIndentWidth: 4\n")
    (tree / ".gitignore").write_text("ignored/\n")
    (tree / "ok.py").write_text('"""Formatted."""\n\nx = 1\n')
    (tree / "bad.py").write_text("x = {'a':1}\n")
    (tree / "bad.c").write_text("int  f( int x ) { return x+1; }\n")
    (tree / "ignored").mkdir()
    (tree / "ignored" / "out.py").write_text("x = {'a':1}\n")  # build output: never checked
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["FEEDHANDLER_VENV"] = venv
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True, env=env)

    def lint(*args):
        return subprocess.run(
            ["bash", "scripts/lint.sh", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=60
        )

    p = lint()
    assert p.returncode == 1, p.stdout + p.stderr
    assert "bad.py" in p.stdout and "bad.c" in p.stdout and "lint: FAILED" in p.stderr, p.stdout + p.stderr
    assert "ok.py" not in p.stdout and "ignored/out.py" not in p.stdout, p.stdout
    p = lint("--fix")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tree / "bad.py").read_text() == 'x = {"a": 1}\n'
    assert (tree / "bad.c").read_text() == "int f(int x) { return x + 1; }\n"
    assert (tree / "ignored" / "out.py").read_text() == "x = {'a':1}\n"
    assert lint().returncode == 0
