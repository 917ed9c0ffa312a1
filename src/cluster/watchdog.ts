import type { Worker } from 'node:cluster';
import type { Logger } from '../log.ts';
import { sendTo } from './messages.ts';

// The primary's watch over its workers. A worker whose event loop is held (a partner's handler that
// spins synchronously, a regex gone wrong) answers nothing, and no timeout of its own can fire there;
// round-robin would keep handing it connections that hang for good. Each is asked every second, and one
// that has not answered for WATCHDOG_MS is killed: its replacement starts as after any crash, and the
// events it held unanswered are retried by Segment. A worker still starting is watched from its fork
// (it answers from before it loads the partner's module): one held there (a module that spins at its top
// level) would never listen nor exit, and the start-up line waits for every worker to do one or the
// other. A start that merely waits (a database, a top-level await) turns the loop and answers: it is
// left to finish, as one process would be.

const PING_MS = 1_000;
export const WATCHDOG_MS = 10_000; // far past a collection's pause or a large batch's few milliseconds

/** What the watchdog knows of a worker number (primary.ts's Slot). */
export interface Watched {
  readonly number: number;
  readonly worker: Worker | undefined;
  readonly listening: boolean;
  /** When it last answered (or was forked, or began to listen). */
  answeredAt: number;
}

export class Watchdog {
  readonly #slots: readonly Watched[];
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;

  constructor(slots: readonly Watched[], log: Logger) {
    this.#slots = slots;
    this.#log = log;
    this.#timer = setInterval(() => this.#look(), PING_MS).unref();
  }

  /** Stops watching: a draining worker has its own deadline (--shutdown-timeout). */
  stop(): void {
    clearInterval(this.#timer);
  }

  #look(): void {
    const now = Date.now();
    for (const slot of this.#slots) {
      const { worker } = slot;
      if (worker === undefined) continue;
      if (now - slot.answeredAt > WATCHDOG_MS) {
        const when = slot.listening ? '' : ' while starting';
        this.#log.error(
          { worker: slot.number, pid: worker.process.pid },
          `worker ${slot.number} has not answered for ${WATCHDOG_MS / 1000} s${when} (its event loop is held): killing it`,
        );
        worker.process.kill('SIGKILL');
        slot.answeredAt = now; // one kill; its exit starts the replacement
      } else {
        sendTo(worker, { se: 'ping' });
      }
    }
  }
}
