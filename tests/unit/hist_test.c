/* Unit tests of bench/hist.c: the log-linear latency histogram of the bench
 * harness. Each quantile is checked against the exact quantile of the values
 * recorded: the answer must lie in the bucket of the true value, that is in
 * [v, v + v/128], and never above the max. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hist.h"
#include "common/prng.h"

static struct bench_hist h;

static void setup(void)
{
	cr_assert_eq(bench_hist_init(&h, 0), 0);
}

static void teardown(void)
{
	bench_hist_fini(&h);
}

TestSuite(hist, .init = setup, .fini = teardown);

/* The returned value must be in the true quantile's bucket: at least v, at
 * most v + v/128 (1% would be v/100), and at most the max. */
static void assert_in_bucket(uint64_t got, uint64_t v, const char *what)
{
	cr_assert_geq(got, v, "%s: %lu below the true value %lu", what, (unsigned long)got,
		      (unsigned long)v);
	cr_assert_leq(got, v + v / 128, "%s: %lu beyond the bucket of %lu", what,
		      (unsigned long)got, (unsigned long)v);
	cr_assert_eq(got,
		     bench_hist_highest_equivalent(v) < bench_hist_max(&h)
			 ? bench_hist_highest_equivalent(v)
			 : bench_hist_max(&h),
		     "%s: not the highest equivalent of %lu's bucket", what, (unsigned long)v);
}

Test(hist, empty)
{
	cr_assert_eq(bench_hist_count(&h), 0);
	cr_assert_eq(bench_hist_min(&h), 0);
	cr_assert_eq(bench_hist_max(&h), 0);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 50), 0);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 100), 0);
}

Test(hist, uniform_1_to_10000)
{
	for (uint64_t v = 1; v <= 10000; v++)
		bench_hist_record(&h, v);
	cr_assert_eq(bench_hist_count(&h), 10000);
	cr_assert_eq(bench_hist_min(&h), 1);
	cr_assert_eq(bench_hist_max(&h), 10000);
	cr_assert_float_eq(bench_hist_mean(&h), 5000.5, 1e-9);
	uint64_t p50 = bench_hist_value_at_percentile(&h, 50);
	uint64_t p90 = bench_hist_value_at_percentile(&h, 90);
	uint64_t p99 = bench_hist_value_at_percentile(&h, 99);
	uint64_t p999 = bench_hist_value_at_percentile(&h, 99.9);
	uint64_t p100 = bench_hist_value_at_percentile(&h, 100);
	cr_assert(p50 >= 5000 && p50 <= 5050, "p50 %lu", (unsigned long)p50);
	cr_assert(p90 >= 9000 && p90 <= 9090, "p90 %lu", (unsigned long)p90);
	cr_assert(p99 >= 9900 && p99 <= 9999, "p99 %lu", (unsigned long)p99);
	cr_assert(p999 >= 9990 && p999 <= 10000, "p99.9 %lu", (unsigned long)p999);
	assert_in_bucket(p50, 5000, "p50");
	assert_in_bucket(p99, 9900, "p99");
	cr_assert_eq(p100, 10000, "p100 is capped at the exact max");
	/* exact values for the layout: 5000 = 156 x 32 + 8, bucket [4992, 5023] */
	cr_assert_eq(p50, 5023);
	/* 9900 lies in [9856, 9919] (bucket width 64) */
	cr_assert_eq(p99, 9919);
}

Test(hist, single_value)
{
	bench_hist_record(&h, 123456789);
	cr_assert_eq(bench_hist_count(&h), 1);
	cr_assert_eq(bench_hist_min(&h), 123456789);
	cr_assert_eq(bench_hist_max(&h), 123456789);
	double pcts[] = {0, 0.1, 50, 99, 99.9, 99.99, 100};
	for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++)
		cr_assert_eq(bench_hist_value_at_percentile(&h, pcts[i]), 123456789,
			     "p%g of a single value is the value (capped at max)", pcts[i]);
	cr_assert_float_eq(bench_hist_mean(&h), 123456789.0, 1e-6);
}

