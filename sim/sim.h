/*
 * The deterministic cluster simulator (issue 4; DESIGN.md §3, §6).
 *
 * One process runs a whole cluster: the real pure cores of ordo (the Raft
 * core, the sequencer state machine with its session table and batcher, the
 * epoch log, the replica state machine and its ledger, the wire codecs) on a
 * simulated network, disk and clock. Every choice (the cluster's shape, the
 * fault mix, every loss, delay, crash and bit flip) is drawn from one seed,
 * so a seed replays exactly.
 *
 * A run is a sequence of steps of STEP_NS simulated time. After every step
 * the checkers run; the first violated property ends the run with the seed,
 * the step, the property and the command that replays it.
 */
#ifndef ORDO_SIM_H
#define ORDO_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/plant.h"

struct sim_opts {
	uint64_t seed;
	bool safety_only;     /* lift every fault bound, check safety alone */
	uint32_t steps_fault; /* steps with faults; 0 = drawn from the seed */
	uint32_t steps_heal;  /* steps after faults stop (liveness bound) */
	int verbose;	      /* 0 quiet, 1 summary, 2 events */
	FILE *log;	      /* where failures and summaries go */
	const char *argv0;    /* for the replay command */
	const char *plant;    /* planted bug name, or NULL (planted build only) */
	uint32_t groups;      /* sequencer groups, 1 .. 3; 0: drawn from the seed (1, 2 or 3) */
	bool node_nack;	      /* several groups: replicas NACK by replicas/node.c's rules as
				 they are (sim.c rep_nack_group) */
};

struct sim_result {
	bool failed;
	uint64_t step;	      /* where it failed, or steps run */
	char property[64];    /* the violated property */
	char detail[256];     /* what was seen */
	uint64_t ordered;     /* requests in the agreed order at the end */
	uint64_t answered_ok; /* requests a client heard OK/DUPLICATE for */
	uint64_t crashes;     /* sequencer crashes injected */
	uint64_t msgs;	      /* datagrams delivered */
	uint64_t elections;   /* leaders elected */
	uint64_t snapshots;   /* snapshots installed from a leader */
	uint32_t dead;	      /* nodes stopped for good by detected corruption */
	uint32_t stranded;    /* replicas behind every retained epoch with no replica ahead */
	uint32_t reopened;    /* sessions reopened by a replayed request 1 (gap 14) */
	uint32_t transfers;   /* state transfers between replicas */
	uint32_t groups;      /* sequencer groups run */
	uint64_t probes;      /* requests sent to a group without their session */
	uint64_t unknowns;    /* of those, answered SESSION_UNKNOWN */
	char shape[160];      /* the cluster and faults drawn */
};

/* Runs one seed. Returns 0 when every property held, 1 on a violation. */
int sim_run(const struct sim_opts *o, struct sim_result *r);

/* The number of groups a run of o has (o->groups, or drawn from the seed). */
uint32_t sim_groups_of(const struct sim_opts *o);

/* The `ordo sim` verb (and the planted-bug binary's main). */
int sim_main(int argc, char **argv);

/* A planted bug of the simulator's own replica driver (common/plant.h has
 * the ones in the cores; sim.c's driver plants vote-before-durable too): a
 * replica merges an epoch as soon as the groups that delivered their entry
 * for it are there, without waiting for the others (Calvin's merge must
 * wait for every group). */
#define SIM_PLANT_MERGE_EARLY ORDO_PLANT_COUNT
#define SIM_PLANT_COUNT	      (ORDO_PLANT_COUNT + 1)

/* Planted bugs by name; -1 if unknown (planted.c / sim.c). */
int sim_plant_parse(const char *name);
const char *sim_plant_name(int bug);

#endif
