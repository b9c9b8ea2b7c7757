/*
 * Address text helpers of the dataplane: parsing a strict dotted quad and
 * formatting "a.b.c.d:port". No name resolution and no IPv6 here: ordo speaks
 * IPv4 only (PROTOCOL.md §1), and the cluster file names nodes by address.
 */
#include <stdio.h>

#include "dataplane/dp.h"

/*
 * Exactly four decimal octets 0..255 separated by dots: no leading zeros
 * (inet_aton would read "010" as octal), no signs, no spaces, nothing after
 * the last octet.
 */
bool dp_parse_ip(const char *text, uint32_t *ip)
{
	if (!text || !ip)
		return false;
	uint32_t v = 0;
	const char *p = text;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (*p != '.')
				return false;
			p++;
		}
		if (*p < '0' || *p > '9')
			return false;
		uint32_t octet = 0;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits == 1 && octet == 0)
				return false; /* leading zero */
			octet = octet * 10 + (uint32_t)(*p - '0');
			if (octet > 255)
				return false;
			digits++;
			p++;
		}
		v = (v << 8) | octet;
	}
	if (*p != '\0')
		return false;
	*ip = v;
	return true;
}

const char *dp_addr_str(const struct dp_addr *a, char *out, unsigned outlen)
{
	if (!out || outlen == 0)
		return "";
	if (!a) {
		snprintf(out, outlen, "(null)");
		return out;
	}
	snprintf(out, outlen, "%u.%u.%u.%u:%u", (unsigned)(a->ip >> 24),
		 (unsigned)((a->ip >> 16) & 0xFF), (unsigned)((a->ip >> 8) & 0xFF),
		 (unsigned)(a->ip & 0xFF), (unsigned)a->port);
	return out;
}
