/*
 * The ordo client protocol (shared PROTOCOL.md, version 1) and the internal
 * epoch stream (docs/PROTOCOL.md): layouts, encode, decode and validate.
 *
 * Pure: no I/O, no clock, no allocation. Decoders never trust a length they
 * have not checked against the bytes they were given; every failure is a
 * return value (a drop reason, INVALID, -EBADMSG), never an assertion.
 *
 * What lives here: header and receipt rules 1-4 (wire_check), rule 5
 * (wire_type_accepted), the address tests of rule 6, the AUTH MAC, the
 * freshness cache of §3.7, and one encoder and one decoder per message.
 * What does not: deciding what to answer (sequencer/, replicas/).
 */
#ifndef ORDO_WIRE_H
#define ORDO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/constants.h"
#include "common/ordo_assert.h"

#define WIRE_MAGIC	  0x4F44524Fu /* "ORDO" */
#define WIRE_VERSION	  1u
#define WIRE_FLAG_AUTH	  0x0001u
#define WIRE_SECRET_BYTES 32u

/* Message types (PROTOCOL.md §3; 16-63 internal, docs/PROTOCOL.md). */
enum wire_type {
	WIRE_SUBMIT = 1,
	WIRE_ORDERED = 2,
	WIRE_APPLIED = 3,
	WIRE_FETCH = 4,
	WIRE_ENTRIES = 5,
	WIRE_STATUS_Q = 6,
	WIRE_STATUS = 7,
	WIRE_RESULT_Q = 8,
	WIRE_EPOCH_DATA = 16,	   /* sequencer -> replica: one fragment of a committed epoch */
	WIRE_EPOCH_NACK = 17,	   /* replica -> sequencer: resend epochs from .. */
	WIRE_EPOCH_HEARTBEAT = 18, /* sequencer -> replica: highest committed epoch */
	/* 19-29 Raft messages and 30-31 bulk fragments travel inside BULK (dataplane/bulk.h) */
	WIRE_MEMBER = 32,	 /* operator (ordo member) -> sequencer: add or remove a voter */
	WIRE_MEMBER_RESULT = 33, /* sequencer -> operator: the outcome (of GROUP_ADD too) */
	/* 34-37: state transfer between replicas (replicas/node.c) */
	WIRE_GROUP_ADD = 38, /* operator (ordo group add) -> sequencer: a group joins at an epoch */
};

/* ORDERED status codes (PROTOCOL.md §3.2). */
enum wire_status {
	WIRE_ST_OK = 0,
	WIRE_ST_DUPLICATE = 1,
	WIRE_ST_NOT_LEADER = 2,
	WIRE_ST_OVERLOADED = 3,
	WIRE_ST_INVALID = 4,
	WIRE_ST_SESSION_UNKNOWN = 5,
	WIRE_ST_STALE = 6,
};

/* Ops (PROTOCOL.md §4). */
enum wire_op {
	WIRE_OP_OPAQUE = 0,
	WIRE_OP_CREATE_ACCOUNT = 1,
	WIRE_OP_TRANSFER = 2,
	WIRE_OP_LOOKUP = 3,
};
#define WIRE_OP_COUNT 4

/* Ledger results (PROTOCOL.md §4). */
enum wire_result {
	WIRE_R_OK = 0,
	WIRE_R_ID_INVALID = 1,
	WIRE_R_FLAGS_INVALID = 2,
	WIRE_R_EXISTS = 3,
	WIRE_R_SAME_ACCOUNT = 4,
	WIRE_R_AMOUNT_ZERO = 5,
	WIRE_R_DEBIT_ACCOUNT_NOT_FOUND = 6,
	WIRE_R_CREDIT_ACCOUNT_NOT_FOUND = 7,
	WIRE_R_EXCEEDS_CREDITS = 8,
	WIRE_R_EXCEEDS_DEBITS = 9,
	WIRE_R_OVERFLOW = 10,
	WIRE_R_NOT_FOUND = 11,
	WIRE_R_LEDGER_FULL = 12,
	WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS = 13,
};

#define WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS 0x1u
#define WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS 0x2u

