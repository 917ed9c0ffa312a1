// The PostgreSQL sink against a database set up by someone else: a table whose columns or unique index
// are not what the sink needs (no event is acknowledged and then lost, and none is refused for good, a
// 400 Segment never retries, for the table's fault; the log says what is wrong), and a role with room
// for fewer connections than the sink's pool opens, for good or for a while.
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { waitFor } from '../helpers-wait.ts';
import { type Answer, type Endpoint, health, load, send, stopCleanly } from './harness.ts';
import { inOneGroup, withPostgres } from './postgres-harness.ts';

const pg = withPostgres('pg-schema');

/** Sessions PostgreSQL has counted on the test's database: each connection made to it. */
async function sessions(): Promise<number> {
  const { rows } = await pg.client.query<{ n: string }>(
    'SELECT sessions AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return Number(rows[0]?.n);
}

const columns = (source = 'text') =>
  `(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at timestamptz NOT NULL,
    source ${source} NOT NULL, message_id text, type text NOT NULL, settings jsonb NOT NULL, event jsonb NOT NULL)`;

/** `count` events made by `event`, sent all at once: the sink groups what comes while it INSERTs. */
async function atOnce(
  ep: Endpoint,
  count: number,
  event: (n: number) => { messageId: string },
): Promise<Answer[]> {
  const agent = new Agent({ keepAlive: true, ca: testCert().cert });
  try {
    return await Promise.all(
      Array.from({ length: count }, (_, n) => send(agent, ep.url, event(n), 'dev-key')),
    );
  } finally {
    agent.destroy();
  }
}

/** `name` as the sink makes it: its columns and its unique index on (source, message_id). */
async function eventsTable(name: string): Promise<void> {
  await pg.client.query(`CREATE TABLE ${name} ${columns()}`);
  await pg.client.query(`CREATE UNIQUE INDEX ON ${name} (source, message_id)`);
}

/** An endpoint on a table made as the sink makes it, as a role that may open `limit` connections at most. */
async function asLimitedRole(name: string, limit: number): Promise<Endpoint> {
  await eventsTable(name);
  await pg.client.query(`CREATE ROLE ${name} LOGIN CONNECTION LIMIT ${limit}`);
  await pg.client.query(`GRANT INSERT, SELECT ON ${name} TO ${name}`);
  return pg.endpoint(name, [], pg.server.url.replace('postgres://postgres@', `postgres://${name}@`));
}

/** An endpoint on `table` takes an event and its copy (200 both) and stores it once; then stopped. */
async function storesCopiesOnce(table: string): Promise<void> {
  const ep = await pg.endpoint(table);
  const events = [trackEvent({ messageId: `${table}-1` }), trackEvent({ messageId: `${table}-1` })];
  assert.deepEqual(await statuses(ep, events), [200, 200]);
  const stored = await pg.client.query(`SELECT message_id FROM ${table}`);
  assert.deepEqual(stored.rows, [{ message_id: `${table}-1` }]);
  await stopCleanly(ep);
}

/** SIGTERM to an endpoint whose store is unavailable (its /health says so): a clean exit all the same. */
async function stop(ep: Endpoint): Promise<void> {
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exit, 0, ep.output());
}

/**
 * An endpoint on `table` (as the role or database of `url`) that PostgreSQL could not take events for:
 * the log says why (`reason`), and an event is answered 503, which Segment retries.
 */
async function refusedAtStart(table: string, reason: RegExp, url?: string): Promise<Endpoint> {
  const ep = await pg.endpoint(table, [], url);
  await waitFor(ep.output, reason, 10_000);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: `${table}-1`, event: '€uro' })]), [503]);
  return ep;
}

/** The statuses of `events`, each on a connection of the same agent. */
async function statuses(ep: Endpoint, events: Array<{ messageId: string }>): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, ca: testCert().cert });
  try {
    const answers = [];
    for (const event of events) answers.push((await send(agent, ep.url, event, 'dev-key')).status);
    return answers;
  } finally {
    agent.destroy();
  }
}

test('a column that cannot take what is written: 503 (retried), never a 400, and the log names it', async () => {
  // The fingerprint in `source` is 12 characters: varchar(8) refuses every row (SQLSTATE 22001).
  await pg.client.query(`CREATE TABLE narrow ${columns('varchar(8)')}`);
  await pg.client.query('CREATE UNIQUE INDEX ON narrow (source, message_id)');
  const ep = await pg.endpoint('narrow');
  await waitFor(ep.output, /column source is character varying\(8\), not text/, 10_000);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'narrow-1' })]), [503]);
  await stop(ep);
});

