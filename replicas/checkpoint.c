/*
 * Replica checkpoints (replicas/checkpoint.h): the snapshot of the ledger's
 * tables, the io_uring writer and its phases, the directory scan, and the
 * loader that verifies every CRC and rebuilds the tables.
 *
 * Writer phases: IDLE -> WRITING (header, chunks, then CRC table and
 * trailer; up to queue_depth writes in flight, a chunk's CRC computed just
 * before its write is submitted) -> SYNCING (one IORING_OP_FSYNC DATASYNC of
 * the temp file) -> DIRSYNC (rename done; fsync of the directory) ->
 * CLEANUP (unlinkat of old checkpoints) -> IDLE. An error in any phase stops
 * new I/O; once what is in flight has completed, the temp file is deleted
 * (unless already renamed) and the error reported once.
 *
 * The loader rebuilds the tables by inserting records in file order into the
 * slots the ledger's own probe rule names (ledger_account_slot,
 * ledger_transfer_slot). Two always-on checks: every inserted account is
 * found by ledger_account_find, and a sample of the transfers answers EXISTS
 * through ledger_apply.
 */
#include "replicas/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/constants.h"
#include "common/crc32c.h"
#include "common/le.h"

enum { PH_IDLE = 0, PH_WRITING, PH_SYNCING, PH_DIRSYNC, PH_CLEANUP };
enum { OP_FREE = 0, OP_WRITE, OP_FSYNC, OP_DIRSYNC, OP_UNLINK };

#define NAME_PREFIX	 "ckpt-"
#define NAME_SUFFIX	 ".ordo"
#define NAME_TMP_SUFFIX	 ".ordo.tmp"
#define NAME_DIGITS	 20u
#define NAME_BYTES	 (5u + NAME_DIGITS + 5u) /* without NUL */
#define READ_DEPTH	 REP_CKPT_QUEUE_DEPTH_DEFAULT
#define SUBMIT_TRIES_MAX 100u
#define TRANSFER_SAMPLE	 4096u /* every this many transfers is checked through ledger_apply */
#define FLAGS_KNOWN                                                                                \
	(WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS | WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS)

/* Header field offsets (checkpoint.h). */
#define H_MAGIC		0u
#define H_VERSION	4u
#define H_HEADER_BYTES	6u
#define H_CLUSTER	8u
#define H_POSITION	16u
#define H_EPOCH		24u
#define H_NEXT_EPOCH	32u
#define H_REQUESTS	40u
#define H_DIGEST	48u
#define H_ACCOUNTS	64u
#define H_TRANSFERS	72u
#define H_ACCOUNTS_MAX	80u
#define H_TRANSFERS_MAX 88u
#define H_CHUNK_BYTES	96u
#define H_CHUNKS	100u
#define H_STEPS		104u /* rep_state.steps when not applied_epoch (several groups) */
#define H_ACTIVE	112u /* rep_state.groups_active (u16), join_group (u16), join_epoch */
#define H_RESERVED	124u
#define H_CRC		124u
/* Trailer field offsets. */
#define T_MAGIC	     0u
#define T_CHUNKS     4u
#define T_POSITION   8u
#define T_FILE_BYTES 16u
#define T_TABLE_CRC  24u
#define T_CRC	     28u

ORDO_STATIC_ASSERT(NAME_BYTES + 4 < REP_CKPT_NAME_BYTES, "names fit");
ORDO_STATIC_ASSERT(H_CRC + 4 == REP_CKPT_HDR_BYTES, "header layout");
ORDO_STATIC_ASSERT(T_CRC + 4 == REP_CKPT_TRAILER_BYTES, "trailer layout");
ORDO_STATIC_ASSERT(sizeof(struct ledger_account) == REP_CKPT_REC_BYTES, "account slot");
ORDO_STATIC_ASSERT(sizeof(struct ledger_transfer) == REP_CKPT_REC_BYTES, "transfer slot");
ORDO_STATIC_ASSERT(READ_DEPTH <= REP_CKPT_QUEUE_DEPTH_MAX, "read depth");

