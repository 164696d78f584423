"""Every fuzzing seed and every input that once crashed a harness
(tests/fuzz/corpus/<harness>/, tests/fuzz/regressions/<harness>/), fed through
the Python API the way the harness feeds it to C (fuzz/fuzz_*.c say how their
inputs are laid out), with the harness's invariants that Python can reach:
each must complete with counters that add up.  Cheap and deterministic; under
scripts/test.sh's second pass it runs with ASan + UBSan.  Every harness in
fuzz/ has a replay here, and every corpus directory belongs to one
(test_every_harness_and_corpus_is_replayed).

  fuzz_frames     frames -> an in-memory pcap -> Replay.run_buffer (+ finish),
                  and each frame through decode_frame (no session state)
  fuzz_sources    the file -> Replay.run_buffer, or run_file for gzip
  fuzz_rerequest  server side: rewind.parse_request; client side: a replay of
                  the harness's stream with a hole, its re-request answered by
                  a UDP server sending the input's replies
  fuzz_soup       the TCP byte stream framed in one buffer (fh_soup_frame, as
                  the harness) and in the harness's pieces through
                  soup.Framer: the same packets, stopping at the same point;
                  Login Accepted and End of Snapshot fields parsed
  fuzz_snapshot   a replay of the harness's live stream (late join, or a book
                  then a hole) with a snapshot server: a local SoupBinTCP server
                  sends the input's byte stream to the replay's own GLIMPSE
                  client (glimpse.fetch_snapshot via the snapshot service);
                  the snapshot is applied whole or not at all
  fuzz_pitch      the PITCH unit walked by fh_pitch_walk_unit into the
                  input's capacity, every stored message re-decoded alone; a
                  clean unit also replayed as a datagram through a PITCH
                  channel against the pure-Python reference (tests/pitchref.py)
  fuzz_iex        the IEX-TP datagrams in frames to line A or B -> an
                  in-memory pcap -> Replay.run_buffer (+ finish), with the
                  harness's channel config when its option bit says so
"""

import glob
import importlib
import os
import socket
import struct
import threading
from collections import Counter

import pytest

import frames as F
from feedhandler import soup
from feedhandler.config import Channel
from feedhandler.core import decode_frame, ffi, ledger, lib, type_key
from feedhandler.replay import Replay
from feedhandler.rewind import parse_request
from pitchref import PitchRef
from refbook import STRICT_KEYS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DIRS = [os.path.join(HERE, "fuzz", kind) for kind in ("corpus", "regressions")]
MODES = {0: "publish", 1: "book", 2: "decode", 3: "publish"}
SMALL = dict(
    max_orders=1024,
    max_levels=4096,
    max_instruments=64,
    depth=5,
    ring_events=1024,
    gap_window_us=200,
    gap_buffer=8,
    silence_ms=5,
    max_streams=4,
)


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


def split_records(data, limit=65535):
    """(option byte, [(control byte, bytes)]) of a harness input laid out as
    fuzz_frames.c and fuzz_iex.c read it: after the option byte, (u16 LE
    length, a control byte, that many bytes) per record, the last one cut to
    what is left, each at most `limit` bytes."""
    opt, off, out = data[0], 1, []
    while len(data) - off >= 3:
        n, ctl = struct.unpack_from("<HB", data, off)
        off += 3
        rec = data[off : off + min(n, limit)]
        out.append((ctl, rec))
        off += len(rec)
    return opt, out


