// Load generator for NATS JetStream, a peer of ordo's comparison
// (bench/peers/nats.sh), with the npm "nats" client (nats.js v2).
//
// Each request is one JetStream publish with a SIZE-byte payload to a stream
// with 3 replicas (R3) on file storage, awaited for its PubAck: the stream's
// leader answers once the message is stored in the stream's Raft group on a
// majority of the 3 servers, and the ack names the message's sequence in the
// stream, its place in one order, as ORDERED does in ordo. Publishes are
// asynchronous: a client keeps many outstanding (its window).
//
// What "stored" means on disk: JetStream writes each message to its file
// store, but by default does not fsync it before the ack; nats-server syncs
// file-store blocks in the background (every 2 minutes by default; the
// sync_interval option of later versions sets it, 2.9 has no option), and
// relies on replication to a majority for durability. A power loss of a
// majority can lose acknowledged messages. bench/peers/nats.sh has more.
//
//   node load.js --endpoints h:p,h:p,h:p [--closed --clients C --window W |
//                --rate R] [--duration S] [--warmup S] [--size B] [--cpu-pids P,P]
//
// Client c has its own connection to server c mod 3 (messages reach the
// stream leader through the cluster's routes). The schedule, latencies, CPU
// accounting and the JSON line are bench/peers/lib/loadgen.js's.
'use strict';
const { connect, StorageType, RetentionPolicy, DiscardPolicy } = require('nats');
const { run } = require('../lib/loadgen.js');

const STREAM = 'ORDO';
const SUBJECT = 'ordo.bench';

async function ensureStream(nc) {
  const jsm = await nc.jetstreamManager();
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      try {
        return await jsm.streams.info(STREAM);
      } catch (e) {
        if (!/not found/i.test(String(e && e.message))) throw e;
      }
      return await jsm.streams.add({
        name: STREAM, subjects: [SUBJECT], storage: StorageType.File, num_replicas: 3,
        retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old,
      });
    } catch (e) {
      // The meta group may still be electing its leader, or placing the stream.
      if (Date.now() > deadline) throw new Error(`stream ${STREAM} (R3, file) not created in 30 s: ${e.message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

run({
  system: 'nats',
  tool: 'bench/peers/nats',
  op: 'JetStream publish (R3, file)',
  version: process.env.NATS_VERSION || '',
  describe: (cfg) => `${cfg.endpoints.split(',').length}-server JetStream cluster, stream ${STREAM} R3 file storage`,
  async open(cfg) {
    const eps = cfg.endpoints.split(',').filter(Boolean);
    if (!eps.length) throw new Error('--endpoints h:p,... is required');
    const conns = [];
    for (let c = 0; c < cfg.clients; c++)
      conns.push(await connect({ servers: eps[c % eps.length], name: `ordo-bench-${c}`, timeout: 10000, maxPingOut: 10 }));
    const info = await ensureStream(conns[0]);
    const js = conns.map((nc) => nc.jetstream({ timeout: 30000 }));
    // One acked publish before the clock starts, so the stream leader is ready.
    await js[0].publish(SUBJECT, Buffer.alloc(cfg.size, 0x62));
    const data = Buffer.alloc(cfg.size, 0x61);
    let lastSeq = 0;
    return {
      endpoints: cfg.endpoints,
      issue: (c) => js[c].publish(SUBJECT, data).then((ack) => { if (ack.seq > lastSeq) lastSeq = ack.seq; }),
      close: async () => { for (const nc of conns) await nc.close(); },
      get extra() { return { stream: STREAM, replicas: info.config.num_replicas, storage: 'file', last_seq: lastSeq }; },
    };
  },
}).catch((e) => { console.error('nats load: ' + (e && e.message ? e.message : e)); process.exit(1); });
