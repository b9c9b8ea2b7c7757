/*
 * The sequencer node driver: one node of a sequencer group, whose epochs are
 * the entries of a Raft log (sequencer/raft/) kept durably on io_uring
 * storage (sequencer/raftlog.c, storage/).
 *
 * Loop: receive a burst and apply the receipt rules (PROTOCOL.md §2.2).
 *  - SUBMIT on the leader: records go through the session table into the
 *    open epoch. Followers answer NOT_LEADER with the leader they know; a
 *    new leader answers OVERLOADED until everything before its term is
 *    applied, so a retry of a request in an older uncommitted epoch is seen
 *    as the duplicate it is.
 *  - Sealed epochs (epoch_us, epoch_bytes) are proposed to Raft.
 *  - Raft messages from the other members go into the core.
 *  - Every Raft update is handled in the order raft.h requires: install a
 *    snapshot, persist (term/vote, entries, fdatasync), send, apply committed
 *    entries, advance.
 *  - Applying a committed epoch (every member) updates the session table and
 *    the epoch log kept for replica repair. The leader also answers ORDERED
 *    OK for the epochs of its term and streams them to the replicas in
 *    EPOCH_DATA fragments.
 *  - Every snapshot_entries entries the node snapshots its session table and
 *    compacts its log.
 *
 * Idle: block in the transport's wait until the next deadline (Raft tick,
 * epoch due, heartbeat to replicas).
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
#include "dataplane/bulk.h"
#include "dataplane/dp.h"
#include "dataplane/edge.h"
#include "dataplane/reply.h"
#include "sequencer/batcher.h"
#include "sequencer/epochlog.h"
#include "sequencer/raft/raft.h"
#include "sequencer/raftlog.h"
#include "sequencer/sessions.h"
#include "storage/format.h"
#include "wire/wire.h"

#define HEARTBEAT_NS	    (20ull * ORDO_NS_PER_MS)
#define NACK_EPOCHS_MAX	    64u	  /* epochs resent for one EPOCH_NACK */
#define OVERRIDES_MAX	    1024u /* pending reply-address changes remembered */
#define IDLE_WAIT_MAX_NS    (100ull * ORDO_NS_PER_MS)
#define TICK_NS		    ((uint64_t)ORDO_TICK_MS * ORDO_NS_PER_MS)
#define RAFT_MSG_BYTES_MAX  (1u << 20) /* entry bytes per AppendEntries */
#define RAFT_INFLIGHT_BYTES (4u << 20) /* per follower */
#define RAFT_APPLY_BYTES    (8u << 20) /* committed bytes handed out per update */
/* Largest Raft message: an InstallSnapshot of the session table, or one
 * AppendEntries (RAFT_MSG_BYTES_MAX, or one epoch when larger). */
#define RAFT_MSG_BUF_BYTES DP_BULK_MSG_BYTES_LIMIT

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
	struct dp_edge e;	      /* cluster file, ports, receipt rules, drop counters */
	const char *data_dir;	      /* formatted by ordo format */
	struct seq_raftlog rlog;      /* durable Raft log, term/vote, snapshot */
	struct raft *raft;	      /* the consensus core */
	enum raft_role role;	      /* as of the last update */
	uint64_t leader_id;	      /* leader this node believes in, 0 if unknown */
	uint64_t term;		      /* current term, as of the last update */
	uint64_t lead_index;	      /* leader: last log index when it became leader */
	bool ready;		      /* leader: applied through lead_index, may admit */
	uint64_t applied_index;	      /* Raft index applied to the session table */
	uint64_t applied_term;	      /* its term */
	uint64_t applied_ts_ns;	      /* timestamp of the last applied epoch */
	uint64_t next_tick_ns;	      /* monotonic time of the next raft_tick */
	uint64_t snapshots;	      /* taken since start */
	uint64_t snapshots_installed; /* received from a leader since start */
	uint64_t proposals_refused;   /* raft_propose said -ENOBUFS: retried */
	struct dp_bulk *bulk;	      /* Raft messages to and from the other members */
	const struct cfg_node *peers[RAFT_VOTERS_MAX]; /* other members, bulk peer index */
	uint32_t npeers;
	uint8_t *msg_buf;	/* one encoded Raft message (RAFT_MSG_BUF_BYTES) */
	uint8_t *snap_rx;	/* an InstallSnapshot kept until the next advance */
	bool snap_rx_held;	/* snap_rx was handed to raft_step, not yet advanced */
	uint64_t raft_msgs_bad; /* delivered messages that did not decode or step */
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
		if (n->role != RAFT_LEADER) {
			answer(n, peer, key, r, WIRE_ST_NOT_LEADER, NULL);
			continue;
		}
		if (!n->ready) {
			/* A new leader first applies every entry of earlier terms:
			 * until then it cannot tell a retry from a new request. */
			answer(n, peer, key, r, WIRE_ST_OVERLOADED, NULL);
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
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_STATUS);
	if (!b)
		return;
	struct wire_status_msg s = {
	    .nonce = nonce,
	    .node_id = n->e.self->node_id,
	    .role = n->role == RAFT_LEADER     ? WIRE_ROLE_LEADER
		    : n->role == RAFT_FOLLOWER ? WIRE_ROLE_FOLLOWER
					       : WIRE_ROLE_CANDIDATE,
	    .group = n->e.self->group,
	    .term = n->term,
	    .leader_id = (uint32_t)n->leader_id,
	    .window = n->e.cfg.session_window,
	    .commit = n->committed_position,
	    .epoch = n->committed_epoch,
	    .requests = n->requests_committed,
	    .dropped = dp_edge_drops_total(&n->e),
	    .max_datagram = n->e.cfg.max_datagram,
	    .groups = cfg_groups(&n->e.cfg),
	    .replicas = (uint16_t)n->nreplicas,
	};
	wire_put_status(&w, &s);
	dp_edge_send(&n->e, b, &w, dp_edge_reply_key(&n->e, h), peer, local_port);
}

