/*
 * `ordo sequencer`: the sequencer node driver. The only part of the sequencer
 * that touches the transport and the clock; it wires the pure cores
 * (wire, sessions, batcher, epoch log) to I/O.
 */
#ifndef ORDO_SEQ_NODE_H
#define ORDO_SEQ_NODE_H

int seq_main(int argc, char **argv);

#endif
