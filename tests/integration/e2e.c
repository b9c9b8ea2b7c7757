/*
 * End-to-end integration test: real `ordo` processes (a 3-node Raft sequencer
 * group with fsync, three replicas) on loopback, four libordo clients submitting over 100,000
 * requests through transports that drop, duplicate and delay (so reorder)
 * datagrams, in both directions, on every node and client. One client signs
 * everything with an AUTH key (PROTOCOL.md §2.1, §3.1.3).
 *
 * Then, from what the clients were told and what the replicas serve:
 *  1. every request has exactly one place: it appears once in the ordered
 *     stream, at the position its ORDERED (OK or DUPLICATE) or APPLIED named;
 *  2. positions are gapless from 1;
 *  3. every replica's FETCH stream is identical, byte for byte;
 *  4. replica digests (STATUS) are equal, and equal to the digest recomputed
 *     here from the FETCH stream (PROTOCOL.md §5), and to each ENTRIES head;
 *  5. results and balances equal a reference ledger this test computes itself
 *     from the stream (an independent model of PROTOCOL.md §4), including the
 *     LOOKUP answers returned to clients.
 *
 * Failover mode (4th argument "failover"; issue 3): no injected datagram
 * faults, a paced load instead, and while it runs the group's leader is
 * killed with SIGKILL and restarted 10 times, and once a follower is stopped
 * with SIGSTOP for longer than the election timeout and resumed. The checks
 * are the same: nothing answered is lost or ordered twice.
 *
 * Replicas mode (4th argument "replicas"; issue 6): every replica's transport
 * drops 5% and duplicates 1% of datagrams (the epoch stream included), under
 * a paced load: one replica is killed with SIGKILL while it applies and
 * restarted; one is killed while a checkpoint is being written (its .tmp
 * file exists) and restarted; one is killed, its data directory wiped, and
 * restarted empty once the sequencers no longer hold the epochs it needs, so
 * it must catch up by state transfer from another replica. The same checks
 * follow; the wiped replica's stream, which begins after the checkpoint it
 * received, must equal the others' from there, with the same digest.
 *
 * Groups mode (4th argument "groups"; issue 8): the cluster file declares
 * several sequencer groups; client i holds its session in group i mod G; a
 * paced load, and the leader of each group in turn is killed and restarted
 * (GROUPS_KILLS in all). The checks are the same over the merged order,
 * where "the place it was told" is: the epoch of its ORDERED (the group
 * position is not a global one), the global position of its APPLIED, and,
 * per group, stream order equal to group_position order.
 *
 * Grow mode (4th argument "grow", 5th the cluster file before the growth;
 * issue 8): the cluster file has a founding group 0 and a group 1 added
 * later (founding_groups = 1). Group 0's sequencers and the replicas start
 * on the file before (group 0 alone, every_epoch = yes); group 1's
 * sequencers start on the whole file and take nothing (OVERLOADED). Under
 * load from clients of group 0, the whole file replaces the replicas' one,
 * they get SIGHUP, and `ordo group add --group 1` announces the join; then
 * clients open sessions in group 1 and load both groups. The same checks
 * follow, and: no request of group 1 sits in an epoch before the join.
 * Past the join, the last replica is killed and restarted on the file
 * before the growth: its state merges group 1, its file lacks it, so it
 * must hold its merge and say so; the whole file and SIGHUP let it go on,
 * and its stream must equal the others'.
 *
 * Usage: e2e_test ORDO_BINARY CLUSTER_FILE [REQUESTS [failover|replicas|groups|grow [BEFORE]]]
 * With a sequencer marked join = yes in the cluster file, failover mode then
 * removes a follower (ordo member remove, then stops it) and adds the joiner
 * (ordo member add), and runs on under load: the joiner must hold the whole
 * order too.
 * The node logs are removed when every check passes, unless ORDO_KEEP_LOGS
 * is set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "common/prng.h"
#include "replicas/ledger.h"

#define CLIENTS		 4
#define ACCOUNTS	 48
#define FAULT_CLIENT	 "drop=3%,dup=3%,delay=3%:3ms"
#define FAULT_SEQ	 "drop=1%,dup=1%,delay=1%:2ms"
#define FAULT_REP	 "drop=2%,dup=1%,delay=1%:2ms"
#define FAULT_REP_STREAM "drop=5%,dup=1%" /* replicas mode: the stream faults */

static int failures, passes;
static uint64_t t0_ns;

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s - [%5.1fs] ", ok ? "ok" : "not ok", (ordo_mono_ns() - t0_ns) / 1e9);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (ok)
		passes++;
	else
		failures++;
}

/* What one client learned about one of its requests. */
struct req_info {
	uint16_t op;
	uint64_t position; /* from ORDERED OK/DUPLICATE or APPLIED; 0 = none */
	/* Several groups: ORDERED's epoch and group_position (position is then
	 * APPLIED's only); told: some answer placed it. */
	uint64_t epoch, group_position;
	bool told;
	uint64_t account; /* LOOKUP: the account asked */
	bool has_lookup;
	uint8_t lookup[32]; /* LOOKUP answer from APPLIED */
};

static uint32_t ngroups = 1; /* sequencer groups of the cluster file */

struct client {
	struct ordo_client *c;
	uint64_t client_id;
	uint64_t sent;
	struct req_info *req; /* by request number */
	uint64_t req_cap;
};

static void note(struct client *cl, uint64_t n, uint16_t op, uint64_t account);

/* Client i: a session in group i mod G; the last one signs with [key 3]:
 * AUTH both ways, its replies (ORDERED from the sequencer, APPLIED from
 * replicas) under its key. */
static int open_client(struct client *c, int i, const struct cfg_cluster *cl, const char *fault)
{
	struct ordo_client_cfg cfg = {.cluster = cl,
				      .fault = fault,
				      .key_id = i == CLIENTS - 1 ? 3 : 0,
				      .group = (uint16_t)((uint32_t)i % ngroups)};
	if (ordo_client_open(&cfg, &c->c) || ordo_session_open(c->c, 10 * ORDO_NS_PER_S))
		return -1;
	c->client_id = ordo_client_id(c->c);
	note(c, 1, WIRE_OP_OPAQUE, 0);
	/* the session number is the place of request 1 (§3.1.2): its group
	 * position, a global one with one group */
	if (ngroups == 1)
		c->req[1].position = ordo_session(c->c);
	else
		c->req[1].group_position = ordo_session(c->c);
	c->req[1].told = true;
	return 0;
}

/* ---- a reference ledger, written from PROTOCOL.md §4 independently of
 * replicas/ledger.c, small and slow on purpose. ---- */
struct ref_account {
	uint64_t id, debits, credits;
	uint32_t flags;
};
struct ref_transfer {
	uint64_t id, debit, credit, amount;
};
#define REF_TR_CAP (1u << 21) /* open addressing; > 2x the transfers any run makes */
struct ref {
	struct ref_account acc[ACCOUNTS * 2];
	uint32_t nacc;
	struct ref_transfer *tr; /* REF_TR_CAP slots, id 0 = empty */
	uint64_t ntr;
	uint64_t accounts_max, transfers_max;
};

