/* publish.h -- book -> shared memory: each touched instrument's slot once
 * per packet (or BinaryFILE window) under its seqlock, and events (BBO,
 * trades, state, stale, silent) into the ring.
 *
 * The appliers (book.c) record trades and state changes through the inline
 * helpers below and queue touched instruments; the pipeline flushes the queue
 * once per packet (fh_book_flush_pending).  Slot writing and the BBO check are
 * publish.c. */
#ifndef FH_PUBLISH_H
#define FH_PUBLISH_H

#include "book.h"
#include "shm.h"
#include "tsc.h"

/* Publish time, read from the TSC at the first publish of each input packet
 * (the source clears b->now per packet) and shared by every slot write and
 * event of that packet: reading the TSC per publish cost ~18 ns here, a
 * third of the publishing cost. */
FH_INLINE uint64_t fh_pub_now(fh_book_t *b)
{
    if (!b->now) b->now = fh_tsc_ns(b->tsc);
    return b->now;
}


FH_INLINE fh_shm_event_t *fh_pub_event_begin(fh_book_t *b, uint32_t locate, uint8_t type, uint8_t aux, uint64_t exch_ts)
{
    fh_shm_event_t *e = fh_shm_event_begin(b->shm);
    e->exch_ts = exch_ts;
    e->rx_ts = b->rx_ts;
    e->publish_ts = fh_pub_now(b);
    e->locate = (uint16_t)locate;
    e->type = type;
    e->aux = aux;
    e->price1 = e->price2 = 0;
    e->lane = b->shm->lane;
    e->qty1 = e->qty2 = 0;
    return e;
}

FH_INLINE void fh_pub_event_commit(fh_book_t *b, fh_shm_event_t *e)
{
    fh_shm_event_commit(b->shm, e);
    b->ctr->events++;
}

static inline void fh_pub_trade(fh_book_t *b, uint32_t locate, uint8_t kind, uint32_t price, uint64_t shares, uint64_t match,
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
    fh_shm_event_t *e = fh_pub_event_begin(b, locate, FH_EV_TRADE, kind, ts);
    e->price1 = price; e->qty1 = shares; e->qty2 = match;
    fh_pub_event_commit(b, e);
}

static inline void fh_pub_state(fh_book_t *b, uint32_t locate, uint8_t kind, uint8_t value, uint64_t ts)
{
    b->instr[locate].dirty = 1;
    if (!b->publish) return;
    fh_shm_event_t *e = fh_pub_event_begin(b, locate, FH_EV_STATE, kind, ts);
    e->price1 = value;
    fh_pub_event_commit(b, e);
}

/* Publish what the messages applied since the last flush changed: each touched
 * instrument's slot once, and a BBO event where its best prices or sizes moved.
 * The pipeline flushes once per packet (what arrived together is published
 * together, and a burst on one instrument costs one slot write), a BinaryFILE
 * after every record. */
void fh_book_flush(fh_book_t *b);
/* The hot-path form: no call when nothing is waiting (decode-only, book mode,
 * messages that changed nothing visible). */
FH_INLINE void fh_book_flush_pending(fh_book_t *b)
{
    if (b->n_pub) fh_book_flush(b);
}
/* Flag an instrument's book as possibly wrong (gap) and publish that. */
void fh_book_mark_stale(fh_book_t *b, uint32_t locate, uint64_t missing);
/* Flag (on = 1) or clear an instrument's SILENT flag and publish that. */
/* A snapshot rebuilt the instrument's book: STALE cleared, event "recovered". */
void fh_book_clear_stale(fh_book_t *b, uint32_t locate);
void fh_book_mark_silent(fh_book_t *b, uint32_t locate, int on);
/* Publish every instrument (start-up, end of input). */
void fh_book_publish_all(fh_book_t *b);
/* Write instrument `locate`'s slot (its top levels from the first changed
 * rank, its other fields when dirty) and, for check_bbo, a BBO event when its
 * best prices or sizes moved since the last one reported. */
void fh_publish_slot(fh_book_t *b, uint32_t locate);
void fh_publish_check_bbo(fh_book_t *b, uint32_t locate);

/* The consolidated table just turned on: every instrument's top into it. */
void fh_publish_cbbo_all(fh_book_t *b);

#endif
