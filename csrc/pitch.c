/* pitch.c -- the PITCH length table (pitch_spec.h), checked at compile time.
 * The pipeline (pitch_pipe.c) and the test probes' reference decoder
 * (csrc/probe/pitch_decode.c) both read it. */
#include "pitch.h"

/* From the one table, pitch_spec.h: [type] = length for every PITCH type. */
#define FH_PITCH_TABLE_ENTRY(type, tag, len, name) [type] = (len),
const uint8_t fh_pitch_len_table[256] = {FH_PITCH_MESSAGES(FH_PITCH_TABLE_ENTRY)};
#undef FH_PITCH_TABLE_ENTRY

/* Every length holds Length + Type + Time Offset (or Time) and fits
 * FH_PITCH_MAX_LEN; no type listed twice (a duplicate designator would silently
 * keep the last; a duplicate case label does not compile). */
#define FH_PITCH_CHECK_LEN(type, tag, len, name) \
    _Static_assert((len) >= 6 && (len) <= FH_PITCH_MAX_LEN, "PITCH " #tag " length out of range");
FH_PITCH_MESSAGES(FH_PITCH_CHECK_LEN)
#undef FH_PITCH_CHECK_LEN
#define FH_PITCH_CASE(type, tag, len, name) case type:
static inline void fh_pitch_spec_unique(int t)
{
    switch (t) {
        FH_PITCH_MESSAGES(FH_PITCH_CASE)
    default:
        break;
    }
}
#undef FH_PITCH_CASE
