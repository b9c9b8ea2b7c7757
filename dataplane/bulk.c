/*
 * Bulk message transport: fragmentation, retransmit store, reassembly,
 * duplicate window and selective repair (NACK of missing fragment ranges).
 * The API, the memory cost and what this module does not do are in bulk.h;
 * the wire layouts and repair rules in docs/PROTOCOL.md §1.4.
 *
 * Repair follows the receiver-driven NACK scheme of NORM (RFC 5740 §5.1-5.3)
 * and the replica epoch stream (docs/PROTOCOL.md §2.1), simplified to one
 * sender and one receiver: no ACKs, NACKs after a quiet time with
 * exponential backoff, and the sender keeps what it sent in a bounded ring.
 *
 * State per peer, all sized at create:
 *   - tx: a byte ring (store) plus a ring of descriptors, one per stored
 *     message. Stored seqs are consecutive, so a seq's descriptor is found by
 *     subtraction. The oldest message is overwritten when space is needed
 *     and it is older than store_hold_ns; otherwise dp_bulk_send refuses.
 *   - rx: reasm_slots slots, each a received-fragment bitmap and a
 *     contiguous range of the peer's reasm_bytes arena (first fit among the
 *     live slots, so a delivered message is one contiguous buffer); a bitmap
 *     of the last DP_BULK_DUP_WINDOW seqs delivered; the gap detector.
 */
#include "dataplane/bulk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/le.h"

#define WIN_WORDS (DP_BULK_DUP_WINDOW / 64u)

/* One message in the retransmit store. */
struct bulk_desc {
	uint64_t seq;	  /* its seq (the descriptor ring is in seq order) */
	uint64_t sent_ns; /* first emission */
	uint64_t off;	  /* byte offset of its data in the store ring */
	uint32_t len;	  /* message bytes */
	uint32_t nfrags;  /* fragments at this node's stride, >= 1 */
};

/* One message being reassembled. Free when seq == 0. */
struct bulk_slot {
	uint64_t seq;	      /* message seq, 0: free slot */
	uint64_t off;	      /* first byte in the peer's arena */
	uint64_t alloc_bytes; /* bytes reserved in the arena: total_len rounded up to 8 */
	uint64_t last_ns;     /* arrival of the last new fragment (progress) */
	uint64_t nack_due_ns; /* next NACK no earlier than this */
	uint64_t backoff_ns;  /* interval after the next NACK, repair_delay .. backoff_max */
	uint32_t total_len;   /* message bytes, > stride */
	uint32_t nfrags;      /* 2 .. nfrags_max */
	uint32_t stride;      /* sender's fragment data bytes */
	uint32_t received;    /* bits set in have, < nfrags while the slot is live */
	uint64_t *have;	      /* nfrags bits: fragment i received */
};

ORDO_STATIC_ASSERT(sizeof(struct bulk_desc) == 32 && sizeof(struct bulk_slot) == 72,
		   "the memory formula in bulk.h");

struct bulk_peer {
	/* ---- tx: what this node sends to the peer ---- */
	uint8_t *store;		/* store_bytes byte ring */
	struct bulk_desc *desc; /* store_msgs descriptors, ring */
	uint64_t head;		/* next write offset in store, < store_bytes */
	uint64_t first_seq;	/* seq of the oldest stored message (desc[first]) */
	uint64_t next_seq;	/* seq the next message gets, from 1 */
	uint32_t first;		/* ring index of the oldest descriptor */
	uint32_t count;		/* descriptors in use, <= store_msgs */

	/* ---- rx: what this node receives from the peer ---- */
	uint64_t rx_inc; /* the peer's incarnation we follow, 0 before contact */
	uint64_t top;	 /* highest seq seen in rx_inc, 0 before contact */
	uint64_t floor;	 /* gaps below this seq are not asked for */
	uint64_t
	    win[WIN_WORDS]; /* settled (delivered, given up) seqs in (top - W, top], bit seq % W */
	uint64_t gap_hi;    /* highest high_seq the peer announced */
	uint64_t gap_snap_val;	   /* gap_hi at gap_snap_ns */
	uint64_t gap_snap_ns;	   /* when gap_snap_val was taken */
	uint64_t gap_ripe;	   /* seqs up to this were announced >= repair_delay ago */
	uint64_t gap_due_ns;	   /* next gap scan no earlier than this */
	uint64_t gap_backoff_ns;   /* interval after the next gap NACK */
	uint64_t gap_round_ns;	   /* first gap NACK of the current round, 0: none */
	uint64_t gap_round_hi;	   /* gap_ripe when the round started */
	uint8_t *arena;		   /* reasm_bytes */
	struct bulk_slot *slots;   /* reasm_slots */
	uint32_t slots_used;	   /* live slots */
	struct dp_bulk_counters c; /* this peer's counters */
};

