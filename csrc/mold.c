/* mold.c -- MoldUDP64 on the wire: the re-request parse (cold path). */
#include "mold.h"

/* The server side of re-requests (feedhandler/rewind.py) reads requests from
 * anyone on the network: the parse lives here, next to the downstream packet
 * it mirrors, so that it is C with the rest of the wire parsing and fuzzed. */
int fh_mold_parse_request(const uint8_t *p, size_t n, uint8_t session[10], uint64_t *seq, uint32_t *count)
{
    if (!p || n != FH_MOLD_HLEN) return -1;
    memcpy(session, p, FH_MOLD_SESSION_LEN);
    *seq = fh_be64(p + 10);
    *count = fh_be16(p + 18);
    return 0;
}
