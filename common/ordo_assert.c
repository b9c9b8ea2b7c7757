/* The failure path of ORDO_ASSERT: report where, then abort (core dump). */
#include "ordo_assert.h"

#include <stdio.h>
#include <stdlib.h>

void (*ordo_assert_hook)(void);

_Noreturn void ordo_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "ordo: assertion failed: %s at %s:%d in %s()\n", expr, file, line, func);
	if (ordo_assert_hook)
		ordo_assert_hook();
	fflush(stderr);
	abort();
}
