/*
 * The in-process cluster behind the Raft transcript and safety tests (see
 * harness.h). Each node's update is handled in the order raft.h prescribes:
 * snapshot, entries and hard state made "durable" in its memlog, then
 * raft_persisted(), then messages handed to the network, then committed
 * entries applied, then raft_advance(). A crash throws away the core (and
 * with it everything not yet handled) and keeps the memlog.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "out of memory\n");
		abort();
	}
	return q;
}

void h_printf(struct cluster *c, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (c->out_len + (size_t)n + 1 > c->out_cap) {
		c->out_cap = (c->out_cap + (size_t)n + 1) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, line, (size_t)n);
	c->out_len += (size_t)n;
	c->out[c->out_len] = 0;
}

/* ---------------------------------------------------------------- memlog */

uint64_t memlog_last(const struct memlog *l)
{
	return l->snap.index + l->n;
}

int memlog_term(const struct memlog *l, uint64_t i, uint64_t *t)
{
	if (i == l->snap.index) {
		*t = l->snap.term;
		return 0;
	}
	if (i < l->snap.index || i > memlog_last(l))
		return -ENOENT;
	*t = l->ents[i - l->snap.index - 1].term;
	return 0;
}

static uint64_t ml_first(void *ctx)
{
	struct h_node *n = ctx;
	return n->log.snap.index + 1;
}

static uint64_t ml_last(void *ctx)
{
	struct h_node *n = ctx;
	return memlog_last(&n->log);
}

static int ml_term(void *ctx, uint64_t i, uint64_t *t)
{
	struct h_node *n = ctx;
	return memlog_term(&n->log, i, t);
}

static int ml_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		      struct raft_entry *out, uint32_t max_n)
{
	struct h_node *n = ctx;
	struct memlog *l = &n->log;
	if (lo <= l->snap.index)
		return -ENOENT;
	if (hi > memlog_last(l) + 1 || lo >= hi)
		abort();
	uint32_t k = 0;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi && k < max_n; i++) {
		const struct raft_entry *e = &l->ents[i - l->snap.index - 1];
		if (k > 0 && bytes + e->len > max_bytes)
			break;
		out[k++] = *e;
		bytes += e->len;
	}
	return (int)k;
}

static void ml_snapshot_meta(void *ctx, struct raft_snapshot_meta *out)
{
	struct h_node *n = ctx;
	*out = n->log.snap;
}

static int ml_snapshot(void *ctx, struct raft_snapshot *out)
{
	struct h_node *n = ctx;
	out->meta = n->log.snap;
	out->data = n->log.snap_data;
	out->len = sizeof(n->log.snap_data);
	return 0;
}

static const struct raft_log_ops ml_ops = {
    .first_index = ml_first,
    .last_index = ml_last,
    .term_at = ml_term,
    .entries = ml_entries,
    .snapshot_meta = ml_snapshot_meta,
    .snapshot = ml_snapshot,
};

static void ml_append(struct memlog *l, const struct raft_entry *e, uint32_t n)
{
	if (n == 0)
		return;
	uint64_t first = e[0].index;
	if (first <= l->snap.index || first > memlog_last(l) + 1)
		abort();
	l->n = first - l->snap.index - 1; /* truncate the suffix */
	if (l->n + n > l->cap) {
		l->cap = (l->n + n) * 2;
		l->ents = xrealloc(l->ents, l->cap * sizeof(*l->ents));
	}
	for (uint32_t i = 0; i < n; i++) {
		struct raft_entry d = e[i];
		void *copy = xrealloc(NULL, d.len);
		if (d.len)
			memcpy(copy, d.data, d.len);
		d.data = copy;
		if (l->n_allocs == l->cap_allocs) {
			l->cap_allocs = l->cap_allocs * 2 + 16;
			l->allocs = xrealloc(l->allocs, l->cap_allocs * sizeof(void *));
		}
		l->allocs[l->n_allocs++] = copy;
		l->ents[l->n++] = d;
	}
}

