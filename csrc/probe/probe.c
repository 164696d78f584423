/* probe.c -- test and measurement hooks (probe_api.h), the feedhandler._probe
 * extension: nothing here is in the production core.  They use the core's
 * inline writer helpers (shm.h), its histograms (hist.h) and its TSC clock
 * (tsc.h, tsc.c compiled in), so they exercise the same code paths the
 * pipeline runs.  The raw shared-memory readers are the core's own (shm.c
 * compiled in); the PITCH reference decoder is pitch_decode.c. */
#include <stdlib.h>

#include "fh_common.h"
#include "hist.h"
#include "shm.h"
#include "tsc.h"
#include "probe/probe_api.h"

/* ------------------------------------------------ torn-read test writer */

void fh_shm_torture(uint8_t *base, uint32_t locate, uint64_t first_k, uint64_t iterations)
{
    fh_shm_header_t *h = (fh_shm_header_t *)base;
    fh_shm_t s;
    memset(&s, 0, sizeof s);
    s.base = base;
    s.hdr = h;
    s.slots = base + h->slots_offset;
    s.ring = (fh_shm_event_t *)(base + h->ring_offset);
    s.ring_mask = h->ring_capacity - 1;
    s.ring_head = &h->ring_head[0].head;
    s.head = *s.ring_head;
    s.slot_size = h->slot_size;
    s.depth = h->depth;
    if (locate >= h->n_slots) return;
    fh_shm_slot_t *sl = fh_shm_slot(&s, locate);
    const uint32_t d = h->depth;
    for (uint64_t k = first_k; k < first_k + iterations; k++) {
        fh_shm_write_begin(sl);
        uint32_t *bp = fh_slot_bid_price(sl), *bo = bp + d;
        uint64_t *bs = (uint64_t *)(bo + d);
        uint32_t *ap = (uint32_t *)(bs + d), *ao = ap + d;
        uint64_t *as = (uint64_t *)(ao + d);
        for (uint32_t i = 0; i < d; i++) {
            bp[i] = (uint32_t)k + i;
            bo[i] = (uint32_t)k ^ i;
            bs[i] = k * (i + 1);
            ap[i] = (uint32_t)k + 1000 + i;
            ao[i] = (uint32_t)k ^ i;
            as[i] = k * (i + 1);
        }
        sl->updates = k;
        sl->exch_ts = k;
        sl->last_trade_price = (uint32_t)k;
        sl->n_bid = d;
        sl->n_ask = d;
        fh_shm_write_end(sl);
        fh_shm_event_t *e = fh_shm_event_begin(&s);
        e->locate = (uint16_t)locate;
        e->type = FH_EV_TRADE;
        e->price1 = (uint32_t)k;
        e->qty1 = k * 3;
        e->qty2 = ~k & INT64_MAX;
        e->exch_ts = k;
        fh_shm_event_commit(&s, e);
    }
}

/* ------------------------------------------------------- histograms */

uint64_t fh_hist_max_ns(void) { return FH_HIST_MAX_NS; }

void fh_hist_record_n(fh_hist_t *h, const uint64_t *values, size_t n)
{
    for (size_t i = 0; i < n; i++) fh_hist_record(h, values[i]);
}

uint64_t fh_hist_bucket_low(uint32_t index) { return fh_hist_lowest(index); }
uint64_t fh_hist_bucket_high(uint32_t index) { return fh_hist_highest(index); }

/* --------------------------------------------------- machine jitter */

/* Machine jitter probe (probe_api.h): cold, run by benchmarks, never by the pipeline. */
uint64_t fh_hiccups(uint64_t duration_ns, uint64_t threshold_ns, size_t touch_bytes, fh_hist_t *out)
{
    fh_tsc_t t;
    fh_tsc_calibrate(&t);
    uint8_t *buf = NULL;
    size_t pos = 0;
    if (touch_bytes) {
        touch_bytes = (touch_bytes + 63) & ~(size_t)63;
        buf = malloc(touch_bytes);
        if (!buf) return UINT64_MAX;
        memset(buf, 1, touch_bytes);
    }
    uint64_t lost = 0, sink = 0, prev = fh_tsc_ns(&t);
    const uint64_t end = prev + duration_ns;
    while (prev < end) {
        if (buf) {
            sink += buf[pos];
            pos += 64;
            if (pos == touch_bytes) pos = 0;
        }
        const uint64_t now = fh_tsc_ns(&t);
        const uint64_t gap = now - prev;
        if (FH_UNLIKELY(gap > threshold_ns)) {
            fh_hist_record(out, gap);
            lost += gap;
        }
        prev = now;
    }
    free(buf);
    __asm__ volatile("" : : "r"(sink));
    return lost;
}
