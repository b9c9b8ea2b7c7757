/*
 * The committed epoch log of a sequencer node, held in memory: what the node
 * resends when a replica reports a gap (EPOCH_NACK). Bounded by bytes: the
 * oldest epochs are forgotten first. Pure: no I/O, no clock; memory fixed at
 * init (bytes_max of storage plus an index of epochs_max entries).
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
	uint32_t len;	 /* bytes of the epoch */
};

struct seq_epochlog {
	uint8_t *buf; /* bytes_max */
	uint64_t bytes_max;
	struct seq_epochlog_ent *ents; /* ring of epochs_max, slot = epoch % epochs_max */
	uint32_t epochs_max;
	uint64_t first_epoch; /* oldest retained epoch (0 when empty) */
	uint64_t last_epoch;  /* newest appended epoch (0 when empty) */
	uint64_t head;	      /* offset of the oldest retained byte */
	uint64_t tail;	      /* offset where the next epoch goes */
	uint64_t used;	      /* bytes between head and tail, wasted wrap bytes included */
};

ORDO_MUST_CHECK int seq_epochlog_init(struct seq_epochlog *l, uint64_t bytes_max,
				      uint32_t epochs_max);
void seq_epochlog_free(struct seq_epochlog *l);
/* Appends epoch number last_epoch + 1 (the first append may start anywhere);
 * forgets the oldest epochs until it fits. len <= bytes_max. */
void seq_epochlog_append(struct seq_epochlog *l, uint64_t epoch, const uint8_t *bytes,
			 uint32_t len);
/* 0 and the epoch's bytes, or -ENOENT if not retained. */
ORDO_MUST_CHECK int seq_epochlog_get(const struct seq_epochlog *l, uint64_t epoch,
				     const uint8_t **bytes, uint32_t *len);

#endif
