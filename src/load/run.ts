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
import { segmentHeaders, settingsHeader } from '../tester/run.ts';
import { eventSource } from './mix.ts';
import { type LoadFigures, SEGMENT_TIMEOUT_MS } from './report.ts';

export interface LoadOptions {
  /** Where events are POSTed: http or https, the path included. */
  readonly url: string;
  readonly apiKey: string;
  /** The customer's custom settings, sent in X-Segment-Settings: an object, or JSON text as it is. */
  readonly settings: Readonly<Record<string, unknown>> | string;
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
  const tally = new Tally();
  const run: Run = { started: performance.now(), sending: true, over: Promise.resolve() };
  let stop = () => {};
  run.over = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.duration * 1000);
    stop = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  process.once('SIGINT', stop);
  // The run lasts its duration, whatever the workers are doing: requests/s counts every second of it.
  for (let i = 0; i < options.connections; i++) {
    const share = options.rate === undefined ? undefined : shareOf(options.rate, options.connections, i);
    void worker(run, share, options.duration, () => tally.sent(send(source.next())));
  }
  await run.over;
  run.sending = false;
  const seconds = (performance.now() - run.started) / 1000;
  // What is in flight at the end is waited for (at most Segment's timeout, each request's own bound):
  // every request sent is counted, and one that is never answered is a timeout, however short the run.
  await tally.drained();
  process.off('SIGINT', stop);
  send.close();
  return {
    url: options.url,
    seconds,
    connections: options.connections,
    ...(options.rate !== undefined && { rate: options.rate }),
    sent: source.sent(),
    ...tally.figures(),
  };
}

interface Run {
  readonly started: number;
  sending: boolean;
  /** Resolves when the run's time is up, or at a SIGINT. */
  over: Promise<void>;
}

/**
 * One connection's requests, one at a time while the run is sending: as fast as answered, or with a rate
 * its `share` of each second of the run, sent as fast as answered, then a wait for the next second.
 */
async function worker(run: Run, share: number | undefined, seconds: number, send: () => Promise<Outcome>) {
  let second = 0;
  let sentThisSecond = 0;
  while (run.sending) {
    if (share !== undefined) {
      const now = Math.floor((performance.now() - run.started) / 1000);
      if (now > second) {
        second = now;
        sentThisSecond = 0;
      }
      if (sentThisSecond >= share) {
        if (second + 1 >= seconds) return; // no second of the run left to send in
        await Promise.race([delay(run.started + (second + 1) * 1000 - performance.now()), run.over]);
        continue;
      }
      sentThisSecond++;
    }
    if ('error' in (await send())) await Promise.race([delay(AFTER_FAILURE_MS), run.over]);
  }
}

/** What came back: answers by status and their latencies, failures, timeouts, and what is in flight. */
class Tally {
  readonly #latency = createHistogram();
  readonly #statuses: Record<string, number> = {};
  readonly #errors: Record<string, number> = {};
  #timeouts = 0;
  #late = 0;
  #inFlight = 0;
  #idle: Array<() => void> = [];

  /** Counts `request`'s outcome once it comes. */
  async sent(request: Promise<Outcome>): Promise<Outcome> {
    const at = performance.now();
    this.#inFlight++;
    const outcome = await request;
    this.#record(outcome, performance.now() - at);
    if (--this.#inFlight === 0) for (const wake of this.#idle.splice(0)) wake();
    return outcome;
  }

  /** Resolves once nothing is in flight. */
  drained(): Promise<void> {
    return this.#inFlight === 0 ? Promise.resolve() : new Promise((wake) => this.#idle.push(wake));
  }

  figures(): Pick<LoadFigures, 'statuses' | 'latency' | 'late' | 'timeouts' | 'errors'> {
    const latency = this.#latency;
    const toMs = (micros: number) => micros / 1000;
    return {
      statuses: this.#statuses,
      ...(latency.count > 0 && {
        latency: {
          p50: toMs(latency.percentile(50)),
          p90: toMs(latency.percentile(90)),
          p99: toMs(latency.percentile(99)),
          max: toMs(latency.max),
        },
      }),
      late: this.#late,
      timeouts: this.#timeouts,
      errors: this.#errors,
    };
  }

  #record(outcome: Outcome, tookMs: number): void {
    if ('status' in outcome) {
      this.#statuses[outcome.status] = (this.#statuses[outcome.status] ?? 0) + 1;
      this.#latency.record(Math.max(1, Math.round(tookMs * 1000)));
      if (tookMs > SEGMENT_TIMEOUT_MS) this.#late++;
    } else if ('timedOut' in outcome) {
      this.#timeouts++;
    } else {
      this.#errors[outcome.error] = (this.#errors[outcome.error] ?? 0) + 1;
    }
  }
}

/** Worker `i`'s requests a second of `rate` shared out between `connections`. */
function shareOf(rate: number, connections: number, i: number): number {
  return Math.floor(rate / connections) + (i < rate % connections ? 1 : 0);
}

// Unref'd: a run that has ended holds no process open for a worker's wait.
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());

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
    ...segmentHeaders(options.apiKey, settingsHeader(options.settings)),
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
  const send = (body: Buffer): Promise<Outcome> =>
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
      // A 101 comes to this listener, not as a response: an answer all the same (not a 2xx).
      req.on('upgrade', (res: IncomingMessage, socket) => {
        socket.destroy();
        settle({ status: res.statusCode ?? 101 });
      });
      // A reset is a failure even on a kept-alive connection the server may have closed as the request
      // went out: Segment does not resend at once either, and the endpoint may have taken the event.
      req.on('error', (err: NodeJS.ErrnoException) => settle({ error: err.code ?? err.message }));
      req.end(body);
    });
  return Object.assign(send, { close: () => agent.destroy() });
}
