/* book.h -- per-core L3 order books and L2 price levels, applied in batches.
 *
 * Built for a whole trading day's working set (hundreds of thousands of live
 * orders, thousands of instruments: far more than the caches).  Layout
 * (docs/performance.md explains the choices and the measurements):
 *
 * Orders: a window of 2^k 16-byte entries indexed directly by reference
 * number (ref & mask) covering the most recent references [win_base,
 * win_base + 2^k).  NASDAQ assigns references in increasing order, so new
 * orders land in consecutive entries and an order's entry is one multiply-free
 * address away from its reference: it can be prefetched before the message is
 * applied, with no dependent load.  When a new reference passes the window's
 * end the window slides: live orders it leaves behind (resting for hours) move
 * to an open-addressing hash table keyed by reference (linear probing,
 * backward-shift deletion), as do references from outside the window
 * (hostile, out-of-order, or far ahead).
 *
 * Levels: per instrument and side one sorted array of (price key, orders,
 * shares) with the best LAST, in blocks of a preallocated arena (power-of-two
 * size classes).  A level is found by price, the top few compared without
 * branches; the top 10 are 160 contiguous bytes, so publishing them is one
 * copy from two or three cache lines.
 *
 * Applying: fh_book_apply_batch() takes a packet's (or a BinaryFILE window's)
 * decoded messages and fetches ahead in two stages that never branch on the
 * message type: the order's entry and the instrument 16 messages ahead, the
 * top levels of the side it works on 8 ahead.
 *
 * Nothing is allocated after start-up: when max_orders are live or the arena is
 * full the add is dropped, counted, and the instrument flagged FH_SLOT_DROPPED.
 *
 * Several venues (ITCH and PITCH in one lane): order references are unique
 * per venue only, so an order is keyed by (reference, venue).  The window
 * serves one venue, the first to add an order; the others' orders live in the
 * hash, whose entries compare the venue too.
 *
 * Rules: unknown reference -> counted, ignored; add on a live reference ->
 * replaces it; execute/cancel larger than the order -> clamped; zero shares or
 * zero price -> rejected; books keep applying during halts.
 *
 * Books with no orders (IEX DEEP price levels, the TOPS top of book) are set
 * level by level (FH_OP_LEVEL, FH_OP_QUOTE): their levels count no orders. */
#ifndef FH_BOOK_H
#define FH_BOOK_H

#include "fh_common.h"
#include "shm.h"
#include "tsc.h"

#define FH_SIDE_BID 0
#define FH_SIDE_ASK 1
#define FH_LVL_MIN_CAP 16u     /* smallest level block */
#define FH_LVL_CLASSES 24
#define FH_TABLE_START_BITS 16    /* hash: 64 Ki entries in use at start-up */
#define FH_WIN_VENUE_NONE 0xFFFFFFFFu
#define FH_WIN_MAX_BITS 24        /* order window: at most 2^24 references (256 MiB) */

/* A live order; shares == 0 marks a free entry. */
typedef struct fh_order {
    uint32_t shares;
    uint32_t price;
    uint16_t locate;
    uint8_t side;
    uint8_t venue;            /* references are unique per venue: the hash matches (ref, venue) */
    uint32_t level;            /* index of its level in its side's array when last seen (a hint) */
} fh_order_t;

/* An order outside the window, in the hash table. */
typedef struct fh_horder {
    uint64_t ref;
    fh_order_t o;
} fh_horder_t;

/* A price level; per side an array of these sorted worst .. best. */
typedef struct fh_level {
    uint32_t key;              /* price, inverted for asks (see lvl_key) */
    uint32_t orders;
    uint64_t shares;
} fh_level_t;

typedef struct fh_bside {
    uint32_t off;              /* first level in the arena */
    uint32_t n;                /* levels in use, sorted worst .. best */
    uint32_t cap;              /* 0 until the first add */
    uint16_t shown;            /* levels in the slot at the last publish */
    uint16_t dirty_from;       /* shallowest rank (0 = best) changed since then */
} fh_bside_t;

