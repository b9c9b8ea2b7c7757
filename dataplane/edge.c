/* A node's edge; see edge.h. */
#include "edge.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/ordo_time.h"
#include "dataplane/dpdk.h"

int dp_edge_parse_args(int argc, char **argv, const char *usage, struct dp_edge_args *a)
{
	static const struct option opts[] = {
	    {"cluster", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"fault", required_argument, NULL, 'f'},
	    {"data", required_argument, NULL, 'd'},
	    {"busy-poll", no_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	memset(a, 0, sizeof *a);
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:f:d:bh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->cluster = optarg;
			break;
		case 'n': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "--node: '%s' is not a node id\n", optarg);
				fputs(usage, stderr);
				return 2;
			}
			a->node_id = (uint32_t)v;
			break;
		}
		case 'f':
			a->fault = optarg;
			break;
		case 'd':
			a->data = optarg;
			break;
		case 'b':
			a->busy_poll = true;
			break;
		default:
			fputs(usage, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind < argc && optind > 1 && strcmp(argv[optind - 1], "--") == 0) {
		a->eal_argc = argc - optind; /* after --: the DPDK EAL's */
		a->eal_argv = argv + optind;
		optind = argc;
	}
	if (!a->cluster || !a->node_id || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

/* The kernel's UDP sockets on the node's two ports. */
static int open_udp(struct dp_edge *e, const struct dp_edge_args *a, const char *verb,
		    uint32_t rcvbuf_bytes)
{
	struct dp_udp_cfg ucfg = {
	    .bind = {{.ip = e->self->ip, .port = e->self->client_port},
		     {.ip = e->self->ip, .port = e->self->internal_port}},
	    .nbind = 2,
	    .max_datagram = e->cfg.max_datagram,
	    .pool = ORDO_DP_POOL_DEFAULT,
	    .rcvbuf_bytes = rcvbuf_bytes,
	};
	int rc = dp_udp_open(&ucfg, &e->t);
	if (rc)
		fprintf(stderr, "%s: cannot bind node %u's ports %u and %u: %s\n", verb, a->node_id,
			e->self->client_port, e->self->internal_port, strerror(-rc));
	return rc;
}

#define EAL_ARGS_MAX 32

int dp_edge_dpdk_open(const struct cfg_cluster *cfg, const struct dp_edge_dpdk *p, int eal_argc,
		      char **eal_argv, struct dp_transport **out)
{
	static char words[sizeof cfg->dpdk_eal];
	static char vdev[sizeof cfg->nodes[0].dpdk_vdev + 8];
	static char prefix[64];
	static char *argv[EAL_ARGS_MAX + 4];
	int argc = 0;
	argv[argc++] = (char *)"ordo";
	bool has_prefix = false;
	if (eal_argc > 0) {
		for (int i = 0; i < eal_argc; i++) {
			if (argc == EAL_ARGS_MAX)
				goto too_many;
			argv[argc++] = eal_argv[i];
		}
	} else {
		memcpy(words, cfg->dpdk_eal, sizeof words);
		for (char *save = NULL, *w = strtok_r(words, " \t", &save); w;
		     w = strtok_r(NULL, " \t", &save)) {
			if (argc == EAL_ARGS_MAX)
				goto too_many;
			argv[argc++] = w;
		}
	}
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--file-prefix", 13) == 0)
			has_prefix = true;
	if (p->vdev && p->vdev[0]) {
		if ((size_t)snprintf(vdev, sizeof vdev, "--vdev=%s", p->vdev) >= sizeof vdev) {
			fprintf(stderr, "ordo dpdk: --vdev %s: longer than %zu characters\n",
				p->vdev, sizeof vdev - 8);
			return -ENAMETOOLONG;
		}
		argv[argc++] = vdev;
	}
	if (!has_prefix) {
		snprintf(prefix, sizeof prefix, "--file-prefix=%s", p->prefix ? p->prefix : "ordo");
		argv[argc++] = prefix;
	}
	argv[argc] = NULL;
	struct dp_dpdk_cfg dc;
	dp_dpdk_cfg_default(&dc);
	dc.eal_argc = argc;
	dc.eal_argv = argv;
	dc.port_name = p->port_name;
	dc.ip = p->ip;
	memcpy(dc.udp_ports, p->ports, sizeof dc.udp_ports);
	dc.nudp_ports = p->nports;
	dc.udp_range_lo = p->range_lo;
	dc.udp_range_hi = p->range_hi;
	dc.max_datagram = cfg->max_datagram;
	dc.busy_poll = p->busy_poll;
	dc.mcast_group = p->mcast_group;
	dc.queues = p->queues ? p->queues : 1;
	dc.lcores = p->lcores ? p->lcores : 1;
	dc.rx_check = p->rx_check;
	dc.rx_check_ctx = p->rx_check_ctx;
	/* The port's rings: every RX queue keeps its ring filled (net_af_xdp:
	 * 2048 whatever rx_desc says), the TX ring, the datagrams held for
	 * ARP; then what the caller holds. */
	uint32_t per_rxq = dc.rx_desc > 2048u ? dc.rx_desc : 2048u;
	dc.mbufs = dc.queues * per_rxq + dc.tx_desc + dc.arp_pending +
		   (p->mbufs_held ? p->mbufs_held : 4863u);
	/* each worker lcore: its ring, and its mempool cache (at most 1.5 x
	 * the 256 of dp_dpdk_open) */
	dc.mbufs += (dc.lcores - 1u) * (dc.ring_size + 384u);
	return dp_dpdk_open(&dc, out);
too_many:
	fprintf(stderr, "ordo dpdk: more than %d EAL arguments\n", EAL_ARGS_MAX - 1);
	return -E2BIG;
}

/* Receipt rules 1-4 for a DPDK worker lcore: pure, on the contexts that
 * dp_edge_open fixed before the port opened (nothing changes them later). */
static unsigned edge_check(void *ctx, const struct dp_buf *b)
{
	const struct dp_edge *e = ctx;
	struct wire_hdr h;
	bool internal = b->local.port == e->self->internal_port;
	return (unsigned)wire_check(internal ? &e->internal_ctx : &e->client_ctx, b->data, b->len,
				    &h);
}

/* A DPDK port with the node's address and ports. EAL arguments: those after
 * `--` on the command line, else the cluster file's dpdk_eal; then the
 * node's dpdk_vdev as --vdev, and a file prefix of its own (so several nodes
 * share a host) unless one was given. */
static int open_dpdk(struct dp_edge *e, const struct dp_edge_args *a, const char *verb)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, "ordo-n%u", e->self->node_id);
	struct dp_edge_dpdk p = {
	    .port_name = e->self->dpdk_port,
	    .vdev = e->self->dpdk_vdev,
	    .prefix = prefix,
	    .ip = e->self->ip,
	    .ports = {e->self->client_port, e->self->internal_port},
	    .nports = 2,
	    .busy_poll = a->busy_poll,
	    /* a replica joins the epoch stream's group */
	    .mcast_group = e->self->role == CFG_ROLE_REPLICA ? e->cfg.multicast_group : 0,
	    .queues = e->self->dpdk_queues,
	    .lcores = e->self->dpdk_lcores,
	    .rx_check = edge_check,
	    .rx_check_ctx = e,
	};
	int rc = dp_edge_dpdk_open(&e->cfg, &p, a->eal_argc, a->eal_argv, &e->t);
	if (rc)
		fprintf(stderr, "%s: cannot open node %u's DPDK port %s: %s\n", verb, a->node_id,
			e->self->dpdk_port, strerror(-rc));
	else
		e->dpdk = e->t;
	return rc;
}

