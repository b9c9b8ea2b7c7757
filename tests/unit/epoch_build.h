/*
 * For the replica unit tests (apply_test.c, merge_test.c): one epoch entry
 * of OPAQUE records, as a sequencer group's leader seals it (wire.h epoch
 * format).
 */
#ifndef ORDO_TESTS_EPOCH_BUILD_H
#define ORDO_TESTS_EPOCH_BUILD_H

#include <string.h>

#include "wire/wire.h"

struct test_entry {
	uint64_t from, epoch; /* the entry covers from .. epoch (from 0: epoch alone) */
	uint16_t group;
	uint64_t first;	 /* group_position of record 0 */
	uint32_t count;	 /* records */
	uint64_t client; /* their client_id; request i is number 2 + first + i */
	uint8_t tag;	 /* record i's payload bytes are tag + i */
	uint16_t size;	 /* payload bytes of each record */
};

/* Encodes e into buf; returns its bytes. */
static inline uint32_t test_entry_encode(uint8_t *buf, const struct test_entry *e)
{
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	for (uint32_t i = 0; i < e->count; i++) {
		uint8_t p[ORDO_OPAQUE_BYTES_MAX];
		memset(p, e->tag + (int)i, e->size);
		struct wire_epoch_rec r = {.client_id = e->client,
					   .request_number = 2 + e->first + i,
					   .session = 1,
					   .op = WIRE_OP_OPAQUE,
					   .size = e->size,
					   .payload = p};
		off += wire_epoch_rec_encode(buf + off, &r);
	}
	struct wire_epoch_hdr h = {.epoch = e->epoch,
				   .first_position = e->first,
				   .timestamp_ns = e->epoch,
				   .count = e->count,
				   .bytes = off,
				   .group = e->group,
				   .from_epoch = e->from};
	wire_epoch_hdr_encode(buf, &h);
	return off;
}

#endif
