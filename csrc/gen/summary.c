/* summary.c -- PREFIX.json: what was generated (docs/generator.md).
 *
 * Counts per message type, packets per line, loss, the channels or units and
 * their locates, the symbols, and "book_stats": what the day's books looked
 * like, from counters the order flow keeps and the levels per book side
 * sampled through the day (fh_gen_sample_levels). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "summary.h"
#include "iex_writer.h"

/* Levels per non-empty book side, every instrument, into the histogram. */
void fh_gen_sample_levels(fh_gen_t *g)
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
            if (acc >= want) {
                p99 = v;
                break;
            }
        }
    }
    /* flow messages of the 300 most active instruments */
    uint64_t flow = 0, top = 0;
    uint32_t *c = malloc((size_t)g->nsym * sizeof *c);
    if (c) {
        for (uint32_t l = 1; l <= g->nsym; l++) {
            c[l - 1] = g->symx[l].flow;
            flow += c[l - 1];
        }
        qsort(c, g->nsym, sizeof *c, fh_gen_cmp_desc_u32);
        for (uint32_t k = 0; k < g->nsym && k < 300; k++) top += c[k];
        free(c);
    }
    fprintf(f,
            "  \"book_stats\": {\"peak_live_orders\": %llu, \"levels_per_side_mean\": %.4f, "
            "\"levels_per_side_p99\": %u, \"top5_share\": %.6f, \"old_cancel_share\": %.6f, "
            "\"top300_message_share\": %.6f},\n",
            (unsigned long long)g->peak_live, g->lv_n ? (double)g->lv_sum / (double)g->lv_n : 0.0, p99,
            g->touched ? (double)g->top5 / (double)g->touched : 0.0,
            g->cancels ? (double)g->old_cancels / (double)g->cancels : 0.0, flow ? (double)top / (double)flow : 0.0);
}

/* An IEX day's own keys: its feed, line and sessions. */
static void fh_gen_json_iex(fh_gen_t *g, FILE *f)
{
    const fh_gen_iex_t *x = g->iex;
    const fh_gen_chan_t *ch = &g->ch[0];
    char a[20], b[20];
    fh_gen_ip(a, sizeof a, ch->group[0]);
    fh_gen_ip(b, sizeof b, ch->group[1]);
    fprintf(f,
            "  \"iex\": {\"protocol_id\": %u, \"channel_id\": 1, \"sessions\": %u, "
            "\"multi_level_events\": %llu, \"straddling_events\": %llu, \"sweeps\": %llu, "
            "\"clear_books\": %llu},\n",
            x->proto_id, x->session + 1, (unsigned long long)x->events_multi, (unsigned long long)x->straddles,
            (unsigned long long)x->sweeps, (unsigned long long)x->clears);
    fprintf(f,
            "  \"channels\": [\n    {\"name\": \"iex-1\", \"channel_id\": 1, \"line_a\": \"%s:%u\", "
            "\"line_b\": \"%s:%u\", \"messages\": %llu, \"data_packets\": %llu, \"heartbeats\": %llu, "
            "\"end_of_session\": %llu}\n  ],\n",
            a, g->udp_port, b, g->udp_port, (unsigned long long)ch->messages, (unsigned long long)ch->data_packets,
            (unsigned long long)ch->heartbeats, (unsigned long long)ch->eos);
    fprintf(f, "  \"sessions\": [\n");
    for (uint32_t k = 0; k <= x->session; k++) {
        const fh_gen_iex_session_t *ss = &x->sess[k];
        fprintf(f,
                "    {\"session_id\": %u, \"messages\": %llu, \"data_packets\": %llu, \"heartbeats\": %llu, "
                "\"next_sequence\": %llu, \"stream_bytes\": %llu, \"first_ts\": %llu, \"last_ts\": %llu}%s\n",
                ss->id, (unsigned long long)ss->messages, (unsigned long long)ss->data_packets,
                (unsigned long long)ss->heartbeats, (unsigned long long)ss->next_seq,
                (unsigned long long)ss->stream_bytes, (unsigned long long)ss->first_ts, (unsigned long long)ss->last_ts,
                k < x->session ? "," : "");
    }
    fprintf(f, "  ],\n");
}

static const char *fh_gen_iex_name(const fh_gen_t *g)
{
    return g->iex->proto == FH_GEN_PROTO_IEX_TOPS   ? "iex-tops"
           : g->iex->proto == FH_GEN_PROTO_IEX_DEEP ? "iex-deep"
                                                    : "iex-deepplus";
}

/* PREFIX.json (docs/generator.md).  ITCH and PITCH days share most keys; a
 * PITCH day adds its protocol, its Time messages, loss on both lines and its
 * units, and names order ids as PITCH does.  An IEX day has its protocol,
 * the messages it wrote ("messages") beside the model's ("model_messages"),
 * by_type keyed "iex_" + the type character, and its feed and sessions
 * (fh_gen_json_iex) in place of the channels. */
