/*
 * The replica's reassembly and merge (replicas/merge.h): fragments in any
 * order make whole entries; the merge hands them out epoch by epoch, group
 * by group; a run (an entry covering several epochs) is empty until its
 * last epoch; gaps name the first epoch missing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/le.h"
#include "replicas/merge.h"

#include "epoch_build.h"

#define FRAG 64u

/* An entry of group g covering from..epoch with `count` OPAQUE records of
 * 24 bytes (so it spans several 64-byte fragments). */
static uint32_t entry(uint8_t *buf, uint16_t g, uint64_t from, uint64_t epoch, uint64_t first,
		      uint32_t count)
{
	const struct test_entry e = {.from = from,
				     .epoch = epoch,
				     .group = g,
				     .first = first,
				     .count = count,
				     .client = 9,
				     .tag = (uint8_t)epoch,
				     .size = 24};
	return test_entry_encode(buf, &e);
}

/* Feeds fragment f of an entry; returns rep_merge_fragment's answer. */
static int feed(struct rep_merge *m, const uint8_t *buf, uint32_t len, uint16_t g, uint64_t epoch,
		uint32_t f, uint64_t merged)
{
	uint32_t off = f * FRAG;
	struct wire_epoch_data d = {.epoch = epoch,
				    .committed_epoch = epoch,
				    .total_bytes = len,
				    .offset = off,
				    .data_bytes = len - off < FRAG ? len - off : FRAG,
				    .group = g,
				    .data = buf + off};
	return rep_merge_fragment(m, &d, merged);
}

static void feed_all(struct rep_merge *m, const uint8_t *buf, uint32_t len, uint16_t g,
		     uint64_t epoch, uint64_t merged)
{
	uint32_t n = (len + FRAG - 1) / FRAG;
	for (uint32_t f = n; f-- > 0;) /* backwards: order does not matter */
		(void)feed(m, buf, len, g, epoch, f, merged);
}

Test(merge, fragments_in_any_order_make_the_entry)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 1, 8, 4096, FRAG), 0);
	static uint8_t b[4096];
	uint32_t len = entry(b, 0, 5, 5, 1, 3); /* 48 + 3 x 64 = 240: 4 fragments */
	cr_assert_eq(len, 240);
	cr_assert_eq(feed(&m, b, len, 0, 5, 2, 4), 0);
	cr_assert_eq(feed(&m, b, len, 0, 5, 0, 4), 0);
	cr_assert_eq(feed(&m, b, len, 0, 5, 0, 4), 0, "a duplicate is ignored");
	cr_assert_eq(feed(&m, b, len, 0, 5, 3, 4), 0);
	struct rep_merge_step st;
	uint32_t waiting = 99;
	cr_assert_not(rep_merge_next(&m, 4, &st, &waiting), "one fragment is missing");
	cr_assert_eq(waiting, 0);
	cr_assert_eq(feed(&m, b, len, 0, 5, 1, 4), 1, "the last fragment completes it");
	cr_assert(rep_merge_next(&m, 4, &st, NULL));
	cr_assert_eq(st.epoch, 5);
	cr_assert_eq(st.len[0], len);
	cr_assert_eq(memcmp(st.bytes[0], b, len), 0);
	/* A fragment claiming another size for the entry contradicts it. */
	struct wire_epoch_data d = {
	    .epoch = 5, .total_bytes = len + 8, .offset = 0, .data_bytes = FRAG, .data = b};
	cr_assert_eq(rep_merge_fragment(&m, &d, 4), -EBADMSG);
	rep_merge_release(&m, &st);
	cr_assert_not(rep_merge_next(&m, 4, &st, NULL), "released");
	/* Old entries are ignored. */
	cr_assert_eq(feed(&m, b, len, 0, 5, 0, 5), 0);
	cr_assert_not(rep_merge_next(&m, 4, &st, NULL));
	rep_merge_free(&m);
}

