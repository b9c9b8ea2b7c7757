/*
 * The epoch batcher: gathers admitted requests into the open epoch and seals
 * it at epoch_us after its first request or when the next request would pass
 * epoch_bytes, whichever comes first (Calvin §3: epochs of fixed duration).
 * Pure: time enters as a value; buffers are fixed at init.
 *
 * Every-epoch mode (cfg.every_epoch; several sequencer groups, SCALEOUT.md
 * piece 1): epoch number n is the wall-clock slot [n * E, (n + 1) * E) with
 * E = epoch_us * 1000 ns since the Unix epoch, so every group numbers alike.
 * The open epoch is numbered when it opens (at the first add or tick after
 * the previous seal): max(next_epoch, wall_ns / E), and covers from_epoch =
 * next_epoch .. epoch (a run when ticks or ring room were missing: the
 * epochs before `epoch` are empty in this group). It is sealed, empty or
 * not, by the first tick at or after the end of its slot that finds room in
 * the ring; never early: a request that does not fit is refused (-ENOBUFS),
 * or a busy group would number ahead of the wall clock. With every_epoch
 * false (one group) nothing of this applies: epochs are consecutive, never
 * empty, from_epoch == epoch.
 *
 * Sealed epochs wait in a ring of epochs_inflight slots until the driver
 * reports them committed; when the ring is full the batcher refuses
 * (OVERLOADED), never grows. Each epoch is the byte string of wire.h's epoch
 * format and becomes one log entry.
 *
 * Floor (adding a group, docs/PROTOCOL.md §1.7): seq_batcher_set_min_epoch
 * refuses every add into an epoch numbered below it, so a group that joins
 * the cluster at epoch E orders nothing before E (UINT64_MAX: nothing at
 * all, until its announcement is applied). Epochs are still sealed, empty.
 *
 * Announcement: seq_batcher_announce stamps "group g joins at epoch E"
 * (join_group = g + 1, join_after = E - epoch) into the header of the next
 * epoch sealed, provided that epoch is numbered below E; one announcement
 * waits at a time.
 *
 * Memory: (epochs_inflight + 1) * epoch_bytes.
 */
#ifndef ORDO_SEQ_BATCHER_H
#define ORDO_SEQ_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

struct seq_batcher_cfg {
	uint32_t epoch_us;    /* seal this long after the epoch's first request; every_epoch:
				 the length of a wall-clock slot */
	uint32_t epoch_bytes; /* an epoch never exceeds this, header included */
	uint32_t inflight;    /* sealed, uncommitted epochs held at most */
	uint16_t group;
	bool every_epoch; /* several groups: one epoch per wall-clock slot, empty or not */
};

struct seq_epoch_buf {
	uint8_t *bytes; /* epoch_bytes capacity */
	uint32_t len;	/* bytes used, header included */
	struct wire_epoch_hdr hdr;
};

struct seq_batcher {
	struct seq_batcher_cfg cfg;
	void *mem;
	struct seq_epoch_buf open;	/* the epoch being filled; open.hdr.epoch 0: none open */
	uint64_t open_since_ns;		/* time of the open epoch's first request (mono) */
	struct seq_epoch_buf *ring;	/* sealed epochs awaiting commit */
	uint32_t ring_head, ring_count; /* oldest at ring_head */
	uint32_t ring_handed;	/* of ring_count, how many seq_batcher_next_sealed gave out */
	uint64_t next_epoch;	/* successor of the last sealed epoch: the open epoch's
				   number (every_epoch: its from_epoch) */
	uint64_t next_position; /* group_position of the next request */
	uint64_t min_epoch;	/* adds into an epoch numbered below it are refused; 0 none,
				   UINT64_MAX every add; kept by seq_batcher_reset */
	uint16_t ann_group;	/* group id + 1 of the announcement the next seal stamps; 0 none */
	uint64_t ann_first_epoch; /* its join epoch E, > 0 */
	uint64_t ann_missed;	  /* announcements dropped: the epoch sealed was E or later */
};

size_t seq_batcher_bytes(const struct seq_batcher_cfg *cfg);
/* first_epoch and first_position continue an existing log (1 and 1 when new). */
ORDO_MUST_CHECK int seq_batcher_init(struct seq_batcher *b, const struct seq_batcher_cfg *cfg,
				     uint64_t first_epoch, uint64_t first_position);
void seq_batcher_free(struct seq_batcher *b);
/* Drops the open and every sealed epoch and continues the order at
 * first_epoch / first_position (a new leader continuing its log: committed
 * epoch + 1; every_epoch: the from_epoch of its first entry, which runs up
 * to the current slot). No allocation. */