Test(hist, two_clusters_far_apart)
{
	/* 900 values near 1 us, 100 near 1 s */
	for (uint64_t i = 0; i < 900; i++)
		bench_hist_record(&h, 1000 + i % 10);
	for (uint64_t i = 0; i < 100; i++)
		bench_hist_record(&h, 1000000000 + i * 1000);
	cr_assert_eq(bench_hist_count(&h), 1000);
	assert_in_bucket(bench_hist_value_at_percentile(&h, 50), 1005, "p50");
	/* rank 900 is the last of the low cluster: 1009 */
	assert_in_bucket(bench_hist_value_at_percentile(&h, 90), 1009, "p90");
	/* rank 901 is the first of the high cluster */
	assert_in_bucket(bench_hist_value_at_percentile(&h, 90.1), 1000000000, "p90.1");
	assert_in_bucket(bench_hist_value_at_percentile(&h, 99), 1000000000 + 89 * 1000, "p99");
	cr_assert_eq(bench_hist_value_at_percentile(&h, 100), 1000000000 + 99 * 1000);
	cr_assert_eq(bench_hist_min(&h), 1000);
}

Test(hist, bucket_edges)
{
	/* 0..255 are exact; 256 starts buckets two values wide */
	cr_assert_eq(bench_hist_index(0), 0);
	cr_assert_eq(bench_hist_index(255), 255);
	cr_assert_eq(bench_hist_index(256), 256);
	cr_assert_eq(bench_hist_index(257), 256);
	cr_assert_eq(bench_hist_index(258), 257);
	cr_assert_eq(bench_hist_index(511), 383);
	cr_assert_eq(bench_hist_index(512), 384);
	cr_assert_eq(bench_hist_highest_equivalent(255), 255);
	cr_assert_eq(bench_hist_lowest_equivalent(257), 256);
	cr_assert_eq(bench_hist_highest_equivalent(256), 257);
	cr_assert_eq(bench_hist_highest_equivalent(511), 511);
	cr_assert_eq(bench_hist_lowest_equivalent(515), 512);
	cr_assert_eq(bench_hist_highest_equivalent(512), 515);
	cr_assert_eq(bench_hist_lowest_equivalent(1ull << 40), 1ull << 40);
	cr_assert_eq(bench_hist_highest_equivalent(1ull << 40), (1ull << 40) + (1ull << 33) - 1);
	/* indexes are contiguous and every value sits in its own bucket */
	for (uint64_t v = 1; v < (1u << 20); v++) {
		uint32_t a = bench_hist_index(v - 1), b = bench_hist_index(v);
		cr_assert(b == a || b == a + 1, "index jumps at %lu", (unsigned long)v);
		cr_assert_leq(bench_hist_lowest_equivalent(v), v);
		cr_assert_geq(bench_hist_highest_equivalent(v), v);
		cr_assert_leq(bench_hist_highest_equivalent(v) - bench_hist_lowest_equivalent(v),
			      v / 128);
	}
	/* recording on both sides of an edge keeps them apart */
	bench_hist_record(&h, 255);
	bench_hist_record(&h, 256);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 50), 255);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 100), 256);
	bench_hist_record(&h, 257);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 100), 257);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 66.67), 257, "256 and 257 share");
}

Test(hist, zero)
{
	bench_hist_record(&h, 0);
	bench_hist_record(&h, 0);
	bench_hist_record(&h, 7);
	cr_assert_eq(bench_hist_count(&h), 3);
	cr_assert_eq(bench_hist_min(&h), 0);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 50), 0);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 66.66), 0);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 66.67), 7);
	cr_assert_eq(bench_hist_value_at_percentile(&h, 100), 7);
}

