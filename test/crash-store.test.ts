// The file store under a power cut (issue 14). A workload runs against an in-memory file system that
// writes down every change (test/crash/model-fs.ts): appends that share group commits, a day rollover
// with a late event for the day before, a write that fails part-way on a full disk, a process killed in
// the middle of a write, and a restart that repairs what it left. The explorer (test/crash/explore.ts)
// then builds every state of the disk a power cut after any operation could leave, and on each one runs
// start-up recovery and an append, and checks what the store promises:
// - every acknowledged append is stored exactly once, and an append refused (503) is not stored at all;
//   one cut short by the crash or the kill is stored at most once;
// - every line of every store file is whole (no partial line before a complete one), in its day's file;
// - the store opens and takes new events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storeFile } from '../src/sinks/file-names.ts';
import { NdjsonStore } from '../src/sinks/file-store.ts';
import { type CrashState, describeState, explore } from './crash/explore.ts';
import { ModelFs, type Skippable } from './crash/model-fs.ts';

const DIR = '/var/lib/segment-endpoint';
const DAY_MS = 24 * 60 * 60 * 1000;
// The store opens today's file at start: the workload's rollover is from today to tomorrow.
const today = new Date().toISOString().slice(0, 10);
const tomorrow = new Date(Date.parse(today) + DAY_MS).toISOString().slice(0, 10);
const BEFORE_MIDNIGHT = new Date(`${today}T23:59:59.900Z`);
const AFTER_MIDNIGHT = new Date(`${tomorrow}T00:00:00.100Z`);

/** What a workload's append and the store's answer to it were: the record carries its attempt number. */
interface Record {
  readonly attempt: number;
  readonly id: string;
  readonly day: string;
  readonly pad: string;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs the workload; returns the file system with its trace and the number of attempts made. */
async function workload(skip: ReadonlySet<Skippable>): Promise<{ fs: ModelFs; attempts: number }> {
  const fs = new ModelFs(DIR);
  let attempts = 0;
  const send = (store: NdjsonStore, id: string, at: Date, pad = 8): Promise<void> => {
    const attempt = ++attempts;
    const record: Record = { attempt, id, day: at.toISOString().slice(0, 10), pad: 'x'.repeat(pad) };
    const stored = store.append(record, at);
    stored.then(
      () => fs.mark(`ack:${attempt}`),
      () => fs.mark(`refused:${attempt}`),
    );
    return stored.catch(() => {});
  };

  const first = fs.process(skip);
  let store = await NdjsonStore.open(DIR, { io: first });
  // Group commits: two appends share a write+sync, a third arrives while it is under way.
  const early = [send(store, 'e1', BEFORE_MIDNIGHT), send(store, 'e2', BEFORE_MIDNIGHT)];
  await turn();
  await Promise.all([...early, send(store, 'e3', BEFORE_MIDNIGHT)]);
  // Midnight: one batch spans both days, with a late event for the day before.
  await Promise.all([
    send(store, 'e4', BEFORE_MIDNIGHT),
    send(store, 'e5', AFTER_MIDNIGHT),
    send(store, 'e6', BEFORE_MIDNIGHT),
    send(store, 'e7', AFTER_MIDNIGHT),
  ]);
  // A full disk: the write of e8 and e9 (a commit of their own, after e7b's) gets half its bytes in,
  // then fails; the store cuts them off and refuses both, and the sender retries them.
  first.fault('write', 'ok', 'short', 'ENOSPC');
  const full = [send(store, 'e7b', AFTER_MIDNIGHT)];
  await Promise.all([...full, send(store, 'e8', AFTER_MIDNIGHT), send(store, 'e9', AFTER_MIDNIGHT)]);
  await Promise.all([send(store, 'e8', AFTER_MIDNIGHT), send(store, 'e9', AFTER_MIDNIGHT)]);
  // kill -9 in the middle of the write of e10 and e11: half of it is in (e10 whole, e11 cut short).
  first.fault('write', 'ok', 'short', 'hang');
  void send(store, 'e9b', AFTER_MIDNIGHT);
  void send(store, 'e10', AFTER_MIDNIGHT);
  void send(store, 'e11', AFTER_MIDNIGHT, 64);
  while (!first.dead) await turn();
  // The restart repairs the torn line, and the sender retries what got no answer.
  store = await NdjsonStore.open(DIR, { io: fs.process(skip) });
  await Promise.all([
    send(store, 'e10', AFTER_MIDNIGHT),
    send(store, 'e11', AFTER_MIDNIGHT, 64),
    send(store, 'e12', AFTER_MIDNIGHT),
  ]);
  await send(store, 'e13', AFTER_MIDNIGHT);
  await store.close();
  return { fs, attempts };
}

/** Recovery on a crash state, an append, and the store's promises: a problem in words, or undefined. */
async function recover(state: CrashState, attempts: number): Promise<string | undefined> {
  const fs = new ModelFs(DIR, state.files);
  const store = await NdjsonStore.open(DIR, { io: fs.process() });
  const probe = attempts + 1;
  await store.append({ attempt: probe, id: 'probe', day: tomorrow, pad: '' }, AFTER_MIDNIGHT);
  await store.close();
  const stored = new Map<number, number>();
  for (const [name, bytes] of fs.files()) {
    const file = storeFile(name);
    if (file === undefined) continue;
    const lines = bytes.toString('utf8').split('\n');
    if (lines.pop() !== '') return `${name} does not end with a whole line`;
    for (const line of lines) {
      let record: Record;
      try {
        record = JSON.parse(line);
      } catch {
        return `${name} holds a partial line before a complete one: ${JSON.stringify(line.slice(0, 60))}`;
      }
      if (record.day !== file.day) return `attempt ${record.attempt} is in ${name}, not its day's file`;
      stored.set(record.attempt, (stored.get(record.attempt) ?? 0) + 1);
    }
  }
  for (let attempt = 1; attempt <= probe; attempt++) {
    const times = stored.get(attempt) ?? 0;
    const acked = state.marks.has(`ack:${attempt}`) || attempt === probe;
    if (acked && times !== 1) return `acknowledged append ${attempt} is stored ${times} times`;
    if (state.marks.has(`refused:${attempt}`) && times !== 0) {
      return `append ${attempt}, refused, is stored ${times} times`;
    }
    if (times > 1) return `append ${attempt} is stored ${times} times`;
  }
  return undefined;
}

test('every state a power cut can leave the file store in recovers with nothing acknowledged lost', async () => {
  const { fs, attempts } = await workload(new Set());
  const { states, violations } = await explore(fs, (state) => recover(state, attempts));
  const first = violations[0];
  assert.equal(violations.length, 0, first && `${first.problem}\n${describeState(fs, first.state)}`);
  // Bounded: thousands of states, not millions (the figure the README gives).
  assert.ok(states > 500 && states < 20_000, `${states} states`);
  console.log(`# file store: ${states} crash states explored, ${violations.length} violations`);
});

for (const skipped of ['syncDirectory', 'fdatasync'] as const) {
  test(`the explorer finds what a store without its ${skipped} calls would lose`, async () => {
    const { fs, attempts } = await workload(new Set([skipped]));
    const { states, violations } = await explore(fs, (state) => recover(state, attempts), 1);
    assert.ok(violations.length > 0);
    const first = violations[0] as (typeof violations)[number];
    assert.match(first.problem, /acknowledged append \d+ is stored 0 times/);
    console.log(`# without ${skipped}: the first violation, at state ${states}:`);
    console.log(`# ${first.problem}\n${describeState(fs, first.state).replace(/^/gm, '#   ')}`);
  });
}