/* ---- small helpers ---- */

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t len, const char *fmt, ...)
{
	if (err == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Appends to a message already in buf (truncating quietly). */
__attribute__((format(printf, 3, 4))) static void appendf(char *buf, size_t len, const char *fmt,
							  ...)
{
	size_t used = strnlen(buf, len);
	if (used + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static inline uint64_t pad8(uint64_t x)
{
	return (x + 7) & ~(uint64_t)7;
}

static inline uint32_t chunks_of(uint64_t bytes, uint32_t chunk_bytes)
{
	return (uint32_t)((bytes + chunk_bytes - 1) / chunk_bytes);
}

static inline bool id_invalid(uint64_t id)
{
	return id - 1 >= UINT64_MAX - 1; /* 0 or 2^64-1 */
}

void rep_ckpt_name(char *out, uint64_t position, bool tmp)
{
	snprintf(out, REP_CKPT_NAME_BYTES, NAME_PREFIX "%020" PRIu64 "%s", position,
		 tmp ? NAME_TMP_SUFFIX : NAME_SUFFIX);
}

int rep_ckpt_parse_name(const char *name, uint64_t *position, bool *tmp)
{
	size_t n = strlen(name);
	if (n != NAME_BYTES && n != NAME_BYTES + 4)
		return 0;
	if (memcmp(name, NAME_PREFIX, 5) != 0)
		return 0;
	uint64_t p = 0;
	for (uint32_t i = 0; i < NAME_DIGITS; i++) {
		char c = name[5 + i];
		if (c < '0' || c > '9')
			return 0;
		uint64_t d = (uint64_t)(c - '0');
		if (p > (UINT64_MAX - d) / 10)
			return 0;
		p = p * 10 + d;
	}
	const char *suffix = name + 5 + NAME_DIGITS;
	if (n == NAME_BYTES && strcmp(suffix, NAME_SUFFIX) == 0)
		*tmp = false;
	else if (n == NAME_BYTES + 4 && strcmp(suffix, NAME_TMP_SUFFIX) == 0)
		*tmp = true;
	else
		return 0;
	*position = p;
	return 1;
}

/* The checkpoints of a directory, newest first (at most FILES_MAX: the newest). */
struct ckpt_list {
	uint64_t pos[REP_CKPT_FILES_MAX];
	uint32_t n;
	uint32_t temps;		/* .tmp files seen */
	uint32_t temps_removed; /* of which deleted */
};

static int list_dir(int dir_fd, struct ckpt_list *l, bool remove_temps)
{
	memset(l, 0, sizeof *l);
	int fd = dup(dir_fd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t p;
		bool tmp;
		if (!rep_ckpt_parse_name(de->d_name, &p, &tmp))
			continue;
		if (tmp) {
			l->temps++;
			if (remove_temps && unlinkat(dir_fd, de->d_name, 0) == 0)
				l->temps_removed++;
			continue;
		}
		if (l->n == REP_CKPT_FILES_MAX && p < l->pos[l->n - 1])
			continue;
		uint32_t i = l->n < REP_CKPT_FILES_MAX ? l->n++ : l->n - 1;
		while (i > 0 && l->pos[i - 1] < p) {
			l->pos[i] = l->pos[i - 1];
			i--;
		}
		l->pos[i] = p;
	}
	closedir(d);
	return 0;
}

static uint64_t file_bytes_of(uint64_t accounts, uint64_t transfers, uint32_t chunk_bytes,
			      uint32_t *chunks_accounts, uint32_t *chunks)
{
	uint32_t ca = chunks_of(accounts * REP_CKPT_REC_BYTES, chunk_bytes);
	uint32_t c = ca + chunks_of(transfers * REP_CKPT_REC_BYTES, chunk_bytes);
	if (chunks_accounts != NULL)
		*chunks_accounts = ca;
	if (chunks != NULL)
		*chunks = c;
	return REP_CKPT_HDR_BYTES + (accounts + transfers) * REP_CKPT_REC_BYTES +
	       pad8((uint64_t)c * 4) + REP_CKPT_TRAILER_BYTES;
}

uint64_t rep_ckpt_file_bytes(uint64_t accounts, uint64_t transfers, uint32_t chunk_bytes)
{
	return file_bytes_of(accounts, transfers, chunk_bytes, NULL, NULL);
}

/* Where chunk k lies in the body (accounts then transfers, as in the file
 * after the header): start and length in bytes. */
static void chunk_span(uint64_t accounts, uint64_t transfers, uint32_t chunk_bytes,
		       uint32_t chunks_accounts, uint32_t k, uint64_t *start, uint32_t *len)
{
	uint64_t region_start, region_end, first;
	if (k < chunks_accounts) {
		region_start = 0;
		region_end = accounts * REP_CKPT_REC_BYTES;
		first = 0;
	} else {
		region_start = accounts * REP_CKPT_REC_BYTES;
		region_end = region_start + transfers * REP_CKPT_REC_BYTES;
		first = chunks_accounts;
	}
	uint64_t s = region_start + (uint64_t)(k - first) * chunk_bytes;
	uint64_t e = s + chunk_bytes < region_end ? s + chunk_bytes : region_end;
	ORDO_ASSERT(s < e);
	*start = s;
	*len = (uint32_t)(e - s);
}

/* ---- snapshot ---- */

/* The first empty slot of a table: one exists, load <= 0.5. */
static uint64_t first_empty_account(const struct ledger *l)
{
	uint64_t i = 0;
	while (l->accounts[i].id != 0)
		i++;
	ORDO_ASSERT(i < l->accounts_cap);
	return i;
}

static uint64_t first_empty_transfer(const struct ledger *l)
{
	uint64_t i = 0;
	while (l->transfers[i].id != 0)
		i++;
	ORDO_ASSERT(i < l->transfers_cap);
	return i;
}

/* Encodes the occupied slots of [from, to) at out + 32 n. Branch-free: every
 * slot is stored and n advances only past occupied ones, so out must have 32
 * bytes of room past the last record. */
static uint64_t snap_account_range(uint8_t *out, uint64_t n, const struct ledger_account *t,
				   uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++) {
		const struct ledger_account *a = &t[i];
		uint8_t *p = out + n * REP_CKPT_REC_BYTES;
		ordo_st64(p, a->id);
		ordo_st64(p + 8, a->debits_posted);
		ordo_st64(p + 16, a->credits_posted);
		ordo_st32(p + 24, a->flags);
		ordo_st32(p + 28, 0);
		n += a->id != 0;
	}
	return n;
}

static uint64_t snap_transfer_range(uint8_t *out, uint64_t n, const struct ledger_transfer *t,
				    uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++) {
		const struct ledger_transfer *x = &t[i];
		uint8_t *p = out + n * REP_CKPT_REC_BYTES;
		ordo_st64(p, x->id);
		ordo_st64(p + 8, x->debit_account_id);
		ordo_st64(p + 16, x->credit_account_id);
		ordo_st64(p + 24, x->amount);
		n += x->id != 0;
	}
	return n;
}

/* Records in slot order starting just after an empty slot e: inserting them
 * in this order into an empty table of the same capacity puts each at the
 * slot it came from (every slot between its home and its place is filled by
 * an earlier record, and its own is still free). */
static uint64_t snap_accounts(uint8_t *out, const struct ledger *l)
{
	uint64_t e = first_empty_account(l);
	uint64_t n = snap_account_range(out, 0, l->accounts, e + 1, l->accounts_cap);
	n = snap_account_range(out, n, l->accounts, 0, e);
	ORDO_ASSERT(n == l->accounts_count);
	return n;
}

static uint64_t snap_transfers(uint8_t *out, const struct ledger *l)
{
	uint64_t e = first_empty_transfer(l);
	uint64_t n = snap_transfer_range(out, 0, l->transfers, e + 1, l->transfers_cap);
	n = snap_transfer_range(out, n, l->transfers, 0, e);
	ORDO_ASSERT(n == l->transfers_count);
	return n;
}

static void header_encode(uint8_t *h, uint64_t cluster_id, const struct rep_state *s,
			  uint64_t accounts, uint64_t transfers, uint32_t chunk_bytes,
			  uint32_t chunks)
{
	memset(h, 0, REP_CKPT_HDR_BYTES);
	ordo_st32(h + H_MAGIC, REP_CKPT_MAGIC);
	ordo_st16(h + H_VERSION, REP_CKPT_VERSION);
	ordo_st16(h + H_HEADER_BYTES, REP_CKPT_HDR_BYTES);
	ordo_st64(h + H_CLUSTER, cluster_id);
	ordo_st64(h + H_POSITION, s->applied_position);
	ordo_st64(h + H_EPOCH, s->applied_epoch);
	ordo_st64(h + H_NEXT_EPOCH, s->next_epoch);
	ordo_st64(h + H_STEPS, s->steps == s->applied_epoch ? 0 : s->steps);
	ordo_st16(h + H_ACTIVE, (uint16_t)s->groups_active);
	ordo_st16(h + H_ACTIVE + 2, s->join_group);
	ordo_st64(h + H_ACTIVE + 4, s->join_epoch);
	ordo_st64(h + H_REQUESTS, s->requests_applied);
	memcpy(h + H_DIGEST, s->digest, 16);
	ordo_st64(h + H_ACCOUNTS, accounts);
	ordo_st64(h + H_TRANSFERS, transfers);
	ordo_st64(h + H_ACCOUNTS_MAX, s->ledger.cfg.accounts_max);
	ordo_st64(h + H_TRANSFERS_MAX, s->ledger.cfg.transfers_max);
	ordo_st32(h + H_CHUNK_BYTES, chunk_bytes);
	ordo_st32(h + H_CHUNKS, chunks);
	ordo_st32(h + H_CRC, ordo_crc32c(h, H_CRC));
}

/* ---- writer ---- */

void rep_ckpt_config_default(struct rep_ckpt_config *c, const char *dir, uint64_t cluster_id,
			     const struct ledger_cfg *ledger)
{
	memset(c, 0, sizeof *c);
	c->dir = dir;
	c->cluster_id = cluster_id;
	c->ledger = *ledger;
	c->chunk_bytes = REP_CKPT_CHUNK_BYTES_DEFAULT;
	c->queue_depth = REP_CKPT_QUEUE_DEPTH_DEFAULT;
	c->keep = REP_CKPT_KEEP_DEFAULT;
}

static size_t snap_bytes_of(const struct rep_ckpt_config *cfg)
{
	/* + one record: the branch-free copy stores past the last record. */
	return (size_t)(cfg->ledger.accounts_max + cfg->ledger.transfers_max + 1) *
	       REP_CKPT_REC_BYTES;
}

static uint32_t chunks_max_of(const struct rep_ckpt_config *cfg)
{
	return chunks_of(cfg->ledger.accounts_max * REP_CKPT_REC_BYTES, cfg->chunk_bytes) +
	       chunks_of(cfg->ledger.transfers_max * REP_CKPT_REC_BYTES, cfg->chunk_bytes);
}

static size_t meta_bytes_of(const struct rep_ckpt_config *cfg)
{
	return REP_CKPT_HDR_BYTES + pad8((uint64_t)chunks_max_of(cfg) * 4) + REP_CKPT_TRAILER_BYTES;
}

size_t rep_ckpt_writer_bytes(const struct rep_ckpt_config *cfg)
{
	return snap_bytes_of(cfg) + meta_bytes_of(cfg);
}

static int config_check(const struct rep_ckpt_config *cfg, char *err, size_t err_len)
{
	if (cfg->dir == NULL || cfg->dir[0] == '\0' || strlen(cfg->dir) >= PATH_MAX) {
		errf(err, err_len, "checkpoint: no directory, or a path too long");
		return -EINVAL;
	}
	if (cfg->chunk_bytes < REP_CKPT_CHUNK_BYTES_MIN ||
	    cfg->chunk_bytes > REP_CKPT_CHUNK_BYTES_MAX || cfg->chunk_bytes % 4096 != 0) {
		errf(err, err_len,
		     "checkpoint: chunk_bytes %" PRIu32 " must be a multiple of 4096 in [%u, %u]",
		     cfg->chunk_bytes, REP_CKPT_CHUNK_BYTES_MIN, REP_CKPT_CHUNK_BYTES_MAX);
		return -EINVAL;
	}
	if (cfg->queue_depth < 2 || cfg->queue_depth > REP_CKPT_QUEUE_DEPTH_MAX) {
		errf(err, err_len, "checkpoint: queue_depth %" PRIu32 " must be in [2, %u]",
		     cfg->queue_depth, REP_CKPT_QUEUE_DEPTH_MAX);
		return -EINVAL;
	}
	if (cfg->keep < 1 || cfg->keep >= REP_CKPT_FILES_MAX) {
		errf(err, err_len, "checkpoint: keep %" PRIu32 " must be in [1, %u]", cfg->keep,
		     REP_CKPT_FILES_MAX - 1);
		return -EINVAL;
	}
	if (cfg->ledger.accounts_max > ORDO_ACCOUNTS_MAX_LIMIT ||
	    cfg->ledger.transfers_max > ORDO_TRANSFERS_MAX_LIMIT) {
		errf(err, err_len, "checkpoint: ledger capacities past their limits");
		return -EINVAL;
	}
	return 0;
}

int rep_ckpt_writer_init(struct rep_ckpt_writer *w, const struct rep_ckpt_config *cfg, char *err,
			 size_t err_len)
{
	errf(err, err_len, "%s", "");
	memset(w, 0, sizeof *w);
	w->dir_fd = -1;
	w->fd = -1;
	int rc = config_check(cfg, err, err_len);
	if (rc != 0)
		return rc;
	w->cfg = *cfg;
	strcpy(w->dir, cfg->dir);
	w->cfg.dir = w->dir;

	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0) {
		rc = -errno;
		errf(err, err_len, "checkpoint: %s: %s", w->dir, strerror(errno));
		return rc;
	}
	rc = io_uring_queue_init(cfg->queue_depth, &w->ring, 0);
	if (rc < 0) {
		errf(err, err_len, "checkpoint: io_uring unavailable (io_uring_queue_init: %s)",
		     strerror(-rc));
		goto out_close_dir;
	}
	w->ring_ready = true;
	w->snap_bytes = snap_bytes_of(cfg);
	w->snap = mmap(NULL, w->snap_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->snap == MAP_FAILED) {
		w->snap = NULL;
		rc = -ENOMEM;
		errf(err, err_len, "checkpoint: cannot map %zu bytes of snapshot buffer",
		     w->snap_bytes);
		goto out_free;
	}
	(void)madvise(w->snap, w->snap_bytes, MADV_HUGEPAGE); /* advisory */
	w->chunks_max = chunks_max_of(cfg);
	w->meta_bytes = meta_bytes_of(cfg);
	w->meta = calloc(1, w->meta_bytes);
	if (w->meta == NULL) {
		rc = -ENOMEM;
		errf(err, err_len, "checkpoint: out of memory for the CRC table");
		goto out_free;
	}
	struct ckpt_list l;
	rc = list_dir(w->dir_fd, &l, true);
	if (rc != 0) {
		errf(err, err_len, "checkpoint: reading %s: %s", w->dir, strerror(-rc));
		goto out_free;
	}
	w->stats.temps_removed = l.temps_removed;
	return 0;

out_free:
	rep_ckpt_writer_free(w);
	return rc;
out_close_dir:
	close(w->dir_fd);
	w->dir_fd = -1;
	return rc;
}

void rep_ckpt_writer_free(struct rep_ckpt_writer *w)
{
	if (w->ring_ready) {
		rep_ckpt_abort(w);
		io_uring_queue_exit(&w->ring);
		w->ring_ready = false;
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->snap != NULL)
		munmap(w->snap, w->snap_bytes);
	w->snap = NULL;
	free(w->meta);
	w->meta = NULL;
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	w->dir_fd = -1;
}

int rep_ckpt_fd(const struct rep_ckpt_writer *w)
{
	return w->ring.ring_fd;
}

/* Records the first error of the checkpoint in progress; new I/O stops. */
__attribute__((format(printf, 3, 4))) static void fail(struct rep_ckpt_writer *w, int rc,
						       const char *fmt, ...)
{
	ORDO_ASSERT(rc < 0);
	if (w->error != 0)
		return;
	w->error = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
}

static struct rep_ckpt_op *op_get(struct rep_ckpt_writer *w)
{
	for (uint32_t i = 0; i < w->cfg.queue_depth; i++)
		if (w->ops[i].kind == OP_FREE)
			return &w->ops[i];
	return NULL;
}

static struct io_uring_sqe *sqe_get(struct rep_ckpt_writer *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	/* Ops are bounded by queue_depth, the SQ size, and the SQ is emptied
	 * before each poll returns: there is always room. */
	ORDO_ASSERT(sqe != NULL);
	w->unsubmitted++;
	return sqe;
}

static void write_prep(struct rep_ckpt_writer *w, struct rep_ckpt_op *op)
{
	struct io_uring_sqe *sqe = sqe_get(w);
	io_uring_prep_write(sqe, w->fd, op->buf, op->len, op->file_off);
	io_uring_sqe_set_data(sqe, op);
	w->stats.writes++;
}

static void sync_prep(struct rep_ckpt_writer *w, struct rep_ckpt_op *op, uint8_t kind)
{
	op->kind = kind;
	struct io_uring_sqe *sqe = sqe_get(w);
	if (kind == OP_FSYNC)
		io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
	else
		io_uring_prep_fsync(sqe, w->dir_fd, 0);
	io_uring_sqe_set_data(sqe, op);
}

static void submit(struct rep_ckpt_writer *w)
{
	for (uint32_t tries = 0; w->unsubmitted > 0; tries++) {
		int rc = io_uring_submit(&w->ring);
		if (rc > 0) {
			ORDO_ASSERT((uint32_t)rc <= w->unsubmitted);
			w->unsubmitted -= (uint32_t)rc;
			w->inflight += (uint32_t)rc;
			continue;
		}
		if ((rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == 0) &&
		    tries < SUBMIT_TRIES_MAX)
			continue;
		fail(w, rc < 0 ? rc : -EIO, "checkpoint %s/%s: io_uring_submit: %s", w->dir,
		     w->tmp_name, strerror(rc < 0 ? -rc : EIO));
		return; /* finish_failed() rebuilds the ring to drop what is left */
	}
}

/* Prepares write unit u: 0 the header, 1..C chunk u - 1 (its CRC computed
 * now), C + 1 the CRC table and trailer (once every chunk CRC is known). */
static void unit_prep(struct rep_ckpt_writer *w, struct rep_ckpt_op *op, uint32_t u)
{
	op->kind = OP_WRITE;
	op->retries = 0;
	if (u == 0) {
		op->buf = w->meta;
		op->file_off = 0;
		op->len = REP_CKPT_HDR_BYTES;
	} else if (u <= w->chunks) {
		uint64_t start;
		uint32_t len;
		chunk_span(w->accounts, w->transfers, w->cfg.chunk_bytes, w->chunks_accounts, u - 1,
			   &start, &len);
		op->buf = w->snap + start;
		op->file_off = REP_CKPT_HDR_BYTES + start;
		op->len = len;
		ordo_st32(w->meta + REP_CKPT_HDR_BYTES + (uint64_t)(u - 1) * 4,
			  ordo_crc32c(op->buf, len));
	} else {
		uint64_t table = pad8((uint64_t)w->chunks * 4);
		uint8_t *t = w->meta + REP_CKPT_HDR_BYTES;
		memset(t + (uint64_t)w->chunks * 4, 0, table - (uint64_t)w->chunks * 4);
		uint8_t *tr = t + table;
		memset(tr, 0, REP_CKPT_TRAILER_BYTES);
		ordo_st32(tr + T_MAGIC, REP_CKPT_TRAILER_MAGIC);
		ordo_st32(tr + T_CHUNKS, w->chunks);
		ordo_st64(tr + T_POSITION, w->position);
		ordo_st64(tr + T_FILE_BYTES, w->file_bytes);
		ordo_st32(tr + T_TABLE_CRC, ordo_crc32c(w->meta, REP_CKPT_HDR_BYTES + table));
		ordo_st32(tr + T_CRC, ordo_crc32c(tr, T_CRC));
		op->buf = t;
		op->file_off = w->file_bytes - table - REP_CKPT_TRAILER_BYTES;
		op->len = (uint32_t)(table + REP_CKPT_TRAILER_BYTES);
	}
	write_prep(w, op);
}

static int fault_filter(struct rep_ckpt_writer *w, uint8_t kind, int res)
{
	struct rep_ckpt_fault *f = &w->fault;
	if (ORDO_LIKELY(!f->armed) || res < 0)
		return res;
	int error = f->error != 0 ? f->error : -EIO;
	if (kind == OP_WRITE && f->write_armed) {
		if (f->write_after == 0) {
			f->write_armed = false;
			return error;
		}
		f->write_after--;
	}
	if (kind == OP_FSYNC && f->fsync_armed) {
		f->fsync_armed = false;
		return error;
	}
	return res;
}

/* After the temp file is durable: close, rename, then fsync the directory. */
static void rename_and_dirsync(struct rep_ckpt_writer *w, struct rep_ckpt_op *op)
{
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) != 0) {
		fail(w, -errno, "checkpoint %s/%s: close: %s", w->dir, w->tmp_name,
		     strerror(errno));
		return;
	}
	if (renameat(w->dir_fd, w->tmp_name, w->dir_fd, w->name) != 0) {
		fail(w, -errno, "checkpoint %s/%s: rename to %s: %s", w->dir, w->tmp_name, w->name,
		     strerror(errno));
		return;
	}
	w->renamed = true;
	sync_prep(w, op, OP_DIRSYNC);
	w->phase = PH_DIRSYNC;
}

