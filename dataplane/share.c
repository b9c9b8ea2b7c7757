/* One transport, a view per local port, each usable from its own thread; see
 * share.h. */
#include "dataplane/share.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ordo_time.h"

#define SHARE_IDLE_MIN_NS 10000ull
/* An answer is noticed at most this late: a waiting view polls at least this
 * often (its back-off also restarts when it sends). */
#define SHARE_IDLE_MAX_NS 100000ull

struct share_view {
	struct dp_transport t; /* first: ops cast between the two */
	struct dp_share *s;
	uint16_t port;
	struct dp_buf **q; /* ring of queue_cap */
	uint32_t head, count;
	uint64_t idle_ns; /* touched by the view's own thread only */
};

struct dp_share {
	pthread_mutex_t lock; /* guards inner, every view's queue, counters */
	struct dp_transport *inner;
	struct share_view *views;
	uint32_t nviews;
	uint32_t queue_cap;
	bool busy_poll;
	struct dp_share_counters c;
	struct dp_buf *scratch[ORDO_DP_BURST_MAX];
};

static struct share_view *view_of(struct dp_transport *t)
{
	return (struct share_view *)t;
}

static struct share_view *find_view(struct dp_share *s, uint16_t port)
{
	/* Views are few and their ports consecutive in practice: try the
	 * offset from the first one before searching. */
	uint32_t i = (uint16_t)(port - s->views[0].port);
	if (i < s->nviews && s->views[i].port == port)
		return &s->views[i];
	for (i = 0; i < s->nviews; i++)
		if (s->views[i].port == port)
			return &s->views[i];
	return NULL;
}

/* Under the lock: one burst from the inner transport into the queues. */
static unsigned pull(struct dp_share *s)
{
	unsigned got = dp_rx_burst(s->inner, s->scratch, ORDO_DP_BURST_MAX);
	for (unsigned i = 0; i < got; i++) {
		struct dp_buf *b = s->scratch[i];
		struct share_view *v = find_view(s, b->local.port);
		if (!v || v->count == s->queue_cap) {
			if (v)
				s->c.rx_queue_full++;
			else
				s->c.rx_no_view++;
			dp_free(s->inner, &b, 1);
			continue;
		}
		v->q[(v->head + v->count) % s->queue_cap] = b;
		v->count++;
	}
	return got;
}

static unsigned share_rx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct share_view *v = view_of(t);
	struct dp_share *s = v->s;
	pthread_mutex_lock(&s->lock);
	if (v->count < n)
		for (unsigned k = 0; k < 4 && pull(s) == ORDO_DP_BURST_MAX; k++)
			;
	unsigned got = 0;
	while (got < n && v->count) {
		struct dp_buf *b = v->q[v->head];
		v->head = (v->head + 1) % s->queue_cap;
		v->count--;
		bufs[got++] = b;
		t->stats.rx_datagrams++;
		t->stats.rx_bytes += b->len;
	}
	pthread_mutex_unlock(&s->lock);
	if (got)
		v->idle_ns = 0;
	return got;
}

static unsigned share_tx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct share_view *v = view_of(t);
	uint64_t bytes = 0;
	for (unsigned i = 0; i < n; i++) {
		bufs[i]->local.port = v->port;
		bytes += bufs[i]->len;
	}
	pthread_mutex_lock(&v->s->lock);
	uint64_t dropped = v->s->inner->stats.tx_dropped;
	unsigned sent = dp_tx_burst(v->s->inner, bufs, n);
	dropped = v->s->inner->stats.tx_dropped - dropped; /* not those held for ARP */
	pthread_mutex_unlock(&v->s->lock);
	t->stats.tx_datagrams += sent;
	t->stats.tx_dropped += dropped;
	t->stats.tx_bytes += bytes;
	v->idle_ns = 0; /* an answer may come soon: poll often again */
	return sent;
}

static struct dp_buf *share_alloc(struct dp_transport *t)
{
	struct share_view *v = view_of(t);
	pthread_mutex_lock(&v->s->lock);
	struct dp_buf *b = dp_alloc(v->s->inner);
	pthread_mutex_unlock(&v->s->lock);
	if (!b)
		t->stats.alloc_failed++;
	return b;
}

