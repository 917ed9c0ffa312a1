import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createClient } from '@redis/client';
import { openRedisIdempotency, type RedisIdempotencyStore } from '../src/idempotency-redis.ts';
import { createHandler, jsonLogger, type Logger, silentLogger } from '../src/index.ts';
import { API_KEY, countingHandler, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { eventually, gate } from './helpers-wait.ts';
import { freePort } from './services/process.ts';
import { type RedisServer, startRedis } from './services/redis.ts';

// Duplicate suppression shared across processes over a real redis-server (test/services/redis.ts),
// through the real pipeline: each "instance" is a handler with its own store on the same Redis.

let server: RedisServer;
let redis: ReturnType<typeof inspector>;
const stores: RedisIdempotencyStore[] = [];

/** The test's own view of Redis, to look at what the stores wrote. */
function inspector(url: string) {
  const client = createClient({ url });
  client.on('error', () => {}); // the server is stopped on purpose: it reconnects
  return client;
}

async function open(ttlMs = 60_000, log: Logger = silentLogger): Promise<RedisIdempotencyStore> {
  const store = await openRedisIdempotency(server.url, { ttlMs, log });
  stores.push(store);
  return store;
}

/** An instance of the endpoint: a handler that counts the events it runs; `hold` keeps each run open. */
const instance = (store: RedisIdempotencyStore, calls: string[] = [], hold?: Promise<void>) =>
  countingHandler(store, calls, hold);

/** A JSON logger, and the lines it wrote. */
function capturedLog(): { log: Logger; text: string[] } {
  const text: string[] = [];
  return { log: jsonLogger('debug', (line) => text.push(line)), text };
}

/** Redis at a memory limit it is over (every write refused: OOM), or with none. */
const atMemoryLimit = (on: boolean) =>
  redis.sendCommand(['CONFIG', 'SET', 'maxmemory', on ? '1' : '0', 'maxmemory-policy', 'noeviction']);

/**
 * Waits for `store` to be ready again, then checks that its log said one outage and its end: an error,
 * warnings for the causes that followed the first (the connection's errors, each once), an info. Each of
 * `causes` is said.
 */
async function oneOutageLogged(
  store: RedisIdempotencyStore,
  text: string[],
  what: string,
  causes: RegExp[] = [],
): Promise<void> {
  await eventually(async () => store.ready, what, 10_000);
  const lines = text.map((line) => JSON.parse(line));
  const levels = lines.map((line) => line.level);
  assert.deepEqual(
    levels,
    [50, ...levels.slice(1, -1).map(() => 40), 30],
    'one error for the outage, one info for its end',
  );
  // The connection's first error may come after an event's command failed ("offline"): said as a cause.
  const slack = causes.length > 0 ? 1 : 0;
  assert.ok(levels.length <= 2 + causes.length + slack, `the causes said, no more: ${text.join('\n')}`);
  const said = lines.slice(0, -1).map((line) => String(line.err.message));
  for (const cause of causes)
    assert.ok(
      said.some((message) => cause.test(message)),
      `${cause} in ${said}`,
    );
}

/**
 * An instance that processed `messageId`, answered 200, while Redis refused its `done` (at its memory
 * limit as the handler ended; no longer after it).
 */
async function completedUnwritten(messageId: string, log: Logger = silentLogger) {
  const store = await open(60_000, log);
  const calls: string[] = [];
  const held = gate();
  const { handler } = instance(store, calls, held.opened);
  const event = trackEvent({ messageId });
  const first = inject(handler, { body: event });
  await eventually(async () => calls.length === 1, 'the event handled');
  await atMemoryLimit(true);
  try {
    held.open();
    assert.equal((await first).status, 200);
  } finally {
    await atMemoryLimit(false);
  }
  return { store, handler, calls, event };
}

/** The Redis keys of the events the filter holds: its probe's aside (each store writes it at open). */
async function eventKeys(): Promise<string[]> {
  return (await redis.keys('segment-endpoint:*')).filter((key) => !key.endsWith(':probe'));
}

/** The Redis key of the one event the filter holds. */
async function eventKey(): Promise<string> {
  const keys = await eventKeys();
  assert.equal(keys.length, 1, keys.join());
  return keys[0] as string;
}

/**
 * Two instances on one Redis whose track handler outlives its timeout (`timeoutMs`) until `held` opens:
 * their handlers, the messageIds they ran, when each run began (Date.now(), the clock Redis keeps
 * expiries by), and the gate. A run past its timeout keeps its event claimed for five timeouts at most,
 * then is taken for hung and its claim released: what the test checks of a run still going, it checks
 * within them.
 */
async function slowPair(timeoutMs = 200) {
  const calls: string[] = [];
  const began: number[] = [];
  const held = gate();
  const slow = (store: RedisIdempotencyStore) =>
    createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      idempotency: store,
      handlerTimeoutMs: timeoutMs,
      handlers: {
        track: async (event) => {
          began.push(Date.now());
          calls.push(String(event.messageId));
          await held.opened;
        },
      },
    });
  return { here: slow(await open()), elsewhere: slow(await open()), calls, began, held };
}