/* One instrument.  The first cache line holds what every message touches;
 * the rest is read when something visible changes. */
typedef struct fh_instr {
    fh_bside_t side[2];
    uint64_t applied;          /* messages applied to this instrument */
    uint64_t exch_ts;
    uint64_t rx_ts;
    uint8_t dirty;            /* a visible field changed since the last publish */
    uint8_t flags;            /* enum fh_slot_flags */
    uint8_t trading_state, reg_sho, market_category, noii_dir;
    uint8_t queued;           /* in the packet's publish list: 1, | 2 when its top changed (BBO check) */
    uint8_t held;             /* IEX DEEP: an event is open, so publishing waits for its last update */
    /* --- second line on: cold */
    uint64_t last_trade_shares, last_trade_match, last_trade_ts;
    uint64_t noii_paired, noii_imbalance;
    uint64_t bbo_bid_sh, bbo_ask_sh;     /* last BBO an event reported */
    uint32_t bbo_bid_px, bbo_ask_px;
    uint32_t last_trade_price, round_lot;
    uint32_t luld_ref, luld_up, luld_lo;
    uint32_t noii_near, noii_far, noii_ref;
    char symbol[8];
    uint8_t venue;            /* index in the run's venue table (0: the ITCH venue) */
    uint8_t _pad2[3];
    uint32_t cbbo;             /* its consolidated BBO entry + 1 (0: not claimed yet) */
    uint8_t _pad1[32];
} __attribute__((aligned(64))) fh_instr_t;

typedef struct fh_book {
    fh_order_t *window;        /* order window: entry ref & window_mask for refs in
                                * [window_base, window_base + window_size)
                                * of venue window_venue; other venues' orders live in the hash */
    uint32_t window_venue;   /* the venue of the first order added (a PITCH-only lane: that venue);
                              * FH_WIN_VENUE_NONE before it */
    uint64_t window_base, window_size, window_mask;
    uint64_t window_live;    /* live orders in the window */
    fh_horder_t *table;        /* hash for orders outside the window, 2x max_orders entries (power of two) */
    uint64_t hash_live;      /* live orders in the hash */
    uint64_t hash_ahead_max; /* highest reference put in the hash while far past the window, 0 = none */
    fh_level_t *levels;        /* level arena (blocks of FH_LVL_MIN_CAP << class) */
    fh_instr_t *instr;         /* index = stock locate, 1..n_instr */
    fh_horder_t *scratch;      /* max_orders entries, used while the hash grows */
    uint32_t max_orders;
    uint32_t table_bits;       /* log2 of the hash entries in use */
    uint32_t table_max_bits;   /* log2 of the hash entries reserved (2 x max_orders) */
    uint32_t table_grows;
    uint64_t table_mask;
    uint64_t seed;             /* scrambles reference blocks (see ref_home) */
    uint32_t max_levels, level_bump;
    uint32_t level_free[FH_LVL_CLASSES];
    uint32_t n_instr;          /* highest locate accepted */
    uint32_t depth;
    int publish;          /* write slots and events to shm */
    fh_shm_t *shm;
    fh_shm_cbbo_t *cbbo;       /* the consolidated BBO table (shm), or NULL: not consolidating */
    uint64_t *cbbo_full;       /* counter: instruments the full table could not take (fh_stats_t.cbbo_full) */
    struct fh_cbbo_last {
        uint32_t bid_price, ask_price;
        uint64_t bid_shares, ask_shares;
        uint8_t bid_venue, ask_venue;
        uint8_t _pad[6];
    } *cbbo_last;   /* per entry: the consolidated BBO this lane last reported */
    const fh_tsc_t *tsc;
    fh_book_counters_t *counters;
    uint64_t rx_ts;            /* capture/receive time of the frame being applied */
    uint64_t now;              /* publish time of the packet being applied, 0 = not read yet */
    uint8_t *stream_seen;      /* bitmap of locates seen on the current stream, or NULL */
    int stream_gapped;    /* the current stream lost messages for good: a locate it shows for the
                           * first time may have lost its first messages (directory, adds) */
    uint32_t *touched;         /* instruments touched since the last flush, each once (n_instr + 1 entries) */
    uint8_t *clear_bits;       /* instruments whose books are to be emptied (fh_book_clear_mark) */
    uint32_t clears_marked;    /* bits set in clear_bits */
    uint32_t n_touched;
    uint64_t bytes;            /* memory reserved for the structures above */
    /* Publishing (publish.c, the layer above) for the two cold paths that
     * must publish at once rather than at the packet's flush: an add that
     * replaced a live order of another instrument (publish_now), and an
     * instrument first seen on a stream that lost messages (mark_stale).
     * Set by fh_publish_hooks once the books exist, publishing or not. */
    void (*publish_now)(struct fh_book *b, uint32_t locate, int check_bbo);
    void (*mark_stale)(struct fh_book *b, uint32_t locate, uint64_t missing);
} fh_book_t;

