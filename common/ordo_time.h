/*
 * Time types. Pure cores never read a clock: time enters them as a value
 * (uint64_t nanoseconds). Only node drivers, clients and tools call these.
 */
#ifndef ORDO_TIME_H
#define ORDO_TIME_H

#include <stdint.h>
#include <time.h>

#define ORDO_NS_PER_US 1000ull
#define ORDO_NS_PER_MS 1000000ull
#define ORDO_NS_PER_S  1000000000ull

/* Monotonic nanoseconds, for timeouts and intervals. */
static inline uint64_t ordo_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * ORDO_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Wall-clock nanoseconds since the epoch: epoch timestamps, AUTH nonces. */
static inline uint64_t ordo_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * ORDO_NS_PER_S + (uint64_t)ts.tv_nsec;
}

#endif
