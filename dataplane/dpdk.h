/*
 * The DPDK backend of the transport interface (dp.h; DESIGN.md §5): one
 * Ethernet port of any PMD (a real NIC; net_af_xdp, net_af_packet,
 * net_memif, net_tap, net_ring, net_null for development and tests), taken
 * off the kernel, with the node's IPv4 address and UDP ports on it.
 *
 * The transport answers what a host on the wire must: ARP requests for its
 * address (and learns from them), ICMP echo (an operator can ping a node),
 * IGMP queries for the multicast group it joined (with reports at start);
 * it resolves peers by ARP, with a bounded cache and a bounded queue of
 * datagrams waiting for a reply, and announces itself with a gratuitous ARP
 * at start. UDP datagrams to its address (or its multicast group) and one of
 * its ports are handed to the caller zero-copy: a dp_buf lives in the mbuf's
 * private area and points into the mbuf's data.
 *
 * IPv4 and UDP checksums are offloaded when the port offers it, computed in
 * software otherwise. Idle back-off: dp_wait sleeps (10 us doubling to
 * 4 ms) after empty polls, so a whole cluster fits on a 2-core host;
 * busy_poll keeps it spinning.
 *
 * This header has no DPDK types, so callers need no DPDK flags; the pure
 * libraries never include it.
 */
#ifndef ORDO_DP_DPDK_H
#define ORDO_DP_DPDK_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/dp.h"

struct dp_dpdk_cfg {
	/* EAL arguments, argv[0] first (for example "ordo", "--in-memory",
	 * "--no-pci", "--vdev=net_af_xdp0,iface=veth1"). The EAL is initialized
	 * once per process, by the first dp_dpdk_open; later calls ignore
	 * these. */
	int eal_argc;
	char **eal_argv;
	/* The port: a device name as DPDK knows it ("net_af_xdp0",
	 * "0000:3b:00.0"), or NULL for port_id. */
	const char *port_name;
	uint16_t port_id;
	uint32_t ip;			       /* the node's IPv4 address, host order */
	uint16_t udp_ports[ORDO_DP_PORTS_MAX]; /* accepted destination ports */
	uint32_t nudp_ports;
	/* Also accepted: destination ports udp_range_lo .. udp_range_hi (a load
	 * generator's clients, one port each); 0, 0 for none. */
	uint16_t udp_range_lo, udp_range_hi;
	uint32_t mcast_group;  /* IPv4 multicast group to join, 0 none */
	uint32_t max_datagram; /* UDP payload bytes, 1472 .. 8972 */
	uint32_t mbufs;	       /* mempool size; memory = mbufs * (max_datagram + ~300) */
	/* RX and TX queues (0 or 1: one); at most what the port has. RSS over
	 * IP and UDP where the port hashes; the one loop polls every RX queue
	 * and sends on queue 0. Each RX queue keeps rx_desc mbufs in its ring
	 * (net_af_xdp: 2048); dp_edge_dpdk_open sizes the pool for that. */
	uint16_t queues;
	uint16_t rx_desc, tx_desc;
	/* lcores the port's loops run on (0 or 1: the caller's thread alone).
	 * With L > 1, L - 1 worker lcores of the EAL (-l / --lcores must give
	 * that many) each poll their share of the RX queues (queue q goes to
	 * worker q % (L - 1), so queues >= L - 1), run rx_check on each
	 * datagram for us, and pass it through a ring of ring_size to the
	 * caller's thread (the main lcore), which polls no queue then and
	 * sleeps on an eventfd the workers signal. ARP, ICMP and IGMP frames
	 * pass raw and are answered by the main lcore, which alone transmits
	 * (on queue 0) and keeps the ARP cache. A full ring drops the datagram,
	 * counted (rx_ring_full); the sender's retry covers it. */
	uint16_t lcores;
	uint32_t ring_size; /* entries per worker ring, power of two; memory: 8 B each,
			       plus the mbufs it holds */
	/* Run by a worker lcore on each UDP datagram for us, concurrently with
	 * the main lcore: 0 passes it (with DP_RX_CHECKED set), any other code
	 * (< DP_DPDK_CHECK_CODES) drops it, counted by code
	 * (dp_dpdk_check_drops). NULL: pass everything unchecked. */
	unsigned (*rx_check)(void *ctx, const struct dp_buf *b);
	void *rx_check_ctx;
	uint32_t arp_entries; /* ARP cache capacity */
	uint32_t arp_pending; /* datagrams held while their peer is resolved */
	bool busy_poll;	      /* never sleep in dp_wait */
};

/* Defaults: port 0, 8191 mbufs, 1024 descriptors each way, one lcore
 * (rings of 1024 when there are more), 256 ARP entries, 256 pending
 * datagrams, idle back-off on. */
void dp_dpdk_cfg_default(struct dp_dpdk_cfg *c);

/* Opens the port and returns the transport. -errno with a message on
 * stderr naming what failed (EAL, port, queue setup, mempool). */
ORDO_MUST_CHECK int dp_dpdk_open(const struct dp_dpdk_cfg *cfg, struct dp_transport **out);

/* Counters beyond struct dp_stats, by reason; for STATUS and telemetry. */
struct dp_dpdk_counters {
	uint64_t arp_requests_answered, arp_requests_sent, arp_replies_learned;
	uint64_t icmp_echo_answered, igmp_reports_sent;
	uint64_t rx_not_for_us;		      /* well-formed, another address, port or protocol */
	uint64_t rx_bad;		      /* malformed frames (pkt_parse BAD_* and fragments) */
	uint64_t tx_arp_held, tx_arp_dropped; /* datagrams held for, dropped by, ARP */
	uint64_t idle_sleeps;
	uint64_t mbufs_free;	 /* the mempool's mbufs not in use, when read */
	uint64_t rx_ring_full;	 /* worker lcores: datagrams dropped on a full ring */
	uint64_t rx_check_drops; /* worker lcores: refused by rx_check (all codes) */
	uint32_t lcores;	 /* the loops' lcores, the main one included */
};
void dp_dpdk_counters(const struct dp_transport *t, struct dp_dpdk_counters *out);

/* Adds each worker lcore's rx_check refusals, by code, to out[0..n). */
#define DP_DPDK_CHECK_CODES 64u
void dp_dpdk_check_drops(const struct dp_transport *t, uint64_t *out, unsigned n);

/* The port's MAC address (6 bytes). */
void dp_dpdk_mac(const struct dp_transport *t, uint8_t mac[6]);

#endif
