/*
 * The DPDK transport on real DPDK ports: two net_ring ports wired back to
 * back in one process (port A transmits into the ring port B receives
 * from, and the other way), EAL without hugepages. Every frame goes through
 * the ring PMD's burst functions, the mempool, and the packet layer;
 * checksums are software (net_ring offers no offloads). Port B has two
 * queue pairs (the transport polls both RX queues; it sends on queue 0);
 * port A has one.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/ordo_time.h"
#include "dataplane/dpdk.h"
#include "dataplane/pkt.h"

#define IP_A   0x0A000001u /* 10.0.0.1 */
#define IP_B   0x0A000002u /* 10.0.0.2 */
#define GROUP  0xEF010101u /* 239.1.1.1 */
#define PORT_C 7400u
#define PORT_I 7410u

static struct rte_ring *ring_ab, *ring_ba;   /* A transmits into ab, B into ba */
static struct rte_ring *ring_ab2, *ring_ba2; /* B's second RX and TX queue */
static struct dp_transport *ta, *tb;
static uint16_t port_a, port_b;

static void open_pair(void)
{
	static char *eal[] = {
	    "dpdk_test",      "--no-huge",	   "-m", "256", "--no-shconf", "--no-pci",
	    "--no-telemetry", "--log-level=error", NULL};
	int rc = rte_eal_init(8, eal);
	cr_assert(rc >= 0, "EAL: %d", rc);
	ring_ab = rte_ring_create("ab", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	ring_ba = rte_ring_create("ba", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	ring_ab2 = rte_ring_create("ab2", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	ring_ba2 = rte_ring_create("ba2", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	cr_assert(ring_ab && ring_ba && ring_ab2 && ring_ba2);
	struct rte_ring *b_rx[2] = {ring_ab, ring_ab2}, *b_tx[2] = {ring_ba, ring_ba2};
	int a = rte_eth_from_rings("ring_a", &ring_ba, 1, &ring_ab, 1, 0);
	int b = rte_eth_from_rings("ring_b", b_rx, 2, b_tx, 2, 0);
	cr_assert(a >= 0 && b >= 0);
	port_a = (uint16_t)a;
	port_b = (uint16_t)b;

	struct dp_dpdk_cfg c;
	dp_dpdk_cfg_default(&c);
	c.eal_argc = 8;
	c.eal_argv = eal;
	c.mbufs = 1023;
	c.udp_ports[0] = PORT_C;
	c.udp_ports[1] = PORT_I;
	c.nudp_ports = 2;
	c.port_id = port_a;
	c.ip = IP_A;
	cr_assert_eq(dp_dpdk_open(&c, &ta), 0);
	c.port_id = port_b;
	c.ip = IP_B;
	c.mcast_group = GROUP;
	c.queues = 2;
	cr_assert_eq(dp_dpdk_open(&c, &tb), 0);
	/* ring ports have MAC 00:00:00:00:00:00: the transport takes
	 * 02:00 + its IPv4 address instead */
	uint8_t mac[6];
	dp_dpdk_mac(tb, mac);
	cr_assert(memcmp(mac, "\x02\x00\x0a\x00\x00\x02", 6) == 0);
}

static void close_pair(void)
{
	dp_close(ta);
	dp_close(tb);
}

TestSuite(dpdk, .init = open_pair, .fini = close_pair);

static void send_to(struct dp_transport *t, uint32_t ip, uint16_t port, uint16_t from_port,
		    const char *text)
{
	struct dp_buf *b = dp_alloc(t);
	cr_assert_not_null(b);
	b->len = (uint32_t)strlen(text);
	memcpy(b->data, text, b->len);
	b->peer = (struct dp_addr){.ip = ip, .port = port};
	b->local.port = from_port;
	dp_tx_burst(t, &b, 1);
}

/* Polls both transports until t receives a datagram (or 1000 rounds). */
static struct dp_buf *recv_on(struct dp_transport *t)
{
	struct dp_buf *got[8];
	for (int round = 0; round < 1000; round++) {
		struct dp_transport *other = t == ta ? tb : ta;
		struct dp_buf *junk[8];
		unsigned n = dp_rx_burst(other, junk, 8);
		dp_free(other, junk, n);
		dp_wait(other, 0);
		n = dp_rx_burst(t, got, 8);
		if (n) {
			cr_assert_eq(n, 1);
			return got[0];
		}
		dp_wait(t, 0);
	}
	return NULL;
}

Test(dpdk, resolves_by_arp_then_delivers)
{
	send_to(ta, IP_B, PORT_C, PORT_I, "hello over dpdk");
	struct dp_dpdk_counters ca;
	dp_dpdk_counters(ta, &ca);
	cr_assert_eq(ca.tx_arp_held, 1, "the first datagram waits for ARP");
	struct dp_buf *b = recv_on(tb);
	cr_assert_not_null(b, "B never received the datagram");
	cr_assert_eq(b->len, 15);
	cr_assert(memcmp(b->data, "hello over dpdk", 15) == 0);
	cr_assert_eq(b->peer.ip, IP_A);
	cr_assert_eq(b->peer.port, PORT_I);
	cr_assert_eq(b->local.ip, IP_B);
	cr_assert_eq(b->local.port, PORT_C);
	struct dp_dpdk_counters cb;
	dp_dpdk_counters(tb, &cb);
	cr_assert_eq(cb.arp_requests_answered, 1);
	dp_dpdk_counters(ta, &ca);
	cr_assert_eq(ca.arp_replies_learned, 1);

	/* B answers on the same buffer, without ARP: it learned A's MAC. */
	memcpy(b->data, "reply", 5);
	b->len = 5;
	dp_tx_burst(tb, &b, 1);
	dp_dpdk_counters(tb, &cb);
	cr_assert_eq(cb.tx_arp_held, 0);
	cr_assert_eq(cb.arp_requests_sent, 0);
	struct dp_buf *r = recv_on(ta);
	cr_assert_not_null(r);
	cr_assert_eq(r->len, 5);
	cr_assert(memcmp(r->data, "reply", 5) == 0);
	cr_assert_eq(r->peer.ip, IP_B);
	cr_assert_eq(r->peer.port, PORT_C);
	cr_assert_eq(r->local.port, PORT_I);
	dp_free(ta, &r, 1);
}

Test(dpdk, other_port_is_not_delivered)
{
	send_to(ta, IP_B, 9999, PORT_C, "nobody listens");
	cr_assert_null(recv_on(tb));
	struct dp_dpdk_counters cb;
	dp_dpdk_counters(tb, &cb);
	cr_assert_geq(cb.rx_not_for_us, 1);
}

Test(dpdk, multicast_group_is_delivered)
{
	send_to(ta, GROUP, PORT_I, PORT_I, "epoch");
	struct dp_buf *b = recv_on(tb);
	cr_assert_not_null(b, "B joined the group but did not get the datagram");
	cr_assert_eq(b->local.ip, GROUP);
	cr_assert_eq(b->len, 5);
	dp_free(tb, &b, 1);
	struct dp_dpdk_counters ca;
	dp_dpdk_counters(ta, &ca);
	cr_assert_eq(ca.tx_arp_held, 0, "multicast needs no ARP");
}

/* A datagram on B's second RX queue is delivered as one on the first is. */
Test(dpdk, second_rx_queue_is_polled)
{
	uint8_t mac_a[6], mac_b[6];
	dp_dpdk_mac(ta, mac_a);
	dp_dpdk_mac(tb, mac_b);
	struct rte_mempool *mp = rte_pktmbuf_pool_create("q2", 63, 0, 0, 2048, 0);
	cr_assert_not_null(mp);
	for (int k = 0; k < 2; k++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
		cr_assert_not_null(m);
		uint8_t *f = (uint8_t *)rte_pktmbuf_append(m, PKT_UDP_HEADROOM + 6);
		cr_assert_not_null(f);
		memcpy(f + PKT_UDP_HEADROOM, k ? "queue1" : "queue0", 6);
		pkt_build_udp(f, mac_a, mac_b, IP_A, IP_B, PORT_I, PORT_C, 6, 1, 0);
		cr_assert_eq(rte_ring_enqueue(k ? ring_ab2 : ring_ab, m), 0);
	}
	struct dp_buf *got[4];
	unsigned n = dp_rx_burst(tb, got, 4);
	cr_assert_eq(n, 2, "one datagram from each RX queue, got %u", n);
	bool seen[2] = {false, false};
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(got[i]->len, 6);
		cr_assert_eq(got[i]->local.port, PORT_C);
		seen[memcmp(got[i]->data, "queue1", 6) == 0] = true;
	}
	cr_assert(seen[0] && seen[1]);
	dp_free(tb, got, n);
}

/* An echo request written by hand into B's receive ring: B answers it. */
Test(dpdk, answers_ping)
{
	uint8_t mac_a[6], mac_b[6];
	dp_dpdk_mac(ta, mac_a);
	dp_dpdk_mac(tb, mac_b);
	struct rte_mempool *mp = rte_pktmbuf_pool_create("ping", 63, 0, 0, 2048, 0);
	cr_assert_not_null(mp);
	uint8_t f[46];
	memset(f, 0, sizeof f);
	memcpy(f, mac_b, 6);
	memcpy(f + 6, mac_a, 6);
	f[12] = 0x08;
	f[14] = 0x45;
	f[17] = 32; /* total length 32 */
	f[22] = 64; /* TTL */
	f[23] = 1;  /* ICMP */
	uint32_t src = IP_A, dst = IP_B;
	for (int i = 0; i < 4; i++) {
		f[26 + i] = (uint8_t)(src >> (24 - 8 * i));
		f[30 + i] = (uint8_t)(dst >> (24 - 8 * i));
	}
	uint16_t ipc = pkt_csum(f + 14, 20);
	f[24] = (uint8_t)(ipc >> 8);
	f[25] = (uint8_t)ipc;
	f[34] = 8; /* echo request */
	f[38] = 0x12, f[39] = 0x34, f[40] = 0, f[41] = 7;
	memcpy(f + 42, "ping", 4);
	uint16_t ic = pkt_csum(f + 34, 12);
	f[36] = (uint8_t)(ic >> 8);
	f[37] = (uint8_t)ic;
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	cr_assert_not_null(m);
	char *room = rte_pktmbuf_append(m, sizeof f);
	cr_assert_not_null(room);
	memcpy(room, f, sizeof f);
	struct pkt_info pi;
	cr_assert_eq(pkt_parse(f, sizeof f, 0, &pi), PKT_ICMP_ECHO, "the request as written: %s",
		     pkt_kind_name(pkt_parse(f, sizeof f, 0, &pi)));
	cr_assert_eq(rte_ring_enqueue(ring_ab, m), 0);
	struct dp_buf *junk[4];
	unsigned n = dp_rx_burst(tb, junk, 4);
	cr_assert_eq(n, 0);
	struct dp_dpdk_counters cb;
	dp_dpdk_counters(tb, &cb);
	cr_assert_eq(cb.icmp_echo_answered, 1);
	/* The reply sits in A's receive ring: check it before A reads it. */
	void *obj = NULL;
	int found = 0;
	while (rte_ring_dequeue(ring_ba, &obj) == 0) {
		struct rte_mbuf *r = obj;
		const uint8_t *p = rte_pktmbuf_mtod(r, const uint8_t *);
		struct pkt_info in;
		enum pkt_kind k = pkt_parse(p, rte_pktmbuf_data_len(r), 0, &in);
		if (k == PKT_IGNORED && rte_pktmbuf_data_len(r) >= 46 && p[23] == 1 && p[34] == 0) {
			cr_assert(memcmp(p, mac_a, 6) == 0);
			cr_assert_eq(in.src_ip, IP_B);
			cr_assert_eq(in.dst_ip, IP_A);
			cr_assert(memcmp(p + 38, "\x12\x34\x00\x07ping", 8) == 0);
			cr_assert_eq(pkt_csum(p + 34, 12), 0, "ICMP checksum");
			found++;
		}
		rte_pktmbuf_free(r);
	}
	cr_assert_eq(found, 1);
	rte_mempool_free(mp);
}
