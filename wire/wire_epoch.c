/*
 * The internal epoch stream (docs/PROTOCOL.md): the byte format of one epoch
 * (a 48-byte header, then 40-byte records with padded payloads) and the
 * node-to-node messages that carry it to replicas: EPOCH_DATA (one fragment
 * of a committed epoch), EPOCH_NACK (resend request) and EPOCH_HEARTBEAT
 * (the sender's highest committed epoch).
 *
 * What does not live here: the header and receipt rules (wire.c), when to
 * send, fragment or resend (sequencer/, replicas/).
 *
 * Epoch header (48 bytes): u64 epoch, u64 first_position, u64 timestamp_ns,
 * u32 count, u32 bytes, u16 group, u16 join_group, u32 join_after, u64 from_epoch
 * (0: the entry is epoch alone).
 * Record (40 bytes fixed): u64 client_id, u64 request_number, u64 session,
 * u16 op, u16 size, u32 key_id, u32 reply_ip, u16 reply_port, u16 reserved,
 * then the payload zero padded to 8.
 */
#include "wire.h"

#include <errno.h>
#include <string.h>

#include "common/le.h"

ORDO_STATIC_ASSERT(ORDO_EPOCH_HDR_BYTES == 48, "epoch header layout");
ORDO_STATIC_ASSERT(ORDO_EPOCH_REC_BYTES == 40, "epoch record layout");

static inline uint32_t pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

void wire_epoch_hdr_encode(uint8_t *out, const struct wire_epoch_hdr *h)
{
	ordo_st64(out + 0, h->epoch);
	ordo_st64(out + 8, h->first_position);
	ordo_st64(out + 16, h->timestamp_ns);
	ordo_st32(out + 24, h->count);
	ordo_st32(out + 28, h->bytes);
	ordo_st16(out + 32, h->group);
	ordo_st16(out + 34, h->join_group);
	ordo_st32(out + 36, h->join_after);
	ordo_st64(out + 40, h->from_epoch == h->epoch ? 0 : h->from_epoch);
}

uint32_t wire_epoch_rec_encode(uint8_t *out, const struct wire_epoch_rec *r)
{
	ORDO_ASSERT(r->size <= ORDO_OPAQUE_BYTES_MAX);
	ORDO_ASSERT(r->size == 0 || r->payload != NULL);
	ordo_st64(out + 0, r->client_id);
	ordo_st64(out + 8, r->request_number);
	ordo_st64(out + 16, r->session);
	ordo_st16(out + 24, r->op);
	ordo_st16(out + 26, r->size);
	ordo_st32(out + 28, r->key_id);
	ordo_st32(out + 32, r->reply_ip);
	ordo_st16(out + 36, r->reply_port);
	ordo_st16(out + 38, 0);
	if (r->size > 0)
		memcpy(out + ORDO_EPOCH_REC_BYTES, r->payload, r->size);
	memset(out + ORDO_EPOCH_REC_BYTES + r->size, 0, pad8(r->size) - r->size);
	return wire_epoch_rec_bytes(r->size);
}

