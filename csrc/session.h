/* session.h -- the MoldUDP64 session layer: streams, A/B arbitration, held
 * packets, holes, gaps, re-requests, silence, line sessions.
 *
 * A stream is one (UDP destination port, session): without a channel config
 * every group carrying the same session on one port is a line of the same
 * channel, so a copy from the B line is a duplicate, never a second message.
 *
 * In sequence is the hot path, decided inline by the pipeline
 * (fh_session_in_sequence).  Everything else -- a packet past a hole, a
 * heartbeat announcing loss, a hole timing out, a re-request, a quiet line --
 * is the cold path here in session.c, which knows nothing of books: it hands
 * packets to apply, gaps and silences to the pipeline through its hooks. */
#ifndef FH_SESSION_H
#define FH_SESSION_H

#include "mold.h"
#include "net.h"
#include "rerequest.h"

/* A hole given up this far ahead of a stream that kept advancing in sequence
 * is a corrupt sequence number, not loss: 16 M messages is minutes of the
 * busiest feed lost on both lines, while the stream itself went on. */
#define FH_SEQ_IMPLAUSIBLE (1ull << 24)

/* A stream's key beside its UDP port: 10 bytes, a MoldUDP64 session's width. */
#define FH_STREAM_KEY_LEN FH_MOLD_SESSION_LEN

typedef struct fh_stream {
    uint64_t next_seq;                      /* next sequence number expected */
    uint64_t hole_since;                    /* 0 = no hole; else the receive time the oldest open hole (the
                                             * one at next_seq) was first missed: its window runs from here */
    uint64_t hole_end;                      /* a heartbeat said the stream reached this sequence */
    uint32_t held_head;                     /* packets held behind the hole (pool index + 1), by sequence */
    uint16_t port;
    uint8_t key[FH_STREAM_KEY_LEN];        /* MoldUDP64: the session; PITCH: fh_pitch_stream_key(unit); IEX-TP:
                                            * channel, session and protocol id (iex.h) */
    uint32_t rerequest_ip;                  /* re-request server (host order), 0 = none */
    uint16_t rerequest_port;
    uint8_t ended;                         /* end of session seen */
    uint8_t silent;                        /* quiet past the silence timeout */
    uint8_t gapped;                        /* lost messages for good (a gap): instruments first seen
                                            * after it are flagged stale too */
    uint64_t last_rx;                       /* receive time of its last packet (this lane's streams) */
    uint64_t hole_seq0;                     /* next_seq when the open hole was seen */
    uint8_t snapshot_on;                   /* snapshot recovery (GLIMPSE) for this stream */
    uint8_t snapshot;                      /* FH_SNAP_*: waiting for a snapshot, its packets held */
    uint8_t snapshot_tried;                   /* the open hole had its snapshot: no second one */
    uint32_t group;                         /* multicast group (host order) it was first seen on */
    uint64_t snapshot_after;                   /* no snapshot asked before this receive time (after a failure) */
    uint8_t protocol;                      /* FH_PROTO_MOLD, FH_PROTO_PITCH or FH_PROTO_IEX */
    uint8_t unit;                          /* PITCH: Hdr Unit; IEX: the feed (enum fh_iex_feed) */
    uint8_t venue;                         /* index in the run's venue table (fh_lane_set_venue) */
    uint8_t _pad1;
    uint32_t pitch_seconds;                    /* PITCH: seconds of the unit's last Time message */
    /* Per-hole windows (session.c).  A held packet's receive time is when the
     * ranges before it were first missed; a heartbeat's is kept here: at
     * heartbeat_since it said the stream had reached heartbeat_end0. */
    uint64_t heartbeat_since;               /* 0 = no heartbeat-announced range open */
    uint64_t heartbeat_end0;
    uint64_t hole_floor;                    /* no hole is given up before this + the window (after a snapshot) */
    /* The last FH_LOST_RANGES ranges given up as gaps, [lo, hi): a late copy
     * of one is counted late (pkt_late), not duplicate -- it was never applied. */
    uint64_t lost_lo[4], lost_hi[4];
    uint64_t lost_top;                      /* end of the latest range given up (0 = none): only copies
                                             * below it are looked up */
    uint32_t lost_next;                     /* ring index of the next range recorded */
    uint32_t _pad2;
    uint64_t start_end;                     /* first sequence the stream was seen at when above 1 (0 = none
                                             * or done): what is missing below it was sent before the input
                                             * began -- applied if the other line brings it within the
                                             * window, never a gap */
} fh_stream_t;

#define FH_LOST_RANGES 4u

/* Copy [seq, seq + count) of stream s, all of it behind next_seq: 1 if any of
 * it lies in a range given up as a gap (so it was never applied), 0 if it
 * was applied (a true duplicate).  Called only when seq < s->lost_top. */
FH_INLINE int fh_session_was_lost(const fh_stream_t *s, uint64_t seq, uint32_t count)
{
    const uint64_t end = seq + count;
    for (uint32_t i = 0; i < FH_LOST_RANGES; i++)
        if (s->lost_hi[i] && seq < s->lost_hi[i] && end > s->lost_lo[i]) return 1;
    return 0;
}

