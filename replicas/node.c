/*
 * The replica node driver.
 *
 * The epoch stream: EPOCH_DATA fragments are reassembled in a window of
 * REASSEMBLY_SLOTS epochs starting at the next epoch to apply; complete epochs
 * are applied strictly in order. A gap (a later epoch arriving, or a
 * heartbeat announcing a committed epoch we lack) is repaired by EPOCH_NACK
 * to the sequencer, repeated every NACK_INTERVAL_NS until filled.
 *
 * Apply: for each record, the ledger computes the result, the ENTRIES record
 * is encoded, the digest advances (PROTOCOL.md §5), the applied log keeps it
 * for FETCH and RESULT_Q, and APPLIED is sent per the reply policy (§3.3).
 *
 * Durability of the ledger (io_uring storage, checkpoints, state transfer) is
 * the replicas issue; here the applied state lives in memory.
 */
#include "node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "dataplane/dp.h"
#include "dataplane/edge.h"
#include "dataplane/reply.h"
#include "replicas/applog.h"
#include "replicas/apply.h"
#include "replicas/ledger.h"
#include "wire/wire.h"

#define REASSEMBLY_SLOTS    64u
#define NACK_DELAY_NS	    (10ull * ORDO_NS_PER_MS) /* a gap must last this long */
#define NACK_BACKOFF_MAX_NS (100ull * ORDO_NS_PER_MS)
#define NACK_EPOCHS	    16u
#define LOOKUP_RING	    65536u /* LOOKUP answers kept for RESULT_Q, by position */
#define IDLE_WAIT_MAX_NS    (100ull * ORDO_NS_PER_MS)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* One epoch being reassembled from fragments. */
struct reasm {
	uint64_t epoch; /* 0: slot free */
	uint32_t total; /* bytes of the whole epoch */
	uint32_t have;	/* fragments received */
	uint32_t nfrags;
	uint8_t *bytes; /* epoch_bytes capacity */
	uint8_t *got;	/* one byte per fragment: received */
};

struct lookup_ans {
	uint64_t position; /* 0: empty */
	uint8_t data[32];
};

struct rep_node {
	struct dp_edge e;	/* cluster file, ports, receipt rules, drop counters */
	uint32_t replica_index; /* among replicas sorted by node_id */
	uint32_t nreplicas;
	struct rep_state st; /* ledger, digest, positions */
	struct rep_applog log;
	struct dp_reply applied;
	struct reasm slots[REASSEMBLY_SLOTS];
	uint8_t *frag_flags; /* REASSEMBLY_SLOTS * frags per epoch */
	uint32_t frag_bytes; /* epoch bytes per fragment (the sender's) */
	uint32_t frags_max;
	uint64_t known_committed; /* highest committed epoch announced */
	struct dp_addr sequencer; /* where the stream comes from (NACK target) */
	uint64_t gap_epoch;	  /* next_epoch when the current gap was seen, 0 if none */
	uint64_t gap_since_ns;	  /* when it was seen */
	uint64_t nack_due_ns;	  /* next NACK for this gap */
	uint64_t nack_backoff_ns; /* doubles while the gap stays */
	uint64_t nacks_sent;
	uint64_t epoch_data_multicast; /* EPOCH_DATA received on multicast_group */
	uint64_t live_epoch;	       /* the epoch `live` was decided for */
	bool live;		       /* its timestamp is recent enough to send APPLIED */
	uint64_t bad_epoch_logged;     /* last epoch reported as malformed */
	struct lookup_ans *lookups;
};

static bool replies_to(const struct rep_node *n, uint64_t client_id)
{
	if (n->e.cfg.applied_reply == CFG_APPLIED_ALL)
		return true;
	return client_id % n->nreplicas == n->replica_index;
}

