/*
 * Strict number parsing for configuration and command lines: the whole
 * text must be the number (no sign, no spaces, no trailing characters),
 * decimal or 0x/0X hex, and it must fit in 64 bits. Unlike strtoull, which
 * accepts "-1", " 7" and "7x", this is false for anything else.
 */
#ifndef ORDO_PARSE_H
#define ORDO_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses the len bytes at p. */
bool ordo_parse_u64(const char *p, size_t len, uint64_t *out);

#endif
