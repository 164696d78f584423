/* book_events.h -- what the books write into the segment's event ring as
 * they apply messages: trades (E, C, P, Q, B) and state changes (H, h, Y,
 * system events), each stamped with the packet's publish time.  Inline, in
 * the book stage: the appliers (book.c) call them per message.  Instrument
 * slots and BBO events are the publish stage's (publish.h), after a packet. */
#ifndef FH_BOOK_EVENTS_H
#define FH_BOOK_EVENTS_H

#include "book.h"

/* Publish time, read from the TSC at the first publish of each input packet
 * (the source clears b->now per packet) and shared by every slot write and
 * event of that packet: reading the TSC per publish cost ~18 ns here, a
 * third of the publishing cost. */
FH_INLINE uint64_t fh_book_event_now(fh_book_t *b)
{
    if (!b->now) b->now = fh_tsc_ns(b->tsc);
    return b->now;
}

FH_INLINE fh_shm_event_t *fh_book_event_begin(fh_book_t *b, uint32_t locate, uint8_t type, uint8_t aux,
                                              uint64_t exch_ts)
{
    fh_shm_event_t *e = fh_shm_event_begin(b->shm);
    e->exch_ts = exch_ts;
    e->rx_ts = b->rx_ts;
    e->publish_ts = fh_book_event_now(b);
    e->locate = (uint16_t)locate;
    e->type = type;
    e->aux = aux;
    e->price1 = e->price2 = 0;
    e->lane = b->shm->lane;
    e->qty1 = e->qty2 = 0;
    return e;
}

FH_INLINE void fh_book_event_commit(fh_book_t *b, fh_shm_event_t *e)
{
    fh_shm_event_commit(b->shm, e);
    b->counters->events++;
}

static inline void fh_book_trade_event(fh_book_t *b, uint32_t locate, uint8_t kind, uint32_t price, uint64_t shares,
                                       uint64_t match, uint64_t ts)
{
    fh_instr_t *in = &b->instr[locate];
    b->counters->trades++;
    in->last_trade_price = price;
    in->last_trade_shares = shares;
    in->last_trade_match = match;
    in->last_trade_ts = ts;
    in->dirty = 1;
    if (!b->publish) return;
    fh_shm_event_t *e = fh_book_event_begin(b, locate, FH_EV_TRADE, kind, ts);
    e->price1 = price;
    e->qty1 = shares;
    e->qty2 = match;
    fh_book_event_commit(b, e);
}

static inline void fh_book_state_event(fh_book_t *b, uint32_t locate, uint8_t kind, uint8_t value, uint64_t ts)
{
    b->instr[locate].dirty = 1;
    if (!b->publish) return;
    fh_shm_event_t *e = fh_book_event_begin(b, locate, FH_EV_STATE, kind, ts);
    e->price1 = value;
    fh_book_event_commit(b, e);
}

#endif
