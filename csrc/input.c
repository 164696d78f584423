/* input.c -- the input layer: open an input, recognise its format, hand it to
 * a source's walker; the counters of time spent.
 *
 * A plain file is mapped and walked in one pass, zero-copy.  Everything else
 * streams with bounded memory, whatever its size: gzip (any number of
 * members) and zstd (any number of frames) are decompressed in chunks, and
 * pipes or standard input ("-") are read in chunks, into one buffer of
 * FH_STREAM_BUF bytes that the walkers consume whole records from (src.h).
 * Formats are recognised from their first bytes, never from the file name.
 * A truncated or corrupt compressed stream is an error reported after
 * everything before the damage was applied, as for a plain file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <zlib.h>
#ifdef FH_HAVE_ZSTD
#include <zstd.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define FH_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define FH_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define FH_POISON(p, n) ((void)(p), (void)(n))
#define FH_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "src.h"

/* The streaming buffer: what a walker sees at once.  Large enough that the
 * walk runs in long zero-copy stretches (the carry-over moved per refill is
 * less than one record), small enough to stay out of the way of the books. */
#ifndef FH_STREAM_BUF
#define FH_STREAM_BUF (8u << 20)
#endif
#ifndef FH_STREAM_IN
#define FH_STREAM_IN (1u << 20)      /* compressed bytes read per read(2) */
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int detect(const uint8_t *b, size_t len)
{
    if (len >= 4) {
        const uint32_t m = fh_le32(b);
        if (m == 0xA1B2C3D4u || m == 0xD4C3B2A1u) return FH_FMT_PCAP_US;
        if (m == 0xA1B23C4Du || m == 0x4D3CB2A1u) return FH_FMT_PCAP_NS;
        if (m == 0x0A0D0D0Au) return FH_FMT_PCAPNG;
    }
    if (fh_src_binfile_plausible(b, len)) return FH_FMT_BINFILE;
    return FH_FMT_UNKNOWN;
}

enum { Z_NONE = 0, Z_GZIP = 1, Z_ZSTD = 2 };

static int compression(const uint8_t *b, size_t len)
{
    if (len >= 2 && b[0] == 0x1F && b[1] == 0x8B) return Z_GZIP;
    if (len >= 4 && fh_le32(b) == 0xFD2FB528u) return Z_ZSTD;
    return Z_NONE;
}

int fh_input_compression(const uint8_t *head, size_t len) { return head ? compression(head, len) : Z_NONE; }

/* ------------------------------------------------------------ build info
 * What the whole core was compiled with: every one of its files gets the
 * same flags (cffi_build/build_core.py), so this file's view is the build's. */
#ifdef FH_HAVE_ZSTD
#define FH_BUILD_ZSTD 1
#else
#define FH_BUILD_ZSTD 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FH_BUILD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FH_BUILD_ASAN 1
#endif
#endif
#ifndef FH_BUILD_ASAN
#define FH_BUILD_ASAN 0
#endif
#ifdef FH_EXACT_BUFFERS
#define FH_BUILD_EXACT 1
#else
#define FH_BUILD_EXACT 0
#endif

