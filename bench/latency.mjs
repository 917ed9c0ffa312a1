// A client that keeps every request's latency, for reading where a server's tail comes from: which event
// types, which connections, and whether the slowest requests come together in time (a pause of the
// server, its collector or the host) or spread out (its order of serving). Like the bench's wrk: keep-alive
// TLS connections with one request in flight on each, the bench's event mix, each event a fresh messageId.
// It is a Node process, so it takes more of its core than wrk does: compare servers with it, side by side
// and interleaved, not its req/s with wrk's.
//
//   taskset -c 1 node bench/latency.mjs PORT [--seconds 6] [--warmup 3] [--connections 50] [--json FILE]
import { writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { events, headers } from './events.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    json: { type: 'string' },
  },
});
const port = Number(positionals[0]);
const [seconds, warmup, connections] = [values.seconds, values.warmup, values.connections].map(Number);
const TYPES = events.map((e) => e.type);
const head = Object.entries(headers)
  .map(([k, v]) => `${k}: ${v}\r\n`)
  .join('');
const parts = events.map((e) => JSON.stringify({ ...e, messageId: '@@' }).split('@@'));
const tag = `latency-${process.pid}-${Date.now()}`;
let sent = 0;
const request = (type) => {
  const [pre, post] = parts[type];
  const body = `${pre}${tag}-${sent++}${post}`;
  const length = Buffer.byteLength(body);
  return `POST / HTTP/1.1\r\nhost: 127.0.0.1\r\n${head}content-length: ${length}\r\n\r\n${body}`;
};

/** [when answered (ms since start), latency (µs), type, connection] of each request in the window. */
const records = [];
let recording = false;
let stopping = false;
const began = performance.now();

function connection(c) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      port,
      host: '127.0.0.1',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    let type = c % TYPES.length;
    let sentAt = 0;
    let buffered = '';
    const next = () => {
      if (stopping) return socket.end(resolve);
      type = (type + 1) % TYPES.length;
      sentAt = performance.now();
      socket.write(request(type));
    };
    socket.setEncoding('latin1');
    socket.on('secureConnect', next);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffered += chunk;
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const status = buffered.slice(9, 12);
        buffered = buffered.slice(end + 4 + length);
        if (status !== '200') return reject(new Error(`answered ${status}`));
        const now = performance.now();
        if (recording) records.push([now - began, Math.round((now - sentAt) * 1000), type, c]);
        next();
      }
    });
  });
}

const all = Array.from({ length: connections }, (_, c) => connection(c));
setTimeout(() => {
  recording = true;
}, warmup * 1000);
setTimeout(
  () => {
    recording = false;
    stopping = true;
  },
  (warmup + seconds) * 1000,
);
await Promise.all(all);
if (values.json) {
  const origin = performance.timeOrigin + began; // Unix ms: for lining up with a server's own log
  writeFileSync(values.json, JSON.stringify({ seconds, origin, records }));
}

const sorted = (xs) => Float64Array.from(xs).sort();
const at = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const ms = (us) => (us / 1000).toFixed(2);
const latencies = sorted(records.map((r) => r[1]));
const p99 = at(latencies, 99);
console.log(
  `${(records.length / seconds / 1000).toFixed(1)}k req/s; ms at p50/75/90/99/99.9: ${[50, 75, 90, 99, 99.9]
    .map((p) => ms(at(latencies, p)))
    .join(' / ')}`,
);
const byType = TYPES.map((name, t) => {
  const xs = sorted(records.filter((r) => r[2] === t).map((r) => r[1]));
  return `${name} ${ms(at(xs, 50))}/${ms(at(xs, 99))}`;
});
console.log(`by type, p50/p99 ms: ${byType.join(', ')}`);
const perConnection = Array.from({ length: connections }, (_, c) =>
  sorted(records.filter((r) => r[3] === c).map((r) => r[1])),
);
const range = (xs) => `${Math.min(...xs)}–${Math.max(...xs)}`;
const requests = range(perConnection.map((xs) => xs.length));
const p50s = range(perConnection.map((xs) => ms(at(xs, 50))));
const p99s = range(perConnection.map((xs) => ms(at(xs, 99))));
console.log(`by connection: requests ${requests}; p50 ${p50s} ms; p99 ${p99s} ms`);
// The slowest 1 %: spread over the run, or bunched into a few 10 ms windows (a pause that held them all)?
const windows = new Map();
for (const [when, latency] of records) {
  if (latency >= p99) windows.set(Math.floor(when / 10), (windows.get(Math.floor(when / 10)) ?? 0) + 1);
}
const slowest = [...windows.values()].sort((a, b) => b - a);
const fullest = slowest.slice(0, 5).join(', ');
const where = `in ${windows.size} of ${seconds * 100} 10 ms windows, the fullest holding ${fullest}`;
console.log(`slowest 1 % (≥ ${ms(p99)} ms): ${where}`);