/* The new checkpoint is durable: choose the old ones to delete. */
static void plan_cleanup(struct rep_ckpt_writer *w)
{
	w->durable_position = w->position;
	w->old_n = 0;
	w->old_next = 0;
	struct ckpt_list l;
	int rc = list_dir(w->dir_fd, &l, false);
	if (rc != 0) {
		w->stats.remove_errors++;
		errf(w->err, sizeof w->err, "checkpoint: reading %s to delete old checkpoints: %s",
		     w->dir, strerror(-rc));
	}
	uint32_t kept_older = 0;
	for (uint32_t i = 0; rc == 0 && i < l.n; i++) {
		if (l.pos[i] == w->position)
			continue;
		if (l.pos[i] < w->position && kept_older + 1 < w->cfg.keep) {
			kept_older++;
			continue;
		}
		rep_ckpt_name(w->old[w->old_n++], l.pos[i], false);
	}
	w->phase = PH_CLEANUP;
}

static void complete(struct rep_ckpt_writer *w, const struct io_uring_cqe *cqe)
{
	struct rep_ckpt_op *op = io_uring_cqe_get_data(cqe);
	ORDO_ASSERT(w->inflight > 0 && op != NULL && op->kind != OP_FREE);
	w->inflight--;
	int res = fault_filter(w, op->kind, cqe->res);
	uint8_t kind = op->kind;
	if (kind == OP_UNLINK) {
		if (res < 0 && res != -ENOENT) {
			w->stats.remove_errors++;
			errf(w->err, sizeof w->err, "checkpoint: deleting old %s/%s: %s", w->dir,
			     w->old[op->file], strerror(-res));
		} else if (res == 0) {
			w->stats.removed++;
		}
		op->kind = OP_FREE;
		return;
	}
	if (w->error != 0) {
		op->kind = OP_FREE; /* failing: nothing more is done */
		return;
	}
	switch (kind) {
	case OP_WRITE:
		if ((res == -EAGAIN || res == -EINTR) && op->retries < REP_CKPT_WRITE_RETRIES_MAX) {
			op->retries++;
			w->stats.retries++;
			write_prep(w, op);
			return;
		}
		if (res <= 0) {
			int e = res < 0 ? res : -EIO;
			fail(w, e,
			     "checkpoint %s/%s: write of %" PRIu32 " bytes at offset %" PRIu64
			     ": %s",
			     w->dir, w->tmp_name, op->len, op->file_off, strerror(-e));
			op->kind = OP_FREE;
			return;
		}
		w->stats.write_bytes += (uint64_t)res;
		if ((uint32_t)res < op->len) {
			w->stats.short_writes++;
			op->buf += res;
			op->file_off += (uint64_t)res;
			op->len -= (uint32_t)res;
			write_prep(w, op);
			return;
		}
		op->kind = OP_FREE;
		w->units_done++;
		return;
	case OP_FSYNC:
		if (res < 0) {
			fail(w, res, "checkpoint %s/%s: fdatasync: %s", w->dir, w->tmp_name,
			     strerror(-res));
			op->kind = OP_FREE;
			return;
		}
		rename_and_dirsync(w, op);
		if (w->error != 0)
			op->kind = OP_FREE;
		return;
	case OP_DIRSYNC:
		op->kind = OP_FREE;
		if (res < 0) {
			fail(w, res,
			     "checkpoint %s: fsync of the directory after renaming %s: %s; the "
			     "checkpoint is complete but its name may not survive a crash",
			     w->dir, w->name, strerror(-res));
			return;
		}
		plan_cleanup(w);
		return;
	default:
		ORDO_ASSERT(0);
	}
}

