/*
 * Unit tests of storage/: the segment log (round trips across segments,
 * group commit, torn tails at every byte offset, corruption in the middle
 * reported with its file and offset, truncation, compaction, buffer and
 * index wrap-around, injected write and fsync errors), the metadata file and
 * `ordo format`. Each test works in its own mkdtemp directory under /tmp and
 * removes it. If the kernel has no io_uring the whole binary exits 77 (SKIP).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
#include "common/prng.h"
#include "storage/format.h"
#include "storage/meta.h"
#include "storage/seglog.h"

#define CLUSTER 0x6f72646f74657374ull

static char DIR_[64];
static char ERR[STOR_ERR_BYTES];

ReportHook(PRE_ALL)(ORDO_UNUSED struct criterion_test_set *set)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc == -ENOSYS || rc == -EPERM) {
		fprintf(stderr, "storage_test: io_uring unavailable (%s); skipping\n",
			strerror(-rc));
		exit(77);
	}
	if (rc == 0)
		io_uring_queue_exit(&ring);
}

static void setup_dir(void)
{
	strcpy(DIR_, "/tmp/ordo-stor-test.XXXXXX");
	cr_assert_not_null(mkdtemp(DIR_));
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	char p[512];
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void teardown_dir(void)
{
	rm_tree(DIR_);
}

TestSuite(storage, .init = setup_dir, .fini = teardown_dir);

static void cfg_small(struct stor_log_config *c)
{
	stor_log_config_default(c, DIR_, CLUSTER);
	c->segment_bytes = 4096;
	c->buffer_bytes = 64 * 1024;
	c->payload_bytes_max = 1024;
	c->queue_depth = 8;
	c->records_max = 4096;
	c->segments_max = 256;
}

static void open_ok(struct stor_log *log, const struct stor_log_config *c)
{
	ERR[0] = '\0';
	int rc = stor_log_open(log, c, ERR, sizeof ERR);
	cr_assert_eq(rc, 0, "open: %d %s", rc, ERR);
}

/* Deterministic payload of record index (with a salt for rewrites). */
static uint32_t payload_of(uint64_t index, uint32_t salt, uint8_t *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(index * 131 + i * 7 + salt * 29);
	return len;
}

static uint32_t len_of(uint64_t index)
{
	return (uint32_t)((index * 37) % 301);
}

static void append_ok(struct stor_log *log, uint64_t term, uint64_t index, uint32_t len,
		      uint32_t salt)
{
	uint8_t p[1024];
	payload_of(index, salt, p, len);
	int rc = stor_log_append(log, (uint16_t)(index % 3), term, index, p, len);
	cr_assert_eq(rc, 0, "append %" PRIu64 ": %d", index, rc);
}

static void check_rec(struct stor_log *log, uint64_t index, uint64_t term, uint32_t len,
		      uint32_t salt)
{
	uint8_t want[1024], got[1024];
	struct stor_entry e;
	payload_of(index, salt, want, len);
	int rc = stor_log_get(log, index, &e, got, sizeof got);
	cr_assert_eq(rc, 0, "get %" PRIu64 ": %d", index, rc);
	cr_assert_eq(e.index, index);
	cr_assert_eq(e.term, term, "term of %" PRIu64, index);
	cr_assert_eq(e.payload_bytes, len, "len of %" PRIu64, index);
	cr_assert_eq(e.kind, index % 3);
	cr_assert_arr_eq(got, want, len, "payload of %" PRIu64, index);
}

static uint64_t term_of(uint64_t index)
{
	return 1 + index / 50;
}

static void seg_path(char *out, size_t n, uint64_t first_index)
{
	snprintf(out, n, "%s/log-%020" PRIu64 ".seg", DIR_, first_index);
}

static uint8_t *read_file(const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s", path);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size);
	cr_assert_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	return b;
}

static void write_file(const char *path, const uint8_t *b, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, b, size, 0), (ssize_t)size);
	close(fd);
}

static int count_segment_files(void)
{
	DIR *d = opendir(DIR_);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		/* log-<index>.seg; a deleted one is renamed log-<index>.seg.del
		 * and freed by a thread of its own */
		size_t len = strlen(de->d_name);
		n += strncmp(de->d_name, "log-", 4) == 0 && len > 4 &&
		     strcmp(de->d_name + len - 4, ".seg") == 0;
	}
	closedir(d);
	return n;
}

/* ---- segment log ---- */

Test(storage, roundtrip_across_segments)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 0);
	for (uint64_t i = 1; i <= 200; i++)
		append_ok(&log, term_of(i), i, len_of(i), 0);
	/* Unwritten records read from the buffer. */
	for (uint64_t i = 1; i <= 200; i += 17)
		check_rec(&log, i, term_of(i), len_of(i), 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(stor_log_durable_index(&log), 200);
	cr_assert_gt(stor_log_segments(&log), 3);
	for (uint64_t i = 1; i <= 200; i++)
		check_rec(&log, i, term_of(i), len_of(i), 0);
	uint64_t t;
	cr_assert_eq(stor_log_term(&log, 150, &t), 0);
	cr_assert_eq(t, term_of(150));
	cr_assert_eq(stor_log_term(&log, 201, &t), -ENOENT);
	stor_log_close(&log);

	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), 1);
	cr_assert_eq(stor_log_last_index(&log), 200);
	cr_assert_eq(stor_log_last_term(&log), term_of(200));
	cr_assert_eq(stor_log_durable_index(&log), 200);
	cr_assert_eq(log.stats.torn_tails, 0);
	for (uint64_t i = 1; i <= 200; i++)
		check_rec(&log, i, term_of(i), len_of(i), 0);
	for (uint64_t i = 201; i <= 260; i++)
		append_ok(&log, term_of(i), i, len_of(i), 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);

	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 260);
	for (uint64_t i = 1; i <= 260; i++)
		check_rec(&log, i, term_of(i), len_of(i), 0);
	struct stor_entry e;
	uint8_t small[4];
	cr_assert_eq(stor_log_get(&log, 3, &e, small, sizeof small), -EMSGSIZE);
	cr_assert_eq(e.payload_bytes, len_of(3));
	cr_assert_eq(stor_log_get(&log, 261, &e, small, sizeof small), -ENOENT);
	stor_log_close(&log);
}

