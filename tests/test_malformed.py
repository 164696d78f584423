"""Hostile input: every malformed frame, datagram, block and message is skipped
and counted by reason; nothing crashes (these also run under ASan + UBSan)."""

import random

import pytest

from feedhandler.core import decode_frame
from feedhandler.replay import Replay
from frames import block, frame, mold, msg_A, msg_D, msg_S, pcap_bytes

GOOD = [msg_A(ref=1), msg_D(ref=1), msg_S()]


def errors_of(f):
    msgs, st = decode_frame(f)
    return msgs, st["errors"]


def test_good_frame_decodes_all():
    msgs, errs = errors_of(frame(mold(GOOD)))
    assert [m["type"] for m in msgs] == ["A", "D", "S"] and errs == {}


@pytest.mark.parametrize("vlans", [(100,), (100, 200)])
def test_vlan_and_qinq(vlans):
    msgs, errs = errors_of(frame(mold(GOOD), vlans=vlans))
    assert len(msgs) == 3 and errs == {}


def test_ip_options():
    msgs, errs = errors_of(frame(mold(GOOD), ip_options=b"\x01\x01\x01\x00" * 3))
    assert len(msgs) == 3 and errs == {}


CASES = {
    "eth_truncated": frame(mold(GOOD))[:13],
    "vlan_truncated": frame(mold(GOOD), vlans=(1,))[:16],
    "vlan_three_tags": frame(mold(GOOD), vlans=(1, 2, 3), vlan_tpid=(0x88A8, 0x8100, 0x8100)),
    "arp": frame(b"\0" * 28, ethertype=0x0806),
    "ipv6": frame(b"\0" * 40, ethertype=0x86DD),
    "ethertype_other": frame(b"\0" * 40, ethertype=0x88CC),
    "ip_truncated": frame(mold(GOOD))[: 14 + 19],
    "ip_bad_version": frame(mold(GOOD), version=6),
    "ip_bad_header_length_small": frame(mold(GOOD), ihl=4),
    "ip_bad_header_length_past": frame(b"", ihl=15)[: 14 + 40],
    "ip_bad_total_length_past": frame(mold(GOOD), ip_total=3000),
    "ip_bad_total_length_small": frame(mold(GOOD), ip_total=12),
    "ip_fragment_mf": frame(mold(GOOD), flags_frag=0x2000),
    "ip_fragment_offset": frame(mold(GOOD), flags_frag=0x0010),
    "ip_not_udp": frame(mold(GOOD), proto=6),
    "udp_truncated": frame(b"", ip_total=20 + 7)[: 14 + 27],
    "udp_bad_length_small": frame(mold(GOOD), udp_len=7),
    "udp_bad_length_past": frame(mold(GOOD), udp_len=2000),
    "mold_truncated": frame(mold(GOOD)[:19]),
}
EXPECT = {
    "vlan_three_tags": "vlan_truncated",
    "ip_bad_header_length_small": "ip_bad_header_length",
    "ip_bad_header_length_past": "ip_bad_header_length",
    "ip_bad_total_length_past": "ip_bad_total_length",
    "ip_bad_total_length_small": "ip_bad_total_length",
    "ip_fragment_mf": "ip_fragment",
    "ip_fragment_offset": "ip_fragment",
    "udp_bad_length_small": "udp_bad_length",
    "udp_bad_length_past": "udp_bad_length",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_rejected_by_reason(name):
    msgs, errs = errors_of(CASES[name])
    assert msgs == []
    assert errs == {EXPECT.get(name, name): 1}


def test_count_past_payload_keeps_good_prefix():
    msgs, errs = errors_of(frame(mold(GOOD, count=5)))
    assert len(msgs) == 3 and errs == {"mold_count_overrun": 1}


def test_block_past_end_keeps_good_prefix():
    raw = block(msg_A(ref=1)) + block(msg_D(ref=1), length=200)
    msgs, errs = errors_of(frame(mold(count=2, raw_blocks=raw)))
    assert [m["type"] for m in msgs] == ["A"] and errs == {"mold_block_overrun": 1}


@pytest.mark.parametrize("short", [1, 4, 8])
def test_last_block_a_few_bytes_short(short):
    """A block whose length fits its type but runs a few bytes past the datagram:
    rejected before any field is read (ASan build: any read past the frame aborts)."""
    raw = block(msg_A(ref=1)) + block(msg_D(ref=2))[:-short]
    msgs, errs = errors_of(frame(mold(count=2, raw_blocks=raw)))
    assert [m["type"] for m in msgs] == ["A"] and errs == {"mold_block_overrun": 1}


def test_zero_length_block_skipped():
    raw = block(msg_A(ref=1)) + block(b"") + block(msg_D(ref=1))
    msgs, errs = errors_of(frame(mold(count=3, raw_blocks=raw)))
    assert [m["type"] for m in msgs] == ["A", "D"] and errs == {"mold_zero_length_block": 1}


def test_trailing_bytes_counted():
    raw = block(msg_A(ref=1)) + b"\x00\x05abc"
    msgs, errs = errors_of(frame(mold(count=1, raw_blocks=raw)))
    assert len(msgs) == 1 and errs == {"mold_trailing_bytes": 1}


def test_known_type_wrong_length():
    raw = block(msg_A(ref=1)[:-1]) + block(msg_A(ref=2) + b"\0") + block(msg_D(ref=3))
    msgs, errs = errors_of(frame(mold(count=3, raw_blocks=raw)))
    assert [m["type"] for m in msgs] == ["D"] and errs == {"itch_bad_length": 2}


def test_unknown_type_skipped_by_length():
    raw = block(b"Z" + b"\x11" * 30) + block(b"a" + b"\0" * 10) + block(msg_D(ref=3))
    msgs, errs = errors_of(frame(mold(count=3, raw_blocks=raw)))
    assert [m["type"] for m in msgs] == ["D"] and errs == {"itch_unknown_type": 2}


def test_heartbeat_and_end_of_session():
    _, st = decode_frame(frame(mold(count=0, seq=5)))
    assert st["heartbeats"] == 1 and st["messages"] == 0 and st["errors"] == {}
    _, st = decode_frame(frame(mold(count=0xFFFF, seq=5)))
    assert st["end_of_session"] == 1 and st["errors"] == {}
    _, st = decode_frame(frame(mold(count=0, seq=5) + b"xx"))
    assert st["errors"] == {"mold_trailing_bytes": 1}


def test_random_garbage_frames_never_crash():
    rnd = random.Random(1234)
    total = 0
    for _ in range(20000):
        n = rnd.choice([0, 1, 13, 14, 20, 34, 42, 62, rnd.randrange(0, 1600)])
        f = bytes(rnd.getrandbits(8) for _ in range(n))
        msgs, st = decode_frame(f)
        total += st["packets"]
    assert total == 20000


def test_mutated_frames_never_crash():
    """Bit flips, truncations and splices of a valid frame: counted, never a crash."""
    rnd = random.Random(99)
    base = bytearray(frame(mold([msg_A(ref=i) for i in range(10)] + GOOD)))
    decoded = 0
    for _ in range(20000):
        f = bytearray(base)
        for _ in range(rnd.randrange(1, 6)):
            op = rnd.randrange(3)
            if op == 0 and f:
                f[rnd.randrange(len(f))] ^= 1 << rnd.randrange(8)
            elif op == 1:
                f = f[: rnd.randrange(len(f) + 1)]
            else:
                i = rnd.randrange(len(f) + 1)
                f = f[:i] + f[i : i + rnd.randrange(40)] * 2 + f[i:]
        msgs, st = decode_frame(bytes(f))
        decoded += len(msgs)
    assert decoded > 0


# ---------------------------------------------------------------- sequencing


def replay_frames(frames):
    r = Replay(mode="decode")
    res = r.run_buffer(pcap_bytes((1_700_000_000_000_000_000 + i, f) for i, f in enumerate(frames)))
    assert res.ok, res.error
    r.finish()
    return r.stats()


def test_gap_counted():
    st = replay_frames([frame(mold([msg_A(ref=1)], seq=1)), frame(mold([msg_A(ref=5)], seq=5))])
    assert st["gaps"] == 3 and st["messages"] == 2


def test_ab_copies_are_duplicates():
    p1 = mold([msg_A(ref=1), msg_A(ref=2)], seq=1)
    p2 = mold([msg_D(ref=1)], seq=3)
    st = replay_frames([frame(p1), frame(p1, dst="233.49.196.111"), frame(p2, dst="233.49.196.111"), frame(p2)])
    assert st["messages"] == 3 and st["duplicates"] == 3 and st["gaps"] == 0 and st["streams"] == 1


def test_partial_overlap_applies_only_new():
    st = replay_frames(
        [
            frame(mold([msg_A(ref=1), msg_A(ref=2)], seq=1)),
            frame(mold([msg_A(ref=2), msg_A(ref=3), msg_A(ref=4)], seq=2)),
        ]
    )
    assert st["messages"] == 4 and st["duplicates"] == 1 and st["by_type"] == {"A": 4}


def test_heartbeat_reveals_gap():
    st = replay_frames([frame(mold([msg_A(ref=1)], seq=1)), frame(mold(count=0, seq=4))])
    assert st["gaps"] == 2 and st["heartbeats"] == 1


def test_short_packet_does_not_hide_retransmit():
    # count says 3 but only 1 block present: the two missing are not "received".
    st = replay_frames([frame(mold([msg_A(ref=1)], seq=1, count=3)), frame(mold([msg_A(ref=2), msg_A(ref=3)], seq=2))])
    assert st["messages"] == 3 and st["duplicates"] == 0 and st["errors"] == {"mold_count_overrun": 1}


def test_sessions_are_separate_streams():
    st = replay_frames(
        [
            frame(mold([msg_A(ref=1)], seq=1, session=b"SESSIONAAA")),
            frame(mold([msg_A(ref=1)], seq=1, session=b"SESSIONBBB")),
        ]
    )
    assert st["messages"] == 2 and st["duplicates"] == 0 and st["streams"] == 2


# ------------------------------------------------------ A/B arbitration window


def replay_timed(frames, finish=True, **kw):
    """frames: list of (capture ns offset, frame)."""
    r = Replay(mode="decode", **kw)
    res = r.run_buffer(pcap_bytes((1_700_000_000_000_000_000 + t, f) for t, f in frames))
    assert res.ok, res.error
    if finish:
        r.finish()
    return r.stats()


B = "233.49.196.111"


def test_line_a_loss_filled_by_late_b_copy_is_not_a_gap():
    p1 = mold([msg_A(ref=1)], seq=1)
    p2 = mold([msg_A(ref=2)], seq=2)
    p3 = mold([msg_A(ref=3)], seq=3)
    # A loses p2 and its p3 arrives before B's p2.
    st = replay_timed(
        [
            (0, frame(p1)),
            (100, frame(p1, dst=B)),
            (1000, frame(p3)),
            (2000, frame(p2, dst=B)),
            (3000, frame(p3, dst=B)),
        ],
        finish=False,
    )
    assert st["gaps"] == 0 and st["messages"] == 3 and st["duplicates"] == 2


def test_hole_not_filled_within_window_is_a_gap():
    p = [mold([msg_A(ref=i)], seq=i) for i in range(1, 6)]
    # seq 2 never comes; 3 and 4 are held, then the window (1 ms) passes at seq 5.
    st = replay_timed(
        [(0, frame(p[0])), (10_000, frame(p[2])), (20_000, frame(p[3])), (2_000_000, frame(p[4]))], finish=False
    )
    assert st["gaps"] == 1 and st["messages"] == 4


def test_held_packets_wait_for_the_window_then_apply_in_order():
    p = [mold([msg_A(ref=i)], seq=i) for i in range(1, 5)]
    st = replay_timed([(0, frame(p[0])), (10, frame(p[3])), (20, frame(p[2]))], finish=False)
    assert st["messages"] == 1 and st["gaps"] == 0  # 3 and 4 held behind the hole at 2
    st = replay_timed([(0, frame(p[0])), (10, frame(p[3])), (20, frame(p[2]))], finish=True)
    assert st["messages"] == 3 and st["gaps"] == 1  # end of input: the hole is given up


def test_heartbeat_hole_filled_by_other_line():
    p1 = mold([msg_A(ref=1)], seq=1)
    p2 = mold([msg_A(ref=2)], seq=2)
    st = replay_timed([(0, frame(p1)), (100, frame(mold(count=0, seq=3))), (200, frame(p2, dst=B))])
    assert st["gaps"] == 0 and st["messages"] == 2 and st["heartbeats"] == 1


def test_gap_window_is_configurable():
    p = [mold([msg_A(ref=i)], seq=i) for i in range(1, 4)]
    frames = [(0, frame(p[0])), (10_000, frame(p[2])), (60_000, frame(p[1], dst=B))]
    assert replay_timed(frames)["gaps"] == 0  # 50 us late: within 1 ms
    st = replay_timed(frames, gap_window_us=20)  # 20 us window: too late
    # Declared lost when seq 2 came 50 us late: not applied out of order, and
    # counted late (it was never applied), not as a copy.
    assert st["gaps"] == 1 and st["late"] == 1 and st["pkt_late"] == 1 and st["duplicates"] == 0
    assert st["messages"] == 2


def test_full_gap_buffer_gives_up_early_and_loses_nothing_more():
    p = [mold([msg_A(ref=i)], seq=i) for i in range(1, 8)]
    # seq 2 lost on both lines; 3..7 arrive; only 2 packets can be held.
    frames = [(0, frame(p[0]))] + [(10 * i, frame(p[i])) for i in range(2, 7)]
    st = replay_timed(frames, gap_buffer=2)
    assert st["errors"].get("gap_buffer_full", 0) >= 1
    assert st["gaps"] == 1 and st["messages"] == 6


def test_silent_stream_hole_expires_on_other_traffic():
    """A stream that goes quiet after a hole still gets its gap declared once
    receive time has moved past the window (checked every few thousand frames)."""
    s1 = [mold([msg_A(ref=i)], seq=i, session=b"SESSIONAAA") for i in range(1, 4)]
    other = [mold([msg_D(ref=i)], seq=i, session=b"SESSIONBBB") for i in range(1, 6001)]
    frames = [(0, frame(s1[0])), (10, frame(s1[2]))] + [(2_000_000 + i, frame(o)) for i, o in enumerate(other)]
    st = replay_timed(frames, finish=False)
    assert st["gaps"] == 1 and st["messages"] == 2 + 6000


def test_session_change_on_a_line_is_counted():
    st = replay_timed(
        [
            (0, frame(mold([msg_A(ref=1)], seq=1, session=b"SESSION001"))),
            (10, frame(mold(count=0xFFFF, seq=2, session=b"SESSION001"))),
            (20, frame(mold([msg_A(ref=2)], seq=1, session=b"SESSION002"))),
            (30, frame(mold([msg_A(ref=3)], seq=2, session=b"SESSION002"))),
        ]
    )
    assert st["session_changes"] == 1 and st["streams"] == 2 and st["end_of_session"] == 1
    assert st["messages"] == 3 and st["gaps"] == 0 and st["duplicates"] == 0


def test_silence_counted_once_per_quiet_spell():
    f = [(0, frame(mold([msg_A(ref=1)], seq=1)))]
    f += [(5_000_000_000, frame(mold(count=0, seq=2)))]  # 5 s quiet, then a heartbeat
    f += [
        (5_000_000_000 + i * 1_000_000, frame(mold([msg_A(ref=i)], seq=i, session=b"OTHERSESS1"))) for i in range(1, 3)
    ]
    st = replay_timed(f, silence_ms=1000)
    assert st["silences"] == 1
