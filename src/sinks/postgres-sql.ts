import type { Pool } from 'pg';

// The SQL of the PostgreSQL sink. `table` is checked at start-up to be a plain lower-case name of at
// most 42 characters (config.ts): quoted, it is an identifier even when it is an SQL keyword (`user`),
// and its index's name (`<table>_source_message_id`) stays within PostgreSQL's 63.

const quoted = (name: string) => `"${name}"`;

/** The table and its unique index, created when missing; what a partner's systems read. */
function createStatements(table: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${quoted(table)} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      received_at timestamptz NOT NULL,
      source text NOT NULL,
      message_id text,
      type text NOT NULL,
      settings jsonb NOT NULL,
      event jsonb NOT NULL
    )`,
    // Segment sends an event again when an answer is lost: one row per (customer, messageId), whichever
    // process or VM received each copy. Events without a messageId (NULL) are all kept.
    `CREATE UNIQUE INDEX IF NOT EXISTS ${quoted(`${table}_source_message_id`)} ON ${quoted(table)} (source, message_id)`,
  ];
}

/**
 * Whether the table exists with a unique index on (source, message_id), whatever its name: read from the
 * catalogue, which takes no lock and needs no privilege beyond seeing the table. A role that may only
 * INSERT and SELECT on a table made for it then starts, and a start or a reconnect does not queue
 * behind a transaction holding the table (CREATE INDEX IF NOT EXISTS locks it before it checks).
 */
const READY_SQL = `SELECT EXISTS (
  SELECT 1 FROM pg_index i
  WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 2
    AND (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = ARRAY['source', 'message_id']
) AS ready`;

/**
 * Creates the table and index if missing. Instances and workers starting at once on an empty database
 * would race (two CREATE TABLE IF NOT EXISTS can both pass the check, and one then fails): a
 * transaction-scoped advisory lock on the table's name makes them take turns.
 */
export async function ensureTable(pool: Pool, table: string): Promise<void> {
  const { rows } = await pool.query<{ ready: boolean }>(READY_SQL, [quoted(table)]);
  if (rows[0]?.ready === true) return;
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`segment-endpoint:${table}`]);
    for (const statement of createStatements(table)) await client.query(statement);
    await client.query('COMMIT');
  } catch (err) {
    broken = err;
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    // A connection that failed mid-transaction is not given back to the pool for reuse.
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/**
 * One group commit: every row of the group in one INSERT (one statement, one transaction, one round
 * trip), given as one JSON array of rows (`groupJson`). A row whose (source, message_id) is stored
 * already is skipped: a duplicate is acknowledged as the first copy was.
 */
export const insertStatement = (table: string): string =>
  `INSERT INTO ${quoted(table)} (received_at, source, message_id, type, settings, event)
   SELECT received_at, source, message_id, type, settings, event FROM jsonb_to_recordset($1::jsonb)
     AS row(received_at timestamptz, source text, message_id text, type text, settings jsonb, event jsonb)
   ON CONFLICT (source, message_id) DO NOTHING`;

/** A row of the INSERT, with its settings and event as JSON text already. */
export interface RowJson {
  readonly receivedAt: string;
  readonly source: string;
  readonly messageId: string | null;
  readonly type: string;
  readonly settings: string;
  readonly event: string;
}

/**
 * The INSERT's parameter: the rows as one JSON array, written around the settings' and events' own JSON
 * text (serialised once, when accepted) rather than escaped again into array literals.
 */
export function groupJson(rows: readonly RowJson[]): string {
  let json = '[';
  for (const row of rows) {
    if (json.length > 1) json += ',';
    const messageId = row.messageId === null ? 'null' : JSON.stringify(row.messageId);
    json += `{"received_at":"${row.receivedAt}","source":"${row.source}","message_id":${messageId},"type":${JSON.stringify(row.type)},"settings":${row.settings},"event":${row.event}}`;
  }
  return `${json}]`;
}

/**
 * A refusal of the data itself (SQLSTATE class 22), not of the database: jsonb cannot hold `\u0000`
 * or a lone surrogate such as `\ud800`, which JSON can. Retrying such an event would fail forever.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('22');
}