/* Sends one epoch to one replica in EPOCH_DATA fragments. */
static void stream_epoch(struct seq_node *n, const struct cfg_node *rep, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len)
{
	const struct wire_key *key = dp_edge_internal_key(&n->e);
	const struct dp_addr to = {.ip = rep->ip, .port = rep->internal_port};
	for (uint32_t off = 0; off < len; off += n->frag_bytes) {
		struct wire_writer w;
		struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_DATA);
		if (!b)
			return; /* the replica will NACK the gap */
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
		bool ok = wire_put_epoch_data(&w, &d);
		ORDO_ASSERT(ok); /* frag_bytes was sized to fit */
		dp_edge_send(&n->e, b, &w, key, &to, n->e.self->internal_port);
	}
}

static void send_heartbeats(struct seq_node *n, uint64_t now)
{
	const struct wire_key *key = dp_edge_internal_key(&n->e);
	n->last_heartbeat_ns = now;
	for (uint32_t i = 0; i < n->nreplicas; i++) {
		struct wire_writer w;
		struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_HEARTBEAT);
		if (!b)
			return;
		struct wire_epoch_heartbeat hb = {.committed_epoch = n->committed_epoch,
						  .group = n->e.self->group};
		wire_put_epoch_heartbeat(&w, &hb);
		const struct dp_addr to = {.ip = n->replicas[i]->ip,
					   .port = n->replicas[i]->internal_port};
		dp_edge_send(&n->e, b, &w, key, &to, n->e.self->internal_port);
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

/* Applies one committed epoch (Raft entry of term entry_term): session
 * table and epoch log on every member; on the leader, ORDERED OK for the
 * epochs of its own term (earlier ones were admitted by an earlier leader,
 * whose clients retry and get DUPLICATE) and the stream to the replicas. */
static void apply_epoch(struct seq_node *n, const uint8_t *bytes, uint32_t len, uint64_t entry_term)
{
	struct wire_epoch_hdr h;
	int rc = wire_epoch_decode_hdr(bytes, len, &h);
	/* Committed entries were built by a leader and CRC-checked on disk: a
	 * malformed one, or one that does not continue the order, means the
	 * log is broken. Stopping is safer than ordering wrongly. */
	ORDO_ASSERT(rc == 0);
	ORDO_ASSERT(h.epoch == n->committed_epoch + 1);
	ORDO_ASSERT(h.count == 0 || h.first_position == n->committed_position + 1);
	bool answering = n->role == RAFT_LEADER && entry_term == n->term;
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec er;
	uint32_t index = 0;
	while ((rc = wire_epoch_next_rec(bytes, len, &off, &er)) == 1) {
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
		ORDO_ASSERT(applied); /* a leader admitted it: never a duplicate */
		if (answering) {
			struct dp_addr peer;
			uint32_t key_id;
			reply_target(n, &er, &peer, &key_id);
			const struct wire_key *key =
			    key_id ? wire_keyring_find(&n->e.client_keys, key_id) : NULL;
			if (key_id == 0 || key)
				answer(n, &peer, key, &r, WIRE_ST_OK, &place);
		}
		index++;
	}
	ORDO_ASSERT(rc == 0 && index == h.count);
	n->committed_epoch = h.epoch;
	if (h.count)
		n->committed_position = h.first_position + h.count - 1;
	n->applied_ts_ns = h.timestamp_ns;
	n->requests_committed += h.count;
	seq_epochlog_append(&n->log, h.epoch, bytes, len);
	if (n->role == RAFT_LEADER) {
		dp_reply_flush(&n->ordered); /* clients hear ORDERED before replicas get it */
		if (answering)
			for (uint32_t i = 0; i < n->nreplicas; i++)
				stream_epoch(n, n->replicas[i], h.epoch, bytes, len);
	}
}

/* Proposes sealed epochs to Raft, oldest first; one the core cannot take
 * now (-ENOBUFS: its unstable window is full) waits in the batcher, whose
 * bounded ring then answers OVERLOADED to new requests. */
static void propose_sealed(struct seq_node *n)
{
	while (n->role == RAFT_LEADER) {
		(void)seq_batcher_next_sealed(&n->batcher); /* hands out in order */
		const struct seq_epoch_buf *e = seq_batcher_oldest(&n->batcher);
		if (!e)
			return;
		int rc = raft_propose(n->raft, e->bytes, e->len, NULL, NULL);
		if (rc != 0) {
			n->proposals_refused++;
			return; /* -ENOBUFS: later; -EPERM/-EBUSY: leadership is changing */
		}
		seq_batcher_release(&n->batcher);
	}
}

/* ------------------------------------------------------------ Raft */

/* Bulk peer index of node id, or -1. */
static int peer_index(const struct seq_node *n, uint64_t id)
{
	for (uint32_t i = 0; i < n->npeers; i++)
		if (n->peers[i]->node_id == id)
			return (int)i;
	return -1;
}

/* dp_bulk's emit: one datagram to a member's internal port. */
static void bulk_emit(void *ctx, uint32_t peer, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct seq_node *n = ctx;
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, type);
	if (!b)
		return; /* repaired by NACK or a Raft retry */
	bool ok = wire_put(&w, body, len);
	ORDO_ASSERT(ok); /* dp_bulk sizes fragments for max_datagram */
	const struct dp_addr to = {.ip = n->peers[peer]->ip, .port = n->peers[peer]->internal_port};
	dp_edge_send(&n->e, b, &w, dp_edge_internal_key(&n->e), &to, n->e.self->internal_port);
}

