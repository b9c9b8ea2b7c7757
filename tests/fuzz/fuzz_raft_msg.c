/*
 * libFuzzer target: raft_msg_decode on a Raft datagram body (the input), and
 * raft_step on whatever decodes.
 *
 * 1. Decoding never crashes; it fails only with -EBADMSG. What decodes is
 *    canonical: re-encoding gives the input byte for byte, and decoding that
 *    again gives the same fields and entry bytes.
 * 2. A message from a peer never trips an assertion in the core: the decoded
 *    message (as sent, then addressed to us) is stepped into a node of a
 *    3-node group (1 2 3) in each role (follower, pre-candidate, candidate,
 *    leader), whose updates are handled as raft.h prescribes by a minimal
 *    in-memory log; then the node ticks through two election timeouts
 *    (a term or index taken from the message must not overflow later) and
 *    the message is stepped again (a duplicate). Every message the core
 *    sends must encode and decode again.
 */
#include "fuzz_util.h"

#include "sequencer/raft/raft.h"

#define ENTS_MAX   64u	/* entries decoded per message */
#define LOG_MAX	   256u /* entries the fuzz log holds */
#define ENTRY_MAX  64u	/* bytes per entry (max_entry_bytes) */
#define SNAP_BYTES 8u	/* the state machine: applied index */

struct flog {
	struct raft_snapshot_meta snap;
	uint8_t snap_data[SNAP_BYTES];
	struct raft_entry ents[LOG_MAX]; /* ents[i].index == snap.index + 1 + i */
	uint8_t data[LOG_MAX][ENTRY_MAX];
	uint64_t n;
	struct raft_hard_state hs;
	uint64_t applied;
};

static struct raft_entry ents[ENTS_MAX], ents2[ENTS_MAX];
static uint8_t out[FUZZ_INPUT_MAX + 64];
static uint8_t msg_buf[FUZZ_INPUT_MAX + 64];
static struct flog flog;

static uint64_t fl_first(void *ctx)
{
	struct flog *l = ctx;
	return l->snap.index + 1;
}

static uint64_t fl_last(void *ctx)
{
	struct flog *l = ctx;
	return l->snap.index + l->n;
}

static int fl_term(void *ctx, uint64_t i, uint64_t *t)
{
	struct flog *l = ctx;
	if (i == l->snap.index) {
		*t = l->snap.term;
		return 0;
	}
	if (i < l->snap.index || i > fl_last(l))
		return -ENOENT;
	*t = l->ents[i - l->snap.index - 1].term;
	return 0;
}

static int fl_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes, struct raft_entry *o,
		      uint32_t max_n)
{
	struct flog *l = ctx;
	if (lo <= l->snap.index)
		return -ENOENT;
	ORDO_ASSERT(lo < hi && hi <= fl_last(l) + 1 && max_n > 0);
	uint32_t k = 0;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi && k < max_n; i++) {
		const struct raft_entry *e = &l->ents[i - l->snap.index - 1];
		if (k > 0 && bytes + e->len > max_bytes)
			break;
		o[k++] = *e;
		bytes += e->len;
	}
	return (int)k;
}

static void fl_snapshot_meta(void *ctx, struct raft_snapshot_meta *o)
{
	struct flog *l = ctx;
	*o = l->snap;
}

static int fl_snapshot(void *ctx, struct raft_snapshot *o)
{
	struct flog *l = ctx;
	o->meta = l->snap;
	o->data = l->snap_data;
	o->len = SNAP_BYTES;
	return 0;
}

static const struct raft_log_ops fl_ops = {
    .first_index = fl_first,
    .last_index = fl_last,
    .term_at = fl_term,
    .entries = fl_entries,
    .snapshot_meta = fl_snapshot_meta,
    .snapshot = fl_snapshot,
};

static void fl_push(struct flog *l, uint64_t term, uint8_t type, const void *data, uint32_t len)
{
	ORDO_ASSERT(l->n < LOG_MAX && len <= ENTRY_MAX);
	struct raft_entry *e = &l->ents[l->n];
	e->term = term;
	e->index = l->snap.index + 1 + l->n;
	e->type = type;
	e->len = len;
	if (len)
		memcpy(l->data[l->n], data, len);
	e->data = l->data[l->n];
	l->n++;
}

/* Every message the core sends encodes, and decodes to the same header. */
static void check_outgoing(const struct raft_msg *m)
{
	size_t need = raft_msg_encoded_len(m);
	if (need > sizeof(msg_buf))
		return;
	long w = raft_msg_encode(m, msg_buf, sizeof(msg_buf));
	ORDO_ASSERT(w == (long)need);
	struct raft_msg d;
	ORDO_ASSERT(raft_msg_decode(msg_buf, need, &d, ents2, ENTS_MAX) == 0 ||
		    m->n_entries > ENTS_MAX);
	ORDO_ASSERT(m->from == 1 && m->to != 1 && m->term >= 1);
}

