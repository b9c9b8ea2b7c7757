/*
 * The fault-injecting transport: wraps any dp_transport and, per datagram and
 * per direction, drops, duplicates or delays it, every choice drawn from one
 * seeded ordo_prng so a run replays from its seed (the TigerBeetle simulator
 * and FoundationDB BUGGIFY habit). For tests and soak runs only; production
 * nodes open the inner transport directly.
 *
 * Delayed datagrams are held (at most hold_max) with a release time of
 * ordo_mono_ns() + 1..delay_max_ns and come out on a later rx_burst, tx_burst
 * or wait once due, behind datagrams that were not delayed: that is the
 * reordering. Held received datagrams are released by rx_burst; held sent
 * datagrams by any call. Duplicates are copies in a buffer of the inner pool;
 * with the pool empty the duplicate is skipped.
 *
 * Stats: rx/tx/truncated/alloc counters mirror the inner transport's (what
 * crossed the wire); fault_* count what this layer did.
 *
 * Also here: dp_fault_parse, the text form used on command lines:
 *   drop=5%,dup=1%,delay=2%:3ms,seed=7
 * Keys: drop, dup, delay (both directions), rx_drop, tx_drop, rx_dup, tx_dup,
 * rx_delay, tx_delay, hold=N, seed=N. Percentages take up to 4 decimals
 * (1 ppm); a delay's maximum takes ns, us, ms or s and defaults to 1ms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ordo_time.h"
#include "common/parse.h"
#include "common/prng.h"
#include "dataplane/dp.h"

#define FAULT_PPM_MAX	       1000000u
#define FAULT_HOLD_DEFAULT     1024u
#define FAULT_HOLD_LIMIT       (1u << 20)
#define FAULT_DELAY_DEFAULT_NS (1ull * ORDO_NS_PER_MS)

/* One delayed datagram. */
struct fault_held {
	struct dp_buf *buf;  /* owned by the wrapper until released */
	uint64_t release_ns; /* ordo_mono_ns() at or after which it goes on */
	bool tx;	     /* true: to be sent; false: to be received */
};

struct fault_transport {
	struct dp_transport base;		   /* first: ops cast between the two */
	struct dp_transport *inner;		   /* owned; closed with the wrapper */
	struct dp_fault_cfg cfg;		   /* ppm values <= 1e6; hold_max >= 1 */
	struct ordo_prng prng;			   /* every fault decision, from cfg.seed */
	struct fault_held *held;		   /* hold_max slots, nheld used, insertion order */
	uint32_t nheld;				   /* 0..cfg.hold_max */
	struct dp_buf *scratch[ORDO_DP_BURST_MAX]; /* one inner burst */
};

static struct fault_transport *fault_of(struct dp_transport *t)
{
	return (struct fault_transport *)t;
}

/* Mirrors the inner transport's wire counters into the wrapper's stats. */
static void sync_stats(struct fault_transport *f)
{
	const struct dp_stats *in = &f->inner->stats;
	struct dp_stats *st = &f->base.stats;
	st->rx_datagrams = in->rx_datagrams;
	st->tx_datagrams = in->tx_datagrams;
	st->rx_bytes = in->rx_bytes;
	st->tx_bytes = in->tx_bytes;
	st->tx_dropped = in->tx_dropped;
	st->rx_truncated = in->rx_truncated;
	st->alloc_failed = in->alloc_failed;
}

static bool hold(struct fault_transport *f, struct dp_buf *b, bool tx, uint64_t now)
{
	if (f->nheld >= f->cfg.hold_max)
		return false;
	struct fault_held *h = &f->held[f->nheld++];
	h->buf = b;
	h->tx = tx;
	h->release_ns = now + 1 + ordo_prng_below(&f->prng, f->cfg.delay_max_ns);
	return true;
}

/* A copy of b from the inner pool, or NULL when the pool is empty. */
static struct dp_buf *copy_of(struct fault_transport *f, const struct dp_buf *b)
{
	struct dp_buf *c = dp_alloc(f->inner);
	if (!c)
		return NULL;
	uint32_t len = b->len <= c->cap ? b->len : c->cap;
	memcpy(c->data, b->data, len);
	c->len = len;
	c->peer = b->peer;
	c->local = b->local;
	c->rx_flags = b->rx_flags;
	return c;
}

/* Sends the held tx datagrams that are due. */
static void release_tx(struct fault_transport *f, uint64_t now)
{
	unsigned m = 0;
	uint32_t keep = 0;
	for (uint32_t i = 0; i < f->nheld; i++) {
		struct fault_held h = f->held[i];
		if (h.tx && h.release_ns <= now) {
			f->scratch[m++] = h.buf;
			if (m == ORDO_DP_BURST_MAX) {
				(void)dp_tx_burst(f->inner, f->scratch, m);
				m = 0;
			}
		} else {
			f->held[keep++] = h;
		}
	}
	f->nheld = keep;
	if (m > 0)
		(void)dp_tx_burst(f->inner, f->scratch, m);
}

