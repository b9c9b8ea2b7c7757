/*
 * The metadata file (storage/meta.h): encoding with a CRC, atomic durable
 * writes through storage/file.h, checked reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/le.h"
#include "storage/file.h"
#include "storage/meta.h"

void stor_meta_encode(uint8_t *out, const struct stor_meta *m)
{
	memset(out, 0, STOR_META_BYTES);
	ordo_st32(out + 0, STOR_META_MAGIC);
	ordo_st16(out + 4, STOR_META_VERSION);
	ordo_st16(out + 6, STOR_META_BYTES);
	ordo_st64(out + 8, m->cluster_id);
	ordo_st64(out + 16, m->term);
	ordo_st32(out + 24, m->node_id);
	ordo_st32(out + 28, m->voted_for);
	ordo_st32(out + 60, ordo_crc32c(out, 60));
}

int stor_meta_decode(const uint8_t *p, struct stor_meta *m, const char **why)
{
	if (ordo_ld32(p) != STOR_META_MAGIC) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (ordo_ld32(p + 60) != ordo_crc32c(p, 60)) {
		*why = "CRC mismatch";
		return -EBADMSG;
	}
	if (ordo_ld16(p + 4) != STOR_META_VERSION || ordo_ld16(p + 6) != STOR_META_BYTES) {
		*why = "unknown version";
		return -EBADMSG;
	}
	m->cluster_id = ordo_ld64(p + 8);
	m->term = ordo_ld64(p + 16);
	m->node_id = ordo_ld32(p + 24);
	m->voted_for = ordo_ld32(p + 28);
	return 0;
}

static void errf_file(char *err, size_t err_len, const char *dir, const char *what)
{
	if (err != NULL && err_len > 0)
		snprintf(err, err_len, "storage: %s/%s: %s", dir, STOR_META_FILE, what);
}

int stor_meta_write(const char *dir, const struct stor_meta *m, char *err, size_t err_len)
{
	uint8_t b[STOR_META_BYTES];
	stor_meta_encode(b, m);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int rc = -errno;
		errf_file(err, err_len, dir, strerror(errno));
		return rc;
	}
	int rc = stor_file_write_atomic(dfd, STOR_META_FILE, b, sizeof b);
	close(dfd);
	if (rc != 0)
		errf_file(err, err_len, dir, strerror(-rc));
	return rc;
}

int stor_meta_read(const char *dir, struct stor_meta *m, char *err, size_t err_len)
{
	uint8_t b[STOR_META_BYTES];
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int rc = -errno;
		errf_file(err, err_len, dir, strerror(errno));
		return rc;
	}
	int rc = stor_file_read_exact(dfd, STOR_META_FILE, b, sizeof b);
	close(dfd);
	if (rc == -EBADMSG) {
		errf_file(err, err_len, dir, "corrupt metadata: wrong size");
		return -EUCLEAN;
	}
	if (rc != 0) {
		errf_file(err, err_len, dir,
			  rc == -ENOENT ? "metadata file missing" : strerror(-rc));
		return rc;
	}
	const char *why;
	if (stor_meta_decode(b, m, &why) != 0) {
		char what[96];
		snprintf(what, sizeof what, "corrupt metadata: %s", why);
		errf_file(err, err_len, dir, what);
		return -EUCLEAN;
	}
	return 0;
}
