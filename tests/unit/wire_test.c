/*
 * Unit tests of wire/: golden byte vectors written by hand from the shared
 * PROTOCOL.md (checked both ways), every receipt rule and its drop reason,
 * truncation of every message at every byte, SUBMIT framing, the per-record
 * checks of §3.1.1, rule 6 address tests, the §3.7 freshness cache, and the
 * internal epoch format (docs/PROTOCOL.md).
 *
 * The checksums inside the golden vectors are checked against a bitwise
 * CRC-32C written here (not common/crc32c), and the AUTH MAC against
 * crypto_generichash called directly.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/le.h"
#include "wire/wire.h"

#define CLUSTER	    0x0123456789ABCDEFull
#define CL_BYTES    0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01
#define CID_BYTES   0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 /* 0x1122334455667788 */
#define CID	    0x1122334455667788ull
#define NONCE_BYTES 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 /* 0x0102030405060708 */
#define NONCE	    0x0102030405060708ull
#define Z8	    0, 0, 0, 0, 0, 0, 0, 0

/* ------------------------------------------------------------- helpers */

/* Independent bitwise CRC-32C (reflected polynomial 0x82F63B78). */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
	}
	return ~c;
}

/* §2.1 checksum of a datagram: first `length` bytes, 12..15 as zero. */
static uint32_t ref_hdr_crc(const uint8_t *d)
{
	uint32_t length = ordo_ld32(d + 8);
	uint8_t *tmp = malloc(length);
	cr_assert_not_null(tmp);
	memcpy(tmp, d, length);
	memset(tmp + 12, 0, 4);
	uint32_t c = ref_crc32c(tmp, length);
	free(tmp);
	return c;
}

static const uint8_t test_secret[32] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F,
};

/* Rewrites checksum (and MAC when AUTH) after a test edited a datagram. */
static void reseal(uint8_t *d, const uint8_t *secret)
{
	uint32_t length = ordo_ld32(d + 8);
	ordo_st32(d + 12, ref_hdr_crc(d));
	if (secret != NULL)
		crypto_generichash(d + length, 16, d, length, secret, 32);
}

static struct wire_key test_keys[3];
static struct wire_keyring test_ring = {test_keys, 3};

static void setup_keys(void)
{
	cr_assert(sodium_init() >= 0);
	/* Unsorted on purpose. */
	test_keys[0].key_id = 9;
	memset(test_keys[0].secret, 0x99, 32);
	test_keys[1].key_id = 7;
	memcpy(test_keys[1].secret, test_secret, 32);
	test_keys[2].key_id = 3;
	memset(test_keys[2].secret, 0x33, 32);
	wire_keyring_sort(&test_ring);
}

static const struct wire_key *key7(void)
{
	return wire_keyring_find(&test_ring, 7);
}

static struct wire_rx_ctx plain_ctx = {CLUSTER, NULL, false};

/* Encoder output equals the golden vector; the golden checksum is right. */
static void expect_golden(const uint8_t *golden, size_t glen, const uint8_t *out, uint32_t n)
{
	cr_assert_eq(n, glen, "length %u, golden %zu", n, glen);
	cr_assert_eq(ordo_ld32(golden + 12), ref_hdr_crc(golden),
		     "golden checksum 0x%08x != 0x%08x", ordo_ld32(golden + 12),
		     ref_hdr_crc(golden));
	for (size_t i = 0; i < glen; i++)
		cr_assert_eq(out[i], golden[i], "byte %zu: 0x%02x, golden 0x%02x", i, out[i],
			     golden[i]);
}

/* A copy in a heap block of exactly n bytes, so ASan sees any over-read. */
static uint8_t *exact_copy(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

/* wire_check on the golden datagram, body returned. */
static const uint8_t *check_ok(const struct wire_rx_ctx *ctx, const uint8_t *d, size_t n,
			       struct wire_hdr *h)
{
	enum wire_drop drop = wire_check(ctx, d, n, h);
	cr_assert_eq(drop, WIRE_DROP_NONE, "dropped: %s", wire_drop_name(drop));
	return d + ORDO_HDR_BYTES;
}

/* Every strict prefix of a datagram is dropped by wire_check. */
static void truncations_dropped(const struct wire_rx_ctx *ctx, const uint8_t *d, size_t n)
{
	for (size_t l = 0; l < n; l++) {
		uint8_t *p = exact_copy(d, l);
		struct wire_hdr h;
		cr_assert_neq(wire_check(ctx, p, l, &h), WIRE_DROP_NONE, "prefix %zu accepted", l);
		free(p);
	}
}

/* ------------------------------------------------------ golden vectors */

/* SUBMIT, one OPAQUE request 1 (client 0x1122334455667788, session 0). */
/* clang-format off */
static const uint8_t golden_submit_open[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x01, 0x00, 0x00, /* "ORDO", v1, SUBMIT, flags 0 */
	0x48, 0x00, 0x00, 0x00, 0xD4, 0x97, 0xD9, 0x0D, /* length 72, checksum */
	CL_BYTES, /* cluster_id */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* key_id 0, reserved */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* count 1, reserved */
	CID_BYTES, /* client_id */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 1 */
	Z8, /* session 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* op OPAQUE, size 0, reserved */
};
/* clang-format on */

Test(golden, submit_open, .init = setup_keys)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_SUBMIT, CLUSTER);
	wire_begin_records(&w, 0);
	struct wire_req r = {CID, 1, 0, WIRE_OP_OPAQUE, 0, NULL};
	cr_assert(wire_add_submit(&w, &r));
	expect_golden(golden_submit_open, sizeof golden_submit_open, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body =
	    check_ok(&plain_ctx, golden_submit_open, sizeof golden_submit_open, &h);
	cr_assert_eq(h.type, WIRE_SUBMIT);
	cr_assert_eq(h.length, 72);
	cr_assert_eq(h.cluster_id, CLUSTER);
	cr_assert_eq(h.key_id, 0);
	cr_assert(!h.authed);
	struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
	bool ok;
	cr_assert_eq(wire_parse_submit(body, h.length - 32, recs, ORDO_RECS_PER_DATAGRAM_MAX, &ok),
		     1);
	cr_assert(ok);
	cr_assert_eq(recs[0].client_id, CID);
	cr_assert_eq(recs[0].request_number, 1);
	cr_assert_eq(recs[0].session, 0);
	cr_assert_eq(recs[0].op, WIRE_OP_OPAQUE);
	cr_assert_eq(recs[0].size, 0);
	cr_assert_eq(wire_req_validate(&recs[0], false, 0), WIRE_ST_OK);
}

/* SUBMIT, one TRANSFER (request 5 of session 42). */
/* clang-format off */
static const uint8_t golden_submit_transfer[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x01, 0x00, 0x00, /* "ORDO", v1, SUBMIT */
	0x68, 0x00, 0x00, 0x00, 0x6D, 0x2F, 0x07, 0x42, /* length 104, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* key_id, reserved */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* count 1 */
	CID_BYTES,
	0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 5 */
	0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* session 42 */
	0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, /* op TRANSFER, size 32 */
	0x01, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* transfer_id 0x1001 */
	0x02, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* debit 0x2002 */
	0x03, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* credit 0x3003 */
	0x40, 0x42, 0x0F, 0x00, 0x00, 0x00, 0x00, 0x00, /* amount 1000000 */
};
/* clang-format on */

Test(golden, submit_transfer, .init = setup_keys)
{
	uint8_t payload[32];
	ordo_st64(payload + 0, 0x1001);
	ordo_st64(payload + 8, 0x2002);
	ordo_st64(payload + 16, 0x3003);
	ordo_st64(payload + 24, 1000000);
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_SUBMIT, CLUSTER);
	wire_begin_records(&w, 0);
	struct wire_req r = {CID, 5, 42, WIRE_OP_TRANSFER, 32, payload};
	cr_assert(wire_add_submit(&w, &r));
	expect_golden(golden_submit_transfer, sizeof golden_submit_transfer, buf,
		      wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body =
	    check_ok(&plain_ctx, golden_submit_transfer, sizeof golden_submit_transfer, &h);
	struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
	bool ok;
	cr_assert_eq(wire_parse_submit(body, h.length - 32, recs, ORDO_RECS_PER_DATAGRAM_MAX, &ok),
		     1);
	cr_assert(ok);
	cr_assert_eq(recs[0].request_number, 5);
	cr_assert_eq(recs[0].session, 42);
	cr_assert_eq(recs[0].op, WIRE_OP_TRANSFER);
	cr_assert_eq(recs[0].size, 32);
	cr_assert_eq(ordo_ld64(recs[0].payload + 8), 0x2002);
	cr_assert_eq(ordo_ld64(recs[0].payload + 24), 1000000);
	cr_assert_eq(wire_req_validate(&recs[0], false, 0), WIRE_ST_OK);
}

/* ORDERED, leader_hint 3: an OK in group 1 and a NOT_LEADER. */
/* clang-format off */
static const uint8_t golden_ordered[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x02, 0x00, 0x00, /* ORDERED */
	0x78, 0x00, 0x00, 0x00, 0x8A, 0x8E, 0xD3, 0x41, /* length 120, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, /* count 2, leader_hint 3 */
	CID_BYTES,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 1 */
	0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, /* OK, group 1, index 5 */
	0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* epoch 9 */
	0x4D, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* group_position 77 */
	0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, /* client 0x99AABBCCDDEEFF00 */
	0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 7 */
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* NOT_LEADER, place 0 */
	Z8, Z8,
};
/* clang-format on */

