// The PostgreSQL sink behind PgBouncer pooling by transaction: a session setting of the sink's lasts one
// transaction at most there (each may run on another server session, and DISCARD ALL follows each), so
// whatever a stored event's durability rests on must hold in the INSERT's own transaction.
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { waitFor } from '../helpers-wait.ts';
import { type Pooler, startPooler } from '../services/pgbouncer.ts';
import { send, stopCleanly } from './harness.ts';
import { answeredWaiting, withPostgres, withUnreachableStandby } from './postgres-harness.ts';

const pg = withPostgres('pg-pooler');
const agent = new Agent({ keepAlive: true, ca: testCert().cert });
let pooler: Promise<Pooler> | undefined;

/** The URL through PgBouncer, as a role whose commits do not wait for the disk; started at first use. */
async function through(): Promise<string> {
  pooler ??= (async () => {
    await pg.client.query('CREATE ROLE hasty LOGIN');
    await pg.client.query('ALTER ROLE hasty SET synchronous_commit = off');
    await pg.client.query('GRANT CREATE ON SCHEMA public TO hasty');
    return startPooler(pg.server.port, ['hasty']);
  })();
  return (await pooler).url('hasty');
}
after(async () => (await pooler)?.destroy());

test('behind PgBouncer, events are stored once each, a copy answered 200 as the first', async () => {
  const ep = await pg.endpoint('pooled', [], await through());
  await waitFor(ep.output, /PostgreSQL stores events/);
  const events = ['pooled-1', 'pooled-2', 'pooled-1'].map((messageId) => trackEvent({ messageId }));
  const answers = await Promise.all(events.map((event) => send(agent, ep.url, event, 'dev-key')));
  assert.deepEqual(
    answers.map((answer) => answer.status),
    [200, 200, 200],
  );
  const { rows } = await pg.client.query<{ id: string }>(
    'SELECT message_id AS id FROM pooled ORDER BY message_id',
  );
  assert.deepEqual(
    rows.map((row) => row.id),
    ['pooled-1', 'pooled-2'],
  );
  await stopCleanly(ep);
});

test("behind PgBouncer, a role whose commits do not wait for the disk: the sink's INSERTs wait all the same", async () => {
  // What shows whether a commit waits: a synchronous standby that never comes, which only a commit that
  // waits for durability waits for (until the INSERT's timeout: a 503, Segment retries). A commit that
  // did not wait is an event answered 200 that a crash of PostgreSQL loses.
  const ep = await pg.endpoint('hasty', [], await through());
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal((await send(agent, ep.url, trackEvent({ messageId: 'hasty-1' }), 'dev-key')).status, 200);
  await withUnreachableStandby(pg, () =>
    answeredWaiting(
      async (n) => (await send(agent, ep.url, trackEvent({ messageId: `hasty-w${n}` }), 'dev-key')).status,
    ),
  );
  await stopCleanly(ep);
});
