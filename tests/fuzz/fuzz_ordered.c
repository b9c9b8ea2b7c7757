/*
 * libFuzzer target: wire_parse_ordered on an ORDERED body (the input).
 * Whatever decodes is re-encoded and must give back the same bytes: an
 * ORDERED body has no reserved or padding bytes.
 */
#include "fuzz_util.h"

static struct wire_ordered_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
static uint8_t out[FUZZ_INPUT_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	uint32_t hint = 0;
	int n = wire_parse_ordered(data, (uint32_t)size, &hint, recs, ORDO_RECS_PER_DATAGRAM_MAX);
	if (n < 0) {
		ORDO_ASSERT(n == -EBADMSG || n == -ENOBUFS);
		return 0;
	}
	ORDO_ASSERT(n >= 1 && size == 8u + (size_t)n * ORDO_ORDERED_REC_BYTES);

	struct wire_writer w;
	wire_begin(&w, out, (uint32_t)size + 32 + 16, WIRE_ORDERED, FUZZ_CLUSTER);
	wire_begin_records(&w, hint);
	for (int i = 0; i < n; i++)
		ORDO_ASSERT(wire_add_ordered(&w, &recs[i]));
	uint32_t len = wire_finish(&w, NULL);
	ORDO_ASSERT(len == size + 32);
	ORDO_ASSERT(memcmp(out + 32, data, size) == 0);
	return 0;
}
