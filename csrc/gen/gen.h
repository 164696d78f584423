/* gen.h -- internals of the synthetic trading-day generator (gen.c).
 *
 * Only gen.c includes this; the public entry point is fh_gen_run() in gen_api.h
 * (the feedhandler._gen extension, built from csrc/gen/ by cffi_build/build_gen.py).
 * The constants are here so that the model the generator follows (times, sizes,
 * defaults) is readable in one place and documented once.
 */
#ifndef FH_GEN_H
#define FH_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "fh_common.h"
#include "itch_spec.h"
#include "pitch_spec.h"
#include "gen_api.h"

/* The trading date every generated day claims: Wednesday 2026-11-25, a regular
 * full session (Thanksgiving is the day after).  Midnight America/New_York (EST,
 * UTC-5) as Unix epoch nanoseconds; capture time = this + ITCH timestamp + wire. */
#define FH_GEN_DATE              "2026-11-25"
#define FH_GEN_MIDNIGHT_NS       1795582800000000000ULL

#define FH_GEN_NS_PER_S          1000000000ULL
#define FH_GEN_HMS(h, m, s)      ((((uint64_t)(h) * 60 + (m)) * 60 + (s)) * FH_GEN_NS_PER_S)

/* Frame layout of every packet: Ethernet II (14) + IPv4 without options (20) +
 * UDP (8) + MoldUDP64 header (20: session 10, sequence 8, count 2) + blocks. */
#define FH_GEN_OFF_IP            14
#define FH_GEN_OFF_UDP           34
#define FH_GEN_OFF_MOLD          42
#define FH_GEN_OFF_BLOCKS        62
#define FH_GEN_MOLD_HDR          20

/* UDP payload limits.  The default keeps frames at 1400 bytes, what NASDAQ's
 * feeds use; the maximum is a 9000-byte jumbo MTU (never fragmented).  The
 * minimum holds the Mold header plus the longest ITCH record (2 + 50). */
#define FH_GEN_PAYLOAD_DEFAULT   1358u
#define FH_GEN_PAYLOAD_MIN       72u
_Static_assert(FH_GEN_PAYLOAD_MIN == FH_GEN_MOLD_HDR + 2 + FH_ITCH_MAX_LEN, "payload minimum");
#define FH_GEN_PAYLOAD_MAX       8972u
#define FH_GEN_FRAME_MAX         (FH_GEN_OFF_UDP + 8 + FH_GEN_PAYLOAD_MAX)

/* Packetiser flush window when cfg->batch_ns is 0: a packet is sent once a
 * message arrives more than this long after the packet's first message.  20 us
 * groups the microsecond bursts of one channel into one datagram, as exchange
 * packetisers do, without holding a lone message for long. */
#define FH_GEN_BATCH_NS_DEFAULT  20000u

/* Flat-rate mode (cfg->rate > 0, see fh_gen_rate_map in gen.c): the day is
 * compressed into messages / rate seconds so that a replay paced to the
 * capture's clock sees a steady rate and no idle hours.  Its default flush
 * window is short: exchange packetisers send a matching-engine burst as soon
 * as it ends rather than wait for more, and at 1 M msgs/s a 2 us window gives
 * a few messages per packet, what a real feed carries at that rate (the 20 us
 * window would batch ~25 and hide the per-packet cost a benchmark measures).
 * An explicit cfg->batch_ns still wins. */
#define FH_GEN_BATCH_NS_RATE     2000u
#define FH_GEN_RATE_MIN          1000ULL
#define FH_GEN_RATE_MAX          100000000ULL

/* Messages within a burst are 20..531 ns apart (sometimes up to 5 us more),
 * ~360 ns per message on average: bursts fill about a third of the time at
 * 1 M msgs/s.  Up to this rate the spacing is kept as it is; above it, it
 * shrinks in proportion to the rate, or bursts would overrun the next ones'
 * start times and the day would outlast its window. */
#define FH_GEN_RATE_FULL_SPACING 2000000ULL

/* MoldUDP64 heartbeat once a channel has sent nothing for this long. */
#define FH_GEN_HEARTBEAT_NS      FH_GEN_NS_PER_S

/* Deterministic wire model: line A reaches the capture point this long after
 * the packet's last message was stamped, plus 0.8 ns per byte (10GbE
 * serialisation); line B is this much later again. */
#define FH_GEN_WIRE_NS           1800u
#define FH_GEN_LINE_B_NS         3150u

/* Order-flow messages the day needs besides the scheduled (administrative,
 * cross, imbalance) ones, so that every flow type can appear. */
#define FH_GEN_MIN_FLOW          1000u
#define FH_GEN_MAX_MESSAGES      2000000000ULL
#define FH_GEN_MAX_CHANNELS      64u

#define FH_GEN_PROGRESS_EVERY    65536u

