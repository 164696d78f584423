/* session.c -- the cold paths of the MoldUDP64 session layer (session.h).
 *
 * Holes and A/B arbitration: a packet past the next expected sequence opens a
 * hole.  Usually the other line's copy of the missing packet is a few
 * microseconds behind: packets after the hole are held (sorted by sequence,
 * in a preallocated pool) and applied in order as soon as the hole fills.
 * Every hole has its own window, from when its sequence range was first
 * missed: one still open gap_window_ns of receive time later (or when the
 * pool is full, or at the end of the input) is given up alone -- the
 * re-request server is asked first, what is still missing is counted as a
 * gap, the stream's instruments flagged stale, and the packets held behind it
 * applied up to the next hole, which keeps waiting for its own window. */
#include <stdlib.h>

#include "session.h"

int fh_session_init(fh_session_t *ss, fh_stats_t *st, uint32_t max_streams, uint32_t gap_buffer, uint64_t gap_window_ns,
                    uint64_t silence_ns, const fh_session_hooks_t *hooks, char *err, size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    fh_rr_init(&ss->rerequest);
    ss->st = st;
    ss->hooks = *hooks;
    ss->gap_window_ns = gap_window_ns;
    ss->silence_ns = silence_ns;
    ss->held_cap = gap_buffer;
    char what[96];
    snprintf(what, sizeof what, "a %u-packet gap buffer", ss->held_cap);
    const uint64_t pend_bytes = (uint64_t)ss->held_cap * sizeof *ss->held;
    if (fh_mem_check(pend_bytes, pend_bytes, what, err, errlen) != 0) return -1;
    ss->held = calloc(ss->held_cap, sizeof *ss->held);
    if (!ss->held) {
        fh_errf(err, errlen, "out of memory for a %u-packet gap buffer", ss->held_cap);
        return -1;
    }
    for (uint32_t i = 0; i < ss->held_cap; i++) ss->held[i].next = i + 2 <= ss->held_cap ? i + 2 : 0;
    ss->held_free = 1;
    const uint32_t cap = max_streams ? max_streams : 1;
    ss->streams.v = calloc(cap, sizeof *ss->streams.v);
    if (!ss->streams.v) {
        fh_errf(err, errlen, "out of memory for %u streams", max_streams);
        return -1;
    }
    ss->streams.cap = cap;
    return 0;
}

void fh_session_free(fh_session_t *ss)
{
    free(ss->held);
    free(ss->streams.v);
    fh_rr_close(&ss->rerequest);
    ss->held = NULL;
    ss->streams.v = NULL;
}

/* Sequence numbers are the sender's word: one corrupt or hostile packet or
 * heartbeat can claim a stream reached 2^64 - 1, and a few of those on
 * several streams would wrap the total.  It saturates instead: a counter of
 * totals never goes down. */
static void count_gap(fh_session_t *ss, uint64_t missing)
{
    ss->st->gaps = ss->st->gaps + missing < ss->st->gaps ? UINT64_MAX : ss->st->gaps + missing;
}

static void gap(fh_session_t *ss, fh_stream_t *s, uint64_t missing)
{
    count_gap(ss, missing);
    s->gapped = 1;
    ss->hooks.gap(ss->hooks.ctx, s, missing);
}

/* [lo, hi) of stream s is given up: remembered so that a late copy of it is
 * counted late, not duplicate. */
static void lost_record(fh_stream_t *s, uint64_t lo, uint64_t hi)
{
    const uint32_t i = s->lost_next++ % FH_LOST_RANGES;
    s->lost_lo[i] = lo;
    s->lost_hi[i] = hi;
    if (hi > s->lost_top) s->lost_top = hi;
}

/* A datagram's fate in the packet ledger, once applied. */
static void apply_counted(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq,
                          uint32_t count, uint64_t rx_ts)
{
    const int r = ss->hooks.apply(ss->hooks.ctx, s, p, len, seq, count, rx_ts);
    if (!r) ss->st->pkt_applied++;
    else if (r == 1) ss->st->pkt_duplicate++;
    else ss->st->pkt_late++;
}

