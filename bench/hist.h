/*
 * A log-linear latency histogram after HdrHistogram's scheme (Gil Tene,
 * HdrHistogram, "sub-bucket" layout), for the bench harness.
 *
 * Values are unsigned nanoseconds. Each power of two [2^k, 2^(k+1)) above 255
 * is split into 128 equal sub-buckets (values below 256 are exact), so every
 * bucket is at most 1/128 (0.78 %) of the values it holds wide: two
 * significant decimal digits. Memory is one array of counters allocated at
 * init (4,608 counters, 36 KiB, for the default top of 2^42 - 1 ns, 73 min);
 * recording is O(1), integer-only and allocates nothing. A value above the top
 * is recorded as the top and counted in `clamped`.
 *
 * Not thread-safe: one writer; merge per-thread histograms to combine them.
 * What is not here: printing, JSON (bench/bench.c), coordinated-omission
 * correction (the load generator measures from intended send times instead).
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#include "common/ordo_assert.h"

#define BENCH_HIST_SUB_BITS	  7u			      /* 128 sub-buckets per power of two */
#define BENCH_HIST_SUB_HALF	  (1u << BENCH_HIST_SUB_BITS) /* 128 */
#define BENCH_HIST_SUB_COUNT	  (2u * BENCH_HIST_SUB_HALF)  /* 256: bucket 0 spans 0..255 */
#define BENCH_HIST_MAX_NS_DEFAULT ((1ull << 42) - 1)	      /* 73.3 minutes: at least 1 hour */

struct bench_hist {
	uint64_t *counts;	   /* counts_len counters, allocated at init */
	uint32_t counts_len;	   /* counters: enough to hold max_trackable_ns */
	uint64_t max_trackable_ns; /* highest value recorded as itself; above it clamps */
	uint64_t total;		   /* values recorded */
	uint64_t clamped;	   /* values above max_trackable_ns, recorded as it */
	uint64_t min_ns;	   /* smallest value recorded (UINT64_MAX while empty) */
	uint64_t max_ns;	   /* largest value recorded (after clamping; 0 while empty) */
	unsigned __int128 sum_ns;  /* exact sum of recorded values, for the mean */
};

/* Allocates the counters for values 0..max_trackable_ns (at least 255; 0 means
 * BENCH_HIST_MAX_NS_DEFAULT). 0 or -ENOMEM. */
ORDO_MUST_CHECK int bench_hist_init(struct bench_hist *h, uint64_t max_trackable_ns);
void bench_hist_fini(struct bench_hist *h);

/* Records one value: O(1), no floating point, no allocation. */
void bench_hist_record(struct bench_hist *h, uint64_t value_ns);
/* Adds every value of src into dst. Both were initialised with the same top:
 * merging equals having recorded all of src's values into dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* Empties the histogram; keeps its memory. */
void bench_hist_reset(struct bench_hist *h);

uint64_t bench_hist_count(const struct bench_hist *h);
/* 0 when empty. */
uint64_t bench_hist_min(const struct bench_hist *h);
uint64_t bench_hist_max(const struct bench_hist *h);
double bench_hist_mean(const struct bench_hist *h);

/* The p-quantile, p in [0, 100] with up to 4 decimals (99.99). The true
 * p-quantile is the smallest recorded value v such that at least
 * ceil(p/100 x count) values (at least 1) are <= v. What is returned is the
 * highest value equivalent to the bucket that holds v, as HdrHistogram's
 * getValueAtPercentile does, capped at the exact max: so
 * v <= returned <= v + v/128 (and returned <= max). p = 0 returns the min;
 * an empty histogram returns 0. */
uint64_t bench_hist_value_at_percentile(const struct bench_hist *h, double p);

/* Bucket geometry, exposed for tests: the counter index of a value (before
 * clamping), and the lowest and highest values sharing its bucket. */
uint32_t bench_hist_index(uint64_t value_ns);
uint64_t bench_hist_lowest_equivalent(uint64_t value_ns);
uint64_t bench_hist_highest_equivalent(uint64_t value_ns);

#endif
