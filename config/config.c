/*
 * The cluster file (config.h): parsing with inih, range checks against
 * common/constants.h, validation of the whole, and lookups over the result.
 *
 * Parsing goes through ini_parse_stream with our own line reader rather than
 * ini_parse/ini_parse_string: the reader counts lines (inih's handler is not
 * told the line), sees section headers as they come (inih never tells the
 * handler about an empty section, which would otherwise vanish silently),
 * and catches lines longer than inih's buffer, which inih would otherwise
 * cut short without a word. Indented lines that inih would join to the
 * previous value (configparser style) are refused for the same reason.
 *
 * Every error reads "path:line: what is wrong; what to do". Unknown keys and
 * sections are errors: a typo must not silently leave a default in place.
 * What does not live here: what the values mean to the nodes.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "common/parse.h"

/* Cluster keys, in the order of config.h; the names are the file's. */
enum cluster_field {
	CF_CLUSTER_ID,
	CF_SESSION_WINDOW,
	CF_SESSIONS_MAX,
	CF_ACCOUNTS_MAX,
	CF_TRANSFERS_MAX,
	CF_EPOCH_US,
	CF_EPOCH_BYTES,
	CF_EPOCHS_INFLIGHT,
	CF_MAX_DATAGRAM,
	CF_REQUIRE_AUTH,
	CF_INTERNAL_AUTH,
	CF_INTERNAL_KEY_ID,
	CF_INTERNAL_SECRET,
	CF_TRUSTED_NETWORKS,
	CF_APPLIED_REPLY,
	CF_APPLIED_REPLY_MAX_AGE_MS,
	CF_SESSION_IDLE_MIN_MS,
	CF_EPOCH_LOG_BYTES,
	CF_APPLIED_LOG_BYTES,
	CF_CHECKPOINT_BYTES,
	CF_DURABILITY,
	CF_ELECTION_MS,
	CF_HEARTBEAT_MS,
	CF_SNAPSHOT_ENTRIES,
	CF_TRANSPORT,
	CF_DPDK_EAL,
	CF_MULTICAST_GROUP,
	CF_EVERY_EPOCH,
	CF_FOUNDING_GROUPS,
	CF_APPLIED_SYNC_US,
	CF_COUNT,
};

static const char *const cluster_names[] = {
    "cluster_id",	   "session_window",   "sessions_max",	    "accounts_max",
    "transfers_max",	   "epoch_us",	       "epoch_bytes",	    "epochs_inflight",
    "max_datagram",	   "require_auth",     "internal_auth",	    "internal_key_id",
    "internal_secret",	   "trusted_networks", "applied_reply",	    "applied_reply_max_age_ms",
    "session_idle_min_ms", "epoch_log_bytes",  "applied_log_bytes", "checkpoint_bytes",
    "durability",	   "election_ms",      "heartbeat_ms",	    "snapshot_entries",
    "transport",	   "dpdk_eal",	       "multicast_group",   "every_epoch",
    "founding_groups",	   "applied_sync_us",
};
ORDO_STATIC_ASSERT(ORDO_ARRAY_LEN(cluster_names) == CF_COUNT, "a name for every cluster key");

enum node_field {
	NF_ROLE,
	NF_GROUP,
	NF_ADDR,
	NF_CLIENT_PORT,
	NF_INTERNAL_PORT,
	NF_JOIN,
	NF_TRANSPORT,
	NF_DPDK_PORT,
	NF_DPDK_VDEV,
	NF_NETNS,
	NF_DPDK_QUEUES,
	NF_DPDK_LCORES,
	NF_COUNT,
};

static const char *const node_names[] = {
    "role",	 "group",     "addr",	   "client_port", "internal_port", "join",
    "transport", "dpdk_port", "dpdk_vdev", "netns",	  "dpdk_queues",   "dpdk_lcores",
};
ORDO_STATIC_ASSERT(ORDO_ARRAY_LEN(node_names) == NF_COUNT, "a name for every node key");

#define CFG_MS_MAX		 (24u * 3600u * 1000u) /* a day: bound of the _ms settings */
#define CFG_LOG_BYTES_MIN	 (1ull << 20)
#define CFG_LOG_BYTES_MAX	 (1ull << 40)
#define CFG_CHECKPOINT_BYTES_MIN (64ull << 10)

enum cfg_section {
	SEC_NONE,    /* before the first header */
	SEC_CLUSTER, /* [cluster] */
	SEC_KEY,     /* [key N]: keys[sec_index] */
	SEC_NODE,    /* [node N]: nodes[sec_index] */
};

/* State of one parse; lives on the stack of cfg_load*. */
struct cfg_parse {
	struct cfg_cluster *c; /* being filled */
	const char *name;      /* file name for messages */
	char *err;	       /* caller's message buffer; may be NULL */
	unsigned errlen;       /* bytes at err */
	bool failed;	       /* an error was written; parsing stops */

	FILE *fp;	 /* source: a file, or */
	const char *str; /* a string (next unread byte) */
	uint32_t line;	 /* lines read so far = line being handled */
	bool prev_key;	 /* a key line came since the last header (inih's prev_name) */

	enum cfg_section sec;			    /* section being read */
	uint32_t sec_index;			    /* its entry in keys[] or nodes[] */
	uint32_t cluster_line;			    /* line of [cluster]; 0 if none yet */
	uint32_t cf_line[CF_COUNT];		    /* line each cluster key was set; 0 unset */
	uint32_t key_line[ORDO_KEYS_MAX];	    /* line of [key N] */
	uint32_t key_secret_line[ORDO_KEYS_MAX];    /* line of its secret; 0 unset */
	uint32_t nf_line[ORDO_NODES_MAX][NF_COUNT]; /* line each node key was set; 0 unset */
};

