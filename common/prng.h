/*
 * A seeded pseudo-random generator for simulation, fault injection, tests and
 * load generation: xoshiro256** (Blackman and Vigna, 2018), seeded through
 * splitmix64. Deterministic for a given seed on every machine. Not for
 * secrets: client_ids come from the OS CSPRNG (libsodium randombytes).
 */
#ifndef ORDO_PRNG_H
#define ORDO_PRNG_H

#include <stdint.h>

struct ordo_prng {
	uint64_t s[4]; /* never all zero */
};

void ordo_prng_seed(struct ordo_prng *p, uint64_t seed);
uint64_t ordo_prng_next(struct ordo_prng *p);
/* Uniform in [0, bound); bound > 0. Unbiased (Lemire's method). */
uint64_t ordo_prng_below(struct ordo_prng *p, uint64_t bound);
/* True with probability ppm / 1,000,000. */
int ordo_prng_chance_ppm(struct ordo_prng *p, uint32_t ppm);

#endif
