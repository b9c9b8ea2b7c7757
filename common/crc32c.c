/* CRC-32C through ISA-L's crc32_iscsi (which takes and returns the raw,
 * un-inverted register: init 0xFFFFFFFF, final XOR done here). */
#include "crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

#include "ordo_assert.h"

uint32_t ordo_crc32c_update(uint32_t state, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		state = crc32_iscsi((unsigned char *)p, chunk, state);
		p += chunk;
		len -= (size_t)chunk;
	}
	return state;
}

uint32_t ordo_crc32c(const void *buf, size_t len)
{
	return ordo_crc32c_final(ordo_crc32c_update(ordo_crc32c_init(), buf, len));
}