Test(merge, epoch_by_epoch_group_by_group_with_a_run)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 2, 8, 4096, FRAG), 0);
	static uint8_t a[3][4096], r[4096];
	uint32_t la[3];
	for (uint32_t i = 0; i < 3; i++) {
		la[i] = entry(a[i], 0, 10 + i, 10 + i, 1 + i, 1);
		feed_all(&m, a[i], la[i], 0, 10 + i, 9);
	}
	struct rep_merge_step st;
	uint32_t waiting = 99;
	cr_assert_not(rep_merge_next(&m, 9, &st, &waiting));
	cr_assert_eq(waiting, 1, "group 1 holds back the merge");
	/* Group 1 paused: its entry covers 10..12, records at 12. */
	uint32_t lr = entry(r, 1, 10, 12, 1, 2);
	feed_all(&m, r, lr, 1, 12, 9);
	uint64_t merged = 9;
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert(rep_merge_next(&m, merged, &st, NULL), "step %u", i);
		cr_assert_eq(st.epoch, 10 + i);
		cr_assert_eq(memcmp(st.bytes[0], a[i], la[i]), 0);
		if (i < 2) {
			cr_assert_null(st.bytes[1], "the run is empty at %u", 10 + i);
			cr_assert_eq(st.contributing, 1);
		} else {
			cr_assert_not_null(st.bytes[1]);
			cr_assert_eq(memcmp(st.bytes[1], r, lr), 0);
			cr_assert_eq(st.contributing, 2);
		}
		rep_merge_release(&m, &st);
		merged = st.epoch;
	}
	cr_assert_not(rep_merge_next(&m, merged, &st, NULL));
	rep_merge_free(&m);
}

Test(merge, gaps_name_the_first_epoch_missing)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 2, 8, 4096, FRAG), 0);
	static uint8_t b[4096];
	uint64_t from;
	uint32_t count;
	cr_assert_not(rep_merge_gap(&m, 0, 0, 16, &from, &count), "nothing known committed");
	uint32_t len = entry(b, 0, 1, 1, 1, 1);
	feed_all(&m, b, len, 0, 1, 0);
	len = entry(b, 0, 2, 3, 2, 1); /* a run 2..3 */
	feed_all(&m, b, len, 0, 3, 0);
	rep_merge_committed(&m, 0, 40);
	cr_assert(rep_merge_gap(&m, 0, 0, 16, &from, &count));
	cr_assert_eq(from, 4, "1 and the run 2..3 are held");
	cr_assert_eq(count, 5, "up to what 8 slots can hold past merged epoch 0");
	cr_assert(rep_merge_gap(&m, 0, 0, 2, &from, &count));
	cr_assert_eq(count, 2, "at most max");
	cr_assert(rep_merge_gap(&m, 0, 30, 16, &from, &count));
	cr_assert_eq(from, 31);
	cr_assert_eq(count, 8);
	cr_assert(rep_merge_gap(&m, 0, 35, 16, &from, &count));
	cr_assert_eq(count, 5, "up to the known committed epoch 40");
	cr_assert_not(rep_merge_gap(&m, 1, 0, 16, &from, &count), "group 1: nothing known");
	rep_merge_free(&m);
}

Test(merge, the_entry_needed_first_keeps_a_contended_slot)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 1, 4, 4096, FRAG), 0);
	static uint8_t b13[4096], b17[4096];
	uint32_t l13 = entry(b13, 0, 13, 13, 1, 0), l17 = entry(b17, 0, 14, 17, 1, 1);
	feed_all(&m, b17, l17, 0, 17, 12); /* slot 1 */
	feed_all(&m, b13, l13, 0, 13, 12); /* slot 1 too: ends earlier, takes it */
	struct rep_merge_step st;
	cr_assert(rep_merge_next(&m, 12, &st, NULL));
	cr_assert_eq(st.epoch, 13);
	rep_merge_release(&m, &st);
	cr_assert_not(rep_merge_next(&m, 13, &st, NULL), "17 lost the slot to 13");
	feed_all(&m, b17, l17, 0, 17, 13); /* asked again, it takes the free slot */
	cr_assert(rep_merge_next(&m, 13, &st, NULL));
	cr_assert_eq(st.epoch, 17);
	rep_merge_forget(&m, 17);
	cr_assert_not(rep_merge_next(&m, 13, &st, NULL), "forgotten");
	rep_merge_free(&m);
}

