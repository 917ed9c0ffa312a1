// A power cut can keep a later part of the last group commit while an earlier part never reached the
// disk: a hole of zeros before complete lines. Start-up repair looks through the last commit's worth of
// the files the store may have been writing (each writer's last two days) and sets aside everything from
// the first line holding a zero byte; a commit is capped so that this is all it needs to look through.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, linkSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import { COMMIT_MAX_BYTES, repairStore } from '../src/sinks/file-repair.ts';
import { NdjsonStore } from '../src/sinks/file-store.ts';
import { tempDirs } from './helpers.ts';

const tempDir = tempDirs('holes');
const execFileAsync = promisify(execFile);
const line = (n: number, pad = 20) => `${JSON.stringify({ n, pad: 'x'.repeat(pad) })}\n`;
const hole = (bytes: number) => '\0'.repeat(bytes);
/** The store's file interface over `.torn` files made append-only (`chattr +a`): read, or appended to. */
const appendOnlyTorn: StoreIo = {
  ...nodeIo,
  open: (path, flags) =>
    path.endsWith('.torn') && flags !== 'a' && flags !== 'r'
      ? Promise.reject(Object.assign(new Error('append-only'), { code: 'EPERM' }))
      : nodeIo.open(path, flags),
};

test('a hole of zeros before complete lines: everything from its line on is set aside', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30.ndjson');
  const kept = line(1) + line(2);
  const lost = `{"n":3,${hole(10)}"x"}\n${line(4)}`;
  writeFileSync(file, kept + lost);
  const [torn] = await repairStore(dir);
  assert.equal(readFileSync(file, 'utf8'), kept);
  assert.equal(torn?.bytes, lost.length);
  assert.equal(readFileSync(`${file}.torn`, 'utf8'), `${lost}\n`);
});

test('a hole at the very start of a file: the file is emptied, the bytes set aside', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30-w2.ndjson');
  writeFileSync(file, hole(30) + line(1));
  await repairStore(dir);
  assert.equal(readFileSync(file, 'utf8'), '');
});

test('a hole inside one line longer than a commit is found: the look goes back to that line', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30.ndjson');
  const big = `{"n":2,"pad":"${hole(64)}${'y'.repeat(COMMIT_MAX_BYTES + 1000)}"}\n`;
  writeFileSync(file, line(1) + big);
  await repairStore(dir);
  assert.equal(readFileSync(file, 'utf8'), line(1));
});

test('only the last commit is looked through: zeros further back are not the last commit', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30.ndjson');
  const old = `{"old":"${hole(4)}"}\n`;
  const rest = line(1, 1000).repeat(Math.ceil(COMMIT_MAX_BYTES / 1000) + 10);
  writeFileSync(file, old + rest);
  assert.deepEqual(await repairStore(dir), []);
  assert.equal(readFileSync(file, 'utf8'), old + rest);
});

test("only each writer's last two days are looked through; any file's partial last line is repaired", async () => {
  const dir = tempDir();
  const withHole = line(1) + hole(8) + line(2);
  for (const day of ['2026-11-27', '2026-11-28', '2026-11-29']) {
    writeFileSync(join(dir, `events-${day}.ndjson`), withHole);
    writeFileSync(join(dir, `events-${day}-w1.ndjson`), withHole);
  }
  writeFileSync(join(dir, 'events-2026-11-26.ndjson'), `${line(1)}{"partial`);
  const repaired = (await repairStore(dir)).map((torn) => torn.file.slice(dir.length + 1));
  assert.deepEqual(repaired, [
    'events-2026-11-26.ndjson',
    'events-2026-11-28.ndjson',
    'events-2026-11-28-w1.ndjson',
    'events-2026-11-29.ndjson',
    'events-2026-11-29-w1.ndjson',
  ]);
  assert.equal(readFileSync(join(dir, 'events-2026-11-27.ndjson'), 'utf8'), withHole);
  assert.equal(readFileSync(join(dir, 'events-2026-11-26.ndjson'), 'utf8'), line(1));
});

test('a batch larger than a commit is written in several, each within the cap', async () => {
  const dir = tempDir();
  // node's fs, with the bytes each commit (its writes up to its fdatasync) wrote.
  const commits: number[] = [];
  let written = 0;
  const io: StoreIo = {
    ...nodeIo,
    write: async (fd, bytes, offset, length) => {
      const count = await nodeIo.write(fd, bytes, offset, length);
      written += count;
      return count;
    },
    fdatasync: async (fd) => {
      await nodeIo.fdatasync(fd);
      commits.push(written);
      written = 0;
    },
  };
  const store = await NdjsonStore.open(dir, { io });
  const at = new Date('2026-11-30T12:00:00Z');
  const record = (n: number) => ({ n, pad: '€'.repeat(10_000) }); // 3 bytes of UTF-8 a character: 30 kB a line
  const count = Math.ceil((3 * COMMIT_MAX_BYTES) / 30_000);
  await Promise.all(Array.from({ length: count }, (_, n) => store.append(record(n), at)));
  await store.close();
  assert.equal(store.stats.records, count);
  // Grouped: far fewer commits than events, yet every commit within the cap.
  assert.ok(commits.length >= 3 && commits.length < count / 4, `${commits.length} commits`);
  assert.ok(Math.max(...commits) <= COMMIT_MAX_BYTES, `commits of ${commits.join(', ')} bytes`);
  const lines = readFileSync(join(dir, 'events-2026-11-30.ndjson'), 'utf8').trimEnd().split('\n');
  assert.deepEqual(
    lines.map((text) => JSON.parse(text).n),
    Array.from({ length: count }, (_, n) => n),
  );
});

