import { Deadline, type Deadlines } from './deadlines.ts';

/**
 * Whether a value is a thenable. The pipeline checks before awaiting: a synchronous handler, store or
 * authenticator is answered without a turn of the microtask queue.
 */
export function isPromise<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | undefined)?.then === 'function';
}

/**
 * `value`'s outcome, or a rejection with `late()` at `deadlines`' length without one: for what a
 * partner's code answers asynchronously (an `authenticate`, a duplicate-filter store), which may never
 * answer. On the shared deadline list, not a timer each.
 */
export function within<T>(value: PromiseLike<T>, deadlines: Deadlines, late: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = new Expiry(() => reject(late()));
    deadlines.add(deadline);
    value.then(
      (settled) => {
        deadline.cancel();
        resolve(settled);
      },
      (err: unknown) => {
        deadline.cancel();
        reject(err);
      },
    );
  });
}

class Expiry extends Deadline {
  readonly #fire: () => void;

  constructor(fire: () => void) {
    super();
    this.#fire = fire;
  }

  expired(): void {
    this.#fire();
  }
}
