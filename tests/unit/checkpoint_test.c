/*
 * Unit tests of replica checkpoints (replicas/checkpoint.h): a round trip of
 * a state built by applying epochs (digest, positions, every account and
 * transfer, the tables slot for slot, and the same digest after applying
 * more), a checkpoint taken while the state keeps changing, the documented
 * layout read back by hand, a flipped bit in every region (and at a stride
 * through the whole file) rejected with its offset and the previous
 * checkpoint loaded, truncation, records that pass their CRC but break the
 * ledger's invariants, capacity and cluster mismatches refused, interrupted
 * checkpoints (abort, a process killed mid-write) ignored and cleaned up,
 * retention of the newest two, injected write and fdatasync errors.
 *
 * Each test works in its own mkdtemp directory under /tmp and removes it.
 * If the kernel has no io_uring the whole binary exits 77 (SKIP).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/le.h"
#include "common/prng.h"
#include "replicas/apply.h"
#include "replicas/checkpoint.h"
#include "replicas/store.h"
#include "storage/format.h"

#define CLUSTER	      0x6f72646f636b7074ull
#define CAP_ACCOUNTS  1024u
#define CAP_TRANSFERS 8192u
#define CHUNK	      4096u
#define ACCOUNTS      600u /* created by epochs 1-3 */
#define RECS	      200u /* records per epoch */
#define F_DNE	      WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS
#define F_CNE	      WIRE_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS

static char DIR_[64];
static char ERR[REP_CKPT_ERR_BYTES];
static struct rep_ckpt_writer W;
static const struct ledger_cfg CAPS = {.accounts_max = CAP_ACCOUNTS,
				       .transfers_max = CAP_TRANSFERS};

ReportHook(PRE_ALL)(ORDO_UNUSED struct criterion_test_set *set)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc == -ENOSYS || rc == -EPERM) {
		fprintf(stderr, "checkpoint_test: io_uring unavailable (%s); skipping\n",
			strerror(-rc));
		exit(77);
	}
	if (rc == 0)
		io_uring_queue_exit(&ring);
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
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void writer_open_cfg(uint32_t queue_depth, uint32_t keep)
{
	struct rep_ckpt_config c;
	rep_ckpt_config_default(&c, DIR_, CLUSTER, &CAPS);
	c.chunk_bytes = CHUNK;
	c.queue_depth = queue_depth;
	c.keep = keep;
	int rc = rep_ckpt_writer_init(&W, &c, ERR, sizeof ERR);
	cr_assert_eq(rc, 0, "writer init: %d %s", rc, ERR);
}

static void setup(void)
{
	strcpy(DIR_, "/tmp/ordo-ckpt-test.XXXXXX");
	cr_assert_not_null(mkdtemp(DIR_));
	writer_open_cfg(2, REP_CKPT_KEEP_DEFAULT);
}

static void teardown(void)
{
	rep_ckpt_writer_free(&W);
	rm_tree(DIR_);
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

/* ---- a deterministic workload: epoch e depends only on e ---- */

static uint64_t account_id(uint64_t i)
{
	return 1000 + i * 7919;
}

static uint32_t account_flags(uint64_t i)
{
	return i % 5 == 0 ? F_DNE : i % 7 == 0 ? F_CNE : 0;
}

/* Epochs 1-3 create the accounts; later ones are mostly transfers (some
 * reusing an earlier id, so EXISTS and EXISTS_WITH_DIFFERENT_FIELDS occur),
 * with lookups, OPAQUE and repeated creates mixed in. */
static uint32_t make_epoch(uint8_t *buf, uint64_t e, uint64_t first_position)
{
	struct ordo_prng r;
	ordo_prng_seed(&r, 0x5eed0000 + e);
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	for (uint32_t j = 0; j < RECS; j++) {
		uint8_t p[32];
		struct wire_epoch_rec rec = {
		    .client_id = 7, .request_number = e * 1000 + j, .session = 1, .payload = p};
		uint64_t u = ordo_prng_below(&r, 100);
		if (e <= 3 || u >= 96) {
			uint64_t i = e <= 3 ? (e - 1) * RECS + j : ordo_prng_below(&r, ACCOUNTS);
			rec.op = WIRE_OP_CREATE_ACCOUNT;
			rec.size = 16;
			ordo_st64(p, account_id(i));
			ordo_st32(p + 8, account_flags(i));
			ordo_st32(p + 12, 0);
		} else if (u < 85) {
			uint64_t d = ordo_prng_below(&r, ACCOUNTS);
			uint64_t c = ordo_prng_below(&r, ACCOUNTS - 1);
			c += c >= d;
			uint64_t id = u < 5 ? (e - 1) * 1000 + j : e * 1000 + j;
			rec.op = WIRE_OP_TRANSFER;
			rec.size = 32;
			ordo_st64(p, id);
			ordo_st64(p + 8, account_id(d));
			ordo_st64(p + 16, account_id(c));
			ordo_st64(p + 24, 1 + ordo_prng_below(&r, 1000));
		} else if (u < 92) {
			rec.op = WIRE_OP_LOOKUP;
			rec.size = 16;
			ordo_st64(p, account_id(ordo_prng_below(&r, ACCOUNTS + 10)));
			ordo_st64(p + 8, 0);
		} else {
			rec.op = WIRE_OP_OPAQUE;
			rec.size = 13;
			memset(p, (int)(e + j), 13);
		}
		off += wire_epoch_rec_encode(buf + off, &rec);
	}
	struct wire_epoch_hdr h = {.epoch = e,
				   .first_position = first_position,
				   .timestamp_ns = e,
				   .count = RECS,
				   .bytes = off};
	wire_epoch_hdr_encode(buf, &h);
	return off;
}

static void drive(struct rep_state *s, uint64_t to_epoch)
{
	static uint8_t buf[ORDO_EPOCH_HDR_BYTES + RECS * (ORDO_EPOCH_REC_BYTES + 32)];
	while (s->next_epoch <= to_epoch) {
		uint32_t len = make_epoch(buf, s->next_epoch, s->applied_position + 1);
		cr_assert(rep_state_apply_epoch(s, buf, len, NULL, NULL), "epoch %" PRIu64,
			  s->next_epoch);
	}
}

static void state_at(struct rep_state *s, uint64_t epoch)
{
	cr_assert_eq(rep_state_init(s, &CAPS), 0);
	drive(s, epoch);
}

/* Everything a replica holds, equal; the tables slot for slot. */
static void state_eq(const struct rep_state *a, struct rep_state *b)
{
	cr_assert_eq(memcmp(a->digest, b->digest, 16), 0,
		     "digest (positions %" PRIu64 " and %" PRIu64 ")", a->applied_position,
		     b->applied_position);
	cr_assert_eq(a->applied_position, b->applied_position);
	cr_assert_eq(a->applied_epoch, b->applied_epoch);
	cr_assert_eq(a->next_epoch, b->next_epoch);
	cr_assert_eq(a->requests_applied, b->requests_applied);
	const struct ledger *la = &a->ledger;
	struct ledger *lb = &b->ledger;
	cr_assert_eq(la->accounts_count, lb->accounts_count);
	cr_assert_eq(la->transfers_count, lb->transfers_count);
	cr_assert_eq(la->accounts_cap, lb->accounts_cap);
	cr_assert_eq(la->transfers_cap, lb->transfers_cap);
	for (uint64_t i = 0; i < la->accounts_cap; i++) {
		const struct ledger_account *x = &la->accounts[i];
		if (x->id == 0)
			continue;
		const struct ledger_account *y = ledger_account_find(lb, x->id);
		cr_assert_not_null(y, "account %" PRIu64, x->id);
		cr_assert(x->debits_posted == y->debits_posted &&
			      x->credits_posted == y->credits_posted && x->flags == y->flags,
			  "account %" PRIu64, x->id);
	}
	for (uint64_t i = 0; i < la->transfers_cap; i++) {
		const struct ledger_transfer *t = &la->transfers[i];
		if (t->id == 0)
			continue;
		uint8_t p[32], data[32];
		ordo_st64(p, t->id);
		ordo_st64(p + 8, t->debit_account_id);
		ordo_st64(p + 16, t->credit_account_id);
		ordo_st64(p + 24, t->amount);
		/* The ledger's own lookup of a transfer: EXISTS, which changes nothing. */
		cr_assert_eq(ledger_apply(lb, WIRE_OP_TRANSFER, p, 32, data), WIRE_R_EXISTS,
			     "transfer %" PRIu64, t->id);
	}
	cr_assert_eq(memcmp(la->accounts, lb->accounts, la->accounts_cap * 32), 0, "accounts");
	cr_assert_eq(memcmp(la->transfers, lb->transfers, la->transfers_cap * 32), 0, "transfers");
}

/* ---- files ---- */

static void path_of(char *out, size_t len, uint64_t position, bool tmp)
{
	snprintf(out, len, "%s/ckpt-%020" PRIu64 ".ordo%s", DIR_, position, tmp ? ".tmp" : "");
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(b, 1, len, f), len);
	fclose(f);
}

