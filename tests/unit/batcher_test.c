/*
 * Unit tests of sequencer/batcher.c: sealing on time (exactly at epoch_us)
 * and on bytes, gapless positions and consecutive epochs, the sealed ring
 * (-ENOBUFS when full, each epoch handed out once, in order), and that every
 * sealed epoch decodes (wire_epoch_decode_hdr / wire_epoch_next_rec) to
 * exactly what was added.
 *
 * Every-epoch mode (several groups): one entry per wall-clock slot, empty or
 * not, numbered by the slot; runs (from_epoch < epoch) after a pause or a
 * full ring, numbers still aligned; a full epoch refuses instead of sealing
 * early; after a reset the first entry starts at the given epoch; and a
 * random schedule whose entries cover every number exactly once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/le.h"
#include "common/prng.h"
#include "sequencer/batcher.h"

#define US 1000ull

static struct seq_batcher_cfg cfg_of(uint32_t epoch_us, uint32_t epoch_bytes, uint32_t inflight)
{
	struct seq_batcher_cfg c = {
	    .epoch_us = epoch_us, .epoch_bytes = epoch_bytes, .inflight = inflight, .group = 5};
	return c;
}

static uint8_t payload_bytes[ORDO_OPAQUE_BYTES_MAX + 64]; /* payloads start at n % 64 */

static struct wire_epoch_rec rec(uint64_t client, uint64_t n, uint16_t size)
{
	struct wire_epoch_rec r = {.client_id = client,
				   .request_number = n,
				   .session = n == 1 ? 0 : client * 3, /* a valid request */
				   .op = WIRE_OP_OPAQUE,
				   .size = size,
				   .key_id = (uint32_t)client,
				   .reply_ip = 0x7F000001u,
				   .reply_port = (uint16_t)(1000 + n),
				   .payload = payload_bytes + (n % 64)};
	return r;
}

Test(batcher, init_rejects_bad_config)
{
	struct seq_batcher b;
	struct seq_batcher_cfg bad[] = {
	    cfg_of(ORDO_EPOCH_US_MIN - 1, 4096, 2),
	    cfg_of(ORDO_EPOCH_US_MAX + 1, 4096, 2),
	    cfg_of(1000, ORDO_EPOCH_BYTES_MIN - 1, 2),
	    cfg_of(1000, ORDO_EPOCH_BYTES_MAX + 1, 2),
	    cfg_of(1000, 4096, 0),
	    cfg_of(1000, 4096, ORDO_EPOCHS_INFLIGHT_MAX + 1),
	};
	for (size_t i = 0; i < ORDO_ARRAY_LEN(bad); i++)
		cr_assert_eq(seq_batcher_init(&b, &bad[i], 1, 1), -EINVAL, "case %zu", i);
	struct seq_batcher_cfg ok = cfg_of(1000, 4096, 2);
	cr_assert_eq(seq_batcher_init(&b, &ok, 0, 1), -EINVAL);
	cr_assert_eq(seq_batcher_init(&b, &ok, 1, 0), -EINVAL);
	/* (inflight + 1) * epoch_bytes, plus the ring's descriptors */
	cr_assert_geq(seq_batcher_bytes(&ok), 3 * 4096);
	cr_assert_leq(seq_batcher_bytes(&ok), 3 * 4096 + 256);
}

Test(batcher, seal_on_time_exactly_at_epoch_us)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(1000, 4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 0), UINT64_MAX);
	cr_assert_not(seq_batcher_tick(&b, 1ull << 40, 0, false));
	cr_assert_not(seq_batcher_tick(&b, 0, 0, true), "empty epochs are not sealed");

	const uint64_t t0 = 5 * 1000 * US;
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, t0, 111, &p), 0);
	/* a later request does not move the deadline */
	r = rec(1, 2, 8);
	cr_assert_eq(seq_batcher_add(&b, &r, t0 + 500 * US, 112, &p), 0);
	cr_assert_eq(seq_batcher_due_in(&b, t0, 0), 1000 * US);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US - 1, 0), 1);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US, 0), 0);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 5000 * US, 0), 0);
	cr_assert_not(seq_batcher_tick(&b, t0 + 1000 * US - 1, 200, false));
	cr_assert_null(seq_batcher_next_sealed(&b));
	cr_assert(seq_batcher_tick(&b, t0 + 1000 * US, 777, false));
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US, 0), UINT64_MAX);
	const struct seq_epoch_buf *e = seq_batcher_next_sealed(&b);
	cr_assert_not_null(e);
	cr_assert_eq(e->hdr.timestamp_ns, 777, "stamped with wall_ns at seal");
	cr_assert_eq(e->hdr.count, 2);
	cr_assert_eq(e->hdr.epoch, 1);
	cr_assert_eq(e->hdr.group, 5);
	struct wire_epoch_hdr h;
	cr_assert_eq(wire_epoch_decode_hdr(e->bytes, e->len, &h), 0);
	cr_assert_eq(h.timestamp_ns, 777);
	cr_assert_eq(h.bytes, 48 + 40 + 48);
	/* force seals a non-empty epoch before its time */
	r = rec(1, 3, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, t0 + 2000 * US, 300, &p), 0);
	cr_assert_eq(p.epoch, 2);
	cr_assert(seq_batcher_tick(&b, t0 + 2000 * US, 301, true));
	seq_batcher_free(&b);
}

