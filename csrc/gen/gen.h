/* gen.h -- the synthetic trading-day generator's shared state: its constants
 * and the types every one of its files works on.
 *
 * The public entry point is fh_gen_run() in gen_api.h (the feedhandler._gen
 * extension, built from every .c file of csrc/gen/ by cffi_build/build_gen.py);
 * this and the other headers here are the generator's own.  The constants are
 * here so that the model the generator follows (times, sizes, defaults) is
 * readable in one place and documented once.  The files, by concern (each
 * header declares what its .c file offers the others):
 *
 *   gen.c           set-up and the run loop: fh_gen_run(), the day's merge of
 *                   schedule and order flow, the end of the day
 *   rng.c/.h        random streams (xoshiro256** seeded by splitmix64)
 *   out.c/.h        buffered file output, little-endian stores
 *   model.c/.h      instruments (tickers, prices, Zipf activity, the alias
 *                   table), the schedule of non-flow messages, the intraday
 *                   rate (inverse CDF), flat-rate time mapping, the price grid
 *   flow.c/.h       one order-flow message: its type, order, price and size,
 *                   the mid's walk, written through the ITCH or PITCH writer
 *   book.c/.h       the generator's own per-instrument books (book.c says why
 *                   not the feed handler's csrc/book.h)
 *   packets.c/.h    the packetiser: channel layout, Ethernet/IPv4/UDP and
 *                   MoldUDP64 or Sequenced Unit headers, heartbeats, loss,
 *                   line B, pcap records in capture-time order
 *   itch_writer.c/.h    ITCH 5.0 messages (BinaryFILE record + packet)
 *   pitch_writer.c/.h   Cboe PITCH messages (in place in the unit's packet)
 *   iex_writer.c/.h     IEX TOPS 1.6, DEEP 1.0 and DEEP+ 1.0 messages over
 *                       IEX-TP v1: the same order flow seen through each feed
 *                       (orders, price levels or top of book), sessions
 *   summary.c/.h    PREFIX.json, and the book statistics sampled for it
 */
#ifndef FH_GEN_H
#define FH_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "fh_common.h"
#include "itch_spec.h"
#include "pitch_spec.h"
#include "gen_api.h"
#include "rng.h"
#include "out.h"

/* The trading date every generated day claims: Wednesday 2026-11-25, a regular
 * full session (Thanksgiving is the day after).  Midnight America/New_York (EST,
 * UTC-5) as Unix epoch nanoseconds; capture time = this + ITCH timestamp + wire. */
#define FH_GEN_DATE "2026-11-25"
#define FH_GEN_MIDNIGHT_NS 1795582800000000000ULL

#define FH_GEN_NS_PER_S 1000000000ULL
#define FH_GEN_HMS(h, m, s) ((((uint64_t)(h) * 60 + (m)) * 60 + (s)) * FH_GEN_NS_PER_S)

/* Frame layout of every packet: Ethernet II (14) + IPv4 without options (20) +
 * UDP (8) + MoldUDP64 header (20: session 10, sequence 8, count 2) + blocks. */
#define FH_GEN_OFF_IP 14
#define FH_GEN_OFF_UDP 34
#define FH_GEN_OFF_MOLD 42
#define FH_GEN_OFF_BLOCKS 62
#define FH_GEN_MOLD_HDR 20

/* UDP payload limits.  The default keeps frames at 1400 bytes, what NASDAQ's
 * feeds use; the maximum is a 9000-byte jumbo MTU (never fragmented).  The
 * minimum holds the Mold header plus the longest ITCH record (2 + 50). */
#define FH_GEN_PAYLOAD_DEFAULT 1358u
#define FH_GEN_PAYLOAD_MIN 72u
_Static_assert(FH_GEN_PAYLOAD_MIN == FH_GEN_MOLD_HDR + 2 + FH_ITCH_MAX_LEN, "payload minimum");
#define FH_GEN_PAYLOAD_MAX 8972u
#define FH_GEN_FRAME_MAX (FH_GEN_OFF_UDP + 8 + FH_GEN_PAYLOAD_MAX)

