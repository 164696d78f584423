"""Cboe PITCH books: the C pipeline (`feedhandler replay --dump-books
--stats-json`) against the independent pure-Python reference tests/pitchref.py,
on hand-built captures (scapy layers for the messages, tests/frames.py for the
frames).  Every comparison is of the whole CSV text and of the counters; every
replay's packet ledger is checked."""

from __future__ import annotations

import os
import struct
import sys

import pytest

pytest.importorskip("scapy")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frames as F  # noqa: E402
import pitchref  # noqa: E402
from feedhandler import scapy_pitch as S  # noqa: E402
from feedhandler.core import ledger  # noqa: E402
from pitchref import PitchRef  # noqa: E402
from refbook import STRICT_KEYS  # noqa: E402
from test_books import assert_csv_equal, replay_books  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 30001
PORT_BAD = 30002
GROUP_A = F.GROUP_A
GROUP_B = F.GROUP_B
T0 = 1_700_000_000 * 1_000_000_000
STEP = 100_000  # 100 us between packets: 1 ms gap window = 10 packets
DEPTH = 10


# ------------------------------------------------------------------ capture builders


def unit_packets(u: int):
    """The packets (lists of scapy messages) of unit u, in sequence order: every
    book-affecting type, several symbols, 2 of them first seen in trades /
    status / auction messages; unit 3 ends with a Unit Clear and adds after it."""
    o = u * 1000
    s0, s1, s2, s3, s4, s5 = ("U%dAA" % u, "U%dBB" % u, "U%dCC" % u, "U%dDD" % u, "U%dEE" % u, "U%dFF" % u)
    lng = "U%dLONGX" % u  # 7 characters: expanded messages only
    px = 1_000_000 * u  # $100 * u
    P = []
    P.append(
        [
            S.PitchTime(time_seconds=34200 + u),
            S.PitchAddOrderLong(time_offset=1, order_id=o + 1, side_indicator="B", quantity=100, symbol=s0, price=px),
            S.PitchAddOrderShort(
                time_offset=2, order_id=o + 2, side_indicator="S", quantity=200, symbol=s0, price=px // 100 + 1
            ),
            S.PitchAddOrderExpanded(
                time_offset=3,
                order_id=o + 3,
                side_indicator="B",
                quantity=300,
                symbol=lng,
                price=px + 2500,
                participant_id="RTAL",
                customer_indicator="N",
            ),
        ]
    )
    P.append(
        [
            S.PitchAddOrderLong(
                time_offset=4, order_id=o + 4, side_indicator="B", quantity=50, symbol=s1, price=px - 100
            ),
            S.PitchAddOrderLong(
                time_offset=5, order_id=o + 5, side_indicator="B", quantity=70, symbol=s1, price=px - 100
            ),
            S.PitchAddOrderShort(
                time_offset=6, order_id=o + 6, side_indicator="S", quantity=10, symbol=s2, price=100 + u
            ),
            S.PitchAddOrderLong(
                time_offset=7, order_id=o + 14, side_indicator="S", quantity=40, symbol=s1, price=px + 100
            ),
            S.PitchAddOrderLong(
                time_offset=7, order_id=o + 15, side_indicator="S", quantity=45, symbol=s1, price=px + 200
            ),
        ]
    )
    P.append(
        [
            S.PitchOrderExecuted(time_offset=8, order_id=o + 1, executed_quantity=30, execution_id=o + 900),
            S.PitchOrderExecutedAtPriceSize(
                time_offset=9,
                order_id=o + 4,
                executed_quantity=20,
                remaining_quantity=30,
                execution_id=o + 901,
                price=px - 99,
            ),
            S.PitchReduceSizeLong(time_offset=10, order_id=o + 2, canceled_quantity=50),
            S.PitchReduceSizeShort(time_offset=11, order_id=o + 5, canceled_quantity=5),
        ]
    )
    P.append(
        [
            S.PitchModifyOrderLong(
                time_offset=12, order_id=o + 3, quantity=400, price=px + 2500, modify_flags=1
            ),  # qty up, same price
            S.PitchModifyOrderShort(
                time_offset=13, order_id=o + 2, quantity=100, price=px // 100 + 2, modify_flags=1
            ),  # qty down, new price
            S.PitchModifyOrderLong(
                time_offset=14, order_id=o + 6, quantity=10, price=1_010_000 + u, modify_flags=1
            ),  # long modify of a short add
            S.PitchModifyOrderLong(time_offset=14, order_id=o + 14, quantity=30, price=px + 100, modify_flags=3),
        ]
    )  # qty down, priority kept
    P.append(
        [
            S.PitchTradeLong(
                time_offset=15, order_id=0, side_indicator="B", quantity=5, symbol=s3, price=px, execution_id=o + 902
            ),
            S.PitchTradeShort(
                time_offset=16,
                order_id=0,
                side_indicator="B",
                quantity=6,
                symbol=s0,
                price=px // 100,
                execution_id=o + 903,
            ),
            S.PitchTradeExpanded(
                time_offset=17, order_id=0, side_indicator="B", quantity=7, symbol=lng, price=px, execution_id=o + 904
            ),
            S.PitchTradingStatus(time_offset=18, symbol=s4, trading_status="T"),
            S.PitchAuctionUpdate(
                time_offset=19,
                symbol=s0,
                auction_type="O",
                reference_price=px,
                buy_shares=10,
                sell_shares=20,
                indicative_price=px,
                auction_only_price=px,
            ),
            S.PitchAuctionSummary(time_offset=20, symbol=s5, auction_type="O", price=px, shares=100),
        ]
    )
    P.append(
        [
            S.PitchDeleteOrder(time_offset=21, order_id=o + 5),
            S.PitchAddOrderLong(
                time_offset=22, order_id=o + 7, side_indicator="S", quantity=500, symbol=s3, price=px * 2
            ),
            S.PitchOrderExecuted(
                time_offset=23, order_id=o + 7, executed_quantity=600, execution_id=o + 905
            ),  # clamped: the order leaves
            S.PitchAddOrderLong(
                time_offset=24, order_id=o + 8, side_indicator="S", quantity=25, symbol=s4, price=px * 3
            ),
            S.PitchTradeBreak(time_offset=25, execution_id=o + 902),
        ]
    )
    P.append(
        [
            S.PitchTime(time_seconds=34300 + u),
            S.PitchModifyOrderShort(
                time_offset=1, order_id=o + 8, quantity=0, price=px // 100, modify_flags=1
            ),  # qty 0: removed
            S.PitchAddOrderShort(
                time_offset=2, order_id=o + 9, side_indicator="B", quantity=33, symbol=s5, price=77 + u
            ),
            S.PitchAddOrderShort(
                time_offset=3, order_id=o + 10, side_indicator="B", quantity=34, symbol=s5, price=78 + u
            ),
            S.PitchReduceSizeLong(time_offset=4, order_id=o + 15, canceled_quantity=1000),
        ]
    )  # clamped
    P.append(
        [
            S.PitchModifyOrderLong(
                time_offset=5, order_id=o + 9, quantity=66, price=(79 + u) * 100, modify_flags=1
            ),  # qty up, new price
            S.PitchDeleteOrder(time_offset=6, order_id=o + 999),  # unknown order
            S.PitchAddOrderLong(
                time_offset=7, order_id=o + 11, side_indicator="B", quantity=12, symbol=s2, price=101 * 100 + u
            ),
        ]
    )
    if u == 3:
        P.append(
            [
                S.PitchAddOrderLong(
                    time_offset=8, order_id=o + 13, side_indicator="S", quantity=99, symbol=s0, price=px + 5000
                ),  # cleared by the next message
                S.PitchUnitClear(time_offset=8),
                S.PitchAddOrderLong(
                    time_offset=9, order_id=o + 12, side_indicator="B", quantity=11, symbol=s1, price=px - 300
                ),
                S.PitchDeleteOrder(time_offset=10, order_id=o + 1),
            ]
        )  # cleared already
    if u == 2:
        P.append([S.PitchEndOfSession(time_offset=11)])
    if u == 1:
        P.append([])  # a heartbeat
    return P


