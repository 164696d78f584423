/* pipeline.c -- a lane's context: creation from the config (everything
 * preallocated here), lines and re-request servers, latency histograms, the
 * session layer's hooks, polling, the end of a replay, counters out.  Start-up
 * and cold paths only: the per-frame work is inline in pipeline.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

static int hook_apply(void *ctx, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count,
                      uint64_t rx_ts);
static void hook_gap(void *ctx, fh_stream_t *s, uint64_t missing);
static void hook_silent(void *ctx, fh_stream_t *s, int on);
static void shm_venues(fh_lane_t *r);

#define FH_VERSION "0.1.0"
/* Streams: MoldUDP64 sessions and PITCH units (a Cboe venue has dozens of
 * units, each a stream of its own). */
#define FH_DEFAULT_STREAMS 256u

const char *fh_version(void) { return FH_VERSION; }

static const char *const err_names[FH_ERR__COUNT] = {
    [FH_ERR_ETH_TRUNCATED] = "eth_truncated",
    [FH_ERR_VLAN_TRUNCATED] = "vlan_truncated",
    [FH_ERR_ARP] = "arp",
    [FH_ERR_IPV6] = "ipv6",
    [FH_ERR_ETHERTYPE_OTHER] = "ethertype_other",
    [FH_ERR_IP_TRUNCATED] = "ip_truncated",
    [FH_ERR_IP_BAD_VERSION] = "ip_bad_version",
    [FH_ERR_IP_BAD_HDR_LEN] = "ip_bad_header_length",
    [FH_ERR_IP_BAD_TOTAL_LEN] = "ip_bad_total_length",
    [FH_ERR_IP_FRAGMENT] = "ip_fragment",
    [FH_ERR_IP_NOT_UDP] = "ip_not_udp",
    [FH_ERR_UDP_TRUNCATED] = "udp_truncated",
    [FH_ERR_UDP_BAD_LEN] = "udp_bad_length",
    [FH_ERR_MOLD_TRUNCATED] = "mold_truncated",
    [FH_ERR_MOLD_COUNT_OVERRUN] = "mold_count_overrun",
    [FH_ERR_MOLD_BLOCK_OVERRUN] = "mold_block_overrun",
    [FH_ERR_MOLD_TRAILING] = "mold_trailing_bytes",
    [FH_ERR_MOLD_ZERO_BLOCK] = "mold_zero_length_block",
    [FH_ERR_ITCH_UNKNOWN_TYPE] = "itch_unknown_type",
    [FH_ERR_ITCH_BAD_LENGTH] = "itch_bad_length",
    [FH_ERR_SRC_TRUNCATED] = "capture_truncated",
    [FH_ERR_SRC_SNAPPED] = "capture_snapped",
    [FH_ERR_SRC_LINKTYPE] = "capture_link_type",
    [FH_ERR_SRC_BAD_RECORD] = "capture_bad_record",
    [FH_ERR_STREAM_TABLE_FULL] = "stream_table_full",
    [FH_ERR_BINFILE_ZERO_LEN] = "binfile_zero_length",
    [FH_ERR_GAP_BUFFER_FULL] = "gap_buffer_full",
    [FH_ERR_UNCONFIGURED] = "unconfigured_group",
    [FH_ERR_RR_TIMEOUT] = "rerequest_timeout",
    [FH_ERR_RR_FOREIGN] = "rerequest_foreign_reply",
    [FH_ERR_MOLD_SEQ_IMPLAUSIBLE] = "mold_seq_implausible",
    [FH_ERR_SNAPSHOT_BAD] = "snapshot_rejected",
    [FH_ERR_PITCH_TRUNCATED] = "pitch_truncated",
    [FH_ERR_PITCH_HDR_LENGTH] = "pitch_hdr_length",
    [FH_ERR_PITCH_COUNT_OVERRUN] = "pitch_count_overrun",
    [FH_ERR_PITCH_MSG_OVERRUN] = "pitch_msg_overrun",
    [FH_ERR_PITCH_TRAILING] = "pitch_trailing_bytes",
    [FH_ERR_PITCH_UNKNOWN_TYPE] = "pitch_unknown_type",
    [FH_ERR_PITCH_BAD_LENGTH] = "pitch_bad_length",
    [FH_ERR_PITCH_UNSEQUENCED] = "pitch_unsequenced",
    [FH_ERR_PITCH_SEQ_WRAP] = "pitch_seq_wrap",
    [FH_ERR_PITCH_PRICE_RANGE] = "pitch_price_range",
    [FH_ERR_PITCH_ID_RANGE] = "pitch_id_range",
    [FH_ERR_IEX_TRUNCATED] = "iex_truncated",
    [FH_ERR_IEX_HEADER] = "iex_header",
    [FH_ERR_IEX_PROTOCOL] = "iex_protocol",
    [FH_ERR_IEX_COUNT_OVERRUN] = "iex_count_overrun",
    [FH_ERR_IEX_MSG_OVERRUN] = "iex_msg_overrun",
    [FH_ERR_IEX_TRAILING] = "iex_trailing_bytes",
    [FH_ERR_IEX_UNKNOWN_TYPE] = "iex_unknown_type",
    [FH_ERR_IEX_BAD_LENGTH] = "iex_bad_length",
    [FH_ERR_IEX_PRICE_RANGE] = "iex_price_range",
    [FH_ERR_IEX_ID_RANGE] = "iex_id_range",
};
_Static_assert(sizeof(((fh_stats_t *)0)->errors) / sizeof(uint64_t) >= FH_ERR__COUNT, "errors[] too small");

