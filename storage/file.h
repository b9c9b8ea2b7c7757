/*
 * Small-file helpers shared by meta.c and format.c (internal to storage/):
 * an atomic, durable replace of a whole file and an exact read. Plain
 * system calls: these files are tiny and written rarely, and each write
 * must be durable before the call returns.
 */
#ifndef ORDO_STOR_FILE_H
#define ORDO_STOR_FILE_H

#include <stddef.h>

#include "common/ordo_assert.h"

/* Replaces <dir_fd>/name with len bytes of buf atomically and durably:
 * writes <name>.tmp, fdatasyncs it, renames it over name, fsyncs the
 * directory. A crash leaves either the old file or the new one. Returns 0
 * or a negative errno. */
ORDO_MUST_CHECK int stor_file_write_atomic(int dir_fd, const char *name, const void *buf,
					   size_t len);

/* Reads <dir_fd>/name, which must hold exactly len bytes. Returns 0,
 * -ENOENT (missing), -EBADMSG (another size) or a negative errno. */
ORDO_MUST_CHECK int stor_file_read_exact(int dir_fd, const char *name, void *buf, size_t len);

#endif
