/*
 * Bulk message transport between sequencer nodes: opaque messages of up to
 * msg_max_bytes (Raft AppendEntries carrying whole epochs, InstallSnapshot
 * carrying the session table) cut into fragments that each fit one UDP
 * datagram, reassembled at the receiver, and repaired selectively: the
 * receiver NACKs only the fragments it is missing, so losing one fragment
 * costs one fragment, not the whole message. Wire layouts and repair rules:
 * docs/PROTOCOL.md §1.4 (BULK_FRAG = 30, BULK_NACK = 31).
 *
 * Pure: no I/O, no clock reads (time enters as now_ns, any monotonic clock),
 * no allocation after dp_bulk_create. Datagram BODIES (the bytes after the
 * 32-byte ordo header) leave through the emit callback given at create; the
 * caller wraps each with wire_begin / wire_put / wire_finish under the node
 * key, so checksum and MAC stay in one place (wire/). Bodies are always a
 * multiple of 8 bytes and at most dp_bulk_body_max(max_datagram) bytes, so
 * wire_put adds no padding and header + body + MAC fits max_datagram.
 *
 * What lives here: fragmentation, the per-peer retransmit store, reassembly,
 * duplicate suppression, NACK generation and handling, give-up. What does
 * not: addresses and node ids (peers are indices 0..peers-1; the driver maps
 * node ids), receipt rules 1-6 (dp_edge), pacing of large sends (every
 * fragment is emitted at once; a transmit queue that overflows simply loses
 * fragments, which NACKs then repair), and the Raft encoding of the messages
 * (sequencer/raft/raft_msg.c).
 *
 * Delivery is at most once per (incarnation, seq) while the seq is inside the
 * duplicate window (DP_BULK_DUP_WINDOW messages); messages may be delivered
 * in any order. A message all of whose fragments are lost is repaired only if
 * a later message from the same sender arrives (each fragment carries the
 * sender's highest seq sent, so the receiver sees the gap and NACKs the whole
 * message); the last message of a burst lost entirely is never delivered:
 * Raft resends. Nothing is ever acknowledged: the sender keeps each message
 * in a byte ring for at least store_hold_ns and overwrites the oldest after
 * that; a NACK for an overwritten message counts "unrepairable".
 *
 * Memory: one allocation at create, dp_bulk_mem_bytes(cfg) exactly. With
 *   nfrags_max = ceil(msg_max_bytes / DP_BULK_STRIDE_MIN)     (stride 1376)
 *   bitmap     = 8 * ceil(nfrags_max / 64)                    bytes per slot
 * it is, to within 64-byte rounding per array,
 *   2 * max_datagram
 *   + peers * ( store_bytes + 32 * store_msgs
 *             + reasm_bytes + reasm_slots * (72 + bitmap) + ~450 )
 * (32 bytes per stored-message descriptor, 72 per slot, ~450 per peer for
 * its state, its 1024-seq duplicate bitmap and its counters).
 * E.g. 4 peers, store 64 MiB and 4096 descriptors, reassembly 64 MiB in 8
 * slots, msg_max 32 MiB (bitmap 3056): 512.6 MiB. The defaults
 * (dp_bulk_cfg_default: 32 MiB store, 32 MiB reassembly) cost 64.15 MiB per
 * peer. The sizes to choose: reasm_bytes at least the largest message
 * (a snapshot), store_bytes at least the bytes Raft keeps in flight to a
 * peer over store_hold_ns.
 */
#ifndef ORDO_DP_BULK_H
#define ORDO_DP_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/constants.h"
#include "common/ordo_assert.h"

/* Internal datagram types (docs/PROTOCOL.md §1.4). 30 is the type the Raft
 * message range (19-29, sequencer/raft/raft.h) left spare. */
#define DP_BULK_TYPE_FRAG 30u
#define DP_BULK_TYPE_NACK 31u

#define DP_BULK_FRAG_HEAD_BYTES	 48u /* BULK_FRAG head before the data */
#define DP_BULK_NACK_HEAD_BYTES	 16u /* BULK_NACK head before the entries */
#define DP_BULK_NACK_ENTRY_BYTES 16u
/* A NACK entry with this nfrags asks for every fragment of the message. */
#define DP_BULK_NACK_ALL 0xFFFFFFFFu

/* Largest body that fits a datagram of max_datagram bytes with the 32-byte
 * header and a 16-byte MAC (docs/PROTOCOL.md §4.11), rounded down to 8. */
static inline uint32_t dp_bulk_body_max(uint32_t max_datagram)
{
	return (max_datagram - ORDO_HDR_BYTES - ORDO_MAC_BYTES) & ~7u;
}
/* Fragment data bytes (every fragment but the last holds exactly this). */
static inline uint32_t dp_bulk_stride(uint32_t max_datagram)
{
	return dp_bulk_body_max(max_datagram) - DP_BULK_FRAG_HEAD_BYTES;
}
#define DP_BULK_STRIDE_MIN                                                                         \
	(((ORDO_DATAGRAM_MIN_MAX - ORDO_HDR_BYTES - ORDO_MAC_BYTES) & ~7u) -                       \
	 DP_BULK_FRAG_HEAD_BYTES)
