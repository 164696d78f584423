/* iex_writer.c -- IEX TOPS, DEEP and DEEP+ messages (iex_writer.h says how the
 * three feeds follow one order flow).
 *
 * Messages are written in place at the end of the channel's open IEX-TP
 * segment as blocks of (u16 LE length, message), every field little-endian,
 * prices the model's Price(4) as signed 8-byte integers, timestamps ns since
 * the Unix epoch (FH_GEN_MIDNIGHT_NS + the day's time).
 *
 * The schedule (model.c) maps onto IEX as:
 *   S  System Event (ITCH 'Q' start of market hours is IEX 'R'); 'C' End of
 *      Messages is the session's last message
 *   R  Security Directory, IEX-listed symbols only (fh_iex_listed)
 *   H  Trading Status: the pre-market spin 'T'; LULD halts as 'H' ("T1") on
 *      even locates and 'P' (paused) on odd ones, 'O' ("T2", order acceptance)
 *      before the halt cross, 'T' again after it
 *   h  Operational Halt 'O' / 'N';  L  Operational Halt 'N' (spin)
 *   Y  Short Sale Price Test;  N  Retail Liquidity Indicator
 *   Q  cross: a Trade (Report) flagged single-price cross; opening and
 *      closing crosses also an Official Price (TOPS, DEEP; listed symbols) and
 *      a Security Event (DEEP, DEEP+)
 *   I, J  Auction Information (TOPS, DEEP; listed symbols): imbalances before
 *      the opening and closing crosses, the halt auction of a LULD pause
 *   B  Trade Break of the symbol's last trade
 *   c  (IEX only) Clear Book: DEEP+ 'C'; DEEP every level to 0; TOPS an empty quote
 * Every feed draws the same random number per scheduled message, written or not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iex_writer.h"
#include "book.h"
#include "model.h"

int fh_iex_init(fh_gen_t *g)
{
    const fh_gen_cfg_t *cfg = g->cfg;
    fh_gen_iex_t *x = calloc(1, sizeof *x);
    if (!x) return -1;
    g->iex = x;
    x->proto = cfg->protocol;
    x->proto_id = (uint16_t)(cfg->protocol == FH_GEN_PROTO_IEX_TOPS   ? FH_IEX_PROTO_TOPS
                             : cfg->protocol == FH_GEN_PROTO_IEX_DEEP ? FH_IEX_PROTO_DEEP
                                                                      : FH_IEX_PROTO_DEEPPLUS);
    x->sessions = cfg->units ? cfg->units : 1;
    size_t n = (size_t)g->nsym + 1;
    x->status = malloc(n);
    x->ophalt = malloc(n);
    x->ssp = calloc(n, 1);
    x->tr_fl = calloc(n, 1);
    x->reason = malloc(n * sizeof *x->reason);
    x->tr_px = calloc(n, sizeof *x->tr_px);
    x->tr_sz = calloc(n, sizeof *x->tr_sz);
    if (!x->status || !x->ophalt || !x->ssp || !x->tr_fl || !x->reason || !x->tr_px || !x->tr_sz) return -1;
    memset(x->status, 'T', n);
    memset(x->ophalt, 'N', n);
    memset(x->reason, ' ', n * sizeof *x->reason);
    return 0;
}

void fh_iex_free(fh_gen_t *g)
{
    fh_gen_iex_t *x = g->iex;
    if (!x) return;
    free(x->status);
    free(x->ophalt);
    free(x->ssp);
    free(x->tr_fl);
    free(x->reason);
    free(x->tr_px);
    free(x->tr_sz);
    free(x);
    g->iex = NULL;
}

/* ------------------------------------------------------------ writing */

/* Start a message of `len` bytes at ts: run what falls before it, send the
 * open segment if the message would overflow it, then the block's length,
 * the type and the Timestamp (at offset 2 in every IEX message).  Returns
 * the message (its type byte); the rest of it is zeroed. */
