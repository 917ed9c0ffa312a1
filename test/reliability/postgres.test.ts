// The PostgreSQL sink against a real PostgreSQL server: rows are what was acknowledged, a duplicate is
// one row across instances, instances starting at once on an empty database all start, and an event
// the database cannot hold is refused alone.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent } from 'node:https';
import { test } from 'node:test';
import { encodeSettings, trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { send, stopCleanly } from './harness.ts';
import { withPostgres } from './postgres-harness.ts';

const pg = withPostgres('pg-test');
const endpoint = (table: string, ...extra: string[]) =>
  pg.endpoint(table, ['--api-key', 'other-key', ...extra]);

const agent = () => new Agent({ keepAlive: true, ca: testCert().cert });
const fingerprint = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 12);

test('each acknowledged event is one row: its source, messageId, type, settings and event', async () => {
  const ep = await endpoint('rows');
  const a = agent();
  const events = [
    trackEvent({ messageId: 'row-1', properties: { plan: 'pro' } }),
    { type: 'identify', userId: 'u1', traits: { email: 'a@example.com' }, messageId: 'row-2' },
    { type: 'page', userId: 'u1', name: 'Home', messageId: 'row-3' },
  ];
  for (const event of events) assert.equal((await send(a, ep.url, event, 'dev-key')).status, 200);
  // A retry of the first (Segment resends when an answer is lost): acknowledged, not stored again.
  assert.equal((await send(a, ep.url, events[0] as { messageId: string }, 'dev-key')).status, 200);
  // The same messageId from another customer is another event.
  assert.equal((await send(a, ep.url, events[0] as { messageId: string }, 'other-key')).status, 200);
  a.destroy();

  const { rows } = await pg.client.query(
    'SELECT source, message_id, type, settings, event, received_at FROM rows ORDER BY id',
  );
  assert.deepEqual(
    rows.map((r) => [r.source, r.message_id, r.type]),
    [
      [fingerprint('dev-key'), 'row-1', 'track'],
      [fingerprint('dev-key'), 'row-2', 'identify'],
      [fingerprint('dev-key'), 'row-3', 'page'],
      [fingerprint('other-key'), 'row-1', 'track'],
    ],
  );
  assert.deepEqual(rows[0].event, events[0]);
  assert.deepEqual(rows[1].event, events[1]);
  assert.deepEqual(rows[0].settings, {}, 'no X-Segment-Settings header: no settings');
  assert.ok(Math.abs(Date.now() - rows[0].received_at.getTime()) < 60_000);
  await stopCleanly(ep);
});

test('settings are stored as the customer sent them', async () => {
  const ep = await endpoint('settings');
  const a = agent();
  const { request } = await import('node:https');
  const body = JSON.stringify(trackEvent({ messageId: 'settings-1' }));
  const status = await new Promise<number | undefined>((resolve, reject) => {
    const req = request(ep.url, {
      method: 'POST',
      agent: a,
      servername: 'localhost',
      headers: {
        authorization: `Basic ${Buffer.from('dev-key:').toString('base64')}`,
        'content-type': 'application/json',
        'x-segment-settings': encodeSettings({ region: 'eu', limit: 3 }),
      },
    });
    req.on('response', (res) => resolve(res.resume().statusCode));
    req.on('error', reject);
    req.end(body);
  });
  a.destroy();
  assert.equal(status, 200);
  const { rows } = await pg.client.query('SELECT settings FROM settings');
  assert.deepEqual(rows, [{ settings: { region: 'eu', limit: 3 } }]);
  await stopCleanly(ep);
});

test('two instances sharing the database store a duplicate once', async () => {
  const [one, two] = [await endpoint('shared'), await endpoint('shared')];
  const a = agent();
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, n) =>
      send(a, (n % 2 === 0 ? one : two).url, trackEvent({ messageId: `dup-${n % 5}` }), 'dev-key'),
    ),
  );
  a.destroy();
  assert.deepEqual(
    answers.map((x) => x.status),
    answers.map(() => 200),
  );
  const { rows } = await pg.client.query(
    'SELECT message_id, count(*)::int AS n FROM shared GROUP BY 1 ORDER BY 1',
  );
  assert.deepEqual(
    rows,
    [0, 1, 2, 3, 4].map((n) => ({ message_id: `dup-${n}`, n: 1 })),
  );
  await Promise.all([stopCleanly(one), stopCleanly(two)]);
});

test('instances starting at once on an empty database all start', async () => {
  const started = await Promise.all([endpoint('race'), endpoint('race'), endpoint('race')]);
  const a = agent();
  for (const [n, ep] of started.entries()) {
    assert.equal((await send(a, ep.url, trackEvent({ messageId: `race-${n}` }), 'dev-key')).status, 200);
  }
  a.destroy();
  const { rows } = await pg.client.query('SELECT count(*)::int AS n FROM race');
  assert.deepEqual(rows, [{ n: 3 }]);
  await Promise.all(started.map(stopCleanly));
});

