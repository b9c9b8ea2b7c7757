/*
 * libFuzzer target: wire_parse_entries on an ENTRIES body (the input).
 * Whatever decodes is re-encoded: same length, and the same head and
 * records when decoded again (padding is re-written as zero, so bytes may
 * differ only there).
 */
#include "fuzz_util.h"

static struct wire_entry_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
static struct wire_entry_rec again[ORDO_RECS_PER_DATAGRAM_MAX];
static uint8_t out[FUZZ_INPUT_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	struct wire_entries_head h;
	int n = wire_parse_entries(data, (uint32_t)size, &h, recs, ORDO_RECS_PER_DATAGRAM_MAX);
	if (n < 0) {
		ORDO_ASSERT(n == -EBADMSG || n == -ENOBUFS);
		return 0;
	}
	ORDO_ASSERT((uint32_t)n == h.count);
	size_t total = ORDO_ENTRIES_HEAD_BYTES;
	for (int i = 0; i < n; i++) {
		ORDO_ASSERT(recs[i].size <= ORDO_OPAQUE_BYTES_MAX);
		ORDO_ASSERT(
		    fuzz_in_body(recs[i].payload, wire_entry_bytes(recs[i].size) - 40, data, size));
		total += wire_entry_bytes(recs[i].size);
	}
	ORDO_ASSERT(total == size);

	struct wire_writer w;
	wire_begin(&w, out, (uint32_t)size + 32 + 16, WIRE_ENTRIES, FUZZ_CLUSTER);
	wire_begin_entries(&w, &h);
	for (int i = 0; i < n; i++)
		ORDO_ASSERT(wire_add_entry(&w, &recs[i]));
	uint32_t len = wire_finish(&w, NULL);
	ORDO_ASSERT(len == size + 32);
	/* Heads have no reserved bytes. */
	ORDO_ASSERT(memcmp(out + 32, data, ORDO_ENTRIES_HEAD_BYTES) == 0);
	struct wire_entries_head h2;
	int n2 = wire_parse_entries(out + 32, len - 32, &h2, again, ORDO_RECS_PER_DATAGRAM_MAX);
	ORDO_ASSERT(n2 == n);
	for (int i = 0; i < n; i++) {
		const struct wire_entry_rec *a = &recs[i], *b = &again[i];
		ORDO_ASSERT(a->position == b->position && a->epoch == b->epoch);
		ORDO_ASSERT(a->client_id == b->client_id && a->request_number == b->request_number);
		ORDO_ASSERT(a->op == b->op && a->size == b->size && a->result == b->result);
		ORDO_ASSERT(memcmp(a->payload, b->payload, a->size) == 0);
		/* The record bytes as wire_entry_encode writes them (digest input). */
		uint8_t one[ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX];
		wire_entry_encode(one, a);
		ORDO_ASSERT(
		    memcmp(one, b->payload - ORDO_ENTRY_REC_BYTES, wire_entry_bytes(a->size)) == 0);
	}
	return 0;
}
