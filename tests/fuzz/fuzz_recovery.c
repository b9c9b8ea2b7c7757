/*
 * libFuzzer target: recovery of the segment log (storage/seglog.c,
 * storage/segfmt.c). Each input becomes segment files in a scratch
 * directory (on /dev/shm when there is one, so fsyncs cost nothing), then
 * stor_log_open runs recovery. Input byte 0 picks the shape:
 *   0: the rest is the whole file log-...01.seg, header included (raw);
 *   1: a valid header (first index 1), then the rest;
 *   2: as 1, then a second, valid segment starting after what the first
 *      one holds, with one record (so a bad tail in segment 1 is in the middle);
 *   3: a valid header whose first index is the next 8 bytes, then the rest.
 * Recovery must never crash or read out of bounds. It either fails cleanly
 * (-EUCLEAN with a message, and then the scan agrees there is corruption),
 * or opens a log in which every retained record reads back with a good CRC,
 * a new record appends and syncs, and a reopen finds it.
 *
 * Seeds: FUZZ_RECOVERY_MAKE_CORPUS=<dir> ./fuzz_recovery writes the seed
 * corpus (tests/fuzz/corpus/fuzz_recovery/) into <dir> and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
#include "common/ordo_assert.h"
#include "storage/segfmt.h"
#include "storage/seglog.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CLUSTER	 0x0123456789ABCDEFull
#define FUZZ_INPUT_MAX	 65536u
#define FUZZ_SEG_BYTES	 (128u * 1024u)
#define FUZZ_PAYLOAD_MAX 4096u

static char dir[64];
static uint8_t image[STOR_SEG_HDR_BYTES + 8 + FUZZ_INPUT_MAX];
static uint8_t payload[FUZZ_SEG_BYTES];

static void write_seg(uint64_t first_index, const uint8_t *b, size_t n)
{
	char p[128];
	snprintf(p, sizeof p, "%s/log-%020" PRIu64 ".seg", dir, first_index);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ORDO_ASSERT(fd >= 0);
	ORDO_ASSERT(write(fd, b, n) == (ssize_t)n);
	close(fd);
}

static void clear_dir(void)
{
	DIR *d = opendir(dir);
	ORDO_ASSERT(d != NULL);
	struct dirent *de;
	char p[384];
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

/* Appends one encoded record to b at *n. */
static void put_rec(uint8_t *b, size_t *n, uint16_t kind, uint64_t term, uint64_t index,
		    const uint8_t *p, uint32_t len)
{
	stor_rec_hdr_encode(b + *n, kind, term, index, p, len);
	memcpy(b + *n + STOR_REC_HDR_BYTES, p, len);
	uint64_t bytes = stor_rec_bytes(len);
	memset(b + *n + STOR_REC_HDR_BYTES + len, 0, bytes - STOR_REC_HDR_BYTES - len);
	*n += bytes;
}

static void config(struct stor_log_config *c)
{
	stor_log_config_default(c, dir, FUZZ_CLUSTER);
	c->segment_bytes = FUZZ_SEG_BYTES;
	c->buffer_bytes = 64 * 1024;
	c->payload_bytes_max = FUZZ_PAYLOAD_MAX;
	c->queue_depth = 4;
	c->records_max = 8192;
	c->segments_max = 8;
}

