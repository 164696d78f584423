/* book.c -- order store, price levels, batched apply, and publishing what changed.
 * The layout and why it is fast at full-day scale: book.h and docs/performance.md. */
#include <stdlib.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "book_events.h"

/* ------------------------------------------------------------ allocation */

/* Anonymous mappings on huge pages where the kernel allows (the order window,
 * hash and level arena are read at random: with 4 KiB pages every lookup was a
 * TLB miss too), the first `hot` bytes faulted in now rather than on the hot
 * path.  The rest is touched as the day grows into it. */
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
static size_t win_bytes(const fh_book_t *b) { return (size_t)b->window_size * sizeof *b->window; }
static size_t clear_bytes(const fh_book_t *b) { return ((size_t)b->n_instr + 8) / 8; }

/* The window spans 8x the order capacity (a power of two, at most
 * 2^FH_WIN_MAX_BITS references): references are handed out a few apart
 * across the whole market, so an order added a few million references ago
 * is still found by index; older ones are few and live in the hash. */
static uint64_t win_size_for(uint32_t max_orders)
{
    uint64_t w = 64;
    while (w < 8ull * max_orders && w < (1ull << FH_WIN_MAX_BITS)) w <<= 1;
    return w;
}

int fh_book_init(fh_book_t *b, uint32_t max_orders, uint32_t max_instruments, uint32_t max_levels, uint32_t depth,
                 char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (max_orders < 1 || max_orders > (1u << 30)) {
        fh_errf(err, errlen, "max_orders %u out of range 1..2^30", max_orders);
        return -1;
    }
    if (max_instruments < 1 || max_instruments > 65535) {
        fh_errf(err, errlen, "max_instruments %u out of range 1..65535 (stock locates are 16-bit)", max_instruments);
        return -1;
    }
    if (max_levels < FH_LVL_MIN_CAP || max_levels > (1u << 30)) {
        fh_errf(err, errlen, "max_levels %u out of range %u..2^30", max_levels, FH_LVL_MIN_CAP);
        return -1;
    }
    b->max_orders = max_orders;
    b->max_levels = max_levels;
    b->window_venue = FH_WIN_VENUE_NONE;
    b->n_instr = max_instruments;
    b->depth = depth;
    b->window_size = win_size_for(max_orders);
    b->window_mask = b->window_size - 1;
    /* Hash load factor <= 1/2 keeps linear-probe runs short.  Memory for the
     * full capacity is taken now; the part in use starts small and doubles as
     * the orders outside the window grow (see table_grow). */
    uint32_t bits = 4;
    while ((1ull << bits) < 2ull * max_orders) bits++;
    b->table_max_bits = bits;
    b->table_bits = bits < FH_TABLE_START_BITS ? bits : FH_TABLE_START_BITS;
    b->table_mask = (1ull << b->table_bits) - 1;
    b->seed = fh_clock_ns(CLOCK_MONOTONIC) * 0xD6E8FEB86659FD93ull;
    const size_t lvl = (size_t)max_levels;
    {
        const uint64_t lvl_bytes = (uint64_t)lvl * sizeof *b->levels;
        const uint64_t fixed = ((uint64_t)max_instruments + 1) * (sizeof *b->instr + sizeof *b->touched);
        const uint64_t table_start = ((uint64_t)1 << b->table_bits) * sizeof *b->table;
        char what[160];
        snprintf(what, sizeof what, "the books (%u orders, %u levels, %u instruments)", max_orders, max_levels,
                 max_instruments);
        if (fh_mem_check(win_bytes(b) + table_bytes(b) + scratch_bytes(b) + lvl_bytes + fixed,
                         win_bytes(b) + table_start + lvl_bytes + fixed, what, err, errlen) != 0) {
            memset(b, 0, sizeof *b);
            return -1;
        }
    }
    /* The window is faulted in now: written as the day's references advance,
     * each new huge page would otherwise cost a 2 MiB clear on the hot path
     * (12% of a full day's time, measured). */
    b->window = big_alloc(win_bytes(b), SIZE_MAX, &b->bytes);
    b->table = big_alloc(table_bytes(b), ((size_t)1 << b->table_bits) * sizeof *b->table, &b->bytes);
    b->scratch = big_alloc(scratch_bytes(b), 0, &b->bytes);
    b->levels = big_alloc(lvl * sizeof *b->levels, lvl * sizeof *b->levels, &b->bytes);
    b->instr = big_alloc(((size_t)max_instruments + 1) * sizeof *b->instr, SIZE_MAX, &b->bytes);
    b->touched = big_alloc(((size_t)max_instruments + 1) * sizeof *b->touched, SIZE_MAX, &b->bytes);
    b->clear_bits = big_alloc(clear_bytes(b), SIZE_MAX, &b->bytes);
    if (!b->window || !b->table || !b->scratch || !b->levels || !b->instr || !b->touched || !b->clear_bits) {
        fh_errf(err, errlen,
                "cannot allocate book memory (%u orders, %u levels, %u instruments): reduce the capacities", max_orders,
                max_levels, max_instruments);
        fh_book_free(b);
        return -1;
    }
    return 0;
}

