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

#include "iex.h"
#include "itch.h"
#include "latency.h"
#include "net.h"
#include "pace.h"
#include "pitch.h"
#include "publish.h"
#include "recovery_mailbox.h"
#include "route.h"
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

/* The pipeline's own parts of a lane. */

/* Progress through the input and the source's whole-input errors (the sink
 * API below: fh_pipe_poll, fh_pipe_src_error, ...). */
typedef struct fh_lane_input {
    uint64_t done;                  /* bytes of the current input walked */
    uint64_t total;
    uint32_t progress_by_input;     /* the input layer reports progress (compressed bytes), not the walk */
    uint32_t compression;           /* of the last input opened: 0 none, 1 gzip, 2 zstd */
    uint32_t records_in_window;     /* BinaryFILE: records of the file in the current window */
    uint32_t _pad;
    uint64_t *errors;               /* whole-input errors: counted by lane 0 only (else into discard) */
    uint64_t discard[32];           /* where other lanes count them instead */
} fh_lane_input_t;

/* The packet being applied: its messages decoded into book operations (the
 * decode stage), then applied as one batch (the book stage). */
typedef struct fh_lane_decoded {
    fh_book_op_t *ops;              /* FH_PKT_MSGS slots */
    uint32_t n;                     /* decoded, waiting to be applied */
    uint32_t applied;               /* messages the frame being handled applied */
    fh_stream_t *stream;            /* the stream whose datagram is being walked */
} fh_lane_decoded_t;

/* Per stream: a bitmap of the instrument ids (locates) it carried, for
 * snapshot recovery and the STALE flags of a gap. */
typedef struct fh_lane_carried {
    uint8_t *bits;                  /* streams x bytes */
    uint32_t bytes;                 /* of one stream's bitmap */
} fh_lane_carried_t;

/* Index mode (tools/index.c, the rewind server's capture index): every
 * MoldUDP64 datagram goes to frame() instead of the session layer. */
typedef struct fh_lane_index {
    void (*frame)(fh_lane_t *r, const fh_udp_view_t *u, size_t frame_len);
    void *ctx;
} fh_lane_index_t;

/* The stages above the pipeline (PITCH decode, snapshot recovery), which it
 * reaches only through these: the lane's constructor (lane.c, the layer above
 * them all) hands them in, so no file calls up past its own layer. */
typedef struct fh_pipe_upper {
    /* The messages of a PITCH sequenced unit of stream s, from message `skip`
     * on, into the books (or counted, decode-only mode); one call per
     * datagram.  Returns how many messages were whole (pitch_pipe.h). */
    uint32_t (*walk_pitch)(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count, uint32_t skip);
    /* The same for the messages of an IEX-TP segment (iex_pipe.h). */
    uint32_t (*walk_iex)(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count, uint32_t skip);
    /* Snapshot recovery (recovery.h): the session layer's snapshot hook (ctx
     * is the lane), the poll of a posted answer, the last word at the end. */
    void (*recovery_ask)(void *ctx, fh_stream_t *s);
    void (*recovery_poll)(fh_lane_t *r);
    void (*recovery_finish)(fh_lane_t *r);
} fh_pipe_upper_t;

/* The lane: one writer thread's whole state, as the parts each stage owns.
 * Hot first: the counters and the attention word every frame reads, then the
 * books and publishing, the parts the frame path reads per datagram, the cold
 * parts, and last the session layer (its stream table is read per frame, the
 * rest of it -- held-packet pool, lines, re-request client -- is cold). */
struct fh_lane {
    fh_stats_t st;                  /* every counter (fh_api.h); written by this lane's thread only */
    int stop;                       /* set by fh_lane_stop(), read with __atomic */
    uint64_t counters_due;          /* the lane looks up when its clock (TSC ns) reaches this: a named segment's
                                     * next counter refresh; UINT64_MAX without one; 0 once asked to stop */
    uint32_t mode;                  /* enum fh_mode */
    fh_lane_input_t input;          /* progress through the input, the source's own errors */
    fh_book_t book;                 /* books (book.h) */
    fh_shm_t shm;                   /* publishing: the segment (shm.h, publish.h) */
    fh_tsc_t tsc;                   /* the clock (tsc.h) */
    fh_lane_carried_t carried;      /* which instruments each stream carried */
    fh_lane_cfg_t cfg;              /* as created (lanes copy it) */
    char shm_name[256];             /* cfg.shm_name's own copy */
    fh_lane_index_t index;          /* index mode (tools/index.c), else off */
    fh_route_t route;               /* routing: lanes, lines, protocols, venues, PITCH units (route.h) */
    fh_latency_t latency;           /* latency measurement (latency.h) */
    fh_lane_decoded_t decoded;      /* the packet being applied: its decoded book operations */
    fh_pace_t pace;                 /* pacing, --speed (pace.h) */
    fh_recovery_mailbox_t recovery; /* snapshot recovery's mailbox (recovery_mailbox.h, recovery.c) */
    fh_pipe_upper_t up;             /* the stages above, as the constructor gave them */
    fh_session_t session;           /* streams, holes, lines, re-requests (session.h) */
};

