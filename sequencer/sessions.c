/*
 * The session table (PROTOCOL.md §3.1.2): see sessions.h for the contract.
 *
 * What lives here: the per-session window ring, the client_id index, the
 * deterministic LRU eviction, and the leader-only pending state (pending
 * marks, pending opens, the doomed prefix). What does not: deciding to whom an
 * answer goes, epochs, time (now_ns and epoch timestamps enter as values).
 *
 * Layout: one region, zeroed (so pre-faulted) at init, holds, each 64-byte
 * aligned,
 *   sessions[sessions_max]                 struct seq_session
 *   slots[sessions_max][2W]                struct seq_slot (24 bytes)
 *   index[pow2 >= 2 * sessions_max]        u32, session + 1, 0 = empty
 *   pending_opens[sessions_max]            u64 client_id (dense)
 *   pending_opens_index[pow2 >= 2 * max]   u32, dense position + 1, 0 = empty
 *   pending_marks[pow2 >= pending_max]     u64 global slot number (FIFO ring)
 *
 * Window ring: the number n of a session lives in slot n mod 2W. The window
 * [next - W, next + W) is exactly 2W wide, so each slot stands for one number
 * of it. When next moves from a to a + 1, number a - W leaves the window and
 * a + W enters; both map to slot (a + W) mod 2W, which is cleared then. The
 * number entering was never admitted (it was >= next + W), so nothing is lost.
 *
 * Indexes: linear probing with a multiply-shift hash (Knuth, TAOCP vol. 3
 * §6.4, multiplicative hashing with the golden-ratio constant) and
 * backward-shift deletion (Knuth's Algorithm R, §6.4), so no tombstones.
 * Load factor stays at or below 1/2.
 *
 * Doomed prefix (leader-only): when an opening request is admitted while the
 * table would be full once every pending open is applied, the leader reserves
 * the next LRU session as the victim, checks it (idle long enough, nothing
 * pending) and from then on refuses to order for it (OVERLOADED). Because the
 * doomed sessions are a prefix of the LRU list and receive no applies, the
 * victims every node evicts when the opens commit are exactly the ones the
 * leader checked, and no request of an evicted session can sit in an
 * uncommitted epoch behind the open that evicts it (so apply never sees one
 * with a correct leader). If something the leader did not admit is applied
 * (entries of an earlier term), the reservation is best effort; it never
 * affects the committed state, which is decided by seq_sessions_apply alone.
 *
 * Snapshot (layout in sessions.h): the committed state only, sessions in LRU
 * order so that a restored table evicts exactly as the original. Read checks
 * the whole input first (using the emptied pending-opens index as scratch to
 * find duplicate client_ids), then rebuilds; it never touches the committed
 * state of a table on bad input. Neither is on the hot path.
 */
#include "sessions.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/constants.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/ordo_assert.h"
#include "common/plant.h"

#define NONE	    UINT32_MAX
#define HASH_MUL    0x9E3779B97F4A7C15ull /* 2^64 / golden ratio */
#define ALIGN_BYTES 64u

enum slot_state {
	SLOT_EMPTY = 0,
	SLOT_PENDING = 1,
	SLOT_ORDERED = 2,
};

/* One number of a session's window. */
struct seq_slot {
	uint64_t epoch;		 /* ORDERED: place.epoch */
	uint64_t group_position; /* ORDERED: place.group_position; PENDING: the number n */
	uint32_t index;		 /* ORDERED: place.index */
	uint16_t state;		 /* enum slot_state */
	uint16_t group;		 /* ORDERED: place.group (the state needs only 16 bits) */
};
ORDO_STATIC_ASSERT(sizeof(struct seq_slot) == ORDO_SESSION_SLOT_BYTES, "a slot is 24 bytes");

struct seq_session {
	uint64_t client_id;	/* key of t->index; first field (index keys read it) */
	uint64_t number;	/* session number: group_position of request 1 */
	uint64_t next;		/* lowest request_number not yet ordered; >= 2 */
	uint64_t latest_ts_ns;	/* epoch timestamp of the latest ordered request */
	uint64_t open_epoch;	/* place of request 1 (its group_position is number) */
	uint32_t open_index;	/* place of request 1: index */
	uint32_t lru_prev;	/* towards older latest ordered position; NONE at the head */
	uint32_t lru_next;	/* towards newer; NONE at the tail; free-list link */
	uint32_t pending;	/* PENDING slots (leader-only) */
	uint16_t open_group;	/* place of request 1: group */
	uint8_t doomed;		/* in the doomed prefix (leader-only) */
	uint8_t live;		/* 1 while in the index and the LRU list */
} __attribute__((aligned(64))); /* one cache line: the hot path touches one */
ORDO_STATIC_ASSERT(sizeof(struct seq_session) == 64, "a session is one cache line");

/* Where each part of the region lies; all offsets in bytes. */
struct layout {
	size_t sessions_off;
	size_t slots_off;
	size_t index_off;
	size_t po_off;
	size_t po_index_off;
	size_t marks_off;
	size_t total;
	uint32_t index_cap;    /* power of two >= 2 * sessions_max */
	uint32_t po_index_cap; /* power of two >= 2 * sessions_max */
	uint64_t marks_cap;    /* power of two >= pending_max */
};

