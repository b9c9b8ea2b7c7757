/*
 * Unit tests of dataplane/pkt.c: the RFC 1071 checksum (its worked example
 * and a straightforward reference implementation written here), golden
 * frames written byte by byte (ARP request/reply, UDP, ICMP echo, IGMP
 * queries, IGMP report), build -> parse round trips with and without
 * checksum offload, every drop kind, truncation at every byte offset and
 * seeded random corruption (frames placed against a PROT_NONE guard page, so
 * a read past len faults), 802.1Q tags, fragments, Ethernet padding,
 * multicast and broadcast destinations, and the ARP cache (resolve, expiry,
 * retry timing, replacement, full table).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/prng.h"
#include "dataplane/pkt.h"

static const uint8_t MAC_A[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t MAC_B[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
#define IP_A	  0xC0A80101u /* 192.168.1.1 */
#define IP_B	  0xC0A80102u /* 192.168.1.2 */
#define IP_R	  0xC0A801FEu /* 192.168.1.254, the IGMP querier */
#define GROUP	  0xEFFF0102u /* 239.255.1.2 */
#define PORT_A	  7400u
#define PORT_B	  7401u
#define FRAME_MAX 2048u

/* ------------------------------------------------------- helpers */

/* The reference Internet checksum, written the obvious way (RFC 1071 §4.1):
 * 16-bit big-endian words into a 32-bit sum, odd byte padded, carries
 * folded, complemented. */
static uint16_t ref_sum(const uint8_t *p, uint32_t len, uint32_t sum)
{
	for (uint32_t i = 0; i < len; i += 2) {
		uint32_t w = (uint32_t)p[i] << 8;
		if (i + 1 < len)
			w |= p[i + 1];
		sum += w;
		while (sum >> 16)
			sum = (sum & 0xFFFF) + (sum >> 16);
	}
	return (uint16_t)sum;
}

static uint16_t ref_csum(const uint8_t *p, uint32_t len)
{
	return (uint16_t)~ref_sum(p, len, 0);
}

/* The RFC 768 pseudo-header sum (not complemented) for UDP. */
static uint16_t ref_pseudo(uint32_t src, uint32_t dst, uint16_t ulen)
{
	uint8_t ph[12] = {(uint8_t)(src >> 24),
			  (uint8_t)(src >> 16),
			  (uint8_t)(src >> 8),
			  (uint8_t)src,
			  (uint8_t)(dst >> 24),
			  (uint8_t)(dst >> 16),
			  (uint8_t)(dst >> 8),
			  (uint8_t)dst,
			  0,
			  17,
			  (uint8_t)(ulen >> 8),
			  (uint8_t)ulen};
	return ref_sum(ph, 12, 0);
}

/* The full UDP checksum of the datagram at u (its checksum field taken as
 * it is in memory: set it to 0 first to compute the one to send). */
static uint16_t ref_udp_csum(uint32_t src, uint32_t dst, const uint8_t *u, uint16_t ulen)
{
	return (uint16_t)~ref_sum(u, ulen, ref_pseudo(src, dst, ulen));
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Recomputes the IPv4 header checksum of the header at ip. */
static void fix_ip_csum(uint8_t *ip)
{
	uint32_t hlen = (ip[0] & 0xFu) * 4u;
	put16(ip + 10, 0);
	put16(ip + 10, ref_csum(ip, hlen));
}

/* Recomputes the UDP checksum of an IPv4/UDP packet at ip. */
static void fix_udp_csum(uint8_t *ip)
{
	uint8_t *u = ip + (ip[0] & 0xFu) * 4u;
	uint16_t ulen = be16(u + 4);
	put16(u + 6, 0);
	uint16_t c = ref_udp_csum(be32(ip + 12), be32(ip + 16), u, ulen);
	put16(u + 6, c ? c : 0xFFFF);
}

static bool is_bad(enum pkt_kind k)
{
	return k == PKT_BAD_ETH || k == PKT_BAD_ARP || k == PKT_BAD_IPV4 || k == PKT_FRAGMENT ||
	       k == PKT_BAD_UDP || k == PKT_BAD_ICMP;
}

static bool is_kind(enum pkt_kind k)
{
	return (k >= PKT_UDP && k <= PKT_IGNORED) || is_bad(k);
}

/*
 * Two pages: the second PROT_NONE. guarded() copies a frame so that its last
 * byte is the last byte of the readable page: pkt_parse reading frame[len]
 * faults and the test crashes.
 */
static uint8_t *guard_mem;
static size_t guard_page;

static uint8_t *guarded(const uint8_t *f, uint32_t len)
{
	if (!guard_mem) {
		guard_page = (size_t)sysconf(_SC_PAGESIZE);
		void *m = mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(m, MAP_FAILED);
		cr_assert_eq(mprotect((uint8_t *)m + guard_page, guard_page, PROT_NONE), 0);
		guard_mem = m;
	}
	cr_assert_leq(len, guard_page);
	uint8_t *p = guard_mem + guard_page - len;
	if (len)
		memcpy(p, f, len);
	return p;
}

static enum pkt_kind parse_guarded(const uint8_t *f, uint32_t len, uint32_t rx_flags,
				   struct pkt_info *info)
{
	return pkt_parse(guarded(f, len), len, rx_flags, info);
}

/* A UDP frame A -> B with payload_len bytes i*7+3, built by pkt_build_udp. */
static uint32_t make_udp(uint8_t *f, uint32_t payload_len, uint32_t tx_flags)
{
	for (uint32_t i = 0; i < payload_len; i++)
		f[PKT_UDP_HEADROOM + i] = (uint8_t)(i * 7 + 3);
	return pkt_build_udp(f, MAC_A, MAC_B, IP_A, IP_B, PORT_A, PORT_B, payload_len, 0x1234,
			     tx_flags);
}

/* ------------------------------------------------------- golden frames */

/* who-has 192.168.1.2 tell 192.168.1.1, from 02:00:00:00:00:01 (RFC 826). */
static const uint8_t ARP_REQ[60] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* dst: broadcast */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* src: A */
    0x08, 0x06,				/* ARP */
    0x00, 0x01,				/* htype: Ethernet */
    0x08, 0x00,				/* ptype: IPv4 */
    0x06, 0x04,				/* hlen, plen */
    0x00, 0x01,				/* op: request */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* sha: A */
    0xc0, 0xa8, 0x01, 0x01,		/* spa: 192.168.1.1 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* tha: unknown */
    0xc0, 0xa8, 0x01, 0x02,		/* tpa: 192.168.1.2 */
					/* 18 bytes of padding to 60 */
};

/* 192.168.1.2 is-at 02:00:00:00:00:02, to A. */
static const uint8_t ARP_REP[60] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* dst: A */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, /* src: B */
    0x08, 0x06,				/* ARP */
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, /* Ethernet, IPv4, 6, 4 */
    0x00, 0x02,				/* op: reply */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, /* sha: B */
    0xc0, 0xa8, 0x01, 0x02,		/* spa: 192.168.1.2 */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* tha: A */
    0xc0, 0xa8, 0x01, 0x01,		/* tpa: 192.168.1.1 */
};

/* 192.168.1.1:7400 -> 192.168.1.2:7401, "ordo!", ident 0x1234, DF, TTL 64.
 * The IPv4 checksum 0xa544 and UDP checksum 0x4dcd were computed outside
 * this file (a few lines of Python) and are recomputed by ref_csum in
 * golden::udp_checksums_by_reference. */
static const uint8_t UDP_GOLDEN[47] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, /* dst: B */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* src: A */
    0x08, 0x00,				/* IPv4 */
    0x45, 0x00,				/* version 4, IHL 5, TOS 0 */
    0x00, 0x21,				/* total length 33 */
    0x12, 0x34,				/* identification */
    0x40, 0x00,				/* DF, offset 0 */
    0x40, 0x11,				/* TTL 64, UDP */
    0xa5, 0x44,				/* header checksum */
    0xc0, 0xa8, 0x01, 0x01,		/* src */
    0xc0, 0xa8, 0x01, 0x02,		/* dst */
    0x1c, 0xe8, 0x1c, 0xe9,		/* ports 7400 -> 7401 */
    0x00, 0x0d,				/* UDP length 13 */
    0x4d, 0xcd,				/* UDP checksum */
    'o',  'r',	'd',  'o',  '!',
};

