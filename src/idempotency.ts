import { DigestSet } from './digest-set.ts';
import { type EarlierEvents, EarlierHandOver } from './earlier-events.ts';
import { digestOf, digestOfEvent, digestText, eventKey } from './event-digest.ts';
import { OPTIONS } from './option-table.ts';
import { DigestRing } from './ring.ts';

// Segment delivers at least once: a timeout on its side, a lost answer or a retry after our 5xx sends the
// same event again, with the same `messageId`. The endpoint remembers which events it has processed, per
// API key, so that each reaches the handler at most once within a window.

/**
 * What a claim on an event finds:
 * - `'new'`: nobody has processed it; the caller does, then calls `complete` or `release`;
 * - `'done'`: it was processed successfully within the window: answer success without processing;
 * - `'busy'`: it is being processed elsewhere right now (another process sharing the store), or a copy
 *   waited for it and it failed: the sender is told to retry later.
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
  maxEntries?: number | undefined;
  /** How long a processed event is remembered. @default 86400000 (24 h) */
  ttlMs?: number | undefined;
  /** The clock, for tests. @default Date.now */
  now?: (() => number) | undefined;
}

/**
 * The method by which a store of ours (in memory, Redis) hears that an event's handler was answered 503
 * at its timeout and still runs (once.ts): a symbol, so that no partner's store has one by chance.
 */
export const OVERDUE = Symbol('segment-endpoint.overdue');

/**
 * Told the handlerTimeoutMs of each handler a store is given to (idempotency-option.ts): a store whose
 * claims expire (Redis) keeps them longer than a handler may run.
 */
export const HANDLER_TIMEOUT = Symbol('segment-endpoint.handlerTimeout');

/**
 * How the standalone process tells the in-memory store of the events its file store kept from before
 * the start (earlier-events.ts): a symbol, not a method of the public class, whose argument is ours.
 */
export const EARLIER = Symbol('segment-endpoint.earlier');

/** A store that can tell copies of an overdue event to retry at once (see `OVERDUE`). */
export type OverdueAware = IdempotencyStore & {
  [OVERDUE]?: (key: string) => void;
  [HANDLER_TIMEOUT]?: (ms: number) => void;
};

/** The defaults of the `idempotency` option, for a store made without them. */
export const IDEMPOTENCY_DEFAULTS = {
  maxEntries: OPTIONS['idempotency.maxEntries'].default,
  ttlMs: OPTIONS['idempotency.ttlMs'].default,
} as const;

