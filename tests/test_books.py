"""Book correctness: the C order books (through `feedhandler replay --dump-books`
and `--stats-json`) against the independent Python reference book in
tests/refbook.py, on generated days and on hand-made edge-case days.

Every comparison is exact: the CSV text byte for byte (universal newlines) and
the book counters of fh_book_counters_t.  A failure prints the first differing
CSV lines and the differing counters."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bookdays  # noqa: E402
from refbook import CSV_HEADER, STRICT_KEYS, RefBook, book_from_binfile, iter_binfile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Counters with a meaning the book rules pin down exactly, beyond STRICT_KEYS.
EXTRA_KEYS = ("orders_peak", "trades", "breaks", "level_full")
CLEAN_ZERO = (
    "unknown_ref",
    "add_replaced",
    "exec_clamped",
    "cancel_clamped",
    "zero_rejected",
    "bad_side",
    "locate_range",
    "order_full",
    "level_full",
)


# ------------------------------------------------------------------ helpers


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def replay_books(tmp_path, inputs, depth=10, extra=(), tag="r"):
    """(csv text, stats dict) of one `feedhandler replay` run."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out_csv = tmp_path / ("%s-d%d.csv" % (tag, depth))
    out_json = tmp_path / ("%s-d%d.json" % (tag, depth))
    p = cli("replay", *inputs, "--dump-books", out_csv, "--depth", depth, "--stats-json", out_json, "-q", *extra)
    assert p.returncode == 0, "replay failed (rc %d):\n%s\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
    assert "Traceback" not in p.stderr, p.stderr
    with open(out_csv) as f:  # as text: universal newlines
        text = f.read()
    with open(out_json) as f:
        stats = json.load(f)
    return text, stats


def assert_csv_equal(got: str, want: str, what: str = ""):
    if got == want:
        return
    diff = list(difflib.unified_diff(want.splitlines(), got.splitlines(), "reference", "C book", lineterm="", n=1))
    pytest.fail(
        "%s: --dump-books differs from the reference book (%d vs %d lines):\n%s"
        % (what, got.count("\n"), want.count("\n"), "\n".join(diff[:60]))
    )


def assert_counters(stats: dict, ref: RefBook, keys=STRICT_KEYS, what: str = ""):
    assert "book" in stats, "stats JSON has no 'book' object: %s" % sorted(stats)
    got = {k: stats["book"].get(k) for k in keys}
    want = ref.book_counters(keys)
    bad = {k: (want[k], got[k]) for k in keys if got[k] != want[k]}
    assert not bad, "%s: book counters differ, {key: (reference, C)}: %s" % (what, bad)


# ------------------------------------------------------------------ generated days

# (messages, symbols, channels, seed): small, several seeds, 1 and 3 channels.
DAYS = {
    "s5c1": (50_000, 5, 1, 11),
    "s50c3": (100_000, 50, 3, 12),
    "s300c3": (200_000, 300, 3, 13),
    "s50c1": (80_000, 50, 1, 14),
}
DEPTHS = (1, 5, 10, 25)


@pytest.fixture(scope="module")
def gen_day(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            n, sym, ch, seed = DAYS[name]
            d = tmp_path_factory.mktemp("day-" + name)
            prefix = d / name
            p = cli("gen", "--out", prefix, "--messages", n, "--symbols", sym, "--channels", ch, "--seed", seed, "-q")
            assert p.returncode == 0, p.stderr
            with open(str(prefix) + ".json") as f:
                summary = json.load(f)
            ref = book_from_binfile(str(prefix) + ".bin")
            cache[name] = (str(prefix), ref, summary, d)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(DAYS))
def test_generated_day_reference_is_clean(gen_day, name):
    """The generator promises every reference valid and never an over-execute:
    the reference book agrees (and agrees with the generator on the live orders
    left at the end), so the counters compared below are meaningful."""
    prefix, ref, summary, _ = gen_day(name)
    ref.check_invariants()
    for k in CLEAN_ZERO:
        assert ref.counters[k] == 0, (k, ref.counters[k])
    assert ref.counters["orders_live"] == summary["live_orders_at_end"]
    assert ref.counters["adds"] > 0 and ref.counters["executes"] > 0 and ref.counters["replaces"] > 0


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("name", sorted(DAYS))
def test_generated_day_binfile(gen_day, tmp_path, name, depth):
    prefix, ref, _, _ = gen_day(name)
    text, stats = replay_books(tmp_path, prefix + ".bin", depth)
    assert_csv_equal(text, ref.dump_csv(depth), "%s.bin depth %d" % (name, depth))
    assert_counters(stats, ref, what="%s.bin" % name)
    for k in CLEAN_ZERO:
        assert stats["book"][k] == 0, (k, stats["book"][k])


