/*
 * The Raft core's state machine (see raft.h for the contract with the
 * driver). Sections of Ongaro's thesis (2014) are cited where each rule
 * lives; the structure follows etcd-io/raft's raft.go and tracker/progress.go.
 *
 * The log seen by the core is the caller's durable log (raft_log_ops) up to
 * u_off - 1, followed by the unstable tail u_ents[0 .. u_n) held in memory
 * (entry data copied into a ring arena), or a snapshot received from the
 * leader and not yet installed. Entries leave the tail once durable and the
 * update that referenced them is advanced.
 *
 * Not here: encoding (raft_msg.c), I/O, clocks.
 */
#include "raft.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "common/plant.h"
#include "common/prng.h"

enum pr_state {
	PR_PROBE = 0,	  /* one AppendEntries at a time, until a match is known */
	PR_REPLICATE = 1, /* pipelined, next advanced optimistically */
	PR_SNAPSHOT = 2,  /* InstallSnapshot sent; paused until answered */
};

/* Leader's view of one follower (etcd tracker.Progress; thesis §3.5). */
struct progress {
	uint64_t id;		   /* 0 = free slot */
	uint64_t match;		   /* highest index known durable on id */
	uint64_t next;		   /* next index to send; match < next */
	uint8_t state;		   /* enum pr_state */
	bool probe_sent;	   /* PR_PROBE: an append is outstanding */
	bool recent_active;	   /* heard from id since the last quorum check */
	uint64_t pending_snapshot; /* PR_SNAPSHOT: index of the snapshot sent */
	uint32_t snapshot_ticks;   /* PR_SNAPSHOT: ticks since sent; retry after T */
	uint32_t infl_start;	   /* ring head in infl_index/infl_bytes */
	uint32_t infl_count;	   /* messages in flight, <= max_inflight_msgs */
	uint64_t infl_total_bytes; /* payload bytes in flight */
	uint64_t *infl_index;	   /* last index of each message in flight */
	uint64_t *infl_bytes;	   /* payload bytes of each */
};

enum campaign_kind { CAMPAIGN_PRE, CAMPAIGN_ELECTION, CAMPAIGN_TRANSFER };

struct raft {
	struct raft_config cfg;
	uint64_t id;
	struct ordo_prng prng;

	/* Durable (hard state). */
	uint64_t term;	 /* never decreases */
	uint64_t vote;	 /* voted for in term, 0 none */
	uint64_t commit; /* never decreases; <= last index */

	/* Volatile. */
	enum raft_role role;
	uint64_t lead;		     /* known leader of term, 0 none */
	uint32_t election_elapsed;   /* ticks since reset (leader: since quorum check) */
	uint32_t heartbeat_elapsed;  /* leader: ticks since last heartbeat */
	uint32_t randomized_timeout; /* in [T, 2T) */
	uint64_t applied;	     /* highest index handed out to apply; <= commit */
	uint64_t transferee;	     /* leader: transfer target, 0 none */
	uint64_t pending_conf_index; /* leader: index of last conf entry appended */
	bool noop_pending;	     /* leader: no-op could not be appended yet */
	bool persist_dirty;	     /* stable index moved during an outstanding update */

	struct raft_conf conf; /* latest configuration in the log (§4.1) */
	uint64_t conf_index;   /* its entry index (snapshot index if from one) */

	/* Election votes received, by voter. */
	uint64_t vote_ids[RAFT_VOTERS_MAX];
	int8_t vote_res[RAFT_VOTERS_MAX]; /* 1 granted, -1 rejected */
	uint32_t n_votes;

	struct progress prs[RAFT_VOTERS_MAX]; /* leader: one per voter but self */

	/* The unstable tail. */
	struct raft_entry *u_ents; /* [max_unstable_entries]; u_ents[i].index = u_off+i */
	uint32_t u_n;
	uint64_t u_off;	       /* index of u_ents[0]; last index = u_off + u_n - 1 */
	uint64_t u_handed;     /* first index not yet handed out for writing */
	uint64_t stable_index; /* last index durable in the local log */
	uint8_t *arena;	       /* max_unstable_bytes */
	uint64_t a_head;       /* offset of the oldest live byte */
	uint64_t a_tail;       /* offset of the next free byte */
	uint64_t a_wrap_end;   /* when wrapped: end of the pre-wrap region */
	bool a_wrapped;	       /* live region is [head, wrap_end) + [0, tail) */

	/* A snapshot received from the leader, not yet installed. */
	bool snap_pending;
	bool snap_handed;
	struct raft_snapshot snap;

	/* Output batch: filled by inputs, handed out by raft_ready(). */
	struct raft_msg *msgs;
	uint32_t n_msgs, msgs_cap;
	struct raft_entry *ents; /* descriptors for messages and committed */
	uint32_t n_ents, ents_cap;
	bool outstanding; /* an update is handed out, not yet advanced */
	struct raft_hard_state prev_hs;
	enum raft_role prev_role;
	uint64_t prev_lead;
	/* What the outstanding update handed out. */
	uint64_t handed_last;	 /* last entry index handed for writing, or 0 */
	uint64_t handed_applied; /* last committed index handed out, or 0 */
	uint64_t handed_snap;	 /* snapshot index handed out, or 0 */
	struct raft_snapshot snap_out;
};

/* ---------------------------------------------------------------- logging */

__attribute__((format(printf, 2, 3))) static void rlog(struct raft *r, const char *fmt, ...)
{
	if (!r->cfg.logger)
		return;
	char line[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->cfg.logger(r->cfg.logger_ctx, line);
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "StateFollower";
	case RAFT_PRE_CANDIDATE:
		return "StatePreCandidate";
	case RAFT_CANDIDATE:
		return "StateCandidate";
	case RAFT_LEADER:
		return "StateLeader";
	}
	return "StateUnknown";
}

const char *raft_msg_type_name(uint8_t type)
{
	static const char *const names[] = {"MsgApp",	    "MsgAppResp",      "MsgVote",
					    "MsgVoteResp",  "MsgPreVote",      "MsgPreVoteResp",
					    "MsgSnap",	    "MsgSnapResp",     "MsgTimeoutNow",
					    "MsgHeartbeat", "MsgHeartbeatResp"};
	if (type < RAFT_MSG_TYPE_MIN || type > RAFT_MSG_TYPE_MAX)
		return "MsgUnknown";
	return names[type - RAFT_MSG_TYPE_MIN];
}

static void conf_str(const struct raft_conf *c, char *buf, size_t cap)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, cap - o, "(");
	for (uint32_t i = 0; i < c->n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? " " : "",
				      (unsigned long long)c->voters[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, ")");
}

/* ------------------------------------------------------------ configuration */

bool raft_conf_has(const struct raft_conf *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->voters[i] == id)
			return true;
	return false;
}

uint32_t raft_conf_encode(const struct raft_conf *c, uint8_t out[RAFT_CONF_BYTES_MAX])
{
	ORDO_ASSERT(c->n <= RAFT_VOTERS_MAX);
	ordo_st32(out, c->n);
	for (uint32_t i = 0; i < c->n; i++)
		ordo_st64(out + 4 + 8 * i, c->voters[i]);
	return 4 + 8 * c->n;
}

int raft_conf_decode(const void *p, uint32_t len, struct raft_conf *c)
{
	const uint8_t *b = p;
	if (len < 4)
		return -EBADMSG;
	uint32_t n = ordo_ld32(b);
	if (n > RAFT_VOTERS_MAX || len != 4 + 8 * n)
		return -EBADMSG;
	memset(c, 0, sizeof(*c));
	c->n = n;
	for (uint32_t i = 0; i < n; i++) {
		c->voters[i] = ordo_ld64(b + 4 + 8 * i);
		if (c->voters[i] == 0 || (i > 0 && c->voters[i] <= c->voters[i - 1]))
			return -EBADMSG;
	}
	return 0;
}

static uint32_t quorum(uint32_t n)
{
	return n / 2 + 1;
}

static bool promotable(const struct raft *r)
{
	return raft_conf_has(&r->conf, r->id) && !r->snap_pending;
}

/* ---------------------------------------------------------------- the log */

static uint64_t last_index(const struct raft *r)
{
	return r->u_off + r->u_n - 1;
}

static uint64_t first_index(const struct raft *r)
{
	if (r->snap_pending)
		return r->snap.meta.index + 1;
	return r->cfg.log->first_index(r->cfg.log_ctx);
}