static int fail(struct cfg_parse *ps, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "name:line: msg" (or "name: msg" for line 0) once; returns 0 so a
 * handler can `return fail(...)`. */
static int fail(struct cfg_parse *ps, uint32_t line, const char *fmt, ...)
{
	if (ps->failed)
		return 0;
	ps->failed = true;
	if (!ps->err || ps->errlen == 0)
		return 0;
	int n;
	if (line > 0)
		n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, line);
	else
		n = snprintf(ps->err, ps->errlen, "%s: ", ps->name);
	if (n < 0 || (unsigned)n >= ps->errlen)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (unsigned)n, fmt, ap);
	va_end(ap);
	return 0;
}

/* ---------------------------------------------------------------- values */

/* An integer setting in [min, max]; on error writes the message. */
static bool get_u64(struct cfg_parse *ps, const char *key, const char *val, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (!ordo_parse_u64(val, strlen(val), &v)) {
		fail(ps, ps->line,
		     "%s = '%s' is not a number; write a decimal or 0x hex integer from %llu to "
		     "%llu",
		     key, val, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	if (v < min || v > max) {
		fail(ps, ps->line, "%s = %s is out of range; use %llu..%llu", key, val,
		     (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

static bool get_u32(struct cfg_parse *ps, const char *key, const char *val, uint32_t min,
		    uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (!get_u64(ps, key, val, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool get_transport(struct cfg_parse *ps, const char *val, enum cfg_transport *out)
{
	if (strcmp(val, "udp") == 0)
		*out = CFG_TRANSPORT_UDP;
	else if (strcmp(val, "dpdk") == 0)
		*out = CFG_TRANSPORT_DPDK;
	else
		return fail(
		    ps, ps->line,
		    "transport = '%s' is not a transport; use udp (the kernel's sockets) or "
		    "dpdk (a DPDK port: dpdk_port and dpdk_eal, see docs/OPERATIONS.md)",
		    val);
	return true;
}

static bool get_string(struct cfg_parse *ps, const char *key, const char *val, char *out,
		       size_t cap)
{
	size_t len = strlen(val);
	if (len == 0 || len >= cap)
		return fail(ps, ps->line, "%s must be 1 to %zu characters (it has %zu)", key,
			    cap - 1, len);
	memcpy(out, val, len + 1);
	return true;
}

static bool get_bool(struct cfg_parse *ps, const char *key, const char *val, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (unsigned i = 0; i < ORDO_ARRAY_LEN(yes); i++) {
		if (strcasecmp(val, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(val, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	fail(ps, ps->line, "%s = '%s' is not a boolean; use yes/no, true/false, on/off or 1/0", key,
	     val);
	return false;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

bool cfg_parse_secret(const char *hex, uint8_t out[WIRE_SECRET_BYTES])
{
	if (!hex || !out || strlen(hex) != 2 * WIRE_SECRET_BYTES)
		return false;
	uint8_t tmp[WIRE_SECRET_BYTES];
	for (unsigned i = 0; i < WIRE_SECRET_BYTES; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, tmp, sizeof tmp);
	return true;
}

static bool get_secret(struct cfg_parse *ps, const char *key, const char *val, uint8_t *out)
{
	if (cfg_parse_secret(val, out))
		return true;
	fail(ps, ps->line,
	     "%s is not 64 hex digits (32 bytes); generate one with "
	     "'head -c 32 /dev/urandom | xxd -p -c 64'",
	     key);
	return false;
}

/* A strict dotted quad (inet_pton refuses leading zeros and short forms). */
static bool parse_ip(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*ip = ntohl(a.s_addr);
	return true;
}

/* A comma- and/or space-separated CIDR list; empty trusts nobody. */
static bool get_cidrs(struct cfg_parse *ps, const char *key, const char *val)
{
	struct cfg_cluster *c = ps->c;
	uint32_t n = 0;
	const char *p = val;
	/* Each pass consumes one token or the separators before it. */
	while (*p) {
		if (*p == ',' || isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		size_t len = strcspn(p, ", \t\r\n");
		char tok[40];
		if (len >= sizeof tok) {
			fail(ps, ps->line, "%s: '%.*s' is not a CIDR; write a.b.c.d/n", key,
			     (int)len, p);
			return false;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (n >= ORDO_CIDRS_MAX) {
			fail(ps, ps->line, "%s lists more than %u networks; merge some", key,
			     ORDO_CIDRS_MAX);
			return false;
		}
		if (!wire_cidr_parse(tok, &c->trusted[n])) {
			fail(ps, ps->line,
			     "%s: '%s' is not a CIDR; write a.b.c.d/n, e.g. 10.0.0.0/8", key, tok);
			return false;
		}
		n++;
		p += len;
	}
	c->ntrusted = n;
	return true;
}

/* -------------------------------------------------------------- sections */

/* Parses "word N" with N decimal, nonzero, 32-bit; false if it is not one. */
static bool section_id(const char *name, const char *word, uint32_t *id, bool *bad_id)
{
	size_t wl = strlen(word);
	*bad_id = false;
	if (strncmp(name, word, wl) != 0 || (name[wl] != ' ' && name[wl] != '\t'))
		return false;
	const char *p = name + wl;
	while (*p == ' ' || *p == '\t')
		p++;
	uint64_t v = 0;
	const char *d = p;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			break;
		p++;
	}
	if (p == d || *p != '\0' || v == 0 || v > UINT32_MAX) {
		*bad_id = true;
		return true;
	}
	*id = (uint32_t)v;
	return true;
}

static void section_begin(struct cfg_parse *ps, char *name)
{
	struct cfg_cluster *c = ps->c;
	/* Trim: "[ node 1 ]" means [node 1]. */
	while (*name == ' ' || *name == '\t')
		name++;
	size_t len = strlen(name);
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		name[--len] = '\0';

	uint32_t id;
	bool bad_id;
	if (strcmp(name, "cluster") == 0) {
		if (ps->cluster_line) {
			fail(ps, ps->line,
			     "second [cluster] section (first at line %u); merge them",
			     ps->cluster_line);
			return;
		}
		ps->cluster_line = ps->line;
		ps->sec = SEC_CLUSTER;
	} else if (section_id(name, "key", &id, &bad_id)) {
		if (bad_id) {
			fail(ps, ps->line,
			     "[%s] needs a nonzero decimal key id; write [key N], e.g. [key 1]",
			     name);
			return;
		}
		for (uint32_t i = 0; i < c->nkeys; i++)
			if (c->keys[i].key_id == id) {
				fail(ps, ps->line,
				     "duplicate [key %u] (also at line %u); key ids must be unique",
				     id, ps->key_line[i]);
				return;
			}
		if (c->nkeys >= ORDO_KEYS_MAX) {
			fail(ps, ps->line, "more than %u [key N] sections; remove some",
			     ORDO_KEYS_MAX);
			return;
		}
		ps->sec = SEC_KEY;
		ps->sec_index = c->nkeys++;
		c->keys[ps->sec_index].key_id = id;
		ps->key_line[ps->sec_index] = ps->line;
	} else if (section_id(name, "node", &id, &bad_id)) {
		if (bad_id) {
			fail(ps, ps->line,
			     "[%s] needs a nonzero decimal node id; write [node N], e.g. [node 1]",
			     name);
			return;
		}
		for (uint32_t i = 0; i < c->nnodes; i++)
			if (c->nodes[i].node_id == id) {
				fail(ps, ps->line,
				     "duplicate [node %u] (also at line %u); node ids must be "
				     "unique",
				     id, c->nodes[i].line);
				return;
			}
		if (c->nnodes >= ORDO_NODES_MAX) {
			fail(ps, ps->line, "more than %u [node N] sections; remove some",
			     ORDO_NODES_MAX);
			return;
		}
		ps->sec = SEC_NODE;
		ps->sec_index = c->nnodes++;
		struct cfg_node *nd = &c->nodes[ps->sec_index];
		memset(nd, 0, sizeof *nd);
		nd->node_id = id;
		nd->line = ps->line;
	} else {
		fail(ps, ps->line, "unknown section [%s]; expected [cluster], [key N] or [node N]",
		     name);
	}
}

/* ---------------------------------------------------------------- reader */

static int src_getc(struct cfg_parse *ps)
{
	if (ps->fp)
		return getc(ps->fp);
	if (*ps->str == '\0')
		return EOF;
	return (unsigned char)*ps->str++;
}

/*
 * inih's fgets-like reader: one line per call, so our count equals inih's.
 * Also looks at the line the way inih will (ini.c, ini_parse_stream) to see
 * section headers and continuation lines first.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct cfg_parse *ps = stream;
	if (ps->failed || num < 2)
		return NULL; /* stop inih after the first error */
	int ch = src_getc(ps);
	if (ch == EOF)
		return NULL;
	int len = 0;
	bool too_long = false;
	/* Bounded by the source: each pass consumes one byte. */
	for (; ch != EOF; ch = src_getc(ps)) {
		if (len < num - 1)
			str[len++] = (char)ch;
		else if (ch != '\r' && ch != '\n')
			too_long = true;
		if (ch == '\n')
			break;
	}
	str[len] = '\0';
	ps->line++;
	if (too_long) {
		fail(ps, ps->line, "line longer than %d characters; shorten it", num - 3);
		return NULL;
	}

	const char *p = str;
	if (ps->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF)
		p += 3; /* UTF-8 BOM, as inih */
	const char *start = p;
	while (*start == ' ' || *start == '\t')
		start++;
	if (*start == '\0' || *start == '\r' || *start == '\n' || *start == ';' || *start == '#')
		return str; /* blank or comment */
	if (ps->prev_key && start > p) {
		fail(ps, ps->line,
		     "indented line would continue the previous value; remove the indentation");
		return NULL;
	}
	if (*start == '[') {
		ps->prev_key = false;
		const char *end = strchr(start, ']');
		if (!end) {
			fail(ps, ps->line, "section header without ']'; write [name]");
			return NULL;
		}
		char name[64];
		size_t nl = (size_t)(end - start - 1);
		if (nl >= sizeof name) {
			fail(ps, ps->line,
			     "section name too long; expected [cluster], [key N] or "
			     "[node N]");
			return NULL;
		}
		memcpy(name, start + 1, nl);
		name[nl] = '\0';
		section_begin(ps, name);
		if (ps->failed)
			return NULL;
		return str;
	}
	/* A key line needs '=' or ':' before any inline comment (" ;"), as inih
	 * wants; failing here keeps the first error the one reported. */
	for (const char *q = start;; q++) {
		if (*q == '\0' || (*q == ';' && q > start && isspace((unsigned char)q[-1]))) {
			fail(ps, ps->line,
			     "cannot parse this line; expected 'key = value', '[section]' or a "
			     "comment starting with ';' or '#'");
			return NULL;
		}
		if (*q == '=' || *q == ':')
			break;
	}
	ps->prev_key = true;
	return str;
}

/* -------------------------------------------------------------- handlers */

static bool seen(struct cfg_parse *ps, uint32_t *line, const char *key, const char *where)
{
	if (*line) {
		fail(ps, ps->line, "%s set twice in %s (first at line %u); keep one", key, where,
		     *line);
		return true;
	}
	*line = ps->line;
	return false;
}

static int cluster_key(struct cfg_parse *ps, const char *key, const char *val)
{
	struct cfg_cluster *c = ps->c;
	int f = -1;
	for (int i = 0; i < CF_COUNT; i++)
		if (strcmp(key, cluster_names[i]) == 0)
			f = i;
	if (f < 0) {
		char list[512];
		size_t n = 0;
		list[0] = '\0';
		for (int i = 0; i < CF_COUNT && n < sizeof list; i++)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
					      cluster_names[i]);
		return fail(ps, ps->line, "unknown key '%s' in [cluster]; expected one of: %s", key,
			    list);
	}
	if (seen(ps, &ps->cf_line[f], key, "[cluster]"))
		return 0;
	uint64_t v;
	uint32_t v32;
	bool ok = true;
	switch ((enum cluster_field)f) {
	case CF_CLUSTER_ID:
		ok = get_u64(ps, key, val, 1, UINT64_MAX, &c->cluster_id);
		break;
	case CF_SESSION_WINDOW:
		ok = get_u32(ps, key, val, 1, ORDO_SESSION_WINDOW_MAX, &c->session_window);
		if (ok && (c->session_window & (c->session_window - 1)) != 0)
			ok = fail(ps, ps->line,
				  "session_window = %s is not a power of two; use 1, 2, 4 .. %u",
				  val, ORDO_SESSION_WINDOW_MAX);
		break;
	case CF_SESSIONS_MAX:
		ok = get_u32(ps, key, val, 1, ORDO_SESSIONS_MAX_LIMIT, &c->sessions_max);
		break;
	case CF_ACCOUNTS_MAX:
		ok = get_u64(ps, key, val, 1, ORDO_ACCOUNTS_MAX_LIMIT, &c->accounts_max);
		break;
	case CF_TRANSFERS_MAX:
		ok = get_u64(ps, key, val, 1, ORDO_TRANSFERS_MAX_LIMIT, &c->transfers_max);
		break;
	case CF_EPOCH_US:
		ok = get_u32(ps, key, val, ORDO_EPOCH_US_MIN, ORDO_EPOCH_US_MAX, &c->epoch_us);
		break;
	case CF_EPOCH_BYTES:
		ok = get_u32(ps, key, val, ORDO_EPOCH_BYTES_MIN, ORDO_EPOCH_BYTES_MAX,
			     &c->epoch_bytes);
		break;
	case CF_EPOCHS_INFLIGHT:
		ok = get_u32(ps, key, val, 1, ORDO_EPOCHS_INFLIGHT_MAX, &c->epochs_inflight);
		break;
	case CF_MAX_DATAGRAM:
		ok = get_u32(ps, key, val, ORDO_DATAGRAM_MIN_MAX, ORDO_DATAGRAM_MAX,
			     &c->max_datagram);
		break;
	case CF_REQUIRE_AUTH:
		ok = get_bool(ps, key, val, &c->require_auth);
		break;
	case CF_INTERNAL_AUTH:
		ok = get_bool(ps, key, val, &c->internal_auth);
		break;
	case CF_INTERNAL_KEY_ID:
		ok = get_u32(ps, key, val, 1, UINT32_MAX, &c->internal_key.key_id);
		break;
	case CF_INTERNAL_SECRET:
		ok = get_secret(ps, key, val, c->internal_key.secret);
		break;
	case CF_TRUSTED_NETWORKS:
		ok = get_cidrs(ps, key, val);
		break;
	case CF_APPLIED_REPLY:
		if (strcmp(val, "one") == 0)
			c->applied_reply = CFG_APPLIED_ONE;
		else if (strcmp(val, "all") == 0)
			c->applied_reply = CFG_APPLIED_ALL;
		else
			ok = fail(ps, ps->line,
				  "applied_reply = '%s' is not a policy; use one or all", val);
		break;
	case CF_APPLIED_REPLY_MAX_AGE_MS:
		ok = get_u32(ps, key, val, 1, CFG_MS_MAX, &c->applied_reply_max_age_ms);
		break;
	case CF_SESSION_IDLE_MIN_MS:
		ok = get_u32(ps, key, val, 1, CFG_MS_MAX, &c->session_idle_min_ms);
		break;
	case CF_EPOCH_LOG_BYTES:
		ok = get_u64(ps, key, val, CFG_LOG_BYTES_MIN, CFG_LOG_BYTES_MAX, &v);
		c->epoch_log_bytes = ok ? v : c->epoch_log_bytes;
		break;
	case CF_APPLIED_LOG_BYTES:
		ok = get_u64(ps, key, val, CFG_LOG_BYTES_MIN, CFG_LOG_BYTES_MAX, &v);
		c->applied_log_bytes = ok ? v : c->applied_log_bytes;
		break;
	case CF_CHECKPOINT_BYTES:
		ok = get_u64(ps, key, val, CFG_CHECKPOINT_BYTES_MIN, CFG_LOG_BYTES_MAX, &v);
		c->checkpoint_bytes = ok ? v : c->checkpoint_bytes;
		break;
	case CF_APPLIED_SYNC_US:
		ok = get_u32(ps, key, val, 0, 1000000, &c->applied_sync_us);
		break;
	case CF_DURABILITY:
		if (strcmp(val, "fsync") == 0)
			c->durability_fsync = true;
		else if (strcmp(val, "memory") == 0)
			c->durability_fsync = false;
		else
			ok = fail(ps, ps->line,
				  "durability = '%s' is not a mode; use fsync (an epoch is "
				  "committed once fdatasync'd on a majority) or memory (once held "
				  "in memory by a majority: weaker)",
				  val);
		break;
	case CF_ELECTION_MS:
		ok = get_u32(ps, key, val, 20, 60000, &c->election_ms);
		break;
	case CF_HEARTBEAT_MS:
		ok = get_u32(ps, key, val, 10, 10000, &c->heartbeat_ms);
		break;
	case CF_SNAPSHOT_ENTRIES:
		ok = get_u32(ps, key, val, 16, 1u << 30, &c->snapshot_entries);
		break;
	case CF_TRANSPORT:
		ok = get_transport(ps, val, &c->transport);
		break;
	case CF_DPDK_EAL:
		ok = get_string(ps, key, val, c->dpdk_eal, sizeof c->dpdk_eal);
		break;
	case CF_MULTICAST_GROUP:
		if (!parse_ip(val, &c->multicast_group) || (c->multicast_group >> 28) != 0xE)
			ok = fail(ps, ps->line,
				  "multicast_group = '%s' is not an IPv4 multicast address; write "
				  "one in 224.0.0.0/4, e.g. 239.0.77.1 (organization-local)",
				  val);
		break;
	case CF_EVERY_EPOCH:
		ok = get_bool(ps, key, val, &c->every_epoch);
		break;
	case CF_FOUNDING_GROUPS:
		ok = get_u32(ps, key, val, 1, ORDO_NODES_MAX, &v32);
		c->founding_groups = ok ? (uint16_t)v32 : c->founding_groups;
		break;
	case CF_COUNT:
		break;
	}
	return ok;
}

static int key_key(struct cfg_parse *ps, const char *key, const char *val)
{
	struct wire_key *k = &ps->c->keys[ps->sec_index];
	char where[32];
	snprintf(where, sizeof where, "[key %u]", k->key_id);
	if (strcmp(key, "secret") != 0)
		return fail(ps, ps->line, "unknown key '%s' in %s; expected one of: secret", key,
			    where);
	if (seen(ps, &ps->key_secret_line[ps->sec_index], key, where))
		return 0;
	return get_secret(ps, key, val, k->secret);
}

static int node_key(struct cfg_parse *ps, const char *key, const char *val)
{
	struct cfg_node *nd = &ps->c->nodes[ps->sec_index];
	char where[32];
	snprintf(where, sizeof where, "[node %u]", nd->node_id);
	int f = -1;
	for (int i = 0; i < NF_COUNT; i++)
		if (strcmp(key, node_names[i]) == 0)
			f = i;
	if (f < 0)
		return fail(ps, ps->line,
			    "unknown key '%s' in %s; expected one of: role, group, addr, "
			    "client_port, internal_port",
			    key, where);
	if (seen(ps, &ps->nf_line[ps->sec_index][f], key, where))
		return 0;
	uint32_t v;
	switch ((enum node_field)f) {
	case NF_ROLE:
		if (strcmp(val, "sequencer") == 0)
			nd->role = CFG_ROLE_SEQUENCER;
		else if (strcmp(val, "replica") == 0)
			nd->role = CFG_ROLE_REPLICA;
		else
			return fail(ps, ps->line,
				    "role = '%s' is not a role; use sequencer or replica", val);
		return 1;
	case NF_GROUP:
		if (!get_u32(ps, key, val, 0, ORDO_NODES_MAX - 1, &v))
			return 0;
		nd->group = (uint16_t)v;
		return 1;
	case NF_ADDR:
		if (!parse_ip(val, &nd->ip))
			return fail(ps, ps->line,
				    "addr = '%s' is not an IPv4 address; write a.b.c.d, e.g. "
				    "127.0.1.1",
				    val);
		return 1;
	case NF_CLIENT_PORT:
		if (!get_u32(ps, key, val, 1, 65535, &v))
			return 0;
		nd->client_port = (uint16_t)v;
		return 1;
	case NF_INTERNAL_PORT:
		if (!get_u32(ps, key, val, 1, 65535, &v))
			return 0;
		nd->internal_port = (uint16_t)v;
		return 1;
	case NF_JOIN:
		return get_bool(ps, key, val, &nd->join) ? 1 : 0;
	case NF_TRANSPORT:
		return get_transport(ps, val, &nd->transport) ? 1 : 0;
	case NF_DPDK_PORT:
		return get_string(ps, key, val, nd->dpdk_port, sizeof nd->dpdk_port) ? 1 : 0;
	case NF_DPDK_VDEV:
		return get_string(ps, key, val, nd->dpdk_vdev, sizeof nd->dpdk_vdev) ? 1 : 0;
	case NF_NETNS:
		return get_string(ps, key, val, nd->netns, sizeof nd->netns) ? 1 : 0;
	case NF_DPDK_QUEUES:
		if (!get_u32(ps, key, val, 1, ORDO_DPDK_QUEUES_MAX, &v))
			return 0;
		nd->dpdk_queues = (uint16_t)v;
		return 1;
	case NF_DPDK_LCORES:
		if (!get_u32(ps, key, val, 1, ORDO_DPDK_LCORES_MAX, &v))
			return 0;
		nd->dpdk_lcores = (uint16_t)v;
		return 1;
	case NF_COUNT:
		break;
	}
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *ps = user;
	(void)section; /* read_line tracks the section (and validated its header) */
	if (ps->failed)
		return 0;
	switch (ps->sec) {
	case SEC_CLUSTER:
		return cluster_key(ps, name, value);
	case SEC_KEY:
		return key_key(ps, name, value);
	case SEC_NODE:
		return node_key(ps, name, value);
	case SEC_NONE:
		break;
	}
	return fail(ps, ps->line,
		    "'%s' is outside any section; put it under [cluster], [key N] or "
		    "[node N]",
		    name);
}

/* ------------------------------------------------------------ validation */

static int cmp_node(const void *a, const void *b)
{
	const struct cfg_node *x = a, *y = b;
	return x->node_id < y->node_id ? -1 : x->node_id > y->node_id;
}

static int cmp_key(const void *a, const void *b)
{
	const struct wire_key *x = a, *y = b;
	return x->key_id < y->key_id ? -1 : x->key_id > y->key_id;
}

static const char *ip_str(uint32_t ip, char *out, size_t outlen)
{
	snprintf(out, outlen, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF,
		 ip & 0xFF);
	return out;
}

/* Fills node defaults and checks each node; false after writing an error. */
static bool validate_nodes(struct cfg_parse *ps)
{
	struct cfg_cluster *c = ps->c;
	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct cfg_node *nd = &c->nodes[i];
		const uint32_t *fl = ps->nf_line[i];
		if (!fl[NF_ROLE])
			return fail(ps, nd->line,
				    "[node %u] has no role; add role = sequencer or role = replica",
				    nd->node_id);
		if (!fl[NF_ADDR])
			return fail(ps, nd->line, "[node %u] has no addr; add addr = a.b.c.d",
				    nd->node_id);
		bool seq = nd->role == CFG_ROLE_SEQUENCER;
		if (!seq && fl[NF_GROUP])
			return fail(ps, fl[NF_GROUP],
				    "group applies to sequencers only and [node %u] is a replica; "
				    "remove it",
				    nd->node_id);
		if (!seq && fl[NF_JOIN])
			return fail(ps, fl[NF_JOIN],
				    "join applies to sequencers only and [node %u] is a replica; "
				    "remove it",
				    nd->node_id);
		unsigned queues = nd->dpdk_queues ? nd->dpdk_queues : 1u;
		if (nd->dpdk_lcores > 1 && queues < nd->dpdk_lcores - 1u)
			return fail(
			    ps, fl[NF_DPDK_LCORES],
			    "[node %u] has dpdk_lcores = %u: %u worker lcores, each polling RX "
			    "queues of its own, but only %u RX queue(s); set dpdk_queues = %u "
			    "or more, or lower dpdk_lcores",
			    nd->node_id, nd->dpdk_lcores, nd->dpdk_lcores - 1u, queues,
			    nd->dpdk_lcores - 1u);
		if (!fl[NF_CLIENT_PORT])
			nd->client_port = seq ? ORDO_SEQ_CLIENT_PORT : ORDO_REPLICA_CLIENT_PORT;
		if (!fl[NF_INTERNAL_PORT])
			nd->internal_port =
			    seq ? ORDO_SEQ_INTERNAL_PORT : ORDO_REPLICA_INTERNAL_PORT;
		if (nd->client_port == nd->internal_port)
			return fail(ps, nd->line,
				    "[node %u] uses port %u as both client_port and internal_port; "
				    "give them different ports",
				    nd->node_id, nd->client_port);
		if (cfg_node_transport(c, nd) == CFG_TRANSPORT_DPDK && !nd->dpdk_port[0])
			return fail(
			    ps, nd->line,
			    "[node %u] uses transport = dpdk but names no port; add "
			    "dpdk_port = the DPDK device (e.g. net_af_xdp0, or a PCI address "
			    "bound with nic-config/bind.sh)",
			    nd->node_id);
	}
	if (c->multicast_group) {
		const struct cfg_node *first = NULL;
		for (uint32_t i = 0; i < c->nnodes; i++) {
			const struct cfg_node *nd = &c->nodes[i];
			if (nd->role != CFG_ROLE_REPLICA)
				continue;
			if (cfg_node_transport(c, nd) != CFG_TRANSPORT_DPDK)
				return fail(
				    ps, nd->line,
				    "multicast_group is set but [node %u], a replica, is not on "
				    "transport = dpdk (a kernel-UDP replica does not join the "
				    "group); move it to DPDK or remove multicast_group",
				    nd->node_id);
			if (first && nd->internal_port != first->internal_port)
				return fail(
				    ps, nd->line,
				    "multicast_group is set but [node %u] has internal_port %u "
				    "and [node %u] %u; the stream goes to one port: give every "
				    "replica the same internal_port",
				    nd->node_id, nd->internal_port, first->node_id,
				    first->internal_port);
			first = nd;
		}
	}
	/* Every (addr, port) a node binds must be its own. O(n^2) over at most 64. */
	for (uint32_t i = 0; i < c->nnodes; i++) {
		const struct cfg_node *a = &c->nodes[i];
		for (uint32_t j = 0; j < i; j++) {
			const struct cfg_node *b = &c->nodes[j];
			if (a->ip != b->ip)
				continue;
			uint16_t pa[2] = {a->client_port, a->internal_port};
			uint16_t pb[2] = {b->client_port, b->internal_port};
			for (int x = 0; x < 2; x++)
				for (int y = 0; y < 2; y++) {
					if (pa[x] != pb[y])
						continue;
					char ip[16];
					return fail(ps, a->line,
						    "[node %u] and [node %u] (line %u) both use "
						    "%s:%u; give each node its own address or port",
						    a->node_id, b->node_id, b->line,
						    ip_str(a->ip, ip, sizeof ip), pa[x]);
				}
		}
	}
	uint32_t nseq = cfg_count_role(c, CFG_ROLE_SEQUENCER);
	if (nseq == 0)
		return fail(ps, ps->line,
			    "no sequencer node; add a [node N] section with role = sequencer");
	uint16_t groups = cfg_groups(c);
	for (uint16_t g = 0; g < groups; g++) {
		bool found = false;
		for (uint32_t i = 0; i < c->nnodes; i++)
			found |= c->nodes[i].role == CFG_ROLE_SEQUENCER && c->nodes[i].group == g;
		if (!found)
			return fail(ps, ps->line,
				    "sequencer group %u has no node but group %u does; number "
				    "groups 0, 1, 2 .. without gaps",
				    g, groups - 1);
	}
	return true;
}

/* every_epoch and founding_groups (adding a group, docs/PROTOCOL.md §1.7):
 * defaults from the groups the file declares, then their consistency. A
 * file with several groups needs every_epoch, so founding_groups below the
 * number of groups (which implies several) does too. */
static bool validate_groups(struct cfg_parse *ps)
{
	struct cfg_cluster *c = ps->c;
	const uint32_t *cf = ps->cf_line;
	uint16_t groups = cfg_groups(c);
	if (!cf[CF_EVERY_EPOCH])
		c->every_epoch = groups > 1;
	if (!cf[CF_FOUNDING_GROUPS])
		c->founding_groups = groups;
	if (!c->every_epoch && groups > 1)
		return fail(ps, cf[CF_EVERY_EPOCH],
			    "every_epoch = no, but the file declares %u sequencer groups; the "
			    "replicas merge the groups epoch by epoch, so every group must seal "
			    "every epoch: remove every_epoch or set it to yes",
			    groups);
	if (c->founding_groups > groups)
		return fail(ps, cf[CF_FOUNDING_GROUPS],
			    "founding_groups = %u, but the file declares %u sequencer group%s "
			    "(0 .. %u); use 1 .. %u, or add the groups' [node N] sections",
			    c->founding_groups, groups, groups == 1 ? "" : "s", groups - 1, groups);
	if (c->founding_groups < groups && groups > ORDO_GROUPS_MAX)
		return fail(ps, cf[CF_FOUNDING_GROUPS],
			    "group %u joins later, but a group that joins is announced by number "
			    "below %u (replicas merge at most %u groups); declare fewer groups",
			    groups - 1, ORDO_GROUPS_MAX, ORDO_GROUPS_MAX);
	return true;
}

static bool validate(struct cfg_parse *ps)
{
	struct cfg_cluster *c = ps->c;
	uint32_t eof = ps->line; /* last line: where "missing" is noticed */
	if (!ps->cluster_line)
		return fail(ps, eof, "no [cluster] section; add one with at least cluster_id");
	if (!ps->cf_line[CF_CLUSTER_ID])
		return fail(ps, ps->cluster_line,
			    "[cluster] has no cluster_id; add cluster_id = <nonzero 64-bit "
			    "number>, the same in every copy of this file");
	for (uint32_t i = 0; i < c->nkeys; i++)
		if (!ps->key_secret_line[i])
			return fail(ps, ps->key_line[i],
				    "[key %u] has no secret; add secret = <64 hex digits>",
				    c->keys[i].key_id);
	if (!validate_nodes(ps))
		return false;

	const uint32_t *cf = ps->cf_line;
	if (cf[CF_INTERNAL_SECRET] && !cf[CF_INTERNAL_KEY_ID])
		return fail(ps, cf[CF_INTERNAL_SECRET],
			    "internal_secret needs internal_key_id; add internal_key_id = N "
			    "(nonzero, not a client key id)");
	if (cf[CF_INTERNAL_KEY_ID] && !cf[CF_INTERNAL_SECRET])
		return fail(ps, cf[CF_INTERNAL_KEY_ID],
			    "internal_key_id needs internal_secret; add internal_secret = <64 hex "
			    "digits>");
	if (c->internal_auth && !cf[CF_INTERNAL_SECRET])
		return fail(ps, cf[CF_INTERNAL_AUTH] ? cf[CF_INTERNAL_AUTH] : ps->cluster_line,
			    "internal_auth is on but there is no internal_secret; add "
			    "internal_secret and internal_key_id, or set internal_auth = off");
	for (uint32_t i = 0; i < c->nkeys && cf[CF_INTERNAL_KEY_ID]; i++)
		if (c->keys[i].key_id == c->internal_key.key_id)
			return fail(ps, cf[CF_INTERNAL_KEY_ID],
				    "internal_key_id %u is also [key %u] (line %u), a client key; "
				    "the node key must differ from every client key",
				    c->internal_key.key_id, c->keys[i].key_id, ps->key_line[i]);
	if (c->require_auth && c->nkeys == 0)
		return fail(ps, cf[CF_REQUIRE_AUTH],
			    "require_auth is on but there is no [key N] section; add a client "
			    "key or set require_auth = no");
	if (c->epoch_log_bytes < c->epoch_bytes)
		return fail(ps, cf[CF_EPOCH_LOG_BYTES] ? cf[CF_EPOCH_LOG_BYTES] : ps->cluster_line,
			    "epoch_log_bytes (%llu) is smaller than one epoch (epoch_bytes %u); "
			    "raise it",
			    (unsigned long long)c->epoch_log_bytes, c->epoch_bytes);
	if (c->heartbeat_ms >= c->election_ms)
		return fail(ps, cf[CF_HEARTBEAT_MS] ? cf[CF_HEARTBEAT_MS] : ps->cluster_line,
			    "heartbeat_ms (%u) must be below election_ms (%u); the default pair "
			    "is 30 and 150",
			    c->heartbeat_ms, c->election_ms);

	if (!validate_groups(ps))
		return false;

	qsort(c->nodes, c->nnodes, sizeof c->nodes[0], cmp_node);
	qsort(c->keys, c->nkeys, sizeof c->keys[0], cmp_key);
	return true;
}

/* ------------------------------------------------------------------ load */

static void set_defaults(struct cfg_cluster *c, const char *name)
{
	memset(c, 0, sizeof *c);
	snprintf(c->path, sizeof c->path, "%s", name);
	c->session_window = ORDO_SESSION_WINDOW_DEFAULT;
	c->sessions_max = ORDO_SESSIONS_MAX_DEFAULT;
	c->accounts_max = ORDO_ACCOUNTS_MAX_DEFAULT;
	c->transfers_max = ORDO_TRANSFERS_MAX_DEFAULT;
	c->epoch_us = ORDO_EPOCH_US_DEFAULT;
	c->epoch_bytes = ORDO_EPOCH_BYTES_DEFAULT;
	c->epochs_inflight = ORDO_EPOCHS_INFLIGHT_DEFAULT;
	c->max_datagram = ORDO_DATAGRAM_MIN_MAX;
	c->require_auth = false;
	c->internal_auth = true;
	c->trusted[0].net = 0x7F000000u; /* 127.0.0.0/8 */
	c->trusted[0].mask = 0xFF000000u;
	c->ntrusted = 1;
	c->applied_reply = CFG_APPLIED_ONE;
	c->durability_fsync = true;
	c->election_ms = ORDO_ELECTION_MS_DEFAULT;
	c->heartbeat_ms = ORDO_HEARTBEAT_MS_DEFAULT;
	c->snapshot_entries = ORDO_SNAPSHOT_ENTRIES_DEFAULT;
	c->transport = CFG_TRANSPORT_UDP;
	c->applied_reply_max_age_ms = ORDO_APPLIED_REPLY_MAX_AGE_MS_DEFAULT;
	c->session_idle_min_ms = ORDO_SESSION_IDLE_MIN_MS_DEFAULT;
	c->epoch_log_bytes = ORDO_EPOCH_LOG_BYTES_DEFAULT;
	c->applied_log_bytes = ORDO_APPLIED_LOG_BYTES_DEFAULT;
	c->checkpoint_bytes = ORDO_CHECKPOINT_BYTES_DEFAULT;
	c->applied_sync_us = ORDO_APPLIED_SYNC_US_DEFAULT;
}

static int run(struct cfg_parse *ps)
{
	int r = ini_parse_stream(read_line, ps, handler, ps);
	if (ps->failed)
		return -EINVAL;
	if (r == -2) {
		fail(ps, 0, "out of memory while parsing; retry");
		return -ENOMEM;
	}
	if (r != 0) {
		fail(ps, r > 0 ? (uint32_t)r : 0,
		     "cannot parse this line; expected 'key = value', '[section]' or a comment "
		     "starting with ';' or '#'");
		return -EINVAL;
	}
	if (ps->fp && ferror(ps->fp)) {
		fail(ps, ps->line, "read error; check the file");
		return -EIO;
	}
	return validate(ps) ? 0 : -EINVAL;
}

static void parse_init(struct cfg_parse *ps, struct cfg_cluster *c, const char *name, char *err,
		       unsigned errlen)
{
	memset(ps, 0, sizeof *ps);
	ps->c = c;
	ps->name = name;
	ps->err = err;
	ps->errlen = errlen;
	if (err && errlen > 0)
		err[0] = '\0';
	set_defaults(c, name);
}

int cfg_load_string(const char *text, const char *name, struct cfg_cluster *c, char *err,
		    unsigned errlen)
{
	if (!name)
		name = "(string)";
	if (!text || !c) {
		if (err && errlen > 0)
			snprintf(err, errlen, "%s: no text to parse", name);
		return -EINVAL;
	}
	struct cfg_parse ps; /* about 4 KiB */
	parse_init(&ps, c, name, err, errlen);
	ps.str = text;
	return run(&ps);
}

int cfg_load(const char *path, struct cfg_cluster *c, char *err, unsigned errlen)
{
	if (!path || !c) {
		if (err && errlen > 0)
			snprintf(err, errlen, "no cluster file given; pass its path");
		return -EINVAL;
	}
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		if (err && errlen > 0)
			snprintf(err, errlen, "%s: cannot open: %s; check the path", path,
				 strerror(e));
		return -e;
	}
	struct cfg_parse ps;
	parse_init(&ps, c, path, err, errlen);
	ps.fp = fp;
	int rv = run(&ps);
	fclose(fp);
	return rv;
}

/* --------------------------------------------------------------- lookups */

const struct cfg_node *cfg_node_find(const struct cfg_cluster *c, uint32_t node_id)
{
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].node_id == node_id)
			return &c->nodes[i];
	return NULL;
}

const struct cfg_node *cfg_node_by_addr(const struct cfg_cluster *c, uint32_t ip, uint16_t port)
{
	for (uint32_t i = 0; i < c->nnodes; i++) {
		const struct cfg_node *nd = &c->nodes[i];
		if (nd->ip == ip && (nd->internal_port == port || nd->client_port == port))
			return nd;
	}
	return NULL;
}

bool cfg_ip_is_node(const struct cfg_cluster *c, uint32_t ip)
{
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].ip == ip)
			return true;
	return false;
}

uint32_t cfg_replicas(const struct cfg_cluster *c, const struct cfg_node **out, uint32_t max)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->nnodes && n < max; i++)
		if (c->nodes[i].role == CFG_ROLE_REPLICA)
			out[n++] = &c->nodes[i];
	return n;
}

uint32_t cfg_count_role(const struct cfg_cluster *c, enum cfg_role role)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->nnodes; i++)
		n += c->nodes[i].role == role;
	return n;
}

uint16_t cfg_groups(const struct cfg_cluster *c)
{
	uint16_t groups = 0;
	for (uint32_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].role == CFG_ROLE_SEQUENCER && c->nodes[i].group + 1u > groups)
			groups = (uint16_t)(c->nodes[i].group + 1u);
	return groups;
}

enum cfg_transport cfg_node_transport(const struct cfg_cluster *c, const struct cfg_node *n)
{
	return n->transport != CFG_TRANSPORT_DEFAULT ? n->transport : c->transport;
}

void cfg_client_keyring(struct cfg_cluster *c, struct wire_keyring *kr)
{
	kr->keys = c->keys;
	kr->count = c->nkeys;
}
