/* flow.c -- the order flow: one message (A F D U E X C P) at a time.
 *
 * Every message is decided here -- its type, the live order it names, its
 * price and size -- and written through the ITCH writer (itch_writer.h) or
 * the PITCH one (pitch_writer.h); the instrument's book (book.c) follows.  So
 * D/E/X/C/U only name live orders of the burst's instrument, never
 * over-execute, and U retires the old reference (PITCH: Modify keeps the
 * order id, and its queue place when the price is unchanged and the size did
 * not grow).
 *
 * The books are never crossed or locked: a per-instrument mid random-walks
 * inside the spread (best bid <= mid < best ask), adds and replaces quote
 * passively around it (bids at or below the mid, asks above it), and
 * executions (E, C) hit the oldest order of the best level of one side -- the
 * aggressor is implicit -- so when a best level is consumed the mid steps
 * after it (fh_gen_follow).
 *
 * What makes a real book slow is in the flow too (docs/generator.md): 4% of
 * adds and replaces rest deep, 10-639 ticks from the mid, log-uniform, and
 * near-touch cancels never reach them, so they stay for hours; a share of
 * D/X/U (g->q_old) cancels a live order drawn uniformly over the instrument's
 * live orders, mostly old deep ones, and from 15:45 some adds (g->q_drain)
 * are such cancels instead: day orders are pulled into the close
 * (fh_gen_phase sets both shares by the day clock).
 *
 * IEX days (iex_writer.h) take the same flow with three differences, all
 * drawn identically for TOPS, DEEP and DEEP+: a partial cancel is an Order
 * Modify to the smaller size (priority kept), a replace keeps the order id
 * as on PITCH, and a quarter of the executions that take a whole order sweep
 * on, taking further orders of that side up to three price levels deep
 * (fh_gen_sweep), so DEEP has events of several Price Level Updates.
 */
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "book.h"
#include "model.h"
#include "itch_writer.h"
#include "pitch_writer.h"
#include "iex_writer.h"

/* Relative weight of each flow type (per 100k flow messages).  With ~1% NOII and
 * the administrative messages on top, the day comes out near NASDAQ's mix:
 * A 44%, D 43%, U 7.4%, E 2.2%, X 1.3%, I 1%.  D X U E C on an instrument
 * without orders (on that side) become adds, which is why D weighs more than
 * the mix it gives. */
static const uint32_t fh_gen_ft_weight[FT__N] = {43500, 45050, 7500, 2220, 1310, 450, 350, 80};

void fh_gen_flow_init(fh_gen_t *g)
{
    uint32_t acc = 0, wt = 0;
    for (int t = 0; t < FT__N; t++) wt += fh_gen_ft_weight[t];
    for (int t = 0; t < FT__N; t++) {
        acc += fh_gen_ft_weight[t];
        g->ft_cum[t] = (uint32_t)((double)acc / wt * 4294967295.0);
    }
    g->need = (1u << FT__N) - 1;
}

/* ------------------------------------------------------------ prices, sizes */

/* Price of an add or replace on its side, on the tick grid: 96% within 0-9
 * ticks of the mid (most within a few), 4% deep, FH_GEN_DEEP_TICKS..639 ticks
 * away, log-uniform (one more draw from g's stream); *deep says which.  With
 * deep NULL (a hidden execution's price), always within 9 ticks. */
FH_INLINE uint32_t fh_gen_quote(fh_gen_t *g, const fh_gen_sym_t *s, uint8_t side, uint32_t r, uint8_t *deep)
{
    uint32_t b = r & 255, d;
    uint32_t mid = s->mid, tick = fh_gen_tick(mid), p;
    if (deep) *deep = 0;
    if (b < 77) d = 0;
    else if (b < 133) d = 1;
    else if (b < 169) d = 2;
    else if (b < 192) d = 3;
    else if (b < 207) d = 4;
    else if (b < 256 - FH_GEN_DEEP_PER_256) d = 5 + ((r >> 8) % 5);
    else if (!deep) d = 5 + ((r >> 8) % 5);
    else {
        /* resting far from the market: an equal share per octave */
        uint64_t x = fh_gen_next(&g->rng);
        uint32_t lo = FH_GEN_DEEP_TICKS << (uint32_t)((x >> 32) % FH_GEN_DEEP_OCTAVES);
        d = lo + (uint32_t)(x % lo);
        uint32_t most = side == 'B' ? mid / tick / 2 : mid / tick;
        if (d > most) d = most;
        if (d >= FH_GEN_DEEP_TICKS) *deep = 1;
        else d = 5 + ((r >> 8) % 5);
    }
    if (side == 'B') {
        p = mid > d * tick ? mid - d * tick : tick;
        if (p >= 10000) p -= p % 100;
    } else {
        p = mid + (d + 1) * tick;
        if (p >= 10000 && p % 100) p += 100 - p % 100;
    }
    return p ? p : 1;
}

