import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient } from '@redis/client';
import pg from 'pg';
import { type PostgresServer, startPostgres } from './services/postgres.ts';
import { type RedisServer, startRedis } from './services/redis.ts';

// The real servers other tests run against (test/services/): each starts, answers a real client,
// stops, starts again where it was, and goes away without a trace.

describe('a PostgreSQL server of the test', () => {
  let server: PostgresServer | undefined;
  after(() => server?.destroy());

  /** The rows `sql` gives, through a new connection. */
  const query = async (url: string, sql: string) => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };

  test('answers queries; after stop and start it answers again with its data kept', async () => {
    server = await startPostgres();
    assert.match(server.url, new RegExp(`^postgres://postgres@127\\.0\\.0\\.1:${server.port}/postgres$`));
    assert.deepEqual(await query(server.url, 'SELECT 1 AS one'), [{ one: 1 }]);
    await query(server.url, 'CREATE TABLE seen (id int); INSERT INTO seen VALUES (7)');
    await server.stop();
    await assert.rejects(query(server.url, 'SELECT 1'), /ECONNREFUSED/);
    await server.start();
    assert.deepEqual(await query(server.url, 'SELECT id FROM seen'), [{ id: 7 }]);
    await server.destroy();
    await server.destroy();
    await assert.rejects(query(server.url, 'SELECT 1'), /ECONNREFUSED/);
  });
});

describe('a Redis server of the test', () => {
  let server: RedisServer | undefined;
  after(() => server?.destroy());

  /** A client of `url` that does not reconnect: it fails at once while the server is down. */
  const clientOf = (url: string) =>
    createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 1_000 } });

  /** Runs `use` with a client connected to `url`. */
  const withClient = async <T>(url: string, use: (c: ReturnType<typeof clientOf>) => Promise<T>) => {
    const client = clientOf(url);
    client.on('error', () => {}); // the rejection of connect() says it
    await client.connect();
    try {
      return await use(client);
    } finally {
      client.destroy();
    }
  };

  test('answers PING, SET and GET; after stop and start it answers again, empty', async () => {
    server = await startRedis();
    assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
    const url = server.url;
    await withClient(url, async (c) => {
      assert.equal(await c.ping(), 'PONG');
      assert.equal(await c.set('greeting', 'hello'), 'OK');
      assert.equal(await c.get('greeting'), 'hello');
    });
    await server.stop();
    await assert.rejects(
      withClient(url, (c) => c.ping()),
      /ECONNREFUSED/,
    );
    await server.start();
    assert.equal(await withClient(url, (c) => c.get('greeting')), null);
    await server.destroy();
    await server.destroy();
    await assert.rejects(
      withClient(url, (c) => c.ping()),
      /ECONNREFUSED/,
    );
  });
});
