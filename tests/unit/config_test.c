/*
 * Unit tests of config/: a full cluster file read back field by field, the
 * defaults, each class of error (with its line number and key name), sorting,
 * the lookup helpers, and the shipped nic-config/demo.ini.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define SECRET_A "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define SECRET_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define SECRET_C "0101010101010101010101010101010101010101010101010101010101010101"

static struct cfg_cluster cl; /* large: keep it off the stack */
static char err[512];

static int load(const char *text)
{
	err[0] = '\0';
	return cfg_load_string(text, "t.ini", &cl, err, sizeof err);
}

/* A file with every key set to a value other than its default. */
static const char full[] = "; every key\n"						/* 1 */
			   "[cluster]\n"						/* 2 */
			   "cluster_id = 0x0123456789abcdef\n"				/* 3 */
			   "session_window = 1024\n"					/* 4 */
			   "sessions_max = 100\n"					/* 5 */
			   "accounts_max = 0x1000\n"					/* 6 */
			   "transfers_max = 5000\n"					/* 7 */
			   "epoch_us = 50\n"						/* 8 */
			   "epoch_bytes = 4096\n"					/* 9 */
			   "epochs_inflight = 64\n"					/* 10 */
			   "max_datagram = 8972\n"					/* 11 */
			   "require_auth = YES\n"					/* 12 */
			   "internal_auth = off\n"					/* 13 */
			   "internal_key_id = 4000000000\n"				/* 14 */
			   "internal_secret = " SECRET_A "\n"				/* 15 */
			   "trusted_networks = 10.0.0.0/8, 192.168.1.0/24 172.16.0.1\n" /* 16 */
			   "applied_reply = all   ; inline comment\n"			/* 17 */
			   "applied_reply_max_age_ms = 2500\n"				/* 18 */
			   "session_idle_min_ms = 60000\n"				/* 19 */
			   "epoch_log_bytes = 2097152\n"				/* 20 */
			   "applied_log_bytes = 3145728\n"				/* 21 */
			   "\n"								/* 22 */
			   "[key 9]\n"							/* 23 */
			   "secret = " SECRET_B "\n"					/* 24 */
			   "[key 2]\n"							/* 25 */
			   "secret = " SECRET_C "\n"					/* 26 */
			   "[node 21]\n"						/* 27 */
			   "role = replica\n"						/* 28 */
			   "addr = 10.0.0.21\n"						/* 29 */
			   "client_port = 9401\n"					/* 30 */
			   "internal_port = 9411\n"					/* 31 */
			   "[node 3]\n"							/* 32 */
			   "role = sequencer\n"						/* 33 */
			   "group = 1\n"						/* 34 */
			   "addr = 10.0.0.3\n"						/* 35 */
			   "[node 1]\n"							/* 36 */
			   "role = sequencer\n"						/* 37 */
			   "addr = 10.0.0.1\n"						/* 38 */
			   "client_port = 9400\n"					/* 39 */
			   "internal_port = 9410\n"					/* 40 */
			   "[node 12]\n"						/* 41 */
			   "role = replica\n"						/* 42 */
			   "addr = 10.0.0.12\n";					/* 43 */

Test(config, full_file_round_trip)
{
	cr_assert_eq(load(full), 0, "%s", err);
	cr_assert_str_eq(cl.path, "t.ini");
	cr_assert_eq(cl.cluster_id, 0x0123456789abcdefull);
	cr_assert_eq(cl.session_window, 1024);
	cr_assert_eq(cl.sessions_max, 100);
	cr_assert_eq(cl.accounts_max, 0x1000);
	cr_assert_eq(cl.transfers_max, 5000);
	cr_assert_eq(cl.epoch_us, 50);
	cr_assert_eq(cl.epoch_bytes, 4096);
	cr_assert_eq(cl.epochs_inflight, 64);
	cr_assert_eq(cl.max_datagram, 8972);
	cr_assert_eq(cl.require_auth, true);
	cr_assert_eq(cl.internal_auth, false);
	cr_assert_eq(cl.internal_key.key_id, 4000000000u);
	cr_assert_eq(cl.internal_key.secret[0], 0x00);
	cr_assert_eq(cl.internal_key.secret[1], 0x11);
	cr_assert_eq(cl.internal_key.secret[31], 0xFF);
	cr_assert_eq(cl.ntrusted, 3);
	cr_assert_eq(cl.trusted[0].net, 0x0A000000u);
	cr_assert_eq(cl.trusted[0].mask, 0xFF000000u);
	cr_assert_eq(cl.trusted[1].net, 0xC0A80100u);
	cr_assert_eq(cl.trusted[1].mask, 0xFFFFFF00u);
	cr_assert_eq(cl.trusted[2].net, 0xAC100001u);
	cr_assert_eq(cl.trusted[2].mask, 0xFFFFFFFFu);
	cr_assert_eq(cl.applied_reply, CFG_APPLIED_ALL);
	cr_assert_eq(cl.applied_reply_max_age_ms, 2500);
	cr_assert_eq(cl.session_idle_min_ms, 60000);
	cr_assert_eq(cl.epoch_log_bytes, 2097152);
	cr_assert_eq(cl.applied_log_bytes, 3145728);

	/* Keys sorted by id. */
	cr_assert_eq(cl.nkeys, 2);
	cr_assert_eq(cl.keys[0].key_id, 2);
	cr_assert_eq(cl.keys[0].secret[0], 0x01);
	cr_assert_eq(cl.keys[1].key_id, 9);
	cr_assert_eq(cl.keys[1].secret[0], 0xFF);
	cr_assert_eq(cl.keys[1].secret[31], 0x00);

	/* Nodes sorted by id, ports defaulted by role, lines kept. */
	cr_assert_eq(cl.nnodes, 4);
	const struct cfg_node *n = cl.nodes;
	cr_assert_eq(n[0].node_id, 1);
	cr_assert_eq(n[0].role, CFG_ROLE_SEQUENCER);
	cr_assert_eq(n[0].group, 0);
	cr_assert_eq(n[0].ip, 0x0A000001u);
	cr_assert_eq(n[0].client_port, 9400);
	cr_assert_eq(n[0].internal_port, 9410);
	cr_assert_eq(n[0].line, 36);
	cr_assert_eq(n[1].node_id, 3);
	cr_assert_eq(n[1].group, 1);
	cr_assert_eq(n[1].client_port, ORDO_SEQ_CLIENT_PORT);
	cr_assert_eq(n[1].internal_port, ORDO_SEQ_INTERNAL_PORT);
	cr_assert_eq(n[1].line, 32);
	cr_assert_eq(n[2].node_id, 12);
	cr_assert_eq(n[2].role, CFG_ROLE_REPLICA);
	cr_assert_eq(n[2].client_port, ORDO_REPLICA_CLIENT_PORT);
	cr_assert_eq(n[2].internal_port, ORDO_REPLICA_INTERNAL_PORT);
	cr_assert_eq(n[3].node_id, 21);
	cr_assert_eq(n[3].client_port, 9401);
	cr_assert_eq(n[3].internal_port, 9411);
	cr_assert_eq(n[3].line, 27);
}

