/*
 * `ordo bench`: the load generator of the bench harness (issue 7).
 *
 * N libordo clients, each with its own session and its own thread (libordo is
 * not thread-safe per client; separate clients in separate threads are), drive
 * a cluster for a warm-up and a measured interval, in one of two modes:
 *
 * - open loop (--rate R): the send schedule is fixed in advance, R requests/s
 *   in total. With fixed spacing, request g of the run (g = k x N + i for the
 *   k-th request of client i) is due at t0 + g / R exactly (integer ns, no
 *   drift); with --poisson each client draws exponential gaps of mean N / R
 *   from its seeded PRNG, which sums to a Poisson process of rate R. Latency
 *   is measured from each request's INTENDED send time, so a request held back
 *   because the window was full still counts from when it should have left
 *   (no coordinated omission, after wrk2). Such requests are counted as
 *   late_starts. Requests still unsent when the run ends are counted as unsent.
 * - closed loop (--closed): each client keeps --window requests outstanding;
 *   latency is measured from when the request was queued.
 *
 * A request counts as ORDERED at the first ORDERED OK/DUPLICATE/STALE or
 * APPLIED for it, whichever arrives first (APPLIED implies ordered, and libordo
 * reports no ORDERED after an APPLIED), and as APPLIED at its first APPLIED.
 * The two latencies go to two histograms (bench/hist.h, ~1% error). Only
 * requests whose intended send time falls in the measured interval are in the
 * histograms; throughput is the number of requests that became ordered during
 * the measured interval divided by its length. After the interval the
 * clients stop sending and wait (up to 5 s) for what is outstanding, so the
 * last requests' latencies are not lost.
 *
 * Timing resolution: a client waits for its next send or an answer,
 * whichever comes first, in one ppoll (kernel UDP) or in the DPDK view's
 * polls (10 to 100 us apart while idle), with a timer slack of 1 us
 * (PR_SET_TIMERSLACK). Send times are accurate to the kernel's wake-up
 * latency, tens of microseconds on an idle core; that error is part of the
 * latencies reported.
 *
 * Groups: a cluster file may declare several sequencer groups (G, cfg_groups).
 * By default bench client i holds its session in group i mod G (with one
 * group, all in group 0); --group N pins every client to group N; --spread
 * makes each client a libordo spread client, one session in every group,
 * each new request to the group with the most window room (--window is then
 * per group, so a client keeps up to G x window requests out). A request is
 * named by (group, request_number), and counted per group.
 *
 * --batch B (client-side batching): libordo puts every request that is due at
 * an ordo_poll into as few SUBMIT datagrams as fit. B is the number of requests
 * a client queues before each poll: in open loop a client holds due requests
 * until B are due or the oldest has waited --batch-delay (default 1000 us; the
 * wait is part of the latency); in closed loop it refills only when B slots of
 * its window are free, B at a time. B = 1 (default) sends as soon as due.
 *
 * Workload: --op opaque (--size bytes), create (new accounts with ids unique to
 * the run), transfer (amount 1 between two of the --accounts accounts), lookup
 * (one of them), or mix with --mix "transfer=70,lookup=10,opaque=20". Accounts
 * are chosen uniformly or, with --zipf THETA > 0, by a Zipf law over ranks
 * (P(rank k) proportional to 1/(k+1)^THETA, sampled from a precomputed CDF).
 * The --accounts accounts (ids 2^60 + 1 ..; flags 0, so transfers never fail
 * for lack of funds) are created through client 0 before the timed part when
 * the workload transfers or looks up. Transfer and new-account ids carry a
 * 20-bit tag taken from the clock, so runs do not collide with earlier ones;
 * --seed fixes everything else (op choice, accounts, Poisson gaps). The
 * cluster's ledger is finite (accounts_max, transfers_max): a long create or
 * transfer run ends in LEDGER_FULL results, which the report counts.
 *
 * CPU cost: the cluster's processes are found by reading /proc/PID/cmdline for
 * `ordo sequencer ...` and `ordo replica ...` (argv[0] named ordo) whose
 * --cluster argument, resolved against the process's cwd (/proc/PID/cwd),
 * names the same file as ours (realpath); a node started without --cluster is
 * taken to use nic-config/demo.ini in its cwd. utime + stime of each
 * (/proc/PID/stat, in clock ticks) are read at the start and end of the
 * measured interval; a process that started within it counts whole, one that
 * exited within it is missed. Nodes of the cluster on other hosts, or under
 * another user's /proc restrictions, are not seen: cpu.cluster_processes says
 * how many were.
 *
 * JSON (--json FILE, "-" for stdout; issue 7's peer scripts print the same
 * object). Latencies are integer ns; rates are per second:
 * {
 *   "tool": "ordo bench", "schema": 1, "system": "ordo", "date": ISO-8601 UTC,
 *   "machine": {"cores": int, "cpu_model": str},
 *   "config": {"cluster": str, "transport": "udp", "clients": int,
 *              "mode": "open"|"closed", "rate": num|null,
 *              "arrival": "fixed"|"poisson"|null, "window": int, "batch": int,
 *              "batch_delay_us": int, "duration_s": num, "warmup_s": num,
 *              "op": str, "size": int,
 *              "mix": {"opaque": int, "create": int, "transfer": int, "lookup": int},
 *              "accounts": int, "zipf": num, "seed": int, "key": int,
 *              "groups": int,          sequencer groups in the cluster file
 *              "placement": "mod"|"group"|"spread",
 *                                      client i in group i mod G, all in
 *                                      --group, or spread over every group
 *              "group": int|null,      --group N
 *              "groups_used": int},    groups that held a bench session
 *   "results": {"measured_s": num, "ordered": int, "ordered_per_s": num,
 *               "applied": int, "applied_per_s": num,
 *               "submitted": int,     requests queued with an intended time
 *                                     in the measured interval
 *               "late_starts": int,   of those, due while the window was full
 *               "unsent": int,        scheduled before the end, never sent
 *               "lag_max_ns": int,    longest queueing delay behind schedule
 *               "unanswered": int,    never ordered (end of the drain)
 *               "status": {"ok", "duplicate", "stale", "not_leader",
 *                          "overloaded", "invalid", "session_unknown": int},
 *                                     ORDERED records received, by status
 *               "apply_results": {"<RESULT NAME>": int, ...},
 *                                     first APPLIED per request, by result
 *               "retries": int, "drops": int, "events_lost": int,
 *               "session_reopens": int,
 *               "ordered_by_group": [int, ...]},  "ordered" by group, G entries
 *   "latency_ns": {"ordered": H, "applied": H} where H is
 *                 {"count", "min", "mean", "p50", "p90", "p99", "p999", "max"},
 *   "cpu": {"cluster_processes": int, "cluster_cpu_s": num,
 *           "cluster_cpu_s_per_million_ordered": num|null,
 *           "sequencer_cpu_s": num,  of cluster_cpu_s, the sequencers'
 *           "sequencer_cpu_s_per_million_ordered": num|null,
 *           "bench_cpu_s": num}
 * }
 * CSV (--csv FILE): one row per second since the start of the warm-up:
 *   t,ordered,p50_ns,p99_ns,measured
 * with t the seconds elapsed at the end of the row's second, ordered the
 * requests that became ordered in it, p50/p99 the ORDERED latency of those.
 *
 * Transport: each client opens a kernel UDP socket of its own, or, with
 * --transport dpdk, every client uses one DPDK port (dataplane/edge.h
 * dp_edge_dpdk_open) with the address --addr, through a view of it
 * (dataplane/share.h) that sends from UDP port --first-port + i and receives
 * what arrives for that port; the views serialize on one mutex. The port's
 * mempool holds every client's window and receive queue (clients x (window
 * x groups held + 256) + 4096 mbufs, at most 2^20). The report adds a
 * "transport:" line with the port's counters.
 *
 * What is not here: the peers and the comparison with its plots
 * (bench/peers/, bench/compare).
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/hist.h"
#include "client/ordo.h"
#include "client/verbs.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "common/prng.h"
#include "dataplane/dpdk.h"
#include "dataplane/edge.h"
#include "dataplane/share.h"

#define BENCH_CLIENTS_MAX	 64u
#define BENCH_BATCH_MAX		 256u	 /* due requests a client holds back */
#define BENCH_EVENTS_MAX	 512u	 /* events taken per ordo_poll */
#define BENCH_TRACK_MIN		 16384u	 /* requests remembered per client, at least */
#define BENCH_SECONDS_MAX	 86400.0 /* warm-up + duration */
#define BENCH_DRAIN_NS		 (5ull * ORDO_NS_PER_S)
#define BENCH_APPLIED_GRACE_NS	 (300ull * ORDO_NS_PER_MS)
#define BENCH_SLICE_NS		 (100ull * ORDO_NS_PER_US) /* sleep slice near a send */
#define BENCH_ROWS_EXTRA	 16u /* rows beyond warm-up + duration: drain */
#define BENCH_PROCS_MAX		 256u
#define BENCH_SESSION_OPEN_NS	 (5ull * ORDO_NS_PER_S)
#define BENCH_REOPEN_GAP_NS	 (100ull * ORDO_NS_PER_MS) /* spread: between reopen attempts */
#define BENCH_ACCOUNT_BASE	 (1ull << 60) /* pre-created accounts: BASE + 1 + rank */
#define BENCH_NEW_ACCOUNT_PREFIX (4ull << 60) /* --op create ids */
#define BENCH_TRANSFER_PREFIX	 (2ull << 60) /* transfer ids */

enum bench_op_kind { BOP_OPAQUE, BOP_CREATE, BOP_TRANSFER, BOP_LOOKUP, BOP_COUNT };
static const char *const bop_names[BOP_COUNT] = {"opaque", "create", "transfer", "lookup"};

/* What one request remembers, in a ring indexed by request_number. */
enum {
	TR_MEASURED = 1, /* intended send time inside the measured interval */
	TR_ORDERED = 2,	 /* first ORDERED or APPLIED seen */
	TR_APPLIED = 4,	 /* first APPLIED seen */
	TR_FAILED = 8,	 /* INVALID or SESSION_UNKNOWN: not ordered as sent */
};

struct bench_track {
	uint64_t n;	      /* request number; 0 = empty */
	uint16_t group;	      /* group of the request's session: (group, n) names it */
	uint64_t intended_ns; /* monotonic ns the request was due (open) or queued (closed) */
	uint32_t flags;	      /* TR_* */
};

