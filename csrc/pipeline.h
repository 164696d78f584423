/* pipeline.h -- one lane's pipeline: frame -> net -> session -> decode -> book -> publish.
 *
 * The per-lane context (struct fh_lane) and the inline frame path.  Every
 * arrow is an inlined call: a source's walk loop (src_*.c) calls the sink API
 * at the end of this file (fh_pipe_frame, fh_pipe_record, fh_pipe_pace,
 * fh_pipe_poll, ...) and compiles to one function with no call per packet or
 * message.  The session layer's cold paths (holes, re-requests, silence) call
 * back through its hooks (pipeline.c).  Counters live in the context and are
 * written by its one thread only. */
#ifndef FH_PIPELINE_H
#define FH_PIPELINE_H

#include "hist.h"
#include "itch.h"
#include "net.h"
#include "pitch.h"
#include "publish.h"
#include "session.h"

/* How often (frames) a walk loop applies what is decoded, expires holes and
 * publishes progress.  A stop is looked at before every frame (between
 * windows of records for a full-speed BinaryFILE) and a named segment's
 * counters are refreshed by time (FH_COUNTERS_EVERY_NS), not by this. */
#define FH_POLL_EVERY 4096u

/* A named segment's counters are copied at least this often (writer's TSC ns)
 * while the lane works or paces: on the clock the publisher or the pacing wait
 * has just read, never a clock read of its own (docs/robustness.md). */
#ifndef FH_COUNTERS_EVERY_NS
#define FH_COUNTERS_EVERY_NS 1000000u
#endif

/* A packet's messages are decoded into this many slots before they are
 * applied; a larger packet (jumbo frames) is applied in chunks of this size. */
#define FH_PKT_MSGS 512u

/* The stages above the pipeline (PITCH decode, snapshot recovery), which it
 * reaches only through these: the lane's constructor (lane.c, the layer above
 * them all) hands them in, so no file calls up past its own layer. */
typedef struct fh_pipe_upper {
    /* The messages of a PITCH sequenced unit of stream s, from message `skip`
     * on, into the books (or counted, decode-only mode); one call per
     * datagram.  Returns how many messages were whole (pitch_pipe.h). */
    uint32_t (*walk_pitch)(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count,
                           uint32_t skip);
    /* Snapshot recovery (recovery.h): the session layer's snapshot hook (ctx
     * is the lane), the poll of a posted answer, the last word at the end. */
    void (*recovery_ask)(void *ctx, fh_stream_t *s);
    void (*recovery_poll)(fh_lane_t *r);
    void (*recovery_finish)(fh_lane_t *r);
} fh_pipe_upper_t;

