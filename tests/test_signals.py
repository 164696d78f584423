"""Signals and outputs (docs/robustness.md, "Signals and outputs").

A paced replay is stopped by SIGINT, SIGTERM or SIGHUP before its next packet:
the counters, --stats-json and --dump-books hold exactly what was replayed, the
segment says ``stopped`` and the exit status is 128 + the signal's number.  The
segment's counters move while a paced replay waits, long before the 4,096-frame
poll.  Every output file is opened before the work: one that cannot be opened
fails the run at once (status 2, a message, no traceback) and the others are
still written; one that fails at the end leaves the others written.

The captures are built so that nothing depends on how fast this machine is:
``FIRST`` packets a millisecond apart, then the rest an hour of capture time
later, so a realtime replay handles exactly ``FIRST`` packets and then waits.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from feedhandler.cli.base import exit_for_signal
from feedhandler.replay import Replay
from feedhandler.shm import ShmError, attach
from frames import frame, mold, msg_A, pcap_bytes
from procutil import reap

FIRST = 3  # packets replayed before the hour-long wait
LATER = 1000  # packets after it (an unpaced run-out would replay them all)
T0 = 1_700_000_000 * 10**9
DEADLINE = 60.0  # only a hang reaches it


def paced_capture(path, first=FIRST, later=LATER):
    recs = []
    for i in range(first + later):
        ts = T0 + i * 1_000_000 if i < first else T0 + 3600 * 10**9 + i * 1000
        add = msg_A(ref=i + 1, locate=1, price=1_500_000 - i * 100, ts=34_200_000_000_000 + i)
        recs.append((ts, frame(mold([add], seq=i + 1))))
    path.write_bytes(pcap_bytes(recs))
    return path


def default_signals():
    """In the child: the stop signals back to their defaults (a suite started in
    the background or under nohup inherits SIGINT / SIGHUP ignored, and an
    ignored signal stays ignored by design)."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def unlink_segment(name):
    try:
        os.unlink("/dev/shm/" + name)
    except FileNotFoundError:
        pass


def wait_for(pred, what, proc=None):
    end = time.monotonic() + DEADLINE
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError("replay exited (%s) before %s: %s" % (proc.returncode, what, proc.communicate()))
        assert time.monotonic() < end, "never " + what
        time.sleep(0.01)