struct bench_cfg {
	const char *cluster_path; /* as given (NULL: $ORDO_CLUSTER or the demo's) */
	uint32_t key_id;	  /* 0: no AUTH */
	unsigned nclients;	  /* 1..BENCH_CLIENTS_MAX */
	double duration_s;	  /* measured interval, seconds */
	double warmup_s;	  /* before it, seconds; excluded from the results */
	double rate;		  /* open loop: requests/s in total; 0 = closed loop */
	bool poisson;		  /* open loop: exponential gaps instead of fixed */
	uint32_t window;	  /* requests outstanding per client; 0 = the cluster's W */
	uint32_t batch;		  /* requests queued per poll, 1..BENCH_BATCH_MAX */
	uint64_t batch_delay_ns;  /* open loop: longest hold of a due request for a batch */
	const char *op_name;	  /* --op as given */
	uint32_t mix[BOP_COUNT];  /* weights; sum > 0 */
	uint32_t mix_sum;	  /* sum of mix */
	uint16_t size;		  /* OPAQUE payload bytes, 0..1024 */
	uint64_t accounts;	  /* accounts transfers and lookups choose from */
	double zipf;		  /* 0 = uniform; else the Zipf exponent */
	uint64_t seed;		  /* workload PRNG seed */
	const char *json_path;	  /* NULL, a file, or "-" */
	const char *csv_path;	  /* NULL or a file */
	const char *plot_prefix;  /* --plot: PREFIX-throughput.png, PREFIX-latency.png */
	int32_t group;		  /* --group N: every client pinned to N; -1: client i to i mod G */
	bool spread;		  /* --spread: every client holds a session in every group */
	/* --transport dpdk: the clients share one DPDK port (dataplane/share.h) */
	bool dpdk;
	uint32_t dpdk_ip;      /* --addr: the port's IPv4 address, host order */
	const char *dpdk_port; /* --dpdk-port: device name (default: the vdev's) */
	const char *dpdk_vdev; /* --dpdk-vdev: EAL --vdev, or NULL */
	bool busy_poll;	       /* --busy-poll: never sleep when idle */
	uint16_t first_port;   /* --first-port: client i sends from first_port + i */
	int eal_argc;	       /* after `--`: EAL arguments */
	char **eal_argv;
};

struct bench;

struct bench_worker {
	unsigned index;
	struct bench *b;
	pthread_t thread;
	struct ordo_client *c;
	struct ordo_prng rng;
	struct bench_track *track; /* track_mask + 1 entries */
	uint64_t track_mask;
	/* open-loop schedule */
	uint64_t next_k;		      /* fixed: this client's next request index */
	uint64_t next_ns;		      /* intended time of the next request not generated */
	uint64_t due[BENCH_BATCH_MAX];	      /* intended times generated, not yet queued (ring) */
	uint32_t due_head, due_count;	      /* ring state */
	uint64_t last_full_ns;		      /* when ordo_submit last said the window was full */
	bool window_full;		      /* the last submit attempt was refused */
	uint64_t id_seq;		      /* transfer / account ids of this client */
	uint64_t queued, answered, applied_n; /* requests queued, first answers, first APPLIED */
	uint64_t failed;		      /* FAILED events (INVALID, SESSION_UNKNOWN) */
	uint64_t last_answer_ns;	      /* monotonic time of the latest first answer */
	/* results, read by the main thread after the join */
	struct bench_hist ordered_h; /* ORDERED latency, measured requests */
	struct bench_hist applied_h; /* APPLIED latency, measured requests */
	uint64_t ordered_in_window;  /* became ordered during the measured interval */
	uint64_t applied_in_window;  /* first APPLIED during the measured interval */
	uint64_t submitted;	     /* measured requests queued */
	uint64_t late;		     /* measured requests due while the window was full */
	uint64_t unsent;	     /* scheduled before the end, never queued */
	uint64_t lag_max_ns;	     /* longest queued-minus-intended of measured requests */
	uint64_t results[16];	     /* first APPLIED by result code */
	uint64_t untracked;	     /* answers for requests no longer remembered */
	uint64_t reopens;	     /* sessions reopened after SESSION_UNKNOWN */
	uint64_t unanswered;	     /* still unanswered when the drain ended */
	uint64_t ordered_by_group[ORDO_GROUPS_MAX]; /* ordered_in_window by group */
	uint64_t reopen_at_ns; /* spread: no reopening attempt before (monotonic) */
	/* shared with the main thread for the progress line */
	pthread_mutex_t lock;		/* guards sec_h */
	struct bench_hist sec_h;	/* ORDERED latency of this second's answers */
	_Atomic uint64_t ordered_total; /* requests ordered so far, all phases */
	_Atomic uint64_t errors_total;	/* FAILED events so far */
	_Atomic uint32_t outstanding;	/* ordo_outstanding, refreshed every ~10 ms */
	_Atomic bool done;		/* the thread finished */
	uint64_t outstanding_at_ns;	/* when outstanding was last refreshed */
};

struct bench_row {
	double t;	  /* seconds since t0 at the end of the row's second */
	uint64_t ordered; /* requests that became ordered in that second */
	uint64_t p50_ns, p99_ns;
	bool measured; /* the second lies inside the measured interval */
};

struct bench_proc {
	int pid;
	uint64_t ticks; /* utime + stime, clock ticks */
	bool sequencer; /* else a replica */
};

