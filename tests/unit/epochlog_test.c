/* Unit tests of sequencer/epochlog.c: the bounded in-memory log of committed
 * epochs a sequencer resends from on EPOCH_NACK. One entry per epoch (one
 * group), and entries covering runs (several groups): lookups inside a run,
 * the retained range, eviction by count and by bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/prng.h"
#include "sequencer/epochlog.h"

/* Deterministic content for epoch e of len bytes. */
static void fill(uint8_t *buf, uint64_t e, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(e * 131 + i * 7);
}

Test(epochlog, empty_and_init_errors)
{
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, 0, 4), -EINVAL);
	cr_assert_eq(seq_epochlog_init(&l, 1024, 0), -EINVAL);
	cr_assert_eq(seq_epochlog_init(&l, 1024, 4), 0);
	const uint8_t *b;
	uint32_t len;
	cr_assert_eq(seq_epochlog_get(&l, 1, &b, &len), -ENOENT);
	cr_assert_eq(seq_epochlog_get(&l, 0, &b, &len), -ENOENT);
	seq_epochlog_free(&l);
}

Test(epochlog, keeps_newest_within_bytes)
{
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, 1000, 64), 0);
	uint8_t buf[1000], want[1000];
	/* 300-byte epochs: three fit (900), a fourth forgets the first */
	for (uint64_t e = 1; e <= 4; e++) {
		fill(buf, e, 300);
		seq_epochlog_append(&l, e, e, buf, 300);
	}
	const uint8_t *b;
	uint32_t len;
	cr_assert_eq(seq_epochlog_get(&l, 1, &b, &len), -ENOENT);
	for (uint64_t e = 2; e <= 4; e++) {
		cr_assert_eq(seq_epochlog_get(&l, e, &b, &len), 0, "epoch %lu", (unsigned long)e);
		fill(want, e, 300);
		cr_assert_eq(len, 300);
		cr_assert_arr_eq(b, want, 300);
	}
	cr_assert_eq(seq_epochlog_get(&l, 5, &b, &len), -ENOENT);
	/* one epoch as large as the whole buffer replaces everything */
	fill(buf, 5, 1000);
	seq_epochlog_append(&l, 5, 5, buf, 1000);
	cr_assert_eq(seq_epochlog_get(&l, 4, &b, &len), -ENOENT);
	cr_assert_eq(seq_epochlog_get(&l, 5, &b, &len), 0);
	cr_assert_eq(len, 1000);
	cr_assert_arr_eq(b, buf, 1000);
	seq_epochlog_free(&l);
}

Test(epochlog, bounded_by_epoch_count)
{
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, 1 << 20, 8), 0);
	uint8_t buf[16];
	for (uint64_t e = 100; e < 120; e++) {
		fill(buf, e, 16);
		seq_epochlog_append(&l, e, e, buf, 16);
	}
	const uint8_t *b;
	uint32_t len;
	for (uint64_t e = 100; e < 120; e++)
		cr_assert_eq(seq_epochlog_get(&l, e, &b, &len) == 0, e >= 112,
			     "epoch %lu: only the newest 8 are kept", (unsigned long)e);
	seq_epochlog_free(&l);
}

/* Random sizes across many wraps: every retained epoch reads back exactly, the
 * retained range is contiguous and ends at the newest, and it holds as many
 * epochs as fit (forgetting more than needed would lose repairable epochs). */
