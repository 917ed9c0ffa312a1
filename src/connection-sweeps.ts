// When the connection slots (connections.ts) are swept: one interval timer while any connection is open.

/**
 * The sweeps of the connection slots, every `ms` while started. A turn judges nothing where it runs, in
 * the loop's timers phase: when the loop was held (a long collection, a handler that computes), what a
 * client did meanwhile (read the answers owed to it, sent its first request) reaches Node only in the
 * polls after. So the turn's sweep runs two check phases later, whatever holds the loop in between, and
 * judges as of the turn's time: a connection is closed only if it had flushed nothing for `stallMs` by
 * then, and the sweep finds nothing more flushed. Two, not one: on Node 20 the write the first poll
 * finishes is sometimes reported done only in the next turn (measured). Judged at once, a client that read
 * its answers while the loop was held would be closed, and the 200s it had not read yet retried as
 * duplicates.
 */
export class Sweeps {
  readonly ms: number;
  readonly #sweep: (now: number) => void;
  #timer: NodeJS.Timeout | undefined;
  /** A sweep is queued (`turn`): a turn meanwhile queues none. */
  #queued = false;

  constructor(ms: number, sweep: (now: number) => void) {
    this.ms = ms;
    this.#sweep = sweep;
  }

  /** Starts the sweeps, if they are not running. */
  start(): void {
    if (this.#timer !== undefined) return;
    // Unreferenced: the connections keep the process up, not their sweeps.
    this.#timer = setInterval(turn, this.ms, this).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The interval's turn: a sweep as of now, run once the writes finished by the next poll are reported. */
  turn(): void {
    if (this.#queued) return;
    this.#queued = true;
    setImmediate(afterPoll, this, performance.now());
  }

  /** Runs the sweep queued by `turn` at `now`. */
  run(now: number): void {
    this.#queued = false;
    this.#sweep(now);
  }
}

function turn(sweeps: Sweeps): void {
  sweeps.turn();
}

// The check phase after the poll that follows the turn; the sweep runs in the next one (see Sweeps).
function afterPoll(sweeps: Sweeps, now: number): void {
  setImmediate(afterReport, sweeps, now);
}

function afterReport(sweeps: Sweeps, now: number): void {
  sweeps.run(now);
}
