/*
 * The replica's applied log in memory (applog.h): byte ring of encoded
 * ENTRIES records, per-position slot ring with the digest before each
 * position, and the (client_id, request_number) index for RESULT_Q.
 * What does not live here: the durable log, the ledger, replies other than
 * the ENTRIES body of §3.4.
 *
 * Byte ring: records are placed at increasing virtual offsets; the ring
 * offset is vstart % bytes_max. A record that would cross the end of the
 * ring starts at the next multiple of bytes_max instead. Every retained
 * record lies in [vtail - bytes_max, vtail), so no two overlap in the ring.
 *
 * Index: linear probing with backward-shift deletion (Knuth, TAOCP vol. 3,
 * 6.4, Algorithm R), so no tombstones accumulate. Inserts go through a short
 * queue (pending): each slot is prefetched when its insert is queued and
 * written when the queue is full, so the inserts' cache misses over a table
 * of tens of MiB overlap instead of stalling one append each. A lookup reads
 * the queue (newest first) before the table; an eviction that reaches a
 * queued position empties the queue first.
 */
#include "replicas/applog.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "common/constants.h"
#include "common/le.h"
#include "common/ordo_assert.h"

#define REC_BYTES_MAX (ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX)
/* Offsets of the key fields inside an encoded ENTRIES record (§3.4). */
#define REC_OFF_CLIENT_ID      16u
#define REC_OFF_REQUEST_NUMBER 24u
/* How many evictions ahead rep_applog_append prefetches an index slot. */
#define EVICT_PREFETCH_AHEAD 4u

ORDO_STATIC_ASSERT(sizeof(struct rep_applog_slot) == 32, "slot is 32 bytes");
ORDO_STATIC_ASSERT(sizeof(struct rep_applog_key) == 24, "key is 24 bytes");

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t cap = 1;
	while (cap < n)
		cap <<= 1;
	return cap;
}

/* Murmur3 fmix64 (see ledger.c). */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline uint64_t key_hash(uint64_t client_id, uint64_t request_number)
{
	return mix64(client_id ^ mix64(request_number + 0x9e3779b97f4a7c15ull));
}

/* Anonymous, zero-filled, not backed until touched; huge pages when the
 * kernel offers them: every append probes the (client_id, request_number)
 * index twice at random over a table of tens of MiB, TLB-bound on 4 KiB
 * pages. */
static void *map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* advisory: failure is harmless */
	return p;
}

size_t rep_applog_bytes(uint64_t bytes_max, uint64_t records_max)
{
	return (size_t)bytes_max +
	       (size_t)pow2_at_least(records_max) * sizeof(struct rep_applog_slot) +
	       (size_t)pow2_at_least(2 * records_max) * sizeof(struct rep_applog_key);
}

int rep_applog_init(struct rep_applog *log, uint64_t bytes_max, uint64_t records_max)
{
	memset(log, 0, sizeof *log);
	if (bytes_max < REC_BYTES_MAX || records_max == 0 || records_max > (1ull << 40))
		return -EINVAL;
	log->bytes_max = bytes_max;
	log->records_max = records_max;
	log->slots_cap = pow2_at_least(records_max);
	log->keys_cap = pow2_at_least(2 * records_max);
	log->ring = map_zeroed(bytes_max);
	if (log->ring == NULL)
		goto err;
	log->slots = map_zeroed(log->slots_cap * sizeof(struct rep_applog_slot));
	if (log->slots == NULL)
		goto out_unmap_ring;
	log->keys = map_zeroed(log->keys_cap * sizeof(struct rep_applog_key));
	if (log->keys == NULL)
		goto out_unmap_slots;
	return 0;

out_unmap_slots:
	munmap(log->slots, log->slots_cap * sizeof(struct rep_applog_slot));
out_unmap_ring:
	munmap(log->ring, bytes_max);
err:
	memset(log, 0, sizeof *log);
	return -ENOMEM;
}

void rep_applog_free(struct rep_applog *log)
{
	if (log->ring != NULL)
		munmap(log->ring, log->bytes_max);
	if (log->slots != NULL)
		munmap(log->slots, log->slots_cap * sizeof(struct rep_applog_slot));
	if (log->keys != NULL)
		munmap(log->keys, log->keys_cap * sizeof(struct rep_applog_key));
	memset(log, 0, sizeof *log);
}

static inline struct rep_applog_slot *slot_of(const struct rep_applog *log, uint64_t position)
{
	return &log->slots[position & (log->slots_cap - 1)];
}

static inline uint8_t *rec_of(const struct rep_applog *log, const struct rep_applog_slot *s)
{
	return log->ring + s->vstart % log->bytes_max;
}

uint64_t rep_applog_retained_from(const struct rep_applog *log)
{
	return log->applied - log->count + 1;
}

uint64_t rep_applog_applied(const struct rep_applog *log)
{
	return log->applied;
}