struct dp_bulk {
	struct dp_bulk_cfg cfg;
	uint32_t stride;	 /* this node's fragment data bytes */
	uint32_t body_max;	 /* largest body emitted */
	uint32_t nack_entries;	 /* entries one NACK body holds */
	uint32_t nfrags_max;	 /* most fragments a message of msg_max_bytes has at any stride */
	uint32_t bitmap_words;	 /* u64 words per slot bitmap */
	uint8_t *txbuf;		 /* body_max: FRAG bodies being built */
	uint8_t *nackbuf;	 /* body_max: NACK body being built */
	struct bulk_peer *peers; /* cfg.peers */
	void *mem;		 /* the one allocation */
	size_t mem_bytes;
};

/* ------------------------------------------------------------ helpers */

static uint64_t pad8(uint64_t n)
{
	return (n + 7u) & ~(uint64_t)7u;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Fragments of a message of total bytes cut at stride (an empty message is
 * one empty fragment). */
static uint64_t frags_for(uint64_t total, uint64_t stride)
{
	return total == 0 ? 1 : (total + stride - 1) / stride;
}

static bool bit_get(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1u;
}

static void bit_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

static bool elapsed(uint64_t now, uint64_t since, uint64_t interval)
{
	return now >= since && now - since >= interval;
}

/* ------------------------------------------------------------- config */

void dp_bulk_cfg_default(struct dp_bulk_cfg *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_datagram = ORDO_DATAGRAM_MIN_MAX;
	cfg->peers = 1;
	cfg->msg_max_bytes = DP_BULK_MSG_BYTES_DEFAULT;
	cfg->store_bytes = DP_BULK_STORE_BYTES_DEFAULT;
	cfg->store_msgs = DP_BULK_STORE_MSGS_DEFAULT;
	cfg->reasm_slots = DP_BULK_REASM_SLOTS_DEFAULT;
	cfg->reasm_bytes = DP_BULK_REASM_BYTES_DEFAULT;
	cfg->repair_delay_ns = DP_BULK_REPAIR_DELAY_NS_DEFAULT;
	cfg->backoff_max_ns = DP_BULK_BACKOFF_MAX_NS_DEFAULT;
	cfg->giveup_ns = DP_BULK_GIVEUP_NS_DEFAULT;
	cfg->store_hold_ns = DP_BULK_STORE_HOLD_NS_DEFAULT;
}

static bool cfg_valid(const struct dp_bulk_cfg *c)
{
	return c->max_datagram >= ORDO_DATAGRAM_MIN_MAX && c->max_datagram <= ORDO_DATAGRAM_MAX &&
	       c->peers >= 1 && c->peers <= ORDO_NODES_MAX && c->msg_max_bytes >= 1 &&
	       c->msg_max_bytes <= DP_BULK_MSG_BYTES_LIMIT &&
	       c->store_bytes >= max_u64(8, pad8(c->msg_max_bytes)) &&
	       c->store_bytes <= (1ull << 40) && c->store_msgs >= 1 &&
	       c->store_msgs <= DP_BULK_STORE_MSGS_LIMIT && c->reasm_slots >= 1 &&
	       c->reasm_slots <= DP_BULK_SLOTS_LIMIT && c->reasm_bytes <= (1ull << 40) &&
	       c->repair_delay_ns > 0 && c->backoff_max_ns >= c->repair_delay_ns &&
	       c->giveup_ns > c->repair_delay_ns && c->incarnation != 0 && c->emit != NULL;
}

/* The one allocation, carved in this order (every piece 64-byte aligned). */
struct bulk_layout {
	size_t peers, txbuf, nackbuf, total;
	size_t per_peer;			   /* bytes of one peer's arrays */
	size_t store, desc, arena, slots, bitmaps; /* offsets inside a peer's arrays */
};

static size_t al64(size_t n)
{
	return (n + 63u) & ~(size_t)63u;
}

static void layout(const struct dp_bulk_cfg *c, uint32_t bitmap_words, struct bulk_layout *l)
{
	size_t o = 0;
	l->peers = o;
	o += al64(sizeof(struct bulk_peer) * c->peers);
	l->txbuf = o;
	o += al64(c->max_datagram);
	l->nackbuf = o;
	o += al64(c->max_datagram);
	size_t p = 0;
	l->store = p;
	p += al64(c->store_bytes);
	l->desc = p;
	p += al64(sizeof(struct bulk_desc) * c->store_msgs);
	l->arena = p;
	p += al64(c->reasm_bytes);
	l->slots = p;
	p += al64(sizeof(struct bulk_slot) * c->reasm_slots);
	l->bitmaps = p;
	p += al64((size_t)c->reasm_slots * bitmap_words * 8u);
	l->per_peer = p;
	l->total = o + p * c->peers;
}

static uint32_t nfrags_max_for(const struct dp_bulk_cfg *c)
{
	return (uint32_t)frags_for(c->msg_max_bytes, DP_BULK_STRIDE_MIN);
}

size_t dp_bulk_mem_bytes(const struct dp_bulk_cfg *cfg)
{
	if (!cfg_valid(cfg))
		return 0;
	struct bulk_layout l;
	layout(cfg, (nfrags_max_for(cfg) + 63u) / 64u, &l);
	return l.total + sizeof(struct dp_bulk);
}

static void rx_reset(struct dp_bulk *b, struct bulk_peer *p, uint64_t inc)
{
	for (uint32_t i = 0; i < b->cfg.reasm_slots; i++)
		p->slots[i].seq = 0;
	p->slots_used = 0;
	p->rx_inc = inc;
	p->top = 0;
	p->floor = 0;
	memset(p->win, 0, sizeof p->win);
	p->gap_hi = p->gap_snap_val = p->gap_snap_ns = p->gap_ripe = 0;
	p->gap_due_ns = 0;
	p->gap_backoff_ns = b->cfg.repair_delay_ns;
	p->gap_round_ns = p->gap_round_hi = 0;
}

int dp_bulk_create(const struct dp_bulk_cfg *cfg, struct dp_bulk **out)
{
	*out = NULL;
	if (!cfg_valid(cfg))
		return -EINVAL;
	struct dp_bulk *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->body_max = dp_bulk_body_max(cfg->max_datagram);
	b->stride = dp_bulk_stride(cfg->max_datagram);
	b->nack_entries = (b->body_max - DP_BULK_NACK_HEAD_BYTES) / DP_BULK_NACK_ENTRY_BYTES;
	b->nfrags_max = nfrags_max_for(cfg);
	b->bitmap_words = (b->nfrags_max + 63u) / 64u;
	ORDO_ASSERT(b->stride >= DP_BULK_STRIDE_MIN && b->stride <= DP_BULK_STRIDE_MAX);
	ORDO_ASSERT(b->stride % 8 == 0 && b->nack_entries >= 1);

	struct bulk_layout l;
	layout(cfg, b->bitmap_words, &l);
	/* Anonymous memory is zero-filled by the kernel page by page: the
	 * retransmit stores and reassembly arenas cost only what is used. */
	uint8_t *m =
	    mmap(NULL, l.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(b);
		return -ENOMEM;
	}
	b->mem = m;
	b->mem_bytes = l.total;
	b->peers = (struct bulk_peer *)(void *)(m + l.peers);
	b->txbuf = m + l.txbuf;
	b->nackbuf = m + l.nackbuf;
	uint8_t *pm = m + (l.total - l.per_peer * cfg->peers);
	for (uint32_t i = 0; i < cfg->peers; i++, pm += l.per_peer) {
		struct bulk_peer *p = &b->peers[i];
		p->store = pm + l.store;
		p->desc = (struct bulk_desc *)(void *)(pm + l.desc);
		p->arena = pm + l.arena;
		p->slots = (struct bulk_slot *)(void *)(pm + l.slots);
		uint64_t *bm = (uint64_t *)(void *)(pm + l.bitmaps);
		for (uint32_t s = 0; s < cfg->reasm_slots; s++)
			p->slots[s].have = bm + (size_t)s * b->bitmap_words;
		p->next_seq = 1;
		p->first_seq = 1;
		rx_reset(b, p, 0);
	}
	*out = b;
	return 0;
}

void dp_bulk_destroy(struct dp_bulk *b)
{
	if (!b)
		return;
	munmap(b->mem, b->mem_bytes);
	free(b);
}

const struct dp_bulk_counters *dp_bulk_counters(const struct dp_bulk *b, uint32_t peer)
{
	ORDO_ASSERT(peer < b->cfg.peers);
	return &b->peers[peer].c;
}

uint32_t dp_bulk_slots_used(const struct dp_bulk *b, uint32_t peer)
{
	ORDO_ASSERT(peer < b->cfg.peers);
	return b->peers[peer].slots_used;
}

/* ---------------------------------------------------------------- tx */

static struct bulk_desc *desc_at(const struct dp_bulk *b, struct bulk_peer *p, uint32_t k)
{
	return &p->desc[(p->first + k) % b->cfg.store_msgs];
}

/* Emits fragment idx of the stored message d. */
static void emit_frag(struct dp_bulk *b, uint32_t peer, const struct bulk_desc *d, uint32_t idx)
{
	struct bulk_peer *p = &b->peers[peer];
	ORDO_ASSERT(idx < d->nfrags);
	uint64_t start = (uint64_t)idx * b->stride;
	uint32_t n = (uint32_t)min_u64(b->stride, d->len - start);
	if (d->len == 0)
		n = 0;
	uint8_t *o = b->txbuf;
	ordo_st64(o + 0, b->cfg.incarnation);
	ordo_st64(o + 8, d->seq);
	ordo_st64(o + 16, p->next_seq - 1);
	ordo_st32(o + 24, d->len);
	ordo_st32(o + 28, idx);
	ordo_st32(o + 32, d->nfrags);
	ordo_st32(o + 36, n);
	ordo_st32(o + 40, b->stride);
	ordo_st32(o + 44, 0);
	if (n)
		memcpy(o + DP_BULK_FRAG_HEAD_BYTES, p->store + d->off + start, n);
	uint32_t len = DP_BULK_FRAG_HEAD_BYTES + (uint32_t)pad8(n);
	memset(o + DP_BULK_FRAG_HEAD_BYTES + n, 0, len - DP_BULK_FRAG_HEAD_BYTES - n);
	ORDO_ASSERT(len <= b->body_max);
	b->cfg.emit(b->cfg.emit_ctx, peer, DP_BULK_TYPE_FRAG, o, len);
}

/* Where `charge` bytes fit in the store ring without touching live data, or
 * -1. Live data runs from the oldest message's offset (tail) to head,
 * wrapping; every message charges at least 8 bytes, so head == tail with
 * messages stored means full. */
static int64_t store_fit(const struct dp_bulk *b, struct bulk_peer *p, uint64_t charge)
{
	uint64_t cap = b->cfg.store_bytes;
	if (p->count == 0)
		return charge <= cap ? 0 : -1;
	uint64_t tail = desc_at(b, p, 0)->off;
	if (p->head > tail) {
		if (p->head + charge <= cap)
			return (int64_t)p->head;
		if (charge <= tail)
			return 0;
		return -1;
	}
	if (p->head + charge <= tail)
		return (int64_t)p->head;
	return -1;
}

/* Drops the oldest stored message if it is at least store_hold_ns old. */
static bool store_evict(struct dp_bulk *b, struct bulk_peer *p, uint64_t now)
{
	if (p->count == 0)
		return false;
	const struct bulk_desc *d = desc_at(b, p, 0);
	if (!elapsed(now, d->sent_ns, b->cfg.store_hold_ns))
		return false;
	p->first = (p->first + 1) % b->cfg.store_msgs;
	p->count--;
	p->first_seq++;
	if (p->count == 0)
		p->head = 0;
	return true;
}

int dp_bulk_send(struct dp_bulk *b, uint32_t peer, const uint8_t *msg, uint32_t len,
		 uint64_t now_ns, uint64_t *seq_out)
{
	ORDO_ASSERT(peer < b->cfg.peers);
	ORDO_ASSERT(msg != NULL || len == 0);
	struct bulk_peer *p = &b->peers[peer];
	if (len > b->cfg.msg_max_bytes)
		return -EMSGSIZE;
	uint64_t charge = max_u64(8, pad8(len));
	int64_t pos;
	/* Each pass evicts one message or ends: at most store_msgs + 1 passes. */
	for (;;) {
		pos = p->count < b->cfg.store_msgs ? store_fit(b, p, charge) : -1;
		if (pos >= 0)
			break;
		if (!store_evict(b, p, now_ns)) {
			p->c.tx_nobufs++;
			return -ENOBUFS;
		}
	}
	ORDO_ASSERT(p->first_seq + p->count == p->next_seq && p->next_seq < DP_BULK_SEQ_LIMIT);
	struct bulk_desc *d = desc_at(b, p, p->count);
	d->seq = p->next_seq++;
	d->sent_ns = now_ns;
	d->off = (uint64_t)pos;
	d->len = len;
	d->nfrags = (uint32_t)frags_for(len, b->stride);
	p->count++;
	p->head = (uint64_t)pos + charge;
	if (p->head == b->cfg.store_bytes)
		p->head = 0;
	if (len)
		memcpy(p->store + d->off, msg, len);
	if (seq_out)
		*seq_out = d->seq;
	for (uint32_t i = 0; i < d->nfrags; i++)
		emit_frag(b, peer, d, i);
	p->c.tx_msgs++;
	p->c.tx_frags += d->nfrags;
	return 0;
}

/* Re-emits fragments [first, first + n) of seq (n clamped to the message). */
static int nack_entry(struct dp_bulk *b, uint32_t peer, uint64_t seq, uint32_t first, uint32_t n)
{
	struct bulk_peer *p = &b->peers[peer];
	if (seq == 0 || seq >= p->next_seq || n == 0) /* next_seq < DP_BULK_SEQ_LIMIT */
		return -EBADMSG;
	if (seq < p->first_seq) {
		p->c.tx_unrepairable++;
		return 0;
	}
	const struct bulk_desc *d = desc_at(b, p, (uint32_t)(seq - p->first_seq));
	ORDO_ASSERT(d->seq == seq);
	if (first >= d->nfrags)
		return -EBADMSG;
	uint64_t end = min_u64((uint64_t)first + n, d->nfrags);
	for (uint64_t i = first; i < end; i++)
		emit_frag(b, peer, d, (uint32_t)i);
	p->c.tx_resent_frags += end - first;
	return 0;
}

int dp_bulk_recv_nack(struct dp_bulk *b, uint32_t peer, const uint8_t *body, uint32_t body_len,
		      uint64_t now_ns)
{
	(void)now_ns;
	ORDO_ASSERT(peer < b->cfg.peers);
	struct bulk_peer *p = &b->peers[peer];
	if (body_len < DP_BULK_NACK_HEAD_BYTES + DP_BULK_NACK_ENTRY_BYTES ||
	    (body_len - DP_BULK_NACK_HEAD_BYTES) % DP_BULK_NACK_ENTRY_BYTES != 0) {
		p->c.tx_nacks_bad++;
		return -EBADMSG;
	}
	uint64_t inc = ordo_ld64(body);
	uint32_t count = ordo_ld32(body + 8);
	if (inc != b->cfg.incarnation ||
	    count != (body_len - DP_BULK_NACK_HEAD_BYTES) / DP_BULK_NACK_ENTRY_BYTES) {
		p->c.tx_nacks_bad++;
		return -EBADMSG;
	}
	p->c.tx_nacks_rx++;
	int rv = 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e =
		    body + DP_BULK_NACK_HEAD_BYTES + (size_t)i * DP_BULK_NACK_ENTRY_BYTES;
		if (nack_entry(b, peer, ordo_ld64(e), ordo_ld32(e + 8), ordo_ld32(e + 12)) != 0) {
			p->c.tx_nacks_bad++;
			rv = -EBADMSG;
		}
	}
	return rv;
}

