/*
 * Replica checkpoints: the whole replica state (struct rep_state: the ledger's
 * accounts and applied transfers, the §5 digest, the positions) at one
 * applied position, written through io_uring while the replica keeps
 * applying, and loaded back at start with every byte checked (issue 6,
 * DESIGN.md §4). What lives here: the file format, the writer (snapshot,
 * chunked io_uring writes, fdatasync, atomic rename, retention) and the
 * loader (directory scan, verification, fallback to an older checkpoint).
 * What does not: when to checkpoint and what to do with the result
 * (replicas/node.c), the applied log on disk, state transfer to a peer.
 *
 * ---- Files ----
 *
 * <dir>/ckpt-<position as 20 decimal digits>.ordo, written as
 * <dir>/ckpt-<position>.ordo.tmp, fdatasync'd, renamed over the final name,
 * then the directory fsync'd: a crash leaves the old set of checkpoints, or
 * the old set plus a complete new one, and perhaps a .tmp, which the loader
 * ignores and rep_ckpt_writer_init deletes. Once a new checkpoint is durable
 * the writer keeps it and the keep - 1 newest with a lower position and
 * deletes every other ckpt-*.ordo (a higher position than the one just
 * written can only be one that the last recovery rejected).
 *
 * ---- Format (version 1), all integers little-endian ----
 *
 *   offset                       size            what
 *   0                            128             header
 *   128                          32 * A          accounts, A = accounts_count
 *   128 + 32 A                   32 * T          transfers, T = transfers_count
 *   E = 128 + 32 (A + T)         pad8(4 * C)     chunk CRC table, C = chunks, zero padded
 *   E + pad8(4 C)                32              trailer; the file ends here
 *
 * Header:
 *
 *   off size field
 *    0   4   magic            0x504B434F ("OCKP")
 *    4   2   version          1
 *    6   2   header_bytes     128
 *    8   8   cluster_id       of the cluster the replica serves
 *   16   8   position         applied_position: the last position applied (0 = none)
 *   24   8   epoch            applied_epoch
 *   32   8   next_epoch       the next epoch to apply (applied_epoch + 1 today)
 *   40   8   requests_applied
 *   48  16   digest           §5 digest after position
 *   64   8   accounts_count   A
 *   72   8   transfers_count  T (transfers applied OK)
 *   80   8   accounts_max     cluster constants; must equal the loader's
 *   88   8   transfers_max
 *   96   4   chunk_bytes      multiple of 4096 in [4096, 64 MiB]
 *  100   4   chunks           C = ceil(32 A / chunk_bytes) + ceil(32 T / chunk_bytes)
 *  104   8   steps            apply steps (rep_state.steps, the applied log's
 *                                index) when they differ from epoch (several
 *                                sequencer groups); 0 means equal to epoch
 *  112   2   groups_active    groups merged (bit g; 0: every group), several groups
 *  114   2   join_group       group id + 1 of the group announced to join, or 0
 *  116   8   join_epoch       the epoch it joins at (0 without one)
 *  124   4   crc32c           CRC-32C of bytes [0, 124)
 *
 * Account record (32 bytes): id u64, debits_posted u64, credits_posted u64,
 * flags u32, reserved u32 (zero). Transfer record (32 bytes): id u64,
 * debit_account_id u64, credit_account_id u64, amount u64 (the TRANSFER
 * payload, PROTOCOL.md §4). Records are in the order of the ledger's hash
 * tables scanned from just after an empty slot, so inserting them in file
 * order rebuilds the tables slot for slot (linear probing, no deletions).
 *
 * Chunks: the accounts region is cut into chunks of chunk_bytes (the last
 * one shorter), then the transfers region starts a new chunk and is cut the
 * same way; an empty region has no chunk. Chunk k's CRC-32C is entry k of
 * the CRC table (u32 each).
 *
 * Trailer:
 *
 *   off size field
 *    0   4   magic            0x544B434F ("OCKT")
 *    4   4   chunks           C again
 *    8   8   position         again
 *   16   8   file_bytes       the whole file, trailer included
 *   24   4   table_crc        CRC-32C of the header (128 bytes) followed by the
 *                             CRC table with its padding
 *   28   4   trailer_crc      CRC-32C of trailer bytes [0, 28)
 *
 * Verification on load, in this order, and the offset reported: file size
 * below 128 (offset = the size); header magic, CRC (offset 0); cluster_id and
 * capacities (refused, see below); header fields; file size against what the
 * header implies (offset = the smaller of the two); trailer CRC and fields
 * (offset of the trailer); table_crc (offset of the CRC table); then each
 * chunk's CRC before any of its records is used (offset of the chunk); then
 * each record's fields (offset of the record): ids not 0 or 2^64-1, no id
 * twice, account flags known and not both, reserved zero, a flagged account
 * within its limit (debits <= credits or credits <= debits), a transfer
 * between two different accounts with a nonzero amount. Not checked: that a
 * transfer's accounts exist and that balances equal the sums of transfers
 * (the CRCs guard the bytes; the digest chain guards the history). A file
 * that cannot be read (an I/O error) is rejected like a damaged one.
 *
 * ---- Costs ----
 *
 * Disk: 160 + 32 (A + T) + 4 C bytes per checkpoint, about 32 bytes per
 * account and per transfer (10 M accounts and 10 M transfers: 640 MB). With
 * keep = 2, up to three files exist while one is written (two kept and the
 * temp), so budget 3 x the largest checkpoint.
 *
 * Writer memory, fixed at rep_ckpt_writer_init: the snapshot buffer,
 * 32 bytes per account and per transfer of capacity, (accounts_max +
 * transfers_max) x 32 bytes of address space (160 MiB at the defaults, 1M and
 * 4M), resident as far as the largest checkpoint taken so far
 * (32 (A + T) bytes); plus 128 + 4 x chunks_max + 40 bytes of header, CRC
 * table and trailer; plus the io_uring rings. That is half to a quarter of the
 * ledger's own tables (64 bytes per account and per transfer of capacity or
 * more: capacity rounds up to a power of two at load <= 0.5).
 *
 * Time: rep_ckpt_begin copies the live tables into the snapshot buffer: one
 * sequential, branch-free scan of both tables (32 bytes x table capacity
 * read, 32 (A + T) bytes written). That copy is the only part that stops the
 * apply loop. The rest (a chunk's CRC-32C just before its write, at most
 * queue_depth chunks per poll; the writes; fdatasync; rename; directory
 * fsync; deletion of old checkpoints) is spread over rep_ckpt_poll calls or
 * runs in the kernel.
 *
 * Measured by bench/checkpoint.c (`checkpoint_bench`, release build) on a
 * 2-core AMD EPYC VM (Linux 6.18, ext4 on virtio), 1 MiB chunks, 4 writes in
 * flight; ranges over 13 runs (6 for accounts only):
 *
 *   10 M accounts + 10 M transfers (tables 2 GiB: 2^25 + 2^25 slots)
 *     file                         640,002,608 bytes (32.0 B per record)
 *     rep_ckpt_begin (the stall)   0.11-0.22 s. A plain memcpy of the raw
 *                                  tables takes 0.16-0.21 s into touched
 *                                  pages, 0.4-7.3 s into fresh ones, and
 *                                  needs 64 B or more per record of capacity
 *     begin to durable             0.45-0.76 s (0.8-1.4 GB/s)
 *     rep_ckpt_poll                longest 0.09-0.23 ms, once 3.7 ms (2
 *                                  cores shared with io_uring's workers);
 *                                  mean 0.02 ms. Applying between polls ran
 *                                  at 3.5-6.9 M transfers/s (4.6-7.9 alone)
 *     rep_ckpt_load_newest         0.46-1.9 s from the page cache, 1.0-2.8 s
 *                                  cold from disk; a first load up to 4.7 s,
 *                                  most of it the VM faulting in 2 GiB of
 *                                  fresh tables (0.2-2.4 s by themselves)
 *   10 M accounts, no transfers (tables 1.1 GiB): 320,001,384 bytes; begin
 *     0.06-0.10 s; durable after 0.23-0.54 s; longest poll 0.09-0.2 ms,
 *     once 0.95 ms and once 5 ms; load 0.25-0.56 s warm, 0.26-0.45 s cold.
 *
 * Loader memory: 4 x chunk_bytes of read buffers (4 reads in flight; 4 MiB at the
 * defaults) and the CRC table, freed on return; the state itself is the
 * ledger's tables (ledger_bytes).
 *
 * Not thread-safe: one thread owns a writer, and one writer a directory
 * (rep_ckpt_writer_init deletes the .tmp files it finds). rep_ckpt_begin
 * reads the state; between rep_ckpt_begin and completion the caller may go
 * on applying, because the writer works only from its snapshot.
 */
