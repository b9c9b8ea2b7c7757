/*
 * The sequencer state machine of one group member, above its Raft core:
 * admission of client requests through the session table into the batcher,
 * proposal of sealed epochs, application of committed epochs, leadership
 * changes, and the snapshot of the sequencer state. Pure (DESIGN.md §3): no
 * I/O, no clock (times enter as values), no allocation after init.
 *
 * Two drivers run it: sequencer/node.c (real transport, io_uring storage)
 * and sim/ (simulated network, disk and clock). Both handle a Raft update as
 * raft.h requires and call, after persisting it:
 *
 *     seq_machine_soft_state(m, &u);       role or leader changed
 *     ...send u.msgs...
 *     seq_machine_apply_update(m, &u);     committed entries, in order
 *     raft_advance(raft, &u);
 *
 * What a driver must do with the results comes through struct seq_machine_ops:
 * ORDERED OK for requests of the leader's own term, and each applied epoch
 * (kept for replica repair, streamed by the leader).
 *
 * Adding a group (docs/PROTOCOL.md §1.7): seq_machine_group_add is the
 * verdict on a GROUP_ADD; the leader stamps the announcement into an epoch
 * header (seq_batcher_announce), and applying an entry that carries one
 * records it in `joins` (every member). A group that joins later
 * (cfg.joining) admits nothing until its own announcement is applied, then
 * only into epochs from its join epoch on (the batcher's floor); that epoch
 * is in the snapshot (seq_snap_hdr.join_epoch).
 */
#ifndef ORDO_SEQ_MACHINE_H
#define ORDO_SEQ_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sequencer/batcher.h"
#include "sequencer/raft/raft.h"
#include "sequencer/sessions.h"
#include "wire/wire.h"

/* Reply-address changes remembered for pending requests (§3.1.2: ORDERED goes
 * to the latest source). Past it, the reply goes to the first source and the
 * client's retry gets DUPLICATE. 16 bytes each. */
#define SEQ_MACHINE_OVERRIDES_MAX 1024u

/* Where a reply goes: an IPv4 address, a UDP port, the client key (0 none). */
struct seq_reply_to {
	uint32_t ip;
	uint16_t port;
	uint32_t key_id;
};

struct seq_machine_ops {
	/* ORDERED OK for one committed request of this leader's term. */
	void (*ordered)(void *ctx, const struct wire_req *r, const struct wire_place *place,
			const struct seq_reply_to *to);
	/* One committed epoch was applied (every member). leading: this node
	 * leads and the epoch is of its term (it streams it to the replicas). */
	void (*epoch)(void *ctx, const struct wire_epoch_hdr *h, const uint8_t *bytes, uint32_t len,
		      bool leading);
	/* An announcement that `group` joins the merge at first_epoch: this
	 * leader proposes it in the entry of epoch `epoch` (committed false),
	 * or an entry of epoch `epoch` carrying it was applied (committed true,
	 * every member). May be NULL. */
	void (*announce)(void *ctx, uint16_t group, uint64_t first_epoch, uint64_t epoch,
			 bool committed);
	void *ctx;
};

struct seq_machine_cfg {
	struct seq_sessions_cfg sessions;
	struct seq_batcher_cfg batcher;
	struct seq_machine_ops ops;
	/* This group is not a founding group (its id >= founding_groups): it
	 * admits nothing until its own announcement is applied. */
	bool joining;
};

/* A committed announcement: the group joins at first_epoch, announced by
 * the entry of epoch at_epoch. first_epoch 0: none known. */
struct seq_join {
	uint64_t first_epoch;
	uint64_t at_epoch;
};

struct seq_reply_override {
	uint64_t client_id;
	uint64_t request_number;
	struct seq_reply_to to;
};

struct seq_machine {
	struct seq_machine_ops ops;
	struct raft *raft; /* set by seq_machine_attach; not owned */
	struct seq_sessions sessions;
	struct seq_batcher batcher;
	enum raft_role role;	     /* as of the last update */
	uint64_t leader_id;	     /* leader this node believes in, 0 if unknown */
	uint64_t term;		     /* current term, as of the last update */
	uint64_t lead_index;	     /* leader: last log index when it became leader */
	bool ready;		     /* leader: applied through lead_index, may admit */
	uint64_t applied_index;	     /* Raft index applied to the session table */
	uint64_t applied_term;	     /* its term */
	uint64_t applied_ts_ns;	     /* timestamp of the last applied epoch */
	uint64_t committed_epoch;    /* highest committed epoch (the last entry's epoch, the end
					of its run), 0 before the first */
	uint64_t committed_position; /* highest committed group_position */
	uint64_t requests_committed; /* since start */
	uint64_t proposals_refused;  /* raft_propose said -ENOBUFS: retried */
	struct seq_reply_override overrides[SEQ_MACHINE_OVERRIDES_MAX];
	uint32_t noverrides;
	bool joining; /* cfg.joining: the floor is UINT64_MAX until joins[own] is known */
	/* Committed announcements by group (every member). The group's own is
	 * restored from a snapshot; the others are in memory only: after a
	 * restart from a snapshot taken past their entry they are unknown here,
	 * and a GROUP_ADD retry stamps them again (replicas see a repeat). */
	struct seq_join joins[ORDO_GROUPS_MAX];
	/* Leader: E of an announcement per group it proposed in its term, not
	 * yet applied (0 none); cleared when deposed. */
	uint64_t ann_proposed[ORDO_GROUPS_MAX];
};