Test(config, defaults)
{
	cr_assert_eq(load("[cluster]\ncluster_id = 5\ninternal_auth = no\n"
			  "[node 1]\nrole = sequencer\naddr = 127.0.0.1\n"
			  "[node 2]\nrole = replica\naddr = 127.0.0.1\n"),
		     0, "%s", err);
	cr_assert_eq(cl.cluster_id, 5);
	cr_assert_eq(cl.session_window, ORDO_SESSION_WINDOW_DEFAULT);
	cr_assert_eq(cl.sessions_max, ORDO_SESSIONS_MAX_DEFAULT);
	cr_assert_eq(cl.accounts_max, ORDO_ACCOUNTS_MAX_DEFAULT);
	cr_assert_eq(cl.transfers_max, ORDO_TRANSFERS_MAX_DEFAULT);
	cr_assert_eq(cl.epoch_us, ORDO_EPOCH_US_DEFAULT);
	cr_assert_eq(cl.epoch_bytes, ORDO_EPOCH_BYTES_DEFAULT);
	cr_assert_eq(cl.epochs_inflight, ORDO_EPOCHS_INFLIGHT_DEFAULT);
	cr_assert_eq(cl.max_datagram, ORDO_DATAGRAM_MIN_MAX);
	cr_assert_eq(cl.require_auth, false);
	cr_assert_eq(cl.internal_auth, false);
	cr_assert_eq(cl.internal_key.key_id, 0);
	cr_assert_eq(cl.ntrusted, 1);
	cr_assert_eq(cl.trusted[0].net, 0x7F000000u);
	cr_assert_eq(cl.trusted[0].mask, 0xFF000000u);
	cr_assert_eq(cl.applied_reply, CFG_APPLIED_ONE);
	cr_assert_eq(cl.applied_reply_max_age_ms, ORDO_APPLIED_REPLY_MAX_AGE_MS_DEFAULT);
	cr_assert_eq(cl.session_idle_min_ms, ORDO_SESSION_IDLE_MIN_MS_DEFAULT);
	cr_assert_eq(cl.epoch_log_bytes, ORDO_EPOCH_LOG_BYTES_DEFAULT);
	cr_assert_eq(cl.applied_log_bytes, ORDO_APPLIED_LOG_BYTES_DEFAULT);
	cr_assert_eq(cl.nkeys, 0);
	/* Same ip, different default ports per role: no clash. */
	cr_assert_eq(cl.nodes[0].client_port, 7400);
	cr_assert_eq(cl.nodes[0].internal_port, 7410);
	cr_assert_eq(cl.nodes[1].client_port, 7401);
	cr_assert_eq(cl.nodes[1].internal_port, 7411);

	/* internal_auth defaults to on, so without a secret the file is refused. */
	cr_assert_lt(load("[cluster]\ncluster_id = 5\n[node 1]\nrole = sequencer\naddr = "
			  "127.0.0.1\n"),
		     0);
	cr_assert_not_null(strstr(err, "internal_secret"), "%s", err);

	/* Booleans in every spelling; an empty trusted list trusts nobody. */
	static const char *const spell[][2] = {
	    {"yes", "no"}, {"true", "false"}, {"on", "off"}, {"1", "0"}, {"On", "FALSE"}};
	for (unsigned i = 0; i < ORDO_ARRAY_LEN(spell); i++) {
		char text[256];
		snprintf(text, sizeof text,
			 "[cluster]\ncluster_id=1\nrequire_auth=%s\ninternal_auth=%s\n"
			 "trusted_networks =\n[key 1]\nsecret=" SECRET_A
			 "\n[node 1]\nrole=sequencer\naddr=1.2.3.4\n",
			 spell[i][0], spell[i][1]);
		cr_assert_eq(load(text), 0, "%s: %s", spell[i][0], err);
		cr_assert(cl.require_auth);
		cr_assert_not(cl.internal_auth);
		cr_assert_eq(cl.ntrusted, 0);
	}
}

