/*
 * Atomic replace and exact read of small files (storage/file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/file.h"

int stor_file_write_atomic(int dir_fd, const char *name, const void *buf, size_t len)
{
	char tmp[256];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp)
		return -ENAMETOOLONG;
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = 0;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out_unlink_tmp;
		}
		done += (size_t)n;
	}
	if (fdatasync(fd) != 0) {
		rc = -errno;
		goto out_unlink_tmp;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out_unlink_tmp;
	}
	fd = -1;
	if (renameat(dir_fd, tmp, dir_fd, name) != 0) {
		rc = -errno;
		goto out_unlink_tmp;
	}
	if (fsync(dir_fd) != 0)
		return -errno;
	return 0;

out_unlink_tmp:
	if (fd >= 0)
		close(fd);
	unlinkat(dir_fd, tmp, 0);
	return rc;
}

int stor_file_read_exact(int dir_fd, const char *name, void *buf, size_t len)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out_close_fd;
	}
	if ((size_t)st.st_size != len) {
		rc = -EBADMSG;
		goto out_close_fd;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EBADMSG;
			goto out_close_fd;
		}
		done += (size_t)n;
	}
out_close_fd:
	close(fd);
	return rc;
}