/** node's fs, with the names of the files and directories synced, in order. */
function syncRecorder(): { io: StoreIo; synced: string[] } {
  const synced: string[] = [];
  const names = new Map<number, string>();
  const io: StoreIo = {
    ...nodeIo,
    open: async (path, flags) => {
      const fd = await nodeIo.open(path, flags);
      names.set(fd, path);
      return fd;
    },
    fdatasync: async (fd) => {
      await nodeIo.fdatasync(fd);
      synced.push(names.get(fd) as string);
    },
    syncDirectory: async (dir) => {
      await nodeIo.syncDirectory(dir);
      synced.push(`${dir}/`);
    },
  };
  return { io, synced };
}

test('start-up syncs the recent files it looked through: a kill -9 before a sync leaves one unsynced commit, not two', async () => {
  // A process killed between its write and its fdatasync leaves that commit in the page cache; the next
  // process's first commit to the same file would be a second unsynced one, beyond what repair reads.
  const dir = tempDir();
  writeFileSync(join(dir, 'events-2026-11-29.ndjson'), line(1));
  writeFileSync(join(dir, 'events-2026-11-30.ndjson'), line(2));
  const { io, synced } = syncRecorder();
  await repairStore(dir, { io });
  assert.deepEqual(
    synced.filter((name) => name.endsWith('.ndjson')),
    [join(dir, 'events-2026-11-29.ndjson'), join(dir, 'events-2026-11-30.ndjson')],
  );
});

test("start-up syncs the store directory's parent once, even when the directory exists (a first start may have died before)", async () => {
  const dir = join(tempDir(), 'store');
  mkdirSync(dir);
  const { io, synced } = syncRecorder();
  const store = await NdjsonStore.open(dir, { io });
  await store.close();
  // Once: each sync of a directory is a round trip to the disk (~0.4–0.8 ms here) before the first event.
  assert.deepEqual(
    synced.filter((name) => name === `${dirname(dir)}/`),
    [`${dirname(dir)}/`],
    synced.join(' '),
  );
});

test('a line with a line break or a zero byte is refused, not stored', async () => {
  const store = await NdjsonStore.open(tempDir());
  await assert.rejects(store.appendLine('{"a":1}\n{"b":2}'), TypeError);
  await assert.rejects(store.appendLine('{"a":"\0"}'), TypeError);
  await store.close();
  assert.equal(store.stats.records, 0);
});

test('a torn tail of 150 MB (a planted or damaged file) is set aside in bounded memory, as it came', async () => {
  // Read whole, twice over (the look for a hole, then the fragment and its copy with a line end), it took
  // ~530 MB to start. Repaired in a process of its own, whose peak is its own.
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30.ndjson');
  const tail = Buffer.alloc(150 * 1024 * 1024, 'x');
  tail[tail.length - 2] = 0; // a zero near the end: the look for a hole goes back to the line's start
  writeFileSync(file, line(1));
  appendFileSync(file, tail);
  const repair = [
    `const { repairStore } = await import(${JSON.stringify(new URL('../src/sinks/file-repair.ts', import.meta.url).href)});`,
    `const [torn] = await repairStore(${JSON.stringify(dir)});`,
    // VmHWM, not getrusage's maxRSS: that one starts at this test's own peak when the child is made.
    `const hwm = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+)/);`,
    'console.log(JSON.stringify({ bytes: torn.bytes, peak: Number(hwm[1]) * 1024 }));',
  ].join('\n');
  const { stdout } = await execFileAsync(process.execPath, [
    '--conditions=segment-endpoint-source',
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    repair,
  ]);
  const { bytes, peak } = JSON.parse(stdout) as { bytes: number; peak: number };
  assert.equal(bytes, tail.length);
  assert.equal(readFileSync(file, 'utf8'), line(1));
  const aside = readFileSync(`${file}.torn`);
  assert.equal(aside.length, tail.length + 1);
  assert.ok(aside.subarray(0, tail.length).equals(tail), 'the fragment as it was, then a line end');
  assert.ok(peak < 150 * 1024 * 1024, `peak RSS ${Math.round(peak / 1024 / 1024)} MiB`);
});

