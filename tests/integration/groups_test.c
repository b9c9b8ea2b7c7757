/*
 * Clients on several sequencer groups (issue 8 piece 4; PROTOCOL.md §3.1.2,
 * §3.2): real `ordo sequencer` processes, two groups of three
 * (tests/integration/groups.ini, 127.0.8.1-6), no replicas. Each test starts
 * the cluster afresh (formatted data directories in a temporary directory),
 * so every group's positions start at 1 and nothing but the test submits.
 *
 * - spread: a libordo spread client opens a session in each group and every
 *   request it submits is answered ORDERED exactly once, in the group whose
 *   session took it (place.group), with places from both groups; in each
 *   group the places of the session's requests, request 1 included, are
 *   exactly positions 1..commit of that group's leader (nothing ordered
 *   twice, nothing else ordered).
 * - cross_group: a SUBMIT carrying a session opened in group 0, sent from a
 *   raw socket to group 1's leader, is answered SESSION_UNKNOWN (a number
 *   already ordered in group 0 too, not DUPLICATE) and orders nothing: group
 *   1's commit stays 0 and the next session opened there is at position 1;
 *   group 0's session goes on, its next number still unused.
 * - spread_failover: the same while group 1's leader is killed (SIGKILL)
 *   halfway: every request is still ordered once, in its group.
 * - pinned: a client pinned to group 1 orders everything there; group 0
 *   orders nothing.
 * - bench: `ordo bench --spread` and the default placement (client i in
 *   group i mod 2) report two groups used and requests ordered in each;
 *   --group 2 is a usage error (exit 2).
 *
 * Nothing depends on whether a group seals empty epochs: only positions
 * (which empty epochs do not use) are compared, never epoch numbers.
 *
 * Environment (tests/integration/meson.build sets both): ORDO_EXE, the ordo
 * binary; ORDO_GROUPS_CLUSTER, the cluster file. ORDO_KEEP_LOGS keeps the
 * node logs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

#include "seq_fixture.h"

#define GROUPS		2u
#define OPEN_NS		(5ull * ORDO_NS_PER_S)
#define ANSWERS_NS	(10ull * ORDO_NS_PER_S)
#define SPREAD_REQUESTS 3000u
#define PINNED_REQUESTS 500u
#define REQUESTS_MAX	4096u /* per group and session */

static struct fixture F; /* the cluster of each test */

static void setup(void)
{
	fixture_start(&F, "ORDO_GROUPS_CLUSTER", "/tmp/ordo-groups-XXXXXX");
	cr_assert_eq(cfg_groups(&F.cl), GROUPS);
}

static void teardown(void)
{
	fixture_stop(&F, "groups_test");
}