def split_frames(data):
    """(options, [(receive time ns, frame)]) as fuzz_frames.c reads its input:
    the control byte is the receive-time step (x 10 us)."""
    opt, recs = split_records(data)
    rx, out = 1700000000 * 10**9, []
    for step, f in recs:
        rx += step * 10000
        out.append((rx, f))
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
        return F.msg_A(ref=ref, side=b"BS"[i & 1 : (i & 1) + 1], price=1000000 + (i & 1) * 100, stock=b"FUZZ    ", ts=0)

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
        out.append(data[off : off + n])
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
    srv.settimeout(0.05)
    sent = []
    done = threading.Event()

    def serve():
        # The first request gets every reply of the input, in order; later
        # ones nothing (the client then times out and gives the hole up).
        # Waits for it until the replay is over, however long it takes to start.
        while not done.is_set():
            try:
                _, addr = srv.recvfrom(65536)
                break
            except socket.timeout:
                continue
            except OSError:
                return
        else:
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
        done.set()
        t.join(60)
        srv.close()
    check_counters(st)
    assert len(sent) == len(replies)
    # Seq 3-5 were missing: each came back in a reply or was given up.
    assert st["recovered"] + st["gaps"] >= 3


# -------------------------------------------------------------------- soup


def soup_frame_all(p, server):
    """[(type, payload, offset)] and the last return code, framing one
    exact-size buffer with fh_soup_frame as fuzz_soup.c's frame_all does."""
    buf = ffi.new("uint8_t[]", p) if p else ffi.new("uint8_t[]", 1)
    pkt = ffi.new("fh_soup_pkt_t *")
    off, out = 0, []
    while True:
        rc = lib.fh_soup_frame(buf + off, len(p) - off, server, pkt)
        if rc <= 0:
            return out, rc
        assert rc <= len(p) - off, "a packet of %d bytes past the %d given" % (rc, len(p) - off)
        assert pkt.payload == buf + off + 3 and pkt.len + 3 == rc, "payload misplaced"
        out.append((bytes([pkt.type]), p[off + 3 : off + rc], off))
        off += rc


def soup_pieces(p, seed):
    """The sizes fuzz_soup.c's input arrives in (its LCG, 1..7 bytes)."""
    arrived, out = 0, []
    while arrived < len(p):
        seed = (seed * 1103515245 + 12345) & 0xFFFFFFFF
        piece = min(1 + (seed >> 16) % 7, len(p) - arrived)
        out.append(p[arrived : arrived + piece])
        arrived += piece
    return out


SOUP = inputs("fuzz_soup")


@pytest.mark.parametrize("path", SOUP, ids=ids(SOUP))
def test_soup(path):
    data = read(path)
    if not data:
        return
    server = data[0] & 1
    p = data[1:]
    whole, end = soup_frame_all(p, server)
    consumed = sum(3 + len(pl) for _, pl, _ in whole)
    # The fixed-size packets have their size; the field parsers take what comes.
    for typ, pl, _ in whole:
        if typ == soup.LOGIN_ACCEPTED:
            assert len(pl) == 30
            try:
                soup.login_accepted(pl)
            except soup.SoupError:
                pass
        if typ == soup.SEQUENCED and pl:
            try:
                soup.end_of_snapshot(pl)
            except soup.SoupError:
                pass
    # The same stream through the Python framer: in one buffer ...
    fr = soup.Framer(from_server=bool(server))
    if end < 0:
        with pytest.raises(soup.SoupError):
            fr.feed(p)
    else:
        assert fr.feed(p) == [(t, pl) for t, pl, _ in whole] and fr.pending == len(p) - consumed
    assert fr.packets == len(whole)
    # ... and in the harness's pieces, kept as a reader keeps them: the same
    # packets, stopping at the same point.
    fr = soup.Framer(from_server=bool(server))
    got, err = [], None
    for piece in soup_pieces(p, (data[0] >> 1) & 7):
        try:
            got += fr.feed(piece)
        except soup.SoupError as exc:
            err = exc
            break
    assert fr.packets == len(whole), "%d packets in one buffer, %d in pieces" % (len(whole), fr.packets)
    assert got == [(t, pl) for t, pl, _ in whole][: len(got)]
    assert (err is not None) == (end < 0), "one buffer ended %d, pieces %r" % (end, err)
    if err is None:
        assert len(got) == len(whole) and fr.pending == len(p) - consumed
    if "/corpus/" in path:
        # The seeds are whole, valid conversations: every packet reaches the framer.
        assert end == 0 and consumed == len(p) and len(whole) >= 3
        assert {t for t, _, _ in whole} >= ({b"A", b"S"} if server else {b"L", b"O"})


