#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/: a handful of small
valid messages per target, built from the shared PROTOCOL.md and
docs/PROTOCOL.md layouts. Run from anywhere; rewrites the seed files."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = 0x0123456789ABCDEF


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def datagram(mtype, body):
    length = 32 + len(body)
    hdr = struct.pack("<IBBHII", 0x4F44524F, 1, mtype, 0, length, 0)
    hdr += struct.pack("<QII", CLUSTER, 0, 0)
    d = bytearray(hdr + body)
    struct.pack_into("<I", d, 12, crc32c(d))
    return bytes(d)


def submit_rec(cid, n, session, op, payload):
    return struct.pack("<QQQHHI", cid, n, session, op, len(payload), 0) + pad8(payload)


def submit(recs):
    return struct.pack("<II", len(recs), 0) + b"".join(recs)


def ordered(hint, recs):
    body = struct.pack("<II", len(recs), hint)
    for cid, n, st, grp, idx, ep, gp in recs:
        body += struct.pack("<QQHHIQQ", cid, n, st, grp, idx, ep, gp)
    return body


def applied(rid, recs):
    body = struct.pack("<II", len(recs), rid)
    for cid, n, pos, res, data in recs:
        body += struct.pack("<QQQII", cid, n, pos, res, len(data)) + data
    return body


def entries(nonce, first, applied_pos, flags, recs):
    body = struct.pack("<QQQII", nonce, first, applied_pos, len(recs), flags) + bytes(range(16))
    for pos, ep, cid, n, op, res, payload in recs:
        body += struct.pack("<QQQQHHI", pos, ep, cid, n, op, len(payload), res) + pad8(payload)
    return body


def epoch(ep, first, recs, group=0):
    body = b""
    for cid, n, sess, op, key, ip, port, payload in recs:
        body += struct.pack("<QQQHHIIHH", cid, n, sess, op, len(payload), key, ip, port, 0)
        body += pad8(payload)
    total = 48 + len(body)
    hdr = struct.pack("<QQQIIHHIQ", ep, first, 1700000000000000000, len(recs), total, group, 0, 0, 0)
    return hdr + body


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


CID = 0x1122334455667788
lookup = struct.pack("<QQ", 0x2002, 0)
create = struct.pack("<QII", 0x2002, 1, 0)
transfer = struct.pack("<QQQQ", 0x1001, 0x2002, 0x3003, 1000000)

# fuzz_check_submit: mode byte (bit 0 fix checksum) + datagram.
subs = {
    "open": submit([submit_rec(CID, 1, 0, 0, b"")]),
    "transfer": submit([submit_rec(CID, 5, 42, 2, transfer)]),
    "mixed": submit([submit_rec(CID, 2, 9, 0, b"hello"), submit_rec(CID, 3, 9, 3, lookup),
                     submit_rec(CID + 1, 7, 11, 1, create)]),
    "opaque_big": submit([submit_rec(CID, 4, 9, 0, bytes(range(256)) * 4)]),
    "broken": submit([submit_rec(CID, 2, 9, 0, b"abc")])[:-8],
}
for name, body in subs.items():
    write("fuzz_check_submit", name, b"\x00" + datagram(1, body))
write("fuzz_check_submit", "status_q", b"\x00" + datagram(6, struct.pack("<Q", 1) + bytes(88)))
# With AUTH (mode 3: the target rewrites checksum and MAC under key 7).
auth = bytearray(datagram(1, submit([submit_rec(0x0007AABBCCDDEEFF, 1, 0, 0, b"")])) + bytes(16))
struct.pack_into("<HI", auth, 6, 1, len(auth) - 16)
struct.pack_into("<I", auth, 24, 7)
write("fuzz_check_submit", "auth", b"\x03" + bytes(auth))

write("fuzz_ordered", "one", ordered(3, [(CID, 1, 0, 1, 5, 9, 77)]))
write("fuzz_ordered", "two", ordered(0, [(CID, 1, 0, 0, 0, 1, 1), (CID + 1, 7, 2, 0, 0, 0, 0)]))
write("fuzz_ordered", "invalid", ordered(1, [(CID, 3, 4, 0, 0, 0, 0)]))

look = struct.pack("<QQQII", 0x2002, 500, 1500, 1, 0)
write("fuzz_applied", "lookup", applied(4, [(CID, 6, 100, 0, look)]))
write("fuzz_applied", "two", applied(2, [(CID, 2, 10, 0, b""), (CID, 3, 11, 11, b"")]))
write("fuzz_applied", "mixed", applied(1, [(CID, 2, 10, 3, b""), (CID, 4, 12, 0, look)]))

write("fuzz_entries", "one", entries(8, 10, 12, 0, [(10, 3, CID, 2, 0, 0, b"hello")]))
write("fuzz_entries", "caught_up", entries(9, 13, 12, 2, []))
write("fuzz_entries", "three", entries(1, 1, 3, 0, [(1, 1, CID, 1, 0, 0, b""),
                                                    (2, 1, CID, 2, 2, 0, transfer),
                                                    (3, 2, CID, 3, 3, 11, lookup)]))

write("fuzz_small", "fetch", b"\x00" + struct.pack("<QQII", 8, 10, 1472, 0))
write("fuzz_small", "status_q", b"\x01" + struct.pack("<Q", 8) + bytes(88))
write("fuzz_small", "status", b"\x02" + struct.pack("<QIHHQIIQQ", 8, 2, 4, 0, 0, 0, 256, 1000, 77)
      + bytes(range(16)) + struct.pack("<QQIHHQ", 12345, 7, 1472, 1, 3, 1))
write("fuzz_small", "result_q", b"\x03" + struct.pack("<QQQ", 8, CID, 6) + bytes(48))

ep3 = epoch(12, 300, [(CID, 1, 0, 0, 7, 0x0A000001, 4000, b""),
                      (CID, 2, 55, 0, 0, 0x0A000002, 4001, b"hello"),
                      (CID + 1, 9, 56, 3, 0, 0x7F000001, 4002, lookup)], group=2)
write("fuzz_epoch", "epoch_three", b"\x00" + ep3)
write("fuzz_epoch", "epoch_empty", b"\x00" + epoch(13, 303, []))
frag = ep3[16:80]
write("fuzz_epoch", "data", b"\x01" + struct.pack("<QQIIIHH", 12, 11, len(ep3), 16, len(frag), 2, 0) + frag)
write("fuzz_epoch", "data_odd", b"\x01" + struct.pack("<QQIIIHH", 12, 11, len(ep3), 5, 3, 2, 0) + pad8(ep3[5:8]))
write("fuzz_epoch", "nack", b"\x02" + struct.pack("<QIHH", 1000, 17, 3, 0))
write("fuzz_epoch", "heartbeat", b"\x03" + struct.pack("<QH", 777, 5) + bytes(6))