#define DP_BULK_STRIDE_MAX                                                                         \
	(((ORDO_DATAGRAM_MAX - ORDO_HDR_BYTES - ORDO_MAC_BYTES) & ~7u) - DP_BULK_FRAG_HEAD_BYTES)

/* Limits of the configuration. */
#define DP_BULK_MSG_BYTES_LIMIT	 (64u << 20) /* msg_max_bytes at most this */
#define DP_BULK_SLOTS_LIMIT	 256u	     /* reasm_slots at most this */
#define DP_BULK_STORE_MSGS_LIMIT (1u << 20)  /* store_msgs at most this */
/* Seqs and high_seqs are below this (a sender at 10^9 messages a second
 * would need 146 years to reach it); keeps every seq + window sum exact. */
#define DP_BULK_SEQ_LIMIT (1ull << 62)
/* Recently delivered seqs remembered per peer (a power of two). */
#define DP_BULK_DUP_WINDOW 1024u
/* NACK datagrams one peer may be sent in one dp_bulk_tick. */
#define DP_BULK_NACKS_PER_TICK 8u
/* Whole missing messages (gaps) listed per peer per dp_bulk_tick. */
#define DP_BULK_GAP_NACK_MAX 64u

ORDO_STATIC_ASSERT((DP_BULK_DUP_WINDOW & (DP_BULK_DUP_WINDOW - 1)) == 0, "window power of two");
ORDO_STATIC_ASSERT(DP_BULK_STRIDE_MIN % 8 == 0 && DP_BULK_STRIDE_MIN == 1376u,
		   "stride at MTU 1500");
ORDO_STATIC_ASSERT(DP_BULK_TYPE_FRAG >= 16 && DP_BULK_TYPE_NACK <= 63, "internal types");

/* Defaults (dp_bulk_cfg_default). */
#define DP_BULK_MSG_BYTES_DEFAULT	(32u << 20)
#define DP_BULK_STORE_BYTES_DEFAULT	(32u << 20)
#define DP_BULK_STORE_MSGS_DEFAULT	4096u
#define DP_BULK_REASM_SLOTS_DEFAULT	8u
#define DP_BULK_REASM_BYTES_DEFAULT	(32u << 20)
#define DP_BULK_REPAIR_DELAY_NS_DEFAULT (2ull * 1000 * 1000)	/* 2 ms */
#define DP_BULK_BACKOFF_MAX_NS_DEFAULT	(100ull * 1000 * 1000)	/* 100 ms */
#define DP_BULK_GIVEUP_NS_DEFAULT	(1000ull * 1000 * 1000) /* 1 s */
#define DP_BULK_STORE_HOLD_NS_DEFAULT	(100ull * 1000 * 1000)	/* 100 ms */

/* A datagram body to send to peer: DP_BULK_TYPE_FRAG or DP_BULK_TYPE_NACK,
 * len bytes (a multiple of 8). body is valid only during the call. The
 * callback must not call into this dp_bulk. */
typedef void dp_bulk_emit_fn(void *ctx, uint32_t peer, uint8_t type, const uint8_t *body,
			     uint32_t len);
/* A complete message from peer: len bytes at msg, valid only during the call.
 * The callback may call dp_bulk_send (e.g. to answer), nothing else of this
 * dp_bulk. */
typedef void dp_bulk_deliver_fn(void *ctx, uint32_t peer, uint64_t seq, const uint8_t *msg,
				uint32_t len);

struct dp_bulk_cfg {
	uint32_t max_datagram;	/* bytes, ORDO_DATAGRAM_MIN_MAX .. ORDO_DATAGRAM_MAX */
	uint32_t peers;		/* 1 .. ORDO_NODES_MAX */
	uint32_t msg_max_bytes; /* largest message sent or accepted, 1 .. DP_BULK_MSG_BYTES_LIMIT */
	uint64_t store_bytes;	/* retransmit byte ring per peer, >= msg_max_bytes rounded to 8 */
	uint32_t store_msgs;	/* messages the retransmit store indexes per peer, >= 1 */
	uint32_t reasm_slots; /* messages reassembled at once per peer, 1 .. DP_BULK_SLOTS_LIMIT */
	uint64_t reasm_bytes; /* reassembly bytes per peer (bigger messages are dropped) */
	uint64_t repair_delay_ns; /* quiet time before the first NACK of a message, > 0 */
	uint64_t backoff_max_ns;  /* NACK interval doubles up to this, >= repair_delay_ns */
	uint64_t giveup_ns;	  /* no progress for this long: slot freed, > repair_delay_ns */
	uint64_t store_hold_ns;	  /* a stored message is never overwritten younger than this */
	uint64_t incarnation;	  /* this node's life, nonzero, larger after every restart
				     (e.g. CLOCK_REALTIME ns at start) */
	dp_bulk_emit_fn *emit;	  /* where datagram bodies go */
	void *emit_ctx;
};