/* ping 192.168.1.1 from 192.168.1.2: id 0x4242, seq 1, data "abcdefgh";
 * 50 bytes padded to 60 by the sender. */
static const uint8_t ECHO_REQ[60] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,
    0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x24, /* total length 36 */
    0x00, 0x01, 0x40, 0x00,				  /* ident 1, DF */
    0x40, 0x01, 0xb7, 0x84,				  /* TTL 64, ICMP, checksum */
    0xc0, 0xa8, 0x01, 0x02,				  /* src B */
    0xc0, 0xa8, 0x01, 0x01,				  /* dst A */
    0x08, 0x00, 0x24, 0x27,				  /* echo request, code 0, checksum */
    0x42, 0x42, 0x00, 0x01,				  /* identifier, sequence */
    'a',  'b',	'c',  'd',  'e',  'f',	'g',  'h',
};

/* IGMPv2 general query from 192.168.1.254 to 224.0.0.1 (RFC 2236 §2),
 * TTL 1, Router Alert, max response 10 s. */
static const uint8_t IGMP_GQ[60] = {
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x08,
    0x00, 0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x41, 0x70,
    0xc0, 0xa8, 0x01, 0xfe, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00, /* Router Alert */
    0x11, 0x64, 0xee, 0x9b, 0x00, 0x00, 0x00, 0x00,
};

/* Group-specific query for 239.255.1.2, sent to the group. */
static const uint8_t IGMP_GSQ[60] = {
    0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x08, 0x00, 0x46, 0xc0,
    0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x30, 0x70, 0xc0, 0xa8, 0x01, 0xfe, 0xef, 0xff,
    0x01, 0x02, 0x94, 0x04, 0x00, 0x00, 0x11, 0x64, 0xfd, 0x99, 0xef, 0xff, 0x01, 0x02,
};

/* The IGMPv2 report A sends for 239.255.1.2. */
static const uint8_t IGMP_REPORT[60] = {
    0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02, /* the group's MAC */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00, 0x46, 0xc0, 0x00, 0x20, /* IHL 6, TOS 0xc0, total 32 */
    0x00, 0x00, 0x40, 0x00,		/* ident 0, DF */
    0x01, 0x02, 0x31, 0x6d,		/* TTL 1, IGMP, checksum */
    0xc0, 0xa8, 0x01, 0x01, 0xef, 0xff,
    0x01, 0x02, 0x94, 0x04, 0x00, 0x00, /* Router Alert */
    0x16, 0x00, 0xf8, 0xfd,		/* v2 report, checksum */
    0xef, 0xff, 0x01, 0x02,		/* group */
};

/* ------------------------------------------------------- checksum */

Test(csum, rfc1071_worked_example)
{
	/* RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2. */
	uint8_t b[10] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	cr_assert_eq(ref_sum(b, 8, 0), 0xddf2);
	cr_assert_eq(pkt_csum(b, 8), (uint16_t)~0xddf2u);
	cr_assert_eq(pkt_csum(b, 8), 0x220d);
	/* The data followed by its checksum sums to all ones: verifies as 0. */
	b[8] = 0x22;
	b[9] = 0x0d;
	cr_assert_eq(pkt_csum(b, 10), 0);
	/* Odd length: the last byte is the high byte of a zero-padded word. */
	/* 0001 + f203 + f4f5 + f600 = 0x2dcf9, folded 0xdcfb. */
	cr_assert_eq(pkt_csum(b, 7), (uint16_t)~0xdcfbu);
	cr_assert_eq(pkt_csum(b, 0), 0xFFFF);
}

Test(csum, matches_reference_every_length_and_alignment)
{
	static uint8_t buf[70000];
	struct ordo_prng r;
	ordo_prng_seed(&r, 1071);
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)ordo_prng_next(&r);
	for (uint32_t off = 0; off < 8; off++)
		for (uint32_t len = 0; len <= 700; len++)
			cr_assert_eq(pkt_csum(buf + off, len), ref_csum(buf + off, len),
				     "off %u len %u", off, len);
	for (uint32_t len = 65530; len <= 65535; len++)
		cr_assert_eq(pkt_csum(buf + 3, len), ref_csum(buf + 3, len), "len %u", len);
	/* All ones: every add carries. */
	memset(buf, 0xFF, sizeof buf);
	for (uint32_t len = 0; len <= 300; len++)
		cr_assert_eq(pkt_csum(buf + 1, len), ref_csum(buf + 1, len), "len %u", len);
	cr_assert_eq(pkt_csum(buf, 65535), ref_csum(buf, 65535));
}

/* ------------------------------------------------------- golden frames */

Test(golden, arp_request_and_reply_built_byte_for_byte)
{
	uint8_t f[FRAME_MAX];
	memset(f, 0xEE, sizeof f);
	cr_assert_eq(pkt_build_arp(f, 1, MAC_A, IP_A, NULL, IP_B), 60);
	cr_assert_arr_eq(f, ARP_REQ, 60);
	memset(f, 0xEE, sizeof f);
	/* A request ignores tha even when given: the target MAC is unknown. */
	cr_assert_eq(pkt_build_arp(f, 1, MAC_A, IP_A, MAC_B, IP_B), 60);
	cr_assert_arr_eq(f, ARP_REQ, 60);
	memset(f, 0xEE, sizeof f);
	cr_assert_eq(pkt_build_arp(f, 2, MAC_B, IP_B, MAC_A, IP_A), 60);
	cr_assert_arr_eq(f, ARP_REP, 60);
}

Test(golden, arp_request_and_reply_parsed)
{
	struct pkt_info in;
	cr_assert_eq(parse_guarded(ARP_REQ, 60, 0, &in), PKT_ARP_REQUEST);
	cr_assert_eq(in.kind, PKT_ARP_REQUEST);
	cr_assert_eq(in.arp_op, 1);
	cr_assert_arr_eq(in.dst_mac, BCAST, 6);
	cr_assert_arr_eq(in.src_mac, MAC_A, 6);
	cr_assert_arr_eq(in.arp_sha, MAC_A, 6);
	cr_assert_eq(in.arp_spa, IP_A);
	cr_assert_eq(in.arp_tpa, IP_B);
	static const uint8_t zero[6] = {0};
	cr_assert_arr_eq(in.arp_tha, zero, 6);

	/* Without padding, as a host stack may hand it over. */
	cr_assert_eq(parse_guarded(ARP_REP, PKT_ARP_FRAME_BYTES, 0, &in), PKT_ARP_REPLY);
	cr_assert_eq(in.arp_op, 2);
	cr_assert_arr_eq(in.arp_sha, MAC_B, 6);
	cr_assert_eq(in.arp_spa, IP_B);
	cr_assert_arr_eq(in.arp_tha, MAC_A, 6);
	cr_assert_eq(in.arp_tpa, IP_A);
	cr_assert_arr_eq(in.dst_mac, MAC_A, 6);
	cr_assert_arr_eq(in.src_mac, MAC_B, 6);
}

Test(golden, udp_checksums_by_reference)
{
	/* The hand-written checksums agree with the reference implementation. */
	uint8_t f[47];
	memcpy(f, UDP_GOLDEN, 47);
	put16(f + 24, 0);
	cr_assert_eq(ref_csum(f + 14, 20), 0xa544);
	put16(f + 40, 0);
	cr_assert_eq(ref_udp_csum(IP_A, IP_B, f + 34, 13), 0x4dcd);
	cr_assert_eq(ref_csum(UDP_GOLDEN + 14, 20), 0, "a valid header sums to all ones");
}

Test(golden, udp_built_byte_for_byte)
{
	uint8_t f[FRAME_MAX];
	memset(f, 0xEE, sizeof f);
	memcpy(f + PKT_UDP_HEADROOM, "ordo!", 5);
	uint32_t n = pkt_build_udp(f, MAC_A, MAC_B, IP_A, IP_B, PORT_A, PORT_B, 5, 0x1234, 0);
	cr_assert_eq(n, 47);
	cr_assert_arr_eq(f, UDP_GOLDEN, 47);
	cr_assert_eq(f[47], 0xEE, "nothing written past the frame");
}