static void reap(struct rep_ckpt_writer *w)
{
	struct io_uring_cqe *cqe;
	while (w->inflight > 0 && io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		complete(w, cqe);
		io_uring_cqe_seen(&w->ring, cqe);
	}
}

/* Ends a failed (or aborted) checkpoint once nothing is in flight. */
static int finish_failed(struct rep_ckpt_writer *w)
{
	ORDO_ASSERT(w->inflight == 0);
	int rc = w->error;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (!w->renamed)
		(void)unlinkat(w->dir_fd, w->tmp_name, 0);
	if (w->unsubmitted > 0) {
		/* io_uring_submit kept failing: drop the prepared SQEs with the ring. */
		io_uring_queue_exit(&w->ring);
		w->ring_ready = false;
		w->ring_ready = io_uring_queue_init(w->cfg.queue_depth, &w->ring, 0) == 0;
		w->unsubmitted = 0;
	}
	memset(w->ops, 0, sizeof w->ops);
	w->phase = PH_IDLE;
	w->error = 0;
	w->stats.failed++;
	return rc;
}

/* Starts what the phase allows, submits, and says where things stand. */
static int step(struct rep_ckpt_writer *w)
{
	if (w->error == 0) {
		struct rep_ckpt_op *op;
		switch (w->phase) {
		case PH_WRITING:
			while (w->next_unit <= w->chunks + 1 && (op = op_get(w)) != NULL)
				unit_prep(w, op, w->next_unit++);
			if (w->units_done == w->chunks + 2) {
				op = op_get(w);
				ORDO_ASSERT(op != NULL); /* every write completed */
				sync_prep(w, op, OP_FSYNC);
				w->phase = PH_SYNCING;
			}
			break;
		case PH_CLEANUP:
			while (w->old_next < w->old_n && (op = op_get(w)) != NULL) {
				op->kind = OP_UNLINK;
				op->file = (uint8_t)w->old_next;
				struct io_uring_sqe *sqe = sqe_get(w);
				io_uring_prep_unlinkat(sqe, w->dir_fd, w->old[w->old_next], 0);
				io_uring_sqe_set_data(sqe, op);
				w->old_next++;
			}
			break;
		default:
			break;
		}
		submit(w);
	}
	if (w->error != 0)
		return w->inflight > 0 ? REP_CKPT_BUSY : finish_failed(w);
	if (w->phase == PH_CLEANUP && w->old_next == w->old_n && w->inflight == 0) {
		w->phase = PH_IDLE;
		w->stats.durable++;
		return REP_CKPT_DONE;
	}
	ORDO_ASSERT(w->inflight > 0); /* else nothing would ever move it on */
	return REP_CKPT_BUSY;
}

