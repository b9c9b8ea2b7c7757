/* A bounded in-memory ring of committed entries; see epochlog.h. Entries are
 * stored contiguously; one that would cross the end of the buffer starts at
 * offset 0 and the skipped tail bytes count as used until the entries before
 * them are forgotten. The index is a ring in append order: entry k (k-th
 * append since init) lives at ents[k % epochs_max]; the retained ones are
 * appended - count .. appended - 1, their epochs strictly increasing. */
#include "epochlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int seq_epochlog_init(struct seq_epochlog *l, uint64_t bytes_max, uint32_t epochs_max)
{
	memset(l, 0, sizeof *l);
	if (bytes_max == 0 || epochs_max == 0)
		return -EINVAL;
	l->buf = malloc(bytes_max);
	l->ents = calloc(epochs_max, sizeof *l->ents);
	if (!l->buf || !l->ents) {
		seq_epochlog_free(l);
		return -ENOMEM;
	}
	l->bytes_max = bytes_max;
	l->epochs_max = epochs_max;
	return 0;
}

void seq_epochlog_free(struct seq_epochlog *l)
{
	free(l->buf);
	free(l->ents);
	memset(l, 0, sizeof *l);
}

/* The i-th retained entry, 0 the oldest (i < count). */
static struct seq_epochlog_ent *ent(const struct seq_epochlog *l, uint32_t i)
{
	return &l->ents[(l->appended - l->count + i) % l->epochs_max];
}

/* Forgets the oldest entry. */
static void drop_oldest(struct seq_epochlog *l)
{
	ORDO_ASSERT(l->count != 0);
	if (l->count == 1) {
		l->count = 0;
		l->first_epoch = l->last_epoch = 0;
		l->head = l->tail = l->used = 0;
		return;
	}
	uint64_t next = ent(l, 1)->offset;
	uint64_t freed = next >= l->head ? next - l->head : l->bytes_max - l->head + next;
	ORDO_ASSERT(freed <= l->used);
	l->used -= freed;
	l->head = next;
	l->first_epoch = ent(l, 0)->epoch + 1;
	l->count--;
}

void seq_epochlog_append(struct seq_epochlog *l, uint64_t from_epoch, uint64_t epoch,
			 const uint8_t *bytes, uint32_t len)
{
	ORDO_ASSERT(len > 0 && len <= l->bytes_max);
	ORDO_ASSERT(from_epoch > 0 && from_epoch <= epoch);
	ORDO_ASSERT(l->count == 0 || from_epoch == l->last_epoch + 1);
	while (l->count >= l->epochs_max)
		drop_oldest(l);
	for (;;) {
		uint64_t off = l->tail;
		uint64_t waste = 0;
		if (off + len > l->bytes_max) {
			waste = l->bytes_max - off;
			off = 0;
		}
		if (l->count == 0 || l->used + waste + len <= l->bytes_max) {
			if (l->count == 0) {
				off = 0;
				waste = 0;
				l->head = 0;
				l->used = 0;
				l->first_epoch = from_epoch;
			}
			memcpy(l->buf + off, bytes, len);
			l->count++;
			l->appended++;
			struct seq_epochlog_ent *e = ent(l, l->count - 1);
			e->offset = off;
			e->epoch = epoch;
			e->len = len;
			l->used += waste + len;
			l->tail = (off + len) % l->bytes_max;
			l->last_epoch = epoch;
			return;
		}
		drop_oldest(l);
	}
}

int seq_epochlog_get_entry(const struct seq_epochlog *l, uint64_t x, const uint8_t **bytes,
			   uint32_t *len, uint64_t *from, uint64_t *to)
{
	if (l->count == 0 || x < l->first_epoch || x > l->last_epoch)
		return -ENOENT;
	/* The first retained entry whose epoch is >= x covers x: the one before
	 * it (if any) ends below x, and it starts right after that one. */
	uint32_t lo = 0, hi = l->count - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (ent(l, mid)->epoch < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct seq_epochlog_ent *e = ent(l, lo);
	ORDO_ASSERT(e->epoch >= x);
	*bytes = l->buf + e->offset;
	*len = e->len;
	*from = lo == 0 ? l->first_epoch : ent(l, lo - 1)->epoch + 1;
	*to = e->epoch;
	ORDO_ASSERT(*from <= x);
	return 0;
}

int seq_epochlog_get(const struct seq_epochlog *l, uint64_t x, const uint8_t **bytes, uint32_t *len)
{
	uint64_t from, to;
	return seq_epochlog_get_entry(l, x, bytes, len, &from, &to);
}
