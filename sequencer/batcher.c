/*
 * The epoch batcher: see batcher.h for the contract.
 *
 * What lives here: filling the open epoch, sealing it (on time, on bytes or
 * forced), the ring of sealed epochs awaiting commit, and the numbering of
 * epochs and positions. What does not: the session table (the driver admits
 * before it adds), the log, the clock.
 *
 * Buffers: one region of (inflight + 1) epoch buffers. Sealing swaps the open
 * buffer with the free buffer of the next ring slot, so no epoch is copied.
 * Epoch numbers are consecutive from first_epoch (only non-empty epochs are
 * sealed) and positions are gapless from first_position across epochs.
 */
#include "batcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/constants.h"
#include "common/ordo_assert.h"

#define NS_PER_US 1000ull

static size_t ring_bytes(const struct seq_batcher_cfg *cfg)
{
	size_t b = (size_t)cfg->inflight * sizeof(struct seq_epoch_buf);
	return (b + 63u) & ~(size_t)63u;
}

static bool cfg_valid(const struct seq_batcher_cfg *cfg)
{
	return cfg->epoch_us >= ORDO_EPOCH_US_MIN && cfg->epoch_us <= ORDO_EPOCH_US_MAX &&
	       cfg->epoch_bytes >= ORDO_EPOCH_BYTES_MIN &&
	       cfg->epoch_bytes <= ORDO_EPOCH_BYTES_MAX && cfg->inflight >= 1 &&
	       cfg->inflight <= ORDO_EPOCHS_INFLIGHT_MAX;
}

size_t seq_batcher_bytes(const struct seq_batcher_cfg *cfg)
{
	if (!cfg_valid(cfg))
		return 0;
	return ring_bytes(cfg) + ((size_t)cfg->inflight + 1) * cfg->epoch_bytes;
}

static void open_reset(struct seq_batcher *b)
{
	b->open.len = ORDO_EPOCH_HDR_BYTES;
	memset(&b->open.hdr, 0, sizeof b->open.hdr);
	b->open_since_ns = 0;
}

int seq_batcher_init(struct seq_batcher *b, const struct seq_batcher_cfg *cfg, uint64_t first_epoch,
		     uint64_t first_position)
{
	memset(b, 0, sizeof *b);
	if (!cfg_valid(cfg) || first_epoch == 0 || first_position == 0)
		return -EINVAL;
	size_t bytes = seq_batcher_bytes(cfg);
	uint8_t *mem = calloc(1, bytes);
	if (mem == NULL)
		return -ENOMEM;
	memset(mem, 0, bytes); /* pre-fault: the hot path takes no page faults */
	b->cfg = *cfg;
	b->mem = mem;
	b->ring = (struct seq_epoch_buf *)mem;
	uint8_t *bufs = mem + ring_bytes(cfg);
	for (uint32_t i = 0; i < cfg->inflight; i++)
		b->ring[i].bytes = bufs + (size_t)i * cfg->epoch_bytes;
	b->open.bytes = bufs + (size_t)cfg->inflight * cfg->epoch_bytes;
	open_reset(b);
	b->next_epoch = first_epoch;
	b->next_position = first_position;
	return 0;
}

void seq_batcher_reset(struct seq_batcher *b, uint64_t first_epoch, uint64_t first_position)
{
	ORDO_ASSERT(first_epoch > 0 && first_position > 0);
	b->ring_head = b->ring_count = b->ring_handed = 0;
	open_reset(b);
	b->next_epoch = first_epoch;
	b->next_position = first_position;
}

void seq_batcher_free(struct seq_batcher *b)
{
	free(b->mem);
	memset(b, 0, sizeof *b);
}

