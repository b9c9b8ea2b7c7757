/*
 * A node's edge: what every node driver (sequencer, replica) needs between
 * its command line and its pure cores. That is the cluster file, this node's
 * entry, the receipt contexts of its two ports (client keys on the client
 * port, the node key on the internal port), the transport with optional
 * fault injection, the §3.7 freshness cache, and drop counters by reason.
 *
 * dp_edge_receive applies receipt rules 1-6 (PROTOCOL.md §2.2) to one
 * datagram, counting every drop; the driver only sees what it must handle.
 */
#ifndef ORDO_DP_EDGE_H
#define ORDO_DP_EDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "dataplane/dp.h"
#include "wire/wire.h"

struct dp_edge_args {
	const char *cluster; /* cluster file */
	uint32_t node_id;    /* this node */
	const char *fault;   /* --fault spec, or NULL */
	const char *data;    /* --data DIR, or NULL */
	bool busy_poll;	     /* --busy-poll: a DPDK port never sleeps when idle */
	int eal_argc;	     /* arguments after `--`: DPDK EAL arguments */
	char **eal_argv;     /* (override the cluster file's dpdk_eal) */
};

struct dp_edge {
	struct cfg_cluster cfg;
	const struct cfg_node *self;
	struct wire_keyring client_keys;   /* [key N] sections */
	struct wire_keyring internal_keys; /* the node key only */
	struct wire_rx_ctx client_ctx;
	struct wire_rx_ctx internal_ctx;
	enum wire_port_kind client_kind; /* WIRE_PORT_SEQUENCER or WIRE_PORT_REPLICA */
	struct dp_transport *t;
	struct dp_transport *dpdk; /* the DPDK port under t (t, or what fault wraps), or NULL */
	struct wire_nonce_cache nonces;
	void *nonce_mem;
	uint64_t drops[WIRE_DROP__COUNT]; /* by reason */
};

/* What dp_edge_receive found. */
struct dp_edge_rx {
	struct wire_hdr h;
	const uint8_t *body; /* h.length - 32 bytes */
	uint32_t body_len;
	bool internal;		     /* arrived on the internal port */
	bool trusted;		     /* valid MAC, or a source in trusted_networks */
	const struct cfg_node *peer; /* internal: the cluster node it came from */
};

/* Parses `--cluster FILE --node ID [--data DIR] [--fault SPEC]`. Returns -1 to go on, else
 * the exit code (0 after --help, 2 on a usage error, with usage printed). */
int dp_edge_parse_args(int argc, char **argv, const char *usage, struct dp_edge_args *a);

/* Loads the cluster file, finds this node (it must have the given role),
 * and opens the transport on its client and internal ports. verb names the
 * node in messages ("ordo sequencer"). 0, or a negative errno after printing
 * why. */
ORDO_MUST_CHECK int dp_edge_open(struct dp_edge *e, const struct dp_edge_args *a,
				 enum cfg_role role, const char *verb, uint32_t rcvbuf_bytes);
void dp_edge_close(struct dp_edge *e);

/* A DPDK port for this process, as a node or a load generator opens one. */
struct dp_edge_dpdk {
	const char *port_name; /* DPDK device name ("net_af_xdp0") */
	const char *vdev;      /* EAL --vdev for it, or NULL / "" */
	const char *prefix;    /* EAL --file-prefix unless the arguments name one */
	uint32_t ip;	       /* host order */
	uint16_t ports[ORDO_DP_PORTS_MAX];
	uint32_t nports;
	uint16_t range_lo, range_hi; /* also accepted ports, or 0, 0 */
	uint32_t mcast_group;	     /* to join, or 0 */
	/* mbufs the caller holds at once (queued, in hand), beyond the port's
	 * rings, which dp_edge_dpdk_open adds itself; 0: 4863, so a one-queue
	 * port gets 8191 in all */
	uint32_t mbufs_held;
	uint16_t queues; /* RX/TX queue pairs (0: 1) */
	uint16_t lcores; /* lcores of its loops (0: 1; dataplane/dpdk.h) */
	/* run on worker lcores for each datagram for us (dataplane/dpdk.h) */
	unsigned (*rx_check)(void *ctx, const struct dp_buf *b);
	void *rx_check_ctx;
	bool busy_poll;
};
/* EAL arguments: eal_argv when eal_argc > 0, else the cluster file's
 * dpdk_eal; then --vdev and --file-prefix as above. Not thread-safe (the
 * EAL is initialized once per process). 0, or -errno with DPDK's message on
 * stderr. */
ORDO_MUST_CHECK int dp_edge_dpdk_open(const struct cfg_cluster *cfg, const struct dp_edge_dpdk *p,
				      int eal_argc, char **eal_argv, struct dp_transport **out);

/* Receipt rules 1-6 for datagram b. True: handle it (rx filled). False: it
 * was dropped and counted. On the client port, a datagram from a source
 * that is neither trusted nor authenticated is still passed (rx->trusted
 * false) when it is a STATUS_Q, which anyone may ask (rule 6). */
bool dp_edge_receive(struct dp_edge *e, const struct dp_buf *b, struct dp_edge_rx *rx);

/* §3.7 for an authenticated query's nonce; counts and returns false if stale
 * or replayed. Unauthenticated queries pass. */
bool dp_edge_fresh(struct dp_edge *e, const struct dp_edge_rx *rx, uint64_t nonce);

/* The key a reply to rx must carry (NULL without AUTH). */
const struct wire_key *dp_edge_reply_key(const struct dp_edge *e, const struct wire_hdr *h);
/* The node key for internal messages (NULL when internal_auth is off). */
const struct wire_key *dp_edge_internal_key(const struct dp_edge *e);

/* One datagram of this node's: dp_edge_start takes a buffer and begins a
 * message of type in *w (NULL, counted as WIRE_DROP_OVERLOAD, when the pool
 * is empty: the peer's retry or repair covers it); the caller puts the
 * body; dp_edge_send finishes it under key (NULL: no AUTH) and sends it
 * from local_port to peer. */
struct dp_buf *dp_edge_start(struct dp_edge *e, struct wire_writer *w, uint8_t type);
void dp_edge_send(struct dp_edge *e, struct dp_buf *b, struct wire_writer *w,
		  const struct wire_key *key, const struct dp_addr *peer, uint16_t local_port);

static inline void dp_edge_drop(struct dp_edge *e, enum wire_drop d)
{
	e->drops[d]++;
}
uint64_t dp_edge_drops_total(const struct dp_edge *e);
void dp_edge_print_drops(const struct dp_edge *e, FILE *f);

#endif
