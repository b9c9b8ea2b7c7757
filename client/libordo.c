/*
 * libordo; see ordo.h. Each session the client holds is a lane: one per
 * group (a pinned client has one lane, a spread client one per group of the
 * cluster). A lane's window of requests in flight is a ring of slots indexed
 * by request_number modulo a power of two >= window; numbers below low_n are
 * all ordered, numbers in [low_n, next_n) are in flight or done.
 * PROTOCOL.md §3.1.2 is what keeps this exact: every number is sent until it
 * gets OK, DUPLICATE or STALE (or APPLIED), and an INVALID number is given up
 * with an OPAQUE of size 0 so the session's window keeps moving. Lanes share
 * the transport, the event queue and the round-trip estimate; replies are
 * matched to a lane by client_id, which differs in every lane.
 */
#include "ordo.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "common/ordo_time.h"
#include "dataplane/dp.h"

#define RETRY_NS_DEFAULT     (20ull * ORDO_NS_PER_MS)
#define RETRY_MAX_NS_DEFAULT (500ull * ORDO_NS_PER_MS)
#define ROTATE_AFTER_TRIES   4u /* unanswered sends before trying another node */
#define APPLIED_WAIT_NS	     (300ull * ORDO_NS_PER_MS)

enum slot_state {
	SLOT_FREE = 0,
	SLOT_WAIT = 1, /* queued or sent; not yet ordered */
	SLOT_DONE = 2, /* ordered (OK, DUPLICATE, STALE or APPLIED); below low_n soon */
};

struct slot {
	uint64_t n;    /* request number; valid unless FREE */
	uint8_t state; /* enum slot_state */
	uint16_t op;
	uint16_t size;	    /* payload bytes */
	uint32_t tries;	    /* sends so far */
	uint64_t due_ns;    /* next (re)send, monotonic; 0 = now */
	uint64_t sent_ns;   /* first send: the round-trip sample if it is not resent */
	uint64_t last_ns;   /* latest send */
	uint32_t redirects; /* NOT_LEADER answers naming a leader */
	/* only the timeout made it resend: no answer came (NOT_LEADER,
	 * OVERLOADED), and every send went to the same node */
	bool timed_out_only;
	uint32_t first_to; /* the lane's leader index at the first send */
	uint8_t payload[ORDO_OPAQUE_BYTES_MAX];
};

/* One session, in one group. */
struct lane {
	uint16_t group;
	const struct cfg_node *seqs[ORDO_NODES_MAX]; /* sequencers of the group */
	uint32_t nseqs;
	uint32_t leader; /* index into seqs we send to */
	uint64_t client_id;
	uint64_t session;
	bool live;
	bool opening;
	uint64_t next_n;    /* next number to hand out */
	uint64_t low_n;	    /* lowest number not yet ordered */
	struct slot *slots; /* cap entries */
};

struct ordo_client {
	struct ordo_client_cfg cfg;
	const struct cfg_cluster *cl;
	struct dp_transport *t;
	bool t_borrowed;	    /* cfg.transport: not ours to close */
	const struct wire_key *key; /* AUTH key or NULL */
	struct wire_keyring keys;   /* just ours */
	struct wire_rx_ctx ctx;
	const struct cfg_node *reps[ORDO_NODES_MAX];
	uint32_t nreps;
	struct lane *lanes;	/* pinned: 1; spread: one per group, lanes[g].group == g */
	uint32_t nlanes;	/* 1..ORDO_GROUPS_MAX */
	uint32_t rr;		/* spread: the lane a tie in window room goes to first */
	struct slot *slot_mem;	/* nlanes x cap slots */
	uint32_t cap;		/* power of two >= window */
	uint32_t window;	/* per lane */
	struct ordo_event *evq; /* ring */
	uint32_t evcap, evhead, evcount;
	uint32_t events_per_dgram; /* most events one reply datagram yields */
	/* one synchronous query at a time */
	uint8_t q_type; /* reply type awaited, 0 if none */
	uint64_t q_nonce;
	uint64_t q_client_id, q_request; /* RESULT_Q */
	bool q_done;
	uint8_t *q_buf; /* copy of the reply datagram */
	uint32_t q_len;
	struct ordo_event q_event;
	uint64_t nonce_seq;
	struct ordo_client_stats stats;
	/* RFC 6298 round-trip estimate from ORDERED answers to requests sent
	 * once (Karn): a loaded cluster answers late, not never, and resending
	 * what is only slow doubles its load. */
	uint64_t rttvar_ns;
	/* stats.srtt_ns and stats.rto_ns: the estimate and the timeout of a
	 * first send; each resend of a request doubles its own (backoff_ns) */
	/* the shortest sample so far: no answer to a send comes sooner */
	uint64_t min_rtt_ns;
};

