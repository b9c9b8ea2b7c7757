// Load generator for etcd, the peer of ordo's comparison (bench/peers/etcd.sh).
// Each request is one durable, replicated write: a Put of a fresh key with a
// SIZE-byte value to a 3-member etcd cluster. A write is "ordered" when the
// Put returns (etcd answers after a majority fsync'd it to its WAL), the same
// point where ordo answers ORDERED OK.
//
//   node load.js --endpoints h:p,h:p,h:p [--closed --clients C --window W |
//                --rate R] [--duration S] [--warmup S] [--size B] [--cpu-pids P,P]
//
// Closed loop: C clients, each with W puts outstanding. Open loop: R puts/s on
// a fixed schedule; latency counts from each put's intended time (no
// coordinated omission), as ordo bench does. Prints a summary, then one JSON
// object on the last line with the fields of ordo bench's JSON that compare
// (system, config, results.ordered_per_s, latency_ns.ordered, cpu).
'use strict';
const fs = require('fs');
const os = require('os');
const { Etcd3 } = require('etcd3');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return dflt;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

const endpoints = String(arg('endpoints', '127.0.0.1:2379')).split(',');
const closed = arg('closed', false) === true || !arg('rate', null);
const clients = Number(arg('clients', 4));
const window = Number(arg('window', 64));
const rate = Number(arg('rate', 0));
const duration = Number(arg('duration', 8));
const warmup = Number(arg('warmup', 2));
const size = Number(arg('size', 64));
const cpuPids = String(arg('cpu-pids', '')).split(',').filter(Boolean);

const value = Buffer.alloc(size, 0x61);
const nowNs = () => process.hrtime.bigint();
const lat = []; // ns, measured interval only
let ordered = 0, errors = 0, seq = 0;

function cpuSeconds() {
  const hz = 100; // USER_HZ on Linux
  let t = 0;
  for (const pid of cpuPids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      t += (Number(rest[11]) + Number(rest[12])) / hz; // utime + stime
    } catch (e) { /* gone */ }
  }
  return t;
}

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Number(sorted[Math.max(0, i)]);
}

async function main() {
  const etcds = [];
  for (let c = 0; c < clients; c++) etcds.push(new Etcd3({ hosts: endpoints.map((e) => 'http://' + e) }));
  await etcds[0].put('ordo-bench-warm').value('x'); // connect
  const t0 = nowNs();
  const measureFrom = t0 + BigInt(Math.round(warmup * 1e9));
  const end = measureFrom + BigInt(Math.round(duration * 1e9));
  let cpuStart = null;
  const done = (start, intended) => {
    const now = nowNs();
    if (start >= measureFrom && now <= end) { lat.push(now - intended); ordered++; }
  };
  const put = (c, intended) => {
    const key = `ordo-bench/${c}/${seq++}`;
    return etcds[c].put(key).value(value).then(() => done(intended, intended), () => { errors++; });
  };
  const cpuTimer = setTimeout(() => { cpuStart = cpuSeconds(); }, warmup * 1000);
  if (closed) {
    const loops = [];
    for (let c = 0; c < clients; c++)
      for (let w = 0; w < window; w++)
        loops.push((async () => { while (nowNs() < end) await put(c, nowNs()); })());
    await Promise.all(loops);
  } else {
    const gap = 1e9 / rate;
    const inflight = [];
    let k = 0;
    while (true) {
      const intended = t0 + BigInt(Math.round(k * gap));
      if (intended >= end) break;
      const now = nowNs();
      if (intended > now) await new Promise((r) => setTimeout(r, Number(intended - now) / 1e6));
      inflight.push(put(k % clients, intended));
      if (inflight.length > 100000) await inflight.shift();
      k++;
    }
    await Promise.all(inflight);
  }
  clearTimeout(cpuTimer);
  const cpu = cpuStart === null ? 0 : cpuSeconds() - cpuStart;
  lat.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const h = {
    count: lat.length,
    p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), p999: pct(lat, 99.9),
    max: lat.length ? Number(lat[lat.length - 1]) : 0,
  };
  const perS = ordered / duration;
  const ms = (ns) => (ns / 1e6).toFixed(2) + 'ms';
  console.log(`etcd: ${endpoints.length} members, ${closed ? `closed loop, ${clients} clients x window ${window}` : `open loop ${rate}/s`}, ${size}-byte values, ${duration} s after ${warmup} s warm-up`);
  console.log(`throughput: ${perS.toFixed(0)} ordered/s (${ordered}), errors ${errors}`);
  console.log(`ORDERED latency: p50=${ms(h.p50)} p90=${ms(h.p90)} p99=${ms(h.p99)} p99.9=${ms(h.p999)} max=${ms(h.max)}`);
  console.log(`cpu: cluster ${cpuPids.length} processes ${cpu.toFixed(2)} s (${ordered ? (cpu / ordered * 1e6).toFixed(1) : 'n/a'} s per million ordered)`);
  console.log(JSON.stringify({
    tool: 'bench/peers/etcd', schema: 1, system: 'etcd', date: new Date().toISOString(),
    machine: { cores: os.cpus().length, cpu_model: os.cpus()[0].model },
    config: { mode: closed ? 'closed' : 'open', rate: closed ? null : rate, clients, window, duration_s: duration, warmup_s: warmup, size },
    results: { measured_s: duration, ordered, ordered_per_s: perS, errors },
    latency_ns: { ordered: h },
    cpu: { cluster_processes: cpuPids.length, cluster_cpu_s: cpu, cluster_cpu_s_per_million_ordered: ordered ? cpu / ordered * 1e6 : null },
  }));
  for (const e of etcds) e.close();
}

main().catch((e) => { console.error('etcd load: ' + e.message); process.exit(1); });
