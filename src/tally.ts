// A count of things under way, and who waits for none to be: what a shutdown waits on.

export class Tally {
  #count = 0;
  #waiters: Array<() => void> = [];

  /** How many are under way. */
  get count(): number {
    return this.#count;
  }

  add(): void {
    this.#count++;
  }

  /** `n` of them are over. */
  remove(n = 1): void {
    this.#count -= n;
    if (this.#count !== 0 || this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once none is under way. */
  whenNone(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }
}
