/*
 * The segment log: an append-only, CRC-checked, io_uring-written log of
 * records for Raft (one record = one Raft entry: kind, term, index, payload).
 * The on-disk layout and the recovery rules are in storage/segfmt.h.
 *
 * What lives here: appends into a bounded write buffer, writes and
 * fdatasyncs through a caller-owned io_uring (group commit), the in-memory
 * index of retained records, reads, suffix truncation, prefix compaction,
 * and recovery at open. What does not: Raft itself (sequencer/raft/), the
 * term/vote file (storage/meta.h), `ordo format` (storage/format.h).
 *
 * Write path and durability:
 *   stor_log_append  copies a record into the write buffer and gives it its
 *                    place on disk (segment, offset); no I/O. -ENOBUFS when
 *                    the buffer, the index or the segment table is full: the
 *                    caller answers OVERLOADED and retries after a poll.
 *   stor_log_flush   submits buffered bytes as io_uring writes.
 *   stor_log_sync    flush, and ask for one IORING_OP_FSYNC (DATASYNC)
 *                    covering every record appended so far; issued as soon
 *                    as their writes completed. One fdatasync covers every
 *                    record written before it (group commit).
 *   stor_log_poll    reaps completions without blocking, resubmits short
 *                    writes and -EAGAIN/-EINTR, continues flushing, starts a
 *                    requested sync, and reports durable_index.
 *   stor_log_sync_wait  sync and block until all is durable (tests, tools).
 * Any other I/O error is fatal: the log records it, and every later call
 * returns it (the node stops; it never retries and carries on).
 *
 * Synchronous system calls (rare, off the per-record path): creating a
 * segment (temp file, fallocate, header, fdatasync, rename, fsync of the
 * directory) after an fdatasync of the previous segment, so at any time every
 * segment but the newest is wholly durable; truncation and compaction; reads
 * (pread, then a CRC check of the record).
 *
 * Retired segments (compacted, truncated away) are renamed aside and handed
 * to a thread of the log's own, the janitor: it keeps up to spare_segments
 * of them zeroed (FALLOC_FL_ZERO_RANGE) as spare-<n>.seg, which the next
 * segment creations reuse, and deletes the rest a few MiB at a time. Freeing
 * a segment at once stalls the disk on file systems with online discard
 * (seglog.c has the figures). Disk: up to spare_segments x segment_bytes
 * more than the retained segments, plus the retired files still waiting
 * to be freed (the janitor frees up to about 200 MB/s; what it has not
 * freed at close it is given again at the next open).
 *
 * Known limits of the torn-tail rule:
 * - Records written but not yet fdatasync'd may reach the disk out of order
 *   after a power loss. A later valid record after a torn one is then
 *   reported as corruption, the safe answer: the node is restored from a
 *   peer instead of silently losing a record it had acknowledged.
 * - A kill -9 keeps what completed (the page cache survives it), but
 *   io_uring cancels writes still in flight when the process dies, so the
 *   unsynced tail may be lost (measured), and in principle a cancelled write
 *   before a completed one would leave a hole, reported as above. Thirty
 *   kills of a writer under load left a torn or clean tail every time.
 * - A synced last record damaged on disk (bit rot) reads as a torn tail and
 *   is cut: nothing after it tells the two apart.
 * Segment files and the directory are flock'ed while a log has them open,
 * so a second process is refused (lock_wait_ms) instead of interleaving.
 *
 * Memory, fixed at open: buffer_bytes + records_max * 40 + segments_max * 40
 * + queue_depth * 48 bytes, plus the io_uring rings.
 *
 * Not thread-safe: one thread owns a stor_log.
 */
#ifndef ORDO_STOR_SEGLOG_H
#define ORDO_STOR_SEGLOG_H

#include <liburing.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"
#include "common/le.h"
#include "storage/segfmt.h"

