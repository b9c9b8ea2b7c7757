/*
 * The client verbs of `ordo`, built on libordo:
 *   ordo submit  OP ARGS...   order one request, print ORDERED and APPLIED
 *   ordo lookup  ACCOUNT      read an account through the order
 *   ordo tail    [-f]         print the ordered log from a replica (FETCH)
 *   ordo status  [--node ID]  STATUS of every node, or one
 */
#include "verbs.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ordo.h"
#include "common/le.h"
#include "common/ordo_time.h"
#include "replicas/ledger.h"

#define CALL_TIMEOUT_NS	 (5ull * ORDO_NS_PER_S)
#define QUERY_TIMEOUT_NS (1ull * ORDO_NS_PER_S)

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

int ordo_load_cluster(const char *path, struct cfg_cluster *cl)
{
	if (!path)
		path = getenv("ORDO_CLUSTER");
	if (!path)
		path = "nic-config/demo.ini";
	char err[512];
	int rc = cfg_load(path, cl, err, sizeof err);
	if (rc)
		fprintf(stderr, "ordo: %s\n", err);
	return rc;
}

const char *ordo_hex16(const uint8_t d[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	return out;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*v = x;
	return true;
}

/* Options every client verb shares. */
struct common_opts {
	const char *cluster;
	uint32_t key_id;
	uint32_t node_id;
	uint64_t from;
	bool follow;
	uint64_t count;
};

static int parse_common(int argc, char **argv, struct common_opts *o, const char *usage)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"node", required_argument, NULL, 'n'},
	    {"replica", required_argument, NULL, 'n'},
	    {"from", required_argument, NULL, 'F'},
	    {"follow", no_argument, NULL, 'f'},
	    {"count", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	memset(o, 0, sizeof *o);
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+c:k:n:F:fN:h", opts, NULL)) != -1) {
		uint64_t v = 0;
		switch (c) {
		case 'c':
			o->cluster = optarg;
			break;
		case 'k':
		case 'n':
		case 'F':
		case 'N':
			if (!parse_u64(optarg, &v)) {
				fprintf(stderr, "ordo: '%s' is not a number\n", optarg);
				return -1;
			}
			if (c == 'k')
				o->key_id = (uint32_t)v;
			else if (c == 'n')
				o->node_id = (uint32_t)v;
			else if (c == 'F')
				o->from = v;
			else
				o->count = v;
			break;
		case 'f':
			o->follow = true;
			break;
		default:
			fputs(usage, stderr);
			return c == 'h' ? 1 : -1;
		}
	}
	return optind;
}

static int open_client(struct cfg_cluster *cl, const struct common_opts *o, bool session,
		       struct ordo_client **out)
{
	if (ordo_load_cluster(o->cluster, cl))
		return -1;
	struct ordo_client_cfg cfg = {.cluster = cl, .key_id = o->key_id};
	int rc = ordo_client_open(&cfg, out);
	if (rc) {
		fprintf(stderr, "ordo: cannot open a client: %s%s\n", strerror(-rc),
			rc == -ENOKEY ? " (no such [key N] in the cluster file)" : "");
		return -1;
	}
	if (session && (rc = ordo_session_open(*out, CALL_TIMEOUT_NS)) != 0) {
		fprintf(stderr, "ordo: no session: %s; is the cluster running (ordo status)?\n",
			strerror(-rc));
		ordo_client_close(*out);
		return -1;
	}
	return 0;
}

static void print_account(uint64_t id, const struct ordo_event *e)
{
	if (e->result != WIRE_R_OK || e->data_size != 32) {
		printf("account %" PRIu64 ": %s\n", id, wire_result_name(e->result));
		return;
	}
	uint64_t debits = ordo_ld64(e->data + 8), credits = ordo_ld64(e->data + 16);
	uint32_t flags = ordo_ld32(e->data + 24);
	printf("account %" PRIu64 ": debits_posted=%" PRIu64 " credits_posted=%" PRIu64
	       " flags=%u\n",
	       ordo_ld64(e->data), debits, credits, flags);
}