static uint8_t *fh_iex_begin(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint64_t ts)
{
    fh_gen_advance(g, ts);
    if (ch->count && ch->len + 2 + len > g->frame_limit)
        fh_gen_send(g, (uint32_t)(ch - g->ch), (uint16_t)ch->count, ch->last_ts);
    uint8_t *b = ch->frame + ch->len;
    fh_gen_put_le16(b, (uint16_t)len);
    memset(b + 2, 0, len);
    b[2] = type;
    fh_gen_put_le64(b + 4, FH_GEN_MIDNIGHT_NS + ts);
    return b + 2;
}

/* Finish it: into the segment, counted. */
static void fh_iex_end(fh_gen_t *g, fh_gen_chan_t *ch, const uint8_t *m, uint32_t len, uint64_t ts)
{
    fh_gen_iex_session_t *ss = &g->iex->sess[g->iex->session];
    if (FH_UNLIKELY(g->emitted == 0)) g->first_ts = ts;
    if (ss->messages++ == 0) ss->first_ts = ts;
    ss->last_ts = ts;
    ch->len += 2 + len;
    if (ch->count++ == 0) {
        ch->first_ts = ts;
        fh_gen_set_ev(g, (uint32_t)(ch - g->ch), ts + g->batch_ns);
    }
    ch->last_ts = ts;
    ch->messages++;
    g->by_type[m[0]]++;
    g->emitted++;
}

FH_INLINE void fh_iex_sym(uint8_t *m, const fh_gen_sym_t *s) { memcpy(m + 10, s->stock, 8); }

FH_INLINE uint32_t fh_iex_loc(const fh_gen_t *g, const fh_gen_sym_t *s) { return (uint32_t)(s - g->sym); }

/* Sale Condition Flags of a continuous-trading print: odd lot below 100
 * shares, extended hours outside 09:30-16:00 (the day clock). */
FH_INLINE uint8_t fh_iex_sale(const fh_gen_t *g, uint32_t qty, uint8_t extra)
{
    int ext = g->dnow < FH_GEN_HMS(9, 30, 0) || g->dnow >= FH_GEN_HMS(16, 0, 0);
    return (uint8_t)(extra | (qty < 100 ? FH_IEX_SALE_ODD_LOT : 0) | (ext ? FH_IEX_SALE_EXTENDED : 0));
}

/* Trade Report / Trade / Trade Break: the one 38-byte layout. */
static void fh_iex_trade_msg(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t type,
                             uint8_t flags, uint32_t qty, uint32_t px, uint64_t id)
{
    uint8_t *m = fh_iex_begin(g, ch, type, FH_IEX_LEN_TRADE, ts);
    m[1] = flags;
    fh_iex_sym(m, s);
    fh_gen_put_le32(m + 18, qty);
    fh_gen_put_le64(m + 22, px);
    fh_gen_put_le64(m + 30, id);
    fh_iex_end(g, ch, m, FH_IEX_LEN_TRADE, ts);
}

/* The symbol's last print, for a later Trade Break. */
FH_INLINE void fh_iex_note_trade(fh_gen_t *g, const fh_gen_sym_t *s, uint32_t qty, uint32_t px, uint8_t flags)
{
    uint32_t l = fh_iex_loc(g, s);
    g->iex->tr_px[l] = px;
    g->iex->tr_sz[l] = qty;
    g->iex->tr_fl[l] = flags;
}

/* One short message: type, a byte, the symbol (NULL: none). */
static uint8_t *fh_iex_simple(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t type,
                              uint32_t len, uint8_t b1)
{
    uint8_t *m = fh_iex_begin(g, ch, type, len, ts);
    m[1] = b1;
    if (s) fh_iex_sym(m, s);
    return m;
}

