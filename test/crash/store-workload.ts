import { storeFile } from '../../src/sinks/file-names.ts';
import { NdjsonStore } from '../../src/sinks/file-store.ts';
import type { CrashState } from './explore.ts';
import { type Files, ModelFs, type Skippable } from './model-fs.ts';
import type { ModelProcess } from './model-process.ts';

// What test/crash-store.test.ts runs against the in-memory file system, and what it checks on every
// crash state: the file store's workload and its promises.

export const DIR = '/var/lib/segment-endpoint';
const DAY_MS = 24 * 60 * 60 * 1000;
// The store opens today's file at start: the workload's rollover is from today to tomorrow.
const today = new Date().toISOString().slice(0, 10);
const dayAfter = (day: string, days: number) =>
  new Date(Date.parse(day) + days * DAY_MS).toISOString().slice(0, 10);
const yesterday = dayAfter(today, -1);
const tomorrow = dayAfter(today, 1);
const BEFORE_MIDNIGHT = new Date(`${today}T23:59:59.900Z`);
const AFTER_MIDNIGHT = new Date(`${tomorrow}T00:00:00.100Z`);

/** A line the workload appends: its attempt number tells each append apart, retries included. */
interface Sent {
  readonly attempt: number;
  readonly id: string;
  readonly day: string;
  readonly pad: string;
}

const sent = (attempt: number, id: string, at: Date, pad = 8): Sent => ({
  attempt,
  id,
  day: at.toISOString().slice(0, 10),
  pad: 'x'.repeat(pad),
});
const lineOf = (record: Sent) => `${JSON.stringify(record)}\n`;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Waits for the call a `hang` fault kills `process` in; fails if the workload never reaches it. */
async function untilDead(process: ModelProcess): Promise<void> {
  for (let turns = 0; !process.dead; turns++) {
    if (turns > 1000) throw new Error('the workload never reached the call it kills the process in');
    await turn();
  }
}

/** What every crash state is checked against. */
export interface Expected {
  /** Appends made; the recovery's own come after. */
  readonly attempts: number;
  /** Appends acknowledged before the workload started (lines already in the store). */
  readonly before: readonly number[];
  /** Fragments already set aside or to be set aside: each must end up in a `.torn` file. */
  readonly fragments: readonly string[];
}

/**
 * The store as the workload finds it: yesterday's file with two whole lines and a partial one that a
 * crash left (start-up repair sets it aside), and a `.torn` file holding an older fragment.
 */
function history(): { files: Files; before: number[]; fragments: string[] } {
  const torn = '{"attempt":3,"id":"cut short","da';
  const older = '{"attempt":0,"id":"older fragment"';
  const alone = '{"attempt":6,"id":"no .torn yet"';
  const at = new Date(`${yesterday}T12:00:00Z`);
  const earlier = new Date(`${dayAfter(today, -2)}T12:00:00Z`);
  const files = new Map([
    [`events-${dayAfter(today, -2)}.ndjson`, Buffer.from(lineOf(sent(4, 'p4', earlier)) + alone)],
    [`events-${yesterday}.ndjson`, Buffer.from(lineOf(sent(1, 'p1', at)) + lineOf(sent(2, 'p2', at)) + torn)],
    [`events-${yesterday}.ndjson.torn`, Buffer.from(`${older}\n`)],
  ]);
  return { files, before: [1, 2, 4], fragments: [older, torn, alone] };
}

/**
 * An append whose answer is written down in the trace: `ack:N` or `refused:N`. `blocking`: the store
 * commits at the end of the loop's turn, so a commit's lead is sent a turn before the rest.
 */
