/* fuzz_common.h -- what the libFuzzer harnesses share (built by scripts/fuzz.sh).
 *
 * Each harness is one C file compiled straight against the csrc/ sources with
 * -fsanitize=fuzzer,address,undefined, and creates a fresh replay context per
 * input with small capacities, so that a run is fast, starts from nothing and
 * cannot be affected by the input before it.
 *
 * Two things differ from the package build, both for speed, neither for
 * behaviour on the paths fuzzed:
 *   - csrc/tsc.c is left out and fh_tsc_calibrate() is defined here: the real
 *     one measures the TSC for 5 ms, which a publish-mode context does at
 *     creation and would cap a harness at 200 runs a second.  This one sets a
 *     plausible invariant TSC (1 GHz) so the TSC code paths still run.
 *   - FH_EXACT_BUFFERS is defined, as in the sanitizer build of the package:
 *     inputs read from files go into exact-size heap buffers, so ASan sees a
 *     read one byte past any of them. */
#ifndef FH_FUZZ_COMMON_H
#define FH_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

void fh_tsc_calibrate(fh_tsc_t *t)
{
    memset(t, 0, sizeof *t);
#if FH_HAVE_TSC
    t->hz = 1000000000ull;
    t->mult = 1ull << 32;                   /* 1 ns per tick */
    t->base_ns = 1700000000000000000ull;
    t->base_tsc = __rdtsc();
#endif
}

/* An invariant broken is a bug like a crash: say which and abort, so that
 * libFuzzer keeps the input as a crash artifact. */
#define FUZZ_CHECK(cond, ...)                                                                   \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* Counters are totals since the start: none may ever go down.  (checksum is
 * a sum modulo 2^64, first/last_ts and orders_live are not totals.) */
static void fuzz_check_monotonic(const fh_stats_t *a, const fh_stats_t *b)
{
#define MONO(f) \
    FUZZ_CHECK(b->f >= a->f, "%s went from %llu to %llu", #f, (unsigned long long)a->f, (unsigned long long)b->f)
    MONO(packets);
    MONO(bytes);
    MONO(mold_packets);
    MONO(heartbeats);
    MONO(end_of_session);
    MONO(messages);
    MONO(gaps);
    MONO(recovered);
    MONO(duplicates);
    MONO(streams);
    MONO(session_changes);
    MONO(silences);
    MONO(book.orders_peak);
    MONO(book.adds);
    MONO(book.executes);
    MONO(book.cancels);
    MONO(book.deletes);
    MONO(book.replaces);
    MONO(book.trades);
    MONO(book.breaks);
    MONO(book.unknown_ref);
    MONO(book.add_replaced);
    MONO(book.exec_clamped);
    MONO(book.cancel_clamped);
    MONO(book.zero_rejected);
    MONO(book.bad_side);
    MONO(book.locate_range);
    MONO(book.order_full);
    MONO(book.level_full);
    MONO(book.publishes);
    MONO(book.events);
#undef MONO
    for (int i = 0; i < 32; i++) FUZZ_CHECK(b->errors[i] >= a->errors[i], "errors[%s] went down", fh_err_name(i));
    for (int i = 0; i < 256; i++) FUZZ_CHECK(b->by_type[i] >= a->by_type[i], "by_type[%d] went down", i);
    FUZZ_CHECK(b->book.orders_live <= b->book.orders_peak, "orders_live %llu above orders_peak %llu",
               (unsigned long long)b->book.orders_live, (unsigned long long)b->book.orders_peak);
}

/* Consistency of one context at rest: what it counted adds up. */
static void fuzz_check_totals(const fh_stats_t *st)
{
    uint64_t typed = 0;
    for (int i = 0; i < 256; i++) typed += st->by_type[i];
    FUZZ_CHECK(typed == st->messages, "by_type sums to %llu, messages %llu", (unsigned long long)typed,
               (unsigned long long)st->messages);
    FUZZ_CHECK(st->mold_packets <= st->packets, "more MoldUDP64 packets (%llu) than frames (%llu)",
               (unsigned long long)st->mold_packets, (unsigned long long)st->packets);
}

/* Small capacities: a run takes microseconds and every "full" path is
 * reachable by a short input. */
static void fuzz_small_cfg(fh_lane_cfg_t *c, uint32_t mode)
{
    memset(c, 0, sizeof *c);
    c->mode = mode;
    c->max_streams = 4;
    c->max_orders = 1024;
    c->max_levels = 4096;
    c->max_instruments = 64;
    c->depth = 5;
    c->ring_events = 1024;
    c->gap_window_us = 200;
    c->gap_buffer = 8;
    c->silence_ms = 5;
}

/* A copy of n bytes in its own exact-size heap block: ASan then reports any
 * read past the end of what the pipeline was given. */
static uint8_t *fuzz_exact(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b) abort();
    if (n) memcpy(b, p, n);
    return b;
}