const char *fh_err_name(int e) { return (e >= 0 && e < FH_ERR__COUNT && err_names[e]) ? err_names[e] : "unknown"; }

#define FH_DEFAULT_ORDERS (2u << 20)
/* Every instrument id there can be: ITCH locates below FH_PITCH_ID_BASE, then
 * the PITCH venues' ids (pitch.h).  Untouched slots cost address space only. */
#define FH_DEFAULT_INSTRUMENTS 65535u
#define FH_DEFAULT_LEVELS (4u << 20)
#define FH_DEFAULT_DEPTH 10u
#define FH_DEFAULT_RING (1u << 20)
#define FH_DEFAULT_GAP_WINDOW_US 1000u
#define FH_DEFAULT_GAP_BUFFER 4096u
#define FH_DEFAULT_SILENCE_MS 3000u

/* Lane `lane` of a replay; lane 0 (first == NULL) creates the segment, the
 * others take their view of first's. */
fh_lane_t *fh_pipe_create(const fh_lane_cfg_t *cfg, fh_lane_t *first, uint32_t lane, const fh_pipe_upper_t *up,
                          char *err, size_t errlen)
{
    fh_lane_cfg_t c;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    const uint32_t streams = c.max_streams ? c.max_streams : FH_DEFAULT_STREAMS;
    if (streams > 1u << 16) {
        fh_errf(err, errlen, "max_streams %u is absurd (limit 65536)", streams);
        return NULL;
    }
    if (c.mode > FH_MODE_DECODE) {
        fh_errf(err, errlen, "unknown mode %u", c.mode);
        return NULL;
    }
    const uint32_t depth = c.depth ? c.depth : FH_DEFAULT_DEPTH;
    if (depth > FH_SHM_MAX_DEPTH) {
        fh_errf(err, errlen, "depth %u out of range 1..%d", depth, FH_SHM_MAX_DEPTH);
        return NULL;
    }
    const uint32_t n_instr = c.max_instruments ? c.max_instruments : FH_DEFAULT_INSTRUMENTS;
    const uint32_t ring = c.ring_events ? c.ring_events : FH_DEFAULT_RING;
    const uint32_t lanes = c.lanes ? c.lanes : 1;
    if (lanes > FH_SHM_MAX_LANES) {
        fh_errf(err, errlen, "%u lanes: at most %d", lanes, FH_SHM_MAX_LANES);
        return NULL;
    }

    fh_lane_t *r = aligned_alloc(FH_CACHELINE, (sizeof *r + FH_CACHELINE - 1) & ~(size_t)(FH_CACHELINE - 1));
    if (!r) {
        fh_errf(err, errlen, "out of memory");
        return NULL;
    }
    memset(r, 0, sizeof *r);
    if (!up || !up->walk_pitch || !up->walk_iex || !up->recovery_ask || !up->recovery_poll || !up->recovery_finish) {
        free(r);
        fh_errf(err, errlen, "a lane needs its upper stages");
        return NULL;
    }
    r->up = *up;
    fh_rr_init(&r->session.rerequest);
    r->cfg = c;
    if (c.shm_name) {
        snprintf(r->shm_name, sizeof r->shm_name, "%s", c.shm_name);
        r->cfg.shm_name = r->shm_name;
    }
    r->mode = c.mode;
    r->counters_due = UINT64_MAX;                   /* nothing to look up until a stop or a named segment */
    /* Pacing multiplies capture-time gaps by 1/speed: outside 1e-6..1e6 that
     * product leaves the range of the u64 wall clock (docs/robustness.md). */
    if (c.speed != 0 && !(c.speed >= 1e-6 && c.speed <= 1e6)) {
        fh_errf(err, errlen, "speed must be 0 (as fast as possible) or a factor in 1e-06..1e+06, not %g", c.speed);
        goto fail;
    }
    r->pace.scale = c.speed > 0 ? 1.0 / c.speed : 0.0;
    r->route.lane = lane;
    r->route.n_lanes = lanes;
    r->input.errors = lane == 0 ? r->st.errors : r->input.discard;
    /* Venues until a config says otherwise: ITCH on XNAS, PITCH on BATS. */
    memcpy(r->route.venue_names[0], "XNAS", 5);
    memcpy(r->route.venue_names[1], "BATS", 5);
    r->route.venue_protocol[1] = FH_PROTO_PITCH;
    r->route.n_venues = 2;
    r->route.pitch_default_venue = 1;
    r->route.iex_default_venue = FH_ROUTE_VENUE_NONE;
    r->decoded.ops = calloc(FH_PKT_MSGS, sizeof *r->decoded.ops);
    if (!r->decoded.ops) {
        fh_errf(err, errlen, "out of memory for the packet's decoded messages");
        goto fail;
    }
    fh_prefault(r->decoded.ops, FH_PKT_MSGS * sizeof *r->decoded.ops);
    {
        const fh_session_hooks_t hooks = {hook_apply, hook_gap, hook_silent, r->up.recovery_ask, r};
        if (fh_session_init(&r->session, &r->st, streams, c.gap_buffer ? c.gap_buffer : FH_DEFAULT_GAP_BUFFER,
                            (uint64_t)(c.gap_window_us ? c.gap_window_us : FH_DEFAULT_GAP_WINDOW_US) * 1000u,
                            (uint64_t)(c.silence_ms ? c.silence_ms : FH_DEFAULT_SILENCE_MS) * 1000000ull, &hooks, err,
                            errlen) != 0)
            goto fail;
    }
    if (r->mode != FH_MODE_DECODE) {
        if (fh_book_init(&r->book, c.max_orders ? c.max_orders : FH_DEFAULT_ORDERS, n_instr,
                         c.max_levels ? c.max_levels : FH_DEFAULT_LEVELS, depth, err, errlen) != 0)
            goto fail;
        r->book.counters = &r->st.book;
        fh_publish_hooks(&r->book);
        r->carried.bytes = (n_instr + 1 + 7) / 8;
        r->carried.bits = calloc(streams, r->carried.bytes);
        if (!r->carried.bits) {
            fh_errf(err, errlen, "out of memory for stream bitmaps");
            goto fail;
        }
        /* Zero pages until PITCH is seen: an ITCH run never touches it. */
        r->route.pitch_ids.v = calloc((size_t)1 << FH_PITCH_IDS_BITS, sizeof *r->route.pitch_ids.v);
        if (!r->route.pitch_ids.v) {
            fh_errf(err, errlen, "out of memory for the PITCH symbol map");
            goto fail;
        }
    }
    if (r->pace.scale != 0.0 || r->mode == FH_MODE_PUBLISH) {
        if (first) r->tsc = first->tsc;
        else fh_tsc_calibrate(&r->tsc);
    }
    if (r->mode == FH_MODE_PUBLISH) {
        if (first) {
            fh_shm_lane_view(&first->shm, lane, &r->shm);
        } else {
            if (fh_shm_create(&r->shm, c.shm_name, c.shm_mode, n_instr + 1, depth, ring, lanes, err, errlen) != 0)
                goto fail;
        }
        r->book.publish = 1;
        r->book.shm = &r->shm;
        r->book.tsc = &r->tsc;
        if (!first) {
            fh_shm_header_t *h = r->shm.hdr;
            h->tsc_base = r->tsc.base_tsc;
            h->tsc_base_ns = r->tsc.base_ns;
            h->tsc_mult = r->tsc.mult;
            h->tsc_hz = r->tsc.hz;
            fh_book_publish_all(&r->book);              /* every slot once, before any lane runs */
        }
        fh_shm_publish_counters(&r->shm, &r->st, fh_tsc_ns(&r->tsc));
        if (r->shm.named) r->counters_due = 1;      /* refreshed from the first frame on */
        shm_venues(r);
        if (!first) FH_STORE_RELEASE(&r->shm.hdr->state, (uint32_t)FH_SHM_RUNNING);
    }
    return r;
fail:
    fh_lane_free(r);
    return NULL;
}

