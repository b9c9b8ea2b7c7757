/* The client verbs of `ordo`: submit, lookup, tail, status. Each takes the
 * verb's argv (argv[0] is the verb) and returns the process exit code:
 * 0 done, 1 failed, 2 usage. */
#ifndef ORDO_CLIENT_VERBS_H
#define ORDO_CLIENT_VERBS_H

#include <stdint.h>

#include "config/config.h"

int ordo_verb_submit(int argc, char **argv);
int ordo_verb_lookup(int argc, char **argv);
int ordo_verb_tail(int argc, char **argv);
int ordo_verb_status(int argc, char **argv);

/* Loads the cluster file (--cluster, else $ORDO_CLUSTER, else
 * nic-config/demo.ini), printing the error; 0 or -errno. */
int ordo_load_cluster(const char *path, struct cfg_cluster *cl);
/* Formats 16 digest bytes as 32 hex digits into out[33]. */
const char *ordo_hex16(const uint8_t d[16], char out[33]);

#endif
