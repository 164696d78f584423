"""The IEX reference (tests/iexref.py) on its own, on captures built with the
IEX scapy layers (feedhandler/scapy_iex.py) and tests/frames.py: detection,
every header rejection, the walk's errors, heartbeats, A/B arbitration of
differently cut segments, DEEP levels and events, TOPS quotes, DEEP+ orders,
instrument ids, price range.  Every expected value is worked out by hand
here, so a wrong rule in the reference fails."""

from __future__ import annotations

import os
import struct
import sys

import pytest

pytest.importorskip("scapy")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frames as F  # noqa: E402
import iexref  # noqa: E402
from feedhandler import scapy_iex as X  # noqa: E402
from iexref import IexRef  # noqa: E402

PORT = 10378
GROUP_A = F.GROUP_A
GROUP_B = F.GROUP_B
T0 = 1_700_000_000 * 1_000_000_000
STEP = 100_000
TS = 1471980724912754610
# Each IEX feed has its own id block: 16384 + (venue_rank + 0 DEEP+, + 1 DEEP,
# + 2 TOPS) * 12288; IEXG is venue rank 1 without a config (after BATS).
BASE_DP = 16384 + 1 * 12288  # 28672
BASE_DEEP = 16384 + 2 * 12288  # 40960
BASE_TOPS = 16384 + 3 * 12288  # 53248


# ------------------------------------------------------------------ builders


def seg(proto, seq, msgs, session=1, **kw):
    """One segment (wire First Message Sequence Number seq)."""
    return X.iex_segment(proto, session, seq, msgs, **kw)


def raw_seg(proto, seq, blocks, count=None, plen=None, session=1, channel=1, version=1, offset=0, send=0):
    """A segment from raw blocks (each already length-prefixed), any header value."""
    body = b"".join(blocks)
    return (
        struct.pack(
            "<BBHIIHHqqq",
            version,
            0,
            proto,
            channel,
            session,
            len(body) if plen is None else plen,
            len(blocks) if count is None else count,
            offset,
            seq,
            send,
        )
        + body
    )


def blk(m) -> bytes:
    b = bytes(m)
    return struct.pack("<H", len(b)) + b


def recs_of(payloads, port=PORT, dst=GROUP_A):
    return [(T0 + i * STEP, F.frame(p, dst=dst, dport=port)) for i, p in enumerate(payloads)]


def run(payloads, **kw):
    return IexRef(**kw).feed_pcap(F.pcap_bytes(recs_of(payloads)))


def add(oid, sym="ZIEXT", side="8", size=100, price=990500):
    return X.IexAddOrder(side=side, timestamp=TS, symbol=sym, order_id=oid, size=size, price=price)


def plu(side, sym, size, price, done=True):
    cls = X.IexPriceLevelUpdateBuy if side == "B" else X.IexPriceLevelUpdateSell
    return cls(event_flags=1 if done else 0, timestamp=TS, symbol=sym, size=size, price=price)


def quote(sym, bid_size, bid, ask, ask_size):
    return X.IexQuoteUpdate(symbol=sym, bid_size=bid_size, bid_price=bid, ask_price=ask, ask_size=ask_size)


def rows(ref, depth=10):
    return ref.dump_csv(depth).splitlines()[1:]


def nonzero(errors):
    return {k: v for k, v in errors.items() if v}


DP, DEEP, TOPS = X.IEX_DEEP_PLUS, X.IEX_DEEP, X.IEX_TOPS


# ------------------------------------------------------------------ detection


def test_detection_frames_as_iex():
    ref = run([seg(DP, 0, [add(1)])])
    assert ref.protos == {(int.from_bytes(F.ip_aton(GROUP_A), "big"), PORT): "iex"}
    assert rows(ref) == ["%d,ZIEXT,B,1,990500,100,1" % BASE_DP]
    assert ref.iex_packets == 1 and ref.messages == 1 and ref.by_type == {"iex_a": 1}