/** 'waiting', after `ms`: what a race with a request not answered meanwhile gives. */
const stillWaitingAfter = (ms: number) =>
  new Promise<string>((resolve) => setTimeout(resolve, ms, 'waiting'));

const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => unhandled.push(err);

before(async () => {
  process.on('unhandledRejection', onUnhandled);
  server = await startRedis();
  redis = inspector(server.url);
  await redis.connect();
});
beforeEach(() => redis.flushAll());
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  redis.destroy();
  await server?.destroy();
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, []);
});

describe('one instance over Redis', { timeout: 20_000 }, () => {
  test('the same event twice: handled once, both answered 200', async () => {
    const { handler, calls } = instance(await open());
    const event = trackEvent({ messageId: 'r-1' });
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['r-1']);
  });

  test('the same messageId from another API key is another event', async () => {
    const { handler, calls } = instance(await open());
    const event = trackEvent({ messageId: 'r-2' });
    await inject(handler, { body: event });
    await inject(handler, { body: event, headers: segmentHeaders('other-key') });
    assert.deepEqual(calls, ['r-2', 'r-2']);
  });

  test('messageIds that differ only in lone surrogates are different events', async () => {
    // Valid JSON (\ud800 is an escape), and different strings: as the in-memory filter tells them apart,
    // so does Redis. UTF-8 would make each lone surrogate U+FFFD, and the three one event.
    const { handler, calls } = instance(await open());
    const ids = ['msg\ud800', 'msg\udfff', 'msg\ufffd'];
    for (const messageId of ids) {
      assert.equal((await inject(handler, { body: trackEvent({ messageId }) })).status, 200);
    }
    assert.deepEqual(calls, ids);
    // A well-formed id keeps the key it had: what an earlier version remembered is still found.
    await inject(handler, { body: trackEvent({ messageId: 'plain' }) });
    const { createHash } = await import('node:crypto');
    const digest = createHash('sha256').update(`${API_KEY}\nplain`).digest('hex');
    assert.equal(await redis.get(`segment-endpoint:dedup:${digest}`), 'done');
  });

  test('Redis holds digests, never an API key or a messageId', async () => {
    const { handler } = instance(await open());
    await inject(handler, { body: trackEvent({ messageId: 'r-3' }) });
    await inject(handler, { body: trackEvent({ messageId: 'r-3' }), headers: segmentHeaders('other-key') });
    const keys = await eventKeys();
    assert.equal(keys.length, 2);
    for (const key of keys) {
      assert.match(key, /^segment-endpoint:dedup:[0-9a-f]{64}$/);
      assert.equal(await redis.get(key), 'done');
    }
  });

  test('a failed event releases its claim: the retry is processed', async () => {
    const { handler, calls, failNext } = instance(await open());
    failNext(1);
    const event = trackEvent({ messageId: 'r-4' });
    assert.equal((await inject(handler, { body: event })).status, 503);
    assert.deepEqual(await eventKeys(), []);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['r-4', 'r-4']);
  });

  test('a batch that holds one event twice: processed once, answered 200 without a retry', async () => {
    const { handler, calls } = instance(await open());
    const event = trackEvent({ messageId: 'r-batch' });
    const res = await inject(handler, { url: '/v1/batch', body: { batch: [event, event] } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(calls, ['r-batch']);
  });

  test('a copy that comes while this instance runs the event waits for it: a duplicate if it succeeds', async () => {
    const calls: string[] = [];
    const held = gate();
    const { handler } = instance(await open(), calls, held.opened);
    const event = trackEvent({ messageId: 'r-wait' });
    const first = inject(handler, { body: event });
    await eventually(async () => calls.length === 1, 'the event to run');
    const copy = inject(handler, { body: event });
    // Refused, it would be answered within milliseconds (Redis is local): it is not, while the first runs.
    assert.equal(await Promise.race([copy.then((res) => res.status), stillWaitingAfter(200)]), 'waiting');
    held.open();
    assert.deepEqual([(await first).status, (await copy).status], [200, 200]);
    assert.deepEqual(calls, ['r-wait']);
  });

  test('a copy that waited for a run that failed is told to retry, and its retry is processed', async () => {
    const calls: string[] = [];
    const held = gate();
    const one = instance(await open(), calls, held.opened);
    one.failNext(1);
    const event = trackEvent({ messageId: 'r-fail' });
    const first = inject(one.handler, { body: event });
    await eventually(async () => calls.length === 1, 'the event to run');
    const copy = inject(one.handler, { body: event });
    assert.equal(await Promise.race([copy.then((res) => res.status), stillWaitingAfter(200)]), 'waiting');
    held.open();
    assert.equal((await first).status, 503);
    const refused = await copy;
    assert.equal(refused.status, 503);
    assert.equal(refused.json().code, 'SEG_DUPLICATE_IN_FLIGHT');
    assert.equal((await inject(one.handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['r-fail', 'r-fail']);
  });

  test('a handler past its timeout keeps its claim until it ends: copies here and elsewhere are not run, then duplicates', async () => {
    // A 1 s timeout: the run keeps its claim for five of them, longer than a loaded machine's stalls.
    const { here, elsewhere, calls, held } = await slowPair(1_000);
    const event = trackEvent({ messageId: 'r-late' });
    const codeOf = async (handler: typeof here) => {
      const res = await inject(handler, { body: event });
      return res.status === 200 ? 200 : res.json().code;
    };
    assert.equal(await codeOf(here), 'SEG_HANDLER_TIMEOUT');
    // Still running: neither this instance nor the other runs it again.
    assert.equal(await codeOf(here), 'SEG_DUPLICATE_IN_FLIGHT');
    assert.equal(await codeOf(elsewhere), 'SEG_DUPLICATE_IN_FLIGHT');
    held.open();
    // It succeeded late: remembered in Redis, a duplicate for both.
    await eventually(async () => (await codeOf(elsewhere)) === 200, 'the late success to be remembered');
    assert.equal(await codeOf(here), 200);
    assert.deepEqual(calls, ['r-late']);
  });

  test('a handler past its timeout renews its claim: it ends 30 s after the timeout, not 30 s after it was made (handlerTimeoutMs over 10 s)', async () => {
    // A claim lives 30 s from when it was made; the handler is kept claimed for up to 20 s after its
    // timeout. With handlerTimeoutMs past 10 s the claim ended under the overdue handler, and another
    // instance ran the event beside it. Renewed at the timeout, the claim ends 30 s after it: at least
    // the timeout later than one made before the run began can. Read as Redis's own expiry time, not as
    // a claim cut by hand to end 150 ms after the timeout, which a loaded machine let run out before the
    // renewal reached Redis. A 1 s timeout keeps the run claimed for 5 s, time enough for the checks
    // below on a loaded machine: the 1 s of a 200 ms one ran out under its stalls, and the claim with it.
    const TIMEOUT = 1_000;
    const { here, elsewhere, calls, began, held } = await slowPair(TIMEOUT);
    const event = trackEvent({ messageId: 'r-renew' });
    const codeOf = async (res: Promise<Awaited<ReturnType<typeof inject>>>) => {
      const answered = await res;
      return answered.status === 200 ? 200 : answered.json().code;
    };
    assert.equal(await codeOf(inject(here, { body: event })), 'SEG_HANDLER_TIMEOUT');
    const key = await eventKey();
    const unrenewedBy = (began[0] as number) + 30_000; // the latest a claim made before the run ends
    await eventually(
      async () => (await redis.pExpireTime(key)) >= unrenewedBy + TIMEOUT / 2,
      'the claim renewed at the timeout',
    );
    assert.equal(await codeOf(inject(elsewhere, { body: event })), 'SEG_DUPLICATE_IN_FLIGHT');
    assert.deepEqual(calls, ['r-renew']);
    held.open();
    await eventually(
      async () => (await codeOf(inject(elsewhere, { body: event }))) === 200,
      'the late success to be remembered',
    );
    assert.deepEqual(calls, ['r-renew']);
  });

  test('a claim outlives a handlerTimeoutMs over 30 s: another instance does not run the event beside it', async () => {
    // A claim lived 30 s whatever the timeout: a handler given 45 s lost its claim 30 s in, and a retry
    // at another instance ran the event again beside it.
    const held = gate();
    const calls: string[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      idempotency: await open(),
      handlerTimeoutMs: 45_000,
      handlers: {
        track: async (event) => {
          calls.push(String(event.messageId));
          await held.opened;
        },
      },
    });
    const first = inject(handler, { body: trackEvent({ messageId: 'r-long' }) });
    await eventually(async () => calls.length === 1, 'the handler to start');
    const [key] = await eventKeys();
    const pttl = await redis.pTTL(String(key));
    assert.ok(pttl > 45_000, `the claim ends ${pttl} ms from now, before the handler's timeout`);
    held.open();
    assert.equal((await first).status, 200);
  });

  test('a processed event is remembered for ttlMs, then processed again', async () => {
    const { handler, calls } = instance(await open(300));
    const event = trackEvent({ messageId: 'r-5' });
    await inject(handler, { body: event });
    const [key] = await eventKeys();
    const pttl = await redis.pTTL(String(key));
    assert.ok(pttl > 0 && pttl <= 300, `remembered for ${pttl} ms`);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal(calls.length, 1);
    await eventually(async () => (await redis.exists(String(key))) === 0, 'the key to expire', 2_000);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['r-5', 'r-5']);
  });
});

