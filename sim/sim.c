/*
 * The simulated world of one seed: network, disks, clocks, sequencer nodes
 * (Raft core + sequencer state machine + epoch log), replicas (replica state
 * machine), clients (libordo's retry rules), and the fault schedule.
 *
 * The sequencer driver here mirrors sequencer/node.c step for step (handle a
 * Raft update: install a snapshot, persist, send, apply, advance; snapshot
 * and compact every snapshot_entries), over a simulated disk instead of
 * io_uring storage: sim_disk keeps the records with their CRC32C, what was
 * synced and what was not, and recovery reads it as storage/ reads a
 * segment: a torn tail is truncated, a damaged record with valid records
 * after it stops the node for good.
 *
 * Bounds (not in safety-only mode): damaged records only ever on a minority
 * of each group, always with a valid record after them (so recovery sees
 * them); a majority is restarted and the network healed when the faults
 * stop. Silent loss of a record that fsync said was durable is outside the
 * fault model (no Raft log survives it; docs/SIMULATION.md).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/le.h"
#include "common/plant.h"
#include "sim/world.h"

#ifdef ORDO_PLANT_BUGS
int ordo_plant;
#endif

#define MS(x) ((uint64_t)(x)*1000000ull)

static bool chance(struct sim *s, uint32_t ppm)
{
	return ppm && ordo_prng_chance_ppm(&s->rng, ppm);
}

static uint64_t below(struct sim *s, uint64_t n)
{
	return n ? ordo_prng_below(&s->rng, n) : 0;
}

static uint64_t range(struct sim *s, uint64_t lo, uint64_t hi)
{
	return lo + below(s, hi - lo + 1);
}

void sim_fail(struct sim *s, const char *property, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	s->res->failed = true;
	s->res->step = s->step;
	snprintf(s->res->property, sizeof s->res->property, "%s", property);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->res->detail, sizeof s->res->detail, fmt, ap);
	va_end(ap);
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
	if (s->o.verbose < 2)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(s->o.log, "%8llu ", (unsigned long long)s->step);
	vfprintf(s->o.log, fmt, ap);
	fputc('\n', s->o.log);
	va_end(ap);
}

/* ------------------------------------------------------------ network */

static bool ep_is_seq(const struct sim *s, uint32_t ep)
{
	return ep < s->rep0;
}

/* The sequencer at endpoint ep, or NULL (a replica, a client, or an
 * endpoint no node holds: links to it may be cut, nothing is sent to it). */
static struct sim_seq *seq_at(struct sim *s, uint32_t ep)
{
	if (!ep_is_seq(s, ep))
		return NULL;
	const struct sim_group *g = &s->groups[ep / SIM_SEQ_STRIDE];
	uint32_t i = ep % SIM_SEQ_STRIDE;
	return i < g->nseq ? &s->seqs[g->first + i] : NULL;
}

/* The endpoint of member i (0-based) of group g. */
static uint32_t seq_ep(uint32_t g, uint32_t i)
{
	return g * SIM_SEQ_STRIDE + i;
}

/* Queues one datagram through the link's faults; takes ownership of bytes. */
static void net_send(struct sim *s, struct sim_msg *m)
{
	bool drop = s->cut[m->from][m->to] || chance(s, s->loss_ppm) || s->nmsgs >= SIM_MSGS_MAX ||
		    (s->link_cap && ++s->link_sent[m->from][m->to] > s->link_cap);
	if (drop) {
		s->dropped++;
		free(m->bytes);
		return;
	}
	int copies = chance(s, s->dup_ppm) ? 2 : 1;
	for (int c = 0; c < copies && s->nmsgs < SIM_MSGS_MAX; c++) {
		struct sim_msg *q = &s->msgs[s->nmsgs++];
		*q = *m;
		if (c == 1 && m->bytes) {
			q->bytes = malloc(m->len);
			ORDO_ASSERT(q->bytes);
			memcpy(q->bytes, m->bytes, m->len);
		}
		q->at = s->now + STEP_NS * range(s, s->delay_min, s->delay_max);
		q->seq = s->msg_seq++;
	}
}

/* ------------------------------------------------------------ disk */

static uint32_t rec_crc(const struct sim_rec *r)
{
	uint8_t h[24];
	ordo_st64(h, r->index);
	ordo_st64(h + 8, r->term);
	ordo_st32(h + 16, r->type);
	ordo_st32(h + 20, r->len);
	uint32_t c = ordo_crc32c_update(ordo_crc32c_init(), h, sizeof h);
	if (r->len)
		c = ordo_crc32c_update(c, r->data, r->len);
	return ordo_crc32c_final(c);
}

static uint64_t disk_last(const struct sim_disk *d)
{
	return d->snap.index + d->n;
}

static void hold(struct sim_seq *n, uint8_t *p)
{
	if (!p)
		return;
	if (n->nhold == n->hold_cap) {
		n->hold_cap = n->hold_cap ? 2 * n->hold_cap : 64;
		n->hold = realloc(n->hold, n->hold_cap * sizeof *n->hold);
		ORDO_ASSERT(n->hold);
	}
	n->hold[n->nhold++] = p;
}

static void release_held(struct sim_seq *n)
{
	for (uint32_t i = 0; i < n->nhold; i++)
		free(n->hold[i]);
	n->nhold = 0;
}

/* Drops records from index on (truncate a suffix). Their bytes are held
 * until the update loop drains (raft.h's memory rule). */
static void disk_truncate(struct sim_seq *n, uint64_t index)
{
	struct sim_disk *d = &n->disk;
	while (d->n && disk_last(d) >= index)
		hold(n, d->recs[--d->n].data);
}

static void disk_append(struct sim_seq *n, const struct raft_entry *e)
{
	struct sim_disk *d = &n->disk;
	ORDO_ASSERT(e->index == disk_last(d) + 1);
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->recs = realloc(d->recs, d->cap * sizeof *d->recs);
		ORDO_ASSERT(d->recs);
	}
	struct sim_rec *r = &d->recs[d->n++];
	*r = (struct sim_rec){.index = e->index,
			      .term = e->term,
			      .term_stored = e->term,
			      .type = e->type,
			      .len = e->len};
	if (e->len) {
		r->data = malloc(e->len);
		ORDO_ASSERT(r->data);
		memcpy(r->data, e->data, e->len);
	}
	r->crc = rec_crc(r);
}

static void disk_sync(struct sim_disk *d)
{
	for (uint32_t i = d->n; i-- > 0 && !d->recs[i].synced;)
		d->recs[i].synced = true;
}

/* What a power cut leaves of the records written since the last sync: a
 * prefix of them (the OS may have written some), the last one possibly torn. */
static void disk_power_cut(struct sim *s, struct sim_seq *n)
{
	struct sim_disk *d = &n->disk;
	uint32_t first = d->n;
	while (first > 0 && !d->recs[first - 1].synced)
		first--;
	uint32_t keep = first + (uint32_t)below(s, d->n - first + 1);
	while (d->n > keep)
		free(d->recs[--d->n].data);
	if (keep > first && chance(s, 500000)) {
		struct sim_rec *r = &d->recs[keep - 1]; /* torn: its tail never reached the disk */
		if (r->len)
			memset(r->data + r->len / 2, 0, r->len - r->len / 2);
		else
			r->crc ^= 1;
	}
	for (uint32_t i = first; i < d->n; i++)
		d->recs[i].synced = true; /* what survived is on the platter now */
}

/* A stored record damaged while the node runs: a bit flip, a zeroed sector,
 * or another record's write landing on it (misdirected). Only records with a
 * valid record after them, so recovery can tell damage from a torn tail. */
static bool disk_damage(struct sim *s, struct sim_seq *n)
{
	struct sim_disk *d = &n->disk;
	/* Only a record with an intact synced one after it: the unsynced tail
	 * may be lost at the restart and the last record torn, and a damaged
	 * record left last would read as a torn write and be cut silently (the
	 * torn-tail rule's known limit, storage/seglog.h), which is not the
	 * bounded fault modelled here. */
	uint32_t last_synced = 0; /* and intact: a power cut may have torn the last one */
	for (uint32_t k = d->n; k > 0; k--) {
		const struct sim_rec *q = &d->recs[k - 1];
		if (q->synced && q->crc == rec_crc(q) && q->index == d->snap.index + k) {
			last_synced = k - 1;
			break;
		}
	}
	if (last_synced < 1)
		return false;
	uint32_t i = (uint32_t)below(s, last_synced);
	struct sim_rec *r = &d->recs[i];
	switch (below(s, 3)) {
	case 0: /* bit flip */
		if (r->len)
			r->data[below(s, r->len)] ^= (uint8_t)(1u << below(s, 8));
		else
			r->term ^= 1ull << below(s, 8);
		break;
	case 1: /* zeroed sector */
		if (r->len)
			memset(r->data, 0, r->len < 512 ? r->len : 512);
		r->index = r->term = 0;
		break;
	default: { /* misdirected: the next record's bytes landed here too */
		const struct sim_rec *src = &d->recs[i + 1];
		uint64_t stored = r->term_stored; /* what was written here, for checkers */
		free(r->data);
		*r = *src;
		r->term_stored = stored;
		r->data = NULL;
		if (src->len) {
			r->data = malloc(src->len);
			ORDO_ASSERT(r->data);
			memcpy(r->data, src->data, src->len);
		}
		break;
	}
	}
	d->corrupted = true;
	return true;
}

/* Recovery as storage/ does it: read to the last valid record; a bad record
 * at the tail is a torn write (truncate); one with valid records after it
 * is corruption (false: the node refuses to start, naming it). */
static bool disk_recover(struct sim *s, struct sim_seq *n)
{
	struct sim_disk *d = &n->disk;
	for (uint32_t i = 0; i < d->n; i++) {
		struct sim_rec *r = &d->recs[i];
		bool ok = r->crc == rec_crc(r) && r->index == d->snap.index + 1 + i;
		if (ok)
			continue;
		for (uint32_t j = i + 1; j < d->n; j++) {
			const struct sim_rec *q = &d->recs[j];
			if (q->crc == rec_crc(q) && q->index == d->snap.index + 1 + j) {
				trace(s,
				      "seq %s: record of index %llu is damaged; refusing to start",
				      n->name, (unsigned long long)(d->snap.index + 1 + i));
				return false;
			}
		}
		while (d->n > i)
			free(d->recs[--d->n].data);
		break;
	}
	return true;
}

