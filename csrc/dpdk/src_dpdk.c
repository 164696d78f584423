/* src_dpdk.c -- kernel-bypass receive: EAL, ports, queues, and the burst loop
 * that feeds the same pipeline as replay mode (engine.h).
 *
 * Shape of the DPDK examples (skeleton, l2fwd): port_init / the lcore's burst
 * loop / stats on the control thread.  rte_eth_rx_burst and the mbuf
 * accessors are static inline, so they are called from here, never through
 * the FFI; Python is never called per packet. */
#define _GNU_SOURCE
/* rte_eth_read_clock (the device clock behind hardware receive timestamps). */
#define ALLOW_EXPERIMENTAL_API
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>

#include "../pipeline.h"
#include "dpdk_port.h"
#include "fh_dpdk.h"
#include "hw_clock.h"

#ifndef FH_BURST
#define FH_BURST 32
#endif
#define FH_RX_RING 1024
#define FH_MAX_PORTS 32
#define FH_MAX_ARGS 64

static int eal_ready;
static struct rte_mempool *pools[FH_MAX_PORTS];

/* Hardware receive timestamps: on for a port that offers the offload and can
 * read its own clock (rte_eth_read_clock), so that a stamp in device ticks
 * converts to the TSC clock (hw_clock.h: exact integer arithmetic from an
 * anchor and a scale), the anchor taken again every 1024 polls against drift.
 * Elsewhere (virtual devices, most NICs without PTP set-up) the TSC at each
 * burst. */
typedef struct hw_clock {
    int on;
    int offset;                     /* of the timestamp dynfield in an mbuf */
    uint64_t flag;                  /* ol_flags bit: this mbuf's stamp is valid */
    fh_hw_clock_t conv;             /* scale measured at port start; anchor per queue */
} hw_clock_t;
static hw_clock_t hw[FH_MAX_PORTS];

/* Measure the device's ns per tick into c over 20 ms of CLOCK_MONOTONIC; 1
 * when measured, 0 when the device cannot read its clock or the interval gives
 * no scale (a clock that stood still or went backwards). */
static int device_scale(uint16_t port, fh_hw_clock_t *c)
{
    uint64_t d0, d1;
    if (rte_eth_read_clock(port, &d0) != 0) return 0;
    const uint64_t m0 = fh_clock_ns(CLOCK_MONOTONIC);
    rte_delay_ms(20);
    if (rte_eth_read_clock(port, &d1) != 0) return 0;
    return fh_hw_clock_scale(c, d1 - d0, fh_clock_ns(CLOCK_MONOTONIC) - m0);
}

/* Turn hardware stamps on for a started port whose device offered them
 * (asked in its configuration); 1 when on. */
static int hw_clock_start(uint16_t port)
{
    hw_clock_t *h = &hw[port];
    memset(h, 0, sizeof *h);
    if (rte_mbuf_dyn_rx_timestamp_register(&h->offset, &h->flag) != 0) return 0;
    h->on = device_scale(port, &h->conv);
    return h->on;
}

/* A fresh (device clock, TSC ns) anchor in a queue's own copy of its port's
 * clock; off if the clock stopped answering. */
static void hw_clock_anchor(hw_clock_t *h, fh_lane_t *r, uint16_t port)
{
    uint64_t dev;
    if (rte_eth_read_clock(port, &dev) != 0) {
        h->on = 0;
        return;
    }
    fh_hw_clock_anchor(&h->conv, dev, fh_pipe_clock_ns(r));
}

