"""Hardware receive timestamps on the TSC clock (csrc/dpdk/hw_clock.h), without a NIC.

The DPDK source converts a port's receive stamps (device ticks) to ns since the
epoch: ns0 + (stamp - dev0) * ns_per_tick from an anchor (dev0, ns0) and a
scale measured at port start.  No virtual device offers hardware stamps, so the
arithmetic is checked here through the probe hooks (feedhandler._probe), which
call the same inline functions the burst loop does.  The conversion must be
exact to the ns at epoch-scale ns (~1.8e18, past a double's 53 bits: the
double formula it replaced rounded to 256 ns), take a stamp before the anchor
as earlier, and survive a device counter wrapping past 2^64.
"""

import random
from fractions import Fraction

from feedhandler._probe import lib as probe

U64 = 1 << 64
# An anchor in 2026 (ns since the epoch), deliberately not a multiple of 256.
NS0 = 1_780_000_000_123_456_789
DEV0 = 987_654_321_012_345
# 20 ms: how long src_dpdk.c measures the device clock for the scale.
INTERVAL_NS = 20_000_000


def convert(mult, dev0, ns0, stamp):
    return probe.fh_hw_clock_probe_ns(mult, dev0 % U64, ns0, stamp % U64)


def exact(ticks_per_interval, dev0, ns0, stamp):
    """The true time of `stamp`, rounded down to the ns, for a device that
    counts ticks_per_interval ticks in INTERVAL_NS (the signed delta from the
    anchor, as the device counter wraps)."""
    d = (stamp - dev0) % U64
    if d >= 1 << 63:
        d -= U64
    return ns0 + (d * INTERVAL_NS) // ticks_per_interval


def old_double_formula(ticks_per_interval, dev0, ns0, stamp):
    """What src_dpdk.c computed before hw_clock.h, in IEEE doubles as C does:
    (uint64_t)((double)ns0 + (double)(int64_t)(stamp - dev0) * ns_per_tick)."""
    d = (stamp - dev0) % U64
    if d >= 1 << 63:
        d -= U64
    ns_per_tick = float(INTERVAL_NS) / float(ticks_per_interval)
    return int(float(ns0) + float(d) * ns_per_tick)


GHZ = 20_000_000  # ticks in 20 ms: 1 ns per tick
MHZ_640 = 12_800_000  # 1.5625 ns per tick (a 640 MHz device clock)


def _deltas(seed, span_ticks):
    rng = random.Random(seed)
    fixed = [0, 1, 2, 3, 15, 16, 17, 255, 256, 257, 1_000_000, span_ticks - 1, span_ticks]
    return fixed + [rng.randrange(span_ticks) for _ in range(5000)]


def test_the_scale_is_the_fixed_point_ns_per_tick():
    assert probe.fh_hw_clock_probe_scale(GHZ, INTERVAL_NS) == 1 << 32
    assert probe.fh_hw_clock_probe_scale(MHZ_640, INTERVAL_NS) == 25 << 28  # 1.5625 * 2^32
    # Rounded to the nearest 2^-32 ns: 3 ns in 2 ticks and 2 ns in 3 ticks.
    assert probe.fh_hw_clock_probe_scale(2, 3) == 3 << 31
    assert probe.fh_hw_clock_probe_scale(3, 2) == ((2 << 32) + 1) // 3


def test_a_1_ghz_device_converts_exact_to_the_ns_at_epoch_scale():
    mult = probe.fh_hw_clock_probe_scale(GHZ, INTERVAL_NS)
    for d in _deltas(1, 5_000_000_000):  # up to 5 s after the anchor
        assert convert(mult, DEV0, NS0, DEV0 + d) == NS0 + d, d


def test_a_640_mhz_device_converts_exact_to_the_ns_over_seconds():
    mult = probe.fh_hw_clock_probe_scale(MHZ_640, INTERVAL_NS)
    for d in _deltas(2, 3 * 640_000_000):  # up to 3 s after the anchor
        want = exact(MHZ_640, DEV0, NS0, DEV0 + d)
        assert want == NS0 + d * 25 // 16
        assert convert(mult, DEV0, NS0, DEV0 + d) == want, d


