/* pitch_decode.c -- the Cboe PITCH reference decoder (probe_api.h): every
 * message type into one normalized struct (fh_pitch_msg_t), and a Sequenced
 * Unit walker over it.  Tests hold the spec notes, the generator and the scapy
 * layers to it; fuzz/fuzz_pitch.c fuzzes it (compiling this file in).  Not in
 * the core: the pipeline decodes PITCH straight into book operations
 * (pitch_pipe.c), from the same length table (fh_pitch_len_table, pitch.c).
 *
 * pitch_decode() mirrors fh_itch_decode_inline(): a table lookup on the type
 * byte, an exact length check before any field is read (the message's own
 * Length byte must equal the buffer length and the type's length in
 * pitch_spec.h), then little-endian fields through memcpy (fields are
 * unaligned).  A longer message is BAD_LENGTH, skipped and counted by the
 * walker. */
#include "pitch.h"
#include "probe/probe_api.h"

/* tests/test_layout.py asserts the same numbers through CFFI. */
#define FH_ASSERT_SIZE(T, n) _Static_assert(sizeof(T) == (n), #T " size changed: update test_layout.py")
#define FH_ASSERT_OFF(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f " moved: update test_layout.py")
FH_ASSERT_SIZE(fh_pitch_msg_t, 88);
FH_ASSERT_OFF(fh_pitch_msg_t, side, 1);
FH_ASSERT_OFF(fh_pitch_msg_t, flags, 2);
FH_ASSERT_OFF(fh_pitch_msg_t, status, 3);
FH_ASSERT_OFF(fh_pitch_msg_t, customer_indicator, 6);
FH_ASSERT_OFF(fh_pitch_msg_t, time_offset_ns, 8);
FH_ASSERT_OFF(fh_pitch_msg_t, seconds, 12);
FH_ASSERT_OFF(fh_pitch_msg_t, order_id, 16);
FH_ASSERT_OFF(fh_pitch_msg_t, exec_id, 24);
FH_ASSERT_OFF(fh_pitch_msg_t, qty, 32);
FH_ASSERT_OFF(fh_pitch_msg_t, remaining, 36);
FH_ASSERT_OFF(fh_pitch_msg_t, price, 40);
FH_ASSERT_OFF(fh_pitch_msg_t, indicative_price, 48);
FH_ASSERT_OFF(fh_pitch_msg_t, auction_only_price, 56);
FH_ASSERT_OFF(fh_pitch_msg_t, sell_qty, 64);
FH_ASSERT_OFF(fh_pitch_msg_t, participant_id, 68);
FH_ASSERT_OFF(fh_pitch_msg_t, symbol, 72);
FH_ASSERT_OFF(fh_pitch_msg_t, reserved, 80);
FH_ASSERT_SIZE(fh_pitch_unit_t, 8);
FH_ASSERT_OFF(fh_pitch_unit_t, count, 2);
FH_ASSERT_OFF(fh_pitch_unit_t, unit, 3);
FH_ASSERT_OFF(fh_pitch_unit_t, sequence, 4);

/* A 6- or 8-byte symbol, space-padded to 8. */
static inline void fh_pitch_symbol(char dst[8], const uint8_t *src, size_t n)
{
    memset(dst, ' ', 8);
    memcpy(dst, src, n);
}

