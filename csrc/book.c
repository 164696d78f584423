/* book.c -- order store, price levels, and publishing what changed. */
#include <stdlib.h>
#include <sys/mman.h>

#include "book.h"

/* ------------------------------------------------------------ allocation */

/* Anonymous mappings on huge pages where the kernel allows (the order table
 * and the level arena are read at random: with 4 KiB pages every lookup was a
 * TLB miss too), the first `hot` bytes faulted in now rather than on the hot
 * path.  The rest is only touched by the cold paths that grow into it. */
static void *big_alloc(size_t n, size_t hot, uint64_t *acct)
{
    n = n ? n : 1;
#ifdef FH_EXACT_BUFFERS
    /* Sanitizer builds: heap blocks, so AddressSanitizer's redzones catch an
     * index one past any of these arrays (adjacent mappings would not). */
    (void)hot;
    void *h = calloc(1, n);
    if (h) *acct += n;
    return h;
#endif
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE);
#endif
    memset(p, 0, hot < n ? hot : n);
    *acct += n;
    return p;
}

static void big_free(void *p, size_t n)
{
#ifdef FH_EXACT_BUFFERS
    (void)n;
    free(p);
    return;
#endif
    if (p) munmap(p, n ? n : 1);
}

static size_t table_bytes(const fh_book_t *b) { return ((size_t)1 << b->table_max_bits) * sizeof *b->table; }
static size_t scratch_bytes(const fh_book_t *b) { return (size_t)b->max_orders * sizeof *b->scratch; }

int fh_book_init(fh_book_t *b, uint32_t max_orders, uint32_t max_instruments, uint32_t max_levels,
                 uint32_t depth, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (max_orders < 1 || max_orders > (1u << 30)) { fh_errf(err, errlen, "max_orders %u out of range 1..2^30", max_orders); return -1; }
    if (max_instruments < 1 || max_instruments > 65535) { fh_errf(err, errlen, "max_instruments %u out of range 1..65535 (stock locates are 16-bit)", max_instruments); return -1; }
    if (max_levels < FH_LVL_MIN_CAP || max_levels > (1u << 30)) { fh_errf(err, errlen, "max_levels %u out of range %u..2^30", max_levels, FH_LVL_MIN_CAP); return -1; }
    b->max_orders = max_orders;
    b->max_levels = max_levels;
    b->n_instr = max_instruments;
    b->depth = depth;
    /* Load factor <= 1/2 keeps linear-probe runs short.  Memory for the full
     * capacity is taken now; the table in use starts small and doubles as the
     * live orders grow (see table_grow), so a day with few live orders keeps
     * them in a few MB of cache instead of spread over the whole capacity. */
    uint32_t bits = 4;
    while ((1ull << bits) < 2ull * max_orders) bits++;
    b->table_max_bits = bits;
    b->table_bits = bits < FH_TABLE_START_BITS ? bits : FH_TABLE_START_BITS;
    b->table_mask = (1ull << b->table_bits) - 1;
    b->seed = fh_clock_ns(CLOCK_MONOTONIC) * 0xD6E8FEB86659FD93ull;
    const size_t lvl = (size_t)max_levels;
    {
        const uint64_t lvl_bytes = (uint64_t)lvl * (sizeof *b->ikey + sizeof *b->iid + sizeof *b->lv_sh +
                                                    sizeof *b->lv_ord);
        const uint64_t fixed = ((uint64_t)max_instruments + 1) * (sizeof *b->instr + sizeof *b->pub_list);
        const uint64_t table_start = ((uint64_t)1 << b->table_bits) * sizeof *b->table;
        char what[160];
        snprintf(what, sizeof what, "the books (%u orders, %u levels, %u instruments)", max_orders, max_levels,
                 max_instruments);
        if (fh_mem_check(table_bytes(b) + scratch_bytes(b) + lvl_bytes + fixed, table_start + lvl_bytes + fixed,
                         what, err, errlen) != 0) {
            memset(b, 0, sizeof *b);
            return -1;
        }
    }
    b->table = big_alloc(table_bytes(b), ((size_t)1 << b->table_bits) * sizeof *b->table, &b->bytes);
    b->scratch = big_alloc(scratch_bytes(b), 0, &b->bytes);
    b->ikey = big_alloc(lvl * sizeof *b->ikey, lvl * sizeof *b->ikey, &b->bytes);
    b->iid = big_alloc(lvl * sizeof *b->iid, lvl * sizeof *b->iid, &b->bytes);
    b->lv_sh = big_alloc(lvl * sizeof *b->lv_sh, lvl * sizeof *b->lv_sh, &b->bytes);
    b->lv_ord = big_alloc(lvl * sizeof *b->lv_ord, lvl * sizeof *b->lv_ord, &b->bytes);
    b->instr = big_alloc(((size_t)max_instruments + 1) * sizeof *b->instr, SIZE_MAX, &b->bytes);
    b->pub_list = big_alloc(((size_t)max_instruments + 1) * sizeof *b->pub_list, SIZE_MAX, &b->bytes);
    if (!b->table || !b->scratch || !b->ikey || !b->iid || !b->lv_sh || !b->lv_ord || !b->instr || !b->pub_list) {
        fh_errf(err, errlen, "cannot allocate book memory (%u orders, %u levels, %u instruments): reduce the capacities",
                max_orders, max_levels, max_instruments);
        fh_book_free(b);
        return -1;
    }
    return 0;
}

