import { digest128 } from './digest.ts';
import { OPTIONS } from './option-table.ts';

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
  /**
   * Events remembered at most; the oldest is forgotten first. Given as the handler's `idempotency`
   * option, 0 turns duplicate suppression off (as `false` does). @default 100000
   */
  maxEntries?: number;
  /** How long a processed event is remembered. @default 86400000 (24 h) */
  ttlMs?: number;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

/** The defaults of the `idempotency` option, for a store made without them. */
export const IDEMPOTENCY_DEFAULTS = {
  maxEntries: OPTIONS['idempotency.maxEntries'].default,
  ttlMs: OPTIONS['idempotency.ttlMs'].default,
} as const;

const EMPTY = 0;

/**
 * The default store, in fixed memory: each remembered event is a keyed 128-bit digest of its key and
 * an expiry time, in a ring in insertion order (which is also expiry order: every entry lives as long),
 * found through an open-addressing index. The oldest entry is overwritten first; an expired one is
 * ignored. (A Map would do, but V8 leaves a hole per entry deleted from its front, and evictions walk
 * past them: bench/README.md.) Two different events share a digest
 * with a probability of about n²/2¹²⁹: never, in practice.
 *
 * A copy that arrives while the first is being processed waits for its outcome instead of running
 * alongside it: it answers as a duplicate if the first succeeds, and takes over if it fails.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly #now: () => number;
  /** Events being processed now, and the copies waiting for each (`null` while there are none). */
  readonly #pending = new Map<string, Array<(claim: Claim) => void> | null>();
  /** The ring: four words of digest and an expiry per slot; expiry 0 marks a slot not in the index. */
  readonly #digests: Uint32Array;
  readonly #expires: Float64Array;
  /** Open addressing, linear probing: slot + 1 of the ring, or EMPTY. */
  readonly #index: Int32Array;
  readonly #mask: number;
  #head = 0;
  #size = 0;

  constructor(options: MemoryIdempotencyOptions = {}) {
    this.maxEntries = options.maxEntries ?? IDEMPOTENCY_DEFAULTS.maxEntries;
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_DEFAULTS.ttlMs;
    this.#now = options.now ?? Date.now;
    const capacity = Math.max(1, this.maxEntries);
    this.#digests = new Uint32Array(capacity * 4);
    this.#expires = new Float64Array(capacity);
    let buckets = 2;
    while (buckets < capacity * 2) buckets *= 2; // at most half full: short probes
    this.#index = new Int32Array(buckets);
    this.#mask = buckets - 1;
  }

  /** Events remembered as done now. */
  get size(): number {
    const now = this.#now();
    let live = 0;
    for (let slot = 0; slot < this.#expires.length; slot++) if ((this.#expires[slot] as number) > now) live++;
    return live;
  }

  claim(key: string): Claim | Promise<Claim> {
    const running = this.#pending.get(key);
    if (running !== undefined) {
      const waiters = running ?? [];
      if (running === null) this.#pending.set(key, waiters);
      return new Promise((resolve) => waiters.push(resolve));
    }
    const slot = this.#find(digestOf(key));
    if (slot !== -1 && (this.#expires[slot] as number) > this.#now()) return 'done';
    this.#pending.set(key, null);
    return 'new';
  }

  complete(key: string): void {
    const waiters = this.#pending.get(key);
    this.#pending.delete(key);
    if (this.maxEntries > 0) {
      const digest = digestOf(key);
      const old = this.#find(digest);
      if (old !== -1) this.#unindex(old);
      this.#insert(digest, this.#now() + this.ttlMs);
    }
    if (waiters) for (const wake of waiters) wake('done');
  }

  release(key: string): void {
    const next = this.#pending.get(key)?.shift();
    if (next === undefined) this.#pending.delete(key);
    else next('new'); // the claim passes to the next copy, which processes it
  }

  #insert(digest: Uint32Array, expires: number): void {
    const slot = this.#head;
    if (this.#size === this.maxEntries) {
      if ((this.#expires[slot] as number) !== 0) this.#unindex(slot); // the oldest goes
    } else {
      this.#size++;
    }
    this.#digests.set(digest, slot * 4);
    this.#expires[slot] = expires;
    let bucket = (digest[0] as number) & this.#mask;
    while (this.#index[bucket] !== EMPTY) bucket = (bucket + 1) & this.#mask;
    this.#index[bucket] = slot + 1;
    this.#head = (slot + 1) % this.maxEntries;
  }

  /** The ring slot holding `digest`, or -1. */
  #find(digest: Uint32Array): number {
    const words = this.#digests;
    for (let bucket = (digest[0] as number) & this.#mask; ; bucket = (bucket + 1) & this.#mask) {
      const entry = this.#index[bucket] as number;
      if (entry === EMPTY) return -1;
      const at = (entry - 1) * 4;
      if (
        words[at] === digest[0] &&
        words[at + 1] === digest[1] &&
        words[at + 2] === digest[2] &&
        words[at + 3] === digest[3]
      ) {
        return entry - 1;
      }
    }
  }

  /** Takes a ring slot out of the index (backward-shift deletion keeps every probe chain unbroken). */
  #unindex(slot: number): void {
    const index = this.#index;
    const mask = this.#mask;
    let bucket = (this.#digests[slot * 4] as number) & mask;
    while (index[bucket] !== slot + 1) bucket = (bucket + 1) & mask;
    let hole = bucket;
    for (let next = (hole + 1) & mask; index[next] !== EMPTY; next = (next + 1) & mask) {
      const home = (this.#digests[((index[next] as number) - 1) * 4] as number) & mask;
      // Move the entry back into the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        index[hole] = index[next] as number;
        hole = next;
      }
    }
    index[hole] = EMPTY;
    this.#expires[slot] = 0;
  }
}

// The digest of the key being looked up or inserted, in one scratch array rather than a typed array per
// event. A synchronous handler's event is claimed and completed one after the other: the digest of the
// claim is still there for the completion.
const scratch = new Uint32Array(4);
let scratchKey: string | undefined;

function digestOf(key: string): Uint32Array {
  if (key !== scratchKey) {
    digest128(key, scratch);
    scratchKey = key;
  }
  return scratch;
}
