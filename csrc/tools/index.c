/* index.c -- the rewind server's capture index (fh_api.h, "capture index").
 *
 * A replay context in index mode: the input layer opens, decompresses and
 * recognises the input, the walkers read its records, the pipeline's frame
 * path parses Ethernet/VLAN/IPv4/UDP and checks the MoldUDP64 header, all
 * with the replay's rules and counters -- and then hands the datagram here
 * (struct fh_lane.index_frame) instead of to the session layer.  Blocks are
 * walked by the same fh_mold_walk (same overrun, zero-length and trailing
 * rules and counters) and copied, wire block and all, into per-session
 * storage: the input may be a stream whose buffer is reused.
 *
 * Per session the blocks arrive mostly in sequence: a block past the highest
 * sequence kept is appended (its storage stays sorted and contiguous, ready
 * to serve); one at or below it is looked up (binary search) and is either
 * a copy of a message kept (the other line's copy, a retransmission: counted,
 * not stored) or fills a hole ("late": stored aside, merged in at the end).
 * The first copy in capture order of each (session, sequence) is kept.
 * Start-up work: allocations grow as needed, out of memory stops the walk. */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

typedef struct ix_session {
    uint8_t name[FH_MOLD_SESSION_LEN];
    uint64_t n, cap;                /* messages kept, in ascending sequence order */
    uint64_t *seqs;
    int64_t *offs;                  /* cap + 1 entries; offs[n] = bytes */
    uint8_t *blob;
    uint64_t bcap;
} ix_session_t;

/* A block at or below its session's highest kept sequence, not a copy of a
 * kept one: it fills a hole (merged at the end). */
typedef struct ix_late {
    uint64_t seq, order, off;       /* off: into late_bytes */
    uint32_t sid, len;              /* len: the wire block, length prefix included */
} ix_late_t;

struct fh_index {
    fh_lane_t *r;
    ix_session_t *s;
    uint32_t n_s, cap_s, last_s;
    ix_late_t *late;
    uint64_t n_late, cap_late;
    uint8_t *late_bytes;
    uint64_t late_len, late_cap;
    uint64_t blocks, duplicates, mismatch;
    uint64_t pitch_units;           /* datagrams that frame as Cboe PITCH sequenced units: not indexed */
    /* The datagram being walked: its session, first sequence, and where the
     * block after the last one handed over starts (and its number). */
    uint32_t sid;
    uint64_t seq0, next_i;
    const uint8_t *next_pos;
    int oom, stopped;
};

static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem, uint64_t extra)
{
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)(c + extra) * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void oom(fh_index_t *ix)
{
    ix->oom = 1;
    fh_lane_stop(ix->r);
}

static int session_append(ix_session_t *s, uint64_t seq, const uint8_t *block, uint32_t len)
{
    if (s->n == s->cap) {
        uint64_t c = s->cap, c2 = s->cap;
        if (grow((void **)&s->seqs, &c, s->n + 1, sizeof *s->seqs, 0) ||
            grow((void **)&s->offs, &c2, s->n + 1, sizeof *s->offs, 1))
            return -1;
        if (!s->n) s->offs[0] = 0;
        s->cap = c < c2 ? c : c2;
    }
    const uint64_t at = (uint64_t)s->offs[s->n];
    if (grow((void **)&s->blob, &s->bcap, at + len, 1, 0)) return -1;
    memcpy(s->blob + at, block, len);
    s->seqs[s->n] = seq;
    s->offs[++s->n] = (int64_t)(at + len);
    return 0;
}

