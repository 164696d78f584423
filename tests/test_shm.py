"""Shared memory: consistent snapshots under a full-speed writer (torn-read
test across processes), the event ring (lapping, many readers), attaching,
layout/version checks, staleness on gaps, capacity flags."""

import json
import os
import select
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from feedhandler import shm
from feedhandler._probe import lib as probe  # test hooks: fh_shm_torture
from feedhandler.core import ffi, lib
from feedhandler.replay import Replay, ReplayError
from feedhandler.shm import ShmError, attach

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=64)
# The fixtures send a heartbeat per idle minute (to stay small): with the default
# 3 s silence timeout every quiet minute would flag the lines silent.
QUIET = 120_000


def run_reader(code, timeout=120):
    """Run reader code in another process; it prints one JSON line."""
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def start_reader(code):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


TORN_READER = """
import json, sys, time
import numpy as np
from feedhandler.shm import attach
seg = attach(sys.argv[1] if len(sys.argv) > 1 else %r)
loc, d = %d, seg.depth
snaps = bad = busy = 0
versions = set()
ev_bad = ev_seen = 0
ev_gaps = 0
last_k = None
deadline = time.time() + 150
told = False
print("ready", flush=True)
from feedhandler.shm import ShmError
while time.time() < deadline:
    try:
        s = seg.book(loc)
    except ShmError:
        busy += 1
        continue
    k = int(s.rec["bid_price"][0])
    if k:
        i = np.arange(d)
        ok = (np.array_equal(s.rec["bid_price"], (k + i) & 0xFFFFFFFF)
              and np.array_equal(s.rec["ask_price"], (k + 1000 + i) & 0xFFFFFFFF)
              and np.array_equal(s.rec["bid_shares"], k * (i + 1))
              and np.array_equal(s.rec["ask_shares"], k * (i + 1))
              and np.array_equal(s.rec["bid_orders"], (k ^ i) & 0xFFFFFFFF)
              and int(s.rec["updates"]) == k and int(s.rec["exch_ts"]) == k
              and int(s.rec["last_trade_price"]) == k and int(s.rec["n_bid"]) == d)
        bad += not ok
        snaps += 1
        versions.add(k)
        if not told and snaps > 200 and len(versions) >= 3:
            print("enough", flush=True)   # the writer may stop once every reader says so
            told = True
    # The state first, then the poll: a poll that finds nothing after the writer
    # had finished means every event is read (the other order loses a last chunk
    # written between the poll and the state check).
    finished = seg.state == "finished"
    ev = seg.events(4096)
    if len(ev):
        k_ev = ev["price1"]
        ok = (ev["qty1"] == k_ev * 3) & (ev["qty2"] == ~k_ev & np.iinfo(np.int64).max) & (ev["exch_ts"] == k_ev) & (ev["type"] == 2)
        ev_bad += int((~ok).sum())
        ev_seen += len(ev)
        # Within a batch and across batches, events come in order; holes only where lapped.
        steps = np.diff(np.concatenate([[last_k] if last_k is not None else [], k_ev]).astype(np.int64))
        ev_gaps += int((steps != 1).sum())
        assert (steps > 0).all(), "events out of order"
        last_k = int(k_ev[-1])
    if finished and not len(ev):
        break
print(json.dumps({"snaps": snaps, "bad": bad, "busy": busy, "versions": len(versions), "ev_seen": ev_seen,
                  "ev_bad": ev_bad, "lapped": seg.lapped, "ev_gaps": ev_gaps, "last_k": last_k}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("depth", [10, 64])
def test_no_torn_snapshot_under_full_speed_writer(name, depth):
    """The C writer rewrites one slot (and pushes one event) as fast as it can
    while a reader process snapshots it: every snapshot is one whole version."""
    r = Replay(shm=name, depth=depth, ring_events=1 << 12, **SMALL)
    base = lib.fh_lane_shm(r._r, ffi.NULL)
    readers = [start_reader(TORN_READER % (name, 7)) for _ in range(2)]
    for p in readers:
        assert p.stdout.readline().strip() == "ready"
    # Full speed for at least 2 s, in chunks of 20k updates (the GIL is released
    # inside), and on until every reader has seen enough whole snapshots (on a
    # loaded CI machine that can take longer; bounded at 120 s). A seqlock favours
    # its writer: under back-to-back updates a reader copying a 2 KB slot mostly
    # retries, and succeeds in the writer's short breaks between chunks, which is
    # what makes the test see many versions.
    k, chunk, t0 = 1, 20_000, time.time()
    waiting = {p.stdout.fileno(): p for p in readers}
    while time.time() - t0 < 2.0 or (waiting and time.time() - t0 < 120.0):
        probe.fh_shm_torture(base, 7, k, chunk)
        k += chunk
        for fd in select.select(list(waiting), [], [], 0)[0]:
            if waiting[fd].stdout.readline().strip() == "enough":
                del waiting[fd]
    iters = k - 1
    r.finish()
    results = []
    for p in readers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for res in results:
        assert res["bad"] == 0 and res["ev_bad"] == 0, res
        assert res["snaps"] > 100 and res["versions"] >= 3, res
        assert res["busy"] >= 0
        # The writer is far faster than a Python reader with a 4096-event ring:
        # the reader is lapped, told so, and resynchronises (keeps reading in order).
        assert res["lapped"] > 0 and res["ev_seen"] > 0 and res["last_k"] == iters, res
    # Final slot as the writer left it.
    seg = r.segment()
    assert int(seg.book(7).rec["bid_price"][0]) == iters


def replay_sample(name, ring_events=1 << 16, path="sample.pcap", **kw):
    args = dict(SMALL, silence_ms=QUIET)
    args.update(kw)
    r = Replay(shm=name, ring_events=ring_events, **args)
    res = r.run_file(os.path.join(PCAPS, path), progress=False)
    assert res.ok, res.error
    r.finish()
    return r


ALL_EVENTS = """
import json, sys
import numpy as np
from feedhandler.shm import attach
seg = attach(%r)
%s
chunks = []
while True:
    ev = seg.events(1000)
    if not len(ev):
        break
    chunks.append(ev)
