/* A replica's durable storage; see store.h. */
#include "store.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
#include "common/ordo_time.h"
#include "ledger.h"
#include "storage/format.h"

#define REPLAY_FATAL (-ENOTRECOVERABLE)

static int fail(struct rep_store *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* ------------------------------------------------------------ ENTRIES records */

struct ent_view {
	struct wire_entry_rec r;
	uint32_t len; /* wire_entry_bytes(size) */
};

/* Decodes the ENTRIES record at p (avail bytes): 0, or -EBADMSG. */
static int ent_decode(const uint8_t *p, uint32_t avail, struct ent_view *v)
{
	v->len = wire_entry_decode(p, avail, &v->r);
	return v->len ? 0 : -EBADMSG;
}

/* Checks an epoch record's structure against the position it must continue
 * from (no state changes): 0, or -EBADMSG with a reason. */
static int record_check(const uint8_t *p, uint32_t len, uint32_t head, uint64_t epoch,
			uint64_t next_position, const uint8_t digest[16], const char **why)
{
	if (len < head) {
		*why = "shorter than its head";
		return -EBADMSG;
	}
	uint64_t first = ordo_ld64(p + 0);
	uint32_t count = ordo_ld32(p + 8);
	if (first != next_position) {
		*why = "does not continue the applied positions";
		return -EBADMSG;
	}
	if (memcmp(p + 16, digest, 16) != 0) {
		*why = "its digest_before is not the digest reached";
		return -EBADMSG;
	}
	uint32_t off = head;
	for (uint32_t i = 0; i < count; i++) {
		struct ent_view v;
		if (ent_decode(p + off, len - off, &v) != 0) {
			*why = "an entry overruns the record";
			return -EBADMSG;
		}
		if (v.r.position != first + i || v.r.epoch != epoch) {
			*why = "an entry has the wrong position or epoch";
			return -EBADMSG;
		}
		off += v.len;
	}
	if (off != len) {
		*why = "bytes after its last entry";
		return -EBADMSG;
	}
	return 0;
}

/* Replays one checked epoch record onto st. */
static int record_replay(struct rep_store *s, struct rep_state *st, const uint8_t *p, uint32_t len,
			 uint64_t index, uint64_t epoch, rep_replay_fn *fn, void *ctx)
{
	uint32_t count = ordo_ld32(p + 8);
	uint32_t off = s->head;
	for (uint32_t i = 0; i < count; i++) {
		struct ent_view v;
		int rc = ent_decode(p + off, len - off, &v);
		ORDO_ASSERT(rc == 0); /* record_check */
		uint8_t data[32];
		enum wire_result res =
		    ledger_apply(&st->ledger, v.r.op, v.r.payload, v.r.size, data);
		if ((uint32_t)res != v.r.result)
			return fail(s, REPLAY_FATAL,
				    "%s: replaying epoch %llu, position %llu gave result %u where "
				    "the log says %u: this replica's state cannot be trusted; move "
				    "%s aside, ordo format it again and restart (it catches up "
				    "from a peer)",
				    s->dir, (unsigned long long)epoch,
				    (unsigned long long)v.r.position, (unsigned)res, v.r.result,
				    s->dir);
		bool has_data = v.r.op == WIRE_OP_LOOKUP && res == WIRE_R_OK;
		if (fn)
			fn(ctx, &v.r, st->digest, has_data ? data : NULL);
		ledger_digest_step(st->digest, p + off, v.len);
		st->applied_position = v.r.position;
		st->requests_applied++;
		off += v.len;
	}
	if (!s->cfg.merged) {
		st->group_position[0] = st->applied_position;
		st->group_known = 1;
	} else {
		st->group_known = 0; /* the records do not say; learned from the stream */
		st->groups_active = ordo_ld32(p + 40);
		st->join_group = ordo_ld16(p + 44);
		st->join_epoch = ordo_ld64(p + 48);
	}
	st->applied_epoch = epoch;
	st->next_epoch = epoch + 1;
	st->steps = index;
	return 0;
}

/* Cuts the log from index on (or empties it). */
static int cut_from(struct rep_store *s, uint64_t index)
{
	s->rd_epoch = 0; /* the FETCH cache may hold a record being cut */
	if (stor_log_last_index(&s->log) < index)
		return 0;
	uint64_t first = stor_log_first_index(&s->log);
	int rc = stor_log_truncate_suffix(&s->log, index < first ? first : index);
	if (rc)
		return fail(s, rc, "%s: cutting the applied log at epoch %llu: %s", s->dir,
			    (unsigned long long)index, strerror(-rc));
	return 0;
}

static int replay(struct rep_store *s, struct rep_state *st, rep_replay_fn *fn, void *ctx)
{
	uint64_t first = stor_log_first_index(&s->log);
	uint64_t last = stor_log_last_index(&s->log);
	uint64_t next = st->steps + 1;
	if (last < first)
		return 0; /* empty */
	if (first > next || last + 1 < next) {
		/* The log does not continue the checkpoint (it ends before it,
		 * or starts after it): nothing in it can be replayed. */
		fprintf(stderr,
			"ordo replica: %s: the applied log holds records %llu-%llu, which do not "
			"continue the checkpoint (next record %llu); it is cut and the epochs "
			"come from the stream\n",
			s->dir, (unsigned long long)first, (unsigned long long)last,
			(unsigned long long)next);
		s->stats.replay_cut += last - first + 1;
		return cut_from(s, first);
	}
	for (uint64_t e = next; e <= last; e++) {
		struct stor_entry ent;
		int rc = stor_log_get(&s->log, e, &ent, s->rd, s->rec_cap);
		const char *why = NULL;
		if (rc == 0 && ent.kind != REP_STORE_KIND_EPOCH) {
			rc = -EBADMSG;
			why = "an unknown record kind";
		}
		/* With one group the record's index is its epoch; with several
		 * the head says which merged epoch it is. */
		uint64_t epoch = e;
		if (rc == 0 && s->cfg.merged) {
			epoch = ent.payload_bytes >= s->head ? ordo_ld64(s->rd + 32) : 0;
			if (epoch <= st->applied_epoch) {
				rc = -EBADMSG;
				why = "its epoch is not after the one applied";
			}
		}
		if (rc == 0)
			rc = record_check(s->rd, ent.payload_bytes, s->head, epoch,
					  st->applied_position + 1, st->digest, &why);
		if (rc != 0) {
			fprintf(stderr,
				"ordo replica: %s: applied log record %llu %s (%s); the log is cut "
				"there and the rest comes from the stream\n",
				s->dir, (unsigned long long)e, why ? why : "cannot be read",
				strerror(-rc));
			s->stats.replay_cut += last - e + 1;
			return cut_from(s, e);
		}
		rc = record_replay(s, st, s->rd, ent.payload_bytes, e, epoch, fn, ctx);
		if (rc)
			return rc;
		s->stats.replayed_epochs++;
		s->stats.replayed_positions += ordo_ld32(s->rd + 8);
	}
	s->rd_epoch = 0;
	return 0;
}

/* ------------------------------------------------------------ open, close */

static int check_format(struct rep_store *s)
{
	struct stor_identity want = {.cluster_id = s->cfg.cluster_id,
				     .node_id = s->cfg.node_id,
				     .accounts_max = s->cfg.ledger.accounts_max,
				     .transfers_max = s->cfg.ledger.transfers_max};
	return stor_check_identity(s->dir, &want, false, s->err, sizeof s->err);
}

/* The applied log's record format follows every_epoch (a merged head or
 * not): <dir>/APPLIED_MODE says which one the log was written in, and a
 * cluster file that says otherwise is refused rather than misread. A
 * directory without the file (new, or from before it existed) takes the
 * cluster file's word; were that wrong, replay finds the first record that
 * does not check and cuts the log there (the stream refills it). */
static int check_mode(struct rep_store *s)
{
	char path[PATH_MAX], got[16] = "";
	snprintf(path, sizeof path, "%s/APPLIED_MODE", s->dir);
	const char *want = s->cfg.merged ? "merged" : "single";
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(got, sizeof got, f))
			got[0] = '\0';
		fclose(f);
		got[strcspn(got, "\n")] = '\0';
	}
	if (got[0] && strcmp(got, want) != 0)
		return fail(s, -EINVAL,
			    "%s: the applied log was written with every_epoch = %s and the cluster "
			    "file says every_epoch = %s: the record formats differ; move %s aside, "
			    "ordo format it again and restart (the replica catches up from a peer)",
			    path, strcmp(got, "merged") == 0 ? "yes" : "no",
			    s->cfg.merged ? "yes" : "no", s->dir);
	if (got[0])
		return 0;
	/* a new log: say which format it is in, durably */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(s, -errno, "%s: cannot create it: %s", path, strerror(errno));
	char line[16];
	int n = snprintf(line, sizeof line, "%s\n", want);
	int rc = write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	if (rc)
		return fail(s, rc, "%s: writing it: %s", path, strerror(-rc));
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Renames every checkpoint newer than the one loaded (each was rejected) to
 * <name>.bad, so the writer's retention never keeps one over a good one. */
