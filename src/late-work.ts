import { Tally } from './tally.ts';

// Work that goes on after its event was answered: a handler still running past its timeout (answered
// 503), then its event's claim remembered or released. A handler's idle() waits for it too: a host that
// closes its store once idle() resolves (a Redis client) closes it after that work, not under it.

export class LateWork {
  readonly #work = new Tally();
  /**
   * Handlers still running past their timeout, until they end, however late: what they hold (their
   * events, their bodies) is held still, and neither maxInFlight nor the bodies' budget counts it.
   */
  #overdue = 0;
  /** Holds the process open while someone waits: the work's own timers do not (below). */
  #keepAlive: NodeJS.Timeout | undefined;

  get pending(): number {
    return this.#work.count;
  }

  get overdue(): number {
    return this.#overdue;
  }

  /** A handler ran past its timeout; `caughtUp` when it ends. */
  overran(): void {
    this.#overdue++;
  }

  caughtUp(): void {
    this.#overdue--;
  }

  track(work: Promise<unknown>): void {
    this.#work.add();
    const done = () => {
      this.#work.remove();
      if (this.#work.count > 0) return;
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    };
    work.then(done, done);
  }

  /**
   * Resolves once no work is pending. The give-up on an overdue handler is an unref'd timer, so that a
   * hung handler alone does not keep a host's process from ending; one that awaits this asked to wait
   * (a script's last `await handler.idle()` ended with exit 13 instead), so the wait holds the process
   * open until the work ends or is given up on.
   */
  settled(): Promise<void> {
    if (this.#work.count === 0) return Promise.resolve();
    this.#keepAlive ??= setInterval(() => {}, 2 ** 30);
    return this.#work.whenNone();
  }
}