/* STATUS roles (PROTOCOL.md §3.5). */
enum wire_role {
	WIRE_ROLE_LEADER = 1,
	WIRE_ROLE_FOLLOWER = 2,
	WIRE_ROLE_CANDIDATE = 3,
	WIRE_ROLE_REPLICA = 4,
};

/* Why a datagram was dropped. Counted per reason by every receiver. */
enum wire_drop {
	WIRE_DROP_NONE = 0,
	WIRE_DROP_SHORT,	 /* rule 1: under 32 bytes (48 with AUTH) */
	WIRE_DROP_MAGIC,	 /* rule 1 */
	WIRE_DROP_VERSION,	 /* rule 1 */
	WIRE_DROP_FLAGS,	 /* rule 1: unknown flag bits */
	WIRE_DROP_LENGTH,	 /* rule 1: length field */
	WIRE_DROP_CHECKSUM,	 /* rule 2 */
	WIRE_DROP_CLUSTER,	 /* rule 3 */
	WIRE_DROP_KEY_UNKNOWN,	 /* rule 4: AUTH with a key_id we do not hold (or key_id 0) */
	WIRE_DROP_MAC,		 /* rule 4: bad MAC */
	WIRE_DROP_AUTH_REQUIRED, /* rule 4: receiver requires AUTH */
	WIRE_DROP_TYPE,		 /* rule 5: type not accepted on this port */
	WIRE_DROP_INTERNAL_PEER, /* rule 5: internal type from a non-member address */
	WIRE_DROP_INTERNAL_AUTH, /* rule 5: internal type without the node key's MAC */
	WIRE_DROP_UNTRUSTED,	 /* rule 6: no valid MAC and source not trusted */
	WIRE_DROP_SOURCE,	 /* rule 6: source port 0 or not unicast */
	WIRE_DROP_BODY,		 /* body length or layout wrong for its type */
	WIRE_DROP_COUNT_ZERO,	 /* §3.1.1: SUBMIT with count 0 */
	WIRE_DROP_NONCE_STALE,	 /* §3.7: nonce over 10 s from our clock */
	WIRE_DROP_NONCE_REPLAY,	 /* §3.7: (key_id, nonce) seen within 10 s */
	WIRE_DROP_NONCE_FULL,	 /* §3.7: freshness cache full (bounded) */
	WIRE_DROP_UNEXPECTED,	 /* a well-formed reply nobody waits for (clients) */
	WIRE_DROP_OVERLOAD,	 /* a queue was full: counted, not answered */
	WIRE_DROP__COUNT
};
const char *wire_drop_name(enum wire_drop d);
const char *wire_status_name(enum wire_status s);
const char *wire_result_name(enum wire_result r);
const char *wire_op_name(enum wire_op o);

/* ---------------------------------------------------------------- keys */

struct wire_key {
	uint32_t key_id;		   /* nonzero */
	uint8_t secret[WIRE_SECRET_BYTES]; /* BLAKE2b key */
};

/* A set of keys; keys[] sorted by key_id (wire_keyring_sort). */
struct wire_keyring {
	struct wire_key *keys;
	uint32_t count;
};
void wire_keyring_sort(struct wire_keyring *kr);
const struct wire_key *wire_keyring_find(const struct wire_keyring *kr, uint32_t key_id);

/* ------------------------------------------------------ header, rules 1-4 */

struct wire_hdr {
	uint8_t type;
	uint16_t flags;
	uint32_t length; /* header + body, MAC excluded */
	uint64_t cluster_id;
	uint32_t key_id; /* 0 without AUTH */
	bool authed;	 /* AUTH was set and the MAC verified */
};

struct wire_rx_ctx {
	uint64_t cluster_id;
	const struct wire_keyring *keys; /* keys this receiver holds; may be NULL */
	bool require_auth;
};

/* Applies receipt rules 1-4 of PROTOCOL.md §2.2 in order. On WIRE_DROP_NONE,
 * *hdr is filled; the body is dgram[32 .. hdr->length). */
enum wire_drop wire_check(const struct wire_rx_ctx *ctx, const uint8_t *dgram, size_t len,
			  struct wire_hdr *hdr);
