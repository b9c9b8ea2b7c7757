/*
 * The cluster file: one INI file (parsed with inih) that every node and client
 * of a cluster reads. It names the cluster, its constants, its keys and its
 * nodes. Errors name the file and line and say what to do.
 *
 *   [cluster]
 *   cluster_id = 0x6f72646f64656d6f     ; nonzero
 *   session_window = 256                ; W, cluster constant
 *   sessions_max = 4096                 ; cluster constant
 *   accounts_max = 1048576              ; cluster constant
 *   transfers_max = 4194304             ; cluster constant
 *   epoch_us = 1000
 *   epoch_bytes = 262144
 *   epochs_inflight = 8
 *   max_datagram = 1472
 *   require_auth = no
 *   internal_auth = on
 *   internal_key_id = 65535
 *   internal_secret = <64 hex>          ; node key: never given to clients
 *   trusted_networks = 127.0.0.0/8
 *   applied_reply = one                 ; or all
 *   applied_reply_max_age_ms = 10000
 *   session_idle_min_ms = 10000
 *   epoch_log_bytes = 67108864          ; sequencer: committed epochs kept for repair
 *   applied_log_bytes = 67108864        ; replica: applied history kept for FETCH
 *   checkpoint_bytes = 268435456        ; replica: applied log written between checkpoints
 *   applied_sync_us = 5000              ; replica: at most one applied-log fdatasync per this
 *                                       ; many us (0: one per epoch, by group commit)
 *   durability = fsync                  ; or memory (weaker: see README)
 *   election_ms = 150                   ; Raft election timeout, randomized in [T, 2T)
 *   heartbeat_ms = 30
 *   snapshot_entries = 10000            ; sequencer log entries between snapshots
 *   every_epoch = no                    ; yes: every group seals an entry per epoch_us,
 *                                       ; empty or not (default: yes with several groups)
 *   founding_groups = 1                 ; groups 0..N-1 found the cluster; groups N..
 *                                       ; join later (ordo group add); default: all
 *
 *   [key 7]
 *   secret = <64 hex>
 *
 *   [node 1]
 *   role = sequencer
 *   group = 0
 *   join = no                           ; yes: not a founding voter (ordo member add)
 *   addr = 127.0.1.1
 *   client_port = 7400
 *   internal_port = 7410
 *
 *   [node 11]
 *   role = replica
 *   addr = 127.0.2.1
 *   client_port = 7401
 *   internal_port = 7411
 */
#ifndef ORDO_CONFIG_H
#define ORDO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/constants.h"
#include "wire/wire.h"

enum cfg_role {
	CFG_ROLE_SEQUENCER = 1,
	CFG_ROLE_REPLICA = 2,
};

enum cfg_applied_reply {
	CFG_APPLIED_ONE = 0,
	CFG_APPLIED_ALL = 1,
};

/* How a node's datagrams reach it: the kernel's UDP sockets, or a DPDK port
 * (dataplane/dpdk.h). */
enum cfg_transport {
	CFG_TRANSPORT_DEFAULT = 0, /* node: as the cluster says */
	CFG_TRANSPORT_UDP = 1,
	CFG_TRANSPORT_DPDK = 2,
};

struct cfg_node {
	uint32_t node_id; /* nonzero, unique */
	enum cfg_role role;
	uint16_t group;		/* sequencers: group id, from 0 */
	uint32_t ip;		/* host order */
	uint16_t client_port;	/* 7400 sequencers, 7401 replicas by default */
	uint16_t internal_port; /* 7410 sequencers, 7411 replicas by default */
	bool join;		/* sequencers: not a founding voter; joins with ordo member add */
	uint32_t line;		/* line of its section, for messages */
	enum cfg_transport transport; /* DEFAULT: the cluster's */
	char dpdk_port[64];	      /* DPDK device name of its port ("net_af_xdp0") */
	char dpdk_vdev[192];	      /* EAL --vdev for it ("net_af_xdp0,iface=veth1"), or "" */
	char netns[32]; /* network namespace `ordo demo` and the tests start it in, or "" */
	/* RX/TX queue pairs of its DPDK port, 1..ORDO_DPDK_QUEUES_MAX (0: 1);
	 * net_af_xdp also wants queue_count=N in dpdk_vdev */
	uint16_t dpdk_queues;
	/* lcores its DPDK port's loops run on, 1..ORDO_DPDK_LCORES_MAX (0: 1):
	 * the main lcore runs the node; each further one is a worker lcore that
	 * polls its share of the RX queues (dpdk_queues >= dpdk_lcores - 1), checks
	 * each datagram (receipt rules 1-4: checksum, MAC) and hands it over. The
	 * EAL needs that many lcores (-l / --lcores in dpdk_eal). */
	uint16_t dpdk_lcores;
};