static struct slot *slot_of(const struct ordo_client *c, const struct lane *l, uint64_t n)
{
	return &l->slots[n & (c->cap - 1)];
}

/* The lane whose session uses client_id, or NULL. */
static struct lane *lane_of(struct ordo_client *c, uint64_t client_id)
{
	for (uint32_t i = 0; i < c->nlanes; i++)
		if (c->lanes[i].client_id == client_id)
			return &c->lanes[i];
	return NULL;
}

static const struct lane *lane_of_group(const struct ordo_client *c, uint16_t group)
{
	for (uint32_t i = 0; i < c->nlanes; i++)
		if (c->lanes[i].group == group)
			return &c->lanes[i];
	return NULL;
}

static void push_event(struct ordo_client *c, const struct ordo_event *e)
{
	if (c->evcount == c->evcap) {
		c->stats.events_lost++;
		return;
	}
	c->evq[(c->evhead + c->evcount) % c->evcap] = *e;
	c->evcount++;
}

/* The retransmission timeout of a request sent `tries` times already: the
 * client's current timeout doubled per send, at most retry_max_ns. */
static uint64_t backoff_ns(const struct ordo_client *c, uint32_t tries)
{
	uint64_t d = c->stats.rto_ns << (tries < 6 ? tries : 6);
	return d < c->cfg.retry_max_ns ? d : c->cfg.retry_max_ns;
}

/* RFC 6298 §2: a round trip measured on a request sent once (Karn). */
static void rtt_sample(struct ordo_client *c, uint64_t r)
{
	if (c->min_rtt_ns == 0 || r < c->min_rtt_ns)
		c->min_rtt_ns = r;
	if (c->stats.srtt_ns == 0) {
		c->stats.srtt_ns = r;
		c->rttvar_ns = r / 2;
	} else {
		uint64_t dev = c->stats.srtt_ns > r ? c->stats.srtt_ns - r : r - c->stats.srtt_ns;
		c->rttvar_ns = (3 * c->rttvar_ns + dev) / 4;
		c->stats.srtt_ns = (7 * c->stats.srtt_ns + r) / 8;
	}
	uint64_t rto = c->stats.srtt_ns + 4 * c->rttvar_ns;
	if (rto < c->cfg.retry_ns)
		rto = c->cfg.retry_ns;
	c->stats.rto_ns = rto < c->cfg.retry_max_ns ? rto : c->cfg.retry_max_ns;
}

