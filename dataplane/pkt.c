/*
 * The packet layer of the DPDK dataplane: classification of received frames
 * (pkt_parse), the frames ordo sends (UDP, ARP, ICMP echo reply, IGMPv2
 * report), the Internet checksum, and a bounded ARP cache. The API and its
 * contracts are in pkt.h.
 *
 * What lives here: byte-level reading and writing of Ethernet II (with one
 * optional 802.1Q tag on receive), ARP (RFC 826), IPv4 (RFC 791), UDP
 * (RFC 768), ICMP echo (RFC 792), IGMPv2 (RFC 2236) and RFC 1071 checksums.
 * What does not: mbufs, queues, clocks, allocation, I/O, or any decision about
 * whether a frame is for this node (the caller compares addresses).
 *
 * Every multi-byte field is read and written with the explicit big-endian
 * helpers below (network order), never through a struct cast: frames need not
 * be aligned. pkt_parse checks each length before the bytes it covers are
 * read, so it never reads past `len`, and it never asserts on a frame.
 */
#include "dataplane/pkt.h"

#include <string.h>

#include "common/ordo_assert.h"

/* Offsets inside the headers (RFC 791 §3.1, RFC 768, RFC 826, RFC 792). */
#define ETH_DST	 0u
#define ETH_SRC	 6u
#define ETH_TYPE 12u

#define ETHERTYPE_VLAN	   0x8100u /* IEEE 802.1Q tag: TCI (2 bytes), then the inner type */
#define ETHERTYPE_MIN	   0x0600u /* below: an IEEE 802.3 length field, not Ethernet II */
#define VLAN_TAG_BYTES	   4u
#define ARP_BYTES	   28u /* ARP for IPv4 over Ethernet */
#define ICMP_HDR_BYTES	   8u  /* type, code, checksum, identifier, sequence */
#define IGMP_BYTES	   8u  /* IGMPv2: type, max resp, checksum, group */
#define IGMP_IP_HDR_BYTES  24u /* 20 + Router Alert (RFC 2113) */
#define IPV4_TOTAL_MAX	   65535u
#define IPV4_FLAG_DF	   0x4000u
#define IPV4_FLAG_MF	   0x2000u
#define IPV4_FRAG_OFF_MASK 0x1FFFu
#define IPV4_TTL	   64u
#define IPV4_TOS_IGMP	   0xC0u /* internetwork control, as Linux sends IGMP */
#define ICMP_ECHO_REPLY	   0u
#define ICMP_ECHO_REQUEST  8u
#define IGMP_QUERY	   0x11u
#define IGMP_V2_REPORT	   0x16u

ORDO_STATIC_ASSERT(PKT_UDP_HEADROOM == 42u, "14 + 20 + 8");
ORDO_STATIC_ASSERT(PKT_ARP_FRAME_BYTES == PKT_ETH_HDR_BYTES + ARP_BYTES, "Ethernet + ARP");
ORDO_STATIC_ASSERT(PKT_ETH_HDR_BYTES + IGMP_IP_HDR_BYTES + IGMP_BYTES <= PKT_ETH_MIN_BYTES,
		   "an IGMP report fits in a minimum frame");
ORDO_STATIC_ASSERT(sizeof(struct pkt_arp_entry) == 24, "the memory cost in pkt.h");

/* ------------------------------------------------------- byte order */

static inline uint16_t ld_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t ld_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void st_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void st_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ------------------------------------------------------- checksums */

/*
 * RFC 1071 one's complement sum. The accumulator holds the sum of 16-bit
 * words as they sit in memory (native order): RFC 1071 §2(B) shows the sum
 * is byte-order independent up to one final swap, done in csum_fold, and
 * §2(C) that 32-bit words may be summed and folded later, so the loop adds
 * two 32-bit halves of each 8 bytes. The 64-bit accumulator cannot overflow
 * for any len below 2^32 (2^29 steps of at most 2^33). Only the last chunk
 * given to csum_add may have an odd length (its last byte is padded with 0).
 */
