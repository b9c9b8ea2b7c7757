/*
 * Reply coalescing for node drivers: records for the same destination (and
 * the same AUTH key) share datagrams. A node adds records as it decides them
 * and flushes once per loop turn, so one ORDERED or APPLIED datagram answers
 * many requests (PROTOCOL.md §3.2: replies do not map one to one onto
 * requests).
 *
 * Bounded: at most DP_REPLY_OPEN_MAX datagrams are open at once; opening one
 * more flushes the oldest. Buffers come from the transport's pool; an empty
 * pool drops the record and counts it (the client will retry).
 */
#ifndef ORDO_DP_REPLY_H
#define ORDO_DP_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/dp.h"
#include "wire/wire.h"

#define DP_REPLY_OPEN_MAX 64u

struct dp_reply_slot {
	struct dp_buf *buf; /* NULL when the slot is free */
	struct wire_writer w;
	struct dp_addr peer;
	const struct wire_key *key; /* AUTH key of the reply, or NULL */
	uint64_t seq;		    /* opening order, for oldest-first eviction */
};

struct dp_reply {
	struct dp_transport *t;
	uint64_t cluster_id;
	uint8_t type;	     /* WIRE_ORDERED or WIRE_APPLIED */
	uint32_t aux;	     /* leader_hint or replica_id */
	uint16_t local_port; /* send from this port */
	uint32_t nopen;
	uint64_t seq;
	uint64_t dropped; /* records lost to an empty pool */
	struct dp_reply_slot slots[DP_REPLY_OPEN_MAX];
};

void dp_reply_init(struct dp_reply *r, struct dp_transport *t, uint64_t cluster_id, uint8_t type,
		   uint32_t aux, uint16_t local_port);
/* Adds one ORDERED record for peer. */
void dp_reply_ordered(struct dp_reply *r, const struct dp_addr *peer, const struct wire_key *key,
		      const struct wire_ordered_rec *rec);
/* Adds one APPLIED record for peer. */
void dp_reply_applied(struct dp_reply *r, const struct dp_addr *peer, const struct wire_key *key,
		      const struct wire_applied_rec *rec);
/* Sends every open datagram. */
void dp_reply_flush(struct dp_reply *r);

#endif
