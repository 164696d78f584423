"""The Python reader as a strategy uses it: int64 prices and quantities (the
subtraction that wrapped), follow() / follow_async() (lapping, heartbeat, end,
dead writer, no busy spinning), DataFrames, the price helpers."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bookdays as B  # noqa: E402
import feedhandler._probe as probe  # noqa: E402  (test hooks: the raw ring reader)
import frames as F  # noqa: E402
from feedhandler import shm  # noqa: E402
from feedhandler.core import ffi  # noqa: E402
from feedhandler.errors import ShmError, WriterDied  # noqa: E402
from feedhandler.replay import Replay  # noqa: E402
from feedhandler.shm import EV_BBO, EV_TRADE, Lapped, attach, format_price, price_float, to_pandas  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=64)
I64_MAX = np.iinfo(np.int64).max


def sample_segment(name, **kw):
    args = dict(SMALL, silence_ms=120_000)
    args.update(kw)
    r = Replay(shm=name, **args)
    res = r.run_file(SAMPLE, progress=False)
    assert res.ok, res.error
    r.finish()
    return r


def day_segment(name, tmp_path, msgs, **kw):
    path = str(tmp_path / "day.pcap")
    with open(path, "wb") as f:
        f.write(B.pcap_of(msgs))
    r = Replay(shm=name, **dict(SMALL, **kw))
    res = r.run_file(path, progress=False)
    assert res.ok, res.error
    r.finish()
    return r


# ------------------------------------------------------------- int64 numbers


def test_quantities_and_prices_are_int64_everywhere(name):
    sample_segment(name)
    with attach(name) as seg:
        snap = seg.book("AAPL")
        for arr in snap.bids + snap.asks:
            assert arr.dtype == np.int64
        a = seg.copy_books()
        for f in (
            "bid_price",
            "bid_shares",
            "bid_orders",
            "ask_price",
            "ask_shares",
            "ask_orders",
            "n_bid",
            "last_trade_price",
            "last_trade_shares",
            "updates",
            "noii_paired_shares",
        ):
            assert a.dtype.fields[f][0].base == np.int64, f
        seg.seek("oldest")
        ev = seg.events()
        for f in ("price1", "price2", "qty1", "qty2"):
            assert ev.dtype.fields[f][0] == np.int64, f
        assert ev.dtype == shm.EVENT_DTYPE


def test_the_subtraction_that_wrapped(name):
    """The depth imbalance of issue 15: bid shares - ask shares with the ask side
    larger was 2^64 - x with unsigned arrays; it is negative now, and every
    imbalance lies in [-1, 1], with numpy warnings turned into errors."""
    sample_segment(name)
    with attach(name) as seg:
        a = seg.copy_books()
        named = a[(a["flags"] & shm.FLAG_DIRECTORY) != 0]
        with np.errstate(all="raise"):
            b = named["bid_shares"][:, :5].sum(axis=1)
            s = named["ask_shares"][:, :5].sum(axis=1)
            diff = b - s
            assert (diff < 0).any() and (diff > 0).any()  # both signs occur on the sample
            assert np.array_equal(diff, [int(x) - int(y) for x, y in zip(b, s)])
            imb = diff / np.where(b + s > 0, b + s, 1)
            assert (np.abs(imb) <= 1).all()
            # The same on one snapshot, the way the example strategy does it.
            snap = seg.book(int(np.nonzero((a["flags"] & shm.FLAG_DIRECTORY) != 0)[0][0]))
            d = snap.bids[1][:5].sum() - snap.asks[1][:5].sum()
            assert int(d) == int(snap.bids[1][:5].astype(object).sum() - snap.asks[1][:5].astype(object).sum())
            # ... and on events: bid size - ask size of every BBO.
            seg.seek("oldest")
            ev = seg.events(1 << 20)
            bbo = ev[ev["type"] == EV_BBO]
            assert ((bbo["qty1"] - bbo["qty2"]) < 0).any()


def test_wire_values_above_int64_read_as_int64_max(name, tmp_path):
    """A cross (Q) with 2^64-1 shares and a match number of 2^64-2, as a hostile
    feed could send: the ring and the slot keep them (unsigned layout), the
    reader gets int64 quantities saturated at 2^63-1, never a negative number;
    the match number, an identifier, stays unsigned in the slot."""
    msgs = [
        B.msg_R(1, "AAPL"),
        B.msg_Q(2**64 - 1, "AAPL", 1_234_500, 2**64 - 2),
        B.msg_P(7, b"B", 300, "AAPL", 4_294_967_295, 5),
    ]
    r = day_segment(name, tmp_path, msgs)
    with attach(name) as seg:
        seg.seek("oldest")
        ev = seg.events()
        tr = ev[ev["type"] == EV_TRADE]
        assert len(tr) == 2
        assert int(tr["qty1"][0]) == I64_MAX and int(tr["qty2"][0]) == I64_MAX
        assert int(tr["price1"][0]) == 1_234_500
        # The top Price(4), 2^32-1: positive in int64 (it would be negative as int32).
        assert int(tr["price1"][1]) == 4_294_967_295 and int(tr["qty1"][1]) == 300 and int(tr["qty2"][1]) == 5
        snap = seg.book("AAPL")
        assert int(snap.last_trade_price) == 4_294_967_295
        # The raw ring holds the wire value.
        raw = np.empty(16, dtype=shm.SHM_EVENT_DTYPE)
        cur, lost = ffi.new("uint64_t *", 0), ffi.new("uint64_t *", 0)
        n = probe.lib.fh_shm_poll_events(seg._base, 0, cur, ffi.from_buffer("fh_shm_event_t[]", raw), 16, lost)
        rt = raw[:n][raw[:n]["type"] == EV_TRADE]
        assert int(rt["qty1"][0]) == 2**64 - 1 and int(rt["qty2"][0]) == 2**64 - 2
    del r


def test_price_helpers():
    assert price_float(1_234_500) == 123.45
    assert np.allclose(price_float(np.array([1_234_500, 1], dtype=np.int64)), [123.45, 0.0001])
    assert format_price(1_234_500) == "123.4500"
    assert format_price(4_294_967_295) == "429496.7295"
    assert format_price(5) == "0.0005"
    assert format_price(-15) == "-0.0015"
    assert shm.PRICE_SCALE == 10_000


# ------------------------------------------------------------------ follow


def count_polls(seg):
    """Count the follow loop's polls of the rings (a one-element list)."""
    polls = [0]
    real = seg._available

    def counting():
        polls[0] += 1
        return real()

    seg._available = counting
    return polls


