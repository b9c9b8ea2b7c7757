/* The replica state machine; see apply.h. */
#include "apply.h"

#include <string.h>

#include "common/ordo_assert.h"
#include "common/plant.h"

int rep_state_init(struct rep_state *s, const struct ledger_cfg *cfg)
{
	memset(s, 0, sizeof *s);
	s->next_epoch = 1;
	s->group_known = ~0u; /* a new state: every group starts at 0 */
	return ledger_init(&s->ledger, cfg);
}

void rep_state_free(struct rep_state *s)
{
	ledger_free(&s->ledger);
}

void rep_state_copy(struct rep_state *dst, const struct rep_state *src)
{
	struct ledger *d = &dst->ledger;
	const struct ledger *l = &src->ledger;
	ORDO_ASSERT(d->accounts_cap == l->accounts_cap && d->transfers_cap == l->transfers_cap);
	memcpy(d->accounts, l->accounts, l->accounts_cap * sizeof *l->accounts);
	memcpy(d->transfers, l->transfers, l->transfers_cap * sizeof *l->transfers);
	d->accounts_count = l->accounts_count;
	d->transfers_count = l->transfers_count;
	memcpy(dst->digest, src->digest, 16);
	dst->applied_position = src->applied_position;
	dst->applied_epoch = src->applied_epoch;
	dst->next_epoch = src->next_epoch;
	dst->requests_applied = src->requests_applied;
	dst->steps = src->steps;
	memcpy(dst->group_position, src->group_position, sizeof dst->group_position);
	dst->group_known = src->group_known;
	dst->groups_active = src->groups_active;
	dst->join_group = src->join_group;
	dst->join_epoch = src->join_epoch;
	dst->joins_ignored = src->joins_ignored;
}

/* Applies one checked epoch at the next global positions. */
static void apply_records(struct rep_state *s, const uint8_t *bytes, uint32_t len,
			  const struct wire_epoch_hdr *h, rep_apply_fn *fn, void *ctx)
{
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec er;
	uint64_t pos = s->applied_position + 1;
	int rc;
	uint8_t rec_bytes[ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX];
	while ((rc = wire_epoch_next_rec(bytes, len, &off, &er)) == 1) {
		uint8_t data[32];
		enum wire_result res = ledger_apply(&s->ledger, er.op, er.payload, er.size, data);
		struct wire_entry_rec ent = {
		    .position = pos,
		    .epoch = h->epoch,
		    .client_id = er.client_id,
		    .request_number = er.request_number,
		    .op = er.op,
		    .size = er.size,
		    .result = res,
		    .payload = er.payload,
		};
		bool has_data = er.op == WIRE_OP_LOOKUP && res == WIRE_R_OK;
		if (fn)
			fn(ctx, h, &ent, &er, s->digest, has_data ? data : NULL);
		uint32_t rlen = wire_entry_bytes(er.size);
		wire_entry_encode(rec_bytes, &ent);
		ledger_digest_step(s->digest, rec_bytes, rlen);
		s->applied_position = pos++;
		s->requests_applied++;
	}
	ORDO_ASSERT(rc == 0); /* decode_hdr validated every record */
}

bool rep_state_apply_epoch(struct rep_state *s, const uint8_t *bytes, uint32_t len,
			   rep_apply_fn *fn, void *ctx)
{
	struct wire_epoch_hdr h;
	if (wire_epoch_decode_hdr(bytes, len, &h) != 0)
		return false;
	bool in_order = h.epoch == s->next_epoch &&
			(h.count == 0 || h.first_position == s->applied_position + 1);
	if (ORDO_PLANTED(ORDO_PLANT_APPLY_OUT_OF_ORDER))
		in_order = h.epoch >= s->next_epoch; /* planted: any later epoch, as it comes */
	if (!in_order)
		return false;
	apply_records(s, bytes, len, &h, fn, ctx);
	s->group_position[0] = s->applied_position;
	s->group_known = 1;
	s->applied_epoch = h.epoch;
	s->next_epoch = h.epoch + 1;
	s->steps++;
	return true;
}

void rep_state_found(struct rep_state *s, uint32_t n)
{
	if (s->groups_active == 0)
		s->groups_active = n >= 32 ? ~0u : (1u << n) - 1;
}

/* groups_active 0: never set, every group merged (the default). */
static bool is_active(const struct rep_state *s, uint32_t g)
{
	return s->groups_active == 0 || (g < 32 && (s->groups_active & (1u << g)));
}

uint64_t rep_state_group_from(const struct rep_state *s, uint32_t g)
{
	if (is_active(s, g))
		return 0;
	if (s->join_group == g + 1)
		return s->join_epoch;
	return UINT64_MAX;
}

bool rep_state_apply_merged(struct rep_state *s, uint64_t epoch, const uint8_t *const *epochs,
			    const uint32_t *lens, uint32_t groups, rep_apply_fn *fn, void *ctx)
{
	struct wire_epoch_hdr h[ORDO_GROUPS_MAX];
	if (groups == 0 || groups > ORDO_GROUPS_MAX || epoch <= s->applied_epoch)
		return false;
	/* Every group's entry checks before anything is applied. */
	uint32_t present = 0;
	for (uint32_t g = 0; g < groups; g++) {
		if (!epochs[g])
			continue;
		present++;
		uint64_t from = rep_state_group_from(s, g);
		/* an active group's entry covers every epoch since the last
		 * merged one; a joining group's, every epoch since it joins */
		uint64_t bound = from == 0 ? s->applied_epoch + 1 : from;
		if (from == UINT64_MAX || epoch < from ||
		    wire_epoch_decode_hdr(epochs[g], lens[g], &h[g]) != 0 || h[g].epoch != epoch ||
		    h[g].group != g || h[g].from_epoch > bound)
			return false;
		bool known = from != 0 || (s->group_known & (1u << g)); /* a joiner starts at 0 */
		uint64_t base = from != 0 ? 0 : s->group_position[g];
		if (known && h[g].count != 0 && h[g].first_position != base + 1)
			return false;
	}
	if (present == 0)
		return false;
	/* The pending group joins from its join epoch: position 0, known. */
	if (s->join_group && epoch >= s->join_epoch) {
		uint32_t g = s->join_group - 1u;
		s->groups_active |= 1u << g;
		s->group_position[g] = 0;
		s->group_known |= 1u << g;
		s->join_group = 0;
		s->join_epoch = 0;
	}
	for (uint32_t g = 0; g < groups; g++) {
		if (!epochs[g])
			continue;
		if (!(s->group_known & (1u << g)) && h[g].first_position > 0) {
			s->group_position[g] = h[g].first_position - 1;
			s->group_known |= 1u << g;
		}
		apply_records(s, epochs[g], lens[g], &h[g], fn, ctx);
		s->group_position[g] += h[g].count;
	}
	/* Join announcements: the first one pending wins; a repeat of it (every
	 * group announces it) or of a group already merged changes nothing. */
	for (uint32_t g = 0; g < groups; g++) {
		if (!epochs[g] || h[g].join_group == 0)
			continue;
		uint32_t j = h[g].join_group - 1u;
		uint64_t at = h[g].epoch + h[g].join_after;
		if (is_active(s, j) || (s->join_group == j + 1 && s->join_epoch == at))
			continue;
		if (s->join_group == 0 && at > epoch && j < 32) {
			s->join_group = (uint16_t)(j + 1);
			s->join_epoch = at;
		} else {
			s->joins_ignored++;
		}
	}
	s->applied_epoch = epoch;
	s->next_epoch = epoch + 1;
	s->steps++;
	return true;
}
