"""IEX books (TOPS, DEEP, DEEP+ over IEX-TP): the C pipeline (`feedhandler
replay --dump-books --stats-json`) against the independent pure-Python
reference tests/iexref.py, on hand-built captures (scapy layers for the
messages, tests/frames.py for the frames).  Every comparison is of the whole
CSV text and of the counters; every replay's packet ledger is checked."""

from __future__ import annotations

import os
import struct
import sys

import pytest

pytest.importorskip("scapy")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frames as F  # noqa: E402
import iexref  # noqa: E402
from feedhandler import (
    scapy_iex as X,  # noqa: E402
    scapy_pitch as S,  # noqa: E402
    shm,  # noqa: E402
)
from feedhandler.replay import Replay  # noqa: E402
from iexref import IexRef  # noqa: E402
from pitchref import PitchRef  # noqa: E402
from refbook import STRICT_KEYS  # noqa: E402
from test_books import assert_csv_equal, replay_books  # noqa: E402
from test_pitch_books import check_ledger, stale_set  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT_TOPS = 10377
PORT_DEEP = 10378
PORT_DP = 10379
PORT_BAD = 10380
GROUP_A = F.GROUP_A
GROUP_B = F.GROUP_B
T0 = 1_700_000_000 * 1_000_000_000
STEP = 100_000  # 100 us between packets: 1 ms gap window = 10 packets
DEPTH = 10
TS = 1_700_000_000 * 1_000_000_000 + 34_200 * 1_000_000_000
# Each IEX feed has its own id block: 16384 + (venue_rank + 0 DEEP+, + 1 DEEP,
# + 2 TOPS) * 12288; IEXG is venue rank 1 without a config (after BATS).
BASE_DP = 16384 + 1 * 12288  # 28672
BASE_DEEP = 16384 + 2 * 12288  # 40960
BASE_TOPS = 16384 + 3 * 12288  # 53248
DP, DEEP, TOPS = X.IEX_DEEP_PLUS, X.IEX_DEEP, X.IEX_TOPS


# ------------------------------------------------------------------ capture builders


def _add(oid, sym, side, size, price):
    return X.IexAddOrder(side=side, timestamp=TS + oid, symbol=sym, order_id=oid, size=size, price=price)


def deep_plus_packets():
    """The packets (lists of messages) of a DEEP+ session, in sequence order:
    every DEEP+ type, symbols first seen in state messages, a Clear Book with
    adds after it, clamped executions, a modify to size 0, unknown orders, a
    heartbeat and the End of Messages."""
    A, B, C, D = "DPAAA", "DPBBB", "DPCCC", "DPDDD"
    P = []
    P.append(
        [
            X.IexSystemEvent(system_event="O", timestamp=TS),
            X.IexSecurityDirectory(symbol=D, round_lot_size=100, adjusted_poc_price=500_000, timestamp=TS),
            X.IexTradingStatus(symbol=C, trading_status="T", timestamp=TS),
            X.IexOperationalHaltStatus(symbol=A, operational_halt_status="N", timestamp=TS),
            X.IexShortSalePriceTestStatus(symbol=B, short_sale_price_test_status=0, detail=" ", timestamp=TS),
            X.IexRetailLiquidityIndicator(symbol=A, timestamp=TS),
        ]
    )
    P.append(
        [
            _add(1, A, "8", 100, 990_500),
            _add(2, A, "8", 200, 990_500),
            _add(3, A, "5", 300, 990_700),
            _add(4, B, "8", 50, 2_000_000),
            _add(5, B, "5", 70, 2_000_100),
            _add(6, C, "8", 10, 10_000),
        ]
    )
    P.append(
        [
            X.IexOrderExecuted(symbol=A, order_id=1, size=30, price=990_500, trade_id=900, timestamp=TS),
            X.IexOrderExecuted(symbol=A, order_id=3, size=400, price=990_600, trade_id=901),  # clamped: leaves
            X.IexOrderModify(symbol=A, order_id=2, size=250, price=990_500, modify_flags=1),  # size up
            X.IexOrderModify(symbol=B, order_id=4, size=20, price=1_999_900),  # new price
            X.IexTradeReport(symbol=D, size=5, price=500_000, trade_id=902),
            X.IexTradeBreak(symbol=D, size=5, price=500_000, trade_id=902),
        ]
    )
    P.append(
        [
            X.IexOrderDelete(symbol=B, order_id=5),
            X.IexOrderDelete(symbol=B, order_id=999),  # unknown order
            X.IexOrderModify(symbol=C, order_id=6, size=0, price=10_000),  # size 0: removed
            X.IexSecurityEvent(symbol=A, security_event="O"),
            _add(7, D, "5", 40, 510_000),
            _add(8, D, "5", 45, 520_000),
        ]
    )
    P.append([])  # a heartbeat
    P.append(
        [
            _add(9, C, "8", 12, 9_900),
            X.IexClearBook(symbol=D),
            _add(10, D, "8", 11, 490_000),
            X.IexOrderDelete(symbol=D, order_id=7),  # cleared already
            X.IexOrderExecuted(symbol=A, order_id=2, size=1, price=990_500, trade_id=903),
        ]
    )
    P.append([X.IexSystemEvent(system_event="C")])
    return P


