/*
 * The ledger state machine (PROTOCOL.md §4) and the replica digest (§5).
 * Pure and deterministic: integer arithmetic only, no clock, no I/O, no
 * allocation after ledger_init. The same ordered input gives the same
 * results and the same state on every replica.
 *
 * accounts_max and transfers_max are cluster constants: only these counts
 * decide LEDGER_FULL, never the state of a physical table (the tables are
 * sized at init so they can always hold the maximum).
 *
 * Memory: accounts_max * 2 * 32 bytes + transfers_max * 2 * 32 bytes
 * (open addressing at load factor <= 0.5). Pages are touched as they fill.
 */
#ifndef ORDO_LEDGER_H
#define ORDO_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

struct ledger_account {
	uint64_t id; /* 0 = empty slot */
	uint64_t debits_posted;
	uint64_t credits_posted;
	uint32_t flags;
	uint32_t reserved;
};

struct ledger_transfer {
	uint64_t id; /* 0 = empty slot */
	uint64_t debit_account_id;
	uint64_t credit_account_id;
	uint64_t amount;
};

struct ledger_cfg {
	uint64_t accounts_max;
	uint64_t transfers_max;
};

struct ledger {
	struct ledger_cfg cfg;
	struct ledger_account *accounts; /* capacity accounts_cap, power of two */
	uint64_t accounts_cap;
	uint64_t accounts_count;
	struct ledger_transfer *transfers; /* capacity transfers_cap, power of two */
	uint64_t transfers_cap;
	uint64_t transfers_count; /* applied OK */
};

size_t ledger_bytes(const struct ledger_cfg *cfg);
ORDO_MUST_CHECK int ledger_init(struct ledger *l, const struct ledger_cfg *cfg);
void ledger_free(struct ledger *l);

/* Applies one ordered request. payload/size as submitted (already validated
 * by the sequencer for its op's size). Returns the result; for LOOKUP OK it
 * writes the 32-byte answer into data_out. OPAQUE returns OK. An op the
 * ledger does not know returns WIRE_R_OK without effect (it cannot be
 * ordered: the sequencer rejects it as INVALID). */
enum wire_result ledger_apply(struct ledger *l, uint16_t op, const uint8_t *payload, uint16_t size,
			      uint8_t data_out[32]);

/* The slot holding id, or the empty slot where it would go: for restoring
 * the tables from a checkpoint (replicas/checkpoint.c), which fills the slot
 * and counts it. Not for the apply path. */
struct ledger_account *ledger_account_slot(struct ledger *l, uint64_t id);
struct ledger_transfer *ledger_transfer_slot(struct ledger *l, uint64_t id);

/* Read-only account lookup (tests, tools); NULL if absent. */
const struct ledger_account *ledger_account_find(const struct ledger *l, uint64_t id);

/* §5: digest' = XXH3_128bits(digest || ENTRIES record of the position),
 * written low64 LE then high64 LE. rec is the encoded ENTRIES record
 * (wire_entry_encode) of rec_len bytes. */
void ledger_digest_step(uint8_t digest[16], const uint8_t *rec, uint32_t rec_len);

#endif