def datagrams(unit: int, packets, seq: int = 1):
    out = []
    for msgs in packets:
        out.append((unit, seq, S.pitch_datagram(unit, seq, msgs), msgs))
        seq += len(msgs)
    return out


def round_robin(per_unit):
    """Packets of several units interleaved one by one (each unit's order kept)."""
    out, i = [], 0
    while any(i < len(p) for p in per_unit):
        for p in per_unit:
            if i < len(p):
                out.append(p[i])
        i += 1
    return out


def multi_unit(units=(1, 2, 3), order=None):
    per = [datagrams(u, unit_packets(u)) for u in units]
    return order(per) if order else round_robin(per)


def pcap_of(dgrams, lines=("A",), drop=None, port=PORT, t0=T0, step=STEP):
    """Records (time, frame) of datagrams on lines A and/or B (B 2 us after A);
    drop = {"A": set of indexes, "B": ...} not sent on that line."""
    drop = drop or {}
    recs = []
    for i, d in enumerate(dgrams):
        payload = d[2] if isinstance(d, tuple) else d
        for k, line in enumerate(lines):
            if i in drop.get(line, ()):
                continue
            g = GROUP_A if line == "A" else GROUP_B
            recs.append((t0 + i * step + k * 2000, F.frame(payload, dst=g, dport=port)))
    return recs


def write(tmp_path, name, recs):
    p = tmp_path / name
    p.write_bytes(F.pcap_bytes(recs))
    return p


def type_counts(dgrams):
    out = {}
    for d in dgrams:
        for m in d[3]:
            k = "0x%02x" % bytes(m)[1]
            out[k] = out.get(k, 0) + 1
    return out


# ------------------------------------------------------------------ checks


def check_ledger(stats, what=""):
    lg = ledger(stats)
    assert lg["unaccounted"] == 0, "%s: packet ledger does not balance: %s" % (what, lg)
    assert lg["pkt_held"] == 0, "%s: packets still held after the run: %s" % (what, lg)


