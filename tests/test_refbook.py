"""Self-checks of the reference book (tests/refbook.py) on hand-computed cases,
so that the book-correctness tests compare the C book against something known
to be right.  Pure Python: runs without the C book."""

from __future__ import annotations

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frames  # noqa: E402
from bookdays import (  # noqa: E402
    capacity_day,
    edge_day,
    extremes_day,
    fuzz_day,
    msg_A,
    msg_B,
    msg_C,
    msg_D,
    msg_E,
    msg_F,
    msg_H,
    msg_P,
    msg_Q,
    msg_R,
    msg_S,
    msg_U,
    msg_X,
    pcap_of,
)
from refbook import CSV_HEADER, ITCH_LEN, RefBook, iter_binfile  # noqa: E402


def book(*msgs, **kw):
    b = RefBook(**kw).feed(msgs)
    b.check_invariants()
    return b


def rows(b, depth=10):
    return b.dump_csv(depth).splitlines()[1:]


def test_builders_have_itch_lengths():
    made = {
        "A": msg_A(1),
        "F": msg_F(1),
        "E": msg_E(1, 1),
        "C": msg_C(1, 1, 1),
        "X": msg_X(1, 1),
        "D": msg_D(1),
        "U": msg_U(1, 2, 3, 4),
        "R": msg_R(1, "A"),
        "H": msg_H(1, "A"),
        "P": msg_P(1, b"B", 1, "A", 1, 1),
        "Q": msg_Q(1, "A", 1, 1),
        "B": msg_B(1),
        "S": msg_S(b"O"),
    }
    for t, m in made.items():
        assert chr(m[0]) == t and len(m) == ITCH_LEN[t], t
    assert struct.unpack(">H", msg_A(1, locate=513)[1:3])[0] == 513
    assert msg_R(7, "AB")[11:19] == b"AB      "


def test_levels_aggregate_and_sort():
    b = book(
        msg_R(1, "AAPL"),
        msg_A(1, b"B", 100, 1_000_000),
        msg_A(2, b"B", 50, 1_000_000),
        msg_A(3, b"B", 10, 1_000_100),
        msg_A(4, b"S", 30, 1_000_300),
        msg_F(5, b"S", 20, 1_000_200),
        msg_A(6, b"S", 5, 1_000_200),
    )
    assert b.dump_csv(10) == (
        CSV_HEADER + "\n"
        "1,AAPL,B,1,1000100,10,1\n"
        "1,AAPL,B,2,1000000,150,2\n"
        "1,AAPL,S,1,1000200,25,2\n"
        "1,AAPL,S,2,1000300,30,1\n"
    )
    assert rows(b, 1) == ["1,AAPL,B,1,1000100,10,1", "1,AAPL,S,1,1000200,25,2"]


def test_rows_ordered_by_locate_side_level_and_symbol_blank_without_R():
    b = book(
        msg_R(2, "MSFT"),
        msg_A(1, b"S", 1, 5, locate=3),
        msg_A(2, b"B", 1, 7, locate=2),
        msg_A(3, b"S", 2, 9, locate=2),
        msg_A(4, b"B", 3, 4, locate=3),
        msg_R(10, "NONE"),
    )
    assert rows(b) == ["2,MSFT,B,1,7,1,1", "2,MSFT,S,1,9,2,1", "3,,B,1,4,3,1", "3,,S,1,5,1,1"]


def test_execute_cancel_delete_and_clamps():
    b = book(
        msg_A(1, b"B", 100, 10),
        msg_A(2, b"B", 100, 10),
        msg_E(1, 30),  # 70 left
        msg_C(1, 20, 99, b"N"),  # 50 left, C's own price does not matter
        msg_X(1, 10),  # 40 left
        msg_E(2, 250),  # clamps: order 2 gone
        msg_A(3, b"S", 5, 11),
        msg_X(3, 6),  # clamps: gone
        msg_A(4, b"S", 5, 12),
        msg_C(4, 9, 12, b"Y"),  # clamps: gone
        msg_A(5, b"S", 5, 13),
        msg_D(5),
    )
    assert rows(b) == ["1,,B,1,10,40,1"]
    c = b.counters
    assert (c["adds"], c["executes"], c["cancels"], c["deletes"]) == (5, 4, 2, 1)
    assert (c["exec_clamped"], c["cancel_clamped"], c["orders_live"], c["orders_peak"]) == (2, 1, 1, 2)
    assert c["trades"] == 3  # E, E, printable C; not the 'N' C
    assert c["unknown_ref"] == 0


