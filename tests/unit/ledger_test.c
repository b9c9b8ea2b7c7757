/*
 * Unit tests of the ledger state machine (replicas/ledger.c, PROTOCOL.md §4):
 * every result code, the order of the checks (inputs where two checks apply,
 * the earlier must win), u64 edges, capacity, rejected requests changing
 * nothing, LOOKUP bytes, and a randomized differential test against a
 * reference model written with unsigned __int128 arithmetic straight from §4.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "common/prng.h"
#include "replicas/ledger.h"

#define MAX64 UINT64_MAX
#define F_DNE WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS
#define F_CNE WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS

static struct ledger L;

static void setup_caps(uint64_t accounts_max, uint64_t transfers_max)
{
	struct ledger_cfg cfg = {.accounts_max = accounts_max, .transfers_max = transfers_max};
	cr_assert_eq(ledger_init(&L, &cfg), 0);
}

static void setup_default(void)
{
	setup_caps(64, 64);
}

static void teardown(void)
{
	ledger_free(&L);
}

static enum wire_result create(uint64_t id, uint32_t flags)
{
	uint8_t p[16];
	ordo_st64(p, id);
	ordo_st32(p + 8, flags);
	ordo_st32(p + 12, 0);
	uint8_t data[32];
	return ledger_apply(&L, WIRE_OP_CREATE_ACCOUNT, p, 16, data);
}

static enum wire_result xfer(uint64_t id, uint64_t debit, uint64_t credit, uint64_t amount)
{
	/* Unaligned on purpose: payloads are read with unaligned loads. */
	uint8_t buf[33];
	uint8_t *p = buf + 1;
	ordo_st64(p, id);
	ordo_st64(p + 8, debit);
	ordo_st64(p + 16, credit);
	ordo_st64(p + 24, amount);
	uint8_t data[32];
	return ledger_apply(&L, WIRE_OP_TRANSFER, p, 32, data);
}

static enum wire_result lookup(uint64_t id, uint8_t data[32])
{
	uint8_t p[16] = {0};
	ordo_st64(p, id);
	return ledger_apply(&L, WIRE_OP_LOOKUP, p, 16, data);
}

/* A full copy of the ledger's state: both tables and the counts. */
struct snap {
	struct ledger_account *accounts;
	struct ledger_transfer *transfers;
	uint64_t accounts_count, transfers_count;
};

static struct snap snap_take(void)
{
	struct snap s;
	size_t ab = L.accounts_cap * sizeof *L.accounts, tb = L.transfers_cap * sizeof *L.transfers;
	s.accounts = malloc(ab);
	s.transfers = malloc(tb);
	memcpy(s.accounts, L.accounts, ab);
	memcpy(s.transfers, L.transfers, tb);
	s.accounts_count = L.accounts_count;
	s.transfers_count = L.transfers_count;
	return s;
}

static void snap_check_same(struct snap *s, const char *what)
{
	cr_assert_eq(L.accounts_count, s->accounts_count, "%s changed accounts_count", what);
	cr_assert_eq(L.transfers_count, s->transfers_count, "%s changed transfers_count", what);
	cr_assert(memcmp(s->accounts, L.accounts, L.accounts_cap * sizeof *L.accounts) == 0,
		  "%s changed the accounts", what);
	cr_assert(memcmp(s->transfers, L.transfers, L.transfers_cap * sizeof *L.transfers) == 0,
		  "%s changed the transfers", what);
	free(s->accounts);
	free(s->transfers);
}

static void expect_account(uint64_t id, uint64_t debits, uint64_t credits, uint32_t flags)
{
	const struct ledger_account *a = ledger_account_find(&L, id);
	cr_assert_not_null(a, "account %lu missing", (unsigned long)id);
	cr_assert_eq(a->debits_posted, debits, "account %lu debits", (unsigned long)id);
	cr_assert_eq(a->credits_posted, credits, "account %lu credits", (unsigned long)id);
	cr_assert_eq(a->flags, flags);
}