Test(hist, beyond_top_clamps_and_counts)
{
	struct bench_hist s;
	cr_assert_eq(bench_hist_init(&s, 1000000), 0); /* top: 1 ms */
	cr_assert_eq(s.counts_len, bench_hist_index(1000000) + 1);
	bench_hist_record(&s, 10);
	bench_hist_record(&s, 5000000);
	bench_hist_record(&s, UINT64_MAX);
	cr_assert_eq(bench_hist_count(&s), 3);
	cr_assert_eq(s.clamped, 2);
	cr_assert_eq(bench_hist_max(&s), 1000000);
	cr_assert_eq(bench_hist_value_at_percentile(&s, 100), 1000000);
	cr_assert_eq(bench_hist_value_at_percentile(&s, 33.33), 10);
	cr_assert_eq(bench_hist_value_at_percentile(&s, 66.67), 1000000);
	bench_hist_fini(&s);
	/* the default top holds an hour */
	bench_hist_record(&h, 3600ull * 1000000000ull);
	cr_assert_eq(h.clamped, 0);
	assert_in_bucket(bench_hist_value_at_percentile(&h, 100), 3600ull * 1000000000ull, "1 h");
	bench_hist_record(&h, UINT64_MAX);
	cr_assert_eq(h.clamped, 1);
	cr_assert_eq(bench_hist_max(&h), BENCH_HIST_MAX_NS_DEFAULT);
	cr_assert_eq(bench_hist_count(&h), 2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A log-uniform value from 1 ns to ~1 min. */
static uint64_t log_uniform(struct ordo_prng *p)
{
	unsigned bits = 1 + (unsigned)ordo_prng_below(p, 36);
	return ordo_prng_below(p, 1ull << bits);
}

Test(hist, random_against_sorted_reference)
{
	enum { N = 20011 };
	static uint64_t vals[N];
	struct ordo_prng p;
	ordo_prng_seed(&p, 7);
	for (int i = 0; i < N; i++) {
		vals[i] = log_uniform(&p);
		bench_hist_record(&h, vals[i]);
	}
	qsort(vals, N, sizeof vals[0], cmp_u64);
	cr_assert_eq(bench_hist_min(&h), vals[0]);
	cr_assert_eq(bench_hist_max(&h), vals[N - 1]);
	double pcts[] = {0.01, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
	for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
		/* rank = ceil(p/100 x N), exact in integers of 1/10000 percent */
		uint64_t pm = (uint64_t)(pcts[i] * 10000 + 0.5);
		uint64_t rank = (pm * N + 999999) / 1000000;
		uint64_t v = vals[rank - 1];
		assert_in_bucket(bench_hist_value_at_percentile(&h, pcts[i]), v, "random");
	}
}

Test(hist, merge_equals_recording_all)
{
	struct bench_hist a, b, all;
	cr_assert_eq(bench_hist_init(&a, 0), 0);
	cr_assert_eq(bench_hist_init(&b, 0), 0);
	cr_assert_eq(bench_hist_init(&all, 0), 0);
	struct ordo_prng p;
	ordo_prng_seed(&p, 11);
	for (int i = 0; i < 5000; i++) {
		uint64_t v = log_uniform(&p);
		bench_hist_record(i % 3 ? &a : &b, v);
		bench_hist_record(&all, v);
	}
	bench_hist_merge(&a, &b);
	cr_assert_eq(a.counts_len, all.counts_len);
	cr_assert_eq(memcmp(a.counts, all.counts, all.counts_len * sizeof all.counts[0]), 0);
	cr_assert_eq(bench_hist_count(&a), bench_hist_count(&all));
	cr_assert_eq(bench_hist_min(&a), bench_hist_min(&all));
	cr_assert_eq(bench_hist_max(&a), bench_hist_max(&all));
	cr_assert(a.sum_ns == all.sum_ns);
	for (double q = 0; q <= 100; q += 0.5)
		cr_assert_eq(bench_hist_value_at_percentile(&a, q),
			     bench_hist_value_at_percentile(&all, q), "p%g", q);
	/* merging an empty histogram changes nothing; reset empties */
	bench_hist_reset(&b);
	cr_assert_eq(bench_hist_count(&b), 0);
	cr_assert_eq(bench_hist_min(&b), 0);
	bench_hist_merge(&a, &b);
	cr_assert_eq(bench_hist_count(&a), 5000);
	bench_hist_merge(&b, &a);
	cr_assert_eq(bench_hist_value_at_percentile(&b, 99),
		     bench_hist_value_at_percentile(&a, 99));
	bench_hist_fini(&a);
	bench_hist_fini(&b);
	bench_hist_fini(&all);
}
