// Events processed before this process started, as a store of events kept them: the duplicate filter
// remembers them too, so that Segment's retry of an event stored just before a crash (its answer lost
// with the process) is answered as a duplicate instead of being stored again.
//
// A store keeps a fingerprint of each event's API key, never the key itself, so an event's key is known
// only once a request brings one whose fingerprint matches: each key is fingerprinted once, the first
// time it is seen, and its earlier events are handed to the filter then.

/** An event a store of events holds: its customer's key fingerprint, its messageId, when it was stored. */
export interface EarlierEvent {
  readonly source: string;
  readonly messageId: string;
  /** When it was stored (ms since the epoch). */
  readonly at: number;
}

/** Keys fingerprinted at most before the record of keys seen starts over (each is fingerprinted again). */
const SEEN_MAX = 4096;

export class EarlierEvents {
  readonly #bySource = new Map<string, Array<readonly [string, number]>>();
  readonly #fingerprint: (apiKey: string) => string;
  readonly #seen = new Set<string>();
  /** When the last of them was stored (ms). */
  readonly #latest: number;

  /** `fingerprint` gives an API key's fingerprint as the store keeps it. */
  constructor(events: Iterable<EarlierEvent>, fingerprint: (apiKey: string) => string) {
    this.#fingerprint = fingerprint;
    let latest = 0;
    for (const { source, messageId, at } of events) {
      const own = this.#bySource.get(source);
      if (own === undefined) this.#bySource.set(source, [[messageId, at]]);
      else own.push([messageId, at]);
      if (at > latest) latest = at;
    }
    this.#latest = latest;
  }

  /** Whether some key's events may still be worth handing over, remembered for `ttlMs` from their storing. */
  left(ttlMs: number, now: number): boolean {
    return this.#bySource.size > 0 && this.#latest + ttlMs > now;
  }

  /**
   * Calls `remember` with each event of `apiKey` still within `ttlMs` of its storing, and when that ends
   * (ms), the first time the key is seen; never again for that key.
   */
  take(
    apiKey: string,
    ttlMs: number,
    now: number,
    remember: (messageId: string, until: number) => void,
  ): void {
    if (this.#seen.has(apiKey)) return;
    if (this.#seen.size >= SEEN_MAX) this.#seen.clear();
    this.#seen.add(apiKey);
    const source = this.#fingerprint(apiKey);
    const events = this.#bySource.get(source);
    if (events === undefined) return;
    this.#bySource.delete(source);
    for (const [messageId, at] of events) if (at + ttlMs > now) remember(messageId, at + ttlMs);
  }
}

/**
 * What a duplicate filter holds of earlier events, to look at on each claim: while they are being read, a
 * promise the claims wait for; then the events, until each key's are handed over or the last is past the
 * window.
 */
export class EarlierHandOver {
  #state: EarlierEvents | Promise<void> | undefined;

  constructor(earlier: EarlierEvents | Promise<EarlierEvents | undefined>) {
    if (!(earlier instanceof Promise)) {
      this.#state = earlier;
      return;
    }
    const reading: Promise<void> = earlier.then(
      (read) => {
        this.#state = read;
      },
      () => {
        this.#state = undefined; // said where they were read; the filter goes on without them
      },
    );
    this.#state = reading;
  }

  /**
   * The earlier events of `apiKey` handed to `remember` (see EarlierEvents.take); the promise to wait for
   * while they are being read; `'over'` once none is left worth a look, for good.
   */
  admit(
    apiKey: string,
    ttlMs: number,
    now: number,
    remember: (apiKey: string, messageId: string, until: number) => void,
  ): Promise<void> | 'over' | undefined {
    const state = this.#state;
    if (state instanceof Promise) return state;
    if (state?.left(ttlMs, now) !== true) return 'over';
    state.take(apiKey, ttlMs, now, (messageId, until) => remember(apiKey, messageId, until));
    return undefined;
  }
}