/* ------------------------------------------------------------ CREATE */

TestSuite(ledger_create, .init = setup_default, .fini = teardown);

Test(ledger_create, id_invalid_zero_and_max)
{
	cr_assert_eq(create(0, 0), WIRE_R_ID_INVALID);
	cr_assert_eq(create(MAX64, 0), WIRE_R_ID_INVALID);
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(MAX64 - 1, 0), WIRE_R_OK);
	cr_assert_eq(L.accounts_count, 2);
}

Test(ledger_create, flags_invalid)
{
	cr_assert_eq(create(1, 3), WIRE_R_FLAGS_INVALID);
	cr_assert_eq(create(1, 4), WIRE_R_FLAGS_INVALID);
	cr_assert_eq(create(1, 0x80000000u), WIRE_R_FLAGS_INVALID);
	cr_assert_eq(create(1, 0x5), WIRE_R_FLAGS_INVALID);
	cr_assert_eq(L.accounts_count, 0);
	cr_assert_eq(create(1, F_DNE), WIRE_R_OK);
	cr_assert_eq(create(2, F_CNE), WIRE_R_OK);
	cr_assert_eq(create(3, 0), WIRE_R_OK);
	expect_account(1, 0, 0, F_DNE);
	expect_account(2, 0, 0, F_CNE);
	expect_account(3, 0, 0, 0);
}

Test(ledger_create, exists_and_different_fields)
{
	cr_assert_eq(create(7, F_DNE), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(create(7, F_DNE), WIRE_R_EXISTS);
	cr_assert_eq(create(7, 0), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(create(7, F_CNE), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	snap_check_same(&s, "EXISTS");
}

Test(ledger_create, order_id_before_flags_before_exists)
{
	cr_assert_eq(create(7, 0), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(create(0, 3), WIRE_R_ID_INVALID);	   /* id and flags both bad */
	cr_assert_eq(create(MAX64, 8), WIRE_R_ID_INVALID); /* id and flags both bad */
	cr_assert_eq(create(7, 3), WIRE_R_FLAGS_INVALID);  /* exists, flags bad */
	cr_assert_eq(create(7, 16), WIRE_R_FLAGS_INVALID);
	snap_check_same(&s, "rejected create");
}

Test(ledger_create, capacity_three_accounts)
{
	teardown();
	setup_caps(3, 2);
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, F_DNE), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(create(4, 0), WIRE_R_LEDGER_FULL);
	/* Earlier checks still win over LEDGER_FULL. */
	cr_assert_eq(create(0, 0), WIRE_R_ID_INVALID);
	cr_assert_eq(create(5, 3), WIRE_R_FLAGS_INVALID);
	cr_assert_eq(create(3, F_DNE), WIRE_R_EXISTS);
	cr_assert_eq(create(3, 0), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(create(4, 0), WIRE_R_LEDGER_FULL);
	snap_check_same(&s, "rejected create when full");
	cr_assert_null(ledger_account_find(&L, 4));
}

Test(ledger_create, zero_capacity)
{
	teardown();
	setup_caps(0, 0);
	cr_assert_eq(create(1, 0), WIRE_R_LEDGER_FULL);
	cr_assert_eq(create(0, 0), WIRE_R_ID_INVALID);
	cr_assert_eq(xfer(1, 1, 2, 1), WIRE_R_DEBIT_ACCOUNT_NOT_FOUND);
}

/* ------------------------------------------------------------ TRANSFER */

TestSuite(ledger_transfer, .init = setup_default, .fini = teardown);

Test(ledger_transfer, ok_moves_amount)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 30), WIRE_R_OK);
	cr_assert_eq(xfer(101, 2, 1, 5), WIRE_R_OK);
	expect_account(1, 30, 5, 0);
	expect_account(2, 5, 30, 0);
	cr_assert_eq(L.transfers_count, 2);
}

Test(ledger_transfer, id_invalid_any_of_three)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	struct snap s = snap_take();
	const uint64_t bad[2] = {0, MAX64};
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(xfer(bad[i], 1, 2, 1), WIRE_R_ID_INVALID);
		cr_assert_eq(xfer(100, bad[i], 2, 1), WIRE_R_ID_INVALID);
		cr_assert_eq(xfer(100, 1, bad[i], 1), WIRE_R_ID_INVALID);
		/* ID_INVALID before SAME_ACCOUNT and AMOUNT_ZERO. */
		cr_assert_eq(xfer(100, bad[i], bad[i], 0), WIRE_R_ID_INVALID);
	}
	snap_check_same(&s, "ID_INVALID");
}