static void pend_free(fh_session_t *ss, uint32_t i)
{
    ss->held[i].next = ss->held_free;
    ss->held_free = i + 1;
}

/* -------------------------------------------------------------- holes
 *
 * Every hole has its own window.  A sequence range is first missed when a
 * packet past it arrives (its receive time, kept with the held packet) or a
 * heartbeat announces the stream went past it (hb_since, hb_end0).  The hole
 * at next_seq is always the oldest: every held packet and the heartbeat are
 * evidence for it, so its deadline is the earliest of them all, kept in
 * hole_since for the cheap checks.  When that deadline passes, only that
 * range is given up; the packets behind it are applied up to the next hole,
 * which keeps its own (younger) deadline and waits for the other line. */

/* The earliest receive time of the packets s holds (UINT64_MAX: none). */
static uint64_t oldest_held(const fh_session_t *ss, const fh_stream_t *s)
{
    uint64_t t = UINT64_MAX;
    for (uint32_t i = s->held_head; i; i = ss->held[i - 1].next)
        if (ss->held[i - 1].rx_ts < t) t = ss->held[i - 1].rx_ts;
    return t;
}

/* When the range at next_seq was first missed (its window starts there). */
static uint64_t front_since(const fh_session_t *ss, const fh_stream_t *s)
{
    uint64_t t = oldest_held(ss, s);
    if (s->heartbeat_since && s->heartbeat_end0 > s->next_seq && s->heartbeat_since < t) t = s->heartbeat_since;
    if (t == UINT64_MAX) t = ss->now;
    if (t < s->hole_floor) t = s->hole_floor;
    return t ? t : 1;
}

/* After next_seq moved or held packets went: close the hole if nothing is
 * missing any more, else restart the heartbeat range past what it covered
 * and time the new oldest hole. */
static void hole_update(fh_session_t *ss, fh_stream_t *s)
{
    if (!s->hole_since) return;
    if (s->heartbeat_since && s->heartbeat_end0 <= s->next_seq) {
        /* Announced later than hb_since, by an unknown heartbeat: timed from
         * now (later than it was missed, never earlier). */
        if (s->hole_end > s->next_seq) {
            s->heartbeat_since = ss->now ? ss->now : 1;
            s->heartbeat_end0 = s->hole_end;
        } else s->heartbeat_since = 0;
    }
    if (s->snapshot) return;
    if (!s->held_head && s->next_seq >= s->hole_end) {
        s->hole_since = 0;
        s->snapshot_tried = 0;
        s->heartbeat_since = 0;
        s->hole_floor = 0;
        ss->holes--;
        return;
    }
    s->hole_since = front_since(ss, s);
}

/* Apply held packets the stream has now reached (applied now, received then). */
static void hole_drain(fh_session_t *ss, fh_stream_t *s)
{
    while (s->held_head && ss->held[s->held_head - 1].seq <= s->next_seq) {
        const uint32_t i = s->held_head - 1;
        fh_pending_t *h = &ss->held[i];
        s->held_head = h->next;
        ss->st->pkt_held--;
        apply_counted(ss, s, h->data, h->len, h->seq, h->count, h->rx_ts);
        pend_free(ss, i);
    }
    hole_update(ss, s);
}

/* A reply from the re-request server to stream s: network input, so split
 * from the socket loop to be testable (and fuzzed) without sockets.  Only our
 * session, only a well-formed header, only a packet that starts at or before
 * the hole is applied; anything else is counted foreign.  Returns 1 when
 * applied (what it filled is counted recovered, held packets it released are
 * not). */
