"""Chaos: the faults a trading desk meets, on generated days.

- seeded loss, reordering and duplication on either line of an A/B feed, loss
  on both lines with and without a re-request server;
- a line that dies and comes back, and both lines of a channel dead for longer
  than the silence timeout;
- a reader process SIGKILLed mid-snapshot while a paced writer publishes;
- the handler SIGKILLed mid-run and restarted with the same --shm NAME;
- a stalled reader lapped several times by the event ring.

Every test states what must hold afterwards, and ends by checking the packet
ledger of every replay it ran (``core.ledger(stats)["unaccounted"] == 0`` and
``pkt_held == 0`` after finish()).  Books are compared with the lossless day's
``--dump-books`` CSV.  Every loop is bounded, every subprocess has a timeout,
every /dev/shm segment created here is removed in a finally.
"""

import errno
import functools
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import frames as F
from feedhandler import shm
from feedhandler.core import ledger
from feedhandler.replay import Replay
from feedhandler.rewind import RewindServer
from feedhandler.shm import ShmError, attach

pytestmark = pytest.mark.slow  # killed and stalled processes, seconds each: not in --quick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(max_orders=1 << 16, max_levels=1 << 17, max_instruments=64, ring_events=1 << 14)
SEC = 1_000_000_000
DEPTH = 10

# The paced day of the shared-memory tests: 30 000 messages in 3 s of capture
# (--rate 10000), replayed at --speed 1.2 (~2.5 s), a 256-event ring.
PACED_SPEED = "1.2"
PACED_RING = 256
# Counters that must not depend on readers, pacing or timing.
SAME = (
    "packets",
    "messages",
    "by_type",
    "gaps",
    "recovered",
    "duplicates",
    "errors",
    "checksum",
    "heartbeats",
    "end_of_session",
    "mold_packets",
    "streams",
    "bytes",
    "first_ts_ns",
    "last_ts_ns",
    "silences",
    "pkt_rejected",
    "pkt_applied",
    "pkt_duplicate",
    "pkt_held",
)
# Slot fields that describe the book (not when it was published).
BOOK_FIELDS = (
    "updates",
    "last_trade_shares",
    "last_trade_match",
    "last_trade_ts",
    "last_trade_price",
    "n_bid",
    "n_ask",
    "locate",
    "symbol",
    "trading_state",
    "flags",
    "exch_ts",
    "bid_price",
    "bid_shares",
    "bid_orders",
    "ask_price",
    "ask_shares",
    "ask_orders",
)


# ------------------------------------------------------------------ helpers


def balanced(st, finished=True):
    """The packet ledger: every packet ends in exactly one place (and, once
    the replay is finished, nothing is still held behind a hole)."""
    lg = ledger(st)
    assert lg["unaccounted"] == 0, lg
    if finished:
        assert lg["pkt_held"] == 0, lg
    return lg


def check_ledgers(ran):
    assert ran, "no replay ran"
    for st in ran:
        balanced(st)


@functools.lru_cache(maxsize=None)
def info(fr):
    """(session, sequence, count, line 'a'/'b', channel) of a generated frame."""
    ihl = (fr[14] & 15) * 4
    p = fr[14 + ihl + 8 :]
    seq, count = struct.unpack(">QH", p[10:20])
    line = "b" if fr[30:32] == bytes([233, 49]) else "a"
    return p[:10], seq, count, line, fr[33] - 111


def is_data(count):
    return count not in (0, 0xFFFF)


def lost_on_both(recs):
    """Messages no line carried, counted from the records independently of the C
    core (as tests/test_recovery.py does)."""
    seen, total = {}, {}
    for _, fr in recs:
        sess, seq, count, _, _ = info(fr)
        if not is_data(count):
            total[sess] = max(total.get(sess, 0), seq - 1)
            continue
        seen.setdefault(sess, set()).update(range(seq, seq + count))
        total[sess] = max(total.get(sess, 0), seq + count - 1)
    return sum(total[s] - len(seen.get(s, ())) for s in total)


def copies(recs):
    """(duplicate messages, duplicate data packets) the records must produce:
    every data packet delivered k times counts k-1 times."""
    n = {}
    for _, fr in recs:
        sess, seq, count, _, _ = info(fr)
        if is_data(count):
            n[(sess, seq, count)] = n.get((sess, seq, count), 0) + 1
    return sum((k - 1) * key[2] for key, k in n.items()), sum(k - 1 for k in n.values())


def pair_keys(recs):
    """A key per record equal for the A and B copies of one packet (the k-th
    record with a MoldUDP64 header on line A pairs with the k-th on line B:
    heartbeats repeat their header)."""
    occ, out = {}, []
    for _, fr in recs:
        sess, seq, count, line, _ = info(fr)
        h = (sess, seq, count)
        k = occ.get((h, line), 0)
        occ[(h, line)] = k + 1
        out.append((h, k))
    return out


def parse_books(csv):
    """locate -> its rows of a --dump-books CSV."""
    out = {}
    for row in csv.splitlines()[1:]:
        out.setdefault(int(row.split(",", 1)[0]), []).append(row)
    return out


def differing(csv, ref):
    a, b = parse_books(csv), parse_books(ref)
    return {loc for loc in set(a) | set(b) if a.get(loc) != b.get(loc)}


def run(parts, tmp_path, tag, ran, **kw):
    """Replay records (a list of record lists: several inputs in order) in one
    Replay; returns (replay, stats, books CSV)."""
    r = Replay(**{**SMALL, **kw})
    for part in parts:
        res = r.run_buffer(F.pcap_bytes(part))
        assert res.ok, res.error
    r.finish()
    st = r.stats()
    ran.append(st)
    balanced(st)
    out = tmp_path / (tag + ".csv")
    r.dump_books(str(out), DEPTH)
    return r, st, out.read_text()


