/* publish.c -- book -> shared memory: slots, the BBO check, the flush of a
 * packet's touched instruments, stale and silent flags (publish.h). */
#include "publish.h"

void fh_publish_slot(fh_book_t *b, uint32_t locate)
{
    fh_instr_t *in = &b->instr[locate];
    const int full = in->dirty;      /* a non-level field changed (trade, state, directory, flags) */
    in->dirty = 0;
    if (!b->publish) return;
    fh_shm_slot_t *sl = fh_shm_slot(b->shm, locate);
    const uint32_t d = b->depth;
    fh_shm_write_begin(sl);
    sl->exch_ts = in->exch_ts;
    sl->rx_ts = in->rx_ts;
    sl->publish_ts = fh_book_event_now(b);
    sl->updates = in->applied;
    if (full) {
        sl->last_trade_shares = in->last_trade_shares;
        sl->last_trade_match = in->last_trade_match;
        sl->last_trade_ts = in->last_trade_ts;
        sl->noii_paired_shares = in->noii_paired;
        sl->noii_imbalance_shares = in->noii_imbalance;
        sl->last_trade_price = in->last_trade_price;
        sl->round_lot_size = in->round_lot;
        sl->luld_reference_price = in->luld_ref;
        sl->luld_upper_price = in->luld_up;
        sl->luld_lower_price = in->luld_lo;
        sl->noii_near_price = in->noii_near;
        sl->noii_far_price = in->noii_far;
        sl->noii_reference_price = in->noii_ref;
        memcpy(sl->symbol, in->symbol, 8);
        sl->trading_state = in->trading_state;
        sl->reg_sho_action = in->reg_sho;
        sl->market_category = in->market_category;
        sl->noii_imbalance_direction = in->noii_dir;
        sl->flags = in->flags;
        sl->venue = in->venue;
    }
    uint32_t *px = fh_slot_bid_price(sl);
    for (int side = 0; side < 2; side++) {
        fh_bside_t *s = &in->side[side];
        const uint32_t show = s->n < d ? s->n : d;
        if (s->dirty_from >= show && show == s->shown) continue;     /* this side's top is as published */
        uint32_t *price = px + (size_t)side * d * 4, *orders = price + d;
        uint64_t *shares = (uint64_t *)(orders + d);
        /* Levels above the shallowest change are as last published; the rest
         * come from the top of one contiguous array, best last. */
        const fh_level_t *top = &b->levels[s->off + s->n - 1];
        for (uint32_t i = s->dirty_from; i < show; i++) {
            const fh_level_t *l = top - i;
            price[i] = lvl_key(l->key, side);
            orders[i] = l->orders;
            shares[i] = l->shares;
        }
        for (uint32_t i = show; i < s->shown; i++) {
            price[i] = 0;
            orders[i] = 0;
            shares[i] = 0;
        }
        s->shown = (uint16_t)show;
        s->dirty_from = (uint16_t)d;
    }
    sl->n_bid = in->side[FH_SIDE_BID].shown;
    sl->n_ask = in->side[FH_SIDE_ASK].shown;
    fh_shm_write_end(sl);
    b->counters->publishes++;
}

/* This venue's top of instrument `in` into its symbol's consolidated entry,
 * then the consolidated best as this lane now sees it: an FH_EV_CBBO event
 * when it moved since this lane last reported it.  Runs only on a change of
 * the instrument's top, and only in runs holding several venues. */
