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
 * Positions are gapless from first_position across epochs. Epoch numbers:
 * with one group, consecutive from first_epoch (only non-empty epochs are
 * sealed); every_epoch, each sealed entry covers from_epoch .. epoch with
 * from_epoch the successor of the previous entry's epoch (first_epoch for
 * the first) and epoch the wall-clock slot it opened in (batcher.h), so the
 * entries cover every number from first_epoch on, each exactly once.
 *
 * The floor (min_epoch) is checked against the number of the epoch an add
 * would go into, before anything changes; announcements are stamped by
 * seal(), the one place a header is finished.
 */
#include "batcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/constants.h"
#include "common/ordo_assert.h"

#define NS_PER_US 1000ull

static uint64_t slot_ns(const struct seq_batcher *b)
{
	return (uint64_t)b->cfg.epoch_us * NS_PER_US;
}

/* every_epoch: the number of an epoch opened at wall_ns (never behind the
 * last sealed one, even if the wall clock stepped back). */
static uint64_t slot_epoch(const struct seq_batcher *b, uint64_t wall_ns)
{
	uint64_t n = wall_ns / slot_ns(b);
	return n > b->next_epoch ? n : b->next_epoch;
}

/* every_epoch: wall time at which epoch's slot ends. */
static uint64_t slot_end_ns(const struct seq_batcher *b, uint64_t epoch)
{
	return (epoch + 1) * slot_ns(b);
}

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
	b->ann_group = 0;
	b->ann_first_epoch = 0;
	/* min_epoch stays: it is committed state (the group's join epoch) */
}

void seq_batcher_free(struct seq_batcher *b)
{
	free(b->mem);
	memset(b, 0, sizeof *b);
}

/* Opens the (empty) open epoch as number epoch: it covers next_epoch ..
 * epoch and its records start at next_position. */
static void open_epoch(struct seq_batcher *b, uint64_t epoch, uint64_t mono_ns)
{
	ORDO_ASSERT(b->open.hdr.count == 0 && epoch >= b->next_epoch);
	b->open_since_ns = mono_ns;
	b->open.hdr.epoch = epoch;
	b->open.hdr.from_epoch = b->next_epoch;
	b->open.hdr.first_position = b->next_position;
}

/* Seals the open epoch (non-empty unless every_epoch) into the next ring
 * slot (there is room). */
static void seal(struct seq_batcher *b, uint64_t wall_ns)
{
	ORDO_ASSERT(b->open.hdr.count > 0 || (b->cfg.every_epoch && b->open.hdr.epoch != 0));
	ORDO_ASSERT(b->ring_count < b->cfg.inflight);
	ORDO_ASSERT(b->open.hdr.from_epoch == b->next_epoch);
	ORDO_ASSERT(b->cfg.every_epoch ? b->open.hdr.epoch >= b->next_epoch
				       : b->open.hdr.epoch == b->next_epoch);
	ORDO_ASSERT(b->open.hdr.first_position + b->open.hdr.count == b->next_position);

	if (b->ann_group) {
		/* join_after >= 1 and fits 32 bits: announce checked the gap
		 * against a number no larger than this one. */
		if (b->open.hdr.epoch < b->ann_first_epoch) {
			b->open.hdr.join_group = b->ann_group;
			b->open.hdr.join_after = (uint32_t)(b->ann_first_epoch - b->open.hdr.epoch);
		} else {
			b->ann_missed++;
		}
		b->ann_group = 0;
		b->ann_first_epoch = 0;
	}
	b->open.hdr.timestamp_ns = wall_ns;
	b->open.hdr.bytes = b->open.len;
	b->open.hdr.group = b->cfg.group;
	wire_epoch_hdr_encode(b->open.bytes, &b->open.hdr);

	struct seq_epoch_buf *slot = &b->ring[(b->ring_head + b->ring_count) % b->cfg.inflight];
	uint8_t *free_bytes = slot->bytes;
	*slot = b->open;
	b->ring_count++;
	b->next_epoch = b->open.hdr.epoch + 1;
	b->open.bytes = free_bytes;
	open_reset(b);
}

/* The number of the epoch an add needing `need` bytes at wall_ns would go
 * into (seq_batcher_add's choice, without making it). */
static uint64_t add_epoch(const struct seq_batcher *b, uint32_t need, uint64_t wall_ns)
{
	if (b->cfg.every_epoch)
		return b->open.hdr.epoch ? b->open.hdr.epoch : slot_epoch(b, wall_ns);
	if (b->open.hdr.count == 0)
		return b->next_epoch;
	/* the open epoch (numbered next_epoch) is sealed first when r does not fit */
	return need > b->cfg.epoch_bytes - b->open.len ? b->open.hdr.epoch + 1 : b->open.hdr.epoch;
}