/* ------------------------------------------------------------ index */

static void index_put(struct rep_applog *log, uint64_t client_id, uint64_t request_number,
		      uint64_t position)
{
	uint64_t mask = log->keys_cap - 1;
	uint64_t i = key_hash(client_id, request_number) & mask;
	for (uint64_t n = 0; n < log->keys_cap; n++) {
		struct rep_applog_key *k = &log->keys[i];
		if (k->position == 0 ||
		    (k->client_id == client_id && k->request_number == request_number)) {
			/* A pair seen again at a later position: the later wins. */
			k->client_id = client_id;
			k->request_number = request_number;
			k->position = position;
			return;
		}
		i = (i + 1) & mask;
	}
	ORDO_ASSERT(0 && "applog index full despite load <= 0.5");
}

static int64_t index_lookup(const struct rep_applog *log, uint64_t client_id,
			    uint64_t request_number)
{
	uint64_t mask = log->keys_cap - 1;
	uint64_t i = key_hash(client_id, request_number) & mask;
	for (uint64_t n = 0; n < log->keys_cap; n++) {
		const struct rep_applog_key *k = &log->keys[i];
		if (k->position == 0)
			return -1;
		if (k->client_id == client_id && k->request_number == request_number)
			return (int64_t)i;
		i = (i + 1) & mask;
	}
	return -1;
}

/* Removes slot i and shifts later members of its cluster back so every
 * remaining key stays reachable from its home slot. */
static void index_delete_at(struct rep_applog *log, uint64_t i)
{
	uint64_t mask = log->keys_cap - 1;
	uint64_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		struct rep_applog_key *k = &log->keys[j];
		if (k->position == 0)
			break;
		uint64_t home = key_hash(k->client_id, k->request_number) & mask;
		/* k may move to i iff its home is not cyclically in (i, j]. */
		bool home_in = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!home_in) {
			log->keys[i] = *k;
			i = j;
		}
	}
	memset(&log->keys[i], 0, sizeof log->keys[i]);
}

static void pending_flush(struct rep_applog *log)
{
	for (uint32_t k = 0; k < log->npending; k++)
		index_put(log, log->pending[k].client_id, log->pending[k].request_number,
			  log->pending[k].position);
	log->npending = 0;
}

static void pending_push(struct rep_applog *log, uint64_t client_id, uint64_t request_number,
			 uint64_t position)
{
	if (log->npending == REP_APPLOG_PENDING)
		pending_flush(log);
	log->pending[log->npending++] =
	    (struct rep_applog_key){client_id, request_number, position};
	__builtin_prefetch(&log->keys[key_hash(client_id, request_number) & (log->keys_cap - 1)],
			   1);
}

/* ------------------------------------------------------------ ring */

static void evict_oldest(struct rep_applog *log)
{
	ORDO_ASSERT(log->count > 0);
	uint64_t pos = rep_applog_retained_from(log);
	if (log->npending > 0 && log->pending[0].position <= pos)
		pending_flush(log); /* its key may be queued: make the table whole */
	const uint8_t *rec = rec_of(log, slot_of(log, pos));
	int64_t i = index_lookup(log, ordo_ld64(rec + REC_OFF_CLIENT_ID),
				 ordo_ld64(rec + REC_OFF_REQUEST_NUMBER));
	/* Absent only if a later position of the same pair replaced it. */
	if (i >= 0 && log->keys[i].position == pos)
		index_delete_at(log, (uint64_t)i);
	log->count--;
	log->vhead = log->count > 0 ? slot_of(log, pos + 1)->vstart : log->vtail;
}

void rep_applog_reset(struct rep_applog *log, uint64_t applied_position)
{
	while (log->count > 0)
		evict_oldest(log);
	ORDO_ASSERT(log->npending == 0);
	log->applied = applied_position;
}

