// The load itself: `connections` workers, each sending the mix (mix.ts) one request at a time over its
// kept-alive connection with node's HTTP client, and what came back gathered into the figures the report
// (report.ts) is made of. Node's client reads HTTP as a server may write it (interim 1xx answers,
// `Connection: close`, bodies ended by the connection's close, answers cut short), so every request is
// counted once: answered, failed or timed out (what is in flight at the end is waited for).
import {
  type Agent,
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
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
  /** Send without verifying the endpoint's certificate. */
  readonly insecure?: boolean;
}

/** What became of one request. */
type Outcome = { readonly status: number } | { readonly error: string } | { readonly timedOut: true };

const AFTER_FAILURE_MS = 100; // a connection that failed is made again after this, not in a tight loop

/** Sends for `duration` seconds (less after a SIGINT, which stops the run early) and measures. */
export async function sendLoad(options: LoadOptions): Promise<LoadFigures> {
  const source = eventSource(options.apiKey);
  const send = sender(options);
  const latency = createHistogram();
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let timeouts = 0;
  let late = 0;
  const started = performance.now();
  let sending = true;
  let inFlight = 0;
  let drained = () => {};
  let stop = () => {};
  const over = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.duration * 1000);
    stop = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  process.once('SIGINT', stop);

  const record = (outcome: Outcome, tookMs: number) => {
    if ('status' in outcome) {
      statuses[outcome.status] = (statuses[outcome.status] ?? 0) + 1;
      latency.record(Math.max(1, Math.round(tookMs * 1000)));
      if (tookMs > SEGMENT_TIMEOUT_MS) late++;
    } else if ('timedOut' in outcome) {
      timeouts++;
    } else {
      errors[outcome.error] = (errors[outcome.error] ?? 0) + 1;
    }
  };
  const worker = async (share: number | undefined) => {
    let second = 0;
    let sentThisSecond = 0;
    while (sending) {
      if (share !== undefined) {
        // Its share of each second of the run, sent as fast as answered; then it waits for the next.
        const now = Math.floor((performance.now() - started) / 1000);
        if (now > second) {
          second = now;
          sentThisSecond = 0;
        }
        if (sentThisSecond >= share) {
          if (second + 1 >= options.duration) return; // no second of the run left to send in
          await Promise.race([delay(started + (second + 1) * 1000 - performance.now()), over]);
          continue;
        }
        sentThisSecond++;
      }
      const at = performance.now();
      inFlight++;
      const outcome = await send(source.next());
      record(outcome, performance.now() - at);
      if (--inFlight === 0 && !sending) drained();
      if ('error' in outcome) await Promise.race([delay(AFTER_FAILURE_MS), over]);
    }
  };
  const shares = Array.from({ length: options.connections }, (_, i) =>
    options.rate === undefined ? undefined : shareOf(options.rate, options.connections, i),
  );
  // The run lasts its duration, whatever the workers are doing: its last second's answers are waited
  // for, and requests/s counts every second of it.
  for (const share of shares) void worker(share);
  await over;
  sending = false;
  const seconds = (performance.now() - started) / 1000;
  // What is in flight at the end is waited for (at most Segment's timeout, each request's own bound):
  // every request sent is counted, and one that is never answered is a timeout, however short the run.
  if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
  process.off('SIGINT', stop);
  send.close();
  const toMs = (micros: number) => micros / 1000;
  return {
    url: options.url,
    seconds,
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
    timeouts,
    errors,
  };
}

/** Worker `i`'s requests a second of `rate` shared out between `connections`. */
function shareOf(rate: number, connections: number, i: number): number {
  return Math.floor(rate / connections) + (i < rate % connections ? 1 : 0);
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * One POST of `body` a call, answered within Segment's timeout or given up (its connection then
 * closed, as Segment does), over at most `connections` kept-alive connections. `close()` lets them go.
 */
function sender(options: LoadOptions): ((body: Buffer) => Promise<Outcome>) & { close(): void } {
  const url = new URL(options.url);
  const secure = url.protocol === 'https:';
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const agentOptions = {
    keepAlive: true,
    maxSockets: options.connections,
    maxFreeSockets: options.connections,
  };
  const agent: Agent = secure
    ? new HttpsAgent({ ...agentOptions, rejectUnauthorized: options.insecure !== true })
    : new HttpAgent(agentOptions);
  const request = secure ? httpsRequest : httpRequest;
  const headers = {
    ...segmentHeaders(options.apiKey, base64(JSON.stringify(options.settings))),
    host: url.host,
  };
  const target = {
    hostname,
    port: url.port || (secure ? 443 : 80),
    path: `${url.pathname}${url.search}`,
    method: 'POST',
    agent,
    // SNI takes a name, never an address.
    ...(secure && isIP(hostname) === 0 && { servername: hostname }),
  };
  const send = (body: Buffer) =>
    new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const req: ClientRequest = request({
        ...target,
        headers: { ...headers, 'content-length': body.length },
      });
      const timer = setTimeout(() => {
        settle({ timedOut: true });
        req.destroy();
      }, SEGMENT_TIMEOUT_MS);
      req.on('response', (res: IncomingMessage) => {
        // Read to its end and dropped: an answer is whole once its body is, and never held in memory.
        res.on('data', () => {});
        res.on('end', () => settle({ status: res.statusCode ?? 0 }));
        res.on('aborted', () => settle({ error: 'ECONNRESET' }));
        res.on('error', (err: NodeJS.ErrnoException) => settle({ error: err.code ?? err.message }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => settle({ error: err.code ?? err.message }));
      req.end(body);
    });
  return Object.assign(send, { close: () => agent.destroy() });
}
