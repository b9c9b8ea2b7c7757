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
 *    reference order, with the same digest before every position
 *    (check_applied); no request appears twice in it;
 *  - every request answered ORDERED OK or DUPLICATE is at the place the
 *    answer named (check_answer), and, at the end, in the order exactly once
 *    (check_end);
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
	uint64_t other;
	if (sim_map_get(&s->leaders, term, &other)) {
		if (other != n->id)
			sim_fail(s, "election safety", "nodes %llu and %u both lead term %llu",
				 (unsigned long long)other, n->id, (unsigned long long)term);
		return;
	}
	sim_map_put(&s->leaders, term, n->id);
	s->res->elections++;
	check_leader_complete(s, n);
}

void check_written(struct sim *s, struct sim_seq *n, const struct raft_entry *e)
{
	uint64_t key = mix(e->index * 0x9E3779B97F4A7C15ull ^ e->term) & ~(1ull << 63);
	uint64_t h = ((uint64_t)sim_entry_hash(e) << 32) | (e->index & 0xFFFFFFFFu);
	uint64_t seen;
	if (sim_map_get(&s->written, key, &seen)) {
		if (seen != h)
			sim_fail(s, "log matching",
				 "node %u wrote another entry at index %llu term %llu than a "
				 "node before it",
				 n->id, (unsigned long long)e->index, (unsigned long long)e->term);
		return;
	}
	sim_map_put(&s->written, key, h);
}

void check_committed(struct sim *s, struct sim_seq *n, const struct raft_entry *e)
{
	if (e->index >= s->committed_cap) {
		uint64_t cap = s->committed_cap ? s->committed_cap : 4096;
		while (cap <= e->index)
			cap *= 2;
		s->committed = realloc(s->committed, cap * sizeof *s->committed);
		ORDO_ASSERT(s->committed);
		memset(s->committed + s->committed_cap, 0,
		       (cap - s->committed_cap) * sizeof *s->committed);
		s->committed_cap = cap;
	}
	struct sim_committed *c = &s->committed[e->index];
	uint32_t h = sim_entry_hash(e);
	if (c->term == 0) {
		c->term = e->term;
		c->hash = h;
		/* at most the term it was committed in: the applying node's term
		 * is at least the committing leader's (so the completeness check
		 * that uses it is sound, if not complete) */
		c->commit_term = n->m.term > e->term ? n->m.term : e->term;
		if (e->index > s->commit_max)
			s->commit_max = e->index;
		return;
	}
	if (c->term != e->term || c->hash != h)
		sim_fail(s, "state machine safety",
			 "node %u applied entry %llu of term %llu; another node applied term "
			 "%llu there",
			 n->id, (unsigned long long)e->index, (unsigned long long)e->term,
			 (unsigned long long)c->term);
}

void check_leader_complete(struct sim *s, struct sim_seq *n)
{
	struct raft_status st;
	raft_get_status(n->raft, &st);
	for (uint64_t i = st.first_index; i <= s->commit_max; i++) {
		uint64_t t;
		if (s->committed[i].term == 0 || s->committed[i].commit_term >= st.term)
			continue; /* not committed before this term (or never seen) */
		if (raft_log_term(n->raft, i, &t) != 0 || t != s->committed[i].term) {
			sim_fail(s, "leader completeness",
				 "node %u leads term %llu without committed entry %llu (term %llu)",
				 n->id, (unsigned long long)st.term, (unsigned long long)i,
				 (unsigned long long)s->committed[i].term);
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
	struct raft_status st;
	raft_get_status(n->raft, &st);
	for (uint64_t j = commit; j <= st.last_index; j++) {
		uint32_t holders = 0;
		for (uint32_t i = 0; i < s->nseq; i++)
			holders += durable_at(&s->seqs[i], j, st.term);
		if (holders >= s->quorum)
			return;
	}
	sim_fail(s, "commit rule",
		 "leader %u of term %llu committed through %llu without an entry of its term "
		 "at or after it on a majority",
		 n->id, (unsigned long long)st.term, (unsigned long long)commit);
}

/* ------------------------------------------------------------ order */

void check_applied(struct sim *s, uint32_t rep, uint64_t position, uint64_t key,
		   const uint8_t digest_before[16])
{
	if (s->failed)
		return;
	if (position > s->order_len) {
		ORDO_ASSERT(position == s->order_len + 1);
		if (position >= s->order_cap) {
			uint64_t cap = s->order_cap ? 2 * s->order_cap : 65536;
			s->order_key = realloc(s->order_key, cap * sizeof *s->order_key);
			s->order_digest = realloc(s->order_digest, cap * sizeof *s->order_digest);
			ORDO_ASSERT(s->order_key && s->order_digest);
			s->order_cap = cap;
		}
		uint64_t seen;
		if (sim_map_get(&s->placed, key, &seen) && (key & 0xFFFFF) == 1) {
			/* A replayed request 1 (an empty OPAQUE) of an evicted session
			 * opened it again: the known gap of docs/PROTOCOL.md §4 item
			 * 14, counted, not failed. Any other repeat fails below. */
			s->res->reopened++;
			key |= 1ull << 63; /* the repeat keeps its place in the order */
		} else if (sim_map_get(&s->placed, key, &seen)) {
			sim_fail(s, "exactly once",
				 "request %llu/%llu is at positions %llu and %llu of the order",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)seen,
				 (unsigned long long)position);
			return;
		}
		s->order_key[position] = key;
		memcpy(s->order_digest[position], digest_before, 16);
		s->order_len = position;
		sim_map_put(&s->placed, key, position);
		uint64_t ans;
		/* request 1 may be in the order twice (gap 14): its answer may name
		 * either place, which check_end verifies holds it */
		if (sim_map_get(&s->answered, key, &ans) && ans != position && (key & 0xFFFFF) != 1)
			sim_fail(s, "answered place",
				 "request %llu/%llu was answered at position %llu but is at %llu",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)ans,
				 (unsigned long long)position);
		return;
	}
	if ((s->order_key[position] & ~(1ull << 63)) != key ||
	    memcmp(s->order_digest[position], digest_before, 16))
		sim_fail(s, "one order",
			 "replica %u applied request %llu/%llu at position %llu; another replica "
			 "applied %llu/%llu there%s",
			 rep + 1, (unsigned long long)(key >> 20),
			 (unsigned long long)(key & 0xFFFFF), (unsigned long long)position,
			 (unsigned long long)((s->order_key[position] & ~(1ull << 63)) >> 20),
			 (unsigned long long)(s->order_key[position] & 0xFFFFF),
			 (s->order_key[position] & ~(1ull << 63)) == key ? " (digests differ)"
									 : "");
}

