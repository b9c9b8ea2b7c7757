/*
 * The session table (PROTOCOL.md §3.1.2): exactly-once ordering per client
 * session with a window of W request numbers. Pure: no I/O, no clock, no
 * allocation after seq_sessions_init.
 *
 * Two kinds of state:
 *  - committed: what every node of the group derives by applying committed
 *    epochs in order (seq_sessions_apply). Deterministic, part of the
 *    replicated state, rebuilt after failover.
 *  - pending: what only the leader knows, requests it placed in an epoch that
 *    is not yet committed (seq_sessions_admit marks them). Dropped on loss of
 *    leadership (seq_sessions_clear_pending).
 *
 * Memory: sessions_max * 2W * 24 bytes of window slots, plus 64 bytes per
 * session, an open-addressed index of 2 * sessions_max u32, a pending-open
 * table (12 bytes per session) and 8 bytes per pending mark (cfg.pending_max).
 * All of it is zeroed, so pre-faulted, at init.
 *
 * Snapshot (issue 3: Raft snapshots of the sequencer state). The COMMITTED
 * state only (never pending marks, pending opens or the doomed prefix), with
 * a small sequencer-state header (struct seq_snap_hdr) the table stores
 * without interpreting. Little-endian, every part a multiple of 8 bytes:
 *
 * Header, 88 bytes:
 * | off | size | field |
 * |----:|-----:|-------|
 * | 0   | 4    | magic SEQ_SNAP_MAGIC ("OSNS" in memory order) |
 * | 4   | 4    | version SEQ_SNAP_VERSION (1) |
 * | 8   | 8    | total bytes of the encoding, header and trailer included |
 * | 16  | 4    | window W (must equal the table's) |
 * | 20  | 4    | sessions_max (must equal the table's) |
 * | 24  | 4    | session count, 0 .. sessions_max |
 * | 28  | 4    | seq_snap_hdr.join_after (0 before the first join, see below) |
 * | 32  | 8    | evictions so far (committed, deterministic) |
 * | 40  | 8    | seq_snap_hdr.raft_index |
 * | 48  | 8    | seq_snap_hdr.raft_term |
 * | 56  | 8    | seq_snap_hdr.epoch |
 * | 64  | 8    | seq_snap_hdr.group_position |
 * | 72  | 8    | seq_snap_hdr.epoch_ts_ns |
 * | 80  | 8    | seq_snap_hdr.join_epoch |
 *
 * join_epoch and join_after (docs/PROTOCOL.md §1.7, adding a group): the
 * epoch E from which the group orders, and E minus the epoch of the entry
 * that announced it; both 0 when no announcement of the group itself was
 * applied (a founding group; a joining one not yet announced). Otherwise
 * 1 <= join_after < join_epoch. Those two words were reserved (0) before,
 * so older snapshots read as "no announcement".
 *
 * Version 2 then has a joins table of ORDO_GROUPS_MAX entries of 16 bytes:
 * u64 first_epoch (the epoch group g joins at), u64 at_epoch (the epoch of
 * the entry that announced it), both 0 for none, else at_epoch <
 * first_epoch: every join this group committed, so a restarted member
 * still answers GROUP_ADD with what stands (-EEXIST, -EBUSY). Version 1
 * (no table) is still read.
 *
 * Then `count` sessions in eviction (LRU) order, the next victim first, each
 * a 64-byte record followed by its `slots` ordered numbers:
 * | off | size | field |
 * |----:|-----:|-------|
 * | 0   | 8    | client_id |
 * | 8   | 8    | session number (group_position of request 1), >= 1 |
 * | 16  | 8    | next: lowest request_number not yet ordered, >= 2 |
 * | 24  | 8    | group_position of the latest ordered request |
 * | 32  | 8    | epoch timestamp of the latest ordered request, ns |
 * | 40  | 8    | request 1's place: epoch |
 * | 48  | 4    | request 1's place: index |
 * | 52  | 2    | request 1's place: group |
 * | 54  | 2    | reserved, 0 |
 * | 56  | 4    | slots: ordered numbers in [next - W, next + W), 1 .. 2W - 1 |
 * | 60  | 4    | reserved, 0 |
 * Slot, 32 bytes, in increasing request_number:
 * | off | size | field |
 * |----:|-----:|-------|
 * | 0   | 8    | request_number n |
 * | 8   | 8    | place: epoch |
 * | 16  | 8    | place: group_position |
 * | 24  | 4    | place: index |
 * | 28  | 2    | place: group |
 * | 30  | 2    | reserved, 0 |
 *
 * Trailer, 8 bytes: u32 CRC-32C (RFC 3720) of every byte before the trailer,
 * u32 reserved 0.
 *
 * Size: 96 + sum over sessions of (64 + 32 * slots), at most
 * seq_sessions_snapshot_bytes_max(cfg) = 96 + sessions_max * (64 + 32 * (2W - 1))
 * (defaults: about 64 MiB; a typical table, W ordered numbers per session,
 * about half that).
 */