static void set_aside_rejected(struct rep_store *s, uint64_t loaded_position)
{
	DIR *d = opendir(s->ckpt_dir);
	if (!d)
		return;
	struct dirent *de;
	char from[PATH_MAX + 320], to[PATH_MAX + 336];
	while ((de = readdir(d)) != NULL) {
		uint64_t pos;
		bool tmp;
		if (!rep_ckpt_parse_name(de->d_name, &pos, &tmp) || tmp || pos <= loaded_position)
			continue;
		snprintf(from, sizeof from, "%s/%s", s->ckpt_dir, de->d_name);
		snprintf(to, sizeof to, "%s.bad", from);
		if (rename(from, to) == 0)
			fprintf(stderr, "ordo replica: set aside %s (rejected)\n", to);
	}
	closedir(d);
}

int rep_store_open(struct rep_store *s, const struct rep_store_config *cfg, struct rep_state *st,
		   rep_replay_fn *fn, void *ctx)
{
	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	if (snprintf(s->dir, sizeof s->dir, "%s", cfg->dir) >= (int)sizeof s->dir ||
	    snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s/ckpt", cfg->dir) >=
		(int)sizeof s->ckpt_dir)
		return fail(s, -ENAMETOOLONG, "%s: path too long", cfg->dir);
	s->cfg.dir = s->dir;
	int rc = check_format(s);
	if (rc)
		return rc;
	s->head = cfg->merged ? REP_STORE_HEAD_MERGED_BYTES : REP_STORE_HEAD_BYTES;
	s->rec_cap = (cfg->merged ? ORDO_GROUPS_MAX : 1u) * cfg->epoch_bytes + s->head;
	s->rec = malloc(s->rec_cap);
	s->rd = malloc(s->rec_cap);
	if (!s->rec || !s->rd) {
		free(s->rec);
		free(s->rd);
		return fail(s, -ENOMEM, "out of memory for the applied log buffers");
	}

	/* The log first: opening it takes the data directory's lock, before
	 * anything in the directory is read or removed. */
	char err[REP_CKPT_ERR_BYTES];
	struct stor_log_config lc;
	stor_log_config_default(&lc, s->dir, cfg->cluster_id);
	lc.payload_bytes_max = s->rec_cap;
	lc.segment_bytes = REP_STORE_SEGMENT_BYTES;
	/* The largest record must fit a segment and the write buffer twice. */
	uint64_t big = ((2ull * s->rec_cap) + (1u << 20) - 1) & ~((1ull << 20) - 1);
	if (big > lc.segment_bytes)
		lc.segment_bytes = big;
	if (big > lc.buffer_bytes)
		lc.buffer_bytes = big;
	rc = stor_log_open(&s->log, &lc, err, sizeof err);
	if (rc) {
		rc = fail(s, rc, "%s", err);
		goto out_bufs;
	}
	s->log_open = true;
	rc = check_mode(s);
	if (rc)
		goto out_log;
	if (mkdir(s->ckpt_dir, 0755) != 0 && errno != EEXIST) {
		rc = fail(s, -errno, "%s: cannot create it: %s", s->ckpt_dir, strerror(errno));
		goto out_log;
	}

	/* The newest valid checkpoint, or an empty state. */
	struct rep_ckpt_load_info info;
	rc = rep_ckpt_load_newest(s->ckpt_dir, cfg->cluster_id, &cfg->ledger, st, &info, err,
				  sizeof err);
	if (rc == 0) {
		if (info.rejected) {
			fprintf(stderr, "ordo replica: rejected %u checkpoint(s): %s\n",
				info.rejected, info.rejected_msg);
			set_aside_rejected(s, st->applied_position);
		}
		fprintf(stderr, "ordo replica: loaded %s (position %llu, epoch %llu)\n", info.path,
			(unsigned long long)st->applied_position,
			(unsigned long long)st->applied_epoch);
		s->kept_epoch[0] = st->steps;
		s->kept_applied = st->applied_epoch;
		if (s->cfg.merged)
			st->group_known = 0; /* a checkpoint does not hold them */
	} else if (rc == -ENOENT || rc == -EUCLEAN) {
		if (rc == -EUCLEAN) {
			fprintf(stderr,
				"ordo replica: every checkpoint in %s was rejected (%s); starting "
				"empty, to catch up from the stream or a peer\n",
				s->ckpt_dir, err);
			set_aside_rejected(s, 0);
		}
		rc = rep_state_init(st, &cfg->ledger);
		if (rc) {
			rc = fail(s, rc, "ledger (%zu bytes): %s", ledger_bytes(&cfg->ledger),
				  strerror(-rc));
			goto out_log;
		}
	} else {
		rc = fail(s, rc, "%s", err);
		goto out_log;
	}

	struct rep_ckpt_config cc;
	rep_ckpt_config_default(&cc, s->ckpt_dir, cfg->cluster_id, &cfg->ledger);
	rc = rep_ckpt_writer_init(&s->ckpt, &cc, err, sizeof err);
	if (rc) {
		rc = fail(s, rc, "%s", err);
		goto out_state;
	}
	s->ckpt_ready = true;
	if (s->kept_epoch[0] > 0)
		s->ckpt.durable_position = st->applied_position; /* served to peers */
	rc = replay(s, st, fn, ctx);
	if (rc)
		goto out_ckpt;
	return 0;

out_ckpt:
	rep_ckpt_writer_free(&s->ckpt);
out_state:
	rep_state_free(st);
out_log:
	stor_log_close(&s->log);
out_bufs:
	free(s->rec);
	free(s->rd);
	s->rec = s->rd = NULL;
	s->log_open = s->ckpt_ready = false;
	return rc;
}