/* raft_log_ops over the simulated disk. */
static uint64_t log_first(void *ctx)
{
	return ((struct sim_seq *)ctx)->disk.snap.index + 1;
}

static uint64_t log_last(void *ctx)
{
	return disk_last(&((struct sim_seq *)ctx)->disk);
}

static int log_term(void *ctx, uint64_t index, uint64_t *term)
{
	const struct sim_disk *d = &((struct sim_seq *)ctx)->disk;
	if (index == d->snap.index) {
		*term = d->snap.term;
		return 0;
	}
	if (index < d->snap.index || index > disk_last(d))
		return -ENOENT;
	*term = d->recs[index - d->snap.index - 1].term;
	return 0;
}

static int log_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		       struct raft_entry *out, uint32_t max_n)
{
	const struct sim_disk *d = &((struct sim_seq *)ctx)->disk;
	if (lo <= d->snap.index)
		return -ENOENT;
	if (hi > disk_last(d) + 1)
		hi = disk_last(d) + 1;
	uint32_t k = 0;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi && k < max_n; i++) {
		const struct sim_rec *r = &d->recs[i - d->snap.index - 1];
		if (k > 0 && bytes + r->len > max_bytes)
			break;
		out[k++] = (struct raft_entry){
		    .term = r->term, .index = i, .data = r->data, .len = r->len, .type = r->type};
		bytes += r->len;
	}
	return (int)k;
}

static void log_snapshot_meta(void *ctx, struct raft_snapshot_meta *out)
{
	*out = ((struct sim_seq *)ctx)->disk.snap;
}

static int log_snapshot(void *ctx, struct raft_snapshot *out)
{
	const struct sim_disk *d = &((struct sim_seq *)ctx)->disk;
	if (!d->snap_data)
		return -EAGAIN;
	out->meta = d->snap;
	out->data = d->snap_data;
	out->len = d->snap_len;
	return 0;
}

static const struct raft_log_ops sim_log_ops = {
    .first_index = log_first,
    .last_index = log_last,
    .term_at = log_term,
    .entries = log_entries,
    .snapshot_meta = log_snapshot_meta,
    .snapshot = log_snapshot,
};

/* Replaces the snapshot (durable) and drops the records it covers. */
static void disk_save_snapshot(struct sim_seq *n, const struct raft_snapshot_meta *meta,
			       const uint8_t *data, uint64_t len)
{
	struct sim_disk *d = &n->disk;
	uint8_t *copy = malloc(len ? len : 1);
	ORDO_ASSERT(copy);
	memcpy(copy, data, len);
	hold(n, d->snap_data);
	d->snap_data = copy;
	d->snap_len = len;
	if (meta->index >= disk_last(d)) {
		disk_truncate(n, d->snap.index + 1);
	} else if (meta->index > d->snap.index) {
		uint32_t drop = (uint32_t)(meta->index - d->snap.index);
		for (uint32_t i = 0; i < drop; i++)
			hold(n, d->recs[i].data);
		memmove(d->recs, d->recs + drop, (d->n - drop) * sizeof *d->recs);
		d->n -= drop;
	}
	d->snap = *meta;
}

/* ------------------------------------------------------------ sequencers */

/* A node's CLOCK_REALTIME: simulated time from 2026-01-01, plus its steps
 * and its skew. With several groups it numbers the epochs (batcher.h). */
static uint64_t sim_wall(const struct sim *s, const struct sim_seq *n)
{
	return (uint64_t)((int64_t)(1767225600ull * 1000000000ull + s->now) + n->wall_offset +
			  n->skew_ns);
}

static void seq_stop(struct sim *s, struct sim_seq *n, const char *why);

static void on_ordered(void *ctx, const struct wire_req *r, const struct wire_place *place,
		       const struct seq_reply_to *to)
{
	struct sim_seq *n = ctx;
	struct sim *s = n->sim;
	check_home(s, n->group, r->client_id, r->request_number, "ordered");
	struct sim_msg m = {.from = (uint8_t)n->ep,
			    .to = (uint8_t)to->ip,
			    .kind = K_ORDERED,
			    .status = WIRE_ST_OK,
			    .place = *place,
			    .req = *r};
	m.req.payload = NULL;
	net_send(s, &m);
}

/* Sends the entry ending at `epoch` to a replica: whole with one group;
 * with several in EPOCH_DATA fragments of frag_bytes, as sequencer/node.c
 * stream_epoch_to, which the replica reassembles with replicas/merge.h. */
static void send_epoch(struct sim *s, struct sim_seq *n, uint32_t to, uint64_t epoch,
		       const uint8_t *bytes, uint32_t len)
{
	uint32_t frag = s->ngroups > 1 ? s->frag_bytes : len;
	for (uint32_t off = 0; off < len; off += frag) {
		uint32_t chunk = len - off < frag ? len - off : frag;
		struct sim_msg m = {.from = (uint8_t)n->ep,
				    .to = (uint8_t)to,
				    .kind = K_EPOCH,
				    .len = chunk,
				    .group = (uint8_t)n->group,
				    .off = off,
				    .total = len};
		m.bytes = malloc(chunk);
		ORDO_ASSERT(m.bytes);
		memcpy(m.bytes, bytes + off, chunk);
		m.a = n->m.committed_epoch;
		m.b = s->ngroups > 1 ? epoch : 0;
		net_send(s, &m);
	}
}

static void on_epoch(void *ctx, const struct wire_epoch_hdr *h, const uint8_t *bytes, uint32_t len,
		     bool leading)
{
	struct sim_seq *n = ctx;
	struct sim *s = n->sim;
	seq_epochlog_append(&n->elog, h->from_epoch, h->epoch, bytes, len);
	if (leading)
		for (uint32_t j = 0; j < s->nrep; j++)
			send_epoch(s, n, s->rep0 + j, h->epoch, bytes, len);
}

static void send_raft(struct sim *s, struct sim_seq *n, const struct raft_msg *msgs, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		struct sim_msg m = {.from = (uint8_t)n->ep,
				    .to = (uint8_t)seq_ep(n->group, (uint32_t)msgs[i].to - 1),
				    .kind = K_RAFT};
		size_t len = raft_msg_encoded_len(&msgs[i]);
		m.bytes = malloc(len);
		ORDO_ASSERT(m.bytes);
		long w = raft_msg_encode(&msgs[i], m.bytes, len);
		ORDO_ASSERT(w == (long)len);
		m.len = (uint32_t)len;
		net_send(s, &m);
	}
}

/* Persists u as seq_raftlog_persist does: meta (term, vote) atomically and
 * durably first, then the entries, one sync for all. Faults: a power cut in
 * the middle (false: the node is down), an fsync error (the node stops). */
static bool seq_persist(struct sim *s, struct sim_seq *n, const struct raft_update *u)
{
	struct sim_disk *d = &n->disk;
	bool cut = u->must_sync && !s->healing && chance(s, s->persist_crash_ppm);
	uint32_t upto = cut ? (uint32_t)below(s, u->n_entries + 2) : UINT32_MAX;
	if (u->has_hard_state && (u->hard_state.term != d->term || u->hard_state.vote != d->vote)) {
		if (upto == 0) {
			seq_stop(s, n, "power cut before the meta write");
			return false;
		}
		d->term = u->hard_state.term;
		d->vote = u->hard_state.vote;
	}
	if (u->n_entries) {
		uint64_t first = u->entries[0].index;
		if (first <= disk_last(d))
			disk_truncate(n, first);
		for (uint32_t i = 0; i < u->n_entries; i++) {
			if (upto != UINT32_MAX && i + 1 >= upto) {
				seq_stop(s, n, "power cut while writing entries");
				return false;
			}
			check_written(s, n, &u->entries[i]);
			if (s->failed)
				return false;
			disk_append(n, &u->entries[i]);
		}
	}
	if (cut) {
		seq_stop(s, n, "power cut before the sync");
		return false;
	}
	if (u->must_sync && !s->healing && chance(s, s->fsync_err_ppm)) {
		seq_stop(s, n, "fsync failed: the node stops before it answers");
		return false;
	}
	disk_sync(d);
	if (s->disk_lat_max)
		n->busy_until = s->now + STEP_NS * below(s, s->disk_lat_max + 1);
	if (u->n_entries) {
		const struct raft_entry *e = &u->entries[u->n_entries - 1];
		raft_persisted(n->raft, e->term, e->index);
	}
	return true;
}

static void maybe_snapshot(struct sim *s, struct sim_seq *n)
{
	if (n->m.applied_index < n->disk.snap.index + s->snapshot_entries)
		return;
	size_t len;
	struct raft_snapshot_meta meta;
	int rc = seq_machine_snapshot(
	    &n->m, n->snap_buf, seq_sessions_snapshot_bytes_max(&s->mcfg.sessions), &len, &meta);
	ORDO_ASSERT(rc == 0);
	disk_save_snapshot(n, &meta, n->snap_buf, len);
	rc = raft_compact(n->raft, meta.index);
	ORDO_ASSERT(rc == 0);
	trace(s, "seq %s: snapshot at %llu", n->name, (unsigned long long)meta.index);
}

