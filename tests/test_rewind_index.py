"""The rewind server's capture index is read by the C core (csrc/tools/index.c): the
replay's input layer, walkers, frame parse and MoldUDP64 block walk.  Every
container of one capture gives the same index, the index's counters are the
replay's for the same file, and out-of-order / duplicate / hole-filling
blocks are indexed first copy kept."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import frames as F
from feedhandler.core import build_features
from feedhandler.replay import Replay
from feedhandler.rewind import RewindError, index_capture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_AB = os.path.join(ROOT, "pcaps", "sample_ab.pcap")

# The counters of the walk that the index and a decode-only replay share:
# frames, datagrams, and every wire-level error (capture, net, MoldUDP64).
WIRE_ERRORS = (
    "capture_truncated",
    "capture_snapped",
    "capture_link_type",
    "capture_bad_record",
    "eth_truncated",
    "vlan_truncated",
    "arp",
    "ipv6",
    "ethertype_other",
    "ip_truncated",
    "ip_bad_version",
    "ip_bad_header_length",
    "ip_bad_total_length",
    "ip_fragment",
    "ip_not_udp",
    "udp_truncated",
    "udp_bad_length",
    "mold_truncated",
    "mold_count_overrun",
    "mold_block_overrun",
    "mold_trailing_bytes",
    "mold_zero_length_block",
    "mold_seq_implausible",
)


def signature(idx):
    """Everything an index holds, comparable."""
    return (
        {name: (s.seqs.tolist(), s.offsets.tolist(), s.blocks(0, s.count)) for name, s in idx.sessions.items()},
        idx.skipped,
        idx.frames,
        idx.datagrams,
        idx.mold_packets,
        idx.heartbeats,
        idx.end_of_session,
        idx.blocks,
        idx.duplicates,
        idx.duplicate_mismatch,
        idx.message_bytes,
    )


def replay_counters(path):
    r = Replay(mode="decode")
    res = r.run_file(str(path), progress=False)
    r.finish()
    return res, r.stats()


def wire(stats):
    return (
        {k: stats["errors"].get(k, 0) for k in WIRE_ERRORS},
        stats["packets"],
        stats["bytes"],
        stats["mold_packets"],
        stats["heartbeats"],
        stats["end_of_session"],
    )


@pytest.fixture(scope="module")
def ab_records():
    with open(SAMPLE_AB, "rb") as f:
        return F.parse_pcap(f.read())


def test_every_container_gives_the_same_index(tmp_path, ab_records):
    recs = ab_records
    pcap = F.pcap_bytes(recs)
    files = {
        "pcap": pcap,
        "pcap_us_swapped": F.pcap_bytes(recs, ns=False, swap=True),
        "pcapng": F.pcapng_bytes(recs, interfaces=2, swap=True),
        "pcap.gz": F.gz(pcap),
        "pcapng.gz": F.gz(F.pcapng_bytes(recs)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    base = index_capture(str(tmp_path / "pcap"))
    # A lossy A/B capture: B copies are duplicates, and B fills what A lost.
    assert base.duplicates > 0 and sum(s.count for s in base.sessions.values()) == 11959
    want = signature(base)
    names = sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        idx = index_capture(str(tmp_path / name))
        assert signature(idx) == want, name
        assert idx.gzip == name.endswith(".gz") and idx.compression == (
            "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None
        ), name
    # Standard input, as `feedhandler rewind-server -` reads it.
    code = (
        "import sys; sys.path.insert(0, %r); from feedhandler.rewind import index_capture; "
        "from test_rewind_index import signature; print(hash(repr(signature(index_capture('-')))))"
        % os.path.dirname(os.path.abspath(__file__))
    )
    with open(tmp_path / "pcap.gz", "rb") as f:
        out = subprocess.run(
            [sys.executable, "-c", code],
            stdin=f,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONHASHSEED="0"),
        )
    assert out.returncode == 0, out.stderr
    here = subprocess.run(
        [sys.executable, "-c", code.replace("index_capture('-')", "index_capture(%r)" % str(tmp_path / "pcap"))],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    assert out.stdout == here.stdout and out.stdout.strip()


def test_zstd_capture_gives_the_same_index(tmp_path, ab_records):
    if not shutil.which("zstd") or not build_features()["zstd"]:
        pytest.skip("zstd: this build or machine has none (the core without libzstd: tests/test_build_variants.py)")
    (tmp_path / "pcap").write_bytes(F.pcap_bytes(ab_records))
    want = signature(index_capture(str(tmp_path / "pcap")))
    zst = tmp_path / "pcap.zst"
    subprocess.run(["zstd", "-q", "-f", str(tmp_path / "pcap"), "-o", str(zst)], check=True)
    res, _ = replay_counters(zst)
    assert res.ok, res.error
    idx = index_capture(str(zst))
    assert signature(idx) == want and idx.compression == "zstd"


def test_index_counters_are_the_replays(tmp_path, ab_records):
    """Hostile captures: the index counts what the decode-only replay counts."""
    good = [F.msg_A(ref=i) for i in range(1, 9)]
    recs = [
        (1, F.frame(F.mold(good[:2], seq=1))),
        (2, F.frame(b"\x00" * 5)[:10]),  # eth_truncated
        (3, F.frame(F.mold(good[2:3], seq=3), vlans=[100, 200])),  # QinQ: fine
        (4, F.frame(F.mold(good[3:4], seq=4), vlans=[1, 2, 3])),  # three tags: vlan_truncated
        (5, F.frame(F.mold([F.msg_D()], seq=9), proto=6)),  # ip_not_udp
        (6, F.frame(F.mold([F.msg_D()], seq=9), flags_frag=0x2000)),  # ip_fragment
        (7, F.frame(b"short")),  # mold_truncated
        (8, F.frame(F.mold(good[3:4], seq=4, count=3))),  # count overrun: first block kept
        (9, F.frame(F.mold(seq=5, count=1, raw_blocks=b"\x00\x30abc"))),  # block overrun
        (10, F.frame(F.mold(seq=5, count=2, raw_blocks=F.block(good[6]) + b"\x00\x00"))),  # zero-length block
        (11, F.frame(F.mold(good[7:8], seq=7) + b"xx")),  # trailing bytes
        (12, F.frame(F.mold([], seq=8, count=0))),  # heartbeat
        (13, F.frame(F.mold([], seq=8, count=0) + b"x")),  # heartbeat with trailing bytes
        (14, F.frame(F.mold([F.msg_D(ref=14)], seq=2**64 - 1))),  # wraps 2^64: implausible
        (15, F.frame(F.mold([F.msg_D(ref=15)], seq=8), ethertype=0x86DD)),  # ipv6
        (16, F.frame(F.mold([], seq=8, count=0xFFFF))),  # end of session
    ]
    # In sequence throughout, so that the replay walks every datagram (it
    # does not walk one it holds behind a hole and then finds a duplicate).
    whole = F.pcap_bytes(recs)
    cases = {
        "hostile.pcap": whole,
        "truncated.pcap": whole[:-7],  # last record cut short
        "bad_record.pcap": whole[: 24 + 16 + len(recs[0][1])] + b"\xff" * 16 + whole[24 + 16 + len(recs[0][1]) :],
        "hostile.pcapng": F.pcapng_bytes(recs)[:-5],
        "hostile.pcap.gz": F.gz(whole[:-7]),
        "ab.pcap": F.pcap_bytes(ab_records),
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        res, st = replay_counters(p)
        idx = index_capture(str(p))
        assert wire(idx.counters) == wire(st), name
        assert (idx.truncated is not None) == bool(res.partial), (name, idx.truncated, res.error)
        assert idx.skipped == {k: v for k, v in st["errors"].items() if k in WIRE_ERRORS}, name
    idx = index_capture(str(tmp_path / "hostile.pcap"))
    s = idx.sessions[F.SESSION]
    assert s.seqs.tolist() == [1, 2, 3, 4, 5, 7]  # 6: the zero-length block's number
    assert [s.get(q) for q in s.seqs.tolist()] == good[:4] + [good[6], good[7]]
    assert idx.skipped["mold_seq_implausible"] == 1 and idx.heartbeats == 2 and idx.end_of_session == 1


def test_late_blocks_fill_holes_first_copy_kept(tmp_path):
    m = {q: F.msg_A(ref=q, shares=q) for q in range(1, 13)}
    other = F.msg_D(ref=99)  # a different message, other length
    recs = [
        (1, F.frame(F.mold([m[1], m[2]], seq=1))),
        (2, F.frame(F.mold([m[7], m[8]], seq=7))),  # 3..6 missing so far
        (3, F.frame(F.mold([m[4], m[5]], seq=4))),  # fills part of the hole, late
        (4, F.frame(F.mold([other], seq=5))),  # a later copy of 5, differing
        (5, F.frame(F.mold([m[1], m[2], m[3]], seq=1))),  # 1, 2 again; 3 fills
        (6, F.frame(F.mold([m[4]], seq=4), dst=F.GROUP_B)),  # 4 again, from the other line
        (7, F.frame(F.mold([m[9]], seq=9, session=b"ZZSESSION1"))),
        (8, F.frame(F.mold([m[12]], seq=12))),
        (9, F.frame(F.mold([m[1]], seq=1, session=b"AASESSION1"))),
        (10, F.frame(F.mold([m[3]], seq=3, session=b"ZZSESSION1"))),  # late in the other session
    ]
    p = tmp_path / "late.pcap"
    p.write_bytes(F.pcap_bytes(recs))
    idx = index_capture(str(p))
    assert list(idx.sessions) == sorted(idx.sessions)  # sessions in byte order
    s = idx.sessions[F.SESSION]
    assert s.seqs.tolist() == [1, 2, 3, 4, 5, 7, 8, 12] and s.missing == 4
    assert all(s.get(q) == m[q] for q in s.seqs.tolist())
    assert s.blocks(0, s.count) == b"".join(F.block(m[q]) for q in s.seqs.tolist())
    assert idx.sessions[b"ZZSESSION1"].seqs.tolist() == [3, 9]
    assert idx.blocks == 15 and idx.duplicates == 4 and idx.duplicate_mismatch == 1
    assert idx.messages == 11 and idx.message_bytes == sum(len(x.blocks(0, x.count)) for x in idx.sessions.values())
    assert s.seqs.dtype == np.uint64 and not s.seqs.flags.writeable


def test_index_outlives_its_capture_index_object(tmp_path):
    """A SessionIndex's arrays keep the C index alive on their own."""
    import gc

    p = tmp_path / "c.pcap"
    p.write_bytes(F.pcap_bytes([(1, F.frame(F.mold([F.msg_A(ref=i) for i in range(1, 4)], seq=1)))]))
    s = index_capture(str(p)).sessions[F.SESSION]
    gc.collect()
    assert [s.get(q) for q in (1, 2, 3)] == [F.msg_A(ref=i) for i in range(1, 4)]


def test_binaryfile_and_link_type_refused(tmp_path):
    big = tmp_path / "day.bin"
    big.write_bytes(F.binfile_bytes([F.msg_A(ref=i) for i in range(1, 20001)]))
    with pytest.raises(RewindError, match="BinaryFILE"):
        index_capture(str(big))
    raw = tmp_path / "raw.pcap"
    raw.write_bytes(F.pcap_bytes([(1, F.frame(F.mold([F.msg_A()], seq=1)))], linktype=101))
    with pytest.raises(RewindError, match="not Ethernet"):
        index_capture(str(raw))