def segment_packets(name):
    try:
        seg = attach(name)
    except ShmError:
        return None
    try:
        return seg.counters()["packets"]
    finally:
        seg.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signal_writes_outputs_and_marks_segment_stopped(tmp_path, sig):
    cap = paced_capture(tmp_path / "paced.pcap")
    name = "fh-test-sig-%d-%s" % (os.getpid(), sig.name)
    stats_path, books_path = tmp_path / "stats.json", tmp_path / "books.csv"
    unlink_segment(name)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            str(cap),
            "--speed",
            "realtime",
            "--shm",
            name,
            "--stats-json",
            str(stats_path),
            "--dump-books",
            str(books_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    try:
        # The segment's counters move while the replay waits for packet FIRST + 1
        # (an hour away): before, they were copied every 4,096 frames only.
        wait_for(lambda: segment_packets(name) == FIRST, "showed %d packets in the segment" % FIRST, p)
        p.send_signal(sig)
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        reap(p)
    try:
        assert p.returncode == exit_for_signal(sig) == 128 + sig, (p.returncode, out, err)
        assert "Traceback" not in err and "interrupted (%s)" % sig.name in err, err
        st = json.loads(stats_path.read_text())
        # Stopped within one packet: the one being waited for is not replayed,
        # nor any after it (before: up to 4,095 more went through unpaced).
        assert st["packets"] == FIRST and st["messages"] == FIRST, st
        assert st["stopped_by"] == sig.name and st["exit_status"] == 128 + sig
        assert st["inputs"][0]["ok"] is False and "stopped" in st["inputs"][0]["error"]
        rows = books_path.read_text().splitlines()
        assert rows[0].startswith("locate,symbol,side,level") and len(rows) == 1 + FIRST, rows
        seg = attach(name)
        try:
            assert seg.state == "stopped"
            assert seg.counters()["packets"] == FIRST
            # follow() ends on a stopped segment once its events are read.
            seg.seek("oldest")
            end = time.monotonic() + DEADLINE
            n = 0
            for batch in seg.follow(heartbeat=0.5):
                n += len(batch)
                assert time.monotonic() < end, "follow() never ended on a stopped segment"
            assert n > 0
        finally:
            seg.close()
    finally:
        unlink_segment(name)


def test_stop_before_the_first_frame():
    """Replay.stop() before the walk: not one frame is handled (before: the
    walk went on to its first poll, 4,096 frames in)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cap = paced_capture(__import__("pathlib").Path(tmp) / "c.pcap", first=50, later=0)
        with Replay(max_orders=1 << 12, max_levels=1 << 12, ring_events=1 << 8) as r:
            r.stop()
            res = r.run_file(str(cap), progress=False)
            st = r.stats()
    assert res.ok and st["packets"] == 0 and st["messages"] == 0


def test_stopped_replay_marks_its_segment_stopped_and_a_complete_one_finished(tmp_path):
    cap = paced_capture(tmp_path / "c.pcap", first=20, later=0)
    for stop, state in ((False, "finished"), (True, "stopped")):
        name = "fh-test-state-%d-%d" % (os.getpid(), stop)
        unlink_segment(name)
        try:
            with Replay(shm=name, max_orders=1 << 12, max_levels=1 << 12, ring_events=1 << 8) as r:
                if stop:
                    r.stop()
                r.run_file(str(cap), progress=False)
            seg = attach(name)
            try:
                assert seg.state == state
                assert seg.counters()["packets"] == (0 if stop else 20)
                assert list(seg.follow(heartbeat=5.0)) == [] or stop is False
            finally:
                seg.close()
        finally:
            unlink_segment(name)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=120)


def test_unopenable_dump_books_fails_first_and_still_writes_the_others(tmp_path):
    cap = paced_capture(tmp_path / "c.pcap", first=20, later=0)
    stats_path, lat_path = tmp_path / "stats.json", tmp_path / "lat.json"
    p = cli(
        "replay",
        "-q",
        str(cap),
        "--dump-books",
        str(tmp_path / "no-such-dir" / "books.csv"),
        "--stats-json",
        str(stats_path),
        "--latency-json",
        str(lat_path),
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "--dump-books" in p.stderr and "nothing replayed" in p.stderr
    st = json.loads(stats_path.read_text())
    assert st["packets"] == 0 and st["exit_status"] == 2 and "--dump-books" in st["output_errors"]
    lat = json.loads(lat_path.read_text())
    assert lat["rate"]["packets"] == 0


def test_unopenable_latency_json_is_a_message_not_a_traceback(tmp_path):
    cap = paced_capture(tmp_path / "c.pcap", first=20, later=0)
    p = cli(
        "replay",
        "-q",
        str(cap),
        "--latency-json",
        str(tmp_path / "no-such-dir" / "lat.json"),
        "--stats-json",
        str(tmp_path / "stats.json"),
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--latency-json" in p.stderr, p.stderr
    assert json.loads((tmp_path / "stats.json").read_text())["exit_status"] == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_dump_books_failing_at_the_end_leaves_the_other_outputs_written(tmp_path):
    cap = paced_capture(tmp_path / "c.pcap", first=20, later=0)
    stats_path, lat_path = tmp_path / "stats.json", tmp_path / "lat.json"
    p = cli(
        "replay",
        "-q",
        str(cap),
        "--dump-books",
        "/dev/full",
        "--stats-json",
        str(stats_path),
        "--latency-json",
        str(lat_path),
    )
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "--dump-books" in p.stderr
    st = json.loads(stats_path.read_text())
    assert st["packets"] == 20 and st["exit_status"] == 1 and "--dump-books" in st["output_errors"]
    assert json.loads(lat_path.read_text())["rate"]["packets"] == 20


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("feedhandler.dpdk", fromlist=["available"]).available(), reason="no DPDK support in this install"
)
def test_dpdk_run_stops_on_sigterm(tmp_path):
    """`feedhandler run` on an endless source (the pcap PMD looping a capture):
    SIGTERM stops it after the burst in hand, with its outputs written and its
    segment stopped, exit 143."""
    sample = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pcaps", "sample.pcap")
    name = "fh-test-sig-dpdk-%d" % os.getpid()
    eal = (
        "-l 0 --no-huge --no-pci -m 512 --file-prefix fhsig-%d --log-level=error "
        "--vdev=net_pcap0,rx_pcap=%s,infinite_rx=1" % (os.getpid(), sample)
    )
    stats_path = tmp_path / "s.json"
    unlink_segment(name)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "run",
            "--dpdk",
            eal,
            "--no-eos-stop",
            "--mbufs",
            "16383",
            "--max-orders",
            "65536",
            "--max-levels",
            "131072",
            "--max-instruments",
            "128",
            "--shm",
            name,
            "--stats-json",
            str(stats_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    try:
        wait_for(lambda: (segment_packets(name) or 0) > 0, "showed packets in the segment", p)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        reap(p)
    try:
        assert p.returncode == 143, (p.returncode, out, err)
        assert "Traceback" not in err and "interrupted (SIGTERM)" in err
        st = json.loads(stats_path.read_text())
        assert st["stopped_by"] == "SIGTERM" and st["exit_status"] == 143 and st["packets"] > 0
        seg = attach(name)
        try:
            assert seg.state == "stopped" and seg.counters()["packets"] == st["packets"]
        finally:
            seg.close()
    finally:
        unlink_segment(name)


def test_paced_binfile_stops_within_one_record(tmp_path):
    """The BinaryFILE walk paces on ITCH timestamps: Replay.stop() while it
    waits for record FIRST + 1 (an hour away) ends it with exactly FIRST
    records replayed."""
    import threading

    from frames import binfile_bytes

    t = 34_200_000_000_000
    msgs = [
        msg_A(
            ref=i + 1, locate=1, price=1_500_000 - i * 100, ts=t + i * 1_000_000 if i < FIRST else t + 3600 * 10**9 + i
        )
        for i in range(FIRST + LATER)
    ]
    path = tmp_path / "paced.bin"
    path.write_bytes(binfile_bytes(msgs))
    with Replay(speed=1.0, max_orders=1 << 12, max_levels=1 << 12, ring_events=1 << 8) as r:
        box = {}
        worker = threading.Thread(target=lambda: box.setdefault("res", r.run_file(str(path), progress=False)))
        worker.start()
        try:
            wait_for(lambda: r.lane_stats()[0]["packets"] == FIRST, "replayed %d records" % FIRST)
        finally:
            r.stop()
            worker.join(DEADLINE)
        assert not worker.is_alive()
        st = r.stats()
    assert st["packets"] == FIRST and st["messages"] == FIRST, st
