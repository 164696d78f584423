"""The packet ledger: every frame (BinaryFILE record) counted in `packets`
ends in exactly one place,

    packets == pkt_rejected + heartbeats + end_of_session
               + pkt_applied + pkt_duplicate + pkt_held

and each part is checked here against what the test itself put in the input."""

import os
import random
import subprocess
import sys

import pytest

import frames as F
from feedhandler.core import ledger
from feedhandler.replay import Replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(max_orders=1 << 14, max_levels=1 << 16, max_instruments=64, ring_events=1 << 12)
T0 = 1_700_000_000_000_000_000


def run(records, **kw):
    r = Replay(**{**SMALL, **kw})
    res = r.run_buffer(F.pcap_bytes(records))
    r.finish()
    return res, r.stats()


def balanced(st):
    lg = ledger(st)
    assert lg["unaccounted"] == 0, lg
    return lg


def pkt(seq, n, dst=F.GROUP_A, session=F.SESSION, ref0=None):
    ref0 = seq * 10 if ref0 is None else ref0
    return F.frame(F.mold([F.msg_A(ref=ref0 + i) for i in range(n)], seq=seq, session=session), dst=dst)


def test_every_kind_of_frame_lands_once():
    recs, t = [], T0
    want = dict(pkt_rejected=0, heartbeats=0, end_of_session=0, pkt_applied=0, pkt_duplicate=0, pkt_held=0)

    def add(fr, part):
        nonlocal t
        t += 1000
        recs.append((t, fr))
        want[part] += 1

    add(pkt(1, 3), "pkt_applied")
    add(pkt(1, 3, dst=F.GROUP_B), "pkt_duplicate")  # the B line's copy
    add(F.frame(F.mold([], seq=4, count=0)), "heartbeats")
    add(pkt(4, 2), "pkt_applied")
    add(F.frame(b"\x00" * 5), "pkt_rejected")  # UDP payload too short for MoldUDP64
    add(F.frame(F.mold([F.msg_A()], seq=6), proto=6), "pkt_rejected")  # TCP
    add(b"\x01\x02\x03", "pkt_rejected")  # shorter than Ethernet
    add(F.frame(F.mold([F.msg_A()], seq=6), ethertype=0x86DD), "pkt_rejected")  # IPv6
    add(F.frame(F.mold([F.msg_A(ref=600)], seq=6, count=3)), "pkt_applied")  # count overrun: applied in part
    add(F.frame(F.mold([], seq=9, count=0xFFFF)), "end_of_session")
    res, st = run(recs)
    assert res.ok
    lg = balanced(st)
    assert {k: lg[k] for k in want} == want
    assert st["errors"]["mold_count_overrun"] == 1


def test_held_packets_are_counted_until_the_hole_fills():
    recs = [(T0 + 1000, pkt(1, 2)), (T0 + 2000, pkt(5, 2)), (T0 + 3000, pkt(7, 1))]
    r = Replay(**SMALL)
    r.run_buffer(F.pcap_bytes(recs))
    st = r.stats()
    lg = balanced(st)
    assert lg["pkt_held"] == 2 and lg["pkt_applied"] == 1  # 5 and 7 wait behind the hole at 3
    r.finish()  # the hole is given up: they are applied
    lg = balanced(r.stats())
    assert lg["pkt_held"] == 0 and lg["pkt_applied"] == 3 and r.stats()["gaps"] == 2


def test_hole_filled_by_the_other_line():
    recs = [
        (T0 + 1000, pkt(1, 2)),
        (T0 + 2000, pkt(5, 1)),
        (T0 + 3000, pkt(3, 2, dst=F.GROUP_B)),
        (T0 + 4000, pkt(5, 1, dst=F.GROUP_B)),
        (T0 + 5000, pkt(3, 2)),
    ]
    res, st = run(recs)
    lg = balanced(st)
    assert (lg["pkt_applied"], lg["pkt_duplicate"], lg["pkt_held"]) == (3, 2, 0) and st["gaps"] == 0


def test_gap_buffer_full():
    recs = [(T0 + 1000, pkt(1, 1))] + [(T0 + 2000 + i, pkt(3 + i, 1)) for i in range(6)]
    res, st = run(recs, gap_buffer=2)
    lg = balanced(st)
    assert st["errors"]["gap_buffer_full"] >= 1 and lg["pkt_applied"] == 7 and lg["pkt_held"] == 0


def test_unconfigured_groups_are_rejected(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[channel]]\nname = "one"\nline_a = "%s:%d"\ncore = 0\n' % (F.GROUP_A, F.PORT))
    from feedhandler.config import load

    recs = [(T0 + 1000, pkt(1, 2)), (T0 + 2000, pkt(1, 2, dst="233.1.1.1")), (T0 + 3000, pkt(3, 1))]
    res, st = run(recs, channels=load(str(cfg)))
    lg = balanced(st)
    assert lg["pkt_rejected"] == 1 and st["errors"]["unconfigured_group"] == 1 and lg["pkt_applied"] == 2