/* dp_bulk's deliver: a whole Raft message from a member. */
static void bulk_deliver(void *ctx, uint32_t peer, uint64_t seq, const uint8_t *msg, uint32_t len)
{
	struct seq_node *n = ctx;
	(void)seq;
	static struct raft_entry ents[4096];
	struct raft_msg m;
	if (raft_msg_decode(msg, len, &m, ents, 4096) != 0 || m.from != n->peers[peer]->node_id) {
		n->raft_msgs_bad++;
		return;
	}
	if (m.type == RAFT_MSG_SNAP) {
		/* raft.h: the snapshot bytes must outlive this call. Review fix:
		 * one buffer holds one snapshot until handle_raft has drained the
		 * core. A second SNAP in the same burst (a retransmission, an older
		 * snapshot delivered late, one from a deposed leader) would
		 * overwrite the bytes of a snapshot the core already took, which it
		 * then hands out with the first one's meta: the node would install
		 * another state than the index it reports. Drop it; the leader
		 * resends after snapshot_ticks. */
		if (n->snap_rx_held) {
			n->raft_msgs_bad++;
			return;
		}
		memcpy(n->snap_rx, m.snap_data, m.snap_len);
		m.snap_data = n->snap_rx;
		n->snap_rx_held = true;
	}
	if (raft_step(n->raft, &m) != 0)
		n->raft_msgs_bad++;
}

/* Sends the messages of a persisted update to the other members. */
static void send_raft_msgs(struct seq_node *n, const struct raft_msg *msgs, uint32_t count)
{
	uint64_t now = ordo_mono_ns();
	for (uint32_t i = 0; i < count; i++) {
		int p = peer_index(n, msgs[i].to);
		long len = raft_msg_encode(&msgs[i], n->msg_buf, RAFT_MSG_BUF_BYTES);
		if (p < 0 || len < 0) {
			n->raft_msgs_bad++; /* Raft treats it as lost and retries */
			continue;
		}
		if (dp_bulk_send(n->bulk, (uint32_t)p, n->msg_buf, (uint32_t)len, now, NULL) != 0)
			n->raft_msgs_bad++; /* store full: lost, Raft retries */
	}
}

static int open_bulk(struct seq_node *n)
{
	const struct cfg_cluster *c = &n->e.cfg;
	for (uint32_t i = 0; i < c->nnodes && n->npeers < RAFT_VOTERS_MAX; i++)
		if (c->nodes[i].role == CFG_ROLE_SEQUENCER &&
		    c->nodes[i].group == n->e.self->group && &c->nodes[i] != n->e.self)
			n->peers[n->npeers++] = &c->nodes[i];
	n->msg_buf = malloc(RAFT_MSG_BUF_BYTES);
	n->snap_rx = malloc(RAFT_MSG_BUF_BYTES);
	if (!n->msg_buf || !n->snap_rx)
		return -ENOMEM;
	if (n->npeers == 0)
		return 0;
	struct dp_bulk_cfg bc;
	dp_bulk_cfg_default(&bc);
	bc.max_datagram = c->max_datagram;
	bc.peers = n->npeers;
	bc.msg_max_bytes = RAFT_MSG_BUF_BYTES;
	/* room for one largest message and what Raft keeps in flight besides,
	 * so a snapshot never blocks heartbeats and appends (dp_bulk maps it
	 * lazily: pages are touched as used) */
	bc.store_bytes = 2ull * RAFT_MSG_BUF_BYTES + 2ull * RAFT_INFLIGHT_BYTES;
	bc.reasm_bytes = RAFT_MSG_BUF_BYTES;
	bc.incarnation = ordo_real_ns();
	bc.emit = bulk_emit;
	bc.emit_ctx = n;
	return dp_bulk_create(&bc, &n->bulk);
}

