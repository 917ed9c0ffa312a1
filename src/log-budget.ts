import type { Logger } from './log.ts';

// Lines written once per event that failed: a client whose every event a handler fails on (a batch of
// 2,500 events, 7 KB gzipped) wrote a line each, ~2 MB of log at error level, which no operator can turn
// off without losing the real errors. Bounded here as a rate, the lines held back counted.

const PER_SECOND = 10;
const BURST = 50;
const SAY_HELD_MS = 1_000;

/**
 * Error lines written at most `BURST` at once and `PER_SECOND` a second on average; the others are
 * counted, by message, and said in one line each a second after the first of them was held back.
 */
export class LogBudget {
  readonly #log: Logger;
  #tokens = BURST;
  #at = performance.now();
  readonly #held = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  error(fields: object, msg: string): void {
    const now = performance.now();
    this.#tokens = Math.min(BURST, this.#tokens + ((now - this.#at) / 1000) * PER_SECOND);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#log.error(fields, msg);
      return;
    }
    this.#held.set(msg, (this.#held.get(msg) ?? 0) + 1);
    // Unref'd: a count still to say never holds the process open.
    this.#timer ??= setTimeout(() => this.#sayHeld(), SAY_HELD_MS).unref();
  }

  #sayHeld(): void {
    this.#timer = undefined;
    for (const [msg, held] of this.#held) {
      this.#log.error(
        { held },
        `${held} more lines of ${JSON.stringify(msg)} were not written: over ${PER_SECOND} a second`,
      );
    }
    this.#held.clear();
  }
}
