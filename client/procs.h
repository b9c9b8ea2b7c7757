/*
 * Starting and stopping the nodes of a cluster file as child processes of
 * this one: used by `ordo demo` and the integration tests. Each node runs as
 * `EXE sequencer|replica --cluster FILE --node ID`, its stderr to
 * LOGDIR/node-ID.log; a sequencer keeps its Raft log in LOGDIR/data-ID,
 * which is formatted (`EXE format`) the first time the node starts.
 */
#ifndef ORDO_CLIENT_PROCS_H
#define ORDO_CLIENT_PROCS_H

#include <stdint.h>
#include <sys/types.h>

#include "client/ordo.h"
#include "config/config.h"

struct ordo_procs {
	pid_t pid[ORDO_NODES_MAX]; /* by index into the cluster's nodes; 0 = not running */
	uint32_t node_id[ORDO_NODES_MAX];
	uint32_t count;
};

/* Starts every node. fault_seq / fault_rep: --fault specs for sequencers and
 * replicas, or NULL. Returns 0 or -errno (and stops what it started). */
ORDO_MUST_CHECK int ordo_procs_start(struct ordo_procs *p, const struct cfg_cluster *cl,
				     const char *cluster_path, const char *exe, const char *logdir,
				     const char *fault_seq, const char *fault_rep);
/* Starts (or restarts) one node. */
ORDO_MUST_CHECK int ordo_procs_start_one(struct ordo_procs *p, const struct cfg_cluster *cl,
					 uint32_t index, const char *cluster_path, const char *exe,
					 const char *logdir, const char *fault);
/* Waits until every node answers STATUS_Q and every sequencer knows its
 * group's leader, or timeout: 0 or -ETIMEDOUT
 * (naming the silent node on stderr). A child that exited is reported. */
ORDO_MUST_CHECK int ordo_procs_wait_ready(struct ordo_procs *p, struct ordo_client *c,
					  const struct cfg_cluster *cl, uint64_t timeout_ns);
/* SIGTERM to all, then SIGKILL after a grace period; reaps them. Returns the
 * number of nodes that did not exit 0. */
int ordo_procs_stop(struct ordo_procs *p);

/* Removes a directory tree (the cluster's logs and data directories, whose
 * log segments are preallocated). 0 or a negative errno. */
ORDO_MUST_CHECK int ordo_dir_remove(const char *path);

/* Path of the running executable (for re-exec), into out. */
const char *ordo_self_exe(char *out, unsigned outlen);

#endif