/* Shares: mostly round lots, some odd lots, a few blocks; 10x below $1. */
FH_INLINE uint32_t fh_gen_shares(const fh_gen_sym_t *s, uint32_t r)
{
    static const uint16_t lots[16] = {100, 100, 100, 100, 100,  100,  200,  200,
                                      300, 400, 500, 500, 1000, 1000, 2000, 5000};
    uint32_t b = r & 255, v;
    if (b < 31) v = 1 + ((r >> 8) % 99);
    else if (b < 250) v = lots[(r >> 8) & 15];
    else v = 100 * (1 + ((r >> 12) % 200));
    return s->mid < 10000 ? v * 10 : v;
}

/* A part of an order of rem > 1 shares (partial cancels and fills). */
FH_INLINE uint32_t fh_gen_part(uint32_t rem, uint32_t r)
{
    /* 1 .. rem-1, round lots where the order allows */
    if (rem > 200) return 100 * (1 + r % ((rem - 1) / 100));
    return 1 + r % (rem - 1);
}

/* ------------------------------------------------------------ the mid */

/* Whether a level (by key) is near the mid: less than FH_GEN_DEEP_TICKS away
 * for bids, at most that for asks (they quote one tick further out). */
FH_INLINE int fh_gen_near(const fh_gen_sym_t *s, uint32_t side, uint32_t key)
{
    uint32_t mid = s->mid, reach = FH_GEN_DEEP_TICKS * fh_gen_tick(mid);
    return side ? ~key - mid <= reach : mid - key < reach;
}

/* After an order left `side` (delete, fill, replace): if the side's best price
 * got worse (its best level is gone), the mid steps one tick after it, where
 * the spread and the walk's band allow.  So prices move as books empty. */
static void fh_gen_follow(const fh_gen_t *g, fh_gen_sym_t *s, uint32_t side, uint32_t was)
{
    uint32_t now = fh_gen_best(g, s, side), mid = s->mid;
    if (side) {
        if (now && now <= was) return;
        if (mid > s->open + s->open / 4) return;
        uint32_t m = fh_gen_px_up(mid);
        if (!now || m < now) s->mid = m;
    } else {
        if (now >= was) return;
        if (mid < s->open - s->open / 4 || mid <= 10 * fh_gen_tick(mid)) return;
        uint32_t m = fh_gen_px_down(mid);
        if (m >= now) s->mid = m;
    }
}

/* Mid random walk, one tick, pulled back towards the day's start price, and
 * kept inside the spread (best bid <= mid < best ask): a step the book does
 * not allow is not taken. */
FH_INLINE void fh_gen_walk(const fh_gen_t *g, fh_gen_sym_t *s, uint32_t r)
{
    if ((r & 7) != 0) return;
    uint32_t mid = s->mid, tick = fh_gen_tick(mid);
    int up = (r >> 3) & 1;
    if (mid > s->open + s->open / 4) up = 0;
    else if (mid < s->open - s->open / 4 || mid <= 10 * tick) up = 1;
    s->up = (uint8_t)up;
    if (up) {
        uint32_t m = fh_gen_px_up(mid), ask = fh_gen_best(g, s, 1);
        if (!ask || m < ask) s->mid = m;
    } else {
        uint32_t m = fh_gen_px_down(mid);
        if (m >= fh_gen_best(g, s, 0)) s->mid = m;
    }
}

