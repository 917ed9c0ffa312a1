import assert from 'node:assert/strict';
import type { Agent } from 'node:https';
import { after, before, describe, test } from 'node:test';
import {
  createServer,
  type EndpointServer,
  ForbiddenError,
  RetryError,
  silentLogger,
  ValidationError,
} from '../src/index.ts';
import { API_KEY, basic, encodeSettings, segmentHeaders, trackEvent } from './helpers.ts';
import { listenTls, testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent, parseRaw, rawTls } from './helpers-clients.ts';

// The contract's answer table, row by row, over real TLS and keep-alive, as Segment would meet it.

const LIMIT = 4096;

describe('over TLS', () => {
  let endpoint: EndpointServer;
  let url: string;
  let port: number;
  let agent: Agent;
  const { cert } = testCert();

  before(async () => {
    ({ endpoint, url, port } = await listenTls({
      apiKeys: [API_KEY, { key: 'identify-only', types: ['identify'] }],
      maxBodyBytes: LIMIT,
      bodyTimeoutMs: 300,
      handlerTimeoutMs: 300,
      handlers: {
        identify: () => {},
        // The event name picks the outcome, so every row of the table has a case that produces it.
        track: async (event, ctx) => {
          switch (event.event) {
            case 'later':
              return { status: 202 };
            case 'invalid':
              throw new ValidationError('Missing email address');
            case 'forbidden':
              throw new ForbiddenError('Plan does not include tracks');
            case 'retry':
              throw new RetryError('Downstream is down');
            case 'crash':
              throw new Error('db password=hunter2 at /srv/app.js:10');
            case 'slow':
              await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
              return;
            default:
              return;
          }
        },
      },
    }));
    agent = keepAliveAgent(cert);
  });

  after(async () => {
    agent.destroy();
    await endpoint.close();
  });

  const post = (body: unknown, headers = segmentHeaders()) => httpsCall(agent, url, { body, headers });

  test('listen() names the https URL', () => {
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  });

  test('keep-alive: several events travel on one connection', async () => {
    const ports = new Set<number | undefined>();
    for (let i = 0; i < 5; i++) {
      const res = await post(trackEvent());
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection, 'keep-alive');
      ports.add(res.localPort);
    }
    // Errors keep the connection too: a 400 on a small body is no reason to reconnect.
    assert.equal((await post({ type: 'track', userId: 'u' })).status, 400);
    ports.add((await post(trackEvent())).localPort);
    assert.equal(ports.size, 1);
  });

  const rows: Array<
    [number, string, () => Promise<{ status: number; headers: Record<string, unknown>; body: string }>]
  > = [
    [200, 'accepted and processed', () => post(trackEvent())],
    [202, 'accepted, processing later', () => post(trackEvent({ event: 'later' }))],
    [400, 'malformed JSON', () => post('{"type":"track",')],
    [400, 'not an object', () => post('[1,2,3]')],
    [400, 'a required field missing', () => post({ type: 'track', userId: 'u1' })],
    [
      400,
      'a bad settings header',
      () => post(trackEvent(), { ...segmentHeaders(), 'x-segment-settings': '%%%' }),
    ],
    [400, 'the handler says invalid', () => post(trackEvent({ event: 'invalid' }))],
    [401, 'no API key', () => post(trackEvent(), { 'content-type': 'application/json' })],
    [
      401,
      'a malformed Authorization header',
      () => post(trackEvent(), { ...segmentHeaders(), authorization: 'Basic ***' }),
    ],
    [401, 'an unknown key', () => post(trackEvent(), segmentHeaders('not-a-key'))],
    [403, 'a key not permitted this type', () => post(trackEvent(), segmentHeaders('identify-only'))],
    [403, 'the handler says forbidden', () => post(trackEvent({ event: 'forbidden' }))],
    [404, 'another path', () => httpsCall(agent, `${url}elsewhere`, { body: trackEvent() })],
    [405, 'another method', () => httpsCall(agent, url, { method: 'GET' })],
    [413, 'a body over the limit', () => post(trackEvent({ pad: 'x'.repeat(LIMIT) }))],
    [
      415,
      'a non-JSON content type',
      () => post(trackEvent(), { ...segmentHeaders(), 'content-type': 'text/plain' }),
    ],
    [500, 'our internal error', () => post(trackEvent({ event: 'crash' }))],
    [501, 'a type not in the spec', () => post({ type: 'purchase', userId: 'u1' })],
    [501, 'a spec type without a handler', () => post({ type: 'page', userId: 'u1' })],
    [503, 'the handler asks for a retry', () => post(trackEvent({ event: 'retry' }))],
    [503, 'the handler ran past its timeout', () => post(trackEvent({ event: 'slow' }))],
  ];

  for (const [status, when, send] of rows) {
    test(`${status}: ${when}`, async () => {
      const res = await send();
      assert.equal(res.status, status, res.body);
      if (status === 200 || status === 202) {
        assert.equal(res.body, '');
        return;
      }
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const body = JSON.parse(res.body) as { message: string; code: string };
      assert.equal(typeof body.message, 'string');
      assert.ok(body.message.length > 0);
      assert.match(body.code, /^[A-Z0-9_]+$/);
      if (status === 401) assert.match(String(res.headers['www-authenticate']), /^Basic realm=/);
      if (status === 405) assert.equal(res.headers.allow, 'POST');
      if (status === 500) assert.doesNotMatch(res.body, /hunter2|\/srv|app\.js/);
    });
  }

  test('411: a body with neither Content-Length nor chunked', async () => {
    // Connection: close, so that the answer is all there is once the server closes: no wait for it.
    const request = `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n`;
    const res = parseRaw(await rawTls(port, cert, request));
    assert.equal(res.status, 411);
    assert.equal(JSON.parse(res.body).code, 'SEG_LENGTH_REQUIRED');
  });

  test('408: a body that never finishes, and the connection is closed', async () => {
    const request =
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"type":"track",';
    const res = parseRaw(await rawTls(port, cert, request));
    assert.equal(res.status, 408);
    assert.match(res.headers, /connection: close/);
    assert.equal(JSON.parse(res.body).code, 'SEG_BODY_TIMEOUT');
  });

  test('413 mid-stream: a chunked body is cut off at the first byte over the limit', async () => {
    const chunk = 'x'.repeat(1024);
    let request =
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    for (let i = 0; i < 5; i++) request += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    request += '0\r\n\r\n';
    const res = parseRaw(await rawTls(port, cert, request));
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).code, 'SEG_BODY_TOO_LARGE');
  });

  test('a chunked body within the limit is accepted', async () => {
    const body = JSON.stringify(trackEvent());
    const request =
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      `${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`;
    assert.equal(parseRaw(await rawTls(port, cert, request)).status, 200);
  });

  test('settings reach the handler over the wire', async () => {
    const res = await post(trackEvent(), {
      ...segmentHeaders(),
      'x-segment-settings': encodeSettings({ region: 'eu' }),
    });
    assert.equal(res.status, 200);
  });

  test('health answers without auth', async () => {
    const res = await httpsCall(agent, `${url}health`, { method: 'GET', headers: {} });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });
});

