import type { Worker } from 'node:cluster';
import type { Logger } from '../log.ts';
import { sendTo } from './messages.ts';

// The primary's watch over its listening workers. A worker whose event loop is held (a partner's
// handler that spins synchronously, a regex gone wrong) answers nothing, and no timeout of its own can
// fire there; round-robin would keep handing it connections that hang for good. Each is asked every
// second, and one that has not answered for WATCHDOG_MS is killed: its replacement starts as after any
// crash, and the events it held unanswered are retried by Segment.

const PING_MS = 1_000;
export const WATCHDOG_MS = 10_000; // far past a collection's pause or a large batch's few milliseconds

/** What the watchdog knows of a worker number (primary.ts's Slot). */
export interface Watched {
  readonly number: number;
  readonly worker: Worker | undefined;
  readonly listening: boolean;
  /** When it last answered (or began to listen). */
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
      if (worker === undefined || !slot.listening) continue;
      if (now - slot.answeredAt > WATCHDOG_MS) {
        this.#log.error(
          { worker: slot.number, pid: worker.process.pid },
          `worker ${slot.number} has not answered for ${WATCHDOG_MS / 1000} s (its event loop is held): killing it`,
        );
        worker.process.kill('SIGKILL');
        slot.answeredAt = now; // one kill; its exit starts the replacement
      } else {
        sendTo(worker, { se: 'ping' });
      }
    }
  }
}
