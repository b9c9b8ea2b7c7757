/*
 * `ordo format` and the start-up check (storage/format.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/constants.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "storage/file.h"
#include "storage/format.h"
#include "storage/meta.h"

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

void stor_identity_default(struct stor_identity *id, uint64_t cluster_id, uint32_t node_id)
{
	memset(id, 0, sizeof *id);
	id->cluster_id = cluster_id;
	id->node_id = node_id;
	id->session_window = ORDO_SESSION_WINDOW_DEFAULT;
	id->sessions_max = ORDO_SESSIONS_MAX_DEFAULT;
	id->accounts_max = ORDO_ACCOUNTS_MAX_DEFAULT;
	id->transfers_max = ORDO_TRANSFERS_MAX_DEFAULT;
}

static const char *identity_check(const struct stor_identity *id)
{
	if (id->cluster_id == 0)
		return "cluster_id is 0";
	if (id->node_id == 0)
		return "node_id is 0";
	if (id->session_window == 0 || id->session_window > ORDO_SESSION_WINDOW_MAX ||
	    (id->session_window & (id->session_window - 1)) != 0)
		return "session_window out of range";
	if (id->sessions_max == 0 || id->sessions_max > ORDO_SESSIONS_MAX_LIMIT)
		return "sessions_max out of range";
	if (id->accounts_max == 0 || id->accounts_max > ORDO_ACCOUNTS_MAX_LIMIT)
		return "accounts_max out of range";
	if (id->transfers_max == 0 || id->transfers_max > ORDO_TRANSFERS_MAX_LIMIT)
		return "transfers_max out of range";
	return NULL;
}

void stor_identity_encode(uint8_t *out, const struct stor_identity *id)
{
	memset(out, 0, STOR_FORMAT_BYTES);
	ordo_st32(out + 0, STOR_FORMAT_MAGIC);
	ordo_st16(out + 4, STOR_FORMAT_VERSION);
	ordo_st16(out + 6, STOR_FORMAT_BYTES);
	ordo_st64(out + 8, id->cluster_id);
	ordo_st32(out + 16, id->node_id);
	ordo_st32(out + 20, id->session_window);
	ordo_st32(out + 24, id->sessions_max);
	ordo_st64(out + 32, id->accounts_max);
	ordo_st64(out + 40, id->transfers_max);
	ordo_st32(out + 60, ordo_crc32c(out, 60));
}

int stor_identity_decode(const uint8_t *p, struct stor_identity *id, const char **why)
{
	if (ordo_ld32(p) != STOR_FORMAT_MAGIC) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (ordo_ld32(p + 60) != ordo_crc32c(p, 60)) {
		*why = "CRC mismatch";
		return -EBADMSG;
	}
	if (ordo_ld16(p + 4) != STOR_FORMAT_VERSION || ordo_ld16(p + 6) != STOR_FORMAT_BYTES) {
		*why = "unknown format version";
		return -EBADMSG;
	}
	id->cluster_id = ordo_ld64(p + 8);
	id->node_id = ordo_ld32(p + 16);
	id->session_window = ordo_ld32(p + 20);
	id->sessions_max = ordo_ld32(p + 24);
	id->accounts_max = ordo_ld64(p + 32);
	id->transfers_max = ordo_ld64(p + 40);
	const char *bad = identity_check(id);
	if (bad != NULL) {
		*why = bad;
		return -EBADMSG;
	}
	return 0;
}

/* The names ordo keeps in a data directory (and their temp files). */
static bool is_ordo_file(const char *name)
{
	static const char *const fixed[] = {STOR_FORMAT_FILE, STOR_FORMAT_FILE ".tmp",
					    STOR_META_FILE, STOR_META_FILE ".tmp"};
	for (size_t i = 0; i < ORDO_ARRAY_LEN(fixed); i++)
		if (strcmp(name, fixed[i]) == 0)
			return true;
	size_t n = strlen(name);
	return strncmp(name, "log-", 4) == 0 && ((n > 8 && strcmp(name + n - 4, ".seg") == 0) ||
						 (n > 12 && strcmp(name + n - 8, ".seg.tmp") == 0));
}

/* Finds ordo files in dir_fd; with erase, deletes them. Returns the count
 * found (>= 0) or a negative errno. */
static int ordo_files(int dir_fd, bool erase)
{
	int dfd = dup(dir_fd);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return -errno;
	}
	rewinddir(d); /* the dup shares the directory offset */
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!is_ordo_file(de->d_name))
			continue;
		found++;
		if (erase && unlinkat(dir_fd, de->d_name, 0) != 0) {
			found = -errno;
			break;
		}
	}
	closedir(d);
	return found;
}