struct bench {
	struct bench_cfg cfg;
	struct cfg_cluster *cl;
	char cluster_real[PATH_MAX]; /* realpath of the cluster file */
	uint32_t window;	     /* effective window per client and group held */
	uint16_t groups;	     /* G: sequencer groups of the cluster file */
	uint16_t lanes;		     /* groups each client holds a session in: G spread, else 1 */
	uint64_t tag;		     /* 20 bits from the clock: ids unique to the run */
	double *zipf_cdf;	     /* accounts entries, when zipf > 0 */
	uint64_t t0_ns, meas_ns, end_ns; /* monotonic: start, measured start, end */
	uint64_t rate_milli;		 /* rate x 1000 (open loop, fixed) */
	struct bench_worker w[BENCH_CLIENTS_MAX];
	struct dp_share *share; /* --transport dpdk: the port, a view per client */
	struct bench_row *rows; /* rows_max, allocated at start */
	uint32_t nrows, rows_max;
	FILE *out; /* human-readable output: stdout, or stderr with --json - */
	/* CPU */
	struct bench_proc procs_a[BENCH_PROCS_MAX];
	unsigned nprocs_a, nprocs_b;
	double cluster_cpu_s;
	double sequencer_cpu_s; /* of cluster_cpu_s, the sequencers' */
	double self_cpu_a, self_cpu_b;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ------------------------------------------------------------ workload */

static double prng_unit(struct ordo_prng *p)
{
	return (double)(ordo_prng_next(p) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
}

/* Rank of an account: uniform, or Zipf by binary search in the CDF. */
static uint64_t pick_rank(struct bench_worker *w)
{
	const struct bench *b = w->b;
	if (!b->zipf_cdf)
		return ordo_prng_below(&w->rng, b->cfg.accounts);
	double u = prng_unit(&w->rng);
	uint64_t lo = 0, hi = b->cfg.accounts - 1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (b->zipf_cdf[mid] >= u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static uint64_t account_id(uint64_t rank)
{
	return BENCH_ACCOUNT_BASE + 1 + rank;
}

static enum bench_op_kind pick_op(struct bench_worker *w)
{
	const struct bench_cfg *c = &w->b->cfg;
	uint64_t r = ordo_prng_below(&w->rng, c->mix_sum);
	for (unsigned k = 0; k < BOP_COUNT; k++) {
		if (r < c->mix[k])
			return (enum bench_op_kind)k;
		r -= c->mix[k];
	}
	return BOP_OPAQUE;
}

/* A fresh id for this client: prefix | tag | client | sequence. */
static uint64_t new_id(struct bench_worker *w, uint64_t prefix)
{
	return prefix | (w->b->tag << 40) | ((uint64_t)w->index << 34) |
	       (++w->id_seq & ((1ull << 34) - 1));
}

/* Builds the next request; returns its size. */
static uint16_t build_request(struct bench_worker *w, uint16_t *op, uint8_t *p)
{
	switch (pick_op(w)) {
	case BOP_CREATE:
		*op = WIRE_OP_CREATE_ACCOUNT;
		memset(p, 0, 16);
		ordo_st64(p, new_id(w, BENCH_NEW_ACCOUNT_PREFIX));
		return 16;
	case BOP_TRANSFER: {
		*op = WIRE_OP_TRANSFER;
		uint64_t d = pick_rank(w), c = pick_rank(w);
		if (c == d)
			c = (d + 1) % w->b->cfg.accounts;
		ordo_st64(p, new_id(w, BENCH_TRANSFER_PREFIX));
		ordo_st64(p + 8, account_id(d));
		ordo_st64(p + 16, account_id(c));
		ordo_st64(p + 24, 1);
		return 32;
	}
	case BOP_LOOKUP:
		*op = WIRE_OP_LOOKUP;
		memset(p, 0, 16);
		ordo_st64(p, account_id(pick_rank(w)));
		return 16;
	default: {
		*op = WIRE_OP_OPAQUE;
		uint16_t size = w->b->cfg.size;
		uint64_t x = w->queued;
		for (uint16_t i = 0; i < size; i++)
			p[i] = (uint8_t)(x >> (8 * (i & 7)));
		return size;
	}
	}
}

/* ------------------------------------------------------------ one client */

static bool in_measured(const struct bench *b, uint64_t t)
{
	return t >= b->meas_ns && t < b->end_ns;
}

/* Where request (group, n) is remembered. Spread clients number requests in
 * each group's session from 1, about as fast in each: n x lanes + group
 * walks the ring once. */
static struct bench_track *track_of(struct bench_worker *w, uint16_t group, uint64_t n)
{
	uint64_t lane = w->b->lanes > 1 ? group : 0;
	return &w->track[(n * w->b->lanes + lane) & w->track_mask];
}

/* Queues one request that was due at intended (ns). 0, -EAGAIN (window
 * full) or another negative errno. */
static int submit_one(struct bench_worker *w, uint64_t intended, uint64_t now)
{
	uint8_t payload[ORDO_OPAQUE_BYTES_MAX];
	uint16_t op;
	uint16_t size = build_request(w, &op, payload);
	uint64_t n;
	uint16_t group;
	int rc = ordo_submit_group(w->c, op, payload, size, &group, &n);
	if (rc)
		return rc;
	struct bench_track *t = track_of(w, group, n);
	if (t->n && !(t->flags & (TR_APPLIED | TR_FAILED)))
		w->untracked++; /* its APPLIED never came while we remembered it */
	t->n = n;
	t->group = group;
	t->intended_ns = intended;
	t->flags = 0;
	w->queued++;
	if (in_measured(w->b, intended)) {
		t->flags |= TR_MEASURED;
		w->submitted++;
		if (intended <= w->last_full_ns)
			w->late++;
		if (now > intended && now - intended > w->lag_max_ns)
			w->lag_max_ns = now - intended;
	}
	return 0;
}

/* The next intended time of the open-loop schedule. */
static void advance_schedule(struct bench_worker *w)
{
	const struct bench *b = w->b;
	if (b->cfg.poisson) {
		double mean_ns = 1e9 * b->cfg.nclients / b->cfg.rate;
		w->next_ns += (uint64_t)(-log(1.0 - prng_unit(&w->rng)) * mean_ns);
		return;
	}
	w->next_k++;
	unsigned __int128 g = (unsigned __int128)w->next_k * b->cfg.nclients + w->index;
	w->next_ns = b->t0_ns + (uint64_t)(g * 1000000000000ull / b->rate_milli);
}

static void start_schedule(struct bench_worker *w)
{
	const struct bench *b = w->b;
	if (b->cfg.poisson) {
		w->next_ns = b->t0_ns;
		advance_schedule(w);
		return;
	}
	w->next_k = 0;
	w->next_ns =
	    b->t0_ns + (uint64_t)((unsigned __int128)w->index * 1000000000000ull / b->rate_milli);
}

static void feed_open(struct bench_worker *w, uint64_t now)
{
	const struct bench *b = w->b;
	while (w->due_count < BENCH_BATCH_MAX && w->next_ns <= now && w->next_ns < b->end_ns) {
		w->due[(w->due_head + w->due_count) % BENCH_BATCH_MAX] = w->next_ns;
		w->due_count++;
		advance_schedule(w);
	}
	if (w->due_count == 0)
		return;
	bool go = w->due_count >= b->cfg.batch ||
		  now - w->due[w->due_head] >= b->cfg.batch_delay_ns || w->next_ns >= b->end_ns;
	if (!go)
		return;
	w->window_full = false;
	while (w->due_count > 0) {
		int rc = submit_one(w, w->due[w->due_head], now);
		if (rc == -EAGAIN) {
			w->last_full_ns = now;
			w->window_full = true;
			return;
		}
		if (rc)
			return; /* session lost: the loop reopens it */
		w->due_head = (w->due_head + 1) % BENCH_BATCH_MAX;
		w->due_count--;
	}
}

static void feed_closed(struct bench_worker *w, uint64_t now)
{
	const struct bench *b = w->b;
	for (;;) {
		uint64_t inflight = w->queued - w->answered;
		if (b->cfg.batch > 1 && inflight + b->cfg.batch > (uint64_t)b->window * b->lanes)
			return;
		for (uint32_t j = 0; j < b->cfg.batch; j++)
			if (submit_one(w, now, now) != 0)
				return;
	}
}

static void record_ordered(struct bench_worker *w, struct bench_track *t, uint64_t now)
{
	const struct bench *b = w->b;
	uint64_t lat = now > t->intended_ns ? now - t->intended_ns : 0;
	t->flags |= TR_ORDERED;
	w->answered++;
	w->last_answer_ns = now;
	if (t->flags & TR_MEASURED)
		bench_hist_record(&w->ordered_h, lat);
	if (in_measured(b, now)) {
		w->ordered_in_window++;
		if (t->group < ORDO_GROUPS_MAX)
			w->ordered_by_group[t->group]++;
	}
	bench_hist_record(&w->sec_h, lat);
	atomic_fetch_add_explicit(&w->ordered_total, 1, memory_order_relaxed);
}

static void handle_events(struct bench_worker *w, const struct ordo_event *ev, int k, uint64_t now)
{
	if (k <= 0)
		return;
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < k; i++) {
		const struct ordo_event *e = &ev[i];
		struct bench_track *t = track_of(w, e->group, e->request_number);
		if (t->n != e->request_number || t->n == 0 || t->group != e->group) {
			w->untracked++;
			continue;
		}
		switch (e->kind) {
		case ORDO_EV_ORDERED:
			if (!(t->flags & (TR_ORDERED | TR_FAILED)))
				record_ordered(w, t, now);
			break;
		case ORDO_EV_APPLIED:
			if (t->flags & (TR_APPLIED | TR_FAILED))
				break;
			if (!(t->flags & TR_ORDERED))
				record_ordered(w, t, now);
			t->flags |= TR_APPLIED;
			w->applied_n++;
			if (e->result < ORDO_ARRAY_LEN(w->results))
				w->results[e->result]++;
			if (t->flags & TR_MEASURED)
				bench_hist_record(&w->applied_h,
						  now > t->intended_ns ? now - t->intended_ns : 0);
			if (in_measured(w->b, now))
				w->applied_in_window++;
			break;
		case ORDO_EV_FAILED:
			if (t->flags & (TR_ORDERED | TR_FAILED))
				break;
			t->flags |= TR_FAILED;
			w->answered++;
			w->failed++;
			w->last_answer_ns = now;
			atomic_fetch_add_explicit(&w->errors_total, 1, memory_order_relaxed);
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
}

/* Polls until no events are waiting (sending what is due first). */
static void poll_all(struct bench_worker *w, uint64_t timeout_ns)
{
	struct ordo_event ev[BENCH_EVENTS_MAX];
	int k = ordo_poll(w->c, timeout_ns, ev, BENCH_EVENTS_MAX);
	handle_events(w, ev, k, ordo_mono_ns());
	while (k == (int)BENCH_EVENTS_MAX) {
		k = ordo_poll(w->c, 0, ev, BENCH_EVENTS_MAX);
		handle_events(w, ev, k, ordo_mono_ns());
	}
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / ORDO_NS_PER_S),
			      .tv_nsec = (long)(ns % ORDO_NS_PER_S)};
	nanosleep(&ts, NULL);
}

/* Waits for the next thing to do: an answer, or the next send. */
static void wait_open(struct bench_worker *w, uint64_t now)
{
	const struct bench *b = w->b;
	uint64_t next = b->end_ns;
	if (w->window_full) {
		poll_all(w, ORDO_NS_PER_MS); /* only an answer frees the window */
		return;
	}
	if (w->next_ns < next)
		next = w->next_ns;
	if (w->due_count > 0 && w->due[w->due_head] + b->cfg.batch_delay_ns < next)
		next = w->due[w->due_head] + b->cfg.batch_delay_ns;
	if (next <= now)
		return;
	poll_all(w, next - now);
}

static bool drained(const struct bench_worker *w, uint64_t now)
{
	if (w->queued != w->answered)
		return false;
	return w->applied_n + w->failed >= w->queued ||
	       now >= w->last_answer_ns + BENCH_APPLIED_GRACE_NS;
}

/* True while the client can take requests: its session is live, or (spread)
 * its session in some group is. */
static bool client_usable(const struct bench_worker *w)
{
	if (ordo_session_live(w->c))
		return true;
	if (!w->b->cfg.spread)
		return false;
	for (uint16_t g = 0; g < w->b->groups; g++) {
		uint64_t id, session;
		if (ordo_group_session(w->c, g, &id, &session) == 0)
			return true;
	}
	return false;
}

static void reopen_session(struct bench_worker *w)
{
	if (ordo_session_open(w->c, ORDO_NS_PER_S) != 0) {
		if (!w->b->cfg.spread)
			sleep_ns(10 * ORDO_NS_PER_MS);
		return;
	}
	w->reopens++;
	if (w->b->cfg.spread)
		return; /* only the lost groups were reopened: the others' requests are
			 * still out, and the lost ones were reported FAILED */
	pthread_mutex_lock(&w->lock);
	memset(w->track, 0, (w->track_mask + 1) * sizeof *w->track);
	pthread_mutex_unlock(&w->lock);
	w->answered = w->queued; /* what was in flight was reported FAILED */
	w->window_full = false;
}

static void *worker_main(void *arg)
{
	struct bench_worker *w = arg;
	struct bench *b = w->b;
	bool open = b->cfg.rate > 0, ended = false;
	uint64_t drain_until = 0;
	(void)prctl(PR_SET_TIMERSLACK, 1000UL); /* wake within ~1 us of a send time */
	if (open)
		start_schedule(w);
	while (ordo_mono_ns() < b->t0_ns)
		sleep_ns(BENCH_SLICE_NS);
	for (;;) {
		uint64_t now = ordo_mono_ns();
		if (!ended && (now >= b->end_ns || interrupted)) {
			ended = true;
			drain_until = now + (interrupted ? ORDO_NS_PER_S : BENCH_DRAIN_NS);
			/* send what is due before the end and not yet sent (a
			 * batch being filled, the last gap before the end); what
			 * the window refuses never left: unsent */
			bool refused = interrupted || !open;
			while (!refused && (w->due_count > 0 || w->next_ns < b->end_ns)) {
				while (w->due_count < BENCH_BATCH_MAX && w->next_ns < b->end_ns) {
					w->due[(w->due_head + w->due_count) % BENCH_BATCH_MAX] =
					    w->next_ns;
					w->due_count++;
					advance_schedule(w);
				}
				while (w->due_count > 0 && !refused) {
					refused = submit_one(w, w->due[w->due_head], now) != 0;
					if (!refused) {
						w->due_head = (w->due_head + 1) % BENCH_BATCH_MAX;
						w->due_count--;
					}
				}
			}
			w->unsent += w->due_count;
			w->due_count = 0;
			while (open && w->next_ns < b->end_ns && !interrupted) {
				w->unsent++;
				advance_schedule(w);
			}
		}
		if (!ended && !ordo_session_live(w->c) &&
		    (!b->cfg.spread || now >= w->reopen_at_ns)) {
			/* spread: the groups still live take requests meanwhile;
			 * a group that cannot reopen is tried again in 100 ms */
			reopen_session(w);
			w->reopen_at_ns = ordo_mono_ns() + BENCH_REOPEN_GAP_NS;
			continue;
		}
		if (!ended) {
			if (open)
				feed_open(w, now);
			else
				feed_closed(w, now);
		}
		poll_all(w, 0);
		now = ordo_mono_ns();
		if (now >= w->outstanding_at_ns + 10 * ORDO_NS_PER_MS) {
			atomic_store_explicit(&w->outstanding, ordo_outstanding(w->c),
					      memory_order_relaxed);
			w->outstanding_at_ns = now;
		}
		if (ended) {
			if (drained(w, now) || now >= drain_until || !client_usable(w))
				break;
			poll_all(w, 10 * ORDO_NS_PER_MS);
		} else if (open) {
			wait_open(w, now);
		} else {
			uint64_t left = b->end_ns > now ? b->end_ns - now : 0;
			poll_all(w, left < 50 * ORDO_NS_PER_MS ? left : 50 * ORDO_NS_PER_MS);
		}
	}
	w->unanswered = w->queued - w->answered;
	atomic_store_explicit(&w->outstanding, ordo_outstanding(w->c), memory_order_relaxed);
	atomic_store_explicit(&w->done, true, memory_order_release);
	return NULL;
}

/* ------------------------------------------------------------ setup */

/* Creates the accounts through client 0, pipelined through its window.
 * 0, or -ETIMEDOUT when the cluster stops answering. */
static int create_accounts(struct bench *b)
{
	struct bench_worker *w = &b->w[0];
	struct ordo_event ev[BENCH_EVENTS_MAX];
	uint64_t next = 0, results[16] = {0}, last_progress = ordo_mono_ns();
	uint32_t last_out = 0;
	while (next < b->cfg.accounts || ordo_outstanding(w->c) > 0) {
		while (next < b->cfg.accounts) {
			uint8_t p[16] = {0};
			ordo_st64(p, account_id(next));
			uint64_t n;
			if (ordo_submit(w->c, WIRE_OP_CREATE_ACCOUNT, p, 16, &n) != 0)
				break;
			next++;
		}
		int k = ordo_poll(w->c, 10 * ORDO_NS_PER_MS, ev, BENCH_EVENTS_MAX);
		for (int i = 0; i < k; i++)
			if (ev[i].kind == ORDO_EV_APPLIED && ev[i].result < 16)
				results[ev[i].result]++;
		uint32_t out = ordo_outstanding(w->c);
		uint64_t now = ordo_mono_ns();
		if (k > 0 || out != last_out)
			last_progress = now;
		last_out = out;
		if (!ordo_session_live(w->c) || now > last_progress + BENCH_SESSION_OPEN_NS ||
		    interrupted)
			return -ETIMEDOUT;
	}
	fprintf(b->out,
		"bench: %" PRIu64 " accounts ready (ids %" PRIu64 "..%" PRIu64 "; applied so far: "
		"OK=%" PRIu64 " EXISTS=%" PRIu64 ")\n",
		b->cfg.accounts, account_id(0), account_id(b->cfg.accounts - 1), results[WIRE_R_OK],
		results[WIRE_R_EXISTS]);
	return 0;
}

static int build_zipf(struct bench *b)
{
	uint64_t n = b->cfg.accounts;
	b->zipf_cdf = malloc(n * sizeof *b->zipf_cdf);
	if (!b->zipf_cdf)
		return -ENOMEM;
	double sum = 0;
	for (uint64_t k = 0; k < n; k++) {
		sum += 1.0 / pow((double)(k + 1), b->cfg.zipf);
		b->zipf_cdf[k] = sum;
	}
	for (uint64_t k = 0; k < n; k++)
		b->zipf_cdf[k] /= sum;
	b->zipf_cdf[n - 1] = 1.0;
	return 0;
}

/* ------------------------------------------------------------ CPU of the cluster */

static double self_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static bool read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	*len = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[*len] = 0;
	return true;
}

/* True if /proc/PID/cmdline is `ordo sequencer|replica ...` of our cluster. */
/* 0: not one of the cluster's nodes; 1: a sequencer; 2: a replica. */
static int cluster_role(const struct bench *b, const char *pid)
{
	char path[64], cmd[4096];
	size_t len;
	snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
	if (!read_small(path, cmd, sizeof cmd, &len) || len == 0)
		return 0;
	const char *argv[64];
	unsigned argc = 0;
	for (size_t i = 0; i < len && argc < 64; i += strlen(cmd + i) + 1)
		argv[argc++] = cmd + i;
	if (argc < 2)
		return 0;
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	int role = !strcmp(argv[1], "sequencer") ? 1 : !strcmp(argv[1], "replica") ? 2 : 0;
	if (strcmp(base, "ordo") != 0 || role == 0)
		return 0;
	const char *file = "nic-config/demo.ini";
	for (unsigned i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--cluster") && i + 1 < argc)
			file = argv[i + 1];
		else if (!strncmp(argv[i], "--cluster=", 10))
			file = argv[i] + 10;
	}
	char full[PATH_MAX + 512], real[PATH_MAX];
	if (file[0] == '/') {
		snprintf(full, sizeof full, "%s", file);
	} else {
		char cwd_link[64], cwd[PATH_MAX];
		snprintf(cwd_link, sizeof cwd_link, "/proc/%s/cwd", pid);
		ssize_t n = readlink(cwd_link, cwd, sizeof cwd - 1);
		if (n <= 0)
			return 0;
		cwd[n] = 0;
		snprintf(full, sizeof full, "%s/%s", cwd, file);
	}
	return realpath(full, real) && !strcmp(real, b->cluster_real) ? role : 0;
}

static bool proc_ticks(int pid, uint64_t *ticks)
{
	char path[64], buf[1024];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (!read_small(path, buf, sizeof buf, &len))
		return false;
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return false;
	/* fields after comm: 3 state ... 14 utime 15 stime */
	unsigned long long ut = 0, st = 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

static unsigned cluster_procs(const struct bench *b, struct bench_proc *out, unsigned max)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	unsigned k = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && k < max) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		int pid = atoi(de->d_name);
		int role = pid <= 0 || pid == getpid() ? 0 : cluster_role(b, de->d_name);
		if (role == 0)
			continue;
		if (proc_ticks(pid, &out[k].ticks)) {
			out[k].pid = pid;
			out[k].sequencer = role == 1;
			k++;
		}
	}
	closedir(d);
	return k;
}