/* ---------------------------------------------------------------- rx */

struct frag {
	uint64_t inc, seq, high_seq;
	uint32_t total_len, idx, nfrags, data_len, stride;
	const uint8_t *data;
};

/* Every field checked against the others and the body length. */
static int frag_parse(const struct dp_bulk *b, const uint8_t *body, uint32_t len, struct frag *f)
{
	if (len < DP_BULK_FRAG_HEAD_BYTES)
		return -EBADMSG;
	f->inc = ordo_ld64(body);
	f->seq = ordo_ld64(body + 8);
	f->high_seq = ordo_ld64(body + 16);
	f->total_len = ordo_ld32(body + 24);
	f->idx = ordo_ld32(body + 28);
	f->nfrags = ordo_ld32(body + 32);
	f->data_len = ordo_ld32(body + 36);
	f->stride = ordo_ld32(body + 40);
	f->data = body + DP_BULK_FRAG_HEAD_BYTES;
	if (f->inc == 0 || f->seq == 0 || f->high_seq < f->seq || f->high_seq >= DP_BULK_SEQ_LIMIT)
		return -EBADMSG;
	if (f->stride < DP_BULK_STRIDE_MIN || f->stride > DP_BULK_STRIDE_MAX || f->stride % 8 != 0)
		return -EBADMSG;
	if (f->nfrags != frags_for(f->total_len, f->stride) || f->idx >= f->nfrags)
		return -EBADMSG;
	uint64_t start = (uint64_t)f->idx * f->stride;
	uint64_t want = f->total_len == 0 ? 0 : min_u64(f->stride, f->total_len - start);
	if (f->data_len != want)
		return -EBADMSG;
	if (len != DP_BULK_FRAG_HEAD_BYTES + pad8(f->data_len))
		return -EBADMSG;
	if (f->total_len > b->cfg.msg_max_bytes)
		return -EMSGSIZE;
	return 0;
}