/* The head of a valid file; errors below add lines after it (line 8 on). */
#define HEAD                                                                                       \
	"[cluster]\n"		/* 1 */                                                            \
	"cluster_id = 77\n"	/* 2 */                                                            \
	"internal_auth = off\n" /* 3 */                                                            \
	"[node 1]\n"		/* 4 */                                                            \
	"role = sequencer\n"	/* 5 */                                                            \
	"addr = 127.0.1.1\n"	/* 6 */                                                            \
	"client_port = 7400\n"	/* 7 */

static void expect_error(const char *text, const char *where, const char *what)
{
	cr_assert_lt(load(text), 0, "accepted:\n%s", text);
	cr_assert_not_null(strstr(err, where), "error '%s' lacks '%s'", err, where);
	if (what)
		cr_assert_not_null(strstr(err, what), "error '%s' lacks '%s'", err, what);
	cr_assert_not_null(strstr(err, "; "), "error '%s' says what to do", err);
}

Test(config, errors_name_line_and_key)
{
	cr_assert_eq(load(HEAD), 0, "%s", err);

	/* Unknown keys and sections. */
	expect_error("[cluster]\ncluster_id = 1\nepoch_ms = 5\n", "t.ini:3: ",
		     "unknown key 'epoch_ms' in [cluster]; expected one of: cluster_id");
	expect_error(HEAD "colour = blue\n", "t.ini:8: ", "unknown key 'colour' in [node 1]");
	expect_error(HEAD "[key 4]\nsecrit = " SECRET_A "\n", "t.ini:9: ", "'secrit'");
	expect_error(HEAD "[nodes 2]\n", "t.ini:8: ", "unknown section [nodes 2]");
	expect_error(HEAD "[node 0]\n", "t.ini:8: ", "[node 0]");
	expect_error(HEAD "[node x]\n", "t.ini:8: ", "[node x]");
	expect_error(HEAD "[key 99999999999]\n", "t.ini:8: ", "[key 99999999999]");
	expect_error("cluster_id = 1\n" HEAD, "t.ini:1: ", "'cluster_id' is outside");

	/* Values. */
	expect_error(HEAD "group = 1x\n", "t.ini:8: ", "group");
	expect_error(HEAD "client_port = 70000\n", "t.ini:8: ", "client_port");
	expect_error(HEAD "client_port = 0\n", "t.ini:8: ", "client_port");
	expect_error(HEAD "addr = 127.0.1\n", "t.ini:8: ", "addr");
	expect_error(HEAD "role = leader\n", "t.ini:8: ", "role");
	expect_error(HEAD "[cluster]\n", "t.ini:8: ", "second [cluster]");
	expect_error("[cluster]\ncluster_id = 0\n", "t.ini:2: ", "cluster_id");
	expect_error("[cluster]\ncluster_id = 0x\n", "t.ini:2: ", "cluster_id");
	expect_error("[cluster]\ncluster_id = 0x10000000000000000\n", "t.ini:2: ", "cluster_id");
	expect_error("[cluster]\ncluster_id = -1\n", "t.ini:2: ", "cluster_id");
	expect_error("[cluster]\ncluster_id = 1\n\nsession_window = 100\n",
		     "t.ini:4: ", "session_window");
	expect_error("[cluster]\nsession_window = 8192\n", "t.ini:2: ", "session_window");
	expect_error("[cluster]\nsessions_max = 0\n", "t.ini:2: ", "sessions_max");
	expect_error("[cluster]\nsessions_max = 1048577\n", "t.ini:2: ", "sessions_max");
	expect_error("[cluster]\nmax_datagram = 1471\n", "t.ini:2: ", "max_datagram");
	expect_error("[cluster]\nmax_datagram = 8973\n", "t.ini:2: ", "max_datagram");
	expect_error("[cluster]\nepoch_us = 49\n", "t.ini:2: ", "epoch_us");
	expect_error("[cluster]\nepoch_us = 1000001\n", "t.ini:2: ", "epoch_us");
	expect_error("[cluster]\nepoch_bytes = 4095\n", "t.ini:2: ", "epoch_bytes");
	expect_error("[cluster]\nepochs_inflight = 65\n", "t.ini:2: ", "epochs_inflight");
	expect_error("[cluster]\naccounts_max = 0x10000001\n", "t.ini:2: ", "accounts_max");
	expect_error("[cluster]\ntransfers_max = 0\n", "t.ini:2: ", "transfers_max");
	expect_error("[cluster]\nrequire_auth = maybe\n", "t.ini:2: ", "require_auth");
	expect_error("[cluster]\napplied_reply = some\n", "t.ini:2: ", "applied_reply");
	expect_error("[cluster]\ninternal_secret = abcd\n", "t.ini:2: ", "internal_secret");
	expect_error("[cluster]\ninternal_secret = " SECRET_A "0\n",
		     "t.ini:2: ", "internal_secret");
	expect_error("[cluster]\ninternal_key_id = 0\n", "t.ini:2: ", "internal_key_id");
	expect_error("[cluster]\ntrusted_networks = 10.0.0.0/8, 10.0.0.0/33\n",
		     "t.ini:2: ", "'10.0.0.0/33'");
	expect_error("[cluster]\ncluster_id = 1\ncluster_id = 2\n",
		     "t.ini:3: ", "cluster_id set twice");
	expect_error(HEAD "addr = 127.0.1.2\n", "t.ini:8: ", "addr set twice");
	expect_error(HEAD "[key 3]\nsecret = " SECRET_A "\nsecret = " SECRET_B "\n",
		     "t.ini:10: ", "secret set twice");

	/* Syntax. */
	expect_error(HEAD "just words\n", "t.ini:8: ", "cannot parse");
	expect_error(HEAD "just words\nbogus = 1\n", "t.ini:8: ", "cannot parse");
	expect_error(HEAD "addr ; = 1.2.3.4\n", "t.ini:8: ", "cannot parse");
	expect_error(HEAD "[node 2\n", "t.ini:8: ", "']'");
	expect_error(HEAD "  addr = 1.2.3.4\n", "t.ini:8: ", "indented");
	char longline[600];
	snprintf(longline, sizeof longline, HEAD "; %0300d\n", 0);
	expect_error(longline, "t.ini:8: ", "longer than");

	/* Whole-file checks. */
	expect_error(HEAD "[node 1]\n", "t.ini:8: ", "duplicate [node 1] (also at line 4)");
	expect_error(HEAD "[key 5]\nsecret = " SECRET_A "\n[key 5]\n",
		     "t.ini:10: ", "duplicate [key 5]");
	expect_error(HEAD "[key 5]\n", "t.ini:8: ", "[key 5] has no secret");
	expect_error(HEAD "[node 2]\naddr = 127.0.1.2\n", "t.ini:8: ", "[node 2] has no role");
	expect_error(HEAD "[node 2]\nrole = replica\n", "t.ini:8: ", "[node 2] has no addr");
	expect_error(HEAD "[node 2]\nrole = replica\naddr = 127.0.1.1\nclient_port = 7400\n",
		     "t.ini:8: ", "127.0.1.1:7400");
	expect_error(HEAD "[node 2]\nrole = replica\naddr = 127.0.1.1\ninternal_port = 7400\n",
		     "t.ini:8: ", "[node 2] and [node 1]");
	expect_error(HEAD "internal_port = 7400\n",
		     "t.ini:4: ", "both client_port and internal_port");
	expect_error(HEAD "[node 2]\nrole = replica\ngroup = 0\naddr = 1.1.1.1\n",
		     "t.ini:10: ", "group applies to sequencers only");
	expect_error(HEAD "group = 1\n", "t.ini:", "group 0 has no node");
	expect_error("[cluster]\ncluster_id = 1\ninternal_auth = off\n[node 2]\nrole = "
		     "replica\naddr = 1.1.1.1\n",
		     "t.ini:6: ", "no sequencer");
	expect_error("; nothing\n", "t.ini:1: ", "no [cluster] section");
	expect_error("[cluster]\ninternal_auth = off\n", "t.ini:1: ", "no cluster_id");
	expect_error("[cluster]\ncluster_id = 1\n\ninternal_auth = on\n[node 1]\nrole = "
		     "sequencer\naddr = 1.1.1.1\n",
		     "t.ini:4: ", "internal_secret");
	expect_error("[cluster]\ncluster_id = 1\ninternal_secret = " SECRET_A
		     "\n[node 1]\nrole = sequencer\naddr = 1.1.1.1\n",
		     "t.ini:3: ", "internal_key_id");
	expect_error("[cluster]\ncluster_id = 1\ninternal_key_id = 8\ninternal_auth = off\n[node "
		     "1]\nrole = sequencer\naddr = 1.1.1.1\n",
		     "t.ini:3: ", "internal_secret");
	expect_error("[cluster]\ncluster_id = 1\ninternal_key_id = 8\ninternal_secret = " SECRET_A
		     "\n[key 8]\nsecret = " SECRET_B
		     "\n[node 1]\nrole = sequencer\naddr = 1.1.1.1\n",
		     "t.ini:3: ", "internal_key_id 8 is also [key 8] (line 5)");
	expect_error("[cluster]\ncluster_id = 1\ninternal_auth = off\nrequire_auth = yes\n[node "
		     "1]\nrole = sequencer\naddr = 1.1.1.1\n",
		     "t.ini:4: ", "require_auth");
	expect_error("[cluster]\ncluster_id = 1\ninternal_auth = off\nepoch_bytes = 4194304\n"
		     "epoch_log_bytes = 2097152\n[node 1]\nrole = sequencer\naddr = 1.1.1.1\n",
		     "t.ini:5: ", "epoch_log_bytes");
}

