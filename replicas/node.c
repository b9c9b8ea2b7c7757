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
 * Storage (--data DIR, replicas/store.h): every applied epoch is appended to
 * the applied log and fdatasync'd by group commit, checkpoints are taken
 * while applying goes on, and a restart loads the newest valid checkpoint
 * and replays the log. Without --data the ledger lives in memory only.
 *
 * Repair: NACKs go first to the member that streamed to us, then to each
 * member of the group in turn (every member keeps the committed epochs).
 * Members say in EPOCH_HEARTBEAT which epochs they still hold; a replica
 * that needs an older one than any member holds (it fell behind, or starts
 * empty after the sequencers compacted) catches up by state transfer: it
 * pulls a checkpoint file from another replica (CKPT_Q/OFFER/READ/DATA,
 * docs/PROTOCOL.md §1.6), verifies it, installs it, and follows the stream.
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "dataplane/dp.h"
#include "dataplane/edge.h"
#include "dataplane/reply.h"
#include "replicas/applog.h"
#include "replicas/apply.h"
#include "replicas/ledger.h"
#include "replicas/merge.h"
#include "replicas/store.h"
#include "wire/wire.h"

#define REASSEMBLY_SLOTS    64u			     /* per group */
#define NACK_DELAY_NS	    (10ull * ORDO_NS_PER_MS) /* a gap must last this long */
#define NACK_BACKOFF_MAX_NS (100ull * ORDO_NS_PER_MS)
#define NACK_EPOCHS	    REASSEMBLY_SLOTS /* a NACK asks for what the merge can hold */
#define LOOKUP_RING	    65536u	     /* LOOKUP answers kept for RESULT_Q, by position */
#define IDLE_WAIT_MAX_NS    (100ull * ORDO_NS_PER_MS)
#define STORE_WAIT_NS	    (1ull * ORDO_NS_PER_MS)   /* storage I/O in flight: come back soon */
#define STALL_REPORT_NS	    (100ull * ORDO_NS_PER_MS) /* a merge held back this long is logged */

/* State transfer (docs/PROTOCOL.md §1.6). */
#define XFER_AFTER_NS	 (1000ull * ORDO_NS_PER_MS) /* a gap no member can repair, this long */
#define XFER_QUERY_NS	 (200ull * ORDO_NS_PER_MS)  /* between CKPT_Q to the next donor */
#define XFER_WINDOW	 64u			    /* CKPT_READ outstanding */
#define XFER_RTO_NS	 (30ull * ORDO_NS_PER_MS)   /* a CKPT_READ unanswered this long is resent */
#define XFER_STALL_NS	 (3000ull * ORDO_NS_PER_MS) /* no progress this long: another donor */
#define WIRE_CKPT_Q	 34u
#define WIRE_CKPT_OFFER	 35u
#define WIRE_CKPT_READ	 36u
#define WIRE_CKPT_DATA	 37u
#define CKPT_Q_BYTES	 16u
#define CKPT_OFFER_BYTES 48u
#define CKPT_READ_BYTES	 24u
#define CKPT_DATA_HEAD	 24u
#define CKPT_DATA_OK	 0u
#define CKPT_DATA_GONE	 1u

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

/* Repair of one sequencer group's stream. */
struct grp_repair {
	struct dp_addr sequencer; /* the member that streams to us (first NACK target) */
	uint64_t gap_epoch;	  /* first epoch missing when the gap was seen, 0 if none */
	uint64_t gap_since_ns;	  /* when it was seen */
	uint64_t nack_due_ns;	  /* next NACK for this gap */
	uint64_t nack_backoff_ns; /* doubles while the gap stays */
	uint32_t nack_round;	  /* NACKs sent for the current gap */
};

struct lookup_ans {
	uint64_t position; /* 0: empty */
	uint8_t data[32];
};

/* A state transfer this replica is receiving. */
struct xfer_slot {
	uint64_t off;	  /* offset asked for */
	uint64_t sent_ns; /* when; 0: slot free */
};

struct xfer {
	int phase;		/* XFER_IDLE, XFER_QUERY, XFER_PULL */
	uint64_t need_epoch;	/* the checkpoint must reach at least epoch need_epoch - 1 */
	uint64_t nonce;		/* of the current CKPT_Q */
	uint32_t donor;		/* index into rep_node.peers of the donor asked */
	uint64_t next_query_ns; /* next CKPT_Q */
	uint64_t position;	/* the offered checkpoint */
	uint64_t epoch;
	uint64_t file_bytes;
	uint8_t digest[16];
	int fd; /* the temp file being filled; -1 */
	char tmp[PATH_MAX];
	char path[PATH_MAX];
	uint64_t next_off;    /* next offset to ask for */
	uint64_t done_bytes;  /* bytes received and written */
	uint64_t started_ns;  /* pull began */
	uint64_t progress_ns; /* last DATA that was new */
	struct xfer_slot win[XFER_WINDOW];
};
enum { XFER_IDLE = 0, XFER_QUERY = 1, XFER_PULL = 2 };

struct rep_node {
	struct dp_edge e;	/* cluster file, ports, receipt rules, drop counters */
	uint32_t replica_index; /* among replicas sorted by node_id */
	uint32_t nreplicas;
	struct rep_state st; /* ledger, digest, positions */
	struct rep_applog log;
	struct dp_reply applied;
	uint32_t groups;     /* sequencer groups of the cluster file */
	bool merged;	     /* every_epoch: merged steps (rep_state_apply_merged) */
	struct rep_merge mg; /* reassembly of every group's entries, and the merge */
	uint32_t frag_bytes; /* epoch bytes per fragment (the sender's) */
	struct grp_repair rp[ORDO_GROUPS_MAX];
	uint64_t nacks_sent;
	/* The merge held back by one group (several groups): which, since when. */
	uint32_t stall_group;
	uint64_t stall_since_ns; /* 0: not held back */
	bool stall_logged;
	bool unknown_join_logged; /* a join of a group the file lacks was reported */
	uint64_t joins_ignored_logged;
	uint64_t stalls, stall_ms_max;
	uint64_t epoch_data_multicast; /* EPOCH_DATA received on multicast_group */
	uint64_t live_epoch;	       /* the epoch `live` was decided for */
	bool live;		       /* its timestamp is recent enough to send APPLIED */
	uint64_t bad_epoch_logged;     /* last epoch reported as malformed */
	struct lookup_ans *lookups;

	/* Storage (--data). */
	bool durable;
	struct rep_store store;

