/* iex_pipe.c -- IEX TOPS 1.6, DEEP 1.0 and DEEP+ 1.0 into the pipeline: a
 * segment's messages decoded into book operations (or counted, decode-only).
 *
 * The session layer (sequencing by message, A/B lines, holes, gaps) is the
 * one MoldUDP64 and PITCH use (pipeline.c fh_pipe_iex); this file is what is
 * IEX's own past it.  One call per datagram, the walk and decoder inlined.
 *
 * Each message becomes the book operations it means (fh_book_op_t):
 *   DEEP+  Add Order 'a' -> 'A' (side '8' buy, '5' sell)   Order Modify 'M' -> 'U', same id
 *          Order Delete 'R' -> 'D'   Order Executed 'L' -> 'C' (trade at its price)
 *          Trade 'T' -> 'P'   Trade Break 'B' -> 'B'   Clear Book 'C': the symbol's
 *          book emptied (consecutive ones together, in one pass over the orders)
 *   DEEP   Price Level Update '8'/'5' -> FH_OP_LEVEL (the level set to its size; the
 *          event's last update publishes)   'T' -> 'P'   'B' -> 'B'
 *   TOPS   Quote Update 'Q' -> FH_OP_QUOTE (the top of book as sent)   'T', 'B'
 *   all    System Event 'S' -> 'S' (End of Messages ends the stream)
 *          Security Directory 'D' -> 'R'   Trading Status 'H' -> 'H'
 *          Operational Halt 'O' -> 'h'   Short Sale Price Test 'P' -> 'Y'
 *          Security Event 'E' -> FH_OP_SEC_EVENT   Official Price 'X' -> FH_OP_OFFICIAL
 *          Auction Information 'A' -> 'I' (as ITCH NOII)   Retail Liquidity 'I': counted
 * A symbol's first appearance gives it its id (16384 + its feed's id block *
 * 12288 + the symbol's rank in the feed, in sequence order; iex.h) and a
 * directory entry ('R') before its first operation.  Prices are signed 8-byte integers
 * with 4 decimals: outside the books' u32 they are counted
 * (FH_ERR_IEX_PRICE_RANGE), never truncated.  Timestamps stay ns since the
 * Unix epoch. */
#include "iex_pipe.h"

/* The id of symbol `sym` of the stream's venue; a new one gets its directory
 * entry queued first.  0 (counted) when it cannot have one. */
FH_INLINE uint32_t iex_instr(fh_lane_t *r, const fh_stream_t *s, const uint8_t *sym, uint64_t ts)
{
    int fresh = 0;
    const uint32_t block = fh_iex_block(r->route.pitch_rank[s->venue], s->unit);
    const uint32_t id = fh_sym_id(&r->route.pitch_ids, block, 0, fh_iex_sym(sym),
                                  FH_PITCH_ID_BASE + block * FH_PITCH_VENUE_IDS, FH_PITCH_VENUE_IDS, &fresh);
    if (FH_UNLIKELY(id == 0 || id > r->book.n_instr)) {
        r->st.errors[FH_ERR_IEX_ID_RANGE]++;
        return 0;
    }
    if (FH_UNLIKELY(fresh)) fh_pipe_directory(r, id, ts, sym, s->venue);
    return id;
}

/* A price the books can hold (Price(4) in a u32), else counted. */
FH_INLINE int iex_price_ok(fh_lane_t *r, uint64_t price)
{
    if (FH_LIKELY(price <= UINT32_MAX)) return 1;          /* a negative i64 reads as > 2^63 */
    r->st.errors[FH_ERR_IEX_PRICE_RANGE]++;
    return 0;
}

/* The next operation, zeroed, for instrument `id`. */
FH_INLINE fh_book_op_t *iex_op(fh_lane_t *r, const fh_stream_t *s, uint8_t type, uint32_t id, uint64_t ts)
{
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->venue = s->venue;
    m->stock_locate = (uint16_t)id;
    m->timestamp = ts;
    return m;
}

