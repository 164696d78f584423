/* gen.c -- a synthetic but realistic NASDAQ TotalView-ITCH 5.0 trading day.
 *
 * One call of fh_gen_run() writes three files from one deterministic stream:
 *   PREFIX.pcap  nanosecond pcap, Ethernet/IPv4/UDP/MoldUDP64, line A (and B)
 *   PREFIX.bin   NASDAQ BinaryFILE: the same messages, u16 BE length before each
 *   PREFIX.json  a summary (counts, channels, symbols) for tests and users
 *
 * The day is the merge of two time-ordered streams:
 *   - a schedule built up front (system events, stock directory, trading
 *     actions, Reg SHO, market makers, MWCB, IPO, LULD collars, halts, NOII
 *     imbalances, opening/closing/halt crosses, a broken trade), sorted by time;
 *   - order flow (A F D U E X C P) from 04:00 to 20:00, drawn in bursts on one
 *     channel each, with a U-shaped intraday rate (inverse CDF of a per-second
 *     intensity table), so the packetiser batches several messages per packet.
 * With cfg->rate R > 0 (flat-rate mode, for latency benchmarks replayed at the
 * capture's pace) the same day is compressed into messages / R seconds: the
 * schedule's times map linearly into that window (fh_gen_rate_map), order flow
 * is drawn with a flat intensity over it, and the packetiser's default window
 * shrinks to FH_GEN_BATCH_NS_RATE, so there are no idle hours and packets carry
 * what a feed at that rate carries.  Rate 0 is the normal day, byte for byte.
 * Messages are generated in timestamp order; each is written once into the
 * BinaryFILE buffer (whose u16 length + message record is byte-for-byte a
 * MoldUDP64 message block) and copied into its channel's open packet.
 *
 * Every instrument keeps its own book, preallocated at start-up: its live
 * orders (stable slots below a high-water mark, a free slot has 0 shares, so
 * a uniform live order is a few draws away) and per side its price levels,
 * sorted with the best last, each a FIFO of its orders.  So D/E/X/C/U only
 * name live orders of the burst's instrument, never over-execute, and U
 * retires the old reference.  The books are never crossed or locked: a
 * per-instrument mid random-walks inside the spread (best bid <= mid < best
 * ask), adds and replaces quote passively around it (bids at or below the mid,
 * asks above it), and executions (E, C) hit the oldest order of the best level
 * of one side -- the aggressor is implicit -- so when a best level is consumed
 * the mid steps after it.
 *
 * What makes a real book slow is in the day too (docs/generator.md): activity
 * is Zipf-like over instruments (1 / (rank + 8)^1.25: the top 300 of 8 000
 * carry ~73% of the flow); 4% of adds and replaces rest deep, 10-639 ticks
 * from the mid, log-uniform, and near-touch cancels never reach them, so they
 * stay for hours and the books get deep levels; a share of D/X/U (0.6% of them
 * through the day, 25% from 15:45, 50% after 16:00) cancels a live order drawn
 * uniformly over the instrument's live orders, mostly old deep ones, and from
 * 15:45 some adds (12%, 37% after 16:00) are such cancels instead: day orders
 * are pulled into the close.  So live orders build up to hundreds of
 * thousands on a full day, peak before the close and thin out after it.
 * PREFIX.json's "book_stats" measures all of it.  Order references and match
 * numbers are day-wide counters, strictly increasing.
 *
 * Packets of all channels and both lines are written in capture-time order: the
 * packetiser's flush deadlines and heartbeat timers are processed as events in
 * time order before each message, and line B frames wait in a short ring until
 * line A has passed their capture time.  A last clamp keeps capture timestamps
 * non-decreasing even where the wire model alone would not.
 *
 * PITCH (cfg->protocol 1, docs/generator.md "PITCH"): the same model writes a
 * Cboe Multicast PITCH day instead, PREFIX.pcap and PREFIX.json only.  The
 * channels become units (ch[] is per unit: its packetiser, sequence, heartbeat
 * timer and last Time), symbols are split 1 + i * units / symbols, unit u goes
 * out on group (u - 1) % channels; messages are written in place into the
 * unit's open packet (fh_pg_begin/fh_pg_end, a Time message first in each new
 * second), the flow and schedule branch on g->pitch at the point where they
 * write (fh_pg_add, fh_pg_modify, fh_pg_trade, fh_pg_scheduled) and the schedule
 * keeps only what PITCH has (trading status, auctions, trade breaks).  A
 * replace is a Modify that keeps the order id (and its queue place when the
 * price is unchanged and the size did not grow).  The ITCH day is unchanged,
 * byte for byte.
 *
 * No allocation, no syscall per message: all memory is taken before the loop,
 * output goes through large buffers.  Randomness is xoshiro256** seeded by
 * splitmix64 from cfg->seed, in separate streams for the day, the schedule and
 * each line's loss, so loss settings never change the messages.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "fh_common.h"
#include "gen.h"

#define FH_GEN_INF UINT64_MAX
#define FH_GEN_OUTBUF (8u << 20)
#define FH_GEN_BRING 512u              /* line B frames in flight (power of two) */
#define FH_GEN_REC_COPY 56u            /* >= the longest record, 2 + 50 bytes */
_Static_assert(FH_GEN_REC_COPY >= 2 + FH_ITCH_MAX_LEN, "record copy shorter than the longest record");

/* The layout Python sees (tests/test_layout.py asserts the same numbers). */
_Static_assert(sizeof(fh_gen_cfg_t) == 80, "fh_gen_cfg_t size changed: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, rate) == 64, "fh_gen_cfg_t.rate moved: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, protocol) == 72, "fh_gen_cfg_t.protocol moved: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, units) == 76, "fh_gen_cfg_t.units moved: update test_layout.py");
#define FH_GEN_SLACK 64u

/* ------------------------------------------------------------------ PRNG */

typedef struct { uint64_t s[4]; } fh_gen_rng_t;

static uint64_t fh_gen_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fh_gen_rng_seed(fh_gen_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++) r->s[i] = fh_gen_splitmix(&x);
}

FH_INLINE uint64_t fh_gen_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

FH_INLINE uint64_t fh_gen_next(fh_gen_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = fh_gen_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = fh_gen_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n) by multiply-shift; the bias (< n / 2^32) is irrelevant here. */
FH_INLINE uint32_t fh_gen_below(fh_gen_rng_t *r, uint32_t n)
{
    return (uint32_t)(((fh_gen_next(r) >> 32) * (uint64_t)n) >> 32);
}

