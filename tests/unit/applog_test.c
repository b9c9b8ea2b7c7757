/*
 * Unit tests of the replica's applied log (replicas/applog.c): eviction by
 * records and by bytes, retained records byte-exact (built here by hand per
 * PROTOCOL.md §3.4) with the digest before each (§5), the RESULT_Q index
 * against a model through many evictions, and the ENTRIES answer to FETCH for
 * every flag case, byte budgets and the at-least-one-record rule.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "common/prng.h"
#include "replicas/applog.h"
#include "replicas/ledger.h"

#define CLUSTER 0x5eed5eed5eed5eedull
#define BUF_CAP ORDO_DATAGRAM_MAX

/* What the test appended for one position. */
struct expect {
	uint8_t rec[1064];
	uint32_t len;
	uint8_t digest_before[16];
	uint64_t client_id, request_number;
};

static struct rep_applog LOG;
static struct expect *EXP; /* EXP[p] for position p */
static uint8_t DIGEST[16]; /* running digest after the last append */
static uint8_t PAYLOAD[1024];

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rec_by_hand(uint8_t *out, const struct wire_entry_rec *r)
{
	uint32_t len = 40 + ((r->size + 7u) & ~7u);
	put_le(out + 0, r->position, 8);
	put_le(out + 8, r->epoch, 8);
	put_le(out + 16, r->client_id, 8);
	put_le(out + 24, r->request_number, 8);
	put_le(out + 32, r->op, 2);
	put_le(out + 34, r->size, 2);
	put_le(out + 36, r->result, 4);
	memcpy(out + 40, r->payload, r->size);
	memset(out + 40 + r->size, 0, len - 40 - r->size);
	return len;
}

static void setup_log(uint64_t bytes_max, uint64_t records_max, uint64_t positions)
{
	cr_assert_eq(rep_applog_init(&LOG, bytes_max, records_max), 0);
	EXP = calloc(positions + 2, sizeof *EXP);
	memset(DIGEST, 0, sizeof DIGEST);
	for (int i = 0; i < 1024; i++)
		PAYLOAD[i] = (uint8_t)(i * 13 + 5);
}

static void teardown_log(void)
{
	rep_applog_free(&LOG);
	free(EXP);
	EXP = NULL;
}

/* Appends the next position with a payload of size bytes (op OPAQUE, or
 * TRANSFER for size 32), and advances the running digest. */
static void append(uint16_t size, uint64_t client_id, uint64_t request_number)
{
	uint64_t pos = rep_applog_applied(&LOG) + 1;
	struct wire_entry_rec r = {
	    .position = pos,
	    .epoch = 1 + pos / 10,
	    .client_id = client_id,
	    .request_number = request_number,
	    .op = size == 32 ? WIRE_OP_TRANSFER : WIRE_OP_OPAQUE,
	    .size = size,
	    .result = (uint32_t)(pos % 14),
	    .payload = PAYLOAD + (pos % 7),
	};
	struct expect *e = &EXP[pos];
	e->len = rec_by_hand(e->rec, &r);
	memcpy(e->digest_before, DIGEST, 16);
	e->client_id = client_id;
	e->request_number = request_number;
	rep_applog_append(&LOG, &r, DIGEST);
	ledger_digest_step(DIGEST, e->rec, e->len);
	cr_assert_eq(rep_applog_applied(&LOG), pos);
}

static void check_retained(uint64_t from, uint64_t to)
{
	cr_assert_eq(rep_applog_retained_from(&LOG), from);
	cr_assert_eq(rep_applog_applied(&LOG), to);
	uint64_t bytes = 0;
	for (uint64_t p = from; p <= to; p++) {
		const uint8_t *rec;
		uint32_t len;
		uint8_t d[16];
		cr_assert_eq(rep_applog_get(&LOG, p, &rec, &len, d), 0, "position %lu",
			     (unsigned long)p);
		cr_assert_eq(len, EXP[p].len);
		cr_assert(memcmp(rec, EXP[p].rec, len) == 0, "record %lu bytes", (unsigned long)p);
		cr_assert(memcmp(d, EXP[p].digest_before, 16) == 0, "digest before %lu",
			  (unsigned long)p);
		bytes += len;
	}
	cr_assert_leq(bytes, LOG.bytes_max);
	cr_assert_leq(to - from + 1, LOG.records_max);
	if (from > 1)
		cr_assert_eq(rep_applog_get(&LOG, from - 1, NULL, NULL, NULL), -ENOENT);
	cr_assert_eq(rep_applog_get(&LOG, to + 1, NULL, NULL, NULL), -ENOENT);
	cr_assert_eq(rep_applog_get(&LOG, 0, NULL, NULL, NULL), -ENOENT);
}