/* Leadership changed hands: what only a leader holds is dropped (pending
 * marks, unproposed epochs, reply redirections); a new leader admits
 * nothing until the entries of earlier terms are applied. */
static void role_changed(struct seq_node *n, enum raft_role role, uint64_t lead)
{
	bool was_leader = n->role == RAFT_LEADER;
	dp_reply_flush(&n->ordered); /* replies already decided keep their leader_hint */
	n->role = role;
	n->leader_id = lead;
	n->ordered.aux = (uint32_t)lead;
	struct raft_status st;
	raft_get_status(n->raft, &st);
	n->term = st.term;
	if (was_leader && role != RAFT_LEADER) {
		seq_sessions_clear_pending(&n->sessions);
		seq_batcher_reset(&n->batcher, n->committed_epoch + 1, n->committed_position + 1);
		n->noverrides = 0;
	}
	if (role == RAFT_LEADER && !was_leader) {
		n->lead_index = st.last_index;
		n->ready = false;
	}
	fprintf(stderr, "ordo sequencer %u: %s in term %llu (leader %llu)\n", n->e.self->node_id,
		raft_role_name(role), (unsigned long long)st.term, (unsigned long long)lead);
}

/* Once a new leader has applied everything up to its own first entry, it
 * knows every request ordered before its term and may admit new ones. */
static void check_ready(struct seq_node *n)
{
	if (n->role != RAFT_LEADER || n->ready || n->applied_index < n->lead_index)
		return;
	seq_batcher_reset(&n->batcher, n->committed_epoch + 1, n->committed_position + 1);
	n->ready = true;
}

/* Restores the session table and counters from a snapshot's data, which
 * must be the state at meta's (index, term). */
static int restore_snapshot(struct seq_node *n, const uint8_t *data, uint64_t len,
			    const struct raft_snapshot_meta *meta)
{
	struct seq_snap_hdr h;
	int rc = seq_sessions_snapshot_read(&n->sessions, data, len, &h);
	if (rc)
		return rc;
	/* Review fix: the state must be the one the Raft meta names, or the
	 * node would apply the entries after meta.index on another base (and
	 * raft_new would be told another applied index than the log's). */
	if (h.raft_index != meta->index || h.raft_term != meta->term)
		return -EBADMSG;
	n->applied_index = h.raft_index;
	n->applied_term = h.raft_term;
	n->committed_epoch = h.epoch;
	n->committed_position = h.group_position;
	n->applied_ts_ns = h.epoch_ts_ns;
	return 0;
}

/* Snapshots the session table at the applied index and compacts the log. */
static void maybe_snapshot(struct seq_node *n)
{
	if (n->applied_index < n->rlog.snap.index + n->e.cfg.snapshot_entries)
		return;
	struct raft_status st;
	raft_get_status(n->raft, &st);
	struct seq_snap_hdr h = {.raft_index = n->applied_index,
				 .raft_term = n->applied_term,
				 .epoch = n->committed_epoch,
				 .group_position = n->committed_position,
				 .epoch_ts_ns = n->applied_ts_ns};
	size_t len;
	uint8_t *buf = seq_raftlog_snapshot_buf(&n->rlog);
	int rc = seq_sessions_snapshot_write(&n->sessions, &h, buf, ORDO_SNAPSHOT_BYTES_MAX, &len);
	if (rc) {
		fprintf(stderr, "ordo sequencer: snapshot: %s; log not compacted\n", strerror(-rc));
		return;
	}
	struct raft_snapshot_meta meta = {
	    .index = n->applied_index, .term = n->applied_term, .conf = st.conf};
	rc = seq_raftlog_save_snapshot(&n->rlog, &meta, buf, len);
	if (rc) {
		fprintf(stderr, "ordo sequencer %u: cannot save a snapshot: %s; stopping\n",
			n->e.self->node_id, strerror(-rc));
		exit(1);
	}
	rc = raft_compact(n->raft, meta.index);
	ORDO_ASSERT(rc == 0);
	n->snapshots++;
}