def pitch_by_type(stats):
    return {k: v for k, v in stats["by_type"].items() if k.startswith("0x") and v}


def pitch_errors(stats):
    return {k: stats["errors"].get(k, 0) for k in pitchref.ERRORS}


def check_against_ref(tmp_path, path, ref, what, venue=False):
    text, stats = replay_books(tmp_path, path, DEPTH, tag=what)
    check_ledger(stats, what)
    assert_csv_equal(text, ref.dump_csv(DEPTH, venue=venue), what)
    want = ref.stats()
    assert pitch_errors(stats) == want["errors"], what
    assert pitch_by_type(stats) == want["by_type"], what
    assert stats["messages"] == want["messages"], what
    assert stats["duplicates"] == want["duplicates"], what
    assert stats["heartbeats"] == want["heartbeats"], what
    assert stats["pitch_packets"] == want["pitch_packets"], what
    assert stats["gaps"] == want["gaps"], what
    got = {k: stats["book"].get(k) for k in STRICT_KEYS}
    exp = ref.book.book_counters(STRICT_KEYS)
    assert got == exp, "%s: book counters {C} vs {reference}:\n%s\n%s" % (what, got, exp)
    return text, stats


def reference(recs):
    return PitchRef().feed_records(recs).finish()


# ------------------------------------------------------------------ tests


