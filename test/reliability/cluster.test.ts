// --workers 2: both workers serve and store, /metrics sums them whichever answers, a worker killed under
// load is replaced without losing an acknowledged event, SIGTERM drains every worker (also while they
// start), a configuration that kills every worker stops the primary, and start-up repair covers every
// worker's file.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { CLI, spawnClean } from '../helpers-spawn.ts';
import { waitFor, waitUntil } from '../helpers-wait.ts';
import {
  GUARD_MS,
  keptRequests,
  killedAndReplaced,
  listeningLogged,
  listeningPids,
  setUp,
} from './cluster-harness.ts';
import { type Endpoint, fetchText, load, readStore, send, stopCleanly } from './harness.ts';

/** The CLI with `args`, killed after the test; `ended` is its exit code, or 'hung' past GUARD_MS. */
function spawnGuarded(t: { after(fn: () => void): void }, args: string[]) {
  const spawned = spawnClean(process.execPath, [...CLI, ...args]);
  t.after(() => spawned.child.kill('SIGKILL'));
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((done) => {
    guard = setTimeout(done, GUARD_MS, 'hung');
  });
  const ended = Promise.race([spawned.exit, hung]).finally(() => clearTimeout(guard));
  return { ...spawned, ended, output: () => spawned.stdout() + spawned.stderr() };
}

/** `n` events, each on a connection of its own so that round-robin hands them to both workers: all 200. */
async function sendToBoth(t: { after(fn: () => void): void }, ep: Endpoint, prefix: string, n: number) {
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const answers = [];
  for (let i = 0; i < n; i += 8) {
    const batch = Array.from({ length: 8 }, (_, k) => trackEvent({ messageId: `${prefix}-${i + k}` }));
    answers.push(...(await Promise.all(batch.map((e) => send(agent, ep.url, e)))));
  }
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(n).fill(200),
  );
  return answers;
}

/** Event requests answered in all, and by each worker, as one /metrics answer says. */
function parseMetrics(text: string): { total: number; byWorker: Record<string, number> } {
  let total = 0;
  for (const m of text.matchAll(/^segment_endpoint_requests_total\{[^}]*\} (\d+)$/gm)) total += Number(m[1]);
  const byWorker: Record<string, number> = {};
  for (const m of text.matchAll(/^segment_endpoint_worker_requests_total\{worker="(\d+)"\} (\d+)$/gm))
    byWorker[m[1] as string] = Number(m[2]);
  return { total, byWorker };
}

test('--workers 2: both workers serve and store, /metrics sums them whichever answers', async (t) => {
  const EVENTS = 40;
  const { out, start } = setUp(t, 'serve');
  const ep = await start(['--out', out, '--metrics-path', '/metrics']);
  // The start-up line in the JSON log too, as one process says it.
  const said = await listeningLogged(ep);
  assert.deepEqual([said.url, said.workers, said.of], [ep.url, 2, 2], ep.output());
  const answers = await sendToBoth(t, ep, 'serve', EVENTS);

  const seen = [];
  for (let i = 0; i < 6; i++) {
    const { status, body } = await fetchText(ep, '/metrics');
    assert.equal(status, 200);
    seen.push(parseMetrics(body));
  }
  for (const m of seen) {
    assert.equal(m.total, EVENTS, `requests_total summed over the workers: ${JSON.stringify(seen)}`);
    assert.ok((m.byWorker['1'] ?? 0) > 0 && (m.byWorker['2'] ?? 0) > 0, JSON.stringify(m.byWorker));
    assert.equal((m.byWorker['1'] ?? 0) + (m.byWorker['2'] ?? 0), EVENTS);
  }
  await stopCleanly(ep);

  const files = readdirSync(out).filter((name) => name.endsWith('.ndjson'));
  assert.deepEqual(files.map((f) => /-w\d+\.ndjson$/.exec(f)?.[0]).sort(), ['-w1.ndjson', '-w2.ndjson']);
  const { records, broken } = readStore(out);
  assert.equal(broken, 0);
  const stored = records.map((r) => r.event.messageId).sort();
  assert.deepEqual(stored, answers.map((a) => a.id).sort(), 'every acknowledged event stored exactly once');
});