Test(golden, udp_parsed)
{
	struct pkt_info in;
	cr_assert_eq(parse_guarded(UDP_GOLDEN, 47, 0, &in), PKT_UDP);
	cr_assert_arr_eq(in.src_mac, MAC_A, 6);
	cr_assert_arr_eq(in.dst_mac, MAC_B, 6);
	cr_assert_eq(in.src_ip, IP_A);
	cr_assert_eq(in.dst_ip, IP_B);
	cr_assert_eq(in.ttl, 64);
	cr_assert_eq(in.src_port, PORT_A);
	cr_assert_eq(in.dst_port, PORT_B);
	cr_assert_eq(in.payload_off, 42);
	cr_assert_eq(in.payload_len, 5);
	cr_assert_arr_eq(UDP_GOLDEN + in.payload_off, "ordo!", 5);
}

Test(golden, echo_request_and_igmp_queries_parsed)
{
	struct pkt_info in;
	cr_assert_eq(parse_guarded(ECHO_REQ, 60, 0, &in), PKT_ICMP_ECHO);
	cr_assert_eq(in.src_ip, IP_B);
	cr_assert_eq(in.dst_ip, IP_A);
	cr_assert_eq(in.payload_off, 34);
	cr_assert_eq(in.payload_len, 16, "ICMP message bytes, not the padding");
	cr_assert_eq(parse_guarded(ECHO_REQ, 50, 0, &in), PKT_ICMP_ECHO);

	cr_assert_eq(parse_guarded(IGMP_GQ, 60, 0, &in), PKT_IGMP_QUERY);
	cr_assert_eq(in.igmp_group, 0);
	cr_assert_eq(in.src_ip, IP_R);
	cr_assert_eq(in.dst_ip, 0xE0000001u);
	cr_assert_eq(in.ttl, 1);
	cr_assert_eq(parse_guarded(IGMP_GSQ, 60, 0, &in), PKT_IGMP_QUERY);
	cr_assert_eq(in.igmp_group, GROUP);
}

/* ------------------------------------------------------- UDP */

Test(udp, round_trip_every_size_without_offload)
{
	uint8_t f[FRAME_MAX];
	for (uint32_t plen = 0; plen <= 1472; plen += (plen < 80 ? 1 : 37)) {
		uint32_t n = make_udp(f, plen, 0);
		cr_assert_eq(n, PKT_UDP_HEADROOM + plen);
		/* Independent check of both checksums. */
		cr_assert_eq(ref_csum(f + 14, 20), 0, "ip csum, plen %u", plen);
		cr_assert_eq(
		    ref_sum(f + 34, 8 + plen, ref_pseudo(IP_A, IP_B, (uint16_t)(8 + plen))), 0xFFFF,
		    "udp csum, plen %u", plen);
		cr_assert_eq(be16(f + 18), 0x1234);
		cr_assert_eq(be16(f + 20), 0x4000, "DF");
		cr_assert_eq(f[22], 64);
		cr_assert_eq(f[23], 17);
		struct pkt_info in;
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP, "plen %u", plen);
		cr_assert_eq(in.payload_off, PKT_UDP_HEADROOM);
		cr_assert_eq(in.payload_len, plen);
		cr_assert_eq(in.src_port, PORT_A);
		cr_assert_eq(in.dst_port, PORT_B);
		cr_assert_eq(in.src_ip, IP_A);
		cr_assert_eq(in.dst_ip, IP_B);
		for (uint32_t i = 0; i < plen; i++)
			cr_assert_eq(f[in.payload_off + i], (uint8_t)(i * 7 + 3));
	}
}

Test(udp, ip_checksum_offload)
{
	uint8_t f[FRAME_MAX];
	uint32_t n = make_udp(f, 100, PKT_TX_IP_CSUM_OFFLOAD);
	cr_assert_eq(be16(f + 24), 0, "left for the NIC");
	cr_assert_eq(ref_sum(f + 34, 108, ref_pseudo(IP_A, IP_B, 108)), 0xFFFF, "udp complete");
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
	cr_assert_eq(parse_guarded(f, n, PKT_RX_IP_CSUM_GOOD, &in), PKT_UDP);
	/* The NIC fills it in. */
	put16(f + 24, ref_csum(f + 14, 20));
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
}

Test(udp, l4_checksum_offload_stores_pseudo_header_sum)
{
	uint8_t f[FRAME_MAX];
	for (uint32_t plen = 0; plen < 64; plen++) {
		uint32_t n = make_udp(f, plen, PKT_TX_L4_CSUM_OFFLOAD);
		uint16_t ulen = (uint16_t)(8 + plen);
		/* As rte_ipv4_phdr_cksum: folded, not complemented. */
		cr_assert_eq(be16(f + 40), ref_pseudo(IP_A, IP_B, ulen), "plen %u", plen);
		cr_assert_eq(ref_csum(f + 14, 20), 0, "IPv4 checksum still computed");
		struct pkt_info in;
		cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_UDP);
		cr_assert_eq(in.payload_len, plen);
		/* What the NIC does: sum the datagram over the seeded field and
		 * store the complement. The result verifies in software. */
		uint16_t c = ref_csum(f + 34, ulen);
		put16(f + 40, c ? c : 0xFFFF);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP, "plen %u", plen);
		/* And it is the checksum a software build writes. */
		uint8_t g[FRAME_MAX];
		make_udp(g, plen, 0);
		cr_assert_arr_eq(f, g, n);
	}
}

Test(udp, both_offloads)
{
	uint8_t f[FRAME_MAX];
	uint32_t n = make_udp(f, 200, PKT_TX_IP_CSUM_OFFLOAD | PKT_TX_L4_CSUM_OFFLOAD);
	cr_assert_eq(be16(f + 24), 0);
	cr_assert_eq(be16(f + 40), ref_pseudo(IP_A, IP_B, 208));
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n, PKT_RX_IP_CSUM_GOOD | PKT_RX_L4_CSUM_GOOD, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 200);
	cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_BAD_IPV4);
}

Test(udp, computed_zero_checksum_sent_as_all_ones)
{
	/* Choose the last payload word so the datagram sums to all ones: the
	 * checksum is then 0, which RFC 768 transmits as 0xFFFF. */
	uint8_t f[FRAME_MAX];
	memset(f + PKT_UDP_HEADROOM, 0x5A, 10);
	f[PKT_UDP_HEADROOM + 8] = 0;
	f[PKT_UDP_HEADROOM + 9] = 0;
	uint32_t n = pkt_build_udp(f, MAC_A, MAC_B, IP_A, IP_B, PORT_A, PORT_B, 10, 1, 0);
	uint16_t c = be16(f + 40);
	cr_assert_neq(c, 0xFFFF, "this payload does not already hit the edge");
	put16(f + PKT_UDP_HEADROOM + 8, c);
	n = pkt_build_udp(f, MAC_A, MAC_B, IP_A, IP_B, PORT_A, PORT_B, 10, 1, 0);
	cr_assert_eq(be16(f + 40), 0xFFFF);
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	put16(f + 40, 0);
	cr_assert_eq(ref_udp_csum(IP_A, IP_B, f + 34, 18), 0, "the true checksum is 0");
}

Test(udp, zero_checksum_received_is_not_verified)
{
	uint8_t f[FRAME_MAX];
	uint32_t n = make_udp(f, 32, 0);
	put16(f + 40, 0);
	f[PKT_UDP_HEADROOM + 5] ^= 0xFF; /* would fail any checksum */
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 32);
}

Test(udp, bad_checksum)
{
	uint8_t f[FRAME_MAX];
	uint32_t n = make_udp(f, 32, 0);
	struct pkt_info in;
	for (uint32_t i = 34; i < n; i++) {
		if (i == 38 || i == 39)
			continue; /* the length: other checks */
		f[i] ^= 0x10;
		enum pkt_kind k = parse_guarded(f, n, 0, &in);
		cr_assert_eq(k, PKT_BAD_UDP, "byte %u: %s", i, pkt_kind_name(k));
		cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_UDP, "byte %u", i);
		f[i] ^= 0x10;
	}
	/* The pseudo-header covers the addresses: a changed source IPv4 with a
	 * correct header checksum fails the UDP checksum. */
	f[29] ^= 1;
	fix_ip_csum(f + 14);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_UDP);
}