/* Term of entry i; -ENOENT if compacted or beyond the last index. */
static int term_at(const struct raft *r, uint64_t i, uint64_t *t)
{
	if (i > last_index(r))
		return -ENOENT;
	if (i >= r->u_off) {
		*t = r->u_ents[i - r->u_off].term;
		return 0;
	}
	if (r->snap_pending) {
		if (i == r->snap.meta.index) {
			*t = r->snap.meta.term;
			return 0;
		}
		return -ENOENT;
	}
	return r->cfg.log->term_at(r->cfg.log_ctx, i, t);
}

static uint64_t term_or_zero(const struct raft *r, uint64_t i)
{
	uint64_t t = 0;
	if (term_at(r, i, &t) != 0)
		return 0;
	return t;
}

static uint64_t last_term(const struct raft *r)
{
	uint64_t t = 0;
	int rc = term_at(r, last_index(r), &t);
	ORDO_ASSERT(rc == 0);
	return t;
}

/* §5.4.1 up-to-date check for votes. */
static bool log_up_to_date(const struct raft *r, uint64_t lterm, uint64_t lindex)
{
	uint64_t mt = last_term(r);
	return lterm > mt || (lterm == mt && lindex >= last_index(r));
}

/*
 * Reads entries [lo, hi) into out (at most max_n, stopping before max_bytes of
 * payload but always at least one). Returns the count or -ENOENT (compacted).
 */
static int read_entries(const struct raft *r, uint64_t lo, uint64_t hi, uint64_t max_bytes,
			struct raft_entry *out, uint32_t max_n)
{
	ORDO_ASSERT(lo < hi && hi <= last_index(r) + 1 && max_n > 0);
	uint32_t n = 0;
	uint64_t bytes = 0;
	if (lo < r->u_off) {
		if (r->snap_pending)
			return -ENOENT;
		uint64_t shi = hi < r->u_off ? hi : r->u_off;
		int k = r->cfg.log->entries(r->cfg.log_ctx, lo, shi, max_bytes, out, max_n);
		if (k < 0)
			return k;
		ORDO_ASSERT(k >= 1 && (uint32_t)k <= max_n);
		for (int j = 0; j < k; j++) {
			ORDO_ASSERT(out[j].index == lo + (uint64_t)j);
			bytes += out[j].len;
		}
		n = (uint32_t)k;
		if (lo + n < shi || n == max_n)
			return (int)n;
		lo += n;
	}
	for (uint64_t i = lo; i < hi && n < max_n; i++) {
		const struct raft_entry *e = &r->u_ents[i - r->u_off];
		if (n > 0 && bytes + e->len > max_bytes)
			break;
		out[n++] = *e;
		bytes += e->len;
	}
	return (int)n;
}

/* Ring arena: returns the offset for len bytes, or -1 when full. */
static int64_t arena_alloc(struct raft *r, uint32_t len)
{
	uint64_t cap = r->cfg.max_unstable_bytes;
	if (r->u_n == 0) {
		r->a_head = r->a_tail = 0;
		r->a_wrapped = false;
	}
	if (!r->a_wrapped) {
		if (r->a_tail + len <= cap) {
			r->a_tail += len;
			return (int64_t)(r->a_tail - len);
		}
		if (len <= r->a_head) {
			r->a_wrap_end = r->a_tail;
			r->a_wrapped = true;
			r->a_tail = len;
			return 0;
		}
		return -1;
	}
	if (r->a_tail + len <= r->a_head) {
		r->a_tail += len;
		return (int64_t)(r->a_tail - len);
	}
	return -1;
}

static uint64_t arena_off(const struct raft *r, const struct raft_entry *e)
{
	return (uint64_t)((const uint8_t *)e->data - r->arena);
}

/* Appends one entry to the unstable tail (copying its data). */
static bool unstable_push(struct raft *r, uint64_t term, uint8_t type, const void *data,
			  uint32_t len)
{
	if (r->u_n == r->cfg.max_unstable_entries || len > r->cfg.max_entry_bytes)
		return false;
	int64_t off = arena_alloc(r, len);
	if (off < 0)
		return false;
	struct raft_entry *e = &r->u_ents[r->u_n];
	e->term = term;
	e->index = last_index(r) + 1;
	e->type = type;
	e->len = len;
	e->data = r->arena + off;
	if (len)
		memcpy(r->arena + off, data, len);
	r->u_n++;
	return true;
}

static void set_conf(struct raft *r, const struct raft_conf *c, uint64_t index);

/* Latest configuration at or before index `upto` (§4.1: the latest in the log,
 * committed or not). Scans back to the snapshot. */
static void rescan_conf(struct raft *r, uint64_t upto)
{
	uint64_t first = first_index(r);
	for (uint64_t i = upto; i >= first && i > 0; i--) {
		struct raft_entry e;
		int n = read_entries(r, i, i + 1, UINT64_MAX, &e, 1);
		ORDO_ASSERT(n == 1);
		struct raft_conf c;
		if (e.type == RAFT_ENTRY_CONF && raft_conf_decode(e.data, e.len, &c) == 0) {
			set_conf(r, &c, i);
			return;
		}
	}
	struct raft_snapshot_meta meta;
	if (r->snap_pending)
		meta = r->snap.meta;
	else
		r->cfg.log->snapshot_meta(r->cfg.log_ctx, &meta);
	set_conf(r, &meta.conf, meta.index);
}

/* Removes entries >= idx (a conflict, §3.5). Never below commit. */
static void truncate_from(struct raft *r, uint64_t idx)
{
	ORDO_ASSERT(idx > r->commit && idx <= last_index(r));
	ORDO_ASSERT(!r->outstanding);
	if (idx >= r->u_off) {
		r->u_n = (uint32_t)(idx - r->u_off);
	} else {
		r->u_n = 0;
		r->u_off = idx;
	}
	if (r->u_n == 0) {
		r->a_head = r->a_tail = 0;
		r->a_wrapped = false;
	} else {
		const struct raft_entry *l = &r->u_ents[r->u_n - 1];
		uint64_t off = arena_off(r, l);
		if (r->a_wrapped && off >= r->a_head)
			r->a_wrapped = false;
		r->a_tail = off + l->len;
	}
	if (r->stable_index >= idx)
		r->stable_index = idx - 1;
	if (r->u_handed > idx)
		r->u_handed = idx;
	if (r->conf_index >= idx)
		rescan_conf(r, idx - 1);
}

/* Drops entries from the front of the tail that are durable and no update
 * references any more. */
static void unstable_release(struct raft *r)
{
	uint32_t k = 0;
	while (k < r->u_n && r->u_ents[k].index <= r->stable_index &&
	       r->u_ents[k].index < r->u_handed)
		k++;
	if (k == 0)
		return;
	memmove(r->u_ents, r->u_ents + k, (size_t)(r->u_n - k) * sizeof(r->u_ents[0]));
	r->u_n -= k;
	r->u_off += k;
	if (r->u_n == 0) {
		r->a_head = r->a_tail = 0;
		r->a_wrapped = false;
		return;
	}
	uint64_t off = arena_off(r, &r->u_ents[0]);
	if (r->a_wrapped && off < r->a_head)
		r->a_wrapped = false;
	r->a_head = off;
}

static void commit_to(struct raft *r, uint64_t c)
{
	if (c <= r->commit)
		return;
	ORDO_ASSERT(c <= last_index(r));
	r->commit = c;
}

/*
 * Largest index <= index whose term is <= term (etcd findConflictByTerm):
 * the fast-repair bound, §3.5 "the follower can include the term of the
 * conflicting entry and the first index it stores for that term".
 */
static uint64_t conflict_by_term(const struct raft *r, uint64_t index, uint64_t term,
				 uint64_t *out_term)
{
	if (index > last_index(r))
		index = last_index(r);
	for (;;) {
		uint64_t t;
		if (term_at(r, index, &t) != 0) {
			*out_term = 0;
			return index;
		}
		if (t <= term || index == 0) {
			*out_term = t;
			return index;
		}
		index--;
	}
}

/* ------------------------------------------------------------- messages */

