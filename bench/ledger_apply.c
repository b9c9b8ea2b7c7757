/*
 * Microbenchmark of the ledger state machine on one core: creates
 * `accounts` accounts (default 1M, no flags), then times ledger_apply of
 * `transfers` TRANSFER requests (default 4M) between uniformly random
 * distinct accounts with fresh ids, and prints transfers per second. Payloads
 * are generated before the clock starts; only ledger_apply is timed.
 * Reports a number; asserts nothing about speed.
 *
 * Usage: ledger_apply_bench [accounts] [transfers] [seed]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "common/le.h"
#include "common/prng.h"
#include "replicas/ledger.h"

static long minor_faults(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	uint64_t accounts = argc > 1 ? strtoull(argv[1], NULL, 0) : (1ull << 20);
	uint64_t transfers = argc > 2 ? strtoull(argv[2], NULL, 0) : (4ull << 20);
	uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
	if (accounts < 2 || transfers == 0) {
		fprintf(stderr, "usage: %s [accounts >= 2] [transfers >= 1] [seed]\n", argv[0]);
		return 2;
	}

	struct ledger l;
	struct ledger_cfg cfg = {.accounts_max = accounts, .transfers_max = transfers};
	if (ledger_init(&l, &cfg) != 0) {
		fprintf(stderr, "ledger_init failed (%zu bytes)\n", ledger_bytes(&cfg));
		return 1;
	}
	uint8_t data[32];
	uint8_t p[32];
	for (uint64_t a = 1; a <= accounts; a++) {
		ordo_st64(p, a);
		ordo_st32(p + 8, 0);
		ordo_st32(p + 12, 0);
		if (ledger_apply(&l, WIRE_OP_CREATE_ACCOUNT, p, 16, data) != WIRE_R_OK) {
			fprintf(stderr, "create %" PRIu64 " failed\n", a);
			return 1;
		}
	}

	uint8_t *payloads = malloc(transfers * 32);
	if (payloads == NULL) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	struct ordo_prng rng;
	ordo_prng_seed(&rng, seed);
	for (uint64_t i = 0; i < transfers; i++) {
		uint64_t d = 1 + ordo_prng_below(&rng, accounts);
		uint64_t c = 1 + ordo_prng_below(&rng, accounts - 1);
		if (c >= d)
			c++; /* distinct, still uniform */
		uint8_t *q = payloads + i * 32;
		ordo_st64(q, i + 1);
		ordo_st64(q + 8, d);
		ordo_st64(q + 16, c);
		ordo_st64(q + 24, 1 + ordo_prng_below(&rng, 1000));
	}

	uint64_t ok = 0;
	long f0 = minor_faults();
	double t0 = now_s();
	for (uint64_t i = 0; i < transfers; i++)
		ok += ledger_apply(&l, WIRE_OP_TRANSFER, payloads + i * 32, 32, data) == WIRE_R_OK;
	double dt = now_s() - t0;
	long faults = minor_faults() - f0;

	printf("ledger_apply: %" PRIu64 " accounts, %" PRIu64 " transfers (%" PRIu64
	       " OK) in %.3f s: %.2f M transfers/s, %.1f ns each; tables %.1f MiB, %ld page faults"
	       " while timed\n",
	       accounts, transfers, ok, dt, (double)transfers / dt / 1e6,
	       dt * 1e9 / (double)transfers, (double)ledger_bytes(&cfg) / (1 << 20), faults);
	free(payloads);
	ledger_free(&l);
	return ok == transfers ? 0 : 1;
}