int ordo_client_open(const struct ordo_client_cfg *cfg, struct ordo_client **out)
{
	if (sodium_init() < 0)
		return -EIO;
	struct ordo_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->cl = cfg->cluster;
	if (!c->cfg.retry_ns)
		c->cfg.retry_ns = RETRY_NS_DEFAULT;
	c->stats.rto_ns = c->cfg.retry_ns;
	if (!c->cfg.retry_max_ns)
		c->cfg.retry_max_ns = RETRY_MAX_NS_DEFAULT;
	c->window = cfg->window ? cfg->window : c->cl->session_window;
	if (c->window > c->cl->session_window)
		c->window = c->cl->session_window;
	for (c->cap = 1; c->cap < c->window; c->cap <<= 1)
		;
	c->nlanes = cfg->spread ? cfg_groups(c->cl) : 1;
	int rc = -ENOENT;
	if (c->nlanes == 0 || c->nlanes > ORDO_GROUPS_MAX)
		goto out_free;
	rc = -ENOMEM;
	c->lanes = calloc(c->nlanes, sizeof *c->lanes);
	c->slot_mem = calloc((size_t)c->nlanes * c->cap, sizeof *c->slot_mem);
	/* Records one reply datagram can carry (APPLIED records are the smallest). */
	c->events_per_dgram = (c->cl->max_datagram - ORDO_HDR_BYTES - 8) / ORDO_APPLIED_REC_BYTES;
	c->evcap = 8 * c->window * c->nlanes + 8 * c->events_per_dgram;
	c->evq = calloc(c->evcap, sizeof *c->evq);
	c->q_buf = malloc(ORDO_DATAGRAM_MAX);
	if (!c->lanes || !c->slot_mem || !c->evq || !c->q_buf)
		goto out_free;
	if (cfg->key_id) {
		for (uint32_t i = 0; i < c->cl->nkeys; i++)
			if (c->cl->keys[i].key_id == cfg->key_id)
				c->key = &c->cl->keys[i];
		rc = -ENOKEY;
		if (!c->key)
			goto out_free;
		c->keys = (struct wire_keyring){.keys = (struct wire_key *)c->key, .count = 1};
	}
	c->ctx = (struct wire_rx_ctx){.cluster_id = c->cl->cluster_id,
				      .keys = c->key ? &c->keys : NULL,
				      .require_auth = c->key != NULL};
	rc = -ENOENT;
	for (uint32_t k = 0; k < c->nlanes; k++) {
		struct lane *l = &c->lanes[k];
		l->group = cfg->spread ? (uint16_t)k : cfg->group;
		l->slots = &c->slot_mem[(size_t)k * c->cap];
		for (uint32_t i = 0; i < c->cl->nnodes; i++) {
			const struct cfg_node *nd = &c->cl->nodes[i];
			if (nd->role == CFG_ROLE_SEQUENCER && nd->group == l->group)
				l->seqs[l->nseqs++] = nd;
		}
		if (l->nseqs == 0)
			goto out_free;
	}
	c->nreps = cfg_replicas(c->cl, c->reps, ORDO_NODES_MAX);
	struct dp_udp_cfg ucfg = {
	    .bind = {{.ip = 0, .port = 0}},
	    .nbind = 1,
	    .max_datagram = c->cl->max_datagram,
	    .pool = 2 * c->cap * c->nlanes + 256,
	    .rcvbuf_bytes = 4u << 20,
	};
	if (cfg->transport) {
		rc = -EINVAL;
		if (cfg->fault && *cfg->fault)
			goto out_free;
		c->t = cfg->transport;
		c->t_borrowed = true;
	} else {
		rc = dp_udp_open(&ucfg, &c->t);
		if (rc)
			goto out_free;
	}
	if (cfg->fault && *cfg->fault) {
		struct dp_fault_cfg fc;
		char err[256];
		rc = -EINVAL;
		if (!dp_fault_parse(cfg->fault, &fc, err, sizeof err)) {
			fprintf(stderr, "libordo: fault spec: %s\n", err);
			goto out_close;
		}
		struct dp_transport *ft;
		rc = dp_fault_wrap(c->t, &fc, &ft);
		if (rc)
			goto out_close;
		c->t = ft;
	}
	*out = c;
	return 0;
out_close:
	if (!c->t_borrowed)
		dp_close(c->t);
out_free:
	free(c->lanes);
	free(c->slot_mem);
	free(c->evq);
	free(c->q_buf);
	free(c);
	return rc;
}

void ordo_client_close(struct ordo_client *c)
{
	if (!c)
		return;
	if (!c->t_borrowed)
		dp_close(c->t);
	free(c->lanes);
	free(c->slot_mem);
	free(c->evq);
	free(c->q_buf);
	free(c);
}

uint64_t ordo_client_id(const struct ordo_client *c)
{
	return c->lanes[0].client_id;
}

uint64_t ordo_session(const struct ordo_client *c)
{
	return c->lanes[0].session;
}

bool ordo_session_live(const struct ordo_client *c)
{
	for (uint32_t i = 0; i < c->nlanes; i++)
		if (!c->lanes[i].live)
			return false;
	return true;
}

int ordo_group_session(const struct ordo_client *c, uint16_t group, uint64_t *client_id,
		       uint64_t *session)
{
	const struct lane *l = lane_of_group(c, group);
	if (!l)
		return -ENOENT;
	*client_id = l->client_id;
	*session = l->session;
	return l->live ? 0 : -ENOTCONN;
}

const struct ordo_client_stats *ordo_client_stats(const struct ordo_client *c)
{
	return &c->stats;
}

uint32_t ordo_outstanding(const struct ordo_client *c)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < c->nlanes; i++) {
		const struct lane *l = &c->lanes[i];
		for (uint64_t n = l->low_n; n < l->next_n; n++)
			k += slot_of(c, l, n)->state == SLOT_WAIT;
	}
	return k;
}

static void queue_request(struct ordo_client *c, struct lane *l, uint16_t op, const void *payload,
			  uint16_t size, uint64_t *n_out)
{
	uint64_t n = l->next_n++;
	struct slot *s = slot_of(c, l, n);
	ORDO_ASSERT(s->state == SLOT_FREE);
	s->n = n;
	s->state = SLOT_WAIT;
	s->op = op;
	s->size = size;
	s->tries = 0;
	s->redirects = 0;
	s->timed_out_only = true;
	s->due_ns = 0;
	if (size)
		memcpy(s->payload, payload, size);
	if (n_out)
		*n_out = n;
}