static void cpu_sample_start(struct bench *b)
{
	b->nprocs_a = cluster_procs(b, b->procs_a, BENCH_PROCS_MAX);
	b->self_cpu_a = self_cpu_s();
}

static void cpu_sample_end(struct bench *b)
{
	struct bench_proc now[BENCH_PROCS_MAX];
	b->nprocs_b = cluster_procs(b, now, BENCH_PROCS_MAX);
	b->self_cpu_b = self_cpu_s();
	uint64_t ticks = 0, seq_ticks = 0;
	for (unsigned i = 0; i < b->nprocs_b; i++) {
		uint64_t before = 0;
		for (unsigned j = 0; j < b->nprocs_a; j++)
			if (b->procs_a[j].pid == now[i].pid)
				before = b->procs_a[j].ticks;
		uint64_t d = now[i].ticks >= before ? now[i].ticks - before : 0;
		ticks += d;
		if (now[i].sequencer)
			seq_ticks += d;
	}
	long hz = sysconf(_SC_CLK_TCK);
	b->cluster_cpu_s = (double)ticks / (double)(hz > 0 ? hz : 100);
	b->sequencer_cpu_s = (double)seq_ticks / (double)(hz > 0 ? hz : 100);
}

static void cpu_model(char *out, size_t cap)
{
	snprintf(out, cap, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) != 0 && strncmp(line, "Hardware", 8) != 0)
			continue;
		char *v = strchr(line, ':');
		if (!v)
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = 0;
		snprintf(out, cap, "%s", v);
		break;
	}
	fclose(f);
}

/* ------------------------------------------------------------ reporting */

static const char *fmt_ns(char *buf, size_t cap, uint64_t ns)
{
	if (ns < 10 * ORDO_NS_PER_US)
		snprintf(buf, cap, "%" PRIu64 "ns", ns);
	else if (ns < ORDO_NS_PER_MS)
		snprintf(buf, cap, "%.1fus", ns / 1e3);
	else if (ns < 10 * ORDO_NS_PER_S)
		snprintf(buf, cap, "%.2fms", ns / 1e6);
	else
		snprintf(buf, cap, "%.2fs", ns / 1e9);
	return buf;
}

/* Merges every worker's per-second histogram into sec and empties them. */
static void take_second(struct bench *b, struct bench_hist *sec, uint64_t *ordered,
			uint64_t *errors, uint32_t *outstanding)
{
	bench_hist_reset(sec);
	*ordered = *errors = 0;
	*outstanding = 0;
	for (unsigned i = 0; i < b->cfg.nclients; i++) {
		struct bench_worker *w = &b->w[i];
		pthread_mutex_lock(&w->lock);
		bench_hist_merge(sec, &w->sec_h);
		bench_hist_reset(&w->sec_h);
		pthread_mutex_unlock(&w->lock);
		*ordered += atomic_load_explicit(&w->ordered_total, memory_order_relaxed);
		*errors += atomic_load_explicit(&w->errors_total, memory_order_relaxed);
		*outstanding += atomic_load_explicit(&w->outstanding, memory_order_relaxed);
	}
}

static void progress(struct bench *b, struct bench_hist *sec, uint64_t now, uint64_t *last_ordered,
		     uint64_t last_ns)
{
	uint64_t ordered, errors;
	uint32_t outstanding;
	take_second(b, sec, &ordered, &errors, &outstanding);
	double dt = (double)(now - last_ns) / 1e9;
	uint64_t delta = ordered - *last_ordered;
	*last_ordered = ordered;
	uint64_t p50 = bench_hist_value_at_percentile(sec, 50);
	uint64_t p99 = bench_hist_value_at_percentile(sec, 99);
	double t = (double)(now - b->t0_ns) / 1e9;
	uint64_t mid = last_ns + (now - last_ns) / 2;
	const char *phase = mid < b->meas_ns ? "warmup" : mid < b->end_ns ? "run" : "drain";
	char a[32], c[32];
	fprintf(b->out,
		"bench: t=%5.1fs %-6s ordered/s=%-8.0f p50=%-9s p99=%-9s outstanding=%-5u "
		"errors=%" PRIu64 "\n",
		t, phase, dt > 0 ? (double)delta / dt : 0.0, fmt_ns(a, sizeof a, p50),
		fmt_ns(c, sizeof c, p99), outstanding, errors);
	fflush(b->out);
	if (b->nrows < b->rows_max)
		b->rows[b->nrows++] = (struct bench_row){
		    .t = t,
		    .ordered = delta,
		    .p50_ns = p50,
		    .p99_ns = p99,
		    .measured = last_ns + 50 * ORDO_NS_PER_MS >= b->meas_ns &&
				now <= b->end_ns + 50 * ORDO_NS_PER_MS,
		};
}

struct bench_totals {
	struct bench_hist ordered, applied;
	uint64_t ordered_in_window, applied_in_window, submitted, late, unsent, lag_max_ns;
	uint64_t unanswered, reopens, untracked;
	uint64_t results[16];
	uint64_t status[8], retries, drops, events_lost;
	uint64_t srtt_max_ns, rto_max_ns; /* largest among the clients at the end */
	uint64_t ordered_by_group[ORDO_GROUPS_MAX];
	double measured_s;
};

static void sum_totals(struct bench *b, struct bench_totals *t)
{
	for (unsigned i = 0; i < b->cfg.nclients; i++) {
		struct bench_worker *w = &b->w[i];
		bench_hist_merge(&t->ordered, &w->ordered_h);
		bench_hist_merge(&t->applied, &w->applied_h);
		t->ordered_in_window += w->ordered_in_window;
		t->applied_in_window += w->applied_in_window;
		t->submitted += w->submitted;
		t->late += w->late;
		t->unsent += w->unsent;
		if (w->lag_max_ns > t->lag_max_ns)
			t->lag_max_ns = w->lag_max_ns;
		t->unanswered += w->unanswered;
		t->reopens += w->reopens;
		t->untracked += w->untracked;
		for (unsigned r = 0; r < 16; r++)
			t->results[r] += w->results[r];
		for (unsigned g = 0; g < ORDO_GROUPS_MAX; g++)
			t->ordered_by_group[g] += w->ordered_by_group[g];
		const struct ordo_client_stats *s = ordo_client_stats(w->c);
		for (unsigned k = 0; k < 8; k++)
			t->status[k] += s->status_count[k];
		t->retries += s->retries;
		t->drops += s->dropped;
		t->events_lost += s->events_lost;
		if (s->rto_ns > t->rto_max_ns)
			t->rto_max_ns = s->rto_ns;
		if (s->srtt_ns > t->srtt_max_ns)
			t->srtt_max_ns = s->srtt_ns;
	}
}