/* An order operation (DEEP+ 'M', 'R', 'L'): the book finds the order's
 * instrument by its id; only the fields the operation reads are written. */
FH_INLINE fh_book_op_t *iex_order_op(fh_lane_t *r, const fh_stream_t *s, uint8_t type, uint64_t ts, uint64_t ref)
{
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    m->type = type;
    m->venue = s->venue;
    m->stock_locate = 0;
    m->timestamp = ts;
    m->u.D.order_reference_number = ref;
    return m;
}

/* IEX Trading Status codes as the ITCH trading states the slots publish: an
 * order acceptance period ('O') quotes without trading, ITCH's 'Q'. */
FH_INLINE uint8_t iex_trading_state(uint8_t c) { return c == 'O' ? 'Q' : c; }

/* A message the feed does not carry, or shorter than its type: counted,
 * skipped (its sequence number is consumed).  Else counted as a message;
 * returns 1. */
FH_INLINE int iex_accept(fh_lane_t *r, const fh_stream_t *s, const uint8_t *p, size_t len)
{
    const uint32_t e = fh_iex_type_table[p[0]];
    if (FH_UNLIKELY(!(e >> 8 & 1u << (s->unit - 1)))) {
        r->st.errors[FH_ERR_IEX_UNKNOWN_TYPE]++;
        return 0;
    }
    if (FH_UNLIKELY(len < (e & 0xFF))) {
        r->st.errors[FH_ERR_IEX_BAD_LENGTH]++;
        return 0;
    }
    r->st.messages++;
    r->st.by_type[FH_IEX_BY_TYPE | p[0]]++;
    r->st.checksum += fh_iex_fold(p, e & 0xFF);
    return 1;
}

/* Walk sink, book modes: one message into the packet's operations.  From the
 * accept on, every read is within the type's length. */
