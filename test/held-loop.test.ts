import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { openRedisIdempotency } from '../src/idempotency-redis.ts';
import type { EndpointServer } from '../src/index.ts';
import { createHandler, silentLogger } from '../src/index.ts';
import { COMMAND_MS } from '../src/redis-client.ts';
import { API_KEY, basic, trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { inject } from './helpers-inject.ts';
import { waitUntil } from './helpers-wait.ts';
import { eventRequest, RawConnection, statusLines } from './protocol-harness.ts';
import { startRedis } from './services/redis.ts';

// The event loop held past a deadline (a long collection, a partner's handler that computes for a second,
// a host's own synchronous work): what arrived meanwhile waits in the socket, and the loop's timers run
// before it reads the socket again. A deadline judged then refused what had come in time.

const BODY_TIMEOUT_MS = 1_000;

/** Holds the event loop (and this whole process, the server in it) for `ms`. */
function holdTheLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // nothing: the loop is held
  }
}

describe('the event loop held past a deadline', () => {
  let endpoint: EndpointServer;
  let port: number;

  before(async () => {
    ({ endpoint, port } = await listenTls({ bodyTimeoutMs: BODY_TIMEOUT_MS, handlers: { track: () => {} } }));
  });

  after(() => endpoint.close());

  /**
   * The status lines answering `request`, its last `tail` bytes written while the loop is held (from the
   * check phase: the timers phase comes next, and the poll that reads the socket after it).
   */
  async function heldAcrossItsDeadline(request: Buffer, tail: number): Promise<Array<string | undefined>> {
    const conn = new RawConnection(port);
    await conn.ready;
    conn.socket.write(request.subarray(0, request.length - tail));
    await delay(50); // the server reads the headers: the body's deadline runs from here
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        conn.socket.write(request.subarray(request.length - tail)); // in the kernel's buffers at once
        holdTheLoop(BODY_TIMEOUT_MS + 300);
        resolve();
      }),
    );
    await conn.until(/HTTP\/1\.1 \d{3}/);
    conn.destroy();
    return statusLines(conn.text);
  }

  test("a body's last bytes that arrived while the loop was held are read before its deadline is judged", async () => {
    const request = Buffer.from(eventRequest(JSON.stringify(trackEvent())));
    assert.deepEqual(await heldAcrossItsDeadline(request, 40), ['200']);
  });

  test('a gzip body whose last bytes arrived while the loop was held is decoded, not refused 408 as it is', async () => {
    // zlib decodes on libuv's threads: its end is read by a later poll than the one that read the body's
    // last bytes, and a 408 is final (Segment does not retry it): the event would be lost.
    const body = gzipSync(JSON.stringify(trackEvent()));
    const head =
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
      `Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n`;
    assert.deepEqual(await heldAcrossItsDeadline(Buffer.concat([Buffer.from(head), body]), 10), ['200']);
  });
});

describe("the event loop held past a Redis command's bound", () => {
  test("the shared filter's claim is answered by a reply that came while the loop was held", async (t) => {
    const server = await startRedis();
    t.after(() => server.destroy());
    const store = await openRedisIdempotency(server.url, { ttlMs: 60_000, log: silentLogger });
    t.after(() => store.close());
    const claim = store.claim('k\nheld-1');
    // The client writes its commands in the check phase (a setImmediate queued as the claim is sent,
    // a few promise turns from now): held right after that write, Redis answers while the loop is held.
    for (let turn = 0; turn < 20; turn++) await null;
    setImmediate(() => holdTheLoop(COMMAND_MS + 300));
    assert.equal(await claim, 'new');
  });
});