int dp_edge_open(struct dp_edge *e, const struct dp_edge_args *a, enum cfg_role role,
		 const char *verb, uint32_t rcvbuf_bytes)
{
	char err[512];
	int rc = cfg_load(a->cluster, &e->cfg, err, sizeof err);
	if (rc) {
		fprintf(stderr, "%s: %s\n", verb, err);
		return rc;
	}
	const char *role_name = role == CFG_ROLE_SEQUENCER ? "sequencer" : "replica";
	e->self = cfg_node_find(&e->cfg, a->node_id);
	if (!e->self || e->self->role != role) {
		fprintf(stderr,
			"%s: %s has no %s [node %u]; pass the id of a node with role = %s\n", verb,
			a->cluster, role_name, a->node_id, role_name);
		return -ENOENT;
	}
	cfg_client_keyring(&e->cfg, &e->client_keys);
	e->client_ctx = (struct wire_rx_ctx){.cluster_id = e->cfg.cluster_id,
					     .keys = &e->client_keys,
					     .require_auth = e->cfg.require_auth};
	e->internal_keys = (struct wire_keyring){.keys = &e->cfg.internal_key,
						 .count = e->cfg.internal_key.key_id ? 1 : 0};
	e->internal_ctx = (struct wire_rx_ctx){.cluster_id = e->cfg.cluster_id,
					       .keys = &e->internal_keys,
					       .require_auth = e->cfg.internal_auth};
	e->client_kind = role == CFG_ROLE_SEQUENCER ? WIRE_PORT_SEQUENCER : WIRE_PORT_REPLICA;

	if (cfg_node_transport(&e->cfg, e->self) == CFG_TRANSPORT_DPDK)
		rc = open_dpdk(e, a, verb);
	else
		rc = open_udp(e, a, verb, rcvbuf_bytes);
	if (rc)
		return rc;
	if (a->fault && *a->fault) {
		struct dp_fault_cfg fc;
		struct dp_transport *ft;
		if (!dp_fault_parse(a->fault, &fc, err, sizeof err)) {
			fprintf(stderr, "%s: --fault: %s\n", verb, err);
			rc = -EINVAL;
			goto out_close;
		}
		rc = dp_fault_wrap(e->t, &fc, &ft);
		if (rc)
			goto out_close;
		e->t = ft;
	}
	e->nonce_mem = malloc(wire_nonce_cache_bytes(ORDO_NONCE_CACHE_DEFAULT));
	if (!e->nonce_mem) {
		rc = -ENOMEM;
		goto out_close;
	}
	wire_nonce_cache_init(&e->nonces, e->nonce_mem, ORDO_NONCE_CACHE_DEFAULT);
	return 0;
out_close:
	dp_close(e->t);
	e->t = NULL;
	e->dpdk = NULL;
	return rc;
}

