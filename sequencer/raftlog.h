/*
 * The sequencer's durable Raft log: struct raft_log_ops (sequencer/raft/
 * raft.h) over the io_uring segment log (storage/seglog.h), plus the
 * node's term and vote (storage/meta.h) and its latest snapshot.
 *
 * What lives here: the persistence half of handling a Raft update (step b of
 * the rule in raft.h: truncate a conflicting suffix, append, write term and
 * vote, fdatasync when durability = fsync), snapshot save, install and
 * compaction, and reading entries back for the core. What does not: the
 * Raft state machine (raft.c) and what entries mean (node.c).
 *
 * Record kinds in the segment log: 1 an epoch or a no-op (RAFT_ENTRY_NORMAL),
 * 2 a configuration (RAFT_ENTRY_CONF).
 *
 * <dir>/snapshot, written atomically (storage/file.h), little-endian:
 *
 *   off  size  field
 *     0     4  magic 0x504E534F ("OSNP")
 *     4     2  version 1
 *     6     2  reserved 0
 *     8     8  index: last log index the snapshot covers
 *    16     8  term of that entry
 *    24     4  n_voters (<= RAFT_VOTERS_MAX)
 *    28     4  reserved 0
 *    32    72  voters: 9 x u64, unused ones 0
 *   104     8  data_len
 *   112     4  crc32c of bytes [0, 112) then the data
 *   116     4  reserved 0
 *   120        data (the application state: sequencer/sessions snapshot)
 *
 * Memory: entries read back for the core live in three read arenas of
 * read_arena_bytes each; one is recycled at every seq_raftlog_advance(), so
 * bytes handed to the core stay valid across at least two updates (raft.h
 * asks for one). The snapshot is held in memory (snapshot_bytes_max).
 */
#ifndef ORDO_SEQ_RAFTLOG_H
#define ORDO_SEQ_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sequencer/raft/raft.h"
#include "storage/seglog.h"

#define SEQ_RAFTLOG_KIND_NORMAL 1u
#define SEQ_RAFTLOG_KIND_CONF	2u
#define SEQ_SNAPSHOT_FILE	"snapshot"
#define SEQ_SNAPSHOT_MAGIC	0x504E534Fu
#define SEQ_SNAPSHOT_HDR_BYTES	120u

struct seq_raftlog_cfg {
	const char *dir;	     /* formatted data directory (ordo format) */
	uint64_t cluster_id;	     /* as formatted */
	uint32_t node_id;	     /* as formatted */
	bool fsync;		     /* durability = fsync (false: memory, documented as weaker) */
	uint64_t segment_bytes;	     /* 0: storage default */
	uint32_t entry_bytes_max;    /* largest entry (an epoch) */
	uint64_t read_arena_bytes;   /* per arena; >= 2 x entry_bytes_max */
	uint64_t snapshot_bytes_max; /* largest snapshot data held or accepted */
};

struct seq_raftlog {
	struct seq_raftlog_cfg cfg;
	char dir[256];
	struct stor_log log;
	struct raft_snapshot_meta snap; /* latest snapshot (index 0: none) */
	uint8_t *snap_buf;		/* SEQ_SNAPSHOT_HDR_BYTES + snapshot_bytes_max */
	uint64_t snap_len;		/* data bytes in snap_buf after the header */
	uint64_t term;			/* durable term (meta) */
	uint64_t vote;			/* durable vote (meta) */
	uint8_t *arena[3];		/* read arenas, see above */
	uint64_t arena_used[3];
	uint32_t gen;	 /* arena in use: gen % 3 */
	uint64_t fsyncs; /* group-commit syncs requested */
};

/* Opens dir's log, term/vote and snapshot. Fills *hs (commit 0) for
 * raft_new. 0 or a negative errno with a message in err. */
ORDO_MUST_CHECK int seq_raftlog_open(struct seq_raftlog *rl, const struct seq_raftlog_cfg *cfg,
				     struct raft_hard_state *hs, char *err, size_t err_len);
void seq_raftlog_close(struct seq_raftlog *rl);

/* A new group: every founding member writes the same first entry, the
 * configuration of the group's voters, at index 1 in term 1 (and term 1 as
 * its durable term), before its first raft_new. -EEXIST if the log is not
 * empty. A node that joins a running group later does not bootstrap. */
ORDO_MUST_CHECK int seq_raftlog_bootstrap(struct seq_raftlog *rl, const struct raft_conf *conf);

/* The ops to hand raft_new (log_ctx = the struct seq_raftlog). */
extern const struct raft_log_ops seq_raftlog_ops;

/* Step b of raft.h for update u: makes its term/vote and then its entries
 * durable (truncating a conflicting suffix first), then tells the core with
 * raft_persisted(). A snapshot in u must be installed before, with
 * seq_raftlog_save_snapshot (and the state machine restored, and
 * raft_snapshot_applied called). 0, or a fatal negative errno: the node must
 * stop (a failed write or fsync is never retried). */
ORDO_MUST_CHECK int seq_raftlog_persist(struct seq_raftlog *rl, struct raft *r,
					const struct raft_update *u);
/* Call after raft_advance(): recycles the oldest read arena. */
void seq_raftlog_advance(struct seq_raftlog *rl);

/* Saves a snapshot of the application state at (index, term, conf) durably,
 * then compacts the log through it: the node's own snapshot (log kept after
 * index) or one installed from the leader (a log that ends before index or
 * conflicts with it is dropped whole). data may be the buffer returned by
 * seq_raftlog_snapshot_buf. 0 or a negative errno. */
ORDO_MUST_CHECK int seq_raftlog_save_snapshot(struct seq_raftlog *rl,
					      const struct raft_snapshot_meta *meta,
					      const void *data, uint64_t len);
/* Where to build a snapshot in place (snapshot_bytes_max bytes). */
static inline uint8_t *seq_raftlog_snapshot_buf(struct seq_raftlog *rl)
{
	return rl->snap_buf + SEQ_SNAPSHOT_HDR_BYTES;
}
/* The latest snapshot's data (NULL, 0 when none). */
const uint8_t *seq_raftlog_snapshot_data(const struct seq_raftlog *rl, uint64_t *len);

/* Reads entry index (durable) into buf: its type, term and payload length.
 * For the driver's own scans (the last epoch in the log). 0, -ENOENT or an
 * I/O error. */
ORDO_MUST_CHECK int seq_raftlog_get(struct seq_raftlog *rl, uint64_t index, struct raft_entry *e,
				    void *buf, uint32_t cap);

#endif