void fh_book_free(fh_book_t *b)
{
    if (b->table) big_free(b->table, table_bytes(b));
    if (b->scratch) big_free(b->scratch, scratch_bytes(b));
    big_free(b->ikey, (size_t)b->max_levels * sizeof *b->ikey);
    big_free(b->iid, (size_t)b->max_levels * sizeof *b->iid);
    big_free(b->lv_sh, (size_t)b->max_levels * sizeof *b->lv_sh);
    big_free(b->lv_ord, (size_t)b->max_levels * sizeof *b->lv_ord);
    big_free(b->instr, ((size_t)b->n_instr + 1) * sizeof *b->instr);
    big_free(b->pub_list, ((size_t)b->n_instr + 1) * sizeof *b->pub_list);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ order store */

/* Table position of a reference.  NASDAQ assigns references in increasing
 * order and most orders die young, so the live ones are mostly recent,
 * consecutive numbers: keeping consecutive references in consecutive entries
 * keeps the busy part of the table in cache (a scattering hash made every
 * probe a cache miss: 3x slower).  The bits above the table size pick a
 * seeded, scrambled offset per block, so references that share their low bits
 * do not pile onto one probe run, and the offsets cannot be predicted to build
 * collisions on purpose. */

/* Position of `ref` in the table, or of the empty entry where it would go.
 * Orders live in the table itself: one cache line per lookup, not two. */
FH_INLINE uint64_t table_find(const fh_book_t *b, uint64_t ref, int *found)
{
    uint64_t i = ref_home(b, ref);
    for (;;) {
        const fh_order_t *o = &b->table[i];
        if (o->shares == 0) { *found = 0; return i; }     /* live orders never have 0 shares */
        if (o->ref == ref) { *found = 1; return i; }
        i = (i + 1) & b->table_mask;
    }
}

/* Backward-shift deletion: no tombstones, so probe runs never grow. */
static void table_erase(fh_book_t *b, uint64_t i)
{
    for (;;) {
        b->table[i].shares = 0;
        uint64_t j = i;
        for (;;) {
            j = (j + 1) & b->table_mask;
            const fh_order_t *o = &b->table[j];
            if (o->shares == 0) return;
            const uint64_t home = ref_home(b, o->ref);
            /* Move it back to i unless its home lies cyclically in (i, j]. */
            const int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) { b->table[i] = *o; i = j; break; }
        }
    }
}

/* Double the table in use (memory was reserved at start-up): move the live
 * orders aside, clear, reinsert.  A pause proportional to the live orders,
 * taken at most log2(capacity / start) times a day, each time the live count
 * reaches a new high; a deployment that knows its peak can avoid it with a
 * larger FH_TABLE_START_BITS. */
static __attribute__((noinline, cold)) void table_grow(fh_book_t *b)
{
    const uint64_t size = b->table_mask + 1;
    uint32_t n = 0;
    for (uint64_t i = 0; i < size; i++)
        if (b->table[i].shares) b->scratch[n++] = b->table[i];
    memset(b->table, 0, (size_t)size * 2 * sizeof *b->table);
    b->table_bits++;
    b->table_mask = (b->table_mask << 1) | 1;
    for (uint32_t k = 0; k < n; k++) {
        int found;
        const uint64_t pos = table_find(b, b->scratch[k].ref, &found);
        b->table[pos] = b->scratch[k];
    }
    b->table_grows++;
}