struct fh_lane {
    fh_stats_t st;
    int stop;                       /* set by fh_lane_stop(), read with __atomic */
    uint64_t counters_due;          /* the lane looks up when its clock (TSC ns) reaches this: a named segment's
                                     * next counter refresh; UINT64_MAX without one; 0 once asked to stop */
    uint32_t mode;                  /* enum fh_mode */
    uint64_t progress_done;         /* bytes of the current input walked */
    uint64_t progress_total;
    uint32_t progress_by_input;     /* the input layer reports progress (compressed bytes), not the walk */
    uint32_t input_compression;     /* of the last input opened: 0 none, 1 gzip, 2 zstd */
    fh_book_t book;
    fh_shm_t shm;
    fh_tsc_t tsc;
    uint8_t *seen;                  /* per stream: bitmap of the locates it carried */
    uint32_t seen_bytes;            /* bytes of one stream's bitmap */
    uint32_t lane, n_lanes;         /* this context's share of the input (see fh_lane_new) */
    uint32_t own_all;               /* steered upstream (a NIC queue per lane): keep every frame seen */
    uint64_t *src_errors;           /* whole-input errors: counted by lane 0 only */
    uint64_t discard[32];           /* where other lanes count them instead */
    fh_lane_cfg_t cfg;            /* as created (lanes copy it) */
    /* Index mode (index.c, the rewind server's capture index): every MoldUDP64
     * datagram goes to index_frame instead of the session layer; NULL otherwise. */
    void (*index_frame)(fh_lane_t *r, const fh_udp_view_t *u, size_t frame_len);
    void *index;
    uint32_t n_lines;               /* configured channel lines (0: steer by stream order) */
    uint32_t line_last;             /* last line matched: datagrams come in runs */
    struct { uint32_t group; uint16_t port; uint16_t lane; uint32_t rr_ip; uint16_t rr_port; uint8_t proto, venue; } lines[64];
    /* Without a config: each UDP destination's protocol, told from its first
     * datagrams (fh_pipe_proto); the same in every lane, which sees every frame. */
    struct { uint32_t ip; uint16_t port; uint8_t proto; uint8_t _pad; } protos[64];
    uint32_t n_protos, proto_last;
    /* Venues: index 0 the ITCH venue (XNAS unless configured), then the PITCH
     * venues; pitch_j: a venue's rank among the PITCH venues (instrument ids). */
    uint32_t n_venues;
    char     venue_names[8][8];
    uint8_t  venue_proto[8], pitch_j[8];
    uint8_t  pitch_default_venue;   /* venue of PITCH streams without a config */
    fh_stream_t *cur;          /* the stream whose datagram is being walked */
    /* PITCH streams by (port, unit): a feed's units take turns packet by
     * packet, so the stream table's last-hit cache would miss on most of them. */
    struct { uint16_t port; uint16_t idx[256]; } punits[4];   /* idx: stream index + 1, 0 = not yet */
    uint32_t n_punits;
    uint32_t venues_mask;           /* venues of this lane's streams (bit i: venue i) */
    uint32_t cbbo_wanted;           /* consolidate once two venues are seen (fh_lane_set_consolidate 1) */
    fh_pitch_ids_t pids;            /* PITCH symbol -> instrument id (this lane's units) */
    uint32_t rr_ip;                 /* default re-request server (host order), 0 = none */
    uint16_t rr_port;
    fh_hist_t *lat;                 /* FH_HIST_STAGES latency histograms, or NULL (off) */
    uint64_t lat_due;               /* when the frame being handled was due/received (TSC ns); 0 = now */
    uint64_t t_dec, t_book;         /* latency on: when the last packet applied was decoded, booked (TSC ticks) */
    uint32_t lat_due_seen;          /* some packet had a receive/due time (paced, DPDK) */
    uint32_t lat_every, lat_left;   /* stamp every lat_every-th frame; frames until the next */
    uint32_t lat_on;                /* the frame being handled is stamped */
    uint32_t pkt_msgs;              /* messages the frame being handled applied */
    uint32_t n_msgs;                /* decoded messages waiting in msgs */
    fh_book_op_t *msgs;            /* FH_PKT_MSGS decoded messages of the packet being applied */
    uint32_t bin_in_win;            /* BinaryFILE: records of the file in the current window */
    double pace_scale;              /* wall ns per capture ns (1/speed); 0 = no pacing */
    uint64_t pace_t0, pace_w0;      /* first capture time paced, and the wall time it was replayed at */
    char shm_name[256];
    /* Snapshot recovery (recovery.c): which streams, and the mailbox to the
     * thread that fetches snapshots (ticket/posted written with release). */
    struct {
        uint32_t all;               /* every stream; else lines with .snap */
        uint32_t blocking;          /* a file replay: wait for the snapshot in place */
        uint64_t timeout_ns;        /* one deadline per request: t0 + this (fetch, retries and all) */
        uint64_t max_bytes;         /* the largest snapshot taken (fh_snapshot_max_bytes of the capacities) */
        uint32_t ticket;            /* last request posted (0 = none yet) */
        uint32_t claimed;           /* ticket answered (by the poster) or given up (by the lane) */
        uint32_t posted;            /* ticket of the answer in buf/len/seq/failed */
        uint32_t stream;            /* index of the stream the request is for */
        uint32_t asked;             /* a request is outstanding */
        uint32_t finishing;         /* the input is over: no snapshot will come */
        uint16_t port;
        uint8_t  session[FH_MOLD_SESSION_LEN];
        uint32_t group;
        uint64_t next_seq;          /* the stream's next sequence when asked: the snapshot may not be older */
        uint64_t t0;                /* when it was asked (CLOCK_MONOTONIC ns) */
        uint8_t *buf;               /* the answer's messages (malloc'd by the poster, freed here) */
        size_t   len;
        uint64_t seq;
        int      failed;
        int      too_big;           /* the answer was longer than max_bytes: refused, not copied */
        uint64_t line_mask;         /* configured lines (bit i: lines[i]) with snapshot recovery */
    } snap;
    fh_pipe_upper_t up;             /* the stages above, as the constructor gave them */
    /* Last: its stream table is read per frame, the rest (held-packet pool,
     * lines, re-request client) is cold; kept away from the per-message fields above. */
    fh_session_t sess;              /* MoldUDP64 streams, holes, lines (session.h) */
};

/* A lane for cfg (first == NULL) or lane `lane` of first's replay, reaching
 * the stages above through `up` (lane.c: fh_lane_new, fh_lane_new_peer). */
fh_lane_t *fh_pipe_create(const fh_lane_cfg_t *cfg, fh_lane_t *first, uint32_t lane,
                            const fh_pipe_upper_t *up, char *err, size_t errlen);