FH_INLINE double fh_gen_unit(fh_gen_rng_t *r)
{
    return (double)(fh_gen_next(r) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- output */

typedef struct {
    FILE    *f;
    uint8_t *buf;
    size_t   pos, cap;
    int      err_no;                   /* first write error, 0 if none */
    const char *path;
} fh_gen_out_t;

static void fh_gen_out_flush(fh_gen_out_t *o)
{
    if (o->pos && !o->err_no && fwrite(o->buf, 1, o->pos, o->f) != o->pos)
        o->err_no = errno ? errno : EIO;
    o->pos = 0;
}

/* Room for n more bytes at buf + pos (n is far below the buffer size). */
FH_INLINE uint8_t *fh_gen_out_reserve(fh_gen_out_t *o, size_t n)
{
    if (FH_UNLIKELY(o->pos + n > o->cap)) fh_gen_out_flush(o);
    return o->buf + o->pos;
}

FH_INLINE void fh_gen_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

FH_INLINE void fh_gen_put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

FH_INLINE void fh_gen_put_le64(uint8_t *p, uint64_t v)
{
    fh_gen_put_le32(p, (uint32_t)v);
    fh_gen_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---------------------------------------------------------------- model */

enum { FH_GEN_LINE_A = 0, FH_GEN_LINE_B = 1 };

#define FH_GEN_NIL UINT32_MAX

/* A live order in its instrument's slot range; prev/next chain the FIFO of its
 * price level (oldest first), next also the instrument's free slots. */
typedef struct {
    uint64_t ref;
    uint32_t shares;                   /* remaining; 0 marks a free slot */
    uint32_t price;                    /* Price(4) */
    uint32_t prev, next;               /* slot numbers, FH_GEN_NIL at the ends */
    uint32_t born_hi;                  /* day clock (ns) of its add or replace: */
    uint16_t born_lo;                  /*   48 bits, hi << 16 | lo */
    uint8_t  side;                     /* 0 bid ('B'), 1 ask ('S') */
    uint8_t  deep;                     /* placed FH_GEN_DEEP_TICKS or more from the mid */
} fh_gen_order_t;

/* Per instrument, beside its cache line: deep orders per side, flow messages. */
typedef struct {
    uint32_t ndeep[2];
    uint32_t flow;
    uint32_t _pad;
} fh_gen_symx_t;

/* One price level.  key = price for bids, ~price for asks, so both sides sort
 * ascending with the best level last (where most adds and fills happen). */
typedef struct {
    uint32_t key;
    uint32_t n;                        /* orders at the level */
    uint32_t head, tail;               /* oldest, newest slot */
} fh_gen_level_t;

typedef struct {
    char     stock[8];                 /* space padded */
    uint32_t mid;                      /* Price(4) on the tick grid: best bid <= mid < best ask */
    uint32_t open;                     /* starting price, the walk's anchor */
    uint64_t last_match;               /* last match number printed for it */
    uint16_t ch;
    uint8_t  famous;                   /* index + 1 into fh_gen_famous, or 0 */
    uint8_t  ipo;
    uint16_t rank;                     /* activity rank, 0 = most active */
    uint8_t  up;                       /* last direction the walk tried */
    uint8_t  xsym;                     /* PITCH: ticker longer than 6 characters */
    /* its book: slots [base, base + cap) of g->slots, bid levels at
     * g->levels + 2 * base, ask levels cap further */
    uint32_t base, cap;
    uint32_t nord[2];                  /* live orders per side */
    uint32_t hwm, free_head;           /* slots ever used, free list */
    uint32_t nlv[2];                   /* price levels per side */
} fh_gen_sym_t;                        /* one cache line (64-byte aligned array) */

_Static_assert(sizeof(fh_gen_sym_t) == 64, "an instrument is one cache line");
_Static_assert(sizeof(fh_gen_order_t) == 32, "two orders per cache line");

/* One MoldUDP64 channel: its open packet. */
typedef struct {
    uint8_t  frame[FH_GEN_FRAME_MAX + FH_GEN_SLACK];  /* headers + Mold header + blocks */
    uint32_t len;                      /* frame bytes used */
    uint32_t count;                    /* messages in the open packet */
    uint64_t next_seq;                 /* sequence of the open packet's first message */
    uint64_t first_ts, last_ts;        /* ITCH ns of the open packet's messages */
    uint64_t ev;                       /* next event: flush deadline if open, else heartbeat */
    uint64_t last_match;
    uint32_t group[2];                 /* multicast group per line, host order */
    uint16_t tracking;                 /* tracking number = channel + 1 */
    uint16_t lo, hi;                   /* its locates, contiguous */
    char     session[11];
    uint8_t  ended;                    /* PITCH: End of Session sent, no more heartbeats */
    uint8_t  timed;                    /* PITCH: a Time message was sent on the unit */
    uint64_t tbase;                    /* PITCH: ns since midnight of the unit's last Time */
    /* stats */
    uint64_t messages, data_packets, heartbeats, eos;
    uint64_t pool_full;
} fh_gen_chan_t;

typedef struct {
    uint64_t ts;
    uint32_t idx;                      /* tiebreak: schedule insertion order */
    uint16_t locate;
    uint16_t ch;
    uint8_t  type;
    uint8_t  arg;                      /* event code / state / cross type ... */
    uint8_t  _pad[6];
} fh_gen_sched_t;

typedef struct {
    uint64_t ts;
    uint32_t len;
    uint32_t _pad;
    uint8_t  data[FH_GEN_FRAME_MAX];
} fh_gen_bslot_t;

/* Order-flow types, in the order of their weights below. */
enum { FT_A, FT_D, FT_U, FT_E, FT_X, FT_F, FT_P, FT_C, FT__N };
/* Relative weight of each flow type (per 100k flow messages).  With ~1% NOII and
 * the administrative messages on top, the day comes out near NASDAQ's mix:
 * A 44%, D 43%, U 7.4%, E 2.2%, X 1.3%, I 1%.  D X U E C on an instrument
 * without orders (on that side) become adds, which is why D weighs more than
 * the mix it gives. */
static const uint32_t fh_gen_ft_weight[FT__N] = { 43500, 45050, 7500, 2220, 1310, 450, 350, 80 };

typedef struct {
    const fh_gen_cfg_t *cfg;
    int      pitch;                    /* cfg->protocol == FH_GEN_PROTO_PITCH; ch[] are its units */
    uint16_t udp_port;
    uint64_t time_msgs;                /* PITCH Time messages (not in emitted) */
    uint64_t lost_both;                /* packets lost on lines A and B */
    fh_gen_rng_t rng, rng_sched, rng_loss[2];
    uint32_t nsym, nch, lines, max_payload, batch_ns, frame_limit;
    uint64_t heartbeat_ns;
    double   loss[2];
    fh_gen_sym_t  *sym;                /* [nsym + 1], index = locate */
    fh_gen_symx_t *symx;               /* [nsym + 1] */
    fh_gen_chan_t *ch;                 /* [nch] */
    fh_gen_order_t *slots;             /* every instrument's order slots */
    fh_gen_level_t *levels;            /* every instrument's price levels, 2 per slot */
    /* symbol picking by activity: Vose alias table over locates 1..nsym */
    double   *alias_p;
    uint32_t *alias_i;
    /* schedule */
    fh_gen_sched_t *sched;
    size_t   nsched;
    /* flow */
    uint64_t nflow;
    double  *cdf;                      /* [FH_GEN_FLOW_SECS + 1]: the normal day's flow by time */
    uint32_t cdf_pos;
    /* flow window (ITCH ns): 04:00-20:00, or [04:00:00.001, + messages / rate]
     * in flat-rate mode, where rate_k is its length over the normal window's */
    uint64_t flow_t0, flow_t1;
    uint64_t rate;
    double   rate_k;
    uint64_t spacing;                  /* intra-burst gap multiplier, 16.16 fixed point */
    uint32_t ft_cum[FT__N];
    uint32_t need;                     /* flow types not yet emitted (bit per FT_) */
    uint64_t tcur;
    uint64_t dnow;                     /* day clock: tcur, or in flat-rate mode the normal day's time */
    uint32_t q_old;                    /* old-order cancel share now, 32-bit threshold */
    uint32_t q_drain;                  /* share of adds that cancel an old order instead, likewise */
    /* book statistics */
    uint64_t live, peak_live;
    uint64_t touched, top5;            /* D X E C U; those in the top 5 levels of their side */
    uint64_t cancels, old_cancels;     /* D X U; those naming an order older than FH_GEN_OLD_NS */
    uint64_t *lv_hist;                 /* [FH_GEN_LEVEL_HIST]: levels per non-empty side, sampled */
    uint64_t lv_sum, lv_n;
    uint32_t lv_every;
    /* day-wide counters */
    uint64_t ref, match;
    uint64_t emitted;
    volatile uint64_t *progress;
    uint64_t by_type[256];
    /* event queue over channels: min of ch[].ev */
    uint64_t gmin;
    uint32_t garg;
    /* output */
    fh_gen_out_t pcap, bin;
    uint64_t pcap_hwm;                 /* last capture timestamp written */
    uint16_t ip_id[2];
    fh_gen_bslot_t *bring;
    uint32_t bhead, bcount;
    /* stats */
    uint64_t sent[2], written[2], lost[2];
    uint64_t data_packets, mpp_max, heartbeats, eos;
    uint64_t first_cap, last_cap, last_its;
    uint64_t first_ts, last_ts;        /* ITCH ns of the day's first and last message */
} fh_gen_t;

/* Order flow runs 04:00:00.001 .. 19:59:59.999, binned per second. */
#define FH_GEN_FLOW_SECS   57600u
#define FH_GEN_FLOW_START  (FH_GEN_HMS(4, 0, 0) + 1000000ULL)
#define FH_GEN_FLOW_END    (FH_GEN_HMS(20, 0, 0) - 1000000ULL)

/* Flat-rate mode: where a time of the normal day lands in the compressed one.
 * Linear over the normal flow window (04:00:00.001-19:59:59.999, where the
 * crosses, halts, imbalances and the flow are), onto [flow_t0, flow_t1], so
 * the day keeps its proportions and its order.  The off-hours blocks outside
 * it -- start of messages and the start-of-day directory before 04:00, end of
 * system hours and end of messages after 20:00 -- are pinned to the window's
 * edges (1 ns past the end), since a linear map would stretch their idle hour
 * before 04:00 and five minutes after 20:00 into 6% and 0.5% of the capture
 * with nothing in it.  So the directory still comes before the first order
 * and the end of messages after the last.  Monotone, so sorted stays sorted;
 * the identity on a normal day. */
static uint64_t fh_gen_rate_map(const fh_gen_t *g, uint64_t t)
{
    if (!g->rate) return t;
    if (t > FH_GEN_FLOW_END) return g->flow_t1 + 1;
    if (t < FH_GEN_FLOW_START) t = FH_GEN_FLOW_START;
    uint64_t d = (uint64_t)((double)(t - FH_GEN_FLOW_START) * g->rate_k), w = g->flow_t1 - g->flow_t0;
    return g->flow_t0 + (d < w ? d : w);
}

/* ------------------------------------------------------------- symbols */

/* Names everyone recognises lead the activity ranking (prices in Price(4)). */
static const struct { const char *name; uint32_t price; uint8_t etp; uint8_t lev; uint8_t inv; } fh_gen_famous[] = {
    { "AAPL", 2345600, 0, 0, 0 }, { "NVDA", 1382500, 0, 0, 0 }, { "TSLA", 3421700, 0, 0, 0 },
    { "MSFT", 4187300, 0, 0, 0 }, { "AMZN", 2014500, 0, 0, 0 }, { "QQQ", 5073200, 1, 1, 0 },
    { "META", 5789000, 0, 0, 0 }, { "AMD", 1419300, 0, 0, 0 }, { "GOOGL", 1712400, 0, 0, 0 },
    { "TQQQ", 781500, 1, 3, 0 }, { "SQQQ", 74200, 1, 3, 1 }, { "AVGO", 1689000, 0, 0, 0 },
    { "INTC", 219800, 0, 0, 0 }, { "NFLX", 7055000, 0, 0, 0 }, { "COST", 8912300, 0, 0, 0 },
    { "PLTR", 412500, 0, 0, 0 }, { "CSCO", 572100, 0, 0, 0 }, { "PEP", 1654000, 0, 0, 0 },
    { "SIRI", 23100, 0, 0, 0 }, { "MARA", 188400, 0, 0, 0 }, { "SOFI", 124300, 0, 0, 0 },
    { "ADBE", 5121000, 0, 0, 0 }, { "SNDL", 19700, 0, 0, 0 }, { "MULN", 4300, 0, 0, 0 },
};
#define FH_GEN_NFAMOUS (sizeof fh_gen_famous / sizeof fh_gen_famous[0])

static const char fh_gen_mpids[][5] = {
    "GSCO", "MSCO", "JPMS", "CDRG", "VIRT", "UBSS", "CITD", "NITE", "SUSQ", "JANE",
    "HRTF", "TMBR", "BOFA", "DBAB", "BARD", "XTXM",
};
#define FH_GEN_NMPID (sizeof fh_gen_mpids / sizeof fh_gen_mpids[0])

static int fh_gen_cmp_stock(const void *a, const void *b)
{
    return memcmp(((const fh_gen_sym_t *)a)->stock, ((const fh_gen_sym_t *)b)->stock, 8);
}

/* Square root by Newton's method (set-up only; keeps libm out of the link). */
static double fh_gen_sqrt(double x)
{
    if (!(x > 0)) return 0;
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 64; i++) {
        double n = 0.5 * (r + x / r);
        if (n >= r) break;
        r = n;
    }
    return r;
}

FH_INLINE uint32_t fh_gen_tick(uint32_t price) { return price >= 10000 ? 100 : 1; }

/* Nearest price on the tick grid ($0.01 from $1 up, $0.0001 below), never 0. */
FH_INLINE uint32_t fh_gen_grid(uint32_t price)
{
    if (price >= 10000) price = (price + 50) / 100 * 100;
    return price ? price : 1;
}

/* Distinct tickers (famous first, then 1-5 random letters), sorted so that
 * locates follow the alphabet as NASDAQ assigns them; Zipf weights by rank. */
static int fh_gen_symbols(fh_gen_t *g)
{
    uint32_t n = g->nsym;
    fh_gen_sym_t *s = aligned_alloc(64, ((size_t)n + 1) * sizeof *s);   /* a multiple of 64 */
    if (s) memset(s, 0, ((size_t)n + 1) * sizeof *s);
    uint32_t hcap = 1;
    while (hcap < 2 * n + 64) hcap <<= 1;
    uint64_t *hash = calloc(hcap, sizeof *hash);      /* 0 = empty slot */
    double *ptab = malloc(1200 * sizeof *ptab);
    if (!s || !hash || !ptab) { free(s); free(hash); free(ptab); return -1; }
    g->sym = s;

    /* Starting prices: log-spaced $0.20 .. ~$1000, picked triangular (median ~$14). */
    double p = 2000.0;
    for (int k = 0; k < 1200; k++) { ptab[k] = p; p *= 1.00712; }

    fh_gen_sym_t *v = s + 1;           /* fill v[0..n-1], sort, locate = index + 1 */
    uint32_t i = 0;
    while (i < n) {
        char name[8];
        memset(name, ' ', 8);
        uint32_t price;
        uint8_t famous = 0;
        if (i < FH_GEN_NFAMOUS) {
            memcpy(name, fh_gen_famous[i].name, strlen(fh_gen_famous[i].name));
            price = fh_gen_famous[i].price;
            famous = (uint8_t)(i + 1);
        } else {
            uint32_t r = fh_gen_below(&g->rng_sched, 100);
            uint32_t len = r < 2 ? 1 : r < 10 ? 2 : r < 40 ? 3 : r < 95 ? 4 : 5;
            for (uint32_t k = 0; k < len; k++) name[k] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
            if (g->pitch && (i - FH_GEN_NFAMOUS) % FH_GEN_PITCH_LONG_SYM_EVERY == 5) {
                /* PITCH: a preferred share, "ABC.PRA" / "ABCD.PRB" (7-8 characters) */
                uint32_t root = 3 + fh_gen_below(&g->rng_sched, 2);
                memset(name, ' ', 8);
                for (uint32_t k = 0; k < root; k++) name[k] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
                memcpy(name + root, ".PR", 3);
                name[root + 3] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
            }
            uint32_t k = (fh_gen_below(&g->rng_sched, 600) + fh_gen_below(&g->rng_sched, 600));
            double d = ptab[k];
            price = d >= 10000.0 ? (uint32_t)(d / 100.0) * 100u : (uint32_t)d;
        }
        uint64_t key;
        memcpy(&key, name, 8);
        uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 40) & (hcap - 1);
        int dup = 0;
        while (hash[h]) {
            if (hash[h] == key) { dup = 1; break; }
            h = (h + 1) & (hcap - 1);
        }
        if (dup) continue;             /* famous names are distinct, so only randoms retry */
        hash[h] = key;
        memcpy(v[i].stock, name, 8);
        v[i].open = v[i].mid = price;
        v[i].famous = famous;
        v[i].rank = (uint16_t)i;
        i++;
    }
    free(hash);
    free(ptab);
    qsort(v, n, sizeof *v, fh_gen_cmp_stock);
    for (i = 0; i < n; i++) v[i].xsym = v[i].stock[6] != ' ';
    return 0;
}

/* Zipf activity weight by rank: 1 / (rank + 8)^1.25 (see FH_GEN_ZIPF_OFFSET). */
static double fh_gen_weight(const fh_gen_sym_t *s)
{
    double x = (double)s->rank + FH_GEN_ZIPF_OFFSET;
    return 1.0 / (x * fh_gen_sqrt(fh_gen_sqrt(x)));
}

/* Vose's alias method: O(1) weighted pick of a locate. */
static int fh_gen_alias(fh_gen_t *g)
{
    uint32_t n = g->nsym;
    g->alias_p = malloc(n * sizeof *g->alias_p);
    g->alias_i = malloc(n * sizeof *g->alias_i);
    uint32_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    double *q = malloc(n * sizeof *q);
    if (!g->alias_p || !g->alias_i || !small || !large || !q) {
        free(small); free(large); free(q); return -1;
    }
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += fh_gen_weight(&g->sym[i + 1]);
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        q[i] = fh_gen_weight(&g->sym[i + 1]) * n / total;
        if (q[i] < 1.0) small[ns++] = i; else large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t a = small[--ns], b = large[--nl];
        g->alias_p[a] = q[a];
        g->alias_i[a] = b;
        q[b] -= 1.0 - q[a];
        if (q[b] < 1.0) small[ns++] = b; else large[nl++] = b;
    }
    while (nl) { uint32_t b = large[--nl]; g->alias_p[b] = 1.0; g->alias_i[b] = b; }
    while (ns) { uint32_t a = small[--ns]; g->alias_p[a] = 1.0; g->alias_i[a] = a; }
    free(small); free(large); free(q);
    return 0;
}

FH_INLINE uint32_t fh_gen_pick_locate(fh_gen_t *g, fh_gen_rng_t *r)
{
    uint64_t x = fh_gen_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * (uint64_t)g->nsym) >> 32);
    double u = (double)(x & 0xffffffffu) * 0x1.0p-32;
    return (u < g->alias_p[i] ? i : g->alias_i[i]) + 1;
}

/* ------------------------------------------------------------- schedule */

/* Adds one scheduled message, or only counts it while s->sched is NULL. */
static void fh_gen_at(fh_gen_t *g, uint64_t ts, uint32_t ch, uint8_t type, uint32_t locate, uint8_t arg)
{
    /* PITCH has trading status (H h), auctions (Q I) and trade breaks (B) only:
     * no system events, directory, Reg SHO, market makers, MWCB, IPO, LULD
     * collars or RPII messages */
    if (g->pitch && type != 'H' && type != 'h' && type != 'Q' && type != 'I' && type != 'B') return;
    if (g->sched) {
        fh_gen_sched_t *e = &g->sched[g->nsched];
        memset(e, 0, sizeof *e);
        e->ts = ts; e->idx = (uint32_t)g->nsched; e->ch = (uint16_t)ch;
        e->type = type; e->locate = (uint16_t)locate; e->arg = arg;
    }
    g->nsched++;
}

static uint64_t fh_gen_noii_count(uint64_t messages) { return messages / 100; }

/* Everything of the day that is not order flow.  Run twice: to count, to fill.
 * Times per channel c are offset by a few microseconds so channels interleave. */
static void fh_gen_build_schedule(fh_gen_t *g, uint64_t messages)
{
    fh_gen_rng_t r;
    fh_gen_rng_seed(&r, g->cfg->seed, 7);   /* same draws in both passes */
    g->nsched = 0;
    for (uint32_t c = 0; c < g->nch; c++) {
        fh_gen_chan_t *ch = &g->ch[c];
        uint32_t n = (uint32_t)ch->hi - ch->lo + 1u;
        if (n == 0) continue;              /* a PITCH unit without symbols */
        uint64_t tc = (uint64_t)c * 1700;
        uint64_t t = FH_GEN_HMS(3, 2, 5) + tc * 1000;
        fh_gen_at(g, t, c, 'S', 0, 'O');
        /* start-of-day administration: a burst of directory and state messages */
        t += 1000000;
        for (uint32_t j = 0; j < n; j++, t += 2500) fh_gen_at(g, t, c, 'R', ch->lo + j, 0);
        for (uint32_t j = 0; j < n; j++, t += 2500) fh_gen_at(g, t, c, 'H', ch->lo + j, 'T');
        fh_gen_at(g, t, c, 'V', 0, 0); t += 2500;
        for (uint32_t j = 0; j < n; j += 8, t += 2500) fh_gen_at(g, t, c, 'Y', ch->lo + j, 0);
        for (uint32_t j = 0; j < n; j += 4, t += 2500) fh_gen_at(g, t, c, 'L', ch->lo + j, 0);

        fh_gen_at(g, FH_GEN_HMS(4, 0, 0) + tc, c, 'S', 0, 'S');
        fh_gen_at(g, FH_GEN_HMS(9, 30, 0) + tc, c, 'S', 0, 'Q');
        fh_gen_at(g, FH_GEN_HMS(16, 0, 0) + tc, c, 'S', 0, 'M');
        fh_gen_at(g, FH_GEN_HMS(20, 0, 0) + tc, c, 'S', 0, 'E');
        fh_gen_at(g, FH_GEN_HMS(20, 5, 0) + tc, c, 'S', 0, 'C');

        /* opening and closing crosses for every instrument */
        for (uint32_t j = 0; j < n; j++) {
            fh_gen_at(g, FH_GEN_HMS(9, 30, 0) + 50000 + tc + (uint64_t)j * 1000, c, 'Q', ch->lo + j, 'O');
            fh_gen_at(g, FH_GEN_HMS(16, 0, 0) + 50000 + tc + (uint64_t)j * 1000, c, 'Q', ch->lo + j, 'C');
        }
        /* retail price improvement interest through the day */
        for (uint32_t j = 0; j < n; j += 16)
            fh_gen_at(g, FH_GEN_HMS(9, 40, 0) + (uint64_t)j * 7000000 + tc, c, 'N', ch->lo + j, 0);

        /* LULD pauses: halt, quotation period with an auction collar, halt
         * cross, resume -- spread over 10:00-15:00 */
        uint32_t nh = 1 + n / 200;
        for (uint32_t k = 0; k < nh; k++) {
            uint32_t loc = ch->lo + (uint32_t)(((uint64_t)k * n) / nh + (n / nh) / 2);
            uint64_t th = FH_GEN_HMS(10, 0, 0) + (uint64_t)k * (FH_GEN_HMS(5, 0, 0) / nh)
                          + tc * 1000 + fh_gen_below(&r, 1000000000u);
            fh_gen_at(g, th, c, 'H', loc, 'H');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 0), c, 'H', loc, 'Q');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 0) + 1000000, c, 'J', loc, 0);
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 5), c, 'Q', loc, 'H');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 5) + 1000, c, 'H', loc, 'T');
        }
        /* an operational halt of one instrument, two minutes */
        uint32_t hloc = ch->lo + n / 3;
        fh_gen_at(g, FH_GEN_HMS(11, 0, 0) + tc * 1000, c, 'h', hloc, 'H');
        fh_gen_at(g, FH_GEN_HMS(11, 2, 0) + tc * 1000, c, 'h', hloc, 'T');
        /* a broken trade on the channel's busiest instrument */
        uint32_t best = ch->lo;
        for (uint32_t l = ch->lo; l <= ch->hi; l++) if (g->sym[l].rank < g->sym[best].rank) best = l;
        fh_gen_at(g, FH_GEN_HMS(13, 0, 0) + tc * 1000, c, 'B', best, 0);
    }
    /* market-wide circuit breaker status once, an IPO on channel 0's last
     * instrument: quoting period update before the open, price discovery */
    uint32_t ipo = g->ch[0].hi;
    g->sym[ipo].ipo = 1;
    fh_gen_at(g, FH_GEN_HMS(7, 30, 0), 0, 'K', ipo, 0);
    fh_gen_at(g, FH_GEN_HMS(11, 25, 0), 0, 'O', ipo, 0);
    fh_gen_at(g, FH_GEN_HMS(12, 0, 0), 0, 'W', 0, '1');

    /* NOII imbalances before the crosses: 09:25-09:30 and 15:50-16:00 */
    uint64_t ni = fh_gen_noii_count(messages);
    for (uint64_t k = 0; k < ni; k++) {
        uint32_t loc = fh_gen_pick_locate(g, &r);
        int open = fh_gen_below(&r, 5) < 2;
        uint64_t t0 = open ? FH_GEN_HMS(9, 25, 0) : FH_GEN_HMS(15, 50, 0);
        uint64_t span = open ? FH_GEN_HMS(0, 5, 0) : FH_GEN_HMS(0, 10, 0);
        uint64_t ts = t0 + (uint64_t)(fh_gen_unit(&r) * (double)span);
        fh_gen_at(g, ts, g->sym[loc].ch, 'I', loc, open ? 'O' : 'C');
    }
}

