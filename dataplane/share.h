/*
 * One transport shared by several users, each in its own thread: a view per
 * local UDP port. `ordo bench --transport dpdk` runs N libordo clients, one
 * thread each, on the one DPDK port a process can hold; each client gets a
 * view that sends from its own port and receives what arrives for it.
 *
 * Every call on a view takes the share's mutex around the inner transport.
 * A view's rx_burst first pulls a burst from the inner transport and sorts
 * it by destination port into the views' queues (queue_cap buffers each; a
 * datagram for a full queue, or for a port no view has, is freed and
 * counted), then hands out its own queue. wait returns at once when the
 * view's queue holds something; otherwise it polls the inner transport
 * (rx and its housekeeping, such as ARP replies) and sleeps between polls,
 * 10 us doubling to 100 us (restarting at each send), so an answer is seen
 * at most ~100 us late; never with busy_poll.
 *
 * Memory: nviews x queue_cap pointers, plus the inner transport's pool,
 * which must hold every view's queue and what the users keep.
 */
#ifndef ORDO_DP_SHARE_H
#define ORDO_DP_SHARE_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/dp.h"

#define DP_SHARE_VIEWS_MAX 256u

struct dp_share;

struct dp_share_counters {
	uint64_t rx_no_view;	/* for a port no view has */
	uint64_t rx_queue_full; /* its view's queue was full */
};

/* On success takes ownership of inner (closed by dp_share_close); on failure
 * the caller keeps it. ports[i] is view i's local port; the inner transport
 * must accept all of them. */
ORDO_MUST_CHECK int dp_share_open(struct dp_transport *inner, const uint16_t *ports,
				  uint32_t nviews, uint32_t queue_cap, bool busy_poll,
				  struct dp_share **out);
/* View i (valid until dp_share_close). Closing a view does nothing. */
struct dp_transport *dp_share_view(struct dp_share *s, uint32_t i);
void dp_share_counters(struct dp_share *s, struct dp_share_counters *out);
/* The inner transport (its stats say what crossed the port). Read it only
 * while no view is in use, e.g. after the users' threads have ended. */
struct dp_transport *dp_share_inner(struct dp_share *s);
void dp_share_close(struct dp_share *s);

#endif