/* Requests a lane may still queue. */
static uint32_t lane_room(const struct ordo_client *c, const struct lane *l)
{
	uint64_t used = l->next_n - l->low_n;
	return used < c->window ? c->window - (uint32_t)used : 0;
}

/* The live lane with the most window room, the first from rr among equals
 * (so equal lanes take turns); NULL if none is live. */
static struct lane *pick_lane(struct ordo_client *c)
{
	struct lane *best = NULL;
	uint32_t best_room = 0;
	for (uint32_t k = 0; k < c->nlanes; k++) {
		struct lane *l = &c->lanes[(c->rr + k) % c->nlanes];
		if (!l->live)
			continue;
		uint32_t room = lane_room(c, l);
		if (!best || room > best_room) {
			best = l;
			best_room = room;
		}
	}
	if (best)
		c->rr = (uint32_t)(best - c->lanes + 1) % c->nlanes;
	return best;
}

int ordo_submit_group(struct ordo_client *c, uint16_t op, const void *payload, uint16_t size,
		      uint16_t *group, uint64_t *request_number)
{
	struct lane *l = pick_lane(c);
	if (!l)
		return -ENOTCONN;
	if (size > ORDO_OPAQUE_BYTES_MAX)
		return -EINVAL;
	if (lane_room(c, l) == 0)
		return -EAGAIN;
	queue_request(c, l, op, payload, size, request_number);
	if (group)
		*group = l->group;
	return 0;
}

int ordo_submit(struct ordo_client *c, uint16_t op, const void *payload, uint16_t size,
		uint64_t *request_number)
{
	return ordo_submit_group(c, op, payload, size, NULL, request_number);
}

/* Frees done slots at the bottom of the window. */
static void advance_low(struct ordo_client *c, struct lane *l)
{
	while (l->low_n < l->next_n) {
		struct slot *s = slot_of(c, l, l->low_n);
		if (s->state != SLOT_DONE)
			break;
		s->state = SLOT_FREE;
		l->low_n++;
	}
}

static void send_datagram(struct ordo_client *c, struct dp_buf *b, struct wire_writer *w,
			  const struct cfg_node *to)
{
	b->len = wire_finish(w, c->key);
	b->peer = (struct dp_addr){.ip = to->ip, .port = to->client_port};
	b->local.port = 0;
	c->stats.datagrams_sent++;
	dp_tx_burst(c->t, &b, 1);
}

/* Sends every request of a lane that is due, batched into SUBMIT datagrams
 * to the node it takes for its group's leader. Returns the earliest future
 * due time (UINT64_MAX if none). */
static uint64_t send_lane_due(struct ordo_client *c, struct lane *l, uint64_t now)
{
	uint64_t next_due = UINT64_MAX;
	bool rotate = false;
	struct dp_buf *b = NULL;
	struct wire_writer w;
	const struct cfg_node *to = l->seqs[l->leader % l->nseqs];
	for (uint64_t n = l->low_n; n < l->next_n; n++) {
		struct slot *s = slot_of(c, l, n);
		if (s->state != SLOT_WAIT)
			continue;
		if (s->due_ns > now) {
			if (s->due_ns < next_due)
				next_due = s->due_ns;
			continue;
		}
		struct wire_req r = {
		    .client_id = l->client_id,
		    .request_number = n,
		    .session = n == 1 ? 0 : l->session,
		    .op = s->op,
		    .size = s->size,
		    .payload = s->payload,
		};
		for (int attempt = 0; attempt < 2; attempt++) {
			if (!b) {
				b = dp_alloc(c->t);
				if (!b)
					return now; /* pool empty: try again soon */
				wire_begin(&w, b->data, c->t->max_datagram, WIRE_SUBMIT,
					   c->cl->cluster_id);
				wire_begin_records(&w, 0);
			}
			if (wire_add_submit(&w, &r))
				break;
			send_datagram(c, b, &w, to);
			b = NULL;
		}
		c->stats.requests_sent++;
		if (s->tries)
			c->stats.retries++;
		if (s->tries == 0) {
			s->sent_ns = now;
			s->first_to = l->leader;
		} else if (l->leader != s->first_to) {
			s->timed_out_only = false;
		}
		s->last_ns = now;
		s->tries++;
		s->due_ns = now + backoff_ns(c, s->tries - 1);
		if (s->due_ns < next_due)
			next_due = s->due_ns;
		if (s->tries % ROTATE_AFTER_TRIES == 0)
			rotate = true;
	}
	if (b)
		send_datagram(c, b, &w, to);
	if (rotate && l->nseqs > 1)
		l->leader++; /* nobody answers: the next pass tries another node of the group */
	return next_due;
}

