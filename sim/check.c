/*
 * The simulator's checkers. Each is called where the property can first be
 * seen to break, so a violation is reported at the step that caused it:
 *
 *  - election safety: at most one leader per term (check_leader);
 *  - log matching: two logs holding an entry of the same index and term
 *    hold the same entry (check_written, on every entry written to a disk);
 *  - state machine safety: every node applies the same entry at an index
 *    (check_committed, on every committed entry applied);
 *  - leader completeness: a new leader's log holds every committed entry
 *    (check_leader_complete);
 *  - one order: every replica's delivered order is a prefix of one
 *    reference order, gapless, with the same digest before every position
 *    (check_applied); no request appears twice in it; each group's records
 *    in it are at consecutive group positions from 1;
 *  - every request answered ORDERED OK or DUPLICATE is at the place the
 *    answer named, group, group position and epoch (check_answer), and, at
 *    the end, in the order exactly once (check_end);
 *  - several groups: no group orders a request of a session another group
 *    holds (check_home, when it answers OK and when a replica applies it);
 *
 * The Raft checkers keep their state per sequencer group (struct
 * sim_group): each group is its own Raft group.
 *  - liveness (check_end): after the faults stop with a majority healthy,
 *    every request sent since is answered and every replica has applied
 *    everything committed, within the healing steps.
 */
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "sim/world.h"

/* ------------------------------------------------------------ map */

#define MAP_EMPTY UINT64_MAX

void sim_map_init(struct sim_map *m)
{
	m->cap = 1024;
	m->used = 0;
	m->keys = malloc(m->cap * sizeof *m->keys);
	m->vals = malloc(m->cap * sizeof *m->vals);
	ORDO_ASSERT(m->keys && m->vals);
	memset(m->keys, 0xFF, m->cap * sizeof *m->keys);
}

void sim_map_free(struct sim_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

bool sim_map_get(const struct sim_map *m, uint64_t key, uint64_t *val)
{
	for (uint64_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == MAP_EMPTY)
			return false;
		if (m->keys[i] == key) {
			*val = m->vals[i];
			return true;
		}
	}
}

static void map_grow(struct sim_map *m)
{
	struct sim_map n = {.cap = m->cap * 2};
	n.keys = malloc(n.cap * sizeof *n.keys);
	n.vals = malloc(n.cap * sizeof *n.vals);
	ORDO_ASSERT(n.keys && n.vals);
	memset(n.keys, 0xFF, n.cap * sizeof *n.keys);
	for (uint64_t i = 0; i < m->cap; i++)
		if (m->keys[i] != MAP_EMPTY)
			sim_map_put(&n, m->keys[i], m->vals[i]);
	sim_map_free(m);
	*m = n;
}

void sim_map_put(struct sim_map *m, uint64_t key, uint64_t val)
{
	ORDO_ASSERT(key != MAP_EMPTY);
	if (2 * (m->used + 1) > m->cap)
		map_grow(m);
	for (uint64_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == MAP_EMPTY) {
			m->keys[i] = key;
			m->vals[i] = val;
			m->used++;
			return;
		}
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return;
		}
	}
}

/* ------------------------------------------------------------ Raft */

uint32_t sim_entry_hash(const struct raft_entry *e)
{
	uint32_t c = ordo_crc32c_init();
	c = ordo_crc32c_update(c, &e->type, 1);
	c = ordo_crc32c_update(c, &e->len, 4);
	if (e->len)
		c = ordo_crc32c_update(c, e->data, e->len);
	return ordo_crc32c_final(c);
}

void check_leader(struct sim *s, struct sim_seq *n, uint64_t term)
{
	struct sim_group *g = sim_group_of(s, n);
	uint64_t other;
	if (sim_map_get(&g->leaders, term, &other)) {
		if (other != n->id)
			sim_fail(s, "election safety",
				 "nodes %llu and %u of group %u both lead term %llu",
				 (unsigned long long)other, n->id, n->group,
				 (unsigned long long)term);
		return;
	}
	sim_map_put(&g->leaders, term, n->id);
	s->res->elections++;
	check_leader_complete(s, n);
}

