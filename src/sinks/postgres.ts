import { setTimeout as delay } from 'node:timers/promises';
import type { Pool } from 'pg';
import type { Context, Handlers } from '../dispatch.ts';
import { EndpointError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { eventJson, everyType, StoredFields } from './fields.ts';
import { TableChecks } from './postgres-checks.ts';
import { DISCARDED, type Discards, discarded, type Kept } from './postgres-discards.ts';
import { query } from './postgres-pool.ts';
import { Refusals } from './postgres-refusals.ts';
import { Room } from './postgres-room.ts';
import { groupJson, type Row, RowQueue } from './postgres-rows.ts';
import { failureOf, insertStatement, UNSTORABLE, UNSTORABLE_SETTINGS, unstorable } from './postgres-sql.ts';
import type { Sink } from './sink.ts';

// The PostgreSQL sink (--postgres): every accepted event a row of one table that processes and VMs share,
// in group commits; a 200 only after the COMMIT that holds it; a copy sent to two instances is one row.

export const GROUPS_IN_FLIGHT = 4; // INSERTs under way at once, each on its own connection
const MAX_GROUP = 500; // events in one INSERT
// Their JSON text in one INSERT, unless one event alone is more: 300 events of 500 KB took ~5 s here
const MAX_GROUP_CHARACTERS = 8 * 1024 * 1024;
const MAX_QUEUED = 10_000; // events waiting for a group: ~10 s of a busy endpoint's traffic
const MAX_QUEUED_CHARACTERS = 32 * 1024 * 1024; // and their JSON text (~32-64 MiB), as the file store's
const FIRST_RETRY_MS = 100; // after PostgreSQL fails: the first try to reach it again
const MAX_RETRY_MS = 5_000; // the longest wait between tries
const MAX_CONFLICTS = 3; // INSERTs of an event aborted in conflicts before it is answered 503 (retried)
const CONFLICT_PAUSE_MS = 50; // before sending a group again after a conflict, times its tries so far

/** Stores accepted events in its table: made by openPostgresSink (postgres-open.ts). */
export class PostgresSink implements Sink {
  readonly handlers: Handlers;
  readonly where: string;
  onCommit: ((seconds: number, events: number) => void) | undefined;
  readonly #pool: Pool;
  readonly #table: string;
  readonly #insert: string;
  readonly #log: Logger;
  readonly #fields = new StoredFields();
  readonly #queue = new RowQueue();
  #inFlight = 0;
  readonly #room: Room;
  #up = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #refusals: Refusals;
  /** Down because the table refused every row: up again on probation (Refusals.probation). */
  #refusingAll = false;
  readonly #checks: TableChecks;
  #idle: Array<() => void> = [];

  constructor(pool: Pool, table: string, log: Logger, where: string) {
    this.#pool = pool;
    this.#table = table;
    this.#insert = insertStatement(table);
    this.#log = log;
    this.#room = new Room(GROUPS_IN_FLIGHT, log);
    this.#refusals = new Refusals(pool, this.#insert, log);
    this.#checks = new TableChecks(pool, table, log, () => this.#inFlight > 0);
    this.where = where;
    this.handlers = everyType((event, ctx) => this.#save(event, ctx));
  }

  get writable(): boolean {
    return this.#up;
  }

  /** Creates the table if missing; on failure, says so and keeps trying in the background. */
  async connect(delay = FIRST_RETRY_MS): Promise<void> {
    try {
      await this.#checks.check();
      if (this.#closed) return;
      if (this.#refusingAll) this.#refusals.probation();
      this.#checks.up(delay, this.#refusingAll);
      this.#refusingAll = false;
      this.#up = true;
      this.#checks.watch((err) => this.#failed([], err));
    } catch (err) {
      if (this.#closed) return;
      // Said once an outage, again when the table that refused every row fails otherwise now, and when
      // what fails changes (an INSERT refused, then the check saying why).
      this.#checks.sayIfNew(err, delay === FIRST_RETRY_MS || this.#refusingAll);
      this.#refusingAll = false;
      this.#retry = setTimeout(() => this.connect(Math.min(delay * 2, MAX_RETRY_MS)), delay);
    }
  }

  #save(event: { type: string; messageId?: unknown }, ctx: Context): Promise<void> {
    if (!this.#up || this.#closed) return Promise.reject(new EndpointError('SEG_STORE_UNAVAILABLE'));
    // Rows outlive their requests' timeouts while PostgreSQL is slow: past this many, or this much text
    // (large events: 10,000 of 500 KB took the process past its heap), new events wait for Segment's retry.
    const full = this.#queue.length >= MAX_QUEUED || this.#queue.characters >= MAX_QUEUED_CHARACTERS;
    if (full) return Promise.reject(new EndpointError('SEG_OVERLOADED'));
    const settings = this.#fields.settings(ctx);
    const json = eventJson(ctx);
    if (unstorable(settings))
      return Promise.reject(new EndpointError('SEG_SETTINGS_INVALID', UNSTORABLE_SETTINGS));
    if (unstorable(json)) return Promise.reject(new EndpointError('SEG_INVALID_EVENT', UNSTORABLE));
    // "" is no messageId, as the duplicate filter reads it (intake.ts): NULL, which the index never matches.
    const messageId = typeof event.messageId === 'string' && event.messageId !== '' ? event.messageId : null;
    return new Promise((resolve, reject) => {
      this.#queue.push({
        receivedAt: ctx.receivedAt.toISOString(),
        source: this.#fields.source(ctx.apiKey),
        messageId,
        type: event.type,
        settings,
        event: json,
        resolve,
        reject,
        conflicts: 0,
      });
      this.#pump();
    });
  }

  /**
   * Sends what is queued, as one INSERT per group, while fewer than GROUPS_IN_FLIGHT are under way. Once
   * the sink is down, what waits is answered 503 at once (Segment retries it), not an INSERT a group.
   */
  #pump(): void {
    if (!this.#up && this.#queue.length > 0) {
      const unavailable = new EndpointError('SEG_STORE_UNAVAILABLE');
      for (const row of this.#queue.takeAll()) row.reject(unavailable);
    }
    if (this.#inFlight === this.#room.limit && this.#queue.length > 0) this.#room.tryMore();
    while (this.#inFlight < this.#room.limit && this.#queue.length > 0) {
      const group = this.#queue.take(MAX_GROUP, MAX_GROUP_CHARACTERS);
      this.#inFlight++;
      this.#commit(group, this.#inFlight).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) for (const wake of this.#idle.splice(0)) wake();
      });
    }
  }

  /** `nth`: how many INSERTs were under way with this one when it was sent. */
  async #commit(group: Row[], nth: number): Promise<void> {
    const started = performance.now();
    let found: Discards;
    try {
      const { rows } = await query<Kept>(this.#pool, this.#insert, [groupJson(group)]);
      found = await discarded(this.#pool, this.#table, group, rows);
    } catch (err) {
      const failure = failureOf(err);
      if (failure === 'room' && (this.#inFlight > 1 || this.#pool.totalCount > 0)) {
        // Other connections are open, at work or idle since this one was asked for (the INSERT that held
        // it ended meanwhile): the group waits for one of them. Only when none is open is the sink down.
        this.#room.fewer(this.#inFlight, err);
        this.#queue.putBack(group);
        return;
      }
      if (failure === 'conflict') return this.#again(group, err, nth);
      if (failure !== 'data' && failure !== 'row') return this.#failed(group, err);
      // An event the database refuses as data (one `unstorable` did not foresee), or the table refuses
      // (a constraint, a trigger of its own), must not take the others of its group down with it: each
      // half is tried apart, down to the event itself. The table's refusal is a 503: Segment retries it.
      if (group.length > 1) await this.#halves(group, nth);
      else if (failure === 'data') {
        this.#log.warn({ err }, 'PostgreSQL refused an event as data');
        group[0]?.reject(new EndpointError('SEG_INVALID_EVENT', UNSTORABLE));
      } else await this.#refused(group, err);
      return;
    }
    const { lost, rewritten } = found;
    const stored = lost.length === 0 ? group : group.filter((row) => !lost.includes(row));
    if (stored[0] !== undefined) {
      this.#refusals.stored(stored[0]);
      if (this.#up) this.#checks.stores(); // not a group sent before the sink went down
    }
    this.onCommit?.((performance.now() - started) / 1000, stored.length);
    this.#room.succeeded(nth);
    for (const row of stored) row.resolve();
    if (rewritten) this.#failed(lost, undefined, this.#checks.rewroteKeys(), MAX_RETRY_MS);
    else if (lost.length > 0) await this.#refused(lost, new Error(DISCARDED));
  }

  /** Each half of `group` tried apart, in turn: down to the event that fails, the others stored. */
  async #halves(group: Row[], nth: number): Promise<void> {
    const half = group.length >> 1;
    await this.#commit(group.slice(0, half), nth);
    if (this.#up) await this.#commit(group.slice(half), nth);
    else this.#failed(group.slice(half), undefined); // down meanwhile: a 503 each, not an INSERT each
  }

  /**
   * Events the table refused or discarded (a constraint, a trigger of its own): 503 each. After many in
   * a row, an outage if the table now refuses a row it took before (postgres-refusals.ts).
   */
  async #refused(group: Row[], err: unknown): Promise<void> {
    // A question that failed (no connection to spare) tells nothing: an outage shows in the next INSERT.
    const closing = await this.#refusals.refuse(group, err).catch(() => undefined);
    if (closing === undefined || !this.#up) return;
    this.#refusingAll = true;
    const why = `the table refuses every row (a trigger or constraint of its own): answering 503, tried again with events in ${MAX_RETRY_MS / 1000} s`;
    this.#failed([], closing, why, MAX_RETRY_MS);
  }

  /**
   * The INSERT lost a deadlock or a serialisation conflict: after a pause the group goes again, first in
   * the queue. One in which an event lost MAX_CONFLICTS times (a trigger, a transaction that always wins)
   * is tried in halves instead, down to that event, which is answered 503 (Segment retries it) rather
   * than sent again for ever with the others it meets.
   */
  async #again(group: Row[], err: unknown, nth: number): Promise<void> {
    let tries = 0;
    for (const row of group) tries = Math.max(tries, ++row.conflicts);
    if (tries >= MAX_CONFLICTS && group.length === 1) {
      this.#log.error(
        { err },
        `PostgreSQL aborted an event's INSERT in a conflict ${tries} times: answered 503`,
      );
      group[0]?.reject(new EndpointError('SEG_STORE_UNAVAILABLE', undefined, { cause: err }));
      return;
    }
    this.#log.warn(
      { err, events: group.length },
      'PostgreSQL aborted an INSERT in a conflict with another transaction: sent again',
    );
    await delay(CONFLICT_PAUSE_MS * Math.min(tries, MAX_CONFLICTS));
    if (tries >= MAX_CONFLICTS) await this.#halves(group, nth);
    else this.#queue.putBack(group);
  }

  /**
   * PostgreSQL failed (down, unreachable, timed out), or the table refuses every event: 503 for the
   * group, and for new events until the table is checked again, `retryMs` later.
   */
  #failed(group: Row[], err: unknown, why?: string, retryMs = FIRST_RETRY_MS): void {
    const unavailable = new EndpointError('SEG_STORE_UNAVAILABLE', undefined, { cause: err });
    for (const row of group) row.reject(unavailable);
    if (!this.#up || this.#closed) return;
    this.#up = false;
    this.#checks.stop();
    const wait = this.#checks.down(err, why, retryMs, MAX_RETRY_MS);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.connect(Math.min(wait * 2, MAX_RETRY_MS)), wait);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#checks.stop();
    if (this.#inFlight > 0 || this.#queue.length > 0)
      await new Promise<void>((wake) => this.#idle.push(wake));
    this.#refusals.flush();
    await this.#pool.end();
  }
}