/* A second log on a directory another one has open is refused, naming the
 * segment; once the first is closed, it opens. */
Test(storage, a_second_open_of_a_live_directory_is_refused)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log, other;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 10; i++)
		append_ok(&log, term_of(i), i, len_of(i), 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	c.lock_wait_ms = 50;
	cr_assert_eq(stor_log_open(&other, &c, ERR, sizeof ERR), -EBUSY);
	cr_assert_not_null(strstr(ERR, "another process is using"), "%s", ERR);
	cr_assert_not_null(strstr(ERR, DIR_), "%s", ERR);
	stor_log_close(&log);
	open_ok(&other, &c);
	cr_assert_eq(stor_log_last_index(&other), 10);
	stor_log_close(&other);
}

Test(storage, group_commit_one_fdatasync)
{
	struct stor_log_config c;
	cfg_small(&c);
	c.segment_bytes = 1 << 20;
	struct stor_log log;
	open_ok(&log, &c);
	uint64_t f0 = log.stats.fsyncs;
	for (uint64_t i = 1; i <= 100; i++)
		append_ok(&log, 1, i, 40, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(log.stats.fsyncs - f0, 1, "fsyncs: %" PRIu64, log.stats.fsyncs - f0);
	cr_assert_eq(log.stats.roll_syncs, 0);
	cr_assert_eq(stor_log_durable_index(&log), 100);

	/* The event-loop shape: append, sync (returns at once), poll/wait. */
	for (uint64_t i = 101; i <= 150; i++)
		append_ok(&log, 1, i, 40, 0);
	cr_assert_eq(stor_log_sync(&log), 0);
	uint64_t durable = 0;
	for (int turns = 0; durable < 150 && turns < 1000; turns++)
		cr_assert_eq(stor_log_wait(&log, &durable), 0);
	cr_assert_eq(durable, 150);
	cr_assert_eq(log.stats.fsyncs - f0, 2);
	cr_assert_eq(stor_log_poll(&log, &durable), 0);
	cr_assert_eq(durable, 150);
	cr_assert_geq(stor_log_fd(&log), 0);
	stor_log_close(&log);
}

Test(storage, flush_without_sync_is_not_durable)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 1, 1, 10, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	append_ok(&log, 1, 2, 10, 0);
	cr_assert_eq(stor_log_flush(&log), 0);
	uint64_t durable = 0;
	for (int i = 0; i < 100 && log.inflight > 0; i++)
		cr_assert_eq(stor_log_wait(&log, &durable), 0);
	cr_assert_eq(log.written_index, 2);
	cr_assert_eq(stor_log_durable_index(&log), 1, "written but never synced");
	check_rec(&log, 2, 1, 10, 0); /* by pread now */
	stor_log_close(&log);
}

/* Builds records 1..5 of payload 50 (88 bytes on disk each) in one segment. */
#define TORN_RECS  5u
#define TORN_LEN   50u
#define TORN_BYTES 88u

Test(storage, torn_last_record_at_every_offset)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= TORN_RECS; i++)
		append_ok(&log, 1, i, TORN_LEN, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);

	char path[256];
	seg_path(path, sizeof path, 1);
	size_t size;
	uint8_t *orig = read_file(path, &size);
	cr_assert_eq(size, c.segment_bytes);
	uint64_t last_off = STOR_SEG_HDR_BYTES + (TORN_RECS - 1) * TORN_BYTES;
	cr_assert_eq(ordo_ld64(orig + last_off + 24), TORN_RECS, "layout as expected");
	cr_assert_eq(size, c.segment_bytes);
	uint8_t *img = malloc(c.segment_bytes);
	struct ordo_prng prng;
	ordo_prng_seed(&prng, 42);

	for (int garbage = 0; garbage <= 1; garbage++) {
		for (uint32_t k = 0; k < TORN_BYTES; k++) {
			memcpy(img, orig, size);
			for (uint32_t b = k; b < TORN_BYTES; b++)
				img[last_off + b] = garbage ? (uint8_t)ordo_prng_next(&prng) : 0;
			write_file(path, img, size);

			/* With zeros, a write that reached the padding left the
			 * record whole (its padding is zero anyway). */
			bool whole = !garbage && k >= STOR_REC_HDR_BYTES + TORN_LEN;
			uint64_t last = whole ? TORN_RECS : TORN_RECS - 1;
			open_ok(&log, &c);
			cr_assert_eq(stor_log_last_index(&log), last,
				     "garbage %d k %u: last %" PRIu64, garbage, k,
				     stor_log_last_index(&log));
			cr_assert_eq(log.stats.torn_tails, (garbage || (k > 0 && !whole)) ? 1u : 0u,
				     "garbage %d k %u", garbage, k);
			for (uint64_t i = 1; i <= last; i++)
				check_rec(&log, i, 1, TORN_LEN, 0);
			/* The tail is zero again: a new record goes after the last. */
			append_ok(&log, 2, last + 1, TORN_LEN - 3, k + 1);
			cr_assert_eq(stor_log_sync_wait(&log), 0);
			stor_log_close(&log);

			open_ok(&log, &c);
			cr_assert_eq(stor_log_last_index(&log), last + 1);
			cr_assert_eq(log.stats.torn_tails, 0);
			check_rec(&log, last + 1, 2, TORN_LEN - 3, k + 1);
			stor_log_close(&log);
		}
	}
	free(img);
	free(orig);
}