test('a unique index with NULLS NOT DISTINCT: events without a messageId would be dropped, so none is taken', async (t) => {
  const { rows } = await pg.client.query<{ v: number }>(
    "SELECT current_setting('server_version_num')::int AS v",
  );
  if ((rows[0]?.v ?? 0) < 150000) return t.skip('NULLS NOT DISTINCT needs PostgreSQL 15');
  await pg.client.query(`CREATE TABLE nulls_equal ${columns()}`);
  await pg.client.query('CREATE UNIQUE INDEX ON nulls_equal (source, message_id) NULLS NOT DISTINCT');
  const ep = await pg.endpoint('nulls_equal');
  await waitFor(ep.output, /NULLS NOT DISTINCT/, 10_000);
  const anonymous = () => ({ ...trackEvent(), messageId: undefined }) as unknown as { messageId: string };
  assert.deepEqual(await statuses(ep, [anonymous(), anonymous()]), [503, 503]);
  await stop(ep);
});

test('a partial unique index is not the one the sink needs: it makes its own, and events are stored', async () => {
  await pg.client.query(`CREATE TABLE partial ${columns()}`);
  await pg.client.query("CREATE UNIQUE INDEX ON partial (source, message_id) WHERE type = 'track'");
  await storesCopiesOnce('partial');
});

test("an index of another table under the name the sink gives its own: the sink's is made under another", async () => {
  // A table archived by a rename keeps its index's name: a new one under the same name was never made.
  await pg.client.query(`CREATE TABLE archive_of_named ${columns()}`);
  await pg.client.query(
    'CREATE UNIQUE INDEX named_source_message_id ON archive_of_named (source, message_id)',
  );
  await storesCopiesOnce('named');
});

test("a partial unique index of the table under the sink's index name: the sink makes its own beside it", async () => {
  await pg.client.query(`CREATE TABLE pnamed ${columns()}`);
  await pg.client.query(
    "CREATE UNIQUE INDEX pnamed_source_message_id ON pnamed (source, message_id) WHERE type = 'track'",
  );
  await storesCopiesOnce('pnamed');
});

test('an index of the table under the name, unique but on other columns: the sink makes its own beside it', async () => {
  await pg.client.query(`CREATE TABLE othercols ${columns()}`);
  await pg.client.query('CREATE UNIQUE INDEX othercols_source_message_id ON othercols (message_id, type)');
  await storesCopiesOnce('othercols');
});

test('a table archived by renames month after month: its index takes the next of _2 to _99', async () => {
  const base = 'monthly_source_message_id';
  for (const name of [base, ...Array.from({ length: 8 }, (_, n) => `${base}_${n + 2}`)]) {
    await pg.client.query(`CREATE SEQUENCE ${name}`);
  }
  await storesCopiesOnce('monthly');
  const { rows } = await pg.client.query(
    "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'monthly'::regclass AND indisunique AND NOT indisprimary",
  );
  assert.deepEqual(rows, [{ name: `${base}_10` }]);
});

test('every name the sink could give its index taken by other relations: refused, and the log says what to do', async () => {
  const base = 'crowded_source_message_id';
  for (const name of [base, ...Array.from({ length: 98 }, (_, n) => `${base}_${n + 2}`)]) {
    await pg.client.query(`CREATE SEQUENCE ${name}`);
  }
  const ep = await pg.endpoint('crowded');
  await waitFor(
    ep.output,
    /crowded_source_message_id and _2 to _99 are all taken by other relations .*rename/,
    10_000,
  );
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'crowded-1' })]), [503]);
  await stop(ep);
});

test('a role with room for fewer connections than the pool opens: the INSERTs share them, all 200', async () => {
  // What max_connections or a role's CONNECTION LIMIT does: a connection past it is refused (53300).
  // One refused used to put the whole sink down: ~97 % of events answered 503 while two connections worked.
  const ep = await asLimitedRole('few_connections', 2);
  const answers = await load({
    url: ep.url,
    connections: 32,
    maxRequests: 2_000,
    event: (n) => trackEvent({ messageId: `few-${n}` }),
  });
  const statuses = answers.reduce<Record<number, number>>((counts, a) => {
    counts[a.status] = (counts[a.status] ?? 0) + 1;
    return counts;
  }, {});
  assert.deepEqual(statuses, { 200: 2_000 });
  const { rows } = await pg.client.query<{ n: string }>('SELECT count(*) AS n FROM few_connections');
  assert.equal(Number(rows[0]?.n), 2_000);
  await stopCleanly(ep);
});