static const char submit_usage[] =
    "usage: ordo submit [--cluster FILE] [--key N] OP ARGS\n"
    "  opaque TEXT                               order TEXT (at most 1024 bytes)\n"
    "  create ACCOUNT [FLAGS]                    create an account\n"
    "  transfer ID DEBIT_ACCOUNT CREDIT_ACCOUNT AMOUNT\n"
    "  lookup ACCOUNT                            read an account through the order\n";

int ordo_verb_submit(int argc, char **argv)
{
	struct common_opts o;
	int i = parse_common(argc, argv, &o, submit_usage);
	if (i < 0)
		return 2;
	if (i >= argc) {
		fputs(submit_usage, stderr);
		return 2;
	}
	const char *op = argv[i++];
	uint8_t payload[ORDO_OPAQUE_BYTES_MAX] = {0};
	uint16_t size = 0, opcode;
	uint64_t v[4] = {0};
	int nargs = argc - i;
	if (!strcmp(op, "opaque") && nargs == 1) {
		size_t len = strlen(argv[i]);
		if (len > ORDO_OPAQUE_BYTES_MAX) {
			fprintf(stderr, "ordo: an OPAQUE payload is at most 1024 bytes\n");
			return 2;
		}
		memcpy(payload, argv[i], len);
		size = (uint16_t)len;
		opcode = WIRE_OP_OPAQUE;
	} else if (!strcmp(op, "create") && (nargs == 1 || nargs == 2)) {
		opcode = WIRE_OP_CREATE_ACCOUNT;
		size = 16;
	} else if (!strcmp(op, "transfer") && nargs == 4) {
		opcode = WIRE_OP_TRANSFER;
		size = 32;
	} else if (!strcmp(op, "lookup") && nargs == 1) {
		opcode = WIRE_OP_LOOKUP;
		size = 16;
	} else {
		fputs(submit_usage, stderr);
		return 2;
	}
	if (opcode != WIRE_OP_OPAQUE) {
		for (int k = 0; k < nargs; k++)
			if (!parse_u64(argv[i + k], &v[k])) {
				fprintf(stderr, "ordo: '%s' is not an unsigned 64-bit number\n",
					argv[i + k]);
				return 2;
			}
		if (opcode == WIRE_OP_CREATE_ACCOUNT) {
			ordo_st64(payload, v[0]);
			ordo_st32(payload + 8, (uint32_t)v[1]);
		} else if (opcode == WIRE_OP_TRANSFER) {
			for (int k = 0; k < 4; k++)
				ordo_st64(payload + 8 * k, v[k]);
		} else {
			ordo_st64(payload, v[0]);
		}
	}
	struct cfg_cluster *cl = malloc(sizeof *cl);
	struct ordo_client *c;
	if (!cl || open_client(cl, &o, true, &c)) {
		free(cl);
		return 1;
	}
	struct ordo_event e;
	int rc = ordo_call(c, opcode, payload, size, &e, CALL_TIMEOUT_NS);
	if (rc == 0) {
		if (opcode == WIRE_OP_LOOKUP)
			print_account(v[0], &e);
		printf("applied: position=%" PRIu64 " result=%s replica=%u\n", e.position,
		       wire_result_name(e.result), e.replica_id);
	} else {
		fprintf(stderr, "ordo submit: %s\n", strerror(-rc));
	}
	ordo_client_close(c);
	free(cl);
	return rc == 0 ? 0 : 1;
}

int ordo_verb_lookup(int argc, char **argv)
{
	static const char usage[] = "usage: ordo lookup [--cluster FILE] [--key N] ACCOUNT\n";
	struct common_opts o;
	int i = parse_common(argc, argv, &o, usage);
	uint64_t id;
	if (i < 0 || i + 1 != argc || !parse_u64(argv[i], &id)) {
		fputs(usage, stderr);
		return 2;
	}
	uint8_t payload[16] = {0};
	ordo_st64(payload, id);
	struct cfg_cluster *cl = malloc(sizeof *cl);
	struct ordo_client *c;
	if (!cl || open_client(cl, &o, true, &c)) {
		free(cl);
		return 1;
	}
	struct ordo_event e;
	int rc = ordo_call(c, WIRE_OP_LOOKUP, payload, 16, &e, CALL_TIMEOUT_NS);
	if (rc == 0)
		print_account(id, &e);
	else
		fprintf(stderr, "ordo lookup: %s\n", strerror(-rc));
	ordo_client_close(c);
	free(cl);
	return rc == 0 && e.result == WIRE_R_OK ? 0 : 1;
}

