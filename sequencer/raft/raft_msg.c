/*
 * Byte encoding of struct raft_msg for the internal datagrams (types 19-30).
 * The layout is documented in raft.h: a 64-byte little-endian header, then
 * the entries of an AppendEntries or the snapshot of an InstallSnapshot.
 * Decoding checks every length against the bytes present and rejects any
 * malformed input with -EBADMSG; it never reads past `len`.
 *
 * Not here: fragmentation of large snapshots across datagrams (the driver's
 * job), authentication (the datagram layer's MAC).
 */
#include "raft.h"

#include <errno.h>
#include <string.h>

#include "common/le.h"

#define SNAP_FIXED_BYTES 24u /* index, term, n_voters, reserved */

size_t raft_msg_encoded_len(const struct raft_msg *m)
{
	size_t n = RAFT_MSG_HDR_BYTES;
	if (m->type == RAFT_MSG_APP)
		for (uint32_t i = 0; i < m->n_entries; i++)
			n += RAFT_MSG_ENTRY_BYTES + m->entries[i].len;
	if (m->type == RAFT_MSG_SNAP)
		n += SNAP_FIXED_BYTES + 8u * m->snap.conf.n + 8u + m->snap_len;
	return n;
}

long raft_msg_encode(const struct raft_msg *m, void *buf, size_t cap)
{
	size_t need = raft_msg_encoded_len(m);
	if (need > cap)
		return -EMSGSIZE;
	uint8_t *b = buf;
	uint32_t n_entries = m->type == RAFT_MSG_APP ? m->n_entries : 0;
	b[0] = m->type;
	b[1] = (uint8_t)((m->reject ? 1u : 0u) | (m->force ? 2u : 0u));
	ordo_st16(b + 2, 0);
	ordo_st32(b + 4, n_entries);
	ordo_st64(b + 8, m->from);
	ordo_st64(b + 16, m->to);
	ordo_st64(b + 24, m->term);
	ordo_st64(b + 32, m->log_term);
	ordo_st64(b + 40, m->index);
	ordo_st64(b + 48, m->commit);
	ordo_st64(b + 56, m->reject_hint);
	size_t o = RAFT_MSG_HDR_BYTES;
	for (uint32_t i = 0; i < n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		ordo_st64(b + o, e->term);
		ordo_st32(b + o + 8, e->len);
		b[o + 12] = e->type;
		b[o + 13] = b[o + 14] = b[o + 15] = 0;
		o += RAFT_MSG_ENTRY_BYTES;
		if (e->len)
			memcpy(b + o, e->data, e->len);
		o += e->len;
	}
	if (m->type == RAFT_MSG_SNAP) {
		ORDO_ASSERT(m->snap.conf.n <= RAFT_VOTERS_MAX);
		ordo_st64(b + o, m->snap.index);
		ordo_st64(b + o + 8, m->snap.term);
		ordo_st32(b + o + 16, m->snap.conf.n);
		ordo_st32(b + o + 20, 0);
		o += SNAP_FIXED_BYTES;
		for (uint32_t i = 0; i < m->snap.conf.n; i++, o += 8)
			ordo_st64(b + o, m->snap.conf.voters[i]);
		ordo_st64(b + o, m->snap_len);
		o += 8;
		if (m->snap_len)
			memcpy(b + o, m->snap_data, m->snap_len);
		o += m->snap_len;
	}
	ORDO_ASSERT(o == need);
	return (long)o;
}

int raft_msg_decode(const void *buf, size_t len, struct raft_msg *m, struct raft_entry *ents,
		    uint32_t ents_cap)
{
	const uint8_t *b = buf;
	memset(m, 0, sizeof(*m));
	if (!buf || len < RAFT_MSG_HDR_BYTES)
		return -EBADMSG;
	m->type = b[0];
	if (m->type < RAFT_MSG_TYPE_MIN || m->type > RAFT_MSG_TYPE_MAX)
		return -EBADMSG;
	if ((b[1] & ~3u) != 0 || ordo_ld16(b + 2) != 0)
		return -EBADMSG;
	m->reject = b[1] & 1u;
	m->force = (b[1] & 2u) != 0;
	uint32_t n = ordo_ld32(b + 4);
	m->from = ordo_ld64(b + 8);
	m->to = ordo_ld64(b + 16);
	m->term = ordo_ld64(b + 24);
	m->log_term = ordo_ld64(b + 32);
	m->index = ordo_ld64(b + 40);
	m->commit = ordo_ld64(b + 48);
	m->reject_hint = ordo_ld64(b + 56);
	size_t o = RAFT_MSG_HDR_BYTES;
	if (n > 0 && m->type != RAFT_MSG_APP)
		return -EBADMSG;
	if (n > ents_cap || (n > 0 && !ents))
		return -EBADMSG;
	if (n > 0 && m->index > UINT64_MAX - n)
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		if (len - o < RAFT_MSG_ENTRY_BYTES)
			return -EBADMSG;
		struct raft_entry *e = &ents[i];
		e->term = ordo_ld64(b + o);
		e->len = ordo_ld32(b + o + 8);
		e->type = b[o + 12];
		if (b[o + 13] | b[o + 14] | b[o + 15])
			return -EBADMSG;
		if (e->type > RAFT_ENTRY_CONF)
			return -EBADMSG;
		o += RAFT_MSG_ENTRY_BYTES;
		if (len - o < e->len)
			return -EBADMSG;
		e->data = b + o;
		e->index = m->index + 1 + i;
		o += e->len;
	}
	m->entries = n ? ents : NULL;
	m->n_entries = n;
	if (m->type == RAFT_MSG_SNAP) {
		if (len - o < SNAP_FIXED_BYTES)
			return -EBADMSG;
		m->snap.index = ordo_ld64(b + o);
		m->snap.term = ordo_ld64(b + o + 8);
		uint32_t nv = ordo_ld32(b + o + 16);
		if (nv > RAFT_VOTERS_MAX || ordo_ld32(b + o + 20) != 0)
			return -EBADMSG;
		o += SNAP_FIXED_BYTES;
		if (len - o < 8u * nv + 8u)
			return -EBADMSG;
		m->snap.conf.n = nv;
		for (uint32_t i = 0; i < nv; i++, o += 8) {
			m->snap.conf.voters[i] = ordo_ld64(b + o);
			if (m->snap.conf.voters[i] == 0 ||
			    (i > 0 && m->snap.conf.voters[i] <= m->snap.conf.voters[i - 1]))
				return -EBADMSG;
		}
		uint64_t dl = ordo_ld64(b + o);
		o += 8;
		if (dl > len - o)
			return -EBADMSG;
		m->snap_data = dl ? b + o : NULL;
		m->snap_len = dl;
		o += dl;
	}
	if (o != len)
		return -EBADMSG;
	return 0;
}
