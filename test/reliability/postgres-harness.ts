// What the PostgreSQL sink's tests share: a real server for the file's tests (started before them,
// destroyed after, with whatever endpoints still run), a client on it, and endpoints that store in it.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { eventually } from '../helpers-wait.ts';
import { type PostgresServer, startPostgres } from '../services/postgres.ts';
import { type Answer, cleanup, type Endpoint, fetchText, send, startEndpoint, tlsFlags } from './harness.ts';

export interface WithPostgres {
  readonly dir: string;
  readonly server: PostgresServer;
  readonly client: pg.Client;
  /** The CLI storing in `table`, with the API key `dev-key` (and `extra` flags); stopped after the file. */
  endpoint(table: string, extra?: readonly string[], url?: string): Promise<Endpoint>;
}

export function withPostgres(name: string): WithPostgres {
  const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-${name}-`));
  const endpoints: Endpoint[] = [];
  let server: PostgresServer | undefined;
  let client: pg.Client | undefined;
  before(async () => {
    server = await startPostgres();
    client = new pg.Client({ connectionString: server.url });
    // A test that stops the server ends this connection too: not an error of the test's.
    client.on('error', () => {});
    await client.connect();
  });
  after(async () => {
    await cleanup(dir, endpoints)();
    await client?.end().catch(() => {});
    await server?.destroy();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('PostgreSQL is not started yet');
    return value;
  };
  return {
    dir,
    get server() {
      return started(server);
    },
    get client() {
      return started(client);
    },
    async endpoint(table, extra = [], url = started(server).url) {
      const args = [...tlsFlags(dir), '--api-key', 'dev-key', '--postgres', url, '--postgres-table', table];
      args.push('--metrics-path', '/metrics'); // what inOneGroup watches
      const ep = await startEndpoint([...args, ...extra]);
      endpoints.push(ep);
      return ep;
    },
  };
}

/** Event requests the endpoint is processing, as its /metrics says. */
async function inFlight(ep: Endpoint): Promise<number> {
  const { status, body } = await fetchText(ep, '/metrics');
  const gauge = /^segment_endpoint_in_flight (\d+)$/m.exec(body)?.[1];
  assert.ok(gauge !== undefined, `no in-flight gauge in /metrics (${status})`);
  return Number(gauge);
}

/**
 * The sink's four INSERTs held: `table` locked by `holder` (in a transaction it commits to let them go),
 * four fillers (`<table>-filler-N`, stored once the lock goes) sent, and `watcher` seeing their INSERTs
 * wait on the lock. Events sent from then on queue behind them. The fillers' answers.
 */
export async function holdInserts(
  holder: pg.Client,
  watcher: pg.Client,
  agent: Agent,
  ep: Endpoint,
  table: string,
): Promise<Array<Promise<Answer>>> {
  await holder.query('BEGIN');
  await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  const fillers = [1, 2, 3, 4].map((n) =>
    send(agent, ep.url, { ...trackEvent(), messageId: `${table}-filler-${n}` }, 'dev-key'),
  );
  for (let tries = 0; ; tries++) {
    const { rows } = await watcher.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
      [`INSERT INTO "${table}"%`],
    );
    if ((rows[0]?.n ?? 0) >= 4) return fillers;
    if (tries > 200) throw new Error("the sink's four INSERTs never waited on the lock");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * `events` sent so that the sink INSERTs them as one group: the table locked, its INSERTs taken by
 * fillers (`<table>-filler-N`, stored once the lock goes) waiting on the lock, `events` sent meanwhile
 * queue together, then the lock is let go. Their answers, in order.
 */
export async function inOneGroup(
  postgres: WithPostgres,
  ep: Endpoint,
  table: string,
  events: ReadonlyArray<{ messageId: string }>,
): Promise<Answer[]> {
  // Clients of its own: the file's may be gone with an earlier test's restart of PostgreSQL.
  const [holder, watcher] = [new pg.Client(postgres.server.url), new pg.Client(postgres.server.url)];
  await Promise.all([holder.connect(), watcher.connect()]);
  const agent = new Agent({ keepAlive: true, ca: testCert().cert });
  try {
    const fillers = await holdInserts(holder, watcher, agent, ep, table);
    const answers = Promise.all(events.map((event) => send(agent, ep.url, event, 'dev-key')));
    // Every request taken (a fixed 300 ms was too short for a hundred TLS handshakes on a busy host: the
    // events then came as two groups), within the fillers' handler timeout (4 s: they are 503 then), then
    // a moment for the bodies, sent with their headers, to reach the sink's queue.
    await eventually(
      async () => (await inFlight(ep)) >= fillers.length + events.length,
      'every event in flight before the fillers time out',
      3_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await holder.query('COMMIT');
    for (const filler of await Promise.all(fillers)) assert.equal(filler.status, 200, JSON.stringify(filler));
    return await answers;
  } finally {
    agent.destroy();
    await Promise.all([holder.end(), watcher.end()]);
  }
}

/**
 * `work` while PostgreSQL waits, at each commit that waits for the disk, for a synchronous standby that
 * never comes: such a commit hangs (until the INSERT's timeout), one that does not wait goes through.
 * What shows whether the sink's commits wait for the disk.
 */
/**
 * Sends an event at a time (`send(n)` gives its status) until one is answered 503, within 10 s: an INSERT
 * that waited for the standby past its timeout. Each PostgreSQL backend takes in a reloaded setting at its
 * own pace (the postmaster signals them one by one), so the sink's connection may commit one more event
 * before it has it, answered 200; a sink whose commits do not wait is never answered 503.
 */
export async function answeredWaiting(send: (n: number) => Promise<number>): Promise<void> {
  let n = 0;
  await eventually(async () => (await send(n++)) === 503, 'an INSERT that waits for the standby', 10_000);
}

export async function withUnreachableStandby(
  postgres: WithPostgres,
  work: () => Promise<void>,
): Promise<void> {
  await postgres.client.query("ALTER SYSTEM SET synchronous_standby_names = 'nowhere'");
  try {
    await postgres.client.query('SELECT pg_reload_conf()');
    // Read by each session at its next statement once the server has read it again.
    await eventually(async () => {
      const { rows } = await postgres.client.query<{ names: string }>(
        "SELECT current_setting('synchronous_standby_names') AS names",
      );
      return rows[0]?.names === 'nowhere';
    }, 'the standby named');
    await work();
  } finally {
    await postgres.client.query('ALTER SYSTEM RESET synchronous_standby_names');
    await postgres.client.query('SELECT pg_reload_conf()');
  }
}
