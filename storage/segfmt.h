/*
 * The on-disk layout of the segment log, and the pure code that encodes,
 * checks and scans it (no I/O, no clock): seglog.c uses it to write and to
 * recover, tests/fuzz/fuzz_recovery.c drives it directly. What does not live
 * here: files, io_uring, the in-memory index (seglog.c).
 *
 * All integers are little-endian (common/le.h).
 *
 * A segment is the file <dir>/log-<first_index as 20 decimal digits>.seg,
 * preallocated (fallocate) to segment_bytes when it is created. It starts
 * with a 64-byte header:
 *
 *   off size field
 *    0   4   magic         0x4745534F ("OSEG")
 *    4   2   version       1
 *    6   2   header_bytes  64
 *    8   8   cluster_id    the cluster the node was formatted for
 *   16   8   first_index   index of the segment's first record; equals the file name
 *   24  36   reserved      zero
 *   60   4   crc32c        CRC-32C of bytes [0, 60)
 *
 * Records follow at offset 64, back to back, each starting at a multiple of
 * 8; a record never straddles two segments. Bytes after the last record are
 * zero (preallocated, zeroed by a truncation, or, in a recycled segment
 * file, zeroed with FALLOC_FL_ZERO_RANGE before its reuse). A record is a
 * 32-byte header, the payload, then zero padding to a multiple of 8:
 *
 *   off size field
 *    0   4   magic          0x4345524F ("OREC")
 *    4   2   kind           the caller's record kind (Raft entry type), opaque here
 *    6   2   flags          zero (reserved)
 *    8   4   payload_bytes  length of the payload, without padding
 *   12   4   crc32c         CRC-32C of the whole record: this header with the crc
 *                           field zeroed, the payload and the padding
 *   16   8   term           Raft term; never decreases along the log
 *   24   8   index          Raft index, >= 1; consecutive along the log
 *   32   n   payload, then (8 - n % 8) % 8 zero bytes
 *
 * Recovery rules (stor_seg_scan): records are read in order until one does
 * not check (magic, flags, length within the segment, CRC) or the rest of
 * the segment is zero. A record that checks but breaks the identity rules
 * (index consecutive from the segment header's first_index, term not below
 * the previous record's) is corruption. Invalid bytes after the last valid
 * record are a torn tail only in the last segment and only when no valid
 * record follows them anywhere; otherwise they are corruption in the middle.
 */
#ifndef ORDO_STOR_SEGFMT_H
#define ORDO_STOR_SEGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ordo_assert.h"

#define STOR_SEG_MAGIC	     0x4745534Fu /* "OSEG" */
#define STOR_SEG_VERSION     1u
#define STOR_SEG_HDR_BYTES   64u
#define STOR_REC_MAGIC	     0x4345524Fu /* "OREC" */
#define STOR_REC_HDR_BYTES   32u
#define STOR_REC_ALIGN_BYTES 8u
/* Largest payload a record on disk may claim; a larger length is invalid.
 * (The configured payload_bytes_max bounds appends; it may be raised or
 * lowered between runs without making old records unreadable.) */
#define STOR_REC_PAYLOAD_LIMIT (256u << 20)
/* Largest segment file; record offsets inside a segment fit in 32 bits. */
#define STOR_SEG_BYTES_LIMIT (1ull << 31)

ORDO_STATIC_ASSERT(STOR_SEG_HDR_BYTES % STOR_REC_ALIGN_BYTES == 0, "records start aligned");
ORDO_STATIC_ASSERT(STOR_REC_HDR_BYTES % STOR_REC_ALIGN_BYTES == 0, "payload starts aligned");
ORDO_STATIC_ASSERT(STOR_REC_PAYLOAD_LIMIT + STOR_REC_HDR_BYTES + STOR_SEG_HDR_BYTES <
		       STOR_SEG_BYTES_LIMIT,
		   "the largest record fits in the largest segment");

/* A decoded segment header. */
struct stor_seg_hdr {
	uint64_t cluster_id;  /* as formatted */
	uint64_t first_index; /* >= 1 */
};