/* At rest (after fh_lane_finish): every hole closed, every held packet
 * back in the pool, nothing decoded left unapplied, the totals add up. */
static void fuzz_check_at_rest(fh_lane_t *r)
{
    FUZZ_CHECK(r->session.holes == 0, "%u holes open after finish", r->session.holes);
    for (uint32_t i = 0; i < r->session.streams.n; i++) {
        FUZZ_CHECK(!r->session.streams.v[i].hole_since, "stream %u still has a hole", i);
        FUZZ_CHECK(!r->session.streams.v[i].held_head, "stream %u still holds packets", i);
    }
    uint32_t free_n = 0;
    for (uint32_t k = r->session.held_free; k && free_n <= r->session.held_cap; k = r->session.held[k - 1].next)
        free_n++;
    FUZZ_CHECK(free_n == r->session.held_cap, "gap buffer: %u of %u packets back in the pool", free_n,
               r->session.held_cap);
    FUZZ_CHECK(r->decoded.n == 0, "%u decoded messages left unapplied", r->decoded.n);
    fuzz_check_totals(&r->st);
}

/* The segment as a reader sees it: it checks out, every slot and the
 * counters read back consistently, no ring yields more than it holds. */
static void fuzz_check_segment(fh_lane_t *r, uint32_t lanes)
{
    uint64_t size = 0;
    const uint8_t *base = fh_lane_shm(r, &size);
    if (!base) return;
    char err[256];
    FUZZ_CHECK(fh_shm_check(base, size, err, sizeof err) == 0, "segment check: %s", err);
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    FUZZ_CHECK((uint64_t)h->slot_size * h->n_slots <= (64u << 20), "slots larger than expected");
    uint8_t *slots = malloc((size_t)h->slot_size * h->n_slots);
    FUZZ_CHECK(fh_shm_read_slots(base, 0, h->n_slots, slots, 16) == h->n_slots, "a slot stays busy at rest");
    /* What Python gets: the same slots widened to int64, value for value. */
    const uint32_t wsz = fh_read_slot_size(h->depth);
    uint8_t *wide = malloc((size_t)wsz * h->n_slots);
    FUZZ_CHECK(slots && wide, "out of memory for %u slots", h->n_slots);
    FUZZ_CHECK(fh_shm_read_books(base, 0, h->n_slots, wide, 16) == h->n_slots, "a slot stays busy at rest (wide)");
    for (uint32_t i = 0; i < h->n_slots; i++) {
        const fh_shm_slot_t *s = (const fh_shm_slot_t *)(slots + (size_t)i * h->slot_size);
        const fh_read_slot_t *w = (const fh_read_slot_t *)(wide + (size_t)i * wsz);
        FUZZ_CHECK(w->seq == s->seq && w->n_bid == s->n_bid && w->n_ask == s->n_ask && w->locate == s->locate &&
                       w->flags == s->flags && w->last_trade_price == s->last_trade_price &&
                       w->last_trade_shares >= 0 && w->noii_paired_shares >= 0 && w->updates >= 0,
                   "slot %u widened differently", i);
        const uint8_t *lv = (const uint8_t *)(s + 1);
        const int64_t *wl = (const int64_t *)(w + 1);
        for (uint32_t k = 0; k < 2u * h->depth; k++) {
            const uint32_t side = k / h->depth, j = k % h->depth;
            uint32_t px, od;
            uint64_t sh;
            memcpy(&px, lv + side * 16u * h->depth + 4u * j, 4);
            memcpy(&od, lv + side * 16u * h->depth + 4u * h->depth + 4u * j, 4);
            memcpy(&sh, lv + side * 16u * h->depth + 8u * h->depth + 8u * j, 8);
            FUZZ_CHECK(wl[side * 3u * h->depth + j] == px && wl[side * 3u * h->depth + h->depth + j] == od &&
                           wl[side * 3u * h->depth + 2u * h->depth + j] == (sh > INT64_MAX ? INT64_MAX : (int64_t)sh),
                       "slot %u level %u widened differently", i, k);
        }
    }
    free(slots);
    free(wide);
    for (uint32_t lane = 0; lane < lanes; lane++) {
        fh_stats_t c;
        FUZZ_CHECK(fh_shm_read_counters(base, lane, &c, 16) == 0, "lane %u counters busy at rest", lane);
        uint64_t cursor = 0, lapped = 0, wcursor = 0, wlapped = 0;
        fh_shm_event_t ev[64];
        fh_read_event_t wev[64];
        uint32_t got, total = 0;
        while ((got = fh_shm_poll_events(base, lane, &cursor, ev, 64, &lapped)) != 0) {
            total += got;
            FUZZ_CHECK(fh_shm_read_events(base, lane, &wcursor, wev, got, &wlapped) == got && wcursor == cursor &&
                           wlapped == lapped,
                       "lane %u: the widened reader read differently", lane);
            for (uint32_t k = 0; k < got; k++)
                FUZZ_CHECK(wev[k].seq == ev[k].seq && wev[k].price1 == ev[k].price1 && wev[k].price2 == ev[k].price2 &&
                               wev[k].qty1 == (ev[k].qty1 > INT64_MAX ? INT64_MAX : (int64_t)ev[k].qty1) &&
                               wev[k].qty2 == (ev[k].qty2 > INT64_MAX ? INT64_MAX : (int64_t)ev[k].qty2) &&
                               wev[k].locate == ev[k].locate && wev[k].type == ev[k].type && wev[k].aux == ev[k].aux &&
                               wev[k].lane == ev[k].lane,
                           "lane %u event %u widened differently", lane, k);
        }
        FUZZ_CHECK(total <= h->ring_capacity, "%u events from a %llu-event ring", total,
                   (unsigned long long)h->ring_capacity);
    }
}

