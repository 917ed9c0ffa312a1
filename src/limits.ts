import { EndpointError } from './errors.ts';

// Each customer's share of the endpoint (`rateLimit`, a key's own `rate`): a token bucket per API key,
// refilled at `rate` events a second up to `rate` (the burst). A request is let in while its key has a
// token left, then charged for every event it carries: a batch of 500 is let in on one token and leaves
// its key in debt, so a batch larger than the burst still passes, and the key's rate over time holds.

/** Keys tracked at most: the configured keys, or what an `authenticate` function lets in. */
const MAX_KEYS = 10_000;

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill, ms. */
  at: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Throws the 429 to answer when `apiKey` has no token left at `rate` events a second. */
  admit(apiKey: string, rate: number): void {
    const bucket = this.#refilled(apiKey, rate);
    if (bucket.tokens >= 1) return;
    const err = new EndpointError('SEG_RATE_LIMITED');
    err.retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / rate));
    throw err;
  }

  /** Takes `events` tokens from `apiKey`'s bucket, into debt if need be. */
  charge(apiKey: string, rate: number, events: number): void {
    this.#refilled(apiKey, rate).tokens -= events;
  }

  #refilled(apiKey: string, rate: number): Bucket {
    const now = this.#now();
    let bucket = this.#buckets.get(apiKey);
    if (bucket === undefined) {
      // Past the bound, the oldest key starts over with a full bucket: at worst one more burst.
      if (this.#buckets.size >= MAX_KEYS) this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = { tokens: rate, at: now };
      this.#buckets.set(apiKey, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    return bucket;
  }
}