static void print_hist_line(FILE *f, const char *name, const struct bench_hist *h)
{
	char p50[32], p90[32], p99[32], p999[32], max[32], mean[32];
	fprintf(f, "%s latency: p50=%s p90=%s p99=%s p99.9=%s max=%s mean=%s count=%" PRIu64 "\n",
		name, fmt_ns(p50, sizeof p50, bench_hist_value_at_percentile(h, 50)),
		fmt_ns(p90, sizeof p90, bench_hist_value_at_percentile(h, 90)),
		fmt_ns(p99, sizeof p99, bench_hist_value_at_percentile(h, 99)),
		fmt_ns(p999, sizeof p999, bench_hist_value_at_percentile(h, 99.9)),
		fmt_ns(max, sizeof max, bench_hist_max(h)),
		fmt_ns(mean, sizeof mean, (uint64_t)bench_hist_mean(h)), bench_hist_count(h));
}

static void describe_config(const struct bench *b, char *buf, size_t cap)
{
	const struct bench_cfg *c = &b->cfg;
	char mode[96];
	if (c->rate > 0)
		snprintf(mode, sizeof mode, "open loop %.0f/s (%s)", c->rate,
			 c->poisson ? "poisson" : "fixed");
	else
		snprintf(mode, sizeof mode, "closed loop");
	char size[32] = "";
	if (c->mix[BOP_OPAQUE])
		snprintf(size, sizeof size, " (opaque %u B)", c->size);
	snprintf(
	    buf, cap, "%u clients, %s, window %u, batch %u, op %s%s, %.1f s after %.1f s warm-up",
	    c->nclients, mode, b->window, c->batch, c->op_name, size, c->duration_s, c->warmup_s);
}

static const char *placement_name(const struct bench *b)
{
	return b->cfg.spread ? "spread" : b->cfg.group >= 0 ? "group" : "mod";
}

/* Groups that held a session of some bench client. */
static unsigned groups_used(const struct bench *b)
{
	if (b->cfg.spread)
		return b->groups;
	if (b->cfg.group >= 0)
		return 1;
	return b->cfg.nclients < b->groups ? b->cfg.nclients : b->groups;
}

static void print_report(struct bench *b, const struct bench_totals *t, const char *model,
			 long cores)
{
	FILE *f = b->out;
	char desc[256];
	describe_config(b, desc, sizeof desc);
	fprintf(f, "\nbench: %s\n", desc);
	fprintf(f, "throughput: %.0f ordered/s (%" PRIu64 " in %.2f s), %.0f applied/s\n",
		t->ordered_in_window / t->measured_s, t->ordered_in_window, t->measured_s,
		t->applied_in_window / t->measured_s);
	fprintf(f, "groups: %u of %u used (", groups_used(b), b->groups);
	if (b->cfg.spread)
		fprintf(f, "each client spread over all");
	else if (b->cfg.group >= 0)
		fprintf(f, "every client in group %d", b->cfg.group);
	else
		fprintf(f, "client i in group i mod %u", b->groups);
	fprintf(f, "); ordered by group:");
	for (unsigned g = 0; g < b->groups && g < ORDO_GROUPS_MAX; g++)
		fprintf(f, " %u=%" PRIu64, g, t->ordered_by_group[g]);
	fprintf(f, "\n");
	print_hist_line(f, "ORDERED", &t->ordered);
	print_hist_line(f, "APPLIED", &t->applied);
	fprintf(f, "statuses (ORDERED records received):");
	for (unsigned k = 0; k < 7; k++)
		fprintf(f, " %s=%" PRIu64, wire_status_name((enum wire_status)k), t->status[k]);
	fprintf(f, "\nresults (first APPLIED):");
	for (unsigned r = 0; r < 16; r++)
		if (t->results[r])
			fprintf(f, " %s=%" PRIu64, wire_result_name((enum wire_result)r),
				t->results[r]);
	fprintf(f,
		"\nschedule: submitted=%" PRIu64 " late_starts=%" PRIu64 " unsent=%" PRIu64
		" lag_max=%.3fms unanswered=%" PRIu64 "\n",
		t->submitted, t->late, t->unsent, t->lag_max_ns / 1e6, t->unanswered);
	fprintf(f,
		"client: retries=%" PRIu64 " drops=%" PRIu64 " events_lost=%" PRIu64
		" session_reopens=%" PRIu64 " srtt_max=%.2fms rto_max=%.2fms\n",
		t->retries, t->drops, t->events_lost, t->reopens, t->srtt_max_ns / 1e6,
		t->rto_max_ns / 1e6);
	if (b->share) {
		struct dp_transport *port = dp_share_inner(b->share);
		const struct dp_stats st = port->stats;
		struct dp_share_counters sc;
		struct dp_dpdk_counters dc;
		dp_share_counters(b->share, &sc);
		dp_dpdk_counters(port, &dc);
		fprintf(f,
			"transport: dpdk rx=%" PRIu64 " tx=%" PRIu64 " tx_dropped=%" PRIu64
			" alloc_failed=%" PRIu64 " rx_queue_full=%" PRIu64 " rx_no_client=%" PRIu64
			" tx_arp_held=%" PRIu64 " mbufs_free=%" PRIu64 "\n",
			st.rx_datagrams, st.tx_datagrams, st.tx_dropped, st.alloc_failed,
			sc.rx_queue_full, sc.rx_no_view, dc.tx_arp_held, dc.mbufs_free);
	}
	fprintf(f, "machine: %ld cores, %s\n", cores, model);
	double per_m = t->ordered_in_window ? b->cluster_cpu_s * 1e6 / t->ordered_in_window : 0;
	double seq_per_m =
	    t->ordered_in_window ? b->sequencer_cpu_s * 1e6 / t->ordered_in_window : 0;
	fprintf(f,
		"cpu: cluster %u processes %.2f s (%.2f s per million ordered; sequencers %.2f s, "
		"%.2f s per million); bench %.2f s\n",
		b->nprocs_b, b->cluster_cpu_s, per_m, b->sequencer_cpu_s, seq_per_m,
		b->self_cpu_b - b->self_cpu_a);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const struct bench_hist *h)
{
	fprintf(f,
		"{\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"mean\": %.0f, \"p50\": %" PRIu64
		", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64
		", \"max\": %" PRIu64 "}",
		bench_hist_count(h), bench_hist_min(h), bench_hist_mean(h),
		bench_hist_value_at_percentile(h, 50), bench_hist_value_at_percentile(h, 90),
		bench_hist_value_at_percentile(h, 99), bench_hist_value_at_percentile(h, 99.9),
		bench_hist_max(h));
}

static int write_json(const struct bench *b, const struct bench_totals *t, const char *model,
		      long cores)
{
	const struct bench_cfg *c = &b->cfg;
	FILE *f = strcmp(c->json_path, "-") ? fopen(c->json_path, "w") : stdout;
	if (!f) {
		fprintf(stderr, "bench: %s: %s\n", c->json_path, strerror(errno));
		return -errno;
	}
	char date[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "{\"tool\": \"ordo bench\", \"schema\": 1, \"system\": \"ordo\", \"date\": ");
	json_str(f, date);
	fprintf(f, ",\n \"machine\": {\"cores\": %ld, \"cpu_model\": ", cores);
	json_str(f, model);
	fprintf(f, "},\n \"config\": {\"cluster\": ");
	json_str(f, b->cl->path);
	fprintf(f, ", \"transport\": \"%s\", \"clients\": %u, \"mode\": \"%s\", ",
		c->dpdk ? "dpdk" : "udp", c->nclients, c->rate > 0 ? "open" : "closed");
	if (c->rate > 0)
		fprintf(f, "\"rate\": %.3f, \"arrival\": \"%s\", ", c->rate,
			c->poisson ? "poisson" : "fixed");
	else
		fprintf(f, "\"rate\": null, \"arrival\": null, ");
	fprintf(f,
		"\"window\": %u, \"batch\": %u, \"batch_delay_us\": %" PRIu64
		", \"duration_s\": %.3f, \"warmup_s\": %.3f, \"op\": ",
		b->window, c->batch, (uint64_t)(c->batch_delay_ns / ORDO_NS_PER_US), c->duration_s,
		c->warmup_s);
	json_str(f, c->op_name);
	fprintf(f,
		", \"size\": %u, \"mix\": {\"opaque\": %u, \"create\": %u, \"transfer\": %u, "
		"\"lookup\": %u}, \"accounts\": %" PRIu64 ", \"zipf\": %.3f, \"seed\": %" PRIu64
		", \"key\": %u",
		c->size, c->mix[BOP_OPAQUE], c->mix[BOP_CREATE], c->mix[BOP_TRANSFER],
		c->mix[BOP_LOOKUP], c->accounts, c->zipf, c->seed, c->key_id);
	fprintf(f, ", \"groups\": %u, \"placement\": \"%s\", ", b->groups, placement_name(b));
	if (c->group >= 0)
		fprintf(f, "\"group\": %d, ", c->group);
	else
		fprintf(f, "\"group\": null, ");
	fprintf(f, "\"groups_used\": %u},\n", groups_used(b));
	fprintf(f,
		" \"results\": {\"measured_s\": %.3f, \"ordered\": %" PRIu64
		", \"ordered_per_s\": %.1f, \"applied\": %" PRIu64 ", \"applied_per_s\": %.1f, "
		"\"submitted\": %" PRIu64 ", \"late_starts\": %" PRIu64 ", \"unsent\": %" PRIu64
		", \"lag_max_ns\": %" PRIu64 ", \"unanswered\": %" PRIu64 ",\n  \"status\": {",
		t->measured_s, t->ordered_in_window, t->ordered_in_window / t->measured_s,
		t->applied_in_window, t->applied_in_window / t->measured_s, t->submitted, t->late,
		t->unsent, t->lag_max_ns, t->unanswered);
	static const char *const st[] = {"ok",	    "duplicate",       "not_leader", "overloaded",
					 "invalid", "session_unknown", "stale"};
	for (unsigned k = 0; k < 7; k++)
		fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", st[k], t->status[k]);
	fprintf(f, "},\n  \"apply_results\": {");
	bool first = true;
	for (unsigned r = 0; r < 16; r++)
		if (t->results[r]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ",
				wire_result_name((enum wire_result)r), t->results[r]);
			first = false;
		}
	fprintf(f,
		"},\n  \"retries\": %" PRIu64 ", \"drops\": %" PRIu64 ", \"events_lost\": %" PRIu64
		", \"session_reopens\": %" PRIu64 ",\n  \"ordered_by_group\": [",
		t->retries, t->drops, t->events_lost, t->reopens);
	for (unsigned g = 0; g < b->groups && g < ORDO_GROUPS_MAX; g++)
		fprintf(f, "%s%" PRIu64, g ? ", " : "", t->ordered_by_group[g]);
	fprintf(f, "]},\n");
	fprintf(f, " \"latency_ns\": {\"ordered\": ");
	json_hist(f, &t->ordered);
	fprintf(f, ",\n                \"applied\": ");
	json_hist(f, &t->applied);
	fprintf(f, "},\n \"cpu\": {\"cluster_processes\": %u, \"cluster_cpu_s\": %.3f, ",
		b->nprocs_b, b->cluster_cpu_s);
	if (t->ordered_in_window && b->nprocs_b)
		fprintf(f, "\"cluster_cpu_s_per_million_ordered\": %.3f, ",
			b->cluster_cpu_s * 1e6 / t->ordered_in_window);
	else
		fprintf(f, "\"cluster_cpu_s_per_million_ordered\": null, ");
	fprintf(f, "\"sequencer_cpu_s\": %.3f, ", b->sequencer_cpu_s);
	if (t->ordered_in_window && b->nprocs_b)
		fprintf(f, "\"sequencer_cpu_s_per_million_ordered\": %.3f, ",
			b->sequencer_cpu_s * 1e6 / t->ordered_in_window);
	else
		fprintf(f, "\"sequencer_cpu_s_per_million_ordered\": null, ");
	fprintf(f, "\"bench_cpu_s\": %.3f}}\n", b->self_cpu_b - b->self_cpu_a);
	int rc = 0;
	if (f != stdout) {
		if (fclose(f) != 0)
			rc = -errno;
	} else {
		fflush(f);
	}
	return rc;
}