static void fh_iex_system(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t code, uint64_t ts)
{
    fh_gen_iex_t *x = g->iex;
    uint8_t *m = fh_iex_simple(g, ch, NULL, ts, 'S', FH_IEX_LEN_SYSTEM_EVENT, code);
    fh_iex_end(g, ch, m, FH_IEX_LEN_SYSTEM_EVENT, ts);
    if (code != 'O' && code != 'C' && x->nsys < sizeof x->sys) x->sys[x->nsys++] = code;
    if (code == 'C') {
        /* End of Messages: the session's last message, no heartbeats after it */
        ch->ended = 1;
        ch->eos++;
        g->eos++;
    }
}

static void fh_iex_directory(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts)
{
    uint8_t f = s->famous && fh_gen_famous[s->famous - 1].etp ? 0x20 : 0;   /* ETP */
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'D', FH_IEX_LEN_DIRECTORY, f);
    fh_gen_put_le32(m + 18, 100);                      /* round lot */
    fh_gen_put_le64(m + 22, s->open);                  /* adjusted POC price */
    m[30] = s->open >= 30000 ? 1 : 2;                  /* LULD tier */
    fh_iex_end(g, ch, m, FH_IEX_LEN_DIRECTORY, ts);
}

static void fh_iex_status(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts)
{
    uint32_t l = fh_iex_loc(g, s);
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'H', FH_IEX_LEN_TRADING_STATUS, g->iex->status[l]);
    memcpy(m + 18, g->iex->reason[l], 4);
    fh_iex_end(g, ch, m, FH_IEX_LEN_TRADING_STATUS, ts);
}

static void fh_iex_ophalt(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts)
{
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'O', FH_IEX_LEN_OP_HALT, g->iex->ophalt[fh_iex_loc(g, s)]);
    fh_iex_end(g, ch, m, FH_IEX_LEN_OP_HALT, ts);
}

static void fh_iex_ssp(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t detail)
{
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'P', FH_IEX_LEN_SHORT_SALE, g->iex->ssp[fh_iex_loc(g, s)]);
    m[18] = detail;
    fh_iex_end(g, ch, m, FH_IEX_LEN_SHORT_SALE, ts);
}

/* Auction Information (TOPS, DEEP): type 'O' 'C' 'H', the auction at `at`
 * (day time), values drawn from a and b around the mid. */
static void fh_iex_auction(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint8_t type,
                           uint64_t at, uint32_t a, uint32_t b)
{
    uint32_t p = s->mid, tk = fh_gen_tick(p);
    uint32_t paired = 100u * (1 + a % 5000), imb = 100u * (b % 800);
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'A', FH_IEX_LEN_AUCTION, type);
    fh_gen_put_le32(m + 18, paired);
    fh_gen_put_le64(m + 22, p);                                          /* reference price */
    fh_gen_put_le64(m + 30, fh_gen_grid(p + tk * ((a >> 20) % 3)));     /* indicative clearing price */
    fh_gen_put_le32(m + 38, imb);
    m[42] = imb == 0 ? 'N' : "BS"[(b >> 20) & 1];
    m[43] = 0;                                                           /* extensions */
    fh_gen_put_le32(m + 44, (uint32_t)((FH_GEN_MIDNIGHT_NS + at) / FH_GEN_NS_PER_S));
    fh_gen_put_le64(m + 48, fh_gen_grid(p + tk * ((a >> 24) % 5)));     /* auction book clearing price */
    fh_gen_put_le64(m + 56, p);                                          /* collar reference price */
    fh_gen_put_le64(m + 64, fh_gen_grid(p - p / 10));
    fh_gen_put_le64(m + 72, fh_gen_grid(p + p / 10));
    fh_iex_end(g, ch, m, FH_IEX_LEN_AUCTION, ts);
}

/* DEEP: Price Level Update of one side at px: size the level's new total. */
static void fh_iex_plu(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint32_t side, uint32_t size,
                       uint32_t px, uint8_t flags)
{
    uint8_t *m = fh_iex_simple(g, ch, s, ts, side ? '5' : '8', FH_IEX_LEN_PLU_BUY, flags);
    fh_gen_put_le32(m + 18, size);
    fh_gen_put_le64(m + 22, px);
    fh_iex_end(g, ch, m, FH_IEX_LEN_PLU_BUY, ts);
}