def _drain_events(seg):
    out = []
    while True:
        e = seg.events(1000)
        if not len(e):
            return np.concatenate(out) if out else np.empty(0, dtype=shm.EVENT_DTYPE)
        out.append(e)


def test_follow_gives_every_event_then_ends_when_finished(name):
    sample_segment(name)
    with attach(name) as seg:
        seg.seek("oldest")
        want = _drain_events(seg)
        seg.seek("oldest")
        got = [b for b in seg.follow(batch=5000)]
        assert not any(isinstance(b, Lapped) for b in got)
        assert all(0 < len(b) <= 5000 for b in got)
        assert np.array_equal(np.concatenate(got), want)
        assert len(want) == seg.ring_head


def test_follow_says_lapped_then_goes_on(name):
    """A 256-event ring and a reader that starts at 0 after 117 K events: a
    Lapped marker with the exact count lost, then the events still in the ring."""
    sample_segment(name, ring_events=256)
    with attach(name) as seg:
        head = seg.ring_head
        items = list(seg.follow())
        assert isinstance(items[0], Lapped)
        assert items[0].lost == head - 256 and items[0].total == seg.lapped == head - 256
        rest = np.concatenate([b for b in items[1:] if not isinstance(b, Lapped)])
        assert len(rest) == 256 and int(rest["seq"][-1]) == head