Test(golden, ordered)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_ORDERED, CLUSTER);
	wire_begin_records(&w, 3);
	struct wire_ordered_rec a = {CID, 1, WIRE_ST_OK, {1, 5, 9, 77}};
	struct wire_ordered_rec b = {0x99AABBCCDDEEFF00ull, 7, WIRE_ST_NOT_LEADER, {0, 0, 0, 0}};
	cr_assert(wire_add_ordered(&w, &a));
	cr_assert(wire_add_ordered(&w, &b));
	expect_golden(golden_ordered, sizeof golden_ordered, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_ordered, sizeof golden_ordered, &h);
	cr_assert_eq(h.type, WIRE_ORDERED);
	struct wire_ordered_rec recs[4];
	uint32_t hint = 0;
	cr_assert_eq(wire_parse_ordered(body, h.length - 32, &hint, recs, 4), 2);
	cr_assert_eq(hint, 3);
	cr_assert_eq(recs[0].client_id, CID);
	cr_assert_eq(recs[0].request_number, 1);
	cr_assert_eq(recs[0].status, WIRE_ST_OK);
	cr_assert_eq(recs[0].place.group, 1);
	cr_assert_eq(recs[0].place.index, 5);
	cr_assert_eq(recs[0].place.epoch, 9);
	cr_assert_eq(recs[0].place.group_position, 77);
	cr_assert_eq(recs[1].client_id, 0x99AABBCCDDEEFF00ull);
	cr_assert_eq(recs[1].status, WIRE_ST_NOT_LEADER);
	cr_assert_eq(recs[1].place.group_position, 0);
	/* Too small an array: -ENOBUFS, not a crash. */
	cr_assert_eq(wire_parse_ordered(body, h.length - 32, &hint, recs, 1), -ENOBUFS);
}

/* APPLIED from replica 4: a LOOKUP answered OK with its 32 bytes of data. */
/* clang-format off */
static const uint8_t golden_applied[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x03, 0x00, 0x00, /* APPLIED */
	0x68, 0x00, 0x00, 0x00, 0xB6, 0x41, 0xE6, 0x7A, /* length 104, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* count 1, replica_id 4 */
	CID_BYTES,
	0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 6 */
	0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* position 100 */
	0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, /* result OK, size 32 */
	0x02, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* account_id 0x2002 */
	0xF4, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* debits_posted 500 */
	0xDC, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* credits_posted 1500 */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* flags 1, reserved */
};
/* clang-format on */

Test(golden, applied_lookup)
{
	uint8_t data[32];
	memset(data, 0, sizeof data);
	ordo_st64(data + 0, 0x2002);
	ordo_st64(data + 8, 500);
	ordo_st64(data + 16, 1500);
	ordo_st32(data + 24, WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS);
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_APPLIED, CLUSTER);
	wire_begin_records(&w, 4);
	struct wire_applied_rec a = {CID, 6, 100, WIRE_R_OK, 32, data};
	cr_assert(wire_add_applied(&w, &a));
	expect_golden(golden_applied, sizeof golden_applied, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_applied, sizeof golden_applied, &h);
	struct wire_applied_rec recs[2];
	uint32_t rid = 0;
	cr_assert_eq(wire_parse_applied(body, h.length - 32, &rid, recs, 2), 1);
	cr_assert_eq(rid, 4);
	cr_assert_eq(recs[0].client_id, CID);
	cr_assert_eq(recs[0].request_number, 6);
	cr_assert_eq(recs[0].position, 100);
	cr_assert_eq(recs[0].result, WIRE_R_OK);
	cr_assert_eq(recs[0].size, 32);
	cr_assert_eq(ordo_ld64(recs[0].data + 8), 500);
	cr_assert_eq(ordo_ld64(recs[0].data + 16), 1500);
	cr_assert_eq(ordo_ld32(recs[0].data + 24), 1);
}

/* FETCH from position 10, max_bytes 1472. */
/* clang-format off */
static const uint8_t golden_fetch[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x04, 0x00, 0x00, /* FETCH */
	0x38, 0x00, 0x00, 0x00, 0x45, 0x45, 0x3A, 0x01, /* length 56, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	NONCE_BYTES,
	0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* from_position 10 */
	0xC0, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* max_bytes 1472, reserved */
};
/* clang-format on */

Test(golden, fetch)
{
	uint8_t buf[128];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_FETCH, CLUSTER);
	struct wire_fetch f = {NONCE, 10, 1472};
	wire_put_fetch(&w, &f);
	expect_golden(golden_fetch, sizeof golden_fetch, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_fetch, sizeof golden_fetch, &h);
	struct wire_fetch g;
	cr_assert_eq(wire_parse_fetch(body, h.length - 32, &g), 0);
	cr_assert_eq(g.nonce, NONCE);
	cr_assert_eq(g.from_position, 10);
	cr_assert_eq(g.max_bytes, 1472);
}

/* ENTRIES: one OPAQUE "hello" at position 10. */
/* clang-format off */
static const uint8_t golden_entries[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x05, 0x00, 0x00, /* ENTRIES */
	0x80, 0x00, 0x00, 0x00, 0xD9, 0xBE, 0x43, 0x25, /* length 128, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	NONCE_BYTES,
	0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* first_position 10 */
	0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* applied_position 12 */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* count 1, flags 0 */
	0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, /* digest */
	0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
	0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* position 10 */
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* epoch 3 */
	CID_BYTES,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 2 */
	0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, /* OPAQUE, size 5, result OK */
	0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x00, 0x00, 0x00, /* "hello", padding */
};
/* clang-format on */

Test(golden, entries)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_ENTRIES, CLUSTER);
	struct wire_entries_head head = {NONCE, 10, 12, 0, 0, {0}};
	for (int i = 0; i < 16; i++)
		head.digest[i] = (uint8_t)(0xA0 + i);
	wire_begin_entries(&w, &head);
	struct wire_entry_rec e = {
	    10, 3, CID, 2, WIRE_OP_OPAQUE, 5, WIRE_R_OK, (const uint8_t *)"hello"};
	cr_assert(wire_add_entry(&w, &e));
	expect_golden(golden_entries, sizeof golden_entries, buf, wire_finish(&w, NULL));
	cr_assert_eq(wire_entry_bytes(5), 48);

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_entries, sizeof golden_entries, &h);
	struct wire_entries_head g;
	struct wire_entry_rec recs[2];
	cr_assert_eq(wire_parse_entries(body, h.length - 32, &g, recs, 2), 1);
	cr_assert_eq(g.nonce, NONCE);
	cr_assert_eq(g.first_position, 10);
	cr_assert_eq(g.applied_position, 12);
	cr_assert_eq(g.count, 1);
	cr_assert_eq(g.flags, 0);
	cr_assert_eq(g.digest[15], 0xAF);
	cr_assert_eq(recs[0].position, 10);
	cr_assert_eq(recs[0].epoch, 3);
	cr_assert_eq(recs[0].client_id, CID);
	cr_assert_eq(recs[0].request_number, 2);
	cr_assert_eq(recs[0].op, WIRE_OP_OPAQUE);
	cr_assert_eq(recs[0].size, 5);
	cr_assert_eq(recs[0].result, WIRE_R_OK);
	cr_assert_eq(memcmp(recs[0].payload, "hello", 5), 0);
	/* wire_entry_encode writes the same record bytes. */
	uint8_t one[48];
	wire_entry_encode(one, &e);
	cr_assert_eq(memcmp(one, golden_entries + 80, 48), 0);
}

/* STATUS_Q: the nonce, then 88 zero bytes. */
/* clang-format off */
static const uint8_t golden_status_q[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x06, 0x00, 0x00, /* STATUS_Q */
	0x80, 0x00, 0x00, 0x00, 0x57, 0x78, 0x62, 0x55, /* length 128, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* key_id, reserved */
	NONCE_BYTES, /* nonce */
	Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, /* 88 zero bytes */
};
/* clang-format on */

Test(golden, status_q)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_STATUS_Q, CLUSTER);
	wire_put_status_q(&w, NONCE);
	expect_golden(golden_status_q, sizeof golden_status_q, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_status_q, sizeof golden_status_q, &h);
	uint64_t nonce = 0;
	cr_assert_eq(wire_parse_status_q(body, h.length - 32, &nonce), 0);
	cr_assert_eq(nonce, NONCE);
}

/* STATUS of a replica. */
/* clang-format off */
static const uint8_t golden_status[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x07, 0x00, 0x00, /* STATUS */
	0x80, 0x00, 0x00, 0x00, 0xB4, 0x12, 0x16, 0x44, /* length 128, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	NONCE_BYTES,
	0x02, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* node_id 2, role 4, group 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* term 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, /* leader_id 0, window 256 */
	0xE8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* commit 1000 */
	0x4D, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* epoch 77 */
	0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, /* digest */
	0xB8, 0xB9, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF,
	0x39, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* requests 12345 */
	0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* dropped 7 */
	0xC0, 0x05, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, /* max_datagram 1472, G 1, R 3 */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* retained_from 1 */
};
/* clang-format on */

static struct wire_status_msg sample_status(void)
{
	struct wire_status_msg s;
	memset(&s, 0, sizeof s);
	s.nonce = NONCE;
	s.node_id = 2;
	s.role = WIRE_ROLE_REPLICA;
	s.window = 256;
	s.commit = 1000;
	s.epoch = 77;
	for (int i = 0; i < 16; i++)
		s.digest[i] = (uint8_t)(0xB0 + i);
	s.requests = 12345;
	s.dropped = 7;
	s.max_datagram = 1472;
	s.groups = 1;
	s.replicas = 3;
	s.retained_from = 1;
	return s;
}