int fh_session_rr_reply(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, size_t n)
{
    if (n < FH_MOLD_HLEN || n > UINT32_MAX || memcmp(p, s->key, FH_MOLD_SESSION_LEN) != 0) {
        ss->st->errors[FH_ERR_RR_FOREIGN]++;
        return 0;
    }
    const uint64_t seq = fh_be64(p + 10);
    const uint32_t count = fh_be16(p + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END || seq > s->next_seq) {
        ss->st->errors[FH_ERR_RR_FOREIGN]++;
        return 0;
    }
    const uint64_t before = s->next_seq;
    (void)ss->hooks.apply(ss->hooks.ctx, s, p, (uint32_t)n, seq, count, ss->now);   /* not in the packet ledger */
    ss->st->recovered += s->next_seq - before;
    hole_drain(ss, s);
    return 1;
}

typedef struct {
    fh_session_t *ss;
    fh_stream_t *s;
} rr_ctx_t;

static int rr_reply(void *ctx, const uint8_t *p, size_t n)
{
    rr_ctx_t *c = ctx;
    return fh_session_rr_reply(c->ss, c->s, p, n);
}

/* Ask the stream's re-request server for [next_seq, end) and apply what
 * comes back, until it is filled, the server stops answering (3 tries of the
 * client's timeout each) or has nothing more. */
static void hole_recover(fh_session_t *ss, fh_stream_t *s, uint64_t end)
{
    if (!s->rerequest_ip || ss->rerequest.fd < 0) return;
    rr_ctx_t c = {ss, s};
    int tries = 0;
    while (s->hole_since && s->next_seq < end && tries < 3) {
        const uint64_t want = end - s->next_seq;
        const uint64_t before = s->next_seq;
        const int got = fh_rr_request(&ss->rerequest, s->rerequest_ip, s->rerequest_port, s->key, s->next_seq,
                                      (uint16_t)(want > 0xFFFE ? 0xFFFE : want), rr_reply, &c,
                                      &ss->st->errors[FH_ERR_RR_FOREIGN]);
        if (got < 0) {
            ss->st->errors[FH_ERR_RR_TIMEOUT]++;
            return;
        }
        if (!got) {
            ss->st->errors[FH_ERR_RR_TIMEOUT]++;
            tries++;
        } else if (s->next_seq == before) {
            break;                                  /* an answer with nothing new: the server has no more */
        }
    }
}

/* Where the range at next_seq ends if it is to be given up now: its window
 * passed at receive time `now` (or `all`: the end of the input, a full pool),
 * else 0.  A range is past its window when any evidence for it (a held packet
 * after it, the heartbeat) is older than the window. */
static uint64_t front_expired(const fh_session_t *ss, const fh_stream_t *s, uint64_t now, int all)
{
    const uint64_t first = s->held_head ? ss->held[s->held_head - 1].seq : UINT64_MAX;
    const uint64_t end = s->held_head ? first : s->hole_end;
    if (end <= s->next_seq) return 0;
    if (all) return end;
    const uint64_t w = ss->gap_window_ns;
    if (s->hole_floor && now - s->hole_floor <= w) return 0;
    const uint64_t oldest = oldest_held(ss, s);
    if (oldest != UINT64_MAX && now - oldest > w) return first;
    if (s->heartbeat_since && s->heartbeat_end0 > s->next_seq && now - s->heartbeat_since > w)
        return s->heartbeat_end0 < end ? s->heartbeat_end0 : end;
    return 0;
}

/* Give up [next_seq, end), which will not fill from the lines: re-request it
 * if a server is configured, else (or then) ask for a snapshot if configured,
 * else count what is still missing as a gap, flag, and apply what was held
 * behind it. */
