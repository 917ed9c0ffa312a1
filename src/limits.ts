import { EndpointError } from './errors.ts';

// Each customer's share of the endpoint's events (`rateLimit`, a key's own `rate`), in token buckets
// per API key (its share of the event loop's time is cpu-share.ts'). Refilled at `rate` events a second
// up to `rate` (the burst; one at least). A request takes a token when it is let in, before its body is
// read, so requests that overlap cannot all pass on one token; then it is charged for the other events
// it carries: a batch of 500 passes on one token and leaves its key in debt, so a batch larger than the
// burst still passes, and the key's rate over time holds. The debt is kept to a minute at the rate: a
// key is never shut out for longer than that, and a batch of more than a minute's events is charged a
// minute's (a request carries at most 4,000).

/** Keys tracked at most: the configured keys, or what an `authenticate` function lets in. */
const MAX_KEYS = 10_000;
/** The deepest debt, in seconds of refill: a key is never shut out for longer. */
export const MAX_DEBT_SECONDS = 60;

export interface Bucket {
  tokens: number;
  /** performance.now() of the last refill, ms. */
  at: number;
}

/** A bucket per key, refilled at `rate` a second up to `capacity` as it is read. */
export class KeyBuckets<B extends Bucket = Bucket> {
  readonly #buckets = new Map<string, B>();
  readonly #now: () => number;
  readonly #made: (tokens: number, at: number) => B;

  constructor(now: () => number, made: (tokens: number, at: number) => B) {
    this.#now = now;
    this.#made = made;
  }

  refilled(apiKey: string, rate: number, capacity: number, now = this.#now()): B {
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

  /** Gives back an admitted request's token: refused before its signature showed it the key holder's. */
  giveBack(apiKey: string, rate: number): void {
    const capacity = Math.max(1, rate);
    const bucket = this.#buckets.refilled(apiKey, rate, capacity);
    bucket.tokens = Math.min(capacity, bucket.tokens + 1);
  }

  /** Charges an admitted request for its `events` (its token paid for one), into debt if need be. */
  charge(apiKey: string, rate: number, events: number): void {
    const bucket = this.#buckets.refilled(apiKey, rate, Math.max(1, rate));
    // In debt no deeper than a minute's wait for the next token; never more tokens than before.
    const floor = Math.min(bucket.tokens, 1 - MAX_DEBT_SECONDS * rate);
    bucket.tokens = Math.max(floor, bucket.tokens - (events - 1));
  }
}