TestSuite(groups, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------ helpers */

/* STATUS of the leader of a group. */
static struct wire_status_msg group_leader_status(uint16_t group)
{
	return fixture_leader(&F, group);
}

/* The group's committed position once it has stopped moving (its leader's
 * commit read twice, 50 ms apart, equal). */
static uint64_t group_commit(uint16_t group)
{
	uint64_t last = UINT64_MAX;
	for (int i = 0; i < 100; i++) {
		uint64_t c = group_leader_status(group).commit;
		if (c == last)
			return c;
		last = c;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_fail("group %u's commit does not settle", group);
	return 0;
}

/* What a client learned about each request, by group and number. */
struct answers {
	uint32_t events[GROUPS][REQUESTS_MAX];	 /* ORDERED events per request */
	uint64_t position[GROUPS][REQUESTS_MAX]; /* its group_position */
	bool submitted[GROUPS][REQUESTS_MAX];
	uint64_t next_n[GROUPS]; /* highest number submitted + 1 */
	uint64_t client_id[GROUPS];
	uint64_t ordered[GROUPS], duplicates, others; /* first answers; non-ORDERED events */
};

static void absorb(struct answers *a, const struct ordo_event *ev, int k)
{
	for (int i = 0; i < k; i++) {
		const struct ordo_event *e = &ev[i];
		if (e->kind != ORDO_EV_ORDERED || e->group >= GROUPS ||
		    e->request_number >= REQUESTS_MAX) {
			a->others++;
			continue;
		}
		cr_assert(a->submitted[e->group][e->request_number],
			  "an event for (group %u, request %" PRIu64 ") that was not submitted",
			  e->group, e->request_number);
		cr_assert_eq(e->client_id, a->client_id[e->group]);
		cr_assert(e->status == WIRE_ST_OK || e->status == WIRE_ST_DUPLICATE,
			  "request (%u, %" PRIu64 ") answered %s", e->group, e->request_number,
			  wire_status_name((enum wire_status)e->status));
		cr_assert_eq(e->place.group, e->group,
			     "request of group %u's session placed in group %u", e->group,
			     e->place.group);
		cr_assert_neq(e->place.group_position, 0);
		a->duplicates += e->status == WIRE_ST_DUPLICATE;
		if (a->events[e->group][e->request_number]++ == 0)
			a->ordered[e->group]++;
		a->position[e->group][e->request_number] = e->place.group_position;
	}
}

/* Submits count OPAQUE requests through c, pipelined through its window,
 * and waits for every answer; calls midway() once, if given, when half of
 * them are sent. */
static void run_requests_with(struct ordo_client *c, struct answers *a, uint32_t count,
			      void (*midway)(void))
{
	struct ordo_event ev[256];
	uint32_t sent = 0;
	uint64_t deadline = ordo_mono_ns() + ANSWERS_NS;
	while (sent < count || ordo_outstanding(c) > 0) {
		if (midway && sent >= count / 2) {
			midway();
			midway = NULL;
		}
		cr_assert(ordo_mono_ns() < deadline, "answers missing: %u outstanding",
			  ordo_outstanding(c));
		while (sent < count) {
			uint8_t payload[8];
			memcpy(payload, &sent, sizeof sent);
			memset(payload + 4, 0xA5, 4);
			uint16_t g;
			uint64_t n;
			int rc =
			    ordo_submit_group(c, WIRE_OP_OPAQUE, payload, sizeof payload, &g, &n);
			if (rc == -EAGAIN)
				break;
			cr_assert_eq(rc, 0, "submit: %s", strerror(-rc));
			cr_assert(g < GROUPS && n < REQUESTS_MAX);
			cr_assert(!a->submitted[g][n], "(group %u, request %" PRIu64 ") twice", g,
				  n);
			cr_assert_eq(n, a->next_n[g], "numbers in a session are consecutive");
			a->submitted[g][n] = true;
			a->next_n[g] = n + 1;
			sent++;
		}
		int k = ordo_poll(c, 10 * ORDO_NS_PER_MS, ev, 256);
		cr_assert_geq(k, 0);
		absorb(a, ev, k);
	}
	/* events of the last requests may still be queued */
	int k;
	while ((k = ordo_poll(c, 0, ev, 256)) > 0)
		absorb(a, ev, k);
}

static void run_requests(struct ordo_client *c, struct answers *a, uint32_t count)
{
	run_requests_with(c, a, count, NULL);
}

/* A client's session in group g, already checked live. */
static void session_of(struct ordo_client *c, uint16_t g, uint64_t *client_id, uint64_t *session)
{
	cr_assert_eq(ordo_group_session(c, g, client_id, session), 0, "no live session in group %u",
		     g);
}

/* Every request of the session in group g answered once; with the session's
 * request 1 at position `session`, the positions are exactly 1..commit. */
static void check_group_order(const struct answers *a, uint16_t g, uint64_t session)
{
	uint64_t commit = group_commit(g);
	uint64_t last = a->next_n[g] ? a->next_n[g] - 1 : 1;
	cr_assert_eq(commit, last,
		     "group %u: commit %" PRIu64 ", but %" PRIu64
		     " requests (request 1 included) were ordered there",
		     g, commit, last);
	static bool seen[REQUESTS_MAX + 1];
	memset(seen, 0, sizeof seen);
	cr_assert(session >= 1 && session <= commit);
	seen[session] = true;
	for (uint64_t n = 2; n <= last; n++) {
		cr_assert_eq(a->events[g][n], 1, "group %u request %" PRIu64 ": %u ORDERED events",
			     g, n, a->events[g][n]);
		uint64_t p = a->position[g][n];
		cr_assert(p >= 1 && p <= commit, "position %" PRIu64 " beyond commit", p);
		cr_assert(!seen[p], "group %u: position %" PRIu64 " given twice", g, p);
		seen[p] = true;
	}
}

/* ------------------------------------------------------------ tests */

Test(groups, spread)
{
	struct ordo_client_cfg cc = {.cluster = &F.cl, .spread = true, .window = 64};
	struct ordo_client *c;
	cr_assert_eq(ordo_client_open(&cc, &c), 0);
	cr_assert_not(ordo_session_live(c));
	cr_assert_eq(ordo_session_open(c, OPEN_NS), 0);
	cr_assert(ordo_session_live(c));
	static struct answers a;
	memset(&a, 0, sizeof a);
	uint64_t session[GROUPS];
	for (uint16_t g = 0; g < GROUPS; g++) {
		session_of(c, g, &a.client_id[g], &session[g]);
		/* a fresh cluster: each group's first position is this session */
		cr_assert_eq(session[g], 1, "group %u's session at %" PRIu64, g, session[g]);
		a.next_n[g] = 2;
	}
	cr_assert_neq(a.client_id[0], a.client_id[1], "one client_id per session");
	cr_assert_eq(ordo_client_id(c), a.client_id[0]);

	run_requests(c, &a, SPREAD_REQUESTS);
	cr_assert_eq(a.ordered[0] + a.ordered[1], SPREAD_REQUESTS);
	/* the group with the most room takes each request: both take a share */
	for (uint16_t g = 0; g < GROUPS; g++)
		cr_assert_geq(a.ordered[g], SPREAD_REQUESTS / 4, "group %u ordered %" PRIu64, g,
			      a.ordered[g]);
	for (uint16_t g = 0; g < GROUPS; g++)
		check_group_order(&a, g, session[g]);
	const struct ordo_client_stats *st = ordo_client_stats(c);
	cr_assert_eq(st->status_count[WIRE_ST_SESSION_UNKNOWN], 0);
	cr_assert_eq(st->status_count[WIRE_ST_INVALID], 0);
	cr_assert_eq(st->events_lost, 0);
	printf("spread: ordered %" PRIu64 " in group 0, %" PRIu64 " in group 1 (%" PRIu64
	       " first answered DUPLICATE after a resend)\n",
	       a.ordered[0], a.ordered[1], a.duplicates);
	ordo_client_close(c);
}

/* SIGKILL to group 1's leader, reaped here (so teardown does not count it). */
static void kill_group1_leader(void)
{
	uint32_t id = group_leader_status(1).node_id;
	for (uint32_t i = 0; i < F.procs.count; i++) {
		if (F.procs.node_id[i] != id || !F.procs.pid[i])
			continue;
		cr_assert_eq(kill(F.procs.pid[i], SIGKILL), 0);
		cr_assert_eq(waitpid(F.procs.pid[i], NULL, 0), F.procs.pid[i]);
		F.procs.pid[i] = 0;
		printf("spread_failover: killed node %u, group 1's leader\n", id);
		return;
	}
	cr_assert_fail("group 1's leader %u is not a child of this test", id);
}

/* A failover in one group: the spread client's requests in that group wait
 * for the new leader (NOT_LEADER, retries to the other nodes) and are each
 * ordered once; the other group is not held up. */
Test(groups, spread_failover)
{
	struct ordo_client_cfg cc = {.cluster = &F.cl, .spread = true, .window = 64};
	struct ordo_client *c;
	cr_assert_eq(ordo_client_open(&cc, &c), 0);
	cr_assert_eq(ordo_session_open(c, OPEN_NS), 0);
	static struct answers a;
	memset(&a, 0, sizeof a);
	uint64_t session[GROUPS];
	for (uint16_t g = 0; g < GROUPS; g++) {
		session_of(c, g, &a.client_id[g], &session[g]);
		a.next_n[g] = 2;
	}
	run_requests_with(c, &a, SPREAD_REQUESTS, kill_group1_leader);
	cr_assert_eq(a.ordered[0] + a.ordered[1], SPREAD_REQUESTS);
	cr_assert(ordo_session_live(c), "a failover loses no session");
	for (uint16_t g = 0; g < GROUPS; g++)
		check_group_order(&a, g, session[g]);
	const struct ordo_client_stats *st = ordo_client_stats(c);
	cr_assert_eq(st->status_count[WIRE_ST_SESSION_UNKNOWN], 0);
	printf("spread_failover: ordered %" PRIu64 " in group 0, %" PRIu64 " in group 1; %" PRIu64
	       " resends, %" PRIu64 " NOT_LEADER\n",
	       a.ordered[0], a.ordered[1], st->retries, st->status_count[WIRE_ST_NOT_LEADER]);
	ordo_client_close(c);
}

/* Sends one SUBMIT record from a raw socket to the leader of a group
 * (following NOT_LEADER) and returns the ORDERED record answering it. */
static struct wire_ordered_rec raw_submit(int fd, uint16_t group, const struct wire_req *r)
{
	return raw_submit_to(fd, &F.cl, group, group_leader_status(group).node_id, r);
}

Test(groups, cross_group)
{
	struct ordo_client_cfg cc = {.cluster = &F.cl, .group = 0};
	struct ordo_client *c;
	cr_assert_eq(ordo_client_open(&cc, &c), 0);
	cr_assert_eq(ordo_session_open(c, OPEN_NS), 0);
	static struct answers a;
	memset(&a, 0, sizeof a);
	uint64_t session;
	session_of(c, 0, &a.client_id[0], &session);
	cr_assert_eq(ordo_group_session(c, 1, &(uint64_t){0}, &(uint64_t){0}), -ENOENT,
		     "a client pinned to group 0 holds nothing in group 1");
	a.next_n[0] = 2;
	run_requests(c, &a, 2); /* requests 2 and 3, in group 0 */
	cr_assert_eq(a.ordered[0], 2);
	uint64_t commit0 = group_commit(0), commit1 = group_commit(1);
	cr_assert_eq(commit0, 3);
	cr_assert_eq(commit1, 0);

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7F000001)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
	uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	/* request 4: the session's next number, unused in group 0 */
	struct wire_req r = {.client_id = a.client_id[0],
			     .request_number = 4,
			     .session = session,
			     .op = WIRE_OP_OPAQUE,
			     .size = sizeof payload,
			     .payload = payload};
	struct wire_ordered_rec o = raw_submit(fd, 1, &r);
	cr_assert_eq(o.status, WIRE_ST_SESSION_UNKNOWN, "group 1 answered %s",
		     wire_status_name((enum wire_status)o.status));
	cr_assert_eq(o.place.group_position, 0);
	cr_assert_eq(o.place.epoch, 0);
	/* request 2, ordered in group 0: group 1 knows nothing of it either */
	r.request_number = 2;
	o = raw_submit(fd, 1, &r);
	cr_assert_eq(o.status, WIRE_ST_SESSION_UNKNOWN, "group 1 answered %s",
		     wire_status_name((enum wire_status)o.status));
	/* the same session's request 1 shape sent again (session 0, number 1)
	 * would open a session there: not what is tested */
	close(fd);

	/* nothing was ordered in group 1, or in group 0 */
	cr_assert_eq(group_commit(1), commit1);
	cr_assert_eq(group_commit(0), commit0);
	struct ordo_client_cfg c1cfg = {.cluster = &F.cl, .group = 1};
	struct ordo_client *c1;
	cr_assert_eq(ordo_client_open(&c1cfg, &c1), 0);
	cr_assert_eq(ordo_session_open(c1, OPEN_NS), 0);
	cr_assert_eq(ordo_session(c1), commit1 + 1,
		     "group 1's next session is at position %" PRIu64 ", not %" PRIu64,
		     ordo_session(c1), commit1 + 1);
	ordo_client_close(c1);

	/* group 0's session goes on: its request 4 was never ordered */
	run_requests(c, &a, 1);
	cr_assert_eq(a.next_n[0], 5);
	cr_assert_eq(a.events[0][4], 1);
	cr_assert_eq(a.position[0][4], commit0 + 1);
	check_group_order(&a, 0, session);
	ordo_client_close(c);
}

Test(groups, pinned)
{
	struct ordo_client_cfg cc = {.cluster = &F.cl, .group = 1, .window = 64};
	struct ordo_client *c;
	cr_assert_eq(ordo_client_open(&cc, &c), 0);
	cr_assert_eq(ordo_session_open(c, OPEN_NS), 0);
	static struct answers a;
	memset(&a, 0, sizeof a);
	uint64_t session;
	session_of(c, 1, &a.client_id[1], &session);
	cr_assert_eq(ordo_client_id(c), a.client_id[1]);
	cr_assert_eq(ordo_session(c), session);
	cr_assert_eq(ordo_group_session(c, 0, &(uint64_t){0}, &(uint64_t){0}), -ENOENT);
	a.next_n[1] = 2;
	run_requests(c, &a, PINNED_REQUESTS);
	cr_assert_eq(a.ordered[1], PINNED_REQUESTS);
	cr_assert_eq(a.ordered[0], 0);
	check_group_order(&a, 1, session);
	cr_assert_eq(group_commit(0), 0, "group 0 ordered something");
	ordo_client_close(c);
}

/* Runs `ordo bench` with args and the cluster file; returns its exit code. */
static int run_bench(const char *const *args, unsigned nargs)
{
	const char *argv[32];
	unsigned k = 0;
	argv[k++] = "ordo";
	argv[k++] = "bench";
	argv[k++] = "--cluster";
	argv[k++] = F.path;
	for (unsigned i = 0; i < nargs && k < 31; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execv(F.exe, (char *const *)argv);
		_exit(127);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The JSON's "key": value as text (the first occurrence), into out. */
static void json_field(const char *json, const char *key, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\": ", key);
	const char *p = strstr(json, pat);
	cr_assert_not_null(p, "no %s in the bench JSON", key);
	p += strlen(pat);
	size_t n = p[0] == '[' ? strcspn(p, "]") + 1 : strcspn(p, ",}\n");
	cr_assert_lt(n, cap);
	memcpy(out, p, n);
	out[n] = 0;
}

static void check_bench_json(const char *path, const char *placement)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	static char json[16384];
	size_t n = fread(json, 1, sizeof json - 1, f);
	fclose(f);
	json[n] = 0;
	char v[128], want[64];
	json_field(json, "groups", v, sizeof v);
	cr_assert_str_eq(v, "2");
	json_field(json, "groups_used", v, sizeof v);
	cr_assert_str_eq(v, "2");
	json_field(json, "placement", v, sizeof v);
	snprintf(want, sizeof want, "\"%s\"", placement);
	cr_assert_str_eq(v, want);
	json_field(json, "ordered_by_group", v, sizeof v);
	unsigned long long g0 = 0, g1 = 0;
	cr_assert_eq(sscanf(v, "[%llu, %llu]", &g0, &g1), 2, "ordered_by_group %s", v);
	cr_assert_gt(g0, 0, "%s: nothing ordered in group 0", placement);
	cr_assert_gt(g1, 0, "%s: nothing ordered in group 1", placement);
	json_field(json, "ordered", v, sizeof v);
	cr_assert_eq(strtoull(v, NULL, 10), g0 + g1, "ordered %s != %llu + %llu", v, g0, g1);
}

Test(groups, bench)
{
	char json[600];
	snprintf(json, sizeof json, "%s/bench.json", F.dir);
	const char *spread[] = {"--spread", "--clients", "2",	"--window", "32", "--duration",
				"1",	    "--warmup",	 "0.2", "--json",   json};
	cr_assert_eq(run_bench(spread, ORDO_ARRAY_LEN(spread)), 0);
	check_bench_json(json, "spread");
	char plot[600];
	snprintf(plot, sizeof plot, "%s/plot", F.dir);
	const char *mod[] = {"--clients", "2",	 "--window", "32", "--duration", "1",
			     "--warmup",  "0.2", "--json",   json, "--plot",	 plot};
	cr_assert_eq(run_bench(mod, ORDO_ARRAY_LEN(mod)), 0);
	check_bench_json(json, "mod");
	/* --plot: both pictures drawn by gnuplot */
	static const char *const pngs[] = {"throughput", "latency"};
	for (unsigned i = 0; i < 2; i++) {
		char path[700];
		snprintf(path, sizeof path, "%s-%s.png", plot, pngs[i]);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f, "no %s", path);
		unsigned char magic[8] = {0};
		size_t got = fread(magic, 1, 8, f);
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		fclose(f);
		cr_assert(got == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG",
			  path);
		cr_assert_gt(size, 2000, "%s: %ld bytes", path, size);
	}
	const char *bad[] = {"--group", "2", "--duration", "1"};
	cr_assert_eq(run_bench(bad, ORDO_ARRAY_LEN(bad)), 2, "--group 2 of 2 groups");
}