Test(golden, status)
{
	struct wire_status_msg s = sample_status();
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_STATUS, CLUSTER);
	wire_put_status(&w, &s);
	expect_golden(golden_status, sizeof golden_status, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_status, sizeof golden_status, &h);
	struct wire_status_msg g;
	cr_assert_eq(wire_parse_status(body, h.length - 32, &g), 0);
	cr_assert_eq(g.nonce, NONCE);
	cr_assert_eq(g.node_id, 2);
	cr_assert_eq(g.role, WIRE_ROLE_REPLICA);
	cr_assert_eq(g.group, 0);
	cr_assert_eq(g.term, 0);
	cr_assert_eq(g.leader_id, 0);
	cr_assert_eq(g.window, 256);
	cr_assert_eq(g.commit, 1000);
	cr_assert_eq(g.epoch, 77);
	cr_assert_eq(memcmp(g.digest, s.digest, 16), 0);
	cr_assert_eq(g.requests, 12345);
	cr_assert_eq(g.dropped, 7);
	cr_assert_eq(g.max_datagram, 1472);
	cr_assert_eq(g.groups, 1);
	cr_assert_eq(g.replicas, 3);
	cr_assert_eq(g.retained_from, 1);
}

/* RESULT_Q for (client, 6), then 48 zero bytes. */
/* clang-format off */
static const uint8_t golden_result_q[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x08, 0x00, 0x00, /* RESULT_Q */
	0x68, 0x00, 0x00, 0x00, 0xEF, 0xD9, 0x15, 0xFC, /* length 104, checksum */
	CL_BYTES,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* key_id, reserved */
	NONCE_BYTES, /* nonce */
	CID_BYTES,
	0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 6 */
	Z8, Z8, Z8, Z8, Z8, Z8, /* 48 zero bytes */
};
/* clang-format on */

Test(golden, result_q)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_RESULT_Q, CLUSTER);
	struct wire_result_q q = {NONCE, CID, 6};
	wire_put_result_q(&w, &q);
	expect_golden(golden_result_q, sizeof golden_result_q, buf, wire_finish(&w, NULL));

	struct wire_hdr h;
	const uint8_t *body = check_ok(&plain_ctx, golden_result_q, sizeof golden_result_q, &h);
	struct wire_result_q g;
	cr_assert_eq(wire_parse_result_q(body, h.length - 32, &g), 0);
	cr_assert_eq(g.nonce, NONCE);
	cr_assert_eq(g.client_id, CID);
	cr_assert_eq(g.request_number, 6);
}

/* SUBMIT with AUTH under key 7 (client 0x0007AABBCCDDEEFF, in key 7's
 * range): header and body; the 16-byte MAC follows. */
/* clang-format off */
static const uint8_t golden_auth_submit[] = {
	0x4F, 0x52, 0x44, 0x4F, 0x01, 0x01, 0x01, 0x00, /* SUBMIT, flags AUTH */
	0x48, 0x00, 0x00, 0x00, 0x79, 0xD7, 0xA7, 0x50, /* length 72 (MAC excluded), checksum */
	CL_BYTES,
	0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* key_id 7, reserved */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* count 1 */
	0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x07, 0x00, /* client_id */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* request_number 1 */
	Z8, /* session 0 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* OPAQUE, size 0 */
};
/* clang-format on */

Test(golden, auth_submit, .init = setup_keys)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_SUBMIT, CLUSTER);
	wire_begin_records(&w, 0);
	struct wire_req r = {0x0007AABBCCDDEEFFull, 1, 0, WIRE_OP_OPAQUE, 0, NULL};
	cr_assert(wire_add_submit(&w, &r));
	uint32_t n = wire_finish(&w, key7());
	cr_assert_eq(n, sizeof golden_auth_submit + 16);
	expect_golden(golden_auth_submit, sizeof golden_auth_submit, buf, n - 16);
	uint8_t mac[16];
	cr_assert_eq(crypto_generichash(mac, 16, golden_auth_submit, sizeof golden_auth_submit,
					test_secret, 32),
		     0);
	cr_assert_eq(memcmp(buf + 72, mac, 16), 0);

	struct wire_rx_ctx ctx = {CLUSTER, &test_ring, true};
	struct wire_hdr h;
	const uint8_t *body = check_ok(&ctx, buf, n, &h);
	cr_assert(h.authed);
	cr_assert_eq(h.key_id, 7);
	cr_assert_eq(h.flags, WIRE_FLAG_AUTH);
	cr_assert_eq(h.length, 72);
	struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
	bool ok;
	cr_assert_eq(wire_parse_submit(body, h.length - 32, recs, ORDO_RECS_PER_DATAGRAM_MAX, &ok),
		     1);
	cr_assert(ok);
	cr_assert_eq(wire_req_validate(&recs[0], h.authed, h.key_id), WIRE_ST_OK);
	/* The same record under key 9 is outside that key's client range. */
	cr_assert_eq(wire_req_validate(&recs[0], true, 9), WIRE_ST_INVALID);
	truncations_dropped(&ctx, buf, n);
}

/* ------------------------------------------------ truncation, all types */

struct golden_msg {
	const uint8_t *bytes;
	size_t len;
};

static const struct golden_msg goldens[] = {
    {golden_submit_open, sizeof golden_submit_open},
    {golden_submit_transfer, sizeof golden_submit_transfer},
    {golden_ordered, sizeof golden_ordered},
    {golden_applied, sizeof golden_applied},
    {golden_fetch, sizeof golden_fetch},
    {golden_entries, sizeof golden_entries},
    {golden_status_q, sizeof golden_status_q},
    {golden_status, sizeof golden_status},
    {golden_result_q, sizeof golden_result_q},
};

/* Decodes a body with the decoder of its type; 0 when accepted. */
static int decode_body(uint8_t type, const uint8_t *body, uint32_t n)
{
	struct wire_req reqs[ORDO_RECS_PER_DATAGRAM_MAX];
	struct wire_ordered_rec ord[ORDO_RECS_PER_DATAGRAM_MAX];
	struct wire_applied_rec app[ORDO_RECS_PER_DATAGRAM_MAX];
	struct wire_entry_rec ent[ORDO_RECS_PER_DATAGRAM_MAX];
	struct wire_entries_head eh;
	struct wire_fetch f;
	struct wire_status_msg s;
	struct wire_result_q q;
	uint64_t nonce;
	uint32_t aux;
	bool ok;
	int rc;
	switch (type) {
	case WIRE_SUBMIT:
		rc = wire_parse_submit(body, n, reqs, ORDO_RECS_PER_DATAGRAM_MAX, &ok);
		if (rc < 0)
			return rc;
		/* Truncated framing must never be judged sound. */
		for (int i = 0; i < rc; i++)
			if (ok)
				(void)wire_req_validate(&reqs[i], false, 0);
		return ok ? 0 : -EBADMSG;
	case WIRE_ORDERED:
		rc = wire_parse_ordered(body, n, &aux, ord, ORDO_RECS_PER_DATAGRAM_MAX);
		return rc < 0 ? rc : 0;
	case WIRE_APPLIED:
		rc = wire_parse_applied(body, n, &aux, app, ORDO_RECS_PER_DATAGRAM_MAX);
		return rc < 0 ? rc : 0;
	case WIRE_ENTRIES:
		rc = wire_parse_entries(body, n, &eh, ent, ORDO_RECS_PER_DATAGRAM_MAX);
		return rc < 0 ? rc : 0;
	case WIRE_FETCH:
		return wire_parse_fetch(body, n, &f);
	case WIRE_STATUS_Q:
		return wire_parse_status_q(body, n, &nonce);
	case WIRE_STATUS:
		return wire_parse_status(body, n, &s);
	case WIRE_RESULT_Q:
		return wire_parse_result_q(body, n, &q);
	}
	return -EINVAL;
}

Test(truncation, every_prefix_of_every_type)
{
	for (size_t g = 0; g < ORDO_ARRAY_LEN(goldens); g++) {
		const uint8_t *d = goldens[g].bytes;
		size_t n = goldens[g].len;
		uint8_t type = d[5];
		truncations_dropped(&plain_ctx, d, n);
		/* The body decoder on every prefix of the body. */
		uint32_t body_len = (uint32_t)n - 32;
		cr_assert_eq(decode_body(type, d + 32, body_len), 0, "type %u whole body", type);
		for (uint32_t l = 0; l < body_len; l++) {
			uint8_t *p = exact_copy(d + 32, l);
			cr_assert_neq(decode_body(type, p, l), 0, "type %u prefix %u", type, l);
			free(p);
		}
	}
}

/* --------------------------------------------------------- receipt rules */

/* A valid STATUS_Q in buf (128 bytes, or 144 with AUTH under key 7). */
static uint32_t make_status_q(uint8_t *buf, size_t cap, bool auth)
{
	struct wire_writer w;
	wire_begin(&w, buf, (uint32_t)cap, WIRE_STATUS_Q, CLUSTER);
	wire_put_status_q(&w, NONCE);
	return wire_finish(&w, auth ? key7() : NULL);
}

static enum wire_drop check(const struct wire_rx_ctx *ctx, const uint8_t *d, size_t n)
{
	uint8_t *p = exact_copy(d, n);
	struct wire_hdr h;
	enum wire_drop r = wire_check(ctx, p, n, &h);
	free(p);
	return r;
}

