import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, connect as connectTcp, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { ConnectionSlots } from '../src/connections.ts';
import { createHandler, type EndpointServer, silentLogger } from '../src/index.ts';
import {
  API_KEY,
  basic,
  encodeSettings,
  httpsCall,
  keepAliveAgent,
  listenTls,
  parseRaw,
  rawTls,
  segmentHeaders,
  testCert,
  trackEvent,
} from './helpers.ts';

// HTTP/1.1 at the edges: pipelining after a malformed request, Expect: 100-continue, the request line's
// version and target, repeated Host, and who holds a connection slot. Raw sockets, so that every byte the
// server writes (and when it closes) is seen.

const LIMIT = 4096;
const { cert } = testCert();

/** A raw connection (TLS, or TCP when `tcp`) that keeps every byte received. */
class RawConnection {
  text = '';
  closed = false;
  readonly socket: Socket;
  readonly ready: Promise<void>;
  readonly close: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(port: number, tcp = false) {
    let ready = () => {};
    this.ready = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.socket = tcp
      ? connectTcp(port, '127.0.0.1', ready)
      : connectTls({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, ready);
    this.socket.on('error', () => {}); // a reset by the server shows as the close
    this.socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString();
      this.wake();
    });
    this.close = new Promise<void>((resolve) =>
      this.socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Resolves once what was received matches `re`; rejects if the connection closes first. */
  async until(re: RegExp): Promise<void> {
    while (!re.test(this.text)) {
      if (this.closed) throw new Error(`closed before ${re}; received:\n${this.text}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

const eventRequest = (body: string, headers = '') =>
  `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;

/** The status lines of every response in `text`, in order. */
const statusLines = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g)].map((m) => m[1]);

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

  test('a request answered on its headers whose chunked body goes bad after the answer: no second one', async () => {
    const connection = new RawConnection(port);
    await connection.ready;
    connection.write('GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
    await connection.until(/"status":"ok"/);
    connection.write('zz\r\n');
    await connection.close;
    assert.deepEqual(statusLines(connection.text), ['200'], connection.text);
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

describe('connection slots at maxConnections', () => {
  const MAX = 3;

  /** A socket as the slots see it: it can be destroyed, and says when it closes. */
  class FakeSocket extends EventEmitter {
    destroyed = false;
    destroy(): this {
      this.destroyed = true;
      setImmediate(() => this.emit('close'));
      return this;
    }
  }
  /** A request on `socket` and its answer: `socket` once Node has given it the connection. */
  const exchangeOn = (socket: FakeSocket, assigned = true) => {
    const res = Object.assign(new EventEmitter(), {
      req: { socket },
      socket: assigned ? socket : null,
      writableFinished: false,
    });
    return [res.req, res] as unknown as [IncomingMessage, ServerResponse];
  };
  const closed = (socket: FakeSocket) => new Promise((resolve) => socket.once('close', resolve));

  test('bookkeeping: the longest idle goes first; pipelined requests keep a connection busy', async () => {
    const slots = new ConnectionSlots(2);
    const [a, b, c, d, e] = [
      new FakeSocket(),
      new FakeSocket(),
      new FakeSocket(),
      new FakeSocket(),
      new FakeSocket(),
    ];
    const admit = (socket: FakeSocket) => slots.admit(socket as unknown as Socket);
    const start = (socket: FakeSocket) => {
      const [req, res] = exchangeOn(socket);
      slots.started(req, res);
      return res;
    };
    admit(a);
    admit(b);
    // a: two pipelined requests, one answered; b: one answered, so idle again.
    const [a1, a2] = [start(a), start(a)];
    a1.emit('close');
    start(b).emit('close');
    admit(c); // takes b's slot: a is still busy
    assert.deepEqual([a.destroyed, b.destroyed, c.destroyed], [false, true, false]);
    assert.equal(slots.size, 2);
    const c1 = start(c);
    admit(d); // both busy: the newcomer goes
    assert.equal(d.destroyed, true);
    a2.emit('close'); // a idle now, and the longest idle
    c1.emit('close');
    admit(e);
    assert.deepEqual([a.destroyed, c.destroyed, e.destroyed], [true, false, false]);
    await closed(a);
    assert.equal(slots.size, 2);
    c.destroy();
    await closed(c);
    assert.equal(slots.size, 1);
    await slots.settled(); // every answer closed
  });

  test('answers queued behind a connection that closes are done with: the shutdown does not wait for them', async () => {
    const slots = new ConnectionSlots(2);
    const a = new FakeSocket();
    slots.admit(a as unknown as Socket);
    // Three pipelined requests: the first being written, the two behind it never given the connection.
    const [head, ...queued] = [exchangeOn(a), exchangeOn(a, false), exchangeOn(a, false)];
    for (const [req, res] of [head, ...queued]) slots.started(req, res);
    let settled = false;
    const settling = slots.settled().then(() => (settled = true));
    a.destroy();
    await closed(a);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'the answer being written has not closed yet');
    head[1].emit('close');
    await settling;
    assert.equal(slots.size, 0);
  });

  test('idle keep-alive connections do not lock out a new client: the longest idle is closed', async () => {
    const { endpoint, url, port } = await listenTls({ maxConnections: MAX, handlers: { track: () => {} } });
    const idle: RawConnection[] = [];
    const agent = keepAliveAgent(cert);
    try {
      for (let i = 0; i < MAX; i++) {
        const connection = new RawConnection(port);
        idle.push(connection);
        await connection.ready;
        connection.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
        await connection.until(/\{"status":"ok"\}/);
      }
      const res = await httpsCall(agent, url, { body: trackEvent() });
      assert.equal(res.status, 200);
      await idle[0]?.close;
      assert.deepEqual(
        idle.map((c) => c.closed),
        [true, false, false],
      );
    } finally {
      for (const connection of idle) connection.destroy();
      agent.destroy();
      await endpoint.close();
    }
  });

  test('when every connection has a request in progress, a new one is refused; the busy ones finish', async () => {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = 0;
    let allStarted = () => {};
    const running = new Promise<void>((resolve) => {
      allStarted = resolve;
    });
    const { endpoint, port } = await listenTls({
      maxConnections: MAX,
      handlerTimeoutMs: 60_000,
      handlers: {
        track: async () => {
          if (++started === MAX) allStarted();
          await released;
        },
      },
    });
    const busy: RawConnection[] = [];
    let newcomer: RawConnection | undefined;
    try {
      for (let i = 0; i < MAX; i++) {
        const connection = new RawConnection(port);
        busy.push(connection);
        await connection.ready;
        connection.write(eventRequest(JSON.stringify(trackEvent())));
      }
      await running;
      newcomer = new RawConnection(port);
      const outcome = await Promise.race([newcomer.ready.then(() => 'let in'), newcomer.close]);
      assert.notEqual(outcome, 'let in');
      assert.equal(newcomer.text, '');
      release();
      for (const connection of busy) {
        await connection.until(/HTTP\/1\.1 \d{3} [\s\S]*\r\n\r\n/);
        assert.deepEqual(statusLines(connection.text), ['200']);
        assert.equal(connection.closed, false);
      }
    } finally {
      release();
      for (const connection of busy) connection.destroy();
      newcomer?.destroy();
      await endpoint.close();
    }
  });
});
