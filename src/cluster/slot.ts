import type { Worker } from 'node:cluster';
import type { MetricsSnapshot } from '../metrics.ts';

// What the primary of --workers keeps of each worker number (primary.ts).

const MAX_BACKOFF_MS = 10_000; // 10 s between replacements of a worker that keeps dying

/** One of the N worker numbers, and the process serving it now (none between a death and its replacement). */
export interface Slot {
  readonly number: number;
  worker: Worker | undefined;
  startedAt: number;
  listening: boolean;
  /** Whether a worker of this number ever died before listening (its error was logged). */
  failedToStart: boolean;
  /** Deaths in a row of this number's workers, each within STABLE_MS of its start: the backoff. */
  failures: number;
  /** Its counts as last sent, kept when it dies so that the sums never go down. */
  last: MetricsSnapshot | undefined;
  restart: NodeJS.Timeout | undefined;
  /** When it last showed its event loop turning (Watchdog). */
  answeredAt: number;
  /** Starting, and silent for the watchdog's limit: the start-up line does not wait for it (Watchdog). */
  heldAtStart: boolean;
}

/** Worker number `number`, before its first worker is forked. */
export function newSlot(number: number): Slot {
  return {
    number,
    worker: undefined,
    startedAt: 0,
    listening: false,
    failedToStart: false,
    failures: 0,
    last: undefined,
    restart: undefined,
    answeredAt: 0,
    heldAtStart: false,
  };
}

/** Whether the slot's worker serves: it is running and listens. */
export const isServing = (slot: Slot): boolean => slot.worker !== undefined && slot.listening;

/** Whether some worker serves. */
export const serving = (slots: readonly Slot[]): boolean => slots.some(isServing);

/** How long a worker number waits for its next worker after `failures` deaths in a row: 0.1 s, doubled, up to 10 s. */
export const backoffMs = (failures: number): number =>
  Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.max(0, failures - 1));

/** Every worker killed at once, and no replacement left to come. */
export function killAll(slots: readonly Slot[]): void {
  for (const slot of slots) {
    clearTimeout(slot.restart);
    slot.worker?.process.kill('SIGKILL');
  }
}