/* Seals the non-empty open epoch into the next ring slot (there is room). */
static void seal(struct seq_batcher *b, uint64_t wall_ns)
{
	ORDO_ASSERT(b->open.hdr.count > 0);
	ORDO_ASSERT(b->ring_count < b->cfg.inflight);
	ORDO_ASSERT(b->open.hdr.epoch == b->next_epoch);
	ORDO_ASSERT(b->open.hdr.first_position + b->open.hdr.count == b->next_position);

	b->open.hdr.timestamp_ns = wall_ns;
	b->open.hdr.bytes = b->open.len;
	b->open.hdr.group = b->cfg.group;
	wire_epoch_hdr_encode(b->open.bytes, &b->open.hdr);

	struct seq_epoch_buf *slot = &b->ring[(b->ring_head + b->ring_count) % b->cfg.inflight];
	uint8_t *free_bytes = slot->bytes;
	*slot = b->open;
	b->ring_count++;
	b->next_epoch++;
	b->open.bytes = free_bytes;
	open_reset(b);
}

int seq_batcher_add(struct seq_batcher *b, const struct wire_epoch_rec *r, uint64_t mono_ns,
		    uint64_t wall_ns, struct wire_place *place)
{
	uint32_t need = wire_epoch_rec_bytes(r->size);
	/* Cannot happen for a valid request (epoch_bytes >= MIN holds the largest). */
	if (ORDO_UNLIKELY(r->size > ORDO_OPAQUE_BYTES_MAX ||
			  need > b->cfg.epoch_bytes - ORDO_EPOCH_HDR_BYTES))
		return -EMSGSIZE;
	if (need > b->cfg.epoch_bytes - b->open.len) {
		/* The open epoch is non-empty here (an empty one holds any record). */
		if (b->ring_count == b->cfg.inflight)
			return -ENOBUFS;
		seal(b, wall_ns);
	}
	if (b->open.hdr.count == 0) {
		b->open_since_ns = mono_ns;
		b->open.hdr.epoch = b->next_epoch;
		b->open.hdr.first_position = b->next_position;
	}
	uint32_t wrote = wire_epoch_rec_encode(b->open.bytes + b->open.len, r);
	ORDO_ASSERT(wrote == need);
	b->open.len += need;

	place->group = b->cfg.group;
	place->index = b->open.hdr.count;
	place->epoch = b->open.hdr.epoch;
	place->group_position = b->next_position;
	b->open.hdr.count++;
	b->next_position++;
	return 0;
}

bool seq_batcher_tick(struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns, bool force)
{
	if (b->open.hdr.count == 0)
		return false;
	if (!force && seq_batcher_due_in(b, mono_ns) != 0)
		return false;
	if (b->ring_count == b->cfg.inflight)
		return false;
	seal(b, wall_ns);
	return true;
}

uint64_t seq_batcher_due_in(const struct seq_batcher *b, uint64_t mono_ns)
{
	if (b->open.hdr.count == 0)
		return UINT64_MAX;
	uint64_t due = b->open_since_ns + (uint64_t)b->cfg.epoch_us * NS_PER_US;
	return mono_ns >= due ? 0 : due - mono_ns;
}

const struct seq_epoch_buf *seq_batcher_next_sealed(struct seq_batcher *b)
{
	if (b->ring_handed == b->ring_count)
		return NULL;
	const struct seq_epoch_buf *e = &b->ring[(b->ring_head + b->ring_handed) % b->cfg.inflight];
	b->ring_handed++;
	return e;
}

const struct seq_epoch_buf *seq_batcher_oldest(const struct seq_batcher *b)
{
	return b->ring_count ? &b->ring[b->ring_head] : NULL;
}

void seq_batcher_release(struct seq_batcher *b)
{
	/* Releasing an epoch the driver was never handed is a driver bug. */
	ORDO_ASSERT(b->ring_count > 0 && b->ring_handed > 0);
	b->ring_head = (b->ring_head + 1) % b->cfg.inflight;
	b->ring_count--;
	b->ring_handed--;
}

uint32_t seq_batcher_inflight(const struct seq_batcher *b)
{
	return b->ring_count;
}