/* Position of seq among s's kept sequences, or -1. */
static int64_t session_find(const ix_session_t *s, uint64_t seq)
{
    uint64_t lo = 0, hi = s->n;
    while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (s->seqs[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->seqs[lo] == seq ? (int64_t)lo : -1;
}

/* fh_mold_walk's sink: one non-empty block of the datagram being walked. */
static void ix_block(void *ctx, const uint8_t *msg, size_t mlen)
{
    fh_index_t *ix = ctx;
    if (FH_UNLIKELY(ix->oom)) return;
    /* The walk hands over every whole block but zero-length ones (2 bytes
     * each, counted by the walk): those between the last block and this one
     * still take their sequence numbers. */
    const uint64_t i = ix->next_i + (uint64_t)(msg - 2 - ix->next_pos) / 2;
    ix->next_i = i + 1;
    ix->next_pos = msg + mlen;
    ix->blocks++;
    const uint64_t seq = ix->seq0 + i;
    const uint32_t len = (uint32_t)mlen + 2;
    ix_session_t *s = &ix->s[ix->sid];
    if (FH_LIKELY(s->n == 0 || seq > s->seqs[s->n - 1])) {
        if (session_append(s, seq, msg - 2, len)) oom(ix);
        return;
    }
    const int64_t k = session_find(s, seq);
    if (k >= 0) {
        ix->duplicates++;
        if (s->offs[k + 1] - s->offs[k] != (int64_t)len) ix->mismatch++;
        return;
    }
    if (grow((void **)&ix->late, &ix->cap_late, ix->n_late + 1, sizeof *ix->late, 0) ||
        grow((void **)&ix->late_bytes, &ix->late_cap, ix->late_len + len, 1, 0)) {
        oom(ix);
        return;
    }
    memcpy(ix->late_bytes + ix->late_len, msg - 2, len);
    ix->late[ix->n_late++] = (ix_late_t){seq, ix->blocks, ix->late_len, ix->sid, len};
    ix->late_len += len;
}

static int32_t session_of(fh_index_t *ix, const uint8_t *name)
{
    if (ix->n_s && memcmp(ix->s[ix->last_s].name, name, FH_MOLD_SESSION_LEN) == 0) return (int32_t)ix->last_s;
    for (uint32_t i = 0; i < ix->n_s; i++)
        if (memcmp(ix->s[i].name, name, FH_MOLD_SESSION_LEN) == 0) return (int32_t)(ix->last_s = i);
    if (ix->n_s == ix->cap_s) {
        const uint32_t c = ix->cap_s ? ix->cap_s * 2 : 8;
        ix_session_t *v = realloc(ix->s, (size_t)c * sizeof *v);
        if (!v) return -1;
        ix->s = v;
        ix->cap_s = c;
    }
    ix_session_t *s = &ix->s[ix->n_s];
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, FH_MOLD_SESSION_LEN);
    ix->r->st.streams++;
    return (int32_t)(ix->last_s = ix->n_s++);
}

/* The pipeline's index branch (fh_pipe_frame): a UDP datagram with a whole
 * MoldUDP64 header, counted as fh_pipe_mold counts it. */
static void ix_frame(fh_lane_t *r, const fh_udp_view_t *u, size_t frame_len)
{
    fh_index_t *ix = r->index.ctx;
    fh_stats_t *st = &r->st;
    st->packets++;
    st->bytes += frame_len;
    const uint8_t *p = u->payload;
    if (FH_UNLIKELY(fh_pitch_looks_like(p, u->len))) {
        /* A PITCH unit read as MoldUDP64 would make a garbage session of its
         * bytes: not indexed (the servers speak MoldUDP64 only), counted as a
         * datagram no channel of the index serves; a capture of nothing else
         * is refused whole (fh_index_file). */
        ix->pitch_units++;
        st->pkt_rejected++;
        st->errors[FH_ERR_UNCONFIGURED]++;
        return;
    }
    st->mold_packets++;
    const uint64_t seq = fh_be64(p + 10);
    const uint32_t count = fh_be16(p + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END) {
        if (count == FH_MOLD_END) st->end_of_session++;
        else st->heartbeats++;
        if (u->len != FH_MOLD_HLEN) st->errors[FH_ERR_MOLD_TRAILING]++;
        return;
    }
    if (seq > UINT64_MAX - count) {
        st->errors[FH_ERR_MOLD_SEQ_IMPLAUSIBLE]++;
        st->pkt_rejected++;
        return;
    }
    if (ix->oom) return;
    const int32_t sid = session_of(ix, p);
    if (sid < 0) {
        oom(ix);
        return;
    }
    st->pkt_applied++;
    ix->sid = (uint32_t)sid;
    ix->seq0 = seq;
    ix->next_i = 0;
    ix->next_pos = p + FH_MOLD_HLEN;
    fh_mold_walk(p, u->len, count, 0, ix_block, ix, st);
}

static int late_cmp(const void *a, const void *b)
{
    const ix_late_t *x = a, *y = b;
    if (x->sid != y->sid) return x->sid < y->sid ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int name_cmp(const void *a, const void *b)
{
    return memcmp(((const ix_session_t *)a)->name, ((const ix_session_t *)b)->name, FH_MOLD_SESSION_LEN);
}

/* Merge session s's late blocks late[0, m) (by sequence, then capture
 * order; none a copy of a kept one) into its storage. */
static int merge_late(fh_index_t *ix, ix_session_t *s, const ix_late_t *late, uint64_t m)
{
    uint64_t uniq = 0, bytes = 0;
    for (uint64_t j = 0; j < m; j++) {
        if (j && late[j].seq == late[j - 1].seq) continue;
        uniq++;
        bytes += late[j].len;
    }
    const uint64_t n = s->n + uniq;
    const uint64_t total = (uint64_t)s->offs[s->n] + bytes;
    uint64_t *seqs = malloc((size_t)(n ? n : 1) * sizeof *seqs);
    int64_t *offs = malloc((size_t)(n + 1) * sizeof *offs);
    uint8_t *blob = malloc((size_t)(total ? total : 1));
    if (!seqs || !offs || !blob) {
        free(seqs);
        free(offs);
        free(blob);
        return -1;
    }
    uint64_t a = 0, j = 0, k = 0, at = 0;
    const ix_late_t *kept = NULL;
    while (a < s->n || j < m) {
        if (j < m && kept && late[j].seq == kept->seq) {
            ix->duplicates++;                   /* a later copy of a late block */
            if (late[j].len != kept->len) ix->mismatch++;
            j++;
            continue;
        }
        const uint8_t *src;
        uint32_t len;
        if (j < m && (a == s->n || late[j].seq < s->seqs[a])) {
            kept = &late[j];
            seqs[k] = late[j].seq;
            src = ix->late_bytes + late[j].off;
            len = late[j].len;
            j++;
        } else {
            seqs[k] = s->seqs[a];
            src = s->blob + s->offs[a];
            len = (uint32_t)(s->offs[a + 1] - s->offs[a]);
            a++;
        }
        offs[k++] = (int64_t)at;
        memcpy(blob + at, src, len);
        at += len;
    }
    offs[k] = (int64_t)at;
    free(s->seqs);
    free(s->offs);
    free(s->blob);
    s->seqs = seqs;
    s->offs = offs;
    s->blob = blob;
    s->n = s->cap = n;
    s->bcap = total;
    return 0;
}

/* The walk is over: late blocks merged in, storage trimmed, sessions sorted
 * by name (empty ones dropped). */
static int finish(fh_index_t *ix)
{
    if (ix->n_late) {
        qsort(ix->late, ix->n_late, sizeof *ix->late, late_cmp);
        for (uint64_t j = 0; j < ix->n_late;) {
            uint64_t e = j;
            while (e < ix->n_late && ix->late[e].sid == ix->late[j].sid) e++;
            if (merge_late(ix, &ix->s[ix->late[j].sid], ix->late + j, e - j)) return -1;
            j = e;
        }
    }
    free(ix->late);
    free(ix->late_bytes);
    ix->late = NULL;
    ix->late_bytes = NULL;
    ix->n_late = ix->cap_late = ix->late_len = ix->late_cap = 0;
    uint32_t w = 0;
    for (uint32_t i = 0; i < ix->n_s; i++) {
        ix_session_t *s = &ix->s[i];
        if (!s->n) {
            free(s->seqs);
            free(s->offs);
            free(s->blob);
            continue;
        }
        /* Shrinking: a failure keeps the larger block, which is fine. */
        void *q;
        if ((q = realloc(s->seqs, s->n * sizeof *s->seqs))) s->seqs = q;
        if ((q = realloc(s->offs, (s->n + 1) * sizeof *s->offs))) s->offs = q;
        if ((q = realloc(s->blob, (size_t)s->offs[s->n] ? (size_t)s->offs[s->n] : 1))) s->blob = q;
        ix->s[w++] = *s;
    }
    ix->n_s = w;
    if (w > 1) qsort(ix->s, w, sizeof *ix->s, name_cmp);
    return 0;
}

fh_index_t *fh_index_new(char *err, size_t errlen)
{
    fh_index_t *ix = calloc(1, sizeof *ix);
    if (!ix) {
        fh_errf(err, errlen, "out of memory");
        return NULL;
    }
    fh_lane_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.mode = FH_MODE_DECODE;              /* no books: frames never get past the index branch */
    cfg.max_streams = 1;
    cfg.gap_buffer = 1;
    ix->r = fh_lane_new(&cfg, err, errlen);
    if (!ix->r) {
        free(ix);
        return NULL;
    }
    ix->r->index.ctx = ix;
    ix->r->index.frame = ix_frame;
    return ix;
}

int fh_index_file(fh_index_t *ix, const char *path, int *format_out, char *err, size_t errlen)
{
    int fmt = FH_FMT_UNKNOWN;
    int rc = fh_lane_replay_file(ix->r, path, &fmt, err, errlen);
    if (format_out) *format_out = fmt;
    if (ix->oom) {
        fh_errf(err, errlen, "%s: out of memory indexing the capture", path);
        return -1;
    }
    if (rc >= 0 && fmt == FH_FMT_BINFILE) {
        fh_errf(err, errlen, "%s is a NASDAQ BinaryFILE: it has no MoldUDP64 sessions or sequence numbers", path);
        return -1;
    }
    if (rc >= 0 && ix->pitch_units && ix->n_s == 0) {
        fh_errf(err, errlen,
                "%s is a Cboe PITCH capture (%llu sequenced units, no MoldUDP64 session): only "
                "MoldUDP64 (NASDAQ ITCH) captures can be served",
                path, (unsigned long long)ix->pitch_units);
        return -1;
    }
    if (__atomic_load_n(&ix->stopped, __ATOMIC_RELAXED)) rc = -2;
    if (finish(ix) != 0) {
        fh_errf(err, errlen, "%s: out of memory indexing the capture", path);
        return -1;
    }
    return rc;
}

void fh_index_stop(fh_index_t *ix)
{
    __atomic_store_n(&ix->stopped, 1, __ATOMIC_RELAXED);
    fh_lane_stop(ix->r);
}

void fh_index_stats(const fh_index_t *ix, fh_stats_t *out) { fh_lane_stats(ix->r, out); }

void fh_index_counts(const fh_index_t *ix, uint64_t *blocks, uint64_t *duplicates, uint64_t *duplicate_mismatch)
{
    *blocks = ix->blocks;
    *duplicates = ix->duplicates;
    *duplicate_mismatch = ix->mismatch;
}

uint32_t fh_index_sessions(const fh_index_t *ix) { return ix->n_s; }

int fh_index_session(const fh_index_t *ix, uint32_t k, uint8_t *name, uint64_t *n, const uint64_t **seqs,
                     const int64_t **offsets, const uint8_t **blob)
{
    if (k >= ix->n_s) return -1;
    const ix_session_t *s = &ix->s[k];
    memcpy(name, s->name, FH_MOLD_SESSION_LEN);
    *n = s->n;
    *seqs = s->seqs;
    *offsets = s->offs;
    *blob = s->blob;
    return 0;
}

void fh_index_free(fh_index_t *ix)
{
    if (!ix) return;
    for (uint32_t i = 0; i < ix->n_s; i++) {
        free(ix->s[i].seqs);
        free(ix->s[i].offs);
        free(ix->s[i].blob);
    }
    free(ix->s);
    free(ix->late);
    free(ix->late_bytes);
    fh_lane_free(ix->r);
    free(ix);
}