Test(storage, torn_newest_segment_header_only)
{
	/* A newest segment whose records never arrived: removed at open. */
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	uint64_t i = 1;
	while (stor_log_segments(&log) < 2) {
		append_ok(&log, 1, i, 300, 0);
		i++;
	}
	uint64_t second_first = i - 1;
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	char path[256];
	seg_path(path, sizeof path, second_first);
	size_t size;
	uint8_t *img = read_file(path, &size);
	memset(img + STOR_SEG_HDR_BYTES, 0, size - STOR_SEG_HDR_BYTES);
	write_file(path, img, size);
	free(img);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), second_first - 1);
	cr_assert_eq(stor_log_segments(&log), 1);
	cr_assert_eq(count_segment_files(), 1);
	append_ok(&log, 1, second_first, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
}

static void expect_corrupt(const struct stor_log_config *c, const char *path, uint64_t off)
{
	struct stor_log log;
	ERR[0] = '\0';
	int rc = stor_log_open(&log, c, ERR, sizeof ERR);
	cr_assert_eq(rc, -EUCLEAN, "open: %d %s", rc, ERR);
	char want[300];
	snprintf(want, sizeof want, "storage: %s: offset %" PRIu64 ": ", path, off);
	cr_assert_not_null(strstr(ERR, want), "want '%s' in '%s'", want, ERR);
	cr_assert_not_null(strstr(ERR, "the log is corrupt before its end; restore this node's "
				       "data from a peer (ordo format + rejoin)"),
			   "%s", ERR);
}

Test(storage, bit_flip_in_middle_record)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 8; i++)
		append_ok(&log, 1, i, TORN_LEN, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	char path[256];
	seg_path(path, sizeof path, 1);
	size_t size;
	uint8_t *orig = read_file(path, &size);
	cr_assert_eq(size, c.segment_bytes);
	uint8_t *img = malloc(c.segment_bytes);
	uint64_t off = STOR_SEG_HDR_BYTES + 2 * TORN_BYTES; /* record 3 */
	/* magic, kind, flags, length (up and down), crc, term, index, payload, padding */
	const uint32_t bits[] = {0,
				 5,
				 4 * 8 + 1,
				 6 * 8 + 2,
				 8 * 8 + 3,
				 8 * 8 + 1,
				 8 * 8 + 20,
				 12 * 8,
				 16 * 8 + 1,
				 24 * 8 + 5,
				 32 * 8,
				 (32 + 49) * 8 + 7,
				 (32 + 50) * 8 + 2};
	for (size_t b = 0; b < ORDO_ARRAY_LEN(bits); b++) {
		memcpy(img, orig, size);
		img[off + bits[b] / 8] ^= (uint8_t)(1u << (bits[b] % 8));
		write_file(path, img, size);
		expect_corrupt(&c, path, off);
	}
	/* The untouched file still opens. */
	write_file(path, orig, size);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 8);
	stor_log_close(&log);
	free(img);
	free(orig);
}

Test(storage, bit_flip_in_middle_segment)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 40; i++)
		append_ok(&log, 1, i, 300, 0); /* 336 bytes: 12 records per segment */
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_geq(stor_log_segments(&log), 3);
	stor_log_close(&log);
	char path[256];
	seg_path(path, sizeof path, 13);
	size_t size;
	uint8_t *orig = read_file(path, &size);
	cr_assert_eq(size, c.segment_bytes);
	uint8_t *img = malloc(c.segment_bytes);
	for (uint32_t r = 0; r < 12; r += 5) {
		uint64_t off = STOR_SEG_HDR_BYTES + r * 336u;
		memcpy(img, orig, size);
		img[off + 100] ^= 0x10;
		write_file(path, img, size);
		expect_corrupt(&c, path, off);
	}
	/* A bad segment header. */
	memcpy(img, orig, size);
	img[17] ^= 1;
	write_file(path, img, size);
	expect_corrupt(&c, path, 0);
	free(img);
	free(orig);
}

Test(storage, bad_tail_record_followed_by_later_segment)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 30; i++)
		append_ok(&log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	char path[256];
	seg_path(path, sizeof path, 1);
	size_t size;
	uint8_t *orig = read_file(path, &size);
	cr_assert_eq(size, c.segment_bytes);
	static uint8_t img[4096];
	uint64_t off = STOR_SEG_HDR_BYTES + 11 * 336u; /* record 12: last of segment 1 */
	cr_assert_eq(ordo_ld64(orig + off + 24), 12);

	/* Torn-looking (garbage at the end of the segment), but a valid record
	 * follows in a later segment: corruption in the middle. */
	memcpy(img, orig, size);
	memset(img + off + 40, 0xA5, 200);
	write_file(path, img, size);
	expect_corrupt(&c, path, off);

	/* Zeroed (a lost write): segment 1 ends early, and segment 2 does not
	 * follow it. */
	memcpy(img, orig, size);
	memset(img + off, 0, 336);
	write_file(path, img, size);
	char path2[256];
	seg_path(path2, sizeof path2, 13);
	expect_corrupt(&c, path2, 0);
	free(orig);
}

