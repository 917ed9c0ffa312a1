/**
 * Whether a value is a thenable. The pipeline checks before awaiting: a synchronous handler, store or
 * authenticator is answered without a turn of the microtask queue.
 */
export function isPromise<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | undefined)?.then === 'function';
}

/**
 * `value`'s outcome, or a rejection with `late()` once `ms` have passed without one: for what a partner's
 * code answers asynchronously (an `authenticate`, a duplicate-filter store), which may never answer.
 */
export function within<T>(value: PromiseLike<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([value, deadline]).finally(() => clearTimeout(timer));
}
