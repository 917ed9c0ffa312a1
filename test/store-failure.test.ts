import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { createHandler, NdjsonStore, storeHandlers } from '../src/index.ts';
import { jsonLogger, silentLogger } from '../src/log.ts';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import { API_KEY, bytesWaiting, segmentHeaders, tempDirs, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { eventually, within } from './helpers-wait.ts';

// A store whose disk fills up, without a disk: node's fs, except that a write only gets the room left
// under `capacity` (a short write) and fails with ENOSPC when there is none, as a full file system does.

const tempDir = tempDirs('full');

const errno = (code: string, syscall: string) =>
  Object.assign(new Error(`${code}: simulated, ${syscall}`), { code, syscall });

interface Disk {
  capacity: number;
  /** While set, truncation fails with EIO. */
  truncateFails: boolean;
  writes: number;
}

function smallDisk(capacity: number): { io: StoreIo; disk: Disk } {
  const disk: Disk = { capacity, truncateFails: false, writes: 0 };
  const io: StoreIo = {
    ...nodeIo,
    write(fd, bytes, offset, length) {
      disk.writes++;
      const room = disk.capacity - fstatSync(fd).size;
      if (room <= 0) return Promise.reject(errno('ENOSPC', 'write'));
      return nodeIo.write(fd, bytes, offset, Math.min(length, room));
    },
    ftruncate(fd, length) {
      if (disk.truncateFails) return Promise.reject(errno('EIO', 'ftruncate'));
      return nodeIo.ftruncate(fd, length);
    },
  };
  return { io, disk };
}

const AT = new Date('2026-11-26T12:00:00.000Z');
const event = (n: number) => ({ n, pad: 'x'.repeat(880) }); // ~900 bytes a line, as in the report

/** Every line of the file: complete lines parse; a line that does not is a torn one. */
function fileLines(file: string): { records: Array<{ n: number }>; torn: number; endsClean: boolean } {
  const text = readFileSync(file, 'utf8');
  const records: Array<{ n: number }> = [];
  let torn = 0;
  for (const line of text.split('\n').slice(0, -1)) {
    try {
      records.push(JSON.parse(line));
    } catch {
      torn++;
    }
  }
  return { records, torn, endsClean: text === '' || text.endsWith('\n') };
}

/** A gate: `hold(go)` is reached (`reached` resolves) and waits until `release()` calls `go`. */
function gate() {
  let reachedNow = () => {};
  const reached = new Promise<void>((resolve) => (reachedNow = resolve));
  let release = () => {};
  const hold = (go: () => void) => {
    release = go;
    reachedNow();
  };
  return { reached, release: () => release(), hold };
}

/**
 * node's fs with a switch for a full disk (`full`, or `room` bytes left), that counts the store's disk
 * probes (its `.probe` file) and can hold the next probe after its open, or the next cut back of a store
 * file, until released.
 */
function probedDisk() {
  const probeFds = new Set<number>();
  let holdProbe: ((release: () => void) => void) | undefined;
  let holdCut: ((release: () => void) => void) | undefined;
  let closedProbes = 0;
  let wakeOnClose: (() => void) | undefined;
  const disk = {
    full: false,
    room: Number.POSITIVE_INFINITY,
    probes: 0,
    /** Probes whose file was removed: the end of a probe, after its close. */
    removed: 0,
    closing: false,
    afterClose: 0,
    io: undefined as unknown as StoreIo,
    holdNextProbe() {
      const held = gate();
      holdProbe = held.hold;
      return { opened: held.reached, release: held.release };
    },
    holdNextCut() {
      const held = gate();
      holdCut = held.hold;
      return { reached: held.reached, release: held.release };
    },
    probeClosed(): Promise<void> {
      const before = closedProbes;
      return new Promise((resolve) => {
        wakeOnClose = () => closedProbes > before && resolve();
      });
    },
    probeOpsAfter: () => disk.afterClose,
  };
  const noteProbe = (fd: number) => {
    if (probeFds.has(fd) && disk.closing) disk.afterClose++;
  };
  disk.io = {
    ...nodeIo,
    async open(path, flags) {
      if (!basename(path).startsWith('.probe')) return nodeIo.open(path, flags);
      const hold = holdProbe;
      holdProbe = undefined;
      if (hold !== undefined) await new Promise<void>((go) => hold(go));
      const fd = await nodeIo.open(path, flags);
      probeFds.add(fd);
      return fd;
    },
    write(fd, bytes, offset, length) {
      noteProbe(fd);
      if (disk.full || disk.room <= 0) return Promise.reject(errno('ENOSPC', 'write'));
      const written = Math.min(length, disk.room);
      disk.room -= written;
      return nodeIo.write(fd, bytes, offset, written);
    },
    async ftruncate(fd, length) {
      noteProbe(fd);
      const hold = holdCut;
      if (!probeFds.has(fd) && hold !== undefined) {
        holdCut = undefined;
        await new Promise<void>((go) => hold(go));
      }
      return nodeIo.ftruncate(fd, length);
    },
    async close(fd) {
      noteProbe(fd);
      await nodeIo.close(fd);
      if (probeFds.delete(fd)) {
        disk.probes++;
        closedProbes++;
        wakeOnClose?.();
      }
    },
    async unlink(path) {
      await nodeIo.unlink?.(path);
      if (/^\.probe-[0-9a-f]{12}$/.test(basename(path))) disk.removed++;
    },
  };
  return disk;
}

/** A store on `disk` whose first event was refused for a full disk: the store down, its probe started. */
async function downStore(disk: ReturnType<typeof probedDisk>, dir = tempDir()): Promise<NdjsonStore> {
  const store = await NdjsonStore.open(dir, { io: disk.io });
  disk.full = true;
  await assert.rejects(store.append(event(0), AT), { code: 'ENOSPC' });
  return store;
}

/** A store down (downStore) whose first probe is held after its open, until `probing.release()`. */
async function probeHeld() {
  const disk = probedDisk();
  const dir = tempDir();
  const store = await downStore(disk, dir);
  const probing = disk.holdNextProbe();
  await within(probing.opened, 10_000, 'a probe');
  return { dir, disk, store, probing };
}

describe('a store whose disk fills up', () => {
  test('turns writable again by itself once the disk takes a write: health recovers with no event sent', async () => {
    // A balancer takes an endpoint whose health fails out of its pool: no event comes to try a write.
    const disk = probedDisk();
    const store = await NdjsonStore.open(tempDir(), { io: disk.io });
    await store.append(event(0), AT);
    disk.full = true;
    await assert.rejects(store.append(event(1), AT), { code: 'ENOSPC' });
    await eventually(async () => disk.probes >= 1, 'a probe while the disk is full');
    assert.equal(store.writable, false, 'still full: still not writable');
    disk.full = false;
    await eventually(async () => store.writable, 'writable again with no event');
    await store.append(event(2), AT);
    await store.close();
    assert.deepEqual(
      fileLines(store.fileFor(AT)).records.map((r) => r.n),
      [0, 2],
    );
  });

  /**
   * The day's file replaced by what `plant` makes there: the next event refused with `code`, the store
   * kept unwritable through two probes, and writable again once it is removed, its next event stored.
   */
  async function plantedDayFile(plant: (file: string) => void, code: string): Promise<void> {
    const store = await NdjsonStore.open(tempDir());
    const today = new Date();
    const file = store.fileFor(today);
    await store.append(event(0), today);
    rmSync(file);
    plant(file);
    await assert.rejects(within(store.append(event(1), today), 5_000, 'the refusal'), { code });
    await new Promise((later) => setTimeout(later, 2_500)); // two probes
    assert.equal(store.writable, false, 'not writable while the day file is not one it may write');
    rmSync(file);
    await eventually(async () => store.writable, 'writable again once it is gone');
    await store.append(event(2), today);
    await within(store.close(), 5_000, 'close');
    assert.deepEqual(
      fileLines(file).records.map((r) => r.n),
      [2],
    );
  }

  test("a day file it may not write (a planted link) keeps the store unwritable, whatever the probe's own file takes", async () => {
    // At midnight a link planted as the new day's file refused every event while health said ok: the
    // probe's own file took its write, and the store turned writable between the refusals.
    await plantedDayFile((file) => symlinkSync(join(tempDir(), 'elsewhere'), file), 'ELOOP');
  });

  test('a FIFO where the day file goes is refused at once, never waited on; the store recovers once it is gone', async () => {
    // Opened for appending, a FIFO with no reader held the commit (and a thread of the pool) for good:
    // every event 503, nothing logged, and SIGTERM could not stop the process.
    await plantedDayFile((file) => execFileSync('mkfifo', [file]), 'ENXIO');
  });

  test('its directory removed while it is down: the probe makes it again, as a commit would, and the store recovers with no event sent', async () => {
    const disk = probedDisk();
    const dir = join(tempDir(), 'store');
    const store = await NdjsonStore.open(dir, { io: disk.io });
    await store.append(event(0), AT);
    disk.full = true;
    await assert.rejects(store.append(event(1), AT), { code: 'ENOSPC' });
    rmSync(dir, { recursive: true });
    disk.full = false;
    await eventually(async () => store.writable, 'writable again with no event');
    await store.close();
  });

  /** What the probes left in `dir`: nothing once each has ended, whether it succeeded or failed. */
  const probeFiles = (dir: string) => readdirSync(dir).filter((name) => /^\.probe-[0-9a-f]{12}$/.test(name));

  /**
   * What `plant` makes at `.probe` in the store's directory (the name older versions probed at), while
   * the store is down: never opened, and the store recovers with no event sent.
   */
  async function plantedProbe(plant: (file: string, dir: string) => void): Promise<void> {
    const disk = probedDisk();
    const dir = tempDir();
    const store = await downStore(disk, dir);
    plant(join(dir, '.probe'), dir);
    disk.full = false;
    await eventually(async () => store.writable, 'writable again with no event');
    assert.deepEqual(probeFiles(dir), [], 'each probe removed its file');
    await store.close();
  }

  test('what others plant where the probe writes is never opened: a link, a FIFO, a directory, a hard link', async () => {
    // Found by probes of the store: at one fixed name, a link (ELOOP), a FIFO with no reader (ENXIO) or a
    // directory (EISDIR) kept health unavailable after the disk recovered, until an event came; a FIFO with
    // a reader took the probe's 64 KiB, and a hard link to a store file had it emptied (O_TRUNC). Each
    // probe now makes a new file under a name no one can foresee, and removes it.
    const elsewhere = join(tempDir(), 'elsewhere');
    writeFileSync(elsewhere, 'kept');
    await plantedProbe((file) => symlinkSync(elsewhere, file));
    assert.equal(readFileSync(elsewhere, 'utf8'), 'kept', 'nothing written through the link');
    let reader: number | undefined;
    await plantedProbe((file) => {
      execFileSync('mkfifo', [file]);
      reader = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    });
    const got = bytesWaiting(reader as number);
    closeSync(reader as number);
    assert.equal(got, 0, "no probe bytes in the FIFO's reader");
    await plantedProbe((file) => mkdirSync(file));
    const precious = join(tempDir(), 'precious');
    writeFileSync(precious, 'precious data');
    await plantedProbe((file) => linkSync(precious, file));
    assert.equal(readFileSync(precious, 'utf8'), 'precious data', 'a hard-linked file not emptied');
  });

  test('a probe whose name is taken between its choice and its open tries again under another: nothing goes into what took it', async () => {
    const disk = probedDisk();
    const dir = tempDir();
    const store = await downStore(disk, dir);
    let reader: number | undefined;
    const open = disk.io.open;
    disk.io.open = async (path, flags) => {
      if (reader === undefined && basename(path).startsWith('.probe')) {
        execFileSync('mkfifo', [path]);
        reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      }
      return open(path, flags);
    };
    disk.full = false;
    await eventually(async () => store.writable, 'writable again with no event');
    assert.equal(bytesWaiting(reader as number), 0, "no probe bytes in the FIFO's reader");
    closeSync(reader as number);
    await store.close();
  });

  test("a probe that fails half-way gives back what it wrote: the disk's last room stays the events'", async () => {
    // Room for part of the probe's 64 KiB, more than an event: a probe that kept its bytes took that room,
    // and every event was refused for good, its own probe filling the space it freed each second.
    const disk = probedDisk();
    const dir = tempDir();
    const store = await downStore(disk, dir);
    disk.room = 32 * 1024;
    disk.full = false;
    await eventually(async () => disk.probes >= 1 && disk.removed >= 1, 'a probe with 32 KiB of room, ended');
    assert.deepEqual(probeFiles(dir), [], 'the failed probe removed its file');
    await store.close();
  });

  test("a probe's file left by a process that died during it is removed by the next probe", async () => {
    const disk = probedDisk();
    const dir = tempDir();
    writeFileSync(join(dir, '.probe-0123456789ab'), Buffer.alloc(64 * 1024));
    writeFileSync(join(dir, '.probe-w2-0123456789ab'), "another worker's");
    const store = await downStore(disk, dir);
    await eventually(async () => disk.probes >= 1 && disk.removed >= 2, 'a probe, ended');
    assert.deepEqual(probeFiles(dir), []);
    assert.ok(existsSync(join(dir, '.probe-w2-0123456789ab')), "another worker's is its own");
    await store.close();
  });

  test("a probe's file left by a process that died during it is removed at start-up, the disk well", async () => {
    // Left until the next outage's first probe, its 64 KiB were taken from the events' room all along.
    const dir = tempDir();
    writeFileSync(join(dir, '.probe-0123456789ab'), Buffer.alloc(64 * 1024));
    writeFileSync(join(dir, '.probe-w2-0123456789ab'), "another worker's");
    writeFileSync(join(dir, '.probe-notes'), 'not a probe of ours');
    const store = await NdjsonStore.open(dir);
    assert.deepEqual(probeFiles(dir), []);
    assert.ok(existsSync(join(dir, '.probe-w2-0123456789ab')), "another worker's is its own");
    assert.ok(existsSync(join(dir, '.probe-notes')), 'a name no probe makes is left alone');
    await store.close();
  });

  test('a probe that ends while a failed commit is cut back goes on probing: the store recovers all the same', async () => {
    const { disk, store, probing } = await probeHeld();
    // An event's commit fails meanwhile, and its cut back is held while the probe ends (failed).
    const cut = disk.holdNextCut();
    const failed = assert.rejects(store.append(event(1), AT), { code: 'ENOSPC' });
    await within(cut.reached, 5_000, "the failed commit's cut");
    const probed = disk.probeClosed();
    probing.release();
    await within(probed, 5_000, 'the probe ending');
    cut.release();
    await failed;
    disk.full = false;
    await eventually(async () => store.writable, 'writable again: the probe went on');
    await store.close();
  });

  test('close() waits for a probe the disk never answers for 2 s at most, not for ever', async () => {
    const { dir, disk, store, probing } = await probeHeld();
    await within(store.close(), 10_000, 'close() with a probe held');
    const closed = disk.probeClosed();
    probing.release();
    // The probe given up on still makes, closes and removes its file: the directory goes after that.
    await within(closed, 10_000, 'the probe closed');
    await eventually(
      async () => !readdirSync(dir).some((name) => name.startsWith('.probe')),
      'the probe done',
    );
  });

  test('close() waits for a probe under way: nothing is written to the directory after it', async () => {
    const { disk, store, probing } = await probeHeld();
    const closing = store.close().then(() => {
      disk.closing = true;
    });
    // Closed at once, the store left its probe writing into the directory after it.
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 300))]);
    probing.release();
    await closing;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(disk.probeOpsAfter(), 0, 'the probe touched its file after close() resolved');
  });

  test('a short write is cut back before it is refused: no partial line, every acknowledged event once, later events on lines of their own', async () => {
    const dir = tempDir();
    const { io, disk } = smallDisk(64 * 1024);
    const store = await NdjsonStore.open(dir, { io });
    const acknowledged: number[] = [];
    let n = 0;
    // Fill the disk one event at a time, then by concurrent groups, which share one write.
    let refused = 0;
    while (refused < 3) {
      await store.append(event(n), AT).then(
        () => acknowledged.push(n),
        (err: NodeJS.ErrnoException) => {
          assert.equal(err.code, 'ENOSPC');
          refused++;
        },
      );
      n++;
    }
    const burst = Array.from({ length: 5 }, () => n++);
    const outcomes = await Promise.allSettled(burst.map((i) => store.append(event(i), AT)));
    assert.ok(outcomes.every((o) => o.status === 'rejected'));
    // Space comes back: new events are stored, each on its own line.
    disk.capacity = Number.POSITIVE_INFINITY;
    for (let more = 0; more < 20; more++, n++) {
      await store.append(event(n), AT);
      acknowledged.push(n);
    }
    await store.close();

    const file = store.fileFor(AT);
    const { records, torn, endsClean } = fileLines(file);
    assert.equal(torn, 0, 'no partial line anywhere in the file');
    assert.ok(endsClean);
    assert.deepEqual(
      records.map((r) => r.n),
      acknowledged,
      'exactly the acknowledged events, once each, in order',
    );
    assert.equal(store.stats.records, acknowledged.length);
    // A restart finds nothing to repair.
    const again = await NdjsonStore.open(dir);
    assert.deepEqual(again.recovered, []);
    await again.close();
  });

  test('when the cut fails too, nothing more is written or acknowledged on that file until it succeeds', async () => {
    const dir = tempDir();
    const { io, disk } = smallDisk(64 * 1024);
    const store = await NdjsonStore.open(dir, { io });
    const file = store.fileFor(AT);
    const acknowledged: number[] = [];
    let n = 0;
    disk.truncateFails = true;
    for (; ; n++) {
      const ok = await store.append(event(n), AT).then(
        () => true,
        () => false,
      );
      if (!ok) break;
      acknowledged.push(n);
    }
    n++;
    const stuck = readFileSync(file);
    disk.capacity = Number.POSITIVE_INFINITY;
    // The file still ends in part of a line and cannot be cut back: refuse rather than write after it.
    const writes = disk.writes;
    await assert.rejects(store.append(event(n++), AT), { code: 'EIO' });
    await assert.rejects(store.append(event(n++), AT), { code: 'EIO' });
    assert.equal(disk.writes, writes, 'nothing written after the partial line');
    assert.deepEqual(readFileSync(file), stuck);
    // The cut succeeds at the next event, which is then stored.
    disk.truncateFails = false;
    await store.append(event(n), AT);
    acknowledged.push(n);
    await store.close();
    const { records, torn, endsClean } = fileLines(file);
    assert.equal(torn, 0);
    assert.ok(endsClean);
    assert.deepEqual(
      records.map((r) => r.n),
      acknowledged,
    );
  });

  test('a file left with a partial line is cut back when the store moves to the next day, or closes', async () => {
    const { io, disk } = smallDisk(1000);
    const store = await NdjsonStore.open(tempDir(), { io });
    const nextDay = new Date(AT.getTime() + 24 * 60 * 60 * 1000);
    await store.append(event(0), AT);
    disk.truncateFails = true;
    await assert.rejects(store.append(event(1), AT), { code: 'ENOSPC' });
    assert.equal(fileLines(store.fileFor(AT)).endsClean, false);
    disk.truncateFails = false;
    disk.capacity = Number.POSITIVE_INFINITY;
    await store.append(event(2), nextDay);
    assert.deepEqual(fileLines(store.fileFor(AT)), { records: [event(0)], torn: 0, endsClean: true });

    disk.capacity = statSync(store.fileFor(nextDay)).size + 500; // room for half a line: a short write
    disk.truncateFails = true;
    await assert.rejects(store.append(event(3), nextDay), { code: 'ENOSPC' });
    assert.equal(fileLines(store.fileFor(nextDay)).endsClean, false);
    disk.truncateFails = false;
    await store.close();
    assert.deepEqual(fileLines(store.fileFor(nextDay)), { records: [event(2)], torn: 0, endsClean: true });
  });

  test('a file closed with a partial line it could not cut is cut before this process writes to it again', async () => {
    const { io, disk } = smallDisk(1000);
    const store = await NdjsonStore.open(tempDir(), { io });
    const nextDay = new Date(AT.getTime() + 24 * 60 * 60 * 1000);
    await store.append(event(0), AT);
    disk.truncateFails = true; // the cut after the failed write, and the one on moving to the next day
    await assert.rejects(store.append(event(1), AT), { code: 'ENOSPC' });
    disk.capacity = Number.POSITIVE_INFINITY;
    await store.append(event(2), nextDay);
    assert.equal(fileLines(store.fileFor(AT)).endsClean, false);
    disk.truncateFails = false;
    // A late event for the day before (midnight): its file is cut back first, or the event is refused.
    await store.append(event(3), AT);
    await store.close();
    assert.deepEqual(fileLines(store.fileFor(AT)), {
      records: [event(0), event(3)],
      torn: 0,
      endsClean: true,
    });
  });
});