Test(storage, invalid_record_then_valid_in_last_segment)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 6; i++)
		append_ok(&log, 1, i, TORN_LEN, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	char path[256];
	seg_path(path, sizeof path, 1);
	size_t size;
	uint8_t *img = read_file(path, &size);
	uint64_t off = STOR_SEG_HDR_BYTES + 4 * TORN_BYTES; /* record 5 of 6 zeroed */
	memset(img + off, 0, TORN_BYTES);
	write_file(path, img, size);
	expect_corrupt(&c, path, off);
	free(img);
}

Test(storage, wrong_cluster_refused)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 1, 1, 10, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	c.cluster_id = CLUSTER + 1;
	cr_assert_eq(stor_log_open(&log, &c, ERR, sizeof ERR), -EUCLEAN);
	cr_assert_not_null(strstr(ERR, "belongs to cluster"), "%s", ERR);
}

Test(storage, stale_temp_segment_removed)
{
	struct stor_log_config c;
	cfg_small(&c);
	char p[256];
	snprintf(p, sizeof p, "%s/log-%020d.seg.tmp", DIR_, 1);
	uint8_t junk[100] = {1, 2, 3};
	write_file(p, junk, sizeof junk);
	struct stor_log log;
	open_ok(&log, &c);
	cr_assert_eq(access(p, F_OK), -1);
	cr_assert_eq(stor_log_last_index(&log), 0);
	stor_log_close(&log);
}

Test(storage, truncate_suffix_and_compact_prefix)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 60; i++)
		append_ok(&log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	int files = count_segment_files();
	cr_assert_eq(files, 5);

	/* Conflict at 30 (inside segment 3, which starts at 25). */
	cr_assert_eq(stor_log_truncate_suffix(&log, 30), 0);
	cr_assert_eq(stor_log_last_index(&log), 29);
	cr_assert_eq(stor_log_durable_index(&log), 29);
	cr_assert_eq(count_segment_files(), 3);
	struct stor_entry e;
	uint8_t buf[1024];
	cr_assert_eq(stor_log_get(&log, 30, &e, buf, sizeof buf), -ENOENT);
	for (uint64_t i = 30; i <= 45; i++)
		append_ok(&log, 2, i, 200, 7);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	/* Truncate records that were only appended (never written). */
	append_ok(&log, 2, 46, 10, 7);
	append_ok(&log, 2, 47, 10, 7);
	cr_assert_eq(stor_log_truncate_suffix(&log, 46), 0);
	cr_assert_eq(stor_log_last_index(&log), 45);
	append_ok(&log, 3, 46, 20, 9);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	/* Truncating at a segment's first record removes the segment. */
	cr_assert_eq(stor_log_truncate_suffix(&log, 25), 0);
	cr_assert_eq(count_segment_files(), 2);
	for (uint64_t i = 25; i <= 45; i++)
		append_ok(&log, 2, i, 200, 7);
	append_ok(&log, 3, 46, 20, 9);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);

	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 46);
	cr_assert_eq(stor_log_last_term(&log), 3);
	for (uint64_t i = 1; i <= 24; i++)
		check_rec(&log, i, 1, 300, 0);
	for (uint64_t i = 25; i <= 45; i++)
		check_rec(&log, i, 2, 200, 7);
	check_rec(&log, 46, 3, 20, 9);

	/* Snapshot at 30: segments wholly <= 30 go (1..12, 13..24), not 25... */
	files = count_segment_files();
	cr_assert_eq(stor_log_compact_prefix(&log, 30), 0);
	cr_assert_eq(stor_log_first_index(&log), 25);
	cr_assert_eq(count_segment_files(), files - 2);
	cr_assert_eq(stor_log_get(&log, 24, &e, buf, sizeof buf), -ENOENT);
	check_rec(&log, 25, 2, 200, 7);
	/* The newest segment is never removed. */
	cr_assert_eq(stor_log_compact_prefix(&log, 1000), 0);
	cr_assert_eq(stor_log_last_index(&log), 46);
	cr_assert_eq(count_segment_files(), 1);
	uint64_t first = stor_log_first_index(&log);
	stor_log_close(&log);

	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), first);
	cr_assert_eq(stor_log_last_index(&log), 46);
	check_rec(&log, 46, 3, 20, 9);
	/* Truncate to empty (InstallSnapshot), then start again at 101. */
	cr_assert_eq(stor_log_truncate_suffix(&log, first), 0);
	cr_assert_eq(count_segment_files(), 0);
	cr_assert_eq(stor_log_last_index(&log) + 1, stor_log_first_index(&log));
	append_ok(&log, 4, 101, 30, 1);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), 101);
	cr_assert_eq(stor_log_last_index(&log), 101);
	check_rec(&log, 101, 4, 30, 1);
	cr_assert_eq(stor_log_truncate_suffix(&log, 50), -EINVAL);
	stor_log_close(&log);
}