/* Packetiser flush window when cfg->batch_ns is 0: a packet is sent once a
 * message arrives more than this long after the packet's first message.  20 us
 * groups the microsecond bursts of one channel into one datagram, as exchange
 * packetisers do, without holding a lone message for long. */
#define FH_GEN_BATCH_NS_DEFAULT 20000u

/* Flat-rate mode (cfg->rate > 0, see fh_gen_rate_map in model.c): the day is
 * compressed into messages / rate seconds so that a replay paced to the
 * capture's clock sees a steady rate and no idle hours.  Its default flush
 * window is short: exchange packetisers send a matching-engine burst as soon
 * as it ends rather than wait for more, and at 1 M msgs/s a 2 us window gives
 * a few messages per packet, what a real feed carries at that rate (the 20 us
 * window would batch ~25 and hide the per-packet cost a benchmark measures).
 * An explicit cfg->batch_ns still wins. */
#define FH_GEN_BATCH_NS_RATE 2000u
#define FH_GEN_RATE_MIN 1000ULL
#define FH_GEN_RATE_MAX 100000000ULL

/* Messages within a burst are 20..531 ns apart (sometimes up to 5 us more),
 * ~360 ns per message on average: bursts fill about a third of the time at
 * 1 M msgs/s.  Up to this rate the spacing is kept as it is; above it, it
 * shrinks in proportion to the rate, or bursts would overrun the next ones'
 * start times and the day would outlast its window. */
#define FH_GEN_RATE_FULL_SPACING 2000000ULL

/* MoldUDP64 heartbeat once a channel has sent nothing for this long. */
#define FH_GEN_HEARTBEAT_NS FH_GEN_NS_PER_S

/* Deterministic wire model: line A reaches the capture point this long after
 * the packet's last message was stamped, plus 0.8 ns per byte (10GbE
 * serialisation); line B is this much later again. */
#define FH_GEN_WIRE_NS 1800u
#define FH_GEN_LINE_B_NS 3150u

/* Order-flow messages the day needs besides the scheduled (administrative,
 * cross, imbalance) ones, so that every flow type can appear. */
#define FH_GEN_MIN_FLOW 1000u
#define FH_GEN_MAX_MESSAGES 2000000000ULL
#define FH_GEN_MAX_CHANNELS 64u

#define FH_GEN_PROGRESS_EVERY 65536u

/* Cboe US Equities Multicast PITCH (cfg->protocol 1, docs/pitch-spec-notes.md).
 * A datagram is a Sequenced Unit Header (8 bytes, right after the UDP header)
 * and at most 255 messages of one unit.  Units are contiguous alphabetical
 * symbol ranges, at most FH_GEN_PITCH_SYMS_PER_UNIT symbols each; unit u goes
 * out on group (u - 1) % channels: line A 224.0.62.(2 + group), line B
 * 233.19.3.(2 + group), every group on the one UDP port below. */
#define FH_GEN_PROTO_ITCH 0u
#define FH_GEN_PROTO_PITCH 1u
#define FH_GEN_OFF_PITCH_MSGS (FH_GEN_OFF_MOLD + FH_PITCH_UNIT_HLEN)
#define FH_GEN_PITCH_UNITS 32u    /* default, and the most */
#define FH_GEN_PITCH_SYMS_PER_UNIT 384u
#define FH_GEN_PITCH_PORT 30001u
#define FH_GEN_PITCH_MAX_COUNT 255u   /* Hdr Count is one byte */
/* Order ids start above 2^40 so that readers must keep all 64 bits. */
#define FH_GEN_PITCH_ORDER_ID0 (1ULL << 40)
/* One in this many random tickers gets a preferred-share suffix (".PRA"),
 * 7-8 characters long: only Add Order / Trade Expanded can carry those. */