static struct ref_account *ref_acc(struct ref *r, uint64_t id)
{
	for (uint32_t i = 0; i < r->nacc; i++)
		if (r->acc[i].id == id)
			return &r->acc[i];
	return NULL;
}

/* The slot holding id, or the empty slot where it would go. */
static struct ref_transfer *ref_tr_slot(struct ref *r, uint64_t id)
{
	if (!r->tr)
		r->tr = calloc(REF_TR_CAP, sizeof *r->tr);
	for (uint64_t i = (id * 0x9E3779B97F4A7C15ull) >> 43;; i = (i + 1) & (REF_TR_CAP - 1))
		if (r->tr[i].id == id || r->tr[i].id == 0)
			return &r->tr[i];
}

static bool bad_id(uint64_t id)
{
	return id == 0 || id == UINT64_MAX;
}

static uint32_t ref_apply(struct ref *r, uint16_t op, const uint8_t *p, uint8_t out[32])
{
	if (op == WIRE_OP_OPAQUE)
		return WIRE_R_OK;
	if (op == WIRE_OP_CREATE_ACCOUNT) {
		uint64_t id = ordo_ld64(p);
		uint32_t flags = ordo_ld32(p + 8);
		if (bad_id(id))
			return WIRE_R_ID_INVALID;
		if ((flags & ~3u) || flags == 3)
			return WIRE_R_FLAGS_INVALID;
		struct ref_account *a = ref_acc(r, id);
		if (a)
			return a->flags == flags ? WIRE_R_EXISTS
						 : WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
		if (r->nacc >= r->accounts_max || r->nacc == ACCOUNTS * 2)
			return WIRE_R_LEDGER_FULL;
		r->acc[r->nacc++] = (struct ref_account){.id = id, .flags = flags};
		return WIRE_R_OK;
	}
	if (op == WIRE_OP_LOOKUP) {
		uint64_t id = ordo_ld64(p);
		if (bad_id(id))
			return WIRE_R_ID_INVALID;
		struct ref_account *a = ref_acc(r, id);
		if (!a)
			return WIRE_R_NOT_FOUND;
		memset(out, 0, 32);
		ordo_st64(out, a->id);
		ordo_st64(out + 8, a->debits);
		ordo_st64(out + 16, a->credits);
		ordo_st32(out + 24, a->flags);
		return WIRE_R_OK;
	}
	uint64_t id = ordo_ld64(p), dr = ordo_ld64(p + 8), cr = ordo_ld64(p + 16),
		 amount = ordo_ld64(p + 24);
	if (bad_id(id) || bad_id(dr) || bad_id(cr))
		return WIRE_R_ID_INVALID;
	struct ref_transfer *t = ref_tr_slot(r, id);
	if (t->id)
		return t->debit == dr && t->credit == cr && t->amount == amount
			   ? WIRE_R_EXISTS
			   : WIRE_R_EXISTS_WITH_DIFFERENT_FIELDS;
	if (dr == cr)
		return WIRE_R_SAME_ACCOUNT;
	if (amount == 0)
		return WIRE_R_AMOUNT_ZERO;
	struct ref_account *d = ref_acc(r, dr), *c = ref_acc(r, cr);
	if (!d)
		return WIRE_R_DEBIT_ACCOUNT_NOT_FOUND;
	if (!c)
		return WIRE_R_CREDIT_ACCOUNT_NOT_FOUND;
	/* exact arithmetic in 128 bits: the model needs no tricks */
	unsigned __int128 dd = (unsigned __int128)d->debits + amount;
	unsigned __int128 cc = (unsigned __int128)c->credits + amount;
	if ((d->flags & 1) && dd > d->credits)
		return WIRE_R_EXCEEDS_CREDITS;
	if ((c->flags & 2) && cc > c->debits)
		return WIRE_R_EXCEEDS_DEBITS;
	if (dd > UINT64_MAX || cc > UINT64_MAX)
		return WIRE_R_OVERFLOW;
	if (r->ntr >= r->transfers_max)
		return WIRE_R_LEDGER_FULL;
	if (r->ntr >= REF_TR_CAP / 2)
		abort(); /* the test outgrew its model */
	*t = (struct ref_transfer){id, dr, cr, amount};
	r->ntr++;
	d->debits += amount;
	c->credits += amount;
	return WIRE_R_OK;
}

/* ---- load ---- */

static void note(struct client *cl, uint64_t n, uint16_t op, uint64_t account)
{
	if (n >= cl->req_cap) {
		uint64_t cap = cl->req_cap ? 2 * cl->req_cap : 1 << 16;
		while (cap <= n)
			cap *= 2;
		cl->req = realloc(cl->req, cap * sizeof *cl->req);
		memset(cl->req + cl->req_cap, 0, (cap - cl->req_cap) * sizeof *cl->req);
		cl->req_cap = cap;
	}
	cl->req[n].op = op;
	cl->req[n].account = account;
}

static int submit_one(struct client *cl, struct ordo_prng *rng, uint64_t *transfer_seq)
{
	uint8_t p[64] = {0};
	uint16_t op, size;
	uint64_t account = 0;
	uint64_t pick = ordo_prng_below(rng, 100);
	if (pick < 70) {
		op = WIRE_OP_TRANSFER;
		size = 32;
		/* mostly fresh ids; some reuse an old id (EXISTS / EXISTS_WITH_DIFFERENT_FIELDS) */
		uint64_t id = ordo_prng_below(rng, 20) == 0 && *transfer_seq > 10
				  ? 1 + ordo_prng_below(rng, *transfer_seq)
				  : ++*transfer_seq;
		ordo_st64(p, id);
		ordo_st64(p + 8, 1 + ordo_prng_below(rng, ACCOUNTS + 2)); /* +2: some not found */
		ordo_st64(p + 16, 1 + ordo_prng_below(rng, ACCOUNTS + 2));
		ordo_st64(p + 24, ordo_prng_below(rng, 1000)); /* 0 sometimes: AMOUNT_ZERO */
	} else if (pick < 80) {
		op = WIRE_OP_LOOKUP;
		size = 16;
		account = 1 + ordo_prng_below(rng, ACCOUNTS + 2);
		ordo_st64(p, account);
	} else if (pick < 83) {
		op = WIRE_OP_CREATE_ACCOUNT; /* existing accounts: EXISTS or different fields */
		size = 16;
		ordo_st64(p, 1 + ordo_prng_below(rng, ACCOUNTS));
		ordo_st32(p + 8, (uint32_t)ordo_prng_below(rng, 4));
	} else {
		op = WIRE_OP_OPAQUE;
		size = (uint16_t)ordo_prng_below(rng, 64);
		for (uint16_t i = 0; i < size; i++)
			p[i] = (uint8_t)ordo_prng_next(rng);
	}
	uint64_t n;
	int rc = ordo_submit(cl->c, op, p, size, &n);
	if (rc == 0) {
		note(cl, n, op, account);
		cl->sent++;
	}
	return rc;
}