static struct raft_msg *msg_new(struct raft *r, uint8_t type, uint64_t to)
{
	ORDO_ASSERT(!r->outstanding);
	if (r->n_msgs == r->msgs_cap) {
		rlog(r, "%llu dropped %s to %llu: outbox full", (unsigned long long)r->id,
		     raft_msg_type_name(type), (unsigned long long)to);
		return NULL;
	}
	struct raft_msg *m = &r->msgs[r->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = r->id;
	m->to = to;
	m->term = r->term;
	return m;
}

static void send_resp(struct raft *r, uint8_t type, uint64_t to, uint64_t term, bool reject)
{
	struct raft_msg *m = msg_new(r, type, to);
	if (m) {
		m->term = term;
		m->reject = reject;
	}
}

/* Drops queued appends when leaving leadership: their entries may point into
 * the tail that a new leader is about to truncate. */
static void purge_appends(struct raft *r)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->n_msgs; i++)
		if (r->msgs[i].type != RAFT_MSG_APP)
			r->msgs[k++] = r->msgs[i];
	r->n_msgs = k;
	bool any_app = false;
	for (uint32_t i = 0; i < r->n_msgs; i++)
		any_app |= r->msgs[i].type == RAFT_MSG_APP;
	if (!any_app)
		r->n_ents = 0;
}

/* ------------------------------------------------------------- progress */

static struct progress *pr_find(struct raft *r, uint64_t id)
{
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++)
		if (r->prs[i].id == id && id != 0)
			return &r->prs[i];
	return NULL;
}

static void pr_reset(struct raft *r, struct progress *pr, uint64_t id)
{
	uint64_t *ii = pr->infl_index, *ib = pr->infl_bytes;
	memset(pr, 0, sizeof(*pr));
	pr->infl_index = ii;
	pr->infl_bytes = ib;
	pr->id = id;
	pr->match = 0;
	pr->next = last_index(r) + 1;
	pr->state = PR_PROBE;
}

static void pr_become_probe(struct progress *pr)
{
	if (pr->state == PR_SNAPSHOT) {
		uint64_t ps = pr->pending_snapshot;
		pr->next = (pr->match > ps ? pr->match : ps) + 1;
	} else {
		pr->next = pr->match + 1;
	}
	pr->state = PR_PROBE;
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr->infl_start = pr->infl_count = 0;
	pr->infl_total_bytes = 0;
}

static void pr_become_replicate(struct progress *pr)
{
	pr->state = PR_REPLICATE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	pr->infl_start = pr->infl_count = 0;
	pr->infl_total_bytes = 0;
}

static bool pr_paused(const struct raft *r, const struct progress *pr)
{
	switch (pr->state) {
	case PR_PROBE:
		return pr->probe_sent;
	case PR_REPLICATE:
		return pr->infl_count == r->cfg.max_inflight_msgs ||
		       pr->infl_total_bytes >= r->cfg.max_inflight_bytes;
	default:
		return true;
	}
}

static void infl_add(const struct raft *r, struct progress *pr, uint64_t last, uint64_t bytes)
{
	ORDO_ASSERT(pr->infl_count < r->cfg.max_inflight_msgs);
	uint32_t slot = (pr->infl_start + pr->infl_count) % r->cfg.max_inflight_msgs;
	pr->infl_index[slot] = last;
	pr->infl_bytes[slot] = bytes;
	pr->infl_count++;
	pr->infl_total_bytes += bytes;
}

/* Frees messages whose last index is <= to. */
static void infl_free_le(const struct raft *r, struct progress *pr, uint64_t to)
{
	while (pr->infl_count > 0 && pr->infl_index[pr->infl_start] <= to) {
		pr->infl_total_bytes -= pr->infl_bytes[pr->infl_start];
		pr->infl_start = (pr->infl_start + 1) % r->cfg.max_inflight_msgs;
		pr->infl_count--;
	}
}

static bool pr_maybe_update(struct progress *pr, uint64_t n)
{
	if (n <= pr->match)
		return false;
	pr->match = n;
	if (pr->next < n + 1)
		pr->next = n + 1;
	pr->probe_sent = false;
	return true;
}

/* A rejection of the append at `rejected`; hint is the leader-side bound. */
static bool pr_maybe_decr(struct progress *pr, uint64_t rejected, uint64_t hint)
{
	if (pr->state == PR_REPLICATE) {
		if (rejected <= pr->match)
			return false; /* stale */
		pr->next = pr->match + 1;
		return true;
	}
	if (pr->next - 1 != rejected)
		return false; /* stale */
	uint64_t n = rejected < hint + 1 ? rejected : hint + 1;
	pr->next = n > pr->match + 1 ? n : pr->match + 1;
	pr->probe_sent = false;
	return true;
}

/* InstallSnapshot to a follower behind the compacted log (§5.1). */
static bool send_snapshot(struct raft *r, struct progress *pr)
{
	struct raft_snapshot s;
	if (r->cfg.log->snapshot(r->cfg.log_ctx, &s) != 0) {
		rlog(r, "%llu failed to send snapshot to %llu: temporarily unavailable",
		     (unsigned long long)r->id, (unsigned long long)pr->id);
		return false;
	}
	struct raft_msg *m = msg_new(r, RAFT_MSG_SNAP, pr->id);
	if (!m)
		return false;
	m->snap = s.meta;
	m->snap_data = s.data;
	m->snap_len = s.len;
	rlog(r,
	     "%llu [firstindex: %llu, commit: %llu] sent snapshot[index: %llu, term: %llu] to %llu",
	     (unsigned long long)r->id, (unsigned long long)first_index(r),
	     (unsigned long long)r->commit, (unsigned long long)s.meta.index,
	     (unsigned long long)s.meta.term, (unsigned long long)pr->id);
	pr->state = PR_SNAPSHOT;
	pr->pending_snapshot = s.meta.index;
	pr->snapshot_ticks = 0;
	pr->infl_start = pr->infl_count = 0;
	pr->infl_total_bytes = 0;
	return true;
}

/* §3.5 AppendEntries, batched and pipelined under the per-follower bounds. */
static bool send_append(struct raft *r, struct progress *pr, bool send_if_empty)
{
	if (pr_paused(r, pr))
		return false;
	uint64_t prev = pr->next - 1, prev_term;
	if (term_at(r, prev, &prev_term) != 0)
		return send_snapshot(r, pr);
	uint32_t n = 0;
	uint64_t bytes = 0;
	uint32_t room = r->ents_cap - r->n_ents;
	if (room > r->cfg.max_msg_entries)
		room = r->cfg.max_msg_entries;
	if (pr->next <= last_index(r)) {
		if (room == 0)
			return false;
		int k = read_entries(r, pr->next, last_index(r) + 1, r->cfg.max_msg_bytes,
				     r->ents + r->n_ents, room);
		if (k < 0)
			return send_snapshot(r, pr);
		n = (uint32_t)k;
		for (uint32_t i = 0; i < n; i++)
			bytes += r->ents[r->n_ents + i].len;
	}
	if (n == 0 && !send_if_empty)
		return false;
	struct raft_msg *m = msg_new(r, RAFT_MSG_APP, pr->id);
	if (!m)
		return false;
	m->log_term = prev_term;
	m->index = prev;
	m->commit = r->commit;
	m->entries = r->ents + r->n_ents;
	m->n_entries = n;
	r->n_ents += n;
	if (pr->state == PR_REPLICATE) {
		if (n > 0) {
			pr->next = prev + n + 1;
			infl_add(r, pr, prev + n, bytes);
		}
	} else {
		pr->probe_sent = true;
	}
	return true;
}

static void send_heartbeat(struct raft *r, struct progress *pr)
{
	struct raft_msg *m = msg_new(r, RAFT_MSG_HEARTBEAT, pr->id);
	if (!m)
		return;
	m->commit = pr->match < r->commit ? pr->match : r->commit;
	/* The last index sent before this heartbeat (replicate only); the
	 * follower echoes it, see the MsgHeartbeatResp case of step_leader. */
	m->index = pr->state == PR_REPLICATE ? pr->next - 1 : 0;
}

static void bcast_append(struct raft *r)
{
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++)
		if (r->prs[i].id)
			send_append(r, &r->prs[i], true);
}

static void bcast_heartbeat(struct raft *r)
{
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++)
		if (r->prs[i].id)
			send_heartbeat(r, &r->prs[i]);
}

static void send_timeout_now(struct raft *r, uint64_t to)
{
	rlog(r, "%llu sends MsgTimeoutNow to %llu immediately as %llu already has up-to-date log",
	     (unsigned long long)r->id, (unsigned long long)to, (unsigned long long)to);
	msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
}

/* ------------------------------------------------------------ role changes */