/* What a stream carries: MoldUDP64 (ITCH 5.0) or Cboe PITCH sequenced units.
 * A PITCH stream is one (UDP port, unit): its key in the table is
 * fh_pitch_stream_key(unit), 10 bytes no MoldUDP64 session of ASCII carries. */
#define FH_PROTO_MOLD 0u
#define FH_PROTO_PITCH 1u
#define FH_PROTO_IEX 2u
#define FH_PROTO_UNDECIDED 0xFFu

FH_INLINE void fh_pitch_stream_key(uint8_t key[FH_MOLD_SESSION_LEN], uint8_t unit)
{
    static const uint8_t tag[FH_MOLD_SESSION_LEN] = {0xFF, 'P', 'I', 'T', 'C', 'H', 0, 0, 0, 0};
    memcpy(key, tag, FH_MOLD_SESSION_LEN);
    key[6] = unit;
}

/* After a snapshot that did not come, the stream's next hole waits this long
 * (receive time) before asking again: a dead server costs a replay one wait
 * per 10 s of market, not one per hole. */
#define FH_SNAP_RETRY_NS (10ull * 1000000000ull)

/* A stream's snapshot state. */
#define FH_SNAP_NONE 0u
#define FH_SNAP_WANTED 1u                   /* waits; the request is not posted yet */
#define FH_SNAP_ASKED 2u                   /* the request is posted */

typedef struct fh_stream_table {
    fh_stream_t *v;                    /* preallocated at start-up */
    uint32_t n, cap;
    uint32_t last;                          /* index of the last hit: packets come in runs */
} fh_stream_table_t;

/* A packet that arrived past a hole, held until the hole fills or is given up. */
#define FH_PEND_DATA 2016u
typedef struct fh_pending {
    uint64_t seq;
    uint64_t rx_ts;
    uint32_t len;                   /* MoldUDP64 payload bytes in data */
    uint32_t count;
    uint32_t next;                  /* next held packet of the stream (index + 1), by sequence */
    uint32_t _pad;
    uint8_t data[FH_PEND_DATA];
} fh_pending_t;

/* What the session layer hands back to the pipeline (cold path only). */
typedef struct fh_session_hooks {
    /* Apply a datagram's blocks in sequence (from `seq`, what the stream has
     * applied already is skipped and counted duplicate), received at rx_ts;
     * returns 1 when the whole datagram was a duplicate, else 0. */
    int (*apply)(void *ctx, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count,
                 uint64_t rx_ts);
    /* Stream s lost `missing` messages for good. */
    void (*gap)(void *ctx, fh_stream_t *s, uint64_t missing);
    /* Stream s went quiet (on = 1) or spoke again (on = 0). */
    void (*silent)(void *ctx, fh_stream_t *s, int on);
    /* Stream s waits for a snapshot (s->snapshot != FH_SNAP_NONE): ask for it.  A
     * blocking pipeline gets and applies it (fh_session_snapshot_done) before
     * returning; a live one returns at once and applies it later. */
    void (*snapshot)(void *ctx, fh_stream_t *s);
    void *ctx;
} fh_session_hooks_t;

typedef struct fh_session {
    fh_stream_table_t streams;
    fh_stats_t *st;                 /* the lane's counters */
    uint64_t now;                   /* receive time of the packet being handled (the session's clock) */
    uint64_t rx_last;               /* latest receive time seen: the receive clock never runs backwards */
    fh_pending_t *held;             /* packets held behind holes (pool, preallocated) */
    uint32_t held_cap, held_free;   /* pool size; free list head (index + 1) */
    uint32_t holes;                 /* streams waiting on a hole */
    uint64_t gap_window_ns;         /* how long a hole waits for the other line, in receive time */
    uint64_t silence_ns;            /* a stream quiet this long is silent; 0 = never */
    uint64_t next_silence_check;    /* receive time of the next sweep */
    uint32_t n_groups, group_last;  /* lines seen: which session each carries */
    struct {
        uint32_t ip;
        uint16_t port;
        uint8_t session[FH_MOLD_SESSION_LEN];
    } groups[64];
    fh_rr_client_t rerequest;       /* re-request client */
    fh_session_hooks_t hooks;
} fh_session_t;

/* Start-up: streams (table size), the held-packet pool, the windows. */
int fh_session_init(fh_session_t *ss, fh_stats_t *st, uint32_t max_streams, uint32_t gap_buffer, uint64_t gap_window_ns,
                    uint64_t silence_ns, const fh_session_hooks_t *hooks, char *err, size_t errlen);
void fh_session_free(fh_session_t *ss);

/* The stream for (port, session), created on first sight; NULL when the table
 * is full (the caller counts it and decodes the packet unsequenced).  *fresh
 * is incremented when it was created. */