/* Handles one update as raft.h prescribes; false if there was none. */
static bool handle_ready(struct raft *r)
{
	if (!raft_has_update(r))
		return false;
	struct raft_update u;
	raft_ready(r, &u);
	struct flog *l = &flog;
	if (u.snapshot) {
		ORDO_ASSERT(u.snapshot->meta.index > l->applied);
		l->snap = u.snapshot->meta;
		l->n = 0;
		memset(l->snap_data, 0, SNAP_BYTES);
		ordo_st64(l->snap_data, l->snap.index);
		l->applied = l->snap.index;
		raft_snapshot_applied(r, l->snap.index);
	}
	if (u.n_entries) {
		uint64_t first = u.entries[0].index;
		ORDO_ASSERT(first > l->snap.index && first <= fl_last(l) + 1);
		l->n = first - l->snap.index - 1; /* truncate the suffix */
		for (uint32_t i = 0; i < u.n_entries; i++) {
			ORDO_ASSERT(u.entries[i].index == first + i);
			fl_push(l, u.entries[i].term, u.entries[i].type, u.entries[i].data,
				u.entries[i].len);
		}
	}
	if (u.has_hard_state) {
		ORDO_ASSERT(u.hard_state.term >= l->hs.term);
		ORDO_ASSERT(u.hard_state.commit >= l->hs.commit || u.snapshot);
		l->hs = u.hard_state;
	}
	if (u.n_entries) {
		const struct raft_entry *e = &u.entries[u.n_entries - 1];
		raft_persisted(r, e->term, e->index);
	}
	for (uint32_t i = 0; i < u.n_msgs; i++)
		check_outgoing(&u.msgs[i]);
	for (uint32_t i = 0; i < u.n_committed; i++) {
		const struct raft_entry *e = &u.committed[i];
		ORDO_ASSERT(e->index == l->applied + 1);
		ORDO_ASSERT(e->index <= fl_last(l));
		l->applied = e->index;
	}
	raft_advance(r, &u);
	return true;
}

static void drain(struct raft *r)
{
	for (int i = 0; i < 64 && handle_ready(r); i++)
		;
	struct raft_status s;
	raft_get_status(r, &s);
	ORDO_ASSERT(s.commit <= s.last_index && s.applied <= s.commit);
	ORDO_ASSERT(s.term >= flog.hs.term);
}

/* A fixed message from peer `from` of this group. */
static int step_fixed(struct raft *r, uint8_t type, uint64_t from, uint64_t term, uint64_t index,
		      bool reject)
{
	struct raft_msg m = {0};
	m.type = type;
	m.from = from;
	m.to = 1;
	m.term = term;
	m.index = index;
	m.reject = reject;
	return raft_step(r, &m);
}

/* Node 1 of (1 2 3): snapshot at 2 (term 1), entries 3-6 of terms 1 2 2 3,
 * term 3, commit 4; then driven into `role`. */
static struct raft *setup(int role)
{
	memset(&flog, 0, sizeof(flog));
	struct flog *l = &flog;
	l->snap.index = 2;
	l->snap.term = 1;
	l->snap.conf.n = 3;
	l->snap.conf.voters[0] = 1;
	l->snap.conf.voters[1] = 2;
	l->snap.conf.voters[2] = 3;
	ordo_st64(l->snap_data, 2);
	fl_push(l, 1, RAFT_ENTRY_NORMAL, "a", 1);
	fl_push(l, 2, RAFT_ENTRY_NORMAL, "", 0);
	fl_push(l, 2, RAFT_ENTRY_NORMAL, "bc", 2);
	fl_push(l, 3, RAFT_ENTRY_NORMAL, "", 0);
	l->hs = (struct raft_hard_state){3, 2, 4};
	l->applied = 2;