Test(storage, buffer_full_and_wraparound)
{
	struct stor_log_config c;
	cfg_small(&c);
	c.buffer_bytes = 1000; /* not a multiple of 8: writes split at the wrap */
	c.payload_bytes_max = 200;
	c.records_max = 64;
	c.queue_depth = 4;
	struct stor_log log;
	open_ok(&log, &c);
	uint8_t big[300] = {0};
	cr_assert_eq(stor_log_append(&log, 0, 1, 1, big, 201), -EMSGSIZE);

	struct ordo_prng prng;
	ordo_prng_seed(&prng, 7);
	uint32_t lens[2001];
	uint64_t next = 1;
	int full = 0;
	while (next <= 2000) {
		uint32_t len = (uint32_t)ordo_prng_below(&prng, 201);
		uint8_t p[1024];
		payload_of(next, 3, p, len);
		int rc = stor_log_append(&log, (uint16_t)(next % 3), 1, next, p, len);
		if (rc == -ENOBUFS) {
			full++;
			if (ordo_prng_below(&prng, 2) == 0)
				cr_assert_eq(stor_log_sync_wait(&log), 0);
			else
				cr_assert_eq(stor_log_sync(&log), 0);
			uint64_t durable;
			cr_assert_eq(stor_log_poll(&log, &durable), 0);
			/* Keep the index bounded: a snapshot at the durable index. */
			cr_assert_eq(stor_log_compact_prefix(&log, durable), 0);
			continue;
		}
		cr_assert_eq(rc, 0);
		lens[next] = len;
		/* Every retained record reads back, from the buffer or the file. */
		uint64_t probe = stor_log_first_index(&log) +
				 ordo_prng_below(&prng, next - stor_log_first_index(&log) + 1);
		check_rec(&log, probe, 1, lens[probe], 3);
		next++;
	}
	cr_assert_gt(full, 10);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	uint64_t first = stor_log_first_index(&log);
	stor_log_close(&log);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), first);
	cr_assert_eq(stor_log_last_index(&log), 2000);
	for (uint64_t i = first; i <= 2000; i++)
		check_rec(&log, i, 1, lens[i], 3);
	stor_log_close(&log);
}

Test(storage, records_max_exceeded_at_open)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 20; i++)
		append_ok(&log, 1, i, 8, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	c.records_max = 10;
	cr_assert_eq(stor_log_open(&log, &c, ERR, sizeof ERR), -ENOBUFS);
	cr_assert_not_null(strstr(ERR, "records_max"), "%s", ERR);
}

Test(storage, injected_fsync_error_stops_the_log)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 5; i++)
		append_ok(&log, 1, i, 20, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(stor_log_durable_index(&log), 5);

	log.fault.fsync_armed = true;
	log.fault.fsync_after = 1; /* one more good fdatasync, then a failure */
	log.fault.armed = true;
	append_ok(&log, 1, 6, 20, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(stor_log_durable_index(&log), 6);
	for (uint64_t i = 7; i <= 10; i++)
		append_ok(&log, 1, i, 20, 0);
	cr_assert_eq(stor_log_sync_wait(&log), -EIO);
	cr_assert_eq(stor_log_durable_index(&log), 6, "durable must not advance");
	cr_assert_eq(stor_log_failed(&log), -EIO);
	uint8_t p[8] = {0};
	cr_assert_eq(stor_log_append(&log, 0, 1, 11, p, 8), -EIO);
	uint64_t durable = 99;
	cr_assert_eq(stor_log_poll(&log, &durable), -EIO);
	cr_assert_eq(durable, 99);
	cr_assert_eq(stor_log_sync(&log), -EIO);
	cr_assert_eq(stor_log_flush(&log), -EIO);
	cr_assert_eq(stor_log_sync_wait(&log), -EIO);
	cr_assert_eq(stor_log_truncate_suffix(&log, 3), -EIO);
	cr_assert_eq(stor_log_compact_prefix(&log, 3), -EIO);
	struct stor_entry e;
	cr_assert_eq(stor_log_get(&log, 1, &e, p, sizeof p), -EIO);
	stor_log_close(&log);

	/* A restarted node recovers what reached the disk. */
	open_ok(&log, &c);
	cr_assert_geq(stor_log_last_index(&log), 6);
	stor_log_close(&log);
}

Test(storage, injected_write_error_stops_the_log)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 1, 1, 20, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	log.fault.write_armed = true;
	log.fault.write_after = 0;
	log.fault.error = -ENOSPC;
	log.fault.armed = true;
	uint64_t f0 = log.stats.fsyncs;
	append_ok(&log, 1, 2, 20, 0);
	cr_assert_eq(stor_log_sync_wait(&log), -ENOSPC);
	cr_assert_eq(log.stats.fsyncs, f0, "no fdatasync after a failed write");
	cr_assert_eq(stor_log_durable_index(&log), 1);
	uint8_t p[8] = {0};
	cr_assert_eq(stor_log_append(&log, 0, 1, 3, p, 8), -ENOSPC);
	cr_assert_eq(stor_log_poll(&log, NULL), -ENOSPC);
	stor_log_close(&log);
}

Test(storage, injected_fsync_error_on_segment_roll)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	log.fault.fsync_armed = true;
	log.fault.fsync_after = 3; /* segment 1 creation: file + dir; then the first roll fails */
	log.fault.armed = true;
	int rc = 0;
	uint64_t i;
	for (i = 1; i <= 40 && rc == 0; i++) {
		append_ok(&log, 1, i, 300, 0);
		rc = stor_log_flush(&log);
		if (rc == 0)
			rc = stor_log_poll(&log, NULL);
	}
	if (rc == 0)
		rc = stor_log_sync_wait(&log);
	cr_assert_eq(rc, -EIO);
	cr_assert_lt(stor_log_durable_index(&log), 13);
	stor_log_close(&log);
}

