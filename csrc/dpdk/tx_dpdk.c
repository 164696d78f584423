/* tx_dpdk.c -- `feedhandler send`: the frames of a capture onto a DPDK port at
 * their due times.
 *
 * Python loads the capture, works out each frame's due time (pacing, bursts,
 * loss and lag injection) and hands over one plan (fh_dpdk.h, fh_tx_plan_t);
 * this file owns the port's TX side and the send loop.  The loop busy-waits on
 * the TSC for the first due frame, takes every frame due by then (up to a
 * burst), copies them into mbufs allocated in bulk from the pool made at start,
 * stamps them with the TSC read just before rte_eth_tx_burst, and retries what
 * the port did not take for a bounded time before counting it as dropped.  No
 * syscall, allocation or print inside the loop: rte_eth_tx_burst and the mbuf
 * calls are static inline, called from here, never through the FFI. */
#define _GNU_SOURCE
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#include "../fh_common.h"
#include "dpdk_port.h"
#include "fh_dpdk.h"

#define TX_BURST 32
#define TX_MAX_PORTS 32
#define TX_RX_DESC 64           /* the RX queue every port needs; the sender never polls it */
#define TX_RETRY_NS 200000      /* how long a burst's remainder is offered again before it counts as dropped */
#define TX_LATE_NS 10000        /* a frame stamped later than this after its due time is late */
#define TX_MIN_FRAME 60         /* the Ethernet minimum, FCS excluded */

static struct rte_mempool *tx_pools[TX_MAX_PORTS];
static int tx_stop_flag;

void fh_dpdk_tx_stop(void) { __atomic_store_n(&tx_stop_flag, 1, __ATOMIC_RELAXED); }

static int tx_stopping(void) { return __atomic_load_n(&tx_stop_flag, __ATOMIC_RELAXED); }

uint16_t fh_dpdk_port_mtu(uint16_t port)
{
    uint16_t mtu = 0;
    if (!rte_eth_dev_is_valid_port(port) || rte_eth_dev_get_mtu(port, &mtu) != 0) return 0;
    return mtu;
}

int fh_dpdk_tx_port_start(uint16_t port, uint32_t n_mbufs, uint32_t data_room, uint16_t tx_desc, char *chosen,
                          size_t chosen_len, char *err, size_t errlen)
{
    struct rte_eth_dev_info info;
    if (fh_dpdk_port_checked(port, TX_MAX_PORTS, &info, err, errlen) != 0) return -1;
    int rc;
    if (info.max_tx_queues < 1) {
        fh_errf(err, errlen, "port %u (%s) has no TX queue", port, info.driver_name);
        return -1;
    }
    const int socket = rte_eth_dev_socket_id(port) < 0 ? (int)rte_socket_id() : rte_eth_dev_socket_id(port);
    if (!tx_pools[port]) {
        char pname[RTE_MEMPOOL_NAMESIZE];
        snprintf(pname, sizeof pname, "fh_tx_%u", port);
        const uint32_t room = data_room + RTE_PKTMBUF_HEADROOM;
        if (room > UINT16_MAX) {
            fh_errf(err, errlen, "port %u: frames of %u bytes do not fit an mbuf", port, data_room);
            return -1;
        }
        tx_pools[port] = rte_pktmbuf_pool_create(pname, n_mbufs, 256, 0, (uint16_t)room, socket);
        if (!tx_pools[port]) {
            fh_errf(err, errlen,
                    "port %u: cannot create a pool of %u mbufs of %u bytes: %s (give the EAL more memory, -m, "
                    "or ask for fewer mbufs)",
                    port, n_mbufs, room, rte_strerror(rte_errno));
            return -1;
        }
    }
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    rc = rte_eth_dev_configure(port, 1, 1, &conf);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: configure failed: %s", port, rte_strerror(-rc));
        return -1;
    }
    uint16_t nb_rxd = TX_RX_DESC, nb_txd = tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
    if ((uint64_t)nb_rxd + nb_txd + 2 * TX_BURST > n_mbufs) {
        fh_errf(err, errlen, "port %u: %u mbufs cannot fill %u RX and %u TX descriptors and a burst", port, n_mbufs,
                nb_rxd, nb_txd);
        return -1;
    }
    rc = rte_eth_rx_queue_setup(port, 0, nb_rxd, socket, NULL, tx_pools[port]);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: RX queue setup failed: %s", port, rte_strerror(-rc));
        return -1;
    }
    if (fh_dpdk_port_tx_and_start(port, nb_txd, socket, err, errlen) != 0) return -1;
    __atomic_store_n(&tx_stop_flag, 0, __ATOMIC_RELAXED);
    if (chosen)
        snprintf(chosen, chosen_len, "port %u (%s, %s): 1 TX queue of %u descriptors, %u mbufs of %u bytes", port,
                 info.driver_name, info.device ? rte_dev_name(info.device) : "?", nb_txd, n_mbufs, data_room);
    return 0;
}

