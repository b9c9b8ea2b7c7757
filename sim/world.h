/* The simulated world: nodes, network, disks, clients, replicas, checkers.
 * Internal to sim/. */
#ifndef ORDO_SIM_WORLD_H
#define ORDO_SIM_WORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/prng.h"
#include "replicas/apply.h"
#include "replicas/merge.h"
#include "sequencer/epochlog.h"
#include "sequencer/machine.h"
#include "sequencer/raft/raft.h"
#include "sim/sim.h"
#include "wire/wire.h"

#define SIM_GROUPS_MAX 3u /* sequencer groups (docs/SCALEOUT.md) */
#define SIM_SEQ_MAX    5u /* sequencers per group */
#define SIM_REP_MAX    5u
#define SIM_CLI_MAX    16u
/* Endpoints: sequencer i of group g is g * SIM_SEQ_STRIDE + i, replica j is
 * rep0 + j, client k is cli0 + k, with rep0 = groups * SIM_SEQ_STRIDE and
 * cli0 = rep0 + SIM_REP_STRIDE (struct sim). One group: sequencers 0 .. 7,
 * replicas 8 .. 15, clients 16 .. 31, as before groups existed (a seed of
 * one group draws exactly what it drew then). */
#define SIM_SEQ_STRIDE 8u
#define SIM_REP_STRIDE 8u
#define SIM_EPS_MAX    (SIM_GROUPS_MAX * SIM_SEQ_STRIDE + SIM_REP_STRIDE + SIM_CLI_MAX)
#define SIM_SEQS_MAX   (SIM_GROUPS_MAX * SIM_SEQ_MAX)

#define STEP_NS		1000000ull /* one step: 1 ms of simulated time */
#define TICK_STEPS	10u	   /* a Raft tick every 10 ms (ORDO_TICK_MS) */
#define SIM_MSGS_MAX	50000u	   /* datagrams in flight at most; more are dropped */
#define SIM_INBOX_MAX	256u	   /* datagrams a paused node's socket buffers */
#define SIM_CLI_WINDOW	32u	   /* most outstanding requests per client */
#define SIM_ACCOUNTS	64u	   /* account ids the clients use */
#define SIM_LEDGER_ACCT 1024u
#define SIM_LEDGER_XFER 65536u
/* the epoch log each sequencer keeps for replica repair */
#define SIM_EPOCHLOG_BYTES  (4u << 20)
#define SIM_EPOCHLOG_EPOCHS 8192u
/* liveness: after the heal, no request stays unanswered longer than this */
/* no new requests in the last steps of a run (outstanding ones retry) */
#define SIM_QUIET_STEPS 1000u
/* liveness: a committed position reaches every replica within this */
#define SIM_APPLY_BOUND_STEPS 300u
#define SIM_LIVE_BOUND_NS     (2000ull * 1000000ull)

enum sim_kind {
	K_RAFT = 1,    /* encoded Raft message between sequencers */
	K_SUBMIT = 2,  /* client -> sequencer: one request */
	K_ORDERED = 3, /* sequencer -> client: one ORDERED record */
	K_EPOCH = 4,   /* sequencer -> replica: one whole committed epoch (several
			  groups: one EPOCH_DATA fragment of it, `off` in `total`, of the
			  entry ending at epoch b) */
	K_EPOCH_HB = 5,
	K_NACK = 6, /* replica -> sequencer: resend epochs a.. a+b-1 */
};

struct sim_msg {
	uint64_t at;  /* delivery time */
	uint64_t seq; /* tie-break: send order */
	uint8_t from, to, kind;
	uint32_t len;
	uint8_t *bytes; /* K_RAFT, K_EPOCH; owned */
	struct wire_req req;
	uint8_t payload[32];
	uint16_t status;
	struct wire_place place;
	uint32_t leader;
	uint64_t a, b;
	uint8_t group;	     /* K_EPOCH, K_EPOCH_HB, K_NACK: the sequencer group */
	uint32_t off, total; /* K_EPOCH with several groups: the fragment */
};

/* A record on a simulated disk. */
struct sim_rec {
	uint64_t index, term; /* as written; a misdirected write changes them */
	uint64_t term_stored; /* the term it was written with: damage leaves it (checkers) */
	uint8_t type;
	uint32_t len;
	uint8_t *data;
	uint32_t crc; /* over index, term, type, data as written */
	bool synced;
};

/* A sequencer's data directory: meta (term, vote: atomic and durable on
 * write, as stor_meta_write), the log records after the snapshot, the
 * snapshot. */
struct sim_disk {
	uint64_t term, vote;
	struct sim_rec *recs; /* recs[i] holds index snap.index + 1 + i */
	uint32_t n, cap;
	struct raft_snapshot_meta snap;
	uint8_t *snap_data;
	uint64_t snap_len;
	bool corrupted; /* a stored record was damaged while the node ran */
};

struct sim;

