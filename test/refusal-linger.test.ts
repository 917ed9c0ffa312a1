import assert from 'node:assert/strict';
import { connect as connectTcp } from 'node:net';
import { Duplex } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, mock, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect, type TLSSocket } from 'node:tls';
import { LINGER_MS, lingerNow } from '../src/connection-end.ts';
import { createServer, type EndpointServer, silentLogger } from '../src/index.ts';
import { API_KEY, basic, trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { parseRaw } from './helpers-clients.ts';
import { within } from './helpers-wait.ts';
import { cert, LIMIT } from './protocol-harness.ts';

// A refusal that closes its connection while the sender is still sending the body (a 413 decided on
// Content-Length, a 408): closed at once, the connection is reset by the bytes still coming, and a sender
// busy writing them sees the reset (EPIPE, ECONNRESET) rather than the answer, which it may not have read
// yet (curl: "Send failure: Broken pipe"). The endpoint ends its side after the answer and reads on,
// discarding, until the sender closes too: a "lingering close".

/** What a sender that writes its whole request at once, headers and body, sees of the answer. */
function sendWhole(
  port: number,
  request: Buffer,
): Promise<{ text: string; error: string | undefined; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () =>
      socket.write(request),
    );
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () =>
      resolve({ text: Buffer.concat(chunks).toString(), error, ms: performance.now() - started }),
    );
  });
}

const head = (length: number) =>
  `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

describe('a refusal while the body is still coming', () => {
  let endpoint: EndpointServer;
  let port: number;

  before(async () => {
    ({ endpoint, port } = await listenTls({ maxBodyBytes: LIMIT, handlers: { track: () => {} } }));
  });

  after(() => endpoint.close());

  test('requests pipelined behind the refusal during its lingering close are not read on: one read of them at most', async () => {
    // Each is handed over and never answered (behind an answer that ends the connection): read on for
    // the whole lingering close, a client that keeps its side open held ~800 MB of them in 5 s, and
    // letting them go at the close blocked the event loop for minutes.
    let handed = 0;
    const count = () => {
      handed++;
    };
    endpoint.server.prependListener('request', count);
    try {
      // Its side kept open once the server ends its own (tls.connect takes the option; its type omits it).
      const options = { host: '127.0.0.1', port, ca: cert, servername: 'localhost', allowHalfOpen: true };
      const socket = connect(options);
      let text = '';
      let error: string | undefined;
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        error = err.code ?? err.message;
      });
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      socket.write(Buffer.concat([Buffer.from(head(2 * LIMIT)), Buffer.alloc(2 * LIMIT, 'x')]));
      await ended; // the 413 is out and the server ended its side: its lingering close has begun
      handed = 0;
      const batch = 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(100);
      for (let i = 0; i < 20 && !socket.destroyed; i++) {
        socket.write(batch);
        await new Promise((resolve) => setTimeout(resolve, 5)); // each batch its own read
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(handed <= 100, `${handed} requests read behind the refusal, in 20 reads`);
      socket.end();
      await closed;
      assert.equal(parseRaw(text).status, 413, text);
      assert.equal(error, undefined, `the sender saw its connection reset (${error})`);
    } finally {
      endpoint.server.off('request', count);
    }
  });

  test('a 413 on its Content-Length reaches a sender still writing 32 MiB, and the connection ends cleanly', async () => {
    const size = 32 * 1024 * 1024; // more than the kernel's buffers hold: most is sent after the answer
    const request = Buffer.concat([Buffer.from(head(size)), Buffer.alloc(size, 'x')]);
    // Five senders, each its own connection: one reset among them is a lost answer.
    const seen = await Promise.all(Array.from({ length: 5 }, () => sendWhole(port, request)));
    for (const { text, error } of seen) {
      const res = parseRaw(text);
      assert.equal(res.status, 413, text);
      assert.equal(JSON.parse(res.body).code, 'SEG_BODY_TOO_LARGE');
      assert.match(res.headers, /connection: close/);
      assert.equal(error, undefined, `the sender saw its connection reset (${error})`);
    }
  });
});

/** A connection's two ends as a Duplex: what it was told to do (end, destroy), and reads that keep coming. */
function fakeConnection() {
  const connection = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  connection.on('error', () => {});
  return connection;
}

describe('the lingering close', () => {
  test('ends its side at once, and closes at LINGER_MS a client that neither stops sending nor closes', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const connection = fakeConnection();
      lingerNow(connection);
      assert.equal(connection.writableEnded, true, 'its side ended at once');
      connection.push('more of a body');
      mock.timers.tick(LINGER_MS - 1);
      assert.equal(connection.destroyed, false, 'still reading');
      mock.timers.tick(1);
      assert.equal(connection.destroyed, true);
    } finally {
      mock.timers.reset();
    }
  });

  test('a client that closes first leaves no timer behind', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const connection = fakeConnection();
      let destroys = 0;
      const destroy = connection.destroy.bind(connection);
      connection.destroy = (err?: Error) => {
        destroys++;
        return destroy(err);
      };
      lingerNow(connection);
      connection.destroy();
      connection.emit('close');
      mock.timers.tick(LINGER_MS);
      assert.equal(destroys, 1, 'not destroyed again by the timer');
    } finally {
      mock.timers.reset();
    }
  });
});

test('at maxConnections, connections in a lingering close with a request read behind it do not lock a newcomer out', async () => {
  // The request read behind the refusal is never answered: counted as an answer in progress, it made
  // its connection busy, never the idle one closed to admit a newcomer, for the whole lingering close.
  const endpoint = createServer({
    http: true,
    host: '127.0.0.1',
    port: 0,
    apiKeys: [API_KEY],
    log: silentLogger,
    maxBodyBytes: LIMIT,
    maxConnections: 4,
    handlers: { track: () => {} },
  });
  const port = Number(new URL(await endpoint.listen()).port);
  const holders = [];
  try {
    for (let i = 0; i < 4; i++) {
      const socket = connectTcp({ port, host: '127.0.0.1', allowHalfOpen: true });
      socket.on('error', () => {});
      socket.resume();
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        `${head(2 * LIMIT)}${'x'.repeat(2 * LIMIT)}GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      );
      await new Promise((resolve) => socket.once('end', resolve)); // its 413 is out: lingering
      holders.push(socket);
    }
    const body = JSON.stringify(trackEvent());
    const newcomer = connectTcp({ port, host: '127.0.0.1' });
    let text = '';
    newcomer.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    newcomer.on('error', () => {});
    newcomer.on('connect', () =>
      newcomer.write(
        `${head(Buffer.byteLength(body)).replace('Content-Type', 'Connection: close\r\nContent-Type')}${body}`,
      ),
    );
    await new Promise((resolve) => newcomer.on('close', resolve));
    assert.equal(
      parseRaw(text).status,
      200,
      `the newcomer got: ${text || 'its connection closed, unanswered'}`,
    );
  } finally {
    for (const socket of holders) socket.destroy();
    await endpoint.close();
  }
});

