/*
 * The replica's applied log in memory: the most recent applied positions,
 * bounded by bytes and by record count, kept to serve FETCH (PROTOCOL.md
 * §3.4) and RESULT_Q (§3.6). Pure: no I/O, no clock, no allocation after
 * rep_applog_init. The durable log lives in storage, not here.
 *
 * Three structures, all fixed at init:
 * - a byte ring of encoded ENTRIES records, exactly wire_entry_encode output,
 *   so serving FETCH is copying bytes. A record never wraps around the end of
 *   the ring: one that would is placed at the start, and the tail it skips is
 *   counted as used until the records before it are evicted;
 * - a ring of slots, one per retained position: where its record lies and the
 *   running digest before it (§5), so ENTRIES can carry "the digest after
 *   position first_position - 1" for any retained first_position;
 * - a hash index (client_id, request_number) -> position for RESULT_Q, open
 *   addressing with linear probing at load <= 0.5, entries removed by
 *   backward-shift deletion when their position is evicted. If a pair occurs
 *   at two retained positions (a client reusing its client_id, or the same
 *   client_id in two groups), the index answers the later one.
 *
 * Appending evicts the oldest positions until the new record fits in the
 * byte ring and the slot ring holds at most records_max positions; the newest
 * record is always retained.
 *
 * Memory: bytes_max (ring; at least ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX)
 *       + pow2ceil(records_max) * 32 (slots)
 *       + pow2ceil(2 * records_max) * 24 (index),
 * mapped anonymous and zero-filled, so pages cost only once touched. With the
 * default 64 MiB of bytes and records_max = 1M: 64 + 32 + 48 = 144 MiB.
 * A record is 40 bytes plus its padded payload: 72 bytes for a TRANSFER, so
 * 64 MiB holds about 930 000 transfers.
 */
#ifndef ORDO_REP_APPLOG_H
#define ORDO_REP_APPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"
#include "wire/wire.h"

/* One retained position. */
struct rep_applog_slot {
	uint64_t vstart; /* virtual byte offset of its record (ring offset = vstart % bytes_max) */
	uint32_t len;	 /* record bytes, wire_entry_bytes(size), multiple of 8 */
	uint32_t reserved;	   /* 0 */
	uint8_t digest_before[16]; /* §5 digest after position - 1 */
};

/* Index inserts held back so their cache misses overlap (see pending). */
#define REP_APPLOG_PENDING 16u

/* One RESULT_Q index entry; position 0 marks an empty slot. */
struct rep_applog_key {
	uint64_t client_id;
	uint64_t request_number;
	uint64_t position; /* retained position of the pair; 0 = empty */
};

struct rep_applog {
	uint8_t *ring;	    /* bytes_max bytes of encoded records */
	uint64_t bytes_max; /* ring size, bytes; >= the largest record */
	uint64_t vhead;	    /* virtual offset where the oldest record starts; == vtail if empty */
	uint64_t vtail;	    /* virtual offset after the newest record; vtail - vhead <= bytes_max */
	struct rep_applog_slot *slots; /* slots_cap entries, position p at p & (slots_cap - 1) */
	uint64_t slots_cap;	       /* power of two >= records_max */
	uint64_t records_max;	       /* most positions retained, >= 1 */
	uint64_t count;		       /* positions retained, <= records_max */
	uint64_t applied;	       /* last appended position; 0 before any */
	struct rep_applog_key *keys;   /* keys_cap entries */
	uint64_t keys_cap;	       /* power of two >= 2 * records_max */
	/* Index inserts held back, oldest first: each one's slot was
	 * prefetched when it was queued, and they are made REP_APPLOG_PENDING
	 * appends later (or before an eviction or a reset needs them). */
	struct rep_applog_key pending[REP_APPLOG_PENDING];
	uint32_t npending;
};

/* Bytes rep_applog_init maps for these bounds. */
size_t rep_applog_bytes(uint64_t bytes_max, uint64_t records_max);
/* 0, -EINVAL (bytes_max under one largest record, or records_max 0) or -ENOMEM. */
ORDO_MUST_CHECK int rep_applog_init(struct rep_applog *log, uint64_t bytes_max,
				    uint64_t records_max);
void rep_applog_free(struct rep_applog *log);

/* Forgets everything and declares applied_position applied (e.g. after a
 * checkpoint was installed): the next append must be applied_position + 1. */
void rep_applog_reset(struct rep_applog *log, uint64_t applied_position);

/* Appends the applied position r->position, which must be applied + 1
 * (asserted), with the digest before it. Evicts the oldest as needed. */
void rep_applog_append(struct rep_applog *log, const struct wire_entry_rec *r,
		       const uint8_t digest_before[16]);

/* Oldest retained position; applied + 1 when nothing is retained. */
uint64_t rep_applog_retained_from(const struct rep_applog *log);
/* Last appended position (0 before any). */
uint64_t rep_applog_applied(const struct rep_applog *log);

/* The encoded record of a retained position and the digest before it:
 * 0, or -ENOENT if the position is not retained. rec points into the ring
 * and stays valid until the next append. Either output may be NULL. */
ORDO_MUST_CHECK int rep_applog_get(const struct rep_applog *log, uint64_t position,
				   const uint8_t **rec, uint32_t *len, uint8_t digest_before[16]);

/* RESULT_Q: the retained position of (client_id, request_number): 0, or
 * -ENOENT. */
ORDO_MUST_CHECK int rep_applog_find(const struct rep_applog *log, uint64_t client_id,
				    uint64_t request_number, uint64_t *position);

/* Builds the ENTRIES answer to a FETCH (§3.4) into w, which the caller began
 * with wire_begin(..., WIRE_ENTRIES, ...) and will wire_finish. from_position
 * is as received (0 is read as 1). max_bytes_effective is min(max_bytes or
 * max_datagram, max_datagram): it bounds the whole datagram, header and a
 * 16-byte MAC trailer included (the MAC room is always kept, as wire_put
 * does). Records go while they fit, but at least one is sent when any is due,
 * so w->cap must hold the header, the 48-byte head, the largest record and a
 * MAC: 32 + 48 + 1064 + 16 = 1160 <= max_datagram. digest_at_applied is the
 * running digest at rep_applog_applied(log). Returns the record count. */
uint32_t rep_applog_fill_entries(const struct rep_applog *log, struct wire_writer *w,
				 uint64_t nonce, uint64_t from_position,
				 uint32_t max_bytes_effective, const uint8_t digest_at_applied[16]);

#endif