static void share_free(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct share_view *v = view_of(t);
	pthread_mutex_lock(&v->s->lock);
	dp_free(v->s->inner, bufs, n);
	pthread_mutex_unlock(&v->s->lock);
}

static void share_wait(struct dp_transport *t, uint64_t timeout_ns)
{
	struct share_view *v = view_of(t);
	struct dp_share *s = v->s;
	uint64_t now0 = ordo_mono_ns();
	uint64_t until = timeout_ns > UINT64_MAX - now0 ? UINT64_MAX : now0 + timeout_ns;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		dp_wait(s->inner, 0); /* housekeeping (ARP, held datagrams), no sleep */
		if (!v->count)
			pull(s);
		bool ready = v->count != 0;
		pthread_mutex_unlock(&s->lock);
		uint64_t now = ordo_mono_ns();
		if (ready || now >= until)
			return;
		if (s->busy_poll)
			continue;
		v->idle_ns = v->idle_ns ? 2 * v->idle_ns : SHARE_IDLE_MIN_NS;
		if (v->idle_ns > SHARE_IDLE_MAX_NS)
			v->idle_ns = SHARE_IDLE_MAX_NS;
		uint64_t ns = until - now < v->idle_ns ? until - now : v->idle_ns;
		struct timespec ts = {.tv_sec = (time_t)(ns / ORDO_NS_PER_S),
				      .tv_nsec = (long)(ns % ORDO_NS_PER_S)};
		nanosleep(&ts, NULL);
	}
}

static void share_view_close(struct dp_transport *t)
{
	(void)t; /* the share owns its views */
}

static const struct dp_ops share_ops = {
    .rx_burst = share_rx_burst,
    .tx_burst = share_tx_burst,
    .alloc = share_alloc,
    .free = share_free,
    .wait = share_wait,
    .close = share_view_close,
};

int dp_share_open(struct dp_transport *inner, const uint16_t *ports, uint32_t nviews,
		  uint32_t queue_cap, bool busy_poll, struct dp_share **out)
{
	if (!inner || nviews == 0 || nviews > DP_SHARE_VIEWS_MAX || queue_cap == 0)
		return -EINVAL;
	for (uint32_t i = 0; i < nviews; i++) {
		if (ports[i] == 0)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (ports[i] == ports[j])
				return -EINVAL;
	}
	struct dp_share *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->views = calloc(nviews, sizeof *s->views);
	struct dp_buf **qmem = calloc((size_t)nviews * queue_cap, sizeof *qmem);
	if (!s->views || !qmem) {
		free(s->views);
		free(qmem);
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->inner = inner;
	s->nviews = nviews;
	s->queue_cap = queue_cap;
	s->busy_poll = busy_poll;
	for (uint32_t i = 0; i < nviews; i++) {
		struct share_view *v = &s->views[i];
		v->t.ops = &share_ops;
		v->t.max_datagram = inner->max_datagram;
		v->s = s;
		v->port = ports[i];
		v->q = &qmem[(size_t)i * queue_cap];
	}
	*out = s;
	return 0;
}

struct dp_transport *dp_share_view(struct dp_share *s, uint32_t i)
{
	ORDO_ASSERT(i < s->nviews);
	return &s->views[i].t;
}

void dp_share_counters(struct dp_share *s, struct dp_share_counters *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->c;
	pthread_mutex_unlock(&s->lock);
}

struct dp_transport *dp_share_inner(struct dp_share *s)
{
	return s->inner;
}

void dp_share_close(struct dp_share *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nviews; i++) {
		struct share_view *v = &s->views[i];
		while (v->count) {
			dp_free(s->inner, &v->q[v->head], 1);
			v->head = (v->head + 1) % s->queue_cap;
			v->count--;
		}
	}
	dp_close(s->inner);
	pthread_mutex_destroy(&s->lock);
	free(s->views[0].q);
	free(s->views);
	free(s);
}
