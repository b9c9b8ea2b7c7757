/*
 * The committed epoch log of a sequencer node, held in memory: what the node
 * resends when a replica reports a gap (EPOCH_NACK). Bounded by bytes and by
 * entries: the oldest entries are forgotten first. Pure: no I/O, no clock;
 * memory fixed at init (bytes_max of storage plus an index of epochs_max
 * entries, 24 bytes each).
 *
 * An entry is one committed log entry and covers the epochs from_epoch ..
 * epoch (SCALEOUT.md piece 1: with several groups, from_epoch .. epoch - 1
 * are empty in this group; with one group from_epoch == epoch). Entries are
 * appended in order and cover consecutive numbers, so the index is kept in
 * append order and a lookup by epoch number is a binary search over it.
 *
 * The Raft issue replaces this with the durable, replicated log; its
 * interface (append in order, get by epoch number, retained range) stays.
 */
#ifndef ORDO_SEQ_EPOCHLOG_H
#define ORDO_SEQ_EPOCHLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"

struct seq_epochlog_ent {
	uint64_t offset; /* into buf */
	uint64_t epoch;	 /* last epoch the entry covers; it starts after the previous one's */
	uint32_t len;	 /* bytes of the entry */
};

struct seq_epochlog {
	uint8_t *buf; /* bytes_max */
	uint64_t bytes_max;
	struct seq_epochlog_ent *ents; /* ring of epochs_max, slot = append number % epochs_max */
	uint32_t epochs_max;
	uint32_t count;	      /* entries retained, 0 .. epochs_max */
	uint64_t appended;    /* entries appended since init: the newest is appended - 1 */
	uint64_t first_epoch; /* from_epoch of the oldest retained entry (0 when empty) */
	uint64_t last_epoch;  /* epoch of the newest entry (0 when empty) */
	uint64_t head;	      /* offset of the oldest retained byte */
	uint64_t tail;	      /* offset where the next entry goes */
	uint64_t used;	      /* bytes between head and tail, wasted wrap bytes included */
};

ORDO_MUST_CHECK int seq_epochlog_init(struct seq_epochlog *l, uint64_t bytes_max,
				      uint32_t epochs_max);
void seq_epochlog_free(struct seq_epochlog *l);
/* Appends the entry covering from_epoch .. epoch; from_epoch is last_epoch + 1
 * (the first append may start anywhere); forgets the oldest entries until it
 * fits. 0 < len <= bytes_max. */
void seq_epochlog_append(struct seq_epochlog *l, uint64_t from_epoch, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len);
/* The retained entry that covers epoch x (from_epoch <= x <= epoch): 0 and its
 * bytes, or -ENOENT if none does. */
ORDO_MUST_CHECK int seq_epochlog_get(const struct seq_epochlog *l, uint64_t x,
				     const uint8_t **bytes, uint32_t *len);
/* seq_epochlog_get, and the range the entry covers (*from .. *to). */
ORDO_MUST_CHECK int seq_epochlog_get_entry(const struct seq_epochlog *l, uint64_t x,
					   const uint8_t **bytes, uint32_t *len, uint64_t *from,
					   uint64_t *to);

#endif
