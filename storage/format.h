/*
 * `ordo format` and the start-up check: a node's data directory holds a
 * FORMAT identity file (the cluster constants later issues need), the
 * metadata file (storage/meta.h) and the log segments (storage/seglog.h).
 * A node that finds no FORMAT refuses to start: a node that lost its disk
 * must not rejoin as if it had voted nothing (DESIGN.md §4).
 *
 * <dir>/FORMAT, 64 bytes, little-endian, written last by stor_format (its
 * presence means the directory is complete):
 *
 *   off size field
 *    0   4   magic           0x544D464F ("OFMT")
 *    4   2   version         1 (the format version of the whole directory)
 *    6   2   bytes           64
 *    8   8   cluster_id      nonzero
 *   16   4   node_id         nonzero
 *   20   4   session_window  W, a power of two in [1, ORDO_SESSION_WINDOW_MAX]
 *   24   4   sessions_max    [1, ORDO_SESSIONS_MAX_LIMIT]
 *   28   4   reserved        zero
 *   32   8   accounts_max    [1, ORDO_ACCOUNTS_MAX_LIMIT]
 *   40   8   transfers_max   [1, ORDO_TRANSFERS_MAX_LIMIT]
 *   48  12   reserved        zero
 *   60   4   crc32c          CRC-32C of bytes [0, 60)
 */
#ifndef ORDO_STOR_FORMAT_H
#define ORDO_STOR_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"

#define STOR_FORMAT_FILE    "FORMAT"
#define STOR_FORMAT_MAGIC   0x544D464Fu /* "OFMT" */
#define STOR_FORMAT_VERSION 1u
#define STOR_FORMAT_BYTES   64u

/* What a node was formatted as: its identity and the cluster constants. */
struct stor_identity {
	uint64_t cluster_id;	 /* nonzero */
	uint32_t node_id;	 /* nonzero */
	uint32_t session_window; /* W: power of two, <= ORDO_SESSION_WINDOW_MAX */
	uint32_t sessions_max;	 /* <= ORDO_SESSIONS_MAX_LIMIT */
	uint64_t accounts_max;	 /* <= ORDO_ACCOUNTS_MAX_LIMIT */
	uint64_t transfers_max;	 /* <= ORDO_TRANSFERS_MAX_LIMIT */
};

/* Fills id with the given identity and the default cluster constants. */
void stor_identity_default(struct stor_identity *id, uint64_t cluster_id, uint32_t node_id);

void stor_identity_encode(uint8_t *out, const struct stor_identity *id);
/* Decodes STOR_FORMAT_BYTES at p and checks the ranges above. Returns 0 or
 * -EBADMSG with *why. */
ORDO_MUST_CHECK int stor_identity_decode(const uint8_t *p, struct stor_identity *id,
					 const char **why);

/* Formats dir for this node: creates it if missing (its parent must exist),
 * refuses with -EEXIST if it already holds ordo data (FORMAT, meta or log
 * segments) unless force (which deletes them, FORMAT first), writes the
 * metadata (term 0, no vote), then FORMAT, all durably. Returns 0 or a
 * negative errno with a message in err (may be NULL). */
ORDO_MUST_CHECK int stor_format(const char *dir, const struct stor_identity *id, bool force,
				char *err, size_t err_len);

/* The start-up check: dir must hold a valid FORMAT and a metadata file that
 * agrees with it. Fills *id. Returns 0, -ENOENT ("no formatted data in
 * <dir>; run ordo format"), -EUCLEAN (corrupt or inconsistent, naming the
 * file) or another negative errno, with the message in err. */
ORDO_MUST_CHECK int stor_open_check(const char *dir, struct stor_identity *id, char *err,
				    size_t err_len);

/* The start-up check against the cluster file: stor_open_check, then that
 * dir was formatted with want's cluster_id, node_id, accounts_max and
 * transfers_max, and also its session_window and sessions_max when
 * check_sessions (sequencers). 0, or a negative errno with err naming dir,
 * the field that differs and what to do (-EINVAL for a mismatch). */
ORDO_MUST_CHECK int stor_check_identity(const char *dir, const struct stor_identity *want,
					bool check_sessions, char *err, size_t err_len);

#endif