int fh_build_info(char *out, size_t len)
{
    char compiler[48];
#if defined(__clang__)
    snprintf(compiler, sizeof compiler, "clang-%d.%d.%d", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    snprintf(compiler, sizeof compiler, "gcc-%d.%d.%d", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    snprintf(compiler, sizeof compiler, "unknown");
#endif
    return snprintf(out, out ? len : 0,
                    "zstd=%d sanitize=%d exact_buffers=%d stream_buf=%llu stream_in=%llu compiler=%s", FH_BUILD_ZSTD,
                    FH_BUILD_ASAN, FH_BUILD_EXACT, (unsigned long long)FH_STREAM_BUF, (unsigned long long)FH_STREAM_IN,
                    compiler);
}

typedef int (*walk_fn)(fh_src_t *, fh_lane_t *, const uint8_t *, size_t, int, size_t, size_t *, char *, size_t);

static walk_fn walker(int fmt)
{
    switch (fmt) {
    case FH_FMT_PCAP_US:
    case FH_FMT_PCAP_NS:
        return fh_src_pcap_walk;
    case FH_FMT_PCAPNG:
        return fh_src_pcapng_walk;
    case FH_FMT_BINFILE:
        return fh_src_binfile_walk;
    default:
        return NULL;
    }
}

static int unknown_format(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    fh_errf(err, errlen,
            "unrecognised format: not pcap, pcapng, gzip, zstd or NASDAQ BinaryFILE "
            "(first bytes %02x %02x %02x %02x)",
            buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
    return -1;
}

static fh_src_t *src_new(int fmt)
{
    fh_src_t *src = calloc(1, sizeof *src);
    if (src) src->fmt = fmt;
    return src;
}

/* A whole input in memory (a mapped file, a buffer): one walk. */
static int walk_whole(fh_lane_t *r, const uint8_t *buf, size_t len, int *format_out, char *err, size_t errlen)
{
    if (len == 0) {
        fh_errf(err, errlen, "input is empty");
        return -1;
    }
    const int fmt = detect(buf, len);
    if (format_out) *format_out = fmt;
    const walk_fn walk = walker(fmt);
    if (!walk) return unknown_format(buf, len, err, errlen);
    fh_src_t *src = src_new(fmt);
    if (!src) {
        fh_errf(err, errlen, "out of memory");
        return -1;
    }
    r->input.progress_by_input = 0;
    __atomic_store_n(&r->input.total, len, __ATOMIC_RELAXED);
    __atomic_store_n(&r->input.done, 0, __ATOMIC_RELAXED);
    const uint64_t t0 = now_ns();
    size_t used;
    fh_pipe_input_start(r);
    const int rc = walk(src, r, buf, len, 1, len, &used, err, errlen);
    r->st.elapsed_ns += now_ns() - t0;
    free(src);
    return rc;
}

int fh_lane_buffer(fh_lane_t *r, const uint8_t *buf, size_t len, int *format_out, char *err, size_t errlen)
{
    if (format_out) *format_out = FH_FMT_UNKNOWN;
    if (!buf) len = 0;
    return walk_whole(r, buf, len, format_out, err, errlen);
}

/* ----------------------------------------------------------- streaming */

typedef struct stream {
    int fd;
    int z;                          /* Z_NONE (a pipe), Z_GZIP, Z_ZSTD */
    uint8_t *in;                    /* compressed bytes read, not yet inflated */
    size_t in_len, in_off;
    int in_eof;                     /* read(2) said end of file */
    uint64_t in_total;              /* bytes read from fd */
    int done;                       /* the decompressed stream ended (or failed) */
    int failed;                     /* ... because it is corrupt or truncated: err says how */
    char err[256];
    z_stream gz;
    int gz_live;                    /* gz initialised */
    int gz_member_end;              /* the last gzip member ended: more input must be another member */
#ifdef FH_HAVE_ZSTD
    ZSTD_DStream *zs;
    size_t zs_left;                 /* ZSTD_decompressStream's last hint: 0 = at a frame boundary */
#endif
} stream_t;

static int stream_fill(stream_t *s, char *err, size_t errlen)
{
    if (s->in_off < s->in_len || s->in_eof) return 0;
    for (;;) {
        const ssize_t k = read(s->fd, s->in, FH_STREAM_IN);
        if (k < 0) {
            if (errno == EINTR) continue;
            fh_errf(err, errlen, "read failed after %llu bytes: %s", (unsigned long long)s->in_total, strerror(errno));
            return -1;
        }
        s->in_len = (size_t)k;
        s->in_off = 0;
        s->in_total += (uint64_t)k;
        if (k == 0) s->in_eof = 1;
        return 0;
    }
}

/* Compressed bytes consumed so far (what progress counts). */
static uint64_t stream_consumed(const stream_t *s) { return s->in_total - (s->in_len - s->in_off); }

/* Up to cap decompressed (or piped) bytes into out; 0 at the end of the
 * stream, clean or not (s->failed and s->err say why not).  What was produced
 * before damage is returned first. */
static size_t stream_read(stream_t *s, uint8_t *out, size_t cap)
{
    char *err = s->err;
    const size_t errlen = sizeof s->err;
    size_t n = 0;
    while (n < cap && !s->done) {
        if (stream_fill(s, err, errlen) != 0) {
            s->done = s->failed = 1;
            break;
        }
        const int drained = s->in_eof && s->in_off == s->in_len;     /* no compressed bytes left at all */
        if (s->z == Z_NONE) {
            if (drained) {
                s->done = 1;
                break;
            }
            const size_t k = s->in_len - s->in_off < cap - n ? s->in_len - s->in_off : cap - n;
            memcpy(out + n, s->in + s->in_off, k);
            s->in_off += k;
            n += k;
            continue;
        }
        if (s->z == Z_GZIP) {
            if (s->gz_member_end) {
                if (drained) {
                    s->done = 1;
                    break;
                }
                /* Concatenated members are one file (gzip -c a b > c); anything else after one is not gzip. */
                if (s->in[s->in_off] != 0x1F) {
                    s->done = s->failed = 1;
                    fh_errf(err, errlen, "corrupt gzip input: trailing garbage after a member at compressed byte %llu",
                            (unsigned long long)stream_consumed(s));
                    break;
                }
                inflateReset(&s->gz);
                s->gz_member_end = 0;
            }
            const size_t n0 = n;
            s->gz.next_in = s->in + s->in_off;
            s->gz.avail_in = (uInt)(s->in_len - s->in_off);
            s->gz.next_out = out + n;
            s->gz.avail_out = (uInt)(cap - n);
            const int zr = inflate(&s->gz, Z_NO_FLUSH);
            s->in_off = s->in_len - s->gz.avail_in;
            n = cap - s->gz.avail_out;
            if (zr == Z_STREAM_END) {
                s->gz_member_end = 1;
                continue;
            }
            if (zr != Z_OK && zr != Z_BUF_ERROR) {
                s->done = s->failed = 1;
                fh_errf(err, errlen, "corrupt gzip input at compressed byte %llu: %s",
                        (unsigned long long)stream_consumed(s), s->gz.msg ? s->gz.msg : "inflate error");
                break;
            }
            if (drained && n == n0) {
                s->done = s->failed = 1;
                fh_errf(err, errlen, "gzip input truncated at compressed byte %llu", (unsigned long long)s->in_total);
                break;
            }
            continue;
        }
#ifdef FH_HAVE_ZSTD
        const size_t n0 = n, left0 = s->zs_left;
        ZSTD_inBuffer ib = {s->in, s->in_len, s->in_off};
        ZSTD_outBuffer ob = {out, cap, n};
        const size_t zr = ZSTD_decompressStream(s->zs, &ob, &ib);
        s->in_off = ib.pos;
        n = ob.pos;
        if (ZSTD_isError(zr)) {
            s->done = s->failed = 1;
            fh_errf(err, errlen, "corrupt zstd input at compressed byte %llu: %s",
                    (unsigned long long)stream_consumed(s), ZSTD_getErrorName(zr));
            break;
        }
        s->zs_left = zr;
        if (drained && n == n0) {
            s->done = 1;
            if (left0) {
                s->failed = 1;
                fh_errf(err, errlen, "zstd input truncated at compressed byte %llu", (unsigned long long)s->in_total);
                break;
            }
        }
#else
        s->done = 1;
        break;
#endif
    }
    return n;
}

static int stream_open(stream_t *s, int fd, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->in = malloc(FH_STREAM_IN);
    if (!s->in) {
        fh_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The decompressor the first bytes asked for. */
static int stream_start(stream_t *s, int z, char *err, size_t errlen)
{
    s->z = z;
    if (z == Z_GZIP) {
        if (inflateInit2(&s->gz, 16 + MAX_WBITS) != Z_OK) {
            fh_errf(err, errlen, "zlib init failed");
            return -1;
        }
        s->gz_live = 1;
    }
    if (z == Z_ZSTD) {
#ifdef FH_HAVE_ZSTD
        s->zs = ZSTD_createDStream();
        if (!s->zs || ZSTD_isError(ZSTD_initDStream(s->zs))) {
            fh_errf(err, errlen, "zstd init failed");
            return -1;
        }
#else
        fh_errf(err, errlen,
                "zstd-compressed input, but this build has no zstd support: install libzstd-dev "
                "(pkg-config libzstd) and rebuild, or decompress it first (zstd -dc FILE | feedhandler replay -)");
        return -1;
#endif
    }
    return 0;
}

static void stream_close(stream_t *s)
{
    if (s->gz_live) inflateEnd(&s->gz);
#ifdef FH_HAVE_ZSTD
    if (s->zs) ZSTD_freeDStream(s->zs);
#endif
    free(s->in);
}

/* Walk a stream: fill the buffer, let the walker take the whole records,
 * move the rest (less than one record) to the front, refill. */
static int walk_stream(fh_lane_t *r, stream_t *s, uint64_t total, int *format_out, char *err, size_t errlen)
{
    const size_t cap = FH_STREAM_BUF;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fh_errf(err, errlen, "out of memory for a %u-byte input buffer", FH_STREAM_BUF);
        return -1;
    }
    fh_src_t *src = NULL;
    walk_fn walk = NULL;
    size_t have = 0;
    int rc = 0, eof = 0, bad = 0;
    char zerr[256] = {0};
    r->input.progress_by_input = 1;
    __atomic_store_n(&r->input.total, total, __ATOMIC_RELAXED);
    __atomic_store_n(&r->input.done, 0, __ATOMIC_RELAXED);
    const uint64_t t0 = now_ns();
    for (;;) {
        while (have < cap && !eof) {
            const size_t k = stream_read(s, buf + have, cap - have);
            if (k == 0) {
                eof = 1;
                if (s->failed) {
                    bad = 1;
                    snprintf(zerr, sizeof zerr, "%s", s->err);
                }
            }
            have += k;
        }
        if (!src) {
            /* The first buffer: what is in it. */
            if (have == 0) {
                if (bad) fh_errf(err, errlen, "%s", zerr);
                else fh_errf(err, errlen, "input is empty");
                rc = -1;
                break;
            }
            if (compression(buf, have) != Z_NONE && s->z != Z_NONE) {
                fh_errf(err, errlen, "compressed input inside compressed input is not supported");
                rc = -1;
                break;
            }
            const int fmt = detect(buf, have);
            if (format_out) *format_out = fmt;
            walk = walker(fmt);
            if (!walk) {
                if (bad) fh_errf(err, errlen, "%s", zerr);
                else unknown_format(buf, have, err, errlen);
                rc = -1;
                break;
            }
            src = src_new(fmt);
            if (!src) {
                fh_errf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            fh_pipe_input_start(r);
        }
        FH_POISON(buf + have, cap - have);          /* under ASan: reading past the data is caught */
        size_t used = 0;
        rc = walk(src, r, buf, have, eof, cap, &used, err, errlen);
        FH_UNPOISON(buf + have, cap - have);
        __atomic_store_n(&r->input.done, stream_consumed(s), __ATOMIC_RELAXED);
        if (rc != 0 || eof || fh_pipe_should_stop(r)) break;
        memmove(buf, buf + used, have - used);
        have -= used;
        src->pos += used;
    }
    if (bad && rc >= 0 && src) {
        /* The damage is the decompressor's to report: what came before it was applied. */
        fh_errf(err, errlen, "%s (everything before it was applied)", zerr);
        rc = 1;
    }
    r->st.elapsed_ns += now_ns() - t0;
    r->input.progress_by_input = 0;
    free(src);
    free(buf);
    return rc;
}

#ifdef FH_EXACT_BUFFERS
/* Whole file into an exact-size heap buffer (ASan builds: a read one byte
 * past the input's end is caught). */
static uint8_t *slurp(int fd, size_t *len_out, char *err, size_t errlen)
{
    size_t cap = 1u << 20, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        fh_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(b, cap * 2);
            if (!p) {
                free(b);
                fh_errf(err, errlen, "out of memory reading input");
                return NULL;
            }
            b = p;
            cap *= 2;
        }
        const ssize_t k = read(fd, b + n, cap - n);
        if (k < 0) {
            if (errno == EINTR) continue;
            fh_errf(err, errlen, "read failed: %s", strerror(errno));
            free(b);
            return NULL;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    if (n) {
        uint8_t *exact = malloc(n);
        if (!exact) {
            free(b);
            fh_errf(err, errlen, "out of memory");
            return NULL;
        }
        memcpy(exact, b, n);
        free(b);
        b = exact;
    }
    *len_out = n;
    return b;
}
#endif

static int replay_fd(fh_lane_t *r, int fd, const struct stat *sb, int *format_out, char *err, size_t errlen)
{
    uint8_t head[4] = {0};
    ssize_t hn = 0;
    if (S_ISREG(sb->st_mode)) {
        if (sb->st_size == 0) {
            fh_errf(err, errlen, "input is empty");
            return -1;
        }
        hn = pread(fd, head, sizeof head, 0);
        if (hn < 0) {
            fh_errf(err, errlen, "read failed: %s", strerror(errno));
            return -1;
        }
        const int z = compression(head, (size_t)hn);
        if (z == Z_NONE) {
            /* A plain file: mapped and walked in one pass, zero-copy. */
#ifdef FH_EXACT_BUFFERS
            size_t n = 0;
            uint8_t *heap = slurp(fd, &n, err, errlen);
            if (!heap) return -1;
            const int rc = walk_whole(r, heap, n, format_out, err, errlen);
            free(heap);
            return rc;
#else
            const size_t len = (size_t)sb->st_size;
            /* Populate now so page faults land in start-up, not in the timed walk. */
            void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
            if (map == MAP_FAILED) {
                fh_errf(err, errlen, "cannot map: %s", strerror(errno));
                return -1;
            }
            madvise(map, len, MADV_SEQUENTIAL);
            const int rc = walk_whole(r, map, len, format_out, err, errlen);
            munmap(map, len);
            return rc;
#endif
        }
    }
    /* Compressed, or a pipe / standard input: streamed.  A pipe's first bytes
     * tell whether it is compressed (gathered: a magic may be split over reads). */
    stream_t s;
    int rc = stream_open(&s, fd, err, errlen);
    int z = compression(head, (size_t)hn);
    if (rc == 0 && !S_ISREG(sb->st_mode)) {
        while (!s.in_eof && s.in_len < 4) {
            const ssize_t k = read(fd, s.in + s.in_len, FH_STREAM_IN - s.in_len);
            if (k < 0) {
                if (errno == EINTR) continue;
                fh_errf(err, errlen, "read failed: %s", strerror(errno));
                rc = -1;
                break;
            }
            if (k == 0) s.in_eof = 1;
            s.in_len += (size_t)k;
            s.in_total += (uint64_t)k;
        }
        z = compression(s.in, s.in_len);
    }
    r->input.compression = (uint32_t)z;
    if (rc == 0) rc = stream_start(&s, z, err, errlen);
    if (rc == 0) rc = walk_stream(r, &s, S_ISREG(sb->st_mode) ? (uint64_t)sb->st_size : 0, format_out, err, errlen);
    stream_close(&s);
    return rc;
}

int fh_lane_input_compression(const fh_lane_t *r) { return (int)r->input.compression; }

int fh_lane_replay_file(fh_lane_t *r, const char *path, int *format_out, char *err, size_t errlen)
{
    if (format_out) *format_out = FH_FMT_UNKNOWN;
    r->input.compression = Z_NONE;
    const int is_stdin = strcmp(path, "-") == 0;
    if (is_stdin && r->route.n_lanes > 1) {
        fh_errf(err, errlen,
                "standard input can be read by one lane only: replay it with one lane, or save it to a file");
        return -1;
    }
    const int fd = is_stdin ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fh_errf(err, errlen, "cannot open %s: %s", is_stdin ? "standard input" : path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        fh_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        fh_errf(err, errlen, "%s is a directory", path);
        close(fd);
        return -1;
    }
    char inner[384] = {0};
    const int rc = replay_fd(r, fd, &sb, format_out, inner, sizeof inner);
    close(fd);
    if (rc != 0) fh_errf(err, errlen, "%s: %s", is_stdin ? "standard input" : path, inner);
    return rc;
}