/* send_lane_due for every lane: the earliest future due time of them all. */
static uint64_t send_due(struct ordo_client *c, uint64_t now)
{
	uint64_t next_due = UINT64_MAX;
	for (uint32_t i = 0; i < c->nlanes; i++) {
		uint64_t d = send_lane_due(c, &c->lanes[i], now);
		if (d < next_due)
			next_due = d;
	}
	return next_due;
}

static void mark_done(struct ordo_client *c, struct lane *l, struct slot *s)
{
	s->state = SLOT_DONE;
	advance_low(c, l);
}

static void session_lost(struct ordo_client *c, struct lane *l)
{
	l->live = false;
	for (uint64_t n = l->low_n; n < l->next_n; n++) {
		struct slot *s = slot_of(c, l, n);
		if (s->state == SLOT_WAIT) {
			struct ordo_event e = {.kind = ORDO_EV_FAILED,
					       .request_number = n,
					       .group = l->group,
					       .client_id = l->client_id,
					       .status = WIRE_ST_SESSION_UNKNOWN};
			push_event(c, &e);
		}
		s->state = SLOT_FREE;
	}
	l->low_n = l->next_n;
}

/* Events of request 1 are the opening's (ordo_session_open), not the caller's. */
static void push_request_event(struct ordo_client *c, const struct ordo_event *e)
{
	if (e->request_number != 1)
		push_event(c, e);
}

static void on_ordered(struct ordo_client *c, const struct wire_ordered_rec *r, uint32_t hint,
		       uint64_t now)
{
	if (r->status < 8)
		c->stats.status_count[r->status]++;
	struct lane *l = lane_of(c, r->client_id);
	if (!l || r->request_number < l->low_n || r->request_number >= l->next_n)
		return;
	struct slot *s = slot_of(c, l, r->request_number);
	if (s->state != SLOT_WAIT)
		return;
	struct ordo_event e = {.kind = ORDO_EV_ORDERED,
			       .request_number = r->request_number,
			       .group = l->group,
			       .client_id = l->client_id,
			       .status = r->status,
			       .place = r->place};
	switch (r->status) {
	case WIRE_ST_OK:
	case WIRE_ST_DUPLICATE:
	case WIRE_ST_STALE:
		if (s->tries == 1 && now > s->sent_ns) {
			rtt_sample(c, now - s->sent_ns);
		} else if (s->tries == 2 && s->timed_out_only && r->status == WIRE_ST_OK &&
			   now - s->last_ns < c->min_rtt_ns) {
			/* Ordered, and answered sooner after the resend than any
			 * round trip has taken, by the node that had the first send
			 * and had not answered it otherwise: the answer is the first
			 * send's, and the resend was spurious (RFC 3522's idea, by
			 * timing).
			 * Its round trip counts, or the estimate, fed only by the
			 * requests answered before the timeout, stays below a
			 * loaded cluster's tail and every slow request is resent. */
			c->stats.spurious_retries++;
			rtt_sample(c, now - s->sent_ns);
		}
		if (r->request_number == 1) {
			l->session = r->place.group_position;
			l->live = r->status != WIRE_ST_STALE;
			l->opening = false;
		}
		push_request_event(c, &e);
		mark_done(c, l, s);
		break;
	case WIRE_ST_NOT_LEADER: {
		s->timed_out_only = false;
		/* A named leader: go there now. None known (an election is on):
		 * wait a timeout rather than resend at once, which only loops
		 * NOT_LEADER until the election ends. */
		bool named = false;
		for (uint32_t i = 0; i < l->nseqs; i++)
			if (hint && l->seqs[i]->node_id == hint) {
				l->leader = i;
				named = true;
			}
		/* Two stale views can name each other: after two redirects a
		 * request waits its timeout too. */
		s->due_ns = named && s->redirects++ < 2 ? now : now + backoff_ns(c, s->tries);
		break;
	}
	case WIRE_ST_OVERLOADED:
		s->timed_out_only = false;
		s->due_ns = now + backoff_ns(c, s->tries);
		break;
	case WIRE_ST_INVALID:
		e.kind = ORDO_EV_FAILED;
		push_request_event(c, &e);
		if (r->request_number == 1) {
			l->opening = false;
			mark_done(c, l, s);
			break;
		}
		/* Give the number up so the window moves (§3.1.2). */
		s->op = WIRE_OP_OPAQUE;
		s->size = 0;
		s->due_ns = now;
		break;
	case WIRE_ST_SESSION_UNKNOWN:
		session_lost(c, l);
		break;
	default:
		break;
	}
}

