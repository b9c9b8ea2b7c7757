/*
 * The memory budget: every capacity in ordo, its default, its hard limit and
 * what it costs. Configuration may choose values inside the limits; nothing
 * may grow past them. The compile-time checks at the bottom keep the
 * relations between constants honest.
 *
 * Units are last in names: _bytes, _us, _ms, _ns, _max.
 */
#ifndef ORDO_CONSTANTS_H
#define ORDO_CONSTANTS_H

#include "ordo_assert.h"

/* ---- Wire (PROTOCOL.md §1, §2) ---- */
#define ORDO_HDR_BYTES		32u
#define ORDO_MAC_BYTES		16u
#define ORDO_DATAGRAM_MIN_MAX	1472u /* max_datagram may not be set below this (MTU 1500) */
#define ORDO_DATAGRAM_MAX	8972u /* jumbo frames (MTU 9000) */
#define ORDO_OPAQUE_BYTES_MAX	1024u /* PROTOCOL.md §4 */
#define ORDO_SUBMIT_REC_BYTES	32u   /* fixed part of a SUBMIT record */
#define ORDO_ORDERED_REC_BYTES	40u
#define ORDO_APPLIED_REC_BYTES	32u /* fixed part; LOOKUP data adds 32 */
#define ORDO_ENTRY_REC_BYTES	40u /* fixed part of an ENTRIES record */
#define ORDO_ENTRIES_HEAD_BYTES 48u
#define ORDO_STATUS_BYTES	96u
#define ORDO_FETCH_BYTES	24u
#define ORDO_RESULT_Q_BYTES	72u
/* Most records one datagram can carry (records of 32 bytes after an 8-byte head). */
#define ORDO_RECS_PER_DATAGRAM_MAX                                                                 \
	((ORDO_DATAGRAM_MAX - ORDO_HDR_BYTES - 8u) / ORDO_SUBMIT_REC_BYTES)

/* ---- Ports ---- */
#define ORDO_SEQ_CLIENT_PORT	   7400u
#define ORDO_REPLICA_CLIENT_PORT   7401u
#define ORDO_SEQ_INTERNAL_PORT	   7410u
#define ORDO_REPLICA_INTERNAL_PORT 7411u

/* ---- Sessions (PROTOCOL.md §3.1.2); cluster constants ---- */
#define ORDO_SESSION_WINDOW_DEFAULT 256u /* W */
#define ORDO_SESSION_WINDOW_MAX	    4096u
#define ORDO_SESSIONS_MAX_DEFAULT   4096u
#define ORDO_SESSIONS_MAX_LIMIT	    (1u << 20)
/* One window slot: the place of one ordered number (epoch, group_position, index, state). */
#define ORDO_SESSION_SLOT_BYTES 24u
/* Table cost: sessions_max * 2W * 24 bytes (~50 MiB at the defaults), plus the index. */

/* ---- Epochs ---- */
#define ORDO_EPOCH_US_DEFAULT	 1000u
#define ORDO_EPOCH_US_MIN	 50u
#define ORDO_EPOCH_US_MAX	 1000000u
#define ORDO_EPOCH_BYTES_DEFAULT (256u * 1024u)
#define ORDO_EPOCH_BYTES_MIN	 4096u
#define ORDO_EPOCH_BYTES_MAX	 (16u * 1024u * 1024u)
#define ORDO_EPOCH_HDR_BYTES	 48u
#define ORDO_EPOCH_REC_BYTES	 40u /* fixed part of one request inside an epoch */
/* Sealed epochs the leader may hold uncommitted; past it, SUBMIT gets OVERLOADED. */
#define ORDO_EPOCHS_INFLIGHT_DEFAULT 8u
#define ORDO_EPOCHS_INFLIGHT_MAX     64u
/* Bytes of committed epochs a sequencer keeps for replica repair. */
#define ORDO_EPOCH_LOG_BYTES_DEFAULT (64ull << 20)

