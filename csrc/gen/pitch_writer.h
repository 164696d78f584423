/* pitch_writer.h -- Cboe US Equities Multicast PITCH messages (pitch_writer.c).
 *
 * A message is written in place at the end of its unit's open packet
 * (fh_pg_begin .. fh_pg_end), a Time message first whenever the unit enters
 * a new second.  The small order-flow writers are inline: flow.c writes one
 * of them per message. */
#ifndef FH_GEN_PITCH_WRITER_H
#define FH_GEN_PITCH_WRITER_H

#include <stdint.h>

#include "gen.h"
#include "packets.h"

/* Add Order: Short, Long or (a long ticker, or an MPID) Expanded. */
void fh_pg_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint8_t side,
               uint32_t qty, uint32_t px, const char *mpid);
/* Trade against non-displayed interest (ITCH P). */
void fh_pg_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t side, uint32_t qty,
                 uint32_t px, uint64_t exec);
/* One scheduled message (the schedule holds only H h Q I B on a PITCH day). */
void fh_pg_scheduled(fh_gen_t *g, const fh_gen_sched_t *e);
/* End of Session on unit ch at ts. */
void fh_pg_end_of_session(fh_gen_t *g, fh_gen_chan_t *ch, uint64_t ts);

/* Count a PITCH message of `len` bytes just written at the end of unit ch's
 * open packet. */
FH_INLINE void fh_pg_count(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint64_t ts)
{
    if (FH_UNLIKELY(g->emitted + g->time_msgs == 0)) g->first_ts = ts;
    ch->len += len;
    if (ch->count++ == 0) {
        ch->first_ts = ts;
        fh_gen_set_ev(g, (uint32_t)(ch - g->ch), ts + g->batch_ns);
    }
    ch->last_ts = ts;
    ch->messages++;
    g->by_type[type]++;
}

/* Start a PITCH message of `len` bytes on unit ch at ts (ns since midnight):
 * flush what must go first, send the packet if the message (and a Time before
 * it) would overflow it, write a Time message when ts is in a new second for
 * the unit, then the message's Length, Type and Time Offset.  The message is
 * written in place, at the end of the unit's open packet. */
FH_INLINE uint8_t *fh_pg_begin(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint64_t ts)
{
    fh_gen_advance(g, ts);
    int tick = !ch->timed || ts - ch->tbase >= FH_GEN_NS_PER_S;
    uint32_t need = len + (tick ? FH_PITCH_LEN_TIME : 0), nm = tick ? 2 : 1;
    if (ch->count && (ch->len + need > g->frame_limit || ch->count + nm > FH_GEN_PITCH_MAX_COUNT))
        fh_gen_send(g, (uint32_t)(ch - g->ch), (uint16_t)ch->count, ch->last_ts);
    if (tick) {
        uint64_t sec = ts / FH_GEN_NS_PER_S;
        uint8_t *t = ch->frame + ch->len;
        ch->tbase = sec * FH_GEN_NS_PER_S;
        ch->timed = 1;
        t[0] = FH_PITCH_LEN_TIME;
        t[1] = FH_PITCH_TYPE_TIME;
        fh_gen_put_le32(t + 2, (uint32_t)sec);
        fh_pg_count(g, ch, FH_PITCH_TYPE_TIME, FH_PITCH_LEN_TIME, ts);
        g->time_msgs++;
    }
    uint8_t *m = ch->frame + ch->len;
    m[0] = (uint8_t)len;
    m[1] = type;
    fh_gen_put_le32(m + 2, (uint32_t)(ts - ch->tbase));
    return m;
}

/* Finish it (m from fh_pg_begin). */
FH_INLINE void fh_pg_end(fh_gen_t *g, fh_gen_chan_t *ch, const uint8_t *m, uint64_t ts)
{
    fh_pg_count(g, ch, m[1], m[0], ts);
    if (FH_UNLIKELY((++g->emitted & (FH_GEN_PROGRESS_EVERY - 1)) == 0) && g->progress) *g->progress = g->emitted;
}