Test(batcher, seal_on_bytes)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(1000, 4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 10, 100), 0);
	struct wire_place p;
	/* 48 + 3 * (40 + 1024) = 3240; a fourth would make 4304 > 4096 */
	for (uint64_t n = 1; n <= 3; n++) {
		struct wire_epoch_rec r = rec(9, n, 1024);
		cr_assert_eq(seq_batcher_add(&b, &r, 0, 50, &p), 0);
		cr_assert_eq(p.epoch, 10);
		cr_assert_eq(p.index, n - 1);
		cr_assert_eq(p.group_position, 99 + n);
		cr_assert_eq(p.group, 5);
	}
	cr_assert_eq(seq_batcher_inflight(&b), 0);
	/* 4096 - 3240 = 856: a record of 40 + 816 fits exactly, 40 + 824 does not */
	struct wire_epoch_rec fits = rec(9, 4, 816);
	struct wire_epoch_rec big = rec(9, 5, 824);
	cr_assert_eq(seq_batcher_add(&b, &fits, 0, 50, &p), 0);
	cr_assert_eq(p.epoch, 10);
	cr_assert_eq(seq_batcher_inflight(&b), 0);
	cr_assert_eq(b.open.len, 4096);
	cr_assert_eq(seq_batcher_add(&b, &big, 7, 60, &p), 0);
	cr_assert_eq(seq_batcher_inflight(&b), 1);
	cr_assert_eq(p.epoch, 11, "the record that does not fit opens the next epoch");
	cr_assert_eq(p.index, 0);
	cr_assert_eq(p.group_position, 104);
	/* the new epoch's clock started with that record */
	cr_assert_eq(seq_batcher_due_in(&b, 7, 0), 1000 * US);
	const struct seq_epoch_buf *e = seq_batcher_next_sealed(&b);
	cr_assert_eq(e->hdr.count, 4);
	cr_assert_eq(e->hdr.first_position, 100);
	cr_assert_eq(e->hdr.timestamp_ns, 60);
	cr_assert_eq(e->len, 4096);
	struct wire_place bad;
	struct wire_epoch_rec huge = rec(9, 6, ORDO_OPAQUE_BYTES_MAX + 8);
	cr_assert_eq(seq_batcher_add(&b, &huge, 0, 0, &bad), -EMSGSIZE);
	seq_batcher_free(&b);
}

Test(batcher, ring_full_then_release)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(1000, 4096, 2);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	struct wire_place p;
	uint64_t n = 1;
	struct wire_epoch_rec r;
	/* three epochs' worth: two sealed, the third open and full */
	for (int i = 0; i < 9; i++) {
		r = rec(1, n++, 1024);
		cr_assert_eq(seq_batcher_add(&b, &r, 0, 0, &p), 0);
	}
	cr_assert_eq(seq_batcher_inflight(&b), 2);
	cr_assert_eq(p.epoch, 3);
	uint64_t last_pos = p.group_position;
	r = rec(1, n, 1024);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 0, &p), -ENOBUFS);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 0, &p), -ENOBUFS);
	cr_assert_not(seq_batcher_tick(&b, 1ull << 40, 0, true), "ring full: the open epoch waits");
	/* still, a small record that fits the open epoch is taken */
	struct wire_epoch_rec small = rec(1, n + 100, 0);
	cr_assert_eq(seq_batcher_add(&b, &small, 0, 0, &p), 0);
	cr_assert_eq(p.group_position, last_pos + 1);

	const struct seq_epoch_buf *e1 = seq_batcher_next_sealed(&b);
	const struct seq_epoch_buf *e2 = seq_batcher_next_sealed(&b);
	cr_assert_null(seq_batcher_next_sealed(&b));
	cr_assert_eq(e1->hdr.epoch, 1);
	cr_assert_eq(e2->hdr.epoch, 2);
	cr_assert_eq(seq_batcher_oldest(&b), e1);
	seq_batcher_release(&b);
	cr_assert_eq(seq_batcher_inflight(&b), 1);
	cr_assert_eq(seq_batcher_oldest(&b)->hdr.epoch, 2);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 0, &p), 0);
	cr_assert_eq(p.epoch, 4);
	cr_assert_eq(p.index, 0);
	cr_assert_eq(p.group_position, last_pos + 2);
	const struct seq_epoch_buf *e3 = seq_batcher_next_sealed(&b);
	cr_assert_eq(e3->hdr.epoch, 3);
	cr_assert_eq(e3->hdr.count, 4);
	cr_assert_null(seq_batcher_next_sealed(&b));
	seq_batcher_release(&b);
	seq_batcher_release(&b);
	cr_assert_eq(seq_batcher_inflight(&b), 0);
	cr_assert_null(seq_batcher_oldest(&b));
	seq_batcher_free(&b);
}

