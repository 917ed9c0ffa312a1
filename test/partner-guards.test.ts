// What a partner's own code plugged into the endpoint may do wrong, and how it is answered: an
// `authenticate` or a duplicate-filter store that never answers is bounded by handlerTimeoutMs; a store
// that answers outside its contract is a bug in it (500), never a pass; a store failing to forget a
// failed event leaves the handler's own answer.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, test } from 'node:test';
import {
  createFetchHandler,
  createHandler,
  type HandlerOptions,
  type IdempotencyStore,
  jsonLogger,
  silentLogger,
  ValidationError,
} from '../src/index.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { waitUntil } from './helpers-wait.ts';

const never = () => new Promise<never>(() => {});
const fine: IdempotencyStore = { claim: () => 'new', complete: () => {}, release: () => {} };

function endpoint(options: Partial<HandlerOptions>, track: () => unknown = () => {}) {
  const logged: string[] = [];
  const handler = createHandler({
    apiKeys: [API_KEY],
    handlerTimeoutMs: 200,
    log: jsonLogger('debug', (line) => logged.push(line)),
    handlers: { track },
    ...options,
  } as HandlerOptions);
  return { handler, logged };
}

describe('bounded by handlerTimeoutMs', () => {
  test('an authenticate that never answers: 503 SEG_HANDLER_TIMEOUT, its slot given back', async () => {
    const { handler } = endpoint({ apiKeys: undefined, authenticate: never });
    const res = await inject(handler, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_HANDLER_TIMEOUT');
    assert.equal(handler.inFlight, 0);
  });

  test("a sender gone while authenticate runs: its slot given back when authenticate answers, not at the body's deadline", async () => {
    // The request was closed before its body was listened to: no 'close' came after, and the slot stayed
    // taken until bodyTimeoutMs, a 503 SEG_OVERLOADED for every other sender meanwhile.
    let asked = 0;
    let answer = (_known: boolean) => {};
    const authenticate = () =>
      new Promise<boolean>((resolve) => {
        asked++;
        answer = resolve;
      });
    const options = {
      apiKeys: undefined,
      authenticate,
      maxInFlight: 1,
      bodyTimeoutMs: 60_000,
      handlerTimeoutMs: 30_000,
    };
    const { handler } = endpoint(options);
    const closed: Array<Promise<unknown>> = [];
    const host = createServer((req, res) => {
      closed.push(new Promise((resolve) => req.on('close', resolve)));
      handler(req, res);
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    const body = JSON.stringify(trackEvent());
    const headers = { ...segmentHeaders(), 'content-length': String(Buffer.byteLength(body)) };
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
    const sender = connect((host.address() as AddressInfo).port, '127.0.0.1');
    sender.on('error', () => {});
    sender.write(`POST / HTTP/1.1\r\nHost: localhost\r\n${head.join('')}\r\n${body}`);
    try {
      await waitUntil(
        () => asked === 1,
        () => 'authenticate asked',
      );
      sender.destroy();
      await Promise.all(closed);
      answer(true);
      await waitUntil(
        () => handler.inFlight === 0,
        () => 'the slot given back',
        5_000,
      );
    } finally {
      sender.destroy();
      await new Promise((resolve) => host.close(resolve));
    }
    // The same through the fetch handler, its Request's signal aborted.
    const fetchHandler = createFetchHandler({ ...options, log: silentLogger, handlers: { track() {} } });
    const aborted = new AbortController();
    const request = new Request('http://localhost/', {
      method: 'POST',
      headers,
      body,
      signal: aborted.signal,
    });
    const outcome = fetchHandler(request).catch((err: unknown) => err);
    await waitUntil(
      () => asked === 2,
      () => 'authenticate asked',
    );
    aborted.abort(new Error('the sender went away'));
    await new Promise((resolve) => setImmediate(resolve)); // a sender's abort comes in a turn of its own
    answer(true);
    assert.match(String(await outcome), /the sender went away/);
    await waitUntil(
      () => fetchHandler.inFlight === 0,
      () => "the fetch handler's slot given back",
      5_000,
    );
  });

  test('a store whose claim never answers: 503 SEG_IDEMPOTENCY_UNAVAILABLE, the handler not run', async () => {
    let ran = 0;
    const { handler } = endpoint({ idempotency: { ...fine, claim: never } }, () => {
      ran++;
    });
    const res = await inject(handler, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
    assert.equal(ran, 0);
    assert.equal(handler.inFlight, 0);
  });

  test('a claim that answers new after its event was refused is given back', async () => {
    const released: string[] = [];
    const store: IdempotencyStore = {
      ...fine,
      claim: () => new Promise((resolve) => setTimeout(() => resolve('new'), 400)),
      release: (key) => {
        released.push(key);
      },
    };
    const { handler } = endpoint({ idempotency: store });
    const res = await inject(handler, { body: trackEvent({ messageId: 'late-claim' }) });
    assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(released.length, 1);
    assert.match(released[0] ?? '', /late-claim$/);
  });

  test('a store whose complete never answers: 503, retried', async () => {
    const { handler } = endpoint({ idempotency: { ...fine, complete: never } });
    const res = await inject(handler, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
    assert.equal(handler.inFlight, 0);
  });

  test("a store whose release never answers, or fails: the handler's own answer, the failure logged", async () => {
    for (const release of [
      never,
      () => Promise.reject(new Error('store down')),
      () => {
        throw new Error('store down');
      },
    ]) {
      const { handler, logged } = endpoint({ idempotency: { ...fine, release } }, () => {
        throw new ValidationError('Missing email address');
      });
      const res = await inject(handler, { body: trackEvent() });
      assert.equal(res.status, 400, res.body);
      assert.equal(res.json().message, 'Missing email address');
      assert.ok(
        logged.some((line) => /could not forget/.test(line)),
        logged.join('\n'),
      );
      assert.equal(handler.inFlight, 0);
    }
  });
});

describe('a store that answers outside its contract', () => {
  test("a claim that is not 'new', 'done' or 'busy' is a 500, the handler not run", async () => {
    for (const answer of [undefined, null, false, 'OK', 'DONE']) {
      let ran = 0;
      const { handler, logged } = endpoint({ idempotency: { ...fine, claim: () => answer as never } }, () => {
        ran++;
      });
      const res = await inject(handler, { body: trackEvent() });
      assert.equal(res.status, 500, String(answer));
      assert.equal(ran, 0, String(answer));
      assert.ok(
        logged.some((line) => /claim/.test(line)),
        logged.join('\n'),
      );
    }
  });

  test('an in-memory store with a now that is not a function is refused at construction', () => {
    assert.throws(
      () =>
        createHandler({
          apiKeys: [API_KEY],
          log: silentLogger,
          handlers: {},
          idempotency: { now: 'x' as never },
        }),
      /options\.idempotency\.now must be a function/,
    );
  });
});
