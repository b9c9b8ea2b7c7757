/*
 * libFuzzer target: the fixed-size bodies, FETCH, STATUS_Q, STATUS and
 * RESULT_Q. Input byte 0 picks the decoder; the rest is the body. What
 * decodes is re-encoded and decoded again to the same fields.
 */
#include "fuzz_util.h"

static uint8_t out[256];

static const uint8_t *reencode_begin(struct wire_writer *w, uint8_t type)
{
	wire_begin(w, out, sizeof out, type, FUZZ_CLUSTER);
	return out + 32;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	const uint8_t *body = data + 1;
	uint32_t n = (uint32_t)size - 1;
	struct wire_writer w;
	switch (data[0] % 4) {
	case 0: {
		struct wire_fetch f, g;
		if (wire_parse_fetch(body, n, &f) != 0) {
			ORDO_ASSERT(n != ORDO_FETCH_BYTES);
			return 0;
		}
		const uint8_t *b = reencode_begin(&w, WIRE_FETCH);
		wire_put_fetch(&w, &f);
		ORDO_ASSERT(wire_finish(&w, NULL) == 32 + ORDO_FETCH_BYTES);
		ORDO_ASSERT(wire_parse_fetch(b, ORDO_FETCH_BYTES, &g) == 0);
		ORDO_ASSERT(f.nonce == g.nonce && f.from_position == g.from_position &&
			    f.max_bytes == g.max_bytes);
		ORDO_ASSERT(memcmp(b, body, 20) == 0);
		break;
	}
	case 1: {
		uint64_t nonce, again;
		if (wire_parse_status_q(body, n, &nonce) != 0) {
			ORDO_ASSERT(n != ORDO_STATUS_BYTES);
			return 0;
		}
		const uint8_t *b = reencode_begin(&w, WIRE_STATUS_Q);
		wire_put_status_q(&w, nonce);
		ORDO_ASSERT(wire_finish(&w, NULL) == 32 + ORDO_STATUS_BYTES);
		ORDO_ASSERT(wire_parse_status_q(b, ORDO_STATUS_BYTES, &again) == 0);
		ORDO_ASSERT(nonce == again);
		break;
	}
	case 2: {
		struct wire_status_msg s, t;
		if (wire_parse_status(body, n, &s) != 0) {
			ORDO_ASSERT(n != ORDO_STATUS_BYTES);
			return 0;
		}
		const uint8_t *b = reencode_begin(&w, WIRE_STATUS);
		wire_put_status(&w, &s);
		ORDO_ASSERT(wire_finish(&w, NULL) == 32 + ORDO_STATUS_BYTES);
		/* STATUS has no reserved bytes: identical. */
		ORDO_ASSERT(memcmp(b, body, ORDO_STATUS_BYTES) == 0);
		ORDO_ASSERT(wire_parse_status(b, ORDO_STATUS_BYTES, &t) == 0);
		ORDO_ASSERT(t.nonce == s.nonce && t.retained_from == s.retained_from);
		break;
	}
	default: {
		struct wire_result_q q, r;
		if (wire_parse_result_q(body, n, &q) != 0) {
			ORDO_ASSERT(n != ORDO_RESULT_Q_BYTES);
			return 0;
		}
		const uint8_t *b = reencode_begin(&w, WIRE_RESULT_Q);
		wire_put_result_q(&w, &q);
		ORDO_ASSERT(wire_finish(&w, NULL) == 32 + ORDO_RESULT_Q_BYTES);
		ORDO_ASSERT(memcmp(b, body, 24) == 0);
		ORDO_ASSERT(wire_parse_result_q(b, ORDO_RESULT_Q_BYTES, &r) == 0);
		ORDO_ASSERT(q.nonce == r.nonce && q.client_id == r.client_id &&
			    q.request_number == r.request_number);
		break;
	}
	}
	return 0;
}
