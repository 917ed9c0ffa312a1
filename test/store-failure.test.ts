import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { nodeIo, type StoreIo } from '../src/fileio.ts';
import { NdjsonStore } from '../src/index.ts';

// A store whose disk fills up, without a disk: node's fs, except that a write only gets the room left
// under `capacity` (a short write) and fails with ENOSPC when there is none, as a full file system does.

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-full-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

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

describe('a store whose disk fills up', () => {
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
});