/* Random sizes and ticks; every sealed epoch decodes to what was added, with
 * consecutive epochs and gapless positions. */
Test(batcher, decoded_epochs_equal_what_was_added, .timeout = 60)
{
	for (size_t i = 0; i < sizeof payload_bytes; i++)
		payload_bytes[i] = (uint8_t)(i * 31 + 7);
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(100, 4096, 3);
	const uint64_t first_epoch = 42, first_position = 1000;
	cr_assert_eq(seq_batcher_init(&b, &c, first_epoch, first_position), 0);
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 99);

	enum { N = 20000 };
	static struct wire_epoch_rec added[N];
	static struct wire_place places[N];
	uint32_t nadded = 0, checked = 0;
	uint64_t want_epoch = first_epoch, mono = 0;

	while (checked < N) {
		uint64_t op = ordo_prng_below(&rng, 10);
		if (op < 7 && nadded < N) {
			uint16_t size = (uint16_t)ordo_prng_below(&rng, ORDO_OPAQUE_BYTES_MAX + 1);
			struct wire_epoch_rec r = rec(nadded + 1, nadded + 2, size);
			int rc = seq_batcher_add(&b, &r, mono, mono * 2, &places[nadded]);
			if (rc == -ENOBUFS)
				continue;
			cr_assert_eq(rc, 0);
			added[nadded++] = r;
		} else if (op < 8) {
			mono += 30 * US;
			(void)seq_batcher_tick(&b, mono, mono * 2, nadded == N);
		} else {
			const struct seq_epoch_buf *e;
			while ((e = seq_batcher_next_sealed(&b)) != NULL) {
				struct wire_epoch_hdr h;
				cr_assert_eq(wire_epoch_decode_hdr(e->bytes, e->len, &h), 0);
				cr_assert_eq(h.epoch, want_epoch++);
				cr_assert_eq(h.first_position, first_position + checked);
				cr_assert_eq(h.group, 5);
				cr_assert_gt(h.count, 0);
				cr_assert_leq(h.bytes, 4096);
				uint32_t off = ORDO_EPOCH_HDR_BYTES;
				struct wire_epoch_rec d;
				for (uint32_t k = 0; k < h.count; k++, checked++) {
					cr_assert_eq(
					    wire_epoch_next_rec(e->bytes, e->len, &off, &d), 1);
					const struct wire_epoch_rec *a = &added[checked];
					cr_assert_eq(d.client_id, a->client_id);
					cr_assert_eq(d.request_number, a->request_number);
					cr_assert_eq(d.session, a->session);
					cr_assert_eq(d.op, a->op);
					cr_assert_eq(d.size, a->size);
					cr_assert_eq(d.key_id, a->key_id);
					cr_assert_eq(d.reply_ip, a->reply_ip);
					cr_assert_eq(d.reply_port, a->reply_port);
					cr_assert_arr_eq(d.payload, a->payload, a->size);
					const struct wire_place *pl = &places[checked];
					cr_assert_eq(pl->epoch, h.epoch);
					cr_assert_eq(pl->index, k);
					cr_assert_eq(pl->group_position, first_position + checked);
					cr_assert_eq(pl->group, 5);
				}
				cr_assert_eq(wire_epoch_next_rec(e->bytes, e->len, &off, &d), 0);
			}
			while (seq_batcher_inflight(&b) > 0)
				seq_batcher_release(&b);
		}
	}
	cr_assert_eq(checked, N);
	cr_assert_gt(want_epoch - first_epoch, 100);
	seq_batcher_free(&b);
}

/* ------------------------------------------------------ every-epoch mode */

#define SLOT (1000ull * US) /* epoch_us = 1000 */

static struct seq_batcher_cfg every_cfg(uint32_t epoch_bytes, uint32_t inflight)
{
	struct seq_batcher_cfg c = cfg_of(1000, epoch_bytes, inflight);
	c.every_epoch = true;
	return c;
}

/* Takes the next sealed entry, checks it decodes with the given range,
 * count and first position, and releases it. Returns its timestamp. */