/* ------------------------------------------------------------ eviction */

Test(applog, init_bounds)
{
	struct rep_applog l;
	cr_assert_eq(rep_applog_init(&l, 1063, 10), -EINVAL);
	cr_assert_eq(rep_applog_init(&l, 1064, 0), -EINVAL);
	cr_assert_eq(rep_applog_init(&l, 1064, 1), 0);
	cr_assert_eq(rep_applog_retained_from(&l), 1);
	cr_assert_eq(rep_applog_applied(&l), 0);
	rep_applog_free(&l);
	cr_assert_eq(rep_applog_bytes(4096, 1000), 4096 + 1024 * 32 + 2048 * 24);
}

Test(applog, eviction_by_records, .fini = teardown_log)
{
	setup_log(1 << 20, 4, 20);
	for (int i = 1; i <= 3; i++)
		append(32, 100 + i, 1);
	check_retained(1, 3);
	for (int i = 4; i <= 10; i++)
		append(32, 100 + i, 1);
	check_retained(7, 10);
	uint64_t pos;
	for (int i = 1; i <= 6; i++)
		cr_assert_eq(rep_applog_find(&LOG, 100 + i, 1, &pos), -ENOENT, "evicted %d", i);
	for (int i = 7; i <= 10; i++) {
		cr_assert_eq(rep_applog_find(&LOG, 100 + i, 1, &pos), 0);
		cr_assert_eq(pos, (uint64_t)i);
	}
	cr_assert_eq(rep_applog_find(&LOG, 107, 2, &pos), -ENOENT);
}

Test(applog, eviction_by_bytes_exact_fit, .fini = teardown_log)
{
	/* 72-byte records, ring of exactly 10: never a skipped tail, 10 kept. */
	setup_log(72 * 15, 1000, 200);
	for (int i = 1; i <= 100; i++) {
		append(32, 7, (uint64_t)i);
		uint64_t kept = i < 15 ? (uint64_t)i : 15;
		check_retained((uint64_t)i - kept + 1, (uint64_t)i);
	}
}

Test(applog, eviction_by_bytes_with_skipped_tail, .fini = teardown_log)
{
	/* Ring of 15 records + 40 bytes: a record never straddles the end,
	 * so at most 40 bytes are skipped per lap and 14 or 15 are kept. */
	setup_log(72 * 15 + 40, 1000, 200);
	for (int i = 1; i <= 150; i++) {
		append(32, 7, (uint64_t)i);
		uint64_t from = rep_applog_retained_from(&LOG);
		uint64_t kept = (uint64_t)i - from + 1;
		cr_assert(kept == (uint64_t)(i < 15 ? i : 15) || (i >= 15 && kept == 14),
			  "%lu kept after %d", (unsigned long)kept, i);
		check_retained(from, (uint64_t)i);
	}
}

Test(applog, random_sizes_stay_byte_exact, .fini = teardown_log)
{
	struct ordo_prng p;
	ordo_prng_seed(&p, 7);
	setup_log(5000, 40, 3000);
	for (int i = 1; i <= 3000; i++) {
		uint16_t size;
		switch (ordo_prng_below(&p, 4)) {
		case 0:
			size = 1024;
			break;
		case 1:
			size = (uint16_t)ordo_prng_below(&p, 9);
			break;
		default:
			size = (uint16_t)ordo_prng_below(&p, 1025);
			break;
		}
		append(size, ordo_prng_next(&p), (uint64_t)i);
		uint64_t from = rep_applog_retained_from(&LOG);
		check_retained(from, (uint64_t)i);
		/* Not too eager: what is kept plus the last evicted record, plus
		 * a skipped tail shorter than one record, passes the ring. */
		if (from > 1 && (uint64_t)i - from + 1 < 40) {
			uint64_t bytes = EXP[from - 1].len;
			for (uint64_t q = from; q <= (uint64_t)i; q++)
				bytes += EXP[q].len;
			cr_assert_gt(bytes + 1064, 5000, "evicted too much at %d", i);
		}
	}
}

