// Load generator for etcd, a peer of ordo's comparison (bench/peers/etcd.sh),
// with the npm etcd3 client (gRPC; many requests outstanding per client).
//
// Each request is one durable, replicated write: a Put of a fresh key with a
// SIZE-byte value to a 3-member etcd cluster. A write is "ordered" when the
// Put returns: etcd answers after a majority fsync'd it to its WAL and the
// leader applied it, and the answer's revision is the write's place in one
// order, as ORDERED names a place in ordo.
//
//   node load.js --endpoints h:p,h:p,h:p [--closed --clients C --window W |
//                --rate R] [--duration S] [--warmup S] [--size B] [--cpu-pids P,P]
//
// Each client is its own Etcd3 instance (own gRPC channel) over all members
// (followers forward writes to the leader). The schedule, latencies, CPU
// accounting and the JSON line are bench/peers/lib/loadgen.js's.
'use strict';
const { Etcd3 } = require('etcd3');
const { run } = require('../lib/loadgen.js');

run({
  system: 'etcd',
  tool: 'bench/peers/etcd',
  op: 'put (new key)',
  version: process.env.ETCD_VERSION || '',
  describe: (cfg) => `${cfg.endpoints.split(',').length}-member cluster (WAL fsync on)`,
  async open(cfg) {
    const eps = cfg.endpoints.split(',').filter(Boolean);
    if (!eps.length) throw new Error('--endpoints h:p,... is required');
    const etcds = [];
    for (let c = 0; c < cfg.clients; c++) etcds.push(new Etcd3({ hosts: eps.map((e) => 'http://' + e) }));
    for (const e of etcds) await e.put('ordo-bench-warm').value('x'); // connect every channel
    const value = Buffer.alloc(cfg.size, 0x61);
    const tag = Date.now().toString(36);
    let rev = '0';
    return {
      endpoints: cfg.endpoints,
      issue: (c, k) => etcds[c].put(`ordo-bench/${tag}/${c}/${k}`).value(value).exec()
        .then((r) => { if (r && r.header) rev = r.header.revision; }),
      close: async () => { for (const e of etcds) e.close(); },
      get extra() { return { last_revision: rev }; },
    };
  },
}).catch((e) => { console.error('etcd load: ' + (e && e.message ? e.message : e)); process.exit(1); });
