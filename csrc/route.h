/* route.h -- a lane's routing: which frames are its own, and what they carry.
 *
 * The part of a lane (fh_lane_t.route) that steers a datagram before the
 * session layer sees it: this lane's share of the input, the configured
 * channel lines (group, port, lane, protocol, venue, re-request server,
 * snapshot recovery), the protocol of each UDP destination told from its
 * first datagrams when there is no config, the venues and their PITCH symbol
 * maps, and the direct (port, unit) -> stream lookup of PITCH units.  Filled
 * at start-up (fh_lane_add_line, fh_lane_set_venue, ...), read per frame by
 * fh_pipe_frame (pipeline.h); written on the hot path only by its last-hit
 * caches. */
#ifndef FH_ROUTE_H
#define FH_ROUTE_H

#include "iex.h"
#include "mold.h"
#include "net.h"
#include "pitch.h"

#define FH_ROUTE_MAX_LINES 64u
#define FH_ROUTE_MAX_VENUES 8u
#define FH_ROUTE_PITCH_PORTS 4u
#define FH_ROUTE_MAX_DETECTED 64u
#define FH_ROUTE_VENUE_NONE 0xFFu

/* A configured channel line: datagrams to group:port belong to `lane`. */
typedef struct fh_route_line {
    uint32_t group;                 /* multicast group (host order) */
    uint16_t port;
    uint16_t lane;
    uint32_t rerequest_ip;          /* its re-request server (host order), 0 = the lane's default */
    uint16_t rerequest_port;
    uint8_t protocol;              /* FH_PROTO_MOLD, FH_PROTO_PITCH or FH_PROTO_IEX */
    uint8_t venue;                 /* index in venue_names */
} fh_route_line_t;

/* A UDP destination's protocol, told from its first clear datagram. */
typedef struct fh_route_detected {
    uint32_t ip;
    uint16_t port;
    uint8_t protocol;
    uint8_t _pad;
} fh_route_detected_t;

/* A PITCH port's units: stream index + 1 per unit, 0 = not seen yet.  A
 * feed's units take turns packet by packet, so the stream table's last-hit
 * cache would miss on most of them. */
typedef struct fh_route_pitch_port {
    uint16_t port;
    uint16_t stream[256];
} fh_route_pitch_port_t;

typedef struct fh_route {
    /* This lane's share of the input (see fh_lane_new). */
    uint32_t lane, n_lanes;
    uint32_t own_all;               /* steered upstream (a NIC queue per lane): keep every frame seen */
    /* Configured channel lines (0: steer by stream order). */
    uint32_t n_lines;
    uint32_t line_last;             /* last line matched: datagrams come in runs */
    fh_route_line_t lines[FH_ROUTE_MAX_LINES];
    /* Without a config: each UDP destination's protocol (fh_route_protocol); the
     * same in every lane, which sees every frame. */
    fh_route_detected_t detected[FH_ROUTE_MAX_DETECTED];
    uint32_t n_detected, detected_last;
    /* Venues: index 0 the ITCH venue (XNAS unless configured), then the PITCH
     * and IEX venues; pitch_rank: a venue's rank among the PITCH and IEX venues
     * (their instrument id ranges, pitch.h). */
    uint32_t n_venues;
    char venue_names[FH_ROUTE_MAX_VENUES][8];
    uint8_t venue_protocol[FH_ROUTE_MAX_VENUES], pitch_rank[FH_ROUTE_MAX_VENUES];
    uint8_t pitch_default_venue;   /* venue of PITCH streams without a config */
    uint8_t iex_default_venue;     /* venue of IEX streams without a config (IEXG, added when IEX-TP is first
                                    * seen): FH_ROUTE_VENUE_NONE before */
    fh_route_pitch_port_t pitch_units[FH_ROUTE_PITCH_PORTS];
    uint32_t n_pitch_units;
    uint32_t venues_seen;           /* venues of this lane's streams (bit i: venue i) */
    uint32_t consolidate;           /* consolidate once two venues are seen (fh_lane_set_consolidate 1) */
    fh_pitch_ids_t pitch_ids;       /* PITCH symbol -> instrument id (this lane's units) */
    uint32_t rerequest_ip;          /* default re-request server (host order), 0 = none */
    uint16_t rerequest_port;
    /* Snapshot recovery: for every stream, else for the lines with bit i set. */
    uint32_t recover_all;
    uint64_t recovery_lines;
} fh_route_t;

/* The protocol of a UDP destination without a config: told once from its
 * first datagram that is clearly one or the other (route.c), then cached. */
uint32_t fh_route_protocol_slow(fh_route_t *rt, const fh_udp_view_t *u);
FH_INLINE uint32_t fh_route_protocol(fh_route_t *rt, const fh_udp_view_t *u)
{
    const uint32_t i = rt->detected_last;
    if (FH_LIKELY(i < rt->n_detected && rt->detected[i].ip == u->dst_ip && rt->detected[i].port == u->dst_port))
        return rt->detected[i].protocol;
    return fh_route_protocol_slow(rt, u);
}

/* The slot of PITCH unit `unit` on `port` (stream index + 1, 0 = not seen
 * yet), or NULL when the port is not in the table. */
FH_INLINE uint16_t *fh_route_pitch_unit(fh_route_t *rt, uint16_t port, uint8_t unit)
{
    for (uint32_t k = 0; k < rt->n_pitch_units; k++)
        if (rt->pitch_units[k].port == port) return &rt->pitch_units[k].stream[unit];
    return NULL;
}

/* Remember the stream (its index) of a PITCH (port, unit) for the direct
 * lookup (cold: once per unit, or per packet of a fifth port, which the
 * stream table serves). */
void fh_route_pitch_unit_remember(fh_route_t *rt, uint16_t port, uint8_t unit, size_t stream);

#endif
