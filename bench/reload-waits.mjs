#!/usr/bin/env node
// How long /health waits while a SIGHUP reloads a large keys file (--api-keys-file): asked every 5 ms,
// on a new TLS connection each time and on open ones, from a keys file of one key to one of --keys keys
// put in place, with --workers N or one process. The builds named are measured in interleaved rounds.
// Unpinned: the workers and the primary use both cores, as they would on a small VM.
// usage: node bench/reload-waits.mjs [CLI ...] [--workers 2] [--keys 500000] [--rounds 3]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCert } from './cert.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const flags = new Set(['--workers', '--keys', '--rounds']);
const clis = args.filter((arg, i) => !arg.startsWith('--') && !flags.has(args[i - 1]));
if (clis.length === 0) clis.push('dist/cli.js');
const workers = option('--workers', 2);
const rounds = option('--rounds', 3);
const ASK_EVERY_MS = 5;

const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-reload-waits-'));
const { cert, key } = makeCert(work);
const keysFile = join(work, 'keys');
const small = join(work, 'small');
const large = join(work, 'large');
writeFileSync(small, 'k1\n', { mode: 0o600 });
const lines = Array.from({ length: option('--keys', 500_000) }, () => randomBytes(22).toString('hex'));
writeFileSync(large, `k1\n${lines.join('\n')}\n`, { mode: 0o600 });

/** Starts `cli` on a keys file of one key: its URL, and when each "API keys reloaded" was read. */
async function start(cli) {
  copyFileSync(small, keysFile);
  const child = spawn(
    process.execPath,
    [
      ...[cli, '--host', '127.0.0.1', '--port', '0', '--cert', cert, '--key', key],
      ...['--api-keys-file', keysFile, '--out', join(work, 'store')],
      ...(workers > 1 ? ['--workers', String(workers)] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // The start line on stdout, the JSON log on stderr.
  const reloads = [];
  const url = await new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${cli} exited with code ${code}`)));
    for (const stream of [child.stdout, child.stderr]) {
      let output = '';
      stream.on('data', (data) => {
        output += data;
        for (let end = output.indexOf('\n'); end !== -1; end = output.indexOf('\n')) {
          const line = output.slice(0, end);
          output = output.slice(end + 1);
          if (line.includes('"API keys reloaded"')) reloads.push(performance.now());
          const listening = /listening on (\S+)/.exec(line);
          if (listening) resolve(new URL(listening[1]));
        }
      });
    }
  });
  return { child, url, reloads };
}

/** One round: /health asked every 5 ms, a SIGHUP after 1 s; each wait after it, and the reload's time. */
async function round(cli, open) {
  const { child, url, reloads } = await start(cli);
  const agent = open ? new Agent({ keepAlive: true, maxSockets: 4 }) : false;
  const waits = [];
  let sighupAt = Number.POSITIVE_INFINITY;
  const ask = () => {
    const asked = performance.now();
    const req = request({
      host: '127.0.0.1',
      port: url.port,
      path: '/health',
      agent,
      rejectUnauthorized: false,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => asked > sighupAt && waits.push(performance.now() - asked));
    });
    req.on('error', () => asked > sighupAt && waits.push(Number.NaN));
    req.end();
  };
  const asking = setInterval(ask, ASK_EVERY_MS);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  copyFileSync(large, keysFile);
  sighupAt = performance.now();
  child.kill('SIGHUP');
  const expected = Math.max(workers, 1);
  for (const until = sighupAt + 120_000; reloads.length < expected; ) {
    if (performance.now() > until) throw new Error(`${cli}: no "API keys reloaded" within 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  clearInterval(asking);
  await new Promise((resolve) => setTimeout(resolve, 2_000)); // the waits still running
  if (agent) agent.destroy();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
  const sorted = waits.filter((wait) => !Number.isNaN(wait)).sort((a, b) => a - b);
  return {
    worst: sorted.at(-1),
    p99: sorted[Math.floor(sorted.length * 0.99)],
    failed: waits.length - sorted.length,
    reload: Math.max(...reloads) - sighupAt,
  };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value) => value.toFixed(0);
const results = new Map();
for (let r = 0; r < rounds; r++) {
  for (const open of [false, true]) {
    for (const cli of clis) {
      const name = `${cli} ${open ? 'open connections' : 'a new connection each time'}`;
      results.set(name, [...(results.get(name) ?? []), await round(cli, open)]);
    }
  }
}
rmSync(work, { recursive: true, force: true });
const said = workers > 1 ? `--workers ${workers}` : 'one process';
console.log(
  `/health every ${ASK_EVERY_MS} ms during a SIGHUP of ${lines.length} keys, ${said}, ms (each round)`,
);
console.log(
  '| build, asked on | longest wait | p99 | failed | reload took |\n| --- | ---: | ---: | ---: | ---: |',
);
for (const [name, runs] of results) {
  const each = (field) =>
    `${runs.map((run) => ms(run[field])).join(', ')} (median ${ms(median(runs.map((run) => run[field])))})`;
  console.log(
    `| ${name} | ${each('worst')} | ${each('p99')} | ${runs.map((run) => run.failed).join(', ')} | ${each('reload')} |`,
  );
}