static void ml_free(struct memlog *l)
{
	for (size_t i = 0; i < l->n_allocs; i++)
		free(l->allocs[i]);
	free(l->allocs);
	free(l->ents);
	memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------- state machine */

static uint64_t hash_step(uint64_t h, const struct raft_entry *e)
{
	h ^= e->index * 0x9E3779B97F4A7C15ull;
	h *= 0x100000001B3ull;
	h ^= e->term;
	h *= 0x100000001B3ull;
	const uint8_t *p = e->data;
	for (uint32_t i = 0; i < e->len; i++) {
		h ^= p[i];
		h *= 0x100000001B3ull;
	}
	return h;
}

static void record_hash(struct h_node *n, uint64_t index, uint64_t hash)
{
	if (index >= n->hash_cap) {
		uint64_t cap = (index + 1) * 2;
		n->hash_at = xrealloc(n->hash_at, cap * sizeof(uint64_t));
		memset(n->hash_at + n->hash_cap, 0, (cap - n->hash_cap) * sizeof(uint64_t));
		n->hash_cap = cap;
	}
	n->hash_at[index] = hash;
}

static void sm_restore(struct h_node *n, const void *data, uint64_t len)
{
	if (len != 16)
		abort();
	n->applied = ordo_ld64(data);
	n->hash = ordo_ld64((const uint8_t *)data + 8);
	record_hash(n, n->applied, n->hash);
}

/* ---------------------------------------------------------------- nodes */

static void core_logger(void *ctx, const char *line)
{
	struct h_node *n = ctx;
	struct cluster *c = n->cl;
	if (c->log_on)
		h_printf(c, "INFO %s\n", line);
}

static void start_core(struct cluster *c, struct h_node *n)
{
	struct raft_config cfg = c->base;
	cfg.id = n->id;
	cfg.prng_seed = c->seed;
	cfg.hard_state = n->log.hs;
	cfg.applied = n->log.snap.index;
	cfg.log = &ml_ops;
	cfg.log_ctx = n;
	cfg.logger = core_logger;
	cfg.logger_ctx = n;
	sm_restore(n, n->log.snap_data, sizeof(n->log.snap_data));
	int rc = raft_new(&cfg, &n->r);
	if (rc != 0) {
		fprintf(stderr, "raft_new(%" PRIu64 ") = %d\n", n->id, rc);
		abort();
	}
	n->up = true;
}

void h_init(struct cluster *c, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	raft_config_defaults(&c->base);
	c->base.election_ticks = 10;
	c->base.heartbeat_ticks = 1;
	c->base.max_msg_entries = 8;
	c->base.max_msg_bytes = 1024;
	c->base.max_inflight_msgs = 4;
	c->base.max_inflight_bytes = 4096;
	c->base.max_unstable_entries = 256;
	c->base.max_unstable_bytes = 64 * 1024;
	c->base.max_entry_bytes = 4096;
	c->base.max_apply_entries = 64;
	c->base.max_apply_bytes = 64 * 1024;
}

static void free_held(struct h_node *n)
{
	for (size_t i = 0; i < n->n_held; i++)
		free(n->held[i]);
	n->n_held = 0;
}

void h_destroy(struct cluster *c)
{
	for (uint32_t i = 0; i < H_NODES_MAX; i++) {
		struct h_node *n = &c->nodes[i];
		raft_free(n->r);
		free_held(n);
		free(n->held);
		ml_free(&n->log);
		free(n->hash_at);
	}
	for (size_t i = 0; i < c->n_net; i++)
		free(c->net[i].buf);
	free(c->net);
	free(c->out);
	memset(c, 0, sizeof(*c));
}

void h_add_node(struct cluster *c, uint64_t id, const struct raft_conf *conf, uint64_t index)
{
	if (id == 0 || id >= H_NODES_MAX || c->nodes[id].id)
		abort();
	struct h_node *n = &c->nodes[id];
	n->id = id;
	n->cl = c;
	n->log.snap.index = index;
	n->log.snap.term = index ? 1 : 0;
	n->log.snap.conf = *conf;
	ordo_st64(n->log.snap_data, index);
	ordo_st64(n->log.snap_data + 8, 0);
	n->log.hs.term = n->log.snap.term;
	n->log.hs.commit = index;
	start_core(c, n);
}

void h_crash(struct cluster *c, uint64_t id)
{
	struct h_node *n = &c->nodes[id];
	if (!n->up)
		return;
	raft_free(n->r);
	n->r = NULL;
	n->up = false;
	free_held(n);
}

void h_restart(struct cluster *c, uint64_t id)
{
	struct h_node *n = &c->nodes[id];
	if (n->up || !n->id)
		return;
	start_core(c, n);
}

/* ---------------------------------------------------------------- format */

void h_fmt_entry(char *buf, size_t cap, const struct raft_entry *e)
{
	if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf cf;
		if (raft_conf_decode(e->data, e->len, &cf) != 0) {
			snprintf(buf, cap, "%" PRIu64 "/%" PRIu64 " EntryConfChange <bad>", e->term,
				 e->index);
			return;
		}
		size_t o = (size_t)snprintf(buf, cap, "%" PRIu64 "/%" PRIu64 " EntryConfChange v(",
					    e->term, e->index);
		for (uint32_t i = 0; i < cf.n && o < cap; i++)
			o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, i ? " " : "",
					      cf.voters[i]);
		if (o < cap)
			snprintf(buf + o, cap - o, ")");
		return;
	}
	snprintf(buf, cap, "%" PRIu64 "/%" PRIu64 " EntryNormal \"%.*s\"", e->term, e->index,
		 (int)e->len, (const char *)e->data);
}

