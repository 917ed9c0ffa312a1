import { EndpointError } from './errors.ts';

// What the bodies of requests being processed hold at once, in characters of their JSON text. maxInFlight
// bounds their number, not their size: 1,024 bodies of 510 KB of `[{},{},…]` (590 bytes gzipped) held by
// slow handlers could take ~11 GB of heap once parsed, past Node's limit. Parsed JSON takes from ~2
// (strings) to ~20 times its text (empty objects): at the least this budget that is 64 MB to 640 MB. It
// bounds memory, not CPU: such bodies cost ~55 ms each to parse, and a few dozen senders of them keep a
// 2-core machine busy whatever is held (--rate-limit counts events, not what they cost). Counted until
// the answer: a handler still running past its timeout holds its event on, uncounted, as maxInFlight
// does not count it either (the gauge segment_endpoint_handlers_overdue does).

const LEAST = 32 * 1024 * 1024; // characters: 64 bodies at the default limit, 1,000 events of Segment's 32 KB
const BODIES_AT_LIMIT = 4; // bodies at --max-body-bytes held at once, at the least

const HELD = 'The endpoint is processing too many large requests at once, retry later';

/** The characters of text a handler's bodies may hold at once: bodies past it are answered 503. */
export class HeldBodies {
  readonly limit: number;
  #held = 0;

  constructor(maxBodyBytes: number) {
    this.limit = Math.max(LEAST, BODIES_AT_LIMIT * maxBodyBytes);
  }

  /**
   * Counts `characters` as held until `release`, or throws a 503 SEG_OVERLOADED (Segment retries it) when
   * they would take the bodies held past the limit. Before the body is parsed: a body refused here was
   * never more than its text. One alone is always taken.
   */
  take(characters: number): number {
    if (this.#held > 0 && this.#held + characters > this.limit) {
      throw new EndpointError('SEG_OVERLOADED', HELD);
    }
    this.#held += characters;
    return characters;
  }

  release(characters: number): void {
    this.#held -= characters;
  }
}
