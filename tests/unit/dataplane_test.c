/*
 * Unit tests of dataplane/: the kernel-UDP transport over real sockets on
 * 127.0.0.1 with ephemeral ports (bursts both ways, addresses, loopback flag,
 * truncation, pool exhaustion, bad destinations, wait), the fault wrapper
 * (drop, duplicate, delay and reorder; its text form), address parsing, and
 * the shared transport (share.c): datagrams reach the view of their
 * destination port and only it, in order; a view sends from its own port; a
 * full queue and a port without a view are counted and their buffers
 * returned; views used from threads at once lose and mix up nothing.
 * Timing assertions are generous bounds only: CI machines are slow.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/le.h"
#include "common/ordo_time.h"
#include "dataplane/dp.h"
#include "dataplane/share.h"

#define LOCALHOST 0x7F000001u
#define POOL	  256u

static struct dp_transport *open_udp(uint32_t nbind, uint32_t pool, uint16_t *ports)
{
	struct dp_udp_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.nbind = nbind;
	for (uint32_t i = 0; i < nbind; i++)
		cfg.bind[i] = (struct dp_addr){LOCALHOST, 0};
	cfg.max_datagram = ORDO_DATAGRAM_MIN_MAX;
	cfg.pool = pool;
	cfg.rcvbuf_bytes = 1u << 20;
	struct dp_transport *t = NULL;
	int rv = dp_udp_open(&cfg, &t);
	cr_assert_eq(rv, 0, "dp_udp_open: %d", rv);
	cr_assert_not_null(t);
	for (uint32_t i = 0; i < nbind; i++) {
		cr_assert_neq(cfg.bind[i].port, 0, "ephemeral port written back");
		ports[i] = cfg.bind[i].port;
	}
	return t;
}

/* Sends n datagrams "seq" = first .. first+n-1 (4 bytes LE, then filler). */
static unsigned send_seq(struct dp_transport *t, uint16_t from_port, uint16_t to_port,
			 uint32_t first, unsigned n)
{
	unsigned sent = 0;
	for (unsigned i = 0; i < n; i++) {
		struct dp_buf *b = dp_alloc(t);
		cr_assert_not_null(b, "alloc %u", i);
		cr_assert_eq(b->len, 0);
		cr_assert_eq(b->cap, t->max_datagram);
		uint32_t seq = first + i;
		memcpy(b->data, &seq, 4);
		memset(b->data + 4, 0xA5, 60);
		b->len = 64;
		b->peer = (struct dp_addr){LOCALHOST, to_port};
		b->local.port = from_port;
		sent += dp_tx_burst(t, &b, 1);
	}
	return sent;
}

static uint32_t seq_of(const struct dp_buf *b)
{
	uint32_t seq;
	memcpy(&seq, b->data, 4);
	return seq;
}

/* Receives until want buffers arrived or timeout_ns passed; returns count. */
static unsigned recv_until(struct dp_transport *t, struct dp_buf **bufs, unsigned want,
			   uint64_t timeout_ns)
{
	uint64_t deadline = ordo_mono_ns() + timeout_ns;
	unsigned got = 0;
	while (got < want) {
		got += dp_rx_burst(t, bufs + got, want - got);
		uint64_t now = ordo_mono_ns();
		if (got >= want || now >= deadline)
			break;
		dp_wait(t, 10 * ORDO_NS_PER_MS);
	}
	return got;
}

/* Receives whatever arrives within timeout_ns, freeing it; returns count. */
static unsigned drain(struct dp_transport *t, uint64_t timeout_ns)
{
	uint64_t deadline = ordo_mono_ns() + timeout_ns;
	unsigned total = 0;
	struct dp_buf *bufs[32];
	while (ordo_mono_ns() < deadline) {
		unsigned k = dp_rx_burst(t, bufs, 32);
		total += k;
		dp_free(t, bufs, k);
		if (k == 0)
			dp_wait(t, 5 * ORDO_NS_PER_MS);
	}
	return total;
}

/* ------------------------------------------------------------------ udp */