static uint32_t count_files(const char *suffix)
{
	DIR *d = opendir(DIR_);
	uint32_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), s = strlen(suffix);
		n += strncmp(de->d_name, "ckpt-", 5) == 0 && l > s &&
		     strcmp(de->d_name + l - s, suffix) == 0;
	}
	closedir(d);
	return n;
}

static uint64_t checkpoint(const struct rep_state *s)
{
	int rc = rep_ckpt_begin(&W, s);
	cr_assert_eq(rc, 0, "begin: %d %s", rc, W.err);
	rc = rep_ckpt_wait(&W);
	cr_assert_eq(rc, REP_CKPT_DONE, "wait: %d %s", rc, W.err);
	cr_assert_eq(W.durable_position, s->applied_position);
	return s->applied_position;
}

/* The layout of checkpoint.h, read by hand. */
struct layout {
	uint64_t accounts, transfers, position, body_end, table_off, trailer_off, size;
	uint32_t chunk, chunks, chunks_accounts;
};

static struct layout layout_of(const uint8_t *b, size_t len)
{
	struct layout l;
	cr_assert_geq(len, 128);
	cr_assert_eq(ordo_ld32(b), 0x504B434Fu);
	cr_assert_eq(ordo_ld16(b + 4), 1);
	cr_assert_eq(ordo_ld16(b + 6), 128);
	cr_assert_eq(ordo_ld64(b + 8), CLUSTER);
	l.position = ordo_ld64(b + 16);
	l.accounts = ordo_ld64(b + 64);
	l.transfers = ordo_ld64(b + 72);
	cr_assert_eq(ordo_ld64(b + 80), CAP_ACCOUNTS);
	cr_assert_eq(ordo_ld64(b + 88), CAP_TRANSFERS);
	l.chunk = ordo_ld32(b + 96);
	l.chunks = ordo_ld32(b + 100);
	l.chunks_accounts = (uint32_t)((l.accounts * 32 + l.chunk - 1) / l.chunk);
	cr_assert_eq(l.chunks, l.chunks_accounts + (l.transfers * 32 + l.chunk - 1) / l.chunk);
	l.body_end = 128 + 32 * (l.accounts + l.transfers);
	l.table_off = l.body_end;
	l.trailer_off = l.table_off + ((4ull * l.chunks + 7) & ~7ull);
	l.size = l.trailer_off + 32;
	cr_assert_eq(l.size, len);
	return l;
}

/* Chunk k's start and length, from the layout. */
static void span(const struct layout *l, uint32_t k, uint64_t *start, uint64_t *n)
{
	uint64_t base = k < l->chunks_accounts ? 128 : 128 + 32 * l->accounts;
	uint64_t end = k < l->chunks_accounts ? 128 + 32 * l->accounts : l->body_end;
	uint32_t j = k < l->chunks_accounts ? k : k - l->chunks_accounts;
	*start = base + (uint64_t)j * l->chunk;
	*n = (*start + l->chunk < end ? *start + l->chunk : end) - *start;
}

/* Recomputes every CRC of an image after the test changed its records. */
static void reseal(uint8_t *b, size_t len)
{
	struct layout l = layout_of(b, len);
	for (uint32_t k = 0; k < l.chunks; k++) {
		uint64_t s, n;
		span(&l, k, &s, &n);
		ordo_st32(b + l.table_off + 4ull * k, ordo_crc32c(b + s, n));
	}
	ordo_st32(b + 124, ordo_crc32c(b, 124));
	uint8_t *tr = b + l.trailer_off;
	uint8_t *tmp = malloc(128 + (l.trailer_off - l.table_off));
	memcpy(tmp, b, 128);
	memcpy(tmp + 128, b + l.table_off, l.trailer_off - l.table_off);
	ordo_st32(tr + 24, ordo_crc32c(tmp, 128 + (l.trailer_off - l.table_off)));
	free(tmp);
	ordo_st32(tr + 28, ordo_crc32c(tr, 28));
}

/* The offset a damaged byte must be reported at. */
static uint64_t region_of(const struct layout *l, uint64_t byte)
{
	if (byte < 128)
		return 0;
	if (byte < l->body_end) {
		for (uint32_t k = 0; k < l->chunks; k++) {
			uint64_t s, n;
			span(l, k, &s, &n);
			if (byte >= s && byte < s + n)
				return s;
		}
		cr_assert_fail("byte %" PRIu64 " in no chunk", byte);
	}
	return byte < l->trailer_off ? l->table_off : l->trailer_off;
}

static void load_ok(struct rep_state *s, struct rep_ckpt_load_info *info)
{
	int rc = rep_ckpt_load_newest(DIR_, CLUSTER, &CAPS, s, info, ERR, sizeof ERR);
	cr_assert_eq(rc, 0, "load: %d %s", rc, ERR);
}

/* Loads expecting the newest (at bad_pos) rejected at offset and the state
 * of ref loaded instead. */
static void load_falls_back(const struct rep_state *ref, uint64_t bad_pos, uint64_t offset)
{
	struct rep_state s;
	struct rep_ckpt_load_info info;
	load_ok(&s, &info);
	cr_assert_eq(info.rejected, 1, "rejected %" PRIu32 ": %s", info.rejected,
		     info.rejected_msg);
	cr_assert_eq(info.position, ref->applied_position);
	char want[128];
	snprintf(want, sizeof want, "ckpt-%020" PRIu64 ".ordo: offset %" PRIu64 ":", bad_pos,
		 offset);
	cr_assert_not_null(strstr(info.rejected_msg, want), "want \"%s\" in \"%s\"", want,
			   info.rejected_msg);
	cr_assert_eq(s.applied_position, ref->applied_position);
	cr_assert_eq(memcmp(s.digest, ref->digest, 16), 0);
	cr_assert_eq(s.ledger.accounts_count, ref->ledger.accounts_count);
	cr_assert_eq(s.ledger.transfers_count, ref->ledger.transfers_count);
	rep_state_free(&s);
}

/* ---- tests ---- */

Test(checkpoint, round_trip)
{
	struct rep_state a;
	state_at(&a, 26);
	cr_assert_gt(a.ledger.transfers_count, 3000, "%" PRIu64, a.ledger.transfers_count);
	cr_assert_eq(a.ledger.accounts_count, ACCOUNTS);
	uint64_t pos = checkpoint(&a);

	char path[256];
	path_of(path, sizeof path, pos, false);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq((uint64_t)st.st_size,
		     rep_ckpt_file_bytes(ACCOUNTS, a.ledger.transfers_count, CHUNK));
	cr_assert_eq(count_files(".tmp"), 0);

	struct rep_state b;
	struct rep_ckpt_load_info info;
	load_ok(&b, &info);
	cr_assert_eq(info.rejected, 0);
	cr_assert_eq(info.position, pos);
	cr_assert_str_eq(info.path, path);
	cr_assert_eq(info.file_bytes, (uint64_t)st.st_size);
	state_eq(&a, &b);

	/* The loaded state goes on exactly as the original. */
	drive(&a, 32);
	drive(&b, 32);
	state_eq(&a, &b);
	rep_state_free(&a);
	rep_state_free(&b);
}

/* ledger.c's hash (Murmur3 fmix64), here only to choose colliding ids. */
static uint64_t fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Ids whose home is the table's last slot, so they wrap around to slot 0. */
static uint32_t ids_homed_last(uint64_t cap, uint64_t from, uint64_t *ids, uint32_t n)
{
	uint32_t k = 0;
	for (uint64_t id = from; k < n; id++)
		if ((fmix64(id) & (cap - 1)) == cap - 1)
			ids[k++] = id;
	return k;
}