/* Handles every pending Raft update, as sequencer/node.c's handle_raft. */
static void seq_updates(struct sim *s, struct sim_seq *n)
{
	while (n->up && !s->failed && raft_has_update(n->raft)) {
		struct raft_update u;
		raft_ready(n->raft, &u);
		if (u.snapshot) {
			int rc = seq_machine_restore(&n->m, u.snapshot->data, u.snapshot->len,
						     &u.snapshot->meta);
			if (rc) {
				sim_fail(s, "snapshot install",
					 "node %s could not restore the snapshot at %llu: %d",
					 n->name, (unsigned long long)u.snapshot->meta.index, rc);
				return;
			}
			disk_save_snapshot(n, &u.snapshot->meta, u.snapshot->data, u.snapshot->len);
			seq_epochlog_free(&n->elog);
			rc = seq_epochlog_init(&n->elog, SIM_EPOCHLOG_BYTES, SIM_EPOCHLOG_EPOCHS);
			ORDO_ASSERT(rc == 0);
			raft_snapshot_applied(n->raft, u.snapshot->meta.index);
			s->res->snapshots++;
		}
		if (ORDO_PLANTED(ORDO_PLANT_VOTE_BEFORE_DURABLE)) {
			/* planted: votes go out before the meta write that records
			 * them; a power cut in between forgets a granted vote */
			static struct raft_msg rest[4096];
			uint32_t nrest = 0;
			for (uint32_t i = 0; i < u.n_msgs; i++) {
				if (u.msgs[i].type == RAFT_MSG_VOTE_RESP && !u.msgs[i].reject)
					send_raft(s, n, &u.msgs[i], 1);
				else if (nrest < 4096)
					rest[nrest++] = u.msgs[i];
			}
			u.msgs = rest;
			u.n_msgs = nrest;
			if (u.has_hard_state && !s->healing && chance(s, 200000)) {
				seq_stop(s, n, "power cut after voting");
				return;
			}
		}
		if (u.msgs_first) /* as sequencer/node.c: before the leader's write */
			send_raft(s, n, u.msgs, u.n_msgs);
		if (!seq_persist(s, n, &u))
			return;
		if (seq_machine_soft_state(&n->m, &u) && n->m.role == RAFT_LEADER) {
			trace(s, "seq %s: leader of term %llu", n->name,
			      (unsigned long long)n->m.term);
			check_leader(s, n, n->m.term);
			if (s->failed)
				return;
			struct raft_status rs;
			raft_get_status(n->raft, &rs);
			n->lead_commit = rs.commit;
			/* a leader that dies young, before its first entry is
			 * everywhere (thesis Figure 3.7's setting) */
			if (!s->healing && chance(s, s->young_crash_ppm))
				n->crash_at = s->now + MS(range(s, 1, 40));
		}
		if (!u.msgs_first)
			send_raft(s, n, u.msgs, u.n_msgs);
		for (uint32_t i = 0; i < u.n_committed && !s->failed; i++)
			check_committed(s, n, &u.committed[i]);
		if (u.n_committed && n->m.role == RAFT_LEADER &&
		    u.committed[u.n_committed - 1].index > n->lead_commit)
			check_commit_rule(s, n, u.committed[u.n_committed - 1].index);
		if (s->failed)
			return;
		seq_machine_apply_update(&n->m, &u);
		raft_advance(n->raft, &u);
	}
	if (!n->up || s->failed)
		return;
	release_held(n);
	maybe_snapshot(s, n);
}

static struct raft_config raft_cfg_for(struct sim *s, struct sim_seq *n)
{
	struct raft_config c = s->rcfg;
	c.id = n->id;
	c.prng_seed = s->o.seed * 0x9E3779B97F4A7C15ull + n->id * 1000003ull + n->restarts +
		      n->group * 0x51ED27ull; /* group 0 (one group): as before groups */
	c.hard_state = (struct raft_hard_state){.term = n->disk.term, .vote = n->disk.vote};
	c.applied = n->m.applied_index;
	c.log = &sim_log_ops;
	c.log_ctx = n;
	return c;
}

/* Starts (or restarts) a sequencer from its disk, as node_open does. */
static void seq_start(struct sim *s, struct sim_seq *n)
{
	if (!disk_recover(s, n)) {
		n->dead = true;
		sim_group_of(s, n)->dead++;
		s->res->dead++;
		return;
	}
	struct seq_machine_cfg mc = s->mcfg;
	mc.ops.ctx = n;
	mc.batcher.group = (uint16_t)n->group;
	int rc = seq_machine_init(&n->m, &mc);
	ORDO_ASSERT(rc == 0);
	rc = seq_epochlog_init(&n->elog, SIM_EPOCHLOG_BYTES, SIM_EPOCHLOG_EPOCHS);
	ORDO_ASSERT(rc == 0);
	if (n->disk.snap.index) {
		rc = seq_machine_restore(&n->m, n->disk.snap_data, n->disk.snap_len, &n->disk.snap);
		if (rc)
			sim_fail(s, "recovery", "node %s cannot restore its own snapshot: %d",
				 n->name, rc);
	}
	struct raft_config c = raft_cfg_for(s, n);
	rc = raft_new(&c, &n->raft);
	if (rc) {
		sim_fail(s, "recovery", "node %s: raft_new refused its own disk: %d", n->name, rc);
		return;
	}
	seq_machine_attach(&n->m, n->raft);
	n->up = true;
	n->paused_until = n->busy_until = n->crash_at = 0;
	n->next_tick = s->now + STEP_NS * (1 + below(s, TICK_STEPS));
	n->disk.corrupted = false;
}

static void seq_stop(struct sim *s, struct sim_seq *n, const char *why)
{
	trace(s, "seq %s: down (%s)", n->name, why);
	raft_free(n->raft);
	n->raft = NULL;
	seq_machine_free(&n->m);
	seq_epochlog_free(&n->elog);
	release_held(n);
	disk_power_cut(s, n);
	n->up = false;
	n->restarts++;
	s->res->crashes++;
	n->paused_until = s->now + STEP_NS * range(s, 20, 800); /* restart time */
	if (!s->healing && chance(s, s->corrupt_ppm)) {
		/* Bounded: damage only while the group keeps a majority of sound
		 * disks (a damaged node refuses to start: it is lost). */
		const struct sim_group *g = sim_group_of(s, n);
		uint32_t damaged = g->dead;
		for (uint32_t i = g->first; i < g->first + g->nseq; i++)
			damaged += s->seqs[i].disk.corrupted;
		if ((s->o.safety_only || damaged < g->faulty_max) && disk_damage(s, n))
			trace(s, "seq %s: a stored record is damaged", n->name);
	}
}

static void seq_on_raft(struct sim *s, struct sim_seq *n, struct sim_msg *m)
{
	static struct raft_entry ents[4096];
	struct raft_msg rm;
	if (raft_msg_decode(m->bytes, m->len, &rm, ents, 4096) != 0) {
		sim_fail(s, "codec", "node %s could not decode a Raft message", n->name);
		return;
	}
	if (raft_step(n->raft, &rm) == 0 && rm.type == RAFT_MSG_SNAP) {
		hold(n, m->bytes); /* the core keeps snap_data until it is drained */
		m->bytes = NULL;
	}
}

static void reply(struct sim *s, struct sim_seq *n, uint32_t to, const struct wire_req *r,
		  enum wire_status st, const struct wire_place *place)
{
	struct sim_msg m = {.from = (uint8_t)n->ep,
			    .to = (uint8_t)to,
			    .kind = K_ORDERED,
			    .status = (uint16_t)st,
			    .req = *r,
			    .leader = (uint32_t)n->m.leader_id};
	m.req.payload = NULL;
	if (place)
		m.place = *place;
	net_send(s, &m);
}

static void seq_on_submit(struct sim *s, struct sim_seq *n, struct sim_msg *m)
{
	struct wire_req r = m->req;
	r.payload = m->payload;
	if (wire_req_validate(&r, false, 0) != WIRE_ST_OK) {
		reply(s, n, m->from, &r, WIRE_ST_INVALID, NULL);
		return;
	}
	const struct seq_reply_to from = {.ip = m->from, .port = 1};
	enum wire_status st;
	struct wire_place place;
	uint64_t wall = sim_wall(s, n);
	if (seq_machine_submit(&n->m, &r, &from, s->now, wall, &st, &place))
		reply(s, n, m->from, &r, st,
		      st == WIRE_ST_OK || st == WIRE_ST_DUPLICATE ? &place : NULL);
}

/* The oldest epoch this member can resend (sequencer/node.c). */
static uint64_t seq_retained_from(const struct sim_seq *n)
{
	return n->elog.first_epoch ? n->elog.first_epoch : n->m.committed_epoch + 1;
}

/* Several groups: as sequencer/node.c handle_nack, the entries covering
 * epochs a .. a + b - 1 (up to the committed one), each once, at most 64;
 * past an epoch older than the oldest retained, from that one on. */
#define SIM_NACK_ENTRIES_MAX 64u
static void seq_on_nack_groups(struct sim *s, struct sim_seq *n, const struct sim_msg *m)
{
	uint64_t last = n->m.committed_epoch;
	if (m->b > 0 && m->a + (m->b - 1) < last)
		last = m->a + (m->b - 1);
	uint64_t e = m->a;
	bool unretained = false;
	for (uint32_t k = 0; k < SIM_NACK_ENTRIES_MAX && m->b > 0 && e <= last; k++) {
		const uint8_t *bytes;
		uint32_t len;
		uint64_t from, to;
		if (seq_epochlog_get_entry(&n->elog, e, &bytes, &len, &from, &to) != 0) {
			trace(s, "seq %s: NACK for epoch %llu: not retained", n->name,
			      (unsigned long long)e);
			unretained = true;
			if (n->elog.first_epoch == 0 || e >= n->elog.first_epoch)
				break;
			e = n->elog.first_epoch;
			continue;
		}
		send_epoch(s, n, m->from, to, bytes, len);
		e = to + 1;
	}
	/* as the node: say what this member still holds (EPOCH_HEARTBEAT's
	 * retained_from), so the replica aims its NACKs */
	if (unretained) {
		struct sim_msg hb = {.from = (uint8_t)n->ep,
				     .to = m->from,
				     .kind = K_EPOCH_HB,
				     .a = n->m.committed_epoch,
				     .b = seq_retained_from(n),
				     .group = (uint8_t)n->group};
		net_send(s, &hb);
	}
}

static void seq_on_nack(struct sim *s, struct sim_seq *n, const struct sim_msg *m)
{
	if (s->ngroups > 1) {
		if (m->group == n->group)
			seq_on_nack_groups(s, n, m);
		return;
	}
	for (uint64_t e = m->a; e < m->a + m->b && e <= n->m.committed_epoch; e++) {
		const uint8_t *bytes;
		uint32_t len;
		if (seq_epochlog_get(&n->elog, e, &bytes, &len) == 0)
			send_epoch(s, n, m->from, e, bytes, len);
		else
			trace(s, "seq %s: NACK for epoch %llu: not retained", n->name,
			      (unsigned long long)e);
	}
}