Test(applog, reset_after_checkpoint, .fini = teardown_log)
{
	setup_log(1 << 16, 16, 100);
	for (int i = 1; i <= 5; i++)
		append(8, 1, (uint64_t)i);
	rep_applog_reset(&LOG, 50);
	cr_assert_eq(rep_applog_applied(&LOG), 50);
	cr_assert_eq(rep_applog_retained_from(&LOG), 51);
	uint64_t pos;
	cr_assert_eq(rep_applog_find(&LOG, 1, 3, &pos), -ENOENT);
	cr_assert_eq(rep_applog_get(&LOG, 5, NULL, NULL, NULL), -ENOENT);
	append(16, 2, 1);
	check_retained(51, 51);
}

/* ------------------------------------------------------------ index */

Test(applog, duplicate_pair_later_wins, .fini = teardown_log)
{
	setup_log(1 << 16, 3, 20);
	append(0, 9, 1); /* 1 */
	append(0, 8, 1); /* 2 */
	append(0, 9, 1); /* 3: same pair as 1 */
	uint64_t pos;
	cr_assert_eq(rep_applog_find(&LOG, 9, 1, &pos), 0);
	cr_assert_eq(pos, 3);
	append(0, 7, 1); /* 4: evicts 1, which must not remove the entry of 3 */
	cr_assert_eq(rep_applog_find(&LOG, 9, 1, &pos), 0);
	cr_assert_eq(pos, 3);
	append(0, 7, 2); /* 5: evicts 2 */
	cr_assert_eq(rep_applog_find(&LOG, 8, 1, &pos), -ENOENT);
	append(0, 7, 3); /* 6: evicts 3 */
	cr_assert_eq(rep_applog_find(&LOG, 9, 1, &pos), -ENOENT);
}

static void index_model(uint64_t records_max, int every)
{
	enum { CLIENTS = 40, NUMBERS = 20, APPENDS = 6000 };
	struct ordo_prng p;
	ordo_prng_seed(&p, 11 + records_max);
	setup_log(1 << 20, records_max, APPENDS);
	for (int i = 1; i <= APPENDS; i++) {
		append(0, 1 + ordo_prng_below(&p, CLIENTS), 1 + ordo_prng_below(&p, NUMBERS));
		if (i % every != 0 && i < APPENDS - 3)
			continue;
		uint64_t from = rep_applog_retained_from(&LOG);
		for (uint64_t c = 1; c <= CLIENTS; c++) {
			for (uint64_t n = 1; n <= NUMBERS; n++) {
				uint64_t want = 0;
				for (uint64_t q = from; q <= (uint64_t)i; q++)
					if (EXP[q].client_id == c && EXP[q].request_number == n)
						want = q;
				uint64_t got = 0;
				int rv = rep_applog_find(&LOG, c, n, &got);
				if (want == 0) {
					cr_assert_eq(rv, -ENOENT, "(%lu, %lu) after %d",
						     (unsigned long)c, (unsigned long)n, i);
				} else {
					cr_assert_eq(rv, 0, "(%lu, %lu) after %d", (unsigned long)c,
						     (unsigned long)n, i);
					cr_assert_eq(got, want);
				}
			}
		}
	}
}

Test(applog, index_matches_model_through_evictions, .fini = teardown_log)
{
	/* Small index (64 records, 128 slots) and a key universe with repeats:
	 * every append evicts, every eviction deletes by backward shift. */
	index_model(64, 7);
}

Test(applog, index_model_fewer_records_than_queued_inserts, .fini = teardown_log)
{
	/* 5 records retained, fewer than the REP_APPLOG_PENDING inserts the
	 * log may hold back: evictions reach queued keys, and lookups must
	 * read the queue. Checked after every append. */
	ORDO_STATIC_ASSERT(5 < REP_APPLOG_PENDING, "fewer records than queued inserts");
	index_model(5, 1);
}

/* ------------------------------------------------------------ FETCH */

struct parsed {
	uint32_t dgram_len;
	uint64_t nonce, first, applied;
	uint32_t count, flags;
	uint8_t digest[16];
	const uint8_t *recs;
	uint32_t recs_len;
};

static uint8_t BUF[BUF_CAP];

