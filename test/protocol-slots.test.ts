import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { ConnectionSlots } from '../src/connections.ts';
import { trackEvent } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { cert, eventRequest, RawConnection, statusLines } from './protocol-harness.ts';

// Who holds a connection slot at maxConnections: an idle keep-alive connection gives its slot to a
// newcomer, a busy one keeps it.

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
