/* packets.c -- the packetiser: messages into datagrams, datagrams into pcap.
 *
 * Every channel (PITCH: unit) has one open packet.  A packet is sent when a
 * message would overflow it, or when its flush window (g->batch_ns after its
 * first message) has passed; a channel that sent nothing for heartbeat_ns
 * sends a heartbeat.  Those deadlines and timers are one event per channel
 * (ch[].ev, their minimum in g->gmin), run in time order before each message
 * (fh_gen_advance), so packets of all channels are written in capture-time
 * order.  Each packet goes out on line A and optionally line B, each line with
 * its own loss draw, its own headers (Ethernet, IPv4 with checksum, UDP with
 * checksum over the pseudo-header) and capture time (a deterministic wire
 * model); line B frames wait in a short ring until line A has passed their
 * capture time.  A last clamp keeps capture timestamps non-decreasing.
 *
 * ITCH datagrams carry a MoldUDP64 header (session, sequence, count); PITCH
 * ones a Sequenced Unit Header (length, count, unit, sequence); IEX ones an
 * IEX-TP segment header (fh_gen_send_iex: sequence and stream offset, the
 * session's id; line B cuts every other segment of 2+ messages in two, as
 * IEX's A and B lines may aggregate messages differently).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packets.h"
#include "iex_writer.h"

/* Ones' complement sum of native 16-bit words (RFC 1071): byte order only
 * matters when storing, and the folded native sum stores correctly with memcpy.
 * p must start at an even offset of the checksummed range. */
FH_INLINE uint64_t fh_gen_sum(const uint8_t *p, size_t n, uint64_t acc)
{
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        acc += a;
        acc += b;
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t a;
        memcpy(&a, p, 4);
        acc += a;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t a;
        memcpy(&a, p, 2);
        acc += a;
        p += 2;
        n -= 2;
    }
    if (n) {
        uint8_t t[2] = {p[0], 0};
        uint16_t a;
        memcpy(&a, t, 2);
        acc += a;
    }
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
void fh_gen_bring_drain(fh_gen_t *g, uint64_t upto)
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
static void fh_gen_headers(fh_gen_t *g, const fh_gen_chan_t *ch, uint8_t *f, uint32_t flen, int line, uint64_t psum)
{
    static const uint8_t src_mac[2][6] = {{0x00, 0x1b, 0x21, 0x4e, 0x51, 0x0a}, {0x00, 0x1b, 0x21, 0x4e, 0x51, 0x0b}};
    static const uint32_t src_ip[2] = {0xCEC82B48u, 0xCEC88F48u};   /* 206.200.43.72 / 206.200.143.72 */
    uint32_t grp = ch->group[line];
    uint32_t c = ch->tracking - 1u;
    uint16_t udp_len = (uint16_t)(flen - FH_GEN_OFF_UDP);
    /* Ethernet: IPv4 multicast MAC = 01:00:5e + low 23 bits of the group */
    f[0] = 0x01;
    f[1] = 0x00;
    f[2] = 0x5e;
    f[3] = (uint8_t)((grp >> 16) & 0x7f);
    f[4] = (uint8_t)(grp >> 8);
    f[5] = (uint8_t)grp;
    memcpy(f + 6, src_mac[line], 6);
    f[12] = 0x08;
    f[13] = 0x00;
    /* IPv4: no options, DF clear, TTL 32 */
    uint8_t *ip = f + FH_GEN_OFF_IP;
    ip[0] = 0x45;
    ip[1] = 0;
    fh_put_be16(ip + 2, (uint16_t)(flen - FH_GEN_OFF_IP));
    fh_put_be16(ip + 4, g->ip_id[line]);
    ip[6] = 0;
    ip[7] = 0;
    ip[8] = 32;
    ip[9] = 17;
    ip[10] = 0;
    ip[11] = 0;
    fh_put_be32(ip + 12, src_ip[line]);
    fh_put_be32(ip + 16, grp);
    uint16_t ipc = fh_gen_fold(fh_gen_sum(ip, 20, 0));
    memcpy(ip + 10, &ipc, 2);
    /* UDP with its checksum over the pseudo-header */
    uint8_t *udp = f + FH_GEN_OFF_UDP;
    fh_put_be16(udp, (uint16_t)(50000u + c));
    fh_put_be16(udp + 2, g->udp_port);
    fh_put_be16(udp + 4, udp_len);
    udp[6] = 0;
    udp[7] = 0;
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = 17;
    fh_put_be16(pseudo + 10, udp_len);
    uint16_t uc = fh_gen_fold(fh_gen_sum(udp, 8, fh_gen_sum(pseudo, 12, psum)));
    if (uc == 0) uc = 0xffff;          /* 0 means "no checksum" in UDP over IPv4 */
    memcpy(udp + 6, &uc, 2);
}

/* IEX-TP segment header at h: plen payload bytes in count messages, the
 * first numbered seq, at byte off of the session's stream, sent at its. */