/* The same, for a datagram wire_check already passed under the same ctx
 * (on another lcore): it skips rule 2's checksum and rule 4's MAC and fills
 * *hdr. Never for bytes that could have changed since. */
enum wire_drop wire_check_prechecked(const struct wire_rx_ctx *ctx, const uint8_t *dgram,
				     size_t len, struct wire_hdr *hdr);

/* Rule 5. */
enum wire_port_kind {
	WIRE_PORT_SEQUENCER, /* sequencer client port: SUBMIT, STATUS_Q */
	WIRE_PORT_REPLICA,   /* replica client port: FETCH, RESULT_Q, STATUS_Q */
	WIRE_PORT_INTERNAL,  /* node internal port: types 16-63 only */
	WIRE_PORT_CLIENT,    /* a client's own port: ORDERED, APPLIED, ENTRIES, STATUS */
};
bool wire_type_accepted(enum wire_port_kind port, uint8_t type);

/* Rule 6 address tests. Addresses are IPv4 in host byte order. */
struct wire_cidr {
	uint32_t net;  /* host order, already masked */
	uint32_t mask; /* host order, e.g. 0xFF000000 for /8 */
};
bool wire_cidr_parse(const char *text, struct wire_cidr *out); /* "a.b.c.d/n" or "a.b.c.d" */
bool wire_cidr_match(const struct wire_cidr *list, uint32_t count, uint32_t ip);
/* May a node answer (src_ip, src_port)? False for port 0, 0/8, 224/4, 240/4,
 * 255.255.255.255, and 127/8 unless it arrived on loopback. (Subnet
 * broadcast addresses are checked by the dataplane, which knows its subnets.) */
bool wire_source_answerable(uint32_t src_ip, uint16_t src_port, bool arrived_on_loopback);

/* ------------------------------------------------------------- encoding */

/* A message under construction in a caller-owned buffer. */
struct wire_writer {
	uint8_t *buf;
	uint32_t cap;	/* bytes usable for header + body + MAC */
	uint32_t len;	/* bytes written so far (header included) */
	uint32_t count; /* records added (SUBMIT, ORDERED, APPLIED, ENTRIES) */
	uint8_t type;
};

/* Writes the header (length, checksum and MAC come at finish). cap must be at
 * least 32 + 16. */
void wire_begin(struct wire_writer *w, uint8_t *buf, uint32_t cap, uint8_t type,
		uint64_t cluster_id);
/* Appends raw body bytes, zero padded to a multiple of 8. False if they do not
 * fit (leaving room for a MAC). */
bool wire_put(struct wire_writer *w, const void *bytes, uint32_t n);
/* Fills length, flags, key_id, checksum and (key != NULL) the MAC trailer.
 * For SUBMIT, ORDERED, APPLIED and ENTRIES it also writes the record count
 * (w->count: a caller that copies pre-encoded records with wire_put adds
 * them to w->count itself).
 * Returns the datagram length. */
uint32_t wire_finish(struct wire_writer *w, const struct wire_key *key);

/* One request of a SUBMIT (PROTOCOL.md §3.1). */
struct wire_req {
	uint64_t client_id;
	uint64_t request_number;
	uint64_t session;
	uint16_t op;
	uint16_t size;		/* payload bytes */
	const uint8_t *payload; /* size bytes; points into the datagram when decoded */
};

/* Place of an ordered request (PROTOCOL.md §3.2). */
struct wire_place {
	uint16_t group;
	uint32_t index;
	uint64_t epoch;
	uint64_t group_position;
};

struct wire_ordered_rec {
	uint64_t client_id;
	uint64_t request_number;
	uint16_t status;	 /* enum wire_status */
	struct wire_place place; /* zero unless OK or DUPLICATE */
};

struct wire_applied_rec {
	uint64_t client_id;
	uint64_t request_number;
	uint64_t position;
	uint32_t result;     /* enum wire_result */
	uint32_t size;	     /* 0 or 32 */
	const uint8_t *data; /* size bytes */
};