Test(epochlog, random_sizes_wrap_around)
{
	enum { BYTES = 4096, N = 20000 };
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, BYTES, 1024), 0);
	static uint32_t sizes[N + 1];
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 5);
	uint8_t buf[BYTES], want[BYTES];
	for (uint64_t e = 1; e <= N; e++) {
		sizes[e] = 8 * (1 + (uint32_t)ordo_prng_below(&rng, 200));
		fill(buf, e, sizes[e]);
		seq_epochlog_append(&l, e, e, buf, sizes[e]);
		cr_assert_eq(l.last_epoch, e);
		uint64_t kept = 0;
		for (uint64_t k = l.first_epoch; k <= e; k++) {
			const uint8_t *b;
			uint32_t len;
			cr_assert_eq(seq_epochlog_get(&l, k, &b, &len), 0);
			cr_assert_eq(len, sizes[k]);
			fill(want, k, len);
			cr_assert_arr_eq(b, want, len, "epoch %lu after %lu", (unsigned long)k,
					 (unsigned long)e);
			kept += len;
		}
		cr_assert_leq(kept, BYTES);
		/* the epoch just before first_epoch could not have fitted as well:
		 * at most one wasted wrap gap (< the largest epoch) is allowed */
		if (l.first_epoch > 1)
			cr_assert_gt(kept + sizes[l.first_epoch - 1] + 1600, BYTES,
				     "forgot more than needed at epoch %lu", (unsigned long)e);
	}
	seq_epochlog_free(&l);
}

/* Expects epoch x to be covered by the entry from..to whose content is
 * fill(to, len). */
static void expect_cover(const struct seq_epochlog *l, uint64_t x, uint64_t from, uint64_t to,
			 uint32_t len)
{
	const uint8_t *b;
	uint32_t got_len;
	uint64_t f, t;
	uint8_t want[4096];
	cr_assert_eq(seq_epochlog_get_entry(l, x, &b, &got_len, &f, &t), 0, "epoch %lu",
		     (unsigned long)x);
	cr_assert_eq(f, from, "epoch %lu: from %lu, want %lu", (unsigned long)x, (unsigned long)f,
		     (unsigned long)from);
	cr_assert_eq(t, to, "epoch %lu: to %lu, want %lu", (unsigned long)x, (unsigned long)t,
		     (unsigned long)to);
	cr_assert_eq(got_len, len);
	fill(want, to, len);
	cr_assert_arr_eq(b, want, len);
	/* the plain lookup finds the same entry */
	const uint8_t *b2;
	cr_assert_eq(seq_epochlog_get(l, x, &b2, &got_len), 0);
	cr_assert_eq(b2, b);
}

Test(epochlog, runs_are_found_by_any_epoch_they_cover)
{
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, 1 << 16, 3), 0);
	uint8_t buf[256];
	/* 1..5 (1..4 empty), 6 alone, 7..12 */
	fill(buf, 5, 48);
	seq_epochlog_append(&l, 1, 5, buf, 48);
	fill(buf, 6, 100);
	seq_epochlog_append(&l, 6, 6, buf, 100);
	fill(buf, 12, 64);
	seq_epochlog_append(&l, 7, 12, buf, 64);
	cr_assert_eq(l.first_epoch, 1);
	cr_assert_eq(l.last_epoch, 12);
	for (uint64_t x = 1; x <= 5; x++)
		expect_cover(&l, x, 1, 5, 48);
	expect_cover(&l, 6, 6, 6, 100);
	for (uint64_t x = 7; x <= 12; x++)
		expect_cover(&l, x, 7, 12, 64);
	const uint8_t *b;
	uint32_t len;
	cr_assert_eq(seq_epochlog_get(&l, 0, &b, &len), -ENOENT);
	cr_assert_eq(seq_epochlog_get(&l, 13, &b, &len), -ENOENT);
	/* a fourth entry forgets the oldest: first_epoch is the from of the
	 * oldest kept, so 1..5 are gone together */
	fill(buf, 20, 48);
	seq_epochlog_append(&l, 13, 20, buf, 48);
	cr_assert_eq(l.first_epoch, 6);
	cr_assert_eq(l.last_epoch, 20);
	for (uint64_t x = 1; x <= 5; x++)
		cr_assert_eq(seq_epochlog_get(&l, x, &b, &len), -ENOENT);
	expect_cover(&l, 6, 6, 6, 100);
	expect_cover(&l, 9, 7, 12, 64);
	for (uint64_t x = 13; x <= 20; x++)
		expect_cover(&l, x, 13, 20, 48);
	/* eviction by bytes: one entry as large as the buffer keeps itself only */
	seq_epochlog_free(&l);
	cr_assert_eq(seq_epochlog_init(&l, 256, 8), 0);
	fill(buf, 3, 100);
	seq_epochlog_append(&l, 1, 3, buf, 100);
	fill(buf, 9, 100);
	seq_epochlog_append(&l, 4, 9, buf, 100);
	cr_assert_eq(l.first_epoch, 1);
	fill(buf, 10, 100);
	seq_epochlog_append(&l, 10, 10, buf, 100); /* 300 > 256: 1..3 go */
	cr_assert_eq(l.first_epoch, 4);
	cr_assert_eq(seq_epochlog_get(&l, 3, &b, &len), -ENOENT);
	expect_cover(&l, 4, 4, 9, 100);
	expect_cover(&l, 10, 10, 10, 100);
	fill(buf, 1000, 256);
	seq_epochlog_append(&l, 11, 1000, buf, 256);
	cr_assert_eq(l.first_epoch, 11);
	cr_assert_eq(l.count, 1);
	expect_cover(&l, 11, 11, 1000, 256);
	expect_cover(&l, 500, 11, 1000, 256);
	cr_assert_eq(seq_epochlog_get(&l, 10, &b, &len), -ENOENT);
	seq_epochlog_free(&l);
}