describe('server lifecycle', () => {
  const { cert } = testCert();

  test('close() lets an event in flight finish with 200, then stops', async () => {
    let release = () => {};
    let started = () => {};
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const { endpoint, url } = await listenTls({
      handlers: {
        track: () =>
          new Promise<void>((resolve) => {
            release = resolve;
            started();
          }),
      },
    });
    const agent = keepAliveAgent(cert);
    const inFlight = httpsCall(agent, url, { body: trackEvent() });
    await running;
    let closed = false;
    const closing = endpoint.close().then(() => {
      closed = true;
    });
    assert.equal(endpoint.handler.draining, true);
    // close() waits for the event, however long it runs: a turn of the event loop later it is still open.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, false);
    release();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    await closing;
    assert.equal(endpoint.server.listening, false);
    agent.destroy();
  });

  test('plain HTTP only when asked; TLS options are required otherwise', async () => {
    assert.throws(() => createServer({ apiKeys: [API_KEY], handlers: {}, log: silentLogger }), TypeError);
    const endpoint = createServer({
      http: true,
      host: '127.0.0.1',
      port: 0,
      apiKeys: [API_KEY],
      handlers: { track: () => {} },
      log: silentLogger,
    });
    const url = await endpoint.listen();
    assert.match(url, /^http:\/\//);
    const res = await fetch(url, {
      method: 'POST',
      headers: segmentHeaders(),
      body: JSON.stringify(trackEvent()),
    });
    assert.equal(res.status, 200);
    await endpoint.close();
  });

  test('bad server options are a RangeError naming the option', () => {
    assert.throws(
      () => createServer({ http: true, port: 70000, apiKeys: [API_KEY], handlers: {}, log: silentLogger }),
      /options\.port/,
    );
    assert.throws(
      () =>
        createServer({
          http: true,
          headersTimeoutMs: 5000,
          requestTimeoutMs: 1000,
          apiKeys: [API_KEY],
          handlers: {},
          log: silentLogger,
        }),
      RangeError,
    );
  });
});