/* Every FH_POLL_EVERY frames (and at the end): progress and counters out (pipeline.c). */
void fh_pipe_poll_slow(fh_lane_t *r, uint64_t done);

FH_INLINE int fh_pipe_should_stop(const fh_lane_t *r)
{
    return __atomic_load_n(&r->stop, __ATOMIC_RELAXED);
}

/* The counters to a named segment now, `now` being the writer's TSC ns (pipeline.c). */
void fh_pipe_counters_slow(fh_lane_t *r, uint64_t now);
/* The lane's clock reached counters_due: a stop request (it sets it to 0) or
 * the counters due.  Returns 1 when asked to stop (pipeline.c). */
int  fh_pipe_attention(fh_lane_t *r, uint64_t now);

/* The counters to the segment when they are due by `now` (TSC ns a caller
 * already read; 0: no time read, nothing to do). */
FH_INLINE void fh_pipe_counters_tick(fh_lane_t *r, uint64_t now)
{
    if (FH_UNLIKELY(now >= __atomic_load_n(&r->counters_due, __ATOMIC_RELAXED)) && now && r->shm.named)
        fh_pipe_counters_slow(r, now);
}

/* Before each frame or record: one compare of the publish time the previous
 * frame's publishing read (0 if it published nothing) with counters_due,
 * which is 0 once a stop is asked for (fh_lane_stop), the next counter
 * refresh of a named segment, else never (UINT64_MAX).  Returns 1 when the
 * replay was asked to stop: the frame is not handled. */
FH_INLINE int fh_pipe_next(fh_lane_t *r)
{
    const uint64_t now = r->book.now;
    if (FH_LIKELY(now < __atomic_load_n(&r->counters_due, __ATOMIC_RELAXED))) return 0;
    return fh_pipe_attention(r, now);
}

/* Decode one block into m and count it: 1 if it is a message, 0 if it was
 * rejected (counted by reason). */
FH_INLINE int fh_pipe_decode_one(fh_lane_t *r, const uint8_t *p, size_t len, fh_book_op_t *m)
{
    const int rc = fh_itch_decode_inline(p, len, m);
    if (FH_LIKELY(rc == FH_DECODE_OK)) {
        r->st.messages++;
        r->st.by_type[m->type]++;
        r->st.checksum += fh_itch_fold(m);
        return 1;
    }
    r->st.errors[rc == FH_DECODE_BAD_LENGTH ? FH_ERR_ITCH_BAD_LENGTH : FH_ERR_ITCH_UNKNOWN_TYPE]++;
    return 0;
}

/* One ITCH message (a BinaryFILE record, or a block of a packet outside the
 * sequenced path), len > 0: decoded and applied; the caller flushes. */
FH_INLINE void fh_pipe_msg(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    fh_book_op_t m;
    if (fh_pipe_decode_one(r, p, len, &m) && r->mode != FH_MODE_DECODE) fh_book_apply_batch(&r->book, &m, 1);
}

/* Apply the decoded messages waiting in r->msgs to the books. */
FH_INLINE void fh_pipe_apply_decoded(fh_lane_t *r)
{
    const uint32_t n = r->n_msgs;
    fh_book_apply_batch(&r->book, r->msgs, n);
    r->pkt_msgs += n;
    r->n_msgs = 0;
}

/* Walk sink of the sequenced path: decode one block into the packet's array
 * (the decode stage); the books take the whole packet after. */
FH_INLINE void fh_pipe_decode(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    if (FH_UNLIKELY(r->n_msgs == FH_PKT_MSGS)) fh_pipe_apply_decoded(r);
    r->n_msgs += (uint32_t)fh_pipe_decode_one(r, p, len, &r->msgs[r->n_msgs]);
}

/* Apply a datagram's blocks in sequence: what is already applied is counted
 * as duplicates (the other line's copy, a retransmission, an overlap).
 * Returns 1 if the whole datagram was a duplicate, 2 if it was wholly behind
 * the stream and part of it was given up as a gap (late: never applied),
 * else 0; with `ledger` (a constant), also counts it in the packet ledger. */
