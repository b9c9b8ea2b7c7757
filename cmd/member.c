/*
 * `ordo member add|remove --node N`: a single-server change of a sequencer
 * group's voters (Raft thesis §4.2), while the group serves.
 *
 * The request is an internal MEMBER datagram (docs/PROTOCOL.md §1.5) signed
 * with the node key, so it needs the cluster file's internal_secret, and it
 * must come from the address of a cluster node (PROTOCOL.md §2.2 rule 5):
 * run it on a node's host. It is sent to the group's members in turn; a
 * follower answers with the leader it knows, the leader proposes the change
 * and answers with the log index of the configuration entry.
 *
 * A node added this way is a sequencer of the cluster file marked
 * `join = yes` (so it did not found the group), started with its own
 * formatted --data.
 */
#include "member.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/verbs.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "dataplane/dp.h"

static const char usage_text[] =
    "usage: ordo member add|remove --cluster FILE --node ID\n"
    "  Adds sequencer ID (a [node ID] of FILE with join = yes, running) to its\n"
    "  group's voters, or removes it, while the group serves. Run it on the host\n"
    "  of a cluster node: the request is signed with the node key and must come\n"
    "  from a node's address or from trusted_networks.\n";

int ordo_admin_open(const struct cfg_cluster *cl, uint32_t pool, struct dp_transport **t)
{
	struct dp_udp_cfg u = {.nbind = 1, .max_datagram = cl->max_datagram, .pool = pool};
	for (uint32_t i = 0; i < cl->nnodes; i++) {
		u.bind[0] = (struct dp_addr){.ip = cl->nodes[i].ip, .port = 0};
		if (dp_udp_open(&u, t) == 0)
			return 0;
	}
	u.bind[0] = (struct dp_addr){.ip = 0, .port = 0};
	return dp_udp_open(&u, t);
}

int member_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *cluster = NULL;
	uint32_t node_id = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:h", opts, NULL)) != -1) {
		if (c == 'c')
			cluster = optarg;
		else if (c == 'n')
			node_id = (uint32_t)strtoul(optarg, NULL, 10);
		else {
			fputs(usage_text, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	uint8_t op = 0;
	if (optind + 1 == argc && !strcmp(argv[optind], "add"))
		op = WIRE_MEMBER_ADD;
	else if (optind + 1 == argc && !strcmp(argv[optind], "remove"))
		op = WIRE_MEMBER_REMOVE;
	if (!op || !node_id) {
		fputs(usage_text, stderr);
		return 2;
	}
	static struct cfg_cluster cl;
	if (ordo_load_cluster(cluster, &cl))
		return 1;
	const struct cfg_node *target = cfg_node_find(&cl, node_id);
	if (!target || target->role != CFG_ROLE_SEQUENCER) {
		fprintf(stderr, "ordo member: %s has no sequencer [node %u]\n", cl.path, node_id);
		return 1;
	}
	if (cl.internal_auth && cl.internal_key.key_id == 0) {
		fprintf(stderr, "ordo member: %s has no internal_secret to sign with\n", cl.path);
		return 1;
	}
	struct dp_transport *t;
	int rc = ordo_admin_open(&cl, 16, &t);
	if (rc) {
		fprintf(stderr, "ordo member: cannot open a UDP socket (%s)\n", strerror(-rc));
		return 1;
	}
	struct wire_keyring kr = {.keys = &cl.internal_key,
				  .count = cl.internal_key.key_id ? 1 : 0};
	struct wire_rx_ctx ctx = {
	    .cluster_id = cl.cluster_id, .keys = &kr, .require_auth = cl.internal_auth};
	const struct wire_key *key = cl.internal_auth ? &cl.internal_key : NULL;
	uint64_t nonce = ordo_real_ns();
	uint64_t deadline = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	uint32_t next = 0; /* round-robin over the group's sequencers */
	uint32_t hint = 0; /* the leader a follower named */
	int result = -ETIMEDOUT;
	uint64_t index = 0;
	while (ordo_mono_ns() < deadline && result == -ETIMEDOUT) {
		const struct cfg_node *to = hint ? cfg_node_find(&cl, hint) : NULL;
		while (!to) {
			const struct cfg_node *cand = &cl.nodes[next++ % cl.nnodes];
			if (cand->role == CFG_ROLE_SEQUENCER && cand->group == target->group)
				to = cand;
		}
		hint = 0;
		struct dp_buf *b = dp_alloc(t);
		if (!b)
			break;
		uint8_t body[WIRE_MEMBER_BYTES] = {0};
		ordo_st64(body, nonce);
		ordo_st32(body + 8, node_id);
		body[12] = op;
		struct wire_writer w;
		wire_begin(&w, b->data, t->max_datagram, WIRE_MEMBER, cl.cluster_id);
		(void)wire_put(&w, body, sizeof body);
		b->len = wire_finish(&w, key);
		b->peer = (struct dp_addr){.ip = to->ip, .port = to->internal_port};
		dp_tx_burst(t, &b, 1);
		/* wait up to 300 ms for the answer of this member */
		uint64_t until = ordo_mono_ns() + 300 * ORDO_NS_PER_MS;
		while (ordo_mono_ns() < until && result == -ETIMEDOUT && !hint) {
			dp_wait(t, 20 * ORDO_NS_PER_MS);
			struct dp_buf *in[8];
			unsigned k = dp_rx_burst(t, in, 8);
			for (unsigned i = 0; i < k; i++) {
				struct wire_hdr h;
				const uint8_t *p = in[i]->data + ORDO_HDR_BYTES;
				if (wire_check(&ctx, in[i]->data, in[i]->len, &h) !=
					WIRE_DROP_NONE ||
				    h.type != WIRE_MEMBER_RESULT ||
				    h.length - ORDO_HDR_BYTES != WIRE_MEMBER_RESULT_BYTES ||
				    ordo_ld64(p) != nonce)
					continue;
				int32_t r = (int32_t)ordo_ld32(p + 8);
				if (r == -EPERM) {
					hint = ordo_ld32(p + 12); /* a follower: ask its leader */
					continue;
				}
				result = r;
				index = ordo_ld64(p + 16);
			}
			dp_free(t, in, k);
		}
	}
	dp_close(t);
	const char *verb = op == WIRE_MEMBER_ADD ? "add" : "remove";
	if (result == 0) {
		printf("ordo member: %s node %u: proposed at log index %" PRIu64
		       "; it takes effect when appended\n",
		       verb, node_id, index);
		return 0;
	}
	fprintf(stderr, "ordo member: %s node %u: %s%s\n", verb, node_id, strerror(-result),
		result == -EBUSY       ? " (another change is not yet committed; retry)"
		: result == -ETIMEDOUT ? " (no leader answered; is the group running?)"
				       : "");
	return 1;
}
