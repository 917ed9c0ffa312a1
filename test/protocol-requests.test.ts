import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type ConnectionOptions, connect as connectTls } from 'node:tls';
import { LINGER_MS } from '../src/connection-end.ts';
import type { EndpointServer } from '../src/index.ts';
import { API_KEY, basic, encodeSettings, segmentHeaders, trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent, parseRaw, rawTls } from './helpers-clients.ts';
import { waitUntil } from './helpers-wait.ts';
import { cert, eventRequest, LIMIT, RawConnection, statusLines } from './protocol-harness.ts';

// HTTP/1.1 at the edges, request by request: pipelining after a malformed request, a body refused or
// answered before it goes bad, the number of headers, repeated Host, the request line's version and target.

describe('the request line and headers', () => {
  let endpoint: EndpointServer;
  let port: number;
  const handled: string[] = [];

  before(async () => {
    ({ endpoint, port } = await listenTls({
      maxBodyBytes: LIMIT,
      handlers: {
        // Answers a turn of the event loop late: a response is still in progress when what follows
        // arrives (the parser reads a pipelined request in the same pass as the one before it).
        track: async (event) => {
          await new Promise((resolve) => setImmediate(resolve));
          handled.push(String(event.messageId));
        },
      },
    }));
  });

  after(() => endpoint.close());

  test('CONNECT, which Node hands over apart from every other method: 405 in JSON, then the close', async () => {
    const text = await rawTls(port, cert, 'CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n');
    assert.deepEqual(statusLines(text), ['405'], text);
    assert.equal(JSON.parse(parseRaw(text).body).code, 'SEG_METHOD_NOT_ALLOWED');
    assert.match(parseRaw(text).headers, /allow: POST/i);
  });

  test('CONNECT pipelined behind an event still being processed: the 200 first, then the 405', async () => {
    // Written at once, the 405 went out as the only answer: read by the sender as its POST's, a final
    // refusal of an event that was taken.
    const event = trackEvent();
    const text = await rawTls(
      port,
      cert,
      `${eventRequest(JSON.stringify(event))}CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n`,
    );
    assert.deepEqual(statusLines(text), ['200', '405'], text);
    assert.ok(handled.includes(event.messageId));
  });

  test('CONNECT refused, its client never closing its side: the connection is closed within seconds', async () => {
    // Node hands a CONNECT's connection over, out of its timeouts' reach: after the 405 and our end of
    // it, a client that kept its side open held the connection (and its slot) for good.
    const event = trackEvent();
    const chunks: Buffer[] = [];
    // Node's TLS client takes allowHalfOpen (lib/_tls_wrap.js), which its types leave out.
    const halfOpen = {
      host: '127.0.0.1',
      port,
      ca: cert,
      servername: 'localhost',
      allowHalfOpen: true,
    } as ConnectionOptions;
    const socket = connectTls(halfOpen, () =>
      socket.write(
        `${eventRequest(JSON.stringify(event))}CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n`,
      ),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    // The client, its side open, sees no close: the server's count of connections says.
    const open = () =>
      new Promise<number>((resolve) => endpoint.server.getConnections((_err, count) => resolve(count)));
    await waitUntil(
      () => chunks.length > 0,
      () => 'the answers',
    );
    const until = Date.now() + LINGER_MS + 3_000;
    while ((await open()) > 0 && Date.now() < until) await delay(100);
    const left = await open();
    socket.destroy();
    assert.deepEqual(statusLines(Buffer.concat(chunks).toString()), ['200', '405']);
    assert.equal(left, 0, 'the connection closed by the server');
  });

  test('CONNECT pipelined behind two events: both 200s, then the 405', async () => {
    // Node frees the connection's parser for a CONNECT, and the refusal took the first answer for the
    // last: it ended the connection after the first 200, the second event taken and never answered, and
    // the 405 read by its sender as that event's answer.
    const events = [trackEvent(), trackEvent(), trackEvent()];
    const text = await rawTls(
      port,
      cert,
      `${events.map((e) => eventRequest(JSON.stringify(e))).join('')}CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n`,
    );
    assert.deepEqual(statusLines(text), ['200', '200', '200', '405'], text);
    const refusal = text.slice(text.indexOf('HTTP/1.1 405'));
    assert.equal(JSON.parse(parseRaw(refusal).body).code, 'SEG_METHOD_NOT_ALLOWED');
    for (const event of events) assert.ok(handled.includes(event.messageId));
  });

  test('a malformed request pipelined after a valid one: 200 first, then 400, then the close', async () => {
    const event = trackEvent();
    const text = await rawTls(port, cert, `${eventRequest(JSON.stringify(event))}GARBAGE\r\n\r\n`);
    assert.deepEqual(statusLines(text), ['200', '400'], text);
    const second = text.slice(text.indexOf('HTTP/1.1 400'));
    assert.equal(JSON.parse(parseRaw(second).body).code, 'SEG_BAD_REQUEST');
    assert.match(parseRaw(second).headers, /connection: close/);
    assert.ok(handled.includes(event.messageId));
  });

  test('a malformed request behind valid ones, then the sender half-closes: every 200, then the 400', async () => {
    // The sender's FIN comes while the 200s are still to be written: Node would end the connection after
    // the last of them, before the refusal waiting behind it.
    const events = [trackEvent(), trackEvent(), trackEvent()];
    const connection = new RawConnection(port);
    await connection.ready;
    connection.socket.end(
      `${events.map((e) => eventRequest(JSON.stringify(e))).join('')}GARBAGE / HTTP/1.1\r\n\r\n`,
    );
    await connection.close;
    assert.deepEqual(statusLines(connection.text), ['200', '200', '200', '400'], connection.text);
    const refusal = connection.text.slice(connection.text.indexOf('HTTP/1.1 400'));
    assert.equal(JSON.parse(parseRaw(refusal).body).code, 'SEG_BAD_REQUEST');
  });

  test('a request refused on its headers whose chunked body is malformed gets one answer, not two', async () => {
    const chunked = (key: string) =>
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(key)}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n';
    const alone = await rawTls(port, cert, chunked('not-a-key'));
    assert.deepEqual(statusLines(alone), ['401'], alone);
    assert.equal(JSON.parse(parseRaw(alone).body).code, 'SEG_AUTH_UNKNOWN');
    const behind = await rawTls(
      port,
      cert,
      eventRequest(JSON.stringify(trackEvent())) + chunked('not-a-key'),
    );
    assert.deepEqual(statusLines(behind), ['200', '401'], behind);
  });

  test('a request that asked for `Connection: close` and whose chunked body is malformed: 400 at once', async () => {
    // The connection is to end with its answer, and none is written yet: the parser's refusal of the
    // body is that answer (not dropped as what comes after an answer that ended the connection).
    const text = await rawTls(
      port,
      cert,
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\nConnection: close\r\n` +
        'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    );
    assert.deepEqual(statusLines(text), ['400'], text);
    assert.equal(JSON.parse(parseRaw(text).body).code, 'SEG_BAD_REQUEST');
  });

  test('a request answered on its headers whose chunked body goes bad after the answer: no second one', async () => {
    const connection = new RawConnection(port);
    await connection.ready;
    connection.write('GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
    await connection.until(/"status":"ok"/);
    connection.write('zz\r\n');
    await connection.close;
    assert.deepEqual(statusLines(connection.text), ['200'], connection.text);
  });

  test('an HTTP/1.0 POST with a body and no length: one 411 that closes, not a 400 for its body after it', async () => {
    // HTTP/1.0 has no chunked coding: Node's parser takes such a request as bodiless, and its body as
    // the next request, which it refuses. That refusal followed the 411's Connection: close.
    const body = JSON.stringify(trackEvent());
    const request =
      `POST / HTTP/1.0\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      `Content-Type: application/json\r\n\r\n${body}`;
    const answer = await rawTls(port, cert, request);
    assert.deepEqual(statusLines(answer), ['411'], answer);
    assert.match(parseRaw(answer).headers, /connection: close/i);
  });

  test('an HTTP/1.0 request with Transfer-Encoding is answered, then the connection closed (RFC 9112 §6.1)', async () => {
    // Its framing cannot be trusted: what follows it on the connection is not read, nor its event taken.
    const first = trackEvent();
    const body = JSON.stringify(first);
    const chunked =
      `POST / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const behind = trackEvent();
    const answer = await rawTls(port, cert, chunked + eventRequest(JSON.stringify(behind)));
    assert.deepEqual(statusLines(answer), ['200'], answer);
    assert.match(parseRaw(answer).headers, /connection: close/i);
    assert.ok(handled.includes(first.messageId));
    assert.ok(!handled.includes(behind.messageId), 'the request behind it was not taken');
  });

  test('a request with Upgrade is answered, then its connection closed: Node drops what came with it', async () => {
    // Without an 'upgrade' listener Node serves it as any request, but its parser stops at its end and
    // the rest of that read is lost: a request pipelined behind it is neither answered nor refused. Kept
    // open, the connection would stay silent until the keep-alive timeout.
    const first = trackEvent();
    const behind = trackEvent();
    const upgrading = eventRequest(JSON.stringify(first), 'Connection: Upgrade\r\nUpgrade: websocket\r\n');
    const started = Date.now();
    const answer = await rawTls(port, cert, upgrading + eventRequest(JSON.stringify(behind)));
    assert.deepEqual(statusLines(answer), ['200'], answer);
    assert.match(parseRaw(answer).headers, /connection: close/i);
    assert.ok(Date.now() - started < 5_000, 'closed after the answer, not at the keep-alive timeout');
    assert.ok(handled.includes(first.messageId));
    assert.ok(!handled.includes(behind.messageId));
  });

  test('more than 100 headers is a 431, whichever of them Node would have dropped; 100 pass', async () => {
    // Content-Length last, past the 100th: dropped from the request as Node hands it over, it would read
    // as a request without a length (411), while Node framed the body by it.
    const withHeaders = (count: number) => {
      const event = trackEvent();
      const body = JSON.stringify(event);
      const base = eventRequest(body).replace(/Content-Length: \d+\r\n/, '');
      const fixed = base.slice(0, base.indexOf('\r\n\r\n')).split('\r\n').length - 1; // the line excluded
      const extra = Array.from({ length: count - fixed - 2 }, (_, i) => `X-Extra-${i}: v\r\n`).join('');
      const cut = base.indexOf('\r\n\r\n') + 2;
      return `${base.slice(0, cut)}${extra}Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    };
    const over = parseRaw(await rawTls(port, cert, withHeaders(101)));
    assert.equal(over.status, 431, over.body);
    assert.equal(JSON.parse(over.body).code, 'SEG_HEADERS_TOO_LARGE');
    assert.equal(parseRaw(await rawTls(port, cert, withHeaders(100))).status, 200);
  });

  test("what Node's parser refuses is answered with what it found, Content-Length's with its own code", async () => {
    const body = JSON.stringify(trackEvent());
    const cases = [
      ['Content-Length: 2\r\n', 'SEG_LENGTH_INVALID', 'Duplicate Content-Length'],
      [
        'Transfer-Encoding: chunked\r\n',
        'SEG_BAD_REQUEST',
        "Transfer-Encoding can't be present with Content-Length",
      ],
      ['X-Folded: a\r\n b\r\n', 'SEG_BAD_REQUEST', 'Unexpected whitespace after header value'],
    ] as const;
    for (const [extra, code, reason] of cases) {
      const res = parseRaw(await rawTls(port, cert, eventRequest(body, extra)));
      assert.equal(res.status, 400, extra);
      assert.deepEqual(JSON.parse(res.body), { message: `Malformed HTTP request: ${reason}`, code }, extra);
    }
    // Transfer-Encoding first: llhttp reports it under Content-Length's code, and it is framing all the same.
    const teFirst = parseRaw(
      await rawTls(
        port,
        cert,
        eventRequest(body).replace('Content-Type:', 'Transfer-Encoding: chunked\r\nContent-Type:'),
      ),
    );
    assert.equal(JSON.parse(teFirst.body).code, 'SEG_BAD_REQUEST', teFirst.body);
    const chunked =
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      'Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n';
    const res = parseRaw(await rawTls(port, cert, chunked));
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body).message, /^Malformed HTTP request: Invalid character in chunk size$/);
  });

  test('a Content-Length of any number of digits is its number: leading zeros are read, one too large is a 413', async () => {
    const event = trackEvent();
    const body = JSON.stringify(event);
    const padded = eventRequest(body, 'Connection: close\r\n').replace(
      `Content-Length: ${Buffer.byteLength(body)}`,
      `Content-Length: ${'0'.repeat(20)}${Buffer.byteLength(body)}`,
    );
    const res = parseRaw(await rawTls(port, cert, padded));
    assert.equal(res.status, 200, res.body);
    assert.ok(handled.includes(event.messageId));
    const huge = eventRequest(body, 'Connection: close\r\n').replace(
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Content-Length: 1234567890123456789',
    );
    const tooLarge = parseRaw(await rawTls(port, cert, huge));
    assert.equal(tooLarge.status, 413, tooLarge.body);
  });

  test('two Content-Type headers that differ are a 400: Node would check the first only', async () => {
    const body = JSON.stringify(trackEvent());
    const differ = parseRaw(
      await rawTls(port, cert, eventRequest(body, 'Content-Type: text/plain\r\nConnection: close\r\n')),
    );
    assert.equal(differ.status, 400, differ.body);
    assert.deepEqual(JSON.parse(differ.body), {
      message: 'More than one Content-Type header, and they differ',
      code: 'SEG_BAD_REQUEST',
    });
    const same = parseRaw(
      await rawTls(port, cert, eventRequest(body, 'content-type: application/json\r\nConnection: close\r\n')),
    );
    assert.equal(same.status, 200, same.body);
  });

  test('two Host headers are a 400', async () => {
    const request = eventRequest(JSON.stringify(trackEvent()), 'Host: elsewhere\r\nConnection: close\r\n');
    const res = parseRaw(await rawTls(port, cert, request));
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body).code, 'SEG_BAD_REQUEST');
  });

  test('an absolute-form target is routed by its path, its query ignored', async () => {
    const event = trackEvent();
    const body = JSON.stringify(event);
    const request = eventRequest(body, 'Connection: close\r\n').replace(
      'POST / ',
      `POST https://localhost:${port}/?source=1 `,
    );
    const res = parseRaw(await rawTls(port, cert, request));
    assert.equal(res.status, 200, res.body);
    assert.ok(handled.includes(event.messageId));
    const health = `GET https://localhost:${port}/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
    assert.equal(parseRaw(await rawTls(port, cert, health)).status, 200);
    const elsewhere = request.replace(`:${port}/?source=1`, `:${port}/elsewhere`);
    assert.equal(parseRaw(await rawTls(port, cert, elsewhere)).status, 404);
  });

  for (const version of ['2.0', '3.0', '1.2']) {
    test(`HTTP/${version} in the request line is a 505 in JSON`, async () => {
      const request = eventRequest(JSON.stringify(trackEvent())).replace('HTTP/1.1', `HTTP/${version}`);
      const res = parseRaw(await rawTls(port, cert, request));
      assert.equal(res.status, 505, res.headers);
      assert.match(res.headers, /content-type: application\/json/);
      assert.equal(JSON.parse(res.body).code, 'SEG_HTTP_VERSION');
    });
  }

  test('a version that is not DIGIT.DIGIT, or none (read as HTTP/0.9), is a garbled request line: 400', async () => {
    // HTTP/1.31 and HTTP/3.0x: llhttp rejects the version before it sees what follows it (fuzz seed 744937838).
    for (const version of ['HTTP/2', 'HTTP/11', 'HTTP/1.x', 'HTTP/0.9', '', 'HTTP/1.31', 'HTTP/3.0x']) {
      const request = eventRequest(JSON.stringify(trackEvent())).replace(
        ' HTTP/1.1',
        version && ` ${version}`,
      );
      const res = parseRaw(await rawTls(port, cert, request));
      assert.equal(res.status, 400, `${version}: ${res.headers}`);
      assert.equal(JSON.parse(res.body).code, 'SEG_BAD_REQUEST');
    }
  });

  test('a settings header whose bytes are not UTF-8 is a 400, as a body is', async () => {
    const agent = keepAliveAgent(cert);
    try {
      // {"a":"\xff"}: lenient decoding would read it as {"a":"\ufffd"}, a valid object.
      const settings = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]).toString('base64');
      const res = await httpsCall(agent, `https://localhost:${port}/`, {
        body: trackEvent(),
        headers: { ...segmentHeaders(), 'x-segment-settings': settings },
      });
      assert.equal(res.status, 400, res.body);
      assert.equal(JSON.parse(res.body).code, 'SEG_SETTINGS_INVALID');
      const good = await httpsCall(agent, `https://localhost:${port}/`, {
        body: trackEvent(),
        headers: { ...segmentHeaders(), 'x-segment-settings': encodeSettings({ a: 'é' }) },
      });
      assert.equal(good.status, 200);
    } finally {
      agent.destroy();
    }
  });
});