/* IEX: after a whole order of `side` was executed at px, the aggressor
 * sweeps on: up to 1-8 more whole orders, oldest first from the best level,
 * over at most three price levels in all, each printed (ISO) at its own
 * level's price; it stops while the side keeps two orders. */
static void fh_gen_sweep(fh_gen_t *g, fh_gen_sym_t *s, fh_gen_chan_t *ch, uint64_t ts, uint32_t side, uint32_t px,
                         uint64_t r)
{
    uint32_t more = 1 + (uint32_t)(r >> 8) % 8, levels = 1;
    g->iex->sweeps++;
    while (more-- && s->nord[side] > 2) {
        uint32_t n = s->nlv[side], slot = fh_gen_lv(g, s, side)[n - 1].head;
        fh_gen_order_t *o = &g->slots[slot];
        if (o->price != px) {
            if (++levels > 3) break;
            px = o->price;
        }
        uint32_t was = fh_gen_best(g, s, side);
        uint64_t match = ++g->match;
        fh_iex_exec(g, ch, s, ts, o->ref, side, o->price, o->shares, o->price, match, FH_IEX_SALE_ISO);
        s->last_match = ch->last_match = match;
        fh_gen_slot_free(g, s, slot, n - 1);
        fh_gen_follow(g, s, side, was);
    }
}

/* ------------------------------------------------------------ one message */

