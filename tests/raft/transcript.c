/*
 * Transcript tests for the Raft core, in the style of etcd-io/raft's
 * datadriven testdata: each file in testdata/ is a script of commands, each
 * followed by "----" and the expected output, ended by a blank line.
 * Lines starting with '#' and blank lines between commands are comments.
 * With ORDO_RAFT_REWRITE=1 the files are rewritten with the actual output
 * (for authoring; the committed output is checked by hand).
 *
 * Commands (ids are node ids 1..9):
 *   add-nodes N [voters=(1,2,3)] [index=I] [max-msg-entries=K]
 *                                  new nodes with the next ids
 *   campaign ID | propose ID DATA | propose-n ID N PREFIX
 *   add-node LEADER ID | remove-node LEADER ID | transfer-leadership FROM TO
 *   tick ID N | tick-heartbeat ID.. | tick-election ID..
 *   process-ready ID.. | deliver-msgs [drop] ID.. | stabilize [ID..]
 *   cut A B | cut-oneway A B | isolate ID | heal
 *   crash ID | restart ID | compact ID INDEX
 *   raft-state | raft-log ID | status ID | log-level none|info
 *
 * The safety test (safety.c) runs after the transcripts in the same binary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int raft_safety_run(int seeds, int verbose_seed);

#define TOK_MAX 32

struct cmd {
	char *tok[TOK_MAX];
	int n;
};

static int split(char *line, struct cmd *c)
{
	c->n = 0;
	for (char *s = strtok(line, " \t"); s && c->n < TOK_MAX; s = strtok(NULL, " \t"))
		c->tok[c->n++] = s;
	return c->n;
}

static uint64_t num(const char *s)
{
	return strtoull(s, NULL, 10);
}

static const char *kv(const struct cmd *c, const char *key)
{
	size_t kl = strlen(key);
	for (int i = 1; i < c->n; i++)
		if (strncmp(c->tok[i], key, kl) == 0 && c->tok[i][kl] == '=')
			return c->tok[i] + kl + 1;
	return NULL;
}

static void parse_conf(const char *s, struct raft_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	if (!s)
		return;
	while (*s && conf->n < RAFT_VOTERS_MAX) {
		while (*s && (*s < '0' || *s > '9'))
			s++;
		if (!*s)
			break;
		char *end;
		conf->voters[conf->n++] = strtoull(s, &end, 10);
		s = end;
	}
}

static void cmd_raft_state(struct cluster *c)
{
	for (uint64_t i = 1; i < H_NODES_MAX; i++) {
		struct h_node *n = &c->nodes[i];
		if (!n->id)
			continue;
		if (!n->up) {
			h_printf(c, "%" PRIu64 ": (crashed)\n", i);
			continue;
		}
		struct raft_status s;
		raft_get_status(n->r, &s);
		h_printf(c,
			 "%" PRIu64 ": %s (%s) Term:%" PRIu64 " Lead:%" PRIu64 " Commit:%" PRIu64
			 " Applied:%" PRIu64 " Last:%" PRIu64 "\n",
			 i, raft_role_name(s.role),
			 raft_conf_has(&s.conf, i) ? "Voter" : "Non-Voter", s.term, s.lead,
			 s.commit, s.applied, s.last_index);
	}
}

static void cmd_raft_log(struct cluster *c, uint64_t id)
{
	struct h_node *n = &c->nodes[id];
	struct memlog *l = &n->log;
	if (l->snap.index)
		h_printf(c, "Snapshot Index:%" PRIu64 " Term:%" PRIu64 "\n", l->snap.index,
			 l->snap.term);
	if (l->n == 0)
		h_printf(c, "log is empty: first index=%" PRIu64 ", last index=%" PRIu64 "\n",
			 l->snap.index + 1, l->snap.index);
	for (uint64_t i = 0; i < l->n; i++) {
		char line[512];
		h_fmt_entry(line, sizeof(line), &l->ents[i]);
		h_printf(c, "%s\n", line);
	}
}

static void cmd_status(struct cluster *c, uint64_t id)
{
	static const char *st[] = {"StateProbe", "StateReplicate", "StateSnapshot"};
	struct raft_status s;
	raft_get_status(c->nodes[id].r, &s);
	for (uint32_t i = 0; i < s.n_progress; i++) {
		const struct raft_progress_status *p = &s.progress[i];
		h_printf(c, "%" PRIu64 ": %s match=%" PRIu64 " next=%" PRIu64 " inflight=%u\n",
			 p->id, st[p->state], p->match, p->next, p->inflight_msgs);
	}
}

static bool node_ok(struct cluster *c, uint64_t id)
{
	if (id == 0 || id >= H_NODES_MAX || !c->nodes[id].id) {
		h_printf(c, "no such node %" PRIu64 "\n", id);
		return false;
	}
	if (!c->nodes[id].up) {
		h_printf(c, "node %" PRIu64 " is crashed\n", id);
		return false;
	}
	return true;
}

static void tick_election(struct cluster *c, uint64_t id)
{
	struct h_node *n = &c->nodes[id];
	struct raft_status s0, s;
	raft_get_status(n->r, &s0);
	uint32_t t = c->base.election_ticks;
	if (s0.role == RAFT_LEADER) {
		for (uint32_t i = 0; i < t; i++)
			raft_tick(n->r);
		return;
	}
	/* Until the randomized timeout in [T, 2T) fires (or 2T ticks). */
	for (uint32_t i = 0; i < 2 * t; i++) {
		raft_tick(n->r);
		raft_get_status(n->r, &s);
		if (s.role != s0.role || s.term != s0.term)
			return;
	}
}

