// kill -9 under load: an event answered 200 was on disk before the answer, so after a restart every
// acknowledged messageId is in the store, and a line cut short by the crash breaks no reader.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { listeningPids } from './cluster-harness.ts';
import {
  cleanup,
  type Endpoint,
  load,
  readStore,
  recordFigures,
  startEndpoint,
  stopCleanly,
  tlsFlags,
} from './harness.ts';

const CONNECTIONS = 32;
const MAX_REQUESTS = 20_000;
// Kill once this many requests have been started: each connection sends one after another, so all but
// the last CONNECTIONS of them have been answered, on a slow machine as on a fast one.
const KILL_AT_REQUEST = 2_500;

/** Lines set aside in `<file>.torn` files by start-up repair. */
function tornLines(dir: string): number {
  let lines = 0;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.torn')) continue;
    lines += readFileSync(join(dir, name), 'utf8')
      .split('\n')
      .filter((line) => line !== '').length;
  }
  return lines;
}

test('kill -9 under load: every acknowledged event is in the store after restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-crash-'));
  const out = join(dir, 'store');
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const args = [...tlsFlags(dir), '--api-key', 'dev-key', '--out', out];

  const ep = await startEndpoint(args);
  endpoints.push(ep);
  let killedAt: number | undefined;
  const kill = () => {
    if (killedAt !== undefined) return;
    killedAt = Date.now();
    ep.child.kill('SIGKILL');
  };
  const startedAt = Date.now();
  const outcomes = await load({
    url: ep.url,
    connections: CONNECTIONS,
    maxRequests: MAX_REQUESTS,
    // After the kill, new connections are refused at once: stop sending once the exit is seen.
    until: ep.exit,
    event: (n) => {
      if (n === KILL_AT_REQUEST) kill();
      return trackEvent({ messageId: `crash-${n}` });
    },
  });
  assert.equal(await ep.exit, -1, 'the process died of the signal');
  assert.ok(killedAt !== undefined, `killed before the load ran out (${outcomes.length} sent)`);

  const acknowledged = outcomes.filter((o) => o.status === 200).map((o) => o.id);
  const others = outcomes.filter((o) => o.status !== 200 && o.status !== 0);
  assert.deepEqual(others, [], 'every answer is 200 or no answer at all');
  assert.ok(acknowledged.length > 0, 'some events were acknowledged before the kill');

  // Start-up repairs torn tails; then a clean stop, so that nothing of this run is left half-done.
  const restarted = await startEndpoint(args);
  endpoints.push(restarted);
  await stopCleanly(restarted);

  const { records, broken } = readStore(out);
  assert.equal(broken, 0, 'every line of every .ndjson file parses');
  const stored = new Set(records.map((r) => r.event.messageId));
  const missing = acknowledged.filter((id) => !stored.has(id));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} acknowledged events are missing`);

  const figures = {
    sent: outcomes.length,
    acknowledged: acknowledged.length,
    unanswered: outcomes.length - acknowledged.length,
    found: acknowledged.length - missing.length,
    missing: missing.length,
    storedTotal: records.length,
    tornLinesSetAside: tornLines(out),
    repairsLogged: (restarted.output().match(/a partial line left by a crash was set aside/g) ?? []).length,
    killedAfterMs: killedAt - startedAt,
  };
  recordFigures('crash.kill9UnderLoad', figures);
  t.diagnostic(JSON.stringify(figures));
  assert.ok(records.length >= acknowledged.length);
});

test('a torn last line is set aside at start-up and the next event starts a line of its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-torn-'));
  const out = join(dir, 'store');
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));

  // Today's UTC file: the one the next event is appended to, so gluing would show.
  const today = () => new Date().toISOString().slice(0, 10);
  const day = today();
  const file = join(out, `events-${day}.ndjson`);
  const whole = JSON.stringify({
    receivedAt: '2026-11-26T09:59:59.000Z',
    source: 'abc',
    settings: {},
    event: { type: 'track', event: 'Before', userId: 'u1', messageId: 'before-crash' },
  });
  const fragment = '{"receivedAt":"2026-11-26T10:00:0';
  mkdirSync(out, { recursive: true });
  writeFileSync(file, `${whole}\n${fragment}`);

  const ep = await startEndpoint([...tlsFlags(dir), '--api-key', 'dev-key', '--out', out]);
  endpoints.push(ep);
  const [outcome] = await load({
    url: ep.url,
    connections: 1,
    maxRequests: 1,
    event: () => trackEvent({ messageId: 'after-crash' }),
  });
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exit, 0, ep.output());
  assert.equal(outcome?.status, 200);
  assert.match(ep.output(), /a partial line left by a crash was set aside/);

  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a newline');
  const parsed = lines.map((line) => JSON.parse(line) as { event: { messageId: string } });
  const ids = parsed.map((r) => r.event.messageId);
  // Past midnight UTC the new event went to the next day's file: then only the repair shows here.
  assert.deepEqual(ids, today() === day ? ['before-crash', 'after-crash'] : ['before-crash']);
  assert.deepEqual(
    readStore(out)
      .records.map((r) => r.event.messageId)
      .sort(),
    ['after-crash', 'before-crash'],
  );
  assert.ok(existsSync(`${file}.torn`));
  assert.equal(readFileSync(`${file}.torn`, 'utf8'), `${fragment}\n`);
  assert.equal(readStore(out).broken, 0);

  const figures = { linesInFile: parsed.length, tornBytes: fragment.length, newEventStatus: outcome?.status };
  recordFigures('crash.tornTail', figures);
  t.diagnostic(JSON.stringify(figures));
});

for (const workers of [[], ['--workers', '2']]) {
  const named = workers.length === 0 ? '' : ` (${workers.join(' ')}: by whichever worker it reaches)`;
  test(`Segment's retries after a kill -9: an event the store holds is not stored again${named}`, async (t) => {
    await retriedAfterKill(t, workers);
  });
}