void fh_book_free(fh_book_t *b)
{
    if (b->window) big_free(b->window, win_bytes(b));
    if (b->table) big_free(b->table, table_bytes(b));
    if (b->scratch) big_free(b->scratch, scratch_bytes(b));
    if (b->levels) big_free(b->levels, (size_t)b->max_levels * sizeof *b->levels);
    if (b->instr) big_free(b->instr, ((size_t)b->n_instr + 1) * sizeof *b->instr);
    if (b->touched) big_free(b->touched, ((size_t)b->n_instr + 1) * sizeof *b->touched);
    if (b->clear_bits) big_free(b->clear_bits, clear_bytes(b));
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ order store */

/* Hash position of `ref`, or of the empty entry where it would go. */
FH_INLINE uint64_t table_find(const fh_book_t *b, uint64_t ref, uint32_t venue, int *found)
{
    uint64_t i = ref_home(b, ref);
    for (;;) {
        const fh_horder_t *h = &b->table[i];
        if (h->o.shares == 0) {
            *found = 0;
            return i;
        }     /* live orders never have 0 shares */
        if (h->ref == ref && h->o.venue == venue) {
            *found = 1;
            return i;
        }
        i = (i + 1) & b->table_mask;
    }
}

/* Backward-shift deletion: no tombstones, so probe runs never grow. */
static void table_erase(fh_book_t *b, uint64_t i)
{
    for (;;) {
        b->table[i].o.shares = 0;
        uint64_t j = i;
        for (;;) {
            j = (j + 1) & b->table_mask;
            const fh_horder_t *h = &b->table[j];
            if (h->o.shares == 0) return;
            const uint64_t home = ref_home(b, h->ref);
            /* Move it back to i unless its home lies cyclically in (i, j]. */
            const int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                b->table[i] = *h;
                i = j;
                break;
            }
        }
    }
}

/* Double the hash in use (memory was reserved at start-up): move the live
 * orders aside, clear, reinsert.  A pause proportional to the orders outside
 * the window, taken at most log2(capacity / start) times a day. */
static __attribute__((noinline, cold)) void table_grow(fh_book_t *b)
{
    const uint64_t size = b->table_mask + 1;
    uint32_t n = 0;
    for (uint64_t i = 0; i < size; i++)
        if (b->table[i].o.shares) b->scratch[n++] = b->table[i];
    memset(b->table, 0, (size_t)size * 2 * sizeof *b->table);
    b->table_bits++;
    b->table_mask = (b->table_mask << 1) | 1;
    for (uint32_t k = 0; k < n; k++) {
        int found;
        const uint64_t pos = table_find(b, b->scratch[k].ref, b->scratch[k].o.venue, &found);
        b->table[pos] = b->scratch[k];
    }
    b->table_grows++;
}

/* A free hash entry for `ref` (not live), the table grown first if needed.
 * Live orders never exceed max_orders, so there always is one. */
static fh_order_t *table_insert(fh_book_t *b, uint64_t ref, uint32_t venue)
{
    if (FH_UNLIKELY(2 * (b->hash_live + 1) > b->table_mask + 1) && b->table_bits < b->table_max_bits) table_grow(b);
    int found;
    fh_horder_t *h = &b->table[table_find(b, ref, venue, &found)];
    h->ref = ref;
    h->o.venue = (uint8_t)venue;
    b->hash_live++;
    return &h->o;
}

FH_INLINE int in_window(const fh_book_t *b, uint64_t ref) { return ref - b->window_base < b->window_size; }

/* The live order `ref`, or NULL.  A reference in the window's range is in
 * the window, unless it was added while far ahead of the window (then it went
 * to the hash: see ord_new), which only refs up to h_ahead_max can be. */
FH_INLINE fh_order_t *ord_find(fh_book_t *b, uint64_t ref, uint32_t venue)
{
    if (FH_LIKELY(in_window(b, ref)) && FH_LIKELY(venue == b->window_venue)) {
        fh_order_t *o = &b->window[ref & b->window_mask];
        if (FH_LIKELY(o->shares != 0) || FH_LIKELY(ref > b->hash_ahead_max)) return o->shares ? o : NULL;
    }
    if (!b->hash_live) return NULL;
    int found;
    const uint64_t pos = table_find(b, ref, venue, &found);
    return found ? &b->table[pos].o : NULL;
}

/* Free a live order's entry (window or hash). */
FH_INLINE void ord_erase(fh_book_t *b, fh_order_t *o)
{
    if (FH_LIKELY(o >= b->window && o < b->window + b->window_size)) {
        o->shares = 0;
        b->window_live--;
        return;
    }
    const fh_horder_t *h = (const fh_horder_t *)(const void *)((const char *)o - offsetof(fh_horder_t, o));
    table_erase(b, (uint64_t)(h - b->table));
    b->hash_live--;
}

/* Start the window at `to` (forward only: the hash holds nothing in the new
 * range but what went there ahead of the window, see h_ahead_max). */
FH_INLINE void win_move(fh_book_t *b, uint64_t to)
{
    b->window_base = to;
    if (b->hash_ahead_max < to) b->hash_ahead_max = 0;     /* what went ahead is now behind: a hash ref like any */
}

/* Slide the window so that it ends just past `ref`: the live orders of the
 * references it leaves behind move to the hash.  Called with ref past the
 * window's end and live orders in it; each reference is passed over once, so
 * the scan costs a few entries per add, sequential (the lines ahead are
 * fetched as it goes). */
