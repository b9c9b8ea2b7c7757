/*
 * The log-linear latency histogram (see hist.h): HdrHistogram's layout with
 * 256 sub-buckets (2 significant decimal digits) and a unit of 1 ns.
 *
 * Geometry. Let b = max(0, bitlen(v) - 8), the bucket: the number of low bits
 * a value loses. The sub-bucket is s = v >> b, in [0, 256) for b = 0 and in
 * [128, 256) above, and the counter index is b x 128 + s, a continuous range
 * from 0. The values sharing a counter are [s << b, ((s + 1) << b) - 1], a
 * range of 2^b values at or above 128 x 2^b: at most 1/128 relative width.
 * Quantiles walk the counters in order; recording is a clz, a shift and an
 * add.
 */
#include "hist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bucket_of(uint64_t v)
{
	/* bitlen(v | 255) - 8: 0 for v < 256 */
	return (uint32_t)(64 - __builtin_clzll(v | (BENCH_HIST_SUB_COUNT - 1)) - 8);
}

uint32_t bench_hist_index(uint64_t value_ns)
{
	uint32_t b = bucket_of(value_ns);
	return b * BENCH_HIST_SUB_HALF + (uint32_t)(value_ns >> b);
}

/* The lowest value counted at index i. */
static uint64_t index_lowest(uint32_t i)
{
	if (i < BENCH_HIST_SUB_COUNT)
		return i;
	uint32_t b = i / BENCH_HIST_SUB_HALF - 1;
	uint64_t s = i - b * BENCH_HIST_SUB_HALF; /* in [128, 256) */
	return s << b;
}

static uint64_t index_highest(uint32_t i)
{
	uint32_t b = i < BENCH_HIST_SUB_COUNT ? 0 : i / BENCH_HIST_SUB_HALF - 1;
	return index_lowest(i) + (1ull << b) - 1;
}

uint64_t bench_hist_lowest_equivalent(uint64_t value_ns)
{
	uint32_t b = bucket_of(value_ns);
	return (value_ns >> b) << b;
}

uint64_t bench_hist_highest_equivalent(uint64_t value_ns)
{
	uint32_t b = bucket_of(value_ns);
	return bench_hist_lowest_equivalent(value_ns) + (1ull << b) - 1;
}

int bench_hist_init(struct bench_hist *h, uint64_t max_trackable_ns)
{
	memset(h, 0, sizeof *h);
	if (max_trackable_ns == 0)
		max_trackable_ns = BENCH_HIST_MAX_NS_DEFAULT;
	if (max_trackable_ns < BENCH_HIST_SUB_COUNT - 1)
		max_trackable_ns = BENCH_HIST_SUB_COUNT - 1;
	h->max_trackable_ns = max_trackable_ns;
	h->counts_len = bench_hist_index(max_trackable_ns) + 1;
	h->counts = calloc(h->counts_len, sizeof *h->counts);
	if (!h->counts)
		return -ENOMEM;
	h->min_ns = UINT64_MAX;
	return 0;
}

void bench_hist_fini(struct bench_hist *h)
{
	free(h->counts);
	h->counts = NULL;
	h->counts_len = 0;
}

void bench_hist_record(struct bench_hist *h, uint64_t value_ns)
{
	if (ORDO_UNLIKELY(value_ns > h->max_trackable_ns)) {
		value_ns = h->max_trackable_ns;
		h->clamped++;
	}
	uint32_t i = bench_hist_index(value_ns);
	ORDO_ASSERT(i < h->counts_len);
	h->counts[i]++;
	h->total++;
	h->sum_ns += value_ns;
	if (value_ns < h->min_ns)
		h->min_ns = value_ns;
	if (value_ns > h->max_ns)
		h->max_ns = value_ns;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	ORDO_ASSERT(dst->counts_len == src->counts_len);
	ORDO_ASSERT(dst->max_trackable_ns == src->max_trackable_ns);
	if (src->total == 0)
		return;
	for (uint32_t i = 0; i < src->counts_len; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clamped += src->clamped;
	dst->sum_ns += src->sum_ns;
	if (src->min_ns < dst->min_ns)
		dst->min_ns = src->min_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

void bench_hist_reset(struct bench_hist *h)
{
	memset(h->counts, 0, (size_t)h->counts_len * sizeof *h->counts);
	h->total = 0;
	h->clamped = 0;
	h->sum_ns = 0;
	h->min_ns = UINT64_MAX;
	h->max_ns = 0;
}

uint64_t bench_hist_count(const struct bench_hist *h)
{
	return h->total;
}

uint64_t bench_hist_min(const struct bench_hist *h)
{
	return h->total ? h->min_ns : 0;
}

uint64_t bench_hist_max(const struct bench_hist *h)
{
	return h->max_ns;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->total ? (double)h->sum_ns / (double)h->total : 0.0;
}

uint64_t bench_hist_value_at_percentile(const struct bench_hist *h, double p)
{
	if (h->total == 0)
		return 0;
	if (!(p > 0.0))
		return h->min_ns;
	if (p > 100.0)
		p = 100.0;
	/* rank = ceil(p/100 x total), in exact integers from p in millionths */
	uint64_t p_millionths = (uint64_t)(p * 10000.0 + 0.5);
	unsigned __int128 scaled = (unsigned __int128)p_millionths * h->total;
	uint64_t rank = (uint64_t)((scaled + 999999u) / 1000000u);
	if (rank < 1)
		rank = 1;
	if (rank > h->total)
		rank = h->total;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < h->counts_len; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = index_highest(i);
			return v < h->max_ns ? v : h->max_ns;
		}
	}
	ORDO_ASSERT(0 && "histogram counts disagree with total");
	return h->max_ns;
}
