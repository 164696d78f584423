/* glimpse.c -- a GLIMPSE 5.0 snapshot of a replay's books (fh_api.h, "GLIMPSE
 * snapshot builder").
 *
 * GLIMPSE answers "what is the book now?" with ITCH 5.0 messages that, applied
 * to an empty book, rebuild it: per instrument its directory (R), trading
 * state (H), Reg SHO state (Y), LULD collar (J) and operational halt (h), then
 * every live order as an Add Order (A).  The messages are written as MoldUDP64
 * blocks / BinaryFILE records (u16 BE length + message), so the output can be
 * replayed as a BinaryFILE, or sent one message per SoupBinTCP sequenced packet.
 *
 * Cold path (once per snapshot, never per packet): it allocates one sorted
 * array of the hash table's orders, so that all orders go out in increasing
 * reference number.  NASDAQ assigns references in increasing order, so that
 * is time priority within a price level -- the one thing a snapshot must
 * keep for the levels' queues to be right.
 *
 * The output is built in one pass: every message is sized before it is
 * written and written only if it fits, so a buffer that is too small is
 * never overrun and the pass still learns how much was needed. */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define GL_LEN_R 39
#define GL_LEN_H 25
#define GL_LEN_Y 20
#define GL_LEN_J 35
#define GL_LEN_h 21
#define GL_LEN_A 36

typedef struct gl_out {
    uint8_t *p;
    size_t cap, len;
    uint64_t msgs;
    uint64_t ts;
} gl_out_t;

/* Room for one message of `mlen` bytes (the common header filled in), or NULL
 * when it does not fit: then it is only counted, for the size asked back. */
static uint8_t *gl_msg(gl_out_t *o, uint8_t type, uint16_t locate, size_t mlen)
{
    const size_t need = 2 + mlen;
    uint8_t *m = NULL;
    if (o->p && o->cap >= o->len && o->cap - o->len >= need) {
        uint8_t *w = o->p + o->len;
        fh_put_be16(w, (uint16_t)mlen);
        m = w + 2;
        memset(m, 0, mlen);
        m[0] = type;
        fh_put_be16(m + 1, locate);
        fh_put_be16(m + 3, 0);             /* tracking number */
        fh_put_be48(m + 5, o->ts);
    }
    o->len += need;
    o->msgs++;
    return m;
}

/* The instrument's symbol as R gave it; spaces when none was seen (an order
 * whose directory message was lost still goes out, under a blank stock). */
static void gl_stock(uint8_t *dst, const fh_instr_t *in)
{
    if (in->flags & FH_SLOT_DIRECTORY) memcpy(dst, in->symbol, 8);
    else memset(dst, ' ', 8);
}

static void gl_instrument(gl_out_t *o, const fh_instr_t *in, uint16_t loc)
{
    uint8_t *m = gl_msg(o, 'R', loc, GL_LEN_R);
    if (m) {
        memcpy(m + 11, in->symbol, 8);
        m[19] = in->market_category;
        m[20] = ' ';                         /* financial status: not kept by the book */
        fh_put_be32(m + 21, in->round_lot);
        m[25] = 'N';                         /* round lots only */
        m[26] = ' ';                         /* issue classification */
        m[27] = ' ';
        m[28] = ' ';            /* issue sub-type */
        m[29] = 'P';                         /* authenticity: live/production */
        m[30] = ' ';                         /* short sale threshold */
        m[31] = ' ';                         /* IPO flag */
        m[32] = ' ';                         /* LULD reference price tier */
        m[33] = ' ';                         /* ETP flag */
        fh_put_be32(m + 34, 0);              /* ETP leverage factor */
        m[38] = 'N';                         /* inverse indicator */
    }
    /* A state the book never heard is left out rather than invented: the
     * client's book then also does not know it. */
    if (in->trading_state) {
        m = gl_msg(o, 'H', loc, GL_LEN_H);
        if (m) {
            memcpy(m + 11, in->symbol, 8);
            m[19] = in->trading_state;
            m[20] = ' ';                     /* reserved */
            memset(m + 21, ' ', 4);          /* reason: not kept by the book */
        }
    }
    if (in->reg_sho) {
        m = gl_msg(o, 'Y', loc, GL_LEN_Y);
        if (m) {
            memcpy(m + 11, in->symbol, 8);
            m[19] = in->reg_sho;
        }
    }
    if (in->luld_ref) {
        m = gl_msg(o, 'J', loc, GL_LEN_J);
        if (m) {
            memcpy(m + 11, in->symbol, 8);
            fh_put_be32(m + 19, in->luld_ref);
            fh_put_be32(m + 23, in->luld_up);
            fh_put_be32(m + 27, in->luld_lo);
            fh_put_be32(m + 31, 0);          /* extension: not kept by the book */
        }
    }
    if (in->flags & FH_SLOT_OP_HALT) {
        m = gl_msg(o, 'h', loc, GL_LEN_h);
        if (m) {
            memcpy(m + 11, in->symbol, 8);
            m[19] = 'Q';                     /* market code: the book keeps one flag, not per market */
            m[20] = 'H';
        }
    }
}

