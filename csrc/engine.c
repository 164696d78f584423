/* engine.c -- replay contexts: open an input, detect its format, run a source
 * walk over it, keep the counters.  Everything here is start-up or per-file;
 * the per-frame work is the inline pipeline in engine.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <zlib.h>

#include "engine.h"

#define FH_VERSION "0.1.0"
#define FH_DEFAULT_STREAMS 64u

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
};
_Static_assert(sizeof(((fh_stats_t *)0)->errors) / sizeof(uint64_t) >= FH_ERR__COUNT, "errors[] too small");

const char *fh_err_name(int e)
{
    return (e >= 0 && e < FH_ERR__COUNT && err_names[e]) ? err_names[e] : "unknown";
}

#define FH_DEFAULT_ORDERS      (2u << 20)
#define FH_DEFAULT_INSTRUMENTS 10000u
#define FH_DEFAULT_LEVELS      (4u << 20)
#define FH_DEFAULT_DEPTH       10u
#define FH_DEFAULT_RING        (1u << 20)
#define FH_DEFAULT_GAP_WINDOW_US 1000u
#define FH_DEFAULT_GAP_BUFFER  4096u
#define FH_DEFAULT_SILENCE_MS  3000u

/* Lane `lane` of a replay; lane 0 (first == NULL) creates the segment, the
 * others take their view of first's. */
static fh_replay_t *replay_create(const fh_replay_cfg_t *cfg, fh_replay_t *first, uint32_t lane, char *err,
                                  size_t errlen)
{
    fh_replay_cfg_t c;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    const uint32_t streams = c.max_streams ? c.max_streams : FH_DEFAULT_STREAMS;
    if (streams > 1u << 16) { fh_errf(err, errlen, "max_streams %u is absurd (limit 65536)", streams); return NULL; }
    if (c.mode > FH_MODE_DECODE) { fh_errf(err, errlen, "unknown mode %u", c.mode); return NULL; }
    const uint32_t depth = c.depth ? c.depth : FH_DEFAULT_DEPTH;
    if (depth > FH_SHM_MAX_DEPTH) { fh_errf(err, errlen, "depth %u out of range 1..%d", depth, FH_SHM_MAX_DEPTH); return NULL; }
    const uint32_t n_instr = c.max_instruments ? c.max_instruments : FH_DEFAULT_INSTRUMENTS;
    const uint32_t ring = c.ring_events ? c.ring_events : FH_DEFAULT_RING;
    const uint32_t lanes = c.lanes ? c.lanes : 1;
    if (lanes > FH_SHM_MAX_LANES) { fh_errf(err, errlen, "%u lanes: at most %d", lanes, FH_SHM_MAX_LANES); return NULL; }

    fh_replay_t *r = aligned_alloc(FH_CACHELINE, (sizeof *r + FH_CACHELINE - 1) & ~(size_t)(FH_CACHELINE - 1));
    if (!r) { fh_errf(err, errlen, "out of memory"); return NULL; }
    memset(r, 0, sizeof *r);
    r->cfg = c;
    if (c.shm_name) {
        snprintf(r->shm_name, sizeof r->shm_name, "%s", c.shm_name);
        r->cfg.shm_name = r->shm_name;
    }
    r->mode = c.mode;
    r->rr_fd = -1;
    r->rr_timeout_ms = 20;
    r->silence_ns = (uint64_t)(c.silence_ms ? c.silence_ms : FH_DEFAULT_SILENCE_MS) * 1000000ull;
    if (c.speed < 0 || c.speed != c.speed) { fh_errf(err, errlen, "speed must be a positive factor"); goto fail; }
    r->pace_scale = c.speed > 0 ? 1.0 / c.speed : 0.0;
    r->lane = lane;
    r->n_lanes = lanes;
    r->src_errors = lane == 0 ? r->st.errors : r->discard;
    r->gap_window_ns = (uint64_t)(c.gap_window_us ? c.gap_window_us : FH_DEFAULT_GAP_WINDOW_US) * 1000u;
    r->pend_cap = c.gap_buffer ? c.gap_buffer : FH_DEFAULT_GAP_BUFFER;
    r->msgs = calloc(FH_PKT_MSGS, sizeof *r->msgs);
    if (!r->msgs) { fh_errf(err, errlen, "out of memory for the packet's decoded messages"); goto fail; }
    fh_prefault(r->msgs, FH_PKT_MSGS * sizeof *r->msgs);
    {
        char what[96];
        snprintf(what, sizeof what, "a %u-packet gap buffer", r->pend_cap);
        const uint64_t pend_bytes = (uint64_t)r->pend_cap * sizeof *r->pend;
        if (fh_mem_check(pend_bytes, pend_bytes, what, err, errlen) != 0) goto fail;
    }
    r->pend = calloc(r->pend_cap, sizeof *r->pend);
    if (!r->pend) { fh_errf(err, errlen, "out of memory for a %u-packet gap buffer", r->pend_cap); goto fail; }
    for (uint32_t i = 0; i < r->pend_cap; i++) r->pend[i].next = i + 2 <= r->pend_cap ? i + 2 : 0;
    r->pend_free = 1;
    if (fh_mold_table_init(&r->streams, streams) != 0) {
        fh_errf(err, errlen, "out of memory for %u streams", streams);
        goto fail;
    }
    if (r->mode != FH_MODE_DECODE) {
        if (fh_book_init(&r->book, c.max_orders ? c.max_orders : FH_DEFAULT_ORDERS, n_instr,
                         c.max_levels ? c.max_levels : FH_DEFAULT_LEVELS, depth, err, errlen) != 0)
            goto fail;
        r->book.ctr = &r->st.book;
        r->seen_bytes = (n_instr + 1 + 7) / 8;
        r->seen = calloc(streams, r->seen_bytes);
        if (!r->seen) { fh_errf(err, errlen, "out of memory for stream bitmaps"); goto fail; }
    }
    if (r->pace_scale != 0.0 || r->mode == FH_MODE_PUBLISH) {
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
        if (!first) FH_STORE_RELEASE(&r->shm.hdr->state, (uint32_t)FH_SHM_RUNNING);
    }
    return r;
fail:
    fh_replay_free(r);
    return NULL;
}

