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

#endif
