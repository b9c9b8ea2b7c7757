/*
 * libFuzzer target: dataplane/bulk.c (docs/PROTOCOL.md §1.4). Input byte 0
 * picks: one BULK_FRAG body for dp_bulk_recv, one BULK_NACK body for
 * dp_bulk_recv_nack, or a script of steps on one instance, each
 * {u8 kind, u8 dt_ms, u16 len, len bytes}: kind 0 a FRAG, 1 a NACK, 2 a tick
 * after dt_ms (so slots fill, NACK, give up and reset across steps).
 * Each run starts from a fresh instance that has sent three messages (seqs
 * 1-3 of 0, 100 and 5000 bytes) so NACKs can name stored fragments.
 * Checked: nothing crashes or leaks, every emitted body is a multiple of 8
 * within the datagram, every delivered message fits msg_max_bytes, no seq is
 * delivered twice within one incarnation of the peer, and every call's
 * outcome is one of the documented return values.
 */
#include "fuzz_util.h"

#include "dataplane/bulk.h"

#define FUZZ_INC     7u
#define FUZZ_MSG_MAX 32768u
#define SEEN_MAX     4096u

static uint8_t seen[SEEN_MAX]; /* deliveries per seq in the current incarnation */
static uint64_t resets_seen;
static struct dp_bulk *cur;

static void emit_cb(void *ctx, uint32_t peer, uint8_t type, const uint8_t *body, uint32_t len)
{
	(void)ctx;
	ORDO_ASSERT(peer == 0);
	ORDO_ASSERT(type == DP_BULK_TYPE_FRAG || type == DP_BULK_TYPE_NACK);
	ORDO_ASSERT(len % 8 == 0 && len <= dp_bulk_body_max(ORDO_DATAGRAM_MIN_MAX));
	ORDO_ASSERT(len >= (type == DP_BULK_TYPE_FRAG
				? DP_BULK_FRAG_HEAD_BYTES
				: DP_BULK_NACK_HEAD_BYTES + DP_BULK_NACK_ENTRY_BYTES));
	volatile uint8_t sink = body[len - 1]; /* ASan: the whole body is readable */
	(void)sink;
}

static void deliver_cb(void *ctx, uint32_t peer, uint64_t seq, const uint8_t *msg, uint32_t len)
{
	(void)ctx;
	ORDO_ASSERT(peer == 0 && seq >= 1 && len <= FUZZ_MSG_MAX);
	if (len) {
		volatile uint8_t sink = msg[0] ^ msg[len - 1];
		(void)sink;
	}
	uint64_t resets = dp_bulk_counters(cur, 0)->rx_resets;
	if (resets != resets_seen) {
		memset(seen, 0, sizeof seen);
		resets_seen = resets;
	}
	if (seq < SEEN_MAX) {
		ORDO_ASSERT(seen[seq] == 0);
		seen[seq] = 1;
	}
}

static struct dp_bulk *fresh(void)
{
	struct dp_bulk_cfg c;
	dp_bulk_cfg_default(&c);
	c.max_datagram = ORDO_DATAGRAM_MIN_MAX;
	c.peers = 1;
	c.msg_max_bytes = FUZZ_MSG_MAX;
	c.store_bytes = 64 * 1024;
	c.store_msgs = 16;
	c.reasm_slots = 4;
	c.reasm_bytes = 64 * 1024;
	c.repair_delay_ns = 2ull * 1000 * 1000;
	c.backoff_max_ns = 16ull * 1000 * 1000;
	c.giveup_ns = 50ull * 1000 * 1000;
	c.store_hold_ns = 10ull * 1000 * 1000;
	c.incarnation = FUZZ_INC;
	c.emit = emit_cb;
	struct dp_bulk *b = NULL;
	ORDO_ASSERT(dp_bulk_create(&c, &b) == 0);
	static uint8_t msg[5000];
	static const uint32_t sizes[] = {0, 100, 5000};
	for (uint32_t i = 0; i < 3; i++) {
		uint64_t seq = 0;
		ORDO_ASSERT(dp_bulk_send(b, 0, msg, sizes[i], 1000, &seq) == 0);
		ORDO_ASSERT(seq == i + 1);
	}
	memset(seen, 0, sizeof seen);
	resets_seen = 0;
	return b;
}

static void frag(struct dp_bulk *b, const uint8_t *body, uint32_t len, uint64_t now)
{
	int rc = dp_bulk_recv(b, 0, body, len, now, deliver_cb, NULL);
	ORDO_ASSERT(rc == 0 || rc == -EALREADY || rc == -EBADMSG || rc == -EMSGSIZE ||
		    rc == -ENOBUFS);
	ORDO_ASSERT(dp_bulk_slots_used(b, 0) <= 4);
}

static void nack(struct dp_bulk *b, const uint8_t *body, uint32_t len, uint64_t now)
{
	int rc = dp_bulk_recv_nack(b, 0, body, len, now);
	ORDO_ASSERT(rc == 0 || rc == -EBADMSG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	struct dp_bulk *b = fresh();
	cur = b;
	const uint8_t *p = data + 1;
	uint32_t n = (uint32_t)(size - 1);
	uint64_t now = 2000;
	switch (data[0] % 3) {
	case 0:
		frag(b, p, n, now);
		break;
	case 1:
		nack(b, p, n, now);
		break;
	default:
		/* Steps are bounded by the input length (each takes >= 4 bytes). */
		while (n >= 4) {
			uint8_t kind = p[0];
			now += (uint64_t)p[1] * 1000 * 1000;
			uint32_t len = ordo_ld16(p + 2);
			p += 4;
			n -= 4;
			if (len > n)
				len = n;
			if (kind % 3 == 0)
				frag(b, p, len, now);
			else if (kind % 3 == 1)
				nack(b, p, len, now);
			else
				dp_bulk_tick(b, now);
			p += len;
			n -= len;
		}
		dp_bulk_tick(b, now + 1000ull * 1000 * 1000);
		ORDO_ASSERT(dp_bulk_slots_used(b, 0) == 0);
		break;
	}
	dp_bulk_destroy(b);
	cur = NULL;
	return 0;
}