/* rep_state's per-record callback: applied log, LOOKUP answers, APPLIED. */
static void on_applied(void *ctx, const struct wire_epoch_hdr *h, const struct wire_entry_rec *ent,
		       const struct wire_epoch_rec *er, const uint8_t digest_before[16],
		       const uint8_t *data)
{
	struct rep_node *n = ctx;
	rep_applog_append(&n->log, ent, digest_before);
	if (data) {
		struct lookup_ans *la = &n->lookups[ent->position % LOOKUP_RING];
		la->position = ent->position;
		memcpy(la->data, data, 32);
	}
	if (er->reply_port == 0 || !replies_to(n, er->client_id))
		return;
	if (h->epoch != n->live_epoch) { /* once per epoch: one clock read, not one per record */
		uint64_t age_ns = 0, now = ordo_real_ns();
		if (now > h->timestamp_ns)
			age_ns = now - h->timestamp_ns;
		n->live_epoch = h->epoch;
		n->live = age_ns <= (uint64_t)n->e.cfg.applied_reply_max_age_ms * ORDO_NS_PER_MS;
	}
	if (!n->live)
		return; /* catching up: nobody waits for this answer any more */
	const struct wire_key *key =
	    er->key_id ? wire_keyring_find(&n->e.client_keys, er->key_id) : NULL;
	if (er->key_id != 0 && !key)
		return;
	struct wire_applied_rec ar = {
	    .client_id = er->client_id,
	    .request_number = er->request_number,
	    .position = ent->position,
	    .result = ent->result,
	    .size = data ? 32 : 0,
	    .data = data,
	};
	struct dp_addr peer = {.ip = er->reply_ip, .port = er->reply_port};
	dp_reply_applied(&n->applied, &peer, key, &ar);
}

/* Applies one complete epoch, which must be the next one. */
static bool apply_epoch(struct rep_node *n, const uint8_t *bytes, uint32_t len)
{
	if (rep_state_apply_epoch(&n->st, bytes, len, on_applied, n))
		return true;
	/* The stream is checksummed (and MAC'd with internal_auth): an epoch
	 * that is malformed or does not continue our order means a sequencer
	 * bug. Never apply it; drop it, say so, and keep asking (NACK). */
	dp_edge_drop(&n->e, WIRE_DROP_BODY);
	if (n->bad_epoch_logged != n->st.next_epoch)
		fprintf(stderr,
			"ordo replica %u: epoch %llu is malformed or does not continue "
			"applied position %llu; not applied\n",
			n->e.self->node_id, (unsigned long long)n->st.next_epoch,
			(unsigned long long)n->st.applied_position);
	n->bad_epoch_logged = n->st.next_epoch;
	return false;
}

static struct reasm *slot_of(struct rep_node *n, uint64_t epoch)
{
	return &n->slots[epoch % REASSEMBLY_SLOTS];
}

/* Applies every complete epoch at the head of the window. */
static void drain(struct rep_node *n)
{
	for (;;) {
		struct reasm *s = slot_of(n, n->st.next_epoch);
		if (s->epoch != n->st.next_epoch || s->have != s->nfrags)
			return;
		bool ok = apply_epoch(n, s->bytes, s->total);
		s->epoch = 0; /* a bad epoch is forgotten: the NACK asks for it again */
		if (!ok)
			return;
	}
}

static void handle_epoch_data(struct rep_node *n, const uint8_t *body, uint32_t body_len)
{
	struct wire_epoch_data d;
	if (wire_parse_epoch_data(body, body_len, &d) != 0 ||
	    d.total_bytes > n->e.cfg.epoch_bytes || d.total_bytes < ORDO_EPOCH_HDR_BYTES ||
	    d.offset % n->frag_bytes != 0 ||
	    (d.data_bytes != n->frag_bytes && d.offset + d.data_bytes != d.total_bytes)) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	if (d.committed_epoch > n->known_committed)
		n->known_committed = d.committed_epoch;
	if (d.epoch < n->st.next_epoch || d.epoch >= n->st.next_epoch + REASSEMBLY_SLOTS)
		return; /* already applied, or beyond the window: repaired later by NACK */
	struct reasm *s = slot_of(n, d.epoch);
	if (s->epoch != d.epoch) {
		s->epoch = d.epoch;
		s->total = d.total_bytes;
		s->nfrags = (d.total_bytes + n->frag_bytes - 1) / n->frag_bytes;
		s->have = 0;
		memset(s->got, 0, s->nfrags);
	}
	if (s->total != d.total_bytes) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	uint32_t f = d.offset / n->frag_bytes;
	if (f >= s->nfrags || s->got[f])
		return; /* duplicate fragment */
	memcpy(s->bytes + d.offset, d.data, d.data_bytes);
	s->got[f] = 1;
	s->have++;
	if (d.epoch > n->known_committed)
		n->known_committed = d.epoch;
	drain(n);
}