def deep_packets():
    """A DEEP session: price levels set in events of several updates, a level
    removed, trades, official prices, auction information, state messages."""
    A, B, C = "DAAA", "DBBB", "DCCC"

    def plu(side, sym, size, price, done=True):
        cls = X.IexPriceLevelUpdateBuy if side == "B" else X.IexPriceLevelUpdateSell
        return cls(event_flags=1 if done else 0, timestamp=TS, symbol=sym, size=size, price=price)

    P = []
    P.append([X.IexSystemEvent(system_event="O"), X.IexTradingStatus(symbol=C, trading_status="H", reason="T1")])
    P.append(
        [
            plu("B", A, 100, 990_500, False),
            plu("B", A, 200, 990_400, False),
            plu("S", A, 300, 990_700, True),
            plu("B", B, 10, 50_000, True),
        ]
    )
    P.append(
        [
            X.IexTradeReport(symbol=A, size=50, price=990_700, trade_id=1),
            plu("S", A, 250, 990_700, False),  # set to 250
            plu("B", A, 0, 990_400, True),  # removed
            X.IexOfficialPrice(symbol=B, price_type="Q", official_price=50_000),
            X.IexAuctionInformation(
                symbol=C,
                auction_type="H",
                paired_shares=100,
                reference_price=30_000,
                indicative_clearing_price=30_100,
                imbalance_shares=10,
                imbalance_side="B",
                auction_book_clearing_price=30_200,
            ),
        ]
    )
    P.append(
        [
            plu("S", B, 5, 50_100, False),
            plu("S", B, 6, 50_200, False),  # B's event left open at the end
            X.IexSecurityEvent(symbol=A, security_event="O"),
            X.IexTradeBreak(symbol=A, size=50, price=990_700, trade_id=1),
            X.IexShortSalePriceTestStatus(symbol=B, short_sale_price_test_status=1, detail="A"),
            X.IexOperationalHaltStatus(symbol=C, operational_halt_status="O"),
            X.IexRetailLiquidityIndicator(symbol=A, retail_liquidity_indicator="A"),
        ]
    )
    P.append([])
    P.append([plu("B", C, 7, 29_900, True), X.IexSecurityDirectory(symbol=C, round_lot_size=10)])
    return P


def tops_packets():
    """A TOPS session: quotes (one level a side; price or size 0 empties a
    side), trades, official prices, auction information."""
    A, B, C = "TAAA", "TBBB", "TCCC"

    def q(sym, bs, bp, ap, az):
        return X.IexQuoteUpdate(symbol=sym, bid_size=bs, bid_price=bp, ask_price=ap, ask_size=az, timestamp=TS)

    P = []
    P.append([X.IexSystemEvent(system_event="O"), q(A, 100, 990_500, 990_600, 200), q(B, 5, 10_000, 0, 0)])
    P.append(
        [
            X.IexTradeReport(symbol=A, size=10, price=990_600, trade_id=1),
            q(A, 300, 990_400, 990_700, 400),  # replaces both sides
            q(C, 0, 0, 20_000, 9),  # no bid
            X.IexOfficialPrice(symbol=C, price_type="M", official_price=20_000),
        ]
    )
    P.append([])
    P.append(
        [
            X.IexAuctionInformation(
                symbol=B, auction_type="C", reference_price=10_000, indicative_clearing_price=10_001
            ),
            q(B, 0, 10_000, 10_100, 8),  # bid size 0: no bid
            X.IexTradeBreak(symbol=A, size=10, price=990_600, trade_id=1),
            X.IexSecurityEvent(symbol=A, security_event="C"),  # 'E' in TOPS: accepted
        ]
    )
    return P


def segments(proto, packets, session=1, seq=0, offset=0):
    """[(proto, wire seq, payload, messages)] of packets in sequence order."""
    out = []
    for msgs in packets:
        p = X.iex_segment(proto, session, seq, msgs, offset=offset, send_time=TS)
        out.append((proto, seq, p, msgs))
        seq += len(msgs)
        offset += len(p) - 40
    return out


def recut(proto, msgs, sizes, session=1):
    """The messages cut into segments of the given sizes (cycled)."""
    out, i, k, seq = [], 0, 0, 0
    while i < len(msgs):
        n = sizes[k % len(sizes)]
        out.append((proto, seq, X.iex_segment(proto, session, seq, msgs[i : i + n]), msgs[i : i + n]))
        i += n
        seq += n
        k += 1
    return out


def pcap_of(dgrams, lines=("A",), drop=None, port=PORT_DP, t0=T0, step=STEP):
    """Records (time, frame) of datagrams on lines A and/or B (B 2 us after A);
    drop = {"A": set of indexes, "B": ...} not sent on that line."""
    drop = drop or {}
    recs = []
    for i, d in enumerate(dgrams):
        for k, line in enumerate(lines):
            if i in drop.get(line, ()):
                continue
            g = GROUP_A if line == "A" else GROUP_B
            recs.append((t0 + i * step + k * 2000, F.frame(d[2], dst=g, dport=port)))
    return recs