Test(ledger_transfer, id_invalid_before_exists)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 1), WIRE_R_OK);
	/* Transfer id 100 exists; an invalid account id still wins. */
	cr_assert_eq(xfer(100, 0, 2, 1), WIRE_R_ID_INVALID);
	cr_assert_eq(xfer(100, 1, MAX64, 1), WIRE_R_ID_INVALID);
}

Test(ledger_transfer, exists_and_different_fields)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, 0), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 30), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(100, 1, 2, 30), WIRE_R_EXISTS);
	cr_assert_eq(xfer(100, 1, 2, 31), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(xfer(100, 1, 3, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(xfer(100, 3, 2, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(xfer(100, 2, 1, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	/* EXISTS before every later check. */
	cr_assert_eq(xfer(100, 1, 1, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS); /* same account */
	cr_assert_eq(xfer(100, 1, 2, 0), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);	/* amount zero */
	cr_assert_eq(xfer(100, 9, 2, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS); /* debit missing */
	cr_assert_eq(xfer(100, 1, 9, 30), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS); /* credit missing */
	cr_assert_eq(xfer(100, 1, 2, MAX64), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS); /* overflow */
	snap_check_same(&s, "EXISTS");
}

Test(ledger_transfer, exists_even_when_it_would_now_fail)
{
	cr_assert_eq(create(1, F_DNE), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(200, 2, 1, 10), WIRE_R_OK); /* 1 gets 10 credits */
	cr_assert_eq(xfer(201, 1, 2, 10), WIRE_R_OK); /* 1 spends them */
	/* Replaying 201 exactly: EXISTS, although it would now exceed credits. */
	cr_assert_eq(xfer(201, 1, 2, 10), WIRE_R_EXISTS);
	expect_account(1, 10, 10, F_DNE);
}

Test(ledger_transfer, rejected_transfer_holds_no_id)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 0), WIRE_R_AMOUNT_ZERO);
	cr_assert_eq(xfer(100, 1, 3, 5), WIRE_R_CREDIT_ACCOUNT_NOT_FOUND);
	/* Only transfers applied OK hold an id: 100 is free. */
	cr_assert_eq(xfer(100, 1, 2, 5), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 5), WIRE_R_EXISTS);
}

Test(ledger_transfer, same_account_before_amount_zero_and_not_found)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(100, 1, 1, 5), WIRE_R_SAME_ACCOUNT);
	cr_assert_eq(xfer(100, 1, 1, 0), WIRE_R_SAME_ACCOUNT);
	cr_assert_eq(xfer(100, 9, 9, 5), WIRE_R_SAME_ACCOUNT); /* account missing too */
	snap_check_same(&s, "SAME_ACCOUNT");
}

Test(ledger_transfer, amount_zero_before_not_found)
{
	cr_assert_eq(xfer(100, 8, 9, 0), WIRE_R_AMOUNT_ZERO);
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 0), WIRE_R_AMOUNT_ZERO);
}

Test(ledger_transfer, debit_before_credit_not_found)
{
	cr_assert_eq(create(1, F_DNE), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(100, 8, 9, 5), WIRE_R_DEBIT_ACCOUNT_NOT_FOUND);
	cr_assert_eq(xfer(100, 8, 1, 5), WIRE_R_DEBIT_ACCOUNT_NOT_FOUND);
	/* Credit missing and the debit would exceed its credits: NOT_FOUND first. */
	cr_assert_eq(xfer(100, 1, 9, 5), WIRE_R_CREDIT_ACCOUNT_NOT_FOUND);
	snap_check_same(&s, "NOT_FOUND");
}

