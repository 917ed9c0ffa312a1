import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { keyFingerprint } from '../src/auth.ts';
import {
  createHandler,
  EventNotSupported,
  ForbiddenError,
  InvalidEventPayload,
  RetryError,
  silentLogger,
  UnauthorizedError,
  ValidationError,
} from '../src/index.ts';
import { endpoint, type Seen } from './handler-harness.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { ROOT, spawnClean, TSX } from './helpers-spawn.ts';
import { countdown, gate } from './helpers-wait.ts';

// Calling the partner's handler: what it returns or throws becomes the answer (a 5xx without internals),
// its context, its timeout, and the events in flight until their answers are written.

describe('dispatch', () => {
  const throwing = (err: unknown, log = silentLogger) =>
    createHandler({
      apiKeys: [API_KEY],
      log,
      handlers: {
        track: () => {
          throw err;
        },
      },
    });

  test('returning nothing is 200 with an empty body; { status: 202 } is 202', async () => {
    const ok = await inject(endpoint(), { body: trackEvent() });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '');
    const later = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: { track: async () => ({ status: 202 }) },
    });
    assert.equal((await inject(later, { body: trackEvent() })).status, 202);
  });

  test('ctx carries the api key, headers, a signal and the receive time', async () => {
    const seen: Seen[] = [];
    await inject(endpoint({}, seen), { body: trackEvent() });
    const ctx = seen[0]?.ctx;
    assert.equal(ctx?.apiKey, API_KEY);
    assert.equal(ctx?.headers['user-agent'], 'Segment.io/1.0');
    assert.equal(ctx?.signal.aborted, false);
    assert.ok(ctx?.receivedAt instanceof Date);
  });

  test("ctx.log's lines name the event: its source's fingerprint, type and messageId, the handler's fields after", async () => {
    // A handler's "CRM refused" line could not be tied to the event, nor to the access log's line.
    const lines: Array<Record<string, unknown>> = [];
    const record = (obj: object, msg?: string) => lines.push({ ...obj, msg });
    const log = { error: record, warn: record, info: record, debug: record };
    const handler = createHandler({
      apiKeys: [API_KEY],
      log,
      handlers: {
        track: (_event, ctx) => {
          ctx.log.warn({ crm: 429, type: 'mine' }, 'CRM refused');
        },
      },
    });
    await inject(handler, { body: trackEvent({ messageId: 'log-1' }) });
    const line = lines.find((l) => l.msg === 'CRM refused');
    assert.deepEqual(line, {
      source: keyFingerprint(API_KEY),
      type: 'mine',
      messageId: 'log-1',
      crm: 429,
      msg: 'CRM refused',
    });
  });

  test("ctx.log takes pino's other two forms: an error first, and a message alone", async () => {
    // An error first was spread into its own fields, none of them its message or stack: the line said
    // nothing of what failed. A message alone was spread into a field per character ({"0":"s",...}).
    const lines: Array<Record<string, unknown>> = [];
    const record = (obj: object, msg?: string) => lines.push({ ...obj, msg });
    const log = { error: record, warn: record, info: record, debug: record };
    const down = new Error('CRM down');
    const handler = createHandler({
      apiKeys: [API_KEY],
      log,
      handlers: {
        track: (_event, ctx) => {
          // A message alone: what a handlers module in JavaScript may write.
          (ctx.log.info as unknown as (msg: string) => void)('synced');
          ctx.log.error(down, 'CRM refused');
        },
      },
    });
    await inject(handler, { body: trackEvent({ messageId: 'log-2' }) });
    const named = { source: keyFingerprint(API_KEY), type: 'track', messageId: 'log-2' };
    assert.deepEqual(
      lines.find((l) => l.msg === 'synced'),
      { ...named, msg: 'synced' },
    );
    assert.deepEqual(
      lines.find((l) => l.msg === 'CRM refused'),
      { ...named, err: down, msg: 'CRM refused' },
    );
  });

  test('the Segment Functions error classes map to their statuses', async () => {
    const cases: Array<[Error, number]> = [
      [new ValidationError('Missing email address'), 400],
      [new InvalidEventPayload('Bad payload'), 400],
      [new EventNotSupported('No tracks here'), 501],
      [new RetryError('Downstream is down'), 503],
      [new UnauthorizedError('API token expired'), 401],
      [new ForbiddenError('Not on your plan'), 403],
    ];
    for (const [err, status] of cases) {
      const res = await inject(throwing(err), { body: trackEvent() });
      assert.equal(res.status, status, err.name);
      assert.equal(res.json().message, err.message);
    }
  });

  test('a thrown error with a numeric status or statusCode keeps its status', async () => {
    const teapot = Object.assign(new Error('Quota exceeded for this workspace'), { status: 429 });
    const res = await inject(throwing(teapot), { body: trackEvent() });
    assert.equal(res.status, 429);
    assert.equal(res.json().message, 'Quota exceeded for this workspace');
    const gone = Object.assign(new Error('Gone'), { statusCode: 410 });
    assert.equal((await inject(throwing(gone), { body: trackEvent() })).status, 410);
  });

  test("a downstream's refusal thrown by its HTTP client is a 500, logged: the event is retried, not dropped", async () => {
    const logged: Array<{ err?: Error }> = [];
    const log = { ...silentLogger, error: (obj: object) => logged.push(obj) };
    const refused = Object.assign(new Error('Request failed with status code 401'), {
      name: 'AxiosError',
      code: 'ERR_BAD_REQUEST',
      status: 401,
      response: { status: 401, headers: {}, data: { error: 'invalid_token' } },
      request: {},
    });
    const res = await inject(throwing(refused, log), { body: trackEvent() });
    assert.equal(res.status, 500);
    assert.equal(res.json().code, 'SEG_INTERNAL');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.err, refused);
  });

  test("a returned HTTP client's response is no answer: failed (400 up), a 500, logged; else a 200", async () => {
    // A handler in JavaScript that returns what fetch, axios, got or node:http gave it: a downstream's
    // 401 was answered as the customer's bad key (final), a 404 was acknowledged (got's statusCode), an
    // axios 201 was a 500 retried for hours (a status outside the contract), each event run again.
    const logged: Array<{ err?: Error }> = [];
    const log = { ...silentLogger, error: (obj: object) => logged.push(obj) };
    const returning = (result: unknown) =>
      endpoint({
        log,
        handlers: { track: () => result as undefined, page: async () => result as undefined },
      });
    const failed = (status: number) => [
      new Response(null, { status }),
      { status, statusText: 'x', headers: {}, data: {} }, // axios
      { statusCode: status, headers: {}, body: 'x' }, // got, node:http
      { statusCode: status }, // without its headers
    ];
    // Not delivered either: a redirect these clients did not follow, a network error's status 0.
    const undelivered = [
      ...failed(302),
      { status: -1, statusText: 'x', headers: {}, data: {} },
      { statusCode: -1 },
      new Response(null, { status: 302, headers: { location: '/elsewhere' } }),
      Response.error(),
      { statusCode: 0, headers: {} },
    ];
    for (const result of undelivered) {
      const res = await inject(returning(result), { body: trackEvent() });
      assert.equal(res.status, 500, `${JSON.stringify(result)}: ${res.body}`);
    }
    for (const status of [400, 401, 403, 404, 500, 503, 599]) {
      for (const result of failed(status)) {
        for (const type of ['track', 'page']) {
          const res = await inject(returning(result), { body: trackEvent({ type }) });
          assert.equal(res.status, 500, `${type} ${status} ${JSON.stringify(result)}: ${res.body}`);
          assert.equal(res.json().code, 'SEG_INTERNAL');
          assert.match(String(logged.at(-1)?.err?.message), new RegExp(`status ${status}`));
        }
      }
    }
    const succeeded = (status: number) => [
      new Response(status === 204 ? null : 'ok', { status }),
      { status, statusText: 'x', headers: {}, data: {} },
      { statusCode: status, headers: {} },
    ];
    for (const result of [200, 201, 202, 204, 299].flatMap(succeeded)) {
      const res = await inject(returning(result), { body: trackEvent() });
      assert.equal(res.status, 200, JSON.stringify(result));
    }
    // Its status read once: a getter's second answer is not the one the line names.
    let reads = 0;
    const shifting = {
      get statusCode() {
        return ++reads === 1 ? 404 : 200;
      },
    };
    assert.equal((await inject(returning(shifting), { body: trackEvent() })).status, 500);
    assert.equal(reads, 1);
    assert.match(String(logged.at(-1)?.err?.message), /status 404/);
    // Without headers, or with a message for the customer, a status is the handler's own answer.
    for (const [result, status] of [
      [{ statusCode: '503' }, 200],
      [{ status: 202, statusCode: 503 }, 202],
      [{ status: 503 }, 503],
      [{ status: 200, statusCode: 500, headers: null }, 200],
      [{ status: 400, message: 'Missing email address', headers: { 'x-trace': '1' } }, 400],
    ] as const) {
      assert.equal((await inject(returning(result), { body: trackEvent() })).status, status);
    }
  });

  test('anything else is a 500 with a generic message; the cause goes to the log only', async () => {
    const logged: object[] = [];
    const log = { ...silentLogger, error: (obj: object) => logged.push(obj) };
    const secret = new Error('connect ECONNREFUSED 10.0.0.5:5432 at /srv/app/db.js');
    const res = await inject(throwing(secret, log), { body: trackEvent() });
    assert.equal(res.status, 500);
    assert.equal(res.json().code, 'SEG_INTERNAL');
    assert.doesNotMatch(res.body, /ECONNREFUSED|\/srv|db\.js|stack/);
    assert.equal(logged.length, 1);
    assert.equal((logged[0] as { err: Error }).err, secret);
    assert.doesNotMatch(JSON.stringify(logged[0]), new RegExp(API_KEY));
    const upstream = Object.assign(new Error('pg: relation "events" does not exist'), {
      status: 502,
      code: '42P01',
    });
    const res502 = await inject(throwing(upstream, log), { body: trackEvent() });
    assert.equal(res502.status, 502);
    assert.doesNotMatch(res502.body, /relation|42P01/);
  });

  test("a thenable's result is awaited as `await` would: a promise it fulfils with is its outcome", async () => {
    // A lazy job object of some driver: its `then` hands over the promise of the work it starts.
    // Typed as a promise, which it is not (a handler written in JavaScript may return one).
    const job = (work: Promise<unknown>) =>
      ({
        // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test hands the dispatcher
        then(fulfil: (value: unknown) => void) {
          fulfil(work);
        },
      }) as unknown as Promise<undefined>;
    let failed = 0;
    const handler = endpoint({
      handlers: {
        track: () => job(Promise.reject(new Error('downstream down'))),
        identify: () => job(Promise.resolve({ status: 503, message: 'later' })),
        page: () => job(Promise.resolve(undefined)),
      },
      log: { ...silentLogger, error: () => failed++ },
    });
    const refused = await inject(handler, { body: trackEvent() });
    assert.equal(refused.status, 500);
    assert.equal(failed, 1);
    const retry = await inject(handler, { body: { type: 'identify', userId: 'u', messageId: 'j-1' } });
    assert.deepEqual([retry.status, retry.json().code, retry.json().message], [503, 'SEG_RETRY', 'later']);
    const done = await inject(handler, { body: { type: 'page', userId: 'u', messageId: 'j-2' } });
    assert.equal(done.status, 200);
  });

  test('a handler still running after the timeout is answered 503 and its signal aborted', async () => {
    let signal: AbortSignal | undefined;
    const slow = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlerTimeoutMs: 30,
      handlers: {
        track: (_event, ctx) => {
          signal = ctx.signal;
          return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        },
      },
    });
    const res = await inject(slow, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_HANDLER_TIMEOUT');
    assert.equal(signal?.aborted, true);
  });

  test('inFlight counts running events and idle() resolves when they finish', async () => {
    const held = gate();
    const entered = countdown(1);
    const track = () => {
      entered.hit();
      return held.opened;
    };
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track } });
    const pending = inject(handler, { body: trackEvent() });
    await entered.reached;
    assert.equal(handler.inFlight, 1);
    let idle = false;
    const waiting = handler.idle().then(() => {
      idle = true;
    });
    // The event is held: however long we wait, idle() cannot have resolved; a turn of the loop shows it.
    await new Promise((r) => setImmediate(r));
    assert.equal(idle, false);
    held.open();
    assert.equal((await pending).status, 200);
    await waiting;
    assert.equal(handler.inFlight, 0);
  });

  test('a success is written at the end of its turn of the loop, its event in flight until then', async () => {
    // Over a socket (an injected request's answer is written at once: nothing to write it with).
    let res: ServerResponse | undefined;
    const seenInTurn: Array<[number, boolean | undefined]> = [];
    let writtenWhenIdle: boolean | undefined;
    const track = () => {
      // Still in the turn that took the event: its answer is decided, not yet written.
      queueMicrotask(() => {
        seenInTurn.push([handler.inFlight, res?.writableEnded]);
        handler.idle().then(() => {
          writtenWhenIdle = res?.writableEnded;
        });
      });
    };
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track } });
    const server = createServer((req, r) => {
      res = r;
      handler(req, r);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const answer = await fetch(`http://127.0.0.1:${port}/`, {
        method: 'POST',
        headers: segmentHeaders(),
        body: JSON.stringify(trackEvent()),
      });
      assert.equal(answer.status, 200);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    assert.deepEqual(seenInTurn, [[1, false]]);
    assert.equal(writtenWhenIdle, true, 'idle() resolves once the answer is written');
  });

  test('idle() in a script with nothing else alive resolves once a handler that never ends is given up on', async () => {
    // The wait for an overdue handler held nothing alive: Node ended the script (exit 13) with idle()
    // pending, and what the script meant to do after it (close its store, say it stopped) never ran.
    const script = `
      import inject from 'light-my-request';
      import { createHandler, silentLogger } from ${JSON.stringify(join(ROOT, 'src', 'index.ts'))};
      const handler = createHandler({
        apiKeys: [${JSON.stringify(API_KEY)}], log: silentLogger, handlerTimeoutMs: 50,
        handlers: { track: () => new Promise(() => {}) },
      });
      const headers = ${JSON.stringify(segmentHeaders())};
      const res = await inject(handler, { method: 'POST', url: '/', headers, payload: ${JSON.stringify(trackEvent())} });
      console.log(res.statusCode);
      handler.drain();
      await handler.idle();
      console.log('idle');`;
    const run = spawnClean(process.execPath, [...TSX, '--input-type=module', '-e', script]);
    try {
      assert.equal(await run.exit, 0, run.stderr());
      assert.equal(run.stdout(), '503\nidle\n');
    } finally {
      run.child.kill();
    }
  });
});