# ---------------------------------------------------------------- snapshot

FUZZ_SESSION = b"TESTSESS01"


def fuzz_add(ref, i):
    """The Add Order of fuzz_common.h's fuzz_mold_adds (locate 1, FUZZ)."""
    return F.msg_A(ref=ref, side=b"BS"[i & 1 : (i & 1) + 1], price=1000000 + (i & 1) * 100, stock=b"FUZZ    ", ts=0)


def snapshot_capture(had_book, live):
    """The stream fuzz_snapshot.c sets up: with a book, seq 1-2 applied first;
    then `live` packets at seq 6, 8, ... (one add each), 10 ms apart."""
    rx = 1700000000 * 10**9
    recs = [(rx, F.frame(F.mold([fuzz_add(1, 0), fuzz_add(2, 1)], seq=1)))] if had_book else []
    for k in range(live):
        recs.append((rx + 10_000_000 * k, F.frame(F.mold([fuzz_add(100 + k, 0)], seq=6 + 2 * k))))
    return F.pcap_bytes(recs)


def snapshot_of_stream(p):
    """(End of Snapshot seen, its sequence, messages before it) as
    fuzz_snapshot.c frames the server's stream: sequenced data packets with a
    payload are the snapshot's messages up to the first valid End of
    Snapshot; framing stops at the first error."""
    fr = soup.Framer(from_server=True)
    blocks = 0
    pkts = []
    for i in range(len(p)):  # byte by byte: the packets before an error count
        try:
            pkts += fr.feed(p[i : i + 1])
        except soup.SoupError:
            break
    for typ, pl in pkts:
        if typ == soup.SEQUENCED and pl:
            try:
                return True, soup.end_of_snapshot(pl), blocks
            except soup.SoupError:
                blocks += 1
    return False, 0, blocks


class SoupServer:
    """Sends the input's byte stream, as a GLIMPSE server would, to every
    client once it has read the login request, then ends its side (the
    harness's stream ends there too: a stream without End of Snapshot is a
    closed connection at once, not a wait for the client's timeout) and waits
    for the client to hang up."""

    def __init__(self, data):
        self.data = data
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = self.sock.getsockname()
        self.connections = 0
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                c.settimeout(60)
                c.recv(49)
                c.sendall(self.data)
                c.shutdown(socket.SHUT_WR)
                while c.recv(4096):
                    pass
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.sock.close()
        self._t.join(5)


# What each committed seed does: its snapshot applied; refused (not fetched
# whole, or refused by the lane: nothing of it applied); or none: gap_ok's
# stream (a book, then one live packet past a hole) gives the hole up only at
# the end of the input, which takes no snapshot (in the harness too: no
# request is pending when it looks, so it posts nothing).  gap_repaired is
# gap_ok with two live packets: the second, 10 ms on, ends the hole's window
# and the gap is repaired from the snapshot.
SNAPSHOT_SEEDS = {
    "late_ok": "applied",
    "late_ok_publish": "applied",
    "heartbeats": "applied",
    "gap_repaired": "applied",
    "bad_msg": "refused",
    "no_end": "refused",
    "past": "refused",
    "gap_ok": "none",
}
SNAP = inputs("fuzz_snapshot")