Test(storage, bad_config_refused)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	c.payload_bytes_max = 8000; /* does not fit a 4096-byte segment */
	cr_assert_eq(stor_log_open(&log, &c, ERR, sizeof ERR), -EINVAL);
	cr_assert_not_null(strstr(ERR, "payload_bytes_max"), "%s", ERR);
	cfg_small(&c);
	c.dir = "/nonexistent/ordo";
	cr_assert_eq(stor_log_open(&log, &c, ERR, sizeof ERR), -ENOENT);
}

Test(storage, decreasing_term_asserts, .signal = SIGABRT)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 2, 1, 8, 0);
	append_ok(&log, 1, 2, 8, 0);
}

Test(storage, index_gap_asserts, .signal = SIGABRT)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 1, 1, 8, 0);
	append_ok(&log, 1, 3, 8, 0);
}

/* ---- metadata ---- */

Test(storage, meta_atomic_write_and_reload)
{
	struct stor_meta m = {.cluster_id = CLUSTER, .term = 5, .node_id = 3, .voted_for = 2}, r;
	cr_assert_eq(stor_meta_read(DIR_, &r, ERR, sizeof ERR), -ENOENT);
	cr_assert_not_null(strstr(ERR, "/meta"), "%s", ERR);
	cr_assert_eq(stor_meta_write(DIR_, &m, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(stor_meta_read(DIR_, &r, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(r.cluster_id, CLUSTER);
	cr_assert_eq(r.term, 5);
	cr_assert_eq(r.node_id, 3);
	cr_assert_eq(r.voted_for, 2);
	m.term = 6;
	m.voted_for = 0;
	cr_assert_eq(stor_meta_write(DIR_, &m, ERR, sizeof ERR), 0);
	cr_assert_eq(stor_meta_read(DIR_, &r, ERR, sizeof ERR), 0);
	cr_assert_eq(r.term, 6);
	cr_assert_eq(r.voted_for, 0);
	char p[256];
	snprintf(p, sizeof p, "%s/meta.tmp", DIR_);
	cr_assert_eq(access(p, F_OK), -1, "no temp file left");

	snprintf(p, sizeof p, "%s/meta", DIR_);
	size_t size;
	uint8_t *b = read_file(p, &size);
	cr_assert_eq(size, STOR_META_BYTES);
	for (uint32_t byte = 0; byte < STOR_META_BYTES; byte += 7) {
		b[byte] ^= 0x40;
		write_file(p, b, size);
		cr_assert_eq(stor_meta_read(DIR_, &r, ERR, sizeof ERR), -EUCLEAN, "byte %u", byte);
		cr_assert_not_null(strstr(ERR, p), "%s", ERR);
		b[byte] ^= 0x40;
	}
	write_file(p, b, size - 1);
	cr_assert_eq(stor_meta_read(DIR_, &r, ERR, sizeof ERR), -EUCLEAN);
	cr_assert_not_null(strstr(ERR, p), "%s", ERR);
	free(b);
}

/* ---- format ---- */

Test(storage, format_and_open_check)
{
	char sub[128], want[200];
	snprintf(sub, sizeof sub, "%s/node", DIR_);
	struct stor_identity id, got;
	stor_identity_default(&id, CLUSTER, 2);
	id.session_window = 64;
	id.accounts_max = 1000;

	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), -ENOENT);
	snprintf(want, sizeof want, "no formatted data in %s; run ordo format", sub);
	cr_assert_not_null(strstr(ERR, want), "%s", ERR);
	cr_assert_eq(mkdir(sub, 0750), 0);
	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), -ENOENT);
	cr_assert_not_null(strstr(ERR, want), "%s", ERR);
	cr_assert_eq(rmdir(sub), 0);

	cr_assert_eq(stor_format(sub, &id, false, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(got.cluster_id, CLUSTER);
	cr_assert_eq(got.node_id, 2);
	cr_assert_eq(got.session_window, 64);
	cr_assert_eq(got.sessions_max, id.sessions_max);
	cr_assert_eq(got.accounts_max, 1000);
	cr_assert_eq(got.transfers_max, id.transfers_max);
	struct stor_meta m;
	cr_assert_eq(stor_meta_read(sub, &m, ERR, sizeof ERR), 0);
	cr_assert_eq(m.term, 0);
	cr_assert_eq(m.voted_for, 0);
	cr_assert_eq(m.node_id, 2);

	/* Give it a log, then: a second format is refused, --force erases. */
	struct stor_log_config c;
	cfg_small(&c);
	c.dir = sub;
	struct stor_log log;
	open_ok(&log, &c);
	append_ok(&log, 1, 1, 8, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	stor_log_close(&log);
	cr_assert_eq(stor_format(sub, &id, false, ERR, sizeof ERR), -EEXIST);
	cr_assert_not_null(strstr(ERR, "already holds ordo data"), "%s", ERR);
	id.node_id = 4;
	cr_assert_eq(stor_format(sub, &id, true, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_eq(got.node_id, 4);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 0, "force erased the log");
	stor_log_close(&log);

	/* Corrupt FORMAT, and a meta that disagrees with it. */
	char p[256];
	snprintf(p, sizeof p, "%s/FORMAT", sub);
	size_t size;
	uint8_t *b = read_file(p, &size);
	b[20] ^= 1;
	write_file(p, b, size);
	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), -EUCLEAN);
	cr_assert_not_null(strstr(ERR, p), "%s", ERR);
	b[20] ^= 1;
	write_file(p, b, size);
	free(b);
	m.node_id = 9;
	cr_assert_eq(stor_meta_write(sub, &m, ERR, sizeof ERR), 0);
	cr_assert_eq(stor_open_check(sub, &got, ERR, sizeof ERR), -EUCLEAN);
	cr_assert_not_null(strstr(ERR, "disagrees"), "%s", ERR);

	/* A bad identity is refused before anything is written. */
	id.session_window = 3;
	cr_assert_eq(stor_format(sub, &id, true, ERR, sizeof ERR), -EINVAL);
	cr_assert_not_null(strstr(ERR, "session_window"), "%s", ERR);
}

/* A compacted segment is renamed aside and freed by a thread; whatever a
 * crash leaves of it is removed at the next open, and never read as a
 * segment. */
Test(storage, deleted_segment_leftovers_are_removed_at_open)
{
	struct stor_log_config c;
	cfg_small(&c);
	struct stor_log log;
	open_ok(&log, &c);
	for (uint64_t i = 1; i <= 60; i++)
		append_ok(&log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(stor_log_compact_prefix(&log, 30), 0);
	uint64_t first = stor_log_first_index(&log);
	stor_log_close(&log);
	/* what a crash between the rename and the thread's unlink leaves */
	char path[512];
	snprintf(path, sizeof path, "%s/log-%020u.seg.del", DIR_, 1u);
	write_file(path, (const uint8_t *)"junk", 4);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), first);
	cr_assert_eq(stor_log_last_index(&log), 60);
	/* handed to the log's janitor, which keeps it as a spare or frees it */
	for (int i = 0; i < 1000 && access(path, F_OK) == 0; i++)
		usleep(10 * 1000);
	cr_assert_eq(access(path, F_OK), -1, "the leftover is gone 10 s after open");
	stor_log_close(&log);
}

/* Files in the log's directory whose names start with prefix and end with
 * suffix; with inos, their inode numbers (up to 16). */
static int count_files(const char *prefix, const char *suffix, ino_t *inos)
{
	DIR *d = opendir(DIR_);
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), pl = strlen(prefix), sl = strlen(suffix);
		if (len < pl + sl || strncmp(de->d_name, prefix, pl) != 0 ||
		    strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		if (inos != NULL && n < 16)
			inos[n] = de->d_ino;
		n++;
	}
	closedir(d);
	return n;
}

