import type { OptionRow } from './option-table.ts';

// The option table's rows for sizes and times on the wire (option-table.ts spreads them in after
// --max-connections): how long a request, its headers, its body, its handler and a shutdown may take.

export const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's ceiling (~24.8 days)
const env = (name: string) => `SEGMENT_ENDPOINT_${name}`;

export const TIMEOUT_OPTIONS = {
  // 16 KiB: Node's default; Segment's headers take under 1 KiB.
  maxHeaderBytes: { scope: 'server', default: 16 * 1024, min: 1024, max: MAX_TIMER_MS },
  bodyTimeoutMs: { scope: 'handler', default: 10_000, min: 1, max: MAX_TIMER_MS }, // 10 s
  handlerTimeoutMs: {
    scope: 'handler',
    flag: '--handler-timeout SECS',
    env: env('HANDLER_TIMEOUT'),
    cli: 'seconds',
    default: 4_000, // 4 s: Segment gives up on a request after about 5
    min: 1,
    max: MAX_TIMER_MS,
    help: 'how long a handler (or the store) may take before the event is answered 503',
  },
  // 65 s: above the idle timeouts of the load balancers put in front (AWS ALB: 60 s), so that the
  // balancer, not us, closes an idle connection: otherwise a request can race our close and fail.
  keepAliveTimeoutMs: { scope: 'server', default: 65_000, min: 1, max: MAX_TIMER_MS },
  // 10 s: Segment sends its headers at once; slow ones are an attack.
  headersTimeoutMs: { scope: 'server', default: 10_000, min: 1, max: MAX_TIMER_MS },
  // 30 s: above the body (10 s) and handler (4 s) timeouts together.
  requestTimeoutMs: { scope: 'server', default: 30_000, min: 1, max: MAX_TIMER_MS },
  shutdownTimeoutMs: {
    scope: 'server',
    flag: '--shutdown-timeout SECS',
    env: env('SHUTDOWN_TIMEOUT'),
    cli: 'seconds',
    default: 10_000, // 10 s
    min: 0,
    max: MAX_TIMER_MS,
    help: 'on SIGTERM, how long running events may take to finish',
  },
} as const satisfies Record<string, OptionRow>;
