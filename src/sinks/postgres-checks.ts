import type { Pool } from 'pg';
import type { Logger } from '../log.ts';
import { REWRITTEN } from './postgres-discards.ts';
import { query } from './postgres-pool.ts';
import { quoted } from './postgres-sql.ts';
import { ensureTable, TableRefused } from './postgres-table.ts';

// The PostgreSQL sink's checks of its database and table (ensureTable): after an outage until one
// passes, and every RECHECK_MS while the sink is up, and what the log says of them.

const RECHECK_MS = 10_000; // while up: a table changed meanwhile stops the 200s within about this
const CANNOT_STORE = 'PostgreSQL cannot store events: answering 503 until it can';
const STORES = 'PostgreSQL stores events';
const TRIED_AGAIN = 'the table is tried again with events';
// The table's enabled BEFORE INSERT row triggers (tgtype: ROW 1, BEFORE 2, INSERT 4), by name.
const REKEYING_SQL = `SELECT tgname AS name FROM pg_trigger
  WHERE tgrelid = to_regclass($1) AND NOT tgisinternal AND tgenabled <> 'D' AND tgtype::int & 7 = 7
  ORDER BY tgname`;

export class TableChecks {
  readonly #pool: Pool;
  readonly #table: string;
  readonly #log: Logger;
  /** What the log last said failed, until an event is stored. */
  #said: string | undefined;
  /** The log said events are stored (`up`) since it last said they cannot be. */
  #saidUp = false;
  /** Up after a wait of this many ms, with no event stored since: a failure now is the same outage. */
  #trial: number | undefined;
  /** The watch under way, if any (`watch`). */
  #watching: object | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The table stored a row under another key than sent (`rewroteKeys`), and may still. */
  #rekeyed = false;

  constructor(pool: Pool, table: string, log: Logger) {
    this.#pool = pool;
    this.#table = table;
    this.#log = log;
  }

  /** Checks the database and the table, creating it when missing (ensureTable); throws what is wrong. */
  async check(): Promise<void> {
    await ensureTable(this.#pool, this.#table);
    if (!this.#rekeyed) return;
    const { rows } = await query<{ name: string }>(this.#pool, REKEYING_SQL, [quoted(this.#table)]);
    if (rows.length === 0) {
      this.#rekeyed = false;
      return;
    }
    const names = rows.map((row) => row.name).join(', ');
    throw new TableRefused(
      `table ${this.#table} stored a row under another source or message_id than sent, and has a BEFORE INSERT trigger (${names}): answering 503 until it is dropped or disabled, or the endpoint restarted once it keeps both as sent`,
    );
  }

  /**
   * The table stored a row under another key than the INSERT sent (a trigger's rewrite): up again only
   * once it has no BEFORE INSERT trigger left, which could do it again. Up at each retry, the sink took
   * copies of other events for the rewritten rows, and answered them 200. Returns what to say.
   */
  rewroteKeys(): string {
    this.#rekeyed = true;
    return REWRITTEN;
  }

  /**
   * Checks again every RECHECK_MS until `stop()`, events or none: a table made UNLOGGED, altered or
   * closed to the role while the sink is up would have events acknowledged and lost, or refused one
   * INSERT at a time (a table dropped is made again, as at start).
   * What is wrong goes to `refused`; a check that could not be made (no connection to spare, PostgreSQL
   * gone) says nothing the next INSERT will not.
   */
  watch(refused: (err: TableRefused) => void): void {
    this.stop();
    // Each check RECHECK_MS after the last one ended; one that ends after `stop()` (or a later `watch`)
    // says nothing: the sink went down meanwhile, and what is true now is for the checks after it.
    const watching = {};
    this.#watching = watching;
    const next = () => {
      this.#timer = setTimeout(async () => {
        const err = await this.check().then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        if (this.#watching !== watching) return;
        if (err instanceof TableRefused) refused(err);
        else next();
      }, RECHECK_MS).unref();
    };
    next();
  }

  stop(): void {
    this.#watching = undefined;
    clearTimeout(this.#timer);
  }

  /**
   * A check passed in a `connect(delay)`: up, on trial until an event is stored (`stored`), and said unless
   * the log said so since it last said events cannot be stored. The table that refused every row
   * (`refusedAll`) is on a probation of its own (postgres-refusals.ts), said each time it begins.
   */
  up(delay: number, refusedAll: boolean): void {
    this.#trial = refusedAll ? undefined : delay;
    if (this.#saidUp && !refusedAll) return;
    this.#saidUp = true;
    this.#log.info({ table: this.#table }, refusedAll ? TRIED_AGAIN : STORES);
  }

  /** An event is stored: the next outage is said whatever it is, and tried again after the first wait. */
  stored(): void {
    this.#said = undefined;
    this.#trial = undefined;
  }

  /**
   * Events cannot be stored: says why, and returns how long to wait before checking again: `retryMs`, or,
   * up on trial (a full disk: its checks pass, its INSERTs fail), the longer wait its connect was at, and
   * nothing said unless it fails otherwise. It came up and failed ~15 times a second, said so each time,
   * and was called healthy between.
   */
  down(err: unknown, why: string | undefined, retryMs: number, maxMs: number): number {
    const trial = this.#trial;
    this.#trial = undefined;
    if (trial === undefined) {
      this.say(err, why);
      return retryMs;
    }
    this.sayIfNew(err, false, why);
    return Math.min(Math.max(trial, retryMs), maxMs);
  }

  /** Says that events cannot be stored, and why. */
  say(err: unknown, why = CANNOT_STORE): void {
    this.#said = reason(err) ?? why;
    this.#saidUp = false;
    this.#log.error({ err, table: this.#table }, why);
  }

  /** Says it unless it is what was said last (a check that fails as before), or `always`. */
  sayIfNew(err: unknown, always: boolean, why = CANNOT_STORE): void {
    if (always || (reason(err) ?? why) !== this.#said) this.say(err, why);
  }
}

const reason = (err: unknown): string | undefined => (err as { message?: string } | undefined)?.message;
