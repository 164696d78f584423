"""The golden days (tests/data/golden_*) against the independent reference.

tests/test_golden.py checks replays of the committed days against digests of
our own earlier output: it catches a change, not an error that was there when
the digests were recorded.  Here the same inputs are replayed and compared with
what the pure-Python references build from the same bytes, sharing no code
with the C core:

  golden_day.bin.gz   a BinaryFILE day: tests/refbook.py's RefBook fed every
                      record (80,000 messages, every ITCH type);
  golden_ab.pcap.gz   two channels on A/B lines, losses on both: tests/moldref.py
                      arbitrates the lines itself (first copy wins, holes held
                      and given up after the gap window, gaps, duplicates,
                      STALE instruments) and feeds RefBook.

Compared: every level of every book (--dump-books at a depth past the deepest
book, and in publish mode every slot of the segment at depth 64, which holds
all of these days' levels), the book counters, and the counters of the stream
(packets, messages, by_type, gaps, duplicates, the packet ledger, ...), with
one lane and with two, in book and publish mode.  Each case takes well under a
second on the optimised build (the reference about 0.25 s a day).
"""

from __future__ import annotations

import difflib
import gzip
import os
import sys
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from feedhandler import shm  # noqa: E402
from feedhandler.replay import Replay  # noqa: E402
from moldref import MoldRef  # noqa: E402
from refbook import ITCH_LEN, STRICT_KEYS, RefBook, iter_binfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
DAY = os.path.join(DATA, "golden_day.bin.gz")
AB = os.path.join(DATA, "golden_ab.pcap.gz")
ALL_LEVELS = 1 << 20  # a --dump-books depth no book reaches
SLOT_DEPTH = 64  # the deepest a segment publishes
BOOK_KEYS = STRICT_KEYS + ("trades", "breaks", "level_full")
LANES = [[0], [0, 1]]
MODES = ["book", "publish"]


# ------------------------------------------------------------------ references

_REF = {}


def day_reference():
    if "day" not in _REF:
        with gzip.open(DAY, "rb") as f:
            data = f.read()
        msgs = list(iter_binfile(data))
        ok = [m for m in msgs if m and ITCH_LEN.get(chr(m[0])) == len(m)]
        book = RefBook().feed(msgs)
        book.check_invariants()
        _REF["day"] = dict(
            book=book,
            stats=dict(packets=len(msgs), messages=len(ok), by_type=dict(Counter(chr(m[0]) for m in ok))),
            stale=set(),
            bad=len(msgs) - len(ok),
        )
    return _REF["day"]


def ab_reference():
    if "ab" not in _REF:
        with gzip.open(AB, "rb") as f:
            ref = MoldRef(window_ns=1_000_000).feed_pcap(f.read())  # the replay's default --gap-window-us
        ref.book.check_invariants()
        _REF["ab"] = dict(book=ref.book, stats=ref.stats(), stale=ref.stale_locates(), bad=ref.bad_messages)
    return _REF["ab"]


REFS = {"golden_day.bin.gz": (DAY, day_reference), "golden_ab.pcap.gz": (AB, ab_reference)}


# ------------------------------------------------------------------ comparing


def assert_csv_equal(got: str, want: str, what: str):
    if got == want:
        return
    diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "reference", "C book", lineterm="", n=1)
    pytest.fail(
        "%s: --dump-books differs from the reference (%d vs %d lines):\n%s"
        % (what, got.count("\n"), want.count("\n"), "\n".join(list(diff)[:60]))
    )