int fh_dpdk_link_up(uint16_t port)
{
    struct rte_eth_link link;
    if (!rte_eth_dev_is_valid_port(port) || rte_eth_link_get_nowait(port, &link) != 0) return -1;
    return link.link_status == RTE_ETH_LINK_UP;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int fh_dpdk_tx_loop(uint16_t port, const fh_tx_plan_t *plan, fh_tx_stats_t *st, char *err, size_t errlen)
{
    if (port >= TX_MAX_PORTS || !tx_pools[port]) {
        fh_errf(err, errlen, "port %u is not started for sending", port);
        return -1;
    }
    /* A thread of ours sending: give it an lcore id, so the pool's per-lcore
     * cache serves it like an EAL lcore. */
    if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() != 0) {
        fh_errf(err, errlen, "cannot register the sending thread with DPDK: %s", rte_strerror(rte_errno));
        return -1;
    }
    struct rte_mempool *pool = tx_pools[port];
    const uint64_t hz = rte_get_tsc_hz();
    const double tpn = (double)hz / 1e9; /* TSC ticks per ns */
    const uint64_t late_ticks = (uint64_t)(TX_LATE_NS * tpn),
                   retry_ticks = (uint64_t)((plan->wait_ns ? (double)plan->wait_ns : TX_RETRY_NS) * tpn);
    const uint64_t n = plan->n;
    const int paced = plan->paced != 0, stamp = plan->stamp != 0;
    fh_tx_stats_t s;
    memset(&s, 0, sizeof s);
    s.tsc_hz = hz;
    *st = s;
    struct rte_mbuf *m[TX_BURST];
    uint32_t wire[TX_BURST];
    uint64_t due[TX_BURST];
    uint32_t counter = 0; /* the trailer's frame counter: every frame offered to the port */
    const uint64_t t0 = rte_rdtsc();
    uint64_t end = t0;
    uint64_t i = 0;
    while (i < n) {
        if (FH_UNLIKELY(tx_stopping())) {
            s.stopped = 1;
            break;
        }
        uint64_t now = rte_rdtsc();
        if (paced) {
            const uint64_t first = t0 + (uint64_t)((double)plan->due_ns[i] * tpn);
            if (now < first) {
                while ((now = rte_rdtsc()) < first && !tx_stopping()) rte_pause();
                continue; /* the stop flag first, then the burst */
            }
        }
        /* The burst: every frame due by now, up to TX_BURST. */
        uint32_t k = 0;
        do {
            due[k] = paced ? t0 + (uint64_t)((double)plan->due_ns[i + k] * tpn) : 0;
            if (k && due[k] > now) break;
            k++;
        } while (k < TX_BURST && i + k < n);
        int got = rte_pktmbuf_alloc_bulk(pool, m, k);
        for (uint64_t t = rte_rdtsc(); got != 0 && rte_rdtsc() - t < retry_ticks && !tx_stopping();) {
            rte_pause();
            got = rte_pktmbuf_alloc_bulk(pool, m, k);
        }
        if (FH_UNLIKELY(got != 0)) {
            s.nombuf += k;
            counter += k;
            i += k;
            __atomic_store_n(&st->done, i, __ATOMIC_RELAXED);
            continue;
        }
        for (uint32_t j = 0; j < k; j++) {
            const uint32_t f = plan->order[i + j];
            const uint8_t *src = plan->blob + plan->off[f];
            uint8_t *p = rte_pktmbuf_mtod(m[j], uint8_t *);
            const uint32_t at = plan->stamp_at[f];
            uint32_t len = plan->len[f];
            if (stamp && at != UINT32_MAX) {
                memcpy(p, src, at);
                put_le32(p + at, FH_WIRE_STAMP_MAGIC);
                put_le32(p + at + 4, counter);
                len = at + FH_WIRE_STAMP_LEN;
                if (len < TX_MIN_FRAME) {
                    memset(p + len, 0, TX_MIN_FRAME - len);
                    len = TX_MIN_FRAME;
                }
            } else {
                memcpy(p, src, len);
            }
            counter++;
            m[j]->data_len = (uint16_t)len;
            m[j]->pkt_len = len;
            wire[j] = len;
        }
        const uint64_t ts = rte_rdtsc();
        if (stamp)
            for (uint32_t j = 0; j < k; j++) {
                const uint32_t at = plan->stamp_at[plan->order[i + j]];
                if (at != UINT32_MAX) put_le64(rte_pktmbuf_mtod(m[j], uint8_t *) + at + 8, ts);
            }
        uint16_t sent = rte_eth_tx_burst(port, 0, m, (uint16_t)k);
        for (uint64_t t = ts; sent < k && rte_rdtsc() - t < retry_ticks && !tx_stopping();)
            sent += rte_eth_tx_burst(port, 0, m + sent, (uint16_t)(k - sent));
        if (FH_UNLIKELY(sent < k)) {
            rte_pktmbuf_free_bulk(m + sent, k - sent);
            s.tx_dropped += k - sent;
        }
        for (uint32_t j = 0; j < sent; j++) {
            s.frames++;
            s.messages += plan->msgs[plan->order[i + j]];
            s.bytes += wire[j];
            if (paced && ts > due[j] + late_ticks) {
                s.late++;
                const uint64_t late = (uint64_t)((double)(ts - due[j]) / tpn);
                if (late > s.max_late_ns) s.max_late_ns = late;
            }
        }
        s.bursts++;
        i += k;
        end = ts;
        /* Progress for the control thread (aligned stores: read whole). */
        __atomic_store_n(&st->done, i, __ATOMIC_RELAXED);
        __atomic_store_n(&st->frames, s.frames, __ATOMIC_RELAXED);
        __atomic_store_n(&st->messages, s.messages, __ATOMIC_RELAXED);
    }
    s.done = i;
    s.elapsed_ns = (uint64_t)((double)(end - t0) / tpn);
    *st = s;
    return 0;
}
