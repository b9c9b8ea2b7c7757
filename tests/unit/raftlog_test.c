/*
 * sequencer/raftlog.c: the Raft core on the real io_uring segment log.
 * Three cores in one process, each on its own formatted data directory,
 * messages passed through their wire encoding. Nodes crash (the core and the
 * log are closed with nothing more written) and restart from disk; the
 * others snapshot and compact so a node that was down long catches up by
 * InstallSnapshot. Every node must apply the same entries in the same order
 * (a hash chain over what was applied), and nothing a majority acknowledged
 * may be lost.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/le.h"
#include "common/prng.h"
#include "sequencer/raftlog.h"
#include "storage/format.h"
#include "xxhash.h"

#define N	3
#define QMAX	4096
#define MSG_MAX (2u << 20)

struct tnode {
	uint64_t id;
	char dir[128];
	struct seq_raftlog rl;
	struct raft *r;
	bool up;
	uint64_t napplied; /* state machine: entries applied (log index) */
	uint64_t chain;	   /* hash chain over applied payloads */
};

struct qmsg {
	uint64_t to;
	uint32_t len;
	uint8_t *bytes;
};

static struct tnode nodes[N];
static struct qmsg queue[QMAX];
static uint32_t qlen;
static char root[] = "/tmp/ordo-raftlog-XXXXXX";
static uint64_t chains[N][4096]; /* chain after applying index i, per node */

static struct seq_raftlog_cfg rl_cfg(struct tnode *t)
{
	return (struct seq_raftlog_cfg){.dir = t->dir,
					.cluster_id = 77,
					.node_id = (uint32_t)t->id,
					.fsync = true,
					.segment_bytes = 1u << 20,
					.entry_bytes_max = 64u << 10,
					.read_arena_bytes = 8u << 20,
					.snapshot_bytes_max = 4096};
}

static void start(struct tnode *t)
{
	struct seq_raftlog_cfg c = rl_cfg(t);
	struct raft_hard_state hs;
	char err[512];
	int rc = seq_raftlog_open(&t->rl, &c, &hs, err, sizeof err);
	cr_assert_eq(rc, 0, "open %s: %s", t->dir, err);
	/* restore the state machine from the snapshot */
	uint64_t len;
	const uint8_t *d = seq_raftlog_snapshot_data(&t->rl, &len);
	t->napplied = 0;
	t->chain = 0;
	if (d) {
		cr_assert_eq(len, 16);
		t->napplied = ordo_ld64(d);
		t->chain = ordo_ld64(d + 8);
	}
	struct raft_config rc_cfg;
	memset(&rc_cfg, 0, sizeof rc_cfg);
	raft_config_defaults(&rc_cfg);
	rc_cfg.id = t->id;
	rc_cfg.prng_seed = t->id * 1000 + 7;
	rc_cfg.hard_state = hs;
	rc_cfg.applied = t->napplied;
	rc_cfg.log = &seq_raftlog_ops;
	rc_cfg.log_ctx = &t->rl;
	rc_cfg.max_inflight_bytes = 1u << 20;
	rc_cfg.max_apply_bytes = 1u << 20;
	rc_cfg.max_entry_bytes = 64u << 10;
	cr_assert_eq(raft_new(&rc_cfg, &t->r), 0);
	t->up = true;
}

static void crash(struct tnode *t)
{
	raft_free(t->r);
	seq_raftlog_close(&t->rl);
	t->up = false;
}

static void apply(struct tnode *t, const struct raft_entry *e)
{
	cr_assert_eq(e->index, t->napplied + 1, "node %lu applies %lu after %lu",
		     (unsigned long)t->id, (unsigned long)e->index, (unsigned long)t->napplied);
	uint8_t buf[8 + 64];
	ordo_st64(buf, t->chain);
	uint32_t n = e->len < 64 ? e->len : 64;
	memcpy(buf + 8, e->data, n);
	t->chain = XXH3_64bits(buf, 8 + n) ^ e->index;
	t->napplied = e->index;
	uint64_t *c = &chains[t->id - 1][e->index % 4096];
	/* the same index applied by any node (now or before a crash) hashes the same */
	for (int k = 0; k < N; k++)
		if (chains[k][e->index % 4096] && e->index < 4096)
			cr_assert_eq(chains[k][e->index % 4096], t->chain,
				     "index %lu differs between node %d and node %lu",
				     (unsigned long)e->index, k + 1, (unsigned long)t->id);
	*c = t->chain;
}

