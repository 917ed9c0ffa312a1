// The load itself: autocannon sending the mix (mix.ts) over kept-alive connections, and what came back
// gathered into the figures the report (report.ts) is made of.
import { createHistogram } from 'node:perf_hooks';
import { segmentHeaders } from '../tester/run.ts';
import { base64 } from '../tester/suite.ts';
import { eventSource } from './mix.ts';
import { type LoadFigures, SEGMENT_TIMEOUT_MS } from './report.ts';

export interface LoadOptions {
  /** Where events are POSTed: http or https, the path included. */
  readonly url: string;
  readonly apiKey: string;
  /** The customer's custom settings, sent in X-Segment-Settings. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Kept-alive connections, each with one request at a time; at most `rate`. */
  readonly connections: number;
  /** Seconds. */
  readonly duration: number;
  /** Requests per second across all connections; undefined: as fast as answers come. */
  readonly rate?: number;
}

const TIMED_OUT = 'request timed out'; // autocannon's error for a timeout, counted apart
const SAMPLE_MS = 100; // autocannon's sample interval: a stop takes effect at the next sample

/** Sends for `duration` seconds (less after a SIGINT, which stops the run early) and measures. */
export async function sendLoad(options: LoadOptions): Promise<LoadFigures> {
  // Loaded here, not at the top: only this subcommand pays for autocannon.
  const { default: autocannon } = await import('autocannon');
  const source = eventSource(options.apiKey);
  // autocannon adds Host, Connection and Content-Length.
  const headers = segmentHeaders(options.apiKey, base64(JSON.stringify(options.settings)));
  // autocannon's own latency histogram keeps whole milliseconds (a sub-millisecond answer is 0) and, with
  // a rate, "corrects" for coordinated omission assuming one request every 1/rate *milliseconds*; so
  // latencies are taken here, in microseconds, from each answer.
  const latency = createHistogram();
  let late = 0;
  const errors: Record<string, number> = {};
  const instance = autocannon({
    url: options.url,
    method: 'POST',
    connections: options.connections,
    duration: options.duration,
    timeout: SEGMENT_TIMEOUT_MS / 1000,
    sampleInt: SAMPLE_MS,
    ...(options.rate !== undefined && { overallRate: options.rate, ignoreCoordinatedOmission: true }),
    // One request, built anew each time: a new event (or a retry) under Segment's headers. autocannon
    // adds Host, Connection: keep-alive and Content-Length.
    requests: [{ setupRequest: (request) => ({ ...request, headers: { ...headers }, body: source.next() }) }],
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, took: number) => {
    latency.record(Math.max(1, Math.round(took * 1000)));
    if (took > SEGMENT_TIMEOUT_MS) late++;
  });
  instance.on('reqError', (err: NodeJS.ErrnoException) => {
    if (err.message === TIMED_OUT) return;
    const code = err.code ?? err.message;
    errors[code] = (errors[code] ?? 0) + 1;
  });
  const stop = () => instance.stop();
  process.once('SIGINT', stop);
  // With a rate, autocannon sends each connection's share at the start of each second of its own,
  // counted from when the connection was made, and a stop takes effect at its next sample tick, which
  // comes after the connections' seconds: at the run's end, after the burst of the second that starts
  // then (a short run sent a second's worth more than asked). The run is stopped at the tick before.
  const lastSecond =
    options.rate !== undefined && options.duration >= 1
      ? setTimeout(stop, options.duration * 1000 - SAMPLE_MS - SAMPLE_MS / 2)
      : undefined;
  let result: Awaited<typeof instance>;
  try {
    result = await instance;
  } finally {
    clearTimeout(lastSecond);
    process.off('SIGINT', stop);
  }
  const statuses = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([status, { count }]) => [status, count]),
  );
  const toMs = (micros: number) => micros / 1000;
  return {
    url: options.url,
    seconds: result.duration,
    connections: options.connections,
    ...(options.rate !== undefined && { rate: options.rate }),
    sent: source.sent(),
    statuses,
    ...(latency.count > 0 && {
      latency: {
        p50: toMs(latency.percentile(50)),
        p90: toMs(latency.percentile(90)),
        p99: toMs(latency.percentile(99)),
        max: toMs(latency.max),
      },
    }),
    late,
    timeouts: result.timeouts,
    errors,
  };
}