function sender(fs: ModelFs, first: number, blocking = false) {
  let attempts = first - 1;
  /** `refused`: the mark a refusal gets; `uncut` for a write refused after its cut failed too. */
  const send = (store: NdjsonStore, id: string, at: Date, pad = 8, refused = 'refused'): Promise<void> => {
    const attempt = ++attempts;
    const stored = store.append(sent(attempt, id, at, pad), at);
    stored.then(
      () => fs.mark(`ack:${attempt}`),
      () => fs.mark(`${refused}:${attempt}`),
    );
    return stored.catch(() => {});
  };
  /**
   * `lead` starts a commit of its own, so that `ids` share the next one: a write of several lines, the
   * last one long, so that half of the write ends inside it (a short write leaves a partial line).
   */
  const commit = async (store: NdjsonStore, lead: Date, at: Date, ids: string[], refused = 'refused') => {
    const first = send(store, `lead of ${ids.join(' ')}`, lead);
    if (blocking) await turn();
    await Promise.all([
      first,
      ...ids.map((id, i) => send(store, id, at, i === ids.length - 1 ? 64 : 8, refused)),
    ]);
  };
  return { send, commit, attempts: () => attempts };
}

/**
 * Appends sharing group commits, a midnight rollover with a late event for the day before, a sync that
 * fails, a disk that fills up (the cut working, failing once, failing twice across a day switch), a
 * kill -9 in the middle of a write, and a restart that repairs what it left. `blocking`: the same with
 * the commits of a one-core process (`loopIo`: at the end of the loop's turn).
 */
export async function storeWorkload(
  skip: ReadonlySet<Skippable>,
  blocking = false,
): Promise<{ fs: ModelFs; expected: Expected }> {
  const { files, before, fragments } = history();
  const fs = new ModelFs(DIR, files);
  const { send, commit, attempts } = sender(fs, 10, blocking);
  const first = fs.process(skip, blocking);
  let store = await NdjsonStore.open(DIR, { io: first });
  const early = [send(store, 'e1', BEFORE_MIDNIGHT), send(store, 'e2', BEFORE_MIDNIGHT)];
  await turn();
  await Promise.all([...early, send(store, 'e3', BEFORE_MIDNIGHT)]);
  await Promise.all(
    ['e4', 'e5', 'e6', 'e7'].map((id, i) => send(store, id, i % 2 ? AFTER_MIDNIGHT : BEFORE_MIDNIGHT)),
  );
  // fdatasync fails (EIO): the lines are cut off and refused, then retried.
  first.fault('fdatasync', 'ok', 'EIO');
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['f1', 'f2']);
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['f1', 'f2']);
  // A full disk: half the write goes in, then ENOSPC. The cut works; then it fails once (the next
  // commit cuts first); then twice, across a late event for the day before. While a cut has failed, a
  // crash may keep the refused write's whole lines ('uncut': stored at most once).
  first.fault('write', 'ok', 'short', 'ENOSPC');
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['g1', 'g2']);
  first.fault('write', 'ok', 'short', 'ENOSPC');
  first.fault('ftruncate', 'EIO');
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['h1', 'h2'], 'uncut');
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['h1', 'h2']);
  first.fault('write', 'ok', 'short', 'ENOSPC');
  first.fault('ftruncate', 'EIO', 'EIO');
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['i1', 'i2'], 'uncut');
  await send(store, 'i3', BEFORE_MIDNIGHT);
  await commit(store, AFTER_MIDNIGHT, AFTER_MIDNIGHT, ['i1', 'i2']);
  // Back and forth across midnight once more: nothing stale about the file cut earlier.
  await send(store, 'i4', BEFORE_MIDNIGHT);
  await send(store, 'i5', AFTER_MIDNIGHT);
  // kill -9 in the middle of a write: half of it is in (j1 whole, j2 cut short), then nothing more.
  first.fault('write', 'ok', 'short', 'hang');
  void send(store, 'lead', AFTER_MIDNIGHT);
  if (blocking) await turn();
  void send(store, 'j1', AFTER_MIDNIGHT);
  void send(store, 'j2', AFTER_MIDNIGHT, 64);
  await untilDead(first);
  // The restart repairs the torn line, and the sender retries what got no answer.
  const second = fs.process(skip, blocking);
  store = await NdjsonStore.open(DIR, { io: second });
  await Promise.all([
    send(store, 'j1', AFTER_MIDNIGHT),
    send(store, 'j2', AFTER_MIDNIGHT, 64),
    send(store, 'k1', AFTER_MIDNIGHT),
  ]);
  // kill -9 between a write and its sync: whole lines in the page cache, unsynced; the next start syncs
  // them before its own first commit to the file.
  second.fault('fdatasync', 'hang');
  void send(store, 'k2', AFTER_MIDNIGHT);
  await untilDead(second);
  store = await NdjsonStore.open(DIR, { io: fs.process(skip, blocking) });
  await Promise.all([send(store, 'k2', AFTER_MIDNIGHT), send(store, 'k3', AFTER_MIDNIGHT)]);
  await store.close();
  return { fs, expected: { attempts: attempts(), before, fragments } };
}

