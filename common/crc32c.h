/*
 * CRC-32C (Castagnoli, iSCSI, RFC 3720 §12.1), computed by ISA-L.
 * crc32c("123456789") == 0xE3069283.
 */
#ifndef ORDO_CRC32C_H
#define ORDO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes. */
uint32_t ordo_crc32c(const void *buf, size_t len);

/* Incremental form: state = ordo_crc32c_init(); state = ordo_crc32c_update(state, ...);
 * crc = ordo_crc32c_final(state). */
static inline uint32_t ordo_crc32c_init(void)
{
	return 0xFFFFFFFFu;
}
uint32_t ordo_crc32c_update(uint32_t state, const void *buf, size_t len);
static inline uint32_t ordo_crc32c_final(uint32_t state)
{
	return ~state;
}

#endif