static void on_applied(struct ordo_client *c, const struct wire_applied_rec *r, uint32_t replica)
{
	c->stats.applied++;
	struct ordo_event e = {.kind = ORDO_EV_APPLIED,
			       .request_number = r->request_number,
			       .position = r->position,
			       .result = r->result,
			       .replica_id = replica,
			       .data_size = r->size <= 32 ? r->size : 0};
	if (e.data_size)
		memcpy(e.data, r->data, e.data_size);
	if (c->q_type == WIRE_APPLIED && !c->q_done && r->client_id == c->q_client_id &&
	    r->request_number == c->q_request) {
		c->q_event = e;
		c->q_done = true;
	}
	struct lane *l = lane_of(c, r->client_id);
	if (!l)
		return;
	e.group = l->group;
	e.client_id = l->client_id;
	push_event(c, &e);
	if (r->request_number >= l->low_n && r->request_number < l->next_n) {
		struct slot *s = slot_of(c, l, r->request_number);
		if (s->state == SLOT_WAIT && r->request_number != 1)
			mark_done(c, l, s); /* APPLIED answers the request too (§3.3) */
	}
}

static void handle_reply(struct ordo_client *c, struct dp_buf *b, uint64_t now)
{
	struct wire_hdr h;
	if (wire_check(&c->ctx, b->data, b->len, &h) != WIRE_DROP_NONE ||
	    !wire_type_accepted(WIRE_PORT_CLIENT, h.type) ||
	    !cfg_node_by_addr(c->cl, b->peer.ip, b->peer.port)) {
		c->stats.dropped++;
		return;
	}
	const uint8_t *body = b->data + ORDO_HDR_BYTES;
	uint32_t body_len = h.length - ORDO_HDR_BYTES;
	switch (h.type) {
	case WIRE_ORDERED: {
		struct wire_ordered_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
		uint32_t hint;
		int k = wire_parse_ordered(body, body_len, &hint, recs, ORDO_RECS_PER_DATAGRAM_MAX);
		if (k < 0) {
			c->stats.dropped++;
			return;
		}
		for (int i = 0; i < k; i++)
			on_ordered(c, &recs[i], hint, now);
		return;
	}
	case WIRE_APPLIED: {
		struct wire_applied_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
		uint32_t replica;
		int k =
		    wire_parse_applied(body, body_len, &replica, recs, ORDO_RECS_PER_DATAGRAM_MAX);
		if (k < 0) {
			c->stats.dropped++;
			return;
		}
		for (int i = 0; i < k; i++)
			on_applied(c, &recs[i], replica);
		return;
	}
	case WIRE_STATUS:
	case WIRE_ENTRIES:
		if (c->q_type == h.type && !c->q_done && body_len >= 8 &&
		    ordo_ld64(body) == c->q_nonce) {
			memcpy(c->q_buf, b->data, h.length);
			c->q_len = h.length;
			c->q_done = true;
		}
		return;
	default:
		c->stats.dropped++;
	}
}

/* Receives and handles everything waiting, for up to timeout_ns, returning
 * early when stop() holds. */
