"""CLI behaviour beyond decoding: progress bar, stopping, argument errors."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from feedhandler import progress
from feedhandler.progress import run_with_progress
from feedhandler.replay import Replay
from procutil import reap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=120, **kw
    )


class FakeClock:
    """feedhandler.progress's time.monotonic, moved by the test: "more than a
    second" is then what the test says it is, not how long a busy machine
    took to run a thread."""

    def __init__(self):
        self.now = 0.0
        self.reads = 0

    def monotonic(self):
        self.reads += 1
        return self.now

    def wait_reads(self, n):
        """Until the polling thread has read the clock n more times (each read
        is a chance to draw), bounded by a generous real-time deadline."""
        want = self.reads + n
        end = time.monotonic() + 60
        while self.reads < want and time.monotonic() < end:
            time.sleep(0.01)
        assert self.reads >= want, "the progress loop stopped polling"


def test_progress_bar_after_one_second(capsys, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress, "time", clock)
    polled = threading.Event()
    early = []

    def poll():
        polled.set()
        return 5, 10

    def work():
        clock.now = 0.9  # under a second: polled twice, no bar yet
        clock.wait_reads(2)
        early.append(polled.is_set())
        clock.now = 1.5  # past it: the next poll draws the bar
        assert polled.wait(60), "no bar after a second"
        return 7

    assert run_with_progress(work, poll, "work", enabled=True) == 7
    assert early == [False]
    err = capsys.readouterr().err
    assert "work" in err and "[" in err and "%" in err


def test_no_progress_bar_when_quick_or_disabled(capsys, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress, "time", clock)
    # Quick: done before the clock passes a second (here it never moves).
    run_with_progress(lambda: None, lambda: (1, 1), "quick", enabled=True)

    def slow():
        clock.now = 5.0  # well past a second, but the bar is off
        time.sleep(0.3)  # a few polls of 100 ms (no bar however many)

    run_with_progress(slow, lambda: (1, 2), "off", enabled=False)
    assert capsys.readouterr().err == ""


def test_worker_exception_reaches_caller():
    def boom():
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        run_with_progress(boom, lambda: (0, 0), "x", enabled=False)


def test_stop_ends_walk_before_next_frame():
    r = Replay(max_orders=1 << 16, max_levels=1 << 18, ring_events=1 << 16)
    r.stop()
    res = r.run_file(os.path.join(ROOT, "pcaps", "sample.bin.gz"), progress=False)
    st = r.stats()
    assert res.ok and st["packets"] == 0  # stopped before the first record (tests/test_signals.py)


def sigint_default():
    """In the child: SIGINT back to its default.  A test run started in the
    background by a non-interactive shell (CI scripts, nohup ... &) inherits
    SIGINT ignored, and Python then installs no handler for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_proc(pid, what, pred, limit=60.0):
    """Until pred() holds for process pid (bounded: only a hang reaches the limit)."""
    end = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < end, "process %d never %s" % (pid, what)
        time.sleep(0.01)


def _wchan(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def wchan_shown():
    """Whether /proc shows wait channels here: a thread of ours, asleep on an
    event, reads as something other than 0."""
    stop, ready = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: ready.set() or stop.wait(60), daemon=True)
    t.start()
    try:
        ready.wait(60)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if _wchan("/proc/self/task/%d/wchan" % t.native_id) not in ("", "0"):
                return True
            time.sleep(0.01)
        return False
    finally:
        stop.set()
        t.join(60)


def reading_a_pipe(pid, shown):
    """A thread of pid sleeps in a pipe read.  Where /proc shows no wait
    channels, true at once: the test holds either way, this only makes the
    signal land mid-read."""
    return not shown or any(
        "pipe" in _wchan("/proc/%d/task/%s/wchan" % (pid, t)) for t in os.listdir("/proc/%d/task" % pid)
    )


def sigint_taken(pid):
    """No SIGINT pending for pid any more: a thread of it has taken the signal."""
    with open("/proc/%d/status" % pid) as f:
        pend = {k: int(v, 16) for k, v in (ln.split(":\t") for ln in f if ln.startswith(("SigPnd", "ShdPnd")))}
    return not any(v & (1 << (signal.SIGINT - 1)) for v in pend.values())


@pytest.mark.slow
def test_sigint_prints_counters_and_exits_130(tmp_path):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    p = subprocess.Popen(
        [sys.executable, "-m", "feedhandler", "replay", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    shown = wchan_shown()
    try:
        w = open(fifo, "wb")  # returns once the replay has opened the pipe
        wait_proc(p.pid, "blocked reading the pipe", lambda: reading_a_pipe(p.pid, shown))
        p.send_signal(signal.SIGINT)
        wait_proc(p.pid, "took the SIGINT", lambda: sigint_taken(p.pid))
        w.close()  # the reader sees EOF and returns
        out, err = p.communicate(timeout=30)
    finally:
        reap(p)
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert "messages" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--messages", "0"], "must be positive"),
        (["--loss-a", "1.5"], "probability"),
        (["--channels", "5", "--symbols", "2"], "channels"),
        (["--symbols", "70000"], "symbols"),
    ],
)
def test_gen_bad_arguments(tmp_path, args, needle):
    p = cli("gen", "--out", str(tmp_path / "x"), *args)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_gen_unwritable_output():
    p = cli("gen", "--out", "/nonexistent-dir/x", "--messages", "20000")
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.strip()


def test_gen_then_replay_agree(tmp_path):
    prefix = str(tmp_path / "d")
    p = cli("gen", "--out", prefix, "--messages", "30000", "--symbols", "10", "--channels", "3", "--seed", "5")
    assert p.returncode == 0, p.stderr
    for ext in (".pcap", ".bin"):
        q = cli("replay", prefix + ext, "--stats-json", str(tmp_path / "s.json"))
        assert q.returncode == 0, q.stderr
        import json

        st = json.loads((tmp_path / "s.json").read_text())
        day = json.loads(open(prefix + ".json").read())
        assert st["by_type"] == day["by_type"] and st["gaps"] == 0 and st["errors"] == {}


def test_top_level_help_lists_commands():
    p = cli("--help")
    assert p.returncode == 0 and "replay" in p.stdout and "gen" in p.stdout
    p = cli()
    assert p.returncode == 2
