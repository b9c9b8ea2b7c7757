/* xoshiro256** with splitmix64 seeding; see prng.h. */
#include "prng.h"

#include "ordo_assert.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void ordo_prng_seed(struct ordo_prng *p, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		p->s[i] = splitmix64(&x);
	ORDO_ASSERT(p->s[0] | p->s[1] | p->s[2] | p->s[3]);
}

uint64_t ordo_prng_next(struct ordo_prng *p)
{
	uint64_t *s = p->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t ordo_prng_below(struct ordo_prng *p, uint64_t bound)
{
	ORDO_ASSERT(bound > 0);
	unsigned __int128 m = (unsigned __int128)ordo_prng_next(p) * bound;
	uint64_t low = (uint64_t)m;
	if (low < bound) {
		uint64_t threshold = -bound % bound;
		while (low < threshold) {
			m = (unsigned __int128)ordo_prng_next(p) * bound;
			low = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

int ordo_prng_chance_ppm(struct ordo_prng *p, uint32_t ppm)
{
	return ordo_prng_below(p, 1000000) < ppm;
}