#define FH_GEN_PITCH_LONG_SYM_EVERY 32u

/* IEX (cfg->protocol 2 TOPS, 3 DEEP, 4 DEEP+; iex_writer.h has the message
 * table).  A datagram is one IEX-TP segment: a 40-byte header right after the
 * UDP header, then blocks of (u16 LE length, message).  One channel (id 1),
 * one multicast group per line; cfg->units is the number of sessions in the
 * day (0 = 1, at most FH_GEN_IEX_SESSIONS_MAX). */
#define FH_GEN_PROTO_IEX_TOPS 2u
#define FH_GEN_PROTO_IEX_DEEP 3u
#define FH_GEN_PROTO_IEX_DEEPPLUS 4u
#define FH_GEN_IEX_HDR 40u
#define FH_GEN_OFF_IEX_MSGS (FH_GEN_OFF_MOLD + FH_GEN_IEX_HDR)
/* the header plus the longest message (Auction Information, 2 + 80) */
#define FH_GEN_IEX_PAYLOAD_MIN 122u
#define FH_GEN_IEX_SESSIONS_MAX 16u
#define FH_GEN_IEX_ORDER_ID0 (1ULL << 40)

/* Order slots of all instruments' books together (one order is 32 bytes, its
 * share of price levels 32): 16 M slots, ~1.1 GB at most, reached only by days
 * of ~300 M messages and more. */
#define FH_GEN_BOOK_MAX (1ULL << 24)

/* A delete on a book side with fewer live orders near the touch (placed less
 * than FH_GEN_DEEP_TICKS from the mid) than this is an add on that side
 * instead: liquidity providers keep quoting, so books stay a few orders deep at
 * the touch and rarely go one-sided. */
#define FH_GEN_MIN_ORDERS 4u

/* Activity by instrument: weight 1 / (rank + FH_GEN_ZIPF_OFFSET)^1.25 (rank 0 =
 * most active).  On 8 000 instruments the top 300 carry ~73% of the order flow,
 * the top 10 ~23%, the busiest ~3.7%, and the least active still ~7 ppm. */
#define FH_GEN_ZIPF_OFFSET 8.0

/* Deep resting orders: FH_GEN_DEEP_PER_256 of 256 adds and replaces (4%) are placed
 * FH_GEN_DEEP_TICKS..FH_GEN_DEEP_TICKS * 64 - 1 ticks away from the mid,
 * log-uniform (an equal share per octave: 10-19, 20-39, ... 320-639 ticks),
 * at most half the price below it for bids and the price above it for asks.
 * The other adds quote within 0-9 ticks of the mid. */
#define FH_GEN_DEEP_PER_256 10u
#define FH_GEN_DEEP_TICKS 10u
#define FH_GEN_DEEP_OCTAVES 6u

/* Old-order cancels: this share (per 65536) of D, X and U names a live order of
 * the instrument drawn uniformly over all its live orders (so mostly the deep,
 * old ones) rather than one near the touch.  It rises into the close as day
 * orders are pulled: before 15:45, 15:45-16:00, from 16:00 (day-clock time;
 * in flat-rate mode the normal day's time at the same share of the flow). */
#define FH_GEN_OLD_Q_DAY 400u
#define FH_GEN_OLD_Q_CLOSE 16384u
#define FH_GEN_OLD_Q_AFTER 32768u
/* ... and this share (per 65536) of adds is a cancel of an old order instead,
 * 15:45-16:00 and from 16:00: day orders are pulled and expire, the books thin. */
#define FH_GEN_DRAIN_Q_CLOSE 8000u
#define FH_GEN_DRAIN_Q_AFTER 24000u
#define FH_GEN_OLD_TRIES 8u     /* uniform slot draws before taking a deep level's oldest */

