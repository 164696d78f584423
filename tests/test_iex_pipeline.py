"""IEX through the pipeline: what a reader of the shared-memory segment sees
(a DEEP event published only when complete, the consolidated BBO across ITCH
and IEX), sessions, gzip inputs cut short, decode-only counting, several
lanes.  Captures are built byte by byte (tests/frames.py); the whole-book
comparisons with the pure-Python reference are tests/test_iex_books.py."""

from __future__ import annotations

import gzip
import json
import os
import struct
import uuid

import pytest

import frames as F
from feedhandler.core import ledger
from feedhandler.replay import Replay
from test_books import cli, replay_books

DEEP, DEEPPLUS, TOPS = F.IEX_DEEP, F.IEX_DEEPPLUS, F.IEX_TOPS
# Without a config IEXG takes id blocks 1..3 (BATS holds block 0): DEEP+, DEEP, TOPS.
ID_DEEPPLUS, ID_DEEP, ID_TOPS = 16384 + 12288, 16384 + 2 * 12288, 16384 + 3 * 12288
SMALL = dict(max_orders=4096, max_levels=8192, depth=5, ring_events=4096)


def pcap(segments, port=10378, group=F.GROUP_A, t0=F.IEX_T0):
    """A capture of UDP payloads, 1 us apart."""
    return F.pcap_bytes([(t0 + i * 1000, F.frame(p, dst=group, dport=port)) for i, p in enumerate(segments)])


@pytest.fixture
def shm_name():
    name = "fhtest-iex-" + uuid.uuid4().hex[:12]
    yield name
    try:
        os.unlink("/dev/shm/" + name)
    except FileNotFoundError:
        pass


def levels(seg, key):
    b = seg.book(key)
    return (
        [(int(p), int(s)) for p, s in zip(b.bids[0], b.bids[1])],
        [(int(p), int(s)) for p, s in zip(b.asks[0], b.asks[1])],
    )


def test_a_deep_event_is_published_only_when_complete(shm_name):
    """Levels of an open event are applied but not published: between the
    packets of an event that crosses the book on its way, a reader still sees
    the book as the last complete event left it, and no BBO event reports
    the crossed state."""
    done = F.iex_segment(DEEP, 5, 0, [F.iex_plu(b"8", 1, 100, 500000), F.iex_plu(b"5", 1, 200, 500300)])
    # One event over two segments: a sell level below the bid first (crossed),
    # then the bid removed and a lower one set, the last update completing it.
    half = F.iex_segment(DEEP, 5, 2, [F.iex_plu(b"5", 0, 70, 499900), F.iex_plu(b"8", 0, 0, 500000)])
    rest = F.iex_segment(DEEP, 5, 4, [F.iex_plu(b"8", 1, 40, 499800)])
    with Replay(shm=shm_name, **SMALL) as r:
        assert r.run_buffer(pcap([done, half])).ok
        seg = r.segment()
        assert levels(seg, ID_DEEP) == ([(500000, 100)], [(500300, 200)])
        assert r.stats()["messages"] == 4
        assert r.run_buffer(pcap([rest], t0=F.IEX_T0 + 10_000)).ok
        assert levels(seg, ID_DEEP) == ([(499800, 40)], [(499900, 70), (500300, 200)])
        r.finish()
        seg.seek("oldest")
        ev = seg.events(1 << 10)
        bbo = [
            (int(e["price1"]), int(e["qty1"]), int(e["price2"]), int(e["qty2"]))
            for e in ev
            if e["type"] == 1 and e["locate"] == ID_DEEP
        ]
    # Two BBOs reported: after the first event and after the second, never in between.
    assert bbo == [(500000, 100, 500300, 200), (499800, 40, 499900, 70)]