fh_replay_t *fh_replay_new(const fh_replay_cfg_t *cfg, char *err, size_t errlen)
{
    return replay_create(cfg, NULL, 0, err, errlen);
}

fh_replay_t *fh_replay_new_lane(fh_replay_t *first, uint32_t lane, char *err, size_t errlen)
{
    if (!first || first->lane != 0 || lane == 0 || lane >= first->n_lanes) {
        fh_errf(err, errlen, "lane %u of a %u-lane replay does not exist", lane, first ? first->n_lanes : 0);
        return NULL;
    }
    return replay_create(&first->cfg, first, lane, err, errlen);
}

static int rr_socket(fh_replay_t *r, char *err, size_t errlen)
{
    if (r->rr_fd >= 0) return 0;
    r->rr_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (r->rr_fd < 0) { fh_errf(err, errlen, "cannot open a UDP socket for re-requests: %s", strerror(errno)); return -1; }
    return 0;
}

int fh_replay_add_line(fh_replay_t *r, uint32_t group, uint16_t port, uint32_t lane, uint32_t rr_ip,
                       uint16_t rr_port)
{
    if (r->n_lines == sizeof r->lines / sizeof r->lines[0] || lane >= r->n_lanes) return -1;
    if (rr_ip && rr_socket(r, NULL, 0) != 0) return -1;
    r->lines[r->n_lines].group = group;
    r->lines[r->n_lines].port = port;
    r->lines[r->n_lines].lane = (uint16_t)lane;
    r->lines[r->n_lines].rr_ip = rr_ip;
    r->lines[r->n_lines].rr_port = rr_port;
    r->n_lines++;
    return 0;
}

int fh_replay_set_rerequest(fh_replay_t *r, uint32_t ip, uint16_t port, uint32_t timeout_ms, char *err,
                            size_t errlen)
{
    if (timeout_ms) r->rr_timeout_ms = timeout_ms;
    if (!ip) return 0;
    if (!port) { fh_errf(err, errlen, "re-request server port 0"); return -1; }
    if (rr_socket(r, err, errlen) != 0) return -1;
    r->rr_ip = ip;
    r->rr_port = port;
    return 0;
}

int fh_replay_enable_latency(fh_replay_t *r, uint32_t every, char *err, size_t errlen)
{
    if (every == 0) { fh_errf(err, errlen, "latency sampling interval must be >= 1 packet"); return -1; }
    r->lat_every = r->lat_left = every;
    if (r->lat) return 0;
    r->lat = calloc(FH_HIST_STAGES, sizeof *r->lat);
    if (!r->lat) { fh_errf(err, errlen, "out of memory for latency histograms"); return -1; }
    /* Recording a value in a bucket never used before must not fault a page in. */
    fh_prefault(r->lat, FH_HIST_STAGES * sizeof *r->lat);
    if (!r->tsc.hz) fh_tsc_calibrate(&r->tsc);
    return 0;
}