/* book_stats in PREFIX.json: an order is old once it has rested longer than
 * this (day clock), and levels per book side are sampled every
 * FH_GEN_LEVEL_SAMPLE flow messages, or on days with fewer than 256 times that
 * every flow / 256 (at least FH_GEN_LEVEL_SAMPLE_MIN apart), into a histogram
 * of FH_GEN_LEVEL_HIST bins (the last one collects the rest). */
#define FH_GEN_OLD_NS (3600ULL * FH_GEN_NS_PER_S)
#define FH_GEN_LEVEL_SAMPLE 65536u
#define FH_GEN_LEVEL_SAMPLE_MIN 256u
#define FH_GEN_LEVEL_HIST 65536u

/* Order flow runs 04:00:00.001 .. 19:59:59.999, binned per second. */
#define FH_GEN_FLOW_SECS 57600u
#define FH_GEN_FLOW_START (FH_GEN_HMS(4, 0, 0) + 1000000ULL)
#define FH_GEN_FLOW_END (FH_GEN_HMS(20, 0, 0) - 1000000ULL)

#define FH_GEN_INF UINT64_MAX
#define FH_GEN_BRING 512u              /* line B frames in flight (power of two) */
#define FH_GEN_REC_COPY 56u            /* >= the longest record, 2 + 50 bytes */
_Static_assert(FH_GEN_REC_COPY >= 2 + FH_ITCH_MAX_LEN, "record copy shorter than the longest record");
_Static_assert(FH_GEN_REC_COPY <= FH_GEN_SLACK, "record copy longer than the buffers' slack");

enum { FH_GEN_LINE_A = 0, FH_GEN_LINE_B = 1 };

#define FH_GEN_NIL UINT32_MAX

/* ------------------------------------------------------------ the books
 * (book.c works on them: an instrument's slot range, its levels) */

/* A live order in its instrument's slot range; prev/next chain the FIFO of its
 * price level (oldest first), next also the instrument's free slots. */
typedef struct {
    uint64_t ref;
    uint32_t shares;                   /* remaining; 0 marks a free slot */
    uint32_t price;                    /* Price(4) */
    uint32_t prev, next;               /* slot numbers, FH_GEN_NIL at the ends */
    uint32_t born_hi;                  /* day clock (ns) of its add or replace: */
    uint16_t born_lo;                  /*   48 bits, hi << 16 | lo */
    uint8_t side;                     /* 0 bid ('B'), 1 ask ('S') */
    uint8_t deep;                     /* placed FH_GEN_DEEP_TICKS or more from the mid */
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
    char stock[8];                 /* space padded */
    uint32_t mid;                      /* Price(4) on the tick grid: best bid <= mid < best ask */
    uint32_t open;                     /* starting price, the walk's anchor */
    uint64_t last_match;               /* last match number printed for it */
    uint16_t ch;
    uint8_t famous;                   /* index + 1 into fh_gen_famous, or 0 */
    uint8_t ipo;
    uint16_t rank;                     /* activity rank, 0 = most active */
    uint8_t up;                       /* last direction the walk tried */
    uint8_t xsym;                     /* PITCH: ticker longer than 6 characters */
    /* its book: slots [base, base + cap) of g->slots, bid levels at
     * g->levels + 2 * base, ask levels cap further */
    uint32_t base, cap;
    uint32_t nord[2];                  /* live orders per side */
    uint32_t hwm, free_head;           /* slots ever used, free list */
    uint32_t nlv[2];                   /* price levels per side */
} fh_gen_sym_t;                        /* one cache line (64-byte aligned array) */

_Static_assert(sizeof(fh_gen_sym_t) == 64, "an instrument is one cache line");
_Static_assert(sizeof(fh_gen_order_t) == 32, "two orders per cache line");

/* ------------------------------------------------------------ the wire */