/* ----------------------------------------------------------- price levels */

/* Asks sort by inverted price so both sides keep their best level last. */
FH_INLINE uint32_t lvl_key(uint32_t price, int side) { return price ^ (0u - (uint32_t)side); }

/* Index of the first level whose key is >= key (keys ascending, best last).
 * Orders arrive, trade and cancel mostly within a few ticks of the best, so
 * walk down from the top first (a 16-wide SSE2 count of the top keys measured
 * no faster); only a price below the top FH_LVL_MIN_CAP levels pays for a
 * branch-free binary search. */
FH_INLINE uint32_t lvl_lower_bound(const uint32_t *K, uint32_t n, uint32_t key)
{
    const uint32_t w = n > FH_LVL_MIN_CAP ? n - FH_LVL_MIN_CAP : 0;
    uint32_t i = n;
    while (i > w && K[i - 1] >= key) i--;
    if (i > w || w == 0) return i;
    /* Every key in [w, n) is >= key: the answer is in [0, w]. */
    uint32_t lo = 0, len = w + 1;
    while (len > 1) {
        const uint32_t half = len >> 1;
        lo = K[lo + half - 1] < key ? lo + half : lo;
        len -= half;
    }
    return lo + (K[lo] < key);
}

static uint32_t lvl_class(uint32_t cap)
{
    uint32_t c = 0;
    while ((FH_LVL_MIN_CAP << c) < cap) c++;
    return c;
}

static uint32_t lvl_block_alloc(fh_book_t *b, uint32_t cls)
{
    if (cls >= FH_LVL_CLASSES) return UINT32_MAX;
    if (b->lvl_free[cls]) {
        const uint32_t off = b->lvl_free[cls] - 1;
        b->lvl_free[cls] = b->ikey[off];          /* free blocks keep their list link in key 0 */
        return off;
    }
    const uint32_t n = FH_LVL_MIN_CAP << cls;
    if (n > b->max_levels - b->lvl_bump) return UINT32_MAX;
    const uint32_t off = b->lvl_bump;
    b->lvl_bump += n;
    return off;
}

static void lvl_block_free(fh_book_t *b, uint32_t off, uint32_t cap)
{
    const uint32_t cls = lvl_class(cap);
    b->ikey[off] = b->lvl_free[cls];
    b->lvl_free[cls] = off + 1;
}

/* Room for one more level in a side's index: grow into the next size class. */
static int lvl_grow(fh_book_t *b, fh_bside_t *s)
{
    const uint32_t ncap = s->cap ? s->cap * 2 : FH_LVL_MIN_CAP;
    const uint32_t off = lvl_block_alloc(b, lvl_class(ncap));
    if (off == UINT32_MAX) return -1;
    if (s->cap) {
        memcpy(&b->ikey[off], &b->ikey[s->off], (size_t)s->n * sizeof *b->ikey);
        memcpy(&b->iid[off], &b->iid[s->off], (size_t)s->n * sizeof *b->iid);
        lvl_block_free(b, s->off, s->cap);
    }
    s->off = off;
    s->cap = ncap;
    return 0;
}

/* Level pool: stable ids, a free list threaded through lv_ord. */
FH_INLINE uint32_t lv_alloc(fh_book_t *b)
{
    if (b->lv_free) {
        const uint32_t id = b->lv_free - 1;
        b->lv_free = b->lv_ord[id];
        return id;
    }
    return b->lv_bump < b->max_levels ? b->lv_bump++ : UINT32_MAX;
}

FH_INLINE void lv_release(fh_book_t *b, uint32_t id)
{
    b->lv_ord[id] = b->lv_free;
    b->lv_free = id + 1;
}

/* A level at `rank` (0 = best) changed: remember the shallowest rank to
 * republish, and say whether the best (2) or another shown level (1) moved. */
FH_INLINE int lvl_touch(const fh_book_t *b, fh_bside_t *s, uint32_t rank)
{
    if (rank >= b->depth) return 0;
    if (rank < s->dirty_from) s->dirty_from = (uint16_t)rank;
    return rank == 0 ? 2 : 1;
}

/* Add shares (and one order) at a price; *level gets the level's id.  Returns
 * 2 if the best level changed, 1 if another of the top `depth` levels did, 0
 * if none did, -1 if the level pool or the index arena is full. */