int fh_gen_json(fh_gen_t *g, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    const fh_gen_cfg_t *cfg = g->cfg;
    const int pitch = g->pitch;
    const uint64_t total = g->emitted + (pitch ? g->time_msgs : 0);
    fprintf(f, "{\n  \"format\": \"feedhandler-gen/1\",\n%s", pitch ? "  \"protocol\": \"pitch\",\n" : "");
    if (g->iex) fprintf(f, "  \"protocol\": \"%s\",\n", fh_gen_iex_name(g));
    fprintf(f, "  \"seed\": %llu,\n  \"messages\": %llu,\n", (unsigned long long)cfg->seed, (unsigned long long)total);
    if (g->iex) fprintf(f, "  \"model_messages\": %llu,\n", (unsigned long long)cfg->messages);
    if (pitch)
        fprintf(f, "  \"messages_without_time\": %llu,\n  \"time_messages\": %llu,\n", (unsigned long long)g->emitted,
                (unsigned long long)g->time_msgs);
    fprintf(f, "  \"scheduled_messages\": %llu,\n  \"flow_messages\": %llu,\n", (unsigned long long)g->nsched,
            (unsigned long long)g->nflow);
    if (pitch)
        fprintf(f,
                "  \"symbol_count\": %u,\n  \"unit_count\": %u,\n  \"channel_count\": %u,\n"
                "  \"lines\": \"%s\",\n",
                g->nsym, g->nch, cfg->channels, g->lines == 2 ? "ab" : "a");
    else
        fprintf(f, "  \"symbol_count\": %u,\n  \"channel_count\": %u,\n  \"lines\": \"%s\",\n", g->nsym, g->nch,
                g->lines == 2 ? "ab" : "a");
    fprintf(f, "  \"loss_a\": %.17g,\n  \"loss_b\": %.17g,\n", g->loss[0], g->loss[1]);
    fprintf(f, "  \"batch_ns\": %u,\n  \"max_payload\": %u,\n", g->batch_ns, g->max_payload);
    fprintf(f, "  \"heartbeat_ns\": %llu,\n", (unsigned long long)g->heartbeat_ns);
    fprintf(f, "  \"rate\": %llu,\n", (unsigned long long)g->rate);
    fprintf(f, "  \"trading_date\": \"%s\",\n  \"timezone\": \"America/New_York\",\n  \"midnight_ns\": %llu,\n",
            FH_GEN_DATE, (unsigned long long)FH_GEN_MIDNIGHT_NS);
    fprintf(f, "  \"udp_port\": %u,\n  \"partition\": \"contiguous\",\n", g->udp_port);
    fprintf(f, "  \"by_type\": {");
    int first = 1;
    for (int t = 0; t < 256; t++) {
        if (!g->by_type[t]) continue;
        /* PITCH types as "0x21" (stats-json's keys), ITCH types by their letter. */
        if (pitch) fprintf(f, "%s\"0x%02x\": %llu", first ? "" : ", ", t, (unsigned long long)g->by_type[t]);
        else if (g->iex) fprintf(f, "%s\"iex_%c\": %llu", first ? "" : ", ", t, (unsigned long long)g->by_type[t]);
        else fprintf(f, "%s\"%c\": %llu", first ? "" : ", ", t, (unsigned long long)g->by_type[t]);
        first = 0;
    }
    fprintf(f, "},\n");
    fprintf(f, "  \"packets\": {\"a\": %llu, \"b\": %llu},\n", (unsigned long long)g->written[0],
            (unsigned long long)g->written[1]);
    fprintf(f, "  \"packets_sent\": {\"a\": %llu, \"b\": %llu},\n", (unsigned long long)g->sent[0],
            (unsigned long long)g->sent[1]);
    if (pitch || g->iex)
        fprintf(f, "  \"packets_lost\": {\"a\": %llu, \"b\": %llu, \"both\": %llu},\n", (unsigned long long)g->lost[0],
                (unsigned long long)g->lost[1], (unsigned long long)g->lost_both);
    else
        fprintf(f, "  \"packets_lost\": {\"a\": %llu, \"b\": %llu},\n", (unsigned long long)g->lost[0],
                (unsigned long long)g->lost[1]);
    fprintf(f, "  \"data_packets\": %llu,\n  \"heartbeats\": %llu,\n  \"end_of_session\": %llu,\n",
            (unsigned long long)g->data_packets, (unsigned long long)g->heartbeats, (unsigned long long)g->eos);
    fprintf(f, "  \"messages_per_packet\": {\"mean\": %.4f, \"max\": %llu},\n",
            g->data_packets ? (double)total / (double)g->data_packets : 0.0, (unsigned long long)g->mpp_max);
    fprintf(f, "  \"pcap_records\": %llu,\n  \"first_capture_ns\": %llu,\n  \"last_capture_ns\": %llu,\n",
            (unsigned long long)(g->written[0] + g->written[1]), (unsigned long long)g->first_cap,
            (unsigned long long)g->last_cap);
    fprintf(f, "  \"first_ts\": %llu,\n  \"last_ts\": %llu,\n", (unsigned long long)g->first_ts,
            (unsigned long long)g->last_ts);
    uint64_t live = 0, full = 0;
    for (uint32_t l = 1; l <= g->nsym; l++) live += g->sym[l].nord[0] + g->sym[l].nord[1];
    for (uint32_t c = 0; c < g->nch; c++) full += g->ch[c].pool_full;
    if (pitch)
        fprintf(f, "  \"first_order_id\": %llu,\n  \"last_order_id\": %llu,\n  \"last_execution_id\": %llu,\n",
                (unsigned long long)FH_GEN_PITCH_ORDER_ID0, (unsigned long long)g->ref, (unsigned long long)g->match);
    else if (g->iex)
        fprintf(f, "  \"first_order_id\": %llu,\n  \"last_order_id\": %llu,\n  \"last_trade_id\": %llu,\n",
                (unsigned long long)FH_GEN_IEX_ORDER_ID0, (unsigned long long)g->ref, (unsigned long long)g->match);
    else
        fprintf(f, "  \"last_order_reference\": %llu,\n  \"last_match_number\": %llu,\n", (unsigned long long)g->ref,
                (unsigned long long)g->match);
    fprintf(f, "  \"live_orders_at_end\": %llu,\n  \"pool_full_events\": %llu,\n", (unsigned long long)live,
            (unsigned long long)full);
    fh_gen_json_book_stats(g, f);
    if (g->iex) fh_gen_json_iex(g, f);
    else fprintf(f, "  \"%s\": [\n", pitch ? "units" : "channels");
    for (uint32_t c = 0; c < g->nch && !g->iex; c++) {
        const fh_gen_chan_t *ch = &g->ch[c];
        char a[20], b[20];
        fh_gen_ip(a, sizeof a, ch->group[0]);
        fh_gen_ip(b, sizeof b, ch->group[1]);
        if (pitch) {
            char range[24] = "";           /* a unit without symbols: [] */
            if (ch->hi >= ch->lo) snprintf(range, sizeof range, "%u, %u", ch->lo, ch->hi);
            fprintf(f,
                    "    {\"unit\": %u, \"group\": %u, \"line_a\": \"%s:%u\", \"line_b\": \"%s:%u\", "
                    "\"symbols\": [%s], \"messages\": %llu, \"data_packets\": %llu, "
                    "\"heartbeats\": %llu, \"next_sequence\": %llu}%s\n",
                    c + 1, c % cfg->channels, a, FH_GEN_PITCH_PORT, b, FH_GEN_PITCH_PORT, range,
                    (unsigned long long)ch->messages, (unsigned long long)ch->data_packets,
                    (unsigned long long)ch->heartbeats, (unsigned long long)ch->next_seq, c + 1 < g->nch ? "," : "");
        } else {
            fprintf(f,
                    "    {\"name\": \"itch-%u\", \"session\": \"%s\", \"line_a\": \"%s:26477\", "
                    "\"line_b\": \"%s:26477\", \"locates\": [%u, %u], \"tracking_number\": %u, "
                    "\"messages\": %llu, \"data_packets\": %llu, \"heartbeats\": %llu, "
                    "\"end_of_session\": %llu, \"next_sequence\": %llu}%s\n",
                    c + 1, ch->session, a, b, ch->lo, ch->hi, ch->tracking, (unsigned long long)ch->messages,
                    (unsigned long long)ch->data_packets, (unsigned long long)ch->heartbeats,
                    (unsigned long long)ch->eos, (unsigned long long)ch->next_seq, c + 1 < g->nch ? "," : "");
        }
    }
    fprintf(f, "%s  \"symbols\": {", g->iex ? "" : "  ],\n");
    for (uint32_t l = 1; l <= g->nsym; l++) {
        const fh_gen_sym_t *s = &g->sym[l];
        int n = 8;
        while (n > 0 && s->stock[n - 1] == ' ') n--;
        fprintf(f, "%s\"%u\": \"%.*s\"", l > 1 ? ", " : "", l, n, s->stock);
    }
    fprintf(f, "}\n}\n");
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        fh_errf(err, errlen, "write error on %s", path);
        return -1;
    }
    return 0;
}
