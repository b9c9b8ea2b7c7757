/*
 * The pure Raft core of the sequencer group: one Raft log whose entries are
 * epochs. After Ongaro, "Consensus: Bridging Theory and Practice" (thesis,
 * 2014) and the shape of etcd-io/raft (raft.go, rawnode.go):
 *
 *   - §3.4 leader election with randomized timeouts in [T, 2T) ticks, drawn
 *     from a seeded ordo_prng (no libc randomness, no clock);
 *   - §3.5 log replication, pipelined and batched, with per-follower flow
 *     control (probe / replicate / snapshot states, bounded messages and
 *     bytes in flight), fast conflict repair with a (term, index) hint;
 *   - §3.6.2 / Figure 3.7: a leader commits only by counting replicas of an
 *     entry of its own term, and appends a no-op at the start of its term;
 *   - §4.2-4.3 single-server membership changes: a configuration entry takes
 *     effect when appended; at most one is uncommitted; a removed leader steps
 *     down once its removal is committed;
 *   - §5 snapshots: log_ops supplies the snapshot, InstallSnapshot carries it;
 *   - §6.2 CheckQuorum, §6.4 leadership transfer (TimeoutNow), §9.6 PreVote,
 *     with etcd's lease check ("leader stickiness") so both are safe together.
 *
 * What lives here: the state machine, its inputs and its update. What does
 * not: I/O, clocks, storage formats, threads. The core allocates only in
 * raft_new(); every capacity comes from struct raft_config.
 *
 * Driving the core (the persistence rule):
 *
 *   1. Inputs: raft_step(), raft_tick(), raft_propose(), raft_campaign(),
 *      raft_transfer_leadership(), raft_add_node(), raft_remove_node(),
 *      raft_compact().
 *   2. When raft_has_update(), call raft_ready() to get a struct raft_update.
 *      Between raft_ready() and raft_advance() the only inputs allowed are
 *      raft_persisted() and raft_snapshot_applied() (asserted): queue any
 *      message that arrives meanwhile and step it after raft_advance().
 *   3. Handle the update in this order:
 *        a. install u.snapshot if any (storage reset to it, state machine
 *           restored), then raft_snapshot_applied(r, index);
 *        b. write u.entries: the first one replaces the log from its index on
 *           (truncate the suffix, then append); write u.hard_state if
 *           u.has_hard_state; make both durable when u.must_sync (fsync);
 *           then raft_persisted(r, term, index) of the last entry written;
 *        c. only then send u.msgs: every message in an update is sent after
 *           that update's snapshot, hard state and entries are durable (a
 *           vote, an append acknowledgement and a leader's own counting all
 *           depend on them), as etcd's synchronous Ready does. The one
 *           exception is u.msgs_first: a leader's update that changes no
 *           term, vote, role or snapshot may send its msgs first, so the
 *           followers write while the leader does (Raft thesis §10.2.1;
 *           the leader counts itself only from raft_persisted());
 *        d. apply u.committed in order;
 *        e. raft_advance(r, &u).
 *      raft_persisted() may also come later (asynchronous fsync): the leader
 *      then counts itself only from that call on. Report persistence in log
 *      order.
 *   4. Memory: every pointer in an update is valid until raft_advance(). The
 *      log behind raft_log_ops must keep bytes it returned valid until the
 *      raft_advance() of the next update handed out after the call (free
 *      truncated or compacted entries lazily). For RAFT_MSG_SNAP, the caller
 *      of raft_step() keeps m->snap_data valid until the next raft_advance().
 *
 * The core never hands out an entry as committed before a majority of the
 * current configuration holds it durably (the leader counts its own log only
 * once raft_persisted() said so), and never hands out a committed entry that
 * is not durable locally.
 */
#ifndef ORDO_RAFT_H
#define ORDO_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"

/* Most voters in one configuration (conf entries and snapshots carry them). */
#define RAFT_VOTERS_MAX 9u

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRE_CANDIDATE = 1, /* §9.6: polling without raising the term */
	RAFT_CANDIDATE = 2,
	RAFT_LEADER = 3,
};

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0, /* an epoch; the leader's no-op is NORMAL with len 0 */
	RAFT_ENTRY_CONF = 1,   /* data: a struct raft_conf, see raft_conf_encode() */
};

struct raft_entry {
	uint64_t term;	  /* term of the leader that created it; >= 1 */
	uint64_t index;	  /* position in the log; >= 1 */
	const void *data; /* len bytes, owned by whoever handed the entry out */
	uint32_t len;	  /* payload bytes */
	uint8_t type;	  /* enum raft_entry_type */
};