int seq_batcher_add(struct seq_batcher *b, const struct wire_epoch_rec *r, uint64_t mono_ns,
		    uint64_t wall_ns, struct wire_place *place)
{
	uint32_t need = wire_epoch_rec_bytes(r->size);
	/* Cannot happen for a valid request (epoch_bytes >= MIN holds the largest). */
	if (ORDO_UNLIKELY(r->size > ORDO_OPAQUE_BYTES_MAX ||
			  need > b->cfg.epoch_bytes - ORDO_EPOCH_HDR_BYTES))
		return -EMSGSIZE;
	if (ORDO_UNLIKELY(b->min_epoch != 0) &&
	    (b->min_epoch == UINT64_MAX || add_epoch(b, need, wall_ns) < b->min_epoch))
		return -ENOBUFS;
	if (need > b->cfg.epoch_bytes - b->open.len) {
		/* The open epoch is non-empty here (an empty one holds any record).
		 * every_epoch: it closes with its slot, never early. */
		if (b->cfg.every_epoch || b->ring_count == b->cfg.inflight)
			return -ENOBUFS;
		seal(b, wall_ns);
	}
	if (b->cfg.every_epoch) {
		if (b->open.hdr.epoch == 0)
			open_epoch(b, slot_epoch(b, wall_ns), mono_ns);
	} else if (b->open.hdr.count == 0) {
		open_epoch(b, b->next_epoch, mono_ns);
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

/* every_epoch: seals the open epoch once its slot has ended, then opens the
 * next at the current slot. */
static bool tick_every_epoch(struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns)
{
	if (b->open.hdr.epoch == 0)
		open_epoch(b, slot_epoch(b, wall_ns), mono_ns);
	if (wall_ns < slot_end_ns(b, b->open.hdr.epoch) || b->ring_count == b->cfg.inflight)
		return false;
	seal(b, wall_ns);
	open_epoch(b, slot_epoch(b, wall_ns), mono_ns);
	return true;
}

bool seq_batcher_tick(struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns, bool force)
{
	if (b->cfg.every_epoch)
		return tick_every_epoch(b, mono_ns, wall_ns);
	if (b->open.hdr.count == 0)
		return false;
	if (!force && seq_batcher_due_in(b, mono_ns, wall_ns) != 0)
		return false;
	if (b->ring_count == b->cfg.inflight)
		return false;
	seal(b, wall_ns);
	return true;
}

uint64_t seq_batcher_due_in(const struct seq_batcher *b, uint64_t mono_ns, uint64_t wall_ns)
{
	if (b->cfg.every_epoch) {
		uint64_t epoch = b->open.hdr.epoch ? b->open.hdr.epoch : slot_epoch(b, wall_ns);
		uint64_t end = slot_end_ns(b, epoch);
		return wall_ns >= end ? 0 : end - wall_ns;
	}
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

void seq_batcher_set_min_epoch(struct seq_batcher *b, uint64_t min_epoch)
{
	b->min_epoch = min_epoch;
}

uint64_t seq_batcher_next_number(const struct seq_batcher *b, uint64_t wall_ns)
{
	return b->open.hdr.epoch    ? b->open.hdr.epoch
	       : b->cfg.every_epoch ? slot_epoch(b, wall_ns)
				    : b->next_epoch;
}

int seq_batcher_announce(struct seq_batcher *b, uint16_t group, uint64_t first_epoch,
			 uint64_t wall_ns)
{
	if (group >= ORDO_GROUPS_MAX || first_epoch == 0)
		return -EINVAL;
	if (b->ann_group == group + 1u && b->ann_first_epoch == first_epoch)
		return 0;
	/* the next seal's number is at least this one */
	uint64_t now = seq_batcher_next_number(b, wall_ns);
	if (now >= first_epoch)
		return -ETIME;
	if (first_epoch - now > UINT32_MAX)
		return -EINVAL;
	if (b->ann_group)
		return -EBUSY;
	b->ann_group = (uint16_t)(group + 1u);
	b->ann_first_epoch = first_epoch;
	return 0;
}

bool seq_batcher_announcing(const struct seq_batcher *b, uint16_t group)
{
	if (b->ann_group == group + 1u)
		return true;
	for (uint32_t i = 0; i < b->ring_count; i++)
		if (b->ring[(b->ring_head + i) % b->cfg.inflight].hdr.join_group == group + 1u)
			return true;
	return false;
}
