// Work that goes on after its event was answered: a handler still running past its timeout (answered
// 503), then its event's claim remembered or released. A handler's idle() waits for it too: a host that
// closes its store once idle() resolves (a Redis client) closes it after that work, not under it.

export class LateWork {
  #pending = 0;
  #waiters: Array<() => void> = [];

  get pending(): number {
    return this.#pending;
  }

  track(work: Promise<unknown>): void {
    this.#pending++;
    const done = () => {
      this.#pending--;
      if (this.#pending === 0) for (const wake of this.#waiters.splice(0)) wake();
    };
    work.then(done, done);
  }

  /** Resolves once no work is pending. */
  settled(): Promise<void> {
    return this.#pending === 0 ? Promise.resolve() : new Promise((wake) => this.#waiters.push(wake));
  }
}