Test(ledger_transfer, exceeds_credits_edge)
{
	cr_assert_eq(create(1, F_DNE), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(10, 2, 1, 100), WIRE_R_OK); /* 1: credits 100 */
	cr_assert_eq(xfer(11, 1, 2, 40), WIRE_R_OK);  /* 1: debits 40 */
	struct snap s = snap_take();
	cr_assert_eq(xfer(12, 1, 2, 61), WIRE_R_EXCEEDS_CREDITS);
	cr_assert_eq(xfer(12, 1, 2, MAX64), WIRE_R_EXCEEDS_CREDITS);
	snap_check_same(&s, "EXCEEDS_CREDITS");
	cr_assert_eq(xfer(12, 1, 2, 60), WIRE_R_OK); /* debits == credits is allowed */
	expect_account(1, 100, 100, F_DNE);
	cr_assert_eq(xfer(13, 1, 2, 1), WIRE_R_EXCEEDS_CREDITS);
	/* The flag binds the debit side only: crediting 1 is fine. */
	cr_assert_eq(xfer(14, 2, 1, 1), WIRE_R_OK);
}

Test(ledger_transfer, exceeds_debits_edge)
{
	cr_assert_eq(create(1, F_CNE), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(xfer(10, 1, 2, 100), WIRE_R_OK); /* 1: debits 100 */
	cr_assert_eq(xfer(11, 2, 1, 40), WIRE_R_OK);  /* 1: credits 40 */
	struct snap s = snap_take();
	cr_assert_eq(xfer(12, 2, 1, 61), WIRE_R_EXCEEDS_DEBITS);
	cr_assert_eq(xfer(12, 2, 1, MAX64), WIRE_R_EXCEEDS_DEBITS);
	snap_check_same(&s, "EXCEEDS_DEBITS");
	cr_assert_eq(xfer(12, 2, 1, 60), WIRE_R_OK);
	expect_account(1, 100, 100, F_CNE);
	cr_assert_eq(xfer(13, 2, 1, 1), WIRE_R_EXCEEDS_DEBITS);
	cr_assert_eq(xfer(14, 1, 2, 1), WIRE_R_OK);
}

Test(ledger_transfer, exceeds_credits_before_exceeds_debits)
{
	cr_assert_eq(create(1, F_DNE), WIRE_R_OK);
	cr_assert_eq(create(2, F_CNE), WIRE_R_OK);
	/* Both: 1 has no credits, 2 has no debits. */
	cr_assert_eq(xfer(100, 1, 2, 1), WIRE_R_EXCEEDS_CREDITS);
}

Test(ledger_transfer, exceeds_before_overflow)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, F_CNE), WIRE_R_OK);
	cr_assert_eq(create(4, F_DNE), WIRE_R_OK);
	cr_assert_eq(xfer(10, 1, 2, MAX64 - 5), WIRE_R_OK); /* 1.debits, 2.credits = MAX-5 */
	struct snap s = snap_take();
	/* Debit 1 would overflow and credit 3 would exceed its debits (0). */
	cr_assert_eq(xfer(11, 1, 3, 6), WIRE_R_EXCEEDS_DEBITS);
	/* Credit 2 would overflow and debit 4 would exceed its credits (0). */
	cr_assert_eq(xfer(11, 4, 2, 6), WIRE_R_EXCEEDS_CREDITS);
	snap_check_same(&s, "EXCEEDS before OVERFLOW");
}