/* Moves due held rx datagrams into bufs (up to n); returns how many. */
static unsigned release_rx(struct fault_transport *f, struct dp_buf **bufs, unsigned n,
			   uint64_t now)
{
	unsigned got = 0;
	uint32_t keep = 0;
	for (uint32_t i = 0; i < f->nheld; i++) {
		struct fault_held h = f->held[i];
		if (!h.tx && h.release_ns <= now && got < n)
			bufs[got++] = h.buf;
		else
			f->held[keep++] = h;
	}
	f->nheld = keep;
	return got;
}

static unsigned fault_rx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct fault_transport *f = fault_of(t);
	uint64_t now = ordo_mono_ns();
	release_tx(f, now);
	unsigned got = release_rx(f, bufs, n, now);
	/* One inner burst per round; a round that drops everything makes no
	 * progress, so the rounds are bounded too. */
	unsigned rounds = n / ORDO_DP_BURST_MAX + 2;
	while (got < n && rounds-- > 0) {
		unsigned want = n - got < ORDO_DP_BURST_MAX ? n - got : ORDO_DP_BURST_MAX;
		unsigned k = dp_rx_burst(f->inner, f->scratch, want);
		for (unsigned i = 0; i < k; i++) {
			struct dp_buf *b = f->scratch[i];
			if (ordo_prng_chance_ppm(&f->prng, f->cfg.rx_drop_ppm)) {
				t->stats.fault_dropped++;
				dp_free(f->inner, &b, 1);
				continue;
			}
			if (ordo_prng_chance_ppm(&f->prng, f->cfg.rx_delay_ppm) &&
			    hold(f, b, false, now)) {
				t->stats.fault_delayed++;
				continue;
			}
			bufs[got++] = b;
			if (!ordo_prng_chance_ppm(&f->prng, f->cfg.rx_dup_ppm))
				continue;
			struct dp_buf *d = copy_of(f, b);
			if (!d)
				continue;
			t->stats.fault_duplicated++;
			/* got <= n - (k - i - 1): room for the copy unless this burst
			 * filled the caller's array; then it waits one call. */
			if (got < n - (k - i - 1)) {
				bufs[got++] = d;
			} else if (f->nheld < f->cfg.hold_max) {
				f->held[f->nheld++] = (struct fault_held){d, now, false};
			} else {
				t->stats.fault_duplicated--;
				dp_free(f->inner, &d, 1);
			}
		}
		if (k < want)
			break;
	}
	sync_stats(f);
	return got;
}

static unsigned fault_tx_burst(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct fault_transport *f = fault_of(t);
	uint64_t now = ordo_mono_ns();
	release_tx(f, now);
	unsigned sent = 0;
	unsigned m = 0;
	for (unsigned i = 0; i < n; i++) {
		struct dp_buf *b = bufs[i];
		if (!b)
			continue;
		if (ordo_prng_chance_ppm(&f->prng, f->cfg.tx_drop_ppm)) {
			t->stats.fault_dropped++;
			dp_free(f->inner, &b, 1);
			continue;
		}
		if (ordo_prng_chance_ppm(&f->prng, f->cfg.tx_delay_ppm) && hold(f, b, true, now)) {
			t->stats.fault_delayed++;
			sent++; /* taken; it leaves later */
			continue;
		}
		struct dp_buf *d = NULL;
		if (ordo_prng_chance_ppm(&f->prng, f->cfg.tx_dup_ppm)) {
			d = copy_of(f, b);
			if (d)
				t->stats.fault_duplicated++;
		}
		if (m + 2 > ORDO_DP_BURST_MAX) {
			sent += dp_tx_burst(f->inner, f->scratch, m);
			m = 0;
		}
		f->scratch[m++] = b;
		if (d)
			f->scratch[m++] = d;
	}
	if (m > 0)
		sent += dp_tx_burst(f->inner, f->scratch, m);
	sync_stats(f);
	return sent;
}

static struct dp_buf *fault_alloc(struct dp_transport *t)
{
	struct fault_transport *f = fault_of(t);
	struct dp_buf *b = dp_alloc(f->inner);
	sync_stats(f);
	return b;
}

static void fault_free(struct dp_transport *t, struct dp_buf **bufs, unsigned n)
{
	struct fault_transport *f = fault_of(t);
	dp_free(f->inner, bufs, n);
}