	/* Repair: the group's members, what each said it retains. */
	const struct cfg_node *seqs[ORDO_NODES_MAX];
	uint32_t nseqs;
	uint64_t retained_from[ORDO_NODES_MAX]; /* per seqs[i]; 0 unknown */

	/* State transfer: the other replicas, what we receive, what we serve. */
	const struct cfg_node *peers[ORDO_NODES_MAX];
	uint32_t npeers;
	struct xfer x;
	uint32_t xfer_chunk; /* data bytes per CKPT_DATA */
	int serve_fd;	     /* the checkpoint file being served; -1 */
	uint64_t serve_position;
	uint8_t serve_offer[CKPT_OFFER_BYTES]; /* what was offered for it (nonce aside) */
	uint64_t serve_last_ns;		       /* last offer or read of it */
	uint64_t xfers_done, xfer_bytes, xfer_ms_last, served_reads;
};

static bool replies_to(const struct rep_node *n, uint64_t client_id)
{
	if (n->e.cfg.applied_reply == CFG_APPLIED_ALL)
		return true;
	return client_id % n->nreplicas == n->replica_index;
}

/* An applied (or replayed) position: the applied log for FETCH and
 * RESULT_Q, and a LOOKUP's answer. */
static void remember(struct rep_node *n, const struct wire_entry_rec *ent,
		     const uint8_t digest_before[16], const uint8_t *data)
{
	rep_applog_append(&n->log, ent, digest_before);
	if (data) {
		struct lookup_ans *la = &n->lookups[ent->position % LOOKUP_RING];
		la->position = ent->position;
		memcpy(la->data, data, 32);
	}
}

