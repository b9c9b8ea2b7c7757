/* The DPDK transport; see dpdk.h. The caller's loop (the main lcore) polls
 * every RX queue of the port in turn and transmits on queue 0; with worker
 * lcores, they poll the RX queues and hand datagrams over through rings. */
#include "dataplane/dpdk.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include "common/ordo_time.h"
#include "dataplane/pkt.h"

#define BURST		 32u
#define PRIV_BYTES	 RTE_ALIGN(sizeof(struct dp_buf), RTE_MBUF_PRIV_ALIGN)
#define IDLE_MIN_NS	 10000ull   /* first sleep after an empty poll */
#define IDLE_MAX_NS	 4000000ull /* longest sleep while idle (after ~8 ms of it) */
#define ARP_TTL_NS	 (300ull * ORDO_NS_PER_S)
#define ARP_RETRY_NS	 (200ull * ORDO_NS_PER_MS)
#define ARP_HOLD_NS	 (1000ull * ORDO_NS_PER_MS) /* a held datagram waits this long */
#define VLAN_SLACK_BYTES 4u
#define RX_RAW		 0x80000000u /* dp_buf.rx_flags: a frame for the main lcore's rx_one */

/* Counters a worker lcore alone writes and any thread may read. */
#define BUMP(x, n) __atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define READ(x)	   __atomic_load_n(&(x), __ATOMIC_RELAXED)

ORDO_STATIC_ASSERT(sizeof(struct dp_buf) <= 128, "dp_buf fits the mbuf private area");

/* A datagram waiting for its peer's MAC. */
struct held {
	struct rte_mbuf *m;
	uint32_t ip;
	uint64_t deadline_ns;
};

struct dpdk;

/* A worker lcore: polls its RX queues and hands what the main lcore must
 * see to it through ring (single producer, single consumer). */
struct worker {
	struct dpdk *d;
	unsigned lcore;
	uint16_t q[ORDO_DPDK_QUEUES_MAX];
	uint16_t nq;
	struct rte_ring *ring;
	uint64_t handed, rx_bad, rx_not_for_us, ring_full, check_drops, idle_sleeps;
	uint64_t check_by_code[DP_DPDK_CHECK_CODES];
} __rte_cache_aligned;

struct dpdk {
	struct dp_transport t; /* first: the interface */
	struct dp_dpdk_cfg cfg;
	uint16_t port;
	uint16_t nq;	   /* RX (and TX) queues configured */
	uint16_t rxq_next; /* the RX queue polled first next time */
	struct rte_mempool *pool;
	uint8_t mac[6];
	uint32_t tx_flags; /* PKT_TX_* the port offloads */
	uint64_t tx_ol;	   /* the matching mbuf ol_flags */
	struct pkt_arp_cache arp;
	struct pkt_arp_entry *arp_mem;
	struct held *held;
	uint32_t nheld;
	uint16_t ip_id;
	uint64_t idle_ns;
	struct rte_mbuf *ctl[BURST]; /* ARP, ICMP, IGMP frames to send */
	uint32_t nctl;
	struct dp_dpdk_counters c;
	/* worker lcores (none: the main lcore polls the queues itself) */
	struct worker *w;
	uint16_t nw, wnext;
	int efd;		  /* a worker's signal to the sleeping main lcore */
	atomic_bool stop;	  /* workers: return */
	atomic_int main_sleeping; /* the main lcore waits on efd */
};

static bool eal_ready;
/* The transport /ordo/port (DPDK telemetry) reports on: one per process,
 * set once its port runs, cleared before it is freed. The telemetry thread
 * reads it, and what it points to, under telemetry_lock, so a close waits
 * for a report in progress. */
static pthread_mutex_t telemetry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dpdk *telemetry_port;

static struct dpdk *of(struct dp_transport *t)
{
	return (struct dpdk *)t;
}

static struct dp_buf *buf_of(struct rte_mbuf *m)
{
	return (struct dp_buf *)rte_mbuf_to_priv(m);
}

static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Sends n frames; frees and counts what the queue did not take. */
static uint16_t tx_frames(struct dpdk *d, struct rte_mbuf **out, uint32_t n)
{
	uint16_t sent = rte_eth_tx_burst(d->port, 0, out, (uint16_t)n);
	for (uint32_t k = sent; k < n; k++)
		rte_pktmbuf_free(out[k]);
	d->t.stats.tx_dropped += n - sent;
	return sent;
}

/* ------------------------------------------------------------ control */

static void ctl_flush(struct dpdk *d)
{
	if (!d->nctl)
		return;
	(void)tx_frames(d, d->ctl, d->nctl);
	d->nctl = 0;
}

/* A fresh mbuf for a control frame of len bytes, written by the caller. */
static uint8_t *ctl_frame(struct dpdk *d, uint32_t len, struct rte_mbuf **out)
{
	if (d->nctl == BURST)
		ctl_flush(d);
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->pool);
	if (!m) {
		d->t.stats.alloc_failed++;
		return NULL;
	}
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
	if (!p) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	*out = m;
	return p;
}

static void ctl_queue(struct dpdk *d, struct rte_mbuf *m)
{
	d->ctl[d->nctl++] = m;
}

static void send_arp(struct dpdk *d, uint16_t op, const uint8_t tha[6], uint32_t tpa)
{
	struct rte_mbuf *m;
	uint8_t *p = ctl_frame(d, PKT_ETH_MIN_BYTES, &m);
	if (!p)
		return;
	static const uint8_t zero[6];
	pkt_build_arp(p, op, d->mac, d->cfg.ip, op == 1 ? zero : tha, tpa);
	ctl_queue(d, m);
	if (op == 1)
		d->c.arp_requests_sent++;
	else
		d->c.arp_requests_answered++;
}

static void send_igmp_report(struct dpdk *d)
{
	if (!d->cfg.mcast_group)
		return;
	struct rte_mbuf *m;
	uint8_t *p = ctl_frame(d, PKT_ETH_MIN_BYTES, &m);
	if (!p)
		return;
	uint32_t len = pkt_build_igmp_report(p, d->mac, d->cfg.ip, d->cfg.mcast_group);
	if (len < PKT_ETH_MIN_BYTES)
		rte_pktmbuf_trim(m, (uint16_t)(PKT_ETH_MIN_BYTES - len));
	ctl_queue(d, m);
	d->c.igmp_reports_sent++;
}

