"""GLIMPSE 5.0 over SoupBinTCP 4.0: the C snapshot builder (csrc/tools/glimpse.c), the
Python builder, server and client (feedhandler.glimpse), the CLI.

Books are compared through --dump-books CSVs: a snapshot is right when the books
it rebuilds from empty are the books of the messages it stands for, and when
books rebuilt from it and then fed the live feed from its End of Snapshot
sequence on end where the whole day ends."""

import contextlib
import json
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from feedhandler import soup
from feedhandler.core import ffi, lib
from feedhandler.glimpse import Snapshot, SnapshotError, build_snapshot, fetch_snapshot
from feedhandler.replay import Replay
from feedhandler.rewind import index_capture
from procutil import glimpse_serving, read_line_until, wait_for


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    d = tmp_path_factory.mktemp("glimpse")
    prefix = str(d / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "--out",
            prefix,
            "--messages",
            "30000",
            "--symbols",
            "12",
            "--channels",
            "1",
            "--seed",
            "5",
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return prefix + ".pcap"


@pytest.fixture(scope="module")
def small_day(tmp_path_factory):
    d = tmp_path_factory.mktemp("glimpse_small")
    prefix = str(d / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "--out",
            prefix,
            "--messages",
            "3000",
            "--symbols",
            "4",
            "--channels",
            "1",
            "--seed",
            "9",
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return prefix + ".pcap"


@pytest.fixture(scope="module")
def snap(day):
    return build_snapshot(day, at_seq=12345)


def books(tmp_path, name, data=None, path=None, **kw):
    out = str(tmp_path / (name + ".csv"))
    with Replay(mode="book", **kw) as r:
        if data is not None:
            if data:  # an empty snapshot (nothing before it) is empty books
                res = r.run_buffer(data)
                assert res.ok, res.error
        else:
            assert r.run_file(path).ok
        assert r.stats()["book"]["order_full"] == 0
        r.dump_books(out, depth=64)
    with open(out) as f:
        return f.read()


def session_blocks(path, lo=None, hi=None):
    """The session's messages with lo <= seq < hi, as BinaryFILE records."""
    idx = index_capture(path)
    (s,) = idx.sessions.values()
    import numpy as np

    i = 0 if lo is None else int(np.searchsorted(s.seqs, np.uint64(lo)))
    j = len(s.seqs) if hi is None else int(np.searchsorted(s.seqs, np.uint64(hi)))
    return s.blocks(i, j - i) if j > i else b""


def walk(blocks):
    off, out = 0, []
    while off < len(blocks):
        n = int.from_bytes(blocks[off : off + 2], "big")
        out.append(blocks[off + 2 : off + 2 + n])
        off += 2 + n
    assert off == len(blocks)
    return out


# ------------------------------------------------------------ C builder


@pytest.mark.parametrize("at", [None, 2, 9000, 20001])
def test_snapshot_rebuilds_the_books(day, tmp_path, at):
    s = build_snapshot(day, at_seq=at)
    if at is None:
        whole = books(tmp_path, "whole", path=day)
    else:
        whole = books(tmp_path, "whole", data=session_blocks(day, hi=at))
    assert books(tmp_path, "snap", data=s.blocks) == whole
    assert s.missing == 0 and s.messages == len(walk(s.blocks))
    if at is not None:
        assert s.sequence == at
        # The live feed from End of Snapshot's sequence on ends where the day ends.
        assert books(tmp_path, "cont", data=s.blocks + session_blocks(day, lo=at)) == books(tmp_path, "day", path=day)


def test_snapshot_messages(snap):
    msgs = walk(snap.blocks)
    types = [m[:1] for m in msgs]
    assert snap.messages == len(msgs) and snap.instruments == types.count(b"R") == 12
    assert snap.orders == types.count(b"A") > 50
    for m in msgs:
        assert lib.fh_itch_msg_len(m[0]) == len(m)
        assert m[3:5] == b"\0\0" and int.from_bytes(m[5:11], "big") == snap.timestamp_ns
    # Directory first (locate order), orders after in increasing reference number.
    first_a = types.index(b"A")
    assert set(types[first_a:]) == {b"A"}
    locs = [struct.unpack(">H", m[1:3])[0] for m in msgs[:first_a] if m[:1] == b"R"]
    assert locs == sorted(locs)
    refs = [struct.unpack(">Q", m[11:19])[0] for m in msgs[first_a:]]
    assert refs == sorted(refs) and len(set(refs)) == len(refs)
    assert all(m[19:20] in (b"B", b"S") for m in msgs[first_a:])


def test_window_and_hash_give_the_same_snapshot(day):
    """A small order capacity (small window) sends old orders to the hash:
    the snapshot, its order included, must not change."""
    small, big = build_snapshot(day, at_seq=20001, max_orders=1000), build_snapshot(day, at_seq=20001)
    assert small.orders == big.orders  # no order dropped for capacity
    assert small.blocks == big.blocks


def test_c_builder_buffer_and_mode(day):
    blocks = session_blocks(day, hi=5000)
    with Replay(mode="book") as r:
        r.run_buffer(blocks)
        lane = r.handles[0]
        n, msgs = ffi.new("size_t *"), ffi.new("uint64_t *")
        assert lib.fh_glimpse_build(lane, 7, ffi.NULL, 0, n, msgs) == -1
        need = int(n[0])
        assert need > 0 and msgs[0] > 0
        buf = ffi.new("uint8_t[]", need + 16)
        buf[need - 1] = 0xAB
        buf[need - 2] = 0xCD
        assert lib.fh_glimpse_build(lane, 7, buf, need - 1, n, msgs) == -1 and n[0] == need
        assert buf[need - 1] == 0xAB  # nothing written past cap
        for i in range(need, need + 16):
            buf[i] = 0x5A
        assert lib.fh_glimpse_build(lane, 7, buf, need + 16, n, msgs) == 0 and n[0] == need
        assert all(buf[i] == 0x5A for i in range(need, need + 16))
    with Replay(mode="decode") as r:
        r.run_buffer(blocks)
        assert lib.fh_glimpse_build(r.handles[0], 0, ffi.NULL, 0, n, msgs) == -2


def test_at_time_and_sessions(day, small_day, tmp_path):
    s = build_snapshot(day, at_seq=15000)
    m = walk(session_blocks(day, lo=15000, hi=15001))[0]
    t = build_snapshot(day, at_time_ns=int.from_bytes(m[5:11], "big"))
    assert t.sequence <= 15000
    assert build_snapshot(day, at_seq=t.sequence) == t
    assert build_snapshot(day, session=s.session, at_seq=15000) == s
    with pytest.raises(SnapshotError) as e:
        build_snapshot(day, session="NOPE")
    assert e.value.reason == "input" and s.session in str(e.value)
    garbage = tmp_path / "g.pcap"
    garbage.write_bytes(b"not a capture at all" * 10)
    with pytest.raises(SnapshotError):
        build_snapshot(str(garbage))


def test_capture_gap_is_reported(day, tmp_path):
    """Messages the capture lacks before the snapshot point are counted, not hidden."""
    full = build_snapshot(day, at_seq=100)
    assert full.missing == 0
    s = build_snapshot(day, at_seq=1 << 40)
    assert s.missing == (1 << 40) - 1 - 30000


# ------------------------------------------------------ client / server

serving = glimpse_serving


def test_fetch_equals_built(snap):
    with serving(snap) as srv:
        got = fetch_snapshot(*srv.address)
        assert got == snap
        wait_for(lambda: srv.stats()["logouts"] == 1, "logout counted")
        st = srv.stats()
    assert st["connections"] == 1 and st["logins_accepted"] == 1 and st["snapshots_served"] == 1
    assert st["messages_sent"] == snap.messages
    # login accepted, one 'S' packet per message (a byte more than its block), End of Snapshot, then
    # possibly server heartbeats (3 bytes each) before the logout arrived
    extra = st["bytes_sent"] - (33 + len(snap.blocks) + snap.messages + 24)
    assert extra >= 0 and extra % 3 == 0


def test_fetch_one_byte_at_a_time(small_day):
    s = build_snapshot(small_day)
    with serving(s) as srv:
        assert fetch_snapshot(*srv.address, recv_size=1) == s


@contextlib.contextmanager
def hostile(script, accept=1):
    """A plain TCP server: each connection's login request is read, then
    script(conn, stop) runs; the connection is closed after.  ``stop`` is set
    when the test is done with the server (the with block ends): a script that
    must keep its connection open waits for that or for the client to hang up
    (:func:`until_closed`), never for a fixed time."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    stop = threading.Event()
    errors = []

    def run():
        try:
            ls.settimeout(0.05)  # a closed listening socket does not wake accept()
            for _ in range(accept):
                end = time.monotonic() + 60
                while True:
                    try:
                        c, _ = ls.accept()
                        break
                    except socket.timeout:
                        if stop.is_set() or time.monotonic() > end:
                            return
                with c:
                    c.settimeout(60)
                    got = b""
                    while len(got) < 49:
                        d = c.recv(49 - len(got))
                        if not d:
                            break
                        got += d
                    try:
                        script(c, stop)
                    except OSError:
                        pass
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            if not stop.is_set():
                errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield ls.getsockname()
    finally:
        stop.set()
        t.join(60)
        ls.close()
    assert not t.is_alive(), "the hostile server did not stop"
    assert not errors, errors


def until_closed(c, stop):
    """Keep the connection open (reading whatever the client sends) until the
    client hangs up or the test is done."""
    while not stop.is_set():
        if select.select([c], [], [], 0.05)[0] and not c.recv(4096):
            return


def accepted(session=b"SESS"):
    return soup.packet(b"A", session.rjust(10) + b"1".rjust(20))


def seqd(msg):
    return soup.packet(b"S", msg)


def test_server_sending_one_byte_per_send(small_day):
    s = build_snapshot(small_day)
    wire = (
        accepted(s.session.encode())
        + b"".join(seqd(m) for m in walk(s.blocks))
        + seqd(b"G" + str(s.sequence).encode().rjust(20))
    )

    def trickle(c, stop):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(wire)):
            c.sendall(wire[i : i + 1])
        until_closed(c, stop)

    with hostile(trickle) as addr:
        assert fetch_snapshot(*addr) == s


def test_wrong_credentials_rejected_while_good_client_served(snap):
    with serving(snap, user="me", password="secret") as srv:
        results = {}

        def good():
            results["good"] = fetch_snapshot(*srv.address, user="me", password="secret")

        t = threading.Thread(target=good)
        t.start()
        with pytest.raises(SnapshotError) as e:
            fetch_snapshot(*srv.address, user="me", password="wrong")
        assert e.value.reason == "rejected" and "not authorized" in str(e.value)
        with pytest.raises(SnapshotError) as e:
            fetch_snapshot(*srv.address, user="me", password="secret", session="OTHER")
        assert e.value.reason == "rejected" and "session" in str(e.value)
        t.join(30)
        assert results["good"] == snap
        assert fetch_snapshot(*srv.address, user="me", password="secret", session=snap.session) == snap
        # The client can have its whole snapshot before the server thread counts it served.
        wait_for(lambda: srv.stats()["snapshots_served"] == 2, "both snapshots counted")
        st = srv.stats()
    assert st["logins_rejected"] == {"not_authorized": 1, "session_not_available": 1}
    assert st["logins_accepted"] == 2 and st["snapshots_served"] == 2


@pytest.mark.parametrize(
    "first",
    [
        b"\x00\x01O",  # logout as the first packet
        b"\x00\x05L1234",  # a login request of the wrong size
        b"\x00\x01Z",  # a server's packet type
        b"\x00\x00",  # length 0
        soup.packet(b"L", b"me    " + b"pw".ljust(10) + b" " * 10 + b"12x".rjust(20)),  # sequence not numeric
    ],
)
def test_malformed_login_dropped_and_counted(snap, first):
    with serving(snap) as srv:
        c = socket.create_connection(srv.address, timeout=60)
        with c:
            c.sendall(first)
            c.settimeout(60)
            assert c.recv(100) == b""  # dropped, nothing sent
        wait_for(lambda: srv.stats()["malformed_logins"] == 1, "malformed login counted")
        assert fetch_snapshot(*srv.address) == snap
        st = srv.stats()
    assert st["logins_accepted"] == 1 and st["connections"] == 2


def add_order(ref, locate=1):
    return struct.pack(">cHH6sQcI8sI", b"A", locate, 0, bytes(6), ref, b"B", 100, b"X       ", 10000)


def test_slow_reader_dropped_without_blocking_others():
    # Far more than the small socket buffers below hold.
    big = Snapshot(
        blocks=b"".join(b"\x00\x24" + add_order(r) for r in range(1, 30001)),
        sequence=99,
        messages=30000,
        session="BIG",
        orders=30000,
    )
    with serving(big, send_timeout_s=0.5, send_buffer=4096) as srv:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(srv.address)
        with slow:
            slow.sendall(soup.login_request(sequence=1))
            # It never reads; a second client is served meanwhile.
            assert fetch_snapshot(*srv.address) == big
            wait_for(lambda: srv.stats()["slow_clients_dropped"] == 1, "slow client dropped")
        st = srv.stats()
    assert st["snapshots_served"] == 1 and st["logins_accepted"] == 2


def test_server_heartbeats_then_drops_an_idle_client(small_day):
    """After the snapshot the server sends heartbeats while the client stays
    (a client that waits for one, then logs out: counted as a logout), and
    drops a client that goes quiet for idle_timeout_s.  Two connections, so
    neither outcome depends on which of the two timers a busy server thread
    finds expired first."""
    s = build_snapshot(small_day)

    def session(srv, until_heartbeat):
        c = socket.create_connection(srv.address, timeout=60)
        with c:
            c.sendall(soup.login_request(sequence=1))
            f, pkts = soup.Framer(), []
            while True:
                d = c.recv(65536)
                if not d:
                    break
                pkts += f.feed(d)
                if until_heartbeat and b"H" in [t for t, _ in pkts]:
                    c.sendall(soup.packet(b"O"))
                    until_heartbeat = False
        return [t for t, _ in pkts]

    # Heartbeats: an idle timeout only a hung test would reach.
    with serving(s, idle_timeout_s=60, heartbeat_s=0.05) as srv:
        types = session(srv, until_heartbeat=True)
        assert types[0] == b"A" and types.count(b"S") == s.messages + 1 and b"H" in types
        wait_for(lambda: srv.stats()["logouts"] == 1, "logout counted")
        assert srv.stats()["client_timeouts"] == 0
    # The idle drop: a client that logs in, reads, and never says another word.
    with serving(s, idle_timeout_s=0.3, heartbeat_s=0.05) as srv:
        types = session(srv, until_heartbeat=False)
        assert types[0] == b"A" and types.count(b"S") == s.messages + 1
        wait_for(lambda: srv.stats()["client_timeouts"] == 1, "idle client counted")


# ---------------------------------------------------------- hostile servers


def _reject(c, stop):
    c.sendall(soup.packet(b"J", b"A"))


def _truncated(c, stop):
    c.sendall(accepted() + seqd(b"R" + bytes(38))[:10])


def _zero_length(c, stop):
    c.sendall(accepted() + b"\x00\x00")


def _heartbeats_forever(c, stop):
    # Until the client gives up (its sends then fail) or the test ends: never
    # a close the client could take for the reason.
    c.sendall(accepted())
    while not stop.wait(0.05):
        c.sendall(soup.packet(b"H"))


def _data_forever(c, stop):
    c.sendall(accepted())
    msg = seqd(b"S" + bytes(11))
    while not stop.wait(0.01):
        c.sendall(msg * 50)


def _not_itch(c, stop):
    c.sendall(accepted() + seqd(b"S" + bytes(11)) + seqd(b"Z" + bytes(20)))
    until_closed(c, stop)


def _wrong_itch_length(c, stop):
    c.sendall(accepted() + seqd(b"A" + bytes(30)))
    until_closed(c, stop)


def _dropped_mid_snapshot(c, stop):
    c.sendall(accepted() + seqd(b"S" + bytes(11)) * 3)


def _end_of_session(c, stop):
    c.sendall(accepted() + seqd(b"S" + bytes(11)) + soup.packet(b"Z"))
    until_closed(c, stop)


def _silent(c, stop):
    c.sendall(accepted())
    until_closed(c, stop)


def _bad_eos(c, stop):
    c.sendall(accepted() + seqd(b"G" + b"12x".rjust(20)))
    until_closed(c, stop)


def _data_before_login(c, stop):
    c.sendall(seqd(b"S" + bytes(11)))
    until_closed(c, stop)


@pytest.mark.slow
@pytest.mark.parametrize(
    "script,reason,kw",
    [
        (_reject, "rejected", {}),
        (_truncated, "closed", {}),
        (_zero_length, "corrupt", {}),
        (_heartbeats_forever, "too_long", {"deadline": 1.0}),
        (_heartbeats_forever, "timeout", {"timeout": 0.5}),  # heartbeats are not snapshot data: no progress
        (_data_forever, "too_long", {"deadline": 1.0}),
        (_data_forever, "too_long", {"max_bytes": 10_000}),
        (_not_itch, "bad_message", {}),
        (_wrong_itch_length, "bad_message", {}),
        (_dropped_mid_snapshot, "closed", {}),
        (_end_of_session, "no_end", {}),
        (_silent, "timeout", {"timeout": 0.5}),
        (_bad_eos, "bad_message", {}),
        (_data_before_login, "corrupt", {}),
    ],
)
def test_hostile_servers(script, reason, kw):
    with hostile(script) as addr:
        t0 = time.monotonic()
        with pytest.raises(SnapshotError) as e:
            fetch_snapshot(*addr, **{"timeout": 5.0, "deadline": 20.0, **kw})
        assert e.value.reason == reason, str(e.value)
        assert time.monotonic() - t0 < 60  # a guard against hangs, not a timing claim


def test_client_heartbeats_while_waiting():
    """A slow server that says nothing after the login until it has heard the
    client's heartbeat: the client keeps the session alive with heartbeats
    (the server waits for one, not for a fixed time) and then gets its
    snapshot."""
    seen = []

    def slow(c, stop):
        c.sendall(accepted())
        got = b""
        end = time.monotonic() + 60  # only a client that never heartbeats gets here
        while soup.packet(b"R") not in got and time.monotonic() < end and not stop.is_set():
            if select.select([c], [], [], 0.05)[0]:
                d = c.recv(100)
                if not d:
                    return
                got += d
        seen.append(got)
        c.sendall(seqd(b"G" + b"7".rjust(20)))
        until_closed(c, stop)

    with hostile(slow) as addr:
        s = fetch_snapshot(*addr, timeout=30)
    assert s == Snapshot(blocks=b"", sequence=7, messages=0, session="SESS")
    assert b"".join(seen).count(soup.packet(b"R")) >= 1


def test_no_server():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()
    with pytest.raises(SnapshotError) as e:
        fetch_snapshot("127.0.0.1", port, timeout=2)
    assert e.value.reason == "connect"


# -------------------------------------------------------------------- scapy


def test_fetched_packets_dissect_with_scapy(small_day):
    pytest.importorskip("scapy")
    from feedhandler.scapy_layers import EndOfSnapshot, SoupBinTCP, SoupLoginAccepted

    s = build_snapshot(small_day, at_seq=1000)
    with serving(s) as srv:
        c = socket.create_connection(srv.address, timeout=60)
        with c:
            c.sendall(soup.login_request(sequence=1))
            wire, f, pkts = b"", soup.Framer(), []
            while not any(p[:1] == b"G" for t, p in pkts):
                d = c.recv(65536)
                assert d
                wire += d
                pkts += f.feed(d)
            c.sendall(soup.packet(b"O"))
    first = SoupBinTCP(wire[:33])
    assert first[SoupLoginAccepted].sequence == 1
    eos = wire[wire.rindex(b"\x00\x16SG") :][:24]
    p = SoupBinTCP(eos)
    assert p[EndOfSnapshot].sequence == 1000
    msg = SoupBinTCP(wire[33 : 33 + 3 + len(walk(s.blocks)[0])])
    assert bytes(msg)[3:] == walk(s.blocks)[0]


# ---------------------------------------------------------------------- CLI


def test_cli_serves_and_stops(day, tmp_path):
    stats = tmp_path / "stats.json"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "glimpse-server",
            day,
            "--listen",
            "127.0.0.1:0",
            "--at",
            "12345",
            "--user",
            "u",
            "--password",
            "p",
            "--stats-json",
            str(stats),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line, seen, rest = read_line_until(p, "listening on")
        assert any("12 instruments" in s for s in seen)
        port = int(line.split()[3].rsplit(":", 1)[1])
        expect = build_snapshot(day, at_seq=12345)
        assert fetch_snapshot("127.0.0.1", port, user="u", password="p") == expect
        with pytest.raises(SnapshotError):
            fetch_snapshot("127.0.0.1", port, user="u", password="x")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        err = p.stderr.read()
        out = "".join(iter(lambda: rest.get(timeout=30), None))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == 0, (out, err)
    assert "Traceback" not in err
    assert "connections 2, logins accepted 1, snapshots served 1" in out
    assert "not_authorized 1" in out
    st = json.loads(stats.read_text())
    assert st["snapshots_served"] == 1 and st["snapshot"]["sequence"] == 12345
    assert st["snapshot"]["messages"] == expect.messages


def test_cli_help_and_usage(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "feedhandler", "glimpse-server", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "GLIMPSE" in r.stdout and "--at-time" in r.stdout and "Exit status" in r.stdout
    top = subprocess.run([sys.executable, "-m", "feedhandler", "--help"], capture_output=True, text=True, timeout=60)
    assert "glimpse-server" in top.stdout
    r = subprocess.run(
        [sys.executable, "-m", "feedhandler", "glimpse-server", "x.pcap", "--listen", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "glimpse-server",
            str(tmp_path / "missing.pcap"),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
