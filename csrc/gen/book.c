/* book.c -- the generator's own order books, one per instrument.
 *
 * The order flow (flow.c) must only ever name live orders, never
 * over-execute, and keep every book uncrossed; to do so it asks its books:
 *   - a live order drawn uniformly over all of an instrument's live orders
 *     (old-order cancels: fh_gen_pick_old draws slot numbers below the
 *     instrument's high-water mark, which only works because its live orders
 *     sit in stable slots of a range of their own);
 *   - the oldest (head) or newest (tail) order of a given level, and the level
 *     k from the touch (executions take the oldest order at the best price,
 *     cancels mostly the newest near it): a FIFO per level;
 *   - the number of live orders per side and of deep ones, and when each
 *     order was placed (the thin-touch rule, book_stats' old cancels);
 *   - removal of an order it already holds (slot and level) with no lookup.
 *
 * Why not the feed handler's book (csrc/book.h, book.c): of these it offers
 * only levels by rank (lvl_at).  Its orders are found by reference only -- a
 * day-wide window indexed by ref & mask over every instrument, and a hash for
 * the rest -- so an instrument's live orders cannot be enumerated or drawn
 * from short of a scan of both; its levels are aggregates (key, order count,
 * shares) with no queue of orders, so there is no oldest or newest order of a
 * level; an order carries no time of entry and no deep flag, an instrument no
 * count of its orders per side.  Adding them would cost the feed handler on
 * its hot path, for a tool: FIFO links and a birth time take an order entry
 * from 16 to 32 bytes (twice the window's memory and half the orders per cache
 * line on every lookup); taking an order out of its level's queue on every
 * delete, full execution and replace writes up to two neighbouring orders (up
 * to two more random cache lines per message); head and tail take a level from
 * 16 to 24 bytes (the top 10 levels are 160 contiguous bytes, published in one
 * copy); and per-instrument slot ranges contradict the window keyed by
 * reference, whose point is that an order's entry is one address away from its
 * reference, prefetched with no dependent load.  Its rules (unknown references
 * ignored, oversized executions clamped, adds dropped when full) tolerate a
 * feed's faults, where the generator must not make them; and using it would
 * link the core's book.c, and what it calls, into this extension, which links
 * no object code of the core.
 *
 * Layout: every instrument has slots [base, base + cap) of g->slots, sized at
 * set-up from its expected share of the flow (fh_gen_books_alloc); a free slot
 * has 0 shares and is on the instrument's free list.  Per side, price levels
 * sorted worst .. best (the best last, where most adds and fills happen) at
 * g->levels + 2 * base (asks cap further), each a FIFO of slots (prev/next).
 * Levels never outnumber orders, so cap levels per side always fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "model.h"

/* Index of the level with `key`, or where it would be inserted.  Most adds,
 * fills and cancels are at or near the best level, the end: look there first. */
static uint32_t fh_gen_lv_find(const fh_gen_level_t *lv, uint32_t n, uint32_t key)
{
    uint32_t hi = n;
    for (int k = 0; k < 4 && hi; k++, hi--) {
        if (lv[hi - 1].key < key) return hi;
        if (lv[hi - 1].key == key) return hi - 1;
    }
    uint32_t lo = 0;
    while (lo < hi) {
        uint32_t m = (lo + hi) >> 1;
        if (lv[m].key < key) lo = m + 1;
        else hi = m;
    }
    return lo;
}

/* Queue slot at the back of its price level (a new level if there is none).
 * Levels never outnumber the instrument's orders, so cap levels always fit. */
void fh_gen_book_add(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot)
{
    fh_gen_order_t *o = &g->slots[slot];
    uint32_t side = o->side, n = s->nlv[side], key = fh_gen_key(side, o->price);
    fh_gen_level_t *lv = fh_gen_lv(g, s, side);
    uint32_t i = fh_gen_lv_find(lv, n, key);
    o->next = FH_GEN_NIL;
    if (i < n && lv[i].key == key) {
        o->prev = lv[i].tail;
        g->slots[lv[i].tail].next = slot;
        lv[i].tail = slot;
        lv[i].n++;
    } else {
        memmove(lv + i + 1, lv + i, (size_t)(n - i) * sizeof *lv);
        lv[i].key = key;
        lv[i].n = 1;
        lv[i].head = lv[i].tail = slot;
        o->prev = FH_GEN_NIL;
        s->nlv[side] = n + 1;
    }
}

/* Take slot out of level i of its side (the level goes when it empties). */
void fh_gen_book_unlink(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot, uint32_t i)
{
    fh_gen_order_t *o = &g->slots[slot];
    uint32_t side = o->side, n = s->nlv[side];
    fh_gen_level_t *lv = fh_gen_lv(g, s, side);
    if (--lv[i].n == 0) {
        memmove(lv + i, lv + i + 1, (size_t)(n - i - 1) * sizeof *lv);
        s->nlv[side] = n - 1;
        return;
    }
    if (o->prev != FH_GEN_NIL) g->slots[o->prev].next = o->next;
    else lv[i].head = o->next;
    if (o->next != FH_GEN_NIL) g->slots[o->next].prev = o->prev;
    else lv[i].tail = o->prev;
}

