/*
 * The `ordo` command: one binary, one verb per role or tool.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "client/verbs.h"
#include "cmd/demo.h"
#include "cmd/format.h"
#include "cmd/group.h"
#include "cmd/member.h"
#include "replicas/node.h"
#include "sequencer/node.h"
#include "sim/sim.h"

struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

static const struct verb verbs[] = {
    {"format", format_main, "create a node's data directory (identity, cluster constants)"},
    {"member", member_main, "add or remove a sequencer of a running group"},
    {"group", group_main, "add a sequencer group to a running cluster at a future epoch"},
    {"sequencer", seq_main, "run a sequencer node"},
    {"replica", rep_main, "run a replica node"},
    {"submit", ordo_verb_submit, "order one request and print its place and result"},
    {"lookup", ordo_verb_lookup, "read an account through the order"},
    {"tail", ordo_verb_tail, "print the ordered log from a replica (-f follows)"},
    {"status", ordo_verb_status, "STATUS of every node of the cluster"},
    {"demo", demo_main, "start a local cluster, drive transfers, check the replicas agree"},
    {"bench", bench_main, "load-test a cluster: throughput, latency percentiles, CPU cost"},
    {"sim", sim_main, "deterministic cluster simulation with faults and checkers (--seed N)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ordo VERB [OPTIONS]   (ordo VERB --help for its options)\n\n");
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].help);
	fprintf(f, "\nThe cluster file comes from --cluster FILE, else $ORDO_CLUSTER, else "
		   "nic-config/demo.ini.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("ordo 0.1.0 (client protocol version 1)\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "ordo: unknown verb '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
