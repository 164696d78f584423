#!/usr/bin/env python3
"""Snapshot recovery (GLIMPSE 5.0 over SoupBinTCP 4.0): apply rate and time to a
consistent book after a late join, beside the same messages replayed as a plain
BinaryFILE (and by itch-book, when installed).

The input is synthetic and built directly (numpy, not the generator): a snapshot
of --orders live orders over --symbols instruments, as GLIMPSE sends one: per
instrument a Stock Directory (R, locate 1..S, symbol "S0001   ") and a Stock
Trading Action (H, 'T' trading), then every live order as an Add Order (A), in
increasing reference number, instruments drawn at random, prices on ~50 levels
per side around a mid per instrument.  Session "BENCH00001", End of Snapshot at
sequence SEQ.  The live capture (nanosecond pcap, MoldUDP64 on UDP port 26477)
is tiny: its first packet has sequence SEQ (a late join, so the replay asks for
the snapshot before its first packet) and it deletes some snapshot orders and
adds new ones.

Per mode (--modes, default book,publish) and run (--runs, medians), round robin:

  snapshot            GlimpseServer(snapshot).in_background() on 127.0.0.1 and
                      Replay(mode, snapshot="127.0.0.1:PORT").run_file(capture):
    fetch s           the fetch alone (r.snapshot_log "seconds": login, every
                      message over TCP, checked, End of Snapshot; Python client)
    recover ms        snapshot_recover_ns: from the lane asking to its books
                      consistent (fetch + hand-over + check + clear + apply)
    apply ms          recover - fetch: what the lane does with the snapshot (it
                      includes the hand-over: the fetching thread's pick-up, up to
                      its 1 ms poll, and the copy of the snapshot into the lane)
    apply msgs/s      snapshot_messages / apply
    fetch MB/s        snapshot bytes (u16 length + message) / fetch s
  BinaryFILE <mode>   the same snapshot messages as a plain BinaryFILE replay
                      (Replay(mode).run_buffer(blocks)): the normal decode + book
                      path, the C core's own decode-loop time (stats elapsed_s)
  itch-book nodepth / the same file given to itch-book's Session (bench_book.py's
  itch-book depth10   workers; skipped, with the reason, if it is not importable)

Every snapshot run must end with the expected live orders (orders - deletes +
adds: stats()["book"]["orders_live"]), exactly one snapshot applied with every
message, and no errors; every BinaryFILE run with every order live.  Nothing is
pinned.  The machine's CPU model line from /proc/cpuinfo is printed first.

    python scripts/bench_snapshot.py                      # 1 M orders x 8 000 symbols, 3 runs
    python scripts/bench_snapshot.py --quick --json /tmp/snap.json   # 20 000 x 200, 1 run
    python scripts/bench_snapshot.py --orders 3000000 --symbols 8000 --modes book --runs 5
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import BenchError  # noqa: E402
from feedhandler.glimpse import GlimpseServer, Snapshot  # noqa: E402
from feedhandler.replay import Replay  # noqa: E402

SESSION = "BENCH00001"
PORT = 26477
GROUP = "233.54.12.111"
SEED = 13
TS_SNAPSHOT = 34_200_000_000_000  # 09:30:00 (ns since midnight)
TS_LIVE = TS_SNAPSHOT + 1_000_000
PCAP_EPOCH_NS = 1_795_000_000 * 1_000_000_000
LEVELS = 50  # price levels per side
TICK = 100  # $0.01 in ITCH Price(4)
MSGS_PER_PACKET = 25
DATE = "2026-11-27"
QUICK = (20_000, 200, 1)
MODES = ("book", "publish")

A_DTYPE = np.dtype(
    [
        ("len", ">u2"),
        ("type", "S1"),
        ("locate", ">u2"),
        ("tracking", ">u2"),
        ("ts", "u1", (6,)),
        ("ref", ">u8"),
        ("side", "S1"),
        ("shares", ">u4"),
        ("stock", "S8"),
        ("price", ">u4"),
    ]
)
assert A_DTYPE.itemsize == 2 + 36


# ----------------------------------------------------------------- ITCH builders


def _hdr(t: bytes, locate: int, ts: int) -> bytes:
    return struct.pack(">cHH", t, locate, 0) + ts.to_bytes(6, "big")


def symbol(locate: int) -> bytes:
    return ("S%04d" % locate).encode().ljust(8)


def msg_R(locate: int, ts: int) -> bytes:
    # stock, market category, FSI, round lot, round lots only, issue class, subtype, authenticity,
    # short sale threshold, IPO flag, LULD tier, ETP flag, ETP leverage, inverse
    return _hdr(b"R", locate, ts) + struct.pack(
        ">8sccIcc2scccccIc", symbol(locate), b"Q", b"N", 100, b"N", b"C", b"Z ", b"P", b"N", b" ", b"1", b"N", 0, b"N"
    )


def msg_H(locate: int, ts: int) -> bytes:
    return _hdr(b"H", locate, ts) + struct.pack(">8scc4s", symbol(locate), b"T", b" ", b"    ")


def msg_A(ref: int, side: bytes, shares: int, locate: int, price: int, ts: int) -> bytes:
    return _hdr(b"A", locate, ts) + struct.pack(">QcI8sI", ref, side, shares, symbol(locate), price)


def msg_D(ref: int, locate: int, ts: int) -> bytes:
    return _hdr(b"D", locate, ts) + struct.pack(">Q", ref)


def mids(symbols: int) -> np.ndarray:
    """A mid price per instrument (index locate - 1): $10.00 .. $499.00, on a whole cent."""
    loc = np.arange(1, symbols + 1, dtype=np.int64)
    return (10 + (loc * 37) % 490) * 10_000


def order_fields(rng, n: int, symbols: int):
    """Locate, side (b"B"/b"S"), shares, price of n orders: instruments at random, ~LEVELS levels per side."""
    locate = rng.integers(1, symbols + 1, n, dtype=np.int64)
    buy = rng.random(n) < 0.5
    level = rng.integers(0, LEVELS, n, dtype=np.int64)
    mid = mids(symbols)[locate - 1]
    price = np.where(buy, mid - TICK * (1 + level), mid + TICK * (1 + level))
    shares = 100 * rng.integers(1, 11, n, dtype=np.int64)
    side = np.where(buy, b"B", b"S").astype("S1")
    return locate, side, shares, price


def build_synthetic_snapshot(orders: int, symbols: int, sequence: int, seed: int = SEED):
    """(Snapshot, per-order locate array): R + H per instrument, then `orders` Add Orders with
    references 1..orders (increasing), each message after its u16 big-endian length."""
    if not 1 <= symbols <= 9999:
        raise SystemExit("--symbols must be 1..9999 (symbols are S0001..S9999)")
    rng = np.random.default_rng(seed)
    head = b"".join(
        struct.pack(">H", 39) + msg_R(i, TS_SNAPSHOT) + struct.pack(">H", 25) + msg_H(i, TS_SNAPSHOT)
        for i in range(1, symbols + 1)
    )
    locate, side, shares, price = order_fields(rng, orders, symbols)
    a = np.zeros(orders, dtype=A_DTYPE)
    a["len"] = 36
    a["type"] = b"A"
    a["locate"] = locate
    a["ts"] = np.frombuffer(TS_SNAPSHOT.to_bytes(6, "big"), np.uint8)
    a["ref"] = np.arange(1, orders + 1, dtype=np.uint64)
    a["side"] = side
    a["shares"] = shares
    syms = np.array([symbol(i) for i in range(1, symbols + 1)], dtype="S8")
    a["stock"] = syms[locate - 1]
    a["price"] = price
    blocks = head + a.tobytes()
    snap = Snapshot(
        blocks=blocks,
        sequence=sequence,
        messages=2 * symbols + orders,
        session=SESSION,
        instruments=symbols,
        orders=orders,
        timestamp_ns=TS_SNAPSHOT,
    )
    return snap, locate


# ----------------------------------------------------------------- capture


def _ip_checksum(h: bytes) -> int:
    s = sum(struct.unpack(">%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(payload: bytes, dst: str = GROUP, dport: int = PORT) -> bytes:
    ip = bytes(int(x) for x in dst.split("."))
    mac = bytes([0x01, 0x00, 0x5E, ip[1] & 0x7F, ip[2], ip[3]])
    eth = mac + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", 0x0800)
    udp = struct.pack(">HHHH", 40000, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 32, 17, 0, bytes([10, 0, 0, 1]), ip)
    hdr = hdr[:10] + struct.pack(">H", _ip_checksum(hdr)) + hdr[12:]
    return eth + hdr + udp


def mold(msgs, seq: int) -> bytes:
    return (
        SESSION.encode().rjust(10)
        + struct.pack(">QH", seq, len(msgs))
        + b"".join(struct.pack(">H", len(m)) + m for m in msgs)
    )


def pcap_ns(frames) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    for ts, f in frames:
        sec, frac = divmod(ts, 1_000_000_000)
        out.append(struct.pack("<IIII", sec, frac, len(f), len(f)))
        out.append(f)
    return b"".join(out)


def build_live_capture(
    orders: int, symbols: int, locates: np.ndarray, sequence: int, deletes: int, adds: int, seed: int = SEED + 1
):
    """A late-join capture: its first packet has sequence `sequence`; it deletes `deletes`
    snapshot orders (spread over the references) and adds `adds` new ones (references
    orders+1..), interleaved, MSGS_PER_PACKET messages a packet."""
    rng = np.random.default_rng(seed)
    gone = np.sort(rng.choice(orders, size=deletes, replace=False)) + 1 if deletes else np.zeros(0, np.int64)
    loc, side, shares, price = order_fields(rng, adds, symbols)
    dmsgs = [msg_D(int(ref), int(locates[ref - 1]), 0) for ref in gone]
    amsgs = [msg_A(orders + 1 + i, side[i], int(shares[i]), int(loc[i]), int(price[i]), 0) for i in range(adds)]
    msgs = []
    for i in range(max(deletes, adds)):
        if i < deletes:
            msgs.append(dmsgs[i])
        if i < adds:
            msgs.append(amsgs[i])
    # ITCH timestamps in order
    msgs = [m[:5] + (TS_LIVE + k).to_bytes(6, "big") + m[11:] for k, m in enumerate(msgs)]
    frames, seq = [], sequence
    for k in range(0, len(msgs), MSGS_PER_PACKET):
        part = msgs[k : k + MSGS_PER_PACKET]
        frames.append((PCAP_EPOCH_NS + 1000 * len(frames), udp_frame(mold(part, seq))))
        seq += len(part)
    # a heartbeat at the end (next sequence, count 0)
    frames.append((PCAP_EPOCH_NS + 1000 * len(frames), udp_frame(mold([], seq))))
    return pcap_ns(frames), len(msgs), len(frames)


# ----------------------------------------------------------------- runs


def capacities(orders: int, symbols: int, adds: int) -> dict:
    return {
        "max_orders": int((orders + adds) * 1.25) + 1024,
        "max_instruments": symbols,
        # a side's levels live in a power-of-two block that doubles as it grows (16, 32, 64 for
        # 50 levels; the outgrown blocks are reused by other sides): room for 64 + 48 a side
        "max_levels": max(1 << 16, 8 * LEVELS * symbols),
    }


def snapshot_run(
    mode: str, capture: str, endpoint: str, caps: dict, want_live: int, want_msgs: int, snap_bytes: int
) -> dict:
    t0 = time.perf_counter()
    with Replay(mode=mode, snapshot=endpoint, silence_ms=600000, **caps) as r:
        res = r.run_file(capture, progress=False)
        r.finish()
        log = r.snapshot_log
        st = r.stats()
    wall = time.perf_counter() - t0
    if not res.ok:
        raise BenchError("snapshot %s: replay failed: %s" % (mode, res.error))
    if st["snapshots"] != 1 or st["snapshot_failures"] or st["snapshot_messages"] != want_msgs:
        raise BenchError(
            "snapshot %s: %d snapshot(s) applied, %d failure(s), %d messages (want 1, 0, %d); "
            "fetch log %s" % (mode, st["snapshots"], st["snapshot_failures"], st["snapshot_messages"], want_msgs, log)
        )
    if st.get("errors"):
        raise BenchError("snapshot %s: errors %s" % (mode, st["errors"]))
    full = {k: st["book"][k] for k in ("order_full", "level_full", "unknown_ref") if st["book"][k]}
    if full:
        raise BenchError("snapshot %s: book counters %s (capacities %s)" % (mode, full, caps))
    live = st["book"]["orders_live"]
    if live != want_live:
        raise BenchError("snapshot %s: %d live orders at the end, expected %d" % (mode, live, want_live))
    oks = [e for e in log if e.get("ok")]
    if len(oks) != 1:
        raise BenchError("snapshot %s: fetch log %s" % (mode, log))
    fetch = float(oks[0]["seconds"])
    recover = int(st["snapshot_recover_ns"])
    apply_s = max(recover / 1e9 - fetch, 1e-9)
    return {
        "fetch_s": fetch,
        "recover_ns": recover,
        "apply_s": apply_s,
        "apply_msgs_per_s": st["snapshot_messages"] / apply_s,
        "fetch_mb_per_s": snap_bytes / fetch / 1e6,
        "snapshot_messages": st["snapshot_messages"],
        "orders_live": live,
        "messages": st["messages"],
        "snapshot_buffered": st["snapshot_buffered"],
        "gaps": st["gaps"],
        "wall_s": wall,
        "attempts": oks[0].get("attempts"),
    }


def binaryfile_run(mode: str, blocks: bytes, caps: dict, want_live: int, want_msgs: int) -> dict:
    with Replay(mode=mode, **caps) as r:
        t0 = time.perf_counter()
        res = r.run_buffer(blocks)
        t1 = time.perf_counter()
        r.finish()
        st = r.stats()
    if not res.ok or res.format != "BinaryFILE":
        raise BenchError("BinaryFILE %s: %s (%s)" % (mode, res.error, res.format))
    full = {k: st["book"][k] for k in ("order_full", "level_full", "unknown_ref") if st["book"][k]}
    if st["messages"] != want_msgs or st.get("errors") or full or st["book"]["orders_live"] != want_live:
        raise BenchError(
            "BinaryFILE %s: %d messages, %d live orders, errors %s, book %s (want %d, %d)"
            % (mode, st["messages"], st["book"]["orders_live"], st.get("errors"), full, want_msgs, want_live)
        )
    return {
        "elapsed_s": st["elapsed_s"],
        "msgs_per_s": st["msgs_per_s"],
        "wall_s": t1 - t0,
        "messages": st["messages"],
        "orders_live": st["book"]["orders_live"],
    }


def itch_book_runs(path: str, want_msgs: int, runs: int, timeout: float):
    """{label: [runs]} or the reason it was skipped; plus its version."""
    import bench_book as bb

    why = bb.itch_book_available()
    if why:
        return None, why, None
    try:
        import importlib.metadata as md

        version = md.version("itch-book")
    except Exception:
        version = "?"
    out = {"itch-book nodepth": [], "itch-book depth10": []}
    for _ in range(runs):
        for label in out:
            r = bb.itch_book_run(label.split()[-1], path, DATE, None, timeout, want_msgs)
            out[label].append(
                {
                    "elapsed_s": r["elapsed_s"],
                    "msgs_per_s": r["msgs_per_s"],
                    "wall_s": r["wall_s"],
                    "messages": r["messages"],
                    "live_orders": r["stats"].get("live_orders"),
                }
            )
    return out, None, version


# ----------------------------------------------------------------- main


def main(argv=None):
    ap = benchlib.arguments(__doc__, epilog=True, json="write everything measured here")
    ap.add_argument("--orders", type=int, default=None, help="live orders in the snapshot (default 1000000)")
    ap.add_argument("--symbols", type=int, default=None, help="instruments, 1..9999 (default 8000)")
    ap.add_argument("--runs", type=int, default=None, help="runs per contender, medians (default 3)")
    ap.add_argument("--modes", default=",".join(MODES), help="Replay modes, comma separated (default book,publish)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: %d orders, %d symbols, %d run (explicit --orders/--symbols/--runs still win)" % QUICK,
    )
    ap.add_argument("--skip-itch-book", action="store_true", help="leave the itch-book rows out")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per itch-book worker")
    a = ap.parse_args(argv)
    orders = a.orders if a.orders is not None else (QUICK[0] if a.quick else 1_000_000)
    symbols = a.symbols if a.symbols is not None else (QUICK[1] if a.quick else 8000)
    runs = a.runs if a.runs is not None else (QUICK[2] if a.quick else 3)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if orders < 1 or runs < 1:
        raise SystemExit("--orders and --runs must be >= 1")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise SystemExit("--modes: each one of %s (got %r)" % (", ".join(MODES), a.modes))

    host = benchlib.machine()
    cpu = host["cpu"]
    print("cpu: %s (%d cores), %s" % (cpu, host["cores"], host["platform"]))
    sys.stdout.flush()

    deletes = adds = max(1, min(1000, orders // 20))
    sequence = 3 * orders + 1  # where the live feed continues: any late-join sequence
    t0 = time.perf_counter()
    snap, locates = build_synthetic_snapshot(orders, symbols, sequence)
    capture_bytes, live_msgs, live_packets = build_live_capture(orders, symbols, locates, sequence, deletes, adds)
    built_s = time.perf_counter() - t0
    want_live = orders - deletes + adds
    want_msgs = snap.messages
    caps = capacities(orders, symbols, adds)
    print(
        "snapshot: %s orders x %s instruments = %s messages, %.1f MB, End of Snapshot at sequence %d "
        "(built in %.2f s); live capture: %d messages (%d deletes, %d adds) in %d packets; expected live "
        "orders %s"
        % (
            format(orders, ","),
            format(symbols, ","),
            format(want_msgs, ","),
            len(snap.blocks) / 1e6,
            sequence,
            built_s,
            live_msgs,
            deletes,
            adds,
            live_packets,
            format(want_live, ","),
        )
    )
    sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="fh-bench-snapshot-")
    results = {
        "machine": {
            "cpu": cpu,
            "cores": host["cores"],
            "platform": host["platform"],
            "python": host["python"],
            "loadavg_start": os.getloadavg(),
            "pinned": None,
        },
        "args": {"orders": orders, "symbols": symbols, "runs": runs, "modes": modes, "quick": a.quick},
        "snapshot": {
            "session": SESSION,
            "sequence": sequence,
            "orders": orders,
            "instruments": symbols,
            "messages": want_msgs,
            "bytes": len(snap.blocks),
            "levels_per_side": LEVELS,
        },
        "live": {"messages": live_msgs, "deletes": deletes, "adds": adds, "packets": live_packets, "port": PORT},
        "expected_orders_live": want_live,
        "capacities": caps,
        "modes": {},
        "baseline": {},
    }
    try:
        capture = os.path.join(tmp, "late.pcap")
        with open(capture, "wb") as f:
            f.write(capture_bytes)
        binfile = os.path.join(tmp, "snapshot.bin")
        with open(binfile, "wb") as f:
            f.write(snap.blocks)

        snap_runs = {m: [] for m in modes}
        bin_runs = {m: [] for m in modes}
        srv = GlimpseServer(snap)
        with srv.in_background():
            endpoint = "%s:%d" % srv.address
            for k in range(runs):
                for m in modes:
                    print("run %d/%d: snapshot %s ..." % (k + 1, runs, m), file=sys.stderr)
                    snap_runs[m].append(
                        snapshot_run(m, capture, endpoint, caps, want_live, want_msgs, len(snap.blocks))
                    )
                    print("run %d/%d: BinaryFILE %s ..." % (k + 1, runs, m), file=sys.stderr)
                    bin_runs[m].append(binaryfile_run(m, snap.blocks, caps, orders, want_msgs))
        served = srv.stats()
        results["server"] = {k: served[k] for k in ("snapshots_served", "messages_sent", "bytes_sent")}

        ib, ib_why, ib_version = (
            (None, "--skip-itch-book", None)
            if a.skip_itch_book
            else itch_book_runs(binfile, want_msgs, runs, a.timeout)
        )
        results["itch_book"] = {"skipped": ib_why, "version": ib_version}
        if ib_why:
            print("note: itch-book skipped: %s" % ib_why, file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- summaries
    for m in modes:
        rs = snap_runs[m]
        results["modes"][m] = {
            "fetch_s": benchlib.median(rs, "fetch_s"),
            "recover_ns": benchlib.median(rs, "recover_ns"),
            "apply_s": benchlib.median(rs, "apply_s"),
            "apply_msgs_per_s": benchlib.median(rs, "apply_msgs_per_s"),
            "fetch_mb_per_s": benchlib.median(rs, "fetch_mb_per_s"),
            "snapshot_messages": rs[-1]["snapshot_messages"],
            "orders_live": rs[-1]["orders_live"],
            "expected_orders_live": want_live,
            "runs": rs,
        }
        bs = bin_runs[m]
        results["baseline"]["BinaryFILE " + m] = {
            "elapsed_s": benchlib.median(bs, "elapsed_s"),
            "msgs_per_s": benchlib.median(bs, "msgs_per_s"),
            "wall_s": benchlib.median(bs, "wall_s"),
            "messages": bs[-1]["messages"],
            "orders_live": bs[-1]["orders_live"],
            "runs": bs,
        }
    for label, rs in (ib or {}).items():
        results["baseline"][label] = {
            "elapsed_s": benchlib.median(rs, "elapsed_s"),
            "msgs_per_s": benchlib.median(rs, "msgs_per_s"),
            "wall_s": benchlib.median(rs, "wall_s"),
            "messages": rs[-1]["messages"],
            "orders_live": rs[-1]["live_orders"],
            "runs": rs,
        }
    results["machine"]["loadavg_end"] = os.getloadavg()

    # ---- table
    print()
    print(
        "%d run(s), medians; %s messages per snapshot, %.1f MB" % (runs, format(want_msgs, ","), len(snap.blocks) / 1e6)
    )
    print(
        "%-22s %9s %11s %10s %13s %10s %12s"
        % ("", "fetch s", "recover ms", "apply ms", "apply msgs/s", "fetch MB/s", "orders live")
    )
    for m in modes:
        r = results["modes"][m]
        print(
            "%-22s %9.3f %11.1f %10.1f %13s %10.1f %12s"
            % (
                "snapshot " + m,
                r["fetch_s"],
                r["recover_ns"] / 1e6,
                r["apply_s"] * 1e3,
                "%.2f M" % (r["apply_msgs_per_s"] / 1e6),
                r["fetch_mb_per_s"],
                format(r["orders_live"], ","),
            )
        )
    for label, r in results["baseline"].items():
        print(
            "%-22s %9s %11s %10.1f %13s %10s %12s"
            % (
                label,
                "-",
                "-",
                r["elapsed_s"] * 1e3,
                "%.2f M" % (r["msgs_per_s"] / 1e6),
                "-",
                format(r["orders_live"], ",") if r.get("orders_live") is not None else "-",
            )
        )
    if ib_why:
        print("itch-book: skipped (%s)" % ib_why)
    elif ib_version:
        print("itch-book %s: Session fed the BinaryFILE (bench_book.py's workers)" % ib_version)
    for m in modes:
        b = results["baseline"]["BinaryFILE " + m]["elapsed_s"]
        r = results["modes"][m]
        print(
            "snapshot %s: apply %.2fx the plain BinaryFILE %s replay's time; time to a consistent book "
            "%.1f ms, %.0f%% of it the fetch"
            % (m, r["apply_s"] / b, m, r["recover_ns"] / 1e6, 100 * r["fetch_s"] / (r["recover_ns"] / 1e9))
        )
    if a.json:
        benchlib.write_json(a.json, results)
        print("json: %s" % a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