describe('two instances over one Redis', { timeout: 20_000 }, () => {
  test('a copy is refused while the first runs, a duplicate after it', async () => {
    const calls: string[] = [];
    const held = gate();
    const [first, second] = [instance(await open(), calls, held.opened), instance(await open(), calls)];
    const event = trackEvent({ messageId: 'r-6' });
    const running = inject(first.handler, { body: event });
    await eventually(async () => calls.length === 1, 'the first instance to run the event');
    const [key] = await eventKeys();
    assert.match(String(await redis.get(String(key))), /^pending/);
    const pttl = await redis.pTTL(String(key));
    assert.ok(pttl > 0 && pttl <= 30_000, `a pending claim expires, in ${pttl} ms`);
    const copy = await inject(second.handler, { body: event });
    assert.equal(copy.status, 503);
    assert.equal(copy.json().code, 'SEG_DUPLICATE_IN_FLIGHT');
    held.open();
    assert.equal((await running).status, 200);
    assert.equal((await inject(second.handler, { body: event })).status, 200);
    assert.equal((await inject(first.handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['r-6']);
  });

  test('twenty copies at once across two instances: processed once', async () => {
    const calls: string[] = [];
    const [a, b] = [instance(await open(), calls), instance(await open(), calls)];
    const event = trackEvent({ messageId: 'r-7' });
    const copies = Array.from({ length: 20 }, (_, i) => inject((i % 2 ? a : b).handler, { body: event }));
    const statuses = (await Promise.all(copies)).map((res) => res.status);
    assert.deepEqual(calls, ['r-7']);
    // Each copy finds the event done (200) or still being processed by the other (503, retried).
    assert.ok(statuses.includes(200) && statuses.every((s) => s === 200 || s === 503), `${statuses}`);
  });

  test('release deletes only its own claim: not one another instance made since', async () => {
    const [a, b] = [await open(), await open()];
    assert.equal(await a.claim('k'), 'new');
    assert.equal(await b.claim('k'), 'busy');
    await b.release('k');
    assert.equal(await b.claim('k'), 'busy');
    await a.release('k');
    assert.equal(await b.claim('k'), 'new');
  });
});

describe("two endpoints' filters over one Redis (two destinations of one partner)", {
  timeout: 20_000,
}, () => {
  // Segment delivers one event, its messageId unchanged, to each destination it goes to. Two endpoints
  // sharing a Redis answered the second destination's copy as a duplicate: never run there, answered 200.
  test('each with its own namespace runs the event; its keys are its own; a namespace is checked', async () => {
    const calls: string[] = [];
    const [crm, analytics] = await Promise.all(
      ['crm', 'analytics'].map((namespace) => openRedisIdempotency(server.url, { ttlMs: 60_000, namespace })),
    );
    stores.push(crm as RedisIdempotencyStore, analytics as RedisIdempotencyStore);
    const event = trackEvent({ messageId: 'two-destinations' });
    for (const store of [crm, analytics, crm]) {
      assert.equal(
        (await inject(instance(store as RedisIdempotencyStore, calls).handler, { body: event })).status,
        200,
      );
    }
    assert.deepEqual(calls, ['two-destinations', 'two-destinations']);
    const keys = (await eventKeys()).sort();
    assert.deepEqual(
      keys.map((key) => key.replace(/[0-9a-f]{64}$/, '')),
      ['segment-endpoint:dedup:analytics:', 'segment-endpoint:dedup:crm:'],
    );
    for (const [namespace, error] of [
      ['', RangeError],
      ['x'.repeat(101), RangeError],
      [42, TypeError],
    ] as const) {
      await assert.rejects(
        openRedisIdempotency(server.url, { ttlMs: 1_000, namespace: namespace as string }),
        (err: Error) => err instanceof error && err.message.includes('options.namespace'),
      );
    }
    const longest = await openRedisIdempotency(server.url, { ttlMs: 1_000, namespace: 'x'.repeat(100) });
    stores.push(longest);
    assert.equal(longest.ready, true);
  });

  test('a Redis user kept by an ACL to its namespace: ready, its probe written there too', async () => {
    // The probe key stayed outside the namespace: refused by the ACL, the filter was never ready, and
    // /health said unavailable for good.
    await redis.sendCommand(['ACL', 'SETUSER', 'crm', 'on', '>pw', '~segment-endpoint:dedup:crm:*', '+@all']);
    const url = server.url.replace('redis://', 'redis://crm:pw@');
    const store = await openRedisIdempotency(url, { ttlMs: 60_000, namespace: 'crm' });
    stores.push(store);
    assert.equal(store.ready, true);
    const calls: string[] = [];
    const event = trackEvent({ messageId: 'acl-1' });
    assert.equal((await inject(instance(store, calls).handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['acl-1']);
  });
});

describe('when Redis fails', { timeout: 60_000 }, () => {
  test('Redis stopped: 503 at once, nothing processed, one error and its cause logged; started again: 200', async () => {
    const { log, text } = capturedLog();
    const store = await open(60_000, log);
    const { handler, calls } = instance(store);
    assert.equal(store.ready, true);
    assert.equal((await inject(handler, { body: trackEvent() })).status, 200);
    await server.stop();
    // Timed once the client has seen the connection close: an event sent before then is written to it,
    // and waits out a command's 1 s bound, as when Redis hangs (below).
    await eventually(async () => !store.ready, 'the store to see Redis gone');
    for (let i = 0; i < 3; i++) {
      // At once: the answer waits on nothing (no reconnection, no command's 1 s bound). Timed as the time
      // the event loop sat idle meanwhile, not by the clock, which a loaded machine's stalls alone took
      // past a second: a wait is idle time, the work of a stalled process is not.
      const before = performance.eventLoopUtilization();
      const started = performance.now();
      const res = await inject(handler, { body: trackEvent({ messageId: `down-${i}` }) });
      const ms = performance.now() - started;
      const { idle } = performance.eventLoopUtilization(before);
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
      assert.equal(res.headers['retry-after'], '1');
      assert.ok(idle < 500, `answered in ${Math.round(ms)} ms, ${Math.round(idle)} ms of them waiting`);
    }
    assert.equal(calls.length, 1);
    assert.equal(store.ready, false);
    await server.start();
    const event = trackEvent({ messageId: 'back' });
    await eventually(async () => (await inject(handler, { body: event })).status === 200, 'a 200');
    assert.equal(calls.length, 2);
    // The connection closed, then each reconnection refused: said once, not once an attempt.
    await oneOutageLogged(store, text, 'ready again: the outage ended by its probe', [/ECONNREFUSED/]);
  });

  test('a Redis that answers but refuses writes (a replica after a failover): not ready until it takes them', async () => {
    // It answers PING: health turned ok a second after each refusal, and the log said it had recovered.
    const { log, text } = capturedLog();
    const store = await open(60_000, log);
    const { handler, calls } = instance(store);
    const deadMaster = await freePort();
    await redis.sendCommand(['REPLICAOF', '127.0.0.1', String(deadMaster)]);
    try {
      const res = await inject(handler, { body: trackEvent({ messageId: 'read-only' }) });
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 2_500)); // two probes' time
      assert.equal(store.ready, false, 'ready while every write is refused');
    } finally {
      await redis.sendCommand(['REPLICAOF', 'NO', 'ONE']);
    }
    await eventually(async () => store.ready, 'ready once writes are taken');
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'writable' }) })).status, 200);
    assert.deepEqual(calls, ['writable']);
    const levels = text.map((line) => JSON.parse(line).level);
    assert.deepEqual(levels, [50, 30], 'one error for the outage, one info for its end');
  });

  test("an event whose 'done' Redis refused: a copy is a duplicate, and 'done' is written once Redis takes writes", async () => {
    // The claim stayed pending: copies were refused (503) for 30 s, and the one after was processed again.
    const { handler, calls, event } = await completedUnwritten('unwritten');
    const copy = await inject(handler, { body: event });
    assert.equal(copy.status, 200, copy.body);
    assert.deepEqual(calls, ['unwritten']);
    const id = await eventKey();
    await eventually(async () => (await redis.get(id)) === 'done', "'done' written again");
  });

  test("a store closed with 'done's Redis refused writes them as it closes, once Redis takes writes", async () => {
    // They were written only when the outage's probe ended it (three writes, a second apart): a store
    // closed before that dropped them, and a copy after the claim left pending expired was processed again.
    const { store } = await completedUnwritten('closing');
    await store.close();
    assert.equal(await redis.get(await eventKey()), 'done');
  });

  test("a store closed while Redis still refuses its 'done's says how many it could not write", async () => {
    // Dropped in silence: once their claims expire, copies of those events that reach another instance
    // are processed again, and nothing said why.
    const { log, text } = capturedLog();
    const { store } = await completedUnwritten('closing-refused', log);
    await atMemoryLimit(true);
    try {
      await store.close();
    } finally {
      await atMemoryLimit(false);
    }
    const said = text.map((line) => JSON.parse(line)).filter((line) => line.unwritten !== undefined);
    assert.deepEqual(
      said.map((line) => [line.level, line.unwritten]),
      [[40, 1]],
      text.join(''),
    );
    assert.match(said[0]?.msg, /processed again/);
  });

  test('Redis refusing some writes and taking others: one outage in the log, not one for each event', async () => {
    // At its memory limit with keys expiring, Redis takes one write and refuses the next: each claim that
    // succeeded ended the outage, each refusal began a new one, a line and a turn of /health each.
    const { log, text } = capturedLog();
    const store = await open(60_000, log);
    const { handler } = instance(store);
    try {
      for (let n = 0; n < 10; n++) {
        await atMemoryLimit(n % 2 === 0);
        await inject(handler, { body: trackEvent({ messageId: `flap-${n}` }) });
      }
    } finally {
      await atMemoryLimit(false);
    }
    await oneOutageLogged(store, text, 'ready once writes are taken');
  });

  test('Redis at its memory limit, a probe write taken now and then: one outage, not one each time', async () => {
    // One probe write taken ended the outage, the next refusal began another: 54 lines a minute, and
    // /health turning every few seconds, while Redis stayed at its limit.
    const { log, text } = capturedLog();
    const store = await open(60_000, log);
    const { handler } = instance(store);
    try {
      await atMemoryLimit(true);
      assert.equal((await inject(handler, { body: trackEvent({ messageId: 'limit-1' }) })).status, 503);
      await atMemoryLimit(false);
      await new Promise((resolve) => setTimeout(resolve, 1_200)); // a probe's write is taken meanwhile
      await atMemoryLimit(true);
      assert.equal((await inject(handler, { body: trackEvent({ messageId: 'limit-2' }) })).status, 503);
      assert.equal(store.ready, false);
    } finally {
      await atMemoryLimit(false);
    }
    await oneOutageLogged(store, text, 'ready once writes are taken');
  });

  test('a Redis that hangs: the event is refused within about a second, then processed once it answers', async () => {
    const store = await open();
    const { handler, calls } = instance(store);
    server.pause();
    try {
      // Timed against a 1 s timer of the test's own, set as the event is sent: a loaded machine runs the
      // command's bound as late as it runs that timer, past a fixed 1.5 s.
      const started = performance.now();
      let second = Number.POSITIVE_INFINITY;
      const timer = setTimeout(() => {
        second = performance.now();
      }, 1_000);
      const res = await inject(handler, { body: trackEvent({ messageId: 'hung' }) });
      const answered = performance.now();
      clearTimeout(timer);
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
      const ms = answered - started;
      assert.ok(
        ms >= 900 && answered - second < 500,
        `answered in ${Math.round(ms)} ms, the 1 s timer at ${Math.round(second - started)} ms`,
      );
      assert.deepEqual(calls, []);
      assert.equal(store.ready, false, 'health says unavailable while Redis hangs, connected or not');
    } finally {
      server.resume();
    }
    // Ready again with no event sent: a load balancer that took the instance out sends none. Three probes
    // a second apart (3 s) end the outage, each as late as a loaded machine runs it: up to 10 s.
    await eventually(async () => store.ready, 'ready again', 10_000);
    // The claim given up was made when Redis resumed: nobody handles the event, and the sender's retry is
    // processed (it was refused SEG_DUPLICATE_IN_FLIGHT until the claim expired, 30 s).
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'hung' }) })).status, 200);
    assert.deepEqual(calls, ['hung']);
  });

  test('claims under way when a hung connection is made again: their retries are taken over once Redis answers', async () => {
    // Redis hangs with claims written to it; ~2 s in, the connection is closed under them and made
    // again. Those SET NX still ran when Redis resumed, but only a claim given up at its own 1 s bound
    // counted as given up: the retry of one cut by the reconnection was refused SEG_DUPLICATE_IN_FLIGHT,
    // though nobody ran it, until the claim expired (30 s).
    const store = await open();
    const { handler, calls } = instance(store);
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'warm' }) })).status, 200);
    server.pause();
    const ids = Array.from({ length: 10 }, (_, n) => `cut-${n}`);
    const first: Array<Promise<number>> = [];
    try {
      for (const id of ids) {
        first.push(inject(handler, { body: trackEvent({ messageId: id }) }).then((res) => res.status));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    } finally {
      server.resume();
    }
    assert.deepEqual(await Promise.all(first), Array(10).fill(503));
    await eventually(async () => store.ready, 'ready again', 10_000);
    const retries = [];
    for (const id of ids) {
      const res = await inject(handler, { body: trackEvent({ messageId: id }) });
      retries.push([id, res.status, res.status === 200 ? undefined : res.json().code]);
    }
    assert.deepEqual(
      retries,
      ids.map((id) => [id, 200, undefined]),
    );
    assert.deepEqual(calls, ['warm', ...ids]);
  });

  test('a logger that throws while Redis fails leaves no event stuck: the copy is refused, the next claim answered', async () => {
    const broken = () => {
      throw new Error('the log is broken');
    };
    const store = await open(60_000, { ...silentLogger, error: broken, info: broken });
    server.pause();
    const first = store.claim('k-log');
    const copy = store.claim('k-log');
    try {
      await assert.rejects(first, { code: 'SEG_IDEMPOTENCY_UNAVAILABLE' });
      await assert.rejects(copy, { code: 'SEG_IDEMPOTENCY_UNAVAILABLE' });
    } finally {
      server.resume();
    }
    await eventually(async () => store.ready, 'Redis to be taken as answering again');
    // Answered, not left waiting: the claim given up while Redis was paused ran when it resumed; this
    // store's own, and nobody handles the event, so the next claim takes it over.
    assert.equal(await store.claim('k-log'), 'new');
    assert.equal(await store.claim('k-log-other'), 'new');
  });

  test('Redis that comes to want a password: the log names NOAUTH, not only the connection that closed', async () => {
    // A password set and the store's connection dropped: the outage was logged as "Socket closed
    // unexpectedly", and the NOAUTH of every reconnection after it was never said.
    const { log, text } = capturedLog();
    const store = await open(60_000, log);
    assert.equal(store.ready, true);
    await redis.sendCommand(['CONFIG', 'SET', 'requirepass', 'now-required']);
    try {
      await redis.sendCommand(['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']);
      await eventually(async () => /NOAUTH/.test(text.join('\n')), 'NOAUTH in the log', 10_000);
      assert.equal(store.ready, false);
    } finally {
      await redis.sendCommand(['CONFIG', 'SET', 'requirepass', '']);
    }
    await eventually(async () => store.ready, 'ready once no password is wanted', 10_000);
    const lines = text.map((line) => JSON.parse(line));
    assert.equal(lines[0].level, 50, 'the outage begins with an error');
    assert.equal(lines.at(-1).level, 30, 'and ends with an info');
    assert.ok(
      lines.slice(1, -1).every((line) => line.level === 40),
      'each later cause a warning',
    );
    assert.ok(lines.length <= 2 + 4, `a line for each cause, a few at most: ${text.join('\n')}`);
    assert.doesNotMatch(text.join(''), /now-required/);
  });

  test('a Redis that wants a password the URL lacks: not ready once open resolves, before any event', async () => {
    // It takes the connection and refuses every command (NOAUTH): health said ok for up to a second after
    // start, until the first ping was refused, and a balancer could route events to a store that refuses
    // them all. The store writes once before open resolves.
    const { log, text } = capturedLog();
    await redis.sendCommand(['CONFIG', 'SET', 'requirepass', 'wanted']);
    try {
      const store = await open(60_000, log);
      assert.equal(store.ready, false);
      assert.match(text.join('\n'), /NOAUTH/);
    } finally {
      await redis.sendCommand(['AUTH', 'wanted']);
      await redis.sendCommand(['CONFIG', 'SET', 'requirepass', '']);
    }
  });

  test('unreachable at start: open resolves, not ready, claims refused, the password never logged', async () => {
    const { log, text } = capturedLog();
    const url = `redis://user:s3cret-pass@127.0.0.1:${await freePort()}`;
    const store = await openRedisIdempotency(url, { ttlMs: 1_000, log });
    stores.push(store);
    assert.equal(store.ready, false);
    // Refused at once: before the loop's next turn, asking nothing of the network. (Not "within 100 ms",
    // which a loaded machine can overrun. Queued for a connection, it would wait out a command's 1 s bound.)
    const claim = store.claim('k');
    const first = await Promise.race([
      claim.then(
        () => 'claimed',
        () => 'refused',
      ),
      new Promise((resolve) => setImmediate(resolve, 'not yet')),
    ]);
    assert.equal(first, 'refused');
    await assert.rejects(claim, { code: 'SEG_IDEMPOTENCY_UNAVAILABLE' });
    assert.equal(text.length, 1);
    assert.equal(JSON.parse(String(text[0])).redis, new URL(url).host);
    assert.doesNotMatch(text.join(''), /s3cret/);
    await assert.rejects(openRedisIdempotency('http://x', { ttlMs: 1 }), TypeError);
    await assert.rejects(openRedisIdempotency('redis://:s3cret@', { ttlMs: 1 }), (err: Error) => {
      assert.doesNotMatch(`${err.message} ${JSON.stringify(err)}`, /s3cret/);
      return true;
    });
  });
});
