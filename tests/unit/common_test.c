/* Unit tests of common/: CRC-32C against published vectors, PRNG determinism. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/parse.h"
#include "common/prng.h"

Test(crc32c, check_value)
{
	/* RFC 3720 / PROTOCOL.md §2.1: CRC-32C of "123456789". */
	cr_assert_eq(ordo_crc32c("123456789", 9), 0xE3069283u);
}

Test(crc32c, rfc3720_vectors)
{
	/* RFC 3720 appendix B.4: 32 bytes of zeros, of 0xFF, ascending, descending. */
	uint8_t buf[32];
	memset(buf, 0, sizeof buf);
	cr_assert_eq(ordo_crc32c(buf, 32), 0x8A9136AAu);
	memset(buf, 0xFF, sizeof buf);
	cr_assert_eq(ordo_crc32c(buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	cr_assert_eq(ordo_crc32c(buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	cr_assert_eq(ordo_crc32c(buf, 32), 0x113FDB5Cu);
}

Test(crc32c, incremental_equals_oneshot)
{
	const char *s = "the quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	for (size_t cut = 0; cut <= n; cut++) {
		uint32_t st = ordo_crc32c_init();
		st = ordo_crc32c_update(st, s, cut);
		st = ordo_crc32c_update(st, s + cut, n - cut);
		cr_assert_eq(ordo_crc32c_final(st), ordo_crc32c(s, n), "cut at %zu", cut);
	}
}

Test(prng, same_seed_same_stream)
{
	struct ordo_prng a, b, c;
	ordo_prng_seed(&a, 42);
	ordo_prng_seed(&b, 42);
	ordo_prng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = ordo_prng_next(&a);
		cr_assert_eq(x, ordo_prng_next(&b));
		differ += x != ordo_prng_next(&c);
	}
	cr_assert_gt(differ, 990);
}

Test(prng, below_stays_in_bound_and_covers)
{
	struct ordo_prng p;
	ordo_prng_seed(&p, 7);
	int seen[10] = {0};
	for (int i = 0; i < 10000; i++) {
		uint64_t v = ordo_prng_below(&p, 10);
		cr_assert_lt(v, 10);
		seen[v]++;
	}
	for (int i = 0; i < 10; i++)
		cr_assert_gt(seen[i], 800, "bucket %d has %d", i, seen[i]);
}

Test(prng, chance_ppm_edges)
{
	struct ordo_prng p;
	ordo_prng_seed(&p, 1);
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(ordo_prng_chance_ppm(&p, 0), 0);
		cr_assert_eq(ordo_prng_chance_ppm(&p, 1000000), 1);
	}
}

/* ordo_parse_u64: the whole text, decimal or 0x hex, no sign, no overflow. */
static bool pu(const char *s, uint64_t *v)
{
	return ordo_parse_u64(s, strlen(s), v);
}

Test(parse, strict_u64)
{
	uint64_t v = 0;
	cr_assert(pu("0", &v) && v == 0);
	cr_assert(pu("42", &v) && v == 42);
	cr_assert(pu("0x2A", &v) && v == 42);
	cr_assert(pu("0Xff", &v) && v == 255);
	cr_assert(pu("18446744073709551615", &v) && v == UINT64_MAX);
	cr_assert(pu("0xffffffffffffffff", &v) && v == UINT64_MAX);
	cr_assert_not(pu("18446744073709551616", &v), "one past 2^64-1");
	cr_assert_not(pu("0x10000000000000000", &v));
	cr_assert_not(pu("", &v));
	cr_assert_not(pu("0x", &v));
	cr_assert_not(pu("-1", &v));
	cr_assert_not(pu("+1", &v));
	cr_assert_not(pu(" 7", &v));
	cr_assert_not(pu("7 ", &v));
	cr_assert_not(pu("7x", &v));
	cr_assert_not(pu("ff", &v), "hex needs its 0x");
	/* only len bytes count: "12" of "123" */
	cr_assert(ordo_parse_u64("123", 2, &v) && v == 12);
}
