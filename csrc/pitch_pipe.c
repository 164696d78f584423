/* pitch_pipe.c -- Cboe PITCH into the pipeline: a sequenced unit's messages
 * decoded into book operations (or counted, decode-only mode).
 *
 * The session layer (sequencing per unit, A/B lines, holes, gaps) is the
 * MoldUDP64 one (session.c, pipeline.c fh_pipe_pitch); this file is what is
 * PITCH's own past it.  One call per datagram (fh_pipe_walk_pitch), the walk
 * and the decoder inlined inside. */
#include "pitch_pipe.h"

/* PITCH Unit Clear: every order of the unit's instruments leaves the books
 * (the instruments the stream carried: its bitmap), applied in order with the
 * operations decoded before it. */
static __attribute__((noinline, cold)) void unit_clear(fh_lane_t *r, fh_stream_t *s)
{
    fh_pipe_apply_decoded(r);
    r->st.unit_clears++;
    if (r->carried.bits)
        fh_book_clear(&r->book, r->carried.bits + (size_t)(s - r->session.streams.v) * r->carried.bytes);
}

/* ------------------------------------------------------------ Cboe PITCH
 *
 * A PITCH message is decoded straight into the book operations it means
 * (fh_book_op_t, the books' one input), with no intermediate struct:
 *   Add Order Long/Short/Expanded  -> 'A' (id from the symbol, see pitch.h)
 *   Order Executed                 -> 'E'    Executed at Price/Size -> 'C'
 *   Reduce Size Long/Short         -> 'X'    Delete Order           -> 'D'
 *   Modify Order Long/Short        -> 'U' with the same reference (the book
 *     keeps no queue position, so keeping or losing priority changes nothing
 *     it shows: levels hold shares and order counts)
 *   Trade Long/Short/Expanded      -> 'P'    Trade Break            -> 'B'
 *   Trading Status                 -> 'H'    Auction Update         -> 'I'
 *   Auction Summary                -> 'Q'
 *   Time: the unit's clock; Unit Clear: the unit's books emptied; End of
 *   Session: the unit's stream ended.
 * A symbol's first appearance gives its id and a directory entry ('R') before
 * its first operation.  Order ids are unique per venue only: every operation
 * carries the stream's venue, and the books key orders by (id, venue), so
 * venues sharing a lane's books never meet.  Timestamps: the unit's last Time (seconds since midnight)
 * plus the message's Time Offset (ns). */

/* The id of symbol `sym` of the stream's unit; a new one gets its directory
 * entry queued first.  0 (counted) when it cannot have one. */
FH_INLINE uint32_t fh_pitch_instr(fh_lane_t *r, fh_stream_t *s, uint64_t sym, uint64_t ts)
{
    int fresh = 0;
    const uint32_t id = fh_pitch_id(&r->route.pitch_ids, r->route.pitch_rank[s->venue], s->unit, sym, &fresh);
    if (FH_UNLIKELY(id == 0 || id > r->book.n_instr)) {
        r->st.errors[FH_ERR_PITCH_ID_RANGE]++;
        return 0;
    }
    if (FH_UNLIKELY(fresh)) fh_pipe_directory(r, id, ts, &sym, s->venue);
    return id;
}

FH_INLINE int fh_pitch_price_ok(fh_lane_t *r, uint64_t price)
{
    if (FH_LIKELY(price <= UINT32_MAX)) return 1;
    r->st.errors[FH_ERR_PITCH_PRICE_RANGE]++;
    return 0;
}

FH_INLINE void fh_pitch_add(fh_lane_t *r, fh_stream_t *s, uint64_t ts, const uint8_t *p, uint32_t qty,
                            const uint8_t *sym, size_t sym_len, uint64_t price)
{
    if (!fh_pitch_price_ok(r, price)) return;
    const uint32_t id = fh_pitch_instr(r, s, fh_pitch_sym_word(sym, sym_len), ts);
    if (FH_UNLIKELY(!id)) return;
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    m->type = 'A';
    m->venue = s->venue;
    m->stock_locate = (uint16_t)id;
    m->timestamp = ts;
    m->u.A.order_reference_number = fh_pitch_le64(p + 6);
    m->u.A.shares = qty;
    m->u.A.price = (uint32_t)price;
    m->u.A.buy_sell_indicator = p[14];
}