/* ------------------------------------------------------------ ARP hold */

static void held_send(struct dpdk *d, uint32_t ip, const uint8_t mac[6])
{
	struct rte_mbuf *out[BURST];
	uint32_t n = 0, keep = 0;
	for (uint32_t i = 0; i < d->nheld; i++) {
		struct held *h = &d->held[i];
		if (h->ip != ip) {
			d->held[keep++] = *h;
			continue;
		}
		memcpy(rte_pktmbuf_mtod(h->m, uint8_t *), mac, 6);
		out[n++] = h->m;
		if (n == BURST) {
			d->t.stats.tx_datagrams += tx_frames(d, out, n);
			n = 0;
		}
	}
	d->nheld = keep;
	if (n)
		d->t.stats.tx_datagrams += tx_frames(d, out, n);
}

/* Drops held datagrams whose peer never answered; asks again for the rest. */
static void held_expire(struct dpdk *d, uint64_t now)
{
	uint32_t keep = 0;
	for (uint32_t i = 0; i < d->nheld; i++) {
		struct held *h = &d->held[i];
		if (now >= h->deadline_ns) {
			rte_pktmbuf_free(h->m);
			d->c.tx_arp_dropped++;
			d->t.stats.tx_dropped++;
			continue;
		}
		uint8_t mac[6];
		if (pkt_arp_lookup(&d->arp, h->ip, now, mac) == PKT_ARP_ASK)
			send_arp(d, 1, broadcast_mac, h->ip);
		d->held[keep++] = *h;
	}
	d->nheld = keep;
}

/* ------------------------------------------------------------ rx */

static bool our_port(const struct dpdk *d, uint16_t port)
{
	if (d->cfg.udp_range_lo && port >= d->cfg.udp_range_lo && port <= d->cfg.udp_range_hi)
		return true;
	for (uint32_t i = 0; i < d->cfg.nudp_ports; i++)
		if (d->cfg.udp_ports[i] == port)
			return true;
	return false;
}

/* Parses frame m (a single segment; false otherwise). */
static bool parse(struct rte_mbuf *m, struct pkt_info *in, enum pkt_kind *k)
{
	if (m->nb_segs != 1)
		return false;
	uint32_t rxf = 0;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		rxf |= PKT_RX_IP_CSUM_GOOD;
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		rxf |= PKT_RX_L4_CSUM_GOOD;
	*k = pkt_parse(rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_data_len(m), rxf, in);
	return true;
}

static bool udp_for_us(const struct dpdk *d, const struct pkt_info *in)
{
	bool to_us =
	    in->dst_ip == d->cfg.ip || (d->cfg.mcast_group && in->dst_ip == d->cfg.mcast_group);
	return to_us && our_port(d, in->dst_port);
}

/* The datagram in m as the caller sees it. */
static struct dp_buf *udp_buf(struct rte_mbuf *m, const struct pkt_info *in)
{
	struct dp_buf *b = buf_of(m);
	b->data = rte_pktmbuf_mtod(m, uint8_t *) + in->payload_off;
	b->len = in->payload_len;
	b->cap = in->payload_len;
	b->peer = (struct dp_addr){.ip = in->src_ip, .port = in->src_port};
	b->local = (struct dp_addr){.ip = in->dst_ip, .port = in->dst_port};
	b->rx_flags = 0;
	b->priv = m;
	return b;
}

/* A datagram for the caller, on the main lcore: the sender is on our link,
 * so its MAC answers for its address (replies need no ARP round trip). */
static void udp_taken(struct dpdk *d, uint32_t src_ip, const uint8_t src_mac[6], uint32_t bytes,
		      uint64_t now)
{
	if (!pkt_ip_is_multicast(src_ip) && src_ip != 0)
		pkt_arp_learn(&d->arp, src_ip, src_mac, now);
	d->t.stats.rx_datagrams++;
	d->t.stats.rx_bytes += bytes;
}

/* One received frame: true if it is a datagram for the caller (b filled). */
static bool rx_one(struct dpdk *d, struct rte_mbuf *m, uint64_t now)
{
	struct pkt_info in;
	enum pkt_kind k;
	if (!parse(m, &in, &k)) {
		d->c.rx_bad++;
		return false;
	}
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m);
	switch (k) {
	case PKT_UDP:
		if (!udp_for_us(d, &in)) {
			d->c.rx_not_for_us++;
			return false;
		}
		if (in.payload_len > d->t.max_datagram) {
			d->t.stats.rx_truncated++;
			return false;
		}
		udp_buf(m, &in);
		udp_taken(d, in.src_ip, in.src_mac, in.payload_len, now);
		return true;
	case PKT_ARP_REQUEST:
		if (in.arp_spa)
			pkt_arp_learn(&d->arp, in.arp_spa, in.arp_sha, now);
		if (in.arp_tpa == d->cfg.ip && in.arp_spa != d->cfg.ip)
			send_arp(d, 2, in.arp_sha, in.arp_spa);
		else
			d->c.rx_not_for_us++;
		return false;
	case PKT_ARP_REPLY:
		if (in.arp_spa) {
			pkt_arp_learn(&d->arp, in.arp_spa, in.arp_sha, now);
			d->c.arp_replies_learned++;
			held_send(d, in.arp_spa, in.arp_sha);
		}
		return false;
	case PKT_ICMP_ECHO: {
		if (in.dst_ip != d->cfg.ip) {
			d->c.rx_not_for_us++;
			return false;
		}
		struct rte_mbuf *r;
		uint32_t room = len < PKT_ETH_MIN_BYTES ? PKT_ETH_MIN_BYTES : len;
		uint8_t *p = ctl_frame(d, room, &r);
		if (!p)
			return false;
		uint32_t rl = pkt_build_icmp_echo_reply(p, room, f, &in, d->mac);
		if (rl == 0) {
			rte_pktmbuf_free(r);
			d->c.rx_bad++;
			return false;
		}
		if (rl < room)
			rte_pktmbuf_trim(r, (uint16_t)(room - rl));
		ctl_queue(d, r);
		d->c.icmp_echo_answered++;
		return false;
	}
	case PKT_IGMP_QUERY:
		if (d->cfg.mcast_group &&
		    (in.igmp_group == 0 || in.igmp_group == d->cfg.mcast_group))
			send_igmp_report(d);
		return false;
	case PKT_IGNORED:
		d->c.rx_not_for_us++;
		return false;
	default:
		d->c.rx_bad++;
		return false;
	}
}

