// The events a store kept from before a restart, remembered by the duplicate filter: read back from the
// store's files (the last two commits of each writer), and found again by each API key's fingerprint.
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { keyFingerprint } from '../src/auth.ts';
import { EarlierEvents, readEarlier, SEEN_MAX } from '../src/earlier-events.ts';
import { eventKey } from '../src/event-digest.ts';
import { EARLIER, MemoryIdempotencyStore } from '../src/idempotency.ts';
import { jsonLogger } from '../src/log.ts';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import {
  measureFiles,
  parseMeasuredFiles,
  RECENT_BYTES,
  RECENT_TOTAL_BYTES,
  recentEvents,
} from '../src/sinks/file-recent.ts';
import { NdjsonStore } from '../src/sinks/file-store.ts';
import type { Sink } from '../src/sinks/sink.ts';
import { filterOption } from '../src/start.ts';
import { configOf } from './cli-harness.ts';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-12-07T12:00:00.000Z');
/** The one process (no --workers), remembering events for 24 h. */
const ONE_PROCESS = { since: NOW - 24 * HOUR, now: NOW };

/** A line of the file store for `messageId` of `apiKey`, stored at `at`. */
function line(apiKey: string, messageId: unknown, at = NOW, event: object = {}): string {
  const record = {
    receivedAt: new Date(at).toISOString(),
    source: keyFingerprint(apiKey),
    settings: {},
    event: { type: 'track', event: 'Signed Up', userId: 'u1', messageId, ...event },
  };
  return `${JSON.stringify(record)}\n`;
}

