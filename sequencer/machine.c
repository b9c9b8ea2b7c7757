/* The sequencer state machine above Raft; see machine.h.
 *
 * Epoch numbering: the batcher numbers (batcher.h); applying checks that each
 * committed entry continues the last (from_epoch == committed_epoch + 1; with
 * one group the batcher makes from_epoch == epoch) and sets committed_epoch
 * to its epoch.
 * A leader's batcher restarts at committed_epoch + 1 when it becomes ready;
 * with several groups its first entry is then a run up to the current
 * wall-clock slot. */
#include "machine.h"

#include <errno.h>
#include <string.h>

size_t seq_machine_bytes(const struct seq_machine_cfg *cfg)
{
	return seq_sessions_bytes(&cfg->sessions) + seq_batcher_bytes(&cfg->batcher);
}

int seq_machine_init(struct seq_machine *m, const struct seq_machine_cfg *cfg)
{
	memset(m, 0, sizeof *m);
	m->ops = cfg->ops;
	m->role = RAFT_FOLLOWER;
	int rc = seq_sessions_init(&m->sessions, &cfg->sessions);
	if (rc)
		return rc;
	rc = seq_batcher_init(&m->batcher, &cfg->batcher, 1, 1);
	if (rc) {
		seq_sessions_free(&m->sessions);
		return rc;
	}
	return 0;
}

void seq_machine_free(struct seq_machine *m)
{
	seq_sessions_free(&m->sessions);
	seq_batcher_free(&m->batcher);
}

void seq_machine_attach(struct seq_machine *m, struct raft *r)
{
	struct raft_status st;
	m->raft = r;
	raft_get_status(r, &st);
	m->term = st.term;
}

static void remember_override(struct seq_machine *m, const struct wire_req *r,
			      const struct seq_reply_to *to)
{
	for (uint32_t i = 0; i < m->noverrides; i++) {
		struct seq_reply_override *o = &m->overrides[i];
		if (o->client_id == r->client_id && o->request_number == r->request_number) {
			o->to = *to;
			return;
		}
	}
	if (m->noverrides == SEQ_MACHINE_OVERRIDES_MAX)
		return; /* bounded: the reply goes to the first source; retries get DUPLICATE */
	m->overrides[m->noverrides++] = (struct seq_reply_override){
	    .client_id = r->client_id, .request_number = r->request_number, .to = *to};
}

bool seq_machine_submit(struct seq_machine *m, const struct wire_req *r,
			const struct seq_reply_to *from, uint64_t mono_ns, uint64_t wall_ns,
			enum wire_status *st, struct wire_place *place)
{
	if (m->role != RAFT_LEADER) {
		*st = WIRE_ST_NOT_LEADER;
		return true;
	}
	if (!m->ready) {
		/* A new leader first applies every entry of earlier terms: until
		 * then it cannot tell a retry from a new request. */
		*st = WIRE_ST_OVERLOADED;
		return true;
	}
	switch (seq_sessions_admit(&m->sessions, r, wall_ns, place)) {
	case SEQ_ADMIT_ORDER: {
		struct wire_epoch_rec er = {
		    .client_id = r->client_id,
		    .request_number = r->request_number,
		    .session = r->session,
		    .op = r->op,
		    .size = r->size,
		    .key_id = from->key_id,
		    .reply_ip = from->ip,
		    .reply_port = from->port,
		    .payload = r->payload,
		};
		if (seq_batcher_add(&m->batcher, &er, mono_ns, wall_ns, place) != 0) {
			seq_sessions_unadmit(&m->sessions, r);
			*st = WIRE_ST_OVERLOADED;
			return true;
		}
		return false;
	}
	case SEQ_ADMIT_PENDING:
		remember_override(m, r, from);
		return false;
	case SEQ_ADMIT_DUPLICATE:
		*st = WIRE_ST_DUPLICATE;
		return true;
	case SEQ_ADMIT_STALE:
		*st = WIRE_ST_STALE;
		return true;
	case SEQ_ADMIT_OVERLOADED:
		*st = WIRE_ST_OVERLOADED;
		return true;
	case SEQ_ADMIT_UNKNOWN:
		*st = WIRE_ST_SESSION_UNKNOWN;
		return true;
	}
	ORDO_ASSERT(0);
	return true;
}

void seq_machine_propose(struct seq_machine *m)
{
	while (m->role == RAFT_LEADER) {
		(void)seq_batcher_next_sealed(&m->batcher); /* hands out in order */
		const struct seq_epoch_buf *e = seq_batcher_oldest(&m->batcher);
		if (!e)
			return;
		int rc = raft_propose(m->raft, e->bytes, e->len, NULL, NULL);
		if (rc != 0) {
			/* -ENOBUFS: its unstable window is full, later (the batcher's
			 * bounded ring answers OVERLOADED meanwhile); -EPERM/-EBUSY:
			 * leadership is changing. */
			m->proposals_refused++;
			return;
		}
		seq_batcher_release(&m->batcher);
	}
}

uint64_t seq_machine_due_in(const struct seq_machine *m, uint64_t mono_ns, uint64_t wall_ns)
{
	if (m->role != RAFT_LEADER || !m->ready)
		return UINT64_MAX;
	return seq_batcher_due_in(&m->batcher, mono_ns, wall_ns);
}

void seq_machine_tick(struct seq_machine *m, uint64_t mono_ns, uint64_t wall_ns)
{
	if (m->role == RAFT_LEADER && m->ready)
		(void)seq_batcher_tick(&m->batcher, mono_ns, wall_ns, false);
	seq_machine_propose(m);
}

