import type { Pool } from 'pg';
import { inTransaction, query } from './postgres-pool.ts';

// The SQL of the PostgreSQL sink. `table` is checked at start-up to be a plain lower-case name of at
// most 42 characters (config.ts): quoted, it is an identifier even when it is an SQL keyword (`user`),
// and its index's name (`<table>_source_message_id`, maybe `_2`) stays within PostgreSQL's 63.

export const quoted = (name: string) => `"${name}"`;

/** The table, created when missing; what a partner's systems read. */
const createTable = (table: string) => `CREATE TABLE IF NOT EXISTS ${quoted(table)} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at timestamptz NOT NULL,
      source text NOT NULL, message_id text, type text NOT NULL, settings jsonb NOT NULL, event jsonb NOT NULL
    )`;

/**
 * The name of the table's unique index: `<table>_source_message_id`, or if a relation not of this table
 * holds it (a table archived by a rename keeps its index's name) the first free of `_2` to `_9` after it.
 */
const INDEX_NAME_SQL = `SELECT name FROM generate_series(1, 9) AS n,
    LATERAL (SELECT $1 || CASE WHEN n = 1 THEN '' ELSE '_' || n END AS name) AS candidate
  WHERE NOT EXISTS (SELECT FROM pg_class r
    WHERE r.relname = name AND r.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $2::regclass)
      AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indexrelid = r.oid AND i.indrelid = $2::regclass))
  ORDER BY n LIMIT 1`;

/** The columns the sink writes, and the type each must have (format_type's words). */
const COLUMNS: Readonly<Record<string, string>> = {
  received_at: 'timestamp with time zone',
  source: 'text',
  message_id: 'text',
  type: 'text',
  settings: 'jsonb',
  event: 'jsonb',
};

/**
 * What the catalogue says of the table, read without a lock and with no privilege beyond seeing it (a
 * role that may only INSERT and SELECT on a table made for it starts, and a start does not queue behind
 * a transaction holding the table): whether a unique index on (source, message_id) is the one the
 * sink's `ON CONFLICT` needs (whole: no predicate, no expression; NULLs distinct, so that events without
 * a messageId are all kept; its two columns in either order, as ON CONFLICT finds it), whether one drops those events (NULLS NOT DISTINCT, PostgreSQL 15) or distinct messageIds (a non-deterministic collation), whether a rule rewrites the INSERT, each
 * column's type, whether it must be given a value, whether the role may INSERT the sink's columns and
 * SELECT the index's (ON CONFLICT reads them), and whether the table is UNLOGGED (emptied by a crash);
 * then whether this database can take the events at all: its encoding, and whether it takes writes (a
 * standby does not). `indnullsnotdistinct` is read through to_jsonb: older servers have no such column.
 */
const STATE_SQL = `WITH t AS (SELECT to_regclass($1) AS oid),
keyed AS (
  SELECT i.indpred IS NULL AND i.indexprs IS NULL AS whole,
    COALESCE((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_equal,
    EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) AS c(oid) JOIN pg_collation pc ON pc.oid = c.oid
            WHERE (to_jsonb(pc) ->> 'collisdeterministic')::boolean IS FALSE) AS loose
  FROM pg_index i, t
  WHERE i.indrelid = t.oid AND i.indisunique AND i.indnkeyatts = 2
    AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM unnest(i.indkey) AS k(attnum)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = ARRAY['message_id', 'source']
),
attributes AS (
  SELECT a.* FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT EXISTS (SELECT 1 FROM keyed WHERE whole AND NOT nulls_equal) AS ready,
  EXISTS (SELECT 1 FROM keyed WHERE nulls_equal) AS nulls_equal,
  EXISTS (SELECT 1 FROM keyed WHERE loose) AS loose,
  EXISTS (SELECT 1 FROM pg_rewrite r, t WHERE r.ev_class = t.oid AND r.ev_type = '3') AS insert_rule,
  (SELECT json_object_agg(attname, json_build_object('type', format_type(atttypid, atttypmod),
     'required', attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = ''))
   FROM attributes) AS columns,
  (SELECT bool_and(has_column_privilege(attrelid, attnum, 'INSERT')) FROM attributes
   WHERE attname = ANY ($2::text[])) AS insertable,
  (SELECT bool_and(has_column_privilege(attrelid, attnum, 'SELECT')) FROM attributes
   WHERE attname IN ('source', 'message_id')) AS selectable,
  (SELECT c.relpersistence = 'u' FROM pg_class c, t WHERE c.oid = t.oid) AS unlogged,
  current_setting('server_encoding') AS encoding,
  current_setting('transaction_read_only') = 'on' AS read_only`;

