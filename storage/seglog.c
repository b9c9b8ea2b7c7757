/*
 * The segment log (API and design in storage/seglog.h, layout in
 * storage/segfmt.h): the write buffer, io_uring writes and fdatasyncs with
 * group commit, the in-memory index, reads, truncation, compaction and
 * recovery at open.
 *
 * Invariants kept between calls (asserted where they are relied on):
 * - every segment but the newest created one is wholly fdatasync'd, so the
 *   records in (durable_index, written_index] all live in the newest created
 *   segment and one fdatasync of it makes them durable;
 * - a record's bytes stay in the write buffer until the record is wholly
 *   written (release_pos below), so unwritten records are read from there;
 * - an empty log has no segments, and first_index is always the first record
 *   of the oldest segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/seglog.h"

enum {
	STOR_OP_FREE = 0,
	STOR_OP_WRITE,
	STOR_OP_FSYNC,
};

#define SEG_NAME_BYTES	 28u /* "log-" + 20 digits + ".seg" */
#define WRITE_PIECE_MAX	 (1u << 30)
#define SUBMIT_TRIES_MAX 1000u
#define CORRUPT_ADVICE                                                                             \
	"; the log is corrupt before its end; restore this node's data from a peer (ordo format "  \
	"+ rejoin) — do not delete records by hand"