Test(udp, lengths)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 20, 0);
	/* UDP length below 8, above the IPv4 payload. */
	for (uint32_t ulen = 0; ulen < 8; ulen++) {
		put16(f + 38, (uint16_t)ulen);
		cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_BAD_UDP);
	}
	put16(f + 38, 29);
	cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_BAD_UDP);
	put16(f + 38, 0xFFFF);
	cr_assert_eq(parse_guarded(f, n, PKT_RX_L4_CSUM_GOOD, &in), PKT_BAD_UDP);
	/* Shorter than the IPv4 payload: the rest is not the datagram's. */
	put16(f + 38, 20);
	fix_udp_csum(f + 14);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 12);
	/* Exactly 8: an empty datagram. */
	put16(f + 38, 8);
	fix_udp_csum(f + 14);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 0);
	/* An IPv4 payload too short for a UDP header. */
	for (uint32_t pl = 0; pl < 8; pl++) {
		put16(f + 16, (uint16_t)(20 + pl));
		fix_ip_csum(f + 14);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_UDP, "payload %u", pl);
	}
}

Test(udp, ethernet_padding_and_trailing_bytes)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 3, 0);
	cr_assert_eq(n, 45);
	/* Padding need not be zero (it is not covered by any checksum). */
	memset(f + n, 0xAA, 60 - n);
	cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 3);
	cr_assert_eq(in.payload_off, 42);
	/* A jumbo buffer with a small datagram. */
	memset(f + n, 0xAA, 1500);
	cr_assert_eq(parse_guarded(f, 1500, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_len, 3);
}

Test(udp, multicast_and_broadcast_destinations)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint8_t gmac[6];
	pkt_mcast_mac(GROUP, gmac);
	uint32_t n = pkt_build_udp(f, MAC_A, gmac, IP_A, GROUP, PORT_A, PORT_B, 16, 9, 0);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_arr_eq(in.dst_mac, gmac, 6);
	cr_assert_eq(in.dst_ip, GROUP);
	cr_assert(pkt_ip_is_multicast(in.dst_ip));
	n = pkt_build_udp(f, MAC_A, BCAST, IP_A, 0xFFFFFFFFu, PORT_A, PORT_B, 16, 9, 0);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_arr_eq(in.dst_mac, BCAST, 6);
	cr_assert_eq(in.dst_ip, 0xFFFFFFFFu);
	cr_assert(!pkt_ip_is_multicast(in.dst_ip));
	/* Subnet broadcast. */
	n = pkt_build_udp(f, MAC_A, BCAST, IP_A, 0xC0A801FFu, PORT_A, PORT_B, 0, 9, 0);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_eq(in.dst_ip, 0xC0A801FFu);
}

/* ------------------------------------------------------- Ethernet, IPv4 */

Test(eth, short_frames_and_other_ethertypes)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 20, 0);
	for (uint32_t len = 0; len < 14; len++) {
		cr_assert_eq(parse_guarded(f, len, 0, &in), PKT_BAD_ETH);
		cr_assert_eq(in.kind, PKT_BAD_ETH);
	}
	cr_assert_eq(pkt_parse(NULL, 0, 0, &in), PKT_BAD_ETH);
	static const uint16_t other[] = {0x86DD /* IPv6 */,
					 0x88CC /* LLDP */,
					 0x8035 /* RARP */,
					 0x88A8 /* 802.1ad */,
					 0x0600,
					 0xFFFF};
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		put16(f + 12, other[i]);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED, "0x%04x", other[i]);
		cr_assert_arr_eq(in.src_mac, MAC_A, 6);
	}
	/* IEEE 802.3 length fields (LLC): not Ethernet II. */
	for (uint32_t t = 0; t < 0x0600; t += 0x41) {
		put16(f + 12, (uint16_t)t);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED, "0x%04x", t);
	}
	put16(f + 12, 0x05FF);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED);
	put16(f + 12, 0x0800);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
}

Test(ipv4, header_fields)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 40, 0);
	uint8_t *ip = f + 14;
	/* Version. */
	for (uint32_t v = 0; v < 16; v++) {
		if (v == 4)
			continue;
		ip[0] = (uint8_t)(v << 4 | 5);
		fix_ip_csum(ip);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4, "version %u", v);
	}
	/* IHL below 5. */
	for (uint32_t ihl = 0; ihl < 5; ihl++) {
		ip[0] = (uint8_t)(0x40 | ihl);
		cr_assert_eq(parse_guarded(f, n, PKT_RX_IP_CSUM_GOOD, &in), PKT_BAD_IPV4, "ihl %u",
			     ihl);
	}
	ip[0] = 0x45;
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	/* IHL beyond the total length. */
	ip[0] = 0x4F; /* 60 bytes */
	put16(ip + 2, 56);
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
	put16(ip + 2, 60);
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_UDP, "IP payload of 0 bytes");
	/* IHL beyond the frame. */
	cr_assert_eq(parse_guarded(f, 14 + 56, PKT_RX_IP_CSUM_GOOD, &in), PKT_BAD_IPV4);
	ip[0] = 0x45;
	/* Total length below the header, above the frame. */
	for (uint32_t tot = 0; tot < 20; tot++) {
		put16(ip + 2, (uint16_t)tot);
		fix_ip_csum(ip);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4, "total %u", tot);
	}
	put16(ip + 2, (uint16_t)(n - 14 + 1));
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
	put16(ip + 2, 0xFFFF);
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
	put16(ip + 2, (uint16_t)(n - 14));
	fix_ip_csum(ip);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
}

Test(ipv4, header_checksum)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 40, 0);
	for (uint32_t i = 14; i < 34; i++) {
		for (uint32_t bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1u << bit);
			enum pkt_kind k = parse_guarded(f, n, 0, &in);
			cr_assert_eq(k, PKT_BAD_IPV4, "byte %u bit %u: %s", i, bit,
				     pkt_kind_name(k));
			f[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Trusted when the NIC says so. */
	f[24] ^= 0xFF;
	cr_assert_eq(parse_guarded(f, n, PKT_RX_IP_CSUM_GOOD, &in), PKT_UDP);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
}

Test(ipv4, options_accepted)
{
	/* IHL 7: a Router Alert and a NOP-padded option before the UDP header. */
	uint8_t g[FRAME_MAX], f[FRAME_MAX];
	uint32_t n = make_udp(g, 30, 0);
	memcpy(f, g, 34);
	f[34] = 0x94;
	f[35] = 4;
	f[36] = 0;
	f[37] = 0;
	f[38] = 1; /* NOP */
	f[39] = 1;
	f[40] = 1;
	f[41] = 0; /* end of options */
	memcpy(f + 42, g + 34, n - 34);
	f[14] = 0x47;
	put16(f + 16, (uint16_t)(n - 14 + 8));
	fix_ip_csum(f + 14);
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n + 8, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_off, 50);
	cr_assert_eq(in.payload_len, 30);
	cr_assert_arr_eq(f + 50, g + 42, 30);
}

Test(ipv4, fragments_dropped)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 40, 0);
	static const uint16_t frag[] = {0x2000 /* MF, first */, 0x0001 /* last, offset 8 */,
					0x2010 /* middle */, 0x6000 /* DF | MF */,
					0x1FFF /* max offset */};
	for (size_t i = 0; i < sizeof frag / sizeof frag[0]; i++) {
		put16(f + 20, frag[i]);
		fix_ip_csum(f + 14);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_FRAGMENT, "0x%04x", frag[i]);
		cr_assert_eq(in.src_ip, IP_A, "addresses filled for counting");
		/* A fragment with a bad header checksum is a bad header. */
		f[24] ^= 1;
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_BAD_IPV4);
	}
	/* DF alone, or no flags: whole datagrams. */
	put16(f + 20, 0x0000);
	fix_ip_csum(f + 14);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	put16(f + 20, 0x4000);
	fix_ip_csum(f + 14);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
}

Test(ipv4, other_protocols_ignored)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = make_udp(f, 40, 0);
	static const uint8_t protos[] = {0, 4, 6 /* TCP */, 41, 47, 50, 89, 132, 255};
	for (size_t i = 0; i < sizeof protos; i++) {
		f[23] = protos[i];
		fix_ip_csum(f + 14);
		cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED, "proto %u", protos[i]);
		cr_assert_eq(in.src_ip, IP_A);
	}
}