def three_feeds():
    """TOPS, DEEP and DEEP+ sessions interleaved packet by packet, each on its
    own port (one venue: each feed its own id block, ranks per feed)."""
    per = [
        [(PORT_TOPS, d) for d in segments(TOPS, tops_packets(), session=11)],
        [(PORT_DEEP, d) for d in segments(DEEP, deep_packets(), session=12)],
        [(PORT_DP, d) for d in segments(DP, deep_plus_packets(), session=13)],
    ]
    recs, i, t = [], 0, T0
    while any(i < len(p) for p in per):
        for p in per:
            if i < len(p):
                port, d = p[i]
                recs.append((t, F.frame(d[2], dst=GROUP_A, dport=port)))
                t += STEP
        i += 1
    return recs


def write(tmp_path, name, recs):
    p = tmp_path / name
    p.write_bytes(F.pcap_bytes(recs))
    return p


def type_counts(dgrams):
    out = {}
    for d in dgrams:
        for m in d[3]:
            k = "iex_" + chr(bytes(m)[0])
            out[k] = out.get(k, 0) + 1
    return out


# ------------------------------------------------------------------ checks


def iex_by_type(stats):
    return {k: v for k, v in stats["by_type"].items() if k.startswith("iex_") and v}


def iex_errors(stats):
    return {k: stats["errors"].get(k, 0) for k in iexref.ERRORS}


def check_against_ref(tmp_path, path, ref, what, venue=False, extra=()):
    text, stats = replay_books(tmp_path, path, DEPTH, extra=extra, tag=what.replace(" ", "-"))
    check_ledger(stats, what)
    assert_csv_equal(text, ref.dump_csv(DEPTH, venue=venue), what)
    want = ref.stats()
    assert iex_errors(stats) == want["errors"], what
    assert iex_by_type(stats) == want["by_type"], what
    assert stats["messages"] == want["messages"], what
    assert stats["duplicates"] == want["duplicates"], what
    assert stats["heartbeats"] == want["heartbeats"], what
    assert stats["iex_packets"] == want["iex_packets"], what
    assert stats["iex_clears"] == want["iex_clears"], what
    assert stats["gaps"] == want["gaps"], what
    got = {k: stats["book"].get(k) for k in STRICT_KEYS}
    exp = ref.book.book_counters(STRICT_KEYS)
    assert got == exp, "%s: book counters {C} vs {reference}:\n%s\n%s" % (what, got, exp)
    return text, stats


def reference(recs, **kw):
    return IexRef(**kw).feed_records(recs).finish()


# ------------------------------------------------------------------ the reference alone


def test_reference_sanity():
    """The reference on each feed: the books worked out by hand."""
    dp = reference(pcap_of(segments(DP, deep_plus_packets())))
    # ranks: DPDDD 0 (directory), DPCCC 1 (status), DPAAA 2, DPBBB 3
    assert dp.dump_csv(DEPTH).splitlines()[1:] == [
        "%d,DPDDD,B,1,490000,11,1" % BASE_DP,
        "%d,DPCCC,B,1,9900,12,1" % (BASE_DP + 1),
        "%d,DPAAA,B,1,990500,319,2" % (BASE_DP + 2),
        "%d,DPBBB,B,1,1999900,20,1" % (BASE_DP + 3),
    ]
    assert dp.iex_clears == 1 and dp.heartbeats == 1 and dp.errors == {k: 0 for k in iexref.ERRORS}
    c = dp.book.counters
    assert (c["exec_clamped"], c["zero_rejected"], c["unknown_ref"]) == (1, 1, 2)
    deep = reference(pcap_of(segments(DEEP, deep_packets()), port=PORT_DEEP))
    assert deep.dump_csv(DEPTH).splitlines()[1:] == [
        "%d,DCCC,B,1,29900,7,0" % BASE_DEEP,
        "%d,DAAA,B,1,990500,100,0" % (BASE_DEEP + 1),
        "%d,DAAA,S,1,990700,250,0" % (BASE_DEEP + 1),
        "%d,DBBB,B,1,50000,10,0" % (BASE_DEEP + 2),
        "%d,DBBB,S,1,50100,5,0" % (BASE_DEEP + 2),
        "%d,DBBB,S,2,50200,6,0" % (BASE_DEEP + 2),
    ]
    assert deep.open_events == {BASE_DEEP + 2}
    tops = reference(pcap_of(segments(TOPS, tops_packets()), port=PORT_TOPS))
    assert tops.dump_csv(DEPTH).splitlines()[1:] == [
        "%d,TAAA,B,1,990400,300,0" % BASE_TOPS,
        "%d,TAAA,S,1,990700,400,0" % BASE_TOPS,
        "%d,TBBB,S,1,10100,8,0" % (BASE_TOPS + 1),
        "%d,TCCC,S,1,20000,9,0" % (BASE_TOPS + 2),
    ]


# ------------------------------------------------------------------ each feed against the C books


@pytest.mark.parametrize(
    "feed",
    [(DP, deep_plus_packets, PORT_DP), (DEEP, deep_packets, PORT_DEEP), (TOPS, tops_packets, PORT_TOPS)],
    ids=["deep-plus", "deep", "tops"],
)
def test_feed_books_equal_reference(tmp_path, feed):
    proto, packets, port = feed
    dg = segments(proto, packets())
    recs = pcap_of(dg, port=port)
    ref = reference(recs)
    text, stats = check_against_ref(tmp_path, write(tmp_path, "feed.pcap", recs), ref, "feed %04x" % proto)
    counts = type_counts(dg)
    assert iex_by_type(stats) == counts and stats["messages"] == sum(counts.values())
    assert stats["gaps"] == 0 and stats["duplicates"] == 0
    assert stats["iex_packets"] == len(dg) and stats["heartbeats"] == sum(1 for d in dg if not d[3])
    assert "venue" not in text.splitlines()[0] and len(text.splitlines()) > 1


