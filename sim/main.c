/* `ordo sim`: seeds, seed lists, soaks; see sim.h and docs/SIMULATION.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/parse.h"
#include "common/plant.h"
#include "sim/sim.h"

static const char *const plant_names[SIM_PLANT_COUNT] = {
    [ORDO_PLANT_NONE] = "none",
    [ORDO_PLANT_OLD_TERM_COMMIT] = "old-term-commit",
    [ORDO_PLANT_VOTE_BEFORE_DURABLE] = "vote-before-durable",
    [ORDO_PLANT_SKIP_DEDUP] = "skip-dedup",
    [ORDO_PLANT_APPLY_OUT_OF_ORDER] = "apply-out-of-order",
    [SIM_PLANT_MERGE_EARLY] = "merge-early",
};

int sim_plant_parse(const char *name)
{
	for (int i = 0; i < SIM_PLANT_COUNT; i++)
		if (!strcmp(name, plant_names[i]))
			return i;
	return -1;
}

const char *sim_plant_name(int bug)
{
	return bug >= 0 && bug < SIM_PLANT_COUNT ? plant_names[bug] : "?";
}

static const char usage_text[] =
    "usage: ordo sim [--seed N | --seeds COUNT [--from N]] [--random COUNT]\n"
    "                [--regressions FILE] [--hours H] [--record FILE]\n"
    "                [--safety-only] [--groups N | --groups random] [--node-nack]\n"
    "                [--steps N]\n"
    "                [--expect-fail] [-v | -vv]\n"
    "  Runs the deterministic cluster simulator: the real Raft, sequencer and\n"
    "  replica cores on a simulated network, disk and clock, every choice drawn\n"
    "  from one seed, with checkers after every step.\n"
    "  --seed N          one seed (replays a failure exactly)\n"
    "  --seeds COUNT     seeds FROM .. FROM+COUNT-1 (--from, default 1)\n"
    "  --random COUNT    COUNT seeds drawn at random (each printed on failure)\n"
    "  --regressions F   every seed listed in F (one per line: SEED [safety-only])\n"
    "  --hours H         soak: random seeds for H hours (fractions allowed)\n"
    "  --record FILE     append every failing seed to FILE (a regression list)\n"
    "  --safety-only     lift every fault bound; check safety, not liveness\n"
    "  --groups N        N sequencer groups (1 to 3; default 1), each its own Raft\n"
    "                    group, merged by the replicas (docs/SCALEOUT.md)\n"
    "  --groups random   1, 2 or 3 groups, drawn from each seed\n"
    "  --node-nack       several groups: NACKs of 16 epochs, the rule replicas/node.c had first\n"
    "                    today (16 epochs, past the merge window too)\n"
    "  --steps N         steps of faults (1 ms each) instead of the seed's draw\n"
    "  --expect-fail     succeed only if some seed fails (planted-bug tests)\n"
    "  --plant NAME      (ordo-sim-planted only) activate a planted bug:\n"
    "                    old-term-commit, vote-before-durable, skip-dedup,\n"
    "                    apply-out-of-order, merge-early (with --groups 2 or 3)\n"
    "  With no seed option, one seed is drawn and printed first.\n";

static int usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "ordo sim: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fputs(usage_text, stderr);
	return 2;
}

static uint64_t random_seed(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, 0) != sizeof v)
		v = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
	return v >> 1 ? v >> 1 : 1; /* printable, nonzero */
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct totals {
	uint64_t seeds, failed, ordered, answered, crashes, msgs, elections, snapshots, dead,
	    stranded, reopened, transfers;
	uint64_t multi, probes, unknowns; /* seeds of several groups; their probes */
	uint64_t first_fail_seed;
	uint64_t first_fail_index;
};

/* " --groups N" for a run of several groups, else "". */
static const char *groups_arg(uint32_t groups)
{
	static char buf[24];
	if (groups <= 1)
		return "";
	snprintf(buf, sizeof buf, " --groups %u", groups);
	return buf;
}

/* Runs one seed (groups: 0 keeps o's choice); prints a failure with its
 * replay command. */