static void seq_deliver(struct sim *s, struct sim_seq *n, struct sim_msg *m)
{
	switch (m->kind) {
	case K_RAFT:
		seq_on_raft(s, n, m);
		break;
	case K_SUBMIT:
		seq_on_submit(s, n, m);
		break;
	case K_NACK:
		seq_on_nack(s, n, m);
		break;
	default:
		break;
	}
	if (s->failed)
		return;
	uint64_t wall = sim_wall(s, n);
	seq_machine_tick(&n->m, s->now, wall);
	seq_updates(s, n);
}

static void seq_tick(struct sim *s, struct sim_seq *n)
{
	raft_tick(n->raft);
	uint64_t wall = sim_wall(s, n);
	seq_machine_tick(&n->m, s->now, wall);
	seq_updates(s, n);
	if (n->up && n->m.role == RAFT_LEADER && s->now - n->last_hb >= MS(20)) {
		n->last_hb = s->now;
		for (uint32_t j = 0; j < s->nrep; j++) {
			struct sim_msg m = {.from = (uint8_t)n->ep,
					    .to = (uint8_t)(s->rep0 + j),
					    .kind = K_EPOCH_HB,
					    .a = n->m.committed_epoch,
					    .b = seq_retained_from(n),
					    .group = (uint8_t)n->group};
			net_send(s, &m);
		}
	}
}

/* ------------------------------------------------------------ replicas */

struct rep_ctx {
	struct sim *s;
	uint32_t j;
	/* the entry being applied (group, epoch) and the record's index in it */
	uint64_t epoch;
	uint32_t group;
	uint32_t index;
};

#define REP_CTX(s, j)                                                                              \
	{                                                                                          \
		(s), (j), UINT64_MAX, 0, 0                                                         \
	}

static void on_rep_applied(void *ctx, const struct wire_epoch_hdr *h,
			   const struct wire_entry_rec *ent, const struct wire_epoch_rec *er,
			   const uint8_t digest_before[16], const uint8_t *data)
{
	struct rep_ctx *c = ctx;
	(void)er, (void)data;
	if (h->epoch != c->epoch || h->group != c->group) {
		c->epoch = h->epoch;
		c->group = h->group;
		c->index = 0;
	}
	const struct sim_applied a = {
	    .position = ent->position,
	    .key = sim_key(ent->client_id, ent->request_number),
	    .digest_before = digest_before,
	    .group = h->group,
	    .group_position = h->first_position + c->index++,
	    .epoch = ent->epoch,
	};
	check_applied(c->s, c->j, &a);
}

static void rep_keep(struct sim_rep *r, uint64_t epoch, const uint8_t *bytes, uint32_t len)
{
	if (epoch >= r->epochs_cap) {
		uint64_t cap = r->epochs_cap ? r->epochs_cap : 1024;
		while (cap <= epoch)
			cap *= 2;
		r->epochs = realloc(r->epochs, cap * sizeof *r->epochs);
		r->epoch_len = realloc(r->epoch_len, cap * sizeof *r->epoch_len);
		ORDO_ASSERT(r->epochs && r->epoch_len);
		memset(r->epochs + r->epochs_cap, 0, (cap - r->epochs_cap) * sizeof *r->epochs);
		r->epochs_cap = cap;
	}
	if (r->epochs[epoch])
		return;
	r->epochs[epoch] = malloc(len);
	ORDO_ASSERT(r->epochs[epoch]);
	memcpy(r->epochs[epoch], bytes, len);
	r->epoch_len[epoch] = len;
}

static void rep_drain(struct sim *s, uint32_t j)
{
	struct sim_rep *r = &s->reps[j];
	struct rep_ctx c = REP_CTX(s, j);
	while (!s->failed && r->st.next_epoch < r->epochs_cap && r->epochs[r->st.next_epoch]) {
		uint64_t e = r->st.next_epoch;
		bool ok = rep_state_apply_epoch(&r->st, r->epochs[e], r->epoch_len[e],
						on_rep_applied, &c);
		free(r->epochs[e]);
		r->epochs[e] = NULL;
		if (!ok) {
			sim_fail(s, "epoch stream", "replica %u could not apply epoch %llu", j + 1,
				 (unsigned long long)e);
			return;
		}
	}
}

/* Planted (SIM_PLANT_MERGE_EARLY): the step of the groups whose entry
 * covering the next epoch is there, the others taken as empty. */
static bool merge_early(const struct sim_rep *r, struct rep_merge_step *st)
{
	uint64_t end[SIM_GROUPS_MAX], min = UINT64_MAX;
	for (uint32_t g = 0; g < r->mg.groups; g++) {
		if (!rep_merge_covering(&r->mg, g, r->st.applied_epoch + 1, &st->bytes[g],
					&st->len[g], &end[g]))
			end[g] = UINT64_MAX;
		else if (end[g] < min)
			min = end[g];
	}
	if (min == UINT64_MAX)
		return false;
	st->epoch = min;
	st->contributing = 0;
	for (uint32_t g = 0; g < r->mg.groups; g++) {
		if (end[g] == min) {
			st->contributing++;
		} else {
			st->bytes[g] = NULL;
			st->len[g] = 0;
		}
	}
	return true;
}

/* rep_merge_next_from: the step after the merged epoch, of the groups the
 * state merges (every group founds the cluster here). */
static bool merge_next(const struct sim_rep *r, struct rep_merge_step *st)
{
	uint64_t from[ORDO_GROUPS_MAX];
	for (uint32_t g = 0; g < r->mg.groups; g++)
		from[g] = rep_state_group_from(&r->st, g);
	return rep_merge_next_from(&r->mg, r->st.applied_epoch, from, st, NULL);
}

/* Several groups: applies every merged epoch the merge holds complete, as
 * replicas/node.c drain (rep_merge_next_from, rep_state_apply_merged). */
static void rep_drain_merged(struct sim *s, uint32_t j)
{
	struct sim_rep *r = &s->reps[j];
	struct rep_ctx c = REP_CTX(s, j);
	struct rep_merge_step st;
	while (!s->failed && (merge_next(r, &st) ||
			      (ORDO_PLANTED(SIM_PLANT_MERGE_EARLY) && merge_early(r, &st)))) {
		uint64_t before = r->st.applied_epoch;
		bool ok = rep_state_apply_merged(&r->st, st.epoch, st.bytes, st.len, s->ngroups,
						 on_rep_applied, &c);
		rep_merge_release(&r->mg, &st);
		if (!ok) {
			/* Committed entries only ever reach a replica: one that does
			 * not continue its group is a sequencer or merge bug (the
			 * node drops it and asks again; here it is reported). */
			sim_fail(
			    s, "epoch stream",
			    "replica %u could not apply merged epoch %llu after %llu (%u groups "
			    "contributing)",
			    j + 1, (unsigned long long)st.epoch, (unsigned long long)before,
			    st.contributing);
			return;
		}
		if (st.epoch > s->order_merged)
			s->order_merged = st.epoch;
	}
}

/* Several groups: EPOCH_DATA fragments and heartbeats of every group into
 * replicas/merge.h, as replicas/node.c handle_epoch_data. */
static void rep_deliver_merged(struct sim *s, uint32_t j, struct sim_msg *m)
{
	struct sim_rep *r = &s->reps[j];
	if (m->kind == K_EPOCH_HB) {
		if (r->repair[m->group].source == UINT32_MAX)
			r->repair[m->group].source = m->from;
		rep_merge_committed(&r->mg, m->group, m->a);
		if (m->from < SIM_EPS_MAX && m->b > r->retained_from[m->from])
			r->retained_from[m->from] = m->b;
		return;
	}
	if (m->kind != K_EPOCH)
		return;
	r->repair[m->group].source = m->from; /* the member that streams to us */
	const struct wire_epoch_data d = {
	    .epoch = m->b,
	    .committed_epoch = m->a,
	    .total_bytes = m->total,
	    .offset = m->off,
	    .data_bytes = m->len,
	    .group = m->group,
	    .data = m->bytes,
	};
	/* what replicas/node.c checks before the merge takes a fragment */
	ORDO_ASSERT(d.total_bytes >= ORDO_EPOCH_HDR_BYTES &&
		    d.total_bytes <= s->mcfg.batcher.epoch_bytes && d.offset % s->frag_bytes == 0 &&
		    (d.data_bytes == s->frag_bytes || d.offset + d.data_bytes == d.total_bytes));
	int rc = rep_merge_fragment(&r->mg, &d, r->st.applied_epoch);
	if (rc < 0)
		sim_fail(s, "epoch stream",
			 "replica %u: a fragment of group %u's entry ending at epoch %llu "
			 "contradicts the entry being reassembled",
			 j + 1, m->group, (unsigned long long)d.epoch);
	else if (rc == 1)
		rep_drain_merged(s, j);
}

static void rep_deliver(struct sim *s, uint32_t j, struct sim_msg *m)
{
	struct sim_rep *r = &s->reps[j];
	if (s->ngroups > 1) {
		rep_deliver_merged(s, j, m);
		return;
	}
	r->source = m->from;
	if (m->kind == K_EPOCH_HB || m->kind == K_EPOCH) {
		if (m->a > r->known_committed)
			r->known_committed = m->a;
	}
	if (m->kind != K_EPOCH)
		return;
	struct wire_epoch_hdr h;
	if (wire_epoch_decode_hdr(m->bytes, m->len, &h) != 0) {
		sim_fail(s, "epoch stream", "replica %u got a malformed epoch", j + 1);
		return;
	}
	if (h.epoch > r->known_committed)
		r->known_committed = h.epoch;
	if (h.epoch < r->st.next_epoch)
		return; /* a duplicate */
	/* The state machine takes only the next epoch; offer this one as it
	 * arrives (a planted out-of-order apply would take it), then drain. */
	struct rep_ctx c = REP_CTX(s, j);
	if (!rep_state_apply_epoch(&r->st, m->bytes, m->len, on_rep_applied, &c))
		rep_keep(r, h.epoch, m->bytes, m->len);
	rep_drain(s, j);
}

/* State transfer (replicas/node.c does it through a checkpoint file,
 * docs/PROTOCOL.md 1.6): a replica whose next epoch no running sequencer
 * retains, for SIM_XFER_AFTER, takes the state of the running replica that
 * has applied the most, if that one is ahead of it. */
