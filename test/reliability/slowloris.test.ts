import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { createServer, type EndpointServer, silentLogger } from '../../src/index.ts';
import { API_KEY, trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { httpsCall, keepAliveAgent, parseRaw } from '../helpers-clients.ts';
import { recordFigures } from './harness.ts';

// Slowloris: clients that open a connection and then send their request a byte at a time, to hold a
// socket (and its memory) for as long as the server lets them. The CLI has no flags for the header and
// request timeouts, so the library is run in process with short ones; the shape is the same.

const SLOW_HEADER_SOCKETS = 200;
const SLOW_BODY_SOCKETS = 50;
const NORMAL_REQUESTS = 10;
const TRICKLE_MS = 150; // one byte this often: always short of a whole request before any deadline
// Only ends a test the server would leave hanging: a socket still open by then is destroyed by the test
// and counted as not cut off. The short timeouts (headers 1 s, body 1.5 s, request 2 s, checked every
// second) cut every slow socket long before.
const GIVE_UP_MS = 30_000;

const figures: Record<string, unknown> = {};
after(() => recordFigures('slowloris', figures));

const { cert, key } = testCert();

function start(options: { maxConnections: number; short: boolean }): Promise<{
  endpoint: EndpointServer;
  url: string;
  port: number;
}> {
  const endpoint = createServer({
    tls: { cert, key },
    host: '127.0.0.1',
    port: 0,
    ...(options.short ? { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, bodyTimeoutMs: 1_500 } : {}),
    maxConnections: options.maxConnections,
    apiKeys: [API_KEY],
    log: silentLogger,
    handlers: { track: () => {} },
  });
  return endpoint.listen().then((url) => ({ endpoint, url, port: Number(new URL(url).port) }));
}

interface SlowResult {
  readonly kind: 'header' | 'body';
  /** Whether the TLS handshake finished (a socket refused before it never held a request). */
  readonly connected: boolean;
  readonly status: number;
  readonly code: string | undefined;
  /** Whether the server closed it (or the test gave up on it). */
  readonly closedByServer: boolean;
  /** From the end of the handshake to the close, in ms: a figure. */
  readonly closedAfterMs: number | undefined;
}

interface SlowSocket {
  readonly connected: Promise<boolean>;
  readonly result: Promise<SlowResult>;
  readonly open: () => boolean;
  readonly destroy: () => void;
}

const SLOW_HEADER_TEXT = 'POST / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Segment.io/1.0\r\nX-Slow: ';

function slowBodyHead(): string {
  return (
    'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
    `Authorization: Basic ${Buffer.from(`${API_KEY}:`).toString('base64')}\r\nContent-Length: 100\r\n\r\n`
  );
}

/** A TLS socket that sends its request a byte every TRICKLE_MS, never finishing it. */
function slowSocket(port: number, kind: 'header' | 'body'): SlowSocket {
  let socket: TLSSocket;
  let connectedAt = 0;
  let closed = false;
  let gaveUp = false;
  let timer: NodeJS.Timeout | undefined;
  let onConnected: (ok: boolean) => void = () => {};
  const connected = new Promise<boolean>((resolve) => {
    onConnected = resolve;
  });
  let destroyedByTest = false;
  const result = new Promise<SlowResult>((resolve) => {
    const chunks: Buffer[] = [];
    socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () => {
      connectedAt = Date.now();
      onConnected(true);
      let sent = 0;
      if (kind === 'body') socket.write(slowBodyHead());
      timer = setInterval(() => {
        if (socket.destroyed || !socket.writable) return;
        if (kind === 'header') {
          socket.write(sent < SLOW_HEADER_TEXT.length ? (SLOW_HEADER_TEXT[sent] as string) : 'a');
        } else if (sent < 99) {
          socket.write('{');
        }
        sent++;
      }, TRICKLE_MS);
    });
    const giveUp = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, GIVE_UP_MS);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // EPIPE/ECONNRESET once the server cuts us off: the close tells
    socket.on('close', () => {
      closed = true;
      clearInterval(timer);
      clearTimeout(giveUp);
      onConnected(false);
      const text = Buffer.concat(chunks).toString();
      const { status, body } = parseRaw(text);
      let code: string | undefined;
      try {
        code = (JSON.parse(body) as { code?: string }).code;
      } catch {
        code = undefined;
      }
      resolve({
        kind,
        connected: connectedAt !== 0,
        status,
        code,
        closedByServer: !gaveUp && !destroyedByTest,
        closedAfterMs: connectedAt === 0 ? undefined : Date.now() - connectedAt,
      });
    });
  });
  return {
    connected,
    result,
    open: () => !closed,
    destroy: () => {
      if (!closed) destroyedByTest = true;
      clearInterval(timer);
      socket.destroy();
    },
  };
}

/** Opens the slow sockets and waits until every one has finished its handshake. */
async function slowSockets(port: number): Promise<SlowSocket[]> {
  const sockets: SlowSocket[] = [];
  for (let i = 0; i < SLOW_HEADER_SOCKETS; i++) sockets.push(slowSocket(port, 'header'));
  for (let i = 0; i < SLOW_BODY_SOCKETS; i++) sockets.push(slowSocket(port, 'body'));
  const handshakes = await Promise.all(sockets.map((s) => s.connected));
  assert.equal(handshakes.filter(Boolean).length, sockets.length, 'every slow socket was let in');
  return sockets;
}