int fh_dpdk_eal_init(const char *args, char *err, size_t errlen)
{
    if (eal_ready) {
        fh_errf(err, errlen, "the DPDK EAL is already initialised in this process");
        return -1;
    }
    char *copy = strdup(args ? args : "");
    if (!copy) {
        fh_errf(err, errlen, "out of memory");
        return -1;
    }
    char *argv[FH_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"feedhandler";
    for (char *save = NULL, *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (argc == FH_MAX_ARGS) {
            free(copy);
            fh_errf(err, errlen, "more than %d EAL arguments", FH_MAX_ARGS - 1);
            return -1;
        }
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    /* rte_eal_init keeps pointers into argv: the copy stays allocated for the
     * life of the process (once per process, by design). */
    const int rc = rte_eal_init(argc, argv);
    if (rc < 0) {
        fh_errf(err, errlen, "DPDK EAL init failed: %s (arguments: %s)", rte_strerror(rte_errno), args ? args : "");
        return -1;
    }
    eal_ready = 1;
    return 0;
}

uint16_t fh_dpdk_port_count(void) { return eal_ready ? rte_eth_dev_count_avail() : 0; }

int fh_dpdk_port_info(uint16_t port, fh_dpdk_port_info_t *out)
{
    memset(out, 0, sizeof *out);
    if (!eal_ready || !rte_eth_dev_is_valid_port(port)) return -1;
    struct rte_eth_dev_info info;
    if (rte_eth_dev_info_get(port, &info) != 0) return -1;
    rte_eth_dev_get_name_by_port(port, out->name);
    snprintf(out->driver, sizeof out->driver, "%s", info.driver_name ? info.driver_name : "?");
    out->port = port;
    out->max_rx_queues = info.max_rx_queues;
    return 0;
}

int fh_dpdk_port_start(uint16_t port, uint16_t n_queues, uint32_t n_mbufs, char *chosen, size_t chosen_len, char *err,
                       size_t errlen)
{
    if (!eal_ready) {
        fh_errf(err, errlen, "the DPDK EAL is not initialised");
        return -1;
    }
    struct rte_eth_dev_info info;
    if (fh_dpdk_port_checked(port, FH_MAX_PORTS, &info, err, errlen) != 0) return -1;
    int rc;
    if (n_queues < 1 || n_queues > info.max_rx_queues) {
        fh_errf(err, errlen, "port %u (%s) offers %u RX queues, %u asked", port, info.driver_name, info.max_rx_queues,
                n_queues);
        return -1;
    }
    char pname[RTE_MEMPOOL_NAMESIZE];
    snprintf(pname, sizeof pname, "fh_mbufs_%u", port);
    if (!pools[port]) {
        pools[port] = rte_pktmbuf_pool_create(pname, n_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              (int)rte_eth_dev_socket_id(port) < 0 ? (int)rte_socket_id()
                                                                                   : rte_eth_dev_socket_id(port));
        if (!pools[port]) {
            fh_errf(err, errlen,
                    "port %u: cannot create a pool of %u mbufs: %s (give the EAL more memory, -m, or "
                    "ask for fewer mbufs)",
                    port, n_mbufs, rte_strerror(rte_errno));
            return -1;
        }
    }
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    const int want_stamps = (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) != 0;
    if (want_stamps) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
    const char *steer = "one queue";
    if (n_queues > 1 && (info.flow_type_rss_offloads & RTE_ETH_RSS_IP)) {
        /* RSS on the IP addresses: each multicast group lands on one queue. */
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_IP & info.flow_type_rss_offloads;
        steer = "RSS on IP addresses";
    } else if (n_queues > 1) {
        steer = "no RSS on this device: queues beyond the first stay empty";
    }
    rc = rte_eth_dev_configure(port, n_queues, 1, &conf);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: configure failed: %s", port, rte_strerror(-rc));
        return -1;
    }
    uint16_t nb_rxd = FH_RX_RING, nb_txd = 256;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
    for (uint16_t q = 0; q < n_queues; q++) {
        rc = rte_eth_rx_queue_setup(port, q, nb_rxd, rte_eth_dev_socket_id(port), NULL, pools[port]);
        if (rc != 0) {
            fh_errf(err, errlen, "port %u: RX queue %u setup failed: %s", port, q, rte_strerror(-rc));
            return -1;
        }
    }
    if (fh_dpdk_port_tx_and_start(port, nb_txd, rte_eth_dev_socket_id(port), err, errlen) != 0) return -1;
    /* Multicast reception: promiscuous where the device allows, else all-multicast. */
    const char *mc = "promiscuous";
    if (rte_eth_promiscuous_enable(port) != 0) {
        mc = rte_eth_allmulticast_enable(port) == 0 ? "all-multicast" : "neither promiscuous nor all-multicast";
    }
    const char *stamps = "TSC at each burst (the port has no hardware receive timestamps)";
    if (want_stamps)
        stamps = hw_clock_start(port) ? "the port's hardware receive timestamps, on the TSC clock"
                                      : "TSC at each burst (the port stamps packets but cannot read its clock)";
    if (chosen)
        snprintf(chosen, chosen_len,
                 "port %u (%s, %s): %u RX queue(s) of %u descriptors, %u mbufs, %s, steering: %s, rx time: %s", port,
                 info.driver_name, info.device ? rte_dev_name(info.device) : "?", n_queues, nb_rxd, n_mbufs, mc, steer,
                 stamps);
    return 0;
}

static void nic_counters(fh_lane_t *r, uint16_t port)
{
    struct rte_eth_stats s;
    if (rte_eth_stats_get(port, &s) != 0) return;
    fh_pipe_nic_counters(r, s.imissed, s.ierrors, s.rx_nombuf);
}

/* Frames of a burst prefetched ahead of the one being decoded. */
#ifndef FH_RX_PREFETCH
#define FH_RX_PREFETCH 4
#endif

int fh_dpdk_rx_loop(fh_lane_t *r, uint16_t port, uint16_t queue, uint64_t duration_ns, int stop_on_eos,
                    fh_dpdk_stats_t *ours, char *err, size_t errlen)
{
    if (!eal_ready || port >= FH_MAX_PORTS || !pools[port]) {
        fh_errf(err, errlen, "port %u is not started", port);
        return -1;
    }
    /* A thread of ours polling a queue: give it an lcore id, so the mbuf
     * pool's per-lcore cache serves it like an EAL lcore. */
    if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() != 0) {
        fh_errf(err, errlen, "cannot register the polling thread with DPDK: %s", rte_strerror(rte_errno));
        return -1;
    }
    struct rte_mbuf *burst[FH_BURST];
    fh_dpdk_stats_t st;
    memset(&st, 0, sizeof st);
    const uint64_t t0 = fh_pipe_clock_ns(r);
    const uint64_t start = fh_clock_ns(CLOCK_MONOTONIC);
    /* This queue's copy of the port's clock (queues poll on their own threads). */
    hw_clock_t clock = hw[port];
    hw_clock_t *const h = &clock;
    if (h->on) hw_clock_anchor(h, r, port);
    for (uint32_t tick = 1;; tick++) {
        const uint16_t n = rte_eth_rx_burst(port, queue, burst, FH_BURST);
        st.polls++;
        if (n) {
            st.bursts++;
            /* One RX stamp per burst: the TSC, converted to ns since the epoch. */
            const uint64_t rx = fh_pipe_clock_ns(r);
            fh_pipe_burst(r, rx);                /* latency counts from the burst */
            /* The burst's frames are in memory another core (the driver, the
             * peer process) just wrote: ask for the first lines of the next
             * few ahead of decoding them. */
            for (uint16_t i = 0; i < n && i < FH_RX_PREFETCH; i++) rte_prefetch0(rte_pktmbuf_mtod(burst[i], void *));
            for (uint16_t i = 0; i < n; i++) {
                struct rte_mbuf *m = burst[i];
                if (i + FH_RX_PREFETCH < n) {
                    const uint8_t *ahead = rte_pktmbuf_mtod(burst[i + FH_RX_PREFETCH], const uint8_t *);
                    rte_prefetch0(ahead);
                    rte_prefetch0(ahead + RTE_CACHE_LINE_SIZE);
                }
                uint64_t when = rx;
                if (h->on && (m->ol_flags & h->flag)) {
                    when = fh_hw_clock_ns(&h->conv, *RTE_MBUF_DYNFIELD(m, h->offset, const uint64_t *));
                    fh_pipe_rx_stamp(r, when);
                }
                if (FH_UNLIKELY(m->nb_segs != 1)) st.multiseg++;
                else fh_pipe_frame(r, rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), when);
            }
            /* Back to the pool in one go: one mempool put for the burst. */
            rte_pktmbuf_free_bulk(burst, n);
            /* After every burst (its mbufs freed): the counters when due, on
             * the publish time the burst read, and the stop flag. */
            if (FH_UNLIKELY(fh_pipe_next(r))) break;
        }
        /* The cheap checks, every 1024 polls whether busy or idle; the NIC's
         * own drop counters join ours (and the published counters) here. */
        if (FH_UNLIKELY((tick & 1023) == 0)) {
            if (queue == 0) nic_counters(r, port);
            if (h->on) hw_clock_anchor(h, r, port);
            /* Live receive time moves on when nothing arrives: gap windows and
             * silence expire on the clock, not only on the next packet. */
            fh_pipe_idle(r, fh_pipe_clock_ns(r));
            if (fh_pipe_should_stop(r)) break;
            if (duration_ns && fh_clock_ns(CLOCK_MONOTONIC) - start >= duration_ns) break;
            if (stop_on_eos && fh_pipe_all_ended(r)) break;
        }
    }
    if (queue == 0) nic_counters(r, port);
    fh_pipe_elapsed(r, fh_pipe_clock_ns(r) - t0);
    if (ours) *ours = st;
    return 0;
}

