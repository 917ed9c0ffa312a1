// When the connection slots (connections.ts) are swept: one interval timer while any connection is open.

/**
 * The sweeps of the connection slots, every `ms` while started. A turn that comes late judges nothing:
 * the event loop was held (a long collection, a handler that computes), and what a client did meanwhile
 * (read the answers owed to it, sent its first request) reaches Node only in the loop's next turns; the
 * writes a client made room for are seen done a turn after the poll that finishes them. Judged then, such
 * a connection would be closed, and the 200s it had not read yet retried as duplicates. The next turn on
 * time judges, against what the last one on time saw: a client that did nothing is closed one turn later.
 */
export class Sweeps {
  readonly ms: number;
  readonly #sweep: (now: number) => void;
  #timer: NodeJS.Timeout | undefined;
  #turnAt = 0;

  constructor(ms: number, sweep: (now: number) => void) {
    this.ms = ms;
    this.#sweep = sweep;
  }

  /** Starts the sweeps, if they are not running. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#turnAt = performance.now();
    // Unreferenced: the connections keep the process up, not their sweeps.
    this.#timer = setInterval(turn, this.ms, this).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The interval's turn: a sweep, unless the turn is late by half its interval or more. */
  turn(): void {
    const now = performance.now();
    const late = now - this.#turnAt >= 1.5 * this.ms;
    this.#turnAt = now;
    if (!late) this.#sweep(now);
  }
}

function turn(sweeps: Sweeps): void {
  sweeps.turn();
}
