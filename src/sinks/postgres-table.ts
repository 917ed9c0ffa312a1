import type { Pool } from 'pg';
import { inTransaction, query } from './postgres-pool.ts';
import { quoted } from './postgres-sql.ts';

// The PostgreSQL sink's table: made when missing, with its unique index, and checked to be one the sink
// can store events in (postgres-checks.ts runs the check at start and every 10 s).

/** The table, created when missing; what a partner's systems read. */
const createTable = (table: string) => `CREATE TABLE IF NOT EXISTS ${quoted(table)} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      received_at timestamptz NOT NULL,
      source text NOT NULL,
      message_id text,
      type text NOT NULL,
      settings jsonb NOT NULL,
      event jsonb NOT NULL
    )`;

// pg_index `i` on the sink's two keys, in either order (INCLUDE columns aside), as ON CONFLICT finds it.
const ON_THE_KEYS = `i.indnkeyatts = 2 AND ARRAY['message_id', 'source'] = (SELECT array_agg(a.attname::text ORDER BY
  a.attname) FROM unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)`;

/**
 * The name of the table's unique index: `<table>_source_message_id`, or, when another relation holds it
 * (a table archived by a rename keeps its index's name) or an index of the table that is not the sink's
 * (partial, or on other columns), the first of `_2` to `_99` that none does: a table archived monthly
 * for eight years. A whole unique index on (source, message_id) under the name is one another instance
 * made meanwhile: IF NOT EXISTS then makes no second.
 */
const INDEX_NAME_SQL = `SELECT name FROM generate_series(1, 99) AS n,
    LATERAL (SELECT $1 || CASE WHEN n = 1 THEN '' ELSE '_' || n END AS name) AS candidate
  WHERE NOT EXISTS (SELECT FROM pg_class r
    WHERE r.relname = name AND r.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $2::regclass)
      AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indexrelid = r.oid AND i.indrelid = $2::regclass
        AND i.indisunique AND i.indisvalid AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL AND ${ON_THE_KEYS}))
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
 * sink's `ON CONFLICT` needs (whole: no predicate, no expression, valid (a build that failed leaves one
 * PostgreSQL does not use) and not DEFERRABLE; NULLs distinct, so that events without a messageId are all
 * kept; its two columns in either order, as ON CONFLICT finds it), whether one drops those events (NULLS
 * NOT DISTINCT, PostgreSQL 15) or distinct messageIds (a non-deterministic collation), whether one is
 * DEFERRABLE (ON CONFLICT refuses every INSERT then), whether a rule rewrites the INSERT, each column's
 * type, whether it must be given a value, whether the role may INSERT the sink's columns and SELECT the
 * index's (ON CONFLICT reads them), and whether the table or a partition of it (at any depth, but one
 * being detached, which takes no rows) is UNLOGGED (emptied by a crash); then whether this database can
 * take the events at all: its encoding, and whether it takes writes (a standby does not). Columns newer
 * servers have (`indnullsnotdistinct`, `inhdetachpending`) are read through to_jsonb.
 */
const STATE_SQL = `WITH RECURSIVE t AS (SELECT to_regclass($1) AS oid),
parts(oid) AS (SELECT oid FROM t UNION SELECT i.inhrelid FROM pg_inherits i JOIN parts p ON i.inhparent = p.oid
  WHERE NOT COALESCE((to_jsonb(i) ->> 'inhdetachpending')::boolean, false)),
