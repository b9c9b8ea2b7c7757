/*
 * `ordo bench`: the load generator of the bench harness (bench/bench.c).
 * What lives here: the verb's entry point only.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

/* Runs `ordo bench` with the verb's argv (argv[0] is "bench"). Returns the
 * exit code: 0 the run completed, 1 the cluster did not answer (or nothing
 * was ordered, or the run was interrupted), 2 usage. */
int bench_main(int argc, char **argv);

#endif
