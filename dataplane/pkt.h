/*
 * The packet layer of the DPDK dataplane (DESIGN.md §5): Ethernet II, ARP
 * (RFC 826), IPv4 (RFC 791; no options sent, options accepted, fragments
 * dropped), UDP (RFC 768), ICMP echo (RFC 792) and IGMPv2 membership reports
 * (RFC 2236) for the replicas' multicast group. Pure: byte buffers in, byte
 * buffers out; no DPDK, no I/O, no allocation. dataplane/dpdk.c puts frames
 * through it; the unit tests feed it frames written by hand.
 *
 * Byte order: addresses and ports in the structs below are in host order
 * (as struct dp_addr); MACs are the 6 bytes as on the wire.
 *
 * Checksums: pkt_parse verifies the IPv4 header checksum and a nonzero UDP
 * checksum unless the caller says the NIC already did (PKT_RX_*_CSUM_GOOD).
 * pkt_build_udp writes both checksums unless told the NIC will
 * (PKT_TX_*_CSUM_OFFLOAD), in which case the UDP checksum field holds the
 * pseudo-header sum the NIC expects (as DPDK's rte_ipv4_phdr_cksum) and the
 * IPv4 checksum is 0.
 */
#ifndef ORDO_PKT_H
#define ORDO_PKT_H

#include <stdbool.h>
#include <stdint.h>

#define PKT_ETH_HDR_BYTES  14u
#define PKT_IPV4_HDR_BYTES 20u /* without options, as sent */
#define PKT_UDP_HDR_BYTES  8u
/* Headers in front of a UDP payload as ordo sends it. */
#define PKT_UDP_HEADROOM    (PKT_ETH_HDR_BYTES + PKT_IPV4_HDR_BYTES + PKT_UDP_HDR_BYTES)
#define PKT_ARP_FRAME_BYTES 42u /* Ethernet + ARP for IPv4, before padding */
/* Ethernet minimum frame without FCS: shorter frames are padded with 0. */
#define PKT_ETH_MIN_BYTES 60u

#define PKT_ETHERTYPE_IPV4 0x0800u
#define PKT_ETHERTYPE_ARP  0x0806u
#define PKT_IPPROTO_ICMP   1u
#define PKT_IPPROTO_IGMP   2u
#define PKT_IPPROTO_UDP	   17u

/* rx flags from the NIC (pkt_parse's `rx_flags`). */
#define PKT_RX_IP_CSUM_GOOD 0x1u /* the NIC verified the IPv4 header checksum */
#define PKT_RX_L4_CSUM_GOOD 0x2u /* the NIC verified the UDP checksum */
/* tx flags (pkt_build_udp's `tx_flags`). */
#define PKT_TX_IP_CSUM_OFFLOAD 0x1u /* the NIC computes the IPv4 header checksum */
#define PKT_TX_L4_CSUM_OFFLOAD 0x2u /* the NIC completes the UDP checksum */

/* What a received frame is, or why it is dropped. */
enum pkt_kind {
	PKT_UDP = 1,	     /* an IPv4 UDP datagram (unicast to us, multicast, broadcast) */
	PKT_ARP_REQUEST = 2, /* ARP request (any target: the caller checks it is us) */
	PKT_ARP_REPLY = 3,   /* ARP reply */
	PKT_ICMP_ECHO = 4,   /* ICMP echo request */
	PKT_IGMP_QUERY = 5,  /* IGMP membership query (answer with reports) */
	PKT_IGNORED = 6,     /* well-formed, not for ordo (IPv6, LLDP, other ICMP, ...) */
	PKT_BAD_ETH = 16,    /* shorter than an Ethernet header */
	PKT_BAD_ARP = 17,    /* ARP not for IPv4 over Ethernet, or truncated */
	PKT_BAD_IPV4 = 18,   /* version, IHL, total length, or header checksum wrong */
	PKT_FRAGMENT = 19,   /* an IPv4 fragment: ordo never sends them; dropped */
	PKT_BAD_UDP = 20,    /* UDP length or checksum wrong, or truncated */
	PKT_BAD_ICMP = 21,   /* ICMP truncated or checksum wrong */
};

struct pkt_info {
	enum pkt_kind kind;
	uint8_t src_mac[6], dst_mac[6];
	/* IPv4 (UDP, ICMP, IGMP) */
	uint32_t src_ip, dst_ip;
	uint8_t ttl;
	/* UDP */
	uint16_t src_port, dst_port;
	uint32_t payload_off; /* UDP payload offset in the frame (UDP); ICMP header (ICMP) */
	uint32_t payload_len; /* UDP payload bytes (UDP); ICMP message bytes (ICMP) */
	/* ARP */
	uint16_t arp_op;    /* 1 request, 2 reply */
	uint8_t arp_sha[6]; /* sender hardware address */
	uint32_t arp_spa;   /* sender protocol address */
	uint8_t arp_tha[6]; /* target hardware address */
	uint32_t arp_tpa;   /* target protocol address */
	/* IGMP query */
	uint32_t igmp_group; /* 0: general query */
};