/* Handles every pending Raft update in the order raft.h requires. A failed
 * write or fsync stops the node: it never answers on what is not durable. */
static void handle_raft(struct seq_node *n)
{
	while (raft_has_update(n->raft)) {
		struct raft_update u;
		raft_ready(n->raft, &u);
		if (u.snapshot) {
			/* Review fix: restore (which checks every byte and that the
			 * state is the one meta names) before saving, so a snapshot
			 * that does not restore stops the node with its disk as it
			 * was, instead of replacing its log with an unusable file
			 * that keeps it from ever starting again. */
			int rc = u.snapshot->len <= ORDO_SNAPSHOT_BYTES_MAX ? 0 : -EMSGSIZE;
			if (rc == 0)
				rc = restore_snapshot(n, u.snapshot->data, u.snapshot->len,
						      &u.snapshot->meta);
			if (rc == 0)
				rc = seq_raftlog_save_snapshot(&n->rlog, &u.snapshot->meta,
							       u.snapshot->data, u.snapshot->len);
			if (rc) {
				fprintf(
				    stderr,
				    "ordo sequencer %u: cannot install the leader's snapshot at "
				    "index %llu: %s; stopping\n",
				    n->e.self->node_id, (unsigned long long)u.snapshot->meta.index,
				    strerror(-rc));
				exit(1);
			}
			seq_epochlog_free(&n->log); /* older epochs: ask another member */
			if (seq_epochlog_init(&n->log, n->e.cfg.epoch_log_bytes, 1u << 16) != 0)
				exit(1);
			raft_snapshot_applied(n->raft, u.snapshot->meta.index);
			n->snapshots_installed++;
			fprintf(stderr,
				"ordo sequencer %u: installed the leader's snapshot at index %llu "
				"(epoch %llu, position %llu)\n",
				n->e.self->node_id, (unsigned long long)u.snapshot->meta.index,
				(unsigned long long)n->committed_epoch,
				(unsigned long long)n->committed_position);
		}
		int rc = seq_raftlog_persist(&n->rlog, n->raft, &u);
		if (rc) {
			fprintf(stderr,
				"ordo sequencer %u: the log in %s failed: %s; stopping (restart "
				"the node once its disk is sound)\n",
				n->e.self->node_id, n->data_dir, strerror(-rc));
			exit(1);
		}
		if (u.has_soft_state && (u.role != n->role || u.lead != n->leader_id))
			role_changed(n, u.role, u.lead);
		send_raft_msgs(n, u.msgs, u.n_msgs);
		for (uint32_t i = 0; i < u.n_committed; i++) {
			const struct raft_entry *e = &u.committed[i];
			if (e->type == RAFT_ENTRY_NORMAL && e->len > 0)
				apply_epoch(n, e->data, e->len, e->term);
			n->applied_index = e->index;
			n->applied_term = e->term;
		}
		raft_advance(n->raft, &u);
		seq_raftlog_advance(&n->rlog);
		if (u.n_committed)
			check_ready(n);
	}
	/* Drained: no message in the core points at snap_rx or at the
	 * snapshot buffer any more. */
	n->snap_rx_held = false;
	/* Review fix: snapshot only here. raft_advance can queue messages
	 * (persisted_effects -> commit -> bcast_append), among them an
	 * InstallSnapshot whose data points into seq_raftlog_snapshot_buf and
	 * whose meta and length are the current snapshot's; it is encoded at
	 * the next raft_ready. Rewriting that buffer in between sent the old
	 * meta with the new state. */
	maybe_snapshot(n);
}

/* MEMBER from `ordo member`: a single-server configuration change (Raft
 * thesis §4.2), proposed by the leader; others answer -EPERM with a hint. */
