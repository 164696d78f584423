/* iex.c -- the IEX type table (iex_spec.h), checked at compile time. */
#include "iex.h"

/* From the one table, iex_spec.h: [type] = feeds << 8 | length. */
#define FH_IEX_TABLE_ENTRY(type, tag, len, feeds, name) [type] = (uint16_t)((feeds) << 8 | (len)),
const uint16_t fh_iex_type_table[256] = {FH_IEX_MESSAGES(FH_IEX_TABLE_ENTRY)};
#undef FH_IEX_TABLE_ENTRY

/* Every length holds the type, a byte of flags and the 8-byte timestamp the
 * fold reads, and fits a byte; no type listed twice (a duplicate case label
 * does not compile). */
#define FH_IEX_CHECK(type, tag, len, feeds, name)                                            \
    _Static_assert((len) >= 10 && (len) <= 255 && (type) < FH_IEX_BY_TYPE && (feeds) != 0 && \
                       ((feeds) & ~FH_IEX_IN_ALL) == 0,                                      \
                   "IEX " #tag " out of range");
FH_IEX_MESSAGES(FH_IEX_CHECK)
#undef FH_IEX_CHECK
#define FH_IEX_CASE(type, tag, len, feeds, name) case type:
static inline void fh_iex_spec_unique(int t)
{
    switch (t) {
        FH_IEX_MESSAGES(FH_IEX_CASE)
    default:
        break;
    }
}
#undef FH_IEX_CASE