def test_an_open_event_does_not_hold_other_instruments(shm_name):
    """Only the instrument whose event is open waits: another symbol's
    complete update in the same packet is published at once."""
    seg1 = F.iex_segment(DEEP, 5, 0, [F.iex_plu(b"8", 0, 10, 1000, "AAA"), F.iex_plu(b"8", 1, 20, 2000, "BBB")])
    with Replay(shm=shm_name, **SMALL) as r:
        assert r.run_buffer(pcap([seg1])).ok
        seg = r.segment()
        assert levels(seg, ID_DEEP + 1) == ([(2000, 20)], [])
        assert levels(seg, ID_DEEP) == ([], [])
        r.finish()


def test_the_consolidated_bbo_takes_iex_top_of_book(shm_name):
    """An ITCH venue and IEX TOPS quoting one symbol: the consolidated BBO
    names IEXG where IEX is best."""
    itch = F.frame(
        F.mold([F.msg_R(stock=b"SPY     "), F.msg_A(ref=1, price=1500000, shares=100, stock=b"SPY     ")], seq=1)
    )
    quote = F.iex_segment(TOPS, 3, 0, [F.iex_quote(300, 1500100, 1500500, 400, "SPY")])
    data = F.pcap_bytes([(F.IEX_T0, itch), (F.IEX_T0 + 1000, F.frame(quote, dst=F.GROUP_B, dport=10377))])
    with Replay(shm=shm_name, **SMALL) as r:
        assert r.run_buffer(data).ok
        r.finish()
        bbo = r.segment().bbo("SPY")
    assert (bbo["bid_price"], bbo["bid_shares"], bbo["bid_venue"]) == (1500100, 300, "IEXG")
    assert (bbo["ask_price"], bbo["ask_shares"], bbo["ask_venue"]) == (1500500, 400, "IEXG")
    assert bbo["venues"]["XNAS"] == (1500000, 100, 0, 0)


def test_sessions_on_one_line(tmp_path):
    """A second session on the same group:port is a new stream and a session
    change; each session numbers its messages from its own start, and End of
    Messages ends a stream."""
    s1 = [
        F.iex_segment(DEEPPLUS, 41, 0, [F.iex_system("O"), F.iex_add(1, "8", 100, 990000)]),
        F.iex_segment(DEEPPLUS, 41, 2, [F.iex_system("C")]),
    ]
    s2 = [F.iex_segment(DEEPPLUS, 42, 0, [F.iex_system("O"), F.iex_add(2, "5", 50, 991000)])]
    p = tmp_path / "two.pcap"
    p.write_bytes(pcap(s1 + s2))
    _, st = replay_books(tmp_path, p)
    assert (st["streams"], st["session_changes"], st["gaps"], st["messages"]) == (2, 1, 0, 5)
    assert st["book"]["orders_live"] == 2


def test_segment_header_rejections_are_counted(tmp_path):
    """After a clean first segment decides the destination is IEX-TP, every
    malformed header is counted by reason and dropped whole."""
    good = F.iex_segment(DEEPPLUS, 7, 0, [F.iex_add(1, "8", 100, 990000)])
    bad = [
        good[:39],  # shorter than the header
        F.iex_segment(DEEPPLUS, 7, 1, [F.iex_add(2, "8", 1, 1)], version=2),
        F.iex_segment(DEEPPLUS, 7, 1, [F.iex_add(2, "8", 1, 1)], paylen=5),
        F.iex_segment(DEEPPLUS, 0, 1, [F.iex_add(2, "8", 1, 1)]),  # session 0
        F.iex_segment(DEEPPLUS, 7, -1, [F.iex_add(2, "8", 1, 1)]),  # negative sequence
        F.iex_segment(DEEPPLUS, 7, 1, [], paylen=0, count=0) + b"\0",  # heartbeat with a payload
        F.iex_segment(0x8006, 7, 1, [F.iex_add(2, "8", 1, 1)]),
    ]
    p = tmp_path / "bad.pcap"
    p.write_bytes(pcap([good] + bad))
    _, st = replay_books(tmp_path, p)
    assert st["errors"] == {"iex_truncated": 1, "iex_header": 5, "iex_protocol": 1}
    assert (st["pkt_rejected"], st["iex_packets"], st["messages"]) == (7, 1, 1)
    assert ledger(st)["unaccounted"] == 0


