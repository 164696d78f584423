/* pace.h -- a lane's pacing (fh_lane_t.pace, --speed): capture time mapped
 * to wall time.  The first paced timestamp is replayed at once; each later
 * one is due at wall0 + (ts - capture0) * scale.  The wait itself is the
 * pipeline's (fh_pipe_pace), which also refreshes counters and looks for a
 * stop while it spins. */
#ifndef FH_PACE_H
#define FH_PACE_H

#include "fh_common.h"

typedef struct fh_pace {
    double scale;                 /* wall ns per capture ns (1/speed); 0 = no pacing */
    uint64_t capture0;              /* first capture time paced (0 = none yet) */
    uint64_t wall0;                 /* the wall time (TSC ns) it was replayed at */
} fh_pace_t;

/* When capture time ts is due (wall TSC ns), `now` being the wall clock
 * should this be the first timestamp paced.  Capped at 2^62 ns (146 years):
 * a hostile timestamp jump must not overflow the cast (undefined) or wrap. */
FH_INLINE uint64_t fh_pace_due(fh_pace_t *p, uint64_t ts, uint64_t now)
{
    if (FH_UNLIKELY(p->capture0 == 0)) {
        p->capture0 = ts;
        p->wall0 = now;
        return now;
    }
    if (ts <= p->capture0) return p->wall0;     /* as early as the first: due at once */
    const double wait_ns = (double)(ts - p->capture0) * p->scale;
    return p->wall0 + (wait_ns < 4.6e18 ? (uint64_t)wait_ns : (uint64_t)1 << 62);
}

#endif
