import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { API_KEY, basic, trackEvent } from './helpers.ts';
import { listenTls, testCert } from './helpers-cert.ts';
import { gate, waitUntil } from './helpers-wait.ts';

// Requests pipelined on one connection are answered in order (Node queues the answers behind the first).
// An answer that closes the connection is the last one Node writes on it: whatever is queued behind it is
// never written, and never reported closed either.

const { cert } = testCert();

const eventRequest = (body: string, host = 'Host: localhost\r\n') =>
  `POST / HTTP/1.1\r\n${host}Authorization: ${basic(API_KEY)}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** A TLS connection that writes `text` at once; `received` resolves with all it got once it closes. */
function pipeline(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () =>
      socket.write(text),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset shows as the close
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/** `n` events (messageIds m-0, m-1, ...) pipelined at once on one connection: the status of each answer. */
async function pipelineEvents(port: number, n: number) {
  const events = Array.from({ length: n }, (_, i) => trackEvent({ messageId: `m-${i}` }));
  const text = await pipeline(port, events.map((event) => eventRequest(JSON.stringify(event))).join(''));
  return { events, statuses: answers(text).map((answer) => answer.status) };
}

/**
 * `n` requests of 1 KiB each (messageIds m-000000, m-000001, ... from `first`; `properties.tail` the
 * messageId again, to tell an event spliced from two), in one buffer: 16 of them to a TLS record of 16 KiB.
 */
function sizedRequests(n: number, first = 0): Buffer {
  const sized = (i: number) => {
    const id = `m-${String(i).padStart(6, '0')}`;
    const request = (pad: string) =>
      eventRequest(JSON.stringify(trackEvent({ messageId: id, properties: { pad, tail: id } })));
    return request('x'.repeat(1024 - Buffer.byteLength(request(''))));
  };
  const all = Buffer.from(Array.from({ length: n }, (_, i) => sized(first + i)).join(''));
  assert.equal(all.length, n * 1024);
  return all;
}

/**
 * A TLS client that writes `n` sized requests at once, reads its answers only 1.5 s later, and meanwhile
 * goes on sending (16 more, 16 KiB, every 20 ms) until the server ends the connection, then ends its side
 * (or 3 s at most: a server that keeps up and closes nothing would be sent to for good): resolves with all
 * it received once the connection closes. The ones it goes on sending are new events (messageIds after
 * the first `n`): a repeat would be answered 200 as a duplicate without being taken.
 */
function lateReader(port: number, n: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () => {
      socket.write(sizedRequests(n));
      socket.pause();
      setTimeout(() => socket.resume(), 1_500);
      let next = n;
      const sending = setInterval(() => {
        if (socket.writable) socket.write(sizedRequests(16, next));
        next += 16;
      }, 20);
      const stop = () => {
        clearInterval(sending);
        clearTimeout(enough);
      };
      const end = () => {
        stop();
        socket.end();
      };
      const enough = setTimeout(end, 3_000);
      socket.on('end', end);
      socket.on('close', stop);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset shows as the close
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/**
 * An endpoint (`options` added) that takes every event, answering 200 at once, and a `lateReader` that
 * has sent it `n` requests of 1 KiB (2,000 unless said) half a second ago: the messageIds taken, and what
 * the client receives.
 */
async function lateReaderOn(options: { maxConnections?: number; shutdownTimeoutMs?: number }, n = 2000) {
  const taken: string[] = [];
  const { endpoint, port } = await listenTls({
    maxInFlight: 100_000,
    ...options,
    handlers: { track: (event) => void taken.push(String(event.messageId)) },
  });
  const received = lateReader(port, n);
  await new Promise((resolve) => setTimeout(resolve, 500));
  // On a slow host the handshake and the first requests may take longer: the tests need some taken.
  await waitUntil(
    () => taken.length > 0,
    () => 'an event taken',
  );
  return { taken, endpoint, port, received };
}

/**
 * Runs `attempt` until the client has pipelined past what Node holds (some of the 2,000 events taken, not
 * all), three times at most: on a host whose socket buffers absorb every answer, the server keeps up and
 * takes them all, and the case never arises. Every try must answer 200 for each event it took.
 */
async function pastWhatNodeHolds(
  attempt: () => Promise<{ taken: readonly string[]; statuses: readonly number[] }>,
  { shutdown = false } = {},
): Promise<void> {
  const sent = 2000;
  const takenPerTry: number[] = [];
  while (takenPerTry.length < 3 && !takenPerTry.some((n) => n > 0 && n < sent)) {
    const { taken, statuses } = await attempt();
    // With `shutdown`, a request Node reads once the shutdown began, from a client still sending, is told
    // 503 and the connection closed (README "The request pipeline", Draining): one, after every 200.
    const refused = statuses.slice(taken.length);
    assert.ok(
      refused.length <= (shutdown ? 1 : 0) && refused.every((status) => status === 503),
      `only a shutdown's one 503 after the 200s: ${JSON.stringify(refused)}`,
    );
    assert.deepEqual(
      statuses.slice(0, taken.length).filter((status) => status !== 200),
      [],
      'a 200 received for every event taken',
    );
    assert.ok(statuses.length >= taken.length, `${statuses.length} answers for ${taken.length} events taken`);
    takenPerTry.push(taken.length);
  }
  const premise = `the client pipelined past what Node holds: taken of ${sent}, per try: ${takenPerTry.join(', ')}`;
  assert.ok(
    takenPerTry.some((n) => n > 0 && n < sent),
    premise,
  );
}

