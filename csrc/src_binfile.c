/* src_binfile.c -- NASDAQ BinaryFILE: each ITCH message prefixed by a u16 BE length.
 *
 * There is no session layer: every record goes straight to the decoder, in
 * file order, and counts as one "packet".  With no packets to group them,
 * records are decoded in windows of FH_BIN_WINDOW and each window is applied
 * as one batch (the book fetches its orders and levels ahead) and published
 * once per instrument it touched, as a packet is.  Paced replays apply every
 * record as it falls due. */
#include "engine.h"

/* Records per window: long enough for the book's prefetch (16 messages ahead)
 * to run ahead of applying and for publishing to conflate (128 measured 15%
 * faster than 64 on a full day in the default mode, 256 no faster), short
 * enough that a window is a few microseconds of a busy market and its lines
 * stay in L1/L2. */
#ifndef FH_BIN_WINDOW
#define FH_BIN_WINDOW 128u
#endif

FH_INLINE void bin_window_apply(fh_replay_t *r)
{
    if (!r->n_msgs) return;
    fh_engine_apply_decoded(r);
    fh_book_flush_pending(&r->book);
    r->book.now = 0;
}

/* Format detection for a file that is none of the capture formats: the first
 * record must be a whole, known ITCH message of exactly its type's length. */
int fh_src_binfile_plausible(const uint8_t *buf, size_t len)
{
    if (len < 3) return 0;
    const uint16_t l = fh_be16(buf);
    return l != 0 && (size_t)l + 2 <= len && fh_itch_len_table[buf[2]] == l;
}

int fh_src_binfile_run(fh_replay_t *r, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    size_t off = 0;
    uint32_t poll = 0;
    const int paced = r->pace_scale != 0.0, lanes = r->n_lanes > 1;
    const int windowed = r->mode != FH_MODE_DECODE && !paced;
    /* Windows are counted in records of the file, whichever lane owns them, so
     * each instrument is published at the same points (and the counters of
     * publishing agree) whatever the number of lanes. */
    uint32_t in_win = 0;
    r->n_msgs = 0;
    while (off < len) {
        if (FH_UNLIKELY(++poll == FH_POLL_EVERY)) {
            poll = 0;
            bin_window_apply(r);
            fh_engine_progress(r, off);
            if (fh_engine_should_stop(r)) return 0;
        }
        if (FH_UNLIKELY(len - off < 2)) {
            bin_window_apply(r);
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "BinaryFILE truncated: 1 stray byte at offset %zu", off);
            return 1;
        }
        const size_t mlen = fh_be16(buf + off);
        if (FH_UNLIKELY(mlen > len - off - 2)) {
            bin_window_apply(r);
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "BinaryFILE truncated: message at offset %zu needs %zu bytes, %zu left",
                    off, mlen, len - off - 2);
            return 1;
        }
        const uint8_t *msg = buf + off + 2;
        off += 2 + mlen;
        /* No capture clock in a BinaryFILE: pace on the ITCH timestamps. */
        if (FH_UNLIKELY(paced) && mlen >= 11) fh_engine_pace(r, fh_be48(msg + 5));
        if (FH_LIKELY(!lanes) || fh_engine_msg_lane(r, msg, mlen) == r->lane) {
            r->st.packets++;
            r->st.bytes += mlen + 2;
            if (FH_LIKELY(mlen != 0)) {
                r->st.pkt_applied++;
                if (FH_LIKELY(windowed)) {
                    fh_engine_decode(r, msg, mlen);
                } else {
                    /* Paced (or decode only): each record when it falls due. */
                    r->book.now = 0;
                    fh_engine_msg(r, msg, mlen);
                    fh_book_flush_pending(&r->book);
                }
            } else {
                r->st.pkt_rejected++;
                r->st.errors[FH_ERR_BINFILE_ZERO_LEN]++;
            }
        }
        if (FH_UNLIKELY(++in_win == FH_BIN_WINDOW)) {
            in_win = 0;
            bin_window_apply(r);
        }
    }
    bin_window_apply(r);
    fh_engine_progress(r, len);
    return 0;
}