static void fh_gen_iex_header(const fh_gen_t *g, const fh_gen_chan_t *ch, uint8_t *h, uint32_t plen, uint32_t count,
                              uint64_t off, uint64_t seq, uint64_t its)
{
    h[0] = 1;                                  /* IEX-TP version */
    h[1] = 0;
    fh_gen_put_le16(h + 2, g->iex->proto_id);
    fh_gen_put_le32(h + 4, 1);                 /* channel */
    fh_gen_put_le32(h + 8, ch->session_id);
    fh_gen_put_le16(h + 12, (uint16_t)plen);
    fh_gen_put_le16(h + 14, (uint16_t)count);
    fh_gen_put_le64(h + 16, off);
    fh_gen_put_le64(h + 24, seq);
    fh_gen_put_le64(h + 32, FH_GEN_MIDNIGHT_NS + its);
}

/* A free line B ring slot (the oldest frame goes out if the ring is full). */
static fh_gen_bslot_t *fh_gen_bring_slot(fh_gen_t *g)
{
    if (g->bcount == FH_GEN_BRING) {
        fh_gen_bslot_t *o = &g->bring[g->bhead];
        fh_gen_pcap_record(g, o->data, o->len, o->ts);
        g->bhead = (g->bhead + 1) & (FH_GEN_BRING - 1);
        g->bcount--;
    }
    g->bcount++;
    return &g->bring[(g->bhead + g->bcount - 1) & (FH_GEN_BRING - 1)];
}

/* IEX: send channel c's segment (count messages; 0: a heartbeat, carrying
 * the next sequence and stream offset) stamped its.  Line A sends it whole;
 * line B the same, except that every other data segment of two or more
 * messages goes out there as two segments (the first count / 2 messages,
 * then the rest), so that a reader must arbitrate A and B by message
 * sequence, not by datagram.  Every datagram has its own loss draw. */
static void fh_gen_send_iex(fh_gen_t *g, uint32_t c, uint16_t count, uint64_t its)
{
    fh_gen_chan_t *ch = &g->ch[c];
    uint8_t *f = ch->frame;
    uint32_t flen = ch->len, plen = flen - FH_GEN_OFF_IEX_MSGS;
    fh_gen_iex_header(g, ch, f + FH_GEN_OFF_MOLD, plen, count, ch->stream_off, ch->next_seq, its);
    uint64_t psum = fh_gen_sum(f + FH_GEN_OFF_MOLD, flen - FH_GEN_OFF_MOLD, 0);
    uint64_t cap = FH_GEN_MIDNIGHT_NS + its + FH_GEN_WIRE_NS + (uint64_t)flen * 4 / 5;
    uint32_t cut = 0, cutb = 0;
    if (g->lines == 2 && count >= 2 && (ch->data_packets & 1)) {
        cut = count / 2u;
        for (uint32_t k = 0; k < cut; k++) cutb += 2u + fh_le16(f + FH_GEN_OFF_IEX_MSGS + cutb);
    }
    /* Lost on both lines: line A's copy and at least one of line B's parts
     * (messages no line carried). */
    int lost_a = 0, lost_b = 0;
    for (uint32_t line = 0; line < g->lines; line++) {
        uint32_t parts = line == FH_GEN_LINE_B && cut ? 2 : 1;
        for (uint32_t part = 0; part < parts; part++) {
            int lost = fh_gen_unit(&g->rng_loss[line]) < g->loss[line];
            g->ip_id[line]++;
            g->sent[line]++;
            if (lost) {
                g->lost[line]++;
                if (line == FH_GEN_LINE_A) lost_a = 1;
                else lost_b = 1;
                continue;
            }
            g->written[line]++;
            if (line == FH_GEN_LINE_A) {
                fh_gen_headers(g, ch, f, flen, FH_GEN_LINE_A, psum);
                fh_gen_bring_drain(g, cap);
                fh_gen_pcap_record(g, f, flen, cap);
                continue;
            }
            fh_gen_bslot_t *s = fh_gen_bring_slot(g);
            if (!cut) {
                memcpy(s->data, f, flen);
                s->len = flen;
                s->ts = cap + FH_GEN_LINE_B_NS + (ch->next_seq * 37) % 400;
                fh_gen_headers(g, ch, s->data, flen, FH_GEN_LINE_B, psum);
                continue;
            }
            /* one half of the segment: its blocks, its own header */
            uint32_t from = part ? cutb : 0, to = part ? plen : cutb, n = part ? count - cut : cut;
            uint32_t blen = FH_GEN_OFF_IEX_MSGS + (to - from);
            memcpy(s->data, f, FH_GEN_OFF_IEX_MSGS);
            memcpy(s->data + FH_GEN_OFF_IEX_MSGS, f + FH_GEN_OFF_IEX_MSGS + from, to - from);
            fh_gen_iex_header(g, ch, s->data + FH_GEN_OFF_MOLD, to - from, n, ch->stream_off + from,
                              ch->next_seq + (part ? cut : 0), its);
            s->len = blen;
            s->ts = cap + FH_GEN_LINE_B_NS + (ch->next_seq * 37) % 400 + part * 200u;
            fh_gen_headers(g, ch, s->data, blen, FH_GEN_LINE_B,
                           fh_gen_sum(s->data + FH_GEN_OFF_MOLD, blen - FH_GEN_OFF_MOLD, 0));
        }
    }
    if (lost_a && g->lines == 2 && lost_b) g->lost_both++;
    fh_gen_iex_session_t *ss = &g->iex->sess[g->iex->session];
    if (count == 0) {
        ch->heartbeats++;
        g->heartbeats++;
        ss->heartbeats++;
    } else {
        ch->data_packets++;
        g->data_packets++;
        ss->data_packets++;
        if (count > g->mpp_max) g->mpp_max = count;
        ch->next_seq += count;
        ch->stream_off += plen;
    }
    ch->len = FH_GEN_OFF_IEX_MSGS;
    ch->count = 0;
    g->last_its = its;
    fh_gen_set_ev(g, c, ch->ended ? FH_GEN_INF : its + g->heartbeat_ns);
}