def test_looks_like_checks_each_condition():
    good = seg(DEEP, 0, [plu("B", "A", 1, 1)])
    assert iexref.iex_looks_like(good)
    assert iexref.iex_looks_like(seg(TOPS, 5, []))  # a heartbeat frames
    assert not iexref.iex_looks_like(good[:39])
    assert not iexref.iex_looks_like(b"\x02" + good[1:])  # version
    assert not iexref.iex_looks_like(good[:2] + b"\x01\x80" + good[4:])  # protocol 0x8001
    assert not iexref.iex_looks_like(good + b"\0")  # payload length
    assert not iexref.iex_looks_like(raw_seg(DEEP, 0, [b"\x00\x00"]))  # a zero-length block
    two = raw_seg(DEEP, 0, [blk(plu("B", "A", 1, 1))], count=2)
    assert not iexref.iex_looks_like(two)  # the count does not fill it


def test_destination_decided_by_its_first_clean_datagram():
    """A first datagram that frames as nothing does not decide; one to another
    port that frames as PITCH makes that port PITCH: its IEX-looking datagrams
    after are not read."""
    bad_first = seg(DP, 0, [add(9, sym="NOPE")]) + b"\0"  # payload length off by one: frames as nothing
    pitch = struct.pack("<HBBI", 8, 0, 1, 1)  # a PITCH heartbeat
    recs = recs_of([bad_first, seg(DP, 0, [add(1)])]) + [
        (T0 + 5 * STEP, F.frame(pitch, dport=PORT + 1)),
        (T0 + 6 * STEP, F.frame(seg(DP, 0, [add(2, sym="OTHER")]), dport=PORT + 1)),
    ]
    ref = IexRef().feed_pcap(F.pcap_bytes(recs))
    assert rows(ref) == ["%d,ZIEXT,B,1,990500,100,1" % BASE_DP]
    assert ref.iex_packets == 1 and ref.packets == 1
    assert sorted(ref.protos.values()) == ["iex", "pitch"]
    assert nonzero(ref.errors) == {}


def test_mold_destination_is_not_iex():
    mold = F.mold([F.msg_A()], seq=1)
    ref = IexRef().feed_pcap(F.pcap_bytes(recs_of([mold, seg(DP, 0, [add(1)])])))
    assert ref.iex_packets == 0 and rows(ref) == []


# ------------------------------------------------------------------ header rejections


def _good(seq):
    return seg(DP, seq, [add(100 + seq, sym="GOOD", price=1_000_000 + seq)])