FH_INLINE int lvl_add(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t shares, uint32_t *level)
{
    const uint32_t key = lvl_key(price, side);
    const uint32_t pos = lvl_lower_bound(&b->ikey[s->off], s->n, key);
    if (pos < s->n && b->ikey[s->off + pos] == key) {
        const uint32_t id = b->iid[s->off + pos];
        b->lv_sh[id] += shares;
        b->lv_ord[id]++;
        *level = id;
        return lvl_touch(b, s, s->n - 1 - pos);
    }
    const uint32_t id = lv_alloc(b);
    if (id == UINT32_MAX) return -1;
    if (s->n == s->cap && lvl_grow(b, s) != 0) { lv_release(b, id); return -1; }
    const uint32_t at = s->off + pos;
    for (uint32_t i = s->off + s->n; i > at; i--) {      /* the levels above: ~2 on average */
        b->ikey[i] = b->ikey[i - 1];
        b->iid[i] = b->iid[i - 1];
    }
    b->ikey[at] = key;
    b->iid[at] = id;
    b->lv_sh[id] = shares;
    b->lv_ord[id] = 1;
    s->n++;
    *level = id;
    return lvl_touch(b, s, s->n - 1 - pos);
}

/* Take shares (and, when the order is gone, one order) off level `id` at
 * `price`; returns 2/1/0 as lvl_add.  The level is found through its id: the
 * index is searched only when the level empties, and to rank a change that
 * is visible and below the best while publishing. */
FH_INLINE int lvl_remove(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t id, uint32_t shares,
                         int order_gone)
{
    const uint32_t key = lvl_key(price, side);
    const uint32_t *K = &b->ikey[s->off];
    const uint32_t n = s->n, d = b->depth;
    b->lv_sh[id] -= shares;
    b->lv_ord[id] -= (uint32_t)order_gone;
    if (b->lv_ord[id] == 0) {
        const uint32_t pos = lvl_lower_bound(K, n, key);
        if (FH_UNLIKELY(pos >= n || K[pos] != key)) return 0;   /* cannot happen: orders own their level */
        const int vis = lvl_touch(b, s, n - 1 - pos);
        for (uint32_t i = s->off + pos; i + 1 < s->off + n; i++) {
            b->ikey[i] = b->ikey[i + 1];
            b->iid[i] = b->iid[i + 1];
        }
        s->n--;
        lv_release(b, id);
        return vis;
    }
    if (key == K[n - 1]) return lvl_touch(b, s, 0);
    if (n > d && key < K[n - d]) return 0;                       /* below the shown levels */
    if (!b->publish) return 1;                                   /* no slot to republish: rank not needed */
    uint32_t rank = 1;
    while (K[n - 1 - rank] != key) rank++;                       /* < depth steps: it is shown */
    return lvl_touch(b, s, rank);
}

/* Level `rank` (0 = best, < n) of a side. */
FH_INLINE uint32_t lvl_price(const fh_book_t *b, const fh_bside_t *s, int side, uint32_t rank)
{
    return lvl_key(b->ikey[s->off + s->n - 1 - rank], side);
}

FH_INLINE uint32_t lvl_id(const fh_book_t *b, const fh_bside_t *s, uint32_t rank)
{
    return b->iid[s->off + s->n - 1 - rank];
}

/* ------------------------------------------------------------- publishing */

/* Publish time, read from the TSC at the first publish of each input packet
 * (the source clears b->now per packet) and shared by every slot write and
 * event of that packet: reading the TSC per publish cost ~18 ns here, a
 * third of the publishing cost. */
FH_INLINE uint64_t now_ns(fh_book_t *b)
{
    if (!b->now) b->now = fh_tsc_ns(b->tsc);
    return b->now;
}