static int fh_gen_cmp_sched(const void *a, const void *b)
{
    const fh_gen_sched_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* ------------------------------------------------------- intraday shape */

/* Relative message rate at second-of-day s: thin pre-market rising into the
 * open, U-shaped regular session with spikes in its first and last minutes,
 * after-hours decaying to a trickle. */
static double fh_gen_intensity(uint32_t s)
{
    const double open = 9.5 * 3600, close = 16 * 3600;
    double x = s;
    if (x < 8 * 3600) return 0.010;
    if (x < open) return 0.010 + 0.09 * (x - 8 * 3600) / (open - 8 * 3600);
    if (x < close) {
        double m = (x - open) / (close - open) * 2 - 1;      /* -1 .. 1 */
        double v = 0.45 + 1.6 * m * m;
        if (x < open + 300) v *= 2.5;
        if (x >= close - 300) v *= 2.0;
        return v;
    }
    if (x < 16.5 * 3600) return 0.12;
    if (x < 18 * 3600) return 0.03;
    return 0.004;
}

static int fh_gen_cdf(fh_gen_t *g)
{
    g->cdf = malloc((FH_GEN_FLOW_SECS + 1) * sizeof *g->cdf);
    if (!g->cdf) return -1;
    double acc = 0;
    g->cdf[0] = 0;
    for (uint32_t k = 0; k < FH_GEN_FLOW_SECS; k++) {
        acc += fh_gen_intensity(4 * 3600 + k);
        g->cdf[k + 1] = acc;
    }
    for (uint32_t k = 1; k <= FH_GEN_FLOW_SECS; k++) g->cdf[k] /= acc;
    g->cdf[FH_GEN_FLOW_SECS] = 1.0;
    return 0;
}

/* Time of quantile u (non-decreasing calls, so the table walk is amortised O(1)). */
FH_INLINE uint64_t fh_gen_inv_cdf(fh_gen_t *g, double u)
{
    uint32_t k = g->cdf_pos;
    while (k < FH_GEN_FLOW_SECS - 1 && g->cdf[k + 1] <= u) k++;
    g->cdf_pos = k;
    double lo = g->cdf[k], hi = g->cdf[k + 1];
    double frac = hi > lo ? (u - lo) / (hi - lo) : 0.0;
    if (frac > 1.0) frac = 1.0;
    const double w = (double)(FH_GEN_FLOW_END - FH_GEN_FLOW_START) / FH_GEN_FLOW_SECS;
    return FH_GEN_FLOW_START + (uint64_t)(((double)k + frac) * w);
}

/* --------------------------------------------------------------- packets */

/* Ones' complement sum of native 16-bit words (RFC 1071): byte order only
 * matters when storing, and the folded native sum stores correctly with memcpy.
 * p must start at an even offset of the checksummed range. */
FH_INLINE uint64_t fh_gen_sum(const uint8_t *p, size_t n, uint64_t acc)
{
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4); memcpy(&b, p + 4, 4);
        acc += a; acc += b;
        p += 8; n -= 8;
    }
    if (n >= 4) { uint32_t a; memcpy(&a, p, 4); acc += a; p += 4; n -= 4; }
    if (n >= 2) { uint16_t a; memcpy(&a, p, 2); acc += a; p += 2; n -= 2; }
    if (n) { uint8_t t[2] = { p[0], 0 }; uint16_t a; memcpy(&a, t, 2); acc += a; }
    return acc;
}

FH_INLINE uint16_t fh_gen_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static void fh_gen_pcap_record(fh_gen_t *g, const uint8_t *frame, uint32_t len, uint64_t ts)
{
    if (ts < g->pcap_hwm) ts = g->pcap_hwm;   /* one capture point: time never runs back */
    g->pcap_hwm = ts;
    if (!g->first_cap) g->first_cap = ts;
    g->last_cap = ts;
    uint8_t *p = fh_gen_out_reserve(&g->pcap, 16 + (size_t)len);
    fh_gen_put_le32(p, (uint32_t)(ts / FH_GEN_NS_PER_S));
    fh_gen_put_le32(p + 4, (uint32_t)(ts % FH_GEN_NS_PER_S));
    fh_gen_put_le32(p + 8, len);
    fh_gen_put_le32(p + 12, len);
    memcpy(p + 16, frame, len);
    g->pcap.pos += 16 + (size_t)len;
}

/* Line B frames whose capture time line A has reached go out first. */
static void fh_gen_bring_drain(fh_gen_t *g, uint64_t upto)
{
    while (g->bcount && g->bring[g->bhead].ts <= upto) {
        fh_gen_bslot_t *s = &g->bring[g->bhead];
        fh_gen_pcap_record(g, s->data, s->len, s->ts);
        g->bhead = (g->bhead + 1) & (FH_GEN_BRING - 1);
        g->bcount--;
    }
}

/* Stamp line `line`'s Ethernet/IPv4/UDP headers onto a frame whose Mold
 * payload is final; psum is the payload's ones' complement sum. */
static void fh_gen_headers(fh_gen_t *g, const fh_gen_chan_t *ch, uint8_t *f, uint32_t flen,
                           int line, uint64_t psum)
{
    static const uint8_t src_mac[2][6] = { { 0x00, 0x1b, 0x21, 0x4e, 0x51, 0x0a },
                                           { 0x00, 0x1b, 0x21, 0x4e, 0x51, 0x0b } };
    static const uint32_t src_ip[2] = { 0xCEC82B48u, 0xCEC88F48u };   /* 206.200.43.72 / 206.200.143.72 */
    uint32_t grp = ch->group[line];
    uint32_t c = ch->tracking - 1u;
    uint16_t udp_len = (uint16_t)(flen - FH_GEN_OFF_UDP);
    /* Ethernet: IPv4 multicast MAC = 01:00:5e + low 23 bits of the group */
    f[0] = 0x01; f[1] = 0x00; f[2] = 0x5e;
    f[3] = (uint8_t)((grp >> 16) & 0x7f); f[4] = (uint8_t)(grp >> 8); f[5] = (uint8_t)grp;
    memcpy(f + 6, src_mac[line], 6);
    f[12] = 0x08; f[13] = 0x00;
    /* IPv4: no options, DF clear, TTL 32 */
    uint8_t *ip = f + FH_GEN_OFF_IP;
    ip[0] = 0x45; ip[1] = 0;
    fh_put_be16(ip + 2, (uint16_t)(flen - FH_GEN_OFF_IP));
    fh_put_be16(ip + 4, g->ip_id[line]);
    ip[6] = 0; ip[7] = 0; ip[8] = 32; ip[9] = 17;
    ip[10] = 0; ip[11] = 0;
    fh_put_be32(ip + 12, src_ip[line]);
    fh_put_be32(ip + 16, grp);
    uint16_t ipc = fh_gen_fold(fh_gen_sum(ip, 20, 0));
    memcpy(ip + 10, &ipc, 2);
    /* UDP with its checksum over the pseudo-header */
    uint8_t *udp = f + FH_GEN_OFF_UDP;
    fh_put_be16(udp, (uint16_t)(50000u + c));
    fh_put_be16(udp + 2, g->udp_port);
    fh_put_be16(udp + 4, udp_len);
    udp[6] = 0; udp[7] = 0;
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0; pseudo[9] = 17;
    fh_put_be16(pseudo + 10, udp_len);
    uint16_t uc = fh_gen_fold(fh_gen_sum(udp, 8, fh_gen_sum(pseudo, 12, psum)));
    if (uc == 0) uc = 0xffff;          /* 0 means "no checksum" in UDP over IPv4 */
    memcpy(udp + 6, &uc, 2);
}

FH_INLINE void fh_gen_set_ev(fh_gen_t *g, uint32_t c, uint64_t ev)
{
    g->ch[c].ev = ev;
    if (ev < g->gmin) { g->gmin = ev; g->garg = c; return; }
    if (c != g->garg) return;
    uint64_t m = FH_GEN_INF;
    uint32_t a = 0;
    for (uint32_t k = 0; k < g->nch; k++)
        if (g->ch[k].ev < m) { m = g->ch[k].ev; a = k; }
    g->gmin = m;
    g->garg = a;
}

/* Send channel c's packet (data, heartbeat or end of session) stamped `its`
 * (ITCH ns since midnight), on every line, each with its own loss draw.
 * PITCH: c is a unit, mold_count its message count (0: a heartbeat); its
 * End of Session is a message, sent once ch->ended is set. */
static void fh_gen_send(fh_gen_t *g, uint32_t c, uint16_t mold_count, uint64_t its)
{
    fh_gen_chan_t *ch = &g->ch[c];
    uint8_t *f = ch->frame;
    uint32_t flen = ch->len;
    if (g->pitch) {
        uint8_t *h = f + FH_GEN_OFF_MOLD;      /* Sequenced Unit Header */
        fh_gen_put_le16(h, (uint16_t)(flen - FH_GEN_OFF_MOLD));
        h[2] = (uint8_t)mold_count;
        h[3] = (uint8_t)(c + 1);
        fh_gen_put_le32(h + 4, (uint32_t)ch->next_seq);
    } else {
        fh_put_be64(f + FH_GEN_OFF_MOLD + 10, ch->next_seq);
        fh_put_be16(f + FH_GEN_OFF_MOLD + 18, mold_count);
    }
    uint64_t psum = fh_gen_sum(f + FH_GEN_OFF_MOLD, flen - FH_GEN_OFF_MOLD, 0);
    uint64_t cap = FH_GEN_MIDNIGHT_NS + its + FH_GEN_WIRE_NS + (uint64_t)flen * 4 / 5;
    uint32_t nlost = 0;
    for (uint32_t line = 0; line < g->lines; line++) {
        /* always draw, so a line's losses depend only on the seed and its rate */
        int lost = fh_gen_unit(&g->rng_loss[line]) < g->loss[line];
        g->ip_id[line]++;
        g->sent[line]++;
        if (lost) { g->lost[line]++; nlost++; continue; }
        g->written[line]++;
        if (line == FH_GEN_LINE_A) {
            fh_gen_headers(g, ch, f, flen, FH_GEN_LINE_A, psum);
            fh_gen_bring_drain(g, cap);
            fh_gen_pcap_record(g, f, flen, cap);
        } else {
            if (g->bcount == FH_GEN_BRING) {        /* full: oldest goes now */
                fh_gen_bslot_t *o = &g->bring[g->bhead];
                fh_gen_pcap_record(g, o->data, o->len, o->ts);
                g->bhead = (g->bhead + 1) & (FH_GEN_BRING - 1);
                g->bcount--;
            }
            fh_gen_bslot_t *s = &g->bring[(g->bhead + g->bcount) & (FH_GEN_BRING - 1)];
            memcpy(s->data, f, flen);
            s->len = flen;
            s->ts = cap + FH_GEN_LINE_B_NS + (ch->next_seq * 37) % 400;
            fh_gen_headers(g, ch, s->data, flen, FH_GEN_LINE_B, psum);
            g->bcount++;
        }
    }
    if (nlost == 2) g->lost_both++;
    if (mold_count == 0) { ch->heartbeats++; g->heartbeats++; }
    else if (mold_count == 0xFFFF) { ch->eos++; g->eos++; }
    else {
        ch->data_packets++; g->data_packets++;
        if (mold_count > g->mpp_max) g->mpp_max = mold_count;
        ch->next_seq += mold_count;
    }
    ch->len = g->pitch ? FH_GEN_OFF_PITCH_MSGS : FH_GEN_OFF_BLOCKS;
    ch->count = 0;
    g->last_its = its;
    fh_gen_set_ev(g, c, mold_count == 0xFFFF || ch->ended ? FH_GEN_INF : its + g->heartbeat_ns);
}

/* Run every packetiser deadline and heartbeat timer that falls before t. */
FH_INLINE void fh_gen_advance(fh_gen_t *g, uint64_t t)
{
    while (FH_UNLIKELY(g->gmin < t)) {
        uint32_t c = g->garg;
        fh_gen_chan_t *ch = &g->ch[c];
        if (ch->count) fh_gen_send(g, c, (uint16_t)ch->count, ch->last_ts);
        else fh_gen_send(g, c, 0, ch->ev);
    }
}

/* ------------------------------------------------------------- messages */

/* Start a message: flush what must go first, then write the BinaryFILE record
 * header and the ITCH common header; returns the record (length prefix first). */
FH_INLINE uint8_t *fh_gen_begin(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len,
                               uint32_t locate, uint64_t ts)
{
    fh_gen_advance(g, ts);
    if (ch->count && ch->len + 2 + len > g->frame_limit)
        fh_gen_send(g, (uint32_t)(ch - g->ch), (uint16_t)ch->count, ch->last_ts);
    uint8_t *rec = fh_gen_out_reserve(&g->bin, 2 + (size_t)len);
    fh_put_be16(rec, (uint16_t)len);
    rec[2] = type;
    fh_put_be16(rec + 3, (uint16_t)locate);
    fh_put_be16(rec + 5, ch->tracking);
    fh_put_be48(rec + 7, ts);
    return rec;
}

