/* itch_writer.h -- NASDAQ TotalView-ITCH 5.0 messages (itch_writer.c).
 *
 * A message is written once, as a BinaryFILE record (u16 BE length, then the
 * message) in PREFIX.bin's buffer, which is byte for byte a MoldUDP64 message
 * block, and copied into its channel's open packet.  The order-flow writers
 * are inline: flow.c writes one of them per message. */
#ifndef FH_GEN_ITCH_WRITER_H
#define FH_GEN_ITCH_WRITER_H

#include <stdint.h>
#include <string.h>

#include "gen.h"
#include "packets.h"

/* One scheduled message; field values drawn now, from the current market. */
void fh_gen_itch_scheduled(fh_gen_t *g, const fh_gen_sched_t *e);

/* Start a message: flush what must go first, then write the BinaryFILE record
 * header and the ITCH common header; returns the record (length prefix first). */
FH_INLINE uint8_t *fh_gen_itch_begin(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint32_t locate,
                                     uint64_t ts)
{
    fh_gen_advance(g, ts);
    if (ch->count && ch->len + 2 + len > g->frame_limit)
        fh_gen_send(g, (uint32_t)(ch - g->ch), (uint16_t)ch->count, ch->last_ts);
    uint8_t *rec = fh_gen_out_reserve(&g->bin, 2 + (size_t)len);
    fh_put_be16(rec, (uint16_t)len);
    rec[2] = type;
    fh_put_be16(rec + 3, (uint16_t)locate);
    fh_put_be16(rec + 5, ch->tracking);
    fh_put_be48(rec + 7, ts);
    return rec;
}

/* Finish it: into the channel's open packet, counted. */
FH_INLINE void fh_gen_itch_end(fh_gen_t *g, fh_gen_chan_t *ch, const uint8_t *rec, uint32_t len, uint64_t ts)
{
    /* a fixed-size copy (vector moves) beats an exact one (rep movs) for
     * records this small; frame and buffers carry FH_GEN_SLACK spare bytes */
    memcpy(ch->frame + ch->len, rec, FH_GEN_REC_COPY);
    ch->len += 2 + len;
    if (ch->count++ == 0) {
        ch->first_ts = ts;
        fh_gen_set_ev(g, (uint32_t)(ch - g->ch), ts + g->batch_ns);
    }
    ch->last_ts = ts;
    ch->messages++;
    g->bin.pos += 2 + (size_t)len;
    g->by_type[rec[2]]++;
    if (FH_UNLIKELY(g->emitted == 0)) g->first_ts = ts;   /* messages go out in time order */
    if (FH_UNLIKELY((++g->emitted & (FH_GEN_PROGRESS_EVERY - 1)) == 0) && g->progress) *g->progress = g->emitted;
}

FH_INLINE void fh_gen_stock(uint8_t *dst, const fh_gen_sym_t *s) { memcpy(dst, s->stock, 8); }

/* ------------------------------------------------------------ order flow */

/* Add Order (A), or with an MPID Add Order with attribution (F). */
FH_INLINE void fh_gen_itch_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint32_t locate, uint64_t ts,
                               uint64_t ref, uint8_t side, uint32_t shares, uint32_t px, const char *mpid)
{
    uint32_t len = mpid ? FH_ITCH_LEN_F : FH_ITCH_LEN_A;
    uint8_t *m = fh_gen_itch_begin(g, ch, mpid ? 'F' : 'A', len, locate, ts) + 2;
    fh_put_be64(m + 11, ref);
    m[19] = side;
    fh_put_be32(m + 20, shares);
    fh_gen_stock(m + 24, s);
    fh_put_be32(m + 32, px);
    if (mpid) memcpy(m + 36, mpid, 4);
    fh_gen_itch_end(g, ch, m - 2, len, ts);
}

/* Order Delete (D). */
FH_INLINE void fh_gen_itch_delete(fh_gen_t *g, fh_gen_chan_t *ch, uint32_t locate, uint64_t ts, uint64_t ref)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'D', FH_ITCH_LEN_D, locate, ts) + 2;
    fh_put_be64(m + 11, ref);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_D, ts);
}

/* Order Cancel (X): part of an order's shares. */
FH_INLINE void fh_gen_itch_cancel(fh_gen_t *g, fh_gen_chan_t *ch, uint32_t locate, uint64_t ts, uint64_t ref,
                                  uint32_t shares)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'X', FH_ITCH_LEN_X, locate, ts) + 2;
    fh_put_be64(m + 11, ref);
    fh_put_be32(m + 19, shares);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_X, ts);
}

/* Order Executed (E). */
FH_INLINE void fh_gen_itch_exec(fh_gen_t *g, fh_gen_chan_t *ch, uint32_t locate, uint64_t ts, uint64_t ref,
                                uint32_t shares, uint64_t match)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'E', FH_ITCH_LEN_E, locate, ts) + 2;
    fh_put_be64(m + 11, ref);
    fh_put_be32(m + 19, shares);
    fh_put_be64(m + 23, match);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_E, ts);
}

/* Order Executed With Price (C): printable 'Y' or 'N', the execution price. */
FH_INLINE void fh_gen_itch_exec_price(fh_gen_t *g, fh_gen_chan_t *ch, uint32_t locate, uint64_t ts, uint64_t ref,
                                      uint32_t shares, uint64_t match, uint8_t printable, uint32_t px)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'C', FH_ITCH_LEN_C, locate, ts) + 2;
    fh_put_be64(m + 11, ref);
    fh_put_be32(m + 19, shares);
    fh_put_be64(m + 23, match);
    m[31] = printable;
    fh_put_be32(m + 32, px);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_C, ts);
}

/* Order Replace (U): the old reference, the new one, its shares and price. */
FH_INLINE void fh_gen_itch_replace(fh_gen_t *g, fh_gen_chan_t *ch, uint32_t locate, uint64_t ts, uint64_t old,
                                   uint64_t ref, uint32_t shares, uint32_t px)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'U', FH_ITCH_LEN_U, locate, ts) + 2;
    fh_put_be64(m + 11, old);
    fh_put_be64(m + 19, ref);
    fh_put_be32(m + 27, shares);
    fh_put_be32(m + 31, px);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_U, ts);
}

/* Trade (P), non-displayed: NASDAQ zeroes the order reference. */
FH_INLINE void fh_gen_itch_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint32_t locate, uint64_t ts,
                                 uint8_t side, uint32_t shares, uint32_t px, uint64_t match)
{
    uint8_t *m = fh_gen_itch_begin(g, ch, 'P', FH_ITCH_LEN_P, locate, ts) + 2;
    fh_put_be64(m + 11, 0);
    m[19] = side;
    fh_put_be32(m + 20, shares);
    fh_gen_stock(m + 24, s);
    fh_put_be32(m + 32, px);
    fh_put_be64(m + 36, match);
    fh_gen_itch_end(g, ch, m - 2, FH_ITCH_LEN_P, ts);
}

#endif
