import type { Logger } from './log.ts';

// Whether Redis fails, as the duplicate filter over it sees it (idempotency-redis.ts): said once when an
// outage begins and once when it ends, and probed while it lasts.

export const PROBE_MS = 1_000; // 1 s between writes that probe Redis while it fails
// Probe writes taken in a row that end an outage: at its memory limit Redis takes a write now and then
const TAKEN_TO_END = 3;
// Causes of one outage logged at most: the connection's, each the first time it is seen (see `connection`)
const CAUSES_LOGGED = 4;

export class RedisOutage {
  /** Whether an outage has been logged and its end not yet. */
  down = false;
  /** Probe writes taken in a row in this outage. */
  #taken = 0;
  /** The messages of the connection's errors logged in this outage. */
  #causes = new Set<string>();

  constructor(
    /** Where Redis is, for the log: never its URL, which may hold a password. */
    readonly where: string,
    readonly log: Logger | undefined,
    /** A write to Redis: a read-only replica or a Redis out of memory answers PING, not a write. */
    readonly probe: () => Promise<unknown>,
    /** Whether the client is still open: a closed store probes no more. */
    readonly open: () => boolean,
    /** Called when an outage ends. */
    readonly recovered: () => void = () => {},
  ) {}

  began(err: unknown): void {
    this.#taken = 0;
    if (this.down) return;
    this.down = true;
    this.#causes.clear();
    this.#causes.add(messageOf(err));
    this.#tell('error', { err, redis: this.where }, 'Redis fails: events are refused (503) until it answers');
    this.#probeLater();
  }

  /**
   * An error of the connection itself (the client's 'error' event): it begins an outage, or, during one,
   * is said once as its cause now when it is a new one. An outage that began with the connection closing
   * goes on as connections refused (Redis is down), or as NOAUTH or WRONGPASS (it wants a password now):
   * the operator is told which, a few causes at most. The errors of events' own commands are not causes
   * ("The client is offline"), and repeat what the outage's first line said.
   */
  connection(err: unknown): void {
    if (!this.down) {
      this.began(err);
      return;
    }
    this.#taken = 0;
    const message = messageOf(err);
    if (this.#causes.size >= CAUSES_LOGGED || this.#causes.has(message)) return;
    this.#causes.add(message);
    this.#tell('warn', { err, redis: this.where }, 'Redis still fails, for this cause now');
  }

  ended(): void {
    if (!this.down) return;
    this.down = false;
    this.#tell('info', { redis: this.where }, 'Redis answers again: events are checked for duplicates');
    this.recovered();
  }

  /**
   * While down, a write a second: health turns ok again even when no event comes (a balancer left us),
   * and only once Redis takes writes again, not merely answers: TAKEN_TO_END of them in a row, with no
   * write refused meanwhile (an event's claim or `done` that fails starts the count again).
   */
  #probeLater(): void {
    setTimeout(() => {
      if (!this.down || !this.open()) return;
      this.probe().then(
        () => (++this.#taken >= TAKEN_TO_END ? this.ended() : this.#probeLater()),
        () => {
          this.#taken = 0;
          this.#probeLater();
        },
      );
    }, PROBE_MS).unref();
  }

  /** A line for the operator. A logger that throws loses the line, never an event's claim or answer. */
  #tell(level: 'error' | 'warn' | 'info', fields: Record<string, unknown>, message: string): void {
    try {
      this.log?.[level](fields, message);
    } catch {
      // nothing to do: the line is lost
    }
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
