/*
 * Integration test: malformed and invalid client datagrams against real
 * `ordo` node processes (PROTOCOL.md §2.2, §3.1.1, §3.4-3.7).
 *
 * Usage: malformed_test ORDO_EXE CLUSTER_INI (tests/integration/malformed.ini:
 * sequencer 1 on 127.0.5.1, replicas 11-13 on 127.0.6.1-3).
 *
 * 1. Starts the cluster with ordo_procs_start and waits until every node
 *    answers STATUS_Q.
 * 2. Receipt rules (§2.2): from a raw UDP socket bound to 127.0.0.1 (trusted),
 *    sends to the sequencer's client port and to replica 11's client port,
 *    one class at a time, datagrams that each break exactly one rule (every
 *    other byte valid, CRC-32C and MAC recomputed unless the class is about
 *    them): empty and short datagrams, a valid message cut at several offsets,
 *    bad magic, version, flag bits, length (not a multiple of 8, under 32,
 *    inconsistent with the datagram, counting the MAC), AUTH under 48 bytes,
 *    bad checksum, wrong cluster_id, AUTH with key_id 0, an unknown key or the
 *    node key, bad MAC, internal types, unassigned types, other ports' types,
 *    SUBMIT with count 0 or no body, FETCH / STATUS_Q / RESULT_Q of a wrong
 *    body length, datagrams over max_datagram, and AUTH queries with a stale
 *    or replayed nonce (§3.7). For each class: the node's STATUS `dropped`
 *    rose by exactly the number sent, and the node sent nothing back. A
 *    control first checks that the unbroken base datagrams are answered and
 *    not counted. (Source port 0 cannot be sent from a socket: not covered.)
 * 3. SUBMIT decoding (§3.1.1): records answered INVALID (client_id 0,
 *    request_number 0, unknown op, OPAQUE of 1025 bytes, CREATE_ACCOUNT size
 *    15, TRANSFER size 31, LOOKUP / CREATE_ACCOUNT with a nonzero reserved
 *    field, request 1 that is not OPAQUE size 0 session 0), broken framing
 *    (count overruns, payload overruns, a partial fixed part, leftover bytes:
 *    records whose fixed part lies inside answered INVALID, the rest not at
 *    all, nothing ordered), mixed datagrams (the valid records go on and are
 *    ordered OK), AUTH key ranges (§3.1.3; replies carry AUTH under key 7),
 *    reserved fields outside payloads being ignored, and the boundaries next
 *    to the INVALID cases (OPAQUE 1024, each ledger op at its exact size,
 *    nonzero padding) answered OK in a session opened from the raw socket.
 *    Each case checks the ORDERED records received (exact set and status, OK
 *    with a place in the newly committed range), the sequencer's commit (rose
 *    by exactly the number of valid records) and that nothing was counted as
 *    dropped.
 * 4. The order itself: FETCH from replica 11 holds every record answered OK
 *    and none of the records that had to be dropped or answered INVALID, and
 *    carries the nonzero padding as 0 (§3.4); every replica applied up to
 *    the sequencer's commit with one digest.
 * 5. Liveness: a libordo client opens a session and orders a request (ORDERED
 *    OK received; libordo may report the APPLIED first), every node answers
 *    STATUS, no node process has exited.
 * 6. ordo_procs_stop: every node exits 0 on SIGTERM. Then the per-reason drop
 *    counters each node prints on exit must equal, reason by reason, what
 *    the classes of step 2 were built to trip (so each datagram failed
 *    exactly its intended rule). Node logs are kept only on failure.
 *
 * Prints one "ok - ..." / "not ok - ..." line per check, then "N passed, M
 * failed"; exits 1 on any failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

#define SEQ_ID		 1u
#define REP_ID		 11u
#define KEY_ID		 7u
#define ANSWER_WAIT_MS	 200
#define ORDERED_WAIT_MS	 300
#define DGRAM_CAP	 9200u
#define CASE_DGRAMS_MAX	 16u
#define TRACKED_IDS_MAX	 512u
#define STATUS_TIMEOUT	 (300 * ORDO_NS_PER_MS)
#define READY_TIMEOUT	 (10 * ORDO_NS_PER_S)
#define LIVENESS_TIMEOUT (5 * ORDO_NS_PER_S)
#define NO_ANSWER	 (-1)
#define ANY_ANSWERS	 UINT32_MAX /* run_case: at least one answer */

static unsigned g_pass, g_fail;
static struct cfg_cluster g_cl;
static struct ordo_client *g_q; /* STATUS and FETCH queries, no AUTH */
static int g_raw = -1;		/* raw UDP socket on 127.0.0.1 */
static struct wire_key g_key7;	/* the cluster's [key 7] */
static struct wire_keyring g_kr7;

/* Drops expected per node (0 sequencer, 1 replica 11) and reason, checked
 * against the per-reason counters each node prints when it stops.
 * DROP_TRUNCATED: over max_datagram, counted by the transport. */
#define DROP_TRUNCATED WIRE_DROP__COUNT
static uint64_t g_expect[2][WIRE_DROP__COUNT + 1];

/* client_ids that must appear in the order, and those that must not. */
static uint64_t g_must[TRACKED_IDS_MAX], g_never[TRACKED_IDS_MAX];
static unsigned g_nmust, g_nnever;
/* The session whose request 6 is an OPAQUE of 3 bytes sent with nonzero
 * padding: ENTRIES must carry that padding as 0 (§3.4). */
static uint64_t g_pad_client;

struct target {
	const char *name;
	uint32_t node_id;
	uint32_t ip; /* host order */
	uint16_t port;
};

struct dgram {
	uint8_t b[DGRAM_CAP];
	size_t len;
};

/* ------------------------------------------------------------- reporting */

static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s - ", ok ? "ok" : "not ok");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (ok)
		g_pass++;
	else
		g_fail++;
	return ok;
}

static void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("#   ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static void track(uint64_t *list, unsigned *n, uint64_t id)
{
	if (*n < TRACKED_IDS_MAX)
		list[(*n)++] = id;
}

/* A fresh nonzero client_id; with key != 0, inside that key's range. */
static uint64_t fresh_id(uint32_t key_id)
{
	uint64_t id = 0;
	while ((id & 0x0000FFFFFFFFFFFFull) == 0)
		randombytes_buf(&id, sizeof id);
	if (key_id)
		id = (id & 0x0000FFFFFFFFFFFFull) | ((uint64_t)(key_id & 0xFFFF) << 48);
	else if ((id >> 48) == KEY_ID)
		id ^= 1ull << 63; /* keep unauthenticated ids apart from key 7's */
	return id;
}

/* ------------------------------------------------------------ raw socket */

static int raw_open(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	int big = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	return fd;
}

static bool raw_send(const struct target *t, const void *buf, size_t len)
{
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons(t->port), .sin_addr.s_addr = htonl(t->ip)};
	return sendto(g_raw, buf, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
}

/* Receives one datagram, waiting until deadline (monotonic ns). Returns its
 * length, or -1 when nothing came. */
static ssize_t raw_recv(uint8_t *buf, size_t cap, uint64_t deadline, uint32_t *ip, uint16_t *port)
{
	for (;;) {
		uint64_t now = ordo_mono_ns();
		int ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / ORDO_NS_PER_MS);
		struct pollfd p = {.fd = g_raw, .events = POLLIN};
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		struct sockaddr_in a;
		socklen_t al = sizeof a;
		ssize_t n = recvfrom(g_raw, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&a, &al);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		*ip = ntohl(a.sin_addr.s_addr);
		*port = ntohs(a.sin_port);
		return n;
	}
}

/* Discards whatever arrives within ms (late ORDERED / APPLIED of earlier
 * cases). */