static uint64_t csum_add(uint64_t acc, const uint8_t *p, uint32_t len)
{
	uint32_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		acc += (w & 0xFFFFFFFFu) + (w >> 32);
	}
	for (; i + 2 <= len; i += 2) {
		uint16_t h;
		memcpy(&h, p + i, 2);
		acc += h;
	}
	if (i < len) {
		uint8_t last[2] = {p[i], 0};
		uint16_t h;
		memcpy(&h, last, 2);
		acc += h;
	}
	return acc;
}

/* Folds the accumulator to 16 bits and returns it as a number read in
 * network order (not complemented). */
static uint16_t csum_fold(uint64_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xFFFFu) + (acc >> 16);
	uint16_t h = (uint16_t)acc;
	uint8_t b[2];
	memcpy(b, &h, 2);
	return ld_be16(b);
}

uint16_t pkt_csum(const void *data, uint32_t len)
{
	return (uint16_t)~csum_fold(csum_add(0, data, len));
}

/* The IPv4 pseudo-header (RFC 768) for proto and l4_len, summed. */
static uint64_t csum_pseudo(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, uint16_t l4_len)
{
	uint8_t ph[12];
	st_be32(ph, src_ip);
	st_be32(ph + 4, dst_ip);
	ph[8] = 0;
	ph[9] = proto;
	st_be16(ph + 10, l4_len);
	return csum_add(0, ph, sizeof ph);
}

/* ------------------------------------------------------- parse */

const char *pkt_kind_name(enum pkt_kind k)
{
	switch (k) {
	case PKT_UDP:
		return "udp";
	case PKT_ARP_REQUEST:
		return "arp_request";
	case PKT_ARP_REPLY:
		return "arp_reply";
	case PKT_ICMP_ECHO:
		return "icmp_echo";
	case PKT_IGMP_QUERY:
		return "igmp_query";
	case PKT_IGNORED:
		return "ignored";
	case PKT_BAD_ETH:
		return "bad_eth";
	case PKT_BAD_ARP:
		return "bad_arp";
	case PKT_BAD_IPV4:
		return "bad_ipv4";
	case PKT_FRAGMENT:
		return "fragment";
	case PKT_BAD_UDP:
		return "bad_udp";
	case PKT_BAD_ICMP:
		return "bad_icmp";
	}
	return "unknown";
}

/* ARP for IPv4 over Ethernet at a[0 .. n). */
static enum pkt_kind parse_arp(const uint8_t *a, uint32_t n, struct pkt_info *info)
{
	if (n < ARP_BYTES)
		return PKT_BAD_ARP;
	uint16_t op = ld_be16(a + 6);
	if (ld_be16(a) != 1 || ld_be16(a + 2) != PKT_ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 ||
	    (op != 1 && op != 2))
		return PKT_BAD_ARP;
	info->arp_op = op;
	memcpy(info->arp_sha, a + 8, 6);
	info->arp_spa = ld_be32(a + 14);
	memcpy(info->arp_tha, a + 18, 6);
	info->arp_tpa = ld_be32(a + 24);
	return op == 1 ? PKT_ARP_REQUEST : PKT_ARP_REPLY;
}

/* UDP datagram u[0 .. n), n the IPv4 payload bytes; off is u's offset in
 * the frame. Trailing bytes after the UDP length (inside the IPv4 payload)
 * are not part of the datagram and are not checksummed (RFC 768). */
static enum pkt_kind parse_udp(const uint8_t *u, uint32_t n, uint32_t off, uint32_t rx_flags,
			       struct pkt_info *info)
{
	if (n < PKT_UDP_HDR_BYTES)
		return PKT_BAD_UDP;
	uint16_t ulen = ld_be16(u + 4);
	if (ulen < PKT_UDP_HDR_BYTES || ulen > n)
		return PKT_BAD_UDP;
	/* A zero checksum means the sender computed none (RFC 768, IPv4 only). */
	if (ld_be16(u + 6) != 0 && !(rx_flags & PKT_RX_L4_CSUM_GOOD)) {
		uint64_t acc = csum_pseudo(info->src_ip, info->dst_ip, PKT_IPPROTO_UDP, ulen);
		if (csum_fold(csum_add(acc, u, ulen)) != 0xFFFFu)
			return PKT_BAD_UDP;
	}
	info->src_port = ld_be16(u);
	info->dst_port = ld_be16(u + 2);
	info->payload_off = off + PKT_UDP_HDR_BYTES;
	info->payload_len = ulen - PKT_UDP_HDR_BYTES;
	return PKT_UDP;
}