Test(ledger_transfer, overflow_debit_side_edge)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, 0), WIRE_R_OK);
	cr_assert_eq(xfer(10, 1, 2, MAX64 - 5), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(11, 1, 3, 6), WIRE_R_OVERFLOW);
	cr_assert_eq(xfer(11, 1, 3, MAX64), WIRE_R_OVERFLOW);
	snap_check_same(&s, "OVERFLOW");
	cr_assert_eq(xfer(11, 1, 3, 5), WIRE_R_OK); /* exactly 2^64-1 */
	expect_account(1, MAX64, 0, 0);
	expect_account(3, 0, 5, 0);
	cr_assert_eq(xfer(12, 1, 3, 1), WIRE_R_OVERFLOW);
}

Test(ledger_transfer, overflow_credit_side_edge)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, 0), WIRE_R_OK);
	cr_assert_eq(xfer(10, 1, 2, MAX64 - 5), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(11, 3, 2, 6), WIRE_R_OVERFLOW);
	snap_check_same(&s, "OVERFLOW");
	cr_assert_eq(xfer(11, 3, 2, 5), WIRE_R_OK);
	expect_account(2, 0, MAX64, 0);
	cr_assert_eq(xfer(12, 3, 2, 1), WIRE_R_OVERFLOW);
}

Test(ledger_transfer, overflow_with_flags_at_top)
{
	/* Flag paths with balances near 2^64-1: the subtraction stays exact. */
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, F_DNE), WIRE_R_OK);
	cr_assert_eq(create(3, 0), WIRE_R_OK);
	cr_assert_eq(xfer(10, 1, 2, MAX64), WIRE_R_OK); /* 2: credits MAX */
	cr_assert_eq(xfer(11, 2, 3, MAX64 - 1), WIRE_R_OK);
	cr_assert_eq(xfer(12, 2, 3, 2), WIRE_R_EXCEEDS_CREDITS); /* headroom is 1 */
	cr_assert_eq(xfer(12, 2, 3, 1), WIRE_R_OK);		 /* both sides reach 2^64-1 */
	expect_account(2, MAX64, MAX64, F_DNE);
	expect_account(3, 0, MAX64, 0);
	cr_assert_eq(create(4, 0), WIRE_R_OK);
	cr_assert_eq(xfer(13, 2, 4, 1), WIRE_R_EXCEEDS_CREDITS); /* before OVERFLOW */
	cr_assert_eq(xfer(13, 4, 3, 1), WIRE_R_OVERFLOW);
}

Test(ledger_transfer, capacity_two_transfers)
{
	teardown();
	setup_caps(3, 2);
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	cr_assert_eq(create(2, 0), WIRE_R_OK);
	cr_assert_eq(create(3, F_DNE), WIRE_R_OK);
	cr_assert_eq(xfer(100, 1, 2, 10), WIRE_R_OK);
	cr_assert_eq(xfer(101, 2, 1, 3), WIRE_R_OK);
	struct snap s = snap_take();
	cr_assert_eq(xfer(102, 1, 2, 1), WIRE_R_LEDGER_FULL);
	/* Every earlier check wins over LEDGER_FULL. */
	cr_assert_eq(xfer(100, 1, 2, 10), WIRE_R_EXISTS);
	cr_assert_eq(xfer(101, 2, 1, 4), WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS);
	cr_assert_eq(xfer(0, 1, 2, 1), WIRE_R_ID_INVALID);
	cr_assert_eq(xfer(102, 1, 1, 1), WIRE_R_SAME_ACCOUNT);
	cr_assert_eq(xfer(102, 1, 2, 0), WIRE_R_AMOUNT_ZERO);
	cr_assert_eq(xfer(102, 9, 2, 1), WIRE_R_DEBIT_ACCOUNT_NOT_FOUND);
	cr_assert_eq(xfer(102, 1, 9, 1), WIRE_R_CREDIT_ACCOUNT_NOT_FOUND);
	cr_assert_eq(xfer(102, 3, 2, 1), WIRE_R_EXCEEDS_CREDITS);
	cr_assert_eq(xfer(102, 1, 2, MAX64), WIRE_R_OVERFLOW);
	cr_assert_eq(xfer(102, 1, 2, 1), WIRE_R_LEDGER_FULL);
	snap_check_same(&s, "rejected transfer when full");
}

