/*
 * `ordo demo`: starts the cluster of a cluster file (one sequencer and three
 * replicas in nic-config/demo.ini) as separate processes on loopback, creates
 * accounts, drives transfers from several clients with a live progress line,
 * prints the balances, checks that every replica applied the same order to
 * the same state, and ends with
 *   demo: ordered=N applied=N replicas=3 agree=yes digest=<32 hex>
 * `--serve` keeps the cluster running until interrupted.
 */
#include "demo.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "client/verbs.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "common/prng.h"

#define DEMO_CLIENTS_MAX 16u
#define BANK_ACCOUNT	 1u
#define BANK_FUNDS	 1000000000ull

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct demo {
	struct cfg_cluster cl;
	const char *cluster_path;
	unsigned seconds;
	unsigned nclients;
	unsigned accounts;
	bool serve;
	struct ordo_procs procs;
	struct ordo_client *clients[DEMO_CLIENTS_MAX];
	struct ordo_prng rng;
	uint64_t ordered, applied, failed, transfer_seq;
	uint64_t results[16];
};

static void usage(void)
{
	fprintf(stderr,
		"usage: ordo demo [--cluster FILE] [--seconds S] [--clients N] [--accounts A]\n"
		"                 [--serve] [--transport udp|dpdk]\n"
		"  Starts the cluster's nodes on this machine, creates A accounts (default 16),\n"
		"  drives transfers from N clients (default 4) for S seconds (default 3),\n"
		"  prints the balances and checks that the replicas agree. --serve starts the\n"
		"  cluster and keeps it running until Ctrl-C.\n"
		"  Without --cluster: as root, on DPDK ports in the local virtual topology\n"
		"  (nic-config/netns.sh up nic-config/virtual.ini: a namespace per node,\n"
		"  net_af_xdp over veth, torn down after), and on kernel UDP over loopback\n"
		"  (nic-config/demo.ini) when that cannot be set up. --transport udp picks\n"
		"  loopback, --transport dpdk insists on the virtual topology. --serve\n"
		"  stays on loopback unless given --transport dpdk.\n");
}

static int submit_transfer(struct demo *d, struct ordo_client *c, unsigned ci)
{
	uint8_t p[32];
	uint64_t debit = 2 + ordo_prng_below(&d->rng, d->accounts - 1);
	uint64_t credit = 2 + ordo_prng_below(&d->rng, d->accounts - 1);
	uint64_t amount = 1 + ordo_prng_below(&d->rng, 100);
	if (ordo_prng_below(&d->rng, 8) == 0)
		debit = BANK_ACCOUNT; /* the bank keeps funding the others */
	ordo_st64(p, ((uint64_t)(ci + 1) << 48) | ++d->transfer_seq);
	ordo_st64(p + 8, debit);
	ordo_st64(p + 16, credit);
	ordo_st64(p + 24, amount);
	uint64_t n;
	return ordo_submit(c, WIRE_OP_TRANSFER, p, 32, &n);
}

static void count_events(struct demo *d, const struct ordo_event *ev, int k)
{
	for (int i = 0; i < k; i++) {
		if (ev[i].kind == ORDO_EV_ORDERED)
			d->ordered++;
		else if (ev[i].kind == ORDO_EV_APPLIED) {
			d->applied++;
			if (ev[i].result < 16)
				d->results[ev[i].result]++;
		} else
			d->failed++;
	}
}

/* Creates the accounts through one client: 1 is the bank (no limits), the
 * others may not spend more than they received. */
static int create_accounts(struct demo *d)
{
	struct ordo_client *c = d->clients[0];
	for (unsigned a = 1; a <= d->accounts; a++) {
		uint8_t p[16] = {0};
		ordo_st64(p, a);
		ordo_st32(p + 8,
			  a == BANK_ACCOUNT ? 0 : WIRE_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS);
		struct ordo_event e;
		int rc = ordo_call(c, WIRE_OP_CREATE_ACCOUNT, p, 16, &e, 5 * ORDO_NS_PER_S);
		if (rc) {
			fprintf(stderr, "demo: creating account %u: %s\n", a, strerror(-rc));
			return rc;
		}
		if (e.result != WIRE_R_OK && e.result != WIRE_R_EXISTS) {
			fprintf(stderr, "demo: creating account %u: %s\n", a,
				wire_result_name(e.result));
			return -EIO;
		}
	}
	return 0;
}

static void progress(struct demo *d, double t, uint64_t last_ordered, double dt, bool tty)
{
	printf("%sdemo: t=%4.1fs ordered=%" PRIu64 " applied=%" PRIu64 " rate=%.0f/s%s",
	       tty ? "\r" : "", t, d->ordered, d->applied, (d->ordered - last_ordered) / dt,
	       tty ? "   " : "\n");
	fflush(stdout);
}