/* Random run lengths and sizes across many wraps of both rings, against a
 * model: every epoch in [first_epoch, last_epoch] finds the entry covering
 * it, first_epoch is the from of the oldest kept entry, and no more entries
 * are forgotten than the bounds require. */
Test(epochlog, random_runs_against_a_model, .timeout = 60)
{
	enum { BYTES = 4096, MAXE = 50, N = 5000 };
	struct seq_epochlog l;
	cr_assert_eq(seq_epochlog_init(&l, BYTES, MAXE), 0);
	static uint64_t from[N], to[N];
	static uint32_t sizes[N];
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 77);
	uint8_t buf[BYTES];
	uint64_t next = 1000;
	for (uint32_t i = 0; i < N; i++) {
		from[i] = next;
		to[i] = next + (ordo_prng_below(&rng, 3) == 0 ? ordo_prng_below(&rng, 40) : 0);
		sizes[i] = 8 * (6 + (uint32_t)ordo_prng_below(&rng, 60));
		next = to[i] + 1;
		fill(buf, to[i], sizes[i]);
		seq_epochlog_append(&l, from[i], to[i], buf, sizes[i]);
		cr_assert_eq(l.last_epoch, to[i]);
		cr_assert_leq(l.count, MAXE);
		/* the oldest kept entry is i - count + 1 */
		uint32_t oldest = i + 1 - l.count;
		cr_assert_eq(l.first_epoch, from[oldest]);
		uint64_t kept = 0;
		for (uint32_t k = oldest; k <= i; k++) {
			kept += sizes[k];
			expect_cover(&l, from[k], from[k], to[k], sizes[k]);
			expect_cover(&l, to[k], from[k], to[k], sizes[k]);
			uint64_t mid = from[k] + (to[k] - from[k]) / 2;
			expect_cover(&l, mid, from[k], to[k], sizes[k]);
		}
		cr_assert_leq(kept, BYTES);
		const uint8_t *b;
		uint32_t len;
		if (oldest > 0) {
			cr_assert_eq(seq_epochlog_get(&l, to[oldest - 1], &b, &len), -ENOENT);
			/* forgotten only for a bound: count, or bytes (one wasted wrap
			 * gap, under the largest entry (520), allowed) */
			cr_assert(l.count == MAXE || kept + sizes[oldest - 1] + 520 > BYTES,
				  "forgot more than needed at entry %u", i);
		}
		cr_assert_eq(seq_epochlog_get(&l, to[i] + 1, &b, &len), -ENOENT);
	}
	seq_epochlog_free(&l);
}