@pytest.mark.parametrize("name", sorted(DAYS))
def test_generated_day_pcap(gen_day, tmp_path, name):
    """The pcap carries the same messages per channel (channels interleave
    differently than in the merged BinaryFILE, which books cannot see)."""
    prefix, ref, _, _ = gen_day(name)
    depth = 10 if name != "s50c3" else 25
    text, stats = replay_books(tmp_path, prefix + ".pcap", depth)
    assert_csv_equal(text, ref.dump_csv(depth), "%s.pcap depth %d" % (name, depth))
    assert_counters(stats, ref, what="%s.pcap" % name)
    assert stats["gaps"] == 0


@pytest.mark.parametrize("loss", [("0.1", "0"), ("0", "0.2"), ("0.3", "0")])
def test_generated_day_two_lines_arbitrated(tmp_path, loss):
    """Lines A and B with loss on one of them: every message arrives once after
    arbitration, so the books equal those of the BinaryFILE (no duplicate
    applied twice, nothing missing).  Line A losing packet N while its N+1
    arrives before B's copy of N is the case the gap window exists for."""
    prefix = str(tmp_path / "ab")
    p = cli(
        "gen",
        "--out",
        prefix,
        "--messages",
        60_000,
        "--symbols",
        40,
        "--channels",
        2,
        "--seed",
        21,
        "--lines",
        "ab",
        "--loss-a",
        loss[0],
        "--loss-b",
        loss[1],
        "-q",
    )
    assert p.returncode == 0, p.stderr
    ref = book_from_binfile(prefix + ".bin")
    text, stats = replay_books(tmp_path, prefix + ".pcap", 10)
    assert stats["duplicates"] > 0 and stats["gaps"] == 0
    assert_csv_equal(text, ref.dump_csv(10), "lines a+b, loss %s/%s" % loss)
    assert_counters(stats, ref, keys=STRICT_KEYS + EXTRA_KEYS, what="lines a+b")


def test_books_wrong_after_a_gap_are_flagged_stale(tmp_path):
    """Messages lost on both lines: no book may be silently wrong.  Every
    instrument whose published levels differ from the complete day's is flagged
    stale in shared memory."""
    prefix = str(tmp_path / "lossy")
    p = cli(
        "gen",
        "--out",
        prefix,
        "--messages",
        60_000,
        "--symbols",
        40,
        "--channels",
        2,
        "--seed",
        22,
        "--lines",
        "ab",
        "--loss-a",
        "0.2",
        "--loss-b",
        "0.2",
        "-q",
    )
    assert p.returncode == 0, p.stderr
    ref = book_from_binfile(prefix + ".bin")
    books, shm = shm_books(prefix + ".pcap", (), depth=10)
    wrong = {
        loc
        for loc, (_f, bids, asks, _s) in books.items()
        if bids != ref.depth(loc, "B", 10) or asks != ref.depth(loc, "S", 10)
    }
    wrong |= {loc for (loc, _s), lv in ref.levels.items() if lv and loc not in books}
    assert wrong, "expected some books to differ after the losses"
    unflagged = sorted(loc for loc in wrong if not (loc in books and books[loc][0] & shm.FLAG_STALE))
    assert not unflagged, "books differ from the complete day but are not flagged stale: %s" % unflagged


@pytest.mark.parametrize("name", ["s50c3", "s300c3"])
def test_generated_day_extra_counters(gen_day, tmp_path, name):
    """orders_peak, trades (E, printable C, P, Q), breaks (B), level_full."""
    prefix, ref, _, _ = gen_day(name)
    _, stats = replay_books(tmp_path, prefix + ".bin", 5)
    assert_counters(stats, ref, keys=EXTRA_KEYS, what="%s.bin" % name)


def test_generated_day_modes_agree(gen_day, tmp_path):
    """--mode book (no shared memory) builds the same books as the default."""
    prefix, ref, _, _ = gen_day("s50c3")
    text, stats = replay_books(tmp_path, prefix + ".bin", 10, extra=("--mode", "book"), tag="book")
    assert_csv_equal(text, ref.dump_csv(10), "--mode book")
    assert_counters(stats, ref, what="--mode book")


# ------------------------------------------------------------------ edge-case days

EDGE_COUNTERS = (
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
)


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    d = tmp_path_factory.mktemp("edge")
    msgs = bookdays.edge_day()
    b, p = bookdays.write_day(d / "edge", msgs)
    ref = RefBook().feed(msgs)
    ref.check_invariants()
    return b, p, ref