int fh_replay_latency(const fh_replay_t *r, uint32_t stage, fh_hist_t *out)
{
    if (!r->lat || stage >= FH_HIST_STAGES) return -1;
    if (!r->lat_due_seen && (stage == FH_LAT_RX_TO_START || stage == FH_LAT_RX_TO_PUBLISHED)) {
        /* No receive/due times (full-speed replay): rx is when the walk
         * reached the packet, so these were not recorded on the hot path. */
        const fh_hist_t *p = &r->lat[FH_LAT_PROCESSING];
        if (stage == FH_LAT_RX_TO_PUBLISHED) { memcpy(out, p, sizeof *out); return 0; }
        memset(out, 0, sizeof *out);
        out->count = out->counts[0] = p->count;
        return 0;
    }
    memcpy(out, &r->lat[stage], sizeof *out);
    return 0;
}

uint64_t fh_replay_tsc_hz(const fh_replay_t *r) { return r->tsc.hz; }

void fh_replay_own_all(fh_replay_t *r)
{
    r->own_all = 1;
    r->src_errors = r->st.errors;
}

int fh_pin_thread(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0 || cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    CPU_SET(cpu, &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

void fh_replay_free(fh_replay_t *r)
{
    if (!r) return;
    if (r->shm.base) {
        if (r->shm.owner) FH_STORE_RELEASE(&r->shm.hdr->state, (uint32_t)FH_SHM_FINISHED);
        fh_shm_close(&r->shm);
    }
    fh_book_free(&r->book);
    free(r->seen);
    free(r->pend);
    free(r->msgs);
    free(r->lat);
    if (r->rr_fd >= 0) close(r->rr_fd);
    fh_mold_table_free(&r->streams);
    free(r);
}

void fh_engine_poll(fh_replay_t *r, uint64_t done)
{
    __atomic_store_n(&r->progress_done, done, __ATOMIC_RELAXED);
    /* A stream that went quiet after a hole gets no packet to close it. */
    fh_engine_expire_holes(r, r->book.rx_ts);
    if (r->shm.named) fh_shm_publish_counters(&r->shm, &r->st, fh_tsc_ns(&r->tsc));
}

/* ------------------------------------------------ holes and A/B arbitration
 *
 * A packet past the next expected sequence opens a hole.  Usually the other
 * line's copy of the missing packet is a few microseconds behind: packets
 * after the hole are held (sorted by sequence, in a preallocated pool) and
 * applied in order as soon as the hole fills.  A hole still open gap_window_ns
 * of receive time after it was seen (or when the pool is full, or at the end
 * of the input) is given up: its messages are counted as gaps, the stream's
 * instruments flagged stale, and the held packets applied. */

/* Sequence numbers are the sender's word: one corrupt or hostile packet or
 * heartbeat can claim a stream reached 2^64 - 1, and a few of those on
 * several streams would wrap the total.  It saturates instead: a counter of
 * totals never goes down. */
static void count_gap(fh_replay_t *r, uint64_t missing)
{
    r->st.gaps = r->st.gaps + missing < r->st.gaps ? UINT64_MAX : r->st.gaps + missing;
}

static void pend_free(fh_replay_t *r, uint32_t i)
{
    r->pend[i].next = r->pend_free;
    r->pend_free = i + 1;
}

/* Apply held packets the stream has now reached. */
static void hole_drain(fh_replay_t *r, fh_mold_stream_t *s)
{
    const uint64_t rx = r->book.rx_ts;
    while (s->pend_head && r->pend[s->pend_head - 1].seq <= s->next_seq) {
        const uint32_t i = s->pend_head - 1;
        fh_pending_t *h = &r->pend[i];
        s->pend_head = h->next;
        r->book.rx_ts = h->rx_ts;          /* applied now, received then */
        r->book.now = 0;
        r->st.pkt_held--;
        fh_engine_apply_counted(r, s, h->data, h->len, h->seq, h->count);
        pend_free(r, i);
    }
    r->book.rx_ts = rx;
    r->book.now = 0;
    if (!s->pend_head && s->next_seq >= s->hole_end && s->hole_since) {
        s->hole_since = 0;
        r->holes--;
    }
}

/* A reply from the re-request server to stream s: network input, so split
 * from the socket loop below to be testable (and fuzzed) without sockets.
 * Only our session, only a well-formed header, only a packet that starts at
 * or before the hole is applied; anything else is counted foreign.  Returns 1
 * when applied (what it filled is counted recovered, held packets it
 * released are not). */
int fh_engine_rr_reply(fh_replay_t *r, fh_mold_stream_t *s, const uint8_t *p, size_t n)
{
    if (n < FH_MOLD_HLEN || n > UINT32_MAX || memcmp(p, s->session, FH_MOLD_SESSION_LEN) != 0) {
        r->st.errors[FH_ERR_RR_FOREIGN]++;
        return 0;
    }
    const uint64_t seq = fh_be64(p + 10);
    const uint32_t count = fh_be16(p + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END || seq > s->next_seq) {
        r->st.errors[FH_ERR_RR_FOREIGN]++;
        return 0;
    }
    const uint64_t before = s->next_seq;
    (void)fh_engine_apply(r, s, p, (uint32_t)n, seq, count);    /* a reply: not in the packet ledger */
    r->st.recovered += s->next_seq - before;
    hole_drain(r, s);
    return 1;
}

/* Ask the stream's re-request server for what the hole is missing and apply
 * what comes back, until the hole is filled, the server stops answering
 * (3 tries of rr_timeout_ms each) or has nothing more.  Cold path: a syscall
 * per request and reply, taken only when both lines lost the same packets. */
static void hole_recover(fh_replay_t *r, fh_mold_stream_t *s)
{
    if (!s->rr_ip || r->rr_fd < 0) return;
    struct sockaddr_in srv;
    memset(&srv, 0, sizeof srv);
    srv.sin_family = AF_INET;
    srv.sin_addr.s_addr = htonl(s->rr_ip);
    srv.sin_port = htons(s->rr_port);
    uint8_t buf[65536];
    int tries = 0;
    while (s->hole_since && tries < 3) {
        const uint64_t upto = s->pend_head ? r->pend[s->pend_head - 1].seq : s->hole_end;
        if (upto <= s->next_seq) break;
        const uint64_t want = upto - s->next_seq;
        uint8_t req[FH_MOLD_HLEN];
        memcpy(req, s->session, FH_MOLD_SESSION_LEN);
        fh_put_be64(req + 10, s->next_seq);
        fh_put_be16(req + 18, (uint16_t)(want > 0xFFFE ? 0xFFFE : want));
        if (sendto(r->rr_fd, req, sizeof req, 0, (const struct sockaddr *)&srv, sizeof srv) != (ssize_t)sizeof req) {
            r->st.errors[FH_ERR_RR_TIMEOUT]++;
            return;
        }
        const uint64_t before = s->next_seq;
        struct pollfd pfd = {.fd = r->rr_fd, .events = POLLIN};
        int got = 0;
        while (!got && poll(&pfd, 1, (int)r->rr_timeout_ms) > 0) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            const ssize_t n = recvfrom(r->rr_fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            if (n < 0) break;
            /* Only our server. */
            if (from.sin_addr.s_addr != srv.sin_addr.s_addr || from.sin_port != srv.sin_port) {
                r->st.errors[FH_ERR_RR_FOREIGN]++;
                continue;
            }
            got = fh_engine_rr_reply(r, s, buf, (size_t)n);
        }
        if (!got) {
            r->st.errors[FH_ERR_RR_TIMEOUT]++;
            tries++;
        } else if (s->next_seq == before) {
            break;                                  /* an answer with nothing new: the server has no more */
        }
    }
}

/* The hole at next_seq will not fill from the lines: re-request it if a
 * server is configured, then count what is still missing, flag, move on. */
static void hole_give_up(fh_replay_t *r, fh_mold_stream_t *s)
{
    hole_recover(r, s);
    while (s->hole_since) {
        const uint64_t upto = s->pend_head ? r->pend[s->pend_head - 1].seq : s->hole_end;
        if (upto > s->next_seq && upto - s->next_seq > FH_SEQ_IMPLAUSIBLE && s->next_seq > s->hole_seq0) {
            /* The stream went on in sequence past where this hole opened while
             * the far-ahead number never came closer: a corrupt sequence
             * number (one bad datagram or heartbeat), not millions of lost
             * messages.  Taking it would make every genuine packet after it
             * a "duplicate"; it is dropped and counted instead. */
            r->st.errors[FH_ERR_MOLD_SEQ_IMPLAUSIBLE]++;
            if (s->pend_head) {
                const uint32_t i = s->pend_head - 1;
                s->pend_head = r->pend[i].next;
                pend_free(r, i);
                r->st.pkt_held--;
                r->st.pkt_rejected++;
            } else {
                s->hole_end = s->next_seq;
            }
            if (!s->pend_head && s->next_seq >= s->hole_end) {
                s->hole_since = 0;
                r->holes--;
            }
            continue;
        }
        if (upto > s->next_seq) {
            count_gap(r, upto - s->next_seq);
            fh_engine_gap(r, s, upto - s->next_seq);
            s->next_seq = upto;
        }
        hole_drain(r, s);
        if (s->hole_since && !s->pend_head && s->next_seq >= s->hole_end) {
            s->hole_since = 0;
            r->holes--;
        }
    }
}

static void hole_open(fh_replay_t *r, fh_mold_stream_t *s)
{
    if (!s->hole_since) {
        s->hole_since = r->book.rx_ts ? r->book.rx_ts : 1;
        s->hole_seq0 = s->next_seq;
        r->holes++;
    }
}

static void hole_check_window(fh_replay_t *r, fh_mold_stream_t *s)
{
    if (s->hole_since && r->book.rx_ts - s->hole_since > r->gap_window_ns) hole_give_up(r, s);
}

void fh_engine_hole_heartbeat(fh_replay_t *r, fh_mold_stream_t *s, uint64_t seq)
{
    hole_check_window(r, s);
    if (seq > s->next_seq) {
        if (seq > s->hole_end) s->hole_end = seq;
        hole_open(r, s);
    }
    hole_check_window(r, s);
}

void fh_engine_hole_packet(fh_replay_t *r, fh_mold_stream_t *s, const uint8_t *p, uint32_t len, uint64_t seq,
                           uint32_t count)
{
    /* A hole whose window passed before this packet came is lost already: a
     * late copy of it is not applied out of order (it counts as a duplicate). */
    hole_check_window(r, s);
    if (seq <= s->next_seq) {
        /* Fills (the start of) the hole, or is a copy of what was applied. */
        fh_engine_apply_counted(r, s, p, len, seq, count);
        hole_drain(r, s);
        return;
    }
    hole_open(r, s);
    /* Held in sequence order; a copy of a held packet is a duplicate. */
    uint32_t *link = &s->pend_head;
    while (*link && r->pend[*link - 1].seq < seq) link = &r->pend[*link - 1].next;
    if (*link && r->pend[*link - 1].seq == seq && r->pend[*link - 1].count >= count) {
        r->st.duplicates += count;
        r->st.pkt_duplicate++;
        return;
    }
    if (len <= FH_PEND_DATA && r->pend_free) {
        const uint32_t i = r->pend_free - 1;
        fh_pending_t *h = &r->pend[i];
        r->pend_free = h->next;
        h->seq = seq;
        h->rx_ts = r->book.rx_ts;
        h->len = len;
        h->count = count;
        memcpy(h->data, p, len);
        h->next = *link;
        *link = i + 1;
        r->st.pkt_held++;
        return;
    }
    /* Nowhere to hold it: the hole is given up now rather than lose this packet. */
    r->st.errors[FH_ERR_GAP_BUFFER_FULL]++;
    hole_give_up(r, s);
    if (seq > s->next_seq) {
        count_gap(r, seq - s->next_seq);
        fh_engine_gap(r, s, seq - s->next_seq);
        s->next_seq = seq;
    }
    fh_engine_apply_counted(r, s, p, len, seq, count);
}

void fh_engine_expire_holes(fh_replay_t *r, uint64_t now)
{
    if (!r->holes) return;
    const uint64_t rx = r->book.rx_ts;
    r->book.rx_ts = now;
    for (uint32_t i = 0; i < r->streams.n && r->holes; i++) {
        fh_mold_stream_t *s = &r->streams.v[i];
        if (s->hole_since && (now == UINT64_MAX || now - s->hole_since > r->gap_window_ns)) hole_give_up(r, s);
    }
    r->book.rx_ts = rx;
}

/* ------------------------------------------------------- line supervision */

/* Every instrument stream s has carried (its locate bitmap): a gap or a
 * silence on the stream concerns all of them.  `stale` flags them stale with
 * `missing` messages; otherwise `silent` sets or clears their SILENT flag. */
static void mark_stream(fh_replay_t *r, const fh_mold_stream_t *s, int stale, uint64_t missing, int silent)
{
    if (r->mode == FH_MODE_DECODE) return;
    const uint8_t *bits = r->seen + (size_t)(s - r->streams.v) * r->seen_bytes;
    for (uint32_t i = 0; i < r->seen_bytes; i++) {
        if (!bits[i]) continue;
        for (uint32_t k = 0; k < 8; k++) {
            if (!(bits[i] & (1u << k))) continue;
            if (stale) fh_book_mark_stale(&r->book, i * 8 + k, missing);
            else fh_book_mark_silent(&r->book, i * 8 + k, silent);
        }
    }
}

/* Heartbeats keep a stream alive: one with no packet at all for silence_ns
 * (receive time) is flagged silent, with its instruments, until it speaks
 * again.  Swept every 100 ms of receive time, over this lane's streams. */
void fh_engine_check_silence(fh_replay_t *r, uint64_t now)
{
    r->next_silence_check = now + 100000000ull;
    if (!r->silence_ns) return;
    for (uint32_t i = 0; i < r->streams.n; i++) {
        fh_mold_stream_t *s = &r->streams.v[i];
        if (!s->last_rx || s->ended || s->silent || now - s->last_rx <= r->silence_ns) continue;
        s->silent = 1;
        r->st.silences++;
        mark_stream(r, s, 0, 0, 1);
    }
}

void fh_engine_alive(fh_replay_t *r, fh_mold_stream_t *s)
{
    s->silent = 0;
    mark_stream(r, s, 0, 0, 0);
}

/* A line (group:port) now carrying a session other than the one it carried:
 * the exchange started a new session (or a line was re-pointed).  Counted; the
 * new session is a new stream with its own sequence. */
void fh_engine_line_session(fh_replay_t *r, const fh_udp_view_t *u)
{
    for (uint32_t i = 0; i < r->n_groups; i++) {
        if (r->groups[i].ip != u->dst_ip || r->groups[i].port != u->dst_port) continue;
        r->group_last = i;
        if (memcmp(r->groups[i].session, u->payload, FH_MOLD_SESSION_LEN) != 0) {
            r->st.session_changes++;
            memcpy(r->groups[i].session, u->payload, FH_MOLD_SESSION_LEN);
        }
        return;
    }
    if (r->n_groups == sizeof r->groups / sizeof r->groups[0]) return;   /* beyond 64 lines: not tracked */
    r->groups[r->n_groups].ip = u->dst_ip;
    r->groups[r->n_groups].port = u->dst_port;
    memcpy(r->groups[r->n_groups].session, u->payload, FH_MOLD_SESSION_LEN);
    r->group_last = r->n_groups++;
}

void fh_engine_gap(fh_replay_t *r, fh_mold_stream_t *s, uint64_t missing)
{
    s->gapped = 1;
    mark_stream(r, s, 1, missing, 0);
}

void fh_replay_finish(fh_replay_t *r)
{
    /* The input is over: no hole can fill any more. */
    fh_engine_expire_holes(r, UINT64_MAX);
    if (!r->shm.base) return;
    fh_shm_publish_counters(&r->shm, &r->st, fh_tsc_ns(&r->tsc));
    if (r->shm.owner) FH_STORE_RELEASE(&r->shm.hdr->state, (uint32_t)FH_SHM_FINISHED);
}

void fh_replay_memory(const fh_replay_t *r, uint64_t *book_bytes, uint64_t *shm_bytes)
{
    *book_bytes = r->book.bytes;
    *shm_bytes = r->shm.size;
}

uint32_t fh_replay_instrument_flags(const fh_replay_t *r, uint32_t locate)
{
    if (r->mode == FH_MODE_DECODE || locate < 1 || locate > r->book.n_instr) return 0;
    return r->book.instr[locate].flags;
}

uint8_t *fh_replay_shm(const fh_replay_t *r, uint64_t *size)
{
    if (size) *size = r->shm.size;
    return r->shm.base;
}

int fh_replay_dump_books(fh_replay_t *r, const char *path, uint32_t depth, char *err, size_t errlen)
{
    if (r->mode == FH_MODE_DECODE) { fh_errf(err, errlen, "no books in decode-only mode"); return -1; }
    FILE *f = fopen(path, "w");
    if (!f) { fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno)); return -1; }
    const fh_book_t *b = &r->book;
    fputs("locate,symbol,side,level,price,shares,orders\n", f);
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        const fh_instr_t *in = &b->instr[loc];
        if (!in->side[0].n && !in->side[1].n) continue;
        /* The symbol as R gave it, trailing spaces off; bytes that would break
         * the CSV are replaced. */
        char sym[9];
        size_t n = 8;
        while (n && (in->symbol[n - 1] == ' ' || in->symbol[n - 1] == 0)) n--;
        for (size_t i = 0; i < n; i++) {
            const char ch = in->symbol[i];
            sym[i] = (ch > 32 && ch < 127 && ch != ',' && ch != '"') ? ch : '?';
        }
        sym[n] = 0;
        for (int side = 0; side < 2; side++) {
            for (uint32_t i = 0; i < in->side[side].n && i < depth; i++) {
                uint32_t price, orders;
                uint64_t shares;
                fh_book_level(b, loc, side, i, &price, &shares, &orders);
                fprintf(f, "%u,%s,%c,%u,%u,%llu,%u\n", loc, sym, side == 0 ? 'B' : 'S', i + 1, price,
                        (unsigned long long)shares, orders);
            }
        }
    }
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) { fh_errf(err, errlen, "error writing %s", path); return -1; }
    return 0;
}

