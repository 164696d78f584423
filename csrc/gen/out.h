/* out.h -- buffered file output for PREFIX.pcap and PREFIX.bin.
 *
 * Records are written in place into a large buffer (fh_gen_out_reserve, then
 * advance pos) and the buffer goes to the file when the next record would not
 * fit: no syscall per message.  The first write error is kept and reported
 * when the file is closed.  Little-endian stores (pcap headers, PITCH) are
 * here too.
 */
#ifndef FH_GEN_OUT_H
#define FH_GEN_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fh_common.h"

/* Spare bytes past the end of every output buffer and packet frame: records
 * are copied with a fixed-size copy (FH_GEN_REC_COPY in gen.h) that may write
 * past their exact end. */
#define FH_GEN_SLACK 64u

typedef struct {
    FILE *f;
    uint8_t *buf;
    size_t pos, cap;
    int err_no;                   /* first write error, 0 if none */
    const char *path;
} fh_gen_out_t;

/* Create path and its buffer; -1 with a message in err. */
int fh_gen_out_open(fh_gen_out_t *o, const char *path, char *err, size_t errlen);
/* Write out what is buffered (errors are kept in o->err_no). */
void fh_gen_out_flush(fh_gen_out_t *o);
/* Flush and close; -1 with a message naming the file on any write error. */
int fh_gen_out_close(fh_gen_out_t *o, char *err, size_t errlen);

/* Room for n more bytes at buf + pos (n is far below the buffer size). */
FH_INLINE uint8_t *fh_gen_out_reserve(fh_gen_out_t *o, size_t n)
{
    if (FH_UNLIKELY(o->pos + n > o->cap)) fh_gen_out_flush(o);
    return o->buf + o->pos;
}

FH_INLINE void fh_gen_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

FH_INLINE void fh_gen_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

FH_INLINE void fh_gen_put_le64(uint8_t *p, uint64_t v)
{
    fh_gen_put_le32(p, (uint32_t)v);
    fh_gen_put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