FH_INLINE int fh_pipe_apply(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq,
                            uint32_t count, const int ledger)
{
    uint32_t skip = 0;
    if (FH_UNLIKELY(seq < s->next_seq)) {
        const uint64_t behind = s->next_seq - seq;
        /* Wholly applied already (the other line's copy, usually): nothing in
         * it will be used, so its blocks are not even walked. */
        if (behind >= count) {
            if (FH_UNLIKELY(seq < s->lost_top) && fh_session_was_lost(s, seq, count)) {
                r->st.late += count;
                if (ledger) r->st.pkt_late++;
                return 2;
            }
            r->st.duplicates += count;
            if (ledger) r->st.pkt_duplicate++;
            return 1;
        }
        skip = (uint32_t)behind;
    }
    if (r->seen) r->book.stream_seen = r->seen + (size_t)(s - r->sess.streams.v) * r->seen_bytes;
    r->book.stream_gapped = s->gapped;
    const int pitch = s->proto == FH_PROTO_PITCH;
    uint32_t whole;
    if (FH_UNLIKELY(r->mode == FH_MODE_DECODE)) {
        whole = pitch ? r->up.walk_pitch(r, s, p, len, count, skip)
                      : fh_mold_walk(p, len, count, skip, fh_pipe_msg, r, &r->st);
        r->pkt_msgs += whole > skip ? whole - skip : 0;
        if (r->lat_on) r->t_dec = r->t_book = fh_tsc_ticks(&r->tsc);
    } else {
        /* Three stages per packet: decode every block, apply them all to the
         * books, publish each instrument touched once. */
        whole = pitch ? r->up.walk_pitch(r, s, p, len, count, skip)
                      : fh_mold_walk(p, len, count, skip, fh_pipe_decode, r, &r->st);
        if (r->lat_on) r->t_dec = fh_tsc_ticks(&r->tsc);
        fh_pipe_apply_decoded(r);
        if (r->lat_on) r->t_book = fh_tsc_ticks(&r->tsc);
        fh_book_flush_pending(&r->book);
    }
    /* Blocks a short packet promised but did not carry stay unreceived: a later
     * copy of them is applied, not called a duplicate. */
    if (seq + whole > s->next_seq) s->next_seq = seq + whole;
    if (ledger) r->st.pkt_applied++;
    return 0;
}

/* A data datagram of stream s (MoldUDP64 or a PITCH unit) past its header
 * checks: applied when in sequence (the hot path), else to the session layer,
 * which holds it behind the hole; the ledger says which. */
FH_INLINE void fh_pipe_sequenced(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq,
                                 uint32_t count)
{
    if (FH_UNLIKELY(!fh_session_in_sequence(s, seq))) {
        fh_session_packet(&r->sess, s, p, len, seq, count);
        return;
    }
    (void)fh_pipe_apply(r, s, p, len, seq, count, 1);
}

/* One MoldUDP64 datagram of stream s: sequencing (A/B arbitration), then its
 * blocks.  In sequence is the hot path; a packet past a hole goes to the
 * session layer, which holds it (up to the gap window) for the other line to
 * fill the hole first. */
FH_INLINE void fh_pipe_mold(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s)
{
    fh_stats_t *st = &r->st;
    const uint8_t *p = u->payload;
    st->mold_packets++;
    const uint64_t seq = fh_be64(p + 10);
    const uint32_t count = fh_be16(p + 18);

    if (FH_UNLIKELY(count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END)) {
        if (count == FH_MOLD_END) {
            st->end_of_session++;
            if (s) s->ended = 1;
        } else {
            st->heartbeats++;
        }
        /* Both carry the next sequence: anything before it not yet seen is missing. */
        if (s && (seq > s->next_seq || s->hole_since)) fh_session_heartbeat(&r->sess, s, seq);
        if (u->len != FH_MOLD_HLEN) st->errors[FH_ERR_MOLD_TRAILING]++;
        return;
    }
    if (FH_UNLIKELY(seq > UINT64_MAX - count)) {
        /* Its last message's number would wrap 2^64: no real session gets there. */
        st->errors[FH_ERR_MOLD_SEQ_IMPLAUSIBLE]++;
        st->pkt_rejected++;
        return;
    }
    if (FH_UNLIKELY(!s)) {
        st->errors[FH_ERR_STREAM_TABLE_FULL]++;
        r->book.stream_seen = NULL;
        st->pkt_applied++;
        fh_mold_walk(p, u->len, count, 0, fh_pipe_msg, r, st);
        fh_book_flush_pending(&r->book);
        return;
    }
    fh_pipe_sequenced(r, s, p, u->len, seq, count);
}

/* One PITCH sequenced unit of stream s (NULL: the stream table is full):
 * sequencing per unit exactly as a MoldUDP64 datagram's, then its messages
 * (pitch_pipe.c; out of line, one call per datagram).  Hdr Length == payload
 * length was checked by the caller. */
void fh_pipe_pitch(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s);

/* The protocol of a UDP destination without a config: told once from its
 * first datagram that is clearly one or the other (pipeline.c), then cached. */