void check_written(struct sim *s, struct sim_seq *n, const struct raft_entry *e)
{
	uint64_t key = mix(e->index * 0x9E3779B97F4A7C15ull ^ e->term) & ~(1ull << 63);
	uint64_t h = ((uint64_t)sim_entry_hash(e) << 32) | (e->index & 0xFFFFFFFFu);
	struct sim_group *g = sim_group_of(s, n);
	uint64_t seen;
	if (sim_map_get(&g->written, key, &seen)) {
		if (seen != h)
			sim_fail(s, "log matching",
				 "node %s wrote another entry at index %llu term %llu than a "
				 "node before it",
				 n->name, (unsigned long long)e->index,
				 (unsigned long long)e->term);
		return;
	}
	sim_map_put(&g->written, key, h);
}

void check_committed(struct sim *s, struct sim_seq *n, const struct raft_entry *e)
{
	struct sim_group *g = sim_group_of(s, n);
	if (e->index >= g->committed_cap) {
		uint64_t cap = g->committed_cap ? g->committed_cap : 4096;
		while (cap <= e->index)
			cap *= 2;
		g->committed = realloc(g->committed, cap * sizeof *g->committed);
		ORDO_ASSERT(g->committed);
		memset(g->committed + g->committed_cap, 0,
		       (cap - g->committed_cap) * sizeof *g->committed);
		g->committed_cap = cap;
	}
	struct sim_committed *c = &g->committed[e->index];
	uint32_t h = sim_entry_hash(e);
	if (c->term == 0) {
		c->term = e->term;
		c->hash = h;
		/* at most the term it was committed in: the applying node's term
		 * is at least the committing leader's (so the completeness check
		 * that uses it is sound, if not complete) */
		c->commit_term = n->m.term > e->term ? n->m.term : e->term;
		if (e->index > g->commit_max)
			g->commit_max = e->index;
		return;
	}
	if (c->term != e->term || c->hash != h)
		sim_fail(s, "state machine safety",
			 "node %s applied entry %llu of term %llu; another node applied term "
			 "%llu there",
			 n->name, (unsigned long long)e->index, (unsigned long long)e->term,
			 (unsigned long long)c->term);
}

void check_leader_complete(struct sim *s, struct sim_seq *n)
{
	const struct sim_group *g = sim_group_of(s, n);
	struct raft_status st;
	raft_get_status(n->raft, &st);
	for (uint64_t i = st.first_index; i <= g->commit_max; i++) {
		uint64_t t;
		if (g->committed[i].term == 0 || g->committed[i].commit_term >= st.term)
			continue; /* not committed before this term (or never seen) */
		if (raft_log_term(n->raft, i, &t) != 0 || t != g->committed[i].term) {
			sim_fail(s, "leader completeness",
				 "node %s leads term %llu without committed entry %llu (term %llu)",
				 n->name, (unsigned long long)st.term, (unsigned long long)i,
				 (unsigned long long)g->committed[i].term);
			return;
		}
	}
}

/* Did node m store durably an entry of term `term` at index j (or a
 * snapshot past j, which it only takes of committed state)? As stored: the
 * commit rule judges the leader's decision, and damage a disk takes later
 * is a separate fault, bounded by faulty_max (a damaged node refuses to
 * start), so a record damaged since it was synced still counts. */
static bool durable_at(const struct sim_seq *m, uint64_t j, uint64_t term)
{
	const struct sim_disk *d = &m->disk;
	if (d->snap.index >= j)
		return d->snap.index > j || d->snap.term == term;
	if (j > d->snap.index + d->n)
		return false;
	const struct sim_rec *r = &d->recs[j - d->snap.index - 1];
	return r->synced && r->term_stored == term;
}

/* The commit rule (thesis §3.6.2, Figure 3.7): a leader's commit index
 * only covers what an entry of its own term, at or after it, stored durably
 * on a majority, justifies. Checked whenever a leader hands out entries it
 * committed itself. */
