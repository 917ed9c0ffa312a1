import { performance } from 'node:perf_hooks';
import { EndpointError } from './errors.ts';

// Each customer's share of the endpoint, kept in token buckets per API key: its events a second
// (`rateLimit`, a key's own `rate`) and its time spent parsing bodies (`parseShare`).
//
// Events: refilled at `rate` events a second up to `rate` (the burst; one at least). A request takes a
// token when it is let in, before its body is read, so requests that overlap cannot all pass on one
// token; then it is charged for the other events it carries: a batch of 500 passes on one token and
// leaves its key in debt, so a batch larger than the burst still passes, and the key's rate over time
// holds. The debt is kept to a minute at the rate: a key is never shut out for longer than that, and a
// batch of more than a minute's events is charged a minute's (a request carries at most 2,500).
//
// Time: a request's cost is not its size. 49 bytes of gzip inflate to 2,500 `{}`, each refused on its
// own, ~18 ms of the one thread every customer shares; 550 inflate to 510 KB of `[{},{},…]`, ~20 ms to
// parse. A key sending those at once left the others a few percent of the endpoint. So each key may
// spend `cpuShare` percent of it, over a second, while others wait: a bucket of milliseconds refilled
// at that share up to a second's worth. A request reserves what its key's requests have cost lately as
// it is let in (requests that overlap cannot all pass on one full bucket), is charged the time its
// processing holds the thread (settings, parse, each event, each slice of a batch), and settles when
// answered: the reservation back, its cost learnt. A key whose bucket is empty is refused only while
// that protects someone: another key was let in within the last second, and the thread was busy (over
// 90 % of the last tenth of a second) or the requests it has under way fill the time that was spare.
// Alone, or with time to spare, a key takes what it needs.

/** Keys tracked at most: the configured keys, or what an `authenticate` function lets in. */
const MAX_KEYS = 10_000;
const MAX_DEBT_SECONDS = 60;

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill, ms. */
  at: number;
}

/** A bucket per key, refilled at `rate` a second up to `capacity` as it is read. */
class KeyBuckets<B extends Bucket = Bucket> {
  readonly #buckets = new Map<string, B>();
  readonly #now: () => number;
  readonly #made: (tokens: number, at: number) => B;

  constructor(now: () => number, made: (tokens: number, at: number) => B) {
    this.#now = now;
    this.#made = made;
  }

  refilled(apiKey: string, rate: number, capacity: number): B {
    const now = this.#now();
    let bucket = this.#buckets.get(apiKey);
    if (bucket === undefined) {
      // Past the bound, the oldest key starts over with a full bucket: at worst one more burst.
      if (this.#buckets.size >= MAX_KEYS) this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = this.#made(capacity, now);
      this.#buckets.set(apiKey, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    return bucket;
  }
}

export class RateLimiter {
  readonly #buckets: KeyBuckets;

  constructor(now: () => number = () => performance.now()) {
    this.#buckets = new KeyBuckets(now, (tokens, at) => ({ tokens, at }));
  }

  /** Takes a token from `apiKey`'s bucket, or throws the 429 to answer when it has none. */
  admit(apiKey: string, rate: number): void {
    const bucket = this.#buckets.refilled(apiKey, rate, Math.max(1, rate));
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    throw new EndpointError('SEG_RATE_LIMITED', undefined, {
      retryAfter: Math.max(1, Math.ceil((1 - bucket.tokens) / rate)),
    });
  }

  /** Charges an admitted request for its `events` (its token paid for one), into debt if need be. */
  charge(apiKey: string, rate: number, events: number): void {
    const bucket = this.#buckets.refilled(apiKey, rate, Math.max(1, rate));
    // In debt no deeper than a minute's wait for the next token; never more tokens than before.
    const floor = Math.min(bucket.tokens, 1 - MAX_DEBT_SECONDS * rate);
    bucket.tokens = Math.max(floor, bucket.tokens - (events - 1));
  }
}

const BUSY = 0.9;
const WINDOW_MS = 100;
/** What a window that was not busy had to spare, at least. */
const SPARE_MS = WINDOW_MS * (1 - BUSY);
const OTHERS_MS = 1_000;
/** How much of a request's cost its key's estimate takes in (an exponential moving average). */
const LEARNING = 0.2;

interface CostBucket extends Bucket {
  /** What a request of this key has cost lately, ms: reserved as one is let in. */
  estimate: number;
  /** Its requests let in and not answered yet. */
  inFlight: number;
}

/** The share of the event loop's time the last call to it saw busy (performance.eventLoopUtilization). */
export function loopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, last);
    last = now;
    return utilization;
  };
}