static void reset_timeout(struct raft *r)
{
	r->randomized_timeout =
	    r->cfg.election_ticks + (uint32_t)ordo_prng_below(&r->prng, r->cfg.election_ticks);
}

static void reset(struct raft *r, uint64_t term)
{
	ORDO_ASSERT(term >= r->term);
	if (term != r->term) {
		r->term = term;
		r->vote = 0;
	}
	r->lead = 0;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_timeout(r);
	r->transferee = 0;
	r->n_votes = 0;
	r->noop_pending = false;
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++)
		r->prs[i].id = 0;
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
	if (r->role == RAFT_LEADER)
		purge_appends(r);
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
	rlog(r, "%llu became follower at term %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term);
}

static void maybe_step_down_removed(struct raft *r);

/* Applies a configuration entry as soon as it is in the log (§4.1). */
static void set_conf(struct raft *r, const struct raft_conf *c, uint64_t index)
{
	char buf[128];
	bool changed = c->n != r->conf.n || memcmp(c->voters, r->conf.voters, c->n * 8) != 0;
	r->conf = *c;
	r->conf_index = index;
	if (changed) {
		conf_str(c, buf, sizeof(buf));
		rlog(r, "%llu switched to configuration voters=%s", (unsigned long long)r->id, buf);
	}
	if (r->role != RAFT_LEADER)
		return;
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++) {
		struct progress *pr = &r->prs[i];
		if (pr->id && !raft_conf_has(c, pr->id)) {
			if (r->transferee == pr->id)
				r->transferee = 0;
			pr->id = 0;
		}
	}
	for (uint32_t i = 0; i < c->n; i++) {
		uint64_t id = c->voters[i];
		if (id == r->id || pr_find(r, id))
			continue;
		for (uint32_t j = 0; j < RAFT_VOTERS_MAX; j++) {
			if (r->prs[j].id == 0) {
				pr_reset(r, &r->prs[j], id);
				r->prs[j].recent_active = true;
				break;
			}
		}
	}
}

/* Appends entries to the tail and applies configuration entries among them.
 * Returns how many fit. */
static uint32_t append_entries(struct raft *r, const struct raft_entry *e, uint32_t n)
{
	uint32_t k = 0;
	for (; k < n; k++) {
		if (!unstable_push(r, e[k].term, e[k].type, e[k].data, e[k].len))
			break;
		struct raft_conf c;
		if (e[k].type == RAFT_ENTRY_CONF && raft_conf_decode(e[k].data, e[k].len, &c) == 0)
			set_conf(r, &c, last_index(r));
	}
	return k;
}

/* §3.6.2: commit only an entry of the current term counted on a majority;
 * the leader counts its own log only as far as it is durable. */
static bool maybe_commit(struct raft *r)
{
	uint64_t m[RAFT_VOTERS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->conf.n; i++) {
		uint64_t id = r->conf.voters[i];
		if (id == r->id) {
			m[n++] = r->stable_index;
		} else {
			struct progress *pr = pr_find(r, id);
			m[n++] = pr ? pr->match : 0;
		}
	}
	if (n == 0)
		return false;
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
			uint64_t t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	uint64_t mci = m[quorum(n) - 1];
	if (mci <= r->commit)
		return false;
	if (term_or_zero(r, mci) != r->term && !ORDO_PLANTED(ORDO_PLANT_OLD_TERM_COMMIT))
		return false;
	commit_to(r, mci);
	return true;
}

static void append_noop(struct raft *r)
{
	if (unstable_push(r, r->term, RAFT_ENTRY_NORMAL, NULL, 0)) {
		r->noop_pending = false;
		bcast_append(r);
	} else {
		r->noop_pending = true;
	}
}