/** Each answer's status and whether it closes the connection, in order. */
function answers(text: string): Array<{ status: number; close: boolean }> {
  return text
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter(Boolean)
    .map((answer) => ({
      status: Number(answer.slice(9, 12)),
      close: /\r\nconnection: close\r\n/i.test(answer),
    }));
}

test('a shutdown answers every pipelined event already taken, closing the connection after the last', async () => {
  const taken: string[] = [];
  const release = gate();
  const { endpoint, port } = await listenTls({
    shutdownTimeoutMs: 5_000,
    handlers: {
      track: async (event) => {
        taken.push(String(event.messageId));
        await release.opened;
      },
    },
  });
  const events = [trackEvent(), trackEvent(), trackEvent()];
  const received = pipeline(port, events.map((event) => eventRequest(JSON.stringify(event))).join(''));
  await waitUntil(
    () => taken.length === events.length,
    () => `${taken.length} of ${events.length} events taken`,
  );
  const started = Date.now();
  const closing = endpoint.close();
  release.open();
  assert.deepEqual(answers(await received), [
    { status: 200, close: false },
    { status: 200, close: false },
    { status: 200, close: true },
  ]);
  await closing;
  assert.ok(Date.now() - started < 4_000, `the shutdown took ${Date.now() - started} ms`);
});

test('requests pipelined behind a refusal that closes the connection do not hold up the shutdown', async () => {
  const { endpoint, port } = await listenTls({ shutdownTimeoutMs: 5_000, handlers: { track: () => {} } });
  const twoHosts = eventRequest(JSON.stringify(trackEvent()), 'Host: localhost\r\nHost: other\r\n');
  const text = [
    twoHosts,
    eventRequest(JSON.stringify(trackEvent())),
    eventRequest(JSON.stringify(trackEvent())),
  ];
  const received = answers(await pipeline(port, text.join('')));
  assert.deepEqual(received, [{ status: 400, close: true }]);
  const started = Date.now();
  await endpoint.close();
  assert.ok(Date.now() - started < 4_000, `the shutdown took ${Date.now() - started} ms`);
});

test('a client that pipelines past what Node holds for it: no valid event refused as malformed, the connection closed', async () => {
  // Node pauses its parser once the answers queued behind a pending one pass its limit; a chunk that
  // comes meanwhile is refused with HPE_PAUSED. That was answered 400 SEG_BAD_REQUEST (a valid event
  // refused for good: Segment does not retry a 400), and the parser later went on mid-stream.
  const stored: string[] = [];
  const { endpoint, port } = await listenTls({
    maxInFlight: 8,
    handlers: { track: async (event) => void stored.push(String(event.messageId)) },
  });
  const events = Array.from({ length: 400 }, () => trackEvent());
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<string>((resolve) => {
    timer = setTimeout(resolve, 10_000, 'still open');
  });
  const text = await Promise.race([
    pipeline(port, events.map((event) => eventRequest(JSON.stringify(event))).join('')),
    open,
  ]);
  clearTimeout(timer);
  await endpoint.close();
  assert.notEqual(text, 'still open', 'the connection is closed, not left with requests unanswered');
  const statuses = answers(text).map((answer) => answer.status);
  assert.ok(statuses.length > 0, 'the first answers came');
  assert.deepEqual(
    statuses.filter((status) => status >= 400 && status < 500),
    [],
    `final refusals among ${statuses.length} answers`,
  );
});

