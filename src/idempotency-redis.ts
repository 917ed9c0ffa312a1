import { randomBytes } from 'node:crypto';
import { EndpointError } from './errors.ts';
import { GivenUp } from './given-up.ts';
import { HeldClaims } from './held-claims.ts';
import { type Claim, HANDLER_TIMEOUT, type IdempotencyStore, OVERDUE } from './idempotency.ts';
import type { Logger } from './log.ts';
import { firstAttempt, newClient, type RedisClient, Replies } from './redis-client.ts';
import { keyPrefix, RELEASE, RENEW, redisKey } from './redis-key.ts';
import { PROBE_MS, RedisOutage } from './redis-outage.ts';
import { REDIS, serviceAddress } from './service-url.ts';
import { UNWRITTEN_AT_CLOSE, UnwrittenDones } from './unwritten-dones.ts';

// Duplicate suppression shared by every process and machine of one endpoint, over Redis: an event is
// claimed with `SET NX` (one claimant wins), remembered as done for the window once it succeeds, and
// forgotten if it fails so that the sender's retry is processed. While Redis fails, events are refused
// with a 503 the sender retries: neither processed nor answered as duplicates unchecked.

const DONE = 'done';
// How long a claim outlives a process that dies while handling its event (then the sender's retry is
// processed): far above handlerTimeoutMs (4 s by default), and at least twice a longer one
// ([HANDLER_TIMEOUT]); renewed for a handler still running at its timeout ([OVERDUE]).
const PENDING_MS = 30_000; // 30 s
// What a probe writes: a read-only replica or a Redis out of memory answers PING, not a write.
const PROBE_KEY = 'probe'; // under the filter's prefix (its namespace's), which a Redis ACL may limit it to
const PROBE_SET = { expiration: { type: 'PX', value: PROBE_MS } } as const; // gone by the next probe
const FIRST_WRITE = Symbol('firstWrite'); // openRedisIdempotency's step, not a method of the store's API

export interface RedisIdempotencyOptions {
  /** How long a processed event is remembered, in milliseconds. */
  ttlMs: number;
  /** Where outages and recoveries of Redis are told, once each. Never given the URL. */
  log?: Logger | undefined;
  /**
   * This endpoint's own part of Redis, when endpoints of other destinations share it: Segment sends an
   * event, its messageId unchanged, to each destination, and without one they answer each other's copies
   * as duplicates. 1 to 100 characters; the processes of one endpoint give the same.
   */
  namespace?: string | undefined;
}

/**
 * Opens the duplicate filter on the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`, or
 * `rediss://` for TLS. It resolves once Redis takes a write or the first attempt fails: an
 * unreachable Redis does not stop the endpoint from starting. The store is returned with `ready` false,
 * every claim is refused at once (events are answered 503 `SEG_IDEMPOTENCY_UNAVAILABLE`, which Segment
 * retries), the log says so once, and the client reconnects in the background; events are checked again
 * as soon as Redis answers.
 */
export async function openRedisIdempotency(
  url: string,
  options: RedisIdempotencyOptions,
): Promise<RedisIdempotencyStore> {
  const { ttlMs } = options;
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`options.ttlMs must be a positive integer of milliseconds, got ${String(ttlMs)}`);
  }
  const prefix = keyPrefix(options.namespace);
  const where = serviceAddress(url, REDIS);
  const client = await newClient(url);
  const store = new RedisIdempotencyStore(client, ttlMs, where, options.log, prefix);
  await firstAttempt(client);
  await store[FIRST_WRITE]();
  return store;
}

