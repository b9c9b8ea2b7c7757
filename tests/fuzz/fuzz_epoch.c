/*
 * libFuzzer target: the internal epoch stream (docs/PROTOCOL.md). Input
 * byte 0 picks: a whole epoch (wire_epoch_decode_hdr, then the record
 * iterator), an EPOCH_DATA, an EPOCH_NACK or an EPOCH_HEARTBEAT body; the
 * rest is the bytes. What decodes is re-encoded and must decode the same.
 */
#include "fuzz_util.h"

static uint8_t out[FUZZ_INPUT_MAX + 128];

static void fuzz_whole_epoch(const uint8_t *e, uint32_t len)
{
	struct wire_epoch_hdr h;
	int rc = wire_epoch_decode_hdr(e, len, &h);
	/* The iterator on its own must stay in bounds whatever the header says. */
	uint32_t off = ORDO_EPOCH_HDR_BYTES, walked = 0;
	struct wire_epoch_rec r;
	int step;
	if (len >= ORDO_EPOCH_HDR_BYTES) {
		while ((step = wire_epoch_next_rec(e, len, &off, &r)) == 1) {
			ORDO_ASSERT(off <= len);
			ORDO_ASSERT(fuzz_in_body(r.payload, r.size, e, len));
			walked++;
		}
		ORDO_ASSERT(step == 0 || step == -EBADMSG);
	}
	if (rc != 0) {
		ORDO_ASSERT(rc == -EBADMSG);
		return;
	}
	ORDO_ASSERT(h.bytes == len && walked == h.count && off == len);

	/* Re-encode header and records; decode again to the same values. */
	uint32_t o = ORDO_EPOCH_HDR_BYTES;
	off = ORDO_EPOCH_HDR_BYTES;
	while (wire_epoch_next_rec(e, len, &off, &r) == 1)
		o += wire_epoch_rec_encode(out + o, &r);
	ORDO_ASSERT(o == len);
	wire_epoch_hdr_encode(out, &h);
	struct wire_epoch_hdr h2;
	ORDO_ASSERT(wire_epoch_decode_hdr(out, o, &h2) == 0);
	ORDO_ASSERT(h2.epoch == h.epoch && h2.first_position == h.first_position &&
		    h2.timestamp_ns == h.timestamp_ns && h2.count == h.count &&
		    h2.bytes == h.bytes && h2.group == h.group);
	uint32_t a = ORDO_EPOCH_HDR_BYTES, b = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec ra, rb;
	while (wire_epoch_next_rec(e, len, &a, &ra) == 1) {
		ORDO_ASSERT(wire_epoch_next_rec(out, o, &b, &rb) == 1);
		ORDO_ASSERT(ra.client_id == rb.client_id &&
			    ra.request_number == rb.request_number && ra.session == rb.session &&
			    ra.op == rb.op && ra.size == rb.size && ra.key_id == rb.key_id &&
			    ra.reply_ip == rb.reply_ip && ra.reply_port == rb.reply_port);
		ORDO_ASSERT(memcmp(ra.payload, rb.payload, ra.size) == 0);
	}
	ORDO_ASSERT(a == b);
}

static void fuzz_epoch_data(const uint8_t *body, uint32_t n)
{
	struct wire_epoch_data d, g;
	if (wire_parse_epoch_data(body, n, &d) != 0)
		return;
	ORDO_ASSERT((uint64_t)d.offset + d.data_bytes <= d.total_bytes);
	ORDO_ASSERT(d.total_bytes <= ORDO_EPOCH_BYTES_MAX);
	ORDO_ASSERT(fuzz_in_body(d.data, d.data_bytes, body, n));
	struct wire_writer w;
	wire_begin(&w, out, n + 32 + 16, WIRE_EPOCH_DATA, FUZZ_CLUSTER);
	ORDO_ASSERT(wire_put_epoch_data(&w, &d));
	uint32_t len = wire_finish(&w, NULL);
	ORDO_ASSERT(len == n + 32);
	ORDO_ASSERT(wire_parse_epoch_data(out + 32, n, &g) == 0);
	ORDO_ASSERT(g.epoch == d.epoch && g.committed_epoch == d.committed_epoch &&
		    g.total_bytes == d.total_bytes && g.offset == d.offset &&
		    g.data_bytes == d.data_bytes && g.group == d.group);
	ORDO_ASSERT(memcmp(g.data, d.data, d.data_bytes) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	const uint8_t *body = data + 1;
	uint32_t n = (uint32_t)size - 1;
	struct wire_writer w;
	switch (data[0] % 4) {
	case 0:
		fuzz_whole_epoch(body, n);
		break;
	case 1:
		fuzz_epoch_data(body, n);
		break;
	case 2: {
		struct wire_epoch_nack k, g;
		if (wire_parse_epoch_nack(body, n, &k) != 0)
			break;
		wire_begin(&w, out, 64, WIRE_EPOCH_NACK, FUZZ_CLUSTER);
		wire_put_epoch_nack(&w, &k);
		ORDO_ASSERT(wire_finish(&w, NULL) == 48);
		ORDO_ASSERT(memcmp(out + 32, body, 14) == 0);
		ORDO_ASSERT(wire_parse_epoch_nack(out + 32, 16, &g) == 0);
		ORDO_ASSERT(g.from_epoch == k.from_epoch && g.count == k.count &&
			    g.group == k.group);
		break;
	}
	default: {
		struct wire_epoch_heartbeat hb, g;
		if (wire_parse_epoch_heartbeat(body, n, &hb) != 0)
			break;
		wire_begin(&w, out, 128, WIRE_EPOCH_HEARTBEAT, FUZZ_CLUSTER);
		wire_put_epoch_heartbeat(&w, &hb);
		ORDO_ASSERT(wire_finish(&w, NULL) == 56);
		ORDO_ASSERT(memcmp(out + 32, body, 10) == 0);
		ORDO_ASSERT(wire_parse_epoch_heartbeat(out + 32, 24, &g) == 0);
		ORDO_ASSERT(g.committed_epoch == hb.committed_epoch && g.group == hb.group &&
			    g.retained_from == hb.retained_from);
		break;
	}
	}
	return 0;
}