/* Cboe US Equities Multicast PITCH (cfg->protocol 1, docs/pitch-spec-notes.md).
 * A datagram is a Sequenced Unit Header (8 bytes, right after the UDP header)
 * and at most 255 messages of one unit.  Units are contiguous alphabetical
 * symbol ranges, at most FH_GEN_PITCH_SYMS_PER_UNIT symbols each; unit u goes
 * out on group (u - 1) % channels: line A 224.0.62.(2 + group), line B
 * 233.19.3.(2 + group), every group on the one UDP port below. */
#define FH_GEN_PROTO_ITCH        0u
#define FH_GEN_PROTO_PITCH       1u
#define FH_GEN_OFF_PITCH_MSGS    (FH_GEN_OFF_MOLD + FH_PITCH_UNIT_HLEN)
#define FH_GEN_PITCH_UNITS       32u    /* default, and the most */
#define FH_GEN_PITCH_SYMS_PER_UNIT 384u
#define FH_GEN_PITCH_PORT        30001u
#define FH_GEN_PITCH_MAX_COUNT   255u   /* Hdr Count is one byte */
/* Order ids start above 2^40 so that readers must keep all 64 bits. */
#define FH_GEN_PITCH_ORDER_ID0   (1ULL << 40)
/* One in this many random tickers gets a preferred-share suffix (".PRA"),
 * 7-8 characters long: only Add Order / Trade Expanded can carry those. */
#define FH_GEN_PITCH_LONG_SYM_EVERY 32u

/* Order slots of all instruments' books together (one order is 32 bytes, its
 * share of price levels 32): 16 M slots, ~1.1 GB at most, reached only by days
 * of ~300 M messages and more. */
#define FH_GEN_BOOK_MAX          (1ULL << 24)

/* A delete on a book side with fewer live orders near the touch (placed less
 * than FH_GEN_DEEP_TICKS from the mid) than this is an add on that side
 * instead: liquidity providers keep quoting, so books stay a few orders deep at
 * the touch and rarely go one-sided. */
#define FH_GEN_MIN_ORDERS        4u

/* Activity by instrument: weight 1 / (rank + FH_GEN_ZIPF_OFFSET)^1.25 (rank 0 =
 * most active).  On 8 000 instruments the top 300 carry ~73% of the order flow,
 * the top 10 ~23%, the busiest ~3.7%, and the least active still ~7 ppm. */
#define FH_GEN_ZIPF_OFFSET       8.0

/* Deep resting orders: FH_GEN_DEEP_PER_256 of 256 adds and replaces (4%) are placed
 * FH_GEN_DEEP_TICKS..FH_GEN_DEEP_TICKS * 64 - 1 ticks away from the mid,
 * log-uniform (an equal share per octave: 10-19, 20-39, ... 320-639 ticks),
 * at most half the price below it for bids and the price above it for asks.
 * The other adds quote within 0-9 ticks of the mid. */
#define FH_GEN_DEEP_PER_256      10u
#define FH_GEN_DEEP_TICKS        10u
#define FH_GEN_DEEP_OCTAVES      6u

/* Old-order cancels: this share (per 65536) of D, X and U names a live order of
 * the instrument drawn uniformly over all its live orders (so mostly the deep,
 * old ones) rather than one near the touch.  It rises into the close as day
 * orders are pulled: before 15:45, 15:45-16:00, from 16:00 (day-clock time;
 * in flat-rate mode the normal day's time at the same share of the flow). */
#define FH_GEN_OLD_Q_DAY         400u
#define FH_GEN_OLD_Q_CLOSE       16384u
#define FH_GEN_OLD_Q_AFTER       32768u
/* ... and this share (per 65536) of adds is a cancel of an old order instead,
 * 15:45-16:00 and from 16:00: day orders are pulled and expire, the books thin. */
#define FH_GEN_DRAIN_Q_CLOSE     8000u
#define FH_GEN_DRAIN_Q_AFTER     24000u
#define FH_GEN_OLD_TRIES         8u     /* uniform slot draws before taking a deep level's oldest */

/* book_stats in PREFIX.json: an order is old once it has rested longer than
 * this (day clock), and levels per book side are sampled every
 * FH_GEN_LEVEL_SAMPLE flow messages, or on days with fewer than 256 times that
 * every flow / 256 (at least FH_GEN_LEVEL_SAMPLE_MIN apart), into a histogram
 * of FH_GEN_LEVEL_HIST bins (the last one collects the rest). */
#define FH_GEN_OLD_NS            (3600ULL * FH_GEN_NS_PER_S)
#define FH_GEN_LEVEL_SAMPLE      65536u
#define FH_GEN_LEVEL_SAMPLE_MIN  256u
#define FH_GEN_LEVEL_HIST        65536u

#endif