void fh_replay_stop(fh_replay_t *r) { __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED); }

void fh_replay_stats(const fh_replay_t *r, fh_stats_t *out) { memcpy(out, &r->st, sizeof *out); }

void fh_replay_progress(const fh_replay_t *r, uint64_t *done, uint64_t *total)
{
    *done = __atomic_load_n(&r->progress_done, __ATOMIC_RELAXED);
    *total = __atomic_load_n(&r->progress_total, __ATOMIC_RELAXED);
}

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

static int is_gzip(const uint8_t *b, size_t len) { return len >= 2 && b[0] == 0x1F && b[1] == 0x8B; }

static int run_detected(fh_replay_t *r, const uint8_t *buf, size_t len, int *format_out, char *err, size_t errlen)
{
    if (len == 0) { fh_errf(err, errlen, "input is empty"); return -1; }
    const int fmt = detect(buf, len);
    if (format_out) *format_out = fmt;
    __atomic_store_n(&r->progress_total, len, __ATOMIC_RELAXED);
    __atomic_store_n(&r->progress_done, 0, __ATOMIC_RELAXED);
    const uint64_t t0 = now_ns();
    int rc;
    switch (fmt) {
    case FH_FMT_PCAP_US:
    case FH_FMT_PCAP_NS: rc = fh_src_pcap_run(r, buf, len, err, errlen); break;
    case FH_FMT_PCAPNG: rc = fh_src_pcapng_run(r, buf, len, err, errlen); break;
    case FH_FMT_BINFILE: rc = fh_src_binfile_run(r, buf, len, err, errlen); break;
    default:
        fh_errf(err, errlen, "unrecognised format: not pcap, pcapng, gzip or NASDAQ BinaryFILE "
                "(first bytes %02x %02x %02x %02x)", buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0,
                len > 3 ? buf[3] : 0);
        return -1;
    }
    r->st.elapsed_ns += now_ns() - t0;
    return rc;
}

