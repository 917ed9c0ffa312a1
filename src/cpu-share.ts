import { performance } from 'node:perf_hooks';
import { EndpointError } from './errors.ts';
import { type Bucket, KeyBuckets, MAX_DEBT_SECONDS } from './limits.ts';

// Each customer's share of the event loop (`cpuShare`). A request's cost is not its size: 49 bytes of
// gzip inflate to 2,500 `{}`, each refused on its own; 550 inflate to 510 KB of `[{},{},…]` to parse:
// ~15–20 ms of the one thread every customer shares, each request. A key sending those at once left the
// others a few percent of the endpoint.
//
// So each key may spend `cpuShare` percent of the thread over a second while others wait: a bucket of
// milliseconds, refilled at that share up to a second's worth, charged the time each turn its requests
// hold the thread (settings, parse, each event, each slice of a batch). A key whose bucket is empty is
// refused only while that protects someone: a request of another key came within the last 10 s, and the
// thread was busy (over 90 % of the time since the last look, taken a tenth of a second apart at least),
// or, with time to spare, what the key has under way already fills it. Alone, or with time to spare, a
// key takes what it needs; time it takes alone is not owed afterwards.
//
// Twice: as a request is let in, before its body is read, with what its key's requests cost lately set
// aside for it (requests that overlap cannot all pass on one full bucket), and again once the body came,
// before any of its work, as the requests of a burst let in together were charged meanwhile.

const BUSY = 0.9;
const WINDOW_MS = 100;
/** What a window that was not busy had to spare, at least: WINDOW_MS × (1 - BUSY). */
const SPARE_MS = 10;
/**
 * How recently another key must have come for a key to count as not alone: long enough to outlast a
 * burst of costly requests read in one turn of the loop (200 at once held it 2-4 s), in which no other
 * key's request is read, however often it was sent.
 */
const OTHERS_MS = 10_000;
/** How far a key's estimate falls towards a cheaper request's cost (it rises to a costlier one's at once). */
const FALL = 0.2;

interface CostBucket extends Bucket {
  /** ms set aside for its requests let in and not answered yet. */
  reserved: number;
  /** What a request of this key costs, ms: its costliest lately, falling slowly. */
  estimate: number;
  /** Its requests let in and not answered yet. */
  inFlight: number;
}

/** The share of the event loop's time busy since the last call (performance.eventLoopUtilization). */
export function loopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, last);
    last = now;
    return utilization;
  };
}

/** A request as its key's share follows it (an Exchange). */
export interface SharedRequest {
  readonly apiKey: string | undefined;
  readonly answered: boolean;
  /** Followed by its key's share: let in by it, and not answered yet (or in the turn that answered it). */
  followed: boolean;
  /** What its key's share set aside for it as it was let in, until it is at its work; -1: none. */
  reserved: number;
  /** It got to its work: its body came (or a host had read it). */
  worked: boolean;
  /** ms its turns have held the event loop so far. */
  spent: number;
  /** In a turn of its processing, charged when the turn ends. */
  inTurn: boolean;
}

