/* hw_clock.c -- probe hooks for the hardware receive timestamp arithmetic
 * (csrc/dpdk/hw_clock.h), the same inline functions the DPDK burst loop
 * calls, so tests/test_hw_clock.py checks them without DPDK or a NIC. */
#include "fh_common.h"
#include "dpdk/hw_clock.h"
#include "probe/probe_api.h"

uint64_t fh_hw_clock_probe_scale(uint64_t ticks, uint64_t ns)
{
    fh_hw_clock_t c = {0};
    return fh_hw_clock_scale(&c, ticks, ns) ? c.mult : 0;
}

uint64_t fh_hw_clock_probe_ns(uint64_t mult, uint64_t dev0, uint64_t ns0, uint64_t stamp)
{
    fh_hw_clock_t c = {.mult = mult};
    fh_hw_clock_anchor(&c, dev0, ns0);
    return fh_hw_clock_ns(&c, stamp);
}