Test(udp, burst_both_ways_with_addresses)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	struct dp_transport *b = open_udp(1, POOL, &pb);

	cr_assert_eq(send_seq(a, pa, pb, 100, 40), 40);
	cr_assert_eq(a->stats.tx_datagrams, 40);
	cr_assert_eq(a->stats.tx_bytes, 40 * 64);

	struct dp_buf *rx[64];
	unsigned got = recv_until(b, rx, 40, 2 * ORDO_NS_PER_S);
	cr_assert_eq(got, 40);
	cr_assert_eq(b->stats.rx_datagrams, 40);
	for (unsigned i = 0; i < got; i++) {
		cr_assert_eq(rx[i]->len, 64);
		cr_assert_eq(seq_of(rx[i]), 100 + i, "loopback keeps order");
		cr_assert_eq(rx[i]->peer.ip, LOCALHOST);
		cr_assert_eq(rx[i]->peer.port, pa);
		cr_assert_eq(rx[i]->local.ip, LOCALHOST);
		cr_assert_eq(rx[i]->local.port, pb);
		cr_assert(rx[i]->rx_flags & DP_RX_LOOPBACK);
	}

	/* Answer with the same buffers: peer is already the source. */
	for (unsigned i = 0; i < got; i++)
		rx[i]->data[0] ^= 0xFF;
	cr_assert_eq(dp_tx_burst(b, rx, got), 40);

	struct dp_buf *back[64];
	cr_assert_eq(recv_until(a, back, 40, 2 * ORDO_NS_PER_S), 40);
	for (unsigned i = 0; i < 40; i++) {
		cr_assert_eq(seq_of(back[i]), (100 + i) ^ 0xFF);
		cr_assert_eq(back[i]->peer.port, pb);
		cr_assert_eq(back[i]->local.port, pa);
	}
	dp_free(a, back, 40);
	dp_close(a);
	dp_close(b);
}

Test(udp, several_ports_pick_socket_by_local_port)
{
	uint16_t pa[2], pb;
	struct dp_transport *a = open_udp(2, POOL, pa);
	struct dp_transport *b = open_udp(1, POOL, &pb);
	cr_assert_neq(pa[0], pa[1]);

	/* b sends to both ports of a. */
	cr_assert_eq(send_seq(b, pb, pa[0], 1, 5), 5);
	cr_assert_eq(send_seq(b, pb, pa[1], 11, 5), 5);
	struct dp_buf *rx[16];
	unsigned got = recv_until(a, rx, 10, 2 * ORDO_NS_PER_S);
	cr_assert_eq(got, 10);
	for (unsigned i = 0; i < got; i++) {
		uint16_t want = seq_of(rx[i]) < 10 ? pa[0] : pa[1];
		cr_assert_eq(rx[i]->local.port, want);
	}
	/* a answers from each port; b sees the port it came from. */
	cr_assert_eq(dp_tx_burst(a, rx, got), 10);
	struct dp_buf *back[16];
	cr_assert_eq(recv_until(b, back, 10, 2 * ORDO_NS_PER_S), 10);
	for (unsigned i = 0; i < 10; i++) {
		uint16_t want = seq_of(back[i]) < 10 ? pa[0] : pa[1];
		cr_assert_eq(back[i]->peer.port, want);
	}
	dp_free(b, back, 10);

	/* A local port the transport does not own is dropped and counted. */
	struct dp_buf *x = dp_alloc(a);
	x->len = 8;
	x->peer = (struct dp_addr){LOCALHOST, pb};
	x->local.port = 1; /* ephemeral ports are never 1 */
	cr_assert(pa[0] != 1 && pa[1] != 1);
	uint64_t dropped = a->stats.tx_dropped;
	cr_assert_eq(dp_tx_burst(a, &x, 1), 0);
	cr_assert_eq(a->stats.tx_dropped, dropped + 1);
	dp_close(a);
	dp_close(b);
}

Test(udp, oversize_datagram_dropped_and_counted)
{
	uint16_t pb;
	struct dp_transport *b = open_udp(1, POOL, &pb);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in to = {.sin_family = AF_INET};
	to.sin_addr.s_addr = htonl(LOCALHOST);
	to.sin_port = htons(pb);
	static uint8_t big[ORDO_DATAGRAM_MIN_MAX + 1];
	memset(big, 7, sizeof big);
	cr_assert_eq(sendto(fd, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to),
		     (ssize_t)sizeof big);
	/* Exactly max_datagram is fine. */
	cr_assert_eq(sendto(fd, big, sizeof big - 1, 0, (struct sockaddr *)&to, sizeof to),
		     (ssize_t)sizeof big - 1);
	close(fd);

	struct dp_buf *rx[4];
	unsigned got = recv_until(b, rx, 1, 2 * ORDO_NS_PER_S);
	cr_assert_eq(got, 1);
	cr_assert_eq(rx[0]->len, ORDO_DATAGRAM_MIN_MAX);
	cr_assert_eq(b->stats.rx_truncated, 1);
	cr_assert_eq(b->stats.rx_datagrams, 1);
	dp_free(b, rx, 1);
	dp_close(b);
}

