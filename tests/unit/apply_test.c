/*
 * The replica state machine (replicas/apply.h): one group's epochs in
 * order, and the merge of several groups' epochs (PROTOCOL.md §3.2: by
 * epoch, then group, then index), with global positions and the digest
 * over them.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/le.h"
#include "replicas/apply.h"

#include "epoch_build.h"

static const struct ledger_cfg CAPS = {.accounts_max = 64, .transfers_max = 64};

/* An epoch of `count` OPAQUE records of group g; record i carries byte
 * tag + i, from client `client`. */
static uint32_t make(uint8_t *buf, uint64_t epoch, uint16_t g, uint64_t first, uint32_t count,
		     uint64_t client, uint8_t tag)
{
	const struct test_entry e = {.epoch = epoch,
				     .group = g,
				     .first = first,
				     .count = count,
				     .client = client,
				     .tag = tag,
				     .size = 8};
	return test_entry_encode(buf, &e);
}

struct seen {
	uint64_t position[32], client[32];
	uint32_t n;
};

static void record(void *ctx, const struct wire_epoch_hdr *h, const struct wire_entry_rec *ent,
		   const struct wire_epoch_rec *er, const uint8_t digest_before[16],
		   const uint8_t *data)
{
	(void)h, (void)er, (void)digest_before, (void)data;
	struct seen *s = ctx;
	s->position[s->n] = ent->position;
	s->client[s->n] = ent->client_id;
	s->n++;
}

/* The digest of ENTRIES records built by hand for (client, positions). */
static void digest_of(uint8_t d[16], const uint64_t *client, const uint64_t *first, uint32_t n,
		      uint64_t epoch, const uint8_t *tags, const uint32_t *counts)
{
	memset(d, 0, 16);
	uint64_t pos = 1;
	for (uint32_t g = 0; g < n; g++)
		for (uint32_t i = 0; i < counts[g]; i++) {
			uint8_t p[8], rec[ORDO_ENTRY_REC_BYTES + 8];
			memset(p, tags[g] + (int)i, sizeof p);
			struct wire_entry_rec e = {.position = pos++,
						   .epoch = epoch,
						   .client_id = client[g],
						   .request_number = 2 + first[g] + i,
						   .op = WIRE_OP_OPAQUE,
						   .size = sizeof p,
						   .result = WIRE_R_OK,
						   .payload = p};
			wire_entry_encode(rec, &e);
			ledger_digest_step(d, rec, sizeof rec);
		}
}

Test(apply, two_groups_merge_by_group_then_index_with_global_positions)
{
	struct rep_state s;
	cr_assert_eq(rep_state_init(&s, &CAPS), 0);
	static uint8_t b0[4096], b1[4096];
	uint32_t l0 = make(b0, 1, 0, 1, 3, 100, 10);
	uint32_t l1 = make(b1, 1, 1, 1, 2, 200, 20);
	const uint8_t *ep[2] = {b0, b1};
	uint32_t lens[2] = {l0, l1};
	struct seen seen = {0};
	cr_assert(rep_state_apply_merged(&s, 1, ep, lens, 2, record, &seen));
	cr_assert_eq(seen.n, 5);
	for (uint32_t i = 0; i < 5; i++) {
		cr_assert_eq(seen.position[i], i + 1);
		cr_assert_eq(seen.client[i], i < 3 ? 100u : 200u, "group 0 first, then group 1");
	}
	cr_assert_eq(s.applied_position, 5);
	cr_assert_eq(s.group_position[0], 3);
	cr_assert_eq(s.group_position[1], 2);
	cr_assert_eq(s.applied_epoch, 1);
	cr_assert_eq(s.next_epoch, 2);
	uint8_t want[16];
	uint64_t client[2] = {100, 200}, first[2] = {1, 1};
	uint8_t tags[2] = {10, 20};
	uint32_t counts[2] = {3, 2};
	digest_of(want, client, first, 2, 1, tags, counts);
	cr_assert_eq(memcmp(s.digest, want, 16), 0, "the digest runs over global positions");

	/* epoch 2: group 0 empty (first_position = its next free), group 1 one record */
	l0 = make(b0, 2, 0, 4, 0, 100, 0);
	l1 = make(b1, 2, 1, 3, 1, 200, 30);
	lens[0] = l0, lens[1] = l1;
	seen.n = 0;
	cr_assert(rep_state_apply_merged(&s, 2, ep, lens, 2, record, &seen));
	cr_assert_eq(seen.n, 1);
	cr_assert_eq(seen.position[0], 6);
	cr_assert_eq(s.group_position[0], 3);
	cr_assert_eq(s.group_position[1], 3);
	rep_state_free(&s);
}