/* Defaults and bounds of struct stor_log_config. */
#define STOR_SEGMENT_BYTES_DEFAULT     (64ull << 20)
#define STOR_SEGMENT_BYTES_MIN	       4096ull
#define STOR_BUFFER_BYTES_DEFAULT      (32ull << 20)
#define STOR_PAYLOAD_BYTES_MAX_DEFAULT (16u << 20) /* ORDO_EPOCH_BYTES_MAX */
#define STOR_QUEUE_DEPTH_DEFAULT       64u
#define STOR_QUEUE_DEPTH_MAX	       4096u
#define STOR_RECORDS_MAX_DEFAULT       (1u << 20) /* 40 MiB of index */
#define STOR_SEGMENTS_MAX_DEFAULT      4096u
#define STOR_ERR_BYTES		       512u /* enough for any error message here */
#define STOR_LOCK_WAIT_MS_DEFAULT      10000u
#define STOR_SPARE_SEGMENTS_DEFAULT    2u
#define STOR_SPARE_SEGMENTS_MAX	       16u

/* What a log is opened with. */
struct stor_log_config {
	const char *dir;	    /* data directory; must exist (ordo format makes it) */
	uint64_t cluster_id;	    /* written into and checked against every segment */
	uint64_t segment_bytes;	    /* bytes preallocated per segment, in [MIN, LIMIT] */
	uint64_t buffer_bytes;	    /* write buffer: bytes appended but not yet written */
	uint32_t payload_bytes_max; /* largest payload append accepts */
	uint32_t queue_depth;	    /* io_uring entries and I/O in flight, in [2, MAX] */
	uint32_t records_max;	    /* retained records the index can hold */
	uint32_t segments_max;	    /* segments the table can hold */
	uint32_t lock_wait_ms;	    /* how long open waits for a segment's lock (seglog.c) */
	uint32_t spare_segments;    /* retired segments kept zeroed for reuse, <= SPARE_MAX */
};

/* One retained record in the in-memory index. */
struct stor_rec {
	uint64_t term;		/* Raft term */
	uint64_t buf_pos;	/* stream position of its first byte in the write buffer */
	uint64_t seg_seq;	/* sequence number of its segment (see stor_log.seg_head) */
	uint32_t file_off;	/* bytes from the start of its segment file */
	uint32_t payload_bytes; /* payload length, without padding */
	uint16_t kind;		/* caller's record kind */
};

/* One segment in the table. */
struct stor_seg {
	uint64_t first_index;	 /* index of its first record; its file's name */
	uint64_t capacity_bytes; /* records end at or before this offset */
	uint64_t tail_bytes;	 /* offset of the next record; >= STOR_SEG_HDR_BYTES */
	int fd;			 /* open read-write; -1 until the file is created */
};

/* One io_uring operation in flight (user_data points at it). */
struct stor_op {
	uint64_t file_off; /* write: file offset of the remaining bytes */
	uint64_t buf_pos;  /* write: stream position of the remaining bytes */
	uint64_t end_pos;  /* write: stream position just past the whole write */
	uint32_t len;	   /* write: bytes still to write, > 0 while in flight */
	int fd;		   /* file written or synced */
	uint8_t kind;	   /* STOR_OP_FREE, _WRITE or _FSYNC (seglog.c) */
	bool done;	   /* write: completed, waiting for older writes to complete */
};

/* Fault injection for tests, off unless armed. Checked on each completion
 * and synchronous sync behind one predictable branch (armed). The I/O itself
 * happens; its result is replaced by error, as if the kernel reported it. */
struct stor_fault {
	bool armed;	      /* any of the below active */
	bool write_armed;     /* fail a write after write_after good ones */
	bool fsync_armed;     /* fail an fdatasync after fsync_after good ones */
	uint32_t write_after; /* writes still to succeed, counts down */
	uint32_t fsync_after; /* fdatasyncs still to succeed, counts down */
	int error;	      /* negative errno to report; -EIO when 0 */
	/* Not an error: the janitor (seglog.c) pauses this long between
	 * zeroing a retired file and listing it as a spare, to widen races.
	 * Read when the janitor starts, at the first retirement. */
	uint32_t janitor_delay_ms;
};

/* Counters, for tests and status. All monotonic since open. */
struct stor_log_stats {
	uint64_t appends;      /* records appended */
	uint64_t append_full;  /* appends refused with -ENOBUFS */
	uint64_t writes;       /* write SQEs submitted, resubmissions included */
	uint64_t write_bytes;  /* bytes completed by writes */
	uint64_t short_writes; /* writes that completed partially and were resubmitted */
	uint64_t retries;      /* -EAGAIN/-EINTR resubmissions */
	uint64_t fsyncs;       /* IORING_OP_FSYNC (datasync) submitted: group commits */
	uint64_t roll_syncs;   /* synchronous fdatasyncs of a full segment before a new one */
	uint64_t segments_created;
	uint64_t segments_removed;  /* by truncation, compaction, or recovery of an empty tail */
	uint64_t segments_recycled; /* created from a spare instead of a new file */
	uint64_t torn_tails;	    /* torn tails truncated at open */
};

