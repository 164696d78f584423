"""The input layer (csrc/input.c): plain files mapped, gzip / zstd / pipes /
standard input streamed through a bounded buffer.  Whatever the container,
the same input gives the same books and counters; damage in a compressed
stream is a clear error after everything before it was applied; memory does
not grow with the input's size."""

import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from feedhandler.core import build_features, lib
from feedhandler.replay import Replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
DATA = os.path.join(ROOT, "tests", "data")
SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=1024, silence_ms=120_000)
ZSTD = shutil.which("zstd")
HAVE_ZSTD = build_features()["zstd"]
# Counters that measure time, not what was decoded.
TIMING = {"elapsed_ns", "elapsed_s", "msgs_per_s", "memory", "lanes"}


def replay(path, mode="book", **kw):
    r = Replay(mode=mode, **dict(SMALL, **kw))
    res = r.run_file(path, progress=False)
    r.finish()
    return r, res


def outcome(path, tmp_path, mode="book", tag="x"):
    r, res = replay(path, mode=mode)
    dump = tmp_path / ("%s.csv" % tag)
    r.dump_books(str(dump))
    st = {k: v for k, v in r.stats().items() if k not in TIMING}
    return res, st, dump.read_text()


def gz(src, dst, members=1):
    data = open(src, "rb").read()
    step = (len(data) + members - 1) // members
    with open(dst, "wb") as f:
        for i in range(members):
            f.write(gzip.compress(data[i * step : (i + 1) * step], compresslevel=1))
    return dst