static int drive(struct demo *d)
{
	bool tty = isatty(1);
	uint64_t start = ordo_mono_ns(), end = start + (uint64_t)d->seconds * ORDO_NS_PER_S;
	uint64_t next_report = start + ORDO_NS_PER_S, last_ordered = 0, last_t = start;
	struct ordo_event ev[256];
	while (!interrupted) {
		uint64_t now = ordo_mono_ns();
		bool feeding = now < end;
		uint32_t outstanding = 0;
		for (unsigned i = 0; i < d->nclients; i++) {
			struct ordo_client *c = d->clients[i];
			while (feeding && ordo_session_live(c) && submit_transfer(d, c, i) == 0)
				;
			int k = ordo_poll(c, 0, ev, 256);
			count_events(d, ev, k);
			outstanding += ordo_outstanding(c);
		}
		if (!feeding && outstanding == 0)
			break;
		if (!feeding && now > end + 10 * ORDO_NS_PER_S) {
			fprintf(stderr, "\ndemo: %u requests still unanswered after 10 s\n",
				outstanding);
			return -ETIMEDOUT;
		}
		/* Block briefly on one client so an idle loop does not spin. */
		int k = ordo_poll(d->clients[0], 200 * ORDO_NS_PER_US, ev, 256);
		count_events(d, ev, k);
		if (now >= next_report) {
			progress(d, (now - start) / 1e9, last_ordered, (now - last_t) / 1e9, tty);
			last_ordered = d->ordered;
			last_t = now;
			next_report += ORDO_NS_PER_S;
		}
	}
	uint64_t now = ordo_mono_ns();
	progress(d, (now - start) / 1e9, last_ordered, (now - last_t) / 1e9 + 1e-9, tty);
	if (tty)
		putchar('\n');
	/* APPLIED answers trail ORDERED by a little: collect them briefly. */
	uint64_t until = ordo_mono_ns() + 300 * ORDO_NS_PER_MS;
	while (ordo_mono_ns() < until)
		for (unsigned i = 0; i < d->nclients; i++)
			count_events(d, ev, ordo_poll(d->clients[i], ORDO_NS_PER_MS, ev, 256));
	return interrupted ? -EINTR : 0;
}

static void print_balances(struct demo *d)
{
	printf("\n%-8s %14s %14s %14s\n", "account", "debits", "credits", "balance");
	for (unsigned a = 1; a <= d->accounts; a++) {
		uint8_t p[16] = {0};
		ordo_st64(p, a);
		struct ordo_event e;
		if (ordo_call(d->clients[0], WIRE_OP_LOOKUP, p, 16, &e, 5 * ORDO_NS_PER_S) != 0 ||
		    e.result != WIRE_R_OK || e.data_size != 32) {
			printf("%-8u (lookup failed)\n", a);
			continue;
		}
		uint64_t debits = ordo_ld64(e.data + 8), credits = ordo_ld64(e.data + 16);
		char bal[32];
		if (credits >= debits)
			snprintf(bal, sizeof bal, "%" PRIu64, credits - debits);
		else
			snprintf(bal, sizeof bal, "-%" PRIu64, debits - credits);
		printf("%-8u %14" PRIu64 " %14" PRIu64 " %14s\n", a, debits, credits, bal);
	}
	printf("\nresults: ");
	for (unsigned r = 0; r < 16; r++)
		if (d->results[r])
			printf("%s=%" PRIu64 " ", wire_result_name((enum wire_result)r),
			       d->results[r]);
	printf("\n");
}

/* Waits until every replica applied what the sequencers committed, then
 * compares their digests. */
static int verify(struct demo *d, uint64_t *ordered, uint64_t *applied, uint32_t *nreplicas,
		  uint8_t digest[16])
{
	struct ordo_client *c = d->clients[0];
	const struct cfg_node *reps[ORDO_NODES_MAX];
	uint32_t nreps = cfg_replicas(&d->cl, reps, ORDO_NODES_MAX);
	*nreplicas = nreps;
	*ordered = 0;
	for (uint32_t i = 0; i < d->cl.nnodes; i++) {
		struct wire_status_msg s;
		if (d->cl.nodes[i].role == CFG_ROLE_SEQUENCER &&
		    ordo_status(c, d->cl.nodes[i].node_id, &s, ORDO_NS_PER_S) == 0 &&
		    s.role == WIRE_ROLE_LEADER && s.commit > *ordered)
			*ordered = s.commit;
	}
	bool agree = nreps > 0;
	uint64_t deadline = ordo_mono_ns() + 10 * ORDO_NS_PER_S;
	*applied = UINT64_MAX;
	for (uint32_t r = 0; r < nreps; r++) {
		struct wire_status_msg s = {0};
		for (;;) {
			int rc = ordo_status(c, reps[r]->node_id, &s, ORDO_NS_PER_S);
			if (rc == 0 && s.commit >= *ordered)
				break;
			if (ordo_mono_ns() > deadline) {
				fprintf(stderr,
					"demo: replica %u applied %" PRIu64 " of %" PRIu64 "\n",
					reps[r]->node_id, s.commit, *ordered);
				agree = false;
				break;
			}
			usleep(20000);
		}
		if (s.commit < *applied)
			*applied = s.commit;
		if (r == 0)
			memcpy(digest, s.digest, 16);
		else if (memcmp(digest, s.digest, 16) != 0 || s.commit != *applied)
			agree = false;
	}
	if (*applied == UINT64_MAX)
		*applied = 0;
	return agree ? 0 : -1;
}