/* Finish it: into the channel's open packet, counted. */
FH_INLINE void fh_gen_end(fh_gen_t *g, fh_gen_chan_t *ch, const uint8_t *rec, uint32_t len, uint64_t ts)
{
    /* a fixed-size copy (vector moves) beats an exact one (rep movs) for
     * records this small; frame and buffers carry FH_GEN_SLACK spare bytes */
    memcpy(ch->frame + ch->len, rec, FH_GEN_REC_COPY);
    ch->len += 2 + len;
    if (ch->count++ == 0) {
        ch->first_ts = ts;
        fh_gen_set_ev(g, (uint32_t)(ch - g->ch), ts + g->batch_ns);
    }
    ch->last_ts = ts;
    ch->messages++;
    g->bin.pos += 2 + (size_t)len;
    g->by_type[rec[2]]++;
    if (FH_UNLIKELY(g->emitted == 0)) g->first_ts = ts;   /* messages go out in time order */
    if (FH_UNLIKELY((++g->emitted & (FH_GEN_PROGRESS_EVERY - 1)) == 0) && g->progress)
        *g->progress = g->emitted;
}

/* ---------------------------------------------------------- PITCH messages */

/* Count a PITCH message of `len` bytes just written at the end of unit ch's
 * open packet. */
FH_INLINE void fh_pg_count(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint64_t ts)
{
    if (FH_UNLIKELY(g->emitted + g->time_msgs == 0)) g->first_ts = ts;
    ch->len += len;
    if (ch->count++ == 0) {
        ch->first_ts = ts;
        fh_gen_set_ev(g, (uint32_t)(ch - g->ch), ts + g->batch_ns);
    }
    ch->last_ts = ts;
    ch->messages++;
    g->by_type[type]++;
}

/* Start a PITCH message of `len` bytes on unit ch at ts (ns since midnight):
 * flush what must go first, send the packet if the message (and a Time before
 * it) would overflow it, write a Time message when ts is in a new second for
 * the unit, then the message's Length, Type and Time Offset.  The message is
 * written in place, at the end of the unit's open packet. */
FH_INLINE uint8_t *fh_pg_begin(fh_gen_t *g, fh_gen_chan_t *ch, uint8_t type, uint32_t len, uint64_t ts)
{
    fh_gen_advance(g, ts);
    int tick = !ch->timed || ts - ch->tbase >= FH_GEN_NS_PER_S;
    uint32_t need = len + (tick ? FH_PITCH_LEN_TIME : 0), nm = tick ? 2 : 1;
    if (ch->count && (ch->len + need > g->frame_limit || ch->count + nm > FH_GEN_PITCH_MAX_COUNT))
        fh_gen_send(g, (uint32_t)(ch - g->ch), (uint16_t)ch->count, ch->last_ts);
    if (tick) {
        uint64_t sec = ts / FH_GEN_NS_PER_S;
        uint8_t *t = ch->frame + ch->len;
        ch->tbase = sec * FH_GEN_NS_PER_S;
        ch->timed = 1;
        t[0] = FH_PITCH_LEN_TIME;
        t[1] = FH_PITCH_TYPE_TIME;
        fh_gen_put_le32(t + 2, (uint32_t)sec);
        fh_pg_count(g, ch, FH_PITCH_TYPE_TIME, FH_PITCH_LEN_TIME, ts);
        g->time_msgs++;
    }
    uint8_t *m = ch->frame + ch->len;
    m[0] = (uint8_t)len;
    m[1] = type;
    fh_gen_put_le32(m + 2, (uint32_t)(ts - ch->tbase));
    return m;
}

/* Finish it (m from fh_pg_begin). */
FH_INLINE void fh_pg_end(fh_gen_t *g, fh_gen_chan_t *ch, const uint8_t *m, uint64_t ts)
{
    fh_pg_count(g, ch, m[1], m[0], ts);
    if (FH_UNLIKELY((++g->emitted & (FH_GEN_PROGRESS_EVERY - 1)) == 0) && g->progress)
        *g->progress = g->emitted;
}

/* The Short forms carry a 2-byte quantity and a 2-decimal 2-byte price, and
 * 6-character symbols: a message (or one about an order) uses them only when
 * its symbol, quantity and price all fit. */
FH_INLINE int fh_pg_short(const fh_gen_sym_t *s, uint32_t qty, uint32_t px)
{
    return !s->xsym && qty <= 0xFFFFu && px % 100 == 0 && px <= 6553500u;
}

/* An add (A) or attributed add (F, mpid: it goes out as Add Order Expanded
 * with its Participant ID). */
static void fh_pg_add(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts,
                      uint64_t id, uint8_t side, uint32_t qty, uint32_t px, const char *mpid)
{
    uint8_t *m;
    if (s->xsym || mpid) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_EXPANDED, FH_PITCH_LEN_ADD_EXPANDED, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 8);
        fh_gen_put_le64(m + 27, px);
        m[35] = 0x01;                              /* displayed */
        memcpy(m + 36, mpid ? mpid : "    ", 4);
        m[40] = 'N';                               /* customer indicator: non-customer */
    } else if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_SHORT, FH_PITCH_LEN_ADD_SHORT, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le16(m + 15, (uint16_t)qty);
        memcpy(m + 17, s->stock, 6);
        fh_gen_put_le16(m + 23, (uint16_t)(px / 100));
        m[25] = 0x01;
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_ADD_LONG, FH_PITCH_LEN_ADD_LONG, ts);
        fh_gen_put_le64(m + 6, id);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 6);
        fh_gen_put_le64(m + 25, px);
        m[33] = 0x01;
    }
    fh_pg_end(g, ch, m, ts);
}

/* A trade against non-displayed interest (ITCH P): order id 0. */
static void fh_pg_trade(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts,
                        uint8_t side, uint32_t qty, uint32_t px, uint64_t exec)
{
    uint8_t *m;
    if (s->xsym) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_EXPANDED, FH_PITCH_LEN_TRADE_EXPANDED, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 8);
        fh_gen_put_le64(m + 27, px);
        fh_gen_put_le64(m + 35, exec);
    } else if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_SHORT, FH_PITCH_LEN_TRADE_SHORT, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le16(m + 15, (uint16_t)qty);
        memcpy(m + 17, s->stock, 6);
        fh_gen_put_le16(m + 23, (uint16_t)(px / 100));
        fh_gen_put_le64(m + 25, exec);
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_LONG, FH_PITCH_LEN_TRADE_LONG, ts);
        fh_gen_put_le64(m + 6, 0);
        m[14] = side;
        fh_gen_put_le32(m + 15, qty);
        memcpy(m + 19, s->stock, 6);
        fh_gen_put_le64(m + 25, px);
        fh_gen_put_le64(m + 33, exec);
    }
    fh_pg_end(g, ch, m, ts);
}

/* Modify Order: the same order id, its new size and price; bit 1 of the
 * flags says whether it kept its time priority. */
static void fh_pg_modify(fh_gen_t *g, fh_gen_chan_t *ch, const fh_gen_sym_t *s, uint64_t ts,
                         uint64_t id, uint32_t qty, uint32_t px, int keep)
{
    uint8_t *m, flags = (uint8_t)(0x01 | (keep ? 0x02 : 0));
    if (fh_pg_short(s, qty, px)) {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_MODIFY_SHORT, FH_PITCH_LEN_MODIFY_SHORT, ts);
        fh_gen_put_le64(m + 6, id);
        fh_gen_put_le16(m + 14, (uint16_t)qty);
        fh_gen_put_le16(m + 16, (uint16_t)(px / 100));
        m[18] = flags;
    } else {
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_MODIFY_LONG, FH_PITCH_LEN_MODIFY_LONG, ts);
        fh_gen_put_le64(m + 6, id);
        fh_gen_put_le32(m + 14, qty);
        fh_gen_put_le64(m + 18, px);
        m[26] = flags;
    }
    fh_pg_end(g, ch, m, ts);
}

/* Price of an add or replace on its side, on the tick grid: 96% within 0-9
 * ticks of the mid (most within a few), 4% deep, FH_GEN_DEEP_TICKS..639 ticks
 * away, log-uniform (one more draw from g's stream); *deep says which.  With
 * deep NULL (a hidden execution's price), always within 9 ticks. */
FH_INLINE uint32_t fh_gen_quote(fh_gen_t *g, const fh_gen_sym_t *s, uint8_t side, uint32_t r, uint8_t *deep)
{
    uint32_t b = r & 255, d;
    uint32_t mid = s->mid, tick = fh_gen_tick(mid), p;
    if (deep) *deep = 0;
    if (b < 77) d = 0;
    else if (b < 133) d = 1;
    else if (b < 169) d = 2;
    else if (b < 192) d = 3;
    else if (b < 207) d = 4;
    else if (b < 256 - FH_GEN_DEEP_PER_256) d = 5 + ((r >> 8) % 5);
    else if (!deep) d = 5 + ((r >> 8) % 5);
    else {
        /* resting far from the market: an equal share per octave */
        uint64_t x = fh_gen_next(&g->rng);
        uint32_t lo = FH_GEN_DEEP_TICKS << (uint32_t)((x >> 32) % FH_GEN_DEEP_OCTAVES);
        d = lo + (uint32_t)(x % lo);
        uint32_t most = side == 'B' ? mid / tick / 2 : mid / tick;
        if (d > most) d = most;
        if (d >= FH_GEN_DEEP_TICKS) *deep = 1;
        else d = 5 + ((r >> 8) % 5);
    }
    if (side == 'B') {
        p = mid > d * tick ? mid - d * tick : tick;
        if (p >= 10000) p -= p % 100;
    } else {
        p = mid + (d + 1) * tick;
        if (p >= 10000 && p % 100) p += 100 - p % 100;
    }
    return p ? p : 1;
}

/* Shares: mostly round lots, some odd lots, a few blocks; 10x below $1. */
FH_INLINE uint32_t fh_gen_shares(const fh_gen_sym_t *s, uint32_t r)
{
    static const uint16_t lots[16] = { 100, 100, 100, 100, 100, 100, 200, 200, 300, 400, 500, 500, 1000, 1000, 2000, 5000 };
    uint32_t b = r & 255, v;
    if (b < 31) v = 1 + ((r >> 8) % 99);
    else if (b < 250) v = lots[(r >> 8) & 15];
    else v = 100 * (1 + ((r >> 12) % 200));
    return s->mid < 10000 ? v * 10 : v;
}

/* Neighbouring prices on the tick grid ($0.01 from $1 up, $0.0001 below). */
FH_INLINE uint32_t fh_gen_px_up(uint32_t p) { return p >= 10000 ? p + 100 : p + 1; }
FH_INLINE uint32_t fh_gen_px_down(uint32_t p) { return p > 10000 ? p - 100 : p - 1; }

/* ------------------------------------------------------------- books */

FH_INLINE fh_gen_level_t *fh_gen_lv(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side)
{
    return g->levels + 2 * (size_t)s->base + (side ? s->cap : 0);
}

FH_INLINE uint32_t fh_gen_key(uint32_t side, uint32_t price) { return side ? ~price : price; }

/* Best price of a side, 0 when the side is empty (no order has price 0). */
FH_INLINE uint32_t fh_gen_best(const fh_gen_t *g, const fh_gen_sym_t *s, uint32_t side)
{
    uint32_t n = s->nlv[side];
    if (!n) return 0;
    uint32_t k = fh_gen_lv(g, s, side)[n - 1].key;
    return side ? ~k : k;
}

/* Index of the level with `key`, or where it would be inserted.  Most adds,
 * fills and cancels are at or near the best level, the end: look there first. */
static uint32_t fh_gen_lv_find(const fh_gen_level_t *lv, uint32_t n, uint32_t key)
{
    uint32_t hi = n;
    for (int k = 0; k < 4 && hi; k++, hi--) {
        if (lv[hi - 1].key < key) return hi;
        if (lv[hi - 1].key == key) return hi - 1;
    }
    uint32_t lo = 0;
    while (lo < hi) {
        uint32_t m = (lo + hi) >> 1;
        if (lv[m].key < key) lo = m + 1; else hi = m;
    }
    return lo;
}

/* Queue slot at the back of its price level (a new level if there is none).
 * Levels never outnumber the instrument's orders, so cap levels always fit. */
static void fh_gen_book_add(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot)
{
    fh_gen_order_t *o = &g->slots[slot];
    uint32_t side = o->side, n = s->nlv[side], key = fh_gen_key(side, o->price);
    fh_gen_level_t *lv = fh_gen_lv(g, s, side);
    uint32_t i = fh_gen_lv_find(lv, n, key);
    o->next = FH_GEN_NIL;
    if (i < n && lv[i].key == key) {
        o->prev = lv[i].tail;
        g->slots[lv[i].tail].next = slot;
        lv[i].tail = slot;
        lv[i].n++;
    } else {
        memmove(lv + i + 1, lv + i, (size_t)(n - i) * sizeof *lv);
        lv[i].key = key;
        lv[i].n = 1;
        lv[i].head = lv[i].tail = slot;
        o->prev = FH_GEN_NIL;
        s->nlv[side] = n + 1;
    }
}

/* Take slot out of level i of its side (the level goes when it empties). */
static void fh_gen_book_unlink(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot, uint32_t i)
{
    fh_gen_order_t *o = &g->slots[slot];
    uint32_t side = o->side, n = s->nlv[side];
    fh_gen_level_t *lv = fh_gen_lv(g, s, side);
    if (--lv[i].n == 0) {
        memmove(lv + i, lv + i + 1, (size_t)(n - i - 1) * sizeof *lv);
        s->nlv[side] = n - 1;
        return;
    }
    if (o->prev != FH_GEN_NIL) g->slots[o->prev].next = o->next; else lv[i].head = o->next;
    if (o->next != FH_GEN_NIL) g->slots[o->next].prev = o->prev; else lv[i].tail = o->prev;
}

/* A free slot of the instrument (fewer than cap live orders). */
FH_INLINE uint32_t fh_gen_slot_new(fh_gen_t *g, fh_gen_sym_t *s)
{
    uint32_t slot;
    if (s->free_head != FH_GEN_NIL) {
        slot = s->free_head;
        s->free_head = g->slots[slot].next;
    } else {
        slot = s->base + s->hwm++;
    }
    return slot;
}

/* Remove a live order at level i of its side. */
FH_INLINE void fh_gen_slot_free(fh_gen_t *g, fh_gen_sym_t *s, uint32_t slot, uint32_t i)
{
    fh_gen_order_t *o = &g->slots[slot];
    fh_gen_book_unlink(g, s, slot, i);
    o->next = s->free_head;
    o->shares = 0;
    s->free_head = slot;
    s->nord[o->side]--;
    if (o->deep) g->symx[s - g->sym].ndeep[o->side]--;
    g->live--;
}

FH_INLINE void fh_gen_set_born(fh_gen_order_t *o, uint64_t t)
{
    o->born_hi = (uint32_t)(t >> 16);
    o->born_lo = (uint16_t)t;
}

FH_INLINE uint64_t fh_gen_born(const fh_gen_order_t *o)
{
    return (uint64_t)o->born_hi << 16 | o->born_lo;
}