function storeDir(t: { after: (fn: () => void) => void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-earlier-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The filter remembering `earlier` at NOW, with a clock the test moves. */
/**
 * A store io whose next `fdatasync` after `arm()` waits (the commit's line written, not yet synced; `atSync`
 * resolves then) until `fail()`, then fails with EIO: the store cuts the commit back and refuses it.
 */
function syncThatFails() {
  let syncing: () => void = () => {};
  const atSync = new Promise<void>((resolve) => (syncing = resolve));
  let fail: () => void = () => {};
  const failed = new Promise<void>((resolve) => (fail = resolve));
  let armed = false;
  const io: StoreIo = {
    ...nodeIo,
    fdatasync: async (fd) => {
      if (!armed) return nodeIo.fdatasync(fd);
      armed = false;
      syncing();
      await failed;
      throw Object.assign(new Error('I/O error'), { code: 'EIO' });
    },
  };
  return { io, arm: () => (armed = true), atSync, fail };
}

/** What a primary hands its workers of `dir`'s files, read back as a worker reads it. */
async function measuredByThePrimary(dir: string, deferred = new Map<string, number>()) {
  return parseMeasuredFiles(await measureFiles(nodeIo, dir, deferred));
}

function filter(earlier: EarlierEvents, ttlMs = 24 * HOUR) {
  const clock = { now: NOW };
  const store = new MemoryIdempotencyStore({ ttlMs, now: () => clock.now });
  store[EARLIER](earlier);
  return { store, clock };
}

describe('the duplicate filter remembers events stored before it was made', () => {
  test("an earlier event is a duplicate for its own key only, through either of the filter's paths", () => {
    const earlier = new EarlierEvents(
      [{ source: keyFingerprint('key-a'), messageId: 'm1', at: NOW - HOUR }],
      keyFingerprint,
    );
    const { store } = filter(earlier);
    assert.equal(store.peek('key-b', 'm1'), 'new', "another customer's event with the same messageId");
    assert.equal(store.peek('key-a', 'm2'), 'new');
    assert.equal(store.peek('key-a', 'm1'), 'done');
    assert.equal(store.claim(eventKey('key-a', 'm1')), 'done');
  });

  test('found under a key seen first through claim, as a batch claims', () => {
    const earlier = new EarlierEvents(
      [{ source: keyFingerprint('k'), messageId: 'm', at: NOW }],
      keyFingerprint,
    );
    assert.equal(filter(earlier).store.claim(eventKey('k', 'm')), 'done');
  });

  test('each remembered for the window from when it was stored, not from the restart', () => {
    const source = keyFingerprint('k');
    const earlier = new EarlierEvents(
      [
        { source, messageId: 'old', at: NOW - 2 * HOUR },
        { source, messageId: 'recent', at: NOW - HOUR / 2 },
      ],
      keyFingerprint,
    );
    const { store, clock } = filter(earlier, HOUR);
    assert.equal(store.peek('k', 'old'), 'new', 'past its window already');
    assert.equal(store.peek('k', 'recent'), 'done');
    clock.now += HOUR / 2;
    assert.equal(store.peek('k', 'recent'), 'new', 'its window ended half an hour after the restart');
  });

  test('a key is fingerprinted once: its events are handed over the first time it is seen', () => {
    let fingerprints = 0;
    const counting = (key: string) => {
      fingerprints++;
      return keyFingerprint(key);
    };
    const earlier = new EarlierEvents(
      [
        { source: keyFingerprint('a'), messageId: 'm', at: NOW },
        { source: keyFingerprint('b'), messageId: 'm', at: NOW },
      ],
      counting,
    );
    const { store } = filter(earlier);
    for (let i = 0; i < 5; i++) store.peek('a', `x${i}`);
    assert.equal(fingerprints, 1);
    assert.equal(earlier.left(HOUR, NOW), true, "b's are still to come");
    assert.equal(store.peek('b', 'm'), 'done');
    assert.equal(earlier.left(HOUR, NOW), false);
    assert.equal(store.peek('a', 'm'), 'done', "a's, remembered when a was first seen");
    for (let i = 0; i < 5; i++) store.peek('c', `y${i}`);
    assert.equal(fingerprints, 2, 'none handed over is left: other keys are not fingerprinted');
  });

  test('keys looked for are remembered up to SEEN_MAX, then forgotten all at once: a key is looked for again', () => {
    const looked: string[] = [];
    const fingerprint = (key: string) => {
      looked.push(key);
      return key;
    };
    const earlier = new EarlierEvents([{ source: 'never-comes', messageId: 'm', at: NOW }], fingerprint);
    const take = (key: string) => earlier.take(key, HOUR, NOW, () => {});
    take('a');
    take('a');
    assert.deepEqual(looked, ['a']);
    for (let i = 1; i < SEEN_MAX; i++) take(`k${i}`);
    take('a');
    assert.equal(looked.length, SEEN_MAX, 'a is still among those seen');
    take('one-more'); // the record is full: it starts over
    take('a');
    assert.deepEqual(looked.slice(-2), ['one-more', 'a']);
  });

  test('while they are being read, claims wait for them; a read that failed leaves the filter as it was', async () => {
    let read: (events: EarlierEvents) => void = () => {};
    const store = new MemoryIdempotencyStore({ now: () => NOW });
    store[EARLIER](new Promise<EarlierEvents>((resolve) => (read = resolve)));
    const waiting = [store.peek('k', 'm'), store.peek('k', 'other'), store.claim(eventKey('k', 'm'))];
    assert.ok(waiting.every((claim) => claim instanceof Promise));
    read(new EarlierEvents([{ source: keyFingerprint('k'), messageId: 'm', at: NOW }], keyFingerprint));
    assert.deepEqual(await Promise.all(waiting), ['done', 'new', 'done']);
    store.complete(eventKey('k', 'other'));
    assert.equal(store.peek('k', 'm'), 'done', 'answered at once from then on');

    const failed = new MemoryIdempotencyStore({ now: () => NOW });
    failed[EARLIER](Promise.reject(new Error('EIO')));
    assert.equal(await failed.peek('k', 'm'), 'new');
    failed.complete(eventKey('k', 'm')); // claimed through the wait: pending until then
    assert.equal(failed.peek('k', 'm'), 'done');
  });

  test('with duplicate suppression off (maxEntries 0) nothing is remembered', () => {
    const earlier = new EarlierEvents(
      [{ source: keyFingerprint('k'), messageId: 'm', at: NOW }],
      keyFingerprint,
    );
    const store = new MemoryIdempotencyStore({ maxEntries: 0, now: () => NOW });
    store[EARLIER](earlier);
    assert.equal(store.peek('k', 'm'), 'new');
  });
});

describe('recentEvents: what the store holds from just before the start', () => {
  test("the one process: every writer's newest lines, the day before's when the newest day is short; bad lines passed over", async (t) => {
    const dir = storeDir(t, {
      'events-2026-12-06.ndjson': line('k', 'yesterday'),
      'events-2026-12-07.ndjson': `${line('k', 'today')}not json\n${line('k', '')}`,
      'events-2026-12-07-w2.ndjson': line('k', 'worker-2', NOW, { messageId: undefined, message_id: 'w2' }),
      'events-2026-12-05.ndjson': line('k', 'two-days-ago'),
      'events-2026-12-07.ndjson.torn': line('k', 'torn-aside'),
      'notes.ndjson': line('k', 'not-the-stores'),
    });
    mkdirSync(join(dir, 'events-2026-12-07-w3.ndjson')); // a directory named like a file: passed over
    const { store } = filter(await recentEvents(nodeIo, dir, ONE_PROCESS));
    const done = (id: string) => store.peek('k', id) === 'done';
    assert.deepEqual(
      ['today', 'yesterday', 'w2', 'two-days-ago', 'torn-aside', 'not-the-stores'].filter(done),
      ['today', 'yesterday', 'w2'],
    );
  });

  test('only the last two commits of a file are read: the line the bound cuts is passed over', async (t) => {
    const padding = 'x'.repeat(1000);
    const lines = Array.from({ length: Math.ceil(RECENT_BYTES / 1000) + 100 }, (_, n) =>
      line('k', `m${n}`, NOW, { properties: { padding } }),
    );
    const dir = storeDir(t, { 'events-2026-12-07.ndjson': lines.join('') });
    const { store } = filter(await recentEvents(nodeIo, dir, ONE_PROCESS));
    const last = lines.length - 1;
    assert.equal(store.peek('k', `m${last}`), 'done');
    assert.equal(store.peek('k', 'm0'), 'new');
    const kept = lines.filter((_, n) => store.peek('k', `m${n}`) === 'done').length;
    let whole = 0; // the lines that fit in the bound, counted from the end
    let bytes = Buffer.byteLength(lines[last] as string);
    while (bytes <= RECENT_BYTES) bytes += Buffer.byteLength(lines[last - ++whole] as string);
    assert.equal(kept, whole);
  });

  test('a time ahead of the clock counts as now; a symbolic link named like a store file is passed over', async (t) => {
    const dir = storeDir(t, {
      'events-2026-12-07.ndjson': line('k', 'ahead', NOW + 10 * HOUR),
      elsewhere: line('k', 'linked'),
    });
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'events-2026-12-07-w1.ndjson'));
    const { store, clock } = filter(await recentEvents(nodeIo, dir, ONE_PROCESS), HOUR);
    assert.equal(store.peek('k', 'linked'), 'new');
    assert.equal(store.peek('k', 'ahead'), 'done');
    clock.now += HOUR;
    assert.equal(store.peek('k', 'ahead'), 'new', 'its window began at the start, not ten hours later');
  });

  test('the files of days that ended before the window are not read', async (t) => {
    const dir = storeDir(t, { 'events-2026-12-05.ndjson': line('k', 'two-days-ago') });
    const read = async (since: number) => filter(await recentEvents(nodeIo, dir, { since, now: NOW })).store;
    assert.equal((await read(NOW - 24 * HOUR)).peek('k', 'two-days-ago'), 'new');
    assert.equal((await read(NOW - 72 * HOUR)).peek('k', 'two-days-ago'), 'done');
  });

  test('the one process reads the newest writers first, within the bound in all', async (t) => {
    const padding = 'x'.repeat(1000);
    const count = Math.ceil(RECENT_BYTES / 1000) + 10;
    const full = (name: string) =>
      Array.from({ length: count }, (_, n) =>
        line('k', `${name}-${n}`, NOW, { properties: { padding } }),
      ).join('');
    const dir = storeDir(t, {
      'events-2026-12-07.ndjson': full('one'),
      'events-2026-12-07-w1.ndjson': full('w1'),
      'events-2026-12-07-w2.ndjson': full('w2'),
    });
    const { store } = filter(await recentEvents(nodeIo, dir, ONE_PROCESS));
    const done = (id: string) => store.peek('k', id) === 'done';
    assert.equal(RECENT_TOTAL_BYTES, 2 * RECENT_BYTES);
    assert.deepEqual(
      ['one', 'w1', 'w2'].map((w) => `${w}-${count - 1}`).filter(done),
      ['w1', 'w2'].map((w) => `${w}-${count - 1}`),
    );
  });
});

