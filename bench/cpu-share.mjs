#!/usr/bin/env node
// What one customer's costly requests leave another (`--cpu-share`): the endpoint (dist/cli.js, no-op
// handlers) pinned to core 0, this client on core 1. Key `victim` sends small events on 8 connections, as
// fast as it is answered; key `attacker` sends one costly shape on 16, again the moment each answer
// comes (a 429 included: a hostile sender does not wait). Each shape runs with each --cpu-share value in
// turn, a fresh endpoint each run, in interleaved rounds; medians.
// usage: taskset -c 1 node bench/cpu-share.mjs   (CPU_SHARE_VALUES=50,0 CPU_SHARE_ROUNDS=3 CPU_SHARE_SECONDS=5)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeCert } from './cert.mjs';

const env = (name, fallback) => process.env[`CPU_SHARE_${name}`] ?? fallback;
const VALUES = env('VALUES', '50,0').split(',');
const ROUNDS = Number(env('ROUNDS', 3));
const SECONDS = Number(env('SECONDS', 5));
const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-cpu-share-'));
const { cert, key } = makeCert(work);

const gz = (text) => gzipSync(text, { level: 9 });
const json = JSON.stringify;
const event = (i) => ({ type: 'track', event: 'Order Completed', userId: `u${i}` });
/** The attacker's bodies: each a few hundred bytes to a few KB sent, milliseconds of the thread. */
const SHAPES = {
  alone: undefined,
  '510 KB of [{},…], gzip (413)': ['/', gz(`[${'{},'.repeat(170_000)}{}]`)],
  '2,500 {} events, gzip (400)': ['/', gz(json(Array.from({ length: 2_500 }, () => ({}))))],
  '/v1/batch, 2,500 events, 400-key context (413)': [
    '/v1/batch',
    gz(json({ batch: Array.from({ length: 2_500 }, (_, i) => event(i)), context: keys(400) })),
  ],
  'one event of 28,000 keys, gzip (200)': ['/', gz(json(Object.assign(event(0), keys(28_000))))],
};

function keys(n) {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
}

async function start(share) {
  const child = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      'dist/cli.js',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--cert',
      cert,
      '--key',
      key,
      '--handlers',
      'bench/noop-handlers.mjs',
      '--api-key',
      'attacker',
      '--api-key',
      'victim',
      '--cpu-share',
      share,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise((resolve, reject) => {
    const late = setTimeout(
      () => reject(new Error('the endpoint did not say it listened within 10 s')),
      10_000,
    );
    child.once('exit', (code) => reject(new Error(`the endpoint exited (${code}) before it listened`)));
    child.stdout.on('data', (d) => {
      const m = /listening on https:\/\/[^:]+:(\d+)/.exec(d);
      if (m === null) return;
      clearTimeout(late);
      resolve(Number(m[1]));
    });
  });
  return { child, port };
}

function post(port, agent, apiKey, path, body, gzipped) {
  return new Promise((resolve) => {
    const headers = {
      authorization: `Basic ${Buffer.from(`${apiKey}:`).toString('base64')}`,
      'content-type': 'application/json',
      ...(gzipped ? { 'content-encoding': 'gzip' } : {}),
    };
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent, headers, rejectUnauthorized: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function run(share, shape) {
  const { child, port } = await start(share);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const end = performance.now() + SECONDS * 1000;
  const victim = { answers: 0, latencies: [] };
  const attacker = {};
  let n = 0;
  const victimLoop = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      await post(
        port,
        agent,
        'victim',
        '/',
        json({ ...event(n), messageId: `m${process.pid}-${n++}` }),
        false,
      );
      victim.answers++;
      victim.latencies.push(performance.now() - started);
    }
  };
  const attackerLoop = async ([path, body]) => {
    while (performance.now() < end) {
      const status = await post(port, agent, 'attacker', path, body, true);
      attacker[status] = (attacker[status] ?? 0) + 1;
    }
  };
  const loops = Array.from({ length: 8 }, victimLoop);
  if (shape !== undefined) loops.push(...Array.from({ length: 16 }, () => attackerLoop(shape)));
  await Promise.all(loops);
  agent.destroy();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  victim.latencies.sort((a, b) => a - b);
  const p99 = victim.latencies[Math.floor(0.99 * (victim.latencies.length - 1))] ?? Number.NaN;
  return { rps: victim.answers / SECONDS, p99, attacker };
}

const median = (values) => values.toSorted((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const results = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, shape] of Object.entries(SHAPES)) {
    for (const share of VALUES) {
      if (name === 'alone' && share !== VALUES[0]) continue;
      const r = await run(share, shape);
      const key = `${name}|${share}`;
      results[key] = [...(results[key] ?? []), r];
      const refused = r.attacker[429] ?? 0;
      console.error(
        `round ${round + 1} ${name} --cpu-share ${share}: victim ${Math.round(r.rps)}/s p99 ${r.p99.toFixed(1)} ms, attacker ${json(r.attacker)} (${refused} refused)`,
      );
    }
  }
}
rmSync(work, { recursive: true, force: true });

const alone = median(results[`alone|${VALUES[0]}`].map((r) => r.rps));
console.log(
  `\nkey victim's req/s beside key attacker (medians of ${ROUNDS} rounds of ${SECONDS} s; alone: ${Math.round(alone)}/s)`,
);
console.log(
  `| attacker sends | ${VALUES.map((v) => `--cpu-share ${v}: victim req/s (of alone) | p99 ms | attacker let in/s`).join(' | ')} |`,
);
console.log(`| --- | ${VALUES.map(() => '---: | ---: | ---:').join(' | ')} |`);
for (const name of Object.keys(SHAPES).filter((s) => s !== 'alone')) {
  const cells = VALUES.map((share) => {
    const runs = results[`${name}|${share}`];
    const rps = runs.map((r) => r.rps);
    const admitted = median(
      runs.map(
        (r) =>
          Object.entries(r.attacker)
            .filter(([s]) => s !== '429' && s !== '0') // 0: the connection failed
            .reduce((sum, [, c]) => sum + c, 0) / SECONDS,
      ),
    );
    const range = `${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))}`;
    return `${Math.round(median(rps))} (${range}, ${((100 * median(rps)) / alone).toFixed(1)} %) | ${median(runs.map((r) => r.p99)).toFixed(1)} | ${admitted.toFixed(1)}`;
  });
  console.log(`| ${name} | ${cells.join(' | ')} |`);
}
