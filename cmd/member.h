/* `ordo member`: add or remove a sequencer of a running group. */
#ifndef ORDO_CMD_MEMBER_H
#define ORDO_CMD_MEMBER_H

int member_main(int argc, char **argv);

#endif