def test_binfile_records():
    data = F.binfile_bytes([F.msg_A(ref=1), F.msg_D(ref=1)]) + b"\x00\x00" + F.binfile_bytes([F.msg_A(ref=2)])
    r = Replay(**SMALL)
    r.run_buffer(data)
    r.finish()
    lg = balanced(r.stats())
    assert (lg["packets"], lg["pkt_applied"], lg["pkt_rejected"]) == (4, 3, 1)


@pytest.mark.parametrize("cores", [None, [0, 1]])
def test_fixtures_balance(cores):
    if cores and (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    for name in ("sample.pcap", "sample_ab.pcap", "sample.bin.gz"):
        r = Replay(cores=cores, **SMALL)
        assert r.run_file(os.path.join(ROOT, "pcaps", name), progress=False).ok
        r.finish()
        lg = balanced(r.stats())
        assert lg["pkt_held"] == 0 and lg["packets"] > 0


def test_random_mix_of_loss_reorder_and_copies():
    rnd = random.Random(5)
    seqs, seq = [], 1
    for _ in range(300):
        n = rnd.randint(1, 4)
        seqs.append((seq, n))
        seq += n
    recs, t = [], T0
    for s, n in seqs:
        for dst in (F.GROUP_A, F.GROUP_B):
            if rnd.random() < 0.15:
                continue  # lost on this line
            t += rnd.randint(100, 3000)
            recs.append((t, pkt(s, n, dst=dst)))
    rnd.shuffle(recs[50:90])  # a stretch out of order
    recs = [(T0 + i * 1000, fr) for i, (_, fr) in enumerate(recs)]
    res, st = run(recs)
    lg = balanced(st)
    assert lg["pkt_held"] == 0 and lg["packets"] == len(recs)


def test_cli_prints_where_packets_went():
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            os.path.join(ROOT, "pcaps", "sample_ab.pcap"),
            "--silence-ms",
            "120000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if "where they went" in l)
    assert "UNACCOUNTED" not in line and "duplicate" in line


def test_capture_clock_stepping_back_does_not_expire_holes():
    """A hole opened at t, filled by a frame stamped before t (merged
    interfaces, a clock step): the receive clock is held at t, so the hole is
    filled, not given up as if the window had passed (an unsigned difference
    once made every such hole 'expired')."""
    recs = [(T0 + 5_000, pkt(1, 2)), (T0 + 6_000, pkt(5, 1)), (T0 + 1_000, pkt(3, 2)), (T0 + 7_000, pkt(6, 1))]
    res, st = run(recs)
    lg = balanced(st)
    assert st["gaps"] == 0 and st["messages"] == 6 and st["rx_time_back"] == 1 and lg["pkt_applied"] == 4


def test_corrupt_far_ahead_sequence_does_not_poison_the_stream():
    """One datagram whose sequence number is corrupt (2^40) while the stream
    goes on in sequence: once its hole is given up it is dropped as
    implausible, and every genuine packet after it is applied (it used to
    move the stream to 2^40 and make the rest 'duplicates')."""
    recs, t, seq = [], T0, 1
    for i in range(40):
        t += 1_000_000  # 1 ms apart: the gap window passes
        recs.append((t, pkt(seq, 2)))
        seq += 2
        if i == 5:
            recs.append((t + 10, pkt(1 << 40, 1, ref0=999_999)))
    res, st = run(recs)
    lg = balanced(st)
    assert st["messages"] == 80 and st["gaps"] == 0 and st["duplicates"] == 0
    assert st["errors"]["mold_seq_implausible"] == 1 and lg["pkt_rejected"] == 1 and lg["pkt_applied"] == 40


def test_a_real_jump_is_still_a_gap():
    """Far ahead, but nothing comes in sequence meanwhile: that is loss (both
    lines missed it), counted as a gap, and the stream moves on."""
    recs = [(T0 + 1000, pkt(1, 2)), (T0 + 2_000_000, pkt(1 << 30, 2)), (T0 + 4_000_000, pkt((1 << 30) + 2, 2))]
    res, st = run(recs)
    lg = balanced(st)
    assert st["gaps"] == (1 << 30) - 3 and st["messages"] == 6 and "mold_seq_implausible" not in st["errors"]
    assert lg["pkt_applied"] == 3


def test_sequence_that_would_wrap_is_rejected():
    recs = [(T0 + 1000, pkt(1, 2)), (T0 + 2000, pkt((1 << 64) - 2, 3, ref0=7)), (T0 + 3000, pkt(3, 1))]
    res, st = run(recs)
    lg = balanced(st)
    assert st["errors"]["mold_seq_implausible"] == 1 and lg["pkt_rejected"] == 1 and st["messages"] == 3
