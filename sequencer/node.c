/*
 * The sequencer node driver (single node; the Raft issue makes it a group).
 *
 * Loop: receive a burst; for each datagram apply the receipt rules
 * (PROTOCOL.md §2.2), then SUBMIT records go through the session table and
 * into the open epoch, STATUS_Q is answered, and internal EPOCH_NACKs from
 * replicas are served from the epoch log. When the open epoch is due
 * (epoch_us) it is sealed and committed: applied to the session table,
 * answered ORDERED OK, kept in the epoch log and sent to every replica in
 * EPOCH_DATA fragments. Idle: block in the transport's wait until the next
 * deadline (epoch due, heartbeat), so an idle node costs no CPU.
 *
 * Commit here is "sealed into the in-memory log of the only node"; with Raft
 * it becomes "durable on a majority". The order of effects (apply, answer,
 * stream) does not change.
 */
#include "node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ordo_time.h"
#include "config/config.h"
#include "dataplane/dp.h"
#include "dataplane/edge.h"
#include "dataplane/reply.h"
#include "sequencer/batcher.h"
#include "sequencer/epochlog.h"
#include "sequencer/sessions.h"
#include "wire/wire.h"

#define HEARTBEAT_NS	 (20ull * ORDO_NS_PER_MS)
#define NACK_EPOCHS_MAX	 64u   /* epochs resent for one EPOCH_NACK */
#define OVERRIDES_MAX	 1024u /* pending reply-address changes remembered */
#define IDLE_WAIT_MAX_NS (100ull * ORDO_NS_PER_MS)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* A retry of a pending request came from another address: ORDERED OK goes to
 * the latest source (§3.1.2). */
struct reply_override {
	uint64_t client_id;
	uint64_t request_number;
	struct dp_addr peer;
	uint32_t key_id;
};

struct seq_node {
	struct dp_edge e; /* cluster file, ports, receipt rules, drop counters */
	struct seq_sessions sessions;
	struct seq_batcher batcher;
	struct seq_epochlog log;
	struct dp_reply ordered;
	const struct cfg_node *replicas[ORDO_NODES_MAX];
	uint32_t nreplicas;
	uint32_t frag_bytes;	     /* epoch bytes per EPOCH_DATA fragment */
	uint64_t committed_epoch;    /* highest committed epoch, 0 before the first */
	uint64_t committed_position; /* highest committed group_position */
	uint64_t requests_committed; /* since start */
	uint64_t last_heartbeat_ns;
	struct reply_override overrides[OVERRIDES_MAX];
	uint32_t noverrides;
	uint64_t nacks_served, nacks_unretained;
};

static void answer(struct seq_node *n, const struct dp_addr *peer, const struct wire_key *key,
		   const struct wire_req *r, enum wire_status st, const struct wire_place *place)
{
	struct wire_ordered_rec rec = {
	    .client_id = r->client_id,
	    .request_number = r->request_number,
	    .status = (uint16_t)st,
	};
	if (place && (st == WIRE_ST_OK || st == WIRE_ST_DUPLICATE))
		rec.place = *place;
	dp_reply_ordered(&n->ordered, peer, key, &rec);
}

static void remember_override(struct seq_node *n, const struct wire_req *r,
			      const struct dp_addr *peer, uint32_t key_id)
{
	for (uint32_t i = 0; i < n->noverrides; i++) {
		struct reply_override *o = &n->overrides[i];
		if (o->client_id == r->client_id && o->request_number == r->request_number) {
			o->peer = *peer;
			o->key_id = key_id;
			return;
		}
	}
	if (n->noverrides == OVERRIDES_MAX)
		return; /* bounded: the reply goes to the first source; retries get DUPLICATE */
	n->overrides[n->noverrides++] = (struct reply_override){
	    .client_id = r->client_id,
	    .request_number = r->request_number,
	    .peer = *peer,
	    .key_id = key_id,
	};
}