/* Idle back-off, for the main loop and the workers alike: the caller
 * polled and found nothing. Sleeps a little, longer while it stays idle
 * (10 us doubling to 4 ms, at most timeout_ns); traffic resets *idle_ns. */
static void idle_sleep(uint64_t *idle_ns, uint64_t timeout_ns)
{
	*idle_ns = *idle_ns ? 2 * *idle_ns : IDLE_MIN_NS;
	if (*idle_ns > IDLE_MAX_NS)
		*idle_ns = IDLE_MAX_NS;
	uint64_t ns = timeout_ns < *idle_ns ? timeout_ns : *idle_ns;
	struct timespec ts = {.tv_sec = (time_t)(ns / ORDO_NS_PER_S),
			      .tv_nsec = (long)(ns % ORDO_NS_PER_S)};
	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ worker lcores */

/* A worker's look at frame m: true if the main lcore gets it (a checked
 * datagram for us, or RX_RAW: ARP, ICMP, IGMP, an oversized datagram),
 * false if it was counted here and is to be freed. */
static bool worker_frame(struct worker *w, struct rte_mbuf *m)
{
	struct dpdk *d = w->d;
	struct pkt_info in;
	enum pkt_kind k;
	if (!parse(m, &in, &k)) {
		BUMP(w->rx_bad, 1);
		return false;
	}
	switch (k) {
	case PKT_UDP: {
		if (!udp_for_us(d, &in)) {
			BUMP(w->rx_not_for_us, 1);
			return false;
		}
		if (in.payload_len > d->t.max_datagram)
			break; /* the main lcore counts it */
		struct dp_buf *b = udp_buf(m, &in);
		if (d->cfg.rx_check) {
			unsigned code = d->cfg.rx_check(d->cfg.rx_check_ctx, b);
			if (code) {
				BUMP(w->check_drops, 1);
				if (code < DP_DPDK_CHECK_CODES)
					BUMP(w->check_by_code[code], 1);
				return false;
			}
			b->rx_flags = DP_RX_CHECKED;
		}
		return true;
	}
	case PKT_ARP_REQUEST:
	case PKT_ARP_REPLY:
	case PKT_ICMP_ECHO:
	case PKT_IGMP_QUERY:
		break;
	case PKT_IGNORED:
		BUMP(w->rx_not_for_us, 1);
		return false;
	default:
		BUMP(w->rx_bad, 1);
		return false;
	}
	struct dp_buf *b = buf_of(m);
	b->rx_flags = RX_RAW;
	b->priv = m;
	return true;
}

/* Puts n frames on the worker's ring (a full ring drops the rest, counted)
 * and wakes the main lcore if it sleeps. */
static void hand_over(struct worker *w, struct rte_mbuf **ms, unsigned n)
{
	unsigned done = rte_ring_sp_enqueue_burst(w->ring, (void **)ms, n, NULL);
	if (done < n) {
		BUMP(w->ring_full, n - done);
		rte_pktmbuf_free_bulk(ms + done, n - done);
	}
	if (!done)
		return;
	BUMP(w->handed, done);
	/* Pairs with dpdk_wait: the ring's new tail is visible before we
	 * look, or the main lcore sees it before it sleeps. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_exchange(&w->d->main_sleeping, 0)) {
		uint64_t one = 1;
		ssize_t r = write(w->d->efd, &one, sizeof one);
		(void)r;
	}
}

/* A worker lcore's run-to-completion loop: poll, check, hand over; sleep
 * after empty polls as dp_wait does, unless busy_poll. */
static int worker_main(void *arg)
{
	struct worker *w = arg;
	struct dpdk *d = w->d;
	struct rte_mbuf *ms[BURST], *out[BURST];
	uint64_t idle_ns = 0;
	while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
		unsigned got = 0;
		for (uint16_t j = 0; j < w->nq; j++) {
			uint16_t k = rte_eth_rx_burst(d->port, w->q[j], ms, BURST);
			unsigned nout = 0;
			for (uint16_t i = 0; i < k; i++) {
				if (worker_frame(w, ms[i]))
					out[nout++] = ms[i];
				else
					rte_pktmbuf_free(ms[i]);
			}
			if (nout)
				hand_over(w, out, nout);
			got += k;
		}
		if (got) {
			idle_ns = 0;
			continue;
		}
		if (d->cfg.busy_poll) {
			rte_pause();
			continue;
		}
		idle_sleep(&idle_ns, IDLE_MAX_NS);
		BUMP(w->idle_sleeps, 1);
	}
	return 0;
}

/* The main lcore's receive with workers: what their rings hold, one ring
 * after another, starting one further each call. */
static unsigned rx_from_workers(struct dpdk *d, struct dp_buf **bufs, unsigned n, uint64_t now)
{
	void *objs[BURST];
	unsigned got = 0;
	for (uint16_t j = 0; j < d->nw && got < n; j++) {
		struct worker *w = &d->w[(d->wnext + j) % d->nw];
		while (got < n) {
			unsigned want = n - got < BURST ? n - got : BURST;
			unsigned k = rte_ring_sc_dequeue_burst(w->ring, objs, want, NULL);
			for (unsigned i = 0; i < k; i++) {
				struct rte_mbuf *m = objs[i];
				struct dp_buf *b = buf_of(m);
				if (b->rx_flags & RX_RAW) {
					if (rx_one(d, m, now))
						bufs[got++] = b;
					else
						rte_pktmbuf_free(m);
					continue;
				}
				/* the Ethernet source is at offset 6 of the frame */
				udp_taken(d, b->peer.ip, rte_pktmbuf_mtod(m, uint8_t *) + 6, b->len,
					  now);
				bufs[got++] = b;
			}
			if (k < want)
				break;
		}
	}
	d->wnext = (uint16_t)((d->wnext + 1) % d->nw);
	return got;
}

/* The main lcore's receive without workers: every RX queue once per call,
 * starting one further each time, so a busy queue cannot starve the others. */
static unsigned rx_from_queues(struct dpdk *d, struct dp_buf **bufs, unsigned n, uint64_t now)
{
	struct rte_mbuf *ms[BURST];
	unsigned got = 0;
	for (uint16_t j = 0; j < d->nq && got < n; j++) {
		uint16_t q = (uint16_t)((d->rxq_next + j) % d->nq);
		while (got < n) {
			uint16_t want = (uint16_t)(n - got < BURST ? n - got : BURST);
			uint16_t k = rte_eth_rx_burst(d->port, q, ms, want);
			for (uint16_t i = 0; i < k; i++) {
				if (rx_one(d, ms[i], now))
					bufs[got++] = buf_of(ms[i]);
				else
					rte_pktmbuf_free(ms[i]);
			}
			if (k < want)
				break;
		}
	}
	d->rxq_next = (uint16_t)((d->rxq_next + 1) % d->nq);
	return got;
}

static unsigned dpdk_rx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct dpdk *d = of(t);
	uint64_t now = ordo_mono_ns();
	unsigned got = d->nw ? rx_from_workers(d, bufs, n, now) : rx_from_queues(d, bufs, n, now);
	ctl_flush(d);
	if (got)
		d->idle_ns = 0;
	return got;
}

