/* rng.h -- the generator's random numbers: xoshiro256** seeded by splitmix64.
 *
 * Each stream (the day's flow, the schedule, each line's loss) is its own
 * generator seeded from cfg->seed and a stream number, so that one setting
 * (a loss rate, say) never changes the draws of another.  The draws are
 * inline: the order flow takes several per message.
 */
#ifndef FH_GEN_RNG_H
#define FH_GEN_RNG_H

#include <stdint.h>

#include "fh_common.h"

typedef struct {
    uint64_t s[4];
} fh_gen_rng_t;

/* splitmix64: the next value of the sequence whose state is *x. */
uint64_t fh_gen_splitmix(uint64_t *x);
/* Seed r for stream `stream` of `seed`. */
void fh_gen_rng_seed(fh_gen_rng_t *r, uint64_t seed, uint64_t stream);

FH_INLINE uint64_t fh_gen_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

FH_INLINE uint64_t fh_gen_next(fh_gen_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = fh_gen_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = fh_gen_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n) by multiply-shift; the bias (< n / 2^32) is irrelevant here. */
FH_INLINE uint32_t fh_gen_below(fh_gen_rng_t *r, uint32_t n)
{
    return (uint32_t)(((fh_gen_next(r) >> 32) * (uint64_t)n) >> 32);
}

FH_INLINE double fh_gen_unit(fh_gen_rng_t *r) { return (double)(fh_gen_next(r) >> 11) * 0x1.0p-53; }

#endif
