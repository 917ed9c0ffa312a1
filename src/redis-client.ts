import { once } from 'node:events';
import { Deadlines } from './deadlines.ts';
import { within } from './promise.ts';

// The connection to Redis of the shared duplicate filter (idempotency-redis.ts): a client that fails a
// command at once rather than queue it while disconnected, and reconnects by itself.

const CONNECT_MS = 1_000; // 1 s: a connection attempt that takes longer has failed
export const COMMAND_MS = 1_000; // 1 s: the longest an event waits for one command: a hung Redis holds no request
// A connection silent this long (nothing read or written) is given up and made again: one whose handshake
// (CLIENT SETINFO, AUTH, SELECT) is never answered (a stopped Redis behind a proxy, a port that is
// something else) would otherwise wait for good, the client neither ready nor in error. A PING each
// PING_MS keeps an idle connection from falling silent while Redis answers; a hung Redis answers none,
// and the next PING waits for the last. (Under traffic, writes keep a connection to a hung Redis from
// being silent: Replies, below, tells that case by the replies that stopped coming.)
const SILENCE_MS = 2_000; // 2 s
const PING_MS = 500; // 0.5 s
const BACKOFF_MAX_MS = 2_000; // 2 s: reconnection waits 100 ms, doubling up to this: Redis is found again
// Commands waiting for Redis at most (far above the requests an endpoint takes at once): past it a claim
// fails at once rather than queue behind a hung Redis.
const QUEUE_MAX = 10_000;

/** A client of the Redis at `url`, not connected yet. */
export async function newClient(url: string) {
  // Loaded here, not at the top: an endpoint without Redis never loads the client.
  const { createClient } = await import('@redis/client');
  return createClient({
    url,
    // Version 6 of the client speaks RESP3 by default, which needs Redis 6 (HELLO); these commands
    // need nothing of it, and RESP2 keeps older Redis and proxies working.
    RESP: 2,
    // A command while disconnected fails at once instead of waiting, unbounded, for a reconnection.
    disableOfflineQueue: true,
    commandsQueueMaxLength: QUEUE_MAX,
    socket: { connectTimeout: CONNECT_MS, socketTimeout: SILENCE_MS, reconnectStrategy: backoff },
    pingInterval: PING_MS,
  });
}

export type RedisClient = Awaited<ReturnType<typeof newClient>>;

/** Connects; resolves once Redis answers or the first attempt fails (reconnection goes on). */
export async function firstAttempt(client: RedisClient): Promise<void> {
  const answered = once(client, 'ready'); // rejects at the first 'error' (which the store logs)
  // It rejects only when the store is closed while still connecting: nothing is waiting on it then.
  client.connect().catch(() => {});
  await answered.catch(() => {});
}

/** The wait before reconnection attempt `retries` (from 0), with jitter so processes spread out. */
function backoff(retries: number): number {
  return Math.min(100 * 2 ** retries, BACKOFF_MAX_MS) + Math.floor(Math.random() * 100);
}

/**
 * Makes the connection again when Redis has answered nothing for SILENCE_MS while commands went
 * unanswered. Under traffic the connection is never silent (each command is written), so the socket's
 * own timeout cannot tell one that nobody answers any more (a proxy whose Redis went away): every event
 * would be refused until the process restarts. A Redis that hangs and comes back loses a connection
 * that would have served again: it is made again at once.
 */
export class Replies {
  readonly #client: RedisClient;
  readonly #deadlines = new Deadlines(COMMAND_MS);
  #at = performance.now();

  constructor(client: RedisClient) {
    this.#client = client;
    const answered = () => this.answered();
    client.on('ready', answered).on('ping-interval', answered);
  }

  /** A reply came. */
  answered(): void {
    this.#at = performance.now();
  }

  /**
   * `command`, bounded by COMMAND_MS. The client's own `timeout` option stops counting once a command
   * is written, so it cannot tell a Redis that accepts commands and never answers. A command given up
   * here may still run when Redis comes back: a claim made so is one more pending claim, which expires.
   */
  send<T>(command: Promise<T>): Promise<T> {
    const late = () => new Unanswered(`Redis did not answer within ${COMMAND_MS} ms`);
    return within(command, this.#deadlines, late).then(
      (reply) => {
        this.answered();
        return reply;
      },
      (err: unknown) => {
        if (err instanceof Unanswered) this.unanswered();
        throw err;
      },
    );
  }

  /** A command went unanswered past its bound. */
  unanswered(): void {
    if (!this.#client.isReady || performance.now() - this.#at < SILENCE_MS) return;
    this.#at = performance.now();
    // Commands waiting on it fail at once (an event refused 503, retried); the client reconnects.
    this.#client.destroy();
    this.#client.connect().catch(() => {});
  }
}

/** A command given up on past its bound: sent, it may still run when Redis answers again. */
export class Unanswered extends Error {}