def test_the_precision_cases_catch_the_old_double_formula():
    """The cases above fail the formula hw_clock.h replaced: a double holds
    ~1.8e18 only to 256 ns, so (double)ns0 is 21 ns off on this anchor with no
    delta at all, and the sum rounds again: up to 128 + 21 ns off."""
    assert old_double_formula(GHZ, DEV0, NS0, DEV0) != NS0
    worst = 0
    for ticks, seed, span in ((GHZ, 1, 5_000_000_000), (MHZ_640, 2, 3 * 640_000_000)):
        for d in _deltas(seed, span):
            err = abs(old_double_formula(ticks, DEV0, NS0, DEV0 + d) - exact(ticks, DEV0, NS0, DEV0 + d))
            worst = max(worst, err)
    assert 128 <= worst <= 150


def test_a_stamp_before_the_anchor_converts_to_before_it():
    """A packet stamped before a re-anchor and converted after it: the delta is
    signed, and rounds down like one after the anchor."""
    mult = probe.fh_hw_clock_probe_scale(GHZ, INTERVAL_NS)
    assert convert(mult, DEV0, NS0, DEV0 - 1) == NS0 - 1
    assert convert(mult, DEV0, NS0, DEV0 - 1_000_000) == NS0 - 1_000_000
    mult = probe.fh_hw_clock_probe_scale(MHZ_640, INTERVAL_NS)
    assert convert(mult, DEV0, NS0, DEV0 - 16) == NS0 - 25
    assert convert(mult, DEV0, NS0, DEV0 - 1) == NS0 - 2  # -1.5625 ns, rounded down
    for d in _deltas(3, 640_000_000):
        assert convert(mult, DEV0, NS0, DEV0 - d) == exact(MHZ_640, DEV0, NS0, DEV0 - d), d


def test_a_device_counter_that_wraps_between_anchor_and_stamp():
    for ticks in (GHZ, MHZ_640):
        mult = probe.fh_hw_clock_probe_scale(ticks, INTERVAL_NS)
        # Anchored 1000 ticks before the counter wraps, stamped 500 ticks after.
        dev0 = U64 - 1000
        got = convert(mult, dev0, NS0, 500)
        assert got == exact(ticks, dev0, NS0, 500) == NS0 + 1500 * INTERVAL_NS // ticks
        # And the other way: stamped just before the wrap, anchored just after.
        got = convert(mult, 5, NS0, U64 - 11)
        assert got == exact(ticks, 5, NS0, U64 - 11) == NS0 + (-16 * INTERVAL_NS) // ticks


def test_a_measured_scale_converts_a_second_later_within_its_own_error():
    """The scale as src_dpdk.c measures it, from 20 ms of device ticks against
    the host clock: an awkward rate (333.33 MHz) converts 1 s after the anchor
    to within 1 ns of what the measured rate says (rounded down); a
    measurement 50 ns off (host clock jitter) is off by its own error over
    that second, 50 ns * 1 s / 20 ms, to within the same 1 ns."""
    ticks = 6_666_667  # a 333.33 MHz device in 20 ms
    mult = probe.fh_hw_clock_probe_scale(ticks, INTERVAL_NS)
    assert mult
    later = 50 * ticks  # 1 s of device ticks
    got = convert(mult, DEV0, NS0, DEV0 + later)
    rate = Fraction(INTERVAL_NS, ticks)
    assert abs(got - (NS0 + later * rate)) <= 1

    jittered = probe.fh_hw_clock_probe_scale(ticks, INTERVAL_NS + 50)
    got = convert(jittered, DEV0, NS0, DEV0 + later)
    err = got - (NS0 + later * rate)
    assert abs(err - 50 * 50) <= 1


def test_the_scale_refuses_an_interval_that_gives_none():
    assert probe.fh_hw_clock_probe_scale(0, INTERVAL_NS) == 0  # a clock that stood still
    assert probe.fh_hw_clock_probe_scale(U64 - 1000, INTERVAL_NS) == 0  # a clock that went backwards
    assert probe.fh_hw_clock_probe_scale(1, 1 << 32) == 0  # 2^32 ns per tick: past 32.32
    assert probe.fh_hw_clock_probe_scale(1, (1 << 32) - 1) == ((1 << 32) - 1) << 32