// A client on a thread of its own, so that it reads while this thread, the server's, is held: it
// connects, reads nothing until told `read`, and sends one more request each time it is told `next`.
const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
const socket = require('node:net').connect(workerData.port, '127.0.0.1');
socket.pause();
let bytes = 0;
socket.on('data', (chunk) => { bytes += chunk.length; });
socket.on('error', () => {}); // its 'close' says so
socket.on('close', () => parentPort.postMessage({ closed: true, bytes }));
parentPort.on('message', (said) => {
  if (said === 'next') socket.write('GET /metrics HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n');
  else if (said === 'read') socket.resume();
  else socket.destroy();
});
`;

describe('the event loop held past the stall time of answers not read', () => {
  const STALL_MS = 1_000;

  /**
   * Asserts that a client whose answers stalled, and which reads them while the loop is held past the
   * stall time, keeps its connection; `thenHoldMs`: the loop held again in the check phase right after.
   */
  async function readWhileHeld(t: TestContext, thenHoldMs: number): Promise<void> {
    const { endpoint, port } = await listenTls({
      http: true,
      headersTimeoutMs: STALL_MS,
      requestTimeoutMs: STALL_MS,
      metricsPath: '/metrics',
      handlers: { track: () => {} },
    });
    const client = new Worker(CLIENT, { eval: true, workerData: { port } });
    t.after(async () => {
      await client.terminate(); // its connection closes: the shutdown waits for no answer
      await endpoint.close();
    });
    let closed = false;
    client.on('message', (said: { closed?: boolean }) => {
      closed ||= said.closed === true;
    });
    // One request at a time, the next once the server has read the last, until its answers (~3 KB of
    // metrics each) fill the buffers in between and Node stops reading: no request is left half read.
    let held: Socket | undefined;
    let lastRequest = performance.now();
    endpoint.server.on('request', (req: IncomingMessage) => {
      held ??= req.socket as Socket;
      lastRequest = performance.now();
      setImmediate(() => client.postMessage('next'));
    });
    client.postMessage('next');
    await waitUntil(
      () => held !== undefined && held.writableLength > 0 && performance.now() - lastRequest > 300,
      () => 'answers waiting to be written, no more requests read',
    );
    const stalled = held as Socket;
    // The sweeps see the answers flush nothing; the client starts reading as the loop is held past
    // the stall time, from the check phase: the timers phase comes next, the poll that writes after it.
    await delay(300);
    const flushedBefore = stalled.bytesWritten - stalled.writableLength;
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        client.postMessage('read');
        holdTheLoop(STALL_MS + 500);
        if (thenHoldMs > 0) setImmediate(() => holdTheLoop(thenHoldMs));
        resolve();
      }),
    );
    await delay(600);
    assert.equal(stalled.destroyed, false, 'closed though its answers were read while the loop was held');
    assert.equal(closed, false, 'the client saw its connection closed');
    assert.ok(stalled.bytesWritten - stalled.writableLength > flushedBefore, 'its answers flow again');
  }

  test('a client that reads its answers while the loop is held keeps its connection', (t) =>
    readWhileHeld(t, 0));

  test('a client that read while the loop was held keeps its connection when the loop is held again before the next sweep', (t) =>
    // In the check phase after the first poll that writes what the client made room for: the sweeps'
    // interval is STALL_MS / 4, and held 1.2 of it, the next sweep's turn comes right after.
    readWhileHeld(t, STALL_MS * 0.3));
});

describe("the event loop held past the wait for a handler's end after its timeout", () => {
  test('a handler that ended while the loop was held is heard: its event is remembered, not run again', async (t) => {
    const TIMEOUT = 100; // a handler past it is waited for five of these: its claim kept meanwhile
    // The handler's end comes from another thread, as a database's reply comes from a socket: told a
    // number of ms, the thread posts `ended` that long after.
    const ender = new Worker(
      "const { parentPort } = require('node:worker_threads');" +
        "parentPort.on('message', (ms) => setTimeout(() => parentPort.postMessage('ended'), ms));",
      { eval: true },
    );
    t.after(() => ender.terminate());
    const runs: string[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlerTimeoutMs: TIMEOUT,
      handlers: {
        track: (event) => {
          runs.push(String(event.messageId));
          return new Promise<void>((resolve) => ender.once('message', () => resolve()));
        },
      },
    });
    const event = trackEvent({ messageId: 'held-late' });
    const first = await inject(handler, { body: event });
    assert.deepEqual([first.status, first.json().code], [503, 'SEG_HANDLER_TIMEOUT']);
    // It ends 3 timeouts from now; the loop is held from now until 7 timeouts on, past the end of the
    // wait (5 timeouts after the timeout): the wait's timer comes before the poll that hears the end.
    ender.postMessage(TIMEOUT * 3);
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        holdTheLoop(TIMEOUT * 7);
        resolve();
      }),
    );
    await handler.idle();
    const copy = await inject(handler, { body: event });
    assert.deepEqual(runs, ['held-late'], 'run again: its success, heard late, was not remembered');
    assert.equal(copy.status, 200);
  });
});