Test(checkpoint, wrapping_clusters_rebuilt_slot_for_slot)
{
	struct rep_state a, b;
	state_at(&a, 0);
	struct ledger *l = &a.ledger;
	uint64_t acc[4], xfr[4];
	ids_homed_last(l->accounts_cap, 1, acc, 4);
	ids_homed_last(l->transfers_cap, 1, xfr, 4);
	uint8_t p[32], data[32];
	for (int i = 0; i < 4; i++) {
		ordo_st64(p, acc[i]);
		ordo_st64(p + 8, 0);
		cr_assert_eq(ledger_apply(l, WIRE_OP_CREATE_ACCOUNT, p, 16, data), WIRE_R_OK);
	}
	for (int i = 0; i < 4; i++) {
		ordo_st64(p, xfr[i]);
		ordo_st64(p + 8, acc[(i + 2) % 4]);
		ordo_st64(p + 16, acc[(i + 1) % 4]);
		ordo_st64(p + 24, 100 + (uint64_t)i);
		cr_assert_eq(ledger_apply(l, WIRE_OP_TRANSFER, p, 32, data), WIRE_R_OK);
	}
	/* The clusters wrap: the last slot and the first ones are taken. */
	cr_assert(l->accounts[l->accounts_cap - 1].id != 0 && l->accounts[0].id != 0);
	cr_assert(l->transfers[l->transfers_cap - 1].id != 0 && l->transfers[0].id != 0);
	checkpoint(&a);
	load_ok(&b, NULL);
	state_eq(&a, &b);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, default_config)
{
	/* 1 MiB chunks, 4 in flight: each region is one short chunk here. */
	rep_ckpt_writer_free(&W);
	struct rep_ckpt_config c;
	rep_ckpt_config_default(&c, DIR_, CLUSTER, &CAPS);
	cr_assert_eq(c.chunk_bytes, 1u << 20);
	cr_assert_eq(c.keep, 2);
	cr_assert_eq(rep_ckpt_writer_init(&W, &c, ERR, sizeof ERR), 0, "%s", ERR);
	cr_assert_geq(rep_ckpt_writer_bytes(&c), (CAP_ACCOUNTS + CAP_TRANSFERS) * 32);
	cr_assert_eq(rep_ckpt_poll(&W), REP_CKPT_IDLE);
	cr_assert_eq(rep_ckpt_wait(&W), REP_CKPT_IDLE);
	cr_assert_geq(rep_ckpt_fd(&W), 0);
	struct rep_state a, b;
	state_at(&a, 9);
	checkpoint(&a);
	cr_assert_eq(
	    W.stats.last_file_bytes,
	    rep_ckpt_file_bytes(a.ledger.accounts_count, a.ledger.transfers_count, 1u << 20));
	cr_assert_eq(W.stats.begun, 1);
	cr_assert_eq(W.stats.durable, 1);
	cr_assert_eq(W.stats.write_bytes, W.stats.last_file_bytes);
	load_ok(&b, NULL);
	state_eq(&a, &b);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, format_as_documented)
{
	struct rep_state a;
	state_at(&a, 8);
	uint64_t pos = checkpoint(&a);
	char path[256];
	path_of(path, sizeof path, pos, false);
	size_t len;
	uint8_t *b = slurp(path, &len);
	struct layout l = layout_of(b, len);
	cr_assert_eq(l.position, a.applied_position);
	cr_assert_eq(ordo_ld64(b + 24), a.applied_epoch);
	cr_assert_eq(ordo_ld64(b + 32), a.next_epoch);
	cr_assert_eq(ordo_ld64(b + 40), a.requests_applied);
	cr_assert_eq(memcmp(b + 48, a.digest, 16), 0);
	cr_assert_eq(l.accounts, a.ledger.accounts_count);
	cr_assert_eq(l.transfers, a.ledger.transfers_count);
	cr_assert_eq(l.chunk, CHUNK);
	for (int i = 104; i < 124; i++)
		cr_assert_eq(b[i], 0);
	cr_assert_eq(ordo_ld32(b + 124), ordo_crc32c(b, 124));
	/* Every record is a live account or transfer with the same fields. */
	for (uint64_t i = 0; i < l.accounts; i++) {
		const uint8_t *p = b + 128 + 32 * i;
		const struct ledger_account *x = ledger_account_find(&a.ledger, ordo_ld64(p));
		cr_assert_not_null(x);
		cr_assert_eq(ordo_ld64(p + 8), x->debits_posted);
		cr_assert_eq(ordo_ld64(p + 16), x->credits_posted);
		cr_assert_eq(ordo_ld32(p + 24), x->flags);
		cr_assert_eq(ordo_ld32(p + 28), 0);
	}
	for (uint64_t i = 0; i < l.transfers; i++) {
		uint8_t data[32];
		cr_assert_eq(ledger_apply(&a.ledger, WIRE_OP_TRANSFER,
					  b + 128 + 32 * (l.accounts + i), 32, data),
			     WIRE_R_EXISTS);
	}
	for (uint32_t k = 0; k < l.chunks; k++) {
		uint64_t s, n;
		span(&l, k, &s, &n);
		cr_assert_eq(ordo_ld32(b + l.table_off + 4ull * k), ordo_crc32c(b + s, n));
	}
	const uint8_t *tr = b + l.trailer_off;
	cr_assert_eq(ordo_ld32(tr), 0x544B434Fu);
	cr_assert_eq(ordo_ld32(tr + 4), l.chunks);
	cr_assert_eq(ordo_ld64(tr + 8), l.position);
	cr_assert_eq(ordo_ld64(tr + 16), len);
	cr_assert_eq(ordo_ld32(tr + 28), ordo_crc32c(tr, 28));
	uint32_t st = ordo_crc32c_init();
	st = ordo_crc32c_update(st, b, 128);
	st = ordo_crc32c_update(st, b + l.table_off, l.trailer_off - l.table_off);
	cr_assert_eq(ordo_ld32(tr + 24), ordo_crc32c_final(st));
	free(b);
	rep_state_free(&a);
}

Test(checkpoint, empty_state)
{
	struct rep_state a, b;
	state_at(&a, 0);
	checkpoint(&a);
	load_ok(&b, NULL);
	state_eq(&a, &b);
	drive(&a, 5);
	drive(&b, 5);
	state_eq(&a, &b);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, taken_while_applying)
{
	struct rep_state live, ref;
	state_at(&live, 12);
	state_at(&ref, 12);
	cr_assert_eq(rep_ckpt_begin(&W, &live), 0, "%s", W.err);
	uint32_t busy = 0;
	int rc;
	/* Keep applying between polls, as the node's loop would. */
	while ((rc = rep_ckpt_poll(&W)) == REP_CKPT_BUSY) {
		busy++;
		if (live.next_epoch <= 40)
			drive(&live, live.next_epoch);
		else
			usleep(100);
	}
	cr_assert_eq(rc, REP_CKPT_DONE, "%d %s", rc, W.err);
	cr_assert_gt(busy, 0);
	cr_assert_gt(live.applied_epoch, 12);
	cr_assert_eq(rep_ckpt_poll(&W), REP_CKPT_IDLE);

	struct rep_state b;
	load_ok(&b, NULL);
	state_eq(&ref, &b); /* the state at begin, not what came after */
	drive(&b, live.applied_epoch);
	state_eq(&live, &b);
	rep_state_free(&live);
	rep_state_free(&ref);
	rep_state_free(&b);
}

Test(checkpoint, busy_and_mismatched_state)
{
	struct rep_state a, other;
	state_at(&a, 5);
	cr_assert_eq(rep_ckpt_begin(&W, &a), 0);
	cr_assert_eq(rep_ckpt_begin(&W, &a), -EBUSY);
	cr_assert(rep_ckpt_busy(&W));
	cr_assert_eq(rep_ckpt_wait(&W), REP_CKPT_DONE, "%s", W.err);
	cr_assert(!rep_ckpt_busy(&W));
	struct ledger_cfg c = {.accounts_max = CAP_ACCOUNTS * 2, .transfers_max = CAP_TRANSFERS};
	cr_assert_eq(rep_state_init(&other, &c), 0);
	cr_assert_eq(rep_ckpt_begin(&W, &other), -EINVAL);
	cr_assert_not_null(strstr(W.err, "accounts_max"), "%s", W.err);
	rep_state_free(&other);
	rep_state_free(&a);
}

