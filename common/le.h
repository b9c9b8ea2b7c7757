/*
 * Little-endian loads and stores at any alignment (PROTOCOL.md §1: all
 * integers are little-endian). memcpy compiles to one move on x86-64.
 */
#ifndef ORDO_LE_H
#define ORDO_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t ordo_ld16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return le16toh(v);
}
static inline uint32_t ordo_ld32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}
static inline uint64_t ordo_ld64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}
static inline void ordo_st16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}
static inline void ordo_st32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static inline void ordo_st64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

#endif