static void become_leader(struct raft *r)
{
	ORDO_ASSERT(r->role == RAFT_CANDIDATE);
	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->lead = r->id;
	uint32_t slot = 0;
	for (uint32_t i = 0; i < r->conf.n; i++) {
		if (r->conf.voters[i] == r->id)
			continue;
		pr_reset(r, &r->prs[slot], r->conf.voters[i]);
		slot++;
	}
	/* Any conf entry in the uncommitted tail counts as pending (§4.1). */
	r->pending_conf_index = last_index(r);
	rlog(r, "%llu became leader at term %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term);
	/* §3.6.2 / §8: a no-op of the new term lets earlier entries commit. */
	append_noop(r);
}

static void poll_vote(struct raft *r, uint64_t id, bool granted, uint32_t *g, uint32_t *rj)
{
	bool seen = false;
	for (uint32_t i = 0; i < r->n_votes; i++)
		seen |= r->vote_ids[i] == id;
	if (!seen && r->n_votes < RAFT_VOTERS_MAX && raft_conf_has(&r->conf, id)) {
		r->vote_ids[r->n_votes] = id;
		r->vote_res[r->n_votes] = granted ? 1 : -1;
		r->n_votes++;
	}
	*g = *rj = 0;
	for (uint32_t i = 0; i < r->n_votes; i++) {
		if (r->vote_res[i] > 0)
			(*g)++;
		else
			(*rj)++;
	}
}

static void campaign(struct raft *r, enum campaign_kind kind);

static void election_won(struct raft *r)
{
	if (r->role == RAFT_PRE_CANDIDATE)
		campaign(r, CAMPAIGN_ELECTION);
	else
		become_leader(r);
}

/* §3.4 election, preceded by a PreVote round (§9.6) unless transferring. */
static void campaign(struct raft *r, enum campaign_kind kind)
{
	if (!promotable(r)) {
		rlog(r, "%llu is unpromotable and can not campaign", (unsigned long long)r->id);
		return;
	}
	uint64_t vterm;
	uint8_t type;
	if (kind == CAMPAIGN_PRE) {
		if (r->role == RAFT_LEADER)
			purge_appends(r);
		reset(r, r->term);
		r->role = RAFT_PRE_CANDIDATE;
		vterm = r->term + 1;
		type = RAFT_MSG_PREVOTE;
		rlog(r, "%llu became pre-candidate at term %llu", (unsigned long long)r->id,
		     (unsigned long long)r->term);
	} else {
		if (r->role == RAFT_LEADER)
			purge_appends(r);
		reset(r, r->term + 1);
		r->role = RAFT_CANDIDATE;
		r->vote = r->id;
		vterm = r->term;
		type = RAFT_MSG_VOTE;
		rlog(r, "%llu became candidate at term %llu", (unsigned long long)r->id,
		     (unsigned long long)r->term);
	}
	uint32_t g, rj;
	poll_vote(r, r->id, true, &g, &rj);
	if (g >= quorum(r->conf.n)) {
		election_won(r);
		return;
	}
	uint64_t li = last_index(r), lt = last_term(r);
	for (uint32_t i = 0; i < r->conf.n; i++) {
		uint64_t id = r->conf.voters[i];
		if (id == r->id)
			continue;
		rlog(r, "%llu [logterm: %llu, index: %llu] sent %s request to %llu at term %llu",
		     (unsigned long long)r->id, (unsigned long long)lt, (unsigned long long)li,
		     raft_msg_type_name(type), (unsigned long long)id, (unsigned long long)vterm);
		struct raft_msg *m = msg_new(r, type, id);
		if (!m)
			continue;
		m->term = vterm;
		m->index = li;
		m->log_term = lt;
		m->force = kind == CAMPAIGN_TRANSFER;
	}
}

/* §4.2.2: a leader that is not in the committed configuration steps down. */
static void maybe_step_down_removed(struct raft *r)
{
	if (r->role != RAFT_LEADER || raft_conf_has(&r->conf, r->id) || r->conf_index > r->commit)
		return;
	rlog(r, "%llu is not in the committed configuration and steps down",
	     (unsigned long long)r->id);
	/* Tell the others the commit index before leaving (appends are purged). */
	purge_appends(r);
	bcast_heartbeat(r);
	r->role = RAFT_FOLLOWER;
	reset(r, r->term);
	rlog(r, "%llu became follower at term %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term);
}

/* Leader: a commit advanced; tell everyone. */
static void after_commit(struct raft *r)
{
	bcast_append(r);
	maybe_step_down_removed(r);
}

/* ------------------------------------------------------------ follower side */

static void handle_append(struct raft *r, const struct raft_msg *m)
{
	if (m->index < r->commit) {
		struct raft_msg *o = msg_new(r, RAFT_MSG_APP_RESP, m->from);
		if (o)
			o->index = r->commit;
		return;
	}
	uint64_t t;
	if (term_at(r, m->index, &t) == 0 && t == m->log_term) {
		uint32_t i = 0;
		for (; i < m->n_entries; i++) {
			uint64_t et;
			if (term_at(r, m->index + 1 + i, &et) != 0 || et != m->entries[i].term)
				break;
		}
		uint32_t k = 0;
		if (i < m->n_entries) {
			uint64_t ci = m->index + 1 + i;
			if (ci <= last_index(r)) {
				ORDO_ASSERT(ci > r->commit);
				rlog(r, "%llu truncates its log from index %llu (conflict)",
				     (unsigned long long)r->id, (unsigned long long)ci);
				truncate_from(r, ci);
			}
			k = append_entries(r, m->entries + i, m->n_entries - i);
		}
		uint64_t lastnew = m->index + i + k;
		commit_to(r, m->commit < lastnew ? m->commit : lastnew);
		struct raft_msg *o = msg_new(r, RAFT_MSG_APP_RESP, m->from);
		if (o)
			o->index = lastnew;
		return;
	}
	uint64_t hint_term;
	uint64_t hi = m->index < last_index(r) ? m->index : last_index(r);
	hi = conflict_by_term(r, hi, m->log_term, &hint_term);
	rlog(r,
	     "%llu [logterm: %llu, index: %llu] rejected MsgApp [logterm: %llu, index: %llu] from "
	     "%llu",
	     (unsigned long long)r->id, (unsigned long long)term_or_zero(r, m->index),
	     (unsigned long long)m->index, (unsigned long long)m->log_term,
	     (unsigned long long)m->index, (unsigned long long)m->from);
	struct raft_msg *o = msg_new(r, RAFT_MSG_APP_RESP, m->from);
	if (o) {
		o->index = m->index;
		o->reject = true;
		o->reject_hint = hi;
		o->log_term = hint_term;
	}
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	uint64_t c = m->commit < last_index(r) ? m->commit : last_index(r);
	commit_to(r, c);
	struct raft_msg *o = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
	if (o)
		o->index = m->index; /* echoed: what the leader had sent before */
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	const struct raft_snapshot_meta *s = &m->snap;
	struct raft_msg *o;
	if (s->index <= r->commit) {
		rlog(r, "%llu [commit: %llu] ignored snapshot [index: %llu, term: %llu]",
		     (unsigned long long)r->id, (unsigned long long)r->commit,
		     (unsigned long long)s->index, (unsigned long long)s->term);
		o = msg_new(r, RAFT_MSG_APP_RESP, m->from);
		if (o)
			o->index = r->commit;
		return;
	}
	uint64_t t;
	if (term_at(r, s->index, &t) == 0 && t == s->term) {
		/* §5.1: the log already holds the snapshot's last entry. */
		rlog(r,
		     "%llu [commit: %llu] fast-forwarded commit to snapshot [index: %llu, term: "
		     "%llu]",
		     (unsigned long long)r->id, (unsigned long long)r->commit,
		     (unsigned long long)s->index, (unsigned long long)s->term);
		commit_to(r, s->index);
		o = msg_new(r, RAFT_MSG_APP_RESP, m->from);
		if (o)
			o->index = s->index;
		return;
	}
	rlog(r, "%llu [commit: %llu] restored snapshot [index: %llu, term: %llu]",
	     (unsigned long long)r->id, (unsigned long long)r->commit, (unsigned long long)s->index,
	     (unsigned long long)s->term);
	/* Discard the whole log; the snapshot replaces it. */
	r->u_n = 0;
	r->u_off = s->index + 1;
	r->u_handed = r->u_off;
	r->a_head = r->a_tail = 0;
	r->a_wrapped = false;
	if (r->stable_index > s->index)
		r->stable_index = s->index;
	r->snap_pending = true;
	r->snap_handed = false;
	r->snap.meta = *s;
	r->snap.data = m->snap_data;
	r->snap.len = m->snap_len;
	r->commit = s->index;
	set_conf(r, &s->conf, s->index);
	o = msg_new(r, RAFT_MSG_SNAP_RESP, m->from);
	if (o)
		o->index = s->index;
}

/* ------------------------------------------------------------ leader side */

static void leader_app_resp(struct raft *r, const struct raft_msg *m, struct progress *pr)
{
	if (m->reject) {
		rlog(r,
		     "%llu received MsgAppResp(rejected, hint: (index %llu, term %llu)) from %llu "
		     "for index %llu",
		     (unsigned long long)r->id, (unsigned long long)m->reject_hint,
		     (unsigned long long)m->log_term, (unsigned long long)m->from,
		     (unsigned long long)m->index);
		uint64_t next_probe = m->reject_hint;
		if (m->log_term > 0) {
			uint64_t unused;
			next_probe = conflict_by_term(r, m->reject_hint, m->log_term, &unused);
		}
		if (pr_maybe_decr(pr, m->index, next_probe)) {
			if (pr->state == PR_REPLICATE)
				pr_become_probe(pr);
			send_append(r, pr, false);
		}
		return;
	}
	bool was_paused = pr_paused(r, pr);
	if (pr_maybe_update(pr, m->index)) {
		if (pr->state == PR_PROBE) {
			pr_become_replicate(pr);
		} else if (pr->state == PR_SNAPSHOT && pr->match >= pr->pending_snapshot) {
			pr_become_probe(pr);
			pr_become_replicate(pr);
		} else if (pr->state == PR_REPLICATE) {
			infl_free_le(r, pr, m->index);
		}
		if (maybe_commit(r)) {
			after_commit(r);
			if (r->role != RAFT_LEADER)
				return;
		} else {
			/* Pipeline: fill the window now that it has room; a
			 * follower that was paused also learns the commit. */
			bool sent = false;
			while (send_append(r, pr, false))
				sent = true;
			if (!sent && was_paused)
				send_append(r, pr, true);
		}
		if (m->from == r->transferee && pr->match == last_index(r)) {
			rlog(r, "%llu sent MsgTimeoutNow to %llu after received MsgAppResp",
			     (unsigned long long)r->id, (unsigned long long)m->from);
			msg_new(r, RAFT_MSG_TIMEOUT_NOW, m->from);
		}
	}
}

static void step_leader(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = pr_find(r, m->from);
	if (!pr)
		return;
	/* Review fix: a follower can only hold what this leader sent; an ack
	 * beyond our last index would set match (and next) past the log. */
	if ((m->type == RAFT_MSG_APP_RESP || m->type == RAFT_MSG_SNAP_RESP) && !m->reject &&
	    m->index > last_index(r))
		return;
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
	case RAFT_MSG_SNAP_RESP:
		pr->recent_active = true;
		leader_app_resp(r, m, pr);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		pr->recent_active = true;
		pr->probe_sent = false;
		if (pr->state == PR_REPLICATE && pr_paused(r, pr) && pr->infl_count > 0) {
			/* A lost append would otherwise stall the pipeline. */
			pr->infl_total_bytes -= pr->infl_bytes[pr->infl_start];
			pr->infl_start = (pr->infl_start + 1) % r->cfg.max_inflight_msgs;
			pr->infl_count--;
		}
		if (pr->state == PR_REPLICATE && m->index > pr->match) {
			/* The appends through m->index went out before this
			 * heartbeat, and the follower answers in order, so
			 * their acknowledgements would have come first: they
			 * (or the acks) were lost. Resend from match (a false
			 * alarm, e.g. reordering, only costs a resend).
			 * Review fix: this compared match with its value when
			 * the latest heartbeat was sent, so any append sent
			 * after that heartbeat (ordinary traffic while the
			 * heartbeat was in flight) was taken as lost: a fall
			 * back to probe, the pipeline drained and resent. */
			pr_become_probe(pr);
		}
		if (pr->match < last_index(r) || pr->state == PR_PROBE)
			send_append(r, pr, false);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ step */

static void step_vote(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	uint8_t rtype = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	bool can_vote =
	    r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
	if (can_vote && log_up_to_date(r, m->log_term, m->index)) {
		rlog(r,
		     "%llu [logterm: %llu, index: %llu, vote: %llu] cast %s for %llu [logterm: "
		     "%llu, "
		     "index: %llu] at term %llu",
		     (unsigned long long)r->id, (unsigned long long)last_term(r),
		     (unsigned long long)last_index(r), (unsigned long long)r->vote,
		     raft_msg_type_name(m->type), (unsigned long long)m->from,
		     (unsigned long long)m->log_term, (unsigned long long)m->index,
		     (unsigned long long)r->term);
		send_resp(r, rtype, m->from, m->term, false);
		if (!pre) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	} else {
		rlog(
		    r,
		    "%llu [logterm: %llu, index: %llu, vote: %llu] rejected %s from %llu [logterm: "
		    "%llu, index: %llu] at term %llu",
		    (unsigned long long)r->id, (unsigned long long)last_term(r),
		    (unsigned long long)last_index(r), (unsigned long long)r->vote,
		    raft_msg_type_name(m->type), (unsigned long long)m->from,
		    (unsigned long long)m->log_term, (unsigned long long)m->index,
		    (unsigned long long)r->term);
		send_resp(r, rtype, m->from, r->term, true);
	}
}

/*
 * Largest term or index a peer may send. Review fix: a term of UINT64_MAX was
 * accepted, and the next campaign's term + 1 wrapped to 0 (ORDO_ASSERT in
 * reset()); a snapshot index of UINT64_MAX made u_off wrap to 0, so
 * last_index() read as UINT64_MAX and term_at() indexed u_ents out of bounds.
 * 2^62 leaves room for every "+ 1" the core does and is never reached.
 */
#define RAFT_WIRE_MAX (UINT64_C(1) << 62)

static bool msg_valid(const struct raft *r, const struct raft_msg *m)
{
	if (m->type < RAFT_MSG_TYPE_MIN || m->type > RAFT_MSG_TYPE_MAX)
		return false;
	if (m->term >= RAFT_WIRE_MAX || m->log_term >= RAFT_WIRE_MAX || m->index >= RAFT_WIRE_MAX ||
	    m->commit >= RAFT_WIRE_MAX || m->reject_hint >= RAFT_WIRE_MAX ||
	    m->n_entries >= RAFT_WIRE_MAX - m->index || m->snap.index >= RAFT_WIRE_MAX ||
	    m->snap.term >= RAFT_WIRE_MAX)
		return false;
	if (m->to != r->id || m->from == 0 || m->from == r->id || m->term == 0)
		return false;
	if (m->type != RAFT_MSG_APP && m->n_entries != 0)
		return false;
	if (m->n_entries > 0 && !m->entries)
		return false;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->index != m->index + 1 + i || e->term == 0 || e->term > m->term ||
		    e->term < (i ? m->entries[i - 1].term : m->log_term) ||
		    e->len > r->cfg.max_entry_bytes || (e->len && !e->data) ||
		    e->type > RAFT_ENTRY_CONF)
			return false;
	}
	if (m->type == RAFT_MSG_SNAP) {
		if (m->snap.index == 0 || m->snap.term == 0 || m->snap.term > m->term ||
		    m->snap.conf.n == 0 || m->snap.conf.n > RAFT_VOTERS_MAX ||
		    (m->snap_len && !m->snap_data))
			return false;
		/* Review fix: the conf is installed as is (set_conf); hold it
		 * to raft_conf_decode()'s rules (ids nonzero, ascending). */
		for (uint32_t i = 0; i < m->snap.conf.n; i++)
			if (m->snap.conf.voters[i] == 0 ||
			    (i > 0 && m->snap.conf.voters[i] <= m->snap.conf.voters[i - 1]))
				return false;
	}
	return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	ORDO_ASSERT(!r->outstanding);
	if (!msg_valid(r, m))
		return -EINVAL;
	uint64_t old_term = r->term, old_commit = r->commit;
	bool is_vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;

	if (m->term > r->term) {
		if (is_vote_req) {
			/* §6 / etcd: leader stickiness. A node that heard from a
			 * leader within the election timeout disregards requests. */
			bool in_lease = r->lead != 0 && r->election_elapsed < r->cfg.election_ticks;
			if (in_lease && !m->force) {
				rlog(r,
				     "%llu [logterm: %llu, index: %llu, vote: %llu] ignored %s "
				     "from %llu "
				     "[logterm: %llu, index: %llu] at term %llu: lease is not "
				     "expired",
				     (unsigned long long)r->id, (unsigned long long)last_term(r),
				     (unsigned long long)last_index(r), (unsigned long long)r->vote,
				     raft_msg_type_name(m->type), (unsigned long long)m->from,
				     (unsigned long long)m->log_term, (unsigned long long)m->index,
				     (unsigned long long)r->term);
				return 0;
			}
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			/* never change term on a PreVote */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* a grant carries the future term we proposed */
		} else {
			rlog(r,
			     "%llu [term: %llu] received a %s message with higher term from %llu "
			     "[term: %llu]",
			     (unsigned long long)r->id, (unsigned long long)r->term,
			     raft_msg_type_name(m->type), (unsigned long long)m->from,
			     (unsigned long long)m->term);
			bool from_leader = m->type == RAFT_MSG_APP ||
					   m->type == RAFT_MSG_HEARTBEAT ||
					   m->type == RAFT_MSG_SNAP;
			become_follower(r, m->term, from_leader ? m->from : 0);
		}
	} else if (m->term < r->term) {
		if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT) {
			/* A stale leader (cut off, then healed) learns our term
			 * and steps down (CheckQuorum + PreVote, etcd). */
			msg_new(r, RAFT_MSG_APP_RESP, m->from);
		} else if (m->type == RAFT_MSG_PREVOTE) {
			rlog(r, "%llu [term: %llu] rejected %s from %llu [term: %llu]",
			     (unsigned long long)r->id, (unsigned long long)r->term,
			     raft_msg_type_name(m->type), (unsigned long long)m->from,
			     (unsigned long long)m->term);
			send_resp(r, RAFT_MSG_PREVOTE_RESP, m->from, r->term, true);
		}
		return 0;
	}

	if (is_vote_req) {
		step_vote(r, m);
	} else {
		switch (r->role) {
		case RAFT_LEADER:
			step_leader(r, m);
			break;
		case RAFT_PRE_CANDIDATE:
		case RAFT_CANDIDATE: {
			uint8_t want = r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PREVOTE_RESP
								     : RAFT_MSG_VOTE_RESP;
			if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
			    m->type == RAFT_MSG_SNAP) {
				become_follower(r, m->term, m->from);
				/* fall into follower handling below */
				r->election_elapsed = 0;
				if (m->type == RAFT_MSG_APP)
					handle_append(r, m);
				else if (m->type == RAFT_MSG_HEARTBEAT)
					handle_heartbeat(r, m);
				else
					handle_snapshot(r, m);
			} else if (m->type == want && !(r->role == RAFT_PRE_CANDIDATE &&
							!m->reject && m->term != r->term + 1)) {
				/* Review fix: a pre-candidate counts only grants
				 * for the term it polls for (a delayed grant from
				 * an earlier poll carries that poll's term). */
				uint32_t g, rj;
				poll_vote(r, m->from, !m->reject, &g, &rj);
				rlog(r, "%llu has received %u %s votes and %u vote rejections",
				     (unsigned long long)r->id, g, raft_msg_type_name(m->type), rj);
				if (g >= quorum(r->conf.n))
					election_won(r);
				else if (rj >= quorum(r->conf.n))
					become_follower(r, r->term, 0);
			}
			break;
		}
		case RAFT_FOLLOWER:
			switch (m->type) {
			case RAFT_MSG_APP:
				r->election_elapsed = 0;
				r->lead = m->from;
				handle_append(r, m);
				break;
			case RAFT_MSG_HEARTBEAT:
				r->election_elapsed = 0;
				r->lead = m->from;
				handle_heartbeat(r, m);
				break;
			case RAFT_MSG_SNAP:
				r->election_elapsed = 0;
				r->lead = m->from;
				handle_snapshot(r, m);
				break;
			case RAFT_MSG_TIMEOUT_NOW:
				rlog(r,
				     "%llu [term %llu] received MsgTimeoutNow from %llu and starts "
				     "an election to get leadership",
				     (unsigned long long)r->id, (unsigned long long)r->term,
				     (unsigned long long)m->from);
				campaign(r, CAMPAIGN_TRANSFER);
				break;
			default:
				break;
			}
			break;
		}
	}
	ORDO_ASSERT(r->term >= old_term);
	ORDO_ASSERT(r->commit >= old_commit);
	return 0;
}

