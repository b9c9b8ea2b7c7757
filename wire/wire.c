/*
 * The ordo client protocol (shared PROTOCOL.md, version 1): the header and
 * receipt rules 1-4 (wire_check), rule 5 (wire_type_accepted), the address
 * tests of rule 6, the keyring, the AUTH MAC (keyed BLAKE2b, libsodium), the
 * writer, one encoder and one decoder per client message, the per-record
 * checks of §3.1.1, the freshness cache of §3.7, and the *_name() tables.
 *
 * What does not live here: the internal epoch stream (wire_epoch.c), deciding
 * whom to answer and what (sequencer/, replicas/), I/O of any kind.
 *
 * wire_check and wire_parse_submit run for every datagram on the sequencer's
 * hot path: no allocation, no per-byte work besides the CRC and the MAC.
 * Decoders check every length against the bytes they were given before
 * reading; bad input is a return value, never an assertion.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/crc32c.h"
#include "common/le.h"

ORDO_STATIC_ASSERT(ORDO_HDR_BYTES == 32, "header layout below assumes 32 bytes");
ORDO_STATIC_ASSERT(ORDO_MAC_BYTES == crypto_generichash_BYTES_MIN, "MAC is BLAKE2b-128");
ORDO_STATIC_ASSERT(WIRE_SECRET_BYTES == crypto_generichash_KEYBYTES, "secret is a BLAKE2b key");

static inline uint32_t pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

/* ------------------------------------------------------------------ names */

const char *wire_drop_name(enum wire_drop d)
{
	static const char *const names[WIRE_DROP__COUNT] = {
	    [WIRE_DROP_NONE] = "none",
	    [WIRE_DROP_SHORT] = "short",
	    [WIRE_DROP_MAGIC] = "magic",
	    [WIRE_DROP_VERSION] = "version",
	    [WIRE_DROP_FLAGS] = "flags",
	    [WIRE_DROP_LENGTH] = "length",
	    [WIRE_DROP_CHECKSUM] = "checksum",
	    [WIRE_DROP_CLUSTER] = "cluster",
	    [WIRE_DROP_KEY_UNKNOWN] = "key_unknown",
	    [WIRE_DROP_MAC] = "mac",
	    [WIRE_DROP_AUTH_REQUIRED] = "auth_required",
	    [WIRE_DROP_TYPE] = "type",
	    [WIRE_DROP_INTERNAL_PEER] = "internal_peer",
	    [WIRE_DROP_INTERNAL_AUTH] = "internal_auth",
	    [WIRE_DROP_UNTRUSTED] = "untrusted",
	    [WIRE_DROP_SOURCE] = "source",
	    [WIRE_DROP_BODY] = "body",
	    [WIRE_DROP_COUNT_ZERO] = "count_zero",
	    [WIRE_DROP_NONCE_STALE] = "nonce_stale",
	    [WIRE_DROP_NONCE_REPLAY] = "nonce_replay",
	    [WIRE_DROP_NONCE_FULL] = "nonce_full",
	    [WIRE_DROP_UNEXPECTED] = "unexpected",
	    [WIRE_DROP_OVERLOAD] = "overload",
	};
	if ((unsigned)d >= WIRE_DROP__COUNT || names[d] == NULL)
		return "unknown";
	return names[d];
}

const char *wire_status_name(enum wire_status s)
{
	static const char *const names[] = {
	    [WIRE_ST_OK] = "OK",
	    [WIRE_ST_DUPLICATE] = "DUPLICATE",
	    [WIRE_ST_NOT_LEADER] = "NOT_LEADER",
	    [WIRE_ST_OVERLOADED] = "OVERLOADED",
	    [WIRE_ST_INVALID] = "INVALID",
	    [WIRE_ST_SESSION_UNKNOWN] = "SESSION_UNKNOWN",
	    [WIRE_ST_STALE] = "STALE",
	};
	if ((unsigned)s >= ORDO_ARRAY_LEN(names))
		return "UNKNOWN";
	return names[s];
}

