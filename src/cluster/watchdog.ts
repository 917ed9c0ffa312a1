import type { Worker } from 'node:cluster';
import type { Logger } from '../log.ts';
import { sendTo } from './messages.ts';

// The primary's watch over its workers. A worker whose event loop is held (a partner's handler that
// spins synchronously, a regex gone wrong) answers nothing, and no timeout of its own can fire there;
// round-robin would keep handing it connections that hang for good. Each is asked every second, and one
// that has not answered for WATCHDOG_MS is killed: its replacement starts as after any crash, and the
// events it held unanswered are retried by Segment. A worker still starting is watched from its fork (it
// answers from before it loads the partner's module) but not killed: a module may hold its loop for a
// long while and then finish (a synchronous migration, a large file read), as one process would be left
// to. Past WATCHDOG_MS without an answer it is said once, and the start-up line waits for it no more.

const PING_MS = 1_000;
export const WATCHDOG_MS = 10_000; // far past a collection's pause or a large batch's few milliseconds

/** What the watchdog knows of a worker number (primary.ts's Slot). */
export interface Watched {
  readonly number: number;
  readonly worker: Worker | undefined;
  readonly listening: boolean;
  /** When it last answered (or was forked, or began to listen): `performance.now()`. */
  answeredAt: number;
  /** Not listening yet, and silent for WATCHDOG_MS: said once, and the start-up line does not wait. */
  heldAtStart: boolean;
}

export class Watchdog {
  readonly #slots: readonly Watched[];
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;
  readonly #heldAtStart: () => void;
  /** When it last looked (`performance.now()`). */
  #lookedAt = performance.now();

  /** `heldAtStart`: called when a starting worker has not answered for WATCHDOG_MS. */
  constructor(slots: readonly Watched[], log: Logger, heldAtStart: () => void) {
    this.#slots = slots;
    this.#log = log;
    this.#heldAtStart = heldAtStart;
    this.#timer = setInterval(() => this.#look(), PING_MS).unref();
  }

  /** Stops watching: a draining worker has its own deadline (--shutdown-timeout). */
  stop(): void {
    clearInterval(this.#timer);
  }

  #look(): void {
    // A monotonic clock: a step of the wall clock (an NTP step, a VM resumed) is no worker's silence.
    const now = performance.now();
    // Nor is a time the primary did not look (stopped: SIGSTOP, a container paused or frozen; its own loop
    // held): no ping went out, and that clock ran on. Its workers are given that time back.
    const missed = now - this.#lookedAt - PING_MS;
    this.#lookedAt = now;
    if (missed > PING_MS) {
      for (const slot of this.#slots) slot.answeredAt = Math.min(now, slot.answeredAt + missed);
    }
    for (const slot of this.#slots) {
      const { worker } = slot;
      if (worker === undefined) continue;
      const silent = now - slot.answeredAt > WATCHDOG_MS;
      if (silent && slot.listening) {
        this.#log.error(
          { worker: slot.number, pid: worker.process.pid },
          `worker ${slot.number} has not answered for ${WATCHDOG_MS / 1000} s (its event loop is held): killing it`,
        );
        worker.process.kill('SIGKILL');
        slot.answeredAt = now; // one kill; its exit starts the replacement
        continue;
      }
      if (silent && !slot.heldAtStart) {
        slot.heldAtStart = true;
        this.#log.warn(
          { worker: slot.number, pid: worker.process.pid },
          `worker ${slot.number} has not answered for ${WATCHDOG_MS / 1000} s while starting (its event loop is held): the others serve meanwhile`,
        );
        this.#heldAtStart();
      }
      sendTo(worker, { se: 'ping' });
    }
  }
}
