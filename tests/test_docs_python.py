"""Every code block of docs/python.md runs, in order, as a reader would run
them: ```python blocks in one namespace (blocks starting with >>> as doctests,
their printed results checked), ```sh blocks in bash from the repository root.
A block right after an <!-- not run --> line is skipped (it needs DPDK and a
NIC); there must be exactly as many of those as the page says.  The segment
name the page uses (demo) is made unique to this test run."""

import doctest
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every docs block, a replay and a reader each: not in --quick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "python.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def blocks():
    text = open(DOC).read()
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        skip = bool(before) and before[-1].strip() == "<!-- not run -->"
        line = text.count("\n", 0, m.start()) + 2
        out.append((m.group(1), m.group(2), line, skip))
    return out


def test_blocks_are_found():
    kinds = [(k, skip) for k, _, _, skip in blocks()]
    assert kinds.count(("python", False)) >= 10
    assert kinds.count(("sh", False)) == 2
    assert [k for k, skip in kinds if skip] == ["sh"]  # only the DPDK example is not run
    assert all(k in ("python", "sh") for k, _ in kinds)


def test_every_block_runs(tmp_path):
    name = "fhdoc-%d" % os.getpid()
    ns = {"__name__": "__docs__"}
    ran = 0
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for kind, code, line, skip in blocks():
            if skip:
                continue
            code = re.sub(r"\bdemo\b", name, code)
            where = "docs/python.md:%d" % line
            if kind == "python" and code.lstrip().startswith(">>>"):
                test = doctest.DocTestParser().get_doctest(code, ns, where, DOC, line)
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
                runner.run(test, clear_globs=False)
                assert runner.failures == 0, "doctest at %s failed" % where
            elif kind == "python":
                exec(compile(code, where, "exec"), ns)
            else:
                script = 'set -e\nfeedhandler() { "$FH_PY" -m feedhandler "$@"; }\npython() { "$FH_PY" "$@"; }\n' + code
                p = subprocess.run(
                    ["bash", "-c", script],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    env=dict(os.environ, FH_PY=sys.executable),
                )
                assert p.returncode == 0, (where, p.stdout[-2000:], p.stderr[-3000:])
                assert "Traceback" not in p.stderr, (where, p.stderr[-3000:])
                # The strategy ran to its summary line; over the whole day with --from-start (following
                # a paced replay live, how much it sees depends on when it attached).
                summary = [l for l in p.stdout.splitlines() if l.startswith("strategy: ")]
                assert summary, (where, p.stdout[-2000:])
                if "--from-start" in code:
                    assert summary[-1].startswith("strategy: 117173 events"), (where, summary)
            ran += 1
    finally:
        os.chdir(cwd)
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    assert ran == len([b for b in blocks() if not b[3]])