int stor_format(const char *dir, const struct stor_identity *id, bool force, char *err,
		size_t err_len)
{
	const char *bad = identity_check(id);
	if (bad != NULL) {
		errf(err, err_len, "storage: cannot format %s: %s", dir, bad);
		return -EINVAL;
	}
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		int rc = -errno;
		errf(err, err_len, "storage: cannot create %s: %s", dir, strerror(errno));
		return rc;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int rc = -errno;
		errf(err, err_len, "storage: %s: %s", dir, strerror(errno));
		return rc;
	}
	int rc = ordo_files(dfd, false);
	if (rc > 0 && !force) {
		errf(err, err_len,
		     "storage: %s already holds ordo data; refusing to format it (use --force to "
		     "erase it)",
		     dir);
		rc = -EEXIST;
		goto out_close_dir;
	}
	if (rc > 0) {
		/* FORMAT goes first: a crash while erasing leaves a directory
		 * that refuses to start, never a half-erased formatted one. */
		if (unlinkat(dfd, STOR_FORMAT_FILE, 0) != 0 && errno != ENOENT) {
			rc = -errno;
			goto out_errno;
		}
		if (fsync(dfd) != 0) {
			rc = -errno;
			goto out_errno;
		}
		rc = ordo_files(dfd, true);
	}
	if (rc < 0)
		goto out_errno;
	struct stor_meta m = {.cluster_id = id->cluster_id, .node_id = id->node_id};
	uint8_t b[STOR_FORMAT_BYTES];
	stor_meta_encode(b, &m);
	rc = stor_file_write_atomic(dfd, STOR_META_FILE, b, STOR_META_BYTES);
	if (rc != 0)
		goto out_errno;
	stor_identity_encode(b, id);
	rc = stor_file_write_atomic(dfd, STOR_FORMAT_FILE, b, STOR_FORMAT_BYTES);
	if (rc != 0)
		goto out_errno;
	close(dfd);
	/* The directory itself may be new: make its entry durable too. */
	char parent[4096];
	snprintf(parent, sizeof parent, "%s/..", dir);
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0) {
		rc = fsync(pfd) == 0 ? 0 : -errno;
		close(pfd);
		if (rc != 0)
			errf(err, err_len, "storage: fsync of the parent of %s: %s", dir,
			     strerror(-rc));
	}
	return rc;

out_errno:
	errf(err, err_len, "storage: formatting %s: %s", dir, strerror(-rc));
out_close_dir:
	close(dfd);
	return rc;
}

int stor_open_check(const char *dir, struct stor_identity *id, char *err, size_t err_len)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int rc = -errno;
		if (rc == -ENOENT)
			errf(err, err_len, "storage: no formatted data in %s; run ordo format",
			     dir);
		else
			errf(err, err_len, "storage: %s: %s", dir, strerror(errno));
		return rc;
	}
	uint8_t b[STOR_FORMAT_BYTES];
	int rc = stor_file_read_exact(dfd, STOR_FORMAT_FILE, b, sizeof b);
	close(dfd);
	if (rc == -ENOENT) {
		errf(err, err_len, "storage: no formatted data in %s; run ordo format", dir);
		return rc;
	}
	if (rc == -EBADMSG) {
		errf(err, err_len, "storage: %s/%s: corrupt: wrong size", dir, STOR_FORMAT_FILE);
		return -EUCLEAN;
	}
	if (rc != 0) {
		errf(err, err_len, "storage: %s/%s: %s", dir, STOR_FORMAT_FILE, strerror(-rc));
		return rc;
	}
	const char *why;
	if (stor_identity_decode(b, id, &why) != 0) {
		errf(err, err_len, "storage: %s/%s: corrupt: %s", dir, STOR_FORMAT_FILE, why);
		return -EUCLEAN;
	}
	struct stor_meta m;
	rc = stor_meta_read(dir, &m, err, err_len);
	if (rc != 0)
		return rc == -ENOENT ? -EUCLEAN : rc;
	if (m.cluster_id != id->cluster_id || m.node_id != id->node_id) {
		errf(err, err_len,
		     "storage: %s/%s: cluster %016" PRIx64 " node %" PRIu32
		     " disagrees with %s (cluster %016" PRIx64 " node %" PRIu32 ")",
		     dir, STOR_META_FILE, m.cluster_id, m.node_id, STOR_FORMAT_FILE, id->cluster_id,
		     id->node_id);
		return -EUCLEAN;
	}
	return 0;
}

int stor_check_identity(const char *dir, const struct stor_identity *want, bool check_sessions,
			char *err, size_t err_len)
{
	struct stor_identity id;
	int rc = stor_open_check(dir, &id, err, err_len);
	if (rc)
		return rc;
	const char *what = NULL;
	if (id.cluster_id != want->cluster_id)
		what = "cluster_id";
	else if (id.node_id != want->node_id)
		what = "node id";
	else if (check_sessions && id.session_window != want->session_window)
		what = "session_window";
	else if (check_sessions && id.sessions_max != want->sessions_max)
		what = "sessions_max";
	else if (id.accounts_max != want->accounts_max)
		what = "accounts_max";
	else if (id.transfers_max != want->transfers_max)
		what = "transfers_max";
	if (!what)
		return 0;
	if (err && err_len)
		snprintf(err, err_len,
			 "%s was formatted with another %s than the cluster file says; these are "
			 "fixed when a cluster is formatted: use the cluster file it was formatted "
			 "with",
			 dir, what);
	return -EINVAL;
}
