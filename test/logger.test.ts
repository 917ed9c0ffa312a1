import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { pino } from 'pino';
import { createHandler, jsonLogger, silentLogger } from '../src/index.ts';
import { drops, type LogLevel, withFields } from '../src/log.ts';
import { LogBudget } from '../src/log-budget.ts';
import { checkLogger } from '../src/option-checks.ts';
import { API_KEY, basic, segmentHeaders, trackEvent } from './helpers.ts';
import { listenTls, testCert } from './helpers-cert.ts';
import { rawTls } from './helpers-clients.ts';
import { inject } from './helpers-inject.ts';
import { gate, waitUntil } from './helpers-wait.ts';

/** A stream that keeps every line written to it. */
function lines(): { stream: Writable; read: () => Array<Record<string, unknown>> } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  const read = () =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  return { stream, read };
}

test('a pino logger can be passed as is: access log and handler failures land in it, never the key', async () => {
  const { stream, read } = lines();
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: pino({ level: 'info' }, stream),
    accessLog: true,
    handlers: {
      track: (event) => {
        if (event.event === 'Boom') throw new Error('database is down');
      },
    },
  });
  await inject(handler, { body: trackEvent() });
  await inject(handler, { body: trackEvent({ event: 'Boom' }) });
  await new Promise((r) => setImmediate(r));
  const logged = read();
  const access = logged.filter((l) => l.msg === 'event');
  assert.deepEqual(
    access.map((l) => l.status),
    [200, 500],
  );
  const failure = logged.find((l) => l.msg === 'event handler failed') as { err: { message: string } };
  assert.equal(failure.err.message, 'database is down');
  assert.doesNotMatch(JSON.stringify(logged), new RegExp(API_KEY));
});

test('the access log has a line for an event request turned away before it is read (shed, draining, a method), as /metrics counts it', async () => {
  const written: string[] = [];
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let call = () => {};
  const called = new Promise<void>((resolve) => (call = resolve));
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: jsonLogger('info', (line) => written.push(line)),
    accessLog: true,
    maxInFlight: 1,
    handlers: {
      track: () => {
        call();
        return held;
      },
    },
  });
  const slow = inject(handler, { body: trackEvent() });
  await called;
  const shed = await inject(handler, { body: trackEvent() });
  assert.equal(shed.status, 503);
  release();
  await slow;
  assert.equal((await inject(handler, { method: 'PUT', body: trackEvent() })).status, 405);
  const expect = { ...segmentHeaders(), expect: 'something-else' };
  assert.equal((await inject(handler, { headers: expect, body: trackEvent() })).status, 417);
  // Not an event path: its 404 is no event request.
  assert.equal((await inject(handler, { url: '/elsewhere', body: trackEvent() })).status, 404);
  handler.drain();
  assert.equal((await inject(handler, { body: trackEvent() })).status, 503);
  const access = written.map((line) => JSON.parse(line)).filter((l) => l.msg === 'event');
  // Exactly the lines an operator needs under overload were missing: only the slow event's was written.
  assert.deepEqual(
    access.map((l) => [l.status, l.code]),
    [
      [503, 'SEG_OVERLOADED'],
      [200, undefined],
      [405, 'SEG_METHOD_NOT_ALLOWED'],
      [417, 'SEG_EXPECTATION_FAILED'],
      [503, 'SEG_DRAINING'],
    ],
  );
  assert.equal(access[0].path, '/');
});

test('the built-in logger writes the same shape of line, at or above its level', () => {
  const written: string[] = [];
  const log = jsonLogger('warn', (line) => written.push(line));
  log.info({ a: 1 }, 'dropped');
  log.error({ err: new Error('kept') }, 'failure');
  assert.equal(written.length, 1);
  const line = JSON.parse(written[0] as string);
  assert.equal(line.level, 50);
  assert.equal(line.msg, 'failure');
  assert.equal(line.err.message, 'kept');
});

test('the built-in logger refuses a level it does not know, rather than write every level', () => {
  // 'fatal' and 'trace' are pino's; 'WARN' comes from an environment variable as typed. Each wrote debug
  // lines and up: an operator who asked for less got more.
  for (const level of ['fatal', 'trace', 'WARN', 'nonsense', '', 'toString', 20]) {
    assert.throws(
      () => jsonLogger(level as LogLevel, () => {}),
      (err: Error) => err instanceof RangeError && /debug, info, warn, error or silent/.test(err.message),
      String(level),
    );
  }
  assert.doesNotThrow(() => jsonLogger(undefined, () => {}));
});