static void win_slide(fh_book_t *b, uint64_t ref)
{
    const uint64_t to = (ref - b->window_size + 1 + 15) & ~(uint64_t)15;   /* whole lines of entries */
    const uint64_t from = b->window_base;
    if (to - from >= b->window_size) {
        /* Everything passes: one sweep of the live entries. */
        for (uint64_t j = 0; j < b->window_size; j++) {
            fh_order_t *o = &b->window[j];
            if (!o->shares) continue;
            /* Its reference is the one of the old window with these low bits. */
            fh_order_t *h = table_insert(b, from + ((j - from) & b->window_mask), b->window_venue);
            *h = *o;
            h->venue = (uint8_t)b->window_venue;       /* window entries do not carry it */
            o->shares = 0;
        }
        b->window_live = 0;
    } else {
        for (uint64_t r = from; r < to; r++) {
            fh_order_t *o = &b->window[r & b->window_mask];
            if (FH_UNLIKELY(o->shares != 0)) {
                fh_order_t *h = table_insert(b, r, b->window_venue);
                *h = *o;
                h->venue = (uint8_t)b->window_venue;
                o->shares = 0;
                b->window_live--;
            }
        }
        __builtin_prefetch(&b->window[(to + 64) & b->window_mask], 1, 0);
    }
    win_move(b, to);
}

/* The entry a new order `ref` (not live) goes into. */
FH_INLINE fh_order_t *ord_new(fh_book_t *b, uint64_t ref, uint32_t venue)
{
    if (FH_UNLIKELY(venue != b->window_venue)) {
        if (b->window_venue != FH_WIN_VENUE_NONE) return table_insert(b, ref, venue);
        b->window_venue = venue;                        /* the first order: the window is its venue's */
    }
    if (FH_UNLIKELY(!in_window(b, ref))) {
        if (ref >= b->window_base && b->window_live == 0) {
            /* An empty window moves for free: it starts here. */
            win_move(b, ref & ~(uint64_t)15);
        } else if (ref >= b->window_base && ref - b->window_base < 2 * b->window_size) {
            /* The day moving on. */
            win_slide(b, ref);
        } else {
            /* Below the window (an old reference), or far past it while it holds
             * live orders (corrupt or hostile: sliding there would evict them all). */
            if (ref > b->window_base && ref > b->hash_ahead_max) b->hash_ahead_max = ref;
            return table_insert(b, ref, venue);
        }
    }
    b->window_live++;
    return &b->window[ref & b->window_mask];
}

/* ----------------------------------------------------------- price levels */

/* Index of the first level whose key is >= key (keys ascending, best last).
 * Orders arrive, trade and cancel mostly within a few ticks of the best: the
 * top 8 keys are compared at once, without branches (a walk down from the top
 * mispredicted its exit on most messages: the depth of the next change is as
 * random as the market); only a price below them pays for a branch-free
 * binary search.  A side shorter than 8 compares its n keys: the block holds
 * at least FH_LVL_MIN_CAP entries, so reading 8 from its start stays inside. */
#define FH_LVL_SCAN 8u
_Static_assert(FH_LVL_MIN_CAP >= FH_LVL_SCAN && FH_LVL_SCAN == 8, "a block holds the 8-level scan window");

/* Bits set in an 8-bit mask. */
static const uint8_t popcount8[256] = {
#define FH_B2(n) n, n + 1, n + 1, n + 2
#define FH_B4(n) FH_B2(n), FH_B2(n + 1), FH_B2(n + 1), FH_B2(n + 2)
#define FH_B6(n) FH_B4(n), FH_B4(n + 1), FH_B4(n + 1), FH_B4(n + 2)
    FH_B6(0), FH_B6(1), FH_B6(1), FH_B6(2)
#undef FH_B2
#undef FH_B4
#undef FH_B6
};

/* Bit i set when T[i].key < key, for the 8 levels from T. */
FH_INLINE uint32_t lvl_below8(const fh_level_t *T, uint32_t key)
{
#if defined(__SSE2__)
    /* Levels are 16 bytes with the key first: gather the 8 keys with unpacks,
     * compare unsigned through a sign flip, one movemask per 4. */
    const __m128i flip = _mm_set1_epi32((int)0x80000000u);
    const __m128i kv = _mm_xor_si128(_mm_set1_epi32((int)key), flip);
    uint32_t bits = 0;
    for (int h = 0; h < 2; h++) {
        const __m128i *q = (const __m128i *)(const void *)(T + 4 * h);
        const __m128i a = _mm_unpacklo_epi32(_mm_loadu_si128(q), _mm_loadu_si128(q + 1));      /* k0 k1 .. */
        const __m128i c = _mm_unpacklo_epi32(_mm_loadu_si128(q + 2), _mm_loadu_si128(q + 3));  /* k2 k3 .. */
        const __m128i k4 = _mm_xor_si128(_mm_unpacklo_epi64(a, c), flip);
        bits |= (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(kv, k4))) << (4 * h);
    }
    return bits;
#else
    uint32_t bits = 0;
    for (uint32_t i = 0; i < FH_LVL_SCAN; i++) bits |= (uint32_t)(T[i].key < key) << i;
    return bits;
#endif
}

/* First index in [0, w] whose key is >= key, given every key from w on is. */
static inline uint32_t lvl_bsearch(const fh_level_t *L, uint32_t w, uint32_t key)
{
    uint32_t lo = 0, len = w + 1;
    while (len > 1) {
        const uint32_t half = len >> 1;
        lo = L[lo + half - 1].key < key ? lo + half : lo;
        len -= half;
    }
    return lo + (lo < w && L[lo].key < key);
}

/* Index of the first level whose key is >= key.  `hint`: where the level was
 * last seen (an order remembers its level's index, counted from the worst
 * end, which only levels worse than it move: for a deep level, rarely), tried
 * before a binary search below the top 8; UINT32_MAX for none. */
