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
// The table's enabled BEFORE INSERT row triggers (tgtype: ROW 1, BEFORE 2, INSERT 4), by name.
const REKEYING_SQL = `SELECT tgname AS name FROM pg_trigger
  WHERE tgrelid = to_regclass($1) AND NOT tgisinternal AND tgenabled <> 'D' AND tgtype::int & 7 = 7
  ORDER BY tgname`;

export class TableChecks {
  readonly #pool: Pool;
  readonly #table: string;
  readonly #log: Logger;
  /** What the log last said failed, while down. */
  #said: string | undefined;
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

  /** Says that events cannot be stored, and why. */
  say(err: unknown, why = CANNOT_STORE): void {
    this.#said = reason(err);
    this.#log.error({ err, table: this.#table }, why);
  }

  /** Says it unless `err` is what was said last (a check that fails as before), or `always`. */
  sayIfNew(err: unknown, always: boolean): void {
    if (always || reason(err) !== this.#said) this.say(err);
  }

  /** Events are stored again: the next outage is said whatever it is. */
  up(): void {
    this.#said = undefined;
  }
}

const reason = (err: unknown): string | undefined => (err as { message?: string } | undefined)?.message;