void rep_store_close(struct rep_store *s)
{
	if (s->ckpt_ready) {
		int rc = rep_ckpt_wait(&s->ckpt);
		if (rc < 0)
			fprintf(stderr, "ordo replica: checkpoint at shutdown: %s\n", s->ckpt.err);
		rep_ckpt_writer_free(&s->ckpt);
	}
	if (s->log_open) {
		int rc = stor_log_sync_wait(&s->log);
		if (rc)
			fprintf(stderr, "ordo replica: %s: syncing the applied log: %s\n", s->dir,
				strerror(-rc));
		stor_log_close(&s->log);
	}
	free(s->rec);
	free(s->rd);
	memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ appending */

void rep_store_epoch_begin(struct rep_store *s, const struct rep_state *st, uint64_t epoch)
{
	s->rec_epoch = epoch;
	memset(s->rec, 0, s->head);
	ordo_st64(s->rec + 0, st->applied_position + 1);
	memcpy(s->rec + 16, st->digest, 16);
	s->rec_len = s->head;
}

void rep_store_epoch_add(struct rep_store *s, const struct wire_entry_rec *ent)
{
	uint32_t n = wire_entry_bytes(ent->size);
	ORDO_ASSERT(s->rec_len + n <= s->rec_cap); /* entries are no larger than the epoch */
	wire_entry_encode(s->rec + s->rec_len, ent);
	s->rec_len += n;
	ordo_st32(s->rec + 8, ordo_ld32(s->rec + 8) + 1);
}

static void checkpoint_done(struct rep_store *s)
{
	s->kept_epoch[1] = s->kept_epoch[0];
	s->kept_epoch[0] = s->ckpt_epoch;
	s->kept_applied = s->ckpt_applied;
	s->stats.checkpoints++;
	if (s->nmarks == REP_STORE_MARKS) { /* forget the oldest mark */
		memmove(s->marks, s->marks + 1, sizeof s->marks[0] * (REP_STORE_MARKS - 1));
		s->nmarks--;
	}
	s->marks[s->nmarks].epoch = s->ckpt_epoch;
	s->marks[s->nmarks].bytes = s->ckpt_bytes_at;
	s->nmarks++;
	/* Cut at the newest checkpoint that leaves retain_bytes of log after
	 * it, never past the older kept checkpoint (its replay). */
	uint64_t cut = 0;
	for (uint32_t i = 0; i < s->nmarks; i++)
		if (s->marks[i].epoch <= s->kept_epoch[1] &&
		    s->appended_bytes - s->marks[i].bytes >= s->cfg.retain_bytes)
			cut = s->marks[i].epoch;
	/* The index of retained epochs (records_max) must not fill: past half,
	 * cut at the older kept checkpoint whatever retain_bytes asks. */
	uint64_t held = stor_log_last_index(&s->log) + 1 - stor_log_first_index(&s->log);
	if (held > s->log.cfg.records_max / 2 && s->kept_epoch[1] > cut)
		cut = s->kept_epoch[1];
	if (cut > 0) {
		int rc = stor_log_compact_prefix(&s->log, cut);
		if (rc)
			fprintf(stderr, "ordo replica: %s: compacting the applied log: %s\n",
				s->dir, strerror(-rc));
	}
}

static int ckpt_poll(struct rep_store *s, bool wait)
{
	int rc = wait ? rep_ckpt_wait(&s->ckpt) : rep_ckpt_poll(&s->ckpt);
	if (rc == REP_CKPT_DONE) {
		checkpoint_done(s);
	} else if (rc < 0) {
		s->stats.checkpoint_failures++;
		fprintf(stderr, "ordo replica: checkpoint failed: %s\n", s->ckpt.err);
		/* retry after half the interval, not at once */
		s->ckpt_bytes_at = s->appended_bytes - s->cfg.checkpoint_bytes / 2;
	}
	return 0;
}

void rep_store_checkpoint_now(struct rep_store *s, const struct rep_state *st)
{
	if (rep_ckpt_busy(&s->ckpt))
		return;
	int rc = rep_ckpt_begin(&s->ckpt, st);
	if (rc) {
		s->stats.checkpoint_failures++;
		fprintf(stderr, "ordo replica: cannot begin a checkpoint: %s\n", s->ckpt.err);
		return;
	}
	s->ckpt_epoch = st->steps;
	s->ckpt_applied = st->applied_epoch;
	s->ckpt_bytes_at = s->appended_bytes;
	s->epochs_since = 0;
}

int rep_store_epoch_end(struct rep_store *s, const struct rep_state *st)
{
	ORDO_ASSERT(st->applied_epoch == s->rec_epoch);
	if (s->cfg.merged) { /* the state after the record: what replay restores */
		ordo_st64(s->rec + 32, s->rec_epoch);
		ordo_st32(s->rec + 40, st->groups_active);
		ordo_st16(s->rec + 44, st->join_group);
		ordo_st16(s->rec + 46, 0);
		ordo_st64(s->rec + 48, st->join_epoch);
	}
	for (uint32_t attempt = 0;; attempt++) {
		int rc = stor_log_append(&s->log, REP_STORE_KIND_EPOCH, ordo_ld64(s->rec + 0),
					 st->steps, s->rec, s->rec_len);
		if (rc == 0)
			break;
		if (rc != -ENOBUFS || attempt >= 3)
			return fail(s, rc, "%s: appending epoch %llu to the applied log: %s",
				    s->dir, (unsigned long long)s->rec_epoch, strerror(-rc));
		/* Full: let the writes in flight finish; if the index itself is
		 * full, a checkpoint lets the log drop its oldest epochs. */
		rc = stor_log_sync_wait(&s->log);
		if (rc)
			return fail(s, rc, "%s: syncing the applied log: %s", s->dir,
				    strerror(-rc));
		if (attempt >= 1) {
			if (!rep_ckpt_busy(&s->ckpt))
				rep_store_checkpoint_now(s, st);
			ckpt_poll(s, true);
			if (s->kept_epoch[1] > 0 &&
			    stor_log_compact_prefix(&s->log, s->kept_epoch[1]) != 0)
				fprintf(stderr,
					"ordo replica: %s: compacting the applied log failed\n",
					s->dir);
		}
	}
	s->appended_bytes += s->rec_len + STOR_REC_HDR_BYTES;
	s->epochs_since++;
	s->dirty = true;
	s->rec_epoch = 0;
	return 0;
}

int rep_store_poll(struct rep_store *s, const struct rep_state *st)
{
	int rc;
	if (s->dirty) {
		/* Written at once (a killed process loses nothing written);
		 * fdatasync'd at most once per sync_interval_ns. */
		uint64_t now = s->cfg.sync_interval_ns ? ordo_mono_ns() : 0;
		bool due = now - s->last_sync_ns >= s->cfg.sync_interval_ns;
		rc = due ? stor_log_sync(&s->log) : stor_log_flush(&s->log);
		if (rc)
			return fail(s, rc, "%s: applied log: %s", s->dir, strerror(-rc));
		if (due) {
			s->dirty = false;
			s->last_sync_ns = now;
		}
	}
	rc = stor_log_poll(&s->log, NULL);
	if (rc)
		return fail(s, rc, "%s: applied log: %s", s->dir, strerror(-rc));
	if (rep_ckpt_busy(&s->ckpt))
		return ckpt_poll(s, false);
	if (s->appended_bytes - s->ckpt_bytes_at >= s->cfg.checkpoint_bytes ||
	    s->epochs_since >= s->log.cfg.records_max / 8)
		rep_store_checkpoint_now(s, st);
	return 0;
}

bool rep_store_busy(const struct rep_store *s)
{
	return s->dirty || s->log.inflight > 0 || s->log.unsubmitted > 0 || rep_ckpt_busy(&s->ckpt);
}

uint64_t rep_store_ckpt_position(const struct rep_store *s)
{
	return s->ckpt.durable_position;
}

uint64_t rep_store_ckpt_epoch(const struct rep_store *s)
{
	return s->kept_applied;
}

int rep_store_installed(struct rep_store *s, const struct rep_state *st)
{
	int rc = stor_log_sync_wait(&s->log);
	if (rc)
		return fail(s, rc, "%s: applied log: %s", s->dir, strerror(-rc));
	rc = cut_from(s, stor_log_first_index(&s->log));
	if (rc)
		return rc;
	s->kept_epoch[1] = 0; /* the log no longer reaches back to it */
	s->kept_epoch[0] = st->steps;
	s->kept_applied = st->applied_epoch;
	s->nmarks = 0;
	s->ckpt.durable_position = st->applied_position;
	s->ckpt_bytes_at = s->appended_bytes;
	s->epochs_since = 0;
	s->dirty = false;
	return 0;
}

/* ------------------------------------------------------------ FETCH from disk */

void rep_store_ckpt_path(const struct rep_store *s, uint64_t position, bool tmp, char *out,
			 size_t out_len)
{
	char name[REP_CKPT_NAME_BYTES];
	rep_ckpt_name(name, position, tmp);
	snprintf(out, out_len, "%s/%s", s->ckpt_dir, name);
}

uint64_t rep_store_first_position(const struct rep_store *s)
{
	uint64_t first = stor_log_first_index(&s->log);
	uint64_t term;
	if (first > stor_log_last_index(&s->log) || stor_log_term(&s->log, first, &term) != 0)
		return UINT64_MAX;
	return term;
}

/* The last logged epoch whose first_position is <= pos, or 0. */
static uint64_t epoch_at(const struct rep_store *s, uint64_t pos)
{
	uint64_t lo = stor_log_first_index(&s->log), hi = stor_log_last_index(&s->log);
	uint64_t found = 0, term;
	while (lo <= hi && hi >= stor_log_first_index(&s->log)) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (stor_log_term(&s->log, mid, &term) != 0)
			return 0;
		if (term <= pos) {
			found = mid;
			lo = mid + 1;
		} else {
			if (mid == 0)
				break;
			hi = mid - 1;
		}
	}
	return found;
}