static void publish_cbbo(fh_book_t *b, uint32_t locate, fh_instr_t *in)
{
    if (in->venue >= FH_SHM_CBBO_VENUES || !(in->flags & FH_SLOT_DIRECTORY) || in->cbbo == UINT32_MAX) return;
    if (!in->cbbo) {
        uint64_t sym;
        memcpy(&sym, in->symbol, 8);
        fh_shm_cbbo_t *found = sym ? fh_shm_cbbo_find(b->cbbo, sym, 1) : NULL;
        if (!found) {                       /* more than FH_SHM_CBBO_ENTRIES symbols: not consolidated */
            if (sym && b->cbbo_full) (*b->cbbo_full)++;
            in->cbbo = UINT32_MAX;          /* counted once */
            return;
        }
        in->cbbo = (uint32_t)(found - b->cbbo) + 1;
    }
    fh_shm_cbbo_t *e = &b->cbbo[in->cbbo - 1];
    fh_shm_cbbo_venue_t *cv = &e->v[in->venue];
    FH_STORE_RELAXED(&cv->seq, cv->seq + 1);
    FH_FENCE_RELEASE();
    cv->bid_price = in->bbo_bid_px;
    cv->ask_price = in->bbo_ask_px;
    cv->bid_shares = in->bbo_bid_sh;
    cv->ask_shares = in->bbo_ask_sh;
    cv->exch_ts = in->exch_ts;
    cv->locate = (uint16_t)locate;
    FH_STORE_RELEASE(&cv->seq, cv->seq + 1);
    fh_cbbo_t c;
    c.venues = 0;
    for (uint32_t v = 0; v < FH_SHM_CBBO_VENUES; v++) {
        const fh_shm_cbbo_venue_t *o = &e->v[v];
        uint64_t s0;
        uint32_t spins = 0;
        do {                                /* another lane's part: a short retry, then it sits this one out */
            s0 = FH_LOAD_ACQUIRE(&o->seq);
            c.v_bid_price[v] = o->bid_price;
            c.v_ask_price[v] = o->ask_price;
            c.v_bid_shares[v] = o->bid_shares;
            c.v_ask_shares[v] = o->ask_shares;
            FH_FENCE_ACQUIRE();
        } while (((s0 & 1) || FH_LOAD_RELAXED(&o->seq) != s0) && ++spins < 64);
        if (s0 && spins < 64) c.venues |= 1u << v;
    }
    /* One venue quoting the symbol is no consolidation: its own BBO event said it. */
    if ((c.venues & (c.venues - 1)) == 0) return;
    fh_cbbo_best(&c);
    struct fh_cbbo_last *last = &b->cbbo_last[in->cbbo - 1];
    const uint8_t bv = (uint8_t)(c.bid_venue < 0 ? 0xF : c.bid_venue),
                  av = (uint8_t)(c.ask_venue < 0 ? 0xF : c.ask_venue);
    if (last->bid_price == c.bid_price && last->ask_price == c.ask_price && last->bid_shares == c.bid_shares &&
        last->ask_shares == c.ask_shares && last->bid_venue == bv && last->ask_venue == av)
        return;
    last->bid_price = c.bid_price;
    last->ask_price = c.ask_price;
    last->bid_shares = c.bid_shares;
    last->ask_shares = c.ask_shares;
    last->bid_venue = bv;
    last->ask_venue = av;
    fh_shm_event_t *ev = fh_book_event_begin(b, locate, FH_EV_CBBO, (uint8_t)(bv | av << 4), in->exch_ts);
    ev->price1 = c.bid_price;
    ev->qty1 = c.bid_shares;
    ev->price2 = c.ask_price;
    ev->qty2 = c.ask_shares;
    fh_book_event_commit(b, ev);
}

void fh_publish_check_bbo(fh_book_t *b, uint32_t locate)
{
    fh_instr_t *in = &b->instr[locate];
    const fh_bside_t *bs = &in->side[FH_SIDE_BID], *as = &in->side[FH_SIDE_ASK];
    const fh_level_t *bl = bs->n ? lvl_at(b, bs, 0) : NULL, *al = as->n ? lvl_at(b, as, 0) : NULL;
    const uint32_t bp = bl ? lvl_key(bl->key, FH_SIDE_BID) : 0;
    const uint64_t bq = bl ? bl->shares : 0;
    const uint32_t ap = al ? lvl_key(al->key, FH_SIDE_ASK) : 0;
    const uint64_t aq = al ? al->shares : 0;
    if (bp == in->bbo_bid_px && bq == in->bbo_bid_sh && ap == in->bbo_ask_px && aq == in->bbo_ask_sh) return;
    in->bbo_bid_px = bp;
    in->bbo_bid_sh = bq;
    in->bbo_ask_px = ap;
    in->bbo_ask_sh = aq;
    if (!b->publish) return;
    fh_shm_event_t *e = fh_book_event_begin(b, locate, FH_EV_BBO, 0, in->exch_ts);
    e->price1 = bp;
    e->qty1 = bq;
    e->price2 = ap;
    e->qty2 = aq;
    fh_book_event_commit(b, e);
    if (b->cbbo) publish_cbbo(b, locate, in);
}

