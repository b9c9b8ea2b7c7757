/* Reply coalescing; see reply.h. */
#include "reply.h"

#include <string.h>

void dp_reply_init(struct dp_reply *r, struct dp_transport *t, uint64_t cluster_id, uint8_t type,
		   uint32_t aux, uint16_t local_port)
{
	memset(r, 0, sizeof *r);
	r->t = t;
	r->cluster_id = cluster_id;
	r->type = type;
	r->aux = aux;
	r->local_port = local_port;
}

static void send_slot(struct dp_reply *r, struct dp_reply_slot *s)
{
	s->buf->len = wire_finish(&s->w, s->key);
	s->buf->peer = s->peer;
	s->buf->local.port = r->local_port;
	dp_tx_burst(r->t, &s->buf, 1);
	s->buf = NULL;
	r->nopen--;
}

static struct dp_reply_slot *slot_for(struct dp_reply *r, const struct dp_addr *peer,
				      const struct wire_key *key)
{
	struct dp_reply_slot *free_slot = NULL, *oldest = NULL;
	for (uint32_t i = 0; i < DP_REPLY_OPEN_MAX; i++) {
		struct dp_reply_slot *s = &r->slots[i];
		if (!s->buf) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (s->peer.ip == peer->ip && s->peer.port == peer->port && s->key == key)
			return s;
		if (!oldest || s->seq < oldest->seq)
			oldest = s;
	}
	if (!free_slot) {
		send_slot(r, oldest);
		free_slot = oldest;
	}
	struct dp_buf *b = dp_alloc(r->t);
	if (!b)
		return NULL;
	free_slot->buf = b;
	free_slot->peer = *peer;
	free_slot->key = key;
	free_slot->seq = r->seq++;
	wire_begin(&free_slot->w, b->data, r->t->max_datagram, r->type, r->cluster_id);
	wire_begin_records(&free_slot->w, r->aux);
	r->nopen++;
	return free_slot;
}

/* Adds a record through add(); when the open datagram is full, sends it and
 * starts another for the same peer. */
#define REPLY_ADD(r, peer, key, add_fn, rec)                                                       \
	do {                                                                                       \
		for (int attempt = 0; attempt < 2; attempt++) {                                    \
			struct dp_reply_slot *s = slot_for(r, peer, key);                          \
			if (!s) {                                                                  \
				(r)->dropped++;                                                    \
				return;                                                            \
			}                                                                          \
			if (add_fn(&s->w, rec))                                                    \
				return;                                                            \
			send_slot(r, s);                                                           \
		}                                                                                  \
		(r)->dropped++;                                                                    \
	} while (0)

void dp_reply_ordered(struct dp_reply *r, const struct dp_addr *peer, const struct wire_key *key,
		      const struct wire_ordered_rec *rec)
{
	REPLY_ADD(r, peer, key, wire_add_ordered, rec);
}

void dp_reply_applied(struct dp_reply *r, const struct dp_addr *peer, const struct wire_key *key,
		      const struct wire_applied_rec *rec)
{
	REPLY_ADD(r, peer, key, wire_add_applied, rec);
}

void dp_reply_flush(struct dp_reply *r)
{
	for (uint32_t i = 0; i < DP_REPLY_OPEN_MAX && r->nopen > 0; i++)
		if (r->slots[i].buf)
			send_slot(r, &r->slots[i]);
}
