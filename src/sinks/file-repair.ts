import { dirname, join, resolve } from 'node:path';
import { nodeIo, readAt, type StoreIo, writeAll } from './file-io.ts';
import { inReadingOrder, lastTwoOfEach, type StoreFile, storeFile } from './file-names.ts';
import { ownStat, regular } from './file-owner.ts';
import { cutShortCopy } from './file-torn.ts';

// Start-up repair. Run time never leaves a partial line behind a good one (a failed write is cut off),
// so a crash can leave a partial line only in the last commit of a file: its last line cut short (kill -9
// or a power cut in the middle of a write), or, after a power cut, a hole of zeros where part of the last
// commit never reached the disk while a later part did.

const NEWLINE = 0x0a;
const TAIL_CHUNK = 64 * 1024; // 64 KiB read at a time, from the end, to find the last newline

export interface TornLine {
  /** The store file that ended in a partial line. */
  readonly file: string;
  /** Where its bytes were moved. */
  readonly movedTo: string;
  readonly bytes: number;
}

/**
 * The most bytes of lines one group commit writes (more only when one line alone is longer): all that a
 * power cut can leave unsynced in a store file, since a commit is synced before the next is written.
 */
export const COMMIT_MAX_BYTES = 1024 * 1024; // 1 MiB

/**
 * Moves what follows the last whole line out of `file`: a partial last line (no closing newline), or,
 * within its last `scan` bytes (and the line they start in), everything from the first line that holds
 * a zero byte, which no line the store writes does: a hole a power cut left where one write of the last
 * commit reached the disk and an earlier one did not. `undefined` if the file ends cleanly.
 */
export async function setAsideTornTail(io: StoreIo, file: string, scan = 0): Promise<TornLine | undefined> {
  // A name that leads to no file (removed meanwhile) holds nothing to repair, nor does a symbolic link
  // (the store writes none, and would cut the file it leads to) or a FIFO, a device: passed over.
  const fd = await io.open(file, 'r+').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ELOOP') return undefined;
    throw err;
  });
  if (fd === undefined) return undefined;
  try {
    const { size, mode } = await io.fstat(fd);
    if (!regular(mode)) return undefined;
    const keep = await wholeLinesEnd(io, fd, size, scan);
    if (keep === size) {
      // What a process killed between a write and its sync left is made durable now: otherwise the next
      // commit would be a second unsynced one, and a hole a power cut left in the first could lie beyond
      // what the next start-up looks through.
      if (scan > 0) await io.fdatasync(fd);
      return undefined;
    }
    const movedTo = `${file}.torn`;
    const end = await cutShortCopy(io, fd, keep, size, movedTo);
    const aside = await io.open(movedTo, 'a');
    try {
      const { size: before } = await ownStat(io, aside, movedTo);
      // Cut back if it fails (a full disk), so that the next try does not follow half a fragment.
      if (end !== 'copied') {
        await copyOut(io, fd, keep, size, aside, end === 'new-line').catch(async (err) => {
          await io.ftruncate(aside, before).catch(() => {});
          throw err;
        });
      }
      // A copy a start-up killed before its cut made may not have been synced either.
      await io.fdatasync(aside);
    } finally {
      await io.close(aside);
    }
    // The fragment's new file, its name included, is durable before the original loses it.
    await io.syncDirectory(dirname(file));
    await io.ftruncate(fd, keep);
    await io.fdatasync(fd);
    return { file, movedTo, bytes: size - keep };
  } finally {
    await io.close(fd);
  }
}

/**
 * Appends the bytes `from`–`to` of `fd` to `aside`, then a line end (and one before them, `newLine`): a
 * chunk at a time, for a fragment may be as long as a damaged or planted file makes it.
 */
async function copyOut(io: StoreIo, fd: number, from: number, to: number, aside: number, newLine: boolean) {
  if (newLine) await writeAll(io, aside, Buffer.from('\n'));
  const chunk = Buffer.alloc(Math.min(TAIL_CHUNK, to - from));
  for (let at = from; at < to; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, to - at));
    await readAt(io, fd, part, at);
    await writeAll(io, aside, part);
  }
  await writeAll(io, aside, Buffer.from('\n'));
}

/** Where the whole lines of a file of `size` bytes end (see setAsideTornTail). */
async function wholeLinesEnd(io: StoreIo, fd: number, size: number, scan: number): Promise<number> {
  if (scan > 0 && size > 0)
    return cleanLinesEnd(io, fd, await lineStart(io, fd, Math.max(0, size - scan)), size);
  const last = Buffer.alloc(1);
  if (size === 0 || ((await io.read(fd, last, 0, 1, size - 1)) === 1 && last[0] === NEWLINE)) return size;
  return lineStart(io, fd, size);
}

/**
 * From `from`, the start of a line, to `size`: the end of the last whole line before the first zero
 * byte, or of the last whole line if none holds one. Read a chunk at a time, as `lineStart` reads.
 */