def zst(src, dst):
    subprocess.run([ZSTD, "-q", "-f", "-1", src, "-o", dst], check=True)
    return dst


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The committed golden day, plain (BinaryFILE) and the A/B capture (pcap)."""
    d = tmp_path_factory.mktemp("inputs")
    out = {}
    for name in ("golden_day.bin.gz", "golden_ab.pcap.gz"):
        plain = d / name[:-3]
        plain.write_bytes(gzip.decompress((open(os.path.join(DATA, name), "rb").read())))
        out[name[:-3]] = str(plain)
    return out


NO_ZSTD = "zstd: this build or machine has none (the core without libzstd: tests/test_build_variants.py)"


def need_zstd():
    if not (HAVE_ZSTD and ZSTD):
        pytest.skip(NO_ZSTD)


@pytest.mark.parametrize("kind", ["gz", "gz3", "zst"])
@pytest.mark.parametrize("name", ["golden_day.bin", "golden_ab.pcap"])
def test_gzip_multi_member_and_zstd_replay_exactly_like_the_plain_file(day, tmp_path, name, kind):
    if kind == "zst":
        need_zstd()
    plain = day[name]
    ref_res, ref_st, ref_dump = outcome(plain, tmp_path, tag="plain")
    assert ref_res.ok and ref_st["messages"] > 10_000
    if kind == "zst":
        path = zst(plain, str(tmp_path / (name + ".zst")))
    else:
        # gz3: member boundaries fall inside records: the stream is one file.
        path = gz(plain, str(tmp_path / (name + "." + kind)), members=3 if kind == "gz3" else 1)
    res, st, dump = outcome(path, tmp_path, tag=kind)
    assert res.ok, (kind, res.error)
    assert dump == ref_dump
    assert st == ref_st


def test_publish_mode_counters_identical_streamed_and_mapped(day, tmp_path):
    """Windows of BinaryFILE records and polls are counted across buffer
    refills: even publishing (slots written, events) is identical."""
    plain = day["golden_day.bin"]
    _, ref_st, ref_dump = outcome(plain, tmp_path, mode="publish", tag="p")
    _, st, dump = outcome(gz(plain, str(tmp_path / "d.gz")), tmp_path, mode="publish", tag="g")
    assert dump == ref_dump and st == ref_st


def cli(args, stdin=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler"] + args, input=stdin, capture_output=True, cwd=ROOT, timeout=300, **kw
    )


@pytest.mark.parametrize("compress", [None, "gz"])
def test_stdin(day, tmp_path, compress):
    """`-` reads standard input: `zcat day.gz | feedhandler replay -`."""
    plain = day["golden_ab.pcap"]
    data = open(plain, "rb").read()
    if compress:
        data = gzip.compress(data, compresslevel=1)
    js_pipe, js_file = tmp_path / "pipe.json", tmp_path / "file.json"
    d_pipe, d_file = tmp_path / "pipe.csv", tmp_path / "file.csv"
    common = ["--mode", "book", "--max-instruments", "1024", "--silence-ms", "120000"]
    p = cli(["replay", "-", "--stats-json", str(js_pipe), "--dump-books", str(d_pipe)] + common, stdin=data)
    assert p.returncode == 0, p.stderr.decode()
    q = cli(["replay", plain, "--stats-json", str(js_file), "--dump-books", str(d_file)] + common)
    assert q.returncode == 0, q.stderr.decode()
    assert d_pipe.read_text() == d_file.read_text()
    a, b = json.loads(js_pipe.read_text()), json.loads(js_file.read_text())
    for k in ("messages", "packets", "gaps", "duplicates", "by_type", "errors", "book", "checksum"):
        assert a[k] == b[k], k


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two lanes need two cores")
def test_stdin_is_one_lane_only(day):
    r = Replay(mode="book", cores=sorted(os.sched_getaffinity(0))[:2], **SMALL)
    res = r.run_file("-", progress=False)
    assert not res.ok and "one lane" in res.error


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_truncated_compressed_input_applies_everything_before_the_cut(day, tmp_path, kind):
    if kind == "zst":
        need_zstd()
    plain = day["golden_day.bin"]
    full = gz(plain, str(tmp_path / "f.gz")) if kind == "gz" else zst(plain, str(tmp_path / "f.zst"))
    data = open(full, "rb").read()
    cut = tmp_path / ("cut." + kind)
    cut.write_bytes(data[: len(data) // 2])
    r, res = replay(str(cut))
    assert not res.ok and res.partial, res
    assert "truncated" in res.error and "everything before it was applied" in res.error, res.error
    st = r.stats()
    # About half the day was applied, not nothing and not all of it.
    _, full_res = replay(plain)
    total = replay(plain)[0].stats()["messages"]
    assert 0.2 * total < st["messages"] < 0.8 * total, (st["messages"], total)


def test_corrupt_gzip_is_a_clear_error_after_what_came_before(day, tmp_path):
    plain = day["golden_day.bin"]
    data = bytearray(open(gz(plain, str(tmp_path / "f.gz")), "rb").read())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)  # a run of zeros inside the deflate stream
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(data))
    r, res = replay(str(bad))
    assert not res.ok and res.partial
    assert "gzip" in res.error and ("corrupt" in res.error or "truncated" in res.error), res.error
    assert r.stats()["messages"] > 1000


def test_gzip_trailing_garbage_is_reported(day, tmp_path):
    plain = day["golden_day.bin"]
    p = tmp_path / "g.gz"
    p.write_bytes(open(gz(plain, str(tmp_path / "f.gz")), "rb").read() + b"not gzip at all")
    r, res = replay(str(p))
    assert not res.ok and "trailing garbage" in res.error
    assert r.stats()["messages"] == replay(plain)[0].stats()["messages"]


def test_compression_detected_from_bytes_not_names(tmp_path):
    assert lib.fh_input_compression(b"\x1f\x8b\x08\x00", 4) == 1
    assert lib.fh_input_compression(bytes.fromhex("28b52ffd"), 4) == 2
    assert lib.fh_input_compression(b"\xd4\xc3\xb2\xa1", 4) == 0
    # A gzip named .pcap replays as gzip.
    src = os.path.join(PCAPS, "sample.pcap")
    p = tmp_path / "really_gzip.pcap"
    p.write_bytes(gzip.compress(open(src, "rb").read()))
    _, res = replay(str(p))
    assert res.ok, res.error


def test_compressed_inside_compressed_is_refused(tmp_path):
    p = tmp_path / "double.gz"
    p.write_bytes(gzip.compress(gzip.compress(open(os.path.join(PCAPS, "sample.pcap"), "rb").read())))
    _, res = replay(str(p))
    assert not res.ok and "compressed input inside compressed input" in res.error


def binfile_of(n_records):
    """A BinaryFILE of n System Event records ('S', 12 bytes): decoded, no books."""
    rec = np.zeros(14, np.uint8)
    rec[:2] = [0, 12]
    rec[2] = ord("S")
    rec[13] = ord("O")
    return np.tile(rec, n_records).tobytes()


@pytest.mark.slow
def test_memory_does_not_grow_with_a_streamed_input(tmp_path):
    """A 150 MB input streamed from gzip and from a pipe: the process's peak
    memory stays far below the input's size (it used to be inflated whole)."""
    raw = binfile_of(150_000_000 // 14)
    p = tmp_path / "big.bin.gz"
    p.write_bytes(gzip.compress(raw, compresslevel=1))
    code = (
        "import resource, sys\n"
        "from feedhandler.replay import Replay\n"
        "r = Replay(mode='decode', max_instruments=16)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "res = r.run_file(sys.argv[1], progress=False)\n"
        "assert res.ok, res.error\n"
        "print(r.stats()['messages'], base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    for arg, stdin in ((str(p), None), ("-", raw)):
        out = subprocess.run([sys.executable, "-c", code, arg], input=stdin, capture_output=True, cwd=ROOT, timeout=300)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        n, base_kb, peak_kb = map(int, out.stdout.split())
        assert n == len(raw) // 14
        assert (peak_kb - base_kb) * 1024 < 40 << 20, (arg, base_kb, peak_kb)


@pytest.mark.slow
def test_the_input_line_and_json_name_the_compression(day, tmp_path):
    plain = day["golden_ab.pcap"]
    g = gz(plain, str(tmp_path / "c.gz"))
    js = tmp_path / "s.json"
    p = cli(["replay", g, "--mode", "book", "--stats-json", str(js)])
    assert p.returncode == 0, p.stderr.decode()
    assert ", gzip]" in p.stdout.decode()
    inp = json.loads(js.read_text())["inputs"][0]
    assert inp["compression"] == "gzip" and inp["gzip"] is True
    # Standard input: only the C side sees its first bytes.
    p = cli(["replay", "-", "--mode", "book", "--stats-json", str(js)], stdin=open(g, "rb").read())
    assert p.returncode == 0 and json.loads(js.read_text())["inputs"][0]["compression"] == "gzip"
    p = cli(["replay", plain, "--mode", "book", "--stats-json", str(js)])
    assert json.loads(js.read_text())["inputs"][0]["compression"] is None


def test_progress_counts_compressed_bytes(day, tmp_path):
    """A compressed input's progress bar runs on the compressed file (the size
    known up front): at the end, done == total == the .gz's size."""
    g = gz(day["golden_day.bin"], str(tmp_path / "p.gz"))
    r, res = replay(g)
    assert res.ok
    assert r.progress() == (os.path.getsize(g), os.path.getsize(g))
    r, res = replay(day["golden_day.bin"])
    assert r.progress() == (os.path.getsize(day["golden_day.bin"]),) * 2
