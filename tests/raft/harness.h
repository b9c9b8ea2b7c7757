/*
 * In-process cluster of Raft cores for the transcript tests and the
 * randomized safety test: an in-memory durable log per node (struct memlog,
 * behind raft_log_ops), a toy state machine (a running hash of applied
 * entries, snapshotted as 16 bytes), and a network of encoded messages that
 * are delivered only on command, through raft_msg_encode/decode.
 *
 * Not here: the command language (transcript.c) or the random schedule
 * (safety.c).
 */
#ifndef ORDO_RAFT_HARNESS_H
#define ORDO_RAFT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/prng.h"
#include "sequencer/raft/raft.h"

#define H_NODES_MAX 10u /* node ids 1..9 */

/* What survives a crash: snapshot, entries, hard state. */
struct memlog {
	struct raft_snapshot_meta snap;
	uint8_t snap_data[16];	 /* the state machine at snap.index */
	struct raft_entry *ents; /* ents[i].index == snap.index + 1 + i */
	uint64_t n, cap;
	struct raft_hard_state hs;
	void **allocs; /* entry data copies, freed only at destroy */
	size_t n_allocs, cap_allocs;
};

struct cluster;

struct h_node {
	struct cluster *cl;
	uint64_t id; /* 0 = never added */
	bool up;
	struct raft *r;
	struct memlog log;
	uint64_t applied;  /* state machine: last applied index */
	uint64_t hash;	   /* state machine: running hash */
	uint64_t *hash_at; /* hash after applying index i (tests only) */
	uint64_t hash_cap;
	void **held; /* delivered message buffers, freed at the next advance */
	size_t n_held, cap_held;
};

struct h_msg {
	uint64_t from, to;
	uint8_t *buf;
	size_t len;
};

struct cluster;
typedef void h_apply_fn(struct cluster *c, struct h_node *n, const struct raft_entry *e,
			uint64_t hash_after);

struct cluster {
	struct h_node nodes[H_NODES_MAX];
	struct raft_config base; /* timing and capacities for new nodes */
	uint64_t seed;
	struct h_msg *net;
	size_t n_net, cap_net;
	bool cut[H_NODES_MAX][H_NODES_MAX]; /* cut[a][b]: a -> b dropped */
	/* Transcript output. */
	bool verbose; /* print Ready contents and deliveries */
	bool log_on;  /* print core log lines */
	char *out;
	size_t out_len, out_cap;
	h_apply_fn *on_apply; /* safety checker hook, may be NULL */
	void *user;
	/* A leader whose update may send first (msgs_first) dies after sending
	 * and before writing, with this probability (ppm): its appends are out,
	 * its own log never got them. 0 in transcripts. */
	uint32_t crash_unwritten_ppm;
	struct ordo_prng crash_rng;
};

void h_init(struct cluster *c, uint64_t seed);
void h_destroy(struct cluster *c);
__attribute__((format(printf, 2, 3))) void h_printf(struct cluster *c, const char *fmt, ...);

/* Adds node id with an empty log whose snapshot (index, term) holds conf. */
void h_add_node(struct cluster *c, uint64_t id, const struct raft_conf *conf, uint64_t index);
void h_crash(struct cluster *c, uint64_t id);
void h_restart(struct cluster *c, uint64_t id);
/* Handles one update of node id if it has one; returns whether it did. */
bool h_process_ready(struct cluster *c, uint64_t id);
/* Delivers every queued message to id (or drops it); returns the count. */
size_t h_deliver_to(struct cluster *c, uint64_t id, bool drop);
/* Delivers or drops message k of the network queue. */
void h_deliver_one(struct cluster *c, size_t k, bool drop);
/* Loops ready/deliver until quiet (bounded). */
void h_stabilize(struct cluster *c, const uint64_t *ids, size_t n_ids);
/* Takes a snapshot at index (<= applied) and compacts the log through it. */
int h_compact(struct cluster *c, uint64_t id, uint64_t index);

uint64_t memlog_last(const struct memlog *l);
int memlog_term(const struct memlog *l, uint64_t i, uint64_t *t);

void h_fmt_entry(char *buf, size_t cap, const struct raft_entry *e);
void h_fmt_msg(char *buf, size_t cap, const struct raft_msg *m);

#endif