describe('a store that starts on a full disk', () => {
  test('a torn last line found at start: the store starts, refuses events, and sets the fragment aside once there is room', async () => {
    const dir = tempDir();
    const file = join(dir, 'events-2026-11-26.ndjson');
    writeFileSync(file, `${JSON.stringify(event(0))}\n{"n":1,"pa`);
    // Today's too: the file start-up would open.
    const now = new Date();
    const today = join(dir, `events-${now.toISOString().slice(0, 10)}.ndjson`);
    writeFileSync(today, `${JSON.stringify(event(10))}\n{"n":11`);
    const { io, disk } = smallDisk(0);
    const store = await NdjsonStore.open(dir, { io });
    assert.equal(store.writable, false);
    // Each is told as it is set aside, as those set aside at start-up are (the endpoint logs them).
    const told: string[] = [];
    store.onRecovered = (torn) => told.push(torn.movedTo);
    await assert.rejects(store.append(event(2), AT), { code: 'ENOSPC' });
    assert.equal(readFileSync(file, 'utf8').endsWith('"pa'), true, 'nothing written after the fragment');
    disk.capacity = Number.POSITIVE_INFINITY;
    await store.append(event(3), AT);
    assert.equal(store.writable, true);
    assert.deepEqual(fileLines(file), { records: [event(0), event(3)], torn: 0, endsClean: true });
    assert.equal(readFileSync(`${file}.torn`, 'utf8'), '{"n":1,"pa\n');
    await store.append(event(12), now);
    assert.deepEqual(fileLines(today), { records: [event(10), event(12)], torn: 0, endsClean: true });
    assert.deepEqual(
      store.recovered.map((torn) => torn.movedTo),
      [`${file}.torn`, `${today}.torn`],
    );
    assert.deepEqual(told, [`${file}.torn`, `${today}.torn`]);
    await store.close();
  });
});