/* Whether a level (by key) is near the mid: less than FH_GEN_DEEP_TICKS away
 * for bids, at most that for asks (they quote one tick further out). */
FH_INLINE int fh_gen_near(const fh_gen_sym_t *s, uint32_t side, uint32_t key)
{
    uint32_t mid = s->mid, reach = FH_GEN_DEEP_TICKS * fh_gen_tick(mid);
    return side ? ~key - mid <= reach : mid - key < reach;
}

/* An old-order pick: a live order of s drawn uniformly over its live orders
 * (slots below the high-water mark, retried past free ones), else the oldest
 * order of a uniformly drawn level of one side, which is mostly a deep one.
 * Returns the slot and sets *side and *li (its level). */
static uint32_t fh_gen_pick_old(fh_gen_t *g, const fh_gen_sym_t *s, uint32_t *side, uint32_t *li)
{
    uint32_t hw = s->hwm, slot = FH_GEN_NIL;
    for (uint32_t k = 0; k < FH_GEN_OLD_TRIES; k += 2) {
        uint64_t x = fh_gen_next(&g->rng);
        uint32_t c0 = s->base + (uint32_t)(((x >> 32) * hw) >> 32);
        uint32_t c1 = s->base + (uint32_t)(((x & 0xffffffffu) * hw) >> 32);
        if (g->slots[c0].shares) { slot = c0; break; }
        if (g->slots[c1].shares) { slot = c1; break; }
    }
    if (slot != FH_GEN_NIL) {
        const fh_gen_order_t *o = &g->slots[slot];
        uint32_t sd = o->side;
        *side = sd;
        *li = fh_gen_lv_find(fh_gen_lv(g, s, sd), s->nlv[sd], fh_gen_key(sd, o->price));
        return slot;
    }
    uint64_t x = fh_gen_next(&g->rng);
    uint32_t sd = (uint32_t)(x >> 63);
    if (!s->nlv[sd]) sd ^= 1;
    uint32_t i = (uint32_t)(((x & 0xffffffffu) * s->nlv[sd]) >> 32);
    *side = sd;
    *li = i;
    return fh_gen_lv(g, s, sd)[i].head;
}

/* After an order left `side` (delete, fill, replace): if the side's best price
 * got worse (its best level is gone), the mid steps one tick after it, where
 * the spread and the walk's band allow.  So prices move as books empty. */
static void fh_gen_follow(const fh_gen_t *g, fh_gen_sym_t *s, uint32_t side, uint32_t was)
{
    uint32_t now = fh_gen_best(g, s, side), mid = s->mid;
    if (side) {
        if (now && now <= was) return;
        if (mid > s->open + s->open / 4) return;
        uint32_t m = fh_gen_px_up(mid);
        if (!now || m < now) s->mid = m;
    } else {
        if (now >= was) return;
        if (mid < s->open - s->open / 4 || mid <= 10 * fh_gen_tick(mid)) return;
        uint32_t m = fh_gen_px_down(mid);
        if (m >= now) s->mid = m;
    }
}

/* Warm the cache for a burst on s: its levels near the touch and the slot the
 * next add takes.  The instrument itself was fetched a burst earlier. */
FH_INLINE void fh_gen_prefetch_book(const fh_gen_t *g, const fh_gen_sym_t *s)
{
    for (uint32_t side = 0; side < 2; side++) {
        uint32_t n = s->nlv[side];
        if (n) {
            const fh_gen_level_t *lv = fh_gen_lv(g, s, side) + n - 1;
            __builtin_prefetch(lv);
            if (n > 4) __builtin_prefetch(lv - 4);
        }
    }
    if (s->free_head != FH_GEN_NIL) __builtin_prefetch(&g->slots[s->free_head]);
}

/* Mid random walk, one tick, pulled back towards the day's start price, and
 * kept inside the spread (best bid <= mid < best ask): a step the book does
 * not allow is not taken. */
FH_INLINE void fh_gen_walk(const fh_gen_t *g, fh_gen_sym_t *s, uint32_t r)
{
    if ((r & 7) != 0) return;
    uint32_t mid = s->mid, tick = fh_gen_tick(mid);
    int up = (r >> 3) & 1;
    if (mid > s->open + s->open / 4) up = 0;
    else if (mid < s->open - s->open / 4 || mid <= 10 * tick) up = 1;
    s->up = (uint8_t)up;
    if (up) {
        uint32_t m = fh_gen_px_up(mid), ask = fh_gen_best(g, s, 1);
        if (!ask || m < ask) s->mid = m;
    } else {
        uint32_t m = fh_gen_px_down(mid);
        if (m >= fh_gen_best(g, s, 0)) s->mid = m;
    }
}

FH_INLINE uint32_t fh_gen_part(uint32_t rem, uint32_t r)
{
    /* 1 .. rem-1, round lots where the order allows */
    if (rem > 200) return 100 * (1 + r % ((rem - 1) / 100));
    return 1 + r % (rem - 1);
}

/* ITCH 5.0 wire length (type byte included): the one table, itch_spec.h. */
static uint32_t fh_gen_len(uint8_t type)
{
#define FH_GEN_LEN_CASE(c, tag, len, name) case c: return (len);
    switch (type) {
    FH_ITCH_MESSAGES(FH_GEN_LEN_CASE)
    default: return 0;
    }
#undef FH_GEN_LEN_CASE
}

static void fh_gen_stock(uint8_t *dst, const fh_gen_sym_t *s) { memcpy(dst, s->stock, 8); }

/* One order-flow message on instrument `focus` at ts. */
static void fh_gen_flow(fh_gen_t *g, uint32_t focus, uint64_t ts, int force)
{
    fh_gen_sym_t *s = &g->sym[focus];
    fh_gen_symx_t *sx = &g->symx[focus];
    fh_gen_chan_t *ch = &g->ch[s->ch];
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t r32 = (uint32_t)r, rh = (uint32_t)(r >> 32);
    int t = 0;
    while (t < FT__N - 1 && r32 >= g->ft_cum[t]) t++;
    if (FH_UNLIKELY(force)) t = __builtin_ctz(g->need);

    uint32_t slot = 0, side = 0, li = 0;
    uint8_t aside = 0;                 /* side of an add, 0: drawn */
    fh_gen_order_t *o = NULL;
    if ((t == FT_A || t == FT_F) && g->q_drain && !force && s->nord[0] + s->nord[1]
        && (uint32_t)fh_gen_next(&g->rng) < g->q_drain) {
        /* into the close and after it, day orders are pulled: some adds are
         * cancels of an old order instead, so the books thin out */
        t = FT_D;
        slot = fh_gen_pick_old(g, s, &side, &li);
        o = &g->slots[slot];
    }
    else if (t != FT_A && t != FT_F && t != FT_P) {
        /* D X U: mostly an order near the touch, its level's newest more often
         * than its oldest; a share (g->q_old, rising into the close) any live
         * order of the instrument, uniformly, so old deep orders get cancelled.
         * E C: an aggressor takes the oldest order at the best price of one
         * side, mostly the side the walk last leaned towards (up: lifts asks). */
        int exec = t == FT_E || t == FT_C;
        if (!exec && s->nord[0] + s->nord[1]
            && (uint32_t)fh_gen_next(&g->rng) < g->q_old) {
            slot = fh_gen_pick_old(g, s, &side, &li);
            o = &g->slots[slot];
            if (t == FT_X && o->shares < 2) t = FT_D;
        } else {
            side = exec ? ((rh & 3) ? s->up : !s->up) : (rh >> 31);
            if (!s->nlv[side]) side ^= 1;
            uint32_t n = s->nlv[side];
            if (!n) t = FT_A;
            else if (t == FT_D && s->nord[side] - sx->ndeep[side] < FH_GEN_MIN_ORDERS) {
                /* a thin touch: its market makers quote instead of cancelling */
                t = FT_A;
                aside = (uint8_t)(side ? 'S' : 'B');
            } else {
                const fh_gen_level_t *lv = fh_gen_lv(g, s, side);
                if (exec) li = n - 1;
                else {
                    /* k levels from the touch with probability 2^-(k+1), among
                     * those near the mid (deep levels are left to old picks) */
                    uint32_t k = (uint32_t)__builtin_ctz(((rh >> 2) & 0x7f) | 0x80);
                    li = n - 1 - (k < n ? k : n - 1);
                    if (k && !fh_gen_near(s, side, lv[li].key)) li = n - 1;
                }
                slot = (exec || ((rh >> 9) & 3) == 0) ? lv[li].head : lv[li].tail;
                o = &g->slots[slot];
                if (t == FT_X && o->shares < 2) t = FT_D;
            }
        }
    }
    if ((t == FT_A || t == FT_F) && s->nord[0] + s->nord[1] == s->cap) {
        /* a full book: someone cancels instead (the oldest order of the
         * deepest level of a side) */
        ch->pool_full++;
        t = FT_D;
        side = s->nlv[rh & 1] ? rh & 1 : !(rh & 1);
        li = 0;
        slot = fh_gen_lv(g, s, side)[0].head;
        o = &g->slots[slot];
    }
    g->need &= ~(1u << t);
    sx->flow++;
    if (o) {
        /* D X E C U name a live order: where it sits, how old it is */
        g->touched++;
        if (s->nlv[side] - li <= 5) g->top5++;
        if (t != FT_E && t != FT_C) {
            g->cancels++;
            if (g->dnow - fh_gen_born(o) > FH_GEN_OLD_NS) g->old_cancels++;
        }
    }

    uint64_t r2 = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r2, b = (uint32_t)(r2 >> 32);
    uint32_t was = o ? fh_gen_best(g, s, side) : 0;   /* best price before a removal */
    uint8_t *m;
    switch (t) {
    case FT_A:
    case FT_F: {
        uint32_t len = t == FT_A ? FH_ITCH_LEN_A : FH_ITCH_LEN_F;
        uint8_t bs = aside ? aside : (a >> 31) ? 'B' : 'S', deep;
        fh_gen_walk(g, s, b >> 8);
        uint32_t sh = fh_gen_shares(s, a), px = fh_gen_quote(g, s, bs, b, &deep);
        g->ref += 1 + (a & 3);
        if (g->pitch) {
            fh_pg_add(g, ch, s, ts, g->ref, bs, sh, px,
                      t == FT_F ? fh_gen_mpids[(a >> 20) % FH_GEN_NMPID] : NULL);
        } else {
            m = fh_gen_begin(g, ch, t == FT_A ? 'A' : 'F', len, focus, ts) + 2;
            fh_put_be64(m + 11, g->ref);
            m[19] = bs;
            fh_put_be32(m + 20, sh);
            fh_gen_stock(m + 24, s);
            fh_put_be32(m + 32, px);
            if (t == FT_F) memcpy(m + 36, fh_gen_mpids[(a >> 20) % FH_GEN_NMPID], 4);
            fh_gen_end(g, ch, m - 2, len, ts);
        }
        slot = fh_gen_slot_new(g, s);
        o = &g->slots[slot];
        o->ref = g->ref; o->shares = sh; o->price = px; o->side = bs == 'S';
        o->deep = deep;
        fh_gen_set_born(o, g->dnow);
        s->nord[o->side]++;
        sx->ndeep[o->side] += deep;
        fh_gen_book_add(g, s, slot);
        if (++g->live > g->peak_live) g->peak_live = g->live;
        break;
    }
    case FT_D:
        if (g->pitch) {
            m = fh_pg_begin(g, ch, FH_PITCH_TYPE_DELETE, FH_PITCH_LEN_DELETE, ts);
            fh_gen_put_le64(m + 6, o->ref);
            fh_pg_end(g, ch, m, ts);
        } else {
            m = fh_gen_begin(g, ch, 'D', FH_ITCH_LEN_D, focus, ts) + 2;
            fh_put_be64(m + 11, o->ref);
            fh_gen_end(g, ch, m - 2, FH_ITCH_LEN_D, ts);
        }
        fh_gen_slot_free(g, s, slot, li);
        fh_gen_follow(g, s, side, was);
        break;
    case FT_X: {
        uint32_t x = fh_gen_part(o->shares, a);
        if (g->pitch) {
            /* Reduce Size: Short when the order's price and the quantity fit */
            if (fh_pg_short(s, x, o->price)) {
                m = fh_pg_begin(g, ch, FH_PITCH_TYPE_REDUCE_SHORT, FH_PITCH_LEN_REDUCE_SHORT, ts);
                fh_gen_put_le16(m + 14, (uint16_t)x);
            } else {
                m = fh_pg_begin(g, ch, FH_PITCH_TYPE_REDUCE_LONG, FH_PITCH_LEN_REDUCE_LONG, ts);
                fh_gen_put_le32(m + 14, x);
            }
            fh_gen_put_le64(m + 6, o->ref);
            fh_pg_end(g, ch, m, ts);
        } else {
            m = fh_gen_begin(g, ch, 'X', FH_ITCH_LEN_X, focus, ts) + 2;
            fh_put_be64(m + 11, o->ref);
            fh_put_be32(m + 19, x);
            fh_gen_end(g, ch, m - 2, FH_ITCH_LEN_X, ts);
        }
        o->shares -= x;
        break;
    }
    case FT_E:
    case FT_C: {
        uint32_t len = t == FT_E ? FH_ITCH_LEN_E : FH_ITCH_LEN_C;
        uint32_t x = (o->shares < 2 || (a & 255) < 140) ? o->shares : fh_gen_part(o->shares, a >> 8);
        if (g->pitch) {
            if (t == FT_E) {
                m = fh_pg_begin(g, ch, FH_PITCH_TYPE_EXECUTED, FH_PITCH_LEN_EXECUTED, ts);
                fh_gen_put_le64(m + 6, o->ref);
                fh_gen_put_le32(m + 14, x);
                fh_gen_put_le64(m + 18, ++g->match);
            } else {
                /* executed away from the displayed price: price improvement */
                uint32_t tk = fh_gen_tick(o->price), px = o->price;
                if (o->side == 0 && px > 2 * tk) px -= tk * (1 + (b & 1));
                else if (o->side == 1) px += tk * (1 + (b & 1));
                m = fh_pg_begin(g, ch, FH_PITCH_TYPE_EXECUTED_PRICE, FH_PITCH_LEN_EXECUTED_PRICE, ts);
                fh_gen_put_le64(m + 6, o->ref);
                fh_gen_put_le32(m + 14, x);
                fh_gen_put_le32(m + 18, o->shares - x);
                fh_gen_put_le64(m + 22, ++g->match);
                fh_gen_put_le64(m + 30, fh_gen_grid(px));
            }
            fh_pg_end(g, ch, m, ts);
            s->last_match = ch->last_match = g->match;
            if (x < o->shares) { o->shares -= x; break; }
            fh_gen_slot_free(g, s, slot, li);
            fh_gen_follow(g, s, side, was);
            break;
        }
        m = fh_gen_begin(g, ch, t == FT_E ? 'E' : 'C', len, focus, ts) + 2;
        fh_put_be64(m + 11, o->ref);
        fh_put_be32(m + 19, x);
        fh_put_be64(m + 23, ++g->match);
        if (t == FT_C) {
            /* executed away from the displayed price: price improvement */
            uint32_t tk = fh_gen_tick(o->price), px = o->price;
            if (o->side == 0 && px > 2 * tk) px -= tk * (1 + (b & 1));
            else if (o->side == 1) px += tk * (1 + (b & 1));
            m[31] = (b >> 8) % 10 ? 'Y' : 'N';
            fh_put_be32(m + 32, fh_gen_grid(px));
        }
        fh_gen_end(g, ch, m - 2, len, ts);
        s->last_match = ch->last_match = g->match;
        if (x < o->shares) { o->shares -= x; break; }
        fh_gen_slot_free(g, s, slot, li);
        fh_gen_follow(g, s, side, was);
        break;
    }
    case FT_U: {
        /* cancel-replace: a new reference at the back of its (passive) price */
        fh_gen_walk(g, s, b >> 8);
        uint8_t deep;
        uint32_t sh = (a & 3) ? o->shares : fh_gen_shares(s, a >> 2);
        uint32_t px = fh_gen_quote(g, s, o->side ? 'S' : 'B', b, &deep);
        if (g->pitch) {
            /* Modify Order keeps the order id; it keeps its place in the
             * queue only at the same price with no more shares */
            int keep = px == o->price && sh <= o->shares;
            fh_pg_modify(g, ch, s, ts, o->ref, sh, px, keep);
            sx->ndeep[o->side] += (uint32_t)deep - o->deep;
            o->deep = deep;
            if (keep) { o->shares = sh; break; }
            fh_gen_book_unlink(g, s, slot, li);
            o->shares = sh; o->price = px;
            fh_gen_set_born(o, g->dnow);
            fh_gen_book_add(g, s, slot);
            fh_gen_follow(g, s, side, was);
            break;
        }
        g->ref += 1 + (a >> 30);
        m = fh_gen_begin(g, ch, 'U', FH_ITCH_LEN_U, focus, ts) + 2;
        fh_put_be64(m + 11, o->ref);
        fh_put_be64(m + 19, g->ref);
        fh_put_be32(m + 27, sh);
        fh_put_be32(m + 31, px);
        fh_gen_end(g, ch, m - 2, FH_ITCH_LEN_U, ts);
        fh_gen_book_unlink(g, s, slot, li);
        sx->ndeep[o->side] += (uint32_t)deep - o->deep;
        o->ref = g->ref; o->shares = sh; o->price = px; o->deep = deep;
        fh_gen_set_born(o, g->dnow);
        fh_gen_book_add(g, s, slot);
        fh_gen_follow(g, s, side, was);
        break;
    }
    case FT_P: {
        /* hidden (non-displayed) execution: NASDAQ zeroes the order reference */
        uint8_t bs = (a >> 31) ? 'B' : 'S';
        uint32_t sh = fh_gen_shares(s, a), px = fh_gen_quote(g, s, bs, b, NULL);
        if (g->pitch) {
            fh_pg_trade(g, ch, s, ts, bs, sh, px, ++g->match);
            s->last_match = ch->last_match = g->match;
            break;
        }
        m = fh_gen_begin(g, ch, 'P', FH_ITCH_LEN_P, focus, ts) + 2;
        fh_put_be64(m + 11, 0);
        m[19] = bs;
        fh_put_be32(m + 20, sh);
        fh_gen_stock(m + 24, s);
        fh_put_be32(m + 32, px);
        fh_put_be64(m + 36, ++g->match);
        fh_gen_end(g, ch, m - 2, FH_ITCH_LEN_P, ts);
        s->last_match = ch->last_match = g->match;
        break;
    }
    }
}

