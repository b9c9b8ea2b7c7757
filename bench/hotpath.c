/*
 * Microbenchmark of the sequencer hot path on one core, without I/O:
 *
 *   wire_check -> wire_parse_submit -> wire_req_validate
 *     -> seq_sessions_admit -> seq_batcher_add
 *
 * plus, to keep every session's window moving as commits would, the commit
 * path: each sealed epoch is decoded (wire_epoch_next_rec), every record is
 * applied to the session table (seq_sessions_apply) and the epoch released,
 * as if it committed at once. That apply work is inside the timed loop.
 *
 * The SUBMIT datagrams are built before the clock starts, in chunks (the
 * request numbers must move on, so they cannot be replayed): build a chunk,
 * time its processing, repeat. Clients are opened beforehand through
 * seq_sessions_apply. Requests go round robin over the clients, batch
 * records per datagram (a gateway's datagram). No clock is read inside the
 * timed region, so epochs seal on bytes only.
 *
 * It reports; it asserts nothing about speed. Not a pure core: it reads the
 * clock and /proc, which is fine for a benchmark.
 *
 * Usage: hotpath_bench [--requests N] [--batch B] [--sessions S]
 *                      [--payload P] [--window W]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/prng.h"
#include "sequencer/batcher.h"
#include "sequencer/sessions.h"
#include "wire/wire.h"

#define CLUSTER_ID	 0x0123456789ABCDEFull
#define CHUNK_REQUESTS	 (128u * 1024u)
#define DGRAM_SLOT_ALIGN 64u

struct bench_opts {
	uint64_t requests; /* total SUBMIT records processed */
	uint32_t batch;	   /* records per datagram */
	uint32_t sessions; /* clients, each with an open session; = sessions_max */
	uint32_t payload;  /* OPAQUE payload bytes per record */
	uint32_t window;   /* W */
};

struct bench_state {
	struct seq_sessions table;
	struct seq_batcher batcher;
	uint64_t *client_ids;  /* [sessions] */
	uint64_t *numbers;     /* [sessions] session numbers */
	uint64_t *next_n;      /* [sessions] next request number to send */
	uint64_t verdicts[6];  /* per enum seq_admit */
	uint64_t invalid;      /* wire_req_validate said INVALID */
	uint64_t drops;	       /* wire_check dropped a datagram */
	uint64_t not_taken;    /* seq_batcher_add refused */
	uint64_t apply_failed; /* seq_sessions_apply returned false */
	uint64_t applied;      /* records applied */
	uint64_t epochs;       /* epochs sealed and applied */
};

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--requests N] [--batch B] [--sessions S] [--payload P] "
		"[--window W]\n",
		argv0);
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *argv0)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		usage(argv0);
	return v;
}

static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	/* options come in pairs: --name value */
	for (int i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage(argv[0]);
		uint64_t v = parse_u64(argv[i + 1], argv[0]);
		if (strcmp(argv[i], "--requests") == 0)
			o->requests = v;
		else if (strcmp(argv[i], "--batch") == 0)
			o->batch = (uint32_t)v;
		else if (strcmp(argv[i], "--sessions") == 0)
			o->sessions = (uint32_t)v;
		else if (strcmp(argv[i], "--payload") == 0)
			o->payload = (uint32_t)v;
		else if (strcmp(argv[i], "--window") == 0)
			o->window = (uint32_t)v;
		else
			usage(argv[0]);
	}
	if (o->requests == 0 || o->batch == 0 || o->batch > ORDO_RECS_PER_DATAGRAM_MAX ||
	    o->sessions == 0 || o->sessions > ORDO_SESSIONS_MAX_LIMIT ||
	    o->payload > ORDO_OPAQUE_BYTES_MAX)
		usage(argv[0]);
}

static void cpu_model(char *out, size_t cap)
{
	snprintf(out, cap, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f == NULL)
		return;
	char line[512];
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "model name", 10) == 0) {
			char *colon = strchr(line, ':');
			if (colon != NULL) {
				colon++;
				while (*colon == ' ')
					colon++;
				colon[strcspn(colon, "\n")] = '\0';
				snprintf(out, cap, "%s", colon);
			}
			break;
		}
	}
	fclose(f);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Commit path: decode each sealed epoch, apply its records, release it. */
static void drain(struct bench_state *s)
{
	const struct seq_epoch_buf *e;
	while ((e = seq_batcher_next_sealed(&s->batcher)) != NULL) {
		uint32_t off = ORDO_EPOCH_HDR_BYTES;
		uint32_t k = 0;
		struct wire_epoch_rec er;
		while (wire_epoch_next_rec(e->bytes, e->len, &off, &er) == 1) {
			struct wire_req r = {.client_id = er.client_id,
					     .request_number = er.request_number,
					     .session = er.session,
					     .op = er.op,
					     .size = er.size,
					     .payload = er.payload};
			struct wire_place p = {.group = e->hdr.group,
					       .index = k,
					       .epoch = e->hdr.epoch,
					       .group_position = e->hdr.first_position + k};
			if (!seq_sessions_apply(&s->table, &r, &p, e->hdr.timestamp_ns))
				s->apply_failed++;
			k++;
		}
		s->applied += k;
		s->epochs++;
	}
	while (seq_batcher_inflight(&s->batcher) > 0)
		seq_batcher_release(&s->batcher);
}