int fh_replay_buffer(fh_replay_t *r, const uint8_t *buf, size_t len, int *format_out, char *err, size_t errlen)
{
    if (format_out) *format_out = FH_FMT_UNKNOWN;
    if (!buf) len = 0;
    return run_detected(r, buf, len, format_out, err, errlen);
}

/* Inflate a whole gzip file (all members) into one heap buffer: start-up work,
 * so that the walk over it is the same zero-copy walk as for a plain file. */
static uint8_t *gunzip(const uint8_t *in, size_t in_len, size_t *out_len, char *err, size_t errlen)
{
    size_t cap = in_len < (1u << 20) ? (4u << 20) : in_len * 4, n = 0;
    uint8_t *out = malloc(cap);
    if (!out) { fh_errf(err, errlen, "out of memory inflating gzip input"); return NULL; }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) { free(out); fh_errf(err, errlen, "zlib init failed"); return NULL; }
    size_t in_off = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            uint8_t *p = realloc(out, ncap);
            if (!p) { inflateEnd(&z); free(out); fh_errf(err, errlen, "out of memory inflating gzip input (%zu bytes so far)", n); return NULL; }
            out = p; cap = ncap;
        }
        const size_t in_chunk = in_len - in_off > (1u << 30) ? (1u << 30) : in_len - in_off;
        const size_t out_chunk = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        z.next_in = (Bytef *)(in + in_off);
        z.avail_in = (uInt)in_chunk;
        z.next_out = out + n;
        z.avail_out = (uInt)out_chunk;
        const int zr = inflate(&z, Z_NO_FLUSH);
        in_off += in_chunk - z.avail_in;
        n += out_chunk - z.avail_out;
        if (zr == Z_STREAM_END) {
            /* Concatenated members are one file (gzip -c a b > c). */
            if (in_off < in_len && in_len - in_off >= 2 && in[in_off] == 0x1F && in[in_off + 1] == 0x8B) {
                inflateReset(&z);
                continue;
            }
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            fh_errf(err, errlen, "corrupt gzip input at compressed offset %zu: %s", in_off, z.msg ? z.msg : "inflate error");
            inflateEnd(&z); free(out); return NULL;
        }
        if (zr == Z_BUF_ERROR && z.avail_out != 0 && in_off >= in_len) {
            fh_errf(err, errlen, "gzip input truncated (%zu bytes inflated before the end)", n);
            inflateEnd(&z); free(out); return NULL;
        }
    }
    inflateEnd(&z);
    /* Give back the slack (and, under ASan, make the buffer exactly the data). */
    if (n && n < cap) {
        uint8_t *p = realloc(out, n);
        if (p) out = p;
    }
    *out_len = n;
    return out;
}