/* One scheduled PITCH message (the schedule holds only H h Q I B then). */
static void fh_pg_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    fh_gen_chan_t *ch = &g->ch[e->ch];
    fh_gen_sym_t *s = &g->sym[e->locate];
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r, b = (uint32_t)(r >> 32);
    uint64_t ts = e->ts;
    uint8_t *m;
    switch (e->type) {
    case 'H':
    case 'h':
        /* trading action / operational halt: 'T' trading, 'H' halted, 'Q' quote-only */
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADING_STATUS, FH_PITCH_LEN_TRADING_STATUS, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        m[15] = '0';                       /* Reg SHO: no price test */
        m[16] = ' ';
        m[17] = ' ';
        break;
    case 'Q': {
        /* opening / closing / halt cross */
        uint32_t sh = e->arg == 'H' ? 100u * (1 + a % 500) : 100u * (1 + a % 20000);
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_AUCTION_SUMMARY, FH_PITCH_LEN_AUCTION_SUMMARY, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        fh_gen_put_le64(m + 15, s->mid);
        fh_gen_put_le32(m + 23, s->rank < 50 ? sh * 10 : sh);
        break;
    }
    case 'I': {
        /* imbalance before a cross */
        uint32_t p = s->mid, tk = fh_gen_tick(p);
        uint32_t paired = 100u * (1 + a % 5000), imb = 100u * (b % 800);
        int buy = (b >> 20) & 1;
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_AUCTION_UPDATE, FH_PITCH_LEN_AUCTION_UPDATE, ts);
        memcpy(m + 6, s->stock, 8);
        m[14] = e->arg;
        fh_gen_put_le64(m + 15, p);
        fh_gen_put_le32(m + 23, paired + (buy ? imb : 0));
        fh_gen_put_le32(m + 27, paired + (buy ? 0 : imb));
        fh_gen_put_le64(m + 31, fh_gen_grid(p + tk * ((a >> 20) % 3)));
        fh_gen_put_le64(m + 39, fh_gen_grid(p + tk * ((a >> 24) % 5)));
        break;
    }
    case 'B': {
        /* break the instrument's last execution (or the unit's, or the venue's) */
        uint64_t x = s->last_match ? s->last_match : ch->last_match ? ch->last_match : g->match;
        m = fh_pg_begin(g, ch, FH_PITCH_TYPE_TRADE_BREAK, FH_PITCH_LEN_TRADE_BREAK, ts);
        fh_gen_put_le64(m + 6, x);
        break;
    }
    default:
        return;
    }
    fh_pg_end(g, ch, m, ts);
}

/* One scheduled message; field values drawn now, from the current market. */
static void fh_gen_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    if (g->pitch) { fh_pg_scheduled(g, e); return; }
    fh_gen_chan_t *ch = &g->ch[e->ch];
    fh_gen_sym_t *s = &g->sym[e->locate];      /* sym[0] for market-wide: unused */
    uint64_t r = fh_gen_next(&g->rng);
    uint32_t a = (uint32_t)r, b = (uint32_t)(r >> 32);
    uint64_t ts = e->ts;
    uint8_t *m;
    uint32_t len = fh_gen_len(e->type);
    m = fh_gen_begin(g, ch, e->type, len, e->locate, ts) + 2;
    switch (e->type) {
    case 'S':
    case 'W':
        m[11] = e->arg;
        break;
    case 'R': {
        uint8_t f = s->famous;
        fh_gen_stock(m + 11, s);
        m[19] = f && f <= 12 ? 'Q' : "QGS"[a % 3];                 /* market category */
        m[20] = (a >> 8) % 50 ? 'N' : 'D';                         /* financial status */
        fh_put_be32(m + 21, 100);                                  /* round lot */
        m[25] = 'N';
        m[26] = f && fh_gen_famous[f - 1].etp ? 'Q' : 'C';         /* issue classification */
        memcpy(m + 27, f && fh_gen_famous[f - 1].etp ? "EF" : "Z ", 2);
        m[29] = 'P';                                               /* production */
        m[30] = 'N';
        m[31] = s->ipo ? 'Y' : 'N';
        m[32] = s->open >= 30000 && (f || (a >> 16) % 3 == 0) ? '1' : '2';
        m[33] = f && fh_gen_famous[f - 1].etp ? 'Y' : 'N';
        fh_put_be32(m + 34, f ? fh_gen_famous[f - 1].lev : 0);
        m[38] = f && fh_gen_famous[f - 1].inv ? 'Y' : 'N';
        break;
    }
    case 'H':
        fh_gen_stock(m + 11, s);
        m[19] = e->arg;
        m[20] = ' ';
        memcpy(m + 21, e->arg == 'T' ? "    " : "LUDP", 4);
        break;
    case 'Y':
        fh_gen_stock(m + 11, s);
        m[19] = a % 20 ? '0' : '1';
        break;
    case 'L':
        memcpy(m + 11, fh_gen_mpids[a % FH_GEN_NMPID], 4);
        fh_gen_stock(m + 15, s);
        m[23] = (b & 3) == 0 ? 'Y' : 'N';
        m[24] = 'N';
        m[25] = 'A';
        break;
    case 'V':
        /* MWCB decline levels 7/13/20% below a ~6400 S&P 500 close, Price(8) */
        fh_put_be64(m + 11, 595200000000ULL);
        fh_put_be64(m + 19, 556800000000ULL);
        fh_put_be64(m + 27, 512000000000ULL);
        break;
    case 'K':
        fh_gen_stock(m + 11, s);
        /* release 11:30:00 (seconds; where 11:30 lands in a compressed day) */
        fh_put_be32(m + 19, (uint32_t)(fh_gen_rate_map(g, FH_GEN_HMS(11, 30, 0)) / FH_GEN_NS_PER_S));
        m[23] = 'A';                                               /* anticipated */
        fh_put_be32(m + 24, s->open);
        break;
    case 'O': {
        uint32_t p = s->mid, w = s->mid / 10;
        fh_gen_stock(m + 11, s);
        m[19] = 'Y';
        fh_put_be32(m + 20, fh_gen_grid(p - w));
        fh_put_be32(m + 24, fh_gen_grid(p + w));
        fh_put_be32(m + 28, p);
        fh_put_be64(m + 32, fh_gen_rate_map(g, FH_GEN_HMS(11, 30, 0)));
        fh_put_be32(m + 40, fh_gen_grid(p - w / 2));
        fh_put_be32(m + 44, fh_gen_grid(p + w / 2));
        break;
    }
    case 'J': {
        uint32_t p = s->mid, w = p / 20;
        fh_gen_stock(m + 11, s);
        fh_put_be32(m + 19, p);
        fh_put_be32(m + 23, fh_gen_grid(p + w));
        fh_put_be32(m + 27, fh_gen_grid(p - w));
        fh_put_be32(m + 31, 0);
        break;
    }
    case 'h':
        fh_gen_stock(m + 11, s);
        m[19] = 'Q';
        m[20] = e->arg;
        break;
    case 'N':
        fh_gen_stock(m + 11, s);
        m[19] = "BSAN"[a & 3];
        break;
    case 'Q': {
        uint64_t sh = e->arg == 'H' ? 100ULL * (1 + a % 500) : 100ULL * (1 + a % 20000);
        fh_put_be64(m + 11, s->rank < 50 ? sh * 10 : sh);
        fh_gen_stock(m + 19, s);
        fh_put_be32(m + 27, s->mid);
        fh_put_be64(m + 31, ++g->match);
        m[39] = e->arg;
        s->last_match = ch->last_match = g->match;
        break;
    }
    case 'B': {
        /* break the instrument's last print (the opening cross at worst) */
        uint64_t mt = s->last_match ? s->last_match : ch->last_match;
        fh_put_be64(m + 11, mt ? mt : g->match);
        break;
    }
    case 'I': {
        uint32_t p = s->mid, tk = fh_gen_tick(p);
        uint64_t paired = 100ULL * (1 + a % 5000), imb = 100ULL * (b % 800);
        fh_put_be64(m + 11, paired);
        fh_put_be64(m + 19, imb);
        m[27] = imb == 0 ? 'N' : "BS"[(b >> 20) & 1];
        fh_gen_stock(m + 28, s);
        fh_put_be32(m + 36, e->arg == 'O' ? 0 : fh_gen_grid(p + tk * ((a >> 24) % 5)));
        fh_put_be32(m + 40, fh_gen_grid(p + tk * ((a >> 20) % 3)));
        fh_put_be32(m + 44, p);
        m[48] = e->arg;
        m[49] = " L123456789ABC"[(b >> 24) % 14];
        break;
    }
    }
    fh_gen_end(g, ch, m - 2, len, ts);
}

/* ------------------------------------------------------------------ run */

static void fh_gen_free(fh_gen_t *g)
{
    if (!g) return;
    if (g->pcap.f) fclose(g->pcap.f);
    if (g->bin.f) fclose(g->bin.f);
    free(g->pcap.buf); free(g->bin.buf);
    free(g->sym); free(g->symx); free(g->ch); free(g->lv_hist);
    free(g->slots); free(g->levels);
    free(g->alias_p); free(g->alias_i);
    free(g->sched); free(g->cdf); free(g->bring);
    free(g);
}

static char *fh_gen_path(const char *prefix, const char *ext)
{
    size_t n = strlen(prefix) + strlen(ext) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", prefix, ext);
    return p;
}

static int fh_gen_validate(const fh_gen_cfg_t *cfg, char *err, size_t errlen)
{
    if (!cfg) { fh_errf(err, errlen, "invalid gen config: cfg is NULL"); return -1; }
    if (!cfg->out_prefix || !cfg->out_prefix[0]) {
        fh_errf(err, errlen, "invalid gen config: empty output prefix"); return -1;
    }
    if (cfg->symbols < 1 || cfg->symbols > 65535) {
        fh_errf(err, errlen, "invalid gen config: symbols must be 1..65535, got %u", cfg->symbols); return -1;
    }
    if (cfg->protocol > FH_GEN_PROTO_PITCH) {
        fh_errf(err, errlen, "invalid gen config: protocol must be 0 (itch) or 1 (pitch), got %u",
                cfg->protocol);
        return -1;
    }
    if (cfg->protocol == FH_GEN_PROTO_PITCH) {
        uint32_t units = cfg->units ? cfg->units : FH_GEN_PITCH_UNITS;
        if (units > FH_GEN_PITCH_UNITS) {
            fh_errf(err, errlen, "invalid gen config: units must be 1..%u (0 = %u), got %u",
                    FH_GEN_PITCH_UNITS, FH_GEN_PITCH_UNITS, cfg->units);
            return -1;
        }
        if (cfg->symbols > units * FH_GEN_PITCH_SYMS_PER_UNIT) {
            fh_errf(err, errlen, "invalid gen config: %u symbols do not fit %u PITCH unit(s): at most "
                    "%u symbols per unit (%u in all); raise --units (at most %u)", cfg->symbols, units,
                    FH_GEN_PITCH_SYMS_PER_UNIT, units * FH_GEN_PITCH_SYMS_PER_UNIT, FH_GEN_PITCH_UNITS);
            return -1;
        }
        if (cfg->channels < 1 || cfg->channels > units) {
            fh_errf(err, errlen, "invalid gen config: channels (multicast groups per line) must be "
                    "1..units (%u), got %u", units, cfg->channels);
            return -1;
        }
    } else if (cfg->channels < 1 || cfg->channels > FH_GEN_MAX_CHANNELS || cfg->channels > cfg->symbols) {
        fh_errf(err, errlen, "invalid gen config: channels must be 1..%u and <= symbols (%u), got %u",
                FH_GEN_MAX_CHANNELS, cfg->symbols, cfg->channels);
        return -1;
    }
    if (cfg->lines != 1 && cfg->lines != 2) {
        fh_errf(err, errlen, "invalid gen config: lines must be 1 (A) or 2 (A and B), got %u", cfg->lines); return -1;
    }
    if (!(cfg->loss_a >= 0.0 && cfg->loss_a < 1.0) || !(cfg->loss_b >= 0.0 && cfg->loss_b < 1.0)) {
        fh_errf(err, errlen, "invalid gen config: loss probabilities must be in [0, 1), got %g and %g",
                cfg->loss_a, cfg->loss_b);
        return -1;
    }
    if (cfg->max_payload && (cfg->max_payload < FH_GEN_PAYLOAD_MIN || cfg->max_payload > FH_GEN_PAYLOAD_MAX)) {
        fh_errf(err, errlen, "invalid gen config: max_payload must be 0 (default %u) or %u..%u, got %u",
                FH_GEN_PAYLOAD_DEFAULT, FH_GEN_PAYLOAD_MIN, FH_GEN_PAYLOAD_MAX, cfg->max_payload);
        return -1;
    }
    if (cfg->messages > FH_GEN_MAX_MESSAGES) {
        fh_errf(err, errlen, "invalid gen config: at most %llu messages, got %llu",
                (unsigned long long)FH_GEN_MAX_MESSAGES, (unsigned long long)cfg->messages);
        return -1;
    }
    if (cfg->rate && (cfg->rate < FH_GEN_RATE_MIN || cfg->rate > FH_GEN_RATE_MAX)) {
        fh_errf(err, errlen, "invalid gen config: rate must be 0 (the normal day) or %llu..%llu "
                "messages per second, got %llu", (unsigned long long)FH_GEN_RATE_MIN,
                (unsigned long long)FH_GEN_RATE_MAX, (unsigned long long)cfg->rate);
        return -1;
    }
    /* a flat-rate day compresses the normal one: it cannot be longer */
    if (cfg->rate && cfg->messages * FH_GEN_NS_PER_S / cfg->rate > FH_GEN_FLOW_END - FH_GEN_FLOW_START) {
        fh_errf(err, errlen, "invalid gen config: %llu messages at rate %llu per second would last "
                "%llu s, longer than the normal day's 16 hours of order flow; raise the rate",
                (unsigned long long)cfg->messages, (unsigned long long)cfg->rate,
                (unsigned long long)(cfg->messages / cfg->rate));
        return -1;
    }
    return 0;
}

