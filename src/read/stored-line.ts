// One line of the store as `readStore` gives it: its bytes as stored, decoded and parsed on first use.
import { field } from '../normalize.ts';
import type { StoredRecord } from '../sinks/file-records.ts';
import type { RawLine } from './lines.ts';

/** One line of the store, as `readStore` gives it. */
export interface StoredLine {
  /** The file's name in the store directory, e.g. `events-2026-11-30-w1.ndjson`. */
  readonly file: string;
  /** Where the line's first byte is in the file. */
  readonly offset: number;
  /** The byte just past its newline: what a checkpoint records once the line is done. */
  readonly end: number;
  /** The line exactly as stored, its newline included. */
  readonly bytes: Buffer;
  /** The line as text (UTF-8), without its newline; decoded on first use. */
  readonly text: string;
  /** The line parsed (once, on first use). Throws a SyntaxError for a line that is not JSON. */
  readonly record: StoredRecord;
  /**
   * The event's `type` (its key in any casing, as the endpoint reads it) in lower case: `track`, …;
   * `undefined` for a line that is not a stored record.
   */
  readonly type: string | undefined;
}

export class Line implements StoredLine {
  readonly file: string;
  readonly offset: number;
  readonly end: number;
  readonly bytes: Buffer;
  #text: string | undefined;
  #record: StoredRecord | undefined;

  constructor(file: string, raw: RawLine) {
    this.file = file;
    this.offset = raw.offset;
    this.end = raw.end;
    this.bytes = raw.bytes;
  }

  get text(): string {
    this.#text ??= this.bytes.toString('utf8', 0, this.bytes.length - 1);
    return this.#text;
  }

  get record(): StoredRecord {
    this.#record ??= JSON.parse(this.text) as StoredRecord;
    return this.#record;
  }

  get type(): string | undefined {
    let record: StoredRecord;
    try {
      record = this.record;
    } catch {
      return undefined;
    }
    const type = field((record as Partial<StoredRecord> | null)?.event, 'type');
    return typeof type === 'string' ? type.toLowerCase() : undefined;
  }
}