HEADER_CASES = {
    "truncated": (lambda: _good(1)[:39], "iex_truncated"),
    "version": (lambda: b"\x02" + _good(1)[1:], "iex_header"),
    "payload_length": (lambda: raw_seg(DP, 1, [blk(add(5))], plen=37), "iex_header"),
    "payload_length_long": (lambda: _good(1) + b"\0\0", "iex_header"),
    "channel0": (lambda: raw_seg(DP, 1, [blk(add(5))], channel=0), "iex_header"),
    "session0": (lambda: raw_seg(DP, 1, [blk(add(5))], session=0), "iex_header"),
    "offset_negative": (lambda: raw_seg(DP, 1, [blk(add(5))], offset=-1), "iex_header"),
    "seq_negative": (lambda: raw_seg(DP, -1, [blk(add(5))]), "iex_header"),
    "send_negative": (lambda: raw_seg(DP, 1, [blk(add(5))], send=-(1 << 63)), "iex_header"),
    "heartbeat_with_payload": (lambda: raw_seg(DP, 1, [blk(add(5))], count=0), "iex_header"),
    "protocol_8001": (lambda: raw_seg(0x8001, 1, [blk(add(5))]), "iex_protocol"),
    "protocol_0": (lambda: raw_seg(0, 1, [blk(add(5))]), "iex_protocol"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_each_header_rejection(case):
    """A good segment, the bad one, the next good one: the bad one is counted
    under its error alone and rejected (no stream, no iex_packets, no
    sequence), the good ones are applied without a gap."""
    make, err = HEADER_CASES[case]
    ref = run([_good(0), make(), _good(1)])
    assert nonzero(ref.errors) == {err: 1}
    assert ref.pkt_rejected == 1 and ref.packets == 3 and ref.iex_packets == 2
    assert ref.gaps == 0 and ref.messages == 2 and ref.heartbeats == 0
    assert rows(ref) == ["%d,GOOD,B,1,1000001,100,1" % BASE_DP, "%d,GOOD,B,2,1000000,100,1" % BASE_DP]


def test_version_checked_before_protocol():
    ref = run([_good(0), b"\x02" + raw_seg(0x1234, 1, [blk(add(5))])[1:]])
    assert nonzero(ref.errors) == {"iex_header": 1}


# ------------------------------------------------------------------ walk errors, types, lengths


def test_walk_errors_and_the_sequence_they_consume():
    """count overrun / message overrun stop the walk (only whole messages
    before consume sequence numbers), trailing bytes after the count are
    counted and the messages applied: the next segments follow on without a
    gap."""
    a = [blk(add(i, price=1_000_000 + i)) for i in range(10)]
    P = [
        raw_seg(DP, 0, [a[7]]),  # a clean first segment decides the destination
        raw_seg(DP, 1, a[0:2], count=3),  # count overrun: 2 whole, next wire 3
        raw_seg(DP, 3, [a[2], b"\x00\x00" + b"\0" * 10], count=2),  # length 0: 1 whole, next 4
        raw_seg(DP, 4, [a[3], struct.pack("<H", 200) + bytes(add(99))], count=2),  # past the end: next 5
        raw_seg(DP, 5, [a[4], b"\x01"], count=1),  # 1 byte after the count: trailing, next 6
        raw_seg(DP, 6, [a[5], b"\x01"], count=2),  # 1 byte where a length should be: count overrun, next 7
        raw_seg(DP, 7, [a[6]]),
    ]
    ref = run(P)
    assert nonzero(ref.errors) == {
        "iex_count_overrun": 2,
        "iex_msg_overrun": 2,
        "iex_trailing_bytes": 1,
    }
    assert ref.gaps == 0 and ref.messages == 8 and ref.next_seq[(PORT, 1, 1, DP)] == 9
    assert ref.book.counters["adds"] == 8 and 99 not in ref.book.orders


def test_unknown_type_and_bad_length_skip_and_consume_sequence():
    P = [
        seg(DEEP, 0, [X.IexQuoteUpdate(symbol="Q"), plu("B", "LVL", 10, 500)]),  # Q is TOPS only
        seg(DEEP, 2, [bytes(add(1))]),  # 'a' is DEEP+ only
        seg(DEEP, 3, [bytes(plu("S", "LVL", 5, 600))[:29], plu("S", "LVL", 7, 700)]),  # 29 bytes < 30
        seg(DEEP, 5, [b"\x7e"]),  # a 1-byte unknown message
        seg(DEEP, 6, [plu("B", "LVL", 11, 400)]),
    ]
    ref = run(P)
    assert nonzero(ref.errors) == {"iex_unknown_type": 3, "iex_bad_length": 1}
    assert ref.gaps == 0 and ref.messages == 3 and ref.by_type == {"iex_8": 2, "iex_5": 1}
    assert rows(ref) == [
        "%d,LVL,B,1,500,10,0" % BASE_DEEP,
        "%d,LVL,B,2,400,11,0" % BASE_DEEP,
        "%d,LVL,S,1,700,7,0" % BASE_DEEP,
    ]
    assert ref.ranks == {DEEP: {b"LVL     ": BASE_DEEP}}  # an unknown type gives no id


def test_long_message_is_accepted_extra_ignored():
    longer = bytes(add(1, size=300)) + b"\xff" * 6
    ref = run([seg(DP, 0, [longer, X.IexOrderDelete(symbol="ZIEXT", order_id=2)])])
    assert nonzero(ref.errors) == {}
    assert rows(ref) == ["%d,ZIEXT,B,1,990500,300,1" % BASE_DP]
    assert ref.messages == 2 and ref.book.counters["unknown_ref"] == 1


# ------------------------------------------------------------------ heartbeats, sequence, A/B


def test_heartbeat_reveals_a_hole():
    """Wire messages 0-2 arrive, 3-4 never do, a heartbeat says the next is 5:
    a gap of 2; a heartbeat at the expected sequence is no gap."""
    ok = run([seg(DP, 0, [add(1), add(2), add(3)]), seg(DP, 3, [])])
    assert ok.heartbeats == 1 and ok.gaps == 0
    lost = run([seg(DP, 0, [add(1), add(2), add(3)]), seg(DP, 5, [])])
    assert lost.heartbeats == 1 and lost.gaps == 2
    assert lost.stale_ids() == {BASE_DP}
    assert lost.iex_packets == 2 and lost.messages == 3


def test_first_sequence_0_is_internal_1_and_no_gap():
    ref = run([seg(TOPS, 0, [quote("A", 1, 10, 20, 2)]), seg(TOPS, 1, [quote("A", 3, 11, 21, 4)])])
    assert ref.next_seq == {(PORT, 1, 1, TOPS): 3} and ref.gaps == 0 and ref.duplicates == 0


def test_hole_held_to_the_end_then_a_gap():
    ref = run([seg(DP, 0, [add(1)]), seg(DP, 3, [add(4)]), seg(DP, 4, [add(5)])])
    assert ref.gaps == 2 and ref.book.counters["adds"] == 3


def test_ab_lines_cut_differently():
    """Ten messages; line A cuts them 3/3/4, line B 2/5/3; A loses its second
    segment, B its third: the books are the single-line books, no gap, and
    the duplicates are the messages applied already when a copy came."""
    msgs = [add(i, price=1_000_000 + 100 * i, side="85"[i % 2]) for i in range(10)]
    single = run([seg(DP, 0, msgs)])
    a = [seg(DP, 0, msgs[0:3]), seg(DP, 3, msgs[3:6]), seg(DP, 6, msgs[6:10])]
    b = [seg(DP, 0, msgs[0:2]), seg(DP, 2, msgs[2:7]), seg(DP, 7, msgs[7:10])]
    recs = []
    for i in range(3):
        if i != 1:
            recs.append((T0 + i * STEP, F.frame(a[i], dst=GROUP_A, dport=PORT)))
        if i != 2:
            recs.append((T0 + i * STEP + 2000, F.frame(b[i], dst=GROUP_B, dport=PORT)))
    ref = IexRef().feed_pcap(F.pcap_bytes(recs))
    assert ref.dump_csv() == single.dump_csv()
    assert ref.gaps == 0 and ref.messages == 10
    # A 0-2 applied; B 0-1: 2 duplicates; B 2-6: 2 is a duplicate; A 6-9: 6 is a duplicate
    assert ref.duplicates == 4
    # lost on both lines: B's 7-9 segment with A's third gone too
    recs2 = [r for r in recs if r[1] != F.frame(a[2], dst=GROUP_A, dport=PORT)]
    lost = IexRef().feed_pcap(F.pcap_bytes(recs2))
    assert lost.gaps == 0 and lost.messages == 7  # nothing after message 6 ever arrived: no hole seen
    late = IexRef().feed_pcap(F.pcap_bytes(recs2 + [(T0 + 9 * STEP, F.frame(seg(DP, 10, []), dport=PORT))]))
    assert late.gaps == 3  # the heartbeat shows 7-9 missing


def test_a_waiting_copy_starting_at_the_same_sequence_is_a_duplicate():
    first = seg(DP, 0, [add(1)])
    after_hole = seg(DP, 2, [add(3), add(4)])
    ref = run([first, after_hole, after_hole, seg(DP, 1, [add(2)])])
    assert ref.duplicates == 2 and ref.gaps == 0 and ref.book.counters["adds"] == 4


def test_new_session_is_a_new_stream():
    ref = run([seg(DP, 0, [add(1)], session=7), seg(DP, 0, [add(2, price=990600)], session=8)])
    assert ref.gaps == 0 and ref.duplicates == 0 and ref.book.counters["adds"] == 2
    assert set(ref.next_seq) == {(PORT, 1, 7, DP), (PORT, 1, 8, DP)}


# ------------------------------------------------------------------ DEEP


def test_deep_event_levels():
    """A three-update event (flags 0, 0, 1) sets absolute sizes; the symbol's
    event is open until the flag-1 update; size 0 removes a level."""
    ref = IexRef()
    recs = recs_of(
        [
            seg(DEEP, 0, [plu("B", "ZIEXT", 100, 990500, done=False), plu("B", "ZIEXT", 200, 990400, done=False)]),
        ]
    )
    ref.feed_records(recs)
    assert ref.open_events == {BASE_DEEP}
    ref.feed_records(
        recs_of(
            [
                seg(DEEP, 2, [plu("S", "ZIEXT", 300, 990600, done=True)]),
                seg(
                    DEEP,
                    3,
                    [
                        plu("B", "ZIEXT", 50, 990500, done=False),  # set to 50, not +50
                        plu("B", "ZIEXT", 0, 990400, done=False),  # removed
                        plu("B", "OTHER", 10, 100, done=True),  # another symbol's event closes alone
                    ],
                ),
            ]
        )
    )
    ref.finish()
    assert ref.open_events == {BASE_DEEP}  # ZIEXT's second event never closed
    assert rows(ref) == [
        "%d,ZIEXT,B,1,990500,50,0" % BASE_DEEP,
        "%d,ZIEXT,S,1,990600,300,0" % BASE_DEEP,
        "%d,OTHER,B,1,100,10,0" % (BASE_DEEP + 1),
    ]
    assert ref.by_type == {"iex_8": 5, "iex_5": 1} and ref.book.counters["adds"] == 0


def test_deep_trade_break_and_state_messages():
    P = [
        seg(
            DEEP,
            0,
            [
                X.IexSystemEvent(system_event="O"),
                X.IexSecurityDirectory(symbol="DIR", round_lot_size=10),
                X.IexTradingStatus(symbol="HLT", trading_status="H", reason="T1"),
                X.IexTradeReport(symbol="TRD", size=5, price=1000, trade_id=1),
                X.IexTradeBreak(symbol="TRD", size=5, price=1000, trade_id=1),
                X.IexOfficialPrice(symbol="OFF", official_price=1000),
                X.IexAuctionInformation(symbol="AUC", reference_price=1000),
                X.IexSecurityEvent(symbol="SEV"),
                X.IexOperationalHaltStatus(symbol="OPH"),
                X.IexShortSalePriceTestStatus(symbol="SSP"),
                X.IexRetailLiquidityIndicator(symbol="RLI"),
                plu("B", "DIR", 1, 1),
            ],
        )
    ]
    ref = run(P)
    assert ref.ranks == {
        DEEP: {
            s.encode().ljust(8, b" "): BASE_DEEP + i
            for i, s in enumerate(["DIR", "HLT", "TRD", "OFF", "AUC", "SEV", "OPH", "SSP", "RLI"])
        }
    }
    assert ref.book.counters["trades"] == 1 and ref.book.counters["breaks"] == 1
    assert ref.system_events == ["O"] and ref.messages == 12
    assert rows(ref) == ["%d,DIR,B,1,1,1,0" % BASE_DEEP]


def test_deep_plu_at_price_0_changes_no_level_but_ends_its_event():
    """A Price Level Update at price 0 counts iex_price_range and sets no
    level (nor removes one: no unknown_ref), but its Event Flags still count:
    flag set closes the symbol's event, flag clear opens one."""
    opening = seg(DEEP, 0, [plu("B", "ZERO", 100, 1000, done=False), plu("S", "ZERO", 50, 1100, done=False)])
    ref = run([opening, seg(DEEP, 2, [plu("B", "ZERO", 0, 0, done=True)])])
    assert nonzero(ref.errors) == {"iex_price_range": 1}
    assert ref.open_events == set()
    assert rows(ref) == ["%d,ZERO,B,1,1000,100,0" % BASE_DEEP, "%d,ZERO,S,1,1100,50,0" % BASE_DEEP]
    assert ref.book.counters["unknown_ref"] == 0 and ref.messages == 3
    still_open = run([opening, seg(DEEP, 2, [plu("B", "ZERO", 7, 0, done=False)])])
    assert nonzero(still_open.errors) == {"iex_price_range": 1}
    assert still_open.open_events == {BASE_DEEP}
    assert rows(still_open) == rows(ref)
    opens = run([seg(DEEP, 0, [plu("S", "NEW", 5, 0, done=False)])])  # a price-0 update opens an event
    assert opens.open_events == {BASE_DEEP} and rows(opens) == [] and opens.ranks == {DEEP: {b"NEW     ": BASE_DEEP}}


def test_deep_removing_a_missing_level_is_unknown_ref():
    """Size 0 removes the level at that price; at a price with no level it
    counts the book's unknown_ref and changes nothing."""
    ref = run(
        [
            seg(
                DEEP,
                0,
                [
                    plu("B", "LVL", 10, 500),
                    plu("B", "LVL", 0, 600),  # no bid at 600
                    plu("S", "LVL", 0, 500),  # a bid at 500, no ask
                    plu("B", "LVL", 0, 500),  # removed
                    plu("B", "LVL", 0, 500),  # gone already
                ],
            )
        ]
    )
    assert ref.book.counters["unknown_ref"] == 3 and rows(ref) == [] and nonzero(ref.errors) == {}


def test_trade_break_price_is_not_checked():
    """A Trade Break's price is not used, so never iex_price_range; a Trade
    Report's is."""
    P = [
        seg(
            DEEP,
            0,
            [
                X.IexTradeBreak(symbol="TRD", size=5, price=-1, trade_id=1),
                X.IexTradeBreak(symbol="TRD", size=5, price=1 << 40, trade_id=2),
                X.IexTradeReport(symbol="TRD", size=5, price=-1, trade_id=3),
            ],
        ),
        seg(TOPS, 0, [X.IexTradeBreak(symbol="TRD", size=5, price=-(1 << 62), trade_id=4)], session=2),
    ]
    ref = run(P)
    assert nonzero(ref.errors) == {"iex_price_range": 1}
    assert ref.book.counters["breaks"] == 3 and ref.book.counters["trades"] == 0
    assert ref.ranks == {DEEP: {b"TRD     ": BASE_DEEP}, TOPS: {b"TRD     ": BASE_TOPS}}


# ------------------------------------------------------------------ TOPS


def test_tops_quote_is_one_level_a_side():
    P = [
        seg(TOPS, 0, [quote("ZIEXT", 100, 990500, 990600, 200)]),
        seg(TOPS, 1, [quote("ZIEXT", 300, 990400, 990700, 400), quote("B", 5, 10, 0, 9)]),  # ask price 0: no ask
        seg(TOPS, 3, [quote("C", 0, 10, 20, 9)]),  # bid size 0: no bid
    ]
    ref = run(P)
    assert rows(ref) == [
        "%d,ZIEXT,B,1,990400,300,0" % BASE_TOPS,
        "%d,ZIEXT,S,1,990700,400,0" % BASE_TOPS,
        "%d,B,B,1,10,5,0" % (BASE_TOPS + 1),
        "%d,C,S,1,20,9,0" % (BASE_TOPS + 2),
    ]
    ref2 = run(P + [seg(TOPS, 4, [quote("ZIEXT", 0, 0, 0, 0)])])  # both sides empty
    assert [r for r in rows(ref2) if "ZIEXT" in r] == []
    assert ref2.by_type == {"iex_Q": 5}


# ------------------------------------------------------------------ DEEP+


def test_deep_plus_order_operations():
    P = [
        seg(
            DP,
            0,
            [
                add(1, side="8", size=100, price=990500),
                add(2, side="8", size=50, price=990500),
                add(3, side="5", size=70, price=990700),
                add(4, side="5", size=10, price=990800),
            ],
        ),
        seg(
            DP,
            4,
            [
                X.IexOrderModify(symbol="ZIEXT", order_id=1, size=40, price=990400),  # new price and size
                X.IexOrderExecuted(symbol="ZIEXT", order_id=3, size=20, price=990700, trade_id=9),
                X.IexOrderDelete(symbol="ZIEXT", order_id=4),
                X.IexTradeReport(symbol="ZIEXT", size=1, price=990600, trade_id=10),
                X.IexOrderModify(symbol="ZIEXT", order_id=2, size=0, price=990500),  # size 0: removed
            ],
        ),
    ]
    ref = run(P)
    assert rows(ref) == [
        "%d,ZIEXT,B,1,990400,40,1" % BASE_DP,
        "%d,ZIEXT,S,1,990700,50,1" % BASE_DP,
    ]
    c = ref.book.counters
    assert (c["adds"], c["replaces"], c["executes"], c["deletes"], c["zero_rejected"]) == (5, 2, 1, 1, 1)
    assert c["trades"] == 2  # the execution (printable) and the Trade
    assert ref.by_type == {"iex_a": 4, "iex_M": 2, "iex_L": 1, "iex_R": 1, "iex_T": 1}


def test_deep_plus_bad_side_and_clear_book():
    P = [
        seg(
            DP,
            0,
            [
                add(1, sym="KEEP", side="5", price=2000),
                add(2, sym="GONE", side="8", price=1000),
                add(3, sym="GONE", side="5", price=1100),
                add(4, sym="GONE", side="B", price=1000),  # 'B' is not a DEEP+ side
                X.IexClearBook(symbol="GONE"),
                add(5, sym="GONE", side="8", price=900),
            ],
        )
    ]
    ref = run(P)
    assert ref.book.counters["bad_side"] == 1 and ref.iex_clears == 1
    assert rows(ref) == ["%d,KEEP,S,1,2000,100,1" % BASE_DP, "%d,GONE,B,1,900,100,1" % (BASE_DP + 1)]


# ------------------------------------------------------------------ ids and prices


def test_ids_by_first_appearance_and_venue_rank():
    P = [seg(DP, 0, [X.IexSystemEvent(), X.IexTradingStatus(symbol="BBB"), add(1, sym="AAA"), add(2, sym="BBB")])]
    ref = run(P, venue_rank=2, venue_name="IEXG")
    base = 16384 + 2 * 12288
    assert rows(ref) == ["%d,BBB,B,1,990500,100,1" % base, "%d,AAA,B,1,990500,100,1" % (base + 1)]
    assert ref.dump_csv(venue=True).splitlines()[2] == "%d,AAA,B,1,990500,100,1,IEXG" % (base + 1)
    assert ref.dump_csv(venue=True).splitlines()[0].endswith(",venue")


def test_id_range_at_the_12289th_symbol():
    ts = struct.pack("<q", TS)
    hs = [struct.pack("<H", 22) + b"HT" + ts + b"S%05d  " % i + b"    " for i in range(12288)]
    P, seq = [], 0
    for k in range(0, len(hs), 2000):
        part = hs[k : k + 2000]
        P.append(raw_seg(DP, seq, part))
        seq += len(part)
    P.append(seg(DP, seq, [add(1, sym="LAST"), add(2, sym="S00007", price=5)]))
    ref = run(P)
    assert set(ref.ranks) == {DP}
    assert len(ref.ranks[DP]) == 12288 and ref.ranks[DP][b"S12287  "] == BASE_DP + 12287
    assert nonzero(ref.errors) == {"iex_id_range": 1}
    assert rows(ref) == ["%d,S00007,B,1,5,100,1" % (BASE_DP + 7)]


def test_price_range():
    P = [
        seg(
            DP,
            0,
            [
                add(1, sym="NEG", price=-1),  # not applied; NEG still gets rank 0
                add(2, sym="BIG", price=1 << 32),  # not applied; rank 1
                add(3, sym="TOP", price=(1 << 32) - 1),  # fine: rank 2
                add(4, sym="TOP", price=1000, size=100),
                add(5, sym="TOP", price=2000, side="5", size=100),
            ],
        ),
        seg(
            DP,
            5,
            [
                X.IexOrderModify(symbol="TOP", order_id=4, size=10, price=-5),  # deletes order 4
                X.IexOrderExecuted(symbol="TOP", order_id=5, size=30, price=1 << 40),  # cancels 30
                X.IexTradeReport(symbol="TRD", size=1, price=-1),
                add(6, sym="NEG", price=7),  # NEG's rank 0
            ],
        ),
        seg(TOPS, 0, [quote("QQ", 1, 10, -20, 1), quote("QQ", 1, 10, 20, 1)], session=2),
    ]
    ref = run(P)
    assert ref.errors["iex_price_range"] == 6
    assert rows(ref) == [
        "%d,NEG,B,1,7,100,1" % BASE_DP,
        "%d,TOP,B,1,4294967295,100,1" % (BASE_DP + 2),
        "%d,TOP,S,1,2000,70,1" % (BASE_DP + 2),
        "%d,QQ,B,1,10,1,0" % BASE_TOPS,
        "%d,QQ,S,1,20,1,0" % BASE_TOPS,
    ]
    c = ref.book.counters
    assert c["deletes"] == 1 and c["cancels"] == 1 and c["executes"] == 0 and c["trades"] == 0
    assert ref.ranks[DP][b"BIG     "] == BASE_DP + 1 and ref.ranks[DP][b"TRD     "] == BASE_DP + 3
    assert ref.ranks[TOPS] == {b"QQ      ": BASE_TOPS}  # TOPS ranks on its own, from 0


def test_stats_keys():
    ref = run([seg(DP, 0, [add(1), X.IexSystemEvent()]), seg(DP, 2, [])])
    st = ref.stats()
    assert st["by_type"] == {"iex_a": 1, "iex_S": 1}
    assert (st["messages"], st["heartbeats"], st["iex_packets"], st["gaps"], st["duplicates"]) == (2, 1, 2, 0, 0)
    assert set(st["errors"]) == set(iexref.ERRORS) and st["book"]["adds"] == 1


def test_price_range_of_auction_and_official_price():
    """Auction Information: reference, indicative clearing and auction book
    clearing prices are checked (the collars are not); Official Price too.
    Each message gives its symbol an id all the same."""
    P = [
        seg(
            DEEP,
            0,
            [
                X.IexAuctionInformation(symbol="A1", indicative_clearing_price=-1),
                X.IexAuctionInformation(symbol="A2", auction_book_clearing_price=1 << 32),
                X.IexAuctionInformation(symbol="A3", reference_price=1 << 33),
                X.IexAuctionInformation(symbol="A4", lower_auction_collar=-5, upper_auction_collar=1 << 40),
                X.IexOfficialPrice(symbol="O1", official_price=-100),
                X.IexOfficialPrice(symbol="O2", official_price=100),
            ],
        )
    ]
    ref = run(P)
    assert ref.errors["iex_price_range"] == 4 and ref.messages == 6
    assert set(ref.ranks) == {DEEP}
    assert len(ref.ranks[DEEP]) == 6 and ref.ranks[DEEP][b"O2      "] == BASE_DEEP + 5
