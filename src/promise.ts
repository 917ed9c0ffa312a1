/**
 * Whether a value is a thenable. The pipeline checks before awaiting: a synchronous handler, store or
 * authenticator is answered without a turn of the microtask queue.
 */
export function isPromise<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | undefined)?.then === 'function';
}