/* Two checkpoints: A (epoch 10), then B (epoch 20); returns B's image. */
static uint8_t *two_checkpoints(struct rep_state *ref_a, uint64_t *pos_b, char *path_b,
				size_t path_len, size_t *len)
{
	state_at(ref_a, 10);
	checkpoint(ref_a);
	struct rep_state b;
	state_at(&b, 20);
	*pos_b = checkpoint(&b);
	rep_state_free(&b);
	path_of(path_b, path_len, *pos_b, false);
	return slurp(path_b, len);
}

Test(checkpoint, bit_flip_in_each_region)
{
	struct rep_state a;
	uint64_t pos_b;
	char path_b[256];
	size_t len;
	uint8_t *orig = two_checkpoints(&a, &pos_b, path_b, sizeof path_b, &len);
	struct layout l = layout_of(orig, len);
	cr_assert_gt(l.chunks_accounts, 2);
	cr_assert_gt(l.chunks - l.chunks_accounts, 2);
	uint64_t tchunk2 = 128 + 32 * l.accounts + 2ull * CHUNK;
	struct {
		const char *region;
		uint64_t byte;
		uint64_t offset; /* reported */
	} cases[] = {
	    {"header magic", 1, 0},
	    {"header position", 20, 0},
	    {"header crc", 126, 0},
	    {"accounts chunk 0", 128 + 5, 128},
	    {"accounts chunk 1", 128 + CHUNK + 100, 128 + CHUNK},
	    {"last accounts chunk", 128 + 32 * l.accounts - 1,
	     128 + (uint64_t)(l.chunks_accounts - 1) * CHUNK},
	    {"transfers chunk 0", 128 + 32 * l.accounts, 128 + 32 * l.accounts},
	    {"transfers chunk 2", tchunk2 + 77, tchunk2},
	    {"last transfers chunk", l.body_end - 3,
	     128 + 32 * l.accounts + (uint64_t)(l.chunks - l.chunks_accounts - 1) * CHUNK},
	    {"CRC table", l.table_off + 9, l.table_off},
	    {"trailer magic", l.trailer_off, l.trailer_off},
	    {"trailer table_crc", l.trailer_off + 25, l.trailer_off},
	    {"trailer crc", l.trailer_off + 31, l.trailer_off},
	};
	uint8_t *b = malloc(len);
	for (size_t i = 0; i < ORDO_ARRAY_LEN(cases); i++) {
		cr_assert_eq(region_of(&l, cases[i].byte), cases[i].offset, "%s", cases[i].region);
		memcpy(b, orig, len);
		b[cases[i].byte] ^= (uint8_t)(1u << (i % 8));
		spit(path_b, b, len);
		load_falls_back(&a, pos_b, cases[i].offset);
	}
	/* Intact again: B loads. */
	spit(path_b, orig, len);
	struct rep_state s;
	struct rep_ckpt_load_info info;
	load_ok(&s, &info);
	cr_assert_eq(info.position, pos_b);
	cr_assert_eq(info.rejected, 0);
	rep_state_free(&s);
	free(b);
	free(orig);
	rep_state_free(&a);
}

Test(checkpoint, bit_flip_anywhere)
{
	struct rep_state a;
	uint64_t pos_b;
	char path_b[256];
	size_t len;
	uint8_t *orig = two_checkpoints(&a, &pos_b, path_b, sizeof path_b, &len);
	struct layout l = layout_of(orig, len);
	uint8_t *b = malloc(len);
	uint32_t n = 0;
	for (uint64_t byte = 0; byte < len; byte += 61, n++) {
		memcpy(b, orig, len);
		b[byte] ^= (uint8_t)(1u << (byte % 8));
		spit(path_b, b, len);
		load_falls_back(&a, pos_b, region_of(&l, byte));
	}
	cr_assert_gt(n, 1000);
	free(b);
	free(orig);
	rep_state_free(&a);
}

Test(checkpoint, truncated_or_extended)
{
	struct rep_state a;
	uint64_t pos_b;
	char path_b[256];
	size_t len;
	uint8_t *orig = two_checkpoints(&a, &pos_b, path_b, sizeof path_b, &len);
	struct layout l = layout_of(orig, len);
	uint64_t sizes[] = {
	    0, 1, 64, 127, 128, 129, 128 + CHUNK, l.body_end, l.trailer_off, len - 33, len - 1};
	for (size_t i = 0; i < ORDO_ARRAY_LEN(sizes); i++) {
		spit(path_b, orig, sizes[i]);
		load_falls_back(&a, pos_b, sizes[i]);
	}
	uint8_t *longer = calloc(1, len + 1);
	memcpy(longer, orig, len);
	spit(path_b, longer, len + 1);
	load_falls_back(&a, pos_b, len);
	free(longer);
	free(orig);
	rep_state_free(&a);
}

Test(checkpoint, records_that_break_invariants)
{
	struct rep_state a;
	uint64_t pos_b;
	char path_b[256];
	size_t len;
	uint8_t *orig = two_checkpoints(&a, &pos_b, path_b, sizeof path_b, &len);
	struct layout l = layout_of(orig, len);
	uint8_t *b = malloc(len);
	uint64_t t0 = 128 + 32 * l.accounts;

	/* A flagged account past its limit (the ledger would assert on it later). */
	memcpy(b, orig, len);
	ordo_st64(b + 128 + 8, 10);
	ordo_st64(b + 128 + 16, 9);
	ordo_st32(b + 128 + 24, F_DNE);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, 128);

	/* An account twice. */
	memcpy(b, orig, len);
	memcpy(b + 128 + 32 * 7, b + 128, 32);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, 128 + 32 * 7);

	/* Both account flags. */
	memcpy(b, orig, len);
	ordo_st32(b + 128 + 32 * 3 + 24, F_DNE | F_CNE);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, 128 + 32 * 3);

	/* A transfer of zero, one to itself, one with id 0. */
	memcpy(b, orig, len);
	ordo_st64(b + t0 + 32 * 5 + 24, 0);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, t0 + 32 * 5);
	memcpy(b, orig, len);
	memcpy(b + t0 + 32 * 9 + 16, b + t0 + 32 * 9 + 8, 8);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, t0 + 32 * 9);
	memcpy(b, orig, len);
	ordo_st64(b + t0 + 32 * 11, 0);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, t0 + 32 * 11);

	/* A transfer twice. */
	memcpy(b, orig, len);
	memcpy(b + t0 + 32 * 20, b + t0, 32);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, t0 + 32 * 20);

	/* The position the name does not say (the header CRC made right). */
	memcpy(b, orig, len);
	ordo_st64(b + 16, pos_b + 1);
	ordo_st64(b + l.trailer_off + 8, pos_b + 1);
	reseal(b, len);
	spit(path_b, b, len);
	load_falls_back(&a, pos_b, 16);
	free(b);
	free(orig);
	rep_state_free(&a);
}

Test(checkpoint, every_checkpoint_bad)
{
	struct rep_state a, s;
	state_at(&a, 6);
	uint64_t pos = checkpoint(&a);
	char path[256];
	path_of(path, sizeof path, pos, false);
	size_t len;
	uint8_t *b = slurp(path, &len);
	b[len / 2] ^= 0x10;
	spit(path, b, len);
	int rc = rep_ckpt_load_newest(DIR_, CLUSTER, &CAPS, &s, NULL, ERR, sizeof ERR);
	cr_assert_eq(rc, -EUCLEAN, "%d %s", rc, ERR);
	cr_assert_not_null(strstr(ERR, path), "%s", ERR);
	cr_assert_not_null(strstr(ERR, "fails its CRC"), "%s", ERR);
	/* The single-file form says the same. */
	rc = rep_ckpt_load_file(path, CLUSTER, &CAPS, &s, ERR, sizeof ERR);
	cr_assert_eq(rc, -EUCLEAN, "%d %s", rc, ERR);
	free(b);
	rep_state_free(&a);
}