void check_commit_rule(struct sim *s, struct sim_seq *n, uint64_t commit)
{
	const struct sim_group *g = sim_group_of(s, n);
	struct raft_status st;
	raft_get_status(n->raft, &st);
	for (uint64_t j = commit; j <= st.last_index; j++) {
		uint32_t holders = 0;
		for (uint32_t i = g->first; i < g->first + g->nseq; i++)
			holders += durable_at(&s->seqs[i], j, st.term);
		if (holders >= g->quorum)
			return;
	}
	sim_fail(s, "commit rule",
		 "leader %s of term %llu committed through %llu without an entry of its term "
		 "at or after it on a majority",
		 n->name, (unsigned long long)st.term, (unsigned long long)commit);
}

/* ------------------------------------------------------------ order */

#define REPEAT_BIT (1ull << 63) /* a repeat of request 1 keeps its place (gap 14) */

static uint64_t at_of(uint32_t group, uint64_t epoch)
{
	return epoch | (uint64_t)group << 56;
}

static void order_grow(struct sim *s, uint64_t position)
{
	if (position < s->order_cap)
		return;
	uint64_t cap = s->order_cap ? 2 * s->order_cap : 65536;
	s->order_key = realloc(s->order_key, cap * sizeof *s->order_key);
	s->order_digest = realloc(s->order_digest, cap * sizeof *s->order_digest);
	s->order_gpos = realloc(s->order_gpos, cap * sizeof *s->order_gpos);
	s->order_epoch = realloc(s->order_epoch, cap * sizeof *s->order_epoch);
	s->order_group = realloc(s->order_group, cap * sizeof *s->order_group);
	ORDO_ASSERT(s->order_key && s->order_digest && s->order_gpos && s->order_epoch &&
		    s->order_group);
	s->order_cap = cap;
}

void check_home(struct sim *s, uint32_t g, uint64_t client_id, uint64_t number, const char *where)
{
	uint32_t home = sim_home_group(s, client_id);
	if (home != g)
		sim_fail(s, "session's group",
			 "group %u %s request %llu/%llu, of a session group %u holds", g, where,
			 (unsigned long long)client_id, (unsigned long long)number, home);
}

/* An answer (group, group position, epoch) against the record placed at
 * global position p. */
static bool answer_matches(const struct sim *s, uint64_t p, uint64_t gpos, uint64_t at)
{
	return s->order_gpos[p] == gpos && at_of(s->order_group[p], s->order_epoch[p]) == at;
}

void check_applied(struct sim *s, uint32_t rep, const struct sim_applied *a)
{
	if (s->failed)
		return;
	uint64_t position = a->position, key = a->key;
	if (position > s->order_len) {
		if (position != s->order_len + 1) {
			sim_fail(s, "one order",
				 "replica %u applied position %llu; the order holds %llu positions",
				 rep + 1, (unsigned long long)position,
				 (unsigned long long)s->order_len);
			return;
		}
		order_grow(s, position);
		if (s->ngroups > 1) {
			check_home(s, a->group, key >> 20, key & 0xFFFFF, "applied");
			if (s->failed)
				return;
		}
		if (a->group_position != s->order_last_gpos[a->group] + 1) {
			sim_fail(s, "group order",
				 "position %llu holds group %u's position %llu; the group's last "
				 "before it is %llu",
				 (unsigned long long)position, a->group,
				 (unsigned long long)a->group_position,
				 (unsigned long long)s->order_last_gpos[a->group]);
			return;
		}
		s->order_last_gpos[a->group] = a->group_position;
		uint64_t seen;
		if (sim_map_get(&s->placed, key, &seen) && (key & 0xFFFFF) == 1) {
			/* A replayed request 1 (an empty OPAQUE) of an evicted session
			 * opened it again: the known gap of docs/PROTOCOL.md §4 item
			 * 14, counted, not failed. Any other repeat fails below. */
			s->res->reopened++;
			key |= REPEAT_BIT; /* the repeat keeps its place in the order */
		} else if (sim_map_get(&s->placed, key, &seen)) {
			sim_fail(s, "exactly once",
				 "request %llu/%llu is at positions %llu and %llu of the order",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)seen,
				 (unsigned long long)position);
			return;
		}
		s->order_key[position] = key;
		memcpy(s->order_digest[position], a->digest_before, 16);
		s->order_gpos[position] = a->group_position;
		s->order_epoch[position] = a->epoch;
		s->order_group[position] = (uint8_t)a->group;
		s->order_len = position;
		sim_map_put(&s->placed, key, position);
		uint64_t ans, at = 0;
		/* request 1 may be in the order twice (gap 14): its answer may name
		 * either place, which check_end verifies holds it */
		if (sim_map_get(&s->answered, key, &ans) && (key & 0xFFFFF) != 1) {
			(void)sim_map_get(&s->answered_at, key, &at);
			if (!answer_matches(s, position, ans, at))
				sim_fail(s, "answered place",
					 "request %llu/%llu was answered at group %u position %llu "
					 "epoch %llu but is at group %u position %llu epoch %llu "
					 "(position %llu of the order)",
					 (unsigned long long)(key >> 20),
					 (unsigned long long)(key & 0xFFFFF), (unsigned)(at >> 56),
					 (unsigned long long)ans,
					 (unsigned long long)(at & ((1ull << 56) - 1)), a->group,
					 (unsigned long long)a->group_position,
					 (unsigned long long)a->epoch,
					 (unsigned long long)position);
		}
		return;
	}
	if ((s->order_key[position] & ~REPEAT_BIT) != key ||
	    memcmp(s->order_digest[position], a->digest_before, 16))
		sim_fail(s, "one order",
			 "replica %u applied request %llu/%llu at position %llu; another replica "
			 "applied %llu/%llu there%s",
			 rep + 1, (unsigned long long)(key >> 20),
			 (unsigned long long)(key & 0xFFFFF), (unsigned long long)position,
			 (unsigned long long)((s->order_key[position] & ~REPEAT_BIT) >> 20),
			 (unsigned long long)(s->order_key[position] & 0xFFFFF),
			 (s->order_key[position] & ~REPEAT_BIT) == key ? " (digests differ)" : "");
}

