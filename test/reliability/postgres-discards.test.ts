// The PostgreSQL sink against tables that take an INSERT and keep less than it sent: a rule or a trigger
// that discards rows, a unique index that takes distinct messageIds for one, and a role whose commits do
// not wait for the disk. No event is answered 200 unless its row is stored, durably.
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { eventually, waitFor } from '../helpers-wait.ts';
import { type Endpoint, send, stopCleanly } from './harness.ts';
import { answeredWaiting, inOneGroup, withPostgres, withUnreachableStandby } from './postgres-harness.ts';

const pg = withPostgres('pg-discards');
const agent = new Agent({ keepAlive: true, ca: testCert().cert });

const status = async (ep: Endpoint, messageId: string) =>
  (await send(agent, ep.url, trackEvent({ messageId }), 'dev-key')).status;

const stored = async (table: string): Promise<string[]> => {
  const { rows } = await pg.client.query<{ id: string }>(
    `SELECT message_id AS id FROM ${table} ORDER BY message_id`,
  );
  return rows.map((row) => row.id);
};

/** An endpoint storing into `table`, once the sink is up. */
async function storing(table: string): Promise<Endpoint> {
  const ep = await pg.endpoint(table);
  await waitFor(ep.output, /PostgreSQL stores events/);
  return ep;
}

/** A trigger's body that rewrites keys: every messageId stored lower-cased. */
const LOWER_CASED_IDS = 'BEGIN NEW.message_id := lower(NEW.message_id); RETURN NEW; END';

/** A track event without a messageId: never a copy, its row's message_id NULL. */
const anonymous = { ...trackEvent(), messageId: undefined } as unknown as { messageId: string };

