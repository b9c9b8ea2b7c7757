/*
 * The ledger state machine (PROTOCOL.md §4) and the replica digest (§5).
 *
 * What lives here: two open-addressing hash tables (accounts, transfers
 * applied OK) with linear probing, the checks of §4 in their normative order,
 * and the digest step. What does not: ordering, the applied log (applog.c),
 * persistence, replies.
 *
 * Tables: capacity is the next power of two >= 2 * max, so the load factor
 * stays <= 0.5 and an insert always finds an empty slot; id 0 marks an empty
 * slot (0 is never a valid id). Nothing is ever deleted, so a probe sequence
 * ends at the id or at the first empty slot. Each request does one probe
 * sequence per id it touches: the slot found for a new id is the slot the
 * insert writes.
 *
 * Arithmetic: u64 only, every comparison rewritten so it cannot wrap (§4).
 */
#include "replicas/ledger.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "common/constants.h"
#include "common/le.h"
#include "common/ordo_assert.h"

#define ID_MAX UINT64_MAX
#define FLAGS_KNOWN                                                                                \
	(WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS | WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS)
#define PAYLOAD_CREATE_BYTES   16u
#define PAYLOAD_TRANSFER_BYTES 32u
#define PAYLOAD_LOOKUP_BYTES   16u
#define LOOKUP_DATA_BYTES      32u
#define DIGEST_BUF_BYTES       (16u + ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX)

ORDO_STATIC_ASSERT(sizeof(struct ledger_account) == 32, "account slot is 32 bytes");
ORDO_STATIC_ASSERT(sizeof(struct ledger_transfer) == 32, "transfer slot is 32 bytes");

/* Murmur3's 64-bit finalizer (Appledby, MurmurHash3 fmix64): a bijection
 * with full avalanche, so sequential ids spread over the table. */
static inline uint64_t id_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t table_cap(uint64_t max)
{
	uint64_t cap = 2;
	while (cap < 2 * max)
		cap <<= 1;
	return cap;
}

static inline int id_invalid(uint64_t id)
{
	/* 0 and 2^64-1 in one compare: id - 1 wraps 0 to 2^64-1. */
	return id - 1 >= ID_MAX - 1;
}

/* The slot holding id, or the empty slot where it would go. */
static inline struct ledger_account *account_slot(const struct ledger *l, uint64_t id)
{
	uint64_t mask = l->accounts_cap - 1;
	uint64_t i = id_hash(id) & mask;
	for (;;) {
		struct ledger_account *a = &l->accounts[i];
		if (a->id == id || a->id == 0)
			return a;
		i = (i + 1) & mask;
	}
}

static inline struct ledger_transfer *transfer_slot(const struct ledger *l, uint64_t id)
{
	uint64_t mask = l->transfers_cap - 1;
	uint64_t i = id_hash(id) & mask;
	for (;;) {
		struct ledger_transfer *t = &l->transfers[i];
		if (t->id == id || t->id == 0)
			return t;
		i = (i + 1) & mask;
	}
}

struct ledger_account *ledger_account_slot(struct ledger *l, uint64_t id)
{
	return account_slot(l, id);
}

struct ledger_transfer *ledger_transfer_slot(struct ledger *l, uint64_t id)
{
	return transfer_slot(l, id);
}

size_t ledger_bytes(const struct ledger_cfg *cfg)
{
	return (size_t)table_cap(cfg->accounts_max) * sizeof(struct ledger_account) +
	       (size_t)table_cap(cfg->transfers_max) * sizeof(struct ledger_transfer);
}

/* Anonymous, zero-filled, not backed until touched; huge pages when the
 * kernel offers them (random probes over a large table are TLB-bound). */
static void *table_map(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* advisory: failure is harmless */
	return p;
}

int ledger_init(struct ledger *l, const struct ledger_cfg *cfg)
{
	if (cfg->accounts_max > ORDO_ACCOUNTS_MAX_LIMIT ||
	    cfg->transfers_max > ORDO_TRANSFERS_MAX_LIMIT)
		return -EINVAL;
	memset(l, 0, sizeof *l);
	l->cfg = *cfg;
	l->accounts_cap = table_cap(cfg->accounts_max);
	l->transfers_cap = table_cap(cfg->transfers_max);
	l->accounts = table_map(l->accounts_cap * sizeof(struct ledger_account));
	if (l->accounts == NULL)
		goto err;
	l->transfers = table_map(l->transfers_cap * sizeof(struct ledger_transfer));
	if (l->transfers == NULL)
		goto out_unmap_accounts;
	return 0;

out_unmap_accounts:
	munmap(l->accounts, l->accounts_cap * sizeof(struct ledger_account));
err:
	memset(l, 0, sizeof *l);
	return -ENOMEM;
}

void ledger_free(struct ledger *l)
{
	if (l->accounts != NULL)
		munmap(l->accounts, l->accounts_cap * sizeof(struct ledger_account));
	if (l->transfers != NULL)
		munmap(l->transfers, l->transfers_cap * sizeof(struct ledger_transfer));
	memset(l, 0, sizeof *l);
}

static enum wire_result create_account(struct ledger *l, const uint8_t *p)
{
	uint64_t id = ordo_ld64(p);
	uint32_t flags = ordo_ld32(p + 8);

