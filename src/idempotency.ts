import { EndpointError } from './errors.ts';

// Segment delivers at least once: a timeout on its side, a lost answer or a retry after our 5xx sends the
// same event again, with the same `messageId`. The endpoint remembers which events it has processed, per
// API key, so that each reaches the handler at most once within a window.

/**
 * What a claim on an event finds:
 * - `'new'`: nobody has processed it; the caller does, then calls `complete` or `release`;
 * - `'done'`: it was processed successfully within the window: answer success without processing;
 * - `'busy'`: it is being processed elsewhere right now (another process sharing the store): the
 *   sender is told to retry later.
 */
export type Claim = 'new' | 'done' | 'busy';

/**
 * Where processed events are remembered. The in-memory store serves one process; to serve one endpoint
 * from several processes, implement this over a shared store (for Redis: `SET key pending NX PX ...` to
 * claim, `SET key done PX window` to complete, `DEL key` to release).
 */
export interface IdempotencyStore {
  claim(key: string): Claim | Promise<Claim>;
  /** The event succeeded: remember it for the window. */
  complete(key: string): void | Promise<void>;
  /** The event failed: forget the claim, so that its retry is processed. */
  release(key: string): void | Promise<void>;
}

export interface MemoryIdempotencyOptions {
  /** Events remembered at most; the oldest is forgotten first. @default 100000 */
  maxEntries?: number;
  /** How long a processed event is remembered. @default 86400000 (24 h) */
  ttlMs?: number;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

export const IDEMPOTENCY_DEFAULTS = {
  maxEntries: 100_000, // ~10 MB at ~100 bytes an entry (a key of API key and messageId, and a number)
  ttlMs: 24 * 60 * 60 * 1000, // 24 h
} as const;

/**
 * The default store: a bounded map from key to expiry time, in insertion order, which is also expiry
 * order (every entry lives as long), so both the oldest and the expired are found at its head.
 * A copy that arrives while the first is being processed waits for its outcome instead of running
 * alongside it: it answers as a duplicate if the first succeeds, and takes over if it fails.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly #now: () => number;
  readonly #done = new Map<string, number>();
  readonly #pending = new Map<string, Array<(claim: Claim) => void>>();

  constructor(options: MemoryIdempotencyOptions = {}) {
    this.maxEntries = options.maxEntries ?? IDEMPOTENCY_DEFAULTS.maxEntries;
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_DEFAULTS.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  /** Events remembered as done now. */
  get size(): number {
    return this.#done.size;
  }

  claim(key: string): Claim | Promise<Claim> {
    const expires = this.#done.get(key);
    if (expires !== undefined) {
      if (expires > this.#now()) return 'done';
      this.#done.delete(key);
    }
    const waiters = this.#pending.get(key);
    if (waiters === undefined) {
      this.#pending.set(key, []);
      return 'new';
    }
    return new Promise((resolve) => waiters.push(resolve));
  }

  complete(key: string): void {
    const now = this.#now();
    this.#done.delete(key);
    this.#done.set(key, now + this.ttlMs);
    this.#evict(now);
    const waiters = this.#pending.get(key);
    this.#pending.delete(key);
    for (const wake of waiters ?? []) wake('done');
  }

  release(key: string): void {
    const waiters = this.#pending.get(key);
    const next = waiters?.shift();
    if (next === undefined) this.#pending.delete(key);
    else next('new'); // the claim passes to the next copy, which processes it
  }

  #evict(now: number): void {
    for (const [key, expires] of this.#done) {
      if (this.#done.size <= this.maxEntries && expires > now) return;
      this.#done.delete(key);
    }
  }
}

/**
 * Runs `process` unless the event under `key` was already processed: `'duplicate'` then. A success is
 * remembered; a failure is released (and rethrown), so that the sender's retry is processed.
 */
export async function once<T>(
  store: IdempotencyStore,
  key: string,
  process: () => Promise<T> | T,
): Promise<T | 'duplicate'> {
  const claim = await store.claim(key);
  if (claim === 'done') return 'duplicate';
  if (claim === 'busy') throw new EndpointError('SEG_DUPLICATE_IN_FLIGHT');
  let result: T;
  try {
    result = await process();
  } catch (err) {
    await store.release(key);
    throw err;
  }
  await store.complete(key);
  return result;
}