static void run_cmd(struct cluster *c, struct cmd *cm)
{
	const char *op = cm->tok[0];
	uint64_t a = cm->n > 1 ? num(cm->tok[1]) : 0;
	uint64_t b = cm->n > 2 ? num(cm->tok[2]) : 0;
	int rc = 0;
	if (!strcmp(op, "add-nodes")) {
		struct raft_conf conf;
		parse_conf(kv(cm, "voters"), &conf);
		const char *ix = kv(cm, "index");
		const char *me = kv(cm, "max-msg-entries");
		if (me)
			c->base.max_msg_entries = (uint32_t)num(me);
		uint64_t next = 1;
		while (next < H_NODES_MAX && c->nodes[next].id)
			next++;
		for (uint64_t i = 0; i < a; i++)
			h_add_node(c, next + i, &conf, ix ? num(ix) : 0);
	} else if (!strcmp(op, "log-level")) {
		/* none: neither core log lines nor Ready/delivery traces */
		c->log_on = cm->n > 1 && strcmp(cm->tok[1], "none") != 0;
		c->verbose = c->log_on;
	} else if (!strcmp(op, "campaign")) {
		if (node_ok(c, a))
			raft_campaign(c->nodes[a].r);
	} else if (!strcmp(op, "propose")) {
		if (node_ok(c, a)) {
			const char *d = cm->n > 2 ? cm->tok[2] : "";
			uint64_t idx = 0, lead = 0;
			rc = raft_propose(c->nodes[a].r, d, (uint32_t)strlen(d), &idx, &lead);
			if (rc == -EPERM)
				h_printf(c,
					 "raft proposal dropped: not leader (leader hint %" PRIu64
					 ")\n",
					 lead);
			else if (rc != 0)
				h_printf(c, "raft proposal dropped: %s\n", strerror(-rc));
		}
	} else if (!strcmp(op, "propose-n")) {
		if (node_ok(c, a)) {
			for (uint64_t i = 1; i <= b; i++) {
				char d[64];
				snprintf(d, sizeof(d), "%s%" PRIu64, cm->n > 3 ? cm->tok[3] : "p",
					 i);
				rc =
				    raft_propose(c->nodes[a].r, d, (uint32_t)strlen(d), NULL, NULL);
				if (rc != 0)
					h_printf(c, "raft proposal dropped: %s\n", strerror(-rc));
			}
		}
	} else if (!strcmp(op, "add-node") || !strcmp(op, "remove-node")) {
		if (node_ok(c, a)) {
			uint64_t idx = 0;
			rc = op[0] == 'a' ? raft_add_node(c->nodes[a].r, b, &idx)
					  : raft_remove_node(c->nodes[a].r, b, &idx);
			if (rc != 0)
				h_printf(c, "conf change refused: %s\n", strerror(-rc));
		}
	} else if (!strcmp(op, "transfer-leadership")) {
		if (node_ok(c, a)) {
			rc = raft_transfer_leadership(c->nodes[a].r, b);
			if (rc != 0)
				h_printf(c, "transfer refused: %s\n", strerror(-rc));
		}
	} else if (!strcmp(op, "tick")) {
		if (node_ok(c, a))
			for (uint64_t i = 0; i < b; i++)
				raft_tick(c->nodes[a].r);
	} else if (!strcmp(op, "tick-heartbeat") || !strcmp(op, "tick-election")) {
		for (int i = 1; i < cm->n; i++) {
			uint64_t id = num(cm->tok[i]);
			if (!node_ok(c, id))
				continue;
			if (op[5] == 'h')
				for (uint32_t k = 0; k < c->base.heartbeat_ticks; k++)
					raft_tick(c->nodes[id].r);
			else
				tick_election(c, id);
		}
	} else if (!strcmp(op, "process-ready")) {
		for (int i = 1; i < cm->n; i++)
			h_process_ready(c, num(cm->tok[i]));
	} else if (!strcmp(op, "deliver-msgs")) {
		bool drop = false;
		for (int i = 1; i < cm->n; i++) {
			if (!strcmp(cm->tok[i], "drop"))
				drop = true;
			else
				h_deliver_to(c, num(cm->tok[i]), drop);
		}
	} else if (!strcmp(op, "stabilize")) {
		uint64_t ids[H_NODES_MAX];
		size_t n = 0;
		for (int i = 1; i < cm->n && n < H_NODES_MAX; i++)
			ids[n++] = num(cm->tok[i]);
		h_stabilize(c, ids, n);
	} else if (!strcmp(op, "cut") || !strcmp(op, "cut-oneway")) {
		c->cut[a][b] = true;
		if (op[3] == 0)
			c->cut[b][a] = true;
	} else if (!strcmp(op, "isolate")) {
		for (uint64_t i = 0; i < H_NODES_MAX; i++)
			c->cut[a][i] = c->cut[i][a] = i != a;
	} else if (!strcmp(op, "heal")) {
		memset(c->cut, 0, sizeof(c->cut));
	} else if (!strcmp(op, "crash")) {
		h_crash(c, a);
	} else if (!strcmp(op, "restart")) {
		h_restart(c, a);
	} else if (!strcmp(op, "compact")) {
		rc = h_compact(c, a, b);
		if (rc != 0)
			h_printf(c, "compact refused: %s\n", strerror(-rc));
	} else if (!strcmp(op, "raft-state")) {
		cmd_raft_state(c);
	} else if (!strcmp(op, "raft-log")) {
		cmd_raft_log(c, a);
	} else if (!strcmp(op, "status")) {
		if (node_ok(c, a))
			cmd_status(c, a);
	} else {
		h_printf(c, "unknown command %s\n", op);
	}
}

