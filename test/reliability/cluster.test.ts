// --workers 2: both workers serve and store, /metrics sums them whichever answers, a worker killed under
// load is replaced without losing an acknowledged event, SIGTERM drains every worker (also while they
// start), a configuration that kills every worker stops the primary, and start-up repair covers every
// worker's file.
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Agent, get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI_SOURCE, spawnClean, testCert, trackEvent, waitFor, waitUntil } from '../helpers.ts';
import {
  cleanup,
  type Endpoint,
  load,
  readStore,
  send,
  startEndpoint,
  stopCleanly,
  tlsFlags,
} from './harness.ts';

// Only bounds a process that never does what is awaited.
const GUARD_MS = 15_000;

/** A temp directory, removed after the test with whatever still runs, and the flags of a 2-worker run. */
function setUp(t: { after(fn: () => Promise<void>): void }, name: string) {
  const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-cluster-${name}-`));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const flags = ['--workers', '2', ...tlsFlags(dir), '--api-key', 'dev-key'];
  const start = async (extra: string[]) => {
    const ep = await startEndpoint([...flags, ...extra]);
    endpoints.push(ep);
    return ep;
  };
  return { dir, out: join(dir, 'store'), flags, start };
}

/** The CLI with `args`, killed after the test; `ended` is its exit code, or 'hung' past GUARD_MS. */
function spawnGuarded(t: { after(fn: () => void): void }, args: string[]) {
  const spawned = spawnClean(process.execPath, [...CLI_SOURCE, ...args]);
  t.after(() => spawned.child.kill('SIGKILL'));
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((done) => {
    guard = setTimeout(done, GUARD_MS, 'hung');
  });
  const ended = Promise.race([spawned.exit, hung]).finally(() => clearTimeout(guard));
  return { ...spawned, ended, output: () => spawned.stdout() + spawned.stderr() };
}

/** The pids worker `n` logged `worker listening` with, in order. */
function listeningPids(output: string, n: number): number[] {
  const lines = output.split('\n').filter((line) => line.startsWith('{'));
  const entries = lines.map((line) => JSON.parse(line) as { msg?: string; worker?: number; pid: number });
  return entries.filter((e) => e.msg === 'worker listening' && e.worker === n).map((e) => e.pid);
}

/** GET `path` on a connection of its own (so round-robin picks the worker): status and body. */
function fetchText(ep: Endpoint, path: string): Promise<{ status: number; body: string }> {
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    get(new URL(path, ep.url), { agent, servername: 'localhost' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  }).finally(() => agent.destroy());
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
  // A connection per event: round-robin hands them to both workers.
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const answers = [];
  for (let i = 0; i < EVENTS; i += 8) {
    const batch = Array.from({ length: 8 }, (_, k) => trackEvent({ messageId: `serve-${i + k}` }));
    answers.push(...(await Promise.all(batch.map((e) => send(agent, ep.url, e)))));
  }
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(EVENTS).fill(200),
  );

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
  const module = join(dir, 'broken.mjs');
  writeFileSync(module, "throw new Error('broken handlers module');\n");
  const primary = spawnGuarded(t, [...flags, '--handlers', module]);
  assert.equal(await primary.ended, 1, primary.output());
  assert.match(primary.output(), /died before listening/);
  assert.doesNotMatch(primary.output(), /listening on/);
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

test('a replaced worker runs what the others run, not what the files say since', async (t) => {
  // The operator prepares the next start: the keys file already holds the next key, and a SIGHUP came
  // with a certificate file that does not load (refused: the current one stays). A worker that dies then
  // is replaced by one that serves the same keys and certificate as the other, rather than dying on the
  // file (five times, then the primary stopped every worker) or answering the next key's events alone.
  const { dir, flags } = setUp(t, 'replaced');
  const keys = join(dir, 'keys');
  writeFileSync(keys, 'k-now\n');
  const withoutKey = flags.slice(0, flags.indexOf('--api-key'));
  const ep = await startEndpoint([...withoutKey, '--api-keys-file', keys]);
  t.after(cleanup(dir, [ep]));
  writeFileSync(keys, 'k-next\n');
  writeFileSync(join(dir, 'cert.pem'), 'not a certificate');
  ep.child.kill('SIGHUP');
  await waitFor(ep.output, /certificate reload failed; keeping the current one/, GUARD_MS);
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `a second "worker listening" of worker 1 in:\n${ep.output()}`,
    GUARD_MS,
  );
  // New connections go to either worker (round robin): every one answers as the fleet did.
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const as = (key: string, n: number) =>
    send(agent, ep.url, trackEvent({ messageId: `${key}-${n}` }), key).then((a) => a.status);
  const now = await Promise.all(Array.from({ length: 6 }, (_, n) => as('k-now', n)));
  const next = await Promise.all(Array.from({ length: 6 }, (_, n) => as('k-next', n)));
  assert.deepEqual(now, Array(6).fill(200));
  assert.deepEqual(next, Array(6).fill(401));
  await stopCleanly(ep);
});

test('replacements that keep dying while a worker serves do not take it down', async (t) => {
  // A --handlers module broken in place: workers started from now on die loading it, the one running
  // serves on. Five in a row used to stop the primary, which killed the serving worker too.
  const { dir, start } = setUp(t, 'broken-in-place');
  const broken = join(dir, 'broken');
  const module = join(dir, 'handlers.mjs');
  const check = `if (existsSync(${JSON.stringify(broken)})) throw new Error('handlers broken in place');`;
  writeFileSync(module, `import { existsSync } from 'node:fs';\n${check}\nexport default { track() {} };\n`);
  const ep = await start(['--handlers', module]);
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  writeFileSync(broken, '');
  process.kill(pid, 'SIGKILL');
  const replacements = () => ep.output().match(/worker 1 [^"]* starting another/g)?.length ?? 0;
  await waitUntil(
    () => replacements() > 5,
    () => `more than five replacements of worker 1 in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.equal(ep.child.exitCode, null, ep.output());
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const answers = await Promise.all(
    Array.from({ length: 4 }, (_, n) => send(agent, ep.url, trackEvent({ messageId: `served-${n}` }))),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(4).fill(200),
  );
  rmSync(broken);
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `worker 1 listening again in:\n${ep.output()}`,
    GUARD_MS,
  );
  await stopCleanly(ep);
});