/* Top of book: bid size, bid price, ask price, ask size (0 0 for an empty side). */
static void fh_iex_top(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t t[4])
{
    uint32_t nb = s->nlv[0], na = s->nlv[1];
    t[0] = nb ? fh_gen_level_shares(g, s, 0, nb - 1) : 0;
    t[1] = fh_gen_best(g, s, 0);
    t[2] = fh_gen_best(g, s, 1);
    t[3] = na ? fh_gen_level_shares(g, s, 1, na - 1) : 0;
}

/* ------------------------------------------------------------ events */

void fh_iex_event_begin(fh_gen_t *g, const fh_gen_sym_t *s)
{
    fh_gen_iex_t *x = g->iex;
    x->ntouch = 0;
    if (x->proto == FH_GEN_PROTO_IEX_TOPS) fh_iex_top(g, s, x->top);
}

FH_INLINE void fh_iex_touch(fh_gen_iex_t *x, uint32_t side, uint32_t px)
{
    for (uint32_t k = 0; k < x->ntouch; k++)
        if (x->touch_side[k] == side && x->touch_px[k] == px) return;
    if (x->ntouch < FH_IEX_TOUCH_MAX) {
        x->touch_side[x->ntouch] = (uint8_t)side;
        x->touch_px[x->ntouch++] = px;
    }
}

/* The event's effect once the book has changed: DEEP one Price Level Update
 * per level touched (flags 0x00, the last 0x01); TOPS a Quote Update if the
 * top moved. */
static void fh_iex_event_write(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts)
{
    fh_gen_iex_t *x = g->iex;
    if (x->proto == FH_GEN_PROTO_IEX_DEEP && x->ntouch) {
        uint64_t seg = ch->data_packets;
        for (uint32_t k = 0; k < x->ntouch; k++) {
            uint32_t side = x->touch_side[k], px = x->touch_px[k], i = fh_gen_level_of(g, s, side, px);
            uint32_t size = i < s->nlv[side] ? fh_gen_level_shares(g, s, side, i) : 0;
            fh_iex_plu(g, ch, s, ts, side, size, px, k + 1 == x->ntouch ? 0x01 : 0x00);
            if (k == 0) seg = ch->data_packets;
        }
        if (x->ntouch > 1) {
            x->events_multi++;
            if (ch->data_packets != seg) x->straddles++;
        }
    } else if (x->proto == FH_GEN_PROTO_IEX_TOPS) {
        uint32_t t[4];
        fh_iex_top(g, s, t);
        if (memcmp(t, x->top, sizeof t) == 0) return;
        uint32_t l = fh_iex_loc(g, s);
        int ext = g->dnow < FH_GEN_HMS(9, 30, 0) || g->dnow >= FH_GEN_HMS(16, 0, 0);
        int off = x->status[l] != 'T' || x->ophalt[l] == 'O';
        uint8_t *m = fh_iex_simple(g, ch, s, ts, 'Q', FH_IEX_LEN_QUOTE, (uint8_t)((off ? 0x80 : 0) | (ext ? 0x40 : 0)));
        fh_gen_put_le32(m + 18, t[0]);
        fh_gen_put_le64(m + 22, t[1]);
        fh_gen_put_le64(m + 30, t[2]);
        fh_gen_put_le32(m + 38, t[3]);
        fh_iex_end(g, ch, m, FH_IEX_LEN_QUOTE, ts);
        memcpy(x->top, t, sizeof t);
    }
}

void fh_iex_event_end(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts)
{
    fh_iex_event_write(g, ch, s, ts);
    fh_iex_progress(g);
}

/* ------------------------------------------------------------ order flow */