def stale_locates(r):
    flags = r.segment().copy_books()["flags"]
    in_slots = {int(i) for i in np.nonzero(flags & shm.FLAG_STALE)[0]}
    in_book = {loc for loc in range(1, len(flags)) if r.flags(loc) & shm.FLAG_STALE}
    assert in_slots == in_book
    return in_slots


@pytest.fixture
def shm_name(request):
    names = []

    def make(tag=""):
        n = "fhchaos-%d-%s%s" % (os.getpid(), request.node.name[:40].replace("[", "_").replace("]", ""), tag)
        names.append(n)
        return n

    yield make
    for n in names:
        try:
            os.unlink("/dev/shm/" + n)
        except FileNotFoundError:
            pass


def gen(prefix, *extra):
    subprocess.run(
        [sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix] + list(extra),
        check=True,
        timeout=120,
        capture_output=True,
    )
    return prefix


# ------------------------------------------------------------------ the days


@pytest.fixture(scope="module")
def abday(tmp_path_factory):
    """A lossless A/B day (40 000 messages, 2 channels, 20 symbols, a heartbeat
    per idle 2 s: under the 3 s silence timeout, half the records), its records
    and its books: the reference every lossy variant must reproduce."""
    d = tmp_path_factory.mktemp("chaos")
    prefix = gen(
        str(d / "ab"),
        "--messages",
        "40000",
        "--symbols",
        "20",
        "--channels",
        "2",
        "--seed",
        "21",
        "--lines",
        "ab",
        "--heartbeat-ms",
        "2000",
    )
    recs = F.parse_pcap(open(prefix + ".pcap", "rb").read())
    ran = []
    r, st, csv = run([recs], d, "lossless", ran)
    assert st["gaps"] == 0 and st["silences"] == 0 and not stale_locates(r)
    assert csv.count("\n") > 100
    summary = json.load(open(prefix + ".json"))
    return dict(prefix=prefix, recs=recs, stats=st, csv=csv, summary=summary, dir=d)


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    """A --rate day (3 s of capture) and its paced replay through the CLI with no
    reader: the baseline counters, books and elapsed time of the shm tests."""
    d = tmp_path_factory.mktemp("paced")
    prefix = gen(
        str(d / "rate"), "--messages", "30000", "--symbols", "20", "--channels", "2", "--seed", "5", "--rate", "10000"
    )
    name = "fhchaos-%d-baseline" % os.getpid()
    try:
        p, st, csv = cli_replay(prefix + ".pcap", name, d, "baseline")
        assert p.returncode == 0, p.stderr
        seg = attach(name)
        snap = seg.copy_books()
        assert seg.state == "finished"
        seg.close()
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    assert st["book"]["events"] > 8 * PACED_RING
    # The same capture as two inputs (their counters and books are those of the one
    # file): the first 30 % of its records, and the rest for held_writer's FIFO.
    recs = F.parse_pcap(open(prefix + ".pcap", "rb").read())
    k = len(recs) * 3 // 10
    (d / "part1.pcap").write_bytes(F.pcap_bytes(recs[:k]))
    return dict(
        pcap=prefix + ".pcap",
        stats=st,
        csv=csv,
        snap=snap,
        dir=d,
        part1=str(d / "part1.pcap"),
        part2=F.pcap_bytes(recs[k:]),
    )


def cli_args(pcap, name, d, tag, extra=(), inputs=()):
    return [
        sys.executable,
        "-m",
        "feedhandler",
        "replay",
        "-q",
        pcap,
        *inputs,
        "--shm",
        name,
        "--speed",
        PACED_SPEED,
        "--ring-events",
        str(PACED_RING),
        "--max-orders",
        "65536",
        "--max-levels",
        "131072",
        "--max-instruments",
        "64",
        "--depth",
        str(DEPTH),
        "--stats-json",
        str(d / (tag + ".json")),
        "--dump-books",
        str(d / (tag + ".csv")),
    ] + list(extra)


