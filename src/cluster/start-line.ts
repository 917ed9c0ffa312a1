import { version } from '../cli.ts';
import { NAME } from '../config.ts';
import type { Logger } from '../log.ts';
import { isServing, type Slot } from './slot.ts';

/** Where a worker listens, and where its events go. */
interface Listening {
  readonly url: string;
  readonly where: string;
}

/**
 * The line --workers prints once it serves, as one process prints it: when every worker listens, or when
 * some serve and each of the others has failed to start at least once or is held in its start (said in
 * the log). The service is then up, short of workers, and whoever waits for the line learns where it
 * listens.
 */
export class StartLine {
  readonly #slots: readonly Slot[];
  readonly #stopping: () => boolean;
  readonly #log: Logger;
  #at: Listening | undefined;
  #printed = false;

  constructor(slots: readonly Slot[], stopping: () => boolean, log: Logger) {
    this.#slots = slots;
    this.#stopping = stopping;
    this.#log = log;
  }

  /** A worker listens. */
  listening(at: Listening): void {
    this.#at ??= at;
    this.print();
  }

  /** Prints the line, if it is due and was not printed yet. */
  print(): void {
    const slots = this.#slots;
    const up = slots.filter(isServing).length;
    if (this.#printed || this.#stopping() || this.#at === undefined || up === 0) return;
    if (!slots.every((s) => s.listening || s.failedToStart || s.heldAtStart)) return;
    this.#printed = true;
    const workers =
      up === slots.length
        ? `${up} workers`
        : `${up} of ${slots.length} workers serving (see the errors above)`;
    const { url, where } = this.#at;
    process.stdout.write(`${NAME} ${version()} listening on ${url} (${workers}, ${where})\n`);
    // The same in the JSON log, which a log shipper reads alone, as one process says it.
    this.#log.info({ url, version: version(), where, workers: up, of: slots.length }, 'listening');
  }
}
