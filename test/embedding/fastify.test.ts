// The fastify plugin (segment-endpoint/fastify): the contract cases through a fastify server with TLS and
// through fastify's own injector, answered as the standalone server answers them, byte for byte; and
// what the plugin owes fastify: options checked at register, close waits for events, the rest of the app
// untouched, encapsulation (two endpoints in one app).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import segmentEndpoint, {
  type SegmentEndpointDecorator,
  type SegmentEndpointOptions,
} from '../../src/fastify.ts';
import { createHandler, type Handlers, silentLogger } from '../../src/index.ts';
import { basic } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { countdown, waitUntil } from '../helpers-wait.ts';
import {
  type Answer,
  CASE_KEY,
  type ContractCase,
  caseOptions,
  fingerprint,
  mismatches,
  runCases,
  sendTo,
  standaloneAnswers,
} from './cases.ts';

/** A fastify app with the endpoint at `prefix`, and `/status` of its own. */
function appWith(
  options: SegmentEndpointOptions,
  prefix = '/segment',
  settings: FastifyServerOptions & { https?: unknown } = {},
): FastifyInstance {
  const app = Fastify(settings as FastifyServerOptions);
  app.register(segmentEndpoint, { prefix, ...options });
  app.get('/status', async () => ({ app: 'partner' }));
  return app;
}

/** Sends a case through `app.inject()`, below `prefix`. */
const injectInto =
  (app: FastifyInstance, prefix = '/segment') =>
  async (c: ContractCase): Promise<Answer> => {
    const url = `${prefix}${c.path === '/' ? '' : c.path}`;
    const payload = c.body === undefined ? {} : { payload: c.body };
    const res = await app.inject({ method: c.method as 'POST', url, headers: c.headers, ...payload });
    return { status: res.statusCode, body: res.body };
  };

const event = (messageId: string, type = 'track') =>
  JSON.stringify({ type, event: 'Signed Up', userId: 'u1', messageId });
const authed = (key = CASE_KEY) => ({ 'content-type': 'application/json', authorization: basic(key) });

test('through fastify with TLS and through app.inject, every contract case answers as standalone, byte for byte', async () => {
  const standalone = await standaloneAnswers();
  assert.deepEqual(mismatches(standalone), []);

  const seen: string[] = [];
  const app = appWith({ ...caseOptions(seen), log: silentLogger }, '/segment', { https: testCert() });
  const origin = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const overTls = await runCases(sendTo(origin, '/segment'));
    assert.deepEqual(mismatches(overTls), []);
    assert.equal(fingerprint(overTls), fingerprint(standalone));
    assert.deepEqual([...overTls], [...standalone]);
    assert.equal(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');
  } finally {
    await app.close();
  }

  const injected = appWith({ ...caseOptions(), log: silentLogger });
  try {
    const answers = await runCases(injectInto(injected));
    assert.deepEqual(mismatches(answers), []);
    assert.deepEqual([...answers], [...standalone]);
  } finally {
    await injected.close();
  }
});

test('a bad option makes app.ready() reject, naming the option', async () => {
  const bad: Array<[SegmentEndpointOptions, RegExp]> = [
    [{ ...caseOptions(), apiKeys: [] }, /options\.apiKeys/],
    [{ ...caseOptions(), maxBodyBytes: -1 }, /maxBodyBytes/],
    [{ ...caseOptions(), healthPath: 'health' }, /options\.healthPath/],
    [{ handler: {} as never }, /options\.handler must be a handler/],
    [{ handler: createHandler(caseOptions()), apiKeys: ['k'] } as never, /options\.apiKeys to createHandler/],
    [{ ...caseOptions(), maxBodyByte: 5 } as never, /options\.maxBodyByte is not an option: did you mean/],
  ];
  for (const [options, message] of bad) {
    const app = appWith(options);
    await assert.rejects(async () => {
      await app.ready();
    }, message);
    await app.close().catch(() => {});
  }
});