#ifndef ORDO_REP_CHECKPOINT_H
#define ORDO_REP_CHECKPOINT_H

#include <liburing.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"
#include "replicas/apply.h"
#include "replicas/ledger.h"

#define REP_CKPT_MAGIC		     0x504B434Fu /* "OCKP" */
#define REP_CKPT_TRAILER_MAGIC	     0x544B434Fu /* "OCKT" */
#define REP_CKPT_VERSION	     1u
#define REP_CKPT_HDR_BYTES	     128u
#define REP_CKPT_TRAILER_BYTES	     32u
#define REP_CKPT_REC_BYTES	     32u /* one account or one transfer */
#define REP_CKPT_CHUNK_BYTES_DEFAULT (1u << 20)
#define REP_CKPT_CHUNK_BYTES_MIN     4096u
#define REP_CKPT_CHUNK_BYTES_MAX     (64u << 20)
#define REP_CKPT_QUEUE_DEPTH_DEFAULT 4u /* chunk writes in flight */
#define REP_CKPT_QUEUE_DEPTH_MAX     64u
#define REP_CKPT_KEEP_DEFAULT	     2u
#define REP_CKPT_FILES_MAX	     64u /* checkpoint files a scan considers (the newest) */
#define REP_CKPT_ERR_BYTES	     512u
#define REP_CKPT_NAME_BYTES	     40u /* "ckpt-" + 20 digits + ".ordo.tmp" + NUL */
#define REP_CKPT_WRITE_RETRIES_MAX   1000u