static void range_give_up(fh_session_t *ss, fh_stream_t *s, uint64_t end)
{
    if (FH_UNLIKELY(s->start_end) && s->next_seq < s->start_end) {
        /* Before the stream's first packet: sent before the input began, not
         * lost -- no gap, no re-request, no flag. */
        if (end > s->start_end) end = s->start_end;
        s->next_seq = end;
        s->hole_seq0 = end;
        if (end >= s->start_end) s->start_end = 0;
        hole_drain(ss, s);
        return;
    }
    hole_recover(ss, s, end);
    if (!s->hole_since || s->next_seq >= end) return;
    if (s->snapshot_on && !s->snapshot_tried && ss->now >= s->snapshot_after && ss->hooks.snapshot) {
        /* Lost from both lines and the re-request server: the books are wrong
         * (flagged now) until a snapshot rebuilds them.  Counted as a gap only
         * if the snapshot does not come. */
        ss->hooks.gap(ss->hooks.ctx, s, end - s->next_seq);
        s->snapshot_tried = 1;
        s->snapshot = FH_SNAP_WANTED;
        ss->hooks.snapshot(ss->hooks.ctx, s);       /* blocking: applied (or failed) before it returns */
        return;
    }
    if (end - s->next_seq > FH_SEQ_IMPLAUSIBLE && s->next_seq > s->hole_seq0) {
        /* The stream went on in sequence past where this hole opened while
         * the far-ahead number never came closer: a corrupt sequence number
         * (one bad datagram or heartbeat), not millions of lost messages.
         * Taking it would make every genuine packet after it a "duplicate";
         * it is dropped and counted instead. */
        ss->st->errors[FH_ERR_MOLD_SEQ_IMPLAUSIBLE]++;
        if (s->held_head) {
            const uint32_t i = s->held_head - 1;
            s->held_head = ss->held[i].next;
            pend_free(ss, i);
            ss->st->pkt_held--;
            ss->st->pkt_rejected++;
        } else {
            s->hole_end = s->next_seq;
            s->heartbeat_since = 0;
        }
        hole_update(ss, s);
        return;
    }
    gap(ss, s, end - s->next_seq);
    lost_record(s, s->next_seq, end);
    s->next_seq = end;
    s->hole_seq0 = end;
    hole_drain(ss, s);
}

/* Give up the holes of stream s whose windows passed (all of them when
 * `all`), oldest first; younger ones keep waiting for the other line. */
static void holes_give_up(fh_session_t *ss, fh_stream_t *s, int all)
{
    while (s->hole_since && !s->snapshot) {
        const uint64_t end = front_expired(ss, s, ss->now, all);
        if (!end) break;
        range_give_up(ss, s, end);
    }
}

static void hole_open(fh_session_t *ss, fh_stream_t *s)
{
    if (!s->hole_since) {
        s->hole_since = ss->now ? ss->now : 1;
        s->hole_seq0 = s->next_seq;
        ss->holes++;
    }
}

static void hole_check_window(fh_session_t *ss, fh_stream_t *s)
{
    if (s->hole_since && !s->snapshot && ss->now - s->hole_since > ss->gap_window_ns) holes_give_up(ss, s, 0);
}

void fh_session_heartbeat(fh_session_t *ss, fh_stream_t *s, uint64_t seq)
{
    hole_check_window(ss, s);
    if (seq > s->next_seq) {
        if (seq > s->hole_end) s->hole_end = seq;
        if (!s->heartbeat_since) {
            s->heartbeat_since = ss->now ? ss->now : 1;
            s->heartbeat_end0 = seq;
        }
        hole_open(ss, s);
    }
    hole_check_window(ss, s);
}

/* Hold packet [seq, seq + count) of stream s behind its holes, in sequence
 * order.  0 when held (or a copy of one held: a duplicate), -1 when the pool
 * has no room. */
static int hold(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count)
{
    uint32_t *link = &s->held_head;
    while (*link && ss->held[*link - 1].seq < seq) link = &ss->held[*link - 1].next;
    if (*link && ss->held[*link - 1].seq == seq && ss->held[*link - 1].count >= count) {
        ss->st->duplicates += count;
        ss->st->pkt_duplicate++;
        return 0;
    }
    if (len > FH_PEND_DATA || !ss->held_free) return -1;
    const uint32_t i = ss->held_free - 1;
    fh_pending_t *h = &ss->held[i];
    ss->held_free = h->next;
    h->seq = seq;
    h->rx_ts = ss->now;
    h->len = len;
    h->count = count;
    memcpy(h->data, p, len);
    h->next = *link;
    *link = i + 1;
    ss->st->pkt_held++;
    if (FH_UNLIKELY(s->snapshot)) {
        ss->st->snapshot_buffered++;
        if (s->snapshot == FH_SNAP_WANTED) ss->hooks.snapshot(ss->hooks.ctx, s);
    }
    return 0;
}