FH_INLINE void fh_pitch_trade(fh_lane_t *r, fh_stream_t *s, uint64_t ts, const uint8_t *p, uint32_t qty,
                              const uint8_t *sym, size_t sym_len, uint64_t price, uint64_t exec_id)
{
    if (!fh_pitch_price_ok(r, price)) return;
    const uint32_t id = fh_pitch_instr(r, s, fh_pitch_sym_word(sym, sym_len), ts);
    if (FH_UNLIKELY(!id)) return;
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    m->type = 'P';
    m->stock_locate = (uint16_t)id;
    m->timestamp = ts;
    m->u.P.order_reference_number = fh_pitch_le64(p + 6);
    m->u.P.match_number = exec_id;
    m->u.P.shares = qty;
    m->u.P.price = (uint32_t)price;
    m->u.P.buy_sell_indicator = p[14];
}

/* An order operation with no symbol (E, X, D): the book finds the order's. */
FH_INLINE fh_book_op_t *fh_pitch_op(fh_lane_t *r, fh_stream_t *s, uint8_t type, uint64_t ts, const uint8_t *p)
{
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    m->type = type;
    m->venue = s->venue;
    m->stock_locate = 0;
    m->timestamp = ts;
    m->u.D.order_reference_number = fh_pitch_le64(p + 6);
    return m;
}

FH_INLINE void fh_pitch_modify(fh_lane_t *r, fh_stream_t *s, uint64_t ts, const uint8_t *p, uint32_t qty,
                               uint64_t price)
{
    if (FH_UNLIKELY(price > UINT32_MAX)) {
        /* Its new price cannot be booked: the order leaves the book (counted). */
        r->st.errors[FH_ERR_PITCH_PRICE_RANGE]++;
        fh_pitch_op(r, s, 'D', ts, p);
        return;
    }
    fh_book_op_t *m = fh_pitch_op(r, s, 'U', ts, p);
    m->u.U.new_order_reference_number = m->u.U.original_order_reference_number;
    m->u.U.shares = qty;
    m->u.U.price = (uint32_t)price;
}

/* Walk sink of a PITCH unit, book modes: one message into the packet's operations. */
/* An instrument message (status, auction) for the 8-byte symbol at sym: the
 * next operation, zeroed, with its type and id; NULL (counted) when the
 * symbol can have no id. */
static inline __attribute__((always_inline)) fh_book_op_t *instr_msg(fh_lane_t *r, fh_stream_t *s, uint8_t type,
                                                                     const uint8_t *sym, uint64_t ts)
{
    const uint32_t id = fh_pitch_instr(r, s, fh_pitch_sym_word(sym, 8), ts);
    if (!id) return NULL;
    fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->venue = s->venue;
    m->stock_locate = (uint16_t)id;
    m->timestamp = ts;
    return m;
}