FH_INLINE uint32_t lvl_lower_bound(const fh_level_t *L, uint32_t n, uint32_t key, uint32_t hint)
{
    const uint32_t full = n >= FH_LVL_SCAN, all = 0u - full;
    const uint32_t base = (n - FH_LVL_SCAN) & all;                  /* masks, not a branch on n */
    const uint32_t valid = (((1u << (n & 7)) - 1) | all) & 0xFFu;
    const uint32_t below = popcount8[lvl_below8(L + base, key) & valid];
    /* below: how many of the scanned levels sort under key; they come first. */
    if (FH_LIKELY(below != 0 || !full || n == FH_LVL_SCAN)) return base + below;
    /* Every key in [n - 8, n) is >= key: the answer is in [0, n - 8]. */
    if (hint < base && L[hint].key == key) return hint;
    return lvl_bsearch(L, base, key);
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
    if (b->level_free[cls]) {
        const uint32_t off = b->level_free[cls] - 1;
        b->level_free[cls] = b->levels[off].key;          /* free blocks keep their list link in key 0 */
        return off;
    }
    const uint32_t n = FH_LVL_MIN_CAP << cls;
    if (n > b->max_levels - b->level_bump) return UINT32_MAX;
    const uint32_t off = b->level_bump;
    b->level_bump += n;
    return off;
}

static void lvl_block_free(fh_book_t *b, uint32_t off, uint32_t cap)
{
    const uint32_t cls = lvl_class(cap);
    b->levels[off].key = b->level_free[cls];
    b->level_free[cls] = off + 1;
}

/* Room for one more level in a side's array: grow into the next size class. */
static __attribute__((noinline)) int lvl_grow(fh_book_t *b, fh_bside_t *s)
{
    const uint32_t ncap = s->cap ? s->cap * 2 : FH_LVL_MIN_CAP;
    const uint32_t off = lvl_block_alloc(b, lvl_class(ncap));
    if (off == UINT32_MAX) return -1;
    if (s->cap) {
        memcpy(&b->levels[off], &b->levels[s->off], (size_t)s->n * sizeof *b->levels);
        lvl_block_free(b, s->off, s->cap);
    }
    s->off = off;
    s->cap = ncap;
    return 0;
}

/* A level at `rank` (0 = best) changed: remember the shallowest rank to
 * republish, and say whether the best (2) or another shown level (1) moved. */
FH_INLINE int lvl_touch(const fh_book_t *b, fh_bside_t *s, uint32_t rank)
{
    /* Branch-free: dirty_from never exceeds depth, so a rank below the shown
     * levels leaves it as it is. */
    const uint32_t shown = rank < b->depth;
    s->dirty_from = (uint16_t)(rank < s->dirty_from ? rank : s->dirty_from);
    return (int)(shown + (shown & (rank == 0)));
}

/* A new level at index pos of a side's array (the levels above it move up
 * one: ~2 on average), growing the array first when it is full.  0, or -1
 * when the arena is full. */
FH_INLINE int lvl_insert(fh_book_t *b, fh_bside_t *s, uint32_t pos, uint32_t key, uint32_t orders, uint64_t shares)
{
    if (FH_UNLIKELY(s->n == s->cap) && lvl_grow(b, s) != 0) return -1;
    fh_level_t *L = &b->levels[s->off];
    for (uint32_t i = s->n; i > pos; i--) L[i] = L[i - 1];
    L[pos].key = key;
    L[pos].orders = orders;
    L[pos].shares = shares;
    s->n++;
    return 0;
}

/* The level at index pos leaves its side's array. */
FH_INLINE void lvl_erase(fh_level_t *L, fh_bside_t *s, uint32_t pos)
{
    for (uint32_t i = pos; i + 1 < s->n; i++) L[i] = L[i + 1];
    s->n--;
}

/* Add shares (and one order) at a price.  Returns 2 if the best level
 * changed, 1 if another of the top `depth` levels did, 0 if none did, -1 if
 * the arena is full. */
FH_INLINE int lvl_add(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t shares, uint32_t *at)
{
    const uint32_t key = lvl_key(price, side);
    fh_level_t *L = &b->levels[s->off];
    const uint32_t pos = lvl_lower_bound(L, s->n, key, UINT32_MAX);
    *at = pos;
    if (pos < s->n && L[pos].key == key) {
        L[pos].shares += shares;
        L[pos].orders++;
        return lvl_touch(b, s, s->n - 1 - pos);
    }
    if (lvl_insert(b, s, pos, key, 1, shares) != 0) return -1;
    return lvl_touch(b, s, s->n - 1 - pos);
}

/* Take shares (and, when the order is gone, one order) off the level at
 * `price`, last seen at index *hint (updated); returns 2/1/0 as lvl_add. */
FH_INLINE int lvl_remove(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t shares, int order_gone,
                         uint32_t *hint)
{
    const uint32_t key = lvl_key(price, side);
    fh_level_t *L = &b->levels[s->off];
    const uint32_t n = s->n;
    const uint32_t pos = lvl_lower_bound(L, n, key, *hint);
    *hint = pos;
    if (FH_UNLIKELY(pos >= n || L[pos].key != key)) return 0;   /* cannot happen: orders own their level */
    const int vis = lvl_touch(b, s, n - 1 - pos);
    L[pos].shares -= shares;
    L[pos].orders -= (uint32_t)order_gone;
    if (L[pos].orders == 0) lvl_erase(L, s, pos);
    return vis;
}

/* One order on the level at `price`, last seen at index *hint (updated),
 * goes from `was` shares to `now` (> 0): the level's shares move by the
 * difference.  Returns 2/1/0 as lvl_add. */
FH_INLINE int lvl_resize(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t was, uint32_t now,
                         uint32_t *hint)
{
    const uint32_t key = lvl_key(price, side);
    fh_level_t *L = &b->levels[s->off];
    const uint32_t pos = lvl_lower_bound(L, s->n, key, *hint);
    *hint = pos;
    if (FH_UNLIKELY(pos >= s->n || L[pos].key != key)) return 0;   /* cannot happen: orders own their level */
    L[pos].shares = L[pos].shares - was + now;
    return lvl_touch(b, s, s->n - 1 - pos);
}