static void handle_submit(struct seq_node *n, const struct wire_hdr *h, const uint8_t *body,
			  uint32_t body_len, const struct dp_addr *peer)
{
	struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
	bool framing_ok;
	int count =
	    wire_parse_submit(body, body_len, recs, ORDO_RECS_PER_DATAGRAM_MAX, &framing_ok);
	if (count < 0) {
		dp_edge_drop(&n->e, body_len >= 8 ? WIRE_DROP_COUNT_ZERO : WIRE_DROP_BODY);
		return;
	}
	const struct wire_key *key = dp_edge_reply_key(&n->e, h);
	uint64_t mono = ordo_mono_ns(), wall = ordo_real_ns();
	for (int i = 0; i < count; i++) {
		const struct wire_req *r = &recs[i];
		if (!framing_ok || wire_req_validate(r, h->authed, h->key_id) != WIRE_ST_OK) {
			answer(n, peer, key, r, WIRE_ST_INVALID, NULL);
			continue;
		}
		struct wire_place place;
		switch (seq_sessions_admit(&n->sessions, r, wall, &place)) {
		case SEQ_ADMIT_ORDER: {
			struct wire_epoch_rec er = {
			    .client_id = r->client_id,
			    .request_number = r->request_number,
			    .session = r->session,
			    .op = r->op,
			    .size = r->size,
			    .key_id = h->authed ? h->key_id : 0,
			    .reply_ip = peer->ip,
			    .reply_port = peer->port,
			    .payload = r->payload,
			};
			if (seq_batcher_add(&n->batcher, &er, mono, wall, &place) != 0) {
				seq_sessions_unadmit(&n->sessions, r);
				answer(n, peer, key, r, WIRE_ST_OVERLOADED, NULL);
			}
			break;
		}
		case SEQ_ADMIT_PENDING:
			remember_override(n, r, peer, h->authed ? h->key_id : 0);
			break;
		case SEQ_ADMIT_DUPLICATE:
			answer(n, peer, key, r, WIRE_ST_DUPLICATE, &place);
			break;
		case SEQ_ADMIT_STALE:
			answer(n, peer, key, r, WIRE_ST_STALE, NULL);
			break;
		case SEQ_ADMIT_OVERLOADED:
			answer(n, peer, key, r, WIRE_ST_OVERLOADED, NULL);
			break;
		case SEQ_ADMIT_UNKNOWN:
			answer(n, peer, key, r, WIRE_ST_SESSION_UNKNOWN, NULL);
			break;
		}
	}
}

static void send_status(struct seq_node *n, const struct wire_hdr *h, uint64_t nonce,
			const struct dp_addr *peer, uint16_t local_port)
{
	struct dp_buf *b = dp_alloc(n->e.t);
	if (!b) {
		dp_edge_drop(&n->e, WIRE_DROP_OVERLOAD);
		return;
	}
	struct wire_status_msg s = {
	    .nonce = nonce,
	    .node_id = n->e.self->node_id,
	    .role = WIRE_ROLE_LEADER,
	    .group = n->e.self->group,
	    .term = 1, /* one node, one term, until the Raft issue */
	    .leader_id = n->e.self->node_id,
	    .window = n->e.cfg.session_window,
	    .commit = n->committed_position,
	    .epoch = n->committed_epoch,
	    .requests = n->requests_committed,
	    .dropped = dp_edge_drops_total(&n->e),
	    .max_datagram = n->e.cfg.max_datagram,
	    .groups = cfg_groups(&n->e.cfg),
	    .replicas = (uint16_t)n->nreplicas,
	};
	struct wire_writer w;
	wire_begin(&w, b->data, n->e.t->max_datagram, WIRE_STATUS, n->e.cfg.cluster_id);
	wire_put_status(&w, &s);
	b->len = wire_finish(&w, dp_edge_reply_key(&n->e, h));
	b->peer = *peer;
	b->local.port = local_port;
	dp_tx_burst(n->e.t, &b, 1);
}

