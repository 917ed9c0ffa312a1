import type { Worker } from 'node:cluster';
import type { Logger } from '../log.ts';
import { type MetricsSnapshot, sumMetrics } from '../metrics.ts';
import { sendTo } from './messages.ts';

// The primary's side of /metrics with --workers: the sum of every worker's counts, gathered when a
// worker is asked, with the counts of workers that died kept in.

const SNAPSHOT_TIMEOUT_MS = 1_000; // 1 s: /metrics sums the workers that answered by then

/** What the sums need to know of a worker number (primary.ts's Slot). */
export interface Counted {
  readonly number: number;
  readonly worker: Worker | undefined;
  readonly listening: boolean;
  /** Its counts as last sent, kept when it dies so that the sums do not lose them. */
  last: MetricsSnapshot | undefined;
}

export class Totals {
  readonly #slots: readonly Counted[];
  readonly #retired = new Map<number, MetricsSnapshot>();
  readonly #asked = new Map<number, (worker: number, snapshot: MetricsSnapshot) => void>();
  #nextId = 0;

  constructor(slots: readonly Counted[]) {
    this.#slots = slots;
  }

  /** The sum of every worker's counts (and of those that died) for `asking`, whose own are `own`. */
  gather(from: Counted, asking: Worker, id: number, own: MetricsSnapshot): void {
    from.last = own;
    const others = this.#slots.filter((s) => s !== from && s.worker !== undefined && s.listening);
    const waiting = new Set(others.map((s) => s.number));
    const ask = ++this.#nextId;
    const finish = () => {
      clearTimeout(timer);
      this.#asked.delete(ask);
      const parts = this.#slots.flatMap((s) =>
        s.last === undefined || s.worker === undefined ? [] : [{ worker: s.number, snapshot: s.last }],
      );
      for (const [worker, snapshot] of this.#retired) parts.push({ worker, snapshot });
      sendTo(asking, { se: 'metrics', id, snapshot: sumMetrics(parts) });
    };
    const timer = setTimeout(finish, SNAPSHOT_TIMEOUT_MS);
    this.#asked.set(ask, (worker, snapshot) => {
      const slot = this.#slots[worker - 1];
      if (slot !== undefined) slot.last = snapshot;
      waiting.delete(worker);
      if (waiting.size === 0) finish();
    });
    if (waiting.size === 0) finish();
    else for (const slot of others) sendTo(slot.worker as Worker, { se: 'snapshot?', id: ask });
  }

  /**
   * The counts the worker of `slot` reports every second, kept for when it dies: said at debug level
   * when they changed, so that what one killed outright leaves counted can be seen.
   */
  kept(slot: Counted, snapshot: MetricsSnapshot, log: Logger): void {
    const before = slot.last === undefined ? 0 : answered(slot.last);
    slot.last = snapshot;
    const requests = answered(snapshot);
    if (requests !== before) log.debug({ worker: slot.number, requests }, 'worker counts kept');
  }

  /** Worker `worker`'s counts, answering the request `id`. */
  answered(id: number, worker: number, snapshot: MetricsSnapshot): void {
    this.#asked.get(id)?.(worker, snapshot);
  }

  /** Keeps what the worker of `slot` had counted when it died (its last report). */
  retire(slot: Counted): void {
    const { number: worker, last } = slot;
    slot.last = undefined;
    if (last === undefined) return;
    const before = this.#retired.get(worker);
    const ended = { ...last, inFlight: 0, overdue: 0 };
    const parts = before === undefined ? [] : [{ worker, snapshot: before }];
    this.#retired.set(
      worker,
      before === undefined ? ended : sumMetrics([...parts, { worker, snapshot: ended }]),
    );
  }
}

/** The event requests a worker's counts say it answered. */
function answered(snapshot: MetricsSnapshot): number {
  let n = 0;
  for (const count of Object.values(snapshot.requests)) n += count;
  return n;
}