/* Set the level at `price` to `shares` (0 removes it): a book of levels with
 * no orders behind them (IEX DEEP).  Returns 2/1/0 as lvl_add, -1 when the
 * arena is full, -2 when a level to remove was not there. */
FH_INLINE int lvl_set(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t shares)
{
    const uint32_t key = lvl_key(price, side);
    fh_level_t *L = &b->levels[s->off];
    const uint32_t pos = lvl_lower_bound(L, s->n, key, UINT32_MAX);
    if (pos < s->n && L[pos].key == key) {
        const int vis = lvl_touch(b, s, s->n - 1 - pos);
        if (shares) L[pos].shares = shares;
        else lvl_erase(L, s, pos);
        return vis;
    }
    if (!shares) return -2;
    if (lvl_insert(b, s, pos, key, 0, shares) != 0) return -1;
    return lvl_touch(b, s, s->n - 1 - pos);
}

/* A side of a top-of-book instrument (IEX TOPS) becomes exactly one level,
 * or none (shares or price 0).  Returns 2 when it changed, 0 when it did
 * not, -1 when the arena is full. */
static int tob_set(fh_book_t *b, fh_bside_t *s, int side, uint32_t price, uint32_t shares)
{
    const int empty = shares == 0 || price == 0;
    if (empty) {
        if (s->n == 0) return 0;
        s->n = 0;
        return lvl_touch(b, s, 0);
    }
    const uint32_t key = lvl_key(price, side);
    if (s->n == 1 && b->levels[s->off].key == key && b->levels[s->off].shares == shares) return 0;
    if (s->cap == 0 && lvl_grow(b, s) != 0) return -1;        /* the old quote stays, flagged */
    s->n = 0;
    (void)lvl_insert(b, s, 0, key, 0, shares);                  /* room for one: cannot fail */
    return lvl_touch(b, s, 0);
}

/* ------------------------------------------------------------- order ops */

FH_INLINE int locate_ok(const fh_book_t *b, uint32_t locate) { return locate >= 1 && locate <= b->n_instr; }

/* Remove `shares` from the live order o (all of it when gone); returns whether
 * the top levels changed. */
FH_INLINE int order_reduce(fh_book_t *b, fh_order_t *o, uint32_t shares)
{
    fh_instr_t *in = &b->instr[o->locate];
    const int gone = shares >= o->shares;
    const uint32_t take = gone ? o->shares : shares;
    const int vis = lvl_remove(b, &in->side[o->side], o->side, o->price, take, gone, &o->level);
    if (gone) {
        ord_erase(b, o);
        b->counters->orders_live--;
    } else {
        o->shares -= take;
    }
    return vis;
}

/* An add on a live reference replaces it: the old order goes (cold path). */
static __attribute__((noinline)) int order_replace_live(fh_book_t *b, fh_order_t *old, uint32_t locate, uint64_t ts)
{
    const uint32_t old_loc = old->locate;
    b->counters->add_replaced++;
    const int v_old = order_reduce(b, old, UINT32_MAX);
    if (old_loc == locate) return v_old;
    fh_instr_t *oin = &b->instr[old_loc];
    oin->applied++;
    oin->exch_ts = ts;
    oin->rx_ts = b->rx_ts;
    if (b->publish && (v_old || oin->dirty)) b->publish_now(b, old_loc, v_old > 1);
    return 0;
}

/* Add a new live order.  Returns visibility, or -1 when it was dropped. */
FH_INLINE int order_add(fh_book_t *b, uint64_t ref, uint32_t venue, uint32_t locate, int side, uint32_t shares,
                        uint32_t price, uint64_t ts)
{
    fh_instr_t *in = &b->instr[locate];
    int vis = 0;
    fh_order_t *old = ord_find(b, ref, venue);
    if (FH_UNLIKELY(old != NULL)) vis = order_replace_live(b, old, locate, ts);
    if (FH_UNLIKELY(b->counters->orders_live >= b->max_orders)) {
        b->counters->order_full++;
        in->flags |= FH_SLOT_DROPPED;
        in->dirty = 1;
        return vis ? vis : -1;
    }
    uint32_t at;
    const int lv = lvl_add(b, &in->side[side], side, price, shares, &at);
    if (FH_UNLIKELY(lv < 0)) {
        b->counters->level_full++;
        in->flags |= FH_SLOT_DROPPED;
        in->dirty = 1;
        return vis ? vis : -1;
    }
    fh_order_t *o = ord_new(b, ref, venue);
    o->shares = shares;
    o->price = price;
    o->locate = (uint16_t)locate;
    o->side = (uint8_t)side;
    o->level = at;
    b->counters->adds++;
    if (++b->counters->orders_live > b->counters->orders_peak) b->counters->orders_peak = b->counters->orders_live;
    return vis > lv ? vis : lv;
}

/* After a change to instrument `locate`: queue it for publishing if anything
 * visible moved. */
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
            if (FH_UNLIKELY(b->stream_gapped)) b->mark_stale(b, locate, 0);
        }
    }
    if (!b->publish) return;
    if (visible > 0 || in->dirty) {
        /* Published at the flush, once per instrument however many messages
         * of the packet (window) touched it. */
        if (!in->queued) b->touched[b->n_touched++] = locate;
        in->queued |= (uint8_t)(visible > 1 ? 3 : 1);
    }
}