/* rep_state's per-record callback: applied log, LOOKUP answers, APPLIED. */
static void on_applied(void *ctx, const struct wire_epoch_hdr *h, const struct wire_entry_rec *ent,
		       const struct wire_epoch_rec *er, const uint8_t digest_before[16],
		       const uint8_t *data)
{
	struct rep_node *n = ctx;
	remember(n, ent, digest_before, data);
	if (n->durable)
		rep_store_epoch_add(&n->store, ent);
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

/* Applies one merged step: with one group its epoch, with several the
 * entries of every group that end at step->epoch, in group order. */
static bool apply_step(struct rep_node *n, const struct rep_merge_step *step)
{
	if (n->durable)
		rep_store_epoch_begin(&n->store, &n->st, step->epoch);
	bool ok = !n->merged
		      ? rep_state_apply_epoch(&n->st, step->bytes[0], step->len[0], on_applied, n)
		      : rep_state_apply_merged(&n->st, step->epoch, step->bytes, step->len,
					       n->groups, on_applied, n);
	if (ok) {
		if (n->st.joins_ignored != n->joins_ignored_logged) {
			n->joins_ignored_logged = n->st.joins_ignored;
			fprintf(stderr,
				"ordo replica %u: epoch %llu announced a group's join that is not "
				"taken: another join is pending, or it named another epoch for a "
				"group already announced (%llu so far); `ordo group add` adds one "
				"group at a time\n",
				n->e.self->node_id, (unsigned long long)step->epoch,
				(unsigned long long)n->st.joins_ignored);
		}
		if (n->durable && rep_store_epoch_end(&n->store, &n->st) != 0) {
			fprintf(stderr, "ordo replica %u: %s; stopping\n", n->e.self->node_id,
				n->store.err);
			stop_requested = 1;
		}
		return true;
	}
	/* The stream is checksummed (and MAC'd with internal_auth): an epoch
	 * that is malformed or does not continue our order means a sequencer
	 * bug. Never apply it; drop it, say so, and keep asking (NACK). */
	dp_edge_drop(&n->e, WIRE_DROP_BODY);
	if (n->bad_epoch_logged != step->epoch)
		fprintf(stderr,
			"ordo replica %u: epoch %llu is malformed or does not continue "
			"applied position %llu; not applied\n",
			n->e.self->node_id, (unsigned long long)step->epoch,
			(unsigned long long)n->st.applied_position);
	n->bad_epoch_logged = step->epoch;
	return false;
}

/* The merge is held back by group g (now), or runs again (g = UINT32_MAX). */
static void note_stall(struct rep_node *n, uint32_t g, uint64_t now)
{
	if (g == UINT32_MAX) {
		if (n->stall_since_ns) {
			uint64_t ms = (now - n->stall_since_ns) / ORDO_NS_PER_MS;
			if (ms > n->stall_ms_max)
				n->stall_ms_max = ms;
			if (n->stall_logged)
				fprintf(stderr,
					"ordo replica %u: the merge runs again: group %u held it "
					"back %llu ms\n",
					n->e.self->node_id, n->stall_group, (unsigned long long)ms);
		}
		n->stall_since_ns = 0;
		n->stall_logged = false;
		return;
	}
	if (n->stall_since_ns && n->stall_group != g)
		note_stall(n, UINT32_MAX, now); /* that one ended; another begins */
	if (n->stall_since_ns == 0) {
		n->stall_group = g;
		n->stall_since_ns = now;
		n->stall_logged = false;
	} else if (!n->stall_logged && now - n->stall_since_ns >= STALL_REPORT_NS) {
		n->stalls++;
		n->stall_logged = true;
		fprintf(stderr,
			"ordo replica %u: the merge waits for group %u at epoch %llu (other groups "
			"are ahead)\n",
			n->e.self->node_id, g, (unsigned long long)n->st.applied_epoch + 1);
	}
}

/* The merge's floor per group follows the state: a merged group takes
 * every entry after the merged epoch, a joining one those from its join
 * epoch, a group not merged none. */
static void update_floors(struct rep_node *n)
{
	for (uint32_t g = 0; g < n->groups; g++) {
		uint64_t from = rep_state_group_from(&n->st, g);
		rep_merge_set_floor(&n->mg, g,
				    from == 0		 ? 0
				    : from == UINT64_MAX ? UINT64_MAX
							 : from - 1);
	}
}

/* The state merges, by epoch `upto`, a group the cluster file as loaded
 * does not have: one that joined while this replica ran on an older file
 * (or that a checkpoint brought), or one announced to join by then.
 * Merging without it would be another order than the replicas that have
 * it, so the merge waits (and says so once). */
static bool lacks_group(struct rep_node *n, uint64_t upto)
{
	if (n->st.groups_active == 0)
		return false; /* never set: the groups of the file, all merged */
	for (uint32_t g = n->groups; g < ORDO_GROUPS_MAX; g++) {
		uint64_t from = rep_state_group_from(&n->st, g);
		if (from == UINT64_MAX || from > upto)
			continue;
		if (!n->unknown_join_logged)
			fprintf(stderr,
				"ordo replica %u: the merge takes group %u from epoch %llu on, a "
				"group which %s does not have: the merge waits; add the group's "
				"sequencers to the file and send SIGHUP (or restart with it)\n",
				n->e.self->node_id, g,
				(unsigned long long)(from ? from : n->st.applied_epoch + 1),
				n->e.cfg.path);
		n->unknown_join_logged = true;
		return true;
	}
	return false;
}

/* Applies every complete step at the head of the merge. */
static void drain(struct rep_node *n)
{
	if (n->merged)
		update_floors(n);
	for (;;) {
		struct rep_merge_step step;
		uint32_t waiting = 0;
		uint64_t from[ORDO_GROUPS_MAX];
		for (uint32_t g = 0; g < n->groups; g++)
			from[g] = rep_state_group_from(&n->st, g);
		if (!rep_merge_next_from(&n->mg, n->st.applied_epoch, from, &step, &waiting)) {
			/* Held back by one group while another already has more. */
			if (n->groups > 1) {
				bool ahead = false;
				for (uint32_t g = 0; g < n->groups; g++)
					if (g != waiting && from[g] != UINT64_MAX &&
					    n->mg.known_committed[g] > n->st.applied_epoch + 1)
						ahead = true;
				note_stall(n, ahead ? waiting : UINT32_MAX, ordo_mono_ns());
			}
			return;
		}
		if (n->merged && lacks_group(n, step.epoch))
			return;
		bool ok = apply_step(n, &step);
		rep_merge_release(&n->mg, &step); /* a bad entry is forgotten: NACK asks again */
		if (!ok)
			return;
		if (n->merged)
			update_floors(n); /* a group may have joined, or been announced */
		if (n->stall_since_ns)
			note_stall(n, UINT32_MAX, ordo_mono_ns()); /* the merge moved */
	}
}

static void handle_epoch_data(struct rep_node *n, const struct dp_buf *b, const uint8_t *body,
			      uint32_t body_len)
{
	struct wire_epoch_data d;
	if (wire_parse_epoch_data(body, body_len, &d) != 0 || d.group >= n->groups ||
	    d.total_bytes > n->e.cfg.epoch_bytes || d.total_bytes < ORDO_EPOCH_HDR_BYTES ||
	    d.offset % n->frag_bytes != 0 ||
	    (d.data_bytes != n->frag_bytes && d.offset + d.data_bytes != d.total_bytes)) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	n->rp[d.group].sequencer = b->peer;
	int rc = rep_merge_fragment(&n->mg, &d, n->st.applied_epoch);
	if (rc < 0)
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
	else if (rc == 1)
		drain(n);
}

/* Called when the receive queue is drained: a gap that outlives NACK_DELAY_NS
 * is real loss, not input still queued. NACKs back off exponentially while
 * the same epoch stays missing, so repair never floods the stream. */
static void maybe_nack_group(struct rep_node *n, uint32_t g, uint64_t now)
{
	struct grp_repair *r = &n->rp[g];
	uint64_t from;
	uint32_t count;
	uint64_t first = rep_state_group_from(&n->st, g); /* 0: merged now */
	uint64_t after =
	    first == 0 || first <= n->st.applied_epoch ? n->st.applied_epoch : first - 1;
	if (r->sequencer.port == 0 || first == UINT64_MAX ||
	    !rep_merge_gap(&n->mg, g, after, NACK_EPOCHS, &from, &count)) {
		r->gap_epoch = 0;
		return;
	}
	if (r->gap_epoch != from) {
		r->gap_epoch = from;
		r->gap_since_ns = now;
		r->nack_due_ns = now + NACK_DELAY_NS;
		r->nack_backoff_ns = NACK_DELAY_NS;
		r->nack_round = 0;
		return;
	}
	if (now < r->nack_due_ns)
		return;
	r->nack_backoff_ns *= 2;
	if (r->nack_backoff_ns > NACK_BACKOFF_MAX_NS)
		r->nack_backoff_ns = NACK_BACKOFF_MAX_NS;
	r->nack_due_ns = now + r->nack_backoff_ns;
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, WIRE_EPOCH_NACK);
	if (!b)
		return;
	struct wire_epoch_nack nack = {.from_epoch = from, .count = count, .group = (uint16_t)g};
	wire_put_epoch_nack(&w, &nack);
	/* First the member that streamed to us, then every member of the
	 * group in turn: a dead or partitioned leader does not stall repair.
	 * The turn goes to members that may hold the epoch (their heartbeat's
	 * retained_from is not past it), if any: when only one still holds it,
	 * asking the others in between only backs off (the simulator found it
	 * with three groups). */
	struct dp_addr to = r->sequencer;
	uint32_t members = 0, holders = 0;
	for (uint32_t i = 0; i < n->nseqs; i++)
		if (n->seqs[i]->group == g) {
			members++;
			holders += n->retained_from[i] <= from;
		}
	if (r->nack_round > 0 && members > 0) {
		bool aim = holders > 0;
		uint32_t k = (r->nack_round - 1) % (aim ? holders : members);
		for (uint32_t i = 0; i < n->nseqs; i++) {
			if (n->seqs[i]->group != g || (aim && n->retained_from[i] > from))
				continue;
			if (k-- == 0) {
				to = (struct dp_addr){.ip = n->seqs[i]->ip,
						      .port = n->seqs[i]->internal_port};
				break;
			}
		}
	}
	r->nack_round++;
	dp_edge_send(&n->e, b, &w, dp_edge_internal_key(&n->e), &to, n->e.self->internal_port);
	n->nacks_sent++;
}

/* Called when the receive queue is drained: a gap that outlives NACK_DELAY_NS
 * is real loss, not input still queued. NACKs back off exponentially while
 * the same epoch stays missing, so repair never floods the stream. */
static void maybe_nack(struct rep_node *n, uint64_t now)
{
	for (uint32_t g = 0; g < n->groups; g++)
		maybe_nack_group(n, g, now);
}

/* The earliest NACK due, or UINT64_MAX without a gap. */
static uint64_t nack_due(const struct rep_node *n)
{
	uint64_t due = UINT64_MAX;
	for (uint32_t g = 0; g < n->groups; g++)
		if (n->rp[g].gap_epoch && n->rp[g].nack_due_ns < due)
			due = n->rp[g].nack_due_ns;
	return due;
}