test('room that comes back is used again: once the role may open more connections, the sink does', async () => {
  // A CONNECTION LIMIT reached for a while (another deploy's connections, an operator's change): the
  // sink works with fewer INSERTs at once, and one more is tried now and then, not never again.
  const ep = await asLimitedRole('room_again', 2);
  const event = (n: number) => trackEvent({ messageId: `room-${n}` });
  const first = await load({ url: ep.url, connections: 32, maxRequests: 1_000, event });
  assert.ok(first.every((answer) => answer.status === 200));
  await waitFor(ep.output, /room for fewer connections/);

  await pg.client.query('ALTER ROLE room_again CONNECTION LIMIT -1');
  const connections = async () =>
    Number(
      (
        await pg.client.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'room_again'`,
        )
      ).rows[0]?.n,
    );
  let most = 0;
  let n = 1_000;
  const stopped = Date.now() + 15_000;
  while (most <= 2 && Date.now() < stopped) {
    const until = new Promise<void>((resolve) => setTimeout(resolve, 500));
    const batch = load({ url: ep.url, connections: 32, maxRequests: 1e9, until, event: () => event(n++) });
    await until;
    most = Math.max(most, await connections());
    assert.ok((await batch).every((answer) => answer.status === 200));
  }
  assert.ok(most > 2, `at most ${most} connections at once once the limit was lifted`);
  await waitFor(ep.output, /room for more connections/);
  await stopCleanly(ep);
});

test('a connection refused while the others sit idle: the group waits for one of them, not a 503 and the sink down', async () => {
  // Two INSERTs at once under a CONNECTION LIMIT of 1: the second needs a connection of its own, and it
  // is refused after the first has ended. The connection the first used is idle in the pool by then:
  // the sink is not down (CI once saw a 503 from this in the test above).
  const ep = await asLimitedRole('one_connection', 1);
  const answers: number[] = [];
  for (let round = 0; round < 20; round++) {
    const pair = await atOnce(ep, 2, (n) => trackEvent({ messageId: `one-${round}-${n}` }));
    answers.push(...pair.map((answer) => answer.status));
  }
  assert.deepEqual(answers, Array(40).fill(200), ep.output());
  const { rows } = await pg.client.query<{ n: string }>('SELECT count(*) AS n FROM one_connection');
  assert.equal(Number(rows[0]?.n), 40);
  await stopCleanly(ep);
});

test('a primary key on (source, message_id): events without a messageId could not be stored, so the table is refused', async () => {
  // A primary key makes message_id NOT NULL: every group holding such an event failed whole, good ones with it.
  await pg.client.query(`CREATE TABLE keyed (received_at timestamptz NOT NULL, source text NOT NULL,
    message_id text, type text NOT NULL, settings jsonb NOT NULL, event jsonb NOT NULL,
    PRIMARY KEY (source, message_id))`);
  await stop(await refusedAtStart('keyed', /column message_id is NOT NULL/));
});

test('a column of its own that is NOT NULL without a default: no INSERT of the sink could fill it, so the table is refused', async () => {
  await pg.client.query(`CREATE TABLE extra ${columns().replace(/\)$/, ', tenant text NOT NULL)')}`);
  await pg.client.query('CREATE UNIQUE INDEX ON extra (source, message_id)');
  await stop(await refusedAtStart('extra', /column tenant is NOT NULL without a default/));
});

test('a table of another shape under the name, with no index: the log names the column, not the index it cannot make', async () => {
  // The index was made first, and the log said only `column "source" does not exist`.
  await pg.client.query('CREATE TABLE othershape (id serial, event text)');
  await stop(
    await refusedAtStart('othershape', /table othershape: column received_at is missing, not timestamp/),
  );
});

test('a view under the name: the log says it is a view, not that the role must own it', async () => {
  await pg.client.query(`CREATE TABLE behind ${columns()}`);
  await pg.client.query('CREATE VIEW inview AS SELECT * FROM behind');
  await stop(await refusedAtStart('inview', /inview is a view, not a table/));
});

test('a table of another role with no index: the log says to make the index as its owner, and how', async () => {
  await pg.client.query(`CREATE TABLE notmine ${columns()}`);
  await pg.client.query('CREATE ROLE guest LOGIN');
  await pg.client.query('GRANT INSERT, SELECT ON notmine TO guest');
  const url = pg.server.url.replace(/\/\/[^@]*@/, '//guest@');
  const ep = await refusedAtStart(
    'notmine',
    /no unique index on \(source, message_id\), and the role may not make one[^"]*CREATE UNIQUE INDEX ON notmine \(source, message_id\)/,
    url,
  );
  await stop(ep);
});

test('a role that may not INSERT: refused at start and kept unavailable, not taken as up again after each failure', async () => {
  await eventsTable('readonly');
  await pg.client.query('CREATE ROLE reader LOGIN');
  await pg.client.query('GRANT SELECT ON readonly TO reader');
  const url = pg.server.url.replace(/\/\/[^@]*@/, '//reader@');
  const ep = await refusedAtStart('readonly', /may not INSERT into readonly/, url);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'readonly-2' })]), [503]);
  assert.doesNotMatch(ep.output(), /PostgreSQL stores events/);
  await stop(ep);
});

test('a role whose sessions PostgreSQL ends while idle (idle_session_timeout): made again as needed, said once', async () => {
  // Each connection closed so was a warning with its stack: 31 lines in 15 s, for nothing lost.
  await eventsTable('idler');
  await pg.client.query('CREATE ROLE idler LOGIN');
  await pg.client.query('GRANT INSERT, SELECT ON idler TO idler');
  await pg.client.query("ALTER ROLE idler SET idle_session_timeout = '150ms'");
  const ep = await pg.endpoint('idler', [], pg.server.url.replace(/\/\/[^@]*@/, '//idler@'));
  for (let n = 0; n < 5; n++) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.deepEqual(await statuses(ep, [trackEvent({ messageId: `idler-${n}` })]), [200]);
  }
  const closed = ep.output().match(/a PostgreSQL connection closed/g) ?? [];
  assert.equal(closed.length, 1, ep.output());
  await stopCleanly(ep);
});

test('a role that may INSERT but not SELECT: refused at start, not an event at a time', async () => {
  // ON CONFLICT needs SELECT: every INSERT failed with "permission denied" while /health said ok
  // between the failures, so a load balancer kept sending events to a store that took none.
  await eventsTable('insertonly');
  await pg.client.query('CREATE ROLE inserter LOGIN');
  await pg.client.query('GRANT INSERT ON insertonly TO inserter');
  const url = pg.server.url.replace(/\/\/[^@]*@/, '//inserter@');
  const ep = await refusedAtStart('insertonly', /may not SELECT from insertonly/, url);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'insertonly-2' })]), [503]);
  assert.doesNotMatch(ep.output(), /PostgreSQL stores events/);
  await stop(ep);
});

test('an UNLOGGED table: refused at start, for PostgreSQL empties it after a crash', async () => {
  await pg.client.query(`CREATE UNLOGGED TABLE unlogged ${columns()}`);
  await pg.client.query('CREATE UNIQUE INDEX ON unlogged (source, message_id)');
  const ep = await refusedAtStart('unlogged', /table unlogged is UNLOGGED/);
  await stop(ep);
});

test('a partitioned table with an UNLOGGED partition: refused at start, as an UNLOGGED table is', async () => {
  // Only the parent's persistence was read: every event answered 200 went to the UNLOGGED partition,
  // and a crash of PostgreSQL emptied it.
  await pg.client.query(`CREATE TABLE parted ${columns().replace('id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ', '')}
    PARTITION BY HASH (source)`);
  await pg.client.query('CREATE TABLE parted_0 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)');
  await pg.client.query(
    'CREATE UNLOGGED TABLE parted_1 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)',
  );
  await pg.client.query('CREATE UNIQUE INDEX ON parted (source, message_id)');
  const ep = await refusedAtStart('parted', /partition parted_1 of table parted is UNLOGGED/);
  await stop(ep);
});

test('an UNLOGGED partition being detached (a DETACH CONCURRENTLY cut short): no event goes to it, so the table is taken', async () => {
  await pg.client.query(`CREATE TABLE leaving ${columns().replace('id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ', '')}
    PARTITION BY LIST (source)`);
  await pg.client.query('CREATE TABLE leaving_rest PARTITION OF leaving DEFAULT');
  await pg.client.query("CREATE UNLOGGED TABLE leaving_old PARTITION OF leaving FOR VALUES IN ('gone')");
  await pg.client.query('CREATE UNIQUE INDEX ON leaving (source, message_id)');
  // What a DETACH ... CONCURRENTLY leaves when cancelled between its two transactions.
  await pg.client.query(
    "UPDATE pg_inherits SET inhdetachpending = true WHERE inhrelid = 'leaving_old'::regclass",
  );
  await storesCopiesOnce('leaving');
});

test("an INVALID unique index under the sink's index name (a build that failed): the sink makes its own beside it", async () => {
  // Counted as the index ON CONFLICT needs, which PostgreSQL does not use: every event 503, for good.
  await pg.client.query(`CREATE TABLE invalid ${columns()}`);
  const row = `('2026-01-01', 's', 'm', 'track', '{}', '{}')`;
  await pg.client.query(
    `INSERT INTO invalid (received_at, source, message_id, type, settings, event) VALUES ${row}, ${row}`,
  );
  await assert.rejects(
    pg.client.query(
      'CREATE UNIQUE INDEX CONCURRENTLY invalid_source_message_id ON invalid (source, message_id)',
    ),
    /could not create unique index/,
  );
  await pg.client.query('DELETE FROM invalid');
  await storesCopiesOnce('invalid');
});

test('a unique index on (source, message_id) with INCLUDE columns serves ON CONFLICT: no second one is made', async () => {
  // Its INCLUDE columns were read as keys: not the sink's, so another index was built beside it, which on
  // a large table outlasts the statement timeout every 10 s, each event 503 though the table works.
  await pg.client.query(`CREATE TABLE included ${columns()}`);
  await pg.client.query('CREATE UNIQUE INDEX included_key ON included (source, message_id) INCLUDE (type)');
  await storesCopiesOnce('included');
  const { rows } = await pg.client.query("SELECT indexname FROM pg_indexes WHERE tablename = 'included'");
  assert.deepEqual(rows.map((row) => row.indexname).sort(), ['included_key', 'included_pkey']);
});

test("an INVALID DEFERRABLE unique index beside the sink's: PostgreSQL does not use it, so the table is taken", async () => {
  await eventsTable('deferred_invalid');
  await pg.client.query(
    'ALTER TABLE deferred_invalid ADD CONSTRAINT deferred_invalid_key UNIQUE (source, message_id) DEFERRABLE',
  );
  await pg.client.query(
    "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'deferred_invalid_key'::regclass",
  );
  await storesCopiesOnce('deferred_invalid');
});

test('a DEFERRABLE unique constraint on (source, message_id): refused at start, for ON CONFLICT cannot use it', async () => {
  await pg.client.query(`CREATE TABLE deferred ${columns()}`);
  await pg.client.query('ALTER TABLE deferred ADD UNIQUE (source, message_id) DEFERRABLE');
  const ep = await refusedAtStart('deferred', /DEFERRABLE/);
  await stop(ep);
});

test('a database whose encoding is not UTF8: refused at start, never a 400 for an event it cannot translate', async () => {
  await pg.client.query(
    "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
  );
  const url = pg.server.url.replace(/\/[^/?]*(\?|$)/, '/latin$1');
  await stop(await refusedAtStart('events', /encoding is LATIN1, not UTF8/, url));
});

test('a session that takes no writes (a standby, default_transaction_read_only): refused at start', async () => {
  await pg.client.query('CREATE ROLE standby_like LOGIN SUPERUSER');
  await pg.client.query('ALTER ROLE standby_like SET default_transaction_read_only = on');
  const url = pg.server.url.replace(/\/\/[^@]*@/, '//standby_like@');
  await stop(await refusedAtStart('events', /PostgreSQL takes no writes here/, url));
});

test('a unique index on (message_id, source), the other order: it serves ON CONFLICT as well, and no second one is made', async () => {
  await pg.client.query(`CREATE TABLE reversed ${columns()}`);
  await pg.client.query('CREATE UNIQUE INDEX reversed_key ON reversed (message_id, source)');
  const ep = await pg.endpoint('reversed');
  const events = [trackEvent({ messageId: 'reversed-1' }), trackEvent({ messageId: 'reversed-1' })];
  assert.deepEqual(await statuses(ep, events), [200, 200]);
  const stored = await pg.client.query('SELECT message_id FROM reversed');
  assert.deepEqual(stored.rows, [{ message_id: 'reversed-1' }]);
  const indexes = await pg.client.query<{ name: string }>(
    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'reversed' AND indexname <> 'reversed_pkey' ORDER BY 1",
  );
  assert.deepEqual(indexes.rows, [{ name: 'reversed_key' }]);
  await stopCleanly(ep);
});

test("a row the table's own CHECK refuses: that event 503 (retried), the others stored, the sink still up", async () => {
  // A constraint of the partner's own: the refusal is the row's, not an outage. It was taken for one:
  // the event's whole group answered 503, /health unavailable and the next events 503 too.
  await eventsTable('checked');
  await pg.client.query(`ALTER TABLE checked ADD CHECK (event->>'event' <> 'Forbidden')`);
  const ep = await pg.endpoint('checked');
  const agent = new Agent({ keepAlive: true, ca: testCert().cert });
  try {
    // In one INSERT: the refused event must not take the others of its group with it.
    const events = ['Allowed', 'Forbidden', 'Also Allowed'].map((event, n) =>
      trackEvent({ messageId: `checked-${n}`, event }),
    );
    const answers = await inOneGroup(pg, ep, 'checked', events);
    assert.deepEqual(
      answers.map((a) => [a.status, a.code]),
      [
        [200, undefined],
        [503, 'SEG_STORE_UNAVAILABLE'],
        [200, undefined],
      ],
    );
    assert.equal(await health(ep), 200);
    assert.equal((await send(agent, ep.url, trackEvent({ messageId: 'checked-3' }), 'dev-key')).status, 200);
  } finally {
    agent.destroy();
  }
  const { rows } = await pg.client.query(
    "SELECT message_id FROM checked WHERE message_id NOT LIKE '%filler%' ORDER BY message_id",
  );
  assert.deepEqual(
    rows.map((r) => r.message_id),
    ['checked-0', 'checked-2', 'checked-3'],
  );
  await stopCleanly(ep);
});

test('a table that refuses every row (a trigger of its own): an outage said once, not an INSERT and a log line per event', async () => {
  // Each event of a refused group is tried apart, to store the others: a group of N was 2N - 1 INSERTs,
  // one after the other, and N error lines, for every group, while the table refused them all.
  await eventsTable('closed');
  const ep = await pg.endpoint('closed');
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'closed-before' })]), [200]);
  await pg.client.query('CREATE SEQUENCE closed_inserts'); // counts the INSERTs refused: not rolled back
  await pg.client.query(`CREATE FUNCTION closed_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM nextval('closed_inserts');
      RAISE EXCEPTION 'closed for maintenance';
    END $$`);
  await pg.client.query(
    'CREATE TRIGGER refuse BEFORE INSERT ON closed FOR EACH ROW EXECUTE FUNCTION closed_refuse()',
  );
  const answers = await atOnce(ep, 200, (n) => trackEvent({ messageId: `closed-${n}` }));
  assert.deepEqual(
    new Set(answers.map((a) => `${a.status} ${a.code}`)),
    new Set(['503 SEG_STORE_UNAVAILABLE']),
  );
  const { rows } = await pg.client.query<{ n: string }>('SELECT last_value AS n FROM closed_inserts');
  assert.ok(Number(rows[0]?.n) < 100, `${rows[0]?.n} INSERTs refused for 200 events`);
  assert.match(ep.output(), /the table refuses every row/);
  const refusedLines = ep.output().match(/the table refused events/g)?.length ?? 0;
  assert.ok(refusedLines <= 3, `${refusedLines} lines for single refusals`);
  assert.equal(await health(ep), 503);
  // Tried again with events 5 s later, still closed: the first refused one takes it down again.
  await waitFor(ep.output, /the table is tried again with events/, 10_000);
  // With no event coming, the check every 10 s passes (a trigger refuses no SELECT): it tells nothing.
  await new Promise((resolve) => setTimeout(resolve, 11_000));
  assert.equal(ep.output().match(/PostgreSQL stores events/g)?.length, 1, ep.output());
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'closed-retry' })]), [503]);
  await waitFor(ep.output, /refuses every row[\s\S]*refuses every row/, 5_000);
  assert.equal(await health(ep), 503);
  assert.equal(ep.output().match(/PostgreSQL stores events/g)?.length, 1, ep.output());
  // The maintenance leaves a column no INSERT of the sink can fill: the next try says so.
  await pg.client.query(`ALTER TABLE closed ADD COLUMN tenant text NOT NULL DEFAULT 'x'`);
  await pg.client.query('ALTER TABLE closed ALTER COLUMN tenant DROP DEFAULT');
  await waitFor(ep.output, /column tenant is NOT NULL without a default/, 10_000);
  // Open again: stored once the sink tries again.
  await pg.client.query('ALTER TABLE closed DROP COLUMN tenant');
  await pg.client.query('DROP TRIGGER refuse ON closed');
  for (const until = Date.now() + 15_000; (await health(ep)) !== 200; ) {
    assert.ok(Date.now() < until, 'the sink never tried the table again');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'closed-after' })]), [200]);
  await stopCleanly(ep);
});

test("one customer's events the table refuses, many in a row: not an outage for the others", async () => {
  // A CHECK of the partner's own that one source's events all fail (or a batch of them, sent again on
  // each 503): counted in a row, they took the sink down for every customer, whose events then got 503.
  await eventsTable('picky');
  await pg.client.query(`ALTER TABLE picky ADD CHECK (event->>'event' <> 'Bad')`);
  const ep = await pg.endpoint('picky');
  const bad = Array.from({ length: 60 }, (_, n) => trackEvent({ messageId: `picky-bad-${n}`, event: 'Bad' }));
  const sessionsBefore = await sessions();
  const answers = await inOneGroup(pg, ep, 'picky', bad);
  assert.deepEqual(
    new Set(answers.map((a) => `${a.status} ${a.code}`)),
    new Set(['503 SEG_STORE_UNAVAILABLE']),
  );
  // The group and its halves, down to each event, are ~120 INSERTs the table refuses. A refusal leaves
  // the connection good: each one closed and opened again (a backend forked for it) made each ~60 ms
  // here, long enough for the last events to time out, and every customer's INSERTs waited meanwhile.
  // Sessions counted: the sink's pool (5 at most) and inOneGroup's two clients.
  const opened = (await sessions()) - sessionsBefore;
  assert.ok(opened <= 7, `${opened} sessions opened for 60 refused events`);
  assert.equal(await health(ep), 200);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'picky-good' })]), [200]);
  assert.doesNotMatch(ep.output(), /refuses every row/);
  const { rows } = await pg.client.query("SELECT message_id FROM picky WHERE message_id NOT LIKE '%filler%'");
  assert.deepEqual(rows, [{ message_id: 'picky-good' }]);
  await stopCleanly(ep);
});

test('a rule made since that refuses the events of the last row stored: not an outage for the others', async () => {
  // The table is asked with a copy of the last row it stored: one customer's event. A rule against that
  // customer's events (a ban, a quota) refuses the copy too, which said the table refuses every row.
  await eventsTable('banned');
  const ep = await pg.endpoint('banned');
  const blocked = (n: number | string) => trackEvent({ messageId: `banned-${n}`, event: 'Blocked' });
  assert.deepEqual(await statuses(ep, [blocked('before')]), [200]);
  await pg.client.query(`ALTER TABLE banned ADD CHECK (event->>'event' <> 'Blocked') NOT VALID`);
  const refused = await statuses(
    ep,
    Array.from({ length: 40 }, (_, n) => blocked(n)),
  );
  assert.deepEqual(new Set(refused), new Set([503]));
  assert.doesNotMatch(ep.output(), /refuses every row/);
  assert.equal(await health(ep), 200);
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'banned-good' })]), [200]);
  await stopCleanly(ep);
});

test('a table closed by an AFTER trigger: the copy of the last row stored is a new row, so the trigger sees it', async () => {
  // A duplicate of a stored row is skipped before AFTER triggers run: asked with one, such a table took it,
  // and every group was split down to each event, 2N - 1 INSERTs.
  await eventsTable('after_closed');
  const ep = await pg.endpoint('after_closed');
  assert.deepEqual(await statuses(ep, [trackEvent({ messageId: 'after-before' })]), [200]);
  await pg.client.query(`CREATE FUNCTION after_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'closed for maintenance'; END $$`);
  await pg.client.query(
    'CREATE TRIGGER refuse AFTER INSERT ON after_closed FOR EACH ROW EXECUTE FUNCTION after_refuse()',
  );
  const answers = await atOnce(ep, 100, (n) => trackEvent({ messageId: `after-${n}` }));
  assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([503]));
  await waitFor(ep.output, /the table refuses every row/, 5_000);
  assert.equal(await health(ep), 503);
  await stop(ep);
});