/* Buy/sell indicator -> side + 1; 0 = neither (rejected).  A table, not two
 * compares: the side of the next add is a coin toss for a branch predictor. */
static const uint8_t side_of[256] = {['B'] = FH_SIDE_BID + 1, ['S'] = FH_SIDE_ASK + 1};

static void copy_stock(char *dst, const char *src) { memcpy(dst, src, 8); }

void fh_book_clear_marked(fh_book_t *b)
{
    fh_book_clear(b, b->clear_bits);
    memset(b->clear_bits, 0, clear_bytes(b));
    b->clears_marked = 0;
}

/* The operations with no ITCH message behind them (fh_api.h FH_OP_*), for an
 * instrument in range. */
FH_INLINE void book_apply_iex(fh_book_t *b, const fh_book_op_t *m, uint32_t locate)
{
    fh_book_counters_t *c = b->counters;
    fh_instr_t *in = &b->instr[locate];
    const uint64_t ts = m->timestamp;
    int vis = 0;
    switch (m->type) {
    case FH_OP_LEVEL: {
        /* The instrument is published only once its event is complete. */
        in->held = (uint8_t)!m->u.level.event_done;
        if (m->u.level.price == 0) break;          /* the decoder's: an update it could not book, closing its event */
        const int side = side_of[m->u.level.side] - 1;
        if (FH_UNLIKELY(side < 0)) {
            c->bad_side++;
            break;
        }
        vis = lvl_set(b, &in->side[side], side, m->u.level.price, m->u.level.shares);
        if (FH_UNLIKELY(vis < 0)) {
            if (vis == -1) {
                c->level_full++;
                in->flags |= FH_SLOT_DROPPED;
                in->dirty = 1;
            } else {
                c->unknown_ref++;                   /* a level removed that was not there */
            }
            vis = 0;
        }
        break;
    }
    case FH_OP_QUOTE: {
        const fh_op_quote_t *q = &m->u.quote;
        const int vb = tob_set(b, &in->side[FH_SIDE_BID], FH_SIDE_BID, q->bid_price, q->bid_shares);
        const int va = tob_set(b, &in->side[FH_SIDE_ASK], FH_SIDE_ASK, q->ask_price, q->ask_shares);
        if (FH_UNLIKELY(vb < 0 || va < 0)) {
            c->level_full++;
            in->flags |= FH_SLOT_DROPPED;
            in->dirty = 1;
        }
        vis = vb > va ? vb : va;
        break;
    }
    case FH_OP_OFFICIAL:
        in->dirty = 1;
        if (b->publish) {
            fh_shm_event_t *e = fh_book_event_begin(b, locate, FH_EV_STATE, 'X', ts);
            e->price1 = m->u.mark.price;
            e->qty1 = m->u.mark.kind;
            fh_book_event_commit(b, e);
        }
        break;
    case FH_OP_SEC_EVENT:
        fh_book_state_event(b, locate, 'E', m->u.mark.kind, ts);
        break;
    default:
        break;
    }
    touched(b, locate, vis, ts);
}

