/* The sequencer state machine above Raft; see machine.h.
 *
 * Epoch numbering: the batcher numbers (batcher.h); applying checks that each
 * committed entry continues the last (from_epoch == committed_epoch + 1; with
 * one group the batcher makes from_epoch == epoch) and sets committed_epoch
 * to its epoch.
 * A leader's batcher restarts at committed_epoch + 1 when it becomes ready;
 * with several groups its first entry is then a run up to the current
 * wall-clock slot.
 *
 * Adding a group (PROTOCOL.md §1.7): the floor of a joining group's batcher
 * is UINT64_MAX from init until its own announcement is applied (or
 * restored), then that announcement's E; a founding group's stays 0. */
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
	m->joining = cfg->joining;
	/* an announcement names groups below ORDO_GROUPS_MAX (join_group) */
	if (cfg->joining && cfg->batcher.group >= ORDO_GROUPS_MAX)
		return -EINVAL;
	int rc = seq_sessions_init(&m->sessions, &cfg->sessions);
	if (rc)
		return rc;
	rc = seq_batcher_init(&m->batcher, &cfg->batcher, 1, 1);
	if (rc) {
		seq_sessions_free(&m->sessions);
		return rc;
	}
	seq_batcher_set_min_epoch(&m->batcher, m->joining ? UINT64_MAX : 0);
	return 0;
}

/* The group's own committed announcement, or NULL for a group no
 * announcement can name (a founding group numbered ORDO_GROUPS_MAX or more,
 * which no replica merges either). */
static const struct seq_join *own_join(const struct seq_machine *m)
{
	uint16_t g = m->batcher.cfg.group;
	return g < ORDO_GROUPS_MAX ? &m->joins[g] : NULL;
}

/* The batcher's floor for the committed state: a joining group orders from
 * its announced epoch on, nothing before it is announced. */
static void set_floor(struct seq_machine *m)
{
	if (!m->joining)
		return;
	uint64_t e = own_join(m)->first_epoch; /* joining: below ORDO_GROUPS_MAX */
	seq_batcher_set_min_epoch(&m->batcher, e ? e : UINT64_MAX);
}

int seq_machine_group_add(struct seq_machine *m, uint16_t group, uint64_t first_epoch,
			  uint64_t wall_ns, uint64_t *at_epoch)
{
	*at_epoch = 0;
	if (group >= ORDO_GROUPS_MAX || first_epoch == 0)
		return -EINVAL;
	const struct seq_join *j = &m->joins[group];
	if (j->first_epoch) {
		/* committed: every member knows the answer; for another epoch,
		 * the one that stands (so the operator's tool can converge) */
		if (j->first_epoch != first_epoch) {
			*at_epoch = j->first_epoch;
			return -EEXIST;
		}
		*at_epoch = j->at_epoch;
		return 0;
	}
	/* One join at a time: while another group's announced join epoch is
	 * ahead, replicas hold that one pending and would not take this one.
	 * (The joining group keeps its own in its snapshot, so it answers this
	 * after a restart too; the others know it until they restart.) */
	for (uint32_t k = 0; k < ORDO_GROUPS_MAX; k++)
		if (k != group && m->joins[k].first_epoch > m->committed_epoch) {
			*at_epoch = m->joins[k].first_epoch;
			return -EBUSY;
		}
	if (m->role != RAFT_LEADER)
		return -EPERM;
	/* A new leader has not applied every earlier entry: one of them may
	 * carry the announcement. */
	if (!m->ready || m->ann_proposed[group] || seq_batcher_announcing(&m->batcher, group))
		return -EAGAIN;
	int rc = seq_batcher_announce(&m->batcher, group, first_epoch, wall_ns);
	if (rc == -ETIME && group == m->batcher.cfg.group) {
		/* The joining group itself, late: it may start after E as well (it
		 * ordered nothing, so its entries from E on are empty until then):
		 * it orders from the next epoch it seals. Its answer names that
		 * epoch (-EEXIST with it, once committed). */
		uint64_t next = seq_batcher_next_number(&m->batcher, wall_ns) + 1;
		rc = seq_batcher_announce(&m->batcher, group, next, wall_ns);
	}
	if (rc == -EBUSY)
		return -EAGAIN; /* another group's waits for the next seal */
	return rc ? rc : -EAGAIN;
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
		if (e->hdr.join_group) {
			uint16_t g = (uint16_t)(e->hdr.join_group - 1u);
			uint64_t first = e->hdr.epoch + e->hdr.join_after;
			ORDO_ASSERT(g < ORDO_GROUPS_MAX);
			m->ann_proposed[g] = first;
			if (m->ops.announce)
				m->ops.announce(m->ops.ctx, g, first, e->hdr.epoch, false);
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
		memset(m->ann_proposed, 0, sizeof m->ann_proposed);
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

/* A committed entry announces that a group joins at epoch + join_after
 * (wire_epoch_decode_hdr checked join_group <= ORDO_GROUPS_MAX and
 * join_after >= 1). The first announcement of a group stands: a correct
 * leader never stamps another E for a group whose announcement it applied
 * (-EEXIST), and a repeat of the same E (a retry after a restart) changes
 * nothing. */
static void apply_announcement(struct seq_machine *m, const struct wire_epoch_hdr *h)
{
	uint16_t g = (uint16_t)(h->join_group - 1u);
	ORDO_ASSERT(g < ORDO_GROUPS_MAX && h->join_after >= 1);
	uint64_t first = h->epoch + h->join_after;
	struct seq_join *j = &m->joins[g];
	if (j->first_epoch == 0) {
		j->first_epoch = first;
		j->at_epoch = h->epoch;
		if (g == m->batcher.cfg.group)
			set_floor(m);
	}
	if (m->ann_proposed[g])
		m->ann_proposed[g] = 0;
	if (m->ops.announce)
		m->ops.announce(m->ops.ctx, g, first, h->epoch, true);
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
	if (h.join_group)
		apply_announcement(m, &h);
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
	const struct seq_join none = {0};
	const struct seq_join *own = own_join(m);
	if (!own)
		own = &none;
	struct seq_snap_hdr h = {.raft_index = m->applied_index,
				 .raft_term = m->applied_term,
				 .epoch = m->committed_epoch,
				 .group_position = m->committed_position,
				 .epoch_ts_ns = m->applied_ts_ns,
				 .join_epoch = own->first_epoch,
				 .join_after = own->first_epoch - own->at_epoch};
	for (uint32_t g = 0; g < ORDO_GROUPS_MAX; g++) {
		h.joins[g].first_epoch = m->joins[g].first_epoch;
		h.joins[g].at_epoch = m->joins[g].first_epoch ? m->joins[g].at_epoch : 0;
	}
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
	/* Every group's committed announcement (version 2), so GROUP_ADD is
	 * answered with what stands after a restart too; a version 1 snapshot
	 * has the group's own only. Joins known beyond the snapshot stay (it
	 * is never older than what this node applied). */
	for (uint32_t k = 0; k < ORDO_GROUPS_MAX; k++)
		if (h.joins[k].first_epoch)
			m->joins[k] = (struct seq_join){.first_epoch = h.joins[k].first_epoch,
							.at_epoch = h.joins[k].at_epoch};
	uint16_t g = m->batcher.cfg.group;
	if (g < ORDO_GROUPS_MAX && h.join_epoch)
		m->joins[g] = (struct seq_join){.first_epoch = h.join_epoch,
						.at_epoch = h.join_epoch - h.join_after};
	set_floor(m);
	return 0;
}
