/* shm.h -- the shared-memory segment: layout, sequence lock, event ring.
 *
 * Sequence lock (one writer per slot, any number of readers, nobody waits on
 * anybody):
 *
 *   writer                              reader (fh_shm_read_slot)
 *   s = slot->seq                       do {
 *   slot->seq = s + 1   (odd: busy)         s1 = load_acquire(slot->seq)
 *   release fence                           if (s1 odd) continue      (writer inside)
 *   ... write the slot ...                  copy the slot
 *   store_release(slot->seq, s + 2)         acquire fence
 *                                           s2 = load(slot->seq)
 *                                       } while (s1 != s2)            (torn: retry)
 *
 * A reader never sees a half-written slot: if the writer touched it while the
 * reader copied, the sequence moved and the copy is thrown away.  The retry
 * loop is C (fh_shm_read_slot) so Python never runs it.  A writer that dies
 * inside leaves the sequence odd; readers give up after max_spins and say so.
 *
 * Event ring (one per lane): a power-of-two array of 64-byte events.  The
 * writer clears an event's seq, writes the fields, then stores seq = n + 1
 * and its lane's ring head = n + 1 with release order.  Each reader keeps its own cursor;
 * an event whose seq is not cursor + 1 after the copy was overwritten: the
 * reader was lapped and is told how many events it lost. */
#ifndef FH_SHM_H
#define FH_SHM_H

#include "fh_common.h"

#define FH_SHM_MAGIC "FHBOOKS"
/* The magic of a segment still being made: written (with the writer's pid)
 * before the file grows, replaced by FH_SHM_MAGIC once every field is in
 * place.  Readers refuse it ("still being created"); a new writer that finds
 * it unlocked knows the file is ours, left half-made by a writer that died. */
#define FH_SHM_MAGIC_CREATING "FHBUILD"

/* Memory ordering, named (Aeron style). */
#define FH_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FH_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define FH_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define FH_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define FH_FENCE_RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define FH_FENCE_ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)

/* One lane's (writer thread's) view of a mapped segment. */
typedef struct fh_shm {
    uint8_t *base;
    uint64_t size;
    fh_shm_header_t *hdr;
    uint8_t *slots;
    fh_shm_event_t *ring;      /* this lane's ring */
    uint64_t ring_mask;
    uint64_t head;             /* writer's copy of this lane's ring head */
    uint64_t *ring_head;       /* hdr->ring_head[lane].head */
    uint8_t *counters;         /* this lane's counters area */
    uint32_t slot_size;
    uint32_t depth;
    uint32_t lane;
    int named;                 /* a /dev/shm file (else private anonymous memory) */
    int owner;                 /* lane 0 maps and unmaps; other lanes borrow */
    int lock_fd;               /* named, owner: the open segment, locked for the writer's whole life
                                * (what says the name is taken: see fh_shm_create); -1 otherwise */
    char name[256];
} fh_shm_t;

/* Segment size for a configuration (bytes), and the slot size. */
uint32_t fh_shm_slot_size(uint32_t depth);
uint64_t fh_shm_total_size(uint32_t n_slots, uint32_t depth, uint64_t ring_capacity, uint32_t n_lanes);

/* Create a named segment, or make a private one (name NULL or ""); `s`
 * becomes lane 0's view.  Named: /dev/shm/NAME is opened without following a
 * link or blocking, must be a regular file of this user, and is locked
 * (an OFD write lock, held until fh_shm_close) before anything in it is
 * trusted.  The lock taken by another process: a live writer owns the name,
 * refused.  Then what is there decides: empty, or a segment of ours whose
 * creation never ended -> used in place; a segment of ours (its writer
 * finished or dead, since nobody holds its lock) -> unlinked, readers keep
 * their mapping of it, and a fresh one made; anything else (a FIFO, a
 * symlink, another user's file, bytes that are not a segment) -> refused by
 * name and left where it is.  Every refusal's message starts "/dev/shm/NAME "
 * (feedhandler.replay tells a refused name from other errors by it). */
int fh_shm_create(fh_shm_t *s, const char *name, uint32_t mode, uint32_t n_slots, uint32_t depth,
                  uint64_t ring_capacity, uint32_t n_lanes, char *err, size_t errlen);
/* Lane `lane`'s view of the segment lane 0 (`first`) created. */
void fh_shm_lane_view(const fh_shm_t *first, uint32_t lane, fh_shm_t *out);
void fh_shm_close(fh_shm_t *s);

FH_INLINE fh_shm_slot_t *fh_shm_slot(const fh_shm_t *s, uint32_t locate)
{
    return (fh_shm_slot_t *)(s->slots + (size_t)locate * s->slot_size);
}