int fh_lane_add_line(fh_lane_t *r, uint32_t group, uint16_t port, uint32_t lane, uint32_t rr_ip, uint16_t rr_port)
{
    if (r->route.n_lines == sizeof r->route.lines / sizeof r->route.lines[0] || lane >= r->route.n_lanes) return -1;
    if (rr_ip && fh_rr_open(&r->session.rerequest, NULL, 0) != 0) return -1;
    r->route.lines[r->route.n_lines].group = group;
    r->route.lines[r->route.n_lines].port = port;
    r->route.lines[r->route.n_lines].lane = (uint16_t)lane;
    r->route.lines[r->route.n_lines].rerequest_ip = rr_ip;
    r->route.lines[r->route.n_lines].rerequest_port = rr_port;
    r->route.n_lines++;
    return 0;
}

int fh_lane_set_rerequest(fh_lane_t *r, uint32_t ip, uint16_t port, uint32_t timeout_ms, char *err, size_t errlen)
{
    if (timeout_ms) r->session.rerequest.timeout_ms = timeout_ms;
    if (!ip) return 0;
    if (!port) {
        fh_errf(err, errlen, "re-request server port 0");
        return -1;
    }
    if (fh_rr_open(&r->session.rerequest, err, errlen) != 0) return -1;
    r->route.rerequest_ip = ip;
    r->route.rerequest_port = port;
    return 0;
}