test("the built-in logger writes an error's cause, a few deep: why a generic 500 happened", () => {
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  const root = Object.assign(new Error('the disk is full'), { code: 'ENOSPC' });
  log.error({ err: new Error('Internal error', { cause: new Error('write failed', { cause: root }) }) }, 'x');
  const looped = new Error('itself');
  looped.cause = looped;
  log.error({ err: looped }, 'y');
  const first = JSON.parse(written[0] as string).err;
  assert.equal(first.cause.message, 'write failed');
  assert.equal(first.cause.cause.message, 'the disk is full');
  assert.equal(first.cause.cause.code, 'ENOSPC');
  let depth = 0;
  for (let e = JSON.parse(written[1] as string).err; e.cause !== undefined; e = e.cause) depth++;
  assert.equal(depth, 3);
});

test('the built-in logger writes a line for whatever it is given, and never throws', () => {
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  const circular: Record<string, unknown> = { name: 'loop' };
  circular.self = circular;
  const unreadable = new Error('x');
  Object.defineProperty(unreadable, 'message', {
    get() {
      throw unreadable;
    },
  });
  const hostile = new Proxy(
    {},
    {
      ownKeys() {
        throw new Error('no keys');
      },
    },
  );
  const given: object[] = [
    { circular },
    { amount: 10n },
    { err: unreadable },
    unreadable,
    {
      toJSON: () => {
        throw new Error('no JSON');
      },
    },
    hostile,
  ];
  for (const fields of given) {
    assert.doesNotThrow(() => log.error(fields, 'event handler failed'));
  }
  assert.equal(written.length, given.length);
  for (const line of written) {
    const entry = JSON.parse(line);
    assert.equal(entry.level, 50);
    assert.equal(entry.msg, 'event handler failed');
  }
  assert.equal(JSON.parse(written[1] as string).amount, '10');
  assert.equal(JSON.parse(written[0] as string).circular.self, '[Circular]');
});

test('an object met twice but not inside itself is written both times; only a cycle is "[Circular]"', () => {
  // The fallback (a BigInt makes plain JSON fail) marked every object met again, so a value shared by two
  // fields (the same settings in an event and in its context) lost its second copy in the log.
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  const shared = { plan: 'pro' };
  const loop: Record<string, unknown> = { name: 'loop' };
  loop.self = loop;
  log.info({ amount: 1n, first: shared, second: shared, list: [shared, shared], loop }, 'shared');
  const entry = JSON.parse(written[0] as string);
  assert.deepEqual(entry.first, { plan: 'pro' });
  assert.deepEqual(entry.second, { plan: 'pro' });
  assert.deepEqual(entry.list, [{ plan: 'pro' }, { plan: 'pro' }]);
  assert.deepEqual(entry.loop, { name: 'loop', self: '[Circular]' });
});

test('a handler that throws what no logger can read, or a logger that throws, is still answered 500', async () => {
  const unreadable = new Error('x');
  Object.defineProperty(unreadable, 'message', {
    get() {
      throw unreadable;
    },
  });
  const throwing = () => {
    throw new Error('the log is down');
  };
  const logs = [
    jsonLogger('info', () => {}),
    { error: throwing, warn: throwing, info: throwing, debug: throwing },
  ];
  for (const log of logs) {
    const handler = createHandler({
      apiKeys: [API_KEY],
      log,
      handlers: {
        track: () => {
          throw unreadable;
        },
        identify: async () => {
          throw unreadable;
        },
      },
    });
    for (const body of [trackEvent(), { type: 'identify', userId: 'u', messageId: 'i-1' }]) {
      const res = await inject(handler, { body });
      assert.equal(res.status, 500);
      assert.equal(res.json().code, 'SEG_INTERNAL');
    }
    assert.equal(handler.inFlight, 0);
  }
});