Test(receipt, rule1_short_magic_version_flags, .init = setup_keys)
{
	uint8_t d[256];
	uint32_t n = make_status_q(d, sizeof d, false);
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_NONE);
	cr_assert_eq(check(&plain_ctx, d, 0), WIRE_DROP_SHORT);
	cr_assert_eq(check(&plain_ctx, d, 31), WIRE_DROP_SHORT);

	d[0] = 'X';
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_MAGIC);
	d[0] = 'O';
	d[3] = 'X';
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_MAGIC);
	d[3] = 'O';

	d[4] = 2;
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_VERSION);
	d[4] = 0;
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_VERSION);
	d[4] = 1;

	for (int bit = 1; bit < 16; bit++) {
		ordo_st16(d + 6, (uint16_t)(1u << bit));
		reseal(d, NULL);
		cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_FLAGS, "flag bit %d", bit);
	}
	ordo_st16(d + 6, 0);
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_NONE);
}

Test(receipt, rule1_length, .init = setup_keys)
{
	uint8_t d[256];
	memset(d, 0, sizeof d);
	uint32_t n = make_status_q(d, sizeof d, false);

	/* Not a multiple of 8 (datagram length agrees). */
	ordo_st32(d + 8, 124);
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, 124), WIRE_DROP_LENGTH);
	/* Under 32 in a longer datagram. */
	ordo_st32(d + 8, 24);
	cr_assert_eq(check(&plain_ctx, d, 40), WIRE_DROP_LENGTH);
	ordo_st32(d + 8, 0);
	cr_assert_eq(check(&plain_ctx, d, 40), WIRE_DROP_LENGTH);
	/* Inconsistent with the datagram length, both ways. */
	ordo_st32(d + 8, n);
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, n + 8), WIRE_DROP_LENGTH);
	cr_assert_eq(check(&plain_ctx, d, n - 8), WIRE_DROP_LENGTH);
	cr_assert_eq(check(&plain_ctx, d, n + 16), WIRE_DROP_LENGTH); /* MAC room, no AUTH */
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_NONE);
}

Test(receipt, rule1_auth_sizes, .init = setup_keys)
{
	struct wire_rx_ctx ctx = {CLUSTER, &test_ring, false};
	uint8_t d[256];
	memset(d, 0, sizeof d);
	uint32_t n = make_status_q(d, sizeof d, true);
	cr_assert_eq(n, 144);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_NONE);
	/* AUTH with fewer than 48 bytes in all. */
	cr_assert_eq(check(&ctx, d, 40), WIRE_DROP_SHORT);
	cr_assert_eq(check(&ctx, d, 47), WIRE_DROP_SHORT);
	/* A 48-byte AUTH datagram with a header-only message is well formed. */
	uint8_t e[48];
	memcpy(e, d, 32);
	ordo_st32(e + 8, 32);
	reseal(e, test_secret);
	cr_assert_eq(check(&ctx, e, 48), WIRE_DROP_NONE);
	/* AUTH whose length equals the datagram (no MAC room). */
	cr_assert_eq(check(&ctx, d, n - 16), WIRE_DROP_LENGTH);
}

Test(receipt, rule2_checksum, .init = setup_keys)
{
	uint8_t d[256];
	uint32_t n = make_status_q(d, sizeof d, false);
	for (uint32_t i = 0; i < n; i++) {
		if (i >= 4 && i < 12)
			continue; /* version, type, flags, length: earlier rules */
		uint8_t save = d[i];
		d[i] ^= 0x40;
		cr_assert_eq(check(&plain_ctx, d, n), i < 4 ? WIRE_DROP_MAGIC : WIRE_DROP_CHECKSUM,
			     "byte %u", i);
		d[i] = save;
	}
	/* The type byte is covered too. */
	d[5] = WIRE_STATUS;
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_CHECKSUM);
}

Test(receipt, rule3_cluster, .init = setup_keys)
{
	uint8_t d[256];
	uint32_t n = make_status_q(d, sizeof d, false);
	struct wire_rx_ctx other = {CLUSTER + 1, NULL, false};
	cr_assert_eq(check(&other, d, n), WIRE_DROP_CLUSTER);
	ordo_st64(d + 16, 42);
	reseal(d, NULL);
	cr_assert_eq(check(&plain_ctx, d, n), WIRE_DROP_CLUSTER);
}

Test(receipt, rule4_auth, .init = setup_keys)
{
	struct wire_rx_ctx ctx = {CLUSTER, &test_ring, false};
	struct wire_rx_ctx req = {CLUSTER, &test_ring, true};
	struct wire_rx_ctx nokeys = {CLUSTER, NULL, false};
	uint8_t d[256];
	uint32_t n = make_status_q(d, sizeof d, true);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_NONE);
	cr_assert_eq(check(&req, d, n), WIRE_DROP_NONE);
	/* AUTH is verified even by a receiver that does not require it. */
	cr_assert_eq(check(&nokeys, d, n), WIRE_DROP_KEY_UNKNOWN);

	/* Unknown key, and key_id 0. */
	ordo_st32(d + 24, 8);
	reseal(d, test_secret);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_KEY_UNKNOWN);
	ordo_st32(d + 24, 0);
	reseal(d, test_secret);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_KEY_UNKNOWN);
	ordo_st32(d + 24, 7);
	reseal(d, test_secret);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_NONE);

	/* Bad MAC: each byte of the trailer, and a MAC under another key. */
	for (uint32_t i = n - 16; i < n; i++) {
		d[i] ^= 1;
		cr_assert_eq(check(&ctx, d, n), WIRE_DROP_MAC, "mac byte %u", i);
		d[i] ^= 1;
	}
	uint8_t wrong[32];
	memset(wrong, 0x99, sizeof wrong);
	reseal(d, wrong);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_MAC);
	ordo_st32(d + 24, 9); /* ... which is key 9's secret */
	reseal(d, wrong);
	cr_assert_eq(check(&ctx, d, n), WIRE_DROP_NONE);

	/* Receiver requires AUTH; this one has none. */
	uint8_t p[256];
	uint32_t pn = make_status_q(p, sizeof p, false);
	cr_assert_eq(check(&req, p, pn), WIRE_DROP_AUTH_REQUIRED);
	cr_assert_eq(check(&ctx, p, pn), WIRE_DROP_NONE);
}

Test(receipt, rule5_types)
{
	for (int t = 0; t < 256; t++) {
		bool seq = t == WIRE_SUBMIT || t == WIRE_STATUS_Q;
		bool rep = t == WIRE_FETCH || t == WIRE_RESULT_Q || t == WIRE_STATUS_Q;
		bool in = t >= 16 && t <= 63;
		bool cli =
		    t == WIRE_ORDERED || t == WIRE_APPLIED || t == WIRE_ENTRIES || t == WIRE_STATUS;
		cr_assert_eq(wire_type_accepted(WIRE_PORT_SEQUENCER, (uint8_t)t), seq, "type %d",
			     t);
		cr_assert_eq(wire_type_accepted(WIRE_PORT_REPLICA, (uint8_t)t), rep, "type %d", t);
		cr_assert_eq(wire_type_accepted(WIRE_PORT_INTERNAL, (uint8_t)t), in, "type %d", t);
		cr_assert_eq(wire_type_accepted(WIRE_PORT_CLIENT, (uint8_t)t), cli, "type %d", t);
		if (t == 0 || (t >= 9 && t <= 15) || t >= 64) {
			for (int port = WIRE_PORT_SEQUENCER; port <= WIRE_PORT_CLIENT; port++)
				cr_assert(
				    !wire_type_accepted((enum wire_port_kind)port, (uint8_t)t));
		}
	}
}

Test(receipt, drop_names)
{
	for (int d = 0; d < WIRE_DROP__COUNT; d++) {
		const char *s = wire_drop_name((enum wire_drop)d);
		cr_assert(s != NULL && strcmp(s, "unknown") != 0, "drop %d unnamed", d);
	}
	cr_assert_str_eq(wire_drop_name(WIRE_DROP__COUNT), "unknown");
	cr_assert_str_eq(wire_status_name(WIRE_ST_STALE), "STALE");
	cr_assert_str_eq(wire_status_name((enum wire_status)99), "UNKNOWN");
	cr_assert_str_eq(wire_result_name(WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS),
			 "EXISTS_WITH_DIFFERENT_FIELDS");
	cr_assert_str_eq(wire_result_name((enum wire_result)14), "UNKNOWN");
	cr_assert_str_eq(wire_op_name(WIRE_OP_LOOKUP), "LOOKUP");
	cr_assert_str_eq(wire_op_name((enum wire_op)4), "UNKNOWN");
}

Test(keyring, sort_and_find, .init = setup_keys)
{
	cr_assert_eq(test_keys[0].key_id, 3);
	cr_assert_eq(test_keys[1].key_id, 7);
	cr_assert_eq(test_keys[2].key_id, 9);
	cr_assert_eq(wire_keyring_find(&test_ring, 3), &test_keys[0]);
	cr_assert_eq(wire_keyring_find(&test_ring, 9), &test_keys[2]);
	cr_assert_null(wire_keyring_find(&test_ring, 0));
	cr_assert_null(wire_keyring_find(&test_ring, 5));
	cr_assert_null(wire_keyring_find(&test_ring, 10));
	cr_assert_null(wire_keyring_find(NULL, 7));
	struct wire_keyring empty = {NULL, 0};
	cr_assert_null(wire_keyring_find(&empty, 7));
}

/* ------------------------------------------------------ SUBMIT framing */