/* ------------------------------------------------------------ local inputs */

void raft_tick(struct raft *r)
{
	ORDO_ASSERT(!r->outstanding);
	if (r->role != RAFT_LEADER) {
		r->election_elapsed++;
		if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
			r->election_elapsed = 0;
			campaign(r, CAMPAIGN_PRE);
		}
		return;
	}
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->noop_pending)
		append_noop(r);
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++) {
		struct progress *pr = &r->prs[i];
		if (pr->id && pr->state == PR_SNAPSHOT &&
		    ++pr->snapshot_ticks >= r->cfg.election_ticks) {
			/* The snapshot or its answer was lost: probe again. */
			pr_become_probe(pr);
			pr->next = pr->match + 1;
		}
	}
	if (r->election_elapsed >= r->cfg.election_ticks) {
		r->election_elapsed = 0;
		/* §6.2 CheckQuorum. */
		uint32_t active = 0;
		for (uint32_t i = 0; i < r->conf.n; i++) {
			uint64_t id = r->conf.voters[i];
			struct progress *pr = pr_find(r, id);
			if (id == r->id || (pr && pr->recent_active))
				active++;
		}
		for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++)
			r->prs[i].recent_active = false;
		if (active < quorum(r->conf.n)) {
			rlog(r, "%llu stepped down to follower since quorum is not active",
			     (unsigned long long)r->id);
			become_follower(r, r->term, 0);
			return;
		}
		if (r->transferee) {
			rlog(r, "%llu aborted leadership transfer to %llu: timed out",
			     (unsigned long long)r->id, (unsigned long long)r->transferee);
			r->transferee = 0;
		}
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r);
	}
}