FH_INLINE void book_apply(fh_book_t *b, const fh_book_op_t *m)
{
    fh_book_counters_t *c = b->counters;
    const uint64_t ts = m->timestamp;
    uint32_t locate = m->stock_locate;
    switch (m->type) {
    case 'A':
    case 'F': {
        const fh_itch_A_t *a = &m->u.A;
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        if (FH_UNLIKELY(a->shares == 0 || a->price == 0)) {
            c->zero_rejected++;
            return;
        }
        const int side = side_of[a->buy_sell_indicator] - 1;
        if (FH_UNLIKELY(side < 0)) {
            c->bad_side++;
            return;
        }
        touched(b, locate, order_add(b, a->order_reference_number, m->venue, locate, side, a->shares, a->price, ts),
                ts);
        return;
    }
    case 'D': {
        fh_order_t *o = ord_find(b, m->u.D.order_reference_number, m->venue);
        if (FH_UNLIKELY(!o)) {
            c->unknown_ref++;
            return;
        }
        locate = o->locate;
        c->deletes++;
        touched(b, locate, order_reduce(b, o, UINT32_MAX), ts);
        return;
    }
    case 'U': {
        const fh_itch_U_t *u = &m->u.U;
        fh_order_t *o = ord_find(b, u->original_order_reference_number, m->venue);
        if (FH_UNLIKELY(!o)) {
            c->unknown_ref++;
            return;
        }
        locate = o->locate;
        const int side = o->side;
        c->replaces++;
        if (u->new_order_reference_number == u->original_order_reference_number && u->price == o->price &&
            u->shares != 0) {
            /* The same order at the same price (a PITCH or IEX modify of its
             * size, the usual case): its level's shares move by the
             * difference, in place -- what removing it and adding it again
             * leaves, and counted as that (an add). */
            c->adds++;
            const int vis = lvl_resize(b, &b->instr[locate].side[side], side, o->price, o->shares, u->shares,
                                       &o->level);
            o->shares = u->shares;
            touched(b, locate, vis, ts);
            return;
        }
        int vis = order_reduce(b, o, UINT32_MAX);
        if (FH_UNLIKELY(u->shares == 0 || u->price == 0)) c->zero_rejected++;
        else {
            const int v2 = order_add(b, u->new_order_reference_number, m->venue, locate, side, u->shares, u->price, ts);
            if (v2 > vis) vis = v2;
        }
        touched(b, locate, vis, ts);
        return;
    }
    case 'E':
    case 'C':
    case 'X': {
        const uint64_t ref = m->type == 'X'   ? m->u.X.order_reference_number
                             : m->type == 'E' ? m->u.E.order_reference_number
                                              : m->u.C.order_reference_number;
        const uint32_t want = m->type == 'X'   ? m->u.X.cancelled_shares
                              : m->type == 'E' ? m->u.E.executed_shares
                                               : m->u.C.executed_shares;
        fh_order_t *o = ord_find(b, ref, m->venue);
        if (FH_UNLIKELY(!o)) {
            c->unknown_ref++;
            return;
        }
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
        const int vis = order_reduce(b, o, done);
        if (m->type == 'E') fh_book_trade_event(b, locate, 'E', price, done, m->u.E.match_number, ts);
        else if (m->type == 'C' && m->u.C.printable == 'Y')
            fh_book_trade_event(b, locate, 'C', m->u.C.execution_price, done, m->u.C.match_number, ts);
        touched(b, locate, vis, ts);
        return;
    }
    case 'P':
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        fh_book_trade_event(b, locate, 'P', m->u.P.price, m->u.P.shares, m->u.P.match_number, ts);
        touched(b, locate, 0, ts);
        return;
    case 'Q':
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        fh_book_trade_event(b, locate, 'Q', m->u.Q.cross_price, m->u.Q.shares, m->u.Q.match_number, ts);
        touched(b, locate, 0, ts);
        return;
    case 'B':
        c->breaks++;
        if (b->publish) {
            fh_shm_event_t *e = fh_book_event_begin(b, locate_ok(b, locate) ? locate : 0, FH_EV_TRADE, 'B', ts);
            e->qty2 = m->u.B.match_number;
            fh_book_event_commit(b, e);
        }
        return;
    case 'H':
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        b->instr[locate].trading_state = m->u.H.trading_state;
        fh_book_state_event(b, locate, 'H', m->u.H.trading_state, ts);
        touched(b, locate, 0, ts);
        return;
    case 'h':
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        if (m->u.h.operational_halt_action == 'H') b->instr[locate].flags |= FH_SLOT_OP_HALT;
        else b->instr[locate].flags &= (uint8_t)~FH_SLOT_OP_HALT;
        fh_book_state_event(b, locate, 'h', m->u.h.operational_halt_action, ts);
        touched(b, locate, 0, ts);
        return;
    case 'Y':
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        b->instr[locate].reg_sho = m->u.Y.reg_sho_action;
        fh_book_state_event(b, locate, 'Y', m->u.Y.reg_sho_action, ts);
        touched(b, locate, 0, ts);
        return;
    case 'R': {
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
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
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        fh_instr_t *in = &b->instr[locate];
        in->luld_ref = m->u.J.auction_collar_reference_price;
        in->luld_up = m->u.J.upper_auction_collar_price;
        in->luld_lo = m->u.J.lower_auction_collar_price;
        in->dirty = 1;
        touched(b, locate, 0, ts);
        return;
    }
    case 'I': {
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
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
    case FH_OP_LEVEL:
    case FH_OP_QUOTE:
    case FH_OP_OFFICIAL:
    case FH_OP_SEC_EVENT:
        if (FH_UNLIKELY(!locate_ok(b, locate))) {
            c->locate_range++;
            return;
        }
        book_apply_iex(b, m, locate);
        return;
    case 'S':
        if (b->publish) {
            FH_STORE_RELAXED(&b->shm->hdr->system_event, m->u.S.event_code);
            fh_shm_event_t *e = fh_book_event_begin(b, 0, FH_EV_SYSTEM, m->u.S.event_code, ts);
            fh_book_event_commit(b, e);
        }
        return;
    default:
        /* L, V, W, K, N, O: reference data with no effect on the books. */
        return;
    }
}

/* ------------------------------------------------------- batched applying */

/* How far ahead (in messages) each stage fetches.  A message applies in a few
 * tens of ns when its lines are in cache and a miss costs ~100 ns or more here,
 * so the second stage reads only lines the first asked for several messages
 * earlier.  Measured with scripts/compare_builds.py flags (docs/performance.md). */
#ifndef FH_PF_FAR                   /* -D overrides: for measuring alternatives only */
#define FH_PF_FAR 16u
#endif
#ifndef FH_PF_NEAR
#define FH_PF_NEAR 8u
#endif
_Static_assert(FH_PF_FAR > FH_PF_NEAR, "the far stage runs ahead of the near one");

/* The reference is the first body field of every message that has one, so
 * the prefetch stages read it without looking at the type. */
_Static_assert(offsetof(fh_itch_A_t, order_reference_number) == 0 &&
                   offsetof(fh_itch_D_t, order_reference_number) == 0 &&
                   offsetof(fh_itch_E_t, order_reference_number) == 0 &&
                   offsetof(fh_itch_X_t, order_reference_number) == 0 &&
                   offsetof(fh_itch_C_t, order_reference_number) == 0 &&
                   offsetof(fh_itch_U_t, original_order_reference_number) == 0,
               "references lead every order body");

/* Both stages are free of branches on the message type: the type is as
 * unpredictable as the market, and a mispredicted branch per stage cost more
 * than the prefetches saved (measured: a typed three-stage pipeline was no
 * faster than none).  Every ITCH message carries its stock locate, so the
 * instrument needs no lookup; a message with no reference prefetches a
 * harmless window entry. */
FH_INLINE const fh_instr_t *pf_instr(const fh_book_t *b, uint32_t locate)
{
    return &b->instr[locate <= b->n_instr ? locate : 0];
}

/* The entry of `ref`: in the window, or its hash home (an order resting
 * since long before the window; chosen by a select, not a branch). */
FH_INLINE const fh_order_t *pf_entry(const fh_book_t *b, uint64_t ref)
{
    const fh_order_t *w = &b->window[ref & b->window_mask];
    const fh_order_t *h = &b->table[ref_home(b, ref)].o;
    return in_window(b, ref) ? w : h;
}

/* Stage 1: the order's entry and the instrument. */
FH_INLINE void pf_far(const fh_book_t *b, const fh_book_op_t *m)
{
    __builtin_prefetch(pf_entry(b, m->u.D.order_reference_number), 1, 3);
    __builtin_prefetch(pf_instr(b, m->stock_locate), 1, 3);
}

/* Stage 2: the top levels of the side the message works on: an add's side is
 * in the message, an order's in its entry (both fetched by stage 1). */
FH_INLINE void pf_near(const fh_book_t *b, const fh_book_op_t *m)
{
    const fh_order_t *o = pf_entry(b, m->u.D.order_reference_number);
    const uint32_t is_add = (m->type == 'A') | (m->type == 'F');
    const uint32_t side = ((m->u.A.buy_sell_indicator == 'S') & is_add) | ((uint32_t)o->side & 1 & (is_add - 1));
    const fh_bside_t *s = &pf_instr(b, m->stock_locate)->side[side];
    const uint32_t top = s->off + s->n - (s->n != 0);
    __builtin_prefetch(&b->levels[top], 1, 3);
    __builtin_prefetch(&b->levels[top >= 4 ? top - 4 : 0], 1, 3);
}

void fh_book_apply_batch(fh_book_t *b, const fh_book_op_t *m, uint32_t n)
{
#ifdef FH_PF_OFF
    for (uint32_t i = 0; i < n; i++) book_apply(b, &m[i]);
    return;
#endif
    /* Prime the pipeline; a short packet fetches everything first, then applies. */
    const uint32_t far = n < FH_PF_FAR ? n : FH_PF_FAR, near = n < FH_PF_NEAR ? n : FH_PF_NEAR;
    for (uint32_t i = 0; i < far; i++) pf_far(b, &m[i]);
    for (uint32_t i = 0; i < near; i++) pf_near(b, &m[i]);
    uint32_t i = 0;
    for (; i + FH_PF_FAR < n; i++) {
        pf_far(b, &m[i + FH_PF_FAR]);
        pf_near(b, &m[i + FH_PF_NEAR]);
        book_apply(b, &m[i]);
    }
    for (; i + FH_PF_NEAR < n; i++) {
        pf_near(b, &m[i + FH_PF_NEAR]);
        book_apply(b, &m[i]);
    }
    for (; i < n; i++) book_apply(b, &m[i]);
}

_Static_assert(offsetof(fh_instr_t, flags) < 64, "hot instrument fields share the first cache line");
_Static_assert(sizeof(fh_instr_t) % 64 == 0, "instruments are whole cache lines");
_Static_assert(sizeof(fh_order_t) == 16 && sizeof(fh_level_t) == 16, "four orders or levels a cache line");

void fh_book_clear(fh_book_t *b, const uint8_t *locates)
{
#define FH_BIT(loc) (locates[(loc) >> 3] & (1u << ((loc) & 7)))
    /* The orders to find: every live order sits on one of its instrument's
     * levels, which count them, so the pass over the store stops once all
     * are found (a book of levels with no orders, IEX DEEP's, needs none). */
    uint64_t want = 0;
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        if (!FH_BIT(loc)) continue;
        for (int sd = 0; sd < 2; sd++) {
            const fh_bside_t *s = &b->instr[loc].side[sd];
            for (uint32_t k = 0; k < s->n; k++) want += b->levels[s->off + k].orders;
        }
    }
    uint64_t gone = 0;
    for (uint64_t j = 0; j < b->window_size && gone < want; j++) {
        fh_order_t *o = &b->window[j];
        if (o->shares && FH_BIT(o->locate)) {
            o->shares = 0;
            b->window_live--;
            gone++;
        }
    }
    /* The hash: survivors aside, cleared, reinserted (as when it grows). */
    const uint64_t size = gone < want ? b->table_mask + 1 : 0;
    uint32_t n = 0;
    for (uint64_t i = 0; i < size; i++) {
        const fh_horder_t *h = &b->table[i];
        if (!h->o.shares) continue;
        if (FH_BIT(h->o.locate)) gone++;
        else b->scratch[n++] = *h;
    }
    if (size && n != b->hash_live) {
        memset(b->table, 0, (size_t)size * sizeof *b->table);
        for (uint32_t k = 0; k < n; k++) {
            int found;
            b->table[table_find(b, b->scratch[k].ref, b->scratch[k].o.venue, &found)] = b->scratch[k];
        }
        b->hash_live = n;
    }
    b->counters->orders_live -= gone < b->counters->orders_live ? gone : b->counters->orders_live;
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        if (!FH_BIT(loc)) continue;
        fh_instr_t *in = &b->instr[loc];
        for (int sd = 0; sd < 2; sd++) {
            in->side[sd].n = 0;
            in->side[sd].dirty_from = 0;
        }
        in->flags = (uint8_t)(in->flags & ~FH_SLOT_DROPPED);
        in->held = 0;
        in->dirty = 1;
        if (b->publish) {
            if (!in->queued) b->touched[b->n_touched++] = loc;
            in->queued |= 3;
        }
    }
#undef FH_BIT
}

void fh_book_level(const fh_book_t *b, uint32_t locate, int side, uint32_t rank, uint32_t *price, uint64_t *shares,
                   uint32_t *orders)
{
    const fh_level_t *l = lvl_at(b, &b->instr[locate].side[side], rank);
    *price = lvl_key(l->key, side);
    *shares = l->shares;
    *orders = l->orders;
}
