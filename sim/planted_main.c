/* ordo-sim-planted: the simulator over the cores built with planted bugs
 * (common/plant.h), for the tests that show the checkers catch each one. */
#include <stdlib.h>

#include "sim/sim.h"

int main(int argc, char **argv)
{
	setenv("ORDO_SIM_ARGV0", "sim/ordo-sim-planted", 0);
	return sim_main(argc, argv);
}
