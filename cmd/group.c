/*
 * `ordo group add --group G`: group G of the cluster file, one that did not
 * found the cluster (G >= founding_groups), joins the merge at an agreed
 * future epoch E (docs/PROTOCOL.md §1.7, docs/SCALEOUT.md piece 5).
 *
 * E is the wall-clock slot --in-ms from now (PROTOCOL.md §2.2: epoch n is
 * [n x epoch_us, (n + 1) x epoch_us) µs since the Unix epoch). The tool sends
 * an internal GROUP_ADD datagram, signed with the node key like `ordo member`
 * (so it needs internal_secret, and it must come from a node's address or
 * from trusted_networks: run it on a node's host). First to group 0, which
 * founded the cluster and is always merged: its leader stamps the
 * announcement into its next entry and answers 0 once an entry carrying it
 * is committed, or names the epoch an earlier run committed (the tool then
 * finishes that one, if it is still ahead). Then to the other merged groups
 * with that epoch (repeats to replicas, which take the first announcement
 * they merge). Then, only if every one of them answered (committed, or too
 * late), to group G itself, which orders nothing before it has committed
 * its own (late is fine for it: it orders from the epoch it names). Per
 * group the tool asks the group's sequencers in turn, follows leader hints
 * (-EPERM) and resends every 100 ms while the answer is -EAGAIN or none, up
 * to 10 s per step.
 *
 * What does not live here: the announcement's meaning (sequencer/machine.c
 * and the replicas apply it).
 */
#include "group.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/verbs.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "dataplane/dp.h"
#include "member.h"

#define ROUND_NS    (100ull * ORDO_NS_PER_MS) /* resend period */
#define DEADLINE_NS (10ull * ORDO_NS_PER_S)   /* every group answered by then */
#define IN_MS_MAX   (24u * 3600u * 1000u)
#define PENDING	    1 /* result: no final answer yet */

static const char usage_text[] =
    "usage: ordo group add --cluster FILE --group G [--in-ms MS | --epoch E]\n"
    "  Announces to every group 0 .. G of FILE that group G, one of the groups\n"
    "  from founding_groups on, joins the cluster at the epoch MS milliseconds\n"
    "  from now (default 3000); group G orders nothing before that epoch. Start\n"
    "  group G's sequencers first. Run it on the host of a cluster node: the\n"
    "  request is signed with the node key and must come from a node's address\n"
    "  or from trusted_networks. Exit 0 once every group committed it.\n"
    "  --epoch E  announce epoch E itself: finishes an announcement that some\n"
    "             groups committed (the others answered an error or nothing)\n";

/* What one group answered. */
struct group_ask {
	int32_t result;	   /* PENDING, 0, or a negative errno (final) */
	int32_t last;	   /* last non-final answer (-EAGAIN), 0 none */
	uint64_t at_epoch; /* result 0: the epoch of the entry carrying it */
	uint32_t to;	   /* node asked this round */
	uint32_t hint;	   /* leader named by a follower, 0 none */
	uint32_t next;	   /* round-robin cursor into the cluster's nodes */
	bool heard;	   /* an answer came from `to` this round */
};

static bool in_group(const struct cfg_node *nd, uint16_t g)
{
	return nd && nd->role == CFG_ROLE_SEQUENCER && nd->group == g;
}

/* The member of group g to ask this round: the leader a follower named,
 * the same member while it answers (-EAGAIN), else the next in turn. */
static const struct cfg_node *pick(const struct cfg_cluster *cl, struct group_ask *a, uint16_t g)
{
	const struct cfg_node *to = cfg_node_find(cl, a->hint);
	a->hint = 0;
	if (in_group(to, g))
		return to;
	to = cfg_node_find(cl, a->to);
	if (a->heard && in_group(to, g))
		return to;
	/* the file has a sequencer in every group 0 .. groups - 1 */
	for (;;) {
		to = &cl->nodes[a->next++ % cl->nnodes];
		if (in_group(to, g))
			return to;
	}
}