struct wire_entry_rec {
	uint64_t position;
	uint64_t epoch;
	uint64_t client_id;
	uint64_t request_number;
	uint16_t op;
	uint16_t size;
	uint32_t result;
	const uint8_t *payload; /* size bytes */
};

struct wire_entries_head {
	uint64_t nonce;
	uint64_t first_position;
	uint64_t applied_position;
	uint32_t count;
	uint32_t flags; /* WIRE_ENTRIES_* */
	uint8_t digest[16];
};
#define WIRE_ENTRIES_RETAINED_BEFORE 0x1u /* from_position older than retained history */
#define WIRE_ENTRIES_CAUGHT_UP	     0x2u /* from_position == applied_position + 1 */
#define WIRE_ENTRIES_BEYOND	     0x4u /* from_position > applied_position + 1 */

struct wire_fetch {
	uint64_t nonce;
	uint64_t from_position; /* 0 read as 1 by the replica, not by the codec */
	uint32_t max_bytes;
};

struct wire_status_msg {
	uint64_t nonce;
	uint32_t node_id;
	uint16_t role; /* enum wire_role */
	uint16_t group;
	uint64_t term;
	uint32_t leader_id;
	uint32_t window;
	uint64_t commit;
	uint64_t epoch;
	uint8_t digest[16];
	uint64_t requests;
	uint64_t dropped;
	uint32_t max_datagram;
	uint16_t groups;
	uint16_t replicas;
	uint64_t retained_from;
};

struct wire_result_q {
	uint64_t nonce;
	uint64_t client_id;
	uint64_t request_number;
};

/* Record-carrying messages: begin with the 8-byte head (count filled at
 * finish; aux is leader_hint for ORDERED, replica_id for APPLIED, reserved 0
 * for SUBMIT), then add records. An add returns false, writing nothing, when
 * the record does not fit. */
void wire_begin_records(struct wire_writer *w, uint32_t aux);
bool wire_add_submit(struct wire_writer *w, const struct wire_req *r);
bool wire_add_ordered(struct wire_writer *w, const struct wire_ordered_rec *r);
bool wire_add_applied(struct wire_writer *w, const struct wire_applied_rec *r);
/* ENTRIES: the 48-byte head (count is filled at finish), then records. */
void wire_begin_entries(struct wire_writer *w, const struct wire_entries_head *h);
bool wire_add_entry(struct wire_writer *w, const struct wire_entry_rec *r);
/* Bytes an ENTRIES record takes on the wire (also what the digest hashes). */
static inline uint32_t wire_entry_bytes(uint16_t size)
{
	return ORDO_ENTRY_REC_BYTES + (((uint32_t)size + 7u) & ~7u);
}
/* Writes one ENTRIES record to out (wire_entry_bytes(r->size) bytes). */
void wire_entry_encode(uint8_t *out, const struct wire_entry_rec *r);
/* Reads the ENTRIES record at p, of which avail bytes may be read: its
 * length (wire_entry_bytes), or 0 if it overruns avail or its size is past
 * ORDO_OPAQUE_BYTES_MAX. r->payload points into p. */
uint32_t wire_entry_decode(const uint8_t *p, uint32_t avail, struct wire_entry_rec *r);

/* Fixed-size messages: whole body in one call. */
void wire_put_fetch(struct wire_writer *w, const struct wire_fetch *f);
void wire_put_status_q(struct wire_writer *w, uint64_t nonce);
void wire_put_status(struct wire_writer *w, const struct wire_status_msg *s);
void wire_put_result_q(struct wire_writer *w, const struct wire_result_q *q);

/* ------------------------------------------------------------- decoding
 * Each takes the body (the bytes after the 32-byte header, hdr.length - 32
 * of them). */

/* SUBMIT (§3.1.1). Returns -EBADMSG if count is 0 (drop: WIRE_DROP_COUNT_ZERO)
 * or the body is shorter than its 8-byte head. Otherwise fills up to max
 * records whose fixed part lies wholly inside the datagram and returns how
 * many; *framing_ok says whether the framing is sound. When it is not, every
 * returned record is to be answered INVALID and none ordered. max must be at
 * least ORDO_RECS_PER_DATAGRAM_MAX. */