Test(udp, pool_exhaustion_and_recovery)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, 4, &pa);
	struct dp_transport *b = open_udp(1, POOL, &pb);
	struct dp_buf *held[4];
	for (unsigned i = 0; i < 4; i++) {
		held[i] = dp_alloc(a);
		cr_assert_not_null(held[i]);
		for (unsigned j = 0; j < i; j++)
			cr_assert_neq(held[i]->data, held[j]->data);
	}
	cr_assert_null(dp_alloc(a));
	cr_assert_eq(a->stats.alloc_failed, 1);

	/* With the pool empty, received datagrams wait in the socket. */
	cr_assert_eq(send_seq(b, pb, pa, 1, 3), 3);
	usleep(20000);
	struct dp_buf *rx[4];
	cr_assert_eq(dp_rx_burst(a, rx, 4), 0);

	dp_free(a, held, 4);
	cr_assert_eq(recv_until(a, rx, 3, 2 * ORDO_NS_PER_S), 3);
	cr_assert_eq(seq_of(rx[0]), 1);
	cr_assert_eq(seq_of(rx[2]), 3);
	dp_free(a, rx, 3);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_not_null(held[i] = dp_alloc(a));
	dp_free(a, held, 4);
	dp_close(a);
	dp_close(b);
}

Test(udp, bad_destinations_counted_and_buffers_returned)
{
	uint16_t pa;
	struct dp_transport *a = open_udp(1, 8, &pa);
	struct dp_buf *bufs[4];
	for (unsigned i = 0; i < 4; i++) {
		bufs[i] = dp_alloc(a);
		cr_assert_not_null(bufs[i]);
		bufs[i]->len = 32;
		memset(bufs[i]->data, 0, bufs[i]->cap);
		bufs[i]->local.port = pa;
	}
	bufs[0]->peer = (struct dp_addr){LOCALHOST, 0};	  /* port 0 */
	bufs[1]->peer = (struct dp_addr){0xFFFFFFFFu, 9}; /* broadcast: EACCES */
	bufs[2]->peer = (struct dp_addr){LOCALHOST, 9};	  /* too long */
	bufs[2]->len = ORDO_DATAGRAM_MIN_MAX + 1;
	bufs[3]->peer = (struct dp_addr){0xE0000001u, 9}; /* multicast: may go or not */
	unsigned sent = dp_tx_burst(a, bufs, 4);
	cr_assert_leq(sent, 1);
	cr_assert_eq(a->stats.tx_dropped + a->stats.tx_datagrams, 4);
	cr_assert_geq(a->stats.tx_dropped, 3);
	/* Every buffer came back to the pool. */
	struct dp_buf *all[8];
	for (unsigned i = 0; i < 8; i++)
		cr_assert_not_null(all[i] = dp_alloc(a));
	dp_free(a, all, 8);
	dp_close(a);
}

Test(udp, open_rejects_bad_config)
{
	struct dp_udp_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	struct dp_transport *t = NULL;
	cfg.nbind = 1;
	cfg.bind[0] = (struct dp_addr){LOCALHOST, 0};
	cfg.pool = 4;
	cfg.max_datagram = 1000;
	cr_assert_eq(dp_udp_open(&cfg, &t), -EINVAL);
	cfg.max_datagram = ORDO_DATAGRAM_MAX + 1;
	cr_assert_eq(dp_udp_open(&cfg, &t), -EINVAL);
	cfg.max_datagram = ORDO_DATAGRAM_MAX;
	cfg.nbind = 0;
	cr_assert_eq(dp_udp_open(&cfg, &t), -EINVAL);
	cfg.nbind = ORDO_DP_PORTS_MAX + 1;
	cr_assert_eq(dp_udp_open(&cfg, &t), -EINVAL);
	cfg.nbind = 1;
	cfg.pool = 0;
	cr_assert_eq(dp_udp_open(&cfg, &t), -EINVAL);
	cr_assert_null(t);
	/* Binding a port that is taken without SO_REUSEADDR on the other side. */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(LOCALHOST);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	socklen_t len = sizeof sin;
	getsockname(fd, (struct sockaddr *)&sin, &len);
	cfg.pool = 4;
	cfg.bind[0].port = ntohs(sin.sin_port);
	cr_assert_eq(dp_udp_open(&cfg, &t), -EADDRINUSE);
	cr_assert_null(t);
	close(fd);
	/* Nor a port another transport holds: a second node on the same address
	 * must fail to start, never share the port and steal its datagrams. */
	struct dp_transport *first = NULL;
	cfg.bind[0].port = 0;
	cr_assert_eq(dp_udp_open(&cfg, &first), 0);
	struct dp_udp_cfg again = cfg; /* cfg.bind[0].port now holds the port taken */
	cr_assert_eq(dp_udp_open(&again, &t), -EADDRINUSE);
	cr_assert_null(t);
	dp_close(first);
	/* A 9000-byte jumbo transport opens. */
	cfg.bind[0].port = 0;
	cr_assert_eq(dp_udp_open(&cfg, &t), 0);
	cr_assert_eq(t->max_datagram, ORDO_DATAGRAM_MAX);
	struct dp_buf *b = dp_alloc(t);
	cr_assert_eq(b->cap, ORDO_DATAGRAM_MAX);
	dp_free(t, &b, 1);
	dp_close(t);
	dp_close(NULL);
}

