import { COMMIT_MAX_BYTES } from './file-repair.ts';

// The lines the default store holds in memory until their commit, and how they are grouped into commits.

/** A line waiting for its commit, and its append's promise. */
export interface Pending {
  readonly file: string;
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The lines appended since the last commit began, bounded: while the disk does not answer (a frozen
 * file system, a dead network volume) their events time out and are answered 503, senders send more, and
 * without a bound the lines would pile up until memory runs out.
 */
export class CommitQueue {
  #lines: Pending[] = [];
  /** Characters of the lines waiting: what they hold in memory, about. */
  #chars = 0;
  readonly #maxChars: number;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
  }

  get length(): number {
    return this.#lines.length;
  }

  /** Whether the lines waiting have reached the bound: appends are refused until a commit takes them. */
  get full(): boolean {
    return this.#chars >= this.#maxChars;
  }

  /** Queues `pending`, or refuses it at once when it would take the queue past its bound. */
  add(pending: Pending): void {
    if (this.#chars + pending.line.length > this.#maxChars && this.#lines.length > 0) {
      this.#chars = this.#maxChars; // full until taken
      pending.reject(behind(this.#maxChars));
      return;
    }
    this.#chars += pending.line.length;
    this.#lines.push(pending);
  }

  /**
   * Resolves at the end of the first turn of the event loop that adds no line, before a commit on the
   * loop's thread; the line that called it is not counted, so a line read alone in its turn is committed
   * at the end of that turn, no later than before. Committed at once, the turn's first line would go
   * alone, before the rest are read; at the end of its turn, a commit under load took about two thirds
   * of the senders (50 connections: ~33 events a commit), the others' requests arriving while the turn
   * worked, to be read by the next turn: now ~49. Lines that never stop coming are committed all the
   * same, at `QUIET_MAX_LINES` or when full.
   */
  async quiet(): Promise<void> {
    let seen = -1;
    while (this.#lines.length !== seen && this.#lines.length < QUIET_MAX_LINES && !this.full) {
      seen = this.#lines.length;
      await new Promise<void>((next) => setImmediate(next));
    }
  }

  /** Every line waiting, in the order appended, grouped into commits; the queue is empty after. */
  *take(): Generator<Pending[]> {
    const batch = this.#lines;
    this.#lines = [];
    this.#chars = 0;
    // Grouped by file in arrival order (a batch spans two files only at midnight UTC), a commit carrying
    // at most COMMIT_MAX_BYTES (a UTF-16 unit is at most 3 bytes of UTF-8), the most that start-up repair
    // looks through after a power cut.
    let start = 0;
    while (start < batch.length) {
      const file = (batch[start] as Pending).file;
      let end = start + 1;
      let units = (batch[start] as Pending).line.length;
      while (end < batch.length && (batch[end] as Pending).file === file) {
        units += (batch[end] as Pending).line.length;
        if (units > COMMIT_MAX_BYTES / 3) break;
        end++;
      }
      yield batch.slice(start, end);
      start = end;
    }
  }
}

const QUIET_MAX_LINES = 256; // ~10 ms of events read before their commit

const behind = (maxChars: number) =>
  Object.assign(new Error(`the disk is behind: ${maxChars} characters of lines wait for it already`), {
    code: 'SEG_STORE_BEHIND',
  });