int wire_epoch_next_rec(const uint8_t *epoch, uint32_t len, uint32_t *off, struct wire_epoch_rec *r)
{
	uint32_t o = *off;
	if (o < ORDO_EPOCH_HDR_BYTES || o > len)
		return -EBADMSG;
	if (o == len)
		return 0;
	if (len - o < ORDO_EPOCH_REC_BYTES)
		return -EBADMSG;
	const uint8_t *p = epoch + o;
	uint16_t size = ordo_ld16(p + 26);
	if (size > ORDO_OPAQUE_BYTES_MAX)
		return -EBADMSG;
	if (len - o - ORDO_EPOCH_REC_BYTES < pad8(size))
		return -EBADMSG;
	r->client_id = ordo_ld64(p + 0);
	r->request_number = ordo_ld64(p + 8);
	r->session = ordo_ld64(p + 16);
	r->op = ordo_ld16(p + 24);
	r->size = size;
	r->key_id = ordo_ld32(p + 28);
	r->reply_ip = ordo_ld32(p + 32);
	r->reply_port = ordo_ld16(p + 36);
	r->payload = p + ORDO_EPOCH_REC_BYTES;
	/* A record in an epoch was admitted as a valid request: hold it to the
	 * same rules (op known, size fits the op, reserved fields zero), so
	 * nothing downstream (the ledger) ever sees one that is not. */
	struct wire_req q = {
	    .client_id = r->client_id,
	    .request_number = r->request_number,
	    .session = r->session,
	    .op = r->op,
	    .size = r->size,
	    .payload = r->payload,
	};
	if (wire_req_validate(&q, false, 0) != WIRE_ST_OK)
		return -EBADMSG;
	*off = o + wire_epoch_rec_bytes(size);
	return 1;
}

int wire_epoch_decode_hdr(const uint8_t *epoch, uint32_t len, struct wire_epoch_hdr *h)
{
	if (len < ORDO_EPOCH_HDR_BYTES || len > ORDO_EPOCH_BYTES_MAX)
		return -EBADMSG;
	uint32_t bytes = ordo_ld32(epoch + 28);
	uint32_t count = ordo_ld32(epoch + 24);
	if (bytes != len)
		return -EBADMSG;
	/* Every record needs at least 40 bytes: bounds the walk below. */
	if (count > (len - ORDO_EPOCH_HDR_BYTES) / ORDO_EPOCH_REC_BYTES)
		return -EBADMSG;
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec r;
	for (uint32_t i = 0; i < count; i++)
		if (wire_epoch_next_rec(epoch, len, &off, &r) != 1)
			return -EBADMSG;
	if (off != len)
		return -EBADMSG; /* bytes past count records */
	h->epoch = ordo_ld64(epoch + 0);
	h->first_position = ordo_ld64(epoch + 8);
	h->timestamp_ns = ordo_ld64(epoch + 16);
	h->count = count;
	h->bytes = bytes;
	h->group = ordo_ld16(epoch + 32);
	h->from_epoch = ordo_ld64(epoch + 40);
	if (h->from_epoch == 0)
		h->from_epoch = h->epoch;
	if (h->epoch == 0 || h->from_epoch > h->epoch)
		return -EBADMSG;
	h->join_group = ordo_ld16(epoch + 34);
	h->join_after = ordo_ld32(epoch + 36);
	if (h->join_group == 0 ? h->join_after != 0
			       : h->join_group > ORDO_GROUPS_MAX || h->join_after == 0 ||
				     h->epoch > UINT64_MAX - h->join_after)
		return -EBADMSG;
	return 0;
}

/* ------------------------------------------------------------ EPOCH_DATA */

bool wire_put_epoch_data(struct wire_writer *w, const struct wire_epoch_data *d)
{
	ORDO_ASSERT(w->type == WIRE_EPOCH_DATA && w->len == ORDO_HDR_BYTES);
	ORDO_ASSERT((uint64_t)d->offset + d->data_bytes <= d->total_bytes);
	ORDO_ASSERT(d->data_bytes == 0 || d->data != NULL);
	uint64_t need = (uint64_t)ORDO_HDR_BYTES + WIRE_EPOCH_DATA_HEAD_BYTES +
			(((uint64_t)d->data_bytes + 7u) & ~(uint64_t)7u) + ORDO_MAC_BYTES;
	if (need > w->cap)
		return false;
	uint8_t head[WIRE_EPOCH_DATA_HEAD_BYTES];
	ordo_st64(head + 0, d->epoch);
	ordo_st64(head + 8, d->committed_epoch);
	ordo_st32(head + 16, d->total_bytes);
	ordo_st32(head + 20, d->offset);
	ordo_st32(head + 24, d->data_bytes);
	ordo_st16(head + 28, d->group);
	ordo_st16(head + 30, 0);
	bool ok = wire_put(w, head, sizeof head);
	ok = ok && wire_put(w, d->data, d->data_bytes);
	ORDO_ASSERT(ok);
	return true;
}