static inline __attribute__((always_inline)) void pitch_decode(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    fh_stats_t *st = &r->st;
    const uint8_t t = p[1];
    const uint32_t want = fh_pitch_len_table[t];
    if (FH_UNLIKELY(want == 0)) {
        st->errors[FH_ERR_PITCH_UNKNOWN_TYPE]++;
        return;
    }
    if (FH_UNLIKELY(len != want || p[0] != want)) {
        st->errors[FH_ERR_PITCH_BAD_LENGTH]++;
        return;
    }
    /* From here every read is within [p, p + want). */
    if (FH_UNLIKELY(r->decoded.n + 2 > FH_PKT_MSGS)) fh_pipe_apply_decoded(r);
    st->messages++;
    st->by_type[t]++;
    st->checksum += fh_pitch_fold(p, len);
    fh_stream_t *s = r->decoded.stream;
    const uint64_t ts = (uint64_t)s->pitch_seconds * 1000000000ull + fh_le32(p + 2);
    switch (t) {
    case FH_PITCH_TYPE_ADD_LONG:
        fh_pitch_add(r, s, ts, p, fh_le32(p + 15), p + 19, 6, fh_pitch_le64(p + 25));
        return;
    case FH_PITCH_TYPE_ADD_SHORT:
        fh_pitch_add(r, s, ts, p, fh_le16(p + 15), p + 17, 6, (uint64_t)fh_le16(p + 23) * 100u);
        return;
    case FH_PITCH_TYPE_ADD_EXPANDED:
        fh_pitch_add(r, s, ts, p, fh_le32(p + 15), p + 19, 8, fh_pitch_le64(p + 27));
        return;
    case FH_PITCH_TYPE_EXECUTED: {
        fh_book_op_t *m = fh_pitch_op(r, s, 'E', ts, p);
        m->u.E.executed_shares = fh_le32(p + 14);
        m->u.E.match_number = fh_pitch_le64(p + 18);
        return;
    }
    case FH_PITCH_TYPE_EXECUTED_PRICE: {
        const uint64_t price = fh_pitch_le64(p + 30);
        if (FH_UNLIKELY(price > UINT32_MAX)) {
            /* The shares still leave the order; the print cannot be booked. */
            st->errors[FH_ERR_PITCH_PRICE_RANGE]++;
            fh_pitch_op(r, s, 'X', ts, p)->u.X.cancelled_shares = fh_le32(p + 14);
            return;
        }
        fh_book_op_t *m = fh_pitch_op(r, s, 'C', ts, p);
        m->u.C.executed_shares = fh_le32(p + 14);
        m->u.C.match_number = fh_pitch_le64(p + 22);
        m->u.C.execution_price = (uint32_t)price;
        m->u.C.printable = 'Y';
        return;
    }
    case FH_PITCH_TYPE_REDUCE_LONG:
        fh_pitch_op(r, s, 'X', ts, p)->u.X.cancelled_shares = fh_le32(p + 14);
        return;
    case FH_PITCH_TYPE_REDUCE_SHORT:
        fh_pitch_op(r, s, 'X', ts, p)->u.X.cancelled_shares = fh_le16(p + 14);
        return;
    case FH_PITCH_TYPE_MODIFY_LONG:
        fh_pitch_modify(r, s, ts, p, fh_le32(p + 14), fh_pitch_le64(p + 18));
        return;
    case FH_PITCH_TYPE_MODIFY_SHORT:
        fh_pitch_modify(r, s, ts, p, fh_le16(p + 14), (uint64_t)fh_le16(p + 16) * 100u);
        return;
    case FH_PITCH_TYPE_DELETE:
        fh_pitch_op(r, s, 'D', ts, p);
        return;
    case FH_PITCH_TYPE_TIME:
        s->pitch_seconds = fh_le32(p + 2);
        return;
    case FH_PITCH_TYPE_TRADE_LONG:
        fh_pitch_trade(r, s, ts, p, fh_le32(p + 15), p + 19, 6, fh_pitch_le64(p + 25), fh_pitch_le64(p + 33));
        return;
    case FH_PITCH_TYPE_TRADE_SHORT:
        fh_pitch_trade(r, s, ts, p, fh_le16(p + 15), p + 17, 6, (uint64_t)fh_le16(p + 23) * 100u,
                       fh_pitch_le64(p + 25));
        return;
    case FH_PITCH_TYPE_TRADE_EXPANDED:
        fh_pitch_trade(r, s, ts, p, fh_le32(p + 15), p + 19, 8, fh_pitch_le64(p + 27), fh_pitch_le64(p + 35));
        return;
    case FH_PITCH_TYPE_TRADE_BREAK: {
        fh_book_op_t *m = &r->decoded.ops[r->decoded.n++];
        m->type = 'B';
        m->stock_locate = 0;
        m->timestamp = ts;
        m->u.B.match_number = fh_pitch_le64(p + 6);
        return;
    }
    case FH_PITCH_TYPE_TRADING_STATUS: {
        fh_book_op_t *m = instr_msg(r, s, 'H', p + 6, ts);
        if (!m) return;
        memcpy(m->u.H.stock, p + 6, 8);
        m->u.H.trading_state = p[14];
        return;
    }
    case FH_PITCH_TYPE_AUCTION_UPDATE: {
        const uint64_t ref = fh_pitch_le64(p + 15), ind = fh_pitch_le64(p + 31), only = fh_pitch_le64(p + 39);
        if (!fh_pitch_price_ok(r, ref > ind ? (ref > only ? ref : only) : (ind > only ? ind : only))) return;
        fh_book_op_t *m = instr_msg(r, s, 'I', p + 6, ts);
        if (!m) return;
        const uint32_t buy = fh_le32(p + 23), sell = fh_le32(p + 27);
        m->u.I.paired_shares = buy < sell ? buy : sell;
        m->u.I.imbalance_shares = buy > sell ? buy - sell : sell - buy;
        m->u.I.imbalance_direction = buy > sell ? 'B' : sell > buy ? 'S' : 'N';
        m->u.I.current_reference_price = (uint32_t)ref;
        m->u.I.near_price = (uint32_t)ind;
        m->u.I.far_price = (uint32_t)only;
        m->u.I.cross_type = p[14];
        return;
    }
    case FH_PITCH_TYPE_AUCTION_SUMMARY: {
        const uint64_t price = fh_pitch_le64(p + 15);
        if (!fh_pitch_price_ok(r, price)) return;
        fh_book_op_t *m = instr_msg(r, s, 'Q', p + 6, ts);
        if (!m) return;
        m->u.Q.shares = fh_le32(p + 23);
        m->u.Q.cross_price = (uint32_t)price;
        m->u.Q.cross_type = p[14];
        return;
    }
    case FH_PITCH_TYPE_UNIT_CLEAR:
        unit_clear(r, s);
        return;
    case FH_PITCH_TYPE_END_OF_SESSION:
        s->ended = 1;
        return;
    default:
        return;
    }
}