#define DEMO_LOOPBACK "nic-config/demo.ini"
#define DEMO_VIRTUAL  "nic-config/virtual.ini"
#define DEMO_NETNS    "nic-config/netns.sh"

static int run(struct demo *d, bool *not_up);

/* Whether to try the DPDK path: asked for, or by default for a one-shot
 * demo as root with the virtual topology's files at hand. --serve stays on
 * loopback unless asked, so the other verbs' default cluster file
 * (nic-config/demo.ini) reaches what it serves. */
static bool want_dpdk(const char *transport_opt, bool serve)
{
	if (transport_opt)
		return strcmp(transport_opt, "dpdk") == 0;
	return !serve && geteuid() == 0 && access(DEMO_VIRTUAL, R_OK) == 0 &&
	       access(DEMO_NETNS, X_OK) == 0;
}

/* nic-config/netns.sh up: DEMO_VIRTUAL, or NULL after saying why not. */
static const char *topology_up(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "demo: the DPDK path needs root (network namespaces, XDP)\n");
		return NULL;
	}
	fflush(NULL);
	int rc = system(DEMO_NETNS " down " DEMO_VIRTUAL " >/dev/null 2>&1; " DEMO_NETNS
				   " up " DEMO_VIRTUAL " >/tmp/ordo-demo-netns.log 2>&1");
	if (rc != 0) {
		fprintf(stderr, "demo: could not set up the virtual DPDK topology (see "
				"/tmp/ordo-demo-netns.log); running on kernel UDP over loopback\n");
		(void)system(DEMO_NETNS " down " DEMO_VIRTUAL " >/dev/null 2>&1");
		return NULL;
	}
	return DEMO_VIRTUAL;
}

static void topology_down(const char *cluster)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, DEMO_NETNS " down %s >/dev/null 2>&1", cluster);
	fflush(NULL);
	if (system(cmd) != 0)
		fprintf(stderr, "demo: `%s` failed\n", cmd);
}

/* Forgets a run that did not come up, for a second one. */
static void reset(struct demo *d)
{
	memset(&d->procs, 0, sizeof d->procs);
	memset(d->clients, 0, sizeof d->clients);
	d->ordered = d->applied = d->failed = d->transfer_seq = 0;
	memset(d->results, 0, sizeof d->results);
	interrupted = 0;
}

int demo_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'}, {"seconds", required_argument, NULL, 's'},
	    {"clients", required_argument, NULL, 'n'}, {"accounts", required_argument, NULL, 'a'},
	    {"serve", no_argument, NULL, 'S'},	       {"transport", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},	       {0},
	};
	static struct demo demo;
	struct demo *d = &demo;
	const char *transport_opt = NULL;
	d->cluster_path = NULL;
	d->seconds = 3;
	d->nclients = 4;
	d->accounts = 16;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:n:a:St:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->cluster_path = optarg;
			break;
		case 's':
			d->seconds = (unsigned)atoi(optarg);
			break;
		case 'n':
			d->nclients = (unsigned)atoi(optarg);
			break;
		case 'a':
			d->accounts = (unsigned)atoi(optarg);
			break;
		case 'S':
			d->serve = true;
			break;
		case 't':
			if (strcmp(optarg, "udp") != 0 && strcmp(optarg, "dpdk") != 0) {
				fprintf(stderr,
					"demo: transport '%s' is not one; use udp or dpdk\n",
					optarg);
				return 2;
			}
			transport_opt = optarg;
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (d->nclients < 1 || d->nclients > DEMO_CLIENTS_MAX || d->accounts < 2 ||
	    d->seconds > 3600) {
		fprintf(stderr,
			"demo: clients must be 1..%u, accounts at least 2, seconds at most "
			"3600\n",
			DEMO_CLIENTS_MAX);
		return 2;
	}
	const char *topo = NULL; /* the virtual topology this demo set up, to tear down */
	if (!d->cluster_path) {
		bool dpdk = want_dpdk(transport_opt, d->serve);
		if (dpdk)
			topo = topology_up();
		if (!topo && transport_opt && strcmp(transport_opt, "dpdk") == 0)
			return 1; /* topology_up said why */
		d->cluster_path = topo ? DEMO_VIRTUAL : DEMO_LOOPBACK;
	}
	bool not_up = false;
	int rc = run(d, &not_up);
	if (not_up && topo && !transport_opt) {
		topology_down(topo);
		topo = NULL;
		fprintf(stderr,
			"demo: the DPDK cluster did not come up; running on kernel UDP over "
			"loopback instead\n");
		reset(d);
		d->cluster_path = DEMO_LOOPBACK;
		rc = run(d, &not_up);
	}
	if (topo)
		topology_down(topo);
	return rc;
}