describe('recentEvents: only lines known durable', () => {
  test("a worker reads its own files only: the others' are written meanwhile", async (t) => {
    const dir = storeDir(t, {
      'events-2026-12-07-w1.ndjson': line('k', 'own'),
      'events-2026-12-07-w2.ndjson': line('k', 'worker-2'),
      'events-2026-12-07.ndjson': line('k', 'one-process'),
    });
    const { store } = filter(await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1 }));
    const done = (id: string) => store.peek('k', id) === 'done';
    assert.deepEqual(['own', 'worker-2', 'one-process'].filter(done), ['own']);
  });

  test("a worker reads the others' files up to what they held before any worker started, measured by its primary", async (t) => {
    // A crash of the whole tree leaves every worker's last events unanswered, and Segment's retry of one
    // reaches any worker.
    const before = line('k', 'w2-before') + line('k', 'w2-last-before');
    const dir = storeDir(t, {
      'events-2026-12-07-w1.ndjson': line('k', 'own'),
      'events-2026-12-07-w2.ndjson': before,
      'events-2026-12-07-w3.ndjson': line('k', 'w3-cut'),
      'events-2026-12-07-w4.ndjson': line('k', 'w4-deferred'),
      'events-2026-12-07-w5.ndjson': line('k', 'w5-moved-away'),
    });
    const deferred = new Map([[join(dir, 'events-2026-12-07-w4.ndjson'), 0]]);
    const others = await measuredByThePrimary(dir, deferred);
    assert.deepEqual(
      [...others.keys()].sort(),
      [
        'events-2026-12-07-w1.ndjson',
        'events-2026-12-07-w2.ndjson',
        'events-2026-12-07-w3.ndjson',
        'events-2026-12-07-w5.ndjson',
      ],
      'a file whose repair was left to its writer is not measured',
    );
    // Since then: worker 2 wrote a commit (not synced yet, maybe cut back), worker 3's file was cut, and
    // worker 5's was moved away and made again, longer, under its name.
    writeFileSync(join(dir, 'events-2026-12-07-w2.ndjson'), before + line('k', 'w2-after'));
    writeFileSync(join(dir, 'events-2026-12-07-w3.ndjson'), '');
    renameSync(join(dir, 'events-2026-12-07-w5.ndjson'), join(dir, 'moved-away'));
    // Its first bytes the same as those measured (the digest alike): only which file it is tells.
    writeFileSync(
      join(dir, 'events-2026-12-07-w5.ndjson'),
      line('k', 'w5-moved-away') + line('k', 'w5-again'),
    );
    const { store } = filter(await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1, others }));
    const done = (id: string) => store.peek('k', id) === 'done';
    assert.deepEqual(
      ['own', 'w2-before', 'w2-last-before', 'w2-after', 'w3-cut', 'w4-deferred', 'w5-moved-away'].filter(
        done,
      ),
      ['own', 'w2-before', 'w2-last-before'],
    );
  });

  test("a worker reads 8 other writers at most, those written last: a crash's, not an earlier, larger run's", async (t) => {
    // Today's files of a --workers 12 run that ended, beside those of the --workers 4 tree that crashed.
    const full = (name: string) =>
      Array.from({ length: Math.ceil(RECENT_BYTES / 1000) + 10 }, (_, n) =>
        line('k', `${name}-${n}`, NOW, { properties: { padding: 'x'.repeat(1000) } }),
      ).join('');
    const files: Record<string, string> = {};
    for (let k = 1; k <= 12; k++) files[`events-2026-12-07-w${k}.ndjson`] = full(`w${k}`);
    const dir = storeDir(t, files);
    const at = (k: number) => new Date(NOW - (k <= 4 ? 0 : k * 60_000)); // w5 the latest of the ended run
    for (let k = 1; k <= 12; k++) utimesSync(join(dir, `events-2026-12-07-w${k}.ndjson`), at(k), at(k));
    const others = await measuredByThePrimary(dir);
    const { store } = filter(await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1, others }));
    const writers = [...Array(12).keys()].map((k) => k + 1);
    const newestOf = (k: number) => store.peek('k', `w${k}-${Math.ceil(RECENT_BYTES / 1000) + 9}`);
    assert.deepEqual(
      writers.filter((k) => newestOf(k) === 'done'),
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
      "its own, the crashed tree's others, then the ended run's written last",
    );
    assert.deepEqual(
      writers.filter((k) => store.peek('k', `w${k}-0`) === 'done'),
      [],
      'the first line of each, past its 2 MiB, is not read',
    );
  });

  test("another worker's file rotated, refilled past its measured size, then cut back and refused: not remembered", async (t) => {
    const FILE = 'events-2026-12-07-w2.ndjson';
    const dir = storeDir(t, { [FILE]: line('k', 'old-1') + line('k', 'old-2') });
    const others = await measuredByThePrimary(dir);
    const { io, arm, atSync, fail } = syncThatFails();
    const worker2 = await NdjsonStore.open(dir, { io, worker: 2 });
    t.after(() => worker2.close().catch(() => {}));
    // Hours later an operator rotates worker 2's file: the store makes it again.
    renameSync(join(dir, FILE), join(dir, `${FILE}.1`));
    await worker2.appendLine(line('k', 'new-1').trimEnd(), new Date(NOW));
    arm();
    const answer = worker2.appendLine(line('k', 'new-2').trimEnd(), new Date(NOW)).then(
      () => 200,
      () => 503,
    );
    await atSync;
    // Worker 1, replaced meanwhile, reads back with the sizes of the tree's start.
    assert.equal(readFileSync(join(dir, FILE)).length, others.get(FILE)?.size, 'as long as the one measured');
    const earlier = await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1, others });
    fail();
    assert.equal(await answer, 503, 'refused: Segment retries it');
    assert.ok(!readFileSync(join(dir, FILE), 'utf8').includes('new-2'), 'new-2 is not in the store');
    assert.equal(
      filter(earlier).store.peek('k', 'new-2'),
      'new',
      'its retry is stored, not taken for a copy',
    );
  });

  test("another worker's file cut in place (copytruncate) and written again past its measured size: not read", async (t) => {
    const FILE = 'events-2026-12-07-w2.ndjson';
    const dir = storeDir(t, { [FILE]: line('k', 'old-1') + line('k', 'old-2') });
    const others = await measuredByThePrimary(dir);
    const worker2 = await NdjsonStore.open(dir, { worker: 2 });
    t.after(() => worker2.close().catch(() => {}));
    writeFileSync(join(dir, `${FILE}.1`), readFileSync(join(dir, FILE)));
    writeFileSync(join(dir, FILE), ''); // the same inode, cut to nothing
    await worker2.appendLine(line('k', 'new-1').trimEnd(), new Date(NOW));
    await worker2.appendLine(line('k', 'new-2').trimEnd(), new Date(NOW));
    assert.equal(readFileSync(join(dir, FILE)).length, others.get(FILE)?.size);
    const earlier = await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1, others });
    assert.equal(
      filter(earlier).store.peek('k', 'new-2'),
      'new',
      'the lines below the size are not those measured',
    );
  });

  test('a replacement worker reads its own files to their end, not to the size measured: what its predecessor stored since the start is a duplicate', async (t) => {
    const own = 'events-2026-12-07-w1.ndjson';
    const dir = storeDir(t, { [own]: line('k', 'before-start') });
    const others = await measuredByThePrimary(dir);
    // Worker 1 stores an event durably, and is killed before its 200 goes out; it is forked again.
    const worker1 = await NdjsonStore.open(dir, { worker: 1 });
    await worker1.appendLine(line('k', 'stored-then-killed').trimEnd(), new Date(NOW));
    await worker1.close();
    const earlier = await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 1, others });
    assert.equal(filter(earlier).store.peek('k', 'stored-then-killed'), 'done');
  });

  test("the sizes' variable stays short with many writers' files (an execve refuses one past 128 KiB)", async (t) => {
    const files: Record<string, string> = {};
    for (let k = 1; k <= 2048; k++) {
      for (const day of ['06', '07']) files[`events-2026-12-${day}-w${k}.ndjson`] = line('k', `w${k}-${day}`);
    }
    const text = await measureFiles(nodeIo, storeDir(t, files), new Map());
    assert.ok(text.length < 4096, `${text.length} characters`);
  });

  test("the sizes' text: what is not of its form is passed over", () => {
    assert.deepEqual(
      [
        ...parseMeasuredFiles(
          `events-2026-12-07-w2.ndjson:120:2049:77:${'a'.repeat(24)}/events-2026-12-07-w3.ndjson:120/` +
            `notes.txt:5:1:2:${'a'.repeat(24)}/events-2026-12-07.ndjson:x:1:2:${'a'.repeat(24)}/` +
            'events-2026-12-07-w4.ndjson:1:2:3:zz/:3//',
        ),
      ],
      [['events-2026-12-07-w2.ndjson', { size: 120, dev: '2049', ino: '77', digest: 'a'.repeat(24) }]],
    );
    assert.equal(parseMeasuredFiles(undefined).size, 0);
  });

  test('a commit another worker writes while a replacement starts, then cuts back and refuses (503), is not remembered', async (t) => {
    const dir = storeDir(t, {});
    const { io, arm, atSync, fail } = syncThatFails();
    const worker1 = await NdjsonStore.open(dir, { io, worker: 1 });
    t.after(() => worker1.close().catch(() => {}));
    arm();
    const answer = worker1.appendLine(line('k', 'never-stored').trimEnd(), new Date(NOW)).then(
      () => 200,
      () => 503,
    );
    await atSync;
    const earlier = await recentEvents(nodeIo, dir, { ...ONE_PROCESS, worker: 2 });
    fail();
    assert.equal(await answer, 503, 'refused: Segment retries it');
    assert.equal(
      filter(earlier).store.peek('k', 'never-stored'),
      'new',
      'its retry is stored, not taken for a copy',
    );
  });

  test('its own file is synced before its lines count; one that cannot be synced is passed over', async (t) => {
    const dir = storeDir(t, { 'events-2026-12-07.ndjson': line('k', 'written') });
    const synced: number[] = [];
    const syncing: StoreIo = { ...nodeIo, fdatasync: async (fd) => void synced.push(fd) };
    assert.equal(filter(await recentEvents(syncing, dir, ONE_PROCESS)).store.peek('k', 'written'), 'done');
    assert.equal(synced.length, 1);
    const failing: StoreIo = {
      ...nodeIo,
      fdatasync: async () => {
        throw Object.assign(new Error('I/O error'), { code: 'EIO' });
      },
    };
    assert.equal(filter(await recentEvents(failing, dir, ONE_PROCESS)).store.peek('k', 'written'), 'new');
  });

  test('a file repair has not cleaned (a repair deferred for want of room) is not read: a torn last line, a zero byte in its last commit', async (t) => {
    const padding = 'x'.repeat(1000);
    // Today's file takes nearly all of the 2 MiB: the day before's is read from past its hole, which a
    // repair still to come sets aside with the lines after it.
    const lines = Math.floor(RECENT_BYTES / 1250); // ~1,190 bytes each: ~1.9 MiB
    const today = Array.from({ length: lines }, (_, n) =>
      line('k', `today-${n}`, NOW, { properties: { padding } }),
    ).join('');
    const dir = storeDir(t, {
      'events-2026-12-07.ndjson': today,
      'events-2026-12-06.ndjson': `${line('k', 'before-hole')}${'\0'.repeat(4096)}${line('k', 'after-hole').repeat(1)}${Array.from({ length: 200 }, (_, n) => line('k', `after-${n}`, NOW, { properties: { padding } })).join('')}`,
      'events-2026-12-07-w1.ndjson': `${line('k', 'w1-whole')}{"receivedAt":"2026-12-07T11:5`,
      'events-2026-12-07-w2.ndjson': `${line('k', 'w2-whole')}${line('k', 'w2-holed').replace('Signed Up', '\0\0\0')}`,
    });
    const { store } = filter(await recentEvents(nodeIo, dir, ONE_PROCESS));
    const done = (id: string) => store.peek('k', id) === 'done';
    assert.equal(done('today-0') && done(`today-${lines - 1}`), true, 'its newest file, clean, is read');
    assert.deepEqual(
      ['before-hole', 'after-hole', 'after-199', 'w1-whole', 'w2-whole', 'w2-holed'].filter(done),
      [],
    );
  });
});