static struct parsed fetch(uint64_t nonce, uint64_t from, uint32_t max_bytes)
{
	struct wire_writer w;
	memset(BUF, 0xA5, sizeof BUF);
	wire_begin(&w, BUF, BUF_CAP, WIRE_ENTRIES, CLUSTER);
	uint32_t n = rep_applog_fill_entries(&LOG, &w, nonce, from, max_bytes, DIGEST);
	struct parsed r;
	r.dgram_len = wire_finish(&w, NULL);
	cr_assert_eq(ordo_ld32(BUF + 8), r.dgram_len);
	const uint8_t *b = BUF + 32;
	r.nonce = ordo_ld64(b);
	r.first = ordo_ld64(b + 8);
	r.applied = ordo_ld64(b + 16);
	r.count = ordo_ld32(b + 24);
	r.flags = ordo_ld32(b + 28);
	memcpy(r.digest, b + 32, 16);
	r.recs = b + 48;
	r.recs_len = r.dgram_len - 32 - 48;
	cr_assert_eq(n, r.count);
	cr_assert_eq(r.nonce, nonce);
	cr_assert_eq(r.applied, rep_applog_applied(&LOG));
	/* The codec agrees with our reading. */
	struct wire_entries_head h;
	struct wire_entry_rec recs[256];
	cr_assert_eq(wire_parse_entries(b, r.dgram_len - 32, &h, recs, 256), (int)r.count);
	cr_assert_eq(h.first_position, r.first);
	return r;
}

/* Records are consecutive from first, byte-exact, and fill the body. */
static void check_records(const struct parsed *r)
{
	uint32_t off = 0;
	for (uint32_t i = 0; i < r->count; i++) {
		uint64_t pos = r->first + i;
		cr_assert_eq(ordo_ld64(r->recs + off), pos);
		cr_assert(memcmp(r->recs + off, EXP[pos].rec, EXP[pos].len) == 0, "record %lu",
			  (unsigned long)pos);
		off += EXP[pos].len;
	}
	cr_assert_eq(off, r->recs_len);
	if (r->count > 0)
		cr_assert(memcmp(r->digest, EXP[r->first].digest_before, 16) == 0);
}

static const uint8_t ZERO16[16];

Test(applog_fetch, flag_cases, .fini = teardown_log)
{
	setup_log(1 << 16, 10, 100);
	for (int i = 1; i <= 25; i++)
		append(32, 3, (uint64_t)i);
	/* retained 16..25 */
	struct parsed r = fetch(77, 5, 0xFFFFFFFF);
	cr_assert_eq(r.flags, WIRE_ENTRIES_RETAINED_BEFORE);
	cr_assert_eq(r.count, 0);
	cr_assert_eq(r.first, 16);
	cr_assert(memcmp(r.digest, EXP[16].digest_before, 16) == 0);
	cr_assert_eq(r.recs_len, 0);

	r = fetch(78, 0, 0xFFFFFFFF); /* 0 is read as 1: also older than retained */
	cr_assert_eq(r.flags, WIRE_ENTRIES_RETAINED_BEFORE);
	cr_assert_eq(r.first, 16);

	r = fetch(79, 15, 0xFFFFFFFF);
	cr_assert_eq(r.flags, WIRE_ENTRIES_RETAINED_BEFORE);

	r = fetch(80, 26, 0xFFFFFFFF);
	cr_assert_eq(r.flags, WIRE_ENTRIES_CAUGHT_UP);
	cr_assert_eq(r.count, 0);
	cr_assert_eq(r.first, 26);
	cr_assert(memcmp(r.digest, DIGEST, 16) == 0);

	r = fetch(81, 27, 0xFFFFFFFF);
	cr_assert_eq(r.flags, WIRE_ENTRIES_BEYOND);
	cr_assert_eq(r.count, 0);
	cr_assert_eq(r.first, 27);
	cr_assert(memcmp(r.digest, ZERO16, 16) == 0);

	r = fetch(82, UINT64_MAX, 0xFFFFFFFF);
	cr_assert_eq(r.flags, WIRE_ENTRIES_BEYOND);
	cr_assert_eq(r.first, UINT64_MAX);

	r = fetch(83, 16, 0xFFFFFFFF); /* everything retained */
	cr_assert_eq(r.flags, 0);
	cr_assert_eq(r.first, 16);
	cr_assert_eq(r.count, 10);
	check_records(&r);

	r = fetch(84, 25, 0xFFFFFFFF); /* the last one */
	cr_assert_eq(r.flags, 0);
	cr_assert_eq(r.count, 1);
	check_records(&r);
}