Test(udp, wait_idle_and_with_data)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	struct dp_transport *b = open_udp(1, POOL, &pb);

	uint64_t t0 = ordo_mono_ns();
	dp_wait(b, 100 * ORDO_NS_PER_MS);
	uint64_t idle = ordo_mono_ns() - t0;
	cr_assert_geq(idle, 50 * ORDO_NS_PER_MS, "idle wait returned after %llu ns",
		      (unsigned long long)idle);
	cr_assert_lt(idle, 2 * ORDO_NS_PER_S);

	t0 = ordo_mono_ns();
	dp_wait(b, 0);
	cr_assert_lt(ordo_mono_ns() - t0, 50 * ORDO_NS_PER_MS, "timeout 0 does not block");

	cr_assert_eq(send_seq(a, pa, pb, 1, 1), 1);
	t0 = ordo_mono_ns();
	dp_wait(b, 10 * ORDO_NS_PER_S);
	cr_assert_lt(ordo_mono_ns() - t0, 2 * ORDO_NS_PER_S, "wait returns when data is ready");
	struct dp_buf *rx[1];
	cr_assert_eq(dp_rx_burst(b, rx, 1), 1);
	dp_free(b, rx, 1);
	dp_close(a);
	dp_close(b);
}

/* ---------------------------------------------------------------- fault */

static struct dp_transport *wrap(struct dp_transport *inner, const char *spec)
{
	struct dp_fault_cfg fc;
	char err[128];
	cr_assert(dp_fault_parse(spec, &fc, err, sizeof err), "%s", err);
	struct dp_transport *t = NULL;
	cr_assert_eq(dp_fault_wrap(inner, &fc, &t), 0);
	cr_assert_eq(t->max_datagram, inner->max_datagram);
	return t;
}

Test(fault, drop_all)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	struct dp_transport *b = wrap(open_udp(1, POOL, &pb), "drop=100%,seed=1");
	cr_assert_eq(send_seq(a, pa, pb, 1, 20), 20);
	cr_assert_eq(drain(b, 200 * ORDO_NS_PER_MS), 0);
	cr_assert_eq(b->stats.rx_datagrams, 20, "arrivals pass through");
	cr_assert_eq(b->stats.fault_dropped, 20);

	/* Sending through it drops too. */
	uint64_t sent_before = b->stats.tx_datagrams;
	cr_assert_eq(send_seq(b, pb, pa, 1, 5), 0);
	cr_assert_eq(b->stats.fault_dropped, 25);
	cr_assert_eq(b->stats.tx_datagrams, sent_before);
	cr_assert_eq(drain(a, 100 * ORDO_NS_PER_MS), 0);
	dp_close(a);
	dp_close(b);
}

Test(fault, duplicate_all)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	struct dp_transport *b = wrap(open_udp(1, POOL, &pb), "rx_dup=100%,seed=7");
	cr_assert_eq(send_seq(a, pa, pb, 0, 10), 10);
	struct dp_buf *rx[32];
	unsigned got = recv_until(b, rx, 20, 2 * ORDO_NS_PER_S);
	cr_assert_eq(got, 20);
	unsigned count[10] = {0};
	for (unsigned i = 0; i < got; i++) {
		uint32_t s = seq_of(rx[i]);
		cr_assert_lt(s, 10);
		count[s]++;
		cr_assert_eq(rx[i]->peer.port, pa);
		cr_assert_eq(rx[i]->local.port, pb);
		cr_assert_eq(rx[i]->len, 64);
	}
	for (unsigned s = 0; s < 10; s++)
		cr_assert_eq(count[s], 2, "datagram %u arrived %u times", s, count[s]);
	cr_assert_eq(b->stats.fault_duplicated, 10);
	dp_free(b, rx, got);
	cr_assert_eq(drain(b, 50 * ORDO_NS_PER_MS), 0);

	/* tx duplicates: each send leaves twice. */
	struct dp_transport *c = wrap(a, "tx_dup=100%,seed=3");
	cr_assert_eq(send_seq(c, pa, pb, 0, 5), 10);
	cr_assert_eq(drain(b, 200 * ORDO_NS_PER_MS), 20, "each doubled again on receipt");
	dp_close(c);
	dp_close(b);
}