static const uint8_t pay16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* A SUBMIT body of two records: OPAQUE size 5, then LOOKUP (16). */
static uint32_t two_record_body(uint8_t *buf, size_t cap)
{
	struct wire_writer w;
	wire_begin(&w, buf, (uint32_t)cap, WIRE_SUBMIT, CLUSTER);
	wire_begin_records(&w, 0);
	struct wire_req a = {CID, 2, 9, WIRE_OP_OPAQUE, 5, pay16};
	uint8_t look[16] = {7};
	struct wire_req b = {CID, 3, 9, WIRE_OP_LOOKUP, 16, look};
	cr_assert(wire_add_submit(&w, &a));
	cr_assert(wire_add_submit(&w, &b));
	uint32_t n = wire_finish(&w, NULL);
	cr_assert_eq(n, 32 + 8 + 40 + 48);
	return n - 32;
}

static int parse(const uint8_t *body, uint32_t n, struct wire_req *recs, bool *ok)
{
	uint8_t *p = exact_copy(body, n);
	int rc = wire_parse_submit(p, n, recs, ORDO_RECS_PER_DATAGRAM_MAX, ok);
	/* Records point into p: callers only look at the fixed fields. */
	free(p);
	return rc;
}

Test(submit, framing_sound_and_broken)
{
	uint8_t buf[512];
	uint32_t n = two_record_body(buf, sizeof buf);
	uint8_t *body = buf + 32;
	struct wire_req recs[ORDO_RECS_PER_DATAGRAM_MAX];
	bool ok;

	cr_assert_eq(parse(body, n, recs, &ok), 2);
	cr_assert(ok);
	cr_assert_eq(recs[0].size, 5);
	cr_assert_eq(recs[1].op, WIRE_OP_LOOKUP);

	/* Second record's payload runs past length. */
	ordo_st16(body + 8 + 40 + 26, 24);
	cr_assert_eq(parse(body, n, recs, &ok), 2);
	cr_assert(!ok);
	cr_assert_null(recs[1].payload);
	cr_assert_eq(wire_req_validate(&recs[1], false, 0), WIRE_ST_INVALID);
	ordo_st16(body + 8 + 40 + 26, 16);

	/* First record's payload runs past length: only it is returned. */
	ordo_st16(body + 8 + 26, 0xFFFF);
	cr_assert_eq(parse(body, n, recs, &ok), 1);
	cr_assert(!ok);
	ordo_st16(body + 8 + 26, 5);

	/* Bytes left after count records. */
	ordo_st32(body, 1);
	cr_assert_eq(parse(body, n, recs, &ok), 1);
	cr_assert(!ok);
	/* A sound SUBMIT plus 8 bytes of trailing garbage. */
	ordo_st32(body, 2);
	memset(body + n, 0, 8);
	cr_assert_eq(parse(body, n + 8, recs, &ok), 2);
	cr_assert(!ok);

	/* Count larger than fits. */
	ordo_st32(body, 3);
	cr_assert_eq(parse(body, n, recs, &ok), 2);
	cr_assert(!ok);
	ordo_st32(body, 0xFFFFFFFFu);
	cr_assert_eq(parse(body, n, recs, &ok), 2);
	cr_assert(!ok);
	/* A third record whose fixed part is only half inside. */
	ordo_st32(body, 3);
	cr_assert_eq(parse(body, n + 16, recs, &ok), 2);
	cr_assert(!ok);

	/* Count 0, and a body shorter than its head. */
	ordo_st32(body, 0);
	cr_assert_eq(parse(body, n, recs, &ok), -EBADMSG);
	ordo_st32(body, 2);
	cr_assert_eq(parse(body, 7, recs, &ok), -EBADMSG);
	cr_assert_eq(parse(body, 0, recs, &ok), -EBADMSG);
	/* Head only, count 1: nothing inside. */
	cr_assert_eq(parse(body, 8, recs, &ok), 0);
	cr_assert(!ok);
}

/* -------------------------------------------------- §3.1.1 per record */

Test(submit, validate_every_rule)
{
	uint8_t ca[16] = {0}, tr[32] = {0}, lk[16] = {0}, big[1025] = {0};
	ca[0] = 1;
	lk[0] = 1;
	struct wire_req ok = {CID, 2, 9, WIRE_OP_OPAQUE, 0, NULL};
	cr_assert_eq(wire_req_validate(&ok, false, 0), WIRE_ST_OK);

	struct wire_req r = ok;
	r.client_id = 0;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r = ok;
	r.request_number = 0;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	for (uint16_t op = 4; op < 10; op++) {
		r = ok;
		r.op = op;
		cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	}
	r = ok;
	r.op = 0xFFFF;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* OPAQUE: up to 1024. */
	r = ok;
	r.payload = big;
	r.size = 1024;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_OK);
	r.size = 1025;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* CREATE_ACCOUNT: exactly 16, reserved u32 at 12 zero. */
	r = ok;
	r.op = WIRE_OP_CREATE_ACCOUNT;
	r.payload = ca;
	r.size = 16;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_OK);
	ca[8] = 0xFF; /* flags: judged by the ledger, not here */
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_OK);
	for (int i = 12; i < 16; i++) {
		ca[i] = 1;
		cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID, "byte %d", i);
		ca[i] = 0;
	}
	r.size = 8;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r.size = 24;
	r.payload = tr;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r.size = 0;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* TRANSFER: exactly 32. */
	r = ok;
	r.op = WIRE_OP_TRANSFER;
	r.payload = tr;
	r.size = 32;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_OK);
	r.size = 16;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r.payload = big;
	r.size = 40;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* LOOKUP: exactly 16, reserved u64 at 8 zero. */
	r = ok;
	r.op = WIRE_OP_LOOKUP;
	r.payload = lk;
	r.size = 16;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_OK);
	for (int i = 8; i < 16; i++) {
		lk[i] = 0x80;
		cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID, "byte %d", i);
		lk[i] = 0;
	}
	r.size = 32;
	r.payload = tr;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* Request 1: OPAQUE, size 0, session 0. */
	struct wire_req open = {CID, 1, 0, WIRE_OP_OPAQUE, 0, NULL};
	cr_assert_eq(wire_req_validate(&open, false, 0), WIRE_ST_OK);
	r = open;
	r.session = 5;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r = open;
	r.size = 8;
	r.payload = big;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);
	r = open;
	r.op = WIRE_OP_TRANSFER;
	r.size = 32;
	r.payload = tr;
	cr_assert_eq(wire_req_validate(&r, false, 0), WIRE_ST_INVALID);

	/* AUTH: client_id >> 48 must equal key_id & 0xFFFF. */
	r = ok;
	r.client_id = 0x0007000000000001ull;
	cr_assert_eq(wire_req_validate(&r, true, 7), WIRE_ST_OK);
	cr_assert_eq(wire_req_validate(&r, true, 0x10007), WIRE_ST_OK);
	cr_assert_eq(wire_req_validate(&r, true, 8), WIRE_ST_INVALID);
	cr_assert_eq(wire_req_validate(&r, false, 8), WIRE_ST_OK); /* no AUTH: any client_id */
	r.client_id = 0xFFFF000000000001ull;
	cr_assert_eq(wire_req_validate(&r, true, 0xFFFF), WIRE_ST_OK);
	cr_assert_eq(wire_req_validate(&r, true, 7), WIRE_ST_INVALID);
}

/* ------------------------------------------------------- writer limits */

Test(writer, padding_fit_and_mac_room, .init = setup_keys)
{
	uint8_t buf[32 + 8 + 32 + 16 + 8];
	memset(buf, 0xEE, sizeof buf);
	struct wire_writer w;
	wire_begin(&w, buf, 32 + 8 + 32 + 16, WIRE_SUBMIT, CLUSTER);
	wire_begin_records(&w, 77); /* SUBMIT: reserved stays 0 */
	struct wire_req a = {CID, 2, 9, WIRE_OP_OPAQUE, 1, pay16};
	cr_assert(!wire_add_submit(&w, &a)); /* 40 bytes + MAC do not fit */
	cr_assert_eq(w.len, 40);
	cr_assert_eq(w.count, 0);
	a.size = 0;
	cr_assert(wire_add_submit(&w, &a));
	cr_assert(!wire_add_submit(&w, &a));
	uint32_t n = wire_finish(&w, key7());
	cr_assert_eq(n, 32 + 8 + 32 + 16);
	cr_assert_eq(ordo_ld32(buf + 36), 0);
	cr_assert_eq(buf[n], 0xEE); /* nothing written past the MAC */
	struct wire_rx_ctx ctx = {CLUSTER, &test_ring, false};
	struct wire_hdr h;
	cr_assert_eq(wire_check(&ctx, buf, n, &h), WIRE_DROP_NONE);

	/* wire_put pads with zeros. */
	uint8_t b2[128];
	memset(b2, 0xEE, sizeof b2);
	wire_begin(&w, b2, sizeof b2, 20, CLUSTER);
	cr_assert(wire_put(&w, "abc", 3));
	cr_assert_eq(w.len, 40);
	cr_assert_eq(memcmp(b2 + 32, "abc\0\0\0\0\0", 8), 0);
	cr_assert(!wire_put(&w, pay16, 128 - 40 - 16 + 1));
	cr_assert(wire_put(&w, pay16, 0));
	cr_assert_eq(w.len, 40);
}

