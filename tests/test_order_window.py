"""The order store at full-day scale: a window of entries indexed by reference
number, sliding with the day, with a hash for every order outside it
(csrc/book.h, docs/performance.md).  Days made to exercise every path, each
compared exactly (dump and counters) with the Python reference book:

  - orders resting while the window slides past them many times (moved to the
    hash), then executed, cancelled, replaced and deleted there;
  - references far past the window (a corrupt or hostile jump: kept in the hash,
    the window not moved), some of which the window later reaches and passes
    while they are live and worked;
  - references below the window (old numbers reused after their order died);
  - the window sized from --max-orders: small capacities slide it every few adds.
"""

from __future__ import annotations

import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bookdays  # noqa: E402
from bookdays import T0, msg_A, msg_D, msg_E, msg_R, msg_U, msg_X  # noqa: E402
from refbook import RefBook  # noqa: E402
from test_books import assert_counters, assert_csv_equal, replay_books  # noqa: E402

KEYS = (
    "orders_live",
    "orders_peak",
    "adds",
    "executes",
    "cancels",
    "deletes",
    "replaces",
    "unknown_ref",
    "add_replaced",
    "exec_clamped",
    "cancel_clamped",
    "order_full",
)


def sliding_day(seed: int, resting: int = 40, steps: int = 6000, stride: int = 7, far: bool = True):
    """Resting orders first; then a busy flow whose references advance by
    `stride` per add (young orders die within a few adds), slides any small
    window many times past the resting ones; then every resting order is
    worked.  With `far`, a few references jump 2^40 ahead and come back."""
    rnd = random.Random(seed)
    out = [msg_R(loc, "W%03d" % loc) for loc in range(1, 5)]
    ts = T0
    rest = list(range(9_000, 9_000 + resting))  # just below the flow: the window starts here
    for r in rest:
        ts += 5
        out.append(
            msg_A(
                r,
                side=rnd.choice((b"B", b"S")),
                shares=100 * rnd.randint(1, 9),
                price=1_000_000 + 100 * rnd.randint(-300, 300),
                locate=(r % 4) + 1,
                stock="W%03d" % ((r % 4) + 1),
                ts=ts,
            )
        )
    ref = 10_000
    young = []
    far_refs = []
    near_far = []
    for i in range(steps):
        ts += 5
        ref += stride
        loc = rnd.randint(1, 4)
        out.append(
            msg_A(
                ref,
                side=rnd.choice((b"B", b"S")),
                shares=100,
                price=1_000_000 + 100 * rnd.randint(-5, 5),
                locate=loc,
                stock="W%03d" % loc,
                ts=ts,
            )
        )
        young.append((ref, loc))
        if len(young) > 6:
            r0, l0 = young.pop(0)
            out.append(msg_D(r0, locate=l0, ts=ts))
        if far and i in (500, 3000):
            fr = ref + (1 << 40) + i
            far_refs.append(fr)
            out.append(msg_A(fr, side=b"S", shares=300, price=1_100_000, locate=1, stock="W001", ts=ts))
        if far and i == 4000:
            fr = far_refs.pop(0)
            out.append(msg_X(fr, 100, locate=1, ts=ts))
        if far and i == 1000:
            # Near-far jumps: more than two windows ahead of a small window (so
            # kept in the hash), then reached by the window while still live,
            # and worked while inside it.
            near_far = [ref + 300, ref + 3000, ref + 20_000]
            for nf in near_far:
                out.append(msg_A(nf, side=b"B", shares=5000, price=980_000, locate=3, stock="W003", ts=ts))
        if far and 1000 < i <= 1600 and i % 5 == 0:
            for nf in near_far:
                out.append(msg_X(nf, 1, locate=3, ts=ts))
        if i % 997 == 0:
            # an old number reused: its order died long ago (below the window)
            out.append(msg_A(5_000 + i, side=b"B", shares=50, price=990_000, locate=2, stock="W002", ts=ts))
    for k, r in enumerate(rest):
        ts += 5
        loc = (r % 4) + 1
        op = k % 5
        if op == 0:
            out.append(msg_E(r, 50, match=k + 1, locate=loc, ts=ts))
        elif op == 1:
            out.append(msg_X(r, 1000, locate=loc, ts=ts))  # clamped: the whole order
        elif op == 2:
            out.append(msg_U(r, ref + 100 + k, 200, 1_000_500, locate=loc, ts=ts))
        elif op == 3:
            out.append(msg_D(r, locate=loc, ts=ts))
        # op 4: stays resting to the end
    for fr in far_refs:
        out.append(msg_D(fr, locate=1, ts=ts + 1))
    out.append(msg_D(123_456_789_012, locate=1, ts=ts + 2))  # never added: unknown
    return out


