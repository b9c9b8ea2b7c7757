/*
 * Encoding, checking and scanning of segment headers and records (the layout
 * is documented in segfmt.h). Pure: no I/O. Every length read from the
 * image is checked against the image's size before it is used, because the
 * image is untrusted input from the disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/le.h"
#include "storage/segfmt.h"

static const uint8_t zero_pad[STOR_REC_ALIGN_BYTES];

void stor_seg_hdr_encode(uint8_t *out, uint64_t cluster_id, uint64_t first_index)
{
	memset(out, 0, STOR_SEG_HDR_BYTES);
	ordo_st32(out + 0, STOR_SEG_MAGIC);
	ordo_st16(out + 4, STOR_SEG_VERSION);
	ordo_st16(out + 6, STOR_SEG_HDR_BYTES);
	ordo_st64(out + 8, cluster_id);
	ordo_st64(out + 16, first_index);
	ordo_st32(out + 60, ordo_crc32c(out, 60));
}

int stor_seg_hdr_decode(const uint8_t *p, size_t n, struct stor_seg_hdr *h, const char **why)
{
	if (n < STOR_SEG_HDR_BYTES) {
		*why = "segment shorter than its header";
		return -EBADMSG;
	}
	if (ordo_ld32(p) != STOR_SEG_MAGIC) {
		*why = "bad segment magic";
		return -EBADMSG;
	}
	if (ordo_ld32(p + 60) != ordo_crc32c(p, 60)) {
		*why = "segment header CRC mismatch";
		return -EBADMSG;
	}
	if (ordo_ld16(p + 4) != STOR_SEG_VERSION || ordo_ld16(p + 6) != STOR_SEG_HDR_BYTES) {
		*why = "unknown segment version";
		return -EBADMSG;
	}
	h->cluster_id = ordo_ld64(p + 8);
	h->first_index = ordo_ld64(p + 16);
	if (h->first_index == 0) {
		*why = "segment first index 0";
		return -EBADMSG;
	}
	return 0;
}

uint32_t stor_rec_crc(const uint8_t *hdr, const void *payload, uint32_t payload_bytes,
		      const uint8_t *pad, uint32_t pad_bytes)
{
	uint8_t h[STOR_REC_HDR_BYTES];
	memcpy(h, hdr, sizeof h);
	ordo_st32(h + 12, 0);
	uint32_t s = ordo_crc32c_update(ordo_crc32c_init(), h, sizeof h);
	s = ordo_crc32c_update(s, payload, payload_bytes);
	s = ordo_crc32c_update(s, pad, pad_bytes);
	return ordo_crc32c_final(s);
}

void stor_rec_hdr_encode(uint8_t *out, uint16_t kind, uint64_t term, uint64_t index,
			 const void *payload, uint32_t payload_bytes)
{
	memset(out, 0, STOR_REC_HDR_BYTES);
	ordo_st32(out + 0, STOR_REC_MAGIC);
	ordo_st16(out + 4, kind);
	ordo_st32(out + 8, payload_bytes);
	ordo_st64(out + 16, term);
	ordo_st64(out + 24, index);
	uint32_t pad =
	    (uint32_t)(stor_rec_bytes(payload_bytes) - STOR_REC_HDR_BYTES) - payload_bytes;
	ordo_st32(out + 12, stor_rec_crc(out, payload, payload_bytes, zero_pad, pad));
}

void stor_rec_hdr_decode(const uint8_t *p, struct stor_rec_hdr *h)
{
	h->kind = ordo_ld16(p + 4);
	h->payload_bytes = ordo_ld32(p + 8);
	h->crc = ordo_ld32(p + 12);
	h->term = ordo_ld64(p + 16);
	h->index = ordo_ld64(p + 24);
}

int stor_rec_check(const uint8_t *seg, uint64_t size, uint64_t off, struct stor_rec_hdr *h,
		   const char **why)
{
	if (off > size || size - off < STOR_REC_HDR_BYTES) {
		*why = "incomplete record header";
		return -EBADMSG;
	}
	const uint8_t *p = seg + off;
	if (ordo_ld32(p) != STOR_REC_MAGIC) {
		*why = "bad record magic";
		return -EBADMSG;
	}
	if (ordo_ld16(p + 6) != 0) {
		*why = "nonzero reserved record flags";
		return -EBADMSG;
	}
	stor_rec_hdr_decode(p, h);
	if (h->payload_bytes > STOR_REC_PAYLOAD_LIMIT) {
		*why = "record length past the limit";
		return -EBADMSG;
	}
	uint64_t bytes = stor_rec_bytes(h->payload_bytes);
	if (bytes > size - off) {
		*why = "record runs past the end of the segment";
		return -EBADMSG;
	}
	if (h->index == 0) {
		*why = "record index 0";
		return -EBADMSG;
	}
	uint32_t pad = (uint32_t)(bytes - STOR_REC_HDR_BYTES) - h->payload_bytes;
	if (stor_rec_crc(p, p + STOR_REC_HDR_BYTES, h->payload_bytes,
			 p + STOR_REC_HDR_BYTES + h->payload_bytes, pad) != h->crc) {
		*why = "record CRC mismatch";
		return -EBADMSG;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* First offset after from (8-aligned) holding a record that checks, or 0. */