/* Waits up to 10 s until exactly n spare files exist, all named after
 * above ("" for any name; the janitor renames a spare once zeroed), and no
 * retired (*.del) file. */
static void wait_spares_after(int n, const char *above)
{
	int seen = 0, newer = 0;
	for (int i = 0; i < 1000; i++) {
		DIR *d = opendir(DIR_);
		struct dirent *de;
		seen = newer = 0;
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, "spare-", 6) == 0) {
				seen++;
				newer += strcmp(de->d_name, above) > 0;
			}
		closedir(d);
		if (seen == n && newer == n && count_files("log-", ".del", NULL) == 0)
			return;
		usleep(10 * 1000);
	}
	cr_assert_fail("after 10 s: %d spare files, %d named after \"%s\" (want %d), %d retired "
		       "files (want 0)",
		       seen, newer, above, n, count_files("log-", ".del", NULL));
}

/* The janitor is done: exactly n spares, no retired file left. */
static void wait_janitor(int n)
{
	wait_spares_after(n, "");
}

static bool all_zero_file(const char *name, size_t want_size)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", DIR_, name);
	size_t size;
	uint8_t *b = read_file(path, &size);
	bool zero = size == want_size;
	for (size_t i = 0; zero && i < size; i++)
		zero = b[i] == 0;
	free(b);
	return zero;
}

/* Every spare file in the log's directory is 4096 zero bytes. */
static void assert_spares_zeroed(void)
{
	DIR *d = opendir(DIR_);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "spare-", 6) == 0)
			cr_assert(all_zero_file(de->d_name, 4096), "%s is zeroed", de->d_name);
	closedir(d);
}

/* Skips the test where the file system of the test directory cannot zero a
 * range (tmpfs): the log then deletes what it retires, tested elsewhere. */
static void need_zero_range(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/zero-range-probe", DIR_);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	int rc = fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096) == 0 ? 0 : errno;
	close(fd);
	unlink(path);
	if (rc == EOPNOTSUPP)
		cr_skip_test("%s: the file system cannot FALLOC_FL_ZERO_RANGE", DIR_);
	cr_assert_eq(rc, 0, "fallocate: %s", strerror(rc));
}

/* The spare tests' start: a small-segment log keeping spares spare files,
 * records 1..60 of 300 bytes (five segments) durable. */
static void open_with_60_records(struct stor_log *log, struct stor_log_config *c, uint32_t spares)
{
	need_zero_range();
	cfg_small(c);
	c->spare_segments = spares;
	open_ok(log, c);
	for (uint64_t i = 1; i <= 60; i++)
		append_ok(log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(log), 0);
}

/* Compacted segments become zeroed spares (FALLOC_FL_ZERO_RANGE), new
 * segments reuse them, and a recycled segment recovers to exactly its new
 * records: nothing of what it held before comes back. */
