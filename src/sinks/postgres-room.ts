import type { Logger } from '../log.ts';

// How many INSERTs the PostgreSQL sink runs at once: as many as it may (each on its own connection),
// fewer where PostgreSQL refuses connections past its room (max_connections, the role's CONNECTION
// LIMIT), and more again as room comes back.

const ROOM_RETRY_MS = 5_000; // with fewer INSERTs at once than the most: how often one more is tried

export class Room {
  readonly #most: number;
  readonly #log: Logger;
  /** INSERTs under way at once at most: fewer than #most where PostgreSQL has room for fewer. */
  #limit: number;
  /** When #limit last changed (performance.now()). */
  #changed = 0;
  /** #limit before one more INSERT at once was tried; 0 when none is being tried. */
  #beforeTry = 0;

  constructor(most: number, log: Logger) {
    this.#most = most;
    this.#limit = most;
    this.#log = log;
  }

  get limit(): number {
    return this.#limit;
  }

  /**
   * Fewer INSERTs at once than the most, all busy and more events waiting: one more is tried every
   * ROOM_RETRY_MS, since room comes back as other clients let go of their connections. One that finds
   * none is sent back to the queue, as any other (`fewer`), without a word.
   */
  tryMore(): void {
    const now = performance.now();
    if (this.#limit >= this.#most || now - this.#changed < ROOM_RETRY_MS) return;
    this.#beforeTry = this.#limit;
    this.#limit++;
    this.#changed = now;
  }

  /** An INSERT sent as the `nth` under way went through: room found for one more is said once. */
  succeeded(nth: number): void {
    if (this.#beforeTry === 0 || nth <= this.#beforeTry) return;
    this.#beforeTry = 0;
    this.#log.info(
      { connections: this.#limit },
      'PostgreSQL has room for more connections: more INSERTs at once',
    );
  }

  /**
   * PostgreSQL refused a connection past its room while `inFlight` INSERTs are under way (this one
   * included): fewer at once from now on. Its group goes back to the queue for one of the others.
   */
  fewer(inFlight: number, err: unknown): void {
    const limit = Math.max(1, Math.min(this.#limit, inFlight - 1));
    if (limit < this.#limit && limit !== this.#beforeTry) {
      this.#log.warn(
        { err, connections: limit },
        'PostgreSQL has room for fewer connections: fewer INSERTs at once',
      );
    }
    if (limit < this.#limit) this.#changed = performance.now();
    this.#beforeTry = 0;
    this.#limit = limit;
  }
}