#define SIM_XFER_AFTER MS(500)
static bool rep_transfer(struct sim *s, uint32_t j)
{
	struct sim_rep *r = &s->reps[j];
	if (!sim_rep_stuck(s, r)) {
		r->stuck_since = 0;
		return false;
	}
	if (r->stuck_since == 0)
		r->stuck_since = s->now ? s->now : 1;
	if (s->now - r->stuck_since < SIM_XFER_AFTER)
		return false;
	const struct sim_rep *donor = NULL;
	for (uint32_t i = 0; i < s->nrep; i++) {
		const struct sim_rep *d = &s->reps[i];
		if (i != j && d->up && d->paused_until <= s->now &&
		    d->st.next_epoch > r->st.next_epoch &&
		    (!donor || d->st.applied_position > donor->st.applied_position))
			donor = d;
	}
	if (!donor)
		return false;
	trace(s, "rep %u: state transfer from rep %u: position %llu -> %llu", j + 1,
	      (unsigned)(donor - s->reps) + 1, (unsigned long long)r->st.applied_position,
	      (unsigned long long)donor->st.applied_position);
	rep_state_copy(&r->st, &donor->st);
	for (uint64_t e = 0; e < r->epochs_cap && e < r->st.next_epoch; e++) {
		free(r->epochs[e]);
		r->epochs[e] = NULL;
	}
	r->stuck_since = 0;
	r->transfers++;
	s->res->transfers++;
	if (s->ngroups > 1) {
		/* as replicas/node.c installs a checkpoint: the merge resumes
		 * after its epoch, and a checkpoint holds no group positions */
		rep_merge_forget(&r->mg, r->st.applied_epoch);
		r->st.group_known = 0;
		rep_drain_merged(s, j);
	} else {
		rep_drain(s, j);
	}
	return true;
}

/* Several groups: NACKs per group as replicas/node.c maybe_nack_group: a
 * gap (rep_merge_gap) that lasts SIM_NACK_DELAY is asked for, first from
 * the member that streamed to the replica, then from every member of the
 * group in turn, backing off (twice as long each time, at most
 * SIM_NACK_BACKOFF_MAX) while the same epoch stays missing.
 *
 * The simulator found the node's first rules too weak with several groups
 * (a quarter of two-group seeds failed liveness): a NACK asked for 16
 * epochs, fewer than the groups commit while it waits, and for epochs past
 * what the merge can hold. Now rep_merge_gap stops at the merged epoch plus
 * the merge's slots and the node asks for all of it (NACK_EPOCHS =
 * REASSEMBLY_SLOTS); --node-nack still asks for 16 epochs only, to show
 * the difference. Both aim the turn at members whose heartbeat says they
 * still hold the epoch (retained_from), as the node does. */
#define SIM_NACK_DELAY	     MS(10)
#define SIM_NODE_NACK_EPOCHS 16u /* --node-nack: replicas/node.c NACK_EPOCHS */
#define SIM_NACK_BACKOFF_MAX MS(100)
static void rep_nack_group(struct sim *s, uint32_t j, uint32_t g, uint64_t from, uint32_t count)
{
	struct sim_rep *r = &s->reps[j];
	struct sim_repair *p = &r->repair[g];
	if (p->gap_epoch != from) {
		p->gap_epoch = from;
		p->nack_due = s->now + SIM_NACK_DELAY;
		p->backoff = SIM_NACK_DELAY;
		p->round = 0;
		return;
	}
	if (s->now < p->nack_due)
		return;
	p->backoff = 2 * p->backoff < SIM_NACK_BACKOFF_MAX ? 2 * p->backoff : SIM_NACK_BACKOFF_MAX;
	p->nack_due = s->now + p->backoff;
	const struct sim_group *grp = &s->groups[g];
	/* as maybe_nack_group: the source first, then in turn the members that
	 * may hold the epoch (retained_from not past it), if any */
	uint32_t holders = 0;
	for (uint32_t i = 0; i < grp->nseq; i++)
		holders += r->retained_from[seq_ep(g, i)] <= from;
	uint32_t to = p->source;
	if (p->round > 0 || p->source == UINT32_MAX) {
		bool aim = holders > 0;
		uint32_t k = (p->round + grp->nseq - 1) % (aim ? holders : grp->nseq);
		for (uint32_t i = 0; i < grp->nseq; i++) {
			uint32_t ep = seq_ep(g, i);
			if (aim && r->retained_from[ep] > from)
				continue;
			if (k-- == 0) {
				to = ep;
				break;
			}
		}
	}
	p->round++;
	struct sim_msg m = {.from = (uint8_t)(s->rep0 + j),
			    .to = (uint8_t)to,
			    .kind = K_NACK,
			    .a = from,
			    .b = count,
			    .group = (uint8_t)g};
	trace(s, "rep %u: NACK group %u epochs %llu +%u to %u", j + 1, g, (unsigned long long)from,
	      count, to);
	net_send(s, &m);
}

static void rep_tick_merged(struct sim *s, uint32_t j)
{
	struct sim_rep *r = &s->reps[j];
	uint64_t from[SIM_GROUPS_MAX];
	uint32_t count[SIM_GROUPS_MAX];
	bool gap[SIM_GROUPS_MAX], any = false;
	for (uint32_t g = 0; g < s->ngroups; g++) {
		/* as maybe_nack_group: a group not merged yet is not asked; one
		 * joining later is asked from its join epoch */
		uint64_t first = rep_state_group_from(&r->st, g);
		uint64_t after =
		    first == 0 || first <= r->st.applied_epoch ? r->st.applied_epoch : first - 1;
		gap[g] = r->repair[g].source != UINT32_MAX && first != UINT64_MAX &&
			 rep_merge_gap(&r->mg, g, after,
				       s->o.node_nack ? SIM_NODE_NACK_EPOCHS : UINT32_MAX, &from[g],
				       &count[g]);
		if (!gap[g])
			r->repair[g].gap_epoch = 0;
		any |= gap[g];
	}
	if (!any) {
		r->stuck_since = 0;
		return;
	}
	if (rep_transfer(s, j))
		return;
	for (uint32_t g = 0; g < s->ngroups; g++)
		if (gap[g])
			rep_nack_group(s, j, g, from[g], count[g]);
}

static void rep_tick(struct sim *s, uint32_t j)
{
	struct sim_rep *r = &s->reps[j];
	if (s->ngroups > 1) {
		rep_tick_merged(s, j);
		return;
	}
	bool gap = r->known_committed >= r->st.next_epoch;
	if (!gap) {
		r->stuck_since = 0;
		return;
	}
	if (rep_transfer(s, j))
		return;
	if (s->now < r->nack_due)
		return;
	r->nack_due = s->now + MS(20);
	uint64_t want = r->known_committed - r->st.next_epoch + 1;
	/* the member it hears from first, then any other in turn (repair does
	 * not depend on the leader) */
	uint32_t to = r->nacks++ % 2 == 0 ? r->source : (uint32_t)below(s, s->groups[0].nseq);
	struct sim_msg m = {.from = (uint8_t)(s->rep0 + j),
			    .to = (uint8_t)to,
			    .kind = K_NACK,
			    .a = r->st.next_epoch,
			    .b = want < 16 ? want : 16};
	net_send(s, &m);
}

/* ------------------------------------------------------------ clients */

/* Request o of client k, to the sequencer at endpoint to. */
static struct sim_msg cli_submit(struct sim *s, uint32_t k, const struct sim_out *o, uint32_t to)
{
	struct sim_cli *c = &s->clis[k];
	struct sim_msg m = {.from = (uint8_t)(s->cli0 + k), .to = (uint8_t)to, .kind = K_SUBMIT};
	m.req = (struct wire_req){.client_id = c->client_id,
				  .request_number = o->number,
				  .session = o->number == 1 ? 0 : c->session,
				  .op = o->op,
				  .size = o->size};
	memcpy(m.payload, o->payload, o->size);
	return m;
}

static void cli_send(struct sim *s, uint32_t k, struct sim_out *o)
{
	struct sim_cli *c = &s->clis[k];
	struct sim_msg m = cli_submit(s, k, o, seq_ep(c->group, c->target));
	o->sent_at = s->now;
	o->retry_at = s->now + MS(range(s, 30, 120));
	net_send(s, &m);
}

/* Several groups: the client's latest request, sent to a member of a group
 * that does not hold its session (libordo never does; a misrouted or
 * replayed datagram does). That group must answer SESSION_UNKNOWN (or
 * NOT_LEADER, OVERLOADED) and never order it (cli_probe_answer,
 * check_home). */
static void cli_probe(struct sim *s, uint32_t k)
{
	struct sim_cli *c = &s->clis[k];
	uint64_t number = c->next - 1;
	const struct sim_out *o = &c->outs[number % c->window];
	if (number < 2 || o->number != number)
		return;
	uint32_t g = (c->group + 1 + (uint32_t)below(s, s->ngroups - 1)) % s->ngroups;
	struct sim_msg m = cli_submit(s, k, o, seq_ep(g, (uint32_t)below(s, s->groups[g].nseq)));
	net_send(s, &m);
	s->res->probes++;
}

static void cli_probe_answer(struct sim *s, uint32_t k, const struct sim_msg *m)
{
	uint32_t g = m->from / SIM_SEQ_STRIDE;
	switch (m->status) {
	case WIRE_ST_SESSION_UNKNOWN:
		s->res->unknowns++;
		break;
	case WIRE_ST_NOT_LEADER:
	case WIRE_ST_OVERLOADED: /* a leader not ready yet */
		break;
	default:
		sim_fail(s, "session's group",
			 "group %u answered status %u to request %llu/%llu of client %u, whose "
			 "session group %u holds",
			 g, m->status, (unsigned long long)m->req.client_id,
			 (unsigned long long)m->req.request_number, k + 1,
			 sim_home_group(s, m->req.client_id));
		break;
	}
}

