import type { Logger } from '../log.ts';
import { POSTGRES, serviceAddress } from '../service-url.ts';
import { GROUPS_IN_FLIGHT, PostgresSink } from './postgres.ts';
import type { Sink } from './sink.ts';

// Opening the PostgreSQL sink (--postgres): its pool of connections, and the table (postgres.ts stores).

const STATEMENT_TIMEOUT_MS = 4_000; // below Segment's 5 s: a hung database is a 503 Segment retries
const CONNECT_TIMEOUT_MS = 2_000;
const SAID_CAUSES = 16; // causes of idle connections' ends said in the log, at most

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
  // takes a new connection. Said once for each cause: a role's idle timeout ends one after another.
  const said = new Set<unknown>();
  pool.on('error', (err: Error & { code?: unknown }) => {
    const cause = err.code ?? err.message;
    if (said.has(cause) || said.size >= SAID_CAUSES) return;
    said.add(cause);
    log.warn({ err }, 'a PostgreSQL connection closed (said once for this cause; made again as needed)');
  });
  const where = `events stored in PostgreSQL table ${config.table} on ${serviceAddress(config.url, POSTGRES)}`;
  const sink = new PostgresSink(pool, config.table, log, where);
  await sink.connect();
  return sink;
}