static inline int pitch_decode(const uint8_t *p, size_t len, fh_pitch_msg_t *m)
{
    if (FH_UNLIKELY(len == 0)) return FH_DECODE_EMPTY;
    if (FH_UNLIKELY(len < 2)) return FH_DECODE_BAD_LENGTH;   /* no room for a type byte */
    const uint8_t t = p[1];
    const uint32_t want = fh_pitch_len_table[t];
    if (FH_UNLIKELY(want == 0)) return FH_DECODE_UNKNOWN_TYPE;
    if (FH_UNLIKELY(len != want || p[0] != want)) return FH_DECODE_BAD_LENGTH;

    /* From here every read below is within [p, p + want). */
    memset(m, 0, sizeof *m);
    memset(m->symbol, ' ', sizeof m->symbol);
    m->type = t;
    if (t != FH_PITCH_TYPE_TIME) m->time_offset_ns = fh_le32(p + 2);
    switch (t) {
    case FH_PITCH_TYPE_TIME:
        m->seconds = fh_le32(p + 2);
        break;
    case FH_PITCH_TYPE_UNIT_CLEAR:
    case FH_PITCH_TYPE_END_OF_SESSION:
        break;
    case FH_PITCH_TYPE_ADD_LONG:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le32(p + 15);
        fh_pitch_symbol(m->symbol, p + 19, 6);
        m->price = fh_pitch_le64(p + 25);
        m->flags = p[33];
        break;
    case FH_PITCH_TYPE_ADD_SHORT:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le16(p + 15);
        fh_pitch_symbol(m->symbol, p + 17, 6);
        m->price = (uint64_t)fh_le16(p + 23) * 100u;
        m->flags = p[25];
        break;
    case FH_PITCH_TYPE_ADD_EXPANDED:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le32(p + 15);
        fh_pitch_symbol(m->symbol, p + 19, 8);
        m->price = fh_pitch_le64(p + 27);
        m->flags = p[35];
        memcpy(m->participant_id, p + 36, 4);
        m->customer_indicator = p[40];
        break;
    case FH_PITCH_TYPE_EXECUTED:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le32(p + 14);
        m->exec_id = fh_pitch_le64(p + 18);
        break;
    case FH_PITCH_TYPE_EXECUTED_PRICE:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le32(p + 14);
        m->remaining = fh_le32(p + 18);
        m->exec_id = fh_pitch_le64(p + 22);
        m->price = fh_pitch_le64(p + 30);
        break;
    case FH_PITCH_TYPE_REDUCE_LONG:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le32(p + 14);
        break;
    case FH_PITCH_TYPE_REDUCE_SHORT:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le16(p + 14);
        break;
    case FH_PITCH_TYPE_MODIFY_LONG:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le32(p + 14);
        m->price = fh_pitch_le64(p + 18);
        m->flags = p[26];
        break;
    case FH_PITCH_TYPE_MODIFY_SHORT:
        m->order_id = fh_pitch_le64(p + 6);
        m->qty = fh_le16(p + 14);
        m->price = (uint64_t)fh_le16(p + 16) * 100u;
        m->flags = p[18];
        break;
    case FH_PITCH_TYPE_DELETE:
        m->order_id = fh_pitch_le64(p + 6);
        break;
    case FH_PITCH_TYPE_TRADE_LONG:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le32(p + 15);
        fh_pitch_symbol(m->symbol, p + 19, 6);
        m->price = fh_pitch_le64(p + 25);
        m->exec_id = fh_pitch_le64(p + 33);
        break;
    case FH_PITCH_TYPE_TRADE_SHORT:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le16(p + 15);
        fh_pitch_symbol(m->symbol, p + 17, 6);
        m->price = (uint64_t)fh_le16(p + 23) * 100u;
        m->exec_id = fh_pitch_le64(p + 25);
        break;
    case FH_PITCH_TYPE_TRADE_EXPANDED:
        m->order_id = fh_pitch_le64(p + 6);
        m->side = p[14];
        m->qty = fh_le32(p + 15);
        fh_pitch_symbol(m->symbol, p + 19, 8);
        m->price = fh_pitch_le64(p + 27);
        m->exec_id = fh_pitch_le64(p + 35);
        break;
    case FH_PITCH_TYPE_TRADE_BREAK:
        m->exec_id = fh_pitch_le64(p + 6);
        break;
    case FH_PITCH_TYPE_TRADING_STATUS:
        fh_pitch_symbol(m->symbol, p + 6, 8);
        m->status = p[14];
        m->reg_sho_action = p[15];
        m->reserved[0] = p[16];
        m->reserved[1] = p[17];
        break;
    case FH_PITCH_TYPE_AUCTION_UPDATE:
        fh_pitch_symbol(m->symbol, p + 6, 8);
        m->auction_type = p[14];
        m->price = fh_pitch_le64(p + 15);
        m->qty = fh_le32(p + 23);
        m->sell_qty = fh_le32(p + 27);
        m->indicative_price = fh_pitch_le64(p + 31);
        m->auction_only_price = fh_pitch_le64(p + 39);
        break;
    case FH_PITCH_TYPE_AUCTION_SUMMARY:
        fh_pitch_symbol(m->symbol, p + 6, 8);
        m->auction_type = p[14];
        m->price = fh_pitch_le64(p + 15);
        m->qty = fh_le32(p + 23);
        break;
    default:
        /* Unreachable: fh_pitch_len_table is non-zero only for the types above. */
        return FH_DECODE_UNKNOWN_TYPE;
    }
    return FH_DECODE_OK;
}