void fh_session_packet(fh_session_t *ss, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count)
{
    /* Holes whose windows passed before this packet came are lost already: a
     * late copy of one is not applied out of order (it counts as late). */
    hole_check_window(ss, s);
    if (seq <= s->next_seq && !s->snapshot) {
        /* Fills (the start of) the oldest hole, or is a copy of what was applied. */
        apply_counted(ss, s, p, len, seq, count, ss->now);
        hole_drain(ss, s);
        return;
    }
    hole_open(ss, s);
    if (hold(ss, s, p, len, seq, count) == 0) return;
    ss->st->errors[FH_ERR_GAP_BUFFER_FULL]++;
    if (s->snapshot) {
        /* Waiting for a snapshot with nowhere to hold this packet: dropped
         * (counted).  If the snapshot does not contain it, it is a hole then. */
        ss->st->pkt_rejected++;
        return;
    }
    /* Nowhere to hold it: the oldest holes of this stream are given up early,
     * one at a time (never past this packet), until the pool has room or
     * this packet is next. */
    while (!ss->held_free && s->held_head && !s->snapshot && seq > s->next_seq) {
        uint64_t end = front_expired(ss, s, ss->now, 1);
        if (!end) break;
        if (end > seq) end = seq;
        range_give_up(ss, s, end);
    }
    if (!s->snapshot && seq <= s->next_seq) {
        apply_counted(ss, s, p, len, seq, count, ss->now);
        hole_drain(ss, s);
        return;
    }
    if (!s->snapshot && len <= FH_PEND_DATA && ss->held_free) {
        hole_open(ss, s);
        (void)hold(ss, s, p, len, seq, count);
        return;
    }
    /* Still nowhere (other streams fill the pool, or the packet is too big to
     * hold): everything before it is given up rather than lose it. */
    holes_give_up(ss, s, 1);
    if (s->snapshot) {
        ss->st->pkt_rejected++;
        return;
    }
    if (seq > s->next_seq) {
        gap(ss, s, seq - s->next_seq);
        lost_record(s, s->next_seq, seq);
        s->next_seq = seq;
    }
    apply_counted(ss, s, p, len, seq, count, ss->now);
    hole_drain(ss, s);
}

void fh_session_start(fh_session_t *ss, fh_stream_t *s, uint64_t seq0)
{
    (void)ss;
    if (seq0 <= 1) return;
    s->next_seq = 1;
    s->start_end = seq0;
}

void fh_session_expire(fh_session_t *ss, uint64_t now)
{
    if (!ss->holes) return;
    const uint64_t saved = ss->now;
    ss->now = now;
    for (uint32_t i = 0; i < ss->streams.n && ss->holes; i++) {
        fh_stream_t *s = &ss->streams.v[i];
        if (s->hole_since && !s->snapshot && (now == UINT64_MAX || now - s->hole_since > ss->gap_window_ns))
            holes_give_up(ss, s, now == UINT64_MAX);
    }
    ss->now = saved;
}

/* ------------------------------------------------------- snapshot recovery */

void fh_session_snapshot_wait(fh_session_t *ss, fh_stream_t *s)
{
    s->snapshot = FH_SNAP_WANTED;
    s->snapshot_tried = 1;
    hole_open(ss, s);                               /* off the in-sequence path: every packet is held */
}

uint64_t fh_session_held_end(const fh_session_t *ss, const fh_stream_t *s)
{
    uint64_t end = 0;
    for (uint32_t i = s->held_head; i; i = ss->held[i - 1].next) {
        const fh_pending_t *h = &ss->held[i - 1];
        if (h->seq + h->count > end) end = h->seq + h->count;
    }
    return end;
}