test('an option inherited from a prototype counts through the plugin as it does in createHandler', async () => {
  // A misspelt one is refused, as createHandler refuses it, rather than dropped unsaid by a copy of the
  // own properties alone; a good one takes effect.
  const misspelt = Fastify();
  misspelt.register(segmentEndpoint, Object.assign(Object.create({ maxBodyByte: 5 }), caseOptions()));
  await assert.rejects(async () => {
    await misspelt.ready();
  }, /options\.maxBodyByte is not an option/);
  await misspelt.close().catch(() => {});
  const inherited = Fastify();
  inherited.register(segmentEndpoint, Object.assign(Object.create({ healthPath: '/up' }), caseOptions()));
  await inherited.ready();
  assert.equal((await inherited.inject({ url: '/up' })).statusCode, 200);
  await inherited.close();
});

test("fastify's own register options (prefix, logLevel, logSerializers) are no options of the endpoint's", async () => {
  const app = Fastify();
  app.register(segmentEndpoint, { ...caseOptions(), prefix: '/s', logLevel: 'warn', logSerializers: {} });
  await app.ready();
  assert.equal((await app.inject({ url: '/s/health' })).statusCode, 200);
  await app.close();
});

/** An endpoint whose track handler waits until `release()`: `started` resolves once it waits. */
function slowEndpoint() {
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const started = countdown(1);
  const handler = createHandler({
    ...caseOptions(),
    log: silentLogger,
    handlers: {
      track: async () => {
        started.hit();
        await gate;
      },
    },
  });
  return { handler, started: started.reached, release };
}