def test_walk_and_message_errors(tmp_path):
    """The walk's errors stop it (the messages before count); an unknown type
    or a short message is skipped by its length, its sequence number used; a
    longer message is read (IEX may append fields) and its tail ignored."""
    add = F.iex_add(1, "8", 100, 990000)
    segs = [
        F.iex_segment(DEEPPLUS, 7, 0, [add, F.iex_quote(1, 1, 2, 1)]),  # a TOPS type on DEEP+
        F.iex_segment(DEEPPLUS, 7, 2, [F.iex_add(2, "8", 5, 990100)[:30]]),  # short
        F.iex_segment(DEEPPLUS, 7, 3, [F.iex_add(3, "5", 7, 990500) + b"\xff" * 6]),  # longer
        F.iex_segment(DEEPPLUS, 7, 4, [F.iex_add(4, "5", 9, 990600)], count=2),  # count past the payload
        F.iex_segment(DEEPPLUS, 7, 6, [F.iex_add(5, "8", 1, 990000)]) + b"\0",  # trailing byte
    ]
    segs[4] = segs[4][:12] + (len(segs[4]) - 40).to_bytes(2, "little") + segs[4][14:]
    p = tmp_path / "walk.pcap"
    p.write_bytes(pcap(segs))
    csv, st = replay_books(tmp_path, p)
    assert st["errors"] == {
        "iex_unknown_type": 1,
        "iex_bad_length": 1,
        "iex_count_overrun": 1,
        "iex_trailing_bytes": 1,
    }
    assert st["messages"] == 4 and st["by_type"] == {"iex_a": 4}
    assert st["gaps"] == 1  # the message the overrun segment promised and did not carry
    assert csv.splitlines()[1:] == [
        "%d,ZIEXT,B,1,990000,101,2" % ID_DEEPPLUS,
        "%d,ZIEXT,S,1,990500,7,1" % ID_DEEPPLUS,
        "%d,ZIEXT,S,2,990600,9,1" % ID_DEEPPLUS,
    ]


def test_a_price_the_books_cannot_hold_is_counted_not_truncated(tmp_path):
    """BRK.A trades near $700 000: Price(4) 7 000 000 000 does not fit the
    books' u32.  Its add is counted and not applied; a modify to such a price
    takes the order out; an execution at it still takes the shares off."""
    big = 7_000_000_000
    segs = [
        F.iex_segment(
            DEEPPLUS,
            7,
            0,
            [
                F.iex_add(1, "8", 10, big, "BRK.A"),
                F.iex_add(2, "8", 10, 4_000_000_000, "BRK.A"),
                F.iex_add(3, "5", 10, 4_100_000_000, "BRK.A"),
                F.iex_modify(2, 10, big, "BRK.A"),
                F.iex_executed(3, 4, big, 99, "BRK.A"),
            ],
        )
    ]
    p = tmp_path / "brk.pcap"
    p.write_bytes(pcap(segs))
    csv, st = replay_books(tmp_path, p)
    assert st["errors"] == {"iex_price_range": 3}
    assert csv.splitlines()[1:] == ["%d,BRK.A,S,1,4100000000,6,1" % ID_DEEPPLUS]
    assert (st["book"]["deletes"], st["book"]["cancels"], st["book"]["executes"]) == (1, 1, 0)


def test_decode_only_counts_what_the_books_count(tmp_path):
    """Decode-only mode checks, counts and folds every message exactly as the
    book modes do: same messages, types, errors and checksum."""
    segs = [
        F.iex_segment(DEEPPLUS, 7, 0, [F.iex_system("O"), F.iex_add(1, "8", 100, 990000), F.iex_clear()]),
        F.iex_segment(DEEP, 8, 0, [F.iex_plu(b"8", 1, 5, 100), F.iex_official("Q", 100, "MSFT")]),
        F.iex_segment(TOPS, 9, 0, [F.iex_quote(1, 100, 200, 2), F.iex_trade(1, 150, 3), F.iex_security_event("O")]),
    ]
    p = tmp_path / "all.pcap"
    p.write_bytes(pcap(segs))
    _, book = replay_books(tmp_path, p, tag="book")
    out = tmp_path / "decode.json"
    assert cli("replay", p, "--mode", "decode", "--stats-json", out, "-q").returncode == 0
    dec = json.loads(out.read_text())
    keys = ("messages", "by_type", "errors", "checksum", "iex_packets", "gaps", "duplicates")
    assert {k: dec[k] for k in keys} == {k: book[k] for k in keys}
    assert book["iex_clears"] == 1 and dec["iex_clears"] == 0  # a clear is a book operation