ORDO_STATIC_ASSERT(REP_CKPT_CHUNK_BYTES_MIN % REP_CKPT_REC_BYTES == 0,
		   "records never straddle chunks");
ORDO_STATIC_ASSERT(REP_CKPT_HDR_BYTES % 8 == 0, "records start aligned");

/* rep_ckpt_poll's answers other than a negative errno. */
enum rep_ckpt_status {
	REP_CKPT_IDLE = 0, /* nothing in progress */
	REP_CKPT_BUSY = 1, /* a checkpoint is being written; poll again */
	REP_CKPT_DONE = 2, /* the checkpoint begun last is durable (reported once) */
};

/* What a writer is made with. */
struct rep_ckpt_config {
	const char *dir;	  /* existing directory the checkpoints live in */
	uint64_t cluster_id;	  /* written into every checkpoint */
	struct ledger_cfg ledger; /* capacities; the snapshot buffer is sized for them */
	uint32_t chunk_bytes; /* bytes per chunk and per write; multiple of 4096, in [MIN, MAX] */
	uint32_t queue_depth; /* io_uring writes in flight, in [2, MAX] */
	uint32_t keep;	      /* checkpoints kept once a new one is durable, >= 1 */
};

/* Fault injection for tests, off unless armed: the I/O happens, and its
 * result is replaced by error, as if the kernel had reported it. */
struct rep_ckpt_fault {
	bool armed;	      /* any of the below active */
	bool write_armed;     /* fail a write completion after write_after good ones */
	bool fsync_armed;     /* fail the next fdatasync of a checkpoint file */
	uint32_t write_after; /* write completions still to succeed, counts down */
	int error;	      /* negative errno to report; -EIO when 0 */
};

/* Counters since init, for tests and status. */
struct rep_ckpt_stats {
	uint64_t begun;		  /* rep_ckpt_begin that started a checkpoint */
	uint64_t durable;	  /* checkpoints that reached DONE */
	uint64_t failed;	  /* checkpoints abandoned on an error or abort */
	uint64_t writes;	  /* write SQEs, resubmissions included */
	uint64_t write_bytes;	  /* bytes completed by writes */
	uint64_t short_writes;	  /* partial completions resubmitted */
	uint64_t retries;	  /* -EAGAIN/-EINTR resubmissions */
	uint64_t removed;	  /* old checkpoints deleted */
	uint64_t remove_errors;	  /* old checkpoints that could not be deleted */
	uint64_t temps_removed;	  /* stale .tmp files deleted by init */
	uint64_t last_file_bytes; /* size of the last checkpoint begun */
};

/* One io_uring operation in flight (user_data points at it). */
struct rep_ckpt_op {
	uint64_t file_off;  /* write: file offset of the remaining bytes */
	const uint8_t *buf; /* write: the remaining bytes */
	uint32_t len;	    /* write: bytes still to write, > 0 while in flight */
	uint32_t retries;   /* write: -EAGAIN/-EINTR resubmissions so far */
	uint8_t kind;	    /* free, write, fsync, directory fsync or unlink (checkpoint.c) */
	uint8_t file;	    /* unlink: index into old[] */
};