/* Called when the receive queue is drained: a gap that outlives NACK_DELAY_NS
 * is real loss, not input still queued. NACKs back off exponentially while
 * the same epoch stays missing, so repair never floods the stream. */
static void maybe_nack(struct rep_node *n, uint64_t now)
{
	if (n->known_committed < n->st.next_epoch || n->sequencer.port == 0) {
		n->gap_epoch = 0;
		return;
	}
	if (n->gap_epoch != n->st.next_epoch) {
		n->gap_epoch = n->st.next_epoch;
		n->gap_since_ns = now;
		n->nack_due_ns = now + NACK_DELAY_NS;
		n->nack_backoff_ns = NACK_DELAY_NS;
		return;
	}
	if (now < n->nack_due_ns)
		return;
	n->nack_backoff_ns *= 2;
	if (n->nack_backoff_ns > NACK_BACKOFF_MAX_NS)
		n->nack_backoff_ns = NACK_BACKOFF_MAX_NS;
	n->nack_due_ns = now + n->nack_backoff_ns;
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_NACK);
	if (!b)
		return;
	uint64_t want = n->known_committed - n->st.next_epoch + 1;
	struct wire_epoch_nack nack = {
	    .from_epoch = n->st.next_epoch,
	    .count = (uint32_t)(want < NACK_EPOCHS ? want : NACK_EPOCHS),
	    .group = 0,
	};
	/* Ask only for epochs not already complete in the window. */
	while (nack.count > 0) {
		struct reasm *s = slot_of(n, nack.from_epoch);
		if (!(s->epoch == nack.from_epoch && s->have == s->nfrags))
			break;
		nack.from_epoch++;
		nack.count--;
	}
	wire_put_epoch_nack(&w, &nack);
	dp_edge_send(&n->e, b, &w, dp_edge_internal_key(&n->e), &n->sequencer,
		     n->e.self->internal_port);
	n->nacks_sent++;
}

static void send_status(struct rep_node *n, const struct wire_hdr *h, uint64_t nonce,
			const struct dp_buf *req)
{
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_STATUS);
	if (!b)
		return;
	struct wire_status_msg s = {
	    .nonce = nonce,
	    .node_id = n->e.self->node_id,
	    .role = WIRE_ROLE_REPLICA,
	    .window = n->e.cfg.session_window,
	    .commit = n->st.applied_position,
	    .epoch = n->st.applied_epoch,
	    .requests = n->st.requests_applied,
	    .dropped = dp_edge_drops_total(&n->e),
	    .max_datagram = n->e.cfg.max_datagram,
	    .groups = cfg_groups(&n->e.cfg),
	    .replicas = (uint16_t)n->nreplicas,
	    .retained_from = rep_applog_retained_from(&n->log),
	};
	memcpy(s.digest, n->st.digest, 16);
	wire_put_status(&w, &s);
	dp_edge_send(&n->e, b, &w, dp_edge_reply_key(&n->e, h), &req->peer, req->local.port);
}

static void handle_fetch(struct rep_node *n, const struct wire_hdr *h, const struct wire_fetch *f,
			 const struct dp_buf *req)
{
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_ENTRIES);
	if (!b)
		return;
	uint32_t cap = n->e.t->max_datagram;
	if (f->max_bytes != 0 && f->max_bytes < cap)
		cap = f->max_bytes < ORDO_HDR_BYTES + ORDO_ENTRIES_HEAD_BYTES + ORDO_MAC_BYTES
			  ? ORDO_HDR_BYTES + ORDO_ENTRIES_HEAD_BYTES + ORDO_MAC_BYTES
			  : f->max_bytes;
	rep_applog_fill_entries(&n->log, &w, f->nonce, f->from_position, cap, n->st.digest);
	dp_edge_send(&n->e, b, &w, dp_edge_reply_key(&n->e, h), &req->peer, req->local.port);
}

