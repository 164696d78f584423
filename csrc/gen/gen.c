/* gen.c -- a synthetic but realistic NASDAQ TotalView-ITCH 5.0 trading day:
 * set-up and the run loop (gen.h lists the files that hold the rest).
 *
 * One call of fh_gen_run() writes three files from one deterministic stream:
 *   PREFIX.pcap  nanosecond pcap, Ethernet/IPv4/UDP/MoldUDP64, line A (and B)
 *   PREFIX.bin   NASDAQ BinaryFILE: the same messages, u16 BE length before each
 *   PREFIX.json  a summary (counts, channels, symbols) for tests and users
 *
 * The day is the merge of two time-ordered streams (fh_gen_day):
 *   - a schedule built up front (model.c: system events, stock directory,
 *     trading actions, Reg SHO, market makers, MWCB, IPO, LULD collars,
 *     halts, NOII imbalances, opening/closing/halt crosses, a broken trade),
 *     sorted by time;
 *   - order flow (flow.c: A F D U E X C P) from 04:00 to 20:00, drawn in
 *     bursts on one instrument (so one channel) each, with a U-shaped
 *     intraday rate (inverse CDF of a per-second intensity table, model.c),
 *     so the packetiser batches several messages per packet.  Instruments are
 *     drawn by activity, Zipf-like (1 / (rank + 8)^1.25: the top 300 of 8 000
 *     carry ~73% of the flow), two bursts ahead so that their books can be
 *     fetched while the bursts before run.
 * With cfg->rate R > 0 (flat-rate mode, for latency benchmarks replayed at the
 * capture's pace) the same day is compressed into messages / R seconds: the
 * schedule's times map linearly into that window (fh_gen_rate_map), order flow
 * is drawn with a flat intensity over it, and the packetiser's default window
 * shrinks to FH_GEN_BATCH_NS_RATE, so there are no idle hours and packets carry
 * what a feed at that rate carries.  Rate 0 is the normal day, byte for byte.
 * Messages are generated in timestamp order; the packetiser (packets.c) runs
 * its flush deadlines and heartbeats in time order before each one.
 *
 * Every instrument keeps its own book (book.c), so the flow names only live
 * orders and keeps books uncrossed; live orders build up to hundreds of
 * thousands on a full day, peak before the close and thin out after it.
 * PREFIX.json's "book_stats" measures it (summary.c).  Order references and
 * match numbers are day-wide counters, strictly increasing.
 *
 * PITCH (cfg->protocol 1, docs/generator.md "PITCH"): the same model writes a
 * Cboe Multicast PITCH day instead, PREFIX.pcap and PREFIX.json only.  The
 * channels become units (ch[] is per unit: its packetiser, sequence, heartbeat
 * timer and last Time), symbols are split 1 + i * units / symbols, unit u goes
 * out on group (u - 1) % channels; the flow and schedule branch on g->pitch
 * at the point where they write (pitch_writer.c instead of itch_writer.c) and
 * the schedule keeps only what PITCH has (trading status, auctions, trade
 * breaks).  The ITCH day is unchanged, byte for byte.
 *
 * IEX (cfg->protocol 2 TOPS, 3 DEEP, 4 DEEP+, iex_writer.h): the same model
 * over IEX-TP v1, PREFIX.pcap and PREFIX.json only, one channel; the three
 * feeds of one seed share the flow and differ only in what they write.
 * cfg->units sessions (0 = 1) split the flow evenly: at each cut the session
 * ends (books cleared, End of Messages) and the next one starts with a new
 * session id at sequence 1 (fh_iex_new_session).
 *
 * No allocation, no syscall per message: all memory is taken before the loop,
 * output goes through large buffers (out.c).  Randomness is xoshiro256**
 * seeded by splitmix64 from cfg->seed (rng.c), in separate streams for the
 * day, the schedule and each line's loss, so loss settings never change the
 * messages.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "model.h"
#include "book.h"
#include "flow.h"
#include "packets.h"
#include "itch_writer.h"
#include "pitch_writer.h"
#include "iex_writer.h"
#include "summary.h"

/* The layout Python sees (tests/test_layout.py asserts the same numbers). */
_Static_assert(sizeof(fh_gen_cfg_t) == 80, "fh_gen_cfg_t size changed: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, rate) == 64, "fh_gen_cfg_t.rate moved: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, protocol) == 72, "fh_gen_cfg_t.protocol moved: update test_layout.py");
_Static_assert(offsetof(fh_gen_cfg_t, units) == 76, "fh_gen_cfg_t.units moved: update test_layout.py");