static void errf(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t err_len, const char *fmt, ...)
{
	if (err == NULL || err_len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

/* A deleted segment's name until its thread has unlinked it. */
#define SEG_TRASH_SUFFIX ".del"

static void seg_name(char *out, size_t n, uint64_t first_index, bool tmp)
{
	snprintf(out, n, "log-%020" PRIu64 ".seg%s", first_index, tmp ? ".tmp" : "");
}

/* Parses "log-<20 digits>.seg" (tmp: with ".tmp"). Returns the index or 0. */
static uint64_t seg_parse(const char *name, bool tmp)
{
	size_t len = strlen(name);
	if (len != SEG_NAME_BYTES + (tmp ? 4u : 0u) || memcmp(name, "log-", 4) != 0 ||
	    memcmp(name + 24, tmp ? ".seg.tmp" : ".seg", tmp ? 8 : 4) != 0)
		return 0;
	uint64_t v = 0;
	for (int i = 4; i < 24; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

static struct stor_rec *rec_at(const struct stor_log *log, uint64_t index)
{
	ORDO_ASSERT(index >= log->first_index && index <= log->last_index);
	return &log->recs[(log->rec_head + (index - log->first_index)) % log->cfg.records_max];
}

static struct stor_seg *seg_at(const struct stor_log *log, uint64_t seq)
{
	ORDO_ASSERT(seq >= log->seg_head && seq < log->seg_head + log->seg_count);
	return &log->segs[seq % log->cfg.segments_max];
}

static uint64_t rec_end(const struct stor_rec *r)
{
	return r->buf_pos + stor_rec_bytes(r->payload_bytes);
}

/* Buffer bytes before this may be reused: the first byte of the first
 * record not wholly written. */
static uint64_t release_pos(const struct stor_log *log)
{
	if (log->written_index < log->last_index)
		return rec_at(log, log->written_index + 1)->buf_pos;
	return log->appended_pos;
}

static void ring_put(struct stor_log *log, uint64_t pos, const void *src, uint64_t n)
{
	uint64_t at = pos % log->cfg.buffer_bytes;
	uint64_t first = log->cfg.buffer_bytes - at < n ? log->cfg.buffer_bytes - at : n;
	if (src != NULL) {
		memcpy(log->buf + at, src, first);
		memcpy(log->buf, (const uint8_t *)src + first, n - first);
	} else {
		memset(log->buf + at, 0, first);
		memset(log->buf, 0, n - first);
	}
}

static void ring_get(const struct stor_log *log, uint64_t pos, void *dst, uint64_t n)
{
	uint64_t at = pos % log->cfg.buffer_bytes;
	uint64_t first = log->cfg.buffer_bytes - at < n ? log->cfg.buffer_bytes - at : n;
	memcpy(dst, log->buf + at, first);
	memcpy((uint8_t *)dst + first, log->buf, n - first);
}

/* Records the first fatal error; returns the log's error. */
static int log_fail(struct stor_log *log, int err)
{
	ORDO_ASSERT(err < 0);
	if (log->failed == 0)
		log->failed = err;
	return log->failed;
}

/* Fault injection: the result a completed write (is_write) or fdatasync
 * reports. One predictable branch when no fault is armed. */
static int fault_filter(struct stor_log *log, bool is_write, int res)
{
	if (ORDO_LIKELY(!log->fault.armed) || res < 0)
		return res;
	struct stor_fault *f = &log->fault;
	bool *armed = is_write ? &f->write_armed : &f->fsync_armed;
	uint32_t *after = is_write ? &f->write_after : &f->fsync_after;
	if (!*armed)
		return res;
	if (*after > 0) {
		(*after)--;
		return res;
	}
	*armed = false;
	f->armed = f->write_armed || f->fsync_armed;
	return f->error < 0 ? f->error : -EIO;
}

/* A synchronous fdatasync/fsync, through fault injection. */
static int sync_fd(struct stor_log *log, int fd, bool data_only)
{
	int rc = data_only ? fdatasync(fd) : fsync(fd);
	return fault_filter(log, false, rc == 0 ? 0 : -errno);
}

/* Takes the segment's exclusive flock, waiting up to wait_ms. Every
 * segment a log has open is locked through its own descriptor, so a second
 * process opening the same directory is refused instead of interleaving its
 * writes with ours. The lock belongs to the open file, which the kernel
 * releases only once nothing refers to it, io_uring requests of a process
 * being torn down included: recovery waits for those to be finished or
 * cancelled (a write that was in flight when its process was killed may be
 * lost; one that completed is in the page cache and survives). */
static int seg_lock(int fd, uint32_t wait_ms)
{
	for (uint32_t waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (waited >= wait_ms)
			return -EBUSY;
		struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Reserves [off, off + len) of fd with zeros (sparse where fallocate is
 * not supported). */
static int prealloc(int fd, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size < off + len && ftruncate(fd, (off_t)(off + len)) != 0)
		return -errno;
	return 0;
}

/* ---- io_uring plumbing ---- */

static int submit_pending(struct stor_log *log)
{
	for (uint32_t tries = 0; log->unsubmitted > 0; tries++) {
		int rc = io_uring_submit(&log->ring);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
			return log_fail(log, rc);
		if (rc > 0) {
			ORDO_ASSERT((uint32_t)rc <= log->unsubmitted);
			log->unsubmitted -= (uint32_t)rc;
			log->inflight += (uint32_t)rc;
		}
		if (tries >= SUBMIT_TRIES_MAX)
			return log_fail(log, rc < 0 ? rc : -EIO);
	}
	return 0;
}

static struct io_uring_sqe *get_sqe(struct stor_log *log)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&log->ring);
	/* Ops are bounded by queue_depth, the SQ size, and the SQ is emptied
	 * after each batch: there is always room. */
	ORDO_ASSERT(sqe != NULL);
	log->unsubmitted++;
	return sqe;
}

static struct stor_op *op_alloc(struct stor_log *log, uint8_t kind, int fd)
{
	ORDO_ASSERT(log->op_nfree > 0);
	struct stor_op *op = &log->ops[log->op_free[--log->op_nfree]];
	ORDO_ASSERT(op->kind == STOR_OP_FREE);
	memset(op, 0, sizeof *op);
	op->kind = kind;
	op->fd = fd;
	return op;
}

static void op_release(struct stor_log *log, struct stor_op *op)
{
	op->kind = STOR_OP_FREE;
	log->op_free[log->op_nfree++] = (uint32_t)(op - log->ops);
	ORDO_ASSERT(log->op_nfree <= log->cfg.queue_depth);
}

static void write_prep(struct stor_log *log, struct stor_op *op)
{
	ORDO_ASSERT(op->len > 0 &&
		    op->buf_pos % log->cfg.buffer_bytes + op->len <= log->cfg.buffer_bytes);
	struct io_uring_sqe *sqe = get_sqe(log);
	io_uring_prep_write(sqe, op->fd, log->buf + op->buf_pos % log->cfg.buffer_bytes, op->len,
			    op->file_off);
	io_uring_sqe_set_data(sqe, op);
	log->stats.writes++;
}

static void fsync_prep(struct stor_log *log, struct stor_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(log);
	io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, op);
	log->stats.fsyncs++;
}

/* Retires completed writes in submission order, advancing written_pos and
 * written_index. */
static void retire_writes(struct stor_log *log)
{
	uint32_t depth = log->cfg.queue_depth;
	while (log->wfifo_n > 0) {
		struct stor_op *op = &log->ops[log->wfifo[log->wfifo_head]];
		if (!op->done)
			break;
		ORDO_ASSERT(op->end_pos > log->written_pos);
		log->written_pos = op->end_pos;
		log->wfifo_head = (log->wfifo_head + 1) % depth;
		log->wfifo_n--;
		op_release(log, op);
	}
	while (log->written_index < log->last_index &&
	       rec_end(rec_at(log, log->written_index + 1)) <= log->written_pos)
		log->written_index++;
}

static void complete(struct stor_log *log, const struct io_uring_cqe *cqe)
{
	struct stor_op *op = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	ORDO_ASSERT(log->inflight > 0 && op != NULL && op->kind != STOR_OP_FREE);
	log->inflight--;
	if (op->kind == STOR_OP_WRITE) {
		res = fault_filter(log, true, res);
		if (log->failed != 0)
			return; /* nothing more is written; the op stays owned by the FIFO */
		if (res == -EAGAIN || res == -EINTR) {
			log->stats.retries++;
			write_prep(log, op);
			return;
		}
		if (res <= 0) {
			log_fail(log, res < 0 ? res : -EIO);
			return;
		}
		log->stats.write_bytes += (uint64_t)res;
		if ((uint32_t)res < op->len) {
			log->stats.short_writes++;
			op->file_off += (uint64_t)res;
			op->buf_pos += (uint64_t)res;
			op->len -= (uint32_t)res;
			write_prep(log, op);
			return;
		}
		op->len = 0;
		op->done = true;
		retire_writes(log);
		return;
	}
	ORDO_ASSERT(op->kind == STOR_OP_FSYNC);
	res = fault_filter(log, false, res);
	if (log->failed != 0)
		return;
	if (res == -EAGAIN || res == -EINTR) {
		log->stats.retries++;
		fsync_prep(log, op);
		return;
	}
	op_release(log, op);
	if (res < 0) {
		/* Never retried: after a failed fdatasync the page cache may have
		 * dropped the dirty data, so a later success would prove nothing. */
		log_fail(log, res);
		return;
	}
	ORDO_ASSERT(log->sync_target != 0);
	if (log->sync_target > log->durable_index)
		log->durable_index = log->sync_target;
	log->sync_target = 0;
}

/* ---- segments ---- */

#define SPARE_NAME_MAX 40u
static bool jan_take(struct stor_log *log, char out[SPARE_NAME_MAX]);
static void jan_untake(struct stor_log *log, const char name[SPARE_NAME_MAX]);

/* Creates the file of segment seq: temp file, preallocate, header,
 * fdatasync, rename, fsync of the directory. Before that, fdatasyncs the
 * previous segment, whose records are all written, so every segment but the
 * newest stays wholly durable. */
static int seg_create(struct stor_log *log, uint64_t seq)
{
	struct stor_seg *s = seg_at(log, seq);
	ORDO_ASSERT(s->fd < 0);
	ORDO_ASSERT(log->written_index + 1 >= s->first_index);
	if (seq > log->seg_head) {
		struct stor_seg *prev = seg_at(log, seq - 1);
		ORDO_ASSERT(prev->fd >= 0);
		int rc = sync_fd(log, prev->fd, true);
		log->stats.roll_syncs++;
		if (rc != 0)
			return log_fail(log, rc);
		if (s->first_index - 1 > log->durable_index)
			log->durable_index = s->first_index - 1;
	}
	char tmp[64], name[64], spare[SPARE_NAME_MAX];
	seg_name(tmp, sizeof tmp, s->first_index, true);
	seg_name(name, sizeof name, s->first_index, false);
	/* A spare is zeroed and allocated already: no allocation, no discard
	 * when it is retired again. */
	bool recycled = jan_take(log, spare);
	if (recycled && renameat(log->dir_fd, spare, log->dir_fd, tmp) != 0) {
		jan_untake(log, spare);
		recycled = false;
	}
	int fd =
	    openat(log->dir_fd, tmp, O_RDWR | O_CREAT | (recycled ? 0 : O_TRUNC) | O_CLOEXEC, 0644);
	if (fd < 0)
		return log_fail(log, -errno);
	uint8_t hdr[STOR_SEG_HDR_BYTES];
	int rc = seg_lock(fd, 0); /* a new file: nobody else has it */
	if (rc != 0)
		goto out_close_fd;
	stor_seg_hdr_encode(hdr, log->cfg.cluster_id, s->first_index);
	struct stat st;
	if (recycled && fstat(fd, &st) == 0 && (uint64_t)st.st_size > s->capacity_bytes &&
	    ftruncate(fd, (off_t)s->capacity_bytes) != 0) {
		rc = -errno;
		goto out_close_fd;
	}
	rc = prealloc(fd, 0, s->capacity_bytes);
	if (rc != 0)
		goto out_close_fd;
	ssize_t n = pwrite(fd, hdr, sizeof hdr, 0);
	if (n != (ssize_t)sizeof hdr) {
		rc = n < 0 ? -errno : -EIO;
		goto out_close_fd;
	}
	rc = sync_fd(log, fd, true);
	if (rc != 0)
		goto out_close_fd;
	if (renameat(log->dir_fd, tmp, log->dir_fd, name) != 0) {
		rc = -errno;
		goto out_close_fd;
	}
	rc = sync_fd(log, log->dir_fd, false);
	if (rc != 0)
		goto out_close_fd;
	s->fd = fd;
	log->stats.segments_created++;
	log->stats.segments_recycled += recycled;
	return 0;

out_close_fd:
	close(fd);
	return log_fail(log, rc);
}

/* ---- retired segments: spares and paced deletion ---- */

/* A segment the log no longer needs is renamed aside at once (its name is
 * then free for a new segment) and handed to the log's janitor, a thread of
 * its own, which does one of two things with it:
 *
 * - it keeps it as a spare, up to cfg.spare_segments of them: it zeroes the
 *   file (FALLOC_FL_ZERO_RANGE: the blocks stay allocated and read as
 *   zeros, which is what segfmt.h requires after a segment's last record),
 *   fsyncs it and renames it spare-<n>.seg. seg_create then takes a spare
 *   instead of preallocating a new file;
 * - otherwise it deletes it, 2 MiB at a time with an fsync after each step
 *   and a pause between steps.
 *
 * Why: freeing a 64 MiB file is not cheap for the disk. On a file system
 * mounted with online discard, every freed extent is discarded when the
 * journal transaction that freed it commits, and the logs' fdatasyncs,
 * which need no journal commit, let freed extents pile up until the
 * periodic one. Measured on the 2-core VM (ext4, -o discard): one commit
 * discarded 576 MiB of compacted segments in 1.4 s of device time, and the
 * fdatasyncs of all six demo nodes waited behind it (that second's ORDERED
 * p99 was 10 ms, against 2.4-3.3 ms in the others). Recycled segments free
 * nothing; the paced deletion forces a commit per 2 MiB, so what is freed
 * is discarded in small pieces. Without discard the steps cost an fsync
 * each and nothing else.
 *
 * Crash safety: a retired file is named after its inode (log-<first
 * index>.seg.<inode>.del), so two retirements never share a name; the
 * directory is fsync'd before the janitor changes a file, so a crash never
 * leaves a segment name on a zeroed or shrunk file; a file is a spare only
 * once zeroed and fsync'd, and it is renamed to a temp segment name before
 * it gets a header. At open (list_segments), every spare-*.seg and *.del
 * goes to the janitor again (zeroed and kept, or freed in steps), and a
 * *.tmp is deleted. */

#define JAN_STEP_BYTES (2u << 20)
#define JAN_PAUSE_NS   (10u * 1000u * 1000u)
#define SPARE_PREFIX   "spare-"

struct jan_job {
	struct jan_job *next;
	char name[72]; /* a *.del or spare-*.seg file in the directory */
};

struct stor_janitor {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int dir_fd;		     /* a dup of the log's */
	uint32_t spare_max;	     /* cfg.spare_segments */
	struct jan_job *head, *tail; /* files to recycle or delete, oldest first */
	uint32_t preparing;	     /* spares being zeroed */
	uint32_t ready_n;	     /* names in ready[] */
	char ready[STOR_SPARE_SEGMENTS_MAX][SPARE_NAME_MAX];
	uint64_t next_spare; /* number of the next spare's name */
	bool no_zero_range;  /* the file system refused FALLOC_FL_ZERO_RANGE */
	bool stop;	     /* stor_log_close: abandon the rest */
	uint32_t delay_ms;   /* fault.janitor_delay_ms (tests) */
};

static bool jan_stopping(struct stor_janitor *j)
{
	pthread_mutex_lock(&j->mu);
	bool stop = j->stop;
	pthread_mutex_unlock(&j->mu);
	return stop;
}

/* Deletes name, shrinking it a step at a time; stops early when the log
 * closes (the file stays, for the janitor of the next open). */
static void jan_delete(struct stor_janitor *j, const char *name)
{
	int fd = openat(j->dir_fd, name, O_WRONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0) {
		const struct timespec pause = {.tv_sec = 0, .tv_nsec = JAN_PAUSE_NS};
		for (off_t size = st.st_size; size > 0;) {
			size = size > (off_t)JAN_STEP_BYTES ? size - (off_t)JAN_STEP_BYTES : 0;
			if (ftruncate(fd, size) != 0 || fsync(fd) != 0)
				break;
			if (jan_stopping(j)) {
				close(fd);
				return;
			}
			nanosleep(&pause, NULL);
		}
	}
	if (fd >= 0)
		close(fd);
	(void)unlinkat(j->dir_fd, name, 0); /* a leftover goes to the next open's janitor */
}

/* Zeroes name, durably. Returns 0 or a negative errno. */
static int jan_zero(struct stor_janitor *j, const char *name)
{
	int fd = openat(j->dir_fd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	struct stat st;
	if (fstat(fd, &st) != 0 ||
	    (st.st_size > 0 && fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, st.st_size) != 0) ||
	    fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

static void *jan_main(void *arg)
{
	struct stor_janitor *j = arg;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!j->stop && j->head == NULL)
			pthread_cond_wait(&j->cv, &j->mu);
		if (j->stop)
			break;
		struct jan_job *job = j->head;
		j->head = job->next;
		if (j->head == NULL)
			j->tail = NULL;
		bool keep = !j->no_zero_range && j->ready_n + j->preparing < j->spare_max;
		char spare[SPARE_NAME_MAX];
		if (keep) {
			j->preparing++;
			snprintf(spare, sizeof spare, SPARE_PREFIX "%020" PRIu64 ".seg",
				 j->next_spare++);
		}
		pthread_mutex_unlock(&j->mu);
		/* The retirement's rename reaches the disk before the file is
		 * changed: a crash never finds a live segment name on a zeroed
		 * or shrunk file. */
		(void)fsync(j->dir_fd);
		int rc = keep ? jan_zero(j, job->name) : -ECANCELED;
		if (j->delay_ms > 0) {
			struct timespec d = {.tv_sec = j->delay_ms / 1000,
					     .tv_nsec = (long)(j->delay_ms % 1000) * 1000000};
			nanosleep(&d, NULL);
		}
		pthread_mutex_lock(&j->mu);
		if (keep) {
			j->preparing--;
			/* Renamed and listed in one step: a spare file on disk is a
			 * spare seg_create can take. */
			if (rc == 0 && renameat(j->dir_fd, job->name, j->dir_fd, spare) != 0)
				rc = -errno;
			if (rc == 0)
				memcpy(j->ready[j->ready_n++], spare, sizeof spare);
			else if (rc == -EOPNOTSUPP)
				j->no_zero_range = true;
		}
		if (rc != 0) {
			pthread_mutex_unlock(&j->mu);
			jan_delete(j, job->name);
			pthread_mutex_lock(&j->mu);
		}
		free(job);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* The log's janitor, started at first use. NULL when there is no memory or
 * no thread: callers then delete files themselves. */
static struct stor_janitor *jan_get(struct stor_log *log)
{
	if (log->janitor != NULL)
		return log->janitor;
	struct stor_janitor *j = calloc(1, sizeof *j);
	if (j == NULL)
		return NULL;
	j->spare_max = log->cfg.spare_segments;
	j->delay_ms = log->fault.janitor_delay_ms;
	j->dir_fd = dup(log->dir_fd);
	if (j->dir_fd < 0) {
		free(j);
		return NULL;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	if (pthread_create(&j->thread, NULL, jan_main, j) != 0) {
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		close(j->dir_fd);
		free(j);
		return NULL;
	}
	log->janitor = j;
	return j;
}

/* Hands the file name (in the log's directory) to the janitor. Returns
 * false when it cannot (the caller deletes it). */
static bool jan_give(struct stor_log *log, const char *name)
{
	struct stor_janitor *j = jan_get(log);
	struct jan_job *job = j ? malloc(sizeof *job) : NULL;
	size_t len = strlen(name);
	if (job == NULL || len >= sizeof job->name) {
		free(job);
		return false;
	}
	job->next = NULL;
	memcpy(job->name, name, len + 1);
	pthread_mutex_lock(&j->mu);
	if (j->tail)
		j->tail->next = job;
	else
		j->head = job;
	j->tail = job;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return true;
}

/* Takes a ready spare's name into out. Returns false when there is none. */
static bool jan_take(struct stor_log *log, char out[SPARE_NAME_MAX])
{
	struct stor_janitor *j = log->janitor;
	if (j == NULL)
		return false;
	pthread_mutex_lock(&j->mu);
	bool got = j->ready_n > 0;
	if (got)
		memcpy(out, j->ready[--j->ready_n], SPARE_NAME_MAX);
	pthread_mutex_unlock(&j->mu);
	return got;
}

/* Gives back a spare that jan_take handed out but that could not be used:
 * to the janitor, as a file to keep (zeroed again) or free. */
static void jan_untake(struct stor_log *log, const char name[SPARE_NAME_MAX])
{
	if (!jan_give(log, name))
		(void)unlinkat(log->dir_fd, name, 0);
}

/* Stops the janitor (what it has not done stays on disk for the next
 * open) and frees it. */
static void jan_stop(struct stor_log *log)
{
	struct stor_janitor *j = log->janitor;
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->mu);
	j->stop = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	pthread_join(j->thread, NULL);
	while (j->head != NULL) {
		struct jan_job *next = j->head->next;
		free(j->head);
		j->head = next;
	}
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	close(j->dir_fd);
	free(j);
	log->janitor = NULL;
}

/* Parses "spare-<20 digits>.seg". Returns true and the number in *n. */
static bool spare_parse(const char *name, uint64_t *n)
{
	size_t pl = strlen(SPARE_PREFIX);
	if (strlen(name) != pl + 24 || memcmp(name, SPARE_PREFIX, pl) != 0 ||
	    strcmp(name + pl + 20, ".seg") != 0)
		return false;
	uint64_t v = 0;
	for (size_t i = pl; i < pl + 20; i++) {
		if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*n = v;
	return true;
}

/* Closes segment s and retires its file: renamed aside at once, then kept
 * as a spare or deleted by the janitor (above). Without a janitor (no
 * memory or thread), deleted here. */
static int seg_unlink(struct stor_log *log, struct stor_seg *s)
{
	log->stats.segments_removed++;
	if (s->fd < 0)
		return 0;
	/* Named after its inode, unique among live files: a segment of the
	 * same first index retired again (truncated, rewritten, truncated)
	 * never takes the name of one the janitor is still working on. */
	struct stat st;
	uint64_t ino = fstat(s->fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
	close(s->fd);
	s->fd = -1;
	char name[64], trash[72];
	seg_name(name, sizeof name, s->first_index, false);
	snprintf(trash, sizeof trash, "%s.%" PRIu64 "%s", name, ino, SEG_TRASH_SUFFIX);
	if (renameat(log->dir_fd, name, log->dir_fd, trash) != 0)
		return -errno;
	if (!jan_give(log, trash) && unlinkat(log->dir_fd, trash, 0) != 0)
		return -errno;
	return 0;
}

/* ---- write path ---- */

/* Submits buffered bytes, one write per run of records that share a
 * segment and a contiguous stretch of the buffer. Stops when the op pool is
 * empty, or when the next record opens a new segment while older writes are
 * still in flight (the previous segment must be synced first). */
static int flush_more(struct stor_log *log)
{
	uint64_t cap = log->cfg.buffer_bytes;
	while (log->failed == 0 && !log->draining && log->flushed_pos < log->appended_pos &&
	       log->op_nfree > 0) {
		struct stor_rec *r = rec_at(log, log->flush_next);
		struct stor_seg *s = seg_at(log, r->seg_seq);
		if (s->fd < 0) {
			ORDO_ASSERT(log->flushed_pos == r->buf_pos);
			if (log->written_pos < r->buf_pos)
				break; /* resumed from a completion */
			int rc = seg_create(log, r->seg_seq);
			if (rc != 0)
				return rc;
		}
		uint64_t piece_max = cap - log->flushed_pos % cap;
		if (piece_max > WRITE_PIECE_MAX)
			piece_max = WRITE_PIECE_MAX;
		uint64_t run_end = rec_end(r);
		for (uint64_t j = log->flush_next + 1;
		     j <= log->last_index && run_end - log->flushed_pos < piece_max; j++) {
			const struct stor_rec *rj = rec_at(log, j);
			if (rj->seg_seq != r->seg_seq)
				break;
			run_end = rec_end(rj);
		}
		uint64_t len = run_end - log->flushed_pos;
		if (len > piece_max)
			len = piece_max;
		struct stor_op *op = op_alloc(log, STOR_OP_WRITE, s->fd);
		op->file_off = r->file_off + (log->flushed_pos - r->buf_pos);
		op->buf_pos = log->flushed_pos;
		op->len = (uint32_t)len;
		op->end_pos = log->flushed_pos + len;
		ORDO_ASSERT(log->wfifo_n < log->cfg.queue_depth);
		log->wfifo[(log->wfifo_head + log->wfifo_n) % log->cfg.queue_depth] =
		    (uint32_t)(op - log->ops);
		log->wfifo_n++;
		write_prep(log, op);
		log->flushed_pos += len;
		while (log->flush_next <= log->last_index &&
		       rec_end(rec_at(log, log->flush_next)) <= log->flushed_pos)
			log->flush_next++;
	}
	return log->failed;
}

/* Starts the one fdatasync that makes every written record durable, once
 * the records a caller asked for are written. At most one is in flight. */
static void maybe_start_sync(struct stor_log *log)
{
	if (log->failed != 0 || log->draining || log->sync_target != 0 ||
	    log->sync_wanted <= log->durable_index || log->written_index < log->sync_wanted ||
	    log->op_nfree == 0)
		return;
	uint64_t target = log->written_index;
	struct stor_rec *r = rec_at(log, target);
	/* The records in (durable, target] are all in the newest created segment. */
	ORDO_ASSERT(rec_at(log, log->durable_index + 1)->seg_seq == r->seg_seq);
	struct stor_op *op = op_alloc(log, STOR_OP_FSYNC, seg_at(log, r->seg_seq)->fd);
	ORDO_ASSERT(op->fd >= 0);
	log->sync_target = target;
	fsync_prep(log, op);
}

/* Handles completions (first waiting for one if block), then continues
 * flushing and syncing. */
static int reap(struct stor_log *log, bool block)
{
	if (submit_pending(log) != 0)
		return log->failed;
	if (block && log->inflight > 0) {
		struct io_uring_cqe *cqe;
		int rc;
		do {
			rc = io_uring_wait_cqe(&log->ring, &cqe);
		} while (rc == -EINTR);
		if (rc < 0)
			return log_fail(log, rc);
	}
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&log->ring, &cqe) == 0) {
		complete(log, cqe);
		io_uring_cqe_seen(&log->ring, cqe);
	}
	if (flush_more(log) == 0)
		maybe_start_sync(log);
	submit_pending(log);
	return log->failed;
}

/* Waits for all I/O in flight without starting more. */
static void drain(struct stor_log *log)
{
	log->draining = true;
	for (;;) {
		if (log->unsubmitted > 0 && submit_pending(log) != 0 && log->inflight == 0)
			break;
		if (log->inflight == 0)
			break;
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&log->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			log_fail(log, rc);
			break;
		}
		complete(log, cqe);
		io_uring_cqe_seen(&log->ring, cqe);
	}
	log->draining = false;
}

/* ---- public: writing ---- */

int stor_log_append(struct stor_log *log, uint16_t kind, uint64_t term, uint64_t index,
		    const void *payload, uint32_t payload_bytes)
{
	if (ORDO_UNLIKELY(log->failed != 0))
		return log->failed;
	if (payload_bytes > log->cfg.payload_bytes_max)
		return -EMSGSIZE;
	bool empty = log->last_index < log->first_index;
	ORDO_ASSERT(index >= 1);
	if (!empty) {
		/* Raft: gapless indexes, terms never decrease along the log. */
		ORDO_ASSERT(index == log->last_index + 1);
		ORDO_ASSERT(term >= log->last_term);
	} else {
		ORDO_ASSERT(log->seg_count == 0 && log->inflight == 0);
	}
	uint64_t bytes = stor_rec_bytes(payload_bytes);
	uint64_t held = empty ? 0 : log->last_index - log->first_index + 1;
	bool new_seg = log->seg_count == 0;
	if (!new_seg) {
		const struct stor_seg *s = seg_at(log, log->seg_head + log->seg_count - 1);
		new_seg = s->tail_bytes + bytes > s->capacity_bytes;
	}
	if (log->appended_pos + bytes - release_pos(log) > log->cfg.buffer_bytes ||
	    held == log->cfg.records_max || (new_seg && log->seg_count == log->cfg.segments_max)) {
		log->stats.append_full++;
		return -ENOBUFS;
	}
	if (empty) {
		log->first_index = index;
		log->last_index = index - 1;
		log->flush_next = index;
		log->written_index = index - 1;
		log->durable_index = index - 1;
		log->sync_wanted = index - 1;
	}
	if (new_seg) {
		struct stor_seg *s =
		    &log->segs[(log->seg_head + log->seg_count) % log->cfg.segments_max];
		s->first_index = index;
		s->capacity_bytes = log->cfg.segment_bytes;
		s->tail_bytes = STOR_SEG_HDR_BYTES;
		s->fd = -1;
		log->seg_count++;
	}
	uint64_t seq = log->seg_head + log->seg_count - 1;
	struct stor_seg *s = seg_at(log, seq);
	log->last_index = index;
	struct stor_rec *r = rec_at(log, index);
	r->term = term;
	r->buf_pos = log->appended_pos;
	r->seg_seq = seq;
	r->file_off = (uint32_t)s->tail_bytes;
	r->payload_bytes = payload_bytes;
	r->kind = kind;

	uint8_t hdr[STOR_REC_HDR_BYTES];
	stor_rec_hdr_encode(hdr, kind, term, index, payload, payload_bytes);
	ring_put(log, log->appended_pos, hdr, sizeof hdr);
	ring_put(log, log->appended_pos + sizeof hdr, payload, payload_bytes);
	ring_put(log, log->appended_pos + sizeof hdr + payload_bytes, NULL,
		 bytes - sizeof hdr - payload_bytes);
	s->tail_bytes += bytes;
	log->appended_pos += bytes;
	log->last_term = term;
	log->stats.appends++;
	return 0;
}

int stor_log_flush(struct stor_log *log)
{
	if (log->failed != 0)
		return log->failed;
	if (flush_more(log) != 0)
		return log->failed;
	return submit_pending(log);
}

int stor_log_sync(struct stor_log *log)
{
	if (log->failed != 0)
		return log->failed;
	if (log->last_index > log->sync_wanted)
		log->sync_wanted = log->last_index;
	if (flush_more(log) != 0)
		return log->failed;
	maybe_start_sync(log);
	return submit_pending(log);
}

int stor_log_poll(struct stor_log *log, uint64_t *durable_index)
{
	if (log->failed != 0)
		return log->failed;
	int rc = reap(log, false);
	if (rc == 0 && durable_index != NULL)
		*durable_index = log->durable_index;
	return rc;
}

int stor_log_wait(struct stor_log *log, uint64_t *durable_index)
{
	if (log->failed != 0)
		return log->failed;
	int rc = reap(log, true);
	if (rc == 0 && durable_index != NULL)
		*durable_index = log->durable_index;
	return rc;
}

int stor_log_sync_wait(struct stor_log *log)
{
	int rc = stor_log_sync(log);
	if (rc != 0)
		return rc;
	uint64_t target = log->last_index;
	while (log->durable_index < target) {
		/* Something is always in flight until then: a write, or the sync. */
		ORDO_ASSERT(log->inflight > 0);
		rc = reap(log, true);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int stor_log_fd(const struct stor_log *log)
{
	return log->ring.ring_fd;
}

/* ---- public: reading ---- */

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t got = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EUCLEAN; /* the file ends inside a record we indexed */
		done += (size_t)got;
	}
	return 0;
}

int stor_log_get(struct stor_log *log, uint64_t index, struct stor_entry *e, void *buf,
		 uint32_t cap)
{
	if (log->failed != 0)
		return log->failed;
	if (index < log->first_index || index > log->last_index)
		return -ENOENT;
	const struct stor_rec *r = rec_at(log, index);
	e->term = r->term;
	e->index = index;
	e->payload_bytes = r->payload_bytes;
	e->kind = r->kind;
	if (cap < r->payload_bytes)
		return -EMSGSIZE;
	if (index > log->written_index) {
		ORDO_ASSERT(r->buf_pos >= release_pos(log));
		ring_get(log, r->buf_pos + STOR_REC_HDR_BYTES, buf, r->payload_bytes);
		return 0;
	}
	int fd = seg_at(log, r->seg_seq)->fd;
	uint8_t hdr[STOR_REC_HDR_BYTES], pad[STOR_REC_ALIGN_BYTES];
	uint32_t pad_bytes =
	    (uint32_t)(stor_rec_bytes(r->payload_bytes) - STOR_REC_HDR_BYTES) - r->payload_bytes;
	int rc = pread_full(fd, hdr, sizeof hdr, r->file_off);
	if (rc == 0)
		rc = pread_full(fd, buf, r->payload_bytes, r->file_off + STOR_REC_HDR_BYTES);
	if (rc == 0)
		rc = pread_full(fd, pad, pad_bytes,
				r->file_off + STOR_REC_HDR_BYTES + r->payload_bytes);
	if (rc != 0)
		return rc;
	struct stor_rec_hdr h;
	stor_rec_hdr_decode(hdr, &h);
	if (ordo_ld32(hdr) != STOR_REC_MAGIC || h.index != index || h.term != r->term ||
	    h.kind != r->kind || h.payload_bytes != r->payload_bytes ||
	    stor_rec_crc(hdr, buf, r->payload_bytes, pad, pad_bytes) != h.crc)
		return -EUCLEAN;
	return 0;
}

int stor_log_term(const struct stor_log *log, uint64_t index, uint64_t *term)
{
	if (index < log->first_index || index > log->last_index)
		return -ENOENT;
	*term = rec_at(log, index)->term;
	return 0;
}

/* ---- public: truncation and compaction ---- */

int stor_log_truncate_suffix(struct stor_log *log, uint64_t index)
{
	if (log->failed != 0)
		return log->failed;
	if (index > log->last_index)
		return 0;
	if (index < log->first_index)
		return -EINVAL;
	drain(log);
	if (log->failed != 0)
		return log->failed;
	const struct stor_rec cut = *rec_at(log, index);
	bool cut_on_disk = log->written_pos > cut.buf_pos;

	/* Newest first, so a crash leaves a log that is a prefix of the old one. */
	bool unlinked = false;
	while (log->seg_count > 0) {
		struct stor_seg *s = seg_at(log, log->seg_head + log->seg_count - 1);
		if (s->first_index < index)
			break;
		unlinked |= s->fd >= 0;
		int rc = seg_unlink(log, s);
		log->seg_count--;
		if (rc != 0)
			return log_fail(log, rc);
	}
	/* The segment holding index is cut unless index was its first record
	 * (then it went above, and the one before ends at index - 1 already). */
	if (log->seg_count > 0 && log->seg_head + log->seg_count - 1 == cut.seg_seq) {
		struct stor_seg *s = seg_at(log, cut.seg_seq);
		if (s->fd >= 0 && cut_on_disk) {
			/* ftruncate is atomic in the file system's journal: after a
			 * crash the file has the old size or the new one; fallocate
			 * then gives the space back as zeros. */
			if (ftruncate(s->fd, cut.file_off) != 0)
				return log_fail(log, -errno);
			int rc = prealloc(s->fd, cut.file_off, s->capacity_bytes - cut.file_off);
			if (rc == 0)
				rc = sync_fd(log, s->fd, false);
			if (rc != 0)
				return log_fail(log, rc);
		}
		s->tail_bytes = cut.file_off;
	}
	if (unlinked) {
		int rc = sync_fd(log, log->dir_fd, false);
		if (rc != 0)
			return log_fail(log, rc);
	}

	log->appended_pos = cut.buf_pos;
	if (log->flushed_pos > cut.buf_pos)
		log->flushed_pos = cut.buf_pos;
	if (log->written_pos > cut.buf_pos)
		log->written_pos = cut.buf_pos;
	log->last_term = index > log->first_index ? rec_at(log, index - 1)->term : 0;
	log->last_index = index - 1;
	if (log->flush_next > index)
		log->flush_next = index;
	if (log->written_index > index - 1)
		log->written_index = index - 1;
	if (log->durable_index > index - 1)
		log->durable_index = index - 1;
	if (log->sync_wanted > index - 1)
		log->sync_wanted = index - 1;
	return 0;
}

int stor_log_compact_prefix(struct stor_log *log, uint64_t snapshot_index)
{
	if (log->failed != 0)
		return log->failed;
	uint32_t removed = 0;
	while (log->seg_count > 1) {
		struct stor_seg *s = seg_at(log, log->seg_head);
		uint64_t seg_last = seg_at(log, log->seg_head + 1)->first_index - 1;
		if (seg_last > snapshot_index || seg_last > log->durable_index)
			break;
		ORDO_ASSERT(s->fd >= 0 && s->first_index == log->first_index);
		int rc = seg_unlink(log, s);
		if (rc != 0)
			return log_fail(log, rc);
		uint64_t n = seg_last - log->first_index + 1;
		log->rec_head = (log->rec_head + n) % log->cfg.records_max;
		log->first_index = seg_last + 1;
		log->seg_head++;
		log->seg_count--;
		removed++;
	}
	if (removed > 0) {
		int rc = sync_fd(log, log->dir_fd, false);
		if (rc != 0)
			return log_fail(log, rc);
	}
	return 0;
}

/* ---- open, recovery, close ---- */

static int config_check(const struct stor_log_config *c, char *err, size_t err_len)
{
	const char *bad = NULL;
	if (c->dir == NULL || c->dir[0] == '\0' || strlen(c->dir) >= PATH_MAX)
		bad = "dir";
	else if (c->segment_bytes < STOR_SEGMENT_BYTES_MIN ||
		 c->segment_bytes > STOR_SEG_BYTES_LIMIT)
		bad = "segment_bytes";
	else if (c->payload_bytes_max > STOR_REC_PAYLOAD_LIMIT ||
		 STOR_SEG_HDR_BYTES + stor_rec_bytes(c->payload_bytes_max) > c->segment_bytes)
		bad = "payload_bytes_max (the largest record must fit in a segment)";
	else if (c->buffer_bytes < stor_rec_bytes(c->payload_bytes_max))
		bad = "buffer_bytes (the largest record must fit in the buffer)";
	else if (c->queue_depth < 2 || c->queue_depth > STOR_QUEUE_DEPTH_MAX)
		bad = "queue_depth";
	else if (c->records_max == 0)
		bad = "records_max";
	else if (c->segments_max < 2)
		bad = "segments_max";
	else if (c->spare_segments > STOR_SPARE_SEGMENTS_MAX)
		bad = "spare_segments";
	if (bad == NULL)
		return 0;
	errf(err, err_len, "storage: bad log configuration: %s", bad);
	return -EINVAL;
}

void stor_log_config_default(struct stor_log_config *c, const char *dir, uint64_t cluster_id)
{
	memset(c, 0, sizeof *c);
	c->dir = dir;
	c->cluster_id = cluster_id;
	c->segment_bytes = STOR_SEGMENT_BYTES_DEFAULT;
	c->buffer_bytes = STOR_BUFFER_BYTES_DEFAULT;
	c->payload_bytes_max = STOR_PAYLOAD_BYTES_MAX_DEFAULT;
	c->queue_depth = STOR_QUEUE_DEPTH_DEFAULT;
	c->records_max = STOR_RECORDS_MAX_DEFAULT;
	c->segments_max = STOR_SEGMENTS_MAX_DEFAULT;
	c->lock_wait_ms = STOR_LOCK_WAIT_MS_DEFAULT;
	c->spare_segments = STOR_SPARE_SEGMENTS_DEFAULT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Lists the segment files (sorted into *out, *n of them) and deletes
 * leftover temp files of an interrupted segment creation. */
static int list_segments(struct stor_log *log, uint64_t **out, uint64_t *n, char *err,
			 size_t err_len)
{
	int dfd = dup(log->dir_fd);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return -errno;
	}
	rewinddir(d); /* the dup shares the directory offset */
	/* Spares and retired files of an earlier run, for the janitor. */
	struct jan_leftover {
		char name[72];
	} *left = NULL;
	size_t nleft = 0, left_cap = 0;
	uint64_t spare_next = 0;
	uint64_t *idx = calloc(log->cfg.segments_max, sizeof *idx);
	int rc = 0;
	bool removed_tmp = false;
	*n = 0;
	if (idx == NULL) {
		rc = -ENOMEM;
		goto out_closedir;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t spare_n;
		bool spare = spare_parse(de->d_name, &spare_n);
		if (spare && spare_n >= spare_next)
			spare_next = spare_n + 1;
		size_t nl = strlen(de->d_name), tl = strlen(SEG_TRASH_SUFFIX);
		bool trash = nl > tl && nl < sizeof left->name &&
			     strcmp(de->d_name + nl - tl, SEG_TRASH_SUFFIX) == 0 &&
			     memcmp(de->d_name, "log-", 4) == 0;
		if (spare || trash) {
			/* Kept as a spare (zeroed again) or freed a step at a
			 * time by the janitor, not all at once here. */
			if (nleft == left_cap) {
				size_t cap = left_cap ? 2 * left_cap : 16;
				void *p = realloc(left, cap * sizeof *left);
				if (p != NULL) {
					left = p;
					left_cap = cap;
				}
			}
			if (nleft < left_cap) {
				memcpy(left[nleft++].name, de->d_name, nl + 1);
				continue;
			}
		}
		if (spare || trash || seg_parse(de->d_name, true) != 0) {
			/* ENOENT: a deleted segment's thread got there first */
			if (unlinkat(log->dir_fd, de->d_name, 0) != 0 && errno != ENOENT) {
				rc = -errno;
				goto out_closedir;
			}
			removed_tmp = true;
			continue;
		}
		uint64_t first = seg_parse(de->d_name, false);
		if (first == 0)
			continue;
		if (*n == log->cfg.segments_max) {
			errf(err, err_len,
			     "storage: %s: more than segments_max (%" PRIu32 ") segments", log->dir,
			     log->cfg.segments_max);
			rc = -ENOBUFS;
			goto out_closedir;
		}
		idx[(*n)++] = first;
	}
	qsort(idx, *n, sizeof *idx, cmp_u64);
	if (removed_tmp)
		rc = sync_fd(log, log->dir_fd, false);
out_closedir:
	closedir(d);
	/* After the listing: the janitor renames what it is given. Its new
	 * spares are numbered after every spare seen. */
	struct stor_janitor *j = rc == 0 && nleft > 0 ? jan_get(log) : NULL;
	if (j != NULL) {
		pthread_mutex_lock(&j->mu);
		j->next_spare = spare_next;
		pthread_mutex_unlock(&j->mu);
	}
	for (size_t i = 0; rc == 0 && i < nleft; i++)
		if (!jan_give(log, left[i].name))
			(void)unlinkat(log->dir_fd, left[i].name, 0);
	free(left);
	if (rc != 0) {
		free(idx);
		return rc;
	}
	*out = idx;
	return 0;
}

/* Scan callback: indexes one recovered record of segment seq (in ctx). */
struct recover_ctx {
	struct stor_log *log;
	uint64_t seq;
};

static int recover_rec(void *ctx, const struct stor_rec_hdr *h, uint64_t off)
{
	struct recover_ctx *rc = ctx;
	struct stor_log *log = rc->log;
	if (log->last_index < log->first_index) {
		log->first_index = h->index;
		log->last_index = h->index - 1;
	}
	if (log->last_index - log->first_index + 1 >= log->cfg.records_max)
		return -ENOBUFS;
	ORDO_ASSERT(h->index == log->last_index + 1);
	log->last_index = h->index;
	log->last_term = h->term;
	struct stor_rec *r = rec_at(log, h->index);
	memset(r, 0, sizeof *r);
	r->term = h->term;
	r->seg_seq = rc->seq;
	r->file_off = (uint32_t)off;
	r->payload_bytes = h->payload_bytes;
	r->kind = h->kind;
	return 0;
}

/* Recovers one segment file, already added to the table as seq. */
static int recover_segment(struct stor_log *log, uint64_t seq, uint64_t name_index, bool last,
			   uint64_t *prev_last, uint64_t *prev_term, char *err, size_t err_len)
{
	struct stor_seg *s = seg_at(log, seq);
	char name[64];
	seg_name(name, sizeof name, name_index, false);
	struct stat st;
	if (fstat(s->fd, &st) != 0) {
		errf(err, err_len, "storage: %s/%s: fstat: %s", log->dir, name, strerror(errno));
		return -errno;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < STOR_SEG_HDR_BYTES || size > STOR_SEG_BYTES_LIMIT) {
		errf(err, err_len,
		     "storage: %s/%s: offset 0: segment size %" PRIu64 " out of range%s", log->dir,
		     name, size, CORRUPT_ADVICE);
		return -EUCLEAN;
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, s->fd, 0);
	if (map == MAP_FAILED) {
		errf(err, err_len, "storage: %s/%s: mmap: %s", log->dir, name, strerror(errno));
		return -errno;
	}
	const char *why;
	struct stor_seg_hdr h;
	int rc = 0;
	struct stor_scan sc;
	if (stor_seg_hdr_decode(map, size, &h, &why) != 0) {
		errf(err, err_len, "storage: %s/%s: offset 0: %s%s", log->dir, name, why,
		     CORRUPT_ADVICE);
		rc = -EUCLEAN;
		goto out_unmap;
	}
	if (h.cluster_id != log->cfg.cluster_id) {
		errf(err, err_len,
		     "storage: %s/%s: segment belongs to cluster %016" PRIx64 ", not %016" PRIx64,
		     log->dir, name, h.cluster_id, log->cfg.cluster_id);
		rc = -EUCLEAN;
		goto out_unmap;
	}
	if (h.first_index != name_index ||
	    (log->last_index >= log->first_index && h.first_index != *prev_last + 1)) {
		errf(err, err_len,
		     "storage: %s/%s: offset 0: segment starts at index %" PRIu64
		     " but its name or the previous segment (ending at %" PRIu64
		     ") says otherwise%s",
		     log->dir, name, h.first_index, *prev_last, CORRUPT_ADVICE);
		rc = -EUCLEAN;
		goto out_unmap;
	}
	struct recover_ctx ctx = {.log = log, .seq = seq};
	stor_seg_scan(map, size, &h, *prev_term, last, recover_rec, &ctx, &sc);
	switch (sc.end) {
	case STOR_SCAN_CLEAN:
		break;
	case STOR_SCAN_TORN:
		ORDO_ASSERT(last);
		break;
	case STOR_SCAN_CORRUPT:
		errf(err, err_len, "storage: %s/%s: offset %" PRIu64 ": %s%s", log->dir, name,
		     sc.bad_off, sc.why, CORRUPT_ADVICE);
		rc = -EUCLEAN;
		goto out_unmap;
	case STOR_SCAN_STOPPED:
		errf(err, err_len,
		     "storage: %s/%s: the log holds more than records_max (%" PRIu32 ") records",
		     log->dir, name, log->cfg.records_max);
		rc = sc.rc;
		goto out_unmap;
	}
	s->first_index = h.first_index;
	s->capacity_bytes = size;
	s->tail_bytes = sc.end_off;
	if (sc.records == 0) {
		if (!last) {
			errf(err, err_len, "storage: %s/%s: offset %u: segment holds no records%s",
			     log->dir, name, STOR_SEG_HDR_BYTES, CORRUPT_ADVICE);
			rc = -EUCLEAN;
			goto out_unmap;
		}
		/* An empty newest segment: created, then nothing reached it. */
		goto out_unmap;
	}
	*prev_last = sc.last_index;
	*prev_term = sc.last_term;
	if (last) {
		uint64_t cap = size > log->cfg.segment_bytes ? size : log->cfg.segment_bytes;
		if (sc.end == STOR_SCAN_TORN) {
			log->stats.torn_tails++;
			if (ftruncate(s->fd, (off_t)sc.end_off) != 0) {
				rc = -errno;
				goto out_unmap;
			}
			rc = prealloc(s->fd, sc.end_off, cap - sc.end_off);
		} else {
			rc = prealloc(s->fd, size, cap - size);
		}
		s->capacity_bytes = cap;
		/* What recovery read may still be only in the page cache. */
		if (rc == 0)
			rc = sync_fd(log, s->fd, false);
		if (rc != 0)
			errf(err, err_len, "storage: %s/%s: truncating the tail: %s", log->dir,
			     name, strerror(-rc));
	}
out_unmap:
	munmap(map, size);
	return rc;
}

static int recover(struct stor_log *log, char *err, size_t err_len)
{
	uint64_t *names = NULL, n = 0;
	int rc = list_segments(log, &names, &n, err, err_len);
	if (rc != 0) {
		if (err != NULL && err[0] == '\0')
			errf(err, err_len, "storage: %s: listing segments: %s", log->dir,
			     strerror(-rc));
		return rc;
	}
	uint64_t prev_last = 0, prev_term = 0;
	log->first_index = 1;
	log->last_index = 0;
	for (uint64_t k = 0; k < n; k++) {
		char name[64];
		seg_name(name, sizeof name, names[k], false);
		int fd = openat(log->dir_fd, name, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			errf(err, err_len, "storage: %s/%s: open: %s", log->dir, name,
			     strerror(errno));
			goto out_free;
		}
		rc = seg_lock(fd, log->cfg.lock_wait_ms);
		if (rc != 0) {
			errf(err, err_len,
			     "storage: %s/%s: cannot lock it (%s): another process is using "
			     "this data directory; stop it, or give this node its own --data",
			     log->dir, name, strerror(-rc));
			close(fd);
			goto out_free;
		}
		uint64_t seq = log->seg_head + log->seg_count;
		struct stor_seg *s = &log->segs[seq % log->cfg.segments_max];
		memset(s, 0, sizeof *s);
		s->fd = fd;
		s->first_index = names[k];
		log->seg_count++;
		rc = recover_segment(log, seq, names[k], k + 1 == n, &prev_last, &prev_term, err,
				     err_len);
		if (rc != 0)
			goto out_free;
		if (s->tail_bytes == STOR_SEG_HDR_BYTES) {
			/* Recovered empty: it was the last; delete it. */
			rc = seg_unlink(log, s);
			log->seg_count--;
			if (rc == 0)
				rc = sync_fd(log, log->dir_fd, false);
			if (rc != 0) {
				errf(err, err_len, "storage: %s/%s: removing an empty segment: %s",
				     log->dir, name, strerror(-rc));
				goto out_free;
			}
		}
	}
	log->last_term = log->last_index >= log->first_index ? prev_term : 0;
	log->flush_next = log->last_index + 1;
	log->written_index = log->last_index;
	log->durable_index = log->last_index;
	log->sync_wanted = log->last_index;
out_free:
	free(names);
	return rc;
}

int stor_log_open(struct stor_log *log, const struct stor_log_config *cfg, char *err,
		  size_t err_len)
{
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	memset(log, 0, sizeof *log);
	log->dir_fd = -1;
	int rc = config_check(cfg, err, err_len);
	if (rc != 0)
		return rc;
	log->cfg = *cfg;
	strcpy(log->dir, cfg->dir);
	log->cfg.dir = log->dir;

	log->dir_fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dir_fd < 0) {
		rc = -errno;
		errf(err, err_len, "storage: %s: %s", log->dir, strerror(errno));
		return rc;
	}
	/* The directory's own lock, held while the log is open, before anything
	 * in it is read or removed: one process per data directory. */
	rc = seg_lock(log->dir_fd, cfg->lock_wait_ms);
	if (rc != 0) {
		errf(err, err_len,
		     "storage: %s: cannot lock it (%s): another process is using this data "
		     "directory; stop it, or give this node its own --data",
		     log->dir, strerror(-rc));
		goto out_close_dir;
	}
	rc = io_uring_queue_init(cfg->queue_depth, &log->ring, 0);
	if (rc < 0) {
		errf(err, err_len, "storage: io_uring unavailable (io_uring_queue_init: %s)",
		     strerror(-rc));
		goto out_close_dir;
	}
	log->ring_ready = true;
	log->recs = calloc(cfg->records_max, sizeof *log->recs);
	log->segs = calloc(cfg->segments_max, sizeof *log->segs);
	log->buf = aligned_alloc(4096, (cfg->buffer_bytes + 4095) & ~(uint64_t)4095);
	log->ops = calloc(cfg->queue_depth, sizeof *log->ops);
	log->op_free = calloc(cfg->queue_depth, sizeof *log->op_free);
	log->wfifo = calloc(cfg->queue_depth, sizeof *log->wfifo);
	if (log->recs == NULL || log->segs == NULL || log->buf == NULL || log->ops == NULL ||
	    log->op_free == NULL || log->wfifo == NULL) {
		rc = -ENOMEM;
		errf(err, err_len, "storage: out of memory for the log");
		goto out_close;
	}
	for (uint32_t i = 0; i < cfg->queue_depth; i++)
		log->op_free[log->op_nfree++] = cfg->queue_depth - 1 - i;
	rc = recover(log, err, err_len);
	if (rc != 0)
		goto out_close;
	return 0;

out_close:
	stor_log_close(log); /* frees, closes segments, exits the ring, closes dir */
	return rc;
out_close_dir:
	close(log->dir_fd);
	log->dir_fd = -1;
	return rc;
}

void stor_log_close(struct stor_log *log)
{
	jan_stop(log);
	if (log->ring_ready) {
		drain(log);
		/* Exits (and cancels) before the buffer the kernel reads is freed. */
		io_uring_queue_exit(&log->ring);
		log->ring_ready = false;
	}
	for (uint64_t i = 0; log->segs != NULL && i < log->seg_count; i++) {
		struct stor_seg *s = seg_at(log, log->seg_head + i);
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
	}
	log->seg_count = 0;
	if (log->dir_fd >= 0)
		close(log->dir_fd);
	log->dir_fd = -1;
	free(log->recs);
	free(log->segs);
	free(log->buf);
	free(log->ops);
	free(log->op_free);
	free(log->wfifo);
	log->recs = NULL;
	log->segs = NULL;
	log->buf = NULL;
	log->ops = NULL;
	log->op_free = NULL;
	log->wfifo = NULL;
}