static void handle_result_q(struct rep_node *n, const struct wire_hdr *h,
			    const struct wire_result_q *q, const struct dp_buf *req)
{
	uint64_t pos;
	const uint8_t *rec;
	uint32_t len;
	uint8_t before[16];
	if (rep_applog_find(&n->log, q->client_id, q->request_number, &pos) != 0 ||
	    rep_applog_get(&n->log, pos, &rec, &len, before) != 0)
		return; /* not applied or no longer retained: no answer (§3.6) */
	uint16_t op = ordo_ld16(rec + 32);
	uint32_t result = ordo_ld32(rec + 36);
	struct wire_applied_rec ar = {
	    .client_id = q->client_id,
	    .request_number = q->request_number,
	    .position = pos,
	    .result = result,
	};
	if (op == WIRE_OP_LOOKUP && result == WIRE_R_OK) {
		const struct lookup_ans *la = &n->lookups[pos % LOOKUP_RING];
		if (la->position != pos)
			return; /* its answer is no longer kept: better none than a wrong one */
		ar.size = 32;
		ar.data = la->data;
	}
	dp_reply_applied(&n->applied, &req->peer, dp_edge_reply_key(&n->e, h), &ar);
}

static void handle_internal(struct rep_node *n, const struct dp_edge_rx *rx, const struct dp_buf *b)
{
	if (!rx->peer || rx->peer->role != CFG_ROLE_SEQUENCER) { /* MEMBER is for sequencers */
		dp_edge_drop(&n->e, WIRE_DROP_INTERNAL_PEER);
		return;
	}
	n->sequencer = b->peer;
	if (rx->h.type == WIRE_EPOCH_DATA) {
		if (n->e.cfg.multicast_group && b->local.ip == n->e.cfg.multicast_group)
			n->epoch_data_multicast++;
		handle_epoch_data(n, rx->body, rx->body_len);
	} else if (rx->h.type == WIRE_EPOCH_HEARTBEAT) {
		struct wire_epoch_heartbeat hb;
		if (wire_parse_epoch_heartbeat(rx->body, rx->body_len, &hb) != 0) {
			dp_edge_drop(&n->e, WIRE_DROP_BODY);
			return;
		}
		if (hb.committed_epoch > n->known_committed)
			n->known_committed = hb.committed_epoch;
	} else {
		dp_edge_drop(&n->e, WIRE_DROP_TYPE);
	}
}

static void handle_datagram(struct rep_node *n, struct dp_buf *b)
{
	struct dp_edge_rx rx;
	if (!dp_edge_receive(&n->e, b, &rx))
		return;
	if (rx.internal) {
		handle_internal(n, &rx, b);
		return;
	}
	uint64_t nonce;
	struct wire_fetch f;
	struct wire_result_q q;
	int rc;
	switch (rx.h.type) {
	case WIRE_STATUS_Q:
		rc = wire_parse_status_q(rx.body, rx.body_len, &nonce);
		break;
	case WIRE_FETCH:
		rc = wire_parse_fetch(rx.body, rx.body_len, &f);
		nonce = f.nonce;
		break;
	default: /* RESULT_Q: the only other type this port accepts */
		rc = wire_parse_result_q(rx.body, rx.body_len, &q);
		nonce = q.nonce;
		break;
	}
	if (rc != 0) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	if (!dp_edge_fresh(&n->e, &rx, nonce))
		return;
	if (rx.h.type == WIRE_STATUS_Q)
		send_status(n, &rx.h, nonce, b);
	else if (rx.h.type == WIRE_FETCH)
		handle_fetch(n, &rx.h, &f, b);
	else
		handle_result_q(n, &rx.h, &q, b);
}

static const char usage_text[] =
    "usage: ordo replica --cluster FILE --node ID [--fault SPEC] [--busy-poll]\n"
    "                    [-- EAL ARGS]\n"
    "  Runs replica node ID of the cluster file until SIGINT or SIGTERM.\n"
    "  --fault SPEC  inject faults into this node's transport, e.g.\n"
    "                drop=5%,dup=1% (tests)\n"
    "  --busy-poll   transport = dpdk: keep polling when idle (latency; a core)\n"
    "  -- ARGS       transport = dpdk: EAL arguments instead of the file's dpdk_eal\n";