/* ICMP message m[0 .. n). Only echo requests are for ordo; their checksum
 * (over the whole message, RFC 792) is always checked in software: NICs'
 * L4 checksum offload covers TCP/UDP, not ICMP. */
static enum pkt_kind parse_icmp(const uint8_t *m, uint32_t n, uint32_t off, struct pkt_info *info)
{
	if (n < ICMP_HDR_BYTES)
		return PKT_BAD_ICMP;
	if (m[0] != ICMP_ECHO_REQUEST || m[1] != 0)
		return PKT_IGNORED;
	if (pkt_csum(m, n) != 0)
		return PKT_BAD_ICMP;
	info->payload_off = off;
	info->payload_len = n;
	return PKT_ICMP_ECHO;
}

/* IGMP message g[0 .. n). Queries (v1, v2 and v3 share type 0x11 and the
 * group at offset 4) are answered with v2 reports; the rest is ignored.
 * There is no PKT_BAD_IGMP: a query that is truncated or fails its checksum
 * (which RFC 2236 §2.3 says MUST be verified) is PKT_IGNORED. */
static enum pkt_kind parse_igmp(const uint8_t *g, uint32_t n, struct pkt_info *info)
{
	if (n < IGMP_BYTES || g[0] != IGMP_QUERY || pkt_csum(g, n) != 0)
		return PKT_IGNORED;
	info->igmp_group = ld_be32(g + 4);
	return PKT_IGMP_QUERY;
}

/* IPv4 packet at frame + l3; n is every frame byte after the Ethernet header
 * (so Ethernet padding after the IPv4 total length is allowed). Options are
 * accepted and skipped, not interpreted. */
static enum pkt_kind parse_ipv4(const uint8_t *frame, uint32_t l3, uint32_t n, uint32_t rx_flags,
				struct pkt_info *info)
{
	const uint8_t *ip = frame + l3;
	if (n < PKT_IPV4_HDR_BYTES || ip[0] >> 4 != 4)
		return PKT_BAD_IPV4;
	uint32_t hlen = (uint32_t)(ip[0] & 0xFu) * 4;
	uint32_t total = ld_be16(ip + 2);
	if (hlen < PKT_IPV4_HDR_BYTES || total < hlen || total > n)
		return PKT_BAD_IPV4;
	if (!(rx_flags & PKT_RX_IP_CSUM_GOOD) && pkt_csum(ip, hlen) != 0)
		return PKT_BAD_IPV4;
	info->ttl = ip[8];
	info->src_ip = ld_be32(ip + 12);
	info->dst_ip = ld_be32(ip + 16);
	uint16_t frag = ld_be16(ip + 6);
	if (frag & (IPV4_FLAG_MF | IPV4_FRAG_OFF_MASK))
		return PKT_FRAGMENT;
	uint32_t l4 = l3 + hlen;
	uint32_t l4_len = total - hlen;
	switch (ip[9]) {
	case PKT_IPPROTO_UDP:
		return parse_udp(frame + l4, l4_len, l4, rx_flags, info);
	case PKT_IPPROTO_ICMP:
		return parse_icmp(frame + l4, l4_len, l4, info);
	case PKT_IPPROTO_IGMP:
		return parse_igmp(frame + l4, l4_len, info);
	default:
		return PKT_IGNORED;
	}
}

/*
 * Ethernet II only: an ethertype below 0x0600 is an IEEE 802.3 length
 * (LLC/SNAP frames: STP, ...) and is PKT_IGNORED. One 802.1Q tag (0x8100)
 * is skipped and the inner frame classified, so a port on a tagged VLAN
 * works; the tag's VLAN id is not checked or reported (the PMD or switch
 * decides which VLAN reaches us). A second tag (Q-in-Q) and 802.1ad outer
 * tags (0x88A8) are PKT_IGNORED. A tagged frame shorter than 18 bytes is
 * PKT_BAD_ETH. On any kind, info holds what was read before the verdict
 * (zeros past it).
 */
