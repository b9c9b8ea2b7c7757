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
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ordo_time.h"
#include "config/config.h"
#include "dataplane/dp.h"
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
	struct cfg_cluster cfg;
	const struct cfg_node *self;
	struct wire_keyring client_keys;
	struct wire_keyring internal_keys;
	struct wire_rx_ctx client_ctx;
	struct wire_rx_ctx internal_ctx;
	struct dp_transport *t;
	struct seq_sessions sessions;
	struct seq_batcher batcher;
	struct seq_epochlog log;
	struct wire_nonce_cache nonces;
	void *nonce_mem;
	struct dp_reply ordered;
	const struct cfg_node *replicas[ORDO_NODES_MAX];
	uint32_t nreplicas;
	uint32_t frag_bytes;	     /* epoch bytes per EPOCH_DATA fragment */
	uint64_t committed_epoch;    /* highest committed epoch, 0 before the first */
	uint64_t committed_position; /* highest committed group_position */
	uint64_t requests_committed; /* since start */
	uint64_t last_heartbeat_ns;
	uint64_t drops[WIRE_DROP__COUNT];
	struct reply_override overrides[OVERRIDES_MAX];
	uint32_t noverrides;
	uint64_t nacks_served, nacks_unretained;
};

static uint64_t drops_total(const struct seq_node *n)
{
	uint64_t sum = 0;
	for (unsigned i = 1; i < WIRE_DROP__COUNT; i++)
		sum += n->drops[i];
	return sum + n->t->stats.rx_truncated;
}

static const struct wire_key *reply_key(const struct seq_node *n, const struct wire_hdr *h)
{
	return h->authed ? wire_keyring_find(&n->client_keys, h->key_id) : NULL;
}

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
		n->drops[body_len >= 8 ? WIRE_DROP_COUNT_ZERO : WIRE_DROP_BODY]++;
		return;
	}
	const struct wire_key *key = reply_key(n, h);
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
	struct dp_buf *b = dp_alloc(n->t);
	if (!b) {
		n->drops[WIRE_DROP_OVERLOAD]++;
		return;
	}
	struct wire_status_msg s = {
	    .nonce = nonce,
	    .node_id = n->self->node_id,
	    .role = WIRE_ROLE_LEADER,
	    .group = n->self->group,
	    .term = 1, /* one node, one term, until the Raft issue */
	    .leader_id = n->self->node_id,
	    .window = n->cfg.session_window,
	    .commit = n->committed_position,
	    .epoch = n->committed_epoch,
	    .requests = n->requests_committed,
	    .dropped = drops_total(n),
	    .max_datagram = n->cfg.max_datagram,
	    .groups = cfg_groups(&n->cfg),
	    .replicas = (uint16_t)n->nreplicas,
	};
	struct wire_writer w;
	wire_begin(&w, b->data, n->t->max_datagram, WIRE_STATUS, n->cfg.cluster_id);
	wire_put_status(&w, &s);
	b->len = wire_finish(&w, reply_key(n, h));
	b->peer = *peer;
	b->local.port = local_port;
	dp_tx_burst(n->t, &b, 1);
}

/* Sends one epoch to one replica in EPOCH_DATA fragments. */
static void stream_epoch(struct seq_node *n, const struct cfg_node *rep, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len)
{
	const struct wire_key *key = n->cfg.internal_auth ? &n->cfg.internal_key : NULL;
	for (uint32_t off = 0; off < len; off += n->frag_bytes) {
		struct dp_buf *b = dp_alloc(n->t);
		if (!b) {
			n->drops[WIRE_DROP_OVERLOAD]++; /* the replica will NACK the gap */
			return;
		}
		uint32_t chunk = len - off < n->frag_bytes ? len - off : n->frag_bytes;
		struct wire_epoch_data d = {
		    .epoch = epoch,
		    .committed_epoch = n->committed_epoch,
		    .total_bytes = len,
		    .offset = off,
		    .data_bytes = chunk,
		    .group = n->self->group,
		    .data = bytes + off,
		};
		struct wire_writer w;
		wire_begin(&w, b->data, n->t->max_datagram, WIRE_EPOCH_DATA, n->cfg.cluster_id);
		bool ok = wire_put_epoch_data(&w, &d);
		ORDO_ASSERT(ok); /* frag_bytes was sized to fit */
		b->len = wire_finish(&w, key);
		b->peer = (struct dp_addr){.ip = rep->ip, .port = rep->internal_port};
		b->local.port = n->self->internal_port;
		dp_tx_burst(n->t, &b, 1);
	}
}