static uint64_t take(struct seq_batcher *b, uint64_t from, uint64_t epoch, uint32_t count,
		     uint64_t first_position)
{
	const struct seq_epoch_buf *e = seq_batcher_next_sealed(b);
	cr_assert_not_null(e, "expected entry %lu..%lu", (unsigned long)from, (unsigned long)epoch);
	struct wire_epoch_hdr h;
	cr_assert_eq(wire_epoch_decode_hdr(e->bytes, e->len, &h), 0);
	cr_assert_eq(h.from_epoch, from, "from_epoch %lu, want %lu", (unsigned long)h.from_epoch,
		     (unsigned long)from);
	cr_assert_eq(h.epoch, epoch, "epoch %lu, want %lu", (unsigned long)h.epoch,
		     (unsigned long)epoch);
	cr_assert_eq(h.count, count);
	cr_assert_eq(h.first_position, first_position);
	cr_assert_eq(h.group, 5);
	/* on the wire: 0 when the entry is its epoch alone */
	cr_assert_eq(ordo_ld64(e->bytes + 40), from == epoch ? 0 : from);
	if (count == 0)
		cr_assert_eq(e->len, ORDO_EPOCH_HDR_BYTES);
	cr_assert_null(seq_batcher_next_sealed(b));
	seq_batcher_release(b);
	return h.timestamp_ns;
}

Test(batcher_every, empty_epochs_once_per_slot_numbered_by_the_wall_clock)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	const uint64_t w0 = 1000 * SLOT + 300 * US; /* inside slot 1000 */
	/* due at the end of the slot an epoch opened now would get */
	cr_assert_eq(seq_batcher_due_in(&b, 0, w0), 700 * US);
	cr_assert_not(seq_batcher_tick(&b, 0, w0, false));
	cr_assert_eq(seq_batcher_due_in(&b, 0, w0), 700 * US);
	cr_assert_not(seq_batcher_tick(&b, 0, 1001 * SLOT - 1, false), "slot not over");
	cr_assert_not(seq_batcher_tick(&b, 0, 1001 * SLOT - 1, true), "force never seals early");
	cr_assert_null(seq_batcher_next_sealed(&b));
	cr_assert_eq(seq_batcher_due_in(&b, 0, 1001 * SLOT - 1), 1);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 1001 * SLOT), 0);
	cr_assert(seq_batcher_tick(&b, 0, 1001 * SLOT, false));
	/* the first entry covers everything from first_epoch: 1..999 are empty */
	cr_assert_eq(take(&b, 1, 1000, 0, 1), 1001 * SLOT, "stamped at seal");
	/* one entry per slot, each its slot's number, however many ticks */
	for (uint64_t slot = 1001; slot <= 1020; slot++) {
		for (uint64_t t = 0; t < 10; t++)
			cr_assert_not(seq_batcher_tick(&b, 0, slot * SLOT + t * 90 * US, false));
		cr_assert_eq(seq_batcher_due_in(&b, 0, slot * SLOT + 250 * US), 750 * US);
		cr_assert(seq_batcher_tick(&b, 0, (slot + 1) * SLOT + 5 * US, false));
		cr_assert_not(seq_batcher_tick(&b, 0, (slot + 1) * SLOT + 6 * US, false));
		take(&b, slot, slot, 0, 1);
	}
	seq_batcher_free(&b);
}

Test(batcher_every, records_belong_to_the_slot_they_arrive_in)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	/* an add opens the epoch too: numbered by its slot */
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 2000 * SLOT + 10, &p), 0);
	cr_assert_eq(p.epoch, 2000);
	cr_assert_eq(p.group_position, 1);
	r = rec(1, 2, 8);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 2000 * SLOT + 900 * US, &p), 0);
	cr_assert_eq(p.epoch, 2000);
	cr_assert_eq(p.index, 1);
	cr_assert(seq_batcher_tick(&b, 0, 2001 * SLOT, false));
	take(&b, 1, 2000, 2, 1);
	r = rec(1, 3, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 2001 * SLOT + 1, &p), 0);
	cr_assert_eq(p.epoch, 2001);
	cr_assert_eq(p.index, 0);
	cr_assert_eq(p.group_position, 3);
	cr_assert(seq_batcher_tick(&b, 0, 2002 * SLOT, false));
	take(&b, 2001, 2001, 1, 3);
	/* an empty entry names the next free position */
	cr_assert(seq_batcher_tick(&b, 0, 2003 * SLOT, false));
	take(&b, 2002, 2002, 0, 4);
	seq_batcher_free(&b);
}

Test(batcher_every, a_pause_makes_a_run_and_numbers_stay_aligned)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 500, 10), 0);
	cr_assert_not(seq_batcher_tick(&b, 0, 3001 * SLOT, false)); /* opens 3001 */
	cr_assert(seq_batcher_tick(&b, 0, 3002 * SLOT, false));	    /* and 3002 */
	take(&b, 500, 3001, 0, 10);
	/* no tick for slots 3002..3006: the open epoch (3002) seals late, the
	 * next opens at the current slot (3007) and covers the empty 3003..3006 */
	cr_assert(seq_batcher_tick(&b, 0, 3007 * SLOT + 400 * US, false));
	take(&b, 3002, 3002, 0, 10);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 3007 * SLOT + 400 * US), 600 * US);
	struct wire_place p;
	struct wire_epoch_rec r = rec(2, 2, 16);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 3007 * SLOT + 500 * US, &p), 0);
	cr_assert_eq(p.epoch, 3007, "the place names the run's last epoch");
	cr_assert(seq_batcher_tick(&b, 0, 3008 * SLOT, false));
	take(&b, 3003, 3007, 1, 10);
	cr_assert(seq_batcher_tick(&b, 0, 3009 * SLOT, false));
	take(&b, 3008, 3008, 0, 11);
	seq_batcher_free(&b);
}