/* ------------------------------------------------------------ LOOKUP, OPAQUE */

TestSuite(ledger_lookup, .init = setup_default, .fini = teardown);

Test(ledger_lookup, data_bytes)
{
	cr_assert_eq(create(0x0102030405060708ull, F_CNE), WIRE_R_OK);
	cr_assert_eq(create(5, 0), WIRE_R_OK);
	cr_assert_eq(xfer(1, 0x0102030405060708ull, 5, 0x1122334455667788ull), WIRE_R_OK);
	cr_assert_eq(xfer(2, 5, 0x0102030405060708ull, 0x10), WIRE_R_OK);
	uint8_t data[32];
	memset(data, 0xEE, sizeof data);
	cr_assert_eq(lookup(0x0102030405060708ull, data), WIRE_R_OK);
	const uint8_t want[32] = {
	    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* account_id */
	    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* debits_posted */
	    0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* credits_posted */
	    0x02, 0x00, 0x00, 0x00,			    /* flags */
	    0x00, 0x00, 0x00, 0x00,			    /* reserved */
	};
	cr_assert(memcmp(data, want, 32) == 0);
}

Test(ledger_lookup, id_invalid_and_not_found)
{
	uint8_t data[32];
	struct snap s = snap_take();
	cr_assert_eq(lookup(0, data), WIRE_R_ID_INVALID);
	cr_assert_eq(lookup(MAX64, data), WIRE_R_ID_INVALID);
	cr_assert_eq(lookup(42, data), WIRE_R_NOT_FOUND);
	snap_check_same(&s, "LOOKUP");
	cr_assert_null(ledger_account_find(&L, 42));
	cr_assert_null(ledger_account_find(&L, 0));
}

Test(ledger_lookup, opaque_and_unknown_op_change_nothing)
{
	cr_assert_eq(create(1, 0), WIRE_R_OK);
	struct snap s = snap_take();
	uint8_t payload[1024];
	memset(payload, 0xAB, sizeof payload);
	uint8_t data[32];
	cr_assert_eq(ledger_apply(&L, WIRE_OP_OPAQUE, payload, 0, data), WIRE_R_OK);
	cr_assert_eq(ledger_apply(&L, WIRE_OP_OPAQUE, payload, 1024, data), WIRE_R_OK);
	cr_assert_eq(ledger_apply(&L, 77, payload, 16, data), WIRE_R_OK);
	snap_check_same(&s, "OPAQUE");
}

Test(ledger_lookup, sizes)
{
	struct ledger_cfg cfg = {.accounts_max = 1000, .transfers_max = 3};
	/* next power of two >= 2 * max, 32-byte slots */
	cr_assert_eq(ledger_bytes(&cfg), 2048 * 32 + 8 * 32);
	cfg.accounts_max = ORDO_ACCOUNTS_MAX_LIMIT + 1;
	struct ledger l2;
	cr_assert_eq(ledger_init(&l2, &cfg), -EINVAL);
}

/* ------------------------------------------------------------ differential */

/* Reference model: §4 read literally, exact arithmetic in unsigned __int128. */
#define REF_ACCOUNTS_MAX  5
#define REF_TRANSFERS_MAX 40

struct ref_account {
	uint64_t id, debits, credits;
	uint32_t flags;
};
struct ref_transfer {
	uint64_t id, debit, credit, amount;
};
struct ref {
	struct ref_account a[REF_ACCOUNTS_MAX];
	int na;
	struct ref_transfer t[REF_TRANSFERS_MAX];
	int nt;
};

static struct ref_account *ref_find(struct ref *r, uint64_t id)
{
	for (int i = 0; i < r->na; i++)
		if (r->a[i].id == id)
			return &r->a[i];
	return NULL;
}