Test(decode, ordered_applied_entries_malformed)
{
	uint8_t body[256];
	struct wire_ordered_rec o[4];
	struct wire_applied_rec a[4];
	struct wire_entry_rec e[4];
	struct wire_entries_head eh;
	uint32_t aux;

	/* ORDERED: count 0, count/length mismatch, partial record. */
	memset(body, 0, sizeof body);
	cr_assert_eq(wire_parse_ordered(body, 48, &aux, o, 4), -EBADMSG);
	ordo_st32(body, 2);
	cr_assert_eq(wire_parse_ordered(body, 48, &aux, o, 4), -EBADMSG);
	ordo_st32(body, 1);
	cr_assert_eq(wire_parse_ordered(body, 48, &aux, o, 4), 1);
	cr_assert_eq(wire_parse_ordered(body, 56, &aux, o, 4), -EBADMSG);

	/* APPLIED: size other than 0 or 32, leftover, data past the end. */
	memset(body, 0, sizeof body);
	ordo_st32(body, 1);
	cr_assert_eq(wire_parse_applied(body, 40, &aux, a, 4), 1);
	cr_assert_null(a[0].data);
	cr_assert_eq(wire_parse_applied(body, 48, &aux, a, 4), -EBADMSG);
	ordo_st32(body + 8 + 28, 8);
	cr_assert_eq(wire_parse_applied(body, 48, &aux, a, 4), -EBADMSG);
	ordo_st32(body + 8 + 28, 32);
	cr_assert_eq(wire_parse_applied(body, 64, &aux, a, 4), -EBADMSG);
	cr_assert_eq(wire_parse_applied(body, 72, &aux, a, 4), 1);
	cr_assert_eq(wire_parse_applied(body, 72, &aux, a, 0), -ENOBUFS);
	ordo_st32(body, 0);
	cr_assert_eq(wire_parse_applied(body, 72, &aux, a, 4), -EBADMSG);

	/* ENTRIES: count 0 is valid (flags), size over 1024, leftovers. */
	memset(body, 0, sizeof body);
	ordo_st32(body + 28, WIRE_ENTRIES_CAUGHT_UP);
	cr_assert_eq(wire_parse_entries(body, 48, &eh, e, 4), 0);
	cr_assert_eq(eh.flags, WIRE_ENTRIES_CAUGHT_UP);
	cr_assert_eq(wire_parse_entries(body, 56, &eh, e, 4), -EBADMSG);
	ordo_st32(body + 24, 1);
	cr_assert_eq(wire_parse_entries(body, 88, &eh, e, 4), 1);
	cr_assert_eq(wire_parse_entries(body, 88, &eh, e, 0), -ENOBUFS);
	ordo_st16(body + 48 + 34, 1025);
	cr_assert_eq(wire_parse_entries(body, 88, &eh, e, 4), -EBADMSG);
	ordo_st16(body + 48 + 34, 9);
	cr_assert_eq(wire_parse_entries(body, 88, &eh, e, 4), -EBADMSG);
	cr_assert_eq(wire_parse_entries(body, 104, &eh, e, 4), 1);

	/* Fixed-size bodies: any other length. */
	struct wire_fetch f;
	struct wire_status_msg s;
	struct wire_result_q q;
	uint64_t nonce;
	cr_assert_eq(wire_parse_fetch(body, 32, &f), -EBADMSG);
	cr_assert_eq(wire_parse_status_q(body, 104, &nonce), -EBADMSG);
	cr_assert_eq(wire_parse_status(body, 88, &s), -EBADMSG);
	cr_assert_eq(wire_parse_result_q(body, 80, &q), -EBADMSG);
}

/* -------------------------------------------------- rule 6 addresses */

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

Test(addr, cidr_parse)
{
	struct wire_cidr c;
	cr_assert(wire_cidr_parse("127.0.0.0/8", &c));
	cr_assert_eq(c.net, IP(127, 0, 0, 0));
	cr_assert_eq(c.mask, 0xFF000000u);
	cr_assert(wire_cidr_parse("10.1.2.3", &c));
	cr_assert_eq(c.net, IP(10, 1, 2, 3));
	cr_assert_eq(c.mask, 0xFFFFFFFFu);
	cr_assert(wire_cidr_parse("192.168.77.5/24", &c)); /* host bits masked off */
	cr_assert_eq(c.net, IP(192, 168, 77, 0));
	cr_assert_eq(c.mask, 0xFFFFFF00u);
	cr_assert(wire_cidr_parse("0.0.0.0/0", &c));
	cr_assert_eq(c.net, 0);
	cr_assert_eq(c.mask, 0);
	cr_assert(wire_cidr_parse("255.255.255.255/32", &c));
	cr_assert_eq(c.net, 0xFFFFFFFFu);
	cr_assert(wire_cidr_parse("172.16.0.0/12", &c));
	cr_assert_eq(c.mask, 0xFFF00000u);

	const char *bad[] = {"",	 "1.2.3",      "1.2.3.4.5",  "256.1.1.1",    "1.2.3.4/33",
			     "1.2.3.4/", "1.2.3.4/-1", "a.b.c.d",    "1.2.3.4 ",     " 1.2.3.4",
			     "1..2.3",	 "1.2.3.4/8x", "1.2.3.0004", "1.2.3.4/1000", "-1.2.3.4"};
	for (size_t i = 0; i < ORDO_ARRAY_LEN(bad); i++)
		cr_assert(!wire_cidr_parse(bad[i], &c), "accepted \"%s\"", bad[i]);
	cr_assert(!wire_cidr_parse(NULL, &c));
}

Test(addr, cidr_match)
{
	struct wire_cidr list[3];
	cr_assert(wire_cidr_parse("127.0.0.0/8", &list[0]));
	cr_assert(wire_cidr_parse("10.20.0.0/16", &list[1]));
	cr_assert(wire_cidr_parse("192.0.2.7/32", &list[2]));
	cr_assert(wire_cidr_match(list, 3, IP(127, 1, 2, 3)));
	cr_assert(wire_cidr_match(list, 3, IP(10, 20, 255, 255)));
	cr_assert(!wire_cidr_match(list, 3, IP(10, 21, 0, 0)));
	cr_assert(wire_cidr_match(list, 3, IP(192, 0, 2, 7)));
	cr_assert(!wire_cidr_match(list, 3, IP(192, 0, 2, 8)));
	cr_assert(!wire_cidr_match(list, 0, IP(127, 0, 0, 1)));
	struct wire_cidr all;
	cr_assert(wire_cidr_parse("0.0.0.0/0", &all));
	cr_assert(wire_cidr_match(&all, 1, IP(8, 8, 8, 8)));
}

Test(addr, source_answerable)
{
	cr_assert(wire_source_answerable(IP(10, 0, 0, 1), 5000, false));
	cr_assert(!wire_source_answerable(IP(10, 0, 0, 1), 0, false));
	cr_assert(!wire_source_answerable(IP(10, 0, 0, 1), 0, true));
	cr_assert(!wire_source_answerable(IP(0, 0, 0, 0), 5000, false));
	cr_assert(!wire_source_answerable(IP(0, 255, 255, 255), 5000, true));
	cr_assert(wire_source_answerable(IP(1, 0, 0, 0), 5000, false));
	cr_assert(wire_source_answerable(IP(223, 255, 255, 255), 5000, false));
	cr_assert(!wire_source_answerable(IP(224, 0, 0, 1), 5000, false));
	cr_assert(!wire_source_answerable(IP(239, 255, 255, 255), 5000, false));
	cr_assert(!wire_source_answerable(IP(240, 0, 0, 1), 5000, false));
	cr_assert(!wire_source_answerable(IP(254, 1, 1, 1), 5000, true));
	cr_assert(!wire_source_answerable(IP(255, 255, 255, 255), 5000, true));
	cr_assert(wire_source_answerable(IP(127, 0, 0, 1), 5000, true));
	cr_assert(!wire_source_answerable(IP(127, 0, 0, 1), 5000, false));
	cr_assert(!wire_source_answerable(IP(127, 255, 255, 254), 1, false));
	cr_assert(wire_source_answerable(IP(126, 255, 255, 255), 1, false));
	cr_assert(wire_source_answerable(IP(128, 0, 0, 0), 1, false));
}

/* ------------------------------------------------- §3.7 freshness cache */

#define NOW 1700000000000000000ull
#define SEC 1000000000ull

static struct wire_nonce_cache *new_cache(uint32_t cap)
{
	static struct wire_nonce_cache c;
	void *mem = malloc(wire_nonce_cache_bytes(cap));
	cr_assert_not_null(mem);
	wire_nonce_cache_init(&c, mem, cap);
	return &c;
}

Test(nonce, stale_and_replay)
{
	struct wire_nonce_cache *c = new_cache(1024);
	cr_assert_eq(wire_nonce_check(c, 7, NOW - 10 * SEC - 1, NOW), WIRE_DROP_NONCE_STALE);
	cr_assert_eq(wire_nonce_check(c, 7, NOW + 10 * SEC + 1, NOW), WIRE_DROP_NONCE_STALE);
	cr_assert_eq(wire_nonce_check(c, 7, 0, NOW), WIRE_DROP_NONCE_STALE);
	cr_assert_eq(wire_nonce_check(c, 7, UINT64_MAX, NOW), WIRE_DROP_NONCE_STALE);
	cr_assert_eq(wire_nonce_check(c, 7, NOW - 10 * SEC, NOW), WIRE_DROP_NONE);
	cr_assert_eq(wire_nonce_check(c, 7, NOW + 10 * SEC, NOW), WIRE_DROP_NONE);

	cr_assert_eq(wire_nonce_check(c, 7, NOW, NOW), WIRE_DROP_NONE);
	cr_assert_eq(wire_nonce_check(c, 7, NOW, NOW + 1), WIRE_DROP_NONCE_REPLAY);
	cr_assert_eq(wire_nonce_check(c, 7, NOW, NOW + 10 * SEC), WIRE_DROP_NONCE_REPLAY);
	/* Same nonce, another key: a different pair. */
	cr_assert_eq(wire_nonce_check(c, 8, NOW, NOW + 1), WIRE_DROP_NONE);
	cr_assert_eq(wire_nonce_check(c, 8, NOW, NOW + 2), WIRE_DROP_NONCE_REPLAY);
	/* Past 10 s the nonce itself is stale. */
	cr_assert_eq(wire_nonce_check(c, 7, NOW, NOW + 10 * SEC + 1), WIRE_DROP_NONCE_STALE);
	/* A nonce 5 s ahead stays remembered until 10 s after it. */
	cr_assert_eq(wire_nonce_check(c, 7, NOW + 5 * SEC, NOW), WIRE_DROP_NONE);
	cr_assert_eq(wire_nonce_check(c, 7, NOW + 5 * SEC, NOW + 14 * SEC), WIRE_DROP_NONCE_REPLAY);
	for (uint64_t i = 1; i < 500; i++)
		cr_assert_eq(wire_nonce_check(c, 7, NOW + i, NOW), WIRE_DROP_NONE);
	for (uint64_t i = 1; i < 500; i++)
		cr_assert_eq(wire_nonce_check(c, 7, NOW + i, NOW + SEC), WIRE_DROP_NONCE_REPLAY);
	free(c->slots);
}