def test_exact_execute_removes_the_level():
    b = book(msg_A(1, b"B", 100, 10), msg_A(2, b"B", 100, 9), msg_E(1, 100), msg_X(2, 100))
    assert rows(b) == [] and b.counters["exec_clamped"] == 0 and b.counters["cancel_clamped"] == 0
    assert b.dump_csv(5) == CSV_HEADER + "\n"


def test_unknown_references_ignored():
    b = book(
        msg_A(1, b"B", 100, 10),
        msg_D(1),
        msg_E(1, 1),
        msg_C(1, 1, 1),
        msg_X(1, 1),
        msg_D(1),
        msg_U(1, 2, 100, 10),
        msg_E(77, 1),
    )
    assert b.counters["unknown_ref"] == 6 and b.counters["orders_live"] == 0
    assert b.counters["executes"] == 0 and b.counters["replaces"] == 0 and b.counters["adds"] == 1
    assert rows(b) == []  # the U's new half was not added


def test_add_on_live_reference_replaces():
    b = book(
        msg_A(1, b"B", 100, 10, locate=1),
        msg_A(1, b"S", 7, 20, locate=1),
        msg_A(2, b"B", 5, 10, locate=1),
        msg_F(2, b"B", 9, 30, locate=2),
    )
    assert rows(b) == ["1,,S,1,20,7,1", "2,,B,1,30,9,1"]
    assert b.counters["add_replaced"] == 2 and b.counters["adds"] == 4 and b.counters["orders_live"] == 2


def test_replace_keeps_side_and_locate_of_the_original():
    b = book(msg_A(1, b"S", 100, 10, locate=4), msg_U(1, 2, 50, 12, locate=9))
    assert rows(b) == ["4,,S,1,12,50,1"]
    c = b.counters
    assert (c["replaces"], c["adds"], c["add_replaced"], c["orders_live"]) == (1, 2, 0, 1)


def test_replace_onto_live_new_reference():
    b = book(msg_A(1, b"B", 100, 10, locate=1), msg_A(2, b"S", 40, 99, locate=2), msg_U(1, 2, 60, 11))
    assert rows(b) == ["1,,B,1,11,60,1"]
    assert b.counters["add_replaced"] == 1 and b.counters["orders_live"] == 1


def test_replace_onto_its_own_reference():
    b = book(msg_A(1, b"B", 100, 10), msg_U(1, 1, 60, 11))
    assert rows(b) == ["1,,B,1,11,60,1"]
    assert b.counters["add_replaced"] == 0 and b.counters["replaces"] == 1


def test_zero_shares_or_price_rejected():
    b = book(
        msg_A(1, b"B", 0, 10),
        msg_F(2, b"S", 10, 0),
        msg_A(3, b"B", 10, 10),
        msg_U(3, 4, 0, 10),
        msg_A(5, b"B", 10, 10),
        msg_U(5, 6, 10, 0),
    )
    assert rows(b) == []  # the originals of both U stay removed
    c = b.counters
    assert (c["zero_rejected"], c["adds"], c["replaces"], c["orders_live"]) == (4, 2, 2, 0)
    # a later reference to the never-added new halves is unknown
    b.apply(msg_D(4))
    assert b.counters["unknown_ref"] == 1


def test_bad_side_rejected():
    b = book(msg_A(1, b"X", 10, 10), msg_F(2, b" ", 10, 10), msg_A(3, b"b", 10, 10))
    assert rows(b) == [] and b.counters["bad_side"] == 3 and b.counters["adds"] == 0


def test_locate_range():
    b = book(
        msg_A(1, b"B", 10, 10, locate=0),
        msg_A(2, b"B", 10, 10, locate=10_001),
        msg_F(3, b"B", 10, 10, locate=65_535),
        msg_A(4, b"B", 10, 10, locate=10_000),
        max_instruments=10_000,
    )
    assert rows(b) == ["10000,,B,1,10,10,1"] and b.counters["locate_range"] == 3
    b = book(msg_A(1, b"B", 10, 10, locate=5), msg_A(2, b"B", 10, 10, locate=6), max_instruments=5)
    assert rows(b) == ["5,,B,1,10,10,1"] and b.counters["locate_range"] == 1
    # an execute whose header locate differs from the order's acts on the order's instrument
    b = book(msg_A(1, b"B", 10, 10, locate=5), msg_E(1, 4, locate=0), msg_X(1, 1, locate=60_000))
    assert rows(b) == ["5,,B,1,10,5,1"] and b.counters["locate_range"] == 0


