/*
 * Randomized safety test of the Raft core (thesis §3.6, Figure 3.2's
 * properties). Each seed builds a cluster of 3 or 5 cores and runs a random
 * schedule: message loss, duplication and reordering, partitions, crashes
 * that lose everything not yet handled, restarts from the durable memlog,
 * log compaction (so snapshots are installed), proposals. Every fault
 * setting derives from the seed, printed on failure so it replays
 * (raft_test --seed N).
 *
 * Checked after every step: election safety (one leader per term); state
 * machine safety (every node's applied prefix hashes to the same value as
 * the first node that applied that index); every applied entry is durable
 * on a majority. Every 25 steps and on each new leader: log matching (two
 * durable logs that agree on (index, term) agree on everything before) and
 * leader completeness (a leader of term T holds every entry committed by a
 * leader of a term < T). After healing: a proposal commits on every node
 * within a bounded number of ticks (liveness).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/prng.h"
#include "harness.h"

int raft_safety_run(int seeds, int verbose_seed);

#define ORDO_UNUSED_RESULT(x) ((void)(x))
#define STEPS		      30000
#define LIVENESS_TICKS	      400

struct checker {
	uint32_t n_nodes;
	uint64_t *leader_of_term; /* by term */
	uint64_t terms_cap;
	uint64_t *c_term;	 /* committed entry's term, by index (0 unknown) */
	uint64_t *c_hash;	 /* state hash after index */
	uint64_t *c_commit_term; /* smallest leader term seen committing it */
	uint64_t c_cap;
	char fail[512]; /* first violation */
};

static void grow(uint64_t **a, uint64_t *cap, uint64_t need, uint64_t **b, uint64_t **d)
{
	if (need < *cap)
		return;
	uint64_t nc = (need + 1) * 2;
	*a = realloc(*a, nc * sizeof(uint64_t));
	memset(*a + *cap, 0, (nc - *cap) * sizeof(uint64_t));
	if (b) {
		*b = realloc(*b, nc * sizeof(uint64_t));
		memset(*b + *cap, 0, (nc - *cap) * sizeof(uint64_t));
	}
	if (d) {
		*d = realloc(*d, nc * sizeof(uint64_t));
		memset(*d + *cap, 0, (nc - *cap) * sizeof(uint64_t));
	}
	*cap = nc;
}

#define FAIL(k, ...)                                                                               \
	do {                                                                                       \
		if (!(k)->fail[0])                                                                 \
			snprintf((k)->fail, sizeof((k)->fail), __VA_ARGS__);                       \
	} while (0)

static bool holds(const struct h_node *n, uint64_t index, uint64_t term)
{
	if (index <= n->log.snap.index)
		return true; /* compacted: applied, hence committed */
	uint64_t t;
	return memlog_term(&n->log, index, &t) == 0 && t == term;
}

static void on_apply(struct cluster *c, struct h_node *n, const struct raft_entry *e,
		     uint64_t hash_after)
{
	struct checker *k = c->user;
	grow(&k->c_term, &k->c_cap, e->index, &k->c_hash, &k->c_commit_term);
	if (k->c_term[e->index] == 0) {
		k->c_term[e->index] = e->term;
		k->c_hash[e->index] = hash_after;
	} else if (k->c_term[e->index] != e->term || k->c_hash[e->index] != hash_after) {
		FAIL(k,
		     "state machine safety: node %" PRIu64 " applied index %" PRIu64
		     " term %" PRIu64 " differently",
		     n->id, e->index, e->term);
	}
	/* Committed means durable on a majority of the group. */
	uint32_t have = 0;
	for (uint64_t i = 1; i <= k->n_nodes; i++)
		have += holds(&c->nodes[i], e->index, e->term);
	if (have < k->n_nodes / 2 + 1)
		FAIL(k,
		     "entry %" PRIu64 "/%" PRIu64 " applied by %" PRIu64
		     " but durable on only %u nodes",
		     e->term, e->index, n->id, have);
}