def test_a_gzip_capture_cut_short(tmp_path):
    """A .pcap.gz whose last record is cut: everything before it is applied,
    the replay says so and exits 1, as for any input cut short."""
    segs = [F.iex_segment(DEEPPLUS, 7, i, [F.iex_add(i + 1, "8", 10, 990000 + i)]) for i in range(20)]
    whole = pcap(segs)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gzip.compress(whole[:-10], mtime=0))
    ok = tmp_path / "ok.pcap"
    ok.write_bytes(pcap(segs[:19]))
    out = tmp_path / "cut.json"
    p = cli("replay", cut, "--stats-json", out, "-q")
    assert p.returncode == 1, p.stderr
    st = json.loads(out.read_text())
    _, want = replay_books(tmp_path, ok)
    assert st["errors"] == {"capture_truncated": 1}
    assert (st["messages"], st["book"]["orders_live"]) == (want["messages"], 19)


def test_two_lanes_give_the_same_books(tmp_path):
    """Several lanes: an IEX venue's streams (feeds and sessions) go to one
    lane, so the books and counters are those of a one-lane replay."""
    segs = []
    for sess in (50, 51):
        segs.append(F.iex_segment(DEEPPLUS, sess, 0, [F.iex_add(sess, "8", 10, 990000, "A%d" % sess)]))
        segs.append(F.iex_segment(DEEP, sess, 0, [F.iex_plu(b"5", 1, 9, 990100, "D%d" % sess)]))
    p = tmp_path / "lanes.pcap"
    p.write_bytes(pcap(segs))
    one, st1 = replay_books(tmp_path, p, tag="one")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("two lanes need two CPUs")
    two, st2 = replay_books(tmp_path, p, extra=("--cores", "0,1"), tag="two")
    assert two == one
    assert (st2["messages"], st2["checksum"]) == (st1["messages"], st1["checksum"])


def test_order_operations_do_not_give_ids(tmp_path):
    """An Order Modify, Delete or Executed finds its order by its id; the symbol
    it repeats is not looked up, so it gives no instrument id (a symbol seen
    first in one, as when a replay starts mid-day, takes its id at its first
    add or state message)."""
    segs = [
        F.iex_segment(
            DEEPPLUS,
            7,
            0,
            [
                F.iex_delete(99, "LATE"),
                F.iex_modify(98, 5, 1000, "LATE"),
                F.iex_executed(97, 1, 1000, 5, "LATE"),
                F.iex_add(1, "8", 10, 990000, "FIRST"),
                F.iex_add(2, "5", 20, 991000, "LATE"),
            ],
        )
    ]
    p = tmp_path / "ids.pcap"
    p.write_bytes(pcap(segs))
    csv, st = replay_books(tmp_path, p)
    assert csv.splitlines()[1:] == [
        "%d,FIRST,B,1,990000,10,1" % ID_DEEPPLUS,
        "%d,LATE,S,1,991000,20,1" % (ID_DEEPPLUS + 1),
    ]
    assert st["book"]["unknown_ref"] == 3 and not st["errors"]


