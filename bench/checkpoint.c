/*
 * Benchmark of replica checkpoints (replicas/checkpoint.h), issue 6's
 * "checkpoint size and time for 10 million accounts": builds a ledger of
 * `accounts` accounts and `transfers` transfers, then measures
 *   - a plain memcpy of the live tables (what a naive snapshot would cost),
 *     into fresh pages and again into touched ones;
 *   - checkpoint 1: rep_ckpt_begin (the snapshot copy, the only part that
 *     stops the apply loop) into a fresh snapshot buffer, then rep_ckpt_wait
 *     until durable (writes, fdatasync, rename, directory fsync);
 *   - checkpoint 2: rep_ckpt_begin into the touched buffer, then the node's
 *     pattern: apply a batch of transfers, rep_ckpt_poll, repeat, timing
 *     every poll and the apply rate meanwhile;
 *   - rep_ckpt_load_newest from the page cache, then cold (the file's pages
 *     dropped with posix_fadvise DONTNEED after it is durable).
 * Prints the machine (cores, CPU model, kernel) with the figures. Reports
 * numbers; asserts nothing about speed (it checks the loaded state).
 *
 * Usage: checkpoint_bench [--accounts N] [--transfers N] [--dir DIR]
 *                         [--chunk BYTES] [--depth N] [--seed N]
 * Defaults: 10,000,000 accounts, 10,000,000 transfers, a temp directory
 * under /tmp (removed at the end), 1 MiB chunks, 4 writes in flight.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/le.h"
#include "common/prng.h"
#include "replicas/checkpoint.h"

#define CLUSTER	     0x62656e63686b7074ull
#define APPLY_BATCH  1000u	/* transfers applied between two polls */
#define APPLY_BUDGET (2u << 20) /* transfers applied during checkpoint 2, at most */
#define MIB	     (1024.0 * 1024.0)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long minor_faults(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void cpu_model(char *out, size_t len)
{
	snprintf(out, len, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f == NULL)
		return;
	char line[256];
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "model name", 10) == 0) {
			char *c = strchr(line, ':');
			if (c != NULL) {
				c += 1 + (c[1] == ' ');
				c[strcspn(c, "\n")] = '\0';
				snprintf(out, len, "%s", c);
			}
			break;
		}
	}
	fclose(f);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--accounts N] [--transfers N] [--dir DIR] [--chunk BYTES] "
		"[--depth N] [--seed N]\n",
		argv0);
	exit(2);
}

static void rm_checkpoints(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	char p[4096];
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "ckpt-", 5) != 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

/* Fills n transfer payloads with fresh ids from *next_id between distinct
 * random accounts 1..accounts. */
static void make_transfers(uint8_t *out, uint64_t n, uint64_t accounts, uint64_t *next_id,
			   struct ordo_prng *rng)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t d = 1 + ordo_prng_below(rng, accounts);
		uint64_t c = 1 + ordo_prng_below(rng, accounts - 1);
		c += c >= d;
		uint8_t *q = out + i * 32;
		ordo_st64(q, (*next_id)++);
		ordo_st64(q + 8, d);
		ordo_st64(q + 16, c);
		ordo_st64(q + 24, 1 + ordo_prng_below(rng, 1000));
	}
}

/* Drops a file's pages from the page cache (they are clean once durable). */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