/* A decoded record header. */
struct stor_rec_hdr {
	uint16_t kind;		/* caller's record kind */
	uint32_t payload_bytes; /* <= STOR_REC_PAYLOAD_LIMIT */
	uint32_t crc;		/* as stored */
	uint64_t term;		/* Raft term */
	uint64_t index;		/* Raft index, >= 1 */
};

/* Bytes a record of payload_bytes occupies on disk: header, payload, padding. */
static inline uint64_t stor_rec_bytes(uint32_t payload_bytes)
{
	return STOR_REC_HDR_BYTES +
	       (((uint64_t)payload_bytes + STOR_REC_ALIGN_BYTES - 1) & ~(uint64_t)7);
}

/* Writes a segment header into out[0, STOR_SEG_HDR_BYTES). */
void stor_seg_hdr_encode(uint8_t *out, uint64_t cluster_id, uint64_t first_index);

/* Decodes and checks a segment header from n bytes at p. Returns 0, or
 * -EBADMSG with *why saying what is wrong. */
ORDO_MUST_CHECK int stor_seg_hdr_decode(const uint8_t *p, size_t n, struct stor_seg_hdr *h,
					const char **why);

/* Writes a record header with its CRC into out[0, STOR_REC_HDR_BYTES),
 * given the payload (the padding is zero by definition). */
void stor_rec_hdr_encode(uint8_t *out, uint16_t kind, uint64_t term, uint64_t index,
			 const void *payload, uint32_t payload_bytes);

/* Decodes a record header without checking it (for readers that check the
 * CRC themselves). */
void stor_rec_hdr_decode(const uint8_t *p, struct stor_rec_hdr *h);

/* CRC a record must carry: its header (crc field taken as zero), payload and
 * pad_bytes of padding from pad (the bytes on disk, normally zero). */
uint32_t stor_rec_crc(const uint8_t *hdr, const void *payload, uint32_t payload_bytes,
		      const uint8_t *pad, uint32_t pad_bytes);

/* Checks the record at off in a segment image of size bytes: complete
 * header, magic, flags, length within the image, index >= 1, CRC. Returns 0
 * and fills *h, or -EBADMSG with *why. Identity (index order, terms) is the
 * caller's concern. */
ORDO_MUST_CHECK int stor_rec_check(const uint8_t *seg, uint64_t size, uint64_t off,
				   struct stor_rec_hdr *h, const char **why);

/* How a segment scan ended. */
enum stor_scan_end {
	STOR_SCAN_CLEAN = 0, /* valid records, then only zeros */
	STOR_SCAN_TORN,	     /* last segment: invalid bytes at the end, nothing valid after */
	STOR_SCAN_CORRUPT,   /* refuse: see bad_off and why */
	STOR_SCAN_STOPPED,   /* the callback returned an error (in rc) */
};

/* What stor_seg_scan found. */
struct stor_scan {
	enum stor_scan_end end;
	uint64_t records;    /* valid records, in order, reported to the callback */
	uint64_t last_index; /* index of the last valid record; first_index - 1 if none */
	uint64_t last_term;  /* term of the last valid record; prev_term if none */
	uint64_t end_off;    /* bytes: end of the last valid record, >= STOR_SEG_HDR_BYTES */
	uint64_t bad_off;    /* TORN/CORRUPT: offset of the first bad bytes */
	int rc;		     /* STOPPED: the callback's negative errno */
	char why[160];	     /* TORN/CORRUPT: what was wrong, for the error message */
};

/* Called for each valid record, in order, with its offset in the segment.
 * Returns 0, or a negative errno to stop the scan. */
typedef int stor_scan_fn(void *ctx, const struct stor_rec_hdr *h, uint64_t off);

/* Scans the records of one segment image (size bytes at seg, header already
 * decoded into *hdr) under the recovery rules at the top of this file.
 * prev_term is the term of the log's record before this segment (0 if
 * none); last says whether this is the log's last segment (only there can a
 * tail be torn). Never reads outside [seg, seg + size). */
void stor_seg_scan(const uint8_t *seg, uint64_t size, const struct stor_seg_hdr *hdr,
		   uint64_t prev_term, bool last, stor_scan_fn *fn, void *ctx,
		   struct stor_scan *out);

#endif
