import { EndpointError } from './errors.ts';
import type { Claim, IdempotencyStore } from './idempotency.ts';
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
  const released = store.release(key);
  if (isPromise(released)) {
    return released.then(() => {
      throw err;
    });
  }
  throw err;
}