test('a start-up killed while it copied a fragment aside: the next one takes the copy cut short off first', async () => {
  // Each start-up killed in the middle of a long fragment's copy left the part it had copied, and the
  // next copied the whole fragment after it, glued to that part: 15 kills made 730 MB of .torn of 314 MB
  // of fragments (found by a crash probe). The unfinished last line of .torn that is the fragment's start
  // is the copy a killed start-up cut short: nothing else leaves a line there unfinished.
  const earlier = '{"n":0,"cut'; // a fragment an earlier start-up set aside
  const fragment = `{"n":3,"pad":"${'y'.repeat(200_000)}`;
  const planted = (left: string) => {
    const dir = tempDir();
    const file = join(dir, 'events-2026-11-30.ndjson');
    writeFileSync(file, line(1) + fragment);
    writeFileSync(`${file}.torn`, `${earlier}\n${left}`);
    return { dir, file };
  };
  const setAside = (file: string) => readFileSync(`${file}.torn`, 'utf8');
  const cut = planted(fragment.slice(0, 70_000));
  await repairStore(cut.dir);
  assert.equal(readFileSync(cut.file, 'utf8'), line(1));
  assert.ok(setAside(cut.file) === `${earlier}\n${fragment}\n`, `${setAside(cut.file).length} bytes`);
  // An unfinished line that is not the fragment's start stays: the fragment goes on a line of its own.
  const other = planted('{"other');
  await repairStore(other.dir);
  assert.ok(setAside(other.file) === `${earlier}\n{"other\n${fragment}\n`, setAside(other.file).slice(0, 30));
  // Where the copy cut short cannot be taken off (the cut refused: EPERM; or a file with other names,
  // whose other names would be cut too), it stays, and the fragment goes on a line of its own.
  const appendOnly = planted(fragment.slice(0, 70_000));
  const torn = statSync(`${appendOnly.file}.torn`).ino;
  const refusing: StoreIo = {
    ...nodeIo,
    ftruncate: async (fd, length) => {
      if ((await nodeIo.fstat(fd)).ino === torn) throw Object.assign(new Error('refused'), { code: 'EPERM' });
      return nodeIo.ftruncate(fd, length);
    },
  };
  await repairStore(appendOnly.dir, { io: refusing });
  const kept = `${earlier}\n${fragment.slice(0, 70_000)}\n${fragment}\n`;
  assert.ok(setAside(appendOnly.file) === kept, `${setAside(appendOnly.file).length} bytes`);
  // An append-only file (`chattr +a`) is not even opened to be read and written: EPERM there.
  const sealed = planted(fragment.slice(0, 70_000));
  await repairStore(sealed.dir, { io: appendOnlyTorn });
  assert.ok(setAside(sealed.file) === kept, `${setAside(sealed.file).length} bytes`);
  const linked = planted(fragment.slice(0, 70_000));
  linkSync(`${linked.file}.torn`, join(linked.dir, 'elsewhere'));
  await repairStore(linked.dir);
  assert.ok(setAside(linked.file) === kept, `${setAside(linked.file).length} bytes`);
  assert.ok(readFileSync(join(linked.dir, 'elsewhere'), 'utf8') === kept);
});

test('a start-up killed after its copy of a fragment was whole, before the cut: the next one copies it no more', async () => {
  // Killed between the end of the copy (its line end written) and the store file's cut, a start-up left
  // the whole copy in .torn and the fragment in place: each next start-up copied it again (a crash
  // probe's restarts made 7 copies of a 100 MiB fragment, 734 MB of .torn).
  const earlier = '{"n":0,"cut'; // a fragment an earlier start-up set aside
  const planted = (fragment: string, aside: string) => {
    const dir = tempDir();
    const file = join(dir, 'events-2026-11-30.ndjson');
    writeFileSync(file, line(1) + fragment);
    writeFileSync(`${file}.torn`, aside);
    return { dir, file };
  };
  const setAside = (file: string) => readFileSync(`${file}.torn`, 'utf8');
  const fragment = `{"n":3,"pad":"${'y'.repeat(200_000)}`;
  for (const aside of [`${fragment}\n`, `${earlier}\n${fragment}\n`]) {
    // Append-only too (`chattr +a`): read, its end is seen.
    for (const io of [nodeIo, appendOnlyTorn]) {
      const whole = planted(fragment, aside);
      await repairStore(whole.dir, { io });
      assert.equal(readFileSync(whole.file, 'utf8'), line(1));
      assert.ok(setAside(whole.file) === aside, `${setAside(whole.file).length} bytes`);
    }
  }
  // A fragment of several lines (a power cut's hole) copied whole is known the same way.
  const holed = `${hole(8)}${line(2)}{"n":3`;
  const several = planted(holed, `${earlier}\n${holed}\n`);
  await repairStore(several.dir);
  assert.equal(readFileSync(several.file, 'utf8'), line(1));
  assert.ok(setAside(several.file) === `${earlier}\n${holed}\n`, JSON.stringify(setAside(several.file)));
  // Only a whole line of .torn that is the whole fragment: one it ends is another's, and the copy is made.
  for (const aside of [`x${fragment}\n`, `${fragment.slice(1)}\n`, `${earlier}\n`]) {
    const other = planted(fragment, aside);
    await repairStore(other.dir);
    assert.ok(setAside(other.file) === `${aside}${fragment}\n`, `${setAside(other.file).length} bytes`);
  }
});
