// The PostgreSQL sink when things fail, against a real PostgreSQL server: the endpoint killed under
// load, PostgreSQL stopped and started under load, and PostgreSQL down when the endpoint starts. In
// every case each event answered 200 is a row, and nothing else than 200 or a retryable 503 is answered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { trackEvent } from '../helpers.ts';
import { type Answer, type Endpoint, health, load, stopCleanly } from './harness.ts';
import { withPostgres } from './postgres-harness.ts';

const postgres = withPostgres('pg-faults');
const endpoint = (table: string) => postgres.endpoint(table);

async function storedIds(table: string): Promise<Set<string>> {
  const client = new pg.Client({ connectionString: postgres.server.url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT message_id FROM ${table}`);
    return new Set(rows.map((r: { message_id: string }) => r.message_id));
  } finally {
    await client.end();
  }
}

function assertAcknowledgedStored(answers: Answer[], stored: Set<string>): number {
  const acknowledged = answers.filter((a) => a.status === 200).map((a) => a.id);
  assert.ok(acknowledged.length > 0, 'some events were acknowledged');
  const lost = acknowledged.filter((id) => !stored.has(id));
  assert.deepEqual(lost, [], 'every event answered 200 is a row');
  return acknowledged.length;
}

test('kill -9 of the endpoint under load loses nothing acknowledged', async () => {
  const ep = await endpoint('crash');
  const answers = await load({
    url: ep.url,
    connections: 16,
    maxRequests: 20_000,
    until: ep.exit,
    key: 'dev-key',
    event: (n) => {
      if (n === 1_500) ep.child.kill('SIGKILL');
      return trackEvent({ messageId: `crash-${n}` });
    },
  });
  assert.equal(await ep.exit, -1, 'killed by the signal');
  const others = answers.filter((a) => a.status !== 200 && a.status !== 0);
  assert.deepEqual(others, [], 'every answer is 200 or none at all');
  assertAcknowledgedStored(answers, await storedIds('crash'));
});

test('PostgreSQL stopped and started under load: 503 + Retry-After meanwhile, 200s again, nothing lost', async () => {
  const ep = await endpoint('restart');
  let phase: 'before' | 'down' | 'back' = 'before';
  const seen = { down: false, back: false };
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const loading = load({
    url: ep.url,
    connections: 8,
    maxRequests: 100_000,
    until: done,
    key: 'dev-key',
    event: (n) => trackEvent({ messageId: `restart-${n}` }),
    onAnswer: (a) => {
      if (phase === 'down' && a.status === 503) seen.down = true;
      if (phase === 'back' && a.status === 200) {
        seen.back = true;
        finish();
      }
    },
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  phase = 'down';
  await postgres.server.stop();
  const deadline = Date.now() + 10_000;
  while (!seen.down && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(seen.down, 'events are answered 503 while PostgreSQL is down');
  assert.equal(await health(ep), 503, 'health says unavailable');
  await postgres.server.start();
  phase = 'back';
  setTimeout(finish, 15_000).unref();
  const answers = await loading;
  assert.ok(seen.back, 'events are answered 200 again once PostgreSQL is back');

  const refused = answers.filter((a) => a.status !== 200);
  for (const a of refused) {
    assert.equal(a.status, 503, `only 503 besides 200: ${JSON.stringify(a)}`);
    assert.equal(a.code, 'SEG_STORE_UNAVAILABLE');
    assert.equal(a.retryAfter, '1');
  }
  assert.equal(await health(ep), 200);
  assertAcknowledgedStored(answers, await storedIds('restart'));
  await stopCleanly(ep);
});

test('PostgreSQL down at start: the endpoint starts, answers 503, and stores once it is up', async () => {
  await postgres.server.stop();
  let ep: Endpoint;
  try {
    ep = await endpoint('late');
    assert.match(ep.output(), /PostgreSQL cannot store events/);
    assert.equal(await health(ep), 503);
    const [refused] = await load({
      url: ep.url,
      connections: 1,
      maxRequests: 1,
      key: 'dev-key',
      event: () => trackEvent({ messageId: 'late-0' }),
    });
    assert.equal(refused?.status, 503);
    assert.equal(refused?.code, 'SEG_STORE_UNAVAILABLE');
  } finally {
    await postgres.server.start();
  }
  const deadline = Date.now() + 15_000;
  while ((await health(ep)) !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const answers = await load({
    url: ep.url,
    connections: 1,
    maxRequests: 3,
    key: 'dev-key',
    event: (n) => trackEvent({ messageId: `late-${n + 1}` }),
  });
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200],
  );
  assert.deepEqual([...(await storedIds('late'))].sort(), ['late-1', 'late-2', 'late-3']);
  await stopCleanly(ep);
});