@pytest.mark.parametrize("path", SNAP, ids=ids(SNAP))
def test_snapshot(path):
    data = read(path)
    if not data:
        return
    opt = data[0]
    had_book, live = bool(opt & 2), 1 + ((opt >> 2) & 3)
    have_eos, eos_seq, nblocks = snapshot_of_stream(data[1:])
    srv = SoupServer(data[1:])
    try:
        # The lane waits as long as only a hung fetch would take (each try then has
        # 30 s, its reads 5 s): a snapshot the server sends whole is applied
        # however slow the machine, and one it does not ends with the connection.
        r = Replay(
            mode="book" if opt & 1 else "publish", snapshot="%s:%d" % srv.address, snapshot_timeout_ms=120_000, **SMALL
        )
        try:
            res = r.run_buffer(snapshot_capture(had_book, live))
            assert res.ok, res.error
            r.finish()
            st = r.stats()
            log = r.snapshot_log
            if r.mode == "publish":
                check_segment(r, st)
        finally:
            r.close()
    finally:
        srv.close()
    check_counters(st)
    assert st["pkt_held"] == 0 and ledger(st)["unaccounted"] == 0
    for e in log:  # requests for the harness's stream only
        assert e["port"] == 26477 and e["session"] == FUZZ_SESSION.decode() and e["next_seq"] >= 3
        if e["ok"]:
            assert have_eos and e["sequence"] == eos_seq and e["messages"] == nblocks
    # Applied whole (every time the same server answered) or not at all.
    if st["snapshots"]:
        assert have_eos and st["snapshot_messages"] == st["snapshots"] * nblocks
    elif log:
        assert st["snapshot_failures"] >= 1 and st["snapshot_messages"] == 0
        assert st["book"]["adds"] <= live + (2 if had_book else 0), "adds from a refused snapshot"
    want = SNAPSHOT_SEEDS.get(os.path.basename(path)) if "/corpus/" in path else None
    if want == "applied":
        assert log and log[0]["ok"] and st["snapshots"] >= 1 and nblocks > 0
        assert log[0]["next_seq"] == (3 if had_book else 6)  # the hole, or the late join
        assert st["book"]["adds"] >= nblocks - 1  # its adds reached the book (one message is R)
    elif want == "refused":
        assert log and st["snapshots"] == 0 and st["snapshot_failures"] >= 1
    elif want == "none":
        assert not log and st["snapshots"] == 0 and st["gaps"] == 3


def check_segment(r, st):
    """The segment as a reader sees it at rest: every slot reads back, its
    counters are the replay's, no ring yields more than it holds."""
    seg = r.segment()
    a = seg.copy_books()
    assert len(a) == seg.n_slots
    c = seg.counters()
    assert (c["messages"], c["packets"], c["by_type"]) == (st["messages"], st["packets"], st["by_type"])
    assert len(seg.events(1 << 20)) <= seg.ring_capacity * seg.n_lanes


# ------------------------------------------------------------------- pitch

PITCH_ERRS = (
    "TRUNCATED",
    "HDR_LENGTH",
    "COUNT_OVERRUN",
    "ZERO_LENGTH",
    "MSG_OVERRUN",
    "UNKNOWN_TYPE",
    "BAD_LENGTH",
    "TRAILING",
    "OUT_FULL",
)
PITCH_GROUP, PITCH_PORT = "224.0.62.2", 30001


def pitch_api():
    """(ffi, lib) of the PITCH reference decoder fuzz_pitch.c fuzzes: the test
    hooks (feedhandler._probe), or the core in builds that still hold it."""
    for name in ("feedhandler._probe", "feedhandler._core"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod.lib, "fh_pitch_walk_unit"):
            return mod.ffi, mod.lib
    pytest.fail("no fh_pitch_walk_unit in feedhandler._probe or feedhandler._core")


def pitch_walk(p, cap):
    """fh_pitch_walk_unit on an exact-size copy: (stored messages, header, errors by name)."""
    ffi, lib = pitch_api()
    buf = ffi.new("uint8_t[]", p) if p else ffi.new("uint8_t[]", 1)
    hdr = ffi.new("fh_pitch_unit_t *")
    out = ffi.new("fh_pitch_msg_t[]", max(cap, 1))
    errors = ffi.new("uint64_t[]", lib.FH_PITCH_ERR__COUNT)
    got = lib.fh_pitch_walk_unit(buf, len(p), hdr, out if cap else ffi.NULL, cap, errors)
    errs = {name: int(errors[getattr(lib, "FH_PITCH_ERR_" + name)]) for name in PITCH_ERRS}
    return [bytes(ffi.buffer(out + i)) for i in range(got)], hdr, errs