	if (id_invalid(id))
		return WIRE_R_ID_INVALID;
	if ((flags & ~FLAGS_KNOWN) != 0 || flags == FLAGS_KNOWN)
		return WIRE_R_FLAGS_INVALID;
	struct ledger_account *a = account_slot(l, id);
	if (a->id == id)
		return a->flags == flags ? WIRE_R_EXISTS : WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
	if (l->accounts_count >= l->cfg.accounts_max)
		return WIRE_R_LEDGER_FULL;
	ORDO_ASSERT(l->accounts_count < l->accounts_cap / 2);
	a->id = id;
	a->debits_posted = 0;
	a->credits_posted = 0;
	a->flags = flags;
	a->reserved = 0;
	l->accounts_count++;
	return WIRE_R_OK;
}

static enum wire_result transfer(struct ledger *l, const uint8_t *p)
{
	uint64_t id = ordo_ld64(p);
	uint64_t debit_id = ordo_ld64(p + 8);
	uint64_t credit_id = ordo_ld64(p + 16);
	uint64_t amount = ordo_ld64(p + 24);

	if (id_invalid(id) | id_invalid(debit_id) | id_invalid(credit_id))
		return WIRE_R_ID_INVALID;
	/* The three probe sequences are independent: issue them together so
	 * their cache misses overlap. */
	struct ledger_transfer *t = transfer_slot(l, id);
	struct ledger_account *d = account_slot(l, debit_id);
	struct ledger_account *c = account_slot(l, credit_id);
	if (t->id == id) {
		if (t->debit_account_id == debit_id && t->credit_account_id == credit_id &&
		    t->amount == amount)
			return WIRE_R_EXISTS;
		return WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
	}
	if (debit_id == credit_id)
		return WIRE_R_SAME_ACCOUNT;
	if (amount == 0)
		return WIRE_R_AMOUNT_ZERO;
	if (d->id != debit_id)
		return WIRE_R_DEBIT_ACCOUNT_NOT_FOUND;
	if (c->id != credit_id)
		return WIRE_R_CREDIT_ACCOUNT_NOT_FOUND;
	if (d->flags & WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) {
		/* The flag keeps debits_posted <= credits_posted, so the
		 * subtraction is exact. */
		ORDO_ASSERT(d->debits_posted <= d->credits_posted);
		if (amount > d->credits_posted - d->debits_posted)
			return WIRE_R_EXCEEDS_CREDITS;
	}
	if (c->flags & WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS) {
		ORDO_ASSERT(c->credits_posted <= c->debits_posted);
		if (amount > c->debits_posted - c->credits_posted)
			return WIRE_R_EXCEEDS_DEBITS;
	}
	if (amount > UINT64_MAX - d->debits_posted || amount > UINT64_MAX - c->credits_posted)
		return WIRE_R_OVERFLOW;
	if (l->transfers_count >= l->cfg.transfers_max)
		return WIRE_R_LEDGER_FULL;
	ORDO_ASSERT(l->transfers_count < l->transfers_cap / 2);
	t->id = id;
	t->debit_account_id = debit_id;
	t->credit_account_id = credit_id;
	t->amount = amount;
	l->transfers_count++;
	d->debits_posted += amount;
	c->credits_posted += amount;
	return WIRE_R_OK;
}

static enum wire_result lookup(const struct ledger *l, const uint8_t *p, uint8_t data_out[32])
{
	uint64_t id = ordo_ld64(p);

	if (id_invalid(id))
		return WIRE_R_ID_INVALID;
	const struct ledger_account *a = account_slot(l, id);
	if (a->id != id)
		return WIRE_R_NOT_FOUND;
	ordo_st64(data_out, a->id);
	ordo_st64(data_out + 8, a->debits_posted);
	ordo_st64(data_out + 16, a->credits_posted);
	ordo_st32(data_out + 24, a->flags);
	ordo_st32(data_out + 28, 0);
	return WIRE_R_OK;
}

enum wire_result ledger_apply(struct ledger *l, uint16_t op, const uint8_t *payload, uint16_t size,
			      uint8_t data_out[32])
{
	/* Sizes were checked by the sequencer (§3.1.1) and by the epoch decoder
	 * before anything reaches the ledger: a mismatch here is our bug. */
	switch (op) {
	case WIRE_OP_TRANSFER:
		ORDO_ASSERT(size == PAYLOAD_TRANSFER_BYTES);
		return transfer(l, payload);
	case WIRE_OP_CREATE_ACCOUNT:
		ORDO_ASSERT(size == PAYLOAD_CREATE_BYTES);
		return create_account(l, payload);
	case WIRE_OP_LOOKUP:
		ORDO_ASSERT(size == PAYLOAD_LOOKUP_BYTES);
		return lookup(l, payload, data_out);
	case WIRE_OP_OPAQUE:
		ORDO_ASSERT(size <= ORDO_OPAQUE_BYTES_MAX);
		return WIRE_R_OK;
	default:
		return WIRE_R_OK;
	}
}

const struct ledger_account *ledger_account_find(const struct ledger *l, uint64_t id)
{
	if (id_invalid(id))
		return NULL;
	const struct ledger_account *a = account_slot(l, id);
	return a->id == id ? a : NULL;
}

void ledger_digest_step(uint8_t digest[16], const uint8_t *rec, uint32_t rec_len)
{
	uint8_t buf[DIGEST_BUF_BYTES];

	ORDO_ASSERT(rec_len >= ORDO_ENTRY_REC_BYTES && rec_len <= DIGEST_BUF_BYTES - 16);
	memcpy(buf, digest, 16);
	memcpy(buf + 16, rec, rec_len);
	XXH128_hash_t h = XXH3_128bits(buf, 16 + (size_t)rec_len);
	ordo_st64(digest, h.low64);
	ordo_st64(digest + 8, h.high64);
}
