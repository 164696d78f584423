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
/* Shut the EAL down and remove its runtime directory (this process's file
 * prefix under /var/run/dpdk or $XDG_RUNTIME_DIR/dpdk). */
int fh_dpdk_cleanup(void);

/* ------------------------------------------------------------ transmit
 * `feedhandler send` (tx_dpdk.c): frames of a capture, loaded and scheduled
 * by Python before the send, go out on a port at their due times. */

/* What to send.  Frame f is blob[off[f], off[f] + len[f]); it carries msgs[f]
 * messages; stamp_at[f] is where its 16-byte TX stamp trailer goes (the end
 * of its IP datagram, == len[f]), or UINT32_MAX for a frame sent unstamped.
 * The schedule is n entries, in send order: frame order[i] is due at due_ns[i]
 * (ns from the start of the send, non-decreasing); paced == 0 sends as fast
 * as the port takes the frames (due times ignored, nothing counts as late). */
typedef struct fh_tx_plan {
    const uint8_t *blob;
    const uint64_t *off;
    const uint32_t *len;
    const uint32_t *stamp_at;
    const uint32_t *msgs;
    const uint32_t *order;
    const uint64_t *due_ns;
    uint64_t n;
    int32_t paced;
    int32_t stamp;
    uint64_t wait_ns;          /* how long a burst the port does not take (or no free mbuf) is offered
                                * again before its frames count as dropped; 0: 200 us */
} fh_tx_plan_t;

typedef struct fh_tx_stats {
    uint64_t frames;           /* taken by the port */
    uint64_t messages;         /* ... their messages */
    uint64_t bytes;            /* ... their bytes on the wire (trailer and padding included) */
    uint64_t tx_dropped;       /* not taken by the port after the retries (TX ring full) */
    uint64_t nombuf;           /* not sent: no mbuf free after the retries */
    uint64_t late;             /* stamped more than 10 us after their due time (paced only) */
    uint64_t max_late_ns;      /* the latest of them */
    uint64_t bursts;           /* tx bursts */
    uint64_t done;             /* schedule entries handled so far (progress) */
    uint64_t elapsed_ns;       /* start of the send to the last burst */
    uint64_t tsc_hz;
    int32_t stopped;           /* 1: stopped by fh_dpdk_tx_stop before the end */
    int32_t _pad;
} fh_tx_stats_t;

/* Configure and start a port for sending: one TX queue of tx_desc descriptors
 * (adjusted to what the device allows), one small RX queue the sender never
 * polls, a pool of n_mbufs of data_room bytes each.  The EAL comes first
 * (fh_dpdk_eal_init).  `chosen` receives a line saying what was set up. */
int fh_dpdk_tx_port_start(uint16_t port, uint32_t n_mbufs, uint32_t data_room, uint16_t tx_desc, char *chosen,
                          size_t chosen_len, char *err, size_t errlen);
/* The port's MTU (0 when the device does not say). */
uint16_t fh_dpdk_port_mtu(uint16_t port);
/* Whether the port's link is up now: 1 up, 0 down (a memif server before its
 * client connected, a cable out), -1 no such port.  Does not wait. */
int fh_dpdk_link_up(uint16_t port);
/* Send the plan on the port started by fh_dpdk_tx_port_start, busy-waiting on
 * the TSC for each burst's due time, until the end of the schedule or
 * fh_dpdk_tx_stop.  `st` is updated as the send goes (done, frames: progress).
 * 0, or -1 with a message. */
int fh_dpdk_tx_loop(uint16_t port, const fh_tx_plan_t *plan, fh_tx_stats_t *st, char *err, size_t errlen);
/* Ask a running fh_dpdk_tx_loop to stop after the burst in hand (any thread). */
void fh_dpdk_tx_stop(void);
