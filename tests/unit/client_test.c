/*
 * libordo's retransmission estimate against a stub sequencer: a real UDP
 * socket on 127.0.14.1:7400 that decodes SUBMIT datagrams and answers with
 * ORDERED records when the test says, so the timing of every answer is
 * chosen. The client is the real one, on its own kernel UDP socket.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "client/ordo.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

#define STUB_IP	       "127.0.14.1"
#define CLUSTER_ID     0x5EC0ull
#define RETRY_NS       (250ull * ORDO_NS_PER_MS)
#define FIRST_DELAY_NS (25ull * ORDO_NS_PER_MS) /* the stub's round trip for request 1 */

static struct cfg_cluster cl;
static struct ordo_client *c;
static int stub = -1;
static char ini[64];

static void setup(void)
{
	snprintf(ini, sizeof ini, "/tmp/ordo-client-test-XXXXXX");
	int fd = mkstemp(ini);
	cr_assert(fd >= 0);
	static const char text[] = "[cluster]\ncluster_id = 0x5EC0\ninternal_auth = off\n"
				   "[node 1]\nrole = sequencer\naddr = " STUB_IP "\n";
	cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	char err[512];
	cr_assert_eq(cfg_load(ini, &cl, err, sizeof err), 0, "%s", err);
	stub = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert(stub >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ORDO_SEQ_CLIENT_PORT)};
	inet_pton(AF_INET, STUB_IP, &a.sin_addr);
	cr_assert_eq(bind(stub, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %m", STUB_IP);
	struct ordo_client_cfg cc = {.cluster = &cl, .retry_ns = RETRY_NS};
	cr_assert_eq(ordo_client_open(&cc, &c), 0);
}

static void teardown(void)
{
	ordo_client_close(c);
	close(stub);
	unlink(ini);
}

TestSuite(client, .init = setup, .fini = teardown);

/* The stub's script for request 2 (request 1 is answered after
 * FIRST_DELAY_NS: the shortest round trip the client sees). */
enum second { ANSWER_RESEND_AT_ONCE, ANSWER_RESEND_LATE };
static enum second mode;
static uint64_t recv_at[2]; /* request 2: its first send and its resend */
static unsigned recv_n;

static void stub_answer(const struct wire_req *r, const struct sockaddr_in *to, uint64_t position)
{
	uint8_t buf[256];
	struct wire_writer w;
	wire_begin(&w, buf, sizeof buf, WIRE_ORDERED, CLUSTER_ID);
	wire_begin_records(&w, 1); /* leader hint: this node */
	struct wire_ordered_rec rec = {
	    .client_id = r->client_id,
	    .request_number = r->request_number,
	    .status = WIRE_ST_OK,
	    .place = {.group = 0, .index = 0, .epoch = position, .group_position = position},
	};
	if (!wire_add_ordered(&w, &rec))
		abort();
	uint32_t len = wire_finish(&w, NULL);
	if (sendto(stub, buf, len, 0, (const struct sockaddr *)to, sizeof *to) != (ssize_t)len)
		abort();
}

static void wait_until(uint64_t t)
{
	while (ordo_mono_ns() < t)
		usleep(100);
}

/* Answers request 1, then request 2 as `mode` says; returns after that. */
static void *stub_main(void *arg)
{
	(void)arg;
	static uint8_t buf[ORDO_DATAGRAM_MAX];
	uint64_t end = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	while (ordo_mono_ns() < end) {
		struct pollfd p = {.fd = stub, .events = POLLIN};
		if (poll(&p, 1, 10) <= 0)
			continue;
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(stub, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		uint64_t at = ordo_mono_ns();
		struct wire_rx_ctx ctx = {.cluster_id = CLUSTER_ID};
		struct wire_hdr h;
		if (n <= 0 || wire_check(&ctx, buf, (size_t)n, &h) != WIRE_DROP_NONE ||
		    h.type != WIRE_SUBMIT)
			continue;
		bool framing_ok;
		static struct wire_req r[ORDO_RECS_PER_DATAGRAM_MAX];
		int k = wire_parse_submit(buf + ORDO_HDR_BYTES, h.length - ORDO_HDR_BYTES, r,
					  ORDO_RECS_PER_DATAGRAM_MAX, &framing_ok);
		if (k != 1)
			continue;
		if (r[0].request_number == 1) {
			wait_until(at + FIRST_DELAY_NS);
			stub_answer(&r[0], &from, 100);
			continue;
		}
		if (recv_n < 2)
			recv_at[recv_n++] = at;
		if (recv_n < 2)
			continue; /* the first send of request 2: no answer */
		if (mode == ANSWER_RESEND_LATE)
			wait_until(at + 4 * FIRST_DELAY_NS);
		stub_answer(&r[0], &from, 101);
		return NULL;
	}
	return NULL;
}

/* Opens the session, submits request 2 and waits until it is ordered. */
static void run(enum second m)
{
	mode = m;
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, stub_main, NULL), 0);
	cr_assert_eq(ordo_session_open(c, 2 * ORDO_NS_PER_S), 0);
	const struct ordo_client_stats *st = ordo_client_stats(c);
	cr_assert(st->srtt_ns >= FIRST_DELAY_NS && st->srtt_ns < RETRY_NS / 2, "srtt %llu",
		  (unsigned long long)st->srtt_ns);
	cr_assert_eq(st->rto_ns, RETRY_NS);
	uint64_t n = 0;
	cr_assert_eq(ordo_submit(c, WIRE_OP_OPAQUE, "slow", 4, &n), 0);
	cr_assert_eq(n, 2);
	bool ordered = false;
	uint64_t end = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	while (!ordered && ordo_mono_ns() < end) {
		struct ordo_event ev[4];
		int k = ordo_poll(c, ORDO_NS_PER_MS, ev, 4);
		cr_assert_geq(k, 0);
		for (int i = 0; i < k; i++)
			ordered |= ev[i].kind == ORDO_EV_ORDERED && ev[i].request_number == 2;
	}
	pthread_join(th, NULL);
	cr_assert(ordered, "request 2 was never reported ordered");
	cr_assert_eq(recv_n, 2, "the stub saw request 2 %u time(s)", recv_n);
	cr_assert_geq(recv_at[1] - recv_at[0], RETRY_NS - ORDO_NS_PER_MS, "resent after %llu ns",
		      (unsigned long long)(recv_at[1] - recv_at[0]));
	cr_assert_eq(st->retries, 1);
}

