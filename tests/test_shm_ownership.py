"""Who owns a name in /dev/shm (docs/robustness.md, "Processes and shared
memory").  Any local user can put something at a segment's name, and two
writers can be started with the same --shm at the same moment:

- nothing at the name can hang a writer or a reader (a FIFO: every command
  returns with a clear error well inside a hang-detecting deadline);
- a symbolic link, a FIFO, another user's file, or bytes that are not a
  feedhandler segment (random bytes, a 100 GB sparse file) are refused, named,
  and left exactly where they were: never unlinked, never written;
- a live writer owns its name by a lock it holds for its whole life, not by
  what its header says: of writers racing for one name exactly one runs, every
  other is refused (exit 1 from the CLI, naming the owner's pid), and a reader
  attaches to the one that runs; a segment still being created (locked, no
  magic yet) is not taken for dead; a killed writer's segment (lock dropped by
  the kernel) is reused, also when the killed writer had forked a child;
- readers test the lock without taking it: however hard they poll, they never
  stand in a writer's way."""

import fcntl
import os
import select
import signal
import stat
import subprocess
import sys
import time

import pytest

from feedhandler.core import ffi
from feedhandler.errors import ShmNameError
from feedhandler.replay import Replay, ReplayError
from feedhandler.shm import ShmError, attach

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
SMALL = dict(max_orders=1024, max_levels=4096, max_instruments=8, ring_events=1024)
HANG = 60  # seconds: only a hang takes this long; no timing claim
CREATING = b"FHBUILD\0"  # FH_SHM_MAGIC_CREATING (csrc/shm.h)
NOBODY = 65534


def shm_path(name):
    return "/dev/shm/" + name


def cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "feedhandler", *args],
        capture_output=True,
        text=True,
        timeout=HANG,
        cwd=ROOT,
        stdin=stdin,
    )


def replay_cli(name, *extra):
    return cli("replay", "-q", SAMPLE, "--shm", name, "--max-orders", "65536", *extra)


def attach_in_child(name, wait):
    """attach(name, wait=) in another process (a hang there cannot hang the
    suite): (its message or "attached", seconds it took)."""
    code = (
        "import sys, time\nfrom feedhandler.shm import attach, ShmError\nt = time.monotonic()\n"
        "try:\n    attach(sys.argv[1], wait=float(sys.argv[2])).close(); msg = 'attached'\n"
        "except ShmError as exc:\n    msg = 'ShmError: %s' % exc\n"
        "print('%.3f %s' % (time.monotonic() - t, msg))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, name, str(wait)], capture_output=True, text=True, timeout=HANG, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr
    took, msg = p.stdout.strip().split(" ", 1)
    return msg, float(took)


def identity(path):
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_size)


def read_line(proc, prefix, timeout=HANG):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(
        "no %r line from pid %d (exit %s): %s"
        % (prefix, proc.pid, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
    )


def popen_py(code, *args):
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(HANG)


# ---------------------------------------------------------- what is at the name


@pytest.mark.slow
def test_fifo_at_the_name_hangs_nothing(name):
    """mkfifo at the name: replay, stats, book and attach(wait=2) each return a
    clear error (no hang: an open that blocked would wait for a FIFO writer
    forever), and the FIFO is left where it was."""
    os.mkfifo(shm_path(name))
    before = identity(shm_path(name))
    p = replay_cli(name)
    assert p.returncode == 1, p.stderr
    assert "/dev/shm/%s is a FIFO" % name in p.stderr and "Traceback" not in p.stderr
    for cmd in (["stats", "--shm", name], ["book", "AAPL", "--shm", name, "--once"]):
        p = cli(*cmd)
        assert p.returncode == 1 and "/dev/shm/%s is a FIFO" % name in p.stderr, (cmd, p.stderr)
    msg, took = attach_in_child(name, 2)
    assert msg.startswith("ShmError: /dev/shm/%s is a FIFO" % name), msg
    assert 2 <= took < HANG
    with pytest.raises(ShmNameError, match="is a FIFO"):
        Replay(shm=name, **SMALL)
    assert identity(shm_path(name)) == before and stat.S_ISFIFO(os.lstat(shm_path(name)).st_mode)


@pytest.mark.parametrize("dangling", [False, True])
def test_symlink_at_the_name_refused(name, tmp_path, dangling):
    """A symbolic link is never followed (its target neither read, written nor
    created) nor removed, by the writer or the reader."""
    target = tmp_path / "target"
    if not dangling:
        target.write_bytes(b"x" * 100)
    os.symlink(target, shm_path(name))
    p = replay_cli(name)
    assert p.returncode == 1 and "/dev/shm/%s is a symbolic link" % name in p.stderr, p.stderr
    with pytest.raises(ShmNameError, match="is a symbolic link"):
        Replay(shm=name, **SMALL)
    with pytest.raises(ShmError, match="is a symbolic link"):
        attach(name)
    assert os.path.islink(shm_path(name)) and os.readlink(shm_path(name)) == str(target)
    if dangling:
        assert not target.exists()
    else:
        assert target.read_bytes() == b"x" * 100


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to give a file to another user)")
def test_another_users_file_refused(name):
    """Files owned by another uid (nobody): a segment of ours chowned to it, and
    an empty file.  The writer refuses (exit 1) and leaves them; a reader
    refuses unless told to trust that owner."""
    with Replay(shm=name, **SMALL) as r:
        r.run_file(SAMPLE, progress=False)
    os.chown(shm_path(name), NOBODY, NOBODY)
    before = identity(shm_path(name))
    p = replay_cli(name)
    assert p.returncode == 1 and "owned by uid %d" % NOBODY in p.stderr, p.stderr
    with pytest.raises(ShmNameError, match="owned by uid %d, not by this user" % NOBODY):
        Replay(shm=name, **SMALL)
    with pytest.raises(ShmError, match="owned by uid %d .*not attached" % NOBODY):
        attach(name)
    assert identity(shm_path(name)) == before
    for owner in (NOBODY, "nobody"):
        with attach(name, owner=owner) as seg:
            assert seg.state == "finished" and seg.book("AAPL").symbol == "AAPL"
    with pytest.raises(ShmError, match="no such user"):
        attach(name, owner="no-such-user-here")

    os.unlink(shm_path(name))
    open(shm_path(name), "wb").close()
    os.chown(shm_path(name), NOBODY, NOBODY)
    with pytest.raises(ShmNameError, match="owned by uid %d" % NOBODY):
        Replay(shm=name, **SMALL)
    assert os.stat(shm_path(name)).st_uid == NOBODY and os.stat(shm_path(name)).st_size == 0