/* A configuration: the set of voters. ids distinct, nonzero, ascending. */
struct raft_conf {
	uint32_t n;			  /* voters, <= RAFT_VOTERS_MAX */
	uint64_t voters[RAFT_VOTERS_MAX]; /* node ids */
};

struct raft_snapshot_meta {
	uint64_t index;	       /* last log index the snapshot covers */
	uint64_t term;	       /* term of that entry */
	struct raft_conf conf; /* latest configuration at or before index */
};

struct raft_snapshot {
	struct raft_snapshot_meta meta;
	const void *data; /* opaque application state (sessions, epoch counter, ...) */
	uint64_t len;	  /* bytes */
};

/* What must be durable before any message of the same update is sent. */
struct raft_hard_state {
	uint64_t term;	 /* current term; never decreases */
	uint64_t vote;	 /* node voted for in term, 0 = none */
	uint64_t commit; /* highest index known committed; never decreases */
};

/* Internal datagram types 19-30 (PROTOCOL.md internal range); 30 spare. */
enum raft_msg_type {
	RAFT_MSG_APP = 19,	/* AppendEntries: prev log_term/index, entries, commit */
	RAFT_MSG_APP_RESP = 20, /* index = last matching index, or rejected prev */
	RAFT_MSG_VOTE = 21,	/* RequestVote: log_term/index = candidate's last */
	RAFT_MSG_VOTE_RESP = 22,
	RAFT_MSG_PREVOTE = 23, /* term = the term the sender would campaign in */
	RAFT_MSG_PREVOTE_RESP = 24,
	RAFT_MSG_SNAP = 25,	 /* InstallSnapshot: snap meta + data */
	RAFT_MSG_SNAP_RESP = 26, /* index = snapshot index now held */
	RAFT_MSG_TIMEOUT_NOW = 27,
	RAFT_MSG_HEARTBEAT = 28, /* commit = min(follower's match, leader commit) */
	RAFT_MSG_HEARTBEAT_RESP = 29,
};
#define RAFT_MSG_TYPE_MIN RAFT_MSG_APP
#define RAFT_MSG_TYPE_MAX RAFT_MSG_HEARTBEAT_RESP

struct raft_msg {
	uint8_t type;  /* enum raft_msg_type */
	bool reject;   /* responses: request refused */
	bool force;    /* VOTE during leadership transfer: bypass the lease check */
	uint64_t from; /* sender id, nonzero */
	uint64_t to;   /* receiver id, nonzero */
	uint64_t term; /* sender's term (PREVOTE: the proposed term) */
	/* APP: prev entry's term; VOTE/PREVOTE: candidate's last term;
	 * APP_RESP reject: the hint term (see reject_hint). */
	uint64_t log_term;
	/* APP: prev entry's index; VOTE/PREVOTE: candidate's last index;
	 * APP_RESP: last index now matching (success) or the rejected prev index;
	 * HEARTBEAT: last index the leader had sent before it (0 unless
	 * replicating), echoed by HEARTBEAT_RESP to detect lost appends. */
	uint64_t index;
	uint64_t commit; /* APP/HEARTBEAT: leader's commit (capped for heartbeats) */
	/* APP_RESP reject: the largest index <= min(rejected, follower's last)
	 * whose term is <= the rejected prev term; log_term is that term. The
	 * leader skips back to the same bound in its own log (fast repair). */
	uint64_t reject_hint;
	const struct raft_entry *entries; /* APP: entries index+1.. in order */
	uint32_t n_entries;
	struct raft_snapshot_meta snap; /* SNAP */
	const void *snap_data;		/* SNAP: opaque bytes */
	uint64_t snap_len;
};

/*
 * The caller's durable log (storage/ in the node, an in-memory log in tests).
 * It holds a snapshot (index s, term) and entries s+1 .. last.
 */