/* Send channel c's packet (data, heartbeat or end of session) stamped `its`
 * (ITCH ns since midnight), on every line, each with its own loss draw.
 * PITCH: c is a unit, mold_count its message count (0: a heartbeat); its
 * End of Session is a message, sent once ch->ended is set. */
void fh_gen_send(fh_gen_t *g, uint32_t c, uint16_t mold_count, uint64_t its)
{
    if (g->iex) {
        fh_gen_send_iex(g, c, mold_count, its);
        return;
    }
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
        if (lost) {
            g->lost[line]++;
            nlost++;
            continue;
        }
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
    if (mold_count == 0) {
        ch->heartbeats++;
        g->heartbeats++;
    } else if (mold_count == 0xFFFF) {
        ch->eos++;
        g->eos++;
    } else {
        ch->data_packets++;
        g->data_packets++;
        if (mold_count > g->mpp_max) g->mpp_max = mold_count;
        ch->next_seq += mold_count;
    }
    ch->len = g->pitch ? FH_GEN_OFF_PITCH_MSGS : FH_GEN_OFF_BLOCKS;
    ch->count = 0;
    g->last_its = its;
    fh_gen_set_ev(g, c, mold_count == 0xFFFF || ch->ended ? FH_GEN_INF : its + g->heartbeat_ns);
}

int fh_gen_channels(fh_gen_t *g)
{
    const fh_gen_cfg_t *cfg = g->cfg;
    g->ch = calloc(g->nch, sizeof *g->ch);
    if (!g->ch) return -1;
    /* contiguous locate ranges: NASDAQ partitions channels alphabetically too */
    uint64_t sid = fh_gen_splitmix(&(uint64_t){cfg->seed ^ 0x5e5510aULL}) % 10000000u;
    if (g->iex) {
        /* one channel (IEX-TP channel id 1), every symbol; groups like IEX's
         * (DEEP A 233.215.21.4, B 233.215.21.132; DEEP+ .8 / .138; TOPS .3 / .131) */
        static const uint8_t grp[3][2] = {{3, 131}, {4, 132}, {8, 138}};
        uint32_t k = g->iex->proto - FH_GEN_PROTO_IEX_TOPS;
        fh_gen_chan_t *ch = &g->ch[0];
        ch->lo = 1;
        ch->hi = (uint16_t)g->nsym;
        for (uint32_t l = 1; l <= g->nsym; l++) g->sym[l].ch = 0;
        ch->tracking = 1;
        ch->group[0] = (233u << 24) | (215u << 16) | (21u << 8) | grp[k][0];
        ch->group[1] = (233u << 24) | (215u << 16) | (21u << 8) | grp[k][1];
        ch->len = FH_GEN_OFF_IEX_MSGS;
        ch->next_seq = 1;
        ch->stream_off = 0;
        /* a nonzero id from the seed, the next sessions' ids following it */
        ch->session_id = 0x42000000u + (uint32_t)(sid % 0x100000u) * 16u;
        g->iex->sess[0].id = ch->session_id;
        ch->ev = FH_GEN_INF;
    }
    if (g->pitch) {
        /* symbol i (alphabetical, 0-based) is on unit 1 + i * units / symbols;
         * unit u on group (u - 1) % channels of each line */
        for (uint32_t c = 0; c < g->nch; c++) {
            fh_gen_chan_t *ch = &g->ch[c];
            uint32_t k = c % cfg->channels;
            ch->lo = 1;
            ch->hi = 0;            /* none yet */
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
    }
    for (uint32_t c = 0; c < g->nch && !g->pitch && !g->iex; c++) {
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
    if (g->lines == 2) {
        g->bring = malloc(FH_GEN_BRING * sizeof *g->bring);
        if (!g->bring) return -1;
    }
    return 0;
}

/* Nanosecond magic, v2.4, snaplen 65535, Ethernet. */
void fh_gen_pcap_header(fh_gen_t *g)
{
    uint8_t *h = fh_gen_out_reserve(&g->pcap, 24);
    fh_gen_put_le32(h, 0xa1b23c4du);
    h[4] = 2;
    h[5] = 0;
    h[6] = 4;
    h[7] = 0;
    memset(h + 8, 0, 8);
    fh_gen_put_le32(h + 16, 65535);
    fh_gen_put_le32(h + 20, 1);
    g->pcap.pos += 24;
}