static int fh_gen_open(fh_gen_out_t *o, const char *path, char *err, size_t errlen)
{
    o->path = path;
    o->f = fopen(path, "wb");
    if (!o->f) { fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno)); return -1; }
    o->buf = malloc(FH_GEN_OUTBUF + FH_GEN_SLACK);
    o->cap = FH_GEN_OUTBUF;
    if (!o->buf) { fh_errf(err, errlen, "out of memory for output buffers"); return -1; }
    return 0;
}

static int fh_gen_close(fh_gen_out_t *o, char *err, size_t errlen)
{
    fh_gen_out_flush(o);
    int e = o->err_no;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (e) { fh_errf(err, errlen, "write error on %s: %s", o->path, strerror(e)); return -1; }
    return 0;
}

static void fh_gen_ip(char *dst, size_t n, uint32_t ip)
{
    snprintf(dst, n, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

static int fh_gen_cmp_desc_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* "book_stats": what the day's books looked like (see docs/generator.md). */
static void fh_gen_json_book_stats(fh_gen_t *g, FILE *f)
{
    uint32_t p99 = 0;
    if (g->lv_n) {
        uint64_t acc = 0, want = g->lv_n - g->lv_n / 100;   /* the 99th percentile: ceil(0.99 n) */
        for (uint32_t v = 0; v < FH_GEN_LEVEL_HIST; v++) {
            acc += g->lv_hist[v];
            if (acc >= want) { p99 = v; break; }
        }
    }
    /* flow messages of the 300 most active instruments */
    uint64_t flow = 0, top = 0;
    uint32_t *c = malloc((size_t)g->nsym * sizeof *c);
    if (c) {
        for (uint32_t l = 1; l <= g->nsym; l++) { c[l - 1] = g->symx[l].flow; flow += c[l - 1]; }
        qsort(c, g->nsym, sizeof *c, fh_gen_cmp_desc_u32);
        for (uint32_t k = 0; k < g->nsym && k < 300; k++) top += c[k];
        free(c);
    }
    fprintf(f, "  \"book_stats\": {\"peak_live_orders\": %llu, \"levels_per_side_mean\": %.4f, "
               "\"levels_per_side_p99\": %u, \"top5_share\": %.6f, \"old_cancel_share\": %.6f, "
               "\"top300_message_share\": %.6f},\n",
            (unsigned long long)g->peak_live, g->lv_n ? (double)g->lv_sum / (double)g->lv_n : 0.0, p99,
            g->touched ? (double)g->top5 / (double)g->touched : 0.0,
            g->cancels ? (double)g->old_cancels / (double)g->cancels : 0.0,
            flow ? (double)top / (double)flow : 0.0);
}

/* PREFIX.json (docs/generator.md).  ITCH and PITCH days share most keys; a
 * PITCH day adds its protocol, its Time messages, loss on both lines and its
 * units, and names order ids as PITCH does. */
static int fh_gen_json(fh_gen_t *g, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) { fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno)); return -1; }
    const fh_gen_cfg_t *cfg = g->cfg;
    const int pitch = g->pitch;
    const uint64_t total = g->emitted + (pitch ? g->time_msgs : 0);
    fprintf(f, "{\n  \"format\": \"feedhandler-gen/1\",\n%s", pitch ? "  \"protocol\": \"pitch\",\n" : "");
    fprintf(f, "  \"seed\": %llu,\n  \"messages\": %llu,\n", (unsigned long long)cfg->seed, (unsigned long long)total);
    if (pitch)
        fprintf(f, "  \"messages_without_time\": %llu,\n  \"time_messages\": %llu,\n", (unsigned long long)g->emitted,
                (unsigned long long)g->time_msgs);
    fprintf(f, "  \"scheduled_messages\": %llu,\n  \"flow_messages\": %llu,\n",
            (unsigned long long)g->nsched, (unsigned long long)g->nflow);
    if (pitch)
        fprintf(f, "  \"symbol_count\": %u,\n  \"unit_count\": %u,\n  \"channel_count\": %u,\n"
                   "  \"lines\": \"%s\",\n", g->nsym, g->nch, cfg->channels, g->lines == 2 ? "ab" : "a");
    else
        fprintf(f, "  \"symbol_count\": %u,\n  \"channel_count\": %u,\n  \"lines\": \"%s\",\n",
                g->nsym, g->nch, g->lines == 2 ? "ab" : "a");
    fprintf(f, "  \"loss_a\": %.17g,\n  \"loss_b\": %.17g,\n", g->loss[0], g->loss[1]);
    fprintf(f, "  \"batch_ns\": %u,\n  \"max_payload\": %u,\n", g->batch_ns, g->max_payload);
    fprintf(f, "  \"heartbeat_ns\": %llu,\n", (unsigned long long)g->heartbeat_ns);
    fprintf(f, "  \"rate\": %llu,\n", (unsigned long long)g->rate);
    fprintf(f, "  \"trading_date\": \"%s\",\n  \"timezone\": \"America/New_York\",\n  \"midnight_ns\": %llu,\n",
            FH_GEN_DATE, (unsigned long long)FH_GEN_MIDNIGHT_NS);
    fprintf(f, "  \"udp_port\": %u,\n  \"partition\": \"contiguous\",\n", pitch ? FH_GEN_PITCH_PORT : 26477u);
    fprintf(f, "  \"by_type\": {");
    int first = 1;
    for (int t = 0; t < 256; t++) {
        if (!g->by_type[t]) continue;
        /* PITCH types as "0x21" (stats-json's keys), ITCH types by their letter. */
        if (pitch) fprintf(f, "%s\"0x%02x\": %llu", first ? "" : ", ", t, (unsigned long long)g->by_type[t]);
        else fprintf(f, "%s\"%c\": %llu", first ? "" : ", ", t, (unsigned long long)g->by_type[t]);
        first = 0;
    }
    fprintf(f, "},\n");
    fprintf(f, "  \"packets\": {\"a\": %llu, \"b\": %llu},\n",
            (unsigned long long)g->written[0], (unsigned long long)g->written[1]);
    fprintf(f, "  \"packets_sent\": {\"a\": %llu, \"b\": %llu},\n",
            (unsigned long long)g->sent[0], (unsigned long long)g->sent[1]);
    if (pitch)
        fprintf(f, "  \"packets_lost\": {\"a\": %llu, \"b\": %llu, \"both\": %llu},\n",
                (unsigned long long)g->lost[0], (unsigned long long)g->lost[1], (unsigned long long)g->lost_both);
    else
        fprintf(f, "  \"packets_lost\": {\"a\": %llu, \"b\": %llu},\n",
                (unsigned long long)g->lost[0], (unsigned long long)g->lost[1]);
    fprintf(f, "  \"data_packets\": %llu,\n  \"heartbeats\": %llu,\n  \"end_of_session\": %llu,\n",
            (unsigned long long)g->data_packets, (unsigned long long)g->heartbeats,
            (unsigned long long)g->eos);
    fprintf(f, "  \"messages_per_packet\": {\"mean\": %.4f, \"max\": %llu},\n",
            g->data_packets ? (double)total / (double)g->data_packets : 0.0,
            (unsigned long long)g->mpp_max);
    fprintf(f, "  \"pcap_records\": %llu,\n  \"first_capture_ns\": %llu,\n  \"last_capture_ns\": %llu,\n",
            (unsigned long long)(g->written[0] + g->written[1]),
            (unsigned long long)g->first_cap, (unsigned long long)g->last_cap);
    fprintf(f, "  \"first_ts\": %llu,\n  \"last_ts\": %llu,\n",
            (unsigned long long)g->first_ts, (unsigned long long)g->last_ts);
    uint64_t live = 0, full = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) live += g->sym[l].nord[0] + g->sym[l].nord[1];
    for (uint32_t c = 0; c < g->nch; c++) full += g->ch[c].pool_full;
    if (pitch)
        fprintf(f, "  \"first_order_id\": %llu,\n  \"last_order_id\": %llu,\n  \"last_execution_id\": %llu,\n",
                (unsigned long long)FH_GEN_PITCH_ORDER_ID0, (unsigned long long)g->ref,
                (unsigned long long)g->match);
    else
        fprintf(f, "  \"last_order_reference\": %llu,\n  \"last_match_number\": %llu,\n",
                (unsigned long long)g->ref, (unsigned long long)g->match);
    fprintf(f, "  \"live_orders_at_end\": %llu,\n  \"pool_full_events\": %llu,\n",
            (unsigned long long)live, (unsigned long long)full);
    fh_gen_json_book_stats(g, f);
    fprintf(f, "  \"%s\": [\n", pitch ? "units" : "channels");
    for (uint32_t c = 0; c < g->nch; c++) {
        const fh_gen_chan_t *ch = &g->ch[c];
        char a[20], b[20];
        fh_gen_ip(a, sizeof a, ch->group[0]);
        fh_gen_ip(b, sizeof b, ch->group[1]);
        if (pitch) {
            char range[24] = "";           /* a unit without symbols: [] */
            if (ch->hi >= ch->lo) snprintf(range, sizeof range, "%u, %u", ch->lo, ch->hi);
            fprintf(f, "    {\"unit\": %u, \"group\": %u, \"line_a\": \"%s:%u\", \"line_b\": \"%s:%u\", "
                       "\"symbols\": [%s], \"messages\": %llu, \"data_packets\": %llu, "
                       "\"heartbeats\": %llu, \"next_sequence\": %llu}%s\n",
                    c + 1, c % cfg->channels, a, FH_GEN_PITCH_PORT, b, FH_GEN_PITCH_PORT,
                    range, (unsigned long long)ch->messages, (unsigned long long)ch->data_packets,
                    (unsigned long long)ch->heartbeats, (unsigned long long)ch->next_seq,
                    c + 1 < g->nch ? "," : "");
        } else {
            fprintf(f, "    {\"name\": \"itch-%u\", \"session\": \"%s\", \"line_a\": \"%s:26477\", "
                       "\"line_b\": \"%s:26477\", \"locates\": [%u, %u], \"tracking_number\": %u, "
                       "\"messages\": %llu, \"data_packets\": %llu, \"heartbeats\": %llu, "
                       "\"end_of_session\": %llu, \"next_sequence\": %llu}%s\n",
                    c + 1, ch->session, a, b, ch->lo, ch->hi, ch->tracking,
                    (unsigned long long)ch->messages, (unsigned long long)ch->data_packets,
                    (unsigned long long)ch->heartbeats, (unsigned long long)ch->eos,
                    (unsigned long long)ch->next_seq, c + 1 < g->nch ? "," : "");
        }
    }
    fprintf(f, "  ],\n  \"symbols\": {");
    for (uint32_t l = 1; l <= g->nsym; l++) {
        const fh_gen_sym_t *s = &g->sym[l];
        int n = 8;
        while (n > 0 && s->stock[n - 1] == ' ') n--;
        fprintf(f, "%s\"%u\": \"%.*s\"", l > 1 ? ", " : "", l, n, s->stock);
    }
    fprintf(f, "}\n}\n");
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) { fh_errf(err, errlen, "write error on %s", path); return -1; }
    return 0;
}

/* Burst size: one message, a few, or a sweep/reprice storm. */
FH_INLINE uint32_t fh_gen_burst(uint32_t r)
{
    uint32_t b = r & 255;
    if (b < 115) return 1;
    if (b < 192) return 2 + (r >> 8) % 3;
    if (b < 238) return 5 + (r >> 8) % 12;
    return 17 + (r >> 8) % 48;
}

