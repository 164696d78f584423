/* itch.c -- the ITCH 5.0 length table and the out-of-line entry points. */
#include "itch.h"

/* From the one table, itch_spec.h: [type] = length for every ITCH 5.0 type. */
#define FH_ITCH_TABLE_ENTRY(type, tag, len, name) [type] = (len),
const uint8_t fh_itch_len_table[256] = {FH_ITCH_MESSAGES(FH_ITCH_TABLE_ENTRY)};
#undef FH_ITCH_TABLE_ENTRY

/* Every length fits the table's bytes and FH_ITCH_MAX_LEN; no type listed twice
 * (a duplicate designator would silently keep the last). */
#define FH_ITCH_CHECK_LEN(type, tag, len, name) \
    _Static_assert((len) > 11 && (len) <= FH_ITCH_MAX_LEN, "ITCH " #tag " length out of range");
FH_ITCH_MESSAGES(FH_ITCH_CHECK_LEN)
#undef FH_ITCH_CHECK_LEN
#define FH_ITCH_CASE(type, tag, len, name) case type:
static inline void fh_itch_spec_unique(int t)
{
    switch (t) {
        FH_ITCH_MESSAGES(FH_ITCH_CASE)
    default:
        break;
    }
}
#undef FH_ITCH_CASE

uint32_t fh_itch_msg_len(uint8_t type) { return fh_itch_len_table[type]; }

int fh_itch_decode(const uint8_t *p, size_t len, fh_book_op_t *out)
{
    if (!p || !out) return FH_DECODE_EMPTY;
    memset(out, 0, sizeof *out);
    return fh_itch_decode_inline(p, len, out);
}