def test_three_feeds_one_venue(tmp_path):
    recs = three_feeds()
    ref = reference(recs)
    # each feed ranks its own symbols from 0 in its own block, whatever the interleaving
    assert ref.ranks == {
        TOPS: {b"TAAA    ": BASE_TOPS, b"TBBB    ": BASE_TOPS + 1, b"TCCC    ": BASE_TOPS + 2},
        DEEP: {b"DCCC    ": BASE_DEEP, b"DAAA    ": BASE_DEEP + 1, b"DBBB    ": BASE_DEEP + 2},
        DP: {b"DPDDD   ": BASE_DP, b"DPCCC   ": BASE_DP + 1, b"DPAAA   ": BASE_DP + 2, b"DPBBB   ": BASE_DP + 3},
    }
    check_against_ref(tmp_path, write(tmp_path, "three.pcap", recs), ref, "three feeds")


def test_one_symbol_on_each_feed_is_one_instrument_per_feed(tmp_path):
    """The same symbol on DEEP+, DEEP and TOPS in one capture: three ids (one
    per feed's block) and three books in the dump -- DEEP+'s orders (with
    their counts), DEEP's levels and TOPS's quote never mix, even at a price
    two feeds share."""
    sym = "SAME"
    dp = segments(DP, [[_add(1, sym, "8", 100, 10_000), _add(2, sym, "5", 200, 11_000)]], session=21)
    deep = segments(
        DEEP,
        [
            [
                X.IexPriceLevelUpdateBuy(event_flags=0, timestamp=TS, symbol=sym, size=300, price=10_000),
                X.IexPriceLevelUpdateSell(event_flags=1, timestamp=TS, symbol=sym, size=400, price=12_000),
            ]
        ],
        session=22,
    )
    tops = segments(
        TOPS,
        [[X.IexQuoteUpdate(symbol=sym, bid_size=5, bid_price=9_900, ask_price=13_000, ask_size=6, timestamp=TS)]],
        session=23,
    )
    # DEEP first, then TOPS, then DEEP+: the order of arrival does not pick the ids
    recs = [
        (T0, F.frame(deep[0][2], dst=GROUP_A, dport=PORT_DEEP)),
        (T0 + STEP, F.frame(tops[0][2], dst=GROUP_A, dport=PORT_TOPS)),
        (T0 + 2 * STEP, F.frame(dp[0][2], dst=GROUP_A, dport=PORT_DP)),
    ]
    ref = reference(recs)
    assert ref.ranks == {DP: {b"SAME    ": BASE_DP}, DEEP: {b"SAME    ": BASE_DEEP}, TOPS: {b"SAME    ": BASE_TOPS}}
    assert ref.dump_csv(DEPTH).splitlines()[1:] == [
        "%d,SAME,B,1,10000,100,1" % BASE_DP,
        "%d,SAME,S,1,11000,200,1" % BASE_DP,
        "%d,SAME,B,1,10000,300,0" % BASE_DEEP,
        "%d,SAME,S,1,12000,400,0" % BASE_DEEP,
        "%d,SAME,B,1,9900,5,0" % BASE_TOPS,
        "%d,SAME,S,1,13000,6,0" % BASE_TOPS,
    ]
    check_against_ref(tmp_path, write(tmp_path, "same.pcap", recs), ref, "one symbol, three feeds")


def test_plu_at_price_0_closes_its_event(tmp_path, name):
    """A DEEP Price Level Update at price 0 changes no level and counts
    iex_price_range, but its Event Flags still close the event: the C books
    publish the event's levels then (read from the shared-memory segment);
    the same update with the flag clear leaves the event open, unpublished."""

    def plu(cls, size, price, done):
        return cls(event_flags=1 if done else 0, timestamp=TS, symbol="ZERO", size=size, price=price)

    buy, sell = X.IexPriceLevelUpdateBuy, X.IexPriceLevelUpdateSell
    for close in (True, False):
        dg = segments(DEEP, [[plu(buy, 100, 10_000, False), plu(sell, 50, 11_000, False)], [plu(buy, 0, 0, close)]])
        recs = pcap_of(dg, port=PORT_DEEP)
        ref = reference(recs)
        what = "price 0 %s" % ("closing" if close else "open")
        assert {k: v for k, v in ref.errors.items() if v} == {"iex_price_range": 1}, what
        assert ref.open_events == (set() if close else {BASE_DEEP}), what
        assert ref.dump_csv(DEPTH).splitlines()[1:] == [
            "%d,ZERO,B,1,10000,100,0" % BASE_DEEP,
            "%d,ZERO,S,1,11000,50,0" % BASE_DEEP,
        ], what
        assert ref.book.counters["unknown_ref"] == 0, what  # price 0 is no level removed
        path = write(tmp_path, "zero-%d.pcap" % close, recs)
        check_against_ref(tmp_path, path, ref, what)
        r = Replay(shm=name, max_orders=1024, max_levels=4096, max_instruments=65535)
        try:
            res = r.run_file(str(path), progress=False)
            assert res.ok, res.error
        finally:
            r.finish()
        with shm.attach(name) as seg:
            book = seg.book(BASE_DEEP)
            published = [a.tolist() for a in book.bids + book.asks]
        os.unlink("/dev/shm/" + name)
        if close:
            assert published == [[10_000], [100], [0], [11_000], [50], [0]], what
        else:
            assert published == [[]] * 6, what


