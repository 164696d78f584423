/* frame_decode.c -- stateless decode of one frame (net -> MoldUDP64 -> ITCH),
 * for tools and tests that want a frame's messages without a replay context. */
#include "itch.h"
#include "mold.h"
#include "net.h"

typedef struct {
    fh_book_op_t *out;
    size_t cap, n;
    fh_stats_t *st;
} frame_sink_t;

static void frame_sink(void *ctx, const uint8_t *p, size_t len)
{
    frame_sink_t *s = ctx;
    fh_book_op_t m;
    memset(&m, 0, sizeof m);
    const int rc = fh_itch_decode_inline(p, len, &m);
    if (rc != FH_DECODE_OK) {
        s->st->errors[rc == FH_DECODE_BAD_LENGTH ? FH_ERR_ITCH_BAD_LENGTH : FH_ERR_ITCH_UNKNOWN_TYPE]++;
        return;
    }
    s->st->messages++;
    s->st->by_type[m.type]++;
    s->st->checksum += fh_itch_fold(&m);
    if (s->n < s->cap) s->out[s->n++] = m;
}

size_t fh_decode_frame(const uint8_t *frame, size_t len, fh_book_op_t *out, size_t cap, fh_stats_t *st)
{
    fh_udp_view_t u;
    frame_sink_t s = {out, out ? cap : 0, 0, st};
    st->packets++;
    st->bytes += len;
    if (!frame || !fh_net_parse(frame, len, &u, st->errors)) return 0;
    if (u.len < FH_MOLD_HLEN) {
        st->errors[FH_ERR_MOLD_TRUNCATED]++;
        return 0;
    }
    st->mold_packets++;
    const uint32_t count = fh_be16(u.payload + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END) {
        if (count == FH_MOLD_END) st->end_of_session++;
        else st->heartbeats++;
        if (u.len != FH_MOLD_HLEN) st->errors[FH_ERR_MOLD_TRAILING]++;
        return 0;
    }
    fh_mold_walk(u.payload, u.len, count, 0, frame_sink, &s, st);
    return s.n;
}
