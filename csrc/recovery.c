/* recovery.c -- snapshot recovery (GLIMPSE 5.0): late join and unrecoverable
 * gaps, cold paths of a lane (fh_api.h describes the contract).
 *
 * The session layer holds a stream's packets while it waits; this file asks
 * for the snapshot through a one-slot mailbox (the fetching thread reads the
 * request, posts the answer), checks the answer whole before touching a book,
 * empties the stream's books, applies the snapshot, and hands the stream back
 * to the session layer at the snapshot's sequence.  Nothing here runs per
 * message of the live feed. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recovery.h"

#define FH_SNAP_DEFAULT_TIMEOUT_MS 5000u

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fh_lane_set_snapshot(fh_lane_t *r, int all, int blocking, uint32_t timeout_ms, char *err, size_t errlen)
{
    if (r->mode == FH_MODE_DECODE) {
        fh_errf(err, errlen, "snapshot recovery needs books: not in decode-only mode");
        return -1;
    }
    /* What holding the largest snapshot the capacities allow costs, on top
     * of the books: a clear error now rather than an OOM kill when a server
     * sends that much. */
    const uint64_t lim = fh_snapshot_max_bytes(r->book.max_orders, r->book.n_instr);
    char what[224];
    snprintf(what, sizeof what,
             "the books and a snapshot (%u live orders, %u instruments: up to %.1f MiB, held "
             "%d times over while it is fetched)",
             r->book.max_orders, r->book.n_instr, (double)lim / (1024.0 * 1024.0), (int)FH_SNAP_COPIES);
    if (fh_mem_check(r->book.bytes + (uint64_t)FH_SNAP_COPIES * lim, 0, what, err, errlen) != 0) return -1;
    r->route.recover_all = all != 0;
    r->recovery.blocking = blocking != 0;
    r->recovery.timeout_ns = (uint64_t)(timeout_ms ? timeout_ms : FH_SNAP_DEFAULT_TIMEOUT_MS) * 1000000ull;
    r->recovery.max_bytes = lim;
    return 0;
}

uint64_t fh_snapshot_max_bytes(uint32_t max_orders, uint32_t max_instruments)
{
    return (uint64_t)max_orders * FH_SNAP_ORDER_BYTES + (uint64_t)max_instruments * FH_SNAP_INSTR_BYTES +
           FH_SNAP_SLACK_BYTES;
}

uint64_t fh_lane_snapshot_limit(const fh_lane_t *r) { return r->recovery.max_bytes; }

uint64_t fh_lane_snapshot_deadline_ns(const fh_lane_t *r, uint32_t ticket)
{
    /* t0 is written before the ticket is released, and not again until the
     * request is answered. */
    if (!ticket || ticket != __atomic_load_n(&r->recovery.ticket, __ATOMIC_ACQUIRE)) return 0;
    return r->recovery.t0 + r->recovery.timeout_ns;
}

int fh_lane_line_snapshot(fh_lane_t *r, uint32_t group, uint16_t port)
{
    for (uint32_t i = 0; i < r->route.n_lines; i++) {
        if (r->route.lines[i].group == group && r->route.lines[i].port == port) {
            r->route.recovery_lines |= 1ull << i;
            return 0;
        }
    }
    return -1;
}

uint32_t fh_lane_snapshot_request(fh_lane_t *r, uint32_t *group, uint16_t *port, uint8_t *session, uint64_t *next_seq)
{
    const uint32_t t = __atomic_load_n(&r->recovery.ticket, __ATOMIC_ACQUIRE);
    if (!t || __atomic_load_n(&r->recovery.claimed, __ATOMIC_ACQUIRE) == t) return 0;
    *group = r->recovery.group;
    *port = r->recovery.port;
    memcpy(session, r->recovery.session, FH_MOLD_SESSION_LEN);
    *next_seq = r->recovery.next_seq;
    return t;
}

/* Each request is answered once, by the poster or by the lane giving up on
 * it: whoever moves `claimed` from ticket - 1 to ticket. */