/* A lane for cfg (first == NULL) or lane `lane` of first's replay, reaching
 * the stages above through `up` (lane.c: fh_lane_new, fh_lane_new_peer). */
fh_lane_t *fh_pipe_create(const fh_lane_cfg_t *cfg, fh_lane_t *first, uint32_t lane, const fh_pipe_upper_t *up,
                          char *err, size_t errlen);

/* Every FH_POLL_EVERY frames (and at the end): progress and counters out (pipeline.c). */
void fh_pipe_poll_slow(fh_lane_t *r, uint64_t done);

FH_INLINE int fh_pipe_should_stop(const fh_lane_t *r) { return __atomic_load_n(&r->stop, __ATOMIC_RELAXED); }

/* The counters to a named segment now, `now` being the writer's TSC ns (pipeline.c). */
void fh_pipe_counters_slow(fh_lane_t *r, uint64_t now);
/* The lane's clock reached counters_due: a stop request (it sets it to 0) or
 * the counters due.  Returns 1 when asked to stop (pipeline.c). */
int fh_pipe_attention(fh_lane_t *r, uint64_t now);

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

/* A symbol seen for the first time (PITCH, IEX: instruments named by symbol,
 * ids given by the decoder): its directory entry ('R': the symbol, a round
 * lot of 100) queued before its first operation, and its venue noted. */
FH_INLINE void fh_pipe_directory(fh_lane_t *r, uint32_t id, uint64_t ts, const void *sym8, uint32_t venue)
{
    fh_book_op_t *d = &r->decoded.ops[r->decoded.n++];
    memset(d, 0, sizeof *d);
    d->type = 'R';
    d->stock_locate = (uint16_t)id;
    d->timestamp = ts;
    memcpy(d->u.R.stock, sym8, 8);
    d->u.R.round_lot_size = 100;
    d->u.R.market_category = ' ';
    r->book.instr[id].venue = (uint8_t)venue;
}

/* Apply the decoded messages waiting in r->decoded.ops to the books. */
FH_INLINE void fh_pipe_apply_decoded(fh_lane_t *r)
{
    const uint32_t n = r->decoded.n;
    fh_book_apply_batch(&r->book, r->decoded.ops, n);
    r->decoded.applied += n;
    r->decoded.n = 0;
}

/* Walk sink of the sequenced path: decode one block into the packet's array
 * (the decode stage); the books take the whole packet after. */
FH_INLINE void fh_pipe_decode(void *ctx, const uint8_t *p, size_t len)
{
    fh_lane_t *r = ctx;
    if (FH_UNLIKELY(r->decoded.n == FH_PKT_MSGS)) fh_pipe_apply_decoded(r);
    r->decoded.n += (uint32_t)fh_pipe_decode_one(r, p, len, &r->decoded.ops[r->decoded.n]);
}

/* The messages of a PITCH unit or an IEX-TP segment (the stages above,
 * one call per datagram). */
FH_INLINE uint32_t fh_pipe_walk_units(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint32_t count,
                                      uint32_t skip)
{
    return s->protocol == FH_PROTO_PITCH ? r->up.walk_pitch(r, s, p, len, count, skip)
                                         : r->up.walk_iex(r, s, p, len, count, skip);
}

/* Apply a datagram's blocks in sequence: what is already applied is counted
 * as duplicates (the other line's copy, a retransmission, an overlap).
 * Returns 1 if the whole datagram was a duplicate, 2 if it was wholly behind
 * the stream and part of it was given up as a gap (late: never applied),
 * else 0; with `ledger` (a constant), also counts it in the packet ledger. */