static void gl_order(gl_out_t *o, const fh_book_t *b, uint64_t ref, const fh_order_t *ord)
{
    uint8_t *m = gl_msg(o, 'A', ord->locate, GL_LEN_A);
    if (!m) return;
    fh_put_be64(m + 11, ref);
    m[19] = ord->side == FH_SIDE_BID ? 'B' : 'S';
    fh_put_be32(m + 20, ord->shares);
    gl_stock(m + 24, &b->instr[ord->locate]);
    fh_put_be32(m + 32, ord->price);
}

static int gl_cmp_ref(const void *a, const void *b)
{
    const uint64_t x = ((const fh_horder_t *)a)->ref, y = ((const fh_horder_t *)b)->ref;
    return x < y ? -1 : x > y;
}

int fh_glimpse_build(const fh_lane_t *r, uint64_t ts_ns, uint8_t *out, size_t cap, size_t *len, uint64_t *messages)
{
    if (len) *len = 0;
    if (messages) *messages = 0;
    if (!r || !len || !messages) return -2;
    /* Only a book (or publish) replay has books; an index-mode context has none either. */
    if (r->mode == FH_MODE_DECODE || r->index.frame != NULL) return -2;
    const fh_book_t *b = &r->book;
    gl_out_t o = {.p = out, .cap = out ? cap : 0, .len = 0, .msgs = 0, .ts = ts_ns & 0xFFFFFFFFFFFFull};

    for (uint32_t loc = 1; loc <= b->n_instr && loc <= 0xFFFF; loc++) {
        const fh_instr_t *in = &b->instr[loc];
        if (in->flags & FH_SLOT_DIRECTORY) gl_instrument(&o, in, (uint16_t)loc);
    }

    /* The hash's orders (old ones the window left behind, and hostile or
     * out-of-order references), sorted by reference, merged with the window's,
     * which a walk from win_base visits in reference order already. */
    fh_horder_t *h = NULL;
    size_t nh = 0;
    if (b->hash_live) {
        h = malloc((size_t)b->hash_live * sizeof *h);
        if (!h) return -3;
        const uint64_t slots = b->table_mask + 1;
        for (uint64_t i = 0; i < slots && nh < b->hash_live; i++)
            if (b->table[i].o.shares) h[nh++] = b->table[i];
        qsort(h, nh, sizeof *h, gl_cmp_ref);
    }
    size_t k = 0;
    for (uint64_t i = 0; i < b->window_size; i++) {
        const uint64_t ref = b->window_base + i;
        const fh_order_t *w = &b->window[ref & b->window_mask];
        if (!w->shares) continue;
        while (k < nh && h[k].ref < ref) {
            gl_order(&o, b, h[k].ref, &h[k].o);
            k++;
        }
        gl_order(&o, b, ref, w);
    }
    for (; k < nh; k++) gl_order(&o, b, h[k].ref, &h[k].o);
    free(h);

    *len = o.len;
    *messages = o.msgs;
    return o.len <= o.cap ? 0 : -1;
}
