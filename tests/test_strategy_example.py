"""scripts/strategy_example.py is the strategy users copy: it runs on the
bundled samples with every numpy/Python warning an error, every imbalance it
prints lies in [-1, 1], and its signal count equals a count this test computes
itself, event by event in plain Python, from the same segment."""

import os
import re
import subprocess
import sys

import pytest

from feedhandler.shm import EV_BBO, EV_STALE, attach

pytestmark = pytest.mark.slow  # the example strategy beside three replays: not in --quick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "strategy_example.py")
LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{6} (\S+)\s+(BUY|SELL)\s+tob ([+-]\d+\.\d+)  depth5 ([+-]\d+\.\d+)  "
    r"bid (\d+\.\d{4}) x (\d+)  ask (\d+\.\d{4}) x (\d+)$"
)
SUMMARY = re.compile(r"^strategy: (\d+) events \((\d+) trades\) in [\d.]+ s, (\d+) signals, (\d+) stale instruments$")


def expected_signals(name, threshold):
    """The strategy's rule, written out per event: the top-of-book imbalance of
    each BBO event (0 while a side is empty) gives an opinion (+1 above the
    threshold, -1 below minus it, else 0); a change of an instrument's opinion to
    +-1 while it is not stale is a signal when the top-5 depth imbalance of its
    book has the same sign (the segment is finished: the book is the final one)."""
    with attach(name) as seg:
        assert seg.state == "finished"
        books = seg.copy_books()
        seg.seek("oldest")
        events = []
        while True:
            batch = seg.events(50_000)
            if not len(batch):
                break
            events.extend(batch.tolist())
        assert seg.lapped == 0
        names = batch.dtype.names
    i_type, i_loc, i_aux = names.index("type"), names.index("locate"), names.index("aux")
    i_q1, i_q2 = names.index("qty1"), names.index("qty2")

    def depth(loc):
        nb, na = int(books["n_bid"][loc]), int(books["n_ask"][loc])
        b = sum(int(x) for x in books["bid_shares"][loc][: min(nb, 5)])
        a = sum(int(x) for x in books["ask_shares"][loc][: min(na, 5)])
        return (b - a) / (b + a) if b > 0 and a > 0 else 0.0

    side, stale, n = {}, set(), 0
    for e in events:
        loc = e[i_loc]
        if e[i_type] == EV_STALE:
            (stale.add if e[i_aux] else stale.discard)(loc)
        elif e[i_type] == EV_BBO:
            bq, aq = e[i_q1], e[i_q2]
            imb = (bq - aq) / (bq + aq) if bq > 0 and aq > 0 else 0.0
            s = 1 if imb > threshold else -1 if imb < -threshold else 0
            if s != side.get(loc, 0):
                side[loc] = s
                if s and loc not in stale:
                    d = depth(loc)
                    if (d > 0) - (d < 0) == s:
                        n += 1
    return n, len(events)


@pytest.mark.parametrize(
    "sample,cores,threshold", [("sample.pcap", None, 0.6), ("sample.bin.gz", "0,1", 0.6), ("sample_ab.pcap", None, 0.3)]
)
def test_example_strategy_is_right(name, sample, cores, threshold):
    cmd = [sys.executable, "-m", "feedhandler", "replay", "-q", os.path.join(ROOT, "pcaps", sample), "--shm", name]
    if cores:
        cmd += ["--cores", cores]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            SCRIPT,
            "--shm",
            name,
            "--from-start",
            "--threshold",
            str(threshold),
            "--max-signals",
            "100000",
            "--wait",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr  # no warning, no lapping
    lines = p.stdout.splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    n_events, n_signals = int(summary.group(1)), int(summary.group(3))
    signals = [LINE.match(l) for l in lines[:-1]]
    assert all(signals), [l for l, m in zip(lines, signals) if not m][:3]
    assert len(signals) == n_signals > 0
    assert {m.group(2) for m in signals} == {"BUY", "SELL"}
    for m in signals:
        tob, deep = float(m.group(3)), float(m.group(4))
        assert -1 <= tob <= 1 and -1 <= deep <= 1, m.group(0)
        assert abs(tob) > threshold - 0.005  # printed to 2 decimals
        assert (tob > 0) == (deep > 0) == (m.group(2) == "BUY")
    want, total = expected_signals(name, threshold)
    assert (n_signals, n_events) == (want, total)


def test_example_strategy_prints_at_most_max_signals(name):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            os.path.join(ROOT, "pcaps", "sample.pcap"),
            "--shm",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [sys.executable, "-W", "error", SCRIPT, "--shm", name, "--from-start", "--max-signals", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 4 and int(SUMMARY.match(lines[-1]).group(3)) == expected_signals(name, 0.6)[0]


def test_example_strategy_without_a_segment():
    p = subprocess.run(
        [sys.executable, SCRIPT, "--shm", "fh-no-such-segment-%d" % os.getpid(), "--wait", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 1 and "no shared-memory segment" in p.stderr, p.stderr
