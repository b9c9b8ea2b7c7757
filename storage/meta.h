/*
 * The metadata file <dir>/meta: the Raft term and vote of this node (and
 * the cluster_id and node_id it was formatted with), written atomically and
 * durably before stor_meta_write returns, so a vote or a response that
 * depends on them may follow. What does not live here: the log
 * (storage/seglog.h), the FORMAT identity file (storage/format.h).
 *
 * Layout, 64 bytes, little-endian:
 *
 *   off size field
 *    0   4   magic         0x41544D4F ("OMTA")
 *    4   2   version       1
 *    6   2   bytes         64
 *    8   8   cluster_id
 *   16   8   term          current Raft term
 *   24   4   node_id       this node
 *   28   4   voted_for     node voted for in term; 0 = none
 *   32  28   reserved      zero
 *   60   4   crc32c        CRC-32C of bytes [0, 60)
 */
#ifndef ORDO_STOR_META_H
#define ORDO_STOR_META_H

#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"

#define STOR_META_FILE	  "meta"
#define STOR_META_MAGIC	  0x41544D4Fu /* "OMTA" */
#define STOR_META_VERSION 1u
#define STOR_META_BYTES	  64u

/* The contents of the metadata file. */
struct stor_meta {
	uint64_t cluster_id; /* nonzero; as formatted */
	uint64_t term;	     /* current Raft term; never decreases */
	uint32_t node_id;    /* nonzero; this node */
	uint32_t voted_for;  /* node voted for in term; 0 = none */
};

void stor_meta_encode(uint8_t *out, const struct stor_meta *m);
/* Decodes STOR_META_BYTES at p. Returns 0 or -EBADMSG with *why. */
ORDO_MUST_CHECK int stor_meta_decode(const uint8_t *p, struct stor_meta *m, const char **why);

/* Writes <dir>/meta atomically (temp file, fdatasync, rename, fsync of the
 * directory); durable on return. Returns 0 or a negative errno with a
 * message naming the file in err (err may be NULL). */
ORDO_MUST_CHECK int stor_meta_write(const char *dir, const struct stor_meta *m, char *err,
				    size_t err_len);

/* Reads and checks <dir>/meta. Returns 0, -ENOENT (missing), -EUCLEAN
 * (corrupt: bad size, magic, version or CRC) or another negative errno,
 * with a message naming the file in err. */
ORDO_MUST_CHECK int stor_meta_read(const char *dir, struct stor_meta *m, char *err, size_t err_len);

#endif