test("a batch a handler fails on writes a source's share of failure lines, then says lines are held, then their count", async () => {
  // One client whose every event a handler fails on (a batch of 2,500) wrote a line each: ~2 MB of log
  // for 7 KB sent, at error level, which no operator can turn off without losing the real errors.
  const written: string[] = [];
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: jsonLogger('info', (line) => written.push(line)),
    maxBodyBytes: 1024 * 1024,
    handlers: {
      track: () => {
        throw new Error('the partner code fails on this event');
      },
    },
  });
  const batch = Array.from({ length: 2_500 }, (_, i) => ({ type: 'track', event: 'e', userId: `u${i}` }));
  const res = await inject(handler, { url: '/v1/batch', headers: segmentHeaders(), body: { batch } });
  assert.equal(res.status, 503, res.body);
  const entries = () => written.map((line) => JSON.parse(line));
  const failures = entries().filter((line) => line.msg === 'event handler failed').length;
  // One source's burst, and what came back while the batch was taken (2 a second).
  assert.ok(failures >= 10 && failures <= 12, String(failures));
  assert.equal(entries().filter((line) => /are being held back/.test(line.msg)).length, 1);
  await new Promise((later) => setTimeout(later, 1_200));
  const counted = entries().filter((line) => line.held !== undefined);
  assert.equal(counted.length, 1);
  assert.equal(counted[0].held, 2_500 - failures);
  assert.deepEqual(counted[0].statuses, [500]);
  assert.equal(counted[0].sources.length, 1);
});

test("the failure budget: one source's flood leaves others room; 50 at once in all; the count says whose", () => {
  const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const log = {
    ...silentLogger,
    error: (fields: object, msg?: string) => lines.push({ fields: { ...fields }, msg: msg ?? '' }),
  };
  let now = 0;
  const later: Array<() => void> = [];
  const budget = new LogBudget(log, { now: () => now, later: (run) => later.push(run) });
  const fail = (source: string, status = 500) =>
    budget.error({ err: new Error(source), source, status }, 'event handler failed');
  for (let i = 0; i < 100; i++) fail('flooding');
  for (let i = 0; i < 3; i++) fail('other', 503);
  const written = (source: string) => lines.filter(({ fields }) => fields.source === source).length;
  assert.equal(written('flooding'), 10);
  assert.equal(written('other'), 3, "the other source's lines are written");
  assert.equal(lines.filter(({ msg }) => /are being held back/.test(msg)).length, 1);
  for (let s = 0; s < 10; s++) for (let i = 0; i < 10; i++) fail(`s${s}`);
  assert.equal(lines.filter(({ msg }) => msg === 'event handler failed').length, 50, '50 at once in all');
  assert.equal(later.length, 1);
  later[0]?.();
  const count = lines.at(-1);
  assert.equal(count?.msg, '153 more lines of "event handler failed" were not written');
  assert.equal(count?.fields.held, 153);
  assert.deepEqual(count?.fields.statuses, [500]);
  assert.equal((count?.fields.sources as string[] | undefined)?.[0], 'flooding');
  assert.equal(count?.fields.sourcesHeld, 8, 'flooding, the one the 50 cut short, and the six after it');
  now += 1_000; // 10 lines a second come back, 2 of them to a source
  const before = lines.length;
  for (let i = 0; i < 5; i++) fail('flooding');
  assert.equal(lines.length - before, 2 + 1, "two of the source's lines, and the note that lines are held");
});

