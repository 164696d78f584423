/* itch_writer.c -- the schedule's ITCH 5.0 messages: system events, stock
 * directory, trading actions, Reg SHO, market makers, MWCB, IPO, LULD
 * collars, operational halts, RPII, NOII, crosses, broken trades.  (The order
 * flow's messages are the inline writers of itch_writer.h.) */
#include <stdint.h>
#include <string.h>

#include "itch_writer.h"
#include "model.h"

/* ITCH 5.0 wire length (type byte included): the one table, itch_spec.h. */
static uint32_t fh_gen_len(uint8_t type)
{
#define FH_GEN_LEN_CASE(c, tag, len, name) \
    case c:                                \
        return (len);
    switch (type) {
        FH_ITCH_MESSAGES(FH_GEN_LEN_CASE)
    default:
        return 0;
    }
#undef FH_GEN_LEN_CASE
}

/* One scheduled message; field values drawn now, from the current market. */
void fh_gen_itch_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    fh_gen_chan_t *ch = &g->ch[e->ch];
    fh_gen_sym_t *s = &g->sym[e->locate];      /* sym[0] for market-wide: unused */
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r, b = (uint32_t)(r >> 32);
    uint64_t ts = e->ts;
    uint8_t *m;
    uint32_t len = fh_gen_len(e->type);
    m = fh_gen_itch_begin(g, ch, e->type, len, e->locate, ts) + 2;
    switch (e->type) {
    case 'S':
    case 'W':
        m[11] = e->arg;
        break;
    case 'R': {
        uint8_t f = s->famous;
        fh_gen_stock(m + 11, s);
        m[19] = f && f <= 12 ? 'Q' : "QGS"[a % 3];                 /* market category */
        m[20] = (a >> 8) % 50 ? 'N' : 'D';                         /* financial status */
        fh_put_be32(m + 21, 100);                                  /* round lot */
        m[25] = 'N';
        m[26] = f && fh_gen_famous[f - 1].etp ? 'Q' : 'C';         /* issue classification */
        memcpy(m + 27, f && fh_gen_famous[f - 1].etp ? "EF" : "Z ", 2);
        m[29] = 'P';                                               /* production */
        m[30] = 'N';
        m[31] = s->ipo ? 'Y' : 'N';
        m[32] = s->open >= 30000 && (f || (a >> 16) % 3 == 0) ? '1' : '2';
        m[33] = f && fh_gen_famous[f - 1].etp ? 'Y' : 'N';
        fh_put_be32(m + 34, f ? fh_gen_famous[f - 1].lev : 0);
        m[38] = f && fh_gen_famous[f - 1].inv ? 'Y' : 'N';
        break;
    }
    case 'H':
        fh_gen_stock(m + 11, s);
        m[19] = e->arg;
        m[20] = ' ';
        memcpy(m + 21, e->arg == 'T' ? "    " : "LUDP", 4);
        break;
    case 'Y':
        fh_gen_stock(m + 11, s);
        m[19] = a % 20 ? '0' : '1';
        break;
    case 'L':
        memcpy(m + 11, fh_gen_mpids[a % FH_GEN_NMPID], 4);
        fh_gen_stock(m + 15, s);
        m[23] = (b & 3) == 0 ? 'Y' : 'N';
        m[24] = 'N';
        m[25] = 'A';
        break;
    case 'V':
        /* MWCB decline levels 7/13/20% below a ~6400 S&P 500 close, Price(8) */
        fh_put_be64(m + 11, 595200000000ULL);
        fh_put_be64(m + 19, 556800000000ULL);
        fh_put_be64(m + 27, 512000000000ULL);
        break;
    case 'K':
        fh_gen_stock(m + 11, s);
        /* release 11:30:00 (seconds; where 11:30 lands in a compressed day) */
        fh_put_be32(m + 19, (uint32_t)(fh_gen_rate_map(g, FH_GEN_HMS(11, 30, 0)) / FH_GEN_NS_PER_S));
        m[23] = 'A';                                               /* anticipated */
        fh_put_be32(m + 24, s->open);
        break;
    case 'O': {
        uint32_t p = s->mid, w = s->mid / 10;
        fh_gen_stock(m + 11, s);
        m[19] = 'Y';
        fh_put_be32(m + 20, fh_gen_grid(p - w));
        fh_put_be32(m + 24, fh_gen_grid(p + w));
        fh_put_be32(m + 28, p);
        fh_put_be64(m + 32, fh_gen_rate_map(g, FH_GEN_HMS(11, 30, 0)));
        fh_put_be32(m + 40, fh_gen_grid(p - w / 2));
        fh_put_be32(m + 44, fh_gen_grid(p + w / 2));
        break;
    }
    case 'J': {
        uint32_t p = s->mid, w = p / 20;
        fh_gen_stock(m + 11, s);
        fh_put_be32(m + 19, p);
        fh_put_be32(m + 23, fh_gen_grid(p + w));
        fh_put_be32(m + 27, fh_gen_grid(p - w));
        fh_put_be32(m + 31, 0);
        break;
    }
    case 'h':
        fh_gen_stock(m + 11, s);
        m[19] = 'Q';
        m[20] = e->arg;
        break;
    case 'N':
        fh_gen_stock(m + 11, s);
        m[19] = "BSAN"[a & 3];
        break;
    case 'Q': {
        uint64_t sh = e->arg == 'H' ? 100ULL * (1 + a % 500) : 100ULL * (1 + a % 20000);
        fh_put_be64(m + 11, s->rank < 50 ? sh * 10 : sh);
        fh_gen_stock(m + 19, s);
        fh_put_be32(m + 27, s->mid);
        fh_put_be64(m + 31, ++g->match);
        m[39] = e->arg;
        s->last_match = ch->last_match = g->match;
        break;
    }
    case 'B': {
        /* break the instrument's last print (the opening cross at worst) */
        uint64_t mt = s->last_match ? s->last_match : ch->last_match;
        fh_put_be64(m + 11, mt ? mt : g->match);
        break;
    }
    case 'I': {
        uint32_t p = s->mid, tk = fh_gen_tick(p);
        uint64_t paired = 100ULL * (1 + a % 5000), imb = 100ULL * (b % 800);
        fh_put_be64(m + 11, paired);
        fh_put_be64(m + 19, imb);
        m[27] = imb == 0 ? 'N' : "BS"[(b >> 20) & 1];
        fh_gen_stock(m + 28, s);
        fh_put_be32(m + 36, e->arg == 'O' ? 0 : fh_gen_grid(p + tk * ((a >> 24) % 5)));
        fh_put_be32(m + 40, fh_gen_grid(p + tk * ((a >> 20) % 3)));
        fh_put_be32(m + 44, p);
        m[48] = e->arg;
        m[49] = " L123456789ABC"[(b >> 24) % 14];
        break;
    }
    }
    fh_gen_itch_end(g, ch, m - 2, len, ts);
}