test('an event jsonb cannot hold is refused with 400, and its group is stored without it', async () => {
  const ep = await endpoint('unstorable');
  const a = agent();
  const answers = await Promise.all([
    send(a, ep.url, trackEvent({ messageId: 'fine-1' }), 'dev-key'),
    send(a, ep.url, trackEvent({ messageId: 'nul', event: 'a\u0000b' }), 'dev-key'),
    send(a, ep.url, trackEvent({ messageId: 'fine-2' }), 'dev-key'),
    send(a, ep.url, trackEvent({ messageId: 'lone', properties: { half: 'a\ud800' } }), 'dev-key'),
    // The six characters \u0000 are text like any other.
    send(a, ep.url, trackEvent({ messageId: 'fine-3', event: 'a\\u0000b' }), 'dev-key'),
  ]);
  a.destroy();
  assert.deepEqual(
    answers.map((x) => [x.id, x.status, x.code]),
    [
      ['fine-1', 200, undefined],
      ['nul', 400, 'SEG_INVALID_EVENT'],
      ['fine-2', 200, undefined],
      ['lone', 400, 'SEG_INVALID_EVENT'],
      ['fine-3', 200, undefined],
    ],
  );
  const { rows } = await pg.client.query(
    'SELECT message_id, event->>$1 AS name FROM unstorable ORDER BY message_id',
    ['event'],
  );
  assert.deepEqual(
    rows.map((r) => r.message_id),
    ['fine-1', 'fine-2', 'fine-3'],
  );
  assert.equal(rows[2].name, 'a\\u0000b');
  await stopCleanly(ep);
});

test('settings jsonb cannot hold: 400 that names X-Segment-Settings, not the event', async () => {
  // Every event of such a customer is refused for good: the message must say what to fix.
  const ep = await endpoint('unstorable_settings');
  const a = agent();
  const settings = { 'x-segment-settings': encodeSettings({ region: 'e\u0000u' }) };
  const answer = await send(a, ep.url, trackEvent({ messageId: 'nul-settings' }), 'dev-key', settings);
  a.destroy();
  assert.deepEqual([answer.status, answer.code], [400, 'SEG_SETTINGS_INVALID']);
  await stopCleanly(ep);
});

test('--workers 2 with --postgres: each worker its own pool, one table', async () => {
  const ep = await endpoint('workers', '--workers', '2');
  const answers = await Promise.all(
    Array.from({ length: 12 }, (_, n) => {
      const a = new Agent({ keepAlive: false, ca: testCert().cert });
      return send(a, ep.url, trackEvent({ messageId: `w-${n}` }), 'dev-key');
    }),
  );
  assert.ok(answers.every((x) => x.status === 200));
  const { rows } = await pg.client.query('SELECT count(DISTINCT message_id)::int AS n FROM workers');
  assert.deepEqual(rows, [{ n: 12 }]);
  await stopCleanly(ep);
});

test('a role that may only INSERT and SELECT on a table made beforehand stores events', async () => {
  // What a cautious DBA grants: the table made by its owner, the endpoint's role without CREATE.
  await pg.client.query(`CREATE TABLE granted (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at timestamptz NOT NULL,
    source text NOT NULL, message_id text, type text NOT NULL, settings jsonb NOT NULL, event jsonb NOT NULL)`);
  await pg.client.query('CREATE UNIQUE INDEX granted_source_message_id ON granted (source, message_id)');
  await pg.client.query('CREATE ROLE writer LOGIN');
  await pg.client.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
  await pg.client.query('GRANT INSERT, SELECT ON granted TO writer');
  const url = pg.server.url.replace('postgres://postgres@', 'postgres://writer@');
  const ep = await pg.endpoint('granted', [], url);
  const a = agent();
  assert.equal((await send(a, ep.url, trackEvent({ messageId: 'granted-1' }), 'dev-key')).status, 200);
  a.destroy();
  const { rows } = await pg.client.query('SELECT message_id FROM granted');
  assert.deepEqual(rows, [{ message_id: 'granted-1' }]);
  await stopCleanly(ep);
});

test('a table named with an SQL keyword works', async () => {
  const ep = await endpoint('user');
  const a = agent();
  assert.equal((await send(a, ep.url, trackEvent({ messageId: 'keyword-1' }), 'dev-key')).status, 200);
  a.destroy();
  const { rows } = await pg.client.query('SELECT message_id FROM "user"');
  assert.deepEqual(rows, [{ message_id: 'keyword-1' }]);
  await stopCleanly(ep);
});

test('events whose messageId is "" are each stored: "" is no messageId, as the duplicate filter reads it', async () => {
  // The sink wrote '' in message_id: the unique index then took every later such event of the customer
  // for the first one, and ON CONFLICT DO NOTHING answered it 200 and dropped it.
  const ep = await endpoint('empty_ids');
  const a = agent();
  for (const userId of ['alice', 'bob', 'carol']) {
    assert.equal((await send(a, ep.url, trackEvent({ messageId: '', userId }), 'dev-key')).status, 200);
  }
  a.destroy();
  const { rows } = await pg.client.query('SELECT message_id, event FROM empty_ids ORDER BY id');
  assert.deepEqual(
    rows.map((r) => [r.message_id, r.event.userId]),
    [
      [null, 'alice'],
      [null, 'bob'],
      [null, 'carol'],
    ],
  );
  await stopCleanly(ep);
});