static void check_log_matching(struct cluster *c, struct checker *k)
{
	for (uint64_t a = 1; a <= k->n_nodes; a++) {
		for (uint64_t b = a + 1; b <= k->n_nodes; b++) {
			const struct memlog *la = &c->nodes[a].log, *lb = &c->nodes[b].log;
			uint64_t lo =
			    la->snap.index > lb->snap.index ? la->snap.index : lb->snap.index;
			uint64_t hi =
			    memlog_last(la) < memlog_last(lb) ? memlog_last(la) : memlog_last(lb);
			uint64_t i = hi;
			for (; i > lo; i--) {
				uint64_t ta, tb;
				if (memlog_term(la, i, &ta) == 0 && memlog_term(lb, i, &tb) == 0 &&
				    ta == tb)
					break;
			}
			for (uint64_t j = lo + 1; j <= i; j++) {
				const struct raft_entry *ea = &la->ents[j - la->snap.index - 1];
				const struct raft_entry *eb = &lb->ents[j - lb->snap.index - 1];
				if (ea->term != eb->term || ea->len != eb->len ||
				    ea->type != eb->type ||
				    (ea->len && memcmp(ea->data, eb->data, ea->len) != 0)) {
					FAIL(k,
					     "log matching: nodes %" PRIu64 " and %" PRIu64
					     " agree at %" PRIu64 " but differ at %" PRIu64,
					     a, b, i, j);
					return;
				}
			}
		}
	}
}

static void check_leader_completeness(struct checker *k, const struct h_node *n,
				      const struct raft_status *s)
{
	for (uint64_t g = s->first_index; g < k->c_cap && g <= s->commit + 100000; g++) {
		if (k->c_term[g] == 0 || k->c_commit_term[g] == 0 || k->c_commit_term[g] >= s->term)
			continue;
		uint64_t t;
		if (raft_log_term(n->r, g, &t) != 0 || t != k->c_term[g]) {
			FAIL(k,
			     "leader completeness: leader %" PRIu64 " of term %" PRIu64
			     " lacks committed entry %" PRIu64 "/%" PRIu64,
			     n->id, s->term, k->c_term[g], g);
			return;
		}
	}
}

static void check_step(struct cluster *c, struct checker *k, bool full)
{
	for (uint64_t i = 1; i <= k->n_nodes; i++) {
		struct h_node *n = &c->nodes[i];
		if (n->applied < k->c_cap && k->c_term[n->applied] &&
		    k->c_hash[n->applied] != n->hash)
			FAIL(k,
			     "state machine safety: node %" PRIu64 " state at %" PRIu64 " differs",
			     i, n->applied);
		if (!n->up)
			continue;
		struct raft_status s;
		raft_get_status(n->r, &s);
		if (s.role != RAFT_LEADER)
			continue;
		grow(&k->leader_of_term, &k->terms_cap, s.term, NULL, NULL);
		bool is_new = k->leader_of_term[s.term] == 0;
		if (is_new)
			k->leader_of_term[s.term] = i;
		else if (k->leader_of_term[s.term] != i)
			FAIL(k, "election safety: %" PRIu64 " and %" PRIu64 " lead term %" PRIu64,
			     k->leader_of_term[s.term], i, s.term);
		/* Entries up to a leader's commit were committed in a term <= its term. */
		grow(&k->c_term, &k->c_cap, s.commit, &k->c_hash, &k->c_commit_term);
		for (uint64_t g = s.commit; g >= 1; g--) {
			if (k->c_commit_term[g] && k->c_commit_term[g] <= s.term)
				break;
			k->c_commit_term[g] = s.term;
		}
		if (is_new || full)
			check_leader_completeness(k, n, &s);
	}
	if (full)
		check_log_matching(c, k);
}

static void dup_msg(struct cluster *c, struct ordo_prng *p, size_t k)
{
	struct h_msg m = c->net[k];
	uint8_t *copy = malloc(m.len);
	memcpy(copy, m.buf, m.len);
	m.buf = copy;
	if (c->n_net == c->cap_net) {
		c->cap_net = c->cap_net * 2 + 64;
		c->net = realloc(c->net, c->cap_net * sizeof(*c->net));
	}
	size_t at = (size_t)ordo_prng_below(p, c->n_net + 1);
	memmove(c->net + at + 1, c->net + at, (c->n_net - at) * sizeof(*c->net));
	c->net[at] = m;
	c->n_net++;
}

static uint64_t g_terms_led, g_applied;

