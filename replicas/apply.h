/*
 * The replica state machine: the ledger, the digest (PROTOCOL.md §5) and the
 * position reached, advanced one committed epoch at a time, strictly in
 * epoch order. Pure (DESIGN.md §3): no I/O, no clock, no allocation after
 * init. replicas/node.c and sim/ both drive it.
 */
#ifndef ORDO_REP_APPLY_H
#define ORDO_REP_APPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "replicas/ledger.h"
#include "wire/wire.h"

struct rep_state {
	struct ledger ledger;
	uint8_t digest[16];	   /* after applied_position */
	uint64_t applied_position; /* last position applied, 0 = none */
	uint64_t applied_epoch;	   /* last epoch applied, 0 = none */
	uint64_t next_epoch;	   /* the only epoch rep_state_apply_epoch takes */
	uint64_t requests_applied;
	/* Apply steps taken: epochs with one group (== applied_epoch, epochs
	 * being consecutive), merged epochs with several. The applied log's
	 * index. */
	uint64_t steps;
	/* Last group_position applied of each sequencer group (docs/SCALEOUT.md);
	 * with one group, group_position[0] == applied_position. With several,
	 * a checkpoint does not hold them: bit g of group_known says whether
	 * group_position[g] is known; the first entry of the group applied
	 * after a load sets it, later entries must continue it. */
	uint64_t group_position[ORDO_GROUPS_MAX];
	uint32_t group_known;
	/* Groups merged (bit g): the founding groups, then each group whose
	 * join announcement (wire.h join_group) was applied, from its join
	 * epoch on. 0: never set, every group is merged (a cluster whose
	 * groups all found it; rep_state_found sets fewer). One join pending
	 * at a time: join_group (group id + 1, 0 none) joins at join_epoch. */
	uint32_t groups_active;
	uint16_t join_group;
	uint64_t join_epoch;
	uint64_t joins_ignored; /* announcements not taken: another pending, or too late */
};

/*
 * Called once per applied record, in order, before the digest takes it:
 * ent is its ENTRIES record (result filled), er the epoch record (reply
 * address, key), digest_before the digest through position - 1, data the
 * 32-byte answer of a LOOKUP that succeeded (else NULL).
 */
typedef void rep_apply_fn(void *ctx, const struct wire_epoch_hdr *h,
			  const struct wire_entry_rec *ent, const struct wire_epoch_rec *er,
			  const uint8_t digest_before[16], const uint8_t *data);

ORDO_MUST_CHECK int rep_state_init(struct rep_state *s, const struct ledger_cfg *cfg);
void rep_state_free(struct rep_state *s);

/* Makes dst, initialised with the same capacities, an exact copy of src:
 * what a state transfer installs (the node goes through a checkpoint file;
 * the simulator copies). Tables slot for slot, digest, positions. */
void rep_state_copy(struct rep_state *dst, const struct rep_state *src);

/* Applies one complete epoch if it is the next one and continues the
 * positions: true. false (nothing applied) if it is malformed, another
 * epoch, or does not continue applied_position: the caller keeps it or asks
 * again. fn may be NULL. One sequencer group. */
bool rep_state_apply_epoch(struct rep_state *s, const uint8_t *bytes, uint32_t len,
			   rep_apply_fn *fn, void *ctx);

/* Only the founding groups 0 .. n - 1 are merged, if nothing is set yet (a
 * new state; a checkpoint or the applied log carries the set). */
void rep_state_found(struct rep_state *s, uint32_t n);

/* The first epoch group g is merged from: 0 for an active group, the join
 * epoch of the pending group, UINT64_MAX for a group not (yet) merged. */
uint64_t rep_state_group_from(const struct rep_state *s, uint32_t g);

/* Several groups (Calvin, PROTOCOL.md §3.2): applies merged epoch `epoch`
 * (after applied_epoch): epochs[g] is group g's entry ending at `epoch`, or
 * NULL when group g's entry covers `epoch` but ends later (empty here).
 * Entries apply in group order, each record at the next global position.
 * true, or false with nothing applied if any entry is malformed, is not
 * group g's entry for `epoch`, or does not continue that group's
 * group_position. The ENTRIES records (and the digest) carry global
 * positions. A pending group joins once `epoch` reaches its join epoch (its
 * entry may then contribute, starting at group position 1); a join
 * announced in an applied entry becomes pending if no other is and its
 * epoch is after `epoch`. */
bool rep_state_apply_merged(struct rep_state *s, uint64_t epoch, const uint8_t *const *epochs,
			    const uint32_t *lens, uint32_t groups, rep_apply_fn *fn, void *ctx);

#endif