def test_follow_heartbeat_and_backoff_on_a_quiet_live_segment(name):
    """A live (not finished) segment with nothing new: empty batches every
    heartbeat, and the poll backs off to `idle` instead of spinning."""
    r = Replay(shm=name, **SMALL)
    rec = [(1_700_000_000_000_000_000, F.frame(F.mold([F.msg_A(ref=1)], seq=1)))]
    assert r.run_buffer(F.pcap_bytes(rec)).ok  # not finished: the segment stays running
    with attach(name) as seg:
        assert seg.state == "running"
        seg.seek("oldest")
        polls = count_polls(seg)
        t0 = time.monotonic()
        seen, beats = 0, 0
        for b in seg.follow(idle=0.01, heartbeat=0.1):
            if len(b):
                seen += len(b)
            else:
                beats += 1
                if beats == 4:
                    break
        dt = time.monotonic() - t0
        assert seen >= 1 and dt >= 0.35
        # Backing off to 10 ms: about 50 polls in 0.4 s; a busy loop would make 100 000s.
        assert polls[0] < 40 * dt / 0.01 + 100, (polls[0], dt)
    r.finish()


DEAD_WRITER = r"""
import os, signal, sys
sys.path.insert(0, "tests")
import frames as F
from feedhandler.replay import Replay
r = Replay(shm=sys.argv[1], max_orders=1024, max_levels=4096, max_instruments=8)
rec = [(1_700_000_000_000_000_000, F.frame(F.mold([F.msg_A(ref=i, price=1_000_000 + i) for i in range(1, 6)], seq=1)))]
assert r.run_buffer(F.pcap_bytes(rec)).ok
print("published", flush=True)
os.kill(os.getpid(), signal.SIGKILL)       # no finish(): the segment stays 'running'
"""


