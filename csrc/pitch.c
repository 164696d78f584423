/* pitch.c -- the PITCH length table, the out-of-line decoder for Python and
 * the Sequenced Unit walker (standalone: not in the replay pipeline yet). */
#include "pitch.h"

/* From the one table, pitch_spec.h: [type] = length for every PITCH type. */
#define FH_PITCH_TABLE_ENTRY(type, tag, len, name) [type] = (len),
const uint8_t fh_pitch_len_table[256] = { FH_PITCH_MESSAGES(FH_PITCH_TABLE_ENTRY) };
#undef FH_PITCH_TABLE_ENTRY

/* Every length holds Length + Type + Time Offset (or Time) and fits
 * FH_PITCH_MAX_LEN; no type listed twice (a duplicate designator would silently
 * keep the last; a duplicate case label does not compile). */
#define FH_PITCH_CHECK_LEN(type, tag, len, name) \
    _Static_assert((len) >= 6 && (len) <= FH_PITCH_MAX_LEN, "PITCH " #tag " length out of range");
FH_PITCH_MESSAGES(FH_PITCH_CHECK_LEN)
#undef FH_PITCH_CHECK_LEN
#define FH_PITCH_CASE(type, tag, len, name) case type:
static inline void fh_pitch_spec_unique(int t) { switch (t) { FH_PITCH_MESSAGES(FH_PITCH_CASE) default: break; } }
#undef FH_PITCH_CASE

static const char *const pitch_err_names[FH_PITCH_ERR__COUNT] = {
    [FH_PITCH_ERR_TRUNCATED] = "pitch_truncated",
    [FH_PITCH_ERR_HDR_LENGTH] = "pitch_hdr_length",
    [FH_PITCH_ERR_COUNT_OVERRUN] = "pitch_count_overrun",
    [FH_PITCH_ERR_ZERO_LENGTH] = "pitch_zero_length",
    [FH_PITCH_ERR_MSG_OVERRUN] = "pitch_msg_overrun",
    [FH_PITCH_ERR_UNKNOWN_TYPE] = "pitch_unknown_type",
    [FH_PITCH_ERR_BAD_LENGTH] = "pitch_bad_length",
    [FH_PITCH_ERR_TRAILING] = "pitch_trailing",
    [FH_PITCH_ERR_OUT_FULL] = "pitch_out_full",
};

const char *fh_pitch_err_name(int e)
{
    (void)fh_pitch_spec_unique;
    return (e >= 0 && e < FH_PITCH_ERR__COUNT && pitch_err_names[e]) ? pitch_err_names[e] : "unknown";
}

uint32_t fh_pitch_msg_len(uint8_t type) { return fh_pitch_len_table[type]; }

int fh_pitch_decode(const uint8_t *p, size_t len, fh_pitch_msg_t *out)
{
    if (!p || !out) return FH_DECODE_EMPTY;
    memset(out, 0, sizeof *out);
    return fh_pitch_decode_inline(p, len, out);
}

size_t fh_pitch_walk_unit(const uint8_t *payload, size_t len, fh_pitch_unit_t *hdr, fh_pitch_msg_t *out,
                          size_t cap, uint64_t *errors)
{
    uint64_t scratch[FH_PITCH_ERR__COUNT] = {0};
    fh_pitch_unit_t h;
    if (!errors) errors = scratch;
    memset(&h, 0, sizeof h);
    if (hdr) *hdr = h;
    if (!payload || len < FH_PITCH_UNIT_HLEN) { errors[FH_PITCH_ERR_TRUNCATED]++; return 0; }
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
        if (FH_UNLIKELY(off >= len)) { errors[FH_PITCH_ERR_COUNT_OVERRUN]++; return n; }
        const size_t mlen = payload[off];
        if (FH_UNLIKELY(mlen < 2)) { errors[FH_PITCH_ERR_ZERO_LENGTH]++; return n; }
        if (FH_UNLIKELY(mlen > len - off)) { errors[FH_PITCH_ERR_MSG_OVERRUN]++; return n; }
        fh_pitch_msg_t m;
        switch (fh_pitch_decode_inline(payload + off, mlen, &m)) {
        case FH_DECODE_OK:
            if (n < cap) out[n++] = m;
            else errors[FH_PITCH_ERR_OUT_FULL]++;
            break;
        case FH_DECODE_UNKNOWN_TYPE: errors[FH_PITCH_ERR_UNKNOWN_TYPE]++; break;
        default: errors[FH_PITCH_ERR_BAD_LENGTH]++; break;
        }
        off += mlen;
    }
    if (FH_UNLIKELY(off != len)) errors[FH_PITCH_ERR_TRAILING]++;
    return n;
}
