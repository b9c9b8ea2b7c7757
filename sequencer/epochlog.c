/* A bounded in-memory ring of committed epochs; see epochlog.h. Epochs are
 * stored contiguously; one that would cross the end of the buffer starts at
 * offset 0 and the skipped tail bytes count as used until the epochs before
 * them are forgotten. */
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

static struct seq_epochlog_ent *ent(const struct seq_epochlog *l, uint64_t epoch)
{
	return &l->ents[epoch % l->epochs_max];
}

/* Forgets the oldest epoch. */
static void drop_oldest(struct seq_epochlog *l)
{
	ORDO_ASSERT(l->first_epoch != 0);
	if (l->first_epoch == l->last_epoch) {
		l->first_epoch = l->last_epoch = 0;
		l->head = l->tail = l->used = 0;
		return;
	}
	uint64_t next = ent(l, l->first_epoch + 1)->offset;
	uint64_t freed = next >= l->head ? next - l->head : l->bytes_max - l->head + next;
	ORDO_ASSERT(freed <= l->used);
	l->used -= freed;
	l->head = next;
	l->first_epoch++;
}

void seq_epochlog_append(struct seq_epochlog *l, uint64_t epoch, const uint8_t *bytes, uint32_t len)
{
	ORDO_ASSERT(len > 0 && len <= l->bytes_max);
	ORDO_ASSERT(l->last_epoch == 0 || epoch == l->last_epoch + 1);
	while (l->first_epoch != 0 && l->last_epoch - l->first_epoch + 1 >= l->epochs_max)
		drop_oldest(l);
	for (;;) {
		uint64_t off = l->tail;
		uint64_t waste = 0;
		if (off + len > l->bytes_max) {
			waste = l->bytes_max - off;
			off = 0;
		}
		if (l->first_epoch == 0 || l->used + waste + len <= l->bytes_max) {
			if (l->first_epoch == 0) {
				off = 0;
				waste = 0;
				l->head = 0;
				l->used = 0;
				l->first_epoch = epoch;
			}
			memcpy(l->buf + off, bytes, len);
			struct seq_epochlog_ent *e = ent(l, epoch);
			e->offset = off;
			e->len = len;
			l->used += waste + len;
			l->tail = (off + len) % l->bytes_max;
			l->last_epoch = epoch;
			return;
		}
		drop_oldest(l);
	}
}

int seq_epochlog_get(const struct seq_epochlog *l, uint64_t epoch, const uint8_t **bytes,
		     uint32_t *len)
{
	if (l->first_epoch == 0 || epoch < l->first_epoch || epoch > l->last_epoch)
		return -ENOENT;
	const struct seq_epochlog_ent *e = ent(l, epoch);
	*bytes = l->buf + e->offset;
	*len = e->len;
	return 0;
}
