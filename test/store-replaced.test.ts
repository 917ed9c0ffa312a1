import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NdjsonStore } from '../src/index.ts';
import { loopIo, nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import type { TornLine } from '../src/sinks/file-repair.ts';
import { tempDirs } from './helpers.ts';

// The store's file, or its directory, taken away while the store runs (removed, renamed by a rotation,
// replaced): the events acknowledged after that are in the store's file at its path, where a reader looks,
// not in a file nobody can name any more.

const tempDir = tempDirs('replaced');
const AT = new Date('2026-11-30T12:00:00Z');
const FILE = 'events-2026-11-30.ndjson';
const LOCK = '.segment-endpoint.lock';
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

for (const [name, io] of [
  ['on the thread pool', nodeIo],
  ['on the event loop', loopIo],
] as const) {
  test(`${name}: today's file removed, renamed or replaced: the next events go to a new file at its path`, async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io });
    const path = join(dir, FILE);
    await store.appendLine('{"n":1}', AT);
    unlinkSync(path);
    await store.appendLine('{"n":2}', AT);
    assert.deepEqual(lines(path), ['{"n":2}']);
    renameSync(path, `${path}.1`);
    await store.appendLine('{"n":3}', AT);
    assert.deepEqual(lines(path), ['{"n":3}']);
    assert.deepEqual(lines(`${path}.1`), ['{"n":2}']);
    // A link to the file it writes is the same file: no new one.
    renameSync(path, join(dir, 'kept'));
    symlinkSync('kept', path);
    await store.appendLine('{"n":4}', AT);
    assert.deepEqual(lines(join(dir, 'kept')), ['{"n":3}', '{"n":4}']);
    await store.close();
  });

  test(`${name}: the directory moved away, or removed: made again, and the next events go there`, async () => {
    const dir = join(tempDir(), 'store');
    const store = await NdjsonStore.open(dir, { io });
    await store.appendLine('{"n":1}', AT);
    renameSync(dir, `${dir}.moved`);
    mkdirSync(dir);
    await store.appendLine('{"n":2}', AT);
    assert.deepEqual(lines(join(dir, FILE)), ['{"n":2}']);
    // Locked again, in each new directory: another endpoint could start on it.
    assert.deepEqual(readdirSync(dir).sort(), [LOCK, FILE]);
    assert.match(readlinkSync(join(dir, LOCK)), new RegExp(`^${process.pid} `));
    rmSync(dir, { recursive: true });
    await store.appendLine('{"n":3}', AT);
    assert.deepEqual(readdirSync(dir).sort(), [LOCK, FILE]);
    assert.deepEqual(lines(join(dir, FILE)), ['{"n":3}']);
    assert.deepEqual(lines(join(`${dir}.moved`, FILE)), ['{"n":1}']);
    await store.close();
  });

  test(`${name}: the directory replaced by one another endpoint has locked meanwhile: events are refused, nothing made there`, async () => {
    const dir = join(tempDir(), 'store');
    const store = await NdjsonStore.open(dir, { io });
    await store.appendLine('{"n":1}', AT);
    renameSync(dir, `${dir}.moved`);
    mkdirSync(dir);
    symlinkSync(String(process.ppid), join(dir, LOCK)); // a process that runs
    await assert.rejects(store.appendLine('{"n":2}', AT), {
      code: 'SEG_STORE_IN_USE',
      message: `the store ${dir} is in use by process ${process.ppid}: one process writes a store`,
    });
    assert.deepEqual(readdirSync(dir), [LOCK]);
    // Nor by the probe that would find the disk writable again (a second after a failed commit).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(readdirSync(dir), [LOCK]);
    assert.equal(store.writable, false);
    await store.close();
    assert.equal(readlinkSync(join(dir, LOCK)), String(process.ppid), "the other's lock is left alone");
  });

  test(`${name}: the file cut short from outside in the middle of a line: the fragment is set aside, and the next event is a line of its own`, async () => {
    // The next line was appended to the fragment, `{"n":1}{"n":3}`: an acknowledged event that no
    // reader could parse, and that start-up repair (the last line only) never took apart.
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io });
    const torn: TornLine[] = [];
    store.onTorn = (line) => torn.push(line);
    const path = join(dir, FILE);
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    truncateSync(path, '{"n":1}\n{"n"'.length);
    await store.appendLine('{"n":3}', AT);
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":3}\n');
    assert.equal(readFileSync(`${path}.torn`, 'utf8'), '{"n"\n');
    assert.deepEqual(torn, [{ file: path, movedTo: `${path}.torn`, bytes: 4 }]);
    // A line added by hand without its newline: set aside as well, rather than glued to.
    appendFileSync(path, '{"by":"hand"}');
    await store.appendLine('{"n":4}', AT);
    assert.deepEqual(lines(path), ['{"n":1}', '{"n":3}', '{"n":4}']);
    // Cut at the end of a line: nothing to set aside.
    truncateSync(path, '{"n":1}\n'.length);
    await store.appendLine('{"n":5}', AT);
    assert.deepEqual(lines(path), ['{"n":1}', '{"n":5}']);
    assert.equal(torn.length, 2);
    await store.close();
  });

  test(`${name}: a cut in the middle of a line that lands between a commit's look and its write: the commit is written again after the fragment is set aside`, async () => {
    // The look at the file's size is taken as a commit begins; a cut that came after it, before the
    // write, left the commit's first line glued to the fragment (3 of 8 cuts under load in a probe).
    const dir = tempDir();
    const path = join(dir, FILE);
    let cutTo: number | undefined; // cut to this size just before the next write
    const racing: StoreIo = {
      ...io,
      write(fd, bytes, offset, length) {
        if (cutTo !== undefined) truncateSync(path, cutTo);
        cutTo = undefined;
        return io.write(fd, bytes, offset, length);
      },
    };
    const store = await NdjsonStore.open(dir, { io: racing });
    const torn: TornLine[] = [];
    store.onTorn = (line) => torn.push(line);
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    cutTo = '{"n":1}\n{"n"'.length;
    await store.appendLine('{"n":3}', AT);
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":3}\n');
    assert.deepEqual(torn, [{ file: path, movedTo: `${path}.torn`, bytes: 4 }]);
    // A cut at the end of a line meanwhile glues nothing: the commit stays where it landed.
    cutTo = '{"n":1}\n'.length;
    await store.appendLine('{"n":4}', AT);
    await store.appendLine('{"n":5}', AT);
    assert.deepEqual(lines(path), ['{"n":1}', '{"n":4}', '{"n":5}']);
    assert.equal(torn.length, 1);
    await store.close();
  });

  test(`${name}: a cut into a commit's own lines after its write: the commit is refused, and no line written before it is taken`, async () => {
    // Told apart from a cut before the write only by reading back where the commit should be: taken for
    // one, the size after the write put the commit's start inside the lines before it, and those
    // (answered 200 long ago) were cut off with it.
    const dir = tempDir();
    const path = join(dir, FILE);
    let cutBy: number | undefined; // bytes cut off the end just after the next write
    const racing: StoreIo = {
      ...io,
      async write(fd, bytes, offset, length) {
        const written = await io.write(fd, bytes, offset, length);
        if (cutBy !== undefined) truncateSync(path, statSync(path).size - cutBy);
        cutBy = undefined;
        return written;
      },
    };
    const store = await NdjsonStore.open(dir, { io: racing });
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    cutBy = 3;
    await assert.rejects(store.appendLine('{"n":3}', AT), { code: 'EIO' });
    assert.deepEqual(lines(path), ['{"n":1}', '{"n":2}']);
    await store.appendLine('{"n":4}', AT);
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":2}\n{"n":4}\n');
    // A cut through the whole commit into the line before it (`truncate -s` of a size read before the
    // commit was written): the commit is refused, the line it cut set aside, nothing more taken. (The
    // commit's failure was cut back by its length from where the file ended, into older lines.)
    cutBy = '{"n":5}\n'.length + 3;
    await assert.rejects(store.appendLine('{"n":5}', AT), { code: 'EIO' });
    await store.appendLine('{"n":6}', AT);
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":2}\n{"n":6}\n');
    assert.equal(readFileSync(`${path}.torn`, 'utf8'), '{"n":\n');
    await store.close();
  });

  test(`${name}: a fragment that cannot be set aside yet: no event is answered after it until it is`, async () => {
    // The size taken as where the whole lines end before the fragment was set aside: its set-aside
    // failed (`.torn` a directory here; a full disk), the next commit saw no change, and was answered
    // 200 glued to the fragment.
    const dir = tempDir();
    const path = join(dir, FILE);
    const store = await NdjsonStore.open(dir, { io });
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    mkdirSync(`${path}.torn`);
    truncateSync(path, '{"n":1}\n{"n"'.length);
    await assert.rejects(store.appendLine('{"n":3}', AT), { code: 'EISDIR' });
    await assert.rejects(store.appendLine('{"n":4}', AT), { code: 'EISDIR' });
    rmSync(`${path}.torn`, { recursive: true });
    await store.appendLine('{"n":5}', AT);
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":5}\n');
    await store.close();
  });

  test(`${name}: a cut between a commit's look and its write, then the write fails part-way: the next event is a line of its own`, async () => {
    // The failed write was cut back to where the look said the whole lines ended, which the cut had made
    // the middle of a line: the next commit, seeing no change, was answered 200 glued to it.
    for (const [cutTo, part] of [
      ['{"n":1}\n{"n"'.length, 4],
      ['{"n":1}\n{'.length, 3],
    ]) {
      const dir = tempDir();
      const path = join(dir, FILE);
      let armed = false;
      let calls = 0;
      const failing: StoreIo = {
        ...io,
        async write(fd, bytes, offset, length) {
          if (!armed) return io.write(fd, bytes, offset, length);
          if (calls++ === 0) {
            truncateSync(path, cutTo as number);
            return io.write(fd, bytes, offset, part as number);
          }
          armed = false;
          throw Object.assign(new Error('ENOSPC: simulated'), { code: 'ENOSPC' });
        },
      };
      const store = await NdjsonStore.open(dir, { io: failing });
      await store.appendLine('{"n":1}', AT);
      await store.appendLine('{"n":2}', AT);
      armed = true;
      await assert.rejects(store.appendLine('{"n":3}', AT), { code: 'ENOSPC' });
      await store.appendLine('{"n":4}', AT);
      assert.deepEqual(lines(path), ['{"n":1}', '{"n":4}'], `cut to ${cutTo}`);
      await store.close();
    }
  });

  test(`${name}: the file truncated from outside (logrotate's copytruncate), then a write that fails: cut back to where the file ends now, never grown with zeros`, async () => {
    const dir = tempDir();
    // A disk that fills up in the middle of the next write: part of its line goes in, then ENOSPC.
    let full = false;
    let truncateAt: string | undefined; // cut to nothing just before the next write, as logrotate may
    let cutAfterLook: string | undefined; // cut to nothing just after the next fstat
    const disk: StoreIo = {
      ...io,
      write(fd, bytes, offset, length) {
        if (truncateAt !== undefined) truncateSync(truncateAt, 0);
        truncateAt = undefined;
        if (!full) return io.write(fd, bytes, offset, length);
        if (length <= 5)
          return Promise.reject(Object.assign(new Error('ENOSPC: simulated'), { code: 'ENOSPC' }));
        return io.write(fd, bytes, offset, 5);
      },
      async fstat(fd) {
        const found = await io.fstat(fd);
        if (cutAfterLook !== undefined) truncateSync(cutAfterLook, 0);
        cutAfterLook = undefined;
        return found;
      },
    };
    const store = await NdjsonStore.open(dir, { io: disk });
    const path = join(dir, FILE);
    /** Event `n`'s write fails part-way, then `n + 1` is stored: the file holds that one line alone. */
    const failedThenStored = async (n: number) => {
      full = true;
      await assert.rejects(store.appendLine(`{"n":${n}}`, AT), { code: 'ENOSPC' });
      full = false;
      await store.appendLine(`{"n":${n + 1}}`, AT);
      assert.equal(readFileSync(path, 'utf8'), `{"n":${n + 1}}\n`);
    };
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    truncateSync(path, 0);
    await failedThenStored(3);
    // Cut short between the store's look at the file and its write: the failed write's bytes are the
    // file's last, wherever it ends.
    truncateAt = path;
    await failedThenStored(5);
    // Cut short while the store cuts back a failed write, after it read the file's size: its truncation
    // to the end of the whole lines would grow the file again, with zeros.
    cutAfterLook = path;
    await failedThenStored(7);
    await store.close();
  });

  test(`${name}: a file opened again (a late event of the day before, a file put at its path) that ends in part of a line: set aside before anything is written after it`, async () => {
    // Only a file the store kept open was looked at: one opened again was taken to end in a whole line,
    // and the late event's line, answered 200, was glued to the fragment: `{"n":1}\n{"n"{"n":4}`.
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io });
    const before = join(dir, FILE);
    const next = new Date('2026-12-01T00:00:01Z');
    await store.appendLine('{"n":1}', AT);
    await store.appendLine('{"n":2}', AT);
    await store.appendLine('{"n":3}', next);
    truncateSync(before, '{"n":1}\n{"n"'.length);
    await store.appendLine('{"n":4}', AT);
    assert.equal(readFileSync(before, 'utf8'), '{"n":1}\n{"n":4}\n');
    assert.equal(readFileSync(`${before}.torn`, 'utf8'), '{"n"\n');
    // Not set aside yet (a full disk; a directory here): refused, not glued, though the file was opened again.
    await store.appendLine('{"n":5}', next);
    rmSync(`${before}.torn`);
    mkdirSync(`${before}.torn`);
    appendFileSync(before, '{"by":"hand"}');
    await assert.rejects(store.appendLine('{"n":6}', AT), { code: 'EISDIR' });
    await store.appendLine('{"n":7}', next);
    await assert.rejects(store.appendLine('{"n":8}', AT), { code: 'EISDIR' });
    rmSync(`${before}.torn`, { recursive: true });
    await store.appendLine('{"n":9}', AT);
    assert.deepEqual(lines(before), ['{"n":1}', '{"n":4}', '{"n":9}']);
    // A file put at the path of the one open, ending in part of a line.
    const path = join(dir, 'events-2026-12-01.ndjson');
    renameSync(path, `${path}.old`);
    appendFileSync(path, '{"n":10}\n{"put"');
    await store.appendLine('{"n":11}', next);
    assert.deepEqual(lines(path), ['{"n":10}', '{"n":11}']);
    await store.close();
  });
}

test("a host's own io without identity: a fragment of a file opened again that could not be set aside holds events back until it is", async () => {
  // Its file kept open, the store looked at the fragment only when the io told the file's size: the
  // event after a refused one was answered 200 glued to it.
  const { identity: _, ...io } = nodeIo;
  const dir = tempDir();
  const store = await NdjsonStore.open(dir, { io });
  const path = join(dir, FILE);
  await store.appendLine('{"n":1}', AT);
  await store.appendLine('{"n":2}', AT);
  await store.appendLine('{"n":3}', new Date('2026-12-01T00:00:01Z'));
  truncateSync(path, '{"n":1}\n{"n"'.length);
  mkdirSync(`${path}.torn`);
  await assert.rejects(store.appendLine('{"n":4}', AT), { code: 'EISDIR' });
  await assert.rejects(store.appendLine('{"n":5}', AT), { code: 'EISDIR' });
  rmSync(`${path}.torn`, { recursive: true });
  await store.appendLine('{"n":6}', AT);
  assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":6}\n');
  await store.close();
});