/* One MoldUDP64 channel (PITCH: one unit): its open packet, sequence, timers. */
typedef struct {
    uint8_t frame[FH_GEN_FRAME_MAX + FH_GEN_SLACK];  /* headers + Mold header + blocks */
    uint32_t len;                      /* frame bytes used */
    uint32_t count;                    /* messages in the open packet */
    uint64_t next_seq;                 /* sequence of the open packet's first message */
    uint64_t first_ts, last_ts;        /* ITCH ns of the open packet's messages */
    uint64_t ev;                       /* next event: flush deadline if open, else heartbeat */
    uint64_t last_match;
    uint32_t group[2];                 /* multicast group per line, host order */
    uint16_t tracking;                 /* tracking number = channel + 1 */
    uint16_t lo, hi;                   /* its locates, contiguous */
    char session[11];
    uint8_t ended;                    /* PITCH: End of Session sent, no more heartbeats */
    uint8_t timed;                    /* PITCH: a Time message was sent on the unit */
    uint64_t tbase;                    /* PITCH: ns since midnight of the unit's last Time */
    uint64_t stream_off;               /* IEX: stream offset of the open segment's payload */
    uint32_t session_id;               /* IEX: the session's id (never 0) */
    /* stats */
    uint64_t messages, data_packets, heartbeats, eos;
    uint64_t pool_full;
} fh_gen_chan_t;

/* One message of the schedule (model.c), sent when the day reaches ts. */
typedef struct {
    uint64_t ts;
    uint32_t idx;                      /* tiebreak: schedule insertion order */
    uint16_t locate;
    uint16_t ch;
    uint8_t type;
    uint8_t arg;                      /* event code / state / cross type ... */
    uint8_t _pad[6];
} fh_gen_sched_t;

/* A line B frame waiting for line A to pass its capture time (packets.c). */
typedef struct {
    uint64_t ts;
    uint32_t len;
    uint32_t _pad;
    uint8_t data[FH_GEN_FRAME_MAX];
} fh_gen_bslot_t;

/* ------------------------------------------------------------ order flow */

/* Order-flow types (flow.c weighs them in this order). */
enum { FT_A, FT_D, FT_U, FT_E, FT_X, FT_F, FT_P, FT_C, FT__N };

/* ------------------------------------------------------------ the day */

struct fh_gen_iex;                     /* iex_writer.h */

/* Everything one run works on (gen.c allocates it, fh_gen_free frees it). */
typedef struct {
    const fh_gen_cfg_t *cfg;
    int pitch;                    /* cfg->protocol == FH_GEN_PROTO_PITCH; ch[] are its units */
    struct fh_gen_iex *iex;            /* an IEX day (iex_writer.h), else NULL */
    uint64_t cut;                      /* IEX: flow index of the next session change (UINT64_MAX: none) */
    uint16_t udp_port;
    uint64_t time_msgs;                /* PITCH Time messages (not in emitted) */
    uint64_t lost_both;                /* packets lost on lines A and B */
    fh_gen_rng_t rng, rng_sched, rng_loss[2];
    uint32_t nsym, nch, lines, max_payload, batch_ns, frame_limit;
    uint64_t heartbeat_ns;
    double loss[2];
    fh_gen_sym_t *sym;                /* [nsym + 1], index = locate */
    fh_gen_symx_t *symx;               /* [nsym + 1] */
    fh_gen_chan_t *ch;                 /* [nch] */
    fh_gen_order_t *slots;             /* every instrument's order slots */
    fh_gen_level_t *levels;            /* every instrument's price levels, 2 per slot */
    /* symbol picking by activity: Vose alias table over locates 1..nsym */
    double *alias_p;
    uint32_t *alias_i;
    /* schedule */
    fh_gen_sched_t *sched;
    size_t nsched;
    /* flow */
    uint64_t nflow;
    double *cdf;                      /* [FH_GEN_FLOW_SECS + 1]: the normal day's flow by time */
    uint32_t cdf_pos;
    /* flow window (ITCH ns): 04:00-20:00, or [04:00:00.001, + messages / rate]
     * in flat-rate mode, where rate_k is its length over the normal window's */
    uint64_t flow_t0, flow_t1;
    uint64_t rate;
    double rate_k;
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

#endif
