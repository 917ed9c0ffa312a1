import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { keyFingerprint } from '../auth.ts';
import { EndpointError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DISCARDED } from './postgres-discards.ts';
import { inTransaction } from './postgres-pool.ts';
import { groupJson, type Row, type RowJson } from './postgres-rows.ts';
import { failureOf } from './postgres-sql.ts';

// Rows the table itself refuses: a constraint or a trigger of the partner's own (class 23, P0001). Each
// refused event is answered 503 on its own, and the others of its group are stored. Many in a row may be
// one customer's events that a CHECK refuses (sent again on each 503), or a table that takes no row at
// all (a trigger that closes it for maintenance). Only the second is an outage, and what tells them apart
// is a row the table took before, refused now, and a made-up row of no customer's refused too: the table
// changed, not one customer's events (`refusesEveryRow`).

// Events refused in a row, none stored between, before the table is asked whether it refuses every row
const IN_A_ROW = 32;
const LOG_EVERY_MS = 1_000; // one line a second at most, however many are refused
const PROBE_SOURCE = keyFingerprint('segment-endpoint probe'); // shaped as a key's fingerprint is
// What a copy of a stored row may meet without the table refusing rows: another unique index, an exclusion
const CONFLICTS = new Set(['23505', '23P01']);

/** The table's refusals of events: counted in a row and since the last line in the log. */
export class Refusals {
  readonly #pool: Pool;
  readonly #insert: string;
  readonly #log: Logger;
  #inARow = 0;
  #unlogged = 0;
  /** The first of the refusals not logged yet, logged with their count. */
  #unloggedErr: unknown;
  #loggedAt = Number.NEGATIVE_INFINITY;
  /** Logs the refusals not logged yet once LOG_EVERY_MS has passed since the last line. */
  #logLater: NodeJS.Timeout | undefined;
  /** The table is being asked whether it refuses every row. */
  #asking = false;
  /** The last row stored: one the table took. */
  #taken: RowJson | undefined;

  constructor(pool: Pool, insert: string, log: Logger) {
    this.#pool = pool;
    this.#insert = insert;
    this.#log = log;
  }

  /** `row` was stored: the refusals are no longer in a row. */
  stored(row: RowJson): void {
    this.#inARow = 0;
    const { receivedAt, source, messageId, type, settings, event } = row;
    this.#taken = { receivedAt, source, messageId, type, settings, event };
  }

  /**
   * The sink is up again after the table refused every row: until an event is stored, the first refusal
   * asks again. Real events decide, not the row asked with, which a rule of the partner's made since could
   * refuse for good.
   */
  probation(): void {
    this.#inARow = IN_A_ROW - 1;
  }

  /** `rows` refused or discarded by the table: each answered 503 at once, then counted (`refused`). */
  refuse(rows: readonly Row[], err: unknown): Promise<unknown> {
    const unavailable = new EndpointError('SEG_STORE_UNAVAILABLE', undefined, { cause: err });
    for (const row of rows) row.reject(unavailable);
    return this.refused(err, rows.length);
  }

  /**
   * `events` refused, logged with the others of their second (`flush`). Once IN_A_ROW came in a row,
   * the table is asked whether it refuses every row (counted again from there, whatever the answer):
   * resolves with its refusal if it does, else `undefined`. Rejects when PostgreSQL itself failed.
   */
  async refused(err: unknown, events = 1): Promise<unknown> {
    if (this.#unlogged === 0) this.#unloggedErr = err;
    this.#unlogged += events;
    if (this.#logLater === undefined) {
      const wait = this.#loggedAt + LOG_EVERY_MS - Date.now();
      // Refusals that come within the second are logged when it ends: the last of a burst are counted too.
      if (wait <= 0) this.flush();
      else this.#logLater = setTimeout(() => this.flush(), wait).unref();
    }
    this.#inARow += events;
    if (this.#inARow < IN_A_ROW || this.#asking) return undefined;
    this.#inARow = 0;
    this.#asking = true;
    try {
      const closing = await this.#refusesEveryRow();
      if (closing !== undefined) this.flush(); // the count before the outage's line, not after it
      return closing;
    } finally {
      this.#asking = false;
    }
  }

  /** Logs the refusals not logged yet, with their count: at once, as the sink closes. */
  flush(): void {
    clearTimeout(this.#logLater);
    this.#logLater = undefined;
    if (this.#unlogged === 0) return;
    this.#log.error(
      { err: this.#unloggedErr, events: this.#unlogged },
      'the table refused events (a constraint or trigger of its own): each answered 503',
    );
    this.#unlogged = 0;
    this.#unloggedErr = undefined;
    this.#loggedAt = Date.now();
  }

  /**
   * Whether the table refuses every row: a copy of the last row it took (`asNew`), then an ordinary track
   * event of no customer's, each INSERTed as events are in a transaction rolled back, so that nothing is
   * stored. Both must be refused: the last row taken is one customer's, and a rule made
   * since against that customer's events (a ban, a quota) refuses its copy while the table takes the
   * others' events; a rule on what events hold may refuse the made-up one. A trigger that closes the
   * table refuses both. With none stored since the start, the made-up one alone answers.
   */
  async #refusesEveryRow(): Promise<unknown> {
    const taken = this.#taken;
    if (taken !== undefined && (await this.#refuses(asNew(taken))) === undefined) return undefined;
    return this.#refuses(probeRow());
  }

  /** The table's refusal of `row`, INSERTed in a transaction rolled back, or `undefined` if it takes it. */
  #refuses(row: RowJson): Promise<unknown> {
    return inTransaction(this.#pool, 'ROLLBACK', (client) =>
      client.query(this.#insert, [groupJson([row])]).then(
        // A new row the table did not keep, though it refused nothing: discarded (postgres-discards.ts).
        (result) => (result.rowCount === 0 ? new Error(DISCARDED) : undefined),
        (err: unknown) => {
          if (failureOf(err) !== 'row') throw err;
          return CONFLICTS.has((err as { code: string }).code) ? undefined : err;
        },
      ),
    );
  }
}

/**
 * `row` as from a source of no customer's: INSERTed for real, not skipped as a duplicate (which PostgreSQL
 * does before AFTER and constraint triggers run, and one of those could close the table), its messageId
 * and event as they were (a rule on either took them once), and no ban of its customer's source met.
 */
function asNew(row: RowJson): RowJson {
  return { ...row, source: PROBE_SOURCE };
}

/** A row as an ordinary track event makes it, from a source that is no customer's (PROBE_SOURCE). */
function probeRow(): RowJson {
  const messageId = `segment-endpoint-probe-${randomUUID()}`;
  const timestamp = new Date().toISOString();
  const event = {
    type: 'track',
    event: 'segment-endpoint probe',
    userId: 'segment-endpoint',
    messageId,
    timestamp,
  };
  return {
    receivedAt: timestamp,
    source: PROBE_SOURCE,
    messageId,
    type: 'track',
    settings: '{}',
    event: JSON.stringify(event),
  };
}