static void publish_slot(fh_book_t *b, uint32_t locate)
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
    sl->publish_ts = now_ns(b);
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
    }
    uint32_t *px = fh_slot_bid_price(sl);
    for (int side = 0; side < 2; side++) {
        fh_bside_t *s = &in->side[side];
        const uint32_t show = s->n < d ? s->n : d;
        if (s->dirty_from >= show && show == s->shown) continue;     /* this side's top is as published */
        uint32_t *price = px + (size_t)side * d * 4, *orders = price + d;
        uint64_t *shares = (uint64_t *)(orders + d);
        const uint32_t top = s->off + s->n - 1;
        /* Levels above the shallowest change are as last published. */
        for (uint32_t i = s->dirty_from; i < show; i++) {
            const uint32_t id = b->iid[top - i];
            price[i] = lvl_key(b->ikey[top - i], side);
            orders[i] = b->lv_ord[id];
            shares[i] = b->lv_sh[id];
        }
        for (uint32_t i = show; i < s->shown; i++) { price[i] = 0; orders[i] = 0; shares[i] = 0; }
        s->shown = (uint16_t)show;
        s->dirty_from = (uint16_t)d;
    }
    sl->n_bid = in->side[FH_SIDE_BID].shown;
    sl->n_ask = in->side[FH_SIDE_ASK].shown;
    fh_shm_write_end(sl);
    b->ctr->publishes++;
}

FH_INLINE fh_shm_event_t *event_begin(fh_book_t *b, uint32_t locate, uint8_t type, uint8_t aux, uint64_t exch_ts)
{
    fh_shm_event_t *e = fh_shm_event_begin(b->shm);
    e->exch_ts = exch_ts;
    e->rx_ts = b->rx_ts;
    e->publish_ts = now_ns(b);
    e->locate = (uint16_t)locate;
    e->type = type;
    e->aux = aux;
    e->price1 = e->price2 = 0;
    e->lane = b->shm->lane;
    e->qty1 = e->qty2 = 0;
    return e;
}

FH_INLINE void event_commit(fh_book_t *b, fh_shm_event_t *e)
{
    fh_shm_event_commit(b->shm, e);
    b->ctr->events++;
}

static void check_bbo(fh_book_t *b, uint32_t locate)
{
    fh_instr_t *in = &b->instr[locate];
    const fh_bside_t *bs = &in->side[FH_SIDE_BID], *as = &in->side[FH_SIDE_ASK];
    const uint32_t bp = bs->n ? lvl_price(b, bs, FH_SIDE_BID, 0) : 0;
    const uint64_t bq = bs->n ? b->lv_sh[lvl_id(b, bs, 0)] : 0;
    const uint32_t ap = as->n ? lvl_price(b, as, FH_SIDE_ASK, 0) : 0;
    const uint64_t aq = as->n ? b->lv_sh[lvl_id(b, as, 0)] : 0;
    if (bp == in->bbo_bid_px && bq == in->bbo_bid_sh && ap == in->bbo_ask_px && aq == in->bbo_ask_sh) return;
    in->bbo_bid_px = bp; in->bbo_bid_sh = bq; in->bbo_ask_px = ap; in->bbo_ask_sh = aq;
    if (!b->publish) return;
    fh_shm_event_t *e = event_begin(b, locate, FH_EV_BBO, 0, in->exch_ts);
    e->price1 = bp; e->qty1 = bq; e->price2 = ap; e->qty2 = aq;
    event_commit(b, e);
}

static void trade(fh_book_t *b, uint32_t locate, uint8_t kind, uint32_t price, uint64_t shares, uint64_t match,
                  uint64_t ts)
{
    fh_instr_t *in = &b->instr[locate];
    b->ctr->trades++;
    in->last_trade_price = price;
    in->last_trade_shares = shares;
    in->last_trade_match = match;
    in->last_trade_ts = ts;
    in->dirty = 1;
    if (!b->publish) return;
    fh_shm_event_t *e = event_begin(b, locate, FH_EV_TRADE, kind, ts);
    e->price1 = price; e->qty1 = shares; e->qty2 = match;
    event_commit(b, e);
}

static void state_event(fh_book_t *b, uint32_t locate, uint8_t kind, uint8_t value, uint64_t ts)
{
    b->instr[locate].dirty = 1;
    if (!b->publish) return;
    fh_shm_event_t *e = event_begin(b, locate, FH_EV_STATE, kind, ts);
    e->price1 = value;
    event_commit(b, e);
}

/* ------------------------------------------------------------- order ops */

FH_INLINE int locate_ok(const fh_book_t *b, uint32_t locate) { return locate >= 1 && locate <= b->n_instr; }

/* Remove `shares` from the live order at table position pos (all of it when
 * gone); returns whether the top levels changed. */
