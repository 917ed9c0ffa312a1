// How the PostgreSQL sink logs the rows its table refuses: a line a second at most, with their count.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import type { Pool } from 'pg';
import { Refusals } from '../src/sinks/postgres-refusals.ts';

/** Refusals whose log lines are kept; the table is never asked (fewer than 32 in a row). */
function refusals(): { refusals: Refusals; counts: number[] } {
  const counts: number[] = [];
  const noop = () => {};
  const log = {
    error: (obj: object) => counts.push((obj as { events: number }).events),
    warn: noop,
    info: noop,
    debug: noop,
  };
  return { refusals: new Refusals({} as Pool, 'INSERT', log), counts };
}

test('refusals within a second of the last line are logged when the second ends: the last of a burst counted too', async (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  t.after(() => mock.timers.reset());
  const { refusals: table, counts } = refusals();
  for (let n = 0; n < 10; n++) assert.equal(await table.refused(new Error('refused')), undefined);
  assert.deepEqual(counts, [1], 'the first at once');
  mock.timers.tick(999);
  assert.deepEqual(counts, [1]);
  mock.timers.tick(1);
  assert.deepEqual(counts, [1, 9], 'the other nine a second later, not when the next one comes');
  mock.timers.tick(5_000);
  await table.refused(new Error('refused'));
  assert.deepEqual(counts, [1, 9, 1], 'a second after the last line: at once again');
});

test('refusals not logged yet are logged as the sink closes', async () => {
  const { refusals: table, counts } = refusals();
  await table.refused(new Error('refused'));
  await table.refused(new Error('refused'));
  table.flush();
  assert.deepEqual(counts, [1, 1]);
  table.flush();
  assert.deepEqual(counts, [1, 1], 'nothing left to say');
});