Test(checkpoint, none)
{
	struct rep_state s;
	struct rep_ckpt_load_info info;
	int rc = rep_ckpt_load_newest(DIR_, CLUSTER, &CAPS, &s, &info, ERR, sizeof ERR);
	cr_assert_eq(rc, -ENOENT, "%d %s", rc, ERR);
	cr_assert_eq(info.candidates, 0);
	rc = rep_ckpt_load_newest("/nonexistent/ordo", CLUSTER, &CAPS, &s, &info, ERR, sizeof ERR);
	cr_assert_eq(rc, -ENOENT);
	cr_assert_not_null(strstr(ERR, "/nonexistent/ordo"), "%s", ERR);
}

Test(checkpoint, capacity_or_cluster_mismatch_refused)
{
	struct rep_state a, s;
	state_at(&a, 6);
	uint64_t pos = checkpoint(&a);
	char path[256];
	path_of(path, sizeof path, pos, false);

	struct ledger_cfg more = {.accounts_max = CAP_ACCOUNTS + 1, .transfers_max = CAP_TRANSFERS};
	int rc = rep_ckpt_load_newest(DIR_, CLUSTER, &more, &s, NULL, ERR, sizeof ERR);
	cr_assert_eq(rc, -EINVAL, "%d %s", rc, ERR);
	cr_assert_not_null(strstr(ERR, path), "%s", ERR);
	cr_assert_not_null(strstr(ERR, "accounts_max 1024"), "%s", ERR);
	cr_assert_not_null(strstr(ERR, "cluster file"), "%s", ERR);

	struct ledger_cfg fewer = {.accounts_max = CAP_ACCOUNTS, .transfers_max = 4096};
	rc = rep_ckpt_load_newest(DIR_, CLUSTER, &fewer, &s, NULL, ERR, sizeof ERR);
	cr_assert_eq(rc, -EINVAL, "%d %s", rc, ERR);
	cr_assert_not_null(strstr(ERR, "transfers_max 8192"), "%s", ERR);

	rc = rep_ckpt_load_newest(DIR_, CLUSTER + 1, &CAPS, &s, NULL, ERR, sizeof ERR);
	cr_assert_eq(rc, -EINVAL, "%d %s", rc, ERR);
	cr_assert_not_null(strstr(ERR, "cluster_id"), "%s", ERR);

	/* A refused newest one is not skipped for an older one. */
	struct rep_state b;
	state_at(&b, 9);
	checkpoint(&b);
	rc = rep_ckpt_load_newest(DIR_, CLUSTER, &more, &s, NULL, ERR, sizeof ERR);
	cr_assert_eq(rc, -EINVAL);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, aborted_checkpoint_leaves_nothing)
{
	struct rep_state a, b;
	state_at(&a, 6);
	uint64_t pos_a = checkpoint(&a);
	state_at(&b, 14);
	cr_assert_eq(rep_ckpt_begin(&W, &b), 0);
	char tmp[256];
	path_of(tmp, sizeof tmp, b.applied_position, true);
	cr_assert(exists(tmp));
	rep_ckpt_abort(&W);
	cr_assert(!exists(tmp));
	cr_assert_eq(count_files(".ordo"), 1);
	cr_assert_eq(W.stats.failed, 1);
	struct rep_state s;
	struct rep_ckpt_load_info info;
	load_ok(&s, &info);
	cr_assert_eq(info.position, pos_a);
	state_eq(&a, &s);
	rep_state_free(&s);
	/* The writer goes on. */
	checkpoint(&b);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, killed_mid_write_ignored_and_cleaned)
{
	struct rep_state a, b;
	state_at(&a, 6);
	uint64_t pos_a = checkpoint(&a);
	state_at(&b, 30);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* A replica killed during a checkpoint: its own writer, one poll. */
		struct rep_ckpt_writer cw;
		struct rep_ckpt_config c;
		rep_ckpt_config_default(&c, DIR_, CLUSTER, &CAPS);
		c.chunk_bytes = CHUNK;
		c.queue_depth = 2;
		if (rep_ckpt_writer_init(&cw, &c, NULL, 0) != 0 || rep_ckpt_begin(&cw, &b) != 0)
			_exit(1);
		if (rep_ckpt_poll(&cw) < 0)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
	char tmp[256], fin[256];
	path_of(tmp, sizeof tmp, b.applied_position, true);
	path_of(fin, sizeof fin, b.applied_position, false);
	cr_assert(exists(tmp));
	cr_assert(!exists(fin));

	/* A stale temp of a complete checkpoint, never renamed, too. */
	char tmp2[256];
	path_of(tmp2, sizeof tmp2, b.applied_position + 1000, true);
	char src[256];
	path_of(src, sizeof src, pos_a, false);
	size_t len;
	uint8_t *img = slurp(src, &len);
	spit(tmp2, img, len);
	free(img);

	struct rep_state s;
	struct rep_ckpt_load_info info;
	load_ok(&s, &info);
	cr_assert_eq(info.position, pos_a);
	cr_assert_eq(info.temps_seen, 2);
	cr_assert_eq(info.rejected, 0);
	state_eq(&a, &s);
	rep_state_free(&s);
	cr_assert(exists(tmp)); /* loading does not delete */

	/* A new writer cleans them up. */
	rep_ckpt_writer_free(&W);
	writer_open_cfg(2, REP_CKPT_KEEP_DEFAULT);
	cr_assert_eq(W.stats.temps_removed, 2);
	cr_assert(!exists(tmp));
	cr_assert(!exists(tmp2));
	cr_assert_eq(count_files(".tmp"), 0);
	checkpoint(&b);
	load_ok(&s, &info);
	state_eq(&b, &s);
	rep_state_free(&s);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, keeps_newest_two)
{
	struct rep_state s;
	state_at(&s, 0);
	uint64_t pos[5];
	for (int i = 0; i < 5; i++) {
		drive(&s, 4 + 4 * (uint64_t)i);
		if (i == 4) {
			/* One newer than the one about to be written: a file the last
			 * recovery rejected. It goes too. */
			char bogus[256];
			path_of(bogus, sizeof bogus, s.applied_position + 5, false);
			spit(bogus, (const uint8_t *)"junk", 4);
		}
		pos[i] = checkpoint(&s);
		char p[256];
		path_of(p, sizeof p, pos[i], false);
		cr_assert(exists(p));
		if (i > 0) {
			path_of(p, sizeof p, pos[i - 1], false);
			cr_assert(exists(p));
		}
		cr_assert_eq(count_files(".ordo"), i == 0 ? 1 : 2, "after %d", i);
	}
	cr_assert_eq(W.stats.removed, 4);
	cr_assert_eq(W.stats.remove_errors, 0);
	rep_state_free(&s);

	/* keep = 1 keeps only the newest. */
	rep_ckpt_writer_free(&W);
	writer_open_cfg(4, 1);
	state_at(&s, 22);
	checkpoint(&s);
	cr_assert_eq(count_files(".ordo"), 1);
	rep_state_free(&s);
}

Test(checkpoint, write_error_abandons)
{
	struct rep_state a, b;
	state_at(&a, 6);
	uint64_t pos_a = checkpoint(&a);
	state_at(&b, 20);
	char tmp[256], fin[256];
	path_of(tmp, sizeof tmp, b.applied_position, true);
	path_of(fin, sizeof fin, b.applied_position, false);

	W.fault = (struct rep_ckpt_fault){.armed = true, .write_armed = true, .write_after = 3};
	cr_assert_eq(rep_ckpt_begin(&W, &b), 0);
	int rc = rep_ckpt_wait(&W);
	cr_assert_eq(rc, -EIO, "%d %s", rc, W.err);
	cr_assert_not_null(strstr(W.err, tmp), "%s", W.err);
	cr_assert_not_null(strstr(W.err, "at offset"), "%s", W.err);
	cr_assert(!exists(tmp));
	cr_assert(!exists(fin));
	cr_assert_eq(W.durable_position, pos_a);
	cr_assert_eq(rep_ckpt_poll(&W), REP_CKPT_IDLE);

	W.fault = (struct rep_ckpt_fault){.armed = true, .fsync_armed = true, .error = -ENOSPC};
	cr_assert_eq(rep_ckpt_begin(&W, &b), 0);
	rc = rep_ckpt_wait(&W);
	cr_assert_eq(rc, -ENOSPC, "%d %s", rc, W.err);
	cr_assert_not_null(strstr(W.err, "fdatasync"), "%s", W.err);
	cr_assert(!exists(tmp));
	cr_assert(!exists(fin));
	cr_assert_eq(W.stats.failed, 2);

	struct rep_state s;
	struct rep_ckpt_load_info info;
	load_ok(&s, &info);
	cr_assert_eq(info.position, pos_a);
	rep_state_free(&s);

	/* Once the disk is fine again, the same checkpoint goes through. */
	W.fault.armed = false;
	checkpoint(&b);
	load_ok(&s, &info);
	state_eq(&b, &s);
	rep_state_free(&s);
	rep_state_free(&a);
	rep_state_free(&b);
}