/* ------------------------------------------------------- VLAN */

/* Inserts an 802.1Q tag (VLAN vid) after the MACs of f[0 .. n). */
static uint32_t add_vlan(uint8_t *f, uint32_t n, uint16_t vid)
{
	memmove(f + 16, f + 12, n - 12);
	put16(f + 12, 0x8100);
	put16(f + 14, vid);
	return n + 4;
}

Test(vlan, one_tag_skipped)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = add_vlan(f, make_udp(f, 25, 0), 42);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);
	cr_assert_eq(in.payload_off, 46);
	cr_assert_eq(in.payload_len, 25);
	cr_assert_eq(in.dst_port, PORT_B);
	cr_assert_arr_eq(in.src_mac, MAC_A, 6);
	for (uint32_t i = 0; i < 25; i++)
		cr_assert_eq(f[46 + i], (uint8_t)(i * 7 + 3));
	/* Priority bits and VLAN 0 (priority tagging) too. */
	put16(f + 14, 0xE000);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_UDP);

	memcpy(f, ARP_REQ, 60);
	n = add_vlan(f, 60, 7);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_ARP_REQUEST);
	cr_assert_eq(in.arp_tpa, IP_B);
}

Test(vlan, truncated_and_stacked_tags)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	uint32_t n = add_vlan(f, make_udp(f, 25, 0), 42);
	for (uint32_t len = 14; len < 18; len++)
		cr_assert_eq(parse_guarded(f, len, 0, &in), PKT_BAD_ETH, "len %u", len);
	/* Inner type missing its IPv4 header. */
	cr_assert_eq(parse_guarded(f, 18, 0, &in), PKT_BAD_IPV4);
	/* Q-in-Q: only one tag is skipped. */
	n = add_vlan(f, n, 43);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED);
	/* A tag whose inner type is IPv6. */
	n = add_vlan(f, make_udp(f, 25, 0), 42);
	put16(f + 16, 0x86DD);
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED);
}

/* ------------------------------------------------------- ARP */

