import { EndpointError } from './errors.ts';

// Whether this process's event loop is far behind: each request answered a second or more late, /health
// too. maxInFlight counts requests, not what they cost: a thousand senders of 510 KB of `[{},{},…]`
// (55 ms of parsing each) left /health unanswered for a minute, and bodies sent whole timed out (408)
// in the queue. A body that comes while the loop is that far behind is answered 503 before it is parsed:
// Segment retries it, and what the process holds stays what it can do.

const TICK_MS = 100; // how often the loop notes that it reached its timers
const BEHIND_MS = 1_000; // past this since it last did (beyond a tick), it is behind

let lastTick = 0;
let ticking: NodeJS.Timeout | undefined;

/** Starts noting the loop's turns, once a process; unref'd, so that it keeps nothing running. */
export function watchLoop(): void {
  if (ticking !== undefined) return;
  lastTick = performance.now();
  ticking = setInterval(() => {
    lastTick = performance.now();
  }, TICK_MS).unref();
}

const BEHIND = 'The endpoint is behind on the requests it has, retry later';

/** Whether, at `now`, the loop has not reached its timers for more than BEHIND_MS (beyond a tick). */
export const isBehind = (now: number): boolean => now - lastTick > BEHIND_MS + TICK_MS;

/** Throws a 503 SEG_OVERLOADED when the loop is behind (`isBehind`). */
export function refuseWhenBehind(): void {
  if (isBehind(performance.now())) throw new EndpointError('SEG_OVERLOADED', BEHIND);
}
