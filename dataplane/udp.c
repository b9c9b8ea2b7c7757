/*
 * The kernel-UDP transport: one non-blocking IPv4 UDP socket per bind
 * address, recvmmsg/sendmmsg bursts, poll() for waiting, and a fixed pool of
 * buffers allocated once at open (no malloc per packet).
 *
 * What lives here: socket setup (exclusive bind, buffer sizes, DF through
 * IP_PMTUDISC_DO as PROTOCOL.md §1 asks, IP_PKTINFO to learn the arrival
 * interface and local address), the buffer pool, and the dp_ops. What does
 * not: protocol checks (wire/), fault injection (fault.c), DPDK (issue 5).
 *
 * IP fragments: the kernel reassembles them before a UDP socket sees the
 * datagram, so this backend cannot drop them as PROTOCOL.md §1 asks; setting
 * DF on everything we send keeps ordo itself from producing any.
 */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include "common/ordo_time.h"
#include "dataplane/dp.h"

#define UDP_ALIGN 64u /* buffer data and headers start on a cache line */

/* Control space for one IP_PKTINFO message, aligned for cmsghdr. */
union udp_ctl {
	char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
	struct cmsghdr align;
};

struct udp_transport {
	struct dp_transport base;		 /* first: ops cast between the two */
	int fds[ORDO_DP_PORTS_MAX];		 /* one socket per bind address; -1 when closed */
	struct dp_addr bound[ORDO_DP_PORTS_MAX]; /* what each socket is bound to (port resolved) */
	uint32_t nsock;				 /* sockets open, 1..ORDO_DP_PORTS_MAX */
	uint32_t rx_next;			 /* socket rx_burst starts at (round robin) */
	unsigned lo_ifindex;			 /* ifindex of "lo"; 0 if there is none */

	void *region;		    /* the one allocation behind the pool */
	struct dp_buf *hdrs;	    /* pool headers, pool entries */
	struct dp_buf **free_stack; /* free buffers; nfree of them valid */
	uint8_t *data;		    /* pool * stride bytes of payload space */
	uint32_t stride;	    /* bytes between buffers: max_datagram rounded up */
	uint32_t pool;		    /* buffers in the pool */
	uint32_t nfree;		    /* buffers on free_stack, 0..pool */

	/* Per-burst scratch, sized for one syscall of ORDO_DP_BURST_MAX messages. */
	struct mmsghdr msgs[ORDO_DP_BURST_MAX];
	struct iovec iov[ORDO_DP_BURST_MAX];
	struct sockaddr_in names[ORDO_DP_BURST_MAX];
	union udp_ctl ctl[ORDO_DP_BURST_MAX];
	struct dp_buf *scratch[ORDO_DP_BURST_MAX];
	int8_t sock_of[ORDO_DP_BURST_MAX]; /* tx: socket index per buffer, -1 to drop */
};

static struct udp_transport *udp_of(struct dp_transport *t)
{
	return (struct udp_transport *)t;
}

/* ------------------------------------------------------------------ pool */

static struct dp_buf *pool_get(struct udp_transport *u)
{
	if (u->nfree == 0)
		return NULL;
	struct dp_buf *b = u->free_stack[--u->nfree];
	ORDO_ASSERT(b->priv == NULL);
	b->priv = u; /* marks it lent out */
	b->len = 0;
	b->rx_flags = 0;
	memset(&b->peer, 0, sizeof b->peer);
	memset(&b->local, 0, sizeof b->local);
	return b;
}

static void pool_put(struct udp_transport *u, struct dp_buf *b)
{
	/* A buffer from another pool or freed twice is a bug in the caller. */
	ORDO_ASSERT(b >= u->hdrs && b < u->hdrs + u->pool);
	ORDO_ASSERT(b->priv == u);
	ORDO_ASSERT(u->nfree < u->pool);
	b->priv = NULL;
	u->free_stack[u->nfree++] = b;
}

static struct dp_buf *udp_alloc(struct dp_transport *t)
{
	struct udp_transport *u = udp_of(t);
	struct dp_buf *b = pool_get(u);
	if (!b)
		t->stats.alloc_failed++;
	return b;
}

static void udp_free(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct udp_transport *u = udp_of(t);
	for (unsigned i = 0; i < n; i++)
		if (bufs[i])
			pool_put(u, bufs[i]);
}

/* -------------------------------------------------------------------- rx */