Test(checkpoint, bad_config)
{
	struct rep_ckpt_writer w;
	struct rep_ckpt_config c;
	rep_ckpt_config_default(&c, DIR_, CLUSTER, &CAPS);
	c.chunk_bytes = 5000;
	cr_assert_eq(rep_ckpt_writer_init(&w, &c, ERR, sizeof ERR), -EINVAL);
	cr_assert_not_null(strstr(ERR, "chunk_bytes"), "%s", ERR);
	rep_ckpt_config_default(&c, DIR_, CLUSTER, &CAPS);
	c.queue_depth = 1;
	cr_assert_eq(rep_ckpt_writer_init(&w, &c, ERR, sizeof ERR), -EINVAL);
	rep_ckpt_config_default(&c, "/nonexistent/ordo", CLUSTER, &CAPS);
	cr_assert_eq(rep_ckpt_writer_init(&w, &c, ERR, sizeof ERR), -ENOENT);
	cr_assert_not_null(strstr(ERR, "/nonexistent/ordo"), "%s", ERR);
}

/* ---- replicas/store.h: the applied log, recovery, FETCH from disk ---- */

#define STORE_NODE 11u

static char SDIR[64];

static void store_setup(void)
{
	strcpy(SDIR, "/tmp/ordo-store-test.XXXXXX");
	cr_assert_not_null(mkdtemp(SDIR));
	struct stor_identity id;
	stor_identity_default(&id, CLUSTER, STORE_NODE);
	id.accounts_max = CAP_ACCOUNTS;
	id.transfers_max = CAP_TRANSFERS;
	cr_assert_eq(stor_format(SDIR, &id, true, ERR, sizeof ERR), 0, "%s", ERR);
}

static void store_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", SDIR);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = store_setup, .fini = store_teardown);

static void store_cfg(struct rep_store_config *c, uint64_t checkpoint_bytes)
{
	*c = (struct rep_store_config){.dir = SDIR,
				       .cluster_id = CLUSTER,
				       .node_id = STORE_NODE,
				       .ledger = CAPS,
				       .epoch_bytes = 1u << 16,
				       .checkpoint_bytes = checkpoint_bytes,
				       .retain_bytes = 64u << 20};
}

static void store_add(void *ctx, ORDO_UNUSED const struct wire_epoch_hdr *h,
		      const struct wire_entry_rec *ent, ORDO_UNUSED const struct wire_epoch_rec *er,
		      ORDO_UNUSED const uint8_t digest_before[16], ORDO_UNUSED const uint8_t *data)
{
	rep_store_epoch_add(ctx, ent);
}

/* Applies epochs up to to_epoch as replicas/node.c does: each one logged,
 * the store polled after each. */
static void store_drive(struct rep_store *st, struct rep_state *s, uint64_t to_epoch)
{
	static uint8_t buf[ORDO_EPOCH_HDR_BYTES + RECS * (ORDO_EPOCH_REC_BYTES + 32)];
	while (s->next_epoch <= to_epoch) {
		uint32_t len = make_epoch(buf, s->next_epoch, s->applied_position + 1);
		rep_store_epoch_begin(st, s, s->next_epoch);
		cr_assert(rep_state_apply_epoch(s, buf, len, store_add, st));
		cr_assert_eq(rep_store_epoch_end(st, s), 0, "%s", st->err);
		cr_assert_eq(rep_store_poll(st, s), 0, "%s", st->err);
	}
}

/* store_drive for a forked child, where a Criterion assertion cannot
 * report: the exit status says what failed. */
static void child_drive(struct rep_store *st, struct rep_state *s, uint64_t to_epoch, bool poll)
{
	static uint8_t buf[ORDO_EPOCH_HDR_BYTES + RECS * (ORDO_EPOCH_REC_BYTES + 32)];
	while (s->next_epoch <= to_epoch) {
		uint32_t len = make_epoch(buf, s->next_epoch, s->applied_position + 1);
		rep_store_epoch_begin(st, s, s->next_epoch);
		if (!rep_state_apply_epoch(s, buf, len, store_add, st))
			_exit(10);
		if (rep_store_epoch_end(st, s) != 0)
			_exit(11);
		if (poll && rep_store_poll(st, s) != 0)
			_exit(12);
	}
}

static uint64_t replayed_positions;
static void count_replayed(ORDO_UNUSED void *ctx, ORDO_UNUSED const struct wire_entry_rec *ent,
			   ORDO_UNUSED const uint8_t digest_before[16],
			   ORDO_UNUSED const uint8_t *data)
{
	replayed_positions++;
}

/* A child process applies epochs 1..epochs, optionally begins a checkpoint
 * just before the last ones, and dies by SIGKILL without closing anything. */
static void child_applies_then_dies(uint64_t epochs, uint64_t checkpoint_bytes, bool ckpt_at_end)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct rep_store st;
		struct rep_state s;
		struct rep_store_config c;
		store_cfg(&c, checkpoint_bytes);
		if (rep_store_open(&st, &c, &s, NULL, NULL) != 0)
			_exit(3);
		child_drive(&st, &s, ckpt_at_end ? epochs - 2 : epochs, true);
		if (ckpt_at_end) {
			rep_store_checkpoint_now(&st, &s);
			if (!rep_ckpt_busy(&st.ckpt))
				_exit(4);
			/* on applying while it is written; the checkpoint writer is
			 * not polled from here on, so the kill finds it before its
			 * rename whatever the machine's speed */
			child_drive(&st, &s, epochs, false);
		}
		/* As a running replica would: what was applied so far is written
		 * (the kill finds it in the page cache), and one last epoch is
		 * still in flight, which the kill may lose. */
		for (uint32_t i = 0; st.log.written_index < st.log.last_index; i++) {
			if (stor_log_sync(&st.log) != 0 || stor_log_poll(&st.log, NULL) != 0 ||
			    i > 1000000)
				_exit(7);
			usleep(10);
		}
		child_drive(&st, &s, epochs + 1, !ckpt_at_end);
		if (ckpt_at_end && !rep_ckpt_busy(&st.ckpt))
			_exit(8); /* the kill must find the checkpoint unfinished */
		raise(SIGKILL);
		_exit(6);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
}

/* Recovery reaches every epoch that was written: epochs, or epochs + 1 if
 * the write in flight at the kill landed. */
static void reopen_equals(uint64_t epochs)
{
	struct rep_store st;
	struct rep_state s, want;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	replayed_positions = 0;
	cr_assert_eq(rep_store_open(&st, &c, &s, count_replayed, NULL), 0, "%s", st.err);
	cr_assert(s.applied_epoch == epochs || s.applied_epoch == epochs + 1,
		  "recovered epoch %" PRIu64 ", written %" PRIu64, s.applied_epoch, epochs);
	state_at(&want, s.applied_epoch);
	state_eq(&want, &s);
	cr_assert_eq(replayed_positions, st.stats.replayed_positions);
	rep_store_close(&st);
	rep_state_free(&s);
	rep_state_free(&want);
}

Test(store, sigkill_during_apply_recovers_the_same_state)
{
	/* checkpoints every 64 KiB of log: recovery is a checkpoint and a replay */
	child_applies_then_dies(40, 64u << 10, false);
	reopen_equals(40);
}

