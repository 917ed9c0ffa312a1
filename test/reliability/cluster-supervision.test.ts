// --workers when a serving worker dies while another keeps failing to start, and when the primary's wall
// clock steps: a worker that served is replaced as any other, and only a worker whose event loop is held
// is taken for held.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { CLI, spawnClean } from '../helpers-spawn.ts';
import { waitUntil, within } from '../helpers-wait.ts';
import {
  drainThenFail,
  FIVE_STARTS_MS,
  freshStatuses,
  GUARD_MS,
  handlersModule,
  killedAndReplaced,
  listeningPids,
  setUp,
} from './cluster-harness.ts';
import { startEndpoint, stopCleanly } from './harness.ts';

test("the serving worker's death is replaced, however many times another has failed to start meanwhile", async (t) => {
  // Worker 2's replacements died before listening while worker 1 served (replaced, as they should be),
  // and each was counted towards the five in a row that stop a primary with none serving. Worker 1 then
  // died once: none served for the moment, the count was past five, and the primary stopped the service
  // (exit 1), saying that workers had died before listening, worker 1 among them.
  const { dir, start } = setUp(t, 'serving-dies');
  const broken = JSON.stringify(join(dir, 'broken'));
  const ep = await start(['--handlers', handlersModule(dir, `if (existsSync(${broken})) process.exit(2);`)]);
  writeFileSync(join(dir, 'broken'), '');
  const [worker2] = listeningPids(ep.output(), 2);
  assert.ok(worker2 !== undefined, ep.output());
  process.kill(worker2, 'SIGKILL');
  await waitUntil(
    () => (ep.output().match(/worker 2 exited with code 2/g)?.length ?? 0) >= 5,
    () => `five replacements of worker 2 dead, in:\n${ep.output()}`,
    FIVE_STARTS_MS,
  );
  await killedAndReplaced(ep, 1);
  assert.doesNotMatch(ep.output(), /died before listening: stopping/);
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
});

test("a worker that cannot start, while the serving worker's replacement is on its way: replaced, not the end", async (t) => {
  // Worker 2's module cannot load (a database it reaches at import went away) and says so. Said while
  // none served, that stops the primary: every worker would say the same at start. Said while worker 1,
  // which has served, was being replaced, it stopped a service that was about to serve again.
  const { dir, start } = setUp(t, 'refused-in-gap');
  const at = (name: string) => JSON.stringify(join(dir, name));
  const refuse = `if (existsSync(${at('broken')})) { writeFileSync(${at('waiting')}, ''); while (!existsSync(${at('now')})) await new Promise((r) => setTimeout(r, 10)); throw new Error('cannot reach the database'); }`;
  const ep = await start(['--handlers', handlersModule(dir, refuse)]);
  writeFileSync(join(dir, 'broken'), '');
  const [worker2] = listeningPids(ep.output(), 2);
  assert.ok(worker2 !== undefined, ep.output());
  process.kill(worker2, 'SIGKILL');
  await waitUntil(
    () => existsSync(join(dir, 'waiting')),
    () => `worker 2's replacement loading its module, in:\n${ep.output()}`,
    GUARD_MS,
  );
  // Its replacement waits to refuse until worker 1 is down: it says so within ~10 ms, while worker 1's
  // replacement waits out its 100 ms backoff.
  const killed = killedAndReplaced(ep, 1);
  writeFileSync(join(dir, 'now'), '');
  await killed;
  assert.match(ep.output(), /worker 2 could not start/);
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
});