static void raw_drain(unsigned ms)
{
	static uint8_t buf[DGRAM_CAP];
	uint64_t deadline = ordo_mono_ns() + ms * ORDO_NS_PER_MS;
	uint32_t ip;
	uint16_t port;
	while (raw_recv(buf, sizeof buf, deadline, &ip, &port) >= 0)
		;
}

/* ------------------------------------------------------- node queries */

static bool get_status(uint32_t node_id, struct wire_status_msg *s)
{
	for (int i = 0; i < 5; i++)
		if (ordo_status(g_q, node_id, s, STATUS_TIMEOUT) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------ datagram building */

/* Recomputes the checksum (§2.1) over the first `length` bytes (as far as
 * the datagram goes), bytes 12..15 taken as 0. */
static void fix_crc(struct dgram *d)
{
	uint32_t length = ordo_ld32(d->b + 8);
	size_t n = length < d->len ? length : d->len;
	ordo_st32(d->b + 12, 0);
	ordo_st32(d->b + 12, ordo_crc32c(d->b, n));
}

/* Recomputes the MAC trailer at `length` with key (after fix_crc). */
static void fix_mac(struct dgram *d, const struct wire_key *key)
{
	uint32_t length = ordo_ld32(d->b + 8);
	if (length + ORDO_MAC_BYTES > d->len)
		return;
	crypto_generichash(d->b + length, ORDO_MAC_BYTES, d->b, length, key->secret,
			   WIRE_SECRET_BYTES);
}

/* A message of type with a raw body (a multiple of 8 bytes). */
static void build_raw(struct dgram *d, uint8_t type, const void *body, uint32_t body_len,
		      const struct wire_key *key)
{
	struct wire_writer w;
	wire_begin(&w, d->b, DGRAM_CAP, type, g_cl.cluster_id);
	bool ok = wire_put(&w, body, body_len);
	if (!ok)
		abort();
	d->len = wire_finish(&w, key);
}

static void build_submit(struct dgram *d, const struct wire_req *recs, unsigned n,
			 const struct wire_key *key)
{
	struct wire_writer w;
	wire_begin(&w, d->b, DGRAM_CAP, WIRE_SUBMIT, g_cl.cluster_id);
	wire_begin_records(&w, 0);
	for (unsigned i = 0; i < n; i++)
		if (!wire_add_submit(&w, &recs[i]))
			abort();
	d->len = wire_finish(&w, key);
}

static void build_fetch(struct dgram *d, uint64_t nonce, const struct wire_key *key)
{
	struct wire_writer w;
	wire_begin(&w, d->b, DGRAM_CAP, WIRE_FETCH, g_cl.cluster_id);
	struct wire_fetch f = {.nonce = nonce, .from_position = 1, .max_bytes = 0};
	wire_put_fetch(&w, &f);
	d->len = wire_finish(&w, key);
}

static void build_status_q(struct dgram *d, uint64_t nonce, const struct wire_key *key)
{
	struct wire_writer w;
	wire_begin(&w, d->b, DGRAM_CAP, WIRE_STATUS_Q, g_cl.cluster_id);
	wire_put_status_q(&w, nonce);
	d->len = wire_finish(&w, key);
}

static struct wire_req opening(uint64_t client_id)
{
	return (struct wire_req){.client_id = client_id, .request_number = 1, .op = WIRE_OP_OPAQUE};
}

/* A base datagram the target would answer: for the sequencer a SUBMIT of an
 * opening request (OK on commit) and a request of an unknown session
 * (SESSION_UNKNOWN at once), for a replica a FETCH (ENTRIES). With key, AUTH
 * (client_ids in the key's range, nonce = CLOCK_REALTIME as §3.7 asks). The
 * ids go to the list of those that must never be ordered unless `ordered`. */
static void build_base(struct dgram *d, const struct target *t, const struct wire_key *key,
		       bool ordered)
{
	if (t->node_id == SEQ_ID) {
		static const uint8_t payload[40] = {1, 2, 3};
		struct wire_req r[2] = {opening(fresh_id(key ? key->key_id : 0)),
					{.client_id = fresh_id(key ? key->key_id : 0),
					 .request_number = 2,
					 .session = 0x7fffffffffffull,
					 .op = WIRE_OP_OPAQUE,
					 .size = sizeof payload,
					 .payload = payload}};
		if (ordered)
			track(g_must, &g_nmust, r[0].client_id);
		else
			track(g_never, &g_nnever, r[0].client_id);
		track(g_never, &g_nnever, r[1].client_id);
		build_submit(d, r, 2, key);
	} else {
		build_fetch(d, ordo_real_ns(), key);
	}
}

/* --------------------------------------------------------- drop classes */

/* Sends n datagrams to t, then checks that t answered want_answers of them
 * (within ANSWER_WAIT_MS) and that its STATUS `dropped` rose by want_drops. */
static void run_case(const struct target *t, const char *what, struct dgram *ds, unsigned n,
		     unsigned want_drops, unsigned want_answers, unsigned why)
{
	g_expect[t->node_id == SEQ_ID ? 0 : 1][why] += want_drops;
	struct wire_status_msg before, after;
	raw_drain(0);
	if (!get_status(t->node_id, &before)) {
		check(false, "%s: %s: STATUS before", t->name, what);
		return;
	}
	bool sent = true;
	for (unsigned i = 0; i < n; i++)
		sent &= raw_send(t, ds[i].b, ds[i].len);
	static uint8_t buf[DGRAM_CAP];
	unsigned answers = 0;
	uint64_t deadline = ordo_mono_ns() + ANSWER_WAIT_MS * ORDO_NS_PER_MS;
	uint32_t ip;
	uint16_t port;
	ssize_t got;
	while ((got = raw_recv(buf, sizeof buf, deadline, &ip, &port)) >= 0)
		if (ip == t->ip && port == t->port)
			answers++;
	if (!get_status(t->node_id, &after)) {
		check(false, "%s: %s: STATUS after", t->name, what);
		return;
	}
	uint64_t dropped = after.dropped - before.dropped;
	bool answered_ok = want_answers == ANY_ANSWERS ? answers > 0 : answers == want_answers;
	char want[32];
	if (want_answers == ANY_ANSWERS)
		snprintf(want, sizeof want, "answered");
	else
		snprintf(want, sizeof want, "%u answered", want_answers);
	bool ok = check(sent && dropped == want_drops && answered_ok,
			"%s: %s: %u sent, %u dropped and counted, %s", t->name, what, n, want_drops,
			want);
	if (!ok)
		diag("sent=%s dropped rose by %llu, answers %u", sent ? "all" : "NOT ALL",
		     (unsigned long long)dropped, answers);
}

static void expect_dropped(const struct target *t, const char *what, struct dgram *ds, unsigned n,
			   unsigned why)
{
	run_case(t, what, ds, n, n, 0, why);
}

static struct dgram g_ds[CASE_DGRAMS_MAX];

/* Copies of base with one header byte range replaced, CRC (and MAC) fixed. */
static void mutate_u8(struct dgram *d, const struct dgram *base, unsigned off, uint8_t v,
		      const struct wire_key *key)
{
	if (d != base)
		*d = *base;
	d->b[off] = v;
	fix_crc(d);
	if (key)
		fix_mac(d, key);
}

static void drop_classes(const struct target *t)
{
	struct dgram base, abase;
	build_base(&base, t, NULL, false);
	build_base(&abase, t, &g_key7, false);
	size_t L = base.len;
	struct dgram *ds = g_ds;
	unsigned n;

	/* Rule 1: size. */
	static const size_t shorts[] = {0, 1, 8, 16, 31};
	n = 0;
	for (unsigned i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
		ds[n] = base;
		ds[n++].len = shorts[i];
	}
	expect_dropped(t, "datagrams of 0, 1, 8, 16, 31 bytes", ds, n, WIRE_DROP_SHORT);

	const size_t cuts[] = {32, 33, 40, 48, L - 8, L - 1};
	n = 0;
	for (unsigned i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		ds[n] = base;
		ds[n++].len = cuts[i];
	}
	expect_dropped(t, "valid message cut at 32, 33, 40, 48, length-8, length-1", ds, n,
		       WIRE_DROP_LENGTH);

	/* Rule 1: magic, version, flags. */
	n = 0;
	mutate_u8(&ds[n++], &base, 0, 'o', NULL);
	mutate_u8(&ds[n++], &base, 3, 'P', NULL);
	mutate_u8(&ds[n++], &abase, 0, 0, &g_key7);
	expect_dropped(t, "bad magic", ds, n, WIRE_DROP_MAGIC);

	n = 0;
	mutate_u8(&ds[n++], &base, 4, 0, NULL);
	mutate_u8(&ds[n++], &base, 4, 2, NULL);
	mutate_u8(&ds[n++], &base, 4, 255, NULL);
	mutate_u8(&ds[n++], &abase, 4, 2, &g_key7);
	expect_dropped(t, "bad version (0, 2, 255; AUTH 2)", ds, n, WIRE_DROP_VERSION);

	n = 0;
	mutate_u8(&ds[n++], &base, 6, 0x02, NULL);
	mutate_u8(&ds[n++], &base, 7, 0x80, NULL);
	mutate_u8(&ds[n++], &abase, 6, 0x03, &g_key7);
	mutate_u8(&ds[n++], &abase, 7, 0x01, &g_key7);
	expect_dropped(t, "unknown flag bits (0x0002, 0x8000, AUTH|0x0002, AUTH|0x0100)", ds, n,
		       WIRE_DROP_FLAGS);

	/* Rule 1: length. */
	n = 0;
	ds[n] = base; /* 4 more bytes, length says so */
	memset(ds[n].b + L, 0, 4);
	ds[n].len = L + 4;
	ordo_st32(ds[n].b + 8, (uint32_t)L + 4);
	fix_crc(&ds[n++]);
	ds[n] = base; /* 1 byte less */
	ds[n].len = L - 1;
	ordo_st32(ds[n].b + 8, (uint32_t)L - 1);
	fix_crc(&ds[n++]);
	ds[n] = abase; /* AUTH, body 4 bytes longer */
	memmove(ds[n].b + L + 4, ds[n].b + L, ORDO_MAC_BYTES);
	memset(ds[n].b + L, 0, 4);
	ds[n].len = abase.len + 4;
	ordo_st32(ds[n].b + 8, (uint32_t)L + 4);
	fix_crc(&ds[n]);
	fix_mac(&ds[n], &g_key7);
	n++;
	expect_dropped(t, "length not a multiple of 8", ds, n, WIRE_DROP_LENGTH);

	n = 0;
	static const uint32_t smalls[] = {0, 8, 24, 31};
	for (unsigned i = 0; i < sizeof smalls / sizeof smalls[0]; i++) {
		ds[n] = base;
		ordo_st32(ds[n].b + 8, smalls[i]);
		fix_crc(&ds[n++]);
	}
	expect_dropped(t, "length field 0, 8, 24, 31 (under 32)", ds, n, WIRE_DROP_LENGTH);

	n = 0;
	ds[n] = base; /* length says 8 more than sent */
	ordo_st32(ds[n].b + 8, (uint32_t)L + 8);
	fix_crc(&ds[n++]);
	ds[n] = base; /* length says 8 less than sent */
	ordo_st32(ds[n].b + 8, (uint32_t)L - 8);
	fix_crc(&ds[n++]);
	ds[n] = base; /* 8 trailing bytes the length does not count */
	memset(ds[n].b + L, 0, 8);
	ds[n++].len = L + 8;
	ds[n] = base; /* 16 trailing bytes without AUTH (a MAC-sized tail) */
	memset(ds[n].b + L, 0xA5, 16);
	ds[n++].len = L + 16;
	ds[n] = abase; /* AUTH: length counts the MAC trailer */
	ordo_st32(ds[n].b + 8, (uint32_t)abase.len);
	fix_crc(&ds[n++]);
	ds[n] = abase; /* AUTH: the MAC trailer is missing */
	ds[n++].len = L;
	expect_dropped(t, "length inconsistent with the datagram length", ds, n, WIRE_DROP_LENGTH);

	/* Rule 1: AUTH needs 48 bytes. */
	n = 0;
	static const size_t auth_lens[] = {32, 40, 47};
	for (unsigned i = 0; i < sizeof auth_lens / sizeof auth_lens[0]; i++) {
		ds[n] = abase;
		ds[n].len = auth_lens[i];
		ordo_st32(ds[n].b + 8, (uint32_t)(auth_lens[i] & ~7u));
		fix_crc(&ds[n++]);
	}
	expect_dropped(t, "AUTH flag with 32, 40, 47 bytes in all", ds, n, WIRE_DROP_SHORT);

	/* Datagrams over max_datagram (counted by the transport). */
	n = 0;
	ds[n] = base;
	memset(ds[n].b + L, 0, 1480 - L);
	ds[n].len = 1480;
	ordo_st32(ds[n].b + 8, 1480);
	fix_crc(&ds[n++]);
	ds[n] = base;
	memset(ds[n].b + L, 0, 8000 - L);
	ds[n].len = 8000;
	ordo_st32(ds[n].b + 8, 8000);
	fix_crc(&ds[n++]);
	expect_dropped(t, "datagrams of 1480 and 8000 bytes (over max_datagram 1472)", ds, n,
		       DROP_TRUNCATED);

	/* Rule 2: checksum. */
	n = 0;
	ds[n] = base;
	ds[n++].b[12] ^= 0x01; /* checksum byte */
	ds[n] = base;
	ds[n++].b[L - 1] ^= 0x40; /* last body byte */
	ds[n] = base;
	ds[n++].b[28] = 1; /* reserved header byte, checksum not updated */
	ds[n] = base;
	ordo_st32(ds[n++].b + 12, 0); /* checksum 0 */
	ds[n] = abase;		      /* AUTH: body changed, MAC recomputed, checksum stale */
	ds[n].b[L - 1] ^= 0x40;
	fix_mac(&ds[n++], &g_key7);
	expect_dropped(t, "bad checksum", ds, n, WIRE_DROP_CHECKSUM);

	/* Rule 3: cluster_id. */
	n = 0;
	mutate_u8(&ds[n++], &base, 16, base.b[16] ^ 1, NULL);
	mutate_u8(&ds[n++], &base, 23, base.b[23] ^ 0x80, NULL);
	ds[n] = base;
	memset(ds[n].b + 16, 0, 8);
	fix_crc(&ds[n++]);
	mutate_u8(&ds[n++], &abase, 16, abase.b[16] ^ 1, &g_key7);
	expect_dropped(t, "wrong cluster_id (two bit flips, 0, AUTH)", ds, n, WIRE_DROP_CLUSTER);

	/* Rule 4: keys and MAC. */
	n = 0;
	mutate_u8(&ds[n++], &abase, 24, 8, NULL); /* key 8 does not exist */
	mutate_u8(&ds[n++], &abase, 24, 0, NULL); /* key_id 0 */
	ds[n] = base; /* AUTH flag on a message without a MAC: key_id 0 */
	memset(ds[n].b + L, 0, ORDO_MAC_BYTES);
	ds[n].len = L + ORDO_MAC_BYTES;
	ordo_st16(ds[n].b + 6, WIRE_FLAG_AUTH);
	fix_crc(&ds[n++]);
	{
		/* A valid MAC under the node key: clients' ports do not hold it. */
		const struct wire_key *nk = &g_cl.internal_key;
		ds[n] = base;
		ordo_st16(ds[n].b + 6, WIRE_FLAG_AUTH);
		ordo_st32(ds[n].b + 24, nk->key_id);
		ds[n].len = L + ORDO_MAC_BYTES;
		fix_crc(&ds[n]);
		fix_mac(&ds[n++], nk);
	}
	expect_dropped(t, "AUTH with key_id 8 (unknown), 0, 0 (no MAC), 65535 (node key)", ds, n,
		       WIRE_DROP_KEY_UNKNOWN);

	n = 0;
	ds[n] = abase;
	ds[n++].b[abase.len - 1] ^= 0x01; /* MAC byte */
	ds[n] = abase;
	ds[n].b[L - 1] ^= 0x40; /* body byte, checksum fixed, MAC stale */
	fix_crc(&ds[n++]);
	{
		struct wire_key other = g_key7;
		other.secret[0] ^= 1; /* MAC under another secret */
		ds[n] = abase;
		fix_mac(&ds[n++], &other);
	}
	ds[n] = abase;
	memset(ds[n].b + L, 0, ORDO_MAC_BYTES); /* MAC all zero */
	n++;
	expect_dropped(t, "AUTH with a bad MAC (flipped, stale, other secret, zero)", ds, n,
		       WIRE_DROP_MAC);

	/* Rule 5: types. */
	n = 0;
	static const uint8_t internal[] = {16, 17, 18, 63};
	for (unsigned i = 0; i < sizeof internal; i++)
		mutate_u8(&ds[n++], &base, 5, internal[i], NULL);
	mutate_u8(&ds[n++], &abase, 5, 16, &g_key7);
	expect_dropped(t, "internal types 16, 17, 18, 63 (and 16 with AUTH) on the client port", ds,
		       n, WIRE_DROP_TYPE);

	n = 0;
	static const uint8_t unassigned[] = {0, 9, 15, 64, 128, 255};
	for (unsigned i = 0; i < sizeof unassigned; i++)
		mutate_u8(&ds[n++], &base, 5, unassigned[i], NULL);
	mutate_u8(&ds[n++], &abase, 5, 9, &g_key7);
	expect_dropped(t, "unassigned types 0, 9, 15, 64, 128, 255 (and 9 with AUTH)", ds, n,
		       WIRE_DROP_TYPE);

	n = 0;
	if (t->node_id == SEQ_ID) {
		static const uint8_t others[] = {2, 3, 4, 5, 7, 8};
		for (unsigned i = 0; i < sizeof others; i++)
			mutate_u8(&ds[n++], &base, 5, others[i], NULL);
		expect_dropped(t, "types of other ports (2, 3, 4, 5, 7, 8)", ds, n, WIRE_DROP_TYPE);
	} else {
		static const uint8_t others[] = {1, 2, 3, 5, 7};
		for (unsigned i = 0; i < sizeof others; i++)
			mutate_u8(&ds[n++], &base, 5, others[i], NULL);
		expect_dropped(t, "types of other ports (1, 2, 3, 5, 7)", ds, n, WIRE_DROP_TYPE);
	}

	/* Bodies. */
	uint8_t zero[128] = {0};
	if (t->node_id == SEQ_ID) {
		n = 0;
		build_raw(&ds[n++], WIRE_SUBMIT, zero, 8, NULL); /* count 0 */
		{
			struct wire_req r = opening(fresh_id(0));
			track(g_never, &g_nnever, r.client_id);
			build_submit(&ds[n], &r, 1, NULL);
			ordo_st32(ds[n].b + 32, 0); /* count 0, one record present */
			fix_crc(&ds[n++]);
			struct wire_req ra = opening(fresh_id(KEY_ID));
			track(g_never, &g_nnever, ra.client_id);
			build_submit(&ds[n], &ra, 1, &g_key7);
			ordo_st32(ds[n].b + 32, 0);
			fix_crc(&ds[n]);
			fix_mac(&ds[n++], &g_key7);
		}
		expect_dropped(t, "SUBMIT with count 0 (empty, one record, AUTH)", ds, n,
			       WIRE_DROP_COUNT_ZERO);

		n = 0;
		/* wire_finish will not write a SUBMIT without its count: patch
		 * the type of an empty message instead. */
		build_raw(&ds[n], WIRE_STATUS_Q, zero, 0, NULL);
		mutate_u8(&ds[n], &ds[n], 5, WIRE_SUBMIT, NULL);
		n++;
		build_raw(&ds[n], WIRE_STATUS_Q, zero, 0, &g_key7);
		mutate_u8(&ds[n], &ds[n], 5, WIRE_SUBMIT, &g_key7);
		n++;
		expect_dropped(t, "SUBMIT without a body (length 32)", ds, n, WIRE_DROP_BODY);
	} else {
		n = 0;
		static const uint32_t fl[] = {0, 16, 32, 40};
		for (unsigned i = 0; i < sizeof fl / sizeof fl[0]; i++)
			build_raw(&ds[n++], WIRE_FETCH, zero, fl[i], NULL);
		expect_dropped(t, "FETCH with a body of 0, 16, 32, 40 bytes (not 24)", ds, n,
			       WIRE_DROP_BODY);

		n = 0;
		static const uint32_t rl[] = {0, 24, 64, 80};
		for (unsigned i = 0; i < sizeof rl / sizeof rl[0]; i++)
			build_raw(&ds[n++], WIRE_RESULT_Q, zero, rl[i], NULL);
		expect_dropped(t, "RESULT_Q with a body of 0, 24, 64, 80 bytes (not 72)", ds, n,
			       WIRE_DROP_BODY);
	}
	n = 0;
	static const uint32_t sl[] = {0, 8, 88, 104};
	for (unsigned i = 0; i < sizeof sl / sizeof sl[0]; i++)
		build_raw(&ds[n++], WIRE_STATUS_Q, zero, sl[i], NULL);
	build_raw(&ds[n++], WIRE_STATUS_Q, zero, 88, &g_key7);
	expect_dropped(t, "STATUS_Q with a body of 0, 8, 88, 104 bytes (not 96; and AUTH 88)", ds,
		       n, WIRE_DROP_BODY);

	/* §3.7: freshness of authenticated queries. */
	n = 0;
	uint64_t now = ordo_real_ns();
	build_status_q(&ds[n++], now - 60 * ORDO_NS_PER_S, &g_key7);
	build_status_q(&ds[n++], now + 60 * ORDO_NS_PER_S, &g_key7);
	build_status_q(&ds[n++], 1, &g_key7);
	if (t->node_id != SEQ_ID)
		build_fetch(&ds[n++], now - 11 * ORDO_NS_PER_S, &g_key7);
	expect_dropped(t, "AUTH queries with a nonce over 10 s off the node's clock", ds, n,
		       WIRE_DROP_NONCE_STALE);

	n = 0;
	uint64_t nonce = ordo_real_ns();
	build_status_q(&ds[n++], nonce, &g_key7);
	ds[n++] = ds[0];
	ds[n++] = ds[0];
	run_case(t, "AUTH STATUS_Q sent 3 times with one nonce: first answered, 2 replays dropped",
		 ds, n, 2, 1, WIRE_DROP_NONCE_REPLAY);
}

/* Controls: the unbroken base datagrams are answered and not dropped, so that
 * "no answer" above means something. */
static void controls(const struct target *t)
{
	struct dgram *ds = g_ds;
	build_base(&ds[0], t, NULL, true);
	run_case(t, "control: the unbroken base datagram", ds, 1, 0, ANY_ANSWERS, WIRE_DROP_NONE);
	build_base(&ds[0], t, &g_key7, true);
	run_case(t, "control: the unbroken base datagram with AUTH (key 7)", ds, 1, 0, ANY_ANSWERS,
		 WIRE_DROP_NONE);
	raw_drain(50);
}

/* -------------------------------------------------------- INVALID cases */

struct expect {
	uint64_t client_id;
	uint64_t request_number;
	int status; /* enum wire_status, or NO_ANSWER */
	unsigned seen;
	int got;
	uint64_t pos; /* group_position of an OK answer */
};

/* Sends one SUBMIT to the sequencer and checks the ORDERED records that come
 * back within ORDERED_WAIT_MS: exactly the expected ones, each once, with the
 * expected status (OK with a place in the newly committed range); the commit
 * rose by the number of OK records; nothing was counted as dropped. With key,
 * every ORDERED must carry AUTH under it. */
static void expect_ordered(const char *what, const struct dgram *d, struct expect *e, unsigned ne,
			   const struct wire_key *key)
{
	const struct cfg_node *nd = cfg_node_find(&g_cl, SEQ_ID);
	const struct target t = {"sequencer", SEQ_ID, nd->ip, nd->client_port};
	unsigned want_ok = 0;
	for (unsigned i = 0; i < ne; i++) {
		e[i].seen = 0;
		e[i].got = NO_ANSWER;
		e[i].pos = 0;
		if (e[i].status == WIRE_ST_OK) {
			want_ok++;
			track(g_must, &g_nmust, e[i].client_id);
		} else if (e[i].client_id != 0) {
			track(g_never, &g_nnever, e[i].client_id);
		}
	}
	raw_drain(0);
	struct wire_status_msg before, after;
	if (!get_status(SEQ_ID, &before)) {
		check(false, "sequencer: %s: STATUS before", what);
		return;
	}
	bool sent = raw_send(&t, d->b, d->len);
	static uint8_t buf[DGRAM_CAP];
	struct wire_ordered_rec recs[64];
	struct wire_rx_ctx ctx = {.cluster_id = g_cl.cluster_id, .keys = &g_kr7};
	unsigned unexpected = 0, bad_dgrams = 0, bad_auth = 0;
	uint64_t deadline = ordo_mono_ns() + ORDERED_WAIT_MS * ORDO_NS_PER_MS;
	uint32_t ip;
	uint16_t port;
	ssize_t got;
	struct {
		uint64_t epoch, pos;
	} places[16] = {{0, 0}};
	while ((got = raw_recv(buf, sizeof buf, deadline, &ip, &port)) >= 0) {
		if (ip != t.ip || port != t.port)
			continue; /* APPLIED from replicas */
		struct wire_hdr h;
		uint32_t hint;
		if (wire_check(&ctx, buf, (size_t)got, &h) != WIRE_DROP_NONE ||
		    h.type != WIRE_ORDERED) {
			bad_dgrams++;
			continue;
		}
		if (key ? !(h.authed && h.key_id == key->key_id) : h.authed)
			bad_auth++;
		int k = wire_parse_ordered(buf + ORDO_HDR_BYTES, h.length - ORDO_HDR_BYTES, &hint,
					   recs, 64);
		if (k < 0) {
			bad_dgrams++;
			continue;
		}
		for (int j = 0; j < k; j++) {
			unsigned i;
			for (i = 0; i < ne; i++)
				if (e[i].client_id == recs[j].client_id &&
				    e[i].request_number == recs[j].request_number)
					break;
			if (i == ne) {
				unexpected++;
				continue;
			}
			e[i].seen++;
			e[i].got = recs[j].status;
			places[i].epoch = recs[j].place.epoch;
			places[i].pos = recs[j].place.group_position;
			e[i].pos = recs[j].place.group_position;
		}
	}
	if (!get_status(SEQ_ID, &after)) {
		check(false, "sequencer: %s: STATUS after", what);
		return;
	}
	bool ok = sent && unexpected == 0 && bad_dgrams == 0 && bad_auth == 0;
	for (unsigned i = 0; i < ne; i++) {
		bool rec_ok = e[i].status == NO_ANSWER ? e[i].seen == 0
						       : e[i].seen == 1 && e[i].got == e[i].status;
		if (rec_ok && e[i].status == WIRE_ST_OK)
			rec_ok = places[i].epoch >= 1 && places[i].pos > before.commit &&
				 places[i].pos <= after.commit;
		if (!rec_ok)
			diag("record %u (client_id %#llx, request %llu): want %s, got %s x%u", i,
			     (unsigned long long)e[i].client_id,
			     (unsigned long long)e[i].request_number,
			     e[i].status == NO_ANSWER ? "no answer" : wire_status_name(e[i].status),
			     e[i].got == NO_ANSWER ? "no answer" : wire_status_name(e[i].got),
			     e[i].seen);
		ok &= rec_ok;
	}
	if (!ok)
		diag("unexpected records %u, bad datagrams %u, AUTH mismatches %u", unexpected,
		     bad_dgrams, bad_auth);
	uint64_t ordered = after.commit - before.commit;
	uint64_t dropped = after.dropped - before.dropped;
	bool okc = ordered == want_ok && dropped == 0;
	check(ok && okc, "sequencer: %s: answers as expected, %u ordered, none dropped", what,
	      want_ok);
	if (!okc)
		diag("commit rose by %llu (want %u), dropped rose by %llu (want 0)",
		     (unsigned long long)ordered, want_ok, (unsigned long long)dropped);
}

/* One record and its expected answer. */
static void one_invalid(const char *what, struct wire_req r)
{
	struct dgram *d = &g_ds[0];
	build_submit(d, &r, 1, NULL);
	struct expect e = {r.client_id, r.request_number, WIRE_ST_INVALID, 0, 0};
	expect_ordered(what, d, &e, 1, NULL);
}

static void invalid_cases(void)
{
	static uint8_t big[1025], p16[16], p15[15], p31[31], p8[8];
	memset(big, 0x5a, sizeof big);
	const uint64_t sess = 1; /* not a session of these client_ids */

	one_invalid("INVALID: client_id 0 (opening request)",
		    (struct wire_req){.client_id = 0, .request_number = 1});
	one_invalid("INVALID: client_id 0 (request 2)",
		    (struct wire_req){.client_id = 0, .request_number = 2, .session = sess});
	one_invalid("INVALID: request_number 0",
		    (struct wire_req){.client_id = fresh_id(0), .request_number = 0});
	one_invalid("INVALID: unknown op 9",
		    (struct wire_req){
			.client_id = fresh_id(0), .request_number = 2, .session = sess, .op = 9});
	one_invalid("INVALID: unknown op 4 with a payload",
		    (struct wire_req){.client_id = fresh_id(0),
				      .request_number = 2,
				      .session = sess,
				      .op = 4,
				      .size = 16,
				      .payload = p16});
	one_invalid("INVALID: OPAQUE of 1025 bytes", (struct wire_req){.client_id = fresh_id(0),
								       .request_number = 2,
								       .session = sess,
								       .op = WIRE_OP_OPAQUE,
								       .size = 1025,
								       .payload = big});
	one_invalid("INVALID: CREATE_ACCOUNT of size 15",
		    (struct wire_req){.client_id = fresh_id(0),
				      .request_number = 2,
				      .session = sess,
				      .op = WIRE_OP_CREATE_ACCOUNT,
				      .size = 15,
				      .payload = p15});
	one_invalid("INVALID: CREATE_ACCOUNT of size 24",
		    (struct wire_req){.client_id = fresh_id(0),
				      .request_number = 2,
				      .session = sess,
				      .op = WIRE_OP_CREATE_ACCOUNT,
				      .size = 24,
				      .payload = big});
	one_invalid("INVALID: TRANSFER of size 31", (struct wire_req){.client_id = fresh_id(0),
								      .request_number = 2,
								      .session = sess,
								      .op = WIRE_OP_TRANSFER,
								      .size = 31,
								      .payload = p31});
	one_invalid("INVALID: LOOKUP of size 8", (struct wire_req){.client_id = fresh_id(0),
								   .request_number = 2,
								   .session = sess,
								   .op = WIRE_OP_LOOKUP,
								   .size = 8,
								   .payload = p8});
	{
		uint8_t lk[16] = {0};
		ordo_st64(lk, 1);
		ordo_st64(lk + 8, 1ull << 40);
		one_invalid("INVALID: LOOKUP with a nonzero reserved field",
			    (struct wire_req){.client_id = fresh_id(0),
					      .request_number = 2,
					      .session = sess,
					      .op = WIRE_OP_LOOKUP,
					      .size = 16,
					      .payload = lk});
		uint8_t ca[16] = {0};
		ordo_st64(ca, 5);
		ordo_st32(ca + 12, 0x100);
		one_invalid("INVALID: CREATE_ACCOUNT with a nonzero reserved field",
			    (struct wire_req){.client_id = fresh_id(0),
					      .request_number = 2,
					      .session = sess,
					      .op = WIRE_OP_CREATE_ACCOUNT,
					      .size = 16,
					      .payload = ca});
		ordo_st32(ca + 12, 0);
		one_invalid("INVALID: request 1 that is a CREATE_ACCOUNT",
			    (struct wire_req){.client_id = fresh_id(0),
					      .request_number = 1,
					      .op = WIRE_OP_CREATE_ACCOUNT,
					      .size = 16,
					      .payload = ca});
	}
	one_invalid("INVALID: request 1 that is an OPAQUE of 8 bytes",
		    (struct wire_req){.client_id = fresh_id(0),
				      .request_number = 1,
				      .op = WIRE_OP_OPAQUE,
				      .size = 8,
				      .payload = p8});
	one_invalid("INVALID: request 1 with session 7",
		    (struct wire_req){.client_id = fresh_id(0), .request_number = 1, .session = 7});

	struct dgram *d = &g_ds[0];
	struct expect e[16];

	/* Broken framing: nothing ordered, records whose fixed part is inside
	 * answered INVALID, the rest not at all. */
	{
		struct wire_req r[2] = {opening(fresh_id(0)), opening(fresh_id(0))};
		build_submit(d, r, 2, NULL);
		ordo_st32(d->b + 32, 5);
		fix_crc(d);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 1, WIRE_ST_INVALID, 0, 0};
		expect_ordered("framing: count 5 with 2 valid records present", d, e, 2, NULL);
	}
	{
		struct wire_req r[3] = {opening(fresh_id(0)), opening(fresh_id(0)),
					opening(fresh_id(0))};
		build_submit(d, r, 3, NULL);
		d->len -= 16; /* the third record's fixed part is cut in half */
		ordo_st32(d->b + 8, (uint32_t)d->len);
		fix_crc(d);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[2] = (struct expect){r[2].client_id, 1, NO_ANSWER, 0, 0};
		expect_ordered("framing: third record's fixed part half present", d, e, 3, NULL);
	}
	{
		struct wire_req r[2] = {opening(fresh_id(0)),
					{.client_id = fresh_id(0),
					 .request_number = 2,
					 .session = sess,
					 .size = 8,
					 .payload = p8}};
		build_submit(d, r, 2, NULL);
		ordo_st16(d->b + ORDO_HDR_BYTES + 8 + 32 + 26, 64); /* size 64, 8 present */
		fix_crc(d);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 2, WIRE_ST_INVALID, 0, 0};
		expect_ordered("framing: last payload runs past length", d, e, 2, NULL);
	}
	{
		struct wire_req r[2] = {opening(fresh_id(0)), opening(fresh_id(0))};
		build_submit(d, r, 2, NULL);
		memset(d->b + d->len, 0, 8);
		d->len += 8;
		ordo_st32(d->b + 8, (uint32_t)d->len);
		fix_crc(d);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 1, WIRE_ST_INVALID, 0, 0};
		expect_ordered("framing: 8 bytes left over after count records", d, e, 2, NULL);
	}
	{
		struct wire_req r[2] = {opening(fresh_id(0)), opening(fresh_id(0))};
		build_submit(d, r, 2, NULL);
		ordo_st32(d->b + 32, 1); /* count 1: the second record is leftover */
		fix_crc(d);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 1, NO_ANSWER, 0, 0};
		expect_ordered("framing: count 1 with 2 records present", d, e, 2, NULL);
	}

	/* Mixed: the other records of the datagram go on. */
	{
		struct wire_req r[2] = {
		    {.client_id = fresh_id(0), .request_number = 0},
		    opening(fresh_id(0)),
		};
		build_submit(d, r, 2, NULL);
		e[0] = (struct expect){r[0].client_id, 0, WIRE_ST_INVALID, 0, 0};
		e[1] = (struct expect){r[1].client_id, 1, WIRE_ST_OK, 0, 0};
		expect_ordered("mixed: one INVALID record and one opening request", d, e, 2, NULL);
	}
	{
		uint8_t ca[16] = {0};
		ordo_st64(ca, 9);
		ordo_st32(ca + 12, 1);
		struct wire_req r[7] = {
		    opening(fresh_id(0)),
		    {.client_id = 0, .request_number = 1},
		    {.client_id = fresh_id(0),
		     .request_number = 2,
		     .session = sess,
		     .op = WIRE_OP_TRANSFER,
		     .size = 31,
		     .payload = p31},
		    opening(fresh_id(0)),
		    {.client_id = fresh_id(0),
		     .request_number = 2,
		     .session = sess,
		     .op = WIRE_OP_CREATE_ACCOUNT,
		     .size = 16,
		     .payload = ca},
		    {.client_id = fresh_id(0),
		     .request_number = 1,
		     .op = WIRE_OP_OPAQUE,
		     .size = 8,
		     .payload = p8},
		    {.client_id = fresh_id(0), .request_number = 2, .session = sess}, /* valid */
		};
		build_submit(d, r, 7, NULL);
		static const int st[7] = {
		    WIRE_ST_OK,	     WIRE_ST_INVALID, WIRE_ST_INVALID,	      WIRE_ST_OK,
		    WIRE_ST_INVALID, WIRE_ST_INVALID, WIRE_ST_SESSION_UNKNOWN};
		for (unsigned i = 0; i < 7; i++)
			e[i] = (struct expect){r[i].client_id, r[i].request_number, st[i], 0, 0};
		expect_ordered("mixed: 4 INVALID, 2 openings, 1 unknown session in one datagram", d,
			       e, 7, NULL);
	}

	/* AUTH: client_id ranges of key 7 (§3.1.3). */
	{
		struct wire_req r[4] = {
		    opening(fresh_id(KEY_ID)),
		    opening(fresh_id(8)),
		    opening(fresh_id(KEY_ID) & 0x0000FFFFFFFFFFFFull),
		    opening(fresh_id(KEY_ID) | (1ull << 63)),
		};
		build_submit(d, r, 4, &g_key7);
		e[0] = (struct expect){r[0].client_id, 1, WIRE_ST_OK, 0, 0};
		for (unsigned i = 1; i < 4; i++)
			e[i] = (struct expect){r[i].client_id, 1, WIRE_ST_INVALID, 0, 0};
		expect_ordered("AUTH key 7: client_id top bits 7 OK; 8, 0, 0x8007 INVALID", d, e, 4,
			       &g_key7);
	}
	{
		/* Without AUTH every trusted sender may use every client_id. */
		struct wire_req r = opening(fresh_id(KEY_ID));
		build_submit(d, &r, 1, NULL);
		e[0] = (struct expect){r.client_id, 1, WIRE_ST_OK, 0, 0};
		expect_ordered("no AUTH: a client_id of key 7's range is OK", d, e, 1, NULL);
	}

	/* The boundaries the INVALID cases lie next to are OK: in a session
	 * opened from the raw socket, OPAQUE of 1024 bytes and every ledger op
	 * at its exact size with reserved fields 0, and an OPAQUE whose padding
	 * is not 0 (receivers ignore padding; ENTRIES carries it as 0, §3.4). */
	{
		struct wire_req r = opening(fresh_id(0));
		build_submit(d, &r, 1, NULL);
		e[0] = (struct expect){r.client_id, 1, WIRE_ST_OK, 0, 0, 0};
		expect_ordered("boundaries: opening a session from the raw socket", d, e, 1, NULL);
		uint64_t session = e[0].pos;
		uint8_t ca[16] = {0}, tr[32] = {0}, lk[16] = {0};
		static const uint8_t three[3] = {0xA1, 0xB2, 0xC3};
		ordo_st64(ca, r.client_id);
		ordo_st64(tr, 1);
		ordo_st64(tr + 8, r.client_id);
		ordo_st64(tr + 16, 2);
		ordo_st64(tr + 24, 1);
		ordo_st64(lk, r.client_id);
		struct wire_req b[5] = {
		    {r.client_id, 2, session, WIRE_OP_OPAQUE, 1024, big},
		    {r.client_id, 3, session, WIRE_OP_CREATE_ACCOUNT, 16, ca},
		    {r.client_id, 4, session, WIRE_OP_TRANSFER, 32, tr},
		    {r.client_id, 5, session, WIRE_OP_LOOKUP, 16, lk},
		    {r.client_id, 6, session, WIRE_OP_OPAQUE, 3, three},
		};
		build_submit(d, b, 5, NULL);
		memset(d->b + d->len - 5, 0xEE, 5); /* request 6's padding */
		fix_crc(d);
		for (unsigned i = 0; i < 5; i++)
			e[i] =
			    (struct expect){r.client_id, b[i].request_number, WIRE_ST_OK, 0, 0, 0};
		if (session != 0)
			expect_ordered("boundaries: OPAQUE 1024, CREATE_ACCOUNT 16, TRANSFER 32, "
				       "LOOKUP 16, OPAQUE 3 with nonzero padding are OK",
				       d, e, 5, NULL);
		g_pad_client = r.client_id;
	}

	/* Reserved fields outside payloads are ignored by receivers (§1). */
	{
		struct wire_req r = opening(fresh_id(0));
		build_submit(d, &r, 1, NULL);
		ordo_st32(d->b + 28, 0xdeadbeef);      /* header reserved */
		ordo_st32(d->b + 36, 0x12345678);      /* SUBMIT head reserved */
		ordo_st32(d->b + 40 + 28, 0x9abcdef0); /* record reserved */
		fix_crc(d);
		e[0] = (struct expect){r.client_id, 1, WIRE_ST_OK, 0, 0};
		expect_ordered("nonzero reserved header, head and record fields are ignored", d, e,
			       1, NULL);
	}
}