test('a client that pipelines past what Node holds for it: every event taken is answered before the connection ends', async () => {
  // Over TLS the bytes Node reads while its parser is paused are dropped (HPE_PAUSED). The connection
  // cannot go on past them, but the events already taken on it are owed their answers: destroyed at
  // once, they were stored with no 200 to say so, and stored again by the sender's retry.
  // At most 8 events in flight: those past them are answered 503 at once, and the answers pile up.
  const taken: string[] = [];
  const { endpoint, port } = await listenTls({
    maxInFlight: 8,
    handlers: {
      track: async (event) => {
        await new Promise((resolve) => setImmediate(resolve));
        taken.push(String(event.messageId));
      },
    },
  });
  const { events, statuses } = await pipelineEvents(port, 400);
  await endpoint.close();
  assert.ok(
    statuses.length < events.length,
    'the client pipelined past what Node holds (the case of this test)',
  );
  assert.deepEqual(
    statuses.filter((status) => status !== 200 && status !== 503),
    [],
    'nothing refused for good',
  );
  const answered200 = events.filter((_, i) => statuses[i] === 200).map((event) => String(event.messageId));
  assert.deepEqual(taken.sort(), answered200.sort(), 'each event taken answered 200, and only those');
  assert.ok(taken.length > 0, 'events were taken before the connection ended');
});

test('an event pipelined behind a refusal that closes the connection is not taken: it can never be answered', async () => {
  // Node still hands over the requests it read behind an answer that closes the connection, and writes
  // none of their answers. Taken, their events would be stored with no 200 to say so, and stored again by
  // the sender's retry (an event without a messageId, or one the duplicate filter has forgotten).
  const taken: string[] = [];
  const { endpoint, port } = await listenTls({
    maxBodyBytes: 1_000,
    handlers: { track: (event) => void taken.push(String(event.event)) },
  });
  const behind = eventRequest(JSON.stringify(trackEvent({ event: 'behind' })));
  const twoHosts = eventRequest(JSON.stringify(trackEvent()), 'Host: localhost\r\nHost: other\r\n');
  const tooLarge =
    `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(API_KEY)}\r\n` +
    `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n${' '.repeat(2_000)}\r\n0\r\n\r\n`;
  const expectFailed = eventRequest(JSON.stringify(trackEvent())).replace(
    '\r\n\r\n',
    '\r\nExpect: 200-ok\r\n\r\n',
  );
  // Node ends the connection itself after a final answer to a request that expected 100 Continue and
  // was not invited to send its body (this one, its key unknown, sends it anyway).
  const uninvited = eventRequest(JSON.stringify(trackEvent()))
    .replace('\r\n\r\n', '\r\nExpect: 100-continue\r\n\r\n')
    .replace(basic(API_KEY), basic('unknown-key'));
  for (const [refused, status] of [
    [twoHosts, 400],
    [tooLarge, 413],
    [expectFailed, 417],
    [uninvited, 401],
  ] as const) {
    const received = answers(await pipeline(port, refused + behind + behind));
    assert.deepEqual(received, [{ status, close: true }], `${status}`);
  }
  await endpoint.close();
  assert.deepEqual(
    taken.filter((name) => name === 'behind'),
    [],
    'no event behind a closing answer was taken',
  );
});

test('a client that pipelines past what Node holds for it receives every 200 written before the connection ends', async () => {
  // Every event answered 200 at once (a synchronous handler, no shedding): the answers owed are many, and
  // the client still sending when the connection closed. Closed while its requests were unread, the
  // connection was reset, and a reset makes the client's side discard the answers it had not yet read:
  // 200s written, events stored, and their senders never told.
  await pastWhatNodeHolds(async () => {
    const taken: string[] = [];
    const { endpoint, port } = await listenTls({
      maxInFlight: 100_000,
      handlers: { track: (event) => void taken.push(String(event.messageId)) },
    });
    const { statuses } = await pipelineEvents(port, 2000);
    await endpoint.close();
    return { taken, statuses };
  });
});