Test(fault, duplicate_skipped_when_pool_empty)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	/* Pool of 2: two received datagrams fill it, so no copies. */
	struct dp_transport *b = wrap(open_udp(1, 2, &pb), "dup=100%");
	cr_assert_eq(send_seq(a, pa, pb, 0, 2), 2);
	struct dp_buf *rx[4];
	unsigned got = recv_until(b, rx, 2, 2 * ORDO_NS_PER_S);
	cr_assert_eq(got, 2);
	cr_assert_eq(b->stats.fault_duplicated, 0);
	dp_free(b, rx, got);
	dp_close(a);
	dp_close(b);
}

Test(fault, delay_reorders_without_loss)
{
	uint16_t pa, pb;
	struct dp_transport *a = open_udp(1, POOL, &pa);
	struct dp_transport *b = wrap(open_udp(1, POOL, &pb), "delay=50%:5ms,seed=11");
	unsigned seen[100] = {0};
	uint32_t order[100];
	unsigned total = 0;
	cr_assert_eq(send_seq(a, pa, pb, 0, 100), 100);
	uint64_t deadline = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	struct dp_buf *rx[32];
	while (total < 100 && ordo_mono_ns() < deadline) {
		unsigned k = dp_rx_burst(b, rx, 32);
		for (unsigned i = 0; i < k; i++) {
			uint32_t s = seq_of(rx[i]);
			cr_assert_lt(s, 100);
			seen[s]++;
			cr_assert_lt(total, 100);
			order[total++] = s;
		}
		dp_free(b, rx, k);
		if (k == 0)
			dp_wait(b, 2 * ORDO_NS_PER_MS);
	}
	cr_assert_eq(total, 100, "all 100 arrive");
	for (unsigned s = 0; s < 100; s++)
		cr_assert_eq(seen[s], 1, "datagram %u seen %u times", s, seen[s]);
	bool in_order = true;
	for (unsigned i = 1; i < 100; i++)
		in_order &= order[i] > order[i - 1];
	cr_assert(!in_order, "delays reorder");
	cr_assert_gt(b->stats.fault_delayed, 10);
	cr_assert_lt(b->stats.fault_delayed, 90);
	dp_close(a);
	dp_close(b);
}

Test(fault, tx_delay_released_by_wait)
{
	uint16_t pa, pb;
	struct dp_transport *a = wrap(open_udp(1, POOL, &pa), "tx_delay=100%:2ms");
	struct dp_transport *b = open_udp(1, POOL, &pb);
	cr_assert_eq(send_seq(a, pa, pb, 0, 10), 10, "held datagrams count as taken");
	cr_assert_eq(a->stats.fault_delayed, 10);
	/* (Some may already have left on a later send: no assertion on that.) */
	unsigned got = 0;
	uint64_t deadline = ordo_mono_ns() + 2 * ORDO_NS_PER_S;
	struct dp_buf *rx[16];
	while (got < 10 && ordo_mono_ns() < deadline) {
		dp_wait(a, ORDO_NS_PER_MS);
		unsigned k = dp_rx_burst(b, rx, 16);
		got += k;
		dp_free(b, rx, k);
	}
	cr_assert_eq(got, 10);
	cr_assert_eq(a->stats.tx_datagrams, 10);
	/* Closing with datagrams held returns them to the pool without a leak. */
	cr_assert_eq(send_seq(a, pa, pb, 0, 3), 3);
	dp_close(a);
	dp_close(b);
}

Test(fault, wrap_rejects_bad_config)
{
	uint16_t pa;
	struct dp_transport *a = open_udp(1, 4, &pa);
	struct dp_fault_cfg fc;
	memset(&fc, 0, sizeof fc);
	fc.rx_drop_ppm = 1000001;
	struct dp_transport *t = NULL;
	cr_assert_eq(dp_fault_wrap(a, &fc, &t), -EINVAL);
	cr_assert_null(t);
	cr_assert_eq(dp_fault_wrap(NULL, &fc, &t), -EINVAL);
	dp_close(a);
}

