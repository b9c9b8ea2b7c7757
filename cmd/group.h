/* `ordo group add`: a group joins a running cluster at an agreed epoch. */
#ifndef ORDO_CMD_GROUP_H
#define ORDO_CMD_GROUP_H

int group_main(int argc, char **argv);

#endif
