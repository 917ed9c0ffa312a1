import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as connectTls } from 'node:tls';
import { endAtShutdown } from '../src/connection-end.ts';
import { ConnectionSlots } from '../src/connections.ts';
import { trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { waitUntil } from './helpers-wait.ts';
import { cert, eventRequest, RawConnection, statusLines } from './protocol-harness.ts';

// Who holds a connection slot at maxConnections: an idle keep-alive connection gives its slot to a
// newcomer, a busy one keeps it; one whose answers have stopped flushing (a client that does not read
// them) is closed after requestTimeoutMs.

const HEALTH = 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n';

/** Whether a new connection to `port` (TLS, or TCP when `tcp`) is let in and its /health answered. */
async function served(port: number, tcp = false): Promise<boolean> {
  const connection = new RawConnection(port, tcp);
  try {
    if (!(await Promise.race([connection.ready.then(() => true), connection.close.then(() => false)]))) {
      return false;
    }
    connection.write(HEALTH);
    await connection.until(/\{"status":"ok"\}/);
    return true;
  } catch {
    return false; // closed before its answer
  } finally {
    connection.destroy();
  }
}

/** `socket`, which never reads a byte of what it is sent. */
function nonReader<S extends Socket>(socket: S): S {
  socket.pause();
  socket.on('error', () => {}); // reset by the server: what the tests wait for
  return socket;
}

describe('connection slots at maxConnections', () => {
  const MAX = 3;
  const NEVER_MS = 3_600_000; // a first request's deadline past every sweep of these tests

  /** A socket as the slots see it: it can be destroyed, and says when it closes. */
  class FakeSocket extends EventEmitter {
    destroyed = false;
    /** Bytes written to it, and of those the ones not yet flushed. */
    bytesWritten = 0;
    writableLength = 0;
    /** Ended by the server, in a lingering close; its client closes its side at once unless it `keepsOpen`. */
    ended = false;
    keepsOpen = false;
    /** Already ending, after an answer that closed it (a refusal's, draining's lingering close). */
    writableEnded = false;
    destroy(): this {
      this.destroyed = true;
      setImmediate(() => this.emit('close'));
      return this;
    }
    end(): this {
      this.ended = true;
      if (!this.keepsOpen) setImmediate(() => this.emit('close'));
      return this;
    }
    /** Destroyed, or ended: what a connection closed to admit a newcomer is. */
    get closedByServer(): boolean {
      return this.destroyed || this.ended;
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
    const slots = new ConnectionSlots(2, 30_000, NEVER_MS);
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
    assert.deepEqual([a.closedByServer, b.closedByServer, c.closedByServer], [false, true, false]);
    assert.equal(b.destroyed, false, 'b had a request: ended in a lingering close, not reset');
    assert.equal(slots.size, 2);
    const c1 = start(c);
    admit(d); // both busy: the newcomer goes
    assert.equal(d.destroyed, true);
    a2.emit('close'); // a idle now, and the longest idle
    c1.emit('close');
    admit(e);
    assert.deepEqual([a.closedByServer, c.closedByServer, e.closedByServer], [true, false, false]);
    await closed(a);
    assert.equal(slots.size, 2);
    c.destroy();
    await closed(c);
    assert.equal(slots.size, 1);
    await slots.settled(); // every answer closed
  });

  test('bookkeeping: one closed for a newcomer lingers once it had a request, `max` at most; a shutdown waits for them', async () => {
    const slots = new ConnectionSlots(1, 30_000, NEVER_MS);
    const admit = (socket: FakeSocket) => slots.admit(socket as unknown as Socket);
    const answered = (socket: FakeSocket) => {
      const [req, res] = exchangeOn(socket);
      slots.started(req, res);
      res.emit('close');
    };
    const [a, b, c, d] = [new FakeSocket(), new FakeSocket(), new FakeSocket(), new FakeSocket()];
    a.keepsOpen = true; // its client reads its answers later
    admit(a);
    answered(a);
    admit(b);
    assert.deepEqual([a.ended, a.destroyed], [true, false], 'a had a request: a lingering close');
    assert.equal(slots.size, 1, "a's slot is b's");
    let lingered = false;
    const lingering = slots.lingered().then(() => (lingered = true));
    answered(b);
    admit(c);
    assert.deepEqual([b.ended, b.destroyed], [false, true], 'one lingers already, the cap: b is reset');
    admit(d);
    assert.deepEqual([c.ended, c.destroyed], [false, true], 'c had no request: nothing owed, reset');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lingered, false, 'a shutdown waits for a');
    a.emit('close');
    await lingering;
    answered(d);
    d.keepsOpen = true;
    const e = new FakeSocket();
    admit(e);
    assert.deepEqual([d.ended, d.destroyed], [true, false], 'a has closed: d lingers in its turn');
    slots.closeAll(); // a shutdown past its deadline: the lingering ones go too
    assert.equal(d.destroyed, true, 'closed with the others, though its slot was given away');
    e.destroy();
  });

  test('bookkeeping: one closed for a newcomer while already ending lingers on as it was; a shutdown waits for it', async () => {
    // An answer that closed it (a refusal, draining) set its lingering close: its client may not have
    // read its earlier 200s yet.
    const slots = new ConnectionSlots(1, 30_000, NEVER_MS);
    const ending = Object.assign(new FakeSocket(), { keepsOpen: true, writableEnded: true });
    slots.admit(ending as unknown as Socket);
    const [req, res] = exchangeOn(ending);
    slots.started(req, res);
    res.emit('close');
    const newcomer = new FakeSocket();
    slots.admit(newcomer as unknown as Socket);
    assert.equal(slots.size, 1, "its slot is the newcomer's");
    assert.deepEqual([ending.ended, ending.destroyed], [false, false], 'left to end as it does');
    let lingered = false;
    const lingering = slots.lingered().then(() => (lingered = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lingered, false, 'a shutdown waits for it');
    ending.emit('close');
    await lingering;
    newcomer.destroy();
  });

  test('bookkeeping: a shutdown ends each connection that had a request in a lingering close, and waits for it', async () => {
    const slots = new ConnectionSlots(4, 30_000, NEVER_MS);
    const answered = new FakeSocket();
    const ending = Object.assign(new FakeSocket(), { writableEnded: true });
    const [fresh, busy] = [new FakeSocket(), new FakeSocket()];
    for (const socket of [answered, ending, fresh, busy]) {
      socket.keepsOpen = true;
      slots.admit(socket as unknown as Socket);
    }
    for (const socket of [answered, ending, busy]) {
      const [req, res] = exchangeOn(socket);
      slots.started(req, res);
      if (socket !== busy) res.emit('close');
    }
    slots.endAnswered(20);
    const closed = () => [answered, ending, fresh, busy].map((socket) => socket.closedByServer);
    // Its client may be sending its next request: a moment for it to come and hear 503, then the end.
    assert.deepEqual(closed(), [false, false, false, false], 'none at once');
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.deepEqual(
      closed(),
      [true, false, false, false],
      'the one answered ends; the one ending already goes on; no request yet, or one in progress: left',
    );
    let lingered = false;
    const lingering = slots.lingered().then(() => (lingered = true));
    answered.emit('close');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lingered, false, 'the one ending already is waited for too');
    ending.emit('close');
    await lingering;
    slots.closeAll();
    assert.deepEqual([fresh.destroyed, busy.destroyed], [true, true]);
  });

  test('at a shutdown, a request half sent has the grace to finish, and its answer is written before the end', async () => {
    const socket = Object.assign(new FakeSocket(), { parser: { duration: () => 12 } });
    const [, res] = exchangeOn(socket);
    const answering: ServerResponse[] = [];
    endAtShutdown(socket as unknown as Socket, () => answering, 20);
    assert.equal(socket.ended, false, 'half way through a request: not ended at once');
    answering.push(res); // it came whole within the grace; its answer is on its way
    await delay(40);
    assert.equal(socket.ended, false, 'not ended under its answer');
    res.emit('finish');
    assert.equal(socket.ended, true, 'ended once its answer is written');
    socket.destroy();
  });

  test('answers queued behind a connection that closes are done with: the shutdown does not wait for them', async () => {
    const slots = new ConnectionSlots(2, 30_000, NEVER_MS);
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

  test('bookkeeping: a busy connection keeps its slot while its answers wait, until the stall time', async () => {
    // A client that paused reading is owed the answers it holds (their events may be taken): a newcomer
    // does not take its slot. Past the stall time it is closed, and its slot is free.
    const STALL_MS = 1_000;
    const slots = new ConnectionSlots(1, STALL_MS, NEVER_MS);
    const [a, b, c] = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
    const admit = (socket: FakeSocket) => slots.admit(socket as unknown as Socket);
    admit(a);
    const [head, queued] = [exchangeOn(a), exchangeOn(a, false)];
    for (const [req, res] of [head, queued]) slots.started(req, res);
    const t = Math.floor(performance.now()); // whole: sums of fractions round
    // A handler still running: nothing waits to be written, however long it takes.
    slots.sweep(t);
    slots.sweep(t + 60_000);
    // Its answer written and not taken: kept while it has not stalled for the stall time.
    a.bytesWritten = a.writableLength = 300;
    slots.sweep(t + 60_001);
    slots.sweep(t + 60_002);
    admit(b);
    assert.deepEqual([a.destroyed, b.destroyed], [false, true], 'the newcomer is refused');
    slots.sweep(t + 60_001 + STALL_MS);
    assert.equal(a.destroyed, true, 'closed once its answers flushed nothing for the stall time');
    await closed(a);
    admit(c);
    assert.equal(c.destroyed, false);
    assert.equal(slots.size, 1);
    // The answer queued behind the closed one is done with; should Node close it after all (a write cut
    // short finishes its answer, and Node hands the closed connection on), it is not counted twice.
    head[1].emit('close');
    queued[1].emit('close');
    const [req, res] = exchangeOn(c);
    slots.started(req, res);
    let settled = false;
    const settling = slots.settled().then(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, "the newcomer's answer is still being written");
    res.emit('close');
    await settling;
    c.destroy();
    await closed(c);
  });

  test('bookkeeping: answers that flush nothing for the stall time close their connection', async () => {
    const STALL_MS = 1_000;
    const slots = new ConnectionSlots(2, STALL_MS, NEVER_MS);
    const a = new FakeSocket();
    slots.admit(a as unknown as Socket);
    const [req, res] = exchangeOn(a);
    slots.started(req, res);
    a.bytesWritten = a.writableLength = 300;
    const t = Math.floor(performance.now()); // whole: sums of fractions round
    slots.sweep(t);
    a.bytesWritten = 400; // 100 more written, and 200 flushed: progress
    a.writableLength = 200;
    slots.sweep(t + 900);
    slots.sweep(t + 900 + STALL_MS - 1);
    assert.equal(a.destroyed, false, 'flushing nothing for less than the stall time');
    slots.sweep(t + 900 + STALL_MS);
    assert.equal(a.destroyed, true);
    await closed(a);
    assert.equal(slots.size, 0);
  });

  test('bookkeeping: the slot of a connection closed for stalling is free at once, before its close', () => {
    // Node reports the close a turn of the event loop later, after the turn's new connections are
    // accepted: a newcomer accepted meanwhile gets the slot, not a refusal.
    const STALL_MS = 1_000;
    const slots = new ConnectionSlots(1, STALL_MS, NEVER_MS);
    const [a, b] = [new FakeSocket(), new FakeSocket()];
    slots.admit(a as unknown as Socket);
    const [req, res] = exchangeOn(a);
    slots.started(req, res);
    a.bytesWritten = a.writableLength = 300;
    const t = Math.floor(performance.now());
    slots.sweep(t);
    slots.sweep(t + STALL_MS);
    assert.equal(a.destroyed, true);
    slots.admit(b as unknown as Socket);
    assert.equal(b.destroyed, false, 'the newcomer is let in');
    assert.equal(slots.size, 1);
    b.destroy();
  });

  test('a connection with no first request within its deadline is closed; one that had a request is left to Node', async () => {
    const FIRST_MS = 20_000;
    const slots = new ConnectionSlots(2, 1_000, FIRST_MS);
    const [silent, used] = [new FakeSocket(), new FakeSocket()];
    const t = Math.floor(performance.now());
    slots.admit(silent as unknown as Socket);
    slots.admit(used as unknown as Socket);
    const [req, res] = exchangeOn(used);
    slots.started(req, res);
    res.emit('close'); // answered: idle between requests, Node's keep-alive timeout's to end
    slots.sweep(t + FIRST_MS - 1_000);
    assert.equal(silent.destroyed, false, 'not yet');
    slots.sweep(t + FIRST_MS + 1_000);
    assert.equal(silent.destroyed, true);
    assert.equal(used.destroyed, false);
    assert.equal(slots.size, 1, 'its slot free at once');
    used.destroy();
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

  test('a client pipelining without reading is closed after requestTimeoutMs; others get in', async () => {
    const STALL_MS = 1_000;
    const { endpoint, port } = await listenTls({
      http: true,
      maxConnections: 1,
      headersTimeoutMs: STALL_MS,
      requestTimeoutMs: STALL_MS,
      handlers: { track: () => {} },
    });
    const accepted: Socket[] = [];
    endpoint.server.on('connection', (socket: Socket) => accepted.push(socket));
    const hog = nonReader(connectTcp(port, '127.0.0.1'));
    try {
      await once(hog, 'connect');
      const sent = performance.now();
      hog.write(HEALTH.repeat(150_000)); // 5 MB: more answers than the buffers in between hold
      const held = accepted[0] as Socket;
      await waitUntil(
        () => held.writableLength > 0,
        () => 'answers waiting to be written',
      );
      await waitUntil(
        () => held.closed,
        () => `the server to close the connection whose answers stalled ${STALL_MS} ms ago`,
        STALL_MS + 4_000,
      );
      const after = performance.now() - sent;
      assert.ok(after >= STALL_MS, `closed ${after} ms after its requests, within the stall time`);
      assert.equal(await served(port, true), true, 'a newcomer is served');
    } finally {
      hog.destroy();
      await endpoint.close();
    }
  });

  test('at the cap, a TLS connection whose answers stalled keeps its slot until requestTimeoutMs', async () => {
    const STALL_MS = 2_000;
    const { endpoint, port } = await listenTls({
      maxConnections: 1,
      headersTimeoutMs: STALL_MS,
      requestTimeoutMs: STALL_MS,
      shutdownTimeoutMs: 5_000,
      metricsPath: '/metrics',
      handlers: { track: () => {} },
    });
    const hog = nonReader(connectTls({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }));
    // One request at a time, the next once the server has read the last (a TLS client that pipelines
    // past what Node holds for it has its connection ended after the answers owed, HPE_PAUSED): /metrics,
    // ~3 KB answers.
    const next = () => hog.writable && hog.write('GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n');
    let held: Socket | undefined; // the connection as HTTP sees it: the TLS socket
    endpoint.server.on('request', (req: IncomingMessage) => {
      held ??= req.socket;
      if (req.socket === held) setImmediate(next);
    });
    try {
      await once(hog, 'secureConnect');
      next();
      await waitUntil(
        () => held !== undefined && held.writableLength > 0,
        () => 'answers waiting to be written',
      );
      const stalled = performance.now();
      assert.equal(await served(port), false, 'the newcomer is refused while answers are owed');
      while (!(await served(port))) {
        assert.ok(performance.now() - stalled < STALL_MS + 4_000, 'a newcomer let in after the stall time');
        await delay(100);
      }
      assert.equal(held?.destroyed, true, 'the stalled connection was closed');
      const closing = performance.now();
      await endpoint.close();
      assert.ok(performance.now() - closing < 4_000, 'its answers do not hold up the shutdown');
    } finally {
      hog.destroy();
      await endpoint.close();
    }
  });
});
