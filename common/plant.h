/*
 * Planted bugs: known mistakes compiled into a separate build of the pure
 * cores (sim/'s ordo-sim-planted, meson option planted_bugs) so that a test
 * can show the simulator's checkers catch each of them (issue 4). In every
 * other build ORDO_PLANTED() is the constant 0 and the compiler removes the
 * planted branch: the `ordo` binary never contains one.
 *
 * ordo_plant selects the one bug active in a run (sim --plant NAME).
 */
#ifndef ORDO_PLANT_H
#define ORDO_PLANT_H

enum ordo_plant_bug {
	ORDO_PLANT_NONE = 0,
	/* raft.c maybe_commit: commit an entry of an earlier term by counting
	 * its replicas (the Figure 8 mistake, thesis §3.6.2). */
	ORDO_PLANT_OLD_TERM_COMMIT = 1,
	/* the driver sends a vote (and append acknowledgements) before the
	 * hard state and entries they depend on are durable. */
	ORDO_PLANT_VOTE_BEFORE_DURABLE = 2,
	/* sessions.c: a retried request that is pending or already ordered is
	 * ordered again instead of being answered from the session table. */
	ORDO_PLANT_SKIP_DEDUP = 3,
	/* replica apply: epochs applied in the order they arrive instead of
	 * epoch number order. */
	ORDO_PLANT_APPLY_OUT_OF_ORDER = 4,
	ORDO_PLANT_COUNT = 5,
};

#ifdef ORDO_PLANT_BUGS
extern int ordo_plant;
#define ORDO_PLANTED(bug) (ordo_plant == (bug))
#else
#define ORDO_PLANTED(bug) 0
#endif

#endif