Test(batcher_every, a_full_ring_keeps_the_epoch_open_then_a_run)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 2);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	cr_assert_not(seq_batcher_tick(&b, 0, 100 * SLOT, false)); /* opens 100 */
	cr_assert(seq_batcher_tick(&b, 0, 101 * SLOT, false));
	cr_assert(seq_batcher_tick(&b, 0, 102 * SLOT, false));
	cr_assert_eq(seq_batcher_inflight(&b), 2);
	/* 102 is open and its slot ends, but the ring is full: it stays open,
	 * due (0), and keeps taking records */
	cr_assert_not(seq_batcher_tick(&b, 0, 103 * SLOT, false));
	cr_assert_eq(seq_batcher_due_in(&b, 0, 103 * SLOT), 0);
	struct wire_place p;
	struct wire_epoch_rec r = rec(3, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 105 * SLOT + 7, &p), 0);
	cr_assert_eq(p.epoch, 102);
	cr_assert_not(seq_batcher_tick(&b, 0, 106 * SLOT + 3, false));
	const struct seq_epoch_buf *e = seq_batcher_next_sealed(&b);
	cr_assert_eq(e->hdr.epoch, 100);
	cr_assert_eq(e->hdr.from_epoch, 1);
	e = seq_batcher_next_sealed(&b);
	cr_assert_eq(e->hdr.epoch, 101);
	cr_assert_eq(e->hdr.from_epoch, 101);
	seq_batcher_release(&b);
	seq_batcher_release(&b);
	/* room again: 102 seals with its record; the next starts at the
	 * current slot 106, a run from 103 */
	cr_assert(seq_batcher_tick(&b, 0, 106 * SLOT + 5, false));
	cr_assert_eq(take(&b, 102, 102, 1, 1), 106 * SLOT + 5);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 106 * SLOT + 5), SLOT - 5);
	cr_assert(seq_batcher_tick(&b, 0, 107 * SLOT, false));
	take(&b, 103, 106, 0, 2);
	seq_batcher_free(&b);
}

Test(batcher_every, a_full_epoch_refuses_instead_of_sealing_early)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	struct wire_place p;
	const uint64_t w = 700 * SLOT;
	/* 48 + 3 * (40 + 1024) = 3240; a fourth would make 4304 > 4096 */
	for (uint64_t n = 2; n <= 4; n++) {
		struct wire_epoch_rec r = rec(9, n, 1024);
		cr_assert_eq(seq_batcher_add(&b, &r, 0, w + n, &p), 0);
		cr_assert_eq(p.epoch, 700);
	}
	struct wire_epoch_rec big = rec(9, 6, 1024);
	cr_assert_eq(seq_batcher_add(&b, &big, 0, w + 10, &p), -ENOBUFS);
	cr_assert_eq(seq_batcher_inflight(&b), 0, "nothing sealed early");
	cr_assert_eq(b.open.hdr.count, 3);
	cr_assert_eq(seq_batcher_add(&b, &big, 0, w + 11, &p), -ENOBUFS);
	/* a record that still fits is taken */
	struct wire_epoch_rec fits = rec(9, 5, 816);
	cr_assert_eq(seq_batcher_add(&b, &fits, 0, w + 12, &p), 0);
	cr_assert_eq(p.epoch, 700);
	cr_assert_eq(p.group_position, 4);
	cr_assert_not(seq_batcher_tick(&b, 0, 701 * SLOT - 1, false));
	cr_assert(seq_batcher_tick(&b, 0, 701 * SLOT, false));
	take(&b, 1, 700, 4, 1);
	/* the next slot takes the refused record */
	cr_assert_eq(seq_batcher_add(&b, &big, 0, 701 * SLOT + 1, &p), 0);
	cr_assert_eq(p.epoch, 701);
	cr_assert_eq(p.group_position, 5);
	seq_batcher_free(&b);
}

Test(batcher_every, reset_starts_at_committed_plus_one)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 900 * SLOT, &p), 0);
	cr_assert(seq_batcher_tick(&b, 0, 901 * SLOT, false));
	cr_assert_eq(seq_batcher_inflight(&b), 1);
	/* a new leader whose log is committed through epoch 850, position 76:
	 * what the old one held is dropped, the first entry covers 851 .. now */
	seq_batcher_reset(&b, 851, 77);
	cr_assert_eq(seq_batcher_inflight(&b), 0);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 1200 * SLOT + 300 * US), 700 * US);
	cr_assert_not(seq_batcher_tick(&b, 0, 1200 * SLOT + 300 * US, false));
	cr_assert(seq_batcher_tick(&b, 0, 1201 * SLOT, false));
	take(&b, 851, 1200, 0, 77);
	/* the committed log is ahead of this leader's clock (another leader's
	 * clock ran ahead, or this one stepped back): numbers never go back,
	 * the epoch waits for the end of its slot */
	seq_batcher_reset(&b, 1300, 77);
	cr_assert_eq(seq_batcher_due_in(&b, 0, 1201 * SLOT), 100 * SLOT);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1201 * SLOT, &p), 0);
	cr_assert_eq(p.epoch, 1300);
	cr_assert_not(seq_batcher_tick(&b, 0, 1300 * SLOT, false));
	cr_assert(seq_batcher_tick(&b, 0, 1301 * SLOT, false));
	take(&b, 1300, 1300, 1, 77);
	seq_batcher_free(&b);
}