static int snap_claim(fh_lane_t *r, uint32_t ticket)
{
    uint32_t want = ticket - 1;
    return __atomic_compare_exchange_n(&r->recovery.claimed, &want, ticket, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int fh_lane_snapshot_post(fh_lane_t *r, uint32_t ticket, const uint8_t *blocks, size_t len, uint64_t sequence,
                          int failed)
{
    if (!ticket || ticket != __atomic_load_n(&r->recovery.ticket, __ATOMIC_ACQUIRE)) return -1;
    uint8_t *copy = NULL;
    /* Past what the capacities allow: refused before it costs a copy. */
    const int too_big = !failed && len > r->recovery.max_bytes;
    if (too_big) failed = 1;
    if (!failed && len) {
        copy = malloc(len);
        if (!copy) failed = 1;
        else memcpy(copy, blocks, len);
    }
    if (!snap_claim(r, ticket)) {
        free(copy);
        return -1;
    }
    free(r->recovery.buf);
    r->recovery.buf = copy;
    r->recovery.len = failed ? 0 : len;
    r->recovery.seq = sequence;
    r->recovery.failed = failed != 0;
    r->recovery.too_big = too_big;
    __atomic_store_n(&r->recovery.posted, ticket, __ATOMIC_RELEASE);
    return 0;
}

static void snap_event(fh_lane_t *r, uint8_t what, uint64_t q1, uint64_t q2)
{
    if (!r->book.publish) return;
    r->book.now = 0;
    fh_shm_event_t *e = fh_book_event_begin(&r->book, 0, FH_EV_SNAPSHOT, what, 0);
    e->qty1 = q1;
    e->qty2 = q2;
    fh_book_event_commit(&r->book, e);
}

/* Post the request of stream s (the mailbox holds one). */
static void snap_ask(fh_lane_t *r, fh_stream_t *s)
{
    r->recovery.stream = (uint32_t)(s - r->session.streams.v);
    r->recovery.port = s->port;
    r->recovery.group = s->group;
    memcpy(r->recovery.session, s->key, FH_MOLD_SESSION_LEN);
    r->recovery.next_seq = s->next_seq;
    r->recovery.t0 = mono_ns();
    s->snapshot = FH_SNAP_ASKED;
    snap_event(r, 0, s->next_seq, 0);
    __atomic_store_n(&r->recovery.asked, 1u, __ATOMIC_RELEASE);
    __atomic_store_n(&r->recovery.ticket, r->recovery.ticket + 1, __ATOMIC_RELEASE);
}

/* Every block of the answer decodes (a length and a known type, each inside
 * the buffer): messages counted into *n.  A snapshot is used whole or not at all. */
static int snap_check(const uint8_t *p, size_t len, uint64_t *n)
{
    size_t off = 0;
    *n = 0;
    while (off < len) {
        if (len - off < 2) return -1;
        const uint32_t ml = fh_be16(p + off);
        off += 2;
        /* What the decoder refuses: an unknown type or a length not its own. */
        if (ml == 0 || ml > len - off || fh_itch_msg_len(p[off]) != ml) return -1;
        off += ml;
        (*n)++;
    }
    return 0;
}

/* Apply the posted answer to the stream it was asked for. */
static void snap_apply(fh_lane_t *r)
{
    fh_stream_t *s = &r->session.streams.v[r->recovery.stream];
    const uint64_t seq = r->recovery.seq;
    const uint8_t *p = r->recovery.buf;
    const size_t len = r->recovery.len;
    __atomic_store_n(&r->recovery.asked, 0u, __ATOMIC_RELEASE);
    uint64_t n = 0;
    int ok = !r->recovery.failed;
    if (r->recovery.too_big) r->st.errors[FH_ERR_SNAPSHOT_BAD]++;
    r->recovery.too_big = 0;
    if (ok) {
        /* Not older than what the stream has (the books would go back in
         * time with nothing to bring them forward), not absurdly far past
         * what it holds. */
        const uint64_t hi = fh_session_held_end(&r->session, s);
        const uint64_t top = (hi > r->recovery.next_seq ? hi : r->recovery.next_seq);
        if (seq < r->recovery.next_seq || (seq > top && seq - top > FH_SEQ_IMPLAUSIBLE) ||
            snap_check(p, len, &n) != 0) {
            r->st.errors[FH_ERR_SNAPSHOT_BAD]++;
            ok = 0;
        }
    }
    if (!ok) {
        free(r->recovery.buf);                          /* nothing of it is used */
        r->recovery.buf = NULL;
        r->st.snapshot_failures++;
        snap_event(r, 2, s->next_seq, 0);
        fh_session_snapshot_done(&r->session, s, 0, 0);
        fh_book_flush_pending(&r->book);
        return;
    }
    uint8_t *bits = r->carried.bits + (size_t)r->recovery.stream * r->carried.bytes;
    /* A late join's stream has shown no instrument yet: nothing to empty (the
     * clear is a pass over every order entry). */
    int any = 0;
    for (uint32_t i = 0; i < r->carried.bytes && !any; i++) any = bits[i] != 0;
    if (any) {
        fh_book_clear(&r->book, bits);
        fh_book_flush_pending(&r->book);
    }
    /* The snapshot's messages, in batches as a packet's; its instruments are the stream's. */
    r->book.stream_seen = bits;
    r->book.stream_gapped = 0;
    r->book.now = 0;
    size_t off = 0;
    uint32_t k = 0;
    while (off < len) {
        const uint32_t ml = fh_be16(p + off);
        (void)fh_itch_decode_inline(p + off + 2, ml, &r->decoded.ops[k++]);
        off += 2 + ml;
        if (k == FH_PKT_MSGS || off >= len) {
            fh_book_apply_batch(&r->book, r->decoded.ops, k);
            fh_book_flush_pending(&r->book);
            k = 0;
        }
    }
    r->st.snapshots++;
    r->st.snapshot_messages += n;
    r->st.snapshot_recover_ns = mono_ns() - r->recovery.t0;
    /* Done, then each instrument of the stream recovered (its STALE cleared). */
    snap_event(r, 1, seq, n);
    for (uint32_t i = 0; i < r->carried.bytes; i++)
        for (uint32_t b = 0; bits[i] && b < 8; b++)
            if (bits[i] & (1u << b)) fh_book_clear_stale(&r->book, i * 8 + b);
    free(r->recovery.buf);
    r->recovery.buf = NULL;
    r->book.rx_ts = r->session.now;
    fh_session_snapshot_done(&r->session, s, seq, 1);
    fh_book_flush_pending(&r->book);
}

/* The next stream waiting whose request is not posted: asked now. */
static void snap_next(fh_lane_t *r)
{
    if (r->recovery.asked) return;
    for (uint32_t i = 0; i < r->session.streams.n; i++) {
        if (r->session.streams.v[i].snapshot == FH_SNAP_WANTED) {
            snap_ask(r, &r->session.streams.v[i]);
            return;
        }
    }
}

/* Give up on the outstanding request (no answer in time, the replay stopped,
 * the input ended): unless the poster claimed it first, it is a failure and a
 * late answer is refused.  Then applied either way. */
static void snap_give_up(fh_lane_t *r)
{
    const uint32_t t = r->recovery.ticket;
    if (snap_claim(r, t)) {
        free(r->recovery.buf);
        r->recovery.buf = NULL;
        r->recovery.len = 0;
        r->recovery.failed = 1;
        r->recovery.too_big = 0;
        __atomic_store_n(&r->recovery.posted, t, __ATOMIC_RELEASE);
    }
    while (__atomic_load_n(&r->recovery.posted, __ATOMIC_ACQUIRE) != t) FH_CPU_RELAX();   /* the poster is copying */
    snap_apply(r);
}

/* The fetcher answers by t0 + timeout_ns (it is given that deadline); the
 * lane gives up on its own a grace later, for a fetcher that is stuck. */
static uint64_t snap_give_up_at(const fh_lane_t *r)
{
    return r->recovery.t0 + r->recovery.timeout_ns + (uint64_t)FH_SNAP_GRACE_MS * 1000000ull;
}

/* A blocking wait for the answer (a file replay: the file can wait). */
static void snap_wait(fh_lane_t *r)
{
    const uint64_t deadline = snap_give_up_at(r);
    const uint32_t t = r->recovery.ticket;
    while (__atomic_load_n(&r->recovery.posted, __ATOMIC_ACQUIRE) != t) {
        if (fh_pipe_should_stop(r) || mono_ns() > deadline) {
            snap_give_up(r);
            return;
        }
        const struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    snap_apply(r);
}

void fh_recovery_ask(void *ctx, fh_stream_t *s)
{
    fh_lane_t *r = ctx;
    if (r->mode == FH_MODE_DECODE || r->recovery.finishing) {
        /* The input is over (a hole given up at the end): no snapshot can come. */
        r->st.snapshot_failures++;
        snap_event(r, 2, s->next_seq, 0);
        fh_session_snapshot_done(&r->session, s, 0, 0);
        return;
    }
    if (!r->recovery.blocking) {
        snap_next(r);
        return;
    }
    /* Blocking: one request at a time, answered before the walk goes on. */
    if (s->snapshot == FH_SNAP_WANTED && !r->recovery.asked) {
        snap_ask(r, s);
        snap_wait(r);
    }
}

void fh_recovery_poll(fh_lane_t *r)
{
    if (r->recovery.blocking) return;
    if (r->recovery.asked && __atomic_load_n(&r->recovery.posted, __ATOMIC_ACQUIRE) == r->recovery.ticket)
        snap_apply(r);
    else if (r->recovery.asked && mono_ns() > snap_give_up_at(r)) snap_give_up(r);
    snap_next(r);
}

void fh_recovery_finish(fh_lane_t *r)
{
    /* Streams still waiting get no snapshot now: given up as without one. */
    r->recovery.finishing = 1;
    if (r->recovery.asked) {
        if (__atomic_load_n(&r->recovery.posted, __ATOMIC_ACQUIRE) == r->recovery.ticket) snap_apply(r);
        else snap_give_up(r);
    }
    for (uint32_t i = 0; i < r->session.streams.n; i++) {
        fh_stream_t *s = &r->session.streams.v[i];
        if (s->snapshot) {
            r->st.snapshot_failures++;
            fh_session_snapshot_done(&r->session, s, 0, 0);
        }
    }
    fh_book_flush_pending(&r->book);
}