int wire_parse_epoch_data(const uint8_t *body, uint32_t body_len, struct wire_epoch_data *d)
{
	if (body_len < WIRE_EPOCH_DATA_HEAD_BYTES)
		return -EBADMSG;
	uint32_t total = ordo_ld32(body + 16);
	uint32_t offset = ordo_ld32(body + 20);
	uint32_t data_bytes = ordo_ld32(body + 24);
	if (total < ORDO_EPOCH_HDR_BYTES || total > ORDO_EPOCH_BYTES_MAX || total % 8u != 0)
		return -EBADMSG;
	if ((uint64_t)offset + data_bytes > total)
		return -EBADMSG;
	/* data_bytes <= 16 MiB here, so pad8 cannot wrap. */
	if (body_len != WIRE_EPOCH_DATA_HEAD_BYTES + pad8(data_bytes))
		return -EBADMSG;
	d->epoch = ordo_ld64(body + 0);
	d->committed_epoch = ordo_ld64(body + 8);
	d->total_bytes = total;
	d->offset = offset;
	d->data_bytes = data_bytes;
	d->group = ordo_ld16(body + 28);
	d->data = body + WIRE_EPOCH_DATA_HEAD_BYTES;
	return 0;
}

/* ---------------------------------------------------- NACK and HEARTBEAT */

#define WIRE_EPOCH_SMALL_BYTES 16u

void wire_put_epoch_nack(struct wire_writer *w, const struct wire_epoch_nack *n)
{
	ORDO_ASSERT(w->type == WIRE_EPOCH_NACK && w->len == ORDO_HDR_BYTES);
	uint8_t b[WIRE_EPOCH_SMALL_BYTES];
	ordo_st64(b + 0, n->from_epoch);
	ordo_st32(b + 8, n->count);
	ordo_st16(b + 12, n->group);
	ordo_st16(b + 14, 0);
	bool ok = wire_put(w, b, sizeof b);
	ORDO_ASSERT(ok);
}

int wire_parse_epoch_nack(const uint8_t *body, uint32_t body_len, struct wire_epoch_nack *n)
{
	if (body_len != WIRE_EPOCH_SMALL_BYTES)
		return -EBADMSG;
	n->from_epoch = ordo_ld64(body + 0);
	n->count = ordo_ld32(body + 8);
	n->group = ordo_ld16(body + 12);
	return 0;
}

void wire_put_epoch_heartbeat(struct wire_writer *w, const struct wire_epoch_heartbeat *h)
{
	ORDO_ASSERT(w->type == WIRE_EPOCH_HEARTBEAT && w->len == ORDO_HDR_BYTES);
	uint8_t b[WIRE_EPOCH_HEARTBEAT_BYTES];
	memset(b, 0, sizeof b);
	ordo_st64(b + 0, h->committed_epoch);
	ordo_st16(b + 8, h->group);
	ordo_st64(b + 16, h->retained_from);
	bool ok = wire_put(w, b, sizeof b);
	ORDO_ASSERT(ok);
}

int wire_parse_epoch_heartbeat(const uint8_t *body, uint32_t body_len,
			       struct wire_epoch_heartbeat *h)
{
	if (body_len != WIRE_EPOCH_SMALL_BYTES && body_len != WIRE_EPOCH_HEARTBEAT_BYTES)
		return -EBADMSG;
	h->committed_epoch = ordo_ld64(body + 0);
	h->group = ordo_ld16(body + 8);
	h->retained_from = body_len == WIRE_EPOCH_HEARTBEAT_BYTES ? ordo_ld64(body + 16) : 0;
	return 0;
}