static void fh_gen_free(fh_gen_t *g)
{
    if (!g) return;
    if (g->pcap.f) fclose(g->pcap.f);
    if (g->bin.f) fclose(g->bin.f);
    free(g->pcap.buf);
    free(g->bin.buf);
    free(g->sym);
    free(g->symx);
    free(g->ch);
    free(g->lv_hist);
    free(g->slots);
    free(g->levels);
    free(g->alias_p);
    free(g->alias_i);
    free(g->sched);
    free(g->cdf);
    free(g->bring);
    fh_iex_free(g);
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
    if (!cfg) {
        fh_errf(err, errlen, "invalid gen config: cfg is NULL");
        return -1;
    }
    if (!cfg->out_prefix || !cfg->out_prefix[0]) {
        fh_errf(err, errlen, "invalid gen config: empty output prefix");
        return -1;
    }
    if (cfg->symbols < 1 || cfg->symbols > 65535) {
        fh_errf(err, errlen, "invalid gen config: symbols must be 1..65535, got %u", cfg->symbols);
        return -1;
    }
    if (cfg->protocol > FH_GEN_PROTO_IEX_DEEPPLUS) {
        fh_errf(err, errlen,
                "invalid gen config: protocol must be 0 (itch), 1 (pitch), 2 (iex-tops), 3 (iex-deep) or "
                "4 (iex-deepplus), got %u",
                cfg->protocol);
        return -1;
    }
    if (cfg->protocol >= FH_GEN_PROTO_IEX_TOPS) {
        if (cfg->units > FH_GEN_IEX_SESSIONS_MAX) {
            fh_errf(err, errlen, "invalid gen config: IEX sessions must be 1..%u (0 = 1), got %u",
                    FH_GEN_IEX_SESSIONS_MAX, cfg->units);
            return -1;
        }
        if (cfg->channels != 1) {
            fh_errf(err, errlen, "invalid gen config: an IEX feed has one channel, got channels %u", cfg->channels);
            return -1;
        }
        if (cfg->max_payload && cfg->max_payload < FH_GEN_IEX_PAYLOAD_MIN) {
            fh_errf(err, errlen,
                    "invalid gen config: max_payload must be at least %u for IEX (the segment header and "
                    "the longest message), got %u",
                    FH_GEN_IEX_PAYLOAD_MIN, cfg->max_payload);
            return -1;
        }
    } else if (cfg->protocol == FH_GEN_PROTO_PITCH) {
        uint32_t units = cfg->units ? cfg->units : FH_GEN_PITCH_UNITS;
        if (units > FH_GEN_PITCH_UNITS) {
            fh_errf(err, errlen, "invalid gen config: units must be 1..%u (0 = %u), got %u", FH_GEN_PITCH_UNITS,
                    FH_GEN_PITCH_UNITS, cfg->units);
            return -1;
        }
        if (cfg->symbols > units * FH_GEN_PITCH_SYMS_PER_UNIT) {
            fh_errf(err, errlen,
                    "invalid gen config: %u symbols do not fit %u PITCH unit(s): at most "
                    "%u symbols per unit (%u in all); raise --units (at most %u)",
                    cfg->symbols, units, FH_GEN_PITCH_SYMS_PER_UNIT, units * FH_GEN_PITCH_SYMS_PER_UNIT,
                    FH_GEN_PITCH_UNITS);
            return -1;
        }
        if (cfg->channels < 1 || cfg->channels > units) {
            fh_errf(err, errlen,
                    "invalid gen config: channels (multicast groups per line) must be "
                    "1..units (%u), got %u",
                    units, cfg->channels);
            return -1;
        }
    } else if (cfg->channels < 1 || cfg->channels > FH_GEN_MAX_CHANNELS || cfg->channels > cfg->symbols) {
        fh_errf(err, errlen, "invalid gen config: channels must be 1..%u and <= symbols (%u), got %u",
                FH_GEN_MAX_CHANNELS, cfg->symbols, cfg->channels);
        return -1;
    }
    if (cfg->lines != 1 && cfg->lines != 2) {
        fh_errf(err, errlen, "invalid gen config: lines must be 1 (A) or 2 (A and B), got %u", cfg->lines);
        return -1;
    }
    if (!(cfg->loss_a >= 0.0 && cfg->loss_a < 1.0) || !(cfg->loss_b >= 0.0 && cfg->loss_b < 1.0)) {
        fh_errf(err, errlen, "invalid gen config: loss probabilities must be in [0, 1), got %g and %g", cfg->loss_a,
                cfg->loss_b);
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
        fh_errf(err, errlen,
                "invalid gen config: rate must be 0 (the normal day) or %llu..%llu "
                "messages per second, got %llu",
                (unsigned long long)FH_GEN_RATE_MIN, (unsigned long long)FH_GEN_RATE_MAX,
                (unsigned long long)cfg->rate);
        return -1;
    }
    /* a flat-rate day compresses the normal one: it cannot be longer */
    if (cfg->rate && cfg->messages * FH_GEN_NS_PER_S / cfg->rate > FH_GEN_FLOW_END - FH_GEN_FLOW_START) {
        fh_errf(err, errlen,
                "invalid gen config: %llu messages at rate %llu per second would last "
                "%llu s, longer than the normal day's 16 hours of order flow; raise the rate",
                (unsigned long long)cfg->messages, (unsigned long long)cfg->rate,
                (unsigned long long)(cfg->messages / cfg->rate));
        return -1;
    }
    return 0;
}

