// What a load run measured, as text, and whether Segment would be content: every answer 2xx and none
// later than its 5 s timeout. Pure functions of the figures, so each wording is tested without a run.
import { shownUrl } from '../sender-args.ts';
import { EVENT_TYPES, type EventType } from '../types.ts';

/** Segment gives up on a request after about this and retries it later (CONTRACT.md, Transport). */
export const SEGMENT_TIMEOUT_MS = 5_000; // 5 s

/** A rate achieved below this share of the one asked for gets a note. */
const KEPT_UP = 0.9;

export interface Latency {
  /** Milliseconds. */
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export interface LoadFigures {
  readonly url: string;
  /** How long the run lasted, in seconds. */
  readonly seconds: number;
  readonly connections: number;
  /**
   * Set when Ctrl-C (SIGINT) stopped the run: before the `asked` seconds (`--duration`) when `cutShort`,
   * else while the answers in flight after it were waited for.
   */
  readonly interrupted?: { readonly asked: number; readonly cutShort: boolean };
  /** The requests per second asked for (`--rate`); undefined: as fast as answers come. */
  readonly rate?: number;
  /** New events sent, by type, and retries (an event sent again). */
  readonly sent: { readonly types: Readonly<Record<EventType, number>>; readonly retries: number };
  /** Answers by status code. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Of the answers; undefined when there was none. */
  readonly latency?: Latency;
  /** Answers that came later than SEGMENT_TIMEOUT_MS. */
  readonly late: number;
  /** Requests given up on after SEGMENT_TIMEOUT_MS without an answer. */
  readonly timeouts: number;
  /** Requests that failed without an answer (reset, refused), by error code; timeouts apart. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface Verdict {
  /** Every answer 2xx, none late, no timeout, no error, and at least one answer: exit code 0. */
  readonly ok: boolean;
  readonly lines: readonly string[];
}

const sum = (counts: Readonly<Record<string, number>>) => Object.values(counts).reduce((a, b) => a + b, 0);

/** `200: 9871, 503: 12`, in order of status (or of code). */
export function counts(byKey: Readonly<Record<string, number>>): string {
  const keys = Object.keys(byKey).sort();
  return keys.length === 0 ? 'none' : keys.map((key) => `${key}: ${byKey[key]}`).join(', ');
}

/** Milliseconds to a few significant digits: `0.42 ms`, `12.3 ms`, `4210 ms`. */
export function ms(value: number): string {
  const digits = value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${value.toFixed(digits)} ms`;
}

const LOCAL_ERRORS = new Set(['EMFILE', 'ENFILE', 'EADDRNOTAVAIL', 'ENOBUFS']);

/** Whether Segment would be content, and in what words. */
export function verdict(f: LoadFigures): Verdict {
  const answered = sum(f.statuses);
  const not2xx = Object.fromEntries(Object.entries(f.statuses).filter(([status]) => !/^2\d\d$/.test(status)));
  const lines: string[] = [];
  if (f.late + f.timeouts > 0) {
    lines.push(
      `FAIL: ${f.late + f.timeouts} requests took over ${SEGMENT_TIMEOUT_MS / 1000} s or timed out: ` +
        'Segment would retry them.',
    );
  }
  if (sum(not2xx) > 0) {
    lines.push(
      `FAIL: ${sum(not2xx)} answers were not 2xx (${counts(not2xx)}): Segment retries a 429 or a 5xx ` +
        '(but 501) and drops any other 4xx for good.' +
        (not2xx['501'] === undefined
          ? ''
          : ' A 501 is a type the endpoint does not take: --types sends only the ones it takes.'),
    );
  }
  // Errors of this machine's own (out of file descriptors, of local ports) are not the endpoint's.
  const local = Object.fromEntries(Object.entries(f.errors).filter(([code]) => LOCAL_ERRORS.has(code)));
  const remote = Object.fromEntries(Object.entries(f.errors).filter(([code]) => !LOCAL_ERRORS.has(code)));
  if (sum(remote) > 0) {
    lines.push(`FAIL: ${sum(remote)} requests got no answer (${counts(remote)}): Segment would retry them.`);
  }
  if (sum(local) > 0) {
    lines.push(
      `FAIL: ${sum(local)} requests could not be sent from this machine (${counts(local)}): not the ` +
        "endpoint's doing; raise the open-file limit (ulimit -n) or use fewer --connections.",
    );
  }
  if (answered === 0 && lines.length === 0) lines.push('FAIL: no request was answered.');
  if (lines.length > 0) return { ok: false, lines };
  const p99 = f.latency === undefined ? 'no latency' : `p99 ${ms(f.latency.p99)}`;
  return {
    ok: true,
    lines: [
      `PASS: ${p99}: within Segment's ${SEGMENT_TIMEOUT_MS / 1000} s timeout, and all ${answered} answers were 2xx.`,
    ],
  };
}

/** The report printed at the end of a run, verdict last. */
export function report(f: LoadFigures): string {
  const answered = sum(f.statuses);
  const perSecond = f.seconds > 0 ? answered / f.seconds : 0;
  const sent = sum(f.sent.types) + f.sent.retries;
  const types = EVENT_TYPES.filter((type) => f.sent.types[type] > 0)
    .sort((a, b) => f.sent.types[b] - f.sent.types[a])
    .map((type) => `${type} ${f.sent.types[type]}`);
  const target = f.rate === undefined ? 'as fast as answered' : `asked ${f.rate} req/s`;
  const latency = f.latency;
  // Sent when the run stopped, never answered nor failed: not counted anywhere else.
  const inFlight = Math.max(0, sent - answered - sum(f.errors) - f.timeouts);
  const lines = [
    `Sent ${sent} requests to ${shownUrl(f.url)} in ${f.seconds.toFixed(2)} s over ${f.connections} connections (${target}):`,
    `  new events: ${types.join(', ') || 'none'}; retries (an event sent again, same messageId): ${f.sent.retries}`,
    `Requests/s:  ${perSecond.toFixed(1)} (${answered} answered${inFlight > 0 ? `, ${inFlight} in flight at the end` : ''})`,
    latency === undefined
      ? 'Latency:     no answers'
      : `Latency:     p50 ${ms(latency.p50)}, p90 ${ms(latency.p90)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)}`,
    `Statuses:    ${counts(f.statuses)}`,
    `Errors:      ${counts(f.errors)}`,
    `Timeouts:    ${f.timeouts} (no answer within ${SEGMENT_TIMEOUT_MS / 1000} s); ${f.late} answered later than that`,
  ];
  if (f.interrupted?.cutShort === true) {
    lines.push(
      `Stopped early by Ctrl-C (SIGINT) after ${f.seconds.toFixed(2)} s of the ${f.interrupted.asked} asked.`,
    );
  } else if (f.interrupted !== undefined) {
    lines.push('Stopped by Ctrl-C (SIGINT) while the answers in flight were waited for.');
  }
  if (f.rate !== undefined && perSecond < f.rate * KEPT_UP) {
    lines.push(
      `Note: ${perSecond.toFixed(1)} req/s of the ${f.rate} asked: each connection waits for its answer ` +
        'before the next request, so a slower endpoint gets fewer; more --connections send more.',
    );
  }
  return `${[...lines, '', ...verdict(f).lines].join('\n')}\n`;
}