Test(config, limits_on_counts)
{
	static char text[64 * 1024];
	size_t n = (size_t)snprintf(text, sizeof text, "%s", HEAD);
	for (unsigned i = 2; i <= ORDO_NODES_MAX + 1; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "[node %u]\nrole = replica\naddr = 10.0.%u.%u\n", i, i / 256,
				      i % 256);
	expect_error(text, "t.ini:", "more than 64 [node N]");
	n = (size_t)snprintf(text, sizeof text, "[cluster]\ntrusted_networks =");
	for (unsigned i = 0; i <= ORDO_CIDRS_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%u.0.0.0/8,", i);
	snprintf(text + n, sizeof text - n, "\n");
	/* 33 CIDRs do not fit on one inih line; either error is a refusal. */
	cr_assert_lt(load(text), 0);
	cr_assert_not_null(strstr(err, "t.ini:2: "), "%s", err);
}

Test(config, file_errors)
{
	cr_assert_eq(cfg_load("/nonexistent/ordo.ini", &cl, err, sizeof err), -ENOENT);
	cr_assert_not_null(strstr(err, "/nonexistent/ordo.ini"), "%s", err);
	char path[] = "/tmp/ordo_cfg_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *text = HEAD "bogus = 1\n";
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(cfg_load(path, &cl, err, sizeof err), -EINVAL);
	char want[64];
	snprintf(want, sizeof want, "%s:8: unknown key 'bogus'", path);
	cr_assert_not_null(strstr(err, want), "%s", err);
	unlink(path);
	/* No err buffer is fine. */
	cr_assert_lt(cfg_load_string("[x]\n", "t", &cl, NULL, 0), 0);
}

Test(config, helpers)
{
	cr_assert_eq(load(full), 0, "%s", err);
	const struct cfg_node *n = cfg_node_find(&cl, 12);
	cr_assert_not_null(n);
	cr_assert_eq(n->ip, 0x0A00000Cu);
	cr_assert_null(cfg_node_find(&cl, 2));
	cr_assert_null(cfg_node_find(&cl, 0));

	cr_assert_eq(cfg_node_by_addr(&cl, 0x0A000001u, 9400)->node_id, 1);
	cr_assert_eq(cfg_node_by_addr(&cl, 0x0A000001u, 9410)->node_id, 1);
	cr_assert_null(cfg_node_by_addr(&cl, 0x0A000001u, 7400));
	cr_assert_eq(cfg_node_by_addr(&cl, 0x0A000015u, 9411)->node_id, 21);
	cr_assert_null(cfg_node_by_addr(&cl, 0x0A000016u, 9411));

	cr_assert(cfg_ip_is_node(&cl, 0x0A000003u));
	cr_assert_not(cfg_ip_is_node(&cl, 0x0A000004u));

	const struct cfg_node *reps[8];
	cr_assert_eq(cfg_replicas(&cl, reps, 8), 2);
	cr_assert_eq(reps[0]->node_id, 12);
	cr_assert_eq(reps[1]->node_id, 21);
	cr_assert_eq(cfg_replicas(&cl, reps, 1), 1);
	cr_assert_eq(reps[0]->node_id, 12);

	cr_assert_eq(cfg_count_role(&cl, CFG_ROLE_SEQUENCER), 2);
	cr_assert_eq(cfg_count_role(&cl, CFG_ROLE_REPLICA), 2);
	cr_assert_eq(cfg_groups(&cl), 2);

	struct wire_keyring kr;
	cfg_client_keyring(&cl, &kr);
	cr_assert_eq(kr.count, 2);
	cr_assert_eq(kr.keys[0].key_id, 2);
	cr_assert_eq(kr.keys[1].key_id, 9);
	cr_assert_eq(wire_keyring_find(&kr, 9), &kr.keys[1]);
	cr_assert_null(wire_keyring_find(&kr, 4000000000u), "node key is not a client key");

	uint8_t s[WIRE_SECRET_BYTES];
	cr_assert(cfg_parse_secret(SECRET_A, s));
	cr_assert_eq(s[15], 0xFF);
	cr_assert_eq(s[30], 0xEE);
	cr_assert_not(cfg_parse_secret("", s));
	cr_assert_not(cfg_parse_secret(SECRET_A "00", s));
	char bad[] = SECRET_A;
	bad[17] = 'g';
	cr_assert_not(cfg_parse_secret(bad, s));
	cr_assert_not(cfg_parse_secret(" " SECRET_A, s));
	cr_assert_not(cfg_parse_secret(NULL, s));
}

/* nic-config/demo.ini, found from this file's path (relative __FILE__ is
 * relative to the build directory, two levels above the test binary). */
static void demo_path(char *out, size_t outlen)
{
	char src[PATH_MAX];
	if (__FILE__[0] == '/') {
		snprintf(src, sizeof src, "%s", __FILE__);
	} else {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		cr_assert_gt(n, 0);
		exe[n] = '\0';
		snprintf(src, sizeof src, "%s/../../%s", dirname(exe), __FILE__);
	}
	snprintf(out, outlen, "%s/../../nic-config/demo.ini", dirname(src));
}

Test(config, demo_ini_loads)
{
	char path[2 * PATH_MAX];
	demo_path(path, sizeof path);
	int rv = cfg_load(path, &cl, err, sizeof err);
	cr_assert_eq(rv, 0, "%s (%d)", err, rv);
	cr_assert_eq(cl.cluster_id, 0x6f72646f2d64656dull);
	cr_assert(cl.internal_auth);
	cr_assert_neq(cl.internal_key.key_id, 0);
	cr_assert_eq(cl.epoch_us, 1000);
	cr_assert_eq(cl.nkeys, 1);
	cr_assert_eq(cl.keys[0].key_id, 1);
	cr_assert_eq(cl.ntrusted, 1);
	cr_assert_eq(cl.trusted[0].net, 0x7F000000u);
	cr_assert_eq(cfg_count_role(&cl, CFG_ROLE_SEQUENCER), 3);
	cr_assert_eq(cfg_count_role(&cl, CFG_ROLE_REPLICA), 3);
	cr_assert_eq(cfg_groups(&cl), 1);
	for (uint32_t id = 1; id <= 3; id++) { /* the 3-node group on 127.0.1.1-3:7400 */
		const struct cfg_node *s = cfg_node_find(&cl, id);
		cr_assert_not_null(s);
		cr_assert_eq(s->role, CFG_ROLE_SEQUENCER);
		cr_assert_eq(s->group, 0);
		cr_assert_eq(s->ip, 0x7F000100u + id);
		cr_assert_eq(s->client_port, 7400);
		cr_assert_eq(s->internal_port, 7410);
	}
	for (uint32_t id = 11; id <= 13; id++) {
		const struct cfg_node *r = cfg_node_find(&cl, id);
		cr_assert_not_null(r);
		cr_assert_eq(r->role, CFG_ROLE_REPLICA);
		cr_assert_eq(r->ip, 0x7F000200u + (id - 10));
		cr_assert_eq(r->client_port, 7401);
		cr_assert_eq(r->internal_port, 7411);
	}
}

/* The sequencer group's settings: durability mode, Raft timing, snapshots. */
Test(config, raft_settings)
{
	static const char base[] = "[cluster]\ncluster_id = 1\ninternal_auth = off\n"
				   "[node 1]\nrole = sequencer\naddr = 127.0.0.1\n";
	cr_assert_eq(load(base), 0, "%s", err);
	cr_assert(cl.durability_fsync, "fsync is the default");
	cr_assert_eq(cl.election_ms, ORDO_ELECTION_MS_DEFAULT);
	cr_assert_eq(cl.heartbeat_ms, ORDO_HEARTBEAT_MS_DEFAULT);
	cr_assert_eq(cl.snapshot_entries, ORDO_SNAPSHOT_ENTRIES_DEFAULT);

	char text[512];
	snprintf(text, sizeof text,
		 "[cluster]\ncluster_id = 1\ninternal_auth = off\ndurability = memory\n"
		 "election_ms = 500\nheartbeat_ms = 100\nsnapshot_entries = 64\n"
		 "[node 1]\nrole = sequencer\naddr = 127.0.0.1\n");
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_not(cl.durability_fsync);
	cr_assert_eq(cl.election_ms, 500);
	cr_assert_eq(cl.heartbeat_ms, 100);
	cr_assert_eq(cl.snapshot_entries, 64);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\ndurability = disk\n"
			   "[node 1]\nrole = sequencer\naddr = 127.0.0.1\n"),
		      0);
	cr_assert_not_null(strstr(err, "t.ini:4:"), "%s", err);
	cr_assert_not_null(strstr(err, "durability"), "%s", err);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\nelection_ms = 100\n"
			   "heartbeat_ms = 100\n[node 1]\nrole = sequencer\naddr = 127.0.0.1\n"),
		      0);
	cr_assert_not_null(strstr(err, "heartbeat_ms"), "%s", err);
	cr_assert_not_null(strstr(err, "t.ini:5:"), "%s", err);
}