Test(store, sigkill_during_checkpoint_recovers_the_same_state)
{
	child_applies_then_dies(30, 64u << 20, true);
	/* the temp file of the unfinished checkpoint is there, and ignored */
	char p[128];
	snprintf(p, sizeof p, "%s/ckpt", SDIR);
	DIR *d = opendir(p);
	cr_assert_not_null(d);
	bool tmp = false;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		tmp |= strstr(de->d_name, ".tmp") != NULL;
	closedir(d);
	cr_assert(tmp, "the kill left the checkpoint unfinished");
	reopen_equals(30);
}

Test(store, a_flipped_bit_in_the_newest_checkpoint_falls_back_and_replays)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	store_drive(&st, &s, 10);
	rep_store_checkpoint_now(&st, &s);
	cr_assert_eq(rep_ckpt_wait(&st.ckpt), REP_CKPT_DONE);
	st.kept_epoch[1] = st.kept_epoch[0];
	st.kept_epoch[0] = 10;
	uint64_t older = s.applied_position;
	store_drive(&st, &s, 20);
	rep_store_checkpoint_now(&st, &s);
	cr_assert_eq(rep_store_poll(&st, &s), 0);
	uint64_t newer = s.applied_position;
	store_drive(&st, &s, 25);
	rep_store_close(&st);
	rep_state_free(&s);

	char p[160];
	snprintf(p, sizeof p, "%s/ckpt/ckpt-%020" PRIu64 ".ordo", SDIR, newer);
	int fd = open(p, O_RDWR);
	cr_assert_geq(fd, 0, "%s", p);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, 200), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, 200), 1);
	close(fd);

	replayed_positions = 0;
	cr_assert_eq(rep_store_open(&st, &c, &s, count_replayed, NULL), 0, "%s", st.err);
	struct rep_state want;
	state_at(&want, 25);
	state_eq(&want, &s);
	/* it replayed from the older checkpoint: epochs 11-25 */
	cr_assert_eq(replayed_positions, s.applied_position - older);
	/* and set the rejected one aside, so retention never keeps it */
	char bad[176];
	snprintf(bad, sizeof bad, "%s.bad", p);
	cr_assert_eq(access(p, F_OK), -1);
	cr_assert_eq(access(bad, F_OK), 0, "%s", bad);
	rep_store_close(&st);
	rep_state_free(&s);
	rep_state_free(&want);
}

Test(store, fetch_from_disk_serves_what_was_applied)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	store_drive(&st, &s, 8);
	cr_assert_eq(rep_store_first_position(&st), 1);
	/* from position 350 (inside epoch 2): records 350.. with the digest after 349 */
	static uint8_t dg[ORDO_DATAGRAM_MAX];
	struct wire_writer w;
	wire_begin(&w, dg, sizeof dg, WIRE_ENTRIES, CLUSTER);
	int rc;
	uint32_t n = rep_store_fill_entries(&st, &w, 99, 350, s.applied_position, 1472, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_gt(n, 0);
	uint32_t len = wire_finish(&w, NULL);
	cr_assert_leq(len + ORDO_MAC_BYTES, 1472);
	struct wire_entries_head h;
	static struct wire_entry_rec recs[64];
	cr_assert_eq(wire_parse_entries(dg + 32, len - 32, &h, recs, 64), (int)n);
	cr_assert_eq(h.first_position, 350);
	cr_assert_eq(h.nonce, 99);
	cr_assert_eq(recs[0].position, 350);
	struct rep_state ref;
	cr_assert_eq(rep_state_init(&ref, &CAPS), 0);
	static uint8_t eb[ORDO_EPOCH_HDR_BYTES + RECS * (ORDO_EPOCH_REC_BYTES + 32)];
	uint32_t elen = make_epoch(eb, 1, 1);
	cr_assert(rep_state_apply_epoch(&ref, eb, elen, NULL, NULL));
	/* digest after 349: epoch 1 (200 positions) and 149 of epoch 2 */
	elen = make_epoch(eb, 2, 201);
	struct wire_epoch_hdr eh;
	cr_assert_eq(wire_epoch_decode_hdr(eb, elen, &eh), 0);
	uint32_t off = ORDO_EPOCH_HDR_BYTES;
	struct wire_epoch_rec er;
	uint8_t rb[ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX], data[32];
	for (uint64_t pos = 201; pos < 350; pos++) {
		cr_assert_eq(wire_epoch_next_rec(eb, elen, &off, &er), 1);
		struct wire_entry_rec ent = {.position = pos,
					     .epoch = 2,
					     .client_id = er.client_id,
					     .request_number = er.request_number,
					     .op = er.op,
					     .size = er.size,
					     .payload = er.payload};
		ent.result = ledger_apply(&ref.ledger, er.op, er.payload, er.size, data);
		wire_entry_encode(rb, &ent);
		ledger_digest_step(ref.digest, rb, wire_entry_bytes(er.size));
	}
	cr_assert_eq(memcmp(h.digest, ref.digest, 16), 0, "the digest after position 349");
	/* the next FETCH of a reader going through epoch 2 reuses the record read */
	uint64_t reads = st.stats.disk_reads;
	uint64_t next = 350 + n;
	wire_begin(&w, dg, sizeof dg, WIRE_ENTRIES, CLUSTER);
	cr_assert_gt(rep_store_fill_entries(&st, &w, 100, next, s.applied_position, 1472, &rc), 0);
	cr_assert_eq(rc, 0);
	len = wire_finish(&w, NULL);
	cr_assert_gt(wire_parse_entries(dg + 32, len - 32, &h, recs, 64), 0);
	cr_assert_eq(recs[0].position, next);
	cr_assert_eq(st.stats.disk_reads, reads, "no new read for the same epoch");
	/* a position not logged */
	wire_begin(&w, dg, sizeof dg, WIRE_ENTRIES, CLUSTER);
	n = rep_store_fill_entries(&st, &w, 1, s.applied_position + 1, s.applied_position, 1472,
				   &rc);
	cr_assert_eq(n, 0);
	cr_assert_eq(rc, -1);
	rep_state_free(&ref);
	rep_store_close(&st);
	rep_state_free(&s);
}

Test(store, refuses_a_directory_formatted_with_other_capacities)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	c.ledger.accounts_max = 2048;
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), -EINVAL);
	cr_assert_not_null(strstr(st.err, "accounts_max"), "%s", st.err);
	cr_assert_not_null(strstr(st.err, SDIR), "%s", st.err);
}

Test(store, fetch_older_than_the_history_on_disk_says_where_it_begins)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 1u << 20);
	c.retain_bytes = 0; /* keep only what recovery needs */
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	/* apply until whole segments were compacted away */
	while (
	    (rep_store_first_position(&st) == 1 || rep_store_first_position(&st) == UINT64_MAX) &&
	    s.next_epoch < 6000)
		store_drive(&st, &s, s.next_epoch);
	uint64_t first = rep_store_first_position(&st);
	cr_assert(first > 1 && first != UINT64_MAX, "the log was compacted (%" PRIu64 ")", first);
	cr_log_info("compacted to position %" PRIu64 " after %" PRIu64 " epochs", first,
		    s.applied_epoch);
	static uint8_t dg[ORDO_DATAGRAM_MAX];
	struct wire_writer w;
	wire_begin(&w, dg, sizeof dg, WIRE_ENTRIES, CLUSTER);
	int rc;
	cr_assert_eq(rep_store_fill_entries(&st, &w, 5, 1, s.applied_position, 1472, &rc), 0);
	cr_assert_eq(rc, 0);
	uint32_t len = wire_finish(&w, NULL);
	struct wire_entries_head h;
	static struct wire_entry_rec recs[64];
	cr_assert_eq(wire_parse_entries(dg + 32, len - 32, &h, recs, 64), 0);
	cr_assert_eq(h.flags, WIRE_ENTRIES_RETAINED_BEFORE);
	cr_assert_eq(h.first_position, first);
	/* the digest before it is the state's after the epoch before the log's first */
	struct rep_state want;
	state_at(&want, stor_log_first_index(&st.log) - 1);
	cr_assert_eq(want.applied_position + 1, first);
	cr_assert_eq(memcmp(h.digest, want.digest, 16), 0);
	/* and from `first` on, records */
	wire_begin(&w, dg, sizeof dg, WIRE_ENTRIES, CLUSTER);
	cr_assert_gt(rep_store_fill_entries(&st, &w, 6, first, s.applied_position, 1472, &rc), 0);
	len = wire_finish(&w, NULL);
	cr_assert_gt(wire_parse_entries(dg + 32, len - 32, &h, recs, 64), 0);
	cr_assert_eq(recs[0].position, first);
	rep_state_free(&want);
	rep_store_close(&st);
	rep_state_free(&s);
}