ev = np.concatenate(chunks) if chunks else np.empty(0)
# publish_ts is wall-clock time: everything else is a pure function of the input.
keep = ["exch_ts", "rx_ts", "locate", "type", "aux", "price1", "price2", "qty1", "qty2"]
def digest(e):
    return __import__("hashlib").sha256(b"".join(np.ascontiguousarray(e[k]).tobytes() for k in keep)).hexdigest()
print(json.dumps({"n": len(ev), "lapped": seg.lapped, "seq": ev["seq"].tolist()[:5] if len(ev) else [],
                  "digest": digest(ev) if len(ev) else "", "tail_digest": digest(ev[-1024:]) if len(ev) else ""}))
"""


SEEK = 'seg.seek("oldest")'


def test_many_readers_see_the_same_events(name):
    r = replay_sample(name)
    n_events = r.stats()["book"]["events"]
    assert 0 < n_events < 1 << 16
    a = run_reader(ALL_EVENTS % (name, SEEK))
    b = run_reader(ALL_EVENTS % (name, SEEK))
    assert a == b
    assert a["n"] == n_events and a["lapped"] == 0 and a["seq"][:3] == [1, 2, 3]
    # An in-process reader agrees with the other processes.
    seg = r.segment()
    seg.seek("oldest")
    ev = seg.events(1 << 16)
    assert len(ev) == n_events
    types = set(np.unique(ev["type"]).tolist())
    assert {shm.EV_BBO, shm.EV_TRADE, shm.EV_STATE, shm.EV_SYSTEM} <= types


def test_slow_reader_is_told_it_was_lapped(name, tmp_path):
    r_big = replay_sample(name + "-big")
    try:
        big = run_reader(ALL_EVENTS % (name + "-big", SEEK))
    finally:
        del r_big
        os.unlink("/dev/shm/" + name + "-big")
    _writer = replay_sample(name, ring_events=1024)
    small = run_reader(ALL_EVENTS % (name, ""))  # a reader still at event 0
    # The reader starting at 0 lost everything but the last ring-full, was told
    # how many, and the events it got are exactly the newest ones.
    assert small["lapped"] == big["n"] - 1024 and small["n"] == 1024
    assert small["tail_digest"] == big["tail_digest"]


def test_reader_lapped_mid_stream_resynchronises(name):
    r = Replay(shm=name, ring_events=64, **SMALL)
    seg = r.segment()
    seg.seek("now")
    base = lib.fh_lane_shm(r._r, ffi.NULL)
    probe.fh_shm_torture(base, 3, 1, 10)
    ev = seg.events(5)
    assert ev["price1"].tolist() == [1, 2, 3, 4, 5] and seg.lapped == 0
    probe.fh_shm_torture(base, 3, 11, 490)  # 490 more events through a ring of 64
    ev = seg.events(1000)
    assert seg.lapped > 0
    assert len(ev) <= 64 and ev["price1"][-1] == 500
    assert (np.diff(ev["price1"].astype(np.int64)) == 1).all()


def test_snapshots_match_dump_and_bulk(name, tmp_path):
    r = replay_sample(name, depth=5)
    csv_path = tmp_path / "books.csv"
    r.dump_books(str(csv_path))
    rows = [l.split(",") for l in csv_path.read_text().splitlines()[1:]]
    seg = attach(name)
    allslots = seg.copy_books()
    syms = seg.symbols()
    assert len(syms) == 24 and syms[1] == "AAPL"
    for loc in sorted({int(r_[0]) for r_ in rows}):
        snap = seg.book(loc)
        by_sym = seg.book(syms[loc])
        assert by_sym.rec.tobytes() == snap.rec.tobytes()
        assert allslots[loc]["seq"] == snap.rec["seq"] and allslots[loc].tobytes() == snap.rec.tobytes()
        want = {(s, int(lv)): (int(p), int(q), int(o)) for l_, _, s, lv, p, q, o in rows if int(l_) == loc}
        got = {}
        for side, (px, sh, od) in (("B", snap.bids), ("S", snap.asks)):
            for i in range(len(px)):
                got[(side, i + 1)] = (int(px[i]), int(sh[i]), int(od[i]))
        assert got == want, loc
        assert snap.symbol == syms[loc]
    assert seg.state == "finished" and seg.writer_pid == os.getpid()
    c = seg.counters()
    st = r.stats()
    for k in ("packets", "messages", "by_type", "gaps", "errors", "book"):
        assert c[k] == st[k], k
    assert seg.system_event == "C"


def test_segment_created_0600(name):
    Replay(shm=name, **SMALL)
    mode = stat.S_IMODE(os.stat("/dev/shm/" + name).st_mode)
    assert mode == 0o600


def test_attach_errors(name, tmp_path):
    with pytest.raises(ShmError, match="no shared-memory segment"):
        attach(name)
    with pytest.raises(ShmError, match="bad segment name"):
        attach("../etc/passwd")
    with open("/dev/shm/" + name, "wb") as f:
        f.write(b"\0" * 4096)
    with pytest.raises(ShmError, match="magic"):
        attach(name)
    os.unlink("/dev/shm/" + name)
    # A segment of another layout version.
    r = replay_sample(name)
    data = bytearray(open("/dev/shm/" + name, "rb").read())
    del r
    os.unlink("/dev/shm/" + name)
    data[8:12] = (99).to_bytes(4, "little")
    with open("/dev/shm/" + name, "wb") as f:
        f.write(data)
    with pytest.raises(ShmError, match="layout version 99"):
        attach(name)
    os.unlink("/dev/shm/" + name)
    # A symlink planted in /dev/shm is never followed, by the reader or the writer.
    target = tmp_path / "target"
    target.write_bytes(b"x" * 100)
    os.symlink(target, "/dev/shm/" + name)
    with pytest.raises(ShmError):
        attach(name)
    with pytest.raises(ReplayError):
        Replay(shm=name, **SMALL)
    assert target.read_bytes() == b"x" * 100


def test_live_writer_not_replaced_dead_writer_replaced(name):
    r = Replay(shm=name, **SMALL)
    with pytest.raises(ReplayError, match="in use by a running writer"):
        Replay(shm=name, **SMALL)
    del r
    # The file stays after the writer is gone (readers may still want it) ...
    assert os.path.exists("/dev/shm/" + name)
    # ... and a segment whose writer has died is replaced safely.
    code = (
        "from feedhandler.replay import Replay; r = Replay(shm=%r, max_orders=1024, max_levels=4096, "
        "max_instruments=8); import os; os._exit(0)" % name
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    r2 = Replay(shm=name, **SMALL)
    assert attach(name).writer_pid == os.getpid()
    del r2


def test_bad_names_and_sizes():
    for bad in ("a/b", "", ".hidden", "x" * 300):
        if not bad:
            continue
        with pytest.raises(ReplayError):
            Replay(shm=bad, **SMALL)
    with pytest.raises(ReplayError, match="depth"):
        Replay(depth=65, **SMALL)
    with pytest.raises(ReplayError, match="power of two"):
        Replay(ring_events=1000, **SMALL)


def test_gap_marks_instruments_stale(name):
    r = replay_sample(name, path="sample_ab.pcap")
    st = r.stats()
    assert st["gaps"] > 0
    seg = r.segment()
    seg.seek("oldest")
    ev = seg.events(1 << 16)
    stale_ev = ev[ev["type"] == shm.EV_STALE]
    assert len(stale_ev) > 0
    flagged = {int(l) for l in stale_ev["locate"]}
    for loc in flagged:
        assert seg.book(loc).stale and r.flags(loc) & shm.FLAG_STALE
    # Without gaps nothing is stale.
    r2 = replay_sample(name + "-clean")
    try:
        seg2 = r2.segment()
        assert not (seg2.copy_books()["flags"] & shm.FLAG_STALE).any()
    finally:
        del r2, seg2
        os.unlink("/dev/shm/" + name + "-clean")


def test_capacity_exhaustion_flags_and_counts(name):
    r = replay_sample(name, max_orders=40, max_instruments=64)
    b = r.stats()["book"]
    assert b["order_full"] > 0 and b["orders_peak"] <= 40
    flagged = [loc for loc in range(1, 25) if r.flags(loc) & shm.FLAG_DROPPED]
    assert flagged
    seg = r.segment()
    assert all(seg.book(loc).rec["flags"] & shm.FLAG_DROPPED for loc in flagged)
    # Too few instrument slots: counted, not a crash.
    r2 = Replay(mode="book", max_orders=1 << 12, max_levels=1 << 14, max_instruments=3)
    r2.run_file(os.path.join(PCAPS, "sample.pcap"), progress=False)
    assert r2.stats()["book"]["locate_range"] > 0
    # Too few level slots.
    r3 = Replay(mode="book", max_orders=1 << 12, max_levels=16, max_instruments=64)
    r3.run_file(os.path.join(PCAPS, "sample.pcap"), progress=False)
    assert r3.stats()["book"]["level_full"] > 0


def test_in_process_reader_while_replay_runs(name):
    """A reader in the same process follows a replay running in a thread."""
    r = Replay(shm=name, ring_events=1 << 16, silence_ms=QUIET, **SMALL)
    seg = r.segment()
    seg.seek("oldest")
    t = threading.Thread(target=r.run_file, args=(os.path.join(PCAPS, "sample.pcap"), False))
    t.start()
    got = []
    while t.is_alive():
        got.append(seg.events(512))
        seg.book(1)
    t.join()
    got.append(seg.events(1 << 16))
    ev = np.concatenate(got)
    assert len(ev) == r.stats()["book"]["events"] and seg.lapped == 0
    assert (np.diff(ev["seq"].astype(np.int64)) == 1).all()


def test_cli_book_and_stats(name):
    _writer = replay_sample(name)
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "book", "AAPL", "--shm", name, "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "AAPL" in p.stdout and "bid" in p.stdout
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "stats", "--shm", name, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and json.loads(p.stdout)["messages"] == 40000
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "book", "NOPE", "--shm", name, "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "NOPE" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "stats", "--shm", name + "-missing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "no shared-memory segment" in p.stderr


def test_book_into_reused_buffer(name):
    _writer = replay_sample(name)
    seg = attach(name)
    buf = seg.new_buffer()
    a = seg.book(1, out=buf)
    assert a.rec.tobytes() == seg.book(1).rec.tobytes()
    with pytest.raises(ValueError):
        seg.book(1, out=np.empty(3, dtype=seg.dtype))


def test_strategy_example_follows_a_replay(name):
    """The example strategy, in its own process, follows a replay running in another."""
    strat = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "strategy_example.py"),
            "--shm",
            name,
            "--from-start",
            "--threshold",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            os.path.join(PCAPS, "sample.pcap"),
            "--shm",
            name,
            "--stats-json",
            "/dev/stdout",
            "--max-orders",
            "65536",
            "--ring-events",
            "65536",
            "--silence-ms",
            str(QUIET),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    out, err = strat.communicate(timeout=120)
    assert strat.returncode == 0, err
    st = json.loads(p.stdout[p.stdout.index("{") :])
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("strategy: %d events" % st["book"]["events"]), (summary, st["book"])
    assert " BUY " in out or " SELL" in out


def test_silent_line_flagged_and_cleared(name):
    """The fixture's quiet minutes (one heartbeat a minute) exceed a 3 s silence
    timeout: the instruments are flagged SILENT, and cleared when it speaks again."""
    r = replay_sample(name, silence_ms=3000)
    st = r.stats()
    assert st["silences"] > 0
    seg = r.segment()
    seg.seek("oldest")
    ev = seg.events(1 << 16)
    sil = ev[ev["type"] == shm.EV_SILENT]
    assert (sil["aux"] == 1).sum() > 0 and (sil["aux"] == 0).sum() > 0
    # At the end (after end of session) nothing is left flagged silent.
    assert not (seg.copy_books()["flags"] & shm.FLAG_SILENT).any()


@pytest.mark.slow
def test_writer_dead_mid_update_is_reported_not_hung(name):
    """A slot left odd (the writer died inside an update): the reader gives up
    after about a second with a clear error, it never hangs or returns garbage."""
    r = replay_sample(name)
    seg = r.segment()
    base = lib.fh_lane_shm(r._r, ffi.NULL)
    hdr = ffi.cast("fh_shm_header_t *", base)
    slot = ffi.cast("fh_shm_slot_t *", base + hdr.slots_offset + 5 * hdr.slot_size)
    slot.seq += 1  # odd: "being written", forever
    t0 = time.monotonic()
    with pytest.raises(ShmError, match="mid-update"):
        seg.book(5)
    # Not before a second (a live writer descheduled mid-update is no dead one);
    # the upper bound only guards against a hang, it is no timing claim.
    assert 1.0 <= time.monotonic() - t0 < 60
    slot.seq += 1
    assert seg.book(5).rec["locate"] == 5


def test_a_packet_is_published_once_per_instrument_it_touched(name):
    """What arrives together is published together: three adds on one
    instrument in one packet write its slot once and report one BBO change
    (the state after the packet).  A BinaryFILE has no packets: it is
    published once per window of 128 records, so the same messages as records
    publish the same way, and a file longer than a window publishes an
    instrument once per window it appears in."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from frames import binfile_bytes, frame, mold, msg_A, pcap_bytes

    msgs = [
        msg_A(ref=1, price=1000000, shares=100),
        msg_A(ref=2, price=1000100, shares=200),
        msg_A(ref=3, side=b"S", price=1000300, shares=300),
        msg_A(ref=4, price=900000, shares=50, locate=2, stock=b"MSFT    "),
    ]
    data = pcap_bytes([(1, frame(mold(msgs, seq=1)))])
    r = Replay(shm=name, **SMALL)
    r.run_buffer(data)
    r.finish()
    b = r.stats()["book"]
    seg = r.segment()
    seg.seek("oldest")
    ev = seg.events(1 << 10)
    bbo = ev[ev["type"] == shm.EV_BBO]
    # Two instruments touched: two slot writes at the packet's end (the start-up
    # publish of every slot happens before and is not counted per message).
    assert b["adds"] == 4
    assert sorted(int(x) for x in bbo["locate"]) == [1, 2]
    one = bbo[bbo["locate"] == 1][0]
    assert (int(one["price1"]), int(one["qty1"]), int(one["price2"]), int(one["qty2"])) == (1000100, 200, 1000300, 300)
    snap = seg.book(1)
    assert list(snap.bids[0]) == [1000100, 1000000] and list(snap.asks[0]) == [1000300]
    assert int(snap.updates) == 3
    per_packet = b["publishes"]
    del seg, r
    os.unlink("/dev/shm/" + name)

    r2 = Replay(shm=name, **SMALL)
    r2.run_buffer(binfile_bytes(msgs))
    r2.finish()
    b2 = r2.stats()["book"]
    seg2 = r2.segment()
    seg2.seek("oldest")
    ev2 = seg2.events(1 << 10)
    # The four records are one window: published as the packet was.
    assert sorted(int(x) for x in ev2[ev2["type"] == shm.EV_BBO]["locate"]) == [1, 2]
    assert b2["publishes"] == per_packet
    del seg2
    os.unlink("/dev/shm/" + name)

    # 258 records (two whole windows and two records): locate 1 touched in
    # every window, so published (and reporting its BBO) three times.
    many = [msg_A(ref=10 + i, price=1000000 + 100 * i, shares=100) for i in range(258)]
    r3 = Replay(shm=name, **SMALL)
    r3.run_buffer(binfile_bytes(many))
    r3.finish()
    seg3 = r3.segment()
    seg3.seek("oldest")
    ev3 = seg3.events(1 << 10)
    bbo3 = ev3[ev3["type"] == shm.EV_BBO]
    assert [int(x) for x in bbo3["locate"]] == [1, 1, 1]
    assert [int(x) for x in bbo3["price1"]] == [1000000 + 100 * 127, 1000000 + 100 * 255, 1000000 + 100 * 257]
    assert int(seg3.book(1).updates) == 258
    del seg3