Test(fault, parse_values)
{
	struct dp_fault_cfg c;
	char err[128];
	cr_assert(dp_fault_parse("drop=5%,dup=1%,delay=2%:3ms,seed=7", &c, err, sizeof err), "%s",
		  err);
	cr_assert_eq(c.rx_drop_ppm, 50000);
	cr_assert_eq(c.tx_drop_ppm, 50000);
	cr_assert_eq(c.rx_dup_ppm, 10000);
	cr_assert_eq(c.tx_dup_ppm, 10000);
	cr_assert_eq(c.rx_delay_ppm, 20000);
	cr_assert_eq(c.tx_delay_ppm, 20000);
	cr_assert_eq(c.delay_max_ns, 3 * ORDO_NS_PER_MS);
	cr_assert_eq(c.seed, 7);
	cr_assert_gt(c.hold_max, 0);

	cr_assert(
	    dp_fault_parse("rx_drop=0.5%,tx_dup=0.0001%,tx_delay=100%:250us,hold=16,seed=0x10", &c,
			   err, sizeof err),
	    "%s", err);
	cr_assert_eq(c.rx_drop_ppm, 5000);
	cr_assert_eq(c.tx_drop_ppm, 0);
	cr_assert_eq(c.tx_dup_ppm, 1);
	cr_assert_eq(c.rx_dup_ppm, 0);
	cr_assert_eq(c.tx_delay_ppm, 1000000);
	cr_assert_eq(c.rx_delay_ppm, 0);
	cr_assert_eq(c.delay_max_ns, 250 * ORDO_NS_PER_US);
	cr_assert_eq(c.hold_max, 16);
	cr_assert_eq(c.seed, 16);

	cr_assert(dp_fault_parse("delay=1%:40ns,drop=0%", &c, err, sizeof err));
	cr_assert_eq(c.delay_max_ns, 40);
	cr_assert_eq(c.rx_drop_ppm, 0);
	cr_assert(dp_fault_parse("", &c, err, sizeof err), "empty text: no faults");
	cr_assert_eq(c.rx_drop_ppm + c.tx_drop_ppm + c.rx_delay_ppm, 0);
}

Test(fault, parse_errors_name_the_token)
{
	static const struct {
		const char *text;
		const char *token;
	} bad[] = {
	    {"drop=5", "drop=5"},
	    {"drop=101%", "drop=101%"},
	    {"drop=100.0001%", "drop=100.0001%"},
	    {"dup=0.00001%", "dup=0.00001%"},
	    {"drop=-1%", "drop=-1%"},
	    {"drop=x%", "drop=x%"},
	    {"drop=1.%", "drop=1.%"},
	    {"drop=5%,frob=1%", "frob=1%"},
	    {"delay=2%:3parsecs", "delay=2%:3parsecs"},
	    {"delay=2%:ms", "delay=2%:ms"},
	    {"delay=2%:0ms", "delay=2%:0ms"},
	    {"dup=1%:3ms", "dup=1%:3ms"},
	    {"hold=0", "hold=0"},
	    {"seed=abc", "seed=abc"},
	    {"drop", "drop"},
	    {"drop=5%,,dup=1%", "''"},
	    {"drop=5%,", "''"},
	    {"rx_=5%", "rx_=5%"},
	};
	for (unsigned i = 0; i < ORDO_ARRAY_LEN(bad); i++) {
		struct dp_fault_cfg c;
		memset(&c, 0x5A, sizeof c);
		char err[160] = "";
		cr_assert_not(dp_fault_parse(bad[i].text, &c, err, sizeof err), "'%s' accepted",
			      bad[i].text);
		cr_assert_not_null(strstr(err, bad[i].token), "'%s': error '%s' lacks '%s'",
				   bad[i].text, err, bad[i].token);
		cr_assert_eq(c.hold_max, 0x5A5A5A5Au, "cfg untouched on error");
	}
}

/* ----------------------------------------------------------------- addr */

Test(addr, parse_ip_accepts)
{
	uint32_t ip;
	cr_assert(dp_parse_ip("127.0.0.1", &ip));
	cr_assert_eq(ip, 0x7F000001u);
	cr_assert(dp_parse_ip("0.0.0.0", &ip));
	cr_assert_eq(ip, 0);
	cr_assert(dp_parse_ip("255.255.255.255", &ip));
	cr_assert_eq(ip, 0xFFFFFFFFu);
	cr_assert(dp_parse_ip("10.20.30.40", &ip));
	cr_assert_eq(ip, 0x0A141E28u);
}

Test(addr, parse_ip_rejects)
{
	static const char *const bad[] = {
	    "",		 "1.2.3",     "1.2.3.4.",   "1.2.3.4.5",  "256.0.0.1",
	    "1.2.3.256", " 1.2.3.4",  "1.2.3.4 ",   "1.2.3.4x",	  "01.2.3.4",
	    "1.2.3.00",	 "1..3.4",    ".1.2.3",	    "a.b.c.d",	  "-1.2.3.4",
	    "+1.2.3.4",	 "1.2.3.4/8", "1.2.3.4:80", "0x7f.0.0.1", "4294967297.0.0.1",
	    "1,2,3,4",
	};
	for (unsigned i = 0; i < ORDO_ARRAY_LEN(bad); i++) {
		uint32_t ip = 0xDEADBEEF;
		cr_assert_not(dp_parse_ip(bad[i], &ip), "'%s' accepted", bad[i]);
		cr_assert_eq(ip, 0xDEADBEEF, "output untouched for '%s'", bad[i]);
	}
	uint32_t ip;
	cr_assert_not(dp_parse_ip(NULL, &ip));
}