test('a fragment set aside half-way on a full disk is cut back: once there is room, its .torn file holds it once', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-26.ndjson');
  writeFileSync(file, `${JSON.stringify(event(0))}\n{"n":1,"pa`);
  const { io, disk } = smallDisk(4); // room for 4 bytes of the fragment: a short write, then ENOSPC
  const store = await NdjsonStore.open(dir, { io });
  await assert.rejects(store.append(event(2), AT), { code: 'ENOSPC' });
  disk.capacity = Number.POSITIVE_INFINITY;
  await store.append(event(3), AT);
  assert.equal(readFileSync(`${file}.torn`, 'utf8'), '{"n":1,"pa\n');
  await store.close();
});

/** A store on `io` behind a handler whose log lines (info and up) are kept; `send` an event by messageId. */
/** Longer than the store's writes must keep working before it says they work again (file-records.ts). */
const steady = () => new Promise((resolve) => setTimeout(resolve, 1_100));

async function loggedStore(io: StoreIo) {
  const store = await NdjsonStore.open(tempDir(), { io });
  const logged: Array<{ msg?: string; messageId?: string }> = [];
  const handler = createHandler({
    apiKeys: [API_KEY],
    handlers: storeHandlers(store),
    log: jsonLogger('info', (line) => logged.push(JSON.parse(line))),
  });
  const send = (messageId: string) => inject(handler, { body: trackEvent({ messageId }) });
  return { store, logged, send };
}

