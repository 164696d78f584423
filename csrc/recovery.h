/* recovery.h -- snapshot recovery (GLIMPSE 5.0), the stage above the pipeline
 * that rebuilds a stream's books from an exchange snapshot (recovery.c).  The
 * pipeline reaches it only through its upper-stage hooks (pipeline.h,
 * fh_pipe_upper_t), which the lane's constructor (lane.c) fills with these. */
#ifndef FH_SNAPSHOT_H
#define FH_SNAPSHOT_H

#include "pipeline.h"

/* The session layer's snapshot hook: stream s waits for a snapshot (ctx is the
 * lane).  A blocking replay fetches and applies it before returning. */
void fh_recovery_ask(void *ctx, fh_stream_t *s);
/* A live lane: apply a posted answer, or give up one past its deadline. */
void fh_recovery_poll(fh_lane_t *r);
/* The end of the input: a request still open is answered or given up. */
void fh_recovery_finish(fh_lane_t *r);

#endif
