/* book.h -- the generator's own per-instrument order books (book.c, which
 * also says why the feed handler's book, csrc/book.h, does not serve here).
 *
 * The accessors the order flow runs on every message are inline; adding,
 * unlinking and the old-order pick are in book.c. */
#ifndef FH_GEN_BOOK_H
#define FH_GEN_BOOK_H

#include <stdint.h>

#include "gen.h"

/* Size every instrument's slot range from its expected share of the day's
 * flow and allocate the slots and levels; -1 when out of memory. */
int fh_gen_books_alloc(fh_gen_t *g);
/* Queue slot (its side, price set) at the back of its price level. */
void fh_gen_book_add(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot);
/* Take slot out of level i of its side (the level goes when it empties). */
void fh_gen_book_unlink(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot, uint32_t i);
/* A live order of s drawn (mostly) uniformly over its live orders; sets
 * *side and *li (its level).  s has at least one live order. */
uint32_t fh_gen_pick_old(fh_gen_t *g, const fh_gen_sym_t *s, uint32_t *side, uint32_t *li);

/* Level of `price` on one side of s: its index, or s->nlv[side] if none. */
uint32_t fh_gen_level_of(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side, uint32_t price);
/* Shares resting at level i of one side (the sum over its orders). */
uint32_t fh_gen_level_shares(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side, uint32_t i);
/* Remove every order of s (IEX Clear Book, the end of an IEX session). */
void fh_gen_book_clear(fh_gen_t *g, fh_gen_sym_t *s);

/* The levels of one side of s, worst first, best last (nlv[side] of them). */
FH_INLINE fh_gen_level_t *fh_gen_lv(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side)
{
    return g->levels + 2 * (size_t)s->base + (side ? s->cap : 0);
}

/* A level's sort key: the price for bids, ~price for asks. */
FH_INLINE uint32_t fh_gen_key(uint32_t side, uint32_t price) { return side ? ~price : price; }

/* Best price of a side, 0 when the side is empty (no order has price 0). */
FH_INLINE uint32_t fh_gen_best(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side)
{
    uint32_t n = s->nlv[side];
    if (!n) return 0;
    uint32_t k = fh_gen_lv(g, s, side)[n - 1].key;
    return side ? ~k : k;
}

/* A free slot of the instrument (fewer than cap live orders). */
FH_INLINE uint32_t fh_gen_slot_new(fh_gen_t *g, fh_gen_sym_t *s)
{
    uint32_t slot;
    if (s->free_head != FH_GEN_NIL) {
        slot = s->free_head;
        s->free_head = g->slots[slot].next;
    } else {
        slot = s->base + s->hwm++;
    }
    return slot;
}

/* Remove a live order at level i of its side. */
FH_INLINE void fh_gen_slot_free(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot, uint32_t i)
{
    fh_gen_order_t *o = &g->slots[slot];
    fh_gen_book_unlink(g, s, slot, i);
    o->next = s->free_head;
    o->shares = 0;
    s->free_head = slot;
    s->nord[o->side]--;
    if (o->deep) g->symx[s - g->sym].ndeep[o->side]--;
    g->live--;
}

/* When an order was added or last replaced (day clock, 48 bits). */
FH_INLINE void fh_gen_set_born(fh_gen_order_t *o, uint64_t t)
{
    o->born_hi = (uint32_t)(t >> 16);
    o->born_lo = (uint16_t)t;
}

FH_INLINE uint64_t fh_gen_born(const fh_gen_order_t *o) { return (uint64_t)o->born_hi << 16 | o->born_lo; }

/* Warm the cache for a burst on s: its levels near the touch and the slot the
 * next add takes.  The instrument itself was fetched a burst earlier. */
FH_INLINE void fh_gen_prefetch_book(const fh_gen_t *g, const fh_gen_sym_t *s)
{
    for (uint32_t side = 0; side < 2; side++) {
        uint32_t n = s->nlv[side];
        if (n) {
            const fh_gen_level_t *lv = fh_gen_lv(g, s, side) + n - 1;
            __builtin_prefetch(lv);
            if (n > 4) __builtin_prefetch(lv - 4);
        }
    }
    if (s->free_head != FH_GEN_NIL) __builtin_prefetch(&g->slots[s->free_head]);
}

#endif