int fh_lane_enable_latency(fh_lane_t *r, uint32_t every, uint32_t stages_every, char *err, size_t errlen)
{
    if (every == 0) {
        fh_errf(err, errlen, "latency sampling interval must be >= 1 packet");
        return -1;
    }
    if (stages_every == 0) {
        fh_errf(err, errlen, "latency stage-split interval must be >= 1 stamped packet");
        return -1;
    }
    r->latency.every = r->latency.left = every;
    r->latency.stages_every = r->latency.stages_left = stages_every;
    if (r->latency.hist) return 0;
    r->latency.hist = calloc(FH_HIST_STAGES, sizeof *r->latency.hist);
    if (!r->latency.hist) {
        fh_errf(err, errlen, "out of memory for latency histograms");
        return -1;
    }
    /* Recording a value in a bucket never used before must not fault a page in. */
    fh_prefault(r->latency.hist, FH_HIST_STAGES * sizeof *r->latency.hist);
    if (!r->tsc.hz) fh_tsc_calibrate(&r->tsc);
    return 0;
}

int fh_lane_latency(const fh_lane_t *r, uint32_t stage, fh_hist_t *out)
{
    if (!r->latency.hist || stage >= FH_HIST_STAGES) return -1;
    if (!r->latency.due_seen && (stage == FH_LAT_RX_TO_START || stage == FH_LAT_RX_TO_PUBLISHED)) {
        /* No receive/due times (full-speed replay): rx is when the walk
         * reached the packet, so these were not recorded on the hot path. */
        memcpy(out, &r->latency.hist[FH_LAT_PROCESSING], sizeof *out);
        fh_hist_settle(out);
        if (stage == FH_LAT_RX_TO_START) {
            const uint64_t n = out->count;
            memset(out, 0, sizeof *out);
            out->count = out->counts[0] = n;
        }
        return 0;
    }
    memcpy(out, &r->latency.hist[stage], sizeof *out);
    /* Every stage but the pacing wait's gaps is tallied on the hot path. */
    if (stage != FH_LAT_IDLE_GAPS) fh_hist_settle(out);
    return 0;
}