# ------------------------------------------------------------------ A/B lines, holes, heartbeats


def _flat_dp():
    return [m for p in deep_plus_packets() for m in p]


def test_two_lines_cut_differently(tmp_path):
    """The same DEEP+ messages cut into segments of 3 on line A and of 4 and
    2 on line B, some segments lost on each line but every message on one:
    the single-line books, no gap."""
    msgs = _flat_dp()
    single_recs = pcap_of(recut(DP, msgs, [5]))
    one, _ = replay_books(tmp_path, write(tmp_path, "single.pcap", single_recs), DEPTH, tag="one")
    a = recut(DP, msgs, [3])
    b = recut(DP, msgs, [4, 2])
    drop_a = {i for i in range(len(a)) if i % 3 == 1}
    drop_b = {i for i in range(len(b)) if i % 3 == 2}
    covered = set()
    for dg, drop in ((a, drop_a), (b, drop_b)):
        for i, d in enumerate(dg):
            if i not in drop:
                covered |= set(range(d[1], d[1] + len(d[3])))
    assert covered == set(range(len(msgs)))
    recs = [(T0 + d[1] * STEP, F.frame(d[2], dst=GROUP_A, dport=PORT_DP)) for i, d in enumerate(a) if i not in drop_a]
    recs += [
        (T0 + d[1] * STEP + 2000, F.frame(d[2], dst=GROUP_B, dport=PORT_DP)) for i, d in enumerate(b) if i not in drop_b
    ]
    recs.sort(key=lambda r: r[0])
    ref = reference(recs)
    assert ref.gaps == 0 and ref.duplicates > 0
    text, stats = check_against_ref(tmp_path, write(tmp_path, "ab.pcap", recs), ref, "lines cut differently")
    assert text == one == reference(single_recs).dump_csv(DEPTH)


def test_hole_filled_by_the_other_line_late(tmp_path):
    """Line A loses every fourth segment; line B carries them all 350 us late:
    the next segments wait for B within the gap window, nothing is lost."""
    dg = segments(DP, deep_plus_packets())
    recs = []
    for i, d in enumerate(dg):
        if i % 4 != 2:
            recs.append((T0 + i * STEP, F.frame(d[2], dst=GROUP_A, dport=PORT_DP)))
        recs.append((T0 + i * STEP + 350_000, F.frame(d[2], dst=GROUP_B, dport=PORT_DP)))
    recs.sort(key=lambda r: r[0])
    ref = reference(recs)
    text, stats = check_against_ref(tmp_path, write(tmp_path, "late.pcap", recs), ref, "late line b")
    assert stats["gaps"] == 0 and text == reference(pcap_of(dg)).dump_csv(DEPTH)


def test_late_first_deep_plus_segment_keeps_every_id(tmp_path):
    """DEEP and DEEP+ in one venue, interleaved; line B carries DEEP+ 500 us
    behind line A.  When A loses DEEP+'s first segment, the DEEP+ stream is
    first seen past its start and waits for B's copy while DEEP's packets are
    applied -- yet the dump, ids included, is exactly the on-time capture's:
    a feed's ids never depend on when another feed's packets arrive.  (The
    reference does not model that wait, so it is checked on the on-time
    capture only.)"""
    dp = segments(DP, deep_plus_packets(), session=13)
    deep = segments(DEEP, deep_packets(), session=12)

    def capture(lose_first):
        recs = [(T0 + (2 * i + 1) * STEP, F.frame(d[2], dst=GROUP_A, dport=PORT_DEEP)) for i, d in enumerate(deep)]
        for i, d in enumerate(dp):
            if i or not lose_first:
                recs.append((T0 + 2 * i * STEP, F.frame(d[2], dst=GROUP_A, dport=PORT_DP)))
            recs.append((T0 + 2 * i * STEP + 500_000, F.frame(d[2], dst=GROUP_B, dport=PORT_DP)))
        return sorted(recs, key=lambda r: r[0])

    on_time = capture(False)
    ref = reference(on_time)
    text, stats = check_against_ref(tmp_path, write(tmp_path, "on-time.pcap", on_time), ref, "on time")
    late_text, late = replay_books(tmp_path, write(tmp_path, "late-first.pcap", capture(True)), DEPTH, tag="late")
    check_ledger(late, "late first segment")
    assert_csv_equal(late_text, text, "first DEEP+ segment late on line B")
    assert late["gaps"] == 0 and late["messages"] == stats["messages"]
    assert late["duplicates"] == stats["duplicates"] - len(dp[0][3])  # A's copy of it never came
    ids = {(int(r.split(",")[0]), r.split(",")[1]) for r in late_text.splitlines()[1:]}
    assert ids == {
        (BASE_DP, "DPDDD"),
        (BASE_DP + 1, "DPCCC"),
        (BASE_DP + 2, "DPAAA"),
        (BASE_DP + 3, "DPBBB"),
        (BASE_DEEP, "DCCC"),
        (BASE_DEEP + 1, "DAAA"),
        (BASE_DEEP + 2, "DBBB"),
    }