struct cfg_cluster {
	char path[256];
	uint64_t cluster_id;
	uint32_t session_window;
	uint32_t sessions_max;
	uint64_t accounts_max;
	uint64_t transfers_max;
	uint32_t epoch_us;
	uint32_t epoch_bytes;
	uint32_t epochs_inflight;
	uint32_t max_datagram;
	bool require_auth;
	bool internal_auth;
	struct wire_key internal_key; /* key_id 0 when absent */
	struct wire_key keys[ORDO_KEYS_MAX];
	uint32_t nkeys;
	struct wire_cidr trusted[ORDO_CIDRS_MAX];
	uint32_t ntrusted;
	enum cfg_applied_reply applied_reply;
	uint32_t applied_reply_max_age_ms;
	uint32_t session_idle_min_ms;
	uint64_t epoch_log_bytes;
	uint64_t applied_log_bytes;
	uint64_t
	    checkpoint_bytes; /* replica with --data: a checkpoint after this much applied log */
	uint32_t applied_sync_us;     /* replica with --data: fdatasyncs of the applied log at least
				       * this far apart (0: as soon as the previous one is done) */
	bool durability_fsync;	      /* durability = fsync (default) or memory */
	uint32_t election_ms;	      /* Raft election timeout T: randomized in [T, 2T) */
	uint32_t heartbeat_ms;	      /* leader heartbeat interval; < election_ms */
	uint32_t snapshot_entries;    /* a sequencer snapshots after this many log entries */
	enum cfg_transport transport; /* udp (default) or dpdk; a node may override it */
	char dpdk_eal[256];	      /* EAL arguments every DPDK node starts with */
	/* The leader streams committed epochs to this IPv4 multicast group (at
	 * the replicas' internal port) instead of to each replica; 0: unicast
	 * fan-out. Replicas must be on DPDK (they join it with IGMP). */
	uint32_t multicast_group;
	/* Every group seals one entry per wall-clock slot of epoch_us, empty or
	 * not (the batcher's every-epoch mode, docs/SCALEOUT.md piece 1).
	 * Default: yes when the file declares more than one group; required
	 * then. With one group and yes, the cluster can later grow. */
	bool every_epoch;
	/* Groups 0 .. founding_groups - 1 found the cluster; the groups from
	 * founding_groups on join later, each at an epoch announced with
	 * `ordo group add` (docs/PROTOCOL.md §1.7), and order nothing before.
	 * 1 .. cfg_groups; below cfg_groups requires every_epoch. Default:
	 * cfg_groups (every group founds). */
	uint16_t founding_groups;
	struct cfg_node nodes[ORDO_NODES_MAX]; /* sorted by node_id after load */
	uint32_t nnodes;
};

/* Loads and validates path. On error returns a negative errno and writes
 * "path:line: what is wrong; what to do" into err. */
ORDO_MUST_CHECK int cfg_load(const char *path, struct cfg_cluster *c, char *err, unsigned errlen);
/* Same, from a string (tests); name is used in messages. */
ORDO_MUST_CHECK int cfg_load_string(const char *text, const char *name, struct cfg_cluster *c,
				    char *err, unsigned errlen);

const struct cfg_node *cfg_node_find(const struct cfg_cluster *c, uint32_t node_id);
/* The node whose (ip, internal_port) or (ip, client_port) this is, or NULL. */
const struct cfg_node *cfg_node_by_addr(const struct cfg_cluster *c, uint32_t ip, uint16_t port);
bool cfg_ip_is_node(const struct cfg_cluster *c, uint32_t ip);
/* Replicas sorted by node_id (PROTOCOL.md §3.3 'one' policy); returns count. */
uint32_t cfg_replicas(const struct cfg_cluster *c, const struct cfg_node **out, uint32_t max);
uint32_t cfg_count_role(const struct cfg_cluster *c, enum cfg_role role);
uint16_t cfg_groups(const struct cfg_cluster *c);
/* The transport node n uses: its own setting, else the cluster's. */
enum cfg_transport cfg_node_transport(const struct cfg_cluster *c, const struct cfg_node *n);

/* The keys a client-facing port holds (the [key N] sections, sorted). */
void cfg_client_keyring(struct cfg_cluster *c, struct wire_keyring *kr);

/* Parses 64 hex digits into 32 bytes. */
bool cfg_parse_secret(const char *hex, uint8_t out[WIRE_SECRET_BYTES]);

#endif