enum pkt_kind pkt_parse(const uint8_t *frame, uint32_t len, uint32_t rx_flags,
			struct pkt_info *info)
{
	memset(info, 0, sizeof *info);
	enum pkt_kind k;
	if (len < PKT_ETH_HDR_BYTES) {
		k = PKT_BAD_ETH;
		goto out;
	}
	memcpy(info->dst_mac, frame + ETH_DST, 6);
	memcpy(info->src_mac, frame + ETH_SRC, 6);
	uint32_t l3 = PKT_ETH_HDR_BYTES;
	uint16_t type = ld_be16(frame + ETH_TYPE);
	if (type == ETHERTYPE_VLAN) {
		if (len < PKT_ETH_HDR_BYTES + VLAN_TAG_BYTES) {
			k = PKT_BAD_ETH;
			goto out;
		}
		type = ld_be16(frame + ETH_TYPE + VLAN_TAG_BYTES);
		l3 += VLAN_TAG_BYTES;
	}
	if (type == PKT_ETHERTYPE_ARP)
		k = parse_arp(frame + l3, len - l3, info);
	else if (type == PKT_ETHERTYPE_IPV4)
		k = parse_ipv4(frame, l3, len - l3, rx_flags, info);
	else
		k = PKT_IGNORED; /* IPv6, LLDP, 802.3 lengths, a second VLAN tag, ... */
out:
	info->kind = k;
	return k;
}

/* ------------------------------------------------------- build */

static void put_eth(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(out + ETH_DST, dst, 6);
	memcpy(out + ETH_SRC, src, 6);
	st_be16(out + ETH_TYPE, type);
}

/* A 20-byte IPv4 header, DF set, checksum field 0 (the caller fills it). */
static void put_ipv4(uint8_t *ip, uint8_t tos, uint16_t total, uint16_t id, uint8_t ttl,
		     uint8_t proto, uint32_t src_ip, uint32_t dst_ip)
{
	ip[0] = 0x45;
	ip[1] = tos;
	st_be16(ip + 2, total);
	st_be16(ip + 4, id);
	st_be16(ip + 6, IPV4_FLAG_DF);
	ip[8] = ttl;
	ip[9] = proto;
	st_be16(ip + 10, 0);
	st_be32(ip + 12, src_ip);
	st_be32(ip + 16, dst_ip);
}

static uint32_t pad_to_min(uint8_t *out, uint32_t len)
{
	if (len >= PKT_ETH_MIN_BYTES)
		return len;
	memset(out + len, 0, PKT_ETH_MIN_BYTES - len);
	return PKT_ETH_MIN_BYTES;
}

uint32_t pkt_build_udp(uint8_t *out, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		       uint32_t payload_len, uint16_t ip_id, uint32_t tx_flags)
{
	/* A caller bug (payloads are bounded by the MTU), not network input. */
	ORDO_ASSERT(payload_len <= IPV4_TOTAL_MAX - PKT_IPV4_HDR_BYTES - PKT_UDP_HDR_BYTES);
	uint16_t udp_len = (uint16_t)(PKT_UDP_HDR_BYTES + payload_len);
	uint8_t *ip = out + PKT_ETH_HDR_BYTES;
	uint8_t *udp = ip + PKT_IPV4_HDR_BYTES;

	put_eth(out, dst_mac, src_mac, PKT_ETHERTYPE_IPV4);
	put_ipv4(ip, 0, (uint16_t)(PKT_IPV4_HDR_BYTES + udp_len), ip_id, IPV4_TTL, PKT_IPPROTO_UDP,
		 src_ip, dst_ip);
	if (!(tx_flags & PKT_TX_IP_CSUM_OFFLOAD))
		st_be16(ip + 10, pkt_csum(ip, PKT_IPV4_HDR_BYTES));

	st_be16(udp, src_port);
	st_be16(udp + 2, dst_port);
	st_be16(udp + 4, udp_len);
	st_be16(udp + 6, 0);
	uint64_t acc = csum_pseudo(src_ip, dst_ip, PKT_IPPROTO_UDP, udp_len);
	if (tx_flags & PKT_TX_L4_CSUM_OFFLOAD) {
		/* The NIC sums the datagram onto this and complements: the field
		 * holds the folded pseudo-header sum, not complemented, as
		 * rte_ipv4_phdr_cksum returns it. */
		st_be16(udp + 6, csum_fold(acc));
	} else {
		uint16_t c = (uint16_t)~csum_fold(csum_add(acc, udp, udp_len));
		/* A computed 0 is sent as all ones: 0 means "no checksum". */
		st_be16(udp + 6, c == 0 ? 0xFFFFu : c);
	}
	return PKT_UDP_HEADROOM + payload_len;
}