def check_slots(seg, book: RefBook, stale: set, what: str):
    """Every slot of the segment against the reference: all levels (best
    first, zero past the last), level counts, symbol, STALE and DIRECTORY
    flags (and no DROPPED)."""
    a = seg.copy_books()
    assert seg.depth == SLOT_DEPTH
    n = len(a)
    want = {
        k: np.zeros((n, SLOT_DEPTH), np.int64)
        for k in ("bid_price", "bid_orders", "bid_shares", "ask_price", "ask_orders", "ask_shares")
    }
    want_n = {"n_bid": np.zeros(n, np.int64), "n_ask": np.zeros(n, np.int64)}
    for loc, side in book.levels:
        name = "bid" if side == "B" else "ask"
        lv = book.depth(loc, side)
        assert len(lv) <= SLOT_DEPTH, "a book deeper than a slot: the comparison would not be whole"
        want_n["n_" + name][loc] = len(lv)
        for i, (p, sh, o) in enumerate(lv):
            want[name + "_price"][loc, i], want[name + "_shares"][loc, i], want[name + "_orders"][loc, i] = p, sh, o
    flags = np.zeros(n, np.int64)
    flags[[loc for loc in book.symbols if loc < n]] |= shm.FLAG_DIRECTORY
    flags[sorted(stale)] |= shm.FLAG_STALE
    mask = shm.FLAG_DIRECTORY | shm.FLAG_STALE | shm.FLAG_DROPPED
    bad = set(np.flatnonzero((a["flags"] & mask) != flags))
    for k, v in list(want.items()) + list(want_n.items()):
        diff = a[k] != v
        bad |= set(np.flatnonzero(diff.any(axis=1) if diff.ndim == 2 else diff))
    for loc, sym in book.symbols.items():
        if a["symbol"][loc].decode("latin-1").rstrip(" ") != sym:
            bad.add(loc)
    shown = []
    for loc in sorted(bad)[:10]:
        s = a[loc]

        def levels(side):
            k = int(s["n_" + side])
            return list(zip(*(s["%s_%s" % (side, f)][:k].tolist() for f in ("price", "shares", "orders"))))

        shown.append(
            "%d %r flags %d (reference %d): bids %s asks %s; reference bids %s asks %s"
            % (
                loc,
                bytes(s["symbol"]),
                s["flags"],
                flags[loc],
                levels("bid"),
                levels("ask"),
                book.depth(loc, "B"),
                book.depth(loc, "S"),
            )
        )
    assert not bad, "%s: %d slots differ from the reference:\n%s" % (what, len(bad), "\n".join(shown))


def replay(path, cores, mode, tmp_path):
    if len(cores) > (os.cpu_count() or 1):
        pytest.skip("needs %d CPUs" % len(cores))
    r = Replay(mode=mode, cores=cores, depth=SLOT_DEPTH, silence_ms=120000)
    res = r.run_file(path, progress=False)
    assert res.ok, res.error
    r.finish()
    out = tmp_path / "books.csv"
    r.dump_books(str(out), depth=ALL_LEVELS)
    return r, out.read_text()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cores", LANES, ids=["1lane", "2lanes"])
@pytest.mark.parametrize("name", sorted(REFS))
def test_golden_input_against_reference(name, cores, mode, tmp_path):
    path, make = REFS[name]
    ref = make()
    book, want_st = ref["book"], ref["stats"]
    r, csv = replay(path, cores, mode, tmp_path)
    what = "%s, %d lane(s), %s" % (name, len(cores), mode)
    try:
        # Every level of every book, and the instruments flagged STALE.
        assert_csv_equal(csv, book.dump_csv(ALL_LEVELS), what)
        stale = {loc for loc in range(1, 65536) if r.flags(loc) & shm.FLAG_STALE}
        assert stale == ref["stale"], "%s: STALE %s, reference %s" % (what, sorted(stale), sorted(ref["stale"]))
        st = r.stats()
        got = {k: st[k] for k in want_st}
        assert got == want_st, "%s: counters differ, {key: (reference, C)}: %s" % (
            what,
            {k: (want_st[k], got[k]) for k in want_st if got[k] != want_st[k]},
        )
        assert st["errors"] == {} and ref["bad"] == 0
        gb = {k: st["book"][k] for k in BOOK_KEYS}
        wb = book.book_counters(BOOK_KEYS)
        assert gb == wb, "%s: book counters differ, {key: (reference, C)}: %s" % (
            what,
            {k: (wb[k], gb[k]) for k in BOOK_KEYS if gb[k] != wb[k]},
        )
        # Lanes' peaks add up (an upper bound of the run's peak).
        if len(cores) == 1:
            assert st["book"]["orders_peak"] == book.counters["orders_peak"]
        else:
            assert st["book"]["orders_peak"] >= book.counters["orders_peak"]
        if mode == "publish":
            check_slots(r.segment(), book, ref["stale"], what)
    finally:
        r.close()


