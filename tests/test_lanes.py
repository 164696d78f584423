"""Several pinned threads (lanes) share one input as NIC steering shares a feed
between cores: books and counters must not depend on how many."""

import json
import os
import subprocess
import sys

import pytest

import frames as F
from feedhandler import shm
from feedhandler.replay import Replay, ReplayError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NCPU = os.cpu_count() or 1
CORES = [0, 1] if NCPU >= 2 else None
pytestmark = pytest.mark.skipif(NCPU < 2, reason="needs 2 CPUs to pin 2 lanes")
SMALL = dict(max_orders=1 << 17, max_levels=1 << 18, max_instruments=512, ring_events=1 << 16)
# orders_peak is per lane (the sum of the lanes' peaks): not comparable.
SAME = (
    "packets",
    "messages",
    "by_type",
    "gaps",
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
)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    d = tmp_path_factory.mktemp("lanes")
    prefix = str(d / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            prefix,
            "--messages",
            "150000",
            "--symbols",
            "60",
            "--channels",
            "3",
            "--seed",
            "11",
            "--lines",
            "ab",
            "--loss-a",
            "0.05",
            "--loss-b",
            "0.05",
        ],
        check=True,
        timeout=120,
    )
    return prefix


def run(path, tmp_path, tag, cores, **kw):
    r = Replay(cores=cores, **dict(SMALL, **kw))
    res = r.run_file(path, progress=False)
    assert res.ok, res.error
    r.finish()
    out = tmp_path / ("%s.csv" % tag)
    r.dump_books(str(out), 10)
    return r, r.stats(), out.read_text()


def compare(a, b):
    for k in SAME:
        assert a[k] == b[k], k
    ba = {k: v for k, v in a["book"].items() if k != "orders_peak"}
    bb = {k: v for k, v in b["book"].items() if k != "orders_peak"}
    assert ba == bb


@pytest.mark.parametrize("ext", [".pcap", ".bin"])
def test_two_lanes_same_books_and_counters(day, tmp_path, ext):
    _, one, csv1 = run(day + ext, tmp_path, "one", None)
    r2, two, csv2 = run(day + ext, tmp_path, "two", CORES)
    assert csv1 == csv2 and csv1.count("\n") > 100
    compare(one, two)
    assert two["lanes"] == 2
    # Both lanes did real work.
    per = r2.lane_stats()
    assert all(p["messages"] > 0 for p in per)
    if ext == ".pcap":
        assert one["gaps"] > 0 and one["duplicates"] > 0  # lossy A/B day: arbitration ran on both lanes


@pytest.mark.slow
def test_two_lanes_gzip_and_pcapng(day, tmp_path):
    recs = F.parse_pcap(open(day + ".pcap", "rb").read())
    p = tmp_path / "d.pcapng.gz"
    p.write_bytes(F.gz(F.pcapng_bytes(recs, interfaces=2)))
    _, one, csv1 = run(str(p), tmp_path, "one", None)
    _, two, csv2 = run(str(p), tmp_path, "two", CORES)
    assert csv1 == csv2
    compare(one, two)


def test_two_lanes_share_one_segment(day, tmp_path):
    name = "fhtest-lanes-%d" % os.getpid()
    try:
        r = Replay(cores=CORES, shm=name, **SMALL)
        assert r.run_file(day + ".pcap", progress=False).ok
        r.finish()
        seg = shm.attach(name)
        assert seg.n_lanes == 2 and seg.state == "finished"
        seg.seek("oldest")
        ev = seg.events(1 << 17)
        assert set(ev["lane"].tolist()) == {0, 1}
        assert len(ev) == r.stats()["book"]["events"] and seg.lapped == 0
        # Each instrument's events come from one lane only.
        lanes_of = {}
        for loc, lane in zip(ev["locate"].tolist(), ev["lane"].tolist()):
            if loc:
                lanes_of.setdefault(loc, set()).add(lane)
        assert all(len(v) == 1 for v in lanes_of.values())
        c = seg.counters()
        st = r.stats()
        for k in ("messages", "by_type", "gaps", "errors"):
            assert c[k] == st[k]
        syms = seg.symbols()
        assert len(syms) == 60
        books = seg.copy_books()
        assert (books["n_bid"][1:61] > 0).sum() > 30
    finally:
        if os.path.exists("/dev/shm/" + name):
            os.unlink("/dev/shm/" + name)