static int one(struct sim_opts *o, uint64_t seed, bool safety_only, uint32_t groups,
	       struct totals *t, const char *record)
{
	struct sim_result r;
	o->seed = seed;
	bool saved = o->safety_only;
	uint32_t saved_groups = o->groups;
	o->safety_only = safety_only || saved;
	if (groups)
		o->groups = groups;
	int rc = sim_run(o, &r);
	t->seeds++;
	t->ordered += r.ordered;
	t->answered += r.answered_ok;
	t->crashes += r.crashes;
	t->msgs += r.msgs;
	t->elections += r.elections;
	t->snapshots += r.snapshots;
	t->dead += r.dead;
	t->stranded += r.stranded;
	t->reopened += r.reopened;
	t->transfers += r.transfers;
	if (r.groups > 1) {
		t->multi++;
		t->probes += r.probes;
		t->unknowns += r.unknowns;
	}
	if (o->verbose)
		fprintf(o->log,
			"sim: seed %llu: %s: %s (%llu ordered, %llu answered, %llu crashes, %llu "
			"elections, %llu snapshots installed, %u dead)\n",
			(unsigned long long)seed, rc ? "FAILED" : "ok", r.shape,
			(unsigned long long)r.ordered, (unsigned long long)r.answered_ok,
			(unsigned long long)r.crashes, (unsigned long long)r.elections,
			(unsigned long long)r.snapshots, r.dead);
	if (rc) {
		if (!t->failed) {
			t->first_fail_seed = seed;
			t->first_fail_index = t->seeds;
		}
		t->failed++;
		fprintf(o->log,
			"sim: FAILED seed=%llu step=%llu (t=%.3f s): %s: %s\n"
			"sim:   cluster: %s\n"
			"sim:   replay: %s --seed %llu%s%s%s%s%s\n",
			(unsigned long long)seed, (unsigned long long)r.step,
			(double)r.step / 1000.0, r.property, r.detail, r.shape,
			o->argv0 ? o->argv0 : "ordo sim", (unsigned long long)seed,
			groups_arg(r.groups), o->node_nack && r.groups > 1 ? " --node-nack" : "",
			o->safety_only ? " --safety-only" : "", o->plant ? " --plant " : "",
			o->plant ? o->plant : "");
		if (record) {
			FILE *f = fopen(record, "a");
			if (f) {
				char g[24] = "";
				if (r.groups > 1)
					snprintf(g, sizeof g, " groups=%u", r.groups);
				fprintf(f, "%llu%s%s # %s: %s\n", (unsigned long long)seed,
					o->safety_only ? " safety-only" : "", g, r.property,
					r.detail);
				fclose(f);
			} else {
				fprintf(stderr, "ordo sim: cannot append to %s: %s\n", record,
					strerror(errno));
			}
		}
	}
	o->safety_only = saved;
	o->groups = saved_groups;
	return rc;
}

/* A regression list: "SEED [safety-only] [groups=N] [# comment]" per line. */
static int run_list(struct sim_opts *o, const char *path, struct totals *t, const char *record)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "ordo sim: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[512];
	int lineno = 0, bad = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *tok = strtok(line, " \t\r\n");
		if (!tok)
			continue;
		uint64_t seed;
		if (!ordo_parse_u64(tok, strlen(tok), &seed)) {
			fprintf(stderr,
				"ordo sim: %s:%d: \"%s\" is not a seed; write one seed per line\n",
				path, lineno, tok);
			fclose(f);
			return -1;
		}
		bool safety_only = false;
		uint32_t groups = 1; /* a line without groups= is a seed of one group */
		for (char *mode; (mode = strtok(NULL, " \t\r\n"));) {
			uint64_t g;
			if (!strcmp(mode, "safety-only")) {
				safety_only = true;
			} else if (!strncmp(mode, "groups=", 7) &&
				   ordo_parse_u64(mode + 7, strlen(mode + 7), &g) && g >= 1 &&
				   g <= 3) {
				groups = (uint32_t)g;
			} else {
				fprintf(stderr,
					"ordo sim: %s:%d: unknown mode \"%s\" (safety-only, "
					"groups=1..3)\n",
					path, lineno, mode);
				fclose(f);
				return -1;
			}
		}
		bad |= one(o, seed, safety_only, groups, t, record);
	}
	fclose(f);
	return bad;
}

