import type { Logger } from './log.ts';

// Lines written once per event that failed: a client whose every event a handler fails on (a batch of
// 2,500 events, 7 KB gzipped) wrote a line each, ~2 MB of log at error level, which no operator can turn
// off without losing the real errors. Bounded here as a rate, the lines held back counted and said.

const ALL = { burst: 50, perSecond: 10 };
/** One customer's share: its failures leave room for another's (a database down says so too). */
const ONE_SOURCE = { burst: 10, perSecond: 2 };
const SOURCES_KEPT = 1_000; // sources with a bucket; past it they all start again, full
const SAY_HELD_MS = 1_000;
const SOURCES_SAID = 10;

/** A failure's fields: the error, whose key it came with (its fingerprint), the status answered. */
export interface Failure {
  readonly err: unknown;
  readonly source: string | undefined;
  readonly status: number;
}

/** The time in ms, and a callback run later (unref'd: a count still to say never holds a process). */
export interface BudgetClock {
  now(): number;
  later(run: () => void, ms: number): void;
}

const realClock: BudgetClock = {
  now: () => performance.now(),
  later: (run, ms) => setTimeout(run, ms).unref(),
};

/**
 * Error lines of failures: at most 50 at once and 10 a second on average, and of those 10 at once and 2
 * a second from one source. A line held back is counted; the first of a second's says at once that
 * lines are being held, so that a process stopped before the count is said still says so, and the count
 * follows a second later, with the sources and statuses held.
 */
export class LogBudget {
  readonly #log: Logger;
  readonly #clock: BudgetClock;
  readonly #all: Bucket;
  readonly #sources = new Map<string, Bucket>();
  #held: Held | undefined;

  constructor(log: Logger, clock: BudgetClock = realClock) {
    this.#log = log;
    this.#clock = clock;
    this.#all = new Bucket(ALL, clock.now());
  }

  error(fields: Failure, msg: string): void {
    const now = this.#clock.now();
    const source = fields.source === undefined ? undefined : this.#source(fields.source, now);
    // A source's token is spent only when the line is written: it is not charged for the others' flood.
    if ((source === undefined || source.has(now)) && this.#all.take(now)) {
      source?.take(now);
      this.#log.error(fields, msg);
      return;
    }
    this.#hold(fields, msg);
  }

  #source(source: string, now: number): Bucket {
    let bucket = this.#sources.get(source);
    if (bucket === undefined) {
      if (this.#sources.size >= SOURCES_KEPT) this.#sources.clear();
      bucket = new Bucket(ONE_SOURCE, now);
      this.#sources.set(source, bucket);
    }
    return bucket;
  }

  #hold({ source, status }: Failure, msg: string): void {
    let held = this.#held;
    if (held === undefined) {
      held = { byMessage: new Map(), sources: new Set(), statuses: new Set() };
      this.#held = held;
      this.#log.error(
        {},
        `failure lines are being held back: over ${ALL.perSecond} a second, or ${ONE_SOURCE.perSecond} from one source; their count follows`,
      );
      this.#clock.later(() => this.#sayHeld(), SAY_HELD_MS);
    }
    held.byMessage.set(msg, (held.byMessage.get(msg) ?? 0) + 1);
    if (source !== undefined && held.sources.size < SOURCES_SAID) held.sources.add(source);
    held.statuses.add(status);
  }

  #sayHeld(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    const sources = [...held.sources];
    const statuses = [...held.statuses];
    for (const [msg, count] of held.byMessage) {
      this.#log.error(
        { held: count, sources, statuses },
        `${count} more lines of ${JSON.stringify(msg)} were not written`,
      );
    }
  }
}

interface Held {
  readonly byMessage: Map<string, number>;
  readonly sources: Set<string>;
  readonly statuses: Set<number>;
}

/** Tokens that come back at `perSecond`, `burst` at most. */
class Bucket {
  readonly #burst: number;
  readonly #perMs: number;
  #tokens: number;
  #at: number;

  constructor({ burst, perSecond }: { burst: number; perSecond: number }, now: number) {
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#tokens = burst;
    this.#at = now;
  }

  has(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= 1;
  }

  take(now: number): boolean {
    if (!this.has(now)) return false;
    this.#tokens -= 1;
    return true;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
    this.#at = now;
  }
}