async function retriedAfterKill(t: TestContext, workers: string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-retried-'));
  const out = join(dir, 'store');
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const args = [...tlsFlags(dir), '--api-key', 'dev-key', '--api-key', 'other-key', '--out', out, ...workers];

  const ep = await startEndpoint(args);
  endpoints.push(ep);
  const event = (n: number) => trackEvent({ messageId: `retried-${n}` });
  const first = await load({
    url: ep.url,
    connections: 8,
    maxRequests: 2_000,
    until: ep.exit,
    event: (n) => {
      // The whole process tree at once, as a machine that fails takes it: its workers first.
      if (n === 400) {
        for (const pid of [1, 2].flatMap((k) => listeningPids(ep.output(), k))) process.kill(pid, 'SIGKILL');
        ep.child.kill('SIGKILL');
      }
      return event(n);
    },
  });
  assert.equal(await ep.exit, -1, 'the process died of the signal');
  const storedBeforeTheKill = readStore(out).records.length;
  assert.ok(storedBeforeTheKill > 0, 'events were stored before the kill');

  // Segment retries what went unanswered, and what it sent whose answer it never read: here, all of it.
  const restarted = await startEndpoint(args);
  endpoints.push(restarted);
  const sent = first.length;
  const retries = await load({ url: restarted.url, connections: 8, maxRequests: sent, event });
  assert.deepEqual(
    retries.filter((a) => a.status !== 200),
    [],
    'every retry is answered 200',
  );
  // The filter is per API key: another customer's event with the same messageId is its own.
  const [other] = await load({ url: restarted.url, connections: 1, maxRequests: 1, event, key: 'other-key' });
  assert.equal(other?.status, 200);
  await stopCleanly(restarted);

  const { records, broken } = readStore(out);
  assert.equal(broken, 0);
  const copies = new Map<string, number>();
  for (const r of records as Array<{ source: string; event: { messageId: string } }>) {
    const id = `${r.source} ${r.event.messageId}`;
    copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  const twice = [...copies].filter(([, n]) => n > 1);
  const ids = new Set(records.map((r) => r.event.messageId));
  for (let n = 0; n < sent; n++) assert.ok(ids.has(`retried-${n}`), `retried-${n} is stored`);
  // With --workers, each worker reads back the others' files too, up to what they held before any worker
  // started: a retry that reaches another worker than the one that stored it is a duplicate there too.
  assert.deepEqual(twice.slice(0, 10), [], `${twice.length} events stored more than once`);
  assert.equal(records.length, sent + 1, "every event once, and the other key's copy");
  const figures = { sent, storedBeforeTheKill, storedInAll: records.length, storedTwice: twice.length };
  recordFigures(`crash.retriedAfterKill${workers.length === 0 ? '' : 'Workers'}`, figures);
  t.diagnostic(JSON.stringify(figures));
}
