/* src_binfile.c -- NASDAQ BinaryFILE: each ITCH message prefixed by a u16 BE length.
 *
 * There is no session layer: every record goes straight to the pipeline
 * (fh_pipe_record), in file order, and counts as one "packet"; the pipeline
 * decodes records in windows and applies each window as one batch. */
#include "src.h"

int fh_src_binfile_plausible(const uint8_t *buf, size_t len)
{
    if (len < 3) return 0;
    const uint16_t l = fh_be16(buf);
    return l != 0 && (size_t)l + 2 <= len && fh_itch_len_table[buf[2]] == l;
}

int fh_src_binfile_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                        char *err, size_t errlen)
{
    (void)cap;                      /* a record is at most 65 537 bytes: any buffer holds one */
    size_t off = 0;
    *used = 0;
    const uint32_t how = fh_pipe_record_mode(r);
    uint32_t poll = src->poll;
    if (FH_UNLIKELY(fh_pipe_should_stop(r))) return 0;   /* asked to stop: not one record more */
    while (off < len) {
        /* A record cut by the end of this buffer: the rest comes with the next. */
        if (!eof && (len - off < 2 || (size_t)fh_be16(buf + off) > len - off - 2)) break;
        if (FH_UNLIKELY(++poll == FH_POLL_EVERY)) {
            poll = 0;
            if (fh_pipe_poll(r, src->pos + off)) {
                src->poll = poll;
                *used = off;
                return 0;
            }
        }
        if (FH_UNLIKELY(len - off < 2)) {
            src->poll = poll;
            fh_pipe_input_end(r, src->pos + off);
            fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
            fh_errf(err, errlen, "BinaryFILE truncated: 1 stray byte at offset %llu",
                    (unsigned long long)(src->pos + off));
            *used = len;
            return 1;
        }
        const size_t mlen = fh_be16(buf + off);
        if (FH_UNLIKELY(mlen > len - off - 2)) {
            src->poll = poll;
            fh_pipe_input_end(r, src->pos + off);
            fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
            fh_errf(err, errlen, "BinaryFILE truncated: message at offset %llu needs %zu bytes, %zu left",
                    (unsigned long long)(src->pos + off), mlen, len - off - 2);
            *used = len;
            return 1;
        }
        const int stop = fh_pipe_record(r, how, buf + off + 2, mlen);
        if (FH_UNLIKELY(stop)) {                    /* asked to stop: 1 before this record, 2 after it */
            if (stop == 2) off += 2 + mlen;
            src->poll = poll;
            (void)fh_pipe_poll(r, src->pos + off);
            *used = off;
            return 0;
        }
        off += 2 + mlen;
    }
    src->poll = poll;
    *used = off;
    if (eof) fh_pipe_input_end(r, src->pos + off);
    return 0;
}