Test(arp, malformed)
{
	uint8_t f[60];
	struct pkt_info in;
	struct {
		uint32_t off;
		uint8_t val;
	} bad[] = {
	    {14, 0x01}, /* htype 0x0101 */
	    {15, 0x06}, /* htype 6 (IEEE 802) */
	    {16, 0x86}, /* ptype 0x86DD */
	    {17, 0x06}, /* ptype 0x0806 */
	    {18, 0x08}, /* hlen 8 */
	    {19, 0x10}, /* plen 16 */
	    {21, 0x00}, /* op 0 */
	    {21, 0x03}, /* op 3 (RARP request) */
	    {21, 0x04}, /* op 4 */
	    {20, 0x01}, /* op 0x0101 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memcpy(f, ARP_REQ, 60);
		f[bad[i].off] = bad[i].val;
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_BAD_ARP, "case %zu", i);
	}
	for (uint32_t len = 14; len < PKT_ARP_FRAME_BYTES; len++)
		cr_assert_eq(parse_guarded(ARP_REQ, len, 0, &in), PKT_BAD_ARP, "len %u", len);
	cr_assert_eq(parse_guarded(ARP_REQ, PKT_ARP_FRAME_BYTES, 0, &in), PKT_ARP_REQUEST);
}

/* ------------------------------------------------------- truncation */

/* Parses every prefix of f[0 .. n) against the guard page: below `whole`
 * bytes it must be a drop kind (the one expected for that length), from
 * `whole` on the same verdict as the whole frame. */
static void truncate_all(const uint8_t *f, uint32_t n, uint32_t whole, enum pkt_kind want,
			 enum pkt_kind (*expect_short)(uint32_t len))
{
	struct pkt_info in;
	for (uint32_t len = 0; len <= n; len++) {
		enum pkt_kind k = parse_guarded(f, len, 0, &in);
		cr_assert(is_kind(k), "len %u: kind %d", len, k);
		cr_assert_eq(in.kind, k);
		if (len < whole) {
			cr_assert(is_bad(k), "len %u: %s", len, pkt_kind_name(k));
			cr_assert_eq(k, expect_short(len), "len %u: %s", len, pkt_kind_name(k));
		} else {
			cr_assert_eq(k, want, "len %u: %s", len, pkt_kind_name(k));
		}
	}
}

static enum pkt_kind short_ipv4(uint32_t len)
{
	return len < 14 ? PKT_BAD_ETH : PKT_BAD_IPV4;
}

static enum pkt_kind short_vlan_ipv4(uint32_t len)
{
	return len < 18 ? PKT_BAD_ETH : PKT_BAD_IPV4;
}

static enum pkt_kind short_arp(uint32_t len)
{
	return len < 14 ? PKT_BAD_ETH : PKT_BAD_ARP;
}

Test(truncation, udp_every_offset)
{
	uint8_t f[FRAME_MAX];
	for (uint32_t plen = 0; plen < 300; plen += 29) {
		uint32_t n = make_udp(f, plen, 0);
		truncate_all(f, n, n, PKT_UDP, short_ipv4);
	}
	/* Padded: any length from the end of the IPv4 packet on is whole. */
	uint32_t n = make_udp(f, 2, 0);
	memset(f + n, 0, 60 - n);
	truncate_all(f, 60, n, PKT_UDP, short_ipv4);
	/* Tagged. */
	n = add_vlan(f, make_udp(f, 33, 0), 5);
	truncate_all(f, n, n, PKT_UDP, short_vlan_ipv4);
}

Test(truncation, arp_icmp_igmp_every_offset)
{
	truncate_all(ARP_REQ, 60, PKT_ARP_FRAME_BYTES, PKT_ARP_REQUEST, short_arp);
	truncate_all(ARP_REP, 60, PKT_ARP_FRAME_BYTES, PKT_ARP_REPLY, short_arp);
	truncate_all(ECHO_REQ, 60, 50, PKT_ICMP_ECHO, short_ipv4);
	truncate_all(IGMP_GQ, 60, 46, PKT_IGMP_QUERY, short_ipv4);
	truncate_all(IGMP_REPORT, 60, 46, PKT_IGNORED, short_ipv4);
}

Test(truncation, random_corruption_never_crashes)
{
	/* Seeded: a failure prints the seed and the iteration. */
	const uint64_t seed = 0x0BADF00Du;
	struct ordo_prng r;
	ordo_prng_seed(&r, seed);
	uint8_t base[5][FRAME_MAX], f[FRAME_MAX];
	uint32_t blen[5];
	blen[0] = make_udp(base[0], 100, 0);
	memcpy(base[1], ARP_REQ, 60);
	blen[1] = 60;
	memcpy(base[2], ECHO_REQ, 60);
	blen[2] = 60;
	memcpy(base[3], IGMP_GSQ, 60);
	blen[3] = 60;
	blen[4] = add_vlan(base[4], make_udp(base[4], 64, 0), 1);
	uint32_t counts[32] = {0};
	for (uint32_t it = 0; it < 200000; it++) {
		uint32_t b = (uint32_t)ordo_prng_below(&r, 5);
		uint32_t n = blen[b];
		memcpy(f, base[b], n);
		uint32_t flips = (uint32_t)ordo_prng_below(&r, 4);
		for (uint32_t j = 0; j < flips; j++)
			f[ordo_prng_below(&r, n)] ^= (uint8_t)(1u + ordo_prng_below(&r, 255));
		if (ordo_prng_below(&r, 4) == 0) {
			/* Keep the checksums right so deeper layers see the damage. */
			uint32_t l3 = be16(f + 12) == 0x8100 ? 18 : 14;
			if (n >= l3 + 20 && (f[l3] & 0xF) >= 5 && l3 + (f[l3] & 0xFu) * 4 <= n)
				fix_ip_csum(f + l3);
		}
		uint32_t len =
		    ordo_prng_below(&r, 3) == 0 ? (uint32_t)ordo_prng_below(&r, n + 1) : n;
		uint32_t rx = (uint32_t)ordo_prng_below(&r, 4);
		struct pkt_info in;
		enum pkt_kind k = parse_guarded(f, len, rx, &in);
		cr_assert(is_kind(k), "seed %#lx it %u: kind %d", (unsigned long)seed, it, k);
		counts[k]++;
		if (k == PKT_UDP || k == PKT_ICMP_ECHO)
			cr_assert_leq((uint64_t)in.payload_off + in.payload_len, len,
				      "seed %#lx it %u", (unsigned long)seed, it);
		if (k == PKT_ICMP_ECHO) {
			/* And a reply can be built from whatever passed. */
			uint8_t out[FRAME_MAX];
			uint32_t rn =
			    pkt_build_icmp_echo_reply(out, sizeof out, guarded(f, len), &in, MAC_A);
			cr_assert_geq(rn, 60, "seed %#lx it %u", (unsigned long)seed, it);
			uint32_t icmp = be16(out + 12) == 0x8100 ? 38 : 34;
			cr_assert_eq(pkt_csum(out + icmp, in.payload_len), 0);
			cr_assert_eq(pkt_csum(out + icmp - 20, 20), 0);
		}
	}
	/* The mix reached the deep layers. */
	cr_assert_gt(counts[PKT_UDP], 0);
	cr_assert_gt(counts[PKT_BAD_UDP], 0);
	cr_assert_gt(counts[PKT_BAD_IPV4], 0);
	cr_assert_gt(counts[PKT_BAD_ARP], 0);
	cr_assert_gt(counts[PKT_ICMP_ECHO], 0);
	cr_assert_gt(counts[PKT_BAD_ICMP], 0);
	cr_assert_gt(counts[PKT_IGMP_QUERY], 0);
	cr_assert_gt(counts[PKT_FRAGMENT], 0);
}

/* ------------------------------------------------------- ICMP */

static void check_echo_reply(const uint8_t *out, uint32_t rn, uint32_t l3, uint32_t msg_len,
			     const uint8_t *req_msg)
{
	cr_assert_arr_eq(out, MAC_B, 6, "to the requester");
	cr_assert_arr_eq(out + 6, MAC_A, 6, "from us");
	const uint8_t *ip = out + l3;
	cr_assert_eq(ip[0], 0x45);
	cr_assert_eq(be16(ip + 2), 20 + msg_len);
	cr_assert_eq(ip[8], 64);
	cr_assert_eq(ip[9], 1);
	cr_assert_eq(ref_csum(ip, 20), 0, "IPv4 checksum valid");
	cr_assert_eq(be32(ip + 12), IP_A);
	cr_assert_eq(be32(ip + 16), IP_B);
	const uint8_t *m = ip + 20;
	cr_assert_eq(m[0], 0, "echo reply");
	cr_assert_eq(m[1], 0);
	cr_assert_eq(ref_csum(m, msg_len), 0, "ICMP checksum valid");
	cr_assert_arr_eq(m + 4, req_msg + 4, msg_len - 4, "identifier, sequence, data");
	uint32_t end = l3 + 20 + msg_len;
	cr_assert_eq(rn, end < 60 ? 60 : end);
	for (uint32_t i = end; i < rn; i++)
		cr_assert_eq(out[i], 0, "padding");
}

Test(icmp, echo_reply_golden)
{
	struct pkt_info in;
	cr_assert_eq(pkt_parse(ECHO_REQ, 60, 0, &in), PKT_ICMP_ECHO);
	uint8_t out[FRAME_MAX];
	memset(out, 0xEE, sizeof out);
	uint32_t rn = pkt_build_icmp_echo_reply(out, sizeof out, ECHO_REQ, &in, MAC_A);
	cr_assert_eq(rn, 60, "the request's length");
	check_echo_reply(out, rn, 14, 16, ECHO_REQ + 34);
	cr_assert_eq(be16(out + 36), 0x2c27, "checksum computed outside this file");
	cr_assert_eq(be16(out + 38), 0x4242);
	cr_assert_eq(be16(out + 40), 1);
	cr_assert_arr_eq(out + 42, "abcdefgh", 8);
	cr_assert_eq(out[60], 0xEE, "nothing past the frame");
	/* The reply is an ICMP message ordo does not answer. */
	cr_assert_eq(pkt_parse(out, rn, 0, &in), PKT_IGNORED);
	cr_assert_eq(in.src_ip, IP_A);
}

Test(icmp, echo_reply_sizes_cap_and_in_place)
{
	uint8_t req[FRAME_MAX], out[FRAME_MAX];
	for (uint32_t dlen = 0; dlen <= 1472; dlen += (dlen < 40 ? 1 : 97)) {
		uint32_t mlen = 8 + dlen, n = 34 + mlen;
		memcpy(req, ECHO_REQ, 34);
		put16(req + 16, (uint16_t)(20 + mlen));
		fix_ip_csum(req + 14);
		uint8_t *m = req + 34;
		m[0] = 8;
		m[1] = 0;
		put16(m + 2, 0);
		put16(m + 4, (uint16_t)(dlen * 3));
		put16(m + 6, (uint16_t)dlen);
		for (uint32_t i = 0; i < dlen; i++)
			m[8 + i] = (uint8_t)(i ^ 0x5C);
		put16(m + 2, ref_csum(m, mlen));
		uint32_t flen = n < 60 ? 60 : n;
		memset(req + n, 0, flen - n);
		struct pkt_info in;
		cr_assert_eq(parse_guarded(req, flen, 0, &in), PKT_ICMP_ECHO, "dlen %u", dlen);
		cr_assert_eq(in.payload_len, mlen);
		uint32_t rn = pkt_build_icmp_echo_reply(out, flen, req, &in, MAC_A);
		cr_assert_eq(rn, flen, "dlen %u", dlen);
		check_echo_reply(out, rn, 14, mlen, m);
		cr_assert_eq(pkt_build_icmp_echo_reply(out, flen - 1, req, &in, MAC_A), 0,
			     "cap too small");
		/* In place: the same bytes. */
		uint8_t copy[FRAME_MAX];
		memcpy(copy, out, rn);
		cr_assert_eq(pkt_build_icmp_echo_reply(req, flen, req, &in, MAC_A), rn);
		cr_assert_arr_eq(req, copy, rn, "dlen %u", dlen);
	}
}

Test(icmp, echo_reply_keeps_vlan_drops_options)
{
	uint8_t req[FRAME_MAX], out[FRAME_MAX];
	struct pkt_info in;
	memcpy(req, ECHO_REQ, 60);
	uint32_t n = add_vlan(req, 60, 0x0123);
	cr_assert_eq(parse_guarded(req, n, 0, &in), PKT_ICMP_ECHO);
	cr_assert_eq(in.payload_off, 38);
	uint32_t rn = pkt_build_icmp_echo_reply(out, sizeof out, req, &in, MAC_A);
	cr_assert_eq(rn, 60, "54 bytes, padded");
	cr_assert_eq(be16(out + 12), 0x8100);
	cr_assert_eq(be16(out + 14), 0x0123, "same VLAN");
	cr_assert_eq(be16(out + 16), 0x0800);
	check_echo_reply(out, rn, 18, 16, ECHO_REQ + 34);

	/* IP options (a Record Route with no room) are accepted, not echoed. */
	memcpy(req, ECHO_REQ, 34);
	req[14] = 0x46;
	req[34] = 7;
	req[35] = 3;
	req[36] = 4;
	req[37] = 0; /* end */
	memcpy(req + 38, ECHO_REQ + 34, 16);
	put16(req + 16, 40);
	fix_ip_csum(req + 14);
	memset(req + 54, 0, 6);
	cr_assert_eq(parse_guarded(req, 60, 0, &in), PKT_ICMP_ECHO);
	cr_assert_eq(in.payload_off, 38);
	rn = pkt_build_icmp_echo_reply(out, sizeof out, req, &in, MAC_A);
	cr_assert_eq(rn, 60);
	check_echo_reply(out, rn, 14, 16, ECHO_REQ + 34);

	/* Not an echo request: nothing built. */
	cr_assert_eq(pkt_parse(UDP_GOLDEN, 47, 0, &in), PKT_UDP);
	cr_assert_eq(pkt_build_icmp_echo_reply(out, sizeof out, UDP_GOLDEN, &in, MAC_A), 0);
}

Test(icmp, malformed_and_other_types)
{
	uint8_t f[60];
	struct pkt_info in;
	/* Any damaged byte of the message fails its checksum. */
	for (uint32_t i = 34; i < 50; i++) {
		if (i == 34 || i == 35)
			continue; /* type, code: classified before the checksum */
		memcpy(f, ECHO_REQ, 60);
		f[i] ^= 0x01;
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_BAD_ICMP, "byte %u", i);
		/* The NIC's L4 flag does not cover ICMP. */
		cr_assert_eq(parse_guarded(f, 60, PKT_RX_L4_CSUM_GOOD, &in), PKT_BAD_ICMP);
	}
	/* Shorter than an echo header (IPv4 total length 20 .. 27). */
	for (uint32_t ml = 0; ml < 8; ml++) {
		memcpy(f, ECHO_REQ, 60);
		put16(f + 16, (uint16_t)(20 + ml));
		fix_ip_csum(f + 14);
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_BAD_ICMP, "message %u", ml);
	}
	/* Other types and codes (checksums right): not for ordo. */
	static const uint8_t tc[][2] = {{0, 0}, {3, 3}, {8, 1}, {11, 0}, {13, 0}, {5, 1}};
	for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
		memcpy(f, ECHO_REQ, 60);
		f[34] = tc[i][0];
		f[35] = tc[i][1];
		put16(f + 36, 0);
		put16(f + 36, ref_csum(f + 34, 16));
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_IGNORED, "%u/%u", tc[i][0],
			     tc[i][1]);
	}
}