/* Sends one epoch to one replica in EPOCH_DATA fragments. */
static void stream_epoch(struct seq_node *n, const struct cfg_node *rep, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len)
{
	const struct wire_key *key = dp_edge_internal_key(&n->e);
	for (uint32_t off = 0; off < len; off += n->frag_bytes) {
		struct dp_buf *b = dp_alloc(n->e.t);
		if (!b) {
			dp_edge_drop(&n->e, WIRE_DROP_OVERLOAD); /* the replica will NACK the gap */
			return;
		}
		uint32_t chunk = len - off < n->frag_bytes ? len - off : n->frag_bytes;
		struct wire_epoch_data d = {
		    .epoch = epoch,
		    .committed_epoch = n->committed_epoch,
		    .total_bytes = len,
		    .offset = off,
		    .data_bytes = chunk,
		    .group = n->e.self->group,
		    .data = bytes + off,
		};
		struct wire_writer w;
		wire_begin(&w, b->data, n->e.t->max_datagram, WIRE_EPOCH_DATA, n->e.cfg.cluster_id);
		bool ok = wire_put_epoch_data(&w, &d);
		ORDO_ASSERT(ok); /* frag_bytes was sized to fit */
		b->len = wire_finish(&w, key);
		b->peer = (struct dp_addr){.ip = rep->ip, .port = rep->internal_port};
		b->local.port = n->e.self->internal_port;
		dp_tx_burst(n->e.t, &b, 1);
	}
}

static void send_heartbeats(struct seq_node *n, uint64_t now)
{
	const struct wire_key *key = dp_edge_internal_key(&n->e);
	n->last_heartbeat_ns = now;
	for (uint32_t i = 0; i < n->nreplicas; i++) {
		struct dp_buf *b = dp_alloc(n->e.t);
		if (!b)
			return;
		struct wire_epoch_heartbeat hb = {.committed_epoch = n->committed_epoch,
						  .group = n->e.self->group};
		struct wire_writer w;
		wire_begin(&w, b->data, n->e.t->max_datagram, WIRE_EPOCH_HEARTBEAT,
			   n->e.cfg.cluster_id);
		wire_put_epoch_heartbeat(&w, &hb);
		b->len = wire_finish(&w, key);
		b->peer = (struct dp_addr){.ip = n->replicas[i]->ip,
					   .port = n->replicas[i]->internal_port};
		b->local.port = n->e.self->internal_port;
		dp_tx_burst(n->e.t, &b, 1);
	}
}

/* Where ORDERED OK for this committed record goes: the latest source. */
static void reply_target(struct seq_node *n, const struct wire_epoch_rec *er, struct dp_addr *peer,
			 uint32_t *key_id)
{
	peer->ip = er->reply_ip;
	peer->port = er->reply_port;
	*key_id = er->key_id;
	for (uint32_t i = 0; i < n->noverrides; i++) {
		struct reply_override *o = &n->overrides[i];
		if (o->client_id == er->client_id && o->request_number == er->request_number) {
			*peer = o->peer;
			*key_id = o->key_id;
			n->overrides[i] = n->overrides[--n->noverrides];
			return;
		}
	}
}