FH_INLINE fh_stream_t *fh_stream_lookup(fh_stream_table_t *t, uint16_t port, const uint8_t *session, uint64_t first_seq,
                                        uint64_t *fresh)
{
    fh_stream_t *s = &t->v[t->last];
    if (FH_LIKELY(t->n && s->port == port && memcmp(s->key, session, FH_MOLD_SESSION_LEN) == 0)) return s;
    for (uint32_t i = 0; i < t->n; i++) {
        s = &t->v[i];
        if (s->port == port && memcmp(s->key, session, FH_MOLD_SESSION_LEN) == 0) {
            t->last = i;
            return s;
        }
    }
    if (t->n == t->cap) return NULL;
    s = &t->v[t->n];
    s->port = port;
    memcpy(s->key, session, FH_MOLD_SESSION_LEN);
    /* A capture may start mid-session: what came before it is not a gap. */
    s->next_seq = first_seq;
    t->last = t->n++;
    (*fresh)++;
    return s;
}

/* The hot-path test: a data packet starting at seq can be applied now
 * (in sequence, or a copy of what was applied) with no hole in the way. */
FH_INLINE int fh_session_in_sequence(const fh_stream_t *s, uint64_t seq)
{
    return !s->hole_since && seq <= s->next_seq;
}

/* A frame's receive time: the session's clock, which never runs backwards (a
 * capture whose clock steps back -- merged interfaces, an NTP step -- must not
 * make gap windows and silence run backwards).  Returns the time to use. */
FH_INLINE uint64_t fh_session_clock(fh_session_t *ss, uint64_t rx_ts)
{
    if (FH_UNLIKELY(rx_ts < ss->rx_last)) {
        rx_ts = ss->rx_last;
        ss->st->rx_time_back++;
    }
    ss->rx_last = rx_ts;
    ss->now = rx_ts;
    return rx_ts;
}

/* Line supervision on each frame of stream s (NULL: unsequenced) on line u,
 * whose stream key (MoldUDP64 session, or PITCH unit key) is `key`: which
 * session the line carries, the silence sweep, a silent stream back.  A PITCH
 * line carries several units in turn: its key here is the same for all of
 * them (fh_pitch_stream_key(0)), so a change of unit is not a new session. */
void fh_session_line_changed(fh_session_t *ss, const fh_udp_view_t *u, const uint8_t *key);
void fh_session_check_silence(fh_session_t *ss, uint64_t now);
void fh_session_alive(fh_session_t *ss, fh_stream_t *s);
FH_INLINE void fh_session_supervise(fh_session_t *ss, const fh_udp_view_t *u, const uint8_t *key, fh_stream_t *s,
                                    uint64_t rx_ts)
{
    /* Which session this line carries: the common case is the last line again. */
    const uint32_t g = ss->group_last;
    if (FH_UNLIKELY(g >= ss->n_groups || ss->groups[g].ip != u->dst_ip || ss->groups[g].port != u->dst_port ||
                    memcmp(ss->groups[g].session, key, FH_MOLD_SESSION_LEN) != 0))
        fh_session_line_changed(ss, u, key);
    /* The sweep first: a packet ending a quiet spell must not hide it. */
    if (FH_UNLIKELY(rx_ts >= ss->next_silence_check)) fh_session_check_silence(ss, rx_ts);
    if (FH_LIKELY(s != NULL)) {
        s->last_rx = rx_ts;
        if (FH_UNLIKELY(s->silent)) fh_session_alive(ss, s);
    }
}

/* Cold paths of A/B arbitration: a data packet past the next expected
 * sequence or behind an open hole; a heartbeat or end of session announcing
 * `seq` (the next sequence) when it is ahead or a hole is open. */
void fh_session_packet(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count);
void fh_session_heartbeat(fh_session_t *ss, fh_stream_t *s, uint64_t seq);
/* A reply to a re-request for stream s (n bytes as received): applied if it is
 * for s and starts at or before its hole; 1 when applied. */
int fh_session_rr_reply(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, size_t n);
/* Give up every hole whose window has passed at receive time `now` (all, if now is ~0). */
void fh_session_expire(fh_session_t *ss, uint64_t now);

/* Snapshot recovery.  fh_session_snapshot_wait: stream s (late join) waits for
 * a snapshot; every packet of it is held, without a window.  _done: the
 * snapshot came (ok: the books hold everything before `seq`; held packets
 * wholly below it are dropped as contained, the rest applied in order) or
 * will not (the hole is given up as without one: gap counted, books flagged). */
void fh_session_snapshot_wait(fh_session_t *ss, fh_stream_t *s);
void fh_session_snapshot_done(fh_session_t *ss, fh_stream_t *s, uint64_t seq, int ok);
/* The sequence just past the highest packet s holds (0 if none). */
uint64_t fh_session_held_end(const fh_session_t *ss, const fh_stream_t *s);

/* A new stream whose first packet (or heartbeat) says `seq0` > 1: the input
 * began mid-session, or the first packets were lost on this line.  The
 * messages before seq0 are waited for like a hole (the other line may bring
 * them within the window) but never counted as a gap when they do not come. */
void fh_session_start(fh_session_t *ss, fh_stream_t *s, uint64_t seq0);

/* Every stream has seen its end of session. */
int fh_session_all_ended(const fh_session_t *ss);

#endif