interface TableState {
  readonly ready: boolean;
  readonly nulls_equal: boolean;
  readonly loose: boolean;
  readonly insert_rule: boolean;
  readonly columns: Readonly<Record<string, { type: string; required: boolean }>> | null;
  readonly insertable: boolean | null;
  readonly selectable: boolean | null;
  readonly unlogged: boolean | null;
  readonly encoding: string;
  readonly read_only: boolean;
}

/** What keeps this database from taking events whatever its tables, for the log; undefined when nothing. */
function databaseProblem(state: TableState): string | undefined {
  if (state.encoding !== 'UTF8') {
    return `the database's encoding is ${state.encoding}, not UTF8: it cannot hold every event's text`;
  }
  if (state.read_only) return 'PostgreSQL takes no writes here (transaction_read_only is on: a standby?)';
  return undefined;
}

/** What is wrong with the table for the sink, in a sentence for the log; undefined when nothing is. */
function tableProblem(table: string, state: TableState): string | undefined {
  for (const [name, type] of Object.entries(COLUMNS)) {
    const found = state.columns?.[name]?.type;
    if (found !== type) return `table ${table}: column ${name} is ${found ?? 'missing'}, not ${type}`;
  }
  if (state.columns?.message_id?.required) {
    return `table ${table}: column message_id is NOT NULL (a primary key on it?): events without a messageId could not be stored`;
  }
  for (const [name, column] of Object.entries(state.columns ?? {})) {
    if (column.required && !Object.hasOwn(COLUMNS, name)) {
      return `table ${table}: column ${name} is NOT NULL without a default: the sink does not write it`;
    }
  }
  if (state.nulls_equal) {
    return `table ${table}: a unique index on (source, message_id) has NULLS NOT DISTINCT, which would drop every event without a messageId after the first: drop it`;
  }
  if (state.loose) {
    return `table ${table}: a unique index on (source, message_id) has a non-deterministic collation (case- or accent-insensitive), which would drop distinct messageIds as copies: drop it`;
  }
  if (!state.ready) return `table ${table}: no unique index on (source, message_id) without a predicate`;
  if (state.insert_rule) {
    return `table ${table} has a rule ON INSERT: the rows the sink sends would go elsewhere or nowhere`;
  }
  if (state.insertable !== true) return `the role may not INSERT into ${table}`;
  if (state.selectable !== true) {
    return `the role may not SELECT from ${table}: ON CONFLICT reads source and message_id (GRANT INSERT, SELECT)`;
  }
  if (state.unlogged === true) {
    return `table ${table} is UNLOGGED: PostgreSQL empties it after a crash, and acknowledged events would be lost`;
  }
  return undefined;
}

/** What is wrong with the database or the table for the sink, found by ensureTable: not an outage. */
export class TableRefused extends Error {}

/**
 * Checks that this database can take events, creates the table and index if missing, then checks what
 * the table is. Instances and workers starting at once on an empty database would race (two CREATE
 * TABLE IF NOT EXISTS can both pass the check, and one then fails): a transaction-scoped advisory lock
 * on the table's name makes them take turns. A table made by someone else whose columns, index or
 * privileges are not what the sink needs is refused (thrown, logged: events are answered 503 and
 * retried) rather than written to and lost, or found out one failed INSERT at a time.
 */
export async function ensureTable(pool: Pool, table: string): Promise<void> {
  // A database problem is thrown on the connection that found it, which is then dropped: a session that
  // took no writes may stay so when the database takes them again (default_transaction_read_only).
  const state = async () => {
    const { rows } = await query<TableState>(
      pool,
      STATE_SQL,
      [quoted(table), Object.keys(COLUMNS)],
      ({ rows: [found] }) => {
        const refused = found === undefined ? undefined : databaseProblem(found);
        if (refused !== undefined) throw new TableRefused(refused);
      },
    );
    return rows[0] as TableState;
  };
  let found = await state();
  if (!found.ready) {
    await create(pool, table);
    found = await state();
  }
  const problem = tableProblem(table, found);
  if (problem !== undefined) throw new TableRefused(problem);
}

