/* pitch_writer.c -- Cboe PITCH messages: Add Order and Trade (Short, Long or
 * Expanded), the schedule's messages (trading status, auction update and
 * summary, trade break) and End of Session.  (The order flow's other messages
 * are the inline writers of pitch_writer.h.) */
#include <stdint.h>
#include <string.h>

#include "pitch_writer.h"
#include "model.h"

/* An add (A) or attributed add (F, mpid: it goes out as Add Order Expanded
 * with its Participant ID). */
void fh_pg_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint8_t side,
               uint32_t qty, uint32_t px, const char *mpid)
{
    uint8_t *m;
    if (s->xsym || mpid) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_EXPANDED, FH_PITCH_LEN_ADD_EXPANDED, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 8);
        fh_gen_put_le64(m + 27, px);
        m[35] = 0x01;                              /* displayed */
        memcpy(m + 36, mpid ? mpid : "    ", 4);
        m[40] = 'N';                               /* customer indicator: non-customer */
    } else if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_SHORT, FH_PITCH_LEN_ADD_SHORT, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le16(m + 15, (uint16_t)qty);
        memcpy(m + 17, s->stock, 6);
        fh_gen_put_le16(m + 23, (uint16_t)(px / 100));
        m[25] = 0x01;
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_LONG, FH_PITCH_LEN_ADD_LONG, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 6);
        fh_gen_put_le64(m + 25, px);
        m[33] = 0x01;
    }
    fh_pg_end(g, ch, m, ts);
}

/* A trade against non-displayed interest (ITCH P): order id 0. */
void fh_pg_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t side, uint32_t qty,
                 uint32_t px, uint64_t exec)
{
    uint8_t *m;
    if (s->xsym) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_EXPANDED, FH_PITCH_LEN_TRADE_EXPANDED, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 8);
        fh_gen_put_le64(m + 27, px);
        fh_gen_put_le64(m + 35, exec);
    } else if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_SHORT, FH_PITCH_LEN_TRADE_SHORT, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le16(m + 15, (uint16_t)qty);
        memcpy(m + 17, s->stock, 6);
        fh_gen_put_le16(m + 23, (uint16_t)(px / 100));
        fh_gen_put_le64(m + 25, exec);
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_LONG, FH_PITCH_LEN_TRADE_LONG, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 6);
        fh_gen_put_le64(m + 25, px);
        fh_gen_put_le64(m + 33, exec);
    }
    fh_pg_end(g, ch, m, ts);
}

/* One scheduled PITCH message (the schedule holds only H h Q I B then). */
void fh_pg_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    fh_gen_chan_t *ch = &g->ch[e->ch];
    fh_gen_sym_t *s = &g->sym[e->locate];
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r, b = (uint32_t)(r >> 32);
    uint64_t ts = e->ts;
    uint8_t *m;
    switch (e->type) {
    case 'H':
    case 'h':
        /* trading action / operational halt: 'T' trading, 'H' halted, 'Q' quote-only */
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADING_STATUS, FH_PITCH_LEN_TRADING_STATUS, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        m[15] = '0';                       /* Reg SHO: no price test */
        m[16] = ' ';
        m[17] = ' ';
        break;
    case 'Q': {
        /* opening / closing / halt cross */
        uint32_t sh = e->arg == 'H' ? 100u * (1 + a % 500) : 100u * (1 + a % 20000);
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_AUCTION_SUMMARY, FH_PITCH_LEN_AUCTION_SUMMARY, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        fh_gen_put_le64(m + 15, s->mid);
        fh_gen_put_le32(m + 23, s->rank < 50 ? sh * 10 : sh);
        break;
    }
    case 'I': {
        /* imbalance before a cross */
        uint32_t p = s->mid, tk = fh_gen_tick(p);
        uint32_t paired = 100u * (1 + a % 5000), imb = 100u * (b % 800);
        int buy = (b >> 20) & 1;
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_AUCTION_UPDATE, FH_PITCH_LEN_AUCTION_UPDATE, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        fh_gen_put_le64(m + 15, p);
        fh_gen_put_le32(m + 23, paired + (buy ? imb : 0));
        fh_gen_put_le32(m + 27, paired + (buy ? 0 : imb));
        fh_gen_put_le64(m + 31, fh_gen_grid(p + tk * ((a >> 20) % 3)));
        fh_gen_put_le64(m + 39, fh_gen_grid(p + tk * ((a >> 24) % 5)));
        break;
    }
    case 'B': {
        /* break the instrument's last execution (or the unit's, or the venue's) */
        uint64_t x = s->last_match ? s->last_match : ch->last_match ? ch->last_match : g->match;
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_BREAK, FH_PITCH_LEN_TRADE_BREAK, ts);
        fh_gen_put_le64(m + 6, x);
        break;
    }
    default:
        return;
    }
    fh_pg_end(g, ch, m, ts);
}

void fh_pg_end_of_session(fh_gen_t *g, fh_gen_chan_t *ch, uint64_t ts)
{
    uint8_t *m = fh_pg_begin(g, ch, FH_PITCH_TYPE_END_OF_SESSION, FH_PITCH_LEN_END_OF_SESSION, ts);
    fh_pg_end(g, ch, m, ts);
}