void raft_campaign(struct raft *r)
{
	ORDO_ASSERT(!r->outstanding);
	if (r->role == RAFT_LEADER) {
		rlog(r, "%llu ignoring campaign: already leader", (unsigned long long)r->id);
		return;
	}
	rlog(r, "%llu is starting a new election at term %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term);
	campaign(r, CAMPAIGN_PRE);
}

static int leader_append(struct raft *r, uint8_t type, const void *data, uint32_t len,
			 uint64_t *index, uint64_t *leader_hint)
{
	ORDO_ASSERT(!r->outstanding);
	if (leader_hint)
		*leader_hint = r->lead;
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (r->transferee) {
		rlog(r,
		     "%llu [term %llu] transfer leadership to %llu is in progress; dropping "
		     "proposal",
		     (unsigned long long)r->id, (unsigned long long)r->term,
		     (unsigned long long)r->transferee);
		return -EBUSY;
	}
	if (len > r->cfg.max_entry_bytes)
		return -EMSGSIZE;
	if (!unstable_push(r, r->term, type, data, len))
		return -ENOBUFS;
	if (index)
		*index = last_index(r);
	bcast_append(r);
	return 0;
}

int raft_propose(struct raft *r, const void *data, uint32_t len, uint64_t *index,
		 uint64_t *leader_hint)
{
	return leader_append(r, RAFT_ENTRY_NORMAL, data, len, index, leader_hint);
}

static int change_conf(struct raft *r, uint64_t id, bool add, uint64_t *index)
{
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (id == 0)
		return -EINVAL;
	if (r->pending_conf_index > r->commit) {
		rlog(r, "%llu ignoring conf change: another is pending at index %llu",
		     (unsigned long long)r->id, (unsigned long long)r->pending_conf_index);
		return -EBUSY;
	}
	struct raft_conf c = {0};
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->conf.voters[i] != id)
			c.voters[c.n++] = r->conf.voters[i];
	if (add) {
		if (c.n != r->conf.n)
			return -EEXIST;
		if (c.n == RAFT_VOTERS_MAX)
			return -ENOSPC;
		uint32_t j = c.n++;
		while (j > 0 && c.voters[j - 1] > id) {
			c.voters[j] = c.voters[j - 1];
			j--;
		}
		c.voters[j] = id;
	} else {
		if (c.n == r->conf.n)
			return -ENOENT;
		if (c.n == 0)
			return -EINVAL;
	}
	if (r->transferee)
		return -EBUSY;
	uint8_t buf[RAFT_CONF_BYTES_MAX];
	uint32_t len = raft_conf_encode(&c, buf);
	if (!unstable_push(r, r->term, RAFT_ENTRY_CONF, buf, len))
		return -ENOBUFS;
	uint64_t idx = last_index(r);
	r->pending_conf_index = idx;
	/* Effective as soon as appended (§4.1), for this entry too. */
	set_conf(r, &c, idx);
	bcast_append(r);
	if (maybe_commit(r))
		after_commit(r);
	if (index)
		*index = idx;
	return 0;
}

int raft_add_node(struct raft *r, uint64_t id, uint64_t *index)
{
	ORDO_ASSERT(!r->outstanding);
	return change_conf(r, id, true, index);
}

int raft_remove_node(struct raft *r, uint64_t id, uint64_t *index)
{
	ORDO_ASSERT(!r->outstanding);
	return change_conf(r, id, false, index);
}