static void rx_prepare(struct udp_transport *u, unsigned i, struct dp_buf *b)
{
	u->iov[i].iov_base = b->data;
	u->iov[i].iov_len = b->cap;
	struct msghdr *h = &u->msgs[i].msg_hdr;
	memset(h, 0, sizeof *h);
	h->msg_name = &u->names[i];
	h->msg_namelen = sizeof u->names[i];
	h->msg_iov = &u->iov[i];
	h->msg_iovlen = 1;
	h->msg_control = u->ctl[i].buf;
	h->msg_controllen = sizeof u->ctl[i].buf;
	u->msgs[i].msg_len = 0;
}

/* Fills peer, local and rx_flags of a received buffer from its msghdr. */
static void rx_addresses(struct udp_transport *u, unsigned s, unsigned i, struct dp_buf *b)
{
	struct msghdr *h = &u->msgs[i].msg_hdr;
	const struct sockaddr_in *sin = &u->names[i];
	if (h->msg_namelen >= sizeof *sin && sin->sin_family == AF_INET) {
		b->peer.ip = ntohl(sin->sin_addr.s_addr);
		b->peer.port = ntohs(sin->sin_port);
	}
	b->local.ip = u->bound[s].ip;
	b->local.port = u->bound[s].port;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_PKTINFO)
			continue;
		struct in_pktinfo pi;
		memcpy(&pi, CMSG_DATA(c), sizeof pi);
		b->local.ip = ntohl(pi.ipi_addr.s_addr);
		if (u->lo_ifindex != 0 && (unsigned)pi.ipi_ifindex == u->lo_ifindex)
			b->rx_flags |= DP_RX_LOOPBACK;
	}
}

/*
 * Receives from socket s into bufs[0 .. want) with one recvmmsg; returns how
 * many buffers were filled and sets *taken to how many datagrams the socket
 * gave (truncated ones, dropped here, included).
 */
static unsigned rx_socket(struct udp_transport *u, unsigned s, struct dp_buf **bufs, unsigned want,
			  unsigned *taken)
{
	unsigned got = 0;
	for (unsigned i = 0; i < want; i++) {
		u->scratch[i] = pool_get(u);
		ORDO_ASSERT(u->scratch[i] != NULL); /* caller checked nfree */
		rx_prepare(u, i, u->scratch[i]);
	}
	int r = recvmmsg(u->fds[s], u->msgs, want, MSG_DONTWAIT, NULL);
	unsigned nr = r > 0 ? (unsigned)r : 0;
	for (unsigned i = 0; i < nr; i++) {
		struct dp_buf *b = u->scratch[i];
		if (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
			u->base.stats.rx_truncated++;
			pool_put(u, b);
			continue;
		}
		b->len = u->msgs[i].msg_len;
		rx_addresses(u, s, i, b);
		u->base.stats.rx_datagrams++;
		u->base.stats.rx_bytes += b->len;
		bufs[got++] = b;
	}
	for (unsigned i = nr; i < want; i++)
		pool_put(u, u->scratch[i]);
	*taken = nr;
	return got;
}

static unsigned udp_rx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct udp_transport *u = udp_of(t);
	unsigned got = 0;
	uint32_t start = u->rx_next;
	for (uint32_t k = 0; k < u->nsock && got < n; k++) {
		unsigned s = (start + k) % u->nsock;
		/* Bounded even when every datagram is truncated and dropped: at most
		 * n / BURST + 1 recvmmsg calls per socket. */
		unsigned rounds = n / ORDO_DP_BURST_MAX + 1;
		while (got < n && rounds-- > 0) {
			unsigned want = n - got;
			if (want > ORDO_DP_BURST_MAX)
				want = ORDO_DP_BURST_MAX;
			if (want > u->nfree)
				want = u->nfree;
			if (want == 0)
				break; /* pool empty: the datagrams wait in the socket */
			unsigned taken;
			got += rx_socket(u, s, bufs + got, want, &taken);
			if (taken < want)
				break; /* socket drained (or an error) */
		}
	}
	u->rx_next = u->nsock ? (start + 1) % u->nsock : 0;
	return got;
}

/* -------------------------------------------------------------------- tx */

/* The socket a buffer leaves from: its local.port (0: the first socket),
 * preferring the socket bound to local.ip when several share the port. */
static int tx_socket_of(const struct udp_transport *u, const struct dp_buf *b)
{
	if (b->local.port == 0)
		return 0;
	int found = -1;
	for (uint32_t s = 0; s < u->nsock; s++) {
		if (u->bound[s].port != b->local.port)
			continue;
		if (found < 0 || (b->local.ip != 0 && u->bound[s].ip == b->local.ip))
			found = (int)s;
	}
	return found;
}

static bool tx_sendable(const struct udp_transport *u, const struct dp_buf *b)
{
	return b->len <= b->cap && b->len <= u->base.max_datagram && b->peer.port != 0 &&
	       b->data != NULL;
}