struct raft_log_ops {
	/* Index of the first entry held (snapshot index + 1). */
	uint64_t (*first_index)(void *ctx);
	/* Index of the last entry held (the snapshot index if there is none). */
	uint64_t (*last_index)(void *ctx);
	/* Term of entry index; index first-1 answers the snapshot's term.
	 * -ENOENT if index < first-1 (compacted) or index > last. */
	int (*term_at)(void *ctx, uint64_t index, uint64_t *term);
	/* Fill out[] with entries lo .. hi-1 (lo < hi), at most max_n, and stop
	 * before exceeding max_bytes of payload (but always at least one).
	 * Returns the count, or -ENOENT if lo is compacted. */
	int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		       struct raft_entry *out, uint32_t max_n);
	/* Metadata of the latest snapshot (index 0 term 0 when none). */
	void (*snapshot_meta)(void *ctx, struct raft_snapshot_meta *out);
	/* Latest snapshot with its data, to send to a follower behind the
	 * compacted log; -EAGAIN if not available now (retried later). */
	int (*snapshot)(void *ctx, struct raft_snapshot *out);
};

typedef void raft_logger_fn(void *ctx, const char *line);

struct raft_config {
	uint64_t id;		       /* this node, nonzero */
	uint32_t election_ticks;       /* T: timeout randomized in [T, 2T); > heartbeat */
	uint32_t heartbeat_ticks;      /* leader heartbeat interval, >= 1 */
	uint32_t max_msg_entries;      /* entries per AppendEntries, >= 1 */
	uint64_t max_msg_bytes;	       /* payload bytes per AppendEntries (>= 1 entry) */
	uint32_t max_inflight_msgs;    /* AppendEntries in flight per follower */
	uint64_t max_inflight_bytes;   /* payload bytes in flight per follower */
	uint32_t max_unstable_entries; /* in-memory tail (not yet released) */
	uint64_t max_unstable_bytes;   /* arena for that tail; >= max_entry_bytes */
	uint32_t max_entry_bytes;      /* largest entry accepted */
	uint32_t max_apply_entries;    /* committed entries per update */
	uint64_t max_apply_bytes;      /* committed payload bytes per update */
	uint64_t prng_seed;	       /* election timeout randomization */
	/* Restart state: the durable hard state and the index the application
	 * state already reflects (its snapshot); committed entries after it are
	 * handed out again. */
	struct raft_hard_state hard_state;
	uint64_t applied;
	const struct raft_log_ops *log;
	void *log_ctx;
	raft_logger_fn *logger; /* may be NULL; one line per state change */
	void *logger_ctx;
};

/* Fills the defaults for every capacity (id, log and seed left as given). */
void raft_config_defaults(struct raft_config *c);

struct raft_update {
	bool has_hard_state; /* hard_state changed since the last update */
	struct raft_hard_state hard_state;
	bool has_soft_state; /* role or leader changed (not persisted) */
	enum raft_role role;
	uint64_t lead;
	/* Entries to write; entries[0].index replaces the log from there on. */
	const struct raft_entry *entries;
	uint32_t n_entries;
	const struct raft_snapshot *snapshot; /* to install, or NULL */
	const struct raft_msg *msgs;	      /* to send after persistence */
	uint32_t n_msgs;
	const struct raft_entry *committed; /* to apply, in order */
	uint32_t n_committed;
	bool must_sync; /* term/vote, entries or snapshot changed: fsync */
	/* A leader's update that changes no term, vote, role, leader or
	 * snapshot: msgs may be sent before (or while) entries are written
	 * (step 3c's exception) */
	bool msgs_first;
};

struct raft_progress_status {
	uint64_t id;
	uint64_t match; /* highest index known replicated on id */
	uint64_t next;	/* next index to send */
	uint8_t state;	/* 0 probe, 1 replicate, 2 snapshot */
	uint32_t inflight_msgs;
	bool recent_active;
};

struct raft_status {
	uint64_t id;
	enum raft_role role;
	uint64_t term, vote, lead, commit, applied;
	uint64_t first_index, last_index, last_term, stable_index;
	uint64_t transferee;
	struct raft_conf conf;
	uint64_t conf_index;
	uint32_t n_progress; /* leader only */
	struct raft_progress_status progress[RAFT_VOTERS_MAX];
};

struct raft;

/* Allocates everything the core will ever use; reads the log's tail to find
 * the latest configuration. -EINVAL on a bad config or inconsistent state. */
ORDO_MUST_CHECK int raft_new(const struct raft_config *cfg, struct raft **out);
void raft_free(struct raft *r);

/* A message from a peer. 0, or -EINVAL for a message that is malformed or
 * not for us (dropped; the caller counts it): wrong type or addressee, a term
 * or index >= 2^62, entries not numbered from index + 1 or with terms out of
 * order, a snapshot with an invalid configuration. Never asserts on message
 * content. */
