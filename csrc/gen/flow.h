/* flow.h -- the order flow (flow.c): one message at a time, on the
 * instrument the run loop picked. */
#ifndef FH_GEN_FLOW_H
#define FH_GEN_FLOW_H

#include <stdint.h>

#include "gen.h"

/* The flow types' cumulative weights, every type still to be emitted. */
void fh_gen_flow_init(fh_gen_t *g);
/* One order-flow message on instrument `focus` at ts; with force, of the
 * first type the day has not had yet (g->need). */
void fh_gen_flow(fh_gen_t *g, uint32_t focus, uint64_t ts, int force);

/* The shares of D/X/U that cancel an old order and of adds that do instead,
 * by the day clock: the day, the last quarter hour before the close, after it. */
FH_INLINE void fh_gen_phase(fh_gen_t *g, uint64_t dnow)
{
    int k = dnow < FH_GEN_HMS(15, 45, 0) ? 0 : dnow < FH_GEN_HMS(16, 0, 0) ? 1 : 2;
    static const uint32_t q_old[3] = {FH_GEN_OLD_Q_DAY, FH_GEN_OLD_Q_CLOSE, FH_GEN_OLD_Q_AFTER};
    static const uint32_t q_drain[3] = {0, FH_GEN_DRAIN_Q_CLOSE, FH_GEN_DRAIN_Q_AFTER};
    g->q_old = q_old[k] << 16;
    g->q_drain = q_drain[k] << 16;
}

#endif