Test(storage, retired_segments_become_zeroed_spares_and_are_reused)
{
	struct stor_log_config c;
	struct stor_log log;
	open_with_60_records(&log, &c, 2);
	struct stat st1, st13;
	char path[512];
	seg_path(path, sizeof path, 1);
	cr_assert_eq(stat(path, &st1), 0);
	seg_path(path, sizeof path, 13);
	cr_assert_eq(stat(path, &st13), 0);
	cr_assert_eq(stor_log_compact_prefix(&log, 30), 0); /* retires 1.. and 13.. */
	cr_assert_eq(stor_log_first_index(&log), 25);
	wait_janitor(2);

	ino_t inos[16];
	cr_assert_eq(count_files("spare-", ".seg", inos), 2);
	for (int k = 0; k < 2; k++)
		cr_assert(inos[k] == st1.st_ino || inos[k] == st13.st_ino,
			  "a spare is one of the retired files");
	assert_spares_zeroed();

	/* New segments take the spares, full records first (a few of the new
	 * ones shorter than what the old file held at their offsets). */
	for (uint64_t i = 61; i <= 85; i++)
		append_ok(&log, 2, i, i % 2 ? 300 : 40, 5);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(log.stats.segments_recycled, 2);
	cr_assert_eq(count_files("spare-", ".seg", NULL), 0);
	int reused = 0;
	ino_t seg_inos[16];
	int nseg = count_files("log-", ".seg", seg_inos);
	for (int k = 0; k < nseg && k < 16; k++)
		reused += seg_inos[k] == st1.st_ino || seg_inos[k] == st13.st_ino;
	cr_assert_eq(reused, 2, "both retired files hold new segments");
	stor_log_close(&log);

	open_ok(&log, &c);
	cr_assert_eq(stor_log_first_index(&log), 25);
	cr_assert_eq(stor_log_last_index(&log), 85);
	cr_assert_eq(stor_log_last_term(&log), 2);
	for (uint64_t i = 25; i <= 60; i++)
		check_rec(&log, i, 1, 300, 0);
	for (uint64_t i = 61; i <= 85; i++)
		check_rec(&log, i, 2, i % 2 ? 300 : 40, 5);
	stor_log_close(&log);
}

/* Past spare_segments the janitor deletes; with 0 it keeps none. Spares
 * left by an earlier run are handed to the janitor at open: zeroed again
 * under a new name, up to the limit, the rest freed. */
Test(storage, spares_are_bounded_and_adopted_at_open)
{
	struct stor_log_config c;
	struct stor_log log;
	open_with_60_records(&log, &c, 1);
	cr_assert_eq(stor_log_compact_prefix(&log, 1000), 0); /* retires 4 */
	cr_assert_eq(count_segment_files(), 1);
	wait_janitor(1);
	stor_log_close(&log);

	/* A junk spare beside the real one: one of the two is adopted. */
	char path[512];
	snprintf(path, sizeof path, "%s/spare-%020u.seg", DIR_, 99u);
	uint8_t junk[4096];
	memset(junk, 0xa5, sizeof junk);
	write_file(path, junk, sizeof junk);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 60);
	wait_spares_after(1, "spare-00000000000000000099.seg");
	DIR *d = opendir(DIR_);
	struct dirent *de;
	int seen = 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "spare-", 6) != 0)
			continue;
		seen++;
		cr_assert_gt(strcmp(de->d_name, "spare-00000000000000000099.seg"), 0,
			     "%s: adopted under a new name", de->d_name);
		cr_assert(all_zero_file(de->d_name, 4096), "%s is zeroed", de->d_name);
	}
	closedir(d);
	cr_assert_eq(seen, 1);
	stor_log_close(&log);

	c.spare_segments = 0;
	open_ok(&log, &c);
	wait_janitor(0); /* none kept: the spare is freed */
	for (uint64_t i = 61; i <= 90; i++)
		append_ok(&log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(log.stats.segments_recycled, 0);
	cr_assert_eq(stor_log_compact_prefix(&log, 1000), 0);
	wait_janitor(0);
	cr_assert_eq(count_segment_files(), 1);
	stor_log_close(&log);
}

/* A segment retired, rewritten from the same first index and retired again
 * while the janitor still works on the first file (truncations at the same
 * index after leader changes): the second file must not be listed as a
 * spare in the first one's place without being zeroed. Found in review; the
 * janitor's pause between zeroing and listing makes the window certain. */
Test(storage, a_segment_retired_twice_under_one_index_is_not_a_dirty_spare)
{
	need_zero_range();
	struct stor_log_config c;
	cfg_small(&c);
	c.spare_segments = 2;
	struct stor_log log;
	open_ok(&log, &c);
	log.fault.janitor_delay_ms = 300;
	for (uint64_t i = 1; i <= 24; i++)
		append_ok(&log, 1, i, 300, 0);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	/* 13 is the first record of the second segment, the last one */
	cr_assert_eq(stor_log_truncate_suffix(&log, 13), 0);
	for (uint64_t i = 13; i <= 24; i++)
		append_ok(&log, 2, i, 300, 1);
	cr_assert_eq(stor_log_sync_wait(&log), 0); /* a new file for 13.., full */
	cr_assert_eq(stor_log_truncate_suffix(&log, 13), 0);
	wait_janitor(2);
	assert_spares_zeroed();
	/* Reused (13.., 25.., then a new file for 37..), and recovered to
	 * exactly the new records. */
	for (uint64_t i = 13; i <= 40; i++)
		append_ok(&log, 3, i, 300, 2);
	cr_assert_eq(stor_log_sync_wait(&log), 0);
	cr_assert_eq(log.stats.segments_recycled, 2);
	stor_log_close(&log);
	open_ok(&log, &c);
	cr_assert_eq(stor_log_last_index(&log), 40);
	for (uint64_t i = 1; i <= 12; i++)
		check_rec(&log, i, 1, 300, 0);
	for (uint64_t i = 13; i <= 40; i++)
		check_rec(&log, i, 3, 300, 2);
	stor_log_close(&log);
}