/* ---- several sequencer groups: merged epochs in the applied log ---- */

/* Merged step i (from 1) of a two-group order: merged epoch 1000 + 2i (the
 * numbers skip, as wall-clock slots do); group 0 has an entry ending at
 * every step, group 1 only every third (a run from after its last one). */
static uint64_t merged_epoch(uint64_t i)
{
	return 1000 + 2 * i;
}

/* gp: the group positions the entries continue (the reference state's). */
static bool merged_step(struct rep_state *s, uint64_t i, struct rep_store *st, const uint64_t *gp)
{
	static uint8_t b0[ORDO_EPOCH_HDR_BYTES + RECS * (ORDO_EPOCH_REC_BYTES + 32)];
	static uint8_t b1[sizeof b0];
	const uint8_t *ep[2] = {b0, NULL};
	uint32_t lens[2] = {0, 0};
	uint64_t e = merged_epoch(i);
	lens[0] = make_epoch(b0, i, gp[0] + 1);
	ordo_st64(b0, e);
	ordo_st64(b0 + 40, i == 1 ? 1 : merged_epoch(i - 1) + 1);
	if (i % 3 == 0) {
		lens[1] = make_epoch(b1, 500 + i, gp[1] + 1);
		ordo_st64(b1, e);
		ordo_st16(b1 + 32, 1);
		ordo_st64(b1 + 40, i == 3 ? 1 : merged_epoch(i - 3) + 1);
		ep[1] = b1;
	}
	if (st)
		rep_store_epoch_begin(st, s, e);
	if (!rep_state_apply_merged(s, e, ep, lens, 2, st ? store_add : NULL, st))
		return false;
	return !st || rep_store_epoch_end(st, s) == 0;
}

Test(store, merged_epochs_of_two_groups_recover_from_checkpoint_and_log)
{
	struct rep_store st;
	struct rep_state s, want;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	c.merged = true;
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	cr_assert_eq(rep_state_init(&want, &CAPS), 0);
	for (uint64_t i = 1; i <= 30; i++) {
		uint64_t gp[2] = {want.group_position[0], want.group_position[1]};
		cr_assert(merged_step(&s, i, &st, gp), "step %" PRIu64 ": %s", i, st.err);
		cr_assert(merged_step(&want, i, NULL, gp));
		cr_assert_eq(rep_store_poll(&st, &s), 0, "%s", st.err);
		if (i == 15) {
			rep_store_checkpoint_now(&st, &s);
			cr_assert_eq(rep_ckpt_wait(&st.ckpt), REP_CKPT_DONE);
		}
	}
	cr_assert_eq(s.steps, 30);
	cr_assert_eq(s.applied_epoch, merged_epoch(30));
	rep_store_close(&st);
	rep_state_free(&s);

	/* Reopened: the checkpoint at step 15, then steps 16-30 replayed. */
	replayed_positions = 0;
	cr_assert_eq(rep_store_open(&st, &c, &s, count_replayed, NULL), 0, "%s", st.err);
	state_eq(&want, &s);
	cr_assert_eq(s.steps, 30, "the log's index is the step, not the epoch");
	cr_assert_eq(st.stats.replayed_epochs, 15);
	cr_assert_eq(s.group_known, 0, "group positions are learned from the stream");
	/* The stream goes on: the next steps apply, each group's first entry
	 * teaches its position, and later ones must continue it. */
	for (uint64_t i = 31; i <= 33; i++) {
		uint64_t gp[2] = {want.group_position[0], want.group_position[1]};
		cr_assert(merged_step(&s, i, &st, gp), "step %" PRIu64 ": %s", i, st.err);
		cr_assert(merged_step(&want, i, NULL, gp));
	}
	state_eq(&want, &s);
	cr_assert_eq(s.group_known, 3);
	uint64_t skip[2] = {want.group_position[0] + 1, want.group_position[1]};
	cr_assert_not(merged_step(&s, 34, &st, skip), "an entry that skips a position");
	rep_store_close(&st);
	rep_state_free(&s);
	rep_state_free(&want);
}

Test(store, a_log_written_in_one_mode_is_refused_in_the_other)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	store_drive(&st, &s, 5);
	rep_store_close(&st);
	rep_state_free(&s);
	/* every_epoch turned on for the same directory: the record heads
	 * differ, so the log would be misread */
	c.merged = true;
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), -EINVAL);
	cr_assert_not_null(strstr(st.err, "APPLIED_MODE"), "%s", st.err);
	cr_assert_not_null(strstr(st.err, "every_epoch = no"), "%s", st.err);
	cr_assert_not_null(strstr(st.err, "ordo format"), "%s", st.err);
	/* back as it was written: fine */
	c.merged = false;
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	cr_assert_eq(s.applied_epoch, 5);
	rep_store_close(&st);
	rep_state_free(&s);
}

/* Waits (bounded) until the store's log has everything appended durable,
 * or, with written_only, written. */
static void store_settle(struct rep_store *st, bool written_only)
{
	for (int i = 0; i < 100000; i++) {
		uint64_t want = st->log.last_index;
		if ((written_only ? st->log.written_index : st->log.durable_index) >= want)
			return;
		cr_assert_eq(stor_log_wait(&st->log, NULL), 0);
	}
	cr_assert_fail("the applied log did not settle");
}

/* Waits (bounded) until no fdatasync is in flight or asked for. */
static void store_settle_syncs(struct rep_store *st)
{
	for (int i = 0; i < 100000; i++) {
		if (st->log.sync_target == 0 && st->log.sync_wanted <= st->log.durable_index)
			return;
		cr_assert_eq(stor_log_wait(&st->log, NULL), 0);
	}
	cr_assert_fail("the applied log's sync did not finish");
}

/* applied_sync_us: the applied log is written at once but fdatasync'd at
 * most once per interval; with 0, once per epoch when each sync completes
 * before the next epoch. */
Test(store, applied_log_syncs_at_most_once_per_interval)
{
	struct rep_store st;
	struct rep_state s;
	struct rep_store_config c;
	store_cfg(&c, 64u << 20);
	c.sync_interval_ns = 3600ull * 1000 * 1000 * 1000; /* an hour: never due here */
	cr_assert_eq(rep_store_open(&st, &c, &s, NULL, NULL), 0, "%s", st.err);
	/* The first poll syncs if the interval has passed since boot. */
	store_drive(&st, &s, 1);
	store_settle(&st, true);
	store_settle_syncs(&st);
	uint64_t syncs0 = st.log.stats.fsyncs;
	store_drive(&st, &s, 30);
	cr_assert_eq(st.log.flushed_pos, st.log.appended_pos, "written at once, not held back");
	store_settle(&st, true); /* written: a killed process would keep it */
	cr_assert_eq(st.log.stats.fsyncs, syncs0, "%" PRIu64 " fdatasyncs in 29 epochs",
		     st.log.stats.fsyncs - syncs0);
	cr_assert_lt(st.log.durable_index, st.log.last_index, "not all durable yet");
	cr_assert(rep_store_busy(&st), "a sync is owed: the replica comes back for it");

	/* The interval has passed: the next poll syncs everything. */
	uint64_t syncs1 = st.log.stats.fsyncs;
	st.last_sync_ns -= c.sync_interval_ns;
	cr_assert_eq(rep_store_poll(&st, &s), 0, "%s", st.err);
	store_settle(&st, false);
	cr_assert_eq(st.log.stats.fsyncs, syncs1 + 1);
	cr_assert_eq(st.log.durable_index, st.log.last_index);

	/* 0: one sync per epoch. */
	st.cfg.sync_interval_ns = 0;
	uint64_t syncs2 = st.log.stats.fsyncs;
	for (uint64_t e = 31; e <= 40; e++) {
		store_drive(&st, &s, e);
		store_settle(&st, false);
	}
	cr_assert_eq(st.log.stats.fsyncs, syncs2 + 10);
	rep_store_close(&st);
	rep_state_free(&s);
}