/* Bytes seq_machine_init allocates for cfg (session table and batcher). */
size_t seq_machine_bytes(const struct seq_machine_cfg *cfg);
ORDO_MUST_CHECK int seq_machine_init(struct seq_machine *m, const struct seq_machine_cfg *cfg);
void seq_machine_free(struct seq_machine *m);
/* The Raft core this machine proposes to (after raft_new). */
void seq_machine_attach(struct seq_machine *m, struct raft *r);

/* The leader's verdict on one request that passed wire_req_validate, sent
 * from `from`. true: answer now with *st (and *place for DUPLICATE). false:
 * no answer now (placed in the open epoch, or already pending: ORDERED OK
 * follows its commit). mono_ns times the epoch; wall_ns is its timestamp. */
bool seq_machine_submit(struct seq_machine *m, const struct wire_req *r,
			const struct seq_reply_to *from, uint64_t mono_ns, uint64_t wall_ns,
			enum wire_status *st, struct wire_place *place);

/* The verdict on GROUP_ADD (docs/PROTOCOL.md §1.7): group joins the merge at
 * first_epoch. The driver has checked that group is one of the cluster
 * file's groups that join later and that the cluster is in every-epoch mode
 * (else -EINVAL). Returns:
 *   0        an entry carrying this very announcement was applied (any
 *            member); *at_epoch = that entry's epoch;
 *   -EEXIST  an announcement of group with another first_epoch was applied;
 *   -EPERM   not the leader (answer with the leader hint);
 *   -EAGAIN  ask again: the leader stamps it into its next sealed epoch, or
 *            it is stamped and not yet applied, or another announcement of
 *            the group is in flight (its outcome decides), or another
 *            group's waits to be sealed, or a new leader is not ready;
 *   -ETIME   the leader's open epoch is numbered first_epoch or later;
 *   -EINVAL  first_epoch 0, or more than 2^32 - 1 epochs ahead. */
ORDO_MUST_CHECK int seq_machine_group_add(struct seq_machine *m, uint16_t group,
					  uint64_t first_epoch, uint64_t wall_ns,
					  uint64_t *at_epoch);

/* Nanoseconds until the leader's open epoch is due (seq_batcher_due_in);
 * UINT64_MAX unless this node leads and is ready (a follower has nothing to
 * seal, so it waits for messages and ticks only). */
uint64_t seq_machine_due_in(const struct seq_machine *m, uint64_t mono_ns, uint64_t wall_ns);
/* Seals a due epoch (leader, ready) and proposes sealed epochs to Raft;
 * every_epoch: an epoch per wall-clock slot, empty or not. */
void seq_machine_tick(struct seq_machine *m, uint64_t mono_ns, uint64_t wall_ns);
/* Proposes sealed epochs, oldest first, while the core takes them. */
void seq_machine_propose(struct seq_machine *m);

/* Role or leader changed in u (after its persistence): a deposed leader drops
 * what only a leader holds, a new one admits nothing until the entries of
 * earlier terms are applied. true if role or leader changed. */
bool seq_machine_soft_state(struct seq_machine *m, const struct raft_update *u);
/* Applies u's committed entries in order (call before raft_advance). */
void seq_machine_apply_update(struct seq_machine *m, const struct raft_update *u);

/* Snapshot of the committed state at the applied index into out[cap]: its
 * length and the Raft metadata (conf from the core). -ENOBUFS if too small. */
ORDO_MUST_CHECK int seq_machine_snapshot(const struct seq_machine *m, uint8_t *out, size_t cap,
					 size_t *len, struct raft_snapshot_meta *meta);
/* Restores the committed state from a snapshot that must be the state at
 * meta's (index, term). -EBADMSG / -EINVAL as seq_sessions_snapshot_read,
 * -EBADMSG if it is the state at another index. */
ORDO_MUST_CHECK int seq_machine_restore(struct seq_machine *m, const uint8_t *data, uint64_t len,
					const struct raft_snapshot_meta *meta);

#endif
