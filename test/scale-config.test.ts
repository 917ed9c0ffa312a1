// The scale-out flags as the command line reads them: --workers, --postgres, --postgres-table and
// --idempotency-redis, from flags and from the environment.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { type CliConfig, parseConfig, UsageError } from '../src/config.ts';
import { POSTGRES, serviceAddress } from '../src/service-url.ts';

const read = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  parseConfig(['--http', '--api-key', 'k', ...args], env) as CliConfig;

describe('--workers', () => {
  test('one process unless asked; a number, or auto for one a CPU', () => {
    assert.equal(read([]).workers, 1);
    assert.equal(read(['--workers', '2']).workers, 2);
    assert.equal(read(['--workers', 'auto']).workers, availableParallelism());
    assert.equal(read([], { SEGMENT_ENDPOINT_WORKERS: '3' }).workers, 3);
    assert.equal(read(['--workers', '2'], { SEGMENT_ENDPOINT_WORKERS: '3' }).workers, 2, 'the flag wins');
  });

  for (const bad of ['0', '-1', 'two', '1.5', '', String(16 * availableParallelism() + 1)]) {
    test(`refuses "${bad}"`, () => {
      assert.throws(
        () => read([`--workers=${bad}`]),
        (err: Error) => {
          assert.ok(err instanceof UsageError);
          const said =
            bad === '' ? /--workers is given but empty/ : /--workers must be auto or a whole number/;
          assert.match(err.message, said);
          return true;
        },
      );
    });
  }
});

describe('--postgres', () => {
  test('the URL and the table, segment_events unless named', () => {
    assert.equal(read([]).postgres, undefined);
    assert.deepEqual(read(['--postgres', 'postgres://u@db:5432/app']).postgres, {
      url: 'postgres://u@db:5432/app',
      table: 'segment_events',
    });
    const env = {
      SEGMENT_ENDPOINT_POSTGRES_URL: 'postgresql://db/app',
      SEGMENT_ENDPOINT_POSTGRES_TABLE: 'events',
    };
    assert.deepEqual(read([], env).postgres, { url: 'postgresql://db/app', table: 'events' });
  });

  test("where the sink connects, as its start-up line says it: a host and port in the URL's query win", () => {
    // pg reads ?host= and ?port= over the URL's own: the line named one server, the sink used another.
    const cases = [
      ['postgres://u:pw@db:5433/app', 'db:5433/app'],
      ['postgres://u:pw@db/app?host=10.0.0.9&port=6432', '10.0.0.9:6432/app'],
      ['postgres:///app?host=/var/run/postgresql', '/var/run/postgresql:5432/app'],
      // A user and no host, as pg reads it (WHATWG URLs refuse it): a Unix socket's directory in the query.
      ['postgres://app:pw@/events?host=/run/postgresql', '/run/postgresql:5432/events'],
      ['postgres://app@/events', 'localhost:5432/events'],
    ] as const;
    for (const [url, where] of cases) {
      assert.equal(serviceAddress(url, POSTGRES), where, url);
      assert.equal(read(['--postgres', url]).postgres?.url, url, 'taken by --postgres');
    }
  });

  test('refuses what is not a PostgreSQL URL, without repeating it (it may hold a password)', () => {
    assert.throws(
      () => read(['--postgres', 'mysql://u:secret@db/app']),
      (err: Error) => err instanceof UsageError && !err.message.includes('secret'),
    );
  });

  for (const table of ['Events', 'events;drop table x', 'a-b', '1events', 'x'.repeat(43)]) {
    test(`refuses the table name "${table.slice(0, 20)}"`, () => {
      assert.throws(
        () => read(['--postgres', 'postgres://db/app', '--postgres-table', table]),
        /--postgres-table/,
      );
    });
  }

  test('with --handlers, which also says what is done with events, is refused', () => {
    assert.throws(
      () => read(['--postgres', 'postgres://db/app', '--handlers', 'h.mjs']),
      /give one of --handlers and --postgres/,
    );
  });
});

test('--idempotency-redis refuses what is not a Redis URL, without repeating it', () => {
  // A path other than a database number: the Redis client's own "Invalid pathname" named no flag.
  for (const url of [
    'http://u:secret@r:6379',
    'not a url secret',
    'redis://u:secret@r/abc',
    'rediss://r/0/1',
  ]) {
    assert.throws(
      () => read(['--idempotency-redis', url]),
      (err: Error) =>
        err instanceof UsageError &&
        /--idempotency-redis/.test(err.message) &&
        !err.message.includes('secret'),
    );
  }
});

test("a password with an unescaped / ? or # is refused, none of it said: the URL's host ends there", () => {
  // redis://u:123/Secr3t@r reads as host u, port 123 and path /Secr3t@r: the path's refusal said
  // "/Secr3t@r", and a PostgreSQL URL so cut was taken, its "host:port/path" in the start-up line.
  const cases: Array<[string, string]> = [
    ['--idempotency-redis', 'redis://u:123/Secr3t@r:6379'],
    ['--idempotency-redis', 'redis://u:123?Secr3t@r:6379'],
    ['--postgres', 'postgres://u:123/Secr3t@db:5432/app'],
    ['--postgres', 'postgres://u:123#Secr3t@db:5432/app'],
    // Where what comes before the / ? or # is no port, the URL does not parse at all: the same hint.
    ['--idempotency-redis', 'redis://u:pw9/Secr3t@r:6379'],
    ['--idempotency-redis', 'redis://:pw9?Secr3t@r'],
    ['--postgres', 'postgres://u:pw9#Secr3t@db:5432/app'],
  ];
  for (const [flag, url] of cases) {
    assert.throws(
      () => read([flag, url]),
      (err: Error) =>
        err instanceof UsageError &&
        err.message.includes(flag) &&
        /percent-encode/.test(err.message) &&
        !err.message.includes('Secr3t') &&
        !err.message.includes('123') &&
        !err.message.includes('pw9'),
      url,
    );
  }
});

test('--idempotency-redis with --idempotency-max-entries (0 turns suppression off) is refused', () => {
  for (const entries of ['0', '5000']) {
    assert.throws(
      () => read(['--idempotency-redis', 'redis://r', '--idempotency-max-entries', entries]),
      /give one of --idempotency-redis and --idempotency-max-entries/,
    );
  }
});

test('--idempotency-redis', () => {
  assert.equal(read([]).idempotencyRedis, undefined);
  assert.equal(read(['--idempotency-redis', 'redis://r:6379']).idempotencyRedis, 'redis://r:6379');
  for (const url of ['redis://r/', 'redis://r:6379/3'])
    assert.equal(read(['--idempotency-redis', url]).idempotencyRedis, url);
  assert.equal(
    read([], { SEGMENT_ENDPOINT_IDEMPOTENCY_REDIS_URL: 'redis://r' }).idempotencyRedis,
    'redis://r',
  );
});
