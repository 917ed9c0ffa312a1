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
 * follows a second later for each message, with its sources (how many, and up to ten named) and statuses.
 */
export class LogBudget {
  readonly #log: Logger;
  readonly #clock: BudgetClock;
  readonly #all: Bucket;
  readonly #sources = new Map<string, Bucket>();
  #held: Map<string, Held> | undefined;

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
    let byMessage = this.#held;
    if (byMessage === undefined) {
      byMessage = new Map();
      this.#held = byMessage;
      this.#log.error(
        {},
        `failure lines are being held back: over ${ALL.perSecond} a second, or ${ONE_SOURCE.perSecond} from one source; their count follows`,
      );
      this.#clock.later(() => this.#sayHeld(), SAY_HELD_MS);
    }
    let held = byMessage.get(msg);
    if (held === undefined) {
      held = { count: 0, sources: new Set(), statuses: new Set() };
      byMessage.set(msg, held);
    }
    held.count++;
    // Counted whole (a set of a thousand keys' fingerprints at most), named up to SOURCES_SAID.
    if (source !== undefined && held.sources.size < SOURCES_KEPT) held.sources.add(source);
    held.statuses.add(status);
  }

  #sayHeld(): void {
    const byMessage = this.#held;
    this.#held = undefined;
    for (const [msg, { count, sources, statuses }] of byMessage ?? []) {
      this.#log.error(
        {
          held: count,
          sourcesHeld: sources.size,
          sources: [...sources].slice(0, SOURCES_SAID),
          statuses: [...statuses],
        },
        `${count} more lines of ${JSON.stringify(msg)} were not written`,
      );
    }
  }
}

/** The lines of one message held back: how many, from which sources, with which statuses. */
interface Held {
  count: number;
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