uint32_t fh_pipe_proto_slow(fh_lane_t *r, const fh_udp_view_t *u);
FH_INLINE uint32_t fh_pipe_proto(fh_lane_t *r, const fh_udp_view_t *u)
{
    const uint32_t i = r->proto_last;
    if (FH_LIKELY(i < r->n_protos && r->protos[i].ip == u->dst_ip && r->protos[i].port == u->dst_port))
        return r->protos[i].proto;
    return fh_pipe_proto_slow(r, u);
}

void fh_pipe_venue_seen(fh_lane_t *r, uint32_t v);

/* Remember the stream of a PITCH (port, unit) for the direct lookup (cold:
 * once per unit, or per packet of a fifth port, which the table serves). */
void fh_pipe_punit_remember(fh_lane_t *r, uint16_t port, uint8_t unit, const fh_stream_t *s);

FH_INLINE void fh_pipe_datagram(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s, uint32_t proto)
{
    if (proto == FH_PROTO_PITCH) fh_pipe_pitch(r, u, s);
    else fh_pipe_mold(r, u, s);
}

/* ------------------------------------------------------------ the sink API
 *
 * What a source (src_*.c, dpdk/src_dpdk.c) may call: frames or records, the
 * capture's clock, pacing, polling, its own errors.  Nothing else of the
 * context is a source's business. */

/* One captured frame.  With several lanes every lane sees every frame and
 * keeps the same stream table (streams are numbered in order of first
 * appearance), and a frame is processed by the lane its stream belongs to;
 * what cannot be attributed to a stream belongs to lane 0. */