test("one worker's module refusing at the first start while the others start: the others serve, it is retried", async (t) => {
  // A cause of one process alone (a database's connection limit, reached by the third worker's pool) made
  // worker 2 refuse before the others listened: the primary took it for every worker's answer and
  // stopped the service. Had the refusal come after one listened, 2 of 3 served: timing decided.
  const { dir, flags } = setUp(t, 'one-refuses');
  const at = (name: string) => JSON.stringify(join(dir, name));
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    [
      `import { existsSync, writeFileSync } from 'node:fs';`,
      `if (process.env.SEGMENT_ENDPOINT_WORKER === '2') {`,
      `  writeFileSync(${at('refusing')}, '');`,
      `  throw new Error('too many connections for role "segment"');`,
      '}',
      // The others start once worker 2's refusal has had time to reach the primary.
      `while (!existsSync(${at('refusing')})) await new Promise((r) => setTimeout(r, 5));`,
      'await new Promise((r) => setTimeout(r, 500));',
      'export default { track() {} };',
      '',
    ].join('\n'),
  );
  const three = flags.map((flag) => (flag === '2' ? '3' : flag));
  const ep = await startEndpoint([...three, '--handlers', module]);
  t.after(() => void ep.child.kill('SIGKILL'));
  await waitUntil(
    () => listeningPids(ep.output(), 1).length + listeningPids(ep.output(), 3).length === 2,
    () => `workers 1 and 3 listening, in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.deepEqual(await freshStatuses(t, ep, 4), [200, 200, 200, 200], ep.output());
  // Why worker 2 did not start is said once a worker serves, and it is tried again.
  await waitUntil(
    () =>
      (ep.output().match(/too many connections[^\n]*"msg":"worker 2 could not start"/g)?.length ?? 0) >= 2,
    () => `worker 2 said and retried, in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.equal(ep.child.exitCode, null, ep.output());
  await stopCleanly(ep);
});

/**
 * A --workers 3 primary whose module has workers 1 and 2 refuse at once, and worker 3 never finish
 * loading (it awaits for ever).
 */
function refuseTwiceHangOnce(t: { after(fn: () => Promise<void> | void): void }, name: string) {
  const { dir, flags } = setUp(t, name);
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    [
      `const worker = process.env.SEGMENT_ENDPOINT_WORKER;`,
      `if (worker !== '3') throw new Error('cannot reach the database from worker ' + worker);`,
      'await new Promise(() => setInterval(() => {}, 60_000)); // a connection that never answers',
      'export default { track() {} };',
      '',
    ].join('\n'),
  );
  const three = flags.map((flag) => (flag === '2' ? '3' : flag));
  const primary = spawnClean(process.execPath, [...CLI, ...three, '--handlers', module]);
  t.after(() => void primary.child.kill('SIGKILL'));
  return primary;
}

test('refusals waiting for a worker that never finishes starting are said at SIGTERM, and the exit is 1', async (t) => {
  // They waited for the third worker to listen or refuse: a SIGTERM drained, exited 0, and why workers 1
  // and 2 could not start was never said.
  const primary = refuseTwiceHangOnce(t, 'refused-then-term');
  await waitUntil(
    () => (primary.stderr().match(/could not start: said once another starts/g)?.length ?? 0) === 2,
    () => `two refusals waiting, in:\n${primary.stderr()}`,
    GUARD_MS,
  );
  primary.child.kill('SIGTERM');
  assert.equal(await within(primary.exit, GUARD_MS * 2, 'the primary stopped'), 1);
  assert.match(primary.stderr(), /cannot reach the database from worker [12]/);
});

test('refusals waiting for a worker that never finishes starting are said within 10 s, and retried', async (t) => {
  const primary = refuseTwiceHangOnce(t, 'refused-then-hang');
  const said = (n: number) =>
    new RegExp(`cannot reach the database from worker ${n}[^\\n]*"msg":"worker ${n} could not start"`);
  // Both are said in one turn of the primary's loop, as two writes: the pipe may hand them over apart.
  await waitUntil(
    () => said(1).test(primary.stderr()) && said(2).test(primary.stderr()),
    () => `both refusals said, in:\n${primary.stderr()}`,
    GUARD_MS * 2, // its 10 s wait, after the workers' start
  );
  const lines = primary.stderr().split('\n');
  const at = (n: number) => lines.findIndex((line) => said(n).test(line));
  assert.equal(Math.abs(at(1) - at(2)), 1, `said together, in:\n${primary.stderr()}`);
  assert.equal(primary.child.exitCode, null, 'still waiting for worker 3, as one process would');
});

/**
 * Workers started under a primary whose `clock` (`Date.now` or `performance.now`) jumps 30 s forward,
 * then three of the watchdog's looks (one a second): none was taken for held, and both still serve.
 */