FH_INLINE int fh_pipe_apply(fh_lane_t *r, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count,
                            const int ledger)
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
    if (r->carried.bits) r->book.stream_seen = r->carried.bits + (size_t)(s - r->session.streams.v) * r->carried.bytes;
    r->book.stream_gapped = s->gapped;
    const uint32_t proto = s->protocol;
    uint32_t whole;
    if (FH_UNLIKELY(r->mode == FH_MODE_DECODE)) {
        whole = proto != FH_PROTO_MOLD ? fh_pipe_walk_units(r, s, p, len, count, skip)
                                       : fh_mold_walk(p, len, count, skip, fh_pipe_msg, r, &r->st);
        r->decoded.applied += whole > skip ? whole - skip : 0;
        if (r->latency.on) r->latency.t_decoded = r->latency.t_booked = fh_tsc_ticks(&r->tsc);
    } else {
        /* Three stages per packet: decode every block, apply them all to the
         * books, publish each instrument touched once. */
        whole = proto != FH_PROTO_MOLD ? fh_pipe_walk_units(r, s, p, len, count, skip)
                                       : fh_mold_walk(p, len, count, skip, fh_pipe_decode, r, &r->st);
        if (r->latency.on) r->latency.t_decoded = fh_tsc_ticks(&r->tsc);
        fh_pipe_apply_decoded(r);
        if (r->latency.on) r->latency.t_booked = fh_tsc_ticks(&r->tsc);
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
        fh_session_packet(&r->session, s, p, len, seq, count);
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
        if (s && (seq > s->next_seq || s->hole_since)) fh_session_heartbeat(&r->session, s, seq);
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

/* One IEX-TP segment of stream s (NULL: the stream table is full), its header
 * checked by the caller (fh_iex_header_ok, a known feed): sequencing by
 * message as a MoldUDP64 datagram's, then its messages (iex_pipe.c). */
void fh_pipe_iex(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s);

void fh_pipe_venue_seen(fh_lane_t *r, uint32_t v);
/* The venue of IEX streams without a config (IEXG, added the first time). */
uint32_t fh_pipe_iex_venue(fh_lane_t *r);

FH_INLINE void fh_pipe_datagram(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s, uint32_t proto)
{
    if (FH_LIKELY(proto == FH_PROTO_MOLD)) fh_pipe_mold(r, u, s);
    else if (proto == FH_PROTO_PITCH) fh_pipe_pitch(r, u, s);
    else fh_pipe_iex(r, u, s);
}

/* A frame rejected before any stream: counted by lane 0 only. */
FH_INLINE void fh_pipe_reject(fh_lane_t *r, size_t len, int lane0, int err)
{
    if (!lane0) return;
    r->st.packets++;
    r->st.bytes += len;
    r->st.pkt_rejected++;
    r->st.errors[err]++;
}

/* ------------------------------------------------------------ the sink API
 *
 * What a source (src_*.c, dpdk/src_dpdk.c) may call: frames or records, the
 * capture's clock, pacing, polling, its own errors.  Nothing else of the
 * context is a source's business. */

/* Latency on, a stamped frame: the start (fh_latency_start: usually the end
 * of the frame before, no clock read), the stages (fh_pipe_apply, on a
 * sample of packets) and the end of this packet's work, as raw TSC ticks (a
 * stamp is one rdtsc, ~10 ns on an AMD EPYC; each interval is converted
 * once).  The end is read for every stamped frame, so that the next one
 * starts there.  Only packets that applied messages count: a copy already
 * applied from the other line, a heartbeat or a packet held behind a hole
 * updates no book, so it has no "rx to published".  Without a receive/due
 * time (full-speed replay: rx is when the walk reached the packet) rx->start
 * is 0 and rx->published is the processing time: those two are filled in
 * when read, not recorded.  With --latency-sample N only every Nth frame is
 * stamped. */
FH_INLINE uint64_t fh_pipe_measure_start(fh_lane_t *r)
{
    fh_latency_t *lat = &r->latency;
    lat->left = lat->every;
    r->decoded.applied = 0;
    lat->on = fh_latency_stages_due(lat);
    return fh_latency_start(lat, &r->tsc);
}

/* The stamped frame's datagram u is handled; the frame ends at frame_end. */
FH_INLINE void fh_pipe_measure_end(fh_lane_t *r, const fh_udp_view_t *u, const uint8_t *frame_end, uint64_t c0)
{
    fh_latency_t *lat = &r->latency;
    const fh_tsc_t *tc = &r->tsc;
    const uint64_t c1 = fh_tsc_ticks(tc);
    fh_latency_end(lat, c1);
    if (r->decoded.applied) {
        fh_latency_record(lat, tc, c0, c1, r->decoded.applied, r->mode == FH_MODE_DECODE);
        /* A sender's transmit stamp right after the datagram (feedhandler
         * send): the wire stages too.  Looked for only on stamped frames. */
        const uint8_t *end = u->payload + u->len;
        if ((size_t)(frame_end - end) >= FH_WIRE_STAMP_LEN && fh_le32(end) == FH_WIRE_STAMP_MAGIC)
            fh_latency_wire(lat, tc, fh_le64(end + 8), c1);
    }
    lat->on = 0;
}

/* One captured frame.  With several lanes every lane sees every frame and
 * keeps the same stream table (streams are numbered in order of first
 * appearance), and a frame is processed by the lane its stream belongs to;
 * what cannot be attributed to a stream belongs to lane 0. */
FH_INLINE void fh_pipe_frame(fh_lane_t *r, const uint8_t *f, size_t len, uint64_t rx_ts)
{
    fh_udp_view_t u;
    fh_stats_t *st = &r->st;
    const int lane0 = r->route.lane == 0 || r->route.own_all;
    if (FH_UNLIKELY(r->latency.hist != NULL)) fh_latency_frame(&r->latency);
    if (FH_UNLIKELY(!fh_net_parse(f, len, &u, lane0 ? st->errors : r->input.discard))) {
        if (lane0) {
            st->packets++;
            st->bytes += len;
            st->pkt_rejected++;
        }
        return;
    }
    uint32_t proto = FH_PROTO_MOLD, venue = 0;
    if (FH_UNLIKELY(r->route.n_lines)) {
        /* A config names the channels: steer by destination group, as the NIC would. */
        uint32_t i = r->route.line_last;
        if (r->route.lines[i].group != u.dst_ip || r->route.lines[i].port != u.dst_port) {
            for (i = 0; i < r->route.n_lines; i++)
                if (r->route.lines[i].group == u.dst_ip && r->route.lines[i].port == u.dst_port) break;
            if (i == r->route.n_lines) {
                fh_pipe_reject(r, len, lane0, u.len < FH_MOLD_HLEN ? FH_ERR_MOLD_TRUNCATED : FH_ERR_UNCONFIGURED);
                return;
            }
            r->route.line_last = i;
        }
        if (r->route.lines[i].lane != r->route.lane && !r->route.own_all) return;
        proto = r->route.lines[i].protocol;
        venue = r->route.lines[i].venue;
    } else if (FH_LIKELY(!r->index.frame)) {
        proto = fh_route_protocol(&r->route, &u);
        venue = proto == FH_PROTO_MOLD                                         ? 0
                : proto == FH_PROTO_PITCH                                      ? r->route.pitch_default_venue
                : FH_LIKELY(r->route.iex_default_venue != FH_ROUTE_VENUE_NONE) ? r->route.iex_default_venue
                                                                               : fh_pipe_iex_venue(r);
    }
    /* The stream: a MoldUDP64 session, or a PITCH unit, on this UDP port. */
    uint8_t pkey[FH_MOLD_SESSION_LEN];
    const uint8_t *key = u.payload, *line_key = u.payload;
    uint64_t seq0;
    if (FH_LIKELY(proto == FH_PROTO_MOLD)) {
        if (FH_UNLIKELY(u.len < FH_MOLD_HLEN)) {
            fh_pipe_reject(r, len, lane0, FH_ERR_MOLD_TRUNCATED);
            return;
        }
        if (FH_UNLIKELY(r->index.frame != NULL)) {
            r->index.frame(r, &u, len);
            return;
        }
        seq0 = fh_be64(u.payload + 10);
    } else if (proto == FH_PROTO_IEX) {
        if (FH_UNLIKELY(u.len < FH_IEX_HLEN)) {
            fh_pipe_reject(r, len, lane0, FH_ERR_IEX_TRUNCATED);
            return;
        }
        if (FH_UNLIKELY(!fh_iex_header_ok(u.payload, u.len))) {
            fh_pipe_reject(r, len, lane0, FH_ERR_IEX_HEADER);
            return;
        }
        if (FH_UNLIKELY(fh_iex_feed_of(fh_iex_proto(u.payload)) == FH_IEX_FEED_NONE)) {
            fh_pipe_reject(r, len, lane0, FH_ERR_IEX_PROTOCOL);
            return;
        }
        /* The line's session is the stream key: a new session id is a session change. */
        fh_iex_stream_key(pkey, u.payload);
        key = line_key = pkey;
        seq0 = fh_iex_first_seq(u.payload) + 1;    /* IEX may number from 0; 0 means "none" here */
    } else {
        if (FH_UNLIKELY(u.len < FH_PITCH_UNIT_HLEN || fh_le16(u.payload) != u.len)) {
            fh_pipe_reject(r, len, lane0,
                           u.len < FH_PITCH_UNIT_HLEN ? FH_ERR_PITCH_TRUNCATED : FH_ERR_PITCH_HDR_LENGTH);
            return;
        }
        static const uint8_t pitch_line_key[FH_MOLD_SESSION_LEN] = {0xFF, 'P', 'I', 'T', 'C', 'H', 0, 0, 0, 0};
        fh_pitch_stream_key(pkey, u.payload[3]);
        key = pkey;
        line_key = pitch_line_key;
        seq0 = fh_le32(u.payload + 4);
    }
    const uint32_t before = r->session.streams.n;
    uint64_t fresh = 0;
    fh_stream_t *s = NULL;
    uint16_t *pslot = NULL;
    if (proto == FH_PROTO_PITCH) {
        pslot = fh_route_pitch_unit(&r->route, u.dst_port, u.payload[3]);
        if (pslot && *pslot) s = &r->session.streams.v[*pslot - 1];
    }
    if (FH_LIKELY(!s)) {
        s = fh_stream_lookup(&r->session.streams, u.dst_port, key, seq0, &fresh);
        if (proto == FH_PROTO_PITCH && s)
            fh_route_pitch_unit_remember(&r->route, u.dst_port, u.payload[3], (size_t)(s - r->session.streams.v));
    }
    if (FH_UNLIKELY(r->session.streams.n != before) && s) {
        s->protocol = (uint8_t)proto;
        s->venue = (uint8_t)venue;
        s->unit = proto == FH_PROTO_PITCH ? u.payload[3]
                  : proto == FH_PROTO_IEX ? (uint8_t)fh_iex_feed_of(fh_iex_proto(u.payload))
                                          : 0;
        /* A new stream: its re-request server is its line's, else the default. */
        s->rerequest_ip = r->route.rerequest_ip;
        s->rerequest_port = r->route.rerequest_port;
        if (r->route.n_lines && r->route.lines[r->route.line_last].rerequest_ip) {
            s->rerequest_ip = r->route.lines[r->route.line_last].rerequest_ip;
            s->rerequest_port = r->route.lines[r->route.line_last].rerequest_port;
        }
        s->group = u.dst_ip;
        s->snapshot_on = (uint8_t)(r->route.recover_all ||
                                   (r->route.n_lines && (r->route.recovery_lines >> r->route.line_last & 1u)));
        if (FH_UNLIKELY(!(r->route.venues_seen >> venue & 1))) fh_pipe_venue_seen(r, venue);
        if (proto != FH_PROTO_MOLD) {
            /* MoldUDP64 re-request and GLIMPSE do not speak PITCH or IEX-TP (Cboe's
             * GRP and Spin, IEX's gap fill and SNAP are other protocols): their
             * streams rely on their A/B lines. */
            s->rerequest_ip = 0;
            s->snapshot_on = 0;
        }
    }
    if (FH_UNLIKELY(r->route.n_lanes > 1) && !r->route.n_lines && !r->route.own_all) {
        /* An IEX venue's streams (its sessions) share one lane: their symbols
         * rank into one id range, in sequence order. */
        const uint32_t owner = !s                            ? 0
                               : s->protocol == FH_PROTO_IEX ? s->venue % r->route.n_lanes
                                                             : (uint32_t)(s - r->session.streams.v) % r->route.n_lanes;
        if (owner != r->route.lane) return;
    }
    if (FH_UNLIKELY(r->session.streams.n != before)) {
        st->streams++;
        /* Late join (its first packet is not the session's first): nothing of
         * it is applied before its snapshot. */
        if (s && s->snapshot_on && seq0 > 1 && r->mode != FH_MODE_DECODE) fh_session_snapshot_wait(&r->session, s);
        else if (s) fh_session_start(&r->session, s, seq0);
    }
    st->packets++;
    st->bytes += len;
    rx_ts = fh_session_clock(&r->session, rx_ts);
    r->book.rx_ts = rx_ts;
    r->book.now = 0;
    fh_session_supervise(&r->session, &u, line_key, s, rx_ts);
    fh_latency_t *lat = &r->latency;
    const int measured = FH_UNLIKELY(lat->hist != NULL) && --lat->left == 0;
    uint64_t c0 = 0;
    if (FH_UNLIKELY(measured)) c0 = fh_pipe_measure_start(r);
    fh_pipe_datagram(r, &u, s, proto);
    if (FH_UNLIKELY(measured)) fh_pipe_measure_end(r, &u, f + len, c0);
}

/* Pacing (--speed): hold the walk until wall time catches up with the
 * capture's clock, scaled.  A busy wait on the TSC, checking the stop flag;
 * a replay that falls behind simply runs at full speed until it catches up. */
FH_INLINE void fh_pipe_pace(fh_lane_t *r, uint64_t ts)
{
    fh_pace_t *p = &r->pace;
    if (FH_LIKELY(p->scale == 0.0) || ts == 0) return;
    if (FH_UNLIKELY(p->capture0 == 0) || ts <= p->capture0) {
        /* The first timestamp paced (its wall time read now), or one as early: due at once. */
        r->latency.due = fh_pace_due(p, ts, p->capture0 ? 0 : fh_tsc_ns(&r->tsc));
        r->latency.rx_clock = FH_RX_CLOCK_CAPTURE;
        return;
    }
    const uint64_t target = fh_pace_due(p, ts, 0);
    /* Latency counts from when the packet was due, not from when a late
     * replay got to it: falling behind shows up (coordinated omission). */
    r->latency.due = target;
    r->latency.rx_clock = FH_RX_CLOCK_CAPTURE;
    uint64_t prev = fh_tsc_ns(&r->tsc), now;
    /* Waiting is when a reader sees the counters move: refreshed on the
     * clock this loop reads anyway, however far apart the packets are. */
    fh_pipe_counters_tick(r, prev);
    while ((now = fh_tsc_ns(&r->tsc)) < target) {
        /* Measuring: while waiting, a gap between two reads is time the
         * machine took the core away (interrupt, preemption, hypervisor). */
        if (FH_UNLIKELY(now - prev > 1000) && r->latency.hist)
            fh_hist_record(&r->latency.hist[FH_LAT_IDLE_GAPS], now - prev);
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
    if (!r->decoded.n) return;
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
#define FH_REC_EACH 1u             /* each record applied (and published) as it comes, not in windows */
#define FH_REC_PACED 2u             /* held until the ITCH timestamp falls due (--speed) */
#define FH_REC_LANES 4u             /* several lanes: keep only this lane's records */

FH_INLINE uint32_t fh_pipe_record_mode(const fh_lane_t *r)
{
    const int paced = r->pace.scale != 0.0;
    return (paced || r->mode == FH_MODE_DECODE ? FH_REC_EACH : 0u) | (paced ? FH_REC_PACED : 0u) |
           (r->route.n_lanes > 1 ? FH_REC_LANES : 0u);
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
    if (FH_LIKELY(!(how & FH_REC_LANES)) || (mlen >= 3 ? fh_be16(msg + 1) % r->route.n_lanes : 0) == r->route.lane) {
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
    if (FH_UNLIKELY(++r->input.records_in_window == FH_BIN_WINDOW)) {
        r->input.records_in_window = 0;
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
    r->input.records_in_window = 0;
}

/* The end of an input (or of what the source could walk of it): a last poll. */
FH_INLINE void fh_pipe_input_end(fh_lane_t *r, uint64_t done) { (void)fh_pipe_poll(r, done); }

/* A whole-input error of the source's (a truncated or corrupt record, a link
 * type it cannot read): counted once, by lane 0. */
FH_INLINE void fh_pipe_src_error(fh_lane_t *r, int code) { r->input.errors[code]++; }

/* The capture's clock (first and last timestamps, ns since the epoch). */
FH_INLINE void fh_pipe_capture_ts(fh_lane_t *r, uint64_t ts)
{
    if (FH_UNLIKELY(r->st.first_ts_ns == 0)) r->st.first_ts_ns = ts;
    r->st.last_ts_ns = ts;
}

/* Live sources (DPDK): a burst received at rx (TSC ns): latency counts from it. */
FH_INLINE void fh_pipe_burst(fh_lane_t *r, uint64_t rx)
{
    r->latency.due = rx;
    r->latency.rx_clock = FH_RX_CLOCK_TSC_BURST;
}

/* Live sources whose port stamps each packet itself (a NIC's hardware receive
 * timestamp, converted to the TSC clock): latency counts from that. */
FH_INLINE void fh_pipe_rx_stamp(fh_lane_t *r, uint64_t rx)
{
    r->latency.due = rx;
    r->latency.rx_clock = FH_RX_CLOCK_NIC;
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
