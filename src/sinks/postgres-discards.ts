import type { Pool } from 'pg';
import { query } from './postgres-pool.ts';
import type { Row } from './postgres-rows.ts';
import { heldStatement } from './postgres-sql.ts';

// An INSERT that succeeded may have kept fewer rows than it sent: those it skipped as copies of events
// stored already (ON CONFLICT DO NOTHING), answered as their first copy was, and those a rule or a
// BEFORE INSERT trigger of the partner's discarded (it returned NULL), which were never stored and must
// not be answered 200.

/** Why an event whose row the INSERT sent and the table did not keep is answered 503. */
export const DISCARDED =
  'the table discarded a row the INSERT sent (a rule, or a BEFORE INSERT trigger that returns NULL)';

/** What the INSERT returns of each row it stored. */
export interface Kept {
  readonly source: string;
  readonly message_id: string | null;
}

const keyOf = (source: string, messageId: string) => `${source}\n${messageId}`;

/**
 * The rows of `group` that its INSERT did not store (`kept`: what it returned) and that the table does
 * not hold either: discarded. Events without a messageId are never copies: when fewer of them were kept
 * than sent, which ones is not known, and none is answered 200 (a retry then stores one twice rather
 * than lose one). When the table cannot be asked, no row that was not kept is answered 200.
 */
export async function discarded(
  pool: Pool,
  table: string,
  group: readonly Row[],
  kept: readonly Kept[],
): Promise<Row[]> {
  if (kept.length === group.length) return [];
  const keys = new Set<string>();
  let keptWithout = 0;
  for (const row of kept) {
    if (row.message_id === null) keptWithout++;
    else keys.add(keyOf(row.source, row.message_id));
  }
  const without = group.filter((row) => row.messageId === null);
  const lost = keptWithout < without.length ? without : [];
  const skipped = group.filter(
    (row) => row.messageId !== null && !keys.has(keyOf(row.source, row.messageId)),
  );
  if (skipped.length === 0) return lost;
  const asked = JSON.stringify(skipped.map((row) => ({ source: row.source, message_id: row.messageId })));
  try {
    const { rows } = await query<Kept>(pool, heldStatement(table), [asked]);
    const held = new Set(rows.map((row) => keyOf(row.source, row.message_id ?? '')));
    return [...skipped.filter((row) => !held.has(keyOf(row.source, row.messageId ?? ''))), ...lost];
  } catch {
    return [...skipped, ...lost];
  }
}