Test(addr, addr_str)
{
	char out[22];
	struct dp_addr a = {0xFFFFFFFFu, 65535};
	cr_assert_str_eq(dp_addr_str(&a, out, sizeof out), "255.255.255.255:65535");
	a = (struct dp_addr){0x7F000101u, 7400};
	cr_assert_str_eq(dp_addr_str(&a, out, sizeof out), "127.0.1.1:7400");
	char small[8];
	cr_assert_str_eq(dp_addr_str(&a, small, sizeof small), "127.0.1");
}

/* ------------------------------------------------------------ share */

/* One datagram: 4 bytes of tag (which view it is for), 4 of sequence. */
static void send_one(struct dp_transport *t, uint16_t to_port, uint32_t tag, uint32_t seq)
{
	struct dp_buf *b = dp_alloc(t);
	cr_assert_not_null(b);
	ordo_st32(b->data, tag);
	ordo_st32(b->data + 4, seq);
	memset(b->data + 8, 0xA5, 56);
	b->len = 64;
	b->peer = (struct dp_addr){LOCALHOST, to_port};
	b->local.port = 0;
	cr_assert_eq(dp_tx_burst(t, &b, 1), 1u);
}

/* Receives from t until want datagrams came or 2 s passed; checks each is
 * tagged tag, arrived on port, in sequence from 0. Returns how many. */
static unsigned recv_check(struct dp_transport *t, unsigned want, uint32_t tag, uint16_t port)
{
	unsigned got = 0;
	uint64_t until = ordo_mono_ns() + 2 * ORDO_NS_PER_S;
	while (got < want && ordo_mono_ns() < until) {
		struct dp_buf *bufs[ORDO_DP_BURST_MAX];
		unsigned k = dp_rx_burst(t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < k; i++) {
			cr_assert_eq(ordo_ld32(bufs[i]->data), tag,
				     "datagram for view %u in view %u", ordo_ld32(bufs[i]->data),
				     tag);
			cr_assert_eq(ordo_ld32(bufs[i]->data + 4), got, "view %u: seq %u, want %u",
				     tag, ordo_ld32(bufs[i]->data + 4), got);
			cr_assert_eq(bufs[i]->local.port, port);
			got++;
		}
		dp_free(t, bufs, k);
		if (!k)
			dp_wait(t, ORDO_NS_PER_MS);
	}
	return got;
}

Test(share, each_view_gets_its_ports_datagrams_in_order)
{
	uint16_t ports[4], src_port;
	struct dp_transport *inner = open_udp(4, 1024, ports);
	struct dp_transport *src = open_udp(1, 1024, &src_port);
	struct dp_share *s;
	cr_assert_eq(dp_share_open(inner, ports, 4, 256, false, &s), 0);
	for (uint32_t seq = 0; seq < 50; seq++)
		for (uint32_t v = 0; v < 4; v++)
			send_one(src, ports[v], v, seq);
	/* Reading view 3 first pulls the others' datagrams into their queues. */
	for (int v = 3; v >= 0; v--)
		cr_assert_eq(recv_check(dp_share_view(s, (uint32_t)v), 50, (uint32_t)v, ports[v]),
			     50u, "view %d", v);
	struct dp_share_counters c;
	dp_share_counters(s, &c);
	cr_assert_eq(c.rx_queue_full + c.rx_no_view, 0u);
	cr_assert_eq(dp_share_view(s, 2)->stats.rx_datagrams, 50u);
	dp_share_close(s);
	dp_close(src);
}

Test(share, a_view_sends_from_its_own_port)
{
	uint16_t ports[3], src_port;
	struct dp_transport *inner = open_udp(3, 256, ports);
	struct dp_transport *dst = open_udp(1, 256, &src_port);
	struct dp_share *s;
	cr_assert_eq(dp_share_open(inner, ports, 3, 64, false, &s), 0);
	struct dp_transport *v = dp_share_view(s, 1);
	send_one(v, src_port, 1, 0);
	struct dp_buf *b = NULL;
	uint64_t until = ordo_mono_ns() + 2 * ORDO_NS_PER_S;
	while (ordo_mono_ns() < until && dp_rx_burst(dst, &b, 1) == 0)
		dp_wait(dst, ORDO_NS_PER_MS);
	cr_assert_not_null(b, "nothing arrived");
	cr_assert_eq(b->peer.port, ports[1], "sent from %u, view 1 has %u", b->peer.port, ports[1]);
	dp_free(dst, &b, 1);
	cr_assert_eq(v->stats.tx_datagrams, 1u);
	dp_share_close(s);
	dp_close(dst);
}