static int write_csv(const struct bench *b)
{
	FILE *f = fopen(b->cfg.csv_path, "w");
	if (!f) {
		fprintf(stderr, "bench: %s: %s\n", b->cfg.csv_path, strerror(errno));
		return -errno;
	}
	fprintf(f, "t,ordered,p50_ns,p99_ns,measured\n");
	for (uint32_t i = 0; i < b->nrows; i++)
		fprintf(f, "%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d\n", b->rows[i].t,
			b->rows[i].ordered, b->rows[i].p50_ns, b->rows[i].p99_ns,
			b->rows[i].measured ? 1 : 0);
	return fclose(f) == 0 ? 0 : -errno;
}

/* --plot PREFIX: the data (PREFIX-throughput.dat, PREFIX-latency.dat), a
 * gnuplot script (PREFIX.gp) and what it draws: PREFIX-throughput.png, ordered/s
 * and the ORDERED p50/p99 of each second; PREFIX-latency.png, ORDERED and
 * APPLIED latency by percentile on a log scale of 1/(1 - p) (HdrHistogram's
 * percentile distribution plot). */
static void plot_percentiles(FILE *f, const struct bench_hist *o, const struct bench_hist *a)
{
	uint64_t n =
	    bench_hist_count(o) > bench_hist_count(a) ? bench_hist_count(o) : bench_hist_count(a);
	for (int k = 0;; k++) {
		double tail = pow(10.0, -k / 20.0); /* 1 - p */
		if (k > 0 && 1.0 / tail > (double)n)
			break;
		double pct = 100.0 * (1.0 - tail);
		pct = floor(pct * 10000.0) / 10000.0; /* the histogram takes 4 decimals */
		fprintf(f, "%.6f %.6f %.6f %.6f\n", pct, 1.0 / (1.0 - pct / 100.0),
			bench_hist_value_at_percentile(o, pct) / 1e6,
			bench_hist_value_at_percentile(a, pct) / 1e6);
		if (k > 400)
			break;
	}
	fprintf(f, "100 %.6f %.6f %.6f\n", (double)(n ? n : 1), bench_hist_max(o) / 1e6,
		bench_hist_max(a) / 1e6);
}

static int write_plots(const struct bench *b, const struct bench_totals *t)
{
	const char *pre = b->cfg.plot_prefix;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s-throughput.dat", pre);
	FILE *f = fopen(path, "w");
	if (!f)
		goto fail;
	fprintf(f, "# t ordered_per_s p50_ms p99_ms measured\n");
	for (uint32_t i = 0; i < b->nrows; i++)
		fprintf(f, "%.3f %" PRIu64 " %.3f %.3f %d\n", b->rows[i].t, b->rows[i].ordered,
			b->rows[i].p50_ns / 1e6, b->rows[i].p99_ns / 1e6,
			b->rows[i].measured ? 1 : 0);
	if (fclose(f) != 0)
		goto fail;
	snprintf(path, sizeof path, "%s-latency.dat", pre);
	f = fopen(path, "w");
	if (!f)
		goto fail;
	fprintf(f, "# percentile 1/(1-p) ordered_ms applied_ms\n");
	plot_percentiles(f, &t->ordered, &t->applied);
	if (fclose(f) != 0)
		goto fail;
	/* gnuplot reads names relative to where it runs: give it the
	 * directory and the base name apart. */
	char dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", pre);
	snprintf(dir, sizeof dir, "%s", dirname(tmp)); /* dirname and basename */
	snprintf(tmp, sizeof tmp, "%s", pre);	       /* may write their argument */
	snprintf(base, sizeof base, "%s", basename(tmp));
	char desc[256];
	describe_config(b, desc, sizeof desc);
	snprintf(path, sizeof path, "%s.gp", pre);
	f = fopen(path, "w");
	if (!f)
		goto fail;
	fprintf(f,
		"# written by ordo bench; run in %s: gnuplot %s.gp\n"
		"set terminal pngcairo size 1000,560 font \",10\" noenhanced\n"
		"set grid\nset key top left\nset rmargin 8\n"
		"set output \"%s-throughput.png\"\n"
		"set title \"ordo bench: %s\"\n"
		"set xlabel \"seconds since the start (warm-up included)\"\n"
		"set ylabel \"ordered requests/s\"\nset y2label \"ORDERED latency, ms\"\n"
		"set ytics nomirror\nset y2tics\nset yrange [0:*]\nset y2range [0:*]\n"
		"plot \"%s-throughput.dat\" using 1:2 with linespoints title \"ordered/s\", \\\n"
		"     \"\" using 1:3 axes x1y2 with lines title \"p50\", \\\n"
		"     \"\" using 1:4 axes x1y2 with lines title \"p99\"\n"
		"set output \"%s-latency.png\"\n"
		"set title \"ordo bench latency by percentile: %s\"\n"
		"set logscale x\nunset y2tics\nunset y2label\nset ytics mirror\n"
		"set xlabel \"percentile\"\nset ylabel \"ms\"\n"
		"set xtics (\"0%%%%\" 1, \"90%%%%\" 10, \"99%%%%\" 100, \"99.9%%%%\" 1000, "
		"\"99.99%%%%\" 10000, \"99.999%%%%\" 100000)\n"
		"plot \"%s-latency.dat\" using 2:3 with lines title \"ORDERED\", \\\n"
		"     \"\" using 2:4 with lines title \"APPLIED\"\n",
		dir, base, base, desc, base, base, desc, base);
	if (fclose(f) != 0)
		goto fail;
	char cmd[3 * PATH_MAX];
	snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s.gp' 2>&1", dir, base);
	if (strchr(dir, '\'') || strchr(base, '\'')) {
		fprintf(stderr, "bench: --plot %s: a quote in the name; run gnuplot on %s.gp\n",
			pre, pre);
		return -EINVAL;
	}
	int rc = system(cmd);
	if (rc != 0) {
		fprintf(
		    stderr,
		    "bench: gnuplot failed (exit %d) on %s.gp; is it installed (apt-get install "
		    "gnuplot-nox)? The data is in %s-*.dat\n",
		    rc, pre, pre);
		return -EIO;
	}
	fprintf(b->out, "plots: %s-throughput.png %s-latency.png\n", pre, pre);
	return 0;
fail:
	fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
	return -errno;
}

/* ------------------------------------------------------------ options */

static const char usage_text[] =
    "usage: ordo bench [--cluster FILE] [--key N] [--clients N] [--duration S] [--warmup S]\n"
    "                  [--rate R [--poisson] | --closed] [--window W] [--batch B]\n"
    "                  [--batch-delay US] [--op opaque|create|transfer|lookup|mix]\n"
    "                  [--size BYTES] [--mix SPEC] [--accounts N] [--zipf THETA]\n"
    "                  [--json FILE|-] [--csv FILE] [--plot PREFIX] [--seed N]\n"
    "                  [--group N | --spread]\n"
    "                  [--transport udp|dpdk --addr A.B.C.D [--dpdk-vdev SPEC]\n"
    "                   [--dpdk-port NAME] [--first-port P] [--busy-poll] [-- EAL ARGS]]\n"
    "  Drives a running cluster from N clients (default 4), each with its own session\n"
    "  and thread, and reports ORDERED and APPLIED latency percentiles, throughput,\n"
    "  statuses and the cluster's CPU seconds per million ordered requests.\n"
    "  --rate R       open loop: R requests/s in total on a fixed schedule (--poisson:\n"
    "                 exponential gaps); latency from each request's intended send time\n"
    "  --closed       closed loop (default): each client keeps --window requests out\n"
    "  --window W     requests outstanding per client (default: the session window W)\n"
    "  --duration S   measured seconds (default 10); --warmup S before it (default 1)\n"
    "  --batch B      requests a client queues before each poll (one SUBMIT datagram\n"
    "                 holds as many as fit); open loop holds due requests up to\n"
    "                 --batch-delay US (default 1000) to fill a batch\n"
    "  --op OP        opaque (default; --size bytes, default 64), create, transfer,\n"
    "                 lookup, or mix with --mix \"transfer=70,lookup=10,opaque=20\"\n"
    "  --accounts N   accounts for transfer and lookup (default 1000), created first\n"
    "  --zipf THETA   skew account choice by a Zipf law (default 0: uniform)\n"
    "  --json FILE    write the results as one JSON object (- for stdout)\n"
    "  --csv FILE     one row per second: t,ordered,p50_ns,p99_ns,measured\n"
    "  --plot PREFIX  PNG plots with gnuplot: PREFIX-throughput.png (ordered/s and\n"
    "                 p50/p99 each second), PREFIX-latency.png (latency by percentile)\n"
    "  --seed N       seed of the workload PRNG (default 1)\n"
    "  --group N      every client's session in sequencer group N (default: client i\n"
    "                 in group i mod the cluster's groups)\n"
    "  --spread       each client holds a session in every group and sends each\n"
    "                 request to the one with the most window room (--window per group)\n"
    "  --transport T  udp (default: a kernel socket per client) or dpdk: every client on\n"
    "                 one DPDK port with address --addr, client i sending from UDP port\n"
    "                 --first-port + i (default 47000). --dpdk-vdev adds an EAL --vdev\n"
    "                 (net_af_xdp0,iface=eth0); --dpdk-port names the device (default:\n"
    "                 the vdev's name); EAL arguments after `--` (default: --in-memory\n"
    "                 --no-pci --log-level=error, on huge pages; a bound PCI NIC needs\n"
    "                 arguments without --no-pci); --busy-poll never sleeps when idle\n"
    "Exit status: 0 done, 1 the cluster did not answer, 2 usage.\n";