def _check(tmp_path, msgs, max_orders, tag):
    b, p = bookdays.write_day(tmp_path / tag, msgs)
    ref = RefBook(max_orders=max_orders).feed(msgs)
    for path in (b, p):
        text, stats = replay_books(tmp_path, path, 10, extra=("--max-orders", max_orders), tag=tag)
        assert_csv_equal(text, ref.dump_csv(10), "%s %s --max-orders %d" % (tag, os.path.basename(path), max_orders))
        assert_counters(stats, ref, keys=KEYS, what="%s --max-orders %d" % (tag, max_orders))
    return ref


@pytest.mark.parametrize("max_orders", [16, 64, 1024, 2_097_152])
@pytest.mark.slow
def test_resting_orders_found_after_the_window_slides(tmp_path, max_orders):
    """--max-orders 16 or 64: a window of 128 or 512 references, passed by the
    flow (7 references an add) every 18 or 73 adds: the resting orders live in
    the hash for most of the day.  The default window never slides here."""
    msgs = sliding_day(1)
    ref = _check(tmp_path, msgs, max_orders, "slide%d" % max_orders)
    if max_orders >= 64:
        # nothing dropped, so every rule was exercised on orders that were found
        assert ref.counters["order_full"] == 0
        assert ref.counters["executes"] >= 8 and ref.counters["replaces"] >= 8 and ref.counters["deletes"] > 5000


@pytest.mark.parametrize("seed", [2, 3])
def test_random_references_small_window(tmp_path, seed):
    """References drawn at random over a range wider than the window, live
    ones reused, unknown ones named: the store must agree with the reference
    whichever of window and hash each order is in."""
    rnd = random.Random(seed)
    msgs = [msg_R(loc, "Q%03d" % loc) for loc in range(1, 4)]
    live = {}
    ts = T0
    for _ in range(20_000):
        ts += 3
        r = rnd.choice((rnd.randint(1, 5000), rnd.randint(1, 50_000), rnd.randint(1, 1 << 50)))
        kind = rnd.random()
        if kind < 0.5 or not live:
            loc = rnd.randint(1, 3)
            msgs.append(
                msg_A(
                    r,
                    side=rnd.choice((b"B", b"S")),
                    shares=rnd.randint(1, 5) * 100,
                    price=500_000 + rnd.randint(0, 40) * 100,
                    locate=loc,
                    stock="Q%03d" % loc,
                    ts=ts,
                )
            )
            live[r] = loc
        else:
            r = rnd.choice(list(live)) if rnd.random() < 0.9 else r
            loc = live.get(r, 1)
            op = rnd.random()
            if op < 0.5:
                msgs.append(msg_D(r, locate=loc, ts=ts))
                live.pop(r, None)
            elif op < 0.75:
                msgs.append(msg_X(r, rnd.randint(1, 400), locate=loc, ts=ts))
            elif op < 0.9:
                msgs.append(msg_E(r, rnd.randint(1, 400), locate=loc, ts=ts))
            else:
                nr = rnd.randint(1, 60_000)
                msgs.append(msg_U(r, nr, 100, 500_000 + rnd.randint(0, 40) * 100, locate=loc, ts=ts))
                live.pop(r, None)
                live[nr] = loc
    _check(tmp_path, msgs, 256, "rand%d" % seed)
