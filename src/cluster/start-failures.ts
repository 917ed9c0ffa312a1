// When the primary of --workers stops rather than replace workers for ever: a configuration that does not
// start. Before any worker has served, a worker's refusal (the line one process would print) waits: once
// every worker has refused, none will start, and the first refusal is said; once one listens, the cause
// was the refused worker's alone (a database's connection limit), and it is said and retried. A refusal
// waits WAIT_MS at most (another worker may never finish starting: a module awaiting a host that never
// answers), and a stop does not wait for it: either way it is said. After a worker has served,
// MAX_IN_A_ROW workers in a row that die before listening, with none serving, stop it (what failed may
// have passed: a database a module reaches). Failures while another serves do not count.

import type { Logger } from '../log.ts';
import { WATCHDOG_MS } from './watchdog.ts';

export const MAX_IN_A_ROW = 5;
const WAIT_MS = WATCHDOG_MS; // as long as a worker held at start is waited for before it is said

export class StartFailures {
  readonly #log: Logger;
  readonly #workers: number;
  readonly #retry: (number: number) => void;
  #inARow = 0;
  #served = false;
  /** Refusals before any worker served, by worker number: the line each would print. */
  readonly #waiting = new Map<number, string>();
  #waitOver: NodeJS.Timeout | undefined;

  /** `retry`: starts worker `number` again, once its refusal has been said. */
  constructor(log: Logger, workers: number, retry: (number: number) => void) {
    this.#log = log;
    this.#workers = workers;
    this.#retry = retry;
  }

  /** Whether a worker has listened since the primary started. */
  get served(): boolean {
    return this.#served;
  }

  /** A worker listens: the refusals that waited are said, and their workers started again. */
  listening(): void {
    this.#inARow = 0;
    this.#served = true;
    for (const number of this.#sayWaiting()) this.#retry(number);
  }

  /**
   * A worker died before listening (`died`: which, and how): whether the primary stops, said in the log
   * (`serving`: whether another serves).
   */
  failed(serving: boolean, died: { worker: number; code: number | null; signal: string | null }): boolean {
    if (serving || ++this.#inARow < MAX_IN_A_ROW) return false;
    this.#log.error(
      died,
      `${MAX_IN_A_ROW} workers in a row died before listening: stopping (see their errors above)`,
    );
    return true;
  }

  /**
   * Worker `number` cannot start, and says `line`: whether the primary stops, every worker having refused
   * before any served. While one serves, or while the primary stops, it is logged at once.
   */
  refused(number: number, line: string, stopping: boolean): boolean {
    if (stopping || this.#served) {
      this.#said(number, line);
      return false;
    }
    this.#waiting.set(number, line);
    if (this.#waiting.size === this.#workers) return true;
    this.#log.info({ worker: number }, `worker ${number} could not start: said once another starts`);
    this.#waitOver ??= setTimeout(() => {
      for (const waited of this.#sayWaiting()) this.#retry(waited);
    }, WAIT_MS).unref();
    return false;
  }

  /** Whether worker `number`'s refusal waits (it is not replaced meanwhile). */
  waits(number: number): boolean {
    return this.#waiting.has(number);
  }

  /** The primary drains: the refusals that wait are said. Whether any did, with none served (exit 1). */
  stopping(): boolean {
    const waited = this.#sayWaiting().length > 0;
    return waited && !this.#served;
  }

  /** The primary stops, none serving: the first refusal that waited, to print as one process would. */
  givingUp(): string | undefined {
    clearTimeout(this.#waitOver);
    const first: string | undefined = this.#waiting.values().next().value;
    this.#waiting.clear();
    return first;
  }

  /** Says every refusal that waits, and returns their workers' numbers; none waits after. */
  #sayWaiting(): number[] {
    clearTimeout(this.#waitOver);
    this.#waitOver = undefined;
    const waited = [...this.#waiting];
    this.#waiting.clear();
    for (const [number, line] of waited) this.#said(number, line);
    return waited.map(([number]) => number);
  }

  #said(number: number, line: string): void {
    this.#log.error({ worker: number, error: line.trim() }, `worker ${number} could not start`);
  }
}