/* Per-peer counters. tx_* describe what this node sent to the peer, rx_*
 * what it received from the peer. */
struct dp_bulk_counters {
	uint64_t tx_msgs;	   /* messages accepted by dp_bulk_send */
	uint64_t tx_frags;	   /* fragments emitted the first time */
	uint64_t tx_nobufs;	   /* dp_bulk_send refused: store full (-ENOBUFS) */
	uint64_t tx_resent_frags;  /* fragments emitted again for a NACK */
	uint64_t tx_nacks_rx;	   /* well-formed NACKs received */
	uint64_t tx_nacks_bad;	   /* malformed NACKs, bad entries, other incarnation */
	uint64_t tx_unrepairable;  /* NACK entries for messages no longer stored */
	uint64_t rx_frags;	   /* well-formed fragments received */
	uint64_t rx_delivered;	   /* messages delivered */
	uint64_t rx_dup_frags;	   /* fragments already held or of a delivered message */
	uint64_t rx_stale;	   /* older incarnation, or seq below the duplicate window */
	uint64_t rx_drop_bad;	   /* malformed or inconsistent fragment */
	uint64_t rx_drop_too_big;  /* total_len over msg_max_bytes or reasm_bytes */
	uint64_t rx_drop_slots;	   /* no free slot or reassembly bytes for a new message */
	uint64_t rx_nacks_tx;	   /* NACK datagrams emitted */
	uint64_t rx_given_up;	   /* incomplete messages freed after giveup_ns */
	uint64_t rx_gaps_given_up; /* wholly missing messages no longer asked for */
	uint64_t rx_resets;	   /* the peer's incarnation changed */
};

struct dp_bulk;

/* Fills defaults for everything; the caller sets peers, max_datagram,
 * incarnation and emit. */
void dp_bulk_cfg_default(struct dp_bulk_cfg *cfg);
/* Bytes dp_bulk_create allocates for cfg (0 if cfg is invalid). */
size_t dp_bulk_mem_bytes(const struct dp_bulk_cfg *cfg);
/* 0, -EINVAL (cfg out of range) or -ENOMEM. */
ORDO_MUST_CHECK int dp_bulk_create(const struct dp_bulk_cfg *cfg, struct dp_bulk **out);
void dp_bulk_destroy(struct dp_bulk *b);

/* Sends msg (len bytes, len <= msg_max_bytes) to peer: assigns the next seq
 * (*seq_out if not NULL), copies it into the retransmit store and emits its
 * fragments. 0, -EMSGSIZE (len over msg_max_bytes) or -ENOBUFS (the store
 * would have to overwrite a message younger than store_hold_ns: the message
 * is not sent and the caller treats it as lost). */
ORDO_MUST_CHECK int dp_bulk_send(struct dp_bulk *b, uint32_t peer, const uint8_t *msg, uint32_t len,
				 uint64_t now_ns, uint64_t *seq_out);

/* A BULK_FRAG body from peer. Delivers a completed message through deliver.
 * 0 (accepted or delivered), -EALREADY (duplicate or stale), -EBADMSG
 * (malformed), -EMSGSIZE (too big) or -ENOBUFS (no slot); every non-zero
 * outcome is also counted. Never trusts any field. */
ORDO_MUST_CHECK int dp_bulk_recv(struct dp_bulk *b, uint32_t peer, const uint8_t *body,
				 uint32_t body_len, uint64_t now_ns, dp_bulk_deliver_fn *deliver,
				 void *ctx);
/* A BULK_NACK body from peer: re-emits the listed fragments still stored.
 * 0, or -EBADMSG (malformed or another incarnation: counted, nothing sent). */
ORDO_MUST_CHECK int dp_bulk_recv_nack(struct dp_bulk *b, uint32_t peer, const uint8_t *body,
				      uint32_t body_len, uint64_t now_ns);

/* Timers: NACKs for incomplete messages and gaps, give-up. Call at least
 * every repair_delay_ns / 2 while dp_bulk_next_deadline says work is due. */
void dp_bulk_tick(struct dp_bulk *b, uint64_t now_ns);
/* Earliest time dp_bulk_tick has something to do, or UINT64_MAX. */
uint64_t dp_bulk_next_deadline(const struct dp_bulk *b);

const struct dp_bulk_counters *dp_bulk_counters(const struct dp_bulk *b, uint32_t peer);
/* Messages currently being reassembled from peer. */
uint32_t dp_bulk_slots_used(const struct dp_bulk *b, uint32_t peer);

#endif