/* Sends the m buffers in u->scratch through socket s; returns how many left. */
static unsigned tx_socket(struct udp_transport *u, unsigned s, unsigned m)
{
	for (unsigned i = 0; i < m; i++) {
		struct dp_buf *b = u->scratch[i];
		memset(&u->names[i], 0, sizeof u->names[i]);
		u->names[i].sin_family = AF_INET;
		u->names[i].sin_addr.s_addr = htonl(b->peer.ip);
		u->names[i].sin_port = htons(b->peer.port);
		u->iov[i].iov_base = b->data;
		u->iov[i].iov_len = b->len;
		struct msghdr *h = &u->msgs[i].msg_hdr;
		memset(h, 0, sizeof *h);
		h->msg_name = &u->names[i];
		h->msg_namelen = sizeof u->names[i];
		h->msg_iov = &u->iov[i];
		h->msg_iovlen = 1;
		u->msgs[i].msg_len = 0;
	}
	unsigned sent = 0;
	unsigned i = 0;
	/* Each round sends at least one message or drops one: at most m rounds. */
	while (i < m) {
		int r = sendmmsg(u->fds[s], u->msgs + i, m - i, MSG_DONTWAIT);
		if (r > 0) {
			for (unsigned j = i; j < i + (unsigned)r; j++) {
				u->base.stats.tx_datagrams++;
				u->base.stats.tx_bytes += u->scratch[j]->len;
			}
			sent += (unsigned)r;
			i += (unsigned)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		/* Message i failed. A full queue will not empty within this call:
		 * drop the rest; anything else is this message's own fault. */
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			u->base.stats.tx_dropped += m - i;
			break;
		}
		u->base.stats.tx_dropped++;
		i++;
	}
	return sent;
}

static unsigned udp_tx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct udp_transport *u = udp_of(t);
	unsigned sent = 0;
	for (unsigned off = 0; off < n; off += ORDO_DP_BURST_MAX) {
		unsigned chunk = n - off < ORDO_DP_BURST_MAX ? n - off : ORDO_DP_BURST_MAX;
		struct dp_buf **c = bufs + off;
		for (unsigned i = 0; i < chunk; i++) {
			u->sock_of[i] = -1;
			if (!c[i])
				continue;
			if (!tx_sendable(u, c[i])) {
				t->stats.tx_dropped++;
				continue;
			}
			int s = tx_socket_of(u, c[i]);
			if (s < 0)
				t->stats.tx_dropped++;
			u->sock_of[i] = (int8_t)s;
		}
		for (uint32_t s = 0; s < u->nsock; s++) {
			unsigned m = 0;
			for (unsigned i = 0; i < chunk; i++)
				if (u->sock_of[i] == (int8_t)s)
					u->scratch[m++] = c[i];
			if (m > 0)
				sent += tx_socket(u, s, m);
		}
		for (unsigned i = 0; i < chunk; i++)
			if (c[i])
				pool_put(u, c[i]);
	}
	return sent;
}

/* ------------------------------------------------------------ wait, close */

static void udp_wait(struct dp_transport *t, uint64_t timeout_ns)
{
	struct udp_transport *u = udp_of(t);
	if (timeout_ns == 0)
		return;
	struct pollfd pfd[ORDO_DP_PORTS_MAX];
	for (uint32_t s = 0; s < u->nsock; s++) {
		pfd[s].fd = u->fds[s];
		pfd[s].events = POLLIN;
		pfd[s].revents = 0;
	}
	/* ppoll, not poll: poll's whole milliseconds would round a wait for an
	 * epoch due in 300 us up to a millisecond and more. */
	if (timeout_ns > (uint64_t)INT32_MAX * ORDO_NS_PER_S)
		timeout_ns = (uint64_t)INT32_MAX * ORDO_NS_PER_S;
	struct timespec ts = {.tv_sec = (time_t)(timeout_ns / ORDO_NS_PER_S),
			      .tv_nsec = (long)(timeout_ns % ORDO_NS_PER_S)};
	/* EINTR or an error: return early; the caller loops. */
	(void)ppoll(pfd, u->nsock, &ts, NULL);
}

static void udp_close(struct dp_transport *t)
{
	struct udp_transport *u = udp_of(t);
	for (uint32_t s = 0; s < ORDO_DP_PORTS_MAX; s++)
		if (u->fds[s] >= 0)
			close(u->fds[s]);
	free(u->region);
	free(u);
}

