/* hist.h -- latency histograms: HdrHistogram-style log-linear buckets.
 *
 * 3 significant digits from 1 ns to 2^35 ns (34 s): values are bucketed by
 * their highest set bit, and within a bucket by their next 11 bits, so any
 * recorded value is known to within 1/2048 of itself.  Recording is two shifts,
 * a count-leading-zeros and an increment: no allocation, no branch on the data
 * beyond the clamp.  Layout shared with Python (fh_api.h: fh_hist_t). */
#ifndef FH_HIST_H
#define FH_HIST_H

#include "fh_common.h"

#define FH_HIST_SUB_BITS 11u                          /* 2048 sub-buckets: 3 significant digits */
#define FH_HIST_SUB_HALF (1u << (FH_HIST_SUB_BITS - 1))
#define FH_HIST_MAX_NS ((1ull << 35) - 1)

FH_INLINE uint32_t fh_hist_index(uint64_t v)
{
    const uint32_t msb = 63u - (uint32_t)__builtin_clzll(v | (FH_HIST_SUB_HALF * 2 - 1));
    const uint32_t bucket = msb - (FH_HIST_SUB_BITS - 1);            /* 0 for values < 2048 */
    const uint32_t sub = (uint32_t)(v >> bucket);                    /* in [1024, 2048) for bucket > 0 */
    return bucket == 0 ? (uint32_t)v : bucket * FH_HIST_SUB_HALF + sub;
}

/* Lowest and highest value that share bucket `i` (fh_hist_index). */
FH_INLINE uint64_t fh_hist_lowest(uint32_t i)
{
    if (i < 2 * FH_HIST_SUB_HALF) return i;
    const uint32_t b = i / FH_HIST_SUB_HALF - 1, sub = i - b * FH_HIST_SUB_HALF;
    return (uint64_t)sub << b;
}

FH_INLINE uint64_t fh_hist_highest(uint32_t i)
{
    if (i < 2 * FH_HIST_SUB_HALF) return i;
    const uint32_t b = i / FH_HIST_SUB_HALF - 1, sub = i - b * FH_HIST_SUB_HALF;
    return (((uint64_t)sub + 1) << b) - 1;
}

/* The hot path's record: the bucket and the sum only (the value above the
 * range clamped and counted as overflow); the value recorded is returned.
 * count, min and max are made from the buckets by fh_hist_settle when the
 * histogram is read (exact below 2048, the highest/lowest value of their
 * bucket above: 3 significant digits, as every percentile).  About half of
 * fh_hist_record's instructions, on every stamped packet. */
FH_INLINE uint64_t fh_hist_tally(fh_hist_t *h, uint64_t v)
{
    if (FH_UNLIKELY(v > FH_HIST_MAX_NS)) {
        h->overflow++;
        v = FH_HIST_MAX_NS;
    }
    h->counts[fh_hist_index(v)]++;
    h->sum += v;
    return v;
}

/* A value, with count, min and max kept exact as it goes. */
FH_INLINE void fh_hist_record(fh_hist_t *h, uint64_t v)
{
    v = fh_hist_tally(h, v);
    h->count++;
    if (v < h->min || h->count == 1) h->min = v;
    if (v > h->max) h->max = v;
}

/* count, min and max of a histogram recorded with fh_hist_tally, from its
 * buckets (cold: once per read). */
void fh_hist_settle(fh_hist_t *h);

#endif