FH_INLINE void fh_pipe_frame(fh_lane_t *r, const uint8_t *f, size_t len, uint64_t rx_ts)
{
    fh_udp_view_t u;
    fh_stats_t *st = &r->st;
    const int lane0 = r->lane == 0 || r->own_all;
    if (FH_UNLIKELY(!fh_net_parse(f, len, &u, lane0 ? st->errors : r->discard))) {
        if (lane0) { st->packets++; st->bytes += len; st->pkt_rejected++; }
        return;
    }
    uint32_t proto = FH_PROTO_MOLD, venue = 0;
    if (FH_UNLIKELY(r->n_lines)) {
        /* A config names the channels: steer by destination group, as the NIC would. */
        uint32_t i = r->line_last;
        if (r->lines[i].group != u.dst_ip || r->lines[i].port != u.dst_port) {
            for (i = 0; i < r->n_lines; i++)
                if (r->lines[i].group == u.dst_ip && r->lines[i].port == u.dst_port) break;
            if (i == r->n_lines) {
                if (lane0) {
                    st->packets++; st->bytes += len; st->pkt_rejected++;
                    st->errors[u.len < FH_MOLD_HLEN ? FH_ERR_MOLD_TRUNCATED : FH_ERR_UNCONFIGURED]++;
                }
                return;
            }
            r->line_last = i;
        }
        if (r->lines[i].lane != r->lane && !r->own_all) return;
        proto = r->lines[i].proto;
        venue = r->lines[i].venue;
    } else if (FH_LIKELY(!r->index_frame)) {
        proto = fh_pipe_proto(r, &u);
        venue = proto == FH_PROTO_PITCH ? r->pitch_default_venue : 0;
    }
    /* The stream: a MoldUDP64 session, or a PITCH unit, on this UDP port. */
    uint8_t pkey[FH_MOLD_SESSION_LEN];
    const uint8_t *key = u.payload, *line_key = u.payload;
    uint64_t seq0;
    if (FH_LIKELY(proto == FH_PROTO_MOLD)) {
        if (FH_UNLIKELY(u.len < FH_MOLD_HLEN)) {
            if (lane0) { st->packets++; st->bytes += len; st->errors[FH_ERR_MOLD_TRUNCATED]++; st->pkt_rejected++; }
            return;
        }
        if (FH_UNLIKELY(r->index_frame != NULL)) { r->index_frame(r, &u, len); return; }
        seq0 = fh_be64(u.payload + 10);
    } else {
        if (FH_UNLIKELY(u.len < FH_PITCH_UNIT_HLEN || fh_le16(u.payload) != u.len)) {
            if (lane0) {
                st->packets++; st->bytes += len; st->pkt_rejected++;
                st->errors[u.len < FH_PITCH_UNIT_HLEN ? FH_ERR_PITCH_TRUNCATED : FH_ERR_PITCH_HDR_LENGTH]++;
            }
            return;
        }
        static const uint8_t pitch_line_key[FH_MOLD_SESSION_LEN] = {0xFF, 'P', 'I', 'T', 'C', 'H', 0, 0, 0, 0};
        fh_pitch_stream_key(pkey, u.payload[3]);
        key = pkey;
        line_key = pitch_line_key;
        seq0 = fh_le32(u.payload + 4);
    }
    const uint32_t before = r->sess.streams.n;
    uint64_t fresh = 0;
    fh_stream_t *s = NULL;
    uint16_t *pslot = NULL;
    if (proto == FH_PROTO_PITCH) {
        for (uint32_t k = 0; k < r->n_punits; k++)
            if (r->punits[k].port == u.dst_port) { pslot = &r->punits[k].idx[u.payload[3]]; break; }
        if (pslot && *pslot) s = &r->sess.streams.v[*pslot - 1];
    }
    if (FH_LIKELY(!s)) {
        s = fh_mold_lookup(&r->sess.streams, u.dst_port, key, seq0, &fresh);
        if (proto == FH_PROTO_PITCH && s) fh_pipe_punit_remember(r, u.dst_port, u.payload[3], s);
    }
    if (FH_UNLIKELY(r->sess.streams.n != before) && s) {
        s->proto = (uint8_t)proto;
        s->venue = (uint8_t)venue;
        s->unit = proto == FH_PROTO_PITCH ? u.payload[3] : 0;
        /* A new stream: its re-request server is its line's, else the default. */
        s->rr_ip = r->rr_ip;
        s->rr_port = r->rr_port;
        if (r->n_lines && r->lines[r->line_last].rr_ip) {
            s->rr_ip = r->lines[r->line_last].rr_ip;
            s->rr_port = r->lines[r->line_last].rr_port;
        }
        s->group = u.dst_ip;
        s->snap_on = (uint8_t)(r->snap.all || (r->n_lines && (r->snap.line_mask >> r->line_last & 1u)));
        if (FH_UNLIKELY(!(r->venues_mask >> venue & 1))) fh_pipe_venue_seen(r, venue);
        if (proto == FH_PROTO_PITCH) {
            /* MoldUDP64 re-request and GLIMPSE do not speak PITCH (Cboe's GRP and
             * Spin are other protocols): a PITCH unit relies on its A/B lines. */
            s->rr_ip = 0;
            s->snap_on = 0;
        }
    }
    if (FH_UNLIKELY(r->n_lanes > 1) && !r->n_lines && !r->own_all) {
        const uint32_t owner = s ? (uint32_t)(s - r->sess.streams.v) % r->n_lanes : 0;
        if (owner != r->lane) return;
    }
    if (FH_UNLIKELY(r->sess.streams.n != before)) {
        st->streams++;
        /* Late join (its first packet is not the session's first): nothing of
         * it is applied before its snapshot. */
        if (s && s->snap_on && seq0 > 1 && r->mode != FH_MODE_DECODE)
            fh_session_snapshot_wait(&r->sess, s);
        else if (s)
            fh_session_start(&r->sess, s, seq0);
    }
    st->packets++;
    st->bytes += len;
    rx_ts = fh_session_clock(&r->sess, rx_ts);
    r->book.rx_ts = rx_ts;
    r->book.now = 0;
    fh_session_supervise(&r->sess, &u, line_key, s, rx_ts);
    if (FH_LIKELY(!r->lat) || FH_LIKELY(--r->lat_left != 0)) {
        fh_pipe_datagram(r, &u, s, proto);
        return;
    }
    r->lat_left = r->lat_every;
    /* Latency on: stamp the start, the stages (fh_pipe_apply) and the end
     * of this packet's work, as raw TSC ticks (a stamp is one rdtsc, ~8 ns
     * here; each interval is converted once).  Only packets that applied
     * messages count: a copy already applied from the other line, a heartbeat
     * or a packet held behind a hole updates no book, so it has no "rx to
     * published".  Without a receive/due time (full-speed replay: rx is when
     * the walk reached the packet) rx->start is 0 and rx->published is the
     * processing time: those two are filled in when read, not recorded.
     * With --latency-sample N only every Nth frame is stamped. */
    const fh_tsc_t *tc = &r->tsc;
    const uint64_t c0 = fh_tsc_ticks(tc);
    r->pkt_msgs = 0;
    r->lat_on = 1;
    fh_pipe_datagram(r, &u, s, proto);
    r->lat_on = 0;
    if (!r->pkt_msgs) return;
    const uint64_t c1 = fh_tsc_ticks(tc);
    fh_hist_t *h = r->lat;
    const uint64_t proc = fh_tsc_delta_ns(tc, c1 - c0);
    fh_hist_record(&h[FH_LAT_PROCESSING], proc);
    fh_hist_record(&h[FH_LAT_DECODE], fh_tsc_delta_ns(tc, r->t_dec - c0));
    if (r->mode != FH_MODE_DECODE) {
        fh_hist_record(&h[FH_LAT_BOOK], fh_tsc_delta_ns(tc, r->t_book - r->t_dec));
        fh_hist_record(&h[FH_LAT_PUBLISH], fh_tsc_delta_ns(tc, c1 - r->t_book));
    }
    fh_hist_record(&h[FH_LAT_MSGS_PER_PACKET], r->pkt_msgs);
    if (r->lat_due) {
        const uint64_t t0 = fh_tsc_ticks_ns(tc, c0);
        const uint64_t late = t0 > r->lat_due ? t0 - r->lat_due : 0;
        fh_hist_record(&h[FH_LAT_RX_TO_START], late);
        fh_hist_record(&h[FH_LAT_RX_TO_PUBLISHED], late + proc);
        r->lat_due_seen = 1;
    }
}