static enum wire_result ref_create(struct ref *r, uint64_t id, uint32_t flags)
{
	if (id == 0 || id == MAX64)
		return WIRE_R_ID_INVALID;
	if ((flags & ~3u) != 0 || flags == 3)
		return WIRE_R_FLAGS_INVALID;
	struct ref_account *a = ref_find(r, id);
	if (a != NULL)
		return a->flags == flags ? WIRE_R_EXISTS : WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
	if (r->na >= REF_ACCOUNTS_MAX)
		return WIRE_R_LEDGER_FULL;
	r->a[r->na++] = (struct ref_account){.id = id, .flags = flags};
	return WIRE_R_OK;
}

static enum wire_result ref_transfer(struct ref *r, uint64_t id, uint64_t di, uint64_t ci,
				     uint64_t amount)
{
	typedef unsigned __int128 u128;
	if (id == 0 || id == MAX64 || di == 0 || di == MAX64 || ci == 0 || ci == MAX64)
		return WIRE_R_ID_INVALID;
	for (int i = 0; i < r->nt; i++) {
		if (r->t[i].id == id) {
			if (r->t[i].debit == di && r->t[i].credit == ci && r->t[i].amount == amount)
				return WIRE_R_EXISTS;
			return WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
		}
	}
	if (di == ci)
		return WIRE_R_SAME_ACCOUNT;
	if (amount == 0)
		return WIRE_R_AMOUNT_ZERO;
	struct ref_account *d = ref_find(r, di), *c = ref_find(r, ci);
	if (d == NULL)
		return WIRE_R_DEBIT_ACCOUNT_NOT_FOUND;
	if (c == NULL)
		return WIRE_R_CREDIT_ACCOUNT_NOT_FOUND;
	if ((d->flags & 1) && (u128)d->debits + amount > (u128)d->credits)
		return WIRE_R_EXCEEDS_CREDITS;
	if ((c->flags & 2) && (u128)c->credits + amount > (u128)c->debits)
		return WIRE_R_EXCEEDS_DEBITS;
	if ((u128)d->debits + amount > (u128)MAX64 || (u128)c->credits + amount > (u128)MAX64)
		return WIRE_R_OVERFLOW;
	if (r->nt >= REF_TRANSFERS_MAX)
		return WIRE_R_LEDGER_FULL;
	r->t[r->nt++] = (struct ref_transfer){id, di, ci, amount};
	d->debits += amount;
	c->credits += amount;
	return WIRE_R_OK;
}

static uint64_t pick_id(struct ordo_prng *p, uint64_t range)
{
	uint64_t x = ordo_prng_below(p, 100);
	if (x == 0)
		return 0;
	if (x == 1)
		return MAX64;
	return 1 + ordo_prng_below(p, range);
}

static uint64_t pick_amount(struct ordo_prng *p, const struct ref *r)
{
	uint64_t rnd = ordo_prng_next(p);
	switch (ordo_prng_below(p, 9)) {
	case 0:
		return 0;
	case 1:
		return 1 + ordo_prng_below(p, 10);
	case 2:
		return MAX64 - ordo_prng_below(p, 4);
	case 3:
		return MAX64 / 2 + ordo_prng_below(p, 3) - 1;
	case 4:
		return rnd;
	case 5:
		return rnd >> ordo_prng_below(p, 64);
	default: {
		/* Near an existing balance or the headroom of one: the edges. */
		if (r->na == 0)
			return rnd;
		const struct ref_account *a = &r->a[ordo_prng_below(p, (uint64_t)r->na)];
		uint64_t base;
		switch (ordo_prng_below(p, 4)) {
		case 0:
			base = a->credits - a->debits;
			break;
		case 1:
			base = a->debits - a->credits;
			break;
		case 2:
			base = MAX64 - a->debits;
			break;
		default:
			base = MAX64 - a->credits;
			break;
		}
		return base + ordo_prng_below(p, 3) - 1; /* base - 1, base, base + 1 */
	}
	}
}