/* A writer. All fields are private to checkpoint.c except fault (tests set
 * it), stats and durable_position (read-only). */
struct rep_ckpt_writer {
	struct rep_ckpt_config cfg; /* as made; cfg.dir points at dir */
	char dir[PATH_MAX];
	int dir_fd;		   /* the directory, for *at() calls and its fsync */
	struct io_uring ring;	   /* queue_depth entries */
	bool ring_ready;	   /* io_uring_queue_exit owed */
	uint8_t *snap;		   /* snapshot buffer: accounts then transfers, encoded */
	size_t snap_bytes;	   /* (accounts_max + transfers_max) * 32, mapped */
	uint8_t *meta;		   /* header | CRC table (padded to 8) | trailer */
	size_t meta_bytes;	   /* 128 + pad8(4 * chunks_max) + 32 */
	uint32_t chunks_max;	   /* chunks of a checkpoint at full capacity */
	uint64_t durable_position; /* newest checkpoint made durable by this writer; 0 none */

	/* The checkpoint in progress (phase != idle). */
	int phase;		  /* checkpoint.c: idle, writing, syncing, dirsync, cleanup */
	int fd;			  /* the temp file while writing and syncing; -1 otherwise */
	bool renamed;		  /* the temp file has its final name */
	int error;		  /* 0, or the error to report once in-flight I/O drained */
	uint64_t position;	  /* its applied_position */
	uint64_t accounts;	  /* A */
	uint64_t transfers;	  /* T */
	uint64_t file_bytes;	  /* total size */
	uint32_t chunks_accounts; /* chunks of the accounts region */
	uint32_t chunks;	  /* C */
	uint32_t next_unit;	  /* next write to submit: 0 header, 1..C chunks, C + 1 the rest */
	uint32_t units_done;	  /* writes completed, of C + 2 */
	uint32_t inflight;	  /* SQEs submitted, not completed */
	uint32_t unsubmitted;	  /* SQEs prepared, not submitted */
	uint32_t old_n;		  /* old checkpoints to delete in cleanup */
	uint32_t old_next;	  /* next of them to submit */
	char tmp_name[REP_CKPT_NAME_BYTES];
	char name[REP_CKPT_NAME_BYTES];
	char old[REP_CKPT_FILES_MAX][REP_CKPT_NAME_BYTES];
	struct rep_ckpt_op ops[REP_CKPT_QUEUE_DEPTH_MAX];

	struct rep_ckpt_fault fault; /* tests only */
	struct rep_ckpt_stats stats;
	char err[REP_CKPT_ERR_BYTES]; /* the last error, naming file and offset */
};

/* What rep_ckpt_load_newest found. */
struct rep_ckpt_load_info {
	char path[PATH_MAX];		       /* the checkpoint loaded */
	uint64_t position;		       /* its applied_position */
	uint64_t file_bytes;		       /* its size */
	uint32_t candidates;		       /* ckpt-*.ordo files considered (newest first) */
	uint32_t rejected;		       /* newer ones rejected before it */
	uint32_t temps_seen;		       /* .tmp files ignored (interrupted checkpoints) */
	char rejected_msg[REP_CKPT_ERR_BYTES]; /* why each was rejected, newest first */
};

/* A checkpoint's file name (not its path): ckpt-<position, 20 digits>.ordo,
 * or .ordo.tmp while written; out holds REP_CKPT_NAME_BYTES. */
void rep_ckpt_name(char *out, uint64_t position, bool tmp);
/* 1 if name is ckpt-<20 digits>.ordo (*tmp false) or .ordo.tmp (*tmp true),
 * with its position; else 0. */
ORDO_MUST_CHECK int rep_ckpt_parse_name(const char *name, uint64_t *position, bool *tmp);

/* Fills c with the defaults above for a ledger of these capacities. */
void rep_ckpt_config_default(struct rep_ckpt_config *c, const char *dir, uint64_t cluster_id,
			     const struct ledger_cfg *ledger);

/* Address space a writer maps for cfg: snapshot buffer and meta buffer. */
size_t rep_ckpt_writer_bytes(const struct rep_ckpt_config *cfg);

/* Bytes of a checkpoint file holding these counts. */
uint64_t rep_ckpt_file_bytes(uint64_t accounts, uint64_t transfers, uint32_t chunk_bytes);