def test_reference_sanity():
    """The reference on the multi-unit capture: books on every unit, the
    cleared unit holds only what came after its Unit Clear."""
    dg = multi_unit()
    ref = reference(pcap_of(dg))
    csv = ref.dump_csv(DEPTH).splitlines()
    assert csv[0] == "locate,symbol,side,level,price,shares,orders"
    units = {(int(r.split(",")[0]) - 16384) // 384 + 1 for r in csv[1:]}
    assert units == {1, 2, 3}
    u3 = [r for r in csv[1:] if (int(r.split(",")[0]) - 16384) // 384 == 2]
    # unit 3 ranks: U3AA 0, U3LONGX 1, U3BB 2, ...
    assert u3 == ["%d,U3BB,B,1,2999700,11,1" % (16384 + 2 * 384 + 2)], u3
    assert ref.errors == {k: 0 for k in pitchref.ERRORS}
    # a qty-0 modify per unit; a delete of an unknown order per unit, and unit 3's delete after its clear
    assert ref.book.counters["zero_rejected"] == 3 and ref.book.counters["unknown_ref"] == 4
    assert ref.unit_clears == 1 and ref.heartbeats == 1


def test_multi_unit_books_equal_reference(tmp_path):
    dg = multi_unit()
    recs = pcap_of(dg)
    path = write(tmp_path, "multi.pcap", recs)
    ref = reference(recs)
    text, stats = check_against_ref(tmp_path, path, ref, "multi-unit")
    counts = type_counts(dg)
    assert pitch_by_type(stats) == counts
    assert stats["messages"] == sum(counts.values())
    assert stats.get("unit_clears", 1) == 1
    assert set(counts) >= {"0x%02x" % t for t in pitchref.BOOK_TYPES} | {
        "0x2a",
        "0x2b",
        "0x30",
        "0x31",
        "0x95",
        "0x96",
        "0x2c",
        "0x20",
    }
    assert stats["gaps"] == 0 and stats["duplicates"] == 0
    assert stats["pitch_packets"] == len(dg) == stats["pkt_applied"] + 1 and stats["heartbeats"] == 1
    assert "venue" not in text.splitlines()[0]


def test_two_lines_arbitrated(tmp_path):
    """The same capture on lines A and B (other group, same port), different
    packets dropped on each, never the same on both: the single-line books."""
    dg = multi_unit()
    single = write(tmp_path, "single.pcap", pcap_of(dg))
    one, _ = replay_books(tmp_path, single, DEPTH, tag="one")
    n = len(dg)
    drop = {"A": {i for i in range(n) if i % 4 == 1}, "B": {i for i in range(n) if i % 4 == 2}}
    recs = pcap_of(dg, lines=("A", "B"), drop=drop)
    path = write(tmp_path, "ab.pcap", recs)
    ref = reference(recs)
    text, stats = check_against_ref(tmp_path, path, ref, "lines a+b")
    assert text == one
    both = [i for i in range(n) if i not in drop["A"] and i not in drop["B"] and dg[i][3]]  # heartbeats aside
    assert stats["duplicates"] == sum(len(dg[i][3]) for i in both) > 0
    assert stats["gaps"] == 0
    assert stats["pkt_duplicate"] == len(both)
    assert pitch_by_type(stats) == type_counts(dg)


def test_hole_filled_by_other_line_after_next_packet(tmp_path):
    """Line A loses a unit's packet k and its k+1 arrives before line B's k
    (B 350 us late): the packet waits within the gap window, nothing is lost."""
    dg = multi_unit()
    single = write(tmp_path, "single.pcap", pcap_of(dg))
    one, _ = replay_books(tmp_path, single, DEPTH, tag="one")
    recs = []
    for i, d in enumerate(dg):
        # units round-robin: a unit's next packet is 3 steps (300 us) later, B is 350 us late
        if not (i >= 3 and i % 4 == 0):
            recs.append((T0 + i * STEP, F.frame(d[2], dst=GROUP_A, dport=PORT)))
        recs.append((T0 + i * STEP + 350_000, F.frame(d[2], dst=GROUP_B, dport=PORT)))
    recs.sort(key=lambda r: r[0])
    path = write(tmp_path, "late-b.pcap", recs)
    text, stats = check_against_ref(tmp_path, path, reference(recs), "late line b")
    assert text == one and stats["gaps"] == 0


def test_loss_on_both_lines_flags_the_unit_stale(tmp_path):
    """A unit-2 packet lost on both lines: gaps == its messages, the books are
    the reference's (the lost messages never applied), and exactly unit 2's
    instruments are flagged STALE (slot flags and Replay.flags agree)."""
    dg = multi_unit()
    lost = [i for i, d in enumerate(dg) if d[0] == 2][3]
    n = len(dg)
    drop = {"A": {lost} | {i for i in range(n) if i % 5 == 1}, "B": {lost} | {i for i in range(n) if i % 5 == 3}}
    recs = pcap_of(dg, lines=("A", "B"), drop=drop)
    path = write(tmp_path, "lost.pcap", recs)
    ref = reference(recs)
    assert ref.gaps == len(dg[lost][3])
    text, stats = check_against_ref(tmp_path, path, ref, "lost on both")
    assert stats["gaps"] == len(dg[lost][3]) > 0

    in_slots, st = stale_set(recs)
    unit2 = set(ref.ranks[2].values())
    assert in_slots == unit2 == ref.stale_ids(), (sorted(in_slots), sorted(unit2))
    assert st["gaps"] == stats["gaps"]


def stale_set(recs):
    """(stale ids from slot flags == Replay.flags, Replay stats, books CSV) of a Python API replay."""
    shm = pytest.importorskip("feedhandler.shm")
    np = pytest.importorskip("numpy")
    from feedhandler.replay import Replay

    r = Replay()
    res = r.run_buffer(F.pcap_bytes(recs))
    assert res.ok, res.error
    r.finish()
    st = r.stats()
    check_ledger(st, "api")
    flags = r.segment().copy_books()["flags"]
    in_slots = {int(i) for i in np.nonzero(flags & shm.FLAG_STALE)[0]}
    in_book = {loc for loc in range(1, len(flags)) if r.flags(loc) & shm.FLAG_STALE}
    assert in_slots == in_book
    return in_slots, st


def test_heartbeat_reveals_a_lost_last_packet(tmp_path):
    """Unit 1's last data packet lost on both lines: only its heartbeat (Hdr
    Sequence = the next sequence) tells; gaps == the lost messages and unit 1's
    instruments are stale, no other."""
    dg = multi_unit()
    u1 = [i for i, d in enumerate(dg) if d[0] == 1]
    lost = u1[-2]
    assert dg[lost][3] and not dg[u1[-1]][3]  # the last data packet, then the heartbeat
    drop = {"A": {lost}, "B": {lost}}
    recs = pcap_of(dg, lines=("A", "B"), drop=drop)
    ref = reference(recs)
    assert ref.gaps == len(dg[lost][3])
    text, stats = check_against_ref(tmp_path, write(tmp_path, "hb.pcap", recs), ref, "heartbeat gap")
    stale, _ = stale_set(recs)
    assert stale == set(ref.ranks[1].values()) == ref.stale_ids()


def _reverse_units(per):
    return [d for p in reversed(per) for d in p]


def _skewed(per):
    """Unit 3 mostly first, then units 2 and 1 alternating, unit 3's rest in the middle."""
    a, b, c = per
    rest = round_robin([b, a])
    return c[:6] + rest[:5] + c[6:] + rest[5:]


@pytest.mark.parametrize("order", [_reverse_units, _skewed], ids=["units-reversed", "skewed"])
def test_ids_do_not_depend_on_arrival_order(tmp_path, order):
    base = multi_unit()
    one, _ = replay_books(tmp_path, write(tmp_path, "base.pcap", pcap_of(base)), DEPTH, tag="base")
    dg = multi_unit(order=order)
    assert sorted((d[0], d[1]) for d in dg) == sorted((d[0], d[1]) for d in base)
    for u in (1, 2, 3):  # each unit's order is kept
        seqs = [d[1] for d in dg if d[0] == u]
        assert seqs == sorted(seqs)
    recs = pcap_of(dg)
    text, _ = check_against_ref(tmp_path, write(tmp_path, "perm.pcap", recs), reference(recs), order.__name__)
    assert text == one


# ------------------------------------------------------------------ malformed units


def raw(m) -> bytes:
    return bytes(m)


def add(oid, sym="MAL", qty=100, price=1_000_000, side="B"):
    return raw(S.PitchAddOrderLong(order_id=oid, side_indicator=side, quantity=qty, symbol=sym, price=price))


def unit_payload(unit, seq, msgs, count=None, hdr_len=None, extra=b""):
    body = b"".join(msgs) + extra
    n = 8 + len(body)
    return (
        struct.pack("<HBBI", n if hdr_len is None else hdr_len, len(msgs) if count is None else count, unit, seq) + body
    )


def malformed_capture():
    """(payloads, expected errors): each case followed by good data, whose
    application the dump shows."""
    P, E = [], {k: 0 for k in pitchref.ERRORS}
    P.append(unit_payload(1, 1, [raw(S.PitchTime(time_seconds=34200)), add(101)]))  # next 3
    P.append(unit_payload(1, 3, [add(190)], hdr_len=99))
    E["pitch_hdr_length"] += 1
    P.append(unit_payload(1, 3, [add(191)], hdr_len=40))
    E["pitch_hdr_length"] += 1  # payload 42 != 40
    P.append(b"\x05\x00\x01")
    E["pitch_truncated"] += 1
    P.append(b"\x07\x00\x01\x01\x03\x00\x00")
    E["pitch_truncated"] += 1
    P.append(unit_payload(1, 3, [add(102), add(103)], count=3))
    E["pitch_count_overrun"] += 1  # 2 whole: next 5
    P.append(unit_payload(1, 5, [add(104), b"\x00\x21" + b"\x00" * 8], count=2))
    E["pitch_msg_overrun"] += 1
    P.append(unit_payload(1, 6, [b"\x01\x29\0\0"], count=1))
    E["pitch_msg_overrun"] += 1  # length 1
    P.append(unit_payload(1, 6, [b"\x01"], count=1))
    E["pitch_count_overrun"] += 1  # 1 byte left
    P.append(unit_payload(1, 6, [add(180)[:20]], count=1))
    E["pitch_msg_overrun"] += 1  # past the end
    P.append(unit_payload(1, 6, [add(105)], extra=b"\0\0\0"))
    E["pitch_trailing_bytes"] += 1  # next 7
    P.append(unit_payload(1, 7, [add(106), b"\x0a\x7e" + b"\x11" * 8, add(107, side="S", price=1_000_100)]))
    E["pitch_unknown_type"] += 1  # next 10
    P.append(unit_payload(1, 10, [bytes([35]) + add(181)[1:] + b"\0", add(108)]))  # 35 bytes: not 34
    E["pitch_bad_length"] += 1  # next 12
    P.append(
        unit_payload(
            1, 12, [bytes([25]) + raw(S.PitchAddOrderShort(order_id=182, quantity=5, symbol="MAL", price=50))[1:25]]
        )
    )
    E["pitch_bad_length"] += 1  # next 13
    P.append(unit_payload(1, 0, [add(183)]))
    E["pitch_unsequenced"] += 1
    # a long price past 2^32-1: not applied, its new symbol gets no rank (BIGP's later add does)
    P.append(
        unit_payload(
            1,
            13,
            [
                add(184, sym="BIGP", price=1 << 32),
                add(109, sym="NEXT", price=(1 << 32) - 1),
                add(110, sym="BIGP", price=4_000_000),
            ],
        )
    )
    E["pitch_price_range"] += 1  # next 16
    P.append(
        unit_payload(
            1,
            16,
            [
                raw(S.PitchModifyOrderLong(order_id=101, quantity=50, price=1 << 33)),
                raw(
                    S.PitchOrderExecutedAtPriceSize(
                        order_id=102, executed_quantity=10, remaining_quantity=90, price=1 << 40
                    )
                ),
            ],
        )
    )
    E["pitch_price_range"] += 2  # next 18
    # a heartbeat with bytes after the header
    P.append(unit_payload(1, 18, [], extra=b"\0\0"))
    E["pitch_trailing_bytes"] += 1
    P.append(
        unit_payload(
            1, 18, [raw(S.PitchAddOrderShort(order_id=111, side_indicator="S", quantity=10, symbol="MAL", price=200))]
        )
    )  # next 19
    P.append(unit_payload(1, 19, []))  # heartbeat
    # sequence wrap on unit 2, which starts near 2^32
    top = (1 << 32) - 3
    P.append(unit_payload(2, top, [add(201, sym="WRP")]))  # next 2^32-2
    P.append(unit_payload(2, top + 1, [add(290, sym="WRP"), add(291, sym="WRP"), add(292, sym="WRP")]))
    E["pitch_seq_wrap"] += 1
    P.append(
        unit_payload(
            2, top + 1, [add(202, sym="WRP", qty=7), raw(S.PitchReduceSizeShort(order_id=201, canceled_quantity=1))]
        )
    )
    # units outside 1..32: counted, messages counted, books untouched
    P.append(unit_payload(0, 1, [add(301, sym="UZERO")]))
    E["pitch_id_range"] += 1
    P.append(
        unit_payload(
            40,
            1,
            [add(401, sym="UFORTY"), raw(S.PitchTradingStatus(symbol="UFORTY")), raw(S.PitchDeleteOrder(order_id=401))],
        )
    )
    E["pitch_id_range"] += 2
    P.append(unit_payload(1, 19, [add(112, side="S", price=1_000_200)]))  # still applied
    return P, E


def test_malformed_units_counted_rest_applied(tmp_path):
    payloads, expect = malformed_capture()
    recs = [(T0 + i * STEP, F.frame(p, dst=GROUP_A, dport=PORT_BAD)) for i, p in enumerate(payloads)]
    path = write(tmp_path, "bad.pcap", recs)
    ref = reference(recs)
    assert ref.errors == expect, "reference disagrees with the hand count"
    text, stats = check_against_ref(tmp_path, path, ref, "malformed")
    assert pitch_errors(stats) == expect
    assert stats["gaps"] == 0
    rows = text.splitlines()[1:]
    syms = {r.split(",")[1] for r in rows}
    assert syms == {"MAL", "NEXT", "BIGP", "WRP"}, rows
    # ids: MAL rank 0, NEXT rank 1 (the out-of-range BIGP add gave none), BIGP rank 2; WRP rank 0 of unit 2
    ids = {r.split(",")[1]: int(r.split(",")[0]) for r in rows}
    assert ids == {"MAL": 16384, "NEXT": 16385, "BIGP": 16386, "WRP": 16384 + 384}
    # by hand: MAL bids 102 (100 - 10 cancelled by the out-of-range execution), 103-106, 108; 101 deleted by
    # its out-of-range modify; 190, 191, 180-184, 290-292, 301, 401 never reach a book
    assert rows == [
        "16384,MAL,B,1,1000000,590,6",
        "16384,MAL,S,1,20000,10,1",
        "16384,MAL,S,2,1000100,100,1",
        "16384,MAL,S,3,1000200,100,1",
        "16385,NEXT,B,1,4294967295,100,1",
        "16386,BIGP,B,1,4000000,100,1",
        "16768,WRP,B,1,1000000,106,2",
    ]
    assert stats["book"]["unknown_ref"] == 1  # unit 40's delete: its add had no id
    rejected = 2 + 2 + 1 + 1  # hdr length x2, truncated x2, unsequenced, wrap
    assert stats["pkt_rejected"] == rejected


@pytest.mark.parametrize(
    "case",
    [
        "hdr_length",
        "truncated",
        "count_overrun",
        "msg_len0",
        "msg_len1",
        "one_byte_left",
        "msg_past_end",
        "trailing",
        "unknown_type",
        "bad_length",
        "unsequenced",
        "seq_wrap",
        "unit0",
        "unit40",
        "price_range",
    ],
)
def test_each_malformed_case_alone(tmp_path, case):
    """One malformed unit between two good ones: its error alone is counted and
    the good units around it are applied (never a crash)."""
    good1 = unit_payload(5, 1, [add(1, sym="GOOD"), add(2, sym="GOOD", side="S", price=1_000_100)])
    seq = 3
    bad = {
        "hdr_length": (unit_payload(5, seq, [add(9)], hdr_len=20), "pitch_hdr_length", 0),
        "truncated": (b"\x06\x00\x00\x05\x03\x00", "pitch_truncated", 0),
        "count_overrun": (unit_payload(5, seq, [add(9)], count=2), "pitch_count_overrun", 1),
        "msg_len0": (unit_payload(5, seq, [b"\x00\x21"], count=1), "pitch_msg_overrun", 0),
        "msg_len1": (unit_payload(5, seq, [b"\x01\x21\0\0"], count=1), "pitch_msg_overrun", 0),
        "one_byte_left": (unit_payload(5, seq, [b"\x01"], count=1), "pitch_count_overrun", 0),
        "msg_past_end": (unit_payload(5, seq, [add(9)[:30]], count=1), "pitch_msg_overrun", 0),
        "trailing": (unit_payload(5, seq, [add(9)], extra=b"\x01"), "pitch_trailing_bytes", 1),
        "unknown_type": (unit_payload(5, seq, [b"\x05\xee\0\0\0", add(9)]), "pitch_unknown_type", 2),
        "bad_length": (unit_payload(5, seq, [bytes([33]) + add(8)[1:33], add(9)]), "pitch_bad_length", 2),
        "unsequenced": (unit_payload(5, 0, [add(9)]), "pitch_unsequenced", 0),
        "seq_wrap": (unit_payload(5, (1 << 32) - 1, [add(9), add(10)]), "pitch_seq_wrap", 0),
        "unit0": (unit_payload(0, 1, [add(9)]), "pitch_id_range", 0),
        "unit40": (unit_payload(40, 1, [add(9)]), "pitch_id_range", 0),
        "price_range": (unit_payload(5, seq, [add(9, price=(1 << 32) + 5)]), "pitch_price_range", 1),
    }[case]
    payload, err, used = bad
    good2 = unit_payload(5, seq + used, [add(3, sym="GOOD", qty=5), raw(S.PitchDeleteOrder(order_id=2))])
    recs = [(T0 + i * STEP, F.frame(p, dst=GROUP_A, dport=PORT_BAD)) for i, p in enumerate([good1, payload, good2])]
    ref = reference(recs)
    assert {k: v for k, v in ref.errors.items() if v} == {err: 1}, ref.errors
    text, stats = check_against_ref(tmp_path, write(tmp_path, case + ".pcap", recs), ref, case)
    assert {k: v for k, v in pitch_errors(stats).items() if v} == {err: 1}
    assert stats["gaps"] == 0
    good_rows = [r for r in text.splitlines()[1:] if r.split(",")[1] == "GOOD"]
    assert any(r.startswith("%d,GOOD,B,1,1000000," % (16384 + 4 * 384)) for r in good_rows), text
    assert not any(",S," in r and r.split(",")[4] == "1000100" for r in good_rows), text  # good2's delete


def test_malformed_first_datagram_does_not_decide(tmp_path):
    """The first datagram to a destination is a PITCH unit with a wrong Hdr
    Length (frames as neither protocol): it does not decide, the clean PITCH
    units after it are still PITCH and applied."""
    good = unit_payload(7, 1, [add(1, sym="FIRST"), add(2, sym="FIRST", side="S", price=1_000_100)])
    bad = unit_payload(7, 1, [add(9, sym="FIRST")], hdr_len=300)
    recs = [(T0, F.frame(bad, dst=GROUP_A, dport=PORT_BAD)), (T0 + STEP, F.frame(good, dst=GROUP_A, dport=PORT_BAD))]
    ref = reference(recs)
    text, stats = replay_books(tmp_path, write(tmp_path, "first.pcap", recs), DEPTH, tag="first")
    check_ledger(stats, "first bad")
    assert_csv_equal(text, ref.dump_csv(DEPTH), "first bad")
    assert text.splitlines()[1:] == [
        "%d,FIRST,B,1,1000000,100,1" % (16384 + 6 * 384),
        "%d,FIRST,S,1,1000100,100,1" % (16384 + 6 * 384),
    ]
    # the undecided datagram goes the MoldUDP64 way (pipeline.c fh_pipe_proto_slow): no PITCH counter sees it
    assert stats["pitch_packets"] == 1 and stats["packets"] == 2
    assert not any(v for k, v in pitch_errors(stats).items())


# ------------------------------------------------------------------ ITCH + PITCH


def test_mixed_itch_and_pitch_capture(tmp_path):
    """pcaps/sample.pcap (ITCH) merged by time with the multi-unit PITCH capture:
    the dump has the venue column; the XNAS rows are the ITCH-only replay's,
    the BATS rows the PITCH-only replay's."""
    sample = os.path.join(ROOT, "pcaps", "sample.pcap")
    if not os.path.exists(sample):
        pytest.skip("pcaps/sample.pcap not in this checkout")
    itch = F.parse_pcap(open(sample, "rb").read())
    lo, hi = itch[0][0], itch[-1][0]
    dg = multi_unit()
    step = max(1, min(STEP, (hi - lo) // (len(dg) + 2)))
    precs = pcap_of(dg, t0=lo + step, step=step)
    mixed = sorted(itch + precs, key=lambda r: r[0])
    itch_text, itch_stats = replay_books(tmp_path, sample, DEPTH, tag="itch")
    check_ledger(itch_stats, "itch only")
    ref = reference(precs)
    pitch_text, _ = check_against_ref(tmp_path, write(tmp_path, "pitch.pcap", precs), ref, "pitch only")
    text, stats = replay_books(tmp_path, write(tmp_path, "mixed.pcap", mixed), DEPTH, tag="mixed")
    check_ledger(stats, "mixed")
    lines = text.splitlines()
    assert lines[0] == "locate,symbol,side,level,price,shares,orders,venue"
    xnas = [ln.rsplit(",", 1)[0] for ln in lines[1:] if ln.endswith(",XNAS")]
    bats = [ln.rsplit(",", 1)[0] for ln in lines[1:] if ln.endswith(",BATS")]
    assert len(xnas) + len(bats) == len(lines) - 1
    assert xnas == itch_text.splitlines()[1:] and xnas
    assert bats == pitch_text.splitlines()[1:] and bats
    assert text == ref_mixed(itch_text, ref)
    assert pitch_by_type(stats) == type_counts(dg)
    assert stats["messages"] == itch_stats["messages"] + sum(type_counts(dg).values())


def ref_mixed(itch_text, ref):
    """The mixed dump from the ITCH-only dump and the PITCH reference: rows by
    locate (ITCH locates are below the PITCH ids), venue last."""
    rows = [ln + ",XNAS" for ln in itch_text.splitlines()[1:]]
    rows += ref.dump_csv(DEPTH, venue=True).splitlines()[1:]
    return "\n".join(["locate,symbol,side,level,price,shares,orders,venue"] + rows) + "\n"


# ------------------------------------------------------------------ two PITCH venues, a config, cores

CONFIG = """
[[channel]]
name = "bzx"
protocol = "pitch"
venue = "BZX"
line_a = "%s:%d"
line_b = "%s:%d"
core = 0

[[channel]]
name = "edgx"
protocol = "pitch"
venue = "EDGX"
line_a = "233.1.1.1:%d"
core = %d
"""


@pytest.mark.parametrize("cores", [None, "0,1"])
def test_two_venues_from_a_config(tmp_path, cores):
    """The multi-unit capture on two PITCH venues (BZX on A/B lines, EDGX on
    one line, the same order ids and symbols on both): the venues' books stay
    apart, EDGX ids are BZX's + 12288 (venue rank 1), and one core or two give
    the same dump."""
    if cores and (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    dg = multi_unit()
    n = len(dg)
    drop = {"A": {i for i in range(n) if i % 3 == 1}, "B": {i for i in range(n) if i % 3 == 2}}
    a = pcap_of(dg, lines=("A", "B"), drop=drop)
    e = [(t + 500, F.frame(d[2], dst="233.1.1.1", dport=PORT + 2)) for t, d in zip(range(T0, T0 + n * STEP, STEP), dg)]
    recs = sorted(a + e, key=lambda r: r[0])
    path = write(tmp_path, "two.pcap", recs)
    cfg = tmp_path / "two.toml"
    cfg.write_text(CONFIG % (GROUP_A, PORT, GROUP_B, PORT, PORT + 2, 1 if cores else 0))
    extra = ["--config", cfg] + (["--cores", cores] if cores else [])
    text, stats = replay_books(tmp_path, path, DEPTH, extra=extra, tag="two")
    check_ledger(stats, "two venues")
    bzx = PitchRef(0, "BZX", ports=[PORT]).feed_records(recs).finish()
    edgx = PitchRef(1, "EDGX", ports=[PORT + 2]).feed_records(recs).finish()
    rows = bzx.dump_csv(DEPTH, venue=True).splitlines()[1:] + edgx.dump_csv(DEPTH, venue=True).splitlines()[1:]
    want = "\n".join(["locate,symbol,side,level,price,shares,orders,venue"] + rows) + "\n"
    assert_csv_equal(text, want, "two venues")
    shifted = [
        ",".join([str(int(r.split(",")[0]) + 12288)] + r.split(",")[1:-1] + ["EDGX"])
        for r in bzx.dump_csv(DEPTH, venue=True).splitlines()[1:]
    ]
    assert edgx.dump_csv(DEPTH, venue=True).splitlines()[1:] == shifted
    assert pitch_by_type(stats) == {k: 2 * v for k, v in type_counts(dg).items()}
    assert stats["gaps"] == 0


# ------------------------------------------------------------------ order ids are unique per venue only


def test_pitch_order_id_with_top_bits_does_not_meet_an_itch_ref(tmp_path):
    """ITCH adds ref 5 and later deletes it; between the two a PITCH unit adds
    order id 2^60 | 5.  The PITCH order must survive the ITCH delete."""
    itch = [
        (T0, F.frame(F.mold([F.msg_A(ref=5, shares=100, price=1_500_000, locate=1)], seq=1), dport=F.PORT)),
        (T0 + 2000, F.frame(F.mold([F.msg_D(ref=5, locate=1)], seq=2), dport=F.PORT)),
    ]
    pitch = [
        (
            T0 + 1000,
            F.frame(unit_payload(1, 1, [add((1 << 60) | 5, sym="ZZZ", side="S", qty=7, price=2_000_000)]), dport=PORT),
        )
    ]
    text, stats = replay_books(tmp_path, write(tmp_path, "bit60.pcap", sorted(itch + pitch)), DEPTH, tag="bit60")
    check_ledger(stats, "bit60")
    assert stats["book"]["add_replaced"] == 0
    assert text.splitlines()[1:] == ["16384,ZZZ,S,1,2000000,7,1,BATS"]


def test_pitch_order_id_equal_to_an_itch_ref_is_another_order(tmp_path):
    """The same number as an ITCH reference and a PITCH order id: two orders
    (the books key orders by reference and venue); deleting one leaves the other."""
    itch = [
        (T0, F.frame(F.mold([F.msg_A(ref=5, shares=100, price=1_500_000, locate=1)], seq=1), dport=F.PORT)),
        (T0 + 2000, F.frame(F.mold([F.msg_D(ref=5, locate=1)], seq=2), dport=F.PORT)),
    ]
    pitch = [
        (T0 + 1000, F.frame(unit_payload(1, 1, [add(5, sym="ZZZ", side="S", qty=7, price=2_000_000)]), dport=PORT))
    ]
    text, stats = replay_books(tmp_path, write(tmp_path, "same5.pcap", sorted(itch + pitch)), DEPTH, tag="same5")
    check_ledger(stats, "same5")
    assert stats["book"]["add_replaced"] == 0 and stats["book"]["unknown_ref"] == 0
    assert stats["book"]["deletes"] == 1 and stats["book"]["orders_live"] == 1
    assert text.splitlines()[1:] == ["16384,ZZZ,S,1,2000000,7,1,BATS"]
