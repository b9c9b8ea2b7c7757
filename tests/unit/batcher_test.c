/*
 * Unit tests of sequencer/batcher.c: sealing on time (exactly at epoch_us)
 * and on bytes, gapless positions and consecutive epochs, the sealed ring
 * (-ENOBUFS when full, each epoch handed out once, in order), and that every
 * sealed epoch decodes (wire_epoch_decode_hdr / wire_epoch_next_rec) to
 * exactly what was added.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

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
	cr_assert_eq(seq_batcher_due_in(&b, 0), UINT64_MAX);
	cr_assert_not(seq_batcher_tick(&b, 1ull << 40, 0, false));
	cr_assert_not(seq_batcher_tick(&b, 0, 0, true), "empty epochs are not sealed");

	const uint64_t t0 = 5 * 1000 * US;
	struct wire_place p;
	struct wire_epoch_rec r = rec(1, 1, 0);
	cr_assert_eq(seq_batcher_add(&b, &r, t0, 111, &p), 0);
	/* a later request does not move the deadline */
	r = rec(1, 2, 8);
	cr_assert_eq(seq_batcher_add(&b, &r, t0 + 500 * US, 112, &p), 0);
	cr_assert_eq(seq_batcher_due_in(&b, t0), 1000 * US);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US - 1), 1);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US), 0);
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 5000 * US), 0);
	cr_assert_not(seq_batcher_tick(&b, t0 + 1000 * US - 1, 200, false));
	cr_assert_null(seq_batcher_next_sealed(&b));
	cr_assert(seq_batcher_tick(&b, t0 + 1000 * US, 777, false));
	cr_assert_eq(seq_batcher_due_in(&b, t0 + 1000 * US), UINT64_MAX);
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
	cr_assert_eq(seq_batcher_due_in(&b, 7), 1000 * US);
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
