import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createHandler, NdjsonStore, storeHandlers } from '../src/index.ts';
import { silentLogger } from '../src/log.ts';
import { loopIo } from '../src/sinks/file-io.ts';
import { API_KEY, inject, tempDirs, trackEvent } from './helpers.ts';

// The group commit on the event loop's thread (`loopIo`), what a one-core process stores with: the
// lines appended in one turn of the loop go out in one write and one fdatasync, and a disk that refuses
// a write refuses the events, as on the thread pool.

const tempDir = tempDirs('loop');
const AT = new Date('2026-11-30T12:00:00.000Z');
const FILE = 'events-2026-11-30.ndjson';

describe('the group commit on the event loop', () => {
  test('the lines appended in one turn of the loop share one commit, in their order, each durable when its promise resolves', async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    const appended = Array.from({ length: 20 }, (_, n) => store.appendLine(JSON.stringify({ n }), AT));
    await Promise.all(appended);
    // Committed at once, the first line would have gone alone: two commits.
    assert.deepEqual(store.stats, { records: 20, commits: 1, failures: 0 });
    const lines = readFileSync(join(dir, FILE), 'utf8').split('\n');
    assert.deepEqual(
      lines.slice(0, -1).map((line) => JSON.parse(line).n),
      [...Array(20).keys()],
    );
    assert.equal(lines.at(-1), '');

    await store.appendLine('{"n":20}', AT);
    assert.deepEqual(store.stats, { records: 21, commits: 2, failures: 0 });
    await store.close();
  });

  test('events through the endpoint are stored, and answered 200 once durable', async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    const handler = createHandler({ apiKeys: [API_KEY], handlers: storeHandlers(store), log: silentLogger });
    const sent = [trackEvent(), trackEvent(), trackEvent()];
    const answers = await Promise.all(sent.map((body) => inject(handler, { body })));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    const today = `events-${new Date().toISOString().slice(0, 10)}.ndjson`;
    const stored = readFileSync(join(dir, today), 'utf8').trim().split('\n');
    assert.deepEqual(
      stored.map((line) => JSON.parse(line).event.messageId).sort(),
      sent.map((e) => e.messageId).sort(),
    );
    await store.close();
  });

  test('a write the disk refuses (/dev/full: ENOSPC) refuses its lines; the next write that works is stored', async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    // The file of a day long past is the full device: every write to it fails.
    symlinkSync('/dev/full', join(dir, 'events-2020-01-01.ndjson'));
    await assert.rejects(store.appendLine('{"n":1}', new Date('2020-01-01T12:00:00.000Z')), {
      code: 'ENOSPC',
    });
    assert.equal(store.writable, false);
    assert.deepEqual(store.stats, { records: 0, commits: 0, failures: 1 });

    await store.appendLine('{"n":2}', AT);
    assert.equal(store.writable, true);
    assert.equal(readFileSync(join(dir, FILE), 'utf8'), '{"n":2}\n');
    await store.close();
  });
});

describe('which group commit a store uses', () => {
  const io = new URL('../src/sinks/file-io.ts', import.meta.url).href;
  const probe = `const { defaultIo, loopIo } = await import(${JSON.stringify(io)});
    process.stdout.write(defaultIo() === loopIo ? 'loop' : 'thread pool');`;
  const run = (cores: string[]) =>
    execFileSync(
      'taskset',
      ['-c', cores.join(','), process.execPath, '--import', 'tsx', '--input-type=module', '-e', probe],
      { encoding: 'utf8' },
    );

  test('a process that may run on one core only commits on the event loop', () => {
    assert.equal(run(['0']), 'loop');
  });

  test('a process with more cores commits on the thread pool', {
    skip: availableParallelism() < 2 && 'one core here',
  }, () => {
    assert.equal(run(['0', '1']), 'thread pool');
  });
});