FH_INLINE int order_reduce(fh_book_t *b, uint64_t pos, uint32_t shares)
{
    fh_order_t *o = &b->table[pos];
    fh_instr_t *in = &b->instr[o->locate];
    const int gone = shares >= o->shares;
    const uint32_t take = gone ? o->shares : shares;
    const int vis = lvl_remove(b, &in->side[o->side], o->side, o->price, o->level, take, gone);
    if (gone) {
        table_erase(b, pos);
        b->ctr->orders_live--;
    } else {
        o->shares -= take;
    }
    return vis;
}

/* Add a new live order.  Returns visibility, or -1 when it was dropped. */
static int order_add(fh_book_t *b, uint64_t ref, uint32_t locate, int side, uint32_t shares, uint32_t price,
                     uint64_t ts)
{
    fh_instr_t *in = &b->instr[locate];
    int found, vis = 0;
    /* References grow through the day: the entries the next adds will probe
     * are a few ahead of this one, and cold.  Fetch them now. */
    __builtin_prefetch(&b->table[ref_home(b, ref + 16)], 1, 1);
    uint64_t pos = table_find(b, ref, &found);
    if (found) {
        /* An add on a live reference replaces it. */
        const uint32_t old_loc = b->table[pos].locate;
        b->ctr->add_replaced++;
        const int v_old = order_reduce(b, pos, UINT32_MAX);
        if (old_loc == locate) {
            vis = v_old;
        } else {
            fh_instr_t *oin = &b->instr[old_loc];
            oin->applied++;
            oin->exch_ts = ts;
            oin->rx_ts = b->rx_ts;
            if (b->publish && (v_old || oin->dirty)) {
                publish_slot(b, old_loc);
                if (v_old > 1) check_bbo(b, old_loc);
            }
        }
        pos = table_find(b, ref, &found);
    }
    if (FH_UNLIKELY(2 * (b->ctr->orders_live + 1) > b->table_mask + 1) && b->table_bits < b->table_max_bits) {
        table_grow(b);
        pos = table_find(b, ref, &found);
    }
    if (FH_UNLIKELY(b->ctr->orders_live >= b->max_orders)) {
        b->ctr->order_full++;
        in->flags |= FH_SLOT_DROPPED;
        in->dirty = 1;
        return vis ? vis : -1;
    }
    uint32_t level = 0;
    const int lv = lvl_add(b, &in->side[side], side, price, shares, &level);
    if (FH_UNLIKELY(lv < 0)) {
        b->ctr->level_full++;
        in->flags |= FH_SLOT_DROPPED;
        in->dirty = 1;
        return vis ? vis : -1;
    }
    fh_order_t *o = &b->table[pos];
    o->ref = ref;
    o->shares = shares;
    o->price = price;
    o->locate = (uint16_t)locate;
    o->side = (uint8_t)side;
    o->level = level;
    b->ctr->adds++;
    if (++b->ctr->orders_live > b->ctr->orders_peak) b->ctr->orders_peak = b->ctr->orders_live;
    return vis > lv ? vis : lv;
}

/* After a change to instrument `locate`: publish if anything visible moved. */
FH_INLINE void touched(fh_book_t *b, uint32_t locate, int visible, uint64_t ts)
{
    fh_instr_t *in = &b->instr[locate];
    in->applied++;
    in->exch_ts = ts;
    in->rx_ts = b->rx_ts;
    if (b->stream_seen) {
        uint8_t *w = &b->stream_seen[locate >> 3];
        const uint8_t bit = (uint8_t)(1u << (locate & 7));
        if (FH_UNLIKELY(!(*w & bit))) {
            *w |= bit;
            /* First seen after a gap on its stream: what the gap lost may have
             * been this instrument's first messages, so its book is suspect too. */
            if (FH_UNLIKELY(b->stream_gapped)) fh_book_mark_stale(b, locate, 0);
        }
    }
    if (!b->publish) return;
    if (visible > 0 || in->dirty) {
        /* Published at the flush, once per instrument however many messages
         * of the packet touched it. */
        if (!in->queued) b->pub_list[b->n_pub++] = locate;
        in->queued |= (uint8_t)(visible > 1 ? 3 : 1);
    }
}

void fh_book_flush(fh_book_t *b)
{
    const uint32_t n = b->n_pub;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t locate = b->pub_list[i];
        fh_instr_t *in = &b->instr[locate];
        const uint8_t q = in->queued;
        in->queued = 0;
        publish_slot(b, locate);
        if (q & 2) check_bbo(b, locate);
    }
    b->n_pub = 0;
}