static int fh_gen_setup(fh_gen_t *g, char *err, size_t errlen)
{
    const fh_gen_cfg_t *cfg = g->cfg;
    g->pitch = cfg->protocol == FH_GEN_PROTO_PITCH;
    g->udp_port = g->pitch ? FH_GEN_PITCH_PORT : 26477;
    g->nsym = cfg->symbols;
    g->nch = g->pitch ? (cfg->units ? cfg->units : FH_GEN_PITCH_UNITS) : cfg->channels;
    g->lines = cfg->lines;
    g->max_payload = cfg->max_payload ? cfg->max_payload : FH_GEN_PAYLOAD_DEFAULT;
    g->batch_ns = cfg->batch_ns ? cfg->batch_ns
                : cfg->rate ? FH_GEN_BATCH_NS_RATE : FH_GEN_BATCH_NS_DEFAULT;
    g->rate = cfg->rate;
    g->flow_t0 = FH_GEN_FLOW_START;
    g->flow_t1 = FH_GEN_FLOW_END;
    g->spacing = 1u << 16;
    if (g->rate) {
        /* validated: the window fits the normal one, so times stay below 20:00 */
        g->flow_t1 = g->flow_t0 + cfg->messages * FH_GEN_NS_PER_S / g->rate;
        g->rate_k = (double)(g->flow_t1 - g->flow_t0) / (double)(FH_GEN_FLOW_END - FH_GEN_FLOW_START);
        if (g->rate > FH_GEN_RATE_FULL_SPACING)
            g->spacing = (FH_GEN_RATE_FULL_SPACING << 16) / g->rate;
    }
    g->heartbeat_ns = cfg->heartbeat_ms ? (uint64_t)cfg->heartbeat_ms * 1000000ull : FH_GEN_HEARTBEAT_NS;
    g->frame_limit = FH_GEN_OFF_UDP + 8 + g->max_payload;
    g->loss[0] = cfg->loss_a;
    g->loss[1] = cfg->loss_b;
    g->progress = NULL;
    fh_gen_rng_seed(&g->rng, cfg->seed, 1);
    fh_gen_rng_seed(&g->rng_sched, cfg->seed, 2);
    fh_gen_rng_seed(&g->rng_loss[0], cfg->seed, 3);
    fh_gen_rng_seed(&g->rng_loss[1], cfg->seed, 4);

    if (fh_gen_symbols(g) || fh_gen_alias(g) || fh_gen_cdf(g)) goto oom;
    g->symx = calloc((size_t)g->nsym + 1, sizeof *g->symx);
    g->lv_hist = calloc(FH_GEN_LEVEL_HIST, sizeof *g->lv_hist);
    if (!g->symx || !g->lv_hist) goto oom;
    g->ch = calloc(g->nch, sizeof *g->ch);
    if (!g->ch) goto oom;
    /* contiguous locate ranges: NASDAQ partitions channels alphabetically too */
    uint64_t sid = fh_gen_splitmix(&(uint64_t){ cfg->seed ^ 0x5e5510aULL }) % 10000000u;
    if (g->pitch) {
        /* symbol i (alphabetical, 0-based) is on unit 1 + i * units / symbols;
         * unit u on group (u - 1) % channels of each line */
        for (uint32_t c = 0; c < g->nch; c++) {
            fh_gen_chan_t *ch = &g->ch[c];
            uint32_t k = c % cfg->channels;
            ch->lo = 1; ch->hi = 0;            /* none yet */
            ch->tracking = (uint16_t)(c + 1);
            ch->group[0] = (224u << 24) | (0u << 16) | (62u << 8) | (2u + k);
            ch->group[1] = (233u << 24) | (19u << 16) | (3u << 8) | (2u + k);
            ch->len = FH_GEN_OFF_PITCH_MSGS;
            ch->next_seq = 1;
            ch->ev = FH_GEN_INF;
        }
        for (uint32_t i = 0; i < g->nsym; i++) {
            uint32_t c = (uint32_t)((uint64_t)i * g->nch / g->nsym), l = i + 1;
            fh_gen_chan_t *ch = &g->ch[c];
            if (ch->hi == 0) ch->lo = (uint16_t)l;
            ch->hi = (uint16_t)l;
            g->sym[l].ch = (uint16_t)c;
        }
        g->ref = FH_GEN_PITCH_ORDER_ID0;
    }
    for (uint32_t c = 0; c < g->nch && !g->pitch; c++) {
        fh_gen_chan_t *ch = &g->ch[c];
        ch->lo = (uint16_t)((uint64_t)c * g->nsym / g->nch + 1);
        ch->hi = (uint16_t)((uint64_t)(c + 1) * g->nsym / g->nch);
        for (uint32_t l = ch->lo; l <= ch->hi; l++) g->sym[l].ch = (uint16_t)c;
        ch->tracking = (uint16_t)(c + 1);
        ch->group[0] = (233u << 24) | (54u << 16) | (12u << 8) | (111u + c);
        ch->group[1] = (233u << 24) | (49u << 16) | (196u << 8) | (111u + c);
        snprintf(ch->session, sizeof ch->session, "%07lluA%02u", (unsigned long long)sid, c % 100u);
        memcpy(ch->frame + FH_GEN_OFF_MOLD, ch->session, 10);
        ch->len = FH_GEN_OFF_BLOCKS;
        ch->next_seq = 1;
        ch->ev = FH_GEN_INF;
    }
    g->gmin = FH_GEN_INF;

    /* schedule: count, check the day is big enough, fill, sort */
    g->sched = NULL;
    fh_gen_build_schedule(g, cfg->messages);
    size_t n = g->nsched + (g->pitch ? g->nch : 0);    /* PITCH: one End of Session per unit */
    if (cfg->messages < n + FH_GEN_MIN_FLOW) {
        /* the smallest day that fits: scheduled messages less the NOII share
         * (1% of the day), plus the minimum order flow */
        uint64_t fixed = n - fh_gen_noii_count(cfg->messages), least = fixed + FH_GEN_MIN_FLOW;
        while (least < fixed + fh_gen_noii_count(least) + FH_GEN_MIN_FLOW) least++;
        fh_errf(err, errlen, "invalid gen config: %u symbol(s) on %u channel(s) need at least %llu "
                "messages (start-of-day, crosses, imbalances and %u order flow), got %llu",
                g->nsym, g->nch, (unsigned long long)least, FH_GEN_MIN_FLOW,
                (unsigned long long)cfg->messages);
        return -1;
    }
    g->sched = malloc((n ? n : 1) * sizeof *g->sched);
    if (!g->sched) goto oom;
    fh_gen_build_schedule(g, cfg->messages);
    qsort(g->sched, g->nsched, sizeof *g->sched, fh_gen_cmp_sched);
    /* compressed after sorting by the normal day's times: where the map
     * makes times equal, they keep that day's order */
    if (g->rate)
        for (size_t i = 0; i < g->nsched; i++) g->sched[i].ts = fh_gen_rate_map(g, g->sched[i].ts);
    g->nflow = cfg->messages - n;
    g->lv_every = FH_GEN_LEVEL_SAMPLE;
    if (g->nflow / 256 < g->lv_every)
        g->lv_every = g->nflow / 256 > FH_GEN_LEVEL_SAMPLE_MIN ? (uint32_t)(g->nflow / 256) : FH_GEN_LEVEL_SAMPLE_MIN;

    /* books: each instrument's slot range is sized by its expected share of
     * the flow, n: its live orders (near-touch quotes, deep resting orders and
     * quotes the price walked away from) build up to ~0.7% of n at 15:45 on
     * the busiest instruments, a few percent on quiet ones, and wander like a
     * random walk around that (~sqrt n), so n / 32 + 4 sqrt n + 32 is rarely
     * reached (a full book forces a cancel).  Only the slots a day uses are
     * ever touched. */
    double wsum = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) wsum += fh_gen_weight(&g->sym[l]);
    uint64_t need = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) {
        double nf = (double)g->nflow * fh_gen_weight(&g->sym[l]) / wsum;
        uint64_t cap = (uint64_t)(nf / 32 + 4 * fh_gen_sqrt(nf)) + 32;
        g->sym[l].cap = (uint32_t)(cap < FH_GEN_BOOK_MAX ? cap : FH_GEN_BOOK_MAX);
        need += g->sym[l].cap;
    }
    if (need > FH_GEN_BOOK_MAX) {            /* huge days: scale down, keep the floor */
        uint64_t scaled = 0;
        for (uint32_t l = 1; l <= g->nsym; l++) {
            g->sym[l].cap = (uint32_t)((uint64_t)g->sym[l].cap * (FH_GEN_BOOK_MAX / 2) / need) + 32;
            scaled += g->sym[l].cap;
        }
        need = scaled;
    }
    g->slots = malloc(need * sizeof *g->slots);
    g->levels = malloc(2 * need * sizeof *g->levels);
    if (!g->slots || !g->levels) goto oom;
    uint32_t off = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) {
        fh_gen_sym_t *sy = &g->sym[l];
        sy->base = off;
        sy->free_head = FH_GEN_NIL;
        off += sy->cap;
    }

    uint32_t acc = 0, wt = 0;
    for (int t = 0; t < FT__N; t++) wt += fh_gen_ft_weight[t];
    for (int t = 0; t < FT__N; t++) {
        acc += fh_gen_ft_weight[t];
        g->ft_cum[t] = (uint32_t)((double)acc / wt * 4294967295.0);
    }
    g->need = (1u << FT__N) - 1;
    if (g->lines == 2) {
        g->bring = malloc(FH_GEN_BRING * sizeof *g->bring);
        if (!g->bring) goto oom;
    }
    return 0;
oom:
    fh_errf(err, errlen, "out of memory setting up a %llu-message day",
            (unsigned long long)cfg->messages);
    return -1;
}

/* Levels per non-empty book side, every instrument, into the histogram. */
static void fh_gen_sample_levels(fh_gen_t *g)
{
    for (uint32_t l = 1; l <= g->nsym; l++) {
        const fh_gen_sym_t *s = &g->sym[l];
        for (uint32_t side = 0; side < 2; side++) {
            uint32_t n = s->nlv[side];
            if (!n) continue;
            g->lv_hist[n < FH_GEN_LEVEL_HIST ? n : FH_GEN_LEVEL_HIST - 1]++;
            g->lv_sum += n;
            g->lv_n++;
        }
    }
}

/* The shares of D/X/U that cancel an old order and of adds that do instead,
 * by the day clock: the day, the last quarter hour before the close, after it. */
static void fh_gen_phase(fh_gen_t *g, uint64_t dnow)
{
    int k = dnow < FH_GEN_HMS(15, 45, 0) ? 0 : dnow < FH_GEN_HMS(16, 0, 0) ? 1 : 2;
    static const uint32_t q_old[3] = { FH_GEN_OLD_Q_DAY, FH_GEN_OLD_Q_CLOSE, FH_GEN_OLD_Q_AFTER };
    static const uint32_t q_drain[3] = { 0, FH_GEN_DRAIN_Q_CLOSE, FH_GEN_DRAIN_Q_AFTER };
    g->q_old = q_old[k] << 16;
    g->q_drain = q_drain[k] << 16;
}

static void fh_gen_day(fh_gen_t *g)
{
    size_t si = 0;
    uint64_t fi = 0, nflow = g->nflow, half = nflow / 2;
    uint32_t left = 0, focus = 1, sample = g->lv_every;
    /* bursts' instruments are drawn two ahead, so that their books can be
     * fetched while the bursts before run (the books are spread over memory) */
    uint32_t next1 = fh_gen_pick_locate(g, &g->rng), next2 = fh_gen_pick_locate(g, &g->rng);
    g->tcur = g->flow_t0;
    while (fi < nflow) {
        if (left == 0) {
            uint64_t r = fh_gen_next(&g->rng);
            uint32_t k = fh_gen_burst((uint32_t)r);
            if (k > nflow - fi) k = (uint32_t)(nflow - fi);
            double u = ((double)fi + (double)k * (double)(r >> 40) * 0x1.0p-24) / (double)nflow;
            /* flat-rate mode: a linear CDF, burst starts uniform over the window */
            uint64_t t = g->rate ? g->flow_t0 + (uint64_t)(u * (double)(g->flow_t1 - g->flow_t0))
                                 : fh_gen_inv_cdf(g, u);
            if (t > g->tcur) g->tcur = t;
            /* the day clock: where the normal day is at this share of the flow */
            if (g->rate) {
                uint64_t d = fh_gen_inv_cdf(g, u);
                if (d > g->dnow) g->dnow = d;
            }
            fh_gen_phase(g, g->rate ? g->dnow : g->tcur);
            focus = next1;
            next1 = next2;
            fh_gen_prefetch_book(g, &g->sym[next1]);
            next2 = fh_gen_pick_locate(g, &g->rng);
            __builtin_prefetch(&g->sym[next2]);
            left = k;
        } else {
            uint64_t r = fh_gen_next(&g->rng);
            uint64_t gap = 20 + (r & 511) + (((r >> 9) & 15) == 0 ? (r >> 16) % 5000 : 0);
            g->tcur += (gap * g->spacing) >> 16;           /* exact gap unless rate > 2 M/s */
        }
        if (g->tcur > g->flow_t1) g->tcur = g->flow_t1;
        if (!g->rate) g->dnow = g->tcur;
        while (si < g->nsched && g->sched[si].ts <= g->tcur) fh_gen_scheduled(g, &g->sched[si++]);
        fh_gen_flow(g, focus, g->tcur, fi >= half && g->need);
        fi++;
        left--;
        if (--sample == 0) {
            fh_gen_sample_levels(g);
            sample = g->lv_every;
        }
    }
    while (si < g->nsched) fh_gen_scheduled(g, &g->sched[si++]);

    /* flush every open packet, then one end-of-session per channel */
    uint64_t tend = 0;
    for (uint32_t c = 0; c < g->nch; c++) if (g->ch[c].last_ts > tend) tend = g->ch[c].last_ts;
    g->last_ts = tend;
    tend += (uint64_t)g->batch_ns + 1000000;
    for (uint32_t c = 0; c < g->nch; c++) {
        uint64_t t = tend + (uint64_t)c * 1000;
        fh_gen_advance(g, t + 1);
        if (g->pitch) {
            /* End of Session: a sequenced message, the unit's last packet */
            fh_gen_chan_t *ch = &g->ch[c];
            uint8_t *m = fh_pg_begin(g, ch, FH_PITCH_TYPE_END_OF_SESSION, FH_PITCH_LEN_END_OF_SESSION, t);
            fh_pg_end(g, ch, m, t);
            ch->ended = 1;
            ch->eos++;
            g->eos++;
            g->last_ts = t;
            fh_gen_send(g, c, (uint16_t)ch->count, t);
            continue;
        }
        fh_gen_send(g, c, 0xFFFF, t);
    }
    if (g->bcount) fh_gen_bring_drain(g, FH_GEN_INF);
}

int fh_gen_run(const fh_gen_cfg_t *cfg, volatile uint64_t *progress, char *err, size_t errlen)
{
    if (fh_gen_validate(cfg, err, errlen)) return -1;
    fh_gen_t *g = calloc(1, sizeof *g);
    char *ppcap = fh_gen_path(cfg->out_prefix, ".pcap");
    char *pbin = fh_gen_path(cfg->out_prefix, ".bin");
    char *pjson = fh_gen_path(cfg->out_prefix, ".json");
    int rc = -1;
    if (!g || !ppcap || !pbin || !pjson) { fh_errf(err, errlen, "out of memory"); goto out; }
    g->cfg = cfg;
    if (fh_gen_setup(g, err, errlen)) goto out;
    if (fh_gen_open(&g->pcap, ppcap, err, errlen)
        || (!g->pitch && fh_gen_open(&g->bin, pbin, err, errlen))) goto out;
    g->progress = progress;
    if (progress) *progress = 0;

    /* pcap global header: nanosecond magic, v2.4, snaplen 65535, Ethernet */
    uint8_t *h = fh_gen_out_reserve(&g->pcap, 24);
    fh_gen_put_le32(h, 0xa1b23c4du);
    h[4] = 2; h[5] = 0; h[6] = 4; h[7] = 0;
    memset(h + 8, 0, 8);
    fh_gen_put_le32(h + 16, 65535);
    fh_gen_put_le32(h + 20, 1);
    g->pcap.pos += 24;

    fh_gen_day(g);

    if (fh_gen_close(&g->pcap, err, errlen) || (!g->pitch && fh_gen_close(&g->bin, err, errlen))) goto out;
    if (progress) *progress = g->emitted;
    if (fh_gen_json(g, pjson, err, errlen)) goto out;
    rc = 0;
out:
    fh_gen_free(g);
    free(ppcap); free(pbin); free(pjson);
    return rc;
}