const char *wire_result_name(enum wire_result r)
{
	static const char *const names[] = {
	    [WIRE_R_OK] = "OK",
	    [WIRE_R_ID_INVALID] = "ID_INVALID",
	    [WIRE_R_FLAGS_INVALID] = "FLAGS_INVALID",
	    [WIRE_R_EXISTS] = "EXISTS",
	    [WIRE_R_SAME_ACCOUNT] = "SAME_ACCOUNT",
	    [WIRE_R_AMOUNT_ZERO] = "AMOUNT_ZERO",
	    [WIRE_R_DEBIT_ACCOUNT_NOT_FOUND] = "DEBIT_ACCOUNT_NOT_FOUND",
	    [WIRE_R_CREDIT_ACCOUNT_NOT_FOUND] = "CREDIT_ACCOUNT_NOT_FOUND",
	    [WIRE_R_EXCEEDS_CREDITS] = "EXCEEDS_CREDITS",
	    [WIRE_R_EXCEEDS_DEBITS] = "EXCEEDS_DEBITS",
	    [WIRE_R_OVERFLOW] = "OVERFLOW",
	    [WIRE_R_NOT_FOUND] = "NOT_FOUND",
	    [WIRE_R_LEDGER_FULL] = "LEDGER_FULL",
	    [WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS] = "EXISTS_WITH_DIFFERENT_FIELDS",
	};
	if ((unsigned)r >= ORDO_ARRAY_LEN(names))
		return "UNKNOWN";
	return names[r];
}

const char *wire_op_name(enum wire_op o)
{
	static const char *const names[] = {
	    [WIRE_OP_OPAQUE] = "OPAQUE",
	    [WIRE_OP_CREATE_ACCOUNT] = "CREATE_ACCOUNT",
	    [WIRE_OP_TRANSFER] = "TRANSFER",
	    [WIRE_OP_LOOKUP] = "LOOKUP",
	};
	if ((unsigned)o >= ORDO_ARRAY_LEN(names))
		return "UNKNOWN";
	return names[o];
}

/* ------------------------------------------------------------------ keys */

static int key_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct wire_key *)a)->key_id;
	uint32_t y = ((const struct wire_key *)b)->key_id;
	return (x > y) - (x < y);
}

void wire_keyring_sort(struct wire_keyring *kr)
{
	ORDO_ASSERT(kr != NULL);
	if (kr->count > 1)
		qsort(kr->keys, kr->count, sizeof(kr->keys[0]), key_cmp);
}