test("the built-in logger keeps a line under 16 KiB: an error's message and stack cut to 4 KiB each, else the line's start", () => {
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  log.error({ err: new Error('x'.repeat(200_000)), source: 'abc', status: 500 }, 'event handler failed');
  const kept = JSON.parse(written[0] as string);
  assert.ok(Buffer.byteLength(written[0] as string) < 16 * 1024, String((written[0] as string).length));
  assert.equal(kept.source, 'abc', 'the fields kept');
  assert.match(kept.err.message, /^x{4096}… \(195904 more characters\)$/);
  // Past the limit in bytes, not characters: 6,000 characters of 3 bytes each. Its small fields are kept.
  log.error(
    { err: new Error('€'.repeat(4_000)), source: 'abc', status: 500, note: '日'.repeat(6_000) },
    '\u0001'.repeat(5_000),
  );
  const line = written[1] as string;
  assert.ok(Buffer.byteLength(line) <= 16 * 1024, String(Buffer.byteLength(line)));
  const cut = JSON.parse(line);
  assert.equal(cut.level, 50);
  assert.equal(cut.msg.length, 1024);
  assert.match(cut.cut, /^\d+ bytes, over the 16384 a line may hold/);
  assert.match(cut.head, /^\{"level":50,"time":\d+,"err":\{"type":"Error","message":"€€/);
  assert.equal(cut.source, 'abc');
  assert.equal(cut.status, 500);
  assert.deepEqual(cut.err, { type: 'Error' });
  // Whatever the fields: never over the limit, and a BigInt written as its digits, as in any line.
  const many = Object.fromEntries(Array.from({ length: 3_000 }, (_, i) => [`field${i}`, i]));
  const hostile = [many, { n: 10n, status: 503, big: 'x'.repeat(20_000) }, { ['k'.repeat(100_000)]: 1 }];
  for (const fields of hostile) log.error(fields, '\u0001'.repeat(5_000));
  for (const written_ of written.slice(2)) {
    assert.ok(Buffer.byteLength(written_) <= 16 * 1024, String(Buffer.byteLength(written_)));
    assert.equal(JSON.parse(written_).level, 50);
  }
  assert.equal(JSON.parse(written[3] as string).n, '10');
  assert.equal(JSON.parse(written[3] as string).status, 503);
});

test('a duplicate event is a debug line with its key fingerprint, at debug level only', async () => {
  const body = trackEvent({ messageId: 'dup-1' });
  const logged = async (level: 'debug' | 'info') => {
    const written: string[] = [];
    const log = jsonLogger(level, (l) => written.push(l));
    const handler = createHandler({ apiKeys: [API_KEY], log, handlers: { track: () => {} } });
    for (let i = 0; i < 2; i++) assert.equal((await inject(handler, { body })).status, 200);
    return written.map((l) => JSON.parse(l)).filter((l) => l.msg === 'duplicate event');
  };
  const [line, ...more] = await logged('debug');
  assert.equal(more.length, 0);
  assert.equal(line?.messageId, 'dup-1');
  assert.match(String(line?.source), /^[0-9a-f]{12}$/);
  assert.deepEqual(await logged('info'), []);
});

test("a line is skipped unasked only for a level one of the endpoint's own loggers drops", () => {
  assert.equal(drops(jsonLogger('info'), 'debug'), true);
  assert.equal(drops(jsonLogger('debug'), 'debug'), false);
  assert.equal(drops(jsonLogger('silent'), 'error'), true);
  assert.equal(drops(silentLogger, 'warn'), true);
  // A worker's (its number in every line), also as the endpoint guards it, still drops what it dropped.
  const worker = (level: 'debug' | 'info') => checkLogger(withFields(jsonLogger(level), { worker: 1 }));
  assert.equal(drops(worker('info'), 'debug'), true);
  assert.equal(drops(worker('debug'), 'debug'), false);
  assert.equal(drops(worker('info'), 'info'), false);
  // A host's logger decides for itself, even one built of the endpoint's own methods.
  assert.equal(drops(pino({ level: 'silent' }), 'debug'), false);
  assert.equal(drops({ ...silentLogger }, 'debug'), false);
});

test("a host's logger that switches a level on after the handler is made gets its lines", async () => {
  // Built of the silent logger's methods, then given its own: each line asks it anew.
  const host = { ...silentLogger };
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: host,
    handlers: {
      track: (event) => {
        if (event.event === 'Boom') throw new Error('database is down');
      },
    },
  });
  const lines: string[] = [];
  host.error = (_obj, msg) => lines.push(`error ${msg}`);
  host.debug = (_obj, msg) => lines.push(`debug ${msg}`);
  assert.equal((await inject(handler, { body: trackEvent({ event: 'Boom' }) })).status, 500);
  const body = trackEvent({ messageId: 'dup-2' });
  for (let i = 0; i < 2; i++) assert.equal((await inject(handler, { body })).status, 200);
  assert.deepEqual(lines, ['error event handler failed', 'debug duplicate event']);
});

test("the endpoint's own loggers can be mocked in a host's tests, after the handler is made too", async (t) => {
  // They were frozen for a while: node:test's mock.method and jest.spyOn threw on them.
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    handlers: {
      track: () => {
        throw new Error('database is down');
      },
    },
  });
  const error = t.mock.method(silentLogger, 'error');
  assert.equal((await inject(handler, { body: trackEvent() })).status, 500);
  assert.equal(error.mock.callCount(), 1);
  const log = jsonLogger('info', () => {});
  const dedup = createHandler({ apiKeys: [API_KEY], log, handlers: { track: () => {} } });
  const debug = t.mock.method(log, 'debug');
  const body = trackEvent({ messageId: 'mocked' });
  for (let i = 0; i < 2; i++) assert.equal((await inject(dedup, { body })).status, 200);
  assert.equal(debug.mock.callCount(), 1, 'the duplicate line, asked of the mock');
});

