#!/usr/bin/env node
// How long /health waits while the heaviest requests this endpoint accepts are processed: no single
// request may hold up the others. The endpoint (dist/cli.js, default store) runs pinned to core 0, this
// client on core 1; the bodies are made before the probes start, so the client's own work does not count.
// usage: taskset -c 1 node bench/stall.mjs [dist/cli.js] [--concurrency 1]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCert } from './cert.mjs';

const args = process.argv.slice(2);
const cli = args[0] && !args[0].startsWith('--') ? args[0] : 'dist/cli.js';
const at = args.indexOf('--concurrency');
const concurrency = at === -1 ? 1 : Number(args[at + 1]);
const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-stall-'));
const { cert, key } = makeCert(work);

const unique = () => `${process.pid}-${Math.random().toString(36).slice(2)}`;
const event = (n, extra) => ({
  type: 'track',
  event: 'Order Completed',
  userId: `u${n}`,
  messageId: unique(),
  ...extra,
});
// Each shape is among the largest of its kind this endpoint accepts (the last one it refuses whole).
const SHAPES = {
  'batch of 2,500': () => [
    '/v1/batch',
    {
      batch: Array.from({ length: 2500 }, (_, n) =>
        event(n, { properties: { a: 1, b: 'two', c: [1, 2, 3] } }),
      ),
    },
  ],
  'array of 4,000': () => [
    '/',
    Array.from({ length: 4000 }, (_, n) => event(n, { properties: { x: 'y'.repeat(10) } })),
  ],
  'event of 28,000 keys': () => [
    '/',
    Object.assign(event(0), Object.fromEntries(Array.from({ length: 28_000 }, (_, i) => [`k${i}`, i]))),
  ],
  '250,000 numbers (refused)': () => ['/', Array.from({ length: 250_000 }, () => 1)],
};

const child = spawn(
  'taskset',
  [
    '-c',
    '0',
    process.execPath,
    ...(process.env.STALL_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    cli,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--api-key',
    'k1',
    '--cert',
    cert,
    '--key',
    key,
    '--out',
    join(work, 'store'),
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
if (process.env.STALL_NODE_FLAGS) child.stdout.on('data', (d) => process.stderr.write(d));
const url = await new Promise((resolve) =>
  child.stdout.on('data', (d) => {
    const m = /listening on (\S+)/.exec(d);
    if (m) resolve(new URL(m[1]));
  }),
);
const base = { host: '127.0.0.1', port: url.port, rejectUnauthorized: false };
const auth = `Basic ${Buffer.from('k1:').toString('base64')}`;

function post(agent, [path, body]) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...base,
        path,
        method: 'POST',
        agent,
        headers: { authorization: auth, 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const probeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
function health() {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ ...base, path: '/health', agent: probeAgent }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - started));
    });
    req.on('error', reject);
    req.end();
  });
}

console.log(
  `/health while the heaviest requests are processed (${cli}, ${concurrency} at a time, 8 requests a shape), ms`,
);
console.log('| request | answers | probes | p50 | max |\n| --- | --- | ---: | ---: | ---: |');
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
await health();
for (const [name, make] of Object.entries(SHAPES)) {
  const bodies = Array.from({ length: 8 }, () => {
    const [path, value] = make();
    return [path, Buffer.from(JSON.stringify(value))];
  });
  const waits = [];
  let probing = true;
  const probes = (async () => {
    while (probing) {
      waits.push(await health());
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const statuses = {};
  for (let i = 0; i < bodies.length; i += concurrency) {
    for (const status of await Promise.all(bodies.slice(i, i + concurrency).map((b) => post(agent, b))))
      statuses[status] = (statuses[status] ?? 0) + 1;
  }
  probing = false;
  await probes;
  waits.sort((a, b) => a - b);
  const answers = Object.entries(statuses)
    .map(([s, n]) => `${n} × ${s}`)
    .join(', ');
  console.log(
    `| ${name} | ${answers} | ${waits.length} | ${waits[waits.length >> 1].toFixed(1)} | ${waits.at(-1).toFixed(1)} |`,
  );
}
child.kill('SIGTERM');
await new Promise((resolve) => child.on('exit', resolve));
rmSync(work, { recursive: true, force: true });
