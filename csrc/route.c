/* route.c -- a lane's routing, its cold paths (route.h): a UDP destination's
 * protocol told from its first clear datagram, and the PITCH (port, unit)
 * table filled as units appear. */
#include <string.h>

#include "route.h"
#include "session.h"

/* A MoldUDP64 datagram that frames exactly: a heartbeat or end of session of
 * header length, or blocks that fill it. */
static int mold_looks_like(const uint8_t *p, size_t len)
{
    if (len < FH_MOLD_HLEN) return 0;
    const uint32_t count = fh_be16(p + 18);
    if (count == FH_MOLD_HEARTBEAT || count == FH_MOLD_END) return len == FH_MOLD_HLEN;
    size_t off = FH_MOLD_HLEN;
    for (uint32_t i = 0; i < count; i++) {
        if (off + 2 > len) return 0;
        off += 2 + (size_t)fh_be16(p + off);
        if (off > len) return 0;
    }
    return off == len;
}

uint32_t fh_route_protocol_slow(fh_route_t *rt, const fh_udp_view_t *u)
{
    for (uint32_t i = 0; i < rt->n_detected; i++) {
        if (rt->detected[i].ip == u->dst_ip && rt->detected[i].port == u->dst_port) {
            rt->detected_last = i;
            return rt->detected[i].protocol;
        }
    }
    /* Undecided: IEX-TP if it frames as a segment, PITCH if it frames as a
     * sequenced unit, else MoldUDP64 --
     * remembered only once a datagram frames cleanly as one of them, so a
     * malformed first datagram does not decide for the stream. */
    uint32_t proto;
    if (fh_iex_looks_like(u->payload, u->len)) proto = FH_PROTO_IEX;
    else if (fh_pitch_looks_like(u->payload, u->len)) proto = FH_PROTO_PITCH;
    else if (mold_looks_like(u->payload, u->len)) proto = FH_PROTO_MOLD;
    else return FH_PROTO_MOLD;
    if (rt->n_detected < FH_ROUTE_MAX_DETECTED) {
        rt->detected[rt->n_detected].ip = u->dst_ip;
        rt->detected[rt->n_detected].port = u->dst_port;
        rt->detected[rt->n_detected].protocol = (uint8_t)proto;
        rt->detected_last = rt->n_detected++;
    }
    return proto;
}

void fh_route_pitch_unit_remember(fh_route_t *rt, uint16_t port, uint8_t unit, size_t stream)
{
    if (stream + 1 > UINT16_MAX) return;
    uint32_t k = 0;
    while (k < rt->n_pitch_units && rt->pitch_units[k].port != port) k++;
    if (k == rt->n_pitch_units) {
        if (k == FH_ROUTE_PITCH_PORTS) return;
        rt->pitch_units[k].port = port;
        memset(rt->pitch_units[k].stream, 0, sizeof rt->pitch_units[k].stream);
        rt->n_pitch_units++;
    }
    rt->pitch_units[k].stream[unit] = (uint16_t)(stream + 1);
}