void check_answer(struct sim *s, uint32_t cli, uint64_t key, const struct wire_place *place)
{
	uint64_t pos = place->group_position, prev, prev_at = 0;
	uint64_t at = at_of(place->group, place->epoch);
	if (sim_map_get(&s->answered, key, &prev)) {
		(void)sim_map_get(&s->answered_at, key, &prev_at);
		if (prev != pos || prev_at != at)
			sim_fail(s, "answered place",
				 "client %u heard group %u position %llu epoch %llu and group %u "
				 "position %llu epoch %llu for request %llu",
				 cli + 1, (unsigned)(prev_at >> 56), (unsigned long long)prev,
				 (unsigned long long)(prev_at & ((1ull << 56) - 1)), place->group,
				 (unsigned long long)pos, (unsigned long long)place->epoch,
				 (unsigned long long)(key & 0xFFFFF));
		return;
	}
	sim_map_put(&s->answered, key, pos);
	sim_map_put(&s->answered_at, key, at);
	s->answered_count++;
	if (s->ngroups > 1) {
		uint64_t p;
		if ((key & 0xFFFFF) != 1 && sim_map_get(&s->placed, key, &p) &&
		    !answer_matches(s, p, pos, at))
			sim_fail(
			    s, "answered place",
			    "client %u heard OK at group %u position %llu epoch %llu for request "
			    "%llu, which the order holds at group %u position %llu epoch %llu",
			    cli + 1, place->group, (unsigned long long)pos,
			    (unsigned long long)place->epoch, (unsigned long long)(key & 0xFFFFF),
			    s->order_group[p], (unsigned long long)s->order_gpos[p],
			    (unsigned long long)s->order_epoch[p]);
		return;
	}
	/* one group: the group position is the position in the order */
	if (pos <= s->order_len &&
	    ((s->order_key[pos] & ~REPEAT_BIT) != key || !answer_matches(s, pos, pos, at)))
		sim_fail(s, "answered place",
			 "client %u heard OK at position %llu epoch %llu for request %llu, which "
			 "holds another request or another epoch",
			 cli + 1, (unsigned long long)pos, (unsigned long long)place->epoch,
			 (unsigned long long)(key & 0xFFFFF));
}