/* The timed part: one datagram through the whole hot path. */
static void process_datagram(struct bench_state *s, const struct wire_rx_ctx *ctx,
			     const uint8_t *dgram, uint32_t len, struct wire_req *recs)
{
	struct wire_hdr h;
	if (wire_check(ctx, dgram, len, &h) != WIRE_DROP_NONE) {
		s->drops++;
		return;
	}
	bool framing_ok;
	int n = wire_parse_submit(dgram + ORDO_HDR_BYTES, h.length - ORDO_HDR_BYTES, recs,
				  ORDO_RECS_PER_DATAGRAM_MAX, &framing_ok);
	if (n < 0 || !framing_ok) {
		s->drops++;
		return;
	}
	for (int i = 0; i < n; i++) {
		const struct wire_req *r = &recs[i];
		if (wire_req_validate(r, h.authed, h.key_id) != WIRE_ST_OK) {
			s->invalid++;
			continue;
		}
		struct wire_place place;
		enum seq_admit v = seq_sessions_admit(&s->table, r, 0, &place);
		s->verdicts[v]++;
		if (v != SEQ_ADMIT_ORDER)
			continue;
		struct wire_epoch_rec er = {.client_id = r->client_id,
					    .request_number = r->request_number,
					    .session = r->session,
					    .op = r->op,
					    .size = r->size,
					    .key_id = h.key_id,
					    .reply_ip = 0x7F000001u,
					    .reply_port = 40000,
					    .payload = r->payload};
		int rc = seq_batcher_add(&s->batcher, &er, 0, 0, &place);
		if (rc == -ENOBUFS) {
			drain(s);
			rc = seq_batcher_add(&s->batcher, &er, 0, 0, &place);
		}
		if (rc != 0) {
			seq_sessions_unadmit(&s->table, r);
			s->not_taken++;
			continue;
		}
		if (seq_batcher_inflight(&s->batcher) > 0)
			drain(s);
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o = {.requests = 20u * 1000u * 1000u,
			       .batch = 16,
			       .sessions = ORDO_SESSIONS_MAX_DEFAULT,
			       .payload = 64,
			       .window = ORDO_SESSION_WINDOW_DEFAULT};
	parse_args(argc, argv, &o);

	static struct bench_state s;
	struct seq_sessions_cfg tcfg = {
	    .window = o.window, .sessions_max = o.sessions, .idle_min_ns = 0};
	struct seq_batcher_cfg bcfg = {.epoch_us = ORDO_EPOCH_US_DEFAULT,
				       .epoch_bytes = ORDO_EPOCH_BYTES_DEFAULT,
				       .inflight = ORDO_EPOCHS_INFLIGHT_DEFAULT,
				       .group = 0};
	if (seq_sessions_init(&s.table, &tcfg) != 0) {
		fprintf(stderr, "bad session table configuration (window a power of two <= %u)\n",
			ORDO_SESSION_WINDOW_MAX);
		return 2;
	}
	if (seq_batcher_init(&s.batcher, &bcfg, 1, (uint64_t)o.sessions + 1) != 0) {
		fprintf(stderr, "batcher init failed\n");
		return 1;
	}

	/* Open every session as committed epochs would have. */
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 7);
	s.client_ids = calloc(o.sessions, sizeof(uint64_t));
	s.numbers = calloc(o.sessions, sizeof(uint64_t));
	s.next_n = calloc(o.sessions, sizeof(uint64_t));
	if (s.client_ids == NULL || s.numbers == NULL || s.next_n == NULL)
		return 1;
	for (uint32_t c = 0; c < o.sessions; c++) {
		s.client_ids[c] = ordo_prng_next(&rng) | 1;
		struct wire_req r = {.client_id = s.client_ids[c], .request_number = 1};
		struct wire_place p = {.epoch = 1, .index = c, .group_position = (uint64_t)c + 1};
		if (!seq_sessions_apply(&s.table, &r, &p, 0)) {
			fprintf(stderr, "opening client %u failed\n", c);
			return 1;
		}
		s.numbers[c] = p.group_position;
		s.next_n[c] = 2;
	}

	/* Datagram chunk: built untimed, processed timed. */
	uint32_t dgram_cap = ORDO_HDR_BYTES + 8 +
			     o.batch * (ORDO_SUBMIT_REC_BYTES + ((o.payload + 7u) & ~7u)) +
			     ORDO_MAC_BYTES;
	uint32_t slot_bytes = (dgram_cap + DGRAM_SLOT_ALIGN - 1) & ~(DGRAM_SLOT_ALIGN - 1);
	uint32_t chunk_dgrams = CHUNK_REQUESTS / o.batch ? CHUNK_REQUESTS / o.batch : 1;
	uint8_t *chunk = aligned_alloc(DGRAM_SLOT_ALIGN, (size_t)slot_bytes * chunk_dgrams);
	uint32_t *lens = calloc(chunk_dgrams, sizeof(uint32_t));
	struct wire_req *recs = calloc(ORDO_RECS_PER_DATAGRAM_MAX, sizeof *recs);
	uint8_t *payload = calloc(1, ORDO_OPAQUE_BYTES_MAX);
	if (chunk == NULL || lens == NULL || recs == NULL || payload == NULL)
		return 1;
	for (uint32_t i = 0; i < o.payload; i++)
		payload[i] = (uint8_t)(i * 13 + 1);

	struct wire_rx_ctx ctx = {.cluster_id = CLUSTER_ID, .keys = NULL, .require_auth = false};
	uint64_t sent = 0, timed_ns = 0, datagrams = 0;
	uint32_t rr = 0; /* round-robin client cursor */
	while (sent < o.requests) {
		uint32_t built = 0;
		while (built < chunk_dgrams && sent < o.requests) {
			struct wire_writer w;
			wire_begin(&w, chunk + (size_t)built * slot_bytes, dgram_cap, WIRE_SUBMIT,
				   CLUSTER_ID);
			wire_begin_records(&w, 0);
			for (uint32_t k = 0; k < o.batch && sent < o.requests; k++) {
				struct wire_req r = {.client_id = s.client_ids[rr],
						     .request_number = s.next_n[rr]++,
						     .session = s.numbers[rr],
						     .op = WIRE_OP_OPAQUE,
						     .size = (uint16_t)o.payload,
						     .payload = payload};
				if (!wire_add_submit(&w, &r)) {
					fprintf(stderr, "datagram too small\n");
					return 1;
				}
				rr = rr + 1 == o.sessions ? 0 : rr + 1;
				sent++;
			}
			lens[built++] = wire_finish(&w, NULL);
		}
		uint64_t t0 = now_ns();
		for (uint32_t d = 0; d < built; d++)
			process_datagram(&s, &ctx, chunk + (size_t)d * slot_bytes, lens[d], recs);
		timed_ns += now_ns() - t0;
		datagrams += built;
	}
	/* Flush the last open epoch (untimed) so the apply count is complete. */
	(void)seq_batcher_tick(&s.batcher, 0, 0, true);
	drain(&s);

	char model[256];
	cpu_model(model, sizeof model);
	double secs = (double)timed_ns / 1e9;
	printf("ordo hotpath microbenchmark (single thread, one core)\n");
	printf("cpu: %s; online cores: %ld\n", model, sysconf(_SC_NPROCESSORS_ONLN));
	printf("params: requests %llu, batch %u records/datagram, sessions %u, payload %u B, "
	       "window %u, epoch_bytes %u, inflight %u\n",
	       (unsigned long long)o.requests, o.batch, o.sessions, o.payload, o.window,
	       bcfg.epoch_bytes, bcfg.inflight);
	printf("timed loop: wire_check + wire_parse_submit + wire_req_validate + "
	       "seq_sessions_admit + seq_batcher_add, plus the commit path: every sealed "
	       "epoch decoded and applied to the session table (seq_sessions_apply) and "
	       "released at once\n");
	printf("datagrams %llu, epochs %llu, applied %llu\n", (unsigned long long)datagrams,
	       (unsigned long long)s.epochs, (unsigned long long)s.applied);
	printf("verdicts: order %llu, pending %llu, duplicate %llu, stale %llu, overloaded %llu, "
	       "unknown %llu; invalid %llu, drops %llu, batch refused %llu, apply refused %llu\n",
	       (unsigned long long)s.verdicts[SEQ_ADMIT_ORDER],
	       (unsigned long long)s.verdicts[SEQ_ADMIT_PENDING],
	       (unsigned long long)s.verdicts[SEQ_ADMIT_DUPLICATE],
	       (unsigned long long)s.verdicts[SEQ_ADMIT_STALE],
	       (unsigned long long)s.verdicts[SEQ_ADMIT_OVERLOADED],
	       (unsigned long long)s.verdicts[SEQ_ADMIT_UNKNOWN], (unsigned long long)s.invalid,
	       (unsigned long long)s.drops, (unsigned long long)s.not_taken,
	       (unsigned long long)s.apply_failed);
	printf("time %.3f s: %.2f M requests/s, %.1f ns/request\n", secs, (double)sent / secs / 1e6,
	       (double)timed_ns / (double)sent);

	int bad = s.verdicts[SEQ_ADMIT_ORDER] != sent || s.apply_failed != 0 || s.drops != 0 ||
		  s.applied != sent;
	if (bad)
		fprintf(stderr,
			"warning: not every request was ordered and applied once (OVERLOADED "
			"means a client ran W past its committed requests: an epoch holds "
			"more requests per client than the window; raise --window or "
			"--sessions)\n");
	free(payload);
	free(recs);
	free(lens);
	free(chunk);
	free(s.client_ids);
	free(s.numbers);
	free(s.next_n);
	seq_batcher_free(&s.batcher);
	seq_sessions_free(&s.table);
	return bad ? 1 : 0;
}