#ifndef ORDO_SEQ_SESSIONS_H
#define ORDO_SEQ_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

struct seq_session; /* opaque */

struct seq_sessions_cfg {
	uint32_t window;       /* W, power of two, 1 .. ORDO_SESSION_WINDOW_MAX */
	uint32_t sessions_max; /* 1 .. ORDO_SESSIONS_MAX_LIMIT */
	uint64_t idle_min_ns;  /* session_idle_min_ms in ns (epoch timestamps) */
	/* Most pending marks (requests admitted at the leader, not yet committed)
	 * held at once; past it admit answers OVERLOADED. 0 (or anything above)
	 * = sessions_max * W, the most that can ever be pending. Costs 8 bytes
	 * each (rounded up to a power of two). A driver may size it from the
	 * batcher's capacity ((inflight + 1) * epoch_bytes / 40). */
	uint64_t pending_max;
};

struct seq_sessions {
	struct seq_sessions_cfg cfg;
	/* Implementation state follows; treat as private. */
	void *mem;
	size_t mem_bytes;
	struct seq_session *sessions; /* sessions_max */
	void *slots;		      /* sessions_max * 2W slots */
	uint32_t *index;	      /* open addressing on client_id, 2 * sessions_max */
	uint32_t index_mask;
	uint32_t used;		     /* live sessions */
	uint32_t lru_head, lru_tail; /* by latest ordered group_position: head = lowest */
	uint32_t free_head;
	void *pending_opens; /* leader-only: client_ids whose request 1 is pending */
	uint32_t pending_opens_cap;
	uint32_t pending_opens_used;
	uint64_t evictions;
	/* Pending marks, leader-only: a FIFO ring of global slot numbers
	 * (session * 2W + ring index) in admit order. Every PENDING slot has an
	 * entry; entries whose slot is no longer PENDING are dropped lazily at the
	 * head (admit order is commit order, so the head resolves first). */
	uint64_t *pending_marks;
	uint64_t pending_marks_mask;  /* capacity - 1, capacity a power of two */
	uint64_t pending_marks_head;  /* index of the oldest entry (not wrapped) */
	uint64_t pending_marks_count; /* entries held, <= capacity */
	/* Sessions reserved for eviction by pending opens (leader-only): always a
	 * prefix of the LRU list, so that the victim every node picks when an open
	 * is applied is the one the leader checked and stopped ordering for. */
	uint32_t doomed_count;
	uint32_t doom_last;	       /* last session of the doomed prefix, or UINT32_MAX */
	uint32_t *pending_opens_index; /* open addressing on client_id into pending_opens */
	uint32_t pending_opens_mask;
	uint8_t index_shift;	     /* 64 - log2(index capacity): multiply-shift hash */
	uint8_t pending_opens_shift; /* the same for pending_opens_index */
};

/* Bytes seq_sessions_init will allocate for cfg (the documented budget); 0 if
 * cfg is invalid (seq_sessions_init answers -EINVAL). */
size_t seq_sessions_bytes(const struct seq_sessions_cfg *cfg);
ORDO_MUST_CHECK int seq_sessions_init(struct seq_sessions *t, const struct seq_sessions_cfg *cfg);
void seq_sessions_free(struct seq_sessions *t);

/* The leader's verdict on one valid request (wire_req_validate passed). */
enum seq_admit {
	SEQ_ADMIT_ORDER,      /* new: place it in the current epoch; it is now pending */
	SEQ_ADMIT_PENDING,    /* already pending (in an uncommitted epoch): no answer now */
	SEQ_ADMIT_DUPLICATE,  /* ordered before: answer DUPLICATE with *place */
	SEQ_ADMIT_STALE,      /* older than the window: answer STALE */
	SEQ_ADMIT_OVERLOADED, /* beyond the window, or no room for a new session: OVERLOADED */
	SEQ_ADMIT_UNKNOWN,    /* no such session: SESSION_UNKNOWN */
};

/* Judges request r at the leader, whose newest epoch timestamp is now_ns. On
 * SEQ_ADMIT_ORDER the request is marked pending (so a retry before commit
 * gets SEQ_ADMIT_PENDING). On SEQ_ADMIT_DUPLICATE *place is its original
 * place; otherwise *place is not written.
 *
 * Eviction at the leader: an opening request that will need an eviction when
 * applied reserves its victim (the next session in eviction order) and is
 * refused OVERLOADED if that victim ordered something within idle_min_ns of
 * now_ns or has requests pending. While reserved, the victim's new numbers
 * are answered OVERLOADED (retries of ordered ones still get DUPLICATE), so
 * none of its requests can be committed behind the open that evicts it. */