static void absorb(struct client *cl, const struct ordo_event *ev, int k)
{
	for (int i = 0; i < k; i++) {
		const struct ordo_event *e = &ev[i];
		if (e->request_number >= cl->req_cap)
			continue;
		struct req_info *ri = &cl->req[e->request_number];
		uint64_t pos = 0;
		if (e->kind == ORDO_EV_ORDERED &&
		    (e->status == WIRE_ST_OK || e->status == WIRE_ST_DUPLICATE) && ngroups > 1) {
			if ((ri->epoch && ri->epoch != e->place.epoch) ||
			    (ri->group_position && ri->group_position != e->place.group_position))
				check(false, "request %" PRIu64 " told two places in its group",
				      e->request_number);
			ri->epoch = e->place.epoch;
			ri->group_position = e->place.group_position;
			ri->told = true;
		} else if (e->kind == ORDO_EV_ORDERED &&
			   (e->status == WIRE_ST_OK || e->status == WIRE_ST_DUPLICATE))
			pos = e->place.group_position;
		else if (e->kind == ORDO_EV_APPLIED)
			pos = e->position;
		else if (e->kind == ORDO_EV_FAILED) {
			check(false, "client %016" PRIx64 " request %" PRIu64 " failed: %s",
			      cl->client_id, e->request_number,
			      wire_status_name((enum wire_status)e->status));
			continue;
		}
		if (pos) {
			if (ri->position && ri->position != pos)
				check(false,
				      "request %" PRIu64 " told two places: %" PRIu64
				      " and %" PRIu64,
				      e->request_number, ri->position, pos);
			ri->position = pos;
			ri->told = true;
		}
		if (e->kind == ORDO_EV_APPLIED && e->data_size == 32) {
			ri->has_lookup = true;
			memcpy(ri->lookup, e->data, 32);
		}
	}
}

/* ---- the stream ---- */

struct stream {
	uint8_t *bytes; /* concatenated ENTRIES records */
	uint64_t len, cap;
	uint64_t *off; /* offset of position p at off[p] */
	uint64_t count;
	uint8_t digest[16]; /* recomputed */
	bool heads_ok;
};

/* Fetches positions from..upto; s->digest must hold the digest after
 * from - 1 (zero for 1). */
static int fetch_range(struct ordo_client *c, uint32_t node, uint64_t from, uint64_t upto,
		       struct stream *s)
{
	static uint8_t buf[ORDO_DATAGRAM_MAX];
	static struct wire_entry_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
	s->off = calloc(upto + 2, sizeof *s->off);
	s->heads_ok = true;
	while (from <= upto) {
		struct wire_entries_head h;
		int k = ordo_fetch(c, node, from, 0, &h, recs, ORDO_RECS_PER_DATAGRAM_MAX, buf,
				   2 * ORDO_NS_PER_S);
		if (k <= 0) {
			fprintf(stderr, "fetch from %u at %" PRIu64 ": %d flags %u\n", node, from,
				k, k == 0 ? h.flags : 0);
			return -1;
		}
		if (h.first_position != from || memcmp(h.digest, s->digest, 16) != 0)
			s->heads_ok = false;
		for (int i = 0; i < k && from <= upto; i++) {
			if (recs[i].position != from)
				return -1;
			uint32_t len = wire_entry_bytes(recs[i].size);
			if (s->len + len > s->cap) {
				s->cap = s->cap ? 2 * s->cap : 1 << 20;
				s->bytes = realloc(s->bytes, s->cap);
			}
			wire_entry_encode(s->bytes + s->len, &recs[i]);
			ledger_digest_step(s->digest, s->bytes + s->len, len);
			s->off[from] = s->len;
			s->len += len;
			s->count++;
			from++;
		}
	}
	return 0;
}

/* The oldest position a replica still serves (FETCH from 1 answers with its
 * retained history when it begins later), and the digest before it. */
static uint64_t oldest_served(struct ordo_client *c, uint32_t node, uint8_t digest[16])
{
	static uint8_t buf[ORDO_DATAGRAM_MAX];
	static struct wire_entry_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
	struct wire_entries_head h;
	int k =
	    ordo_fetch(c, node, 1, 0, &h, recs, ORDO_RECS_PER_DATAGRAM_MAX, buf, 2 * ORDO_NS_PER_S);
	if (k < 0)
		return 0;
	memcpy(digest, h.digest, 16);
	return k > 0 ? 1 : h.first_position;
}

/* Replicas mode: kills replicas while they apply, while they checkpoint, and
 * wipes one so it catches up by state transfer. */
#define REPLICAS_RATE	   15000u
#define REPLICAS_DOWN_NS   (300ull * ORDO_NS_PER_MS)
#define REPLICAS_WIPE_NS   (3000ull * ORDO_NS_PER_MS) /* sequencers forget meanwhile */
#define REPLICAS_CKPT_WAIT (30ull * ORDO_NS_PER_S)
enum rep_phase { RP_APPLY, RP_CKPT, RP_WIPE, RP_SETTLE, RP_DONE };

struct rchaos {
	enum rep_phase phase;
	uint64_t next_ns;    /* when the current phase acts */
	uint64_t since_ns;   /* the phase began */
	int down;	     /* index of a killed replica, -1 */
	uint64_t restart_ns; /* when to start it again */
	int idx[3];	     /* the replicas' indexes in the cluster's nodes */
	bool ckpt_caught;    /* a kill found a checkpoint being written */
	uint32_t wiped;	     /* node id of the wiped replica */
};

static bool has_tmp_checkpoint(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".ordo.tmp"))
			found = true;
	closedir(d);
	return found;
}

/* From a replica's log: the position its last start recovered to, how many
 * epochs it replayed, and whether it received a state transfer. */
static void log_facts(const char *logdir, uint32_t id, uint64_t *pos, uint64_t *epochs, bool *xfer)
{
	char path[600], line[1024];
	snprintf(path, sizeof path, "%s/node-%u.log", logdir, id);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "recovered position ");
		const char *q = strstr(line, "replayed ");
		if (p && q) {
			*pos = strtoull(p + strlen("recovered position "), NULL, 10);
			*epochs = strtoull(q + strlen("replayed "), NULL, 10);
		}
		if (strstr(line, "state transfer done"))
			*xfer = true;
	}
	fclose(f);
}

static void kill_node(struct ordo_procs *procs, int k)
{
	kill(procs->pid[k], SIGKILL);
	int status;
	waitpid(procs->pid[k], &status, 0);
	procs->pid[k] = 0;
}

