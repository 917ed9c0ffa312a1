// The PostgreSQL sink when things fail, against a real PostgreSQL server: the endpoint killed under
// load, PostgreSQL stopped and started under load, and PostgreSQL down when the endpoint starts. In
// every case each event answered 200 is a row, and nothing else than 200 or a retryable 503 is answered.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { test } from 'node:test';
import pg from 'pg';
import { segmentHeaders, trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { countdown, eventually, gate, waitFor, within } from '../helpers-wait.ts';
import { type Answer, type Endpoint, health, load, send, stopCleanly } from './harness.ts';
import { holdInserts, inOneGroup, withPostgres } from './postgres-harness.ts';

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

/** `statements` on a connection of their own: the file's client is ended when a test stops PostgreSQL. */
async function execute(...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: postgres.server.url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
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

/** POSTs `body` to `path` of the endpoint; its status. */
function post(ep: Endpoint, path: string, body: unknown): Promise<number> {
  const bytes = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const headers = { ...segmentHeaders('dev-key'), 'content-length': String(bytes.length) };
    const req = request(new URL(path, ep.url), {
      method: 'POST',
      ca: testCert().cert,
      servername: 'localhost',
      headers,
    });
    req.on('response', (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.end(bytes);
  });
}

test('an INSERT that meets another transaction on the same events takes their rows in one order: no deadlock, 200', async () => {
  // Two instances given the same events in different orders (or a partner's own transaction) each held a
  // row the other needed: PostgreSQL aborted one INSERT (40P01), and its group was answered 503.
  const ep = await endpoint('crossing');
  assert.equal(await post(ep, '/', trackEvent({ messageId: 'crossing-0' })), 200);
  // A client each: the one holding crossing-1, the one taking the sink's INSERTs, and one watching
  // (the file's shared client may be gone with an earlier test's restart of PostgreSQL).
  const [holder, filler, watcher] = [1, 2, 3].map(() => new pg.Client(postgres.server.url)) as [
    pg.Client,
    pg.Client,
    pg.Client,
  ];
  await Promise.all([holder.connect(), filler.connect(), watcher.connect()]);
  try {
    const { rows } = await holder.query<{ source: string }>('SELECT source FROM crossing LIMIT 1');
    const insert = (client: pg.Client, id: string) =>
      client.query(
        `INSERT INTO crossing (received_at, source, message_id, type, settings, event)
         VALUES (now(), $1, $2, 'track', '{}', '{}') ON CONFLICT DO NOTHING`,
        [rows[0]?.source, id],
      );
    const waitingInserts = async () => {
      const found = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO "crossing" (received_at%'`,
      );
      return found.rows[0]?.n ?? 0;
    };
    const untilWaiting = async (n: number) => {
      for (let tries = 0; (await waitingInserts()) < n; tries++) {
        assert.ok(tries < 500, `${n} of the endpoint's INSERTs waiting on a lock`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The holder has crossing-1; the endpoint's session finds the deadlock first (1 s by default), so
    // that its INSERT is the one PostgreSQL would abort.
    await holder.query('BEGIN');
    await holder.query("SET LOCAL deadlock_timeout = '30s'");
    await insert(holder, 'crossing-1');
    // Four single events held by the filler take the sink's four INSERTs at once, so that the batch's
    // two events wait in its queue and go out together, as one INSERT, once the filler commits.
    await filler.query('BEGIN');
    const fillers = ['a', 'b', 'c', 'd'].map((n) => `crossing-${n}`);
    for (const id of fillers) await insert(filler, id);
    const singles = fillers.map((id) => post(ep, '/', trackEvent({ messageId: id })));
    await untilWaiting(4);
    const batch = post(ep, '/v1/batch', {
      batch: [trackEvent({ messageId: 'crossing-2' }), trackEvent({ messageId: 'crossing-1' })],
    });
    await new Promise((resolve) => setTimeout(resolve, 100)); // the batch's events reach the queue
    await filler.query('COMMIT');
    assert.deepEqual(await Promise.all(singles), [200, 200, 200, 200]);
    await untilWaiting(1); // the batch's INSERT, on crossing-1
    await insert(holder, 'crossing-2');
    await holder.query('COMMIT');
    assert.equal(await batch, 200);
  } finally {
    await Promise.all([holder.end(), filler.end(), watcher.end()]);
  }
  const ids = [...(await storedIds('crossing'))].sort();
  assert.deepEqual(ids, [
    'crossing-0',
    'crossing-1',
    'crossing-2',
    'crossing-a',
    'crossing-b',
    'crossing-c',
    'crossing-d',
  ]);
  await stopCleanly(ep);
});

test('an INSERT that keeps losing conflicts is answered 503 after a few tries, and SIGTERM still drains', async () => {
  // A partner's trigger (or a workload that always wins) aborts the INSERT of one event with 40001
  // every time. Its group went back to the queue at once, for good: a hot loop of INSERTs and log lines
  // with no traffic at all, every new event merged into the group and lost to the handler's timeout,
  // and a SIGTERM whose drain waited for the queue to empty, which it never did.
  const setUp = new pg.Client(postgres.server.url);
  await setUp.connect();
  try {
    await setUp.query(`CREATE TABLE conflicted (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at timestamptz NOT NULL,
      source text NOT NULL, message_id text, type text NOT NULL, settings jsonb NOT NULL, event jsonb NOT NULL)`);
    await setUp.query('CREATE UNIQUE INDEX ON conflicted (source, message_id)');
    await setUp.query(`CREATE FUNCTION conflicted_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.message_id = 'always-loses' THEN
          RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
        END IF;
        RETURN NEW;
      END $$`);
    await setUp.query(`CREATE TRIGGER conflicted_refuse BEFORE INSERT ON conflicted
      FOR EACH ROW EXECUTE FUNCTION conflicted_refuse()`);
  } finally {
    await setUp.end();
  }
  const ep = await endpoint('conflicted');
  const started = Date.now();
  assert.equal(await post(ep, '/', trackEvent({ messageId: 'always-loses' })), 503);
  assert.ok(
    Date.now() - started < 4_000,
    `answered before the handler's timeout: ${Date.now() - started} ms`,
  );
  // In one INSERT with others: only the event that keeps losing is answered 503.
  const events = ['wins-1', 'always-loses', 'wins-2'].map((messageId) => trackEvent({ messageId }));
  const answers = await inOneGroup(postgres, ep, 'conflicted', events);
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 503, 200],
  );
  const stored = [...(await storedIds('conflicted'))].filter((id) => !id.includes('filler')).sort();
  assert.deepEqual(stored, ['wins-1', 'wins-2']);
  const tries = () => ep.output().match(/conflict with another transaction/g)?.length ?? 0;
  const before = tries();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(tries(), before, 'no INSERT goes on being sent with no event waiting');
  // SIGTERM while it is being tried again: the drain waits for its 503, no longer.
  const last = post(ep, '/', trackEvent({ messageId: 'always-loses' }));
  await new Promise((resolve) => setTimeout(resolve, 30));
  ep.child.kill('SIGTERM');
  assert.equal(await last, 503);
  assert.equal(await ep.exit, 0, ep.output());
});

test('PostgreSQL slow with large events: what waits for an INSERT is bounded in bytes, past it 503 SEG_OVERLOADED', async () => {
  // Counted in events only (10,000), large events waiting for a slow database took the endpoint past
  // Node's heap (4 GB at 400 senders of 500 KB), and it died: every connection dropped.
  // The sink's four INSERTs are held by a table lock until the bound answers, then let go. Held past the
  // sink's 4 s statement timeout they fail, and every event is a 503 SEG_STORE_UNAVAILABLE, nothing said
  // of the bound: so the events are sent first, all but their last byte, and what is left to do while
  // the INSERTs wait is to read and parse them (~0.4 s on a loaded core), not to send 47 MiB. (Held by a
  // 2.5 s sleep in a trigger instead, a busy machine did not always get enough events in before the
  // INSERTs ended, and the run was tried up to three times.)
  const table = 'slow_large';
  const ep = await endpoint(table);
  await waitFor(ep.output, /PostgreSQL stores events/);
  const [holder, watcher] = [new pg.Client(postgres.server.url), new pg.Client(postgres.server.url)];
  await Promise.all([holder.connect(), watcher.connect()]);
  const agent = new Agent({ keepAlive: true, ca: testCert().cert });
  try {
    const LARGE = 120; // of 400 KiB: 47 MiB, past the 32 MiB bound
    const padding = 'x'.repeat(400 * 1024);
    const ends = gate();
    const written = countdown(LARGE);
    const held = { lastByte: ends.opened, written: written.hit };
    const large = Array.from({ length: LARGE }, (_, n) =>
      send(
        agent,
        ep.url,
        trackEvent({ messageId: `large-${n}`, properties: { padding } }),
        'dev-key',
        {},
        held,
      ),
    );
    await within(written.reached, 15_000, 'every large body written but its last byte');
    const fillers = await holdInserts(holder, watcher, agent, ep, table);
    ends.open();
    const overloaded = new Promise<void>((resolve) => {
      for (const answer of large) void answer.then((a) => a.code === 'SEG_OVERLOADED' && resolve());
    });
    await Promise.race([overloaded, Promise.all(large)]);
    await holder.query('COMMIT');
    const answers = [...(await Promise.all(fillers)), ...(await Promise.all(large))];
    const codes = answers.map((a) => (a.status === 200 ? '200' : `${a.status} ${a.code}`));
    assert.ok(codes.includes('503 SEG_OVERLOADED'), codes.join(', '));
    assert.ok(
      codes.every((code) => /^(?:200|503 SEG_(?:OVERLOADED|HANDLER_TIMEOUT))$/.test(code)),
      codes.join(', '),
    );
    const acknowledged = answers.filter((a) => a.status === 200).map((a) => a.id);
    const stored = await storedIds(table);
    assert.deepEqual(
      acknowledged.filter((id) => !stored.has(id)),
      [],
      'every event answered 200 is a row',
    );
    let sent = 0;
    const storedAfter = async () =>
      (await send(agent, ep.url, trackEvent({ messageId: `after-${sent++}` }))).status === 200;
    await eventually(storedAfter, 'an event stored after the pause', 15_000);
  } finally {
    agent.destroy();
    await Promise.all([holder.end(), watcher.end()]);
    await stopCleanly(ep);
  }
});

test('the log says each outage and each recovery, and never ends on "stores events" while none can be stored', async () => {
  // Said when a check passed, "stores events" was the last line of an outage that followed at once, and
  // the outage itself went unsaid: on a quiet endpoint, for as long as it lasted.
  const ep = await endpoint('said');
  await waitFor(ep.output, /PostgreSQL stores events/);
  const lastSaid = () => [...ep.output().matchAll(/PostgreSQL (cannot store|stores) events/g)].at(-1)?.[1];
  let sent = 0;
  const one = () => post(ep, '/', trackEvent({ messageId: `said-${sent++}` }));
  assert.equal(await one(), 200);
  const outage = async () => {
    await postgres.server.stop();
    try {
      assert.equal(await one(), 503);
      await eventually(async () => lastSaid() === 'cannot store', 'the outage said last');
    } finally {
      await postgres.server.start();
    }
  };
  const upAgain = () => eventually(async () => (await health(ep)) === 200, 'up again', 15_000);
  await outage();
  await upAgain();
  await outage(); // up again, nothing stored since: not yet said to store events
  await eventually(async () => (await one()) === 200, 'events stored again', 15_000);
  await eventually(async () => lastSaid() === 'stores', 'the recovery said last');
  await outage(); // right after an event was stored: said again
  await upAgain();
  await stopCleanly(ep);
});

test('PostgreSQL stopped and started with no event coming: each said within the check every 10 s, and /health follows', async () => {
  // No INSERT is there to meet the outage: the check every 10 s has to say it, and /health with it.
  const ep = await endpoint('quiet');
  await waitFor(ep.output, /PostgreSQL stores events/);
  const lastSaid = () => [...ep.output().matchAll(/PostgreSQL (cannot store|stores) events/g)].at(-1)?.[1];
  await postgres.server.stop();
  try {
    await eventually(async () => lastSaid() === 'cannot store', 'the outage said', 15_000);
    assert.equal(await health(ep), 503);
  } finally {
    await postgres.server.start();
  }
  await eventually(async () => lastSaid() === 'stores', 'the recovery said', 15_000);
  assert.equal(await health(ep), 200);
  assert.equal(await post(ep, '/', trackEvent({ messageId: 'quiet-0' })), 200);
  await stopCleanly(ep);
});

test('a full disk, then PostgreSQL restarted with the disk still full: never said to store events until one is', async () => {
  // A restart leaves a disk full: the check that passes after it tells nothing of the INSERTs, and the
  // last line says why /health is ok while no event can be stored.
  const ep = await endpoint('refilled');
  await waitFor(ep.output, /PostgreSQL stores events/);
  await execute(
    `CREATE FUNCTION refilled_full() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`,
    'CREATE TRIGGER full_disk BEFORE INSERT ON refilled FOR EACH STATEMENT EXECUTE FUNCTION refilled_full()',
  );
  const said = /PostgreSQL (cannot store|stores) events|PostgreSQL (passes) its checks again/g;
  const lastSaid = () => {
    const last = [...ep.output().matchAll(said)].at(-1);
    return last?.[1] ?? last?.[2];
  };
  assert.equal(await post(ep, '/', trackEvent({ messageId: 'refilled-0' })), 503);
  await eventually(async () => lastSaid() === 'passes', 'the full disk said, then the checks passing');
  await postgres.server.stop();
  try {
    await waitFor(ep.output, /ECONNREFUSED[^\n]*cannot store events/, 15_000);
  } finally {
    await postgres.server.start();
  }
  await eventually(async () => (await health(ep)) === 200, 'checked again', 15_000);
  await new Promise((resolve) => setTimeout(resolve, 11_000)); // and the check every 10 s
  assert.equal(lastSaid(), 'passes', ep.output());
  await execute('DROP TRIGGER full_disk ON refilled');
  await eventually(
    async () => (await post(ep, '/', trackEvent({ messageId: 'refilled-1' }))) === 200,
    'stored',
  );
  assert.equal(lastSaid(), 'stores');
  await stopCleanly(ep);
});