static size_t align_up(size_t n)
{
	return (n + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

static unsigned log2_pow2(uint64_t p)
{
	return (unsigned)__builtin_ctzll(p);
}

static bool cfg_valid(const struct seq_sessions_cfg *cfg)
{
	uint32_t w = cfg->window;
	if (w == 0 || w > ORDO_SESSION_WINDOW_MAX || (w & (w - 1)) != 0)
		return false;
	if (cfg->sessions_max == 0 || cfg->sessions_max > ORDO_SESSIONS_MAX_LIMIT)
		return false;
	return true;
}

static void layout_of(const struct seq_sessions_cfg *cfg, struct layout *l)
{
	uint64_t max = cfg->sessions_max;
	/* More than sessions_max * W marks can never be pending at once. */
	uint64_t most = max * cfg->window;
	uint64_t pending = cfg->pending_max && cfg->pending_max < most ? cfg->pending_max : most;
	size_t off = 0;

	l->index_cap = (uint32_t)pow2_at_least(2 * max);
	l->po_index_cap = l->index_cap;
	l->marks_cap = pow2_at_least(pending);
	l->sessions_off = off;
	off = align_up(off + max * sizeof(struct seq_session));
	l->slots_off = off;
	off = align_up(off + max * 2 * cfg->window * sizeof(struct seq_slot));
	l->index_off = off;
	off = align_up(off + (size_t)l->index_cap * sizeof(uint32_t));
	l->po_off = off;
	off = align_up(off + max * sizeof(uint64_t));
	l->po_index_off = off;
	off = align_up(off + (size_t)l->po_index_cap * sizeof(uint32_t));
	l->marks_off = off;
	off = align_up(off + l->marks_cap * sizeof(uint64_t));
	l->total = off;
}

size_t seq_sessions_bytes(const struct seq_sessions_cfg *cfg)
{
	struct layout l;
	if (!cfg_valid(cfg))
		return 0;
	layout_of(cfg, &l);
	return l.total;
}

/* ------------------------------------------------------------ hashing */

static inline uint32_t hash_home(uint64_t key, unsigned shift)
{
	return (uint32_t)((key * HASH_MUL) >> shift);
}

/* Key of index entry v (v = position + 1) in an array of records of stride
 * bytes whose first 8 bytes are the key. */
static inline uint64_t key_at(const uint8_t *base, size_t stride, uint32_t v)
{
	uint64_t k;
	memcpy(&k, base + (size_t)(v - 1) * stride, sizeof k);
	return k;
}

/* Finds key: returns the slot holding it (*found) or the empty slot ending its
 * probe sequence (!*found). The table is never full (load <= 1/2). */
static inline uint32_t idx_probe(const uint32_t *idx, uint32_t mask, unsigned shift, uint64_t key,
				 const uint8_t *base, size_t stride, bool *found)
{
	uint32_t i = hash_home(key, shift);
	for (uint32_t probes = 0; probes <= mask; probes++) {
		uint32_t v = idx[i];
		if (v == 0) {
			*found = false;
			return i;
		}
		if (key_at(base, stride, v) == key) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
	ORDO_ASSERT(!"open-addressed index has no empty slot");
}

/* Empties slot hole, shifting later entries of its cluster back so that
 * every entry stays reachable from its home. */
static void idx_delete(uint32_t *idx, uint32_t mask, unsigned shift, uint32_t hole,
		       const uint8_t *base, size_t stride)
{
	uint32_t j = hole;
	for (uint32_t probes = 0; probes <= mask; probes++) {
		j = (j + 1) & mask;
		uint32_t v = idx[j];
		if (v == 0)
			break;
		uint32_t home = hash_home(key_at(base, stride, v), shift);
		/* v may fill the hole if the hole lies on its path home .. j. */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			idx[hole] = v;
			hole = j;
		}
	}
	idx[hole] = 0;
}

/* ------------------------------------------------------------ helpers */

static inline struct seq_session *sess(const struct seq_sessions *t, uint32_t i)
{
	return &t->sessions[i];
}

static inline uint32_t ring_slots(const struct seq_sessions *t)
{
	return 2u * t->cfg.window;
}

static inline struct seq_slot *slots_of(const struct seq_sessions *t, uint32_t i)
{
	return (struct seq_slot *)t->slots + (size_t)i * ring_slots(t);
}

static inline struct seq_slot *slot_of(const struct seq_sessions *t, uint32_t i, uint64_t n)
{
	return slots_of(t, i) + (n & (ring_slots(t) - 1));
}

/* Live session index for client_id, or NONE; *pos is its index slot. */
static inline uint32_t session_find(const struct seq_sessions *t, uint64_t client_id, uint32_t *pos)
{
	bool found;
	uint32_t p = idx_probe(t->index, t->index_mask, t->index_shift, client_id,
			       (const uint8_t *)t->sessions, sizeof(struct seq_session), &found);
	*pos = p;
	return found ? t->index[p] - 1 : NONE;
}

static void place_from_slot(const struct seq_slot *s, struct wire_place *place)
{
	place->group = s->group;
	place->index = s->index;
	place->epoch = s->epoch;
	place->group_position = s->group_position;
}

static void slot_order(struct seq_slot *s, const struct wire_place *place)
{
	s->epoch = place->epoch;
	s->group_position = place->group_position;
	s->index = place->index;
	s->group = place->group;
	s->state = SLOT_ORDERED;
}

/* ---------------------------------------------------------------- LRU */

static void lru_unlink(struct seq_sessions *t, uint32_t i)
{
	struct seq_session *s = sess(t, i);
	if (s->lru_prev != NONE)
		sess(t, s->lru_prev)->lru_next = s->lru_next;
	else
		t->lru_head = s->lru_next;
	if (s->lru_next != NONE)
		sess(t, s->lru_next)->lru_prev = s->lru_prev;
	else
		t->lru_tail = s->lru_prev;
	s->lru_prev = NONE;
	s->lru_next = NONE;
}

static void lru_push_tail(struct seq_sessions *t, uint32_t i)
{
	struct seq_session *s = sess(t, i);
	s->lru_prev = t->lru_tail;
	s->lru_next = NONE;
	if (t->lru_tail != NONE)
		sess(t, t->lru_tail)->lru_next = i;
	else
		t->lru_head = i;
	t->lru_tail = i;
}

/* ------------------------------------------------------- pending marks */

static inline struct seq_slot *mark_slot(const struct seq_sessions *t, uint64_t g)
{
	return (struct seq_slot *)t->slots + g;
}

static inline bool marks_push(struct seq_sessions *t, uint64_t g)
{
	if (t->pending_marks_count > t->pending_marks_mask)
		return false;
	t->pending_marks[(t->pending_marks_head + t->pending_marks_count) & t->pending_marks_mask] =
	    g;
	t->pending_marks_count++;
	return true;
}

/* Drops entries whose slot is no longer PENDING from both ends of the ring.
 * Every PENDING slot keeps an entry: an entry is only dropped once its slot
 * left PENDING, and marking a slot PENDING again pushes a new entry. */
static void marks_trim(struct seq_sessions *t)
{
	while (
	    t->pending_marks_count > 0 &&
	    mark_slot(t, t->pending_marks[t->pending_marks_head & t->pending_marks_mask])->state !=
		SLOT_PENDING) {
		t->pending_marks_head++;
		t->pending_marks_count--;
	}
	while (t->pending_marks_count > 0 &&
	       mark_slot(t, t->pending_marks[(t->pending_marks_head + t->pending_marks_count - 1) &
					     t->pending_marks_mask])
		       ->state != SLOT_PENDING)
		t->pending_marks_count--;
}

/* ------------------------------------------------------- pending opens */

static inline uint64_t *po_ids(const struct seq_sessions *t)
{
	return (uint64_t *)t->pending_opens;
}

static inline uint32_t po_probe(const struct seq_sessions *t, uint64_t client_id, bool *found)
{
	return idx_probe(t->pending_opens_index, t->pending_opens_mask, t->pending_opens_shift,
			 client_id, (const uint8_t *)t->pending_opens, sizeof(uint64_t), found);
}

/* Caller checked pending_opens_used < pending_opens_cap and absence. */
static void po_insert(struct seq_sessions *t, uint64_t client_id, uint32_t hole)
{
	ORDO_ASSERT(t->pending_opens_used < t->pending_opens_cap);
	ORDO_ASSERT(t->pending_opens_index[hole] == 0);
	po_ids(t)[t->pending_opens_used] = client_id;
	t->pending_opens_used++;
	t->pending_opens_index[hole] = t->pending_opens_used;
}

static bool po_remove(struct seq_sessions *t, uint64_t client_id)
{
	bool found;
	uint32_t hole = po_probe(t, client_id, &found);
	if (!found)
		return false;
	uint32_t p = t->pending_opens_index[hole] - 1;
	idx_delete(t->pending_opens_index, t->pending_opens_mask, t->pending_opens_shift, hole,
		   (const uint8_t *)t->pending_opens, sizeof(uint64_t));
	uint32_t last = t->pending_opens_used - 1;
	if (p != last) {
		/* Move the last dense entry into p and repoint its index slot. */
		bool moved_found;
		uint32_t q = po_probe(t, po_ids(t)[last], &moved_found);
		ORDO_ASSERT(moved_found && t->pending_opens_index[q] == last + 1);
		po_ids(t)[p] = po_ids(t)[last];
		t->pending_opens_index[q] = p + 1;
	}
	t->pending_opens_used = last;
	return true;
}

/* ------------------------------------------------------ doomed prefix */

/* Evictions the pending opens will cause once applied. */
static uint32_t evictions_needed(const struct seq_sessions *t)
{
	uint64_t want = (uint64_t)t->used + t->pending_opens_used;
	return want > t->cfg.sessions_max ? (uint32_t)(want - t->cfg.sessions_max) : 0;
}

static void doom_undo_last(struct seq_sessions *t)
{
	uint32_t i = t->doom_last;
	ORDO_ASSERT(i != NONE && t->doomed_count > 0);
	struct seq_session *s = sess(t, i);
	ORDO_ASSERT(s->doomed);
	s->doomed = 0;
	t->doomed_count--;
	t->doom_last = t->doomed_count ? s->lru_prev : NONE;
	ORDO_ASSERT(t->doom_last == NONE || sess(t, t->doom_last)->doomed);
}

static void doom_rebalance(struct seq_sessions *t)
{
	uint32_t need = evictions_needed(t);
	while (t->doomed_count > need)
		doom_undo_last(t);
}

static void doom_reset(struct seq_sessions *t)
{
	while (t->doomed_count > 0)
		doom_undo_last(t);
}

/* ---------------------------------------------------------- lifecycle */

int seq_sessions_init(struct seq_sessions *t, const struct seq_sessions_cfg *cfg)
{
	struct layout l;

	memset(t, 0, sizeof *t);
	if (!cfg_valid(cfg))
		return -EINVAL;
	layout_of(cfg, &l);
	uint8_t *mem = aligned_alloc(ALIGN_BYTES, l.total);
	if (mem == NULL)
		return -ENOMEM;
	/* Zero and so pre-fault every page now: the hot path takes no page faults. */
	memset(mem, 0, l.total);

	t->cfg = *cfg;
	t->mem = mem;
	t->mem_bytes = l.total;
	t->sessions = (struct seq_session *)(mem + l.sessions_off);
	t->slots = mem + l.slots_off;
	t->index = (uint32_t *)(mem + l.index_off);
	t->index_mask = l.index_cap - 1;
	t->index_shift = (uint8_t)(64 - log2_pow2(l.index_cap));
	t->pending_opens = mem + l.po_off;
	t->pending_opens_cap = cfg->sessions_max;
	t->pending_opens_index = (uint32_t *)(mem + l.po_index_off);
	t->pending_opens_mask = l.po_index_cap - 1;
	t->pending_opens_shift = (uint8_t)(64 - log2_pow2(l.po_index_cap));
	t->pending_marks = (uint64_t *)(mem + l.marks_off);
	t->pending_marks_mask = l.marks_cap - 1;
	t->lru_head = NONE;
	t->lru_tail = NONE;
	t->doom_last = NONE;
	/* Free list through lru_next, in index order. */
	for (uint32_t i = 0; i < cfg->sessions_max; i++) {
		t->sessions[i].lru_prev = NONE;
		t->sessions[i].lru_next = i + 1 < cfg->sessions_max ? i + 1 : NONE;
	}
	t->free_head = 0;
	return 0;
}

void seq_sessions_free(struct seq_sessions *t)
{
	free(t->mem);
	memset(t, 0, sizeof *t);
}

uint32_t seq_sessions_count(const struct seq_sessions *t)
{
	return t->used;
}

/* ------------------------------------------------------------- admit */

static enum seq_admit admit_open(struct seq_sessions *t, const struct wire_req *r, uint64_t now_ns,
				 struct wire_place *place)
{
	uint32_t pos;
	uint32_t i = session_find(t, r->client_id, &pos);
	if (i != NONE) {
		const struct seq_session *s = sess(t, i);
		place->group = s->open_group;
		place->index = s->open_index;
		place->epoch = s->open_epoch;
		place->group_position = s->number;
		return SEQ_ADMIT_DUPLICATE;
	}
	bool pending;
	uint32_t hole = po_probe(t, r->client_id, &pending);
	if (pending)
		return SEQ_ADMIT_PENDING;
	if (t->pending_opens_used >= t->pending_opens_cap)
		return SEQ_ADMIT_OVERLOADED;
	if ((uint64_t)t->used + t->pending_opens_used >= t->cfg.sessions_max) {
		/* This open will evict the session after the doomed prefix. */
		uint32_t v = t->doom_last == NONE ? t->lru_head : sess(t, t->doom_last)->lru_next;
		if (v == NONE)
			return SEQ_ADMIT_OVERLOADED;
		struct seq_session *victim = sess(t, v);
		uint64_t age = now_ns > victim->latest_ts_ns ? now_ns - victim->latest_ts_ns : 0;
		if (age < t->cfg.idle_min_ns || victim->pending > 0)
			return SEQ_ADMIT_OVERLOADED;
		victim->doomed = 1;
		t->doom_last = v;
		t->doomed_count++;
	}
	po_insert(t, r->client_id, hole);
	return SEQ_ADMIT_ORDER;
}

enum seq_admit seq_sessions_admit(struct seq_sessions *t, const struct wire_req *r, uint64_t now_ns,
				  struct wire_place *place)
{
	uint64_t n = r->request_number;
	if (n == 1)
		return admit_open(t, r, now_ns, place);
	if (ORDO_UNLIKELY(n == 0)) /* never valid; wire_req_validate rejects it */
		return SEQ_ADMIT_UNKNOWN;

	uint32_t pos;
	uint32_t i = session_find(t, r->client_id, &pos);
	if (i == NONE)
		return SEQ_ADMIT_UNKNOWN;
	struct seq_session *s = sess(t, i);
	if (s->number != r->session)
		return SEQ_ADMIT_UNKNOWN;

	uint64_t w = t->cfg.window;
	struct seq_slot *slot = slot_of(t, i, n);
	if (n < s->next) {
		if (s->next - n > w)
			return SEQ_ADMIT_STALE;
		/* Every number in [max(1, next - W), next) is ordered. */
		ORDO_ASSERT(slot->state == SLOT_ORDERED);
		if (ORDO_PLANTED(ORDO_PLANT_SKIP_DEDUP))
			return SEQ_ADMIT_ORDER; /* planted: a retry is ordered again */
		place_from_slot(slot, place);
		return SEQ_ADMIT_DUPLICATE;
	}
	if (n - s->next >= w)
		return SEQ_ADMIT_OVERLOADED;
	if (slot->state == SLOT_ORDERED) {
		place_from_slot(slot, place);
		return SEQ_ADMIT_DUPLICATE;
	}
	if (slot->state == SLOT_PENDING)
		return SEQ_ADMIT_PENDING;
	if (s->doomed)
		return SEQ_ADMIT_OVERLOADED;
	uint64_t g = (uint64_t)(slot - (struct seq_slot *)t->slots);
	if (!marks_push(t, g)) {
		marks_trim(t);
		if (!marks_push(t, g))
			return SEQ_ADMIT_OVERLOADED;
	}
	slot->state = SLOT_PENDING;
	slot->group_position = n;
	s->pending++;
	return SEQ_ADMIT_ORDER;
}

void seq_sessions_unadmit(struct seq_sessions *t, const struct wire_req *r)
{
	uint64_t n = r->request_number;
	if (n == 1) {
		if (po_remove(t, r->client_id))
			doom_rebalance(t);
		return;
	}
	uint32_t pos;
	uint32_t i = session_find(t, r->client_id, &pos);
	if (i == NONE || n == 0)
		return;
	struct seq_session *s = sess(t, i);
	if (s->number != r->session || n < s->next || n - s->next >= t->cfg.window)
		return;
	struct seq_slot *slot = slot_of(t, i, n);
	if (slot->state != SLOT_PENDING)
		return;
	ORDO_ASSERT(s->pending > 0);
	slot->state = SLOT_EMPTY;
	slot->group_position = 0;
	s->pending--;
	marks_trim(t);
}

/* ------------------------------------------------------------- apply */

static bool apply_open(struct seq_sessions *t, const struct wire_req *r,
		       const struct wire_place *place, uint64_t epoch_ts_ns)
{
	uint32_t pos;
	if (r->session != 0 || session_find(t, r->client_id, &pos) != NONE)
		return false;

	uint32_t v;
	if (t->used == t->cfg.sessions_max) {
		/* Evict the session whose latest ordered request is oldest. */
		v = t->lru_head;
		ORDO_ASSERT(v != NONE);
		struct seq_session *victim = sess(t, v);
		if (victim->doomed) {
			victim->doomed = 0;
			t->doomed_count--;
			if (t->doom_last == v) {
				ORDO_ASSERT(t->doomed_count == 0);
				t->doom_last = NONE;
			}
		}
		uint32_t vpos;
		uint32_t found = session_find(t, victim->client_id, &vpos);
		ORDO_ASSERT(found == v);
		idx_delete(t->index, t->index_mask, t->index_shift, vpos,
			   (const uint8_t *)t->sessions, sizeof(struct seq_session));
		lru_unlink(t, v);
		t->evictions++;
		/* Its pending marks, if any, turn stale: their slots are wiped below. */
	} else {
		v = t->free_head;
		ORDO_ASSERT(v != NONE);
		t->free_head = sess(t, v)->lru_next;
		t->used++;
	}

	struct seq_session *s = sess(t, v);
	memset(s, 0, sizeof *s);
	s->client_id = r->client_id;
	s->number = place->group_position;
	s->next = 2;
	s->latest_ts_ns = epoch_ts_ns;
	s->open_epoch = place->epoch;
	s->open_index = place->index;
	s->open_group = place->group;
	s->live = 1;
	memset(slots_of(t, v), 0, (size_t)ring_slots(t) * sizeof(struct seq_slot));
	slot_order(slot_of(t, v, 1), place);

	uint32_t hole = session_find(t, r->client_id, &pos);
	ORDO_ASSERT(hole == NONE && t->index[pos] == 0);
	t->index[pos] = v + 1;
	lru_push_tail(t, v);

	po_remove(t, r->client_id);
	doom_rebalance(t);
	marks_trim(t);
	return true;
}

bool seq_sessions_apply(struct seq_sessions *t, const struct wire_req *r,
			const struct wire_place *place, uint64_t epoch_ts_ns)
{
	uint64_t n = r->request_number;
	if (n == 1)
		return apply_open(t, r, place, epoch_ts_ns);
	if (n == 0)
		return false;

	uint32_t pos;
	uint32_t i = session_find(t, r->client_id, &pos);
	if (i == NONE)
		return false;
	struct seq_session *s = sess(t, i);
	uint64_t w = t->cfg.window;
	if (ORDO_PLANTED(ORDO_PLANT_SKIP_DEDUP) && s->number == r->session && n < s->next)
		return true; /* planted: the second copy goes through unnoticed */
	if (s->number != r->session || n < s->next || n - s->next >= w)
		return false;
	struct seq_slot *slot = slot_of(t, i, n);
	if (slot->state == SLOT_ORDERED)
		return false;

	bool was_pending = slot->state == SLOT_PENDING;
	if (was_pending) {
		ORDO_ASSERT(s->pending > 0);
		s->pending--;
	}
	slot_order(slot, place);
	if (ORDO_UNLIKELY(s->doomed)) /* not admitted by this leader: give up the reservation */
		doom_reset(t);
	if (t->lru_tail != i) {
		lru_unlink(t, i);
		lru_push_tail(t, i);
	}
	s->latest_ts_ns = epoch_ts_ns;

	/* Advance next over ordered numbers; each step moves the window by one
	 * and frees the slot of the number that left it (= the one entering). */
	uint32_t mask = ring_slots(t) - 1;
	struct seq_slot *ring = slots_of(t, i);
	uint64_t next = s->next;
	for (uint64_t steps = 0; ring[next & mask].state == SLOT_ORDERED; steps++) {
		ORDO_ASSERT(steps < w);
		struct seq_slot *out = &ring[(next + w) & mask];
		ORDO_ASSERT(out->state != SLOT_PENDING);
		memset(out, 0, sizeof *out);
		next++;
	}
	s->next = next;

	if (was_pending)
		marks_trim(t);
	return true;
}

void seq_sessions_clear_pending(struct seq_sessions *t)
{
	uint32_t per = ring_slots(t);
	for (uint64_t k = 0; k < t->pending_marks_count; k++) {
		uint64_t g = t->pending_marks[(t->pending_marks_head + k) & t->pending_marks_mask];
		struct seq_slot *slot = mark_slot(t, g);
		if (slot->state != SLOT_PENDING)
			continue;
		struct seq_session *s = sess(t, (uint32_t)(g / per));
		ORDO_ASSERT(s->pending > 0);
		s->pending--;
		slot->state = SLOT_EMPTY;
		slot->group_position = 0;
	}
	t->pending_marks_head = 0;
	t->pending_marks_count = 0;
	while (t->pending_opens_used > 0) {
		bool removed = po_remove(t, po_ids(t)[t->pending_opens_used - 1]);
		ORDO_ASSERT(removed);
	}
	doom_reset(t);
}

/* ------------------------------------------------------------ snapshot */

/* Layout of the encoding: see sessions.h. Byte offsets inside each part. */
enum {
	SH_MAGIC = 0,
	SH_VERSION = 4,
	SH_TOTAL = 8,
	SH_WINDOW = 16,
	SH_SESSIONS_MAX = 20,
	SH_COUNT = 24,
	SH_JOIN_AFTER = 28,
	SH_EVICTIONS = 32,
	SH_RAFT_INDEX = 40,
	SH_RAFT_TERM = 48,
	SH_EPOCH = 56,
	SH_GROUP_POSITION = 64,
	SH_EPOCH_TS = 72,
	SH_JOIN_EPOCH = 80,

	SS_CLIENT_ID = 0,
	SS_NUMBER = 8,
	SS_NEXT = 16,
	SS_LATEST_POS = 24,
	SS_LATEST_TS = 32,
	SS_OPEN_EPOCH = 40,
	SS_OPEN_INDEX = 48,
	SS_OPEN_GROUP = 52,
	SS_RESERVED0 = 54,
	SS_SLOTS = 56,
	SS_RESERVED1 = 60,

	SL_N = 0,
	SL_EPOCH = 8,
	SL_GROUP_POSITION = 16,
	SL_INDEX = 24,
	SL_GROUP = 28,
	SL_RESERVED = 30,

	ST_CRC = 0,
	ST_RESERVED = 4,
};
ORDO_STATIC_ASSERT(SH_JOIN_EPOCH + 8 == SEQ_SNAP_HDR_BYTES, "snapshot header layout");
ORDO_STATIC_ASSERT(SS_RESERVED1 + 4 == SEQ_SNAP_SESSION_BYTES, "snapshot session layout");
ORDO_STATIC_ASSERT(SL_RESERVED + 2 == SEQ_SNAP_SLOT_BYTES, "snapshot slot layout");
ORDO_STATIC_ASSERT(SEQ_SNAP_HDR_BYTES % 8 == 0 && SEQ_SNAP_SESSION_BYTES % 8 == 0 &&
		       SEQ_SNAP_SLOT_BYTES % 8 == 0 && SEQ_SNAP_TRAILER_BYTES % 8 == 0,
		   "snapshot parts are multiples of 8 bytes");

/* Bytes before the sessions: the header, and the joins table from version
 * 2; 0 for an unknown version. */
static size_t snap_head_bytes(uint32_t version)
{
	return version == 1		     ? SEQ_SNAP_HDR_BYTES
	       : version == SEQ_SNAP_VERSION ? SEQ_SNAP_HDR_BYTES + SEQ_SNAP_JOINS_BYTES
					     : 0;
}

/* Lowest number of the window [next - W, next + W) that can exist (>= 1). */
static inline uint64_t window_lo(uint64_t next, uint64_t w)
{
	return next > w ? next - w : 1;
}

/* ORDERED slots of live session i: every one is a number of its window. */
static uint32_t ordered_count(const struct seq_sessions *t, uint32_t i)
{
	const struct seq_session *s = sess(t, i);
	uint64_t w = t->cfg.window;
	uint32_t k = 0;
	for (uint64_t n = window_lo(s->next, w); n < s->next + w; n++)
		k += slot_of(t, i, n)->state == SLOT_ORDERED;
	return k;
}

size_t seq_sessions_snapshot_bytes_max(const struct seq_sessions_cfg *cfg)
{
	if (!cfg_valid(cfg))
		return 0;
	size_t per = SEQ_SNAP_SESSION_BYTES + (size_t)SEQ_SNAP_SLOT_BYTES * (2u * cfg->window - 1);
	return SEQ_SNAP_HDR_BYTES + SEQ_SNAP_JOINS_BYTES + (size_t)cfg->sessions_max * per +
	       SEQ_SNAP_TRAILER_BYTES;
}

size_t seq_sessions_snapshot_bytes(const struct seq_sessions *t)
{
	size_t total = SEQ_SNAP_HDR_BYTES + SEQ_SNAP_JOINS_BYTES + SEQ_SNAP_TRAILER_BYTES;
	for (uint32_t i = t->lru_head; i != NONE; i = sess(t, i)->lru_next)
		total += SEQ_SNAP_SESSION_BYTES + (size_t)SEQ_SNAP_SLOT_BYTES * ordered_count(t, i);
	return total;
}

int seq_sessions_snapshot_write(const struct seq_sessions *t, const struct seq_snap_hdr *h,
				uint8_t *out, size_t cap, size_t *len)
{
	size_t total = seq_sessions_snapshot_bytes(t);
	if (cap < total)
		return -ENOBUFS;
	memset(out, 0, total); /* every reserved field is 0 */

	ordo_st32(out + SH_MAGIC, SEQ_SNAP_MAGIC);
	ordo_st32(out + SH_VERSION, SEQ_SNAP_VERSION);
	ordo_st64(out + SH_TOTAL, total);
	ordo_st32(out + SH_WINDOW, t->cfg.window);
	ordo_st32(out + SH_SESSIONS_MAX, t->cfg.sessions_max);
	ordo_st32(out + SH_COUNT, t->used);
	ordo_st64(out + SH_EVICTIONS, t->evictions);
	ordo_st64(out + SH_RAFT_INDEX, h->raft_index);
	ordo_st64(out + SH_RAFT_TERM, h->raft_term);
	ordo_st64(out + SH_EPOCH, h->epoch);
	ordo_st64(out + SH_GROUP_POSITION, h->group_position);
	ordo_st64(out + SH_EPOCH_TS, h->epoch_ts_ns);
	ORDO_ASSERT(h->join_epoch == 0 ? h->join_after == 0
				       : h->join_after >= 1 && h->join_after < h->join_epoch &&
					     h->join_after <= UINT32_MAX);
	ordo_st32(out + SH_JOIN_AFTER, (uint32_t)h->join_after);
	ordo_st64(out + SH_JOIN_EPOCH, h->join_epoch);
	for (uint32_t g = 0; g < ORDO_GROUPS_MAX; g++) {
		ORDO_ASSERT(h->joins[g].first_epoch == 0
				? h->joins[g].at_epoch == 0
				: h->joins[g].at_epoch < h->joins[g].first_epoch);
		ordo_st64(out + SEQ_SNAP_HDR_BYTES + 16 * g, h->joins[g].first_epoch);
		ordo_st64(out + SEQ_SNAP_HDR_BYTES + 16 * g + 8, h->joins[g].at_epoch);
	}

	uint64_t w = t->cfg.window;
	uint8_t *p = out + SEQ_SNAP_HDR_BYTES + SEQ_SNAP_JOINS_BYTES;
	uint64_t prev_latest = 0;
	uint32_t written = 0;
	for (uint32_t i = t->lru_head; i != NONE; i = sess(t, i)->lru_next) {
		const struct seq_session *s = sess(t, i);
		ORDO_ASSERT(s->live && written < t->used);
		uint8_t *rec = p;
		p += SEQ_SNAP_SESSION_BYTES;
		uint32_t k = 0;
		uint64_t latest = 0;
		for (uint64_t n = window_lo(s->next, w); n < s->next + w; n++) {
			const struct seq_slot *slot = slot_of(t, i, n);
			if (slot->state != SLOT_ORDERED)
				continue; /* EMPTY, or PENDING: leader-only, not encoded */
			ordo_st64(p + SL_N, n);
			ordo_st64(p + SL_EPOCH, slot->epoch);
			ordo_st64(p + SL_GROUP_POSITION, slot->group_position);
			ordo_st32(p + SL_INDEX, slot->index);
			ordo_st16(p + SL_GROUP, slot->group);
			p += SEQ_SNAP_SLOT_BYTES;
			if (slot->group_position > latest)
				latest = slot->group_position;
			k++;
		}
		/* The latest ordered number never leaves the window before the
		 * session orders another; positions grow in apply order, so the
		 * LRU list is in increasing latest position (what read checks). */
		ORDO_ASSERT(k > 0 && latest > prev_latest);
		prev_latest = latest;
		ordo_st64(rec + SS_CLIENT_ID, s->client_id);
		ordo_st64(rec + SS_NUMBER, s->number);
		ordo_st64(rec + SS_NEXT, s->next);
		ordo_st64(rec + SS_LATEST_POS, latest);
		ordo_st64(rec + SS_LATEST_TS, s->latest_ts_ns);
		ordo_st64(rec + SS_OPEN_EPOCH, s->open_epoch);
		ordo_st32(rec + SS_OPEN_INDEX, s->open_index);
		ordo_st16(rec + SS_OPEN_GROUP, s->open_group);
		ordo_st32(rec + SS_SLOTS, k);
		written++;
	}
	ORDO_ASSERT(written == t->used);
	ORDO_ASSERT((size_t)(p - out) == total - SEQ_SNAP_TRAILER_BYTES);
	ordo_st32(p + ST_CRC, ordo_crc32c(out, total - SEQ_SNAP_TRAILER_BYTES));
	*len = total;
	return 0;
}

/* One decoded session record (its slots stay in the input). */
struct snap_session {
	uint64_t client_id;
	uint64_t number;
	uint64_t next;
	uint64_t latest_pos;
	uint64_t latest_ts_ns;
	struct wire_place open;
	uint32_t slots;
	const uint8_t *slot_bytes; /* slots * SEQ_SNAP_SLOT_BYTES */
};

static void snap_slot(const uint8_t *p, uint64_t *n, struct wire_place *place)
{
	*n = ordo_ld64(p + SL_N);
	place->epoch = ordo_ld64(p + SL_EPOCH);
	place->group_position = ordo_ld64(p + SL_GROUP_POSITION);
	place->index = ordo_ld32(p + SL_INDEX);
	place->group = ordo_ld16(p + SL_GROUP);
}

/* Parses and checks the session record at in[*off ..] (the body ends at
 * end); advances *off past its slots. prev_latest: the previous record's
 * latest position (0 for the first). false on any malformed field. */
static bool snap_session_parse(const struct seq_sessions *t, const uint8_t *in, size_t end,
			       size_t *off, uint64_t prev_latest, struct snap_session *r)
{
	uint64_t w = t->cfg.window;
	if (end - *off < SEQ_SNAP_SESSION_BYTES)
		return false;
	const uint8_t *p = in + *off;
	if (ordo_ld16(p + SS_RESERVED0) != 0 || ordo_ld32(p + SS_RESERVED1) != 0)
		return false;
	r->client_id = ordo_ld64(p + SS_CLIENT_ID);
	r->number = ordo_ld64(p + SS_NUMBER);
	r->next = ordo_ld64(p + SS_NEXT);
	r->latest_pos = ordo_ld64(p + SS_LATEST_POS);
	r->latest_ts_ns = ordo_ld64(p + SS_LATEST_TS);
	r->open.epoch = ordo_ld64(p + SS_OPEN_EPOCH);
	r->open.index = ordo_ld32(p + SS_OPEN_INDEX);
	r->open.group = ordo_ld16(p + SS_OPEN_GROUP);
	r->open.group_position = r->number;
	r->slots = ordo_ld32(p + SS_SLOTS);
	*off += SEQ_SNAP_SESSION_BYTES;

	/* Request 1 was ordered (next >= 2) at a real position (>= 1); next + 2W
	 * does not overflow; LRU order is increasing latest position. */
	if (r->number == 0 || r->next < 2 || r->next > UINT64_MAX - 2 * w)
		return false;
	if (r->latest_pos <= prev_latest || r->latest_pos < r->number)
		return false;
	if (r->slots == 0 || r->slots > 2 * w - 1)
		return false;
	if ((end - *off) / SEQ_SNAP_SLOT_BYTES < r->slots)
		return false;
	r->slot_bytes = in + *off;
	*off += (size_t)r->slots * SEQ_SNAP_SLOT_BYTES;

	/* Slots: increasing numbers inside [lo, next + W), next not among them,
	 * every number of [lo, next) present (admit relies on it), request 1
	 * (if in the window) at the session's opening place, every later
	 * request after it, the latest position the largest. */
	uint64_t lo = window_lo(r->next, w);
	uint64_t below_next = 0, max_pos = 0, prev_n = 0;
	for (uint32_t k = 0; k < r->slots; k++) {
		const uint8_t *q = r->slot_bytes + (size_t)k * SEQ_SNAP_SLOT_BYTES;
		uint64_t n;
		struct wire_place pl;
		if (ordo_ld16(q + SL_RESERVED) != 0)
			return false;
		snap_slot(q, &n, &pl);
		if (n <= prev_n || n < lo || n >= r->next + w || n == r->next)
			return false;
		prev_n = n;
		below_next += n < r->next;
		if (n == 1) {
			if (pl.group_position != r->number || pl.epoch != r->open.epoch ||
			    pl.index != r->open.index || pl.group != r->open.group)
				return false;
		} else if (pl.group_position <= r->number) {
			return false;
		}
		if (pl.group_position > max_pos)
			max_pos = pl.group_position;
	}
	return below_next == r->next - lo && max_pos == r->latest_pos;
}

/* Checks everything in in[0 .. len) without changing the committed state;
 * uses the (empty) pending-opens index as scratch to find duplicate
 * client_ids, and empties it again. */
static int snap_validate(struct seq_sessions *t, const uint8_t *in, size_t len)
{
	if (len < SEQ_SNAP_HDR_BYTES + SEQ_SNAP_TRAILER_BYTES || len % 8 != 0)
		return -EBADMSG;
	uint32_t version = ordo_ld32(in + SH_VERSION);
	const size_t head = snap_head_bytes(version);
	if (ordo_ld32(in + SH_MAGIC) != SEQ_SNAP_MAGIC || head == 0 ||
	    len < head + SEQ_SNAP_TRAILER_BYTES || ordo_ld64(in + SH_TOTAL) != len)
		return -EBADMSG;
	size_t end = len - SEQ_SNAP_TRAILER_BYTES;
	if (ordo_ld32(in + end + ST_CRC) != ordo_crc32c(in, end) ||
	    ordo_ld32(in + end + ST_RESERVED) != 0)
		return -EBADMSG;
	/* the group's own join: none, or an announcing entry at epoch >= 1 */
	uint64_t join_epoch = ordo_ld64(in + SH_JOIN_EPOCH);
	uint32_t join_after = ordo_ld32(in + SH_JOIN_AFTER);
	if (join_epoch == 0 ? join_after != 0 : join_after == 0 || join_after >= join_epoch)
		return -EBADMSG;
	for (uint32_t g = 0; version >= 2 && g < ORDO_GROUPS_MAX; g++) {
		uint64_t first = ordo_ld64(in + SEQ_SNAP_HDR_BYTES + 16 * g);
		uint64_t at = ordo_ld64(in + SEQ_SNAP_HDR_BYTES + 16 * g + 8);
		if (first == 0 ? at != 0 : at >= first)
			return -EBADMSG;
	}
	if (ordo_ld32(in + SH_WINDOW) != t->cfg.window ||
	    ordo_ld32(in + SH_SESSIONS_MAX) != t->cfg.sessions_max)
		return -EINVAL;
	uint32_t count = ordo_ld32(in + SH_COUNT);
	if (count > t->cfg.sessions_max)
		return -EBADMSG;

	ORDO_ASSERT(t->pending_opens_used == 0);
	int rc = 0;
	size_t off = snap_head_bytes(ordo_ld32(in + SH_VERSION));
	uint64_t prev_latest = 0;
	for (uint32_t k = 0; k < count; k++) {
		struct snap_session r;
		if (!snap_session_parse(t, in, end, &off, prev_latest, &r)) {
			rc = -EBADMSG;
			break;
		}
		prev_latest = r.latest_pos;
		bool dup;
		uint32_t hole = po_probe(t, r.client_id, &dup);
		if (dup) {
			rc = -EBADMSG;
			break;
		}
		po_insert(t, r.client_id, hole);
	}
	if (rc == 0 && off != end)
		rc = -EBADMSG; /* bytes after the last session */
	memset(t->pending_opens_index, 0,
	       ((size_t)t->pending_opens_mask + 1) * sizeof t->pending_opens_index[0]);
	t->pending_opens_used = 0;
	return rc;
}

int seq_sessions_snapshot_read(struct seq_sessions *t, const uint8_t *in, size_t len,
			       struct seq_snap_hdr *h)
{
	seq_sessions_clear_pending(t);
	int rc = snap_validate(t, in, len);
	if (rc != 0)
		return rc;

	/* Valid: rebuild the committed state. Session k of the encoding goes to
	 * index k; internal indexes are invisible (the index is keyed on
	 * client_id, eviction follows the list). */
	uint32_t count = ordo_ld32(in + SH_COUNT);
	uint32_t max = t->cfg.sessions_max;
	uint64_t w = t->cfg.window;
	memset(t->index, 0, ((size_t)t->index_mask + 1) * sizeof t->index[0]);
	size_t end = len - SEQ_SNAP_TRAILER_BYTES;
	size_t off = snap_head_bytes(ordo_ld32(in + SH_VERSION));
	uint64_t prev_latest = 0;
	for (uint32_t k = 0; k < count; k++) {
		struct snap_session r;
		bool ok = snap_session_parse(t, in, end, &off, prev_latest, &r);
		ORDO_ASSERT(ok); /* validated above */
		prev_latest = r.latest_pos;
		struct seq_session *s = sess(t, k);
		memset(s, 0, sizeof *s);
		s->client_id = r.client_id;
		s->number = r.number;
		s->next = r.next;
		s->latest_ts_ns = r.latest_ts_ns;
		s->open_epoch = r.open.epoch;
		s->open_index = r.open.index;
		s->open_group = r.open.group;
		s->live = 1;
		s->lru_prev = k > 0 ? k - 1 : NONE;
		s->lru_next = k + 1 < count ? k + 1 : NONE;
		memset(slots_of(t, k), 0, (size_t)ring_slots(t) * sizeof(struct seq_slot));
		for (uint32_t j = 0; j < r.slots; j++) {
			uint64_t n;
			struct wire_place pl;
			snap_slot(r.slot_bytes + (size_t)j * SEQ_SNAP_SLOT_BYTES, &n, &pl);
			ORDO_ASSERT(n >= window_lo(r.next, w) && n < r.next + w);
			slot_order(slot_of(t, k, n), &pl);
		}
		uint32_t pos;
		uint32_t found = session_find(t, r.client_id, &pos);
		ORDO_ASSERT(found == NONE && t->index[pos] == 0);
		t->index[pos] = k + 1;
	}
	ORDO_ASSERT(off == end);
	/* Free list through lru_next, in index order, as at init. */
	for (uint32_t i = count; i < max; i++) {
		struct seq_session *s = sess(t, i);
		memset(s, 0, sizeof *s);
		s->lru_prev = NONE;
		s->lru_next = i + 1 < max ? i + 1 : NONE;
	}
	t->free_head = count < max ? count : NONE;
	t->used = count;
	t->lru_head = count > 0 ? 0 : NONE;
	t->lru_tail = count > 0 ? count - 1 : NONE;
	t->evictions = ordo_ld64(in + SH_EVICTIONS);

	h->raft_index = ordo_ld64(in + SH_RAFT_INDEX);
	h->raft_term = ordo_ld64(in + SH_RAFT_TERM);
	h->epoch = ordo_ld64(in + SH_EPOCH);
	h->group_position = ordo_ld64(in + SH_GROUP_POSITION);
	h->epoch_ts_ns = ordo_ld64(in + SH_EPOCH_TS);
	h->join_epoch = ordo_ld64(in + SH_JOIN_EPOCH);
	h->join_after = ordo_ld32(in + SH_JOIN_AFTER);
	bool table = ordo_ld32(in + SH_VERSION) >= 2;
	for (uint32_t g = 0; g < ORDO_GROUPS_MAX; g++) {
		h->joins[g].first_epoch = table ? ordo_ld64(in + SEQ_SNAP_HDR_BYTES + 16 * g) : 0;
		h->joins[g].at_epoch = table ? ordo_ld64(in + SEQ_SNAP_HDR_BYTES + 16 * g + 8) : 0;
	}
	return 0;
}