static void copy_stock(char *dst, const char *src) { memcpy(dst, src, 8); }

void fh_book_apply(fh_book_t *b, const fh_itch_msg_t *m)
{
    fh_book_counters_t *c = b->ctr;
    const uint64_t ts = m->timestamp;
    uint32_t locate = m->stock_locate;
    int found;
    switch (m->type) {
    case 'A':
    case 'F': {
        const fh_itch_A_t *a = &m->u.A;
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        if (FH_UNLIKELY(a->shares == 0 || a->price == 0)) { c->zero_rejected++; return; }
        const int side = a->buy_sell_indicator == 'B' ? FH_SIDE_BID : a->buy_sell_indicator == 'S' ? FH_SIDE_ASK : -1;
        if (FH_UNLIKELY(side < 0)) { c->bad_side++; return; }
        touched(b, locate, order_add(b, a->order_reference_number, locate, side, a->shares, a->price, ts), ts);
        return;
    }
    case 'D': {
        const uint64_t pos = table_find(b, m->u.D.order_reference_number, &found);
        if (FH_UNLIKELY(!found)) { c->unknown_ref++; return; }
        locate = b->table[pos].locate;
        c->deletes++;
        touched(b, locate, order_reduce(b, pos, UINT32_MAX), ts);
        return;
    }
    case 'U': {
        const fh_itch_U_t *u = &m->u.U;
        const uint64_t pos = table_find(b, u->original_order_reference_number, &found);
        if (FH_UNLIKELY(!found)) { c->unknown_ref++; return; }
        locate = b->table[pos].locate;
        const int side = b->table[pos].side;
        c->replaces++;
        int vis = order_reduce(b, pos, UINT32_MAX);
        if (FH_UNLIKELY(u->shares == 0 || u->price == 0)) c->zero_rejected++;
        else {
            const int v2 = order_add(b, u->new_order_reference_number, locate, side, u->shares, u->price, ts);
            if (v2 > vis) vis = v2;
        }
        touched(b, locate, vis, ts);
        return;
    }
    case 'E':
    case 'C':
    case 'X': {
        const uint64_t ref = m->type == 'X' ? m->u.X.order_reference_number
                           : m->type == 'E' ? m->u.E.order_reference_number : m->u.C.order_reference_number;
        const uint32_t want = m->type == 'X' ? m->u.X.cancelled_shares
                            : m->type == 'E' ? m->u.E.executed_shares : m->u.C.executed_shares;
        const uint64_t pos = table_find(b, ref, &found);
        if (FH_UNLIKELY(!found)) { c->unknown_ref++; return; }
        const fh_order_t *o = &b->table[pos];
        locate = o->locate;
        const uint32_t price = o->price;
        const uint32_t done = want > o->shares ? o->shares : want;
        if (m->type == 'X') {
            c->cancels++;
            if (want > o->shares) c->cancel_clamped++;
        } else {
            c->executes++;
            if (want > o->shares) c->exec_clamped++;
        }
        const int vis = order_reduce(b, pos, done);
        if (m->type == 'E') trade(b, locate, 'E', price, done, m->u.E.match_number, ts);
        else if (m->type == 'C' && m->u.C.printable == 'Y')
            trade(b, locate, 'C', m->u.C.execution_price, done, m->u.C.match_number, ts);
        touched(b, locate, vis, ts);
        return;
    }
    case 'P':
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        trade(b, locate, 'P', m->u.P.price, m->u.P.shares, m->u.P.match_number, ts);
        touched(b, locate, 0, ts);
        return;
    case 'Q':
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        trade(b, locate, 'Q', m->u.Q.cross_price, m->u.Q.shares, m->u.Q.match_number, ts);
        touched(b, locate, 0, ts);
        return;
    case 'B':
        c->breaks++;
        if (b->publish) {
            fh_shm_event_t *e = event_begin(b, locate_ok(b, locate) ? locate : 0, FH_EV_TRADE, 'B', ts);
            e->qty2 = m->u.B.match_number;
            event_commit(b, e);
        }
        return;
    case 'H':
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        b->instr[locate].trading_state = m->u.H.trading_state;
        state_event(b, locate, 'H', m->u.H.trading_state, ts);
        touched(b, locate, 0, ts);
        return;
    case 'h':
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        if (m->u.h.operational_halt_action == 'H') b->instr[locate].flags |= FH_SLOT_OP_HALT;
        else b->instr[locate].flags &= (uint8_t)~FH_SLOT_OP_HALT;
        state_event(b, locate, 'h', m->u.h.operational_halt_action, ts);
        touched(b, locate, 0, ts);
        return;
    case 'Y':
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        b->instr[locate].reg_sho = m->u.Y.reg_sho_action;
        state_event(b, locate, 'Y', m->u.Y.reg_sho_action, ts);
        touched(b, locate, 0, ts);
        return;
    case 'R': {
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        fh_instr_t *in = &b->instr[locate];
        copy_stock(in->symbol, m->u.R.stock);
        in->round_lot = m->u.R.round_lot_size;
        in->market_category = m->u.R.market_category;
        in->flags |= FH_SLOT_DIRECTORY;
        in->dirty = 1;
        touched(b, locate, 0, ts);
        return;
    }
    case 'J': {
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        fh_instr_t *in = &b->instr[locate];
        in->luld_ref = m->u.J.auction_collar_reference_price;
        in->luld_up = m->u.J.upper_auction_collar_price;
        in->luld_lo = m->u.J.lower_auction_collar_price;
        in->dirty = 1;
        touched(b, locate, 0, ts);
        return;
    }
    case 'I': {
        if (FH_UNLIKELY(!locate_ok(b, locate))) { c->locate_range++; return; }
        fh_instr_t *in = &b->instr[locate];
        in->noii_paired = m->u.I.paired_shares;
        in->noii_imbalance = m->u.I.imbalance_shares;
        in->noii_dir = m->u.I.imbalance_direction;
        in->noii_near = m->u.I.near_price;
        in->noii_far = m->u.I.far_price;
        in->noii_ref = m->u.I.current_reference_price;
        in->dirty = 1;
        touched(b, locate, 0, ts);
        return;
    }
    case 'S':
        if (b->publish) {
            FH_STORE_RELAXED(&b->shm->hdr->system_event, m->u.S.event_code);
            fh_shm_event_t *e = event_begin(b, 0, FH_EV_SYSTEM, m->u.S.event_code, ts);
            event_commit(b, e);
        }
        return;
    default:
        /* L, V, W, K, N, O: reference data with no effect on the books. */
        return;
    }
}

