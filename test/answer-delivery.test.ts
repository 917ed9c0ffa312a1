import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect as connectTcp } from 'node:net';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { createHandler, type Handlers, silentLogger } from '../src/index.ts';
import { API_KEY, basic, trackEvent } from './helpers.ts';
import { listenTls, testCert } from './helpers-cert.ts';
import { parseRaw, rawTls } from './helpers-clients.ts';
import { inject } from './helpers-inject.ts';
import { waitUntil } from './helpers-wait.ts';
import { statusLines } from './protocol-harness.ts';

// A success is written at the end of the loop's turn that decided it (respond.ts, AnswerBatch): whatever
// happens to its connection or to the process in between, a processed event's sender hears its 200.

const { cert } = testCert();

const eventRequest = (body: string) =>
  `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** A TLS connection that keeps what it receives; `closed` resolves with all of it. */
function open(port: number): Promise<{ socket: TLSSocket; closed: Promise<string> }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () =>
      resolve({ socket, closed }),
    );
    const closed = new Promise<string>((done) =>
      socket.on('close', () => done(Buffer.concat(chunks).toString())),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset shows as the close
  });
}

for (const kind of ['synchronous', 'async, awaiting nothing', 'async, awaiting a timer'] as const) {
  test(`a sender that half-closes after its request still hears its 200 (${kind} handler)`, async () => {
    const handled: string[] = [];
    const record = (event: { messageId?: string | null }) => {
      handled.push(String(event.messageId));
    };
    const tracks = {
      synchronous: record,
      'async, awaiting nothing': async (event: { messageId?: string | null }) => record(event),
      'async, awaiting a timer': async (event: { messageId?: string | null }) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        record(event);
      },
    };
    const track = tracks[kind];
    const { endpoint, port } = await listenTls({ handlers: { track } });
    try {
      const senders = await Promise.all(Array.from({ length: 10 }, () => open(port)));
      const events = senders.map(({ socket }) => {
        const event = trackEvent();
        // The request, then the sender's end of the stream (TLS close_notify and FIN) at once.
        socket.end(eventRequest(JSON.stringify(event)));
        return event;
      });
      // Each connection ends after its answer.
      const received = await Promise.all(senders.map(({ closed }) => closed));
      assert.deepEqual(
        received.map((text) => parseRaw(text).status),
        events.map(() => 200),
      );
      assert.deepEqual(handled.sort(), events.map((e) => e.messageId).sort());
    } finally {
      await endpoint.close();
    }
  });
}

/**
 * `handlers` in a node:https server of one's own, letting half-open connections finish (the README's
 * remedy) or at Node's defaults; each of 10 senders sends an event of `types[i % types.length]` and
 * half-closes at once. Resolves with the status each heard (0: none) once every connection has ended.
 */
async function halfClosingSenders(handlers: Handlers, halfOpen: boolean, types = ['track']) {
  const server = createHttpsServer(
    testCert(),
    createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers }),
  );
  if (halfOpen) {
    Object.assign(server, { httpAllowHalfOpen: true });
    server.on('secureConnection', (socket: TLSSocket) => {
      socket.allowHalfOpen = true;
    });
  }
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  try {
    const senders = await Promise.all(Array.from({ length: 10 }, () => open(port)));
    senders.forEach(({ socket }, i) => {
      const event = { ...trackEvent(), type: types[i % types.length] };
      socket.end(eventRequest(JSON.stringify(event)));
    });
    const received = await Promise.all(senders.map(({ closed }) => closed));
    return received.map((text) => (text === '' ? 0 : parseRaw(text).status));
  } finally {
    await new Promise((closed) => server.close(closed));
  }
}

test("in a node:https server of one's own that lets half-open connections finish, a sender that half-closes hears its 200", async () => {
  // The README's remedy; there an async handler's answer waits for the end of its turn.
  assert.deepEqual(await halfClosingSenders({ track: async () => {} }, true), Array(10).fill(200));
});

test("in a node:https server of one's own at Node's defaults, a sender that half-closes still hears an async handler's 200 when it awaited nothing", async () => {
  // Node ends such a connection as it reads the sender's FIN, in the turn of the request: the answer is
  // written before that turn ends.
  assert.deepEqual(await halfClosingSenders({ track: async () => {} }, false), Array(10).fill(200));
});

test("at Node's defaults, an async handler's 200 is not held behind a synchronous one's waiting for the turn's end", async () => {
  // The synchronous handler's answer may be lost to its half-closing sender (README); the async one's
  // goes out once the promise reactions have run, and takes the other along.
  const statuses = await halfClosingSenders({ identify: () => {}, track: async () => {} }, false, [
    'identify',
    'track',
  ]);
  assert.deepEqual(
    statuses.filter((_, i) => i % 2 === 1),
    Array(5).fill(200),
  );
});

test('an answer a handler settles in a later turn is written before that turn ends, not held for the one after', async () => {
  // The turn that counts is the request's, noted as it is taken: had the settling's been noted instead,
  // this answer would pass for one of that turn's and wait for its end, behind whatever the turn queued.
  // Half-open connections let finish (the README's remedy): there an answer settled in its request's turn
  // waits for that turn's end, the branch a late-noted turn would wrongly take; at Node's defaults the
  // sender's FIN would close the connection before any answer.
  const server = createHttpsServer(testCert());
  Object.assign(server, { httpAllowHalfOpen: true });
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.allowHalfOpen = true;
  });
  const answers: ServerResponse[] = [];
  server.on('request', (_req, res: ServerResponse) => answers.push(res));
  const writtenBeforeTurnEnd: boolean[] = [];
  const track = () =>
    new Promise<void>((settled) =>
      setTimeout(() => {
        const res = answers[answers.length - 1];
        settled();
        setImmediate(() => writtenBeforeTurnEnd.push(res?.writableEnded === true));
      }, 5),
    );
  server.on('request', createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track } }));
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  try {
    const { socket, closed } = await open(port);
    socket.end(eventRequest(JSON.stringify(trackEvent())));
    assert.equal(parseRaw(await closed).status, 200);
    assert.deepEqual(writtenBeforeTurnEnd, [true]);
  } finally {
    await new Promise((stopped) => server.close(stopped));
  }
});

test('a sender that ends its side during the TLS handshake does not hold up the shutdown', async () => {
  const { endpoint, port } = await listenTls({ handlers: { track: () => {} } });
  // A TCP connection that sends half a ClientHello, then its FIN.
  const half = connectTcp(port, '127.0.0.1', () =>
    half.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])),
  );
  half.on('error', () => {});
  await new Promise((resolve) => half.on('close', resolve));
  const started = Date.now();
  await endpoint.close();
  assert.ok(Date.now() - started < 2_000, `the shutdown took ${Date.now() - started} ms`);
});

test('every event processed before a shutdown is answered 200, however soon the shutdown comes', async () => {
  const handled = new Set<string>();
  let closing: Promise<void> | undefined;
  const { endpoint, port } = await listenTls({
    handlers: {
      track: (event) => {
        handled.add(String(event.messageId));
        // From the second event on, the shutdown starts in the same turn of the loop as the answers are
        // written, right after them: their bytes are not yet flushed (over TLS, a turn later).
        if (handled.size === 2) setImmediate(() => (closing = endpoint.close()));
      },
    },
  });
  const senders = await Promise.all(Array.from({ length: 50 }, () => open(port)));
  const ids = senders.map(({ socket }) => {
    const event = trackEvent();
    socket.write(eventRequest(JSON.stringify(event)));
    return event.messageId;
  });
  await waitUntil(
    () => closing !== undefined,
    () => `${handled.size} events handled, no shutdown`,
  );
  await closing;
  for (const { socket } of senders) socket.destroy();
  const received = await Promise.all(senders.map(({ closed }) => closed));
  const unanswered = ids.filter((id, i) => handled.has(id) && parseRaw(received[i] ?? '').status !== 200);
  assert.ok(handled.size >= 2);
  assert.deepEqual(unanswered, [], 'processed before the shutdown, not answered');
});

test('a success decided before draining began and written after it closes the connection', async () => {
  const { endpoint, port } = await listenTls({
    handlers: {
      // Draining begins after this event's answer is decided, before the turn ends.
      track: () => queueMicrotask(() => endpoint.handler.drain()),
    },
  });
  try {
    // Keep-alive asked for: only draining closes the connection.
    const answer = parseRaw(await rawTls(port, cert, eventRequest(JSON.stringify(trackEvent()))));
    assert.equal(answer.status, 200);
    assert.match(answer.headers, /\r\nconnection: close/);
  } finally {
    await endpoint.close();
  }
});

test('a refusal decided while draining closes the connection, and says so', async () => {
  // A handler that fails once the drain has begun (a store that cannot write, RetryError): its 503 said
  // keep-alive, then the drain closed the connection under it, and a sender that reused it got a reset.
  const { endpoint, port } = await listenTls({
    handlers: {
      track: async () => {
        endpoint.handler.drain();
        await new Promise((resolve) => setImmediate(resolve));
        return { status: 503, message: 'the store cannot write' };
      },
    },
  });
  try {
    const answer = parseRaw(await rawTls(port, cert, eventRequest(JSON.stringify(trackEvent()))));
    assert.equal(answer.status, 503);
    assert.match(answer.headers, /\r\nconnection: close/i);
  } finally {
    await endpoint.close();
  }
});

test('a success that does not go to a socket is written at once, before the turn ends', async () => {
  // An injected request (light-my-request, a framework's inject()) has no kernel socket: nothing to
  // write together with, so draining that begins later in the turn does not reach it.
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    handlers: { track: () => queueMicrotask(() => handler.drain()) },
  });
  const res = await inject(handler, { body: trackEvent() });
  assert.equal(res.status, 200);
  assert.equal(res.headers.connection, 'keep-alive');
});

test('draining with events pipelined before a CONNECT: each answered, then the 405', async () => {
  // Node frees the parser for a CONNECT, which was how an answer knew whether it was the last on its
  // connection: while draining, the first answer took itself for the last and closed the connection,
  // the next event taken and never answered.
  let entered = 0;
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { endpoint, port } = await listenTls({
    handlers: {
      track: async () => {
        entered++;
        await gate;
      },
    },
  });
  try {
    const events = [trackEvent(), trackEvent()];
    const connect = 'CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n';
    const text = rawTls(
      port,
      cert,
      `${events.map((e) => eventRequest(JSON.stringify(e))).join('')}${connect}`,
    );
    await waitUntil(
      () => entered === 2,
      () => `${entered} events handled`,
    );
    endpoint.handler.drain();
    release();
    assert.deepEqual(statusLines(await text), ['200', '200', '405'], await text);
  } finally {
    await endpoint.close();
  }
});

test('a keep-alive request half sent when the shutdown begins may finish, and hears 503 and the close', async () => {
  // Its connection had a request, and is ended in a lingering close at the shutdown: at once, reading
  // nothing more, it dropped the rest of this one unanswered.
  const { endpoint, port } = await listenTls({ handlers: { track: () => {} } });
  let atServer: TLSSocket | undefined;
  endpoint.server.once('secureConnection', (accepted: TLSSocket) => {
    atServer = accepted;
  });
  const { socket, closed } = await open(port);
  socket.write(eventRequest(JSON.stringify(trackEvent())));
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  await waitUntil(
    () => statusLines(text).length === 1,
    () => `the first answer: ${text}`,
  );
  const next = eventRequest(JSON.stringify(trackEvent()));
  const before = atServer?.bytesRead ?? 0;
  socket.write(next.slice(0, 40)); // half its headers
  // Read by the server (its TLS record, decrypted and parsed in the same turn), not for a fixed time.
  await waitUntil(
    () => (atServer?.bytesRead ?? 0) > before,
    () => 'the half-sent request read by the server',
  );
  const closing = endpoint.close();
  await new Promise((resolve) => setTimeout(resolve, 100)); // within the grace (1 s)
  socket.write(next.slice(40));
  const answers = await closed;
  await closing;
  assert.deepEqual(statusLines(answers), ['200', '503'], answers);
  assert.match(answers, /SEG_DRAINING/);
});