Test(apply, a_merge_that_does_not_fit_applies_nothing)
{
	struct rep_state s;
	cr_assert_eq(rep_state_init(&s, &CAPS), 0);
	static uint8_t b0[4096], b1[4096];
	uint32_t lens[2];
	const uint8_t *ep[2] = {b0, b1};
	struct {
		uint64_t e1;
		uint16_t g1;
		uint64_t first1;
		const char *what;
	} bad[] = {
	    {2, 1, 1, "group 1's epoch is another epoch"},
	    {1, 0, 1, "group 1's slot holds group 0's epoch"},
	    {1, 1, 5, "group 1's epoch does not continue its group_position"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		lens[0] = make(b0, 1, 0, 1, 3, 100, 10);
		lens[1] = make(b1, bad[k].e1, bad[k].g1, bad[k].first1, 2, 200, 20);
		cr_assert_not(rep_state_apply_merged(&s, 1, ep, lens, 2, NULL, NULL), "%s",
			      bad[k].what);
		cr_assert_eq(s.applied_position, 0, "%s: nothing applied", bad[k].what);
		cr_assert_eq(s.group_position[0], 0);
		cr_assert_eq(s.next_epoch, 1);
		static const uint8_t zero[16];
		cr_assert_eq(memcmp(s.digest, zero, 16), 0);
	}
	lens[1] = 7; /* malformed */
	cr_assert_not(rep_state_apply_merged(&s, 1, ep, lens, 2, NULL, NULL));
	const uint8_t *none[2] = {NULL, NULL};
	cr_assert_not(rep_state_apply_merged(&s, 1, none, lens, 2, NULL, NULL), "no entry at all");
	cr_assert_not(rep_state_apply_merged(&s, 1, ep, lens, 0, NULL, NULL));
	lens[1] = make(b1, 1, 1, 1, 2, 200, 20);
	cr_assert_not(rep_state_apply_merged(&s, 0, ep, lens, 2, NULL, NULL), "epoch 0");
	cr_assert_eq(s.applied_position, 0);
	rep_state_free(&s);
}

Test(apply, one_group_merged_equals_one_group_applied)
{
	struct rep_state a, b;
	cr_assert_eq(rep_state_init(&a, &CAPS), 0);
	cr_assert_eq(rep_state_init(&b, &CAPS), 0);
	static uint8_t buf[4096];
	uint64_t first = 1;
	for (uint64_t e = 1; e <= 5; e++) {
		uint32_t count = (uint32_t)(e % 3); /* 1, 2, 0, 1, 2 */
		uint32_t len = make(buf, e, 0, first, count, 7, (uint8_t)e);
		cr_assert(rep_state_apply_epoch(&a, buf, len, NULL, NULL));
		const uint8_t *ep[1] = {buf};
		cr_assert(rep_state_apply_merged(&b, e, ep, &len, 1, NULL, NULL));
		first += count;
	}
	cr_assert_eq(a.applied_position, b.applied_position);
	cr_assert_eq(a.group_position[0], a.applied_position);
	cr_assert_eq(b.group_position[0], b.applied_position);
	cr_assert_eq(memcmp(a.digest, b.digest, 16), 0);
	rep_state_free(&a);
	rep_state_free(&b);
}

/* An entry of group g covering from..epoch, records at epoch. */
static uint32_t make_run(uint8_t *buf, uint64_t from, uint64_t epoch, uint16_t g, uint64_t first,
			 uint32_t count, uint64_t client, uint8_t tag)
{
	uint32_t len = make(buf, epoch, g, first, count, client, tag);
	ordo_st64(buf + 40, from);
	return len;
}

Test(apply, a_run_is_empty_until_its_last_epoch)
{
	struct rep_state s;
	cr_assert_eq(rep_state_init(&s, &CAPS), 0);
	static uint8_t b0[4096], b1[4096];
	const uint8_t *ep[2] = {b0, NULL};
	uint32_t lens[2] = {0, 0};
	struct seen seen = {0};
	s.applied_epoch = 9, s.next_epoch = 10; /* every group covered 1..9 */
	/* Group 1 paused: one entry covers epochs 10..12, its records at 12. */
	uint32_t run = make_run(b1, 10, 12, 1, 1, 2, 200, 20);
	lens[0] = make(b0, 10, 0, 1, 1, 100, 10);
	cr_assert(rep_state_apply_merged(&s, 10, ep, lens, 2, record, &seen));
	lens[0] = make(b0, 11, 0, 2, 1, 100, 11);
	cr_assert(rep_state_apply_merged(&s, 11, ep, lens, 2, record, &seen));
	cr_assert_eq(s.applied_epoch, 11);
	cr_assert_eq(s.steps, 2);
	lens[0] = make(b0, 12, 0, 3, 1, 100, 12);
	ep[1] = b1, lens[1] = run;
	cr_assert(rep_state_apply_merged(&s, 12, ep, lens, 2, record, &seen));
	cr_assert_eq(seen.n, 5);
	uint64_t want_client[5] = {100, 100, 100, 200, 200};
	for (uint32_t i = 0; i < 5; i++) {
		cr_assert_eq(seen.position[i], i + 1);
		cr_assert_eq(seen.client[i], want_client[i]);
	}
	cr_assert_eq(s.group_position[1], 2);
	/* An entry that leaves an epoch uncovered (starts after 13) is refused. */
	lens[0] = make(b0, 14, 0, 4, 0, 100, 0);
	lens[1] = make_run(b1, 14, 14, 1, 3, 0, 200, 0);
	cr_assert_not(rep_state_apply_merged(&s, 14, ep, lens, 2, NULL, NULL));
	/* An epoch not after the applied one is refused. */
	lens[0] = make(b0, 12, 0, 4, 0, 100, 0);
	ep[1] = NULL;
	cr_assert_not(rep_state_apply_merged(&s, 12, ep, lens, 2, NULL, NULL));
	cr_assert_eq(s.applied_position, 5);
	rep_state_free(&s);
}

Test(apply, unknown_group_positions_are_learned_then_checked)
{
	struct rep_state s;
	cr_assert_eq(rep_state_init(&s, &CAPS), 0);
	s.group_known = 0; /* as after loading a checkpoint of several groups */
	s.applied_epoch = 40, s.next_epoch = 41, s.applied_position = 90;
	static uint8_t b0[4096], b1[4096];
	const uint8_t *ep[2] = {b0, b1};
	uint32_t lens[2];
	lens[0] = make(b0, 41, 0, 50, 1, 100, 1);
	lens[1] = make(b1, 41, 1, 41, 1, 200, 2);
	cr_assert(rep_state_apply_merged(&s, 41, ep, lens, 2, NULL, NULL));
	cr_assert_eq(s.group_position[0], 50);
	cr_assert_eq(s.group_position[1], 41);
	cr_assert_eq(s.applied_position, 92);
	lens[0] = make(b0, 42, 0, 52, 1, 100, 3); /* skips group position 51 */
	lens[1] = make(b1, 42, 1, 42, 1, 200, 4);
	cr_assert_not(rep_state_apply_merged(&s, 42, ep, lens, 2, NULL, NULL));
	rep_state_free(&s);
}

/* Stamps a join announcement (group j joins at epoch + after) into an
 * entry's header. */
static void announce(uint8_t *buf, uint16_t j, uint32_t after)
{
	ordo_st16(buf + 34, (uint16_t)(j + 1));
	ordo_st32(buf + 36, after);
}

Test(apply, a_group_joins_at_the_epoch_announced)
{
	struct rep_state s;
	cr_assert_eq(rep_state_init(&s, &CAPS), 0);
	rep_state_found(&s, 1); /* group 0 founds; group 1 is added later */
	s.applied_epoch = 9, s.next_epoch = 10;
	cr_assert_eq(rep_state_group_from(&s, 0), 0);
	cr_assert_eq(rep_state_group_from(&s, 1), UINT64_MAX, "not merged, not announced");
	static uint8_t b0[4096], b1[4096];
	const uint8_t *ep[2] = {b0, NULL};
	uint32_t lens[2] = {0, 0};
	/* Epoch 10: group 0 announces group 1 at 13 (10 + 3). */
	lens[0] = make(b0, 10, 0, 1, 1, 100, 1);
	announce(b0, 1, 3);
	cr_assert(rep_state_apply_merged(&s, 10, ep, lens, 2, NULL, NULL));
	cr_assert_eq(rep_state_group_from(&s, 1), 13);
	/* An entry of group 1 before it joins is refused. */
	ep[1] = b1;
	lens[0] = make(b0, 11, 0, 2, 1, 100, 2);
	lens[1] = make(b1, 11, 1, 1, 1, 200, 3);
	cr_assert_not(rep_state_apply_merged(&s, 11, ep, lens, 2, NULL, NULL));
	ep[1] = NULL;
	/* A repeat of the announcement (another group's) and a different one
	 * (another epoch) while it is pending: the first stands. */
	announce(b0, 1, 2); /* 11 + 2 = 13: the same */
	cr_assert(rep_state_apply_merged(&s, 11, ep, lens, 2, NULL, NULL));
	cr_assert_eq(s.joins_ignored, 0);
	lens[0] = make(b0, 12, 0, 3, 1, 100, 4);
	announce(b0, 1, 5); /* 17: another epoch */
	cr_assert(rep_state_apply_merged(&s, 12, ep, lens, 2, NULL, NULL));
	cr_assert_eq(s.joins_ignored, 1);
	cr_assert_eq(rep_state_group_from(&s, 1), 13);
	/* Epoch 13: group 1 joins; its entry (a run from 1, as a new group's
	 * first entry is) must start at group position 1. */
	lens[0] = make(b0, 13, 0, 4, 1, 100, 5);
	lens[1] = make_run(b1, 1, 13, 1, 2, 1, 200, 6);
	ep[1] = b1;
	cr_assert_not(rep_state_apply_merged(&s, 13, ep, lens, 2, NULL, NULL),
		      "a joining group starts at position 1");
	lens[1] = make_run(b1, 1, 13, 1, 1, 2, 200, 6);
	struct seen seen = {0};
	cr_assert(rep_state_apply_merged(&s, 13, ep, lens, 2, record, &seen));
	cr_assert_eq(seen.n, 3);
	cr_assert_eq(seen.client[0], 100, "group 0 first");
	cr_assert_eq(seen.client[2], 200);
	cr_assert_eq(rep_state_group_from(&s, 1), 0, "merged from now on");
	cr_assert_eq(s.group_position[1], 2);
	cr_assert_eq(s.groups_active, 3);
	/* An announcement of a group already merged changes nothing. */
	lens[0] = make(b0, 14, 0, 5, 0, 100, 0);
	announce(b0, 1, 4);
	lens[1] = make(b1, 14, 1, 3, 0, 200, 0);
	cr_assert(rep_state_apply_merged(&s, 14, ep, lens, 2, NULL, NULL));
	cr_assert_eq(s.join_group, 0);
	rep_state_free(&s);
}
