"""Snapshot recovery (GLIMPSE 5.0 over SoupBinTCP 4.0) in the pipeline.

Late join: a capture with its first third cut off, replayed with a snapshot of
the day at the cut, ends with the books of the whole capture (pcap, A/B lines,
2 cores with a channel config).  Gap repair: packets lost on both lines with no
re-request server are repaired from a snapshot (STALE set then cleared, events
in order).  Restart: a handler killed mid-replay and restarted on the same
--shm ends with the books of an uninterrupted replay.  Hostile or absent
servers: counted, bounded, nothing applied from a bad snapshot.  Every check
compares whole book dumps and counters."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import frames as F
from feedhandler import soup
from feedhandler.core import ledger
from feedhandler.glimpse import GlimpseServer, Snapshot, build_snapshot
from feedhandler.replay import Replay
from feedhandler.shm import EV_SNAPSHOT, EV_STALE, attach

SMALL = dict(max_orders=1 << 16, max_levels=1 << 17, max_instruments=64, ring_events=1 << 16)


def gen(prefix, *extra):
    subprocess.run(
        [sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix, "--messages", "40000", "--symbols", "20"]
        + list(extra),
        check=True,
        timeout=120,
    )
    with open(prefix + ".json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    d = tmp_path_factory.mktemp("snapdays")
    out = {}
    out["a"] = (str(d / "a.pcap"), gen(str(d / "a"), "--seed", "21"))
    out["ab"] = (str(d / "ab.pcap"), gen(str(d / "ab"), "--seed", "22", "--lines", "ab"))
    out["two"] = (str(d / "two.pcap"), gen(str(d / "two"), "--seed", "23", "--channels", "2"))
    return out


def mold_of(fr):
    ihl = (fr[14] & 15) * 4
    p = fr[14 + ihl + 8 :]
    seq, count = struct.unpack(">QH", p[10:20])
    return p[:10], seq, count


def cut(path, out, frac=1 / 3):
    """The capture without its first `frac` of frames; per session the lowest
    sequence of a data packet kept (where each stream's snapshot must end)."""
    recs = F.parse_pcap(open(path, "rb").read())
    kept = recs[int(len(recs) * frac) :]
    first = {}
    for _, fr in kept:
        sess, seq, count = mold_of(fr)
        if count not in (0, 0xFFFF):
            first[sess] = min(first.get(sess, seq), seq)
    with open(out, "wb") as f:
        f.write(F.pcap_bytes(kept))
    return first


def run(path, tmp_path, tag, **kw):
    with Replay(**dict(SMALL, mode="book", silence_ms=120000, **kw)) as r:
        res = r.run_file(path, progress=False)
        assert res.ok, res.error
        r.finish()
        dump = tmp_path / (tag + ".csv")
        r.dump_books(str(dump))
        log = r.snapshot_log
    st = r.stats()
    assert ledger(st)["unaccounted"] == 0
    return dump.read_text(), st, log


def endpoint(srv):
    return "%s:%d" % srv.address


# ------------------------------------------------------------- late join


@pytest.mark.parametrize("kind", ["a", "ab"])
def test_late_join_cut_capture_plus_snapshot_equals_whole_day(days, tmp_path, kind):
    path, meta = days[kind]
    cutp = str(tmp_path / "cut.pcap")
    first = cut(path, cutp)
    ((sess, at),) = first.items()
    whole, _, _ = run(path, tmp_path, "whole")
    alone, st0, _ = run(cutp, tmp_path, "alone")
    assert alone != whole  # the cut really loses the morning
    snap = build_snapshot(path, at_seq=at)
    assert snap.sequence == at and snap.orders > 0
    with GlimpseServer(snap).in_background() as srv:
        got, st, log = run(cutp, tmp_path, "snap", snapshot=endpoint(srv))
    assert got == whole
    assert st["snapshots"] == 1 and st["snapshot_failures"] == 0
    assert st["snapshot_messages"] == snap.messages
    assert st["snapshot_buffered"] >= 1 and st["pkt_held"] == 0
    assert st["gaps"] == 0 and st["errors"] == {}
    assert st["snapshot_recover_ns"] > 0
    # Every message after the snapshot's sequence was applied, none twice.
    assert st["messages"] == meta["messages"] - (at - 1)
    assert [e["ok"] for e in log] == [True] and log[0]["sequence"] == at
    assert log[0]["session"] == sess.decode()


def test_late_join_two_cores_channel_config(days, tmp_path):
    path, meta = days["two"]
    cutp = str(tmp_path / "cut.pcap")
    first = cut(path, cutp)
    assert len(first) == 2
    whole, _, _ = run(path, tmp_path, "whole")
    servers = {}
    try:
        for ch in meta["channels"]:
            sess = ch["session"].encode()
            snap = build_snapshot(path, at_seq=first[sess], session=ch["session"])
            servers[ch["name"]] = GlimpseServer(snap)
            threading.Thread(target=servers[ch["name"]].serve_forever, daemon=True).start()
        from feedhandler.config import load

        for cores in ([0], [0, 1]):
            if len(cores) > (os.cpu_count() or 1):
                continue
            cfg = tmp_path / ("ch%d.toml" % len(cores))
            cfg.write_text(
                "".join(
                    '[[channel]]\nname = "%s"\nline_a = "%s"\nsnapshot = "%s"\ncore = %d\n\n'
                    % (ch["name"], ch["line_a"], endpoint(servers[ch["name"]]), cores[i % len(cores)])
                    for i, ch in enumerate(meta["channels"])
                )
            )
            channels = load(str(cfg), cores)
            assert all(c.snapshot for c in channels)
            got, st, log = run(cutp, tmp_path, "snap%d" % len(cores), channels=channels, cores=cores)
            assert got == whole, cores
            assert st["snapshots"] == 2 and st["snapshot_failures"] == 0
            assert sorted(e["sequence"] for e in log) == sorted(first.values())
    finally:
        for s in servers.values():
            s.stop()
            s.close()


def test_stream_from_sequence_1_takes_no_snapshot(days, tmp_path):
    path, _ = days["a"]
    whole, _, _ = run(path, tmp_path, "whole")
    # Nothing listens there: a snapshot asked for would fail and be counted.
    got, st, log = run(path, tmp_path, "nosnap", snapshot="127.0.0.1:9")
    assert got == whole and st["snapshots"] == 0 and st["snapshot_failures"] == 0 and log == []


# ------------------------------------------------------------ gap repair


def drop_both(path, out, lo, hi):
    """The A/B capture without any copy of the data packets starting in [lo, hi)."""
    recs = F.parse_pcap(open(path, "rb").read())
    kept, dropped = [], 0
    for ts, fr in recs:
        _, seq, count = mold_of(fr)
        if count not in (0, 0xFFFF) and lo <= seq < hi:
            dropped += 1
            continue
        kept.append((ts, fr))
    with open(out, "wb") as f:
        f.write(F.pcap_bytes(kept))
    assert dropped >= 2
    # The first sequence after the loss: where the snapshot must end.
    return min(seq for _, fr in kept for _, seq, count in [mold_of(fr)] if count not in (0, 0xFFFF) and seq >= hi)


def test_loss_on_both_lines_repaired_from_snapshot(days, tmp_path):
    path, meta = days["ab"]
    lossy = str(tmp_path / "lossy.pcap")
    at = drop_both(path, lossy, 15000, 15100)
    whole, _, _ = run(path, tmp_path, "whole")
    unrepaired, st0, _ = run(lossy, tmp_path, "lossy")
    assert st0["gaps"] > 0 and unrepaired != whole
    snap = build_snapshot(path, at_seq=at)
    with GlimpseServer(snap).in_background() as srv:
        with Replay(**dict(SMALL, mode="publish", silence_ms=120000, snapshot=endpoint(srv))) as r:
            assert r.run_file(lossy, progress=False).ok
            r.finish()
            r.dump_books(str(tmp_path / "fixed.csv"))
            seg = r.segment()
            seg.seek("oldest")
            ev = seg.events(1 << 16)
            flags = seg.copy_books()["flags"]
            seg.close()
        st = r.stats()
    assert (tmp_path / "fixed.csv").read_text() == whole
    assert st["snapshots"] == 1 and st["gaps"] == 0 and st["snapshot_failures"] == 0
    assert not (flags & 1).any()  # no instrument left STALE
    stale = ev[ev["type"] == EV_STALE]
    snapev = ev[ev["type"] == EV_SNAPSHOT]
    assert list(snapev["aux"]) == [0, 1]  # start, done
    assert int(snapev["qty1"][1]) == at and int(snapev["qty2"][1]) == snap.messages
    pos = {i: k for k, i in enumerate(np.flatnonzero(ev["type"] == EV_SNAPSHOT))}
    stale_pos = np.flatnonzero(ev["type"] == EV_STALE)
    start, done = sorted(pos)
    set_ = stale_pos[stale["aux"] == 1]
    cleared = stale_pos[stale["aux"] == 0]
    assert len(set_) > 0 and len(cleared) >= len(np.unique(stale["locate"][stale["aux"] == 1]))
    assert (set_ < start).all() and (cleared > done).all()  # flagged, then asked, applied, cleared
    assert ledger(st)["unaccounted"] == 0


@pytest.mark.slow
def test_loss_with_snapshot_server_down_is_a_counted_gap(days, tmp_path):
    path, _ = days["ab"]
    lossy = str(tmp_path / "lossy.pcap")
    drop_both(path, lossy, 15000, 15012)
    plain, st0, _ = run(lossy, tmp_path, "plain")
    assert st0["gaps"] > 0
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    got, st, log = run(lossy, tmp_path, "down", snapshot="127.0.0.1:%d" % port)
    assert time.monotonic() - t0 < 60
    assert got == plain  # as without snapshot recovery: books flagged, gap counted
    # Each hole (heartbeats show the loss in steps) asked once, 3 tries each, all counted.
    n = len(log)
    assert st["gaps"] == st0["gaps"] and st["snapshots"] == 0 and st["snapshot_failures"] == n >= 1
    assert st["snapshot_fetch_errors"] == {"connect": n}
    assert all(e["attempts"] == 3 and not e["ok"] for e in log)


# --------------------------------------------------------------- hostile


class Hostile:
    """A SoupBinTCP server that accepts the login and then misbehaves:
    behave(conn, stop) runs per connection, ``stop`` set by close()."""

    def __init__(self, behave):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = self.sock.getsockname()
        self.behave = behave
        self.connections = 0
        self.stop = threading.Event()
        self._threads = []
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        self.sock.settimeout(0.05)  # a closed listening socket does not wake accept()
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            self.connections += 1
            t = threading.Thread(target=self._one, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _one(self, c):
        try:
            c.settimeout(60)
            got = b""
            while len(got) < 49:  # the whole login request, however it arrives
                d = c.recv(49 - len(got))
                if not d:
                    return
                got += d
            self.behave(c, self.stop)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self._t.join(60)
        self.sock.close()
        for t in self._threads:
            t.join(60)
        assert not any(t.is_alive() for t in [self._t] + self._threads), "the hostile server did not stop"


def accepted(seq=1):
    return soup.packet(b"A", b"SESSION001" + str(seq).rjust(20).encode())


def seqd(msg):
    return soup.packet(b"S", msg)


def eos(seq):
    return seqd(b"G" + str(seq).rjust(20).encode())


@pytest.fixture
def late(days, tmp_path):
    path, _ = days["a"]
    cutp = str(tmp_path / "cut.pcap")
    ((sess, at),) = cut(path, cutp).items()
    alone, _, _ = run(cutp, tmp_path, "alone")
    return path, cutp, at, alone


def snapshot_bytes(path, at):
    snap = build_snapshot(path, at_seq=at)
    msgs, off = [], 0
    while off < len(snap.blocks):
        n = struct.unpack(">H", snap.blocks[off : off + 2])[0]
        msgs.append(snap.blocks[off + 2 : off + 2 + n])
        off += 2 + n
    return msgs


def hostile_cases(msgs, at):
    body = b"".join(seqd(m) for m in msgs)

    def never_ends(c, stop):
        # Heartbeats until the client gives up (its sends then fail) or the test ends.
        c.sendall(accepted())
        while not stop.wait(0.05):
            c.sendall(soup.packet(b"H"))

    return {
        "rejected": (lambda c, stop: c.sendall(soup.packet(b"J", b"A")), "rejected"),
        "truncated": (lambda c, stop: c.sendall(accepted() + body[: len(body) // 2] + b"\x00\x30S"), "closed"),
        "zero_length": (lambda c, stop: c.sendall(accepted() + b"\x00\x00"), "corrupt"),
        "never_ends": (never_ends, "too_long"),
        "dropped_mid_snapshot": (lambda c, stop: c.sendall(accepted() + body[: len(body) // 3]), "closed"),
        "session_ends_first": (lambda c, stop: c.sendall(accepted() + body + soup.packet(b"Z")), "no_end"),
        "in_the_past": (lambda c, stop: c.sendall(accepted() + body + eos(at - 50)), None),
        "far_ahead": (lambda c, stop: c.sendall(accepted() + body + eos(at + (1 << 30))), None),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "rejected",
        "truncated",
        "zero_length",
        "never_ends",
        "dropped_mid_snapshot",
        "session_ends_first",
        "in_the_past",
        "far_ahead",
    ],
)
def test_hostile_snapshot_server(late, tmp_path, case):
    path, cutp, at, alone = late
    behave, reason = hostile_cases(snapshot_bytes(path, at), at)[case]
    srv = Hostile(behave)
    try:
        t0 = time.monotonic()
        got, st, log = run(cutp, tmp_path, case, snapshot="%s:%d" % srv.address, snapshot_timeout_ms=3000)
        took = time.monotonic() - t0
    finally:
        srv.close()
    assert took < 60
    # Nothing from the bad snapshot: the books are those of the cut capture alone.
    assert got == alone
    assert st["snapshots"] == 0 and st["snapshot_failures"] == 1 and st["snapshot_messages"] == 0
    assert st["book"]["adds"] == run(cutp, tmp_path, "again")[1]["book"]["adds"]
    if reason is None:  # fetched whole, refused by the lane: the sequence
        assert st["errors"] == {"snapshot_rejected": 1}
        assert log[0]["ok"]
    else:
        assert st["snapshot_fetch_errors"] == {reason: 1}
        assert not log[0]["ok"] and log[0]["reason"] == reason
        if reason in ("closed", "timeout"):
            assert srv.connections == 3 and log[0]["attempts"] == 3  # bounded retry
        else:
            assert log[0]["attempts"] == 1


def test_fetch_is_logged_before_the_lane_gets_it(late, tmp_path):
    """A file replay waits for its snapshot in place: once the fetching thread
    posts it, the lane applies it and run_file() can return at once.  By then
    the fetch must be in snapshot_log (it used to be appended after the post:
    a reader right after the replay found the log empty now and then, as
    scripts/bench_snapshot.py did on a busy machine)."""
    path, cutp, at, alone = late
    snap = build_snapshot(path, at_seq=at)
    with Replay(**dict(SMALL, mode="book", snapshot="127.0.0.1:9")) as r:
        svc = r._recovery
        svc._fetch = lambda *a, **k: snap
        real, at_post = svc._lib, []

        class Lib:  # the C library, noting the log as each post goes out
            def __getattr__(self, name):
                return getattr(real, name)

            def fh_lane_snapshot_post(self, *args):
                at_post.append([dict(e) for e in svc.log])
                return real.fh_lane_snapshot_post(*args)

        svc._lib = Lib()
        assert r.run_file(cutp, progress=False).ok
        r.finish()
        log = r.snapshot_log
        st = r.stats()
    assert st["snapshots"] == 1 and st["snapshot_failures"] == 0
    assert len(at_post) == 1 and at_post[0] == log and len(log) == 1 and log[0]["ok"], (at_post, log)
    assert log[0]["sequence"] == at and log[0]["messages"] == snap.messages


def test_bad_message_refused_by_the_lane(late, tmp_path):
    """The lane checks every message itself before applying any (the client
    checks too; this bypasses it)."""
    path, cutp, at, alone = late
    good = build_snapshot(path, at_seq=at)
    bad = Snapshot(blocks=good.blocks + b"\x00\x05Zxxxx", sequence=at, messages=good.messages + 1, session=good.session)
    with Replay(**dict(SMALL, mode="book", snapshot="127.0.0.1:9")) as r:
        r._recovery._fetch = lambda *a, **k: bad
        assert r.run_file(cutp, progress=False).ok
        r.finish()
        r.dump_books(str(tmp_path / "bad.csv"))
    st = r.stats()
    assert (tmp_path / "bad.csv").read_text() == alone
    assert st["errors"] == {"snapshot_rejected": 1} and st["snapshot_failures"] == 1 and st["snapshots"] == 0


# ------------------------------------------------------------------ DPDK

from feedhandler.dpdk import available as dpdk_available  # noqa: E402


@pytest.mark.skipif(
    not dpdk_available(),
    reason="no DPDK support in this install (feedhandler._dpdk not built: "
    "libdpdk-dev / pkg-config libdpdk missing at build time)",
)
def test_late_join_through_dpdk_pcap_pmd(days, tmp_path):
    """A live source does not wait: the lane keeps receiving, holds the stream's
    packets while the snapshot is fetched, then applies it and them."""
    path, meta = days["a"]
    cutp = str(tmp_path / "cut.pcap")
    ((_, at),) = cut(path, cutp).items()
    whole, _, _ = run(path, tmp_path, "whole")
    snap = build_snapshot(path, at_seq=at)
    eal = "-l 0 --no-huge --no-pci -m 512 --file-prefix fhsnap-%d --log-level=error --vdev=net_pcap0,rx_pcap=%s" % (
        os.getpid(),
        cutp,
    )
    with GlimpseServer(snap).in_background() as srv:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "feedhandler",
                "run",
                "--dpdk",
                eal,
                "--mode",
                "book",
                "--max-instruments",
                "64",
                "--gap-buffer",
                "65536",
                "--snapshot",
                endpoint(srv),
                "--dump-books",
                str(tmp_path / "d.csv"),
                "--stats-json",
                str(tmp_path / "d.json"),
                "--duration",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert p.returncode == 0, p.stderr
    st = json.loads((tmp_path / "d.json").read_text())
    assert (tmp_path / "d.csv").read_text() == whole
    assert st["snapshots"] == 1 and st["snapshot_failures"] == 0 and st["gaps"] == 0
    assert st["snapshot_buffered"] >= 1 and st["pkt_held"] == 0


# --------------------------------------------------------------- restart


def test_killed_and_restarted_on_same_shm(days, tmp_path):
    path, _ = days["a"]
    name = "fhsnaprestart%d" % os.getpid()
    cutp = str(tmp_path / "cut.pcap")
    ((_, at),) = cut(path, cutp, frac=0.5).items()
    whole, _, _ = run(path, tmp_path, "whole")
    cmd = [sys.executable, "-m", "feedhandler", "replay", "-q", "--shm", name, "--max-instruments", "64"]
    # The first handler is given the capture's first half as a file, then a FIFO
    # nobody ever writes to: it is still running (waiting on the FIFO) when killed,
    # however fast or slow the machine.
    recs = F.parse_pcap(open(path, "rb").read())
    half = str(tmp_path / "half.pcap")
    with open(half, "wb") as f:
        f.write(F.pcap_bytes(recs[: len(recs) // 2]))
    fifo = str(tmp_path / "rest.fifo")
    os.mkfifo(fifo)
    first = subprocess.Popen(cmd + [half, fifo], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        seg = None
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if seg is None:
                    seg = attach(name)
                if seg.counters()["messages"] > 1000:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        assert seg is not None and seg.counters()["messages"] > 1000, first.poll()
        assert seg.state == "running"
        pid1 = seg.writer_pid
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert seg.state == "dead" and seg.writer_alive is False  # readers see the writer gone
        seg.close()
        snap = build_snapshot(path, at_seq=at)
        with GlimpseServer(snap).in_background() as srv:
            dump = str(tmp_path / "restart.csv")
            subprocess.run(
                cmd + ["--snapshot", endpoint(srv), "--dump-books", dump, cutp],
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        with attach(name) as seg2:  # the segment restarted
            assert seg2.writer_pid != pid1 and seg2.state == "finished"
            assert seg2.counters()["snapshots"] == 1
            assert not (seg2.copy_books()["flags"] & 1).any()
        assert open(dump).read() == whole
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--snapshot", "nonsense"], "HOST:PORT"),
        (["--snapshot", "127.0.0.1:1", "--snapshot-user", "toolongname"], "at most 6"),
        (["--snapshot", "127.0.0.1:1", "--snapshot-password", "elevenchars"], "at most 10"),
        (["--snapshot", "127.0.0.1:1", "--mode", "decode"], "not with mode 'decode'"),
    ],
)
def test_snapshot_options_checked(days, args, needle):
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", "-q", days["a"][0]] + args,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and needle in p.stderr, p.stderr


# ------------------------------------------------------- recovery bounds


@pytest.mark.slow
def test_heartbeats_after_the_snapshot_do_not_hold_the_replay(late, tmp_path):
    """A server that sends the snapshot, then heartbeats every 100 ms and never
    End of Snapshot, held a default replay for minutes (heartbeats counted as
    progress, the deadline was per try and 300 s in all).  One deadline now
    bounds the whole recovery (default 5 s): the replay goes on as without
    a snapshot, its instruments STALE.  60 s is a hang guard, not a timing."""
    path, cutp, at, alone = late
    body = b"".join(seqd(m) for m in snapshot_bytes(path, at))

    def behave(c, stop):
        c.sendall(accepted() + body)
        while not stop.wait(0.1):
            c.sendall(soup.packet(b"H"))

    srv = Hostile(behave)
    name = "fhsnapbound%d" % os.getpid()
    try:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "feedhandler",
                "replay",
                "-q",
                "--max-orders",
                str(1 << 16),
                "--max-levels",
                str(1 << 17),
                "--max-instruments",
                "64",
                "--ring-events",
                str(1 << 16),
                "--silence-ms",
                "120000",
                "--shm",
                name,
                "--snapshot",
                endpoint(srv),
                "--stats-json",
                str(tmp_path / "s.json"),
                "--dump-books",
                str(tmp_path / "d.csv"),
                cutp,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        with attach(name) as seg:
            flags = seg.copy_books()["flags"]
    finally:
        srv.close()
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass
    st = json.loads((tmp_path / "s.json").read_text())
    assert (tmp_path / "d.csv").read_text() == alone
    assert st["snapshots"] == 0 and st["snapshot_failures"] == 1 and st["snapshot_messages"] == 0
    assert st["snapshot_fetch_errors"] == {"too_long": 1}
    assert (flags & 1).sum() == 20  # every instrument of the stream STALE


def test_server_that_closes_at_once_is_retried_then_given_up(days, tmp_path):
    """A hole no line fills, and a snapshot server that closes every connection
    at once: tried again (3 tries, all within the one deadline), then the hole
    is a counted gap and its instruments stay STALE, as without recovery."""
    path, _ = days["ab"]
    lossy = str(tmp_path / "lossy.pcap")
    drop_both(path, lossy, 15000, 15012)
    plain, st0, _ = run(lossy, tmp_path, "plain")
    srv = Hostile(lambda c, stop: None)
    try:
        with Replay(
            **dict(SMALL, mode="book", silence_ms=120000, snapshot=endpoint(srv), snapshot_timeout_ms=20000)
        ) as r:
            assert r.run_file(lossy, progress=False).ok
            r.finish()
            r.dump_books(str(tmp_path / "closes.csv"))
            stale = [loc for loc in range(1, 65) if r.flags(loc) & 1]
            log = r.snapshot_log
        st = r.stats()
    finally:
        srv.close()
    assert (tmp_path / "closes.csv").read_text() == plain
    n = len(log)
    assert n >= 1 and st["gaps"] == st0["gaps"] > 0
    assert st["snapshots"] == 0 and st["snapshot_failures"] == n
    assert st["snapshot_fetch_errors"] == {"closed": n}
    assert all(e["attempts"] == 3 and e["reason"] == "closed" for e in log)
    assert srv.connections == 3 * n
    assert stale  # the gap's instruments stay flagged


def test_tries_share_one_deadline(late, tmp_path):
    """Each try gets what is left of the recovery's one deadline, not a
    deadline of its own: a server that uses up a try's whole time leaves no
    time for another (the old per-try deadlines made 3 tries of it)."""
    path, cutp, at, alone = late
    from feedhandler.glimpse import SnapshotError

    calls = []

    def slow(host, port, **kw):
        calls.append(kw)
        time.sleep(kw["deadline"])  # all the time it was given, and then some
        raise SnapshotError("nothing useful within %.1f s" % kw["deadline"], "timeout")

    with Replay(**dict(SMALL, mode="book", snapshot="127.0.0.1:9", snapshot_timeout_ms=1000)) as r:
        r._recovery._fetch = slow
        limit = r._lib.fh_lane_snapshot_limit(r._r)
        assert r.run_file(cutp, progress=False).ok
        r.finish()
        r.dump_books(str(tmp_path / "slow.csv"))
        log = r.snapshot_log
    st = r.stats()
    assert len(calls) == 1 and 0 < calls[0]["deadline"] <= 1.0 and calls[0]["timeout"] <= 1.0
    # The size bound passed to the client is the lane's, from its capacities.
    assert calls[0]["max_bytes"] == limit == SMALL["max_orders"] * 42 + SMALL["max_instruments"] * 1024 + 65536
    assert st["snapshot_failures"] == 1 and st["snapshots"] == 0
    assert (tmp_path / "slow.csv").read_text() == alone
    assert log[0]["attempts"] == 1 and log[0]["reason"] == "timeout"


_STREAM_CHILD = r"""
import json, sys
from feedhandler.replay import Replay
with Replay(mode="book", max_orders=1000, max_levels=4096, max_instruments=64, ring_events=1024,
            silence_ms=120000, snapshot=sys.argv[2], snapshot_timeout_ms=30000) as r:
    assert r.run_file(sys.argv[1], progress=False).ok
    r.finish()
    limit = int(r._lib.fh_lane_snapshot_limit(r._r))
    log = r.snapshot_log
st = r.stats()
print(json.dumps({"limit": limit, "log": log, "failures": st["snapshot_failures"], "snapshots": st["snapshots"],
                  "fetch_errors": st["snapshot_fetch_errors"]}))
"""


def test_snapshot_that_never_ends_is_refused_at_the_capacity_limit(late, tmp_path):
    """A server streaming Add Orders forever took the client to 2.6 GB before
    a fixed 2 GiB bound.  The bound now follows from the capacities (here
    1000 orders, 64 instruments: 173 072 bytes), and memory stays bounded: the
    child's peak RSS (VmHWM) is far below 1 GB whatever the server sends."""
    path, cutp, at, alone = late
    add = b"A" + bytes(10) + struct.pack(">QcI8sI", 7, b"B", 100, b"AAAA    ", 10000)
    assert len(add) == 36
    chunk = seqd(add) * 4096

    def behave(c, stop):
        c.sendall(accepted())
        while not stop.is_set():
            c.sendall(chunk)  # until the client gives up: then the send fails

    srv = Hostile(behave)
    out_p, err_p = tmp_path / "child.out", tmp_path / "child.err"
    try:
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            p = subprocess.Popen([sys.executable, "-c", _STREAM_CHILD, cutp, endpoint(srv)], stdout=out, stderr=err)
        # The child's own peak RSS: VmHWM of its image after exec, sampled
        # while it runs (wait4's ru_maxrss would also count the pytest process
        # it was forked from, which may itself be past 1 GB late in a run).
        end = time.monotonic() + 120  # a hang guard
        status, peak_kib = None, 0
        while status is None and time.monotonic() < end:
            try:
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    exec_done = b"\0-c\0" in f.read()  # not pytest's image before exec
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if exec_done and line.startswith("VmHWM:"):
                            peak_kib = max(peak_kib, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            pid, st_, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                status = st_
            else:
                time.sleep(0.02)
        if status is None:
            p.kill()
            os.wait4(p.pid, 0)
        p.returncode = -1 if status is None else os.waitstatus_to_exitcode(status)
    finally:
        srv.close()
    assert p.returncode == 0, err_p.read_text()
    assert 0 < peak_kib * 1024 < 1 << 30, peak_kib
    got = json.loads(out_p.read_text().strip().splitlines()[-1])
    limit = got["limit"]
    assert limit == 1000 * 42 + 64 * 1024 + 65536
    assert got["failures"] == 1 and got["snapshots"] == 0 and got["fetch_errors"] == {"too_long": 1}
    assert "more than %d bytes" % limit in got["log"][0]["error"] and got["log"][0]["attempts"] == 1


def test_snapshot_past_the_limit_is_refused_by_the_lane(late, tmp_path):
    """The lane checks the size itself (a fetcher that does not): a snapshot
    of valid messages, longer than its capacities allow, is refused whole
    (errors.snapshot_rejected), not copied, nothing applied."""
    path, cutp, at, alone = late
    with Replay(**dict(SMALL, mode="book", snapshot="127.0.0.1:9")) as r:
        limit = r._lib.fh_lane_snapshot_limit(r._r)
        msg = b"\x00\x0c" + b"S" + bytes(10) + b"O"  # System Event 'O', 12 bytes: valid ITCH
        big = Snapshot(blocks=msg * (limit // len(msg) + 1), sequence=at, messages=limit // len(msg) + 1, session="x")
        r._recovery._fetch = lambda *a, **k: big
        assert r.run_file(cutp, progress=False).ok
        r.finish()
        r.dump_books(str(tmp_path / "big.csv"))
    st = r.stats()
    assert len(big.blocks) > limit
    assert st["errors"] == {"snapshot_rejected": 1} and st["snapshot_failures"] == 1 and st["snapshots"] == 0
    assert (tmp_path / "big.csv").read_text() == alone


def _mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs /proc/meminfo")
def test_snapshot_limit_checked_against_memory_at_start_up(days, tmp_path):
    """Capacities whose books fit this machine but whose largest snapshot (held
    3 times while fetched) on top does not: a clear start-up error, before
    anything is read, like every other capacity."""
    try:
        overcommit = open("/proc/sys/vm/overcommit_memory").read().strip()
    except OSError:
        overcommit = "0"
    if overcommit == "2":
        pytest.skip("strict overcommit: the books' address space alone may be refused")
    total = _mem_total()
    # Books reserve ~72 bytes per order (a power-of-two count: hash 48, scratch 24)
    # plus a 256 MiB window; the snapshot 3 x 42 = 126 more: the smallest power of
    # two whose books + snapshot pass the machine has books well inside it.
    n = 1
    while 198 * n + (256 << 20) <= total * 1.05:
        n *= 2
    assert 72 * n + (300 << 20) < total and n < 1 << 32
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            "--mode",
            "book",
            "--max-orders",
            str(n),
            "--max-levels",
            "1024",
            "--max-instruments",
            "64",
            "--snapshot",
            "127.0.0.1:9",
            days["a"][0],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert "a snapshot" in p.stderr and "more than this machine has" in p.stderr, p.stderr