void rep_applog_append(struct rep_applog *log, const struct wire_entry_rec *r,
		       const uint8_t digest_before[16])
{
	ORDO_ASSERT(r->position == log->applied + 1);
	uint32_t len = wire_entry_bytes(r->size);
	ORDO_ASSERT(r->size <= ORDO_OPAQUE_BYTES_MAX && len <= log->bytes_max);

	if (log->count == log->records_max)
		evict_oldest(log);
	uint64_t vstart = log->vtail;
	uint64_t off = vstart % log->bytes_max;
	if (off + len > log->bytes_max)
		vstart += log->bytes_max - off; /* never split a record across the end */
	while (log->count > 0 && vstart + len - log->vhead > log->bytes_max)
		evict_oldest(log);
	if (log->count == 0)
		log->vhead = vstart;
	ORDO_ASSERT(vstart % log->bytes_max + len <= log->bytes_max);

	wire_entry_encode(log->ring + vstart % log->bytes_max, r);
	struct rep_applog_slot *s = slot_of(log, r->position);
	s->vstart = vstart;
	s->len = len;
	s->reserved = 0;
	memcpy(s->digest_before, digest_before, 16);
	log->vtail = vstart + len;
	log->count++;
	log->applied = r->position;
	pending_push(log, r->client_id, r->request_number, r->position);
	ORDO_ASSERT(log->count <= log->records_max && log->vtail - log->vhead <= log->bytes_max);
	/* Once full, each append evicts about one record, and the eviction's
	 * index probe is a cache miss at random in a table of tens of MiB:
	 * start loading the slot of a record a few evictions ahead, and, as
	 * many again ahead, the record whose key names the slot. */
	if (log->count > 2 * EVICT_PREFETCH_AHEAD) {
		uint64_t pos = rep_applog_retained_from(log) + EVICT_PREFETCH_AHEAD;
		/* that record's bytes were loaded EVICT_PREFETCH_AHEAD appends ago */
		__builtin_prefetch(rec_of(log, slot_of(log, pos + EVICT_PREFETCH_AHEAD)), 0);
		const uint8_t *rec = rec_of(log, slot_of(log, pos));
		uint64_t i = key_hash(ordo_ld64(rec + REC_OFF_CLIENT_ID),
				      ordo_ld64(rec + REC_OFF_REQUEST_NUMBER)) &
			     (log->keys_cap - 1);
		__builtin_prefetch(&log->keys[i], 1);
	}
}

int rep_applog_get(const struct rep_applog *log, uint64_t position, const uint8_t **rec,
		   uint32_t *len, uint8_t digest_before[16])
{
	if (log->count == 0 || position < rep_applog_retained_from(log) || position > log->applied)
		return -ENOENT;
	const struct rep_applog_slot *s = slot_of(log, position);
	if (rec != NULL)
		*rec = rec_of(log, s);
	if (len != NULL)
		*len = s->len;
	if (digest_before != NULL)
		memcpy(digest_before, s->digest_before, 16);
	return 0;
}

int rep_applog_find(const struct rep_applog *log, uint64_t client_id, uint64_t request_number,
		    uint64_t *position)
{
	for (uint32_t k = log->npending; k-- > 0;) /* newest first: the later wins */
		if (log->pending[k].client_id == client_id &&
		    log->pending[k].request_number == request_number) {
			*position = log->pending[k].position;
			return 0;
		}
	int64_t i = index_lookup(log, client_id, request_number);
	if (i < 0)
		return -ENOENT;
	*position = log->keys[i].position;
	return 0;
}

/* ------------------------------------------------------------ FETCH */

uint32_t rep_applog_fill_entries(const struct rep_applog *log, struct wire_writer *w,
				 uint64_t nonce, uint64_t from_position,
				 uint32_t max_bytes_effective, const uint8_t digest_at_applied[16])
{
	uint64_t from = from_position == 0 ? 1 : from_position;
	uint64_t first = rep_applog_retained_from(log);
	struct wire_entries_head h = {
	    .nonce = nonce,
	    .applied_position = log->applied,
	    .count = 0,
	};

	if (from < first) {
		/* bit 0: older than retained history. The digest is the one
		 * after first_position - 1, which we hold for a retained
		 * first_position, and is the applied digest when nothing is
		 * retained (first == applied + 1). */
		h.flags = WIRE_ENTRIES_RETAINED_BEFORE;
		h.first_position = first;
		if (log->count > 0)
			memcpy(h.digest, slot_of(log, first)->digest_before, 16);
		else
			memcpy(h.digest, digest_at_applied, 16);
		wire_begin_entries(w, &h);
		return 0;
	}
	if (from - 1 > log->applied) {
		/* bit 2: beyond applied_position + 1. Digest zero. */
		h.flags = WIRE_ENTRIES_BEYOND;
		h.first_position = from;
		wire_begin_entries(w, &h);
		return 0;
	}
	if (from - 1 == log->applied) {
		/* bit 1: caught up. */
		h.flags = WIRE_ENTRIES_CAUGHT_UP;
		h.first_position = from;
		memcpy(h.digest, digest_at_applied, 16);
		wire_begin_entries(w, &h);
		return 0;
	}

	h.flags = 0;
	h.first_position = from;
	memcpy(h.digest, slot_of(log, from)->digest_before, 16);
	wire_begin_entries(w, &h);
	uint32_t n = 0;
	for (uint64_t p = from; p <= log->applied; p++) {
		const struct rep_applog_slot *s = slot_of(log, p);
		uint64_t need = (uint64_t)w->len + s->len + ORDO_MAC_BYTES;
		if (n > 0 && need > max_bytes_effective)
			break;
		if (!wire_put(w, rec_of(log, s), s->len)) {
			/* The caller's buffer must hold one record of any size. */
			ORDO_ASSERT(n > 0);
			break;
		}
		w->count++;
		n++;
	}
	return n;
}