ORDO_MUST_CHECK int raft_step(struct raft *r, const struct raft_msg *m);
/* One logical tick. */
void raft_tick(struct raft *r);
/* Starts an election (PreVote first), as if the timeout had elapsed. */
void raft_campaign(struct raft *r);
/*
 * Appends one entry (leader only). 0 and *index; -EPERM not leader
 * (*leader_hint = known leader or 0); -EBUSY transferring leadership;
 * -ENOBUFS unstable window full (retry after persistence); -EMSGSIZE too big.
 * leader_hint and index may be NULL.
 */
ORDO_MUST_CHECK int raft_propose(struct raft *r, const void *data, uint32_t len, uint64_t *index,
				 uint64_t *leader_hint);
/* Single-server membership change (§4.2). Same errors as raft_propose, plus
 * -EBUSY another change is uncommitted, -EEXIST / -ENOENT, -ENOSPC full. */
ORDO_MUST_CHECK int raft_add_node(struct raft *r, uint64_t id, uint64_t *index);
ORDO_MUST_CHECK int raft_remove_node(struct raft *r, uint64_t id, uint64_t *index);
/* §6.4: hand leadership to `to` once it is caught up (TimeoutNow). Aborted
 * after an election timeout. -EPERM not leader, -EINVAL not a voter/self. */
ORDO_MUST_CHECK int raft_transfer_leadership(struct raft *r, uint64_t to);
/* Entries up to index (whose term is term) are durable in the log. */
void raft_persisted(struct raft *r, uint64_t term, uint64_t index);
/* The snapshot handed out in an update is installed and durable. */
void raft_snapshot_applied(struct raft *r, uint64_t index);
/* The application snapshotted its state at index and may compact the log
 * through it: 0, or -EINVAL unless index <= applied. The log itself (behind
 * raft_log_ops) does the compaction. */
ORDO_MUST_CHECK int raft_compact(struct raft *r, uint64_t index);

bool raft_has_update(const struct raft *r);
void raft_ready(struct raft *r, struct raft_update *u);
void raft_advance(struct raft *r, const struct raft_update *u);

void raft_get_status(const struct raft *r, struct raft_status *s);
uint64_t raft_leader(const struct raft *r);
/* Term of entry index in the core's view of the log (durable + unstable);
 * -ENOENT if compacted or beyond the last index. */
ORDO_MUST_CHECK int raft_log_term(const struct raft *r, uint64_t index, uint64_t *term);
const char *raft_role_name(enum raft_role role);
const char *raft_msg_type_name(uint8_t type);

/* Configuration entry payload: u32 n, then n u64 ids (little-endian). */
#define RAFT_CONF_BYTES_MAX (4u + 8u * RAFT_VOTERS_MAX)
uint32_t raft_conf_encode(const struct raft_conf *c, uint8_t out[RAFT_CONF_BYTES_MAX]);
ORDO_MUST_CHECK int raft_conf_decode(const void *p, uint32_t len, struct raft_conf *c);
bool raft_conf_has(const struct raft_conf *c, uint64_t id);

/*
 * Wire form (all integers little-endian, no padding between fields):
 *
 *   off  size  field
 *     0     1  type (19..29)
 *     1     1  flags: bit0 reject, bit1 force; other bits 0
 *     2     2  reserved, 0
 *     4     4  n_entries (APP only, else 0)
 *     8     8  from
 *    16     8  to
 *    24     8  term
 *    32     8  log_term
 *    40     8  index
 *    48     8  commit
 *    56     8  reject_hint
 *    64        body
 *
 *   APP body: n_entries times { u64 term, u32 len, u8 type, 3 bytes 0,
 *             len bytes data }; entry k has index = index + 1 + k.
 *   SNAP body: u64 snap index, u64 snap term, u32 n_voters, u32 0,
 *             n_voters u64 ids, u64 data_len, data_len bytes.
 *   Others: no body.
 */
#define RAFT_MSG_HDR_BYTES   64u
#define RAFT_MSG_ENTRY_BYTES 16u
size_t raft_msg_encoded_len(const struct raft_msg *m);
/* Returns bytes written, or -EMSGSIZE if cap is too small. */
ORDO_MUST_CHECK long raft_msg_encode(const struct raft_msg *m, void *buf, size_t cap);
/* Parses buf into m; entries go to ents[ents_cap], data pointers point into
 * buf. Every length is checked: -EBADMSG on any malformed input. */
ORDO_MUST_CHECK int raft_msg_decode(const void *buf, size_t len, struct raft_msg *m,
				    struct raft_entry *ents, uint32_t ents_cap);

#endif