void h_fmt_msg(char *buf, size_t cap, const struct raft_msg *m)
{
	size_t o = (size_t)snprintf(buf, cap, "%" PRIu64 "->%" PRIu64 " %s Term:%" PRIu64, m->from,
				    m->to, raft_msg_type_name(m->type), m->term);
#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (o < cap)                                                                       \
			o += (size_t)snprintf(buf + o, cap - o, __VA_ARGS__);                      \
	} while (0)
	switch (m->type) {
	case RAFT_MSG_APP:
		ADD(" Log:%" PRIu64 "/%" PRIu64 " Commit:%" PRIu64, m->log_term, m->index,
		    m->commit);
		if (m->n_entries) {
			ADD(" Entries:[");
			for (uint32_t i = 0; i < m->n_entries; i++) {
				char e[256];
				h_fmt_entry(e, sizeof(e), &m->entries[i]);
				ADD("%s%s", i ? ", " : "", e);
			}
			ADD("]");
		}
		break;
	case RAFT_MSG_APP_RESP:
		if (m->reject)
			ADD(" Log:%" PRIu64 "/%" PRIu64 " Rejected (Hint: %" PRIu64 ")",
			    m->log_term, m->index, m->reject_hint);
		else
			ADD(" Log:0/%" PRIu64, m->index);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		ADD(" Log:%" PRIu64 "/%" PRIu64 "%s", m->log_term, m->index,
		    m->force ? " Force" : "");
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		if (m->reject)
			ADD(" Rejected");
		break;
	case RAFT_MSG_SNAP:
		ADD(" Snapshot: Index:%" PRIu64 " Term:%" PRIu64 " Voters:(", m->snap.index,
		    m->snap.term);
		for (uint32_t i = 0; i < m->snap.conf.n; i++)
			ADD("%s%" PRIu64, i ? " " : "", m->snap.conf.voters[i]);
		ADD(")");
		break;
	case RAFT_MSG_SNAP_RESP:
		ADD(" Log:0/%" PRIu64, m->index);
		break;
	case RAFT_MSG_HEARTBEAT:
		ADD(" Commit:%" PRIu64, m->commit);
		break;
	default:
		break;
	}
#undef ADD
}

/* ---------------------------------------------------------------- network */

static void net_push(struct cluster *c, const struct raft_msg *m)
{
	size_t len = raft_msg_encoded_len(m);
	uint8_t *buf = xrealloc(NULL, len);
	long w = raft_msg_encode(m, buf, len);
	if (w != (long)len)
		abort();
	if (c->n_net == c->cap_net) {
		c->cap_net = c->cap_net * 2 + 64;
		c->net = xrealloc(c->net, c->cap_net * sizeof(*c->net));
	}
	c->net[c->n_net++] = (struct h_msg){m->from, m->to, buf, len};
}

