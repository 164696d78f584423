"""Builders for the book messages (ITCH 5.0, big-endian, struct) and the edge-case
days of the book tests, written as NASDAQ BinaryFILE and as pcap (MoldUDP64 over
UDP through tests/frames.py).

The edge days hold every case of the book rules on purpose; they avoid only the
combinations the rules leave open (an add that is both zero and on a live
reference, zero and bad side together, a U whose new half is zero and whose new
reference is live, an unknown reference carried under locate 0), so that a
mismatch with the C book is a bug of one side, never a matter of taste.
"""

from __future__ import annotations

import random
import struct
from typing import List, Sequence

import frames

T0 = 34_200_000_000_000  # 09:30:00 in ns since midnight


def _h(t: bytes, locate: int, ts: int, tracking: int = 0) -> bytes:
    return struct.pack(">cHH6s", t, locate, tracking, ts.to_bytes(6, "big"))


def stock8(s) -> bytes:
    s = s.encode() if isinstance(s, str) else s
    return s.ljust(8, b" ")[:8]


def msg_A(ref, side=b"B", shares=100, price=1_000_000, locate=1, stock="X", ts=T0):
    return _h(b"A", locate, ts) + struct.pack(">QcI8sI", ref, side, shares, stock8(stock), price)


def msg_F(ref, side=b"B", shares=100, price=1_000_000, locate=1, stock="X", attribution=b"GSCO", ts=T0):
    return _h(b"F", locate, ts) + struct.pack(">QcI8sI4s", ref, side, shares, stock8(stock), price, attribution)


def msg_E(ref, shares, match=1, locate=1, ts=T0):
    return _h(b"E", locate, ts) + struct.pack(">QIQ", ref, shares, match)


def msg_C(ref, shares, price, printable=b"Y", match=1, locate=1, ts=T0):
    return _h(b"C", locate, ts) + struct.pack(">QIQcI", ref, shares, match, printable, price)


def msg_X(ref, shares, locate=1, ts=T0):
    return _h(b"X", locate, ts) + struct.pack(">QI", ref, shares)


def msg_D(ref, locate=1, ts=T0):
    return _h(b"D", locate, ts) + struct.pack(">Q", ref)


def msg_U(old, new, shares, price, locate=1, ts=T0):
    return _h(b"U", locate, ts) + struct.pack(">QQII", old, new, shares, price)


def msg_R(locate, stock, ts=T0 - 30_000_000_000_000, round_lot=100):
    return _h(b"R", locate, ts) + struct.pack(
        ">8sccIcc2scccccIc",
        stock8(stock),
        b"Q",
        b"N",
        round_lot,
        b"N",
        b"C",
        b"Z ",
        b"P",
        b" ",
        b"N",
        b"1",
        b"N",
        0,
        b"N",
    )


def msg_H(locate, stock, state=b"H", reason=b"T1  ", ts=T0):
    return _h(b"H", locate, ts) + struct.pack(">8scc4s", stock8(stock), state, b" ", reason)


def msg_P(ref, side, shares, stock, price, match, locate=1, ts=T0):
    return _h(b"P", locate, ts) + struct.pack(">QcI8sIQ", ref, side, shares, stock8(stock), price, match)


def msg_Q(shares, stock, price, match, cross_type=b"O", locate=1, ts=T0):
    return _h(b"Q", locate, ts) + struct.pack(">Q8sIQc", shares, stock8(stock), price, match, cross_type)


def msg_B(match, locate=1, ts=T0):
    return _h(b"B", locate, ts) + struct.pack(">Q", match)


def msg_S(code, ts=T0):
    return _h(b"S", 0, ts) + code


LENGTHS = {
    "A": 36,
    "F": 40,
    "E": 31,
    "C": 36,
    "X": 23,
    "D": 19,
    "U": 35,
    "R": 39,
    "H": 25,
    "P": 44,
    "Q": 40,
    "B": 19,
    "S": 12,
}


# ------------------------------------------------------------------ writers


