/* itch.h -- NASDAQ TotalView-ITCH 5.0 message decoding.
 *
 * fh_itch_decode_inline() is the hot-path decoder: a switch on the type byte,
 * an exact length check before any field is read (ITCH 5.0 messages have one
 * fixed length per type), big-endian fields through memcpy + bswap, the 6-byte
 * timestamp read as 6 bytes.  It is static inline so the frame loop in
 * engine.c compiles to one function with no call per message. */
#ifndef FH_ITCH_H
#define FH_ITCH_H

#include "fh_common.h"
#include "itch_spec.h"

/* Wire length (type byte included) of every ITCH 5.0 type; 0 = not ITCH 5.0.
 * Built in itch.c from FH_ITCH_MESSAGES (itch_spec.h), the one length table. */
extern const uint8_t fh_itch_len_table[256];

FH_INLINE void fh_itch_copy(char *dst, const uint8_t *src, size_t n) { memcpy(dst, src, n); }

FH_INLINE int fh_itch_decode_inline(const uint8_t *p, size_t len, fh_book_op_t *m)
{
    if (FH_UNLIKELY(len == 0)) return FH_DECODE_EMPTY;
    const uint8_t t = p[0];
    const uint32_t want = fh_itch_len_table[t];
    if (FH_UNLIKELY(want == 0)) return FH_DECODE_UNKNOWN_TYPE;
    if (FH_UNLIKELY(len != want)) return FH_DECODE_BAD_LENGTH;

    /* From here every read below is within [p, p + want). */
    memset(&m->u, 0, sizeof m->u);
    m->type = t;
    m->venue = 0;
    m->stock_locate = fh_be16(p + 1);
    m->tracking_number = fh_be16(p + 3);
    m->timestamp = fh_be48(p + 5);
    const uint8_t *b = p + 11;
    switch (t) {
    case 'A':
    case 'F':
        m->u.A.order_reference_number = fh_be64(b);
        m->u.A.buy_sell_indicator = b[8];
        m->u.A.shares = fh_be32(b + 9);
        fh_itch_copy(m->u.A.stock, b + 13, 8);
        m->u.A.price = fh_be32(b + 21);
        if (t == 'F') fh_itch_copy(m->u.A.attribution, b + 25, 4);
        break;
    case 'D':
        m->u.D.order_reference_number = fh_be64(b);
        break;
    case 'U':
        m->u.U.original_order_reference_number = fh_be64(b);
        m->u.U.new_order_reference_number = fh_be64(b + 8);
        m->u.U.shares = fh_be32(b + 16);
        m->u.U.price = fh_be32(b + 20);
        break;
    case 'E':
        m->u.E.order_reference_number = fh_be64(b);
        m->u.E.executed_shares = fh_be32(b + 8);
        m->u.E.match_number = fh_be64(b + 12);
        break;
    case 'X':
        m->u.X.order_reference_number = fh_be64(b);
        m->u.X.cancelled_shares = fh_be32(b + 8);
        break;
    case 'C':
        m->u.C.order_reference_number = fh_be64(b);
        m->u.C.executed_shares = fh_be32(b + 8);
        m->u.C.match_number = fh_be64(b + 12);
        m->u.C.printable = b[20];
        m->u.C.execution_price = fh_be32(b + 21);
        break;
    case 'P':
        m->u.P.order_reference_number = fh_be64(b);
        m->u.P.buy_sell_indicator = b[8];
        m->u.P.shares = fh_be32(b + 9);
        fh_itch_copy(m->u.P.stock, b + 13, 8);
        m->u.P.price = fh_be32(b + 21);
        m->u.P.match_number = fh_be64(b + 25);
        break;
    case 'Q':
        m->u.Q.shares = fh_be64(b);
        fh_itch_copy(m->u.Q.stock, b + 8, 8);
        m->u.Q.cross_price = fh_be32(b + 16);
        m->u.Q.match_number = fh_be64(b + 20);
        m->u.Q.cross_type = b[28];
        break;
    case 'B':
        m->u.B.match_number = fh_be64(b);
        break;
    case 'I':
        m->u.I.paired_shares = fh_be64(b);
        m->u.I.imbalance_shares = fh_be64(b + 8);
        m->u.I.imbalance_direction = b[16];
        fh_itch_copy(m->u.I.stock, b + 17, 8);
        m->u.I.far_price = fh_be32(b + 25);
        m->u.I.near_price = fh_be32(b + 29);
        m->u.I.current_reference_price = fh_be32(b + 33);
        m->u.I.cross_type = b[37];
        m->u.I.price_variation_indicator = b[38];
        break;
    case 'S':
        m->u.S.event_code = b[0];
        break;
    case 'R':
        fh_itch_copy(m->u.R.stock, b, 8);
        m->u.R.market_category = b[8];
        m->u.R.financial_status_indicator = b[9];
        m->u.R.round_lot_size = fh_be32(b + 10);
        m->u.R.round_lots_only = b[14];
        m->u.R.issue_classification = b[15];
        fh_itch_copy(m->u.R.issue_sub_type, b + 16, 2);
        m->u.R.authenticity = b[18];
        m->u.R.short_sale_threshold_indicator = b[19];
        m->u.R.ipo_flag = b[20];
        m->u.R.luld_reference_price_tier = b[21];
        m->u.R.etp_flag = b[22];
        m->u.R.etp_leverage_factor = fh_be32(b + 23);
        m->u.R.inverse_indicator = b[27];
        break;
    case 'H':
        fh_itch_copy(m->u.H.stock, b, 8);
        m->u.H.trading_state = b[8];
        m->u.H.reserved = b[9];
        fh_itch_copy(m->u.H.reason, b + 10, 4);
        break;
    case 'Y':
        fh_itch_copy(m->u.Y.stock, b, 8);
        m->u.Y.reg_sho_action = b[8];
        break;
    case 'L':
        fh_itch_copy(m->u.L.mpid, b, 4);
        fh_itch_copy(m->u.L.stock, b + 4, 8);
        m->u.L.primary_market_maker = b[12];
        m->u.L.market_maker_mode = b[13];
        m->u.L.market_participant_state = b[14];
        break;
    case 'V':
        m->u.V.level_1 = fh_be64(b);
        m->u.V.level_2 = fh_be64(b + 8);
        m->u.V.level_3 = fh_be64(b + 16);
        break;
    case 'W':
        m->u.W.breached_level = b[0];
        break;
    case 'K':
        fh_itch_copy(m->u.K.stock, b, 8);
        m->u.K.ipo_quotation_release_time = fh_be32(b + 8);
        m->u.K.ipo_quotation_release_qualifier = b[12];
        m->u.K.ipo_price = fh_be32(b + 13);
        break;
    case 'J':
        fh_itch_copy(m->u.J.stock, b, 8);
        m->u.J.auction_collar_reference_price = fh_be32(b + 8);
        m->u.J.upper_auction_collar_price = fh_be32(b + 12);
        m->u.J.lower_auction_collar_price = fh_be32(b + 16);
        m->u.J.auction_collar_extension = fh_be32(b + 20);
        break;
    case 'h':
        fh_itch_copy(m->u.h.stock, b, 8);
        m->u.h.market_code = b[8];
        m->u.h.operational_halt_action = b[9];
        break;
    case 'N':
        fh_itch_copy(m->u.N.stock, b, 8);
        m->u.N.interest_flag = b[8];
        break;
    case 'O':
        fh_itch_copy(m->u.O.stock, b, 8);
        m->u.O.open_eligibility_status = b[8];
        m->u.O.minimum_allowable_price = fh_be32(b + 9);
        m->u.O.maximum_allowable_price = fh_be32(b + 13);
        m->u.O.near_execution_price = fh_be32(b + 17);
        m->u.O.near_execution_time = fh_be64(b + 21);
        m->u.O.lower_price_range_collar = fh_be32(b + 29);
        m->u.O.upper_price_range_collar = fh_be32(b + 33);
        break;
    default:
        /* Unreachable: fh_itch_len_table is non-zero only for the types above. */
        return FH_DECODE_UNKNOWN_TYPE;
    }
    return FH_DECODE_OK;
}

/* The fields a consumer would act on, folded into one word: lets the
 * decode-only path prove it decoded every message without a book behind it,
 * and lets tests compare two decodes of the same data cheaply.  Branch-free
 * over the first 24 body bytes (reference, shares, price, match, stock: what
 * every order message leads with), so it costs no second type dispatch; the
 * decoder zeroes the body first, so the fold never sees a previous message. */
FH_INLINE uint64_t fh_itch_fold(const fh_book_op_t *m)
{
    uint64_t w[3];
    memcpy(w, &m->u, sizeof w);
    uint64_t h = ((uint64_t)m->type << 56) ^ ((uint64_t)m->stock_locate << 40) ^ m->timestamp;
    h ^= w[0] * 0x9E3779B97F4A7C15ull;
    h ^= w[1] * 0xC2B2AE3D27D4EB4Full;
    h ^= w[2] * 0x165667B19E3779F9ull;
    return h;
}

#endif