void check_answer(struct sim *s, uint32_t cli, uint64_t key, const struct wire_place *place)
{
	uint64_t pos = place->group_position, prev;
	if (sim_map_get(&s->answered, key, &prev)) {
		if (prev != pos)
			sim_fail(s, "answered place",
				 "client %u heard positions %llu and %llu for request %llu",
				 cli + 1, (unsigned long long)prev, (unsigned long long)pos,
				 (unsigned long long)(key & 0xFFFFF));
		return;
	}
	sim_map_put(&s->answered, key, pos);
	s->answered_count++;
	if (pos <= s->order_len && (s->order_key[pos] & ~(1ull << 63)) != key)
		sim_fail(s, "answered place",
			 "client %u heard OK at position %llu for request %llu, which holds "
			 "another request",
			 cli + 1, (unsigned long long)pos, (unsigned long long)(key & 0xFFFFF));
}

bool sim_retained(const struct sim *s, uint64_t e)
{
	for (uint32_t i = 0; i < s->nseq; i++) {
		const struct sim_seq *n = &s->seqs[i];
		const uint8_t *b;
		uint32_t len;
		if (n->up && seq_epochlog_get(&n->elog, e, &b, &len) == 0)
			return true;
	}
	return false;
}

void check_end(struct sim *s)
{
	if (s->failed)
		return;
	uint64_t committed = 0;
	for (uint32_t i = 0; i < s->nseq; i++)
		if (s->seqs[i].up && s->seqs[i].m.committed_position > committed)
			committed = s->seqs[i].m.committed_position;
	/* Every request answered OK or DUPLICATE is committed (a place the
	 * group no longer holds is an acknowledged write lost), and where a
	 * replica applied its position it is there (check_applied). */
	for (uint64_t i = 0; i < s->answered.cap; i++) {
		if (s->answered.keys[i] == MAP_EMPTY)
			continue;
		uint64_t key = s->answered.keys[i], pos = s->answered.vals[i], at;
		if (pos > committed && !s->o.safety_only) {
			sim_fail(s, "answered then lost",
				 "request %llu/%llu was answered at position %llu; the group "
				 "committed only %llu",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)pos,
				 (unsigned long long)committed);
			return;
		}
		(void)at;
		if (pos <= s->order_len && (s->order_key[pos] & ~(1ull << 63)) != key) {
			sim_fail(s, "answered place",
				 "request %llu/%llu was answered at position %llu; the order holds "
				 "another request there",
				 (unsigned long long)(key >> 20),
				 (unsigned long long)(key & 0xFFFFF), (unsigned long long)pos);
			return;
		}
	}
	if (s->o.safety_only)
		return;
	/* Liveness: everything committed SIM_APPLY_BOUND_STEPS before the end
	 * reached every replica by the end, unless no running sequencer
	 * retains the epoch it needs and no other replica was far enough
	 * ahead to transfer its state (counted, not failed). */
	for (uint32_t j = 0; j < s->nrep; j++) {
		const struct sim_rep *r = &s->reps[j];
		if (r->st.applied_position >= s->committed_cutoff) {
			continue;
		}
		if (!sim_retained(s, r->st.next_epoch)) {
			s->res->stranded++;
			continue;
		}
		sim_fail(s, "liveness",
			 "replica %u applied %llu of %llu committed positions %u steps after the "
			 "faults stopped",
			 j + 1, (unsigned long long)r->st.applied_position,
			 (unsigned long long)s->committed_cutoff, s->steps_total - s->steps_fault);
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

void check_free(struct sim *s)
{
	sim_map_free(&s->leaders);
	sim_map_free(&s->written);
	sim_map_free(&s->placed);
	sim_map_free(&s->answered);
	free(s->committed);
	free(s->order_key);
	free(s->order_digest);
}
