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
// Parse time: a body's cost is not its size. 600 bytes of gzip inflate to 510 KB of `[{},{},…]`, whose
// parse and guards take ~20 ms of the one thread every customer shares; a key sending them at once would
// leave the others a few percent of the endpoint. Each key may spend `parseShare` percent of a core
// parsing, over a second: refilled at that share up to a second's worth, let in while its bucket is not
// empty, charged after each parse what the parse took. An ordinary event takes a few microseconds to
// parse, a small part of its cost: a key sending nothing else never reaches the share.

/** Keys tracked at most: the configured keys, or what an `authenticate` function lets in. */
const MAX_KEYS = 10_000;
const MAX_DEBT_SECONDS = 60;

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill, ms. */
  at: number;
}

/** A bucket per key, refilled at `rate` a second up to `capacity` as it is read. */
class KeyBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  refilled(apiKey: string, rate: number, capacity: number): Bucket {
    const now = this.#now();
    let bucket = this.#buckets.get(apiKey);
    if (bucket === undefined) {
      // Past the bound, the oldest key starts over with a full bucket: at worst one more burst.
      if (this.#buckets.size >= MAX_KEYS) this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = { tokens: capacity, at: now };
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
    this.#buckets = new KeyBuckets(now);
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

/** Each key's time parsing bodies, within `percent` of a core (`parseShare`). Tokens are ms. */
export class ParseShare {
  readonly #buckets: KeyBuckets;
  /** ms of parsing a key earns a second, and the most it holds. */
  readonly #rate: number;

  constructor(percent: number, now: () => number = () => performance.now()) {
    this.#buckets = new KeyBuckets(now);
    this.#rate = percent * 10;
  }

  /** Lets `apiKey` in while its bucket is not empty, or throws the 429 to answer. */
  admit(apiKey: string): void {
    const bucket = this.#buckets.refilled(apiKey, this.#rate, this.#rate);
    if (bucket.tokens > 0) return;
    throw new EndpointError('SEG_PARSE_SHARE', undefined, {
      retryAfter: Math.max(1, Math.ceil(-bucket.tokens / this.#rate)),
    });
  }

  /** Charges `apiKey` the `ms` a parse of its took, into debt no deeper than a minute's wait. */
  charge(apiKey: string, ms: number): void {
    const bucket = this.#buckets.refilled(apiKey, this.#rate, this.#rate);
    bucket.tokens = Math.max(Math.min(bucket.tokens, -MAX_DEBT_SECONDS * this.#rate), bucket.tokens - ms);
  }
}