static void print_entry(const struct wire_entry_rec *r)
{
	printf("%" PRIu64 " epoch=%" PRIu64 " client=%016" PRIx64 " req=%" PRIu64 " %s %s",
	       r->position, r->epoch, r->client_id, r->request_number,
	       wire_op_name((enum wire_op)r->op), wire_result_name((enum wire_result)r->result));
	if (r->op == WIRE_OP_CREATE_ACCOUNT && r->size == 16)
		printf(" account=%" PRIu64 " flags=%u", ordo_ld64(r->payload),
		       ordo_ld32(r->payload + 8));
	else if (r->op == WIRE_OP_TRANSFER && r->size == 32)
		printf(" id=%" PRIu64 " debit=%" PRIu64 " credit=%" PRIu64 " amount=%" PRIu64,
		       ordo_ld64(r->payload), ordo_ld64(r->payload + 8), ordo_ld64(r->payload + 16),
		       ordo_ld64(r->payload + 24));
	else if (r->op == WIRE_OP_LOOKUP && r->size == 16)
		printf(" account=%" PRIu64, ordo_ld64(r->payload));
	else if (r->op == WIRE_OP_OPAQUE)
		printf(" bytes=%u", r->size);
	putchar('\n');
}

int ordo_verb_tail(int argc, char **argv)
{
	static const char usage[] =
	    "usage: ordo tail [--cluster FILE] [--key N] [--replica ID] [--from POSITION]\n"
	    "                 [--count N] [-f|--follow]\n"
	    "  Prints the ordered log from a replica (FETCH), verifying the digest chain\n"
	    "  when it starts at position 1. -f keeps following, like tail -f.\n";
	struct common_opts o;
	int i = parse_common(argc, argv, &o, usage);
	if (i < 0 || i != argc) {
		fputs(usage, stderr);
		return 2;
	}
	struct cfg_cluster *cl = malloc(sizeof *cl);
	struct ordo_client *c;
	if (!cl || open_client(cl, &o, false, &c)) {
		free(cl);
		return 1;
	}
	const struct cfg_node *reps[ORDO_NODES_MAX];
	uint32_t nreps = cfg_replicas(cl, reps, ORDO_NODES_MAX);
	uint32_t node = o.node_id ? o.node_id : (nreps ? reps[0]->node_id : 0);
	signal(SIGINT, on_sigint);
	uint64_t from = o.from ? o.from : 1, printed = 0;
	uint8_t digest[16] = {0}, rec_bytes[ORDO_ENTRY_REC_BYTES + ORDO_OPAQUE_BYTES_MAX];
	bool verify = from == 1;
	static uint8_t buf[ORDO_DATAGRAM_MAX];
	static struct wire_entry_rec recs[ORDO_RECS_PER_DATAGRAM_MAX];
	int rc = 0;
	while (!interrupted && (!o.count || printed < o.count)) {
		struct wire_entries_head h;
		int k = ordo_fetch(c, node, from, 0, &h, recs, ORDO_RECS_PER_DATAGRAM_MAX, buf,
				   QUERY_TIMEOUT_NS);
		if (k < 0) {
			fprintf(stderr, "ordo tail: replica %u does not answer: %s\n", node,
				strerror(-k));
			rc = 1;
			break;
		}
		if (h.flags & WIRE_ENTRIES_RETAINED_BEFORE) {
			fprintf(stderr,
				"ordo tail: positions before %" PRIu64
				" are no longer retained; continuing from there\n",
				h.first_position);
			from = h.first_position;
			verify = false;
			continue;
		}
		if (k == 0) {
			if (!o.follow)
				break;
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (verify && memcmp(h.digest, digest, 16) != 0) {
			fprintf(stderr, "ordo tail: digest mismatch before position %" PRIu64 "\n",
				h.first_position);
			rc = 1;
			break;
		}
		for (int j = 0; j < k && (!o.count || printed < o.count); j++) {
			print_entry(&recs[j]);
			wire_entry_encode(rec_bytes, &recs[j]);
			ledger_digest_step(digest, rec_bytes, wire_entry_bytes(recs[j].size));
			printed++;
			from = recs[j].position + 1;
		}
		fflush(stdout);
	}
	ordo_client_close(c);
	free(cl);
	return rc;
}

static const char *role_name(uint16_t role)
{
	switch (role) {
	case WIRE_ROLE_LEADER:
		return "leader";
	case WIRE_ROLE_FOLLOWER:
		return "follower";
	case WIRE_ROLE_CANDIDATE:
		return "candidate";
	case WIRE_ROLE_REPLICA:
		return "replica";
	default:
		return "?";
	}
}

int ordo_verb_status(int argc, char **argv)
{
	static const char usage[] = "usage: ordo status [--cluster FILE] [--key N] [--node ID]\n";
	struct common_opts o;
	int i = parse_common(argc, argv, &o, usage);
	if (i < 0 || i != argc) {
		fputs(usage, stderr);
		return 2;
	}
	struct cfg_cluster *cl = malloc(sizeof *cl);
	struct ordo_client *c;
	if (!cl || open_client(cl, &o, false, &c)) {
		free(cl);
		return 1;
	}
	printf("%-5s %-9s %-5s %-4s %-6s %-10s %-8s %-32s %-10s %s\n", "node", "role", "group",
	       "term", "leader", "commit", "epoch", "digest", "requests", "dropped");
	int down = 0;
	/* Several groups: each group's committed epoch (its leader's) and the
	 * replicas' merged epoch, to show which group holds the merge back. */
	uint64_t group_epoch[ORDO_GROUPS_MAX] = {0}, merged_min = UINT64_MAX, merged_max = 0;
	for (uint32_t k = 0; k < cl->nnodes; k++) {
		const struct cfg_node *nd = &cl->nodes[k];
		if (o.node_id && nd->node_id != o.node_id)
			continue;
		struct wire_status_msg s;
		if (ordo_status(c, nd->node_id, &s, QUERY_TIMEOUT_NS) != 0) {
			printf("%-5u %-9s (no answer from its port %u)\n", nd->node_id, "down",
			       nd->client_port);
			down++;
			continue;
		}
		if (s.role == WIRE_ROLE_REPLICA) {
			merged_min = s.epoch < merged_min ? s.epoch : merged_min;
			merged_max = s.epoch > merged_max ? s.epoch : merged_max;
		} else if (nd->group < ORDO_GROUPS_MAX && s.epoch > group_epoch[nd->group]) {
			group_epoch[nd->group] = s.epoch;
		}
		char hex[33];
		printf("%-5u %-9s %-5u %-4" PRIu64 " %-6u %-10" PRIu64 " %-8" PRIu64
		       " %-32s %-10" PRIu64 " %" PRIu64 "\n",
		       s.node_id, role_name(s.role), s.group, s.term, s.leader_id, s.commit,
		       s.epoch, ordo_hex16(s.digest, hex), s.requests, s.dropped);
	}
	uint32_t groups = cfg_groups(cl);
	if (groups > 1 && !o.node_id) {
		uint64_t top = 0;
		for (uint32_t g = 0; g < groups; g++)
			top = group_epoch[g] > top ? group_epoch[g] : top;
		printf("merge: %u groups, epoch_us %u; replicas merged through epoch %" PRIu64
		       "..%" PRIu64 "\n",
		       groups, cl->epoch_us, merged_min == UINT64_MAX ? 0 : merged_min, merged_max);
		for (uint32_t g = 0; g < groups; g++) {
			uint64_t lag = top - group_epoch[g];
			printf("  group %u committed epoch %" PRIu64 "%s", g, group_epoch[g],
			       group_epoch[g] == 0 ? " (no answer)" : "");
			/* a few slots apart is the time between the queries */
			double ms = (double)lag * cl->epoch_us / 1000.0;
			if (group_epoch[g] && ms >= 50.0)
				printf(", %" PRIu64 " slots (%.1f ms) behind the newest: it holds "
				       "the merge back",
				       lag, ms);
			printf("\n");
		}
	}
	ordo_client_close(c);
	free(cl);
	return down ? 1 : 0;
}