/* An old-order pick: a live order of s drawn uniformly over its live orders
 * (slots below the high-water mark, retried past free ones), else the oldest
 * order of a uniformly drawn level of one side, which is mostly a deep one.
 * Returns the slot and sets *side and *li (its level). */
uint32_t fh_gen_pick_old(fh_gen_t *g, const fh_gen_sym_t *s, uint32_t *side, uint32_t *li)
{
    uint32_t hw = s->hwm, slot = FH_GEN_NIL;
    for (uint32_t k = 0; k < FH_GEN_OLD_TRIES; k += 2) {
        uint64_t x = fh_gen_next(&g->rng);
        uint32_t c0 = s->base + (uint32_t)(((x >> 32) * hw) >> 32);
        uint32_t c1 = s->base + (uint32_t)(((x & 0xffffffffu) * hw) >> 32);
        if (g->slots[c0].shares) {
            slot = c0;
            break;
        }
        if (g->slots[c1].shares) {
            slot = c1;
            break;
        }
    }
    if (slot != FH_GEN_NIL) {
        const fh_gen_order_t *o = &g->slots[slot];
        uint32_t sd = o->side;
        *side = sd;
        *li = fh_gen_lv_find(fh_gen_lv(g, s, sd), s->nlv[sd], fh_gen_key(sd, o->price));
        return slot;
    }
    uint64_t x = fh_gen_next(&g->rng);
    uint32_t sd = (uint32_t)(x >> 63);
    if (!s->nlv[sd]) sd ^= 1;
    uint32_t i = (uint32_t)(((x & 0xffffffffu) * s->nlv[sd]) >> 32);
    *side = sd;
    *li = i;
    return fh_gen_lv(g, s, sd)[i].head;
}

/* Each instrument's slot range is sized by its expected share of the flow,
 * n: its live orders (near-touch quotes, deep resting orders and quotes the
 * price walked away from) build up to ~0.7% of n at 15:45 on the busiest
 * instruments, a few percent on quiet ones, and wander like a random walk
 * around that (~sqrt n), so n / 32 + 4 sqrt n + 32 is rarely reached (a full
 * book forces a cancel).  Only the slots a day uses are ever touched. */
int fh_gen_books_alloc(fh_gen_t *g)
{
    double wsum = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) wsum += fh_gen_weight(&g->sym[l]);
    uint64_t need = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) {
        double nf = (double)g->nflow * fh_gen_weight(&g->sym[l]) / wsum;
        uint64_t cap = (uint64_t)(nf / 32 + 4 * fh_gen_sqrt(nf)) + 32;
        g->sym[l].cap = (uint32_t)(cap < FH_GEN_BOOK_MAX ? cap : FH_GEN_BOOK_MAX);
        need += g->sym[l].cap;
    }
    if (need > FH_GEN_BOOK_MAX) {            /* huge days: scale down, keep the floor */
        uint64_t scaled = 0;
        for (uint32_t l = 1; l <= g->nsym; l++) {
            g->sym[l].cap = (uint32_t)((uint64_t)g->sym[l].cap * (FH_GEN_BOOK_MAX / 2) / need) + 32;
            scaled += g->sym[l].cap;
        }
        need = scaled;
    }
    g->slots = malloc(need * sizeof *g->slots);
    g->levels = malloc(2 * need * sizeof *g->levels);
    if (!g->slots || !g->levels) return -1;
    uint32_t off = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) {
        fh_gen_sym_t *sy = &g->sym[l];
        sy->base = off;
        sy->free_head = FH_GEN_NIL;
        off += sy->cap;
    }
    return 0;
}

/* Level of `price` on one side of s: its index, or s->nlv[side] if none. */
uint32_t fh_gen_level_of(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side, uint32_t price)
{
    uint32_t n = s->nlv[side], key = fh_gen_key(side, price);
    const fh_gen_level_t *lv = fh_gen_lv(g, s, side);
    uint32_t i = fh_gen_lv_find(lv, n, key);
    return i < n && lv[i].key == key ? i : n;
}

/* Shares resting at level i of one side (the sum over its orders). */
uint32_t fh_gen_level_shares(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side, uint32_t i)
{
    uint32_t sum = 0;
    for (uint32_t k = fh_gen_lv(g, s, side)[i].head; k != FH_GEN_NIL; k = g->slots[k].next) sum += g->slots[k].shares;
    return sum;
}

/* Remove every order of s (IEX Clear Book, the end of an IEX session). */
void fh_gen_book_clear(fh_gen_t *g, fh_gen_sym_t *s)
{
    for (uint32_t side = 0; side < 2; side++) {
        const fh_gen_level_t *lv = fh_gen_lv(g, s, side);
        for (uint32_t i = 0; i < s->nlv[side]; i++) {
            uint32_t k = lv[i].head;
            while (k != FH_GEN_NIL) {
                fh_gen_order_t *o = &g->slots[k];
                uint32_t next = o->next;
                o->shares = 0;
                o->next = s->free_head;
                s->free_head = k;
                g->live--;
                k = next;
            }
        }
        s->nlv[side] = 0;
        s->nord[side] = 0;
        g->symx[s - g->sym].ndeep[side] = 0;
    }
}