/* Whole file into memory for what cannot be mapped (pipes, /dev/stdin). */
static uint8_t *slurp(int fd, size_t *len_out, char *err, size_t errlen)
{
    size_t cap = 1u << 20, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) { fh_errf(err, errlen, "out of memory"); return NULL; }
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(b, cap * 2);
            if (!p) { free(b); fh_errf(err, errlen, "out of memory reading input"); return NULL; }
            b = p; cap *= 2;
        }
        const ssize_t k = read(fd, b + n, cap - n);
        if (k < 0) { if (errno == EINTR) continue; fh_errf(err, errlen, "read failed: %s", strerror(errno)); free(b); return NULL; }
        if (k == 0) break;
        n += (size_t)k;
    }
#ifdef FH_EXACT_BUFFERS
    if (n) {
        uint8_t *exact = malloc(n);
        if (!exact) { free(b); fh_errf(err, errlen, "out of memory"); return NULL; }
        memcpy(exact, b, n);
        free(b);
        b = exact;
    }
#endif
    *len_out = n;
    return b;
}

int fh_replay_file(fh_replay_t *r, const char *path, int *format_out, char *err, size_t errlen)
{
    if (format_out) *format_out = FH_FMT_UNKNOWN;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { fh_errf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return -1; }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { fh_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno)); close(fd); return -1; }
    if (S_ISDIR(sb.st_mode)) { fh_errf(err, errlen, "%s is a directory", path); close(fd); return -1; }

    const uint8_t *data;
    size_t len;
    void *map = NULL;
    uint8_t *heap = NULL;