/* ------------------------------------------------------ order and liveness */

static bool in_list(const uint64_t *list, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

/* Reads replica 11's whole applied order and checks it against g_must and
 * g_never. */
static void check_order(void)
{
	static uint8_t buf[ORDO_DATAGRAM_MAX];
	static uint64_t seen[4096];
	unsigned nseen = 0;
	struct wire_entry_rec recs[128];
	struct wire_entries_head head;
	uint64_t from = 1;
	bool fetched = true, pad_seen = false, pad_ok = false;
	for (int rounds = 0; rounds < 200; rounds++) {
		int k = ordo_fetch(g_q, REP_ID, from, 0, &head, recs, 128, buf, STATUS_TIMEOUT);
		if (k < 0) {
			fetched = false;
			break;
		}
		for (int i = 0; i < k && nseen < 4096; i++) {
			seen[nseen++] = recs[i].client_id;
			if (recs[i].client_id == g_pad_client && recs[i].request_number == 6) {
				const uint8_t *p = recs[i].payload;
				pad_seen = true;
				pad_ok = recs[i].size == 3 && p[0] == 0xA1 && p[1] == 0xB2 &&
					 p[2] == 0xC3 && p[3] == 0 && p[4] == 0 && p[5] == 0 &&
					 p[6] == 0 && p[7] == 0;
			}
		}
		if (k == 0)
			break;
		from = recs[k - 1].position + 1;
	}
	unsigned missing = 0, leaked = 0;
	for (unsigned i = 0; i < g_nmust; i++)
		if (!in_list(seen, nseen, g_must[i]))
			missing++;
	for (unsigned i = 0; i < g_nnever; i++)
		if (in_list(seen, nseen, g_never[i]))
			leaked++;
	check(pad_seen && pad_ok,
	      "order: the OPAQUE sent with nonzero padding is in ENTRIES with its 3 bytes and "
	      "zero padding");
	if (check(fetched && missing == 0 && leaked == 0,
		  "order (FETCH from replica %u): %u records hold all %u answered OK, none of %u "
		  "dropped or INVALID",
		  REP_ID, nseen, g_nmust, g_nnever))
		return;
	diag("fetched=%d missing=%u leaked=%u", fetched, missing, leaked);
}

static void check_replicas_agree(void)
{
	struct wire_status_msg seq = {0}, rep[3];
	static const uint32_t ids[3] = {11, 12, 13};
	bool ok = false;
	uint64_t deadline = ordo_mono_ns() + 2 * ORDO_NS_PER_S;
	while (!ok && ordo_mono_ns() < deadline) {
		ok = get_status(SEQ_ID, &seq);
		for (unsigned i = 0; ok && i < 3; i++)
			ok = get_status(ids[i], &rep[i]) && rep[i].commit == seq.commit &&
			     memcmp(rep[i].digest, rep[0].digest, 16) == 0;
	}
	check(ok, "replicas 11, 12, 13 applied up to the sequencer's commit %llu, one digest",
	      (unsigned long long)seq.commit);
}

static void liveness(struct ordo_procs *procs)
{
	struct ordo_client_cfg ccfg = {.cluster = &g_cl};
	struct ordo_client *c = NULL;
	bool ordered = false;
	const char *step = "ordo_client_open";
	int rc = ordo_client_open(&ccfg, &c);
	if (rc == 0) {
		step = "ordo_session_open";
		rc = ordo_session_open(c, LIVENESS_TIMEOUT);
	}
	uint64_t rn = 0;
	static const char msg[] = "still alive";
	if (rc == 0) {
		step = "ordo_submit";
		rc = ordo_submit(c, WIRE_OP_OPAQUE, msg, sizeof msg, &rn);
	}
	/* The request counts as answered on ORDERED OK / DUPLICATE or on its
	 * APPLIED, whichever comes first (§3.1.2, §3.3: on loopback APPLIED
	 * often wins, and libordo then reports no ORDERED event). ORDERED OK
	 * from the sequencer is still required: libordo counts every ORDERED
	 * record it receives, so OK must reach 2 (opening + this request). */
	struct ordo_event ev[16];
	int last_kind = 0, last_status = -1;
	bool answered = false;
	uint64_t oks = 0;
	uint64_t deadline = ordo_mono_ns() + LIVENESS_TIMEOUT;
	if (rc == 0)
		step = "waiting for ORDERED OK";
	while (rc == 0 && !ordered && ordo_mono_ns() < deadline) {
		int k = ordo_poll(c, 20 * ORDO_NS_PER_MS, ev, 16);
		for (int i = 0; i < k; i++) {
			if (ev[i].request_number != rn)
				continue;
			last_kind = ev[i].kind;
			last_status = ev[i].status;
			if (ev[i].kind == ORDO_EV_ORDERED &&
			    (ev[i].status == WIRE_ST_OK || ev[i].status == WIRE_ST_DUPLICATE))
				answered = true;
			if (ev[i].kind == ORDO_EV_APPLIED && ev[i].position > 0)
				answered = true;
		}
		oks = ordo_client_stats(c)->status_count[WIRE_ST_OK];
		ordered = answered && oks >= 2;
	}
	if (!ordered)
		diag("%s: rc %d, request %llu, last event kind %d status %d, ORDERED OK "
		     "records %llu",
		     step, rc, (unsigned long long)rn, last_kind, last_status,
		     (unsigned long long)oks);
	check(ordered, "liveness: a libordo client opens a session and orders a request");
	if (c)
		ordo_client_close(c);

	unsigned answering = 0;
	for (uint32_t i = 0; i < g_cl.nnodes; i++) {
		struct wire_status_msg s;
		if (get_status(g_cl.nodes[i].node_id, &s))
			answering++;
	}
	check(answering == g_cl.nnodes, "liveness: %u of %u nodes answer STATUS", answering,
	      g_cl.nnodes);

	unsigned exited = 0;
	for (uint32_t i = 0; i < procs->count; i++) {
		int st;
		if (procs->pid[i] && waitpid(procs->pid[i], &st, WNOHANG) == procs->pid[i]) {
			diag("node %u exited (status %#x)", procs->node_id[i], st);
			procs->pid[i] = 0;
			exited++;
		}
	}
	check(exited == 0, "liveness: no node process has exited");
}

/* After a clean stop each node prints its drop counters by reason (see
 * print_counters in sequencer/node.c and rep_main in replicas/node.c):
 * checks that every class was dropped for the intended reason. */
static void check_reasons(const char *logdir, uint32_t node_id, unsigned idx, const char *name)
{
	char path[512], line[512];
	snprintf(path, sizeof path, "%s/node-%u.log", logdir, node_id);
	FILE *f = fopen(path, "r");
	uint64_t got[WIRE_DROP__COUNT] = {0}, total = 0;
	bool have_total = false;
	while (f && fgets(line, sizeof line, f)) {
		char reason[64];
		unsigned long long v;
		const char *tot = strstr(line, " dropped=");
		if (tot && sscanf(tot, " dropped=%llu", &v) == 1) {
			total = v;
			have_total = true;
		} else if (sscanf(line, " dropped %63s %llu", reason, &v) == 2) {
			for (unsigned r = 1; r < WIRE_DROP__COUNT; r++)
				if (strcmp(reason, wire_drop_name((enum wire_drop)r)) == 0)
					got[r] = v;
		}
	}
	if (f)
		fclose(f);
	bool ok = have_total;
	uint64_t want_total = g_expect[idx][DROP_TRUNCATED];
	for (unsigned r = 1; r < WIRE_DROP__COUNT; r++) {
		want_total += g_expect[idx][r];
		if (got[r] != g_expect[idx][r]) {
			diag("%s: dropped %s %llu, want %llu", name,
			     wire_drop_name((enum wire_drop)r), (unsigned long long)got[r],
			     (unsigned long long)g_expect[idx][r]);
			ok = false;
		}
	}
	if (total != want_total) {
		diag("%s: dropped total %llu, want %llu (%s)", name, (unsigned long long)total,
		     (unsigned long long)want_total, have_total ? "from its log" : "no counters");
		ok = false;
	}
	check(ok, "%s: every datagram was dropped for the intended reason (%llu in all, log %s)",
	      name, (unsigned long long)want_total, path);
}

/* ------------------------------------------------------------------ main */

static struct ordo_procs g_procs;

/* If the test itself dies (an assertion, a signal), take the nodes with it
 * rather than leave them bound to their ports. Async-signal-safe. */
static void on_fatal(int sig)
{
	for (uint32_t i = 0; i < g_procs.count; i++)
		if (g_procs.pid[i] > 0)
			kill(g_procs.pid[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s ORDO_EXE CLUSTER_INI\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t t0 = ordo_mono_ns();
	if (sodium_init() < 0)
		return 2;
	char err[512];
	if (cfg_load(argv[2], &g_cl, err, sizeof err) != 0) {
		fprintf(stderr, "malformed: %s\n", err);
		return 2;
	}
	bool have_key = false;
	for (uint32_t i = 0; i < g_cl.nkeys; i++)
		if (g_cl.keys[i].key_id == KEY_ID) {
			g_key7 = g_cl.keys[i];
			have_key = true;
		}
	if (!have_key || !cfg_node_find(&g_cl, SEQ_ID) || !cfg_node_find(&g_cl, REP_ID)) {
		fprintf(stderr, "malformed: %s needs [key 7], [node 1] and [node 11]\n", argv[2]);
		return 2;
	}
	g_kr7 = (struct wire_keyring){.keys = &g_key7, .count = 1};

	char logdir[] = "/tmp/ordo-malformed-XXXXXX";
	if (!mkdtemp(logdir)) {
		perror("mkdtemp");
		return 2;
	}
	printf("# node logs in %s (removed if every check passes)\n", logdir);

	struct ordo_procs *procs = &g_procs;
	static const int fatal[] = {SIGABRT, SIGSEGV, SIGBUS, SIGINT, SIGTERM, SIGHUP};
	for (unsigned i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
		signal(fatal[i], on_fatal);
	int rc = ordo_procs_start(procs, &g_cl, argv[2], argv[1], logdir, NULL, NULL);
	if (!check(rc == 0, "cluster started (%u nodes)", g_cl.nnodes))
		return 1;
	struct ordo_client_cfg qcfg = {.cluster = &g_cl};
	rc = ordo_client_open(&qcfg, &g_q);
	if (!check(rc == 0, "query client opened")) {
		(void)ordo_procs_stop(procs);
		return 1;
	}
	rc = ordo_procs_wait_ready(procs, g_q, &g_cl, READY_TIMEOUT);
	g_raw = raw_open();
	if (!check(rc == 0 && g_raw >= 0, "every node answers STATUS_Q; raw socket on 127.0.0.1")) {
		(void)ordo_procs_stop(procs);
		return 1;
	}

	const struct cfg_node *sn = cfg_node_find(&g_cl, SEQ_ID);
	const struct cfg_node *rn = cfg_node_find(&g_cl, REP_ID);
	const struct target seq = {"sequencer", SEQ_ID, sn->ip, sn->client_port};
	const struct target rep = {"replica 11", REP_ID, rn->ip, rn->client_port};

	controls(&seq);
	controls(&rep);
	drop_classes(&seq);
	drop_classes(&rep);
	invalid_cases();
	raw_drain(100);
	check_order();
	check_replicas_agree();
	liveness(procs);

	ordo_client_close(g_q);
	close(g_raw);
	int bad = ordo_procs_stop(procs);
	check(bad == 0, "ordo_procs_stop: every node exited 0 on SIGTERM (%d did not)", bad);
	if (bad == 0) {
		check_reasons(logdir, SEQ_ID, 0, "sequencer");
		check_reasons(logdir, REP_ID, 1, "replica 11");
	}

	/* keep the logs and the sequencer's data only when they are needed */
	if (g_fail == 0 && ordo_dir_remove(logdir) != 0)
		fprintf(stderr, "could not remove %s\n", logdir);
	double secs = (double)(ordo_mono_ns() - t0) / 1e9;
	printf("%u passed, %u failed (%.1f s)\n", g_pass, g_fail, secs);
	return g_fail ? 1 : 0;
}