/* Random adds, ticks, clock jumps and commits: the entries cover every epoch
 * number from first_epoch exactly once, in order; each is numbered by the
 * slot it opened in (the previous entry's seal), sealed only after its slot
 * ended; positions are gapless and places name the entry's epoch. */
Test(batcher_every, random_schedule_covers_every_number_once, .timeout = 60)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 3);
	const uint64_t first_epoch = 7, first_position = 1000;
	cr_assert_eq(seq_batcher_init(&b, &c, first_epoch, first_position), 0);
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 1234);
	enum { N = 20000 };
	static struct wire_place places[N];
	uint32_t nadded = 0, checked = 0, runs = 0, empties = 0;
	uint64_t wall = 5000 * SLOT + 17, next_from = first_epoch, prev_ts = 0;
	uint64_t sealed = 0;
	while (sealed < 3000) {
		uint64_t op = ordo_prng_below(&rng, 20);
		if (op < 12 && nadded < N) {
			uint16_t size = (uint16_t)ordo_prng_below(&rng, 300);
			struct wire_epoch_rec r = rec(nadded + 1, nadded + 2, size);
			int rc = seq_batcher_add(&b, &r, 0, wall, &places[nadded]);
			if (rc == 0)
				nadded++;
			else
				cr_assert_eq(rc, -ENOBUFS);
		} else if (op < 17) {
			/* mostly small steps, sometimes a pause of several slots */
			wall += op == 16 ? ordo_prng_below(&rng, 6 * SLOT)
					 : ordo_prng_below(&rng, SLOT / 3);
			uint64_t due = seq_batcher_due_in(&b, 0, wall);
			bool full = seq_batcher_inflight(&b) == 3;
			bool did = seq_batcher_tick(&b, 0, wall, false);
			cr_assert_eq(did, due == 0 && !full);
		} else {
			const struct seq_epoch_buf *e;
			while ((e = seq_batcher_next_sealed(&b)) != NULL) {
				struct wire_epoch_hdr h;
				cr_assert_eq(wire_epoch_decode_hdr(e->bytes, e->len, &h), 0);
				cr_assert_eq(h.from_epoch, next_from, "gapless cover");
				cr_assert_geq(h.epoch, h.from_epoch);
				/* sealed after its slot ended */
				cr_assert_geq(h.timestamp_ns, (h.epoch + 1) * SLOT);
				/* opened at the previous seal, numbered by that slot */
				if (prev_ts) {
					uint64_t want = prev_ts / SLOT;
					if (want < next_from)
						want = next_from;
					cr_assert_eq(h.epoch, want);
				}
				cr_assert_eq(h.first_position, first_position + checked);
				for (uint32_t k = 0; k < h.count; k++, checked++) {
					cr_assert_eq(places[checked].epoch, h.epoch);
					cr_assert_eq(places[checked].index, k);
				}
				runs += h.from_epoch < h.epoch;
				empties += h.count == 0;
				next_from = h.epoch + 1;
				prev_ts = h.timestamp_ns;
				sealed++;
			}
			while (seq_batcher_inflight(&b) > 0)
				seq_batcher_release(&b);
		}
	}
	cr_assert_gt(runs, 100);
	cr_assert_gt(empties, 100);
	cr_assert_gt(checked, 1000);
	seq_batcher_free(&b);
}

/* One group: from_epoch is the epoch itself and is 0 on the wire, as before
 * the field existed. */
Test(batcher, one_group_entries_are_single_epochs)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(1000, 4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 3, 1), 0);
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 900 * SLOT, &p), 0);
	cr_assert_eq(p.epoch, 3, "numbered by the log, not the wall clock");
	cr_assert_eq(seq_batcher_due_in(&b, 0, 900 * SLOT), SLOT);
	cr_assert(seq_batcher_tick(&b, SLOT, 0, false));
	take(&b, 3, 3, 1, 1);
	cr_assert_not(seq_batcher_tick(&b, 100 * SLOT, 0, false), "no empty epochs");
	cr_assert_eq(seq_batcher_due_in(&b, 0, 900 * SLOT), UINT64_MAX);
	seq_batcher_free(&b);
}

/* ------------------------------------------ adding a group (PROTOCOL §1.7) */