test('/metrics keeps what a worker killed with SIGKILL counted, though nobody asked for /metrics before', async (t) => {
  // Workers told their counts only when /metrics was gathered: a worker killed between two scrapes took
  // what it had counted since the last one with it (1,321 of 2,479 events in the report that found it).
  const EVENTS = 40;
  const { out, start } = setUp(t, 'counted');
  const ep = await start(['--out', out, '--metrics-path', '/metrics', '--log-level', 'debug']);
  await sendToBoth(t, ep, 'counted', EVENTS);
  // A worker tells its counts every second: killed before, it takes what it counted since with it.
  await waitUntil(
    () => keptRequests(ep.output()) === EVENTS,
    () => `every event's count kept by the primary, in:\n${ep.output()}`,
    GUARD_MS,
  );
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `worker 1 replaced, in:\n${ep.output()}`,
    GUARD_MS,
  );
  const { body } = await fetchText(ep, '/metrics');
  assert.equal(parseMetrics(body).total, EVENTS, body);
  await stopCleanly(ep);
});

test('a worker killed with SIGKILL under load is replaced; no acknowledged event is lost', async (t) => {
  const CONNECTIONS = 16;
  const { out, start } = setUp(t, 'kill');
  const ep = await start(['--out', out]);
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  let killed = false;
  const answers = await load({
    url: ep.url,
    connections: CONNECTIONS,
    maxRequests: 1_200,
    event: (n) => {
      if (n === 300) {
        killed = true;
        process.kill(pid, 'SIGKILL');
      }
      return trackEvent({ messageId: `kill-${n}` });
    },
  });
  assert.ok(killed, 'worker 1 was killed during the load');
  await waitFor(ep.output, /worker 1 was killed by SIGKILL: starting another/, GUARD_MS);
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `a second "worker listening" of worker 1 in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.notEqual(listeningPids(ep.output(), 1)[1], pid, 'the replacement is another process');

  const others = answers.filter((a) => a.status !== 200 && a.status !== 0);
  assert.deepEqual(others, [], 'every answer is 200 or none');
  const unanswered = answers.filter((a) => a.status === 0);
  assert.ok(unanswered.length <= CONNECTIONS, `${unanswered.length} unanswered`);
  t.diagnostic(JSON.stringify({ sent: answers.length, unanswered: unanswered.length }));

  await stopCleanly(ep);
  const { records, broken } = readStore(out);
  assert.equal(broken, 0, 'the replacement set the torn tail aside');
  const stored = new Set(records.map((r) => r.event.messageId));
  const missing = answers.filter((a) => a.status === 200 && !stored.has(a.id)).map((a) => a.id);
  assert.deepEqual(missing, [], 'every acknowledged event is stored');
});

test('SIGTERM drains every worker: events in flight on both are answered 200, exit 0', async (t) => {
  const REQUESTS = 6;
  const { dir, start } = setUp(t, 'drain');
  const started = join(dir, 'started.log');
  const module = join(dir, 'handlers.mjs');
  // Each handler notes which worker runs it, then takes 600 ms.
  const note = `appendFileSync(${JSON.stringify(started)}, process.env.SEGMENT_ENDPOINT_WORKER + '\\n')`;
  const track = `track() { ${note}; return new Promise((r) => setTimeout(r, 600)); }`;
  writeFileSync(module, `import { appendFileSync } from 'node:fs';\nexport default { ${track} };\n`);
  const ep = await start(['--handlers', module]);
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const pending = Array.from({ length: REQUESTS }, (_, n) =>
    send(agent, ep.url, trackEvent({ messageId: `drain-${n}` })),
  );
  const workers = () =>
    existsSync(started) ? readFileSync(started, 'utf8').split('\n').filter(Boolean) : [];
  await waitUntil(
    () => workers().length === REQUESTS,
    () => 'every handler started',
    GUARD_MS,
  );
  assert.deepEqual([...new Set(workers())].sort(), ['1', '2'], 'events in flight on both workers');
  ep.child.kill('SIGTERM');
  const answers = await Promise.all(pending);
  assert.equal(await ep.exit, 0, ep.output());
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(REQUESTS).fill(200),
  );
  assert.match(ep.output(), /"msg":"draining every worker"/);
  assert.match(ep.output(), /"msg":"every worker stopped"/);
});

test('workers that all die before listening stop the primary with exit 1', async (t) => {
  const { dir, flags } = setUp(t, 'bad');
  const module = join(dir, 'exits.mjs');
  writeFileSync(module, 'process.exit(3);\n');
  const primary = spawnGuarded(t, [...flags, '--handlers', module]);
  assert.equal(await primary.ended, 1, primary.output());
  assert.match(primary.output(), /died before listening/);
  assert.doesNotMatch(primary.output(), /listening on/);
});

for (const [name, text, said] of [
  [
    'throws',
    "throw new Error('broken handlers module');\n",
    /^segment-endpoint: --handlers: cannot load .*: broken handlers module$/m,
  ],
  // A worker's channel to its primary kept the loop from emptying: the wait went unnoticed.
  [
    'never',
    'await new Promise(() => {});\nexport default {};\n',
    /^segment-endpoint: --handlers: .* never finished loading/m,
  ],
] as const) {
  test(`a start-up error of the workers (a handlers module that ${name}) is said once, and the primary exits 1`, async (t) => {
    const { dir, flags } = setUp(t, name);
    const module = join(dir, `${name}.mjs`);
    writeFileSync(module, text);
    const primary = spawnGuarded(t, [...flags, '--handlers', module]);
    assert.equal(await primary.ended, 1, primary.output());
    assert.equal(primary.output().match(new RegExp(said.source, 'gm'))?.length, 1, primary.output());
    assert.doesNotMatch(primary.output(), /starting another|listening on/);
  });
}

test('--out beside --handlers under --workers: said once, by the primary, not by every worker and replacement', async (t) => {
  const { dir, start } = setUp(t, 'out-unused');
  const module = join(dir, 'handlers.mjs');
  writeFileSync(module, 'export default { track() {} };\n');
  const ep = await start(['--handlers', module, '--out', join(dir, 'unused')]);
  await killedAndReplaced(ep, 1);
  assert.equal(ep.output().match(/--out is not used/g)?.length, 1, ep.output());
  await stopCleanly(ep);
});

test('--out that cannot be a store stops the primary in one line, as one process does', async (t) => {
  const { dir, flags } = setUp(t, 'out-file');
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const primary = spawnGuarded(t, [...flags, '--out', file]);
  assert.equal(await primary.ended, 1, primary.output());
  assert.equal(primary.stderr(), `segment-endpoint: --out ${file} is not writable (ENOTDIR)\n`);
});

test('SIGTERM while the workers start: they drain, and the primary exits 0', async (t) => {
  const { out, flags } = setUp(t, 'early');
  const primary = spawnGuarded(t, [...flags, '--out', out, '--shutdown-timeout', '1']);
  const pid = primary.child.pid as number;
  const children = () => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
    } catch {
      return [];
    }
  };
  // Forked, far from listening (a worker takes hundreds of ms to load its modules).
  await waitUntil(
    () => children().length === 2,
    () => 'two workers forked',
    GUARD_MS,
  );
  primary.child.kill('SIGTERM');
  assert.equal(await primary.ended, 0, primary.output());
  assert.match(primary.output(), /"msg":"every worker stopped"/);
});

test("start-up repair sets aside the torn tail of every worker's file, started or not", async (t) => {
  const { out, start } = setUp(t, 'repair');
  const file = join(out, 'events-2026-01-01-w3.ndjson');
  const whole = JSON.stringify({ receivedAt: '2026-01-01T09:59:59.000Z', event: { messageId: 'before' } });
  const fragment = '{"receivedAt":"2026-01-01T10:00:0';
  mkdirSync(out, { recursive: true });
  writeFileSync(file, `${whole}\n${fragment}`);
  const ep = await start(['--out', out]);
  assert.equal(readFileSync(file, 'utf8'), `${whole}\n`);
  assert.equal(readFileSync(`${file}.torn`, 'utf8'), `${fragment}\n`);
  assert.match(ep.output(), /a partial line left by a crash was set aside/);
  await stopCleanly(ep);
});