static void send_heartbeats(struct seq_node *n, uint64_t now)
{
	const struct wire_key *key = n->cfg.internal_auth ? &n->cfg.internal_key : NULL;
	n->last_heartbeat_ns = now;
	for (uint32_t i = 0; i < n->nreplicas; i++) {
		struct dp_buf *b = dp_alloc(n->t);
		if (!b)
			return;
		struct wire_epoch_heartbeat hb = {.committed_epoch = n->committed_epoch,
						  .group = n->self->group};
		struct wire_writer w;
		wire_begin(&w, b->data, n->t->max_datagram, WIRE_EPOCH_HEARTBEAT,
			   n->cfg.cluster_id);
		wire_put_epoch_heartbeat(&w, &hb);
		b->len = wire_finish(&w, key);
		b->peer = (struct dp_addr){.ip = n->replicas[i]->ip,
					   .port = n->replicas[i]->internal_port};
		b->local.port = n->self->internal_port;
		dp_tx_burst(n->t, &b, 1);
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
		    key_id ? wire_keyring_find(&n->client_keys, key_id) : NULL;
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

static void handle_nack(struct seq_node *n, const uint8_t *body, uint32_t body_len,
			const struct dp_addr *peer)
{
	struct wire_epoch_nack nack;
	if (wire_parse_epoch_nack(body, body_len, &nack) != 0) {
		n->drops[WIRE_DROP_BODY]++;
		return;
	}
	const struct cfg_node *rep = cfg_node_by_addr(&n->cfg, peer->ip, peer->port);
	if (!rep || rep->role != CFG_ROLE_REPLICA) {
		n->drops[WIRE_DROP_INTERNAL_PEER]++;
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
	bool internal = b->local.port == n->self->internal_port;
	struct wire_hdr h;
	enum wire_drop d =
	    wire_check(internal ? &n->internal_ctx : &n->client_ctx, b->data, b->len, &h);
	if (d != WIRE_DROP_NONE) {
		n->drops[d]++;
		return;
	}
	if (!wire_type_accepted(internal ? WIRE_PORT_INTERNAL : WIRE_PORT_SEQUENCER, h.type)) {
		n->drops[WIRE_DROP_TYPE]++;
		return;
	}
	const uint8_t *body = b->data + ORDO_HDR_BYTES;
	uint32_t body_len = h.length - ORDO_HDR_BYTES;
	if (internal) {
		if (!cfg_ip_is_node(&n->cfg, b->peer.ip)) {
			n->drops[WIRE_DROP_INTERNAL_PEER]++;
			return;
		}
		if (n->cfg.internal_auth && !(h.authed && h.key_id == n->cfg.internal_key.key_id)) {
			n->drops[WIRE_DROP_INTERNAL_AUTH]++;
			return;
		}
		if (h.type == WIRE_EPOCH_NACK)
			handle_nack(n, body, body_len, &b->peer);
		else
			n->drops[WIRE_DROP_TYPE]++;
		return;
	}
	if (!wire_source_answerable(b->peer.ip, b->peer.port, b->rx_flags & DP_RX_LOOPBACK)) {
		n->drops[WIRE_DROP_SOURCE]++;
		return;
	}
	bool trusted = h.authed || wire_cidr_match(n->cfg.trusted, n->cfg.ntrusted, b->peer.ip);
	if (h.type == WIRE_STATUS_Q) {
		uint64_t nonce;
		if (wire_parse_status_q(body, body_len, &nonce) != 0) {
			n->drops[WIRE_DROP_BODY]++;
			return;
		}
		if (h.authed) {
			d = wire_nonce_check(&n->nonces, h.key_id, nonce, ordo_real_ns());
			if (d != WIRE_DROP_NONE) {
				n->drops[d]++;
				return;
			}
		}
		send_status(n, &h, nonce, &b->peer, b->local.port);
		return;
	}
	if (!trusted) {
		n->drops[WIRE_DROP_UNTRUSTED]++;
		return;
	}
	handle_submit(n, &h, body, body_len, &b->peer);
}

static void usage(void)
{
	fprintf(stderr, "usage: ordo sequencer --cluster FILE --node ID [--fault SPEC]\n"
			"  Runs sequencer node ID of the cluster file until SIGINT or SIGTERM.\n"
			"  --fault SPEC  inject faults into this node's transport, e.g. "
			"drop=1%%,dup=1%%,delay=1%%:2ms (tests)\n");
}

static int node_open(struct seq_node *n, const char *cluster, uint32_t node_id, const char *fault)
{
	char err[512];
	int rc = cfg_load(cluster, &n->cfg, err, sizeof err);
	if (rc) {
		fprintf(stderr, "ordo sequencer: %s\n", err);
		return rc;
	}
	n->self = cfg_node_find(&n->cfg, node_id);
	if (!n->self || n->self->role != CFG_ROLE_SEQUENCER) {
		fprintf(stderr,
			"ordo sequencer: %s has no sequencer [node %u]; pass the id of a node with "
			"role = sequencer\n",
			cluster, node_id);
		return -ENOENT;
	}
	cfg_client_keyring(&n->cfg, &n->client_keys);
	n->client_ctx = (struct wire_rx_ctx){.cluster_id = n->cfg.cluster_id,
					     .keys = &n->client_keys,
					     .require_auth = n->cfg.require_auth};
	n->internal_keys = (struct wire_keyring){.keys = &n->cfg.internal_key,
						 .count = n->cfg.internal_key.key_id ? 1 : 0};
	n->internal_ctx = (struct wire_rx_ctx){.cluster_id = n->cfg.cluster_id,
					       .keys = &n->internal_keys,
					       .require_auth = n->cfg.internal_auth};
	n->nreplicas = cfg_replicas(&n->cfg, n->replicas, ORDO_NODES_MAX);

	struct dp_udp_cfg ucfg = {
	    .bind = {{.ip = n->self->ip, .port = n->self->client_port},
		     {.ip = n->self->ip, .port = n->self->internal_port}},
	    .nbind = 2,
	    .max_datagram = n->cfg.max_datagram,
	    .pool = ORDO_DP_POOL_DEFAULT,
	    .rcvbuf_bytes = 8u << 20,
	};
	rc = dp_udp_open(&ucfg, &n->t);
	if (rc) {
		fprintf(stderr, "ordo sequencer: cannot bind %s: %s\n", cluster, strerror(-rc));
		return rc;
	}
	if (fault && *fault) {
		struct dp_fault_cfg fc;
		if (!dp_fault_parse(fault, &fc, err, sizeof err)) {
			fprintf(stderr, "ordo sequencer: --fault: %s\n", err);
			return -EINVAL;
		}
		struct dp_transport *ft;
		rc = dp_fault_wrap(n->t, &fc, &ft);
		if (rc)
			return rc;
		n->t = ft;
	}
	n->frag_bytes =
	    (n->cfg.max_datagram - ORDO_HDR_BYTES - WIRE_EPOCH_DATA_HEAD_BYTES - ORDO_MAC_BYTES) &
	    ~7u;

	struct seq_sessions_cfg scfg = {
	    .window = n->cfg.session_window,
	    .sessions_max = n->cfg.sessions_max,
	    .idle_min_ns = (uint64_t)n->cfg.session_idle_min_ms * ORDO_NS_PER_MS,
	};
	rc = seq_sessions_init(&n->sessions, &scfg);
	if (rc) {
		fprintf(stderr, "ordo sequencer: session table (%zu bytes): %s\n",
			seq_sessions_bytes(&scfg), strerror(-rc));
		return rc;
	}
	struct seq_batcher_cfg bcfg = {
	    .epoch_us = n->cfg.epoch_us,
	    .epoch_bytes = n->cfg.epoch_bytes,
	    .inflight = n->cfg.epochs_inflight,
	    .group = n->self->group,
	};
	rc = seq_batcher_init(&n->batcher, &bcfg, 1, 1);
	if (rc)
		return rc;
	rc = seq_epochlog_init(&n->log, n->cfg.epoch_log_bytes, 1u << 16);
	if (rc)
		return rc;
	n->nonce_mem = malloc(wire_nonce_cache_bytes(ORDO_NONCE_CACHE_DEFAULT));
	if (!n->nonce_mem)
		return -ENOMEM;
	wire_nonce_cache_init(&n->nonces, n->nonce_mem, ORDO_NONCE_CACHE_DEFAULT);
	dp_reply_init(&n->ordered, n->t, n->cfg.cluster_id, WIRE_ORDERED, n->self->node_id,
		      n->self->client_port);
	return 0;
}

static void node_close(struct seq_node *n)
{
	dp_close(n->t);
	seq_sessions_free(&n->sessions);
	seq_batcher_free(&n->batcher);
	seq_epochlog_free(&n->log);
	free(n->nonce_mem);
}

static void print_counters(const struct seq_node *n)
{
	fprintf(stderr,
		"ordo sequencer %u: committed epoch=%llu position=%llu requests=%llu "
		"sessions=%u dropped=%llu\n",
		n->self->node_id, (unsigned long long)n->committed_epoch,
		(unsigned long long)n->committed_position,
		(unsigned long long)n->requests_committed, seq_sessions_count(&n->sessions),
		(unsigned long long)drops_total(n));
	for (unsigned i = 1; i < WIRE_DROP__COUNT; i++)
		if (n->drops[i])
			fprintf(stderr, "  dropped %-16s %llu\n", wire_drop_name((enum wire_drop)i),
				(unsigned long long)n->drops[i]);
}

int seq_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"fault", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *cluster = NULL, *fault = NULL;
	uint32_t node_id = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cluster = optarg;
			break;
		case 'n':
			node_id = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			fault = optarg;
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (!cluster || !node_id) {
		usage();
		return 2;
	}
	static struct seq_node node; /* large: keep it off the stack */
	struct seq_node *n = &node;
	if (node_open(n, cluster, node_id, fault) != 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "ordo sequencer %u: serving on %u.%u.%u.%u:%u (internal %u), %u replicas\n",
		node_id, n->self->ip >> 24, (n->self->ip >> 16) & 255, (n->self->ip >> 8) & 255,
		n->self->ip & 255, n->self->client_port, n->self->internal_port, n->nreplicas);

	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	while (!stop_requested) {
		unsigned got = dp_rx_burst(n->t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_datagram(n, bufs[i]);
		dp_free(n->t, bufs, got);
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
			dp_wait(n->t, wait < IDLE_WAIT_MAX_NS ? wait : IDLE_WAIT_MAX_NS);
		}
	}
	print_counters(n);
	node_close(n);
	return 0;
}