	struct raft_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	raft_config_defaults(&cfg);
	cfg.id = 1;
	cfg.election_ticks = 10;
	cfg.heartbeat_ticks = 1;
	cfg.max_msg_entries = 4;
	cfg.max_msg_bytes = 256;
	cfg.max_inflight_msgs = 2;
	cfg.max_inflight_bytes = 512;
	cfg.max_unstable_entries = 16;
	cfg.max_unstable_bytes = 1024;
	cfg.max_entry_bytes = ENTRY_MAX;
	cfg.max_apply_entries = 8;
	cfg.max_apply_bytes = 1024;
	cfg.prng_seed = 42;
	cfg.hard_state = l->hs;
	cfg.applied = 2;
	cfg.log = &fl_ops;
	cfg.log_ctx = l;
	struct raft *r = NULL;
	ORDO_ASSERT(raft_new(&cfg, &r) == 0);
	drain(r);
	if (role == 0) {
		/* A follower that knows leader 2. */
		ORDO_ASSERT(step_fixed(r, RAFT_MSG_HEARTBEAT, 2, 3, 0, false) == 0);
	} else {
		raft_campaign(r);
		drain(r);
		if (role >= 2) {
			ORDO_ASSERT(step_fixed(r, RAFT_MSG_PREVOTE_RESP, 2, 4, 0, false) == 0);
			drain(r);
		}
		if (role >= 3) {
			ORDO_ASSERT(step_fixed(r, RAFT_MSG_VOTE_RESP, 2, 4, 0, false) == 0);
			drain(r);
			ORDO_ASSERT(step_fixed(r, RAFT_MSG_APP_RESP, 2, 4, 7, false) == 0);
			drain(r);
			struct raft_status s;
			raft_get_status(r, &s);
			ORDO_ASSERT(s.role == RAFT_LEADER && s.commit == 7);
		}
	}
	drain(r);
	return r;
}

static void step_checked(struct raft *r, const struct raft_msg *m)
{
	int rc = raft_step(r, m);
	ORDO_ASSERT(rc == 0 || rc == -EINVAL);
	drain(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	struct raft_msg m;
	int rc = raft_msg_decode(data, size, &m, ents, ENTS_MAX);
	if (rc != 0) {
		ORDO_ASSERT(rc == -EBADMSG);
		return 0;
	}

	/* 1. Canonical: re-encoding gives the input, decoding it the same. */
	ORDO_ASSERT(raft_msg_encoded_len(&m) == size);
	long w = raft_msg_encode(&m, out, sizeof(out));
	ORDO_ASSERT(w == (long)size && memcmp(out, data, size) == 0);
	struct raft_msg m2;
	ORDO_ASSERT(raft_msg_decode(out, (size_t)w, &m2, ents2, ENTS_MAX) == 0);
	ORDO_ASSERT(m.type == m2.type && m.reject == m2.reject && m.force == m2.force);
	ORDO_ASSERT(m.from == m2.from && m.to == m2.to && m.term == m2.term);
	ORDO_ASSERT(m.log_term == m2.log_term && m.index == m2.index);
	ORDO_ASSERT(m.commit == m2.commit && m.reject_hint == m2.reject_hint);
	ORDO_ASSERT(m.n_entries == m2.n_entries);
	for (uint32_t i = 0; i < m.n_entries; i++) {
		const struct raft_entry *a = &m.entries[i], *b = &m2.entries[i];
		ORDO_ASSERT(a->term == b->term && a->index == b->index);
		ORDO_ASSERT(a->index == m.index + 1 + i);
		ORDO_ASSERT(a->type == b->type && a->len == b->len);
		ORDO_ASSERT(fuzz_in_body(a->data, a->len, data, size));
		ORDO_ASSERT(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
	}
	ORDO_ASSERT(m.snap.index == m2.snap.index && m.snap.term == m2.snap.term);
	ORDO_ASSERT(m.snap.conf.n == m2.snap.conf.n);
	ORDO_ASSERT(
	    memcmp(m.snap.conf.voters, m2.snap.conf.voters, sizeof(uint64_t) * m.snap.conf.n) == 0);
	ORDO_ASSERT(m.snap_len == m2.snap_len);
	ORDO_ASSERT(m.snap_len == 0 || (fuzz_in_body(m.snap_data, m.snap_len, data, size) &&
					memcmp(m.snap_data, m2.snap_data, m.snap_len) == 0));

	/* 2. Into the core, in each role. */
	for (int role = 0; role < 4; role++) {
		struct raft *r = setup(role);
		step_checked(r, &m);
		struct raft_msg to_us = m;
		to_us.to = 1;
		step_checked(r, &to_us);
		for (int t = 0; t < 25; t++) {
			raft_tick(r);
			drain(r);
			/* Answer the node's own polls so elections progress. */
			struct raft_status s;
			raft_get_status(r, &s);
			if (s.role == RAFT_PRE_CANDIDATE)
				(void)step_fixed(r, RAFT_MSG_PREVOTE_RESP, 3, s.term + 1, 0, false);
			else if (s.role == RAFT_CANDIDATE)
				(void)step_fixed(r, RAFT_MSG_VOTE_RESP, 3, s.term, 0, false);
			drain(r);
		}
		step_checked(r, &to_us);
		raft_free(r);
	}
	return 0;
}