/* Level arrays of a slot, in the order fh_api.h documents. */
FH_INLINE uint32_t *fh_slot_bid_price(fh_shm_slot_t *sl) { return (uint32_t *)((uint8_t *)sl + FH_SHM_SLOT_FIXED); }

FH_INLINE void fh_shm_write_begin(fh_shm_slot_t *sl)
{
    FH_STORE_RELAXED(&sl->seq, sl->seq + 1);
    FH_FENCE_RELEASE();
}

FH_INLINE void fh_shm_write_end(fh_shm_slot_t *sl) { FH_STORE_RELEASE(&sl->seq, sl->seq + 1); }

/* Claim the next ring entry; fill it, then fh_shm_event_commit(). */
FH_INLINE fh_shm_event_t *fh_shm_event_begin(fh_shm_t *s)
{
    fh_shm_event_t *e = &s->ring[s->head & s->ring_mask];
    /* The ring is far larger than the cache: claim the line a few events
     * ahead now, so writing it then does not wait for memory. */
    __builtin_prefetch(&s->ring[(s->head + 8) & s->ring_mask], 1, 3);
    FH_STORE_RELAXED(&e->seq, 0);
    FH_FENCE_RELEASE();
    return e;
}

FH_INLINE void fh_shm_event_commit(fh_shm_t *s, fh_shm_event_t *e)
{
    const uint64_t n = ++s->head;
    FH_STORE_RELEASE(&e->seq, n);
    FH_STORE_RELEASE(s->ring_head, n);
}

/* Copy the counters into the segment (cold path: every few thousand frames). */
void fh_shm_publish_counters(fh_shm_t *s, const fh_stats_t *st, uint64_t now_ns);

/* Raw reads, before widening: slot copies as the writer laid them out
 * (slot_size bytes each) and ring events as written.  Not in the ABI
 * (fh_api.h): the package reads widened (fh_shm_read_book(s),
 * fh_shm_read_events); the test probes (csrc/probe/probe_api.h, which
 * documents them) and the fuzz harnesses compare the two. */
int fh_shm_read_slot(const uint8_t *base, uint32_t locate, uint8_t *out, uint32_t max_spins);
uint32_t fh_shm_read_slots(const uint8_t *base, uint32_t first, uint32_t n, uint8_t *out, uint32_t max_spins);
uint32_t fh_shm_poll_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, fh_shm_event_t *out, uint32_t max,
                            uint64_t *lapped);

/* The consolidated BBO entry of `sym` (a space-padded symbol word): found, or
 * claimed when `claim` (compare-and-swap: lanes publishing the same symbol from
 * two venues race for a free entry and agree on the winner).  NULL when the
 * table is full or, without claim, the symbol is not in it. */
FH_INLINE fh_shm_cbbo_t *fh_shm_cbbo_find(fh_shm_cbbo_t *t, uint64_t sym, int claim)
{
    const uint64_t mask = FH_SHM_CBBO_ENTRIES - 1;
    uint64_t i = (sym * 0x9E3779B97F4A7C15ull) >> 50 & mask;
    for (uint32_t n = 0; n < FH_SHM_CBBO_ENTRIES; n++, i = (i + 1) & mask) {
        fh_shm_cbbo_t *e = &t[i];
        uint64_t cur = FH_LOAD_ACQUIRE(&e->symbol);
        if (cur == sym) return e;
        if (cur != 0) continue;
        if (!claim) return NULL;
        if (__atomic_compare_exchange_n(&e->symbol, &cur, sym, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return e;
        if (cur == sym) return e;                     /* another lane claimed it for the same symbol */
    }
    return NULL;
}

/* The best of the venues' tops in `c` (v_* and venues filled): best price,
 * then larger size, then lower venue. */
FH_INLINE void fh_cbbo_best(fh_cbbo_t *c)
{
    c->bid_venue = c->ask_venue = -1;
    c->bid_price = c->ask_price = 0;
    c->bid_shares = c->ask_shares = 0;
    for (int v = 0; v < FH_SHM_CBBO_VENUES; v++) {
        if (!(c->venues >> v & 1)) continue;
        const uint32_t bp = c->v_bid_price[v], ap = c->v_ask_price[v];
        if (bp && (bp > c->bid_price || (bp == c->bid_price && c->v_bid_shares[v] > c->bid_shares))) {
            c->bid_price = bp;
            c->bid_shares = c->v_bid_shares[v];
            c->bid_venue = v;
        }
        if (ap && (!c->ask_price || ap < c->ask_price || (ap == c->ask_price && c->v_ask_shares[v] > c->ask_shares))) {
            c->ask_price = ap;
            c->ask_shares = c->v_ask_shares[v];
            c->ask_venue = v;
        }
    }
}

#endif