/* ------------------------------------------------------------ tx */

static struct dp_buf *dpdk_alloc(struct dp_transport *t)
{
	struct dpdk *d = of(t);
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->pool);
	if (!m) {
		t->stats.alloc_failed++;
		return NULL;
	}
	struct dp_buf *b = buf_of(m);
	memset(b, 0, sizeof *b);
	b->data = rte_pktmbuf_mtod(m, uint8_t *) + PKT_UDP_HEADROOM;
	b->cap = t->max_datagram;
	b->priv = m;
	return b;
}

static void dpdk_free(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	(void)t;
	for (unsigned i = 0; i < n; i++)
		rte_pktmbuf_free((struct rte_mbuf *)bufs[i]->priv);
}

/* Frames b in its mbuf: headers in front of the payload. false: no room. */
static bool frame(struct dpdk *d, struct dp_buf *b, const uint8_t dst_mac[6])
{
	struct rte_mbuf *m = b->priv;
	uint8_t *base = (uint8_t *)m->buf_addr;
	uint8_t *f = b->data - PKT_UDP_HEADROOM;
	if (f < base || b->len > d->t.max_datagram ||
	    (uint64_t)(f - base) + PKT_UDP_HEADROOM + b->len > m->buf_len)
		return false;
	m->data_off = (uint16_t)(f - base);
	m->data_len = (uint16_t)(PKT_UDP_HEADROOM + b->len);
	m->pkt_len = m->data_len;
	m->nb_segs = 1;
	m->next = NULL;
	pkt_build_udp(f, d->mac, dst_mac, d->cfg.ip, b->peer.ip, b->local.port, b->peer.port,
		      b->len, d->ip_id++, d->tx_flags);
	m->ol_flags = d->tx_ol;
	m->l2_len = PKT_ETH_HDR_BYTES;
	m->l3_len = PKT_IPV4_HDR_BYTES;
	return true;
}

static unsigned dpdk_tx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct dpdk *d = of(t);
	struct rte_mbuf *out[BURST];
	unsigned k = 0, sent = 0;
	uint64_t now = ordo_mono_ns();
	for (unsigned i = 0; i < n; i++) {
		struct dp_buf *b = bufs[i];
		struct rte_mbuf *m = b->priv;
		uint8_t mac[6];
		bool hold = false;
		uint32_t ip = b->peer.ip;
		if (pkt_ip_is_multicast(ip)) {
			pkt_mcast_mac(ip, mac);
		} else if (ip == 0xFFFFFFFFu) {
			memcpy(mac, broadcast_mac, 6);
		} else {
			switch (pkt_arp_lookup(&d->arp, ip, now, mac)) {
			case PKT_ARP_RESOLVED:
				break;
			case PKT_ARP_ASK:
				send_arp(d, 1, broadcast_mac, ip);
				/* fall through */
			case PKT_ARP_WAIT:
				hold = true;
				memset(mac, 0, 6);
				break;
			case PKT_ARP_FULL:
				rte_pktmbuf_free(m);
				d->c.tx_arp_dropped++;
				t->stats.tx_dropped++;
				continue;
			}
		}
		if (!frame(d, b, mac)) {
			rte_pktmbuf_free(m);
			t->stats.tx_dropped++;
			continue;
		}
		t->stats.tx_bytes += b->len;
		if (hold) {
			if (d->nheld == d->cfg.arp_pending) {
				rte_pktmbuf_free(m);
				d->c.tx_arp_dropped++;
				t->stats.tx_dropped++;
			} else {
				d->held[d->nheld++] = (struct held){
				    .m = m, .ip = ip, .deadline_ns = now + ARP_HOLD_NS};
				d->c.tx_arp_held++;
			}
			continue;
		}
		out[k++] = m;
		if (k == BURST) {
			sent += tx_frames(d, out, k);
			k = 0;
		}
	}
	if (k)
		sent += tx_frames(d, out, k);
	ctl_flush(d);
	t->stats.tx_datagrams += sent;
	return sent;
}

/* ------------------------------------------------------------ wait, close */

static void dpdk_wait(struct dp_transport *t, uint64_t timeout_ns)
{
	struct dpdk *d = of(t);
	if (d->nheld)
		held_expire(d, ordo_mono_ns());
	ctl_flush(d);
	if (timeout_ns == 0 || d->cfg.busy_poll)
		return;
	if (d->nw) {
		/* The workers poll; sleep until one hands something over (it
		 * writes efd when it sees main_sleeping) or the timeout. */
		atomic_store(&d->main_sleeping, 1);
		atomic_thread_fence(memory_order_seq_cst);
		for (uint16_t i = 0; i < d->nw; i++)
			if (!rte_ring_empty(d->w[i].ring)) {
				atomic_store(&d->main_sleeping, 0);
				return;
			}
		struct pollfd p = {.fd = d->efd, .events = POLLIN};
		struct timespec ts = {.tv_sec = (time_t)(timeout_ns / ORDO_NS_PER_S),
				      .tv_nsec = (long)(timeout_ns % ORDO_NS_PER_S)};
		if (ppoll(&p, 1, &ts, NULL) > 0) {
			uint64_t v;
			ssize_t r = read(d->efd, &v, sizeof v);
			(void)r;
		}
		atomic_store(&d->main_sleeping, 0);
		d->c.idle_sleeps++;
		return;
	}
	idle_sleep(&d->idle_ns, timeout_ns); /* rx_burst resets it */
	d->c.idle_sleeps++;
}