static bool parse_u64_arg(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*v = x;
	return true;
}

static bool parse_double_arg(const char *s, double *v)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (errno || end == s || *end || !(x >= 0) || isinf(x))
		return false;
	*v = x;
	return true;
}

static int op_index(const char *name, size_t len)
{
	for (unsigned k = 0; k < BOP_COUNT; k++)
		if (strlen(bop_names[k]) == len && !strncmp(bop_names[k], name, len))
			return (int)k;
	return -1;
}

/* "transfer=70,lookup=10,opaque=20" into weights. */
static bool parse_mix(const char *spec, uint32_t mix[BOP_COUNT])
{
	memset(mix, 0, BOP_COUNT * sizeof mix[0]);
	const char *p = spec;
	while (*p) {
		const char *eq = strchr(p, '=');
		if (!eq)
			return false;
		int k = op_index(p, (size_t)(eq - p));
		char *end;
		errno = 0;
		unsigned long v = strtoul(eq + 1, &end, 10);
		if (k < 0 || errno || end == eq + 1 || v > 1000000 || (*end && *end != ','))
			return false;
		mix[k] += (uint32_t)v;
		p = *end ? end + 1 : end;
	}
	return true;
}

static int usage_error(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "ordo bench: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fputs(usage_text, stderr);
	return 2;
}

static int parse_options(int argc, char **argv, struct bench_cfg *c)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"clients", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"rate", required_argument, NULL, 'r'},
	    {"poisson", no_argument, NULL, 'P'},
	    {"closed", no_argument, NULL, 'C'},
	    {"window", required_argument, NULL, 'W'},
	    {"op", required_argument, NULL, 'o'},
	    {"size", required_argument, NULL, 's'},
	    {"mix", required_argument, NULL, 'm'},
	    {"accounts", required_argument, NULL, 'a'},
	    {"zipf", required_argument, NULL, 'z'},
	    {"batch", required_argument, NULL, 'b'},
	    {"batch-delay", required_argument, NULL, 'D'},
	    {"json", required_argument, NULL, 'j'},
	    {"csv", required_argument, NULL, 'v'},
	    {"plot", required_argument, NULL, 'l'},
	    {"seed", required_argument, NULL, 'S'},
	    {"group", required_argument, NULL, 'g'},
	    {"spread", no_argument, NULL, 'G'},
	    {"transport", required_argument, NULL, 'T'},
	    {"addr", required_argument, NULL, 'A'},
	    {"dpdk-port", required_argument, NULL, 'p'},
	    {"dpdk-vdev", required_argument, NULL, 'V'},
	    {"first-port", required_argument, NULL, 'L'},
	    {"busy-poll", no_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	*c = (struct bench_cfg){
	    .nclients = 4,
	    .duration_s = 10,
	    .warmup_s = 1,
	    .batch = 1,
	    .batch_delay_ns = ORDO_NS_PER_MS,
	    .op_name = "opaque",
	    .size = 64,
	    .accounts = 1000,
	    .seed = 1,
	    .group = -1,
	    .first_port = 47000,
	};
	const char *transport = "udp", *addr = NULL;
	bool first_port_set = false;
	const char *mix_spec = NULL;
	bool closed = false;
	int opt;
	optind = 1;
	while (
	    (opt = getopt_long(argc, argv, "+c:k:n:d:w:r:PCW:o:s:m:a:z:b:D:j:v:l:S:g:GT:A:p:V:L:Bh",
			       opts, NULL)) != -1) {
		uint64_t u = 0;
		double x = 0;
		switch (opt) {
		case 'c':
			c->cluster_path = optarg;
			break;
		case 'o':
			c->op_name = optarg;
			break;
		case 'm':
			mix_spec = optarg;
			break;
		case 'j':
			c->json_path = optarg;
			break;
		case 'v':
			c->csv_path = optarg;
			break;
		case 'l':
			c->plot_prefix = optarg;
			break;
		case 'P':
			c->poisson = true;
			break;
		case 'C':
			closed = true;
			break;
		case 'G':
			c->spread = true;
			break;
		case 'T':
			transport = optarg;
			break;
		case 'A':
			addr = optarg;
			break;
		case 'p':
			c->dpdk_port = optarg;
			break;
		case 'V':
			c->dpdk_vdev = optarg;
			break;
		case 'B':
			c->busy_poll = true;
			break;
		case 'L':
			if (!parse_u64_arg(optarg, &u) || u == 0 || u > 65535)
				return usage_error("--first-port must be 1..65535", optarg);
			c->first_port = (uint16_t)u;
			first_port_set = true;
			break;
		case 'g':
			if (!parse_u64_arg(optarg, &u))
				return usage_error("not an unsigned number", optarg);
			c->group = u < ORDO_GROUPS_MAX ? (int32_t)u : INT32_MAX;
			break;
		case 'd':
		case 'w':
		case 'r':
		case 'z':
			if (!parse_double_arg(optarg, &x))
				return usage_error("not a number", optarg);
			if (opt == 'd')
				c->duration_s = x;
			else if (opt == 'w')
				c->warmup_s = x;
			else if (opt == 'r')
				c->rate = x;
			else
				c->zipf = x;
			break;
		case 'k':
		case 'n':
		case 'W':
		case 's':
		case 'a':
		case 'b':
		case 'D':
		case 'S':
			if (!parse_u64_arg(optarg, &u))
				return usage_error("not an unsigned number", optarg);
			if (opt == 'k')
				c->key_id = (uint32_t)u;
			else if (opt == 'n')
				c->nclients = u <= BENCH_CLIENTS_MAX ? (unsigned)u : 0;
			else if (opt == 'W')
				c->window = u <= ORDO_SESSION_WINDOW_MAX ? (uint32_t)u : UINT32_MAX;
			else if (opt == 's')
				c->size = u <= ORDO_OPAQUE_BYTES_MAX ? (uint16_t)u : UINT16_MAX;
			else if (opt == 'a')
				c->accounts = u;
			else if (opt == 'b')
				c->batch = u <= BENCH_BATCH_MAX ? (uint32_t)u : 0;
			else if (opt == 'D')
				c->batch_delay_ns = u * ORDO_NS_PER_US;
			else
				c->seed = u;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		default:
			return usage_error(NULL, NULL);
		}
	}
	if (optind > 1 && !strcmp(argv[optind - 1], "--")) {
		c->eal_argc = argc - optind;
		c->eal_argv = &argv[optind];
	} else if (optind != argc) {
		return usage_error("unexpected argument", argv[optind]);
	}
	if (!strcmp(transport, "dpdk"))
		c->dpdk = true;
	else if (strcmp(transport, "udp"))
		return usage_error("--transport must be udp or dpdk", transport);
	if (!c->dpdk &&
	    (addr || c->dpdk_port || c->dpdk_vdev || c->busy_poll || c->eal_argc || first_port_set))
		return usage_error("--addr, --dpdk-port, --dpdk-vdev, --first-port, --busy-poll "
				   "and EAL arguments go with --transport dpdk",
				   NULL);
	if (c->dpdk) {
		if (!addr || !dp_parse_ip(addr, &c->dpdk_ip))
			return usage_error("--transport dpdk needs --addr A.B.C.D", addr);
		if (!c->dpdk_port && !c->dpdk_vdev)
			return usage_error("--transport dpdk needs --dpdk-vdev or --dpdk-port",
					   NULL);
	}
	if (c->nclients < 1)
		return usage_error("--clients must be 1..64", NULL);
	if (c->duration_s <= 0 || c->duration_s + c->warmup_s > BENCH_SECONDS_MAX)
		return usage_error("--duration must be > 0 and duration + warm-up at most a day",
				   NULL);
	if (closed && c->rate > 0)
		return usage_error("--rate (open loop) and --closed exclude each other", NULL);
	if (c->poisson && c->rate <= 0)
		return usage_error("--poisson needs --rate", NULL);
	if (c->rate > 0 && c->rate < 0.001)
		return usage_error("--rate must be at least 0.001", NULL);
	if (c->window == UINT32_MAX)
		return usage_error("--window must be at most 4096", NULL);
	if (c->size == UINT16_MAX)
		return usage_error("--size must be at most 1024", NULL);
	if (c->batch < 1)
		return usage_error("--batch must be 1..256", NULL);
	if (c->dpdk && (uint32_t)c->first_port + c->nclients - 1 > 65535)
		return usage_error("--first-port + --clients must stay below 65536", NULL);
	if (c->spread && c->group >= 0)
		return usage_error("--group (pinned) and --spread exclude each other", NULL);
	if (c->group == INT32_MAX)
		return usage_error("--group must be below 16", NULL);
	if (!strcmp(c->op_name, "mix")) {
		if (!mix_spec || !parse_mix(mix_spec, c->mix))
			return usage_error(
			    "--op mix needs --mix like transfer=70,lookup=10,opaque=20", mix_spec);
	} else {
		int k = op_index(c->op_name, strlen(c->op_name));
		if (k < 0)
			return usage_error("unknown --op", c->op_name);
		if (mix_spec)
			return usage_error("--mix goes with --op mix", NULL);
		c->mix[k] = 1;
	}
	for (unsigned k = 0; k < BOP_COUNT; k++)
		c->mix_sum += c->mix[k];
	if (c->mix_sum == 0)
		return usage_error("the mix has no weight", mix_spec);
	if ((c->mix[BOP_TRANSFER] || c->mix[BOP_LOOKUP]) && c->accounts < 2)
		return usage_error("transfers and lookups need --accounts of at least 2", NULL);
	return 0;
}

/* ------------------------------------------------------------ main */

