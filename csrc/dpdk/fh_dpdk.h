/* fh_dpdk.h -- the DPDK source's interface, appended to fh_api.h as the cdef of
 * the second CFFI extension (feedhandler._dpdk).  No preprocessor lines. */

typedef struct fh_dpdk_port_info {
    char name[64];
    char driver[64];
    uint16_t port;
    uint16_t max_rx_queues;
    uint32_t _pad;
} fh_dpdk_port_info_t;

typedef struct fh_dpdk_stats {
    uint64_t ipackets;         /* received by the port (driver count) */
    uint64_t ibytes;
    uint64_t imissed;          /* dropped by the NIC: no room in the RX ring */
    uint64_t ierrors;          /* erroneous packets */
    uint64_t rx_nombuf;        /* no mbuf to receive into */
    uint64_t bursts;           /* rx bursts that returned packets (ours) */
    uint64_t polls;            /* rx bursts (ours) */
    uint64_t multiseg;         /* multi-segment packets skipped (ours) */
} fh_dpdk_stats_t;

/* EAL arguments as one string (split on spaces); once per process.  0, or -1
 * with rte_strerror in err. */
int fh_dpdk_eal_init(const char *args, char *err, size_t errlen);
uint16_t fh_dpdk_port_count(void);
int fh_dpdk_port_info(uint16_t port, fh_dpdk_port_info_t *out);
/* Configure and start a port: n_queues RX queues, a pool of n_mbufs, promiscuous
 * and all-multicast where the device allows.  `chosen` receives a line saying
 * what was set up (for the start-up print). */
int fh_dpdk_port_start(uint16_t port, uint16_t n_queues, uint32_t n_mbufs, char *chosen, size_t chosen_len, char *err,
                       size_t errlen);
/* Busy-poll one RX queue into the replay pipeline of `r` until stopped
 * (fh_lane_stop), `duration_ns` passes (0: no limit) or, when stop_on_eos,
 * every stream seen has ended its session.  RX time = the TSC at burst. */
int fh_dpdk_rx_loop(fh_lane_t *r, uint16_t port, uint16_t queue, uint64_t duration_ns, int stop_on_eos,
                    fh_dpdk_stats_t *ours, char *err, size_t errlen);
/* Steer UDP datagrams to group:udp_port (host byte order) to RX queue `queue`
 * with an rte_flow rule.  0 when installed, 1 when the device cannot (the
 * caller falls back to RSS), -1 with a message on another error. */
int fh_dpdk_flow_steer(uint16_t port, uint32_t group, uint16_t udp_port, uint16_t queue, char *err, size_t errlen);
int fh_dpdk_port_stats(uint16_t port, fh_dpdk_stats_t *out);
void fh_dpdk_port_close(uint16_t port);
int fh_dpdk_cleanup(void);