/**
 * The default store, in fixed memory: each remembered event is a keyed 128-bit digest of its key and an
 * expiry time, in a ring (ring.ts). The oldest entry is overwritten first; an expired one is ignored. (A
 * Map would do, but V8 leaves a hole per entry deleted from its front, and evictions walk past them:
 * bench/HISTORY.md.) Two different events share a digest with a probability of about n²/2¹²⁹: never, in
 * practice.
 *
 * A copy that arrives while the first is being processed waits for its outcome instead of running
 * alongside it: it answers as a duplicate if the first succeeds, and `'busy'` (retry later) if it fails.
 * It never runs the event after the first: its answer would then come a whole handler timeout after
 * the first's, and with a hung handler each further copy's another timeout later, past Segment's 5 s.
 * The first's processing ends within its timeout, and so every copy's wait: a handler still running then
 * keeps the event pending, its copies told to retry at once (`[OVERDUE]`), until it ends (once.ts).
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly #now: () => number;
  /**
   * Events being processed now. Room for 512 (17 KiB) from the start: a store's group commit can take
   * the count from 0 to a few hundred and back every millisecond, and a set that grew and shrank with it
   * would allocate its tables as often.
   */
  readonly #pending = new DigestSet(1024);
  /**
   * The copies waiting for an event being processed, by its digest (as text), as the marks are: rare, so
   * this map is mostly empty.
   */
  readonly #waiters = new Map<string, Array<(claim: Claim) => void>>();
  /**
   * Events still pending whose handler ran past its timeout (`[OVERDUE]`): a copy is told to retry at once
   * rather than wait, since the wait would outlast its own timeout. Rare: mostly empty.
   */
  readonly #overdue = new DigestSet(4);
  readonly #ring: DigestRing;
  /** Events processed before this store was made, still to be remembered (`[EARLIER]`). */
  #earlier: EarlierHandOver | undefined;

  constructor(options: MemoryIdempotencyOptions = {}) {
    this.maxEntries = options.maxEntries ?? IDEMPOTENCY_DEFAULTS.maxEntries;
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_DEFAULTS.ttlMs;
    this.#now = options.now ?? Date.now;
    this.#ring = new DigestRing(this.maxEntries);
  }

  /** Events remembered as done now. */
  get size(): number {
    return this.#ring.live(this.#now());
  }

  /**
   * Remembers `earlier` events as done too (each for the window from when it was processed), each key's
   * from the first time that key is seen: a key is known to them by its fingerprint only. While they are
   * being read, claims wait for them.
   */
  [EARLIER](earlier: EarlierEvents | Promise<EarlierEvents | undefined>): void {
    if (this.maxEntries > 0) this.#earlier = new EarlierHandOver(earlier);
  }

  claim(key: string): Claim | Promise<Claim> {
    const earlier = this.#earlier;
    if (earlier !== undefined && key.includes('\n')) {
      const loading = this.#admit(earlier, key.slice(0, key.indexOf('\n'))); // eventKey(apiKey, messageId)
      if (loading !== undefined) return loading.then(() => this.claim(key));
    }
    const digest = digestOf(key);
    if (this.#pending.has(digest)) {
      if (this.#overdue.size > 0 && this.#overdue.has(digest)) return 'busy';
      const id = digestText(digest);
      const waiters = this.#waiters.get(id) ?? [];
      this.#waiters.set(id, waiters);
      return new Promise((resolve) => waiters.push(resolve));
    }
    if (this.#done(digest)) return 'done';
    this.#pending.add(digest);
    return 'new';
  }

  complete(key: string): void {
    const digest = digestOf(key);
    this.#pending.delete(digest);
    if (this.#overdue.size > 0) this.#overdue.delete(digest);
    this.#remember(digest);
    this.#wake(digest, 'done');
  }

  release(key: string): void {
    const digest = digestOf(key);
    this.#pending.delete(digest);
    if (this.#overdue.size > 0) this.#overdue.delete(digest);
    this.#wake(digest, 'busy'); // retried by their sender, and processed then
  }

  /**
   * The event's handler was answered 503 at its timeout and still runs: it stays pending until `complete`
   * or `release`, and its copies, those waiting and those to come, are told to retry meanwhile.
   */
  [OVERDUE](key: string): void {
    const digest = digestOf(key);
    if (!this.#pending.has(digest)) return;
    this.#overdue.add(digest);
    this.#wake(digest, 'busy');
  }

  /** Tells the copies waiting for the event of `digest` what became of it. */
  #wake(digest: Uint32Array, claim: Claim): void {
    if (this.#waiters.size === 0) return;
    const id = digestText(digest); // a copy waited: rare, the text costs nothing that matters
    const waiters = this.#waiters.get(id);
    if (waiters === undefined) return;
    this.#waiters.delete(id);
    for (const wake of waiters) wake(claim);
  }

  /**
   * once()'s own path to this store, for the event `messageId` of `apiKey` (its key is eventKey() of the
   * two): `claim` without marking the event pending, and without building its key. The caller processes
   * the event at once: if that ends synchronously it calls `completeEvent`, nothing else having run in
   * between; if it goes asynchronous, `hold` marks it pending before anything else can run, and the
   * claim's usual `complete` or `release` follows. An event pending already is claimed as usual.
   */
  peek(apiKey: string, messageId: string): Claim | Promise<Claim> {
    if (this.#earlier !== undefined) {
      const loading = this.#admit(this.#earlier, apiKey);
      if (loading !== undefined) return loading.then(() => this.claim(eventKey(apiKey, messageId)));
    }
    const digest = digestOfEvent(apiKey, messageId);
    if (this.#pending.size > 0 && this.#pending.has(digest)) return this.claim(eventKey(apiKey, messageId));
    return this.#done(digest) ? 'done' : 'new';
  }

  /** The event of a `peek` went asynchronous: it is pending from now on. */
  hold(apiKey: string, messageId: string): void {
    this.#pending.add(digestOfEvent(apiKey, messageId));
  }

  /** The event of a `peek` succeeded synchronously: remember it for the window. */
  completeEvent(apiKey: string, messageId: string): void {
    this.#remember(digestOfEvent(apiKey, messageId));
  }

  /** The earlier events of `apiKey` remembered, the first time it is seen; while they are read, the wait. */
  #admit(earlier: EarlierHandOver, apiKey: string): Promise<void> | undefined {
    const said = earlier.admit(apiKey, this.ttlMs, this.#now(), this.#rememberAt);
    if (said !== 'over') return said;
    this.#earlier = undefined;
    return undefined;
  }

  readonly #rememberAt = (apiKey: string, messageId: string, until: number) =>
    this.#ring.put(digestOfEvent(apiKey, messageId), until);

  #done(digest: Uint32Array): boolean {
    return this.#ring.expiry(digest) > this.#now();
  }

  #remember(digest: Uint32Array): void {
    if (this.maxEntries > 0) this.#ring.put(digest, this.#now() + this.ttlMs);
  }
}