static void pump(struct ordo_client *c, uint64_t timeout_ns, bool (*stop)(struct ordo_client *))
{
	uint64_t start = ordo_mono_ns(), deadline = start + timeout_ns;
	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	for (;;) {
		uint64_t now = ordo_mono_ns();
		uint64_t next_due = send_due(c, now);
		/* Receive no more than the event queue can take: one ORDERED or
		 * APPLIED datagram yields at most EVENTS_PER_DATAGRAM events. What
		 * is not read waits in the socket until the caller polls. */
		unsigned room = (c->evcap - c->evcount) / c->events_per_dgram;
		if (room == 0)
			return;
		unsigned got =
		    dp_rx_burst(c->t, bufs, room < ORDO_DP_BURST_MAX ? room : ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_reply(c, bufs[i], now);
		dp_free(c->t, bufs, got);
		if (stop(c))
			return;
		now = ordo_mono_ns();
		if (now >= deadline)
			return;
		if (got == 0) {
			uint64_t until = deadline;
			if (next_due < until)
				until = next_due;
			dp_wait(c->t, until > now ? until - now : 0);
		}
	}
}

static bool stop_on_events(struct ordo_client *c)
{
	return c->evcount > 0;
}

static bool stop_on_open(struct ordo_client *c)
{
	for (uint32_t i = 0; i < c->nlanes; i++)
		if (c->lanes[i].opening)
			return false;
	return true;
}

static bool stop_on_query(struct ordo_client *c)
{
	return c->q_done;
}

int ordo_poll(struct ordo_client *c, uint64_t timeout_ns, struct ordo_event *ev, unsigned max)
{
	if (c->evcount == 0)
		pump(c, timeout_ns, stop_on_events);
	unsigned k = 0;
	while (k < max && c->evcount > 0) {
		ev[k++] = c->evq[c->evhead];
		c->evhead = (c->evhead + 1) % c->evcap;
		c->evcount--;
	}
	return (int)k;
}

/* Starts a new session in lane l: a fresh client_id (nonzero, in the key's
 * range, used by no other lane) and request 1 queued. */
static void lane_open_start(struct ordo_client *c, struct lane *l)
{
	for (uint32_t i = 0; i < c->cap; i++)
		l->slots[i].state = SLOT_FREE;
	uint64_t id;
	do {
		randombytes_buf(&id, sizeof id);
		if (c->key) /* §3.1.3: the key's range */
			id = ((uint64_t)(c->key->key_id & 0xFFFF) << 48) | (id & 0xFFFFFFFFFFFFull);
	} while (id == 0 || lane_of(c, id) != NULL);
	l->client_id = id;
	l->session = 0;
	l->live = false;
	l->opening = true;
	l->next_n = 1;
	l->low_n = 1;
	queue_request(c, l, WIRE_OP_OPAQUE, NULL, 0, NULL);
}

int ordo_session_open(struct ordo_client *c, uint64_t timeout_ns)
{
	bool spread = c->cfg.spread;
	bool started[ORDO_GROUPS_MAX] = {false};
	if (!spread)
		c->evcount = 0; /* a pinned client's new session replaces the old */
	for (uint32_t i = 0; i < c->nlanes; i++) {
		if (spread && c->lanes[i].live)
			continue;
		lane_open_start(c, &c->lanes[i]);
		started[i] = true;
	}
	pump(c, timeout_ns, stop_on_open);
	if (!spread)
		c->evcount = 0; /* the opening's own events are not the caller's */
	int rc = 0;
	for (uint32_t i = 0; i < c->nlanes; i++) {
		struct lane *l = &c->lanes[i];
		if (!started[i])
			continue;
		if (l->opening) {
			l->opening = false;
			slot_of(c, l, 1)->state = SLOT_FREE;
			l->low_n = l->next_n;
			if (rc == 0)
				rc = -ETIMEDOUT;
		} else if (!l->live) {
			rc = -ECONNREFUSED;
		}
	}
	return rc;
}

/* Sends one query datagram (body already in w) to node and waits for the
 * reply, resending every 2 x retry_ns. */
static int query(struct ordo_client *c, const struct cfg_node *to, uint8_t type,
		 void (*put)(struct wire_writer *, const void *), const void *arg, uint8_t reply,
		 uint64_t timeout_ns)
{
	uint64_t deadline = ordo_mono_ns() + timeout_ns;
	c->q_type = reply;
	c->q_done = false;
	while (!c->q_done) {
		uint64_t now = ordo_mono_ns();
		if (now >= deadline)
			break;
		struct dp_buf *b = dp_alloc(c->t);
		if (b) {
			struct wire_writer w;
			wire_begin(&w, b->data, c->t->max_datagram, type, c->cl->cluster_id);
			put(&w, arg);
			send_datagram(c, b, &w, to);
		}
		uint64_t resend = 2 * c->cfg.retry_ns;
		uint64_t slice = deadline - now < resend ? deadline - now : resend;
		pump(c, slice, stop_on_query);
	}
	c->q_type = 0;
	return c->q_done ? 0 : -ETIMEDOUT;
}

static uint64_t new_nonce(struct ordo_client *c)
{
	/* §3.7: with AUTH the nonce is CLOCK_REALTIME in ns; a counter keeps
	 * queries issued within one clock tick distinct. */
	uint64_t now = ordo_real_ns();
	if (now <= c->nonce_seq)
		now = c->nonce_seq + 1;
	c->nonce_seq = now;
	return now;
}

static void put_status_q(struct wire_writer *w, const void *arg)
{
	wire_put_status_q(w, *(const uint64_t *)arg);
}

static void put_fetch(struct wire_writer *w, const void *arg)
{
	wire_put_fetch(w, arg);
}

static void put_result_q(struct wire_writer *w, const void *arg)
{
	wire_put_result_q(w, arg);
}

int ordo_status(struct ordo_client *c, uint32_t node_id, struct wire_status_msg *out,
		uint64_t timeout_ns)
{
	const struct cfg_node *nd = cfg_node_find(c->cl, node_id);
	if (!nd)
		return -ENOENT;
	c->q_nonce = new_nonce(c);
	int rc = query(c, nd, WIRE_STATUS_Q, put_status_q, &c->q_nonce, WIRE_STATUS, timeout_ns);
	if (rc)
		return rc;
	return wire_parse_status(c->q_buf + ORDO_HDR_BYTES, c->q_len - ORDO_HDR_BYTES, out);
}

int ordo_fetch(struct ordo_client *c, uint32_t node_id, uint64_t from_position, uint32_t max_bytes,
	       struct wire_entries_head *head, struct wire_entry_rec *recs, uint32_t max,
	       uint8_t *buf, uint64_t timeout_ns)
{
	const struct cfg_node *nd = cfg_node_find(c->cl, node_id);
	if (!nd || nd->role != CFG_ROLE_REPLICA)
		return -ENOENT;
	struct wire_fetch f = {
	    .nonce = new_nonce(c), .from_position = from_position, .max_bytes = max_bytes};
	c->q_nonce = f.nonce;
	int rc = query(c, nd, WIRE_FETCH, put_fetch, &f, WIRE_ENTRIES, timeout_ns);
	if (rc)
		return rc;
	memcpy(buf, c->q_buf, c->q_len);
	return wire_parse_entries(buf + ORDO_HDR_BYTES, c->q_len - ORDO_HDR_BYTES, head, recs, max);
}

int ordo_result_q(struct ordo_client *c, uint64_t client_id, uint64_t request_number,
		  struct ordo_event *out, uint64_t timeout_ns)
{
	if (c->nreps == 0)
		return -ENOENT;
	uint64_t deadline = ordo_mono_ns() + timeout_ns;
	for (uint32_t i = 0;; i++) {
		uint64_t now = ordo_mono_ns();
		if (now >= deadline)
			return -ENOENT;
		struct wire_result_q q = {.nonce = new_nonce(c),
					  .client_id = client_id,
					  .request_number = request_number};
		c->q_client_id = client_id;
		c->q_request = request_number;
		uint64_t resend = 5 * c->cfg.retry_ns;
		uint64_t slice = deadline - now < resend ? deadline - now : resend;
		if (query(c, c->reps[i % c->nreps], WIRE_RESULT_Q, put_result_q, &q, WIRE_APPLIED,
			  slice) == 0) {
			*out = c->q_event;
			return 0;
		}
	}
}

int ordo_call(struct ordo_client *c, uint16_t op, const void *payload, uint16_t size,
	      struct ordo_event *applied, uint64_t timeout_ns)
{
	if (ordo_outstanding(c) != 0)
		return -EBUSY;
	uint64_t n;
	uint16_t group;
	int rc = ordo_submit_group(c, op, payload, size, &group, &n);
	if (rc)
		return rc;
	uint64_t client_id = lane_of_group(c, group)->client_id;
	uint64_t deadline = ordo_mono_ns() + timeout_ns, ask_at = 0;
	struct ordo_event ev[16];
	for (;;) {
		uint64_t now = ordo_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (ask_at && now >= ask_at) {
			/* Ordered, but its APPLIED was lost or the replicas lag: ask. */
			if (ordo_result_q(c, client_id, n, applied, 5 * c->cfg.retry_ns) == 0)
				return 0;
			ask_at = ordo_mono_ns() + APPLIED_WAIT_NS;
		}
		int k = ordo_poll(c, 10 * ORDO_NS_PER_MS, ev, 16);
		for (int i = 0; i < k; i++) {
			if (ev[i].request_number != n || ev[i].group != group)
				continue;
			if (ev[i].kind == ORDO_EV_APPLIED) {
				*applied = ev[i];
				return 0;
			}
			if (ev[i].kind == ORDO_EV_FAILED)
				return ev[i].status == WIRE_ST_INVALID ? -EINVAL : -ENOTCONN;
			if (ev[i].kind == ORDO_EV_ORDERED && !ask_at)
				ask_at = ordo_mono_ns() + APPLIED_WAIT_NS;
		}
	}
}