static void cli_new(struct sim *s, uint32_t k, uint64_t number)
{
	struct sim_cli *c = &s->clis[k];
	struct sim_out *o = &c->outs[number % c->window];
	memset(o, 0, sizeof *o);
	o->number = number;
	o->first_at = s->now;
	if (number > 1) {
		uint64_t kind = below(s, 10);
		if (kind < 2) {
			o->op = WIRE_OP_CREATE_ACCOUNT;
			o->size = 16;
			ordo_st64(o->payload, 1 + below(s, SIM_ACCOUNTS));
		} else if (kind < 7) {
			o->op = WIRE_OP_TRANSFER;
			o->size = 32;
			ordo_st64(o->payload, ordo_prng_next(&s->rng) | 1);
			ordo_st64(o->payload + 8, 1 + below(s, SIM_ACCOUNTS));
			ordo_st64(o->payload + 16, 1 + below(s, SIM_ACCOUNTS));
			ordo_st64(o->payload + 24, 1 + below(s, 1000));
		} else if (kind < 8) {
			o->op = WIRE_OP_LOOKUP;
			o->size = 16;
			ordo_st64(o->payload, 1 + below(s, SIM_ACCOUNTS));
		} else {
			o->op = WIRE_OP_OPAQUE;
			o->size = (uint16_t)below(s, 33);
			for (uint32_t i = 0; i < o->size; i++)
				o->payload[i] = (uint8_t)ordo_prng_next(&s->rng);
		}
	}
	cli_send(s, k, o);
}

/* A lost session (evicted): a new identity, a new session. */
static void cli_reopen(struct sim *s, uint32_t k)
{
	struct sim_cli *c = &s->clis[k];
	c->client_id += SIM_CLI_MAX;
	c->session = 0;
	memset(c->outs, 0, sizeof c->outs);
	c->next = 2;
	c->low = 1;
	c->opened++;
	cli_new(s, k, 1);
}

static void cli_tick(struct sim *s, uint32_t k)
{
	struct sim_cli *c = &s->clis[k];
	if (s->now < c->pause_until)
		return;
	for (uint32_t i = 0; i < c->window; i++) {
		struct sim_out *o = &c->outs[i];
		if (o->number && !o->answered && s->now >= o->retry_at) {
			if (s->now - o->sent_at >= MS(100)) /* silence: the next node, as libordo */
				c->target = (c->target + 1) % s->groups[c->group].nseq;
			cli_send(s, k, o);
		}
	}
	if (s->ngroups > 1 && c->session && chance(s, s->probe_ppm))
		cli_probe(s, k);
	if (c->session && !s->healing && chance(s, s->restart_ppm)) {
		cli_reopen(s, k); /* the client restarts: a new client_id */
		return;
	}
	if (c->session == 0 || s->now < c->next_new || s->step + SIM_QUIET_STEPS >= s->steps_total)
		return; /* the last steps are quiet: the replicas must catch up */
	if (c->next - c->low < c->window) {
		cli_new(s, k, c->next++);
		c->next_new = s->now + STEP_NS * c->rate_gap;
	}
}

static void cli_deliver(struct sim *s, uint32_t k, const struct sim_msg *m)
{
	struct sim_cli *c = &s->clis[k];
	if (m->from / SIM_SEQ_STRIDE != c->group) {
		cli_probe_answer(s, k, m); /* from a group without its session */
		return;
	}
	if (m->req.client_id != c->client_id)
		return; /* for an identity this client gave up */
	struct sim_out *o = &c->outs[m->req.request_number % c->window];
	if (o->number != m->req.request_number || o->answered)
		return;
	c->last_status = m->status;
	c->last_heard = s->now;
	switch (m->status) {
	case WIRE_ST_OK:
	case WIRE_ST_DUPLICATE:
		check_answer(s, k, sim_key(c->client_id, o->number), &m->place);
		if (o->number == 1)
			c->session = m->place.group_position;
		/* fall through */
	case WIRE_ST_STALE:
		o->answered = true;
		c->answered++;
		while (c->low < c->next && c->outs[c->low % c->window].number == c->low &&
		       c->outs[c->low % c->window].answered)
			c->low++;
		if (c->session && c->low == 1)
			c->low = 2;
		break;
	case WIRE_ST_NOT_LEADER:
		c->target = m->leader ? m->leader - 1 : (c->target + 1) % s->groups[c->group].nseq;
		o->retry_at = s->now + MS(range(s, 1, 5));
		break;
	case WIRE_ST_OVERLOADED:
		o->retry_at = s->now + MS(range(s, 5, 30));
		break;
	case WIRE_ST_SESSION_UNKNOWN:
		cli_reopen(s, k);
		break;
	default:
		sim_fail(s, "client answer", "client %u got status %u for request %llu", k + 1,
			 m->status, (unsigned long long)o->number);
		break;
	}
}

/* ------------------------------------------------------------ faults */

static void heal_network(struct sim *s)
{
	memset(s->cut, 0, sizeof s->cut);
	s->ncut_order = 0;
}

static void cut_pair(struct sim *s, uint32_t a, uint32_t b)
{
	s->cut[a][b] = s->cut[b][a] = true;
}

/* Puts every endpoint on side 0 or 1 of a split of group gi's sequencers
 * (side_of_seq and bridge by index in the group). */
static void split(struct sim *s, uint32_t gi, const uint8_t *side_of_seq, uint32_t bridge)
{
	uint32_t n = s->groups[gi].nseq;
	heal_network(s);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = 0; b < n; b++)
			if (side_of_seq[a] != side_of_seq[b] && a != bridge && b != bridge)
				s->cut[seq_ep(gi, a)][seq_ep(gi, b)] = true;
	for (uint32_t e = s->rep0; e < s->neps; e++) {
		uint8_t side = (uint8_t)below(s, 2);
		for (uint32_t a = 0; a < n; a++)
			if (side_of_seq[a] != side && a != bridge)
				cut_pair(s, e, seq_ep(gi, a));
	}
}

/* The leader of the highest term of group gi (index in the group), or
 * UINT32_MAX. */
static uint32_t current_leader(struct sim *s, uint32_t gi)
{
	const struct sim_group *g = &s->groups[gi];
	uint64_t best = 0;
	uint32_t who = UINT32_MAX;
	for (uint32_t i = 0; i < g->nseq; i++) {
		const struct sim_seq *n = &s->seqs[g->first + i];
		if (n->up && n->m.role == RAFT_LEADER && n->m.term >= best) {
			best = n->m.term;
			who = i;
		}
	}
	return who;
}

/* A partition of one group's sequencers (of the only one, with one group:
 * then nothing else is drawn). Nodes in traces by index in the group. */
static void partition(struct sim *s)
{
	uint32_t gi = s->ngroups > 1 ? (uint32_t)below(s, s->ngroups) : 0;
	uint32_t n = s->groups[gi].nseq;
	uint8_t side[SIM_SEQ_MAX] = {0};
	uint32_t kind = (uint32_t)below(s, 7);
	switch (kind) {
	case 0:
		heal_network(s);
		trace(s, "net: healed");
		break;
	case 1: /* symmetric split */
		for (uint32_t i = 0; i < n; i++)
			side[i] = (uint8_t)below(s, 2);
		split(s, gi, side, UINT32_MAX);
		trace(s, "net: group %u: split", gi);
		break;
	case 2: { /* one-way: a link that carries one direction only */
		uint32_t a = (uint32_t)below(s, n), b = (uint32_t)below(s, n);
		if (a != b)
			s->cut[seq_ep(gi, a)][seq_ep(gi, b)] = true;
		trace(s, "net: group %u: one-way cut %u -> %u", gi, a + 1, b + 1);
		break;
	}
	case 3: { /* a bridge node that sees both sides */
		uint32_t bridge = (uint32_t)below(s, n);
		for (uint32_t i = 0; i < n; i++)
			side[i] = (uint8_t)(i % 2);
		split(s, gi, side, bridge);
		trace(s, "net: group %u: bridge %u", gi, bridge + 1);
		break;
	}
	case 4: { /* the leader in a minority */
		uint32_t l = current_leader(s, gi);
		if (l == UINT32_MAX)
			break;
		side[l] = 1;
		if (n == 5)
			side[(l + 1) % n] = 1;
		split(s, gi, side, UINT32_MAX);
		trace(s, "net: group %u: leader %u in a minority", gi, l + 1);
		break;
	}
	case 5: { /* cut every link among sequencers, restore one by one */
		heal_network(s);
		s->ncut_order = 0;
		for (uint32_t a = 0; a < n; a++)
			for (uint32_t b = a + 1; b < n; b++) {
				cut_pair(s, seq_ep(gi, a), seq_ep(gi, b));
				s->cut_order[s->ncut_order++] =
				    seq_ep(gi, a) * SIM_EPS_MAX + seq_ep(gi, b);
			}
		for (uint32_t i = s->ncut_order; i > 1; i--) { /* shuffle */
			uint32_t j = (uint32_t)below(s, i);
			uint64_t t = s->cut_order[i - 1];
			s->cut_order[i - 1] = s->cut_order[j];
			s->cut_order[j] = t;
		}
		s->cut_restore_at = (uint32_t)(s->step + range(s, 20, 200));
		trace(s, "net: group %u: all links cut, restoring one by one", gi);
		break;
	}
	default: { /* cut links one by one in random order */
		uint32_t a = seq_ep(gi, (uint32_t)below(s, n)), b = (uint32_t)below(s, s->neps);
		if (a != b)
			cut_pair(s, a, b);
		break;
	}
	}
}