void seq_batcher_reset(struct seq_batcher *b, uint64_t first_epoch, uint64_t first_position);

/* Appends one request to the open epoch. Returns 0 and its place, or -ENOBUFS
 * when it cannot be taken now (the open epoch is full and no sealed slot is
 * free; every_epoch: the open epoch is full; or the epoch it would go into
 * is numbered below the floor, seq_batcher_set_min_epoch): answer
 * OVERLOADED. If r does not fit in the open epoch, the open epoch is sealed
 * first (stamped wall_ns) and r opens the next one (not in every_epoch mode). mono_ns times
 * epoch_us; wall_ns is the timestamp sealed into epochs (every_epoch: also the slot). -EMSGSIZE for
 * a record no epoch can hold (size over ORDO_OPAQUE_BYTES_MAX; never for a valid request, since
 * epoch_bytes >= ORDO_EPOCH_BYTES_MIN). */
ORDO_MUST_CHECK int seq_batcher_add(struct seq_batcher *b, const struct wire_epoch_rec *r,
				    uint64_t mono_ns, uint64_t wall_ns, struct wire_place *place);

/* Seals the open epoch if it is non-empty and either epoch_us has passed since
 * its first request, or force; returns true if it sealed. false also when the
 * sealed ring is full (the open epoch waits). every_epoch: opens an epoch if
 * none is open, seals it, empty or not, once wall_ns has reached the end of
 * its slot, and opens the next one at once; force is ignored (an epoch never
 * closes before its slot ends). At most one epoch is sealed per call. */
bool seq_batcher_tick(struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns, bool force);

/* Nanoseconds until the open epoch is due, or UINT64_MAX when it is empty
 * (mono_ns since its first request; wall_ns unused). every_epoch: wall_ns to
 * the end of the open epoch's slot, or of the slot an epoch opened now would
 * get (max(next_epoch, wall_ns / E)): never UINT64_MAX. 0 while it is due but
 * the sealed ring is full: the driver then waits for a commit, not for
 * time. */
uint64_t seq_batcher_due_in(const struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns);

/* Hands out sealed epochs in order, each once (the driver makes each a log
 * entry); NULL when none is waiting. */
const struct seq_epoch_buf *seq_batcher_next_sealed(struct seq_batcher *b);
/* The oldest sealed, uncommitted epoch, or NULL. */
const struct seq_epoch_buf *seq_batcher_oldest(const struct seq_batcher *b);
/* Releases the oldest sealed epoch once it is committed (and copied). It must
 * have been handed out by seq_batcher_next_sealed (asserted). */
void seq_batcher_release(struct seq_batcher *b);
uint32_t seq_batcher_inflight(const struct seq_batcher *b);

/* The floor: from now on an add into an epoch numbered below min_epoch is
 * refused (-ENOBUFS); 0 lifts it, UINT64_MAX refuses every add. Requests
 * already placed stay. Not changed by seq_batcher_reset. */
void seq_batcher_set_min_epoch(struct seq_batcher *b, uint64_t min_epoch);

/* The number the next sealed epoch gets at least (the open one's, or the
 * one that would open now). */
uint64_t seq_batcher_next_number(const struct seq_batcher *b, uint64_t wall_ns);
/* Stamps the announcement "group joins the merge at epoch first_epoch" into
 * the header of the next epoch sealed (join_group = group + 1, join_after =
 * first_epoch - its number). 0: it will be (also when this very
 * announcement already waits); -ETIME: the open epoch, or with none open the
 * one an add at wall_ns would open, is numbered first_epoch or later;
 * -EBUSY: another announcement waits to be sealed (one per header);
 * -EINVAL: group not below ORDO_GROUPS_MAX, or first_epoch 0 or so far
 * ahead that join_after would not fit 32 bits. If the epoch sealed next is
 * numbered first_epoch or later after all (a late seal opened a later
 * slot), the announcement is dropped unstamped (ann_missed counts it).
 * seq_batcher_reset drops a waiting announcement. */
ORDO_MUST_CHECK int seq_batcher_announce(struct seq_batcher *b, uint16_t group,
					 uint64_t first_epoch, uint64_t wall_ns);
/* Whether an announcement of group waits to be sealed or is in a sealed
 * epoch not yet released. O(inflight). */
bool seq_batcher_announcing(const struct seq_batcher *b, uint16_t group);

#endif