static void net_remove(struct cluster *c, size_t k)
{
	memmove(c->net + k, c->net + k + 1, (c->n_net - k - 1) * sizeof(*c->net));
	c->n_net--;
}

void h_deliver_one(struct cluster *c, size_t k, bool drop)
{
	struct h_msg hm = c->net[k];
	net_remove(c, k);
	struct h_node *n = hm.to < H_NODES_MAX ? &c->nodes[hm.to] : NULL;
	struct raft_entry ents[64];
	struct raft_msg m;
	if (raft_msg_decode(hm.buf, hm.len, &m, ents, 64) != 0)
		abort();
	char line[4096];
	if (c->verbose) {
		h_fmt_msg(line, sizeof(line), &m);
	}
	bool cut = hm.from < H_NODES_MAX && hm.to < H_NODES_MAX && c->cut[hm.from][hm.to];
	if (drop || !n || !n->up || cut) {
		if (c->verbose)
			h_printf(c, "  %s (dropped)\n", line);
		free(hm.buf);
		return;
	}
	if (c->verbose)
		h_printf(c, "  %s\n", line);
	int rc = raft_step(n->r, &m);
	if (rc != 0 && c->verbose)
		h_printf(c, "  step error %d\n", rc);
	/* The buffer backs entry data and snapshot bytes until the next advance. */
	if (n->n_held == n->cap_held) {
		n->cap_held = n->cap_held * 2 + 16;
		n->held = xrealloc(n->held, n->cap_held * sizeof(void *));
	}
	n->held[n->n_held++] = hm.buf;
}

size_t h_deliver_to(struct cluster *c, uint64_t id, bool drop)
{
	size_t count = 0;
	bool any = false;
	for (size_t k = 0; k < c->n_net;) {
		if (c->net[k].to != id) {
			k++;
			continue;
		}
		if (!any && c->verbose)
			h_printf(c, "> %" PRIu64 " receiving messages\n", id);
		any = true;
		h_deliver_one(c, k, drop);
		count++;
	}
	return count;
}

/* ---------------------------------------------------------------- updates */

static void print_update(struct cluster *c, const struct raft_update *u)
{
	char line[4096];
	h_printf(c, "  Ready MustSync=%s:\n", u->must_sync ? "true" : "false");
	if (u->has_soft_state)
		h_printf(c, "  Lead:%" PRIu64 " State:%s\n", u->lead, raft_role_name(u->role));
	if (u->has_hard_state)
		h_printf(c, "  HardState Term:%" PRIu64 " Vote:%" PRIu64 " Commit:%" PRIu64 "\n",
			 u->hard_state.term, u->hard_state.vote, u->hard_state.commit);
	if (u->n_entries) {
		h_printf(c, "  Entries:\n");
		for (uint32_t i = 0; i < u->n_entries; i++) {
			h_fmt_entry(line, sizeof(line), &u->entries[i]);
			h_printf(c, "  %s\n", line);
		}
	}
	if (u->snapshot) {
		const struct raft_snapshot_meta *s = &u->snapshot->meta;
		h_printf(c, "  Snapshot Index:%" PRIu64 " Term:%" PRIu64 " Voters:(", s->index,
			 s->term);
		for (uint32_t i = 0; i < s->conf.n; i++)
			h_printf(c, "%s%" PRIu64, i ? " " : "", s->conf.voters[i]);
		h_printf(c, ")\n");
	}
	if (u->n_committed) {
		h_printf(c, "  CommittedEntries:\n");
		for (uint32_t i = 0; i < u->n_committed; i++) {
			h_fmt_entry(line, sizeof(line), &u->committed[i]);
			h_printf(c, "  %s\n", line);
		}
	}
	if (u->n_msgs) {
		h_printf(c, "  Messages:\n");
		for (uint32_t i = 0; i < u->n_msgs; i++) {
			h_fmt_msg(line, sizeof(line), &u->msgs[i]);
			h_printf(c, "  %s\n", line);
		}
	}
}

