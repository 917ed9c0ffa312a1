// The rows of the PostgreSQL sink's INSERTs, and how its queue is cut into groups, one INSERT each.

/** A row of the INSERT, with its settings and event as JSON text already. */
export interface RowJson {
  readonly receivedAt: string;
  readonly source: string;
  readonly messageId: string | null;
  readonly type: string;
  readonly settings: string;
  readonly event: string;
}

/** A row waiting for its group: its JSON, and how to answer the request that brought it. */
export interface Row extends RowJson {
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  /** INSERTs of it aborted in a conflict with another transaction so far. */
  conflicts: number;
}

/**
 * How many rows from the front of `queue` make one INSERT: at most `most`, and no more than `characters`
 * of their events' and settings' JSON text, unless the first row alone is more (it then goes alone).
 */
export function groupSize(queue: readonly RowJson[], most: number, characters: number): number {
  let total = 0;
  const end = Math.min(queue.length, most);
  for (let n = 0; n < end; n++) {
    const row = queue[n] as RowJson;
    total += row.event.length + row.settings.length;
    if (total > characters && n > 0) return n;
  }
  return end;
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