static void handle_updates(struct tnode *t)
{
	while (raft_has_update(t->r)) {
		struct raft_update u;
		raft_ready(t->r, &u);
		if (u.snapshot) {
			uint8_t *b = seq_raftlog_snapshot_buf(&t->rl);
			memcpy(b, u.snapshot->data, u.snapshot->len);
			cr_assert_eq(seq_raftlog_save_snapshot(&t->rl, &u.snapshot->meta, b,
							       u.snapshot->len),
				     0);
			t->napplied = ordo_ld64(b);
			t->chain = ordo_ld64(b + 8);
			raft_snapshot_applied(t->r, u.snapshot->meta.index);
		}
		cr_assert_eq(seq_raftlog_persist(&t->rl, t->r, &u), 0);
		for (uint32_t i = 0; i < u.n_msgs; i++) {
			cr_assert_lt(qlen, QMAX);
			struct qmsg *q = &queue[qlen++];
			q->to = u.msgs[i].to;
			q->bytes = malloc(raft_msg_encoded_len(&u.msgs[i]));
			long k =
			    raft_msg_encode(&u.msgs[i], q->bytes, raft_msg_encoded_len(&u.msgs[i]));
			cr_assert_gt(k, 0);
			q->len = (uint32_t)k;
		}
		for (uint32_t i = 0; i < u.n_committed; i++)
			apply(t, &u.committed[i]);
		raft_advance(t->r, &u);
		seq_raftlog_advance(&t->rl);
	}
}

static void deliver(struct ordo_prng *rng, uint32_t loss_ppm)
{
	static struct raft_entry ents[1024];
	uint32_t n = qlen;
	qlen = 0;
	static struct qmsg batch[QMAX];
	memcpy(batch, queue, n * sizeof *batch);
	for (uint32_t i = 0; i < n; i++) {
		struct tnode *t = &nodes[batch[i].to - 1];
		if (t->up && !ordo_prng_chance_ppm(rng, loss_ppm)) {
			struct raft_msg m;
			cr_assert_eq(raft_msg_decode(batch[i].bytes, batch[i].len, &m, ents, 1024),
				     0);
			int rc = raft_step(t->r, &m);
			cr_assert(rc == 0 || rc == -EINVAL); /* stale messages are dropped */
		}
		free(batch[i].bytes);
	}
}

static struct tnode *leader(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].up) {
			struct raft_status s;
			raft_get_status(nodes[i].r, &s);
			if (s.role == RAFT_LEADER)
				return &nodes[i];
		}
	return NULL;
}

static void maybe_snapshot(struct tnode *t)
{
	struct raft_status s;
	raft_get_status(t->r, &s);
	if (t->napplied < t->rl.snap.index + 40)
		return;
	struct raft_snapshot_meta m = {.index = t->napplied, .conf = s.conf};
	cr_assert_eq(raft_log_term(t->r, m.index, &m.term), 0);
	uint8_t *b = seq_raftlog_snapshot_buf(&t->rl);
	ordo_st64(b, t->napplied);
	ordo_st64(b + 8, t->chain);
	cr_assert_eq(seq_raftlog_save_snapshot(&t->rl, &m, b, 16), 0);
	cr_assert_eq(raft_compact(t->r, m.index), 0);
}

static void step_all(struct ordo_prng *rng, uint32_t loss_ppm, bool snapshots)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].up) {
			raft_tick(nodes[i].r);
			handle_updates(&nodes[i]);
			if (snapshots)
				maybe_snapshot(&nodes[i]);
		}
	deliver(rng, loss_ppm);
	for (int i = 0; i < N; i++)
		if (nodes[i].up)
			handle_updates(&nodes[i]);
}

static void setup(void)
{
	cr_assert_not_null(mkdtemp(root));
	for (int i = 0; i < N; i++) {
		nodes[i].id = (uint64_t)i + 1;
		snprintf(nodes[i].dir, sizeof nodes[i].dir, "%s/n%d", root, i + 1);
		struct stor_identity id;
		stor_identity_default(&id, 77, (uint32_t)(i + 1));
		char err[256];
		cr_assert_eq(stor_format(nodes[i].dir, &id, false, err, sizeof err), 0, "%s", err);
	}
}