static void differential_run(uint64_t seed, int ops, int hist[14])
{
	struct ledger_cfg cfg = {.accounts_max = REF_ACCOUNTS_MAX,
				 .transfers_max = REF_TRANSFERS_MAX};
	cr_assert_eq(ledger_init(&L, &cfg), 0);
	struct ref r;
	memset(&r, 0, sizeof r);
	struct ordo_prng p;
	ordo_prng_seed(&p, seed);

	for (int i = 0; i < ops; i++) {
		uint64_t kind = ordo_prng_below(&p, 10);
		enum wire_result got, want;
		if (kind < 2) {
			uint64_t id = pick_id(&p, 8);
			uint32_t flags = ordo_prng_below(&p, 8) == 0
					     ? (uint32_t)ordo_prng_next(&p)
					     : (uint32_t)ordo_prng_below(&p, 4);
			want = ref_create(&r, id, flags);
			got = create(id, flags);
			cr_assert_eq(got, want, "seed %lu op %d create(%lu, %u): got %d want %d",
				     (unsigned long)seed, i, (unsigned long)id, flags, got, want);
		} else if (kind < 9) {
			uint64_t id = pick_id(&p, 60);
			uint64_t di = pick_id(&p, 8), ci = pick_id(&p, 8);
			uint64_t amount = pick_amount(&p, &r);
			/* Sometimes replay a held transfer, exactly or with one field changed. */
			if (r.nt > 0 && ordo_prng_below(&p, 6) == 0) {
				const struct ref_transfer *t =
				    &r.t[ordo_prng_below(&p, (uint64_t)r.nt)];
				id = t->id;
				di = t->debit;
				ci = t->credit;
				amount = t->amount + (ordo_prng_below(&p, 2) ? 0 : 1);
			}
			want = ref_transfer(&r, id, di, ci, amount);
			got = xfer(id, di, ci, amount);
			cr_assert_eq(got, want,
				     "seed %lu op %d xfer(%lu, %lu, %lu, %lu): got %d want %d",
				     (unsigned long)seed, i, (unsigned long)id, (unsigned long)di,
				     (unsigned long)ci, (unsigned long)amount, got, want);
		} else {
			uint64_t id = pick_id(&p, 8);
			uint8_t data[32];
			got = lookup(id, data);
			const struct ref_account *a = ref_find(&r, id);
			want = (id == 0 || id == MAX64) ? WIRE_R_ID_INVALID
			       : a == NULL		? WIRE_R_NOT_FOUND
							: WIRE_R_OK;
			cr_assert_eq(got, want, "seed %lu op %d lookup", (unsigned long)seed, i);
			if (got == WIRE_R_OK) {
				cr_assert_eq(ordo_ld64(data), a->id);
				cr_assert_eq(ordo_ld64(data + 8), a->debits);
				cr_assert_eq(ordo_ld64(data + 16), a->credits);
				cr_assert_eq(ordo_ld32(data + 24), a->flags);
				cr_assert_eq(ordo_ld32(data + 28), 0);
			}
		}
		hist[got]++;
		/* Whole state after every op. */
		cr_assert_eq(L.accounts_count, (uint64_t)r.na);
		cr_assert_eq(L.transfers_count, (uint64_t)r.nt);
		for (int k = 0; k < r.na; k++) {
			const struct ledger_account *a = ledger_account_find(&L, r.a[k].id);
			cr_assert_not_null(a);
			cr_assert_eq(a->debits_posted, r.a[k].debits, "seed %lu op %d",
				     (unsigned long)seed, i);
			cr_assert_eq(a->credits_posted, r.a[k].credits);
			cr_assert_eq(a->flags, r.a[k].flags);
		}
	}
	ledger_free(&L);
}

Test(ledger_differential, random_ops_against_int128_model)
{
	int hist[14] = {0};
	for (uint64_t seed = 1; seed <= 40; seed++)
		differential_run(seed, 5000, hist);
	/* The generator must reach every result, or the test proves little. */
	for (int k = 0; k < 14; k++) {
		cr_assert_gt(hist[k], 0, "never produced result %d", k);
		cr_log_info("result %2d %-28s %d", k, wire_result_name((enum wire_result)k),
			    hist[k]);
	}
}