def test_a_sweep_of_clear_books(tmp_path):
    """Clear Books one after another (a sweep at a session's end) empty every
    symbol they name, together; orders of other symbols stay, and what comes
    after them in the same segment is applied to the emptied books."""
    adds = [F.iex_add(i + 1, "8" if i % 2 else "5", 10 + i, 990000 + 100 * i, "S%d" % (i % 4)) for i in range(12)]
    sweep = [F.iex_clear("S0"), F.iex_clear("S1"), F.iex_clear("S2"), F.iex_add(50, "8", 7, 980000, "S1")]
    p = tmp_path / "sweep.pcap"
    p.write_bytes(pcap([F.iex_segment(DEEPPLUS, 7, 0, adds), F.iex_segment(DEEPPLUS, 7, 12, sweep)]))
    csv, st = replay_books(tmp_path, p)
    rows = csv.splitlines()[1:]
    assert {r.split(",")[1] for r in rows} == {"S1", "S3"}
    assert [r for r in rows if ",S1," in r] == ["%d,S1,B,1,980000,7,1" % (ID_DEEPPLUS + 1)]
    assert st["iex_clears"] == 3 and st["book"]["orders_live"] == 1 + 3


def auction(sym, paired, ref, indicative, imbalance, side, book_price, kind=b"C"):
    """DEEP/TOPS Auction Information (80 bytes)."""
    return struct.pack(
        "<cBq8sIqqIcBIqqqq",
        b"A",
        kind[0],
        F.IEX_T0,
        F.iex_sym(sym),
        paired,
        ref,
        indicative,
        imbalance,
        side,
        0,
        1_700_000_000,
        book_price,
        ref,
        ref - 100,
        ref + 100,
    )


def test_state_messages_reach_the_slot_and_the_events(shm_name):
    """Trading status, operational halt, short-sale test, security event,
    official price, auction information, trades and breaks update the
    instrument's slot and write the events their ITCH counterparts do."""
    msgs = [
        F.iex_status("O", "MSFT", reason=b"IPO2"),
        struct.pack("<cBq8s", b"O", ord("O"), F.IEX_T0, F.iex_sym("MSFT")),
        struct.pack("<cBq8sc", b"P", 1, F.IEX_T0, F.iex_sym("MSFT"), b"A"),
        F.iex_security_event("O", "MSFT"),
        F.iex_official("Q", 4_000_000, "MSFT"),
        auction("MSFT", 500, 4_000_100, 4_000_200, 70, b"B", 4_000_300),
        F.iex_trade(25, 4_000_500, 77, "MSFT"),
        F.iex_trade(25, 4_000_500, 77, "MSFT", kind=b"B"),
    ]
    with Replay(shm=shm_name, **SMALL) as r:
        assert r.run_buffer(pcap([F.iex_segment(DEEP, 5, 0, msgs)])).ok
        r.finish()
        st = r.stats()
        seg = r.segment()
        rec = seg.book(ID_DEEP).rec
        seg.seek("oldest")
        ev = [e for e in seg.events(1 << 10) if e["locate"] == ID_DEEP]
    assert st["messages"] == 8 and not st["errors"]
    assert (chr(rec["trading_state"]), chr(rec["reg_sho_action"])) == ("Q", "1")
    assert (
        int(rec["noii_paired_shares"]),
        int(rec["noii_imbalance_shares"]),
        chr(rec["noii_imbalance_direction"]),
    ) == (
        500,
        70,
        "B",
    )
    assert (int(rec["noii_reference_price"]), int(rec["noii_near_price"]), int(rec["noii_far_price"])) == (
        4_000_100,
        4_000_200,
        4_000_300,
    )
    assert (int(rec["last_trade_price"]), int(rec["last_trade_shares"]), int(rec["last_trade_match"])) == (
        4_000_500,
        25,
        77,
    )
    got = [(int(e["type"]), chr(e["aux"]), int(e["price1"]), int(e["qty1"]), int(e["qty2"])) for e in ev]
    assert got == [
        (3, "H", ord("Q"), 0, 0),  # trading state: order acceptance period, ITCH's quotation only
        (3, "h", ord("H"), 0, 0),  # operational halt
        (3, "Y", ord("1"), 0, 0),  # short-sale price test in effect
        (3, "E", ord("O"), 0, 0),  # opening process complete
        (3, "X", 4_000_000, ord("Q"), 0),  # official opening price
        (2, "P", 4_000_500, 25, 77),  # trade
        (2, "B", 0, 0, 77),  # break of trade 77
    ]