def test_references_are_not_trivial():
    """What the comparison above covers: deep books on both days, every order
    operation, and on the A/B capture losses on both lines (gaps, STALE, an
    order referenced after its add was lost), copies on the other line
    (duplicates, some packets overlapping) and every line's heartbeats."""
    day, ab = day_reference(), ab_reference()
    for ref, rows, deepest in ((day, 500, 10), (ab, 150, 8)):
        text = ref["book"].dump_csv(ALL_LEVELS)
        assert text.count("\n") - 1 > rows
        assert max(len(v) for v in ref["book"].levels.values()) > deepest
        for k in ("adds", "executes", "cancels", "deletes", "replaces", "trades"):
            assert ref["book"].counters[k] > 0, k
    assert set(day["stats"]["by_type"]) == set(ITCH_LEN)
    st = ab["stats"]
    assert st["streams"] == 2 and st["gaps"] > 0 and ab["stale"]
    assert ab["book"].counters["unknown_ref"] > 0
    assert st["duplicates"] > st["pkt_duplicate"] > 1000 and st["heartbeats"] > 0 and st["end_of_session"] == 4


# ------------------------------------------------------------------ the reference itself


def _frames(spec, t0=34_200 * 10**9):
    """[(rx ns, frame)] from (us after t0, line 'a'/'b', seq, [messages] or
    'hb')."""
    import frames as F

    out = []
    for us, line, seq, msgs in spec:
        dst = F.GROUP_A if line == "a" else F.GROUP_B
        body = F.mold([], seq=seq, count=0) if msgs == "hb" else F.mold(msgs, seq=seq)
        out.append((t0 + us * 1000, F.frame(body, dst=dst)))
    return out


def test_moldref_arbitrates_by_hand():
    """MoldRef on a hand-made capture whose counts are worked out here."""
    import frames as F

    a = [F.msg_A(ref=i, price=1_000_000 + i) for i in range(1, 9)]
    spec = [
        (0, "a", 1, a[0:2]),  # 1-2 applied
        (1, "b", 1, a[0:2]),  # duplicate packet (2 messages)
        (2, "a", 4, a[3:4]),  # hole at 3: held
        (3, "b", 2, a[1:3]),  # overlaps: 2 duplicate, 3 new; then 4 from the held packet
        (4, "b", 4, a[3:4]),  # duplicate packet
        (10, "a", 7, a[6:7]),  # hole at 5-6: held; never filled
        (2000, "a", 8, "hb"),  # window over (> 1000 us): 5-6 are gaps, 7 applied; heartbeat says 8 next
        (2001, "b", 5, a[4:5]),  # too late: given up already, never applied (late, not duplicate)
        (3000, "a", 10, "hb"),
    ]  # hole at 8-9, given up at the end
    ref = MoldRef(window_ns=1_000_000).feed_records(_frames(spec)).finish()
    st = ref.stats()
    assert st["gaps"] == 2 + 2
    assert (st["pkt_applied"], st["pkt_duplicate"], st["pkt_late"], st["heartbeats"]) == (4, 2, 1, 2)
    assert st["messages"] == 5 and st["by_type"] == {"A": 5}
    assert st["duplicates"] == 2 + 1 + 1 and st["late"] == 1
    assert [p for p, _, _ in ref.book.depth(1, "B")] == [1_000_007, 1_000_004, 1_000_003, 1_000_002, 1_000_001]
    assert ref.stale_locates() == {1}
    # The C core agrees on it too.
    r = Replay(mode="book", silence_ms=120000)
    try:
        assert r.run_buffer(F.pcap_bytes(_frames(spec))).ok
        r.finish()
        got = r.stats()
        assert {k: got[k] for k in st} == st
        assert {loc for loc in range(1, 10) if r.flags(loc) & shm.FLAG_STALE} == {1}
    finally:
        r.close()
    # The same without the late packets: no gaps, nothing stale.
    ref = MoldRef().feed_records(_frames(spec[:5])).finish()
    assert ref.stats()["gaps"] == 0 and not ref.stale_locates() and ref.stats()["messages"] == 4