const struct wire_key *wire_keyring_find(const struct wire_keyring *kr, uint32_t key_id)
{
	if (kr == NULL || kr->count == 0 || key_id == 0)
		return NULL;
	uint32_t lo = 0, hi = kr->count; /* search [lo, hi) */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t k = kr->keys[mid].key_id;
		if (k == key_id)
			return &kr->keys[mid];
		if (k < key_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---------------------------------------------------------- header, MAC */

/* §2.1: CRC-32C of the first len bytes with bytes 12..15 taken as 0. */
static uint32_t hdr_checksum(const uint8_t *dgram, uint32_t len)
{
	static const uint8_t zero4[4];
	uint32_t st = ordo_crc32c_init();
	st = ordo_crc32c_update(st, dgram, 12);
	st = ordo_crc32c_update(st, zero4, 4);
	st = ordo_crc32c_update(st, dgram + 16, len - 16u);
	return ordo_crc32c_final(st);
}

/* §2.1: keyed BLAKE2b with a 16-byte output over the first len bytes. */
static void mac_compute(uint8_t out[ORDO_MAC_BYTES], const uint8_t *msg, uint32_t len,
			const struct wire_key *key)
{
	int rc = crypto_generichash(out, ORDO_MAC_BYTES, msg, len, key->secret, WIRE_SECRET_BYTES);
	ORDO_ASSERT(rc == 0);
}

static inline enum wire_drop check(const struct wire_rx_ctx *ctx, const uint8_t *dgram, size_t len,
				   struct wire_hdr *hdr, bool digests)
{
	/* Rule 1. */
	if (ORDO_UNLIKELY(len < ORDO_HDR_BYTES))
		return WIRE_DROP_SHORT;
	if (ORDO_UNLIKELY(ordo_ld32(dgram) != WIRE_MAGIC))
		return WIRE_DROP_MAGIC;
	if (ORDO_UNLIKELY(dgram[4] != WIRE_VERSION))
		return WIRE_DROP_VERSION;
	uint16_t flags = ordo_ld16(dgram + 6);
	if (ORDO_UNLIKELY((flags & ~WIRE_FLAG_AUTH) != 0))
		return WIRE_DROP_FLAGS;
	bool auth = (flags & WIRE_FLAG_AUTH) != 0;
	if (ORDO_UNLIKELY(auth && len < ORDO_HDR_BYTES + ORDO_MAC_BYTES))
		return WIRE_DROP_SHORT;
	uint32_t length = ordo_ld32(dgram + 8);
	size_t expect = len - (auth ? ORDO_MAC_BYTES : 0u);
	if (ORDO_UNLIKELY(length % 8u != 0 || length < ORDO_HDR_BYTES || length != expect))
		return WIRE_DROP_LENGTH;

	/* Rule 2. */
	if (ORDO_UNLIKELY(digests && hdr_checksum(dgram, length) != ordo_ld32(dgram + 12)))
		return WIRE_DROP_CHECKSUM;

	/* Rule 3. */
	uint64_t cluster_id = ordo_ld64(dgram + 16);
	if (ORDO_UNLIKELY(cluster_id != ctx->cluster_id))
		return WIRE_DROP_CLUSTER;

	/* Rule 4. */
	uint32_t key_id = 0;
	if (auth) {
		key_id = ordo_ld32(dgram + 24);
		const struct wire_key *key = wire_keyring_find(ctx->keys, key_id);
		if (key == NULL)
			return WIRE_DROP_KEY_UNKNOWN;
		if (digests) {
			uint8_t mac[ORDO_MAC_BYTES];
			mac_compute(mac, dgram, length, key);
			if (crypto_verify_16(mac, dgram + length) != 0)
				return WIRE_DROP_MAC;
		}
	} else if (ctx->require_auth) {
		return WIRE_DROP_AUTH_REQUIRED;
	}

	hdr->type = dgram[5];
	hdr->flags = flags;
	hdr->length = length;
	hdr->cluster_id = cluster_id;
	hdr->key_id = key_id;
	hdr->authed = auth;
	return WIRE_DROP_NONE;
}

enum wire_drop wire_check(const struct wire_rx_ctx *ctx, const uint8_t *dgram, size_t len,
			  struct wire_hdr *hdr)
{
	return check(ctx, dgram, len, hdr, true);
}

enum wire_drop wire_check_prechecked(const struct wire_rx_ctx *ctx, const uint8_t *dgram,
				     size_t len, struct wire_hdr *hdr)
{
	return check(ctx, dgram, len, hdr, false);
}

bool wire_type_accepted(enum wire_port_kind port, uint8_t type)
{
	switch (port) {
	case WIRE_PORT_SEQUENCER:
		return type == WIRE_SUBMIT || type == WIRE_STATUS_Q;
	case WIRE_PORT_REPLICA:
		return type == WIRE_FETCH || type == WIRE_RESULT_Q || type == WIRE_STATUS_Q;
	case WIRE_PORT_INTERNAL:
		/* 16-63; the peer address and node-key MAC are checked by the
		 * node, which knows its configuration (docs/PROTOCOL.md). */
		return type >= 16 && type <= 63;
	case WIRE_PORT_CLIENT:
		return type == WIRE_ORDERED || type == WIRE_APPLIED || type == WIRE_ENTRIES ||
		       type == WIRE_STATUS;
	}
	return false;
}

/* --------------------------------------------------------- rule 6 addresses */

/* Parses a decimal number of at most max_digits digits, at most max. */
static bool parse_dec(const char **p, uint32_t max, uint32_t *out)
{
	const char *s = *p;
	uint32_t v = 0;
	int digits = 0;
	while (*s >= '0' && *s <= '9') {
		if (++digits > 3)
			return false;
		v = v * 10u + (uint32_t)(*s - '0');
		s++;
	}
	if (digits == 0 || v > max)
		return false;
	*p = s;
	*out = v;
	return true;
}

bool wire_cidr_parse(const char *text, struct wire_cidr *out)
{
	if (text == NULL)
		return false;
	const char *p = text;
	uint32_t ip = 0;
	for (int i = 0; i < 4; i++) {
		uint32_t octet;
		if (!parse_dec(&p, 255, &octet))
			return false;
		ip = (ip << 8) | octet;
		if (i < 3 && *p++ != '.')
			return false;
	}
	uint32_t bits = 32;
	if (*p == '/') {
		p++;
		if (!parse_dec(&p, 32, &bits))
			return false;
	}
	if (*p != '\0')
		return false;
	uint32_t mask = bits == 0 ? 0u : ~0u << (32u - bits);
	out->net = ip & mask;
	out->mask = mask;
	return true;
}

bool wire_cidr_match(const struct wire_cidr *list, uint32_t count, uint32_t ip)
{
	for (uint32_t i = 0; i < count; i++)
		if ((ip & list[i].mask) == list[i].net)
			return true;
	return false;
}

bool wire_source_answerable(uint32_t src_ip, uint16_t src_port, bool arrived_on_loopback)
{
	if (src_port == 0)
		return false;
	uint32_t a = src_ip >> 24;
	if (a == 0)
		return false; /* 0.0.0.0/8 */
	if (a >= 224)
		return false; /* 224/4, 240/4, 255.255.255.255 */
	if (a == 127 && !arrived_on_loopback)
		return false;
	return true;
}

/* ---------------------------------------------------------------- writer */

void wire_begin(struct wire_writer *w, uint8_t *buf, uint32_t cap, uint8_t type,
		uint64_t cluster_id)
{
	ORDO_ASSERT(buf != NULL);
	ORDO_ASSERT(cap >= ORDO_HDR_BYTES + ORDO_MAC_BYTES);
	w->buf = buf;
	w->cap = cap;
	w->len = ORDO_HDR_BYTES;
	w->count = 0;
	w->type = type;
	ordo_st32(buf + 0, WIRE_MAGIC);
	buf[4] = WIRE_VERSION;
	buf[5] = type;
	ordo_st16(buf + 6, 0);
	ordo_st32(buf + 8, 0);
	ordo_st32(buf + 12, 0);
	ordo_st64(buf + 16, cluster_id);
	ordo_st32(buf + 24, 0);
	ordo_st32(buf + 28, 0);
}

/* Room for n more body bytes, keeping room for a MAC. */
static inline bool w_fits(const struct wire_writer *w, uint64_t n)
{
	return (uint64_t)w->len + n + ORDO_MAC_BYTES <= w->cap;
}

/* Reserves n bytes (a multiple of 8) and returns where they start. */
static inline uint8_t *w_take(struct wire_writer *w, uint32_t n)
{
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

bool wire_put(struct wire_writer *w, const void *bytes, uint32_t n)
{
	uint64_t padded = ((uint64_t)n + 7u) & ~(uint64_t)7u;
	if (!w_fits(w, padded))
		return false;
	uint8_t *p = w_take(w, (uint32_t)padded);
	if (n > 0)
		memcpy(p, bytes, n);
	memset(p + n, 0, (size_t)(padded - n));
	return true;
}

static bool type_has_count(uint8_t type)
{
	return type == WIRE_SUBMIT || type == WIRE_ORDERED || type == WIRE_APPLIED ||
	       type == WIRE_ENTRIES;
}

uint32_t wire_finish(struct wire_writer *w, const struct wire_key *key)
{
	uint8_t *b = w->buf;
	ORDO_ASSERT(w->len % 8u == 0 && w->len >= ORDO_HDR_BYTES);
	ORDO_ASSERT(w->len + ORDO_MAC_BYTES <= w->cap);
	if (type_has_count(w->type)) {
		uint32_t at = w->type == WIRE_ENTRIES ? ORDO_HDR_BYTES + 24u : ORDO_HDR_BYTES;
		ORDO_ASSERT(w->len >= at + 4u);
		ordo_st32(b + at, w->count);
	}
	ordo_st16(b + 6, key != NULL ? WIRE_FLAG_AUTH : 0);
	ordo_st32(b + 8, w->len);
	ordo_st32(b + 24, key != NULL ? key->key_id : 0);
	ordo_st32(b + 12, hdr_checksum(b, w->len));
	if (key == NULL)
		return w->len;
	ORDO_ASSERT(key->key_id != 0);
	mac_compute(b + w->len, b, w->len, key);
	return w->len + ORDO_MAC_BYTES;
}

void wire_begin_records(struct wire_writer *w, uint32_t aux)
{
	ORDO_ASSERT(w->type == WIRE_SUBMIT || w->type == WIRE_ORDERED || w->type == WIRE_APPLIED);
	ORDO_ASSERT(w->len == ORDO_HDR_BYTES);
	uint8_t *p = w_take(w, 8);
	ordo_st32(p, 0);
	ordo_st32(p + 4, w->type == WIRE_SUBMIT ? 0u : aux);
}

bool wire_add_submit(struct wire_writer *w, const struct wire_req *r)
{
	ORDO_ASSERT(w->type == WIRE_SUBMIT && w->len >= ORDO_HDR_BYTES + 8u);
	ORDO_ASSERT(r->size == 0 || r->payload != NULL);
	uint32_t n = ORDO_SUBMIT_REC_BYTES + pad8(r->size);
	if (!w_fits(w, n))
		return false;
	uint8_t *p = w_take(w, n);
	ordo_st64(p + 0, r->client_id);
	ordo_st64(p + 8, r->request_number);
	ordo_st64(p + 16, r->session);
	ordo_st16(p + 24, r->op);
	ordo_st16(p + 26, r->size);
	ordo_st32(p + 28, 0);
	if (r->size > 0)
		memcpy(p + 32, r->payload, r->size);
	memset(p + 32 + r->size, 0, pad8(r->size) - r->size);
	w->count++;
	return true;
}

bool wire_add_ordered(struct wire_writer *w, const struct wire_ordered_rec *r)
{
	ORDO_ASSERT(w->type == WIRE_ORDERED && w->len >= ORDO_HDR_BYTES + 8u);
	if (!w_fits(w, ORDO_ORDERED_REC_BYTES))
		return false;
	uint8_t *p = w_take(w, ORDO_ORDERED_REC_BYTES);
	ordo_st64(p + 0, r->client_id);
	ordo_st64(p + 8, r->request_number);
	ordo_st16(p + 16, r->status);
	ordo_st16(p + 18, r->place.group);
	ordo_st32(p + 20, r->place.index);
	ordo_st64(p + 24, r->place.epoch);
	ordo_st64(p + 32, r->place.group_position);
	w->count++;
	return true;
}

bool wire_add_applied(struct wire_writer *w, const struct wire_applied_rec *r)
{
	ORDO_ASSERT(w->type == WIRE_APPLIED && w->len >= ORDO_HDR_BYTES + 8u);
	ORDO_ASSERT(r->size == 0 || r->size == 32);
	ORDO_ASSERT(r->size == 0 || r->data != NULL);
	uint32_t n = ORDO_APPLIED_REC_BYTES + r->size; /* 0 or 32: already padded */
	if (!w_fits(w, n))
		return false;
	uint8_t *p = w_take(w, n);
	ordo_st64(p + 0, r->client_id);
	ordo_st64(p + 8, r->request_number);
	ordo_st64(p + 16, r->position);
	ordo_st32(p + 24, r->result);
	ordo_st32(p + 28, r->size);
	if (r->size > 0)
		memcpy(p + 32, r->data, r->size);
	w->count++;
	return true;
}

void wire_begin_entries(struct wire_writer *w, const struct wire_entries_head *h)
{
	ORDO_ASSERT(w->type == WIRE_ENTRIES && w->len == ORDO_HDR_BYTES);
	ORDO_ASSERT(w_fits(w, ORDO_ENTRIES_HEAD_BYTES));
	uint8_t *p = w_take(w, ORDO_ENTRIES_HEAD_BYTES);
	ordo_st64(p + 0, h->nonce);
	ordo_st64(p + 8, h->first_position);
	ordo_st64(p + 16, h->applied_position);
	ordo_st32(p + 24, 0); /* count: at finish */
	ordo_st32(p + 28, h->flags);
	memcpy(p + 32, h->digest, 16);
}

void wire_entry_encode(uint8_t *out, const struct wire_entry_rec *r)
{
	ORDO_ASSERT(r->size == 0 || r->payload != NULL);
	ordo_st64(out + 0, r->position);
	ordo_st64(out + 8, r->epoch);
	ordo_st64(out + 16, r->client_id);
	ordo_st64(out + 24, r->request_number);
	ordo_st16(out + 32, r->op);
	ordo_st16(out + 34, r->size);
	ordo_st32(out + 36, r->result);
	if (r->size > 0)
		memcpy(out + 40, r->payload, r->size);
	memset(out + 40 + r->size, 0, pad8(r->size) - r->size);
}

uint32_t wire_entry_decode(const uint8_t *p, uint32_t avail, struct wire_entry_rec *r)
{
	if (avail < ORDO_ENTRY_REC_BYTES)
		return 0;
	uint16_t size = ordo_ld16(p + 34);
	if (size > ORDO_OPAQUE_BYTES_MAX || avail - ORDO_ENTRY_REC_BYTES < pad8(size))
		return 0;
	r->position = ordo_ld64(p + 0);
	r->epoch = ordo_ld64(p + 8);
	r->client_id = ordo_ld64(p + 16);
	r->request_number = ordo_ld64(p + 24);
	r->op = ordo_ld16(p + 32);
	r->size = size;
	r->result = ordo_ld32(p + 36);
	r->payload = p + ORDO_ENTRY_REC_BYTES;
	return ORDO_ENTRY_REC_BYTES + (uint32_t)pad8(size);
}

bool wire_add_entry(struct wire_writer *w, const struct wire_entry_rec *r)
{
	ORDO_ASSERT(w->type == WIRE_ENTRIES && w->len >= ORDO_HDR_BYTES + ORDO_ENTRIES_HEAD_BYTES);
	uint32_t n = wire_entry_bytes(r->size);
	if (!w_fits(w, n))
		return false;
	wire_entry_encode(w_take(w, n), r);
	w->count++;
	return true;
}

/* A fixed-size body: the caller sized the buffer for it. */
static uint8_t *w_fixed(struct wire_writer *w, uint8_t type, uint32_t n)
{
	ORDO_ASSERT(w->type == type && w->len == ORDO_HDR_BYTES);
	ORDO_ASSERT(w_fits(w, n));
	uint8_t *p = w_take(w, n);
	memset(p, 0, n);
	return p;
}

void wire_put_fetch(struct wire_writer *w, const struct wire_fetch *f)
{
	uint8_t *p = w_fixed(w, WIRE_FETCH, ORDO_FETCH_BYTES);
	ordo_st64(p + 0, f->nonce);
	ordo_st64(p + 8, f->from_position);
	ordo_st32(p + 16, f->max_bytes);
}

void wire_put_status_q(struct wire_writer *w, uint64_t nonce)
{
	uint8_t *p = w_fixed(w, WIRE_STATUS_Q, ORDO_STATUS_BYTES);
	ordo_st64(p, nonce);
}

void wire_put_status(struct wire_writer *w, const struct wire_status_msg *s)
{
	uint8_t *p = w_fixed(w, WIRE_STATUS, ORDO_STATUS_BYTES);
	ordo_st64(p + 0, s->nonce);
	ordo_st32(p + 8, s->node_id);
	ordo_st16(p + 12, s->role);
	ordo_st16(p + 14, s->group);
	ordo_st64(p + 16, s->term);
	ordo_st32(p + 24, s->leader_id);
	ordo_st32(p + 28, s->window);
	ordo_st64(p + 32, s->commit);
	ordo_st64(p + 40, s->epoch);
	memcpy(p + 48, s->digest, 16);
	ordo_st64(p + 64, s->requests);
	ordo_st64(p + 72, s->dropped);
	ordo_st32(p + 80, s->max_datagram);
	ordo_st16(p + 84, s->groups);
	ordo_st16(p + 86, s->replicas);
	ordo_st64(p + 88, s->retained_from);
}

void wire_put_result_q(struct wire_writer *w, const struct wire_result_q *q)
{
	uint8_t *p = w_fixed(w, WIRE_RESULT_Q, ORDO_RESULT_Q_BYTES);
	ordo_st64(p + 0, q->nonce);
	ordo_st64(p + 8, q->client_id);
	ordo_st64(p + 16, q->request_number);
}

/* --------------------------------------------------------------- decoders */

int wire_parse_submit(const uint8_t *body, uint32_t body_len, struct wire_req *recs, uint32_t max,
		      bool *framing_ok)
{
	ORDO_ASSERT(max >= ORDO_RECS_PER_DATAGRAM_MAX);
	*framing_ok = false;
	if (body_len < 8)
		return -EBADMSG;
	uint32_t count = ordo_ld32(body);
	if (count == 0)
		return -EBADMSG;

	uint32_t off = 8, n = 0;
	bool sound = true;
	while (n < count) {
		if (body_len - off < ORDO_SUBMIT_REC_BYTES || n == max) {
			sound = false; /* count larger than fits */
			break;
		}
		const uint8_t *p = body + off;
		struct wire_req *r = &recs[n++];
		r->client_id = ordo_ld64(p + 0);
		r->request_number = ordo_ld64(p + 8);
		r->session = ordo_ld64(p + 16);
		r->op = ordo_ld16(p + 24);
		r->size = ordo_ld16(p + 26);
		uint32_t padded = pad8(r->size);
		off += ORDO_SUBMIT_REC_BYTES;
		if (body_len - off < padded) {
			/* Payload runs past length: answered INVALID, and its
			 * bytes are not ours to point at. */
			r->payload = NULL;
			sound = false;
			break;
		}
		r->payload = body + off;
		off += padded;
	}
	if (sound && off != body_len)
		sound = false; /* bytes left after count records */
	*framing_ok = sound;
	return (int)n;
}

enum wire_status wire_req_validate(const struct wire_req *r, bool authed, uint32_t key_id)
{
	if (r->client_id == 0 || r->request_number == 0)
		return WIRE_ST_INVALID;
	if (r->size > 0 && r->payload == NULL)
		return WIRE_ST_INVALID; /* from a broken frame: never judged sound */
	switch (r->op) {
	case WIRE_OP_OPAQUE:
		if (r->size > ORDO_OPAQUE_BYTES_MAX)
			return WIRE_ST_INVALID;
		break;
	case WIRE_OP_CREATE_ACCOUNT:
		/* u64 account_id, u32 flags, u32 reserved */
		if (r->size != 16 || ordo_ld32(r->payload + 12) != 0)
			return WIRE_ST_INVALID;
		break;
	case WIRE_OP_TRANSFER:
		if (r->size != 32)
			return WIRE_ST_INVALID;
		break;
	case WIRE_OP_LOOKUP:
		/* u64 account_id, u64 reserved */
		if (r->size != 16 || ordo_ld64(r->payload + 8) != 0)
			return WIRE_ST_INVALID;
		break;
	default:
		return WIRE_ST_INVALID;
	}
	if (r->request_number == 1 && (r->op != WIRE_OP_OPAQUE || r->size != 0 || r->session != 0))
		return WIRE_ST_INVALID;
	if (authed && (r->client_id >> 48) != (key_id & 0xFFFFu))
		return WIRE_ST_INVALID;
	return WIRE_ST_OK;
}

int wire_parse_ordered(const uint8_t *body, uint32_t body_len, uint32_t *leader_hint,
		       struct wire_ordered_rec *recs, uint32_t max)
{
	if (body_len < 8 || (body_len - 8u) % ORDO_ORDERED_REC_BYTES != 0)
		return -EBADMSG;
	uint32_t count = ordo_ld32(body);
	if (count == 0 || count != (body_len - 8u) / ORDO_ORDERED_REC_BYTES)
		return -EBADMSG;
	if (count > max)
		return -ENOBUFS;
	*leader_hint = ordo_ld32(body + 4);
	const uint8_t *p = body + 8;
	for (uint32_t i = 0; i < count; i++, p += ORDO_ORDERED_REC_BYTES) {
		struct wire_ordered_rec *r = &recs[i];
		r->client_id = ordo_ld64(p + 0);
		r->request_number = ordo_ld64(p + 8);
		r->status = ordo_ld16(p + 16);
		r->place.group = ordo_ld16(p + 18);
		r->place.index = ordo_ld32(p + 20);
		r->place.epoch = ordo_ld64(p + 24);
		r->place.group_position = ordo_ld64(p + 32);
	}
	return (int)count;
}

int wire_parse_applied(const uint8_t *body, uint32_t body_len, uint32_t *replica_id,
		       struct wire_applied_rec *recs, uint32_t max)
{
	if (body_len < 8)
		return -EBADMSG;
	uint32_t count = ordo_ld32(body);
	if (count == 0)
		return -EBADMSG;
	uint32_t off = 8;
	for (uint32_t i = 0; i < count; i++) {
		if (body_len - off < ORDO_APPLIED_REC_BYTES)
			return -EBADMSG;
		const uint8_t *p = body + off;
		uint32_t size = ordo_ld32(p + 28);
		if (size != 0 && size != 32)
			return -EBADMSG;
		off += ORDO_APPLIED_REC_BYTES;
		if (body_len - off < size)
			return -EBADMSG;
		if (i >= max)
			return -ENOBUFS;
		struct wire_applied_rec *r = &recs[i];
		r->client_id = ordo_ld64(p + 0);
		r->request_number = ordo_ld64(p + 8);
		r->position = ordo_ld64(p + 16);
		r->result = ordo_ld32(p + 24);
		r->size = size;
		r->data = size > 0 ? body + off : NULL;
		off += size;
	}
	if (off != body_len)
		return -EBADMSG;
	*replica_id = ordo_ld32(body + 4);
	return (int)count;
}

int wire_parse_entries(const uint8_t *body, uint32_t body_len, struct wire_entries_head *h,
		       struct wire_entry_rec *recs, uint32_t max)
{
	if (body_len < ORDO_ENTRIES_HEAD_BYTES)
		return -EBADMSG;
	uint32_t count = ordo_ld32(body + 24);
	uint32_t off = ORDO_ENTRIES_HEAD_BYTES;
	for (uint32_t i = 0; i < count; i++) {
		struct wire_entry_rec r;
		uint32_t n = wire_entry_decode(body + off, body_len - off, &r);
		if (n == 0)
			return -EBADMSG;
		if (i >= max)
			return -ENOBUFS;
		recs[i] = r;
		off += n;
	}
	if (off != body_len)
		return -EBADMSG;
	h->nonce = ordo_ld64(body + 0);
	h->first_position = ordo_ld64(body + 8);
	h->applied_position = ordo_ld64(body + 16);
	h->count = count;
	h->flags = ordo_ld32(body + 28);
	memcpy(h->digest, body + 32, 16);
	return (int)count;
}

int wire_parse_fetch(const uint8_t *body, uint32_t body_len, struct wire_fetch *f)
{
	if (body_len != ORDO_FETCH_BYTES)
		return -EBADMSG;
	f->nonce = ordo_ld64(body + 0);
	f->from_position = ordo_ld64(body + 8);
	f->max_bytes = ordo_ld32(body + 16);
	return 0;
}

int wire_parse_status_q(const uint8_t *body, uint32_t body_len, uint64_t *nonce)
{
	if (body_len != ORDO_STATUS_BYTES)
		return -EBADMSG;
	*nonce = ordo_ld64(body);
	return 0;
}

int wire_parse_status(const uint8_t *body, uint32_t body_len, struct wire_status_msg *s)
{
	if (body_len != ORDO_STATUS_BYTES)
		return -EBADMSG;
	s->nonce = ordo_ld64(body + 0);
	s->node_id = ordo_ld32(body + 8);
	s->role = ordo_ld16(body + 12);
	s->group = ordo_ld16(body + 14);
	s->term = ordo_ld64(body + 16);
	s->leader_id = ordo_ld32(body + 24);
	s->window = ordo_ld32(body + 28);
	s->commit = ordo_ld64(body + 32);
	s->epoch = ordo_ld64(body + 40);
	memcpy(s->digest, body + 48, 16);
	s->requests = ordo_ld64(body + 64);
	s->dropped = ordo_ld64(body + 72);
	s->max_datagram = ordo_ld32(body + 80);
	s->groups = ordo_ld16(body + 84);
	s->replicas = ordo_ld16(body + 86);
	s->retained_from = ordo_ld64(body + 88);
	return 0;
}

int wire_parse_result_q(const uint8_t *body, uint32_t body_len, struct wire_result_q *q)
{
	if (body_len != ORDO_RESULT_Q_BYTES)
		return -EBADMSG;
	q->nonce = ordo_ld64(body + 0);
	q->client_id = ordo_ld64(body + 8);
	q->request_number = ordo_ld64(body + 16);
	return 0;
}

/* ------------------------------------------------------ §3.7 freshness */

/* One remembered (key_id, nonce). expire_ns 0: never used. An entry is live
 * until max(nonce, time seen) + 10 s: "seen within the last 10 s", and for
 * as long as the nonce itself could pass the staleness test. */
struct wire_nonce_slot {
	uint64_t nonce;
	uint64_t expire_ns;
	uint32_t key_id;
	uint32_t reserved;
};

/* Linear probing over a bounded neighbourhood: a pair can only live in the
 * WIRE_NONCE_PROBE slots after its hash, so a check costs at most that many
 * slot reads, and expired slots are reused in place (no tombstones). */
#define WIRE_NONCE_PROBE 64u

size_t wire_nonce_cache_bytes(uint32_t capacity)
{
	return (size_t)capacity * sizeof(struct wire_nonce_slot);
}

void wire_nonce_cache_init(struct wire_nonce_cache *c, void *mem, uint32_t capacity)
{
	ORDO_ASSERT(mem != NULL);
	ORDO_ASSERT(capacity > 0 && (capacity & (capacity - 1)) == 0);
	memset(mem, 0, wire_nonce_cache_bytes(capacity));
	c->slots = mem;
	c->capacity = capacity;
	c->used = 0;
}

static inline uint64_t nonce_hash(uint32_t key_id, uint64_t nonce)
{
	/* splitmix64 finalizer */
	uint64_t x = nonce ^ ((uint64_t)key_id * 0x9E3779B97F4A7C15ull);
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

enum wire_drop wire_nonce_check(struct wire_nonce_cache *c, uint32_t key_id, uint64_t nonce,
				uint64_t now_real_ns)
{
	uint64_t dist = nonce > now_real_ns ? nonce - now_real_ns : now_real_ns - nonce;
	if (dist > ORDO_NONCE_WINDOW_NS)
		return WIRE_DROP_NONCE_STALE;

	uint32_t mask = c->capacity - 1u;
	uint32_t probe = c->capacity < WIRE_NONCE_PROBE ? c->capacity : WIRE_NONCE_PROBE;
	uint32_t at = (uint32_t)nonce_hash(key_id, nonce) & mask;
	struct wire_nonce_slot *free_slot = NULL;
	for (uint32_t i = 0; i < probe; i++) {
		struct wire_nonce_slot *s = &c->slots[(at + i) & mask];
		if (s->expire_ns == 0) {
			if (free_slot == NULL)
				free_slot = s;
			break; /* never used: nothing beyond it was placed from here */
		}
		if (s->expire_ns < now_real_ns) {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (s->key_id == key_id && s->nonce == nonce)
			return WIRE_DROP_NONCE_REPLAY;
	}
	if (free_slot == NULL)
		return WIRE_DROP_NONCE_FULL;
	if (free_slot->expire_ns == 0)
		c->used++;
	uint64_t base = nonce > now_real_ns ? nonce : now_real_ns;
	uint64_t expire =
	    base > UINT64_MAX - ORDO_NONCE_WINDOW_NS ? UINT64_MAX : base + ORDO_NONCE_WINDOW_NS;
	free_slot->key_id = key_id;
	free_slot->nonce = nonce;
	free_slot->expire_ns = expire;
	return WIRE_DROP_NONE;
}