test("the access log has a line for a request Node's parser refuses before it is one: a smuggling attempt is seen", async () => {
  // Content-Length beside Transfer-Encoding, or two Content-Lengths, were answered 400 and left no line:
  // an operator reading the access log saw nothing of them.
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  const { endpoint, port } = await listenTls({ log, accessLog: true, handlers: { track: () => {} } });
  try {
    const body = JSON.stringify(trackEvent());
    const head = `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\nContent-Type: application/json\r\n`;
    for (const framing of [
      `Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`,
      `Content-Length: ${body.length}\r\nContent-Length: ${body.length + 1}\r\n`,
    ]) {
      const text = await rawTls(port, testCert().cert, `${head}${framing}\r\n${body}`);
      assert.match(text, /^HTTP\/1\.1 400 /);
    }
    const refused = written.map((line) => JSON.parse(line)).filter((l) => l.msg === 'malformed request');
    assert.deepEqual(
      refused.map((l) => [l.status, l.code]),
      [
        [400, 'SEG_BAD_REQUEST'],
        [400, 'SEG_LENGTH_INVALID'], // two Content-Lengths: the catalogue's code for a bad one
      ],
    );
    for (const line of refused) assert.match(String(line.parser), /^HPE_/);
  } finally {
    await endpoint.close();
  }
});

test("the access log says when a refusal of Node's parser was not sent, and calls headers that came too late a timeout", async () => {
  // An operator reads the status as what the sender got: none, when the request was answered already
  // and the connection only closed. Headers that never ended are no malformed request.
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  const { endpoint, port } = await listenTls({
    log,
    accessLog: true,
    headersTimeoutMs: 1_000,
    handlers: { track: () => {} },
  });
  const lines = () => written.map((line) => JSON.parse(line)).filter((l) => l.parser !== undefined);
  try {
    // /health answered while its body still comes; then a chunk that is no chunk.
    const socket = connect({ host: '127.0.0.1', port, ca: testCert().cert, servername: 'localhost' });
    socket.on('error', () => {});
    socket.write(
      'GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n',
    );
    const answer = await new Promise<string>((resolve) =>
      socket.once('data', (c: Buffer) => resolve(String(c))),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
    socket.write('zz\r\n');
    await new Promise((resolve) => socket.on('close', resolve));
    const [late] = lines();
    assert.equal(late?.msg, 'malformed request');
    assert.equal(late?.answered, false);
    assert.equal(late?.status, undefined);
    // Headers that never end.
    const slow = await rawTls(port, testCert().cert, 'POST / HTTP/1.1\r\nHost: localhost\r\n');
    assert.match(slow, /^HTTP\/1\.1 408 /);
    const timedOut = lines().at(-1);
    assert.deepEqual([timedOut?.msg, timedOut?.status, timedOut?.answered], ['request timed out', 408, true]);
  } finally {
    await endpoint.close();
  }
});

test("a refusal of Node's parser waiting behind an answer the sender reset is still logged, as not sent", async () => {
  // The line waited for that answer's 'finish', which a reset connection never emits.
  const written: string[] = [];
  const log = jsonLogger('info', (line) => written.push(line));
  // Held until the line is there, not for 1 s against a reset 300 ms in: on a loaded machine the request
  // may not be read by then, or the answer written before the reset.
  const held = gate();
  let handling = false;
  const track = () => {
    handling = true;
    return held.opened;
  };
  const { endpoint, port } = await listenTls({ log, accessLog: true, handlers: { track } });
  try {
    const body = JSON.stringify(trackEvent());
    const head = `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const raw = netConnect(port, '127.0.0.1');
    const socket = connect({ socket: raw, ca: testCert().cert, servername: 'localhost' });
    socket.on('error', () => {});
    socket.write(`${head}${body}GARBAGE\r\n\r\n`);
    // The event is handled once its body is read, which Node's parser went past, to the garbage, in the
    // same read (one TLS record): its refusal waits behind the event's answer.
    await waitUntil(
      () => handling,
      () => 'the event handled',
    );
    raw.resetAndDestroy();
    const refused = () => written.map((line) => JSON.parse(line)).find((l) => l.msg === 'malformed request');
    await waitUntil(
      () => refused() !== undefined,
      () => `the refusal's line: ${written.join('')}`,
    );
    assert.deepEqual([refused()?.answered, refused()?.status], [false, undefined]);
  } finally {
    held.open();
    await endpoint.close();
  }
});