static bool win_has(const struct bulk_peer *p, uint64_t seq)
{
	return seq <= p->top && seq + DP_BULK_DUP_WINDOW > p->top &&
	       bit_get(p->win, seq % DP_BULK_DUP_WINDOW);
}

/* Moves top up to seq, forgetting the seqs that leave the window. */
static void win_advance(struct bulk_peer *p, uint64_t seq)
{
	if (seq <= p->top)
		return;
	if (seq - p->top >= DP_BULK_DUP_WINDOW) {
		memset(p->win, 0, sizeof p->win);
	} else {
		for (uint64_t s = p->top + 1; s <= seq; s++)
			p->win[(s % DP_BULK_DUP_WINDOW) / 64] &= ~(1ull << (s % 64));
	}
	p->top = seq;
}

/* Marks seq settled (delivered or given up): later fragments of it are
 * duplicates. A seq already below the window needs no mark (it is stale). */
static void win_settle(struct bulk_peer *p, uint64_t seq)
{
	if (seq <= p->top && seq + DP_BULK_DUP_WINDOW > p->top)
		bit_set(p->win, seq % DP_BULK_DUP_WINDOW);
}

static struct bulk_slot *slot_find(struct dp_bulk *b, struct bulk_peer *p, uint64_t seq)
{
	for (uint32_t i = 0; i < b->cfg.reasm_slots; i++)
		if (p->slots[i].seq == seq)
			return &p->slots[i];
	return NULL;
}