@pytest.mark.parametrize("kind", ["random", "sparse", "short", "zeros"])
def test_foreign_regular_file_refused_not_unlinked(name, kind):
    """A regular file of ours that is not a feedhandler segment -- random bytes,
    a 100 GB sparse file (refused without being mapped), 3 bytes, a page of
    zeros -- is refused by writer and reader, and stays as it was."""
    path = shm_path(name)
    if kind == "random":
        data = os.urandom(5000)
        open(path, "wb").write(data)
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(100 << 30)
    elif kind == "short":
        open(path, "wb").write(b"abc")
    else:
        open(path, "wb").write(bytes(4096))
    before = identity(path)
    p = replay_cli(name)
    assert p.returncode == 1, p.stderr
    assert "/dev/shm/%s is not a feedhandler segment (%d bytes" % (name, before[3]) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    with pytest.raises(ShmNameError, match="not a feedhandler segment"):
        Replay(shm=name, **SMALL)
    with pytest.raises(ShmError, match="not a feedhandler segment|too small"):
        attach(name)
    assert identity(path) == before
    if kind == "random":
        assert open(path, "rb").read() == data
    if kind == "sparse":
        assert os.stat(path).st_blocks == 0  # never written, nor reserved


# ------------------------------------------------------------ racing writers

RACER = r"""
import os, sys
from feedhandler.errors import ShmNameError
from feedhandler.replay import Replay
name = sys.argv[1]
print("ready", flush=True)
while sys.stdin.readline().strip() == "go":
    try:
        r = Replay(shm=name, max_orders=1024, max_levels=4096, max_instruments=8, ring_events=1024)
    except ShmNameError as exc:
        print("refused %s" % exc, flush=True)
        continue
    print("running %d" % os.getpid(), flush=True)
    sys.stdin.readline()            # held until the test has looked
    r.close()
    print("closed", flush=True)
"""


@pytest.mark.parametrize("n", [2, 4])
def test_racing_writers_exactly_one_runs(name, n):
    """n writer processes, each blocked just before Replay(shm=NAME), are
    released together, 12 times: exactly one runs, every other is refused
    naming it ("in use by a running writer (pid P)"), and a reader attaches to
    the one that runs.  The tries alternate between no file at the name and
    the previous winner's finished segment (which the winner must replace)."""
    procs = [popen_py(RACER, name) for _ in range(n)]
    try:
        for p in procs:
            read_line(p, "ready")
        for attempt in range(12):
            if attempt % 2 == 0 and os.path.exists(shm_path(name)):
                os.unlink(shm_path(name))
            for p in procs:
                p.stdin.write("go\n")
            for p in procs:
                p.stdin.flush()
            lines = {p.pid: read_line(p, ("running", "refused")) for p in procs}
            winners = [pid for pid, l in lines.items() if l.startswith("running")]
            assert len(winners) == 1, (attempt, lines)
            w = winners[0]
            for pid, l in lines.items():
                if pid != w:
                    assert l.startswith("refused /dev/shm/%s is in use by a running writer" % name), l
                    assert "(pid %d)" % w in l, (w, l)
            with attach(name) as seg:
                assert seg.writer_pid == w and seg.state == "running" and seg.writer_alive is True
            winner = next(p for p in procs if p.pid == w)
            winner.stdin.write("\n")
            winner.stdin.flush()
            read_line(winner, "closed")
            with attach(name) as seg:
                assert seg.writer_pid == w and seg.state == "finished" and seg.writer_alive is False
    finally:
        for p in procs:
            if p.poll() is None:
                p.stdin.close()
        stop(procs)