def test_loss_on_both_lines_flags_the_stream_stale(tmp_path):
    """A DEEP+ segment lost on both lines: gaps == its messages, the books
    are the reference's, and exactly that stream's instruments are stale."""
    dg = segments(DP, deep_plus_packets())
    lost = 2
    drop = {"A": {lost, 4}, "B": {lost, 5}}
    recs = pcap_of(dg, lines=("A", "B"), drop=drop)
    ref = reference(recs)
    assert ref.gaps == len(dg[lost][3]) > 0
    check_against_ref(tmp_path, write(tmp_path, "lost.pcap", recs), ref, "lost on both")
    stale, st = stale_set(recs)
    assert set(ref.ranks) == {DP}
    assert stale == ref.stale_ids() == set(ref.ranks[DP].values())
    assert st["gaps"] == ref.gaps


def test_heartbeat_reveals_a_lost_last_segment(tmp_path):
    """The DEEP session's last data segment lost on both lines: only the
    heartbeat after it (its sequence is the next message's) tells."""
    dg = segments(DEEP, deep_packets())
    hb = X.iex_segment(DEEP, 1, dg[-1][1] + len(dg[-1][3]), [])
    dg = dg + [(DEEP, dg[-1][1] + len(dg[-1][3]), hb, [])]
    lost = len(dg) - 2
    recs = pcap_of(dg, lines=("A", "B"), drop={"A": {lost}, "B": {lost}}, port=PORT_DEEP)
    ref = reference(recs)
    assert ref.gaps == len(dg[lost][3]) == 2
    check_against_ref(tmp_path, write(tmp_path, "hb.pcap", recs), ref, "heartbeat gap")
    stale, _ = stale_set(recs)
    assert stale == ref.stale_ids()


def test_new_session_on_the_port(tmp_path):
    """A second session (another id) on the same group:port starts a new
    stream from its own first sequence: no gap, both applied.  Both start at
    sequence 0: a stream first seen past its start waits the gap window for
    the other line (session layer), which would let the other session's
    symbols take their ranks first -- an order the reference does not model."""
    first = segments(DP, deep_plus_packets()[:3], session=100, seq=0)
    second = segments(DP, [[_add(50, "NEWS", "8", 5, 100)], [_add(51, "NEWS", "5", 5, 200)]], session=101, seq=0)
    recs = pcap_of(first + second)
    ref = reference(recs)
    assert ref.gaps == 0
    _, stats = check_against_ref(tmp_path, write(tmp_path, "sess.pcap", recs), ref, "new session")
    assert stats["session_changes"] == 1


# ------------------------------------------------------------------ malformed segments


def blk(m) -> bytes:
    b = bytes(m)
    return struct.pack("<H", len(b)) + b


def raw_seg(proto, seq, blocks, count=None, plen=None, session=1, channel=1, version=1, offset=0, send=0):
    body = b"".join(blocks)
    n = len(body) if plen is None else plen
    c = len(blocks) if count is None else count
    return struct.pack("<BBHIIHHqqq", version, 0, proto, channel, session, n, c, offset, seq, send) + body


def madd(oid, sym="MAL", size=100, price=1_000_000, side="8"):
    return blk(_add(oid, sym, side, size, price))


def malformed_capture():
    """(payloads, expected errors): each case followed by good data, whose
    application the dump shows."""
    P, E = [], {k: 0 for k in iexref.ERRORS}
    P.append(raw_seg(DP, 0, [madd(101), madd(102)]))  # next wire 2
    P.append(raw_seg(DP, 2, [madd(190)])[:39])
    E["iex_truncated"] += 1
    P.append(b"\x02" + raw_seg(DP, 2, [madd(191)])[1:])
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(192)], plen=10))
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(193)], channel=0))
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(194)], session=0))
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(195)], offset=-1))
    E["iex_header"] += 1
    P.append(raw_seg(DP, -2, [madd(196)]))
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(197)], send=-7))
    E["iex_header"] += 1
    P.append(raw_seg(DP, 2, [madd(198)], count=0))
    E["iex_header"] += 1
    P.append(raw_seg(0x8001, 2, [madd(199)]))
    E["iex_protocol"] += 1
    P.append(raw_seg(DP, 2, [madd(103), madd(104)], count=3))
    E["iex_count_overrun"] += 1  # 2 whole: next 4
    P.append(raw_seg(DP, 4, [madd(105), b"\x00\x00" + b"\0" * 8], count=2))
    E["iex_msg_overrun"] += 1  # next 5
    P.append(raw_seg(DP, 5, [madd(106), struct.pack("<H", 300) + bytes(_add(180, "MAL", "8", 1, 1))], count=2))
    E["iex_msg_overrun"] += 1  # next 6
    P.append(raw_seg(DP, 6, [madd(107), b"\x01"], count=1))
    E["iex_trailing_bytes"] += 1  # next 7
    P.append(raw_seg(DP, 7, [madd(108), b"\x01"], count=2))
    E["iex_count_overrun"] += 1  # next 8
    P.append(raw_seg(DP, 8, [madd(109), blk(X.IexQuoteUpdate(symbol="MAL")), blk(b"\x7e\x00\x00")]))
    E["iex_unknown_type"] += 2  # next 11
    P.append(raw_seg(DP, 11, [blk(bytes(_add(181, "MAL", "8", 1, 1))[:37]), madd(110, side="5", price=1_000_100)]))
    E["iex_bad_length"] += 1  # next 13
    P.append(raw_seg(DP, 13, [blk(bytes(_add(111, "MAL", "5", 100, 1_000_200)) + b"\xee" * 5)]))  # longer: fine
    # prices out of range: not applied, but BIGP's bad add gives it its id (before NEXT)
    P.append(
        raw_seg(
            DP,
            14,
            [
                madd(182, sym="BIGP", price=1 << 32),
                madd(183, sym="BIGP", price=-1),
                madd(112, sym="NEXT", price=(1 << 32) - 1),
                madd(113, sym="BIGP", price=4_000_000),
                blk(X.IexOrderModify(symbol="MAL", order_id=101, size=50, price=1 << 33)),  # deletes 101
                blk(X.IexOrderExecuted(symbol="MAL", order_id=102, size=10, price=-3)),  # cancels 10
            ],
        )
    )
    E["iex_price_range"] += 4  # next 20
    P.append(raw_seg(DP, 20, []))  # heartbeat
    P.append(raw_seg(DP, 20, [madd(114, side="5", price=1_000_300)]))  # next 21
    return P, E