int wire_parse_submit(const uint8_t *body, uint32_t body_len, struct wire_req *recs, uint32_t max,
		      bool *framing_ok);
/* Per-record validity (§3.1.1) once the framing is sound: WIRE_ST_OK or
 * WIRE_ST_INVALID. authed/key_id describe the datagram's AUTH. */
enum wire_status wire_req_validate(const struct wire_req *r, bool authed, uint32_t key_id);

/* Record-carrying replies: the record count (>= 0), -EBADMSG for a malformed
 * body (dropped: WIRE_DROP_BODY), or -ENOBUFS for a well-formed body with
 * more than max records. Record pointers point into body. */
int wire_parse_ordered(const uint8_t *body, uint32_t body_len, uint32_t *leader_hint,
		       struct wire_ordered_rec *recs, uint32_t max);
int wire_parse_applied(const uint8_t *body, uint32_t body_len, uint32_t *replica_id,
		       struct wire_applied_rec *recs, uint32_t max);
int wire_parse_entries(const uint8_t *body, uint32_t body_len, struct wire_entries_head *h,
		       struct wire_entry_rec *recs, uint32_t max);
/* Fixed-size bodies: 0, or -EBADMSG on any other length (the message is
 * dropped, §3.4-3.6). Reserved and padding bytes are ignored. */
int wire_parse_fetch(const uint8_t *body, uint32_t body_len, struct wire_fetch *f);
int wire_parse_status_q(const uint8_t *body, uint32_t body_len, uint64_t *nonce);
int wire_parse_status(const uint8_t *body, uint32_t body_len, struct wire_status_msg *s);
int wire_parse_result_q(const uint8_t *body, uint32_t body_len, struct wire_result_q *q);

/* --------------------------------------------------- §3.7 freshness cache */

/* Remembers (key_id, nonce) pairs for ORDO_NONCE_WINDOW_NS. Capacity fixed at
 * init; storage is caller-provided (wire_nonce_cache_bytes(capacity)). */
struct wire_nonce_cache {
	struct wire_nonce_slot *slots;
	uint32_t capacity; /* power of two */
	uint32_t used;
};
size_t wire_nonce_cache_bytes(uint32_t capacity);
void wire_nonce_cache_init(struct wire_nonce_cache *c, void *mem, uint32_t capacity);
/* WIRE_DROP_NONE (and remembers it), or STALE, REPLAY, FULL. */
enum wire_drop wire_nonce_check(struct wire_nonce_cache *c, uint32_t key_id, uint64_t nonce,
				uint64_t now_real_ns);

/* ------------------------------------------------ internal: epoch stream
 * docs/PROTOCOL.md. An epoch (one sequencer log entry) is a byte string:
 * a 48-byte epoch header and its records. It travels to replicas in
 * EPOCH_DATA fragments of at most max_datagram. */

struct wire_epoch_hdr {
	uint64_t epoch;		 /* from 1 */
	uint64_t first_position; /* group_position of record 0 (from 1); next free if count 0 */
	uint64_t timestamp_ns;	 /* sealed by the leader, CLOCK_REALTIME */
	uint32_t count;		 /* records */
	uint32_t bytes;		 /* whole epoch, header included */
	uint16_t group;
	/* With several groups an entry may cover a run of epochs: from_epoch ..
	 * epoch - 1 are empty in this group, the records belong to epoch. Equal
	 * to epoch for a single epoch (encoded as 0). */
	uint64_t from_epoch;
	/* Adding a group (docs/SCALEOUT.md piece 5): group join_group - 1
	 * joins the merge at epoch `epoch + join_after`; 0 and 0: none. */
	uint16_t join_group;
	uint32_t join_after;
};

/* One request inside an epoch: what the ledger applies and the replica
 * answers. 40 bytes fixed, then the payload padded to 8. */
