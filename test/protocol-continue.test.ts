import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createHandler, type EndpointServer, silentLogger } from '../src/index.ts';
import { API_KEY, basic, trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { parseRaw, rawTls } from './helpers-clients.ts';
import { cert, eventRequest, LIMIT, RawConnection, statusLines } from './protocol-harness.ts';

// Expect: 100-continue: a request refused on its headers is told so without 100 Continue, one that may
// proceed gets it once, from the server or from Node when the handler is mounted elsewhere.

describe('Expect: 100-continue', () => {
  let endpoint: EndpointServer;
  let port: number;
  const handled: string[] = [];

  before(async () => {
    ({ endpoint, port } = await listenTls({
      maxBodyBytes: LIMIT,
      handlers: { track: (event) => void handled.push(String(event.messageId)) },
    }));
  });

  after(() => endpoint.close());

  /** The headers of an event request that waits for 100 Continue, and the body it holds back. */
  const expecting = (body: string, headers = '') =>
    eventRequest(body, `Expect: 100-continue\r\n${headers}`).slice(0, -Buffer.byteLength(body));

  test('a bad key is told 401 with no 100 Continue before it, and the connection closed', async () => {
    const body = JSON.stringify(trackEvent());
    const request = expecting(body).replace(basic(API_KEY), basic('not-a-key'));
    const text = await rawTls(port, cert, request);
    assert.deepEqual(statusLines(text), ['401'], text);
    assert.match(parseRaw(text).headers, /connection: close/);
  });

  test('a declared length over the limit is told 413 with no 100 Continue, and closed', async () => {
    const body = 'x'.repeat(LIMIT + 1);
    const text = await rawTls(port, cert, expecting(body));
    assert.deepEqual(statusLines(text), ['413'], text);
    assert.equal(JSON.parse(parseRaw(text).body).code, 'SEG_BODY_TOO_LARGE');
    assert.match(parseRaw(text).headers, /connection: close/);
  });

  test("the Tracking API's own limits are told on the headers too: no 100 Continue, no body read", async () => {
    // /v1/track declaring 33–512 KiB was invited to send it and read whole before its 413, and /v1/batch
    // past 512 KiB was told of maxBodyBytes where its limit is 500 KB (found by a hostile probe).
    const { endpoint: server, port: at } = await listenTls({
      bodyTimeoutMs: 2_000,
      handlers: { track: () => {} },
    });
    try {
      for (const [path, limit] of [
        ['/v1/track', 32 * 1024],
        ['/v1/batch', 500 * 1024],
      ] as const) {
        const request = (bytes: number) => expecting('x'.repeat(bytes)).replace('POST / ', `POST ${path} `);
        // Past the limit and the room a byte-order mark may take before it (not counted: eventsOf).
        const text = await rawTls(at, cert, request(limit + 4), 5_000);
        assert.deepEqual(statusLines(text), ['413'], text);
        assert.match(parseRaw(text).headers, /connection: close/);
        const { code, message } = JSON.parse(parseRaw(text).body);
        assert.equal(code, 'SEG_BODY_TOO_LARGE');
        assert.match(message, new RegExp(`\\b${limit}\\b`));
        // At the limit, the sender is invited to send it.
        const connection = new RawConnection(at);
        try {
          await connection.ready;
          connection.write(request(limit));
          await connection.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
        } finally {
          connection.destroy();
        }
      }
    } finally {
      await server.close();
    }
  });

  test('refusals decided on the headers alone (415, 404) go out without 100 Continue', async () => {
    const body = JSON.stringify(trackEvent());
    const media = expecting(body).replace('application/json', 'text/plain');
    assert.deepEqual(statusLines(await rawTls(port, cert, media)), ['415']);
    const elsewhere = expecting(body).replace('POST / ', 'POST /elsewhere ');
    assert.deepEqual(statusLines(await rawTls(port, cert, elsewhere)), ['404']);
  });

  test('a request that may proceed gets 100 Continue, then after its body the 200, handled once', async () => {
    const event = trackEvent();
    const body = JSON.stringify(event);
    const connection = new RawConnection(port);
    try {
      await connection.ready;
      connection.write(expecting(body));
      await connection.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
      connection.write(body);
      await connection.until(/HTTP\/1\.1 200 /);
      assert.deepEqual(statusLines(connection.text), ['100', '200']);
      assert.equal(handled.filter((id) => id === event.messageId).length, 1);
    } finally {
      connection.destroy();
    }
  });

  test('/metrics asked with Expect, answered later (summed over workers): what follows it is answered', async () => {
    // Node ends the connection after a final answer to a request that expected 100 Continue and never
    // got it; an answer decided later than the requests read behind it (their events taken) would end
    // it under them, unanswered. A request with no body is told 100 Continue: the connection stays.
    const taken: string[] = [];
    const { endpoint: server, port: at } = await listenTls({
      metricsPath: '/metrics',
      handlers: { track: (event) => void taken.push(String(event.messageId)) },
    });
    try {
      const metrics = server.handler.metrics;
      assert.ok(metrics !== undefined);
      metrics.gather = async (own) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return own;
      };
      const event = trackEvent();
      const text = await rawTls(
        at,
        cert,
        `GET /metrics HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nConnection: keep-alive\r\n\r\n` +
          `${eventRequest(JSON.stringify(event), 'Connection: close\r\n')}`,
      );
      assert.deepEqual(statusLines(text), ['100', '200', '200'], text);
      assert.deepEqual(taken, [event.messageId]);
    } finally {
      await server.close();
    }
  });

  test('mounted in a server of its own, Node sends 100 Continue and the handler sends no second', async () => {
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: { track: () => {} },
    });
    const server = createHttpServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const connection = new RawConnection((server.address() as AddressInfo).port, true);
    try {
      const body = JSON.stringify(trackEvent());
      await connection.ready;
      connection.write(expecting(body));
      await connection.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
      connection.write(body);
      await connection.until(/HTTP\/1\.1 200 [\s\S]*\r\n\r\n/);
      assert.deepEqual(statusLines(connection.text), ['100', '200']);
    } finally {
      connection.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
