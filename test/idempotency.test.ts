import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHandler, type IdempotencyStore, MemoryIdempotencyStore, silentLogger } from '../src/index.ts';
import { API_KEY, countingHandler, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { countdown, gate, within } from './helpers-wait.ts';

describe('MemoryIdempotencyStore', () => {
  test('new, then done once completed; released claims are new again', async () => {
    const store = new MemoryIdempotencyStore();
    assert.equal(await store.claim('a'), 'new');
    store.complete('a');
    assert.equal(await store.claim('a'), 'done');
    assert.equal(await store.claim('b'), 'new');
    store.release('b');
    assert.equal(await store.claim('b'), 'new');
  });

  test('a copy claimed while the first runs waits: done if the first succeeds', async () => {
    const store = new MemoryIdempotencyStore();
    assert.equal(store.claim('k'), 'new');
    const second = store.claim('k');
    assert.ok(second instanceof Promise);
    store.complete('k');
    assert.equal(await second, 'done');
  });

  test('copies claimed while the first runs are busy if the first fails; the next claim is new', async () => {
    const store = new MemoryIdempotencyStore();
    assert.equal(store.claim('k'), 'new');
    const second = store.claim('k');
    const third = store.claim('k');
    store.release('k');
    assert.equal(await second, 'busy');
    assert.equal(await third, 'busy');
    assert.equal(store.claim('k'), 'new');
  });

  test('entries expire after the window: at ttl - 1 ms a duplicate, at ttl new', () => {
    let now = 1_000;
    const store = new MemoryIdempotencyStore({ ttlMs: 500, now: () => now });
    store.claim('k');
    store.complete('k');
    now += 499;
    assert.equal(store.claim('k'), 'done');
    now += 1;
    assert.equal(store.claim('k'), 'new');
  });

  test('memory is bounded: past maxEntries the oldest are forgotten first', () => {
    const store = new MemoryIdempotencyStore({ maxEntries: 3 });
    for (const key of ['a', 'b', 'c', 'd']) {
      store.claim(key);
      store.complete(key);
    }
    assert.equal(store.size, 3);
    assert.equal(store.claim('a'), 'new');
    assert.equal(store.claim('d'), 'done');
  });

  test('expired entries are swept on insert, not kept until the bound', () => {
    let now = 0;
    const store = new MemoryIdempotencyStore({ ttlMs: 10, maxEntries: 1000, now: () => now });
    for (let i = 0; i < 100; i++) {
      store.claim(`k${i}`);
      store.complete(`k${i}`);
    }
    now = 100;
    store.claim('fresh');
    store.complete('fresh');
    assert.equal(store.size, 1);
  });
});

test('matches a plain reference model through thousands of random claims, evictions and expiries', () => {
  // The fixed-memory index (open addressing with backward-shift deletion) against the obvious model.
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  let now = 0;
  const maxEntries = 64;
  const ttlMs = 500;
  const store = new MemoryIdempotencyStore({ maxEntries, ttlMs, now: () => now });
  const model = new Map<string, number>(); // key -> expiry, insertion order
  for (let step = 0; step < 20_000; step++) {
    now += Math.floor(random() * 5);
    const key = `k${Math.floor(random() * 200)}`;
    const expected = (model.get(key) ?? -1) > now ? 'done' : 'new';
    const claim = store.claim(key);
    assert.equal(claim, expected, `step ${step}: ${key}`);
    if (claim !== 'new') continue;
    if (random() < 0.2) {
      store.release(key);
      continue;
    }
    store.complete(key);
    model.delete(key);
    model.set(key, now + ttlMs);
    while (model.size > maxEntries) model.delete(model.keys().next().value as string);
  }
});

describe('duplicate suppression in the pipeline', () => {
  /** A handler that records each messageId it runs; `hold` keeps every run open until it resolves. */
  const counting = (
    options: Parameters<typeof countingHandler>[0] = undefined,
    hold: Promise<void> = Promise.resolve(),
  ) => countingHandler(options, [], hold);

  test('the same messageId from the same key reaches the handler once; the copy gets 200', async () => {
    const { handler, calls } = counting();
    const event = trackEvent({ messageId: 'dup-1' });
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['dup-1']);
  });

  test('copies arriving at the same moment are processed once', async () => {
    // The first copy runs until every copy has claimed the event: all ten are in the pipeline at once.
    const COPIES = 10;
    const claimed = countdown(COPIES);
    const memory = new MemoryIdempotencyStore();
    const store: IdempotencyStore = {
      claim: (key) => {
        claimed.hit();
        return memory.claim(key);
      },
      complete: (key) => memory.complete(key),
      release: (key) => memory.release(key),
    };
    const { handler, calls } = counting(store, claimed.reached);
    const event = trackEvent({ messageId: 'dup-2' });
    const answers = await Promise.all(Array.from({ length: COPIES }, () => inject(handler, { body: event })));
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(COPIES).fill(200),
    );
    assert.deepEqual(calls, ['dup-2']);
  });

  test('copies of an event whose handler hangs are answered with the first, at its timeout, not a timeout each', async () => {
    // A copy waits for the first's outcome, never for a run of its own after it: a hung handler would
    // otherwise answer the second copy two timeouts after it came and the third three, past Segment's 5 s.
    // A handler still running keeps its event claimed for five of these (5 s): the retry below must
    // come within them. At 300 ms a loaded machine's stalls of the test's own process, 1.5 s in all
    // between the first's answer and the retry's claim, ran the event again beside the hung run.
    const TIMEOUT = 1_000;
    const runs: string[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlerTimeoutMs: TIMEOUT,
      handlers: {
        track: (event) => {
          runs.push(String(event.messageId));
          return new Promise<void>(() => {});
        },
      },
    });
    const event = trackEvent({ messageId: 'dup-hung' });
    const answers = [];
    for (let i = 0; i < 3; i++) {
      const sent = performance.now();
      answers.push(
        inject(handler, { body: event }).then((res) => ({
          status: res.status,
          code: res.json().code,
          sent,
          at: performance.now(),
        })),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const settled = await Promise.all(answers);
    assert.deepEqual(
      settled.map(({ status, code }) => [status, code]),
      [
        [503, 'SEG_HANDLER_TIMEOUT'],
        [503, 'SEG_DUPLICATE_IN_FLIGHT'],
        [503, 'SEG_DUPLICATE_IN_FLIGHT'],
      ],
    );
    // The copies answered with the first, at its timeout: by the old chain, the second came one timeout
    // after it and the third two. (Not timed from their arrival: a loaded machine's timer fired ~600 ms
    // late, and the first's timeout with it.) A copy sent after the first's answer, a 50 ms sleep run past
    // its timeout on a loaded machine, is answered as it comes.
    const first = (settled[0] as { at: number }).at;
    for (const { sent, at } of settled.slice(1)) {
      const from = Math.max(first, sent);
      assert.ok(
        at - from < TIMEOUT,
        `answered ${(at - from).toFixed(0)} ms after the first copy, or its own arrival`,
      );
    }
    assert.deepEqual(runs, ['dup-hung']);
    // Still running, it keeps the event claimed: a retry is told to retry, not run beside it...
    assert.equal((await inject(handler, { body: event })).json().code, 'SEG_DUPLICATE_IN_FLIGHT');
    assert.deepEqual(runs, ['dup-hung']);
    // ...for five timeouts, after which it is taken for hung, and the retry is processed.
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT * 5));
    assert.equal((await inject(handler, { body: event })).json().code, 'SEG_HANDLER_TIMEOUT');
    assert.deepEqual(runs, ['dup-hung', 'dup-hung']);
  });

  test('an event whose handler runs past its timeout stays claimed until the handler ends: no second run beside it', async () => {
    // Answered 503 at the timeout, the handler still runs (a slow downstream call). A retry then ran it
    // again beside the first (two writes to the partner's CRM), and the first's late success was not
    // remembered, so the retry after ran it a third time.
    const TIMEOUT = 500; // the claim of a handler still running is kept for five of these (2.5 s)
    const runs: string[] = [];
    // Each run goes on until the test ends it, with a success or with a late failure.
    const running: Array<(failure?: Error) => void> = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlerTimeoutMs: TIMEOUT,
      handlers: {
        track: (event) => {
          runs.push(String(event.messageId));
          return new Promise<void>((resolve, reject) => {
            running.push((failure) => (failure === undefined ? resolve() : reject(failure)));
          });
        },
      },
    });
    const answer = async (messageId: string) => {
      const res = await inject(handler, { body: trackEvent({ messageId }) });
      return { status: res.status, code: res.status === 200 ? undefined : (res.json().code as unknown) };
    };
    /** Ends the `n`th run, then waits for its claim to be remembered or released (the handler idle). */
    const end = async (n: number, failure?: Error) => {
      (running[n] as (failure?: Error) => void)(failure);
      await handler.idle();
    };
    const first = await answer('late-1');
    assert.deepEqual([first.status, first.code], [503, 'SEG_HANDLER_TIMEOUT']);
    // While it still runs: told to retry at once, not run again, not kept waiting. (A copy kept waiting
    // is answered only when the claim is given up, five timeouts on: the late success below is then
    // not remembered, and the copy after it runs the event again. The bound holds the process open
    // meanwhile, which nothing else here does.)
    const meanwhile = await within(answer('late-1'), TIMEOUT * 10, 'an answer to the copy');
    assert.deepEqual([meanwhile.status, meanwhile.code], [503, 'SEG_DUPLICATE_IN_FLIGHT']);
    assert.deepEqual(runs, ['late-1']);
    // It succeeded after all: remembered, and the next copy is a duplicate.
    await end(0);
    assert.equal((await answer('late-1')).status, 200);
    assert.deepEqual(runs, ['late-1']);
    // One that fails late is released then: its next copy is processed.
    assert.equal((await answer('late-2')).code, 'SEG_HANDLER_TIMEOUT');
    await end(1, new Error('the CRM said no, late'));
    assert.equal((await answer('late-2')).code, 'SEG_HANDLER_TIMEOUT');
    assert.deepEqual(runs, ['late-1', 'late-2', 'late-2']);
  });

  test("a store of your own that cannot remember an overdue handler's late success: said in the log", async () => {
    // Nobody waits for that late complete(): its failure was swallowed without a word.
    const memory = new MemoryIdempotencyStore();
    const store: IdempotencyStore = {
      claim: (key) => memory.claim(key),
      complete: async () => {
        throw new Error('the store is read-only');
      },
      release: (key) => memory.release(key),
    };
    const warned: string[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: { ...silentLogger, warn: (_obj: object, msg?: string) => void warned.push(String(msg)) },
      idempotency: store,
      handlerTimeoutMs: 100,
      handlers: { track: () => new Promise<void>((resolve) => setTimeout(resolve, 200)) },
    });
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'late-ro' }) })).status, 503);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.ok(
      warned.some((msg) => /could not remember an event whose handler succeeded after its timeout/.test(msg)),
      warned.join('\n'),
    );
  });

  test('idle() waits for a handler past its timeout, and for its claim remembered: a store closed after it loses nothing', async () => {
    // An embedder stops with drain(), await idle(), then closes its store (a Redis client). idle()
    // resolved while the overdue handler still ran: its late success then met a closed store, and the
    // event stayed claimed, its retries told to wait, until the claim expired.
    const memory = new MemoryIdempotencyStore();
    const said: string[] = [];
    const overdue = gate();
    const store: IdempotencyStore = {
      claim: (key) => memory.claim(key),
      complete: async (key) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        said.push('remembered');
        return memory.complete(key);
      },
      release: (key) => memory.release(key),
    };
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      idempotency: store,
      // A handler that ends more than five timeouts after its timeout is taken for hung, its success not
      // remembered. It ran 300 ms against a 100 ms timeout, which a loaded machine could stretch past
      // that; it now ends when the test lets it, once idle() is asked, five seconds left for that.
      handlerTimeoutMs: 1_000,
      handlers: {
        track: async () => {
          await overdue.opened;
          said.push('handler ended');
        },
      },
    });
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'late-idle' }) })).status, 503);
    handler.drain();
    const idle = handler.idle();
    overdue.open();
    await idle;
    assert.deepEqual(said, ['handler ended', 'remembered']);
    assert.equal(handler.inFlight, 0);
  });

  test('a failed event is not remembered: its retry is processed', async () => {
    const { handler, calls, failNext } = counting();
    failNext(1);
    const event = trackEvent({ messageId: 'dup-3' });
    assert.equal((await inject(handler, { body: event })).status, 503);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.deepEqual(calls, ['dup-3', 'dup-3']);
  });

  test('the same messageId from another key, or without a messageId, is another event', async () => {
    const { handler, calls } = counting();
    const event = trackEvent({ messageId: 'dup-4' });
    await inject(handler, { body: event });
    await inject(handler, { body: event, headers: segmentHeaders('other-key') });
    const anonymous = trackEvent({ messageId: undefined });
    await inject(handler, { body: anonymous });
    await inject(handler, { body: anonymous });
    assert.equal(calls.length, 4);
  });

  test('messageId in another casing is the same key', async () => {
    const { handler, calls } = counting();
    await inject(handler, { body: trackEvent({ messageId: 'dup-5' }) });
    await inject(handler, { body: { type: 'track', event: 'x', userId: 'u', message_id: 'dup-5' } });
    assert.equal(calls.length, 1);
  });

  test('idempotency: false processes every copy', async () => {
    const { handler, calls } = counting(false);
    const event = trackEvent({ messageId: 'dup-6' });
    await inject(handler, { body: event });
    await inject(handler, { body: event });
    assert.equal(calls.length, 2);
  });

  test('a shared store saying busy gets 503 with Retry-After; its errors are 500 without internals', async () => {
    const busy: IdempotencyStore = { claim: () => 'busy', complete: () => {}, release: () => {} };
    const res = await inject(counting(busy).handler, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_DUPLICATE_IN_FLIGHT');
    assert.equal(res.headers['retry-after'], '1');
    const broken: IdempotencyStore = {
      claim: async () => {
        throw new Error('redis: connection refused 10.0.0.9');
      },
      complete: () => {},
      release: () => {},
    };
    const down = await inject(counting(broken).handler, { body: trackEvent() });
    assert.equal(down.status, 500);
    assert.doesNotMatch(down.body, /redis/);
  });
});