static void fault_wait(struct dp_transport *t, uint64_t timeout_ns)
{
	struct fault_transport *f = fault_of(t);
	uint64_t now = ordo_mono_ns();
	release_tx(f, now);
	/* Sleep no later than the next held datagram is due; a due rx one means
	 * a datagram is ready now. */
	for (uint32_t i = 0; i < f->nheld; i++) {
		uint64_t due = f->held[i].release_ns;
		uint64_t left = due > now ? due - now : 0;
		if (left < timeout_ns)
			timeout_ns = left;
	}
	if (timeout_ns > 0)
		dp_wait(f->inner, timeout_ns);
	sync_stats(f);
}

static void fault_close(struct dp_transport *t)
{
	struct fault_transport *f = fault_of(t);
	for (uint32_t i = 0; i < f->nheld; i++)
		dp_free(f->inner, &f->held[i].buf, 1);
	dp_close(f->inner);
	free(f->held);
	free(f);
}

static const struct dp_ops fault_ops = {
    .rx_burst = fault_rx_burst,
    .tx_burst = fault_tx_burst,
    .alloc = fault_alloc,
    .free = fault_free,
    .wait = fault_wait,
    .close = fault_close,
};

/*
 * hold_max 0 takes FAULT_HOLD_DEFAULT and delay_max_ns 0 takes 1ms, so a
 * configuration that asks for delays gets them. On error inner stays the
 * caller's.
 */
int dp_fault_wrap(struct dp_transport *inner, const struct dp_fault_cfg *cfg,
		  struct dp_transport **out)
{
	if (!inner || !cfg || !out)
		return -EINVAL;
	*out = NULL;
	if (cfg->rx_drop_ppm > FAULT_PPM_MAX || cfg->tx_drop_ppm > FAULT_PPM_MAX ||
	    cfg->rx_dup_ppm > FAULT_PPM_MAX || cfg->tx_dup_ppm > FAULT_PPM_MAX ||
	    cfg->rx_delay_ppm > FAULT_PPM_MAX || cfg->tx_delay_ppm > FAULT_PPM_MAX ||
	    cfg->hold_max > FAULT_HOLD_LIMIT)
		return -EINVAL;
	struct fault_transport *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	if (f->cfg.hold_max == 0)
		f->cfg.hold_max = FAULT_HOLD_DEFAULT;
	if (f->cfg.delay_max_ns == 0)
		f->cfg.delay_max_ns = FAULT_DELAY_DEFAULT_NS;
	f->held = calloc(f->cfg.hold_max, sizeof *f->held);
	if (!f->held) {
		free(f);
		return -ENOMEM;
	}
	f->inner = inner;
	f->base.ops = &fault_ops;
	f->base.max_datagram = inner->max_datagram;
	ordo_prng_seed(&f->prng, cfg->seed);
	sync_stats(f);
	*out = &f->base;
	return 0;
}

/* ----------------------------------------------------------------- parse */

static void parse_err(char *err, unsigned errlen, const char *tok, size_t toklen, const char *why)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "bad fault token '%.*s': %s", (int)toklen, tok, why);
}

/* "12.5%" over exactly [p, end) to parts per million, without floating point. */
static bool parse_pct(const char *p, const char *end, uint32_t *ppm, const char **why)
{
	*why = "expected a percentage such as 5% or 0.25%";
	if (end == p || end[-1] != '%')
		return false;
	end--;
	uint64_t whole = 0, frac = 0;
	unsigned fdigits = 0;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9') {
		whole = whole * 10 + (uint64_t)(*q - '0');
		if (whole > 100)
			goto out_range;
		q++;
	}
	if (q == p)
		return false;
	if (q < end && *q == '.') {
		q++;
		if (q == end)
			return false;
		while (q < end && *q >= '0' && *q <= '9') {
			if (++fdigits > 4) {
				*why = "at most 4 decimals (1 ppm)";
				return false;
			}
			frac = frac * 10 + (uint64_t)(*q - '0');
			q++;
		}
	}
	if (q != end)
		return false;
	for (unsigned i = fdigits; i < 4; i++)
		frac *= 10;
	uint64_t v = whole * 10000 + frac;
	if (v > FAULT_PPM_MAX)
		goto out_range;
	*ppm = (uint32_t)v;
	return true;
out_range:
	*why = "a percentage is at most 100%";
	return false;
}