bool sim_retained(const struct sim *s, uint32_t gi, uint64_t e)
{
	const struct sim_group *g = &s->groups[gi];
	for (uint32_t i = g->first; i < g->first + g->nseq; i++) {
		const struct sim_seq *n = &s->seqs[i];
		const uint8_t *b;
		uint32_t len;
		if (n->up && seq_epochlog_get(&n->elog, e, &b, &len) == 0)
			return true;
	}
	return false;
}

bool sim_rep_stuck(const struct sim *s, const struct sim_rep *r)
{
	if (s->ngroups == 1)
		return !sim_retained(s, 0, r->st.next_epoch);
	uint64_t need = r->st.applied_epoch + 1;
	for (uint32_t g = 0; g < s->ngroups; g++) {
		const uint8_t *b;
		uint32_t len;
		uint64_t end;
		if (!rep_merge_covering(&r->mg, g, need, &b, &len, &end) &&
		    !sim_retained(s, g, need))
			return true;
	}
	return false;
}

/* The highest group_position committed in group g by a running member. */
static uint64_t group_committed(const struct sim *s, uint32_t gi)
{
	const struct sim_group *g = &s->groups[gi];
	uint64_t committed = 0;
	for (uint32_t i = g->first; i < g->first + g->nseq; i++)
		if (s->seqs[i].up && s->seqs[i].m.committed_position > committed)
			committed = s->seqs[i].m.committed_position;
	return committed;
}

/* Every request answered OK or DUPLICATE is committed in its group (a
 * place the group no longer holds is an acknowledged write lost), and
 * where a replica applied it, it is at the place answered (check_applied);
 * with several groups, a request answered in an epoch the replicas have
 * merged past is in the order. */
static void check_answered_end(struct sim *s)
{
	uint64_t committed[SIM_GROUPS_MAX];
	for (uint32_t g = 0; g < s->ngroups; g++)
		committed[g] = group_committed(s, g);
	for (uint64_t i = 0; i < s->answered.cap; i++) {
		if (s->answered.keys[i] == MAP_EMPTY)
			continue;
		uint64_t key = s->answered.keys[i], pos = s->answered.vals[i], at = 0, p;
		(void)sim_map_get(&s->answered_at, key, &at);
		uint32_t g = (uint32_t)(at >> 56);
		uint64_t epoch = at & ((1ull << 56) - 1);
		if (pos > committed[g] && !s->o.safety_only) {
			sim_fail(s, "answered then lost",
				 "request %llu/%llu was answered at position %llu of group %u; the "
				 "group committed only %llu",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)pos, g,
				 (unsigned long long)committed[g]);
			return;
		}
		if (s->ngroups == 1) {
			if (pos <= s->order_len && (s->order_key[pos] & ~REPEAT_BIT) != key) {
				sim_fail(s, "answered place",
					 "request %llu/%llu was answered at position %llu; the "
					 "order holds another request there",
					 (unsigned long long)(key >> 20),
					 (unsigned long long)(key & 0xFFFFF),
					 (unsigned long long)pos);
				return;
			}
			continue;
		}
		if ((key & 0xFFFFF) == 1)
			continue; /* may be in the order twice (gap 14) */
		if (!sim_map_get(&s->placed, key, &p)) {
			if (epoch <= s->order_merged && !s->o.safety_only) {
				sim_fail(
				    s, "answered then lost",
				    "request %llu/%llu was answered in epoch %llu of group %u; "
				    "the replicas merged through epoch %llu without it",
				    (unsigned long long)(key >> 20),
				    (unsigned long long)(key & 0xFFFFF), (unsigned long long)epoch,
				    g, (unsigned long long)s->order_merged);
				return;
			}
		} else if (!answer_matches(s, p, pos, at)) {
			sim_fail(s, "answered place",
				 "request %llu/%llu was answered at group %u position %llu epoch "
				 "%llu; the order holds it at group %u position %llu epoch %llu",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), g, (unsigned long long)pos,
				 (unsigned long long)epoch, s->order_group[p],
				 (unsigned long long)s->order_gpos[p],
				 (unsigned long long)s->order_epoch[p]);
			return;
		}
	}
}