/* Transport: udp by default; dpdk for the cluster or per node, which then
 * needs its DPDK port named. */
Test(config, transport)
{
	cr_assert_eq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			  "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"),
		     0, "%s", err);
	cr_assert_eq(cl.transport, CFG_TRANSPORT_UDP);
	cr_assert_eq(cfg_node_transport(&cl, &cl.nodes[0]), CFG_TRANSPORT_UDP);

	cr_assert_eq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\ntransport = dpdk\n"
			  "dpdk_eal = --in-memory --no-pci\n"
			  "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ndpdk_port = net_af_xdp0\n"
			  "dpdk_vdev = net_af_xdp0,iface=ordo-n1,queue_count=4\ndpdk_queues = 4\n"
			  "[node 11]\nrole = replica\naddr = 10.0.0.11\ntransport = udp\n"),
		     0, "%s", err);
	cr_assert_eq(cfg_node_find(&cl, 1)->dpdk_queues, 4);
	cr_assert_eq(cfg_node_find(&cl, 11)->dpdk_queues, 0, "unset: one queue");
	cr_assert_eq(cl.transport, CFG_TRANSPORT_DPDK);
	cr_assert_str_eq(cl.dpdk_eal, "--in-memory --no-pci");
	cr_assert_eq(cfg_node_transport(&cl, cfg_node_find(&cl, 1)), CFG_TRANSPORT_DPDK);
	cr_assert_str_eq(cfg_node_find(&cl, 1)->dpdk_port, "net_af_xdp0");
	cr_assert_str_eq(cfg_node_find(&cl, 1)->dpdk_vdev,
			 "net_af_xdp0,iface=ordo-n1,queue_count=4");
	cr_assert_eq(cfg_node_transport(&cl, cfg_node_find(&cl, 11)), CFG_TRANSPORT_UDP);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			   "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ntransport = dpdk\n"),
		      0);
	cr_assert_not_null(strstr(err, "t.ini:4:"), "%s", err);
	cr_assert_not_null(strstr(err, "dpdk_port"), "%s", err);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\ntransport = xdp\n"
			   "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"),
		      0);
	cr_assert_not_null(strstr(err, "t.ini:4:"), "%s", err);
	cr_assert_not_null(strstr(err, "transport"), "%s", err);

	for (int k = 0; k < 2; k++) {
		cr_assert_neq(
		    load(k ? "[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			     "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ndpdk_queues = 17\n"
			   : "[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			     "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ndpdk_queues = 0\n"),
		    0);
		cr_assert_not_null(strstr(err, "t.ini:7:"), "%s", err);
		cr_assert_not_null(strstr(err, "dpdk_queues"), "%s", err);
	}
}