/* Takes the next sealed entry, releases it, and returns its header. */
static struct wire_epoch_hdr take_hdr(struct seq_batcher *b)
{
	const struct seq_epoch_buf *e = seq_batcher_next_sealed(b);
	cr_assert_not_null(e);
	struct wire_epoch_hdr h;
	cr_assert_eq(wire_epoch_decode_hdr(e->bytes, e->len, &h), 0);
	cr_assert_eq(h.join_group, e->hdr.join_group, "the bytes carry what the header says");
	seq_batcher_release(b);
	return h;
}

/* A group that joins later: with the floor at UINT64_MAX nothing is
 * admitted, yet empty epochs are sealed on time; at E, adds into epochs
 * below E are refused and from E on taken; a reset (new leader) keeps the
 * floor. */
Test(batcher_every, the_floor_refuses_adds_below_it_and_survives_a_reset)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	seq_batcher_set_min_epoch(&b, UINT64_MAX);
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1000 * SLOT, &p), -ENOBUFS);
	cr_assert_eq(b.next_position, 1, "nothing placed");
	cr_assert_eq(b.open.hdr.epoch, 0, "refused before opening an epoch");
	cr_assert_not(seq_batcher_tick(&b, 0, 1000 * SLOT + 1, false)); /* opens 1000 */
	cr_assert(seq_batcher_tick(&b, 0, 1001 * SLOT, false), "empty epochs are still sealed");
	cr_assert_eq(take(&b, 1, 1000, 0, 1), 1001 * SLOT);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1001 * SLOT + 5, &p), -ENOBUFS);

	/* the announcement is applied: the group joins at 1003 */
	seq_batcher_set_min_epoch(&b, 1003);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1001 * SLOT + 5, &p), -ENOBUFS, "epoch 1001 < E");
	cr_assert(seq_batcher_tick(&b, 0, 1002 * SLOT, false));
	take(&b, 1001, 1001, 0, 1);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1002 * SLOT + 5, &p), -ENOBUFS, "epoch 1002 < E");
	cr_assert(seq_batcher_tick(&b, 0, 1003 * SLOT, false));
	take(&b, 1002, 1002, 0, 1);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1003 * SLOT + 5, &p), 0);
	cr_assert_eq(p.epoch, 1003);
	cr_assert_eq(p.group_position, 1, "the group's first position is at E");

	/* a new leader continues at committed + 1; the floor stays */
	seq_batcher_set_min_epoch(&b, 1010);
	seq_batcher_reset(&b, 1003, 1);
	cr_assert_eq(b.min_epoch, 1010);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1005 * SLOT, &p), -ENOBUFS);
	cr_assert_not(seq_batcher_tick(&b, 0, 1005 * SLOT + 1, false)); /* opens 1003..1005 */
	cr_assert(seq_batcher_tick(&b, 0, 1006 * SLOT, false));
	take(&b, 1003, 1005, 0, 1);
	/* a run opened at a late tick: its number decides, not from_epoch */
	cr_assert(seq_batcher_tick(&b, 0, 1012 * SLOT, false));
	take(&b, 1006, 1006, 0, 1);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 1012 * SLOT + 1, &p), 0);
	cr_assert_eq(p.epoch, 1012);
	seq_batcher_set_min_epoch(&b, 0);
	seq_batcher_free(&b);
}

/* The floor with one group (not every-epoch): the epoch an add would go
 * into, the next one when the open epoch is full. */
Test(batcher, the_floor_counts_the_epoch_an_add_would_open)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = cfg_of(1000, ORDO_EPOCH_BYTES_MIN, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 5, 1), 0);
	seq_batcher_set_min_epoch(&b, 6);
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, 0, 0, &p), -ENOBUFS, "it would open epoch 5");
	seq_batcher_set_min_epoch(&b, 5);
	uint32_t n = 0;
	for (;; n++) {
		struct wire_epoch_rec big = rec(2, n + 2, ORDO_OPAQUE_BYTES_MAX);
		seq_batcher_set_min_epoch(&b, 5);
		if (n > 0 && wire_epoch_rec_bytes(big.size) > c.epoch_bytes - b.open.len) {
			/* this one would seal 5 and open 6 */
			seq_batcher_set_min_epoch(&b, 7);
			cr_assert_eq(seq_batcher_add(&b, &big, 0, 0, &p), -ENOBUFS);
			cr_assert_null(seq_batcher_next_sealed(&b), "refused before sealing");
			seq_batcher_set_min_epoch(&b, 6);
			cr_assert_eq(seq_batcher_add(&b, &big, 0, 0, &p), 0);
			cr_assert_eq(p.epoch, 6);
			break;
		}
		cr_assert_eq(seq_batcher_add(&b, &big, 0, 0, &p), 0);
		cr_assert_eq(p.epoch, 5);
	}
	cr_assert_gt(n, 0);
	seq_batcher_free(&b);
}

