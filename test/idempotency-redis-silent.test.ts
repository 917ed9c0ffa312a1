import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { openRedisIdempotency, type RedisIdempotencyStore } from '../src/idempotency-redis.ts';
import { silentLogger } from '../src/index.ts';
import { countingHandler, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { eventually, within } from './helpers-wait.ts';
import { freePort } from './services/process.ts';
import { type RedisServer, startRedis } from './services/redis.ts';

// A Redis address that accepts connections and never answers (a stopped Redis behind a proxy, a port
// that is something else): the endpoint must neither wait for it to start nor stay stuck on it once a
// real Redis answers there again.

/** A server on `port` that accepts every connection and never writes a byte. */
async function silentPeer(port: number): Promise<{ server: Server; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, sockets };
}

/**
 * A TCP proxy to Redis on `target` whose connections made so far can be frozen: they stay open and pass
 * nothing on from then on, as a proxy whose Redis went away; connections made after are passed on.
 */
async function freezableProxy(target: number) {
  const pairs: Array<{ client: Socket; upstream: Socket; frozen: boolean }> = [];
  const server = createServer((client) => {
    const pair = { client, upstream: connect(target, '127.0.0.1'), frozen: false };
    pairs.push(pair);
    client.on('data', (chunk) => pair.frozen || pair.upstream.write(chunk));
    pair.upstream.on('data', (chunk) => pair.frozen || client.write(chunk));
    for (const socket of [client, pair.upstream]) {
      socket.on('error', () => {});
      socket.on('close', () => (socket === client ? pair.upstream : client).destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    freeze: () => {
      for (const pair of pairs) pair.frozen = true;
    },
    close: () => {
      server.close();
      for (const pair of pairs) pair.client.destroy();
    },
  };
}

describe('a Redis address that accepts and never answers', { timeout: 30_000 }, () => {
  const stores: RedisIdempotencyStore[] = [];
  let redis: RedisServer;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await redis.destroy();
  });

  test('at start: open resolves within seconds, not ready, and events are refused 503', async () => {
    const peer = await silentPeer(await freePort());
    try {
      const port = (peer.server.address() as { port: number }).port;
      // Waiting for the client's 'ready' or 'error', neither of which came: the endpoint never listened.
      const store = await within(
        openRedisIdempotency(`redis://127.0.0.1:${port}`, { ttlMs: 60_000, log: silentLogger }),
        6_000,
        'open',
      );
      stores.push(store);
      assert.equal(store.ready, false);
      const { handler, calls } = countingHandler(store, []);
      const res = await inject(handler, { body: trackEvent({ messageId: 'silent-start' }) });
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
      assert.deepEqual(calls, []);
    } finally {
      for (const socket of peer.sockets) socket.destroy();
      peer.server.close();
    }
  });

  test('met on a reconnection: given up, and Redis found again once it answers there', async () => {
    const store = await openRedisIdempotency(redis.url, { ttlMs: 60_000, log: silentLogger });
    stores.push(store);
    const { handler, calls } = countingHandler(store, []);
    assert.equal((await inject(handler, { body: trackEvent({ messageId: 'before' }) })).status, 200);
    await redis.stop();
    // The store reconnects to a peer that never answers, which then stops listening (the connection it
    // took stays open), and Redis comes back on the port.
    const peer = await silentPeer(redis.port);
    await eventually(async () => peer.sockets.length > 0, 'a reconnection to the silent peer', 10_000);
    peer.server.close(); // its callback waits for the connections: the port is free at once
    try {
      await redis.start();
      // Its handshake, waiting on the silent connection, had no deadline: events were refused for good.
      await eventually(async () => store.ready, 'ready again', 10_000);
      const res = await inject(handler, { body: trackEvent({ messageId: 'after' }) });
      assert.equal(res.status, 200);
      assert.deepEqual(calls, ['before', 'after']);
    } finally {
      for (const socket of peer.sockets) socket.destroy();
    }
  });

  test('a connection nobody answers any more, under traffic: made again, and events checked again', async () => {
    const proxy = await freezableProxy(redis.port);
    try {
      const store = await openRedisIdempotency(proxy.url, { ttlMs: 60_000, log: silentLogger });
      stores.push(store);
      const { handler, calls } = countingHandler(store, []);
      assert.equal((await inject(handler, { body: trackEvent({ messageId: 'first' }) })).status, 200);
      proxy.freeze();
      // Events keep coming, a command each: the connection is never silent, and its socket timeout never
      // fires. Refused (503) while nothing answers, then taken again on a new connection.
      let status = 0;
      await eventually(
        async () => {
          status = (await inject(handler, { body: trackEvent({ messageId: 'later' }) })).status;
          return status === 200;
        },
        'an event taken again on a new connection',
        10_000,
      );
      assert.deepEqual(calls, ['first', 'later']);
    } finally {
      proxy.close();
    }
  });
});
