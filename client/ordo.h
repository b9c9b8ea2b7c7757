/*
 * libordo: the C client of an ordo cluster (PROTOCOL.md).
 *
 * One struct ordo_client holds a session with a sequencer group and a window
 * of requests in flight. It numbers requests, batches them into SUBMIT
 * datagrams, resends unanswered ones (following leader hints, backing off on
 * OVERLOADED), and reports ORDERED and APPLIED answers as events. It also
 * offers the synchronous queries: STATUS, FETCH and RESULT_Q.
 *
 * Pinned or spread (ordo_client_cfg.spread). A pinned client (the default)
 * holds one session, in ordo_client_cfg.group. A spread client holds one
 * session in every sequencer group of the cluster file (a session lives in
 * the group that ordered its request 1 and no other group orders it:
 * PROTOCOL.md §3.1.2), each with its own client_id, request numbers, window,
 * leader and retries, and sends each new request to the group whose session
 * has the most window room (round-robin among equals). Request numbers then
 * repeat across groups: a request is named by (group, request_number), which
 * ordo_submit_group returns and every event carries (with the session's
 * client_id, for RESULT_Q). In a pinned client the group is always
 * ordo_client_cfg.group, so request_number alone names a request.
 *
 * Not thread-safe: one thread drives one client (run several clients for
 * parallel load). Memory is fixed at open: per group held, window slots of
 * ~1.1 KiB each; an event queue of 8 x window x groups held + 8 datagrams'
 * worth; the transport's buffer pool.
 */
#ifndef ORDO_CLIENT_H
#define ORDO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "wire/wire.h"

struct ordo_client;
struct dp_transport;

struct ordo_client_cfg {
	const struct cfg_cluster *cluster; /* nodes, cluster_id, keys; must outlive the client */
	uint32_t key_id;		   /* 0: no AUTH; else a [key N] of the cluster file */
	uint16_t group;			   /* pinned: sequencer group that holds the session */
	/* false (default): pinned to `group`. true: spread, a session in each of
	 * the cluster's cfg_groups() groups; `group` is ignored */
	bool spread;
	uint32_t window; /* requests outstanding at most, per group held; 0 = W; at most W */
	/* resend an unanswered request after max(retry_ns, srtt + 4 rttvar), the
	 * round trip measured on ORDERED answers (RFC 6298; 0: 20 ms) */
	uint64_t retry_ns;
	uint64_t retry_max_ns; /* backoff cap (0: 500 ms) */
	const char *fault;     /* fault injection spec for the client's transport (tests) */
	/* NULL (default): the client opens a kernel UDP socket of its own.
	 * Else the transport to use (dataplane/dp.h), borrowed: it must outlive
	 * the client, and only this client may use it; `ordo bench --transport
	 * dpdk` gives each client a view of one DPDK port (dataplane/share.h).
	 * fault must be NULL or "" with a borrowed transport (else -EINVAL). */
	struct dp_transport *transport;
};

enum ordo_event_kind {
	ORDO_EV_ORDERED = 1, /* ORDERED OK, DUPLICATE or STALE: the request is ordered */
	ORDO_EV_APPLIED = 2, /* APPLIED from a replica: result (and LOOKUP data). It may come
			      * first: it answers the request too (§3.3), and an ORDERED
			      * arriving after it is then not reported. Wait for either. */
	ORDO_EV_FAILED = 3,  /* INVALID, or SESSION_UNKNOWN: not ordered in this session */
};

struct ordo_event {
	enum ordo_event_kind kind;
	uint64_t request_number;
	uint16_t group;		 /* group of the request's session: (group, request_number)
				  * names the request (pinned: always cfg.group) */
	uint64_t client_id;	 /* that session's client_id (for RESULT_Q) */
	uint16_t status;	 /* ORDERED / FAILED: enum wire_status */
	struct wire_place place; /* ORDERED with OK or DUPLICATE */
	uint64_t position;	 /* APPLIED */
	uint32_t result;	 /* APPLIED: enum wire_result */
	uint32_t replica_id;	 /* APPLIED */
	uint32_t data_size;	 /* APPLIED: 0 or 32 */
	uint8_t data[32];
};

struct ordo_client_stats {
	uint64_t datagrams_sent;
	uint64_t requests_sent;	  /* records sent, retries included */
	uint64_t retries;	  /* records resent */
	uint64_t status_count[8]; /* ORDERED records received by status */
	uint64_t applied;	  /* APPLIED records received */
	uint64_t dropped;	  /* replies dropped by the receipt rules */
	uint64_t events_lost;	  /* event queue full (caller did not poll) */
	uint64_t srtt_ns;	  /* smoothed ORDERED round trip (RFC 6298), 0 before a sample */
	uint64_t rto_ns;	  /* current retransmission timeout */
	/* resends found unneeded: the first send's ORDERED OK came back sooner
	 * after the resend than any round trip takes (its round trip then
	 * counts in srtt) */
	uint64_t spurious_retries;
};