@pytest.mark.parametrize("depth", (1, 10, 25, 64))
@pytest.mark.parametrize("kind", ("bin", "pcap"))
def test_edge_day(edge, tmp_path, kind, depth):
    b, p, ref = edge
    text, stats = replay_books(tmp_path, b if kind == "bin" else p, depth)
    assert_csv_equal(text, ref.dump_csv(depth), "edge day .%s depth %d" % (kind, depth))
    assert_counters(stats, ref, what="edge day .%s" % kind)
    for k in EDGE_COUNTERS:
        assert stats["book"][k] > 0, "the edge day has %s cases, the C book counted none" % k
    assert stats["by_type"].get("H", 0) == 5


def test_edge_day_extra_counters(edge, tmp_path):
    b, _, ref = edge
    _, stats = replay_books(tmp_path, b, 5)
    assert_counters(stats, ref, keys=EXTRA_KEYS, what="edge day")


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_fuzz_day(tmp_path, seed):
    """Random A/F/E/C/X/D/U over a few hundred references: every rule, in every order."""
    msgs = bookdays.fuzz_day(seed)
    b, p = bookdays.write_day(tmp_path / "fuzz", msgs)
    ref = RefBook().feed(msgs)
    for kind, path, depth in (("bin", b, 25), ("pcap", p, 3)):
        text, stats = replay_books(tmp_path, path, depth, tag=kind)
        assert_csv_equal(text, ref.dump_csv(depth), "fuzz seed %d .%s depth %d" % (seed, kind, depth))
        assert_counters(stats, ref, what="fuzz seed %d .%s" % (seed, kind))
    assert_counters(stats, ref, keys=EXTRA_KEYS, what="fuzz seed %d" % seed)


@pytest.mark.parametrize("depth", (1, 64))
def test_extremes_day(tmp_path, depth):
    """References 0 and 2^64-1, prices 1 and 2^32-1, level shares past 2^32."""
    msgs = bookdays.extremes_day()
    b, p = bookdays.write_day(tmp_path / "ext", msgs)
    ref = RefBook().feed(msgs)
    for kind, path in (("bin", b), ("pcap", p)):
        text, stats = replay_books(tmp_path, path, depth, tag=kind)
        assert_csv_equal(text, ref.dump_csv(depth), "extremes .%s depth %d" % (kind, depth))
        assert_counters(stats, ref, keys=STRICT_KEYS + EXTRA_KEYS, what="extremes .%s" % kind)


def test_stored_locate_used_for_order_messages(tmp_path):
    """E/X/C/D/U act on the instrument the order was added on, whatever locate
    their own header carries (even 0 or past the capacity)."""
    m = bookdays
    msgs = [
        m.msg_R(1, "AAPL"),
        m.msg_R(2, "MSFT"),
        m.msg_A(1, b"B", 100, 1000, locate=1),
        m.msg_A(2, b"S", 100, 1100, locate=1),
        m.msg_A(3, b"B", 100, 2000, locate=2),
        m.msg_A(4, b"S", 100, 2100, locate=2),
        m.msg_E(1, 10, 1, locate=2),
        m.msg_X(2, 20, locate=0),
        m.msg_C(3, 30, 2000, b"Y", 2, locate=65_535),
        m.msg_U(4, 5, 50, 2200, locate=1),
        m.msg_A(6, b"B", 7, 999, locate=1),
        m.msg_D(6, locate=0),
    ]
    b, _ = m.write_day(tmp_path / "loc", msgs)
    ref = RefBook().feed(msgs)
    assert (
        ref.dump_csv(5)
        == CSV_HEADER
        + "\n"
        + "\n".join(["1,AAPL,B,1,1000,90,1", "1,AAPL,S,1,1100,80,1", "2,MSFT,B,1,2000,70,1", "2,MSFT,S,1,2200,50,1"])
        + "\n"
    )
    text, stats = replay_books(tmp_path, b, 5)
    assert_csv_equal(text, ref.dump_csv(5), "header locate != order locate")
    assert_counters(stats, ref, what="header locate != order locate")


def test_no_orders_gives_header_only(tmp_path):
    m = bookdays
    msgs = [m.msg_S(b"O"), m.msg_R(1, "AAPL"), m.msg_A(1, b"B", 100, 1000), m.msg_D(1), m.msg_S(b"C")]
    b, _ = m.write_day(tmp_path / "empty", msgs)
    text, stats = replay_books(tmp_path, b, 10)
    assert text == CSV_HEADER + "\n"
    assert stats["book"]["orders_live"] == 0 and stats["book"]["adds"] == 1 and stats["book"]["deletes"] == 1