def pcap_of(msgs: Sequence[bytes], per_packet: int = 20, session: bytes = b"BOOKTEST01") -> bytes:
    """One MoldUDP64 channel, sequence from 1, `per_packet` messages a datagram."""
    recs, seq, t = [], 1, 1_795_600_000_000_000_000
    for i in range(0, len(msgs), per_packet):
        chunk = list(msgs[i : i + per_packet])
        recs.append((t, frames.frame(frames.mold(chunk, seq=seq, session=session))))
        seq += len(chunk)
        t += 1000
    return frames.pcap_bytes(recs)


def write_day(prefix, msgs: Sequence[bytes]):
    """Write PREFIX.bin (BinaryFILE) and PREFIX.pcap; return their paths."""
    b, p = str(prefix) + ".bin", str(prefix) + ".pcap"
    with open(b, "wb") as f:
        f.write(frames.binfile_bytes(msgs))
    with open(p, "wb") as f:
        f.write(pcap_of(msgs))
    return b, p


# ------------------------------------------------------------------ the edge day

SYMBOLS = {1: "AAPL", 2: "MSFT", 3: "NVDA", 4: "TSLA", 5: "QQQ"}
NO_R_LOCATE = 6  # orders, but never named by an R message: empty symbol


def edge_day(seed: int = 7) -> List[bytes]:
    """Every book rule's edge case, in the middle of ordinary flow on several
    instruments with more price levels than any depth the tests ask for."""
    rnd = random.Random(seed)
    out: List[bytes] = [msg_S(b"O", T0 - 31_000_000_000_000)]
    ts = [T0]

    def t():
        ts[0] += 1000
        return ts[0]

    for loc, sym in SYMBOLS.items():
        out.append(msg_R(loc, sym))
    out.append(msg_S(b"Q", T0 - 1))

    ref = [1000]

    def nref():
        ref[0] += 1
        return ref[0]

    live = {}  # ref -> (locate, side, shares, price), our own shadow

    def add(loc, side, shares, price, kind="A"):
        r = nref()
        sym = SYMBOLS.get(loc, "ZZZZ")
        mk = msg_A if kind == "A" else msg_F
        out.append(mk(r, side=side, shares=shares, price=price, locate=loc, stock=sym, ts=t()))
        live[r] = (loc, side, shares, price)
        return r

    # Deep books: 40 bid and 40 ask levels on each instrument, several orders on some.
    for loc in list(SYMBOLS) + [NO_R_LOCATE]:
        mid = 1_000_000 + 10_000 * loc
        for k in range(40):
            for _ in range(rnd.choice((1, 1, 2, 3))):
                add(loc, b"B", rnd.choice((100, 200, 300, 50, 1)), mid - 100 * (k + 1), rnd.choice("AAF"))
                add(loc, b"S", rnd.choice((100, 200, 300, 50, 1)), mid + 100 * (k + 1), rnd.choice("AAF"))

    def pick(loc=None):
        refs = sorted(r for r, o in live.items() if loc is None or o[0] == loc)
        return rnd.choice(refs)

    # Unknown references on every referencing type (never-seen and already-deleted refs).
    gone = pick(1)
    out.append(msg_D(gone, locate=1, ts=t()))
    del live[gone]
    for r in (9_999_999, gone):
        out.append(msg_E(r, 10, match=1, locate=1, ts=t()))
        out.append(msg_C(r, 10, 1_234_500, b"Y", match=2, locate=1, ts=t()))
        out.append(msg_X(r, 10, locate=1, ts=t()))
        out.append(msg_D(r, locate=1, ts=t()))
        out.append(msg_U(r, nref(), 100, 1_000_000, locate=1, ts=t()))

    # Duplicate adds: A on a live ref (new side, price and even a new instrument), F on a live ref.
    r = pick(2)
    out.append(msg_A(r, side=b"S", shares=777, price=1_030_100, locate=2, stock="MSFT", ts=t()))
    live[r] = (2, b"S", 777, 1_030_100)
    r = pick(3)
    out.append(msg_F(r, side=b"B", shares=555, price=1_010_000, locate=1, stock="AAPL", ts=t()))
    live[r] = (1, b"B", 555, 1_010_000)
    # U whose new ref is live: the live one is replaced by the new half.
    a, b = pick(4), pick(5)
    out.append(msg_U(a, b, 250, 1_040_050, locate=4, ts=t()))
    live[b] = (live[a][0], live[a][1], 250, 1_040_050)
    del live[a]
    # U onto its own reference.
    a = pick(4)
    out.append(msg_U(a, a, 123, live[a][3] + 1, locate=4, ts=t()))
    live[a] = (live[a][0], live[a][1], 123, live[a][3] + 1)
    # Plain U, new price level on the other side of nothing (keeps side).
    a = pick(5)
    nr = nref()
    out.append(msg_U(a, nr, 400, live[a][3] - 7, locate=5, ts=t()))
    live[nr] = (live[a][0], live[a][1], 400, live[a][3] - 7)
    del live[a]

    # Partial executes (E and C), then over-sized ones that clamp; same for cancels.
    for kind in "ECX":
        for loc in (1, 2, 3):
            a = pick(loc)
            o = live[a]
            if o[2] > 1:
                part = o[2] // 2 or 1
                if kind == "E":
                    out.append(msg_E(a, part, match=nref(), locate=loc, ts=t()))
                elif kind == "C":
                    out.append(msg_C(a, part, o[3] + 5, b"N", match=nref(), locate=loc, ts=t()))
                else:
                    out.append(msg_X(a, part, locate=loc, ts=t()))
                live[a] = (o[0], o[1], o[2] - part, o[3])
            o = live[a]
            big = o[2] + rnd.randint(1, 1000)
            if kind == "E":
                out.append(msg_E(a, big, match=nref(), locate=loc, ts=t()))
            elif kind == "C":
                out.append(msg_C(a, big, o[3] - 5, b"Y", match=nref(), locate=loc, ts=t()))
            else:
                out.append(msg_X(a, big, locate=loc, ts=t()))
            del live[a]
    # Exact executes and cancels that bring an order to 0.
    a = pick(2)
    out.append(msg_E(a, live.pop(a)[2], match=nref(), locate=2, ts=t()))
    a = pick(3)
    out.append(msg_X(a, live.pop(a)[2], locate=3, ts=t()))
    a = pick(1)
    out.append(msg_C(a, live.pop(a)[2], 999_999, b"N", match=nref(), locate=1, ts=t()))

    # Zero shares / zero price on adds (A and F) and on the new half of U (the original stays removed).
    out.append(msg_A(nref(), side=b"B", shares=0, price=1_000_000, locate=1, stock="AAPL", ts=t()))
    out.append(msg_A(nref(), side=b"S", shares=100, price=0, locate=2, stock="MSFT", ts=t()))
    out.append(msg_F(nref(), side=b"B", shares=0, price=0, locate=3, stock="NVDA", ts=t()))
    a = pick(1)
    out.append(msg_U(a, nref(), 0, 1_000_000, locate=1, ts=t()))
    del live[a]
    a = pick(2)
    out.append(msg_U(a, nref(), 100, 0, locate=2, ts=t()))
    del live[a]

    # Bad side.
    out.append(msg_A(nref(), side=b"X", shares=100, price=1_000_000, locate=1, stock="AAPL", ts=t()))
    out.append(msg_F(nref(), side=b" ", shares=100, price=1_000_000, locate=2, stock="MSFT", ts=t()))

    # Locate 0 (never an instrument), and locates far up the 16-bit space (in
    # range: the default capacity is every id, 65535).
    for loc in (0, 10_001, 65_535):
        out.append(msg_A(nref(), side=b"B", shares=100, price=1_000_000, locate=loc, stock="AAPL", ts=t()))
        out.append(msg_F(nref(), side=b"S", shares=100, price=1_000_100, locate=loc, stock="AAPL", ts=t()))
    # Instrument messages past the capacity are ignored too.
    out.append(msg_R(10_001, "FAR"))
    out.append(msg_H(0, "AAPL", b"H", b"T1  ", ts=t()))
    out.append(msg_P(0, b"S", 100, "AAPL", 1_000_000, nref(), locate=65_535, ts=t()))
    # ... the highest locate that is in range is fine.
    add(10_000, b"B", 100, 500_000)
    add(10_000, b"S", 100, 500_100)

    # Trades that do not touch the book, a halt in the middle, orders still applied during it.
    out.append(msg_P(0, b"B", 300, "AAPL", 1_000_000, nref(), locate=1, ts=t()))
    out.append(msg_Q(10_000, "MSFT", 1_020_000, nref(), b"O", locate=2, ts=t()))
    out.append(msg_H(3, "NVDA", b"H", b"T1  ", ts=t()))
    out.append(msg_H(4, "TSLA", b"P", b"LUDP", ts=t()))
    for _ in range(30):
        add(3, b"B", 100, 1_030_000 - 100 * rnd.randint(1, 60))
        add(4, b"S", 100, 1_040_000 + 100 * rnd.randint(1, 60))
    for loc in (3, 4):
        a = pick(loc)
        out.append(msg_E(a, 1, match=nref(), locate=loc, ts=t()))
        o = live[a]
        if o[2] == 1:
            del live[a]
        else:
            live[a] = (o[0], o[1], o[2] - 1, o[3])
        a = pick(loc)
        out.append(msg_D(a, locate=loc, ts=t()))
        del live[a]
        a = pick(loc)
        nr = nref()
        out.append(msg_U(a, nr, 10, live[a][3], locate=loc, ts=t()))
        live[nr] = (live[a][0], live[a][1], 10, live[a][3])
        del live[a]
    out.append(msg_B(1, locate=3, ts=t()))
    out.append(msg_H(3, "NVDA", b"T", b"    ", ts=t()))
    out.append(msg_H(4, "TSLA", b"T", b"    ", ts=t()))

    # Empty one side of an instrument completely, and all of locate 5's bids.
    for r in sorted(r for r, o in live.items() if o[0] == 5 and o[1] == b"B"):
        out.append(msg_D(r, locate=5, ts=t()))
        del live[r]

    out.append(msg_S(b"M", ts=t()))
    out.append(msg_S(b"E", ts=t()))
    out.append(msg_S(b"C", ts=t()))
    return out