/* Starts the cluster, drives it (or serves), stops it. *not_up: the
 * cluster did not answer (the caller may try another transport). */
static int run(struct demo *d, bool *not_up)
{
	if (ordo_load_cluster(d->cluster_path, &d->cl))
		return 1;
	char exe[512], logdir[] = "/tmp/ordo-demo-XXXXXX";
	ordo_self_exe(exe, sizeof exe);
	if (!mkdtemp(logdir)) {
		perror("demo: mkdtemp");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_sigint};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	uint32_t ndpdk = 0;
	for (uint32_t i = 0; i < d->cl.nnodes; i++)
		ndpdk += cfg_node_transport(&d->cl, &d->cl.nodes[i]) == CFG_TRANSPORT_DPDK;
	const char *transport = ndpdk == 0 ? "udp" : ndpdk == d->cl.nnodes ? "dpdk" : "dpdk+udp";
	printf("demo: transport=%s cluster=%s nodes=%u logs=%s (removed on success)\n", transport,
	       d->cluster_path, d->cl.nnodes, logdir);
	ordo_prng_seed(&d->rng, 42);
	int rc = 1;
	if (ordo_procs_start(&d->procs, &d->cl, d->cluster_path, exe, logdir, NULL, NULL)) {
		fprintf(stderr, "demo: cannot start the nodes\n");
		return 1;
	}
	for (unsigned i = 0; i < d->nclients; i++) {
		struct ordo_client_cfg cfg = {.cluster = &d->cl};
		if (ordo_client_open(&cfg, &d->clients[i]) != 0) {
			fprintf(stderr, "demo: cannot open client %u\n", i);
			goto out_stop;
		}
	}
	if (ordo_procs_wait_ready(&d->procs, d->clients[0], &d->cl, 10 * ORDO_NS_PER_S) != 0) {
		fprintf(stderr,
			"demo: the cluster did not come up; is another demo running? "
			"(logs in %s)\n",
			logdir);
		*not_up = true;
		goto out_stop;
	}
	if (d->serve) {
		printf("demo: cluster running; try `ordo status --cluster %s`. Ctrl-C stops it.\n",
		       d->cluster_path);
		fflush(stdout);
		while (!interrupted)
			pause();
		rc = 0;
		goto out_stop;
	}
	for (unsigned i = 0; i < d->nclients; i++) {
		int orc = ordo_session_open(d->clients[i], 5 * ORDO_NS_PER_S);
		if (orc) {
			fprintf(stderr, "demo: client %u: no session: %s\n", i, strerror(-orc));
			goto out_stop;
		}
	}
	if (create_accounts(d) != 0)
		goto out_stop;
	printf("demo: %u accounts created; %u clients transferring for %u s\n", d->accounts,
	       d->nclients, d->seconds);
	if (drive(d) != 0)
		goto out_stop;
	uint64_t ordered, applied;
	uint32_t nreps;
	uint8_t digest[16] = {0};
	(void)verify(d, &ordered, &applied, &nreps, digest); /* let the replicas catch up */
	print_balances(d);
	int agree = verify(d, &ordered, &applied, &nreps, digest);
	char hex[33];
	printf("demo: ordered=%" PRIu64 " applied=%" PRIu64 " replicas=%u agree=%s digest=%s\n",
	       ordered, applied, nreps, agree == 0 ? "yes" : "no", ordo_hex16(digest, hex));
	rc = agree == 0 ? 0 : 1;
out_stop:
	fflush(stdout);
	for (unsigned i = 0; i < d->nclients; i++)
		ordo_client_close(d->clients[i]);
	if (ordo_procs_stop(&d->procs) != 0 && rc == 0) {
		fprintf(stderr, "demo: a node did not stop cleanly (logs in %s)\n", logdir);
		rc = 1;
	}
	/* logs and the sequencers' data (preallocated log segments) are kept
	 * only when something went wrong */
	if (rc == 0 && ordo_dir_remove(logdir) != 0)
		fprintf(stderr, "demo: could not remove %s\n", logdir);
	return rc;
}
