// The report of bench/compare: reads OUT/results.jsonl (one JSON object a
// line, ordo bench's --json shape, each tagged with "run"), prints the
// comparison table in Markdown and issue 7's targets, and writes the gnuplot
// data and script for the plots (OUT/throughput.dat, OUT/latency.dat,
// OUT/plots.gp). Usage: node bench/peers/report.js OUT
'use strict';
const fs = require('fs');
const path = require('path');

const out = process.argv[2];
if (!out) { console.error('usage: node report.js OUT'); process.exit(2); }
const runs = {};
for (const line of fs.readFileSync(path.join(out, 'results.jsonl'), 'utf8').split('\n'))
  if (line.trim()) { const o = JSON.parse(line); runs[o.run] = o; }

const rows = [
  { key: 'ordo', label: 'ordo, 4 clients x 64', closed: 'ordo-closed', open: 'ordo-open', ordo: true },
  { key: 'ordo-batch', label: 'ordo, 16 clients x 256, --batch 16', closed: 'ordo-batch-closed', open: null, ordo: true },
  { key: 'etcd', label: 'etcd', closed: 'etcd-closed', open: 'etcd-open' },
  { key: 'zookeeper', label: 'ZooKeeper', closed: 'zookeeper-closed', open: 'zookeeper-open' },
  { key: 'nats', label: 'NATS JetStream', closed: 'nats-closed', open: 'nats-open' },
].filter((r) => runs[r.closed] || (r.open && runs[r.open]));
for (const r of rows) {
  const c = runs[r.closed], o = r.open ? runs[r.open] : null;
  r.ops = c ? c.results.ordered_per_s : null;
  r.cpu = c ? c.cpu.cluster_cpu_s_per_million_ordered : null;
  r.seqCpu = c && c.cpu.sequencer_cpu_s_per_million_ordered != null ? c.cpu.sequencer_cpu_s_per_million_ordered : null;
  r.gen = c && c.cpu.bench_cpu_s != null ? c.cpu.bench_cpu_s / c.results.measured_s : null;
  r.lat = o ? o.latency_ns.ordered : null;
  r.rate = o ? o.config.rate : null;
  r.version = c ? (c.peer && c.peer.version) || '' : '';
}

