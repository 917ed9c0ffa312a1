import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
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
});