/* Commits the oldest sealed epoch: session table, ORDERED OK, epoch log, stream. */
static void commit_epoch(struct seq_node *n, const struct seq_epoch_buf *e)
{
	struct wire_epoch_hdr h;
	int rc = wire_epoch_decode_hdr(e->bytes, e->len, &h);
	ORDO_ASSERT(rc == 0); /* we built it */
	ORDO_ASSERT(h.epoch == n->committed_epoch + 1);
	ORDO_ASSERT(h.count == 0 || h.first_position == n->committed_position + 1);
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec er;
	uint32_t index = 0;
	while ((rc = wire_epoch_next_rec(e->bytes, e->len, &off, &er)) == 1) {
		struct wire_place place = {
		    .group = h.group,
		    .index = index,
		    .epoch = h.epoch,
		    .group_position = h.first_position + index,
		};
		struct wire_req r = {
		    .client_id = er.client_id,
		    .request_number = er.request_number,
		    .session = er.session,
		    .op = er.op,
		    .size = er.size,
		    .payload = er.payload,
		};
		bool applied = seq_sessions_apply(&n->sessions, &r, &place, h.timestamp_ns);
		ORDO_ASSERT(applied); /* the leader admitted it: never a duplicate */
		struct dp_addr peer;
		uint32_t key_id;
		reply_target(n, &er, &peer, &key_id);
		const struct wire_key *key =
		    key_id ? wire_keyring_find(&n->e.client_keys, key_id) : NULL;
		if (key_id == 0 || key)
			answer(n, &peer, key, &r, WIRE_ST_OK, &place);
		index++;
	}
	ORDO_ASSERT(rc == 0 && index == h.count);
	n->committed_epoch = h.epoch;
	if (h.count)
		n->committed_position = h.first_position + h.count - 1;
	n->requests_committed += h.count;
	seq_epochlog_append(&n->log, h.epoch, e->bytes, e->len);
	dp_reply_flush(&n->ordered); /* clients hear ORDERED before replicas get the epoch */
	for (uint32_t i = 0; i < n->nreplicas; i++)
		stream_epoch(n, n->replicas[i], h.epoch, e->bytes, e->len);
}

static void commit_sealed(struct seq_node *n)
{
	/* One node: an epoch is committed as soon as it is sealed. */
	while (seq_batcher_next_sealed(&n->batcher)) {
		const struct seq_epoch_buf *e = seq_batcher_oldest(&n->batcher);
		commit_epoch(n, e);
		seq_batcher_release(&n->batcher);
	}
}

/* Resends the epochs a replica reports missing, from the epoch log. */
static void handle_nack(struct seq_node *n, const uint8_t *body, uint32_t body_len,
			const struct cfg_node *rep)
{
	struct wire_epoch_nack nack;
	if (wire_parse_epoch_nack(body, body_len, &nack) != 0) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	uint32_t count = nack.count < NACK_EPOCHS_MAX ? nack.count : NACK_EPOCHS_MAX;
	for (uint64_t e = nack.from_epoch; e < nack.from_epoch + count; e++) {
		const uint8_t *bytes;
		uint32_t len;
		if (e > n->committed_epoch)
			break;
		if (seq_epochlog_get(&n->log, e, &bytes, &len) != 0) {
			n->nacks_unretained++;
			continue;
		}
		stream_epoch(n, rep, e, bytes, len);
	}
	n->nacks_served++;
}

static void handle_datagram(struct seq_node *n, struct dp_buf *b)
{
	struct dp_edge_rx rx;
	if (!dp_edge_receive(&n->e, b, &rx))
		return;
	if (rx.internal) {
		if (rx.h.type == WIRE_EPOCH_NACK && rx.peer->role == CFG_ROLE_REPLICA)
			handle_nack(n, rx.body, rx.body_len, rx.peer);
		else
			dp_edge_drop(&n->e, WIRE_DROP_TYPE);
		return;
	}
	if (rx.h.type == WIRE_STATUS_Q) {
		uint64_t nonce;
		if (wire_parse_status_q(rx.body, rx.body_len, &nonce) != 0) {
			dp_edge_drop(&n->e, WIRE_DROP_BODY);
			return;
		}
		if (dp_edge_fresh(&n->e, &rx, nonce))
			send_status(n, &rx.h, nonce, &b->peer, b->local.port);
		return;
	}
	handle_submit(n, &rx.h, rx.body, rx.body_len, &b->peer);
}

static const char usage_text[] =
    "usage: ordo sequencer --cluster FILE --node ID [--fault SPEC]\n"
    "  Runs sequencer node ID of the cluster file until SIGINT or SIGTERM.\n"
    "  --fault SPEC  inject faults into this node's transport, e.g.\n"
    "                drop=1%,dup=1%,delay=1%:2ms (tests)\n";