/** Each key's time on the event loop, within `percent` of it while others wait. */
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
    const made = (tokens: number, at: number) => ({ tokens, at, reserved: 0, estimate: 0, inFlight: 0 });
    this.#buckets = new KeyBuckets(now, made);
    this.#now = now;
    this.#utilization = utilization;
    this.#rate = percent * 10;
  }

  /**
   * Lets a request of `apiKey` come in at `now`, setting aside its key's estimate (returned: the
   * request's `reserved`), or throws the 429 to answer. -1: its key is alone, the request not followed
   * (what a key takes alone is not owed: its bookkeeping would cost every request of a lone customer).
   */
  admit(apiKey: string, now = this.#now()): number {
    this.#look(apiKey, now);
    if (this.#alone(now)) return -1;
    const bucket = this.#bucket(apiKey, now);
    // With time to spare, no more at once than it holds: they would hold the thread one after the other.
    const fits = bucket.inFlight === 0 || (bucket.inFlight + 1) * bucket.estimate <= SPARE_MS;
    if (bucket.tokens - bucket.reserved > 0 || (!this.#busy && fits)) {
      bucket.reserved += bucket.estimate;
      bucket.inFlight++;
      return bucket.estimate;
    }
    throw this.#refusal(bucket);
  }

  /** Whether a request let in with `reserved` set aside may go on to its work, its body come at `now`. */
  proceed(apiKey: string, reserved: number, now = this.#now()): void {
    this.#look(apiKey, now);
    const bucket = this.#bucket(apiKey, now);
    if (bucket.tokens - (bucket.reserved - reserved) > 0 || !this.#busy || this.#alone(now)) return;
    throw this.#refusal(bucket);
  }

  /** Charges `apiKey` `ms` of a request's processing; alone, into no debt, else one of a minute at most. */
  charge(apiKey: string, ms: number, now = this.#now()): void {
    this.#charged(this.#bucket(apiKey, now), ms, now);
  }

  #charged(bucket: CostBucket, ms: number, now: number): void {
    const floor = this.#alone(now) ? 0 : -MAX_DEBT_SECONDS * this.#rate;
    bucket.tokens = Math.max(Math.min(bucket.tokens, floor), bucket.tokens - ms);
  }

  /**
   * A turn of `x`'s processing, begun at `started`, ended: its key charged. What was set aside for it is
   * given back once it is at its work (a body came, or it was answered): its turns are charged as they
   * end from then on, an async handler's wait holds nothing.
   */
  turnEnded(x: SharedRequest, started: number): void {
    x.inTurn = false;
    if (!x.followed) return;
    const now = this.#now();
    x.spent += now - started;
    // One look-up of its key's bucket for the turn: this runs for every request of a key not alone.
    const bucket = this.#bucket(x.apiKey as string, now);
    this.#charged(bucket, now - started, now);
    if (x.worked || x.answered) this.#release(x, bucket);
    if (x.answered) this.#settled(x, bucket);
  }

  /** `x` was answered: settled now, or at the end of the turn that answered it (`turnEnded`). */
  answered(x: SharedRequest): void {
    if (!x.followed || x.inTurn) return;
    this.#settled(x, this.#bucket(x.apiKey as string, this.#now()));
  }

  #settled(x: SharedRequest, bucket: CostBucket): void {
    this.#release(x, bucket);
    // Learnt from a request that got to its work: refusals before it would teach that requests are cheap.
    if (x.worked) this.#learnt(bucket, x.spent);
    x.followed = false;
  }

  /** A request let in with `reserved` set aside, answered having `spent` that in all (unit tests). */
  settle(apiKey: string, reserved: number, spent: number): void {
    const bucket = this.#bucket(apiKey, this.#now());
    if (reserved >= 0) this.#given(bucket, reserved);
    this.#learnt(bucket, spent);
  }

  /** What a request cost: its key's estimate rises to a costlier one at once, falls slowly. */
  #learnt(bucket: CostBucket, spent: number): void {
    const { estimate } = bucket;
    bucket.estimate = spent >= estimate ? spent : estimate + FALL * (spent - estimate);
  }

  #release(x: SharedRequest, bucket: CostBucket): void {
    if (x.reserved < 0) return;
    this.#given(bucket, x.reserved);
    x.reserved = -1;
  }

  #given(bucket: CostBucket, reserved: number): void {
    bucket.reserved = Math.max(0, bucket.reserved - reserved);
    bucket.inFlight = Math.max(0, bucket.inFlight - 1);
  }

  #bucket(apiKey: string, now: number): CostBucket {
    return this.#buckets.refilled(apiKey, this.#rate, this.#rate, now);
  }

  /** Notes a request of `apiKey` at `now`, and how busy the thread was when the last look is old enough. */
  #look(apiKey: string, now: number): void {
    if (now - this.#sampledAt >= WINDOW_MS) {
      this.#busy = this.#utilization() >= BUSY;
      this.#sampledAt = now;
    }
    if (apiKey !== this.#lastKey) {
      if (this.#lastKey !== undefined) this.#switchedAt = now;
      this.#lastKey = apiKey;
    }
  }

  /** No request of another key came within OTHERS_MS: nobody to protect. */
  #alone(now: number): boolean {
    return now - this.#switchedAt >= OTHERS_MS;
  }

  #refusal(bucket: CostBucket): EndpointError {
    const owed = Math.max(0, bucket.reserved - bucket.tokens);
    const seconds = Math.ceil(owed / this.#rate);
    return new EndpointError('SEG_CPU_SHARE', undefined, {
      retryAfter: Math.min(MAX_DEBT_SECONDS, Math.max(1, seconds)),
    });
  }
}