#ifdef FH_EXACT_BUFFERS
    if (0) {
#else
    if (S_ISREG(sb.st_mode)) {
#endif
        len = (size_t)sb.st_size;
        if (len == 0) { fh_errf(err, errlen, "%s is empty", path); close(fd); return -1; }
        /* Populate now so page faults land in start-up, not in the timed walk. */
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) { fh_errf(err, errlen, "cannot map %s: %s", path, strerror(errno)); close(fd); return -1; }
        madvise(map, len, MADV_SEQUENTIAL);
        data = map;
    } else {
        heap = slurp(fd, &len, err, errlen);
        if (!heap) { close(fd); return -1; }
        if (len == 0) { fh_errf(err, errlen, "%s is empty", path); free(heap); close(fd); return -1; }
        data = heap;
    }
    close(fd);

    if (is_gzip(data, len)) {
        size_t ulen = 0;
        uint8_t *u = gunzip(data, len, &ulen, err, errlen);
        if (map) munmap(map, len);
        free(heap);
        if (!u) return -1;
        map = NULL;
        heap = u;
        data = u;
        len = ulen;
        if (is_gzip(data, len)) { fh_errf(err, errlen, "%s: gzip inside gzip is not supported", path); free(heap); return -1; }
    }
    char inner[384] = {0};
    const int rc = run_detected(r, data, len, format_out, inner, sizeof inner);
    if (rc != 0) fh_errf(err, errlen, "%s: %s", path, inner);
    if (map) munmap(map, len);
    free(heap);
    return rc;
}

