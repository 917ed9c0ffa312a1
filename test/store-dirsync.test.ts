// A file's directory entry is made durable before anything in it is acknowledged (issue 14): POSIX does
// not promise that a new file survives a crash because the file itself was synced. The store syncs the
// directory after it creates a day's file, and repair syncs it after it creates a `.torn` file and
// before it cuts the original: a crash then loses neither the file nor the fragment set aside.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { after, test } from 'node:test';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import { NdjsonStore } from '../src/sinks/file-store.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory, removed after the tests. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-dirsync-'));
  dirs.push(dir);
  return dir;
}

/** node's fs, with every call that changes what is on disk written down in order. */
function recording(): { io: StoreIo; calls: string[] } {
  const calls: string[] = [];
  const names = new Map<number, string>();
  const io: StoreIo = {
    ...nodeIo,
    async open(path, flags) {
      const fd = await nodeIo.open(path, flags);
      names.set(fd, basename(path));
      calls.push(`open ${basename(path)}`);
      return fd;
    },
    async fdatasync(fd) {
      await nodeIo.fdatasync(fd);
      calls.push(`fdatasync ${names.get(fd)}`);
    },
    async ftruncate(fd, length) {
      await nodeIo.ftruncate(fd, length);
      calls.push(`ftruncate ${names.get(fd)}`);
    },
    async syncDirectory(dir) {
      await nodeIo.syncDirectory(dir);
      calls.push(`syncDirectory ${basename(dir)}`);
    },
  };
  return { io, calls };
}

test("a day's new file: its directory is synced before the first event in it is acknowledged", async () => {
  const dir = tempDir();
  const { io, calls } = recording();
  const store = await NdjsonStore.open(dir, { io });
  await store.append({ event: 1 });
  calls.push('acknowledged');
  await store.close();
  const file = calls.find((c) => c.startsWith('open events-')) as string;
  const opened = calls.indexOf(file);
  const synced = calls.indexOf(`syncDirectory ${basename(dir)}`);
  assert.ok(opened !== -1 && synced > opened, calls.join('\n'));
  assert.ok(synced < calls.indexOf('acknowledged'), calls.join('\n'));
});

test('repair: the directory is synced after the .torn file is made and before the original is cut', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'events-2026-01-01.ndjson'), '{"a":1}\n{"b":');
  const { io, calls } = recording();
  const store = await NdjsonStore.open(dir, { io });
  await store.close();
  const torn = calls.indexOf('fdatasync events-2026-01-01.ndjson.torn');
  const synced = calls.indexOf(`syncDirectory ${basename(dir)}`, torn);
  const cut = calls.indexOf('ftruncate events-2026-01-01.ndjson');
  assert.ok(torn !== -1 && synced > torn && cut > synced, calls.join('\n'));
});

/**
 * The directories synced while a store opens at `dir` and closes, as absolute paths, through `io` (node's
 * fs unless a test changes what some calls see).
 */
async function dirsSyncedOpening(dir: string, io: StoreIo = nodeIo): Promise<string[]> {
  const synced: string[] = [];
  const recording: StoreIo = {
    ...io,
    async syncDirectory(at) {
      await io.syncDirectory(at);
      synced.push(resolve(at));
    },
  };
  const store = await NdjsonStore.open(dir, { io: recording });
  await store.close();
  return synced;
}

test("a store directory made at start: the directories it was made in are synced, and only the store's ancestors", async () => {
  // Given as an operator may write it (relative, with a trailing slash). The levels above the first one
  // made are synced too (a start that died may have made them), and nothing beside the path.
  const base = tempDir();
  const synced = await dirsSyncedOpening(`${relative(process.cwd(), join(base, 'a', 'b'))}/`);
  const made = [base, join(base, 'a'), join(base, 'a', 'b')];
  for (const level of made) assert.ok(synced.includes(level), `${level}: ${synced}`);
  for (const level of synced)
    assert.ok(`${join(base, 'a', 'b')}/`.startsWith(`${level}/`.replace('//', '/')), level);
});

test('a store directory a start made and died before syncing: the next start syncs every level of it', async () => {
  // `mkdir -p a/b` done, the process killed before any sync: a power cut could take `a` and all under it
  // with it, the events the next start acknowledges included. That start finds the directory, holding no
  // store file yet, and cannot tell which levels are new: it syncs them all.
  const base = tempDir();
  const dir = join(base, 'a', 'b');
  mkdirSync(dir, { recursive: true });
  const synced = await dirsSyncedOpening(dir);
  for (const level of [base, join(base, 'a')]) assert.ok(synced.includes(level), `${level}: ${synced}`);
});

test('a store directory that already holds events: only its own entry is synced again at start', async () => {
  // Its first start got past the syncs before it wrote a file: the levels above are durable already, and
  // each sync more is a disk round trip before the first event.
  const base = tempDir();
  const dir = join(base, 'a', 'b');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'events-2026-01-01.ndjson'), '{"a":1}\n');
  const synced = await dirsSyncedOpening(dir);
  assert.deepEqual([...new Set(synced)].sort(), [join(base, 'a'), dir].sort());
});

test('a level above the store that cannot be opened (a service user under a 0711 directory) does not refuse the start', async () => {
  // The levels above the parent are synced as far as they can be opened: a directory this user may pass
  // through but not read stops the walk, as AppArmor without `/ r` would. The parent itself must open.
  const base = tempDir();
  const dir = join(base, 'svc', 'data');
  mkdirSync(dir, { recursive: true });
  const synced = await dirsSyncedOpening(dir, {
    ...nodeIo,
    async syncDirectory(at) {
      if (!resolve(at).startsWith(join(base, 'svc'))) {
        throw Object.assign(new Error(`EACCES: permission denied, open '${at}'`), { code: 'EACCES' });
      }
      await nodeIo.syncDirectory(at);
    },
  });
  assert.deepEqual([...new Set(synced)].sort(), [join(base, 'svc'), dir].sort());
});

test("a store path through `..`: only the store directory's own ancestors are synced", async () => {
  const base = tempDir();
  mkdirSync(join(base, 'a'));
  mkdirSync(join(base, 'b'));
  const synced = await dirsSyncedOpening(`${relative(process.cwd(), base)}/a/../b`); // not join: it would fold `..`
  assert.ok(!synced.includes(join(base, 'a')), synced.join(' '));
  assert.ok(synced.includes(base) && synced.includes(dirname(base)), synced.join(' '));
});

test('a start that died half way through mkdir -p (made a, not a/b): the next start syncs the level above a', async () => {
  const base = tempDir();
  mkdirSync(join(base, 'a')); // left unsynced by the start that died
  const synced = await dirsSyncedOpening(join(base, 'a', 'b'));
  assert.ok(synced.includes(base), synced.join(' '));
});

test('the levels above are synced up to the store’s own filesystem, not past a mount point', async () => {
  // A mount point is never made by `mkdir -p`: nothing on another filesystem above it is the store's.
  const base = tempDir();
  const dir = join(base, 'mnt', 'store');
  mkdirSync(dir, { recursive: true });
  const synced = await dirsSyncedOpening(dir, {
    ...nodeIo,
    async identity(at) {
      const found = await nodeIo.identity?.(at);
      // base and everything above it on another device, as if base/mnt were a mount point.
      return found && (resolve(at).startsWith(join(base, 'mnt')) ? found : { ...found, dev: found.dev + 1 });
    },
  });
  assert.deepEqual([...new Set(synced)].sort(), [join(base, 'mnt'), dir].sort());
});