static int fh_gen_setup(fh_gen_t *g, char *err, size_t errlen)
{
    const fh_gen_cfg_t *cfg = g->cfg;
    g->pitch = cfg->protocol == FH_GEN_PROTO_PITCH;
    g->udp_port = g->pitch ? FH_GEN_PITCH_PORT : 26477;
    g->nsym = cfg->symbols;
    g->nch = g->pitch ? (cfg->units ? cfg->units : FH_GEN_PITCH_UNITS) : cfg->channels;
    g->cut = UINT64_MAX;
    if (cfg->protocol >= FH_GEN_PROTO_IEX_TOPS) {
        if (fh_iex_init(g)) goto oom;
        g->nch = 1;
        g->udp_port = cfg->protocol == FH_GEN_PROTO_IEX_TOPS   ? FH_GEN_IEX_PORT_TOPS
                      : cfg->protocol == FH_GEN_PROTO_IEX_DEEP ? FH_GEN_IEX_PORT_DEEP
                                                               : FH_GEN_IEX_PORT_DEEPPLUS;
    }
    g->lines = cfg->lines;
    g->max_payload = cfg->max_payload ? cfg->max_payload : FH_GEN_PAYLOAD_DEFAULT;
    g->batch_ns = cfg->batch_ns ? cfg->batch_ns : cfg->rate ? FH_GEN_BATCH_NS_RATE : FH_GEN_BATCH_NS_DEFAULT;
    g->rate = cfg->rate;
    g->flow_t0 = FH_GEN_FLOW_START;
    g->flow_t1 = FH_GEN_FLOW_END;
    g->spacing = 1u << 16;
    if (g->rate) {
        /* validated: the window fits the normal one, so times stay below 20:00 */
        g->flow_t1 = g->flow_t0 + cfg->messages * FH_GEN_NS_PER_S / g->rate;
        g->rate_k = (double)(g->flow_t1 - g->flow_t0) / (double)(FH_GEN_FLOW_END - FH_GEN_FLOW_START);
        if (g->rate > FH_GEN_RATE_FULL_SPACING) g->spacing = (FH_GEN_RATE_FULL_SPACING << 16) / g->rate;
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
    if (fh_gen_channels(g)) goto oom;
    if (g->pitch) g->ref = FH_GEN_PITCH_ORDER_ID0;
    if (g->iex) g->ref = FH_GEN_IEX_ORDER_ID0;

    /* schedule: count, check the day is big enough, fill, sort */
    g->sched = NULL;
    fh_gen_build_schedule(g, cfg->messages);
    size_t n = g->nsched + (g->pitch ? g->nch : 0);    /* PITCH: one End of Session per unit */
    if (cfg->messages < n + FH_GEN_MIN_FLOW) {
        /* the smallest day that fits: scheduled messages less the NOII share
         * (1% of the day), plus the minimum order flow */
        uint64_t fixed = n - fh_gen_noii_count(cfg->messages), least = fixed + FH_GEN_MIN_FLOW;
        while (least < fixed + fh_gen_noii_count(least) + FH_GEN_MIN_FLOW) least++;
        fh_errf(err, errlen,
                "invalid gen config: %u symbol(s) on %u channel(s) need at least %llu "
                "messages (start-of-day, crosses, imbalances and %u order flow), got %llu",
                g->nsym, g->nch, (unsigned long long)least, FH_GEN_MIN_FLOW, (unsigned long long)cfg->messages);
        return -1;
    }
    g->sched = malloc((n ? n : 1) * sizeof *g->sched);
    if (!g->sched) goto oom;
    fh_gen_build_schedule(g, cfg->messages);
    fh_gen_sort_schedule(g);
    g->nflow = cfg->messages - n;
    if (g->iex && g->iex->sessions > 1) g->cut = g->nflow / g->iex->sessions;
    g->lv_every = FH_GEN_LEVEL_SAMPLE;
    if (g->nflow / 256 < g->lv_every)
        g->lv_every = g->nflow / 256 > FH_GEN_LEVEL_SAMPLE_MIN ? (uint32_t)(g->nflow / 256) : FH_GEN_LEVEL_SAMPLE_MIN;

    if (fh_gen_books_alloc(g)) goto oom;
    fh_gen_flow_init(g);
    return 0;
oom:
    fh_errf(err, errlen, "out of memory setting up a %llu-message day", (unsigned long long)cfg->messages);
    return -1;
}

/* One scheduled message, in the day's protocol. */
FH_INLINE void fh_gen_scheduled(fh_gen_t *g, const fh_gen_sched_t *e)
{
    if (g->pitch) fh_pg_scheduled(g, e);
    else if (g->iex) fh_iex_scheduled(g, e);
    else fh_gen_itch_scheduled(g, e);
}

/* The day: schedule and order flow merged in time order, then every open
 * packet flushed and each channel's (unit's) end of session. */
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
        if (FH_UNLIKELY(fi == g->cut)) fh_iex_new_session(g, g->tcur);
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
    for (uint32_t c = 0; c < g->nch; c++)
        if (g->ch[c].last_ts > tend) tend = g->ch[c].last_ts;
    g->last_ts = tend;
    tend += (uint64_t)g->batch_ns + 1000000;
    for (uint32_t c = 0; c < g->nch; c++) {
        uint64_t t = tend + (uint64_t)c * 1000;
        if (g->iex) {
            /* End of Messages was the schedule's last message: flush it */
            fh_iex_end_of_day(g, t);
            continue;
        }
        fh_gen_advance(g, t + 1);
        if (g->pitch) {
            /* End of Session: a sequenced message, the unit's last packet */
            fh_gen_chan_t *ch = &g->ch[c];
            fh_pg_end_of_session(g, ch, t);
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
    if (!g || !ppcap || !pbin || !pjson) {
        fh_errf(err, errlen, "out of memory");
        goto out;
    }
    g->cfg = cfg;
    if (fh_gen_setup(g, err, errlen)) goto out;
    /* only ITCH writes a BinaryFILE */
    if (fh_gen_out_open(&g->pcap, ppcap, err, errlen) ||
        (!g->pitch && !g->iex && fh_gen_out_open(&g->bin, pbin, err, errlen)))
        goto out;
    g->progress = progress;
    if (progress) *progress = 0;

    fh_gen_pcap_header(g);
    fh_gen_day(g);

    if (fh_gen_out_close(&g->pcap, err, errlen) || (!g->pitch && !g->iex && fh_gen_out_close(&g->bin, err, errlen)))
        goto out;
    if (progress) *progress = g->iex ? g->iex->model : g->emitted;
    if (fh_gen_json(g, pjson, err, errlen)) goto out;
    rc = 0;
out:
    fh_gen_free(g);
    free(ppcap);
    free(pbin);
    free(pjson);
    return rc;
}
