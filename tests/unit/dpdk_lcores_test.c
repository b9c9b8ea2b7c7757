/*
 * The DPDK transport with worker lcores (dp_dpdk_cfg.lcores = 3): one
 * net_ring port with two queue pairs, whose RX rings the tests fill by hand
 * and whose TX rings they read. Worker lcores 1 and 2 each poll one RX
 * queue, check every datagram for us with the test's rx_check, and hand it
 * to the main lcore (the test's thread) through a ring of 32. EAL without
 * hugepages; the three lcores share CPU 0, so this runs on any host.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/ordo_time.h"
#include "dataplane/dpdk.h"
#include "dataplane/pkt.h"

#define IP_PEER	   0x0A000001u /* 10.0.0.1: the hand-written frames' sender */
#define IP_NODE	   0x0A000002u /* 10.0.0.2: the transport */
#define PORT_C	   7400u
#define PORT_PEER  7999u
#define RING	   32u
#define REFUSED	   9u /* the test check's code for payloads starting "bad" */
#define POOL_MBUFS 511u

static struct rte_ring *rx[2], *tx[2];
static struct dp_transport *t;
static struct rte_mempool *mp; /* the hand-written frames' */
static uint8_t mac_node[6];
static const uint8_t mac_peer[6] = {0x02, 0, 0, 0, 0, 0x01};
static unsigned checks_run, checks_bad_ctx;

/* Runs on a worker lcore: no Criterion assertion here (they must run on
 * the test's thread); what it saw is checked there. */
static unsigned test_check(void *ctx, const struct dp_buf *b)
{
	if (ctx != &checks_run)
		__atomic_fetch_add(&checks_bad_ctx, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&checks_run, 1, __ATOMIC_RELAXED);
	return b->len >= 3 && memcmp(b->data, "bad", 3) == 0 ? REFUSED : 0;
}

static char *eal[] = {"dpdk_lcores_test",
		      "--no-huge",
		      "-m",
		      "256",
		      "--no-shconf",
		      "--no-pci",
		      "--no-telemetry",
		      "--log-level=error",
		      "--lcores=(0-2)@0",
		      NULL};
#define EAL_ARGC 9

static void base_cfg(struct dp_dpdk_cfg *c, uint16_t port)
{
	dp_dpdk_cfg_default(c);
	c->eal_argc = EAL_ARGC;
	c->eal_argv = eal;
	c->mbufs = 1023;
	c->udp_ports[0] = PORT_C;
	c->nudp_ports = 1;
	c->port_id = port;
	c->ip = IP_NODE;
}

static void open_port(void)
{
	int rc = rte_eal_init(EAL_ARGC, eal);
	cr_assert(rc >= 0, "EAL: %d", rc);
	cr_assert_eq(rte_lcore_count(), 3);
	const char *names[4] = {"rx0", "rx1", "tx0", "tx1"};
	struct rte_ring **all[4] = {&rx[0], &rx[1], &tx[0], &tx[1]};
	for (int i = 0; i < 4; i++) {
		*all[i] = rte_ring_create(names[i], 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		cr_assert_not_null(*all[i]);
	}
	int p = rte_eth_from_rings("ring_w", rx, 2, tx, 2, 0);
	cr_assert(p >= 0);
	mp = rte_pktmbuf_pool_create("frames", POOL_MBUFS, 0, 0, 2048, 0);
	cr_assert_not_null(mp);
	struct dp_dpdk_cfg c;
	base_cfg(&c, (uint16_t)p);
	c.queues = 2;
	c.lcores = 3;
	c.ring_size = RING;
	c.rx_check = test_check;
	c.rx_check_ctx = &checks_run;
	cr_assert_eq(dp_dpdk_open(&c, &t), 0);
	dp_dpdk_mac(t, mac_node);
}

static void close_port(void)
{
	dp_close(t); /* stops the workers: a hang here is a failure */
	t = NULL;
}

TestSuite(dpdk_lcores, .init = open_port, .fini = close_port);

/* A UDP datagram from the peer to the node's port dport, written into RX
 * queue q. */
static void inject_to(unsigned q, uint16_t dport, const char *text)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	cr_assert_not_null(m);
	uint32_t len = (uint32_t)strlen(text);
	uint8_t *f = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(PKT_UDP_HEADROOM + len));
	cr_assert_not_null(f);
	memcpy(f + PKT_UDP_HEADROOM, text, len);
	pkt_build_udp(f, mac_peer, mac_node, IP_PEER, IP_NODE, PORT_PEER, dport, len, 1, 0);
	cr_assert_eq(rte_ring_enqueue(rx[q], m), 0);
}

