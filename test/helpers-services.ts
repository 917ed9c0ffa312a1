import { createClient } from '@redis/client';
import pg from 'pg';
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