/* A log. All fields are private to seglog.c except fault (tests set it) and
 * stats (read-only). */
struct stor_log {
	struct stor_log_config cfg; /* as opened; dir points at dir below */
	char dir[PATH_MAX];	    /* copy of the directory path */
	int dir_fd;		    /* the directory, for *at() calls and fsync */
	struct io_uring ring;	    /* caller-owned ring: queue_depth entries */
	bool ring_ready;	    /* ring initialised (io_uring_queue_exit owed) */
	int failed;		    /* 0, or the fatal negative errno every call returns */

	/* Index of retained records: a ring of records_max, first_index at rec_head. */
	struct stor_rec *recs;
	uint64_t rec_head;    /* slot of first_index */
	uint64_t first_index; /* first retained record; last_index + 1 when empty */
	uint64_t last_index;  /* last appended record; first_index - 1 when empty */
	uint64_t last_term;   /* term of last_index (0 when the log is empty) */

	/* Segments: a ring of segments_max, sequence seg_head first. */
	struct stor_seg *segs;
	uint64_t seg_head;  /* sequence number of the oldest segment */
	uint64_t seg_count; /* segments in the table, <= segments_max */

	/* Write buffer: a byte ring; positions are monotonic stream offsets.
	 * written_pos <= flushed_pos <= appended_pos <= written_pos + buffer_bytes. */
	uint8_t *buf;
	uint64_t appended_pos; /* end of the last appended record */
	uint64_t flushed_pos;  /* bytes before it are submitted as writes */
	uint64_t written_pos;  /* bytes before it are written (all older writes done) */

	/* Progress by index: first_index - 1 <= durable <= written <= last. */
	uint64_t flush_next;	/* first record not wholly submitted */
	uint64_t written_index; /* records up to here are written (in the page cache) */
	uint64_t durable_index; /* records up to here are fdatasync'd */
	uint64_t sync_wanted;	/* a caller asked for records up to here to be durable */
	uint64_t sync_target;	/* the fsync in flight covers records up to here; 0 none */

	/* io_uring operations: a pool of queue_depth, writes also in a FIFO. */
	struct stor_op *ops;
	uint32_t *op_free;    /* stack of free op slots */
	uint32_t op_nfree;    /* free slots, <= queue_depth */
	uint32_t *wfifo;      /* write op slots in submission order */
	uint32_t wfifo_head;  /* slot of the oldest write in wfifo */
	uint32_t wfifo_n;     /* writes in flight or done-but-not-retired */
	uint32_t inflight;    /* SQEs submitted and not yet completed */
	uint32_t unsubmitted; /* SQEs prepared but not yet submitted */
	bool draining;	      /* wait for in-flight I/O without starting more */

	struct stor_janitor *janitor; /* retired segments' thread (seglog.c); NULL until used */

	struct stor_fault fault;     /* tests only */
	struct stor_log_stats stats; /* counters */
};

/* A record as read back. */
struct stor_entry {
	uint64_t term;		/* Raft term */
	uint64_t index;		/* Raft index */
	uint32_t payload_bytes; /* payload length */
	uint16_t kind;		/* caller's record kind */
};

/* Fills a configuration with the defaults above. */
void stor_log_config_default(struct stor_log_config *c, const char *dir, uint64_t cluster_id);

/* Opens the log in cfg->dir, recovering it (segfmt.h): the log ends at the
 * last valid record; a torn tail is truncated durably. Returns 0, or a
 * negative errno with a message in err (err may be NULL): -EUCLEAN for
 * corruption before the end (naming the file and offset), -EINVAL for a
 * bad configuration, -ENOBUFS when the records exceed records_max or
 * segments_max, -ENOSYS/-EPERM when io_uring is unavailable, or the errno
 * of a failed system call. All recovered records are durable on return. */