/* Classifies the frame[0 .. len) and fills *info. Never reads past len. */
enum pkt_kind pkt_parse(const uint8_t *frame, uint32_t len, uint32_t rx_flags,
			struct pkt_info *info);

/* A name for logs and counters ("udp", "bad_ipv4", ...). */
const char *pkt_kind_name(enum pkt_kind k);

/* Writes the Ethernet, IPv4 and UDP headers (PKT_UDP_HEADROOM bytes) in
 * front of a payload that already sits at out + PKT_UDP_HEADROOM. Returns
 * the frame length (headroom + payload_len). ip_id is the IPv4
 * identification; DF is set; TTL 64. */
uint32_t pkt_build_udp(uint8_t *out, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		       uint32_t payload_len, uint16_t ip_id, uint32_t tx_flags);

/* ARP request (op 1, target MAC 0, to broadcast) or reply (op 2, to tha).
 * Writes PKT_ETH_MIN_BYTES (padded) and returns it. */
uint32_t pkt_build_arp(uint8_t *out, uint16_t op, const uint8_t sha[6], uint32_t spa,
		       const uint8_t tha[6], uint32_t tpa);

/* The echo reply to the echo request `req` (a frame pkt_parse classified as
 * PKT_ICMP_ECHO with *info): same identifier, sequence and data, addresses
 * swapped, our MAC as source. Returns its length (the request's), or 0 if
 * cap is too small. */
uint32_t pkt_build_icmp_echo_reply(uint8_t *out, uint32_t cap, const uint8_t *req,
				   const struct pkt_info *info, const uint8_t my_mac[6]);

/* IGMPv2 membership report for group, from src, to the group's MAC
 * (01:00:5e + low 23 bits), TTL 1, with the Router Alert option (RFC 2236
 * §2: IP header 24 bytes). Returns the frame length (padded to 60). */
uint32_t pkt_build_igmp_report(uint8_t *out, const uint8_t src_mac[6], uint32_t src_ip,
			       uint32_t group);

/* 01:00:5e:xx:xx:xx for an IPv4 multicast group (RFC 1112 §6.4). */
void pkt_mcast_mac(uint32_t group, uint8_t mac[6]);
static inline bool pkt_ip_is_multicast(uint32_t ip)
{
	return (ip >> 28) == 0xEu; /* 224.0.0.0/4 */
}

/* RFC 1071 Internet checksum of len bytes, folded and complemented. */
uint16_t pkt_csum(const void *data, uint32_t len);

/* ---------------------------------------------------------- ARP cache */

/*
 * A bounded ARP cache: IPv4 address to MAC, with an expiry, and a small
 * per-entry queue of frames waiting for resolution is the caller's (the
 * cache only says "resolved", "send a request now" or "already asked").
 * Capacity fixed at init: entries * 24 bytes. Time enters as a value.
 */
struct pkt_arp_entry {
	uint32_t ip; /* 0: free */
	uint8_t mac[6];
	uint8_t state;	     /* 0 free, 1 incomplete (asked), 2 resolved */
	uint8_t tries;	     /* requests sent while incomplete */
	uint64_t expires_ns; /* resolved: re-ask after; incomplete: re-ask at */
};

struct pkt_arp_cache {
	struct pkt_arp_entry *e; /* cap entries, caller's memory */
	uint32_t cap;
	uint64_t ttl_ns;   /* a resolved entry is trusted this long (e.g. 5 min) */
	uint64_t retry_ns; /* an unanswered request is repeated after this */
};

enum pkt_arp_lookup {
	PKT_ARP_RESOLVED = 0, /* *mac filled */
	PKT_ARP_ASK = 1,      /* not known (or stale): send a request now */
	PKT_ARP_WAIT = 2,     /* asked recently: hold or drop the frame */
	PKT_ARP_FULL = 3,     /* no room for another address: drop, count */
};

void pkt_arp_init(struct pkt_arp_cache *c, struct pkt_arp_entry *mem, uint32_t cap, uint64_t ttl_ns,
		  uint64_t retry_ns);
enum pkt_arp_lookup pkt_arp_lookup(struct pkt_arp_cache *c, uint32_t ip, uint64_t now_ns,
				   uint8_t mac[6]);
/* Learns (or refreshes) ip -> mac, from a reply or a request's sender. */
void pkt_arp_learn(struct pkt_arp_cache *c, uint32_t ip, const uint8_t mac[6], uint64_t now_ns);

#endif