/* Pacing (--speed): hold the walk until wall time catches up with the
 * capture's clock, scaled.  A busy wait on the TSC, checking the stop flag;
 * a replay that falls behind simply runs at full speed until it catches up. */
FH_INLINE void fh_pipe_pace(fh_lane_t *r, uint64_t ts)
{
    if (FH_LIKELY(r->pace_scale == 0.0) || ts == 0) return;
    if (FH_UNLIKELY(r->pace_t0 == 0)) {
        r->pace_t0 = ts;
        r->pace_w0 = fh_tsc_ns(&r->tsc);
        r->lat_due = r->pace_w0;
        return;
    }
    if (ts <= r->pace_t0) { r->lat_due = r->pace_w0; return; }   /* as early as the first: due at once */
    /* Capped at 2^62 ns (146 years): a hostile timestamp jump must not
     * overflow the cast (undefined) or wrap the target. */
    const double wait_ns = (double)(ts - r->pace_t0) * r->pace_scale;
    const uint64_t target = r->pace_w0 + (wait_ns < 4.6e18 ? (uint64_t)wait_ns : (uint64_t)1 << 62);
    /* Latency counts from when the packet was due, not from when a late
     * replay got to it: falling behind shows up (coordinated omission). */
    r->lat_due = target;
    uint64_t prev = fh_tsc_ns(&r->tsc), now;
    /* Waiting is when a reader sees the counters move: refreshed on the
     * clock this loop reads anyway, however far apart the packets are. */
    fh_pipe_counters_tick(r, prev);
    while ((now = fh_tsc_ns(&r->tsc)) < target) {
        /* Measuring: while waiting, a gap between two reads is time the
         * machine took the core away (interrupt, preemption, hypervisor). */
        if (FH_UNLIKELY(now - prev > 1000) && r->lat) fh_hist_record(&r->lat[FH_LAT_IDLE_GAPS], now - prev);
        prev = now;
        if (fh_pipe_should_stop(r)) return;
        fh_pipe_counters_tick(r, now);
        FH_CPU_RELAX();
    }
}

/* A BinaryFILE window: records decoded so far applied as one batch and
 * published once per instrument they touched. */
FH_INLINE void fh_pipe_window_apply(fh_lane_t *r)
{
    if (!r->n_msgs) return;
    fh_pipe_apply_decoded(r);
    fh_book_flush_pending(&r->book);
    fh_pipe_counters_tick(r, r->book.now);      /* the window's publish time, before it is cleared */
    r->book.now = 0;
}

/* Records per window: long enough for the book's prefetch (16 messages ahead)
 * to run ahead of applying and for publishing to conflate (128 measured 15%
 * faster than 64 on a full day in the default mode, 256 no faster), short
 * enough that a window is a few microseconds of a busy market and its lines
 * stay in L1/L2. */
#ifndef FH_BIN_WINDOW
#define FH_BIN_WINDOW 128u
#endif

/* How records are applied: fixed for a whole input, so a walk reads it once
 * (fh_pipe_record_mode) and its loop keeps it in a register. */
#define FH_REC_EACH  1u             /* each record applied (and published) as it comes, not in windows */
#define FH_REC_PACED 2u             /* held until the ITCH timestamp falls due (--speed) */
#define FH_REC_LANES 4u             /* several lanes: keep only this lane's records */

FH_INLINE uint32_t fh_pipe_record_mode(const fh_lane_t *r)
{
    const int paced = r->pace_scale != 0.0;
    return (paced || r->mode == FH_MODE_DECODE ? FH_REC_EACH : 0u) | (paced ? FH_REC_PACED : 0u) |
           (r->n_lanes > 1 ? FH_REC_LANES : 0u);
}