/* Runs one file; returns the number of mismatching commands. */
static int run_file(const char *path, bool rewrite)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 1;
	}
	char **lines = NULL;
	size_t n = 0, cap = 0;
	char buf[8192];
	while (fgets(buf, sizeof(buf), f)) {
		size_t l = strlen(buf);
		while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
			buf[--l] = 0;
		if (n == cap) {
			cap = cap * 2 + 64;
			lines = realloc(lines, cap * sizeof(char *));
		}
		lines[n++] = strdup(buf);
	}
	fclose(f);

	struct cluster c;
	h_init(&c, 1);
	c.verbose = true;
	c.log_on = true;
	char *outf = NULL;
	size_t outf_len = 0;
	FILE *w = rewrite ? open_memstream(&outf, &outf_len) : NULL;
	int failures = 0;
	size_t i = 0;
	while (i < n) {
		char *line = lines[i];
		if (line[0] == 0 || line[0] == '#') {
			if (w)
				fprintf(w, "%s\n", line);
			i++;
			continue;
		}
		size_t cmd_line = i + 1;
		char cmdtext[8192];
		snprintf(cmdtext, sizeof(cmdtext), "%s", line);
		i++;
		if (i >= n || strcmp(lines[i], "----") != 0) {
			fprintf(stderr, "%s:%zu: expected ---- after command\n", path, cmd_line);
			failures++;
			break;
		}
		i++;
		size_t exp_start = i;
		while (i < n && lines[i][0] != 0)
			i++;
		size_t exp_end = i;
		if (i < n)
			i++; /* the blank line ending the block */

		char tmp[8192];
		snprintf(tmp, sizeof(tmp), "%s", cmdtext);
		struct cmd cm;
		c.out_len = 0;
		if (c.out)
			c.out[0] = 0;
		if (split(tmp, &cm) > 0)
			run_cmd(&c, &cm);
		if (c.out_len == 0)
			h_printf(&c, "ok\n");
		/* Compare. */
		char *exp = NULL;
		size_t exp_len = 0;
		FILE *e = open_memstream(&exp, &exp_len);
		for (size_t k = exp_start; k < exp_end; k++)
			fprintf(e, "%s\n", lines[k]);
		fclose(e);
		if (strcmp(exp, c.out) != 0 && !rewrite) {
			fprintf(stderr, "%s:%zu: %s\nexpected:\n%sactual:\n%s\n", path, cmd_line,
				cmdtext, exp, c.out);
			failures++;
		}
		free(exp);
		if (w) {
			fprintf(w, "%s\n----\n%s", cmdtext, c.out);
			if (i <= n && exp_end < n)
				fprintf(w, "\n");
		}
	}
	if (w) {
		fclose(w);
		FILE *o = fopen(path, "w");
		if (o) {
			fwrite(outf, 1, outf_len, o);
			fclose(o);
		}
		free(outf);
	}
	for (size_t k = 0; k < n; k++)
		free(lines[k]);
	free(lines);
	h_destroy(&c);
	return failures;
}

int main(int argc, char **argv)
{
	bool rewrite = getenv("ORDO_RAFT_REWRITE") && !strcmp(getenv("ORDO_RAFT_REWRITE"), "1");
	int failures = 0;
	int seeds = 0, verbose_seed = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--safety") && i + 1 < argc) {
			seeds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			verbose_seed = atoi(argv[++i]);
		} else {
			int f = run_file(argv[i], rewrite);
			printf("%s: %s\n", argv[i], f ? "FAIL" : "ok");
			failures += f;
		}
	}
	if (seeds > 0 || verbose_seed >= 0)
		failures += raft_safety_run(seeds, verbose_seed);
	return failures ? 1 : 0;
}