struct wire_epoch_rec {
	uint64_t client_id;
	uint64_t request_number;
	uint64_t session;
	uint16_t op;
	uint16_t size;
	uint32_t key_id;   /* AUTH key of the SUBMIT (0 without): APPLIED goes under it */
	uint32_t reply_ip; /* where APPLIED goes (host order) */
	uint16_t reply_port;
	const uint8_t *payload;
};
static inline uint32_t wire_epoch_rec_bytes(uint16_t size)
{
	return ORDO_EPOCH_REC_BYTES + (((uint32_t)size + 7u) & ~7u);
}
void wire_epoch_hdr_encode(uint8_t *out, const struct wire_epoch_hdr *h);
/* Writes one record at out; returns bytes written. */
uint32_t wire_epoch_rec_encode(uint8_t *out, const struct wire_epoch_rec *r);
/* Validates a whole epoch (header, every record's bounds, bytes matches len):
 * 0 or -EBADMSG. */
int wire_epoch_decode_hdr(const uint8_t *epoch, uint32_t len, struct wire_epoch_hdr *h);
/* Iterates: *off starts at ORDO_EPOCH_HDR_BYTES; returns 1 and advances, 0 at end,
 * -EBADMSG on a malformed record. */
int wire_epoch_next_rec(const uint8_t *epoch, uint32_t len, uint32_t *off,
			struct wire_epoch_rec *r);

/* EPOCH_DATA body: 32-byte head, then data_bytes of the epoch from offset. */
struct wire_epoch_data {
	uint64_t epoch;
	uint64_t committed_epoch; /* sender's highest committed epoch */
	uint32_t total_bytes;	  /* the whole epoch */
	uint32_t offset;	  /* of this fragment */
	uint32_t data_bytes;
	uint16_t group;
	const uint8_t *data;
};
#define WIRE_EPOCH_DATA_HEAD_BYTES 32u
bool wire_put_epoch_data(struct wire_writer *w, const struct wire_epoch_data *d);
int wire_parse_epoch_data(const uint8_t *body, uint32_t body_len, struct wire_epoch_data *d);

/* EPOCH_NACK body (16 bytes): resend epochs [from_epoch, from_epoch + count). */
struct wire_epoch_nack {
	uint64_t from_epoch;
	uint32_t count;
	uint16_t group;
};
void wire_put_epoch_nack(struct wire_writer *w, const struct wire_epoch_nack *n);
int wire_parse_epoch_nack(const uint8_t *body, uint32_t body_len, struct wire_epoch_nack *n);

/* MEMBER body (16 bytes): u64 nonce, u32 node_id, u8 op (1 add, 2 remove),
 * 3 reserved. MEMBER_RESULT body (24 bytes): u64 nonce (copied), i32 result
 * (0, or a negative errno: -EPERM not the leader, -EBUSY another change is
 * uncommitted, -EEXIST / -ENOENT), u32 leader_hint, u64 log index of the
 * configuration entry (0 unless result is 0). docs/PROTOCOL.md §1.5. */
/* GROUP_ADD body (24 bytes): u64 nonce, u64 first_epoch (the epoch the
 * group joins the merge at), u16 group, 6 reserved (zero). Answered with
 * MEMBER_RESULT (docs/PROTOCOL.md §1.7). */
#define WIRE_GROUP_ADD_BYTES	 24u
#define WIRE_MEMBER_BYTES	 16u
#define WIRE_MEMBER_RESULT_BYTES 24u
#define WIRE_MEMBER_ADD		 1u
#define WIRE_MEMBER_REMOVE	 2u

/* EPOCH_HEARTBEAT body (24 bytes): the sender's highest committed epoch and
 * the oldest epoch it can still resend on EPOCH_NACK (0: none; a replica
 * that needs an older one catches up by state transfer). A 16-byte body
 * (without retained_from) is accepted and read as retained_from 0. */
#define WIRE_EPOCH_HEARTBEAT_BYTES 24u
struct wire_epoch_heartbeat {
	uint64_t committed_epoch;
	uint16_t group;
	uint64_t retained_from;
};
void wire_put_epoch_heartbeat(struct wire_writer *w, const struct wire_epoch_heartbeat *h);
int wire_parse_epoch_heartbeat(const uint8_t *body, uint32_t body_len,
			       struct wire_epoch_heartbeat *h);

#endif
