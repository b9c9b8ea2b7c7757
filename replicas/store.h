/*
 * A replica's durable storage (issue 6, DESIGN.md §4): its data directory,
 * made by `ordo format`, holds
 *
 *   FORMAT, meta          the identity and cluster constants (storage/format.h);
 *                         accounts_max and transfers_max must equal the
 *                         cluster file's
 *   log-<epoch>.seg       the applied log: one storage/seglog.h record per
 *                         applied epoch, written through io_uring
 *   ckpt/ckpt-<pos>.ordo  checkpoints of the whole ledger (checkpoint.h)
 *
 * Applied-log record (seglog kind REP_STORE_KIND_EPOCH, index = the epoch,
 * term = first_position, which never decreases), payload:
 *
 *   off size field
 *    0   8   first_position  position of the first entry (the next free one if count is 0)
 *    8   4   count           entries
 *   12   4   reserved        zero
 *   16  16   digest_before   PROTOCOL.md §5 digest after first_position - 1
 *   32   .   count ENTRIES records (PROTOCOL.md §3.4), exactly as FETCH serves them
 *
 * The seglog record's CRC-32C covers it; a torn tail is cut at open.
 * Recovery: the newest valid checkpoint (an older one if it is rejected;
 * rejected files are renamed *.bad), then every logged epoch after it,
 * re-executed through the ledger. An epoch record that does not continue
 * the state (positions, digest_before, structure) or cannot be read cuts the
 * log there, and the replica asks the stream (or a peer) for what follows.
 * A result that differs on re-execution (the ledger disagrees with its own
 * log: a bug, or damage the CRC missed) stops the replica with a message
 * saying how to rebuild it from its peers: its state cannot be trusted.
 * Opening the log first takes the directory's lock (storage/seglog.c). The log is never the only
 * copy: the sequencers' Raft log and the other replicas hold the same order.
 *
 * Durability: epochs are appended as they are applied, written at once,
 * and fdatasync'd by group commit (one sync covers everything appended
 * before it), at most once per sync_interval_ns (applied_sync_us, 5 ms by
 * default: a replica's syncs are not on any answer's path, and one per
 * epoch was half the fdatasyncs of a cluster sharing a disk). APPLIED is not
 * held back for it, because a committed epoch is already durable on a
 * majority of the sequencer group. A crash loses at most the unsynced tail
 * (after a power loss up to sync_interval_ns of epochs; a killed process
 * loses only what was not yet written), which replay, the stream and the
 * sequencers' epoch log restore.
 *
 * Checkpoints: one is begun when checkpoint_bytes of log were appended since
 * the last (or records_max / 8 epochs); it is written while the
 * replica applies on (checkpoint.h). Once durable, the log is compacted up to
 * the epoch of the older of the two kept checkpoints, so a rejected newest
 * checkpoint still has its replay, and only as far as retain_bytes
 * (applied_log_bytes) of log stay after the cut. FETCH reads positions that
 * are no longer in the in-memory applied log from here: history reaches back
 * at least retain_bytes of log (counted since the replica started) and at
 * least to the older kept checkpoint.
 *
 * Memory: the seglog (32 MiB write buffer, 40 B per retained epoch up to
 * records_max = 1 M, 40 MiB) + the checkpoint writer (checkpoint.h) + a
 * staging record and a read buffer of epoch_bytes + 32 each.
 * Disk: the log (about 2 x checkpoint_bytes, in REP_STORE_SEGMENT_BYTES
 * segments, plus up to two retired ones kept as spares: storage/seglog.h)
 * + up to three checkpoints (checkpoint.h).
 */
#ifndef ORDO_REP_STORE_H
#define ORDO_REP_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "replicas/apply.h"
#include "replicas/checkpoint.h"
#include "storage/seglog.h"
#include "wire/wire.h"

#define REP_STORE_KIND_EPOCH 1u
#define REP_STORE_HEAD_BYTES 32u
/* Merged mode: + u64 epoch, u32 groups_active, u16 join_group, u16 zero,
 * u64 join_epoch (rep_state's, after the record). */
#define REP_STORE_HEAD_MERGED_BYTES 56u
#define REP_STORE_SEGMENT_BYTES	    (16ull << 20) /* log segment: at most ~120 K one-request epochs */

struct rep_store_config {
	const char *dir;	   /* data directory (ordo format) */
	uint64_t cluster_id;	   /* must match FORMAT */
	uint32_t node_id;	   /* must match FORMAT */
	struct ledger_cfg ledger;  /* must match FORMAT */
	uint32_t epoch_bytes;	   /* largest epoch */
	uint64_t checkpoint_bytes; /* log bytes between checkpoints */
	uint64_t retain_bytes;	   /* log bytes kept for FETCH beyond what recovery needs */
	uint64_t sync_interval_ns; /* fdatasyncs at least this far apart; 0: group commit only */
	/* Merged mode (every_epoch: several groups, or groups may be added):
	 * records carry their merged epoch and the set of groups merged, and
	 * hold up to ORDO_GROUPS_MAX groups' entries. */
	bool merged;
};

#define REP_STORE_MARKS 64u /* checkpoints remembered for retention */

struct rep_store_stats {
	uint64_t replayed_epochs;    /* at open */
	uint64_t replayed_positions; /* at open */
	uint64_t replay_cut;	     /* records cut at open because they did not replay */
	uint64_t checkpoints;	     /* made durable */
	uint64_t checkpoint_failures;
	uint64_t fetch_disk; /* FETCH answers read from the log on disk */
	uint64_t disk_reads; /* epoch records read for them (the last one is kept) */
};