/* One order-flow message on instrument `focus` at ts. */
void fh_gen_flow(fh_gen_t *g, uint32_t focus, uint64_t ts, int force)
{
    fh_gen_sym_t *s = &g->sym[focus];
    fh_gen_symx_t *sx = &g->symx[focus];
    fh_gen_chan_t *ch = &g->ch[s->ch];
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t r32 = (uint32_t)r, rh = (uint32_t)(r >> 32);
    int t = 0;
    while (t < FT__N - 1 && r32 >= g->ft_cum[t]) t++;
    if (FH_UNLIKELY(force)) t = __builtin_ctz(g->need);

    uint32_t slot = 0, side = 0, li = 0;
    uint8_t aside = 0;                 /* side of an add, 0: drawn */
    fh_gen_order_t *o = NULL;
    if ((t == FT_A || t == FT_F) && g->q_drain && !force && s->nord[0] + s->nord[1] &&
        (uint32_t)fh_gen_next(&g->rng) < g->q_drain) {
        /* into the close and after it, day orders are pulled: some adds are
         * cancels of an old order instead, so the books thin out */
        t = FT_D;
        slot = fh_gen_pick_old(g, s, &side, &li);
        o = &g->slots[slot];
    } else if (t != FT_A && t != FT_F && t != FT_P) {
        /* D X U: mostly an order near the touch, its level's newest more often
         * than its oldest; a share (g->q_old, rising into the close) any live
         * order of the instrument, uniformly, so old deep orders get cancelled.
         * E C: an aggressor takes the oldest order at the best price of one
         * side, mostly the side the walk last leaned towards (up: lifts asks). */
        int exec = t == FT_E || t == FT_C;
        if (!exec && s->nord[0] + s->nord[1] && (uint32_t)fh_gen_next(&g->rng) < g->q_old) {
            slot = fh_gen_pick_old(g, s, &side, &li);
            o = &g->slots[slot];
            if (t == FT_X && o->shares < 2) t = FT_D;
        } else {
            side = exec ? ((rh & 3) ? s->up : !s->up) : (rh >> 31);
            if (!s->nlv[side]) side ^= 1;
            uint32_t n = s->nlv[side];
            if (!n) t = FT_A;
            else if (t == FT_D && s->nord[side] - sx->ndeep[side] < FH_GEN_MIN_ORDERS) {
                /* a thin touch: its market makers quote instead of cancelling */
                t = FT_A;
                aside = (uint8_t)(side ? 'S' : 'B');
            } else {
                const fh_gen_level_t *lv = fh_gen_lv(g, s, side);
                if (exec) li = n - 1;
                else {
                    /* k levels from the touch with probability 2^-(k+1), among
                     * those near the mid (deep levels are left to old picks) */
                    uint32_t k = (uint32_t)__builtin_ctz(((rh >> 2) & 0x7f) | 0x80);
                    li = n - 1 - (k < n ? k : n - 1);
                    if (k && !fh_gen_near(s, side, lv[li].key)) li = n - 1;
                }
                slot = (exec || ((rh >> 9) & 3) == 0) ? lv[li].head : lv[li].tail;
                o = &g->slots[slot];
                if (t == FT_X && o->shares < 2) t = FT_D;
            }
        }
    }
    if ((t == FT_A || t == FT_F) && s->nord[0] + s->nord[1] == s->cap) {
        /* a full book: someone cancels instead (the oldest order of the
         * deepest level of a side) */
        ch->pool_full++;
        t = FT_D;
        side = s->nlv[rh & 1] ? rh & 1 : !(rh & 1);
        li = 0;
        slot = fh_gen_lv(g, s, side)[0].head;
        o = &g->slots[slot];
    }
    g->need &= ~(1u << t);
    sx->flow++;
    if (o) {
        /* D X E C U name a live order: where it sits, how old it is */
        g->touched++;
        if (s->nlv[side] - li <= 5) g->top5++;
        if (t != FT_E && t != FT_C) {
            g->cancels++;
            if (g->dnow - fh_gen_born(o) > FH_GEN_OLD_NS) g->old_cancels++;
        }
    }

    uint64_t r2 = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r2, b = (uint32_t)(r2 >> 32);
    uint32_t was = o ? fh_gen_best(g, s, side) : 0;   /* best price before a removal */
    if (g->iex) fh_iex_event_begin(g, s);
    switch (t) {
    case FT_A:
    case FT_F: {
        uint8_t bs = aside ? aside : (a >> 31) ? 'B' : 'S', deep;
        fh_gen_walk(g, s, b >> 8);
        uint32_t sh = fh_gen_shares(s, a), px = fh_gen_quote(g, s, bs, b, &deep);
        const char *mpid = t == FT_F ? fh_gen_mpids[(a >> 20) % FH_GEN_NMPID] : NULL;
        g->ref += 1 + (a & 3);
        if (g->pitch) fh_pg_add(g, ch, s, ts, g->ref, bs, sh, px, mpid);
        else if (g->iex) fh_iex_add(g, ch, s, ts, g->ref, bs, sh, px);
        else fh_gen_itch_add(g, ch, s, focus, ts, g->ref, bs, sh, px, mpid);
        slot = fh_gen_slot_new(g, s);
        o = &g->slots[slot];
        o->ref = g->ref;
        o->shares = sh;
        o->price = px;
        o->side = bs == 'S';
        o->deep = deep;
        fh_gen_set_born(o, g->dnow);
        s->nord[o->side]++;
        sx->ndeep[o->side] += deep;
        fh_gen_book_add(g, s, slot);
        if (++g->live > g->peak_live) g->peak_live = g->live;
        break;
    }
    case FT_D:
        if (g->pitch) fh_pg_delete(g, ch, ts, o->ref);
        else if (g->iex) fh_iex_delete(g, ch, s, ts, o->ref, o->side, o->price);
        else fh_gen_itch_delete(g, ch, focus, ts, o->ref);
        fh_gen_slot_free(g, s, slot, li);
        fh_gen_follow(g, s, side, was);
        break;
    case FT_X: {
        uint32_t x = fh_gen_part(o->shares, a);
        if (g->pitch) fh_pg_reduce(g, ch, s, ts, o->ref, x, o->price);
        else if (g->iex) fh_iex_modify(g, ch, s, ts, o->ref, o->side, o->price, o->shares - x, o->price, 1);
        else fh_gen_itch_cancel(g, ch, focus, ts, o->ref, x);
        o->shares -= x;
        break;
    }
    case FT_E:
    case FT_C: {
        uint32_t x = (o->shares < 2 || (a & 255) < 140) ? o->shares : fh_gen_part(o->shares, a >> 8);
        uint64_t match = ++g->match;
        /* IEX: a quarter of the whole-order executions sweep on */
        uint64_t rs = g->iex && t == FT_E && x == o->shares ? fh_gen_next(&g->rng) : 1;
        int sweep = (rs & 3) == 0;
        if (t == FT_E) {
            if (g->pitch) fh_pg_exec(g, ch, ts, o->ref, x, match);
            else if (g->iex)
                fh_iex_exec(g, ch, s, ts, o->ref, o->side, o->price, x, o->price, match, sweep ? FH_IEX_SALE_ISO : 0);
            else fh_gen_itch_exec(g, ch, focus, ts, o->ref, x, match);
        } else {
            /* executed away from the displayed price: price improvement */
            uint32_t tk = fh_gen_tick(o->price), px = o->price;
            if (o->side == 0 && px > 2 * tk) px -= tk * (1 + (b & 1));
            else if (o->side == 1) px += tk * (1 + (b & 1));
            if (g->pitch) fh_pg_exec_price(g, ch, ts, o->ref, x, o->shares - x, match, fh_gen_grid(px));
            else if (g->iex) fh_iex_exec(g, ch, s, ts, o->ref, o->side, o->price, x, fh_gen_grid(px), match, 0);
            else fh_gen_itch_exec_price(g, ch, focus, ts, o->ref, x, match, (b >> 8) % 10 ? 'Y' : 'N', fh_gen_grid(px));
        }
        s->last_match = ch->last_match = match;
        if (x < o->shares) {
            o->shares -= x;
            break;
        }
        uint32_t opx = o->price;
        fh_gen_slot_free(g, s, slot, li);
        fh_gen_follow(g, s, side, was);
        if (sweep) fh_gen_sweep(g, s, ch, ts, side, opx, rs);
        break;
    }
    case FT_U: {
        /* cancel-replace: a new reference at the back of its (passive) price */
        fh_gen_walk(g, s, b >> 8);
        uint8_t deep;
        uint32_t sh = (a & 3) ? o->shares : fh_gen_shares(s, a >> 2);
        uint32_t px = fh_gen_quote(g, s, o->side ? 'S' : 'B', b, &deep);
        if (g->pitch || g->iex) {
            /* Modify Order keeps the order id; it keeps its place in the
             * queue only at the same price with no more shares */
            int keep = px == o->price && sh <= o->shares;
            if (g->pitch) fh_pg_modify(g, ch, s, ts, o->ref, sh, px, keep);
            else fh_iex_modify(g, ch, s, ts, o->ref, o->side, o->price, sh, px, keep);
            sx->ndeep[o->side] += (uint32_t)deep - o->deep;
            o->deep = deep;
            if (keep) {
                o->shares = sh;
                break;
            }
            fh_gen_book_unlink(g, s, slot, li);
            o->shares = sh;
            o->price = px;
            fh_gen_set_born(o, g->dnow);
            fh_gen_book_add(g, s, slot);
            fh_gen_follow(g, s, side, was);
            break;
        }
        g->ref += 1 + (a >> 30);
        fh_gen_itch_replace(g, ch, focus, ts, o->ref, g->ref, sh, px);
        fh_gen_book_unlink(g, s, slot, li);
        sx->ndeep[o->side] += (uint32_t)deep - o->deep;
        o->ref = g->ref;
        o->shares = sh;
        o->price = px;
        o->deep = deep;
        fh_gen_set_born(o, g->dnow);
        fh_gen_book_add(g, s, slot);
        fh_gen_follow(g, s, side, was);
        break;
    }
    case FT_P: {
        /* hidden (non-displayed) execution: NASDAQ zeroes the order reference */
        uint8_t bs = (a >> 31) ? 'B' : 'S';
        uint32_t sh = fh_gen_shares(s, a), px = fh_gen_quote(g, s, bs, b, NULL);
        uint64_t match = ++g->match;
        if (g->pitch) fh_pg_trade(g, ch, s, ts, bs, sh, px, match);
        else if (g->iex) fh_iex_trade(g, ch, s, ts, sh, px, match, 0);
        else fh_gen_itch_trade(g, ch, s, focus, ts, bs, sh, px, match);
        s->last_match = ch->last_match = match;
        break;
    }
    }
    if (g->iex) fh_iex_event_end(g, ch, s, ts);
}
