// The PostgreSQL sink while the database it writes to is changed under it: a session that takes no
// writes for a while (a role or database set read-only, a standby), and the table made UNLOGGED while
// events are being stored. Nothing acknowledged is lost, the log says what is wrong, and 200s resume by
// themselves once the database takes writes again.
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { eventually, waitFor } from '../helpers-wait.ts';
import { type Endpoint, health, send, stopCleanly } from './harness.ts';
import { withPostgres } from './postgres-harness.ts';

const pg = withPostgres('pg-changes');
const agent = new Agent({ keepAlive: true, ca: testCert().cert });
let sent = 0;
const status = async (ep: Endpoint) =>
  (await send(agent, ep.url, trackEvent({ messageId: `changes-${sent++}` }), 'dev-key')).status;

/** An endpoint storing in `table` as the role `role`, which may write it. */
async function asRole(table: string, role: string): Promise<Endpoint> {
  await pg.client.query(`CREATE ROLE ${role} LOGIN`);
  await pg.client.query(`CREATE TABLE ${table} (id int)`);
  await pg.client.query(`DROP TABLE ${table}`);
  await pg.client.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
  return pg.endpoint(table, [], pg.server.url.replace(/\/\/[^@]*@/, `//${role}@`));
}

const endSessions = (role: string) =>
  pg.client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);

test('a role made read-only while the endpoint runs, then writable again: 503 and said meanwhile, 200s again by themselves', async () => {
  // default_transaction_read_only is fixed when a session begins: the sessions opened while it was on
  // take no writes for their whole life, though the role's setting is reset.
  const ep = await asRole('flipped', 'flipper');
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal(await status(ep), 200);
  await pg.client.query('ALTER ROLE flipper SET default_transaction_read_only = on');
  await endSessions('flipper');
  await eventually(async () => (await status(ep)) === 503, 'events refused while no session takes writes');
  await waitFor(ep.output, /PostgreSQL takes no writes here/);
  assert.equal(await health(ep), 503);
  await pg.client.query('ALTER ROLE flipper RESET default_transaction_read_only');
  await eventually(async () => (await status(ep)) === 200, 'events stored again', 15_000);
  assert.equal(await health(ep), 200);
  await stopCleanly(ep);
});

test('the table made UNLOGGED while events are stored (a crash of PostgreSQL would empty it): refused within seconds with no event sent, stored again once LOGGED', async () => {
  const ep = await pg.endpoint('turned');
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal(await status(ep), 200);
  await pg.client.query('ALTER TABLE turned SET UNLOGGED');
  await waitFor(ep.output, /table turned is UNLOGGED/, 20_000);
  assert.equal(await health(ep), 503);
  assert.equal(await status(ep), 503);
  await pg.client.query('ALTER TABLE turned SET LOGGED');
  await eventually(async () => (await status(ep)) === 200, 'events stored again', 15_000);
  await stopCleanly(ep);
});

test('the table renamed away while events are stored (archived): a new one is made with an index of its own, 200s again', async () => {
  // The renamed table keeps its index and the index's name: the new table's index, made under the same
  // name IF NOT EXISTS, was never made, and every event was answered 503 for good, restarts included.
  const ep = await pg.endpoint('archived');
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal(await status(ep), 200);
  await pg.client.query('ALTER TABLE archived RENAME TO archived_2026_11');
  await eventually(async () => (await status(ep)) === 200, 'events stored in a new table', 15_000);
  const { rows } = await pg.client.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_index WHERE indrelid = 'archived'::regclass AND indisunique AND indnkeyatts = 2",
  );
  assert.equal(Number(rows[0]?.n), 1);
  const copy = trackEvent({ messageId: 'archived-copy' });
  for (let i = 0; i < 2; i++) assert.equal((await send(agent, ep.url, copy, 'dev-key')).status, 200);
  const stored = await pg.client.query("SELECT 1 FROM archived WHERE message_id = 'archived-copy'");
  assert.equal(stored.rowCount, 1, 'a copy is still one row');
  await stopCleanly(ep);
});

test('a table whose every INSERT fails while its checks pass (a full disk): said once, tried less often, not called healthy between tries', async () => {
  // Each check passed, the sink came up, said so, and the next INSERT failed: ~15 log lines a second
  // without end, and /health said ok in one sample of five while no event could be stored.
  const ep = await pg.endpoint('filled');
  await waitFor(ep.output, /PostgreSQL stores events/);
  assert.equal(await status(ep), 200);
  await pg.client.query(`CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`);
  await pg.client.query(
    'CREATE TRIGGER full_disk BEFORE INSERT ON filled FOR EACH STATEMENT EXECUTE FUNCTION full_disk()',
  );
  const before = ep.output().length;
  let healthy = 0;
  let samples = 0;
  for (const until = Date.now() + 4_000; Date.now() < until; samples++) {
    assert.notEqual(await status(ep), 200);
    if ((await health(ep)) === 200) healthy++;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const said = ep.output().slice(before);
  assert.ok((said.match(/cannot store events/g) ?? []).length <= 2, said);
  assert.ok((said.match(/PostgreSQL stores events/g) ?? []).length <= 1, said);
  assert.ok(healthy * 10 <= samples, `/health said ok in ${healthy} of ${samples} samples`);
  await pg.client.query('DROP TRIGGER full_disk ON filled');
  await eventually(async () => (await status(ep)) === 200, 'events stored again', 15_000);
  await stopCleanly(ep);
});

test('a full disk with no events coming: the check that passes after it says nothing, and the event stored after it says so', async () => {
  // A check passes on a full disk: only an event stored tells that INSERTs succeed again.
  const ep = await pg.endpoint('filled_quiet');
  await waitFor(ep.output, /PostgreSQL stores events/);
  await pg.client.query(`CREATE FUNCTION full_disk_quiet() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`);
  await pg.client.query(
    'CREATE TRIGGER full_disk BEFORE INSERT ON filled_quiet FOR EACH STATEMENT EXECUTE FUNCTION full_disk_quiet()',
  );
  const lastSaid = () => [...ep.output().matchAll(/PostgreSQL (cannot store|stores) events/g)].at(-1)?.[1];
  assert.equal(await status(ep), 503);
  await eventually(async () => lastSaid() === 'cannot store', 'the outage said');
  await new Promise((resolve) => setTimeout(resolve, 12_000)); // past the check every 10 s
  assert.equal(lastSaid(), 'cannot store', ep.output());
  await pg.client.query('DROP TRIGGER full_disk ON filled_quiet');
  await eventually(async () => (await status(ep)) === 200, 'events stored again', 15_000);
  assert.equal(lastSaid(), 'stores');
  await stopCleanly(ep);
});