uint32_t pkt_build_arp(uint8_t *out, uint16_t op, const uint8_t sha[6], uint32_t spa,
		       const uint8_t tha[6], uint32_t tpa)
{
	static const uint8_t bcast[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
	static const uint8_t zero[6] = {0};
	/* A request goes to broadcast with an unknown (zero) target MAC; tha
	 * is not read and may be NULL. */
	const uint8_t *target = op == 1 ? zero : tha;
	put_eth(out, op == 1 ? bcast : tha, sha, PKT_ETHERTYPE_ARP);
	uint8_t *a = out + PKT_ETH_HDR_BYTES;
	st_be16(a, 1); /* Ethernet */
	st_be16(a + 2, PKT_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	st_be16(a + 6, op);
	memcpy(a + 8, sha, 6);
	st_be32(a + 14, spa);
	memcpy(a + 18, target, 6);
	st_be32(a + 24, tpa);
	return pad_to_min(out, PKT_ARP_FRAME_BYTES);
}

/*
 * The reply keeps the request's link layout (its 802.1Q tag, if any, so it
 * leaves on the VLAN it came from), with a fresh 20-byte IPv4 header: IP
 * options of the request are not echoed (ordo sends no options; RFC 1122
 * §3.2.2.6 makes echoing record-route/timestamp a SHOULD). The returned
 * length is therefore the request's length whenever the request carried no
 * IP options and no bytes past its IPv4 total length beyond Ethernet padding;
 * it is padded to PKT_ETH_MIN_BYTES. The IPv4 identification and TOS are
 * copied from the request, TTL is 64. out may equal req (built in place).
 */
uint32_t pkt_build_icmp_echo_reply(uint8_t *out, uint32_t cap, const uint8_t *req,
				   const struct pkt_info *info, const uint8_t my_mac[6])
{
	if (info->kind != PKT_ICMP_ECHO)
		return 0;
	uint32_t l3 = ld_be16(req + ETH_TYPE) == ETHERTYPE_VLAN ? PKT_ETH_HDR_BYTES + VLAN_TAG_BYTES
								: PKT_ETH_HDR_BYTES;
	const uint8_t *rip = req + l3;
	uint32_t req_hlen = (uint32_t)(rip[0] & 0xFu) * 4;
	if (l3 + req_hlen != info->payload_off || info->payload_len < ICMP_HDR_BYTES ||
	    info->payload_len > IPV4_TOTAL_MAX - PKT_IPV4_HDR_BYTES)
		return 0; /* info is not from pkt_parse of this frame */
	uint32_t icmp = l3 + PKT_IPV4_HDR_BYTES;
	uint32_t len = icmp + info->payload_len;
	uint32_t frame_len = len < PKT_ETH_MIN_BYTES ? PKT_ETH_MIN_BYTES : len;
	if (cap < frame_len)
		return 0;

	/* Everything read from req before out is written (they may alias). */
	uint8_t tag[VLAN_TAG_BYTES + 2];
	memcpy(tag, req + ETH_TYPE, l3 - ETH_TYPE);
	uint8_t tos = rip[1];
	uint16_t id = ld_be16(rip + 4);
	memmove(out + icmp, req + info->payload_off, info->payload_len);

	memcpy(out + ETH_DST, info->src_mac, 6);
	memcpy(out + ETH_SRC, my_mac, 6);
	memcpy(out + ETH_TYPE, tag, l3 - ETH_TYPE);
	uint8_t *ip = out + l3;
	put_ipv4(ip, tos, (uint16_t)(PKT_IPV4_HDR_BYTES + info->payload_len), id, IPV4_TTL,
		 PKT_IPPROTO_ICMP, info->dst_ip, info->src_ip);
	st_be16(ip + 10, pkt_csum(ip, PKT_IPV4_HDR_BYTES));

	uint8_t *m = out + icmp;
	m[0] = ICMP_ECHO_REPLY;
	m[1] = 0;
	st_be16(m + 2, 0);
	st_be16(m + 2, pkt_csum(m, info->payload_len));
	return pad_to_min(out, len);
}

void pkt_mcast_mac(uint32_t group, uint8_t mac[6])
{
	mac[0] = 0x01;
	mac[1] = 0x00;
	mac[2] = 0x5E;
	mac[3] = (uint8_t)((group >> 16) & 0x7Fu);
	mac[4] = (uint8_t)(group >> 8);
	mac[5] = (uint8_t)group;
}

uint32_t pkt_build_igmp_report(uint8_t *out, const uint8_t src_mac[6], uint32_t src_ip,
			       uint32_t group)
{
	uint8_t dst_mac[6];
	pkt_mcast_mac(group, dst_mac);
	put_eth(out, dst_mac, src_mac, PKT_ETHERTYPE_IPV4);

	/* RFC 2236 §2: sent to the group, TTL 1, IP Router Alert (RFC 2113). */
	uint8_t *ip = out + PKT_ETH_HDR_BYTES;
	put_ipv4(ip, IPV4_TOS_IGMP, IGMP_IP_HDR_BYTES + IGMP_BYTES, 0, 1, PKT_IPPROTO_IGMP, src_ip,
		 group);
	ip[0] = 0x40 | IGMP_IP_HDR_BYTES / 4;
	ip[20] = 0x94; /* copied flag, class 0, option 20: Router Alert */
	ip[21] = 4;
	ip[22] = 0; /* value 0: routers examine the packet */
	ip[23] = 0;
	st_be16(ip + 10, pkt_csum(ip, IGMP_IP_HDR_BYTES));

	uint8_t *g = ip + IGMP_IP_HDR_BYTES;
	g[0] = IGMP_V2_REPORT;
	g[1] = 0; /* max response time: 0 in reports */
	st_be16(g + 2, 0);
	st_be32(g + 4, group);
	st_be16(g + 2, pkt_csum(g, IGMP_BYTES));
	return pad_to_min(out, PKT_ETH_HDR_BYTES + IGMP_IP_HDR_BYTES + IGMP_BYTES);
}

/* ------------------------------------------------------- ARP cache */

/*
 * A linear table: cap is small (tens to a few hundred neighbours: the other
 * nodes of the cluster, replicas, a gateway), so every operation scans all
 * cap entries; there is no hash to keep consistent and no tombstones.
 *
 * Times: a resolved entry is used while now <= expires_ns (learned + ttl)
 * and is stale after; a stale lookup turns it back into an incomplete entry
 * and says ASK (the old MAC is not used while re-asking). An incomplete
 * entry asks again once now >= expires_ns (last request + retry), forever,
 * at most once per retry_ns; tries counts its requests (saturating).
 *
 * Replacement when a lookup finds no entry and no free one: the victim is
 * the entry with the smallest expires_ns among the resolved entries and the
 * incomplete entries whose retry time has passed (nobody asked for them
 * since). Resolved entries' expiry is learned time + ttl, so this is the
 * oldest learned (or an abandoned request): LRU-ish, by learn time, since a
 * lookup writes nothing. If every entry is incomplete and was asked for
 * within retry_ns, the answer is PKT_ARP_FULL.
 *
 * pkt_arp_learn never evicts a usable entry to make room for an address
 * nobody looked up: a flood of ARP from many senders cannot push out the
 * peers ordo talks to. It takes a free slot or a dead one (stale resolved,
 * abandoned incomplete), else it learns nothing.
 *
 * 0.0.0.0 marks a free entry, so it is never cached: learning it (ARP probes,
 * RFC 5227, have sender 0.0.0.0) is ignored and looking it up says FULL.
 * Learning a multicast/broadcast or all-zero MAC is ignored too.
 */

enum { ARP_FREE = 0, ARP_INCOMPLETE = 1, ARP_RESOLVED = 2 };

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void pkt_arp_init(struct pkt_arp_cache *c, struct pkt_arp_entry *mem, uint32_t cap, uint64_t ttl_ns,
		  uint64_t retry_ns)
{
	c->e = mem;
	c->cap = cap;
	c->ttl_ns = ttl_ns;
	c->retry_ns = retry_ns;
	if (cap)
		memset(mem, 0, (size_t)cap * sizeof *mem);
}

static struct pkt_arp_entry *arp_find(struct pkt_arp_cache *c, uint32_t ip)
{
	for (uint32_t i = 0; i < c->cap; i++)
		if (c->e[i].state != ARP_FREE && c->e[i].ip == ip)
			return &c->e[i];
	return NULL;
}

static bool arp_dead(const struct pkt_arp_entry *x, uint64_t now_ns)
{
	return (x->state == ARP_RESOLVED && now_ns > x->expires_ns) ||
	       (x->state == ARP_INCOMPLETE && now_ns >= x->expires_ns);
}

/* A free entry, else the replacement victim (see above), else NULL.
 * live_resolved: whether a resolved entry that is still valid may go. */
static struct pkt_arp_entry *arp_slot(struct pkt_arp_cache *c, uint64_t now_ns, bool live_resolved)
{
	struct pkt_arp_entry *victim = NULL;
	for (uint32_t i = 0; i < c->cap; i++) {
		struct pkt_arp_entry *x = &c->e[i];
		if (x->state == ARP_FREE)
			return x;
		bool ok = arp_dead(x, now_ns) || (live_resolved && x->state == ARP_RESOLVED);
		if (ok && (!victim || x->expires_ns < victim->expires_ns))
			victim = x;
	}
	return victim;
}

static void arp_ask(struct pkt_arp_cache *c, struct pkt_arp_entry *x, uint64_t now_ns)
{
	x->state = ARP_INCOMPLETE;
	if (x->tries < UINT8_MAX)
		x->tries++;
	x->expires_ns = add_sat(now_ns, c->retry_ns);
}

enum pkt_arp_lookup pkt_arp_lookup(struct pkt_arp_cache *c, uint32_t ip, uint64_t now_ns,
				   uint8_t mac[6])
{
	if (ip == 0)
		return PKT_ARP_FULL;
	struct pkt_arp_entry *x = arp_find(c, ip);
	if (x) {
		if (x->state == ARP_RESOLVED && now_ns <= x->expires_ns) {
			memcpy(mac, x->mac, 6);
			return PKT_ARP_RESOLVED;
		}
		if (x->state == ARP_INCOMPLETE && now_ns < x->expires_ns)
			return PKT_ARP_WAIT;
		if (x->state == ARP_RESOLVED)
			x->tries = 0; /* stale: counting requests afresh */
		arp_ask(c, x, now_ns);
		return PKT_ARP_ASK;
	}
	x = arp_slot(c, now_ns, true);
	if (!x)
		return PKT_ARP_FULL;
	memset(x, 0, sizeof *x);
	x->ip = ip;
	arp_ask(c, x, now_ns);
	return PKT_ARP_ASK;
}

void pkt_arp_learn(struct pkt_arp_cache *c, uint32_t ip, const uint8_t mac[6], uint64_t now_ns)
{
	static const uint8_t zero[6] = {0};
	if (ip == 0 || (mac[0] & 1) || memcmp(mac, zero, 6) == 0)
		return;
	struct pkt_arp_entry *x = arp_find(c, ip);
	if (!x) {
		x = arp_slot(c, now_ns, false);
		if (!x)
			return;
		x->ip = ip;
	}
	memcpy(x->mac, mac, 6);
	x->state = ARP_RESOLVED;
	x->tries = 0;
	x->expires_ns = add_sat(now_ns, c->ttl_ns);
}
