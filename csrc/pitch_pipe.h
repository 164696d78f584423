/* pitch_pipe.h -- Cboe PITCH past the session layer (pitch_pipe.c): a
 * sequenced unit's messages decoded into book operations.  The pipeline
 * reaches it only through its upper-stage hooks (pipeline.h,
 * fh_pipe_upper_t.walk_pitch), filled by the lane's constructor (lane.c). */
#ifndef FH_PITCH_PIPE_H
#define FH_PITCH_PIPE_H

#include "pipeline.h"

/* The messages of a PITCH sequenced unit of stream s, from message `skip` on,
 * into the books (or counted, decode-only mode).  Out of line: one call per
 * datagram, the walk and decoder inlined inside it.  Returns how many
 * messages were whole (fh_pitch_walk). */
uint32_t fh_pipe_walk_pitch(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count,
                            uint32_t skip);

#endif