enum seq_admit seq_sessions_admit(struct seq_sessions *t, const struct wire_req *r, uint64_t now_ns,
				  struct wire_place *place);

/* Withdraws a pending mark without ordering (the epoch could not take it:
 * batch full). */
void seq_sessions_unadmit(struct seq_sessions *t, const struct wire_req *r);

/* Applies one committed request in order (every node, leader included):
 * opens the session (request 1; evicting deterministically when full),
 * records the place, advances next, clears a pending mark. Requests in a
 * committed epoch were admitted by some leader, so they are valid; apply is
 * nevertheless total: a record that the committed state says is a duplicate
 * or unknown is ignored and reported as false (it will not happen with a
 * correct leader; the simulator asserts it). epoch_ts_ns is the epoch's
 * timestamp. */
bool seq_sessions_apply(struct seq_sessions *t, const struct wire_req *r,
			const struct wire_place *place, uint64_t epoch_ts_ns);

/* Forget every pending mark (leadership lost, uncommitted epochs dropped). */
void seq_sessions_clear_pending(struct seq_sessions *t);

/* Live sessions. */
uint32_t seq_sessions_count(const struct seq_sessions *t);

/* ------------------------------------------------------------ snapshot */

#define SEQ_SNAP_MAGIC	       0x534E534Fu	       /* "OSNS" */
#define SEQ_SNAP_VERSION       2u		       /* 1: no joins table; still read */
#define SEQ_SNAP_JOINS_BYTES   (16u * ORDO_GROUPS_MAX) /* version 2, after the header */
#define SEQ_SNAP_HDR_BYTES     88u
#define SEQ_SNAP_SESSION_BYTES 64u
#define SEQ_SNAP_SLOT_BYTES    32u
#define SEQ_SNAP_TRAILER_BYTES 8u

/* The sequencer state a snapshot carries beside the sessions. The table
 * stores these values and gives them back; it does not interpret them. */
struct seq_snap_hdr {
	uint64_t raft_index;	 /* last Raft log index the state reflects (applied) */
	uint64_t raft_term;	 /* term of that entry */
	uint64_t epoch;		 /* last committed epoch number, 0 = none yet */
	uint64_t group_position; /* last group_position ordered, 0 = none yet */
	uint64_t epoch_ts_ns;	 /* timestamp of that epoch, ns */
	uint64_t join_epoch;	 /* E of the group's own applied announcement, 0 = none */
	uint64_t join_after;	 /* E minus the announcing entry's epoch, < 2^32 (32 bits in
				    the encoding); 0 iff join_epoch is 0 */
	/* Every group's committed join announcement (version 2): the epoch it
	 * joins at and the epoch of the entry that carried it; 0 and 0 none.
	 * A version 1 snapshot reads as none. */
	struct {
		uint64_t first_epoch, at_epoch;
	} joins[ORDO_GROUPS_MAX];
};

/* Largest encoding for cfg (every session with 2W - 1 ordered numbers); 0 if
 * cfg is invalid. */
size_t seq_sessions_snapshot_bytes_max(const struct seq_sessions_cfg *cfg);

/* Exact size of the encoding of t's committed state now. O(sessions * 2W). */
size_t seq_sessions_snapshot_bytes(const struct seq_sessions *t);

/* Encodes t's committed state and *h into out[0 .. *len). -ENOBUFS (nothing
 * written) if cap < seq_sessions_snapshot_bytes(t). Requires the Raft apply
 * contract: requests were applied in increasing group_position (asserted). */
ORDO_MUST_CHECK int seq_sessions_snapshot_write(const struct seq_sessions *t,
						const struct seq_snap_hdr *h, uint8_t *out,
						size_t cap, size_t *len);

/* Replaces t's committed state by the snapshot in[0 .. len) (len exactly the
 * encoding's size) and fills *h. Input from the network or disk: every field
 * is checked, nothing is allocated, nothing asserts on bad input.
 *   -EBADMSG: truncated, trailing bytes, CRC mismatch, unknown magic or
 *             version, a reserved field not 0, a join pair out of its rule,
 *             or a broken invariant;
 *   -EINVAL:  a well-formed snapshot of another configuration (W or
 *             sessions_max differ).
 * The pending (leader-only) state is always cleared first, as by
 * seq_sessions_clear_pending (a node installing a snapshot is a follower or
 * starting). On error the committed state, the evictions counter and *h are
 * left as they were. O(len + sessions * 2W). */
ORDO_MUST_CHECK int seq_sessions_snapshot_read(struct seq_sessions *t, const uint8_t *in,
					       size_t len, struct seq_snap_hdr *h);

#endif