/** A first start, in a directory that does not exist yet: two appends. */
export async function firstStartWorkload(
  skip: ReadonlySet<Skippable>,
): Promise<{ fs: ModelFs; expected: Expected }> {
  const fs = new ModelFs(DIR, null);
  const { send, attempts } = sender(fs, 1);
  const store = await NdjsonStore.open(DIR, { io: fs.process(skip) });
  await send(store, 'a1', BEFORE_MIDNIGHT);
  await send(store, 'a2', AFTER_MIDNIGHT);
  await store.close();
  return { fs, expected: { attempts: attempts(), before: [], fragments: [] } };
}

/**
 * Start-up recovery on a crash state, then appends (one that fails half-way into today's file, one that
 * works, one tomorrow), then the store's promises: a problem in words, or undefined.
 */
export async function recoverStore(state: CrashState, expected: Expected): Promise<string | undefined> {
  const fs = new ModelFs(DIR, state.files);
  const io = fs.process();
  const store = await NdjsonStore.open(DIR, { io });
  const probe = expected.attempts + 1;
  io.fault('write', 'short', 'ENOSPC');
  const refused = await store.append(sent(probe, 'probe', BEFORE_MIDNIGHT), BEFORE_MIDNIGHT).then(
    () => false,
    () => true,
  );
  if (!refused) return 'a write that failed half-way was acknowledged';
  await store.append(sent(probe + 1, 'probe', BEFORE_MIDNIGHT), BEFORE_MIDNIGHT);
  await store.append(sent(probe + 2, 'probe', AFTER_MIDNIGHT), AFTER_MIDNIGHT);
  await store.close();
  const stored = storedAttempts(fs.files());
  if (typeof stored === 'string') return stored;
  const acked = (n: number) => state.marks.has(`ack:${n}`) || expected.before.includes(n) || n > probe;
  for (let attempt = 1; attempt <= probe + 2; attempt++) {
    const times = stored.get(attempt) ?? 0;
    if (acked(attempt) && times !== 1) return `acknowledged append ${attempt} is stored ${times} times`;
    const refusedAppend = state.marks.has(`refused:${attempt}`) || attempt === probe;
    if (refusedAppend && times !== 0) return `append ${attempt}, refused, is stored ${times} times`;
    if (times > 1) return `append ${attempt} is stored ${times} times`;
  }
  const torn = [...fs.files()]
    .filter(([name]) => name.endsWith('.torn'))
    .map(([, bytes]) => bytes.toString());
  for (const fragment of expected.fragments) {
    if (!torn.some((text) => text.includes(fragment))) return `the fragment ${fragment} is in no .torn file`;
  }
  return undefined;
}

/** How many times each attempt is stored, or what is wrong with a store file. */
function storedAttempts(files: ReadonlyMap<string, Buffer>): Map<number, number> | string {
  const stored = new Map<number, number>();
  for (const [name, bytes] of files) {
    const file = storeFile(name);
    if (file === undefined) continue;
    const lines = bytes.toString('utf8').split('\n');
    if (lines.pop() !== '') return `${name} does not end with a whole line`;
    for (const line of lines) {
      let record: Sent;
      try {
        record = JSON.parse(line);
      } catch {
        return `${name} holds a partial line before a complete one: ${JSON.stringify(line.slice(0, 60))}`;
      }
      if (!Number.isSafeInteger(record.attempt) || typeof record.id !== 'string') {
        return `${name} holds a line that is no append: ${JSON.stringify(line.slice(0, 60))}`;
      }
      if (record.day !== file.day) return `append ${record.attempt} is in ${name}, not its day's file`;
      stored.set(record.attempt, (stored.get(record.attempt) ?? 0) + 1);
    }
  }
  return stored;
}