Test(applog_fetch, empty_log, .fini = teardown_log)
{
	setup_log(1 << 16, 10, 10);
	struct parsed r = fetch(1, 0, 1472); /* 0 read as 1 == applied + 1 */
	cr_assert_eq(r.flags, WIRE_ENTRIES_CAUGHT_UP);
	cr_assert_eq(r.first, 1);
	cr_assert_eq(r.applied, 0);
	cr_assert(memcmp(r.digest, ZERO16, 16) == 0);
	r = fetch(1, 2, 1472);
	cr_assert_eq(r.flags, WIRE_ENTRIES_BEYOND);

	/* After a reset to 50 with digest D: older -> first 51 and digest D. */
	rep_applog_reset(&LOG, 50);
	memset(DIGEST, 0x3C, 16);
	r = fetch(2, 10, 1472);
	cr_assert_eq(r.flags, WIRE_ENTRIES_RETAINED_BEFORE);
	cr_assert_eq(r.first, 51);
	cr_assert(memcmp(r.digest, DIGEST, 16) == 0);
	r = fetch(3, 51, 1472);
	cr_assert_eq(r.flags, WIRE_ENTRIES_CAUGHT_UP);
}

Test(applog_fetch, max_bytes_budget, .fini = teardown_log)
{
	setup_log(1 << 16, 100, 100);
	for (int i = 1; i <= 50; i++)
		append(32, 3, (uint64_t)i); /* 72 bytes each */
	/* header 32 + head 48 + k * 72 + MAC 16 */
	for (uint32_t k = 1; k <= 12; k++) {
		uint32_t exact = 32 + 48 + k * 72 + 16;
		struct parsed r = fetch(5, 10, exact);
		cr_assert_eq(r.count, k, "budget %u", exact);
		cr_assert_eq(r.first, 10);
		check_records(&r);
		cr_assert_leq(r.dgram_len + 16, exact);
		r = fetch(5, 10, exact - 1);
		cr_assert_eq(r.count, k > 1 ? k - 1 : 1, "budget %u", exact - 1);
		check_records(&r);
	}
	/* A standard datagram: (1472 - 96) / 72 = 19 records. */
	struct parsed r = fetch(5, 1, 1472);
	cr_assert_eq(r.count, 19);
	check_records(&r);
	/* Near the end: stops at applied. */
	r = fetch(5, 45, 8972);
	cr_assert_eq(r.count, 6);
	check_records(&r);
}

Test(applog_fetch, at_least_one_record, .fini = teardown_log)
{
	setup_log(1 << 16, 100, 100);
	append(1024, 3, 1); /* 1064 bytes */
	append(1024, 3, 2);
	append(0, 3, 3);
	struct parsed r = fetch(5, 1, 100); /* far below one record */
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.dgram_len, 32 + 48 + 1064);
	check_records(&r);
	/* With a standard datagram the second big record does not fit. */
	r = fetch(5, 1, 1472);
	cr_assert_eq(r.count, 1);
	check_records(&r);
	r = fetch(5, 2, 1472);
	cr_assert_eq(r.count, 2); /* 32 + 48 + 1064 + 40 + 16 = 1200 */
	check_records(&r);
}

Test(applog_fetch, across_ring_wrap, .fini = teardown_log)
{
	/* Records that were placed after a skipped tail are served intact. */
	struct ordo_prng p;
	ordo_prng_seed(&p, 3);
	setup_log(3000, 1000, 500);
	for (int i = 1; i <= 400; i++)
		append((uint16_t)ordo_prng_below(&p, 600), 3, (uint64_t)i);
	uint64_t from = rep_applog_retained_from(&LOG);
	for (uint64_t f = from; f <= 400; f++) {
		struct parsed r = fetch(9, f, 8972);
		cr_assert_eq(r.flags, 0);
		cr_assert_eq(r.first, f);
		cr_assert_eq(r.count, (uint32_t)(400 - f + 1), "all retained fit in 8972 from %lu",
			     (unsigned long)f);
		check_records(&r);
	}
}