def test_malformed_segments_counted_rest_applied(tmp_path):
    payloads, expect = malformed_capture()
    recs = [(T0 + i * STEP, F.frame(p, dst=GROUP_A, dport=PORT_BAD)) for i, p in enumerate(payloads)]
    ref = reference(recs)
    assert ref.errors == expect, "reference disagrees with the hand count"
    rows = ref.dump_csv(DEPTH).splitlines()[1:]
    # by hand: MAL bids 102 (100 - 10), 103-109; asks 110, 111, 114; 101 deleted by its modify
    assert rows == [
        "%d,MAL,B,1,1000000,790,8" % BASE_DP,
        "%d,MAL,S,1,1000100,100,1" % BASE_DP,
        "%d,MAL,S,2,1000200,100,1" % BASE_DP,
        "%d,MAL,S,3,1000300,100,1" % BASE_DP,
        "%d,BIGP,B,1,4000000,100,1" % (BASE_DP + 1),
        "%d,NEXT,B,1,4294967295,100,1" % (BASE_DP + 2),
    ], rows
    assert ref.pkt_rejected == 10 and ref.gaps == 0
    text, stats = check_against_ref(tmp_path, write(tmp_path, "bad.pcap", recs), ref, "malformed")
    assert stats["pkt_rejected"] == 10


MALFORMED_ALONE = {
    "truncated": (lambda s: raw_seg(DP, s, [madd(9)])[:30], "iex_truncated", 0),
    "version": (lambda s: b"\x03" + raw_seg(DP, s, [madd(9)])[1:], "iex_header", 0),
    "payload_length": (lambda s: raw_seg(DP, s, [madd(9)], plen=41), "iex_header", 0),
    "channel0": (lambda s: raw_seg(DP, s, [madd(9)], channel=0), "iex_header", 0),
    "session0": (lambda s: raw_seg(DP, s, [madd(9)], session=0), "iex_header", 0),
    "negative_offset": (lambda s: raw_seg(DP, s, [madd(9)], offset=-(1 << 63)), "iex_header", 0),
    "negative_seq": (lambda s: raw_seg(DP, -1, [madd(9)]), "iex_header", 0),
    "negative_send_time": (lambda s: raw_seg(DP, s, [madd(9)], send=-1), "iex_header", 0),
    "heartbeat_with_payload": (lambda s: raw_seg(DP, s, [madd(9)], count=0), "iex_header", 0),
    "protocol": (lambda s: raw_seg(0x8006, s, [madd(9)]), "iex_protocol", 0),
    "count_overrun": (lambda s: raw_seg(DP, s, [madd(9)], count=2), "iex_count_overrun", 1),
    "msg_len0": (lambda s: raw_seg(DP, s, [b"\x00\x00"], count=1), "iex_msg_overrun", 0),
    "msg_past_end": (lambda s: raw_seg(DP, s, [madd(9)[:30]], count=1), "iex_msg_overrun", 0),
    "trailing": (lambda s: raw_seg(DP, s, [madd(9), b"\x00"], count=1), "iex_trailing_bytes", 1),
    "unknown_type": (lambda s: raw_seg(DP, s, [blk(b"\x7e\x00"), madd(9)]), "iex_unknown_type", 2),
    "deep_type_in_deep_plus": (
        lambda s: raw_seg(DP, s, [blk(X.IexPriceLevelUpdateBuy(symbol="GOOD", size=1, price=1)), madd(9)]),
        "iex_unknown_type",
        2,
    ),
    "bad_length": (
        lambda s: raw_seg(DP, s, [blk(bytes(_add(8, "MAL", "8", 1, 1))[:37]), madd(9)]),
        "iex_bad_length",
        2,
    ),
    "price_range": (lambda s: raw_seg(DP, s, [madd(9, price=1 << 32)]), "iex_price_range", 1),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ALONE))
