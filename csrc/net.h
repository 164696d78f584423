/* net.h -- Ethernet II / 802.1Q / QinQ / IPv4 / UDP frame parsing.
 *
 * Every length is checked before the bytes it covers are read.  A frame that is
 * not a whole, unfragmented IPv4 UDP datagram is skipped and counted by reason;
 * IP and UDP checksums are not verified (the NIC does that, and a capture of a
 * feed almost never carries bad ones). */
#ifndef FH_NET_H
#define FH_NET_H

#include "fh_common.h"

#define FH_ETH_HLEN 14
#define FH_VLAN_HLEN 4
#define FH_MAX_VLAN_TAGS 2
#define FH_ETHERTYPE_IPV4 0x0800
#define FH_ETHERTYPE_ARP 0x0806
#define FH_ETHERTYPE_IPV6 0x86DD
#define FH_ETHERTYPE_VLAN 0x8100
#define FH_ETHERTYPE_QINQ 0x88A8
#define FH_ETHERTYPE_QINQ_OLD 0x9100

typedef struct fh_udp_view {
    const uint8_t *payload;
    uint32_t len;          /* UDP payload bytes */
    uint32_t src_ip;       /* host order */
    uint32_t dst_ip;       /* host order */
    uint16_t src_port;
    uint16_t dst_port;
} fh_udp_view_t;

/* Returns 1 and fills `u` for a UDP datagram; 0 after counting why not in errors[]. */
FH_INLINE int fh_net_parse(const uint8_t *f, size_t len, fh_udp_view_t *u, uint64_t *errors)
{
    if (FH_UNLIKELY(len < FH_ETH_HLEN)) {
        errors[FH_ERR_ETH_TRUNCATED]++;
        return 0;
    }
    size_t off = 12;
    uint16_t et = fh_be16(f + off);
    off += 2;
    for (int tags = 0; et == FH_ETHERTYPE_VLAN || et == FH_ETHERTYPE_QINQ || et == FH_ETHERTYPE_QINQ_OLD; tags++) {
        if (FH_UNLIKELY(tags == FH_MAX_VLAN_TAGS || len < off + FH_VLAN_HLEN)) {
            errors[FH_ERR_VLAN_TRUNCATED]++;
            return 0;
        }
        et = fh_be16(f + off + 2);   /* skip the TCI */
        off += FH_VLAN_HLEN;
    }
    if (FH_UNLIKELY(et != FH_ETHERTYPE_IPV4)) {
        errors[et == FH_ETHERTYPE_ARP ? FH_ERR_ARP : et == FH_ETHERTYPE_IPV6 ? FH_ERR_IPV6 : FH_ERR_ETHERTYPE_OTHER]++;
        return 0;
    }
    const uint8_t *ip = f + off;
    const size_t avail = len - off;
    if (FH_UNLIKELY(avail < 20)) {
        errors[FH_ERR_IP_TRUNCATED]++;
        return 0;
    }
    if (FH_UNLIKELY((ip[0] >> 4) != 4)) {
        errors[FH_ERR_IP_BAD_VERSION]++;
        return 0;
    }
    const size_t ihl = (size_t)(ip[0] & 0x0F) * 4;
    if (FH_UNLIKELY(ihl < 20 || ihl > avail)) {
        errors[FH_ERR_IP_BAD_HDR_LEN]++;
        return 0;
    }
    const size_t tot = fh_be16(ip + 2);
    /* Ethernet pads short frames, so the frame may be longer than the datagram. */
    if (FH_UNLIKELY(tot < ihl || tot > avail)) {
        errors[FH_ERR_IP_BAD_TOTAL_LEN]++;
        return 0;
    }
    if (FH_UNLIKELY(fh_be16(ip + 6) & 0x3FFF)) {
        errors[FH_ERR_IP_FRAGMENT]++;
        return 0;
    }  /* MF | offset */
    if (FH_UNLIKELY(ip[9] != 17)) {
        errors[FH_ERR_IP_NOT_UDP]++;
        return 0;
    }
    const uint8_t *udp = ip + ihl;
    const size_t ulen_avail = tot - ihl;
    if (FH_UNLIKELY(ulen_avail < 8)) {
        errors[FH_ERR_UDP_TRUNCATED]++;
        return 0;
    }
    const size_t ulen = fh_be16(udp + 4);
    if (FH_UNLIKELY(ulen < 8 || ulen > ulen_avail)) {
        errors[FH_ERR_UDP_BAD_LEN]++;
        return 0;
    }
    u->payload = udp + 8;
    u->len = (uint32_t)(ulen - 8);
    u->src_ip = fh_be32(ip + 12);
    u->dst_ip = fh_be32(ip + 16);
    u->src_port = fh_be16(udp);
    u->dst_port = fh_be16(udp + 2);
    return 1;
}

#endif
