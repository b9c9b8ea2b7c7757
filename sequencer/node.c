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
 *
 * Several groups (every_epoch in the cluster file, the default with more
 * than one group; SCALEOUT.md piece 1): the batcher runs in
 * every-epoch mode, so the leader seals an entry for every wall-clock slot of
 * epoch_us, empty or not, and wakes at each slot end (its wait is bounded by
 * the batcher's due time); followers have nothing to seal and keep the idle
 * wait. An entry may cover a run of epochs (from_epoch .. epoch): the epoch
 * log is searched by the epoch a replica asks for, EPOCH_NACK resends each
 * covering entry once, and retained_from is the oldest covered epoch.
 *
 * Adding a group (PROTOCOL.md §1.7): GROUP_ADD is answered like MEMBER, with
 * seq_machine_group_add's verdict; a group at or above founding_groups
 * starts with its batcher refusing every request (seq_machine).
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
#include "sequencer/epochlog.h"
#include "sequencer/machine.h"
#include "sequencer/raft/raft.h"
#include "sequencer/raftlog.h"
#include "storage/format.h"
#include "wire/wire.h"

#define HEARTBEAT_NS	    (20ull * ORDO_NS_PER_MS)
#define NACK_EPOCHS_MAX	    64u /* entries resent for one EPOCH_NACK */
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

struct seq_node {
	struct dp_edge e;	      /* cluster file, ports, receipt rules, drop counters */
	const char *data_dir;	      /* formatted by ordo format */
	struct seq_raftlog rlog;      /* durable Raft log, term/vote, snapshot */
	struct raft *raft;	      /* the consensus core */
	struct seq_machine m;	      /* sessions, batcher, role: the state above Raft */
	uint64_t next_tick_ns;	      /* monotonic time of the next raft_tick */
	uint64_t snapshots;	      /* taken since start */
	uint64_t snapshots_installed; /* received from a leader since start */
	struct dp_bulk *bulk;	      /* Raft messages to and from the other members */
	const struct cfg_node *peers[RAFT_VOTERS_MAX]; /* other members, bulk peer index */
	uint32_t npeers;
	uint8_t *msg_buf;	/* one encoded Raft message (RAFT_MSG_BUF_BYTES) */
	uint8_t *snap_rx;	/* an InstallSnapshot kept until the next advance */
	bool snap_rx_held;	/* snap_rx was handed to raft_step, not yet advanced */
	uint64_t raft_msgs_bad; /* delivered messages that did not decode or step */
	struct seq_epochlog log;
	struct dp_reply ordered;
	const struct cfg_node *replicas[ORDO_NODES_MAX];
	uint32_t nreplicas;
	uint32_t frag_bytes; /* epoch bytes per EPOCH_DATA fragment */
	uint64_t last_heartbeat_ns;
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
		const struct seq_reply_to from = {
		    .ip = peer->ip, .port = peer->port, .key_id = h->authed ? h->key_id : 0};
		enum wire_status st;
		struct wire_place place;
		if (seq_machine_submit(&n->m, r, &from, mono, wall, &st, &place))
			answer(n, peer, key, r, st, &place);
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
	    .role = n->m.role == RAFT_LEADER	 ? WIRE_ROLE_LEADER
		    : n->m.role == RAFT_FOLLOWER ? WIRE_ROLE_FOLLOWER
						 : WIRE_ROLE_CANDIDATE,
	    .group = n->e.self->group,
	    .term = n->m.term,
	    .leader_id = (uint32_t)n->m.leader_id,
	    .window = n->e.cfg.session_window,
	    .commit = n->m.committed_position,
	    .epoch = n->m.committed_epoch,
	    .requests = n->m.requests_committed,
	    .dropped = dp_edge_drops_total(&n->e),
	    .max_datagram = n->e.cfg.max_datagram,
	    .groups = cfg_groups(&n->e.cfg),
	    .replicas = (uint16_t)n->nreplicas,
	};
	wire_put_status(&w, &s);
	dp_edge_send(&n->e, b, &w, dp_edge_reply_key(&n->e, h), peer, local_port);
}

/* Sends one epoch in EPOCH_DATA fragments to ip:port: a replica, or the
 * replicas' multicast group (multicast_group). */
