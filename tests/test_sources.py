"""Sources: every capture format of the same messages decodes to identical
counters; unreadable, empty, corrupt and truncated files give clear errors."""

import gzip
import os
import subprocess
import sys

import pytest

import frames as F
from feedhandler.replay import Replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")


@pytest.fixture(scope="module")
def records():
    """The committed sample when present, else a small built capture."""
    if os.path.exists(SAMPLE):
        with open(SAMPLE, "rb") as f:
            return F.parse_pcap(f.read())
    recs, seq, t = [], 1, 1_764_000_000_000_000_000
    for k in range(300):
        msgs = [F.msg_A(ref=k * 10 + i, ts=k * 1000 + i) for i in range(5)] + [F.msg_D(ref=k * 10)]
        recs.append((t + k * 1777, F.frame(F.mold(msgs, seq=seq))))
        seq += len(msgs)
    recs.append((t + 10**9, F.frame(F.mold(count=0, seq=seq))))
    recs.append((t + 2 * 10**9, F.frame(F.mold(count=0xFFFF, seq=seq))))
    return recs


def run(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    r = Replay(mode="decode")
    res = r.run_file(str(p), progress=False)
    return res, r.stats()


KEYS = ("messages", "by_type", "gaps", "duplicates", "errors", "checksum")


def test_all_formats_decode_identically(tmp_path, records):
    ref_res, ref = run(tmp_path, "ns.pcap", F.pcap_bytes(records, ns=True))
    assert ref_res.ok and ref_res.format == "pcap (ns)"
    assert ref["messages"] > 0 and ref["errors"] == {}
    variants = {
        "us.pcap": (F.pcap_bytes(records, ns=False), "pcap (us)"),
        "ns_swapped.pcap": (F.pcap_bytes(records, ns=True, swap=True), "pcap (ns)"),
        "us_swapped.pcap": (F.pcap_bytes(records, ns=False, swap=True), "pcap (us)"),
        "multi_if.pcapng": (F.pcapng_bytes(records, interfaces=3), "pcapng"),
        "swapped.pcapng": (F.pcapng_bytes(records, interfaces=2, swap=True), "pcapng"),
        "simple.pcapng": (F.pcapng_bytes(records, interfaces=1, simple=True), "pcapng"),
        "ns.pcap.gz": (F.gz(F.pcap_bytes(records, ns=True)), "pcap (ns)"),
        "x.pcapng.gz": (F.gz(F.pcapng_bytes(records)), "pcapng"),
    }
    for name, (data, fmt) in variants.items():
        res, st = run(tmp_path, name, data)
        assert res.ok, (name, res.error)
        assert res.format == fmt, name
        assert {k: st[k] for k in KEYS} == {k: ref[k] for k in KEYS}, name
        assert st["packets"] == ref["packets"], name
        assert st["heartbeats"] == ref["heartbeats"] and st["end_of_session"] == ref["end_of_session"]
    # Capture timestamps survive every resolution the file can hold.
    _, us = run(tmp_path, "us2.pcap", F.pcap_bytes(records, ns=False))
    assert us["first_ts_ns"] == records[0][0] // 1000 * 1000


def test_binfile_plain_and_gzip_match_capture(tmp_path, records):
    msgs = [m for _, f in records for m in F.mold_messages(f)]
    _, cap = run(tmp_path, "c.pcap", F.pcap_bytes(records))
    for name, data in (("day.bin", F.binfile_bytes(msgs)), ("day.bin.gz", F.gz(F.binfile_bytes(msgs)))):
        res, st = run(tmp_path, name, data)
        assert res.ok and res.format == "BinaryFILE", res.error
        assert st["by_type"] == cap["by_type"] and st["checksum"] == cap["checksum"]
        assert st["packets"] == len(msgs) and st["errors"] == {}


def test_multi_member_gzip(tmp_path, records):
    msgs = [m for _, f in records for m in F.mold_messages(f)]
    half = len(msgs) // 2
    data = gzip.compress(F.binfile_bytes(msgs[:half])) + gzip.compress(F.binfile_bytes(msgs[half:]))
    res, st = run(tmp_path, "two.bin.gz", data)
    assert res.ok and st["messages"] == len(msgs)


# ------------------------------------------------------------------ bad files


def test_missing_file(tmp_path):
    res, _ = run_path(tmp_path / "nope.pcap")
    assert not res.ok and "No such file" in res.error


def run_path(p):
    r = Replay(mode="decode")
    return r.run_file(str(p), progress=False), r.stats()


def test_directory(tmp_path):
    res, _ = run_path(tmp_path)
    assert not res.ok and "directory" in res.error


@pytest.mark.parametrize(
    "name,data,needle",
    [
        ("empty.pcap", b"", "empty"),
        ("garbage.bin", b"hello, this is not market data\n" * 10, "unrecognised format"),
        ("short.pcap", b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
        ("badgz.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 40, "gzip"),
        ("linktype.pcap", None, "link type"),
        ("nosh.pcapng", b"\x0a\x0d\x0d\x0a" + b"\x00" * 20, "byte-order"),
    ],
)
def test_unreadable_inputs_fail_cleanly(tmp_path, records, name, data, needle):
    if name == "linktype.pcap":
        data = F.pcap_bytes(records[:3], linktype=113)
    res, st = run(tmp_path, name, data)
    assert not res.ok and not res.partial
    assert needle in res.error, res.error


def test_truncated_gzip_keeps_prefix(tmp_path, records):
    """A gzip stream cut short: everything inflated before the cut is applied,
    then a clear error (it used to be inflated whole first, and lost)."""
    data = F.gz(F.pcap_bytes(records))[:-30]
    res, st = run(tmp_path, "trunc.gz", data)
    assert not res.ok and res.partial
    assert "gzip input truncated" in res.error and "everything before it was applied" in res.error, res.error
    assert st["messages"] > 0


def test_truncated_pcap_keeps_prefix(tmp_path, records):
    data = F.pcap_bytes(records)
    res, st = run(tmp_path, "cut.pcap", data[: len(data) // 2])
    assert not res.ok and res.partial and "truncated" in res.error
    assert st["errors"]["capture_truncated"] == 1 and st["messages"] > 0


def test_corrupt_record_length(tmp_path, records):
    data = bytearray(F.pcap_bytes(records[:5]))
    off = 24 + 16 + len(records[0][1])  # second record header
    data[off + 8 : off + 12] = (10**9).to_bytes(4, "little")
    res, st = run(tmp_path, "bad.pcap", bytes(data))
    assert res.partial and "corrupt" in res.error and st["errors"]["capture_bad_record"] == 1
    assert st["packets"] == 1


def test_corrupt_pcapng_block(tmp_path, records):
    data = bytearray(F.pcapng_bytes(records[:5], interfaces=1))
    data[-4:] = b"\x99\x99\x99\x99"  # trailing length of the last block
    res, st = run(tmp_path, "bad.pcapng", bytes(data))
    assert res.partial and st["errors"]["capture_bad_record"] == 1 and st["packets"] == 4


def test_binfile_truncated_and_zero_length(tmp_path):
    data = F.binfile_bytes([F.msg_A(), b"", F.msg_D()]) + b"\x00\x24AB"
    res, st = run(tmp_path, "t.bin", data)
    assert res.partial and st["messages"] == 2
    assert st["errors"] == {"binfile_zero_length": 1, "capture_truncated": 1}


def test_snapped_frames_counted(tmp_path, records):
    data = bytearray(F.pcap_bytes(records[:1]))
    data[24 + 12 : 24 + 16] = (len(records[0][1]) + 100).to_bytes(4, "little")  # wire len > captured
    res, st = run(tmp_path, "snap.pcap", bytes(data))
    assert res.ok and st["errors"].get("capture_snapped") == 1


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    for path in (tmp_path / "missing.pcap", tmp_path / "empty.pcap", tmp_path):
        p = cli("replay", str(path))
        assert p.returncode == 1, p.stderr
        assert "Traceback" not in p.stderr and "feedhandler replay:" in p.stderr


def test_cli_replay_stats_json(tmp_path, records):
    import json

    (tmp_path / "a.pcap").write_bytes(F.pcap_bytes(records))
    p = cli("replay", str(tmp_path / "a.pcap"), "--stats-json", str(tmp_path / "s.json"))
    assert p.returncode == 0, p.stderr
    st = json.loads((tmp_path / "s.json").read_text())
    for k in ("packets", "messages", "by_type", "gaps", "recovered", "duplicates", "errors", "elapsed_s", "msgs_per_s"):
        assert k in st
    assert st["messages"] == sum(st["by_type"].values()) > 0
    assert "messages" in p.stdout and "msgs/s" in p.stdout


@pytest.mark.parametrize("sub", ["replay", "gen"])
def test_cli_help(sub):
    p = cli(sub, "--help")
    assert p.returncode == 0 and "usage:" in p.stdout


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "bin"])
def test_mutated_files_never_crash(tmp_path, records, kind):
    """Bit flips, truncations and splices anywhere in a capture (record headers
    included): the walk reports corruption or counts skips, never crashes."""
    import random

    recs = records[:150]
    if kind == "pcap":
        base = F.pcap_bytes(recs)
    elif kind == "pcapng":
        base = F.pcapng_bytes(recs, interfaces=2)
    else:
        base = F.binfile_bytes([m for _, f in recs for m in F.mold_messages(f)])
    rnd = random.Random(kind)
    outcomes = set()
    for i in range(400):
        d = bytearray(base)
        for _ in range(rnd.randrange(1, 8)):
            op = rnd.randrange(4)
            if op == 0:
                d[rnd.randrange(len(d))] ^= 1 << rnd.randrange(8)
            elif op == 1:
                d = d[: rnd.randrange(len(d) + 1)]
            elif op == 2 and len(d) > 64:
                j = rnd.randrange(len(d) - 32)
                d[j : j + 4] = rnd.getrandbits(32).to_bytes(4, "little")
            else:
                j = rnd.randrange(len(d) + 1)
                d = d[:j] + d[j : j + rnd.randrange(64)] * 2 + d[j:]
        r = Replay(mode="decode")
        res = r.run_buffer(bytes(d)) if i % 2 else run(tmp_path, "m." + kind, bytes(d))[0]
        outcomes.add("ok" if res.ok else "partial" if res.partial else "error")
    assert "ok" in outcomes or "partial" in outcomes