static void send_group_add(struct dp_transport *t, const struct cfg_cluster *cl,
			   const struct cfg_node *to, uint64_t nonce, uint64_t first_epoch,
			   uint16_t group)
{
	struct dp_buf *b = dp_alloc(t);
	if (!b)
		return; /* resent next round */
	uint8_t body[WIRE_GROUP_ADD_BYTES] = {0};
	ordo_st64(body, nonce);
	ordo_st64(body + 8, first_epoch);
	ordo_st16(body + 16, group);
	struct wire_writer w;
	wire_begin(&w, b->data, t->max_datagram, WIRE_GROUP_ADD, cl->cluster_id);
	(void)wire_put(&w, body, sizeof body);
	b->len = wire_finish(&w, cl->internal_auth ? &cl->internal_key : NULL);
	b->peer = (struct dp_addr){.ip = to->ip, .port = to->internal_port};
	dp_tx_burst(t, &b, 1);
}

/* Takes the MEMBER_RESULTs that arrived; nonce_base + g names group g. */
static void receive(struct dp_transport *t, const struct wire_rx_ctx *ctx, uint64_t nonce_base,
		    struct group_ask *asks, uint16_t ngroups)
{
	struct dp_buf *in[16];
	unsigned k = dp_rx_burst(t, in, 16);
	for (unsigned i = 0; i < k; i++) {
		struct wire_hdr h;
		const uint8_t *p = in[i]->data + ORDO_HDR_BYTES;
		if (wire_check(ctx, in[i]->data, in[i]->len, &h) != WIRE_DROP_NONE ||
		    h.type != WIRE_MEMBER_RESULT ||
		    h.length - ORDO_HDR_BYTES != WIRE_MEMBER_RESULT_BYTES)
			continue;
		uint64_t g = ordo_ld64(p) - nonce_base;
		if (g >= ngroups || asks[g].result != PENDING)
			continue;
		struct group_ask *a = &asks[g];
		int32_t r = (int32_t)ordo_ld32(p + 8);
		a->heard = true;
		if (r == 0) {
			a->result = 0;
			a->at_epoch = ordo_ld64(p + 16);
		} else if (r == -EAGAIN) {
			a->last = r;
		} else if (r == -EEXIST || r == -EBUSY) {
			a->result = r;
			a->at_epoch = ordo_ld64(p + 16); /* the epoch that stands, or the
							  * other join's */
		} else if (r == -EPERM) {
			a->hint = ordo_ld32(p + 12); /* a follower: ask its leader */
			a->heard = false;
		} else {
			a->result = r;
		}
	}
	dp_free(t, in, k);
}

/* The UTC time epoch e begins, as 2026-11-22T23:07:48.123000Z. */
static const char *epoch_time(uint64_t e, uint32_t epoch_us, char *out, size_t cap)
{
	uint64_t us = e * epoch_us;
	time_t s = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&s, &tm);
	char day[32];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, cap, "%s.%06uZ", day, (unsigned)(us % 1000000u));
	return out;
}

static const char *advice(int32_t r, int32_t last)
{
	switch (r) {
	case -ETIME:
		return " (its epochs have reached that epoch: give a larger --in-ms)";
	case -EEXIST:
		return " (the group was already announced with another epoch: the sequencers "
		       "logged it, 'committed: group G joins at epoch E'; to finish that "
		       "announcement run this again with --epoch E)";
	case -EBUSY:
		return " (another group's join is announced and not yet reached: add one group "
		       "at a time, after the epoch below)";
	case -EINVAL:
		return " (refused: do the nodes run this cluster file, with the same "
		       "founding_groups?)";
	case -ETIMEDOUT:
		return last == -EAGAIN ? " (stamped, not committed in time; run it again)"
				       : " (no leader answered; is the group running?)";
	default:
		return "";
	}
}

/* Asks groups lo .. hi until each answered 0 or an error, or deadline. */
static void ask(struct dp_transport *t, const struct wire_rx_ctx *ctx, struct cfg_cluster *cl,
		uint16_t group, uint64_t first_epoch, struct group_ask *asks, uint16_t ngroups,
		uint16_t lo, uint16_t hi, uint64_t nonce_base, uint64_t deadline)
{
	uint16_t pending = 1;
	while (pending > 0 && ordo_mono_ns() < deadline) {
		for (uint16_t g = lo; g <= hi; g++) {
			struct group_ask *a = &asks[g];
			if (a->result != PENDING)
				continue;
			const struct cfg_node *to = pick(cl, a, g);
			a->to = to->node_id;
			a->heard = false;
			send_group_add(t, cl, to, nonce_base + g, first_epoch, group);
		}
		uint64_t until = ordo_mono_ns() + ROUND_NS;
		while (ordo_mono_ns() < until) {
			dp_wait(t, 10 * ORDO_NS_PER_MS);
			receive(t, ctx, nonce_base, asks, ngroups);
			bool hinted = false;
			pending = 0;
			for (uint16_t g = lo; g <= hi; g++) {
				pending += asks[g].result == PENDING;
				hinted |= asks[g].result == PENDING && asks[g].hint != 0;
			}
			if (pending == 0 || hinted)
				break; /* done, or a leader to ask at once */
		}
	}
}

