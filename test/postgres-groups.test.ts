// How the PostgreSQL sink cuts its queue into INSERTs: at most MAX_GROUP events, and at most some
// millions of characters of their JSON text, so that an INSERT of large events stays within the timeout;
// and the characters waiting, which bound the queue, counted as rows come, leave and come back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupSize, type Row, RowQueue } from '../src/sinks/postgres-rows.ts';

const row = (bytes: number) => ({
  receivedAt: '2026-12-01T00:00:00.000Z',
  source: 'a1b2c3d4e5f6',
  messageId: null,
  type: 'track',
  settings: '{}',
  event: 'x'.repeat(bytes),
});

test('a group is every row waiting, up to the count', () => {
  assert.equal(groupSize([row(10), row(10), row(10)], 500, 1024), 3);
  assert.equal(
    groupSize(
      Array.from({ length: 600 }, () => row(10)),
      500,
      1 << 20,
    ),
    500,
  );
  assert.equal(groupSize([], 500, 1024), 0);
});

test('a group stops before the row that takes its text past the characters, unless that row is the first', () => {
  // 300 events of 500 KB in one INSERT took PostgreSQL ~5 s here: past the 4 s statement timeout, every
  // one of them answered 503, again and again.
  assert.equal(groupSize([row(400), row(400), row(400)], 500, 1000), 2);
  assert.equal(groupSize([row(5000), row(10)], 500, 1000), 1, 'a row longer than the characters goes alone');
  assert.equal(
    groupSize(
      Array.from({ length: 300 }, () => row(500_000)),
      500,
      8 << 20,
    ),
    16,
  );
});

test('the queue counts the characters waiting as rows are taken, put back and taken out', () => {
  const queued = (bytes: number, settings = '{}'): Row => ({
    ...row(bytes),
    settings,
    resolve: () => {},
    reject: () => {},
    conflicts: 0,
  });
  const queue = new RowQueue();
  for (const bytes of [100, 200, 300]) queue.push(queued(bytes));
  queue.push(queued(50, '{"region":"eu"}'));
  assert.deepEqual([queue.length, queue.characters], [4, 100 + 200 + 300 + 50 + 3 * 2 + 15]);
  const group = queue.take(500, 310);
  assert.deepEqual(
    group.map((r) => r.event.length),
    [100, 200],
  );
  assert.deepEqual([queue.length, queue.characters], [2, 300 + 50 + 2 + 15]);
  queue.putBack(group); // a group sent again first (a conflict, no connection to spare)
  assert.deepEqual([queue.length, queue.characters], [4, 671]);
  assert.equal(queue.take(500, 1 << 20).length, 4, 'all of them, the whole queue');
  assert.deepEqual([queue.length, queue.characters], [0, 0]);
  queue.push(queued(10));
  assert.equal(queue.takeAll().length, 1);
  assert.deepEqual([queue.length, queue.characters], [0, 0]);
});