async function cleanLinesEnd(io: StoreIo, fd: number, from: number, size: number): Promise<number> {
  // No larger than what is read: zeroing 64 KiB for a tail of a few lines cost the start more than reading.
  const chunk = Buffer.alloc(Math.min(TAIL_CHUNK, size - from));
  let end = from;
  for (let at = from; at < size; at += TAIL_CHUNK) {
    const part = chunk.subarray(0, Math.min(TAIL_CHUNK, size - at));
    await readAt(io, fd, part, at);
    const zero = part.indexOf(0);
    const newline = part.lastIndexOf(NEWLINE, zero === -1 ? part.length : zero);
    if (newline !== -1) end = at + newline + 1;
    if (zero !== -1) return end;
  }
  return end;
}

/** The start of the line that holds byte `at`: just past the last newline before it, or 0. */
async function lineStart(io: StoreIo, fd: number, at: number): Promise<number> {
  const chunk = Buffer.alloc(Math.min(TAIL_CHUNK, at));
  let end = at;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_CHUNK);
    const bytesRead = await io.read(fd, chunk, 0, end - start, start);
    const newline = chunk.subarray(0, bytesRead).lastIndexOf(NEWLINE);
    if (newline !== -1) return start + newline + 1;
    end = start;
  }
  return 0;
}

/**
 * Sets aside what a crash left after the last whole line of every store file in `dir`, or of those
 * `only` accepts: a torn last line, or a hole in the last commit (see setAsideTornTail). `dir` must
 * exist: its callers make it first (makeDirectory, which syncs its entry in its parent at every start,
 * and the levels above while it holds no store file, since the start that made it may have died
 * before those syncs). No process may be writing the files meanwhile.
 */
export async function repairStore(
  dir: string,
  options: {
    readonly io?: StoreIo;
    readonly only?: (name: string) => boolean;
    /**
     * Where a file is put (its path, and the bytes to scan) when its fragment cannot be set aside for
     * want of room (a full disk, a quota): its repair is left to whoever writes it next, who must make it
     * first. Without it, that is an error.
     */
    readonly deferred?: Map<string, number>;
  } = {},
): Promise<TornLine[]> {
  const io = options.io ?? nodeIo;
  const files: StoreFile[] = [];
  for (const name of await io.readdir(dir)) {
    const file = storeFile(name);
    if (file !== undefined && options.only?.(name) !== false) files.push(file);
  }
  const recent = repairedAtStart(files);
  const recovered: TornLine[] = [];
  for (const file of files.sort(inReadingOrder)) {
    // Only a file the store may have been writing when the power went can hold an unsynced commit.
    const scan = recent.has(file) ? COMMIT_MAX_BYTES : 0;
    const path = join(dir, file.name);
    const torn = await setAsideTornTail(io, path, scan).catch((err: NodeJS.ErrnoException) => {
      if ((err.code !== 'ENOSPC' && err.code !== 'EDQUOT') || options.deferred === undefined) throw err;
      options.deferred.set(path, scan);
      return undefined;
    });
    if (torn !== undefined) recovered.push(torn);
  }
  return recovered;
}

/**
 * The files whose last commit a start looks through: each writer's (each worker's) of its last two days,
 * today's and, just after midnight, yesterday's.
 */
export function repairedAtStart(files: readonly StoreFile[]): Set<StoreFile> {
  return new Set([...lastTwoOfEach(files).values()].flat());
}

/**
 * Creates `dir` and its missing parents if need be, and makes its entry in its parent durable. A start
 * that died inside its `mkdir -p`, before any sync, may have left levels whose entries are not durable:
 * when this start made levels itself, or found `dir` holding no store file yet, the levels above are
 * synced too, as far as they are on the store's filesystem and can be opened (a service user under a
 * directory it may pass through but not read). A `dir` that holds a store file is taken to have had a
 * start get past these syncs before writing it: its own entry alone.
 */
export async function makeDirectory(io: StoreIo, dir: string): Promise<void> {
  const created = await io.mkdir(dir);
  await io.syncDirectory(dirname(dir));
  if (created !== undefined || !(await io.readdir(dir)).some((name) => storeFile(name) !== undefined)) {
    await syncAbove(io, dir);
  }
}

/** Errors that say a level cannot be opened or synced here, not that the store's disk failed. */
const UNSYNCABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Syncs each directory above `dir`'s parent (the path resolved: `..` and `.` are not levels), from the
 * bottom, until the root, one on another filesystem (a mount point is never made by `mkdir -p`), or one
 * that cannot be opened: those above it are left as they are. (Levels this start made are its own, on
 * its filesystem: they open.)
 */
async function syncAbove(io: StoreIo, dir: string): Promise<void> {
  const home = await io.identity?.(dir);
  for (let at = dirname(resolve(dir)); at !== dirname(at); at = dirname(at)) {
    const above = dirname(at);
    if (home !== undefined && (await io.identity?.(above))?.dev !== home.dev) return;
    const synced = await io.syncDirectory(above).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (!UNSYNCABLE.has(err.code ?? '')) throw err;
        return false;
      },
    );
    if (!synced) return;
  }
}