static void inject(unsigned q, const char *text)
{
	inject_to(q, PORT_C, text);
}

/* Receives until `want` datagrams came or 5 s passed; returns how many. */
static unsigned receive(struct dp_buf **got, unsigned want)
{
	unsigned n = 0;
	uint64_t end = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	while (n < want && ordo_mono_ns() < end) {
		n += dp_rx_burst(t, got + n, want - n);
		if (n < want)
			dp_wait(t, 10 * ORDO_NS_PER_MS);
	}
	return n;
}

/* Waits (5 s at most) until the workers took every frame off the RX rings. */
static void rx_rings_drained(void)
{
	uint64_t end = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	while ((rte_ring_count(rx[0]) || rte_ring_count(rx[1])) && ordo_mono_ns() < end) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(rte_ring_count(rx[0]) + rte_ring_count(rx[1]), 0, "the workers stopped");
	struct timespec ts = {0, 50000000}; /* the last burst is handed over */
	nanosleep(&ts, NULL);
}

Test(dpdk_lcores, both_workers_deliver_checked_in_order)
{
	struct dp_dpdk_counters c;
	dp_dpdk_counters(t, &c);
	cr_assert_eq(c.lcores, 3);
	char text[16];
	for (int i = 0; i < 10; i++) {
		snprintf(text, sizeof text, "q0-%d", i);
		inject(0, text);
		snprintf(text, sizeof text, "q1-%d", i);
		inject(1, text);
	}
	struct dp_buf *got[20];
	unsigned n = receive(got, 20);
	cr_assert_eq(n, 20, "got %u of 20", n);
	int next[2] = {0, 0};
	for (unsigned i = 0; i < n; i++) {
		cr_assert(got[i]->rx_flags & DP_RX_CHECKED, "the worker checked it");
		cr_assert_eq(got[i]->peer.ip, IP_PEER);
		cr_assert_eq(got[i]->peer.port, PORT_PEER);
		cr_assert_eq(got[i]->local.port, PORT_C);
		int q = got[i]->data[1] - '0', k = 0;
		cr_assert(q == 0 || q == 1);
		cr_assert_eq(sscanf((const char *)got[i]->data + 3, "%d", &k), 1);
		cr_assert_eq(k, next[q], "queue %d out of order: %d after %d", q, k, next[q] - 1);
		next[q]++;
	}
	cr_assert_eq(__atomic_load_n(&checks_run, __ATOMIC_RELAXED), 20);
	cr_assert_eq(__atomic_load_n(&checks_bad_ctx, __ATOMIC_RELAXED), 0,
		     "rx_check got its context");
	dp_free(t, got, n);
	dp_dpdk_counters(t, &c);
	cr_assert_eq(c.rx_ring_full, 0);
	cr_assert_eq(c.rx_check_drops, 0);
	cr_assert_eq(rte_mempool_avail_count(mp), POOL_MBUFS, "every frame was returned");
}

Test(dpdk_lcores, refused_by_the_check_is_counted_by_code)
{
	inject(1, "bad one");
	inject(0, "bad two");
	inject(1, "bad three");
	inject(1, "good");
	rx_rings_drained();
	struct dp_buf *got[4];
	unsigned n = receive(got, 1);
	cr_assert_eq(n, 1);
	cr_assert(memcmp(got[0]->data, "good", 4) == 0, "only the good one passes");
	dp_free(t, got, n);
	cr_assert_eq(dp_rx_burst(t, got, 4), 0, "nothing else passed");
	uint64_t by_code[DP_DPDK_CHECK_CODES] = {0};
	dp_dpdk_check_drops(t, by_code, DP_DPDK_CHECK_CODES);
	for (unsigned i = 0; i < DP_DPDK_CHECK_CODES; i++)
		cr_assert_eq(by_code[i], i == REFUSED ? 3u : 0u, "code %u: %llu", i,
			     (unsigned long long)by_code[i]);
	struct dp_dpdk_counters c;
	dp_dpdk_counters(t, &c);
	cr_assert_eq(c.rx_check_drops, 3);
	cr_assert_eq(rte_mempool_avail_count(mp), POOL_MBUFS, "refused frames were freed");
}

/* A worker passes an ARP request on raw; the main lcore answers it on TX
 * queue 0, and a frame for another address is counted by the worker. */