async function create(pool: Pool, table: string): Promise<void> {
  await inTransaction(pool, 'COMMIT', async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`segment-endpoint:${table}`]);
    await client.query(createTable(table));
    const base = `${table}_source_message_id`;
    const free = await client.query<{ name: string }>(INDEX_NAME_SQL, [base, quoted(table)]);
    // Segment sends an event again when an answer is lost: one row per (customer, messageId), whichever
    // process or VM received each copy. Events without a messageId (NULL) are all kept.
    const index = quoted(free.rows[0]?.name ?? base); // chosen under the lock, by every instance alike
    await client.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${index} ON ${quoted(table)} (source, message_id)`);
  });
}

/**
 * The INSERT's commit waits for the disk: a role or database whose `synchronous_commit` is `off` would
 * lose events answered 200 in a crash. Turned `on` for the INSERT's own transaction (evaluated once, before
 * any row): a session's setting does not hold behind a pooler that runs each transaction on another
 * server session (PgBouncer's transaction mode). `local` and the remote levels wait for this server's
 * disk too, and are kept.
 */
const DURABLE_COMMIT = `(SELECT CASE current_setting('synchronous_commit')
     WHEN 'off' THEN set_config('synchronous_commit', 'on', true) ELSE 'kept' END) IS NOT NULL`;

/**
 * One group commit: every row of the group in one INSERT (one statement, one transaction, one round
 * trip), given as one JSON array of rows (`groupJson`). A row whose (source, message_id) is stored
 * already is skipped: a duplicate is acknowledged as the first copy was (the rows stored are returned:
 * postgres-discards.ts tells the skipped from the discarded). Rows go in in the index's order: two
 * INSERTs that share events (two instances sent the same batch, in different orders) then wait for each
 * other's rows in the same order, and never each hold one the other needs (a deadlock).
 */
export const insertStatement = (table: string): string =>
  `INSERT INTO ${quoted(table)} (received_at, source, message_id, type, settings, event)
   SELECT received_at, source, message_id, type, settings, event FROM jsonb_to_recordset($1::jsonb)
     AS row(received_at timestamptz, source text, message_id text, type text, settings jsonb, event jsonb)
   WHERE ${DURABLE_COMMIT}
   ORDER BY source, message_id
   ON CONFLICT (source, message_id) DO NOTHING
   RETURNING source, message_id`;

/** Which of the rows given (a JSON array of `source` and `message_id`) the table holds. */
export const heldStatement = (table: string): string =>
  `SELECT r.source, r.message_id FROM jsonb_to_recordset($1::jsonb) AS r(source text, message_id text)
   WHERE EXISTS (SELECT 1 FROM ${quoted(table)} t WHERE t.source = r.source AND t.message_id = r.message_id)`;

/**
 * What a failed INSERT says, by its SQLSTATE:
 * - `room`: a connection refused for want of room (53300: too many connections);
 * - `conflict`: aborted to end a deadlock or a serialisation conflict with another transaction (one of
 *   the partner's own, say): nothing is wrong with the database or the events, and the same INSERT is
 *   expected to succeed when sent again;
 * - `data`: a refusal of an event's own text, not of the database: jsonb cannot hold `\u0000` (22P05) or
 *   a lone surrogate such as `\ud800` (22P02), which JSON can; retrying it would fail forever. Only
 *   these: the columns are checked to be text and jsonb (ensureTable), and another data error (a value
 *   too long, 22001) says the table changed, which no event is to blame for;
 * - `row`: a row the table itself refuses: a constraint (class 23, a CHECK, a second unique index) or a
 *   trigger's exception (P0001) of the partner's own. The table's doing, not the event's, and not an
 *   outage: the other events of its group can be stored;
 * - `outage`: anything else (down, unreachable, timed out).
 */
export function failureOf(err: unknown): 'room' | 'conflict' | 'data' | 'row' | 'outage' {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === '53300') return 'room';
  if (code === '40P01' || code === '40001') return 'conflict';
  if (code === '22P05' || code === '22P02' || code === '22021') return 'data';
  // Not a NOT NULL violation (23502): a column made NOT NULL since the start is the table changed, which
  // the outage's check of the table (ensureTable) names, and no event is to blame for.
  if (code === '23502') return 'outage';
  return typeof code === 'string' && (code.startsWith('23') || code === 'P0001') ? 'row' : 'outage';
}

export const UNSTORABLE =
  'The event holds text PostgreSQL cannot store in jsonb (\\u0000 or an unpaired surrogate)';
export const UNSTORABLE_SETTINGS =
  'X-Segment-Settings holds text PostgreSQL cannot store in jsonb (\\u0000 or an unpaired surrogate)';

// `\u0000` or a lone surrogate escape (JSON.stringify writes a paired one as the character itself),
// its backslash not itself escaped: jsonb refuses both, though JSON allows them.
const UNSTORABLE_RE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;
export const unstorable = (json: string) => json.includes('\\u') && UNSTORABLE_RE.test(json);
