/*
 * Unit tests of the replica digest (PROTOCOL.md §5, ledger_digest_step):
 * the library is the right XXH3 (published vectors), and each step equals
 * XXH3_128bits over the previous 16 bytes followed by the ENTRIES record,
 * built here byte by byte from §3.4 and laid out low64 LE then high64 LE
 * with shifts, independently of common/le.h and wire.c.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <xxhash.h>

#include "replicas/ledger.h"

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* §3.4 record: position, epoch, client_id, request_number, op, size,
 * result, payload zero padded to 8. Returns its length. */
static uint32_t rec_by_hand(uint8_t *out, uint64_t position, uint64_t epoch, uint64_t client_id,
			    uint64_t request_number, uint16_t op, uint16_t size, uint32_t result,
			    const uint8_t *payload)
{
	uint32_t len = 40 + ((size + 7u) & ~7u);
	memset(out, 0xCC, len); /* anything not written below would show */
	put_le(out + 0, position, 8);
	put_le(out + 8, epoch, 8);
	put_le(out + 16, client_id, 8);
	put_le(out + 24, request_number, 8);
	put_le(out + 32, op, 2);
	put_le(out + 34, size, 2);
	put_le(out + 36, result, 4);
	memcpy(out + 40, payload, size);
	memset(out + 40 + size, 0, len - 40 - size);
	return len;
}

static void expected_step(uint8_t digest[16], const uint8_t *rec, uint32_t len)
{
	uint8_t buf[16 + 1064];
	memcpy(buf, digest, 16);
	memcpy(buf + 16, rec, len);
	XXH128_hash_t h = XXH3_128bits(buf, 16 + len);
	put_le(digest, h.low64, 8);
	put_le(digest + 8, h.high64, 8);
}

Test(digest, library_is_xxh3_128)
{
	/* Published XXH3_128bits vectors (xxHash sanity tests, seed 0):
	 * empty input 99AA06D3014798D86001C324468D497F (canonical, high first). */
	XXH128_hash_t h = XXH3_128bits("", 0);
	cr_assert_eq(h.low64, 0x6001C324468D497Full);
	cr_assert_eq(h.high64, 0x99AA06D3014798D8ull);
	cr_assert_geq(XXH_versionNumber(), 800u, "§5 needs xxHash 0.8 or later");
}

Test(digest, one_step_transfer_record)
{
	uint8_t payload[32];
	put_le(payload, 0xABCDEF, 8);
	put_le(payload + 8, 1, 8);
	put_le(payload + 16, 2, 8);
	put_le(payload + 24, 500, 8);
	uint8_t rec[1064];
	uint32_t len = rec_by_hand(rec, 7, 3, 0x1122334455667788ull, 9, 2, 32, 0, payload);
	cr_assert_eq(len, 72);
	cr_assert_eq(wire_entry_bytes(32), 72);

	uint8_t want[16] = {0}, got[16] = {0};
	expected_step(want, rec, len);
	ledger_digest_step(got, rec, len);
	cr_assert(memcmp(got, want, 16) == 0);

	/* From zero, the input is 16 zero bytes then the record. */
	uint8_t flat[16 + 72] = {0};
	memcpy(flat + 16, rec, 72);
	XXH128_hash_t h = XXH3_128bits(flat, sizeof flat);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(got[i], (uint8_t)(h.low64 >> (8 * i)), "low byte %d", i);
		cr_assert_eq(got[8 + i], (uint8_t)(h.high64 >> (8 * i)), "high byte %d", i);
	}
}

Test(digest, chain_of_three_with_padding)
{
	uint8_t opaque[1024];
	for (int i = 0; i < 1024; i++)
		opaque[i] = (uint8_t)(i * 7 + 1);
	uint8_t acct[16] = {0};
	put_le(acct, 42, 8);
	put_le(acct + 8, 1, 4);

	uint8_t r1[1064], r2[1064], r3[1064];
	uint32_t l1 = rec_by_hand(r1, 1, 1, 5, 1, 0, 0, 0, NULL);   /* session open */
	uint32_t l2 = rec_by_hand(r2, 2, 1, 5, 2, 0, 5, 0, opaque); /* 5 bytes, 3 padding */
	uint32_t l3 = rec_by_hand(r3, 3, 2, 5, 3, 1, 16, 0, acct);  /* CREATE_ACCOUNT */
	cr_assert_eq(l1, 40);
	cr_assert_eq(l2, 48);
	cr_assert_eq(l3, 56);
	cr_assert_eq(r2[45], 0, "padding is zero");

	uint8_t want[16] = {0}, got[16] = {0};
	const uint8_t *recs[3] = {r1, r2, r3};
	const uint32_t lens[3] = {l1, l2, l3};
	uint8_t seen[3][16];
	for (int i = 0; i < 3; i++) {
		expected_step(want, recs[i], lens[i]);
		ledger_digest_step(got, recs[i], lens[i]);
		cr_assert(memcmp(got, want, 16) == 0, "step %d", i + 1);
		memcpy(seen[i], got, 16);
	}
	/* Each step changes the digest, and order matters. */
	cr_assert(memcmp(seen[0], seen[1], 16) != 0 && memcmp(seen[1], seen[2], 16) != 0);
	uint8_t other[16] = {0};
	ledger_digest_step(other, r2, l2);
	ledger_digest_step(other, r1, l1);
	ledger_digest_step(other, r3, l3);
	cr_assert(memcmp(other, seen[2], 16) != 0);

	/* Largest record: 1024-byte OPAQUE, 1064 bytes. */
	uint8_t big[1064];
	uint32_t lb = rec_by_hand(big, 4, 2, 6, 1, 0, 1024, 0, opaque);
	cr_assert_eq(lb, 1064);
	expected_step(want, big, lb);
	ledger_digest_step(got, big, lb);
	cr_assert(memcmp(got, want, 16) == 0);
}

Test(digest, golden_bytes_pinned)
{
	/* Pinned output of the first step of chain_of_three (session open of
	 * client 5 at position 1, epoch 1), so a change of library, layout or
	 * byte order on any machine shows here. */
	uint8_t rec[40];
	rec_by_hand(rec, 1, 1, 5, 1, 0, 0, 0, NULL);
	uint8_t d[16] = {0};
	ledger_digest_step(d, rec, 40);
	uint8_t buf[56] = {0};
	memcpy(buf + 16, rec, 40);
	XXH128_hash_t h = XXH3_128bits(buf, 56);
	cr_log_info("golden: low64 %016llx high64 %016llx", (unsigned long long)h.low64,
		    (unsigned long long)h.high64);
	static const uint8_t pinned[16] = {
	    0xf5, 0x42, 0xdb, 0xce, 0x47, 0xa3, 0xfb, 0xa5, /* low64 a5fba347cedb42f5 */
	    0x74, 0xf6, 0x0e, 0xb6, 0xb7, 0x70, 0x4c, 0x39, /* high64 394c70b7b60ef674 */
	};
	cr_assert(memcmp(d, pinned, 16) == 0);
}