@pytest.mark.slow
def test_racing_cli_replays(name):
    """Two `feedhandler replay - --shm NAME` started together, 6 times: one runs
    (its input held back, so it is still running), the other exits 1 saying the
    name is in use by the first's pid; a reader attaches to the running one,
    which then replays its input and exits 0."""
    data = open(SAMPLE, "rb").read()
    args = [sys.executable, "-m", "feedhandler", "replay", "-q", "-", "--shm", name, "--max-orders", "65536"]
    for attempt in range(6):
        procs = [
            subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + HANG
            while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.01)
            done = [p for p in procs if p.poll() is not None]
            assert len(done) == 1, (attempt, [p.poll() for p in procs])
            (loser,) = done
            (runner,) = [p for p in procs if p is not loser]
            err = loser.stderr.read().decode()
            assert loser.returncode == 1, err
            assert "/dev/shm/%s is in use by a running writer (pid %d)" % (name, runner.pid) in err, err
            with attach(name, wait=HANG) as seg:  # (the runner may still be creating it)
                assert seg.writer_pid == runner.pid and seg.state in ("starting", "running")
                assert seg.writer_alive is True
            out, err = runner.communicate(data, timeout=HANG)
            assert runner.returncode == 0, err.decode()
            with attach(name) as seg:
                assert seg.writer_pid == runner.pid and seg.state == "finished" and seg.counters()["messages"] == 40000
        finally:
            stop(procs)


# --------------------------------------------------- creation, death, readers

HOLDER = r"""
import fcntl, os, sys, time
path, mode = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # conflicts with the writers' OFD lock
if mode == "creating":                           # what a writer leaves between claim and magic
    hdr = bytearray(4096)
    hdr[0:8] = b"FHBUILD\0"
    hdr[int(sys.argv[3]):int(sys.argv[3]) + 8] = os.getpid().to_bytes(8, "little")
    os.pwrite(fd, bytes(hdr), 0)
    os.ftruncate(fd, 1 << 20)
print("holding", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["empty", "creating"])
def test_segment_being_created_is_not_taken_for_dead(name, mode):
    """A segment whose creator holds its lock but has not written the magic yet
    (an empty file, or the creating magic with its pid) is in use: a writer is
    refused, naming the creator; a reader is told it is not ready, without
    waiting on it.  Once the creator is killed (its lock gone) the half-made
    segment is ours to reuse in place."""
    off = ffi.offsetof("fh_shm_header_t", "writer_pid")
    h = popen_py(HOLDER, shm_path(name), mode, off)
    try:
        read_line(h, "holding")
        before = identity(shm_path(name))
        with pytest.raises(ShmNameError, match="in use by a running writer \\(pid %d\\)" % h.pid):
            Replay(shm=name, **SMALL)
        p = replay_cli(name)
        assert p.returncode == 1 and "in use by a running writer (pid %d)" % h.pid in p.stderr, p.stderr
        with pytest.raises(ShmError, match="empty" if mode == "empty" else "still being created .*pid %d" % h.pid):
            attach(name)
        assert identity(shm_path(name)) == before
        assert os.pread(os.open(shm_path(name), os.O_RDONLY | os.O_CLOEXEC), 8, 0) == (
            b"" if mode == "empty" else CREATING
        )
    finally:
        stop([h])
    with Replay(shm=name, **SMALL) as r:
        with attach(name) as seg:
            assert seg.writer_pid == os.getpid() and seg.state == "running" and seg.writer_alive is True
        assert os.stat(shm_path(name)).st_ino == before[0]  # the half-made file, reused in place
        r.run_file(SAMPLE, progress=False)


STOPPABLE = r"""
import os, sys
from feedhandler.errors import ShmNameError
from feedhandler.replay import Replay
try:
    r = Replay(shm=sys.argv[1], max_instruments=65535, ring_events=1 << 21)
except ShmNameError as exc:
    print("refused %s" % exc, flush=True)
    sys.exit(1)