static int run_seed(uint64_t seed, bool verbose)
{
	struct ordo_prng p;
	ordo_prng_seed(&p, seed);
	struct cluster c;
	h_init(&c, seed);
	struct checker k = {0};
	c.on_apply = on_apply;
	c.user = &k;
	c.log_on = verbose;
	k.n_nodes = ordo_prng_chance_ppm(&p, 500000) ? 3 : 5;
	c.base.election_ticks = 5 + (uint32_t)ordo_prng_below(&p, 6);
	c.base.heartbeat_ticks = 1 + (uint32_t)ordo_prng_below(&p, 2);
	c.base.max_inflight_msgs = 1 + (uint32_t)ordo_prng_below(&p, 4);
	c.base.max_msg_entries = 1 + (uint32_t)ordo_prng_below(&p, 4);
	c.base.max_unstable_entries = 16 + (uint32_t)ordo_prng_below(&p, 64);
	uint32_t loss_ppm = (uint32_t)ordo_prng_below(&p, 200000);
	uint32_t dup_ppm = (uint32_t)ordo_prng_below(&p, 100000);
	uint32_t crash_pct = (uint32_t)ordo_prng_below(&p, 3);
	/* Fewer ticks: more progress per term; more: more elections. */
	uint32_t tick_rarity = (uint32_t)ordo_prng_below(&p, 5);
	bool calm = getenv("ORDO_RAFT_CALM") != NULL; /* debugging: no faults */
	/* its own stream, so the schedules above stay what they were */
	ordo_prng_seed(&c.crash_rng, seed ^ 0x5EEDC0DEull);
	c.crash_unwritten_ppm = (uint32_t)ordo_prng_below(&c.crash_rng, 30000);
	if (calm)
		loss_ppm = dup_ppm = crash_pct = c.crash_unwritten_ppm = 0;
	struct raft_conf conf = {0};
	for (uint32_t i = 1; i <= k.n_nodes; i++)
		conf.voters[conf.n++] = i;
	for (uint32_t i = 1; i <= k.n_nodes; i++)
		h_add_node(&c, i, &conf, 0);
	if (verbose)
		fprintf(stderr,
			"seed %" PRIu64 ": %u nodes, T=%u hb=%u inflight=%u loss=%u ppm dup=%u "
			"ppm crash=%u%% crash_unwritten=%u ppm\n",
			seed, k.n_nodes, c.base.election_ticks, c.base.heartbeat_ticks,
			c.base.max_inflight_msgs, loss_ppm, dup_ppm, crash_pct,
			c.crash_unwritten_ppm);
	uint64_t proposals = 0;
	for (int step = 0; step < STEPS && !k.fail[0]; step++) {
		uint64_t id = 1 + ordo_prng_below(&p, k.n_nodes);
		struct h_node *n = &c.nodes[id];
		uint32_t a = (uint32_t)ordo_prng_below(&p, 100);
		if (a < 40) {
			/* A burst of random (hence reordered) deliveries. */
			uint32_t burst = 1 + (uint32_t)ordo_prng_below(&p, 8);
			for (uint32_t b = 0; b < burst && c.n_net; b++) {
				size_t m = (size_t)ordo_prng_below(&p, c.n_net);
				if (ordo_prng_chance_ppm(&p, dup_ppm))
					dup_msg(&c, &p, m);
				else
					h_deliver_one(&c, m, ordo_prng_chance_ppm(&p, loss_ppm));
			}
		} else if (a < 66) {
			h_process_ready(&c, id);
		} else if (a < 76 - tick_rarity) {
			if (n->up)
				raft_tick(n->r);
		} else if (a < 86) {
			if (n->up && !raft_has_update(n->r)) {
				char d[48];
				snprintf(d, sizeof(d), "s%" PRIu64 "-%" PRIu64, seed, ++proposals);
				uint64_t idx;
				int rc = raft_propose(n->r, d, (uint32_t)strlen(d), &idx, NULL);
				ORDO_UNUSED_RESULT(rc);
			}
		} else if (a < 86 + crash_pct) {
			h_crash(&c, id);
		} else if (a < 91) {
			h_restart(&c, id);
		} else if (a < 93 && !calm) {
			/* New partition: each node on side 0 or 1. */
			memset(c.cut, 0, sizeof(c.cut));
			if (ordo_prng_chance_ppm(&p, 600000)) {
				bool side[H_NODES_MAX];
				for (uint32_t i = 1; i <= k.n_nodes; i++)
					side[i] = ordo_prng_chance_ppm(&p, 500000);
				for (uint32_t i = 1; i <= k.n_nodes; i++)
					for (uint32_t j = 1; j <= k.n_nodes; j++)
						if (side[i] != side[j] &&
						    ordo_prng_chance_ppm(&p, 800000))
							c.cut[i][j] = true;
			}
		} else if (a < 95) {
			if (n->up && n->applied > n->log.snap.index && !raft_has_update(n->r)) {
				uint64_t span = n->applied - n->log.snap.index;
				int rc = h_compact(
				    &c, id, n->log.snap.index + 1 + ordo_prng_below(&p, span));
				ORDO_UNUSED_RESULT(rc);
			}
		} else if (a >= 95 + tick_rarity) {
			for (uint64_t i = 1; i <= k.n_nodes; i++)
				if (c.nodes[i].up)
					raft_tick(c.nodes[i].r);
		}
		check_step(&c, &k, step % 25 == 0);
	}
	/* Liveness: heal everything, then a proposal must commit everywhere. */
	memset(c.cut, 0, sizeof(c.cut));
	c.crash_unwritten_ppm = 0;
	for (uint64_t i = 1; i <= k.n_nodes; i++)
		h_restart(&c, i);
	uint64_t want = 0, want_term = 0, want_node = 0;
	int tick = 0;
	for (; tick < LIVENESS_TICKS && !k.fail[0]; tick++) {
		h_stabilize(&c, NULL, 0);
		check_step(&c, &k, false);
		if (want) {
			/* A proposal is lost when its leader loses the term
			 * before replicating it (a client retries): propose
			 * again. Review fix: the check waited for the lost
			 * index forever (seeds 1417 and 1635 of 5000). */
			struct raft_status ps;
			raft_get_status(c.nodes[want_node].r, &ps);
			uint64_t t;
			if ((ps.role != RAFT_LEADER || ps.term != want_term) &&
			    (raft_log_term(c.nodes[want_node].r, want, &t) != 0 || t != want_term ||
			     ps.commit < want))
				want = 0;
		}
		if (want) {
			bool all = true;
			for (uint64_t i = 1; i <= k.n_nodes; i++)
				all &= c.nodes[i].applied >= want;
			if (all)
				break;
		} else {
			for (uint64_t i = 1; i <= k.n_nodes; i++) {
				uint64_t idx;
				if (raft_propose(c.nodes[i].r, "live", 4, &idx, NULL) == 0) {
					struct raft_status ps;
					raft_get_status(c.nodes[i].r, &ps);
					want = idx;
					want_term = ps.term;
					want_node = i;
					break;
				}
			}
		}
		for (uint64_t i = 1; i <= k.n_nodes; i++)
			raft_tick(c.nodes[i].r);
	}
	if (!k.fail[0] && tick == LIVENESS_TICKS)
		FAIL(&k, "liveness: no proposal committed everywhere within %d ticks after healing",
		     LIVENESS_TICKS);
	check_step(&c, &k, true);
	int failed = 0;
	uint64_t terms_led = 0, max_applied = 0;
	for (uint64_t t = 0; t < k.terms_cap; t++)
		terms_led += k.leader_of_term[t] != 0;
	for (uint64_t i = 1; i <= k.n_nodes; i++)
		if (c.nodes[i].applied > max_applied)
			max_applied = c.nodes[i].applied;
	g_terms_led += terms_led;
	g_applied += max_applied;
	if (k.fail[0]) {
		fprintf(stderr,
			"raft safety seed %" PRIu64 " FAILED: %s (replay: raft_test --seed %" PRIu64
			")\n",
			seed, k.fail, seed);
		failed = 1;
	}
	if (verbose && c.out)
		fputs(c.out, stderr);
	free(k.leader_of_term);
	free(k.c_term);
	free(k.c_hash);
	free(k.c_commit_term);
	h_destroy(&c);
	return failed;
}

int raft_safety_run(int seeds, int verbose_seed)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int failed = 0;
	if (verbose_seed >= 0) {
		failed = run_seed((uint64_t)verbose_seed, true);
		seeds = 1;
	} else {
		for (int s = 1; s <= seeds; s++)
			failed += run_seed((uint64_t)s, false);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("raft safety: %d seeds, %d failed, %.2f s (%" PRIu64 " terms with a leader, %" PRIu64
	       " entries committed, summed over seeds)\n",
	       seeds, failed, secs, g_terms_led, g_applied);
	return failed;
}