void fh_book_mark_stale(fh_book_t *b, uint32_t locate, uint64_t missing)
{
    if (!locate_ok(b, locate)) return;
    fh_instr_t *in = &b->instr[locate];
    b->now = 0;
    in->flags |= FH_SLOT_STALE;
    in->dirty = 1;
    publish_slot(b, locate);
    if (b->publish) {
        fh_shm_event_t *e = event_begin(b, locate, FH_EV_STALE, 1, in->exch_ts);
        e->qty1 = missing;
        event_commit(b, e);
    }
}

void fh_book_mark_silent(fh_book_t *b, uint32_t locate, int on)
{
    if (!locate_ok(b, locate)) return;
    fh_instr_t *in = &b->instr[locate];
    const uint8_t f = on ? (uint8_t)(in->flags | FH_SLOT_SILENT) : (uint8_t)(in->flags & ~FH_SLOT_SILENT);
    if (f == in->flags) return;
    in->flags = f;
    in->dirty = 1;
    b->now = 0;
    publish_slot(b, locate);
    if (b->publish) event_commit(b, event_begin(b, locate, FH_EV_SILENT, (uint8_t)(on != 0), in->exch_ts));
}

void fh_book_publish_all(fh_book_t *b)
{
    if (!b->publish) return;
    for (uint32_t i = 1; i <= b->n_instr; i++) {
        b->instr[i].dirty = 1;
        publish_slot(b, i);
    }
}

_Static_assert(offsetof(fh_instr_t, flags) < 64, "hot instrument fields share the first cache line");
_Static_assert(sizeof(fh_instr_t) % 64 == 0, "instruments are whole cache lines");

void fh_book_level(const fh_book_t *b, uint32_t locate, int side, uint32_t rank, uint32_t *price, uint64_t *shares,
                   uint32_t *orders)
{
    const fh_bside_t *s = &b->instr[locate].side[side];
    const uint32_t id = lvl_id(b, s, rank);
    *price = lvl_price(b, s, side, rank);
    *shares = b->lv_sh[id];
    *orders = b->lv_ord[id];
}
