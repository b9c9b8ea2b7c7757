/* Unit tests of sequencer/epochlog.c: the bounded in-memory log of committed
 * epochs a sequencer resends from on EPOCH_NACK. */
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
		seq_epochlog_append(&l, e, buf, 300);
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
	seq_epochlog_append(&l, 5, buf, 1000);
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
		seq_epochlog_append(&l, e, buf, 16);
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
		seq_epochlog_append(&l, e, buf, sizes[e]);
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