Test(nonce, full_then_expiry)
{
	struct wire_nonce_cache *c = new_cache(16);
	for (uint64_t i = 0; i < 16; i++)
		cr_assert_eq(wire_nonce_check(c, 3, NOW + i, NOW), WIRE_DROP_NONE, "i %lu",
			     (unsigned long)i);
	cr_assert_eq(c->used, 16);
	cr_assert_eq(wire_nonce_check(c, 3, NOW + 100, NOW), WIRE_DROP_NONCE_FULL);
	cr_assert_eq(wire_nonce_check(c, 4, NOW, NOW + SEC), WIRE_DROP_NONCE_FULL);
	/* Replays are still recognised when full. */
	cr_assert_eq(wire_nonce_check(c, 3, NOW + 5, NOW + SEC), WIRE_DROP_NONCE_REPLAY);
	/* Entries last until max(nonce, seen) + 10 s; still full at +10 s. */
	cr_assert_eq(wire_nonce_check(c, 3, NOW + 10 * SEC, NOW + 10 * SEC), WIRE_DROP_NONCE_FULL);
	/* Later every slot is reusable. */
	uint64_t later = NOW + 20 * SEC;
	for (uint64_t i = 0; i < 16; i++)
		cr_assert_eq(wire_nonce_check(c, 3, later + i, later), WIRE_DROP_NONE);
	cr_assert_eq(c->used, 16);
	cr_assert_eq(wire_nonce_check(c, 3, later + 3, later), WIRE_DROP_NONCE_REPLAY);
	cr_assert_eq(wire_nonce_check(c, 3, later + 99, later), WIRE_DROP_NONCE_FULL);
	free(c->slots);
}

Test(nonce, big_cache_many_keys)
{
	struct wire_nonce_cache *c = new_cache(ORDO_NONCE_CACHE_DEFAULT);
	/* Half full: no false FULL at this load. */
	for (uint32_t i = 0; i < ORDO_NONCE_CACHE_DEFAULT / 2; i++)
		cr_assert_eq(wire_nonce_check(c, 1 + i % 5, NOW + i * 1000ull, NOW),
			     WIRE_DROP_NONE);
	for (uint32_t i = 0; i < ORDO_NONCE_CACHE_DEFAULT / 2; i += 97)
		cr_assert_eq(wire_nonce_check(c, 1 + i % 5, NOW + i * 1000ull, NOW),
			     WIRE_DROP_NONCE_REPLAY);
	free(c->slots);
}

/* ----------------------------------------------------- internal epochs */

static const uint8_t epoch_pay[1100] = {0x5A};

/* An epoch of three records (sizes 0, 5, 16) in out; returns its bytes. */
static uint32_t build_epoch(uint8_t *out)
{
	struct wire_epoch_rec recs[3] = {
	    {CID, 1, 0, WIRE_OP_OPAQUE, 0, 7, IP(10, 0, 0, 1), 4000, NULL},
	    {CID, 2, 55, WIRE_OP_OPAQUE, 5, 0, IP(10, 0, 0, 2), 4001, epoch_pay},
	    {CID + 1, 9, 56, WIRE_OP_LOOKUP, 16, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFF, epoch_pay},
	};
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	for (int i = 0; i < 3; i++)
		off += wire_epoch_rec_encode(out + off, &recs[i]);
	struct wire_epoch_hdr h = {12, 300, NOW, 3, off, 2};
	wire_epoch_hdr_encode(out, &h);
	return off;
}

Test(epoch, round_trip)
{
	uint8_t buf[512];
	memset(buf, 0xEE, sizeof buf);
	uint32_t n = build_epoch(buf);
	cr_assert_eq(n, 48 + 40 + 48 + 56);
	/* Layout spot checks (docs/PROTOCOL.md). */
	cr_assert_eq(ordo_ld64(buf + 0), 12);
	cr_assert_eq(ordo_ld32(buf + 24), 3);
	cr_assert_eq(ordo_ld32(buf + 28), n);
	cr_assert_eq(ordo_ld16(buf + 32), 2);
	cr_assert_eq(ordo_ld64(buf + 40), 0);
	cr_assert_eq(ordo_ld32(buf + 48 + 28), 7);
	cr_assert_eq(ordo_ld16(buf + 48 + 36), 4000);
	cr_assert_eq(buf[48 + 40 + 40 + 5], 0); /* padding zero */

	uint8_t *e = exact_copy(buf, n);
	struct wire_epoch_hdr h;
	cr_assert_eq(wire_epoch_decode_hdr(e, n, &h), 0);
	cr_assert_eq(h.epoch, 12);
	cr_assert_eq(h.first_position, 300);
	cr_assert_eq(h.timestamp_ns, NOW);
	cr_assert_eq(h.count, 3);
	cr_assert_eq(h.bytes, n);
	cr_assert_eq(h.group, 2);
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec r;
	cr_assert_eq(wire_epoch_next_rec(e, n, &off, &r), 1);
	cr_assert_eq(r.key_id, 7);
	cr_assert_eq(r.reply_ip, IP(10, 0, 0, 1));
	cr_assert_eq(r.reply_port, 4000);
	cr_assert_eq(wire_epoch_next_rec(e, n, &off, &r), 1);
	cr_assert_eq(r.session, 55);
	cr_assert_eq(r.size, 5);
	cr_assert_eq(r.payload[0], 0x5A);
	cr_assert_eq(wire_epoch_next_rec(e, n, &off, &r), 1);
	cr_assert_eq(r.client_id, CID + 1);
	cr_assert_eq(r.request_number, 9);
	cr_assert_eq(r.op, WIRE_OP_LOOKUP);
	cr_assert_eq(r.size, 16);
	cr_assert_eq(r.key_id, 0xFFFFFFFFu);
	cr_assert_eq(r.reply_port, 0xFFFF);
	cr_assert_eq(wire_epoch_next_rec(e, n, &off, &r), 0);
	cr_assert_eq(off, n);
	free(e);

	/* An empty epoch is just its header. */
	struct wire_epoch_hdr z = {13, 303, NOW, 0, 48, 0};
	wire_epoch_hdr_encode(buf, &z);
	cr_assert_eq(wire_epoch_decode_hdr(buf, 48, &h), 0);
	cr_assert_eq(h.count, 0);
	off = 48;
	cr_assert_eq(wire_epoch_next_rec(buf, 48, &off, &r), 0);
	cr_assert_eq(h.from_epoch, 13); /* 0 on the wire: the entry is its epoch alone */

	/* A run (several groups): epochs 10..12 empty, the records at 13. */
	z.from_epoch = 10;
	wire_epoch_hdr_encode(buf, &z);
	cr_assert_eq(ordo_ld64(buf + 40), 10);
	cr_assert_eq(wire_epoch_decode_hdr(buf, 48, &h), 0);
	cr_assert_eq(h.from_epoch, 10);
	cr_assert_eq(h.epoch, 13);
	/* A run that ends before it starts, or epoch 0, is malformed. */
	ordo_st64(buf + 40, 14);
	cr_assert_eq(wire_epoch_decode_hdr(buf, 48, &h), -EBADMSG);
	ordo_st64(buf + 40, 0);
	ordo_st64(buf + 0, 0);
	cr_assert_eq(wire_epoch_decode_hdr(buf, 48, &h), -EBADMSG);
}