/* The stream the session harnesses set up (fuzz_rerequest, fuzz_snapshot). */
#define FUZZ_SESSION "TESTSESS01"
#define FUZZ_GROUP_A 0xE9360C6Fu   /* 233.54.12.111 */
#define FUZZ_PORT 26477

/* One Ethernet/IPv4/UDP frame to FUZZ_GROUP_A:FUZZ_PORT (session FUZZ_SESSION) carrying a MoldUDP64 packet of
 * `count` Add Order messages for locate 1 (refs from ref0), or a heartbeat. */
static size_t fuzz_mold_adds(uint8_t *f, uint64_t seq, uint16_t count, uint64_t ref0)
{
    uint8_t *p = f + 42;
    memcpy(p, FUZZ_SESSION, 10);
    fh_put_be64(p + 10, seq);
    fh_put_be16(p + 18, count);
    size_t n = 20;
    for (uint16_t i = 0; count != 0xFFFF && i < count; i++) {
        uint8_t *m = p + n + 2;
        fh_put_be16(p + n, 36);
        memset(m, 0, 36);
        m[0] = 'A';
        fh_put_be16(m + 1, 1);
        fh_put_be64(m + 11, ref0 + i);
        m[19] = (i & 1) ? 'S' : 'B';
        fh_put_be32(m + 20, 100);
        memcpy(m + 24, "FUZZ    ", 8);
        fh_put_be32(m + 32, 1000000 + (i & 1) * 100);
        n += 38;
    }
    memset(f, 0, 42);
    fh_put_be16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    fh_put_be16(ip + 2, (uint16_t)(20 + 8 + n));
    ip[8] = 32;
    ip[9] = 17;
    fh_put_be32(ip + 12, 0x0A000001u);
    fh_put_be32(ip + 16, FUZZ_GROUP_A);
    uint8_t *udp = ip + 20;
    fh_put_be16(udp, 40000);
    fh_put_be16(udp + 2, FUZZ_PORT);
    fh_put_be16(udp + 4, (uint16_t)(8 + n));
    return 42 + n;
}

#endif