static void rchaos_step(struct rchaos *ch, struct ordo_procs *procs, const struct cfg_cluster *cl,
			const char *cluster, const char *exe, const char *logdir)
{
	uint64_t now = ordo_mono_ns();
	if (ch->down >= 0) {
		if (now < ch->restart_ns)
			return;
		int rc = ordo_procs_start_one(procs, cl, (uint32_t)ch->down, cluster, exe, logdir,
					      FAULT_REP_STREAM);
		check(rc == 0, "restart replica %u", cl->nodes[ch->down].node_id);
		ch->down = -1;
		ch->since_ns = now;
		ch->next_ns = now + ORDO_NS_PER_S;
		return;
	}
	if (now < ch->next_ns)
		return;
	char dir[600];
	switch (ch->phase) {
	case RP_APPLY: /* under load a replica is always applying */
		kill_node(procs, ch->idx[0]);
		printf("# killed replica %u while it applied\n", cl->nodes[ch->idx[0]].node_id);
		ch->down = ch->idx[0];
		ch->restart_ns = now + REPLICAS_DOWN_NS;
		ch->phase = RP_CKPT;
		break;
	case RP_CKPT:
		snprintf(dir, sizeof dir, "%s/data-%u/ckpt", logdir, cl->nodes[ch->idx[1]].node_id);
		if (has_tmp_checkpoint(dir)) {
			kill_node(procs, ch->idx[1]);
			ch->ckpt_caught = true;
			printf("# killed replica %u while it wrote a checkpoint\n",
			       cl->nodes[ch->idx[1]].node_id);
			ch->down = ch->idx[1];
			ch->restart_ns = now + REPLICAS_DOWN_NS;
			ch->phase = RP_WIPE;
		} else if (now - ch->since_ns > REPLICAS_CKPT_WAIT) {
			ch->phase = RP_WIPE; /* reported as a failed check */
		}
		break;
	case RP_WIPE: {
		int k = ch->idx[2];
		kill_node(procs, k);
		ch->wiped = cl->nodes[k].node_id;
		char cmd[700];
		snprintf(cmd, sizeof cmd, "rm -rf %s/data-%u", logdir, ch->wiped);
		check(system(cmd) == 0, "wipe replica %u's data directory", ch->wiped);
		printf("# killed replica %u and wiped its data\n", ch->wiped);
		ch->down = k;
		ch->restart_ns = now + REPLICAS_WIPE_NS;
		ch->phase = RP_SETTLE;
		break;
	}
	case RP_SETTLE: /* load on after the last restart */
		if (now - ch->since_ns > 2 * ORDO_NS_PER_S)
			ch->phase = RP_DONE;
		break;
	case RP_DONE:
		break;
	}
}

/* Failover mode: kills and pauses members of the sequencer group. */
#define FAILOVER_KILLS	  10
#define FAILOVER_EVERY_NS (1200ull * ORDO_NS_PER_MS)
#define FAILOVER_DOWN_NS  (250ull * ORDO_NS_PER_MS)
#define FAILOVER_RATE	  15000u /* requests per second, all clients */

/* Membership (when the cluster file has a sequencer with join = yes): after
 * the kills, a follower is removed with `ordo member remove` and stopped,
 * and the joiner added with `ordo member add`. */
enum member_phase { MEMBER_NONE, MEMBER_REMOVED, MEMBER_ADDED, MEMBER_DONE };

struct chaos {
	enum member_phase phase;
	int removed;	     /* index of the removed member, -1 */
	int joiner;	     /* index of the join = yes sequencer, -1 if none */
	uint64_t phase_ns;   /* when the current phase began */
	uint64_t next_ns;    /* next kill */
	int down;	     /* index (in the cluster's nodes) of a killed member, -1 if none */
	uint64_t restart_ns; /* when to start it again */
	int paused;	     /* index of a SIGSTOPped member, -1 if none */
	uint64_t resume_ns;
	bool pause_done;
	int kills;
	int kills_max; /* FAILOVER_KILLS, or GROUPS_KILLS in groups mode */
};

#define GROUPS_KILLS 4 /* groups mode: leaders killed, each group in turn */

/* The index of the sequencer of group g that says it leads, or -1. */
static int find_leader(struct ordo_client *admin, const struct cfg_cluster *cl, uint16_t g)
{
	for (uint32_t k = 0; k < cl->nnodes; k++) {
		struct wire_status_msg st;
		if (cl->nodes[k].role == CFG_ROLE_SEQUENCER && cl->nodes[k].group == g &&
		    ordo_status(admin, cl->nodes[k].node_id, &st, 100 * ORDO_NS_PER_MS) == 0 &&
		    st.role == WIRE_ROLE_LEADER)
			return (int)k;
	}
	return -1;
}

/* Runs `exe member OP --cluster FILE --node ID`; its exit status. */
static int run_member(const char *exe, const char *cluster, const char *op, uint32_t id)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' member %s --cluster '%s' --node %u", exe, op, cluster, id);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void member_step(struct chaos *ch, struct ordo_procs *procs, struct ordo_client *admin,
			const struct cfg_cluster *cl, const char *cluster, const char *exe)
{
	uint64_t now = ordo_mono_ns();
	if (ch->phase == MEMBER_NONE) {
		int l = find_leader(admin, cl, 0);
		if (l < 0)
			return;
		for (uint32_t k = 0; k < cl->nnodes; k++)
			if (cl->nodes[k].role == CFG_ROLE_SEQUENCER && (int)k != l &&
			    (int)k != ch->joiner) {
				check(run_member(exe, cluster, "remove", cl->nodes[k].node_id) == 0,
				      "ordo member remove %u", cl->nodes[k].node_id);
				ch->removed = (int)k;
				break;
			}
		ch->phase = MEMBER_REMOVED;
		ch->phase_ns = now;
	} else if (ch->phase == MEMBER_REMOVED && now > ch->phase_ns + 500 * ORDO_NS_PER_MS) {
		/* the removal is committed by now: stop the former member */
		kill(procs->pid[ch->removed], SIGTERM);
		int status;
		waitpid(procs->pid[ch->removed], &status, 0);
		procs->pid[ch->removed] = 0;
		check(run_member(exe, cluster, "add", cl->nodes[ch->joiner].node_id) == 0,
		      "ordo member add %u", cl->nodes[ch->joiner].node_id);
		ch->phase = MEMBER_ADDED;
		ch->phase_ns = now;
	} else if (ch->phase == MEMBER_ADDED && now > ch->phase_ns + 2 * ORDO_NS_PER_S) {
		ch->phase = MEMBER_DONE; /* two seconds of load with the new member */
	}
}