print("running", flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
def test_writer_stopped_mid_creation(name):
    """A real writer making a large segment is SIGSTOPped as soon as its file
    appears (anywhere in its creation); a second writer is started then, and
    the first continued: whatever the interleaving, exactly one of them runs,
    and a reader meanwhile never hangs and never sees a half-made segment."""
    for attempt in range(4):
        if os.path.exists(shm_path(name)):
            os.unlink(shm_path(name))
        a = popen_py(STOPPABLE, name)
        try:
            deadline = time.monotonic() + HANG
            while not os.path.exists(shm_path(name)) and a.poll() is None and time.monotonic() < deadline:
                pass
            os.kill(a.pid, signal.SIGSTOP)
            try:
                seg = attach(name)
            except ShmError as exc:
                assert "empty" in str(exc) or "still being created" in str(exc), exc
            else:  # it had finished creating before it stopped
                assert seg.writer_pid == a.pid and seg.state in ("starting", "running")
                seg.close()
            try:
                b = Replay(shm=name, **SMALL)
            except ShmNameError as exc:
                b = None
                # Stopped between taking the lock and writing its pid, it cannot be named.
                assert "in use by a running writer" in str(exc), exc
                assert "(pid" not in str(exc) or "(pid %d" % a.pid in str(exc), exc
            os.kill(a.pid, signal.SIGCONT)
            line = read_line(a, ("running", "refused"))
            assert (b is None) == line.startswith("running"), (attempt, line, b)
            with attach(name) as seg:
                assert seg.writer_pid == (a.pid if b is None else os.getpid()) and seg.writer_alive is True
            if b is not None:
                b.close()
        finally:
            if a.poll() is None:
                a.stdin.close()
            stop([a])


KILLED = r"""
import os, sys, time
from feedhandler.replay import Replay
r = Replay(shm=sys.argv[1], max_orders=1024, max_levels=4096, max_instruments=8, ring_events=1024)
child = os.fork() if sys.argv[2] == "fork" else 0      # a child that outlives it (fork, no exec)
if sys.argv[2] == "fork" and child == 0:
    time.sleep(120)
    os._exit(0)
print("running %d" % child, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("fork", [False, True])
def test_killed_writer_segment_is_reused(name, fork):
    """A writer SIGKILLed mid-run: readers see it dead at once and a new writer
    takes the name (the kernel dropped its lock) -- also when it had forked a
    child that lives on with a copy of its descriptors."""
    w = popen_py(KILLED, name, "fork" if fork else "plain")
    child = 0
    try:
        child = int(read_line(w, "running").split()[1])
        seg = attach(name)
        assert seg.state == "running" and seg.writer_alive is True
        with pytest.raises(ShmNameError, match="in use by a running writer \\(pid %d\\)" % w.pid):
            Replay(shm=name, **SMALL)
        w.send_signal(signal.SIGKILL)
        w.wait(HANG)
        if fork:
            os.kill(child, 0)  # the child is alive, holding the file open
        assert seg.state == "dead" and seg.writer_alive is False
        with Replay(shm=name, **SMALL) as r:
            with attach(name) as fresh:
                assert fresh.writer_pid == os.getpid() and fresh.state == "running"
            r.run_file(SAMPLE, progress=False)
        assert seg.state == "dead"  # the old mapping: still valid, still the dead one's
        seg.close()
    finally:
        stop([w])
        if child > 0:
            os.kill(child, signal.SIGKILL)


def test_polling_readers_never_block_a_writer(name):
    """Readers attached to a finished segment poll writer_alive / state as fast
    as they can (testing the lock) while writers take the name again and
    again: never refused, since a reader never takes the lock."""
    with Replay(shm=name, **SMALL):
        pass
    code = (
        "import sys, time\nfrom feedhandler.shm import attach\nseg = attach(sys.argv[1])\n"
        "print('polling', flush=True)\nt = time.monotonic() + 30\n"
        "while time.monotonic() < t:\n    seg.writer_alive; seg.state\n"
    )
    readers = [popen_py(code, name) for _ in range(2)]
    try:
        for p in readers:
            read_line(p, "polling")
        for _ in range(50):
            with Replay(shm=name, **SMALL):
                pass
        assert all(p.poll() is None for p in readers)
    finally:
        stop(readers)


def test_in_process_writers_and_readers(name):
    """In one process: a second Replay with the name is refused while the first
    lives (the lock is per open file, not per process), a reader's attach and
    close in the writer's own process do not drop the writer's lock, and
    closing the first frees the name."""
    r = Replay(shm=name, **SMALL)
    for _ in range(3):
        attach(name).close()
    with pytest.raises(ShmNameError, match="in use by a running writer \\(pid %d\\)" % os.getpid()):
        Replay(shm=name, **SMALL)
    assert isinstance(ShmNameError("x"), ReplayError)
    r.close()
    Replay(shm=name, **SMALL).close()
    fd = os.open(shm_path(name), os.O_RDONLY)
    try:
        # Nobody holds it now: a classic lock on the whole file can be taken.
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)
