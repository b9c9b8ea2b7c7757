/*
 * For the process-level Criterion tests (groups_test.c, group_add_test.c):
 * one SUBMIT record from a raw UDP socket, as no libordo client would send
 * it (another group's session, an opening with a chosen client_id).
 */
#ifndef ORDO_TESTS_RAW_SUBMIT_H
#define ORDO_TESTS_RAW_SUBMIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

/* Sends r from fd to sequencer `to` of group `group` in cl, follows
 * NOT_LEADER to the leader named, and returns the ORDERED record answering
 * r (answers to other records, late ones of earlier attempts, are skipped).
 * Fails the test if no leader answers within 20 attempts. */
static inline struct wire_ordered_rec raw_submit_to(int fd, const struct cfg_cluster *cl,
						    uint16_t group, uint32_t to,
						    const struct wire_req *r)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		const struct cfg_node *nd = cfg_node_find(cl, to);
		cr_assert_not_null(nd);
		cr_assert_eq(nd->group, group);
		uint8_t buf[ORDO_DATAGRAM_MAX];
		struct wire_writer w;
		wire_begin(&w, buf, cl->max_datagram, WIRE_SUBMIT, cl->cluster_id);
		wire_begin_records(&w, 0);
		cr_assert(wire_add_submit(&w, r));
		uint32_t len = wire_finish(&w, NULL);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons(nd->client_port),
					 .sin_addr.s_addr = htonl(nd->ip)};
		cr_assert_eq(sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof sa),
			     (ssize_t)len);
		uint64_t deadline = ordo_mono_ns() + 500 * ORDO_NS_PER_MS;
		while (ordo_mono_ns() < deadline) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, 50) <= 0)
				continue;
			ssize_t k = recv(fd, buf, sizeof buf, 0);
			struct wire_rx_ctx ctx = {.cluster_id = cl->cluster_id};
			struct wire_hdr h;
			if (k <= 0 || wire_check(&ctx, buf, (size_t)k, &h) != WIRE_DROP_NONE ||
			    h.type != WIRE_ORDERED)
				continue;
			struct wire_ordered_rec recs[8];
			uint32_t hint = 0;
			int n = wire_parse_ordered(buf + ORDO_HDR_BYTES, h.length - ORDO_HDR_BYTES,
						   &hint, recs, 8);
			cr_assert_eq(n, 1, "one record sent, %d answered", n);
			if (recs[0].client_id != r->client_id ||
			    recs[0].request_number != r->request_number)
				continue; /* a late answer to an earlier attempt */
			if (recs[0].status != WIRE_ST_NOT_LEADER)
				return recs[0];
			if (hint)
				to = hint; /* the leader moved */
			break;
		}
	}
	cr_assert_fail("group %u's leader never answered", group);
	return (struct wire_ordered_rec){0};
}

#endif