static inline __attribute__((always_inline)) void iex_decode(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    fh_stream_t *s = r->decoded.stream;
    if (!iex_accept(r, s, p, len)) return;
    if (FH_UNLIKELY(r->book.clears_marked) && p[0] != FH_IEX_TYPE_CLEAR_BOOK) fh_book_clear_marked(&r->book);
    if (FH_UNLIKELY(r->decoded.n + 2 > FH_PKT_MSGS)) fh_pipe_apply_decoded(r);
    const uint8_t t = p[0];
    const uint64_t ts = fh_le64(p + 2);
    if (t == FH_IEX_TYPE_SYSTEM_EVENT) {
        /* Start of Regular Market Hours is ITCH's 'Q'; End of Messages ends the stream. */
        iex_op(r, s, 'S', 0, ts)->u.S.event_code = p[1] == 'R' ? 'Q' : p[1];
        if (p[1] == 'C') s->ended = 1;
        return;
    }
    /* Order operations find their order (and its instrument) by its id: the
     * symbol they repeat is not looked up. */
    switch (t) {
    case FH_IEX_TYPE_MODIFY: {
        const uint64_t price = fh_le64(p + 30), ref = fh_le64(p + 18);
        if (!iex_price_ok(r, price)) {
            iex_order_op(r, s, 'D', ts, ref);       /* its new price cannot be booked: it leaves the book */
            return;
        }
        fh_book_op_t *m = iex_order_op(r, s, 'U', ts, ref);
        m->u.U.new_order_reference_number = ref;
        m->u.U.shares = fh_le32(p + 26);
        m->u.U.price = (uint32_t)price;
        return;
    }
    case FH_IEX_TYPE_DELETE:
        iex_order_op(r, s, 'D', ts, fh_le64(p + 18));
        return;
    case FH_IEX_TYPE_EXECUTED: {
        const uint64_t price = fh_le64(p + 30), ref = fh_le64(p + 18);
        const uint32_t shares = fh_le32(p + 26);
        if (!iex_price_ok(r, price)) {
            iex_order_op(r, s, 'X', ts, ref)->u.X.cancelled_shares = shares;   /* the shares still leave */
            return;
        }
        fh_book_op_t *m = iex_order_op(r, s, 'C', ts, ref);
        m->u.C.executed_shares = shares;
        m->u.C.match_number = fh_le64(p + 38);
        m->u.C.execution_price = (uint32_t)price;
        m->u.C.printable = 'Y';
        return;
    }
    default:
        break;
    }
    /* Every other message names its instrument by the symbol at offset 10. */
    const uint32_t id = iex_instr(r, s, p + 10, ts);
    if (FH_UNLIKELY(!id)) return;
    switch (t) {
    case FH_IEX_TYPE_ADD: {
        const uint64_t price = fh_le64(p + 30);
        if (!iex_price_ok(r, price)) return;
        fh_book_op_t *m = iex_op(r, s, 'A', id, ts);
        m->u.A.order_reference_number = fh_le64(p + 18);
        m->u.A.shares = fh_le32(p + 26);
        m->u.A.price = (uint32_t)price;
        m->u.A.buy_sell_indicator = p[1] == '8' ? 'B' : p[1] == '5' ? 'S' : p[1];
        return;
    }
    case FH_IEX_TYPE_PLU_BUY:
    case FH_IEX_TYPE_PLU_SELL: {
        const uint64_t price = fh_le64(p + 22);
        fh_book_op_t *m = iex_op(r, s, FH_OP_LEVEL, id, ts);
        m->u.level.event_done = p[1] & 1;
        if (FH_UNLIKELY(price == 0 || price > UINT32_MAX)) {
            /* Not booked (price 0 in the operation), but its event still ends. */
            r->st.errors[FH_ERR_IEX_PRICE_RANGE]++;
            return;
        }
        m->u.level.shares = fh_le32(p + 18);
        m->u.level.price = (uint32_t)price;
        m->u.level.side = t == FH_IEX_TYPE_PLU_BUY ? 'B' : 'S';
        return;
    }
    case FH_IEX_TYPE_QUOTE: {
        const uint64_t bid = fh_le64(p + 22), ask = fh_le64(p + 30);
        if (!iex_price_ok(r, bid > ask ? bid : ask)) return;
        fh_book_op_t *m = iex_op(r, s, FH_OP_QUOTE, id, ts);
        m->u.quote.bid_shares = fh_le32(p + 18);
        m->u.quote.bid_price = (uint32_t)bid;
        m->u.quote.ask_price = (uint32_t)ask;
        m->u.quote.ask_shares = fh_le32(p + 38);
        return;
    }
    case FH_IEX_TYPE_TRADE: {
        const uint64_t price = fh_le64(p + 22);
        if (!iex_price_ok(r, price)) return;
        fh_book_op_t *m = iex_op(r, s, 'P', id, ts);
        m->u.P.shares = fh_le32(p + 18);
        m->u.P.price = (uint32_t)price;
        m->u.P.match_number = fh_le64(p + 30);
        memcpy(m->u.P.stock, p + 10, 8);
        m->u.P.buy_sell_indicator = ' ';
        return;
    }
    case FH_IEX_TYPE_TRADE_BREAK:
        iex_op(r, s, 'B', id, ts)->u.B.match_number = fh_le64(p + 30);
        return;
    case FH_IEX_TYPE_CLEAR_BOOK:
        /* After what came before it; cleared with any Clear Books that follow
         * it at once (a sweep costs one pass over the orders), before the
         * next other message or at the segment's end. */
        r->st.iex_clears++;
        fh_pipe_apply_decoded(r);
        fh_book_clear_mark(&r->book, id);
        return;
    case FH_IEX_TYPE_DIRECTORY: {
        fh_book_op_t *m = iex_op(r, s, 'R', id, ts);
        memcpy(m->u.R.stock, p + 10, 8);
        m->u.R.round_lot_size = fh_le32(p + 18);
        m->u.R.market_category = ' ';
        m->u.R.luld_reference_price_tier = p[30] ? (uint8_t)('0' + (p[30] & 7)) : ' ';
        m->u.R.etp_flag = p[1] & 0x20 ? 'Y' : 'N';
        return;
    }
    case FH_IEX_TYPE_TRADING_STATUS: {
        fh_book_op_t *m = iex_op(r, s, 'H', id, ts);
        memcpy(m->u.H.stock, p + 10, 8);
        m->u.H.trading_state = iex_trading_state(p[1]);
        memcpy(m->u.H.reason, p + 18, 4);
        return;
    }
    case FH_IEX_TYPE_OP_HALT: {
        fh_book_op_t *m = iex_op(r, s, 'h', id, ts);
        memcpy(m->u.h.stock, p + 10, 8);
        m->u.h.market_code = 'V';
        m->u.h.operational_halt_action = p[1] == 'O' ? 'H' : 'T';
        return;
    }
    case FH_IEX_TYPE_SHORT_SALE: {
        fh_book_op_t *m = iex_op(r, s, 'Y', id, ts);
        memcpy(m->u.Y.stock, p + 10, 8);
        m->u.Y.reg_sho_action = p[1] ? '1' : '0';
        return;
    }
    case FH_IEX_TYPE_SECURITY_EVENT:
        iex_op(r, s, FH_OP_SEC_EVENT, id, ts)->u.mark.kind = p[1];
        return;
    case FH_IEX_TYPE_OFFICIAL_PRICE: {
        const uint64_t price = fh_le64(p + 18);
        if (!iex_price_ok(r, price)) return;
        fh_book_op_t *m = iex_op(r, s, FH_OP_OFFICIAL, id, ts);
        m->u.mark.price = (uint32_t)price;
        m->u.mark.kind = p[1];
        return;
    }
    case FH_IEX_TYPE_AUCTION: {
        const uint64_t ref = fh_le64(p + 22), ind = fh_le64(p + 30), book = fh_le64(p + 48);
        if (!iex_price_ok(r, ref > ind ? (ref > book ? ref : book) : (ind > book ? ind : book))) return;
        fh_book_op_t *m = iex_op(r, s, 'I', id, ts);
        memcpy(m->u.I.stock, p + 10, 8);
        m->u.I.paired_shares = fh_le32(p + 18);
        m->u.I.current_reference_price = (uint32_t)ref;
        m->u.I.near_price = (uint32_t)ind;
        m->u.I.imbalance_shares = fh_le32(p + 38);
        m->u.I.imbalance_direction = p[42];
        m->u.I.far_price = (uint32_t)book;
        m->u.I.cross_type = p[1];
        return;
    }
    default:
        /* Retail Liquidity Indicator: no effect on the books. */
        return;
    }
}

/* Walk sink, decode-only mode: each message's type and length checked,
 * counted and folded, the stream's end kept (no books, no operations). */
static inline __attribute__((always_inline)) void iex_count(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    fh_stream_t *s = r->decoded.stream;
    if (iex_accept(r, s, p, len) && FH_UNLIKELY(p[0] == FH_IEX_TYPE_SYSTEM_EVENT && p[1] == 'C')) s->ended = 1;
}

uint32_t fh_pipe_walk_iex(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count, uint32_t skip)
{
    r->decoded.stream = s;
    if (FH_UNLIKELY(r->mode == FH_MODE_DECODE)) return fh_iex_walk(p, len, count, skip, iex_count, r, &r->st);
    const uint32_t whole = fh_iex_walk(p, len, count, skip, iex_decode, r, &r->st);
    if (FH_UNLIKELY(r->book.clears_marked)) fh_book_clear_marked(&r->book);
    return whole;
}
