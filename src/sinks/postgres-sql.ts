// The SQL of the PostgreSQL sink's INSERTs, and what their failures mean (its table's: postgres-table.ts).
// `table` is checked at start-up to be a plain lower-case name of at most 42 characters (config.ts):
// quoted, it is an identifier even when it is an SQL keyword (`user`), and its index's name
// (`<table>_source_message_id`, maybe `_2` to `_99`) stays within PostgreSQL's 63.

export const quoted = (name: string) => `"${name}"`;

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