int fh_dpdk_flow_steer(uint16_t port, uint32_t group, uint16_t udp_port, uint16_t queue, char *err, size_t errlen)
{
    if (!eal_ready || !rte_eth_dev_is_valid_port(port)) {
        fh_errf(err, errlen, "no DPDK port %u", port);
        return -1;
    }
    struct rte_flow_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.ingress = 1;
    struct rte_flow_item_ipv4 ip_spec, ip_mask;
    memset(&ip_spec, 0, sizeof ip_spec);
    memset(&ip_mask, 0, sizeof ip_mask);
    ip_spec.hdr.dst_addr = rte_cpu_to_be_32(group);
    ip_mask.hdr.dst_addr = UINT32_MAX;
    struct rte_flow_item_udp udp_spec, udp_mask;
    memset(&udp_spec, 0, sizeof udp_spec);
    memset(&udp_mask, 0, sizeof udp_mask);
    udp_spec.hdr.dst_port = rte_cpu_to_be_16(udp_port);
    udp_mask.hdr.dst_port = UINT16_MAX;
    struct rte_flow_item pattern[] = {
        {.type = RTE_FLOW_ITEM_TYPE_ETH},
        {.type = RTE_FLOW_ITEM_TYPE_IPV4, .spec = &ip_spec, .mask = &ip_mask},
        {.type = RTE_FLOW_ITEM_TYPE_UDP, .spec = &udp_spec, .mask = &udp_mask},
        {.type = RTE_FLOW_ITEM_TYPE_END},
    };
    struct rte_flow_action_queue to = {.index = queue};
    struct rte_flow_action actions[] = {
        {.type = RTE_FLOW_ACTION_TYPE_QUEUE, .conf = &to},
        {.type = RTE_FLOW_ACTION_TYPE_END},
    };
    struct rte_flow_error fe;
    memset(&fe, 0, sizeof fe);
    if (rte_flow_validate(port, &attr, pattern, actions, &fe) != 0) return 1;
    if (!rte_flow_create(port, &attr, pattern, actions, &fe)) {
        fh_errf(err, errlen, "port %u: rte_flow rule for group %u.%u.%u.%u:%u failed: %s", port, group >> 24,
                (group >> 16) & 255, (group >> 8) & 255, group & 255, udp_port, fe.message ? fe.message : "?");
        return -1;
    }
    return 0;
}