void fh_iex_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint8_t side,
                uint32_t qty, uint32_t px)
{
    if (g->iex->proto != FH_GEN_PROTO_IEX_DEEPPLUS) {
        fh_iex_touch(g->iex, side == 'S', px);
        return;
    }
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'a', FH_IEX_LEN_ADD, side == 'S' ? '5' : '8');
    fh_gen_put_le64(m + 18, id);
    fh_gen_put_le32(m + 26, qty);
    fh_gen_put_le64(m + 30, px);
    fh_iex_end(g, ch, m, FH_IEX_LEN_ADD, ts);
}

void fh_iex_delete(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                   uint32_t px)
{
    if (g->iex->proto != FH_GEN_PROTO_IEX_DEEPPLUS) {
        fh_iex_touch(g->iex, side, px);
        return;
    }
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'R', FH_IEX_LEN_DELETE, 0);
    fh_gen_put_le64(m + 18, id);
    fh_iex_end(g, ch, m, FH_IEX_LEN_DELETE, ts);
}

void fh_iex_modify(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                   uint32_t old_px, uint32_t qty, uint32_t px, int keep)
{
    if (g->iex->proto != FH_GEN_PROTO_IEX_DEEPPLUS) {
        fh_iex_touch(g->iex, side, old_px);
        fh_iex_touch(g->iex, side, px);
        return;
    }
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'M', FH_IEX_LEN_MODIFY, keep ? 0x01 : 0x00);
    fh_gen_put_le64(m + 18, id);
    fh_gen_put_le32(m + 26, qty);
    fh_gen_put_le64(m + 30, px);
    fh_iex_end(g, ch, m, FH_IEX_LEN_MODIFY, ts);
}

void fh_iex_exec(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                 uint32_t opx, uint32_t qty, uint32_t px, uint64_t trade, uint8_t extra_flags)
{
    uint8_t fl = fh_iex_sale(g, qty, extra_flags);
    fh_iex_note_trade(g, s, qty, px, fl);
    if (g->iex->proto != FH_GEN_PROTO_IEX_DEEPPLUS) {
        fh_iex_trade_msg(g, ch, s, ts, 'T', fl, qty, px, trade);
        fh_iex_touch(g->iex, side, opx);
        return;
    }
    uint8_t *m = fh_iex_simple(g, ch, s, ts, 'L', FH_IEX_LEN_EXECUTED, fl);
    fh_gen_put_le64(m + 18, id);
    fh_gen_put_le32(m + 26, qty);
    fh_gen_put_le64(m + 30, px);
    fh_gen_put_le64(m + 38, trade);
    fh_iex_end(g, ch, m, FH_IEX_LEN_EXECUTED, ts);
}

void fh_iex_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint32_t qty, uint32_t px,
                  uint64_t trade, uint8_t extra_flags)
{
    uint8_t fl = fh_iex_sale(g, qty, extra_flags);
    fh_iex_note_trade(g, s, qty, px, fl);
    fh_iex_trade_msg(g, ch, s, ts, 'T', fl, qty, px, trade);
}

/* Clear Book: every order of s gone, in the feed's terms. */
static void fh_iex_clear(fh_gen_t *g, fh_gen_chan_t *ch, fh_gen_sym_t *s, uint64_t ts)
{
    fh_gen_iex_t *x = g->iex;
    fh_iex_event_begin(g, s);
    if (x->proto == FH_GEN_PROTO_IEX_DEEPPLUS) {
        uint8_t *m = fh_iex_simple(g, ch, s, ts, 'C', FH_IEX_LEN_CLEAR_BOOK, 0);
        fh_iex_end(g, ch, m, FH_IEX_LEN_CLEAR_BOOK, ts);
    } else if (x->proto == FH_GEN_PROTO_IEX_DEEP) {
        /* every level to 0, best first, one event */
        uint32_t total = s->nlv[0] + s->nlv[1], left = total;
        uint64_t seg = 0;
        for (uint32_t side = 0; side < 2; side++) {
            const fh_gen_level_t *lv = fh_gen_lv(g, s, side);
            for (uint32_t i = s->nlv[side]; i-- > 0;) {
                uint32_t px = side ? ~lv[i].key : lv[i].key;
                fh_iex_plu(g, ch, s, ts, side, 0, px, --left == 0 ? 0x01 : 0x00);
                if (left + 1 == total) seg = ch->data_packets;
            }
        }
        if (total > 1) {
            x->events_multi++;
            if (ch->data_packets != seg) x->straddles++;
        }
    }
    fh_gen_book_clear(g, s);
    fh_iex_event_write(g, ch, s, ts);          /* TOPS: the empty quote */
    x->clears++;
}