const n = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const msf = (ns) => {
  if (ns == null) return '–';
  const m = ns / 1e6;
  return (m >= 100 ? m.toFixed(0) : m >= 10 ? m.toFixed(1) : m.toFixed(2)) + ' ms';
};
const x = (v) => (v == null || !isFinite(v) ? '–' : (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)) + 'x');
const s1 = (v) => (v == null ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

const ordo = rows.find((r) => r.key === 'ordo');
const rate = (rows.find((r) => r.rate) || {}).rate;
const hdr = ['system', 'closed loop: ordered/s', `open loop ${n(rate)}/s: p50`, 'p99',
  'cluster CPU s per million ordered', 'load generator CPU (cores)',
  'ordo ÷ peer: ordered/s', 'peer ÷ ordo: p99', 'peer ÷ ordo: CPU'];
const lines = ['| ' + hdr.join(' | ') + ' |', '|' + hdr.map((h, i) => (i ? '---:' : '---')).join('|') + '|'];
for (const r of rows) {
  const peer = !r.ordo && ordo;
  lines.push('| ' + [
    r.label, n(r.ops), msf(r.lat && r.lat.p50), msf(r.lat && r.lat.p99), s1(r.cpu),
    r.gen == null ? '–' : r.gen.toFixed(2),
    peer && r.ops ? x(ordo.ops / r.ops) : '',
    peer && r.lat && ordo.lat ? x(r.lat.p99 / ordo.lat.p99) : '',
    peer && r.cpu && ordo.cpu ? x(r.cpu / ordo.cpu) : '',
  ].join(' | ') + ' |');
}
console.log(lines.join('\n'));

// Issue 7's targets, against the best peer on each measure.
const peers = rows.filter((r) => !r.ordo);
const best = (f, pick) => peers.filter((r) => f(r) != null).sort((a, b) => pick(f(a), f(b)))[0];
const bOps = best((r) => r.ops, (a, b) => b - a);
const bP99 = best((r) => r.lat && r.lat.p99, (a, b) => a - b);
const bCpu = best((r) => r.cpu, (a, b) => a - b);
const ordos = rows.filter((r) => r.ordo);
if (peers.length && ordos.length) {
  console.log('\nissue 7 targets, against the best peer on each measure:');
  if (bOps) for (const o of ordos) if (o.ops)
    console.log(`- ordered/s >= 50x the best peer's (${bOps.label}, ${n(bOps.ops)}/s): ${o.label} ${n(o.ops)}/s = ${x(o.ops / bOps.ops)}: ${o.ops >= 50 * bOps.ops ? 'met' : 'not met'}`);
  if (bP99 && ordo && ordo.lat)
    console.log(`- p99 at ${n(rate)}/s <= the best peer's (${bP99.label}, ${msf(bP99.lat.p99)}): ordo ${msf(ordo.lat.p99)}: ${ordo.lat.p99 <= bP99.lat.p99 ? 'met' : 'not met'}`);
  if (bCpu) for (const o of ordos) if (o.cpu)
    console.log(`- CPU per million <= 1/50 of the best peer's (${bCpu.label}, ${s1(bCpu.cpu)} s): ${o.label} ${s1(o.cpu)} s = 1/${(bCpu.cpu / o.cpu).toFixed(1)}: ${o.cpu * 50 <= bCpu.cpu ? 'met' : 'not met'}`);
  // ordo's cluster CPU includes its 3 replicas applying the ledger, which no
  // peer does; its sequencers alone are the like-for-like ordering tier.
  if (bCpu) for (const o of ordos) if (o.seqCpu)
    console.log(`  (${o.label}: its 3 sequencers alone, the ordering tier without the replicas' ledger: ${s1(o.seqCpu)} s = 1/${(bCpu.cpu / o.seqCpu).toFixed(1)} of ${bCpu.label})`);
}

// gnuplot data and script
const q = (s) => '"' + s.replace(/"/g, "'") + '"';
fs.writeFileSync(path.join(out, 'throughput.dat'),
  '# label ordered_per_s (closed loop)\n' + rows.filter((r) => r.ops).map((r) => `${q(r.label)} ${r.ops.toFixed(1)}`).join('\n') + '\n');
fs.writeFileSync(path.join(out, 'latency.dat'),
  `# label p50 p90 p99 p99.9 max (ms, open loop ${rate}/s)\n` + rows.filter((r) => r.lat).map((r) =>
    [q(r.label), ...['p50', 'p90', 'p99', 'p999', 'max'].map((k) => (r.lat[k] / 1e6).toFixed(3))].join(' ')).join('\n') + '\n');
const machine = (runs[rows[0] && rows[0].closed] || runs[rows[0] && rows[0].open] || { machine: {} }).machine;
const where = `${machine.cores} cores, ${machine.cpu_model}`;
const csvs = [['ordo-closed', '4 clients x 64, closed'], ['ordo-batch-closed', '16 clients x 256, --batch 16, closed'],
  ['ordo-open', `4 clients, open loop ${rate}/s`]].filter(([f]) => fs.existsSync(path.join(out, f + '.csv')));
let gp = `# written by bench/peers/report.js; run in this directory: gnuplot plots.gp
set terminal pngcairo size 1000,560 font ",10" noenhanced
set datafile separator whitespace
set style data histograms
set style fill solid 0.8 border -1
set grid ytics
set key top right

set output "throughput.png"
set title "Closed-loop throughput, 3-member clusters, 64-byte payloads, fsync'd or acked on a majority (${where})"
set ylabel "ordered requests/s (log scale)"
set logscale y
set yrange [100:*]
set boxwidth 0.7
set xtics rotate by -15
plot "throughput.dat" using 2:xtic(1) notitle lc rgb "#3366aa", \\
     "" using 0:($2*1.15):(sprintf("%.0f", $2)) with labels notitle

set output "latency.png"
set title "Latency from intended send time, open loop ${rate}/s (${where})"
set ylabel "ms (log scale)"
set yrange [0.1:*]
set style histogram clustered gap 1
set key top left
plot "latency.dat" using 2:xtic(1) title "p50", "" using 3 title "p90", "" using 4 title "p99", \\
     "" using 5 title "p99.9", "" using 6 title "max"
unset logscale y
set yrange [*:*]
set xtics norotate
`;
if (csvs.length) {
  gp += `
set output "ordo-throughput.png"
set terminal pngcairo size 1000,700 font ",10" noenhanced
set datafile separator ","
set style data linespoints
set key below horizontal
unset title
set multiplot layout 2,1 title "ordo bench, per second (warm-up then measured; ${where})"
set ylabel "ordered/s"
set yrange [0:*]
set xlabel ""
plot ${csvs.map(([f, t]) => `"${f}.csv" every ::1 using 1:2 title "${t}"`).join(', ')}
set ylabel "ORDERED p99 (ms)"
set xlabel "seconds since the start of the warm-up"
plot ${csvs.map(([f, t]) => `"${f}.csv" every ::1 using 1:($4/1e6) title "${t}"`).join(', ')}
unset multiplot
`;
}
fs.writeFileSync(path.join(out, 'plots.gp'), gp);