/* First fit of bytes in the arena among the live slots; -1 if none. Each
 * pass moves pos past one live slot, so at most reasm_slots + 1 passes. */
static int64_t arena_fit(const struct dp_bulk *b, const struct bulk_peer *p, uint64_t bytes)
{
	uint64_t pos = 0;
	for (uint32_t pass = 0; pass <= b->cfg.reasm_slots; pass++) {
		bool moved = false;
		for (uint32_t i = 0; i < b->cfg.reasm_slots; i++) {
			const struct bulk_slot *s = &p->slots[i];
			if (s->seq && s->off < pos + bytes && pos < s->off + s->alloc_bytes) {
				pos = s->off + s->alloc_bytes;
				moved = true;
			}
		}
		if (!moved)
			return pos + bytes <= b->cfg.reasm_bytes ? (int64_t)pos : -1;
	}
	return -1;
}

static void slot_free(struct bulk_peer *p, struct bulk_slot *s)
{
	ORDO_ASSERT(s->seq != 0 && p->slots_used > 0);
	s->seq = 0;
	p->slots_used--;
}

static int slot_open(struct dp_bulk *b, struct bulk_peer *p, const struct frag *f, uint64_t now,
		     struct bulk_slot **out)
{
	if (f->total_len > b->cfg.reasm_bytes) {
		p->c.rx_drop_too_big++;
		return -EMSGSIZE;
	}
	struct bulk_slot *s = slot_find(b, p, 0);
	int64_t off = s ? arena_fit(b, p, pad8(f->total_len)) : -1;
	if (!s || off < 0) {
		p->c.rx_drop_slots++;
		return -ENOBUFS;
	}
	ORDO_ASSERT(f->nfrags <= b->nfrags_max);
	s->seq = f->seq;
	s->off = (uint64_t)off;
	s->alloc_bytes = pad8(f->total_len);
	s->total_len = f->total_len;
	s->nfrags = f->nfrags;
	s->stride = f->stride;
	s->received = 0;
	s->last_ns = now;
	s->backoff_ns = b->cfg.repair_delay_ns;
	s->nack_due_ns = now + b->cfg.repair_delay_ns;
	memset(s->have, 0, ((size_t)f->nfrags + 63u) / 64u * 8u);
	p->slots_used++;
	*out = s;
	return 0;
}