/* dpdk_lcores: 1..16, and a worker lcore needs an RX queue of its own. */
Test(config, dpdk_lcores)
{
	cr_assert_eq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			  "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ndpdk_queues = 2\n"
			  "dpdk_lcores = 3\n"
			  "[node 11]\nrole = replica\naddr = 10.0.0.11\ndpdk_lcores = 2\n"),
		     0, "%s", err);
	cr_assert_eq(cfg_node_find(&cl, 1)->dpdk_lcores, 3);
	cr_assert_eq(cfg_node_find(&cl, 11)->dpdk_lcores, 2, "one worker, the one queue");

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			   "[node 1]\nrole = sequencer\naddr = 10.0.0.1\ndpdk_queues = 2\n"
			   "dpdk_lcores = 4\n"),
		      0);
	cr_assert_not_null(strstr(err, "t.ini:8:"), "%s", err);
	cr_assert_not_null(strstr(err, "dpdk_queues = 3"), "%s", err);

	for (int k = 0; k < 2; k++) {
		cr_assert_neq(load(k ? "[cluster]\ncluster_id = 1\ninternal_auth = off\n"
				       "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"
				       "dpdk_lcores = 17\n"
				     : "[cluster]\ncluster_id = 1\ninternal_auth = off\n"
				       "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"
				       "dpdk_lcores = 0\n"),
			      0);
		cr_assert_not_null(strstr(err, "t.ini:7:"), "%s", err);
		cr_assert_not_null(strstr(err, "dpdk_lcores"), "%s", err);
	}
}

