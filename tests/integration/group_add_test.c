/*
 * Adding a group to a running cluster (issue 8 piece 5, docs/PROTOCOL.md
 * §1.7): real `ordo sequencer` processes, group 0 founding, group 1 joining
 * later (tests/integration/group-add.ini, founding_groups = 1, 127.0.12.1-6),
 * no replicas.
 *
 * - before `ordo group add`, group 1's leader answers a session opening
 *   OVERLOADED and orders nothing, while group 0 orders;
 * - `ordo group add --group 1 --in-ms 2000` exits 0 and prints the join
 *   epoch E; right after it (before E) group 1 still answers OVERLOADED;
 * - after E, group 1 orders the opening: ORDERED OK in group 1 at an epoch
 *   >= E, group_position 1 (nothing was ordered there before);
 * - the same announcement again (--epoch E) exits 0 (idempotent retries);
 *   the same command again (another E, after E) exits 1: group 0 answers
 *   -EEXIST ("File exists") naming E, and group 1 is not asked; --group 0
 *   (a founding group) is refused.
 *
 * Environment (tests/integration/meson.build sets both): ORDO_EXE, the ordo
 * binary; ORDO_GROUP_ADD_CLUSTER, the cluster file. ORDO_KEEP_LOGS keeps the
 * node logs.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

#include "seq_fixture.h"

#define IN_MS 2000u

static struct fixture F; /* the cluster of each test */

static void setup(void)
{
	fixture_start(&F, "ORDO_GROUP_ADD_CLUSTER", "/tmp/ordo-group-add-XXXXXX");
	cr_assert_eq(cfg_groups(&F.cl), 2);
	cr_assert_eq(F.cl.founding_groups, 1);
	cr_assert(F.cl.every_epoch);
}

static void teardown(void)
{
	fixture_stop(&F, "group_add_test");
}

TestSuite(group_add, .init = setup, .fini = teardown, .timeout = 60);

/* The node id of a group's leader. */
static uint32_t group_leader(uint16_t group)
{
	return fixture_leader(&F, group).node_id;
}

/* Sends the opening request (number 1, session 0, empty OPAQUE) of client_id
 * from a raw socket to the leader of a group (following NOT_LEADER) and
 * returns the ORDERED record answering it. */
static struct wire_ordered_rec open_in(int fd, uint16_t group, uint64_t client_id)
{
	const struct wire_req r = {
	    .client_id = client_id, .request_number = 1, .session = 0, .op = WIRE_OP_OPAQUE};
	return raw_submit_to(fd, &F.cl, group, group_leader(group), &r);
}

/* Runs `ordo group add --cluster FILE --group G --in-ms MS` (with epoch:
 * --epoch EPOCH instead); returns its exit code and its standard output in
 * out. */