/* One BinaryFILE record (an ITCH message with no session layer), len bytes
 * after its 2-byte length; `how` is fh_pipe_record_mode(r).  It counts as one
 * "packet".  Returns 0, or when the replay was asked to stop: 1 (paced,
 * looked at before every record) the record not handled, 2 (full speed,
 * looked at when a window of FH_BIN_WINDOW records ends) it was.  With several lanes a record belongs to the lane of its stock
 * locate.  Full-speed replays decode records in windows of FH_BIN_WINDOW
 * records of the file -- counted over every lane's records, so each
 * instrument is published at the same points whatever the number of lanes --
 * applied as one batch; paced replays (and decode-only) apply each record as
 * it falls due. */
FH_INLINE int fh_pipe_record(fh_lane_t *r, uint32_t how, const uint8_t *msg, size_t mlen)
{
    if (FH_UNLIKELY(how & FH_REC_PACED)) {
        /* No capture clock in a BinaryFILE: pace on the ITCH timestamps; a
         * stop asked for while waiting ends the walk before this record. */
        if (mlen >= 11) fh_pipe_pace(r, fh_be48(msg + 5));
        if (FH_UNLIKELY(fh_pipe_next(r))) return 1;
    }
    if (FH_LIKELY(!(how & FH_REC_LANES)) || (mlen >= 3 ? fh_be16(msg + 1) % r->n_lanes : 0) == r->lane) {
        r->st.packets++;
        r->st.bytes += mlen + 2;
        if (FH_LIKELY(mlen != 0)) {
            r->st.pkt_applied++;
            if (FH_LIKELY(!(how & FH_REC_EACH))) {
                fh_pipe_decode(r, msg, mlen);
            } else {
                r->book.now = 0;
                fh_pipe_msg(r, msg, mlen);
                fh_book_flush_pending(&r->book);
            }
        } else {
            r->st.pkt_rejected++;
            r->st.errors[FH_ERR_BINFILE_ZERO_LEN]++;
        }
    }
    if (FH_UNLIKELY(++r->bin_in_win == FH_BIN_WINDOW)) {
        r->bin_in_win = 0;
        fh_pipe_window_apply(r);
        /* At full speed the records go to the books a window at a time: the
         * stop is looked at between windows (and before a walk's first
         * record), which costs the fastest path nothing per record. */
        if (FH_UNLIKELY(!(how & FH_REC_PACED)) && FH_UNLIKELY(fh_pipe_next(r))) return 2;
    }
    return 0;
}

/* The source walked `done` bytes of its input (every FH_POLL_EVERY frames or
 * records, and at the end): whatever is decoded is applied, progress and
 * counters go out.  Returns 1 when the replay was asked to stop. */
FH_INLINE int fh_pipe_poll(fh_lane_t *r, uint64_t done)
{
    fh_pipe_window_apply(r);
    fh_pipe_poll_slow(r, done);
    return fh_pipe_should_stop(r);
}

/* The start of an input: nothing decoded waits, a BinaryFILE window starts
 * with its first record (called by the input layer before the first walk). */
FH_INLINE void fh_pipe_input_start(fh_lane_t *r)
{
    fh_pipe_window_apply(r);
    r->bin_in_win = 0;
}

/* The end of an input (or of what the source could walk of it): a last poll. */
FH_INLINE void fh_pipe_input_end(fh_lane_t *r, uint64_t done)
{
    (void)fh_pipe_poll(r, done);
}

/* A whole-input error of the source's (a truncated or corrupt record, a link
 * type it cannot read): counted once, by lane 0. */
FH_INLINE void fh_pipe_src_error(fh_lane_t *r, int code)
{
    r->src_errors[code]++;
}

/* The capture's clock (first and last timestamps, ns since the epoch). */
FH_INLINE void fh_pipe_capture_ts(fh_lane_t *r, uint64_t ts)
{
    if (FH_UNLIKELY(r->st.first_ts_ns == 0)) r->st.first_ts_ns = ts;
    r->st.last_ts_ns = ts;
}

/* Live sources (DPDK): a burst received at rx (TSC ns): latency counts from it. */
FH_INLINE void fh_pipe_burst(fh_lane_t *r, uint64_t rx)
{
    r->lat_due = rx;
}

/* Live sources, when nothing arrives: receive time moves on, so gap windows
 * and silence expire on the clock, not only on the next packet. */
void fh_pipe_idle(fh_lane_t *r, uint64_t now);
/* Live sources: the NIC's own drop counters join ours. */
void fh_pipe_nic_counters(fh_lane_t *r, uint64_t imissed, uint64_t ierrors, uint64_t rx_nombuf);
/* Live sources: time spent receiving; the pipeline's clock (TSC ns). */
void fh_pipe_elapsed(fh_lane_t *r, uint64_t ns);
uint64_t fh_pipe_clock_ns(fh_lane_t *r);
int fh_pipe_all_ended(const fh_lane_t *r);

#endif