/* "3ms" over exactly [p, end): a count and a unit ns, us, ms or s. */
static bool parse_duration(const char *p, const char *end, uint64_t *ns)
{
	const char *u = p;
	while (u < end && *u >= '0' && *u <= '9')
		u++;
	uint64_t v, mult;
	if (u == p || !ordo_parse_u64(p, (size_t)(u - p), &v))
		return false;
	size_t ul = (size_t)(end - u);
	if (ul == 2 && memcmp(u, "ns", 2) == 0)
		mult = 1;
	else if (ul == 2 && memcmp(u, "us", 2) == 0)
		mult = ORDO_NS_PER_US;
	else if (ul == 2 && memcmp(u, "ms", 2) == 0)
		mult = ORDO_NS_PER_MS;
	else if (ul == 1 && u[0] == 's')
		mult = ORDO_NS_PER_S;
	else
		return false;
	if (v == 0 || v > UINT64_MAX / mult)
		return false;
	*ns = v * mult;
	return true;
}

static bool key_is(const char *k, size_t kl, const char *name)
{
	return strlen(name) == kl && memcmp(k, name, kl) == 0;
}

/* Applies one "key=value" token [tok, end). */
static bool parse_token(const char *tok, const char *end, struct dp_fault_cfg *cfg, char *err,
			unsigned errlen)
{
	const char *eq = memchr(tok, '=', (size_t)(end - tok));
	size_t toklen = (size_t)(end - tok);
	if (!eq) {
		parse_err(err, errlen, tok, toklen, "expected key=value");
		return false;
	}
	const char *k = tok, *v = eq + 1;
	size_t kl = (size_t)(eq - tok);
	const char *why = NULL;
	if (key_is(k, kl, "seed")) {
		if (!ordo_parse_u64(v, (size_t)(end - v), &cfg->seed))
			why = "expected a decimal or 0x hex number";
	} else if (key_is(k, kl, "hold")) {
		uint64_t h;
		if (!ordo_parse_u64(v, (size_t)(end - v), &h) || h < 1 || h > FAULT_HOLD_LIMIT)
			why = "expected a count of held datagrams, 1..1048576";
		else
			cfg->hold_max = (uint32_t)h;
	} else {
		bool rx = true, tx = true;
		if (kl > 3 && memcmp(k, "rx_", 3) == 0) {
			tx = false;
			k += 3;
			kl -= 3;
		} else if (kl > 3 && memcmp(k, "tx_", 3) == 0) {
			rx = false;
			k += 3;
			kl -= 3;
		}
		uint32_t *rxp, *txp;
		bool delay = false;
		if (key_is(k, kl, "drop")) {
			rxp = &cfg->rx_drop_ppm;
			txp = &cfg->tx_drop_ppm;
		} else if (key_is(k, kl, "dup")) {
			rxp = &cfg->rx_dup_ppm;
			txp = &cfg->tx_dup_ppm;
		} else if (key_is(k, kl, "delay")) {
			rxp = &cfg->rx_delay_ppm;
			txp = &cfg->tx_delay_ppm;
			delay = true;
		} else {
			parse_err(err, errlen, tok, toklen,
				  "unknown key; expected drop, dup, delay (each also with rx_ or "
				  "tx_), hold or seed");
			return false;
		}
		const char *pend = end;
		if (delay) {
			const char *colon = memchr(v, ':', (size_t)(end - v));
			if (colon) {
				if (!parse_duration(colon + 1, end, &cfg->delay_max_ns)) {
					parse_err(err, errlen, tok, toklen,
						  "expected a delay maximum such as 3ms, 500us or "
						  "20000ns after ':'");
					return false;
				}
				pend = colon;
			}
		}
		uint32_t ppm;
		if (!parse_pct(v, pend, &ppm, &why)) {
			parse_err(err, errlen, tok, toklen, why);
			return false;
		}
		why = NULL;
		if (rx)
			*rxp = ppm;
		if (tx)
			*txp = ppm;
	}
	if (why) {
		parse_err(err, errlen, tok, toklen, why);
		return false;
	}
	return true;
}

bool dp_fault_parse(const char *text, struct dp_fault_cfg *cfg, char *err, unsigned errlen)
{
	if (err && errlen > 0)
		err[0] = '\0';
	if (!text || !cfg) {
		if (err && errlen > 0)
			snprintf(err, errlen, "no fault text");
		return false;
	}
	struct dp_fault_cfg c;
	memset(&c, 0, sizeof c);
	c.hold_max = FAULT_HOLD_DEFAULT;
	c.delay_max_ns = FAULT_DELAY_DEFAULT_NS;
	const char *p = text;
	/* One token per iteration; p advances past each comma. */
	while (*p) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (end == p) {
			parse_err(err, errlen, p, 0,
				  "empty token (two commas or a trailing comma)");
			return false;
		}
		if (!parse_token(p, end, &c, err, errlen))
			return false;
		p = *end ? end + 1 : end;
		if (*end && !*p) {
			parse_err(err, errlen, p, 0,
				  "empty token (two commas or a trailing comma)");
			return false;
		}
	}
	*cfg = c;
	return true;
}
