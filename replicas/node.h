/*
 * `ordo replica`: the replica node driver. Receives committed epochs from the
 * sequencer, applies them to the ledger in order, answers APPLIED, FETCH,
 * RESULT_Q and STATUS_Q. The only part of the replica that touches the
 * transport and the clock.
 */
#ifndef ORDO_REP_NODE_H
#define ORDO_REP_NODE_H

int rep_main(int argc, char **argv);

#endif
