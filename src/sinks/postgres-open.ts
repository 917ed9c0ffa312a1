import type { Logger } from '../log.ts';
import { POSTGRES, serviceAddress } from '../service-url.ts';
import { GROUPS_IN_FLIGHT, PostgresSink } from './postgres.ts';
import type { Sink } from './sink.ts';

// Opening the PostgreSQL sink (--postgres): its pool of connections, and the table (postgres.ts stores).

const STATEMENT_TIMEOUT_MS = 4_000; // below Segment's 5 s: a hung database is a 503 Segment retries
const CONNECT_TIMEOUT_MS = 2_000;
const SAID_CAUSES = 16; // causes of idle connections' ends said in the log in a minute, at most
const SAY_AGAIN_MS = 60_000; // 1 min

/**
 * Opens the pool and creates the table when missing. PostgreSQL unreachable at start does not stop the
 * process: it starts, says so, answers 503 (health `unavailable`) and keeps trying, so that a database
 * that comes up after the endpoint (a VM's boot order) needs no restart.
 */
export async function openPostgresSink(
  config: { readonly url: string; readonly table: string },
  log: Logger,
): Promise<Sink> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: config.url,
    max: GROUPS_IN_FLIGHT + 1, // and one to create the table or check that PostgreSQL is back
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: STATEMENT_TIMEOUT_MS + 500,
    application_name: 'segment-endpoint',
  });
  // An idle connection the server closed (a restart, idle_session_timeout, a pooler's or an
  // administrator's end) is reported here; without a listener it would end the process. The next query
  // takes a new connection. Said once a minute for each cause: a role's idle timeout ends one after another.
  const said = new Map<unknown, number>();
  pool.on('error', (err: Error & { code?: unknown }) => {
    const cause = err.code ?? err.message;
    const now = performance.now();
    for (const [known, at] of said) if (now - at >= SAY_AGAIN_MS) said.delete(known);
    if (said.has(cause) || said.size >= SAID_CAUSES) return;
    said.set(cause, now);
    log.warn(
      { err },
      'a PostgreSQL connection closed (made again as needed; said once a minute for this cause)',
    );
  });
  const where = `events stored in PostgreSQL table ${config.table} on ${serviceAddress(config.url, POSTGRES)}`;
  const sink = new PostgresSink(pool, config.table, log, where);
  await sink.connect();
  return sink;
}