static void teardown(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].up)
			crash(&nodes[i]);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
}

/* Proposes at the leader until `count` more entries are committed there. */
static uint64_t propose(struct ordo_prng *rng, uint64_t count, uint32_t loss_ppm, bool snaps)
{
	uint64_t done = 0, seq = 0;
	for (int steps = 0; steps < 20000 && done < count; steps++) {
		struct tnode *l = leader();
		if (l) {
			uint8_t p[48];
			for (int k = 0; k < 48; k++)
				p[k] = (uint8_t)(seq * 13 + k);
			uint64_t idx;
			if (raft_propose(l->r, p, sizeof p, &idx, NULL) == 0)
				seq++;
			uint64_t before = l->napplied;
			step_all(rng, loss_ppm, snaps);
			if (l->napplied > before)
				done += l->napplied - before;
		} else {
			step_all(rng, loss_ppm, snaps);
		}
	}
	return done;
}

static void bootstrap(void)
{
	/* A fresh group: each node starts with the same configuration, as the
	 * node driver will write it (a conf entry at index 1). */
	for (int i = 0; i < N; i++) {
		start(&nodes[i]);
		struct raft_conf c = {.n = N, .voters = {1, 2, 3}};
		uint8_t b[RAFT_CONF_BYTES_MAX];
		uint32_t len = raft_conf_encode(&c, b);
		struct raft_entry e = {
		    .term = 1, .index = 1, .data = b, .len = len, .type = RAFT_ENTRY_CONF};
		struct raft_update u = {.entries = &e,
					.n_entries = 1,
					.has_hard_state = true,
					.hard_state = {.term = 1}};
		cr_assert_eq(seq_raftlog_persist(&nodes[i].rl, nodes[i].r, &u), 0);
		crash(&nodes[i]);
		start(&nodes[i]);
	}
}

Test(raftlog, replicate_crash_restart_snapshot, .init = setup, .fini = teardown, .timeout = 120)
{
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 11);
	bootstrap();
	cr_assert_geq(propose(&rng, 100, 0, false), 100, "a healthy group commits");
	/* crash-restart each node in turn under 2% loss */
	for (int round = 0; round < 6; round++) {
		struct tnode *victim = round % 2 ? leader() : &nodes[round % N];
		if (!victim)
			victim = &nodes[0];
		crash(victim);
		cr_assert_geq(propose(&rng, 30, 20000, false), 30, "round %d: two nodes commit",
			      round);
		start(victim);
		propose(&rng, 10, 20000, false);
	}
	/* node 3 down while the others snapshot and compact past it */
	crash(&nodes[2]);
	cr_assert_geq(propose(&rng, 200, 0, true), 200);
	cr_assert_gt(nodes[0].rl.snap.index, 100, "node 1 snapshotted");
	start(&nodes[2]);
	struct tnode *l = leader();
	for (int steps = 0; steps < 5000 && (!l || nodes[2].napplied < l->napplied); steps++) {
		step_all(&rng, 0, true);
		l = leader();
	}
	cr_assert_not_null(l);
	cr_assert_eq(nodes[2].napplied, l->napplied, "node 3 caught up (%lu of %lu)",
		     (unsigned long)nodes[2].napplied, (unsigned long)l->napplied);
	cr_assert_gt(nodes[2].rl.snap.index, 0, "node 3 caught up through InstallSnapshot");
	for (int i = 0; i < N; i++)
		cr_assert_eq(nodes[i].chain, l->chain, "node %d state differs", i + 1);
	/* and all of it survives a full restart */
	uint64_t want = l->napplied, chain = l->chain;
	for (int i = 0; i < N; i++) {
		crash(&nodes[i]);
		start(&nodes[i]);
	}
	propose(&rng, 5, 0, false);
	l = leader();
	cr_assert_not_null(l);
	cr_assert_geq(l->napplied, want + 1);
	uint64_t c = chains[l->id - 1][want % 4096];
	cr_assert(want >= 4096 || c == chain, "the order before the restart is kept");
}
