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
 * The rows waiting for a group, in order, and their JSON text's characters: what bounds the queue beside
 * its count, for a slow database holds large events as long as small ones.
 */
export class RowQueue {
  #rows: Row[] = [];
  #characters = 0;

  get length(): number {
    return this.#rows.length;
  }

  get characters(): number {
    return this.#characters;
  }

  push(row: Row): void {
    this.#rows.push(row);
    this.#characters += charactersOf(row);
  }

  /** The next group, taken from the front: at most `most` rows and `characters` of text (groupSize). */
  take(most: number, characters: number): Row[] {
    const size = groupSize(this.#rows, most, characters);
    const group = size === this.#rows.length ? this.#rows : this.#rows.slice(0, size);
    this.#rows = size === this.#rows.length ? [] : this.#rows.slice(size);
    for (const row of group) this.#characters -= charactersOf(row);
    return group;
  }

  /** `group` back at the front, to be sent again first. */
  putBack(group: Row[]): void {
    this.#rows = group.concat(this.#rows);
    for (const row of group) this.#characters += charactersOf(row);
  }

  /** Every row, taken out. */
  takeAll(): Row[] {
    const rows = this.#rows;
    this.#rows = [];
    this.#characters = 0;
    return rows;
  }
}

const charactersOf = (row: RowJson) => row.event.length + row.settings.length;

/**
 * How many rows from the front of `queue` make one INSERT: at most `most`, and no more than `characters`
 * of their events' and settings' JSON text, unless the first row alone is more (it then goes alone).
 */
export function groupSize(queue: readonly RowJson[], most: number, characters: number): number {
  let total = 0;
  const end = Math.min(queue.length, most);
  for (let n = 0; n < end; n++) {
    total += charactersOf(queue[n] as RowJson);
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