static uint64_t find_valid_after(const uint8_t *seg, uint64_t size, uint64_t from)
{
	for (uint64_t off = from; off + STOR_REC_HDR_BYTES <= size; off += STOR_REC_ALIGN_BYTES) {
		if (ordo_ld32(seg + off) != STOR_REC_MAGIC)
			continue;
		struct stor_rec_hdr h;
		const char *why;
		if (stor_rec_check(seg, size, off, &h, &why) == 0)
			return off;
	}
	return 0;
}

void stor_seg_scan(const uint8_t *seg, uint64_t size, const struct stor_seg_hdr *hdr,
		   uint64_t prev_term, bool last, stor_scan_fn *fn, void *ctx,
		   struct stor_scan *out)
{
	memset(out, 0, sizeof *out);
	out->last_index = hdr->first_index - 1;
	out->last_term = prev_term;
	out->end_off = STOR_SEG_HDR_BYTES;
	ORDO_ASSERT(size >= STOR_SEG_HDR_BYTES);

	uint64_t off = STOR_SEG_HDR_BYTES;
	const char *why = "";
	/* Each turn consumes at least one record of >= 32 bytes, so the loop
	 * runs at most size / 32 times. */
	for (;;) {
		struct stor_rec_hdr h;
		if (stor_rec_check(seg, size, off, &h, &why) != 0) {
			/* Zeros to the end: the log simply ends here (checked only
			 * once, at the end, so the scan stays linear). */
			if (all_zero(seg + off, size - off)) {
				out->end = STOR_SCAN_CLEAN;
				return;
			}
			break;
		}
		if (h.index != out->last_index + 1) {
			out->end = STOR_SCAN_CORRUPT;
			out->bad_off = off;
			snprintf(out->why, sizeof out->why,
				 "record index %" PRIu64 " where %" PRIu64 " was expected", h.index,
				 out->last_index + 1);
			return;
		}
		if (h.term < out->last_term) {
			out->end = STOR_SCAN_CORRUPT;
			out->bad_off = off;
			snprintf(out->why, sizeof out->why,
				 "record %" PRIu64 " has term %" PRIu64
				 ", below the previous term %" PRIu64,
				 h.index, h.term, out->last_term);
			return;
		}
		if (fn != NULL) {
			int rc = fn(ctx, &h, off);
			if (rc != 0) {
				out->end = STOR_SCAN_STOPPED;
				out->rc = rc;
				return;
			}
		}
		out->records++;
		out->last_index = h.index;
		out->last_term = h.term;
		off += stor_rec_bytes(h.payload_bytes);
		out->end_off = off;
	}

	out->bad_off = off;
	if (!last) {
		out->end = STOR_SCAN_CORRUPT;
		snprintf(out->why, sizeof out->why, "%s in a segment that is not the last", why);
		return;
	}
	uint64_t later = find_valid_after(seg, size, off + STOR_REC_ALIGN_BYTES);
	if (later != 0) {
		out->end = STOR_SCAN_CORRUPT;
		snprintf(out->why, sizeof out->why,
			 "%s, followed by a valid record at offset %" PRIu64, why, later);
		return;
	}
	out->end = STOR_SCAN_TORN;
	snprintf(out->why, sizeof out->why, "%s (torn tail)", why);
}