uint32_t rep_store_fill_entries(struct rep_store *s, struct wire_writer *w, uint64_t nonce,
				uint64_t from, uint64_t applied_position,
				uint32_t max_bytes_effective, int *rc)
{
	*rc = -1;
	uint64_t first = rep_store_first_position(s);
	if (first == UINT64_MAX)
		return 0;
	if (from < first) {
		/* Older than the history on disk: say where it begins (§3.4 flag
		 * bit 0), with the digest before it, from its record's head. */
		struct stor_entry fe;
		uint64_t e0 = stor_log_first_index(&s->log);
		s->rd_epoch = 0;
		if (stor_log_get(&s->log, e0, &fe, s->rd, s->rec_cap) != 0 ||
		    fe.payload_bytes < s->head)
			return 0;
		struct wire_entries_head h = {.nonce = nonce,
					      .first_position = first,
					      .applied_position = applied_position,
					      .flags = WIRE_ENTRIES_RETAINED_BEFORE};
		memcpy(h.digest, s->rd + 16, 16);
		wire_begin_entries(w, &h);
		*rc = 0;
		return 0;
	}
	uint64_t e = epoch_at(s, from);
	if (e == 0)
		return 0;
	struct stor_entry ent;
	uint32_t n = 0;
	uint8_t digest[16];
	bool begun = false;
	for (; e <= stor_log_last_index(&s->log); e++) {
		if (s->rd_epoch == e) {
			ent.payload_bytes = s->rd_len; /* read by the last FETCH */
		} else {
			s->rd_epoch = 0;
			if (stor_log_get(&s->log, e, &ent, s->rd, s->rec_cap) != 0 ||
			    ent.payload_bytes < s->head)
				break;
			s->rd_epoch = e;
			s->rd_len = ent.payload_bytes;
			s->stats.disk_reads++;
		}
		uint32_t count = ordo_ld32(s->rd + 8);
		uint32_t off = s->head;
		if (!begun)
			memcpy(digest, s->rd + 16, 16);
		for (uint32_t i = 0; i < count; i++) {
			struct ent_view v;
			if (ent_decode(s->rd + off, ent.payload_bytes - off, &v) != 0)
				goto done;
			if (v.r.position < from) { /* before the asked position */
				ledger_digest_step(digest, s->rd + off, v.len);
				off += v.len;
				continue;
			}
			if (!begun) {
				if (v.r.position != from)
					return 0;
				struct wire_entries_head h = {.nonce = nonce,
							      .first_position = from,
							      .applied_position = applied_position};
				memcpy(h.digest, digest, 16);
				wire_begin_entries(w, &h);
				begun = true;
			}
			uint64_t need = (uint64_t)w->len + v.len + ORDO_MAC_BYTES;
			if (n > 0 && need > max_bytes_effective)
				goto done;
			if (!wire_put(w, s->rd + off, v.len)) {
				ORDO_ASSERT(n > 0);
				goto done;
			}
			w->count++;
			n++;
			off += v.len;
		}
	}
done:
	if (begun) {
		*rc = 0;
		s->stats.fetch_disk++;
	}
	return n;
}
