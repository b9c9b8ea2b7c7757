/*
 * Shared by the libFuzzer targets in tests/fuzz/: the entry point's
 * prototype and the fixed receiver used by fuzz_check_submit. Any
 * inconsistency a target finds stops it with ORDO_ASSERT (abort).
 */
#ifndef ORDO_FUZZ_UTIL_H
#define ORDO_FUZZ_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/le.h"
#include "common/ordo_assert.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CLUSTER 0x0123456789ABCDEFull
#define FUZZ_KEY_ID  7u

/* Inputs larger than this are ignored (run.sh uses -max_len=9000). */
#define FUZZ_INPUT_MAX 65536u

static inline bool fuzz_in_body(const uint8_t *p, size_t n, const uint8_t *body, size_t body_len)
{
	return p >= body && n <= body_len && (size_t)(p - body) <= body_len - n;
}

#endif