int fh_dpdk_port_stats(uint16_t port, fh_dpdk_stats_t *out)
{
    memset(out, 0, sizeof *out);
    struct rte_eth_stats s;
    if (!eal_ready || rte_eth_stats_get(port, &s) != 0) return -1;
    out->ipackets = s.ipackets;
    out->ibytes = s.ibytes;
    out->imissed = s.imissed;
    out->ierrors = s.ierrors;
    out->rx_nombuf = s.rx_nombuf;
    return 0;
}

void fh_dpdk_port_close(uint16_t port)
{
    if (!eal_ready || !rte_eth_dev_is_valid_port(port)) return;
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
}

/* The EAL's runtime directory (/var/run/dpdk/PREFIX as root: its config and
 * memory-map files, ~6.5 MB a process with --no-huge) outlives the process:
 * on a host where /run is a tmpfs every run would leave that much RAM behind.
 * A primary process owns its prefix (a second primary on it is refused), so
 * once the EAL is down its files and the directory go. */
static void remove_runtime_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char path[4096];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int fh_dpdk_cleanup(void)
{
    if (!eal_ready) return 0;
    eal_ready = 0;
    char dir[4096] = "";
    if (rte_eal_process_type() == RTE_PROC_PRIMARY) snprintf(dir, sizeof dir, "%s", rte_eal_get_runtime_dir());
    const int rc = rte_eal_cleanup();
    if (dir[0]) remove_runtime_dir(dir);
    return rc;
}