static int node_open(struct seq_node *n, const struct dp_edge_args *a)
{
	int rc = dp_edge_open(&n->e, a, CFG_ROLE_SEQUENCER, "ordo sequencer", 8u << 20);
	if (rc)
		return rc;
	n->nreplicas = cfg_replicas(&n->e.cfg, n->replicas, ORDO_NODES_MAX);
	n->frag_bytes =
	    (n->e.cfg.max_datagram - ORDO_HDR_BYTES - WIRE_EPOCH_DATA_HEAD_BYTES - ORDO_MAC_BYTES) &
	    ~7u;
	struct seq_sessions_cfg scfg = {
	    .window = n->e.cfg.session_window,
	    .sessions_max = n->e.cfg.sessions_max,
	    .idle_min_ns = (uint64_t)n->e.cfg.session_idle_min_ms * ORDO_NS_PER_MS,
	};
	rc = seq_sessions_init(&n->sessions, &scfg);
	if (rc) {
		fprintf(stderr, "ordo sequencer: session table (%zu bytes): %s\n",
			seq_sessions_bytes(&scfg), strerror(-rc));
		return rc;
	}
	struct seq_batcher_cfg bcfg = {
	    .epoch_us = n->e.cfg.epoch_us,
	    .epoch_bytes = n->e.cfg.epoch_bytes,
	    .inflight = n->e.cfg.epochs_inflight,
	    .group = n->e.self->group,
	};
	rc = seq_batcher_init(&n->batcher, &bcfg, 1, 1);
	if (rc)
		return rc;
	rc = seq_epochlog_init(&n->log, n->e.cfg.epoch_log_bytes, 1u << 16);
	if (rc)
		return rc;
	dp_reply_init(&n->ordered, n->e.t, n->e.cfg.cluster_id, WIRE_ORDERED, n->e.self->node_id,
		      n->e.self->client_port);
	return 0;
}

static void node_close(struct seq_node *n)
{
	dp_edge_close(&n->e);
	seq_sessions_free(&n->sessions);
	seq_batcher_free(&n->batcher);
	seq_epochlog_free(&n->log);
}

int seq_main(int argc, char **argv)
{
	struct dp_edge_args a;
	int rc = dp_edge_parse_args(argc, argv, usage_text, &a);
	if (rc >= 0)
		return rc;
	static struct seq_node node; /* large: keep it off the stack */
	struct seq_node *n = &node;
	if (node_open(n, &a) != 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	const struct cfg_node *self = n->e.self;
	fprintf(stderr, "ordo sequencer %u: serving on %u.%u.%u.%u:%u (internal %u), %u replicas\n",
		self->node_id, self->ip >> 24, (self->ip >> 16) & 255, (self->ip >> 8) & 255,
		self->ip & 255, self->client_port, self->internal_port, n->nreplicas);

	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	while (!stop_requested) {
		unsigned got = dp_rx_burst(n->e.t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_datagram(n, bufs[i]);
		dp_free(n->e.t, bufs, got);
		uint64_t now = ordo_mono_ns();
		if (seq_batcher_tick(&n->batcher, now, ordo_real_ns(), false))
			commit_sealed(n);
		commit_sealed(n); /* epochs sealed inside add when one filled up */
		dp_reply_flush(&n->ordered);
		if (now - n->last_heartbeat_ns >= HEARTBEAT_NS)
			send_heartbeats(n, now);
		if (got == 0) {
			uint64_t due = seq_batcher_due_in(&n->batcher, now);
			uint64_t hb = n->last_heartbeat_ns + HEARTBEAT_NS - now;
			uint64_t wait = due < hb ? due : hb;
			dp_wait(n->e.t, wait < IDLE_WAIT_MAX_NS ? wait : IDLE_WAIT_MAX_NS);
		}
	}
	fprintf(stderr,
		"ordo sequencer %u: committed epoch=%llu position=%llu requests=%llu "
		"sessions=%u dropped=%llu\n",
		self->node_id, (unsigned long long)n->committed_epoch,
		(unsigned long long)n->committed_position,
		(unsigned long long)n->requests_committed, seq_sessions_count(&n->sessions),
		(unsigned long long)dp_edge_drops_total(&n->e));
	dp_edge_print_drops(&n->e, stderr);
	node_close(n);
	return 0;
}
