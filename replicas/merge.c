/* The replica's epoch reassembly and merge; see merge.h. */
#include "merge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"

/* Slots and buffers of group g. */
static int alloc_group(struct rep_merge *m, uint32_t g)
{
	size_t n = m->slots;
	m->slot[g] = calloc(n, sizeof *m->slot[g]);
	m->mem[g] = malloc(n * ((size_t)m->epoch_bytes + m->frags_max));
	if (!m->slot[g] || !m->mem[g]) {
		free(m->slot[g]);
		free(m->mem[g]);
		m->slot[g] = NULL;
		m->mem[g] = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		m->slot[g][i].bytes = m->mem[g] + i * m->epoch_bytes;
		m->slot[g][i].got = m->mem[g] + n * m->epoch_bytes + i * m->frags_max;
	}
	return 0;
}

int rep_merge_init(struct rep_merge *m, uint32_t groups, uint32_t slots, uint32_t epoch_bytes,
		   uint32_t frag_bytes)
{
	memset(m, 0, sizeof *m);
	if (groups == 0 || groups > ORDO_GROUPS_MAX || slots == 0 || frag_bytes == 0 ||
	    epoch_bytes < ORDO_EPOCH_HDR_BYTES)
		return -EINVAL;
	m->slots = slots;
	m->epoch_bytes = epoch_bytes;
	m->frag_bytes = frag_bytes;
	m->frags_max = (epoch_bytes + frag_bytes - 1) / frag_bytes;
	int rc = rep_merge_grow(m, groups);
	if (rc)
		rep_merge_free(m);
	return rc;
}

int rep_merge_grow(struct rep_merge *m, uint32_t groups)
{
	if (groups > ORDO_GROUPS_MAX)
		return -EINVAL;
	for (uint32_t g = m->groups; g < groups; g++) {
		if (alloc_group(m, g) != 0) {
			for (uint32_t k = m->groups; k < g; k++) {
				free(m->slot[k]);
				free(m->mem[k]);
				m->slot[k] = NULL;
				m->mem[k] = NULL;
			}
			return -ENOMEM;
		}
	}
	if (groups > m->groups)
		m->groups = groups;
	return 0;
}

void rep_merge_free(struct rep_merge *m)
{
	for (uint32_t g = 0; g < ORDO_GROUPS_MAX; g++) {
		free(m->slot[g]);
		free(m->mem[g]);
	}
	memset(m, 0, sizeof *m);
}

static struct rep_merge_slot *slot_of(const struct rep_merge *m, uint32_t g, uint64_t epoch)
{
	return &m->slot[g][epoch % m->slots];
}

static bool complete(const struct rep_merge_slot *s)
{
	return s->epoch != 0 && s->have == s->nfrags;
}

/* The first epoch a complete entry covers (its header; 0 means its epoch). */
static uint64_t from_of(const struct rep_merge_slot *s)
{
	uint64_t from = ordo_ld64(s->bytes + 40);
	return from ? from : s->epoch;
}

int rep_merge_fragment(struct rep_merge *m, const struct wire_epoch_data *d, uint64_t merged)
{
	if (d->group >= m->groups || d->total_bytes > m->epoch_bytes)
		return -EBADMSG;
	rep_merge_committed(m, d->group, d->committed_epoch);
	/* Entries ending at or before the group's floor are never merged: a
	 * joining group's before its join epoch, or everything of a group not
	 * (yet) merged. They neither take nor keep a slot. */
	uint64_t old = merged > m->floor[d->group] ? merged : m->floor[d->group];
	if (d->epoch <= old)
		return 0; /* applied, or an empty part of a run already passed */
	struct rep_merge_slot *s = slot_of(m, d->group, d->epoch);
	if (s->epoch != d->epoch) {
		/* The entry ending earlier is needed first: it keeps the slot. */
		if (s->epoch > old && s->epoch < d->epoch)
			return 0;
		s->epoch = d->epoch;
		s->total = d->total_bytes;
		s->nfrags = (d->total_bytes + m->frag_bytes - 1) / m->frag_bytes;
		s->have = 0;
		memset(s->got, 0, s->nfrags);
	}
	if (s->total != d->total_bytes)
		return -EBADMSG;
	uint32_t f = d->offset / m->frag_bytes;
	if (f >= s->nfrags || s->got[f])
		return 0; /* duplicate fragment */
	memcpy(s->bytes + d->offset, d->data, d->data_bytes);
	s->got[f] = 1;
	s->have++;
	rep_merge_committed(m, d->group, d->epoch);
	return s->have == s->nfrags ? 1 : 0;
}

void rep_merge_set_floor(struct rep_merge *m, uint32_t g, uint64_t floor)
{
	if (g >= m->groups || m->floor[g] == floor)
		return;
	m->floor[g] = floor;
	for (uint32_t i = 0; i < m->slots; i++)
		if (m->slot[g][i].epoch <= floor)
			m->slot[g][i].epoch = 0;
}

