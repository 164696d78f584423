/* tsc.c -- TSC calibration against CLOCK_REALTIME (start-up only). */
#include "tsc.h"

void fh_tsc_calibrate(fh_tsc_t *t)
{
    memset(t, 0, sizeof *t);
#if FH_HAVE_TSC
    /* Invariant TSC (CPUID 0x80000007 EDX bit 8): ticks at a constant rate in
     * every P/C-state, so one calibration holds for the whole run. */
    unsigned int a = 0x80000007, b = 0, c = 0, d = 0;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    if (!(d & (1u << 8))) return;
    const uint64_t m0 = fh_clock_ns(CLOCK_MONOTONIC), t0 = __rdtsc();
    uint64_t m1, t1;
    do {
        m1 = fh_clock_ns(CLOCK_MONOTONIC);
        t1 = __rdtsc();
    } while (m1 - m0 < 5000000);
    if (t1 <= t0) return;
    t->hz = (uint64_t)((double)(t1 - t0) * 1e9 / (double)(m1 - m0));
    t->mult = (uint64_t)((double)(m1 - m0) / (double)(t1 - t0) * 4294967296.0);
    t->base_ns = fh_clock_ns(CLOCK_REALTIME);
    t->base_tsc = __rdtsc();
#endif
}
