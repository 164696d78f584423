/* iex_writer.h -- IEX TOPS 1.6, DEEP 1.0 and DEEP+ 1.0 messages over IEX-TP v1
 * (iex_writer.c; byte layouts from the IEX specifications, all little-endian).
 *
 * The three feeds are views of one order flow (flow.c), so that a day of one
 * seed is the same market on each:
 *   DEEP+ (order by order) writes each flow message as it happens: Add Order,
 *         Order Modify (replaces, and partial cancels as a Modify to the
 *         smaller size keeping priority), Order Delete, Order Executed, Trade;
 *   DEEP  (price levels) writes, once the flow message has changed the
 *         generator's book, one Price Level Update per level it touched with
 *         the level's new total size (0: gone), Event Flags 0x01 on the last
 *         and 0x00 before it; executions first print a Trade Report;
 *   TOPS  (top of book) writes a Quote Update when the best bid or ask (price
 *         or size) differs after the flow message from before it; executions
 *         print a Trade Report.
 * A flow message is one event: fh_iex_event_begin before it (TOPS keeps the
 * top), the writers below during it (DEEP and TOPS note the levels touched),
 * fh_iex_event_end after the book changed.  No writer draws random numbers,
 * so the three feeds of one seed share every draw.
 *
 * The message table is here for now: the feed handler's own IEX table
 * (csrc/) is being written at the same time; these lengths are the specs'. */
#ifndef FH_GEN_IEX_WRITER_H
#define FH_GEN_IEX_WRITER_H

#include <stdint.h>

#include "gen.h"
#include "iex_spec.h"
#include "packets.h"

/* Message Protocol IDs (IEX-TP header) and message lengths: the core's one
 * table, iex_spec.h. */

_Static_assert(2 + FH_GEN_IEX_HDR + FH_IEX_LEN_AUCTION == FH_GEN_IEX_PAYLOAD_MIN, "IEX payload minimum");

/* Sale Condition Flags (Trade Report, Trade, Order Executed, Trade Break). */
#define FH_IEX_SALE_ISO 0x80u
#define FH_IEX_SALE_EXTENDED 0x40u
#define FH_IEX_SALE_ODD_LOT 0x20u
#define FH_IEX_SALE_TT_EXEMPT 0x10u
#define FH_IEX_SALE_CROSS 0x08u

/* IEX-TP lines: group A / B and UDP port per feed (DEEP's are IEX's
 * production ones; TOPS and DEEP+ alike in form). */
#define FH_GEN_IEX_PORT_TOPS 10377u
#define FH_GEN_IEX_PORT_DEEP 10378u
#define FH_GEN_IEX_PORT_DEEPPLUS 10378u

/* Levels one event can touch at most (a replace: 2, a sweep: 3). */
#define FH_IEX_TOUCH_MAX 8u

typedef struct {
    uint32_t id;
    uint64_t messages, data_packets, heartbeats, next_seq, stream_bytes;
    uint64_t first_ts, last_ts;
} fh_gen_iex_session_t;

/* An IEX day's own state (g->iex). */
typedef struct fh_gen_iex {
    uint32_t proto;                    /* FH_GEN_PROTO_IEX_* */
    uint16_t proto_id;                 /* FH_IEX_PROTO_* */
    uint32_t sessions, session;        /* sessions in the day, the current one (0-based) */
    fh_gen_iex_session_t sess[FH_GEN_IEX_SESSIONS_MAX];
    uint8_t sys[8];                    /* system event codes of the session so far */
    uint32_t nsys;
    /* per locate: trading status, reason, operational halt, short sale test,
     * and the last trade (for Trade Break) */
    uint8_t *status, *ophalt, *ssp, *tr_fl;
    char (*reason)[4];
    uint32_t *tr_px, *tr_sz;
    /* the event in progress */
    uint32_t ntouch;
    uint8_t touch_side[FH_IEX_TOUCH_MAX];
    uint32_t touch_px[FH_IEX_TOUCH_MAX];
    uint32_t top[4];                   /* bid size, bid price, ask price, ask size before it */
    /* counters */
    uint64_t model;                    /* schedule and flow messages done (progress) */
    uint64_t events_multi;             /* DEEP: events of more than one Price Level Update */
    uint64_t straddles;                /* DEEP: events split over two segments */
    uint64_t sweeps, clears;
    uint32_t ev_seg;                   /* DEEP: data segments sent when the event began */
} fh_gen_iex_t;

/* The IEX state of a day of cfg->protocol 2..4; -1 when out of memory. */
int fh_iex_init(fh_gen_t *g);
void fh_iex_free(fh_gen_t *g);
/* Whether a symbol is IEX-listed (gets a Security Directory, Official
 * Prices, Auction Information). */
FH_INLINE int fh_iex_listed(uint32_t locate) { return (locate & 3) == 1; }

/* ------------------------------------------------------------ the flow's hooks */
void fh_iex_event_begin(fh_gen_t *g, const fh_gen_sym_t *s);
void fh_iex_event_end(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts);
void fh_iex_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint8_t side,
                uint32_t qty, uint32_t px);
/* side: 0 bid, 1 ask; px the order's price */
void fh_iex_delete(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                   uint32_t px);
/* a new total size and price; keep: time priority kept; old_px: its price before */
void fh_iex_modify(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                   uint32_t old_px, uint32_t qty, uint32_t px, int keep);
/* qty shares of the order (side, at its price opx) executed at px */
void fh_iex_exec(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint64_t id, uint32_t side,
                 uint32_t opx, uint32_t qty, uint32_t px, uint64_t trade, uint8_t extra_flags);
/* a trade against non-displayed interest */
void fh_iex_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts, uint32_t qty, uint32_t px,
                  uint64_t trade, uint8_t extra_flags);

/* One scheduled message (the day's schedule, mapped onto IEX). */
void fh_iex_scheduled(fh_gen_t *g, const fh_gen_sched_t *e);
/* End the session at ts (books emptied, End of Messages, flushed) and start
 * the next one (new id, sequence 1, stream offset 0, Start of Messages, the
 * system events so far, the status spin). */
void fh_iex_new_session(fh_gen_t *g, uint64_t ts);
/* The last segment of the day. */
void fh_iex_end_of_day(fh_gen_t *g, uint64_t t);

/* Progress for the bar: model messages done. */
FH_INLINE void fh_iex_progress(fh_gen_t *g)
{
    if (FH_UNLIKELY((++g->iex->model & (FH_GEN_PROGRESS_EVERY - 1)) == 0) && g->progress) *g->progress = g->iex->model;
}

#endif
