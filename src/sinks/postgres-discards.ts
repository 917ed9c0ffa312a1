import type { Pool } from 'pg';
import { query } from './postgres-pool.ts';
import type { Row } from './postgres-rows.ts';
import { heldStatement } from './postgres-sql.ts';

// An INSERT that succeeded may have kept fewer rows than it sent: those it skipped as copies of events
// stored already (ON CONFLICT DO NOTHING), answered as their first copy was, and those a BEFORE INSERT
// trigger of the partner's discarded (it returned NULL), which were never stored and must not be answered
// 200. (A rule cannot: PostgreSQL refuses an INSERT with ON CONFLICT on a table with INSERT rules.)

/** Why an event whose row the INSERT sent and the table did not keep is answered 503. */
export const DISCARDED =
  'the table discarded a row the INSERT sent (a BEFORE INSERT trigger that returns NULL)';

/** Why the sink stops when the table stored a row under another key than the one sent. */
export const REWRITTEN =
  'the table stored a row under another source or message_id than the INSERT sent (a trigger that rewrites them?): copies of events cannot be told apart';

/** What the INSERT returns of each row it stored. */
export interface Kept {
  readonly source: string;
  readonly message_id: string | null;
}

const keyOf = (source: string, messageId: string) => `${source}\n${messageId}`;

/** The rows a group's INSERT did not store; `rewritten` when the table changed a row's key. */
export interface Discards {
  readonly lost: Row[];
  readonly rewritten: boolean;
}

/**
 * The rows of `group` that its INSERT did not store (`kept`: what it returned) and that the table does
 * not hold either: discarded. Events without a messageId are never copies: when fewer of them were kept
 * than sent, which ones is not known, and none is answered 200 (a retry then stores one twice rather
 * than lose one). When the table cannot be asked, or stored a row under a key that was not sent (what
 * it holds under a key may then be another event's), no row that was not kept is answered 200.
 */
export async function discarded(
  pool: Pool,
  table: string,
  group: readonly Row[],
  kept: readonly Kept[],
): Promise<Discards> {
  const sent = new Set<string>();
  for (const row of group) if (row.messageId !== null) sent.add(keyOf(row.source, row.messageId));
  const keys = new Set<string>();
  let keptWithout = 0;
  for (const row of kept) {
    if (row.message_id === null) keptWithout++;
    else keys.add(keyOf(row.source, row.message_id));
  }
  const without = group.filter((row) => row.messageId === null);
  // A key the table filled in for a row sent without one (a trigger's default) is that row, kept: one
  // such key for each row sent without a key that did not come back without one. Any more is a rewrite.
  const unsent = [...keys].filter((key) => !sent.has(key)).length;
  const rewritten = unsent + keptWithout > without.length;
  if (!rewritten) keptWithout += unsent;
  if (!rewritten && kept.length === group.length) return { lost: [], rewritten };
  const lost = keptWithout < without.length ? without : [];
  const skipped = group.filter(
    (row) => row.messageId !== null && !keys.has(keyOf(row.source, row.messageId)),
  );
  if (skipped.length === 0 || rewritten) return { lost: [...skipped, ...lost], rewritten };
  const asked = JSON.stringify(skipped.map((row) => ({ source: row.source, message_id: row.messageId })));
  try {
    const { rows } = await query<Kept>(pool, heldStatement(table), [asked]);
    const held = new Set(rows.map((row) => keyOf(row.source, row.message_id ?? '')));
    const unheld = skipped.filter((row) => !held.has(keyOf(row.source, row.messageId ?? '')));
    return { lost: [...unheld, ...lost], rewritten };
  } catch {
    return { lost: [...skipped, ...lost], rewritten };
  }
}