def test_bad_cores():
    with pytest.raises(ReplayError, match="do not exist"):
        Replay(cores=[0, NCPU + 5], **SMALL)
    with pytest.raises(ReplayError, match="twice"):
        Replay(cores=[0, 0], **SMALL)
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", "x.pcap", "--cores", "0,%d" % (NCPU + 1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", "x.pcap", "--cores", "zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "CPU list" in p.stderr


def test_cli_two_cores(day, tmp_path):
    outs = []
    for cores in ("0", "0,1"):
        j = tmp_path / ("s%s.json" % cores.replace(",", ""))
        c = tmp_path / ("b%s.csv" % cores.replace(",", ""))
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "feedhandler",
                "replay",
                "-q",
                day + ".pcap",
                "--cores",
                cores,
                "--dump-books",
                str(c),
                "--stats-json",
                str(j),
                "--max-orders",
                "131072",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        outs.append((json.loads(j.read_text()), c.read_text()))
    assert outs[0][1] == outs[1][1]
    compare(outs[0][0], outs[1][0])


# ------------------------------------------------------------------- pacing


def test_speed_paces_to_the_capture_clock(tmp_path):
    """--speed F: the replay takes (capture span)/F at least, and decodes the same."""
    path = os.path.join(ROOT, "pcaps", "sample.pcap")
    r = Replay(mode="book", **SMALL)
    r.run_file(path, progress=False)
    fast = r.stats()
    span_s = (fast["last_ts_ns"] - fast["first_ts_ns"]) / 1e9
    speed = span_s / 0.4  # paced to ~0.4 s
    r = Replay(mode="book", speed=speed, **SMALL)
    r.run_file(path, progress=False)
    paced = r.stats()
    assert paced["elapsed_s"] >= 0.9 * span_s / speed
    for k in ("messages", "by_type", "checksum", "gaps", "book"):
        assert paced[k] == fast[k], k


def test_speed_on_binfile_uses_itch_timestamps(day):
    r = Replay(mode="decode", speed=1e6)  # ~16 h of ITCH time in ~0.06 s
    r.run_file(day + ".bin", progress=False)
    assert r.stats()["elapsed_s"] >= 0.03


def test_speed_cli_values():
    for bad in ("fast", "0", "-2", "nan"):
        p = subprocess.run(
            [sys.executable, "-m", "feedhandler", "replay", "x.pcap", "--speed", bad],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 2 and "speed" in p.stderr, bad
    # realtime on a 17-hour capture: still running once it replays, and Ctrl-C stops it cleanly.
    import signal
    import time

    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            "--mode",
            "decode",
            "--speed",
            "realtime",
            os.path.join(ROOT, "pcaps", "sample.pcap"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT may be inherited ignored (a suite started in the background)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Interrupted once it is replaying (the capture open: mapped, or read
        # whole by a build that reads inputs into exact-size buffers, the
        # sanitized one; past start-up, which can take seconds on a busy
        # machine), not after a fixed time.
        sample = os.path.realpath(os.path.join(ROOT, "pcaps", "sample.pcap"))
        end = time.monotonic() + 60

        def opened():
            with open("/proc/%d/maps" % p.pid) as f:
                if sample in f.read():
                    return True
            fds = "/proc/%d/fd" % p.pid
            for fd in os.listdir(fds):
                try:
                    if os.readlink(os.path.join(fds, fd)) == sample:
                        return True
                except OSError:
                    pass
            return False

        while p.poll() is None and time.monotonic() < end:
            try:
                if opened():
                    break
            except OSError:
                pass
            time.sleep(0.02)
        assert p.poll() is None  # paced: 17 hours of capture cannot be over
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:  # never leave a 17-hour paced replay behind
            p.kill()
            p.wait(10)
    assert p.returncode == 130 and "interrupted" in err and "messages" in out