void fh_publish_cbbo_all(fh_book_t *b)
{
    if (!b->cbbo) return;
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        fh_instr_t *in = &b->instr[loc];
        if ((in->flags & FH_SLOT_DIRECTORY) && (in->bbo_bid_px || in->bbo_ask_px)) publish_cbbo(b, loc, in);
    }
}

void fh_book_flush(fh_book_t *b)
{
    const uint32_t n = b->n_touched;
    const uint32_t lines = (b->shm->slot_size + 63) / 64;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* The slot two instruments on is written next but one: claim its lines
         * now, and the instrument's second line (the last BBO reported). */
        if (i + 2 < n) {
            const uint8_t *next = (const uint8_t *)fh_shm_slot(b->shm, b->touched[i + 2]);
            for (uint32_t k = 0; k < lines; k++) __builtin_prefetch(next + 64 * k, 1, 3);
            __builtin_prefetch((const uint8_t *)&b->instr[b->touched[i + 2]] + 64, 1, 3);
        }
        const uint32_t locate = b->touched[i];
        fh_instr_t *in = &b->instr[locate];
        if (FH_UNLIKELY(in->held)) {
            /* An IEX DEEP event still open: published with the update that
             * completes it, never half-way. */
            b->touched[kept++] = locate;
            continue;
        }
        const uint8_t q = in->queued;
        in->queued = 0;
        fh_publish_slot(b, locate);
        if (q & 2) fh_publish_check_bbo(b, locate);
    }
    b->n_touched = kept;
}

void fh_book_mark_stale(fh_book_t *b, uint32_t locate, uint64_t missing)
{
    if (locate < 1 || locate > b->n_instr) return;
    fh_instr_t *in = &b->instr[locate];
    b->now = 0;
    in->flags |= FH_SLOT_STALE;
    in->dirty = 1;
    fh_publish_slot(b, locate);
    if (b->publish) {
        fh_shm_event_t *e = fh_book_event_begin(b, locate, FH_EV_STALE, 1, in->exch_ts);
        e->qty1 = missing;
        fh_book_event_commit(b, e);
    }
}

void fh_book_clear_stale(fh_book_t *b, uint32_t locate)
{
    if (locate < 1 || locate > b->n_instr) return;
    fh_instr_t *in = &b->instr[locate];
    if (!(in->flags & FH_SLOT_STALE)) return;
    in->flags = (uint8_t)(in->flags & ~FH_SLOT_STALE);
    in->dirty = 1;
    b->now = 0;
    fh_publish_slot(b, locate);
    if (b->publish) fh_book_event_commit(b, fh_book_event_begin(b, locate, FH_EV_STALE, 0, in->exch_ts));
}

void fh_book_mark_silent(fh_book_t *b, uint32_t locate, int on)
{
    if (locate < 1 || locate > b->n_instr) return;
    fh_instr_t *in = &b->instr[locate];
    const uint8_t f = on ? (uint8_t)(in->flags | FH_SLOT_SILENT) : (uint8_t)(in->flags & ~FH_SLOT_SILENT);
    if (f == in->flags) return;
    in->flags = f;
    in->dirty = 1;
    b->now = 0;
    fh_publish_slot(b, locate);
    if (b->publish)
        fh_book_event_commit(b, fh_book_event_begin(b, locate, FH_EV_SILENT, (uint8_t)(on != 0), in->exch_ts));
}

void fh_book_publish_all(fh_book_t *b)
{
    if (!b->publish) return;
    for (uint32_t i = 1; i <= b->n_instr; i++) {
        b->instr[i].dirty = 1;
        fh_publish_slot(b, i);
    }
}

/* An instrument that must be published at once (an add replaced a live order
 * of another instrument): its slot, and a BBO check when its top moved. */
static void publish_now(fh_book_t *b, uint32_t locate, int check_bbo)
{
    fh_publish_slot(b, locate);
    if (check_bbo) fh_publish_check_bbo(b, locate);
}

void fh_publish_hooks(fh_book_t *b)
{
    b->publish_now = publish_now;
    b->mark_stale = fh_book_mark_stale;
}