/* --transport dpdk: one port, a view per client. */
static int open_dpdk(struct bench *b)
{
	const struct bench_cfg *c = &b->cfg;
	static char name[64];
	const char *port = c->dpdk_port;
	if (!port) {
		size_t n = strcspn(c->dpdk_vdev, ",");
		snprintf(name, sizeof name, "%.*s", (int)n, c->dpdk_vdev);
		port = name;
	}
	char prefix[32];
	snprintf(prefix, sizeof prefix, "ordo-bench-%d", (int)getpid());
	uint16_t ports[BENCH_CLIENTS_MAX];
	for (unsigned i = 0; i < c->nclients; i++)
		ports[i] = (uint16_t)(c->first_port + i);
	/* Mbufs held beyond the port's rings: every client's receive queue and
	 * a burst in hand (libordo keeps no buffer once sent). */
	uint32_t queue = 4 * ORDO_DP_BURST_MAX;
	uint32_t held = c->nclients * (queue + ORDO_DP_BURST_MAX) + 1024;
	struct dp_edge_dpdk p = {
	    .port_name = port,
	    .vdev = c->dpdk_vdev,
	    .prefix = prefix,
	    .ip = c->dpdk_ip,
	    .range_lo = ports[0],
	    .range_hi = (uint16_t)(ports[0] + c->nclients - 1),
	    .mbufs_held = held,
	    .busy_poll = c->busy_poll,
	};
	/* Not the cluster file's dpdk_eal, which is the nodes': huge pages by
	 * default (the fastest mempool; --no-huge works too). */
	static char *eal_default[] = {(char *)"--in-memory", (char *)"--no-pci",
				      (char *)"--log-level=error"};
	int eal_argc = c->eal_argc ? c->eal_argc : 3;
	char **eal_argv = c->eal_argc ? c->eal_argv : eal_default;
	struct dp_transport *t;
	/* rte_eal_init pins the calling thread to the main lcore's CPU, and the
	 * client threads started later would inherit that: keep the affinity
	 * the process had, so they spread over every core. */
	cpu_set_t cpus;
	bool have_cpus = sched_getaffinity(0, sizeof cpus, &cpus) == 0;
	int rc = dp_edge_dpdk_open(b->cl, &p, eal_argc, eal_argv, &t);
	if (have_cpus)
		(void)pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
	if (rc) {
		fprintf(stderr, "ordo bench: cannot open DPDK port %s: %s\n", port, strerror(-rc));
		return rc;
	}
	rc = dp_share_open(t, ports, c->nclients, queue, c->busy_poll, &b->share);
	if (rc) {
		dp_close(t);
		fprintf(stderr, "ordo bench: %s\n", strerror(-rc));
	}
	return rc;
}

static int open_clients(struct bench *b)
{
	if (b->cfg.dpdk) {
		int rc = open_dpdk(b);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < b->cfg.nclients; i++) {
		struct bench_worker *w = &b->w[i];
		struct ordo_client_cfg cc = {
		    .cluster = b->cl,
		    .key_id = b->cfg.key_id,
		    .group = b->cfg.group >= 0 ? (uint16_t)b->cfg.group : (uint16_t)(i % b->groups),
		    .spread = b->cfg.spread,
		    .window = b->cfg.window,
		    .transport = b->share ? dp_share_view(b->share, i) : NULL};
		int rc = ordo_client_open(&cc, &w->c);
		if (rc) {
			fprintf(stderr, "ordo bench: cannot open client %u: %s\n", i,
				strerror(-rc));
			return rc;
		}
		rc = ordo_session_open(w->c, BENCH_SESSION_OPEN_NS);
		if (rc) {
			fprintf(stderr,
				"ordo bench: client %u: no session: %s; is the cluster running "
				"(ordo status)?\n",
				i, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int init_workers(struct bench *b)
{
	uint64_t track = BENCH_TRACK_MIN;
	while (track < 16ull * b->window * b->lanes)
		track <<= 1;
	for (unsigned i = 0; i < b->cfg.nclients; i++) {
		struct bench_worker *w = &b->w[i];
		w->index = i;
		w->b = b;
		ordo_prng_seed(&w->rng, b->cfg.seed * 1000003u + i);
		w->track = calloc(track, sizeof *w->track);
		w->track_mask = track - 1;
		if (!w->track || bench_hist_init(&w->ordered_h, 0) ||
		    bench_hist_init(&w->applied_h, 0) || bench_hist_init(&w->sec_h, 0))
			return -ENOMEM;
		pthread_mutex_init(&w->lock, NULL);
	}
	return 0;
}

static void free_all(struct bench *b)
{
	for (unsigned i = 0; i < BENCH_CLIENTS_MAX; i++) {
		struct bench_worker *w = &b->w[i];
		ordo_client_close(w->c);
		free(w->track);
		if (w->ordered_h.counts) {
			bench_hist_fini(&w->ordered_h);
			bench_hist_fini(&w->applied_h);
			bench_hist_fini(&w->sec_h);
			pthread_mutex_destroy(&w->lock);
		}
	}
	dp_share_close(b->share);
	free(b->zipf_cdf);
	free(b->rows);
	free(b->cl);
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / ORDO_NS_PER_S),
			      .tv_nsec = (long)(t % ORDO_NS_PER_S)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !interrupted)
		;
}

/* The run: start the threads, print progress each second, sample CPU at the
 * edges of the measured interval, join. */
static int run(struct bench *b)
{
	struct bench_hist sec;
	if (bench_hist_init(&sec, 0))
		return -ENOMEM;
	b->t0_ns = ordo_mono_ns() + 20 * ORDO_NS_PER_MS;
	b->meas_ns = b->t0_ns + (uint64_t)(b->cfg.warmup_s * 1e9);
	b->end_ns = b->meas_ns + (uint64_t)(b->cfg.duration_s * 1e9);
	unsigned started = 0;
	for (; started < b->cfg.nclients; started++)
		if (pthread_create(&b->w[started].thread, NULL, worker_main, &b->w[started]) != 0)
			break;
	if (started < b->cfg.nclients) {
		fprintf(stderr, "ordo bench: cannot start a client thread\n");
		interrupted = 1;
	}
	bool sampled_a = false, sampled_b = false;
	uint64_t tick = b->t0_ns + ORDO_NS_PER_S, last_tick = b->t0_ns, last_ordered = 0;
	for (;;) {
		bool all_done = true;
		for (unsigned i = 0; i < started; i++)
			all_done &= atomic_load_explicit(&b->w[i].done, memory_order_acquire);
		if (all_done)
			break;
		uint64_t wake = tick;
		if (!sampled_a && b->meas_ns < wake)
			wake = b->meas_ns;
		if (!sampled_b && b->end_ns < wake)
			wake = b->end_ns;
		uint64_t now = ordo_mono_ns();
		if (wake > now + 50 * ORDO_NS_PER_MS)
			wake = now + 50 * ORDO_NS_PER_MS; /* notice the end of the drain */
		sleep_until(wake);
		now = ordo_mono_ns();
		if (!sampled_a && now >= b->meas_ns) {
			cpu_sample_start(b);
			sampled_a = true;
		}
		if (!sampled_b && (now >= b->end_ns || interrupted)) {
			cpu_sample_end(b);
			sampled_b = true;
		}
		if (now >= tick) {
			progress(b, &sec, now, &last_ordered, last_tick);
			last_tick = now;
			tick += ORDO_NS_PER_S;
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(b->w[i].thread, NULL);
	if (!sampled_a)
		cpu_sample_start(b);
	if (!sampled_b)
		cpu_sample_end(b);
	/* the last partial second */
	uint64_t now = ordo_mono_ns();
	if (now > last_tick + 100 * ORDO_NS_PER_MS)
		progress(b, &sec, now, &last_ordered, last_tick);
	bench_hist_fini(&sec);
	return started == b->cfg.nclients ? 0 : -EAGAIN;
}

int bench_main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	int prc = parse_options(argc, argv, &b->cfg);
	if (prc)
		return prc == 1 ? 0 : prc;
	b->out = b->cfg.json_path && !strcmp(b->cfg.json_path, "-") ? stderr : stdout;
	int rc = 1;
	b->cl = malloc(sizeof *b->cl);
	if (!b->cl || ordo_load_cluster(b->cfg.cluster_path, b->cl))
		goto out;
	if (!realpath(b->cl->path, b->cluster_real))
		snprintf(b->cluster_real, sizeof b->cluster_real, "%s", b->cl->path);
	b->groups = cfg_groups(b->cl);
	b->lanes = b->cfg.spread ? b->groups : 1;
	if (b->cfg.group >= (int32_t)b->groups) {
		fprintf(stderr, "ordo bench: --group %d: the cluster has %u sequencer group%s\n",
			b->cfg.group, b->groups, b->groups == 1 ? "" : "s");
		rc = 2;
		goto out;
	}
	b->window = b->cfg.window ? b->cfg.window : b->cl->session_window;
	if (b->window > b->cl->session_window) {
		fprintf(stderr, "ordo bench: --window %u exceeds the cluster's session window %u\n",
			b->window, b->cl->session_window);
		rc = 2;
		goto out;
	}
	if ((b->cfg.mix[BOP_TRANSFER] || b->cfg.mix[BOP_LOOKUP]) &&
	    b->cfg.accounts > b->cl->accounts_max) {
		fprintf(stderr,
			"ordo bench: --accounts exceeds the cluster's accounts_max %" PRIu64 "\n",
			b->cl->accounts_max);
		rc = 2;
		goto out;
	}
	b->rate_milli = (uint64_t)(b->cfg.rate * 1000.0 + 0.5);
	b->tag = (ordo_real_ns() / ORDO_NS_PER_MS) & 0xFFFFF;
	b->rows_max = (uint32_t)(b->cfg.warmup_s + b->cfg.duration_s) + BENCH_ROWS_EXTRA;
	b->rows = calloc(b->rows_max, sizeof *b->rows);
	if (!b->rows || init_workers(b) != 0 ||
	    (b->cfg.zipf > 0 && (b->cfg.mix[BOP_TRANSFER] || b->cfg.mix[BOP_LOOKUP]) &&
	     build_zipf(b) != 0)) {
		fprintf(stderr, "ordo bench: out of memory\n");
		goto out;
	}
	struct sigaction sa = {.sa_handler = on_sigint};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (open_clients(b) != 0)
		goto out;
	if ((b->cfg.mix[BOP_TRANSFER] || b->cfg.mix[BOP_LOOKUP]) && create_accounts(b) != 0) {
		fprintf(stderr,
			"ordo bench: the cluster stopped answering while creating accounts\n");
		goto out;
	}
	char desc[256];
	describe_config(b, desc, sizeof desc);
	fprintf(b->out, "bench: cluster %s: %s\n", b->cl->path, desc);
	fflush(b->out);
	if (run(b) != 0)
		goto out;
	struct bench_totals t = {0};
	if (bench_hist_init(&t.ordered, 0) || bench_hist_init(&t.applied, 0))
		goto out;
	t.measured_s = b->cfg.duration_s;
	if (interrupted) {
		uint64_t stop = ordo_mono_ns();
		t.measured_s = stop > b->meas_ns ? (double)(stop - b->meas_ns) / 1e9 : 1e-9;
		if (t.measured_s > b->cfg.duration_s)
			t.measured_s = b->cfg.duration_s;
	}
	sum_totals(b, &t);
	char model[256];
	cpu_model(model, sizeof model);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	print_report(b, &t, model, cores);
	fflush(b->out);
	rc = 0;
	if (b->cfg.json_path && write_json(b, &t, model, cores) != 0)
		rc = 1;
	if (b->cfg.csv_path && write_csv(b) != 0)
		rc = 1;
	if (b->cfg.plot_prefix && write_plots(b, &t) != 0)
		rc = 1;
	if (t.ordered_in_window == 0) {
		fprintf(stderr, "ordo bench: nothing was ordered in the measured interval; is the "
				"cluster running?\n");
		rc = 1;
	}
	if (interrupted) {
		fprintf(stderr, "ordo bench: interrupted\n");
		rc = 1;
	}
	bench_hist_fini(&t.ordered);
	bench_hist_fini(&t.applied);
out:
	free_all(b);
	return rc;
}
