/* model.h -- what the day is made of, apart from the order flow's messages:
 * the instruments and their activity, the schedule, the intraday rate, the
 * flat-rate time map and the price grid (model.c). */
#ifndef FH_GEN_MODEL_H
#define FH_GEN_MODEL_H

#include <stdint.h>

#include "gen.h"

/* Names everyone recognises lead the activity ranking (prices in Price(4)). */
typedef struct {
    const char *name;
    uint32_t price;
    uint8_t etp;
    uint8_t lev;
    uint8_t inv;
} fh_gen_famous_t;
#define FH_GEN_NFAMOUS 24u
extern const fh_gen_famous_t fh_gen_famous[];
/* Market participant ids (attributed adds, market-maker positions). */
#define FH_GEN_NMPID 16u
extern const char fh_gen_mpids[][5];

/* Square root by Newton's method (set-up only; keeps libm out of the link). */
double fh_gen_sqrt(double x);
/* Instruments: distinct tickers, sorted, with starting prices and ranks
 * (g->sym); -1 when out of memory. */
int fh_gen_symbols(fh_gen_t *g);
/* Zipf activity weight of an instrument by its rank. */
double fh_gen_weight(const fh_gen_sym_t *s);
/* The alias table fh_gen_pick_locate draws from; -1 when out of memory. */
int fh_gen_alias(fh_gen_t *g);

/* NOII imbalances in a day of `messages`: 1%. */
uint64_t fh_gen_noii_count(uint64_t messages);
/* The schedule: with g->sched NULL only counts g->nsched, else fills it. */
void fh_gen_build_schedule(fh_gen_t *g, uint64_t messages);
/* Sort the filled schedule by time, then map it into a flat-rate window. */
void fh_gen_sort_schedule(fh_gen_t *g);

/* The normal day's order flow by second (g->cdf); -1 when out of memory. */
int fh_gen_cdf(fh_gen_t *g);
/* Flat-rate mode: where a time of the normal day lands in the compressed one. */
uint64_t fh_gen_rate_map(const fh_gen_t *g, uint64_t t);

/* An instrument by activity: O(1) draw from the alias table. */
FH_INLINE uint32_t fh_gen_pick_locate(fh_gen_t *g, fh_gen_rng_t *r)
{
    uint64_t x = fh_gen_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * (uint64_t)g->nsym) >> 32);
    double u = (double)(x & 0xffffffffu) * 0x1.0p-32;
    return (u < g->alias_p[i] ? i : g->alias_i[i]) + 1;
}

/* Time of quantile u (non-decreasing calls, so the table walk is amortised O(1)). */
FH_INLINE uint64_t fh_gen_inv_cdf(fh_gen_t *g, double u)
{
    uint32_t k = g->cdf_pos;
    while (k < FH_GEN_FLOW_SECS - 1 && g->cdf[k + 1] <= u) k++;
    g->cdf_pos = k;
    double lo = g->cdf[k], hi = g->cdf[k + 1];
    double frac = hi > lo ? (u - lo) / (hi - lo) : 0.0;
    if (frac > 1.0) frac = 1.0;
    const double w = (double)(FH_GEN_FLOW_END - FH_GEN_FLOW_START) / FH_GEN_FLOW_SECS;
    return FH_GEN_FLOW_START + (uint64_t)(((double)k + frac) * w);
}

/* Burst size: one message, a few, or a sweep/reprice storm. */
FH_INLINE uint32_t fh_gen_burst(uint32_t r)
{
    uint32_t b = r & 255;
    if (b < 115) return 1;
    if (b < 192) return 2 + (r >> 8) % 3;
    if (b < 238) return 5 + (r >> 8) % 12;
    return 17 + (r >> 8) % 48;
}

/* ------------------------------------------------------------ price grid */

/* Tick size at a price, in Price(4) units. */
FH_INLINE uint32_t fh_gen_tick(uint32_t price) { return price >= 10000 ? 100 : 1; }

/* Nearest price on the tick grid ($0.01 from $1 up, $0.0001 below), never 0. */
FH_INLINE uint32_t fh_gen_grid(uint32_t price)
{
    if (price >= 10000) price = (price + 50) / 100 * 100;
    return price ? price : 1;
}

/* Neighbouring prices on the tick grid ($0.01 from $1 up, $0.0001 below). */
FH_INLINE uint32_t fh_gen_px_up(uint32_t p) { return p >= 10000 ? p + 100 : p + 1; }
FH_INLINE uint32_t fh_gen_px_down(uint32_t p) { return p > 10000 ? p - 100 : p - 1; }

#endif
