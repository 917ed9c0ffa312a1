// The keys whose claim the shared duplicate filter (idempotency-redis.ts) gave up on: its `SET NX` went
// unanswered past its bound, or its connection was closed under it, and may yet have run, leaving a
// claim of the store's own that nobody handles. The sender's retry takes such a claim over rather than
// being refused as a copy in flight.

/** Keys kept at most: past it the oldest is forgotten, and its retry waits for the claim to expire. */
const MAX_KEYS = 10_000;

export class GivenUp {
  readonly #keys = new Set<string>();

  add(key: string): void {
    if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.values().next().value as string);
    this.#keys.add(key);
  }

  /** Whether `key` was given up on; forgotten from now on either way. */
  take(key: string): boolean {
    return this.#keys.delete(key);
  }
}