/* multicast_group: a multicast address, and only with DPDK replicas that
 * share one internal port. */
Test(config, multicast_group)
{
	static const char dpdk_reps[] =
	    "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"
	    "[node 11]\nrole = replica\naddr = 10.0.0.11\ntransport = dpdk\ndpdk_port = p0\n"
	    "[node 12]\nrole = replica\naddr = 10.0.0.12\ntransport = dpdk\ndpdk_port = p0\n";
	char text[1024];
	snprintf(text, sizeof text,
		 "[cluster]\ncluster_id = 1\ninternal_auth = off\nmulticast_group = 239.0.77.1\n%s",
		 dpdk_reps);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cl.multicast_group, 0xEF004D01u);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			   "multicast_group = 10.0.0.1\n"),
		      0);
	cr_assert_not_null(strstr(err, "t.ini:4:"), "%s", err);
	cr_assert_not_null(strstr(err, "multicast"), "%s", err);

	cr_assert_neq(load("[cluster]\ncluster_id = 1\ninternal_auth = off\n"
			   "multicast_group = 239.0.77.1\n"
			   "[node 1]\nrole = sequencer\naddr = 10.0.0.1\n"
			   "[node 11]\nrole = replica\naddr = 10.0.0.11\n"),
		      0);
	cr_assert_not_null(strstr(err, "transport = dpdk"), "%s", err);

	snprintf(text, sizeof text,
		 "[cluster]\ncluster_id = 1\ninternal_auth = off\nmulticast_group = 239.0.77.1\n%s"
		 "internal_port = 7412\n",
		 dpdk_reps);
	cr_assert_neq(load(text), 0);
	cr_assert_not_null(strstr(err, "internal_port"), "%s", err);
}

/* every_epoch and founding_groups (adding a group, docs/PROTOCOL.md §1.7):
 * their defaults follow the groups the file declares, and each
 * inconsistent pair is refused at the key's line. */
#define TWO_GROUPS                                                                                 \
	"[node 2]\n"	     /* 8 */                                                               \
	"role = sequencer\n" /* 9 */                                                               \
	"group = 1\n"	     /* 10 */                                                              \
	"addr = 127.0.1.2\n" /* 11 */