ORDO_MUST_CHECK int stor_log_open(struct stor_log *log, const struct stor_log_config *cfg,
				  char *err, size_t err_len);

/* Waits for I/O in flight, stops the janitor (retired files it has not
 * dealt with are dealt with at the next open), closes files, frees memory.
 * Does not sync: call stor_log_sync_wait first to make appended records
 * durable. */
void stor_log_close(struct stor_log *log);

/* Queues one record. index must be last_index + 1 (any index >= 1 when the
 * log is empty) and term >= last_term: both are Raft invariants, asserted.
 * Returns 0, -EMSGSIZE (payload past payload_bytes_max), -ENOBUFS (buffer,
 * index or segment table full) or the log's fatal error. No I/O. */
ORDO_MUST_CHECK int stor_log_append(struct stor_log *log, uint16_t kind, uint64_t term,
				    uint64_t index, const void *payload, uint32_t payload_bytes);

/* Submits queued bytes to io_uring (as many as the queue depth allows; the
 * rest go as completions arrive in stor_log_poll). Returns 0 or the fatal error. */
ORDO_MUST_CHECK int stor_log_flush(struct stor_log *log);

/* Flushes, and asks for every record appended so far to become durable with
 * one fdatasync issued once their writes complete. Returns at once. */
ORDO_MUST_CHECK int stor_log_sync(struct stor_log *log);

/* Handles completed I/O without blocking and continues the work it allows.
 * On 0, *durable_index (if not NULL) is the highest index known durable. */
ORDO_MUST_CHECK int stor_log_poll(struct stor_log *log, uint64_t *durable_index);

/* Like stor_log_poll, but first blocks until at least one operation
 * completes (returns at once when nothing is in flight). */
ORDO_MUST_CHECK int stor_log_wait(struct stor_log *log, uint64_t *durable_index);

/* stor_log_sync, then blocks until every appended record is durable. */
ORDO_MUST_CHECK int stor_log_sync_wait(struct stor_log *log);

/* The io_uring file descriptor: readable when completions are waiting, for
 * an event loop's poll/epoll; then call stor_log_poll. */
int stor_log_fd(const struct stor_log *log);

/* Reads record index: fills *e and copies the payload into buf (cap bytes).
 * Returns 0, -ENOENT (not retained), -EMSGSIZE (cap too small; *e is
 * filled), -EUCLEAN (the record on disk no longer checks), or an I/O error.
 * Records not yet written come from the write buffer; others by pread. */
ORDO_MUST_CHECK int stor_log_get(struct stor_log *log, uint64_t index, struct stor_entry *e,
				 void *buf, uint32_t cap);

/* Term of a retained record, from the index (no I/O). -ENOENT if not retained. */
ORDO_MUST_CHECK int stor_log_term(const struct stor_log *log, uint64_t index, uint64_t *term);

/* Deletes records index.. onwards (a Raft log conflict), durably before it
 * returns: waits for I/O in flight, removes later segments newest first,
 * cuts the segment holding index (ftruncate, fallocate back to capacity,
 * fsync) and fsyncs the directory. index in [first_index, last_index + 1];
 * index == first_index empties the log. */
ORDO_MUST_CHECK int stor_log_truncate_suffix(struct stor_log *log, uint64_t index);

/* Deletes whole segments whose records are all <= snapshot_index and
 * durable, oldest first, then fsyncs the directory. The newest segment is
 * never deleted, so the log keeps its last record. Returns 0 or an error. */
ORDO_MUST_CHECK int stor_log_compact_prefix(struct stor_log *log, uint64_t snapshot_index);

static inline uint64_t stor_log_first_index(const struct stor_log *log)
{
	return log->first_index;
}
static inline uint64_t stor_log_last_index(const struct stor_log *log)
{
	return log->last_index;
}
static inline uint64_t stor_log_last_term(const struct stor_log *log)
{
	return log->last_term;
}
static inline uint64_t stor_log_durable_index(const struct stor_log *log)
{
	return log->durable_index;
}
/* 0, or the fatal error the log is stopped on. */
static inline int stor_log_failed(const struct stor_log *log)
{
	return log->failed;
}
/* Segments in the table (tests, status). */
static inline uint64_t stor_log_segments(const struct stor_log *log)
{
	return log->seg_count;
}

#endif
