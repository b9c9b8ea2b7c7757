/*
 * The transport interface every node and client uses: burst receive and send
 * of UDP datagrams with their addresses, and a wait with a timeout.
 *
 * Buffers belong to the transport (a DPDK backend hands out mbufs, zero
 * copy): rx_burst lends buffers that the caller returns with dp_free or
 * reuses for a reply through dp_tx_burst; dp_alloc gives an empty buffer of
 * max_datagram bytes. tx_burst takes ownership of every buffer passed,
 * whether it was sent or dropped (a full queue is counted, never a block).
 *
 * Backends: kernel UDP (udp.c, recvmmsg/sendmmsg), DPDK (issue 5), and the
 * fault-injecting wrapper (fault.c) for tests and soak runs.
 */
#ifndef ORDO_DP_H
#define ORDO_DP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/constants.h"
#include "common/ordo_assert.h"

/* IPv4 address and UDP port, both in host byte order. */
struct dp_addr {
	uint32_t ip;
	uint16_t port;
};

#define DP_RX_LOOPBACK 0x1u /* arrived on a loopback interface */
/* Receipt rules 1-4 (wire_check: framing, checksum, cluster, key and MAC)
 * already passed on the lcore that received it (a DPDK worker lcore, with
 * the receiver's own check; dataplane/dpdk.h); the consumer need not
 * compute the checksum and MAC again. */
#define DP_RX_CHECKED 0x2u

struct dp_buf {
	uint8_t *data;	      /* UDP payload */
	uint32_t len;	      /* payload bytes */
	uint32_t cap;	      /* bytes available at data */
	struct dp_addr peer;  /* rx: source; tx: destination */
	struct dp_addr local; /* rx: local address it arrived on; tx: local port to send from */
	uint32_t rx_flags;    /* DP_RX_* */
	void *priv;	      /* backend's */
};

struct dp_stats {
	uint64_t rx_datagrams;
	uint64_t tx_datagrams;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint64_t tx_dropped;	/* could not be sent (queue full, error) */
	uint64_t rx_truncated;	/* longer than max_datagram: dropped */
	uint64_t alloc_failed;	/* pool empty */
	uint64_t fault_dropped; /* fault injection only */
	uint64_t fault_duplicated;
	uint64_t fault_delayed;
};

struct dp_transport;

struct dp_ops {
	unsigned (*rx_burst)(struct dp_transport *t, struct dp_buf **bufs, unsigned n);
	unsigned (*tx_burst)(struct dp_transport *t, struct dp_buf **bufs, unsigned n);
	struct dp_buf *(*alloc)(struct dp_transport *t);
	void (*free)(struct dp_transport *t, struct dp_buf **bufs, unsigned n);
	/* Block until a datagram may be ready or timeout_ns passes (0: do not block). */
	void (*wait)(struct dp_transport *t, uint64_t timeout_ns);
	void (*close)(struct dp_transport *t);
};

struct dp_transport {
	const struct dp_ops *ops;
	uint32_t max_datagram; /* largest datagram received or sent */
	struct dp_stats stats;
};

/* Receives up to n datagrams without blocking; returns how many. */
static inline unsigned dp_rx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	return t->ops->rx_burst(t, bufs, n);
}
/* Sends n buffers (each with peer, local.port, data, len set) and takes
 * ownership of all of them; returns how many were sent. */
static inline unsigned dp_tx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	return t->ops->tx_burst(t, bufs, n);
}
/* An empty buffer (len 0, cap = max_datagram), or NULL when the pool is empty. */
static inline struct dp_buf *dp_alloc(struct dp_transport *t)
{
	return t->ops->alloc(t);
}
static inline void dp_free(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	t->ops->free(t, bufs, n);
}
static inline void dp_wait(struct dp_transport *t, uint64_t timeout_ns)
{
	t->ops->wait(t, timeout_ns);
}
static inline void dp_close(struct dp_transport *t)
{
	if (t)
		t->ops->close(t);
}

/* Kernel UDP backend. Binds one socket per local address; ip 0 binds any
 * address, port 0 an ephemeral port (read back into bind[i].port). */
struct dp_udp_cfg {
	struct dp_addr bind[ORDO_DP_PORTS_MAX];
	uint32_t nbind;
	uint32_t max_datagram; /* 1472 .. 8972 */
	uint32_t pool;	       /* buffers; memory = pool * max_datagram */
	uint32_t rcvbuf_bytes; /* SO_RCVBUF request; 0 leaves the default */
};
ORDO_MUST_CHECK int dp_udp_open(struct dp_udp_cfg *cfg, struct dp_transport **out);

/* Fault injection around any transport, for tests and soaks. Probabilities in
 * parts per million, applied independently to each datagram in each
 * direction. Delayed datagrams are held (at most hold_max of them) and
 * released after 1..delay_max_ns, which also reorders them. */
struct dp_fault_cfg {
	uint64_t seed;
	uint32_t rx_drop_ppm, tx_drop_ppm;
	uint32_t rx_dup_ppm, tx_dup_ppm;
	uint32_t rx_delay_ppm, tx_delay_ppm;
	uint64_t delay_max_ns;
	uint32_t hold_max;
};
/* Takes ownership of inner: closing the wrapper closes it. */
ORDO_MUST_CHECK int dp_fault_wrap(struct dp_transport *inner, const struct dp_fault_cfg *cfg,
				  struct dp_transport **out);
/* Parses "drop=5%,dup=1%,delay=2%:3ms" style text (see fault.c); false on error. */
bool dp_fault_parse(const char *text, struct dp_fault_cfg *cfg, char *err, unsigned errlen);

/* "a.b.c.d" to host order; false if not a dotted quad. */
bool dp_parse_ip(const char *text, uint32_t *ip);
/* Formats "a.b.c.d:port" into out (at least 22 bytes). */
const char *dp_addr_str(const struct dp_addr *a, char *out, unsigned outlen);

#endif