async function noWorkerKilledWhenTheClockJumps(t: TestContext, name: string, clock: string): Promise<void> {
  const { dir, start } = setUp(t, name);
  const preload = join(dir, `${name}.cjs`);
  const jump = JSON.stringify(join(dir, 'jump'));
  writeFileSync(
    preload,
    `if (process.env.SEGMENT_ENDPOINT_WORKER === undefined) {
       const { existsSync } = require('node:fs');
       const real = ${clock}.bind(${clock.split('.')[0]});
       let offset = 0;
       ${clock} = () => real() + offset;
       setInterval(() => { if (existsSync(${jump})) offset = 30_000; }, 20).unref();
     }\n`,
  );
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`.trim();
  const ep = await start(['--out', join(dir, 'store')], { NODE_OPTIONS: nodeOptions });
  writeFileSync(join(dir, 'jump'), '');
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.doesNotMatch(ep.output(), /has not answered/);
  assert.equal(listeningPids(ep.output(), 1).length + listeningPids(ep.output(), 2).length, 2, ep.output());
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
}

test("a step of the primary's wall clock (an NTP step, a VM resumed) kills no worker", async (t) => {
  // The watchdog measured each worker's silence on the wall clock: a step of 30 s forward took every
  // worker for held and killed them all at once, cutting the events they held.
  await noWorkerKilledWhenTheClockJumps(t, 'clock-step', 'Date.now');
});

test('a pause of the primary (SIGSTOP, a container paused or frozen) kills no worker', async (t) => {
  // Its monotonic clock runs on while it is stopped, and no ping goes out: on resuming, the watchdog's
  // first look found every worker silent past 10 s and killed them all, cutting the events they held.
  // The pause is played by the clock the watchdog reads jumping 30 s between two of its looks.
  await noWorkerKilledWhenTheClockJumps(t, 'primary-paused', 'performance.now');
});

test('SIGTERM while every worker that served is being replaced by one that then fails: exit 0', async (t) => {
  // A drained worker that never listened held no event. With every serving worker replaced, none
  // listened at that moment, and the failure was taken for a start that never served: exit 1, which a
  // deploy script reads as a failed stop.
  const { dir, start } = setUp(t, 'term-all-replacing');
  const at = (name: string) => JSON.stringify(join(dir, name));
  const broken = `if (existsSync(${at('broken')})) { writeFileSync(${at('loading-')} + process.env.SEGMENT_ENDPOINT_WORKER, ''); while (!existsSync(${at('fail-now')})) await new Promise((r) => setTimeout(r, 10)); throw new Error('cannot start now'); }`;
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    [
      `import { existsSync, writeFileSync } from 'node:fs';`,
      broken,
      'export default { track() {} };',
      '',
    ].join('\n'),
  );
  const ep = await start(['--handlers', module]);
  writeFileSync(join(dir, 'broken'), '');
  for (const n of [1, 2]) process.kill(listeningPids(ep.output(), n)[0] as number, 'SIGKILL');
  await waitUntil(
    () => existsSync(join(dir, 'loading-1')) && existsSync(join(dir, 'loading-2')),
    () => `both replacements loading, in:\n${ep.output()}`,
    GUARD_MS,
  );
  await drainThenFail(ep, dir);
});

test('every worker refusing to start at the same moment: said once, as one process says it, exit 1', async (t) => {
  // The refusals that came after the first, already on their way, were each logged as well.
  const { dir, flags } = setUp(t, 'refuse-at-once');
  const at = (name: string) => JSON.stringify(join(dir, name));
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    [
      `import { existsSync, writeFileSync } from 'node:fs';`,
      `writeFileSync(${at('loading-')} + process.env.SEGMENT_ENDPOINT_WORKER, '');`,
      `while (!existsSync(${at('now')})) await new Promise((r) => setTimeout(r, 5));`,
      `throw new Error('the database is gone');`,
      '',
    ].join('\n'),
  );
  const three = flags.map((flag) => (flag === '2' ? '3' : flag));
  const primary = spawnClean(process.execPath, [...CLI, ...three, '--handlers', module]);
  t.after(() => primary.child.kill('SIGKILL'));
  await waitUntil(
    () => [1, 2, 3].every((n) => existsSync(join(dir, `loading-${n}`))),
    () => `three workers loading, in:\n${primary.stderr()}`,
    GUARD_MS,
  );
  writeFileSync(join(dir, 'now'), '');
  assert.equal(await within(primary.exit, GUARD_MS, 'the primary stopped'), 1);
  const output = primary.stdout() + primary.stderr();
  assert.equal(output.match(/the database is gone/g)?.length, 1, output);
});