/* first_epoch 0: the slot in_ms from now. */
static int group_add(struct cfg_cluster *cl, uint16_t group, uint32_t in_ms, uint64_t first_epoch)
{
	struct dp_transport *t;
	int rc = ordo_admin_open(cl, 64, &t);
	if (rc) {
		fprintf(stderr, "ordo group: cannot open a UDP socket (%s)\n", strerror(-rc));
		return 1;
	}
	struct wire_keyring kr = {.keys = &cl->internal_key,
				  .count = cl->internal_key.key_id ? 1 : 0};
	struct wire_rx_ctx ctx = {
	    .cluster_id = cl->cluster_id, .keys = &kr, .require_auth = cl->internal_auth};
	uint64_t now_us = ordo_real_ns() / ORDO_NS_PER_US;
	if (first_epoch == 0)
		first_epoch = (now_us + (uint64_t)in_ms * 1000u) / cl->epoch_us;
	char when[64];
	int64_t ahead_ms = ((int64_t)(first_epoch * cl->epoch_us) - (int64_t)now_us) / 1000;
	printf("ordo group add: group %u joins at epoch %" PRIu64 " (%s, in %" PRId64 " ms)\n",
	       (unsigned)group, first_epoch,
	       epoch_time(first_epoch, cl->epoch_us, when, sizeof when), ahead_ms);
	fflush(stdout);

	uint16_t ngroups = (uint16_t)(group + 1u); /* groups 0 .. G */
	struct group_ask asks[ORDO_GROUPS_MAX];
	uint64_t nonce_base = ordo_real_ns() << 8; /* + group: whose answer it is */
	uint64_t deadline = ordo_mono_ns() + DEADLINE_NS;
	/* Phase 1: group 0, which founded the cluster and is always merged,
	 * decides the epoch: it commits E, or names the epoch an earlier run
	 * committed (finished if still ahead). Then the other merged groups,
	 * with that epoch (their announcements are repeats to replicas). The
	 * new group is asked only if every one of them answered: committed, or
	 * too late (a repeat replicas ignore); not if one is busy with another
	 * group's join, names another epoch (its announcement might be merged
	 * first), or said nothing. So group G only ever commits the epoch the
	 * replicas merge it from. */
	for (uint16_t g = 0; g < ngroups; g++)
		asks[g] = (struct group_ask){.result = PENDING};
	ask(t, &ctx, cl, group, first_epoch, asks, ngroups, 0, 0, nonce_base, deadline);
	uint64_t now_slot = ordo_real_ns() / ORDO_NS_PER_US / cl->epoch_us;
	if (asks[0].result == -EEXIST && asks[0].at_epoch > now_slot) {
		printf("ordo group add: group %u was announced for epoch %" PRIu64
		       " by an earlier run: finishing that one\n",
		       (unsigned)group, asks[0].at_epoch);
		first_epoch = asks[0].at_epoch;
		nonce_base += 1u << 7;
		asks[0] = (struct group_ask){.result = PENDING};
		ask(t, &ctx, cl, group, first_epoch, asks, ngroups, 0, 0, nonce_base,
		    ordo_mono_ns() + DEADLINE_NS);
	}
	if (asks[0].result == 0 && group > 1)
		ask(t, &ctx, cl, group, first_epoch, asks, ngroups, 1, (uint16_t)(group - 1),
		    nonce_base, ordo_mono_ns() + DEADLINE_NS);
	uint16_t merged_ok = 0;
	bool blocked = asks[0].result != 0;
	for (uint16_t g = 0; g < group; g++) {
		merged_ok += asks[g].result == 0;
		blocked |= asks[g].result != 0 && asks[g].result != -ETIME;
	}
	if (blocked)
		merged_ok = 0;
	/* Phase 2: the group itself; late is fine for it (it orders from the
	 * epoch it names, at or after E, and its entries until then are empty). */
	if (merged_ok > 0)
		ask(t, &ctx, cl, group, first_epoch, asks, ngroups, group, group, nonce_base,
		    ordo_mono_ns() + DEADLINE_NS);
	dp_close(t);
	int bad = 0;
	for (uint16_t g = 0; g < ngroups; g++) {
		struct group_ask *a = &asks[g];
		if (a->result == PENDING && g != 0 &&
		    (g == group ? merged_ok == 0 : asks[0].result != 0)) {
			printf("  group %u: not asked (%s)\n", (unsigned)g,
			       g == group ? "the groups before it did not all commit the join"
					  : "group 0 did not commit the join");
			bad++;
			continue;
		}
		if (a->result == PENDING)
			a->result = -ETIMEDOUT;
		if (a->result == 0) {
			printf("  group %u: committed (announced in its epoch %" PRIu64 ")\n",
			       (unsigned)g, a->at_epoch);
			continue;
		}
		if (g == group && a->result == -EEXIST && a->at_epoch >= first_epoch) {
			printf("  group %u: committed; it orders from epoch %" PRIu64
			       " (it was asked late)\n",
			       (unsigned)g, a->at_epoch);
			continue;
		}
		bad++;
		printf("  group %u: %s%s\n", (unsigned)g, strerror(-a->result),
		       advice(a->result, a->last));
		if (a->result == -EEXIST)
			printf("    the epoch that stands: %" PRIu64 "\n", a->at_epoch);
		if (a->result == -EBUSY)
			printf("    the other join's epoch: %" PRIu64 "\n", a->at_epoch);
	}
	if (bad)
		fprintf(stderr, "ordo group add: %d of %u groups did not commit the announcement\n",
			bad, (unsigned)ngroups);
	return bad ? 1 : 0;
}

