/*
 * For the process-level Criterion tests of several sequencer groups
 * (groups_test.c, group_add_test.c): the cluster of a file named by an
 * environment variable, started and stopped around each test; the leader of
 * a group; one SUBMIT record from a raw UDP socket, as no libordo client
 * would send it (another group's session, an opening with a chosen
 * client_id).
 */
#ifndef ORDO_TESTS_SEQ_FIXTURE_H
#define ORDO_TESTS_SEQ_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "client/ordo.h"
#include "client/procs.h"
#include "common/ordo_time.h"
#include "config/config.h"
#include "wire/wire.h"

#define FIXTURE_READY_NS  (20ull * ORDO_NS_PER_S)
#define FIXTURE_STATUS_NS (300ull * ORDO_NS_PER_MS)

/* A running cluster: its file, the ordo binary, the node processes, their
 * logs and data in dir, a client for STATUS queries. */
struct fixture {
	const char *exe, *path;
	struct cfg_cluster cl;
	char dir[64];
	struct ordo_procs procs;
	struct ordo_client *q;
};

/* Starts every node of the file $env names ($ORDO_EXE the binary), in a new
 * directory from dir_template, and waits until every group has a leader. */
static inline void fixture_start(struct fixture *f, const char *env, const char *dir_template)
{
	f->exe = getenv("ORDO_EXE");
	f->path = getenv(env);
	cr_assert(f->exe && f->path, "ORDO_EXE and %s must be set", env);
	char err[512];
	cr_assert_eq(cfg_load(f->path, &f->cl, err, sizeof err), 0, "%s", err);
	snprintf(f->dir, sizeof f->dir, "%s", dir_template);
	cr_assert_not_null(mkdtemp(f->dir));
	cr_assert_eq(ordo_procs_start(&f->procs, &f->cl, f->path, f->exe, f->dir, NULL, NULL), 0);
	struct ordo_client_cfg qc = {.cluster = &f->cl};
	cr_assert_eq(ordo_client_open(&qc, &f->q), 0);
	cr_assert_eq(ordo_procs_wait_ready(&f->procs, f->q, &f->cl, FIXTURE_READY_NS), 0,
		     "the cluster did not start (logs in %s)", f->dir);
}

/* Stops every node (each must exit 0 on SIGTERM); keeps the logs if one did
 * not, or if ORDO_KEEP_LOGS is set. */
static inline void fixture_stop(struct fixture *f, const char *name)
{
	ordo_client_close(f->q);
	f->q = NULL;
	int bad = ordo_procs_stop(&f->procs);
	if (getenv("ORDO_KEEP_LOGS") || bad != 0 || ordo_dir_remove(f->dir) != 0)
		fprintf(stderr, "%s: node logs kept in %s\n", name, f->dir);
	cr_expect_eq(bad, 0, "%d node(s) did not exit 0 on SIGTERM", bad);
}

/* STATUS of the leader of a group, asking its nodes until one names it. */
static inline struct wire_status_msg fixture_leader(struct fixture *f, uint16_t group)
{
	uint64_t deadline = ordo_mono_ns() + FIXTURE_READY_NS;
	while (ordo_mono_ns() < deadline) {
		for (uint32_t i = 0; i < f->cl.nnodes; i++) {
			const struct cfg_node *nd = &f->cl.nodes[i];
			struct wire_status_msg s;
			if (nd->role != CFG_ROLE_SEQUENCER || nd->group != group ||
			    ordo_status(f->q, nd->node_id, &s, FIXTURE_STATUS_NS) != 0 ||
			    s.leader_id == 0)
				continue;
			if (s.leader_id == nd->node_id)
				return s;
			struct wire_status_msg l;
			if (ordo_status(f->q, s.leader_id, &l, FIXTURE_STATUS_NS) == 0 &&
			    l.role == WIRE_ROLE_LEADER && l.group == group)
				return l;
		}
	}
	cr_assert_fail("group %u has no leader", group);
	return (struct wire_status_msg){0};
}

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