describe('health while the store cannot write', () => {
  async function endpoint() {
    const { io, disk } = smallDisk(Number.POSITIVE_INFINITY);
    const store = await NdjsonStore.open(tempDir(), { io });
    const logged: Array<{ level: number; msg?: string; err?: { code?: string } }> = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      handlers: storeHandlers(store),
      ready: () => store.writable,
      metricsPath: '/metrics',
      log: jsonLogger('error', (line) => logged.push(JSON.parse(line))),
    });
    store.onCommit = (seconds, events) => handler.metrics?.commit(seconds, events);
    const health = () => inject(handler, { method: 'GET', url: '/health', headers: {} });
    const send = () => inject(handler, { body: trackEvent() });
    return { store, disk, handler, logged, health, send };
  }

  test('while writes fail: events 503 SEG_STORE_UNAVAILABLE with Retry-After, health 503 unavailable; both recover with the next write that works', async () => {
    const { store, disk, handler, logged, health, send } = await endpoint();
    assert.equal((await health()).status, 200);
    assert.equal((await send()).status, 200);

    disk.capacity = 0;
    const refused = await send();
    assert.equal(refused.status, 503, refused.body);
    assert.equal(refused.json().code, 'SEG_STORE_UNAVAILABLE');
    assert.equal(refused.headers['retry-after'], '1');
    assert.doesNotMatch(refused.body, /ENOSPC/, 'the cause goes to the log, not to the sender');
    const down = await health();
    assert.equal(down.status, 503);
    assert.deepEqual(JSON.parse(down.body), { status: 'unavailable' });
    assert.equal(store.writable, false);
    // The cause is logged, at error level, with its errno.
    assert.ok(
      logged.some((l) => l.level === 50 && l.err?.code === 'ENOSPC'),
      JSON.stringify(logged),
    );

    // Every new event still tries its write: nothing is refused without trying.
    const writes = disk.writes;
    assert.equal((await send()).status, 503);
    assert.ok(disk.writes > writes);
    const batch = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [trackEvent(), trackEvent()] },
    });
    assert.equal(batch.status, 503);
    assert.equal(batch.json().code, 'SEG_BATCH_RETRY');
    assert.equal((await health()).status, 503);
    assert.equal(logged.filter((l) => l.level === 50).length, 1, 'one error line per outage, not per event');

    // Space comes back: the next event is stored, and health is ok again.
    disk.capacity = Number.POSITIVE_INFINITY;
    assert.equal((await send()).status, 200);
    const up = await health();
    assert.equal(up.status, 200);
    assert.deepEqual(JSON.parse(up.body), { status: 'ok' });

    // Counters stay true: two events stored, the refused ones counted as 503s.
    assert.equal(store.stats.records, 2);
    const metrics = (await inject(handler, { method: 'GET', url: '/metrics', headers: {} })).body;
    assert.match(metrics, /^segment_endpoint_store_events_total 2$/m);
    assert.match(metrics, /^segment_endpoint_requests_total\{type="track",status="503"\} 2$/m);
    await store.close();
  });

  test('the line that says the store writes again names the event stored, not the first one refused', async () => {
    const { io, disk } = smallDisk(Number.POSITIVE_INFINITY);
    const { store, logged, send } = await loggedStore(io);
    disk.capacity = 0;
    assert.equal((await send('refused-1')).status, 503);
    disk.capacity = Number.POSITIVE_INFINITY;
    assert.equal((await send('stored-1')).status, 200);
    await steady();
    const again = logged.filter((line) => line.msg === 'the event store writes again');
    assert.deepEqual(
      again.map((line) => line.messageId),
      ['stored-1'],
      JSON.stringify(logged),
    );
    await store.close();
  });

  test('an event appended while the store wrote, stored after another was refused: the store is said to write again', async () => {
    // Whether to say so was decided as the line was appended, when the store was up: the recovery went
    // unsaid, and the next refusal for the same cause too, as if one outage had lasted throughout.
    let failing = 0; // the next writes that fail, each after 50 ms
    const io: StoreIo = {
      ...nodeIo,
      async write(fd, bytes, offset, length) {
        if (failing === 0) return nodeIo.write(fd, bytes, offset, length);
        failing--;
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      },
    };
    const { store, logged, send } = await loggedStore(io);
    failing = 1;
    const refused = send('a-refused');
    await new Promise((resolve) => setTimeout(resolve, 10)); // its write under way
    const stored = send('b-stored');
    assert.deepEqual([(await refused).status, (await stored).status], [503, 200]);
    await steady();
    failing = 1;
    assert.equal((await send('c-refused')).status, 503);
    assert.equal((await send('d-stored')).status, 200);
    await steady();
    assert.deepEqual(
      logged.filter((line) => line.msg?.startsWith('the event store')).map((line) => line.messageId),
      ['a-refused', 'b-stored', 'c-refused', 'd-stored'],
      JSON.stringify(logged),
    );
    await store.close();
  });

  test('writes that fail and work by turns (a file at its size limit: small commits fit) are one outage in the log', async () => {
    // Each turn was a pair of lines ("cannot write", "writes again"): 7 pairs in 108 ms in a probe with
    // ulimit -f. Now the store is said to write again once its writes have worked for a second.
    let failing = 0;
    const io: StoreIo = {
      ...nodeIo,
      async write(fd, bytes, offset, length) {
        if (failing === 0) return nodeIo.write(fd, bytes, offset, length);
        failing--;
        throw Object.assign(new Error('EFBIG: file too large'), { code: 'EFBIG' });
      },
    };
    const { store, logged, send } = await loggedStore(io);
    for (let turn = 0; turn < 5; turn++) {
      failing = 1;
      assert.equal((await send(`refused-${turn}`)).status, 503);
      assert.equal((await send(`stored-${turn}`)).status, 200);
    }
    const said = () =>
      logged.filter((line) => line.msg?.startsWith('the event store')).map((line) => line.msg);
    assert.deepEqual(said(), ['the event store cannot write: events are answered 503']);
    await steady();
    assert.deepEqual(said(), [
      'the event store cannot write: events are answered 503',
      'the event store writes again',
    ]);
    await store.close();
  });

  test('draining wins over unavailable; HEAD answers the status without a body', async () => {
    const { store, disk, handler, health, send } = await endpoint();
    disk.capacity = 0;
    assert.equal((await send()).status, 503);
    const head = await inject(handler, { method: 'HEAD', url: '/health', headers: {} });
    assert.equal(head.status, 503);
    assert.equal(head.body, '');
    handler.drain();
    const res = await health();
    assert.equal(res.status, 503);
    assert.deepEqual(JSON.parse(res.body), { status: 'draining' });
    await store.close();
  });

  test('health is ok by default, and follows `ready` when it is given', async () => {
    let ready = true;
    const handler = createHandler({
      apiKeys: [API_KEY],
      handlers: {},
      log: silentLogger,
      ready: () => ready,
    });
    const health = () => inject(handler, { method: 'GET', url: '/health', headers: segmentHeaders() });
    assert.equal((await health()).status, 200);
    ready = false;
    assert.deepEqual(JSON.parse((await health()).body), { status: 'unavailable' });
    ready = true;
    assert.equal((await health()).status, 200);
    assert.throws(
      () => createHandler({ apiKeys: [API_KEY], handlers: {}, ready: true as unknown as () => boolean }),
      TypeError,
    );
  });
});
