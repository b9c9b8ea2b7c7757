// Load generator for ZooKeeper, a peer of ordo's comparison
// (bench/peers/zookeeper.sh), with the pure-JavaScript client
// node-zookeeper-client (pipelined: many requests outstanding per session).
//
// Each request is one ordered, durable, replicated write: a create of a
// PERSISTENT_SEQUENTIAL znode with SIZE bytes of data under one parent
// (/ordo-bench). ZooKeeper gives the znode a name from the parent's counter,
// so the answer names the request's place in one order, as ORDERED does in
// ordo. The create returns once the leader has committed it: a majority of the
// ensemble logged the proposal to its transaction log and fsync'd it
// (forceSync=yes, the default), then the client's server applied it.
//
//   node load.js --endpoints h:p,h:p,h:p [--closed --clients C --window W |
//                --rate R] [--duration S] [--warmup S] [--size B] [--cpu-pids P,P]
//
// Client c has its own session on server c mod 3 (so the 4 clients spread
// over the ensemble; followers forward writes to the leader). The schedule,
// latencies, CPU accounting and the JSON line are bench/peers/lib/loadgen.js's.
'use strict';
const zookeeper = require('node-zookeeper-client');
const { run } = require('../lib/loadgen.js');

const PARENT = '/ordo-bench';

function connect(hostport) {
  return new Promise((resolve, reject) => {
    const client = zookeeper.createClient(hostport, { sessionTimeout: 30000, spinDelay: 100, retries: 3 });
    const timer = setTimeout(() => { client.close(); reject(new Error(`no session with ${hostport} in 20 s`)); }, 20000);
    client.once('connected', () => { clearTimeout(timer); resolve(client); });
    client.connect();
  });
}

function call(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

run({
  system: 'zookeeper',
  tool: 'bench/peers/zookeeper',
  op: 'create PERSISTENT_SEQUENTIAL',
  version: process.env.ZK_VERSION || '',
  describe: (cfg) => `${cfg.endpoints.split(',').length}-member ensemble (forceSync=yes)`,
  async open(cfg) {
    const eps = cfg.endpoints.split(',').filter(Boolean);
    if (!eps.length) throw new Error('--endpoints h:p,... is required');
    const clients = [];
    for (let c = 0; c < cfg.clients; c++) clients.push(await connect(eps[c % eps.length]));
    try {
      await call((cb) => clients[0].create(PARENT, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT, cb));
    } catch (e) {
      if (e.getCode === undefined || e.getCode() !== zookeeper.Exception.NODE_EXISTS) throw e;
    }
    const data = Buffer.alloc(cfg.size, 0x61);
    let last = '';
    return {
      endpoints: cfg.endpoints,
      issue: (c) => call((cb) => clients[c].create(`${PARENT}/r-`, data, zookeeper.ACL.OPEN_ACL_UNSAFE,
        zookeeper.CreateMode.PERSISTENT_SEQUENTIAL, (err, path) => { if (!err) last = path; cb(err, path); })),
      close: async () => { for (const cl of clients) cl.close(); },
      get extra() { return { last_znode: last }; },
    };
  },
}).catch((e) => { console.error('zookeeper load: ' + (e && e.message ? e.message : e)); process.exit(1); });