/** A BEFORE INSERT row trigger `name` on `table`, running the PL/pgSQL statements `body`. */
async function beforeInsert(table: string, name: string, body: string): Promise<void> {
  await pg.client.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ ${body} $$`);
  await pg.client.query(
    `CREATE TRIGGER ${name} BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`,
  );
}

/** SIGTERM to an endpoint whose store may be unavailable: a clean exit all the same. */
async function stop(ep: Endpoint): Promise<void> {
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exit, 0, ep.output());
}

test('a trigger that discards some rows: those events are 503, the others 200 and stored, a copy of a stored one 200', async () => {
  // The INSERT succeeded with fewer rows than it sent, and every event of its group was answered 200.
  const ep = await storing('filtered');
  await beforeInsert(
    'filtered',
    'drop_tests',
    `BEGIN IF NEW.message_id LIKE 'test-%' THEN RETURN NULL; END IF; RETURN NEW; END`,
  );
  assert.equal(await status(ep, 'kept-1'), 200);
  assert.equal(await status(ep, 'test-1'), 503);
  assert.equal(await status(ep, 'kept-2'), 200);
  assert.equal(await status(ep, 'kept-1'), 200, 'a duplicate of a stored event');
  assert.deepEqual(await stored('filtered'), ['kept-1', 'kept-2']);
  await waitFor(ep.output, /discarded/);
  await stopCleanly(ep);
});

test('a group the trigger discards whole: every event 503 at once, the table asked once whether it refuses all', async () => {
  // Each discarded row was refused in turn, waiting for the one before: the table asked every 32 rows
  // (two transactions each), and the last rows' 503s behind every ask.
  const ep = await storing('emptied');
  // The trigger's calls counted by a sequence: an ask's INSERT is rolled back, its nextval is not.
  await pg.client.query('CREATE SEQUENCE emptied_calls');
  await beforeInsert(
    'emptied',
    'empty_drops',
    `BEGIN PERFORM nextval('emptied_calls');
    IF NEW.message_id LIKE 'drop-%' THEN RETURN NULL; END IF; RETURN NEW; END`,
  );
  const events = Array.from({ length: 100 }, (_, n) => trackEvent({ messageId: `drop-${n}` }));
  const answers = await inOneGroup(pg, ep, 'emptied', events);
  assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([503]));
  const { rows } = await pg.client.query<{ calls: string }>('SELECT last_value AS calls FROM emptied_calls');
  // The fillers' four rows, the group's hundred, and one ask: a copy of the last row stored, taken.
  assert.equal(Number(rows[0]?.calls), 4 + 100 + 1);
  await stopCleanly(ep);
});

test('a trigger that rewrites messageIds: no 200 for an event stored under another key, nor for one merged into it', async () => {
  // Lower-cased, Order-1 was stored as order-1 and answered 200 (as many rows came back as were sent),
  // and order-1 then found "its" row held and was answered 200, though the row held Order-1's event.
  const ep = await storing('rekeyed');
  await beforeInsert('rekeyed', 'rekey', LOWER_CASED_IDS);
  assert.equal(await status(ep, 'Order-1'), 503);
  await waitFor(ep.output, /another source or message_id/);
  assert.equal(await status(ep, 'order-1'), 503, 'the sink is down: the table rewrites keys');
  // It stays down while the trigger is there: it came up again 5 s later, took order-1 as held by its
  // row, and answered it 200.
  await waitFor(ep.output, /BEFORE INSERT trigger.*rekey/, 15_000);
  assert.equal(await status(ep, 'order-1'), 503, 'still down: the trigger is there');
  await pg.client.query('DROP TRIGGER rekey ON rekeyed');
  await eventually(
    async () => (await status(ep, 'Order-2')) === 200,
    'stored once the trigger is gone',
    15_000,
  );
  const { rows } = await pg.client.query<{ id: string }>(
    `SELECT message_id AS id FROM rekeyed WHERE message_id = 'Order-2'`,
  );
  assert.equal(rows.length, 1);
  await stop(ep);
});

test('a trigger that rewrites a messageId in a group that holds an event without one: no 200 for it', async () => {
  // The key returned that was never sent was taken for one filled in for the event sent without one,
  // though that row came back without a key: Order-1's row, stored as order-1, was answered 200, and
  // a later order-1 then found "its" row held.
  const ep = await storing('rekeyed_mixed');
  await beforeInsert('rekeyed_mixed', 'rekey_mixed', LOWER_CASED_IDS);
  const [rekeyed] = await inOneGroup(pg, ep, 'rekeyed_mixed', [
    trackEvent({ messageId: 'Order-1' }),
    anonymous,
  ]);
  assert.equal(rekeyed?.status, 503, JSON.stringify(rekeyed));
  await waitFor(ep.output, /another source or message_id/);
  await stop(ep);
});

test('a trigger that fills in a missing messageId: those events are 200 and stored, the sink stays up', async () => {
  // Taken for a rewrite of a key, the filled-in messageId took the sink down: a 503 for events it stored.
  const ep = await storing('filled');
  await beforeInsert(
    'filled',
    'fill_id',
    `BEGIN NEW.message_id := coalesce(NEW.message_id, 'gen-' || NEW.id); RETURN NEW; END`,
  );
  assert.equal((await send(agent, ep.url, anonymous, 'dev-key')).status, 200);
  assert.equal(await status(ep, 'named-1'), 200);
  const { rows } = await pg.client.query<{ n: string }>('SELECT count(*) AS n FROM filled');
  assert.equal(rows[0]?.n, '2');
  await stopCleanly(ep);
});

test('a rule that discards every row: refused when the table is checked, and no event answered 200', async () => {
  const ep = await storing('ruled');
  await pg.client.query('CREATE RULE drop_all AS ON INSERT TO ruled DO INSTEAD NOTHING');
  for (let n = 0; n < 3; n++) assert.equal(await status(ep, `ruled-${n}`), 503);
  assert.deepEqual(await stored('ruled'), []);
  await pg.client.query('DROP RULE drop_all ON ruled');
  await stop(ep);
  // Found at the start too, before any event.
  await pg.client.query('CREATE RULE drop_all AS ON INSERT TO ruled DO INSTEAD NOTHING');
  const again = await pg.endpoint('ruled');
  await waitFor(again.output, /rule/);
  assert.equal(await status(again, 'ruled-again'), 503);
  await pg.client.query('DROP RULE drop_all ON ruled');
  await stop(again);
});

test('a unique index under a case-insensitive collation would drop distinct messageIds as copies: refused', async (t) => {
  const { rows } = await pg.client.query<{ icu: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collprovider = 'i') AS icu",
  );
  if (rows[0]?.icu !== true) return t.skip('this PostgreSQL has no ICU collations');
  await pg.client.query(
    "CREATE COLLATION IF NOT EXISTS anycase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
  );
  await pg.client.query(`CREATE TABLE anycase (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL, source text NOT NULL, message_id text, type text NOT NULL,
    settings jsonb NOT NULL, event jsonb NOT NULL)`);
  await pg.client.query('CREATE UNIQUE INDEX ON anycase (source, message_id COLLATE anycase)');
  const ep = await pg.endpoint('anycase');
  await waitFor(ep.output, /collation/);
  assert.equal(await status(ep, 'Order-AbC'), 503);
  assert.equal(await status(ep, 'order-abc'), 503);
  assert.deepEqual(await stored('anycase'), []);
  await stop(ep);
});

test("a role whose commits do not wait for the disk (synchronous_commit off): the sink's sessions wait all the same", async () => {
  // An event answered 200 would be lost if PostgreSQL crashed before its commit reached the disk. What
  // shows whether a session waits: a synchronous standby that never comes, which only a commit that
  // waits for durability waits for (until the INSERT's timeout: a 503, Segment retries).
  await pg.client.query('CREATE ROLE hasty LOGIN');
  await pg.client.query('ALTER ROLE hasty SET synchronous_commit = off');
  await pg.client.query('GRANT CREATE ON SCHEMA public TO hasty');
  const ep = await pg.endpoint('hasty', [], pg.server.url.replace(/\/\/[^@]*@/, '//hasty@'));
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal(await status(ep, 'hasty-1'), 200);
  await withUnreachableStandby(pg, () => answeredWaiting((n) => status(ep, `hasty-w${n}`)));
  await stopCleanly(ep);
});