/* ---- Raft (the sequencer group) ---- */
#define ORDO_TICK_MS		      10u  /* one Raft tick */
#define ORDO_ELECTION_MS_DEFAULT      150u /* timeout randomized in [T, 2T): failover < 1 s */
#define ORDO_HEARTBEAT_MS_DEFAULT     30u
#define ORDO_SNAPSHOT_ENTRIES_DEFAULT 10000u
#define ORDO_SNAPSHOT_BYTES_MAX	      (256ull << 20) /* sequencer state snapshot, held in memory */

/* ---- Ledger (PROTOCOL.md §4); cluster constants ---- */
#define ORDO_ACCOUNTS_MAX_DEFAULT  (1ull << 20)
#define ORDO_TRANSFERS_MAX_DEFAULT (1ull << 22)
#define ORDO_ACCOUNTS_MAX_LIMIT	   (1ull << 28)
#define ORDO_TRANSFERS_MAX_LIMIT   (1ull << 31)
/* Bytes of applied history a replica keeps for FETCH and RESULT_Q. */
#define ORDO_APPLIED_LOG_BYTES_DEFAULT (64ull << 20)
#define ORDO_CHECKPOINT_BYTES_DEFAULT  (256ull << 20)
/* A replica fdatasyncs its applied log at most once per 5 ms: not on the
 * APPLIED path, and a crash loses only what the stream and the sequencers'
 * epoch log give back. */
#define ORDO_APPLIED_SYNC_US_DEFAULT 5000u

/* ---- Replies ---- */
#define ORDO_APPLIED_REPLY_MAX_AGE_MS_DEFAULT 10000u
#define ORDO_SESSION_IDLE_MIN_MS_DEFAULT      10000u
/* Freshness of authenticated queries (PROTOCOL.md §3.7). */
#define ORDO_NONCE_WINDOW_NS	 (10ull * 1000 * 1000 * 1000)
#define ORDO_NONCE_CACHE_DEFAULT 65536u

/* ---- Configuration ---- */
#define ORDO_NODES_MAX	64u
#define ORDO_GROUPS_MAX 16u /* sequencer groups a replica merges (docs/SCALEOUT.md) */
#define ORDO_KEYS_MAX	256u
#define ORDO_CIDRS_MAX	32u

/* ---- Transport ---- */
#define ORDO_DP_PORTS_MAX    4u /* local UDP ports one transport serves */
#define ORDO_DP_BURST_MAX    64u
#define ORDO_DP_POOL_DEFAULT 4096u /* buffers per transport: pool x max_datagram bytes */
#define ORDO_DPDK_QUEUES_MAX 16u   /* RX/TX queue pairs of a DPDK port (dpdk_queues) */
#define ORDO_DPDK_LCORES_MAX 16u   /* lcores of a DPDK node's loops (dpdk_lcores) */

ORDO_STATIC_ASSERT(ORDO_HDR_BYTES % 8 == 0, "header size must be a multiple of 8");
ORDO_STATIC_ASSERT(ORDO_DATAGRAM_MIN_MAX <= ORDO_DATAGRAM_MAX, "datagram bounds");
ORDO_STATIC_ASSERT(ORDO_SESSION_WINDOW_DEFAULT <= ORDO_SESSION_WINDOW_MAX, "window bound");
ORDO_STATIC_ASSERT((ORDO_SESSION_WINDOW_MAX & (ORDO_SESSION_WINDOW_MAX - 1)) == 0,
		   "window max is a power of two");
ORDO_STATIC_ASSERT(ORDO_EPOCH_BYTES_MIN >=
		       ORDO_EPOCH_HDR_BYTES + ORDO_EPOCH_REC_BYTES + ORDO_OPAQUE_BYTES_MAX,
		   "an epoch must hold the largest request");
ORDO_STATIC_ASSERT(ORDO_EPOCH_BYTES_DEFAULT <= ORDO_EPOCH_BYTES_MAX, "epoch bytes bound");
ORDO_STATIC_ASSERT(ORDO_EPOCHS_INFLIGHT_DEFAULT <= ORDO_EPOCHS_INFLIGHT_MAX, "inflight bound");
ORDO_STATIC_ASSERT(ORDO_RECS_PER_DATAGRAM_MAX >= 256, "a jumbo SUBMIT holds many records");

#endif