/* The oldest position FETCH serves: in memory, or on disk if older. */
static uint64_t retained_from(const struct rep_node *n)
{
	uint64_t mem = rep_applog_retained_from(&n->log);
	if (!n->durable)
		return mem;
	uint64_t disk = rep_store_first_position(&n->store);
	return disk < mem ? disk : mem;
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
	    .retained_from = retained_from(n),
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
	uint64_t from = f->from_position ? f->from_position : 1;
	int rc = -1;
	/* Older than memory holds: the log on disk answers, if it reaches
	 * further back (positions, or where its history begins). */
	if (n->durable && from < rep_applog_retained_from(&n->log) &&
	    rep_store_first_position(&n->store) < rep_applog_retained_from(&n->log))
		rep_store_fill_entries(&n->store, &w, f->nonce, from, n->st.applied_position, cap,
				       &rc);
	if (rc != 0) /* from memory, or the answer that it is not retained */
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

/* ------------------------------------------------------------ state transfer */

static void xfer_send(struct rep_node *n, uint8_t type, const uint8_t *body, uint32_t len,
		      const uint8_t *data, uint32_t data_len, const struct dp_addr *to)
{
	struct wire_writer w;
	struct dp_buf *b = dp_edge_start(&n->e, &w, type);
	if (!b)
		return; /* the other side's retry covers it */
	bool ok = wire_put(&w, body, len);
	if (ok && data_len) {
		static const uint8_t zero[8];
		ok = wire_put(&w, data, data_len) && wire_put(&w, zero, (8 - data_len % 8) % 8);
	}
	ORDO_ASSERT(ok); /* xfer_chunk was sized for max_datagram */
	dp_edge_send(&n->e, b, &w, dp_edge_internal_key(&n->e), to, n->e.self->internal_port);
}

static struct dp_addr peer_addr(const struct cfg_node *p)
{
	return (struct dp_addr){.ip = p->ip, .port = p->internal_port};
}

static void xfer_close_file(struct xfer *x, bool remove)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (remove && x->tmp[0])
		unlink(x->tmp);
}

static void xfer_query(struct rep_node *n, uint64_t now)
{
	struct xfer *x = &n->x;
	if (n->npeers == 0)
		return;
	x->donor = (x->donor + 1) % n->npeers;
	x->nonce++;
	uint8_t q[CKPT_Q_BYTES];
	ordo_st64(q + 0, x->nonce);
	ordo_st64(q + 8, x->need_epoch);
	struct dp_addr to = peer_addr(n->peers[x->donor]);
	xfer_send(n, WIRE_CKPT_Q, q, sizeof q, NULL, 0, &to);
	x->next_query_ns = now + XFER_QUERY_NS;
}

static void xfer_start(struct rep_node *n, uint64_t need_epoch, uint64_t now)
{
	struct xfer *x = &n->x;
	if (!n->durable || n->npeers == 0) {
		if (x->phase != XFER_QUERY) /* say it once */
			fprintf(
			    stderr,
			    "ordo replica %u: epoch %llu is no longer held by any sequencer and "
			    "state transfer needs --data and another replica; this replica "
			    "cannot catch up\n",
			    n->e.self->node_id, (unsigned long long)n->st.next_epoch);
		x->phase = XFER_QUERY;
		x->next_query_ns = UINT64_MAX;
		return;
	}
	fprintf(stderr,
		"ordo replica %u: needs epoch %llu, which no sequencer holds any more (oldest "
		"held: %llu); catching up by state transfer from another replica\n",
		n->e.self->node_id, (unsigned long long)n->st.next_epoch,
		(unsigned long long)need_epoch);
	x->phase = XFER_QUERY;
	x->need_epoch = need_epoch;
	xfer_query(n, now);
}

/* Asks for as many chunks as the window allows, and again for late ones. */
static void xfer_pump(struct rep_node *n, uint64_t now)
{
	struct xfer *x = &n->x;
	struct dp_addr to = peer_addr(n->peers[x->donor]);
	for (uint32_t i = 0; i < XFER_WINDOW; i++) {
		struct xfer_slot *sl = &x->win[i];
		if (sl->sent_ns == 0) {
			if (x->next_off >= x->file_bytes)
				continue;
			sl->off = x->next_off;
			x->next_off += n->xfer_chunk;
		} else if (now - sl->sent_ns < XFER_RTO_NS) {
			continue;
		}
		uint64_t left = x->file_bytes - sl->off;
		uint8_t r[CKPT_READ_BYTES] = {0};
		ordo_st64(r + 0, x->position);
		ordo_st64(r + 8, sl->off);
		ordo_st32(r + 16, (uint32_t)(left < n->xfer_chunk ? left : n->xfer_chunk));
		xfer_send(n, WIRE_CKPT_READ, r, sizeof r, NULL, 0, &to);
		sl->sent_ns = now ? now : 1;
	}
}

static void handle_ckpt_offer(struct rep_node *n, const struct dp_edge_rx *rx)
{
	struct xfer *x = &n->x;
	if (!n->durable || rx->body_len != CKPT_OFFER_BYTES || x->phase != XFER_QUERY ||
	    ordo_ld64(rx->body) != x->nonce || rx->peer != n->peers[x->donor])
		return; /* late or not ours */
	uint64_t position = ordo_ld64(rx->body + 8);
	uint64_t epoch = ordo_ld64(rx->body + 16);
	uint64_t bytes = ordo_ld64(rx->body + 24);
	const struct ledger_cfg *lc = &n->st.ledger.cfg;
	uint64_t bytes_max =
	    rep_ckpt_file_bytes(lc->accounts_max, lc->transfers_max, REP_CKPT_CHUNK_BYTES_MIN);
	if (bytes > bytes_max) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY); /* larger than any checkpoint of ours */
		return;
	}
	/* Newer means a later epoch: with several groups, empty steps move the
	 * epoch and not the position. */
	if (position == 0 || epoch + 1 < x->need_epoch || bytes < REP_CKPT_HDR_BYTES ||
	    epoch <= n->st.applied_epoch || position < n->st.applied_position)
		return; /* not ready (a fresh checkpoint is being made): ask again later */
	x->position = position;
	x->epoch = epoch;
	x->file_bytes = bytes;
	memcpy(x->digest, rx->body + 32, 16);
	rep_store_ckpt_path(&n->store, position, true, x->tmp, sizeof x->tmp);
	rep_store_ckpt_path(&n->store, position, false, x->path, sizeof x->path);
	xfer_close_file(x, false);
	x->fd = open(x->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (x->fd < 0) {
		fprintf(stderr, "ordo replica %u: state transfer: cannot create %s: %s\n",
			n->e.self->node_id, x->tmp, strerror(errno));
		return;
	}
	uint64_t now = ordo_mono_ns();
	x->phase = XFER_PULL;
	x->next_off = 0;
	x->done_bytes = 0;
	x->started_ns = now;
	x->progress_ns = now;
	memset(x->win, 0, sizeof x->win);
	fprintf(stderr,
		"ordo replica %u: state transfer from replica %u: checkpoint at position %llu "
		"(epoch %llu), %llu bytes\n",
		n->e.self->node_id, n->peers[x->donor]->node_id, (unsigned long long)position,
		(unsigned long long)epoch, (unsigned long long)bytes);
	xfer_pump(n, now);
}

