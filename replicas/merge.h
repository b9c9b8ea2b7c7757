/*
 * The replica's epoch reassembly and merge (PROTOCOL.md §3.2, Calvin §3):
 * EPOCH_DATA fragments of every sequencer group are put back together into
 * whole log entries, and the entries are handed out one merged epoch at a
 * time, in the global order: epoch by epoch, and inside an epoch group 0,
 * 1, ... Pure: no I/O, no clock; memory fixed at init.
 *
 * An entry of group g covers the epochs from_epoch .. epoch (wire.h): with
 * one group always one epoch; with several, a group whose leader paused
 * (an election, a full commit ring) covers the epochs it skipped as empty
 * in one entry. After merged epoch M is applied, every group has covered
 * every epoch up to M, so the next step needs, of each group, the entry
 * that covers M + 1. Of those entries, the ones ending at the smallest
 * epoch e* make merged epoch e*; the others (runs reaching further) are
 * empty at e* and stay for a later step. One state, M, is all the merge
 * needs to resume from: a checkpoint or a restart continues from there.
 *
 * Slots: each group has `slots` entries being reassembled, slot = epoch %
 * slots; when two entries want one slot, the one ending earlier keeps it
 * (it is needed first; the other is asked for again later by NACK).
 *
 * Memory: groups x slots x (epoch_bytes + epoch_bytes / frag_bytes + 1)
 * bytes, plus the slot table (40 bytes per slot); a group's share is
 * allocated when the group appears (init, rep_merge_grow).
 */
#ifndef ORDO_REP_MERGE_H
#define ORDO_REP_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ordo_assert.h"
#include "wire/wire.h"

struct rep_merge_slot {
	uint64_t epoch; /* last epoch of the entry; 0: free */
	uint32_t total; /* bytes of the whole entry */
	uint32_t have;	/* fragments received */
	uint32_t nfrags;
	uint8_t *bytes; /* epoch_bytes capacity */
	uint8_t *got;	/* one byte per fragment: received */
};

struct rep_merge {
	uint32_t groups, slots;
	uint32_t epoch_bytes, frag_bytes, frags_max;
	struct rep_merge_slot *slot[ORDO_GROUPS_MAX]; /* slots per group */
	uint8_t *mem[ORDO_GROUPS_MAX];
	/* Highest epoch each group announced committed (fragments, heartbeats). */
	uint64_t known_committed[ORDO_GROUPS_MAX];
	/* Entries of group g ending at or before floor[g] are not taken (0: none
	 * refused beyond the merged epoch). */
	uint64_t floor[ORDO_GROUPS_MAX];
};

/* One merged epoch: the entries that end at `epoch`, by group; NULL for a
 * group whose entry covers `epoch` but ends later (empty here). */
struct rep_merge_step {
	uint64_t epoch;
	const uint8_t *bytes[ORDO_GROUPS_MAX];
	uint32_t len[ORDO_GROUPS_MAX];
	uint32_t contributing; /* groups with an entry ending at epoch */
};

ORDO_MUST_CHECK int rep_merge_init(struct rep_merge *m, uint32_t groups, uint32_t slots,
				   uint32_t epoch_bytes, uint32_t frag_bytes);
void rep_merge_free(struct rep_merge *m);
/* Makes room for groups up to `groups` (a group added to the cluster file
 * at run time): 0, or -ENOMEM / -EINVAL with nothing changed. */
ORDO_MUST_CHECK int rep_merge_grow(struct rep_merge *m, uint32_t groups);

/* Takes one fragment (already parsed; total_bytes <= epoch_bytes, offset a
 * multiple of frag_bytes, checked by the caller). merged is the last merged
 * epoch applied: entries ending at or before it are old. Returns 1 if the
 * fragment completed an entry, 0 if it was taken, a duplicate, old, or had
 * no slot, -EBADMSG if it contradicts the entry being reassembled. */
int rep_merge_fragment(struct rep_merge *m, const struct wire_epoch_data *d, uint64_t merged);

/* Group g's entries ending at or before `floor` are not taken, and the
 * ones held are dropped: a group joining at E has floor E - 1 (its earlier
 * entries would otherwise keep slots its entry covering E needs), a group
 * not merged at all UINT64_MAX, a merged one 0. */
void rep_merge_set_floor(struct rep_merge *m, uint32_t g, uint64_t floor);

/* Raises group g's known committed epoch. */
void rep_merge_committed(struct rep_merge *m, uint32_t g, uint64_t epoch);

/* The whole entry of group g covering epoch x, if it is held complete. */
bool rep_merge_covering(const struct rep_merge *m, uint32_t g, uint64_t x, const uint8_t **bytes,
			uint32_t *len, uint64_t *end_epoch);

/* The step after merged epoch `merged`: true when every group holds the
 * entry covering merged + 1; else false and *waiting = the first group that
 * does not (may be NULL). */
bool rep_merge_next(const struct rep_merge *m, uint64_t merged, struct rep_merge_step *st,
		    uint32_t *waiting);

/* The same over the groups g with from[g] != UINT64_MAX: a group with
 * from[g] <= merged + 1 is merged now and needs its entry covering
 * merged + 1; a group joining at from[g] > merged + 1 takes part once the
 * step reaches from[g], with its entry covering from[g] (rep_state's
 * rep_state_group_from gives from[]). */
bool rep_merge_next_from(const struct rep_merge *m, uint64_t merged, const uint64_t *from,
			 struct rep_merge_step *st, uint32_t *waiting);

/* Frees the slots of the entries that ended at st->epoch (applied, or
 * rejected: then the NACK asks for them again). */
void rep_merge_release(struct rep_merge *m, const struct rep_merge_step *st);

/* Frees every slot whose entry ends at or before `merged` (after a
 * checkpoint is installed). */
void rep_merge_forget(struct rep_merge *m, uint64_t merged);

/* What group g lacks after merged epoch `merged`: true with the first epoch
 * not held (complete) and how many epochs up to its known committed one or
 * to merged + slots (what the merge can hold), whichever is first, at most
 * `max`; false if it lacks nothing it knows of there. */
bool rep_merge_gap(const struct rep_merge *m, uint32_t g, uint64_t merged, uint32_t max,
		   uint64_t *from, uint32_t *count);

#endif