void check_end(struct sim *s)
{
	if (s->failed)
		return;
	check_answered_end(s);
	if (s->failed || s->o.safety_only)
		return;
	/* Liveness: everything committed SIM_APPLY_BOUND_STEPS before the end
	 * reached every replica by the end (with several groups: every epoch
	 * every group had committed then), unless no running sequencer
	 * retains the epoch it needs and no other replica was far enough
	 * ahead to transfer its state (counted, not failed). */
	uint64_t cutoff_epoch = UINT64_MAX;
	for (uint32_t g = 0; g < s->ngroups; g++)
		if (s->groups[g].cutoff_epoch < cutoff_epoch)
			cutoff_epoch = s->groups[g].cutoff_epoch;
	for (uint32_t j = 0; j < s->nrep; j++) {
		const struct sim_rep *r = &s->reps[j];
		if (s->ngroups == 1 ? r->st.applied_position >= s->committed_cutoff
				    : r->st.applied_epoch >= cutoff_epoch)
			continue;
		if (sim_rep_stuck(s, r)) {
			s->res->stranded++;
			continue;
		}
		if (s->ngroups == 1)
			sim_fail(s, "liveness",
				 "replica %u applied %llu of %llu committed positions %u steps "
				 "after the faults stopped",
				 j + 1, (unsigned long long)r->st.applied_position,
				 (unsigned long long)s->committed_cutoff,
				 s->steps_total - s->steps_fault);
		else {
			struct rep_merge_step st;
			uint32_t waiting = 0;
			bool next = rep_merge_next(&r->mg, r->st.applied_epoch, &st, &waiting);
			sim_fail(s, "liveness",
				 "replica %u merged through epoch %llu; every group had committed "
				 "through %llu %u steps before the end (%u steps after the faults "
				 "stopped); the merge %s group %u (known committed %llu)",
				 j + 1, (unsigned long long)r->st.applied_epoch,
				 (unsigned long long)cutoff_epoch, SIM_APPLY_BOUND_STEPS,
				 s->steps_total - s->steps_fault,
				 next ? "could step, not" : "waits for", waiting,
				 (unsigned long long)r->mg.known_committed[waiting]);
		}
		return;
	}
	for (uint32_t k = 0; k < s->ncli; k++) {
		const struct sim_cli *c = &s->clis[k];
		if (c->answered <= s->live_first_number[k]) {
			sim_fail(
			    s, "liveness",
			    "client %u heard no answer in the %u steps after the faults stopped "
			    "(session %llu, next %llu, lowest unanswered %llu, last status %u "
			    "at step %llu)",
			    k + 1, s->steps_total - s->steps_fault, (unsigned long long)c->session,
			    (unsigned long long)c->next, (unsigned long long)c->low, c->last_status,
			    (unsigned long long)(c->last_heard / STEP_NS));
			return;
		}
		for (uint32_t i = 0; i < c->window; i++) {
			const struct sim_out *o = &c->outs[i];
			if (o->number && !o->answered && o->first_at + SIM_LIVE_BOUND_NS < s->now) {
				sim_fail(s, "liveness",
					 "client %u request %llu unanswered for %llu ms after the "
					 "faults stopped",
					 k + 1, (unsigned long long)o->number,
					 (unsigned long long)((s->now - o->first_at) / 1000000));
				return;
			}
		}
	}
}

void check_init(struct sim *s)
{
	for (uint32_t g = 0; g < SIM_GROUPS_MAX; g++) {
		sim_map_init(&s->groups[g].leaders);
		sim_map_init(&s->groups[g].written);
	}
	sim_map_init(&s->placed);
	sim_map_init(&s->answered);
	sim_map_init(&s->answered_at);
}

void check_free(struct sim *s)
{
	for (uint32_t g = 0; g < SIM_GROUPS_MAX; g++) {
		sim_map_free(&s->groups[g].leaders);
		sim_map_free(&s->groups[g].written);
		free(s->groups[g].committed);
	}
	sim_map_free(&s->placed);
	sim_map_free(&s->answered);
	sim_map_free(&s->answered_at);
	free(s->order_key);
	free(s->order_digest);
	free(s->order_gpos);
	free(s->order_epoch);
	free(s->order_group);
}