static int run_group_add_at(unsigned group, unsigned in_ms, uint64_t epoch, char *out, size_t cap)
{
	char g[16], ms[32];
	snprintf(g, sizeof g, "%u", group);
	if (epoch)
		snprintf(ms, sizeof ms, "%" PRIu64, epoch);
	else
		snprintf(ms, sizeof ms, "%u", in_ms);
	const char *argv[] = {"ordo", "group",	 "add", "--cluster",
			      F.path, "--group", g,	epoch ? "--epoch" : "--in-ms",
			      ms,     NULL};
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(F.exe, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t k;
	while (n + 1 < cap && (k = read(pfd[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	close(pfd[0]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	printf("%s", out);
	return WEXITSTATUS(status);
}

static int run_group_add(unsigned group, unsigned in_ms, char *out, size_t cap)
{
	return run_group_add_at(group, in_ms, 0, out, cap);
}

static uint64_t wall_us(void)
{
	return ordo_real_ns() / ORDO_NS_PER_US;
}

Test(group_add, joins_at_the_agreed_epoch)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7F000001)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);

	/* the founding group orders; the joining one refuses */
	struct wire_ordered_rec o = open_in(fd, 0, 0xA1);
	cr_assert_eq(o.status, WIRE_ST_OK, "group 0 answered %s",
		     wire_status_name((enum wire_status)o.status));
	cr_assert_eq(o.place.group, 0);
	o = open_in(fd, 1, 0xB1);
	cr_assert_eq(o.status, WIRE_ST_OVERLOADED, "group 1 answered %s before it joined",
		     wire_status_name((enum wire_status)o.status));

	/* a founding group cannot be added */
	char out[4096];
	cr_assert_eq(run_group_add(0, IN_MS, out, sizeof out), 1);

	uint64_t before_us = wall_us();
	cr_assert_eq(run_group_add(1, IN_MS, out, sizeof out), 0, "ordo group add failed");
	uint64_t after_us = wall_us();
	const char *p = strstr(out, "joins at epoch ");
	cr_assert_not_null(p, "no join epoch in: %s", out);
	uint64_t e = strtoull(p + strlen("joins at epoch "), NULL, 10);
	const uint64_t slot_us = F.cl.epoch_us;
	cr_assert_geq(e, (before_us + IN_MS * 1000ull) / slot_us);
	cr_assert_leq(e, (after_us + IN_MS * 1000ull) / slot_us);
	cr_assert_not_null(strstr(out, "group 0: committed"), "%s", out);
	cr_assert_not_null(strstr(out, "group 1: committed"), "%s", out);
	/* a retry of the same announcement: every group answers 0 again */
	char again[4096];
	cr_assert_eq(run_group_add_at(1, 0, e, again, sizeof again), 0, "a retry failed");
	cr_assert_not_null(strstr(again, "group 0: committed"), "%s", again);

	/* committed, but E has not come: still nothing */
	if (wall_us() + 300 * 1000ull < e * slot_us) {
		o = open_in(fd, 1, 0xB2);
		cr_assert_eq(o.status, WIRE_ST_OVERLOADED,
			     "group 1 answered %s before its join epoch",
			     wire_status_name((enum wire_status)o.status));
	} else {
		printf("ordo group add took %" PRIu64 " ms: the check before E is skipped\n",
		       (after_us - before_us) / 1000);
	}

	/* from E on, group 1 orders: its first position is at E or later */
	uint64_t now = wall_us(), at = (e + 1) * slot_us + 50 * 1000;
	if (now < at) {
		struct timespec ts = {(time_t)((at - now) / 1000000),
				      (long)((at - now) % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	o = open_in(fd, 1, 0xB1);
	cr_assert_eq(o.status, WIRE_ST_OK, "group 1 answered %s after its join epoch",
		     wire_status_name((enum wire_status)o.status));
	cr_assert_eq(o.place.group, 1);
	cr_assert_geq(o.place.epoch, e, "ordered in epoch %" PRIu64 " before E = %" PRIu64,
		      o.place.epoch, e);
	cr_assert_eq(o.place.group_position, 1, "nothing was ordered in group 1 before");
	close(fd);

	/* the same group again, at another epoch, once E has passed: the
	 * merged group refuses and names the epoch that stands, and the new
	 * group is not asked (it must never take an epoch no replica knows) */
	cr_assert_eq(run_group_add(1, IN_MS, out, sizeof out), 1);
	cr_assert_not_null(strstr(out, "group 0: File exists"), "%s", out);
	char stands[64];
	snprintf(stands, sizeof stands, "the epoch that stands: %" PRIu64, e);
	cr_assert_not_null(strstr(out, stands), "%s", out);
	cr_assert_not_null(strstr(out, "group 1: not asked"), "%s", out);
}

/* ---- three groups: one join at a time ---- */

static void setup3(void)
{
	fixture_start(&F, "ORDO_GROUP_ADD3_CLUSTER", "/tmp/ordo-group-add3-XXXXXX");
	cr_assert_eq(cfg_groups(&F.cl), 3);
	cr_assert_eq(F.cl.founding_groups, 1);
}

TestSuite(group_add3, .init = setup3, .fini = teardown, .timeout = 60);

/* While group 1's join epoch is ahead, group 2 cannot be announced: group
 * 0 answers -EBUSY naming that epoch, and group 2 is not asked (it would
 * order from an epoch replicas, holding group 1's join pending, would not
 * merge it from). Once the epoch has passed, group 2 joins. */
Test(group_add3, one_join_at_a_time)
{
	char out[4096];
	cr_assert_eq(run_group_add(1, 3000, out, sizeof out), 0, "%s", out);
	const char *p = strstr(out, "joins at epoch ");
	cr_assert_not_null(p, "%s", out);
	uint64_t e1 = strtoull(p + strlen("joins at epoch "), NULL, 10);
	cr_assert_eq(run_group_add(2, 1000, out, sizeof out), 1, "%s", out);
	cr_assert_not_null(strstr(out, "group 0: Device or resource busy"), "%s", out);
	char other[64];
	snprintf(other, sizeof other, "the other join's epoch: %" PRIu64, e1);
	cr_assert_not_null(strstr(out, other), "%s", out);
	cr_assert_not_null(strstr(out, "group 2: not asked"), "%s", out);
	/* past group 1's join epoch, one more slot for every group to commit it */
	while (wall_us() < (e1 + 2) * F.cl.epoch_us + 200 * 1000ull) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(run_group_add(2, 1500, out, sizeof out), 0, "%s", out);
	cr_assert_not_null(strstr(out, "group 1: committed"), "a joined group announces: %s", out);
	cr_assert_not_null(strstr(out, "group 2: committed"), "%s", out);
}