int dp_bulk_recv(struct dp_bulk *b, uint32_t peer, const uint8_t *body, uint32_t body_len,
		 uint64_t now_ns, dp_bulk_deliver_fn *deliver, void *ctx)
{
	ORDO_ASSERT(peer < b->cfg.peers);
	struct bulk_peer *p = &b->peers[peer];
	struct frag f;
	int rv = frag_parse(b, body, body_len, &f);
	if (rv == -EMSGSIZE) {
		p->c.rx_drop_too_big++;
		return rv;
	}
	if (rv != 0) {
		p->c.rx_drop_bad++;
		return rv;
	}
	if (f.inc < p->rx_inc) {
		p->c.rx_stale++;
		return -EALREADY;
	}
	if (f.inc > p->rx_inc) {
		if (p->rx_inc != 0)
			p->c.rx_resets++;
		rx_reset(b, p, f.inc);
	}
	if (p->top == 0)
		p->floor = f.seq; /* first contact: older gaps are not ours to ask for */
	if (f.seq + DP_BULK_DUP_WINDOW <= p->top) {
		p->c.rx_stale++;
		return -EALREADY;
	}
	p->c.rx_frags++;
	win_advance(p, f.seq);
	if (f.high_seq > p->gap_hi)
		p->gap_hi = f.high_seq;
	if (win_has(p, f.seq)) {
		p->c.rx_dup_frags++;
		return -EALREADY;
	}
	struct bulk_slot *s = slot_find(b, p, f.seq);
	if (f.nfrags == 1) {
		if (s) { /* the same seq seen with more fragments: inconsistent */
			p->c.rx_drop_bad++;
			return -EBADMSG;
		}
		win_settle(p, f.seq);
		p->c.rx_delivered++;
		deliver(ctx, peer, f.seq, f.data, f.total_len);
		return 0;
	}
	if (!s) {
		rv = slot_open(b, p, &f, now_ns, &s);
		if (rv != 0)
			return rv;
	} else if (s->total_len != f.total_len || s->nfrags != f.nfrags || s->stride != f.stride) {
		p->c.rx_drop_bad++;
		return -EBADMSG;
	}
	if (bit_get(s->have, f.idx)) {
		p->c.rx_dup_frags++;
		return -EALREADY;
	}
	uint64_t start = (uint64_t)f.idx * f.stride;
	ORDO_ASSERT(start + f.data_len <= s->total_len);
	memcpy(p->arena + s->off + start, f.data, f.data_len);
	bit_set(s->have, f.idx);
	s->received++;
	s->last_ns = now_ns;
	s->backoff_ns = b->cfg.repair_delay_ns;
	s->nack_due_ns = now_ns + b->cfg.repair_delay_ns;
	if (s->received < s->nfrags)
		return 0;
	/* Complete. The arena bytes stay intact through deliver: nothing else
	 * allocates until this call returns (deliver may only send). */
	uint64_t seq = s->seq;
	const uint8_t *msg = p->arena + s->off;
	uint32_t len = s->total_len;
	slot_free(p, s);
	win_settle(p, seq);
	p->c.rx_delivered++;
	deliver(ctx, peer, seq, msg, len);
	return 0;
}