Test(config, every_epoch_and_founding_groups)
{
	/* one group: every_epoch off, the group founds */
	cr_assert_eq(load(HEAD), 0, "%s", err);
	cr_assert_not(cl.every_epoch);
	cr_assert_eq(cl.founding_groups, 1);
	/* several groups: every_epoch on, every group founds */
	cr_assert_eq(load(HEAD TWO_GROUPS), 0, "%s", err);
	cr_assert(cl.every_epoch);
	cr_assert_eq(cl.founding_groups, 2);
	cr_assert_eq(load(full), 0, "%s", err);
	cr_assert(cl.every_epoch, "full declares groups 0 and 1");
	cr_assert_eq(cl.founding_groups, 2);
	/* one group that can grow later */
	cr_assert_eq(load("[cluster]\ncluster_id = 77\ninternal_auth = off\nevery_epoch = yes\n"
			  "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"),
		     0, "%s", err);
	cr_assert(cl.every_epoch);
	cr_assert_eq(cl.founding_groups, 1);
	/* group 1 is added later: every_epoch defaults to yes */
	cr_assert_eq(load("[cluster]\ncluster_id = 77\ninternal_auth = off\nfounding_groups = 1\n"
			  "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"
			  "[node 2]\nrole = sequencer\ngroup = 1\naddr = 127.0.1.2\n"),
		     0, "%s", err);
	cr_assert(cl.every_epoch);
	cr_assert_eq(cl.founding_groups, 1);
	cr_assert_eq(load("[cluster]\ncluster_id = 77\ninternal_auth = off\nfounding_groups = 2\n"
			  "every_epoch = on\n"
			  "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"
			  "[node 2]\nrole = sequencer\ngroup = 1\naddr = 127.0.1.2\n"),
		     0, "%s", err);
	cr_assert_eq(cl.founding_groups, 2);

	expect_error("[cluster]\ncluster_id = 77\nfounding_groups = 0\n",
		     "t.ini:3: ", "founding_groups = 0 is out of range");
	expect_error("[cluster]\ncluster_id = 77\nevery_epoch = sometimes\n",
		     "t.ini:3: ", "every_epoch = 'sometimes' is not a boolean");
	expect_error("[cluster]\ncluster_id = 77\ninternal_auth = off\nfounding_groups = 3\n"
		     "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"
		     "[node 2]\nrole = sequencer\ngroup = 1\naddr = 127.0.1.2\n",
		     "t.ini:4: ", "founding_groups = 3, but the file declares 2 sequencer groups");
	expect_error("[cluster]\ncluster_id = 77\ninternal_auth = off\nfounding_groups = 2\n"
		     "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n",
		     "t.ini:4: ", "founding_groups = 2, but the file declares 1 sequencer group ");
	expect_error("[cluster]\ncluster_id = 77\ninternal_auth = off\nfounding_groups = 1\n"
		     "every_epoch = no\n"
		     "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"
		     "[node 2]\nrole = sequencer\ngroup = 1\naddr = 127.0.1.2\n",
		     "t.ini:5: ", "every_epoch = no, but the file declares 2 sequencer groups");
	expect_error("[cluster]\ncluster_id = 77\ninternal_auth = off\nevery_epoch = off\n"
		     "[node 1]\nrole = sequencer\naddr = 127.0.1.1\n"
		     "[node 2]\nrole = sequencer\ngroup = 1\naddr = 127.0.1.2\n",
		     "t.ini:4: ", "set it to yes");
	expect_error("[cluster]\ncluster_id = 77\nevery_epoch = yes\nevery_epoch = no\n",
		     "t.ini:4: ", "every_epoch set twice");
}

/* A group that joins later is named in an epoch header (join_group), which
 * holds groups below ORDO_GROUPS_MAX. */
Test(config, groups_that_join_are_below_groups_max)
{
	static char text[8192];
	for (uint32_t founding = ORDO_GROUPS_MAX; founding <= ORDO_GROUPS_MAX + 1; founding++) {
		int n = snprintf(text, sizeof text,
				 "[cluster]\ncluster_id = 77\ninternal_auth = off\n"
				 "founding_groups = %u\n",
				 founding);
		for (uint32_t g = 0; g <= ORDO_GROUPS_MAX; g++)
			n +=
			    snprintf(text + n, sizeof text - (size_t)n,
				     "[node %u]\nrole = sequencer\ngroup = %u\naddr = 127.0.1.%u\n",
				     g + 1, g, g + 1);
		if (founding == ORDO_GROUPS_MAX + 1) {
			cr_assert_eq(load(text), 0, "%s", err);
			cr_assert_eq(cl.founding_groups, ORDO_GROUPS_MAX + 1);
		} else {
			expect_error(text, "t.ini:4: ", "joins later");
		}
	}
}

/* applied_sync_us: 5 ms by default, 0 allowed (one sync per epoch), at most
 * a second; a bad value names its line. */
Test(config, applied_sync_us)
{
	static const char node[] = "[node 1]\nrole = sequencer\naddr = 127.0.0.1\n"
				   "[node 11]\nrole = replica\naddr = 127.0.0.2\n";
	char text[256];
	snprintf(text, sizeof text, "[cluster]\ncluster_id = 1\ninternal_auth = off\n%s", node);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cl.applied_sync_us, ORDO_APPLIED_SYNC_US_DEFAULT);
	snprintf(text, sizeof text,
		 "[cluster]\ncluster_id = 1\ninternal_auth = off\napplied_sync_us = 0\n%s", node);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cl.applied_sync_us, 0);
	snprintf(text, sizeof text,
		 "[cluster]\ncluster_id = 1\ninternal_auth = off\napplied_sync_us = 1000001\n%s",
		 node);
	cr_assert_neq(load(text), 0);
	cr_assert_not_null(strstr(err, "t.ini:4:"), "%s", err);
	cr_assert_not_null(strstr(err, "applied_sync_us"), "%s", err);
}