/* Stops the worker lcores and frees what their rings still hold. */
static void workers_stop(struct dpdk *d)
{
	atomic_store(&d->stop, true);
	for (uint16_t i = 0; i < d->nw; i++) {
		struct worker *w = &d->w[i];
		if (w->lcore != RTE_MAX_LCORE)
			(void)rte_eal_wait_lcore(w->lcore);
		void *m;
		while (w->ring && rte_ring_sc_dequeue(w->ring, &m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(w->ring);
	}
	rte_free(d->w);
	d->w = NULL;
	d->nw = 0;
	if (d->efd >= 0)
		close(d->efd);
	d->efd = -1;
}

static void dpdk_close(struct dp_transport *t)
{
	struct dpdk *d = of(t);
	pthread_mutex_lock(&telemetry_lock);
	if (telemetry_port == d)
		telemetry_port = NULL;
	pthread_mutex_unlock(&telemetry_lock);
	workers_stop(d);
	ctl_flush(d);
	for (uint32_t i = 0; i < d->nheld; i++)
		rte_pktmbuf_free(d->held[i].m);
	int rc = rte_eth_dev_stop(d->port);
	(void)rc;
	rte_eth_dev_close(d->port);
	rte_mempool_free(d->pool);
	free(d->arp_mem);
	free(d->held);
	free(d);
}

static const struct dp_ops dpdk_ops = {
    .rx_burst = dpdk_rx_burst,
    .tx_burst = dpdk_tx_burst,
    .alloc = dpdk_alloc,
    .free = dpdk_free,
    .wait = dpdk_wait,
    .close = dpdk_close,
};

/* ------------------------------------------------------------ open */

void dp_dpdk_cfg_default(struct dp_dpdk_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->max_datagram = ORDO_DATAGRAM_MIN_MAX;
	c->mbufs = 8191;
	c->queues = 1;
	c->rx_desc = 1024;
	c->tx_desc = 1024;
	c->lcores = 1;
	c->ring_size = 1024;
	c->arp_entries = 256;
	c->arp_pending = 256;
}

/* Whether the worker lcores cfg.lcores asks for can run: enough RX queues
 * (d->nq) and free worker lcores in the EAL. Before the port is touched. */
static int workers_possible(const struct dpdk *d)
{
	uint16_t nw = d->cfg.lcores > 1 ? (uint16_t)(d->cfg.lcores - 1) : 0;
	if (!nw)
		return 0;
	if (d->nq < nw) {
		fprintf(stderr,
			"ordo dpdk: port %u has %u RX queue(s) for %u worker lcores: give it at "
			"least %u queues (dpdk_queues), or fewer lcores (dpdk_lcores)\n",
			d->port, d->nq, nw, nw);
		return -EINVAL;
	}
	unsigned lc, found = 0;
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (found < nw && rte_eal_get_lcore_state(lc) == WAIT)
			found++;
	}
	if (found < nw) {
		fprintf(stderr,
			"ordo dpdk: %u lcores asked for (dpdk_lcores = %u: the main one and %u "
			"workers), but the EAL has %u free worker lcore(s): give it %u with -l or "
			"--lcores in dpdk_eal (for example --lcores=(0-%u)@(0-1) on a 2-core "
			"host)\n",
			d->cfg.lcores, d->cfg.lcores, nw, found, nw, nw);
		return -EINVAL;
	}
	return 0;
}

/* Starts the worker lcores workers_possible allowed, on the EAL's first
 * free worker lcores; RX queue q goes to worker q % workers. */
static int workers_start(struct dpdk *d)
{
	uint16_t nw = d->cfg.lcores > 1 ? (uint16_t)(d->cfg.lcores - 1) : 0;
	if (!nw)
		return 0;
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0)
		return -errno;
	d->w = rte_zmalloc("ordo_workers", nw * sizeof *d->w, RTE_CACHE_LINE_SIZE);
	if (!d->w)
		return -ENOMEM;
	d->nw = nw;
	for (uint16_t i = 0; i < nw; i++)
		d->w[i] = (struct worker){.d = d, .lcore = RTE_MAX_LCORE};
	for (uint16_t q = 0; q < d->nq; q++) {
		struct worker *w = &d->w[q % nw];
		w->q[w->nq++] = q;
	}
	unsigned lc;
	int socket = rte_eth_dev_socket_id(d->port);
	for (uint16_t i = 0; i < nw; i++) {
		char name[RTE_RING_NAMESIZE];
		snprintf(name, sizeof name, "ordo_%u_w%u", d->port, i);
		d->w[i].ring = rte_ring_create(name, d->cfg.ring_size, socket < 0 ? 0 : socket,
					       RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
		if (!d->w[i].ring) {
			fprintf(stderr, "ordo dpdk: ring of %u entries for worker %u: %s\n",
				d->cfg.ring_size, i, rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	uint16_t i = 0;
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (i == nw || rte_eal_get_lcore_state(lc) != WAIT)
			continue;
		int rc = rte_eal_remote_launch(worker_main, &d->w[i], lc);
		if (rc) {
			fprintf(stderr, "ordo dpdk: cannot launch lcore %u: %s\n", lc,
				rte_strerror(-rc));
			return rc;
		}
		d->w[i++].lcore = lc;
	}
	return 0;
}

/* ------------------------------------------------------------ telemetry */

static void telemetry_report(struct dpdk *d, struct rte_tel_data *out);

static int telemetry_port_cb(const char *cmd, const char *params, struct rte_tel_data *out)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(out);
	pthread_mutex_lock(&telemetry_lock);
	if (telemetry_port)
		telemetry_report(telemetry_port, out);
	pthread_mutex_unlock(&telemetry_lock);
	return 0;
}

static void telemetry_report(struct dpdk *d, struct rte_tel_data *out)
{
	const struct dp_stats *st = &d->t.stats;
	struct dp_dpdk_counters cs;
	dp_dpdk_counters(&d->t, &cs);
	const struct dp_dpdk_counters *c = &cs;
	rte_tel_data_add_dict_u64(out, "port_id", d->port);
	rte_tel_data_add_dict_u64(out, "queues", d->nq);
	rte_tel_data_add_dict_u64(out, "rx_datagrams", st->rx_datagrams);
	rte_tel_data_add_dict_u64(out, "tx_datagrams", st->tx_datagrams);
	rte_tel_data_add_dict_u64(out, "rx_bytes", st->rx_bytes);
	rte_tel_data_add_dict_u64(out, "tx_bytes", st->tx_bytes);
	rte_tel_data_add_dict_u64(out, "tx_dropped", st->tx_dropped);
	rte_tel_data_add_dict_u64(out, "rx_truncated", st->rx_truncated);
	rte_tel_data_add_dict_u64(out, "alloc_failed", st->alloc_failed);
	rte_tel_data_add_dict_u64(out, "rx_not_for_us", c->rx_not_for_us);
	rte_tel_data_add_dict_u64(out, "rx_bad", c->rx_bad);
	rte_tel_data_add_dict_u64(out, "arp_requests_answered", c->arp_requests_answered);
	rte_tel_data_add_dict_u64(out, "arp_requests_sent", c->arp_requests_sent);
	rte_tel_data_add_dict_u64(out, "arp_replies_learned", c->arp_replies_learned);
	rte_tel_data_add_dict_u64(out, "tx_arp_held", c->tx_arp_held);
	rte_tel_data_add_dict_u64(out, "tx_arp_dropped", c->tx_arp_dropped);
	rte_tel_data_add_dict_u64(out, "icmp_echo_answered", c->icmp_echo_answered);
	rte_tel_data_add_dict_u64(out, "igmp_reports_sent", c->igmp_reports_sent);
	rte_tel_data_add_dict_u64(out, "idle_sleeps", c->idle_sleeps);
	rte_tel_data_add_dict_u64(out, "mbufs_free", rte_mempool_avail_count(d->pool));
	rte_tel_data_add_dict_u64(out, "lcores", c->lcores);
	rte_tel_data_add_dict_u64(out, "rx_ring_full", c->rx_ring_full);
	rte_tel_data_add_dict_u64(out, "rx_check_drops", c->rx_check_drops);
	/* what each worker lcore handed to the main one */
	struct rte_tel_data *handed = rte_tel_data_alloc();
	if (handed) {
		rte_tel_data_start_array(handed, RTE_TEL_U64_VAL);
		for (uint16_t i = 0; i < d->nw; i++)
			rte_tel_data_add_array_u64(handed, READ(d->w[i].handed));
		if (rte_tel_data_add_dict_container(out, "worker_handed", handed, 0) != 0)
			rte_tel_data_free(handed);
	}
}

/* ------------------------------------------------------------ EAL */

static int eal_init(const struct dp_dpdk_cfg *cfg)
{
	if (eal_ready)
		return 0;
	/* rte_eal_init may permute argv: hand it a copy. */
	char **argv = calloc((size_t)cfg->eal_argc + 1, sizeof *argv);
	if (!argv)
		return -ENOMEM;
	for (int i = 0; i < cfg->eal_argc; i++)
		argv[i] = cfg->eal_argv[i];
	int rc = rte_eal_init(cfg->eal_argc, argv);
	free(argv);
	if (rc < 0 && rte_errno == EALREADY)
		rc = 0; /* the program initialized it itself */
	if (rc < 0) {
		fprintf(stderr,
			"ordo dpdk: EAL initialization failed: %s (hugepages: echo 1024 > "
			"/proc/sys/vm/nr_hugepages, or pass --no-huge; see "
			"docs/OPERATIONS.md)\n",
			rte_strerror(rte_errno));
		return -rte_errno ? -rte_errno : -EINVAL;
	}
	eal_ready = true;
	return 0;
}

/*
 * The port's mbufs. net_af_xdp (DPDK 22.11) registers the pool's memory
 * as its UMEM: it takes the first object's page as the base and assumes
 * populated_size objects lie back to back after it. A default pool keeps
 * each object within a page when pages are small (--no-huge: one 2.5 KB
 * object per 4 KB page), so most objects lay beyond that UMEM; the kernel
 * silently discards their fill-ring entries, and the port stopped
 * receiving once the fill ring had emptied (a node that no longer hears
 * anything). In zero-copy mode the kernel also refuses a frame that
 * crosses into a page not contiguous with its own. So for net_af_xdp each
 * mbuf is exactly one page, the pool one page-aligned run of memory: back
 * to back and never across a page, whatever the page size. The data room
 * is what is left of the page (3,776 bytes); larger datagrams are refused.
 */
#define XDP_OBJ_BYTES 4096u

static void pool_mz_free(struct rte_mempool_memhdr *memhdr, void *opaque)
{
	(void)memhdr;
	rte_memzone_free(opaque);
}

/* Every object one page, in order from the first memhdr: what the PMD
 * assumes. */
struct pool_span {
	uintptr_t next;
	bool ok;
};

static void pool_span_obj(struct rte_mempool *mp, void *opaque, void *obj, unsigned idx)
{
	(void)idx;
	struct pool_span *sp = opaque;
	uintptr_t start = (uintptr_t)obj - mp->header_size;
	if ((sp->next && start != sp->next) || start % XDP_OBJ_BYTES)
		sp->ok = false;
	sp->next = start + XDP_OBJ_BYTES;
}

static struct rte_mempool *pool_af_xdp(const char *name, uint32_t n, uint32_t room, int socket)
{
	const unsigned flags = RTE_MEMPOOL_F_NO_SPREAD | RTE_MEMPOOL_F_NO_IOVA_CONTIG;
	struct rte_mempool_objsz sz;
	uint32_t fixed = (uint32_t)(sizeof(struct rte_mbuf) + PRIV_BYTES);
	(void)rte_mempool_calc_obj_size(fixed + room, flags, &sz);
	uint32_t elt = XDP_OBJ_BYTES - sz.header_size - sz.trailer_size;
	if (fixed + room > elt) {
		fprintf(stderr,
			"ordo dpdk: net_af_xdp carries frames of at most one page: %u bytes of "
			"mbuf room do not fit in %u (lower max_datagram)\n",
			room, elt - fixed);
		rte_errno = EMSGSIZE;
		return NULL;
	}
	struct rte_pktmbuf_pool_private priv = {.mbuf_data_room_size = (uint16_t)(elt - fixed),
						.mbuf_priv_size = (uint16_t)PRIV_BYTES};
	struct rte_mempool *mp =
	    rte_mempool_create_empty(name, n, elt, 256, sizeof priv, socket, flags);
	if (!mp)
		return NULL;
	char mzname[RTE_MEMZONE_NAMESIZE];
	snprintf(mzname, sizeof mzname, "%s_mem", name);
	size_t len = (size_t)n * XDP_OBJ_BYTES;
	const struct rte_memzone *mz =
	    rte_memzone_reserve_aligned(mzname, len, socket, 0, XDP_OBJ_BYTES);
	int rc =
	    mz ? rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) : -rte_errno;
	if (rc == 0) {
		rte_pktmbuf_pool_init(mp, &priv);
		rc = rte_mempool_populate_iova(mp, mz->addr, RTE_BAD_IOVA, len, pool_mz_free,
					       (void *)(uintptr_t)mz);
		if (rc >= 0 && (uint32_t)rc != n)
			rc = -ENOSPC;
	}
	if (rc < 0) {
		/* the memzone is the pool's once populated; free it here only
		 * if it never was */
		if (mp->nb_mem_chunks == 0 && mz)
			rte_memzone_free(mz);
		rte_mempool_free(mp);
		rte_errno = -rc;
		return NULL;
	}
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	struct pool_span sp = {.ok = mp->nb_mem_chunks == 1};
	rte_mempool_obj_iter(mp, pool_span_obj, &sp);
	if (!sp.ok) {
		fprintf(stderr, "ordo dpdk: the mempool for net_af_xdp is not one page per mbuf\n");
		rte_mempool_free(mp);
		rte_errno = EFAULT;
		return NULL;
	}
	return mp;
}

static int pool_create(struct dpdk *d, const char *name, uint32_t room, bool af_xdp)
{
	const struct dp_dpdk_cfg *cfg = &d->cfg;
	int socket = rte_eth_dev_socket_id(d->port);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	d->pool = af_xdp ? pool_af_xdp(name, cfg->mbufs, room, socket)
			 : rte_pktmbuf_pool_create(name, cfg->mbufs, 256, (uint16_t)PRIV_BYTES,
						   (uint16_t)room, socket);
	if (!d->pool) {
		fprintf(stderr,
			"ordo dpdk: mempool of %u mbufs x %u bytes: %s (give the EAL more "
			"memory: -m, or huge pages with nic-config/hugepages.sh)\n",
			cfg->mbufs, af_xdp ? XDP_OBJ_BYTES : room, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	return 0;
}

int dp_dpdk_open(const struct dp_dpdk_cfg *cfg, struct dp_transport **out)
{
	if (cfg->max_datagram < ORDO_DATAGRAM_MIN_MAX || cfg->max_datagram > ORDO_DATAGRAM_MAX ||
	    (cfg->nudp_ports == 0 && cfg->udp_range_lo == 0) ||
	    cfg->nudp_ports > ORDO_DP_PORTS_MAX || cfg->udp_range_lo > cfg->udp_range_hi ||
	    (cfg->udp_range_lo == 0 && cfg->udp_range_hi != 0) || cfg->ip == 0 ||
	    cfg->mbufs < 2 * BURST || cfg->arp_entries == 0 || cfg->lcores > ORDO_DPDK_LCORES_MAX ||
	    (cfg->lcores > 1 && cfg->ring_size < BURST)) {
		fprintf(
		    stderr,
		    "ordo dpdk: invalid port configuration (address %u.%u.%u.%u, max_datagram "
		    "%u, %u UDP ports, range %u..%u, %u mbufs, %u ARP entries, %u lcores, rings "
		    "of %u)\n",
		    cfg->ip >> 24, (cfg->ip >> 16) & 255, (cfg->ip >> 8) & 255, cfg->ip & 255,
		    cfg->max_datagram, cfg->nudp_ports, cfg->udp_range_lo, cfg->udp_range_hi,
		    cfg->mbufs, cfg->arp_entries, cfg->lcores, cfg->ring_size);
		return -EINVAL;
	}
	int rc = eal_init(cfg);
	if (rc)
		return rc;
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	memset(&info, 0, sizeof info);
	memset(&conf, 0, sizeof conf);
	uint16_t port = cfg->port_id;
	if (cfg->port_name && rte_eth_dev_get_port_by_name(cfg->port_name, &port) != 0) {
		fprintf(stderr,
			"ordo dpdk: no port named %s (pass it to the EAL, e.g. "
			"--vdev=%s,iface=IFNAME, or bind the NIC with nic-config/bind.sh)\n",
			cfg->port_name, cfg->port_name);
		return -ENODEV;
	}
	if (!rte_eth_dev_is_valid_port(port)) {
		fprintf(stderr, "ordo dpdk: port %u does not exist (%u ports available)\n", port,
			rte_eth_dev_count_avail());
		return -ENODEV;
	}
	struct dpdk *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->port = port;
	d->efd = -1;
	d->t.ops = &dpdk_ops;
	d->t.max_datagram = cfg->max_datagram;
	d->arp_mem = calloc(cfg->arp_entries, sizeof *d->arp_mem);
	d->held = calloc(cfg->arp_pending ? cfg->arp_pending : 1, sizeof *d->held);
	if (!d->arp_mem || !d->held) {
		rc = -ENOMEM;
		goto err;
	}
	pkt_arp_init(&d->arp, d->arp_mem, cfg->arp_entries, ARP_TTL_NS, ARP_RETRY_NS);

	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof name, "ordo_%u", port);
	uint32_t room =
	    RTE_PKTMBUF_HEADROOM + PKT_UDP_HEADROOM + VLAN_SLACK_BYTES + cfg->max_datagram;
	if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
		room = RTE_MBUF_DEFAULT_BUF_SIZE; /* what PMDs expect (AF_PACKET frames, AF_XDP) */
	rc = rte_eth_dev_info_get(port, &info);
	if (rc) {
		fprintf(stderr, "ordo dpdk: port %u: no device information: %s\n", port,
			rte_strerror(-rc));
		goto err;
	}
	bool af_xdp = info.driver_name && strcmp(info.driver_name, "net_af_xdp") == 0;
	rc = pool_create(d, name, room, af_xdp);
	if (rc)
		goto err;

	uint32_t mtu = cfg->max_datagram + PKT_IPV4_HDR_BYTES + PKT_UDP_HDR_BYTES;
	if (info.max_mtu >= mtu)
		conf.rxmode.mtu = mtu;
	if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) &&
	    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM)) {
		conf.txmode.offloads |=
		    RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
		d->tx_flags = PKT_TX_IP_CSUM_OFFLOAD | PKT_TX_L4_CSUM_OFFLOAD;
		d->tx_ol = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
	}
	if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_CHECKSUM) == RTE_ETH_RX_OFFLOAD_CHECKSUM)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_CHECKSUM;
	/* Queues: as many as asked, up to what the port has (paired: AF_XDP
	 * wants as many TX as RX queues). RSS spreads flows over them where the
	 * port hashes in DPDK; where the kernel or the NIC spreads them
	 * (net_af_xdp's queue_count), the loop polls them all the same. */
	d->nq = cfg->queues ? cfg->queues : 1;
	uint16_t qmax =
	    info.max_rx_queues < info.max_tx_queues ? info.max_rx_queues : info.max_tx_queues;
	if (qmax == 0)
		qmax = 1;
	if (d->nq > qmax) {
		fprintf(stderr, "ordo dpdk: port %u (%s) has %u queue pairs; using %u, not %u\n",
			port, info.driver_name ? info.driver_name : "?", qmax, qmax, d->nq);
		d->nq = qmax;
	}
	rc = workers_possible(d);
	if (rc) {
		rte_mempool_free(d->pool);
		goto err;
	}
	uint64_t rss = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
	if (d->nq > 1 && rss) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss;
	}
	rc = rte_eth_dev_configure(port, d->nq, d->nq, &conf);
	if (rc)
		goto err_port;
	uint16_t nrx = cfg->rx_desc, ntx = cfg->tx_desc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	if (rc)
		goto err_port;
	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < d->nq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, nrx, (unsigned)(socket < 0 ? 0 : socket), NULL,
					    d->pool);
		if (rc)
			goto err_port;
		rc =
		    rte_eth_tx_queue_setup(port, q, ntx, (unsigned)(socket < 0 ? 0 : socket), NULL);
		if (rc)
			goto err_port;
	}
	rc = rte_eth_dev_start(port);
	if (rc)
		goto err_port;
	if (cfg->mcast_group)
		(void)rte_eth_allmulticast_enable(port); /* some PMDs filter multicast */
	struct rte_ether_addr ea;
	rc = rte_eth_macaddr_get(port, &ea);
	if (rc)
		goto err_started;
	memcpy(d->mac, ea.addr_bytes, 6);
	static const uint8_t zero_mac[6];
	if (memcmp(d->mac, zero_mac, 6) == 0) {
		/* net_ring and net_null have no address: take a locally
		 * administered unicast one from ours, 02:00:a.b.c.d */
		d->mac[0] = 0x02;
		d->mac[1] = 0x00;
		for (int i = 0; i < 4; i++)
			d->mac[2 + i] = (uint8_t)(cfg->ip >> (24 - 8 * i));
	}
	rc = workers_start(d);
	if (rc) {
		workers_stop(d);
		goto err_started;
	}

	/* /ordo/port in DPDK telemetry (the ethdev library adds /ethdev/stats
	 * and /ethdev/xstats for the port itself). */
	static bool registered;
	if (!registered)
		registered =
		    rte_telemetry_register_cmd(
			"/ordo/port", telemetry_port_cb,
			"ordo: this node's DPDK transport counters. Takes no parameters") == 0;
	pthread_mutex_lock(&telemetry_lock);
	telemetry_port = d;
	pthread_mutex_unlock(&telemetry_lock);

	/* Announce ourselves (gratuitous ARP) and join the group. */
	send_arp(d, 1, broadcast_mac, cfg->ip);
	d->c.arp_requests_sent--; /* not a resolution */
	send_igmp_report(d);
	ctl_flush(d);
	*out = &d->t;
	return 0;

