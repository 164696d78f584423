/* tsc.h -- cheap wall-clock timestamps for the hot path.
 *
 * clock_gettime costs ~20 ns even through the vDSO; the TSC costs ~8 ns and no
 * kernel involvement.  fh_tsc_calibrate() maps TSC ticks to CLOCK_REALTIME ns
 * once at start-up (a ~5 ms busy measurement); fh_tsc_ns() converts with one
 * multiply and shift.  On CPUs without an invariant TSC, and off x86, the
 * clock falls back to clock_gettime. */
#ifndef FH_TSC_H
#define FH_TSC_H

#include <time.h>

#include "fh_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define FH_HAVE_TSC 1
#else
#define FH_HAVE_TSC 0
#endif

typedef struct fh_tsc {
    uint64_t base_tsc;
    uint64_t base_ns;          /* CLOCK_REALTIME at base_tsc */
    uint64_t mult;             /* ns per tick, 32.32 fixed point */
    uint64_t hz;               /* measured ticks per second (0: no usable TSC) */
} fh_tsc_t;

static inline uint64_t fh_clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void fh_tsc_calibrate(fh_tsc_t *t);

FH_INLINE uint64_t fh_tsc_ns(const fh_tsc_t *t)
{
#if FH_HAVE_TSC
    if (FH_LIKELY(t->hz)) {
        const uint64_t d = __rdtsc() - t->base_tsc;
        return t->base_ns + (uint64_t)(((unsigned __int128)d * t->mult) >> 32);
    }
#endif
    return fh_clock_ns(CLOCK_REALTIME);
}

/* Raw stamps for intervals measured on the hot path: the TSC itself (no
 * conversion per stamp), turned into ns per interval by fh_tsc_delta_ns.
 * Without a usable TSC both are CLOCK_REALTIME ns. */
FH_INLINE uint64_t fh_tsc_ticks(const fh_tsc_t *t)
{
#if FH_HAVE_TSC
    if (FH_LIKELY(t->hz)) return __rdtsc();
#endif
    (void)t;
    return fh_clock_ns(CLOCK_REALTIME);
}

FH_INLINE uint64_t fh_tsc_delta_ns(const fh_tsc_t *t, uint64_t ticks)
{
    return t->hz ? (uint64_t)(((unsigned __int128)ticks * t->mult) >> 32) : ticks;
}

/* A raw stamp as ns since the epoch (what fh_tsc_ns would have read then). */
FH_INLINE uint64_t fh_tsc_ticks_ns(const fh_tsc_t *t, uint64_t ticks)
{
    return t->hz ? t->base_ns + fh_tsc_delta_ns(t, ticks - t->base_tsc) : ticks;
}

#endif