/* The Short forms carry a 2-byte quantity and a 2-decimal 2-byte price, and
 * 6-character symbols: a message (or one about an order) uses them only when
 * its symbol, quantity and price all fit. */
FH_INLINE int fh_pg_short(const fh_gen_sym_t *s, uint32_t qty, uint32_t px)
{
    return !s->xsym && qty <= 0xFFFFu && px % 100 == 0 && px <= 6553500u;
}

/* ------------------------------------------------------------ order flow */

/* Delete Order. */
FH_INLINE void fh_pg_delete(fh_gen_t *g, fh_gen_chan_t *ch, uint64_t ts, uint64_t id)
{
    uint8_t *m = fh_pg_begin(g, ch, FH_PITCH_TYPE_DELETE, FH_PITCH_LEN_DELETE, ts);
    fh_gen_put_le64(m + 6, id);
    fh_pg_end(g, ch, m, ts);
}

/* Reduce Size: Short when the order's price (px) and the quantity fit. */
FH_INLINE void fh_pg_reduce(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id,
                            uint32_t qty, uint32_t px)
{
    uint8_t *m;
    if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_REDUCE_SHORT, FH_PITCH_LEN_REDUCE_SHORT, ts);
        fh_gen_put_le16(m + 14, (uint16_t)qty);
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_REDUCE_LONG, FH_PITCH_LEN_REDUCE_LONG, ts);
        fh_gen_put_le32(m + 14, qty);
    }
    fh_gen_put_le64(m + 6, id);
    fh_pg_end(g, ch, m, ts);
}

/* Order Executed. */
FH_INLINE void fh_pg_exec(fh_gen_t *g, fh_gen_chan_t *ch, uint64_t ts, uint64_t id, uint32_t qty, uint64_t exec)
{
    uint8_t *m = fh_pg_begin(g, ch, FH_PITCH_TYPE_EXECUTED, FH_PITCH_LEN_EXECUTED, ts);
    fh_gen_put_le64(m + 6, id);
    fh_gen_put_le32(m + 14, qty);
    fh_gen_put_le64(m + 18, exec);
    fh_pg_end(g, ch, m, ts);
}

/* Order Executed at Price: away from the displayed price, `left` shares left. */
FH_INLINE void fh_pg_exec_price(fh_gen_t *g, fh_gen_chan_t *ch, uint64_t ts, uint64_t id, uint32_t qty, uint32_t left,
                                uint64_t exec, uint32_t px)
{
    uint8_t *m = fh_pg_begin(g, ch, FH_PITCH_TYPE_EXECUTED_PRICE, FH_PITCH_LEN_EXECUTED_PRICE, ts);
    fh_gen_put_le64(m + 6, id);
    fh_gen_put_le32(m + 14, qty);
    fh_gen_put_le32(m + 18, left);
    fh_gen_put_le64(m + 22, exec);
    fh_gen_put_le64(m + 30, px);
    fh_pg_end(g, ch, m, ts);
}

/* Modify Order: the same order id, its new size and price; bit 1 of the
 * flags says whether it kept its time priority. */
FH_INLINE void fh_pg_modify(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id,
                            uint32_t qty, uint32_t px, int keep)
{
    uint8_t *m, flags = (uint8_t)(0x01 | (keep ? 0x02 : 0));
    if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_MODIFY_SHORT, FH_PITCH_LEN_MODIFY_SHORT, ts);
        fh_gen_put_le64(m + 6, id);
        fh_gen_put_le16(m + 14, (uint16_t)qty);
        fh_gen_put_le16(m + 16, (uint16_t)(px / 100));
        m[18] = flags;
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_MODIFY_LONG, FH_PITCH_LEN_MODIFY_LONG, ts);
        fh_gen_put_le64(m + 6, id);
        fh_gen_put_le32(m + 14, qty);
        fh_gen_put_le64(m + 18, px);
        m[26] = flags;
    }
    fh_pg_end(g, ch, m, ts);
}

#endif