# ------------------------------------------------------------------ capacities


def test_order_capacity_exhausted(tmp_path):
    msgs = bookdays.capacity_day()
    b, p = bookdays.write_day(tmp_path / "cap", msgs)
    ref = RefBook(max_orders=50).feed(msgs)
    assert ref.counters["order_full"] > 0
    for kind, path in (("bin", b), ("pcap", p)):
        text, stats = replay_books(tmp_path, path, 25, extra=("--max-orders", 50), tag=kind)
        assert_csv_equal(text, ref.dump_csv(25), "--max-orders 50 .%s" % kind)
        assert_counters(stats, ref, what="--max-orders 50 .%s" % kind)
        assert stats["book"]["orders_peak"] == 50
    assert_flags_dropped(b, ("--max-orders", 50), ref)


@pytest.mark.parametrize("max_orders", (8, 64))
def test_order_capacity_dense_fuzz(tmp_path, max_orders):
    """A full order store under churn: adds dropped and later accepted again,
    references of dropped orders unknown, the order table crowded."""
    msgs = bookdays.fuzz_day(4, n=30_000, refs=200)
    b, p = bookdays.write_day(tmp_path / "dense", msgs)
    ref = RefBook(max_orders=max_orders).feed(msgs)
    assert ref.counters["order_full"] > 0
    for kind, path in (("bin", b), ("pcap", p)):
        text, stats = replay_books(tmp_path, path, 25, extra=("--max-orders", max_orders), tag=kind)
        assert_csv_equal(text, ref.dump_csv(25), "dense fuzz --max-orders %d .%s" % (max_orders, kind))
        assert_counters(stats, ref, keys=STRICT_KEYS + EXTRA_KEYS, what="dense fuzz --max-orders %d" % max_orders)


def test_order_capacity_on_generated_day(gen_day, tmp_path):
    """BinaryFILE only: which adds find the store full depends on the order of
    the channels' messages, which the merged file fixes and the pcap does not."""
    prefix, _, _, _ = gen_day("s50c3")
    ref = book_from_binfile(prefix + ".bin", max_orders=50)
    assert ref.counters["order_full"] > 0 and ref.counters["unknown_ref"] > 0
    text, stats = replay_books(tmp_path, prefix + ".bin", 10, extra=("--max-orders", 50))
    assert_csv_equal(text, ref.dump_csv(10), "gen day --max-orders 50")
    assert_counters(stats, ref, what="gen day --max-orders 50")
    assert_flags_dropped(prefix + ".bin", ("--max-orders", 50), ref)


def test_instrument_capacity_on_generated_day(gen_day, tmp_path):
    prefix, _, _, _ = gen_day("s50c3")
    ref = book_from_binfile(prefix + ".bin", max_instruments=20)
    assert ref.counters["locate_range"] > 0
    text, stats = replay_books(tmp_path, prefix + ".bin", 10, extra=("--max-instruments", 20))
    assert_csv_equal(text, ref.dump_csv(10), "gen day --max-instruments 20")
    assert all(int(line.split(",")[0]) <= 20 for line in text.splitlines()[1:])
    assert_counters(stats, ref, what="gen day --max-instruments 20")


def test_level_capacity_exhausted_is_survived(gen_day, tmp_path):
    """--max-levels: the reference does not model the C arena of level blocks,
    so only what any correct book must show is checked: no crash, level_full
    counted, the orders that did fit still form well-ordered books, and the
    messages that followed a dropped add found it unknown (never applied to
    another order)."""
    prefix, ref, _, _ = gen_day("s50c3")
    text, stats = replay_books(tmp_path, prefix + ".bin", 25, extra=("--max-levels", 64))
    bk = stats["book"]
    assert bk["level_full"] > 0 and bk["unknown_ref"] > 0
    assert bk["adds"] < ref.counters["adds"] and bk["orders_live"] <= ref.counters["orders_peak"]
    for k in ("exec_clamped", "cancel_clamped", "zero_rejected", "bad_side", "locate_range", "order_full"):
        assert bk[k] == 0, (k, bk[k])
    lines = text.splitlines()
    assert lines[0] == CSV_HEADER and len(lines) > 1
    last = {}
    for ln in lines[1:]:
        loc, _sym, side, level, price, shares, orders = ln.split(",")
        key = (int(loc), side)
        assert side in ("B", "S") and int(shares) > 0 and int(orders) > 0 and int(price) > 0
        prev = last.get(key)
        if prev is not None:
            assert int(level) == prev[0] + 1
            assert (int(price) < prev[1]) if side == "B" else (int(price) > prev[1])
        else:
            assert int(level) == 1
        last[key] = (int(level), int(price))