int main(int argc, char **argv)
{
	uint64_t accounts = 10000000, transfers = 10000000, seed = 1;
	uint32_t chunk = REP_CKPT_CHUNK_BYTES_DEFAULT, depth = REP_CKPT_QUEUE_DEPTH_DEFAULT;
	const char *dir_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage(argv[0]);
		if (strcmp(argv[i], "--accounts") == 0)
			accounts = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--transfers") == 0)
			transfers = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--dir") == 0)
			dir_arg = argv[++i];
		else if (strcmp(argv[i], "--chunk") == 0)
			chunk = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--depth") == 0)
			depth = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[++i], NULL, 0);
		else
			usage(argv[0]);
	}
	if (accounts < 2)
		usage(argv[0]);

	char cpu[128];
	cpu_model(cpu, sizeof cpu);
	struct utsname un;
	uname(&un);
	printf("checkpoint_bench: %ld cores, %s, %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu,
	       un.sysname, un.release);

	char dir[256];
	bool own_dir = dir_arg == NULL;
	if (own_dir) {
		strcpy(dir, "/tmp/ordo-ckpt-bench.XXXXXX");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
	} else {
		snprintf(dir, sizeof dir, "%s", dir_arg);
	}

	/* ---- the ledger ---- */
	struct ledger_cfg cfg = {.accounts_max = accounts,
				 .transfers_max = transfers + APPLY_BUDGET};
	struct rep_state st;
	if (rep_state_init(&st, &cfg) != 0) {
		fprintf(stderr, "rep_state_init failed (%zu bytes)\n", ledger_bytes(&cfg));
		return 1;
	}
	struct ordo_prng rng;
	ordo_prng_seed(&rng, seed);
	uint8_t p[32], data[32];
	double t0 = now_s();
	for (uint64_t a = 1; a <= accounts; a++) {
		ordo_st64(p, a);
		ordo_st32(p + 8, 0);
		ordo_st32(p + 12, 0);
		if (ledger_apply(&st.ledger, WIRE_OP_CREATE_ACCOUNT, p, 16, data) != WIRE_R_OK) {
			fprintf(stderr, "create %" PRIu64 " failed\n", a);
			return 1;
		}
	}
	double t_create = now_s() - t0;
	uint64_t next_id = 1;
	uint64_t batch_n = 1u << 20;
	uint8_t *batch = malloc(batch_n * 32);
	if (batch == NULL)
		return 1;
	t0 = now_s();
	for (uint64_t done = 0; done < transfers;) {
		uint64_t n = transfers - done < batch_n ? transfers - done : batch_n;
		make_transfers(batch, n, accounts, &next_id, &rng);
		for (uint64_t i = 0; i < n; i++)
			if (ledger_apply(&st.ledger, WIRE_OP_TRANSFER, batch + i * 32, 32, data) !=
			    WIRE_R_OK)
				return 1;
		done += n;
	}
	double t_xfer = now_s() - t0;
	st.applied_position = accounts + transfers;
	st.applied_epoch = 1;
	st.next_epoch = 2;
	st.requests_applied = accounts + transfers;
	for (int i = 0; i < 16; i++)
		st.digest[i] = (uint8_t)(0xa0 + i);
	size_t table_bytes = (size_t)(st.ledger.accounts_cap + st.ledger.transfers_cap) * 32;
	printf("ledger: %" PRIu64 " accounts, %" PRIu64 " transfers (accounts_max %" PRIu64
	       ", transfers_max %" PRIu64 "); tables %.0f MiB (%" PRIu64 " + %" PRIu64
	       " slots of 32 B); built in %.2f s + %.2f s\n",
	       accounts, transfers, cfg.accounts_max, cfg.transfers_max, table_bytes / MIB,
	       st.ledger.accounts_cap, st.ledger.transfers_cap, t_create, t_xfer);

	/* ---- a plain memcpy of the live tables, for comparison ---- */
	uint8_t *copy = mmap(NULL, table_bytes, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (copy == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	(void)madvise(copy, table_bytes, MADV_HUGEPAGE);
	double mc[2];
	for (int r = 0; r < 2; r++) {
		t0 = now_s();
		memcpy(copy, st.ledger.accounts, st.ledger.accounts_cap * 32);
		memcpy(copy + st.ledger.accounts_cap * 32, st.ledger.transfers,
		       st.ledger.transfers_cap * 32);
		mc[r] = now_s() - t0;
	}
	munmap(copy, table_bytes);
	printf("memcpy of the live tables (%.0f MiB): %.3f s into fresh pages, %.3f s into "
	       "touched ones (%.1f GB/s)\n",
	       table_bytes / MIB, mc[0], mc[1], (double)table_bytes / mc[1] / 1e9);

	/* ---- checkpoint 1: begin into a fresh snapshot buffer, then wait ---- */
	struct rep_ckpt_config wc;
	rep_ckpt_config_default(&wc, dir, CLUSTER, &cfg);
	wc.chunk_bytes = chunk;
	wc.queue_depth = depth;
	static struct rep_ckpt_writer w;
	char err[REP_CKPT_ERR_BYTES];
	int rc = rep_ckpt_writer_init(&w, &wc, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "writer: %s\n", err);
		return 1;
	}
	printf("writer: %.0f MiB of address space (snapshot buffer for accounts_max + "
	       "transfers_max records of 32 B), chunk %" PRIu32 " B, %" PRIu32
	       " writes in flight, in %s\n",
	       rep_ckpt_writer_bytes(&wc) / MIB, chunk, depth, dir);
	long f0 = minor_faults();
	t0 = now_s();
	rc = rep_ckpt_begin(&w, &st);
	double t_begin1 = now_s() - t0;
	long faults1 = minor_faults() - f0;
	if (rc != 0) {
		fprintf(stderr, "begin: %s\n", w.err);
		return 1;
	}
	rc = rep_ckpt_wait(&w);
	double t_done1 = now_s() - t0;
	if (rc != REP_CKPT_DONE) {
		fprintf(stderr, "checkpoint 1: %d %s\n", rc, w.err);
		return 1;
	}
	uint64_t fbytes = w.stats.last_file_bytes;
	printf("checkpoint 1 (fresh buffer): begin %.3f s (%ld page faults), durable after "
	       "%.3f s; file %" PRIu64 " B = %.1f MiB (%.2f B per account and transfer), "
	       "%.0f MB/s\n",
	       t_begin1, faults1, t_done1, fbytes, fbytes / MIB,
	       (double)fbytes / (double)(accounts + transfers), (double)fbytes / t_done1 / 1e6);

	/* ---- checkpoint 2: begin into the touched buffer, apply between polls ---- */
	uint8_t *more = malloc((size_t)APPLY_BUDGET * 32);
	if (more == NULL)
		return 1;
	make_transfers(more, APPLY_BUDGET, accounts, &next_id, &rng);
	/* the apply rate on its own, for comparison (the first half of the budget) */
	uint64_t half = APPLY_BUDGET / 2;
	t0 = now_s();
	for (uint64_t i = 0; i < half; i++)
		(void)ledger_apply(&st.ledger, WIRE_OP_TRANSFER, more + i * 32, 32, data);
	double rate_alone = (double)half / (now_s() - t0);
	st.applied_position += half;
	struct rep_state expect = st; /* counts and position at begin (shares the tables) */

	t0 = now_s();
	rc = rep_ckpt_begin(&w, &st);
	double t_begin2 = now_s() - t0;
	if (rc != 0) {
		fprintf(stderr, "begin: %s\n", w.err);
		return 1;
	}
	uint64_t applied = half, polls = 0;
	double poll_max = 0, poll_sum = 0, apply_s = 0;
	int poll_max_phase = 0;
	for (;;) {
		if (applied < APPLY_BUDGET) {
			double ta = now_s();
			for (uint32_t i = 0; i < APPLY_BATCH && applied < APPLY_BUDGET; i++)
				(void)ledger_apply(&st.ledger, WIRE_OP_TRANSFER,
						   more + (applied++) * 32, 32, data);
			apply_s += now_s() - ta;
		} else {
			usleep(200);
		}
		double tp = now_s();
		int phase = w.phase;
		rc = rep_ckpt_poll(&w);
		double dp = now_s() - tp;
		polls++;
		poll_sum += dp;
		if (dp > poll_max) {
			poll_max = dp;
			poll_max_phase = phase;
		}
		if (rc != REP_CKPT_BUSY)
			break;
	}
	double t_done2 = now_s() - t0;
	if (rc != REP_CKPT_DONE) {
		fprintf(stderr, "checkpoint 2: %d %s\n", rc, w.err);
		return 1;
	}
	uint64_t during = applied - half;
	uint64_t fbytes2 = w.stats.last_file_bytes;
	printf("checkpoint 2 (touched buffer, applying between polls): begin %.3f s, durable "
	       "after %.3f s; %" PRIu64 " polls, longest %.3f ms (phase %d), mean %.3f ms; %" PRIu64
	       " transfers applied meanwhile at %.2f M/s (%.2f M/s alone)\n",
	       t_begin2, t_done2, polls, poll_max * 1e3, poll_max_phase,
	       poll_sum / (double)polls * 1e3, during,
	       apply_s > 0 ? (double)during / apply_s / 1e6 : 0.0, rate_alone / 1e6);

	/* ---- load ---- */
	char path[512];
	snprintf(path, sizeof path, "%s/ckpt-%020" PRIu64 ".ordo", dir, expect.applied_position);
	/* what fresh tables cost by themselves: map and touch every page, as a
	 * load does (the VM's memory, not the checkpoint) */
	double t_touch;
	{
		struct ledger fresh;
		t0 = now_s();
		if (ledger_init(&fresh, &cfg) != 0)
			return 1;
		for (uint64_t i = 0; i < fresh.accounts_cap; i += 4096 / 32)
			fresh.accounts[i].id = 0;
		for (uint64_t i = 0; i < fresh.transfers_cap; i += 4096 / 32)
			fresh.transfers[i].id = 0;
		t_touch = now_s() - t0;
		ledger_free(&fresh);
	}
	printf("fresh tables (ledger_init, then a write to every 4 KiB page): %.3f s\n", t_touch);

	/* twice from the page cache (the first maps the tables' pages fresh, as
	 * does every load), then cold */
	double t_load[3];
	long load_faults[3];
	for (int r = 0; r < 3; r++) {
		if (r == 2)
			drop_cache(path);
		struct rep_state ld;
		struct rep_ckpt_load_info info;
		f0 = minor_faults();
		t0 = now_s();
		rc = rep_ckpt_load_newest(dir, CLUSTER, &cfg, &ld, &info, err, sizeof err);
		t_load[r] = now_s() - t0;
		load_faults[r] = minor_faults() - f0;
		if (rc != 0) {
			fprintf(stderr, "load: %s\n", err);
			return 1;
		}
		if (ld.applied_position != expect.applied_position ||
		    memcmp(ld.digest, expect.digest, 16) != 0 ||
		    ld.ledger.accounts_count != expect.ledger.accounts_count ||
		    ld.ledger.transfers_count != expect.ledger.transfers_count ||
		    info.rejected != 0 || info.file_bytes != fbytes2) {
			fprintf(stderr, "load: wrong state\n");
			return 1;
		}
		rep_state_free(&ld);
	}
	printf("load (%.1f MiB): %.3f s and %.3f s from the page cache, %.3f s cold (%.0f MB/s); "
	       "page faults of the fresh tables %ld, %ld, %ld; two checkpoints kept\n",
	       fbytes2 / MIB, t_load[0], t_load[1], t_load[2], (double)fbytes2 / t_load[2] / 1e6,
	       load_faults[0], load_faults[1], load_faults[2]);

	rep_ckpt_writer_free(&w);
	free(more);
	free(batch);
	rep_state_free(&st);
	if (own_dir) {
		rm_checkpoints(dir);
		rmdir(dir);
	}
	return 0;
}
