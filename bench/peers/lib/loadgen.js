// The measuring half of every peer's load generator (bench/peers/*/load.js):
// the schedule, the latencies, the CPU accounting and the report, so that
// etcd, ZooKeeper and NATS are measured the same way, and the way `ordo bench`
// measures ordo (bench/bench.c):
//
// - closed loop (--closed, the default without --rate): each of --clients
//   clients keeps --window requests outstanding; latency from when the request
//   was issued.
// - open loop (--rate R): R requests/s in total on a schedule fixed in
//   advance (request k is due at t0 + k / R and goes to client k mod C);
//   latency counts from each request's INTENDED send time (no coordinated
//   omission). A client keeps at most --window (default 256, ordo's session
//   window) outstanding; a request due while its client's window is full waits
//   and counts as a late start, still timed from its intended time.
//   Node's timers fire about every millisecond, so a request leaves up to
//   about 1 ms after it was due (send_lag_* in the JSON say how late); that
//   delay is part of its latency, as ordo bench's 100 us slices are of ordo's.
// - Only requests issued (closed) or due (open) in the measured interval, after
//   --warmup, are in the latency figures; throughput is the requests that were
//   answered within the measured interval divided by its length. After it the
//   clients stop sending and wait up to 5 s for what is outstanding.
// - CPU: utime + stime of the cluster's processes (--cpu-pids) from
//   /proc/PID/stat, read at the start and end of the measured interval.
//
// Output: a summary, then one line of JSON with the shape of ordo bench's
// --json object (bench/bench.c; fields with no meaning for a peer are null).
'use strict';
const fs = require('fs');
const os = require('os');
const { performance } = require('perf_hooks');

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected argument ${argv[i]}`);
    const k = argv[i].slice(2);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) a[k] = true;
    else { a[k] = v; i++; }
  }
  return a;
}

function cpuSeconds(pids) {
  const hz = 100; // USER_HZ on Linux
  let t = 0;
  for (const pid of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      t += (Number(rest[11]) + Number(rest[12])) / hz; // utime + stime
    } catch (e) { /* exited */ }
  }
  return t;
}

function cpuModel() {
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
    if (m) return m[1].trim();
  } catch (e) { /* fall through */ }
  return os.cpus()[0] ? os.cpus()[0].model : 'unknown';
}

function summarize(lat) {
  const n = lat.length;
  const s = Float64Array.from(lat).sort();
  const at = (p) => (n ? Math.round(s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]) : 0);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  return {
    count: n, min: n ? Math.round(s[0]) : 0, mean: n ? Math.round(sum / n) : 0,
    p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: n ? Math.round(s[n - 1]) : 0,
  };
}

// spec: { system, tool, op, describe(cfg) -> string, version: string,
//         open(cfg) -> Promise<{ issue(c, k) -> Promise, close() -> Promise,
//                               endpoints: string, extra: object }> }
async function run(spec) {
  const a = parseArgs(process.argv.slice(2));
  const rate = a.rate && a.rate !== true ? Number(a.rate) : 0;
  const cfg = {
    endpoints: String(a.endpoints || ''),
    closed: !(rate > 0),
    rate,
    clients: Number(a.clients || 4),
    window: Number(a.window || (rate > 0 ? 256 : 64)),
    duration: Number(a.duration || 8),
    warmup: Number(a.warmup === undefined ? 2 : a.warmup),
    size: Number(a.size || 64),
    cpuPids: String(a['cpu-pids'] || '').split(',').filter(Boolean),
  };
  if (!(cfg.clients >= 1 && cfg.window >= 1 && cfg.duration > 0 && cfg.warmup >= 0 && cfg.size >= 0))
    throw new Error('bad --clients/--window/--duration/--warmup/--size');

  const conn = await spec.open(cfg);
  const now = () => performance.now() * 1e6; // ns, monotonic
  const lat = [];
  const lags = [];
  let answered = 0, errors = 0, submitted = 0, late = 0, unsent = 0, lagMax = 0, measuredDone = 0;
  const errorKinds = {};
  let t0 = 0, measureFrom = 0, end = 0;
  let cpuA = null, cpuB = null, selfA = null, selfB = null;

  let pending = 0, errorsInWindow = 0;
  const issueOne = (c, k, intended) => {
    const sent = now();
    const inWindow = intended >= measureFrom && intended < end;
    if (inWindow) {
      submitted++;
      const lag = sent - intended;
      if (!cfg.closed) { lags.push(lag); if (lag > lagMax) lagMax = lag; }
    }
    pending++;
    let p;
    try { p = conn.issue(c, k); } catch (e) { p = Promise.reject(e); }
    return p.then(() => {
      pending--;
      const t = now();
      if (t >= measureFrom && t <= end) answered++;
      if (inWindow) { lat.push(t - intended); measuredDone++; }
    }, (e) => {
      pending--;
      errors++;
      if (inWindow) errorsInWindow++;
      const kind = String((e && (e.code || e.name)) || 'error');
      errorKinds[kind] = (errorKinds[kind] || 0) + 1;
      if (errors <= 3) console.error(`${spec.system} load: ${e && e.message ? e.message : e}`);
    });
  };

  t0 = now();
  measureFrom = t0 + cfg.warmup * 1e9;
  end = measureFrom + cfg.duration * 1e9;
  const tA = setTimeout(() => { cpuA = cpuSeconds(cfg.cpuPids); selfA = process.cpuUsage(); }, cfg.warmup * 1000);
  const tB = setTimeout(() => { cpuB = cpuSeconds(cfg.cpuPids); selfB = process.cpuUsage(); }, (cfg.warmup + cfg.duration) * 1000);

  let k = 0;
  const backlog = Array.from({ length: cfg.clients }, () => []);
  if (cfg.closed) {
    // Each slot of each client's window issues its next request as soon as
    // the previous one is answered, until the end of the measured interval.
    for (let c = 0; c < cfg.clients; c++)
      for (let w = 0; w < cfg.window; w++) {
        const slot = () => { if (now() < end) issueOne(c, k++, now()).then(slot); };
        slot();
      }
    await new Promise((r) => setTimeout(r, Math.max(0, (end - now()) / 1e6)));
  } else {
    const gap = 1e9 / cfg.rate;
    const inflight = new Array(cfg.clients).fill(0);
    const send = (c, kk, intended) => {
      inflight[c]++;
      issueOne(c, kk, intended).then(() => {
        inflight[c]--;
        const next = backlog[c].shift();
        if (next) send(c, next[0], next[1]);
      });
    };
    await new Promise((resolve) => {
      const tick = () => {
        const t = now();
        for (;;) {
          const intended = t0 + k * gap;
          if (intended >= end) { resolve(); return; }
          if (intended > t) break;
          const c = k % cfg.clients;
          if (inflight[c] < cfg.window) send(c, k, intended);
          else { backlog[c].push([k, intended]); if (intended >= measureFrom) late++; }
          k++;
        }
        setTimeout(tick, Math.max(0, (t0 + k * gap - now()) / 1e6));
      };
      tick();
    });
  }
  // Drain: stop sending, wait up to 5 s for what is outstanding.
  const drainEnd = now() + 5e9;
  while ((pending > 0 || backlog.some((b) => b.length)) && now() < drainEnd)
    await new Promise((r) => setTimeout(r, 10));
  for (const b of backlog) { for (const [, intended] of b) if (intended >= measureFrom) unsent++; b.length = 0; }
  clearTimeout(tA); clearTimeout(tB);
  if (cpuA === null) { cpuA = 0; selfA = process.cpuUsage(); }
  if (cpuB === null) { cpuB = cpuSeconds(cfg.cpuPids); selfB = process.cpuUsage(); }
  const unanswered = Math.max(0, submitted - measuredDone - errorsInWindow);
  await Promise.race([conn.close(), new Promise((r) => setTimeout(r, 2000))]);

  const cpu = cpuB - cpuA;
  const self = (selfB.user - selfA.user + selfB.system - selfA.system) / 1e6;
  const h = summarize(lat);
  const lagS = summarize(lags);
  const perS = answered / cfg.duration;
  const ms = (ns) => (ns / 1e6).toFixed(2) + 'ms';
  console.log(`${spec.system} ${spec.version}: ${spec.describe(cfg)}; ${cfg.closed ? `closed loop, ${cfg.clients} clients x window ${cfg.window}` : `open loop ${cfg.rate}/s over ${cfg.clients} clients`}, ${cfg.size}-byte payloads, ${cfg.duration} s after ${cfg.warmup} s warm-up`);
  console.log(`throughput: ${perS.toFixed(0)} ordered/s (${answered} in ${cfg.duration} s), errors ${errors}, unanswered ${unanswered}${cfg.closed ? '' : `, late starts ${late}, send lag p50 ${ms(lagS.p50)} max ${ms(lagS.max)}`}`);
  console.log(`ORDERED latency: p50=${ms(h.p50)} p90=${ms(h.p90)} p99=${ms(h.p99)} p99.9=${ms(h.p999)} max=${ms(h.max)} (${h.count} requests)`);
  console.log(`cpu: cluster ${cfg.cpuPids.length} processes ${cpu.toFixed(2)} s (${answered ? (cpu / answered * 1e6).toFixed(1) : 'n/a'} s per million ordered); load generator ${self.toFixed(2)} s`);
  console.log(JSON.stringify({
    tool: spec.tool, schema: 1, system: spec.system, date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: { cores: os.cpus().length, cpu_model: cpuModel() },
    config: {
      cluster: conn.endpoints, transport: 'tcp', clients: cfg.clients, mode: cfg.closed ? 'closed' : 'open',
      rate: cfg.closed ? null : cfg.rate, arrival: cfg.closed ? null : 'fixed', window: cfg.window, batch: 1,
      batch_delay_us: 0, duration_s: cfg.duration, warmup_s: cfg.warmup, op: spec.op, size: cfg.size,
      mix: null, accounts: null, zipf: null, seed: null, key: null,
    },
    results: {
      measured_s: cfg.duration, ordered: answered, ordered_per_s: perS, applied: null, applied_per_s: null,
      submitted, late_starts: late, unsent, lag_max_ns: Math.round(lagMax), unanswered,
      status: { ok: measuredDone, errors: errorsInWindow, ...(Object.keys(errorKinds).length ? { error_kinds: errorKinds } : {}) },
      apply_results: {}, retries: null, drops: null, events_lost: null, session_reopens: null,
    },
    latency_ns: { ordered: h, applied: null },
    send_lag_ns: cfg.closed ? null : lagS,
    cpu: {
      cluster_processes: cfg.cpuPids.length, cluster_cpu_s: Number(cpu.toFixed(3)),
      cluster_cpu_s_per_million_ordered: answered && cfg.cpuPids.length ? Number((cpu / answered * 1e6).toFixed(3)) : null,
      bench_cpu_s: Number(self.toFixed(3)),
    },
    peer: { version: spec.version, ...(conn.extra || {}) },
  }));
}

module.exports = { run, parseArgs };