static void handle_member(struct seq_node *n, const struct dp_edge_rx *rx, const struct dp_buf *b)
{
	if (rx->body_len != WIRE_MEMBER_BYTES) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	uint64_t nonce = ordo_ld64(rx->body);
	uint32_t id = ordo_ld32(rx->body + 8);
	uint8_t op = rx->body[12];
	const struct cfg_node *nd = cfg_node_find(&n->e.cfg, id);
	int32_t result;
	uint64_t index = 0;
	if (!nd || nd->role != CFG_ROLE_SEQUENCER || nd->group != n->e.self->group)
		result = -ENOENT; /* only a sequencer of this group's cluster file */
	else if (n->role != RAFT_LEADER)
		result = -EPERM;
	else if (op == WIRE_MEMBER_ADD)
		result = raft_add_node(n->raft, id, &index);
	else if (op == WIRE_MEMBER_REMOVE)
		result = raft_remove_node(n->raft, id, &index);
	else
		result = -EINVAL;
	if (result == 0)
		fprintf(stderr, "ordo sequencer %u: %s node %u (configuration at index %llu)\n",
			n->e.self->node_id, op == WIRE_MEMBER_ADD ? "adding" : "removing", id,
			(unsigned long long)index);
	struct wire_writer w;
	struct dp_buf *out = dp_edge_start(&n->e, &w, WIRE_MEMBER_RESULT);
	if (!out)
		return;
	uint8_t body[WIRE_MEMBER_RESULT_BYTES] = {0};
	ordo_st64(body, nonce);
	ordo_st32(body + 8, (uint32_t)result);
	ordo_st32(body + 12, (uint32_t)n->leader_id);
	ordo_st64(body + 16, index);
	bool ok = wire_put(&w, body, sizeof body);
	ORDO_ASSERT(ok);
	dp_edge_send(&n->e, out, &w, dp_edge_internal_key(&n->e), &b->peer,
		     n->e.self->internal_port);
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
		if (rx.h.type == WIRE_MEMBER) {
			handle_member(n, &rx, b);
			return;
		}
		int p = n->bulk ? peer_index(n, rx.peer->node_id) : -1;
		if (rx.h.type == WIRE_EPOCH_NACK && rx.peer->role == CFG_ROLE_REPLICA)
			handle_nack(n, rx.body, rx.body_len, rx.peer);
		else if (rx.h.type == DP_BULK_TYPE_FRAG && p >= 0) {
			/* every refusal is counted inside dp_bulk */
			int rc = dp_bulk_recv(n->bulk, (uint32_t)p, rx.body, rx.body_len,
					      ordo_mono_ns(), bulk_deliver, n);
			(void)rc;
		} else if (rx.h.type == DP_BULK_TYPE_NACK && p >= 0) {
			int rc = dp_bulk_recv_nack(n->bulk, (uint32_t)p, rx.body, rx.body_len,
						   ordo_mono_ns());
			(void)rc;
		} else
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

/* On a planned stop: if this node leads, asks Raft to transfer leadership
 * to the member with the longest log. False when there is nothing to wait
 * for (not the leader, or alone). */
static bool begin_transfer(struct seq_node *n)
{
	if (n->role != RAFT_LEADER || n->npeers == 0)
		return false;
	struct raft_status st;
	raft_get_status(n->raft, &st);
	uint64_t to = 0, best = 0;
	bool to_active = false;
	for (uint32_t i = 0; i < st.n_progress; i++) {
		const struct raft_progress_status *p = &st.progress[i];
		if (p->id == n->e.self->node_id)
			continue;
		/* a member heard from recently beats a longer log that may be down */
		if ((p->recent_active && !to_active) ||
		    (p->recent_active == to_active && p->match >= best)) {
			best = p->match;
			to = p->id;
			to_active = p->recent_active;
		}
	}
	if (to == 0 || raft_transfer_leadership(n->raft, to) != 0)
		return false;
	fprintf(stderr, "ordo sequencer %u: stopping; handing leadership to node %llu\n",
		n->e.self->node_id, (unsigned long long)to);
	return true;
}

static const char usage_text[] =
    "usage: ordo sequencer --cluster FILE --node ID --data DIR [--fault SPEC]\n"
    "  Runs sequencer node ID of the cluster file until SIGINT or SIGTERM, with\n"
    "  its Raft log in DIR (created by ordo format).\n"
    "  --fault SPEC  inject faults into this node's transport, e.g.\n"
    "                drop=1%,dup=1%,delay=1%:2ms (tests)\n";

/* Checks that dir was formatted for this node with this file's constants. */
static int check_identity(struct seq_node *n)
{
	struct stor_identity id;
	char err[512];
	int rc = stor_open_check(n->data_dir, &id, err, sizeof err);
	if (rc) {
		fprintf(stderr, "ordo sequencer: %s\n", err);
		return rc;
	}
	const struct cfg_cluster *c = &n->e.cfg;
	const char *what = NULL;
	if (id.cluster_id != c->cluster_id)
		what = "cluster_id";
	else if (id.node_id != n->e.self->node_id)
		what = "node id";
	else if (id.session_window != c->session_window)
		what = "session_window";
	else if (id.sessions_max != c->sessions_max)
		what = "sessions_max";
	else if (id.accounts_max != c->accounts_max)
		what = "accounts_max";
	else if (id.transfers_max != c->transfers_max)
		what = "transfers_max";
	if (what) {
		fprintf(stderr,
			"ordo sequencer: %s was formatted with another %s than %s says; these "
			"are fixed when a cluster is formatted: use the cluster file it was "
			"formatted with\n",
			n->data_dir, what, c->path);
		return -EINVAL;
	}
	return 0;
}

static int open_raft(struct seq_node *n)
{
	const struct cfg_cluster *c = &n->e.cfg;
	struct raft_conf conf = {0};
	for (uint32_t i = 0; i < c->nnodes && conf.n < RAFT_VOTERS_MAX; i++)
		if (c->nodes[i].role == CFG_ROLE_SEQUENCER &&
		    c->nodes[i].group == n->e.self->group && !c->nodes[i].join)
			conf.voters[conf.n++] = c->nodes[i].node_id;
	uint32_t voters = conf.n;
	struct seq_raftlog_cfg lc = {
	    .dir = n->data_dir,
	    .cluster_id = c->cluster_id,
	    .node_id = n->e.self->node_id,
	    .fsync = c->durability_fsync,
	    .entry_bytes_max = c->epoch_bytes,
	    .read_arena_bytes = RAFT_APPLY_BYTES + (uint64_t)voters * RAFT_INFLIGHT_BYTES +
				2ull * c->epoch_bytes + RAFT_MSG_BYTES_MAX,
	    .snapshot_bytes_max = ORDO_SNAPSHOT_BYTES_MAX,
	};
	struct raft_hard_state hs;
	char err[512];
	int rc = seq_raftlog_open(&n->rlog, &lc, &hs, err, sizeof err);
	if (rc) {
		fprintf(stderr, "ordo sequencer: %s\n", err);
		return rc;
	}
	if (stor_log_last_index(&n->rlog.log) == 0 && n->rlog.snap.index == 0 && hs.term == 0 &&
	    !n->e.self->join) {
		/* A founding member of a new group: every one writes the same
		 * first entry, the voters of the cluster file. */
		rc = seq_raftlog_bootstrap(&n->rlog, &conf);
		if (rc)
			return rc;
		hs.term = 1;
	}
	uint64_t snap_len;
	const uint8_t *snap = seq_raftlog_snapshot_data(&n->rlog, &snap_len);
	if (snap && (rc = restore_snapshot(n, snap, snap_len, &n->rlog.snap)) != 0) {
		fprintf(stderr, "ordo sequencer: %s/%s does not hold a valid session table: %s\n",
			n->data_dir, SEQ_SNAPSHOT_FILE, strerror(-rc));
		return rc;
	}
	struct raft_config rc_cfg;
	memset(&rc_cfg, 0, sizeof rc_cfg);
	raft_config_defaults(&rc_cfg);
	rc_cfg.id = n->e.self->node_id;
	rc_cfg.election_ticks = (c->election_ms + ORDO_TICK_MS - 1) / ORDO_TICK_MS;
	rc_cfg.heartbeat_ticks = c->heartbeat_ms / ORDO_TICK_MS;
	if (rc_cfg.heartbeat_ticks == 0)
		rc_cfg.heartbeat_ticks = 1;
	rc_cfg.max_msg_bytes = RAFT_MSG_BYTES_MAX;
	rc_cfg.max_inflight_bytes = RAFT_INFLIGHT_BYTES;
	rc_cfg.max_entry_bytes = c->epoch_bytes;
	rc_cfg.max_unstable_bytes = 4ull * c->epochs_inflight * c->epoch_bytes + RAFT_MSG_BYTES_MAX;
	rc_cfg.max_apply_bytes = RAFT_APPLY_BYTES;
	rc_cfg.prng_seed = ordo_mono_ns() ^ ((uint64_t)n->e.self->node_id << 32);
	rc_cfg.hard_state = hs;
	rc_cfg.applied = n->applied_index;
	rc_cfg.log = &seq_raftlog_ops;
	rc_cfg.log_ctx = &n->rlog;
	rc = raft_new(&rc_cfg, &n->raft);
	if (rc) {
		fprintf(stderr, "ordo sequencer: the Raft state in %s is inconsistent: %s\n",
			n->data_dir, strerror(-rc));
		return rc;
	}
	n->term = hs.term;
	n->role = RAFT_FOLLOWER;
	if (voters == 1)
		raft_campaign(n->raft); /* alone: no one to wait for */
	return 0;
}

static int node_open(struct seq_node *n, const struct dp_edge_args *a)
{
	int rc = dp_edge_open(&n->e, a, CFG_ROLE_SEQUENCER, "ordo sequencer", 8u << 20);
	if (rc)
		return rc;
	if (!a->data) {
		fprintf(stderr, "ordo sequencer: --data DIR is required: the node's Raft log "
				"lives there (create it with ordo format)\n");
		return -EINVAL;
	}
	n->data_dir = a->data;
	if ((rc = check_identity(n)) != 0)
		return rc;
	if ((rc = open_bulk(n)) != 0)
		return rc;
	/* A session in steady state holds the places of the W numbers below its
	 * next (sessions.h layout: 64 bytes + 32 per place); the worst case,
	 * every number of the window ordered out of order, is about twice that. */
	uint64_t snap_steady =
	    SEQ_SNAP_HDR_BYTES + SEQ_SNAP_TRAILER_BYTES + RAFT_MSG_HDR_BYTES +
	    (uint64_t)n->e.cfg.sessions_max *
		(SEQ_SNAP_SESSION_BYTES + (uint64_t)SEQ_SNAP_SLOT_BYTES * n->e.cfg.session_window);
	if (snap_steady > RAFT_MSG_BUF_BYTES)
		fprintf(stderr,
			"ordo sequencer %u: warning: a full session table (sessions_max %u x "
			"window %u) snapshots to about %llu bytes, more than one InstallSnapshot "
			"carries (%u); a follower behind the compacted log could not catch up. "
			"Lower sessions_max or session_window\n",
			n->e.self->node_id, n->e.cfg.sessions_max, n->e.cfg.session_window,
			(unsigned long long)snap_steady, (unsigned)RAFT_MSG_BUF_BYTES);
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
	dp_reply_init(&n->ordered, n->e.t, n->e.cfg.cluster_id, WIRE_ORDERED, 0,
		      n->e.self->client_port);
	return open_raft(n);
}

static void node_close(struct seq_node *n)
{
	dp_edge_close(&n->e);
	raft_free(n->raft);
	seq_raftlog_close(&n->rlog);
	dp_bulk_destroy(n->bulk);
	free(n->msg_buf);
	free(n->snap_rx);
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
	fprintf(stderr,
		"ordo sequencer %u: serving on %u.%u.%u.%u:%u (internal %u), %u replicas, log in "
		"%s (durability %s)\n",
		self->node_id, self->ip >> 24, (self->ip >> 16) & 255, (self->ip >> 8) & 255,
		self->ip & 255, self->client_port, self->internal_port, n->nreplicas, n->data_dir,
		n->e.cfg.durability_fsync ? "fsync" : "memory");

	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	n->next_tick_ns = ordo_mono_ns() + TICK_NS;
	uint64_t stop_deadline = 0;
	for (;;) {
		if (stop_requested && !stop_deadline) {
			/* A planned stop: hand leadership to the most caught-up member
			 * first (TimeoutNow), so the group does not wait out an
			 * election timeout. */
			stop_deadline =
			    ordo_mono_ns() + 2ull * n->e.cfg.election_ms * ORDO_NS_PER_MS;
			if (!begin_transfer(n))
				break;
		}
		if (stop_deadline && (n->role != RAFT_LEADER || ordo_mono_ns() >= stop_deadline))
			break;
		unsigned got = dp_rx_burst(n->e.t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_datagram(n, bufs[i]);
		dp_free(n->e.t, bufs, got);
		uint64_t now = ordo_mono_ns();
		for (int k = 0; now >= n->next_tick_ns && k < 100; k++) {
			raft_tick(n->raft);
			n->next_tick_ns += TICK_NS;
		}
		if (now >= n->next_tick_ns)
			n->next_tick_ns = now + TICK_NS; /* paused far too long: do not replay */
		if (n->role == RAFT_LEADER && n->ready)
			(void)seq_batcher_tick(&n->batcher, now, ordo_real_ns(), false);
		propose_sealed(n);
		handle_raft(n);
		if (n->bulk && ordo_mono_ns() >= dp_bulk_next_deadline(n->bulk))
			dp_bulk_tick(n->bulk, ordo_mono_ns());
		dp_reply_flush(&n->ordered);
		if (n->role == RAFT_LEADER && now - n->last_heartbeat_ns >= HEARTBEAT_NS)
			send_heartbeats(n, now);
		if (got == 0) {
			now = ordo_mono_ns();
			uint64_t wait = n->next_tick_ns > now ? n->next_tick_ns - now : 0;
			/* an epoch that is due but has no room in the sealed ring waits
			 * for a commit, not for time: do not spin on it */
			uint64_t due = seq_batcher_due_in(&n->batcher, now);
			if (due < wait &&
			    seq_batcher_inflight(&n->batcher) < n->e.cfg.epochs_inflight)
				wait = due;
			if (n->bulk) {
				uint64_t bd = dp_bulk_next_deadline(n->bulk);
				bd = bd > now ? bd - now : 0;
				if (bd < wait)
					wait = bd;
			}
			dp_wait(n->e.t, wait < IDLE_WAIT_MAX_NS ? wait : IDLE_WAIT_MAX_NS);
		}
	}
	fprintf(stderr,
		"ordo sequencer %u: committed epoch=%llu position=%llu requests=%llu "
		"sessions=%u term=%llu snapshots=%llu installed=%llu fsyncs=%llu dropped=%llu\n",
		self->node_id, (unsigned long long)n->committed_epoch,
		(unsigned long long)n->committed_position,
		(unsigned long long)n->requests_committed, seq_sessions_count(&n->sessions),
		(unsigned long long)n->term, (unsigned long long)n->snapshots,
		(unsigned long long)n->snapshots_installed, (unsigned long long)n->rlog.fsyncs,
		(unsigned long long)dp_edge_drops_total(&n->e));
	dp_edge_print_drops(&n->e, stderr);
	node_close(n);
	return 0;
}