struct rep_store {
	struct rep_store_config cfg;
	char dir[PATH_MAX - 128];
	char ckpt_dir[PATH_MAX - 64]; /* room for "/ckpt-<20 digits>.ordo.tmp" */
	struct stor_log log;
	bool log_open;
	struct rep_ckpt_writer ckpt;
	bool ckpt_ready;
	uint8_t *rec;	       /* staging: the epoch record being built */
	uint32_t rec_len;      /* bytes used (head included) */
	uint32_t rec_cap;      /* epoch_bytes (x ORDO_GROUPS_MAX merged) + head */
	uint32_t head;	       /* REP_STORE_HEAD_BYTES, or REP_STORE_HEAD_MERGED_BYTES merged */
	uint8_t *rd;	       /* read buffer: replay, and FETCH from disk */
	uint64_t rd_epoch;     /* the epoch record rd holds for FETCH, 0 none */
	uint32_t rd_len;       /* its payload bytes */
	uint64_t rec_epoch;    /* epoch being built; 0 none */
	uint64_t epochs_since; /* epochs appended since then */
	/* Log indices (rep_state.steps: the epoch itself with one group). */
	uint64_t ckpt_epoch;	 /* index of the checkpoint in progress */
	uint64_t ckpt_applied;	 /* its applied_epoch */
	uint64_t kept_epoch[2];	 /* indices of the newest ([0]) and older durable checkpoint */
	uint64_t kept_applied;	 /* applied_epoch of the newest */
	uint64_t appended_bytes; /* log bytes appended since open */
	struct {
		uint64_t epoch; /* a durable checkpoint's epoch */
		uint64_t bytes; /* appended_bytes when it began */
	} marks[REP_STORE_MARKS];
	uint32_t nmarks;
	uint64_t ckpt_bytes_at; /* appended_bytes when the last checkpoint began: the next is
				 * due checkpoint_bytes later */
	bool dirty;		/* appended since the last sync request */
	uint64_t last_sync_ns;	/* ordo_mono_ns() of the last sync request; 0 none */
	struct rep_store_stats stats;
	char err[512];
};

/* Called for each position replayed at open, in order, like rep_apply_fn
 * but without the epoch record (no reply address: nothing is answered). */
typedef void rep_replay_fn(void *ctx, const struct wire_entry_rec *ent,
			   const uint8_t digest_before[16], const uint8_t *lookup_data);

/*
 * Opens dir: checks FORMAT against cfg, loads the newest valid checkpoint
 * into st (or an empty state), opens the log (cutting a torn tail) and
 * replays it onto st, calling fn per position. On 0, st is initialised
 * (rep_state_free is the caller's) and everything is ready. On error, a
 * message naming the file and what to do is in s->err and st is not
 * initialised.
 */
ORDO_MUST_CHECK int rep_store_open(struct rep_store *s, const struct rep_store_config *cfg,
				   struct rep_state *st, rep_replay_fn *fn, void *ctx);
/* Waits for a checkpoint in progress, syncs the log, closes everything. */
void rep_store_close(struct rep_store *s);

/* Around rep_state_apply_epoch: begin with the state before the epoch, add
 * each applied position's ENTRIES record, end once the epoch applied.
 * end appends it to the log (waiting for buffer room if it must). */
void rep_store_epoch_begin(struct rep_store *s, const struct rep_state *st, uint64_t epoch);
void rep_store_epoch_add(struct rep_store *s, const struct wire_entry_rec *ent);
ORDO_MUST_CHECK int rep_store_epoch_end(struct rep_store *s, const struct rep_state *st);

/* The event loop's turn: asks for a sync of what was appended, reaps log and
 * checkpoint I/O, begins a checkpoint when one is due, compacts the log
 * after one is durable. 0, or a fatal storage error (the node must stop). */
ORDO_MUST_CHECK int rep_store_poll(struct rep_store *s, const struct rep_state *st);

/* True when I/O is in flight (the loop should come back soon). */
bool rep_store_busy(const struct rep_store *s);

/* Begins a checkpoint now unless one is in progress (state transfer asks
 * for a fresh one). */
void rep_store_checkpoint_now(struct rep_store *s, const struct rep_state *st);

/* The newest durable checkpoint: position and epoch, 0 if none. */
uint64_t rep_store_ckpt_position(const struct rep_store *s);
uint64_t rep_store_ckpt_epoch(const struct rep_store *s);

/* State transfer installed a checkpoint (now durable in ckpt_dir) at st:
 * the log restarts empty after it. */
ORDO_MUST_CHECK int rep_store_installed(struct rep_store *s, const struct rep_state *st);

/* The path of the checkpoint at position in this store (tmp: while written). */
void rep_store_ckpt_path(const struct rep_store *s, uint64_t position, bool tmp, char *out,
			 size_t out_len);

/* Positions before this one are not on disk (FETCH from disk). */
uint64_t rep_store_first_position(const struct rep_store *s);

/* Builds an ENTRIES answer from the log on disk for from (>= 1), like
 * rep_applog_fill_entries: records from `from` while they fit; or, for a
 * from older than rep_store_first_position, the answer that says where the
 * history on disk begins (flag RETAINED_BEFORE, count 0). Returns records
 * put (*rc 0), or 0 with -1 in *rc when the log cannot answer (empty, or
 * from beyond it): the caller answers from memory. */
uint32_t rep_store_fill_entries(struct rep_store *s, struct wire_writer *w, uint64_t nonce,
				uint64_t from, uint64_t applied_position,
				uint32_t max_bytes_effective, int *rc);

#endif
