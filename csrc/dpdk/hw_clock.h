/* hw_clock.h -- a port's hardware receive timestamps (device ticks) on the
 * lane's clock (TSC ns since the epoch): the arithmetic only, no DPDK calls.
 *
 * ns = ns0 + (stamp - dev0) * ns_per_tick, with (dev0, ns0) an anchor read
 * together (the device clock and the TSC clock) and ns_per_tick measured once
 * over an interval.  All integer: ns0 is ~1.8e18, past the 53 bits a double
 * holds exactly (a double sum rounds it to 256 ns), so the sum stays in 64
 * bits and only the scale is fixed point, 32.32 as tsc.h's `mult`.  The delta
 * from the anchor is signed, so a stamp taken just before a re-anchor (a
 * packet received before it, converted after) lands before ns0; it is taken
 * as a u64 difference first, so a device counter that wraps past 2^64
 * between anchor and stamp converts as if it had not.
 *
 * src_dpdk.c reads the clocks and calls these; tests/test_hw_clock.py calls
 * them through the probe hooks (csrc/probe/hw_clock.c), without a NIC. */
#ifndef FH_HW_CLOCK_H
#define FH_HW_CLOCK_H

#include "../fh_common.h"

typedef struct fh_hw_clock {
    uint64_t mult; /* ns per device tick, 32.32 fixed point (0: no scale) */
    uint64_t dev0; /* the anchor: device clock ... */
    uint64_t ns0;  /* ... and the TSC clock (ns since the epoch) read with it */
} fh_hw_clock_t;

/* The scale from a measured interval: `ticks` device ticks took `ns` ns,
 * rounded to the nearest 2^-32 ns per tick.  0 (the scale left unset) when
 * the interval cannot give one: no ticks, a counter that went backwards (a
 * "delta" of 2^63 or more), or a tick of 2^32 ns or more, or one so short
 * that its scale rounds to 0.  Once per port start: the division is not on the per-packet path. */
FH_INLINE int fh_hw_clock_scale(fh_hw_clock_t *c, uint64_t ticks, uint64_t ns)
{
    if (ticks == 0 || ticks > (uint64_t)INT64_MAX) return 0;
    const unsigned __int128 m = (((unsigned __int128)ns << 32) + ticks / 2) / ticks;
    if (m == 0 || m > UINT64_MAX) return 0;
    c->mult = (uint64_t)m;
    return 1;
}

/* A fresh anchor: the device clock `dev` and the TSC clock `ns` read together. */
FH_INLINE void fh_hw_clock_anchor(fh_hw_clock_t *c, uint64_t dev, uint64_t ns)
{
    c->dev0 = dev;
    c->ns0 = ns;
}

/* A device stamp as TSC ns since the epoch, exact to the ns (rounded down)
 * for the scale: one subtraction, one 64x64 multiply, a shift and an add, no
 * branch.  The shift of the signed product rounds towards minus infinity
 * (arithmetic shift, as GCC and Clang define it), so a stamp before the
 * anchor rounds down like one after it. */
FH_INLINE uint64_t fh_hw_clock_ns(const fh_hw_clock_t *c, uint64_t stamp)
{
    const int64_t d = (int64_t)(stamp - c->dev0);
    const __int128 off = ((__int128)d * (__int128)c->mult) >> 32;
    return c->ns0 + (uint64_t)(int64_t)off;
}

#endif
