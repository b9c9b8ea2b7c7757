/*
 * libFuzzer target: wire_parse_applied on an APPLIED body (the input).
 * Whatever decodes is re-encoded and must give back the same bytes (the
 * only variable part, LOOKUP data, is carried verbatim).
 */
#include "fuzz_util.h"

static struct wire_applied_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
static uint8_t out[FUZZ_INPUT_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	uint32_t replica = 0;
	int n =
	    wire_parse_applied(data, (uint32_t)size, &replica, recs, ORDO_RECS_PER_DATAGRAM_MAX);
	if (n < 0) {
		ORDO_ASSERT(n == -EBADMSG || n == -ENOBUFS);
		return 0;
	}
	ORDO_ASSERT(n >= 1 && n == (int)ordo_ld32(data));
	size_t total = 8;
	for (int i = 0; i < n; i++) {
		ORDO_ASSERT(recs[i].size == 0 || recs[i].size == 32);
		if (recs[i].size)
			ORDO_ASSERT(fuzz_in_body(recs[i].data, recs[i].size, data, size));
		total += ORDO_APPLIED_REC_BYTES + recs[i].size;
	}
	ORDO_ASSERT(total == size);

	struct wire_writer w;
	wire_begin(&w, out, (uint32_t)size + 32 + 16, WIRE_APPLIED, FUZZ_CLUSTER);
	wire_begin_records(&w, replica);
	for (int i = 0; i < n; i++)
		ORDO_ASSERT(wire_add_applied(&w, &recs[i]));
	uint32_t len = wire_finish(&w, NULL);
	ORDO_ASSERT(len == size + 32);
	ORDO_ASSERT(memcmp(out + 32, data, size) == 0);
	return 0;
}