Test(share, full_queue_and_unknown_port_counted_and_freed)
{
	uint16_t ports[3], src_port;
	/* A small pool: a leaked buffer would show as a failed allocation. */
	struct dp_transport *inner = open_udp(3, 64, ports);
	struct dp_transport *src = open_udp(1, 256, &src_port);
	struct dp_share *s;
	/* Views for the first two ports only; queues of 4. */
	cr_assert_eq(dp_share_open(inner, ports, 2, 4, false, &s), 0);
	for (uint32_t seq = 0; seq < 10; seq++)
		send_one(src, ports[1], 1, seq);
	for (uint32_t seq = 0; seq < 5; seq++)
		send_one(src, ports[2], 2, seq);
	/* View 0 reads: nothing is for it, but it sorts the rest. */
	usleep(50000);
	struct dp_buf *bufs[8];
	for (int i = 0; i < 20; i++)
		cr_assert_eq(dp_rx_burst(dp_share_view(s, 0), bufs, 8), 0u);
	struct dp_share_counters c;
	dp_share_counters(s, &c);
	cr_assert_eq(c.rx_queue_full, 6u, "10 for a queue of 4: %lu dropped",
		     (unsigned long)c.rx_queue_full);
	cr_assert_eq(c.rx_no_view, 5u);
	cr_assert_eq(recv_check(dp_share_view(s, 1), 4, 1, ports[1]), 4u);
	/* Every buffer is back: the whole pool can be taken. */
	struct dp_buf *all[64];
	for (unsigned i = 0; i < 64; i++) {
		all[i] = dp_alloc(dp_share_view(s, 0));
		cr_assert_not_null(all[i], "buffer %u of 64 missing", i);
	}
	dp_free(dp_share_view(s, 0), all, 64);
	dp_share_close(s);
	dp_close(src);
}

struct reader {
	struct dp_transport *t;
	uint32_t tag;
	uint16_t port;
	unsigned want, got;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->got = recv_check(r->t, r->want, r->tag, r->port);
	/* and answer once from the view, concurrently with the others */
	send_one(r->t, r->port, r->tag, 0);
	return NULL;
}

Test(share, views_in_threads_at_once)
{
	enum { VIEWS = 4, EACH = 300 };
	uint16_t ports[VIEWS], src_port;
	struct dp_transport *inner = open_udp(VIEWS, 2048, ports);
	struct dp_transport *src = open_udp(1, 2048, &src_port);
	struct dp_share *s;
	cr_assert_eq(dp_share_open(inner, ports, VIEWS, 512, false, &s), 0);
	struct reader r[VIEWS];
	pthread_t th[VIEWS];
	for (uint32_t v = 0; v < VIEWS; v++) {
		r[v] = (struct reader){dp_share_view(s, v), v, ports[v], EACH, 0};
		cr_assert_eq(pthread_create(&th[v], NULL, reader_main, &r[v]), 0);
	}
	for (uint32_t seq = 0; seq < EACH; seq++) {
		for (uint32_t v = 0; v < VIEWS; v++)
			send_one(src, ports[v], v, seq);
		if (seq % 50 == 49)
			usleep(2000); /* stay within the sockets' buffers */
	}
	for (uint32_t v = 0; v < VIEWS; v++) {
		pthread_join(th[v], NULL);
		cr_assert_eq(r[v].got, (unsigned)EACH, "view %u got %u", v, r[v].got);
	}
	cr_assert_eq(dp_share_inner(s)->stats.tx_datagrams, (uint64_t)VIEWS);
	dp_share_close(s);
	dp_close(src);
}

Test(share, open_refuses_bad_configurations)
{
	uint16_t ports[2];
	struct dp_transport *inner = open_udp(2, 64, ports);
	struct dp_share *s = NULL;
	uint16_t dup[2] = {ports[0], ports[0]};
	uint16_t zero[2] = {ports[0], 0};
	cr_assert_eq(dp_share_open(inner, dup, 2, 8, false, &s), -EINVAL);
	cr_assert_eq(dp_share_open(inner, zero, 2, 8, false, &s), -EINVAL);
	cr_assert_eq(dp_share_open(inner, ports, 0, 8, false, &s), -EINVAL);
	cr_assert_eq(dp_share_open(inner, ports, 2, 0, false, &s), -EINVAL);
	cr_assert_eq(dp_share_open(NULL, ports, 2, 8, false, &s), -EINVAL);
	cr_assert_null(s);
	dp_close(inner);
}
