"""Every fuzzing seed and every input that once crashed a harness
(tests/fuzz/corpus/<harness>/, tests/fuzz/regressions/<harness>/), fed through
the Python API the way the harness feeds it to C (fuzz/fuzz_*.c say how their
inputs are laid out): each must complete with counters.  Cheap and
deterministic; under scripts/test.sh's second pass it runs with ASan + UBSan.

  fuzz_frames     frames -> an in-memory pcap -> Replay.run_buffer (+ finish),
                  and each frame through decode_frame (no session state)
  fuzz_sources    the file -> Replay.run_buffer, or run_file for gzip
  fuzz_rerequest  server side: rewind.parse_request; client side: a replay of
                  the harness's stream with a hole, its re-request answered by
                  a UDP server sending the input's replies
"""
import os
import socket
import struct
import threading

import pytest

from feedhandler.core import decode_frame
from feedhandler.replay import Replay
from feedhandler.rewind import parse_request

import frames as F

HERE = os.path.dirname(os.path.abspath(__file__))
DIRS = [os.path.join(HERE, "fuzz", kind) for kind in ("corpus", "regressions")]
MODES = {0: "publish", 1: "book", 2: "decode", 3: "publish"}
SMALL = dict(max_orders=1024, max_levels=4096, max_instruments=64, depth=5, ring_events=1024,
             gap_window_us=200, gap_buffer=8, silence_ms=5, max_streams=4)


def inputs(harness):
    out = []
    for d in DIRS:
        d = os.path.join(d, harness)
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return out


def ids(paths):
    return [os.path.join(os.path.basename(os.path.dirname(os.path.dirname(p))), os.path.basename(p)) for p in paths]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_counters(st):
    assert st["packets"] >= st.get("mold_packets", 0) >= 0
    assert sum(st["by_type"].values()) == st["messages"]


# ------------------------------------------------------------------ frames

def split_frames(data):
    """(options, [(receive time ns, frame)]) as fuzz_frames.c reads its input."""
    opt, off, rx, out = data[0], 1, 1700000000 * 10**9, []
    while off < len(data):
        if len(data) - off < 3:
            break
        n, step = struct.unpack_from("<HB", data, off)
        off += 3
        f = data[off:off + n]
        rx += step * 10000
        out.append((rx, f))
        off += len(f)
    return opt, out


FRAMES = inputs("fuzz_frames")


@pytest.mark.parametrize("path", FRAMES, ids=ids(FRAMES))
def test_frames(path):
    data = read(path)
    if not data:
        return
    opt, recs = split_frames(data)
    r = Replay(mode=MODES[opt & 3], **SMALL)
    res = r.run_buffer(F.pcap_bytes(recs, ns=True))
    assert res.ok, res.error
    r.finish()
    st = r.stats()
    check_counters(st)
    assert st["packets"] == len(recs)
    for _, f in recs:
        _, fst = decode_frame(f)
        check_counters(fst)


# ----------------------------------------------------------------- sources

SOURCES = inputs("fuzz_sources")


@pytest.mark.parametrize("path", SOURCES, ids=ids(SOURCES))
def test_sources(path, tmp_path):
    data = read(path)
    r = Replay(mode="publish", **SMALL)
    if data[:2] == b"\x1f\x8b":
        p = tmp_path / "input.gz"
        p.write_bytes(data)
        res = r.run_file(str(p), progress=False)
    else:
        res = r.run_buffer(data)
    assert res.ok or res.error
    r.finish()
    check_counters(r.stats())


# --------------------------------------------------------------- rerequest

def hole_capture(held):
    """The stream fuzz_rerequest.c sets up: seq 1-2 applied, a hole at 3 up
    to seq 6 (held packets at 6, 8, ... or a heartbeat at 6)."""
    t0 = 34200 * 10**9

    def add(ref, i):
        return F.msg_A(ref=ref, side=b"BS"[i & 1:(i & 1) + 1], price=1000000 + (i & 1) * 100, stock=b"FUZZ    ",
                       ts=0)

    recs = [(t0, F.frame(F.mold([add(1, 0), add(2, 1)], seq=1)))]
    for k in range(held):
        recs.append((t0, F.frame(F.mold([add(100 + k, 0)], seq=6 + 2 * k))))
    if not held:
        recs.append((t0, F.frame(F.mold([], seq=6))))
    return F.pcap_bytes(recs)


def split_replies(data):
    off, out = 1, []
    while off < len(data):
        if len(data) - off < 2:
            break
        n = struct.unpack_from("<H", data, off)[0]
        off += 2
        out.append(data[off:off + n])
        off += len(out[-1])
    return out


RR = inputs("fuzz_rerequest")


@pytest.mark.parametrize("path", RR, ids=ids(RR))
def test_rerequest(path):
    data = read(path)
    if not data:
        return
    opt = data[0]
    if opt & 1:
        req = data[1:]
        got = parse_request(req)
        if len(req) != 20:
            assert got is None
        else:
            assert got == struct.unpack(">10sQH", req)
        return
    replies = split_replies(data)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(2.0)
    sent = []

    def serve():
        # The first request gets every reply of the input, in order; later
        # ones nothing (the client then times out and gives the hole up).
        try:
            _, addr = srv.recvfrom(65536)
        except OSError:
            return
        for rep in replies:
            srv.sendto(rep, addr)
            sent.append(len(rep))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = Replay(mode=MODES[(opt >> 4) & 3], rerequest=srv.getsockname(), rerequest_timeout_ms=20, **SMALL)
        res = r.run_buffer(hole_capture((opt >> 1) & 7))
        assert res.ok, res.error
        r.finish()
        st = r.stats()
    finally:
        t.join(5)
        srv.close()
    check_counters(st)
    assert len(sent) == len(replies)
    # Seq 3-5 were missing: each came back in a reply or was given up.
    assert st["recovered"] + st["gaps"] >= 3