test('app.close() waits for an event in flight, which is answered 200', async () => {
  const { handler, started, release } = slowEndpoint();
  const app = appWith({ handler });
  let closing: Promise<void> | undefined;
  try {
    await app.ready();
    const answer = app.inject({ method: 'POST', url: '/segment', headers: authed(), payload: event('w-1') });
    await started;
    let closed = false;
    closing = app.close().then(() => {
      closed = true;
    });
    await waitUntil(
      () => handler.draining,
      () => 'the handler to drain',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(closed, false, 'close waits while the event is in flight');
    assert.equal(handler.inFlight, 1);
    release();
    assert.equal((await answer).statusCode, 200);
    await closing;
    assert.equal(handler.inFlight, 0);
  } finally {
    release();
    await (closing ?? app.close());
  }
});

test('while closing (return503OnClosing: false), a new event gets our 503 and the one in flight its 200', async () => {
  const { handler, started, release } = slowEndpoint();
  const app = appWith({ handler }, '/segment', { https: testCert(), return503OnClosing: false });
  const { port, inFlight } = await listeningWith(app, event('d-1'));
  let late: ReturnType<typeof rawConnection> | undefined;
  let closing: Promise<undefined> | undefined;
  try {
    await started;
    // The late request's first line, so that its connection is busy, not idle (closing the server
    // closes idle connections); its headers and body follow once the endpoint drains.
    const heard = new Promise((resolve) => {
      app.server.once('secureConnection', (socket: TLSSocket) => socket.once('data', resolve));
    });
    late = rawConnection(port);
    const request = post(event('d-2'));
    const head = request.indexOf('\r\n') + 2;
    late.socket.write(request.slice(0, head));
    await heard;
    closing = app.close();
    await waitUntil(
      () => handler.draining,
      () => 'the handler to drain',
    );
    late.socket.write(request.slice(head));
    await late.ended;
    assert.match(late.text(), /^HTTP\/1\.1 503 /);
    assert.match(late.text(), /"code":"SEG_DRAINING"/);
    assert.equal(inFlight.text(), '', 'the event in flight is not answered yet');
    await answeredOnRelease(release, closing, inFlight);
  } finally {
    release();
    inFlight.socket.destroy();
    late?.socket.destroy();
    await (closing ?? app.close());
  }
});

/** The app listening over TLS, and a raw connection to it that has sent `body` as an event. */
async function listeningWith(app: FastifyInstance, body: string) {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const inFlight = rawConnection(port);
  inFlight.socket.write(post(body));
  return { port, inFlight };
}

/** The event in flight let go: close ends, and its connection reads its 200. */
async function answeredOnRelease(
  release: () => void,
  closing: Promise<unknown>,
  inFlight: ReturnType<typeof rawConnection>,
): Promise<void> {
  release();
  await Promise.all([closing, inFlight.ended]);
  assert.match(inFlight.text(), /^HTTP\/1\.1 200 /);
}

/** A raw TLS connection to the app: what it received, and when the server ended it. */
function rawConnection(port: number): { socket: TLSSocket; text(): string; ended: Promise<unknown> } {
  const socket = connect({ host: '127.0.0.1', port, ca: testCert().cert, servername: 'localhost' });
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  return { socket, text: () => received, ended: once(socket, 'end') };
}

/** An event POSTed to /segment as a client writes it. */
function post(body: string): string {
  return (
    'POST /segment HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
    `Authorization: ${basic(CASE_KEY)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

test("the rest of the app is fastify's own: its routes, its parsers and bodyLimit, its 404", async () => {
  const app = appWith({ ...caseOptions(), log: silentLogger }, '/segment', { bodyLimit: 100 });
  app.post('/echo', async (request) => request.body);
  const status = await app.inject({ method: 'GET', url: '/status' });
  assert.deepEqual(status.json(), { app: 'partner' });
  const echo = await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } });
  assert.deepEqual(echo.json(), { a: 1 });
  const badJson = await app.inject({
    method: 'POST',
    url: '/echo',
    headers: { 'content-type': 'application/json' },
    payload: '{"a":',
  });
  assert.equal(badJson.statusCode, 400);
  assert.match(badJson.json().code, /^FST_/);
  const tooLarge = await app.inject({ method: 'POST', url: '/echo', payload: { a: 'x'.repeat(200) } });
  assert.equal(tooLarge.statusCode, 413);
  assert.equal(tooLarge.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE');
  const missing = await app.inject({ method: 'GET', url: '/nope' });
  assert.equal(missing.statusCode, 404);
  assert.match(missing.json().message, /Route GET:\/nope not found/);
  // Under the prefix the endpoint's limits apply, not fastify's bodyLimit (100 bytes).
  const big = JSON.stringify({ type: 'track', event: 'x'.repeat(500), userId: 'u1', messageId: 'big-1' });
  const taken = await app.inject({ method: 'POST', url: '/segment', headers: authed(), payload: big });
  assert.equal(taken.statusCode, 200);
  await app.close();
});

test('two endpoints in one app, at two prefixes with their own keys', async () => {
  const got: string[] = [];
  const options = (key: string) => ({
    apiKeys: [key],
    log: silentLogger,
    handlers: {
      track: (e: { messageId?: unknown }) => {
        got.push(`${key} ${String(e.messageId)}`);
      },
    },
  });
  const app = Fastify();
  app.register(segmentEndpoint, { prefix: '/a', ...options('key-a') });
  // A prefix with a parameter: the endpoint takes what follows its segments.
  app.register(segmentEndpoint, { prefix: '/tenants/:tenant/b', ...options('key-b') });
  const send = (url: string, key: string, id: string) =>
    app.inject({ method: 'POST', url, headers: authed(key), payload: event(id) });
  assert.equal((await send('/a', 'key-a', 'a-1')).statusCode, 200);
  assert.equal((await send('/a/v1/track?x=1', 'key-a', 'a-2')).statusCode, 200);
  const wrong = await send('/a', 'key-b', 'a-3');
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().code, 'SEG_AUTH_UNKNOWN');
  assert.equal((await send('/tenants/acme/b', 'key-b', 'b-1')).statusCode, 200);
  assert.equal((await send('/tenants/acme/b/v1/track', 'key-b', 'b-2')).statusCode, 200);
  assert.equal((await send('/tenants/acme/b', 'key-a', 'b-3')).statusCode, 401);
  assert.deepEqual(got, ['key-a a-1', 'key-a a-2', 'key-b b-1', 'key-b b-2']);
  // The endpoint's own answers below each prefix: health, its 404 and 405.
  assert.deepEqual((await app.inject({ url: '/tenants/acme/b/health' })).json(), { status: 'ok' });
  assert.equal((await app.inject({ url: '/%61/health' })).statusCode, 200, 'a prefix percent-encoded');
  const notFound = await app.inject({ url: '/a/elsewhere' });
  assert.equal(notFound.json().code, 'SEG_NOT_FOUND');
  assert.equal(notFound.json().message, 'Not found: send events to /a');
  const tenant = await app.inject({ url: '/tenants/acme/b/elsewhere' });
  assert.equal(tenant.json().message, 'Not found: send events to /tenants/acme/b');
  const method = await app.inject({ method: 'PUT', url: '/a', payload: '{}' });
  assert.equal(method.statusCode, 405);
  assert.equal(method.headers.allow, 'POST');
  await app.close();
});

test('handlers typed for settings of their own: registered as a handler built with their schema', async () => {
  // The plugin's options take handlers of any settings: typed ones are refused there, and are built with
  // createHandler, which checks their schema's type against theirs, then registered as { handler }.
  const RegionSchema = Type.Object({ region: Type.Union([Type.Literal('us'), Type.Literal('eu')]) });
  const Region = TypeCompiler.Compile(RegionSchema);
  const regions: Array<'us' | 'eu'> = [];
  const handlers: Handlers<Static<typeof RegionSchema>> = {
    track: (_event, ctx) => void regions.push(ctx.settings.region),
  };
  const app = Fastify();
  // @ts-expect-error handlers typed for their own settings, as the plugin's options
  app.register(segmentEndpoint, { prefix: '/nowhere', apiKeys: ['k'], handlers, settingsSchema: Region });
  const handler = createHandler({ apiKeys: ['k'], log: silentLogger, handlers, settingsSchema: Region });
  app.register(segmentEndpoint, { prefix: '/segment', handler });
  const send = (settings: object) =>
    app.inject({
      method: 'POST',
      url: '/segment',
      headers: {
        authorization: basic('k'),
        'x-segment-settings': Buffer.from(JSON.stringify(settings)).toString('base64'),
      },
      payload: { type: 'track', event: 'e', userId: 'u' },
    });
  assert.equal((await send({ region: 'eu' })).statusCode, 200);
  const refused = await send({ region: 'mars' });
  assert.deepEqual([refused.statusCode, refused.json().code], [400, 'SEG_SETTINGS_INVALID']);
  assert.deepEqual(regions, ['eu']);
  await app.close();
});

test('the handler: the segmentEndpoint decorator in its context, or given as options.handler', async () => {
  const handler = createHandler({ ...caseOptions(), log: silentLogger });
  const app = Fastify();
  let decorated: unknown;
  const urls: string[] = [];
  // A request routed to the endpoint carries its context: the decorator is there, not on the root.
  // (A hook reaches the plugins registered after it.)
  app.addHook('onResponse', async (request) => {
    decorated = request.server.getDecorator('segmentEndpoint');
    urls.push(request.url, request.originalUrl);
  });
  app.register(segmentEndpoint, { prefix: '/segment', handler });
  await app.ready();
  assert.equal(app.hasDecorator('segmentEndpoint'), false);
  assert.equal(app.hasPlugin('segment-endpoint'), true);
  assert.equal((await app.inject({ url: '/segment/health?probe=1' })).statusCode, 200);
  assert.deepEqual(
    urls,
    ['/health?probe=1', '/segment/health?probe=1'],
    'url below the prefix, originalUrl as sent',
  );
  const control = decorated as SegmentEndpointDecorator;
  assert.equal(control.inFlight, 0);
  control.setApiKeys(['swapped-key']);
  const keyed = (key: string) =>
    app.inject({
      method: 'POST',
      url: '/segment',
      headers: { authorization: basic(key) },
      payload: { type: 'track', event: 'e', userId: 'u' },
    });
  assert.equal((await keyed('swapped-key')).statusCode, 200);
  assert.equal((await keyed('embed-key')).statusCode, 401);
  await control.loadApiKeys(['loaded-key']);
  assert.equal((await keyed('loaded-key')).statusCode, 200);
  assert.equal((await keyed('swapped-key')).statusCode, 401);
  control.setSignatureSecret('embedded-secret'); // from the next request on, every one must be signed
  assert.equal((await keyed('loaded-key')).json().code, 'SEG_SIGNATURE_MISSING');
  const body = '{"type":"track","event":"e","userId":"u"}';
  const signature = createHmac('sha1', 'embedded-secret').update(body).digest('hex');
  const signed = await app.inject({
    method: 'POST',
    url: '/segment',
    headers: {
      authorization: basic('loaded-key'),
      'content-type': 'application/json',
      'x-signature': signature,
    },
    payload: body,
  });
  assert.equal(signed.statusCode, 200, signed.body);
  control.drain();
  assert.equal(handler.draining, true);
  assert.deepEqual((await app.inject({ url: '/segment/health' })).json(), { status: 'draining' });
  await app.close();
});

/**
 * An app made with `appOptions`, the endpoint under /segment: each URL of `sent` is POSTed a track event
 * (the URL's value its messageId), and each must reach the handler and be answered 200.
 */
async function servedBelowPrefix(
  appOptions: FastifyServerOptions,
  sent: Record<string, string>,
): Promise<void> {
  const got: string[] = [];
  const app = Fastify(appOptions);
  app.register(segmentEndpoint, {
    prefix: '/segment',
    apiKeys: ['key-p'],
    log: silentLogger,
    handlers: { track: (e: { messageId?: unknown }) => void got.push(String(e.messageId)) },
  });
  for (const [url, id] of Object.entries(sent)) {
    const res = await app.inject({ method: 'POST', url, headers: authed('key-p'), payload: event(id) });
    assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  }
  assert.deepEqual(got, Object.values(sent));
  await app.close();
}

test('an app that rewrites URLs (rewriteUrl): the endpoint serves what fastify routed to it, not the URL as sent', async () => {
  // The prefix's segments were cut from the URL as sent: /api/v2/segment/v1/track, rewritten to
  // /segment/v1/track, reached the handler as /v2/segment/v1/track and was a 404, which Segment never retries.
  await servedBelowPrefix(
    { rewriteUrl: (req) => (req.url ?? '/').replace(/^\/api\/v2\/segment/, '/segment') },
    { '/api/v2/segment/v1/track': 'r-1', '/api/v2/segment': 'r-2', '/segment': 'r-3' },
  );
});

test('an app that ignores duplicate slashes: a URL fastify routes to the prefix that way is served below it', async () => {
  // With ignoreDuplicateSlashes, fastify routes //segment/v1/track to the plugin; the prefix's one
  // segment was cut as the empty one before `segment`, and the handler, given /segment/v1/track, answered
  // a 404 ("send events to /"), which Segment never retries.
  await servedBelowPrefix(
    { routerOptions: { ignoreDuplicateSlashes: true } },
    { '//segment/v1/track': 'd-1', '//segment': 'd-2', '/segment': 'd-3' },
  );
});

test("the app's onRequest hooks run before the endpoint takes a request over, those added after it too", async () => {
  // A guard added after the plugin (fastify-plugin's skip-override, or a root addHook) runs for the
  // plugin's routes too, after the plugin's own hooks: an onRequest takeover of the plugin's context
  // hijacked the request first, and fastify ran no hook after it, so the guard was skipped.
  const handled: string[] = [];
  const app = Fastify();
  app.register(segmentEndpoint, {
    prefix: '/segment',
    apiKeys: [CASE_KEY],
    handlers: { track: (e) => void handled.push(String(e.messageId)) },
    log: silentLogger,
  });
  const guard = async (root: FastifyInstance) => {
    root.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-from'] !== 'proxy') return reply.code(403).send({ denied: true });
    });
  };
  Object.assign(guard, { [Symbol.for('skip-override')]: true });
  app.register(guard);
  try {
    const denied = await app.inject({
      method: 'POST',
      url: '/segment',
      headers: authed(),
      payload: event('g-1'),
    });
    assert.equal(denied.statusCode, 403);
    assert.deepEqual(handled, []);
    const headers = { ...authed(), 'x-from': 'proxy' };
    const letIn = await app.inject({ method: 'POST', url: '/segment', headers, payload: event('g-2') });
    assert.equal(letIn.statusCode, 200, letIn.body);
    assert.deepEqual(handled, ['g-2']);
  } finally {
    await app.close();
  }
});

test('app.close() with forceCloseConnections: the events in flight are answered before connections close', async () => {
  // fastify closes every connection right after the preClose hooks: waiting for the events in flight
  // only in onClose left their senders with a reset, while their handlers ran to the end (handled, not
  // answered: a retry ran them again after a restart).
  const { handler, started, release } = slowEndpoint();
  const app = appWith({ handler }, '/segment', { https: testCert(), forceCloseConnections: true });
  const { inFlight } = await listeningWith(app, event('f-1'));
  let closing: Promise<undefined> | undefined;
  try {
    await started;
    closing = app.close();
    // fastify's preClose hooks run on a later turn: the endpoint drains from them.
    await waitUntil(
      () => handler.draining,
      () => 'draining from the preClose hook',
    );
    await answeredOnRelease(release, closing, inFlight);
  } finally {
    release();
    inFlight.socket.destroy();
    await (closing ?? app.close());
  }
});

test('the handler given where the plugin or its options go says so, not a TypeError from deep inside', async () => {
  // fastify calls options that are a function with the app (avvio), and a plugin with (app, options,
  // done): the handler read res.headersSent of undefined, and the process died of a message that named
  // neither the handler nor the mistake.
  const handler = createHandler({ ...caseOptions(), log: silentLogger });
  const app = Fastify();
  const said = /takes \(req, res\).*register segment-endpoint\/fastify with \{ handler \}/;
  assert.throws(() => (handler as unknown as (app: unknown) => void)(app), {
    name: 'TypeError',
    message: said,
  });
  assert.throws(() => (handler as unknown as (...args: unknown[]) => void)(app, {}, () => {}), {
    name: 'TypeError',
    message: said,
  });
  await app.close();
});

test("the register option logLevel holds for the endpoint's own lines, as for fastify's on its routes", async () => {
  // logLevel was taken for fastify's alone: at 'error', the endpoint's access lines (info) still came.
  const lines: string[] = [];
  const stream = { write: (line: string) => void lines.push(line) };
  const app = Fastify({ logger: { level: 'info', stream } });
  app.register(segmentEndpoint, { ...caseOptions(), prefix: '/quiet', logLevel: 'error', accessLog: true });
  app.register(segmentEndpoint, { ...caseOptions(), prefix: '/loud', accessLog: true });
  try {
    for (const prefix of ['/quiet', '/loud']) {
      const res = await app.inject({
        method: 'POST',
        url: prefix,
        headers: authed(),
        payload: event(prefix),
      });
      assert.equal(res.statusCode, 200, res.body);
    }
    const events = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'event');
    assert.equal(events.length, 1, lines.join(''));
  } finally {
    await app.close();
  }
});

test("the app's hooks see the URL as fastify routed it, not the target below the prefix", async () => {
  // The cut URL stayed in request.raw.url: an app's onResponse (metrics, audit) filed every event under
  // /v1/track or /, beside its own routes there.
  const app = appWith({ ...caseOptions(), log: silentLogger });
  const seen: string[] = [];
  app.addHook('onResponse', async (request) => void seen.push(request.url));
  try {
    for (const url of ['/segment/v1/track?x=1', '/segment']) {
      const res = await app.inject({ method: 'POST', url, headers: authed(), payload: event(url) });
      assert.equal(res.statusCode, 200, res.body);
    }
    assert.deepEqual(seen, ['/segment/v1/track?x=1', '/segment']);
  } finally {
    await app.close();
  }
});