def test_reader_clock_is_the_writers_clock(name):
    """publish_ts and Segment.clock_ns() come from one TSC through one
    calibration (the writer's, in the header): a reader's "now" is never
    before a publish it has seen, and both track the wall clock."""
    r = replay_sample(name)
    seg = r.segment()
    seg.seek("oldest")
    ev = seg.events(1 << 16)
    # Each reading of the reader's clock is bracketed by wall-clock readings, so
    # how long this process waits between two statements is no part of the check:
    # only the calibration's error is (50 ms: far more than a TSC calibrated over
    # 5 ms drifts in the seconds since).
    w0 = time.time_ns()
    now = seg.clock_ns()
    w1 = time.time_ns()
    assert len(ev) and int(ev["publish_ts"].max()) <= now
    assert w0 - 50_000_000 <= now <= w1 + 50_000_000, (w0, now, w1)
    hdr = seg._hdr
    if int(hdr.tsc_hz):
        assert int(hdr.tsc_mult) > 0 and int(hdr.tsc_base_ns) >= int(hdr.created_ns) - 1_000_000_000
    m0 = time.monotonic_ns()
    a = seg.clock_ns()
    time.sleep(0.01)
    b = seg.clock_ns()
    m1 = time.monotonic_ns()
    # It advances as the wall clock does: at least the 10 ms slept, at most what
    # passed around the two readings (10 % for the calibration's rate error).
    assert 9_000_000 <= b - a <= 1.1 * (m1 - m0) + 1_000_000, (b - a, m1 - m0)
