// The load itself: `connections` workers, each sending the mix (mix.ts) one request at a time over its
// kept-alive connection with node's HTTP client, and what came back gathered into the figures the report
// (report.ts) is made of. Node's client reads HTTP as a server may write it (interim 1xx answers,
// `Connection: close`, bodies ended by the connection's close, answers cut short), so every request is
// counted once: answered, failed or timed out (what is in flight at the end is waited for).
import { createHistogram } from 'node:perf_hooks';
import type { EventType } from '../types.ts';
import { eventSource } from './mix.ts';
import { type LoadFigures, SEGMENT_TIMEOUT_MS } from './report.ts';
import { type Outcome, sender } from './sender.ts';

export interface LoadOptions {
  /** Only events of these types (--types); every type when undefined. */
  readonly types?: readonly EventType[];
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

const AFTER_FAILURE_MS = 100; // a connection that failed is made again after this, not in a tight loop

/**
 * Sends for `duration` seconds and measures. A SIGINT (Ctrl-C) while it sends stops the run early; one
 * while the answers in flight are waited for (at most 5 s, after the run) stops that wait, and those
 * requests are reported in flight. `waiting` is told how many answers that wait is for, when any.
 */
export async function sendLoad(
  options: LoadOptions,
  waiting: (inFlight: number) => void = () => {},
): Promise<LoadFigures> {
  const source = eventSource(options.apiKey, options.types);
  const send = sender(options);
  const tally = new Tally();
  const started = performance.now();
  const run: Run = {
    started,
    endsAt: started + options.duration * 1000,
    sending: true,
    over: Promise.resolve(),
    stop() {},
  };
  run.over = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.duration * 1000);
    run.stop = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  const ctrlC = { cutShort: false, waitCut: false };
  let cutWait = () => {};
  const waitCut = new Promise<void>((resolve) => {
    cutWait = resolve;
  });
  const onSigint = () => {
    if (run.sending) {
      ctrlC.cutShort = true;
      run.sending = false; // a second one ends the wait that follows
      run.stop();
    } else {
      ctrlC.waitCut = true;
      cutWait();
    }
  };
  process.on('SIGINT', onSigint);
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
  if (tally.inFlight > 0) waiting(tally.inFlight);
  await Promise.race([tally.drained(), waitCut]);
  process.off('SIGINT', onSigint);
  send.close();
  return {
    url: options.url,
    seconds,
    connections: options.connections,
    ...(options.rate !== undefined && { rate: options.rate }),
    ...((ctrlC.cutShort || ctrlC.waitCut) && {
      interrupted: { asked: options.duration, cutShort: ctrlC.cutShort },
    }),
    sent: source.sent(),
    ...tally.figures(),
  };
}

interface Run {
  readonly started: number;
  readonly endsAt: number;
  sending: boolean;
  /** Resolves when the run's time is up, or at a SIGINT. */
  over: Promise<void>;
  /**
   * Ends the run now. A worker calls it once the clock says the time is up: with many connections
   * answered at once, the workers' callbacks can keep the run's own timer from firing for seconds.
   */
  stop(): void;
}

/**
 * One connection's requests, one at a time while the run is sending: as fast as answered, or with a rate
 * its `share` of each second of the run, sent as fast as answered, then a wait for the next second.
 */
async function worker(run: Run, share: number | undefined, seconds: number, send: () => Promise<Outcome>) {
  let second = 0;
  let sentThisSecond = 0;
  while (run.sending) {
    if (performance.now() >= run.endsAt) {
      run.stop();
      return;
    }
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

  get inFlight(): number {
    return this.#inFlight;
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
