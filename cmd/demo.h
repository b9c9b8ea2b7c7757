/* `ordo demo`: a whole cluster on loopback, driven and checked. */
#ifndef ORDO_CMD_DEMO_H
#define ORDO_CMD_DEMO_H

int demo_main(int argc, char **argv);

#endif