/* The whole file is here: make it durable, load and verify it into a state
 * of its own, and only then install it. A file that fails leaves the
 * replica as it was. */
static void xfer_finish(struct rep_node *n)
{
	struct xfer *x = &n->x;
	uint32_t id = n->e.self->node_id;
	x->phase = XFER_IDLE;
	if (n->st.applied_epoch >= x->epoch) { /* the stream got us there meanwhile */
		xfer_close_file(x, true);
		return;
	}
	if (fdatasync(x->fd) != 0 || rename(x->tmp, x->path) != 0) {
		fprintf(stderr, "ordo replica %u: state transfer: writing %s: %s\n", id, x->path,
			strerror(errno));
		xfer_close_file(x, true);
		return;
	}
	xfer_close_file(x, false);
	int dfd = open(n->store.ckpt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	struct ledger_cfg lcfg = n->st.ledger.cfg;
	char err[REP_CKPT_ERR_BYTES];
	struct rep_state got;
	int rc = rep_ckpt_load_file(x->path, n->e.cfg.cluster_id, &lcfg, &got, err, sizeof err);
	bool ok = rc == 0 && got.applied_position == x->position && got.applied_epoch == x->epoch &&
		  memcmp(got.digest, x->digest, 16) == 0;
	if (!ok) {
		fprintf(stderr, "ordo replica %u: state transfer: %s rejected (%s); asking again\n",
			id, x->path,
			rc ? err : "its position, epoch or digest is not the one offered");
		if (rc == 0)
			rep_state_free(&got);
		unlink(x->path);
		return;
	}
	/* Our own checkpoint, if one is being written, is older: drop it. */
	rep_ckpt_abort(&n->store.ckpt);
	rep_state_free(&n->st);
	n->st = got;
	/* The applied history starts afresh after the installed state. */
	rep_applog_reset(&n->log, n->st.applied_position);
	rep_merge_forget(&n->mg, n->st.applied_epoch);
	for (uint32_t g = 0; g < n->groups; g++)
		n->rp[g].gap_epoch = 0;
	if (n->merged)
		n->st.group_known = 0; /* a checkpoint does not hold them */
	rep_state_found(&n->st, n->e.cfg.founding_groups);
	if (rep_store_installed(&n->store, &n->st) != 0) {
		fprintf(stderr, "ordo replica %u: %s; stopping\n", id, n->store.err);
		stop_requested = 1;
		return;
	}
	uint64_t ms = (ordo_mono_ns() - x->started_ns) / ORDO_NS_PER_MS;
	n->xfers_done++;
	n->xfer_bytes += x->file_bytes;
	n->xfer_ms_last = ms;
	fprintf(stderr,
		"ordo replica %u: state transfer done: position %llu, epoch %llu, %llu bytes in "
		"%llu ms; following the stream\n",
		id, (unsigned long long)n->st.applied_position,
		(unsigned long long)n->st.applied_epoch, (unsigned long long)x->file_bytes,
		(unsigned long long)ms);
	drain(n);
}

static void handle_ckpt_data(struct rep_node *n, const struct dp_edge_rx *rx)
{
	struct xfer *x = &n->x;
	if (!n->durable || rx->body_len < CKPT_DATA_HEAD || x->phase != XFER_PULL ||
	    rx->peer != n->peers[x->donor] || ordo_ld64(rx->body) != x->position)
		return;
	uint64_t off = ordo_ld64(rx->body + 8);
	uint32_t len = ordo_ld32(rx->body + 16);
	uint32_t status = ordo_ld32(rx->body + 20);
	if (status != CKPT_DATA_OK) { /* the donor no longer has it: start over */
		xfer_close_file(x, true);
		x->phase = XFER_QUERY;
		x->next_query_ns = 0;
		return;
	}
	if (len > rx->body_len - CKPT_DATA_HEAD || off >= x->file_bytes ||
	    len != (x->file_bytes - off < n->xfer_chunk ? x->file_bytes - off : n->xfer_chunk)) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	struct xfer_slot *sl = NULL;
	for (uint32_t i = 0; i < XFER_WINDOW; i++)
		if (x->win[i].sent_ns && x->win[i].off == off)
			sl = &x->win[i];
	if (!sl)
		return; /* a duplicate */
	if (pwrite(x->fd, rx->body + CKPT_DATA_HEAD, len, (off_t)off) != (ssize_t)len) {
		fprintf(stderr, "ordo replica %u: state transfer: writing %s: %s\n",
			n->e.self->node_id, x->tmp, strerror(errno));
		xfer_close_file(x, true);
		x->phase = XFER_QUERY;
		x->next_query_ns = ordo_mono_ns() + XFER_STALL_NS;
		return;
	}
	sl->sent_ns = 0;
	x->done_bytes += len;
	uint64_t now = ordo_mono_ns();
	x->progress_ns = now;
	if (x->done_bytes == x->file_bytes)
		xfer_finish(n);
	else
		xfer_pump(n, now);
}

/* Timers of the transfer in progress, and whether one must start. */
static void xfer_tick(struct rep_node *n, uint64_t now)
{
	struct xfer *x = &n->x;
	/* A served file nobody reads any more is closed (it may be deleted). */
	if (n->serve_fd >= 0 && now - n->serve_last_ns > 3 * XFER_STALL_NS) {
		close(n->serve_fd);
		n->serve_fd = -1;
	}
	/* Needed when the epoch after the merged one is committed in a group,
	 * missing, and older than what the group's members hold: at once if
	 * every member said so, after XFER_AFTER_NS if one did. */
	uint64_t need = n->st.applied_epoch + 1;
	bool stuck = false; /* a group lacks the epoch the merge needs */
	if (x->phase == XFER_IDLE) {
		for (uint32_t g = 0; g < n->groups; g++) {
			const struct grp_repair *r = &n->rp[g];
			/* what the merge needs of this group: the epoch after the
			 * merged one, or a joining group's join epoch */
			uint64_t first = rep_state_group_from(&n->st, g);
			if (first == UINT64_MAX)
				continue;
			uint64_t need_g = first > need ? first : need;
			if (n->mg.known_committed[g] < need_g || r->gap_epoch != need_g)
				continue;
			uint32_t past = 0, members = 0;
			uint64_t oldest = UINT64_MAX;
			for (uint32_t i = 0; i < n->nseqs; i++) {
				if (n->seqs[i]->group != g)
					continue;
				members++;
				if (n->retained_from[i] > need_g) {
					past++;
					if (n->retained_from[i] < oldest)
						oldest = n->retained_from[i];
				}
			}
			if (past > 0 &&
			    (past == members || now - r->gap_since_ns >= XFER_AFTER_NS)) {
				xfer_start(n, oldest, now);
				return;
			}
		}
		return;
	}
	for (uint32_t g = 0; g < n->groups; g++)
		stuck |= n->rp[g].gap_epoch == need;
	if (x->phase == XFER_QUERY) {
		if (need >= x->need_epoch && !stuck) {
			x->phase = XFER_IDLE; /* the stream caught us up after all */
			return;
		}
		if (now >= x->next_query_ns)
			xfer_query(n, now);
		return;
	}
	if (now - x->progress_ns >= XFER_STALL_NS) { /* donor gone: another one */
		fprintf(stderr,
			"ordo replica %u: state transfer from replica %u stalled; "
			"asking another replica\n",
			n->e.self->node_id, n->peers[x->donor]->node_id);
		xfer_close_file(x, true);
		x->phase = XFER_QUERY;
		xfer_query(n, now);
		return;
	}
	xfer_pump(n, now);
}

/* Donor side: offer our newest durable checkpoint if it is recent enough,
 * else begin one and answer "not yet" (position 0). */
static void handle_ckpt_q(struct rep_node *n, const struct dp_edge_rx *rx, const struct dp_buf *b)
{
	if (rx->body_len != CKPT_Q_BYTES) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	uint64_t need = ordo_ld64(rx->body + 8);
	uint8_t o[CKPT_OFFER_BYTES] = {0};
	/* The file being served already, while it is recent enough: two
	 * replicas catching up at once do not take it from each other. */
	bool serving = n->serve_fd >= 0 && ordo_ld64(n->serve_offer + 16) + 1 >= need;
	if (!serving && n->durable && rep_store_ckpt_position(&n->store) > 0 &&
	    rep_store_ckpt_epoch(&n->store) + 1 >= need) {
		char path[PATH_MAX];
		rep_store_ckpt_path(&n->store, rep_store_ckpt_position(&n->store), false, path,
				    sizeof path);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		uint8_t h[REP_CKPT_HDR_BYTES];
		struct stat stt;
		if (fd >= 0 && pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
		    fstat(fd, &stt) == 0) {
			if (n->serve_fd >= 0)
				close(n->serve_fd);
			n->serve_fd = fd; /* kept open: served even once a newer one replaces it */
			n->serve_position = ordo_ld64(h + 16);
			memset(n->serve_offer, 0, sizeof n->serve_offer);
			memcpy(n->serve_offer + 8, h + 16, 16); /* position, epoch */
			ordo_st64(n->serve_offer + 24, (uint64_t)stt.st_size);
			memcpy(n->serve_offer + 32, h + 48, 16); /* digest */
			serving = true;
			fd = -1;
		}
		if (fd >= 0)
			close(fd);
	} else if (!serving && n->durable && n->st.next_epoch >= need) {
		rep_store_checkpoint_now(&n->store, &n->st);
	}
	if (serving) {
		memcpy(o, n->serve_offer, sizeof o);
		n->serve_last_ns = ordo_mono_ns();
	}
	memcpy(o, rx->body, 8); /* nonce */
	xfer_send(n, WIRE_CKPT_OFFER, o, sizeof o, NULL, 0, &b->peer);
}

static void handle_ckpt_read(struct rep_node *n, const struct dp_edge_rx *rx,
			     const struct dp_buf *b)
{
	if (rx->body_len != CKPT_READ_BYTES) {
		dp_edge_drop(&n->e, WIRE_DROP_BODY);
		return;
	}
	uint64_t position = ordo_ld64(rx->body);
	uint64_t off = ordo_ld64(rx->body + 8);
	uint32_t len = ordo_ld32(rx->body + 16);
	uint8_t head[CKPT_DATA_HEAD] = {0};
	memcpy(head, rx->body, 16);
	uint8_t data[ORDO_DATAGRAM_MAX];
	ssize_t got = -1;
	if (n->serve_fd >= 0 && position == n->serve_position && len <= n->xfer_chunk)
		got = pread(n->serve_fd, data, len, (off_t)off);
	if (got != (ssize_t)len) {
		ordo_st32(head + 20, CKPT_DATA_GONE);
		xfer_send(n, WIRE_CKPT_DATA, head, sizeof head, NULL, 0, &b->peer);
		return;
	}
	ordo_st32(head + 16, len);
	n->served_reads++;
	n->serve_last_ns = ordo_mono_ns();
	xfer_send(n, WIRE_CKPT_DATA, head, sizeof head, data, len, &b->peer);
}

/* Index of a sequencer member in n->seqs, or -1. */
static int seq_index(const struct rep_node *n, const struct cfg_node *p)
{
	for (uint32_t i = 0; i < n->nseqs; i++)
		if (n->seqs[i] == p)
			return (int)i;
	return -1;
}

static void handle_internal(struct rep_node *n, const struct dp_edge_rx *rx, const struct dp_buf *b)
{
	if (rx->peer && rx->peer->role == CFG_ROLE_REPLICA && rx->peer != n->e.self) {
		switch (rx->h.type) { /* state transfer, between replicas */
		case WIRE_CKPT_Q:
			handle_ckpt_q(n, rx, b);
			return;
		case WIRE_CKPT_OFFER:
			handle_ckpt_offer(n, rx);
			return;
		case WIRE_CKPT_READ:
			handle_ckpt_read(n, rx, b);
			return;
		case WIRE_CKPT_DATA:
			handle_ckpt_data(n, rx);
			return;
		default:
			break;
		}
	}
	if (!rx->peer || rx->peer->role != CFG_ROLE_SEQUENCER) { /* MEMBER is for sequencers */
		dp_edge_drop(&n->e, WIRE_DROP_INTERNAL_PEER);
		return;
	}
	if (rx->h.type == WIRE_EPOCH_DATA) {
		if (n->e.cfg.multicast_group && b->local.ip == n->e.cfg.multicast_group)
			n->epoch_data_multicast++;
		handle_epoch_data(n, b, rx->body, rx->body_len);
	} else if (rx->h.type == WIRE_EPOCH_HEARTBEAT) {
		struct wire_epoch_heartbeat hb;
		if (wire_parse_epoch_heartbeat(rx->body, rx->body_len, &hb) != 0) {
			dp_edge_drop(&n->e, WIRE_DROP_BODY);
			return;
		}
		if (hb.group != rx->peer->group || hb.group >= n->groups) {
			dp_edge_drop(&n->e, WIRE_DROP_BODY);
			return;
		}
		rep_merge_committed(&n->mg, hb.group, hb.committed_epoch);
		int i = seq_index(n, rx->peer);
		if (i >= 0 && hb.retained_from > n->retained_from[i])
			n->retained_from[i] = hb.retained_from;
		if (n->rp[hb.group].sequencer.port == 0)
			n->rp[hb.group].sequencer = b->peer;
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

/* SIGHUP: reads the cluster file again and takes what may change while the
 * replica runs: sequencers of new groups, appended (node ids above every
 * existing one). They join the merge at the epoch `ordo group add`
 * announces; until then their entries are held, not merged. Anything else
 * changed is refused with the reason, and the replica goes on as before. */
static void reload_cluster(struct rep_node *n)
{
	static struct cfg_cluster nc;
	struct cfg_cluster *oc = &n->e.cfg;
	uint32_t id = n->e.self->node_id;
	char err[512], why[256] = "";
	if (cfg_load(oc->path, &nc, err, sizeof err) != 0) {
		fprintf(stderr, "ordo replica %u: reload refused: %s; still running as loaded\n",
			id, err);
		return;
	}
	uint16_t old_groups = cfg_groups(oc), new_groups = cfg_groups(&nc);
	if (nc.cluster_id != oc->cluster_id || nc.epoch_us != oc->epoch_us ||
	    nc.epoch_bytes != oc->epoch_bytes || nc.max_datagram != oc->max_datagram ||
	    nc.every_epoch != oc->every_epoch || nc.founding_groups != oc->founding_groups ||
	    nc.internal_auth != oc->internal_auth || nc.transport != oc->transport)
		snprintf(why, sizeof why,
			 "a [cluster] key changed (cluster_id, epoch_us, epoch_bytes, "
			 "max_datagram, every_epoch, founding_groups, internal_auth, transport "
			 "must stay)");
	else if (!n->merged && new_groups > old_groups)
		snprintf(why, sizeof why, "groups can be added only with every_epoch = yes");
	else if (nc.nnodes < oc->nnodes)
		snprintf(why, sizeof why, "nodes were removed");
	for (uint32_t i = 0; !why[0] && i < oc->nnodes; i++) {
		const struct cfg_node *a = &oc->nodes[i], *b = &nc.nodes[i];
		if (a->node_id != b->node_id || a->role != b->role || a->group != b->group ||
		    a->ip != b->ip || a->client_port != b->client_port ||
		    a->internal_port != b->internal_port)
			snprintf(why, sizeof why,
				 "[node %u] changed, or a new node's id is below an existing one's",
				 a->node_id);
	}
	for (uint32_t i = oc->nnodes; !why[0] && i < nc.nnodes; i++)
		if (nc.nodes[i].role != CFG_ROLE_SEQUENCER || nc.nodes[i].group < old_groups)
			snprintf(why, sizeof why,
				 "[node %u] (line %u) is not a sequencer of a new group: only new "
				 "groups can be added while running",
				 nc.nodes[i].node_id, nc.nodes[i].line);
	if (why[0]) {
		fprintf(stderr,
			"ordo replica %u: reload of %s refused: %s; still running as loaded\n", id,
			oc->path, why);
		return;
	}
	if (nc.nnodes == oc->nnodes) {
		fprintf(stderr, "ordo replica %u: reloaded %s: nothing new\n", id, oc->path);
		return;
	}
	/* The groups merged so far are exactly the ones loaded before. */
	rep_state_found(&n->st, old_groups);
	if (rep_merge_grow(&n->mg, new_groups) != 0) {
		fprintf(stderr,
			"ordo replica %u: reload: no memory for %u more groups' reassembly\n", id,
			new_groups - old_groups);
		return;
	}
	for (uint32_t i = oc->nnodes; i < nc.nnodes; i++) {
		oc->nodes[i] = nc.nodes[i];
		n->seqs[n->nseqs++] = &oc->nodes[i];
	}
	oc->nnodes = nc.nnodes;
	n->groups = new_groups;
	n->unknown_join_logged = false;
	update_floors(n);
	drain(n); /* a merge held for the group may go on */
	fprintf(stderr,
		"ordo replica %u: reloaded %s: group(s) %u..%u added; merged from the epoch "
		"`ordo group add` announces\n",
		id, oc->path, old_groups, new_groups - 1);
}

/* rep_store's replay callback: rebuild the applied log for FETCH/RESULT_Q. */
static void on_replayed(void *ctx, const struct wire_entry_rec *ent,
			const uint8_t digest_before[16], const uint8_t *data)
{
	struct rep_node *n = ctx;
	if (rep_applog_applied(&n->log) + 1 != ent->position)
		rep_applog_reset(&n->log, ent->position - 1);
	remember(n, ent, digest_before, data);
}

static const char usage_text[] =
    "usage: ordo replica --cluster FILE --node ID [--data DIR] [--fault SPEC]\n"
    "                    [--busy-poll] [-- EAL ARGS]\n"
    "  Runs replica node ID of the cluster file until SIGINT or SIGTERM.\n"
    "  --data DIR    the ledger's storage (made by ordo format): applied log and\n"
    "                checkpoints; without it the ledger is in memory only\n"
    "  --fault SPEC  inject faults into this node's transport, e.g.\n"
    "                drop=5%,dup=1% (tests)\n"
    "  --busy-poll   transport = dpdk: keep polling when idle (latency; a core)\n"
    "  -- ARGS       transport = dpdk: EAL arguments instead of the file's dpdk_eal\n";

static int node_open(struct rep_node *n, const struct dp_edge_args *a)
{
	n->serve_fd = -1;
	n->x.fd = -1;
	int rc = dp_edge_open(&n->e, a, CFG_ROLE_REPLICA, "ordo replica", 16u << 20);
	if (rc)
		return rc;
	const struct cfg_cluster *cfg = &n->e.cfg;
	n->groups = cfg_groups(cfg);
	n->merged = cfg->every_epoch;
	const struct cfg_node *reps[ORDO_NODES_MAX];
	n->nreplicas = cfg_replicas(cfg, reps, ORDO_NODES_MAX);
	for (uint32_t i = 0; i < n->nreplicas; i++) {
		if (reps[i] == n->e.self)
			n->replica_index = i;
		else
			n->peers[n->npeers++] = reps[i];
	}
	for (uint32_t i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i].role == CFG_ROLE_SEQUENCER)
			n->seqs[n->nseqs++] = &cfg->nodes[i];
	n->xfer_chunk =
	    (cfg->max_datagram - ORDO_HDR_BYTES - CKPT_DATA_HEAD - ORDO_MAC_BYTES) & ~7u;
	n->frag_bytes =
	    (cfg->max_datagram - ORDO_HDR_BYTES - WIRE_EPOCH_DATA_HEAD_BYTES - ORDO_MAC_BYTES) &
	    ~7u;
	rc = rep_merge_init(&n->mg, n->groups, REASSEMBLY_SLOTS, cfg->epoch_bytes, n->frag_bytes);
	if (rc)
		return rc;
	rc = rep_applog_init(&n->log, cfg->applied_log_bytes,
			     cfg->applied_log_bytes / ORDO_ENTRY_REC_BYTES);
	if (rc)
		return rc;
	n->lookups = calloc(LOOKUP_RING, sizeof *n->lookups);
	if (!n->lookups)
		return -ENOMEM;
	struct ledger_cfg lcfg = {.accounts_max = cfg->accounts_max,
				  .transfers_max = cfg->transfers_max};
	if (a->data) {
		struct rep_store_config sc = {
		    .dir = a->data,
		    .cluster_id = cfg->cluster_id,
		    .node_id = n->e.self->node_id,
		    .ledger = lcfg,
		    .epoch_bytes = cfg->epoch_bytes,
		    .checkpoint_bytes = cfg->checkpoint_bytes,
		    .sync_interval_ns = (uint64_t)cfg->applied_sync_us * 1000u,
		    .retain_bytes = cfg->applied_log_bytes,
		    .merged = n->merged,
		};
		uint64_t t0 = ordo_mono_ns();
		rc = rep_store_open(&n->store, &sc, &n->st, on_replayed, n);
		if (rc) {
			fprintf(stderr, "ordo replica: %s\n", n->store.err);
			return rc;
		}
		n->durable = true;
		fprintf(stderr,
			"ordo replica %u: recovered position %llu (epoch %llu) from %s in %llu ms: "
			"replayed %llu epochs, %llu positions\n",
			n->e.self->node_id, (unsigned long long)n->st.applied_position,
			(unsigned long long)n->st.applied_epoch, a->data,
			(unsigned long long)((ordo_mono_ns() - t0) / ORDO_NS_PER_MS),
			(unsigned long long)n->store.stats.replayed_epochs,
			(unsigned long long)n->store.stats.replayed_positions);
	} else {
		rc = rep_state_init(&n->st, &lcfg);
		if (rc) {
			fprintf(stderr, "ordo replica: ledger (%zu bytes): %s\n",
				ledger_bytes(&lcfg), strerror(-rc));
			return rc;
		}
		fprintf(stderr, "ordo replica %u: no --data: the ledger is in memory only\n",
			n->e.self->node_id);
	}
	rep_state_found(&n->st, cfg->founding_groups); /* when nothing says otherwise */
	if (n->merged)
		update_floors(n); /* before the first fragment takes a slot */
	if (rep_applog_applied(&n->log) != n->st.applied_position)
		rep_applog_reset(&n->log, n->st.applied_position);
	dp_reply_init(&n->applied, n->e.t, cfg->cluster_id, WIRE_APPLIED, n->e.self->node_id,
		      n->e.self->client_port);
	return 0;
}

static void node_close(struct rep_node *n)
{
	if (n->durable)
		rep_store_close(&n->store);
	xfer_close_file(&n->x, true);
	if (n->serve_fd >= 0)
		close(n->serve_fd);
	dp_edge_close(&n->e);
	rep_merge_free(&n->mg);
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
	sigaction(SIGHUP, &sa, NULL);
	const struct cfg_node *self = n->e.self;
	fprintf(stderr, "ordo replica %u: serving on %u.%u.%u.%u:%u (internal %u)\n", self->node_id,
		self->ip >> 24, (self->ip >> 16) & 255, (self->ip >> 8) & 255, self->ip & 255,
		self->client_port, self->internal_port);

	struct dp_buf *bufs[ORDO_DP_BURST_MAX];
	while (!stop_requested) {
		if (reload_requested) {
			reload_requested = 0;
			reload_cluster(n);
		}
		unsigned got = dp_rx_burst(n->e.t, bufs, ORDO_DP_BURST_MAX);
		for (unsigned i = 0; i < got; i++)
			handle_datagram(n, bufs[i]);
		dp_free(n->e.t, bufs, got);
		dp_reply_flush(&n->applied);
		if (n->durable && rep_store_poll(&n->store, &n->st) != 0) {
			fprintf(stderr, "ordo replica %u: %s; stopping\n", self->node_id,
				n->store.err);
			break;
		}
		if (got == 0 || n->x.phase == XFER_PULL) {
			uint64_t now = ordo_mono_ns();
			if (n->x.phase != XFER_PULL)
				maybe_nack(n, now);
			xfer_tick(n, now);
		}
		if (got == 0) {
			uint64_t now = ordo_mono_ns();
			uint64_t wait = IDLE_WAIT_MAX_NS;
			uint64_t due = nack_due(n);
			if (due != UINT64_MAX)
				wait = due > now ? due - now : 0;
			if (n->x.phase != XFER_IDLE || (n->durable && rep_store_busy(&n->store)))
				wait = STORE_WAIT_NS;
			dp_wait(n->e.t, wait < IDLE_WAIT_MAX_NS ? wait : IDLE_WAIT_MAX_NS);
		}
	}
	fprintf(stderr,
		"ordo replica %u: applied position=%llu epoch=%llu requests=%llu nacks=%llu "
		"multicast=%llu dropped=%llu checkpoints=%llu transfers=%llu served_reads=%llu "
		"groups=%u merge_stalls=%llu merge_stall_ms_max=%llu joins_ignored=%llu\n",
		self->node_id, (unsigned long long)n->st.applied_position,
		(unsigned long long)n->st.applied_epoch, (unsigned long long)n->st.requests_applied,
		(unsigned long long)n->nacks_sent, (unsigned long long)n->epoch_data_multicast,
		(unsigned long long)dp_edge_drops_total(&n->e),
		(unsigned long long)n->store.stats.checkpoints, (unsigned long long)n->xfers_done,
		(unsigned long long)n->served_reads, n->groups, (unsigned long long)n->stalls,
		(unsigned long long)n->stall_ms_max, (unsigned long long)n->st.joins_ignored);
	dp_edge_print_drops(&n->e, stderr);
	node_close(n);
	return 0;
}