test('a request the dropped bytes cut is not taken when Node resumes its parser mid-request', async () => {
  // Requests of 1 KiB, written so that the 16 KiB TLS records start half way through one: HPE_PAUSED
  // drops whole records, and when the answers drain Node resumes the parser from the middle of the cut
  // request, completing its body with the second half of a request 16 further on (same layout: valid
  // JSON). That spliced event was taken, and never answered (its answer behind the closing one).
  let taken: Array<{ messageId: string; tail: string }> = [];
  let allTaken = () => {};
  const { endpoint, port } = await listenTls({
    maxInFlight: 100_000,
    handlers: {
      track: (event) => {
        const tail = (event.properties as { tail?: unknown } | undefined)?.tail;
        taken.push({ messageId: String(event.messageId), tail: String(tail) });
        if (taken.length === 2000) allTaken();
      },
    },
  });
  const all = sizedRequests(2000);
  // The case needs the server to fall behind its client: on a host that let it keep up, every request is
  // taken and the connection stays open (until its keep-alive timeout, 65 s): tried again, three times at
  // most. Each try must splice nothing.
  const spliced: Array<{ messageId: string; tail: string }> = [];
  for (let attempt = 0; attempt < 3 && (attempt === 0 || taken.length === 2000); attempt++) {
    taken = [];
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () => {
        for (let at = 0, size = 16_384 + 512; at < all.length; at += size, size = 16_384) {
          socket.write(all.subarray(at, at + size));
        }
      });
      allTaken = () => socket.destroy();
      socket.resume();
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
    spliced.push(...taken.filter((event) => event.messageId !== event.tail));
  }
  await endpoint.close();
  assert.ok(taken.length < 2000, 'the client pipelined past what Node holds (the case of this test)');
  assert.deepEqual(spliced, [], 'no event spliced from two requests');
});

test('a connection in its lingering close is not the idle one closed to admit a newcomer at maxConnections', async () => {
  // Requests of 1 KiB written at once: the 16 KiB TLS records end on a request's end, so HPE_PAUSED cuts
  // none, and once its owed answers are written the connection held no answer in progress: idle, as the
  // slots counted it, and closed to admit a newcomer. Its client had not read its 200s yet and was still
  // sending: the close was a reset, and the client discarded the 200s of events taken.
  await pastWhatNodeHolds(async () => {
    const { taken, endpoint, port, received } = await lateReaderOn({ maxConnections: 2 });
    // Two newcomers: one takes the free slot, the other finds the cap.
    await Promise.all(
      [0, 1].map(
        () =>
          new Promise<void>((resolve) => {
            const other = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () =>
              setTimeout(() => other.destroy(), 200),
            );
            other.on('error', () => {});
            other.on('close', () => resolve());
          }),
      ),
    );
    const statuses = answers(await received).map((answer) => answer.status);
    await endpoint.close();
    return { taken, statuses };
  });
});

test('a graceful shutdown while a client the server kept up with is still sending: it reads every 200', async () => {
  // 64 requests, then 16 more every 20 ms: the server takes each as it comes, and its connection is idle
  // between them, every 200 written, none read yet. Node's own close of the connections it counts idle
  // (closeIdleConnections) reset it under what the client still sent, and the client discarded them all.
  const { taken, endpoint, received } = await lateReaderOn({ shutdownTimeoutMs: 10_000 }, 64);
  await waitUntil(
    () => taken.length >= 64,
    () => `${taken.length} of the first 64 events taken`,
  );
  const closing = endpoint.close();
  const statuses = answers(await received).map((answer) => answer.status);
  await closing;
  // Requests that came while the last answers were flushed heard 503: the last answer, at most.
  if (statuses.at(-1) === 503) statuses.pop();
  assert.deepEqual(statuses, Array(taken.length).fill(200), 'a 200 for every event taken, nothing refused');
});

