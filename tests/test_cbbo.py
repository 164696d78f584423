"""The consolidated best bid and offer across venues (ITCH on XNAS, PITCH on two
Cboe venues), maintained by the writer threads in the segment's table: checked
against a reference computed from the per-venue books of the --dump-books CSV,
at one core and two, and against the EV_CBBO events a single lane reported."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("scapy")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frames as F  # noqa: E402
from feedhandler import scapy_pitch as S  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_700_000_000 * 1_000_000_000
SYMS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
PITCH_GROUPS = {"BZX": ("224.0.62.2", 30001), "EDGX": ("224.0.63.2", 30003)}

CONFIG = """
[[channel]]
name = "nasdaq"
line_a = "%s:%d"
venue = "XNAS"
core = 0

[[channel]]
name = "bzx"
line_a = "224.0.62.2:30001"
protocol = "pitch"
venue = "BZX"
core = %d

[[channel]]
name = "edgx"
line_a = "224.0.63.2:30003"
protocol = "pitch"
venue = "EDGX"
core = 0
"""


def msg_R(locate, stock):
    return struct.pack(
        ">cHH6s8sccIcc2scccccIc",
        b"R",
        locate,
        0,
        b"\0" * 6,
        stock.ljust(8).encode(),
        b"Q",
        b"N",
        100,
        b"N",
        b"C",
        b"  ",
        b"P",
        b"N",
        b"N",
        b"1",
        b"N",
        0,
        b"N",
    )


def capture(seed=5, n=400):
    """Random adds and deletes on the same 6 symbols on all three venues, with
    prices on a shared grid so that venues tie and cross."""
    rnd = random.Random(seed)
    recs, t = [], T0
    # ITCH: directory first.
    seq = 1
    recs.append((t, F.frame(F.mold([msg_R(i + 1, s) for i, s in enumerate(SYMS)], seq=seq), dport=F.PORT)))
    seq += len(SYMS)
    live = {"XNAS": [], "BZX": [], "EDGX": []}
    pseq = {"BZX": 1, "EDGX": 1}
    ref = 1000
    for k in range(n):
        t += 50_000
        venue = rnd.choice(["XNAS", "BZX", "EDGX"])
        if live[venue] and rnd.random() < 0.35:
            r, _ = live[venue].pop(rnd.randrange(len(live[venue])))
            if venue == "XNAS":
                recs.append((t, F.frame(F.mold([F.msg_D(ref=r, locate=1)], seq=seq), dport=F.PORT)))
                seq += 1
            else:
                g, port = PITCH_GROUPS[venue]
                body = bytes(S.PitchDeleteOrder(time_offset=k, order_id=r))
                recs.append((t, F.frame(S.pitch_datagram(1, pseq[venue], [body]), dst=g, dport=port)))
                pseq[venue] += 1
            continue
        ref += 1
        i = rnd.randrange(len(SYMS))
        side = rnd.choice("BS")
        price = 100_0000 + rnd.randrange(-5, 6) * 100 + (300 if side == "S" else 0)
        qty = rnd.choice([100, 200, 300])
        live[venue].append((ref, SYMS[i]))
        if venue == "XNAS":
            m = F.msg_A(
                ref=ref, side=side.encode(), shares=qty, stock=SYMS[i].ljust(8).encode(), price=price, locate=i + 1
            )
            recs.append((t, F.frame(F.mold([m], seq=seq), dport=F.PORT)))
            seq += 1
        else:
            g, port = PITCH_GROUPS[venue]
            body = bytes(
                S.PitchAddOrderLong(
                    time_offset=k, order_id=ref, side_indicator=side, quantity=qty, symbol=SYMS[i], price=price
                )
            )
            recs.append((t, F.frame(S.pitch_datagram(1, pseq[venue], [body]), dst=g, dport=port)))
            pseq[venue] += 1
    return recs


def reference(csv_text, venues):
    """symbol -> (bid px, bid sh, bid venue, ask px, ask sh, ask venue) from the
    per-venue level 1 rows: best price, then larger size, then lower venue index."""
    tops = {}
    for line in csv_text.splitlines()[1:]:
        loc, sym, side, level, price, shares, orders, venue = line.split(",")
        if level == "1":
            tops.setdefault(sym, {}).setdefault(venue, {})[side] = (int(price), int(shares))
    out = {}
    for sym, per in tops.items():
        best_b = best_a = None
        for v in venues:
            if v not in per:
                continue
            if "B" in per[v]:
                p, q = per[v]["B"]
                if best_b is None or (p, q) > (best_b[0], best_b[1]):
                    best_b = (p, q, v)
            if "S" in per[v]:
                p, q = per[v]["S"]
                if best_a is None or (-p, q) > (-best_a[0], best_a[1]):
                    best_a = (p, q, v)
        best_b, best_a = best_b or (0, 0, ""), best_a or (0, 0, "")
        out[sym] = best_b + best_a
    return out


def run(tmp_path, recs, cores):
    pcap = tmp_path / "cbbo.pcap"
    pcap.write_bytes(F.pcap_bytes(sorted(recs, key=lambda r: r[0])))
    cfg = tmp_path / "cbbo.toml"
    cfg.write_text(CONFIG % (F.GROUP_A, F.PORT, 1 if cores == "0,1" else 0))
    dump = tmp_path / ("books-%s.csv" % cores)
    name = "fhcbbo-" + uuid.uuid4().hex[:8]
    cmd = [
        sys.executable,
        "-m",
        "feedhandler",
        "replay",
        str(pcap),
        "--config",
        str(cfg),
        "--shm",
        name,
        "--dump-books",
        str(dump),
        "-q",
        "--silence-ms",
        "600000",
    ]
    if cores == "0,1":
        cmd += ["--cores", cores]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return dump.read_text(), name


@pytest.mark.parametrize("cores", ["0", "0,1"])
def test_consolidated_bbo_equals_the_venues_tops(tmp_path, cores):
    if cores == "0,1" and (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    from feedhandler.shm import EV_CBBO, attach

    text, name = run(tmp_path, capture(), cores)
    assert text.splitlines()[0].endswith(",venue")
    seg = attach(name)
    try:
        venues = seg.venues()
        assert venues[:3] == ["XNAS", "BZX", "EDGX"]
        want = reference(text, venues)
        assert len(want) == len(SYMS)
        for sym in SYMS:
            b = seg.bbo(sym)
            got = (b["bid_price"], b["bid_shares"], b["bid_venue"], b["ask_price"], b["ask_shares"], b["ask_venue"])
            assert got == want[sym], sym
            # Each venue's part equals that venue's own book.
            for v, (bp, bs, ap, as_) in b["venues"].items():
                snap = seg.book(sym, venue=v)
                (sbp, sbs, _), (sap, sas, _) = snap.bids, snap.asks
                assert (bp, bs) == ((int(sbp[0]), int(sbs[0])) if len(sbp) else (0, 0)), (sym, v)
                assert (ap, as_) == ((int(sap[0]), int(sas[0])) if len(sap) else (0, 0)), (sym, v)
        if cores == "0":
            # One lane saw every change: its last EV_CBBO per symbol is the final state.
            ev = seg.events(1 << 20)
            c = ev[ev["type"] == EV_CBBO]
            assert len(c) > 0
            names = seg.symbols()
            last = {}
            for e in c:
                last[names[int(e["locate"])]] = e
            for sym in SYMS:
                e = last[sym]
                bv, av = int(e["aux"]) & 0xF, int(e["aux"]) >> 4
                got = (
                    int(e["price1"]),
                    int(e["qty1"]),
                    venues[bv] if bv != 0xF else "",
                    int(e["price2"]),
                    int(e["qty2"]),
                    venues[av] if av != 0xF else "",
                )
                assert got == want[sym], sym
    finally:
        seg.close()
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass


def test_book_cli_venue_and_bbo(tmp_path):
    text, name = run(tmp_path, capture(seed=6, n=120), "0")
    try:
        p = subprocess.run(
            [sys.executable, "-m", "feedhandler", "book", "AAA", "--shm", name, "--once"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert p.returncode != 0 and "several venues" in p.stderr and "venue" in p.stderr
        p = subprocess.run(
            [sys.executable, "-m", "feedhandler", "book", "AAA", "--shm", name, "--venue", "EDGX", "--once"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0 and "AAA" in p.stdout, p.stderr
        p = subprocess.run(
            [sys.executable, "-m", "feedhandler", "book", "AAA", "--shm", name, "--bbo"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0 and "consolidated" in p.stdout and "EDGX" in p.stdout, p.stderr
    finally:
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass


def test_without_a_config_consolidation_starts_when_a_second_venue_appears(tmp_path):
    """No config: ITCH (XNAS) and PITCH (BATS) told apart from the data; the
    writers turn the consolidated table on once both venues have streams, and
    write every instrument's top then, so the final consolidated BBO equals the
    venues' books even for instruments quoted before the switch.  An ITCH-only
    run never turns it on."""
    from feedhandler.shm import attach

    recs = [r for r in capture(seed=7) if b"\xe0\x00\x3f\x02" not in r[1][30:34]]  # EDGX's group left out
    pcap = tmp_path / "nocfg.pcap"
    pcap.write_bytes(F.pcap_bytes(sorted(recs, key=lambda r: r[0])))
    dump = tmp_path / "nocfg.csv"
    name = "fhcbbo-" + uuid.uuid4().hex[:8]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            str(pcap),
            "--shm",
            name,
            "--dump-books",
            str(dump),
            "-q",
            "--silence-ms",
            "600000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    seg = attach(name)
    try:
        venues = seg.venues()
        assert int(seg._header().cbbo_on) == 1 and int(seg._header().venues_seen) == 0b11
        want = reference(dump.read_text(), venues)
        for sym in SYMS:
            b = seg.bbo(sym)
            assert (
                b["bid_price"],
                b["bid_shares"],
                b["bid_venue"],
                b["ask_price"],
                b["ask_shares"],
                b["ask_venue"],
            ) == want[sym], sym
    finally:
        seg.close()
        os.unlink("/dev/shm/" + name)
    name2 = "fhcbbo-" + uuid.uuid4().hex[:8]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            os.path.join(ROOT, "pcaps", "sample.pcap"),
            "--shm",
            name2,
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    seg = attach(name2)
    try:
        assert int(seg._header().cbbo_on) == 0 and int(seg._header().venues_seen) == 0b1
        b = seg.bbo("AAPL")  # one venue: its own top of book
        snap = seg.book("AAPL")
        assert b["bid_price"] == int(snap.bids[0][0]) and b["bid_venue"] == "XNAS"
    finally:
        seg.close()
        os.unlink("/dev/shm/" + name2)


@pytest.mark.slow
def test_mixed_run_per_venue_books_equal_separate_runs_at_one_and_two_cores(tmp_path):
    """ITCH + two PITCH venues in one run give, venue by venue, the books of
    three separate runs (one venue each), at one core and at two."""
    recs = capture(seed=9)
    one, n1 = run(tmp_path, recs, "0")
    two, n2 = run(tmp_path, recs, "0,1")
    for n in (n1, n2):
        os.unlink("/dev/shm/" + n)
    assert one == two
    by_venue = {}
    for line in one.splitlines()[1:]:
        by_venue.setdefault(line.rsplit(",", 1)[1], []).append(line.rsplit(",", 1)[0])
    assert set(by_venue) == {"XNAS", "BZX", "EDGX"}
    pcap = tmp_path / "cbbo.pcap"
    blocks = CONFIG.strip().split("\n\n")
    for venue, block in zip(["XNAS", "BZX", "EDGX"], blocks):
        cfg = tmp_path / ("only-%s.toml" % venue)
        cfg.write_text((block % ((F.GROUP_A, F.PORT) if venue == "XNAS" else (0,) if venue == "BZX" else ())) + "\n")
        out = tmp_path / ("only-%s.csv" % venue)
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "feedhandler",
                "replay",
                str(pcap),
                "--config",
                str(cfg),
                "--dump-books",
                str(out),
                "-q",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stderr
        rows = out.read_text().splitlines()
        assert not rows[0].endswith(",venue")  # one venue: no venue column
        if venue != "XNAS":
            # PITCH ids depend on the venue's rank among the run's PITCH venues.
            shift = 12288 if venue == "EDGX" else 0
            rows = [",".join([str(int(r.split(",")[0]) + shift)] + r.split(",")[1:]) for r in rows[1:]]
        else:
            rows = rows[1:]
        assert rows == by_venue[venue], venue