/* -------------------------------------------------------------- tick */

/* NACK entries for one peer, packed into as many bodies as needed (at most
 * DP_BULK_NACKS_PER_TICK per tick). */
struct nack_build {
	struct dp_bulk *b;
	uint32_t peer;
	uint32_t n;	 /* entries in nackbuf */
	uint32_t dgrams; /* bodies emitted this tick */
};

static void nack_flush(struct nack_build *nb)
{
	if (nb->n == 0)
		return;
	struct dp_bulk *b = nb->b;
	struct bulk_peer *p = &b->peers[nb->peer];
	ordo_st64(b->nackbuf, p->rx_inc);
	ordo_st32(b->nackbuf + 8, nb->n);
	ordo_st32(b->nackbuf + 12, 0);
	uint32_t len = DP_BULK_NACK_HEAD_BYTES + nb->n * DP_BULK_NACK_ENTRY_BYTES;
	ORDO_ASSERT(len <= b->body_max);
	b->cfg.emit(b->cfg.emit_ctx, nb->peer, DP_BULK_TYPE_NACK, b->nackbuf, len);
	p->c.rx_nacks_tx++;
	nb->dgrams++;
	nb->n = 0;
}

/* False when this tick's NACK budget for the peer is spent. */
static bool nack_add(struct nack_build *nb, uint64_t seq, uint32_t first, uint32_t n)
{
	if (nb->n == nb->b->nack_entries)
		nack_flush(nb);
	if (nb->dgrams >= DP_BULK_NACKS_PER_TICK)
		return false;
	uint8_t *e = nb->b->nackbuf + DP_BULK_NACK_HEAD_BYTES + nb->n * DP_BULK_NACK_ENTRY_BYTES;
	ordo_st64(e, seq);
	ordo_st32(e + 8, first);
	ordo_st32(e + 12, n);
	nb->n++;
	return true;
}

/* Lists the missing fragment ranges of slot s. */
static void nack_slot(struct nack_build *nb, const struct bulk_slot *s)
{
	uint32_t i = 0;
	while (i < s->nfrags) {
		if (s->have[i / 64] == ~0ull && i % 64 == 0) {
			i += 64;
			continue;
		}
		if (bit_get(s->have, i)) {
			i++;
			continue;
		}
		uint32_t j = i + 1;
		while (j < s->nfrags && !bit_get(s->have, j))
			j++;
		if (!nack_add(nb, s->seq, i, j - i))
			return;
		i = j;
	}
}

static bool seq_missing(const struct dp_bulk *b, const struct bulk_peer *p, uint64_t seq)
{
	if (win_has(p, seq))
		return false;
	for (uint32_t i = 0; i < b->cfg.reasm_slots; i++)
		if (p->slots[i].seq == seq)
			return false;
	return true;
}

