/* pitch.h -- Cboe US Equities Multicast PITCH message decoding.
 *
 * fh_pitch_decode_inline() mirrors fh_itch_decode_inline(): a table lookup on
 * the type byte, an exact length check before any field is read (the
 * message's own Length byte must equal the buffer length and the type's
 * length in pitch_spec.h), then little-endian fields through memcpy (fields
 * are unaligned).  The spec lets Cboe lengthen messages; this layer is strict
 * on purpose (a longer message is BAD_LENGTH, skipped and counted by the
 * walker), the same rule as ITCH.  Layouts: docs/pitch-spec-notes.md. */
#ifndef FH_PITCH_H
#define FH_PITCH_H

#include "fh_common.h"
#include "pitch_spec.h"

/* Wire length of every PITCH type (Length byte value); 0 = not a PITCH type.
 * Built in pitch.c from FH_PITCH_MESSAGES (pitch_spec.h). */
extern const uint8_t fh_pitch_len_table[256];

FH_INLINE uint64_t fh_pitch_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* A 6- or 8-byte symbol, space-padded to 8. */
FH_INLINE void fh_pitch_symbol(char dst[8], const uint8_t *src, size_t n)
{
    memset(dst, ' ', 8);
    memcpy(dst, src, n);
}

FH_INLINE int fh_pitch_decode_inline(const uint8_t *p, size_t len, fh_pitch_msg_t *m)
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

#endif