int rep_ckpt_begin(struct rep_ckpt_writer *w, const struct rep_state *s)
{
	if (!w->ring_ready) {
		errf(w->err, sizeof w->err, "checkpoint: the writer lost its io_uring");
		return -EIO;
	}
	if (w->phase != PH_IDLE) {
		errf(w->err, sizeof w->err,
		     "checkpoint: one at position %" PRIu64 " is in progress", w->position);
		return -EBUSY;
	}
	const struct ledger_cfg *lc = &s->ledger.cfg;
	if (lc->accounts_max != w->cfg.ledger.accounts_max ||
	    lc->transfers_max != w->cfg.ledger.transfers_max) {
		errf(w->err, sizeof w->err,
		     "checkpoint: the state has accounts_max %" PRIu64 " transfers_max %" PRIu64
		     ", the writer was made for %" PRIu64 " and %" PRIu64,
		     lc->accounts_max, lc->transfers_max, w->cfg.ledger.accounts_max,
		     w->cfg.ledger.transfers_max);
		return -EINVAL;
	}
	w->position = s->applied_position;
	rep_ckpt_name(w->name, w->position, false);
	rep_ckpt_name(w->tmp_name, w->position, true);
	w->fd = openat(w->dir_fd, w->tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int rc = -errno;
		errf(w->err, sizeof w->err, "checkpoint %s/%s: create: %s", w->dir, w->tmp_name,
		     strerror(errno));
		return rc;
	}
	w->accounts = snap_accounts(w->snap, &s->ledger);
	w->transfers = snap_transfers(w->snap + w->accounts * REP_CKPT_REC_BYTES, &s->ledger);
	w->file_bytes = file_bytes_of(w->accounts, w->transfers, w->cfg.chunk_bytes,
				      &w->chunks_accounts, &w->chunks);
	ORDO_ASSERT(w->chunks <= w->chunks_max);
	header_encode(w->meta, w->cfg.cluster_id, s, w->accounts, w->transfers, w->cfg.chunk_bytes,
		      w->chunks);
	w->phase = PH_WRITING;
	w->renamed = false;
	w->error = 0;
	w->next_unit = 0;
	w->units_done = 0;
	w->stats.begun++;
	w->stats.last_file_bytes = w->file_bytes;
	int rc = step(w);
	return rc < 0 ? rc : 0;
}

int rep_ckpt_poll(struct rep_ckpt_writer *w)
{
	if (w->phase == PH_IDLE)
		return REP_CKPT_IDLE;
	reap(w);
	return step(w);
}

int rep_ckpt_wait(struct rep_ckpt_writer *w)
{
	for (;;) {
		int rc = rep_ckpt_poll(w);
		if (rc != REP_CKPT_BUSY)
			return rc;
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&w->ring, &cqe);
		if (rc < 0 && rc != -EINTR) {
			errf(w->err, sizeof w->err, "checkpoint: io_uring_wait_cqe: %s",
			     strerror(-rc));
			return rc;
		}
	}
}

void rep_ckpt_abort(struct rep_ckpt_writer *w)
{
	if (w->phase == PH_IDLE)
		return;
	bool durable = w->phase == PH_CLEANUP;
	if (w->error == 0)
		fail(w, -ECANCELED, "checkpoint %s/%s: abandoned", w->dir, w->tmp_name);
	while (w->inflight > 0) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&w->ring, &cqe);
		if (rc == -EINTR)
			continue;
		ORDO_ASSERT(rc == 0); /* the ring is ours and has completions owed */
		complete(w, cqe);
		io_uring_cqe_seen(&w->ring, cqe);
	}
	(void)finish_failed(w);
	if (durable) {
		w->stats.failed--;
		w->stats.durable++;
	}
}

/* ---- loader ---- */

/* One chunk read in flight. */
struct rd_op {
	uint8_t *buf;	  /* chunk_bytes of buffer */
	uint64_t off;	  /* file offset of the chunk */
	uint32_t len;	  /* chunk length */
	uint32_t got;	  /* bytes read so far */
	uint32_t retries; /* -EAGAIN/-EINTR resubmissions */
	bool busy;	  /* a read is in flight */
	bool done;	  /* got == len */
	int error;	  /* negative errno of a failed read, or -ENODATA at end of file */
};

struct loader {
	struct io_uring ring; /* READ_DEPTH entries, made per file */
	int fd;
	uint32_t inflight;    /* reads submitted, not completed */
	uint32_t unsubmitted; /* reads prepared, not submitted */
	struct rd_op ops[READ_DEPTH];
	const char *path; /* for messages */
	char *err;
	size_t err_len;
};

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

static void rd_prep(struct loader *ld, struct rd_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ld->ring);
	ORDO_ASSERT(sqe != NULL); /* at most READ_DEPTH reads, the ring's size */
	io_uring_prep_read(sqe, ld->fd, op->buf + op->got, op->len - op->got, op->off + op->got);
	io_uring_sqe_set_data(sqe, op);
	op->busy = true;
	ld->unsubmitted++;
}

/* Submits the prepared reads. On an error the ring is left with unsubmitted
 * SQEs: the caller drains what is in flight and discards the ring. */