test('a keep-alive request refused while draining ends its connection in a lingering close: the client reads its 200s', async () => {
  // An event in flight holds the shutdown. Meanwhile a client whose 200s are unread sends more: the
  // first hears 503 and `Connection: close`, and Node ended the connection and destroyed it at once,
  // reset under what the client still sent. The client discarded the 200s it had not read.
  const held = gate();
  let holding = false;
  const taken: string[] = [];
  const { endpoint, port } = await listenTls({
    maxInFlight: 100_000,
    shutdownTimeoutMs: 10_000,
    handlers: {
      track: (event) => void taken.push(String(event.messageId)),
      identify: () => {
        holding = true;
        return held.opened;
      },
    },
  });
  const holder = pipeline(port, eventRequest(JSON.stringify(trackEvent({ type: 'identify' }))));
  const received = lateReader(port, 64);
  await waitUntil(
    () => holding && taken.length >= 64,
    () => `${taken.length} of the first 64 events taken; identify ${holding ? '' : 'not '}held`,
  );
  const closing = endpoint.close();
  await new Promise((resolve) => setTimeout(resolve, 200)); // the client sends 16 more, ten times
  held.open();
  const statuses = answers(await received).map((answer) => answer.status);
  await closing;
  assert.deepEqual(answers(await holder), [{ status: 200, close: true }]);
  assert.equal(statuses.at(-1), 503, 'the request that came while draining refused');
  assert.deepEqual(statuses.slice(0, -1), Array(taken.length).fill(200), 'a 200 for every event taken');
});

/** A TLS connection to `port` that the server let in, trying again while the server closes newcomers. */
async function admitted(port: number): Promise<TLSSocket> {
  for (let tries = 1; ; tries++) {
    const socket = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
    socket.on('error', () => {});
    const handshake = await new Promise<boolean>((resolve) => {
      socket.once('secureConnect', () => resolve(true));
      socket.once('close', () => resolve(false));
    });
    if (handshake) return socket;
    assert.ok(tries < 100, 'a newcomer let in within 100 tries');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a keep-alive connection closed to admit a newcomer at maxConnections still delivers the 200s its client has not read', async () => {
  // The server kept up with its client: every event taken and answered, the connection idle, the
  // longest idle one, and closed for a newcomer. Its client had not read its 200s yet and goes on
  // sending: closed under what it sends, the connection was reset, and the client lost every 200.
  const taken: string[] = [];
  const { endpoint, port } = await listenTls({
    maxConnections: 1,
    handlers: { track: (event) => void taken.push(String(event.messageId)) },
  });
  const requests = sizedRequests(50);
  const chunks: Buffer[] = [];
  const client = connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () =>
    client.write(requests),
  );
  client.pause();
  client.on('data', (chunk: Buffer) => chunks.push(chunk));
  client.on('error', () => {}); // a reset shows as the close
  // Until the connection closes, or brings the 50 answers.
  const received = new Promise<string>((resolve) => {
    const all = () => resolve(Buffer.concat(chunks).toString());
    client.on('data', () => answers(Buffer.concat(chunks).toString()).length === 50 && all());
    client.on('close', all);
  });
  await waitUntil(
    () => taken.length === 50,
    () => `${taken.length} of 50 events taken`,
  );
  // The newcomer takes the only slot once the first connection is idle, its answers written: the first
  // connection is closed then.
  const newcomer = await admitted(port);
  // The first client goes on sending for a while, then reads.
  const sending = setInterval(() => {
    if (client.writable) client.write(requests.subarray(0, 1024));
  }, 20);
  await new Promise((resolve) => setTimeout(resolve, 300));
  client.resume();
  client.on('end', () => client.end());
  const statuses = answers(await received).map((answer) => answer.status);
  clearInterval(sending);
  newcomer.destroy();
  await endpoint.close();
  assert.deepEqual(statuses, Array(50).fill(200), 'a 200 for every event taken');
  assert.equal(taken.length, 50, 'nothing taken after the close began');
});

test('a graceful shutdown during a lingering close waits for it: the client still sending reads every 200', async () => {
  // Node's own close of the connections it counts idle (closeIdleConnections) would reset one whose
  // answers are all flushed, its client not having read them yet.
  await pastWhatNodeHolds(
    async () => {
      const { taken, endpoint, received } = await lateReaderOn({ shutdownTimeoutMs: 10_000 });
      const closing = endpoint.close();
      const statuses = answers(await received).map((answer) => answer.status);
      await closing;
      return { taken, statuses };
    },
    { shutdown: true },
  );
});
