"""The core as a machine without libzstd builds it: the same sources built
with FEEDHANDLER_NO_ZSTD=1 (unoptimised, into a scratch copy of the package)
replay everything else, say what they were built with, and answer a zstd
input with a clear error naming what is missing.  The suite's own builds
(optimised and sanitized) read zstd, so this path is only reachable here."""

import gzip
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nozstd(tmp_path_factory):
    tree = tmp_path_factory.mktemp("nozstd")
    for d in ("csrc", "cffi_build"):
        shutil.copytree(os.path.join(ROOT, d), str(tree / d))
    shutil.copytree(
        os.path.join(ROOT, "feedhandler"),
        str(tree / "feedhandler"),
        ignore=shutil.ignore_patterns("_*.so", "__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FEEDHANDLER_SANITIZE")}
    env.update(FEEDHANDLER_NO_ZSTD="1", FEEDHANDLER_CFLAGS="-O0")
    p = subprocess.run(
        [sys.executable, "cffi_build/build_core.py"],
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return str(tree)


def run(tree, *args, stdin=None):
    env = dict(os.environ, PYTHONPATH=tree)
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *args], cwd=tree, env=env, input=stdin, capture_output=True, timeout=120
    )


def test_built_without_zstd_says_so(nozstd):
    code = "import feedhandler.core as c; print(c.__file__); print(c.build_features())"
    p = subprocess.run(
        [sys.executable, "-c", code],
        cwd=nozstd,
        env=dict(os.environ, PYTHONPATH=nozstd),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(nozstd), p.stdout
    assert "'zstd': False" in p.stdout


def test_zstd_input_is_a_clear_error_naming_libzstd(nozstd, tmp_path):
    zst = tmp_path / "x.pcap.zst"
    zst.write_bytes(bytes.fromhex("28b52ffd") + bytes(64))
    p = run(nozstd, "replay", "-q", str(zst))
    err = p.stderr.decode()
    assert p.returncode != 0
    assert "no zstd support" in err and "libzstd" in err, err
    # From a pipe as well: the format is told from the bytes, not the name.
    p = run(nozstd, "replay", "-q", "-", stdin=zst.read_bytes())
    assert p.returncode != 0 and "no zstd support" in p.stderr.decode()


def test_everything_else_replays_as_the_full_build_does(nozstd, tmp_path):
    sample = os.path.join(ROOT, "pcaps", "sample.pcap")
    gz = tmp_path / "sample.pcap.gz"
    gz.write_bytes(gzip.compress(open(sample, "rb").read()))
    common = ["-q", "--mode", "book", "--silence-ms", "120000"]
    got = run(nozstd, "replay", str(gz), "--dump-books", str(tmp_path / "a.csv"), *common)
    assert got.returncode == 0, got.stderr.decode()
    want = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", sample, "--dump-books", str(tmp_path / "b.csv"), *common],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert want.returncode == 0, want.stderr.decode()
    a, b = (tmp_path / "a.csv").read_text(), (tmp_path / "b.csv").read_text()
    assert a == b and len(a.splitlines()) > 10