/* Request 2 answered only once resent, by an answer that comes right after
 * the resend (sooner than any round trip): it was the first send's, so its
 * full round trip (about RETRY_NS) enters the estimate, and the timeout
 * grows past such slow answers instead of resending each of them. */
Test(client, a_spurious_resend_feeds_the_estimate)
{
	run(ANSWER_RESEND_AT_ONCE);
	const struct ordo_client_stats *st = ordo_client_stats(c);
	cr_assert_eq(st->spurious_retries, 1);
	/* (7 x ~25 ms + ~250 ms) / 8 */
	cr_assert_gt(st->srtt_ns, FIRST_DELAY_NS + ORDO_NS_PER_MS, "srtt %llu",
		     (unsigned long long)st->srtt_ns);
	cr_assert_gt(st->rto_ns, RETRY_NS, "rto %llu", (unsigned long long)st->rto_ns);
}

/* The same resend answered a round trip after it: the answer may be the
 * resend's own (Karn), so nothing is learned from it. */
Test(client, an_answer_to_the_resend_is_not_sampled)
{
	run(ANSWER_RESEND_LATE);
	const struct ordo_client_stats *st = ordo_client_stats(c);
	cr_assert_eq(st->spurious_retries, 0);
	cr_assert_lt(st->srtt_ns, RETRY_NS / 2, "srtt %llu", (unsigned long long)st->srtt_ns);
	cr_assert_eq(st->rto_ns, RETRY_NS, "rto %llu", (unsigned long long)st->rto_ns);
}