/* Whole messages the peer announced (high_seq) that never arrived. */
static void tick_gaps(struct nack_build *nb, struct bulk_peer *p, uint64_t now)
{
	struct dp_bulk *b = nb->b;
	if (p->rx_inc == 0)
		return;
	if (p->gap_snap_ns == 0 || elapsed(now, p->gap_snap_ns, b->cfg.repair_delay_ns)) {
		p->gap_ripe = p->gap_snap_val;
		p->gap_snap_val = p->gap_hi;
		p->gap_snap_ns = now;
	}
	if (now < p->gap_due_ns)
		return;
	uint64_t hi = p->gap_ripe, lo = max_u64(p->floor, 1);
	if (p->top >= DP_BULK_DUP_WINDOW)
		lo = max_u64(lo, p->top - DP_BULK_DUP_WINDOW + 1);
	if (hi >= DP_BULK_DUP_WINDOW)
		lo = max_u64(lo, hi - DP_BULK_DUP_WINDOW + 1);
	uint64_t missing = 0;
	for (uint64_t s = lo; s <= hi; s++)
		missing += seq_missing(b, p, s);
	if (missing == 0) {
		p->gap_round_ns = 0;
		p->gap_backoff_ns = b->cfg.repair_delay_ns;
		p->gap_due_ns = now + b->cfg.repair_delay_ns;
		return;
	}
	if (p->gap_round_ns == 0) {
		p->gap_round_ns = now;
		p->gap_round_hi = hi;
	} else if (elapsed(now, p->gap_round_ns, b->cfg.giveup_ns)) {
		for (uint64_t s = lo; s <= p->gap_round_hi; s++)
			p->c.rx_gaps_given_up += seq_missing(b, p, s);
		p->floor = p->gap_round_hi + 1;
		p->gap_round_ns = 0;
		p->gap_backoff_ns = b->cfg.repair_delay_ns;
		p->gap_due_ns = now + b->cfg.repair_delay_ns;
		return;
	}
	uint32_t listed = 0;
	for (uint64_t s = lo; s <= hi && listed < DP_BULK_GAP_NACK_MAX; s++) {
		if (!seq_missing(b, p, s))
			continue;
		if (!nack_add(nb, s, 0, DP_BULK_NACK_ALL))
			break;
		listed++;
	}
	p->gap_due_ns = now + p->gap_backoff_ns;
	p->gap_backoff_ns = min_u64(p->gap_backoff_ns * 2, b->cfg.backoff_max_ns);
}

void dp_bulk_tick(struct dp_bulk *b, uint64_t now_ns)
{
	for (uint32_t peer = 0; peer < b->cfg.peers; peer++) {
		struct bulk_peer *p = &b->peers[peer];
		struct nack_build nb = {.b = b, .peer = peer};
		for (uint32_t i = 0; i < b->cfg.reasm_slots && p->slots_used; i++) {
			struct bulk_slot *s = &p->slots[i];
			if (!s->seq)
				continue;
			if (elapsed(now_ns, s->last_ns, b->cfg.giveup_ns)) {
				/* Settled: neither a gap to NACK nor a new slot later. */
				win_settle(p, s->seq);
				slot_free(p, s);
				p->c.rx_given_up++;
				continue;
			}
			if (now_ns < s->nack_due_ns)
				continue;
			nack_slot(&nb, s);
			s->nack_due_ns = now_ns + s->backoff_ns;
			s->backoff_ns = min_u64(s->backoff_ns * 2, b->cfg.backoff_max_ns);
		}
		tick_gaps(&nb, p, now_ns);
		nack_flush(&nb);
	}
}

uint64_t dp_bulk_next_deadline(const struct dp_bulk *b)
{
	uint64_t t = UINT64_MAX;
	for (uint32_t peer = 0; peer < b->cfg.peers; peer++) {
		const struct bulk_peer *p = &b->peers[peer];
		for (uint32_t i = 0; i < b->cfg.reasm_slots && p->slots_used; i++) {
			const struct bulk_slot *s = &p->slots[i];
			if (!s->seq)
				continue;
			t = min_u64(t, s->nack_due_ns);
			t = min_u64(t, s->last_ns + b->cfg.giveup_ns);
		}
		/* Gaps: while the peer announced seqs we have not settled. */
		if (p->rx_inc && (p->gap_hi > p->gap_ripe || p->gap_round_ns))
			t = min_u64(
			    t, max_u64(p->gap_snap_ns + b->cfg.repair_delay_ns, p->gap_due_ns));
	}
	return t;
}
