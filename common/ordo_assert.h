/*
 * Always-on assertions. ORDO_ASSERT checks an invariant in every build
 * (it does not depend on NDEBUG): a broken invariant stops the process,
 * because the cluster recovers from a stopped node but not from a wrong
 * order. Bad input from the network or disk is never asserted on; it is
 * counted and answered or dropped by the caller.
 */
#ifndef ORDO_ASSERT_H
#define ORDO_ASSERT_H

/* _Noreturn, not <stdnoreturn.h>: its `noreturn` macro breaks
 * __attribute__((noreturn)) in third-party headers (DPDK). */

/* Called (if set) after the report and before abort(): the simulator prints
 * its seed, step and replay command there. */
extern void (*ordo_assert_hook)(void);

_Noreturn void ordo_assert_fail(const char *expr, const char *file, int line, const char *func);

#define ORDO_ASSERT(expr)                                                                          \
	do {                                                                                       \
		if (__builtin_expect(!(expr), 0))                                                  \
			ordo_assert_fail(#expr, __FILE__, __LINE__, __func__);                     \
	} while (0)

/* Compile-time relation between constants. */
#define ORDO_STATIC_ASSERT(expr, msg) _Static_assert(expr, msg)

#define ORDO_UNUSED	  __attribute__((unused))
#define ORDO_MUST_CHECK	  __attribute__((warn_unused_result))
#define ORDO_LIKELY(x)	  __builtin_expect(!!(x), 1)
#define ORDO_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define ORDO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