static void chaos_step(struct chaos *ch, struct ordo_procs *procs, struct ordo_client *admin,
		       const struct cfg_cluster *cl, const char *cluster, const char *exe,
		       const char *logdir)
{
	uint64_t now = ordo_mono_ns();
	if (ch->kills >= ch->kills_max && ch->down < 0 && ch->paused < 0) {
		if (ch->joiner >= 0 && ch->phase != MEMBER_DONE)
			member_step(ch, procs, admin, cl, cluster, exe);
		return;
	}
	if (ch->down >= 0 && now >= ch->restart_ns) {
		int rc =
		    ordo_procs_start_one(procs, cl, (uint32_t)ch->down, cluster, exe, logdir, NULL);
		check(rc == 0, "restart node %u after kill %d", cl->nodes[ch->down].node_id,
		      ch->kills);
		ch->down = -1;
	}
	if (ch->paused >= 0 && now >= ch->resume_ns) {
		kill(procs->pid[ch->paused], SIGCONT);
		ch->paused = -1;
		ch->pause_done = true;
	}
	if (ch->down >= 0 || ch->paused >= 0 || now < ch->next_ns)
		return;
	int l = find_leader(admin, cl, (uint16_t)(ch->kills % cfg_groups(cl)));
	if (l < 0)
		return; /* an election is on: try again on the next turn */
	if (ch->kills == ch->kills_max / 2 && !ch->pause_done) {
		/* pause a follower for three election timeouts */
		for (uint32_t k = 0; k < cl->nnodes; k++)
			if (cl->nodes[k].role == CFG_ROLE_SEQUENCER && (int)k != l) {
				kill(procs->pid[k], SIGSTOP);
				ch->paused = (int)k;
				ch->resume_ns = now + 3ull * cl->election_ms * ORDO_NS_PER_MS;
				printf("# paused follower %u\n", cl->nodes[k].node_id);
				break;
			}
		ch->next_ns = now + FAILOVER_EVERY_NS;
		return;
	}
	kill(procs->pid[l], SIGKILL);
	int status;
	waitpid(procs->pid[l], &status, 0);
	procs->pid[l] = 0;
	ch->kills++;
	printf("# kill %d: leader %u of group %u\n", ch->kills, cl->nodes[l].node_id,
	       cl->nodes[l].group);
	ch->down = l;
	ch->restart_ns = now + FAILOVER_DOWN_NS;
	ch->next_ns = now + FAILOVER_EVERY_NS;
}

/* Grow mode: the growth, once, GROW_AFTER_NS into the load. */
#define GROW_AFTER_NS (2ull * ORDO_NS_PER_S)
#define GROW_IN_MS    1500u /* the join epoch: this far ahead of the announcement */

struct grow {
	int phase; /* 0 before, 1 grown, 2 the laggard restarted on the old file, 3 done */
	uint64_t at_ns;
	uint64_t join_epoch;
	int laggard;	    /* index of the replica restarted on a stale file */
	char lag_file[600]; /* its cluster file */
	const char *before; /* the file before the growth */
	const char *logdir;
};

static void copy_file(const char *from, const char *to)
{
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	check(system(cmd) == 0, "%s replaces %s", from, to);
}