test('a normal client is served while slow headers and slow bodies hang', async () => {
  // The default timeouts (10 s and more): nothing cuts the slow sockets while the normal client is
  // served, so "served while they hang" is checked after each answer, not inferred from its latency.
  const { endpoint, url, port } = await start({ maxConnections: 300, short: false });
  const agent = keepAliveAgent(cert);
  let sockets: SlowSocket[] = [];
  try {
    sockets = await slowSockets(port);
    const latencies: number[] = [];
    const openAtAnswers: number[] = [];
    let ok = 0;
    for (let i = 0; i < NORMAL_REQUESTS; i++) {
      const started = Date.now();
      const res = await httpsCall(agent, url, { body: trackEvent() });
      latencies.push(Date.now() - started);
      openAtAnswers.push(sockets.filter((s) => s.open()).length);
      if (res.status === 200) ok++;
    }
    Object.assign(figures, {
      normalRequests: NORMAL_REQUESTS,
      normalRequestsOk: ok,
      slowOpenAtNormalAnswers: Math.min(...openAtAnswers),
      normalMaxLatencyMs: Math.max(...latencies),
    });
    assert.equal(ok, NORMAL_REQUESTS, 'every normal event is accepted');
    assert.deepEqual(
      openAtAnswers,
      Array(NORMAL_REQUESTS).fill(sockets.length),
      'every slow socket was still hanging at each normal answer',
    );
  } finally {
    for (const s of sockets) s.destroy();
    agent.destroy();
    await endpoint.close();
  }
});

test('slow headers and slow bodies are cut off with 408', async (t) => {
  const { endpoint, port } = await start({ maxConnections: 300, short: true });
  let sockets: SlowSocket[] = [];
  try {
    sockets = await slowSockets(port);
    const results = await Promise.all(sockets.map((s) => s.result));
    const headerResults = results.filter((r) => r.kind === 'header');
    const bodyResults = results.filter((r) => r.kind === 'body');
    Object.assign(figures, {
      slowHeaderSockets: headerResults.length,
      slowBodySockets: bodyResults.length,
      slowHeader408: headerResults.filter((r) => r.status === 408).length,
      slowBody408: bodyResults.filter((r) => r.status === 408).length,
      cutOffWithinMs: Math.max(...results.map((r) => r.closedAfterMs ?? Number.POSITIVE_INFINITY)),
    });
    t.diagnostic(JSON.stringify(figures));

    assert.deepEqual(
      results.filter((r) => !r.closedByServer).map((r) => r.kind),
      [],
      'every slow socket was closed by the server',
    );
    for (const r of headerResults) {
      // Either told 408 in JSON, or closed without an answer: never anything else.
      if (r.status !== 0) {
        assert.equal(r.status, 408);
        assert.equal(r.code, 'SEG_REQUEST_TIMEOUT');
      }
    }
    for (const r of bodyResults) {
      assert.equal(r.status, 408, 'a slow body is answered 408');
      assert.ok(r.code === 'SEG_BODY_TIMEOUT' || r.code === 'SEG_REQUEST_TIMEOUT', `code ${r.code}`);
    }
  } finally {
    for (const s of sockets) s.destroy();
    await endpoint.close();
  }
});

/** A TLS socket that connects and sends nothing; says whether its handshake finished, and when it closes. */
function idleSocket(port: number): {
  handshake: Promise<'accepted' | 'dropped'>;
  closed: Promise<void>;
  socket: TLSSocket;
} {
  const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
  socket.on('error', () => {});
  const handshake = new Promise<'accepted' | 'dropped'>((resolve) => {
    socket.once('secureConnect', () => resolve('accepted'));
    socket.once('close', () => resolve('dropped'));
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { handshake, closed, socket };
}

test('maxConnections: idle sockets past the limit take the longest-idle slots; a client is served at once', async (t) => {
  const MAX = 20;
  const OPENED = 40;
  // Default timeouts: the idle sockets let in must stay for the length of the test.
  const { endpoint, url, port } = await start({ maxConnections: MAX, short: false });
  const sockets: TLSSocket[] = [];
  const { cert: ca } = testCert();
  const agent = keepAliveAgent(ca);
  try {
    const started = Date.now();
    const idle = Array.from({ length: OPENED }, () => idleSocket(port));
    for (const s of idle) sockets.push(s.socket);
    const handshakes = await Promise.all(idle.map((s) => s.handshake));
    // Every socket past the limit closed one that sat idle longer: OPENED - MAX are closed by the server.
    let closedByServer = 0;
    await new Promise<void>((resolve) => {
      for (const s of idle) {
        s.closed.then(() => {
          if (++closedByServer === OPENED - MAX) resolve();
        });
      }
    });
    const settledMs = Date.now() - started;
    const evicted = closedByServer;
    const connections = () =>
      new Promise<number>((resolve, reject) =>
        endpoint.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
      );
    const held = await connections();

    // The limit is held by idle sockets only: a client that comes now takes the longest idle one's slot.
    const whileFull = await httpsCall(agent, url, { body: trackEvent() }).then(
      (r) => r.status,
      () => 0,
    );
    const heldAfter = await connections();

    const figures = {
      maxConnections: MAX,
      opened: OPENED,
      handshakesFinished: handshakes.filter((o) => o === 'accepted').length,
      closedByServer: evicted,
      settledMs,
      heldByServer: held,
      statusWhileFull: whileFull,
      heldAfterClient: heldAfter,
    };
    t.diagnostic(JSON.stringify(figures));
    recordFigures('maxConnections', figures);

    assert.equal(held, MAX, `the server holds ${held} connections, limit ${MAX}`);
    assert.equal(whileFull, 200, 'a new client is served while idle sockets hold every slot');
    assert.equal(heldAfter, MAX, 'an idle socket made room for it: still at most the limit');
  } finally {
    for (const s of sockets) s.destroy();
    agent.destroy();
    await endpoint.close();
  }
});
