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
const CHECKS_PASS = 'PostgreSQL passes its checks again: events are tried, and said stored once one is';
// The table's enabled BEFORE INSERT row triggers (tgtype: ROW 1, BEFORE 2, INSERT 4), by name.
const REKEYING_SQL = `SELECT tgname AS name FROM pg_trigger
  WHERE tgrelid = to_regclass($1) AND NOT tgisinternal AND tgenabled <> 'D' AND tgtype::int & 7 = 7
  ORDER BY tgname`;

export class TableChecks {
  readonly #pool: Pool;
  readonly #table: string;
  readonly #log: Logger;
  /** What the log last said failed. */
  #said: string | undefined;
  /** What the log last said of the sink: that it cannot store events, stores them, or tries again. */
  #state: 'cannot' | 'stores' | 'tries' | undefined;
  /** The wait of the connect that brought the sink up (none after the probation of refusals), and when. */
  #trial: number | undefined;
  #upAt = 0;
  /**
   * An INSERT failed in this outage for a reason the checks pass through (a full disk, a statement timed
   * out behind a lock): only an event stored ends it, whatever checks failed and passed meanwhile (a
   * restart of PostgreSQL leaves a disk full). `#toldTried`: that the checks pass was said since the
   * last line saying events cannot be stored.
   */
  #insertSaw = false;
  #toldTried = false;
  /** The watch under way, if any (`watch`). */
  #watching: object | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The table stored a row under another key than sent (`rewroteKeys`), and may still. */
  #rekeyed = false;

  /** INSERTs are under way: they will tell of an outage (`watch`). */
  readonly #busy: () => boolean;

  constructor(pool: Pool, table: string, log: Logger, busy: () => boolean) {
    this.#pool = pool;
    this.#table = table;
    this.#log = log;
    this.#busy = busy;
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
   * INSERT at a time (a table dropped is made again, as at start), and a quiet endpoint's PostgreSQL
   * gone would go unsaid, /health ok, until an event came.
   * What failed goes to `down`, the sink down for it; unless INSERTs are under way (`busy`) and what
   * failed is not the table: they will tell, and the check may only have found no connection to spare.
   */
  watch(down: (err: unknown) => void): void {
    this.stop();
    // Each check RECHECK_MS after the last one ended; one that ends after `stop()` (or a later `watch`)
    // says nothing: the sink went down meanwhile, and what is true now is for the checks after it.
    const watching = {};
    this.#watching = watching;
    const next = () => {
      this.#timer = setTimeout(async () => {
        // Under way when the check began, or when it failed: an INSERT that ended meanwhile may have held
        // the connection the check waited for.
        const busy = this.#busy();
        const err = await this.check().then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        if (this.#watching !== watching) return;
        // Passing, it tells nothing new: an outage the checks saw ended at the `up` that followed it;
        // one they pass through (a full disk, a table refusing every row) ends with an event stored.
        if (err === undefined) next();
        else if (err instanceof TableRefused || !(busy || this.#busy())) down(err);
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
   * A check passed in a `connect(delay)`: up, and said so, unless an INSERT met this outage for a reason
   * the checks pass through (`#insertSaw`): then once an event is stored (`stores`), since a check passes
   * on a full disk, whose INSERTs fail. The table that refused every row (`refusedAll`) is on a
   * probation of its own (postgres-refusals.ts), said as it begins.
   */
  up(delay: number, refusedAll: boolean): void {
    this.#trial = refusedAll ? undefined : delay;
    this.#upAt = performance.now();
    if (refusedAll) {
      this.#state = 'tries';
      this.#log.info({ table: this.#table }, TRIED_AGAIN);
    } else if (!this.#insertSaw) {
      this.stores();
    } else if (!this.#toldTried) {
      // Once after each line saying events cannot be stored: /health is ok again, and the log says why.
      this.#toldTried = true;
      this.#log.info({ table: this.#table }, CHECKS_PASS);
    }
  }

  /** Events are stored (one was, or a check passed after an outage the checks saw): said once. */
  stores(): void {
    if (this.#state === 'stores') return;
    this.#state = 'stores';
    this.#said = undefined;
    this.#log.info({ table: this.#table }, STORES);
  }

  /**
   * Events cannot be stored: says why, unless this outage was said and not yet its end (the same outage:
   * a full disk's checks pass and its INSERTs fail), and returns how long to wait before checking again:
   * `retryMs`, or, failing within RECHECK_MS of coming up, the longer wait its connect was at: a
   * database whose checks pass and INSERTs fail is tried less and less often, and said once.
   */
  down(err: unknown, why: string | undefined, retryMs: number, maxMs: number): number {
    if (this.#state !== 'cannot') this.#insertSaw = false;
    if (checksPassThrough(err)) this.#insertSaw = true;
    this.sayIfNew(err, this.#state !== 'cannot', why);
    const trial = this.#trial;
    this.#trial = undefined;
    const again = trial !== undefined && performance.now() - this.#upAt < RECHECK_MS;
    return again ? Math.min(Math.max(trial, retryMs), maxMs) : retryMs;
  }

  /** Says that events cannot be stored, and why. */
  say(err: unknown, why = CANNOT_STORE): void {
    this.#said = reason(err) ?? why;
    this.#state = 'cannot';
    this.#toldTried = false;
    this.#log.error({ err, table: this.#table }, why);
  }

  /** Says it unless it is what was said last (a check that fails as before), or `always`. */
  sayIfNew(err: unknown, always: boolean, why = CANNOT_STORE): void {
    if (always || (reason(err) ?? why) !== this.#said) this.say(err, why);
  }
}

const reason = (err: unknown): string | undefined => (err as { message?: string } | undefined)?.message;

/**
 * PostgreSQL's refusals of an INSERT that its checks, which write nothing and wait on no row lock, pass
 * through: a full disk (53100), out of memory (53200), an I/O error (58030), a statement timed out or a
 * lock not had (57014, 55P03). Anything else (PostgreSQL gone, a password or database changed, the
 * table altered) a check meets too.
 */
const PASSED_THROUGH = new Set(['53100', '53200', '58030', '57014', '55P03']);
const checksPassThrough = (err: unknown): boolean =>
  typeof (err as { severity?: unknown } | undefined)?.severity === 'string' &&
  PASSED_THROUGH.has(String((err as { code?: unknown }).code));
