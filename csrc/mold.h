/* mold.h -- MoldUDP64 on the wire: the downstream packet and its message blocks.
 *
 * A packet is a 20-byte header (session: 10 ASCII bytes, sequence: u64 BE of the
 * first message, count: u16 BE) then `count` blocks of (u16 BE length, payload).
 * count 0 is a heartbeat, 0xFFFF the end of the session; both carry the next
 * expected sequence number.  A re-request is a bare header (session, first
 * sequence wanted, count wanted).  Sequencing (streams, A/B lines, holes) is
 * the session layer's (session.h). */
#ifndef FH_MOLD_H
#define FH_MOLD_H

#include "fh_common.h"

#define FH_MOLD_HLEN 20
#define FH_MOLD_SESSION_LEN 10
#define FH_MOLD_HEARTBEAT 0
#define FH_MOLD_END 0xFFFF

/* Walk the blocks of one packet: blocks [0, skip) are counted as duplicates,
 * the rest go to sink(ctx, payload, len).  Returns how many blocks were whole.
 * Inlined with a constant sink, this compiles to a plain loop with no call. */
typedef void (*fh_mold_sink_fn)(void *ctx, const uint8_t *msg, size_t len);

FH_INLINE uint32_t fh_mold_walk(const uint8_t *p, size_t len, uint32_t count, uint32_t skip, fh_mold_sink_fn sink,
                                void *ctx, fh_stats_t *st)
{
    size_t off = FH_MOLD_HLEN;
    uint32_t i = 0;
    for (; i < count; i++) {
        if (FH_UNLIKELY(off + 2 > len)) {
            st->errors[FH_ERR_MOLD_COUNT_OVERRUN]++;
            return i;
        }
        const size_t blen = fh_be16(p + off);
        if (FH_UNLIKELY(blen > len - off - 2)) {
            st->errors[FH_ERR_MOLD_BLOCK_OVERRUN]++;
            return i;
        }
        if (FH_UNLIKELY(i < skip)) st->duplicates++;
        else if (FH_UNLIKELY(blen == 0)) st->errors[FH_ERR_MOLD_ZERO_BLOCK]++;
        else sink(ctx, p + off + 2, blen);
        off += 2 + blen;
    }
    if (FH_UNLIKELY(off != len)) st->errors[FH_ERR_MOLD_TRAILING]++;
    return i;
}

#endif
