/* iex_pipe.h -- IEX TOPS, DEEP and DEEP+ past the session layer (iex_pipe.c):
 * an IEX-TP segment's messages decoded into book operations.  The pipeline
 * reaches it only through its upper-stage hooks (pipeline.h,
 * fh_pipe_upper_t.walk_iex), filled by the lane's constructor (lane.c). */
#ifndef FH_IEX_PIPE_H
#define FH_IEX_PIPE_H

#include "pipeline.h"

/* The messages of an IEX-TP segment of stream s (the whole UDP payload, its
 * header checked), from message `skip` on, into the books (or counted,
 * decode-only mode).  Out of line: one call per datagram, the walk and
 * decoder inlined inside it.  Returns how many messages were whole. */
uint32_t fh_pipe_walk_iex(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count, uint32_t skip);

#endif