bool seq_machine_soft_state(struct seq_machine *m, const struct raft_update *u)
{
	if (!u->has_soft_state || (u->role == m->role && u->lead == m->leader_id))
		return false;
	bool was_leader = m->role == RAFT_LEADER;
	m->role = u->role;
	m->leader_id = u->lead;
	struct raft_status st;
	raft_get_status(m->raft, &st);
	m->term = st.term;
	if (was_leader && u->role != RAFT_LEADER) {
		seq_sessions_clear_pending(&m->sessions);
		seq_batcher_reset(&m->batcher, m->committed_epoch + 1, m->committed_position + 1);
		m->noverrides = 0;
	}
	if (u->role == RAFT_LEADER && !was_leader) {
		m->lead_index = st.last_index;
		m->ready = false;
	}
	return true;
}

/* Where ORDERED OK for this committed record goes: the latest source. */
static void reply_target(struct seq_machine *m, const struct wire_epoch_rec *er,
			 struct seq_reply_to *to)
{
	to->ip = er->reply_ip;
	to->port = er->reply_port;
	to->key_id = er->key_id;
	for (uint32_t i = 0; i < m->noverrides; i++) {
		struct seq_reply_override *o = &m->overrides[i];
		if (o->client_id == er->client_id && o->request_number == er->request_number) {
			*to = o->to;
			m->overrides[i] = m->overrides[--m->noverrides];
			return;
		}
	}
}

/* Applies one committed epoch (Raft entry of term entry_term): the session
 * table on every member; ORDERED OK on the leader for the epochs of its own
 * term (earlier ones were admitted by an earlier leader, whose clients retry
 * and get DUPLICATE). */
static void apply_epoch(struct seq_machine *m, const uint8_t *bytes, uint32_t len,
			uint64_t entry_term)
{
	struct wire_epoch_hdr h;
	int rc = wire_epoch_decode_hdr(bytes, len, &h);
	/* Committed entries were built by a leader and CRC-checked on disk: a
	 * malformed one, or one that does not continue the order, means the
	 * log is broken. Stopping is safer than ordering wrongly. */
	ORDO_ASSERT(rc == 0);
	/* The entry covers from_epoch .. epoch (one epoch with one group; a
	 * run of empty epochs then epoch with several): it must start right
	 * after the last committed one. An empty entry names the next free
	 * position. */
	ORDO_ASSERT(h.from_epoch == m->committed_epoch + 1);
	ORDO_ASSERT(h.first_position == m->committed_position + 1);
	bool leading = m->role == RAFT_LEADER && entry_term == m->term;
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
		bool applied = seq_sessions_apply(&m->sessions, &r, &place, h.timestamp_ns);
		ORDO_ASSERT(applied); /* a leader admitted it: never a duplicate */
		if (leading && m->ops.ordered) {
			struct seq_reply_to to;
			reply_target(m, &er, &to);
			m->ops.ordered(m->ops.ctx, &r, &place, &to);
		}
		index++;
	}
	ORDO_ASSERT(rc == 0 && index == h.count);
	m->committed_epoch = h.epoch;
	if (h.count)
		m->committed_position = h.first_position + h.count - 1;
	m->applied_ts_ns = h.timestamp_ns;
	m->requests_committed += h.count;
	if (m->ops.epoch)
		m->ops.epoch(m->ops.ctx, &h, bytes, len, leading);
}

void seq_machine_apply_update(struct seq_machine *m, const struct raft_update *u)
{
	for (uint32_t i = 0; i < u->n_committed; i++) {
		const struct raft_entry *e = &u->committed[i];
		ORDO_ASSERT(e->index == m->applied_index + 1);
		if (e->type == RAFT_ENTRY_NORMAL && e->len > 0)
			apply_epoch(m, e->data, e->len, e->term);
		m->applied_index = e->index;
		m->applied_term = e->term;
	}
	/* Once a new leader has applied everything up to its own first entry,
	 * it knows every request ordered before its term and may admit new
	 * ones. */
	if (m->role == RAFT_LEADER && !m->ready && m->applied_index >= m->lead_index) {
		seq_batcher_reset(&m->batcher, m->committed_epoch + 1, m->committed_position + 1);
		m->ready = true;
	}
}

int seq_machine_snapshot(const struct seq_machine *m, uint8_t *out, size_t cap, size_t *len,
			 struct raft_snapshot_meta *meta)
{
	struct seq_snap_hdr h = {.raft_index = m->applied_index,
				 .raft_term = m->applied_term,
				 .epoch = m->committed_epoch,
				 .group_position = m->committed_position,
				 .epoch_ts_ns = m->applied_ts_ns};
	int rc = seq_sessions_snapshot_write(&m->sessions, &h, out, cap, len);
	if (rc)
		return rc;
	struct raft_status st;
	raft_get_status(m->raft, &st);
	*meta = (struct raft_snapshot_meta){
	    .index = m->applied_index, .term = m->applied_term, .conf = st.conf};
	return 0;
}

int seq_machine_restore(struct seq_machine *m, const uint8_t *data, uint64_t len,
			const struct raft_snapshot_meta *meta)
{
	struct seq_snap_hdr h;
	int rc = seq_sessions_snapshot_read(&m->sessions, data, len, &h);
	if (rc)
		return rc;
	/* The state must be the one the Raft meta names, or the node would
	 * apply the entries after meta.index on another base. */
	if (h.raft_index != meta->index || h.raft_term != meta->term)
		return -EBADMSG;
	m->applied_index = h.raft_index;
	m->applied_term = h.raft_term;
	m->committed_epoch = h.epoch;
	m->committed_position = h.group_position;
	m->applied_ts_ns = h.epoch_ts_ns;
	return 0;
}