# ------------------------------------------------------------------ a random day


def fuzz_day(seed: int, n: int = 20_000, locates: int = 8, refs: int = 400) -> List[bytes]:
    """Random A/F/E/C/X/D/U traffic over a small reference space, so that unknown
    references, duplicate adds, clamps, zeros, bad sides and bad locates all
    happen many times in every order.  Avoids only the open combinations (see
    the module doc); for that it keeps a shadow of which references are live,
    following the same rules (the reference book re-derives everything itself)."""
    rnd = random.Random(seed)
    out: List[bytes] = [msg_S(b"O", T0 - 1)]
    for loc in range(1, locates + 1):
        if loc != locates:  # the last locate has no R: empty symbol
            out.append(msg_R(loc, "S%03d" % loc))
    live = {}  # ref -> [locate, shares]
    ts = T0
    prices = [1_000_000 + 100 * k for k in range(-30, 31)]
    match = 0
    for _ in range(n):
        ts += 997
        op = rnd.random()
        r = rnd.randint(1, refs)
        if op < 0.40:  # add
            loc = rnd.randint(1, locates)
            side = rnd.choice((b"B", b"S"))
            shares = rnd.choice((100, 200, 1, 37, 500))
            price = rnd.choice(prices)
            special = rnd.random()
            if special < 0.03:
                loc = rnd.choice((0, 10_001, 65_535))
            elif special < 0.06 and r not in live:
                side = rnd.choice((b"X", b" ", b"b", b"\x00"))
            elif special < 0.09 and r not in live:
                if rnd.random() < 0.5:
                    shares = 0
                else:
                    price = 0
            mk = msg_A if rnd.random() < 0.8 else msg_F
            out.append(mk(r, side=side, shares=shares, price=price, locate=loc, stock="S%03d" % loc, ts=ts))
            if 1 <= loc <= 10_000 and side in (b"B", b"S") and shares and price:
                live[r] = [loc, shares]
            continue
        loc = live[r][0] if r in live else rnd.randint(1, locates)
        cur = live[r][1] if r in live else 100
        q = rnd.choice((1, cur // 2 or 1, cur, cur + 1, cur + 1000))
        match += 1
        if op < 0.55:
            out.append(msg_E(r, q, match, locate=loc, ts=ts))
        elif op < 0.65:
            out.append(msg_C(r, q, rnd.choice(prices), rnd.choice((b"Y", b"N")), match, locate=loc, ts=ts))
        elif op < 0.75:
            out.append(msg_X(r, q, locate=loc, ts=ts))
        elif op < 0.85:
            out.append(msg_D(r, locate=loc, ts=ts))
        else:
            nr = rnd.randint(1, refs)
            shares = rnd.choice((100, 300, 1))
            price = rnd.choice(prices)
            if r in live and nr not in live and nr != r and rnd.random() < 0.1:
                if rnd.random() < 0.5:
                    shares = 0
                else:
                    price = 0
            out.append(msg_U(r, nr, shares, price, locate=loc, ts=ts))
            if r in live:
                o = live.pop(r)
                if shares and price:
                    live[nr] = [o[0], shares]
                else:
                    live.pop(nr, None)
            continue
        if r in live:
            if op >= 0.75 and op < 0.85:
                del live[r]
            else:
                live[r][1] -= min(q, live[r][1])
                if live[r][1] == 0:
                    del live[r]
        if rnd.random() < 0.002:
            hl = rnd.randint(1, locates)
            out.append(msg_H(hl, "S%03d" % hl, rnd.choice((b"H", b"P", b"T")), b"    ", ts=ts))
    out.append(msg_S(b"C", ts + 1))
    return out


def capacity_day(orders: int = 300, locates: int = 4, seed: int = 3) -> List[bytes]:
    """Many live orders at once (more than a small --max-orders), then some
    deletes and new adds, so that adds are dropped, capacity frees up and adds
    succeed again."""
    rnd = random.Random(seed)
    out: List[bytes] = []
    for loc in range(1, locates + 1):
        out.append(msg_R(loc, "C%03d" % loc))
    ts = T0
    for r in range(1, orders + 1):
        ts += 10
        loc = (r * 7) % locates + 1
        out.append(
            msg_A(
                r,
                side=rnd.choice((b"B", b"S")),
                shares=100,
                price=1_000_000 + 100 * rnd.randint(-40, 40),
                locate=loc,
                stock="C%03d" % loc,
                ts=ts,
            )
        )
    for r in range(1, orders + 1, 3):  # some of these were dropped: unknown_ref then
        ts += 10
        out.append(msg_D(r, locate=(r * 7) % locates + 1, ts=ts))
    for r in range(orders + 1, orders + 101):
        ts += 10
        loc = (r * 7) % locates + 1
        out.append(
            msg_A(
                r,
                side=rnd.choice((b"B", b"S")),
                shares=100,
                price=1_000_000 + 100 * rnd.randint(-40, 40),
                locate=loc,
                stock="C%03d" % loc,
                ts=ts,
            )
        )
    return out


def extremes_day() -> List[bytes]:
    """Field values at their limits: references 0 and 2^64-1, prices 1 and
    2^32-1 on both sides, shares 2^32-1 summed past 2^32 on one level, the
    highest stock locate, executes and cancels of 2^32-1 shares."""
    U32, U64 = 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
    out: List[bytes] = [msg_R(1, "EXTREME"), msg_R(10_000, "LAST1234")]
    out += [
        msg_A(0, b"B", U32, U32, locate=1),
        msg_A(U64, b"B", U32, U32, locate=1),
        msg_A(U64 - 1, b"B", 1, 1, locate=1),
        msg_A(1 << 63, b"S", U32, 1, locate=1),
        msg_A((1 << 63) + 1, b"S", 5, U32, locate=1),
        msg_A(7, b"S", U32, U32 - 1, locate=10_000),
        msg_A(8, b"B", U32, 1, locate=10_000),
    ]
    out += [
        msg_E(0, 1, 1, locate=1),  # ref 0 is a reference like any other
        msg_X(U64 - 1, U32, locate=1),  # clamps, removes price 1 on the bid
        msg_C((1 << 63) + 1, U32, U32, b"Y", 2, locate=1),
        msg_U(7, U64 - 2, U32, U32, locate=10_000),
        msg_E(8, U32 - 1, 3, locate=10_000),
    ]
    return out