def cli_replay(pcap, name, d, tag, timeout=120):
    p = subprocess.run(cli_args(pcap, name, d, tag), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    st = json.load(open(d / (tag + ".json"))) if p.returncode == 0 else None
    csv = (d / (tag + ".csv")).read_text() if p.returncode == 0 else None
    return p, st, csv


class held_writer:
    """The paced CLI writer of the shm tests, given the capture as two inputs:
    the first part from a file, the rest from a FIFO that only :meth:`feed`
    fills.  Until then the writer is alive, its segment running, waiting for
    the rest of its input: whatever a test does "mid-run" happens mid-run,
    however slow or busy the machine (no race against its pacing).  Counters
    and books are those of the one-file run (the ``paced`` baseline)."""

    def __init__(self, paced, name, d, tag):
        self.part2 = paced["part2"]
        self.fifo = str(d / (tag + ".fifo"))
        os.mkfifo(self.fifo)
        self.proc = subprocess.Popen(
            cli_args(paced["part1"], name, d, tag, inputs=(self.fifo,)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def feed(self, deadline_s=60.0):
        """The rest of the capture, then its end: the writer goes on and finishes."""
        end = time.monotonic() + deadline_s
        while True:
            try:  # ENXIO until the writer, done with the first part, opens it
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            assert self.proc.poll() is None, "the writer ended before reading its FIFO"
            assert time.monotonic() < end, "the writer never opened its FIFO"
            time.sleep(0.01)
        try:
            os.set_blocking(fd, True)
            mv = memoryview(self.part2)
            while mv:
                mv = mv[os.write(fd, mv) :]
        finally:
            os.close(fd)


def same_counters(a, b):
    for k in SAME:
        assert a[k] == b[k], (k, a[k], b[k])
    assert a["book"] == b["book"]


def same_slots(a, b):
    for f in BOOK_FIELDS:
        assert np.array_equal(a[f], b[f]), f


def popen_py(code, *args):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)] + [str(a) for a in args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def read_line(p, want, timeout):
    """The next stdout line of p starting with `want` (bounded in time)."""
    box = []

    def rd():
        while True:
            line = p.stdout.readline()
            if not line or line.startswith(want):
                box.append(line)
                return

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    assert box and box[0], "no %r line from the reader in %ss (stderr: %s)" % (
        want,
        timeout,
        p.stderr.read()[-2000:] if p.poll() is not None else "still running",
    )
    return box[0].strip()


def finish_proc(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError("process did not end in %ss: %s" % (timeout, err[-2000:]))
    return out, err


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=10)
        except Exception:
            pass


# Shared by the reader processes: attach (retrying while the writer creates the
# segment) and check that a slot is a possible book: bids strictly decreasing,
# asks strictly increasing, never crossed or locked (the generator never crosses
# books), positive shares and orders on every shown level, zeros past them.
READER_COMMON = r"""
import json, os, sys, time
import numpy as np
from feedhandler.shm import ShmError, attach

def attach_when(name, deadline, pid=None):
    while True:
        try:
            seg = attach(name)
            if (pid is None or seg.writer_pid == pid) and seg.state in ("running", "finished") and seg.ring_head:
                return seg
            seg.close()
        except ShmError:
            pass
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no segment %s" % name}), flush=True)
            sys.exit(3)
        time.sleep(0.005)

def bad_slot(rec, loc, depth):
    nb, na = int(rec["n_bid"]), int(rec["n_ask"])
    if int(rec["locate"]) != loc or nb > depth or na > depth:
        return "header"
    bp = rec["bid_price"].astype(np.int64)
    ap = rec["ask_price"].astype(np.int64)
    if not ((np.diff(bp[:nb]) < 0).all() and (np.diff(ap[:na]) > 0).all()):
        return "order"
    if nb and na and bp[0] >= ap[0]:
        return "crossed"
    if not ((bp[:nb] > 0).all() and (ap[:na] > 0).all() and (rec["bid_shares"][:nb] > 0).all()
            and (rec["ask_shares"][:na] > 0).all() and (rec["bid_orders"][:nb] > 0).all()
            and (rec["ask_orders"][:na] > 0).all()):
        return "empty level"
    if (bp[nb:].any() or ap[na:].any() or rec["bid_shares"][nb:].any() or rec["ask_shares"][na:].any()):
        return "past n"
    return None

def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

print("started", flush=True)     # imports done: the test may start the writer now
"""

# Scenario 3's reader: loops book / copy_books / events until the segment is
# finished; reports what it saw and the longest single call.
SNAP_READER = (
    READER_COMMON
    + r"""
name, limit = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + limit
seg = attach_when(name, deadline)
print("ready", flush=True)
d = seg.depth
locs = list(range(1, seg.n_slots))
buf = seg.new_buffer()
out = dict(books=0, alls=0, events=0, busy=0, bad=[], max_call_s=0.0, ev_breaks=0, finished=False)
last = {}
told = False
while time.monotonic() < deadline:
    done = seg.state == "finished"
    for loc in locs:
        t0 = time.monotonic()
        try:
            rec = seg.book(loc, out=buf).rec
        except ShmError as exc:
            out["busy"] += 1
            out["bad"].append("book %d: %s" % (loc, exc))
            continue
        out["max_call_s"] = max(out["max_call_s"], time.monotonic() - t0)
        out["books"] += 1
        why = bad_slot(rec, loc, d)
        if why:
            out["bad"].append("book %d: %s" % (loc, why))
    t0 = time.monotonic()
    try:
        a = seg.copy_books()
        out["max_call_s"] = max(out["max_call_s"], time.monotonic() - t0)
        out["alls"] += 1
        for loc in locs:
            why = bad_slot(a[loc], loc, d)
            if why:
                out["bad"].append("all %d: %s" % (loc, why))
    except ShmError as exc:
        out["busy"] += 1
        out["bad"].append("all: %s" % exc)
    t0 = time.monotonic()
    lapped = seg.lapped
    ev = seg.events(1 << 16)
    out["max_call_s"] = max(out["max_call_s"], time.monotonic() - t0)
    out["events"] += len(ev)
    if seg.lapped == lapped:
        for lane in np.unique(ev["lane"]):
            s = ev["seq"][ev["lane"] == lane].astype(np.int64)
            prev = last.get(int(lane))
            if (prev is not None and s[0] != prev + 1) or (np.diff(s) != 1).any():
                out["ev_breaks"] += 1
    for lane in np.unique(ev["lane"]):
        last[int(lane)] = int(ev["seq"][ev["lane"] == lane][-1])
    if len(out["bad"]) > 20:
        break
    if not told and out["alls"] >= 6:
        print("reading", flush=True)        # six whole rounds of book / copy_books / events done
        told = True
    if done:
        out["finished"] = True
        break
out["lapped"] = seg.lapped
print(json.dumps(out), flush=True)
"""
)


# ---------------------------------------------- 1. loss, reordering, copies


@pytest.mark.parametrize("mode", ["a-only", "b-only", "never-both"])
def test_loss_on_one_line_at_a_time(abday, tmp_path, mode):
    """Seeded loss (~20% of packets) on line A only, line B only, or on either
    line but never on both copies of a packet: arbitration alone rebuilds the
    lossless books byte for byte, gaps == 0, nothing recovered, nothing stale,
    and the duplicates (messages and packets) are exactly the copies that
    arrived twice."""
    rnd = random.Random({"a-only": 1, "b-only": 2, "never-both": 3}[mode])
    recs = abday["recs"]
    fate = {}
    kept = []
    for (ts, fr), key in zip(recs, pair_keys(recs)):
        line = info(fr)[3]
        if key not in fate:
            if mode == "never-both":
                fate[key] = rnd.choice(["a", "b", "none", "none", "none", "none"])
            else:
                fate[key] = mode[0] if rnd.random() < 0.2 else "none"
        if fate[key] == line:
            continue
        kept.append((ts, fr))
    dropped = len(recs) - len(kept)
    assert dropped > 0.1 * len(recs) / 2
    assert lost_on_both(kept) == 0
    ran = []
    r, st, csv = run([kept], tmp_path, mode, ran)
    dup_msgs, dup_pkts = copies(kept)
    assert st["gaps"] == 0 and st["recovered"] == 0 and st["silences"] == 0
    assert csv == abday["csv"]
    assert st["duplicates"] == dup_msgs and st["pkt_duplicate"] == dup_pkts
    assert st["messages"] == abday["stats"]["messages"] and st["checksum"] == abday["stats"]["checksum"]
    assert not stale_locates(r)
    check_ledgers(ran)


def test_reordering_and_duplicates_on_either_line(abday, tmp_path):
    """Packets reordered within short windows (2-4 records spanning under
    300 us of capture time; the capture times stay non-decreasing: frames move,
    timestamps stay) and ~5% of packets duplicated on the same line a few
    records later: the books are the lossless ones byte for byte, gaps == 0,
    the clock never stepped back, and every extra copy counts as a duplicate."""
    rnd = random.Random(7)
    recs = abday["recs"]
    ts = [t for t, _ in recs]
    frs = [f for _, f in recs]
    moved = 0
    i = 0
    while i < len(frs) - 4:
        w = rnd.randint(2, 4)
        if rnd.random() < 0.3 and ts[i + w - 1] - ts[i] < 300_000:
            win = frs[i : i + w]
            perm = win[:]
            rnd.shuffle(perm)
            moved += sum(1 for a, b in zip(win, perm) if a is not b)
            frs[i : i + w] = perm
            i += w
        else:
            i += 1
    out = []
    extra = 0
    pending = []  # (records left before re-sending, frame)
    for t, fr in zip(ts, frs):
        out.append((t, fr))
        still = []
        for left, f in pending:
            if left == 0:
                out.append((t, f))  # same capture time as the record before: non-decreasing
                extra += 1
            else:
                still.append((left - 1, f))
        pending = still
        if is_data(info(fr)[2]) and rnd.random() < 0.05:
            pending.append((rnd.randint(0, 3), fr))
    assert moved > 1000 and extra > 300
    assert all(out[k][0] <= out[k + 1][0] for k in range(len(out) - 1))
    ran = []
    r, st, csv = run([out], tmp_path, "reorder", ran)
    dup_msgs, dup_pkts = copies(out)
    assert st["gaps"] == 0 and st["recovered"] == 0 and st["rx_time_back"] == 0
    assert csv == abday["csv"]
    assert st["duplicates"] == dup_msgs and st["pkt_duplicate"] == dup_pkts
    assert st["checksum"] == abday["stats"]["checksum"]
    assert not stale_locates(r)
    check_ledgers(ran)


@pytest.fixture
def rewind(abday):
    with RewindServer(abday["prefix"] + ".pcap", "127.0.0.1", 0).in_background() as srv:
        yield srv


def both_lines_lossy(recs, seed, p=0.15):
    rnd = random.Random(seed)
    return [(ts, fr) for ts, fr in recs if rnd.random() >= p]


def test_loss_on_both_lines_stale_then_recovered(abday, tmp_path, rewind):
    """Independent seeded loss of 15% on each line, so some packets are lost on
    both.  Without a re-request server: gaps == the messages lost on both lines
    (counted from the capture), and every instrument whose final book differs
    from the lossless one is flagged STALE (slot flags and Replay.flags agree).
    With the rewind server answering from the lossless capture: the lossless
    books byte for byte, gaps == 0, recovered == the messages lost on both,
    nothing stale."""
    lossy = both_lines_lossy(abday["recs"], 11)
    missing = lost_on_both(lossy)
    assert missing > 0
    ran = []
    r, st, csv = run([lossy], tmp_path, "nosrv", ran)
    assert st["gaps"] == missing and st["recovered"] == 0
    wrong = differing(csv, abday["csv"])
    assert wrong, "loss on both lines left every book right: the test lost its teeth"
    stale = stale_locates(r)
    assert wrong <= stale, "books wrong but not flagged STALE: %s" % sorted(wrong - stale)
    ev = r.segment()
    ev.seek("oldest")
    e = ev.events(1 << 16)
    assert set(e["locate"][e["type"] == shm.EV_STALE].tolist()) == stale
    del ev, e

    # The server is a Python thread (slow under sanitizers on a loaded machine) and
    # answers every request: the client waits for as long as only a lost reply would.
    r2, st2, csv2 = run([lossy], tmp_path, "rewind", ran, rerequest=rewind.address, rerequest_timeout_ms=30000)
    assert st2["gaps"] == 0 and st2["recovered"] == missing
    assert csv2 == abday["csv"] and st2["checksum"] == abday["stats"]["checksum"]
    assert not stale_locates(r2)
    check_ledgers(ran)


def test_gap_before_an_instruments_first_message_still_flags_it(abday, tmp_path):
    """The packet carrying channel 0's stock directory is lost on both lines
    (no re-request server).  The gap is counted, and every instrument whose
    final book differs from the lossless one (here: those whose directory
    entry was lost, which come out with no symbol) must be flagged STALE, even
    though the stream had not carried them before the gap."""
    recs = abday["recs"]
    target = None
    for ts, fr in recs:
        sess, seq, count, line, chan = info(fr)
        if chan == 0 and is_data(count) and any(m[:1] == b"R" for m in F.mold_messages(fr)):
            target = (sess, seq, count)
            break
    kept = [(ts, fr) for ts, fr in recs if info(fr)[:3] != target]
    missing = lost_on_both(kept)
    assert target is not None and missing == target[2]
    ran = []
    r, st, csv = run([kept], tmp_path, "nodir", ran)
    assert st["gaps"] == missing
    wrong = differing(csv, abday["csv"])
    assert wrong
    check_ledgers(ran)
    stale = stale_locates(r)
    assert wrong <= stale, "books wrong but not flagged STALE: %s" % sorted(wrong - stale)


# ----------------------------------------------------- 2. lines that die


def busiest_window(recs, chan, width):
    """Start of the `width`-ns window holding the most data packets of `chan`
    on line A, after the first tenth of the day (the directory is not in it)."""
    t = np.array(
        [ts for ts, fr in recs if info(fr)[4] == chan and info(fr)[3] == "a" and is_data(info(fr)[2])], dtype=np.int64
    )
    t = t[len(t) // 10 :]
    ends = np.searchsorted(t, t + width)
    i = int(np.argmax(ends - np.arange(len(t))))
    return int(t[i])


def test_line_a_dead_for_half_an_hour(abday, tmp_path):
    """Line A carries nothing (data, heartbeats, anything) for 30 minutes of the
    busiest part of the day while line B carries on: the books are the lossless
    ones, gaps == 0, no silence (the stream still speaks on B), nothing stale."""
    recs = abday["recs"]
    t1 = busiest_window(recs, 0, 30 * 60 * SEC) - SEC
    t2 = t1 + 30 * 60 * SEC
    kept = [(ts, fr) for ts, fr in recs if not (info(fr)[3] == "a" and t1 <= ts < t2)]
    dropped_data = sum(1 for ts, fr in recs if info(fr)[3] == "a" and t1 <= ts < t2 and is_data(info(fr)[2]))
    assert dropped_data > 50
    ran = []
    r, st, csv = run([kept], tmp_path, "adead", ran, silence_ms=3000)
    assert st["gaps"] == 0 and st["silences"] == 0 and csv == abday["csv"]
    assert st["duplicates"] == copies(kept)[0]
    assert not stale_locates(r)
    check_ledgers(ran)


def test_both_lines_dead_past_the_silence_timeout(abday, tmp_path):
    """Both lines of channel 0 dead for 10 s (the busiest 10 s after the
    opening part of the day) with --silence-ms 3000 and no re-request server,
    while channel 1 carries on.  Seven seconds into the outage channel 0's
    instruments are flagged SILENT (slots and Replay.flags) and channel 1's are
    not, silences == 1, the flag set 3-5 s after channel 0 last spoke; once the line speaks again the flags are cleared (an
    EV_SILENT on and an off event per instrument, the off one at the first
    packet after the outage).  The messages lost count as gaps exactly, every
    instrument whose book ends wrong is flagged STALE, and channel 1's books
    and flags are untouched."""
    recs = abday["recs"]
    summary = abday["summary"]
    ch0 = set(range(summary["channels"][0]["locates"][0], summary["channels"][0]["locates"][1] + 1))
    t1 = busiest_window(recs, 0, 10 * SEC)
    t2 = t1 + 10 * SEC
    kept = [(ts, fr) for ts, fr in recs if not (info(fr)[4] == 0 and t1 <= ts < t2)]
    missing = lost_on_both(kept)
    assert missing > 0
    mid = t1 + 7 * SEC
    part1 = [(ts, fr) for ts, fr in kept if ts < mid]
    part2 = [(ts, fr) for ts, fr in kept if ts >= mid]
    back = next(ts for ts, fr in part2 if info(fr)[4] == 0)  # channel 0 speaks again
    last0 = max(ts for ts, fr in part1 if info(fr)[4] == 0)  # and last spoke
    assert back >= t2

    r = Replay(**SMALL, silence_ms=3000)
    assert r.run_buffer(F.pcap_bytes(part1)).ok
    mid_st = r.stats()
    balanced(mid_st, finished=False)
    seg = r.segment()
    silent_mid = {loc for loc in range(1, 21) if r.flags(loc) & shm.FLAG_SILENT}
    slots_mid = seg.copy_books()["flags"]
    assert silent_mid == ch0, sorted(silent_mid)
    assert {int(i) for i in np.nonzero(slots_mid & shm.FLAG_SILENT)[0]} == ch0
    assert mid_st["silences"] == 1

    assert r.run_buffer(F.pcap_bytes(part2)).ok
    r.finish()
    st = r.stats()
    ran = [st]
    assert st["silences"] == 1
    assert not any(r.flags(loc) & shm.FLAG_SILENT for loc in range(1, 21))
    assert not (seg.copy_books()["flags"] & shm.FLAG_SILENT).any()
    seg.seek("oldest")
    ev = seg.events(1 << 16)
    sil = ev[ev["type"] == shm.EV_SILENT]
    on, off = sil[sil["aux"] == 1], sil[sil["aux"] == 0]
    assert set(on["locate"].tolist()) == ch0 and set(off["locate"].tolist()) == ch0
    assert len(on) == len(ch0) == len(off)
    # Flagged once 3 s passed since channel 0 last spoke, at the next sweep
    # (channel 1 speaks at least every 2 s), well before the line comes back.
    assert (on["rx_ts"] > last0 + 3 * SEC).all() and (on["rx_ts"] < last0 + 5200 * 1_000_000).all()
    assert (on["rx_ts"] < t2).all()
    assert (off["rx_ts"] == back).all()

    assert st["gaps"] == missing and st["recovered"] == 0
    out = tmp_path / "dead.csv"
    r.dump_books(str(out), DEPTH)
    csv = out.read_text()
    wrong = differing(csv, abday["csv"])
    stale = stale_locates(r)
    assert wrong <= stale, "books wrong but not flagged STALE: %s" % sorted(wrong - stale)
    assert not wrong - ch0 and not stale - ch0  # channel 1 never lost anything
    a, b = parse_books(csv), parse_books(abday["csv"])
    assert all(a.get(loc) == b.get(loc) for loc in range(1, 21) if loc not in ch0)
    check_ledgers(ran)


# ------------------------------------------- 3. a reader killed mid-snapshot


def test_reader_killed_mid_snapshot(paced, tmp_path, shm_name):
    """A paced writer publishes while two reader processes loop book() /
    copy_books() / events(); one is SIGKILLed mid-run (once both readers
    have done six whole rounds of reads, and while the writer is still
    running: the rest of its input is held back until the victim is dead).
    The writer finishes normally (exit 0) with the counters and books of the
    run without readers (stats, --dump-books CSV and final slots); the
    surviving reader saw only consistent snapshots (bids strictly decreasing,
    asks strictly increasing, never crossed, no empty shown level, zeros past
    the depth), was never wedged (every call returned, none gave up busy),
    saw contiguous per-lane event sequences whenever it was not lapped, and
    saw the segment finished."""
    name = shm_name()
    procs = []
    try:
        victim = popen_py(SNAP_READER, name, 60)
        survivor = popen_py(SNAP_READER, name, 60)
        procs += [victim, survivor]
        read_line(victim, "started", 30)
        read_line(survivor, "started", 30)
        hw = held_writer(paced, name, tmp_path, "w")
        w = hw.proc
        procs.append(w)
        read_line(victim, "reading", 30)
        read_line(survivor, "reading", 30)  # its rounds while the writer runs, before the kill
        assert w.poll() is None, "the writer ended before the reader could be killed"
        victim.send_signal(signal.SIGKILL)
        finish_proc(victim, 10)
        assert victim.returncode == -signal.SIGKILL
        hw.feed()
        _, werr = finish_proc(w, 120)
        assert w.returncode == 0, werr[-3000:]
        out, err = finish_proc(survivor, 90)
        assert survivor.returncode == 0, err[-3000:]
        rep = json.loads(out.strip().splitlines()[-1])
        st = json.load(open(tmp_path / "w.json"))
        same_counters(st, paced["stats"])
        assert (tmp_path / "w.csv").read_text() == paced["csv"]
        seg = attach(name)
        assert seg.state == "finished"
        same_slots(seg.copy_books(), paced["snap"])
        seg.close()
    finally:
        kill_all(procs)
    assert rep["finished"] and not rep["bad"] and rep["busy"] == 0, rep
    assert rep["books"] > 100 and rep["alls"] > 5, rep
    assert rep["ev_breaks"] == 0, rep
    check_ledgers([st, paced["stats"]])


# ------------------------------------- 4. the handler killed and restarted

OLD_READER = (
    READER_COMMON
    + r"""
name, limit = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + limit
seg = attach_when(name, deadline)
pid = seg.writer_pid
print("ready %d" % pid, flush=True)
d = seg.depth
locs = list(range(1, seg.n_slots))
out = dict(reads=0, bad=[], errors=[], dead_state=None, detected_after_s=None)
told = False
while time.monotonic() < deadline:
    for loc in locs:
        try:
            why = bad_slot(seg.book(loc).rec, loc, d)
            out["reads"] += 1
            if why:
                out["bad"].append("%d: %s" % (loc, why))
        except ShmError as exc:
            out["errors"].append(str(exc))
    seg.events()
    if seg.state == "dead":                 # the reader API itself says so (killed writer, zombie or reused pid)
        break
    if not told:
        print("reading", flush=True)        # a whole round of reads of the live writer's slots
        told = True
else:
    print(json.dumps({"error": "writer never seen dead"}), flush=True)
    sys.exit(4)
out["dead_state"] = seg.state
try:
    out["counters"] = seg.counters()
except ShmError as exc:
    out["counters"] = None
    out["errors"].append(str(exc))
before = {}
for loc in locs:
    try:
        before[loc] = seg.book(loc).rec.tobytes()
    except ShmError as exc:
        out["errors"].append(str(exc))
print("dead " + json.dumps(out), flush=True)
sys.stdin.readline()                       # the test restarted the handler meanwhile
# The old mapping is still valid memory, frozen as the dead writer left it.
after = dict(unchanged=0, changed=0, errors=0)
for loc in locs:
    try:
        b = seg.book(loc).rec.tobytes()
        after["unchanged" if before.get(loc) == b else "changed"] += 1
    except ShmError:
        after["errors"] += 1
after["old_pid"] = seg.writer_pid
after["old_pid_alive"] = pid_alive(seg.writer_pid)
after["old_state"] = seg.state
after["old_created_ns"] = seg.created_ns
new = attach(name)
after["new_pid"] = new.writer_pid
after["new_created_ns"] = new.created_ns
print("after " + json.dumps(after), flush=True)
"""
)


def test_handler_killed_and_restarted_same_name(paced, tmp_path, shm_name):
    """The handler (CLI replay --shm NAME, paced) is SIGKILLed mid-run while a
    reader process follows it.  A reader attached then is told at once that
    the writer is dead (state "dead": not finished and its writer process
    gone, as soon as it is reaped), and the following reader notices it; every
    read it made was a consistent book or a clear ShmError saying the writer
    died mid-update, never garbage; the dead writer's last published counters
    still balance.  The handler restarted with the same NAME replaces the stale
    segment: it runs to exit 0, a fresh attach sees the new writer's pid in
    state running then finished, with the books and counters of the
    undisturbed run; the old reader's mapping stays valid (no crash), frozen,
    and it can tell it is a dead writer's segment (other pid and creation time
    than the one now under NAME)."""
    name = shm_name()
    procs = []
    try:
        old = popen_py(OLD_READER, name, 60)
        procs.append(old)
        read_line(old, "started", 30)
        # Never fed the rest of its input: running until killed, whatever the timing.
        w1 = held_writer(paced, name, tmp_path, "w1").proc
        procs.append(w1)
        line = read_line(old, "ready", 30)
        assert int(line.split()[1]) == w1.pid
        read_line(old, "reading", 30)
        assert w1.poll() is None, "the writer ended before it could be killed"
        w1.send_signal(signal.SIGKILL)
        finish_proc(w1, 10)  # reaped: a zombie would still answer kill(pid, 0)
        assert w1.returncode == -signal.SIGKILL
        with attach(name) as now:  # dead as soon as the writer is gone, for any reader
            assert now.writer_pid == w1.pid and now.state == "dead" and now.writer_alive is False
        dead = json.loads(read_line(old, "dead", 30)[5:])

        w2 = subprocess.Popen(
            cli_args(paced["pcap"], name, tmp_path, "w2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        procs.append(w2)
        seg, t_end = None, time.monotonic() + 30
        while time.monotonic() < t_end:
            try:
                s = attach(name)
                if s.writer_pid == w2.pid:
                    seg = s
                    break
                s.close()
            except ShmError:
                pass
            if w2.poll() is not None:
                break
            time.sleep(0.005)
        assert seg is not None, "the restarted handler never replaced the segment: %s" % (
            w2.communicate(timeout=30)[1][-3000:] if w2.poll() is not None else ""
        )
        state_live = seg.state
        _, err2 = finish_proc(w2, 120)
        assert w2.returncode == 0, err2[-3000:]
        fresh = attach(name)
        assert fresh.writer_pid == w2.pid and fresh.state == "finished"
        same_slots(fresh.copy_books(), paced["snap"])
        fresh_created = fresh.created_ns
        fresh.close()
        seg.close()
        st2 = json.load(open(tmp_path / "w2.json"))

        old.stdin.write("go\n")
        old.stdin.flush()
        after = json.loads(read_line(old, "after", 30)[6:])
        finish_proc(old, 30)
        assert old.returncode == 0
    finally:
        kill_all(procs)
    assert not dead["bad"], dead
    assert dead["reads"] > 0 and dead["dead_state"] == "dead"
    assert all("writer died" in e for e in dead["errors"]), dead["errors"]
    if dead["counters"] is not None:
        balanced(dead["counters"], finished=False)
    assert state_live in ("starting", "running", "finished")
    assert (tmp_path / "w2.csv").read_text() == paced["csv"]
    same_counters(st2, paced["stats"])
    assert after["changed"] == 0 and after["old_pid"] == w1.pid and not after["old_pid_alive"]
    assert after["old_state"] == "dead"
    assert after["new_pid"] == w2.pid and after["new_created_ns"] == fresh_created
    assert after["old_created_ns"] != after["new_created_ns"]
    check_ledgers([st2, paced["stats"]])


DEAD_WRITER = r"""
import os, signal, sys
sys.path.insert(0, "tests")
import frames as F
from feedhandler.replay import Replay
r = Replay(shm=sys.argv[1], max_orders=1024, max_levels=4096, max_instruments=8)
rec = [(1_700_000_000_000_000_000, F.frame(F.mold([F.msg_A(ref=1)], seq=1)))]
assert r.run_buffer(F.pcap_bytes(rec)).ok
from feedhandler.core import ledger
import json
print(json.dumps(ledger(r.stats())), flush=True)
os.kill(os.getpid(), signal.SIGKILL)       # no finish(): the segment stays 'running'
"""


def test_reader_api_says_the_writer_is_dead(shm_name):
    """A reader attached to a segment whose writer was killed (never finished)
    must be told so by the reader API itself: Segment.state must not claim the
    segment is starting or running when its writer no longer exists."""
    name = shm_name()
    p = subprocess.run([sys.executable, "-c", DEAD_WRITER, name], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == -signal.SIGKILL, p.stderr
    lg = json.loads(p.stdout)
    seg = attach(name)
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(seg.writer_pid, 0)
        assert ledger(seg.counters())["unaccounted"] == 0  # whatever it last published balances
        assert (lg["packets"], lg["pkt_applied"], lg["pkt_held"], lg["unaccounted"]) == (1, 1, 0, 0)
        assert seg.state not in ("starting", "running"), seg.state
    finally:
        seg.close()


# ------------------------------------------- 5. a stalled reader is lapped

LAPPED_READER = (
    READER_COMMON
    + r"""
name, limit = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + limit
seg = attach_when(name, deadline)
seg.seek("oldest")
start = seg.cursor
ring = seg.ring_capacity
out = dict(start=start, seen=0, breaks=0, lapped_before=0, lapped_at_resume=0, lapped_after=0,
           last_before=None, first_after=None, last=None, after=0, finished=False)
last = start              # the seq of the last event seen (or skipped, lost): the next one must follow it

def take(ev, lost):
    # Events of one events() call, `lost` of them overwritten before it (seg.lapped grew
    # by that much): its first event must be the one right after those, then one by one.
    global last
    s = ev["seq"].astype(np.int64)
    if not len(s):
        last += lost
        return 0
    breaks = int(s[0] != last + lost + 1) + int((np.diff(s) != 1).sum())
    last = int(s[-1])
    return breaks

def read():
    lapped = seg.lapped
    ev = seg.events(1 << 16)
    lost = seg.lapped - lapped
    out["seen"] += len(ev)
    out["breaks"] += take(ev, lost)
    return ev, lost

while out["seen"] < 200 and time.monotonic() < deadline:
    out["lapped_before"] += read()[1]
out["last_before"] = last
print("stalling", flush=True)
# Busy elsewhere until the writer is more than 4 rings past this reader's
# position (it laps the ring meanwhile): the writer's progress, not a time.
while seg.ring_head - seg.cursor <= 4 * ring and time.monotonic() < deadline:
    time.sleep(0.005)
ev, lost = read()
out["lapped_at_resume"] = lost
out["first_after"] = int(ev["seq"][0]) if len(ev) else None
out["after"] += len(ev)
print("resumed", flush=True)
while time.monotonic() < deadline:
    done = seg.state == "finished"
    ev, lost = read()
    out["after"] += len(ev)
    out["lapped_after"] += lost
    if done and not len(ev):
        out["finished"] = True
        break
out["last"] = last
out["head"] = seg.ring_head
out["lapped"] = seg.lapped
print(json.dumps(out), flush=True)
"""
)


def test_stalled_reader_is_lapped_and_resynchronises(paced, tmp_path, shm_name):
    """A 256-event ring; a reader follows from the oldest event, then stalls
    while the paced writer laps the ring several times (until the writer is
    more than 4 rings ahead: the writer, held at that point until the reader
    has seen 200 events, then given the rest of its input), then resumes.  The
    writer never waits for it: it wrote more than 3 rings' worth past what the
    reader could still read (a writer that waited on a full ring could not
    have), and ends with the counters and books of the undisturbed run; the
    reader is told exactly how many events it lost (the first event after the
    stall is the one right after the last it saw plus the lost count, and lost
    > 3 rings), and every other call too: whenever the reader is lapped (as a
    slow reader on a busy machine may be, before or after the stall) the lost
    count is exactly the hole in the lane's sequence numbers, which are
    otherwise contiguous; seen + lost covers every event from its starting
    point to the writer's total, and the reader sees the segment finished."""
    name = shm_name()
    procs = []
    try:
        rd = popen_py(LAPPED_READER, name, 60)
        procs.append(rd)
        read_line(rd, "started", 30)
        hw = held_writer(paced, name, tmp_path, "w")
        w = hw.proc
        procs.append(w)
        read_line(rd, "stalling", 30)
        assert w.poll() is None, "the writer ended before the reader stalled"
        hw.feed()
        _, werr = finish_proc(w, 120)
        assert w.returncode == 0, werr[-3000:]
        out, err = finish_proc(rd, 90)
        assert rd.returncode == 0, err[-3000:]
        rep = json.loads(out.strip().splitlines()[-1])
        st = json.load(open(tmp_path / "w.json"))
    finally:
        kill_all(procs)
    total = st["book"]["events"]
    assert rep["breaks"] == 0, rep
    assert rep["lapped_at_resume"] > 3 * PACED_RING, rep
    assert rep["first_after"] == rep["last_before"] + rep["lapped_at_resume"] + 1, rep
    assert rep["after"] > 0 and rep["finished"], rep
    assert rep["last"] == total == rep["head"], (rep, total)
    lost = rep["lapped_before"] + rep["lapped_at_resume"] + rep["lapped_after"]
    assert lost == rep["lapped"], rep
    assert rep["seen"] + lost == total - rep["start"], rep
    same_counters(st, paced["stats"])
    assert (tmp_path / "w.csv").read_text() == paced["csv"]
    check_ledgers([st, paced["stats"]])


def test_killed_writer_not_yet_reaped_does_not_hold_the_name(shm_name):
    """A writer SIGKILLed but not yet reaped by its parent (a zombie: kill(pid, 0)
    still succeeds) is dead all the same: readers are told so and a new writer
    takes the name at once, instead of "in use by a running writer"."""
    from feedhandler.replay import Replay

    name = shm_name()
    w = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DEAD_WRITER.replace("os.kill(os.getpid(), signal.SIGKILL)", "import time; time.sleep(60)"),
            name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        seg = None
        while seg is None and time.monotonic() < deadline:
            try:
                seg = attach(name)
            except ShmError:  # not there yet, or still being created
                time.sleep(0.02)
        while seg.state != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seg.state == "running" and seg.writer_alive is True
        os.kill(w.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while seg.state != "dead" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seg.state == "dead" and seg.writer_alive is False
        with open("/proc/%d/stat" % w.pid) as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"  # not reaped: a zombie
        r = Replay(shm=name, max_orders=1024, max_levels=4096, max_instruments=16, ring_events=1 << 10)
        fresh = attach(name)
        assert fresh.writer_pid == os.getpid() and fresh.state == "running" and fresh.writer_alive is True
        del r, fresh
        seg.close()
    finally:
        if w.poll() is None:
            w.kill()
        w.wait(10)
        if os.path.exists("/dev/shm/" + name):
            os.unlink("/dev/shm/" + name)