void fh_session_snapshot_done(fh_session_t *ss, fh_stream_t *s, uint64_t seq, int ok)
{
    s->snapshot = FH_SNAP_NONE;
    if (!ok) {
        s->snapshot_after = ss->now + FH_SNAP_RETRY_NS;
        /* As without a snapshot: what is missing past its window is a gap,
         * the held packets are applied up to the next hole; a late join's
         * books lack the day before its first packet, so every instrument
         * the stream shows is flagged. */
        s->gapped = 1;
        hole_drain(ss, s);
        holes_give_up(ss, s, 0);
        return;
    }
    s->gapped = 0;
    if (seq > s->next_seq) s->next_seq = seq;
    /* Held packets the snapshot already contains. */
    while (s->held_head && ss->held[s->held_head - 1].seq + ss->held[s->held_head - 1].count <= s->next_seq) {
        const uint32_t i = s->held_head - 1;
        s->held_head = ss->held[i].next;
        ss->st->duplicates += ss->held[i].count;
        ss->st->pkt_held--;
        ss->st->pkt_duplicate++;
        ss->st->snapshot_contained++;
        pend_free(ss, i);
    }
    /* Holes still open after it (older in sequence than the held packets)
     * get a fresh window for the lines, then the usual give-up (no second
     * snapshot for them). */
    s->hole_floor = ss->now ? ss->now : 1;
    s->hole_seq0 = s->next_seq;
    hole_drain(ss, s);
}

/* ------------------------------------------------------- line supervision */

/* Heartbeats keep a stream alive: one with no packet at all for silence_ns
 * (receive time) is flagged silent, with its instruments, until it speaks
 * again.  Swept every 100 ms of receive time, over this lane's streams. */
void fh_session_check_silence(fh_session_t *ss, uint64_t now)
{
    ss->next_silence_check = now + 100000000ull;
    if (!ss->silence_ns) return;
    for (uint32_t i = 0; i < ss->streams.n; i++) {
        fh_stream_t *s = &ss->streams.v[i];
        if (!s->last_rx || s->ended || s->silent || now - s->last_rx <= ss->silence_ns) continue;
        s->silent = 1;
        ss->st->silences++;
        ss->hooks.silent(ss->hooks.ctx, s, 1);
    }
}

void fh_session_alive(fh_session_t *ss, fh_stream_t *s)
{
    s->silent = 0;
    ss->hooks.silent(ss->hooks.ctx, s, 0);
}

/* A line (group:port) now carrying a session other than the one it carried:
 * the exchange started a new session (or a line was re-pointed).  Counted; the
 * new session is a new stream with its own sequence. */
void fh_session_line_changed(fh_session_t *ss, const fh_udp_view_t *u, const uint8_t *key)
{
    for (uint32_t i = 0; i < ss->n_groups; i++) {
        if (ss->groups[i].ip != u->dst_ip || ss->groups[i].port != u->dst_port) continue;
        ss->group_last = i;
        if (memcmp(ss->groups[i].session, key, FH_MOLD_SESSION_LEN) != 0) {
            ss->st->session_changes++;
            memcpy(ss->groups[i].session, key, FH_MOLD_SESSION_LEN);
        }
        return;
    }
    if (ss->n_groups == sizeof ss->groups / sizeof ss->groups[0]) return;   /* beyond 64 lines: not tracked */
    ss->groups[ss->n_groups].ip = u->dst_ip;
    ss->groups[ss->n_groups].port = u->dst_port;
    memcpy(ss->groups[ss->n_groups].session, key, FH_MOLD_SESSION_LEN);
    ss->group_last = ss->n_groups++;
}

int fh_session_all_ended(const fh_session_t *ss)
{
    if (ss->streams.n == 0) return 0;
    for (uint32_t i = 0; i < ss->streams.n; i++)
        if (!ss->streams.v[i].ended || ss->streams.v[i].snapshot) return 0;   /* a snapshot to apply first */
    return 1;
}