ORDO_MUST_CHECK int ordo_client_open(const struct ordo_client_cfg *cfg, struct ordo_client **out);
void ordo_client_close(struct ordo_client *c);

/* Opens a new session (a fresh client_id; request 1). Waits up to timeout_ns.
 * 0, -ETIMEDOUT, or another negative errno.
 * Spread: opens a session, each with a fresh client_id, in every group that
 * holds no live one (every group the first time; the openings run at once),
 * and leaves live sessions and their requests alone. 0 once every group holds
 * a live session; on an error the groups that did open keep their sessions
 * and take requests, and a later call retries the others. Poll the events
 * first: the openings wait for room in the event queue. */
ORDO_MUST_CHECK int ordo_session_open(struct ordo_client *c, uint64_t timeout_ns);
/* The session's client_id and number (spread: those of group 0's session). */
uint64_t ordo_client_id(const struct ordo_client *c);
uint64_t ordo_session(const struct ordo_client *c);
/* True while the session is usable (opened, not answered SESSION_UNKNOWN).
 * Spread: while every group's session is; a spread client whose session in
 * one group is lost goes on sending new requests to the others. */
bool ordo_session_live(const struct ordo_client *c);
/* The session this client holds in `group`: 0 with its client_id and number,
 * -ENOTCONN if it is not live (client_id and number are then the last ones),
 * -ENOENT if the client holds none there (pinned to another group, or no
 * such group). */
ORDO_MUST_CHECK int ordo_group_session(const struct ordo_client *c, uint16_t group,
				       uint64_t *client_id, uint64_t *session);

/* Queues one request; it is sent by the next ordo_poll. Returns 0 and its
 * number, -EAGAIN when the window is full (poll, then retry), -ENOTCONN
 * without a live session, -EINVAL for a payload over 1024 bytes.
 * Spread: a request goes to the live session with the most window room;
 * -EAGAIN when every live session's window is full, -ENOTCONN when none is
 * live. Its number alone does not name it: use ordo_submit_group. */
ORDO_MUST_CHECK int ordo_submit(struct ordo_client *c, uint16_t op, const void *payload,
				uint16_t size, uint64_t *request_number);
/* ordo_submit that also returns the group whose session took the request
 * (either output may be NULL): the (group, request_number) its events carry. */
ORDO_MUST_CHECK int ordo_submit_group(struct ordo_client *c, uint16_t op, const void *payload,
				      uint16_t size, uint16_t *group, uint64_t *request_number);
/* Requests queued or sent and not yet ordered (spread: in all groups). */
uint32_t ordo_outstanding(const struct ordo_client *c);

/* Sends what is due, receives for up to timeout_ns (returning early once
 * there are events), and returns the number of events written (up to max). */
int ordo_poll(struct ordo_client *c, uint64_t timeout_ns, struct ordo_event *ev, unsigned max);

/* Synchronous queries, answered by node node_id of the cluster file. */
ORDO_MUST_CHECK int ordo_status(struct ordo_client *c, uint32_t node_id,
				struct wire_status_msg *out, uint64_t timeout_ns);
/* FETCH from a replica. The datagram is copied into buf (at least
 * max_datagram bytes); recs point into it. Returns the record count. */
ORDO_MUST_CHECK int ordo_fetch(struct ordo_client *c, uint32_t node_id, uint64_t from_position,
			       uint32_t max_bytes, struct wire_entries_head *head,
			       struct wire_entry_rec *recs, uint32_t max, uint8_t *buf,
			       uint64_t timeout_ns);
/* RESULT_Q to each replica in turn until one answers. 0 and *out, or
 * -ENOENT if none answered within timeout_ns. */
ORDO_MUST_CHECK int ordo_result_q(struct ordo_client *c, uint64_t client_id,
				  uint64_t request_number, struct ordo_event *out,
				  uint64_t timeout_ns);

/* Submits one request and waits for its APPLIED (asking RESULT_Q if only
 * ORDERED came). Returns 0 and the event, or a negative errno. For LOOKUP
 * and the CLI. */
ORDO_MUST_CHECK int ordo_call(struct ordo_client *c, uint16_t op, const void *payload,
			      uint16_t size, struct ordo_event *applied, uint64_t timeout_ns);

const struct ordo_client_stats *ordo_client_stats(const struct ordo_client *c);

#endif
