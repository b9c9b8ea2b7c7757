/*
 * `ordo format`: creates a node's data directory (storage/format.h) with the
 * node's identity and the cluster constants of its cluster file, so a node
 * that lost its disk can never rejoin as if it had voted nothing (DESIGN.md
 * §4). `ordo format --new-cluster-id` prints a fresh random cluster_id for a
 * new cluster file (PROTOCOL.md §2.1: chosen at random, nonzero).
 */
#include "format.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/verbs.h"
#include "storage/format.h"

static const char usage_text[] =
    "usage: ordo format --cluster FILE --node ID --data DIR [--force]\n"
    "       ordo format --new-cluster-id\n"
    "  Creates node ID's data directory DIR with its identity and the cluster\n"
    "  constants (cluster_id, session_window, sessions_max, accounts_max,\n"
    "  transfers_max) of FILE. A directory that already holds ordo data is\n"
    "  refused unless --force, which erases it. --new-cluster-id prints a random\n"
    "  cluster_id for a new cluster file.\n";

int format_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"data", required_argument, NULL, 'd'},
	    {"force", no_argument, NULL, 'F'},
	    {"new-cluster-id", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *cluster = NULL, *dir = NULL;
	uint32_t node_id = 0;
	bool force = false, new_id = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:d:FNh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cluster = optarg;
			break;
		case 'n':
			node_id = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'F':
			force = true;
			break;
		case 'N':
			new_id = true;
			break;
		default:
			fputs(usage_text, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (new_id) {
		if (sodium_init() < 0)
			return 1;
		uint64_t id = 0;
		while (id == 0)
			randombytes_buf(&id, sizeof id);
		printf("cluster_id = 0x%016" PRIx64 "\n", id);
		return 0;
	}
	if (!node_id || !dir || optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	static struct cfg_cluster cl;
	if (ordo_load_cluster(cluster, &cl))
		return 1;
	const struct cfg_node *nd = cfg_node_find(&cl, node_id);
	if (!nd) {
		fprintf(stderr, "ordo format: %s has no [node %u]\n", cl.path, node_id);
		return 1;
	}
	struct stor_identity id;
	stor_identity_default(&id, cl.cluster_id, node_id);
	id.session_window = cl.session_window;
	id.sessions_max = cl.sessions_max;
	id.accounts_max = cl.accounts_max;
	id.transfers_max = cl.transfers_max;
	char err[512];
	int rc = stor_format(dir, &id, force, err, sizeof err);
	if (rc) {
		fprintf(stderr, "ordo format: %s\n", err);
		return 1;
	}
	printf("ordo format: %s formatted for node %u of cluster 0x%016" PRIx64 "\n", dir, node_id,
	       cl.cluster_id);
	return 0;
}