def shm_books(path, extra, depth=10):
    """Replay into a named shared-memory segment and read every instrument slot
    back through feedhandler.shm: {locate: (flags, bids, asks, symbol)}, where
    bids/asks are [(price, shares, orders)] best first."""
    shm = pytest.importorskip("feedhandler.shm")
    name = "fhtest-books-%d" % os.getpid()
    p = cli("replay", path, "--shm", name, "--depth", depth, "-q", *extra)
    assert p.returncode == 0, p.stderr
    try:
        seg = shm.attach(name)
        try:
            a = seg.copy_books()
            out = {}
            for loc in range(1, len(a)):
                r = a[loc]
                nb, na = int(r["n_bid"]), int(r["n_ask"])
                bids = [(int(r["bid_price"][i]), int(r["bid_shares"][i]), int(r["bid_orders"][i])) for i in range(nb)]
                asks = [(int(r["ask_price"][i]), int(r["ask_shares"][i]), int(r["ask_orders"][i])) for i in range(na)]
                if int(r["flags"]) or bids or asks:
                    out[loc] = (int(r["flags"]), bids, asks, bytes(r["symbol"]).decode("ascii").rstrip(" \0"))
            del a
            return out, shm
        finally:
            seg.close()
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass


def assert_flags_dropped(path, extra, ref):
    """The instruments whose adds were dropped carry FH_SLOT_DROPPED in shared
    memory, and no other does; the published levels equal the reference's."""
    books, shm = shm_books(path, extra, depth=10)
    flagged = {loc for loc, v in books.items() if v[0] & shm.FLAG_DROPPED}
    assert flagged == ref.dropped, "dropped flags: reference %s, shared memory %s" % (
        sorted(ref.dropped),
        sorted(flagged),
    )
    for loc, (_f, bids, asks, _sym) in books.items():
        assert bids == ref.depth(loc, "B", 10), "locate %d bids" % loc
        assert asks == ref.depth(loc, "S", 10), "locate %d asks" % loc
    assert {loc for loc, v in books.items() if v[1] or v[2]} == {loc for (loc, _s), lv in ref.levels.items() if lv}


def test_shared_memory_books_equal_reference(gen_day):
    """The slots published to shared memory hold the same top levels and symbols."""
    prefix, ref, _, _ = gen_day("s50c3")
    books, shm = shm_books(prefix + ".bin", (), depth=5)
    assert books, "no instrument published"
    for loc, (flags, bids, asks, sym) in books.items():
        assert bids == ref.depth(loc, "B", 5), "locate %d bids" % loc
        assert asks == ref.depth(loc, "S", 5), "locate %d asks" % loc
        if loc in ref.symbols:
            assert sym == ref.symbols[loc] and flags & shm.FLAG_DIRECTORY
        assert not flags & shm.FLAG_DROPPED


# ------------------------------------------------------------------ determinism


def test_determinism_and_formats_agree(edge, gen_day, tmp_path):
    b, p, _ = edge
    t1, s1 = replay_books(tmp_path, b, 10, tag="one")
    t2, s2 = replay_books(tmp_path, b, 10, tag="two")
    t3, s3 = replay_books(tmp_path, p, 10, tag="pcap")
    assert t1 == t2 == t3
    assert s1["book"] == s2["book"]
    keys = set(s1["book"]) - {"publishes", "events"}
    assert {k: s1["book"][k] for k in keys} == {k: s3["book"][k] for k in keys}
    prefix, _, _, _ = gen_day("s300c3")
    g1, _ = replay_books(tmp_path, prefix + ".bin", 5, tag="gb")
    g2, _ = replay_books(tmp_path, prefix + ".pcap", 5, tag="gp")
    assert g1 == g2


def test_two_inputs_accumulate_into_one_book(tmp_path):
    """Several INPUTs are decoded in order into one set of books."""
    msgs = bookdays.fuzz_day(5, n=4000)
    half = len(msgs) // 2
    b1, _ = bookdays.write_day(tmp_path / "h1", msgs[:half])
    b2, _ = bookdays.write_day(tmp_path / "h2", msgs[half:])
    ref = RefBook().feed(msgs)
    text, stats = replay_books(tmp_path, [b1, b2], 10)
    assert_csv_equal(text, ref.dump_csv(10), "two inputs")
    assert_counters(stats, ref, what="two inputs")
    assert list(iter_binfile(open(b1, "rb").read() + open(b2, "rb").read())) == msgs