keyed AS (
  SELECT i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid AND i.indimmediate AS whole,
    i.indisvalid AND NOT i.indimmediate AS deferred,
    COALESCE((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_equal,
    EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) AS c(oid) JOIN pg_collation pc ON pc.oid = c.oid
            WHERE (to_jsonb(pc) ->> 'collisdeterministic')::boolean IS FALSE) AS loose
  FROM pg_index i, t
  WHERE i.indrelid = t.oid AND i.indisunique AND ${ON_THE_KEYS}
),
attributes AS (
  SELECT a.* FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT EXISTS (SELECT 1 FROM keyed WHERE whole AND NOT nulls_equal) AS ready,
  EXISTS (SELECT 1 FROM keyed WHERE nulls_equal) AS nulls_equal,
  EXISTS (SELECT 1 FROM keyed WHERE loose) AS loose,
  EXISTS (SELECT 1 FROM keyed WHERE deferred) AS deferred,
  EXISTS (SELECT 1 FROM pg_rewrite r, t WHERE r.ev_class = t.oid AND r.ev_type = '3') AS insert_rule,
  (SELECT json_object_agg(attname, json_build_object('type', format_type(atttypid, atttypmod),
     'required', attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = ''))
   FROM attributes) AS columns,
  (SELECT bool_and(has_column_privilege(attrelid, attnum, 'INSERT')) FROM attributes
   WHERE attname = ANY ($2::text[])) AS insertable,
  (SELECT bool_and(has_column_privilege(attrelid, attnum, 'SELECT')) FROM attributes
   WHERE attname IN ('source', 'message_id')) AS selectable,
  (SELECT c.relpersistence = 'u' FROM pg_class c, t WHERE c.oid = t.oid) AS unlogged,
  (SELECT min(c.relname) FROM pg_class c JOIN parts p USING (oid) WHERE c.relispartition AND c.relpersistence = 'u') AS unlogged_partition,
  (SELECT c.relkind FROM pg_class c, t WHERE c.oid = t.oid) AS kind,
  current_setting('server_encoding') AS encoding, current_setting('transaction_read_only') = 'on' AS read_only`;

interface TableState {
  readonly ready: boolean;
  readonly nulls_equal: boolean;
  readonly loose: boolean;
  readonly deferred: boolean;
  readonly insert_rule: boolean;
  readonly columns: Readonly<Record<string, { type: string; required: boolean }>> | null;
  readonly insertable: boolean | null;
  readonly selectable: boolean | null;
  readonly unlogged: boolean | null;
  /** The name of one of its partitions (at any depth) that is UNLOGGED, null when none is. */
  readonly unlogged_partition: string | null;
  /** pg_class.relkind of what holds the name, null when nothing does. */
  readonly kind: string | null;
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

const KINDS: Readonly<Record<string, string>> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  i: 'an index',
  I: 'an index',
  c: 'a composite type',
};

/** What holds the name, when it is not a table with the sink's columns; undefined when it is, or none. */
function shapeProblem(table: string, state: TableState): string | undefined {
  if (state.kind === null) return undefined;
  if (state.kind !== 'r' && state.kind !== 'p') {
    return `${table} is ${KINDS[state.kind] ?? 'another relation'}, not a table: give --postgres-table a table's name, or one that is free`;
  }
  for (const [name, type] of Object.entries(COLUMNS)) {
    const found = state.columns?.[name]?.type;
    if (found !== type) return `table ${table}: column ${name} is ${found ?? 'missing'}, not ${type}`;
  }
  return undefined;
}

/** What is wrong with the table for the sink, in a sentence for the log; undefined when nothing is. */
function tableProblem(table: string, state: TableState): string | undefined {
  const shape = shapeProblem(table, state);
  if (shape !== undefined) return shape;
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
  if (state.deferred) {
    return `table ${table}: a unique index on (source, message_id) is DEFERRABLE, which ON CONFLICT cannot use: drop it, or make it NOT DEFERRABLE`;
  }
  if (!state.ready)
    return `table ${table}: no valid unique index on (source, message_id) without a predicate`;
  if (state.insert_rule) {
    return `table ${table} has a rule ON INSERT: the rows the sink sends would go elsewhere or nowhere`;
  }
  if (state.insertable !== true) return `the role may not INSERT into ${table}`;
  if (state.selectable !== true) {
    return `the role may not SELECT from ${table}: ON CONFLICT reads source and message_id (GRANT INSERT, SELECT)`;
  }
  if (state.unlogged === true || state.unlogged_partition !== null) {
    const what = state.unlogged === true ? 'table' : `partition ${state.unlogged_partition} of table`;
    return `${what} ${table} is UNLOGGED: PostgreSQL empties it after a crash, and acknowledged events would be lost`;
  }
  return undefined;
}

const INSUFFICIENT_PRIVILEGE = '42501'; // SQLSTATE: not the table's owner

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
    // Said as what it is (a view, a column missing), which is what to fix, before an index is tried on it.
    const shape = shapeProblem(table, found);
    if (shape !== undefined) throw new TableRefused(shape);
    await create(pool, table, found.kind !== null);
    found = await state();
  }
  const problem = tableProblem(table, found);
  if (problem !== undefined) throw new TableRefused(problem);
}

/**
 * The table, unless it `exists` (a role that may not create in its schema may own one made for it), and
 * its index: a role that does not own the table is told how its owner makes it.
 */
async function create(pool: Pool, table: string, exists: boolean): Promise<void> {
  await inTransaction(pool, 'COMMIT', async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`segment-endpoint:${table}`]);
    if (!exists) await client.query(createTable(table));
    const base = `${table}_source_message_id`;
    const { rows } = await client.query<{ name: string }>(INDEX_NAME_SQL, [base, quoted(table)]);
    if (rows[0] === undefined) {
      const why = `${base} and _2 to _99 are all taken by other relations (archived tables keep their indexes' names)`;
      throw new TableRefused(`table ${table}: its index's names ${why}: rename or drop some of them`);
    }
    // Segment sends an event again when an answer is lost: one row per (customer, messageId), whichever
    // process or VM received each copy. Events without a messageId (NULL) are all kept.
    const index = quoted(rows[0].name); // chosen under the lock, by every instance alike
    const made = client.query(
      `CREATE UNIQUE INDEX IF NOT EXISTS ${index} ON ${quoted(table)} (source, message_id)`,
    );
    await made.catch((err: { code?: unknown; message?: unknown }) => {
      if (err.code !== INSUFFICIENT_PRIVILEGE) throw err;
      const how = `as its owner, CREATE UNIQUE INDEX ON ${table} (source, message_id)`;
      throw new TableRefused(
        `table ${table} has no unique index on (source, message_id), and the role may not make one (${String(err.message)}): ${how}`,
      );
    });
  });
}