def test_halts_do_not_stop_the_book_and_trades_do_not_touch_it():
    b = book(
        msg_R(1, "AAPL"),
        msg_A(1, b"B", 100, 10),
        msg_H(1, "AAPL", b"H"),
        msg_A(2, b"B", 5, 10),
        msg_E(1, 10),
        msg_P(0, b"B", 300, "AAPL", 10, 1),
        msg_Q(1000, "AAPL", 10, 2),
        msg_B(1),
        msg_H(1, "AAPL", b"T"),
        msg_S(b"C"),
    )
    assert rows(b) == ["1,AAPL,B,1,10,95,2"]
    assert b.counters["trades"] == 3 and b.counters["breaks"] == 1


def test_order_capacity():
    b = book(
        msg_A(1, b"B", 1, 10, locate=1),
        msg_A(2, b"B", 1, 10, locate=2),
        msg_A(3, b"B", 1, 11, locate=3),
        msg_A(1, b"S", 1, 12, locate=1),  # a replace of a live order still fits
        msg_D(2),
        msg_A(4, b"B", 1, 13, locate=4),
        max_orders=2,
    )
    assert b.counters["order_full"] == 1 and b.dropped == {3}
    assert rows(b) == ["1,,S,1,12,1,1", "4,,B,1,13,1,1"]


def test_locate_range_covers_instrument_messages():
    b = book(
        msg_R(0, "ZERO"),
        msg_R(7, "BIG"),
        msg_H(7, "BIG"),
        msg_P(0, b"B", 1, "BIG", 1, 1, locate=7),
        msg_Q(1, "BIG", 1, 2, locate=0),
        msg_B(1, locate=9),
        msg_S(b"O"),
        msg_R(5, "OK"),
        max_instruments=5,
    )
    assert b.counters["locate_range"] == 5 and b.counters["trades"] == 0 and b.counters["breaks"] == 1
    assert b.symbols == {5: "OK"}


def test_capacity_day_counts():
    b = RefBook(max_orders=50).feed(capacity_day())
    b.check_invariants()
    c = b.counters
    assert c["order_full"] == 250 + 83 and c["orders_live"] == 50 and c["deletes"] == 17
    assert c["unknown_ref"] == 100 - 17 and b.dropped == {1, 2, 3, 4}


def test_edge_day_has_every_case():
    b = RefBook(max_instruments=10_000).feed(edge_day())  # capacity below the day's far locates
    b.check_invariants()
    c = b.counters
    for k in (
        "unknown_ref",
        "add_replaced",
        "exec_clamped",
        "cancel_clamped",
        "zero_rejected",
        "bad_side",
        "locate_range",
        "adds",
        "executes",
        "cancels",
        "deletes",
        "replaces",
        "trades",
        "breaks",
    ):
        assert c[k] > 0, k
    assert c["unknown_ref"] == 10 and c["bad_side"] == 2 and c["locate_range"] == 9 and c["zero_rejected"] == 5
    lines = b.dump_csv(25).splitlines()
    assert sum(1 for ln in lines if ln.startswith("1,AAPL,B,")) == 25  # more levels than the depth
    assert not any(ln.startswith("5,QQQ,B,") for ln in lines)  # bids emptied
    assert any(ln.startswith("6,,S,1,") for ln in lines)  # no R: blank symbol
    assert any(ln.startswith("10000,,B,1,500000,") for ln in lines)


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_day_invariants_hold(seed):
    b = RefBook()
    for m in fuzz_day(seed, n=5000):
        b.apply(m)
    b.check_invariants()
    for k in (
        "unknown_ref",
        "add_replaced",
        "exec_clamped",
        "cancel_clamped",
        "zero_rejected",
        "bad_side",
        "locate_range",
    ):
        assert b.counters[k] > 0, k


def test_extremes_day():
    b = RefBook().feed(extremes_day())
    b.check_invariants()
    assert b.dump_csv(64) == (
        CSV_HEADER + "\n"
        "1,EXTREME,B,1,4294967295,8589934589,2\n"
        "1,EXTREME,S,1,1,4294967295,1\n"
        "10000,LAST1234,B,1,1,1,1\n"
        "10000,LAST1234,S,1,4294967295,4294967295,1\n"
    )
    assert b.counters["exec_clamped"] == 1 and b.counters["cancel_clamped"] == 1


def test_pcap_of_carries_the_same_messages():
    msgs = edge_day()
    recs = frames.parse_pcap(pcap_of(msgs))
    assert [m for _, f in recs for m in frames.mold_messages(f)] == msgs
    assert list(iter_binfile(frames.binfile_bytes(msgs))) == msgs