PITCH = inputs("fuzz_pitch")


@pytest.mark.parametrize("path", PITCH, ids=ids(PITCH))
def test_pitch(path, tmp_path):
    data = read(path)
    if not data:
        return
    cap, p = data[0] & 15, data[1:]
    n = len(p)
    ffi, lib = pitch_api()
    got, hdr, errs = pitch_walk(p, cap)
    assert len(got) <= cap
    if n < 8:
        assert got == [] and errs["TRUNCATED"] == 1
        return
    assert len(got) <= hdr.count
    assert (hdr.length != n) == (errs["HDR_LENGTH"] != 0)
    # Every stored message is a whole, known, exact-length message of the
    # payload, in order, and decodes alone to the same fields.
    off, k, m = 8, 0, ffi.new("fh_pitch_msg_t *")
    for _ in range(hdr.count):
        if off >= n or k >= len(got):
            break
        ln = p[off]
        if ln < 2 or ln > n - off:
            break
        if lib.fh_pitch_decode(ffi.new("uint8_t[]", p[off : off + ln]), ln, m) == lib.FH_DECODE_OK:
            assert bytes(ffi.buffer(m)) == got[k], "message %d differs from its own decode" % k
            k += 1
        off += ln
    assert k == len(got), "%d stored, %d found again" % (len(got), k)
    # A clean unit (walks whole, sequenced or a heartbeat) through the
    # pipeline on a PITCH channel: what the walker found is what it counts,
    # and its books are the reference's.
    full, hdr, errs = pitch_walk(p, 255)
    clean = not any(errs.values()) and (hdr.sequence or not hdr.count)
    if "/corpus/" in path:
        assert clean and len(full) == hdr.count, "a seed that does not walk whole"
    if not clean:
        return
    ch = Channel(name="pitch", line_a=(PITCH_GROUP, PITCH_PORT), line_b=None, rerequest=None, core=0, protocol="pitch")
    rec = [(1700000000 * 10**9, F.frame(p, dst=PITCH_GROUP, dport=PITCH_PORT))]
    with Replay(
        mode="book", channels=[ch], max_instruments=65535, **{k: v for k, v in SMALL.items() if k != "max_instruments"}
    ) as r:
        res = r.run_buffer(F.pcap_bytes(rec))
        assert res.ok, res.error
        r.finish()
        st = r.stats()
        r.dump_books(str(tmp_path / "books.csv"), depth=64)
    books = (tmp_path / "books.csv").read_text()
    check_counters(st)
    types = Counter(type_key(b[0]) for b in full)  # type: the first field
    assert (st["pitch_packets"], st["messages"], st["by_type"]) == (1, len(full), dict(types))
    assert st["heartbeats"] == (0 if hdr.count else 1)
    ref = PitchRef(ports=[PITCH_PORT]).feed_records(rec).finish()
    # --dump-books writes a symbol's bytes that would break the CSV as '?'.
    ref.book.symbols = {
        loc: "".join(c if 32 < ord(c) < 127 and c not in ',"' else "?" for c in sym.rstrip(" \0"))
        for loc, sym in ref.book.symbols.items()
    }
    assert books == ref.dump_csv(64)
    want = ref.stats()
    assert {k: st[k] for k in ("messages", "by_type", "duplicates", "heartbeats", "gaps", "pitch_packets")} == {
        k: want[k] for k in ("messages", "by_type", "duplicates", "heartbeats", "gaps", "pitch_packets")
    }
    assert st["errors"] == {k: v for k, v in want["errors"].items() if v}
    # An add with both a bad side and zero shares or price counts as
    # zero_rejected in the C book and as bad_side in RefBook (its documented
    # order of checks: side, then zero): the two are compared as one (the
    # add is refused either way, the books are the same).
    keys = [k for k in STRICT_KEYS if k not in ("bad_side", "zero_rejected")]
    want_book = ref.book.book_counters(keys)
    assert {k: st["book"][k] for k in keys} == want_book
    assert (
        st["book"]["bad_side"] + st["book"]["zero_rejected"]
        == ref.book.counters["bad_side"] + ref.book.counters["zero_rejected"]
    )