uint32_t fh_lane_rx_clock(const fh_lane_t *r) { return r->latency.rx_clock; }

uint64_t fh_lane_tsc_hz(const fh_lane_t *r) { return r->tsc.hz; }

void fh_lane_own_all(fh_lane_t *r)
{
    r->route.own_all = 1;
    r->input.errors = r->st.errors;
}

int fh_pin_thread(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    CPU_SET(cpu, &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* The venue table in the segment's header, for readers (lane 0 writes it). */
static void shm_venues(fh_lane_t *r)
{
    if (!r->shm.base || !r->shm.owner) return;
    fh_shm_header_t *h = r->shm.hdr;
    memcpy(h->venue_names, r->route.venue_names, sizeof h->venue_names);
    FH_STORE_RELEASE(&h->n_venues, r->route.n_venues);
}

/* Instrument id blocks (pitch.h) a venue of protocol `proto` takes. */
static uint32_t id_blocks(uint32_t proto)
{
    return proto == FH_PROTO_PITCH ? 1u : proto == FH_PROTO_IEX ? FH_IEX_BLOCKS : 0u;
}

int fh_lane_set_venue(fh_lane_t *r, uint32_t venue, const char *name, uint32_t proto)
{
    if (venue >= 8 || !name || !name[0] || strlen(name) > 7 || proto > FH_PROTO_IEX) return -1;
    /* PITCH and IEX venues take instrument id blocks in venue order: one per
     * PITCH venue, one per feed of an IEX venue (FH_IEX_BLOCKS); at most
     * FH_PITCH_MAX_VENUES blocks, checked before anything changes. */
    const uint32_t n = venue >= r->route.n_venues ? venue + 1 : r->route.n_venues;
    uint32_t ranked = 0;
    for (uint32_t v = 0; v < n; v++) ranked += id_blocks(v == venue ? proto : r->route.venue_protocol[v]);
    if (ranked > FH_PITCH_MAX_VENUES) return -1;
    snprintf(r->route.venue_names[venue], sizeof r->route.venue_names[venue], "%s", name);
    r->route.venue_protocol[venue] = (uint8_t)proto;
    r->route.n_venues = n;
    shm_venues(r);
    uint32_t j = 0;
    for (uint32_t v = 0; v < n; v++) {
        r->route.pitch_rank[v] = (uint8_t)j;
        j += id_blocks(r->route.venue_protocol[v]);
    }
    return 0;
}

int fh_lane_set_line_proto(fh_lane_t *r, uint32_t line, uint32_t proto, uint32_t venue)
{
    if (line >= r->route.n_lines || proto > FH_PROTO_IEX || venue >= r->route.n_venues ||
        r->route.venue_protocol[venue] != proto)
        return -1;
    r->route.lines[line].protocol = (uint8_t)proto;
    r->route.lines[line].venue = (uint8_t)venue;
    return 0;
}

/* The consolidated table on for this lane: every instrument's top written once,
 * then kept up by the BBO check (publish.c). */
static int cbbo_start(fh_lane_t *r, char *err, size_t errlen)
{
    if (!r->book.cbbo_last) {
        r->book.cbbo_last = calloc(FH_SHM_CBBO_ENTRIES, sizeof *r->book.cbbo_last);
        if (!r->book.cbbo_last) {
            fh_errf(err, errlen, "out of memory for the consolidated BBO");
            return -1;
        }
    }
    r->book.cbbo = (fh_shm_cbbo_t *)(r->shm.base + r->shm.hdr->cbbo_offset);
    r->book.cbbo_full = &r->st.cbbo_full;
    FH_STORE_RELEASE(&r->shm.hdr->cbbo_on, 1u);
    fh_publish_cbbo_all(&r->book);
    return 0;
}

int fh_lane_set_consolidate(fh_lane_t *r, int on, char *err, size_t errlen)
{
    if (r->mode != FH_MODE_PUBLISH || !r->shm.base) return 0;     /* nothing is published */
    r->route.consolidate = on == 1;
    if (on != 2) {
        r->book.cbbo = NULL;
        return 0;
    }
    return cbbo_start(r, err, errlen);
}

/* A stream of venue v on this lane: the segment learns the run holds v; a
 * second venue turns the consolidated BBO on (checked at the next poll). */
void fh_pipe_venue_seen(fh_lane_t *r, uint32_t v)
{
    r->route.venues_seen |= 1u << (v & 31);
    if (r->shm.base) __atomic_fetch_or(&r->shm.hdr->venues_seen, 1u << (v & 31), __ATOMIC_RELAXED);
}

/* IEX-TP seen without a config: its venue, IEXG, joins the table (once; every
 * lane sees the same frames, so every lane adds it at the same index).  With
 * no room left its streams count as the ITCH venue's (0). */
uint32_t fh_pipe_iex_venue(fh_lane_t *r)
{
    if (r->route.iex_default_venue == FH_ROUTE_VENUE_NONE) {
        const uint32_t v = r->route.n_venues;
        r->route.iex_default_venue = fh_lane_set_venue(r, v, "IEXG", FH_PROTO_IEX) == 0 ? (uint8_t)v : 0;
    }
    return r->route.iex_default_venue;
}

uint32_t fh_lane_n_venues(const fh_lane_t *r) { return r->route.n_venues; }
const char *fh_lane_venue_name(const fh_lane_t *r, uint32_t venue)
{
    return venue < r->route.n_venues ? r->route.venue_names[venue] : "";
}

/* How a writer leaves its segment: finished, or stopped when it was asked to
 * stop part-way (a signal), so readers do not take its books for a complete run's. */
static uint32_t end_state(const fh_lane_t *r) { return fh_pipe_should_stop(r) ? FH_SHM_STOPPED : FH_SHM_FINISHED; }

void fh_lane_free(fh_lane_t *r)
{
    if (!r) return;
    if (r->shm.base) {
        if (r->shm.owner) FH_STORE_RELEASE(&r->shm.hdr->state, end_state(r));
        fh_shm_close(&r->shm);
    }
    free(r->book.cbbo_last);                 /* before fh_book_free, which clears the book */
    fh_book_free(&r->book);
    free(r->carried.bits);
    free(r->route.pitch_ids.v);
    free(r->decoded.ops);
    free(r->latency.hist);
    free(r->recovery.buf);
    fh_session_free(&r->session);
    free(r);
}

/* --------------------------------------------------- the session's hooks
 *
 * Cold paths: the session layer hands back held packets and re-request
 * replies to apply (received then, applied now), and streams that lost
 * messages or went quiet, whose instruments are flagged. */

static int hook_apply(void *ctx, fh_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq, uint32_t count,
                      uint64_t rx_ts)
{
    fh_lane_t *r = ctx;
    r->book.rx_ts = rx_ts;
    r->book.now = 0;
    const int dup = fh_pipe_apply(r, s, p, len, seq, count, 0);     /* the session layer keeps the ledger */
    r->book.rx_ts = r->session.now;
    r->book.now = 0;
    return dup;
}

/* Every instrument stream s has carried (its locate bitmap): a gap or a
 * silence on the stream concerns all of them.  `stale` flags them stale with
 * `missing` messages; otherwise `silent` sets or clears their SILENT flag. */
static void mark_stream(fh_lane_t *r, const fh_stream_t *s, int stale, uint64_t missing, int silent)
{
    if (r->mode == FH_MODE_DECODE) return;
    r->book.rx_ts = r->session.now;
    const uint8_t *bits = r->carried.bits + (size_t)(s - r->session.streams.v) * r->carried.bytes;
    for (uint32_t i = 0; i < r->carried.bytes; i++) {
        if (!bits[i]) continue;
        for (uint32_t k = 0; k < 8; k++) {
            if (!(bits[i] & (1u << k))) continue;
            if (stale) fh_book_mark_stale(&r->book, i * 8 + k, missing);
            else fh_book_mark_silent(&r->book, i * 8 + k, silent);
        }
    }
}

static void hook_gap(void *ctx, fh_stream_t *s, uint64_t missing) { mark_stream(ctx, s, 1, missing, 0); }

static void hook_silent(void *ctx, fh_stream_t *s, int on) { mark_stream(ctx, s, 0, 0, on); }

/* Give up the holes whose window passed at receive time `now`. */
static void expire_holes(fh_lane_t *r, uint64_t now)
{
    if (!r->session.holes) return;
    const uint64_t rx = r->book.rx_ts;
    fh_session_expire(&r->session, now);
    r->book.rx_ts = rx;
    r->book.now = 0;
}

void fh_pipe_poll_slow(fh_lane_t *r, uint64_t done)
{
    if (!r->input.progress_by_input) __atomic_store_n(&r->input.done, done, __ATOMIC_RELAXED);
    /* Index mode has no use for a BinaryFILE (no sessions, no sequence
     * numbers): its records are ITCH messages decoded, so stop at once. */
    if (FH_UNLIKELY(r->index.frame != NULL) && r->st.messages) fh_lane_stop(r);
    /* A stream that went quiet after a hole gets no packet to close it. */
    expire_holes(r, r->book.rx_ts);
    if (FH_UNLIKELY(r->recovery.asked | r->session.holes)) r->up.recovery_poll(r);
    if (r->shm.named) fh_shm_publish_counters(&r->shm, &r->st, fh_tsc_ns(&r->tsc));
    if (FH_UNLIKELY(r->route.consolidate) && !r->book.cbbo) {
        const uint32_t seen = __atomic_load_n(&r->shm.hdr->venues_seen, __ATOMIC_RELAXED);
        if (seen & (seen - 1)) {
            char err[128];
            if (cbbo_start(r, err, sizeof err) != 0) r->route.consolidate = 0;   /* no memory: not consolidated */
        }
    }
}

void fh_pipe_counters_slow(fh_lane_t *r, uint64_t now)
{
    /* Not past a stop request: fh_lane_stop's 0 must stay. */
    uint64_t seen = __atomic_load_n(&r->counters_due, __ATOMIC_RELAXED);
    if (seen)
        (void)__atomic_compare_exchange_n(&r->counters_due, &seen, now + FH_COUNTERS_EVERY_NS, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED);
    fh_shm_publish_counters(&r->shm, &r->st, now);
}

int fh_pipe_attention(fh_lane_t *r, uint64_t now)
{
    if (fh_pipe_should_stop(r)) return 1;
    if (now && r->shm.named) fh_pipe_counters_slow(r, now);
    return 0;
}

void fh_pipe_idle(fh_lane_t *r, uint64_t now)
{
    r->book.rx_ts = now;
    r->session.now = now;
    fh_session_check_silence(&r->session, now);
    fh_pipe_poll_slow(r, 0);
}

void fh_pipe_nic_counters(fh_lane_t *r, uint64_t imissed, uint64_t ierrors, uint64_t rx_nombuf)
{
    r->st.nic_imissed = imissed;
    r->st.nic_ierrors = ierrors;
    r->st.nic_rx_nombuf = rx_nombuf;
}

void fh_pipe_elapsed(fh_lane_t *r, uint64_t ns) { r->st.elapsed_ns += ns; }

uint64_t fh_pipe_clock_ns(fh_lane_t *r)
{
    if (!r->tsc.hz) fh_tsc_calibrate(&r->tsc);
    return fh_tsc_ns(&r->tsc);
}

int fh_pipe_all_ended(const fh_lane_t *r) { return fh_session_all_ended(&r->session); }

void fh_lane_finish(fh_lane_t *r)
{
    /* The input is over: no snapshot will come, no hole can fill any more. */
    r->up.recovery_finish(r);
    expire_holes(r, UINT64_MAX);
    if (!r->shm.base) return;
    fh_shm_publish_counters(&r->shm, &r->st, fh_tsc_ns(&r->tsc));
    if (r->shm.owner) FH_STORE_RELEASE(&r->shm.hdr->state, end_state(r));
}

void fh_lane_memory(const fh_lane_t *r, uint64_t *book_bytes, uint64_t *shm_bytes)
{
    *book_bytes = r->book.bytes;
    *shm_bytes = r->shm.size;
}

uint32_t fh_lane_instrument_flags(const fh_lane_t *r, uint32_t locate)
{
    if (r->mode == FH_MODE_DECODE || locate < 1 || locate > r->book.n_instr) return 0;
    return r->book.instr[locate].flags;
}

uint8_t *fh_lane_shm(const fh_lane_t *r, uint64_t *size)
{
    if (size) *size = r->shm.size;
    return r->shm.base;
}

void fh_lane_stop(fh_lane_t *r)
{
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&r->counters_due, 0, __ATOMIC_RELAXED);   /* the lane looks up before its next frame */
}

void fh_lane_stats(const fh_lane_t *r, fh_stats_t *out) { memcpy(out, &r->st, sizeof *out); }

void fh_lane_progress(const fh_lane_t *r, uint64_t *done, uint64_t *total)
{
    *done = __atomic_load_n(&r->input.done, __ATOMIC_RELAXED);
    *total = __atomic_load_n(&r->input.total, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ Cboe PITCH units
 *
 * Sequencing and routing of PITCH units belong here, beside MoldUDP64's; what
 * is PITCH's own past the session layer (the messages) is pitch_pipe.c, above. */

/* One PITCH sequenced unit of stream s (NULL: the stream table is full):
 * sequencing per unit exactly as a MoldUDP64 datagram's, then its messages.
 * Hdr Length == payload length was checked by the caller. */
void fh_pipe_pitch(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s)
{
    fh_stats_t *st = &r->st;
    const uint8_t *p = u->payload;
    st->pitch_packets++;
    const uint32_t count = p[2];
    const uint64_t seq = fh_le32(p + 4);
    if (FH_UNLIKELY(count == 0)) {
        /* A heartbeat carries the unit's next sequence: what is before it and
         * not seen is missing. */
        st->heartbeats++;
        if (s && seq && (seq > s->next_seq || s->hole_since)) fh_session_heartbeat(&r->session, s, seq);
        if (u->len != FH_PITCH_UNIT_HLEN) st->errors[FH_ERR_PITCH_TRAILING]++;
        return;
    }
    if (FH_UNLIKELY(seq == 0)) {
        /* Unsequenced data has no place on a depth-of-book multicast unit. */
        st->errors[FH_ERR_PITCH_UNSEQUENCED]++;
        st->pkt_rejected++;
        return;
    }
    if (FH_UNLIKELY(seq + count - 1 > UINT32_MAX)) {
        st->errors[FH_ERR_PITCH_SEQ_WRAP]++;
        st->pkt_rejected++;
        return;
    }
    if (FH_UNLIKELY(!s)) {
        /* No stream, no unit clock: its messages cannot be timed or sequenced. */
        st->errors[FH_ERR_STREAM_TABLE_FULL]++;
        st->pkt_rejected++;
        return;
    }
    fh_pipe_sequenced(r, s, p, u->len, seq, count);
}

/* ------------------------------------------------------------ IEX-TP segments
 *
 * Sequencing of IEX-TP segments, beside MoldUDP64's and PITCH's; the messages
 * are iex_pipe.c's, above. */

void fh_pipe_iex(fh_lane_t *r, const fh_udp_view_t *u, fh_stream_t *s)
{
    fh_stats_t *st = &r->st;
    const uint8_t *p = u->payload;
    st->iex_packets++;
    const uint32_t count = fh_iex_count(p);
    const uint64_t seq = fh_iex_first_seq(p) + 1;   /* as the stream's numbers: see fh_pipe_frame */
    if (FH_UNLIKELY(count == 0)) {
        /* A heartbeat carries the next message's sequence number: what is
         * before it and not seen is missing.  (No payload: the header check.) */
        st->heartbeats++;
        if (s && (seq > s->next_seq || s->hole_since)) fh_session_heartbeat(&r->session, s, seq);
        return;
    }
    if (FH_UNLIKELY(!s)) {
        st->errors[FH_ERR_STREAM_TABLE_FULL]++;
        st->pkt_rejected++;
        return;
    }
    fh_pipe_sequenced(r, s, p, u->len, seq, count);
}