/* Walk sink of a PITCH unit, decode-only mode: each message's type and exact
 * length checked, counted and folded into the checksum, the unit's clock and
 * end kept -- the checks every message passes before its fields are read
 * (no book, so no operations are built). */
static inline __attribute__((always_inline)) void pitch_count(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    const uint8_t t = p[1];
    const uint32_t want = fh_pitch_len_table[t];
    if (FH_UNLIKELY(want == 0)) {
        r->st.errors[FH_ERR_PITCH_UNKNOWN_TYPE]++;
        return;
    }
    if (FH_UNLIKELY(len != want || p[0] != want)) {
        r->st.errors[FH_ERR_PITCH_BAD_LENGTH]++;
        return;
    }
    r->st.messages++;
    r->st.by_type[t]++;
    r->st.checksum += fh_pitch_fold(p, len);
    if (t == FH_PITCH_TYPE_TIME) r->decoded.stream->pitch_seconds = fh_le32(p + 2);
    else if (FH_UNLIKELY(t == FH_PITCH_TYPE_END_OF_SESSION)) r->decoded.stream->ended = 1;
}

uint32_t fh_pipe_walk_pitch(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count, uint32_t skip)
{
    r->decoded.stream = s;
    if (FH_UNLIKELY(r->mode == FH_MODE_DECODE)) return fh_pitch_walk(p, len, count, skip, pitch_count, r, &r->st);
    return fh_pitch_walk(p, len, count, skip, pitch_decode, r, &r->st);
}