/** Each key's time on the event loop, within `percent` of it while others wait (`cpuShare`). */
export class CpuShare {
  readonly #buckets: KeyBuckets<CostBucket>;
  readonly #now: () => number;
  readonly #utilization: () => number;
  /** ms a key earns a second, and the most it holds. */
  readonly #rate: number;
  #sampledAt = Number.NEGATIVE_INFINITY;
  #busy = false;
  #lastKey: string | undefined;
  /** When a request came from a key other than the one before it. */
  #switchedAt = Number.NEGATIVE_INFINITY;

  constructor(percent: number, now = () => performance.now(), utilization = loopUtilization()) {
    this.#buckets = new KeyBuckets(now, (tokens, at) => ({ tokens, at, estimate: 0, inFlight: 0 }));
    this.#now = now;
    this.#utilization = utilization;
    this.#rate = percent * 10;
  }

  /**
   * Lets a request of `apiKey` in, reserving its key's estimate (returned, for `settle`), or throws the
   * 429 to answer when its bucket is empty and others wait.
   */
  admit(apiKey: string): number {
    const now = this.#now();
    if (now - this.#sampledAt >= WINDOW_MS) {
      this.#busy = this.#utilization() >= BUSY;
      this.#sampledAt = now;
    }
    if (apiKey !== this.#lastKey) {
      if (this.#lastKey !== undefined) this.#switchedAt = now;
      this.#lastKey = apiKey;
    }
    const bucket = this.#buckets.refilled(apiKey, this.#rate, this.#rate);
    // In debt, with others about, only on time to spare, and no more at once than that time holds: what
    // it let in together would hold the thread for all of their costs, one after the other.
    const spare =
      !this.#busy && (bucket.inFlight === 0 || (bucket.inFlight + 1) * bucket.estimate <= SPARE_MS);
    if (bucket.tokens > 0 || spare || now - this.#switchedAt >= OTHERS_MS) {
      bucket.tokens -= bucket.estimate;
      bucket.inFlight++;
      return bucket.estimate;
    }
    throw new EndpointError('SEG_CPU_SHARE', undefined, {
      retryAfter: Math.max(1, Math.ceil(-bucket.tokens / this.#rate)),
    });
  }

  /**
   * Charges `apiKey` `ms` of a request's processing, into debt no deeper than a minute's wait; after its
   * answer (`answered`, the end of the turn that decided it) they are learnt too, as `settle` learnt
   * the rest.
   */
  charge(apiKey: string, ms: number, answered: boolean): void {
    const bucket = this.#buckets.refilled(apiKey, this.#rate, this.#rate);
    bucket.tokens = Math.max(Math.min(bucket.tokens, -MAX_DEBT_SECONDS * this.#rate), bucket.tokens - ms);
    if (answered) bucket.estimate += LEARNING * ms;
  }

  /** A request answered: its `reserved` ms back, what it `spent` in all learnt. */
  settle(apiKey: string, reserved: number, spent: number): void {
    const bucket = this.#buckets.refilled(apiKey, this.#rate, this.#rate);
    bucket.tokens = Math.min(this.#rate, bucket.tokens + reserved);
    bucket.estimate += LEARNING * (spent - bucket.estimate);
    bucket.inFlight = Math.max(0, bucket.inFlight - 1);
  }
}
