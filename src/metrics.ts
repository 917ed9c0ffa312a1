// Prometheus text exposition (format 0.0.4) of what operators watch: events by type and status, their
// latency, events in flight, the store's fsync latency, duplicates dropped. Labels come from closed
// sets only (the seven types, or "unknown"; the status code), so no sender can grow the series.

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]; // seconds

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

  render(name: string, labels = ''): string[] {
    const sep = labels === '' ? '' : ',';
    const lines: string[] = [];
    let cumulative = 0;
    BUCKETS.forEach((le, i) => {
      cumulative += this.counts[i] as number;
      lines.push(`${name}_bucket{${labels}${sep}le="${le}"} ${cumulative}`);
    });
    lines.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${this.count}`);
    const braces = labels === '' ? '' : `{${labels}}`;
    lines.push(`${name}_sum${braces} ${this.sum}`, `${name}_count${braces} ${this.count}`);
    return lines;
  }
}

export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Histogram();
  readonly #fsync = new Histogram();
  #duplicates = 0;
  #stored = 0;

  /** One answered event request: its type (`unknown` before the type was known), status, and time. */
  request(type: string, status: number, seconds: number): void {
    const key = `${type}|${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    this.#latency.observe(seconds);
  }

  duplicate(): void {
    this.#duplicates++;
  }

  /** One group commit of the store: its write + fdatasync time, and the events it carried. */
  commit(seconds: number, events: number): void {
    this.#fsync.observe(seconds);
    this.#stored += events;
  }

  render(inFlight: number): string {
    const lines = [
      '# HELP segment_endpoint_requests_total Event requests answered, by event type and status.',
      '# TYPE segment_endpoint_requests_total counter',
    ];
    for (const [key, value] of [...this.#requests].sort()) {
      const [type, status] = key.split('|');
      lines.push(`segment_endpoint_requests_total{type="${type}",status="${status}"} ${value}`);
    }
    lines.push(
      '# HELP segment_endpoint_request_duration_seconds Time from a request to its answer.',
      '# TYPE segment_endpoint_request_duration_seconds histogram',
      ...this.#latency.render('segment_endpoint_request_duration_seconds'),
      '# HELP segment_endpoint_in_flight Event requests being processed.',
      '# TYPE segment_endpoint_in_flight gauge',
      `segment_endpoint_in_flight ${inFlight}`,
      '# HELP segment_endpoint_duplicates_total Events answered as duplicates without running a handler.',
      '# TYPE segment_endpoint_duplicates_total counter',
      `segment_endpoint_duplicates_total ${this.#duplicates}`,
      '# HELP segment_endpoint_store_fsync_seconds Write + fdatasync time of each group commit of the store.',
      '# TYPE segment_endpoint_store_fsync_seconds histogram',
      ...this.#fsync.render('segment_endpoint_store_fsync_seconds'),
      '# HELP segment_endpoint_store_events_total Events made durable by the store.',
      '# TYPE segment_endpoint_store_events_total counter',
      `segment_endpoint_store_events_total ${this.#stored}`,
    );
    return `${lines.join('\n')}\n`;
  }
}