void dp_edge_close(struct dp_edge *e)
{
	dp_close(e->t);
	e->t = NULL;
	e->dpdk = NULL;
	free(e->nonce_mem);
	e->nonce_mem = NULL;
}

bool dp_edge_receive(struct dp_edge *e, const struct dp_buf *b, struct dp_edge_rx *rx)
{
	rx->internal = b->local.port == e->self->internal_port;
	rx->peer = NULL;
	const struct wire_rx_ctx *ctx = rx->internal ? &e->internal_ctx : &e->client_ctx;
	enum wire_drop d = b->rx_flags & DP_RX_CHECKED
			       ? wire_check_prechecked(ctx, b->data, b->len, &rx->h)
			       : wire_check(ctx, b->data, b->len, &rx->h);
	if (d != WIRE_DROP_NONE)
		goto drop;
	d = WIRE_DROP_TYPE;
	if (!wire_type_accepted(rx->internal ? WIRE_PORT_INTERNAL : e->client_kind, rx->h.type))
		goto drop;
	rx->body = b->data + ORDO_HDR_BYTES;
	rx->body_len = rx->h.length - ORDO_HDR_BYTES;
	if (rx->internal) {
		/* Rule 5: only from a member's internal port, under the node key.
		 * MEMBER and GROUP_ADD (ordo member, ordo group: an operator's tool
		 * on a node's host) come
		 * from a member's or a trusted address, from a port of its own. */
		d = WIRE_DROP_INTERNAL_PEER;
		if (rx->h.type == WIRE_MEMBER || rx->h.type == WIRE_GROUP_ADD) {
			/* A DPDK node's host reaches it from another address
			 * than the port's: a trusted network will do too. */
			if (!cfg_ip_is_node(&e->cfg, b->peer.ip) &&
			    !wire_cidr_match(e->cfg.trusted, e->cfg.ntrusted, b->peer.ip))
				goto drop;
		} else {
			rx->peer = cfg_node_by_addr(&e->cfg, b->peer.ip, b->peer.port);
			if (!rx->peer || rx->peer->internal_port != b->peer.port)
				goto drop;
		}
		d = WIRE_DROP_INTERNAL_AUTH;
		if (e->cfg.internal_auth &&
		    !(rx->h.authed && rx->h.key_id == e->cfg.internal_key.key_id))
			goto drop;
		rx->trusted = true;
		return true;
	}
	d = WIRE_DROP_SOURCE;
	if (!wire_source_answerable(b->peer.ip, b->peer.port, b->rx_flags & DP_RX_LOOPBACK))
		goto drop;
	rx->trusted = rx->h.authed || wire_cidr_match(e->cfg.trusted, e->cfg.ntrusted, b->peer.ip);
	d = WIRE_DROP_UNTRUSTED;
	if (!rx->trusted && rx->h.type != WIRE_STATUS_Q)
		goto drop;
	return true;
drop:
	e->drops[d]++;
	return false;
}

