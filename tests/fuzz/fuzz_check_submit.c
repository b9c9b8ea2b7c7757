/*
 * libFuzzer target: receipt rules 1-4 (wire_check) with a fixed receiver
 * holding one key, then, for a SUBMIT, wire_parse_submit and
 * wire_req_validate on every record. Sound SUBMITs are re-encoded and must
 * decode to the same records at the same length.
 *
 * Input byte 0 is a mode: bit 0 rewrites the checksum and bit 1 the MAC
 * (key 7) so that the fuzzer gets past rules 2 and 4; the datagram is the
 * rest of the input.
 */
#include <sodium.h>

#include "common/crc32c.h"
#include "fuzz_util.h"

static struct wire_key fuzz_keys[1];
static struct wire_keyring fuzz_ring = {fuzz_keys, 1};
static uint8_t dgram[FUZZ_INPUT_MAX];
static uint8_t out[FUZZ_INPUT_MAX + 64];
static struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
static struct wire_req again[ORDO_RECS_PER_DATAGRAM_MAX];

static void fuzz_init(void)
{
	static bool done;
	if (done)
		return;
	ORDO_ASSERT(sodium_init() >= 0);
	fuzz_keys[0].key_id = FUZZ_KEY_ID;
	for (unsigned i = 0; i < WIRE_SECRET_BYTES; i++)
		fuzz_keys[0].secret[i] = (uint8_t)(i * 7 + 1);
	done = true;
}

/* Fixes checksum / MAC in place when the length field allows it. */
static void fix_up(uint8_t mode, uint8_t *d, size_t n)
{
	if (n < 32)
		return;
	uint32_t length = ordo_ld32(d + 8);
	if (length < 32 || length > n)
		return;
	if (mode & 1) {
		memset(d + 12, 0, 4);
		ordo_st32(d + 12, ordo_crc32c(d, length));
	}
	if ((mode & 2) && length + 16u == n) {
		ordo_st16(d + 6, ordo_ld16(d + 6) | WIRE_FLAG_AUTH);
		ordo_st32(d + 24, FUZZ_KEY_ID);
		memset(d + 12, 0, 4);
		ordo_st32(d + 12, ordo_crc32c(d, length));
		crypto_generichash(d + length, 16, d, length, fuzz_keys[0].secret, 32);
	}
}

static void check_submit(const struct wire_hdr *h, const uint8_t *body, uint32_t body_len)
{
	bool ok = true;
	int n = wire_parse_submit(body, body_len, recs, ORDO_RECS_PER_DATAGRAM_MAX, &ok);
	if (n < 0) {
		ORDO_ASSERT(n == -EBADMSG);
		ORDO_ASSERT(body_len < 8 || ordo_ld32(body) == 0);
		return;
	}
	uint32_t count = ordo_ld32(body);
	ORDO_ASSERT(body_len >= 8 && count > 0);
	ORDO_ASSERT((uint32_t)n <= count);
	ORDO_ASSERT((uint64_t)n * ORDO_SUBMIT_REC_BYTES <= body_len - 8u);
	for (int i = 0; i < n; i++) {
		const struct wire_req *r = &recs[i];
		if (r->payload != NULL)
			ORDO_ASSERT(fuzz_in_body(r->payload, r->size, body, body_len));
		else
			ORDO_ASSERT(!ok);
		enum wire_status st = wire_req_validate(r, h->authed, h->key_id);
		ORDO_ASSERT(st == WIRE_ST_OK || st == WIRE_ST_INVALID);
		if (st == WIRE_ST_OK) {
			ORDO_ASSERT(r->client_id != 0 && r->request_number != 0);
			ORDO_ASSERT(r->op < WIRE_OP_COUNT);
			ORDO_ASSERT(!h->authed || (r->client_id >> 48) == (h->key_id & 0xFFFFu));
		}
	}
	if (!ok)
		return;
	ORDO_ASSERT((uint32_t)n == count);

	/* Round trip: re-encode under the same key; same length, same records. */
	struct wire_writer w;
	uint32_t cap = h->length + ORDO_MAC_BYTES;
	wire_begin(&w, out, cap, WIRE_SUBMIT, FUZZ_CLUSTER);
	wire_begin_records(&w, 0);
	for (int i = 0; i < n; i++)
		ORDO_ASSERT(wire_add_submit(&w, &recs[i]));
	uint32_t len = wire_finish(&w, h->authed ? &fuzz_keys[0] : NULL);
	ORDO_ASSERT(len == h->length + (h->authed ? ORDO_MAC_BYTES : 0u));
	struct wire_rx_ctx ctx = {FUZZ_CLUSTER, &fuzz_ring, false};
	struct wire_hdr h2;
	ORDO_ASSERT(wire_check(&ctx, out, len, &h2) == WIRE_DROP_NONE);
	ORDO_ASSERT(h2.length == h->length && h2.authed == h->authed && h2.key_id == h->key_id);
	bool ok2 = false;
	int n2 =
	    wire_parse_submit(out + 32, h2.length - 32, again, ORDO_RECS_PER_DATAGRAM_MAX, &ok2);
	ORDO_ASSERT(n2 == n && ok2);
	for (int i = 0; i < n; i++) {
		const struct wire_req *a = &recs[i], *b = &again[i];
		ORDO_ASSERT(a->client_id == b->client_id && a->request_number == b->request_number);
		ORDO_ASSERT(a->session == b->session && a->op == b->op && a->size == b->size);
		ORDO_ASSERT(a->size == 0 || memcmp(a->payload, b->payload, a->size) == 0);
		ORDO_ASSERT(wire_req_validate(a, h->authed, h->key_id) ==
			    wire_req_validate(b, h->authed, h->key_id));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1 || size - 1 > FUZZ_INPUT_MAX)
		return 0;
	size_t n = size - 1;
	memcpy(dgram, data + 1, n);
	fix_up(data[0], dgram, n);

	for (int req = 0; req < 2; req++) {
		struct wire_rx_ctx ctx = {FUZZ_CLUSTER, &fuzz_ring, req == 1};
		struct wire_hdr h;
		enum wire_drop d = wire_check(&ctx, dgram, n, &h);
		ORDO_ASSERT(d < WIRE_DROP__COUNT);
		(void)wire_drop_name(d);
		if (d != WIRE_DROP_NONE)
			continue;
		ORDO_ASSERT(h.length >= 32 && h.length % 8 == 0);
		ORDO_ASSERT(h.length + (h.authed ? 16u : 0u) == n);
		ORDO_ASSERT(!req || h.authed);
		for (int port = WIRE_PORT_SEQUENCER; port <= WIRE_PORT_CLIENT; port++)
			(void)wire_type_accepted((enum wire_port_kind)port, h.type);
		if (h.type == WIRE_SUBMIT)
			check_submit(&h, dgram + 32, h.length - 32);
	}
	return 0;
}
