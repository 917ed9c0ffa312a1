import assert from 'node:assert/strict';
import { describe, type Mock, type MockTracker, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadline, Deadlines } from '../src/deadlines.ts';

const MS = 30;
// Timers run late on a loaded machine: waits are generous, assertions are about order, not timing.
const GUARD_MS = 10_000;

/** A task that writes its name to `fired` when its deadline passes, then runs `onExpired`. */
class Task extends Deadline {
  readonly name: string;
  readonly fired: string[];
  readonly onExpired: (() => void) | undefined;
  firedAt = 0;

  constructor(name: string, fired: string[], onExpired?: () => void) {
    super();
    this.name = name;
    this.fired = fired;
    this.onExpired = onExpired;
  }

  override expired(): void {
    this.firedAt = performance.now();
    this.fired.push(this.name);
    this.onExpired?.();
  }
}

/** One task for each name, all writing to `fired`. */
function tasks<Names extends string[]>(fired: string[], ...names: Names): { [K in keyof Names]: Task } {
  return names.map((name) => new Task(name, fired)) as { [K in keyof Names]: Task };
}

/** Waits until `done()` holds, checking often; fails after GUARD_MS. */
async function until(done: () => boolean, what: string): Promise<void> {
  const start = performance.now();
  while (!done()) {
    if (performance.now() - start > GUARD_MS) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Holds the event loop until `time` (performance.now()). */
function holdUntil(time: number): void {
  while (performance.now() < time) {
    // held
  }
}

type TimerSpy = Mock<(...args: unknown[]) => unknown>;

/** Spies on the interval timers (they still run): which ones `list` started and which were cleared. */
function watchTimers(
  mock: MockTracker,
  list: Deadlines,
): { started: () => unknown[]; stopped: () => unknown[] } {
  const setSpy = mock.method(globalThis, 'setInterval') as unknown as TimerSpy;
  const clearSpy = mock.method(globalThis, 'clearInterval') as unknown as TimerSpy;
  const started = () => setSpy.mock.calls.filter((c) => c.arguments[2] === list).map((c) => c.result);
  const stopped = () => clearSpy.mock.calls.map((c) => c.arguments[0]).filter((t) => started().includes(t));
  return { started, stopped };
}

describe('Deadlines', () => {
  test('a task fires once, after its deadline and not before', async (t) => {
    // The clock stands still from the add to the first sweep: on a loaded machine the thread can be
    // paused for longer than MS between the two, and the deadline would have passed (seen under load).
    const realNow = performance.now.bind(performance);
    let stopped: number | undefined = realNow();
    t.mock.method(performance, 'now', () => stopped ?? realNow());
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const task = new Task('a', fired);
    const start = performance.now();
    list.add(task);
    list.sweep();
    assert.deepEqual(fired, [], 'not before its deadline');
    stopped = undefined;
    await until(() => fired.length > 0, 'the deadline');
    assert.ok(task.firedAt - start >= MS, `fired after ${task.firedAt - start} ms`);
    await sleep(3 * MS);
    list.sweep();
    assert.deepEqual(fired, ['a'], 'once');
    assert.equal(task.list, undefined);
  });

  test('the tick is a twentieth of the deadline, from 1 ms to 250 ms', (t) => {
    const spy = t.mock.method(globalThis, 'setInterval') as unknown as TimerSpy;
    for (const [ms, tick] of [
      [30, 2],
      [5, 1],
      [0.5, 1],
      [1_234, 62],
      [4_000, 200],
      [10_000, 250],
      [60_000, 250],
    ] as const) {
      const list = new Deadlines(ms);
      const task = new Task('a', []);
      list.add(task);
      task.cancel();
      list.sweep(); // the list is empty: the timer stops
      assert.equal(spy.mock.calls.at(-1)?.arguments[1], tick, `${ms} ms`);
    }
  });

  test('a cancelled task never fires; cancelling twice, late or never added is harmless', async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const [a, b, c] = tasks(fired, 'a', 'b', 'c');
    for (const task of [a, b, c]) list.add(task);
    b.cancel();
    b.cancel();
    new Task('never added', fired).cancel();
    await until(() => fired.length === 2, 'a and c');
    await sleep(3 * MS);
    list.sweep();
    assert.deepEqual(fired, ['a', 'c']);
    a.cancel();
    assert.deepEqual(fired, ['a', 'c']);
  });

  test('tasks fire in the order they were added', async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const names = Array.from({ length: 50 }, (_, i) => `t${i}`);
    for (const name of names.slice(0, 25)) list.add(new Task(name, fired));
    await sleep(MS / 3);
    for (const name of names.slice(25)) list.add(new Task(name, fired));
    await until(() => fired.length === names.length, 'every task');
    assert.deepEqual(fired, names);
  });

  test('removing a middle task keeps the list intact around it', async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const [a, b, c, d] = tasks(fired, 'a', 'b', 'c', 'd');
    for (const task of [a, b, c, d]) list.add(task);
    list.remove(b);
    assert.equal(b.list, undefined);
    assert.equal(b.prev, undefined);
    assert.equal(b.next, undefined);
    assert.equal(a.next, c);
    assert.equal(c.prev, a);
    c.cancel();
    assert.equal(a.next, d);
    assert.equal(d.prev, a);
    list.add(b); // back on, now last
    await until(() => fired.length === 3, 'a, d and b');
    assert.deepEqual(fired, ['a', 'd', 'b']);
  });

  test('removing the head or the tail keeps the rest in order', async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const [a, b, c, d] = tasks(fired, 'a', 'b', 'c', 'd');
    for (const task of [a, b, c, d]) list.add(task);
    a.cancel();
    d.cancel();
    assert.equal(b.prev, undefined);
    assert.equal(c.next, undefined);
    list.add(new Task('e', fired));
    new Deadlines(MS).remove(b); // another list's task: left alone
    assert.equal(b.list, list);
    await until(() => fired.length === 3, 'b, c and e');
    assert.deepEqual(fired, ['b', 'c', 'e']);
  });

  test('one timer while tasks are pending; it stops when the list empties and starts again on add', async (t) => {
    const list = new Deadlines(MS);
    const timers = watchTimers(t.mock, list);
    const fired: string[] = [];
    list.add(new Task('a', fired));
    list.add(new Task('b', fired));
    assert.equal(timers.started().length, 1, 'one timer for the list');
    await until(() => timers.stopped().length === 1, 'the timer to stop');
    assert.deepEqual(fired, ['a', 'b']);
    await sleep(3 * MS);
    assert.equal(timers.started().length, 1, 'nothing pending: no timer');

    list.add(new Task('c', fired));
    assert.equal(timers.started().length, 2, 'started again');
    await until(() => timers.stopped().length === 2, 'the second timer to stop');
    assert.deepEqual(fired, ['a', 'b', 'c']);
  });

  test('a list emptied by cancelling stops its timer at the next tick', async (t) => {
    const list = new Deadlines(10 * MS); // a deadline far beyond the tick
    const timers = watchTimers(t.mock, list);
    const fired: string[] = [];
    const task = new Task('a', fired);
    list.add(task);
    task.cancel();
    await until(() => timers.stopped().length === 1, 'the timer to stop');
    assert.equal(timers.started().length, 1);
    assert.deepEqual(fired, []);
  });

  test('a task added while another expires fires after its own deadline', async (t) => {
    const list = new Deadlines(MS);
    const timers = watchTimers(t.mock, list);
    const fired: string[] = [];
    const b = new Task('b', fired);
    const a = new Task('a', fired, () => list.add(b));
    list.add(a);
    await until(() => fired.length === 2, 'b');
    assert.deepEqual(fired, ['a', 'b']);
    assert.ok(b.firedAt - a.firedAt >= MS, `b fired ${b.firedAt - a.firedAt} ms after a`);
    await until(() => timers.stopped().length === 1, 'the timer to stop');
    assert.equal(timers.started().length, 1, 'the timer ran on between them');
  });

  test("a deadline that passes after the timer's turn waits for a poll: the loop held before the sweep", async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const [a, b] = tasks(fired, 'a', 'b');
    list.add(a);
    holdUntil(a.due - MS / 2);
    list.add(b); // due half a deadline after a
    holdUntil(a.due);
    // Queued before the sweep the timer's turn queues: it holds the loop past b's deadline, and what came
    // for b meanwhile is read by the poll after the sweep, not before it.
    setImmediate(() => holdUntil(b.due));
    list.tick(); // the interval's turn, a's deadline passed: a sweep is queued for the check phase
    await new Promise((resolve) => setImmediate(resolve)); // runs after the sweep
    assert.deepEqual(fired, ['a'], 'b waits for the poll after the sweep');
    b.cancel(); // what came for b in time, read by that poll
    await sleep(3 * MS);
    assert.deepEqual(fired, ['a']);
  });

  test('a task may add itself again when it expires', async () => {
    const list = new Deadlines(MS);
    const fired: string[] = [];
    const task: Task = new Task('a', fired, () => {
      if (fired.length < 3) list.add(task);
    });
    list.add(task);
    await until(() => fired.length === 3, 'three expiries');
    await sleep(3 * MS);
    list.sweep();
    assert.deepEqual(fired, ['a', 'a', 'a']);
  });
});