static void faults(struct sim *s)
{
	if (s->ncut_order && s->step >= s->cut_restore_at) {
		uint64_t p = s->cut_order[--s->ncut_order];
		s->cut[p / SIM_EPS_MAX][p % SIM_EPS_MAX] = false;
		s->cut[p % SIM_EPS_MAX][p / SIM_EPS_MAX] = false;
		s->cut_restore_at = (uint32_t)(s->step + range(s, 20, 200));
	}
	if (chance(s, s->partition_ppm))
		partition(s);
	/* The leader crashes, more often while it has writes in flight (the
	 * moment a wrong commit rule or a lost vote shows). */
	for (uint32_t gi = 0; gi < s->ngroups; gi++) {
		uint32_t l = current_leader(s, gi);
		if (l == UINT32_MAX)
			continue;
		struct sim_seq *n = &s->seqs[s->groups[gi].first + l];
		struct raft_status st;
		raft_get_status(n->raft, &st);
		bool inflight = st.last_index > st.commit;
		if (chance(s, inflight ? 4 * s->leader_crash_ppm : s->leader_crash_ppm))
			seq_stop(s, n, "leader crash");
	}
	for (uint32_t i = 0; i < s->nseqs; i++) {
		struct sim_seq *n = &s->seqs[i];
		if (!n->up || n->paused_until > s->now)
			continue;
		if (n->crash_at && n->crash_at <= s->now) {
			n->crash_at = 0;
			seq_stop(s, n, "young leader crash");
		} else if (chance(s, s->crash_ppm))
			seq_stop(s, n, "crash");
		else if (chance(s, s->pause_ppm)) {
			n->paused_until = s->now + MS(range(s, 100, 1000));
			trace(s, "seq %s: paused", n->name);
		} else if (chance(s, s->clock_ppm)) {
			/* bounded: a step of up to 1 s (60 s in safety-only mode); a
			 * leader whose clock runs ahead holds back evictions
			 * (session_idle_min_ms) for as long as it was ahead */
			uint64_t max_ms = s->o.safety_only ? 60000 : 1000;
			n->wall_offset += (int64_t)MS(range(s, 1, max_ms)) * (below(s, 2) ? 1 : -1);
			trace(s, "seq %s: clock jump", n->name);
		}
	}
	for (uint32_t j = 0; j < s->nrep; j++)
		if (s->reps[j].paused_until <= s->now && chance(s, s->pause_ppm / 2))
			s->reps[j].paused_until = s->now + MS(range(s, 100, 1500));
	for (uint32_t k = 0; k < s->ncli; k++)
		if (chance(s, s->pause_ppm))
			s->clis[k].pause_until = s->now + MS(range(s, 50, 500));
}

static void heal(struct sim *s)
{
	s->healing = true;
	s->heal_at = s->now;
	heal_network(s);
	s->loss_ppm = s->dup_ppm = 0;
	s->delay_min = 1;
	s->delay_max = 3;
	s->link_cap = 0;
	for (uint32_t i = 0; i < s->nseqs; i++) {
		struct sim_seq *n = &s->seqs[i];
		if (!n->dead)
			n->paused_until = s->now; /* restart or resume now */
		n->wall_offset = 0;		  /* NTP steps the clocks back in line */
	}
	for (uint32_t j = 0; j < s->nrep; j++)
		s->reps[j].paused_until = 0;
	for (uint32_t k = 0; k < s->ncli; k++) {
		s->clis[k].pause_until = 0;
		s->live_first_number[k] = s->clis[k].answered;
	}
	trace(s, "heal: faults stop");
}

/* ------------------------------------------------------------ the run */

static void deliver(struct sim *s, struct sim_msg *m)
{
	if (ep_is_seq(s, m->to)) {
		struct sim_seq *n = seq_at(s, m->to);
		if (n && n->up && n->raft)
			seq_deliver(s, n, m);
	} else if (m->to < s->cli0) {
		rep_deliver(s, m->to - s->rep0, m);
	} else {
		cli_deliver(s, m->to - s->cli0, m);
	}
	s->res->msgs++;
}