bool h_process_ready(struct cluster *c, uint64_t id)
{
	struct h_node *n = &c->nodes[id];
	if (!n->up || !raft_has_update(n->r))
		return false;
	struct raft_update u;
	raft_ready(n->r, &u);
	if (c->verbose) {
		h_printf(c, "> %" PRIu64 " handling Ready\n", id);
		print_update(c, &u);
	}
	/* 1. Snapshot. */
	if (u.snapshot) {
		struct memlog *l = &n->log;
		l->snap = u.snapshot->meta;
		if (u.snapshot->len != sizeof(l->snap_data))
			abort();
		memcpy(l->snap_data, u.snapshot->data, sizeof(l->snap_data));
		l->n = 0;
		sm_restore(n, l->snap_data, sizeof(l->snap_data));
		if (n->applied != l->snap.index)
			abort();
		raft_snapshot_applied(n->r, l->snap.index);
	}
	/* 2. Entries and hard state, durable before anything is sent, except
	 * a steady leader's messages, which may go first (thesis §10.2.1). */
	if (u.msgs_first) {
		for (uint32_t i = 0; i < u.n_msgs; i++)
			net_push(c, &u.msgs[i]);
		if (c->crash_unwritten_ppm &&
		    ordo_prng_chance_ppm(&c->crash_rng, c->crash_unwritten_ppm)) {
			h_crash(c, id); /* before its own write: the entries are lost */
			return true;
		}
	}
	ml_append(&n->log, u.entries, u.n_entries);
	if (u.has_hard_state)
		n->log.hs = u.hard_state;
	if (u.n_entries) {
		const struct raft_entry *l = &u.entries[u.n_entries - 1];
		raft_persisted(n->r, l->term, l->index);
	}
	/* 3. Messages. */
	for (uint32_t i = 0; !u.msgs_first && i < u.n_msgs; i++)
		net_push(c, &u.msgs[i]);
	/* 4. Apply. */
	for (uint32_t i = 0; i < u.n_committed; i++) {
		const struct raft_entry *e = &u.committed[i];
		if (e->index != n->applied + 1)
			abort();
		n->hash = hash_step(n->hash, e);
		n->applied = e->index;
		record_hash(n, e->index, n->hash);
		if (c->on_apply)
			c->on_apply(c, n, e, n->hash);
	}
	raft_advance(n->r, &u);
	free_held(n);
	return true;
}

void h_stabilize(struct cluster *c, const uint64_t *ids, size_t n_ids)
{
	uint64_t all[H_NODES_MAX];
	if (n_ids == 0) {
		for (uint64_t i = 1; i < H_NODES_MAX; i++)
			if (c->nodes[i].id)
				all[n_ids++] = i;
		ids = all;
	}
	for (int round = 0; round < 1000; round++) {
		bool done = false;
		for (size_t i = 0; i < n_ids; i++)
			done |= h_process_ready(c, ids[i]);
		for (size_t i = 0; i < n_ids; i++)
			done |= h_deliver_to(c, ids[i], false) > 0;
		if (!done)
			return;
	}
	h_printf(c, "stabilize did not converge\n");
}

/* ---------------------------------------------------------------- compaction */

int h_compact(struct cluster *c, uint64_t id, uint64_t index)
{
	struct h_node *n = &c->nodes[id];
	struct memlog *l = &n->log;
	if (!n->up || index <= l->snap.index || index > n->applied)
		return -EINVAL;
	int rc = raft_compact(n->r, index);
	if (rc != 0)
		return rc;
	/* Configuration at index: the latest conf entry at or before it. */
	struct raft_conf conf = l->snap.conf;
	for (uint64_t i = l->snap.index + 1; i <= index; i++) {
		const struct raft_entry *e = &l->ents[i - l->snap.index - 1];
		struct raft_conf cf;
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &cf) == 0)
			conf = cf;
	}
	uint64_t term;
	if (memlog_term(l, index, &term) != 0)
		return -EINVAL;
	uint64_t drop = index - l->snap.index;
	memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
	l->n -= drop;
	l->snap.index = index;
	l->snap.term = term;
	l->snap.conf = conf;
	ordo_st64(l->snap_data, index);
	ordo_st64(l->snap_data + 8, n->hash_at[index]);
	return 0;
}