def test_follow_hands_out_what_is_left_then_raises_writer_died(name):
    p = subprocess.run([sys.executable, "-c", DEAD_WRITER, name], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == -signal.SIGKILL, p.stderr
    with attach(name) as seg:
        seg.seek("oldest")
        want = _drain_events(seg)
        assert len(want) > 0
        seg.seek("oldest")
        got = []
        with pytest.raises(WriterDied) as ei:
            for b in seg.follow(idle=0.01):
                got.append(b)
        assert isinstance(ei.value, ShmError)
        assert "died" in str(ei.value) and str(seg.writer_pid) in str(ei.value)
        assert np.array_equal(np.concatenate(got), want)


def test_follow_rejects_bad_arguments(name):
    sample_segment(name)
    with attach(name) as seg:
        with pytest.raises(ValueError):
            next(seg.follow(batch=0))
        with pytest.raises(ValueError):
            next(seg.follow(idle=0))


def test_follow_async_shares_the_loop(name):
    """follow_async on a live segment while the writer publishes from a thread:
    every event arrives, another task keeps running meanwhile (no thread per
    reader, no blocking), and idle waits are sleeps, not spins."""
    r = Replay(shm=name, **SMALL)
    packets = [
        F.pcap_bytes(
            [
                (
                    1_700_000_000_000_000_000 + i,
                    F.frame(
                        F.mold([F.msg_A(ref=i * 10 + j + 1, price=1_000_000 + j) for j in range(10)], seq=i * 10 + 1)
                    ),
                )
            ]
        )
        for i in range(20)
    ]

    async def main():
        seg = r.segment()
        seg.seek("oldest")
        polls = count_polls(seg)
        ticks = [0]
        stop = asyncio.Event()

        async def ticker():
            while not stop.is_set():
                ticks[0] += 1
                await asyncio.sleep(0.005)

        async def writer():
            for pkt in packets:
                await asyncio.sleep(0.02)
                assert r.run_buffer(pkt).ok
            await asyncio.sleep(0.2)  # quiet for a while, then the end
            r.finish()

        tick = asyncio.ensure_future(ticker())
        wr = asyncio.ensure_future(writer())
        n_adds = 0
        t0 = time.monotonic()
        async for b in seg.follow_async(idle=0.01):
            assert not isinstance(b, Lapped)
            n_adds += int((b["type"] == EV_BBO).sum())
        dt = time.monotonic() - t0
        stop.set()
        await tick
        await wr
        return n_adds, ticks[0], polls[0], dt

    n_adds, ticks, polls, dt = asyncio.run(main())
    assert n_adds >= 20  # every packet moved some top of book
    assert ticks >= 20  # the other task ran all along
    assert polls < 40 * dt / 0.01 + 400, (polls, dt)


# ------------------------------------------------------------------ pandas


@pytest.fixture
def pd():
    return pytest.importorskip("pandas", reason="pandas is a test dependency (pip install -e '.[test]')")


def test_events_as_dataframe(name, pd):
    sample_segment(name)
    with attach(name) as seg:
        seg.seek("oldest")
        ev = seg.events(1 << 20)
        df = to_pandas(ev, seg)
        assert len(df) == len(ev)
        for col in ("exch_time", "rx_time", "publish_time"):
            assert df[col].dtype == np.dtype("datetime64[ns]"), col
        syms = seg.symbols()
        bbo = df[df["type"] == "bbo"]
        assert len(bbo) == int((ev["type"] == EV_BBO).sum())
        assert list(bbo["symbol"].iloc[:50]) == [syms[int(x)] for x in bbo["locate"].iloc[:50]]
        assert set(bbo["venue"].astype(str)) == {"XNAS"}
        assert (df["price1"].to_numpy() == ev["price1"]).all() and df["qty2"].dtype == np.int64
        # exch_time is the trading date plus the exchange's ns since midnight.
        t = df["exch_time"].iloc[-1]
        assert (t - t.normalize()).value == int(ev["exch_ts"][-1])
        assert str(t.date()) == "2026-11-25"
        assert str(to_pandas(ev[:3], date="2026-01-02")["exch_time"].iloc[0].date()) == "2026-01-02"
        fl = seg.to_pandas(ev[:100], prices="float")
        assert np.allclose(fl["price1"].to_numpy(), ev["price1"][:100] / 10_000)
        with pytest.raises(TypeError):
            to_pandas(seg.copy_books())
        with pytest.raises(ValueError):
            to_pandas(ev, prices="cents")


def test_copy_books_as_dataframe(name, pd):
    sample_segment(name)
    with attach(name) as seg:
        a = seg.copy_books()
        df = seg.copy_books(df=True)
        assert df.index.name == "locate"
        syms = seg.symbols()
        assert sorted(df.index) == sorted(syms)
        for loc, row in df.iterrows():
            snap = seg.book(loc)
            assert row["symbol"] == syms[loc] == snap.symbol
            assert row["venue"] == "XNAS"
            (bp, bs, bo), (ap, as_, ao) = snap.bids, snap.asks
            assert (row["bid_price"], row["bid_shares"], row["bid_orders"]) == (
                (bp[0], bs[0], bo[0]) if len(bp) else (0, 0, 0)
            )
            assert (row["ask_price"], row["ask_shares"], row["ask_orders"]) == (
                (ap[0], as_[0], ao[0]) if len(ap) else (0, 0, 0)
            )
            assert row["updates"] == a["updates"][loc]
        assert df["exch_time"].dtype == np.dtype("datetime64[ns]")
        assert df["bid_price"].dtype == np.int64
        fl = seg.copy_books(df=True, prices="float")
        assert np.allclose(fl["bid_price"], df["bid_price"] / 10_000)


def test_a_clear_message_without_pandas(name, monkeypatch):
    sample_segment(name)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with attach(name) as seg:
        with pytest.raises(ImportError, match=r"pip install 'feedhandler\[pandas\]'"):
            seg.copy_books(df=True)
        seg.seek("oldest")
        with pytest.raises(ImportError, match="numpy alone"):
            to_pandas(seg.events(10))
        assert len(seg.copy_books()) == seg.n_slots  # numpy needs nothing more


def test_results_a_caller_keeps_are_never_reused(name):
    """copy_books() and events() read into warm buffers they reuse, but only
    buffers nothing outside refers to any more."""
    sample_segment(name, silence_ms=3000)  # its silences make 117 K events
    with attach(name) as seg:

        def addr(a):
            return a.__array_interface__["data"][0]

        first = addr(seg.copy_books())  # dropped at once ...
        assert addr(seg.copy_books()) == first  # ... so its memory is read into again
        kept = seg.copy_books()
        flags = kept["flags"]  # a view of it
        want = kept.copy()
        del kept
        for _ in range(4):
            other = seg.copy_books()
            assert not np.shares_memory(other, flags)
        assert np.array_equal(flags, want["flags"])
        # Events: batches kept in a list stay as they were read; dropped ones are reused.
        # (Plain code, not expressions inside assert: pytest keeps those alive.)
        seg.seek("oldest")
        kept_batches = [seg.events(5000) for _ in range(6)]
        copies = [x.copy() for x in kept_batches]
        overlap = sum(np.shares_memory(kept_batches[i], kept_batches[j]) for i in range(6) for j in range(i + 1, 6))
        seg.seek("oldest")
        for _ in range(8):
            seg.events(5000)
        unchanged = sum(np.array_equal(x, y) for x, y in zip(kept_batches, copies))
        assert overlap == 0 and unchanged == 6
        del kept_batches, copies
        seg.seek("oldest")
        addrs = set()
        for _ in range(5):
            addrs.add(addr(seg.events(5000)))
        assert len(addrs) == 1, (addrs, [sys.getrefcount(x) for x in seg._pool])


def test_attach_waits_for_the_segment(name):
    import threading

    made = []
    missed = threading.Event()

    def later():
        # Only once the attach without wait has missed it (not after a fixed
        # time the test might oversleep), then a little later: attach(wait=)
        # is most likely waiting by then, and passes either way.
        missed.wait(60)
        time.sleep(0.3)
        made.append(Replay(shm=name, **SMALL))

    t = threading.Thread(target=later)
    t.start()
    try:
        with pytest.raises(ShmError, match="no shared-memory segment"):
            attach(name)  # not there yet, no wait
    finally:
        missed.set()
    seg = attach(name, wait=30)
    t.join(60)
    assert seg.state in ("starting", "running")
    seg.close()
    made[0].finish()
    t0 = time.monotonic()
    with pytest.raises(ShmError, match="no shared-memory segment"):
        attach(name + "-never", wait=0.2)
    assert time.monotonic() - t0 >= 0.2


def test_cli_book_shows_decimal_prices(name):
    """`feedhandler book` prints every level's price as an exact decimal, the
    same numbers the reader API gives."""
    sample_segment(name)
    with attach(name) as seg:
        snap = seg.book("AAPL")
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "book", "AAPL", "--shm", name, "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    rows = [l for l in p.stdout.splitlines()[2:] if "|" in l]
    (bp, bs, bo), (ap, as_, ao) = snap.bids, snap.asks
    assert len(rows) == max(len(bp), len(ap))
    for i, row in enumerate(rows):
        left, right = row.split("|")
        if i < len(bp):
            assert left.split() == [str(bo[i]), str(bs[i]), format_price(bp[i])]
        if i < len(ap):
            assert right.split() == [format_price(ap[i]), str(as_[i]), str(ao[i])]
    assert re.search(r"\d+\.\d{4}", rows[0])
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "book", "AAPL", "--shm", name, "--bbo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    assert "bid %s x %d (XNAS)" % (format_price(bp[0]), bs[0]) in p.stdout
    assert "ask %s x %d (XNAS)" % (format_price(ap[0]), as_[0]) in p.stdout


def test_snapshots_are_independent_aligned_records(name):
    sample_segment(name)
    with attach(name) as seg:
        a, b = seg.book("AAPL"), seg.book("MSFT")
        assert not np.shares_memory(a.rec, b.rec)
        assert a.rec.flags["ALIGNED"] and a.rec.flags["WRITEABLE"] and a.rec.shape == ()
        assert a.rec.dtype == seg.dtype and a.symbol == "AAPL" and b.symbol == "MSFT"
        buf = seg.new_buffer()
        assert seg.book("AAPL", out=buf).rec.tobytes() == a.rec.tobytes()
