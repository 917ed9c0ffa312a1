import { afterOverdue, overdueOutcome } from './dispatch.ts';
import { EndpointError } from './errors.ts';
import { eventKey } from './event-digest.ts';
import {
  type Claim,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  OVERDUE,
  type OverdueAware,
} from './idempotency.ts';
import { isPromise } from './promise.ts';

// Processing an event at most once per messageId, whatever IdempotencyStore remembers them: claim it,
// process it, then remember a success or forget a failure, so that the sender's retry is processed.

/**
 * Runs `process` unless the event under `key` was already processed: `'duplicate'` then. A success is
 * remembered; a failure is released (and rethrown), so that the sender's retry is processed.
 */
export function once<T>(
  store: IdempotencyStore,
  key: string,
  process: () => Promise<T> | T,
): Promise<T | 'duplicate'> | T | 'duplicate' {
  const claim = store.claim(key);
  // The in-memory store answers at once: stay synchronous then (each await is a turn of the queue).
  return isPromise(claim)
    ? claim.then((c) => decide(store, key, c, process))
    : decide(store, key, claim, process);
}

/**
 * `once` for the event `messageId` of `apiKey`. With the in-memory store (the default) an event whose
 * handler answers synchronously is checked and remembered without being marked pending and without its
 * key being built: nothing else can run in between (MemoryIdempotencyStore.peek).
 */
export function onceEvent<T>(
  store: IdempotencyStore,
  apiKey: string,
  messageId: string,
  process: () => Promise<T> | T,
): Promise<T | 'duplicate'> | T | 'duplicate' {
  // The exact class only: a subclass may have its own idea of claim and complete.
  if (Object.getPrototypeOf(store) !== MemoryIdempotencyStore.prototype) {
    return once(store, eventKey(apiKey, messageId), process);
  }
  const memory = store as MemoryIdempotencyStore;
  const claim = memory.peek(apiKey, messageId);
  // Pending already: claimed as usual, under its key.
  if (isPromise(claim)) return claim.then((c) => decide(store, eventKey(apiKey, messageId), c, process));
  if (claim === 'done') return 'duplicate';
  // Pending past its handler's timeout (MemoryIdempotencyStore's OVERDUE): retried later, not run beside it.
  if (claim === 'busy') throw new EndpointError('SEG_DUPLICATE_IN_FLIGHT');
  const result = process(); // a throw: nothing was held, nothing to release
  if (!isPromise<T>(result)) {
    memory.completeEvent(apiKey, messageId);
    return result;
  }
  memory.hold(apiKey, messageId);
  const key = eventKey(apiKey, messageId);
  return result.then(
    (value) => succeeded(store, key, value),
    (err: unknown) => failed(store, key, err),
  );
}

function decide<T>(
  store: IdempotencyStore,
  key: string,
  claim: Claim,
  process: () => Promise<T> | T,
): Promise<T | 'duplicate'> | T | 'duplicate' {
  if (claim === 'done') return 'duplicate';
  if (claim === 'busy') throw new EndpointError('SEG_DUPLICATE_IN_FLIGHT');
  let result: Promise<T> | T;
  try {
    result = process();
  } catch (err) {
    return failed(store, key, err);
  }
  if (!isPromise<T>(result)) return succeeded(store, key, result);
  return result.then(
    (value) => succeeded(store, key, value),
    (err: unknown) => failed(store, key, err),
  );
}

function succeeded<T>(store: IdempotencyStore, key: string, value: T): T | Promise<T> {
  const completed = store.complete(key);
  return isPromise(completed) ? completed.then(() => value) : value;
}

function failed(store: IdempotencyStore, key: string, err: unknown): never | Promise<never> {
  const late = overdueOutcome(err);
  if (late !== undefined) {
    afterOverdue(err, keepClaimed(store, key, late));
    throw err;
  }
  const released = store.release(key);
  if (isPromise(released)) {
    return released.then(() => {
      throw err;
    });
  }
  throw err;
}

/**
 * An event answered 503 at its handler's timeout, the handler still running: the claim is kept until the
 * handler ends (`late`), then remembered if it succeeded, released if it failed or ran too long. A copy
 * meanwhile is told to retry at once (`OVERDUE`, where the store can), not run beside the first (two
 * calls to the partner's downstream for one event).
 */
function keepClaimed(store: IdempotencyStore, key: string, late: Promise<boolean>): Promise<unknown> {
  (store as OverdueAware)[OVERDUE]?.(key);
  return (
    late
      .then((succeeded) => (succeeded ? store.complete(key) : store.release(key)))
      // A store of the partner's that fails here (said in the log by guardStore): its claim stays as it
      // left it, until its own expiry.
      .catch(() => {})
  );
}
