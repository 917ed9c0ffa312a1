import { digest53 } from './digest.ts';
import type { Logger } from './log.ts';

// Events processed before this process started, as a store of events kept them: the duplicate filter
// remembers them too, so that Segment's retry of an event stored just before a crash (its answer lost
// with the process) is answered as a duplicate instead of being stored again.
//
// A store keeps a fingerprint of each event's API key, never the key itself, so an event's key is known
// only once a request brings one whose fingerprint matches: a key is fingerprinted the first time it is
// seen (again only after SEEN_MAX others), and its earlier events are handed to the filter then.

/** An event a store of events holds: its customer's key fingerprint, its messageId, when it came. */
export interface EarlierEvent {
  readonly source: string;
  readonly messageId: string;
  /** When it was received (its `receivedAt`, ms since the epoch): its window is counted from then. */
  readonly at: number;
}

/** Keys remembered as seen at most, by digest, before the record starts over (each fingerprinted again). */
export const SEEN_MAX = 100_000;

export class EarlierEvents {
  readonly #bySource = new Map<string, Array<readonly [string, number]>>();
  readonly #fingerprint: (apiKey: string) => string;
  /** The keys already looked for, by digest53: a request's key string is not kept. */
  readonly #seen = new Set<number>();
  /** When the last of them came (ms). */
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

  /** Whether some key's events may still be worth handing over, remembered for `ttlMs` from their coming. */
  left(ttlMs: number, now: number): boolean {
    return this.#bySource.size > 0 && this.#latest + ttlMs > now;
  }

  /**
   * Calls `remember` with `apiKey` and each of its events still within `ttlMs` of its coming, and when
   * that ends (ms), the first time the key is seen; not again for that key. All of them in this turn: a customer's
   * share of the 4 MiB read back (file-recent.ts), 0.5–1 µs each (README.md).
   */
  take(
    apiKey: string,
    ttlMs: number,
    now: number,
    remember: (apiKey: string, messageId: string, until: number) => void,
  ): void {
    const seen = digest53(apiKey);
    if (this.#seen.has(seen)) return;
    if (this.#seen.size >= SEEN_MAX) this.#seen.clear();
    this.#seen.add(seen);
    const source = this.#fingerprint(apiKey);
    const events = this.#bySource.get(source);
    if (events === undefined) return;
    this.#bySource.delete(source);
    for (const [messageId, at] of events) if (at + ttlMs > now) remember(apiKey, messageId, at + ttlMs);
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
        this.#state = undefined; // the filter goes on without them (readEarlier says why, and never rejects)
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
    state.take(apiKey, ttlMs, now, remember);
    return undefined;
  }
}

/**
 * The earlier events `read` gives, or undefined, said once, when they cannot be read, or not within
 * `waitMs` of a loop free to read them: the first requests wait for them, and a disk that hangs must not
 * hold them for long.
 */
export function readEarlier(
  read: () => Promise<EarlierEvents>,
  log: Logger,
  waitMs = EARLIER_WAIT_MS,
): Promise<EarlierEvents | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let said = false;
  const without = (fields: object, why: string) => {
    if (!said) log.warn(fields, `the events stored before this start ${why}: their retries are stored again`);
    said = true;
    return undefined;
  };
  const late = new Promise<undefined>((resolve) => {
    const wait = () => {
      const due = performance.now() + waitMs;
      timer = setTimeout(() => {
        // Late by a quarter of the wait: the loop was held (a start's own work, a handlers module that
        // computes), not the first requests. The read's steps end in the poll, after the timers: it is
        // given its wait again rather than dropped unread.
        if (performance.now() - due > waitMs / 4) wait();
        else resolve(without({ waitMs }, 'were not read in time'));
      }, waitMs).unref();
    };
    wait();
  });
  const done = read().then(
    (earlier) => earlier,
    (err: unknown) => without({ err }, 'could not be read'),
  );
  return Promise.race([done.finally(() => clearTimeout(timer)), late]);
}

// 1 s: what the first requests after a start may wait before their handler's own timeout (4 s) starts;
// past Segment's 5 s in all only when both run out, and then Segment retries.
const EARLIER_WAIT_MS = 1_000;
