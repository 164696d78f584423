/* src.h -- sources: walk one input format and feed the pipeline's sink API.
 *
 * A walker is resumable: the input layer (input.c) hands it the input in
 * buffers -- the whole mapped file at once, or chunk after chunk of a
 * decompressed or piped stream -- and it consumes whole records only,
 * returning how many bytes it used; the rest (a record cut by the chunk
 * boundary) comes again at the front of the next buffer.  Its state between
 * buffers lives in fh_src_t.  Only at the end of the input (eof) is a partial
 * record an error.  Record headers are hostile input like frames: lengths are
 * checked before the bytes they cover are read. */
#ifndef FH_SRC_H
#define FH_SRC_H

#include "pipeline.h"

#define FH_PCAPNG_MAX_IF 256

/* Per pcapng interface: link type and how to turn its timestamp units into ns. */
typedef struct {
    uint32_t linktype;
    uint32_t snaplen;
    uint64_t mul;          /* ns = units * mul / div, or units * 1e9 >> shift */
    uint64_t div;
    uint32_t shift;        /* non-zero for power-of-two resolutions */
    int64_t offset_s;     /* if_tsoffset */
} fh_pcapng_if_t;

typedef struct fh_src {
    int fmt;                        /* enum fh_format */
    uint64_t pos;                   /* input bytes consumed before the current buffer */
    uint32_t poll;                  /* records since the last poll */
    int started;                    /* file header read */
    int swap;                       /* pcap/pcapng: byte order differs from ours */
    uint64_t frac_mul;              /* pcap: ns per timestamp fraction unit */
    int have_shb;                   /* pcapng: a section header was seen */
    uint32_t n_if;
    uint64_t last_ts;
    uint64_t bad_blocks;            /* pcapng: well-framed blocks skipped as inconsistent */
    uint64_t first_bad;             /* pcapng: input offset of the first of them */
    fh_pcapng_if_t ifs[FH_PCAPNG_MAX_IF];
} fh_src_t;

/* Walk buf[0, len) (the input from offset src->pos).  *used is set to the
 * bytes consumed (whole records).  Returns 0 (walked, or stopped on request),
 * 1 when the input was corrupt or truncated part-way (what came before is
 * decoded and counted; err says where), -1 when nothing could be decoded (bad
 * header).  With eof == 0 a record running past len is left for the next
 * buffer, unless it could never fit one of `cap` bytes (corrupt). */
int fh_src_pcap_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                     char *err, size_t errlen);
int fh_src_pcapng_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                       char *err, size_t errlen);
int fh_src_binfile_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                        char *err, size_t errlen);
/* Format detection for a file that is none of the capture formats: the first
 * record must be a whole, known ITCH message of exactly its type's length. */
int fh_src_binfile_plausible(const uint8_t *buf, size_t len);

#endif
