/* latency.h -- a lane's latency measurement (fh_lane_t.latency): the
 * per-stage histograms (hist.h, FH_HIST_STAGES of them) and the stamps of
 * the packet being measured.  Stamps are raw TSC ticks (tsc.h), converted
 * once per interval; with --latency-sample N only every Nth frame is stamped.
 * Off (hist NULL) it costs the frame path one predicted branch. */
#ifndef FH_LATENCY_H
#define FH_LATENCY_H

#include "hist.h"
#include "tsc.h"

typedef struct fh_latency {
    fh_hist_t *hist;                /* FH_HIST_STAGES histograms, or NULL (off) */
    uint64_t due;                   /* when the frame being handled was due/received (TSC ns); 0 = now */
    uint64_t t_decoded, t_booked;   /* the frame being measured: when it was decoded, booked (TSC ticks) */
    uint32_t due_seen;              /* some packet had a receive/due time (paced, DPDK) */
    uint32_t every, left;           /* stamp every `every`-th frame; frames until the next */
    uint32_t on;                    /* the frame being handled is stamped */
    uint32_t rx_clock;              /* enum fh_rx_clock of `due` */
} fh_latency_t;

/* A stamped packet into the histograms: it started at c0 and was published
 * (or, decode-only, decoded) at c1, TSC ticks, applying `msgs` messages; its
 * decode and book stages ended at t_decoded and t_booked.  Each interval is
 * converted once.  With a receive/due time, rx -> start and rx -> published
 * too (without one they are filled in when read, not recorded). */
FH_INLINE void fh_latency_record(fh_latency_t *l, const fh_tsc_t *tc, uint64_t c0, uint64_t c1, uint32_t msgs,
                                 int decode_only)
{
    fh_hist_t *h = l->hist;
    const uint64_t proc = fh_tsc_delta_ns(tc, c1 - c0);
    fh_hist_record(&h[FH_LAT_PROCESSING], proc);
    fh_hist_record(&h[FH_LAT_DECODE], fh_tsc_delta_ns(tc, l->t_decoded - c0));
    if (!decode_only) {
        fh_hist_record(&h[FH_LAT_BOOK], fh_tsc_delta_ns(tc, l->t_booked - l->t_decoded));
        fh_hist_record(&h[FH_LAT_PUBLISH], fh_tsc_delta_ns(tc, c1 - l->t_booked));
    }
    fh_hist_record(&h[FH_LAT_MSGS_PER_PACKET], msgs);
    if (l->due) {
        const uint64_t t0 = fh_tsc_ticks_ns(tc, c0);
        const uint64_t late = t0 > l->due ? t0 - l->due : 0;
        fh_hist_record(&h[FH_LAT_RX_TO_START], late);
        fh_hist_record(&h[FH_LAT_RX_TO_PUBLISHED], late + proc);
        l->due_seen = 1;
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
    if (l->due) fh_hist_record(&l->hist[FH_LAT_WIRE_TO_RX], l->due > wire ? l->due - wire : 0);
    fh_hist_record(&l->hist[FH_LAT_WIRE_TO_PUBLISHED], done > wire ? done - wire : 0);
}

#endif
