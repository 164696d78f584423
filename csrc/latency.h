/* latency.h -- a lane's latency measurement (fh_lane_t.latency): the
 * per-stage histograms (hist.h, FH_HIST_STAGES of them) and the stamps of
 * the packet being measured.  Stamps are raw TSC ticks (tsc.h), converted
 * once per interval; with --latency-sample N only every Nth frame is stamped,
 * and the decode/book/publish split only on every stages_every-th of those.
 * Off (hist NULL) it costs the frame path one predicted branch.  The stages
 * are tallied (fh_hist_tally: bucket and sum); their count, min and max are
 * made from the buckets when read (fh_lane_latency). */
#ifndef FH_LATENCY_H
#define FH_LATENCY_H

#include "hist.h"
#include "tsc.h"

typedef struct fh_latency {
    fh_hist_t *hist;                /* FH_HIST_STAGES histograms, or NULL (off) */
    uint64_t due;                   /* when the frame being handled was due/received (TSC ns); 0 = now */
    uint64_t t_decoded, t_booked;   /* the frame being measured: when it was decoded, booked (TSC ticks) */
    uint64_t end;                   /* when the last measured frame's work ended (TSC ticks; 0: none yet) */
    uint64_t frames;                /* frames handed to the lane while measuring */
    uint64_t end_frame;             /* the frame `end` belongs to (its value of `frames`) */
    uint32_t due_seen;              /* some packet had a receive/due time (paced, DPDK) */
    uint32_t every, left;           /* stamp every `every`-th frame; frames until the next */
    uint32_t stages_every;          /* split processing into stages on every Nth stamped packet */
    uint32_t stages_left;           /* stamped packets (that applied messages) until the next split */
    uint32_t on;                    /* the frame being handled stamps its stages (decoded, booked) */
    uint32_t rx_clock;              /* enum fh_rx_clock of `due` */
} fh_latency_t;

/* A frame handed to the lane (every one, whether it is measured or not),
 * while measuring: it tells fh_latency_start whether the frame before a
 * measured one was measured too. */
FH_INLINE void fh_latency_frame(fh_latency_t *l) { l->frames++; }

/* When the measured frame being handled started, TSC ticks.  A lane's work
 * on a packet starts when the packet before it is done, so where the frame
 * just before was measured too (every frame, with --latency-sample 1), its
 * end is this one's start and no clock is read; a packet received after that
 * (a later burst, a paced packet due later) starts at its receive time
 * instead (fh_latency_record).  Otherwise the clock is read now. */
FH_INLINE uint64_t fh_latency_start(const fh_latency_t *l, const fh_tsc_t *tc)
{
    return l->end && l->end_frame + 1 == l->frames ? l->end : fh_tsc_ticks(tc);
}

/* The measured frame ended at c1 (TSC ticks): the next one may start there. */
FH_INLINE void fh_latency_end(fh_latency_t *l, uint64_t c1)
{
    l->end = c1;
    l->end_frame = l->frames;
}

/* Whether the packet about to be handled splits its processing into stages:
 * every stages_every-th stamped packet that applies messages.  The split
 * costs two more TSC reads (~10 ns each on the AMD EPYC this was measured
 * on), so by default only a sample of packets pays it; the end-to-end stages
 * are recorded for every stamped packet. */
FH_INLINE uint32_t fh_latency_stages_due(const fh_latency_t *l) { return l->stages_left <= 1; }

/* v - d, or 0 where d is later: an interval whose end was stamped before
 * its start (another clock, a stamp from the future) counts as 0. */
FH_INLINE uint64_t fh_latency_less(uint64_t v, uint64_t d) { return v > d ? v - d : 0; }

/* A stamped packet into the histograms: its work started at c0 (TSC ticks,
 * fh_latency_start) and it was published (or, decode-only, decoded) at c1,
 * applying `msgs` messages; with the split, its decode and book stages ended
 * at t_decoded and t_booked.  Each interval is converted once.  With a
 * receive/due time, rx -> start and rx -> published too; a packet received
 * after c0 (the lane was idle) started when it was received.  Without one
 * they are filled in when read, not recorded. */
FH_INLINE void fh_latency_record(fh_latency_t *l, const fh_tsc_t *tc, uint64_t c0, uint64_t c1, uint32_t msgs,
                                 int decode_only)
{
    fh_hist_t *h = l->hist;
    uint64_t idle = 0;                  /* from c0 until the packet was received */
    if (l->due) {
        const uint64_t t0 = fh_tsc_ticks_ns(tc, c0);
        const uint64_t late = fh_latency_less(t0, l->due);
        idle = fh_latency_less(l->due, t0);
        fh_hist_tally(&h[FH_LAT_RX_TO_START], late);
        const uint64_t proc = fh_latency_less(fh_tsc_delta_ns(tc, c1 - c0), idle);
        fh_hist_tally(&h[FH_LAT_PROCESSING], proc);
        fh_hist_tally(&h[FH_LAT_RX_TO_PUBLISHED], late + proc);
        l->due_seen = 1;
    } else {
        fh_hist_tally(&h[FH_LAT_PROCESSING], fh_tsc_delta_ns(tc, c1 - c0));
    }
    fh_hist_tally(&h[FH_LAT_MSGS_PER_PACKET], msgs);
    if (!l->on) {
        l->stages_left--;
        return;
    }
    l->stages_left = l->stages_every;
    fh_hist_tally(&h[FH_LAT_DECODE], fh_latency_less(fh_tsc_delta_ns(tc, l->t_decoded - c0), idle));
    if (!decode_only) {
        fh_hist_tally(&h[FH_LAT_BOOK], fh_tsc_delta_ns(tc, l->t_booked - l->t_decoded));
        fh_hist_tally(&h[FH_LAT_PUBLISH], fh_tsc_delta_ns(tc, c1 - l->t_booked));
    }
}

/* A stamped frame that carried a sender's transmit stamp (wire_ticks, raw
 * TSC; see FH_WIRE_STAMP_MAGIC) and was published at c1 (TSC ticks): wire ->
 * rx (when the lane has a receive time) and wire -> published.  A stamp from
 * the future (another host's TSC, a corrupt trailer) counts as 0. */
FH_INLINE void fh_latency_wire(fh_latency_t *l, const fh_tsc_t *tc, uint64_t wire_ticks, uint64_t c1)
{
    const uint64_t wire = fh_tsc_ticks_ns(tc, wire_ticks);
    const uint64_t done = fh_tsc_ticks_ns(tc, c1);
    if (l->due) fh_hist_tally(&l->hist[FH_LAT_WIRE_TO_RX], fh_latency_less(l->due, wire));
    fh_hist_tally(&l->hist[FH_LAT_WIRE_TO_PUBLISHED], fh_latency_less(done, wire));
}

#endif
