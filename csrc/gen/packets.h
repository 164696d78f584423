/* packets.h -- the packetiser (packets.c): channels and their open packets,
 * flush deadlines and heartbeats as one event queue, sending on lines A and B
 * with loss, pcap records in capture-time order.
 *
 * The message writers (itch_writer.h, pitch_writer.h) run fh_gen_advance
 * before every message and fh_gen_set_ev when a packet opens: both inline. */
#ifndef FH_GEN_PACKETS_H
#define FH_GEN_PACKETS_H

#include <stdint.h>

#include "gen.h"

/* Channels (PITCH: units) with their groups, sessions and locate ranges, each
 * instrument's channel, the event queue, line B's ring; -1 when out of memory. */
int fh_gen_channels(fh_gen_t *g);
/* The pcap file's global header (nanosecond timestamps, Ethernet). */
void fh_gen_pcap_header(fh_gen_t *g);
/* Send channel c's packet (data: mold_count messages; 0: a heartbeat; ITCH
 * 0xFFFF: end of session) stamped `its`, on every line, each with its own
 * loss draw, and start its next one. */
void fh_gen_send(fh_gen_t *g, uint32_t c, uint16_t mold_count, uint64_t its);
/* Write line B frames whose capture time is at most upto. */
void fh_gen_bring_drain(fh_gen_t *g, uint64_t upto);

/* Channel c's next event (flush deadline or heartbeat) is at ev.  The queue's
 * minimum (gmin, at channel garg) is rescanned only when that channel's own
 * event moves later. */
FH_INLINE void fh_gen_set_ev(fh_gen_t *g, uint32_t c, uint64_t ev)
{
    g->ch[c].ev = ev;
    if (ev < g->gmin) {
        g->gmin = ev;
        g->garg = c;
        return;
    }
    if (c != g->garg) return;
    uint64_t m = FH_GEN_INF;
    uint32_t a = 0;
    for (uint32_t k = 0; k < g->nch; k++)
        if (g->ch[k].ev < m) {
            m = g->ch[k].ev;
            a = k;
        }
    g->gmin = m;
    g->garg = a;
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

#endif