/* The leader stamps an announcement into the next epoch it seals, once,
 * with join_after = E - epoch; the same announcement again is a no-op,
 * another waits (-EBUSY); the open epoch at E or later refuses (-ETIME). */
Test(batcher_every, announce_stamps_the_next_sealed_header_once)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	cr_assert_not(seq_batcher_tick(&b, 0, 1000 * SLOT + 10, false)); /* opens 1000 */
	cr_assert_not(seq_batcher_announcing(&b, 2));
	cr_assert_eq(seq_batcher_announce(&b, 2, 1004, 1000 * SLOT + 20), 0);
	cr_assert(seq_batcher_announcing(&b, 2));
	cr_assert_not(seq_batcher_announcing(&b, 3));
	cr_assert_eq(seq_batcher_announce(&b, 2, 1004, 1000 * SLOT + 30), 0, "the same: a no-op");
	cr_assert_eq(seq_batcher_announce(&b, 2, 1005, 1000 * SLOT + 30), -EBUSY);
	cr_assert_eq(seq_batcher_announce(&b, 3, 1005, 1000 * SLOT + 30), -EBUSY);
	cr_assert(seq_batcher_tick(&b, 0, 1001 * SLOT, false));
	cr_assert(seq_batcher_announcing(&b, 2), "sealed, not yet released");
	struct wire_epoch_hdr h = take_hdr(&b);
	cr_assert_eq(h.epoch, 1000);
	cr_assert_eq(h.join_group, 3, "group 2 + 1");
	cr_assert_eq(h.join_after, 4, "1004 - 1000");
	cr_assert_not(seq_batcher_announcing(&b, 2));
	cr_assert(seq_batcher_tick(&b, 0, 1002 * SLOT, false));
	h = take_hdr(&b);
	cr_assert_eq(h.epoch, 1001);
	cr_assert_eq(h.join_group, 0, "stamped once");
	cr_assert_eq(h.join_after, 0);

	/* the open epoch is 1002: E = 1002 is too late, 1003 is not */
	cr_assert_eq(seq_batcher_announce(&b, 2, 1002, 1002 * SLOT + 1), -ETIME);
	cr_assert_eq(seq_batcher_announce(&b, 2, 1001, 1002 * SLOT + 1), -ETIME);
	cr_assert_eq(seq_batcher_announce(&b, 2, 0, 1002 * SLOT + 1), -EINVAL);
	cr_assert_eq(seq_batcher_announce(&b, ORDO_GROUPS_MAX, 1009, 1002 * SLOT + 1), -EINVAL);
	cr_assert_eq(seq_batcher_announce(&b, 2, 1002 + (1ull << 32), 1002 * SLOT + 1), -EINVAL,
		     "join_after must fit 32 bits");
	cr_assert_eq(seq_batcher_announce(&b, 4, 1003, 1002 * SLOT + 1), 0);
	cr_assert(seq_batcher_tick(&b, 0, 1003 * SLOT, false));
	h = take_hdr(&b);
	cr_assert_eq(h.epoch, 1002);
	cr_assert_eq(h.join_group, 5);
	cr_assert_eq(h.join_after, 1, "at least 1");
	seq_batcher_free(&b);
}

/* An announcement whose epoch is not sealed before E is dropped, never
 * stamped with join_after 0; a reset drops a waiting one. */
Test(batcher_every, announce_missed_or_reset_is_dropped)
{
	struct seq_batcher b;
	struct seq_batcher_cfg c = every_cfg(4096, 4);
	cr_assert_eq(seq_batcher_init(&b, &c, 1, 1), 0);
	/* none open: an add at this time would open 1000 */
	cr_assert_eq(seq_batcher_announce(&b, 1, 1002, 1000 * SLOT), 0);
	/* but the first tick comes late and opens 1005, sealed at its end */
	cr_assert_not(seq_batcher_tick(&b, 0, 1005 * SLOT, false));
	cr_assert(seq_batcher_tick(&b, 0, 1006 * SLOT, false));
	struct wire_epoch_hdr h = take_hdr(&b);
	cr_assert_eq(h.epoch, 1005);
	cr_assert_eq(h.join_group, 0);
	cr_assert_eq(b.ann_missed, 1);
	cr_assert_not(seq_batcher_announcing(&b, 1));
	cr_assert_eq(seq_batcher_announce(&b, 1, 1002, 1006 * SLOT), -ETIME, "the retry learns");

	cr_assert_eq(seq_batcher_announce(&b, 1, 1010, 1006 * SLOT), 0);
	seq_batcher_reset(&b, 1007, 1);
	cr_assert_not(seq_batcher_announcing(&b, 1));
	cr_assert_not(seq_batcher_tick(&b, 0, 1007 * SLOT, false)); /* opens 1007 */
	cr_assert(seq_batcher_tick(&b, 0, 1008 * SLOT, false));
	h = take_hdr(&b);
	cr_assert_eq(h.epoch, 1007);
	cr_assert_eq(h.join_group, 0);
	seq_batcher_free(&b);
}