struct sim_seq {
	struct sim *sim;
	uint32_t id;	/* Raft id in its group: index in the group + 1 */
	uint32_t group; /* its sequencer group */
	uint32_t ep;	/* its endpoint: group * SIM_SEQ_STRIDE + id - 1 */
	char name[8];	/* in reports: its id, or group.id with several groups */
	bool up, dead;
	uint64_t paused_until; /* 0: running */
	uint64_t busy_until;   /* disk latency: nothing is processed before */
	uint64_t crash_at;     /* a scheduled crash (young leader), 0 none */
	uint64_t lead_commit;  /* commit index when it last became leader */
	int64_t wall_offset;   /* clock jumps */
	int64_t skew_ns;       /* several groups: a small lasting skew (NTP's residue) */
	uint64_t next_tick;
	struct raft *raft;
	struct seq_machine m;
	struct seq_epochlog elog;
	struct sim_disk disk;
	uint8_t **hold; /* delivered buffers Raft may still point at */
	uint32_t nhold, hold_cap;
	uint8_t *snap_buf;
	uint64_t last_hb;
	uint32_t inbox; /* datagrams queued while paused */
	uint64_t restarts;
};

/* Several groups: a replica's repair of one group (replicas/node.c struct
 * grp_repair). */
struct sim_repair {
	uint32_t source;    /* member that last streamed to it; UINT32_MAX none yet */
	uint64_t gap_epoch; /* first epoch missing, 0 none */
	uint64_t nack_due, backoff;
	uint32_t round; /* NACKs sent for this gap: 0 the source, then each member */
};

struct sim_rep {
	bool up;
	uint64_t paused_until;
	struct rep_state st;
	uint8_t **epochs; /* received, not yet applied, by epoch number */
	uint32_t *epoch_len;
	uint64_t epochs_cap;
	uint64_t known_committed;
	uint32_t source; /* sequencer endpoint last heard from */
	uint64_t nack_due;
	uint64_t nacks;
	uint32_t inbox;
	uint64_t stuck_since; /* the next epoch is retained by no running sequencer; 0 if not */
	uint64_t transfers;   /* state transfers installed */
	/* Several groups: replicas/merge.h reassembles and merges every group's
	 * entries (the epochs arrays above stay unused), one repair state per
	 * group. */
	struct rep_merge mg;
	struct sim_repair repair[SIM_GROUPS_MAX];
	uint64_t
	    retained_from[SIM_EPS_MAX]; /* per sequencer endpoint, from heartbeats; 0 unknown */
};

struct sim_out {
	uint64_t number;
	uint64_t sent_at; /* last send */
	uint64_t first_at;
	uint64_t retry_at;
	bool answered;
	uint16_t op, size;
	uint8_t payload[32];
};

struct sim_cli {
	uint64_t client_id; /* changes when the session is lost */
	uint64_t session;   /* 0 until request 1 is ordered */
	uint64_t next;	    /* next new request number */
	uint64_t low;	    /* lowest unanswered number */
	uint32_t window;
	uint32_t group;	 /* the group holding its session: client k % groups */
	uint32_t target; /* its group's sequencer to send to (index in the group) */
	uint64_t pause_until;
	uint64_t rate_gap; /* steps between new requests */
	uint64_t next_new;
	struct sim_out outs[SIM_CLI_WINDOW]; /* number % window */
	uint64_t answered, opened;
	uint16_t last_status; /* of the last ORDERED record heard */
	uint64_t last_heard;
};

/* Simple open-addressing map u64 -> u64 (checker state). */
struct sim_map {
	uint64_t *keys, *vals;
	uint64_t cap, used;
};

struct sim_committed {
	uint64_t term;
	uint64_t commit_term; /* an upper bound of the term it was committed in */
	uint32_t hash;
};

/* One sequencer group: its own Raft group of nseq members, and the
 * checkers' state of that Raft group. */
struct sim_group {
	uint32_t nseq, first; /* members: seqs[first .. first + nseq - 1] */
	uint32_t quorum, faulty_max;
	uint32_t dead;			 /* members lost to damaged disks */
	struct sim_map leaders;		 /* term -> leader id */
	struct sim_map written;		 /* (index, term) hash -> entry hash */
	struct sim_committed *committed; /* by Raft index */
	uint64_t committed_cap, commit_max;
	uint64_t cutoff_epoch; /* committed epoch SIM_APPLY_BOUND_STEPS before the end */
};

/* Where a replica applied one record: global position, key, the digest
 * before it, and its place in its group (group_position, epoch). */
struct sim_applied {
	uint64_t position, key;
	const uint8_t *digest_before; /* 16 bytes */
	uint32_t group;
	uint64_t group_position, epoch;
};

