import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createServer, type EndpointServer, silentLogger } from '../src/index.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { listenTls, testCert } from './helpers-cert.ts';
import { within } from './helpers-wait.ts';

// Connections that never finish their TLS handshake: they hold a connection slot and a file descriptor
// until the handshake's deadline, and a shutdown must not wait for them.

const HEADERS_TIMEOUT_MS = 400;
// The first bytes of a TLS ClientHello (a handshake record, TLS 1.0 framing): a handshake begun, never sent.
const CLIENT_HELLO_START = Buffer.from([0x16, 0x03, 0x01]);

/** A raw TCP connection to `port` that sends `bytes` (maybe none), and what became of it. */
async function silentClient(port: number, bytes?: Buffer) {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (bytes !== undefined) socket.write(bytes);
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  socket.on('error', () => {}); // a reset is a close too
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed, received: () => received };
}

describe('a TLS handshake never finished', () => {
  let endpoint: EndpointServer;
  let port: number;
  const sockets: Socket[] = [];

  before(async () => {
    ({ endpoint, port } = await listenTls({
      handlers: {},
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      requestTimeoutMs: HEADERS_TIMEOUT_MS,
    }));
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await endpoint.close();
  });

  for (const [what, bytes] of [
    ['a connection that sends nothing', undefined],
    ['a handshake begun and left', CLIENT_HELLO_START],
  ] as const) {
    test(`${what} is closed at the headers' deadline, without a byte written to it`, async () => {
      const client = await silentClient(port, bytes);
      sockets.push(client.socket);
      // Past the deadline Node reports the handshake's timeout; a plaintext HTTP refusal written into a
      // connection that speaks no TLS yet was never flushed, and the connection stayed open for good.
      await within(client.closed, HEADERS_TIMEOUT_MS + 5_000, 'the close');
      assert.equal(client.received(), 0, 'nothing is written to a connection in its handshake');
    });
  }
});

describe('a connection whose first request never comes', () => {
  test('after a finished TLS handshake, silence is closed within twice the headers deadline (handshake, then headers)', async (t) => {
    // Node's timeouts begin with a request's first byte: a connection that finished its handshake and
    // sent nothing stayed open for good (96 s and counting), holding a slot until a newcomer evicted it.
    const { endpoint, port } = await listenTls({
      handlers: {},
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      requestTimeoutMs: HEADERS_TIMEOUT_MS,
    });
    t.after(() => endpoint.close());
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: testCert().cert, servername: 'localhost' });
    t.after(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await within(closed, 2 * HEADERS_TIMEOUT_MS + 5_000, 'the close');
  });

  test('over plain HTTP too: a connection that sends nothing is closed', async (t) => {
    const endpoint = createServer({
      http: true,
      host: '127.0.0.1',
      port: 0,
      apiKeys: ['k'],
      handlers: {},
      log: silentLogger,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      requestTimeoutMs: HEADERS_TIMEOUT_MS,
    });
    const url = await endpoint.listen();
    t.after(() => endpoint.close());
    const client = await silentClient(Number(new URL(url).port));
    t.after(() => client.socket.destroy());
    await within(client.closed, 2 * HEADERS_TIMEOUT_MS + 5_000, 'the close');
  });
});

describe('close() with connections in their TLS handshake', () => {
  test('ends: a connection that never finished its handshake does not hold the shutdown', async () => {
    const { endpoint, port } = await listenTls({ handlers: {}, shutdownTimeoutMs: 200 });
    const silent = await silentClient(port);
    const begun = await silentClient(port, CLIENT_HELLO_START);
    try {
      // The handshake's own deadline (10 s by default) is far off: close() must not wait for it.
      await within(endpoint.close(), 5_000, 'close()');
      await within(Promise.all([silent.closed, begun.closed]), 1_000, 'the connections closing');
    } finally {
      silent.socket.destroy();
      begun.socket.destroy();
    }
  });
});

/** A TLS 1.2 connection to `port` offering `session`: whether it was resumed, and the session to offer next. */
function tlsSession(port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      maxVersion: 'TLSv1.2',
      session,
    });
    let given: Buffer | undefined;
    socket.once('session', (ticket: Buffer) => {
      given = ticket;
    });
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused();
      // The ticket comes with the handshake's last flight, right after it.
      setImmediate(() => {
        socket.end();
        resolve({ reused, session: given ?? (socket.getSession() as Buffer) });
      });
    });
    socket.once('error', reject);
  });
}

describe('a certificate reload', () => {
  test('keeps the sessions senders hold: they resume, and need no full handshake after each renewal', async () => {
    const { endpoint, port } = await listenTls({ handlers: {} });
    try {
      const first = await tlsSession(port);
      assert.equal((await tlsSession(port, first.session)).reused, true, 'resumed before the reload');
      // The same pair, as a renewal script that reloads on a timer gives; a new pair keeps them too.
      endpoint.reloadTls(testCert());
      // A new TLS context came with new ticket keys: every session was lost at each reload.
      assert.equal((await tlsSession(port, first.session)).reused, true, 'resumed after the reload');
    } finally {
      await endpoint.close();
    }
  });
});

describe('ALPN', () => {
  test('a client that offers only http/1.0 is served: its request is answered, not refused with an alert', async () => {
    const { endpoint, port } = await listenTls({ handlers: { track: () => {} } });
    try {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.0'],
      });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      const body = JSON.stringify(trackEvent());
      const headers = Object.entries({
        ...segmentHeaders(),
        'Content-Length': String(Buffer.byteLength(body)),
      });
      socket.once('secureConnect', () => {
        const head = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
        socket.end(`POST /v1/track HTTP/1.0\r\nHost: localhost\r\n${head}\r\n${body}`);
      });
      // Node's https server offered only http/1.1: the handshake ended in no_application_protocol.
      await within(
        new Promise((resolve, reject) => socket.once('close', resolve).once('error', reject)),
        5_000,
        'the answer',
      );
      assert.equal(socket.alpnProtocol, 'http/1.0');
      assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 200 /);
    } finally {
      await endpoint.close();
    }
  });
});