static void stream_epoch_to(struct seq_node *n, uint32_t ip, uint16_t port, uint64_t epoch,
			    const uint8_t *bytes, uint32_t len)
{
	const struct wire_key *key = dp_edge_internal_key(&n->e);
	const struct dp_addr to = {.ip = ip, .port = port};
	for (uint32_t off = 0; off < len; off += n->frag_bytes) {
		struct wire_writer w;
		struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_DATA);
		if (!b)
			return; /* the replica will NACK the gap */
		uint32_t chunk = len - off < n->frag_bytes ? len - off : n->frag_bytes;
		struct wire_epoch_data d = {
		    .epoch = epoch,
		    .committed_epoch = n->m.committed_epoch,
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

/* Sends one epoch to one replica (unicast: NACK repair, or no group). */
static void stream_epoch(struct seq_node *n, const struct cfg_node *rep, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len)
{
	stream_epoch_to(n, rep->ip, rep->internal_port, epoch, bytes, len);
}

/* Entries the epoch log indexes: with every_epoch mostly empty 48-byte
 * entries, one per epoch_us, so the index, not the bytes, would bound the
 * retention (65,536 entries: 65 s at 1 ms); one per 256 bytes of
 * epoch_log_bytes (24 bytes each: 6 MiB for the default 64 MiB). */
static uint32_t epochlog_entries(const struct cfg_cluster *c)
{
	uint64_t n = c->every_epoch ? c->epoch_log_bytes / 256 : 0;
	if (n < (1u << 16))
		n = 1u << 16;
	return n > (1u << 24) ? 1u << 24 : (uint32_t)n;
}

/* The oldest epoch this member can resend on EPOCH_NACK. */
static uint64_t retained_from(const struct seq_node *n)
{
	return n->log.first_epoch ? n->log.first_epoch : n->m.committed_epoch + 1;
}

static void send_heartbeat(struct seq_node *n, const struct cfg_node *rep)
{
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_HEARTBEAT);
	if (!b)
		return;
	struct wire_epoch_heartbeat hb = {.committed_epoch = n->m.committed_epoch,
					  .group = n->e.self->group,
					  .retained_from = retained_from(n)};
	wire_put_epoch_heartbeat(&w, &hb);
	const struct dp_addr to = {.ip = rep->ip, .port = rep->internal_port};
	dp_edge_send(&n->e, b, &w, dp_edge_internal_key(&n->e), &to, n->e.self->internal_port);
}

static void send_heartbeats(struct seq_node *n, uint64_t now)
{
	n->last_heartbeat_ns = now;
	for (uint32_t i = 0; i < n->nreplicas; i++)
		send_heartbeat(n, n->replicas[i]);
}

/* seq_machine's ordered: ORDERED OK for a committed request of our term. */
static void on_ordered(void *ctx, const struct wire_req *r, const struct wire_place *place,
		       const struct seq_reply_to *to)
{
	struct seq_node *n = ctx;
	const struct wire_key *key =
	    to->key_id ? wire_keyring_find(&n->e.client_keys, to->key_id) : NULL;
	const struct dp_addr peer = {.ip = to->ip, .port = to->port};
	if (to->key_id == 0 || key)
		answer(n, &peer, key, r, WIRE_ST_OK, place);
}

/* seq_machine's epoch: kept for replica repair on every member; the leader
 * streams the epochs of its term to the replicas, after the clients heard
 * ORDERED. */
static void on_epoch(void *ctx, const struct wire_epoch_hdr *h, const uint8_t *bytes, uint32_t len,
		     bool leading)
{
	struct seq_node *n = ctx;
	seq_epochlog_append(&n->log, h->from_epoch, h->epoch, bytes, len);
	if (n->m.role == RAFT_LEADER) {
		dp_reply_flush(&n->ordered);
		if (leading && n->e.cfg.multicast_group && n->nreplicas)
			stream_epoch_to(n, n->e.cfg.multicast_group, n->replicas[0]->internal_port,
					h->epoch, bytes, len);
		else if (leading)
			for (uint32_t i = 0; i < n->nreplicas; i++)
				stream_epoch(n, n->replicas[i], h->epoch, bytes, len);
	}
}

/* seq_machine's announce: one line when this leader proposes an
 * announcement and one when an entry carrying it is applied. */
static void on_announce(void *ctx, uint16_t group, uint64_t first_epoch, uint64_t epoch,
			bool committed)
{
	struct seq_node *n = ctx;
	if (committed)
		fprintf(stderr,
			"ordo sequencer %u: committed: group %u joins at epoch %llu (announced "
			"in epoch %llu)%s\n",
			n->e.self->node_id, (unsigned)group, (unsigned long long)first_epoch,
			(unsigned long long)epoch,
			group == n->e.self->group && n->m.joining
			    ? "; this group orders from then on"
			    : "");
	else
		fprintf(stderr,
			"ordo sequencer %u: announcing in epoch %llu: group %u joins at epoch "
			"%llu\n",
			n->e.self->node_id, (unsigned long long)epoch, (unsigned)group,
			(unsigned long long)first_epoch);
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

/* Snapshots the session table at the applied index and compacts the log. */
static void maybe_snapshot(struct seq_node *n)
{
	if (n->m.applied_index < n->rlog.snap.index + n->e.cfg.snapshot_entries)
		return;
	size_t len;
	struct raft_snapshot_meta meta;
	uint8_t *buf = seq_raftlog_snapshot_buf(&n->rlog);
	int rc = seq_machine_snapshot(&n->m, buf, ORDO_SNAPSHOT_BYTES_MAX, &len, &meta);
	if (rc) {
		fprintf(stderr, "ordo sequencer: snapshot: %s; log not compacted\n", strerror(-rc));
		return;
	}
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
				rc = seq_machine_restore(&n->m, u.snapshot->data, u.snapshot->len,
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
			if (seq_epochlog_init(&n->log, n->e.cfg.epoch_log_bytes,
					      epochlog_entries(&n->e.cfg)) != 0)
				exit(1);
			raft_snapshot_applied(n->raft, u.snapshot->meta.index);
			n->snapshots_installed++;
			fprintf(stderr,
				"ordo sequencer %u: installed the leader's snapshot at index %llu "
				"(epoch %llu, position %llu)\n",
				n->e.self->node_id, (unsigned long long)u.snapshot->meta.index,
				(unsigned long long)n->m.committed_epoch,
				(unsigned long long)n->m.committed_position);
		}
		/* a steady leader's appends go out first: the followers write
		 * while it does (raft.h, step 3c) */
		if (u.msgs_first)
			send_raft_msgs(n, u.msgs, u.n_msgs);
		int rc = seq_raftlog_persist(&n->rlog, n->raft, &u);
		if (rc) {
			fprintf(stderr,
				"ordo sequencer %u: the log in %s failed: %s; stopping (restart "
				"the node once its disk is sound)\n",
				n->e.self->node_id, n->data_dir, strerror(-rc));
			exit(1);
		}
		if (u.has_soft_state) {
			/* replies already decided keep their leader_hint */
			dp_reply_flush(&n->ordered);
			if (seq_machine_soft_state(&n->m, &u)) {
				n->ordered.aux = (uint32_t)n->m.leader_id;
				fprintf(stderr,
					"ordo sequencer %u: %s in term %llu (leader %llu)\n",
					n->e.self->node_id, raft_role_name(n->m.role),
					(unsigned long long)n->m.term,
					(unsigned long long)n->m.leader_id);
			}
		}
		if (!u.msgs_first)
			send_raft_msgs(n, u.msgs, u.n_msgs);
		seq_machine_apply_update(&n->m, &u);
		raft_advance(n->raft, &u);
		seq_raftlog_advance(&n->rlog);
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

/* MEMBER_RESULT (PROTOCOL.md §1.5), the answer to MEMBER and GROUP_ADD, from
 * the internal port under the node key. */
static void send_member_result(struct seq_node *n, const struct dp_addr *to, uint64_t nonce,
			       int32_t result, uint64_t index)
{
	struct wire_writer w;
	struct dp_buf *out = dp_edge_start(&n->e, &w, WIRE_MEMBER_RESULT);
	if (!out)
		return;
	uint8_t body[WIRE_MEMBER_RESULT_BYTES] = {0};
	ordo_st64(body, nonce);
	ordo_st32(body + 8, (uint32_t)result);
	ordo_st32(body + 12, (uint32_t)n->m.leader_id);
	ordo_st64(body + 16, index);
	bool ok = wire_put(&w, body, sizeof body);
	ORDO_ASSERT(ok);
	dp_edge_send(&n->e, out, &w, dp_edge_internal_key(&n->e), to, n->e.self->internal_port);
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
	else if (n->m.role != RAFT_LEADER)
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
	send_member_result(n, &b->peer, nonce, result, index);
}

/* GROUP_ADD from `ordo group add` (PROTOCOL.md §1.7): group G joins the merge
 * at epoch E. The checks against the cluster file are here; the verdict is
 * seq_machine_group_add's (machine.h lists the results). Every member
 * answers 0 or -EEXIST once an announcement of G is committed; otherwise
 * followers answer -EPERM with the leader they know. */
static void handle_group_add(struct seq_node *n, const struct dp_edge_rx *rx,
			     const struct dp_buf *b)
{
	if (rx->body_len != WIRE_GROUP_ADD_BYTES) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	const struct cfg_cluster *c = &n->e.cfg;
	uint64_t nonce = ordo_ld64(rx->body);
	uint64_t first_epoch = ordo_ld64(rx->body + 8);
	uint16_t group = ordo_ld16(rx->body + 16);
	int32_t result;
	uint64_t at_epoch = 0;
	/* Only a group that joins later, in every-epoch mode: one of the file's
	 * past the founding ones, or one past the file as this node loaded it
	 * (its members need not reload: they never talk to the new group;
	 * replicas, which do, must have it or they hold the merge at E). */
	if (!c->every_epoch || group < c->founding_groups || group >= ORDO_GROUPS_MAX)
		result = -EINVAL;
	else
		result =
		    seq_machine_group_add(&n->m, group, first_epoch, ordo_real_ns(), &at_epoch);
	send_member_result(n, &b->peer, nonce, result, at_epoch);
}

/* Resends the entries covering the epochs a replica reports missing
 * (from_epoch .. from_epoch + count - 1, up to the committed epoch), each
 * once, at most NACK_EPOCHS_MAX, from the epoch log. */
static void handle_nack(struct seq_node *n, const uint8_t *body, uint32_t body_len,
			const struct cfg_node *rep)
{
	struct wire_epoch_nack nack;
	if (wire_parse_epoch_nack(body, body_len, &nack) != 0) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	/* the last epoch asked for (without overflow), not past the committed */
	uint64_t last = n->m.committed_epoch;
	if (nack.count > 0 && nack.from_epoch <= UINT64_MAX - (nack.count - 1) &&
	    nack.from_epoch + (nack.count - 1) < last)
		last = nack.from_epoch + (nack.count - 1);
	bool unretained = false;
	uint64_t e = nack.from_epoch;
	for (uint32_t k = 0; k < NACK_EPOCHS_MAX && nack.count > 0 && e <= last; k++) {
		const uint8_t *bytes;
		uint32_t len;
		uint64_t from, to;
		if (seq_epochlog_get_entry(&n->log, e, &bytes, &len, &from, &to) != 0) {
			n->nacks_unretained++;
			unretained = true;
			/* older than what is retained: go on from the oldest kept */
			if (n->log.first_epoch == 0 || e >= n->log.first_epoch)
				break;
			e = n->log.first_epoch;
			continue;
		}
		stream_epoch(n, rep, to, bytes, len);
		e = to + 1;
	}
	/* Tell the replica what this member still holds: one that needs older
	 * epochs than any member retains catches up by state transfer. */
	if (unretained)
		send_heartbeat(n, rep);
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
		if (rx.h.type == WIRE_GROUP_ADD) {
			handle_group_add(n, &rx, b);
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
	if (n->m.role != RAFT_LEADER || n->npeers == 0)
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
    "                      [--busy-poll] [-- EAL ARGS]\n"
    "  Runs sequencer node ID of the cluster file until SIGINT or SIGTERM, with\n"
    "  its Raft log in DIR (created by ordo format).\n"
    "  --fault SPEC  inject faults into this node's transport, e.g.\n"
    "                drop=1%,dup=1%,delay=1%:2ms (tests)\n"
    "  --busy-poll   transport = dpdk: keep polling when idle (latency; a core)\n"
    "  -- ARGS       transport = dpdk: EAL arguments instead of the file's dpdk_eal\n";

/* Checks that dir was formatted for this node with this file's constants. */
static int check_identity(struct seq_node *n)
{
	const struct cfg_cluster *c = &n->e.cfg;
	struct stor_identity want = {.cluster_id = c->cluster_id,
				     .node_id = n->e.self->node_id,
				     .session_window = c->session_window,
				     .sessions_max = c->sessions_max,
				     .accounts_max = c->accounts_max,
				     .transfers_max = c->transfers_max};
	char err[PATH_MAX + 256];
	int rc = stor_check_identity(n->data_dir, &want, true, err, sizeof err);
	if (rc)
		fprintf(stderr, "ordo sequencer: %s\n", err);
	return rc;
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
	if (snap && (rc = seq_machine_restore(&n->m, snap, snap_len, &n->rlog.snap)) != 0) {
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
	rc_cfg.applied = n->m.applied_index;
	rc_cfg.log = &seq_raftlog_ops;
	rc_cfg.log_ctx = &n->rlog;
	rc = raft_new(&rc_cfg, &n->raft);
	if (rc) {
		fprintf(stderr, "ordo sequencer: the Raft state in %s is inconsistent: %s\n",
			n->data_dir, strerror(-rc));
		return rc;
	}
	seq_machine_attach(&n->m, n->raft);
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
	    SEQ_SNAP_HDR_BYTES + SEQ_SNAP_JOINS_BYTES + SEQ_SNAP_TRAILER_BYTES +
	    RAFT_MSG_HDR_BYTES +
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
	struct seq_machine_cfg mcfg = {
	    .sessions =
		{
		    .window = n->e.cfg.session_window,
		    .sessions_max = n->e.cfg.sessions_max,
		    .idle_min_ns = (uint64_t)n->e.cfg.session_idle_min_ms * ORDO_NS_PER_MS,
		},
	    .batcher =
		{
		    .epoch_us = n->e.cfg.epoch_us,
		    .epoch_bytes = n->e.cfg.epoch_bytes,
		    .inflight = n->e.cfg.epochs_inflight,
		    .group = n->e.self->group,
		    .every_epoch = n->e.cfg.every_epoch,
		},
	    .ops = {.ordered = on_ordered, .epoch = on_epoch, .announce = on_announce, .ctx = n},
	    .joining = n->e.self->group >= n->e.cfg.founding_groups,
	};
	rc = seq_machine_init(&n->m, &mcfg);
	if (rc) {
		fprintf(stderr, "ordo sequencer: session table and batcher (%zu bytes): %s\n",
			seq_machine_bytes(&mcfg), strerror(-rc));
		return rc;
	}
	rc = seq_epochlog_init(&n->log, n->e.cfg.epoch_log_bytes, epochlog_entries(&n->e.cfg));
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
	seq_machine_free(&n->m);
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
	if (n->m.batcher.cfg.every_epoch)
		fprintf(stderr,
			"ordo sequencer %u: every-epoch mode: %u groups, epoch_us=%u (group %u "
			"commits one entry per epoch_us, empty or not)\n",
			self->node_id, (unsigned)cfg_groups(&n->e.cfg), n->e.cfg.epoch_us,
			(unsigned)self->group);
	if (n->m.joining)
		fprintf(stderr,
			"ordo sequencer %u: group %u is not a founding group (founding_groups = "
			"%u): it orders nothing before the epoch `ordo group add` announces for it "
			"(OVERLOADED until then)\n",
			self->node_id, (unsigned)self->group, (unsigned)n->e.cfg.founding_groups);

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
		if (stop_deadline && (n->m.role != RAFT_LEADER || ordo_mono_ns() >= stop_deadline))
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
		seq_machine_tick(&n->m, now, ordo_real_ns());
		handle_raft(n);
		if (n->bulk && ordo_mono_ns() >= dp_bulk_next_deadline(n->bulk))
			dp_bulk_tick(n->bulk, ordo_mono_ns());
		dp_reply_flush(&n->ordered);
		if (n->m.role == RAFT_LEADER && now - n->last_heartbeat_ns >= HEARTBEAT_NS)
			send_heartbeats(n, now);
		if (got == 0) {
			now = ordo_mono_ns();
			uint64_t wait = n->next_tick_ns > now ? n->next_tick_ns - now : 0;
			/* an epoch that is due but has no room in the sealed ring waits
			 * for a commit, not for time: do not spin on it */
			/* every-epoch mode: the leader's due time is the end of the
			 * wall-clock slot, so it wakes for every epoch */
			uint64_t due = seq_machine_due_in(&n->m, now, ordo_real_ns());
			if (due < wait &&
			    seq_batcher_inflight(&n->m.batcher) < n->e.cfg.epochs_inflight)
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
		self->node_id, (unsigned long long)n->m.committed_epoch,
		(unsigned long long)n->m.committed_position,
		(unsigned long long)n->m.requests_committed, seq_sessions_count(&n->m.sessions),
		(unsigned long long)n->m.term, (unsigned long long)n->snapshots,
		(unsigned long long)n->snapshots_installed, (unsigned long long)n->rlog.fsyncs,
		(unsigned long long)dp_edge_drops_total(&n->e));
	dp_edge_print_drops(&n->e, stderr);
	node_close(n);
	return 0;
}
