/* `ordo member`: add or remove a sequencer of a running group. */
#ifndef ORDO_CMD_MEMBER_H
#define ORDO_CMD_MEMBER_H

#include <stdint.h>

#include "config/config.h"
#include "dataplane/dp.h"

int member_main(int argc, char **argv);

/* The operator tools' transport (`ordo member`, `ordo group`): kernel UDP
 * on the first node address this host holds, else on any address (a DPDK
 * node's host reaches the node from another address; trusted_networks
 * covers it). pool: datagram buffers. 0 or a negative errno. */
int ordo_admin_open(const struct cfg_cluster *cl, uint32_t pool, struct dp_transport **t);

#endif