Test(merge, a_joining_group_takes_part_from_its_join_epoch)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 1, 8, 4096, FRAG), 0);
	cr_assert_eq(rep_merge_grow(&m, 2), 0, "a group added at run time");
	cr_assert_eq(m.groups, 2);
	static uint8_t a[4][4096], r[4096];
	uint32_t la[4];
	for (uint32_t i = 0; i < 4; i++) {
		la[i] = entry(a[i], 0, 10 + i, 10 + i, 1 + i, 1);
		feed_all(&m, a[i], la[i], 0, 10 + i, 9);
	}
	uint64_t from[2] = {0, 12}; /* group 1 joins at 12 */
	struct rep_merge_step st;
	uint32_t waiting = 99;
	cr_assert(rep_merge_next_from(&m, 9, from, &st, NULL));
	cr_assert_eq(st.epoch, 10);
	cr_assert_null(st.bytes[1], "before its join epoch group 1 is not asked");
	rep_merge_release(&m, &st);
	cr_assert(rep_merge_next_from(&m, 10, from, &st, NULL));
	cr_assert_eq(st.epoch, 11);
	rep_merge_release(&m, &st);
	cr_assert_not(rep_merge_next_from(&m, 11, from, &st, &waiting));
	cr_assert_eq(waiting, 1, "at 12 the merge needs group 1");
	/* Its entry covering 12 is a run from 1 (a new group's first entry)
	 * ending at 13: empty at 12. */
	uint32_t lr = entry(r, 1, 1, 13, 1, 1);
	feed_all(&m, r, lr, 1, 13, 11);
	cr_assert(rep_merge_next_from(&m, 11, from, &st, NULL));
	cr_assert_eq(st.epoch, 12);
	cr_assert_null(st.bytes[1]);
	rep_merge_release(&m, &st);
	from[1] = 0; /* rep_state made it a member at 12 */
	cr_assert(rep_merge_next_from(&m, 12, from, &st, NULL));
	cr_assert_eq(st.epoch, 13);
	cr_assert_not_null(st.bytes[1]);
	cr_assert_eq(st.contributing, 2);
	rep_merge_free(&m);
}

Test(merge, a_joining_groups_earlier_entries_do_not_keep_its_slots)
{
	struct rep_merge m;
	cr_assert_eq(rep_merge_init(&m, 2, 4, 4096, FRAG), 0);
	static uint8_t early[4096], join[4096];
	uint32_t le = entry(early, 1, 16, 16, 1, 0), lj = entry(join, 1, 17, 20, 1, 1);
	/* Merged epoch 10; group 1 joins at 20. Without a floor its entry
	 * ending at 16 (slot 0) would keep the slot its entry ending at 20
	 * needs, as the one ending earlier, until the merge passed 16: never,
	 * if the merge waits for group 1 at 20 (a stalled group 0 whose next
	 * entry is a run past 20). */
	feed_all(&m, early, le, 1, 16, 10);
	feed_all(&m, join, lj, 1, 20, 10);
	const uint8_t *b;
	uint32_t len;
	uint64_t end;
	cr_assert_not(rep_merge_covering(&m, 1, 20, &b, &len, &end), "the slot went to 16");
	rep_merge_set_floor(&m, 1, 19);
	feed_all(&m, join, lj, 1, 20, 10);
	cr_assert(rep_merge_covering(&m, 1, 20, &b, &len, &end), "with the floor, 20 has it");
	cr_assert_eq(end, 20);
	feed_all(&m, early, le, 1, 16, 10);
	cr_assert(rep_merge_covering(&m, 1, 20, &b, &len, &end), "16 is refused, not swapped in");
	/* A group not merged at all takes nothing. */
	rep_merge_set_floor(&m, 1, UINT64_MAX);
	cr_assert_not(rep_merge_covering(&m, 1, 20, &b, &len, &end), "dropped");
	feed_all(&m, join, lj, 1, 20, 10);
	cr_assert_not(rep_merge_covering(&m, 1, 20, &b, &len, &end));
	rep_merge_free(&m);
}