/* Writes the seed corpus into out and exits. */
static void make_corpus(const char *out)
{
	static uint8_t b[8192];
	uint8_t p[300];
	for (uint32_t i = 0; i < sizeof p; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	for (int seed = 0; seed < 6; seed++) {
		size_t n = 1;
		b[0] = (uint8_t)(seed == 0 ? 0 : seed == 4 ? 2 : seed == 5 ? 3 : 1);
		if (seed == 0) {
			stor_seg_hdr_encode(b + 1, FUZZ_CLUSTER, 1);
			n += STOR_SEG_HDR_BYTES;
		}
		if (seed == 5) {
			ordo_st64(b + 1, 1000);
			n += 8;
		}
		uint64_t first = seed == 5 ? 1000 : 1;
		uint32_t recs = seed == 3 ? 12 : 3;
		for (uint32_t r = 0; r < recs; r++)
			put_rec(b, &n, (uint16_t)r, 1 + r / 4, first + r, p, (r * 53 + 5) % 120);
		if (seed == 2)
			n -= 20; /* a torn last record */
		char path[512];
		snprintf(path, sizeof path, "%s/seed-%d", out, seed);
		FILE *f = fopen(path, "wb");
		ORDO_ASSERT(f != NULL && fwrite(b, 1, n, f) == n);
		fclose(f);
	}
	exit(0);
}

static void remove_dir(void)
{
	clear_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *corpus = getenv("FUZZ_RECOVERY_MAKE_CORPUS");
	if (corpus != NULL)
		make_corpus(corpus);
	struct stat st;
	const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/ordo-fuzz-recovery.XXXXXX", base);
	ORDO_ASSERT(mkdtemp(dir) != NULL);
	atexit(remove_dir);
	return 0;
}

/* Independent check of segment 1 (named first): the header, then the scan
 * with last telling whether it is the last segment. */
static void scan_image(const uint8_t *b, size_t n, uint64_t first, bool last, struct stor_scan *sc,
		       bool *hdr_ok)
{
	struct stor_seg_hdr h;
	const char *why;
	*hdr_ok = stor_seg_hdr_decode(b, n, &h, &why) == 0 && h.cluster_id == FUZZ_CLUSTER &&
		  h.first_index == first;
	memset(sc, 0, sizeof *sc);
	if (*hdr_ok)
		stor_seg_scan(b, n, &h, 0, last, NULL, NULL, sc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	uint8_t mode = data[0] % 4;
	const uint8_t *rest = data + 1;
	size_t rest_n = size - 1;
	size_t n = 0;
	uint64_t first = 1;
	if (mode == 3) {
		if (rest_n < 8)
			return 0;
		first = ordo_ld64(rest);
		if (first == 0 || first > (1ull << 62))
			return 0;
		rest += 8;
		rest_n -= 8;
	}
	if (mode != 0) {
		stor_seg_hdr_encode(image, FUZZ_CLUSTER, first);
		n = STOR_SEG_HDR_BYTES;
	}
	memcpy(image + n, rest, rest_n);
	n += rest_n;
	write_seg(first, image, n);

	struct stor_scan sc;
	bool hdr_ok;
	scan_image(image, n, first, true, &sc, &hdr_ok);
	uint64_t second = 0;
	if (mode == 2 && hdr_ok && sc.records > 0) {
		scan_image(image, n, first, false, &sc, &hdr_ok);
		/* A valid segment after whatever segment 1 holds. */
		static uint8_t seg2[STOR_SEG_HDR_BYTES + 64];
		size_t n2 = STOR_SEG_HDR_BYTES;
		second = sc.last_index + 1;
		stor_seg_hdr_encode(seg2, FUZZ_CLUSTER, second);
		put_rec(seg2, &n2, 1, sc.last_term, second, (const uint8_t *)"seg2", 4);
		write_seg(second, seg2, n2);
	}
	bool refuse = !hdr_ok || sc.end == STOR_SCAN_CORRUPT;

	struct stor_log_config c;
	config(&c);
	struct stor_log log;
	char err[STOR_ERR_BYTES] = "";
	int rc = stor_log_open(&log, &c, err, sizeof err);
	if (rc != 0) {
		/* A clean refusal, with a message naming a file, exactly when
		 * the scan finds corruption or the header is bad. */
		ORDO_ASSERT(rc == -EUCLEAN);
		ORDO_ASSERT(strstr(err, "storage: ") == err && strstr(err, dir) != NULL);
		ORDO_ASSERT(refuse);
		clear_dir();
		return 0;
	}
	ORDO_ASSERT(!refuse);
	if (second != 0) {
		ORDO_ASSERT(stor_log_last_index(&log) == second);
	} else if (sc.records > 0) {
		ORDO_ASSERT(sc.end == STOR_SCAN_CLEAN || sc.end == STOR_SCAN_TORN);
		ORDO_ASSERT(stor_log_first_index(&log) == first);
		ORDO_ASSERT(stor_log_last_index(&log) == sc.last_index);
		ORDO_ASSERT(log.stats.torn_tails == (sc.end == STOR_SCAN_TORN));
	} else {
		ORDO_ASSERT(stor_log_last_index(&log) < stor_log_first_index(&log));
	}
	/* Every retained record re-validates. */
	uint64_t last = stor_log_last_index(&log);
	for (uint64_t i = stor_log_first_index(&log); i <= last; i++) {
		struct stor_entry e;
		rc = stor_log_get(&log, i, &e, payload, sizeof payload);
		ORDO_ASSERT(rc == 0 && e.index == i);
	}
	/* The log goes on: append, sync, reopen. */
	uint64_t next = last >= stor_log_first_index(&log) ? last + 1 : first;
	uint64_t term = stor_log_last_term(&log);
	rc = stor_log_append(&log, 7, term, next, "next", 4);
	ORDO_ASSERT(rc == 0);
	ORDO_ASSERT(stor_log_sync_wait(&log) == 0);
	ORDO_ASSERT(stor_log_durable_index(&log) == next);
	stor_log_close(&log);
	rc = stor_log_open(&log, &c, err, sizeof err);
	ORDO_ASSERT(rc == 0);
	ORDO_ASSERT(stor_log_last_index(&log) == next);
	struct stor_entry e;
	ORDO_ASSERT(stor_log_get(&log, next, &e, payload, sizeof payload) == 0);
	ORDO_ASSERT(e.payload_bytes == 4 && memcmp(payload, "next", 4) == 0 && e.kind == 7);
	stor_log_close(&log);
	clear_dir();
	return 0;
}