/* Makes a writer: checks cfg, opens the directory and an io_uring, maps the
 * buffers, deletes stale ckpt-*.ordo.tmp files (interrupted checkpoints).
 * Returns 0, or -EINVAL (bad configuration), -ENOSYS/-EPERM (no io_uring),
 * -ENOMEM, or the errno of a failed system call, with a message in err. */
ORDO_MUST_CHECK int rep_ckpt_writer_init(struct rep_ckpt_writer *w,
					 const struct rep_ckpt_config *cfg, char *err,
					 size_t err_len);

/* Abandons a checkpoint in progress (rep_ckpt_abort) and frees everything. */
void rep_ckpt_writer_free(struct rep_ckpt_writer *w);

/* Starts a checkpoint of s at s->applied_position: creates the temp file,
 * copies the ledger's tables into the snapshot buffer (the only part that
 * takes time in proportion to the ledger), encodes the header and submits
 * the first writes. s may change as soon as this returns. Returns 0, -EBUSY
 * (one is in progress), -EINVAL (s's capacities are not the writer's), or
 * the errno of creating the file, with a message in w->err. */
ORDO_MUST_CHECK int rep_ckpt_begin(struct rep_ckpt_writer *w, const struct rep_state *s);

/* Moves the checkpoint in progress on without blocking: reaps completions,
 * resubmits short writes, computes the CRC of and submits at most
 * queue_depth chunks, then the CRC table and trailer, the fdatasync, the
 * rename, the directory fsync and the deletion of old checkpoints. Returns
 * REP_CKPT_BUSY, REP_CKPT_DONE (once per checkpoint; w->durable_position is
 * its position), REP_CKPT_IDLE, or a negative errno once, when the
 * checkpoint failed: its temp file is deleted, w->err names the file and
 * offset, and the writer is idle again (a later begin may retry). */
ORDO_MUST_CHECK int rep_ckpt_poll(struct rep_ckpt_writer *w);

/* rep_ckpt_poll until the checkpoint in progress is done or failed,
 * blocking in io_uring_wait_cqe (tests, tools, shutdown). Returns
 * REP_CKPT_DONE, REP_CKPT_IDLE (nothing was in progress) or the error. */
ORDO_MUST_CHECK int rep_ckpt_wait(struct rep_ckpt_writer *w);

/* Abandons the checkpoint in progress: waits for its I/O in flight and
 * deletes its temp file (a checkpoint already renamed stays). */
void rep_ckpt_abort(struct rep_ckpt_writer *w);

/* The io_uring file descriptor, readable when completions wait: for an
 * event loop's poll/epoll; then call rep_ckpt_poll. */
int rep_ckpt_fd(const struct rep_ckpt_writer *w);

/* True while a checkpoint is in progress. */
static inline bool rep_ckpt_busy(const struct rep_ckpt_writer *w)
{
	return w->phase != 0;
}

/*
 * Loads the newest valid checkpoint of dir into s, which must not be
 * initialised: rep_state_init(s, cfg) first (so the tables have the
 * configured capacities), then every record inserted, then the digest and
 * positions. Checkpoints are tried newest first; one that fails any check
 * (see the top of this file) is rejected with a message naming the file and
 * offset, appended to info->rejected_msg, and the next older one is tried.
 * .tmp files are ignored. Returns:
 *   0        s holds the state of info->path (info->rejected may be > 0);
 *   -ENOENT  no checkpoint in dir (start from an empty state);
 *   -EUCLEAN every checkpoint was rejected (err says why);
 *   -EINVAL  refused: a checkpoint whose header checks names another
 *            cluster_id or other capacities than cfg (err names the file and
 *            what to do); no older checkpoint is tried;
 *   -ENOMEM, -ENOSYS/-EPERM (no io_uring), or the errno of opening dir.
 * On any error s is not initialised (nothing to free). info may be NULL.
 */
ORDO_MUST_CHECK int rep_ckpt_load_newest(const char *dir, uint64_t cluster_id,
					 const struct ledger_cfg *cfg, struct rep_state *s,
					 struct rep_ckpt_load_info *info, char *err,
					 size_t err_len);

/* Loads one checkpoint file (a path) under the same checks; no fallback.
 * Returns 0, or -EUCLEAN (rejected), -EINVAL (refused), or another error. */
ORDO_MUST_CHECK int rep_ckpt_load_file(const char *path, uint64_t cluster_id,
				       const struct ledger_cfg *cfg, struct rep_state *s, char *err,
				       size_t err_len);

#endif