bool dp_edge_fresh(struct dp_edge *e, const struct dp_edge_rx *rx, uint64_t nonce)
{
	if (!rx->h.authed)
		return true;
	enum wire_drop d = wire_nonce_check(&e->nonces, rx->h.key_id, nonce, ordo_real_ns());
	if (d == WIRE_DROP_NONE)
		return true;
	e->drops[d]++;
	return false;
}

struct dp_buf *dp_edge_start(struct dp_edge *e, struct wire_writer *w, uint8_t type)
{
	struct dp_buf *b = dp_alloc(e->t);
	if (!b) {
		e->drops[WIRE_DROP_OVERLOAD]++;
		return NULL;
	}
	wire_begin(w, b->data, e->t->max_datagram, type, e->cfg.cluster_id);
	return b;
}

void dp_edge_send(struct dp_edge *e, struct dp_buf *b, struct wire_writer *w,
		  const struct wire_key *key, const struct dp_addr *peer, uint16_t local_port)
{
	b->len = wire_finish(w, key);
	b->peer = *peer;
	b->local.port = local_port;
	dp_tx_burst(e->t, &b, 1);
}

const struct wire_key *dp_edge_reply_key(const struct dp_edge *e, const struct wire_hdr *h)
{
	return h->authed ? wire_keyring_find(&e->client_keys, h->key_id) : NULL;
}

const struct wire_key *dp_edge_internal_key(const struct dp_edge *e)
{
	return e->cfg.internal_auth ? &e->cfg.internal_key : NULL;
}

ORDO_STATIC_ASSERT(WIRE_DROP__COUNT <= DP_DPDK_CHECK_CODES, "a worker counts every drop code");

/* The node's drops by reason: its own, and its worker lcores' (rules 1-4). */
static void drops_by_reason(const struct dp_edge *e, uint64_t out[WIRE_DROP__COUNT])
{
	memcpy(out, e->drops, sizeof e->drops);
	if (e->dpdk)
		dp_dpdk_check_drops(e->dpdk, out, WIRE_DROP__COUNT);
}

uint64_t dp_edge_drops_total(const struct dp_edge *e)
{
	uint64_t d[WIRE_DROP__COUNT], sum = 0;
	drops_by_reason(e, d);
	for (unsigned i = 1; i < WIRE_DROP__COUNT; i++)
		sum += d[i];
	return sum + e->t->stats.rx_truncated;
}

void dp_edge_print_drops(const struct dp_edge *e, FILE *f)
{
	uint64_t d[WIRE_DROP__COUNT];
	drops_by_reason(e, d);
	for (unsigned i = 1; i < WIRE_DROP__COUNT; i++)
		if (d[i])
			fprintf(f, "  dropped %-16s %llu\n", wire_drop_name((enum wire_drop)i),
				(unsigned long long)d[i]);
	if (e->t && e->t->stats.rx_truncated)
		fprintf(f, "  dropped %-16s %llu\n", "truncated",
			(unsigned long long)e->t->stats.rx_truncated);
}
