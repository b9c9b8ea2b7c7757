/* `ordo format`: create a node's data directory. */
#ifndef ORDO_CMD_FORMAT_H
#define ORDO_CMD_FORMAT_H

int format_main(int argc, char **argv);

#endif
