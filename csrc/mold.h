/* mold.h -- MoldUDP64 downstream packets: header, message blocks, per-stream sequencing.
 *
 * A packet is a 20-byte header (session: 10 ASCII bytes, sequence: u64 BE of the
 * first message, count: u16 BE) then `count` blocks of (u16 BE length, payload).
 * count 0 is a heartbeat, 0xFFFF the end of the session; both carry the next
 * expected sequence number.
 *
 * A stream is one (UDP destination port, session): without a channel config
 * every group carrying the same session on one port is a line of the same
 * channel, so a copy from the B line is a duplicate, never a second message. */
#ifndef FH_MOLD_H
#define FH_MOLD_H

#include "fh_common.h"

#define FH_MOLD_HLEN        20
#define FH_MOLD_SESSION_LEN 10
#define FH_MOLD_HEARTBEAT   0
#define FH_MOLD_END         0xFFFF

/* A hole given up this far ahead of a stream that kept advancing in sequence
 * is a corrupt sequence number, not loss: 16 M messages is minutes of the
 * busiest feed lost on both lines, while the stream itself went on. */
#define FH_SEQ_IMPLAUSIBLE  (1ull << 24)

typedef struct fh_mold_stream {
    uint64_t next_seq;                      /* next sequence number expected */
    uint64_t hole_since;                    /* receive time a hole at next_seq was seen; 0 = none */
    uint64_t hole_end;                      /* a heartbeat said the stream reached this sequence */
    uint32_t pend_head;                     /* packets held behind the hole (pool index + 1), by sequence */
    uint16_t port;
    uint8_t  session[FH_MOLD_SESSION_LEN];
    uint32_t rr_ip;                         /* re-request server (host order), 0 = none */
    uint16_t rr_port;
    uint8_t  ended;                         /* end of session seen */
    uint8_t  silent;                        /* quiet past the silence timeout */
    uint8_t  gapped;                        /* lost messages for good (a gap): instruments first seen
                                             * after it are flagged stale too */
    uint64_t last_rx;                       /* receive time of its last packet (this lane's streams) */
    uint64_t hole_seq0;                     /* next_seq when the open hole was seen */
} fh_mold_stream_t;

typedef struct fh_mold_table {
    fh_mold_stream_t *v;                    /* preallocated at start-up */
    uint32_t n, cap;
    uint32_t last;                          /* index of the last hit: packets come in runs */
} fh_mold_table_t;

int  fh_mold_table_init(fh_mold_table_t *t, uint32_t cap);
void fh_mold_table_free(fh_mold_table_t *t);

/* The stream for (port, session), created on first sight; NULL when the table
 * is full (the caller counts it and decodes the packet unsequenced). */
FH_INLINE fh_mold_stream_t *fh_mold_lookup(fh_mold_table_t *t, uint16_t port, const uint8_t *session,
                                           uint64_t first_seq, uint64_t *n_streams)
{
    fh_mold_stream_t *s = &t->v[t->last];
    if (FH_LIKELY(t->n && s->port == port && memcmp(s->session, session, FH_MOLD_SESSION_LEN) == 0))
        return s;
    for (uint32_t i = 0; i < t->n; i++) {
        s = &t->v[i];
        if (s->port == port && memcmp(s->session, session, FH_MOLD_SESSION_LEN) == 0) {
            t->last = i;
            return s;
        }
    }
    if (t->n == t->cap) return NULL;
    s = &t->v[t->n];
    s->port = port;
    memcpy(s->session, session, FH_MOLD_SESSION_LEN);
    /* A capture may start mid-session: what came before it is not a gap. */
    s->next_seq = first_seq;
    t->last = t->n++;
    (*n_streams)++;
    return s;
}

/* Walk the blocks of one packet: blocks [0, skip) are counted as duplicates,
 * the rest go to sink(ctx, payload, len).  Returns how many blocks were whole.
 * Inlined with a constant sink, this compiles to a plain loop with no call. */
typedef void (*fh_mold_sink_fn)(void *ctx, const uint8_t *msg, size_t len);

FH_INLINE uint32_t fh_mold_walk(const uint8_t *p, size_t len, uint32_t count, uint32_t skip,
                                fh_mold_sink_fn sink, void *ctx, fh_stats_t *st)
{
    size_t off = FH_MOLD_HLEN;
    uint32_t i = 0;
    for (; i < count; i++) {
        if (FH_UNLIKELY(off + 2 > len)) { st->errors[FH_ERR_MOLD_COUNT_OVERRUN]++; return i; }
        const size_t blen = fh_be16(p + off);
        if (FH_UNLIKELY(blen > len - off - 2)) { st->errors[FH_ERR_MOLD_BLOCK_OVERRUN]++; return i; }
        if (FH_UNLIKELY(i < skip)) st->duplicates++;
        else if (FH_UNLIKELY(blen == 0)) st->errors[FH_ERR_MOLD_ZERO_BLOCK]++;
        else sink(ctx, p + off + 2, blen);
        off += 2 + blen;
    }
    if (FH_UNLIKELY(off != len)) st->errors[FH_ERR_MOLD_TRAILING]++;
    return i;
}

#endif
