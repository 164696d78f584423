"""The committed fixtures in pcaps/ decode to what pcaps/expected.json says
(the generator's own accounting), and regenerate byte-identically."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

import frames as F
from feedhandler.replay import Replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
with open(os.path.join(PCAPS, "expected.json")) as _f:
    EXPECTED = json.load(_f)


def replay(*names):
    r = Replay(max_orders=1 << 16, max_levels=1 << 18, ring_events=1 << 16)
    for n in names:
        res = r.run_file(os.path.join(PCAPS, n), progress=False)
        assert res.ok, res.error
    return r.stats()


def test_sample_pcap_counts():
    exp = EXPECTED["sample"]
    st = replay("sample.pcap")
    assert st["messages"] == exp["messages"]
    assert st["by_type"] == exp["by_type"]
    assert st["packets"] == exp["packets_line_a"]
    assert st["heartbeats"] == exp["heartbeats"] and st["end_of_session"] == exp["end_of_session"]
    assert st["gaps"] == 0 and st["duplicates"] == 0 and st["errors"] == {}
    assert st["streams"] == 2
    # Every ITCH 5.0 type is in the sample.
    assert set(st["by_type"]) == set("SRHYLVWKJhAFECXDUPQBINO")


def test_sample_binfile_gz_same_messages():
    pc = replay("sample.pcap")
    bn = replay("sample.bin.gz")
    assert bn["by_type"] == pc["by_type"] and bn["checksum"] == pc["checksum"]
    assert bn["packets"] == EXPECTED["sample"]["messages"]


def _seq_ranges(path):
    """(session, first seq, count) of every data packet per line, parsed in Python."""
    lines = {}
    with open(path, "rb") as f:
        for _, fr in F.parse_pcap(f.read()):
            ihl = (fr[14] & 15) * 4
            dst = ".".join(str(b) for b in fr[14 + 16 : 14 + 20])
            p = fr[14 + ihl + 8 :]
            seq, count = struct.unpack(">QH", p[10:20])
            if count not in (0, 0xFFFF):
                lines.setdefault(dst, []).append((p[:10], seq, count))
    return lines


def test_sample_ab_arbitration_and_gaps():
    exp = EXPECTED["sample_ab"]
    lines = _seq_ranges(os.path.join(PCAPS, "sample_ab.pcap"))
    assert len(lines) == 2
    seen, copies = set(), 0
    for pkts in lines.values():
        for _, seq, count in pkts:
            for s in range(seq, seq + count):
                copies += s in seen
                seen.add(s)
    lost_both = exp["messages"] - len(seen)
    st = replay("sample_ab.pcap")
    assert st["gaps"] == lost_both > 0
    assert st["messages"] == len(seen)
    assert st["duplicates"] == copies
    assert st["streams"] == 1 and st["errors"] == {}


def test_sample_pitch_counts_and_books():
    """The Cboe PITCH fixture (4 units, lines A and B, loss on A only): every
    message the generator wrote arrives once, per type as it counted, and the
    books equal the independent reference's (tests/pitchref.py)."""
    import tempfile

    from pitchref import PitchRef

    exp = EXPECTED["sample_pitch"]
    st = replay("sample_pitch.pcap")
    assert st["messages"] == exp["messages"] and st["by_type"] == exp["by_type"]
    assert st["gaps"] == 0 and st["errors"] == {} and st["duplicates"] > 0
    assert st["pitch_packets"] == st["packets"] == exp["packets_line_a"] + exp["packets_line_b"]
    assert st["mold_packets"] == 0 and st["streams"] == 4
    with open(os.path.join(PCAPS, "sample_pitch.pcap"), "rb") as f:
        recs = F.parse_pcap(f.read())
    want = PitchRef(0, "BATS", ports=[30001]).feed_records(recs).finish().dump_csv(10)
    r = Replay(max_orders=1 << 16, max_levels=1 << 18, ring_events=1 << 16)
    assert r.run_file(os.path.join(PCAPS, "sample_pitch.pcap"), progress=False).ok
    r.finish()
    with tempfile.TemporaryDirectory() as tmp:
        r.dump_books(os.path.join(tmp, "b.csv"), 10)
        with open(os.path.join(tmp, "b.csv")) as f:
            got = f.read()
    assert got == want and got.count("\n") > 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_regenerates_identically(tmp_path, name):
    exp = EXPECTED[name]
    prefix = str(tmp_path / name)
    subprocess.run(
        [sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix] + exp["gen_args"],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    with open(prefix + ".pcap", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == exp["pcap_sha256"], (
            "generator output changed: run scripts/make_fixtures.py and commit pcaps/"
        )


MOLD_FIXTURES = sorted(n for n in EXPECTED if "pitch" not in EXPECTED[n]["gen_args"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt install tshark)")
@pytest.mark.parametrize("name", MOLD_FIXTURES)
def test_tshark_moldudp64_dissector_agrees(name):
    """Wireshark's own MoldUDP64 dissector finds no malformed packet and the same
    number of message blocks (its ITCH dissector is 2/3, not 5.0)."""
    path = os.path.join(PCAPS, name + ".pcap")
    args = ["tshark", "-n", "-r", path, "-d", "udp.port==26477,moldudp64"]
    bad = subprocess.run(
        args + ["-Y", "_ws.malformed || _ws.expert.severity >= warning"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout[:2000]
    counts = subprocess.run(
        args + ["-T", "fields", "-e", "moldudp64.count"], capture_output=True, text=True, timeout=120
    ).stdout.split()
    blocks = sum(int(c) for c in counts if int(c) != 0xFFFF)
    st = replay(name + ".pcap")
    assert blocks == st["messages"] + st["duplicates"]