/* ------------------------------------------------------------ schedule */

void fh_iex_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    fh_gen_iex_t *x = g->iex;
    fh_gen_chan_t *ch = &g->ch[e->ch];
    fh_gen_sym_t *s = &g->sym[e->locate];
    uint32_t l = e->locate;
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r, b = (uint32_t)(r >> 32);
    uint64_t ts = e->ts;
    int tops = x->proto == FH_GEN_PROTO_IEX_TOPS, plus = x->proto == FH_GEN_PROTO_IEX_DEEPPLUS;
    switch (e->type) {
    case 'S':
        fh_iex_system(g, ch, e->arg == 'Q' ? 'R' : e->arg, ts);
        break;
    case 'R':
        if (fh_iex_listed(l)) fh_iex_directory(g, ch, s, ts);
        break;
    case 'H': {
        uint8_t st = e->arg;
        const char *why = "    ";
        if (e->arg == 'H') {
            if (l & 1) st = 'P';
            else why = "T1  ";
        } else if (e->arg == 'Q') {
            st = 'O';
            why = "T2  ";
        }
        x->status[l] = st;
        memcpy(x->reason[l], why, 4);
        fh_iex_status(g, ch, s, ts);
        break;
    }
    case 'h':
        x->ophalt[l] = e->arg == 'H' ? 'O' : 'N';
        fh_iex_ophalt(g, ch, s, ts);
        break;
    case 'L':
        fh_iex_ophalt(g, ch, s, ts);
        break;
    case 'Y':
        x->ssp[l] = a % 20 == 0;
        fh_iex_ssp(g, ch, s, ts, !fh_iex_listed(l) ? 'N' : x->ssp[l] ? "AC"[(a >> 8) & 1] : ' ');
        break;
    case 'N': {
        uint8_t *m = fh_iex_simple(g, ch, s, ts, 'I', FH_IEX_LEN_RETAIL, (uint8_t)" ABC"[a & 3]);
        fh_iex_end(g, ch, m, FH_IEX_LEN_RETAIL, ts);
        break;
    }
    case 'I':
        /* imbalance before the opening or closing cross */
        if (!plus && fh_iex_listed(l))
            fh_iex_auction(g, ch, s, ts, e->arg,
                           fh_gen_rate_map(g, e->arg == 'O' ? FH_GEN_HMS(9, 30, 0) : FH_GEN_HMS(16, 0, 0)), a, b);
        break;
    case 'J':
        /* the halt auction of a LULD pause, five seconds on */
        if (!plus && fh_iex_listed(l)) fh_iex_auction(g, ch, s, ts, 'H', ts + 5 * FH_GEN_NS_PER_S, a, b);
        break;
    case 'Q': {
        /* a cross: the print, then the official price and the security event */
        uint32_t sh = e->arg == 'H' ? 100u * (1 + a % 500) : 100u * (1 + a % 20000);
        if (s->rank < 50) sh *= 10;
        uint64_t match = ++g->match;
        uint8_t fl = (uint8_t)(FH_IEX_SALE_CROSS | FH_IEX_SALE_TT_EXEMPT | (sh < 100 ? FH_IEX_SALE_ODD_LOT : 0));
        fh_iex_note_trade(g, s, sh, s->mid, fl);
        fh_iex_trade_msg(g, ch, s, ts, 'T', fl, sh, s->mid, match);
        s->last_match = ch->last_match = match;
        if (e->arg == 'H') break;
        if (!plus && fh_iex_listed(l)) {
            uint8_t *m = fh_iex_simple(g, ch, s, ts, 'X', FH_IEX_LEN_OFFICIAL_PRICE, e->arg == 'O' ? 'Q' : 'M');
            fh_gen_put_le64(m + 18, s->mid);
            fh_iex_end(g, ch, m, FH_IEX_LEN_OFFICIAL_PRICE, ts);
        }
        if (!tops) {
            uint8_t *m = fh_iex_simple(g, ch, s, ts, 'E', FH_IEX_LEN_SECURITY_EVENT, e->arg == 'O' ? 'O' : 'C');
            fh_iex_end(g, ch, m, FH_IEX_LEN_SECURITY_EVENT, ts);
        }
        break;
    }
    case 'B':
        /* break the symbol's last print */
        if (s->last_match) fh_iex_trade_msg(g, ch, s, ts, 'B', x->tr_fl[l], x->tr_sz[l], x->tr_px[l], s->last_match);
        break;
    case 'c':
        fh_iex_clear(g, ch, s, ts);
        break;
    default:
        break;
    }
    fh_iex_progress(g);
}