# --------------------------------------------------------------------- IEX

IEX_A, IEX_B, IEX_PORT = "233.215.21.4", "233.215.21.132", 10378


def split_iex(data):
    """(options, [(receive time ns, frame)]) as fuzz_iex.c reads its input: each
    UDP payload in a frame to line A or B (the control byte's bit 0; its other
    bits the receive-time step)."""
    opt, recs = split_records(data, limit=65535 - 28)
    rx, out = 1700000000 * 10**9, []
    for ctl, p in recs:
        rx += (ctl >> 1) * 10000
        out.append((rx, F.frame(p, dst=IEX_B if ctl & 1 else IEX_A, dport=IEX_PORT, src="23.226.155.128", sport=10000)))
    return opt, out


IEX = inputs("fuzz_iex")


@pytest.mark.parametrize("path", IEX, ids=ids(IEX))
def test_iex(path):
    data = read(path)
    if not data:
        return
    opt, recs = split_iex(data)
    kw = {k: v for k, v in SMALL.items() if k != "max_instruments"}
    channels = []
    if opt & 4:
        channels = [
            Channel(
                name="iex",
                line_a=(IEX_A, IEX_PORT),
                line_b=(IEX_B, IEX_PORT),
                rerequest=None,
                core=0,
                protocol="iex",
            )
        ]
    with Replay(mode=MODES[opt & 3], channels=channels, max_instruments=65535, **kw) as r:
        res = r.run_buffer(F.pcap_bytes(recs, ns=True))
        assert res.ok, res.error
        r.finish()
        st = r.stats()
    check_counters(st)
    assert st["packets"] == len(recs)
    assert ledger(st)["unaccounted"] == 0
    assert st["iex_packets"] <= st["packets"]
    assert all(k.startswith("iex_") for k in st["by_type"]), st["by_type"]
    if "/corpus/" in path:
        # The seeds are clean segments: every one is IEX-TP, none rejected.
        assert st["iex_packets"] == len(recs) and not st["errors"].keys() - {"iex_price_range"}, st


# ---------------------------------------------------------------- coverage

REPLAYS = {
    "fuzz_frames": test_frames,
    "fuzz_sources": test_sources,
    "fuzz_rerequest": test_rerequest,
    "fuzz_soup": test_soup,
    "fuzz_snapshot": test_snapshot,
    "fuzz_pitch": test_pitch,
    "fuzz_iex": test_iex,
}


def test_every_harness_and_corpus_is_replayed():
    """A harness added to fuzz/, or a corpus directory added under
    tests/fuzz/, without a replay here fails this (a seventh harness cannot be
    added silently); so does a harness whose seeds went missing."""
    harnesses = {os.path.basename(c)[:-2] for c in glob.glob(os.path.join(ROOT, "fuzz", "*.c"))}
    assert harnesses == set(REPLAYS), "harnesses in fuzz/ %s, replayed here %s" % (sorted(harnesses), sorted(REPLAYS))
    for d in DIRS:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            assert os.path.isdir(os.path.join(d, name)), "%s/%s is not a harness directory" % (d, name)
            assert name in REPLAYS, "%s/%s: no replay of harness %r here" % (d, name, name)
    for harness in REPLAYS:
        seeds = [p for p in inputs(harness) if "/corpus/" in p]
        assert seeds, "no seeds for %s in tests/fuzz/corpus/%s" % (harness, harness)
