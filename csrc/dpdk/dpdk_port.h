/* dpdk_port.h -- what the receive (src_dpdk.c) and send (tx_dpdk.c) sides of
 * the DPDK extension both do to a port: check it before setting it up, set
 * up its TX queue and start it. */
#ifndef FH_DPDK_PORT_H
#define FH_DPDK_PORT_H

#include <rte_errno.h>
#include <rte_ethdev.h>

#include "../fh_common.h"

/* Port `port` (below max_ports) exists and its device info is in `info`: 0, or
 * -1 with a message saying which. */
FH_INLINE int fh_dpdk_port_checked(uint16_t port, uint16_t max_ports, struct rte_eth_dev_info *info, char *err,
                                   size_t errlen)
{
    if (port >= max_ports || !rte_eth_dev_is_valid_port(port)) {
        fh_errf(err, errlen, "no DPDK port %u (%u available: check the --vdev / -a arguments)", port,
                rte_eth_dev_count_avail());
        return -1;
    }
    const int rc = rte_eth_dev_info_get(port, info);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: cannot read device info: %s", port, rte_strerror(-rc));
        return -1;
    }
    return 0;
}

/* The last steps of a port's set-up, its RX queues configured: TX queue 0 of
 * nb_txd descriptors, then the port started.  0, or -1 with a message. */
FH_INLINE int fh_dpdk_port_tx_and_start(uint16_t port, uint16_t nb_txd, int socket, char *err, size_t errlen)
{
    int rc = rte_eth_tx_queue_setup(port, 0, nb_txd, (unsigned)socket, NULL);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: TX queue setup failed: %s", port, rte_strerror(-rc));
        return -1;
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0) {
        fh_errf(err, errlen, "port %u: start failed: %s", port, rte_strerror(-rc));
        return -1;
    }
    return 0;
}

#endif
