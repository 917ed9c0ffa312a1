import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';

// The sink's connections, taken from the pool and given back. pg-pool's own `pool.query` closes the
// connection after any failed statement. A statement PostgreSQL refuses (a constraint or trigger of the
// partner's, a deadlock, a statement timeout) leaves the session good, so that closed one connection
// and opened another (a backend forked for it) for every event a table refused: ~60 ms each on a busy
// machine, long enough for a refused batch's last events to time out.

/**
 * One statement on a connection of the pool (see `withClient`). `check` may throw on what it answered:
 * the connection is then dropped, not given back (a session that takes no writes).
 */
export function query<R extends QueryResultRow>(
  pool: Pool,
  text: string,
  values?: unknown[],
  check?: (result: QueryResult<R>) => void,
): Promise<QueryResult<R>> {
  return withClient(pool, async (client) => {
    const result = await client.query<R>(text, values);
    check?.(result);
    return result;
  });
}

/**
 * `work` on a connection of its own, in a transaction that `end` ends (ROLLBACK: to keep nothing of it),
 * or that is rolled back if `work` throws.
 */
export function inTransaction<T>(
  pool: Pool,
  end: 'COMMIT' | 'ROLLBACK',
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return withClient(pool, async (client, spoil) => {
    await client.query('BEGIN');
    try {
      const result = await work(client);
      await client.query(end);
      return result;
    } catch (err) {
      // Anything but a refused statement drops the connection (withClient), which ends the transaction;
      // a ROLLBACK sent after a timeout of the client's would wait behind the statement still running.
      if (!refusedStatement(err)) throw err;
      // A ROLLBACK that fails leaves the connection lost or mid-transaction: not given back.
      await client.query('ROLLBACK').catch(spoil);
      throw err;
    }
  });
}

/**
 * `use` on a connection of the pool, given back for reuse unless what failed leaves it unfit: kept
 * after a statement PostgreSQL refused (an ERROR), dropped after anything else (the session ended, a
 * timeout of the client's while the statement may still run, an error of ours mid-way) or when `use`
 * says so (`spoil`). While it is out of the pool, an 'error' the connection emits (PostgreSQL gone)
 * spoils it too, rather than being an exception that ends the process.
 */
async function withClient<T>(
  pool: Pool,
  use: (client: PoolClient, spoil: (err: unknown) => void) => Promise<T>,
): Promise<T> {
  let failed: Error | undefined;
  const spoil = (err: unknown) => {
    failed ??= unfit(err);
  };
  // Listened to as it is handed over (the pool stops listening then): an await later, an 'error' read
  // in the meantime would have had no listener.
  const client = await new Promise<PoolClient>((resolve, reject) =>
    pool.connect((err, taken) => {
      if (err !== undefined || taken === undefined) return reject(err);
      taken.on('error', spoil);
      resolve(taken);
    }),
  );
  try {
    return await use(client, spoil);
  } catch (err) {
    if (!refusedStatement(err)) spoil(err);
    throw err;
  } finally {
    client.removeListener('error', spoil);
    client.release(failed);
  }
}

/**
 * An error PostgreSQL answered a statement with, the session still good: not one that ends it (FATAL,
 * PANIC; severity is in the server's language, so its SQLSTATE classes too: 08 connection, 57P operator
 * intervention, XX internal). A session that ended anyway is dropped by the pool (not queryable). Nor a
 * write refused in a read-only transaction (25006): the session may be read-only by its own settings
 * (default_transaction_read_only, fixed when it began) after the database takes writes again.
 */
function refusedStatement(err: unknown): boolean {
  const { code, severity } = (err ?? {}) as { code?: unknown; severity?: unknown };
  // Both are PostgreSQL's (pg's DatabaseError); a socket's error has a code but no severity.
  if (typeof code !== 'string' || typeof severity !== 'string') return false;
  return severity !== 'FATAL' && severity !== 'PANIC' && !/^(?:08|57P|XX|25006)/.test(code);
}

const unfit = (err: unknown): Error =>
  err instanceof Error ? err : new Error('PostgreSQL connection failed');
