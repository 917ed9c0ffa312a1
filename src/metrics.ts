// Prometheus text exposition (format 0.0.4) of what operators watch: events by type and status, their
// latency, events in flight, the store's commit latency, duplicates dropped. Labels come from closed
// sets only (the seven types, or "unknown"; the status code; the worker's number, at most --workers),
// so no sender can grow the series.

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]; // seconds

/** A histogram's counts: per bucket (not cumulative), then all of them and their sum. */
export interface HistogramData {
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

/**
 * What one process counted, as plain data: what a worker sends its primary, which sums the workers'
 * (`sumMetrics`) so that `/metrics` reports the whole process tree whichever worker answers.
 */
export interface MetricsSnapshot {
  /** Answered event requests by `type|status`. */
  readonly requests: Readonly<Record<string, number>>;
  readonly latency: HistogramData;
  readonly commits: HistogramData;
  readonly duplicates: number;
  readonly stored: number;
  /** Whether a store's commits are counted: without one, its series are not shown. */
  readonly store: boolean;
  readonly inFlight: number;
  /** Handlers still running past their timeout (LateWork.overdue). */
  readonly overdue: number;
  /** Event requests answered by each worker, by its number (only with several workers). */
  readonly workers?: Readonly<Record<string, number>>;
}

class Histogram {
  readonly counts = new Array<number>(BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= (BUCKETS[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }

  data(): HistogramData {
    return { counts: [...this.counts], count: this.count, sum: this.sum };
  }
}

export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Histogram();
  readonly #commits = new Histogram();
  #duplicates = 0;
  #stored = 0;
  #store = false;
  /** Where handlers still running past their timeout are counted (LateWork): set by the pipeline. */
  late: { readonly overdue: number } | undefined;

  /**
   * Set by a worker of several: gathers the snapshots of every worker, this one's included, into one.
   * `/metrics` then serves the sum, and its own counts only if gathering fails.
   */
  gather: ((own: MetricsSnapshot) => Promise<MetricsSnapshot>) | undefined;

  /** One answered event request: its type (`unknown` before the type was known), status, and time. */
  request(type: string, status: number, seconds: number): void {
    const key = `${type}|${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    this.#latency.observe(seconds);
  }

  duplicate(): void {
    this.#duplicates++;
  }

  /** The store's commits are counted (`commit`) from now on: its series are shown, zeros included. */
  countStore(): void {
    this.#store = true;
  }

  /** One group commit of the store (its series shown from then on): its time until durable, its events. */
  commit(seconds: number, events: number): void {
    this.#store = true;
    this.#commits.observe(seconds);
    this.#stored += events;
  }

  snapshot(inFlight: number): MetricsSnapshot {
    return {
      requests: Object.fromEntries(this.#requests),
      latency: this.#latency.data(),
      commits: this.#commits.data(),
      duplicates: this.#duplicates,
      stored: this.#stored,
      store: this.#store,
      inFlight,
      overdue: this.late?.overdue ?? 0,
    };
  }
}

/** The counts of several processes as one: each figure summed, each worker's requests kept apart. */
export function sumMetrics(
  parts: ReadonlyArray<{ readonly worker: number; readonly snapshot: MetricsSnapshot }>,
) {
  const requests: Record<string, number> = {};
  const workers: Record<string, number> = {};
  const add = (a: HistogramData, b: HistogramData): HistogramData => ({
    counts: a.counts.map((n, i) => n + (b.counts[i] ?? 0)),
    count: a.count + b.count,
    sum: a.sum + b.sum,
  });
  const empty: HistogramData = { counts: BUCKETS.map(() => 0), count: 0, sum: 0 };
  let total: MetricsSnapshot = {
    requests,
    latency: empty,
    commits: empty,
    duplicates: 0,
    stored: 0,
    store: false,
    inFlight: 0,
    overdue: 0,
    workers,
  };
  for (const { worker, snapshot } of parts) {
    let answered = 0;
    for (const [key, n] of Object.entries(snapshot.requests)) {
      requests[key] = (requests[key] ?? 0) + n;
      answered += n;
    }
    workers[worker] = (workers[worker] ?? 0) + answered;
    total = {
      ...total,
      latency: add(total.latency, snapshot.latency),
      commits: add(total.commits, snapshot.commits),
      duplicates: total.duplicates + snapshot.duplicates,
      stored: total.stored + snapshot.stored,
      store: total.store || snapshot.store,
      inFlight: total.inFlight + snapshot.inFlight,
      overdue: total.overdue + snapshot.overdue,
    };
  }
  return total;
}

function renderHistogram(name: string, data: HistogramData): string[] {
  const lines: string[] = [];
  let cumulative = 0;
  BUCKETS.forEach((le, i) => {
    cumulative += data.counts[i] ?? 0;
    lines.push(`${name}_bucket{le="${le}"} ${cumulative}`);
  });
  lines.push(
    `${name}_bucket{le="+Inf"} ${data.count}`,
    `${name}_sum ${data.sum}`,
    `${name}_count ${data.count}`,
  );
  return lines;
}

export function renderMetrics(m: MetricsSnapshot): string {
  const lines = [
    '# HELP segment_endpoint_requests_total Event requests answered, by event type and status.',
    '# TYPE segment_endpoint_requests_total counter',
  ];
  for (const [key, value] of Object.entries(m.requests).sort()) {
    const [type, status] = key.split('|');
    lines.push(`segment_endpoint_requests_total{type="${type}",status="${status}"} ${value}`);
  }
  lines.push(
    '# HELP segment_endpoint_request_duration_seconds Time from a request to its answer.',
    '# TYPE segment_endpoint_request_duration_seconds histogram',
    ...renderHistogram('segment_endpoint_request_duration_seconds', m.latency),
    '# HELP segment_endpoint_in_flight Event requests being processed.',
    '# TYPE segment_endpoint_in_flight gauge',
    `segment_endpoint_in_flight ${m.inFlight}`,
    '# HELP segment_endpoint_handlers_overdue Handlers still running past their timeout: what they hold is held still.',
    '# TYPE segment_endpoint_handlers_overdue gauge',
    `segment_endpoint_handlers_overdue ${m.overdue}`,
    '# HELP segment_endpoint_duplicates_total Events answered as duplicates without running a handler.',
    '# TYPE segment_endpoint_duplicates_total counter',
    `segment_endpoint_duplicates_total ${m.duplicates}`,
  );
  if (m.store) {
    lines.push(
      '# HELP segment_endpoint_store_fsync_seconds Time of each group commit of the store, until durable.',
      '# TYPE segment_endpoint_store_fsync_seconds histogram',
      ...renderHistogram('segment_endpoint_store_fsync_seconds', m.commits),
      '# HELP segment_endpoint_store_events_total Events made durable by the store.',
      '# TYPE segment_endpoint_store_events_total counter',
      `segment_endpoint_store_events_total ${m.stored}`,
    );
  }
  if (m.workers !== undefined) {
    lines.push(
      '# HELP segment_endpoint_worker_requests_total Event requests answered, by worker process.',
      '# TYPE segment_endpoint_worker_requests_total counter',
      ...Object.entries(m.workers).map(
        ([worker, n]) => `segment_endpoint_worker_requests_total{worker="${worker}"} ${n}`,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