static int rd_submit(struct loader *ld)
{
	for (uint32_t tries = 0; ld->unsubmitted > 0; tries++) {
		int rc = io_uring_submit(&ld->ring);
		if (rc > 0) {
			ORDO_ASSERT((uint32_t)rc <= ld->unsubmitted);
			ld->unsubmitted -= (uint32_t)rc;
			ld->inflight += (uint32_t)rc;
			continue;
		}
		if ((rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == 0) &&
		    tries < SUBMIT_TRIES_MAX)
			continue;
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

/* Waits for one completion and applies it to its op; 0 or a submit error. */
static int rd_wait_one(struct loader *ld)
{
	struct io_uring_cqe *cqe;
	int rc;
	do
		rc = io_uring_wait_cqe(&ld->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	struct rd_op *op = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	io_uring_cqe_seen(&ld->ring, cqe);
	ORDO_ASSERT(ld->inflight > 0 && op->busy);
	ld->inflight--;
	op->busy = false;
	if ((res == -EAGAIN || res == -EINTR) && op->retries < REP_CKPT_WRITE_RETRIES_MAX) {
		op->retries++;
		rd_prep(ld, op);
		return rd_submit(ld);
	}
	if (res < 0) {
		op->error = res;
		return 0;
	}
	if (res == 0) {
		op->error = -ENODATA; /* the file shrank under us */
		return 0;
	}
	op->got += (uint32_t)res;
	if (op->got < op->len) {
		rd_prep(ld, op);
		return rd_submit(ld);
	}
	op->done = true;
	return 0;
}

static void rd_drain(struct loader *ld)
{
	while (ld->inflight > 0) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&ld->ring, &cqe);
		if (rc == -EINTR)
			continue;
		ORDO_ASSERT(rc == 0);
		struct rd_op *op = io_uring_cqe_get_data(cqe);
		op->busy = false;
		io_uring_cqe_seen(&ld->ring, cqe);
		ld->inflight--;
	}
}

/* Inserts one account record; NULL, or what is wrong with it. */
static const char *insert_account(struct ledger *l, const uint8_t *p)
{
	uint64_t id = ordo_ld64(p);
	uint64_t debits = ordo_ld64(p + 8);
	uint64_t credits = ordo_ld64(p + 16);
	uint32_t flags = ordo_ld32(p + 24);
	if (id_invalid(id))
		return "account id 0 or 2^64-1";
	if ((flags & ~FLAGS_KNOWN) != 0 || flags == FLAGS_KNOWN)
		return "account flags invalid";
	if (ordo_ld32(p + 28) != 0)
		return "account reserved field not zero";
	if ((flags & WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) && debits > credits)
		return "account debits exceed credits under DEBITS_MUST_NOT_EXCEED_CREDITS";
	if ((flags & WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS) && credits > debits)
		return "account credits exceed debits under CREDITS_MUST_NOT_EXCEED_DEBITS";
	struct ledger_account *a = ledger_account_slot(l, id);
	if (a->id == id)
		return "account id appears twice";
	ORDO_ASSERT(l->accounts_count < l->cfg.accounts_max); /* header count checked */
	a->id = id;
	a->debits_posted = debits;
	a->credits_posted = credits;
	a->flags = flags;
	a->reserved = 0;
	l->accounts_count++;
	ORDO_ASSERT(ledger_account_find(l, id) == a);
	return NULL;
}

static const char *insert_transfer(struct ledger *l, const uint8_t *p)
{
	uint64_t id = ordo_ld64(p);
	uint64_t debit = ordo_ld64(p + 8);
	uint64_t credit = ordo_ld64(p + 16);
	uint64_t amount = ordo_ld64(p + 24);
	if (id_invalid(id) || id_invalid(debit) || id_invalid(credit))
		return "transfer id, debit or credit account id 0 or 2^64-1";
	if (debit == credit)
		return "transfer between an account and itself";
	if (amount == 0)
		return "transfer amount zero";
	struct ledger_transfer *t = ledger_transfer_slot(l, id);
	if (t->id == id)
		return "transfer id appears twice";
	ORDO_ASSERT(l->transfers_count < l->cfg.transfers_max);
	t->id = id;
	t->debit_account_id = debit;
	t->credit_account_id = credit;
	t->amount = amount;
	l->transfers_count++;
	if (l->transfers_count % TRANSFER_SAMPLE == 1) {
		/* The ledger sees it: EXISTS changes nothing. */
		uint8_t data[32];
		ORDO_ASSERT(ledger_apply(l, WIRE_OP_TRANSFER, p, REP_CKPT_REC_BYTES, data) ==
			    WIRE_R_EXISTS);
	}
	return NULL;
}

/* Reads, checks and inserts every chunk in order, READ_DEPTH reads ahead.
 * Returns 0, -EUCLEAN (rejected, message in ld->err), or an I/O error. */
static int load_chunks(struct loader *ld, struct ledger *l, const uint8_t *table, uint64_t accounts,
		       uint64_t transfers, uint32_t chunk_bytes, uint32_t chunks_accounts,
		       uint32_t chunks)
{
	if (chunks == 0)
		return 0;
	uint32_t depth = chunks < READ_DEPTH ? chunks : READ_DEPTH;
	uint8_t *bufs = malloc((size_t)depth * chunk_bytes);
	if (bufs == NULL) {
		errf(ld->err, ld->err_len, "%s: out of memory for read buffers", ld->path);
		return -ENOMEM;
	}
	int rc = io_uring_queue_init(READ_DEPTH, &ld->ring, 0);
	if (rc < 0) {
		errf(ld->err, ld->err_len, "%s: io_uring unavailable (io_uring_queue_init: %s)",
		     ld->path, strerror(-rc));
		free(bufs);
		return rc;
	}
	memset(ld->ops, 0, sizeof ld->ops);
	for (uint32_t i = 0; i < depth; i++)
		ld->ops[i].buf = bufs + (size_t)i * chunk_bytes;
	uint32_t next = 0; /* next chunk to ask for */
	for (uint32_t k = 0; k < chunks && rc == 0; k++) {
		while (next < chunks && next < k + depth) {
			struct rd_op *op = &ld->ops[next % depth];
			ORDO_ASSERT(!op->busy);
			uint64_t start;
			chunk_span(accounts, transfers, chunk_bytes, chunks_accounts, next, &start,
				   &op->len);
			op->off = REP_CKPT_HDR_BYTES + start;
			op->got = 0;
			op->retries = 0;
			op->done = false;
			op->error = 0;
			rd_prep(ld, op);
			next++;
		}
		rc = rd_submit(ld);
		struct rd_op *op = &ld->ops[k % depth];
		while (rc == 0 && !op->done && op->error == 0)
			rc = rd_wait_one(ld);
		if (rc != 0) {
			errf(ld->err, ld->err_len, "%s: io_uring: %s", ld->path, strerror(-rc));
			break;
		}
		if (op->error != 0) {
			uint64_t at = op->off + op->got;
			if (op->error == -ENODATA) {
				errf(ld->err, ld->err_len,
				     "%s: offset %" PRIu64 ": truncated while read", ld->path, at);
				rc = -EUCLEAN;
			} else {
				errf(ld->err, ld->err_len, "%s: offset %" PRIu64 ": read: %s",
				     ld->path, at, strerror(-op->error));
				rc = op->error;
			}
			break;
		}
		bool is_acct = k < chunks_accounts;
		uint32_t stored = ordo_ld32(table + (uint64_t)k * 4);
		uint32_t crc = ordo_crc32c(op->buf, op->len);
		if (crc != stored) {
			errf(ld->err, ld->err_len,
			     "%s: offset %" PRIu64 ": %s chunk %" PRIu32 " (%" PRIu32
			     " bytes) fails its CRC (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
			     ")",
			     ld->path, op->off, is_acct ? "accounts" : "transfers",
			     is_acct ? k : k - chunks_accounts, op->len, stored, crc);
			rc = -EUCLEAN;
			break;
		}
		for (uint32_t r = 0; r < op->len; r += REP_CKPT_REC_BYTES) {
			const uint8_t *p = op->buf + r;
			const char *why = is_acct ? insert_account(l, p) : insert_transfer(l, p);
			if (why != NULL) {
				errf(ld->err, ld->err_len, "%s: offset %" PRIu64 ": %s", ld->path,
				     op->off + r, why);
				rc = -EUCLEAN;
				break;
			}
		}
		op->done = false;
	}
	rd_drain(ld);
	/* Nothing in flight: exiting drops any unsubmitted SQE, then the buffers go. */
	io_uring_queue_exit(&ld->ring);
	free(bufs);
	return rc;
}

__attribute__((format(printf, 4, 5))) static int reject(char *err, size_t err_len, const char *path,
							const char *fmt, ...)
{
	int n = snprintf(err, err_len, "%s: ", path);
	if (n > 0 && (size_t)n < err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

/* Loads one file (dir_fd/name, shown as path). expected is the position its
 * name says, or UINT64_MAX when the name does not say. */
static int load_one(int dir_fd, const char *name, const char *path, uint64_t expected,
		    uint64_t cluster_id, const struct ledger_cfg *cfg, struct rep_state *s,
		    uint64_t *file_bytes, char *err, size_t err_len)
{
	int rc;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		errf(err, err_len, "%s: open: %s", path, strerror(errno));
		return rc;
	}
	uint8_t *tail = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		errf(err, err_len, "%s: stat: %s", path, strerror(errno));
		goto out_close;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < REP_CKPT_HDR_BYTES) {
		rc = reject(err, err_len, path,
			    "offset %" PRIu64 ": truncated: %" PRIu64
			    " bytes, shorter than the %u-byte header",
			    size, size, REP_CKPT_HDR_BYTES);
		goto out_close;
	}
	uint8_t h[REP_CKPT_HDR_BYTES];
	rc = pread_full(fd, h, sizeof h, 0);
	if (rc != 0) {
		errf(err, err_len, "%s: offset 0: read: %s", path, strerror(-rc));
		rc = rc == -ENODATA ? -EUCLEAN : rc;
		goto out_close;
	}
	if (ordo_ld32(h + H_MAGIC) != REP_CKPT_MAGIC) {
		rc =
		    reject(err, err_len, path, "offset 0: not a checkpoint (magic 0x%08" PRIx32 ")",
			   ordo_ld32(h + H_MAGIC));
		goto out_close;
	}
	uint32_t hcrc = ordo_crc32c(h, H_CRC);
	if (hcrc != ordo_ld32(h + H_CRC)) {
		rc = reject(err, err_len, path,
			    "offset 0: header (%u bytes) fails its CRC (stored 0x%08" PRIx32
			    ", computed 0x%08" PRIx32 ")",
			    REP_CKPT_HDR_BYTES, ordo_ld32(h + H_CRC), hcrc);
		goto out_close;
	}
	if (ordo_ld16(h + H_VERSION) != REP_CKPT_VERSION ||
	    ordo_ld16(h + H_HEADER_BYTES) != REP_CKPT_HDR_BYTES) {
		rc = reject(err, err_len, path,
			    "offset %u: version %u with a %u-byte header; this build reads version "
			    "%u",
			    H_VERSION, ordo_ld16(h + H_VERSION), ordo_ld16(h + H_HEADER_BYTES),
			    REP_CKPT_VERSION);
		goto out_close;
	}
	uint64_t cluster = ordo_ld64(h + H_CLUSTER);
	if (cluster != cluster_id) {
		errf(err, err_len,
		     "%s: offset %u: written for cluster_id 0x%016" PRIx64
		     ", this replica serves 0x%016" PRIx64
		     ": the directory holds another cluster's data; start the replica with its own "
		     "data directory",
		     path, H_CLUSTER, cluster, cluster_id);
		rc = -EINVAL;
		goto out_close;
	}
	uint64_t amax = ordo_ld64(h + H_ACCOUNTS_MAX);
	uint64_t tmax = ordo_ld64(h + H_TRANSFERS_MAX);
	if (amax != cfg->accounts_max || tmax != cfg->transfers_max) {
		errf(err, err_len,
		     "%s: offset %u: written with accounts_max %" PRIu64
		     " and transfers_max %" PRIu64 ", but this replica is configured with %" PRIu64
		     " and %" PRIu64 ": these are cluster constants (PROTOCOL.md §4); start it "
		     "with the cluster file "
		     "its data was made with, or move the checkpoints aside to start empty and "
		     "catch up by state transfer",
		     path, H_ACCOUNTS_MAX, amax, tmax, cfg->accounts_max, cfg->transfers_max);
		rc = -EINVAL;
		goto out_close;
	}
	uint64_t position = ordo_ld64(h + H_POSITION);
	uint64_t epoch = ordo_ld64(h + H_EPOCH);
	uint64_t next_epoch = ordo_ld64(h + H_NEXT_EPOCH);
	uint64_t accounts = ordo_ld64(h + H_ACCOUNTS);
	uint64_t transfers = ordo_ld64(h + H_TRANSFERS);
	uint32_t chunk_bytes = ordo_ld32(h + H_CHUNK_BYTES);
	uint32_t chunks = ordo_ld32(h + H_CHUNKS);
	uint32_t chunks_accounts, chunks_want;
	static const uint8_t zero[REP_CKPT_HDR_BYTES];
	if (expected != UINT64_MAX && position != expected) {
		rc = reject(err, err_len, path,
			    "offset %u: position %" PRIu64 ", but the file is named for %" PRIu64,
			    H_POSITION, position, expected);
		goto out_close;
	}
	if (next_epoch <= epoch) {
		rc = reject(err, err_len, path,
			    "offset %u: next_epoch %" PRIu64 " not after epoch %" PRIu64,
			    H_NEXT_EPOCH, next_epoch, epoch);
		goto out_close;
	}
	if (accounts > amax || transfers > tmax) {
		rc = reject(err, err_len, path,
			    "offset %u: %" PRIu64 " accounts and %" PRIu64
			    " transfers, past the capacities",
			    H_ACCOUNTS, accounts, transfers);
		goto out_close;
	}
	if (chunk_bytes < REP_CKPT_CHUNK_BYTES_MIN || chunk_bytes > REP_CKPT_CHUNK_BYTES_MAX ||
	    chunk_bytes % 4096 != 0) {
		rc = reject(err, err_len, path, "offset %u: chunk_bytes %" PRIu32 " invalid",
			    H_CHUNK_BYTES, chunk_bytes);
		goto out_close;
	}
	uint64_t want =
	    file_bytes_of(accounts, transfers, chunk_bytes, &chunks_accounts, &chunks_want);
	if (chunks != chunks_want || memcmp(h + H_RESERVED, zero, H_CRC - H_RESERVED) != 0) {
		rc = reject(err, err_len, path,
			    "offset %u: %" PRIu32 " chunks where the counts make %" PRIu32
			    ", or reserved bytes not zero",
			    H_CHUNKS, chunks, chunks_want);
		goto out_close;
	}
	if (size != want) {
		if (size < want)
			rc = reject(err, err_len, path,
				    "offset %" PRIu64 ": truncated: %" PRIu64
				    " bytes where the header makes %" PRIu64,
				    size, size, want);
		else
			rc = reject(err, err_len, path,
				    "offset %" PRIu64 ": %" PRIu64
				    " bytes past the end the header makes",
				    want, size - want);
		goto out_close;
	}
	/* The header, then the CRC table and trailer read in after it, so
	 * table_crc covers one contiguous buffer. */
	uint64_t table = pad8((uint64_t)chunks * 4);
	uint64_t table_off = want - table - REP_CKPT_TRAILER_BYTES;
	uint64_t trailer_off = want - REP_CKPT_TRAILER_BYTES;
	tail = malloc(REP_CKPT_HDR_BYTES + table + REP_CKPT_TRAILER_BYTES);
	if (tail == NULL) {
		errf(err, err_len, "%s: out of memory for the CRC table", path);
		rc = -ENOMEM;
		goto out_close;
	}
	memcpy(tail, h, REP_CKPT_HDR_BYTES);
	rc = pread_full(fd, tail + REP_CKPT_HDR_BYTES, table + REP_CKPT_TRAILER_BYTES, table_off);
	if (rc != 0) {
		errf(err, err_len, "%s: offset %" PRIu64 ": read: %s", path, table_off,
		     strerror(-rc));
		rc = rc == -ENODATA ? -EUCLEAN : rc;
		goto out_close;
	}
	const uint8_t *tr = tail + REP_CKPT_HDR_BYTES + table;
	uint32_t tcrc = ordo_crc32c(tr, T_CRC);
	if (tcrc != ordo_ld32(tr + T_CRC)) {
		rc = reject(err, err_len, path,
			    "offset %" PRIu64 ": trailer fails its CRC (stored 0x%08" PRIx32
			    ", computed 0x%08" PRIx32 ")",
			    trailer_off, ordo_ld32(tr + T_CRC), tcrc);
		goto out_close;
	}
	if (ordo_ld32(tr + T_MAGIC) != REP_CKPT_TRAILER_MAGIC ||
	    ordo_ld32(tr + T_CHUNKS) != chunks || ordo_ld64(tr + T_POSITION) != position ||
	    ordo_ld64(tr + T_FILE_BYTES) != want) {
		rc = reject(err, err_len, path,
			    "offset %" PRIu64 ": trailer does not match the header", trailer_off);
		goto out_close;
	}
	uint32_t table_crc = ordo_crc32c(tail, REP_CKPT_HDR_BYTES + table);
	if (table_crc != ordo_ld32(tr + T_TABLE_CRC)) {
		rc = reject(err, err_len, path,
			    "offset %" PRIu64 ": chunk CRC table (%" PRIu64
			    " bytes) fails its CRC (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
			    ")",
			    table_off, table, ordo_ld32(tr + T_TABLE_CRC), table_crc);
		goto out_close;
	}

	rc = rep_state_init(s, cfg);
	if (rc != 0) {
		errf(err, err_len, "%s: cannot map the ledger (%zu bytes): %s", path,
		     ledger_bytes(cfg), strerror(-rc));
		goto out_close;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	struct loader ld = {.fd = fd, .path = path, .err = err, .err_len = err_len};
	rc = load_chunks(&ld, &s->ledger, tail + REP_CKPT_HDR_BYTES, accounts, transfers,
			 chunk_bytes, chunks_accounts, chunks);
	if (rc != 0) {
		rep_state_free(s);
		memset(s, 0, sizeof *s);
		goto out_close;
	}
	ORDO_ASSERT(s->ledger.accounts_count == accounts && s->ledger.transfers_count == transfers);
	memcpy(s->digest, h + H_DIGEST, 16);
	s->applied_position = position;
	s->group_position[0] = position; /* one group: format 1 has no table of them */
	s->group_known = 1;		 /* (rep_store clears it with several groups) */
	s->applied_epoch = epoch;
	s->next_epoch = next_epoch;
	s->steps = ordo_ld64(h + H_STEPS) ? ordo_ld64(h + H_STEPS) : epoch;
	s->groups_active = ordo_ld16(h + H_ACTIVE);
	s->join_group = ordo_ld16(h + H_ACTIVE + 2);
	s->join_epoch = ordo_ld64(h + H_ACTIVE + 4);
	s->requests_applied = ordo_ld64(h + H_REQUESTS);
	if (file_bytes != NULL)
		*file_bytes = want;

out_close:
	free(tail);
	close(fd);
	return rc;
}

/* Errors after which no other checkpoint is tried. */
static bool fatal(int rc)
{
	return rc == -EINVAL || rc == -ENOMEM || rc == -ENOSYS || rc == -EPERM;
}

int rep_ckpt_load_newest(const char *dir, uint64_t cluster_id, const struct ledger_cfg *cfg,
			 struct rep_state *s, struct rep_ckpt_load_info *info, char *err,
			 size_t err_len)
{
	struct rep_ckpt_load_info scratch;
	if (info == NULL)
		info = &scratch;
	memset(info, 0, sizeof *info);
	errf(err, err_len, "%s", "");
	memset(s, 0, sizeof *s);
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		int rc = -errno;
		errf(err, err_len, "checkpoint: %s: %s", dir, strerror(errno));
		return rc;
	}
	struct ckpt_list l;
	int rc = list_dir(dir_fd, &l, false);
	if (rc != 0) {
		errf(err, err_len, "checkpoint: reading %s: %s", dir, strerror(-rc));
		goto out_close;
	}
	info->temps_seen = l.temps;
	info->candidates = l.n;
	if (l.n == 0) {
		errf(err, err_len, "checkpoint: none in %s", dir);
		rc = -ENOENT;
		goto out_close;
	}
	char why[REP_CKPT_ERR_BYTES];
	rc = -EUCLEAN;
	for (uint32_t i = 0; i < l.n; i++) {
		char name[REP_CKPT_NAME_BYTES];
		char path[PATH_MAX];
		rep_ckpt_name(name, l.pos[i], false);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		why[0] = '\0';
		rc = load_one(dir_fd, name, path, l.pos[i], cluster_id, cfg, s, &info->file_bytes,
			      why, sizeof why);
		if (rc == 0) {
			snprintf(info->path, sizeof info->path, "%s", path);
			info->position = s->applied_position;
			break;
		}
		if (fatal(rc)) {
			errf(err, err_len, "%s", why);
			break;
		}
		info->rejected++;
		appendf(info->rejected_msg, sizeof info->rejected_msg, "%s%s",
			info->rejected > 1 ? "; " : "", why);
		rc = -EUCLEAN;
	}
	if (rc == -EUCLEAN)
		errf(err, err_len,
		     "checkpoint: no valid checkpoint in %s (%" PRIu32
		     " rejected, newest first: %s); move them aside to start empty",
		     dir, info->rejected, info->rejected_msg);
out_close:
	close(dir_fd);
	return rc;
}

int rep_ckpt_load_file(const char *path, uint64_t cluster_id, const struct ledger_cfg *cfg,
		       struct rep_state *s, char *err, size_t err_len)
{
	errf(err, err_len, "%s", "");
	memset(s, 0, sizeof *s);
	const char *base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	uint64_t expected = UINT64_MAX;
	bool tmp;
	if (!rep_ckpt_parse_name(base, &expected, &tmp) || tmp)
		expected = UINT64_MAX;
	return load_one(AT_FDCWD, path, path, expected, cluster_id, cfg, s, NULL, err, err_len);
}