/* A datagram to a paused or busy endpoint waits in its socket buffer. */
static uint64_t held_until(struct sim *s, const struct sim_msg *m)
{
	if (ep_is_seq(s, m->to)) {
		const struct sim_seq *n = seq_at(s, m->to);
		if (!n || !n->up)
			return 0;
		uint64_t t = n->paused_until > n->busy_until ? n->paused_until : n->busy_until;
		return t > s->now ? t : 0;
	}
	if (m->to < s->cli0) {
		const struct sim_rep *r = &s->reps[m->to - s->rep0];
		return r->paused_until > s->now ? r->paused_until : 0;
	}
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct sim_msg *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void net_step(struct sim *s)
{
	/* Move the due datagrams out (in send order), then deliver them. */
	static struct sim_msg *due;
	static uint32_t due_cap;
	uint32_t ndue = 0, keep = 0;
	for (uint32_t i = 0; i < s->nmsgs; i++) {
		struct sim_msg *m = &s->msgs[i];
		if (m->at <= s->now) {
			uint64_t until = held_until(s, m);
			if (until) {
				m->at = until; /* queued in its socket buffer */
				s->msgs[keep++] = *m;
				continue;
			}
			if (ndue == due_cap) {
				due_cap = due_cap ? 2 * due_cap : 1024;
				due = realloc(due, due_cap * sizeof *due);
				ORDO_ASSERT(due);
			}
			due[ndue++] = *m;
		} else {
			s->msgs[keep++] = *m;
		}
	}
	s->nmsgs = keep;
	qsort(due, ndue, sizeof *due, by_time);
	for (uint32_t i = 0; i < ndue; i++) {
		if (!s->failed)
			deliver(s, &due[i]);
		free(due[i].bytes);
	}
	memset(s->link_sent, 0, sizeof s->link_sent);
}

static void step(struct sim *s)
{
	s->step++;
	s->now += STEP_NS;
	if (!s->healing && s->step >= s->steps_fault)
		heal(s);
	if (!s->healing)
		faults(s);
	for (uint32_t i = 0; i < s->nseqs && !s->failed; i++) {
		struct sim_seq *n = &s->seqs[i];
		if (!n->up && !n->dead && n->paused_until <= s->now) {
			trace(s, "seq %s: restart", n->name);
			seq_start(s, n);
		}
	}
	net_step(s);
	for (uint32_t i = 0; i < s->nseqs && !s->failed; i++) {
		struct sim_seq *n = &s->seqs[i];
		if (!n->up || n->paused_until > s->now || n->busy_until > s->now)
			continue;
		for (int k = 0; n->up && s->now >= n->next_tick && k < 100 && !s->failed; k++) {
			seq_tick(s, n);
			n->next_tick += STEP_NS * TICK_STEPS;
		}
		if (s->now >= n->next_tick)
			n->next_tick = s->now + STEP_NS * TICK_STEPS; /* paused far too long */
		/* Several groups: the leader wakes at the end of every slot, as
		 * sequencer/node.c waits for seq_machine_due_in (once a step: a
		 * slot shorter than a step makes the next entry a run, as a
		 * kernel wait rounded up to whole milliseconds does). */
		if (s->ngroups > 1 && n->up && !s->failed &&
		    seq_machine_due_in(&n->m, s->now, sim_wall(s, n)) == 0) {
			seq_machine_tick(&n->m, s->now, sim_wall(s, n));
			seq_updates(s, n);
		}
	}
	for (uint32_t j = 0; j < s->nrep && !s->failed; j++)
		if (s->reps[j].paused_until <= s->now)
			rep_tick(s, j);
	for (uint32_t k = 0; k < s->ncli && !s->failed; k++)
		cli_tick(s, k);
	if (s->step + SIM_APPLY_BOUND_STEPS == s->steps_total) {
		for (uint32_t i = 0; i < s->nseqs; i++) {
			const struct sim_seq *n = &s->seqs[i];
			struct sim_group *g = &s->groups[n->group];
			if (!n->up)
				continue;
			if (n->m.committed_position > s->committed_cutoff)
				s->committed_cutoff = n->m.committed_position;
			if (n->m.committed_epoch > g->cutoff_epoch)
				g->cutoff_epoch = n->m.committed_epoch;
		}
	}
}

/* Draws the cluster and the fault mix from the seed. */
static void setup(struct sim *s)
{
	/* with one group, exactly the draws of the simulator before groups */
	s->nseqs = 0;
	for (uint32_t gi = 0; gi < s->ngroups; gi++) {
		struct sim_group *g = &s->groups[gi];
		g->nseq = below(s, 3) ? 3 : 5;
		g->first = s->nseqs;
		g->quorum = g->nseq / 2 + 1;
		g->faulty_max = g->nseq - g->quorum;
		s->nseqs += g->nseq;
	}
	s->rep0 = s->ngroups * SIM_SEQ_STRIDE;
	s->cli0 = s->rep0 + SIM_REP_STRIDE;
	s->neps = s->cli0 + SIM_CLI_MAX;
	s->nrep = (uint32_t)range(s, 1, SIM_REP_MAX);
	s->ncli = (uint32_t)range(s, 1, SIM_CLI_MAX);
	uint32_t w = 4u << below(s, 4); /* 4 .. 32 */
	bool evict = below(s, 5) == 0;
	/* Eviction seeds: clients restart now and then (a new client_id), so
	 * the table fills with idle sessions that new ones evict. idle_min
	 * stays above the network's longest delay and the clients' retry time:
	 * a replayed request 1 of an evicted session would open it again
	 * (docs/PROTOCOL.md §4 item 14), which the checkers report. */
	uint32_t sessions_max = s->ncli + (uint32_t)below(s, 3);
	s->restart_ppm = evict ? (uint32_t)range(s, 100, 2000) : 0;
	s->mcfg = (struct seq_machine_cfg){
	    .sessions = {.window = w, .sessions_max = sessions_max, .idle_min_ns = MS(500)},
	    .batcher = {.epoch_us = (uint32_t)(500u << below(s, 4)),
			.epoch_bytes = below(s, 2) ? 4096u : 16384u,
			.inflight = (uint32_t)range(s, 1, 8),
			.group = 0,
			.every_epoch = s->ngroups > 1},
	    .ops = {.ordered = on_ordered, .epoch = on_epoch},
	};
	raft_config_defaults(&s->rcfg);
	s->rcfg.election_ticks = 15;
	s->rcfg.heartbeat_ticks = 3;
	static const uint64_t msg_bytes[] = {1, 4096, 65536}; /* 1: one entry per message */
	s->rcfg.max_msg_bytes = msg_bytes[below(s, 3)];
	s->rcfg.max_inflight_msgs = (uint32_t)(1u << below(s, 6));
	s->rcfg.max_inflight_bytes = 1u << 20;
	s->rcfg.max_unstable_entries = 256;
	s->rcfg.max_entry_bytes = s->mcfg.batcher.epoch_bytes;
	s->rcfg.max_unstable_bytes = 4ull * 8 * 16384 + 65536;
	s->rcfg.max_apply_entries = 64;
	s->rcfg.max_apply_bytes = 1u << 20;
	static const uint64_t snaps[] = {8, 32, 256, 1ull << 40};
	s->snapshot_entries = snaps[below(s, 4)];

	uint32_t f = s->o.safety_only ? 4 : 1;
	s->loss_ppm = (uint32_t)below(s, (s->o.safety_only ? 600000 : 300000) + 1);
	s->dup_ppm = (uint32_t)below(s, 500001);
	s->delay_min = 1;
	s->delay_max = (uint32_t)range(s, 1, 30);
	s->link_cap = below(s, 3) ? 0 : (uint32_t)range(s, 5, 100);
	s->crash_ppm = f * (uint32_t)below(s, 400);
	s->leader_crash_ppm = f * (uint32_t)below(s, 1000);
	s->young_crash_ppm = below(s, 2) ? (uint32_t)below(s, 500000) : 0;
	s->persist_crash_ppm = f * (uint32_t)below(s, 20000);
	s->fsync_err_ppm = f * (uint32_t)below(s, 2000);
	s->pause_ppm = f * (uint32_t)below(s, 300);
	s->clock_ppm = (uint32_t)below(s, 300);
	s->corrupt_ppm = (uint32_t)below(s, 2) * 300000;
	s->partition_ppm = (uint32_t)below(s, 3000);
	s->disk_lat_max = below(s, 2) ? (uint32_t)range(s, 1, 10) : 0;
	s->steps_fault = s->o.steps_fault ? s->o.steps_fault : (uint32_t)range(s, 1500, 4000);
	s->steps_total = s->steps_fault + (s->o.steps_heal ? s->o.steps_heal : 4000);

	char seqs[32];
	if (s->ngroups == 1) {
		snprintf(seqs, sizeof seqs, "%u sequencers", s->nseqs);
	} else {
		/* several groups: EPOCH_DATA fragments of a datagram's size or
		 * whole entries; now and then a request to a group without its
		 * session */
		static const uint32_t frags[] = {1376, 256, 0};
		s->frag_bytes = frags[below(s, 3)];
		if (s->frag_bytes == 0)
			s->frag_bytes = s->mcfg.batcher.epoch_bytes;
		s->probe_ppm = (uint32_t)below(s, 3000);
		/* An entry per slot, empty or not: Raft must carry more than one
		 * entry per message round trip (sequencer/node.c: 64 entries per
		 * message, 32 in flight), or the commit point falls behind the
		 * slots for good (docs/SIMULATION.md). */
		if (s->rcfg.max_msg_bytes < 4096)
			s->rcfg.max_msg_bytes = 4096;
		if (s->rcfg.max_inflight_msgs < 4)
			s->rcfg.max_inflight_msgs = 4;
		/* and the snapshot interval counts entries, one per slot: 16
		 * times as many keeps it to about what one group's seeds take
		 * in time (a follower behind by an interval installs a snapshot
		 * and forgets the epochs it retained for replicas) */
		if (s->snapshot_entries < (1ull << 40))
			s->snapshot_entries *= 16;
		int at = snprintf(seqs, sizeof seqs, "%u groups of", s->ngroups);
		for (uint32_t gi = 0; gi < s->ngroups; gi++)
			at += snprintf(seqs + at, sizeof seqs - (size_t)at, "%s%u", gi ? "+" : " ",
				       s->groups[gi].nseq);
		snprintf(seqs + at, sizeof seqs - (size_t)at, " sequencers");
	}
	snprintf(s->res->shape, sizeof s->res->shape,
		 "%s, %u replicas, %u clients, W=%u sessions_max=%u epoch_us=%u, "
		 "loss %u%% dup %u%%, %u+%u steps",
		 seqs, s->nrep, s->ncli, w, sessions_max, s->mcfg.batcher.epoch_us,
		 s->loss_ppm / 10000, s->dup_ppm / 10000, s->steps_fault,
		 s->steps_total - s->steps_fault);

	for (uint32_t i = 0; i < s->nseqs; i++) {
		struct sim_seq *n = &s->seqs[i];
		n->group = 0;
		while (n->group + 1 < s->ngroups && i >= s->groups[n->group + 1].first)
			n->group++; /* groups hold consecutive ranges of seqs[] */
		const struct sim_group *g = &s->groups[n->group];
		n->id = i - g->first + 1;
		n->ep = seq_ep(n->group, n->id - 1);
		if (s->ngroups == 1)
			snprintf(n->name, sizeof n->name, "%u", n->id);
		else
			snprintf(n->name, sizeof n->name, "%u.%u", n->group, n->id);
		n->sim = s;
		n->snap_buf = malloc(
		    ORDO_SNAPSHOT_BYTES_MAX > (64u << 20) ? (64u << 20) : ORDO_SNAPSHOT_BYTES_MAX);
		ORDO_ASSERT(n->snap_buf);
		/* Bootstrap as seq_raftlog_bootstrap: the voters at index 1, term 1. */
		struct raft_conf conf = {.n = g->nseq};
		for (uint32_t v = 0; v < g->nseq; v++)
			conf.voters[v] = v + 1;
		if (s->ngroups > 1) /* a lasting skew of up to 2 ms either way */
			n->skew_ns = (int64_t)range(s, 0, MS(4)) - (int64_t)MS(2);
		uint8_t buf[RAFT_CONF_BYTES_MAX];
		uint32_t len = raft_conf_encode(&conf, buf);
		struct raft_entry e = {
		    .term = 1, .index = 1, .data = buf, .len = len, .type = RAFT_ENTRY_CONF};
		disk_append(n, &e);
		disk_sync(&n->disk);
		n->disk.term = 1;
		seq_start(s, n);
	}
	struct ledger_cfg lc = {.accounts_max = SIM_LEDGER_ACCT, .transfers_max = SIM_LEDGER_XFER};
	for (uint32_t j = 0; j < s->nrep; j++) {
		struct sim_rep *r = &s->reps[j];
		int rc = rep_state_init(&r->st, &lc);
		ORDO_ASSERT(rc == 0);
		r->up = true;
		if (s->ngroups > 1) {
			rep_state_found(&r->st, s->ngroups); /* every group founds it */
			/* 64 entries per group being reassembled, as replicas/node.c */
			rc = rep_merge_init(&r->mg, s->ngroups, 64, s->mcfg.batcher.epoch_bytes,
					    s->frag_bytes);
			ORDO_ASSERT(rc == 0);
			for (uint32_t g = 0; g < SIM_GROUPS_MAX; g++)
				r->repair[g].source = UINT32_MAX;
		}
	}
	for (uint32_t k = 0; k < s->ncli; k++) {
		struct sim_cli *c = &s->clis[k];
		c->client_id = k + 1;
		c->window = (uint32_t)range(s, 1, w < SIM_CLI_WINDOW ? w : SIM_CLI_WINDOW);
		c->group = k % s->ngroups;
		c->target = (uint32_t)below(s, s->groups[c->group].nseq);
		c->rate_gap = range(s, 0, 5);
		c->next = 2;
		c->low = 1;
		cli_new(s, k, 1);
	}
}

static void teardown(struct sim *s)
{
	for (uint32_t i = 0; i < s->nseqs; i++) {
		struct sim_seq *n = &s->seqs[i];
		if (n->up) {
			raft_free(n->raft);
			seq_machine_free(&n->m);
			seq_epochlog_free(&n->elog);
		}
		release_held(n);
		free(n->hold);
		for (uint32_t r = 0; r < n->disk.n; r++)
			free(n->disk.recs[r].data);
		free(n->disk.recs);
		free(n->disk.snap_data);
		free(n->snap_buf);
	}
	for (uint32_t j = 0; j < s->nrep; j++) {
		struct sim_rep *r = &s->reps[j];
		rep_state_free(&r->st);
		rep_merge_free(&r->mg);
		for (uint64_t e = 0; e < r->epochs_cap; e++)
			free(r->epochs[e]);
		free(r->epochs);
		free(r->epoch_len);
	}
	for (uint32_t i = 0; i < s->nmsgs; i++)
		free(s->msgs[i].bytes);
	free(s->msgs);
	check_free(s);
}

static struct sim *current;

uint32_t sim_groups_of(const struct sim_opts *o)
{
	if (o->groups >= 1 && o->groups <= SIM_GROUPS_MAX)
		return o->groups;
	/* drawn from the seed apart from its stream: 1, 2 or 3 */
	uint64_t x = o->seed * 0x9E3779B97F4A7C15ull;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return 1 + (uint32_t)(x % SIM_GROUPS_MAX);
}

static void on_assert(void)
{
	struct sim *s = current;
	if (!s)
		return;
	fprintf(stderr,
		"sim: FAILED seed=%llu step=%llu: an assertion in the code under test\n"
		"sim: replay: %s --seed %llu%s%s%s%s%s\n",
		(unsigned long long)s->o.seed, (unsigned long long)s->step,
		s->o.argv0 ? s->o.argv0 : "ordo sim", (unsigned long long)s->o.seed,
		s->ngroups == 2	  ? " --groups 2"
		: s->ngroups == 3 ? " --groups 3"
				  : "",
		s->o.node_nack ? " --node-nack" : "", s->o.safety_only ? " --safety-only" : "",
		s->o.plant ? " --plant " : "", s->o.plant ? s->o.plant : "");
}

int sim_run(const struct sim_opts *o, struct sim_result *r)
{
	struct sim *s = calloc(1, sizeof *s);
	ORDO_ASSERT(s);
	memset(r, 0, sizeof *r);
	s->o = *o;
	s->res = r;
	ordo_prng_seed(&s->rng, o->seed);
	s->msgs = malloc(SIM_MSGS_MAX * sizeof *s->msgs);
	ORDO_ASSERT(s->msgs);
	s->ngroups = sim_groups_of(o);
	r->groups = s->ngroups;
	check_init(s);
	current = s;
	ordo_assert_hook = on_assert;
#ifdef ORDO_PLANT_BUGS
	ordo_plant = o->plant ? sim_plant_parse(o->plant) : 0;
#endif
	setup(s);
	while (!s->failed && s->step < s->steps_total)
		step(s);
	check_end(s);
	if (!s->failed)
		r->step = s->step;
	r->ordered = s->order_len;
	r->answered_ok = s->answered_count;
	teardown(s);
	current = NULL;
	ordo_assert_hook = NULL;
	free(s);
	return r->failed ? 1 : 0;
}