/* ------------------------------------------------------- IGMP */

Test(igmp, report_built_byte_for_byte)
{
	uint8_t f[FRAME_MAX];
	memset(f, 0xEE, sizeof f);
	uint32_t n = pkt_build_igmp_report(f, MAC_A, IP_A, GROUP);
	cr_assert_eq(n, 60);
	cr_assert_arr_eq(f, IGMP_REPORT, 60);
	/* The properties, checked one by one. */
	uint8_t gmac[6] = {0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02};
	cr_assert_arr_eq(f, gmac, 6, "group MAC");
	cr_assert_eq(f[14], 0x46, "IHL 6: a 24-byte header");
	cr_assert_eq(be32(f + 34), 0x94040000u, "Router Alert");
	cr_assert_eq(f[22], 1, "TTL 1");
	cr_assert_eq(f[23], 2, "IGMP");
	cr_assert_eq(be32(f + 30), GROUP, "sent to the group");
	cr_assert_eq(ref_csum(f + 14, 24), 0, "IPv4 checksum");
	cr_assert_eq(f[38], 0x16, "v2 report");
	cr_assert_eq(ref_csum(f + 38, 8), 0, "IGMP checksum");
	cr_assert_eq(be32(f + 42), GROUP);
	for (uint32_t i = 46; i < 60; i++)
		cr_assert_eq(f[i], 0);
	cr_assert_eq(f[60], 0xEE);
	struct pkt_info in;
	cr_assert_eq(parse_guarded(f, n, 0, &in), PKT_IGNORED, "a report is not a query");
	cr_assert_eq(in.dst_ip, GROUP);
	cr_assert_eq(in.ttl, 1);
}

Test(igmp, multicast_mac)
{
	uint8_t mac[6];
	pkt_mcast_mac(0xE0000001u, mac); /* 224.0.0.1 */
	cr_assert_arr_eq(mac, ((uint8_t[]){0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}), 6);
	/* The 24th bit from the bottom is dropped (RFC 1112 §6.4): 224.128.0.1
	 * and 239.0.0.1 share 224.0.0.1's MAC. */
	pkt_mcast_mac(0xE0800001u, mac);
	cr_assert_arr_eq(mac, ((uint8_t[]){0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}), 6);
	pkt_mcast_mac(0xEF000001u, mac);
	cr_assert_arr_eq(mac, ((uint8_t[]){0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}), 6);
	pkt_mcast_mac(0xEFFFFFFFu, mac);
	cr_assert_arr_eq(mac, ((uint8_t[]){0x01, 0x00, 0x5e, 0x7f, 0xff, 0xff}), 6);
	pkt_mcast_mac(GROUP, mac);
	cr_assert_arr_eq(mac, ((uint8_t[]){0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02}), 6);
	cr_assert(pkt_ip_is_multicast(0xE0000000u));
	cr_assert(pkt_ip_is_multicast(0xEFFFFFFFu));
	cr_assert(!pkt_ip_is_multicast(0xDFFFFFFFu));
	cr_assert(!pkt_ip_is_multicast(0xF0000000u));
	/* The report for every group goes to that group's MAC. */
	uint8_t f[FRAME_MAX];
	for (uint32_t g = 0xE0000100u; g < 0xF0000000u; g += 0x00F1E3D7u) {
		pkt_build_igmp_report(f, MAC_A, IP_A, g);
		pkt_mcast_mac(g, mac);
		cr_assert_arr_eq(f, mac, 6);
		cr_assert_eq(f[0] & 1, 1, "a group address");
		cr_assert_eq(ref_csum(f + 14, 24), 0);
		cr_assert_eq(ref_csum(f + 38, 8), 0);
	}
}

Test(igmp, queries)
{
	uint8_t f[FRAME_MAX];
	struct pkt_info in;
	/* Bad IGMP checksum: no answer (RFC 2236 §2.3), no drop kind of its own. */
	memcpy(f, IGMP_GSQ, 60);
	f[45] ^= 1;
	cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_IGNORED);
	cr_assert_eq(in.igmp_group, 0);
	/* Truncated IGMP message. */
	for (uint32_t ml = 0; ml < 8; ml++) {
		memcpy(f, IGMP_GSQ, 60);
		put16(f + 16, (uint16_t)(24 + ml));
		fix_ip_csum(f + 14);
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_IGNORED, "message %u", ml);
	}
	/* An IGMPv3 query (12 bytes + sources) is a query too. */
	memcpy(f, IGMP_GSQ, 46);
	memset(f + 46, 0, 14);
	f[46] = 0x02; /* QRV 2 */
	f[47] = 125;  /* QQIC */
	put16(f + 16, 24 + 12);
	fix_ip_csum(f + 14);
	put16(f + 40, 0);
	put16(f + 40, ref_csum(f + 38, 12));
	cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_IGMP_QUERY);
	cr_assert_eq(in.igmp_group, GROUP);
	/* IGMPv1/v2 leave and v1 report: ignored. */
	static const uint8_t types[] = {0x12, 0x16, 0x17, 0x22};
	for (size_t i = 0; i < sizeof types; i++) {
		memcpy(f, IGMP_GSQ, 60);
		f[38] = types[i];
		put16(f + 40, 0);
		put16(f + 40, ref_csum(f + 38, 8));
		cr_assert_eq(parse_guarded(f, 60, 0, &in), PKT_IGNORED, "type 0x%02x", types[i]);
	}
}

/* ------------------------------------------------------- ARP cache */

#define SEC   (1000ull * 1000 * 1000)
#define TTL   (300 * SEC)
#define RETRY (1 * SEC)
#define T0    (1000 * SEC)

static const uint8_t MAC_C[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x03};

Test(arp_cache, resolve)
{
	struct pkt_arp_entry mem[8];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 8, TTL, RETRY);
	uint8_t mac[6] = {0};
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 1, mac), PKT_ARP_WAIT);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + RETRY / 2, mac), PKT_ARP_WAIT);
	pkt_arp_learn(&c, IP_B, MAC_B, T0 + 100);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 200, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_B, 6);
	/* Other addresses are independent. */
	cr_assert_eq(pkt_arp_lookup(&c, IP_R, T0 + 200, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 300, mac), PKT_ARP_RESOLVED);
	/* A refresh with a new MAC (the host moved) is used at once. */
	pkt_arp_learn(&c, IP_B, MAC_C, T0 + 400);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 500, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_C, 6);
	/* Learning without asking (a request's sender) fills a free entry. */
	pkt_arp_learn(&c, IP_A, MAC_A, T0);
	cr_assert_eq(pkt_arp_lookup(&c, IP_A, T0 + 1, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_A, 6);
}