static const struct dp_ops udp_ops = {
    .rx_burst = udp_rx_burst,
    .tx_burst = udp_tx_burst,
    .alloc = udp_alloc,
    .free = udp_free,
    .wait = udp_wait,
    .close = udp_close,
};

/* ------------------------------------------------------------------ open */

/* Buffer sizes: SO_*BUFFORCE passes the rmem_max/wmem_max caps when root
 * (CAP_NET_ADMIN); otherwise the plain option, which the kernel clamps. A
 * smaller buffer than asked is not an error. */
static void set_bufsize(int fd, int force_opt, int opt, uint32_t bytes)
{
	int v = bytes > INT_MAX / 2 ? INT_MAX / 2 : (int)bytes;
	if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static int open_socket(const struct dp_udp_cfg *cfg, const struct dp_addr *want,
		       struct dp_addr *bound, int *fd_out)
{
	int rv;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	int pmtu = IP_PMTUDISC_DO;
	/* No SO_REUSEADDR: UDP has no TIME_WAIT to skip, and with it Linux lets a
	 * second process bind the same address and port and take its traffic.
	 * A node whose address is in use must fail to start instead. */
	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) {
		rv = -errno;
		goto out_close_fd;
	}
	if (cfg->rcvbuf_bytes != 0) {
		set_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, cfg->rcvbuf_bytes);
		set_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, cfg->rcvbuf_bytes);
	}
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(want->ip);
	sin.sin_port = htons(want->port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		rv = -errno;
		goto out_close_fd;
	}
	socklen_t len = sizeof sin;
	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		rv = -errno;
		goto out_close_fd;
	}
	bound->ip = want->ip;
	bound->port = ntohs(sin.sin_port);
	*fd_out = fd;
	return 0;

out_close_fd:
	close(fd);
	return rv;
}

int dp_udp_open(struct dp_udp_cfg *cfg, struct dp_transport **out)
{
	int rv;
	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	if (cfg->nbind < 1 || cfg->nbind > ORDO_DP_PORTS_MAX)
		return -EINVAL;
	if (cfg->max_datagram < ORDO_DATAGRAM_MIN_MAX || cfg->max_datagram > ORDO_DATAGRAM_MAX)
		return -EINVAL;
	if (cfg->pool < 1 || cfg->pool > (1u << 22)) /* 4 Mi buffers: ~36 GiB at jumbo size */
		return -EINVAL;

	struct udp_transport *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	for (uint32_t s = 0; s < ORDO_DP_PORTS_MAX; s++)
		u->fds[s] = -1;
	u->base.ops = &udp_ops;
	u->base.max_datagram = cfg->max_datagram;
	u->lo_ifindex = if_nametoindex("lo");

	/* One region: headers, the free stack, then the payload space. */
	u->pool = cfg->pool;
	u->stride = (cfg->max_datagram + UDP_ALIGN - 1) / UDP_ALIGN * UDP_ALIGN;
	size_t hdr_bytes = (size_t)u->pool * sizeof(struct dp_buf);
	size_t stack_bytes = (size_t)u->pool * sizeof(struct dp_buf *);
	size_t head = (hdr_bytes + stack_bytes + UDP_ALIGN - 1) / UDP_ALIGN * UDP_ALIGN;
	size_t total = head + (size_t)u->pool * u->stride;
	if (posix_memalign(&u->region, UDP_ALIGN, total) != 0) {
		rv = -ENOMEM;
		goto out_free_u;
	}
	u->hdrs = u->region;
	u->free_stack = (struct dp_buf **)((uint8_t *)u->region + hdr_bytes);
	u->data = (uint8_t *)u->region + head;
	for (uint32_t i = 0; i < u->pool; i++) {
		struct dp_buf *b = &u->hdrs[i];
		memset(b, 0, sizeof *b);
		b->data = u->data + (size_t)i * u->stride;
		b->cap = cfg->max_datagram;
		/* Pushed in reverse so the first alloc gets buffer 0. */
		u->free_stack[u->pool - 1 - i] = b;
	}
	u->nfree = u->pool;

	for (uint32_t s = 0; s < cfg->nbind; s++) {
		rv = open_socket(cfg, &cfg->bind[s], &u->bound[s], &u->fds[s]);
		if (rv < 0)
			goto out_close_socks;
		u->nsock = s + 1;
	}
	for (uint32_t s = 0; s < cfg->nbind; s++)
		cfg->bind[s].port = u->bound[s].port;
	*out = &u->base;
	return 0;

out_close_socks:
	for (uint32_t s = 0; s < ORDO_DP_PORTS_MAX; s++)
		if (u->fds[s] >= 0)
			close(u->fds[s]);
	free(u->region);
out_free_u:
	free(u);
	return rv;
}
