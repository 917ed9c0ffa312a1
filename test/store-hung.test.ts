import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NdjsonStore } from '../src/index.ts';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import { tempDirs } from './helpers.ts';
import { waitUntil } from './helpers-wait.ts';

// A disk that stops answering (a frozen file system, a dead network volume): the commit under way never
// ends. Lines appended meanwhile wait in memory; their events time out and are answered 503, and the
// sender sends more. What waits is bounded, and the store says it cannot write.

const tempDir = tempDirs('hung');
const AT = new Date('2026-11-30T12:00:00Z');

/** node's fs, except that fdatasync (or the check of the file's identity) waits for `thaw()` while frozen. */
function freezingDisk(held: 'fdatasync' | 'identity' = 'fdatasync') {
  let frozen = false;
  let thawed: () => void = () => {};
  let gate = Promise.resolve();
  const io: StoreIo = {
    ...nodeIo,
    async fdatasync(fd) {
      if (held === 'fdatasync') await gate;
      return nodeIo.fdatasync(fd);
    },
    async identity(path) {
      if (held === 'identity') await gate;
      return nodeIo.identity?.(path);
    },
  };
  const freeze = () => {
    frozen = true;
    gate = new Promise((resolve) => {
      thawed = resolve;
    });
  };
  const thaw = () => {
    frozen = false;
    thawed();
  };
  return { io, freeze, thaw, frozen: () => frozen };
}

test('while the disk hangs, what waits is bounded: past it appends are refused at once, and the store says it cannot write', async () => {
  const dir = tempDir();
  const disk = freezingDisk();
  const store = await NdjsonStore.open(dir, { io: disk.io, maxQueuedChars: 10_000, stuckMs: 60_000 });
  disk.freeze();
  const line = (n: number) => JSON.stringify({ n, pad: 'x'.repeat(1_000) });
  const first = store.appendLine(line(0), AT); // the commit that hangs
  const waiting: Array<Promise<void>> = [];
  for (let n = 1; n <= 9; n++) waiting.push(store.appendLine(line(n), AT)); // ~9 KB queued: under the cap
  assert.equal(store.writable, true);
  const refused = await store.appendLine(line(10), AT).then(
    () => 'stored',
    (err: NodeJS.ErrnoException) => err.code,
  );
  assert.equal(refused, 'SEG_STORE_BEHIND');
  assert.equal(store.writable, false);
  disk.thaw();
  await first;
  await Promise.all(waiting);
  assert.equal(store.writable, true);
  await store.appendLine(line(11), AT);
  const stored = readFileSync(join(dir, 'events-2026-11-30.ndjson'), 'utf8').split('\n').filter(Boolean);
  assert.deepEqual(
    stored.map((text) => JSON.parse(text).n),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11],
  );
  await store.close();
});

for (const held of ['fdatasync', 'identity'] as const)
  test(`a commit held in its ${held} past stuckMs: the store says it cannot write (health 503) until it ends`, async () => {
    const dir = tempDir();
    const disk = freezingDisk(held);
    const store = await NdjsonStore.open(dir, { io: disk.io, stuckMs: 50 });
    await store.appendLine('{"n":0}', AT); // its day's file open: the next commit checks it is still there
    disk.freeze();
    const first = store.appendLine('{"n":1}', AT);
    assert.equal(store.writable, true);
    await waitUntil(
      () => !store.writable,
      () => 'the store to say it cannot write',
    );
    disk.thaw();
    await first;
    assert.equal(store.writable, true);
    await store.close();
  });
