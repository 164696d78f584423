"""The committed fixtures in pcaps/ decode to what pcaps/expected.json says
(the generator's own accounting), and regenerate byte-identically."""

import gzip
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


def _protocol(name):
    args = EXPECTED[name]["gen_args"]
    return args[args.index("--protocol") + 1] if "--protocol" in args else "itch"


IEX_FIXTURES = sorted(n for n in EXPECTED if _protocol(n).startswith("iex"))
# (fixture, file): every IEX capture, and the gzip copy of the one that has one.
IEX_FILES = [(n, n + ".pcap") for n in IEX_FIXTURES] + [
    (n, n + ".pcap.gz") for n in IEX_FIXTURES if os.path.exists(os.path.join(PCAPS, n + ".pcap.gz"))
]


def _read_capture(file):
    with open(os.path.join(PCAPS, file), "rb") as f:
        data = f.read()
    return gzip.decompress(data) if file.endswith(".gz") else data


def _replay_books(data, depth):
    """(stats, --dump-books CSV, Replay) of a Python API replay of capture bytes."""
    import tempfile

    r = Replay(max_orders=1 << 16, max_levels=1 << 18, ring_events=1 << 16)
    res = r.run_buffer(data)
    assert res.ok, res.error
    r.finish()
    with tempfile.TemporaryDirectory() as tmp:
        r.dump_books(os.path.join(tmp, "b.csv"), depth)
        with open(os.path.join(tmp, "b.csv")) as f:
            return r.stats(), f.read(), r


def _iex_lines(data):
    """Per line (destination group): [(session id, first internal sequence, message count)]
    of every IEX-TP data segment, parsed in Python."""
    lines = {}
    for _, fr in F.parse_pcap(data):
        ihl = (fr[14] & 15) * 4
        dst = ".".join(str(b) for b in fr[14 + 16 : 14 + 20])
        p = fr[14 + ihl + 8 :]
        session, _, count = struct.unpack_from("<IHH", p, 8)
        seq = struct.unpack_from("<q", p, 24)[0] + 1
        lines.setdefault(dst, [])
        if count:
            lines[dst].append((session, seq, count))
    return lines


@pytest.mark.parametrize("name,file", IEX_FILES)
def test_iex_fixture_counts_books_and_reference(name, file):
    """An IEX fixture (or its gzip copy) replays to the recorded counters and
    books digest, and to what the independent Python reference (tests/iexref.py)
    makes of the same bytes: messages, per-type counts, gaps, duplicates and the
    --dump-books CSV."""
    from iexref import IexRef

    exp = EXPECTED[name]
    rep = exp["replay"]
    st = replay(file)
    assert {k: st[k] for k in rep} == rep
    assert st["iex_packets"] == st["packets"] == exp["packets_line_a"] + exp["packets_line_b"]
    assert st["mold_packets"] == 0 and st["pitch_packets"] == 0 and st["pkt_rejected"] == 0
    # Every message the generator wrote is applied once, or lost on both lines.
    assert st["messages"] + st["gaps"] == exp["messages"]
    if st["gaps"] == 0:
        assert st["by_type"] == exp["by_type"]

    data = _read_capture(file)
    assert hashlib.sha256(data).hexdigest() == exp["pcap_sha256"]
    st2, got, r = _replay_books(data, exp["books_depth"])
    assert st2["checksum"] == rep["checksum"]
    assert got.count("\n") - 1 == exp["books_rows"] > 20
    assert hashlib.sha256(got.encode()).hexdigest() == exp["books_sha256"]

    ref = IexRef().feed_pcap(data).finish()
    rs = ref.stats()
    for key in ("messages", "by_type", "gaps", "duplicates", "heartbeats", "iex_packets", "iex_clears"):
        assert st[key] == rs[key], key
    assert not any(rs["errors"].values())
    # The books as applied agree in full, stale instruments included (both apply
    # every message that arrived, in sequence order); and the instruments flagged
    # stale are exactly the reference's.
    assert got == ref.dump_csv(exp["books_depth"])
    shm = pytest.importorskip("feedhandler.shm")
    ids = {i for ranks in ref.ranks.values() for i in ranks.values()}
    assert {i for i in ids if r.flags(i) & shm.FLAG_STALE} == ref.stale_ids()
    assert bool(ref.stale_ids()) == (rep["gaps"] > 0)


def test_iex_deepplus_needs_both_lines():
    """The DEEP+ fixture (2 sessions, loss on each line): either line alone
    has gaps, the two together none, and every copy beyond the first is a
    duplicate even though line B cuts the segments differently."""
    exp = EXPECTED["sample_iex_deepplus"]
    assert exp["iex"]["sessions"] == 2 and exp["replay"]["session_changes"] > 0
    data = _read_capture("sample_iex_deepplus.pcap")
    lines = _iex_lines(data)
    assert len(lines) == 2
    seen, copies = set(), 0
    for segs in lines.values():
        for session, seq, count in segs:
            for s in range(seq, seq + count):
                copies += (session, s) in seen
                seen.add((session, s))
    assert len(seen) == exp["messages"]
    st = replay("sample_iex_deepplus.pcap")
    assert st["gaps"] == 0 and st["messages"] == exp["messages"] and st["duplicates"] == copies > 0
    recs = F.parse_pcap(data)
    for dst in lines:
        one = [(ts, fr) for ts, fr in recs if ".".join(str(b) for b in fr[30:34]) == dst]
        alone, _, _ = _replay_books(F.pcap_bytes(one), 1)
        assert alone["gaps"] > 0, dst


def test_iex_deep_gaps_and_multi_update_events():
    """The DEEP fixture: its gaps are exactly the messages no line carried, and
    it has events of several Price Level Updates (one split over two segments)."""
    exp = EXPECTED["sample_iex_deep"]
    assert exp["iex"]["multi_level_events"] > 0 and exp["iex"]["straddling_events"] > 0
    lines = _iex_lines(_read_capture("sample_iex_deep.pcap"))
    assert len(lines) == 2
    seen = {(session, s) for segs in lines.values() for session, seq, n in segs for s in range(seq, seq + n)}
    st = replay("sample_iex_deep.pcap")
    assert st["gaps"] == exp["messages"] - len(seen) > 0
    assert st["messages"] == len(seen)
    # The generator's own count of segments lost on both lines (line A's copy
    # and a part of line B's, which is cut differently) sees that loss too.
    assert exp["packets_lost"]["both"] >= 1


def test_iex_tops_one_line():
    """The TOPS fixture: line A only, no loss: every message once, no gaps."""
    exp = EXPECTED["sample_iex_tops"]
    st = replay("sample_iex_tops.pcap")
    assert exp["packets_line_b"] == 0 and st["duplicates"] == 0 and st["gaps"] == 0
    assert st["messages"] == exp["messages"] and st["by_type"] == exp["by_type"] and "iex_Q" in st["by_type"]


MOLD_FIXTURES = sorted(n for n in EXPECTED if _protocol(n) == "itch")


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