Test(epoch, malformed)
{
	uint8_t buf[512];
	struct wire_epoch_hdr h;
	uint32_t n = build_epoch(buf);

	/* Every prefix. */
	for (uint32_t l = 0; l < n; l++) {
		uint8_t *p = exact_copy(buf, l);
		cr_assert_eq(wire_epoch_decode_hdr(p, l, &h), -EBADMSG, "prefix %u", l);
		free(p);
	}
	/* bytes != len. */
	ordo_st32(buf + 28, n + 8);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	ordo_st32(buf + 28, n);
	/* count too high / too low (leftover bytes) / absurd. */
	ordo_st32(buf + 24, 4);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	ordo_st32(buf + 24, 2);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	ordo_st32(buf + 24, 0xFFFFFFFFu);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	ordo_st32(buf + 24, 3);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), 0);
	/* A record running past the end. */
	uint32_t r3 = 48 + 40 + 48;
	ordo_st16(buf + r3 + 26, 24);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	uint32_t off = r3;
	struct wire_epoch_rec r;
	cr_assert_eq(wire_epoch_next_rec(buf, n, &off, &r), -EBADMSG);
	cr_assert_eq(off, r3);
	/* A record whose size changes the walk (16 -> 8: leftover). */
	ordo_st16(buf + r3 + 26, 8);
	cr_assert_eq(wire_epoch_decode_hdr(buf, n, &h), -EBADMSG);
	ordo_st16(buf + r3 + 26, 16);
	/* size over 1024 even where the bytes would be there. */
	uint8_t *big = calloc(1, 48 + 40 + 1032);
	cr_assert_not_null(big);
	struct wire_epoch_hdr bh = {1, 1, NOW, 1, 48 + 40 + 1032, 0};
	wire_epoch_hdr_encode(big, &bh);
	ordo_st64(big + 48, 1);	    /* client_id */
	ordo_st64(big + 48 + 8, 2); /* request_number */
	ordo_st16(big + 48 + 26, 1025);
	cr_assert_eq(wire_epoch_decode_hdr(big, 48 + 40 + 1032, &h), -EBADMSG);
	ordo_st16(big + 48 + 26, 1024);
	cr_assert_eq(wire_epoch_decode_hdr(big, 48 + 40 + 1032, &h), -EBADMSG); /* leftover 8 */
	ordo_st32(big + 28, 48 + 40 + 1024);
	cr_assert_eq(wire_epoch_decode_hdr(big, 48 + 40 + 1024, &h), 0);
	free(big);
	/* Iterator offsets outside the records. */
	off = 8;
	cr_assert_eq(wire_epoch_next_rec(buf, n, &off, &r), -EBADMSG);
	off = n + 8;
	cr_assert_eq(wire_epoch_next_rec(buf, n, &off, &r), -EBADMSG);
	/* Longer than any epoch may be. */
	uint32_t huge = ORDO_EPOCH_BYTES_MAX + 8;
	uint8_t *hb = calloc(1, huge);
	cr_assert_not_null(hb);
	struct wire_epoch_hdr hh = {1, 1, NOW, 0, huge, 0};
	wire_epoch_hdr_encode(hb, &hh);
	cr_assert_eq(wire_epoch_decode_hdr(hb, huge, &h), -EBADMSG);
	free(hb);
}

Test(epoch, data_nack_heartbeat, .init = setup_keys)
{
	uint8_t ep[512];
	uint32_t n = build_epoch(ep);
	uint8_t buf[512];
	struct wire_writer w;

	/* A fragment: bytes [100, 100 + 45) of the epoch. */
	wire_begin(&w, buf, sizeof buf, WIRE_EPOCH_DATA, CLUSTER);
	struct wire_epoch_data d = {12, 11, n, 100, 45, 2, ep + 100};
	cr_assert(wire_put_epoch_data(&w, &d));
	uint32_t len = wire_finish(&w, key7());
	cr_assert_eq(len, 32 + 32 + 48 + 16);
	struct wire_rx_ctx ctx = {CLUSTER, &test_ring, true};
	struct wire_hdr h;
	const uint8_t *body = check_ok(&ctx, buf, len, &h);
	cr_assert_eq(h.type, WIRE_EPOCH_DATA);
	cr_assert(wire_type_accepted(WIRE_PORT_INTERNAL, h.type));
	struct wire_epoch_data g;
	cr_assert_eq(wire_parse_epoch_data(body, h.length - 32, &g), 0);
	cr_assert_eq(g.epoch, 12);
	cr_assert_eq(g.committed_epoch, 11);
	cr_assert_eq(g.total_bytes, n);
	cr_assert_eq(g.offset, 100);
	cr_assert_eq(g.data_bytes, 45);
	cr_assert_eq(g.group, 2);
	cr_assert_eq(memcmp(g.data, ep + 100, 45), 0);
	cr_assert_eq(ordo_ld16(body + 30), 0);
	for (uint32_t l = 0; l < h.length - 32; l++) {
		uint8_t *p = exact_copy(body, l);
		cr_assert_eq(wire_parse_epoch_data(p, l, &g), -EBADMSG, "prefix %u", l);
		free(p);
	}
	/* Does not fit: false. */
	struct wire_writer small;
	uint8_t sb[32 + 32 + 40 + 16];
	wire_begin(&small, sb, sizeof sb, WIRE_EPOCH_DATA, CLUSTER);
	cr_assert(!wire_put_epoch_data(&small, &d));
	d.data_bytes = 40;
	cr_assert(wire_put_epoch_data(&small, &d));

	/* Malformed heads. */
	uint8_t b[32 + 56];
	memcpy(b, body, sizeof b);
	ordo_st32(b + 20, n - 44); /* offset + data_bytes > total */
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 48, &g), -EBADMSG);
	ordo_st32(b + 20, n - 45);
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 48, &g), 0);
	ordo_st32(b + 20, 0xFFFFFFF0u); /* wraps in 32 bits */
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 48, &g), -EBADMSG);
	ordo_st32(b + 20, 100);
	ordo_st32(b + 16, ORDO_EPOCH_BYTES_MAX + 8);
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 48, &g), -EBADMSG);
	ordo_st32(b + 16, 40); /* under an epoch header */
	ordo_st32(b + 20, 0);
	ordo_st32(b + 24, 8);
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 8, &g), -EBADMSG);
	ordo_st32(b + 16, n);
	ordo_st32(b + 24, 45);
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 56, &g), -EBADMSG); /* body != 32 + pad8 */
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 40, &g), -EBADMSG);
	ordo_st32(b + 24, 0xFFFFFFFFu);
	cr_assert_eq(wire_parse_epoch_data(b, 32 + 48, &g), -EBADMSG);

	/* NACK. */
	wire_begin(&w, buf, sizeof buf, WIRE_EPOCH_NACK, CLUSTER);
	struct wire_epoch_nack nk = {1000, 17, 3};
	wire_put_epoch_nack(&w, &nk);
	len = wire_finish(&w, NULL);
	cr_assert_eq(len, 48);
	struct wire_epoch_nack gn;
	cr_assert_eq(wire_parse_epoch_nack(buf + 32, 16, &gn), 0);
	cr_assert_eq(gn.from_epoch, 1000);
	cr_assert_eq(gn.count, 17);
	cr_assert_eq(gn.group, 3);
	cr_assert_eq(wire_parse_epoch_nack(buf + 32, 8, &gn), -EBADMSG);
	cr_assert_eq(wire_parse_epoch_nack(buf + 32, 24, &gn), -EBADMSG);

	/* HEARTBEAT. */
	wire_begin(&w, buf, sizeof buf, WIRE_EPOCH_HEARTBEAT, CLUSTER);
	struct wire_epoch_heartbeat hb = {777, 5, 700};
	wire_put_epoch_heartbeat(&w, &hb);
	len = wire_finish(&w, NULL);
	cr_assert_eq(len, 56);
	struct wire_epoch_heartbeat gh;
	cr_assert_eq(wire_parse_epoch_heartbeat(buf + 32, 24, &gh), 0);
	cr_assert_eq(gh.committed_epoch, 777);
	cr_assert_eq(gh.group, 5);
	cr_assert_eq(gh.retained_from, 700);
	for (int i = 10; i < 16; i++)
		cr_assert_eq(buf[32 + i], 0);
	/* The 16-byte form (no retained_from) is read as retained_from 0. */
	cr_assert_eq(wire_parse_epoch_heartbeat(buf + 32, 16, &gh), 0);
	cr_assert_eq(gh.committed_epoch, 777);
	cr_assert_eq(gh.retained_from, 0);
	cr_assert_eq(wire_parse_epoch_heartbeat(buf + 32, 0, &gh), -EBADMSG);
	cr_assert_eq(wire_parse_epoch_heartbeat(buf + 32, 20, &gh), -EBADMSG);
	cr_assert_eq(wire_parse_epoch_heartbeat(buf + 32, 32, &gh), -EBADMSG);
}

/* A record must be a valid request (op known, size fitting the op, reserved
 * payload fields zero, request 1 an empty OPAQUE): an epoch holding one that
 * is not is rejected, so the ledger never applies it. */
Test(epoch, records_must_be_valid_requests)
{
	uint8_t buf[48 + 40 + 32];
	struct wire_epoch_hdr hdr = {
	    .epoch = 1, .first_position = 1, .count = 1, .bytes = sizeof buf};
	uint8_t pay[32] = {0};
	struct wire_epoch_rec r = {.client_id = 9,
				   .request_number = 5,
				   .session = 1,
				   .op = WIRE_OP_TRANSFER,
				   .size = 32,
				   .payload = pay};
	struct wire_epoch_hdr h;
	wire_epoch_hdr_encode(buf, &hdr);
	wire_epoch_rec_encode(buf + 48, &r);
	cr_assert_eq(wire_epoch_decode_hdr(buf, sizeof buf, &h), 0);
	ordo_st16(buf + 48 + 24, 7); /* unknown op */
	cr_assert_eq(wire_epoch_decode_hdr(buf, sizeof buf, &h), -EBADMSG);
	ordo_st16(buf + 48 + 24, WIRE_OP_LOOKUP); /* LOOKUP is 16 bytes, not 32 */
	cr_assert_eq(wire_epoch_decode_hdr(buf, sizeof buf, &h), -EBADMSG);
	ordo_st16(buf + 48 + 24, WIRE_OP_TRANSFER);
	ordo_st64(buf + 48, 0); /* client_id 0 */
	cr_assert_eq(wire_epoch_decode_hdr(buf, sizeof buf, &h), -EBADMSG);
	ordo_st64(buf + 48, 9);
	ordo_st64(buf + 48 + 8, 1); /* request 1 that is not an empty OPAQUE */
	cr_assert_eq(wire_epoch_decode_hdr(buf, sizeof buf, &h), -EBADMSG);
}