void rep_merge_committed(struct rep_merge *m, uint32_t g, uint64_t epoch)
{
	if (g < m->groups && epoch > m->known_committed[g])
		m->known_committed[g] = epoch;
}

bool rep_merge_covering(const struct rep_merge *m, uint32_t g, uint64_t x, const uint8_t **bytes,
			uint32_t *len, uint64_t *end_epoch)
{
	const struct rep_merge_slot *hit = NULL;
	const struct rep_merge_slot *s = slot_of(m, g, x);
	if (s->epoch == x && complete(s) && from_of(s) <= x) {
		hit = s; /* the usual case: an entry of one epoch */
	} else {
		/* A run ending later: look through the group's slots. */
		const struct rep_merge_slot *base = m->slot[g];
		for (uint32_t i = 0; i < m->slots && !hit; i++)
			if (complete(&base[i]) && base[i].epoch > x && from_of(&base[i]) <= x)
				hit = &base[i];
	}
	if (!hit)
		return false;
	*bytes = hit->bytes;
	*len = hit->total;
	*end_epoch = hit->epoch;
	return true;
}

bool rep_merge_next_from(const struct rep_merge *m, uint64_t merged, const uint64_t *from,
			 struct rep_merge_step *st, uint32_t *waiting)
{
	uint64_t end[ORDO_GROUPS_MAX];
	bool in[ORDO_GROUPS_MAX] = {false};
	uint64_t min = UINT64_MAX;
	/* The groups merged now: each needs its entry covering merged + 1. */
	for (uint32_t g = 0; g < m->groups; g++) {
		st->bytes[g] = NULL;
		st->len[g] = 0;
		if (from[g] > merged + 1)
			continue;
		if (!rep_merge_covering(m, g, merged + 1, &st->bytes[g], &st->len[g], &end[g])) {
			if (waiting)
				*waiting = g;
			return false;
		}
		in[g] = true;
		if (end[g] < min)
			min = end[g];
	}
	if (min == UINT64_MAX)
		return false; /* no group merged at all */
	/* A group joining within the step: its entry covering its join epoch. */
	for (uint32_t g = 0; g < m->groups; g++) {
		if (in[g] || from[g] == UINT64_MAX || from[g] > min)
			continue;
		if (!rep_merge_covering(m, g, from[g], &st->bytes[g], &st->len[g], &end[g])) {
			if (waiting)
				*waiting = g;
			return false;
		}
		in[g] = true;
		if (end[g] < min)
			min = end[g];
	}
	st->epoch = min;
	st->contributing = 0;
	for (uint32_t g = 0; g < m->groups; g++) {
		if (in[g] && end[g] == min) {
			st->contributing++;
		} else {
			st->bytes[g] = NULL;
			st->len[g] = 0;
		}
	}
	return true;
}

bool rep_merge_next(const struct rep_merge *m, uint64_t merged, struct rep_merge_step *st,
		    uint32_t *waiting)
{
	static const uint64_t all[ORDO_GROUPS_MAX]; /* every group merged from the start */
	return rep_merge_next_from(m, merged, all, st, waiting);
}

void rep_merge_release(struct rep_merge *m, const struct rep_merge_step *st)
{
	for (uint32_t g = 0; g < m->groups; g++) {
		struct rep_merge_slot *s = slot_of(m, g, st->epoch);
		if (st->bytes[g] && s->epoch == st->epoch)
			s->epoch = 0;
	}
}

void rep_merge_forget(struct rep_merge *m, uint64_t merged)
{
	for (uint32_t g = 0; g < m->groups; g++)
		for (uint32_t i = 0; i < m->slots; i++)
			if (m->slot[g][i].epoch <= merged)
				m->slot[g][i].epoch = 0;
}

bool rep_merge_gap(const struct rep_merge *m, uint32_t g, uint64_t merged, uint32_t max,
		   uint64_t *from, uint32_t *count)
{
	uint64_t x = merged + 1;
	const uint8_t *b;
	uint32_t len;
	uint64_t end;
	/* Only what the merge can hold: an entry ending past merged + slots
	 * would lose its slot to one ending earlier, and the repair would
	 * back off for nothing (found by the simulator: ordo sim --groups 2). */
	uint64_t last = m->known_committed[g];
	if (last > merged + m->slots)
		last = merged + m->slots;
	/* Skip what is already held: ask only from the first epoch missing. */
	while (x <= last && rep_merge_covering(m, g, x, &b, &len, &end))
		x = end + 1;
	if (x > last)
		return false;
	uint64_t want = last - x + 1;
	*from = x;
	*count = (uint32_t)(want < max ? want : max);
	return true;
}