describe('an answer that ends its connection, and a sender that goes on sending after it', () => {
  let endpoint: EndpointServer;
  let port: number;
  /** Who waits for the server's side of each connection to close, by the client's port. */
  const closes = new Map<number, () => void>();

  beforeEach(async () => {
    ({ endpoint, port } = await listenTls({ handlers: { track: () => {} } }));
    endpoint.server.on('secureConnection', (socket: TLSSocket) => {
      const { remotePort } = socket;
      socket.once('close', () => closes.get(remotePort ?? 0)?.());
    });
  });

  afterEach(() => endpoint.close());

  /**
   * A sender that keeps its side open: writes `first`, reads its answer and the end of the server's side,
   * then writes `more` every 20 ms for 200 ms, and ends its side. Its answer's status, and whether the
   * server closed the connection before the sender ended its side (under what it still sent: a reset,
   * which makes a sender that has not read its answers yet discard them).
   */
  async function sendsOn(first: string, more: string): Promise<{ status: number; cutShort: boolean }> {
    const tcp = connectTcp({ port, host: '127.0.0.1', allowHalfOpen: true });
    const socket = connect({ socket: tcp, ca: cert, servername: 'localhost', allowHalfOpen: true } as never);
    let text = '';
    socket.on('error', () => {}); // a reset shows as the server's early close
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const serverClosed = new Promise<void>((resolve) => closes.set(tcp.localPort ?? 0, resolve));
    let ended = false;
    let cutShort = false;
    void serverClosed.then(() => {
      cutShort = !ended;
    });
    socket.write(first);
    await within(new Promise((resolve) => socket.once('end', resolve)), 10_000, 'the end of the answer');
    for (let i = 0; i < 10 && !socket.destroyed; i++) {
      socket.write(more);
      await delay(20);
    }
    ended = true;
    socket.end();
    await within(Promise.all([closed, serverClosed]), 10_000, 'the connection closed');
    return { status: parseRaw(text).status, cutShort };
  }

  const request = (extra = '', version = '1.1') => {
    const body = JSON.stringify(trackEvent());
    return (
      `${head(Buffer.byteLength(body)).replace('HTTP/1.1', `HTTP/${version}`)}`.replace(
        'Content-Type',
        `${extra}Content-Type`,
      ) + body
    );
  };

  test("the sender's own `Connection: close`: what it sends after its 200 is dropped, the connection not reset", async () => {
    assert.deepEqual(await sendsOn(request('Connection: close\r\n'), request()), {
      status: 200,
      cutShort: false,
    });
  });

  test('HTTP/1.0 without keep-alive: bytes that are no request after its 200 are dropped, not reset', async () => {
    assert.deepEqual(await sendsOn(request('', '1.0'), 'not a request\r\n'), {
      status: 200,
      cutShort: false,
    });
  });

  test('draining: what comes after the 503 that ends the connection is dropped, not reset', async () => {
    endpoint.handler.drain();
    assert.deepEqual(await sendsOn(request(), 'not a request\r\n'), { status: 503, cutShort: false });
  });
});