/**
 * The duplicate filter over Redis (open it with openRedisIdempotency). A copy that arrives while another
 * process handles the event is answered 503 `SEG_DUPLICATE_IN_FLIGHT`: by the sender's retry the first
 * has succeeded (the copy is a duplicate) or failed (the copy is processed). A copy that arrives while
 * this process handles it (a batch that holds it twice) waits for the first, as with the in-memory filter.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly ttlMs: number;
  readonly #client: RedisClient;
  /** What this store's claims hold in Redis: release deletes a claim only while it is still ours. */
  readonly #token = `pending:${randomBytes(8).toString('hex')}`;
  readonly #held = new HeldClaims();
  readonly #givenUp = new GivenUp();
  readonly #replies: Replies;
  readonly #outage: RedisOutage;
  /** How long a claim lives (PENDING_MS, or twice the longest handlerTimeoutMs of the handlers using it). */
  #pendingMs = PENDING_MS;
  /** Events completed here whose `done` Redis refused, to be written again. */
  readonly #unwritten = new UnwrittenDones((id, until) => this.#writeDone(id, until));
  readonly #log: Logger | undefined;
  /** What its keys begin with (redis-key.ts). */
  readonly #prefix: string;

  constructor(
    client: RedisClient,
    ttlMs: number,
    where: string,
    log?: Logger,
    prefix = keyPrefix(undefined),
  ) {
    this.#prefix = prefix;
    this.#client = client;
    this.#log = log;
    this.#replies = new Replies(client);
    this.ttlMs = ttlMs;
    const probe = () => this.#replies.send(client.set(prefix + PROBE_KEY, '1', PROBE_SET));
    const recovered = () => this.#unwritten.writeAll().catch((err: unknown) => this.#outage.began(err));
    this.#outage = new RedisOutage(where, log, probe, () => client.isOpen, recovered);
    // Without a listener an 'error' event would crash the process; the client reconnects by itself.
    // (A reconnection ends no outage by itself: the next probe's write does.)
    client.on('error', (err: unknown) => this.#outage.connection(err));
  }

  /** One write before use: a Redis that refuses commands (NOAUTH, a replica) is down from the start. */
  async [FIRST_WRITE](): Promise<void> {
    if (this.#client.isReady) await this.#outage.probe().catch((err) => this.#outage.began(err));
  }

  /** Whether Redis answers now: false while it is down or hung, and claims are refused. */
  get ready(): boolean {
    return this.#client.isReady && !this.#outage.down;
  }

  async claim(key: string): Promise<Claim> {
    const id = redisKey(key, this.#prefix);
    const held = this.#held.wait(id);
    if (held !== undefined) return held;
    this.#held.hold(id);
    let claim: Claim;
    try {
      claim = await this.#claim(id);
    } catch (err) {
      const refused = new EndpointError('SEG_IDEMPOTENCY_UNAVAILABLE', undefined, { cause: err });
      this.#held.fail(id, refused);
      this.#outage.began(err);
      throw refused;
    }
    // An outage ends by its probe only: at Redis's memory limit writes are taken and refused by turns, and
    // each taken one would end it, each refused one begin it again: a line and a turn of health each.
    if (claim !== 'new') this.#held.end(id, claim);
    return claim;
  }

  /**
   * `SET NX`; when another claim holds the key, what it holds (a claim of this store's it gave up on is
   * taken over). Twice more if the key goes in between.
   */
  async #claim(id: string): Promise<Claim> {
    // Completed here, its `done` refused: a copy is a duplicate, whatever its claim still holds.
    if (await this.#unwritten.writeKept(id)) return 'done';
    for (let attempt = 0; attempt < 3; attempt++) {
      const made = await this.#replies
        .send(
          this.#client.set(id, this.#token, {
            condition: 'NX',
            expiration: { type: 'PX', value: this.#pendingMs },
          }),
        )
        .catch((err: unknown) => {
          // It may yet run (see GivenUp): past its bound, or written before its connection was made again
          // under it. One that never left is harmless there: its retry's SET NX simply succeeds.
          this.#givenUp.add(id);
          throw err;
        });
      if (made !== null) {
        this.#givenUp.take(id);
        return 'new';
      }
      const value = await this.#replies.send(this.#client.get(id));
      if (value === this.#token && this.#givenUp.take(id)) {
        if ((await this.#renew(id)) === 1) return 'new';
      } else if (value !== null) {
        return value === DONE ? 'done' : 'busy';
      }
    }
    return 'busy';
  }

  /**
   * The event succeeded: remember it for the window. If Redis refuses that now, the event stays processed
   * and its answer a success; its `done` is kept here and written again (unwritten-dones.ts): by a copy's
   * claim, which it answers as a duplicate, once the outage's probe finds Redis taking writes, and as the
   * store closes. A copy that reaches another process before then, after the claim left pending expired
   * (#pendingMs), is processed again.
   */
  async complete(key: string): Promise<void> {
    const id = redisKey(key, this.#prefix);
    this.#held.settle(id, 'done');
    const until = Date.now() + this.ttlMs;
    try {
      await this.#writeDone(id, until);
    } catch (err) {
      this.#unwritten.keep(id, until);
      this.#outage.began(err);
    } finally {
      this.#held.forget(id);
    }
  }

  /** Writes `done` for an event completed here, for what is left of its window: false if nothing is. */
  async #writeDone(id: string, until: number): Promise<boolean> {
    const left = until - Date.now();
    if (left > 0)
      await this.#replies.send(this.#client.set(id, DONE, { expiration: { type: 'PX', value: left } }));
    return left > 0;
  }

  /** The event failed: forget its claim, so that its retry is processed (if Redis fails, once it expires). */
  async release(key: string): Promise<void> {
    const id = redisKey(key, this.#prefix);
    this.#held.settle(id, 'busy'); // copies that waited are told to retry, as with the in-memory filter
    try {
      await this.#replies.send(this.#client.eval(RELEASE, { keys: [id], arguments: [this.#token] }));
    } catch (err) {
      this.#outage.began(err);
    } finally {
      this.#held.forget(id);
    }
  }

  /** Its handler is past its timeout (once.ts): copies are told to retry; its claim renewed, to outlive its 20 s more. */
  [OVERDUE](key: string): void {
    const id = redisKey(key, this.#prefix);
    this.#held.settle(id, 'busy');
    this.#renew(id).catch((err: unknown) => this.#outage.began(err));
  }

  /** A handler given `ms` uses this store (createHandler): its claims outlive it, twice over. */
  [HANDLER_TIMEOUT](ms: number): void {
    this.#pendingMs = Math.max(this.#pendingMs, 2 * ms);
  }

  /** Gives this store's claim on `id`, while the key still holds it, its time again: 1 if it did. */
  async #renew(id: string): Promise<unknown> {
    const pendingMs = String(this.#pendingMs);
    return this.#replies.send(this.#client.eval(RENEW, { keys: [id], arguments: [this.#token, pendingMs] }));
  }

  /**
   * Disconnects: claims are refused from now on. The `done`s Redis refused are tried once more (until one
   * fails); commands under way get COMMAND_MS, then are given up.
   */
  async close(): Promise<void> {
    if (!this.#client.isOpen) return;
    await this.#unwritten
      .writeAll()
      .catch((err: unknown) => this.#log?.warn({ err, unwritten: this.#unwritten.size }, UNWRITTEN_AT_CLOSE));
    await this.#replies.send(this.#client.close()).catch(() => this.#client.destroy());
  }
}