describe('readEarlier: the first requests wait for the read, within a bound', () => {
  test('a read that never ends is given up after the wait, said; one that fails is said; one that ends is kept', async (t) => {
    const lines: string[] = [];
    const log = jsonLogger('info', (line) => lines.push(line));
    const held = setInterval(() => {}, 1_000); // the wait's timer holds no process open: a server does
    t.after(() => clearInterval(held));
    const hung = readEarlier(() => new Promise<EarlierEvents>(() => {}), log, 50);
    assert.equal(await hung, undefined);
    assert.match(
      lines.join(''),
      /"waitMs":50,"msg":"the events stored before this start were not read in time/,
    );
    assert.equal(await readEarlier(() => Promise.reject(new Error('EIO')), log, 50), undefined);
    assert.match(lines.join(''), /could not be read: their retries are stored again/);
    const earlier = new EarlierEvents([], keyFingerprint);
    assert.equal(await readEarlier(() => Promise.resolve(earlier), log, 50), earlier);
    assert.equal(lines.length, 2, 'nothing said of a read that ended');
  });

  test('a start that holds the loop past the wait (a handlers module that computes) does not give up a read no request waited for', async (t) => {
    // The read's steps end in the loop's poll, which comes after the timers once the loop is free again:
    // the wait's timer, due by then, used to decide first, and the events were dropped unread.
    const lines: string[] = [];
    const log = jsonLogger('info', (line) => lines.push(line));
    const held = setInterval(() => {}, 1_000);
    t.after(() => clearInterval(held));
    const earlier = new EarlierEvents([], keyFingerprint);
    const read = async () => {
      await readFile(new URL(import.meta.url)); // a few round trips to the thread pool, as the store's read
      return earlier;
    };
    const result = readEarlier(read, log, 50);
    const until = performance.now() + 200;
    while (performance.now() < until) {
      // the loop held: the start's own work
    }
    assert.equal(await result, earlier);
    assert.deepEqual(lines, [], 'nothing said');
  });
});

describe('the standalone process reads back only for a filter that uses it', () => {
  test('the in-memory filter reads once; --idempotency-max-entries 0, --idempotency-redis and a sink without a store read nothing', async () => {
    let reads = 0;
    const sink = {
      earlierEvents: async () => {
        reads++;
        return new EarlierEvents(
          [{ source: keyFingerprint('k'), messageId: 'm', at: Date.now() }],
          keyFingerprint,
        );
      },
    } as unknown as Sink;
    const log = jsonLogger('info', () => {});
    const memory = filterOption(configOf(['--api-key', 'k']), undefined, sink, log);
    assert.ok(memory instanceof MemoryIdempotencyStore);
    assert.equal(await memory.peek('k', 'm'), 'done');
    assert.equal(reads, 1);
    assert.equal(
      filterOption(configOf(['--api-key', 'k', '--idempotency-max-entries', '0']), undefined, sink, log),
      false,
    );
    const shared = new MemoryIdempotencyStore();
    assert.equal(filterOption(configOf(['--api-key', 'k']), shared, sink, log), shared);
    assert.equal(filterOption(configOf(['--api-key', 'k']), undefined, {} as Sink, log), undefined);
    assert.equal(reads, 1);
  });
});
