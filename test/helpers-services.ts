import assert from 'node:assert/strict';
import { createClient } from '@redis/client';
import pg from 'pg';
import { trackEvent } from './helpers.ts';
import { type PostgresServer, startPostgres } from './services/postgres.ts';
import { type RedisServer, startRedis } from './services/redis.ts';

// What the tests of a whole command (the built CLI, the single executable) ask of the PostgreSQL and Redis
// they give it: both started, both stopped, and what the command left in each.

/**
 * A throwaway PostgreSQL and Redis for `use`, both stopped after it whatever happens: one that started
 * while the other failed too, or it would keep the test run alive.
 */
export async function withPostgresAndRedis<T>(
  use: (postgres: PostgresServer, redis: RedisServer) => Promise<T>,
): Promise<T> {
  const services = await Promise.allSettled([startPostgres(), startRedis()]);
  try {
    const [postgres, redis] = services;
    if (postgres.status === 'rejected') throw postgres.reason;
    if (redis.status === 'rejected') throw redis.reason;
    return await use(postgres.value, redis.value);
  } finally {
    await Promise.all(services.map((s) => (s.status === 'fulfilled' ? s.value.destroy() : undefined)));
  }
}

/** The message_id of each row of `table`, in the database at `url`. */
export async function messageIdsIn(url: string, table: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT message_id FROM ${table}`);
    return rows.map((row: { message_id: unknown }) => row.message_id);
  } finally {
    await client.end();
  }
}

/** The keys the duplicate filter holds in the Redis at `url`, without the one its start-up probe writes. */
export async function filterKeys(url: string): Promise<string[]> {
  const keys = createClient({ url });
  await keys.connect();
  try {
    return (await keys.keys('*')).filter((key) => key !== 'segment-endpoint:dedup:probe');
  } finally {
    keys.destroy();
  }
}

/**
 * A whole command on a throwaway PostgreSQL and Redis (`--postgres` into `table`, `--idempotency-redis`):
 * one event sent to what `start` started, then `stop`. The event must be the table's one row, and the
 * duplicate filter's key must be in Redis: PostgreSQL drops a repeated event itself (`ON CONFLICT`), so
 * only the key says the command spoke to Redis.
 */
export function storesInPostgresAndRedis<E extends { url: string }>(
  table: string,
  start: (args: string[]) => Promise<E>,
  send: (url: string, event: unknown) => Promise<number>,
  stop: (endpoint: E) => Promise<void>,
): Promise<void> {
  return withPostgresAndRedis(async (postgres, redis) => {
    const args = ['--postgres', postgres.url, '--postgres-table', table];
    const ep = await start([...args, '--idempotency-redis', redis.url]);
    const event = trackEvent();
    assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.deepEqual(await messageIdsIn(postgres.url, table), [event.messageId]);
    const keys = await filterKeys(redis.url);
    assert.equal(keys.length, 1, keys.join());
  });
}