/* --------------------------------------------------- stateless frame decode */

typedef struct {
    fh_itch_msg_t *out;
    size_t cap, n;
    fh_stats_t *st;
} frame_sink_t;

static void frame_sink(void *ctx, const uint8_t *p, size_t len)
{
    frame_sink_t *s = ctx;
    fh_itch_msg_t m;
    memset(&m, 0, sizeof m);
    const int rc = fh_itch_decode_inline(p, len, &m);
    if (rc != FH_DECODE_OK) {
        s->st->errors[rc == FH_DECODE_BAD_LENGTH ? FH_ERR_ITCH_BAD_LENGTH : FH_ERR_ITCH_UNKNOWN_TYPE]++;
        return;
    }
    s->st->messages++;
    s->st->by_type[m.type]++;
    s->st->checksum += fh_itch_fold(&m);
    if (s->n < s->cap) s->out[s->n++] = m;
}

size_t fh_decode_frame(const uint8_t *frame, size_t len, fh_itch_msg_t *out, size_t cap, fh_stats_t *st)
{
    fh_udp_view_t u;
    frame_sink_t s = {out, out ? cap : 0, 0, st};
    st->packets++;
    st->bytes += len;
    if (!frame || !fh_net_parse(frame, len, &u, st->errors)) return 0;
    if (u.len < FH_MOLD_HLEN) { st->errors[FH_ERR_MOLD_TRUNCATED]++; return 0; }
    st->mold_packets++;
    const uint32_t count = fh_be16(u.payload + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END) {
        if (count == FH_MOLD_END) st->end_of_session++;
        else st->heartbeats++;
        if (u.len != FH_MOLD_HLEN) st->errors[FH_ERR_MOLD_TRAILING]++;
        return 0;
    }
    fh_mold_walk(u.payload, u.len, count, 0, frame_sink, &s, st);
    return s.n;
}