Test(dpdk_lcores, arp_goes_to_the_main_lcore)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	cr_assert_not_null(m);
	uint8_t *f = (uint8_t *)rte_pktmbuf_append(m, PKT_ETH_MIN_BYTES);
	cr_assert_not_null(f);
	static const uint8_t zero[6];
	pkt_build_arp(f, 1, mac_peer, IP_PEER, zero, IP_NODE);
	memset(f, 0xff, 6);
	cr_assert_eq(rte_ring_enqueue(rx[1], m), 0);
	inject(0, "x");
	inject_to(1, 1234, "y"); /* the node's address, a port it does not have */

	struct dp_buf *got[2];
	cr_assert_eq(receive(got, 1), 1);
	dp_free(t, got, 1);
	/* gratuitous ARP and IGMP (none: no group) went out at open; then the reply */
	uint64_t end = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	int replies = 0;
	while (!replies && ordo_mono_ns() < end) {
		struct dp_buf *junk[2];
		unsigned n = dp_rx_burst(t, junk, 2);
		dp_free(t, junk, n);
		dp_wait(t, 1 * ORDO_NS_PER_MS);
		void *obj;
		while (rte_ring_dequeue(tx[0], &obj) == 0) {
			struct rte_mbuf *r = obj;
			struct pkt_info in;
			if (pkt_parse(rte_pktmbuf_mtod(r, uint8_t *), rte_pktmbuf_data_len(r), 0,
				      &in) == PKT_ARP_REPLY &&
			    in.arp_spa == IP_NODE && in.arp_tpa == IP_PEER)
				replies++;
			rte_pktmbuf_free(r);
		}
	}
	cr_assert_eq(replies, 1, "the main lcore answered the ARP request");
	cr_assert_eq(rte_ring_count(tx[1]), 0, "only the main lcore transmits, on queue 0");
	struct dp_dpdk_counters c;
	dp_dpdk_counters(t, &c);
	cr_assert_eq(c.arp_requests_answered, 1);
	cr_assert_geq(c.rx_not_for_us, 1, "port 1234 counted by its worker");
	cr_assert_eq(rte_mempool_avail_count(mp), POOL_MBUFS);
}

Test(dpdk_lcores, a_full_ring_drops_and_counts)
{
	for (int i = 0; i < 100; i++)
		inject(0, "burst");
	rx_rings_drained(); /* the main lcore reads nothing meanwhile */
	struct dp_dpdk_counters c;
	dp_dpdk_counters(t, &c);
	cr_assert_eq(c.rx_ring_full, 100 - RING, "dropped %llu",
		     (unsigned long long)c.rx_ring_full);
	struct dp_buf *got[100];
	unsigned n = receive(got, RING);
	cr_assert_eq(n, RING, "the ring held %u", n);
	dp_free(t, got, n);
	cr_assert_eq(dp_rx_burst(t, got, 100), 0, "no more than the ring held");
	cr_assert_eq(rte_mempool_avail_count(mp), POOL_MBUFS, "dropped frames were freed");
}

static void *inject_later(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 100000000};
	nanosleep(&ts, NULL);
	inject(1, "wake");
	return NULL;
}

/* The main lcore sleeps on the workers' signal, not out its timeout. */
Test(dpdk_lcores, a_handover_wakes_the_main_lcore)
{
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, inject_later, NULL), 0);
	uint64_t t0 = ordo_mono_ns();
	dp_wait(t, 10 * ORDO_NS_PER_S);
	uint64_t slept = ordo_mono_ns() - t0;
	pthread_join(th, NULL);
	cr_assert_lt(slept, 5 * ORDO_NS_PER_S, "slept %llu ms of a 10 s timeout",
		     (unsigned long long)(slept / ORDO_NS_PER_MS));
	struct dp_buf *got[1];
	cr_assert_eq(receive(got, 1), 1);
	cr_assert(memcmp(got[0]->data, "wake", 4) == 0);
	dp_free(t, got, 1);
}

Test(dpdk_lcores, impossible_layouts_are_refused)
{
	struct rte_ring *r1 = rte_ring_create("x_rx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct rte_ring *r2 = rte_ring_create("x_tx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	cr_assert(r1 && r2);
	int p = rte_eth_from_rings("ring_x", &r1, 1, &r2, 1, 0);
	cr_assert(p >= 0);
	struct dp_dpdk_cfg c;
	struct dp_transport *x = NULL;
	base_cfg(&c, (uint16_t)p);
	c.lcores = 3; /* two workers for one RX queue */
	cr_assert_eq(dp_dpdk_open(&c, &x), -EINVAL);
	base_cfg(&c, (uint16_t)p);
	c.lcores = 2; /* the EAL's two worker lcores are taken by the suite's port */
	cr_assert_eq(dp_dpdk_open(&c, &x), -EINVAL);
	base_cfg(&c, (uint16_t)p);
	c.lcores = ORDO_DPDK_LCORES_MAX + 1;
	cr_assert_eq(dp_dpdk_open(&c, &x), -EINVAL);
	cr_assert_null(x);
}
