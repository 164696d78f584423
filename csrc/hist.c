/* hist.c -- histogram queries and merging (cold paths). */
#include "hist.h"

_Static_assert(FH_HIST_COUNTS == (35 - FH_HIST_SUB_BITS + 2) * FH_HIST_SUB_HALF, "bucket count");

void fh_hist_merge(fh_hist_t *into, const fh_hist_t *from)
{
    if (!from->count) return;
    if (!into->count || from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
    into->count += from->count;
    into->overflow += from->overflow;
    into->sum += from->sum;
    for (uint32_t i = 0; i < FH_HIST_COUNTS; i++) into->counts[i] += from->counts[i];
}

uint64_t fh_hist_value_at(const fh_hist_t *h, double pct)
{
    if (!h->count) return 0;
    if (pct <= 0) return h->min;
    if (pct >= 100) return h->max;
    /* The rank of the smallest value with at least pct% at or below it. */
    const double exact = pct / 100.0 * (double)h->count;
    uint64_t want = (uint64_t)exact;
    if ((double)want < exact - 1e-9) want++;
    if (want < 1) want = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < FH_HIST_COUNTS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            const uint64_t v = fh_hist_highest(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

void fh_hist_settle(fh_hist_t *h)
{
    uint64_t n = 0;
    uint32_t lo = FH_HIST_COUNTS, hi = 0;
    for (uint32_t i = 0; i < FH_HIST_COUNTS; i++)
        if (h->counts[i]) {
            n += h->counts[i];
            if (lo == FH_HIST_COUNTS) lo = i;
            hi = i;
        }
    h->count = n;
    h->min = n ? fh_hist_lowest(lo) : 0;
    h->max = n ? fh_hist_highest(hi) : 0;
}