static int node_open(struct rep_node *n, const struct dp_edge_args *a)
{
	if (a->data) {
		fprintf(stderr, "ordo replica: --data is not supported yet: a replica keeps its "
				"ledger in memory until the replicas issue lands\n");
		return -EINVAL;
	}
	int rc = dp_edge_open(&n->e, a, CFG_ROLE_REPLICA, "ordo replica", 16u << 20);
	if (rc)
		return rc;
	const struct cfg_cluster *cfg = &n->e.cfg;
	const struct cfg_node *reps[ORDO_NODES_MAX];
	n->nreplicas = cfg_replicas(cfg, reps, ORDO_NODES_MAX);
	for (uint32_t i = 0; i < n->nreplicas; i++)
		if (reps[i] == n->e.self)
			n->replica_index = i;
	n->frag_bytes =
	    (cfg->max_datagram - ORDO_HDR_BYTES - WIRE_EPOCH_DATA_HEAD_BYTES - ORDO_MAC_BYTES) &
	    ~7u;
	n->frags_max = (cfg->epoch_bytes + n->frag_bytes - 1) / n->frag_bytes;
	n->frag_flags = calloc(REASSEMBLY_SLOTS, n->frags_max);
	if (!n->frag_flags)
		return -ENOMEM;
	for (uint32_t i = 0; i < REASSEMBLY_SLOTS; i++) {
		n->slots[i].bytes = malloc(cfg->epoch_bytes);
		n->slots[i].got = n->frag_flags + (size_t)i * n->frags_max;
		if (!n->slots[i].bytes)
			return -ENOMEM;
	}
	struct ledger_cfg lcfg = {.accounts_max = cfg->accounts_max,
				  .transfers_max = cfg->transfers_max};
	rc = rep_state_init(&n->st, &lcfg);
	if (rc) {
		fprintf(stderr, "ordo replica: ledger (%zu bytes): %s\n", ledger_bytes(&lcfg),
			strerror(-rc));
		return rc;
	}
	rc = rep_applog_init(&n->log, cfg->applied_log_bytes,
			     cfg->applied_log_bytes / ORDO_ENTRY_REC_BYTES);
	if (rc)
		return rc;
	n->lookups = calloc(LOOKUP_RING, sizeof *n->lookups);
	if (!n->lookups)
		return -ENOMEM;
	dp_reply_init(&n->applied, n->e.t, cfg->cluster_id, WIRE_APPLIED, n->e.self->node_id,
		      n->e.self->client_port);
	return 0;
}

static void node_close(struct rep_node *n)
{
	dp_edge_close(&n->e);
	for (uint32_t i = 0; i < REASSEMBLY_SLOTS; i++)
		free(n->slots[i].bytes);
	free(n->frag_flags);
	rep_state_free(&n->st);
	rep_applog_free(&n->log);
	free(n->lookups);
}

int rep_main(int argc, char **argv)
{
	struct dp_edge_args a;
	int rc = dp_edge_parse_args(argc, argv, usage_text, &a);
	if (rc >= 0)
		return rc;
	static struct rep_node node;
	struct rep_node *n = &node;
	if (node_open(n, &a) != 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	const struct cfg_node *self = n->e.self;
	fprintf(stderr, "ordo replica %u: serving on %u.%u.%u.%u:%u (internal %u)\n", self->node_id,
		self->ip >> 24, (self->ip >> 16) & 255, (self->ip >> 8) & 255, self->ip & 255,
		self->client_port, self->internal_port);

	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	while (!stop_requested) {
		unsigned got = dp_rx_burst(n->e.t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_datagram(n, bufs[i]);
		dp_free(n->e.t, bufs, got);
		dp_reply_flush(&n->applied);
		if (got == 0) {
			uint64_t now = ordo_mono_ns();
			maybe_nack(n, now);
			uint64_t wait = IDLE_WAIT_MAX_NS;
			if (n->gap_epoch)
				wait = n->nack_due_ns > now ? n->nack_due_ns - now : 0;
			dp_wait(n->e.t, wait < IDLE_WAIT_MAX_NS ? wait : IDLE_WAIT_MAX_NS);
		}
	}
	fprintf(stderr,
		"ordo replica %u: applied position=%llu epoch=%llu requests=%llu nacks=%llu "
		"multicast=%llu dropped=%llu\n",
		self->node_id, (unsigned long long)n->st.applied_position,
		(unsigned long long)n->st.applied_epoch, (unsigned long long)n->st.requests_applied,
		(unsigned long long)n->nacks_sent, (unsigned long long)n->epoch_data_multicast,
		(unsigned long long)dp_edge_drops_total(&n->e));
	dp_edge_print_drops(&n->e, stderr);
	node_close(n);
	return 0;
}