int raft_transfer_leadership(struct raft *r, uint64_t to)
{
	ORDO_ASSERT(!r->outstanding);
	if (r->role != RAFT_LEADER)
		return -EPERM;
	struct progress *pr = pr_find(r, to);
	if (to == r->id || !pr || !raft_conf_has(&r->conf, to))
		return -EINVAL;
	if (r->transferee == to)
		return 0;
	rlog(r, "%llu [term %llu] starts to transfer leadership to %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term, (unsigned long long)to);
	r->transferee = to;
	r->election_elapsed = 0; /* abort after one election timeout */
	if (pr->match == last_index(r))
		send_timeout_now(r, to);
	else
		send_append(r, pr, false);
	return 0;
}

static void persisted_effects(struct raft *r)
{
	r->persist_dirty = false;
	if (r->role == RAFT_LEADER && maybe_commit(r))
		after_commit(r);
}

void raft_persisted(struct raft *r, uint64_t term, uint64_t index)
{
	uint64_t t;
	if (index <= r->stable_index || index > last_index(r))
		return;
	if (term_at(r, index, &t) != 0 || t != term)
		return; /* superseded by a truncation */
	if (index >= r->u_handed && !(r->outstanding && index <= r->handed_last))
		return; /* never handed out for writing: cannot be durable */
	r->stable_index = index;
	if (r->outstanding)
		r->persist_dirty = true;
	else
		persisted_effects(r);
}

void raft_snapshot_applied(struct raft *r, uint64_t index)
{
	if (!r->snap_pending || r->snap.meta.index != index || !r->snap_handed)
		return;
	r->snap_pending = false;
	if (r->stable_index < index)
		r->stable_index = index;
}

int raft_compact(struct raft *r, uint64_t index)
{
	if (index > r->applied || index > r->stable_index)
		return -EINVAL;
	rlog(r, "%llu compacts its log through index %llu", (unsigned long long)r->id,
	     (unsigned long long)index);
	return 0;
}

/* ------------------------------------------------------------ updates */

static uint64_t apply_limit(const struct raft *r)
{
	if (r->snap_pending)
		return r->applied;
	uint64_t lim = r->commit < r->stable_index ? r->commit : r->stable_index;
	return lim > r->applied ? lim : r->applied;
}

bool raft_has_update(const struct raft *r)
{
	if (r->outstanding)
		return false;
	if (r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
	    r->commit != r->prev_hs.commit)
		return true;
	if (r->role != r->prev_role || r->lead != r->prev_lead)
		return true;
	if (r->u_handed <= last_index(r) && r->u_n > 0)
		return true;
	if (r->snap_pending && !r->snap_handed)
		return true;
	if (r->n_msgs > 0)
		return true;
	return apply_limit(r) > r->applied;
}

void raft_ready(struct raft *r, struct raft_update *u)
{
	ORDO_ASSERT(!r->outstanding);
	memset(u, 0, sizeof(*u));
	struct raft_hard_state hs = {r->term, r->vote, r->commit};
	if (hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
	    hs.commit != r->prev_hs.commit) {
		u->has_hard_state = true;
		u->hard_state = hs;
		if (hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote)
			u->must_sync = true;
	}
	if (r->role != r->prev_role || r->lead != r->prev_lead) {
		u->has_soft_state = true;
	}
	u->role = r->role;
	u->lead = r->lead;
	r->handed_last = 0;
	if (r->u_n > 0 && r->u_handed <= last_index(r)) {
		if (r->u_handed < r->u_off)
			r->u_handed = r->u_off;
		u->entries = &r->u_ents[r->u_handed - r->u_off];
		u->n_entries = (uint32_t)(last_index(r) + 1 - r->u_handed);
		r->handed_last = last_index(r);
		u->must_sync = true;
	}
	r->handed_snap = 0;
	if (r->snap_pending && !r->snap_handed) {
		r->snap_out = r->snap;
		u->snapshot = &r->snap_out;
		r->snap_handed = true;
		r->handed_snap = r->snap.meta.index;
		u->must_sync = true;
	}
	r->handed_applied = 0;
	uint64_t lim = apply_limit(r);
	if (lim > r->applied && r->n_ents < r->ents_cap) {
		uint32_t room = r->ents_cap - r->n_ents;
		if (room > r->cfg.max_apply_entries)
			room = r->cfg.max_apply_entries;
		int k = read_entries(r, r->applied + 1, lim + 1, r->cfg.max_apply_bytes,
				     r->ents + r->n_ents, room);
		ORDO_ASSERT(k > 0);
		u->committed = r->ents + r->n_ents;
		u->n_committed = (uint32_t)k;
		r->n_ents += (uint32_t)k;
		r->handed_applied = r->applied + (uint64_t)k;
		ORDO_ASSERT(r->handed_applied <= r->commit);
	}
	u->msgs = r->msgs;
	u->n_msgs = r->n_msgs;
	/* Thesis §10.2.1: a leader may send its appends while it writes them
	 * itself; it counts its own log only from raft_persisted(). Only when
	 * nothing it says depends on state this update makes durable: the same
	 * term and vote (a reply in a new term must follow the term's write),
	 * no change of role or leader, no snapshot. */
	u->msgs_first = r->role == RAFT_LEADER && !u->has_soft_state && !u->snapshot &&
			hs.term == r->prev_hs.term && hs.vote == r->prev_hs.vote;
	r->outstanding = true;
}

void raft_advance(struct raft *r, const struct raft_update *u)
{
	ORDO_ASSERT(r->outstanding);
	if (u->has_hard_state)
		r->prev_hs = u->hard_state;
	r->prev_role = u->role;
	r->prev_lead = u->lead;
	if (r->handed_last)
		r->u_handed = r->handed_last + 1;
	if (r->handed_snap) {
		/* The driver installed it: raft_snapshot_applied() came first. */
		ORDO_ASSERT(!r->snap_pending || r->snap.meta.index != r->handed_snap);
		if (r->applied < r->handed_snap)
			r->applied = r->handed_snap;
	}
	if (r->handed_applied > r->applied)
		r->applied = r->handed_applied;
	r->n_msgs = 0;
	r->n_ents = 0;
	r->outstanding = false;
	unstable_release(r);
	if (r->persist_dirty)
		persisted_effects(r);
}

/* ------------------------------------------------------------ lifecycle */

void raft_config_defaults(struct raft_config *c)
{
	c->election_ticks = 10;
	c->heartbeat_ticks = 1;
	c->max_msg_entries = 64;
	c->max_msg_bytes = 1u << 20;
	c->max_inflight_msgs = 32;
	c->max_inflight_bytes = 16u << 20;
	c->max_unstable_entries = 1024;
	c->max_unstable_bytes = 64u << 20;
	c->max_entry_bytes = 16u << 20;
	c->max_apply_entries = 256;
	c->max_apply_bytes = 64u << 20;
}

int raft_new(const struct raft_config *cfg, struct raft **out)
{
	if (cfg->id == 0 || cfg->election_ticks == 0 || cfg->heartbeat_ticks == 0 ||
	    cfg->heartbeat_ticks >= cfg->election_ticks || cfg->max_msg_entries == 0 ||
	    cfg->max_inflight_msgs == 0 || cfg->max_unstable_entries == 0 ||
	    cfg->max_unstable_bytes < cfg->max_entry_bytes || cfg->max_apply_entries == 0 ||
	    !cfg->log)
		return -EINVAL;
	struct raft *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->id = cfg->id;
	r->msgs_cap = RAFT_VOTERS_MAX * (cfg->max_inflight_msgs + 4) + 16;
	r->ents_cap = r->msgs_cap * cfg->max_msg_entries + cfg->max_apply_entries;
	r->msgs = calloc(r->msgs_cap, sizeof(*r->msgs));
	r->ents = calloc(r->ents_cap, sizeof(*r->ents));
	r->u_ents = calloc(cfg->max_unstable_entries, sizeof(*r->u_ents));
	r->arena = malloc(cfg->max_unstable_bytes ? cfg->max_unstable_bytes : 1);
	bool ok = r->msgs && r->ents && r->u_ents && r->arena;
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX && ok; i++) {
		r->prs[i].infl_index = calloc(cfg->max_inflight_msgs, sizeof(uint64_t));
		r->prs[i].infl_bytes = calloc(cfg->max_inflight_msgs, sizeof(uint64_t));
		ok = r->prs[i].infl_index && r->prs[i].infl_bytes;
	}
	if (!ok) {
		raft_free(r);
		return -ENOMEM;
	}
	ordo_prng_seed(&r->prng, cfg->prng_seed ^ (cfg->id * 0x9E3779B97F4A7C15ull));

	const struct raft_log_ops *log = cfg->log;
	struct raft_snapshot_meta meta;
	log->snapshot_meta(cfg->log_ctx, &meta);
	uint64_t last = log->last_index(cfg->log_ctx);
	uint64_t first = log->first_index(cfg->log_ctx);
	r->u_off = last + 1;
	r->u_handed = r->u_off;
	r->stable_index = last;
	r->term = cfg->hard_state.term;
	r->vote = cfg->hard_state.vote;
	r->commit = cfg->hard_state.commit;
	if (r->commit < meta.index)
		r->commit = meta.index;
	r->applied = cfg->applied > meta.index ? cfg->applied : meta.index;
	uint64_t lt;
	if (first != meta.index + 1 || last < meta.index || r->commit > last ||
	    r->applied > r->commit || log->term_at(cfg->log_ctx, last, &lt) != 0 || lt > r->term) {
		raft_free(r);
		return -EINVAL;
	}
	r->prev_hs = (struct raft_hard_state){r->term, r->vote, r->commit};
	r->role = RAFT_FOLLOWER;
	r->prev_role = RAFT_FOLLOWER;
	reset_timeout(r);
	rescan_conf(r, last);
	char buf[128];
	conf_str(&r->conf, buf, sizeof(buf));
	rlog(r, "%llu became follower at term %llu", (unsigned long long)r->id,
	     (unsigned long long)r->term);
	rlog(r,
	     "newRaft %llu [peers: %s, term: %llu, commit: %llu, applied: %llu, lastindex: %llu, "
	     "lastterm: %llu]",
	     (unsigned long long)r->id, buf, (unsigned long long)r->term,
	     (unsigned long long)r->commit, (unsigned long long)r->applied,
	     (unsigned long long)last, (unsigned long long)lt);
	*out = r;
	return 0;
}

void raft_free(struct raft *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++) {
		free(r->prs[i].infl_index);
		free(r->prs[i].infl_bytes);
	}
	free(r->msgs);
	free(r->ents);
	free(r->u_ents);
	free(r->arena);
	free(r);
}

int raft_log_term(const struct raft *r, uint64_t index, uint64_t *term)
{
	return term_at(r, index, term);
}

uint64_t raft_leader(const struct raft *r)
{
	return r->lead;
}

void raft_get_status(const struct raft *r, struct raft_status *s)
{
	memset(s, 0, sizeof(*s));
	s->id = r->id;
	s->role = r->role;
	s->term = r->term;
	s->vote = r->vote;
	s->lead = r->lead;
	s->commit = r->commit;
	s->applied = r->applied;
	s->first_index = first_index(r);
	s->last_index = last_index(r);
	s->last_term = last_term(r);
	s->stable_index = r->stable_index;
	s->transferee = r->transferee;
	s->conf = r->conf;
	s->conf_index = r->conf_index;
	if (r->role != RAFT_LEADER)
		return;
	for (uint32_t i = 0; i < RAFT_VOTERS_MAX; i++) {
		const struct progress *pr = &r->prs[i];
		if (!pr->id)
			continue;
		struct raft_progress_status *p = &s->progress[s->n_progress++];
		p->id = pr->id;
		p->match = pr->match;
		p->next = pr->next;
		p->state = pr->state;
		p->inflight_msgs = pr->infl_count;
		p->recent_active = pr->recent_active;
	}
}