/* Hash position of a reference outside the window.  Consecutive references
 * stay in nearby entries (orders evicted together are looked up together);
 * the bits above the table size pick a seeded, scrambled offset per block,
 * so references that share their low bits do not pile onto one probe run,
 * and the offsets cannot be predicted to build collisions on purpose.
 * Consecutive references land two entries apart: the free entry between
 * them ends the probe run, so deleting an order does not shift a whole run of
 * its neighbours (backward-shift deletion scans to the next free entry). */
FH_INLINE uint64_t ref_home(const fh_book_t *b, uint64_t ref)
{
    uint64_t hi = (ref >> b->table_bits) ^ b->seed;
    hi *= 0x9E3779B97F4A7C15ull;
    hi ^= hi >> 29;
    return ((ref ^ hi) << 1) & b->table_mask;
}

/* Asks sort by inverted price so both sides keep their best level last. */
FH_INLINE uint32_t lvl_key(uint32_t price, int side) { return price ^ (0u - (uint32_t)side); }

/* Level `rank` (0 = best, < n) of a side. */
FH_INLINE const fh_level_t *lvl_at(const fh_book_t *b, const fh_bside_t *s, uint32_t rank)
{
    return &b->levels[s->off + s->n - 1 - rank];
}

int fh_book_init(fh_book_t *b, uint32_t max_orders, uint32_t max_instruments, uint32_t max_levels, uint32_t depth,
                 char *err, size_t errlen);
void fh_book_free(fh_book_t *b);
/* Apply n decoded messages in order (a packet, or a window of BinaryFILE
 * records); the caller flushes. */
void fh_book_apply_batch(fh_book_t *b, const fh_book_op_t *m, uint32_t n);
/* Empty the books of the instruments whose bit is set in `locates` (a
 * stream's bitmap): their live orders and levels go, the rest of their state
 * stays (a snapshot overwrites it).  Cold path: one pass over the orders. */
void fh_book_clear(fh_book_t *b, const uint8_t *locates);
/* Several instruments' books to empty (IEX Clear Book), in one pass over the
 * orders however many: mark each (its earlier operations applied first), then
 * clear them all before anything else touches them. */
FH_INLINE void fh_book_clear_mark(fh_book_t *b, uint32_t locate)
{
    b->clear_bits[locate >> 3] |= (uint8_t)(1u << (locate & 7));
    b->clears_marked++;
}
void fh_book_clear_marked(fh_book_t *b);
/* Level `rank` (0 = best, < side's n) of an instrument's side (cold path). */
void fh_book_level(const fh_book_t *b, uint32_t locate, int side, uint32_t rank, uint32_t *price, uint64_t *shares,
                   uint32_t *orders);

#endif