Test(arp_cache, retry_timing)
{
	struct pkt_arp_entry mem[4];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 4, TTL, RETRY);
	uint8_t mac[6];
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0, mac), PKT_ARP_ASK);
	uint64_t asked = T0;
	uint32_t asks = 1;
	for (uint64_t t = T0; t < T0 + 10 * RETRY; t += RETRY / 8) {
		enum pkt_arp_lookup r = pkt_arp_lookup(&c, IP_B, t, mac);
		if (t >= asked + RETRY) {
			cr_assert_eq(r, PKT_ARP_ASK, "t %lu", (unsigned long)(t - T0));
			asked = t;
			asks++;
		} else {
			cr_assert_eq(r, PKT_ARP_WAIT, "t %lu", (unsigned long)(t - T0));
		}
	}
	cr_assert_eq(asks, 10, "one request per retry interval");
	/* Exactly at the boundary. */
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, asked + RETRY - 1, mac), PKT_ARP_WAIT);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, asked + RETRY, mac), PKT_ARP_ASK);
	uint32_t tries = 0;
	for (uint32_t i = 0; i < 4; i++)
		if (mem[i].ip == IP_B)
			tries = mem[i].tries;
	cr_assert_eq(tries, 11);
}

Test(arp_cache, expiry)
{
	struct pkt_arp_entry mem[4];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 4, TTL, RETRY);
	uint8_t mac[6];
	pkt_arp_learn(&c, IP_B, MAC_B, T0);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL, mac), PKT_ARP_RESOLVED);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL + 1, mac), PKT_ARP_ASK, "stale");
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL + 2, mac), PKT_ARP_WAIT);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL + 1 + RETRY, mac), PKT_ARP_ASK);
	pkt_arp_learn(&c, IP_B, MAC_B, T0 + TTL + RETRY + 5);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL + RETRY + 6, mac), PKT_ARP_RESOLVED);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 2 * TTL + RETRY + 5, mac), PKT_ARP_RESOLVED);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 2 * TTL + RETRY + 6, mac), PKT_ARP_ASK);
	/* A ttl that would overflow saturates: resolved for ever. */
	pkt_arp_init(&c, mem, 4, UINT64_MAX, RETRY);
	pkt_arp_learn(&c, IP_B, MAC_B, T0);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, UINT64_MAX, mac), PKT_ARP_RESOLVED);
}

Test(arp_cache, full_table)
{
	struct pkt_arp_entry mem[4];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 4, TTL, RETRY);
	uint8_t mac[6];
	/* Four fresh requests fill it: a fifth address does not fit. */
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(pkt_arp_lookup(&c, 0x0A000001u + i, T0, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000009u, T0 + 1, mac), PKT_ARP_FULL);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(pkt_arp_lookup(&c, 0x0A000001u + i, T0 + 2, mac), PKT_ARP_WAIT);
	/* Learning an unasked address does not push out a fresh request. */
	pkt_arp_learn(&c, 0x0A000009u, MAC_C, T0 + 3);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000009u, T0 + 4, mac), PKT_ARP_FULL);
	/* Two resolve, learned at different times. */
	pkt_arp_learn(&c, 0x0A000002u, MAC_B, T0 + 10);
	pkt_arp_learn(&c, 0x0A000003u, MAC_C, T0 + 20);
	/* Now a new address replaces the oldest resolved one (.2). */
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000009u, T0 + 30, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000003u, T0 + 31, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_C, 6);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000001u, T0 + 32, mac), PKT_ARP_WAIT);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000004u, T0 + 33, mac), PKT_ARP_WAIT);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000009u, T0 + 34, mac), PKT_ARP_WAIT);
	/* .2 is gone: looking it up asks again, replacing .3 (last resolved). */
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000002u, T0 + 35, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000003u, T0 + 36, mac), PKT_ARP_FULL,
		     "all four are fresh requests again");
	/* Once a request is overdue (nobody re-asked), its slot can be reused:
	 * .1 and .4 were asked at T0. */
	cr_assert_eq(pkt_arp_lookup(&c, 0x0A000003u, T0 + RETRY, mac), PKT_ARP_ASK);
	uint32_t present = 0;
	for (uint32_t i = 0; i < 4; i++)
		present += mem[i].ip == 0x0A000003u;
	cr_assert_eq(present, 1);
}

Test(arp_cache, learn_replaces_only_dead_entries)
{
	struct pkt_arp_entry mem[2];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 2, TTL, RETRY);
	uint8_t mac[6];
	pkt_arp_learn(&c, IP_A, MAC_A, T0);
	pkt_arp_learn(&c, IP_B, MAC_B, T0 + 1);
	pkt_arp_learn(&c, IP_R, MAC_C, T0 + 2); /* no room: not learned */
	cr_assert_eq(pkt_arp_lookup(&c, IP_A, T0 + 3, mac), PKT_ARP_RESOLVED);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 3, mac), PKT_ARP_RESOLVED);
	/* Once IP_A is stale, a learn may take its slot. */
	pkt_arp_learn(&c, IP_R, MAC_C, T0 + TTL + 1);
	cr_assert_eq(pkt_arp_lookup(&c, IP_R, T0 + TTL + 1, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_C, 6);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + TTL + 1, mac), PKT_ARP_RESOLVED);
}

Test(arp_cache, bogus_input_ignored)
{
	struct pkt_arp_entry mem[4];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 4, TTL, RETRY);
	uint8_t mac[6];
	static const uint8_t zero[6] = {0};
	static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
	/* An ARP probe's sender is 0.0.0.0 (RFC 5227): nothing to learn. */
	pkt_arp_learn(&c, 0, MAC_B, T0);
	cr_assert_eq(pkt_arp_lookup(&c, 0, T0, mac), PKT_ARP_FULL, "0.0.0.0 is never cached");
	pkt_arp_learn(&c, IP_B, zero, T0);
	pkt_arp_learn(&c, IP_B, BCAST, T0);
	pkt_arp_learn(&c, IP_B, mcast, T0);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0, mac), PKT_ARP_ASK);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert(mem[i].state != 2, "nothing resolved");
	/* A zero-capacity cache answers FULL. */
	pkt_arp_init(&c, NULL, 0, TTL, RETRY);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0, mac), PKT_ARP_FULL);
	pkt_arp_learn(&c, IP_B, MAC_B, T0);
}

Test(arp_cache, from_parsed_frames)
{
	/* The usual flow: lookup says ASK, build the request, the reply comes
	 * back, parse it and learn its sender. */
	struct pkt_arp_entry mem[16];
	struct pkt_arp_cache c;
	pkt_arp_init(&c, mem, 16, TTL, RETRY);
	uint8_t mac[6], f[60];
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0, mac), PKT_ARP_ASK);
	cr_assert_eq(pkt_build_arp(f, 1, MAC_A, IP_A, NULL, IP_B), 60);
	cr_assert_arr_eq(f, ARP_REQ, 60);
	struct pkt_info in;
	cr_assert_eq(pkt_parse(ARP_REP, 60, 0, &in), PKT_ARP_REPLY);
	pkt_arp_learn(&c, in.arp_spa, in.arp_sha, T0 + 1000);
	cr_assert_eq(pkt_arp_lookup(&c, IP_B, T0 + 2000, mac), PKT_ARP_RESOLVED);
	cr_assert_arr_eq(mac, MAC_B, 6);
}

/* ------------------------------------------------------- names */

Test(names, every_kind)
{
	static const struct {
		enum pkt_kind k;
		const char *name;
	} names[] = {
	    {PKT_UDP, "udp"},
	    {PKT_ARP_REQUEST, "arp_request"},
	    {PKT_ARP_REPLY, "arp_reply"},
	    {PKT_ICMP_ECHO, "icmp_echo"},
	    {PKT_IGMP_QUERY, "igmp_query"},
	    {PKT_IGNORED, "ignored"},
	    {PKT_BAD_ETH, "bad_eth"},
	    {PKT_BAD_ARP, "bad_arp"},
	    {PKT_BAD_IPV4, "bad_ipv4"},
	    {PKT_FRAGMENT, "fragment"},
	    {PKT_BAD_UDP, "bad_udp"},
	    {PKT_BAD_ICMP, "bad_icmp"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		cr_assert_str_eq(pkt_kind_name(names[i].k), names[i].name);
	cr_assert_str_eq(pkt_kind_name((enum pkt_kind)0), "unknown");
}