/* Does node id's log hold a line with `what`? */
static bool log_says(const char *logdir, uint32_t id, const char *what)
{
	char path[700], line[512];
	snprintf(path, sizeof path, "%s/node-%u.log", logdir, id);
	FILE *f = fopen(path, "r");
	bool found = false;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* After the growth: the laggard replica is killed and restarted on the
 * file before the growth, past the join epoch: its own state merges group
 * 1, which that file lacks, so it must hold its merge (and say so) rather
 * than merge without it; with the whole file and SIGHUP it goes on. */
static void grow_laggard(struct grow *g, struct ordo_procs *procs, const struct cfg_cluster *cl,
			 const char *exe)
{
	uint64_t now = ordo_mono_ns();
	if (g->phase == 1 && now >= g->at_ns) {
		copy_file(g->before, g->lag_file);
		uint32_t k = (uint32_t)g->laggard;
		kill(procs->pid[k], SIGKILL);
		int status;
		waitpid(procs->pid[k], &status, 0);
		procs->pid[k] = 0;
		check(ordo_procs_start_one(procs, cl, k, g->lag_file, exe, g->logdir, NULL) == 0,
		      "replica %u restarted on the file before the growth", cl->nodes[k].node_id);
		g->phase = 2;
		g->at_ns = now + 1500 * ORDO_NS_PER_MS;
	} else if (g->phase == 2 && now >= g->at_ns) {
		uint32_t id = cl->nodes[g->laggard].node_id;
		check(log_says(g->logdir, id, "which ") && log_says(g->logdir, id, "does not have"),
		      "replica %u, whose state merges group 1 but whose file lacks it, holds "
		      "its merge and says so",
		      id);
		char whole[600];
		snprintf(whole, sizeof whole, "%s/cluster.ini", g->logdir);
		copy_file(whole, g->lag_file);
		kill(procs->pid[g->laggard], SIGHUP);
		g->phase = 3;
	}
}

static void grow_step(struct grow *g, struct ordo_procs *procs, const struct cfg_cluster *cl,
		      const char *cluster, const char *grow_file, const char *exe,
		      struct client *clients)
{
	if (g->phase > 0) {
		grow_laggard(g, procs, cl, exe);
		return;
	}
	if (ordo_mono_ns() < g->at_ns)
		return;
	g->phase = 1;
	char cmd[2048];
	copy_file(cluster, grow_file);
	copy_file(cluster, g->lag_file);
	for (uint32_t k = 0; k < cl->nnodes; k++)
		if (cl->nodes[k].role == CFG_ROLE_REPLICA && procs->pid[k])
			kill(procs->pid[k], SIGHUP);
	usleep(300000);
	snprintf(cmd, sizeof cmd, "'%s' group add --cluster '%s' --group 1 --in-ms %u 2>&1", exe,
		 cluster, GROW_IN_MS);
	FILE *f = popen(cmd, "r");
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		printf("# %s", line);
		/* the join epoch: the first number of wall-clock slot size */
		for (char *q = line; *q && !g->join_epoch; q++)
			if (*q >= '0' && *q <= '9' && (q == line || q[-1] < '0' || q[-1] > '9')) {
				uint64_t v = strtoull(q, NULL, 10);
				if (v > 1000000000ull)
					g->join_epoch = v;
			}
	}
	int st = f ? pclose(f) : -1;
	check(st == 0 && g->join_epoch > 0,
	      "ordo group add --group 1 announced the join at epoch %" PRIu64 " (exit %d)",
	      g->join_epoch, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	for (int i = 0; i < CLIENTS; i++)
		if (!clients[i].c)
			check(open_client(&clients[i], i, cl, NULL) == 0,
			      "client %d opens a session in group %u once it has joined", i,
			      (uint32_t)i % ngroups);
	g->at_ns = ordo_mono_ns() + (GROW_IN_MS + 1000) * ORDO_NS_PER_MS; /* past the join */
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: e2e_test ORDO_BINARY CLUSTER_FILE [REQUESTS]\n");
		return 2;
	}
	const char *exe = argv[1], *cluster = argv[2];
	t0_ns = ordo_mono_ns();
	uint64_t total = argc > 3 ? strtoull(argv[3], NULL, 10) : 100000;
	bool failover = argc > 4 && strcmp(argv[4], "failover") == 0;
	bool replicas = argc > 4 && strcmp(argv[4], "replicas") == 0;
	bool groups = argc > 4 && strcmp(argv[4], "groups") == 0;
	bool grow = argc > 5 && strcmp(argv[4], "grow") == 0;
	const char *file_before = grow ? argv[5] : NULL;
	failover |= groups || grow; /* the same paced load (and leader kills, but not to grow) */
	const char *fault_seq = failover || replicas ? NULL : FAULT_SEQ;
	const char *fault_rep = failover ? NULL : replicas ? FAULT_REP_STREAM : FAULT_REP;
	const char *fault_client = failover || replicas ? NULL : FAULT_CLIENT;
	static struct cfg_cluster cl;
	char err[512];
	if (cfg_load(cluster, &cl, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	ngroups = cfg_groups(&cl);
	if ((groups || grow) && ngroups < 2) {
		fprintf(stderr, "groups mode needs a cluster file with several groups\n");
		return 2;
	}
	char logdir[] = "/tmp/ordo-e2e-XXXXXX";
	if (!mkdtemp(logdir))
		return 2;
	printf("# logs in %s; %" PRIu64 " requests from %d clients\n", logdir, total, CLIENTS);
	struct ordo_procs procs;
	char grow_file[600] = ""; /* grow mode: the file group 0 and the replicas run on */
	struct grow gr = {.laggard = -1};
	if (grow) {
		snprintf(grow_file, sizeof grow_file, "%s/cluster.ini", logdir);
		char cmd[1400];
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file_before, grow_file);
		if (system(cmd) != 0)
			return 2;
		memset(&procs, 0, sizeof procs);
		for (uint32_t k = 0; k < cl.nnodes; k++)
			if (cl.nodes[k].role == CFG_ROLE_REPLICA)
				gr.laggard = (int)k; /* the last replica */
		snprintf(gr.lag_file, sizeof gr.lag_file, "%s/cluster-laggard.ini", logdir);
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file_before, gr.lag_file);
		if (system(cmd) != 0)
			return 2;
		gr.before = file_before;
		gr.logdir = logdir;
		for (uint32_t k = 0; k < cl.nnodes; k++) {
			bool added = cl.nodes[k].role == CFG_ROLE_SEQUENCER &&
				     cl.nodes[k].group >= cl.founding_groups;
			const char *file = added		  ? cluster
					   : (int)k == gr.laggard ? gr.lag_file
								  : grow_file;
			if (ordo_procs_start_one(&procs, &cl, k, file, exe, logdir, NULL)) {
				fprintf(stderr, "cannot start node %u\n", cl.nodes[k].node_id);
				ordo_procs_stop(&procs);
				return 1;
			}
		}
	} else if (ordo_procs_start(&procs, &cl, cluster, exe, logdir, fault_seq, fault_rep)) {
		fprintf(stderr, "cannot start the cluster\n");
		return 1;
	}
	struct client clients[CLIENTS] = {0};
	struct ordo_client *admin; /* no faults: setup and checks */
	struct ordo_client_cfg acfg = {.cluster = &cl};
	if (ordo_client_open(&acfg, &admin) ||
	    ordo_procs_wait_ready(&procs, admin, &cl, 10 * ORDO_NS_PER_S)) {
		check(false, "cluster comes up");
		ordo_procs_stop(&procs);
		return 1;
	}
	check(true, "cluster of %u nodes comes up", cl.nnodes);
	struct ordo_prng rng;
	ordo_prng_seed(&rng, 2026);
	for (int i = 0; i < CLIENTS; i++) {
		if (grow && (uint32_t)i % ngroups >= cl.founding_groups)
			continue; /* opens once its group has joined */
		if (open_client(&clients[i], i, &cl, fault_client) != 0) {
			check(false, "client %d opens a session", i);
			ordo_procs_stop(&procs);
			return 1;
		}
	}
	/* accounts: odd ids may not overdraw, every 5th may not be over-credited */
	for (uint64_t a = 1; a <= ACCOUNTS; a++) {
		uint8_t p[16] = {0};
		ordo_st64(p, a);
		ordo_st32(p + 8, a % 5 == 0 ? 2u : (a % 2 ? 1u : 0u));
		if (a == 1)
			ordo_st32(p + 8, 0); /* the source of funds */
		uint64_t n;
		while (ordo_submit(clients[0].c, WIRE_OP_CREATE_ACCOUNT, p, 16, &n) == -EAGAIN) {
			struct ordo_event ev[64];
			absorb(&clients[0], ev, ordo_poll(clients[0].c, ORDO_NS_PER_MS, ev, 64));
		}
		note(&clients[0], n, WIRE_OP_CREATE_ACCOUNT, 0);
		clients[0].sent++;
	}
	uint64_t transfer_seq = 0, sent = 0, start = ordo_mono_ns();
	struct ordo_event ev[512];
	uint64_t deadline = start + 300 * ORDO_NS_PER_S;
	struct chaos ch = {.next_ns = start + ORDO_NS_PER_S,
			   .down = -1,
			   .paused = -1,
			   .removed = -1,
			   .joiner = -1,
			   .kills_max = grow	 ? 0
					: groups ? GROUPS_KILLS
						 : FAILOVER_KILLS,
			   .pause_done = groups || grow};
	gr.at_ns = start + GROW_AFTER_NS;
	for (uint32_t k = 0; k < cl.nnodes; k++)
		if (cl.nodes[k].role == CFG_ROLE_SEQUENCER && cl.nodes[k].join)
			ch.joiner = (int)k;
	struct rchaos rch = {.next_ns = start + ORDO_NS_PER_S, .since_ns = start, .down = -1};
	for (uint32_t k = 0, r = 0; k < cl.nnodes && r < 3; k++)
		if (cl.nodes[k].role == CFG_ROLE_REPLICA)
			rch.idx[r++] = (int)k;
	for (;;) {
		uint32_t outstanding = 0;
		uint64_t allowed = total;
		if (failover || replicas) {
			uint32_t rate = failover ? FAILOVER_RATE : REPLICAS_RATE;
			allowed = (ordo_mono_ns() - start) / 1000 * rate / 1000000;
			allowed = allowed < total ? allowed : total;
		}
		if (failover)
			chaos_step(&ch, &procs, admin, &cl, cluster, exe, logdir);
		if (grow)
			grow_step(&gr, &procs, &cl, cluster, grow_file, exe, clients);
		if (replicas)
			rchaos_step(&rch, &procs, &cl, cluster, exe, logdir);
		for (int i = 0; i < CLIENTS; i++) {
			if (!clients[i].c)
				continue; /* grow mode: its group has not joined yet */
			while (sent < allowed && submit_one(&clients[i], &rng, &transfer_seq) == 0)
				sent++;
			absorb(&clients[i], ev, ordo_poll(clients[i].c, 0, ev, 512));
			outstanding += ordo_outstanding(clients[i].c);
		}
		if (sent >= total && outstanding == 0 &&
		    (!failover || (ch.kills >= ch.kills_max && ch.down < 0 && ch.paused < 0 &&
				   (ch.joiner < 0 || ch.phase == MEMBER_DONE))) &&
		    (!replicas || rch.phase == RP_DONE) && (!grow || gr.phase == 3))
			break;
		if (ordo_mono_ns() > deadline) {
			check(false, "all requests answered within 300 s (%u outstanding)",
			      outstanding);
			break;
		}
		absorb(&clients[0], ev, ordo_poll(clients[0].c, 200 * ORDO_NS_PER_US, ev, 512));
	}
	double secs = (ordo_mono_ns() - start) / 1e9;
	uint64_t retries = 0;
	for (int i = 0; i < CLIENTS; i++)
		retries += ordo_client_stats(clients[i].c)->retries;
	check(sent >= total,
	      "%" PRIu64 " requests submitted and answered in %.1f s (%" PRIu64 " resends)", sent,
	      secs, retries);
	if (!replicas) /* there, only replicas' datagrams are dropped */
		check(retries > 0, "faults forced resends");
	if (grow) {
		uint32_t reloaded = 0;
		for (uint32_t k = 0; k < cl.nnodes; k++) {
			if (cl.nodes[k].role != CFG_ROLE_REPLICA)
				continue;
			char path[700], line[512];
			snprintf(path, sizeof path, "%s/node-%u.log", logdir, cl.nodes[k].node_id);
			FILE *f = fopen(path, "r");
			bool r = false;
			while (f && fgets(line, sizeof line, f))
				r |=
				    strstr(line, "reloaded") && strstr(line, "group(s) 1..1 added");
			if (f)
				fclose(f);
			reloaded += r;
		}
		check(reloaded == 3, "%u of 3 replicas took group 1 from the file on SIGHUP",
		      reloaded);
	} else if (groups)
		check(ch.kills == GROUPS_KILLS,
		      "a leader of each of %u groups was killed and restarted (%d kills)", ngroups,
		      ch.kills);
	else if (failover)
		check(ch.kills == FAILOVER_KILLS && ch.pause_done,
		      "the leader was killed and restarted %d times, a follower paused and resumed",
		      ch.kills);
	if (replicas) {
		check(rch.phase == RP_DONE, "every replica was killed and restarted under load");
		check(rch.ckpt_caught, "a replica was killed while writing a checkpoint");
		for (int r = 0; r < 3; r++) {
			uint32_t id = cl.nodes[rch.idx[r]].node_id;
			uint64_t pos = 0, epochs = 0;
			bool xfer = false;
			log_facts(logdir, id, &pos, &epochs, &xfer);
			if (r < 2)
				check(pos > 0 && !xfer,
				      "replica %u restarted from its own disk: checkpoint and log "
				      "replay to position %" PRIu64 " (%" PRIu64
				      " epochs replayed)",
				      id, pos, epochs);
			else
				check(xfer,
				      "replica %u, started empty, caught up by state transfer", id);
		}
	}
	check((ordo_client_id(clients[CLIENTS - 1].c) >> 48) == 3,
	      "the AUTH client's id lies in its key's range (§3.1.3)");
	check(ordo_client_stats(clients[CLIENTS - 1].c)->applied > 0,
	      "the AUTH client got APPLIED answers under its key");
	/* late APPLIED answers (LOOKUP data) */
	uint64_t until = ordo_mono_ns() + 500 * ORDO_NS_PER_MS;
	while (ordo_mono_ns() < until)
		for (int i = 0; i < CLIENTS; i++)
			absorb(&clients[i], ev, ordo_poll(clients[i].c, ORDO_NS_PER_MS, ev, 512));

	/* the committed order: every member of each group holds its group's */
	uint64_t expected_g[ORDO_GROUPS_MAX] = {0};
	for (int i = 0; i < CLIENTS; i++)
		expected_g[i % ngroups] += 1 + clients[i].sent; /* with the session opening */
	uint64_t committed_g[ORDO_GROUPS_MAX] = {0};
	uint32_t members_g[ORDO_GROUPS_MAX] = {0};
	for (uint32_t k = 0; k < cl.nnodes; k++) {
		if (cl.nodes[k].role != CFG_ROLE_SEQUENCER || (int)k == ch.removed ||
		    (cl.nodes[k].join && ch.phase != MEMBER_DONE))
			continue; /* not a member at the end */
		uint16_t g = cl.nodes[k].group;
		uint64_t expected = expected_g[g];
		struct wire_status_msg st = {0};
		uint64_t wait_until = ordo_mono_ns() + 10 * ORDO_NS_PER_S;
		while ((ordo_status(admin, cl.nodes[k].node_id, &st, ORDO_NS_PER_S) != 0 ||
			st.commit < expected) &&
		       ordo_mono_ns() < wait_until)
			usleep(20000);
		check(st.commit == expected,
		      "sequencer %u (%s of group %u) holds %" PRIu64
		      " committed positions, expected %" PRIu64,
		      cl.nodes[k].node_id, st.role == WIRE_ROLE_LEADER ? "leader" : "follower", g,
		      st.commit, expected);
		committed_g[g] = st.commit > committed_g[g] ? st.commit : committed_g[g];
		members_g[g]++;
	}
	uint64_t committed = 0;
	for (uint32_t g = 0; g < ngroups; g++) {
		check(members_g[g] == 3, "group %u has 3 members", g);
		committed += committed_g[g];
	}

	const struct cfg_node *reps[ORDO_NODES_MAX];
	uint32_t nreps = cfg_replicas(&cl, reps, ORDO_NODES_MAX);
	struct wire_status_msg rst[ORDO_NODES_MAX];
	for (uint32_t r = 0; r < nreps; r++) {
		uint64_t wait_until = ordo_mono_ns() + 30 * ORDO_NS_PER_S;
		do {
			if (ordo_status(admin, reps[r]->node_id, &rst[r], ORDO_NS_PER_S))
				rst[r].commit = 0;
		} while (rst[r].commit < committed && ordo_mono_ns() < wait_until &&
			 usleep(20000) == 0);
		check(rst[r].commit == committed, "replica %u applied %" PRIu64 " of %" PRIu64,
		      reps[r]->node_id, rst[r].commit, committed);
	}
	static struct stream streams[ORDO_NODES_MAX];
	uint64_t from_pos[ORDO_NODES_MAX] = {0};
	uint8_t head_digest[ORDO_NODES_MAX][16];
	for (uint32_t r = 0; r < nreps; r++) {
		/* A replica that caught up by state transfer serves history
		 * from the checkpoint it received on (replicas mode). */
		uint8_t *d0 = head_digest[r];
		memset(d0, 0, 16);
		from_pos[r] = 1;
		if (replicas && reps[r]->node_id == rch.wiped) {
			from_pos[r] = oldest_served(admin, reps[r]->node_id, d0);
			check(from_pos[r] > 1,
			      "replica %u, wiped, serves history from %" PRIu64
			      " (the checkpoint it received)",
			      reps[r]->node_id, from_pos[r]);
			if (from_pos[r] == 0)
				from_pos[r] = 1;
		}
		memset(&streams[r], 0, sizeof streams[r]);
		memcpy(streams[r].digest, d0, 16);
		int rc = fetch_range(admin, reps[r]->node_id, from_pos[r], committed, &streams[r]);
		check(rc == 0 && streams[r].count == committed - from_pos[r] + 1,
		      "replica %u serves positions %" PRIu64 "..%" PRIu64 " gapless by FETCH",
		      reps[r]->node_id, from_pos[r], committed);
		check(streams[r].heads_ok, "replica %u ENTRIES heads carry the running digest",
		      reps[r]->node_id);
		check(memcmp(streams[r].digest, rst[r].digest, 16) == 0,
		      "replica %u STATUS digest equals the digest recomputed from its stream",
		      reps[r]->node_id);
	}
	check(from_pos[0] == 1, "replica %u serves the whole history", reps[0]->node_id);
	for (uint32_t r = 1; r < nreps; r++) {
		/* streams[r] holds positions from_pos[r].. : compare with the
		 * same positions of streams[0], and the digest before them */
		uint64_t at = from_pos[r] <= streams[0].count ? streams[0].off[from_pos[r]] : 0;
		uint8_t before[16] = {0};
		for (uint64_t p = 1; p < from_pos[r] && p <= streams[0].count; p++) {
			const uint8_t *rec = streams[0].bytes + streams[0].off[p];
			ledger_digest_step(before, rec, wire_entry_bytes(ordo_ld16(rec + 34)));
		}
		if (from_pos[r] > 1)
			check(memcmp(head_digest[r], before, 16) == 0,
			      "replica %u's digest after position %" PRIu64
			      " (from the checkpoint it received) is replica %u's there",
			      reps[r]->node_id, from_pos[r] - 1, reps[0]->node_id);
		check(streams[r].len == streams[0].len - at &&
			  memcmp(streams[r].bytes, streams[0].bytes + at, streams[r].len) == 0,
		      "replica %u stream is byte-identical to replica %u's", reps[r]->node_id,
		      reps[0]->node_id);
		check(memcmp(rst[r].digest, rst[0].digest, 16) == 0,
		      "replica %u digest equals replica %u's", reps[r]->node_id, reps[0]->node_id);
	}

	/* exactly once, at the place the client was told; and the reference ledger */
	struct stream *s = &streams[0];
	static struct ref ref;
	ref.accounts_max = cl.accounts_max;
	ref.transfers_max = cl.transfers_max;
	uint64_t seen_bad = 0, place_bad = 0, result_bad = 0, lookup_bad = 0, lookups_checked = 0;
	uint64_t last_gp[ORDO_GROUPS_MAX] = {0};
	uint64_t early = 0;
	uint64_t *count[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		count[i] = calloc(clients[i].req_cap + 1, sizeof(uint64_t));
	for (uint64_t p = 1; p <= s->count; p++) {
		const uint8_t *rec = s->bytes + s->off[p];
		uint64_t cid = ordo_ld64(rec + 16), n = ordo_ld64(rec + 24);
		uint16_t op = ordo_ld16(rec + 32);
		uint32_t result = ordo_ld32(rec + 36);
		int who = -1;
		for (int i = 0; i < CLIENTS; i++)
			if (clients[i].client_id == cid)
				who = i;
		if (who < 0 || n >= clients[who].req_cap || n == 0) {
			seen_bad++;
			continue;
		}
		count[who][n]++;
		if (grow && (uint32_t)who % ngroups >= cl.founding_groups &&
		    ordo_ld64(rec + 8) < gr.join_epoch)
			early++; /* ordered in the added group before it joined */
		struct req_info *ri = &clients[who].req[n];
		if (ri->position && ri->position != p)
			place_bad++;
		if (ri->epoch && ri->epoch != ordo_ld64(rec + 8))
			place_bad++;	  /* several groups: ORDERED named another epoch */
		if (ri->group_position) { /* per group, stream order is group_position order */
			uint32_t g = (uint32_t)who % ngroups;
			if (ri->group_position <= last_gp[g])
				place_bad++;
			last_gp[g] = ri->group_position;
		}
		if (ri->op != op)
			seen_bad++;
		uint8_t out[32];
		uint32_t want = ref_apply(&ref, op, rec + 40, out);
		if (want != result)
			result_bad++;
		if (op == WIRE_OP_LOOKUP && want == WIRE_R_OK && ri->has_lookup) {
			lookups_checked++;
			if (memcmp(out, ri->lookup, 32) != 0)
				lookup_bad++;
		}
	}
	uint64_t missing = 0, twice = 0, untold = 0;
	for (int i = 0; i < CLIENTS; i++)
		for (uint64_t n = 1; n < clients[i].req_cap; n++) {
			if (n > clients[i].sent + 1)
				break;
			if (count[i][n] == 0)
				missing++;
			if (count[i][n] > 1)
				twice++;
			if (!clients[i].req[n].told)
				untold++;
		}
	check(seen_bad == 0, "every stream record is a request some client sent (%" PRIu64 " not)",
	      seen_bad);
	check(missing == 0 && twice == 0,
	      "every request appears exactly once (%" PRIu64 " missing, %" PRIu64 " twice)",
	      missing, twice);
	check(place_bad == 0 && untold == 0,
	      "every request sits where ORDERED/APPLIED said (%" PRIu64 " elsewhere, %" PRIu64
	      " never told)",
	      place_bad, untold);
	check(result_bad == 0, "every result equals the reference ledger's (%" PRIu64 " differ)",
	      result_bad);
	if (grow)
		check(early == 0,
		      "no request of the added group sits before its join epoch %" PRIu64
		      " (%" PRIu64 " do)",
		      gr.join_epoch, early);
	check(lookups_checked > 100 && lookup_bad == 0,
	      "%" PRIu64 " LOOKUP answers equal the reference balances (%" PRIu64 " differ)",
	      lookups_checked, lookup_bad);
	/* final balances, read through the order, against the reference */
	uint64_t balance_bad = 0;
	for (uint64_t a = 1; a <= ACCOUNTS; a++) {
		uint8_t p[16] = {0}, out[32];
		ordo_st64(p, a);
		struct ordo_event e;
		if (ordo_session_live(admin) || ordo_session_open(admin, 5 * ORDO_NS_PER_S) == 0) {
			if (ordo_call(admin, WIRE_OP_LOOKUP, p, 16, &e, 5 * ORDO_NS_PER_S) == 0) {
				ref_apply(&ref, WIRE_OP_LOOKUP, p, out);
				if (e.result != WIRE_R_OK || memcmp(out, e.data, 32) != 0)
					balance_bad++;
				continue;
			}
		}
		balance_bad++;
	}
	check(balance_bad == 0,
	      "final balances of %d accounts equal the reference (%" PRIu64 " differ)", ACCOUNTS,
	      balance_bad);

	for (uint32_t i = 0; i < procs.count; i++) {
		int status;
		if ((int)i == ch.removed || (cl.nodes[i].join && ch.phase != MEMBER_DONE))
			continue; /* stopped on purpose, or never a member */
		check(procs.pid[i] && waitpid(procs.pid[i], &status, WNOHANG) == 0,
		      "node %u still running", procs.node_id[i]);
	}
	for (int i = 0; i < CLIENTS; i++)
		ordo_client_close(clients[i].c);
	ordo_client_close(admin);
	check(ordo_procs_stop(&procs) == 0, "every node stops cleanly on SIGTERM");
	if (failures == 0 && !getenv("ORDO_KEEP_LOGS") && ordo_dir_remove(logdir) != 0)
		fprintf(stderr, "could not remove %s\n", logdir);
	printf("%d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
