import { Deadlines } from './deadlines.ts';
import { describeValue, EndpointError } from './errors.ts';
import {
  type Claim,
  HANDLER_TIMEOUT,
  type IdempotencyStore,
  type MemoryIdempotencyOptions,
  MemoryIdempotencyStore,
  OVERDUE,
  type OverdueAware,
} from './idempotency.ts';
import type { Logger } from './log.ts';
import { checkOptionNames } from './option-names.ts';
import { integer } from './option-table.ts';
import type { HandlerOptions } from './options.ts';
import { isPromise, within } from './promise.ts';

/**
 * A duplicate-filter store other than the in-memory one (a partner's own, Redis) held to its contract:
 * each call answers within `timeoutMs` (handlerTimeoutMs), or the event is answered 503
 * `SEG_IDEMPOTENCY_UNAVAILABLE` and retried; a claim that is not `'new'`, `'done'` or `'busy'` is a bug
 * in the store (a 500, the handler not run), never taken as new; and failing to forget a failed event
 * is logged, the handler's own answer kept. The in-memory store is used as it is.
 */
function guardStore(store: IdempotencyStore, log: Logger, timeoutMs: number): OverdueAware {
  if (Object.getPrototypeOf(store) === MemoryIdempotencyStore.prototype) return store;
  (store as OverdueAware)[HANDLER_TIMEOUT]?.(timeoutMs);
  const deadlines = new Deadlines(timeoutMs);
  const late = () =>
    new EndpointError(
      'SEG_IDEMPOTENCY_UNAVAILABLE',
      `The duplicate filter did not answer within ${timeoutMs} ms`,
    );
  const bounded = <T>(value: T | PromiseLike<T>) =>
    isPromise(value) ? within(value, deadlines, late) : value;
  const forgetFailed = (err: unknown) =>
    log.warn(
      { err },
      'the duplicate filter could not forget a failed event: its retry may wait for the claim to expire',
    );
  // Events whose handler ran past its timeout (once.ts): nobody waits for their late complete, so its
  // failure is said here.
  const overdue = new Set<string>();
  const rememberFailed = (err: unknown) =>
    log.warn(
      { err },
      'the duplicate filter could not remember an event whose handler succeeded after its timeout: its copies wait for the claim to expire',
    );
  return {
    claim(key) {
      const answer = store.claim(key);
      if (!isPromise(answer)) return checkClaim(answer);
      return within(answer, deadlines, late).then(checkClaim, (err: unknown) => {
        // A claim that comes after its event was refused holds the event for nothing: given back.
        if (err instanceof EndpointError) {
          Promise.resolve(answer).then(
            (claim) => claim === 'new' && this.release(key),
            () => {},
          );
        }
        throw err;
      });
    },
    complete(key) {
      if (!overdue.delete(key)) return bounded(store.complete(key));
      return Promise.resolve()
        .then(() => bounded(store.complete(key)))
        .catch(rememberFailed);
    },
    // Ours (Redis): told of an overdue event, as the in-memory store is (once.ts).
    [OVERDUE]: (key: string) => {
      overdue.add(key);
      (store as OverdueAware)[OVERDUE]?.(key);
    },
    release(key) {
      overdue.delete(key);
      try {
        const released = bounded(store.release(key));
        if (isPromise(released)) return Promise.resolve(released).catch(forgetFailed);
      } catch (err) {
        forgetFailed(err);
      }
    },
  };
}

function checkClaim(claim: Claim): Claim {
  if (claim === 'new' || claim === 'done' || claim === 'busy') return claim;
  throw new Error(
    `the idempotency store's claim answered ${describeValue(claim)}, not 'new', 'done' or 'busy'`,
  );
}

/**
 * The `idempotency` option, checked: the in-memory store made from its options, or a store given, guarded
 * (guardStore). `{ maxEntries: 0 }` turns duplicate suppression off, as `false` does.
 */
export function resolveIdempotency(
  value: HandlerOptions['idempotency'],
  log: Logger,
  timeoutMs: number,
): IdempotencyStore | undefined {
  if (value === false) return undefined;
  if (value === undefined) return new MemoryIdempotencyStore();
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`options.idempotency must be an object or false, got ${describeValue(value)}`);
  }
  const store = value as Partial<IdempotencyStore>;
  if ('claim' in store || 'complete' in store || 'release' in store) {
    const { claim, complete, release } = store;
    if (typeof claim !== 'function' || typeof complete !== 'function' || typeof release !== 'function') {
      throw new TypeError('options.idempotency: a store needs claim, complete and release functions');
    }
    return guardStore(value as IdempotencyStore, log, timeoutMs);
  }
  return memoryFilter(value as MemoryIdempotencyOptions);
}

/** The in-memory store the `idempotency` option's own options make; undefined for `{ maxEntries: 0 }`. */
export function memoryFilter(value: MemoryIdempotencyOptions = {}): MemoryIdempotencyStore | undefined {
  checkOptionNames(value, MEMORY_OPTION_NAMES, {}, 'options.idempotency.');
  if (value.now !== undefined && typeof value.now !== 'function') {
    throw new TypeError(
      `options.idempotency.now must be a function returning ms, got ${describeValue(value.now)}`,
    );
  }
  const maxEntries = integer('idempotency.maxEntries', value.maxEntries);
  const ttlMs = integer('idempotency.ttlMs', value.ttlMs);
  return maxEntries === 0 ? undefined : new MemoryIdempotencyStore({ maxEntries, ttlMs, now: value.now });
}

/** The in-memory store's options (the compiler holds the list to MemoryIdempotencyOptions). */
const MEMORY_OPTION_NAMES: readonly string[] = Object.keys({
  maxEntries: true,
  ttlMs: true,
  now: true,
} satisfies Record<keyof MemoryIdempotencyOptions, true>);
