import type { Worker } from 'node:cluster';
import type { MetricsSnapshot } from '../metrics.ts';

// What the primary of --workers keeps of each worker number (primary.ts).

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