/* ------------------------------------------------------------ sessions */

static void fh_iex_session_close(fh_gen_t *g, fh_gen_chan_t *ch)
{
    fh_gen_iex_session_t *ss = &g->iex->sess[g->iex->session];
    ss->next_seq = ch->next_seq;
    ss->stream_bytes = ch->stream_off;
}

void fh_iex_new_session(fh_gen_t *g, uint64_t ts)
{
    fh_gen_iex_t *x = g->iex;
    fh_gen_chan_t *ch = &g->ch[0];
    /* the old session ends with empty books, so a reader that keeps its books
     * over a session change and one that drops them agree */
    for (uint32_t l = 1; l <= g->nsym; l++)
        if (g->sym[l].nord[0] + g->sym[l].nord[1]) fh_iex_clear(g, ch, &g->sym[l], ts);
    fh_iex_system(g, ch, 'C', ts);
    if (ch->count) fh_gen_send(g, 0, (uint16_t)ch->count, ch->last_ts);
    fh_iex_session_close(g, ch);

    x->session++;
    ch->session_id = x->sess[0].id + x->session;
    x->sess[x->session].id = ch->session_id;
    ch->next_seq = 1;
    ch->stream_off = 0;
    ch->ended = 0;
    fh_gen_set_ev(g, 0, ts + g->heartbeat_ns);
    /* Start of Messages, the system events the day has had, the spin */
    uint8_t sys[sizeof x->sys];
    uint32_t nsys = x->nsys;
    memcpy(sys, x->sys, sizeof sys);
    x->nsys = 0;
    fh_iex_system(g, ch, 'O', ts);
    for (uint32_t k = 0; k < nsys; k++) fh_iex_system(g, ch, sys[k], ts);
    for (uint32_t l = 1; l <= g->nsym; l++) {
        const fh_gen_sym_t *s = &g->sym[l];
        if (fh_iex_listed(l)) fh_iex_directory(g, ch, s, ts);
        fh_iex_status(g, ch, s, ts);
        if (x->ophalt[l] == 'O') fh_iex_ophalt(g, ch, s, ts);
        if (x->ssp[l]) fh_iex_ssp(g, ch, s, ts, fh_iex_listed(l) ? 'C' : 'N');
    }
    g->cut = x->session + 1 < x->sessions ? (x->session + 1) * g->nflow / x->sessions : UINT64_MAX;
}

void fh_iex_end_of_day(fh_gen_t *g, uint64_t t)
{
    fh_gen_chan_t *ch = &g->ch[0];
    fh_gen_advance(g, t + 1);
    if (ch->count) fh_gen_send(g, 0, (uint16_t)ch->count, ch->last_ts);
    fh_iex_session_close(g, ch);
}
