/* itch.c -- the ITCH 5.0 length table and the out-of-line entry points. */
#include "itch.h"

const uint8_t fh_itch_len_table[256] = {
    ['S'] = 12, ['R'] = 39, ['H'] = 25, ['Y'] = 20, ['L'] = 26, ['V'] = 35, ['W'] = 12,
    ['K'] = 28, ['J'] = 35, ['h'] = 21, ['A'] = 36, ['F'] = 40, ['E'] = 31, ['C'] = 36,
    ['X'] = 23, ['D'] = 19, ['U'] = 35, ['P'] = 44, ['Q'] = 40, ['B'] = 19, ['I'] = 50,
    ['N'] = 20, ['O'] = 48,
};

uint32_t fh_itch_msg_len(uint8_t type) { return fh_itch_len_table[type]; }

int fh_itch_decode(const uint8_t *p, size_t len, fh_itch_msg_t *out)
{
    if (!p || !out) return FH_DECODE_EMPTY;
    memset(out, 0, sizeof *out);
    return fh_itch_decode_inline(p, len, out);
}