def test_each_malformed_case_alone(tmp_path, case):
    """One malformed segment between two good ones: its error alone is
    counted and the good segments around it are applied (never a crash)."""
    good1 = raw_seg(DP, 0, [madd(1, sym="GOOD"), madd(2, sym="GOOD", side="5", price=1_000_100)])
    make, err, used = MALFORMED_ALONE[case]
    bad = make(2)
    good2 = raw_seg(DP, 2 + used, [madd(3, sym="GOOD", size=5), blk(X.IexOrderDelete(symbol="GOOD", order_id=2))])
    recs = [(T0 + i * STEP, F.frame(p, dst=GROUP_A, dport=PORT_BAD)) for i, p in enumerate([good1, bad, good2])]
    ref = reference(recs)
    assert {k: v for k, v in ref.errors.items() if v} == {err: 1}, ref.errors
    assert ref.gaps == 0
    text, stats = check_against_ref(tmp_path, write(tmp_path, case + ".pcap", recs), ref, case)
    good_rows = [r for r in text.splitlines()[1:] if r.split(",")[1] == "GOOD"]
    assert good_rows[0].startswith("%d,GOOD,B,1,1000000," % BASE_DP), text
    assert not any(",S," in r for r in good_rows), text  # good2's delete


# ------------------------------------------------------------------ ITCH + IEX, PITCH + IEX


def test_mixed_itch_and_iex_capture(tmp_path):
    """pcaps/sample.pcap (ITCH) merged by time with the DEEP+ capture: the
    dump has the venue column; the XNAS rows are the ITCH-only replay's, the
    IEXG rows the reference's."""
    sample = os.path.join(ROOT, "pcaps", "sample.pcap")
    if not os.path.exists(sample):
        pytest.skip("pcaps/sample.pcap not in this checkout")
    itch = F.parse_pcap(open(sample, "rb").read())
    lo, hi = itch[0][0], itch[-1][0]
    dg = segments(DP, deep_plus_packets())
    step = max(1, min(STEP, (hi - lo) // (len(dg) + 2)))
    irecs = pcap_of(dg, t0=lo + step, step=step)
    mixed = sorted(itch + irecs, key=lambda r: r[0])
    itch_text, itch_stats = replay_books(tmp_path, sample, DEPTH, tag="itch")
    ref = reference(irecs)
    text, stats = replay_books(tmp_path, write(tmp_path, "mixed.pcap", mixed), DEPTH, tag="mixed")
    check_ledger(stats, "mixed")
    lines = text.splitlines()
    assert lines[0] == "locate,symbol,side,level,price,shares,orders,venue"
    rows = [ln + ",XNAS" for ln in itch_text.splitlines()[1:]] + ref.dump_csv(DEPTH, venue=True).splitlines()[1:]
    assert_csv_equal(text, "\n".join([lines[0]] + rows) + "\n", "itch + iex")
    assert iex_by_type(stats) == type_counts(dg)
    assert stats["messages"] == itch_stats["messages"] + sum(type_counts(dg).values())


CONFIG = """
[[channel]]
name = "bzx"
protocol = "pitch"
venue = "BZX"
line_a = "%s:%d"

[[channel]]
name = "iex"
protocol = "iex"
venue = "IEXG"
line_a = "%s:%d"
line_b = "%s:%d"
"""


def test_pitch_and_iex_venues_from_a_config(tmp_path):
    """A PITCH venue (BZX, first in the config: venue rank 0) and IEX DEEP+
    on A/B lines (IEXG, rank 1: its DEEP+ ids start at 16384 + 12288, as without a config)."""
    pitch_port = 30001
    pmsgs = [
        [S.PitchAddOrderLong(order_id=1, side_indicator="B", quantity=100, symbol="PAAA", price=1_000_000)],
        [S.PitchAddOrderLong(order_id=2, side_indicator="S", quantity=100, symbol="PAAA", price=1_000_100)],
    ]
    precs = [
        (T0 + i * STEP + 500, F.frame(S.pitch_datagram(1, 1 + i, m), dst="233.1.1.1", dport=pitch_port))
        for i, m in enumerate(pmsgs)
    ]
    dg = segments(DP, deep_plus_packets())
    n = len(dg)
    irecs = pcap_of(
        dg, lines=("A", "B"), drop={"A": {i for i in range(n) if i % 3 == 1}, "B": {i for i in range(n) if i % 3 == 2}}
    )
    recs = sorted(precs + irecs, key=lambda r: r[0])
    cfg = tmp_path / "mix.toml"
    cfg.write_text(CONFIG % ("233.1.1.1", pitch_port, GROUP_A, PORT_DP, GROUP_B, PORT_DP))
    text, stats = replay_books(tmp_path, write(tmp_path, "mix.pcap", recs), DEPTH, extra=["--config", cfg], tag="mix")
    check_ledger(stats, "pitch + iex")
    bzx = PitchRef(0, "BZX", ports=[pitch_port]).feed_records(recs).finish()
    iex = IexRef(1, "IEXG", ports=[PORT_DP]).feed_records(recs).finish()
    rows = bzx.dump_csv(DEPTH, venue=True).splitlines()[1:] + iex.dump_csv(DEPTH, venue=True).splitlines()[1:]
    assert_csv_equal(text, "\n".join(["locate,symbol,side,level,price,shares,orders,venue"] + rows) + "\n", "mix")
    assert set(iex.ranks) == {DP} and min(iex.ranks[DP].values()) == BASE_DP == 16384 + 12288
    assert iex_by_type(stats) == type_counts(dg) and stats["gaps"] == 0