int group_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'}, {"group", required_argument, NULL, 'g'},
	    {"in-ms", required_argument, NULL, 'm'},   {"epoch", required_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'h'},	       {0},
	};
	const char *cluster = NULL;
	long group = -1, in_ms = 3000;
	unsigned long long epoch = 0;
	bool in_ms_set = false;
	char *end;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:g:m:e:h", opts, NULL)) != -1) {
		if (c == 'c') {
			cluster = optarg;
		} else if (c == 'g') {
			group = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || group < 0)
				group = -2;
		} else if (c == 'm') {
			in_ms = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || in_ms < 1 || in_ms > IN_MS_MAX)
				in_ms = -1;
			in_ms_set = true;
		} else if (c == 'e') {
			epoch = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || epoch == 0)
				group = -2; /* a usage error */
		} else {
			fputs(usage_text, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind + 1 != argc || strcmp(argv[optind], "add") != 0 || group < 0 || in_ms < 0 ||
	    (epoch && in_ms_set)) {
		if (in_ms < 0)
			fprintf(stderr, "ordo group: --in-ms takes 1 .. %u milliseconds\n",
				IN_MS_MAX);
		fputs(usage_text, stderr);
		return 2;
	}
	static struct cfg_cluster cl;
	if (ordo_load_cluster(cluster, &cl))
		return 1;
	uint16_t groups = cfg_groups(&cl);
	if (group >= groups) {
		fprintf(stderr,
			"ordo group: %s declares groups 0 .. %u, not %ld; add its [node N] "
			"sections (role = sequencer, group = %ld) to the file on every node\n",
			cl.path, groups - 1u, group, group);
		return 1;
	}
	if (group < cl.founding_groups) {
		if (cl.founding_groups == groups)
			fprintf(
			    stderr,
			    "ordo group: every group of %s founded the cluster (founding_groups "
			    "is %u); a group that joins later needs founding_groups at most its "
			    "id and every_epoch = yes on every node\n",
			    cl.path, (unsigned)cl.founding_groups);
		else
			fprintf(
			    stderr,
			    "ordo group: group %ld founded the cluster (founding_groups = %u in "
			    "%s); only groups %u .. %u join later\n",
			    group, (unsigned)cl.founding_groups, cl.path,
			    (unsigned)cl.founding_groups, groups - 1u);
		return 1;
	}
	if (group >= (long)ORDO_GROUPS_MAX) {
		fprintf(stderr, "ordo group: replicas merge at most %u groups\n", ORDO_GROUPS_MAX);
		return 1;
	}
	if (cl.internal_auth && cl.internal_key.key_id == 0) {
		fprintf(stderr, "ordo group: %s has no internal_secret to sign with\n", cl.path);
		return 1;
	}
	return group_add(&cl, (uint16_t)group, (uint32_t)in_ms, epoch);
}