static const char *const pitch_err_names[FH_PITCH_ERR__COUNT] = {
    [FH_PITCH_ERR_TRUNCATED] = "pitch_truncated",         [FH_PITCH_ERR_HDR_LENGTH] = "pitch_hdr_length",
    [FH_PITCH_ERR_COUNT_OVERRUN] = "pitch_count_overrun", [FH_PITCH_ERR_ZERO_LENGTH] = "pitch_zero_length",
    [FH_PITCH_ERR_MSG_OVERRUN] = "pitch_msg_overrun",     [FH_PITCH_ERR_UNKNOWN_TYPE] = "pitch_unknown_type",
    [FH_PITCH_ERR_BAD_LENGTH] = "pitch_bad_length",       [FH_PITCH_ERR_TRAILING] = "pitch_trailing",
    [FH_PITCH_ERR_OUT_FULL] = "pitch_out_full",
};

const char *fh_pitch_err_name(int e)
{
    return (e >= 0 && e < FH_PITCH_ERR__COUNT && pitch_err_names[e]) ? pitch_err_names[e] : "unknown";
}

uint32_t fh_pitch_msg_len(uint8_t type) { return fh_pitch_len_table[type]; }

int fh_pitch_decode(const uint8_t *p, size_t len, fh_pitch_msg_t *out)
{
    if (!p || !out) return FH_DECODE_EMPTY;
    memset(out, 0, sizeof *out);
    return pitch_decode(p, len, out);
}

size_t fh_pitch_walk_unit(const uint8_t *payload, size_t len, fh_pitch_unit_t *hdr, fh_pitch_msg_t *out, size_t cap,
                          uint64_t *errors)
{
    uint64_t scratch[FH_PITCH_ERR__COUNT] = {0};
    fh_pitch_unit_t h;
    if (!errors) errors = scratch;
    memset(&h, 0, sizeof h);
    if (hdr) *hdr = h;
    if (!payload || len < FH_PITCH_UNIT_HLEN) {
        errors[FH_PITCH_ERR_TRUNCATED]++;
        return 0;
    }
    if (!out) cap = 0;

    h.length = fh_le16(payload);
    h.count = payload[2];
    h.unit = payload[3];
    h.sequence = fh_le32(payload + 4);
    if (hdr) *hdr = h;
    /* The walk stays within what was received, whatever the header claims. */
    if (FH_UNLIKELY(h.length != len)) errors[FH_PITCH_ERR_HDR_LENGTH]++;

    size_t off = FH_PITCH_UNIT_HLEN, n = 0;
    for (uint32_t i = 0; i < h.count; i++) {
        if (FH_UNLIKELY(off >= len)) {
            errors[FH_PITCH_ERR_COUNT_OVERRUN]++;
            return n;
        }
        const size_t mlen = payload[off];
        if (FH_UNLIKELY(mlen < 2)) {
            errors[FH_PITCH_ERR_ZERO_LENGTH]++;
            return n;
        }
        if (FH_UNLIKELY(mlen > len - off)) {
            errors[FH_PITCH_ERR_MSG_OVERRUN]++;
            return n;
        }
        fh_pitch_msg_t m;
        switch (pitch_decode(payload + off, mlen, &m)) {
        case FH_DECODE_OK:
            if (n < cap) out[n++] = m;
            else errors[FH_PITCH_ERR_OUT_FULL]++;
            break;
        case FH_DECODE_UNKNOWN_TYPE:
            errors[FH_PITCH_ERR_UNKNOWN_TYPE]++;
            break;
        default:
            errors[FH_PITCH_ERR_BAD_LENGTH]++;
            break;
        }
        off += mlen;
    }
    if (FH_UNLIKELY(off != len)) errors[FH_PITCH_ERR_TRAILING]++;
    return n;
}