struct sim {
	struct sim_opts o;
	struct sim_result *res;
	struct ordo_prng rng;
	uint64_t step, now;
	bool failed;
	/* shape */
	uint32_t ngroups; /* sequencer groups, 1 .. SIM_GROUPS_MAX */
	uint32_t nseqs;	  /* sequencers of every group: seqs[0 .. nseqs - 1] */
	uint32_t nrep, ncli;
	uint32_t rep0, cli0, neps; /* endpoint layout (SIM_SEQ_STRIDE) */
	struct sim_group groups[SIM_GROUPS_MAX];
	struct seq_machine_cfg mcfg;
	uint32_t frag_bytes; /* several groups: EPOCH_DATA fragment size */
	uint32_t probe_ppm;  /* several groups: a client asks another group */
	struct raft_config rcfg;
	uint64_t snapshot_entries;
	uint32_t steps_fault, steps_total;
	/* fault mix (ppm per step or per event) */
	uint32_t loss_ppm, dup_ppm, delay_min, delay_max; /* steps */
	uint32_t link_cap;				  /* datagrams per step per link */
	uint32_t crash_ppm, pause_ppm, clock_ppm, persist_crash_ppm, fsync_err_ppm;
	uint32_t corrupt_ppm, partition_ppm, disk_lat_max;
	uint32_t restart_ppm; /* a client restarts (new client_id) */
	uint32_t leader_crash_ppm, young_crash_ppm;
	bool cut[SIM_EPS_MAX][SIM_EPS_MAX]; /* directed link down */
	uint32_t link_sent[SIM_EPS_MAX][SIM_EPS_MAX];
	uint64_t cut_order[SIM_SEQ_MAX * SIM_SEQ_MAX];
	uint32_t ncut_order, cut_restore_at;
	bool healing;
	uint64_t heal_at;
	/* network */
	struct sim_msg *msgs;
	uint32_t nmsgs;
	uint64_t msg_seq;
	uint64_t dropped;
	struct sim_seq seqs[SIM_SEQS_MAX];
	struct sim_rep reps[SIM_REP_MAX];
	struct sim_cli clis[SIM_CLI_MAX];
	/* checkers */
	uint64_t *order_key;	     /* by position: client_id * 2^20 + request_number */
	uint8_t (*order_digest)[16]; /* digest before position */
	uint64_t *order_gpos;	     /* by position: group_position in its group */
	uint64_t *order_epoch;	     /* by position: its epoch */
	uint8_t *order_group;	     /* by position: its group */
	uint64_t order_cap, order_len;
	/* of each group, its last group_position in the order */
	uint64_t order_last_gpos[SIM_GROUPS_MAX];
	uint64_t order_merged;	 /* highest epoch a replica applied */
	struct sim_map placed;	 /* key -> position (replicas' order) */
	struct sim_map answered; /* key -> group_position (OK/DUPLICATE answers) */
	/* key -> epoch | group << 56 of that answer */
	struct sim_map answered_at;
	uint64_t answered_count;
	uint64_t committed_cutoff; /* committed position SIM_APPLY_BOUND_STEPS before the end */
	uint64_t live_first_number[SIM_CLI_MAX]; /* liveness: answers a client had at the heal */
};

/* Raises a violation (first one wins) and ends the run. */
void sim_fail(struct sim *s, const char *property, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* check.c */
void sim_map_init(struct sim_map *m);
void sim_map_free(struct sim_map *m);
bool sim_map_get(const struct sim_map *m, uint64_t key, uint64_t *val);
void sim_map_put(struct sim_map *m, uint64_t key, uint64_t val);
uint32_t sim_entry_hash(const struct raft_entry *e);
void check_leader(struct sim *s, struct sim_seq *n, uint64_t term);
void check_written(struct sim *s, struct sim_seq *n, const struct raft_entry *e);
void check_committed(struct sim *s, struct sim_seq *n, const struct raft_entry *e);
void check_leader_complete(struct sim *s, struct sim_seq *n);
void check_commit_rule(struct sim *s, struct sim_seq *n, uint64_t commit);
void check_applied(struct sim *s, uint32_t rep, const struct sim_applied *a);
void check_answer(struct sim *s, uint32_t cli, uint64_t key, const struct wire_place *place);
/* Fails the run if group g (ORDERED OK: where "ordered"; a replica: where
 * "applied") orders a request of a session another group holds. */
void check_home(struct sim *s, uint32_t g, uint64_t client_id, uint64_t number, const char *where);
void check_end(struct sim *s);
/* True if some running sequencer of group g still retains epoch e for a NACK. */
bool sim_retained(const struct sim *s, uint32_t g, uint64_t e);
/* The epoch replica r needs next, of some group, is retained by no running
 * member of that group (nor, several groups, held by its merge). */
bool sim_rep_stuck(const struct sim *s, const struct sim_rep *r);
void check_init(struct sim *s);
void check_free(struct sim *s);

static inline uint64_t sim_key(uint64_t client_id, uint64_t number)
{
	return (client_id << 20) ^ number;
}

/* The group holding the sessions of client_id's client (k % groups: client
 * k's identities are k + 1, k + 1 + SIM_CLI_MAX, ...). */
static inline uint32_t sim_home_group(const struct sim *s, uint64_t client_id)
{
	return (uint32_t)(((client_id - 1) % SIM_CLI_MAX) % s->ngroups);
}

static inline struct sim_group *sim_group_of(struct sim *s, const struct sim_seq *n)
{
	return &s->groups[n->group];
}

#endif