int sim_main(int argc, char **argv)
{
	struct sim_opts o = {.log = stdout, .argv0 = "ordo sim", .groups = 1};
	const char *env_argv0 = getenv("ORDO_SIM_ARGV0");
	if (env_argv0)
		o.argv0 = env_argv0;
	uint64_t seed = 0, count = 0, from = 1, random_count = 0, steps = 0;
	bool have_seed = false, expect_fail = false;
	double hours = 0;
	const char *regressions = NULL, *record = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t *num = NULL;
		if (!strcmp(a, "--seed")) {
			num = &seed;
			have_seed = true;
		} else if (!strcmp(a, "--seeds"))
			num = &count;
		else if (!strcmp(a, "--from"))
			num = &from;
		else if (!strcmp(a, "--random"))
			num = &random_count;
		else if (!strcmp(a, "--steps"))
			num = &steps;
		if (num) {
			if (!v || !ordo_parse_u64(v, strlen(v), num))
				return usage("needs a number", a);
			i++;
			continue;
		}
		if (!strcmp(a, "--hours")) {
			char *end;
			if (!v || (hours = strtod(v, &end)) <= 0 || *end)
				return usage("--hours needs a positive number", v);
			i++;
		} else if (!strcmp(a, "--regressions") && v) {
			regressions = argv[++i];
		} else if (!strcmp(a, "--record") && v) {
			record = argv[++i];
		} else if (!strcmp(a, "--plant") && v) {
#ifdef ORDO_PLANT_BUGS
			if (sim_plant_parse(v) < 0)
				return usage("unknown planted bug", v);
			o.plant = argv[++i];
#else
			return usage("this build has no planted bugs; run sim/ordo-sim-planted "
				     "(meson option planted_bugs)",
				     NULL);
#endif
		} else if (!strcmp(a, "--safety-only")) {
			o.safety_only = true;
		} else if (!strcmp(a, "--groups") && v) {
			uint64_t g;
			if (!strcmp(v, "random"))
				o.groups = 0;
			else if (ordo_parse_u64(v, strlen(v), &g) && g >= 1 && g <= 3)
				o.groups = (uint32_t)g;
			else
				return usage("--groups needs 1, 2, 3 or random", v);
			i++;
		} else if (!strcmp(a, "--node-nack")) {
			o.node_nack = true;
		} else if (!strcmp(a, "--expect-fail")) {
			expect_fail = true;
		} else if (!strcmp(a, "-v")) {
			o.verbose = 1;
		} else if (!strcmp(a, "-vv")) {
			o.verbose = 2;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			return usage("unknown option", a);
		}
	}
	if (steps > 1000000)
		return usage("--steps must be at most 1000000", NULL);
	o.steps_fault = (uint32_t)steps;
	struct totals t = {0};
	double t0 = now_s();
	int rc = 0;
	bool any = have_seed || count || random_count || regressions || hours > 0;
	if (!any) {
		seed = random_seed();
		printf("sim: seed %llu\n", (unsigned long long)seed);
		fflush(stdout);
		if (!o.verbose)
			o.verbose = 1;
		have_seed = true;
	}
	if (have_seed) {
		if (!o.verbose)
			o.verbose = 1;
		rc |= one(&o, seed, false, 0, &t, record);
	}
	for (uint64_t k = 0; k < count && !(expect_fail && t.failed); k++)
		rc |= one(&o, from + k, false, 0, &t, record);
	for (uint64_t k = 0; k < random_count && !(expect_fail && t.failed); k++)
		rc |= one(&o, random_seed(), false, 0, &t, record);
	if (regressions) {
		int lr = run_list(&o, regressions, &t, record);
		if (lr < 0)
			return 2;
		rc |= lr;
	}
	if (hours > 0) {
		double end = t0 + hours * 3600.0, next_report = now_s() + 60.0;
		while (now_s() < end) {
			rc |= one(&o, random_seed(), false, 0, &t, record);
			if (now_s() >= next_report) {
				printf("sim: soak: %llu seeds, %llu failed, %.0f s\n",
				       (unsigned long long)t.seeds, (unsigned long long)t.failed,
				       now_s() - t0);
				fflush(stdout);
				next_report += 60.0;
			}
		}
	}
	double dt = now_s() - t0;
	printf("sim: %llu seeds, %llu failed, in %.1f s: %llu requests ordered, %llu answered, "
	       "%llu crashes, %llu elections, %llu snapshots installed, %llu nodes lost to "
	       "damaged disks, %llu state transfers, %llu replicas stranded behind the "
	       "retained epochs, %llu sessions reopened by a replayed request 1, %llu "
	       "datagrams\n",
	       (unsigned long long)t.seeds, (unsigned long long)t.failed, dt,
	       (unsigned long long)t.ordered, (unsigned long long)t.answered,
	       (unsigned long long)t.crashes, (unsigned long long)t.elections,
	       (unsigned long long)t.snapshots, (unsigned long long)t.dead,
	       (unsigned long long)t.transfers, (unsigned long long)t.stranded,
	       (unsigned long long)t.reopened, (unsigned long long)t.msgs);
	if (t.multi)
		printf(
		    "sim: %llu of the seeds ran several sequencer groups: %llu requests sent to a "
		    "group without their session, %llu answered SESSION_UNKNOWN, none ordered\n",
		    (unsigned long long)t.multi, (unsigned long long)t.probes,
		    (unsigned long long)t.unknowns);
	if (expect_fail) {
		if (t.failed) {
			uint64_t i = t.first_fail_index;
			const char *sfx = i % 100 >= 11 && i % 100 <= 13 ? "th"
					  : i % 10 == 1			 ? "st"
					  : i % 10 == 2			 ? "nd"
					  : i % 10 == 3			 ? "rd"
									 : "th";
			printf("sim: planted bug %s caught by seed %llu, the %llu%s seed run\n",
			       o.plant ? o.plant : "none", (unsigned long long)t.first_fail_seed,
			       (unsigned long long)i, sfx);
			return 0;
		}
		printf("sim: planted bug %s NOT caught in %llu seeds\n", o.plant ? o.plant : "none",
		       (unsigned long long)t.seeds);
		return 1;
	}
	return rc ? 1 : 0;
}