err_started:
	(void)rte_eth_dev_stop(port);
err_port:
	fprintf(stderr, "ordo dpdk: port %u (%s): setup failed: %s\n", port,
		info.driver_name ? info.driver_name : "?", rte_strerror(rc < 0 ? -rc : rc));
	/* queues set up so far refer to the pool (an AF_XDP socket to its
	 * memory): release the port before the pool */
	(void)rte_eth_dev_close(port);
	rte_mempool_free(d->pool);
err:
	free(d->arp_mem);
	free(d->held);
	free(d);
	return rc < 0 ? rc : -EIO;
}

void dp_dpdk_counters(const struct dp_transport *t, struct dp_dpdk_counters *out)
{
	struct dpdk *d = (struct dpdk *)t;
	*out = d->c;
	out->mbufs_free = rte_mempool_avail_count(d->pool);
	out->lcores = 1u + d->nw;
	for (uint16_t i = 0; i < d->nw; i++) {
		struct worker *w = &d->w[i];
		out->rx_bad += READ(w->rx_bad);
		out->rx_not_for_us += READ(w->rx_not_for_us);
		out->idle_sleeps += READ(w->idle_sleeps);
		out->rx_ring_full += READ(w->ring_full);
		out->rx_check_drops += READ(w->check_drops);
	}
}

void dp_dpdk_check_drops(const struct dp_transport *t, uint64_t *out, unsigned n)
{
	struct dpdk *d = (struct dpdk *)t;
	for (uint16_t i = 0; i < d->nw; i++)
		for (unsigned c = 0; c < n && c < DP_DPDK_CHECK_CODES; c++)
			out[c] += READ(d->w[i].check_by_code[c]);
}

void dp_dpdk_mac(const struct dp_transport *t, uint8_t mac[6])
{
	memcpy(mac, ((const struct dpdk *)t)->mac, 6);
}
